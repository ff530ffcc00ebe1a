//! The `dockershim` binary: read flags and configuration files, set up
//! logging, serve.

use std::io::Write;

use dockershim::build_info;
use dockershim::config_file;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let loaded = match config_file::load(std::env::args_os()) {
        Ok(loaded) => loaded,
        // Usage errors, --help and --version print and exit as clap does.
        Err(config_file::Error::Cli(err)) => err.exit(),
        Err(err) => return Err(err.into()),
    };
    if loaded.config.buildinfo {
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
    match &loaded.config.command {
        Some(dockershim::config::Command::Man) => {
            std::io::stdout().write_all(&dockershim::cli_docs::man_page()?)?;
            return Ok(());
        }
        Some(dockershim::config::Command::Completion { shell }) => {
            std::io::stdout().write_all(&dockershim::cli_docs::completion(*shell))?;
            return Ok(());
        }
        _ => {}
    }
    if loaded.wants_dump() {
        print!("{}", loaded.dump()?);
        return Ok(());
    }
    let config = loaded.config;
    dockershim::logging::init(&config.log_level, config.log_format())
        .map_err(anyhow::Error::msg)?;
    if let Err(err) = dockershim::server::run(config).await {
        tracing::error!(error = %err, "dockershim failed");
        return Err(err.into());
    }
    Ok(())
}
