//! The `dockershim` binary: parse flags, set up logging, serve.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use dockershim::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if config.buildinfo {
        println!("Program: dockershim");
        println!("Version: {}", env!("CARGO_PKG_VERSION"));
        println!("Rust version: {}", env!("DOCKERSHIM_RUSTC_VERSION"));
        println!(
            "Platform: {}/{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        return Ok(());
    }
    // cri-dockerd's (logrus) level names, which its unit files carry.
    let level = match config.log_level.as_str() {
        "panic" | "fatal" => "error",
        "warning" => "warn",
        other => other,
    };
    let filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level {:?}: {e}", config.log_level))?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    if let Err(err) = dockershim::server::run(config).await {
        tracing::error!(error = %err, "dockershim failed");
        return Err(err.into());
    }
    Ok(())
}
