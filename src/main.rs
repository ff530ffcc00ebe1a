//! The `dockershim` binary: parse flags, set up logging, serve.

use clap::Parser;

use dockershim::build_info;
use dockershim::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if config.buildinfo {
        println!("Program: dockershim");
        println!("Version: {}", build_info::VERSION);
        println!("Git commit: {}", build_info::COMMIT);
        println!("Build date: {}", build_info::BUILD_DATE);
        println!("Rust version: {}", build_info::RUSTC);
        println!(
            "Platform: {}/{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        return Ok(());
    }
    dockershim::logging::init(&config.log_level, config.log_format())
        .map_err(anyhow::Error::msg)?;
    if let Err(err) = dockershim::server::run(config).await {
        tracing::error!(error = %err, "dockershim failed");
        return Err(err.into());
    }
    Ok(())
}
