//! The `driftdb` binary as a child process: `driftdb serve ARGS` on a free port, its address read from the
//! "listening" line it prints first, killed when dropped. For the tests that need a real process (SIGTERM and
//! SIGKILL, several cluster nodes).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};

/// A running `driftdb serve`.
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `driftdb serve --port 0 ARGS` and waits for its listening line. Its log goes nowhere unless
    /// `DRIFTDB_TEST_LOG` is set (then to the test's stderr).
    pub fn start(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_driftdb"));
        command.args(["serve", "--port", "0"]).args(args);
        // The environment must not move the server elsewhere than these arguments say.
        for var in ["DRIFTDB_HOST", "DRIFTDB_PORT", "DRIFTDB_WT_PORT", "DRIFTDB_CONFIG", "DRIFTDB_CLUSTER"] {
            command.env_remove(var);
        }
        let log = if std::env::var_os("DRIFTDB_TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() };
        let mut child = command.stdout(Stdio::piped()).stderr(log).spawn().expect("the driftdb binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let line = BufReader::new(stdout).lines().next();
        let line = match line {
            Some(Ok(line)) => line,
            _ => panic!("driftdb serve {args:?} printed no listening line (exit: {:?})", child.wait()),
        };
        let addr = line.rsplit("http://").next().and_then(|a| a.parse().ok());
        ServerProcess { child, addr: addr.unwrap_or_else(|| panic!("unexpected first line: {line}")) }
    }

    /// The HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `signal` (`-TERM`, `-KILL`) and waits for the process to end.
    pub fn signal(&mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal}");
        self.child.wait().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
