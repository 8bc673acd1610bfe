//! The harness: a real `driftdb` server, an impaired link to it, and a runtime for the clients.
//!
//! - **Faithful** (root): two anonymous network namespaces, each with a TUN device; a user-space router moves every
//!   IPv4 packet between the two devices through the link's models, so TCP (WebSocket) and UDP (QUIC) are impaired
//!   identically. The server (10.77.0.1) runs in one namespace, the client runtime's threads (10.77.0.2) in the other.
//! - **Quick** (no root): the server on loopback and a UDP relay in front of its QUIC port; only WebTransport is
//!   impaired, WebSocket runs unimpaired (its rows are marked so).
//!
//! Cleanup on any exit: the namespaces have no names and disappear with the last descriptor or process in them; the
//! server is killed when the lab is dropped (unwinding panics included) and, through `PR_SET_PDEATHSIG`, when the
//! thread that started it dies with the process (Ctrl-C, `kill -9`, abort).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::client::{Endpoint, Transport};
use crate::link::{Link, LinkConfig, LinkHandle};
use crate::metrics::RunResult;
use crate::netns::{Namespace, Side, Tun};
use crate::scenarios::{self, Ctx, Params, Scenario};

const SERVER_IP: &str = "10.77.0.1";
const CLIENT_IP: &str = "10.77.0.2";
const SERVER_PORT: u16 = 8080;

/// Which harness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Faithful,
    Quick,
}

/// A running harness.
pub struct Lab {
    mode: Mode,
    // dropped in this order: clients, routers, server, namespaces
    runtime: Option<tokio::runtime::Runtime>,
    endpoint: Arc<Endpoint>,
    link: Arc<Link>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    server: Option<ServerKeeper>,
    _namespaces: Vec<Namespace>,
}

/// Where to find the `driftdb` binary: `$DRIFTDB_BIN`, else next to the running executable (`target/<profile>/`),
/// else its parent (an integration test runs from `target/<profile>/deps/`).
pub fn find_server_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("DRIFTDB_BIN") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("driftdb");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("no driftdb binary next to {} (run `cargo build` first, or set DRIFTDB_BIN)", exe.display())
}

impl Lab {
    pub fn start(mode: Mode, server_bin: &Path) -> anyhow::Result<Lab> {
        match mode {
            Mode::Faithful => Lab::faithful(server_bin),
            Mode::Quick => Lab::quick(server_bin),
        }
    }

    fn faithful(server_bin: &Path) -> anyhow::Result<Lab> {
        if !crate::is_root() {
            bail!("the faithful mode needs root (network namespaces and TUN devices); try --mode quick");
        }
        let (server_ns, server_tun) = Namespace::with_tun(Side { local: SERVER_IP, peer: CLIENT_IP })?;
        let (client_ns, client_tun) = Namespace::with_tun(Side { local: CLIENT_IP, peer: SERVER_IP })?;
        let to_server = server_tun.try_clone()?;
        let to_client = client_tun.try_clone()?;
        let link = Arc::new(Link::new(
            Box::new(move |packet: &[u8]| to_server.write(packet)),
            Box::new(move |packet: &[u8]| to_client.write(packet)),
        )?);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = vec![
            route("netsim-route-up", client_tun, link.clone(), true, stop.clone())?,
            route("netsim-route-down", server_tun, link.clone(), false, stop.clone())?,
        ];
        let ns_fd = server_ns.raw_fd();
        let args = vec![
            "serve".to_owned(),
            "--storage".to_owned(),
            "memory".to_owned(),
            "--host".to_owned(),
            SERVER_IP.to_owned(),
            "--port".to_owned(),
            SERVER_PORT.to_string(),
        ];
        let server = ServerKeeper::start(server_bin, args, Some(ns_fd))?;
        let client_fd = client_ns.raw_fd();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("netsim-client")
            .on_thread_start(move || {
                crate::netns::enter(client_fd).expect("enter the client namespace");
                crate::netns::high_priority_thread();
            })
            .build()?;
        let base = Url::parse(&format!("http://{SERVER_IP}:{SERVER_PORT}/"))?;
        let endpoint = Arc::new(Endpoint::new(base, None)?);
        let mut lab = Lab {
            mode: Mode::Faithful,
            runtime: Some(runtime),
            endpoint,
            link,
            stop,
            threads,
            server: Some(server),
            _namespaces: vec![server_ns, client_ns],
        };
        lab.wait_healthy()?;
        Ok(lab)
    }

    fn quick(server_bin: &Path) -> anyhow::Result<Lab> {
        let port = free_port()?;
        let args = ["serve", "--storage", "memory", "--port"]
            .map(str::to_owned)
            .into_iter()
            .chain([port.to_string()])
            .collect();
        let server = ServerKeeper::start(server_bin, args, None)?;
        let server_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let front = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let back = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let relay_addr = front.local_addr()?;
        // one client endpoint (one UDP socket) carries every session, so the relay keeps one client address
        let client_addr = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        let front_out = front.try_clone()?;
        let back_out = back.try_clone()?;
        let peer = client_addr.clone();
        let link = Arc::new(Link::new(
            Box::new(move |packet: &[u8]| {
                let _ = back_out.send_to(packet, server_addr);
            }),
            Box::new(move |packet: &[u8]| {
                if let Some(addr) = *peer.lock().unwrap() {
                    let _ = front_out.send_to(packet, addr);
                }
            }),
        )?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (name, socket, up) in [("netsim-relay-up", front, true), ("netsim-relay-down", back, false)] {
            socket.set_read_timeout(Some(Duration::from_millis(100)))?;
            let link = link.clone();
            let stop = stop.clone();
            let client_addr = client_addr.clone();
            threads.push(std::thread::Builder::new().name(name.into()).spawn(move || {
                crate::netns::realtime_thread();
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                    if up {
                        *client_addr.lock().unwrap() = Some(from);
                        link.up.push(&buf[..n]);
                    } else if from == server_addr {
                        link.down.push(&buf[..n]);
                    }
                }
            })?);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let base = Url::parse(&format!("http://127.0.0.1:{port}/"))?;
        let endpoint = Arc::new(Endpoint::new(base, Some(relay_addr))?);
        let mut lab = Lab {
            mode: Mode::Quick,
            runtime: Some(runtime),
            endpoint,
            link,
            stop,
            threads,
            server: Some(server),
            _namespaces: Vec::new(),
        };
        lab.wait_healthy()?;
        Ok(lab)
    }

    fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let endpoint = self.endpoint.clone();
        let healthy = self.block_on(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if endpoint.healthy().await {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        })?;
        if !healthy {
            bail!("the server did not answer /healthz within 20 s");
        }
        Ok(())
    }

    /// Runs `future` on a client thread (in the client namespace) and waits for it.
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> anyhow::Result<T> {
        let runtime = self.runtime.as_ref().context("no runtime")?;
        // spawned, never run on the calling thread, which is outside the client namespace
        runtime.block_on(runtime.spawn(future)).context("the client task panicked")
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Runs one scenario over one transport on a link configured by `link`.
    pub fn run(
        &self,
        scenario: Scenario,
        transport: Transport,
        link: &LinkConfig,
        rtt_ms: f64,
        loss: f64,
        params: &Params,
    ) -> anyhow::Result<RunResult> {
        let started = Instant::now();
        self.link.configure(link);
        let ctx = Ctx { endpoint: self.endpoint.clone(), link: LinkHandle::new(self.link.clone()), transport, loss };
        let params = params.clone();
        let mut result = self.block_on(async move { scenarios::run(&ctx, scenario, &params).await })??;
        let (up, down) = self.link.stats();
        result.mode = match self.mode {
            Mode::Faithful => "faithful".into(),
            Mode::Quick => "quick".into(),
        };
        if self.mode == Mode::Quick && transport == Transport::Ws {
            result.notes.push("quick mode: the WebSocket is not impaired".into());
        }
        result.loss = loss;
        result.rtt_ms = rtt_ms;
        result.seed = link.seed;
        result.link = Some(link.clone());
        result.link_up = up;
        result.link_down = down;
        result.wall_secs = started.elapsed().as_secs_f64();
        Ok(result)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.server.take();
    }
}

/// Moves packets read from `tun` into one direction of the link (IPv4 only: nothing else crosses).
fn route(name: &str, tun: Tun, link: Arc<Link>, up: bool, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(move || {
        crate::netns::realtime_thread();
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::SeqCst) {
            match tun.read(&mut buf, Duration::from_millis(100)) {
                Ok(0) => {}
                Ok(n) if buf[0] >> 4 == 4 => {
                    if up {
                        link.up.push(&buf[..n]);
                    } else {
                        link.down.push(&buf[..n]);
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    })
}

fn free_port() -> anyhow::Result<u16> {
    for _ in 0..20 {
        let tcp = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port for TCP and UDP")
}

/// Owns the server process from a thread that lives as long as the lab, so that `PR_SET_PDEATHSIG` (which fires when
/// the spawning *thread* exits) kills the server exactly when the lab or the whole process goes away.
struct ServerKeeper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerKeeper {
    fn start(bin: &Path, args: Vec<String>, netns: Option<i32>) -> anyhow::Result<Self> {
        let (started_tx, started_rx) = mpsc::channel::<anyhow::Result<()>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let bin = bin.to_owned();
        let thread = std::thread::Builder::new().name("netsim-server".into()).spawn(move || {
            let mut command = Command::new(&bin);
            command.args(&args).stdin(Stdio::null()).stdout(Stdio::null());
            if std::env::var_os("NETSIM_SERVER_LOG").is_none() {
                command.stderr(Stdio::null());
            }
            // SAFETY: the closure only makes async-signal-safe system calls (prctl, setns).
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // best effort: the measured server should not wait behind unrelated work on a busy machine
                    libc::setpriority(libc::PRIO_PROCESS, 0, -10);
                    if let Some(fd) = netns {
                        crate::netns::enter(fd)?;
                    }
                    Ok(())
                });
            }
            let mut child = match command.spawn().with_context(|| format!("start {}", bin.display())) {
                Ok(child) => child,
                Err(error) => {
                    let _ = started_tx.send(Err(error));
                    return;
                }
            };
            let _ = started_tx.send(Ok(()));
            let _ = stop_rx.recv();
            let _ = child.kill();
            let _ = child.wait();
        })?;
        started_rx.recv().context("the server thread died")??;
        Ok(ServerKeeper { stop: Some(stop_tx), thread: Some(thread) })
    }
}

impl Drop for ServerKeeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
