//! Network namespaces and TUN devices, with no global names: each namespace is anonymous (made by `unshare` on a
//! helper thread and held by a file descriptor), so parallel runs never collide and the kernel removes everything
//! when the process ends, however it ends. Addresses are configured with iproute2's `ip`, run inside the namespace.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};

/// An anonymous network namespace, alive while this descriptor (or a process inside it) is.
pub struct Namespace {
    fd: OwnedFd,
}

/// A TUN device (IPv4 packets without a header).
pub struct Tun {
    fd: OwnedFd,
}

/// How one side of the point-to-point link is addressed.
pub struct Side<'a> {
    pub local: &'a str,
    pub peer: &'a str,
}

const TUN_NAME: &str = "dnet0";

impl Namespace {
    /// Makes a namespace with `lo` up and a TUN device `dnet0` addressed `side.local` with peer `side.peer`.
    pub fn with_tun(side: Side<'_>) -> anyhow::Result<(Namespace, Tun)> {
        let local = side.local.to_owned();
        let peer = side.peer.to_owned();
        std::thread::scope(|scope| {
            scope
                .spawn(move || -> anyhow::Result<(Namespace, Tun)> {
                    // SAFETY: unshare only changes this (helper) thread's network namespace.
                    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error()).context("unshare(CLONE_NEWNET) (root needed)");
                    }
                    let ns = File::open("/proc/thread-self/ns/net").context("open /proc/thread-self/ns/net")?;
                    let tun = Tun::create(TUN_NAME)?;
                    // children forked from this thread start in its namespace
                    ip(&["link", "set", "lo", "up"])?;
                    ip(&["addr", "add", &format!("{local}/32"), "peer", &format!("{peer}/32"), "dev", TUN_NAME])?;
                    ip(&["link", "set", TUN_NAME, "mtu", "1500", "up"])?;
                    Ok((Namespace { fd: ns.into() }, tun))
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the namespace helper thread panicked"))?
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Moves the calling thread into this namespace (threads it spawns afterwards start there too).
    pub fn enter(&self) -> io::Result<()> {
        enter(self.raw_fd())
    }
}

/// `setns(fd, CLONE_NEWNET)` for the calling thread; async-signal-safe, so usable in `pre_exec`.
pub fn enter(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns with a namespace descriptor affects only the calling thread.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().context("run `ip` (install iproute2)")?;
    if !output.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl Tun {
    fn create(name: &str) -> anyhow::Result<Tun> {
        ensure!(name.len() < libc::IFNAMSIZ, "interface name too long");
        // SAFETY: plain open(2) of a device path with a NUL-terminated literal.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error()).context("open /dev/net/tun");
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            _pad: [0; 22],
        };
        for (slot, byte) in req.name.iter_mut().zip(name.bytes()) {
            *slot = byte as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads and writes an ifreq, which IfReq lays out (name, flags, padding to 40 bytes).
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) } < 0 {
            return Err(io::Error::last_os_error()).context("ioctl TUNSETIFF");
        }
        Ok(Tun { fd })
    }

    /// Reads one packet, waiting at most `timeout`; `Ok(0)` when none came.
    pub fn read(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(error) };
        }
        if ready == 0 {
            return Ok(0);
        }
        // SAFETY: reading into a valid, writable buffer of the given length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::WouldBlock { Ok(0) } else { Err(error) };
        }
        Ok(n as usize)
    }

    /// Writes one packet (a full device queue drops it, as a real link would).
    pub fn write(&self, packet: &[u8]) {
        // SAFETY: writing from a valid buffer of the given length.
        unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
    }

    pub fn try_clone(&self) -> io::Result<Tun> {
        Ok(Tun { fd: self.fd.try_clone()? })
    }
}

/// Gives the calling thread a real-time priority (`SCHED_FIFO`), so that the router's timing does not depend on how
/// busy the machine is. Best effort: without the privilege the thread keeps its normal priority.
pub fn realtime_thread() {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: changes only the calling thread's scheduling policy.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
}

/// Raises the calling thread's scheduling priority (nice −10; best effort), for the measured clients and server.
pub fn high_priority_thread() {
    // SAFETY: with `who` 0, setpriority(PRIO_PROCESS) changes only the calling thread on Linux.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) };
}
