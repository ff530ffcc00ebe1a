//! The built binary with a configuration file: `config dump` shows the
//! precedence of defaults, files, environment and flags, and a bad file is
//! refused naming its file, line and key. Needs no Docker.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

/// Environment variables that the shim reads, so the caller's cannot leak in.
const SHIM_ENV: &[&str] = &[
    "DOCKERSHIM_ENDPOINT",
    "DOCKER_HOST",
    "DOCKERSHIM_LOG",
    "DOCKERSHIM_LOG_FORMAT",
];

fn dockershim(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dockershim"));
    command.args(args);
    for name in SHIM_ENV {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The dump's settings, without its comment lines (which name the files).
fn settings(dump: &str) -> Vec<&str> {
    dump.lines().filter(|line| !line.starts_with('#')).collect()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn dump_shows_files_under_environment_under_flags() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("config.toml");
    write(
        &main,
        "docker-endpoint = \"unix:///run/docker.sock\"\n\
         network-plugin = \"cni\"\n\
         streaming-max-sessions = 500\n\
         log-level = \"warn\"\n\
         cni-bin-dir = [\"/opt/cni/bin\"]\n",
    );
    write(
        &dir.path().join("config.d/20-b.toml"),
        "streaming-max-sessions = 20\n",
    );
    write(
        &dir.path().join("config.d/10-a.toml"),
        "streaming-max-sessions = 10\npod-cidr = \"10.1.0.0/16\"\n",
    );
    let main = main.to_str().unwrap();
    let output = dockershim(
        &["--config", main, "--log-level", "debug", "config", "dump"],
        &[
            ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
            ("DOCKERSHIM_LOG", "error"),
        ],
    );
    let dump = stdout(&output);
    let lines = settings(&dump);
    for expected in [
        // default
        "container-runtime-endpoint = \"unix:///var/run/dockershim.sock\"",
        // main file
        "network-plugin = \"cni\"",
        "cni-bin-dir = [\"/opt/cni/bin\"]",
        // the last drop-in in name order
        "streaming-max-sessions = 20",
        "pod-cidr = \"10.1.0.0/16\"",
        // the environment over the file
        "docker-endpoint = \"tcp://127.0.0.1:2375\"",
        // the flag over the environment and the file
        "log-level = \"debug\"",
    ] {
        assert!(lines.contains(&expected), "{expected} not in\n{dump}");
    }

    // The dump is a configuration file that gives the same configuration.
    let again = dir.path().join("again/config.toml");
    write(&again, &dump);
    let redump = stdout(&dockershim(
        &["--print-config", "--config", again.to_str().unwrap()],
        &[],
    ));
    assert_eq!(settings(&redump), lines);
}

#[test]
fn bad_files_are_refused_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("config.toml");
    write(&main, "network-plugin = \"cni\"\n");
    let drop_in = dir.path().join("config.d/10-net.toml");
    write(
        &drop_in,
        "# the network\npod-cidr = \"10.1.0.0/16\"\nnetwrk-plugin = \"cni\"\n",
    );
    let output = dockershim(&["--config", main.to_str().unwrap(), "config", "dump"], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("{}:3: unknown key \"netwrk-plugin\"", drop_in.display());
    assert!(stderr.contains(&expected), "{stderr}");

    write(&drop_in, "streaming-max-sessions = \"many\"\n");
    let output = dockershim(&["--config", main.to_str().unwrap(), "config", "dump"], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "{}:1: key \"streaming-max-sessions\" must be an integer, not string",
        drop_in.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");

    let missing = dir.path().join("missing.toml");
    let output = dockershim(
        &["--config", missing.to_str().unwrap(), "config", "dump"],
        &[],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}

#[test]
fn version_and_buildinfo_still_work() {
    let version = stdout(&dockershim(&["--version"], &[]));
    assert!(version.starts_with("dockershim "), "{version}");
    // A broken file does not stop --buildinfo from telling what is installed.
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("config.toml");
    write(&main, "not toml");
    let info = stdout(&dockershim(
        &["--config", main.to_str().unwrap(), "--buildinfo"],
        &[],
    ));
    assert!(info.starts_with("Program: dockershim\n"), "{info}");
}
