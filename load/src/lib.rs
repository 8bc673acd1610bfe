//! `driftdb-load`: drives a running DriftDB server on this machine over WebSocket (JSON or CBOR) or WebTransport
//! (postcard, datagrams for volatile relays) and reports delivery, latency and, given the server's pid, its CPU time
//! and memory. See `docs/benchmarks.md` for the method and the figures.
//!
//! Scenarios: [`Scenario::Fanout`] (one publisher → N subscribers of one key), [`Scenario::Rooms`] (R rooms × K
//! clients sending cursor-like volatile relays), [`Scenario::Append`] (reliable writes, then a replay check) and
//! [`Scenario::Idle`] (C subscribed connections, for memory per connection) and [`Scenario::Scale`] (many connections
//! in many rooms, a fraction sending). [`floor`] is the cheapest server for the relay scenarios, and
//! [`side_by_side`] runs one scenario against several servers started from commands, for one table.

pub mod client;
pub mod floor;
pub mod limits;
pub mod procstat;
pub mod progress;
pub mod report;
mod scenarios;
pub mod side_by_side;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use url::Url;

pub use client::Transport;
pub use floor::Floor;
pub use report::Report;

/// Options of one run.
#[derive(Clone, Debug, Parser)]
#[command(name = "driftdb-load", version, about = "Load generator for a DriftDB server on this machine")]
pub struct Options {
    /// The server's HTTP base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: Url,

    /// Wire to speak.
    #[arg(long, value_enum, default_value = "ws-json")]
    pub transport: Transport,

    /// Seconds of sending (idle: of holding the connections).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,

    /// Seconds to wait after sending for messages still in flight.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,

    /// The server's process id: its CPU seconds and RSS are read from /proc during the run.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Connections opened at once during setup.
    #[arg(long, default_value_t = 32)]
    pub connect_concurrency: usize,

    /// Print only the JSON object (default: the JSON object, then a Markdown header and row).
    #[arg(long)]
    pub json_only: bool,

    /// Side by side: `NAME=COMMAND` of a DriftDB-protocol server to start for the run, `{port}` in it replaced by a
    /// free port (then `--url` and `--server-pid` are set from it). Repeat it to run the scenario once against each
    /// server in turn; `floor` alone (no command) is this tool's own floor server. Each row then also reports its
    /// CPU per delivery as a multiple of the floor's in the same sitting.
    #[arg(long = "server", value_name = "NAME=COMMAND")]
    pub servers: Vec<String>,

    /// Cluster: open every WebSocket through the node at this URL, for rooms owned by another node (new rooms are
    /// made through `--url` until one is), so that every connection is forwarded over NATS.
    #[arg(long, value_name = "URL", conflicts_with = "to_owner")]
    pub through: Option<Url>,

    /// Cluster: open every WebSocket at the node that owns the room (its room info's `socket_url`), not `--url`.
    #[arg(long)]
    pub to_owner: bool,

    /// WebTransport sessions that share one QUIC endpoint (UDP socket) in the tool. 1 (the default) gives each its
    /// own, as browsers have; more saves the tool's file descriptors (`scale --wt-connections` beside 18,000
    /// WebSockets does not fit 20,000 otherwise).
    #[arg(long, default_value_t = 1)]
    pub wt_sessions_per_endpoint: usize,

    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Clone, Debug, Subcommand)]
pub enum Scenario {
    /// One publisher at a set rate to N subscribers of one key.
    Fanout(FanoutArgs),
    /// R rooms × K clients, each sending cursor-like volatile relays at H Hz to its room.
    Rooms(RoomsArgs),
    /// Reliable appends from W writers to one key, then a replay check: every write stored once, in order.
    Append(AppendArgs),
    /// C subscribed, silent connections: memory per connection.
    Idle(IdleArgs),
    /// Many connections in many rooms, a fraction of them sending a volatile cursor: delivery, RSS, CPU, p99 at scale.
    Scale(ScaleArgs),
    /// Not a scenario: run the floor server (see `floor`) on `--port` until killed.
    FloorServer(FloorServerArgs),
}

#[derive(Clone, Debug, Args)]
pub struct ScaleArgs {
    /// Connections of `--transport`, spread evenly over the rooms.
    #[arg(long, default_value_t = 20_000)]
    pub connections: usize,
    /// WebTransport sessions besides them, in the same rooms (spread evenly too; `--transport` must then be a
    /// WebSocket one): both kinds of client in one run, with a delivery breakdown per transport.
    #[arg(long, default_value_t = 0)]
    pub wt_connections: usize,
    #[arg(long, default_value_t = 1_000)]
    pub rooms: usize,
    /// Percentage of the connections (of each transport, of each room) that send a cursor.
    #[arg(long, default_value_t = 10.0)]
    pub senders_percent: f64,
    /// Cursor relays per second from each sender.
    #[arg(long, default_value_t = 10.0)]
    pub hz: f64,
    /// Percentage of each sender's messages sent as reliable relays instead of volatile ones (every k-th message),
    /// reported apart: reliable ones must all arrive, volatile ones may be dropped.
    #[arg(long, default_value_t = 0.0)]
    pub reliable_percent: f64,
}

#[derive(Clone, Debug, Args)]
pub struct FloorServerArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// TCP (HTTP + WebSocket) and UDP port; 0 picks a free one. The address is printed on stdout.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

#[derive(Clone, Debug, Args)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 50)]
    pub subscribers: usize,
    /// Messages per second from the publisher.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Send volatile relays (over WebTransport: datagrams) instead of reliable ones.
    #[arg(long)]
    pub volatile: bool,
}

#[derive(Clone, Debug, Args)]
pub struct RoomsArgs {
    #[arg(long, default_value_t = 50)]
    pub rooms: usize,
    /// Clients per room; every client subscribes to its room's cursor key and sends to it.
    #[arg(long, default_value_t = 5)]
    pub clients: usize,
    /// Relays per second from each client.
    #[arg(long, default_value_t = 30.0)]
    pub hz: f64,
    /// Send reliable relays instead of volatile ones.
    #[arg(long)]
    pub reliable: bool,
    /// Every client sends on the same tick (game clients on a shared clock), instead of phases spread over a period.
    #[arg(long)]
    pub same_tick: bool,
}

#[derive(Clone, Debug, Args)]
pub struct AppendArgs {
    /// Writers; each subscribes to the key too, so every append is delivered to every writer.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Appends per second, all writers together.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Replace instead of append (shared state rather than a log): the replay check expects one entry, some
    /// writer's last write.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Clone, Debug, Args)]
pub struct IdleArgs {
    #[arg(long, default_value_t = 2000)]
    pub connections: usize,
    /// Connections per room (the server's default limit is 1,000 per room).
    #[arg(long, default_value_t = 500)]
    pub per_room: usize,
}

impl Options {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration.max(0.0))
    }

    pub fn drain(&self) -> Duration {
        Duration::from_secs_f64(self.drain.max(0.0))
    }

    /// The longest a whole run may take: sending, draining, and a setup allowance per connection.
    pub fn time_limit(&self) -> Duration {
        let connections = match &self.scenario {
            Scenario::Fanout(a) => a.subscribers + 1,
            Scenario::Rooms(a) => a.rooms * a.clients,
            Scenario::Append(a) => a.writers + 1,
            Scenario::Idle(a) => a.connections,
            Scenario::Scale(a) => a.connections + a.wt_connections,
            Scenario::FloorServer(_) => 0,
        };
        self.duration() + self.drain() + Duration::from_secs(30) + Duration::from_millis(20) * connections as u32
    }
}

/// Runs one scenario against the server, bounded by [`Options::time_limit`].
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let limit = options.time_limit();
    tokio::time::timeout(limit, scenarios::run(options))
        .await
        .map_err(|_| anyhow::anyhow!("the run took longer than its limit of {limit:?}"))?
}

impl Scenario {
    /// The scenario's name as the command line and the report spell it.
    pub fn name(&self) -> &'static str {
        scenarios::scenario_name(self)
    }
}
