//! The `driftdb` command line: a thin layer over the library.

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};
use driftdb::config::ServerConfig;
use driftdb::server::RunningServer;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "driftdb", version, about = "A real-time key-value database for browser applications")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServerConfig),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(config) => serve(config).await,
    }
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let server = RunningServer::start(config).await.context("starting the server")?;
    // Scripts and tests wait for this line (and read the port from it when started with --port 0).
    println!("driftdb listening on http://{}", server.http_addr());
    std::io::stdout().flush()?;
    wait_for_stop_signal().await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
