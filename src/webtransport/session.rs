//! One WebTransport session, from the QUIC handshake to the room connection's end: [`establish`](super::establish)
//! it, then run it with the [connection driver](crate::driver) over the session's [reader](super::reader) and
//! [writer](super::writer).

use std::time::Instant;

use tokio::sync::oneshot;
use tracing::{Instrument, debug, info_span};

use super::establish::{Established, establish};
use super::reader::WtReader;
use super::writer::WtWriter;
use crate::context::Context;
use crate::driver::{self, Liveness};
use crate::metrics::Transport;

/// Serves one incoming QUIC connection: at most one session.
pub(super) async fn run(incoming: Box<quinn::Incoming>, context: Context) {
    let started = Instant::now();
    let remote = incoming.remote_address();
    // A session still being set up when the server stops is dropped at once rather than holding shutdown up.
    //
    // Both phases are boxed, so that this task (one per session, for its life) holds two pointers rather than the
    // largest state of either phase and the copies of the session that each layer's arguments keep: unboxed it was
    // 24 KB per session (`docs/benchmarks.md`, WebTransport). The handshake's box is freed once the session is up.
    let established = tokio::select! {
        established = Box::pin(establish(*incoming, &context)) => established,
        _ = context.shutdown.cancelled() => return,
    };
    match established {
        Ok(established) => {
            let span = info_span!("connection", room = %established.target.room, transport = "webtransport", %remote);
            span.in_scope(|| debug!(setup_ms = started.elapsed().as_secs_f64() * 1e3, "session up"));
            let room = established.target.room.clone();
            let session = Box::pin(serve(established, context.clone()));
            context.room_threads.run(&room, session).instrument(span).await
        }
        Err(error) => debug!(%remote, %error, "WebTransport session not established"),
    }
}

/// Runs an established session until it ends (or closes it at once with the limit that refused it).
async fn serve(established: Box<Established>, context: Context) {
    let Established { session, h3, quic, target: _, admitted } = unbox(established);
    let (control_send, control_receive) = oneshot::channel();
    let reader = WtReader::new(h3, quic.clone(), session.id(), context.config.max_message_bytes, control_send);
    let writer = WtWriter::new(quic.clone(), session, control_receive, context.metrics.clone());
    // QUIC's keep-alive and idle timeout (see `endpoint`) keep a quiet session alive and end a dead one.
    let liveness = Liveness::default();
    Box::pin(driver::serve(&context, admitted, Transport::Webtransport, liveness, reader, writer)).await;
    log_quic_stats(&quic);
}

/// What QUIC saw of the session, for an operator looking at one client's experience. `ack_frequency_frames` is above
/// zero only for a client that implements the acknowledgement-frequency extension (see `endpoint::ack_frequency`).
fn log_quic_stats(quic: &quinn::Connection) {
    let stats = quic.stats();
    debug!(
        rtt_ms = stats.path.rtt.as_secs_f64() * 1e3,
        sent_packets = stats.path.sent_packets,
        lost_packets = stats.path.lost_packets,
        received_acks = stats.frame_rx.acks,
        ack_frequency_frames = stats.frame_tx.ack_frequency,
        "session ended"
    );
}

/// Moves a value out of its box and frees the box now: moved out in place (`*boxed`), the box would last as long as the
/// binding, here the session's life.
#[allow(clippy::boxed_local)]
fn unbox<T>(boxed: Box<T>) -> T {
    *boxed
}
