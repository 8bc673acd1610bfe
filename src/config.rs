//! One struct carries every listener setting and limit; `driftdb serve` fills it from the command line, the
//! environment and `--config FILE` (see `config_file.rs`). The structs derive both clap and serde, so a new field is
//! a flag and a config file key at once: give it a long flag whose name is the field's name in kebab case (or a
//! matching `#[serde(rename)]`), and `#[serde(flatten)]` a new `#[command(flatten)]` group.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use serde::{Deserialize, Serialize};

use crate::engine::Limits;
use crate::storage::StorageKind;
use crate::tls::SelfSignedPolicy;

/// Settings of `driftdb serve`.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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

    /// Bytes of large writes (64 KiB or more, such as the replay of a big key) that all connections together may
    /// have on their way to their peers. A large write waits while the budget is spent, so readers that stop
    /// reading cannot make the server hold more than this in copies of what they asked for; small writes never wait.
    #[arg(long, default_value_t = 256 << 20)]
    pub write_budget_bytes: usize,

    /// Threads of the server's async runtime (default: one per CPU). Fewer threads spend less CPU per delivery
    /// (fewer wake-ups across threads) at some cost in latency under load; see docs/benchmarks.md.
    #[arg(long, env = "DRIFTDB_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// Threads that room connections run on, each room pinned to one of them, so that a relay's fan-out wakes no
    /// other thread (0: connections run on the async runtime's workers). See docs/benchmarks.md.
    #[arg(long, env = "DRIFTDB_ROOM_THREADS", default_value_t = 0)]
    pub room_threads: usize,

    /// Base URL clients reach this server at (e.g. `https://db.example.com`), used in room URLs instead of the
    /// request's own scheme and Host. With `--cluster` it is also the URL other nodes hand out for this node's rooms.
    #[arg(long, env = "DRIFTDB_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Trust `X-Forwarded-Proto` and `X-Forwarded-Host` from a reverse proxy when building room URLs.
    #[arg(long)]
    pub trust_proxy: bool,

    /// Directory of static files served at `/`. Defaults to the built demos (`js/demos/dist`, looked up from the
    /// working directory, then next to the binary's checkout) when they exist, else the demos and the inspector
    /// embedded in the binary at build time.
    #[arg(long)]
    pub static_dir: Option<PathBuf>,

    /// Do not serve WebTransport: clients use the WebSocket. The last of `--no-webtransport`/`--webtransport` wins.
    #[arg(long, overrides_with = "webtransport")]
    pub no_webtransport: bool,

    /// Serve WebTransport (the default; overrides an earlier `--no-webtransport`).
    #[arg(long, overrides_with = "no_webtransport")]
    pub webtransport: bool,

    /// UDP port for WebTransport (HTTP/3 over QUIC). Defaults to the HTTP port's number.
    #[arg(long, env = "DRIFTDB_WT_PORT")]
    pub wt_port: Option<u16>,

    /// QUIC idle timeout in milliseconds: a session that vanishes without a goodbye leaves its room after this.
    #[arg(long, default_value_t = 15_000)]
    pub wt_idle_timeout_ms: u64,

    /// Receive buffer of the WebTransport UDP socket (SO_RCVBUF), in bytes: datagrams that arrive while the server
    /// is busy wait here instead of being dropped by the kernel. Linux caps it at `net.core.rmem_max`; the log and
    /// `driftdb_udp_receive_buffer_bytes` show what the kernel granted, `driftdb_udp_receive_drops` what it dropped.
    #[arg(long, default_value_t = 8 << 20)]
    pub udp_receive_buffer_bytes: usize,

    /// PEM certificate chain for WebTransport (with `--tls-key`). Without it the server makes a self-signed
    /// certificate, renews it every few days and publishes its hash in room results.
    #[arg(long, requires = "tls_key", env = "DRIFTDB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert", env = "DRIFTDB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Extra host names (or IP addresses) the self-signed certificate covers besides localhost, 127.0.0.1 and ::1.
    #[arg(long = "host-name", value_delimiter = ',')]
    #[serde(rename = "host-name")]
    pub host_names: Vec<String>,

    /// How the self-signed certificate is renewed (tests shorten it).
    #[arg(skip)]
    #[serde(skip)]
    pub self_signed: SelfSignedPolicy,

    /// Where rooms are kept: `embedded` stores them in `--data-dir`, so they survive a restart or a crash;
    /// `memory` keeps them in RAM only (a restart loses every room).
    #[arg(long, value_enum, default_value = "embedded", env = "DRIFTDB_STORAGE")]
    pub storage: StorageKind,

    /// Directory of the embedded store, created if missing (relative paths start where the server runs).
    #[arg(long, default_value = "driftdb-data", env = "DRIFTDB_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Bound on stored writes waiting for the disk, in bytes; beyond it stored writes get an `error` (relays
    /// still flow).
    #[arg(long, default_value_t = 64 << 20)]
    pub storage_queue_bytes: usize,

    #[command(flatten)]
    #[serde(flatten)]
    pub limits: LimitsConfig,

    #[command(flatten)]
    #[serde(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    #[serde(flatten)]
    pub cluster: ClusterConfig,
}

/// Joining a cluster of nodes through NATS with JetStream (see `docs/cluster.md`). Off by default: without
/// `--cluster` the server runs alone, as before.
#[derive(Args, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[command(next_help_heading = "Cluster")]
pub struct ClusterConfig {
    /// NATS server with JetStream (`nats://HOST:4222`) through which the nodes find each other and own rooms.
    #[arg(long = "cluster", env = "DRIFTDB_CLUSTER")]
    #[serde(rename = "cluster")]
    pub nats_url: Option<String>,

    /// This node's id in the cluster (1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'); random at each start by
    /// default.
    #[arg(long, env = "DRIFTDB_NODE_ID")]
    pub node_id: Option<String>,
}

/// Token checking and protected room creation (see `docs/auth.md`). All off by default.
#[derive(Args, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[command(next_help_heading = "Auth")]
pub struct AuthConfig {
    /// A key that signs room tokens, as a JSON Web Key file with a `kid` (repeatable, to rotate keys): an Ed25519
    /// public key (EdDSA) or an HS256 secret. With any, every connection and HTTP send needs a valid token.
    #[arg(long = "auth-key-file")]
    #[serde(rename = "auth-key-file")]
    pub auth_key_files: Vec<PathBuf>,

    /// The `aud` tokens must carry (tokens without it are refused).
    #[arg(long)]
    pub auth_audience: Option<String>,

    /// A file holding the admin token: `POST /new` and creating a room by its id then need it as a bearer token.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
}

/// Limits that protect the server and the other clients from one misbehaving client. Each has its own close code
/// or error text (see `close.rs` and the README's table); 0 turns a rate limit off.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[command(next_help_heading = "Limits")]
pub struct LimitsConfig {
    /// Messages per second a connection may send on average (token bucket); beyond it the connection is closed with
    /// 4002.
    #[arg(long, default_value_t = 2_000)]
    pub max_messages_per_second: u32,

    /// Messages a connection may send in one burst above its average rate.
    #[arg(long, default_value_t = 10_000)]
    pub message_burst: u32,

    /// New connections per second from one IP address (WebSocket and WebTransport); beyond it they are closed with
    /// 4006.
    #[arg(long, default_value_t = 100)]
    pub max_connects_per_ip_per_second: u32,

    /// New connections one IP address may open in one burst above that rate.
    #[arg(long, default_value_t = 500)]
    pub connect_burst: u32,

    /// Rooms one IP address may create per second with `POST /new` (or `GET /room/{id}` of a new id); beyond it
    /// the request gets 429.
    #[arg(long, default_value_t = 10)]
    pub max_new_rooms_per_ip_per_second: u32,

    /// Rooms one IP address may create in one burst above that rate (generous: test suites and busy pages make
    /// rooms in bursts; the rate is what keeps one client from filling `--max-rooms` in seconds).
    #[arg(long, default_value_t = 1_000)]
    pub new_room_burst: u32,

    /// Keys a room may hold; a push or get naming one more gets an `error`.
    #[arg(long, default_value_t = 10_000)]
    pub max_keys_per_room: usize,

    /// Bytes a room may store (values, keys and per-entry overhead); an append or replace beyond it gets an `error`.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_room_bytes: usize,

    /// Connections in one room; the next is closed with 4003.
    #[arg(long, default_value_t = 1_000)]
    pub max_connections_per_room: usize,

    /// Connections in the whole server; the next is closed with 4004.
    #[arg(long, default_value_t = 20_000)]
    pub max_connections: usize,

    /// Rooms in the whole server; creating one more gets 503 (HTTP) or close 4005 (connect).
    #[arg(long, default_value_t = 100_000)]
    pub max_rooms: usize,

    /// Milliseconds without receiving anything (the server pings at a third of it) before a WebSocket is closed
    /// with 4007.
    #[arg(long, default_value_t = 60_000)]
    pub idle_timeout_ms: u64,

    /// Open HTTP connections (WebSockets count until they upgrade); the next one is answered 503 and closed.
    #[arg(long, default_value_t = 4_096)]
    pub max_http_connections: usize,

    /// Milliseconds a client has to send a request's headers (idle keep-alive connections close after it too); a
    /// WebTransport client has as long from its QUIC handshake to its CONNECT request's headers.
    #[arg(long, default_value_t = 10_000)]
    pub http_header_timeout_ms: u64,

    /// Milliseconds a client has to send a request's whole body; a slower one gets 408.
    #[arg(long, default_value_t = 30_000)]
    pub http_body_timeout_ms: u64,

    /// Milliseconds a peer may accept no bytes of a reply (HTTP or WebSocket) before its connection is dropped.
    #[arg(long, default_value_t = 30_000)]
    pub write_stall_timeout_ms: u64,

    /// Seconds a room with no connection and no write is kept before it is removed and its memory freed.
    #[arg(long, default_value_t = 24 * 60 * 60)]
    pub room_ttl_secs: u64,

    /// Origins allowed to connect (repeatable), e.g. `https://app.example.com` or `https://*.example.com`.
    /// Without any, every origin is allowed.
    #[arg(long = "allowed-origin")]
    #[serde(rename = "allowed-origin")]
    pub allowed_origins: Vec<String>,

    /// Refuse requests that carry no `Origin` header (non-browser clients). Off by default.
    #[arg(long)]
    pub require_origin: bool,
}

impl LimitsConfig {
    /// The limits the engine enforces.
    pub fn engine_limits(&self) -> Limits {
        Limits {
            max_keys_per_room: self.max_keys_per_room,
            max_room_bytes: self.max_room_bytes,
            max_connections_per_room: self.max_connections_per_room,
            max_connections: self.max_connections,
            max_rooms: self.max_rooms,
            room_ttl: Duration::from_secs(self.room_ttl_secs),
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn http_body_timeout(&self) -> Duration {
        Duration::from_millis(self.http_body_timeout_ms)
    }

    /// The HTTP listener's bounds.
    pub fn http_bounds(&self) -> crate::http::HttpBounds {
        crate::http::HttpBounds {
            max_connections: self.max_http_connections,
            header_timeout: Duration::from_millis(self.http_header_timeout_ms),
            write_stall_timeout: Duration::from_millis(self.write_stall_timeout_ms),
        }
    }
}

/// Where the demos are built to, relative to the repository.
const DEMOS_DIST: &str = "js/demos/dist";

impl ServerConfig {
    /// The directory served at `/`: `--static-dir`, else the built demos if they exist.
    pub fn resolved_static_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.static_dir {
            return Some(dir.clone());
        }
        // `cargo run` starts in the checkout; `target/{debug,release}/driftdb` is three levels below it.
        let from_binary =
            std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join(DEMOS_DIST)));
        [Some(PathBuf::from(DEMOS_DIST)), from_binary]
            .into_iter()
            .flatten()
            .find(|dir| dir.join("index.html").is_file())
    }

    /// Whether the WebTransport listener runs.
    pub fn webtransport_enabled(&self) -> bool {
        !self.no_webtransport
    }

    /// The QUIC idle timeout.
    pub fn wt_idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.wt_idle_timeout_ms)
    }
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
