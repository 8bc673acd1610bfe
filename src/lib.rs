//! DriftDB: a real-time key-value database for browser applications.
//!
//! One room engine ([`engine`]) served over WebSocket ([`websocket`]), WebTransport ([`webtransport`]) and HTTP
//! ([`http`]); both transports run through one connection [`driver`] with one [`context`]; messages and codecs in
//! [`protocol`].

pub mod admission;
pub mod auth;
pub mod close;
pub mod cluster;
pub mod config;
pub mod config_check;
pub mod config_file;
pub mod context;
pub mod driver;
pub mod embedded;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod outgoing;
pub use driftdb_protocol as protocol;
pub mod room_info;
pub mod room_threads;
pub mod server;
pub mod storage;
pub mod tls;
pub mod websocket;
pub mod webtransport;
