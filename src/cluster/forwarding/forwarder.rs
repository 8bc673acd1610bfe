//! The forwarding side: a node a client reached for a room another node owns. It keeps the client's transport (its
//! framing, size limit, liveness and outbox bound) and passes messages to and from the owner, which decides
//! everything else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::Subscriber;
use futures_util::StreamExt;
use tracing::{Instrument, debug, warn};

use super::wire::{self, Down, Framer, Open, Opened, Reassembler, Up};
use crate::close::CloseReason;
use crate::cluster::Cluster;
use crate::driver::{ConnectionMetrics, Departure, Destination, Inbound, ReadEnd};
use crate::engine::{Outbox, RoomId};
use crate::outgoing::Outgoing;
use crate::protocol::postcard_envelope;

/// How long the owner may take to attach a forwarded connection.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a forwarder checks that the owner still lives (its heartbeats, see `membership`).
pub(super) const PEER_CHECK: Duration = Duration::from_secs(1);

/// A connection attached to its room on the owner node: what the [driver](crate::driver::relay) runs.
pub struct Forwarded {
    /// Where the owner's messages arrive, bounded like any connection's.
    pub outbox: Arc<Outbox>,
    pub upstream: Upstream,
}

/// Asks `owner` to attach a connection to `room`; a limit's refusal is its close reason, and an owner that does
/// not answer (or no longer owns the room) is [`CloseReason::GoingAway`]: the client reconnects and is routed again.
pub async fn open(
    cluster: &Arc<Cluster>,
    owner: &str,
    room: &RoomId,
    token: Option<String>,
    debug: bool,
    metrics: Arc<ConnectionMetrics>,
    outbox_bytes: usize,
) -> Result<Forwarded, CloseReason> {
    let client = cluster.client();
    let session = super::session_id();
    // Subscribed before asking, so that nothing the owner sends once attached can come before the subscription.
    let down = client.subscribe(wire::down_subject(&session)).await.map_err(|error| {
        warn!(%error, "cannot forward: NATS refused the subscription");
        CloseReason::GoingAway
    })?;
    let request = Open {
        room: room.to_string(),
        session: session.clone(),
        forwarder: cluster.node_id().to_owned(),
        token,
        debug,
    };
    let asked = client.request(wire::open_subject(owner), wire::encode(&request).into());
    let answer = match tokio::time::timeout(OPEN_TIMEOUT, asked).await {
        Ok(Ok(reply)) => wire::decode::<Opened>(&reply.payload).map_err(|error| error.to_string()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer in {OPEN_TIMEOUT:?}")),
    };
    match answer {
        Ok(Opened::Attached) => {}
        Ok(Opened::Refused(code)) => return Err(CloseReason::from_code(code).unwrap_or(CloseReason::GoingAway)),
        Ok(Opened::NotOwner) => {
            debug!(owner, "the owner gave the room up: the client reconnects and is routed again");
            return Err(CloseReason::GoingAway);
        }
        Ok(Opened::Unauthorized(why)) => {
            warn!(owner, %why, "the owner refused a token this node accepted: give every node the same auth keys");
            return Err(CloseReason::GoingAway);
        }
        Err(error) => {
            warn!(owner, %error, "the owner did not attach the connection");
            return Err(CloseReason::GoingAway);
        }
    }
    let outbox = Arc::new(Outbox::new(outbox_bytes));
    let pump = DownPump { outbox: outbox.clone(), cluster: cluster.clone(), owner: owner.to_owned() };
    let pump = tokio::spawn(pump.run(down).in_current_span());
    let upstream = Upstream {
        cluster: cluster.clone(),
        subject: wire::up_subject(&session),
        framer: Mutex::new(Framer::default()),
        left: AtomicBool::new(false),
        pump,
        metrics,
    };
    Ok(Forwarded { outbox, upstream })
}

/// The client's side of a forwarded connection: what the client sends goes to the owner.
pub struct Upstream {
    cluster: Arc<Cluster>,
    subject: String,
    framer: Mutex<Framer>,
    /// Whether the owner has been told the client left.
    left: AtomicBool,
    pump: tokio::task::JoinHandle<()>,
    metrics: Arc<ConnectionMetrics>,
}

impl Upstream {
    /// Publishes `event`; frames are numbered under the lock and published in that order (the reading loop sends
    /// one event at a time).
    async fn send(&self, event: &Up) -> Result<(), async_nats::PublishError> {
        let frames = self.frames(event);
        let client = self.cluster.client();
        for frame in frames {
            client.publish(self.subject.clone(), frame).await?;
        }
        Ok(())
    }

    fn frames(&self, event: &Up) -> Vec<bytes::Bytes> {
        let max_payload = self.cluster.max_payload();
        self.framer.lock().expect("framer lock poisoned").frames(&wire::encode(event), max_payload)
    }

    async fn leave(&self, departure: Departure) {
        self.left.store(true, Ordering::Relaxed);
        let _ = self.send(&Up::Left(departure)).await;
    }
}

impl Destination for Upstream {
    async fn receive(&self, inbound: Inbound) -> Result<(), ReadEnd> {
        let event = match inbound {
            Inbound::Message { decoded: Ok(message), len } => {
                Up::Message { envelope: postcard_envelope::encode_client(&message).into(), len: saturate(len) }
            }
            Inbound::Message { decoded: Err(error), len } => Up::Invalid { error, len: saturate(len) },
            Inbound::Noise => Up::Noise,
            Inbound::Alive => return Ok(()),
            Inbound::Left(departure) => {
                self.leave(departure).await;
                return Err(ReadEnd::Peer(departure));
            }
            Inbound::Broke(reason) => {
                self.leave(Departure::Gone).await;
                return Err(ReadEnd::Server(reason));
            }
        };
        self.send(&event).await.map_err(|error| {
            warn!(%error, "cannot forward to the owner");
            ReadEnd::Server(CloseReason::GoingAway)
        })
    }

    fn metrics(&self) -> Arc<ConnectionMetrics> {
        self.metrics.clone()
    }
}

impl Drop for Upstream {
    /// A connection that ends for a reason of this side (the owner's close, the outbox's bound, shutdown) still
    /// tells the owner, so the room forgets it now rather than when this node stops heartbeating.
    fn drop(&mut self) {
        self.pump.abort();
        if self.left.load(Ordering::Relaxed) {
            return;
        }
        let frames = self.frames(&Up::Left(Departure::Gone));
        let (client, subject) = (self.cluster.client().clone(), self.subject.clone());
        tokio::spawn(async move {
            for frame in frames {
                let _ = client.publish(subject.clone(), frame).await;
            }
        });
    }
}

fn saturate(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Moves what the owner sends into the connection's outbox, until the owner closes the connection, goes silent
/// (it left the cluster) or a frame is lost.
struct DownPump {
    outbox: Arc<Outbox>,
    cluster: Arc<Cluster>,
    owner: String,
}

impl DownPump {
    async fn run(self, mut down: Subscriber) {
        let mut reassembler = Reassembler::default();
        let mut check = tokio::time::interval(PEER_CHECK);
        let reason = loop {
            let frame = tokio::select! {
                () = self.outbox.wait_closed() => return,
                frame = down.next() => frame,
                _ = check.tick() => {
                    if self.cluster.is_live(&self.owner) { continue }
                    warn!(owner = %self.owner, "the room's owner left the cluster: the client reconnects");
                    break CloseReason::GoingAway;
                }
            };
            let Some(frame) = frame else { break CloseReason::GoingAway };
            match reassembler.push(&frame.payload) {
                Ok(None) => {}
                Ok(Some(event)) => {
                    if let Err(reason) = self.deliver(&event) {
                        break reason;
                    }
                }
                Err(error) => {
                    warn!(%error, "lost part of the owner's messages: the client reconnects and resumes");
                    break CloseReason::GoingAway;
                }
            }
        };
        self.outbox.close(reason);
    }

    /// Queues one event's messages; `Err` with the reason the connection ends.
    fn deliver(&self, event: &[u8]) -> Result<(), CloseReason> {
        match wire::decode::<Down>(event) {
            Ok(Down::Messages(messages)) => {
                for message in messages {
                    let message = postcard_envelope::decode_server(&message).map_err(|error| {
                        warn!(%error, "the owner sent a message this node cannot read");
                        CloseReason::GoingAway
                    })?;
                    self.outbox.push(Outgoing::new(message));
                }
                Ok(())
            }
            Ok(Down::Close(code)) => Err(CloseReason::from_code(code).unwrap_or(CloseReason::GoingAway)),
            Err(error) => {
                warn!(%error, "malformed event from the owner");
                Err(CloseReason::GoingAway)
            }
        }
    }
}
