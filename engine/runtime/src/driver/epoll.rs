//! The readiness driver (epoll on Linux, kqueue on macOS, through mio): edge-triggered
//! readiness, then non-blocking reads into one receive buffer per core, so an idle connection
//! holds no buffer here either; vectored `sendmsg` writes; the same connection semantics as the
//! io_uring driver because both go through [`Core`].

use std::io;
use std::mem::MaybeUninit;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::FileStep;
use crate::bus::{Bus, Wake};
use crate::core::{
    ABORT, CONNECTING, Core, DIRTY, Next, OutChunk, RDHUP, READ_READY, WRITE_BLOCKED,
    sockaddr_to_std, std_to_sockaddr,
};
use crate::plugin::Plugin;
use crate::slab::Key;

const OP_ACCEPT: u64 = 1;
const OP_CONN: u64 = 2;
const OP_WAKE: u64 = 5;
const OP_UDP: u64 = 6;
const LOW: u64 = (1 << 56) - 1;
const MAX_IOV: usize = 64;
/// Datagrams per recvmmsg / sendmmsg call.
const UDP_BATCH: usize = 32;

fn token(op: u64, v: u64) -> Token {
    Token(((op << 56) | (v & LOW)) as usize)
}

struct MioWaker(mio::Waker);

impl Wake for MioWaker {
    fn wake(&self) {
        if let Err(e) = self.0.wake() {
            tracing::warn!("waking a core failed: {e}");
        }
    }
}

/// The epoll driver of one core.
pub(crate) struct Epoll {
    poll: Poll,
    events: Events,
    buf: Box<[u8]>,
    listeners: Vec<Option<TcpListener>>,
    udp: Vec<Option<UdpSocket>>,
    waker: Arc<MioWaker>,
    ready: Vec<Key>,
    /// Receive slots for recvmmsg (allocated with the first UDP socket).
    udp_buf: Box<[u8]>,
    toks: Vec<(u64, bool, bool, bool)>,
    /// [`crate::RuntimeConfig::busy_poll`]: how long to poll before sleeping (zero: never).
    busy_poll: std::time::Duration,
}

impl Epoll {
    pub(crate) fn new(
        cfg: &crate::RuntimeConfig,
        listeners: Vec<TcpListener>,
        udp: Vec<UdpSocket>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(MioWaker(mio::Waker::new(
            poll.registry(),
            token(OP_WAKE, 0),
        )?));
        for (i, l) in listeners.iter().enumerate() {
            l.set_nonblocking(true)?;
            poll.registry().register(
                &mut SourceFd(&l.as_raw_fd()),
                token(OP_ACCEPT, i as u64),
                Interest::READABLE,
            )?;
        }
        for (i, u) in udp.iter().enumerate() {
            u.set_nonblocking(true)?;
            poll.registry().register(
                &mut SourceFd(&u.as_raw_fd()),
                token(OP_UDP, i as u64),
                Interest::READABLE,
            )?;
        }
        let size = cfg
            .epoll_read_buffer
            .max(if udp.is_empty() {
                0
            } else {
                cfg.udp_max_datagram + 1
            })
            .max(64);
        Ok(Epoll {
            poll,
            events: Events::with_capacity(1024),
            buf: vec![0u8; size].into_boxed_slice(),
            listeners: listeners.into_iter().map(Some).collect(),
            udp: udp.into_iter().map(Some).collect(),
            waker,
            ready: Vec::new(),
            udp_buf: Box::default(),
            toks: Vec::with_capacity(1024),
            busy_poll: cfg.busy_poll,
        })
    }

    pub(crate) fn waker(&self) -> Arc<dyn Wake> {
        self.waker.clone()
    }

    fn stop_listening(&mut self) {
        for l in self.listeners.iter_mut() {
            if let Some(s) = l.take() {
                let _ = self
                    .poll
                    .registry()
                    .deregister(&mut SourceFd(&s.as_raw_fd()));
            }
        }
        for u in self.udp.iter_mut() {
            if let Some(s) = u.take() {
                let _ = self
                    .poll
                    .registry()
                    .deregister(&mut SourceFd(&s.as_raw_fd()));
            }
        }
    }

    fn accept<P: Plugin>(&mut self, core: &mut Core<P>, i: usize) {
        let Some(lfd) = self
            .listeners
            .get(i)
            .and_then(|l| l.as_ref())
            .map(|l| l.as_raw_fd())
        else {
            return;
        };
        loop {
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: `ss`/`len` are valid for writes; `lfd` is our open listener.
            let fd = unsafe {
                libc::accept4(
                    lfd,
                    (&mut ss as *mut libc::sockaddr_storage).cast(),
                    &mut len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return,
                    Some(libc::EINTR) | Some(libc::ECONNABORTED) => continue,
                    _ => {
                        tracing::warn!(core = core.sh.core, "accept failed: {e}");
                        return;
                    }
                }
            }
            if !core.admit() {
                // SAFETY: `fd` was just accepted and is owned by nobody else.
                unsafe { libc::close(fd) };
                continue;
            }
            super::uring::set_nodelay(fd, core.sh.cfg.nodelay);
            let unspecified = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
            let peer = sockaddr_to_std(&ss, len).unwrap_or(unspecified);
            let key = core.sh.conns.vacant_key();
            if let Err(e) = self.poll.registry().register(
                &mut SourceFd(&fd),
                token(OP_CONN, key.to_u64()),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!("epoll register failed: {e}");
                core.sh
                    .global
                    .open
                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                // SAFETY: `fd` is ours and not registered anywhere.
                unsafe { libc::close(fd) };
                continue;
            }
            if let Some(k) = core.open(fd, i, peer) {
                debug_assert_eq!(k, key);
                if let Some(c) = core.sh.conns.get_mut(k) {
                    // Data may already be waiting; the first edge may have come before registration.
                    c.flags |= READ_READY;
                }
                core.sh.mark_dirty(k);
            }
        }
    }

    fn read<P: Plugin>(&mut self, core: &mut Core<P>, key: Key) {
        /// Reserved input room worth reading into directly (smaller: the shared buffer).
        const DIRECT_READ_MIN: usize = 16 * 1024;
        let turns = core.sh.cfg.reads_per_turn.max(1);
        for _ in 0..turns {
            let Some(c) = core.sh.conns.get_mut(key) else {
                return;
            };
            if !c.wants_read() || c.flags & READ_READY == 0 {
                return;
            }
            let fd = c.fd;
            let allowance = c.read_allowance(core.sh.now);
            // The rest of a large record goes straight into the room reserved for it.
            let (n, want, direct) = match core.direct_input(key, DIRECT_READ_MIN) {
                Some(room) => {
                    let want = allowance.clamp(1, room.len());
                    // SAFETY: reading into the connection's reserved, uninitialized room,
                    // within its length; deliver_direct marks the bytes read as initialized.
                    let n = unsafe { libc::recv(fd, room.as_mut_ptr().cast(), want, 0) };
                    (n, want, true)
                }
                None => {
                    let want = allowance.clamp(1, self.buf.len());
                    // SAFETY: reading into our own buffer, within its length.
                    let n = unsafe { libc::recv(fd, self.buf.as_mut_ptr().cast(), want, 0) };
                    (n, want, false)
                }
            };
            let Some(c) = core.sh.conns.get_mut(key) else {
                return;
            };
            if n > 0 {
                let n = n as usize;
                if n < want && c.flags & RDHUP == 0 {
                    // Short read: the socket is drained; a new arrival raises a new edge.
                    // (Not after a FIN was signalled: its edge is spent, and only a read
                    // returning 0 will show it.)
                    c.flags &= !READ_READY;
                }
                if direct {
                    core.deliver_direct(key, n);
                } else {
                    core.deliver(key, &mut self.buf[..n]);
                }
            } else if n == 0 {
                c.flags &= !READ_READY;
                core.eof(key);
                return;
            } else {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        c.flags &= !READ_READY;
                        return;
                    }
                    Some(libc::EINTR) => {}
                    _ => {
                        c.flags &= !READ_READY;
                        core.error(key, e);
                        return;
                    }
                }
            }
        }
        // Still readable after this turn's share: come back next turn, others go first.
        if core
            .sh
            .conns
            .get(key)
            .is_some_and(|c| c.flags & READ_READY != 0 && c.wants_read())
        {
            self.ready.push(key);
        }
    }

    fn write<P: Plugin>(&mut self, core: &mut Core<P>, key: Key) {
        loop {
            let Some(c) = core.sh.conns.get(key) else {
                return;
            };
            if c.out_len == 0 || c.flags & (WRITE_BLOCKED | ABORT) != 0 {
                return;
            }
            let allow = core.write_gate(key);
            if allow == 0 {
                return;
            }
            let Some(c) = core.sh.conns.get_mut(key) else {
                return;
            };
            if matches!(c.out.front(), Some(OutChunk::File(_))) {
                match super::sendfile_front(c, allow) {
                    // A short count is not proof of a full socket here (the file may have
                    // ended): go again, EAGAIN tells.
                    FileStep::Sent(n) => {
                        if n > 0 {
                            core.sh.stats.file_bytes_out += n as u64;
                            core.sent(key, n);
                        }
                    }
                    FileStep::Blocked => c.flags |= WRITE_BLOCKED,
                    FileStep::Failed(e) => {
                        core.error(key, e);
                        return;
                    }
                }
                continue;
            }
            let mut iov = [const { MaybeUninit::<libc::iovec>::uninit() }; MAX_IOV];
            let mut n = 0;
            let mut total = 0usize;
            for (i, b) in c.out.iter().enumerate() {
                if n == MAX_IOV || total >= allow {
                    break;
                }
                // A file range is written on its own, after the bytes before it.
                let OutChunk::Mem(b) = b else { break };
                let s = if i == 0 {
                    &b[c.out_off as usize..]
                } else {
                    &b[..]
                };
                let len = s.len().min(allow - total);
                iov[n].write(libc::iovec {
                    iov_base: s.as_ptr() as *mut libc::c_void,
                    iov_len: len,
                });
                total += len;
                n += 1;
            }
            let r = if n == 1 {
                // One chunk (an echo, mostly): plain send, no message header.
                // SAFETY: iov[0] was written above and points into a Bytes held by the
                // out-queue, unchanged during the call.
                unsafe {
                    let v = iov[0].assume_init();
                    libc::send(c.fd, v.iov_base, v.iov_len, libc::MSG_NOSIGNAL)
                }
            } else {
                // SAFETY: all-zero is a valid msghdr; it then points at the `n` iovecs written
                // above, alive across the call.
                let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
                hdr.msg_iov = iov.as_mut_ptr().cast();
                hdr.msg_iovlen = n as _;
                // SAFETY: the iovecs point into Bytes held by the out-queue, unchanged during
                // the call.
                unsafe { libc::sendmsg(c.fd, &hdr, libc::MSG_NOSIGNAL) }
            };
            if r >= 0 {
                let r = r as usize;
                if r < total {
                    c.flags |= WRITE_BLOCKED;
                }
                core.sent(key, r);
            } else {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        c.flags |= WRITE_BLOCKED;
                        return;
                    }
                    Some(libc::EINTR) => {}
                    _ => {
                        core.error(key, e);
                        return;
                    }
                }
            }
        }
    }

    fn service<P: Plugin>(&mut self, core: &mut Core<P>, key: Key) {
        let Some(c) = core.sh.conns.get_mut(key) else {
            return;
        };
        c.flags &= !DIRTY;
        if c.flags & crate::core::REDELIVER != 0 {
            core.redeliver(key);
        }
        let Some(c) = core.sh.conns.get(key) else {
            return;
        };
        if c.flags & ABORT != 0 {
            self.finish(core, key);
            return;
        }
        if c.flags & CONNECTING != 0 {
            return; // the writable edge completes it
        }
        self.read(core, key);
        self.write(core, key);
        if core.close_progress(key) == Next::Finish {
            self.finish(core, key);
        }
    }

    fn finish<P: Plugin>(&mut self, core: &mut Core<P>, key: Key) {
        if let Some(c) = core.sh.conns.get(key) {
            let _ = self.poll.registry().deregister(&mut SourceFd(&c.fd));
        }
        core.finish(key);
    }

    /// Drain a UDP socket with recvmmsg, up to [`UDP_BATCH`] datagrams per syscall.
    fn udp_recv<P: Plugin>(&mut self, core: &mut Core<P>, i: usize) {
        let Some(fd) = self
            .udp
            .get(i)
            .and_then(|u| u.as_ref())
            .map(|u| u.as_raw_fd())
        else {
            return;
        };
        let max = core.sh.cfg.udp_max_datagram;
        let slot = max + 1;
        if self.udp_buf.len() < UDP_BATCH * slot {
            self.udp_buf = vec![0u8; UDP_BATCH * slot].into_boxed_slice();
        }
        loop {
            // SAFETY: all-zero is valid for these plain C structs.
            let mut names: [libc::sockaddr_storage; UDP_BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut iov: [libc::iovec; UDP_BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; UDP_BATCH] = unsafe { std::mem::zeroed() };
            let base = self.udp_buf.as_mut_ptr();
            for k in 0..UDP_BATCH {
                // SAFETY: `k * slot + slot <= udp_buf.len()`, checked when the buffer was sized.
                let p = unsafe { base.add(k * slot) };
                iov[k] = libc::iovec {
                    iov_base: p.cast(),
                    iov_len: slot,
                };
                msgs[k].msg_hdr.msg_iov = &mut iov[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
                msgs[k].msg_hdr.msg_name = (&mut names[k] as *mut libc::sockaddr_storage).cast();
                msgs[k].msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            }
            // SAFETY: every header points at storage above that outlives the call.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    UDP_BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return;
            }
            let n = n as usize;
            for k in 0..n {
                let len = msgs[k].msg_len as usize;
                if len > max || msgs[k].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    core.sh.stats.datagrams_dropped += 1;
                    continue;
                }
                if let Some(from) = sockaddr_to_std(&names[k], msgs[k].msg_hdr.msg_namelen) {
                    core.datagram(i, from, &mut self.udp_buf[k * slot..k * slot + len]);
                }
            }
            if n < UDP_BATCH {
                return; // drained: a new datagram raises a new edge
            }
        }
    }

    fn flush_udp<P: Plugin>(&mut self, core: &mut Core<P>) {
        let ops = std::mem::take(&mut core.sh.udp_ops);
        let mut closes = Vec::new();
        for op in ops {
            match op {
                crate::core::UdpOp::Add(id, sock) => {
                    if self.udp.len() <= id {
                        self.udp.resize_with(id + 1, || None);
                    }
                    if let Err(e) = self.poll.registry().register(
                        &mut SourceFd(&sock.as_raw_fd()),
                        token(OP_UDP, id as u64),
                        Interest::READABLE,
                    ) {
                        tracing::warn!("epoll register of a UDP socket failed: {e}");
                    }
                    self.udp[id] = Some(sock);
                }
                crate::core::UdpOp::Close(id) => closes.push(id),
            }
        }
        self.send_datagrams(core);
        for id in closes {
            if let Some(s) = self.udp.get_mut(id).and_then(Option::take) {
                let _ = self
                    .poll
                    .registry()
                    .deregister(&mut SourceFd(&s.as_raw_fd()));
            }
            core.sh.udp_free.push(id);
        }
    }

    /// Send what plugins queued with sendmmsg, batching consecutive datagrams of one socket.
    /// A datagram the kernel will not take now (send buffer full) is dropped and counted:
    /// UDP's own semantics, and what keeps a slow path from growing a queue.
    fn send_datagrams<P: Plugin>(&mut self, core: &mut Core<P>) {
        let out = std::mem::take(&mut core.sh.udp_out);
        let mut start = 0;
        while start < out.len() {
            let sock = out[start].sock.0;
            let mut end = start + 1;
            while end < out.len() && end - start < UDP_BATCH && out[end].sock.0 == sock {
                end += 1;
            }
            let batch = &out[start..end];
            start = end;
            let Some(fd) = self
                .udp
                .get(sock)
                .and_then(|u| u.as_ref())
                .map(|s| s.as_raw_fd())
            else {
                core.sh.stats.datagrams_dropped += batch.len() as u64;
                continue;
            };
            // SAFETY: all-zero is valid for these plain C structs.
            let mut names: [libc::sockaddr_storage; UDP_BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut iov: [libc::iovec; UDP_BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; UDP_BATCH] = unsafe { std::mem::zeroed() };
            for (k, d) in batch.iter().enumerate() {
                let (ss, len) = std_to_sockaddr(&d.to);
                names[k] = ss;
                iov[k] = libc::iovec {
                    iov_base: d.data.as_ptr() as *mut libc::c_void,
                    iov_len: d.data.len(),
                };
                msgs[k].msg_hdr.msg_iov = &mut iov[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
                msgs[k].msg_hdr.msg_name = (&mut names[k] as *mut libc::sockaddr_storage).cast();
                msgs[k].msg_hdr.msg_namelen = len;
            }
            let mut sent = 0usize;
            while sent < batch.len() {
                // SAFETY: headers point at payloads (held by `out`) and addresses above, alive
                // across the call; `sent < batch.len() <= UDP_BATCH`.
                let r = unsafe {
                    libc::sendmmsg(
                        fd,
                        msgs.as_mut_ptr().add(sent),
                        (batch.len() - sent) as libc::c_uint,
                        libc::MSG_NOSIGNAL,
                    )
                };
                if r > 0 {
                    sent += r as usize;
                    core.sh.stats.datagrams_out += r as u64;
                } else if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                } else {
                    // EAGAIN or an error for the datagram at `sent` (e.g. unreachable): drop it
                    // and go on with the rest.
                    core.sh.stats.datagrams_dropped += 1;
                    sent += 1;
                }
            }
        }
        let mut out = out;
        out.clear();
        if core.sh.udp_out.is_empty() {
            core.sh.udp_out = out;
        }
    }

    /// Busy poll ([`crate::RuntimeConfig::busy_poll`]): `epoll_wait` without sleeping until
    /// events are there (true) or `limit` passed (false).
    fn poll_events(&mut self, limit: std::time::Duration) -> io::Result<bool> {
        super::poll_until(limit, || {
            if let Err(e) = self
                .poll
                .poll(&mut self.events, Some(std::time::Duration::ZERO))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            Ok(!self.events.is_empty())
        })
    }

    /// Run the core until it stops.
    pub(crate) fn run<P: Plugin>(mut self, core: &mut Core<P>, bus: &Bus) -> io::Result<()> {
        loop {
            core.sh.now = Instant::now();
            core.settle(&mut self);
            if core.sh.stopping && core.sh.conns.is_empty() {
                break;
            }
            let mut timeout = if !self.ready.is_empty() {
                Some(std::time::Duration::ZERO)
            } else {
                core.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            // A busy poll first, for up to `busy_poll` (or the next timer, if sooner).
            let would_wait = timeout != Some(std::time::Duration::ZERO);
            let polled = would_wait
                && !self.busy_poll.is_zero()
                && self.poll_events(timeout.map_or(self.busy_poll, |d| d.min(self.busy_poll)))?;
            if would_wait && !polled && !self.busy_poll.is_zero() {
                // The poll took its time: wait only for what is left until the next timer
                // (none at all once it is due, rather than mio's rounding up to 1 ms).
                timeout = core
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()));
            }
            if polled {
                core.sh.stats.busy_polls += 1;
            } else if let Err(e) = self.poll.poll(&mut self.events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            core.sh.now = Instant::now();
            let mut wake = false;
            let mut toks = std::mem::take(&mut self.toks);
            toks.clear();
            toks.extend(self.events.iter().map(|e| {
                let r = e.is_readable() || e.is_read_closed() || e.is_error();
                let w = e.is_writable() || e.is_write_closed() || e.is_error();
                let rdhup = e.is_read_closed() || e.is_error();
                (e.token().0 as u64, r, w, rdhup)
            }));
            for &(t, r, w, rdhup) in &toks {
                let v = t & LOW;
                match t >> 56 {
                    OP_CONN => {
                        let key = Key::from_u64(v);
                        if let Some(c) = core.sh.conns.get_mut(key)
                            && c.flags & CONNECTING != 0
                        {
                            if w || rdhup {
                                let res = super::connect_result(c.fd);
                                // Bytes may already wait: read once connected.
                                c.flags |= READ_READY;
                                core.connected(key, res);
                            }
                            continue;
                        }
                        if let Some(c) = core.sh.conns.get_mut(key) {
                            if r {
                                c.flags |= READ_READY;
                            }
                            if rdhup {
                                c.flags |= RDHUP;
                            }
                            if w {
                                c.flags &= !WRITE_BLOCKED;
                            }
                            core.sh.mark_dirty(key);
                        }
                    }
                    OP_ACCEPT => self.accept(core, v as usize),
                    OP_UDP => self.udp_recv(core, v as usize),
                    OP_WAKE => wake = true,
                    _ => {}
                }
            }
            self.toks = toks;
            for key in std::mem::take(&mut self.ready) {
                core.sh.mark_dirty(key);
            }
            if wake && core.drain_inbox(bus) && !core.sh.stopping {
                self.stop_listening();
                core.begin_stop();
            }
            core.fire_timers();
        }
        core.publish_stats();
        Ok(())
    }
}

impl<P: Plugin> crate::core::Io<P> for Epoll {
    fn watch_connect(&mut self, core: &mut Core<P>, key: Key) {
        let Some(c) = core.sh.conns.get(key) else {
            return;
        };
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&c.fd),
            token(OP_CONN, key.to_u64()),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            core.connected(key, Err(e));
        }
    }
    fn service_conn(&mut self, core: &mut Core<P>, key: Key) {
        self.service(core, key);
    }
    fn flush_datagrams(&mut self, core: &mut Core<P>) {
        self.flush_udp(core);
    }
}
