//! Prometheus metrics, served at `GET /metrics` in the OpenMetrics text format.
//!
//! Hot paths never look a label set up: a connection resolves its counters once when it opens
//! ([`Metrics::connection`]) and then only does atomic adds, once per message received and once per batch written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use std::fmt::Write;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::close::CloseReason;
use crate::cluster::Cluster;
use crate::engine::Rooms;
use crate::protocol::ClientMessage;
use crate::storage::DiskJournal;

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Transport {
    Websocket,
    Webtransport,
    Http,
    /// A connection another node of the cluster forwards to this one, the room's owner.
    Forwarded,
}

/// What a received message was, for `driftdb_messages_received_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum MessageKind {
    Push,
    Get,
    Unsubscribe,
    Ping,
    Goodbye,
    /// An in-band token refresh.
    Auth,
    /// Could not be decoded (answered with an `error`).
    Invalid,
}

impl MessageKind {
    const ALL: [MessageKind; 7] = [
        MessageKind::Push,
        MessageKind::Get,
        MessageKind::Unsubscribe,
        MessageKind::Ping,
        MessageKind::Goodbye,
        MessageKind::Auth,
        MessageKind::Invalid,
    ];

    pub fn of<E>(decoded: &Result<ClientMessage, E>) -> Self {
        match decoded {
            Ok(ClientMessage::Push { .. }) => MessageKind::Push,
            Ok(ClientMessage::Get { .. }) => MessageKind::Get,
            Ok(ClientMessage::Unsubscribe { .. }) => MessageKind::Unsubscribe,
            Ok(ClientMessage::Ping { .. }) => MessageKind::Ping,
            Ok(ClientMessage::Goodbye) => MessageKind::Goodbye,
            Ok(ClientMessage::Auth { .. }) => MessageKind::Auth,
            Err(_) => MessageKind::Invalid,
        }
    }
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::Webtransport => "webtransport",
            Transport::Http => "http",
            Transport::Forwarded => "forwarded",
        }
    }
}

impl MessageKind {
    fn as_str(self) -> &'static str {
        match self {
            MessageKind::Push => "push",
            MessageKind::Get => "get",
            MessageKind::Unsubscribe => "unsubscribe",
            MessageKind::Ping => "ping",
            MessageKind::Goodbye => "goodbye",
            MessageKind::Auth => "auth",
            MessageKind::Invalid => "invalid",
        }
    }
}

// Label values in snake case, as Prometheus convention has them (the derive would write the variant names).
impl EncodeLabelValue for Transport {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

impl EncodeLabelValue for MessageKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: Transport,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    transport: Transport,
    kind: MessageKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    reason: String,
    code: u16,
}

/// Every metric of the server.
pub struct Metrics {
    registry: Registry,
    rooms: Gauge,
    rooms_allocated: Gauge,
    connections: Family<TransportLabels, Gauge>,
    messages_in: Family<MessageLabels, Counter>,
    messages_out: Family<TransportLabels, Counter>,
    bytes_in: Family<TransportLabels, Counter>,
    bytes_out: Family<TransportLabels, Counter>,
    volatile_dropped: Counter,
    closes: Family<CloseLabels, Counter>,
    batch_messages: Histogram,
    datagram_bytes: Histogram,
    storage: StorageMetrics,
    cluster: Option<ClusterMetrics>,
    udp: Option<UdpMetrics>,
}

/// The WebTransport sockets, as the kernel reports them (registered only with WebTransport on).
struct UdpMetrics {
    port: u16,
    receive_buffer: Gauge,
    drops: Counter,
}

/// A cluster node's view, read from it at each scrape (registered only with `--cluster`).
struct ClusterMetrics {
    cluster: Arc<Cluster>,
    connected: Gauge,
    nodes: Gauge,
    leases: Gauge,
}

/// The durable store's health, read from it at each scrape.
#[derive(Default)]
struct StorageMetrics {
    journal: OnceLock<Arc<DiskJournal>>,
    healthy: Gauge,
    queued_bytes: Gauge,
    committed_records: Counter,
    commits: Counter,
    failed_commits: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("driftdb"),
            rooms: Gauge::default(),
            rooms_allocated: Gauge::default(),
            connections: Family::default(),
            messages_in: Family::default(),
            messages_out: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            volatile_dropped: Counter::default(),
            closes: Family::default(),
            batch_messages: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            datagram_bytes: Histogram::new(exponential_buckets(32.0, 2.0, 8)),
            storage: StorageMetrics::default(),
            cluster: None,
            udp: None,
        };
        let r = &mut metrics.registry;
        r.register("rooms", "Live rooms", metrics.rooms.clone());
        r.register(
            "rooms_allocated",
            "Room objects in memory; above driftdb_rooms for long means leaked rooms",
            metrics.rooms_allocated.clone(),
        );
        r.register("connections", "Open connections by transport", metrics.connections.clone());
        r.register("messages_received", "Client messages received by kind", metrics.messages_in.clone());
        r.register("messages_sent", "Server messages written to clients", metrics.messages_out.clone());
        r.register("bytes_received", "Bytes of client messages received", metrics.bytes_in.clone());
        r.register("bytes_sent", "Bytes of server messages written", metrics.bytes_out.clone());
        r.register(
            "volatile_dropped",
            "Volatile messages dropped for readers that were behind",
            metrics.volatile_dropped.clone(),
        );
        r.register("closes", "Connections closed by the server, by reason", metrics.closes.clone());
        r.register(
            "outbox_batch_messages",
            "Messages per writer batch: how deep outgoing queues get",
            metrics.batch_messages.clone(),
        );
        r.register("datagram_bytes", "Sizes of WebTransport datagrams sent", metrics.datagram_bytes.clone());
        let s = &metrics.storage;
        r.register(
            "storage_healthy",
            "1 while the store commits; 0 while stored writes are refused (the log says why)",
            s.healthy.clone(),
        );
        r.register("storage_queued_bytes", "Bytes of stored writes waiting for the disk", s.queued_bytes.clone());
        r.register("storage_records", "Records made durable", s.committed_records.clone());
        r.register("storage_commits", "Group commits made durable", s.commits.clone());
        r.register("storage_failed_commits", "Group commits the disk refused", s.failed_commits.clone());
        metrics
    }

    /// Reports this store's health in `/metrics` (memory storage has none).
    pub fn watch_storage(&self, journal: Arc<DiskJournal>) {
        let _ = self.storage.journal.set(journal);
    }

    /// Reports this node's cluster membership in `/metrics`.
    pub fn watch_cluster(&mut self, cluster: Arc<Cluster>) {
        let c =
            ClusterMetrics { cluster, connected: Gauge::default(), nodes: Gauge::default(), leases: Gauge::default() };
        let r = &mut self.registry;
        r.register(
            "cluster_connected",
            "1 while NATS is reachable; 0 while this node takes no new rooms (it still serves its own)",
            c.connected.clone(),
        );
        r.register("cluster_nodes", "Live nodes this node sees, itself included", c.nodes.clone());
        r.register("cluster_leases", "Room leases this node holds (rooms it owns)", c.leases.clone());
        self.cluster = Some(c);
    }

    /// Reports the WebTransport sockets on `port` in `/metrics`: their receive buffer and the datagrams the kernel
    /// dropped at them.
    pub fn watch_udp(&mut self, port: u16, receive_buffer: usize) {
        let u = UdpMetrics { port, receive_buffer: Gauge::default(), drops: Counter::default() };
        u.receive_buffer.set(receive_buffer as i64);
        let r = &mut self.registry;
        r.register(
            "udp_receive_buffer_bytes",
            "Receive buffer of the WebTransport UDP sockets as the kernel granted it (--udp-receive-buffer-bytes)",
            u.receive_buffer.clone(),
        );
        r.register(
            "udp_receive_drops",
            "Datagrams the kernel dropped at the WebTransport sockets because their receive buffer was full",
            u.drops.clone(),
        );
        self.udp = Some(u);
    }

    /// Counters for one connection of `transport`; counts it open until dropped.
    pub fn connection(self: &Arc<Self>, transport: Transport) -> ConnectionMetrics {
        let labels = TransportLabels { transport };
        let open = self.connections.get_or_create(&labels).clone();
        open.inc();
        ConnectionMetrics {
            open,
            received: MessageKind::ALL
                .map(|kind| self.messages_in.get_or_create(&MessageLabels { transport, kind }).clone()),
            bytes_in: self.bytes_in.get_or_create(&labels).clone(),
            messages_out: self.messages_out.get_or_create(&labels).clone(),
            bytes_out: self.bytes_out.get_or_create(&labels).clone(),
            metrics: self.clone(),
            volatile_dropped_seen: AtomicU64::new(0),
        }
    }

    /// Counts a message received over HTTP.
    pub fn http_message<E>(&self, decoded: &Result<ClientMessage, E>, bytes: usize) {
        let transport = Transport::Http;
        self.messages_in.get_or_create(&MessageLabels { transport, kind: MessageKind::of(decoded) }).inc();
        self.bytes_in.get_or_create(&TransportLabels { transport }).inc_by(bytes as u64);
    }

    /// Counts a connection the server closed (or refused) for `reason`.
    pub fn closed(&self, reason: CloseReason) {
        self.closes.get_or_create(&CloseLabels { reason: reason.name().to_owned(), code: reason.code() }).inc();
    }

    /// Records the size of a datagram sent.
    pub fn datagram_sent(&self, bytes: usize) {
        self.datagram_bytes.observe(bytes as f64);
    }

    /// The OpenMetrics text exposition, with the room gauges refreshed.
    pub fn render(&self, rooms: &Rooms) -> String {
        self.rooms.set(rooms.len() as i64);
        self.rooms_allocated.set(rooms.allocated_rooms() as i64);
        if let Some(journal) = self.storage.journal.get() {
            let status = journal.status();
            let s = &self.storage;
            s.healthy.set(i64::from(status.fault.is_none()));
            s.queued_bytes.set(status.queued_bytes as i64);
            // Counters only go up: add what is new since the last scrape.
            s.committed_records.inc_by(status.committed_records.saturating_sub(s.committed_records.get()));
            s.commits.inc_by(status.commits.saturating_sub(s.commits.get()));
            s.failed_commits.inc_by(status.failed_commits.saturating_sub(s.failed_commits.get()));
        }
        if let Some(u) = &self.udp
            && let Ok(drops) = crate::webtransport::udp_stats::receive_drops(u.port)
        {
            u.drops.inc_by(drops.saturating_sub(u.drops.get()));
        }
        if let Some(c) = &self.cluster {
            let status = c.cluster.status();
            c.connected.set(i64::from(status.connected));
            c.nodes.set(status.live_nodes as i64);
            c.leases.set(status.leases as i64);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// One connection's pre-resolved counters.
pub struct ConnectionMetrics {
    open: Gauge,
    received: [Counter; 7],
    bytes_in: Counter,
    messages_out: Counter,
    bytes_out: Counter,
    metrics: Arc<Metrics>,
    volatile_dropped_seen: AtomicU64,
}

impl ConnectionMetrics {
    pub fn received(&self, kind: MessageKind, bytes: usize) {
        self.received[kind as usize].inc();
        self.bytes_in.inc_by(bytes as u64);
    }

    /// Counts a written batch; `volatile_dropped` is the outbox's running total of dropped volatile messages.
    pub fn sent_batch(&self, messages: usize, bytes: usize, volatile_dropped: u64) {
        self.messages_out.inc_by(messages as u64);
        self.bytes_out.inc_by(bytes as u64);
        self.metrics.batch_messages.observe(messages as f64);
        let seen = self.volatile_dropped_seen.swap(volatile_dropped, Ordering::Relaxed);
        self.metrics.volatile_dropped.inc_by(volatile_dropped.saturating_sub(seen));
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

impl Drop for ConnectionMetrics {
    fn drop(&mut self) {
        self.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_counted() {
        let metrics = Arc::new(Metrics::new());
        let conn = metrics.connection(Transport::Websocket);
        conn.received(MessageKind::Push, 10);
        conn.sent_batch(3, 100, 2);
        metrics.closed(CloseReason::SlowConsumer);
        let rooms = Rooms::default();
        rooms.create().unwrap();
        let text = metrics.render(&rooms);
        assert!(text.contains("driftdb_rooms 1"), "{text}");
        assert!(text.contains("driftdb_rooms_allocated 1"), "{text}");
        assert!(text.contains(r#"driftdb_connections{transport="websocket"} 1"#), "{text}");
        assert!(text.contains(r#"driftdb_messages_received_total{transport="websocket",kind="push"} 1"#), "{text}");
        assert!(text.contains(r#"driftdb_messages_sent_total{transport="websocket"} 3"#), "{text}");
        assert!(text.contains("driftdb_volatile_dropped_total 2"), "{text}");
        assert!(text.contains(r#"driftdb_closes_total{reason="slow_consumer",code="4001"} 1"#), "{text}");
        drop(conn);
        assert!(metrics.render(&rooms).contains(r#"driftdb_connections{transport="websocket"} 0"#));
    }
}
