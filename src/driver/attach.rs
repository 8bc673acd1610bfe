//! Where an accepted connection's messages go: its room on this node, or, in a cluster, the room's owner on another
//! node. Both transports attach the same way, so a connection reaching any node behaves the same.

use std::sync::Arc;

use crate::auth::{Access, Grant};
use crate::close::CloseReason;
use crate::cluster::Route;
use crate::cluster::forwarding::{self, Forwarded};
use crate::context::ServerContext;
use crate::engine::{Member, Outbox, RoomId};
use crate::metrics::Transport;

use super::{Liveness, TransportReader, TransportWriter};

/// What a transport learned of a connection it accepted.
pub struct Request {
    pub room: RoomId,
    pub debug: bool,
    /// The token it came with, for an owner on another node to check again.
    pub token: Option<String>,
    pub grant: Grant,
    pub route: Route,
}

/// A connection attached to its room.
pub enum Attachment {
    Here { member: Member, access: Access },
    Forwarded(Forwarded),
}

/// Attaches a connection, or says which limit refused it.
pub async fn attach(
    context: &ServerContext,
    request: Request,
    transport: Transport,
) -> Result<Attachment, CloseReason> {
    let Request { room, debug, token, grant, route } = request;
    let outbox_bytes = context.config.outbox_bytes;
    match (route, &context.cluster) {
        (Route::Owner(owner), Some(cluster)) => {
            let metrics = Arc::new(context.metrics.connection(transport));
            let forwarded = forwarding::open(cluster, &owner.id, &room, token, debug, metrics, outbox_bytes).await?;
            Ok(Attachment::Forwarded(forwarded))
        }
        _ => {
            let member = context.rooms.connect(&room, Arc::new(Outbox::new(outbox_bytes)), debug)?;
            Ok(Attachment::Here { member, access: Access::new(context.auth.clone(), room, debug, grant) })
        }
    }
}

/// Runs an attached connection until it ends, or closes a refused one with its limit's code.
///
/// The rare ways (forwarded to another node, refused) are boxed: the caller's future (a connection's task) would
/// otherwise be as large as the largest of the three for the connection's life, whichever way it took. The common
/// way stays inline: boxed as well, it cost every WebSocket connection 1.6 KB (an allocation on top of a task that is
/// as large anyway).
pub async fn serve<R: TransportReader, W: TransportWriter>(
    context: &ServerContext,
    attached: Result<Attachment, CloseReason>,
    transport: Transport,
    liveness: Liveness,
    reader: R,
    writer: W,
) {
    match attached {
        Ok(Attachment::Here { member, access }) => {
            super::drive(context, member, access, transport, liveness, reader, writer).await;
        }
        Ok(Attachment::Forwarded(Forwarded { outbox, upstream })) => {
            Box::pin(super::relay(context, outbox, upstream, liveness, reader, writer)).await;
        }
        Err(reason) => Box::pin(super::refuse(&context.metrics, reason, reader, writer)).await,
    }
}
