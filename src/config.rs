//! One struct carries every listener setting and limit; `driftdb serve` fills it from the command line.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser};

/// Settings of `driftdb serve`.
#[derive(Args, Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", env = "DRIFTDB_HOST")]
    pub host: IpAddr,

    /// TCP port for HTTP and WebSocket (0 picks a free port).
    #[arg(long, default_value_t = 8080, env = "DRIFTDB_PORT")]
    pub port: u16,

    /// Largest client message accepted, in bytes. A larger WebSocket message closes the connection with 1009; a
    /// larger HTTP body gets 413.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_message_bytes: usize,

    /// Bound on each connection's outgoing queue, in bytes. Volatile messages are dropped first; a reader whose
    /// reliable traffic overflows it is closed as a slow consumer (4001) and resumes on reconnect.
    #[arg(long, default_value_t = 8 << 20)]
    pub outbox_bytes: usize,

    /// Base URL clients reach this server at (e.g. `https://db.example.com`), used in room URLs instead of the
    /// request's own scheme and Host.
    #[arg(long)]
    pub public_url: Option<String>,

    /// Trust `X-Forwarded-Proto` and `X-Forwarded-Host` from a reverse proxy when building room URLs.
    #[arg(long)]
    pub trust_proxy: bool,

    /// Directory of static files (the demos) served at `/`.
    #[arg(long)]
    pub static_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        #[derive(Parser)]
        struct DefaultsOnly {
            #[command(flatten)]
            config: ServerConfig,
        }
        DefaultsOnly::parse_from(["driftdb"]).config
    }
}
