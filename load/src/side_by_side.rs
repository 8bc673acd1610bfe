//! Side by side: the same scenario against several servers in one sitting, each started by the tool from a command
//! (`--server NAME=COMMAND`, `{port}` replaced by a free port) and stopped after its run, so that one table holds
//! ours, the original `driftdb-server` and the floor, and each server's CPU per delivery is also given as a multiple
//! of the floor's measured minutes apart on the same loaded machine.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::{Options, Report, Transport};

/// How long a server may take from its start to accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The name that means this tool's own floor server (`driftdb-load floor-server`).
pub const FLOOR: &str = "floor";

/// One `--server` argument.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSpec {
    pub name: String,
    /// A shell command; `None` for the built-in floor.
    pub command: Option<String>,
}

impl ServerSpec {
    pub fn parse(arg: &str) -> anyhow::Result<Self> {
        match arg.split_once('=') {
            Some((name, command)) if !name.is_empty() && !command.trim().is_empty() => {
                Ok(ServerSpec { name: name.to_owned(), command: Some(command.to_owned()) })
            }
            None if arg == FLOOR => Ok(ServerSpec { name: FLOOR.to_owned(), command: None }),
            _ => bail!("--server {arg:?}: expected NAME=COMMAND or `{FLOOR}`"),
        }
    }

    /// The floor, built in or (`floor=COMMAND`) started from a given binary.
    fn is_floor(&self) -> bool {
        self.name == FLOOR
    }

    /// The transport to use against this server: the floor speaks JSON over WebSocket and plain UDP for datagrams.
    fn transport(&self, asked: Transport) -> Transport {
        match (self.is_floor(), asked) {
            (true, Transport::Wt | Transport::Udp) => Transport::Udp,
            (true, _) => Transport::WsJson,
            (false, asked) => asked,
        }
    }
}

/// Runs the scenario of `options` once per server of `options.servers`, in order; a failed run becomes an error
/// sample in its row rather than ending the sitting.
pub async fn run_all(options: &Options) -> anyhow::Result<Vec<Report>> {
    let specs: Vec<ServerSpec> = options.servers.iter().map(|s| ServerSpec::parse(s)).collect::<Result<_, _>>()?;
    let mut reports = Vec::new();
    for spec in &specs {
        let port = free_port()?;
        let mut server = start(spec, port).await?;
        let mut run_options = options.clone();
        run_options.servers.clear();
        run_options.url = format!("http://127.0.0.1:{port}").parse()?;
        run_options.server_pid = server.id();
        run_options.transport = spec.transport(options.transport);
        let result = crate::run(&run_options).await;
        let _ = server.start_kill();
        let _ = server.wait().await;
        let mut report = result.with_context(|| format!("the run against {}", spec.name))?;
        report.server_name = Some(spec.name.clone());
        reports.push(report);
    }
    let floor_us = reports
        .iter()
        .find(|r| r.server_name.as_deref() == Some(FLOOR))
        .and_then(|r| r.server.as_ref()?.cpu_us_per_delivery);
    for report in &mut reports {
        let us = report.server.as_ref().and_then(|s| s.cpu_us_per_delivery);
        report.floor_multiple = us.zip(floor_us).map(|(us, floor)| us / floor);
    }
    Ok(reports)
}

/// A port free for both TCP and UDP right now (servers here use the same number for both).
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both TCP and UDP")
}

/// Starts the server and waits until its port accepts connections.
async fn start(spec: &ServerSpec, port: u16) -> anyhow::Result<Child> {
    let mut command = match &spec.command {
        // `exec`, so that the pid is the server's own and its CPU is what gets measured, not a shell's.
        Some(command) => {
            let mut shell = Command::new("sh");
            shell.arg("-c").arg(format!("exec {}", command.replace("{port}", &port.to_string())));
            shell
        }
        None => {
            let mut floor = Command::new(std::env::current_exe().context("this tool's path")?);
            floor.args(["floor-server", "--port", &port.to_string()]);
            floor
        }
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Its logs would drown the table; start the command by hand to read them.
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", spec.name))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            bail!("{} exited before serving: {status}", spec.name);
        }
        if Instant::now() > deadline {
            bail!("{} did not accept connections on port {port} within {START_TIMEOUT:?}", spec.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_specs_parse() {
        let ours = ServerSpec::parse("ours=target/release/driftdb serve --port {port}").unwrap();
        assert_eq!(ours.command.as_deref(), Some("target/release/driftdb serve --port {port}"));
        assert_eq!(ServerSpec::parse("floor").unwrap().command, None);
        assert!(ServerSpec::parse("nameonly").is_err());
        assert!(ServerSpec::parse("=cmd").is_err());
        assert_eq!(ServerSpec::parse("floor").unwrap().transport(Transport::Wt), Transport::Udp);
        assert_eq!(ours.transport(Transport::WsCbor), Transport::WsCbor);
    }
}
