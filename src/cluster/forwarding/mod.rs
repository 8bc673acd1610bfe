//! Forwarding: a connection or an HTTP send that reaches a node which does not own its room still works. That node
//! (the *forwarder*) passes it to the owner over NATS, in order, and the owner runs it like a local one.
//!
//! ```text
//!  client ──ws/wt──▶ forwarder ──driftdb.cluster.fwd.S.up───▶ owner ──▶ room
//!  client ◀─ws/wt─── forwarder ◀─driftdb.cluster.fwd.S.down── owner ◀──
//! ```
//!
//! - [`forwarder`]: opens the session at the owner (`driftdb.cluster.open.OWNER`), forwards what the client
//!   sends, and queues what the owner sends in the connection's own outbox, so its bound and its close codes are
//!   the usual ones;
//! - [`owner`]: attaches forwarded sessions to their rooms and runs them with the connection driver over NATS;
//! - [`wire`]: the events, their numbering (a lost frame ends the connection, which the client resumes) and their
//!   cutting into frames within NATS's payload limit.
//!
//! Each side watches the other's heartbeat in the membership bucket: when either node leaves the cluster, its
//! forwarded connections end (the client's with 1001, so it reconnects and is routed to the room's new owner).

pub mod forwarder;
pub mod owner;
pub mod wire;

use std::time::Duration;

use futures_util::StreamExt;

pub use forwarder::{Forwarded, Upstream, open};
use wire::{Reassembler, SendReply, SendRequest};

use super::{Cluster, ClusterError};
use crate::engine::RoomId;
use crate::protocol::{ClientMessage, ServerMessage, postcard_envelope};

/// How long a forwarded HTTP send may take, round trip.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A fresh subject token for one forwarded session.
fn session_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    hex::encode(bytes)
}

/// How a forwarded HTTP send failed: the owner's HTTP status and message, or no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{1}")]
    Refused(u16, String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Sends one HTTP-sent message to the room's owner and returns its direct reply.
pub async fn send(
    cluster: &Cluster,
    owner: &str,
    room: &RoomId,
    message: &ClientMessage,
) -> Result<Option<ServerMessage>, SendError> {
    let client = cluster.client();
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.map_err(ClusterError::nats)?;
    let request = SendRequest { room: room.to_string(), envelope: postcard_envelope::encode_client(message).into() };
    client
        .publish_with_reply(wire::send_subject(owner), inbox, wire::encode(&request).into())
        .await
        .map_err(ClusterError::nats)?;
    let reply = tokio::time::timeout(SEND_TIMEOUT, async {
        let mut reassembler = Reassembler::default();
        while let Some(frame) = replies.next().await {
            if let Some(event) = reassembler.push(&frame.payload).map_err(ClusterError::nats)? {
                return Ok(event);
            }
        }
        Err(ClusterError::Nats("the reply subscription ended".into()))
    })
    .await
    .map_err(|_| ClusterError::Nats(format!("node {owner} did not answer the send in {SEND_TIMEOUT:?}")))??;
    let reply: SendReply = wire::decode(&reply).map_err(ClusterError::nats)?;
    match reply {
        Ok(Some(message)) => Ok(Some(postcard_envelope::decode_server(&message).map_err(ClusterError::nats)?)),
        Ok(None) => Ok(None),
        Err((status, message)) => Err(SendError::Refused(status, message)),
    }
}
