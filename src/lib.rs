//! DriftDB: a real-time key-value database for browser applications.
//!
//! One room engine ([`engine`]) served over WebSocket and HTTP ([`http`]); messages and codecs in [`protocol`].

pub mod close;
pub mod config;
pub mod engine;
pub mod http;
pub mod protocol;
pub mod server;
