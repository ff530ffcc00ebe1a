//! A Docker daemon of a test's own: its own socket, data and exec roots, a
//! bridge the test creates, no iptables, and the engine's settings
//! (integration/dockerd.sh env), for tests that restart Docker or need
//! daemon settings of their own.
//!
//! The daemon must not run with `--bridge none`: Docker then deletes the
//! host's `docker0`, which the main daemon needs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TEST_IMAGE;

/// A dockerd started by a test; stopped (by its PID) when dropped.
pub struct OwnDocker {
    child: Option<Child>,
    root: PathBuf,
}

/// A Linux bridge for the test's daemon; deleted when dropped.
pub struct Bridge(String);

impl Bridge {
    /// A bridge of its own for each test that starts a daemon: the tests
    /// run in parallel.
    pub fn create() -> Bridge {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("dsrst{:x}-{n}", std::process::id() % 0x000f_ffff);
        let out = Command::new("ip")
            .args(["link", "add", &name, "type", "bridge"])
            .output()
            .expect("ip link add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bridge = Bridge(name);
        let out = Command::new("ip")
            .args([
                "addr",
                "add",
                &format!("10.234.{}.1/24", 77 + n),
                "dev",
                &bridge.0,
            ])
            .output()
            .expect("ip addr add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bridge
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

impl OwnDocker {
    pub fn socket(root: &Path) -> PathBuf {
        root.join("docker.sock")
    }

    pub fn start(root: &Path, bridge: &Bridge) -> OwnDocker {
        Self::start_with(root, bridge, &[])
    }

    /// With more dockerd flags, e.g. its default log driver.
    pub fn start_with(root: &Path, bridge: &Bridge, extra: &[&str]) -> OwnDocker {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("dockerd.log"))
            .unwrap();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", Self::socket(root).display()))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .args(["--bridge", &bridge.0, "--iptables=false", "--ip-masq=false"])
            .args(extra)
            // The engine's own settings (integration/dockerd.sh env), e.g. its
            // image store, so this daemon is of the same kind.
            .args(
                std::env::var_os("DOCKERSHIM_TEST_DOCKERD_CONFIG")
                    .map(|config| [std::ffi::OsString::from("--config-file"), config])
                    .into_iter()
                    .flatten(),
            )
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start dockerd");
        let own = OwnDocker {
            child: Some(child),
            root: root.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !own.answers() {
            assert!(
                Instant::now() < deadline,
                "own dockerd did not start: {}",
                std::fs::read_to_string(root.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        own
    }

    /// A daemon that has the main daemon's test image.
    pub fn start_with_test_image(root: &Path, bridge: &Bridge) -> OwnDocker {
        Self::start_with_test_image_and(root, bridge, &[])
    }

    /// A daemon with more flags that has the main daemon's test image.
    pub fn start_with_test_image_and(root: &Path, bridge: &Bridge, extra: &[&str]) -> OwnDocker {
        let own = OwnDocker::start_with(root, bridge, extra);
        let mut save = Command::new("docker")
            .args(["save", TEST_IMAGE])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let load = own
            .cli()
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(save.wait().unwrap().success());
        assert!(
            load.status.success(),
            "{}",
            String::from_utf8_lossy(&load.stderr)
        );
        own
    }

    /// A shim on this daemon, with the built-in pause image (a test daemon
    /// has no registry to pull one from).
    pub async fn start_shim(&self) -> super::Shim {
        let socket = format!("unix://{}", Self::socket(&self.root).display());
        super::Shim::start_with(&[
            "--docker-endpoint",
            &socket,
            "--pod-infra-container-image",
            super::UNPULLABLE_PAUSE,
            "--pod-infra-pull-timeout",
            "5",
        ])
        .await
    }

    pub fn cli(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("--host")
            .arg(format!("unix://{}", Self::socket(&self.root).display()));
        cmd
    }

    pub fn answers(&self) -> bool {
        self.cli()
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// SIGTERM, then wait: dockerd stops its containers on the way out.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnDocker {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.cli().args(["ps", "-aq"]).output();
            if let Ok(ids) = ids {
                let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    let _ = self.cli().args(["rm", "-f"]).args(&ids).output();
                }
            }
        }
        self.stop();
    }
}
