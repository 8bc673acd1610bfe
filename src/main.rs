//! The `driftdb` command line: a thin layer over the library.

use std::io::Write;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use driftdb::auth::keys::{self, KeyAlgorithm};
use driftdb::auth::{self, Capability, Claims, RoomPattern};
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
    /// Make a key for room tokens: `DIR/KID.jwk` signs (keep it with the app's backend and `driftdb token`); for
    /// EdDSA, `DIR/KID.pub.jwk` is what the server verifies with (`--auth-key-file`). An HS256 key is one file for
    /// both.
    Key(KeyArgs),
    /// Print a room token signed with a key file, for development and scripts.
    Token(TokenArgs),
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
struct KeyArgs {
    /// The key's id, named in each token's header (`kid`); use a new one for each rotation.
    #[arg(long)]
    kid: String,
    /// The signature algorithm.
    #[arg(long, value_enum, default_value = "eddsa")]
    alg: KeyAlgorithm,
    /// Directory to write into.
    #[arg(long, default_value = "keys")]
    dir: std::path::PathBuf,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// The signing key (`KID.jwk` from `driftdb key`).
    #[arg(long)]
    key_file: std::path::PathBuf,
    /// A room id, or a prefix pattern such as `game-42-*`.
    #[arg(long)]
    room: String,
    /// What the token allows, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    can: Vec<Capability>,
    /// How long the token is valid, e.g. `30s`, `15m`, `1h`, `7d`.
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,
    /// The holder's identity (`sub`).
    #[arg(long)]
    sub: Option<String>,
    /// The audience (`aud`), when the server runs with `--auth-audience`.
    #[arg(long)]
    aud: Option<String>,
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

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match cli.command {
        Command::Serve(args) => {
            let serve_matches = matches.subcommand_matches("serve").expect("the serve subcommand was parsed");
            let config = config_file::resolve(serve_matches, args.config.as_deref())?;
            // Checked before the runtime is built from it: a bad value is a message, never a panic.
            config.validate()?;
            runtime(config.worker_threads)?.block_on(serve(config))
        }
        Command::Cert(args) => write_certificate(&args),
        Command::Export(args) => export(&args),
        Command::Import(args) => import(&args),
        Command::Config(ConfigCommand::Check { file }) => check_config(&file),
        Command::Key(args) => write_key(&args),
        Command::Token(args) => print_token(&args),
    }
}

fn write_key(args: &KeyArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let (signing, verifying) = keys::generate(&args.kid, args.alg);
    let signing_path = args.dir.join(format!("{}.jwk", args.kid));
    keys::write_jwk(&signing_path, &signing)?;
    println!("wrote {} (signs tokens: keep it secret)", signing_path.display());
    let verifying_path = if signing == verifying {
        signing_path
    } else {
        let path = args.dir.join(format!("{}.pub.jwk", args.kid));
        keys::write_jwk(&path, &verifying)?;
        println!("wrote {} (verifies tokens)", path.display());
        path
    };
    println!("serve with: driftdb serve --auth-key-file {}", verifying_path.display());
    Ok(())
}

fn print_token(args: &TokenArgs) -> anyhow::Result<()> {
    let key = keys::SigningKeyFile::load(&args.key_file)?;
    let claims = Claims {
        exp: auth::now_secs() + args.ttl.as_secs(),
        nbf: None,
        room: RoomPattern::parse(&args.room),
        can: args.can.clone(),
        sub: args.sub.clone(),
        aud: args.aud.clone(),
    };
    println!("{}", auth::issue(&key, &claims));
    Ok(())
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let config = config_file::check(file)?;
    config.validate()?;
    println!("{}: ok", file.display());
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}

/// The server's runtime: `--worker-threads` threads, or tokio's default of one per CPU.
fn runtime(worker_threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = worker_threads {
        builder.worker_threads(threads);
    }
    builder.enable_all().build().context("starting the runtime")
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
