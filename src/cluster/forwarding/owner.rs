//! The owner's side: connections and HTTP sends other nodes forward for rooms this node owns. A forwarded
//! connection is run by the same [driver](crate::driver::drive) as a local one, over NATS instead of a socket, so
//! it meets the same rates, grants and close codes.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Message, Subscriber};
use futures_util::StreamExt;
use tokio::time::{Interval, MissedTickBehavior};
use tracing::{Instrument, debug, info_span, warn};

use super::forwarder::PEER_CHECK;
use super::wire::{self, Down, FrameError, Framer, Open, Opened, Reassembler, SendReply, SendRequest, Up};
use crate::auth::Access;
use crate::close::CloseReason;
use crate::cluster::Cluster;
use crate::context::Context;
use crate::driver::{self, Closing, Departure, Inbound, Liveness, TransportReader, TransportWriter};
use crate::engine::{Outbox, RoomId};
use crate::metrics::Transport;
use crate::outgoing::Outgoing;
use crate::protocol::postcard_envelope;

/// Answers other nodes' forwarded connections and sends until shutdown.
pub async fn serve(context: Context, cluster: Arc<Cluster>) {
    let client = cluster.client();
    let subscribed = futures_util::try_join!(
        client.subscribe(wire::open_subject(cluster.node_id())),
        client.subscribe(wire::send_subject(cluster.node_id())),
    );
    let (mut opens, mut sends) = match subscribed {
        Ok(subscriptions) => subscriptions,
        Err(error) => return warn!(%error, "cannot take forwarded connections: other nodes cannot reach rooms here"),
    };
    loop {
        tokio::select! {
            () = context.shutdown.cancelled() => return,
            Some(message) = opens.next() => {
                context.connections.spawn(attach(context.clone(), cluster.clone(), message));
            }
            Some(message) = sends.next() => {
                context.connections.spawn(send(context.clone(), cluster.clone(), message));
            }
            else => return,
        }
    }
}

/// Attaches a forwarded connection to its room and runs it.
async fn attach(context: Context, cluster: Arc<Cluster>, message: Message) {
    let Some(reply) = message.reply else { return };
    let Ok(open) = wire::decode::<Open>(&message.payload) else { return warn!("malformed forwarded open") };
    let Ok(room) = RoomId::parse(&open.room) else { return warn!(room = open.room, "forwarded open of a bad room") };
    let span = info_span!("connection", %room, transport = "forwarded", forwarder = %open.forwarder);
    let attached = async {
        if !cluster.holds(&room) {
            return Err(Opened::NotOwner);
        }
        let grant = context
            .auth
            .admit(open.token.as_deref(), &room, open.debug)
            .map_err(|refusal| Opened::Unauthorized(refusal.to_string()))?;
        let outbox = Arc::new(Outbox::new(context.config.outbox_bytes));
        let member =
            context.rooms.connect(&room, outbox, open.debug).map_err(|reason| Opened::Refused(reason.code()))?;
        let up = cluster.client().subscribe(wire::up_subject(&open.session)).await.map_err(|error| {
            warn!(%error, "cannot subscribe to a forwarded connection");
            Opened::NotOwner
        })?;
        Ok((member, Access::new(context.auth.clone(), room.clone(), open.debug, grant), up))
    }
    .instrument(span.clone())
    .await;
    let answer = match &attached {
        Ok(_) => Opened::Attached,
        Err(refused) => refused.clone(),
    };
    if let Err(error) = cluster.client().publish(reply, wire::encode(&answer).into()).await {
        return debug!(%error, "could not answer a forwarded open");
    }
    let Ok((member, access, up)) = attached else { return };
    let reader = ForwardedReader::new(up, cluster.clone(), open.forwarder);
    let writer = ForwardedWriter { cluster, subject: wire::down_subject(&open.session), framer: Framer::default() };
    // The forwarder keeps the client's liveness; this side watches that the forwarder itself lives.
    let liveness = Liveness::default();
    driver::drive(&context, member, access, Transport::Forwarded, liveness, reader, writer).instrument(span).await;
}

/// Applies a forwarded HTTP send and answers with its reply.
async fn send(context: Context, cluster: Arc<Cluster>, message: Message) {
    let Some(reply) = message.reply else { return };
    let answer: SendReply = match wire::decode::<SendRequest>(&message.payload) {
        Ok(request) => apply_send(&context, &cluster, &request),
        Err(error) => Err((400, format!("malformed forwarded send: {error}"))),
    };
    let frames = Framer::default().frames(&wire::encode(&answer), cluster.max_payload());
    for frame in frames {
        if let Err(error) = cluster.client().publish(reply.clone(), frame).await {
            return debug!(%error, "could not answer a forwarded send");
        }
    }
}

fn apply_send(context: &Context, cluster: &Cluster, request: &SendRequest) -> SendReply {
    let room = RoomId::parse(&request.room).map_err(|error| (400, error.to_string()))?;
    if !cluster.holds(&room) {
        return Err((503, format!("room {room} moved to another node; try again")));
    }
    let message = postcard_envelope::decode_client(&request.envelope).map_err(|error| (400, error.to_string()))?;
    match context.rooms.handle_http(&room, message) {
        Ok(reply) => Ok(reply.map(|reply| reply.postcard().clone())),
        Err(error) => {
            let error = crate::http::send_refusal(error);
            Err((error.status.as_u16(), error.message))
        }
    }
}

/// What a forwarder sends for one connection, as the driver reads it.
struct ForwardedReader {
    up: Subscriber,
    reassembler: Reassembler,
    cluster: Arc<Cluster>,
    forwarder: String,
    check: Interval,
}

impl ForwardedReader {
    fn new(up: Subscriber, cluster: Arc<Cluster>, forwarder: String) -> Self {
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + PEER_CHECK, PEER_CHECK);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ForwardedReader { up, reassembler: Reassembler::default(), cluster, forwarder, check }
    }

    fn inbound(&mut self, frame: &[u8]) -> Option<Inbound> {
        let event = match self.reassembler.push(frame) {
            Ok(event) => event?,
            Err(error @ (FrameError::Gap { .. } | FrameError::Truncated)) => {
                warn!(%error, "lost part of a forwarded connection's messages: closing it, the client resumes");
                return Some(Inbound::Broke(CloseReason::GoingAway));
            }
        };
        Some(match wire::decode::<Up>(&event) {
            Ok(Up::Message { envelope, len }) => {
                Inbound::decoded(postcard_envelope::decode_client(&envelope), len as usize)
            }
            Ok(Up::Invalid { error, len }) => Inbound::Message { decoded: Err(error), len: len as usize },
            Ok(Up::Noise) => Inbound::Noise,
            Ok(Up::Left(departure)) => Inbound::Left(departure),
            Err(error) => {
                warn!(%error, "malformed event from a forwarder");
                Inbound::Broke(CloseReason::GoingAway)
            }
        })
    }
}

impl TransportReader for ForwardedReader {
    async fn next(&mut self) -> Inbound {
        loop {
            tokio::select! {
                frame = self.up.next() => match frame {
                    Some(frame) => if let Some(inbound) = self.inbound(&frame.payload) { return inbound },
                    None => return Inbound::Left(Departure::Gone),
                },
                _ = self.check.tick() => if !self.cluster.is_live(&self.forwarder) {
                    debug!(forwarder = %self.forwarder, "the forwarding node left the cluster");
                    return Inbound::Left(Departure::Gone);
                },
            }
        }
    }

    /// The forwarder closes its client on its own once told; there is nothing to wait for here.
    async fn until_closed(&mut self, _closed: Option<CloseReason>) {}
}

/// What the owner sends a forwarded connection: each batch as one event, framed within NATS's payload limit.
struct ForwardedWriter {
    cluster: Arc<Cluster>,
    subject: String,
    framer: Framer,
}

impl ForwardedWriter {
    async fn publish(&mut self, event: &Down) -> io::Result<()> {
        let frames = self.framer.frames(&wire::encode(event), self.cluster.max_payload());
        for frame in frames {
            self.cluster.client().publish(self.subject.clone(), frame).await.map_err(io::Error::other)?;
        }
        Ok(())
    }
}

impl TransportWriter for ForwardedWriter {
    async fn write_batch(&mut self, batch: &mut Vec<Outgoing>) -> io::Result<usize> {
        // The postcard encoding is the one WebTransport clients get: encoded once, shared with them.
        let messages: Vec<_> = batch.drain(..).map(|message| message.postcard().clone()).collect();
        let bytes = messages.iter().map(|message| message.len()).sum();
        self.publish(&Down::Messages(messages)).await?;
        Ok(bytes)
    }

    async fn keepalive(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn settle(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.cluster.client().flush()).await;
    }

    async fn close(&mut self, closing: Closing) {
        if let Closing::Server(reason) = closing {
            let _ = self.publish(&Down::Close(reason.code())).await;
            self.settle().await;
        }
    }
}
