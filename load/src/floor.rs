//! The floor: the cheapest server the load scenarios can run against, so that a server's CPU per delivery can be
//! reported as a multiple of what this machine needs to move the same frames at all (measured in the same sitting,
//! that multiple survives a noisy, shared machine where absolute figures do not).
//!
//! It speaks just enough of the DriftDB WebSocket protocol for the relay scenarios (`fanout`, `rooms`, `idle`,
//! `scale`) and nothing else: `POST /new` hands out a room, a `get` frame subscribes the connection to its room and is
//! answered with an empty `init`, and a `push` frame is stamped with the room's next `seq` (one small copy per
//! message, never per subscriber, as the real server encodes once) and written verbatim to every subscriber of the
//! room. No engine, no keys, no store, no limits. The WebSocket side is axum's (tokio-tungstenite underneath, the
//! same stack as the real server), so the difference to the real server is the engine and the driver, not the codec.
//!
//! Its datagram equivalent, for comparing the WebTransport datagram path, is plain UDP on the same port number:
//! a datagram is `ROOM\n` followed by the same JSON frame; `get` registers the sender's address in the room and
//! `push` goes, stamped, to every registered address. There is no encryption or congestion control: it is the floor.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use driftdb::room_info::RoomInfo;

/// Frames a subscriber's writer may have queued before the floor drops new ones for it (the floor has no byte
/// budget; a load run that fills this is overloaded and shows up as missing deliveries).
const QUEUE_FRAMES: usize = 4096;
/// Read buffer per WebSocket: the scenarios' frames are a few hundred bytes.
const READ_BUFFER: usize = 4 * 1024;
/// What a subscribe frame starts with (the load tool's encoding, see `driftdb_client::stamped::Out::json`).
const GET_PREFIX: &str = r#"{"type":"get""#;
/// What a push frame starts with; the rest of the frame is kept as it came.
const PUSH_PREFIX: &str = r#"{"type":"push","#;
const INIT: &str = r#"{"type":"init","key":"","data":[]}"#;

/// A running floor server; it stops when dropped.
pub struct Floor {
    http_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Floor {
    /// Binds HTTP/WebSocket on `host:port` (0: any free port) and UDP on the same port number.
    pub async fn start(host: IpAddr, port: u16) -> anyhow::Result<Floor> {
        let listener = TcpListener::bind((host, port)).await.context("binding the floor's TCP port")?;
        let http_addr = listener.local_addr()?;
        let udp = UdpSocket::bind(http_addr).await.context("binding the floor's UDP port (same number)")?;
        let rooms = Arc::new(Rooms::default());
        let app = axum::Router::new()
            .route("/new", post(new_room))
            .route("/room/{room}/connect", get(connect))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(rooms.clone());
        // Without TCP_NODELAY, Nagle's algorithm would hold the floor's small writes back and merge them (cheaper per
        // delivery, but 10-25 ms late): the floor must pay what a sub-millisecond server pays, as ours does.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let http = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the floor's HTTP server stopped");
            }
        });
        let datagrams = tokio::spawn(async move {
            if let Err(error) = serve_udp(udp, rooms).await {
                tracing::error!(%error, "the floor's UDP socket failed");
            }
        });
        Ok(Floor { http_addr, tasks: vec![http, datagrams] })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

#[derive(Default)]
struct Rooms {
    next_id: AtomicU64,
    rooms: Mutex<HashMap<String, Room>>,
}

#[derive(Default)]
struct Room {
    seq: u64,
    sockets: Vec<mpsc::Sender<Message>>,
    datagram_peers: Vec<SocketAddr>,
}

impl Rooms {
    /// Stamps `push` (a frame starting with [`PUSH_PREFIX`]) with the room's next seq.
    fn stamp(room: &mut Room, push: &str) -> String {
        room.seq += 1;
        format!("{PUSH_PREFIX}\"seq\":{},{}", room.seq, &push[PUSH_PREFIX.len()..])
    }

    fn subscribe_socket(&self, room: &str, writer: mpsc::Sender<Message>) {
        self.rooms.lock().expect("rooms lock").entry(room.to_owned()).or_default().sockets.push(writer);
    }

    /// Writes the stamped `push` to every socket subscribed to `room` (the lock is never held across an await).
    fn relay_to_sockets(&self, room: &str, push: &str) {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let Some(room) = rooms.get_mut(room) else { return };
        let frame = Message::Text(Utf8Bytes::from(Self::stamp(room, push)));
        room.sockets.retain(|writer| !writer.is_closed());
        for writer in &room.sockets {
            // Full: dropped, and counted by the load tool as a missing delivery.
            let _ = writer.try_send(frame.clone());
        }
    }
}

async fn new_room(State(rooms): State<Arc<Rooms>>, headers: HeaderMap) -> Json<RoomInfo> {
    let id = format!("floor{}", rooms.next_id.fetch_add(1, Ordering::Relaxed));
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_owned();
    Json(RoomInfo {
        socket_url: format!("ws://{host}/room/{id}/connect"),
        http_url: format!("http://{host}/room/{id}"),
        room: id,
        webtransport_url: None,
        certificate_hashes: None,
    })
}

async fn connect(
    upgrade: WebSocketUpgrade,
    Path(room): Path<String>,
    State(rooms): State<Arc<Rooms>>,
) -> impl IntoResponse {
    // tungstenite's default 128 KiB read buffer per connection would make the floor's memory no floor at all.
    upgrade.read_buffer_size(READ_BUFFER).on_upgrade(move |socket| serve_socket(socket, room, rooms))
}

/// One connection: a writer task drains its queue (flushing once per batch), the reader relays.
async fn serve_socket(socket: WebSocket, room: String, rooms: Arc<Rooms>) {
    let _ = socket_loop(socket, &room, &rooms).await;
}

async fn socket_loop(socket: WebSocket, room: &str, rooms: &Rooms) -> Result<(), axum::Error> {
    let (mut sink, mut stream) = socket.split();
    let (writer, mut queue) = mpsc::channel::<Message>(QUEUE_FRAMES);
    let write = tokio::spawn(async move {
        while let Some(frame) = queue.recv().await {
            sink.feed(frame).await?;
            while let Ok(frame) = queue.try_recv() {
                sink.feed(frame).await?;
            }
            sink.flush().await?;
        }
        Ok::<_, axum::Error>(())
    });
    while let Some(message) = stream.next().await {
        match message? {
            Message::Text(text) if text.starts_with(PUSH_PREFIX) => rooms.relay_to_sockets(room, &text),
            Message::Text(text) if text.starts_with(GET_PREFIX) => {
                let _ = writer.send(Message::Text(INIT.into())).await;
                rooms.subscribe_socket(room, writer.clone());
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    drop(writer);
    write.abort();
    Ok(())
}

/// The datagram floor: one socket, one loop, `ROOM\nFRAME` in, the stamped frame out to every peer of the room.
async fn serve_udp(socket: UdpSocket, rooms: Arc<Rooms>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (len, peer) = socket.recv_from(&mut buf).await?;
        let Ok(datagram) = std::str::from_utf8(&buf[..len]) else { continue };
        let Some((room, frame)) = datagram.split_once('\n') else { continue };
        if frame.starts_with(GET_PREFIX) {
            rooms.rooms.lock().expect("rooms lock").entry(room.to_owned()).or_default().datagram_peers.push(peer);
            socket.send_to(INIT.as_bytes(), peer).await?;
        } else if frame.starts_with(PUSH_PREFIX) {
            let (out, peers) = {
                let mut rooms = rooms.rooms.lock().expect("rooms lock");
                let Some(room) = rooms.get_mut(room) else { continue };
                (Rooms::stamp(room, frame), room.datagram_peers.clone())
            };
            for peer in peers {
                // A full socket buffer loses the datagram, as it would for any UDP server.
                let _ = socket.send_to(out.as_bytes(), peer).await;
            }
        }
    }
}
