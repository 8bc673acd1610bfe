//! The `driftdb` command line: a thin layer over the library.

use std::io::Write;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use driftdb::config::ServerConfig;
use driftdb::config_file;
use driftdb::server::RunningServer;
use tracing_subscriber::EnvFilter;

/// The version and the git commit the binary was built from (`unknown` outside a git checkout).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("DRIFTDB_GIT_COMMIT"), ")");

#[derive(Parser)]
#[command(name = "driftdb", version = VERSION, about = "A real-time key-value database for browser applications")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at startup: the size of the `serve` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Write a self-signed development certificate and key for WebTransport (`certs/dev-cert.pem`,
    /// `certs/dev-key.pem`). Browsers accept it through `serverCertificateHashes` for less than 14 days.
    Cert(CertArgs),
    /// Write a stored room as JSON lines to stdout (a header line, then one line per entry). Stop the server on
    /// that data directory first.
    Export(ExportArgs),
    /// Read rooms as JSON lines (as `export` writes them) from stdin into the store, replacing rooms of the same
    /// id. Stop the server on that data directory first.
    Import(ImportArgs),
    /// Config file tools.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML file of settings named like these flags (see `driftdb.example.toml`); flags and environment variables
    /// win over it.
    #[arg(long, env = "DRIFTDB_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    server: ServerConfig,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Reads a config file as `driftdb serve --config FILE` would (environment variables included) and prints the
    /// settings it gives, or the first problem.
    Check { file: std::path::PathBuf },
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
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match cli.command {
        Command::Serve(args) => {
            let serve_matches = matches.subcommand_matches("serve").expect("the serve subcommand was parsed");
            serve(config_file::resolve(serve_matches, args.config.as_deref())?).await
        }
        Command::Cert(args) => write_certificate(&args),
        Command::Export(args) => export(&args),
        Command::Import(args) => import(&args),
        Command::Config(ConfigCommand::Check { file }) => check_config(&file),
    }
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let config = config_file::check(file)?;
    config.validate()?;
    println!("{}: ok", file.display());
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    raise_open_file_limit();
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

/// Every connection is a file descriptor and the usual soft limit is 1,024, so the server raises its soft
/// `RLIMIT_NOFILE` to the hard limit at start (tens of thousands of connections need it; see docs/benchmarks.md).
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
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
