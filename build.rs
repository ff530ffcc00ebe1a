//! Build script: compiles the CRI v1 contract with a pure-Rust protobuf
//! compiler (no `protoc` needed) and builds the static pause program that the
//! shim imports into Docker when no pause image can be pulled.

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
    Ok(())
}

/// The compiler's version, for `dockershim --buildinfo`.
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
