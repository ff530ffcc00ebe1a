//! Build script: compiles the CRI v1 contract with a pure-Rust protobuf
//! compiler (no `protoc` needed), builds the static pause program that the
//! shim imports into Docker when no pause image can be pulled, and records
//! what `--version`, `--buildinfo` and the build-info metric report (git
//! commit, build date, compiler).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/runtime/v1/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        .compile_fds(fds)?;

    build_pause()?;
    record_rustc_version();
    record_git_commit();
    record_build_date();
    Ok(())
}

/// The git commit the shim is built from, as `DOCKERSHIM_GIT_COMMIT`: the
/// short hash, with `-dirty` when tracked files differ from it (as `git
/// describe --dirty` says it), or `unknown` when there is no git or no
/// repository (a source tarball).
fn record_git_commit() {
    let commit = git_commit().unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DOCKERSHIM_GIT_COMMIT={commit}");
}

fn git_commit() -> Option<String> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR")?);
    // A tarball unpacked inside some other repository would otherwise
    // report that repository's commit.
    let top = PathBuf::from(git(&manifest_dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    // Run again when HEAD moves (a commit, a checkout) or the index changes
    // (staging), and when the sources change, so that `-dirty` follows the
    // edits that change the binary; an edit elsewhere (docs, scripts) shows
    // at the next run. Only paths that exist: cargo reruns every time for a
    // missing one.
    let mut watched = vec![
        git(&manifest_dir, &["rev-parse", "--git-path", "HEAD"]),
        git(&manifest_dir, &["rev-parse", "--git-path", "index"]),
        git(&manifest_dir, &["rev-parse", "--git-path", "packed-refs"]),
    ];
    if let Some(branch) = git(&manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&manifest_dir, &["rev-parse", "--git-path", &branch]));
    }
    for path in watched.into_iter().flatten() {
        let path = manifest_dir.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    for path in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={path}");
    }
    let hash = git(&manifest_dir, &["rev-parse", "--short=12", "HEAD"])?;
    // --no-optional-locks: status must not rewrite the index, which this
    // script watches. Untracked files do not count, as for `git describe`.
    let status = git(
        &manifest_dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    );
    Some(match status {
        Some(changes) if changes.is_empty() => hash,
        Some(_) => format!("{hash}-dirty"),
        // Status failed though rev-parse worked: say what is known.
        None => hash,
    })
}

/// Runs git in `dir`; its trimmed stdout when it succeeds.
fn git(dir: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The build date as `DOCKERSHIM_BUILD_DATE` (UTC, RFC 3339). It honours
/// `SOURCE_DATE_EPOCH` so that a reproducible build reports the date of its
/// sources rather than of the machine's clock.
fn record_build_date() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let epoch = env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    let date = chrono::DateTime::from_timestamp(epoch, 0).map_or_else(
        || "unknown".to_string(),
        |date| date.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    println!("cargo:rustc-env=DOCKERSHIM_BUILD_DATE={date}");
}

/// The compiler's version, for `dockershim --buildinfo` and the build-info
/// metric.
fn record_rustc_version() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DOCKERSHIM_RUSTC_VERSION={version}");
}

/// Compiles `src/pause/pause.rs` into a statically linked executable in OUT_DIR.
///
/// It is compiled with the same `rustc` that builds the shim, as a
/// standalone program with no crates, so it needs nothing beyond the
/// toolchain and the C library's static archive.
fn build_pause() -> Result<(), Box<dyn std::error::Error>> {
    let src = "src/pause/pause.rs";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(env::var("OUT_DIR")?).join("pause");
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let status = Command::new(rustc)
        .args([
            "--edition=2021",
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .status()?;
    if !status.success() {
        return Err(format!("building the pause program failed: {status}").into());
    }
    Ok(())
}
