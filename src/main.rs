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

// Parsed once at startup: the size of the `serve` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServerConfig),
    /// Write a self-signed development certificate and key for WebTransport (`certs/dev-cert.pem`,
    /// `certs/dev-key.pem`). Browsers accept it through `serverCertificateHashes` for less than 14 days.
    Cert(CertArgs),
    /// Write a stored room as JSON lines to stdout (a header line, then one line per entry). Stop the server on
    /// that data directory first.
    Export(ExportArgs),
    /// Read rooms as JSON lines (as `export` writes them) from stdin into the store, replacing rooms of the same
    /// id. Stop the server on that data directory first.
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct ExportArgs {
    /// The room id.
    room: String,
    /// Data directory of the embedded store.
    #[arg(long, default_value = "driftdb-data", env = "DRIFTDB_DATA_DIR")]
    data_dir: std::path::PathBuf,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// Data directory of the embedded store (created if missing).
    #[arg(long, default_value = "driftdb-data", env = "DRIFTDB_DATA_DIR")]
    data_dir: std::path::PathBuf,
}

#[derive(clap::Args)]
struct CertArgs {
    /// Directory to write into.
    #[arg(long, default_value = "certs")]
    dir: std::path::PathBuf,
    /// Extra host names or IP addresses besides localhost, 127.0.0.1 and ::1.
    #[arg(long = "host-name", value_delimiter = ',')]
    host_names: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(config) => serve(config).await,
        Command::Cert(args) => write_certificate(&args),
        Command::Export(args) => export(&args),
        Command::Import(args) => import(&args),
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

fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let room = driftdb::engine::RoomId::parse(&args.room)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    driftdb::storage::backup::export_room(&args.data_dir, &room, &mut out)
        .with_context(|| format!("exporting room {room} from {}", args.data_dir.display()))?;
    out.flush()?;
    Ok(())
}

fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let rooms = driftdb::storage::backup::import(&args.data_dir, std::io::stdin().lock())
        .with_context(|| format!("importing into {}", args.data_dir.display()))?;
    for room in &rooms {
        eprintln!("imported room {room}");
    }
    Ok(())
}

fn write_certificate(args: &CertArgs) -> anyhow::Result<()> {
    let (cert, key) = driftdb::tls::write_dev_certificate(&args.dir, &args.host_names)?;
    println!("wrote {} and {}", cert.display(), key.display());
    println!("serve with: driftdb serve --tls-cert {} --tls-key {}", cert.display(), key.display());
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
