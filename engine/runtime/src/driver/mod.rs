//! Driver selection, the io_uring probe, and what both drivers share (listener sockets).

pub(crate) mod epoll;
pub(crate) mod uring;

use std::sync::Arc;

use crate::config::{DriverChoice, DriverKind};

pub(crate) use uring::SendOp;

/// What the start-up io_uring probe found.
#[derive(Clone, Debug)]
pub struct Probe {
    /// True when every opcode and feature the io_uring driver uses is there.
    pub usable: bool,
    /// Why not, when not usable (for the log line).
    pub reason: String,
}

/// Probe io_uring: ring setup, the opcodes the driver uses, and provided-buffer rings. The
/// probe runs once per process, on a short-lived thread of its own (a ring's teardown would
/// otherwise interrupt a blocking call of the caller's thread with EINTR); later calls return
/// its first answer.
pub fn probe_uring() -> Probe {
    uring::probe()
}

/// Resolve a driver choice (after the `RINGWIRE_DRIVER` override) into the driver to run, with
/// the reason, logged by the caller. `Uring` when io_uring is unusable is an error.
pub fn resolve_driver(choice: DriverChoice) -> Result<(DriverKind, String), String> {
    let choice = choice.with_env_override();
    match choice {
        DriverChoice::Epoll => Ok((DriverKind::Epoll, "epoll requested".into())),
        DriverChoice::Uring => {
            let p = probe_uring();
            if p.usable {
                Ok((
                    DriverKind::Uring,
                    "io_uring requested and the probe passed".into(),
                ))
            } else {
                Err(format!("io_uring requested but unusable: {}", p.reason))
            }
        }
        DriverChoice::Auto => {
            let p = probe_uring();
            if p.usable {
                Ok((DriverKind::Uring, "auto: io_uring probe passed".into()))
            } else {
                Ok((
                    DriverKind::Epoll,
                    format!(
                        "auto: io_uring unusable ({}), falling back to epoll",
                        p.reason
                    ),
                ))
            }
        }
    }
}

/// Busy poll ([`crate::RuntimeConfig::busy_poll`]), the part both drivers share: call
/// `look` (a look for events that does not sleep; true once some came) until it finds some
/// (true) or `limit` passed (false). A limit past what an Instant holds polls until something
/// comes.
pub(crate) fn poll_until(
    limit: std::time::Duration,
    mut look: impl FnMut() -> std::io::Result<bool>,
) -> std::io::Result<bool> {
    let until = std::time::Instant::now().checked_add(limit);
    loop {
        if look()? {
            return Ok(true);
        }
        if until.is_some_and(|t| std::time::Instant::now() >= t) {
            return Ok(false);
        }
        std::hint::spin_loop();
    }
}

/// Start a non-blocking TCP connect; the socket is returned at once (the connect is in
/// progress, or already done on loopback). Completion shows as writability; then
/// [`connect_result`] tells success from failure. With `from`, the socket is bound to that
/// source address first; its port 0 lets connect pick the port (IP_BIND_ADDRESS_NO_PORT), so
/// each source address has its own 64k ports per destination.
pub(crate) fn connect_nonblocking(
    addr: std::net::SocketAddr,
    from: Option<std::net::SocketAddr>,
    nodelay: bool,
) -> std::io::Result<std::os::fd::RawFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) call; the fd is owned by us from here.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    uring::set_nodelay(fd, nodelay);
    if let Some(from) = from
        && let Err(e) = bind_source(fd, from)
    {
        // SAFETY: `fd` is ours and nothing else refers to it.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let (ss, len) = crate::core::std_to_sockaddr(&addr);
    // SAFETY: `ss` is a valid sockaddr of `len` bytes for the call's duration; `fd` is ours.
    let r = unsafe { libc::connect(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            // SAFETY: `fd` is ours and nothing else refers to it.
            unsafe { libc::close(fd) };
            return Err(e);
        }
    }
    Ok(fd)
}

/// Bind a socket about to connect to the source address `from`.
fn bind_source(fd: std::os::fd::RawFd, from: std::net::SocketAddr) -> std::io::Result<()> {
    if from.port() == 0 {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on our socket with a live int of the stated size. Failure (an old
        // kernel) only means bind picks the port, as without the option.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    let (ss, len) = crate::core::std_to_sockaddr(&from);
    // SAFETY: `ss` is a valid sockaddr of `len` bytes for the call's duration; `fd` is ours.
    let r = unsafe { libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The outcome of a non-blocking connect, once the socket signalled writability (or an error).
pub(crate) fn connect_result(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt on an open socket into a live int of the stated size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if err != 0 {
        return Err(std::io::Error::from_raw_os_error(err));
    }
    // Writable without an error can still mean "not connected" after a spurious wake-up.
    // SAFETY: all-zero is a valid sockaddr_storage; getpeername writes at most `plen` bytes.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut plen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as above; `fd` is open.
    let r = unsafe {
        libc::getpeername(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut plen,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What one sendfile(2) of the out-queue's front file range did.
pub(crate) enum FileStep {
    /// Bytes written (0: the front chunk was turned into bytes, go again).
    Sent(usize),
    /// The socket is full: wait for writability.
    Blocked,
    /// The write failed (or the file shrank under the range).
    Failed(std::io::Error),
}

/// The largest count one sendfile(2) call takes (the kernel's own cap, MAX_RW_COUNT).
const SENDFILE_MAX: usize = 0x7fff_f000;

/// Write the file range at the front of `c`'s out-queue with sendfile(2), at most `allow` bytes.
/// Both drivers call this when the front is a file; the socket is non-blocking. A file system
/// without sendfile support gets the range read into memory and queued as bytes instead.
pub(crate) fn sendfile_front(c: &mut crate::core::Conn, allow: usize) -> FileStep {
    use crate::core::OutChunk;
    use std::os::fd::AsRawFd;
    let Some(OutChunk::File(f)) = c.out.front() else {
        return FileStep::Sent(0);
    };
    let done = c.out_off as usize;
    let want = (f.len - done).min(allow).min(SENDFILE_MAX);
    let Ok(mut off) = libc::off_t::try_from(f.off + done as u64) else {
        return FileStep::Failed(std::io::ErrorKind::InvalidInput.into());
    };
    // SAFETY: both fds are open for the call (the socket is closed only in `finish`, the file is
    // held by the queue entry); `off` is a live off_t the kernel updates.
    let r = unsafe { libc::sendfile(c.fd, f.file.as_raw_fd(), &mut off, want) };
    if r > 0 {
        return FileStep::Sent(r as usize);
    }
    if r == 0 {
        // The file ended before the range did: the promised length cannot be kept.
        return FileStep::Failed(std::io::ErrorKind::UnexpectedEof.into());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) => FileStep::Blocked,
        Some(libc::EINTR) => FileStep::Sent(0),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
            // No sendfile from this file: read the rest of the range and queue it as bytes.
            let file = Arc::clone(&f.file);
            let (foff, flen) = (f.off + done as u64, f.len - done);
            match crate::core::read_range(&file, foff, flen) {
                Ok(v) => {
                    if let Some(front) = c.out.front_mut() {
                        *front = OutChunk::Mem(bytes::Bytes::from(v));
                    }
                    c.out_off = 0;
                    FileStep::Sent(0)
                }
                Err(e) => FileStep::Failed(e),
            }
        }
        _ => FileStep::Failed(e),
    }
}
