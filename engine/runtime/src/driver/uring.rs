//! The io_uring driver: multishot accept, multishot recv into a provided-buffer ring (or, for
//! the rest of a large record, one recv straight into the room the plugin reserved; a
//! connection that reads large records starts each with a one-shot recv of one buffer, so the
//! multishot recv does not copy most of it out of provided buffers first), ordered
//! sends (one in flight per connection, short writes resumed), eventfd wake-ups, multishot
//! recvmsg for UDP, and one `io_uring_enter` per loop turn (submit and wait together).
//!
//! Buffer lifetime rules, which every `unsafe` below leans on:
//! - receive buffers live in [`BufRing`], owned by the driver, which outlives the ring;
//!   a buffer goes back to the kernel only after its CQE's bytes were delivered;
//! - a send points into `Bytes` held by the connection's out-queue; the connection (and so
//!   the queue) is freed only when no operation is in flight on it, also after a cancel;
//! - the iovec array and msghdr of a vectored send live in a boxed [`SendOp`] kept by the
//!   connection until the send's CQE;
//! - a direct recv writes into the spare capacity of the connection's input buffer, which the
//!   driver takes out of the connection and holds (`Uring::direct`) until the recv's CQE, so
//!   nothing frees, grows or moves it meanwhile.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::bus::{Bus, Wake};
use crate::core::{
    ABORT, CANCELING, Core, LARGE_READS, Next, OutChunk, RECV_ARMED, RECV_CANCELING, SEND_INFLIGHT,
    sock_addr, sockaddr_to_std, std_to_sockaddr,
};
use crate::plugin::Plugin;
use crate::slab::{Key, Slab};

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_CANCEL: u64 = 4;
const OP_WAKE: u64 = 5;
const OP_UDP_RECV: u64 = 6;
const OP_UDP_SEND: u64 = 7;
const OP_CONNECT: u64 = 8;
const OP_WRITABLE: u64 = 9;
const LOW: u64 = (1 << 56) - 1;

fn ud(op: u64, v: u64) -> u64 {
    (op << 56) | (v & LOW)
}

const BGID_TCP: u16 = 1;
const BGID_UDP: u16 = 2;
const MAX_IOV: usize = 64;

/// Probe io_uring the way the driver will use it.
pub(crate) fn probe() -> super::Probe {
    static PROBED: std::sync::OnceLock<super::Probe> = std::sync::OnceLock::new();
    PROBED
        .get_or_init(|| {
            // On a thread of its own: the kernel ties a ring to the task that set it up, and
            // tearing the probe's ring down later queues work on that task with TWA_SIGNAL,
            // which makes whatever blocking call the caller's thread is in at that moment
            // (a read with a timeout, say) fail with EINTR. The helper thread takes that.
            std::thread::Builder::new()
                .name("ringwire-probe".into())
                .spawn(probe_here)
                .map_err(|e| format!("could not start the probe thread: {e}"))
                .and_then(|t| {
                    t.join()
                        .map_err(|_| "the probe thread panicked".to_string())
                })
                .unwrap_or_else(|reason| super::Probe {
                    usable: false,
                    reason,
                })
        })
        .clone()
}

/// The probe proper, on the calling thread.
fn probe_here() -> super::Probe {
    let bad = |reason: String| super::Probe {
        usable: false,
        reason,
    };
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        && v.trim() == "2"
    {
        return bad("kernel.io_uring_disabled = 2".into());
    }
    let ring = match IoUring::new(8) {
        Ok(r) => r,
        Err(e) => {
            let why = match e.raw_os_error() {
                Some(libc::EPERM) => {
                    "io_uring_setup: EPERM (blocked by seccomp or io_uring_disabled)".to_string()
                }
                Some(libc::ENOSYS) => {
                    "io_uring_setup: ENOSYS (kernel without io_uring)".to_string()
                }
                _ => format!("io_uring_setup failed: {e}"),
            };
            return bad(why);
        }
    };
    let mut p = io_uring::Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut p) {
        return bad(format!("IORING_REGISTER_PROBE failed: {e}"));
    }
    let needed = [
        (opcode::AcceptMulti::CODE, "ACCEPT"),
        (opcode::RecvMulti::CODE, "RECV"),
        (opcode::Send::CODE, "SEND"),
        (opcode::SendMsg::CODE, "SENDMSG"),
        (opcode::RecvMsgMulti::CODE, "RECVMSG"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::PollAdd::CODE, "POLL_ADD"),
    ];
    for (code, name) in needed {
        if !p.is_supported(code) {
            return bad(format!("opcode {name} not supported"));
        }
    }
    // Multishot recv and provided-buffer rings need 6.0 / 5.19: try registering one.
    match BufRing::new(&ring, 2, 64, 7, false, 2) {
        Ok(_) => {}
        Err(e) => return bad(format!("provided-buffer ring registration failed: {e}")),
    }
    if ring.params().is_feature_nodrop() {
        super::Probe {
            usable: true,
            reason: "ok".into(),
        }
    } else {
        bad("kernel lacks IORING_FEAT_NODROP".into())
    }
}

/// A provided-buffer ring: `count` buffers of `size` bytes, handed to the kernel for
/// multishot receives. An idle connection holds none of them.
///
/// Consumed incrementally where the kernel can (`IOU_PBUF_RING_INC`, Linux 6.12): a receive
/// takes only the bytes it got from the current buffer and the next one goes on right after
/// them, so many receives share a buffer and a record lies whole in one unless it crosses a
/// buffer's end. The kernel flags each completion that leaves bytes of its buffer for later
/// ones (`IORING_CQE_F_BUF_MORE`); a buffer goes back once one that does not came in.
pub(crate) struct BufRing {
    entries: *mut types::BufRingEntry,
    map_len: usize,
    mem: Box<[u8]>,
    size: usize,
    mask: u16,
    tail: u16,
    dirty: bool,
    /// Incremental consumption: where the next bytes of each buffer start.
    inc: Option<Box<[u32]>>,
    /// Buffers given back and not yet offered again, the last given back on top.
    free: Vec<u16>,
    /// Buffers offered to the kernel that it has not handed over yet.
    offered: u16,
    /// How many buffers the kernel is offered at a time: at least `min_window`, doubled
    /// when a receive found the ring empty, lowered again while it does not.
    window: u16,
    min_window: u16,
    /// A receive found the ring empty since the last [`BufRing::publish`].
    starved: bool,
    /// Buffers handed over since the window was last weighed.
    since_change: u32,
    /// Buffers handed over since the last [`BufRing::publish`], and the most in one loop
    /// turn since the window was last weighed.
    turn_taken: u32,
    peak_taken: u32,
}

impl BufRing {
    /// `count` buffers (rounded up to a power of two), of which the kernel is offered at
    /// least `window` at a time (all of them when `window` >= `count`).
    fn new(
        ring: &IoUring,
        count: u16,
        size: usize,
        bgid: u16,
        inc: bool,
        window: u16,
    ) -> io::Result<Self> {
        let count = count.max(1).next_power_of_two().min(1 << 15);
        let window = window.clamp(1, count);
        let page = 4096usize;
        let map_len =
            (count as usize * std::mem::size_of::<types::BufRingEntry>()).div_ceil(page) * page;
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut br = BufRing {
            entries: ptr.cast(),
            map_len,
            mem: vec![0u8; count as usize * size].into_boxed_slice(),
            size,
            mask: count - 1,
            tail: 0,
            dirty: false,
            inc: inc.then(|| vec![0u32; count as usize].into_boxed_slice()),
            // Buffer 0 on top: the first receives take the lowest buffers.
            free: (0..count).rev().collect(),
            offered: 0,
            window,
            min_window: window,
            starved: false,
            since_change: 0,
            turn_taken: 0,
            peak_taken: 0,
        };
        let flags = if inc {
            types::IOU_PBUF_RING_INC as u16
        } else {
            0
        };
        // SAFETY: the mapping is page-aligned, `count` entries long, and stays mapped until
        // `br` is dropped, which happens after the ring (field order in `Uring`), or right
        // here on error; the kernel reads it only while the ring lives.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ptr as u64, count, bgid, flags)?
        };
        br.publish();
        Ok(br)
    }

    /// The TCP ring of `cfg`: incremental if `cfg` asks for it and the kernel has it. Where
    /// it does not, the same memory as buffers of at most [`PLAIN_BUF`] bytes (a ring sized
    /// for receives that share buffers would have too few for receives that take one each).
    fn for_tcp(ring: &IoUring, cfg: &crate::RuntimeConfig) -> io::Result<Self> {
        let (count, size) = (cfg.recv_buffers, cfg.recv_buffer_size.clamp(1, MAX_BUF));
        let window = cfg.recv_buffer_window;
        if !cfg.recv_buffer_incremental {
            return BufRing::new(ring, count, size, BGID_TCP, false, window);
        }
        match BufRing::new(ring, count, size, BGID_TCP, true, window) {
            Ok(b) => return Ok(b),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!("io_uring: no incremental provided buffers (Linux < 6.12)");
            }
            Err(e) => return Err(e),
        }
        if size <= PLAIN_BUF {
            return BufRing::new(ring, count, size, BGID_TCP, false, window);
        }
        let total = count.max(1).next_power_of_two() as usize * size;
        let plain = (total / PLAIN_BUF).clamp(1, 1 << 15) as u16;
        let window = (window as usize * size / PLAIN_BUF).clamp(1, u16::MAX as usize) as u16;
        BufRing::new(ring, plain, PLAIN_BUF, BGID_TCP, false, window)
    }

    /// Give back buffer `bid`, which the kernel handed over: it is offered again, before
    /// the buffers given back earlier (its bytes are the likeliest to be in the CPU cache),
    /// once the kernel is offered fewer than the window ([`BufRing::publish`]).
    fn push(&mut self, bid: u16) {
        self.offered = self.offered.saturating_sub(1);
        self.since_change = self.since_change.saturating_add(1);
        self.turn_taken = self.turn_taken.saturating_add(1);
        self.free.push(bid);
    }

    /// A receive found no buffer (ENOBUFS): the next [`BufRing::publish`] offers twice as
    /// many.
    fn starved(&mut self) {
        self.starved = true;
    }

    /// Offer buffer `bid` to the kernel at the ring's tail.
    fn offer(&mut self, bid: u16) {
        let idx = (self.tail & self.mask) as usize;
        // SAFETY: `idx` <= mask < count, inside the mapping; only this thread writes entries,
        // and the kernel reads an entry only after the tail is published past it.
        let e = unsafe { &mut *self.entries.add(idx) };
        let addr = self.mem.as_ptr() as u64 + bid as u64 * self.size as u64;
        e.set_addr(addr);
        e.set_len(self.size as u32);
        e.set_bid(bid);
        if let Some(off) = self.inc.as_mut()
            && let Some(o) = off.get_mut(bid as usize)
        {
            *o = 0;
        }
        self.tail = self.tail.wrapping_add(1);
        self.offered += 1;
        self.dirty = true;
    }

    /// Bring the buffers offered up to the window and make them visible to the kernel.
    ///
    /// A ring offering every buffer cycles through all of them (8 MiB by default), so each
    /// receive writes into memory that left the CPU cache long ago. Offering only a window,
    /// refilled with the buffers given back last, keeps the bytes in rotation few. The
    /// window doubles after a receive found the ring empty (many connections with data at
    /// once). Every four rings' worth of buffers handed over, it is weighed: it halves,
    /// down to its start, if no loop turn took more than a quarter of it.
    fn publish(&mut self) {
        let count = self.mask as u32 + 1;
        self.peak_taken = self.peak_taken.max(std::mem::take(&mut self.turn_taken));
        if self.starved {
            self.starved = false;
            self.since_change = 0;
            self.peak_taken = 0;
            self.window = (self.window as u32 * 2).min(count) as u16;
        } else if self.since_change >= 4 * count {
            if self.peak_taken * 4 <= self.window as u32 {
                self.window = (self.window / 2).max(self.min_window);
            }
            self.since_change = 0;
            self.peak_taken = 0;
        }
        while self.offered < self.window
            && let Some(bid) = self.free.pop()
        {
            self.offer(bid);
        }
        if self.dirty {
            // SAFETY: the tail field lives in the first entry of the mapping; the kernel reads it
            // with acquire semantics, so a release store publishes the entries written above.
            unsafe {
                let tail = types::BufRingEntry::tail(self.entries) as *const AtomicU16;
                (*tail).store(self.tail, Ordering::Release);
            }
            self.dirty = false;
        }
    }

    /// A completion of `len` bytes (> 0) in buffer `bid` with CQE `flags`: where its bytes
    /// are in `mem`, and whether the kernel is done with the buffer (it then goes back with
    /// [`BufRing::push`] once the bytes were used).
    fn take(&mut self, bid: u16, len: usize, flags: u32) -> (std::ops::Range<usize>, bool) {
        let base = bid as usize * self.size;
        let Some(o) = self.inc.as_mut().and_then(|off| off.get_mut(bid as usize)) else {
            return (base..base + len.min(self.size), true);
        };
        let start = base + (*o as usize).min(self.size);
        let end = (start + len).min(base + self.size);
        let done = !cqueue::buffer_more(flags);
        *o = (end - base) as u32;
        (start..end, done)
    }

    /// A completion in buffer `bid` that carried no bytes (end of stream, an error): whether
    /// the buffer goes back. An incremental ring's kernel did not move past it.
    fn unused(&self) -> bool {
        self.inc.is_none()
    }

    /// The bytes the kernel wrote at `range` (from [`BufRing::take`]).
    fn bytes(&mut self, range: std::ops::Range<usize>) -> &mut [u8] {
        &mut self.mem[range]
    }

    /// The bytes the kernel wrote into buffer `bid` of a ring consumed whole (UDP).
    fn slice(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = bid as usize * self.size;
        let len = len.min(self.size);
        &mut self.mem[start..start + len]
    }
}

/// Provided buffers' size where the kernel cannot consume them incrementally.
const PLAIN_BUF: usize = 16 * 1024;
/// The largest provided buffer (a larger `recv_buffer_size` is lowered to it).
const MAX_BUF: usize = 16 << 20;

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `new` with this length and is unmapped once; the
        // ring that read it is gone (dropped first).
        unsafe { libc::munmap(self.entries.cast(), self.map_len) };
    }
}

/// iovecs and msghdr of one vectored send, alive until its CQE.
pub(crate) struct SendOp {
    iov: [libc::iovec; MAX_IOV],
    hdr: libc::msghdr,
}

impl SendOp {
    fn new() -> Box<Self> {
        // SAFETY: iovec and msghdr are plain C structs for which all-zero is valid.
        Box::new(unsafe { std::mem::zeroed() })
    }
}

/// A UDP datagram in flight: its header, address and payload stay here until the CQE.
struct UdpSend {
    sock: usize,
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_storage,
    _data: bytes::Bytes,
}

struct Listener {
    sock: Option<TcpListener>,
    armed: bool,
}

struct Udp {
    sock: Option<UdpSocket>,
    armed: bool,
    /// The plugin closed it (or the server stops): release once nothing is in flight.
    closing: bool,
    /// Sends in flight on this socket; its fd must stay open until they complete.
    sends: u32,
    /// The template msghdr multishot recvmsg reads name and control lengths from.
    hdr: Box<libc::msghdr>,
}

struct EventFd(RawFd);

impl Wake for EventFd {
    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to an eventfd this struct owns.
        unsafe { libc::write(self.0, (&one as *const u64).cast(), 8) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: the fd was created by eventfd() and is closed once, here.
        unsafe { libc::close(self.0) };
    }
}

/// The io_uring driver of one core. Field order matters: the ring is dropped before the
/// buffer rings and send ops it may still reference.
pub(crate) struct Uring {
    ring: IoUring,
    bufs: BufRing,
    udp_bufs: Option<BufRing>,
    udp_buf_cfg: (u16, usize),
    udp_sends: Slab<Box<UdpSend>>,
    /// Boxed so a SendOp's address (which the kernel holds) never moves with the Vec.
    #[allow(clippy::vec_box)]
    pool: Vec<Box<SendOp>>,
    listeners: Vec<Listener>,
    udp: Vec<Udp>,
    wake: Arc<EventFd>,
    wake_armed: bool,
    cqes: Vec<(u64, i32, u32)>,
    /// Batched waiting ([`crate::RuntimeConfig::uring_batch_wait`]): completions to wait for,
    /// and the µs after which one is enough. None: return at the first completion.
    batch: Option<(usize, u32)>,
    /// Completions the last turn must have handled for the next to wait for a batch.
    batch_busy: usize,
    /// [`crate::RuntimeConfig::busy_poll`]: how long to poll before sleeping (zero: never).
    busy_poll: Duration,
    /// Input buffers of direct receives in flight, by connection key: the kernel writes into
    /// them until their completion (after the ring in field order, like the send ops).
    direct: HashMap<u64, Vec<u8>>,
}

/// Reserved input room worth a direct receive (smaller: the provided buffers).
const DIRECT_READ_MIN: usize = 16 * 1024;

impl Uring {
    pub(crate) fn new(
        cfg: &crate::RuntimeConfig,
        listeners: Vec<TcpListener>,
        udp: Vec<UdpSocket>,
    ) -> io::Result<Self> {
        let entries = cfg.uring_entries.max(64);
        let mut b = IoUring::builder();
        b.setup_single_issuer()
            .setup_coop_taskrun()
            .setup_defer_taskrun()
            .setup_submit_all()
            .setup_cqsize(entries * 8);
        let ring = match b.build(entries) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("io_uring with DEFER_TASKRUN failed ({e}); trying plain setup");
                IoUring::builder()
                    .setup_cqsize(entries * 8)
                    .build(entries)?
            }
        };
        let batch_us = u32::try_from(cfg.uring_batch_wait.as_micros()).unwrap_or(u32::MAX);
        let batch = if batch_us == 0 {
            None
        } else if ring.params().is_feature_min_timeout() {
            Some((cfg.uring_batch_size.max(1), batch_us))
        } else {
            tracing::debug!("io_uring: no IORING_FEAT_MIN_TIMEOUT (kernel < 6.12); batch wait off");
            None
        };
        let bufs = BufRing::for_tcp(&ring, cfg)?;
        let udp_size = std::mem::size_of::<types::RecvMsgOut>()
            + std::mem::size_of::<libc::sockaddr_storage>()
            + cfg.udp_max_datagram;
        let udp_bufs = if udp.is_empty() {
            None
        } else {
            Some(BufRing::new(
                &ring,
                cfg.udp_buffers,
                udp_size,
                BGID_UDP,
                false,
                cfg.udp_buffers,
            )?)
        };
        // SAFETY: plain eventfd creation; the result is checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        let udp = udp
            .into_iter()
            .map(|s| {
                // SAFETY: all-zero is a valid msghdr.
                let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
                hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                Udp {
                    sock: Some(s),
                    armed: false,
                    closing: false,
                    sends: 0,
                    hdr,
                }
            })
            .collect();
        Ok(Uring {
            ring,
            bufs,
            udp_bufs,
            udp_buf_cfg: (cfg.udp_buffers, udp_size),
            udp_sends: Slab::new(),
            pool: Vec::new(),
            listeners: listeners
                .into_iter()
                .map(|l| Listener {
                    sock: Some(l),
                    armed: false,
                })
                .collect(),
            udp,
            wake: Arc::new(EventFd(efd)),
            wake_armed: false,
            batch,
            direct: HashMap::new(),
            batch_busy: cfg.uring_batch_busy,
            busy_poll: cfg.busy_poll,
            cqes: Vec::with_capacity(1024),
        })
    }

    pub(crate) fn waker(&self) -> Arc<dyn Wake> {
        self.wake.clone()
    }

    fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every entry built by this driver points only at memory that outlives the
            // operation (see the module doc); pushing copies the 64-byte SQE.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return;
            }
            if let Err(err) = self.ring.submit() {
                tracing::warn!("io_uring submit while SQ full: {err}");
            }
        }
    }

    fn arm_listeners(&mut self, stopping: bool) {
        if stopping {
            return;
        }
        for i in 0..self.listeners.len() {
            let l = &self.listeners[i];
            if l.armed {
                continue;
            }
            let Some(fd) = l.sock.as_ref().map(|s| s.as_raw_fd()) else {
                continue;
            };
            self.listeners[i].armed = true;
            let e = opcode::AcceptMulti::new(types::Fd(fd))
                .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
                .build()
                .user_data(ud(OP_ACCEPT, i as u64));
            self.push(e);
        }
    }

    fn arm_udp(&mut self, stopping: bool) {
        if stopping {
            return;
        }
        for i in 0..self.udp.len() {
            let u = &self.udp[i];
            if u.armed || u.closing || self.udp_bufs.is_none() {
                continue;
            }
            let Some(fd) = u.sock.as_ref().map(|s| s.as_raw_fd()) else {
                continue;
            };
            let hdr: *const libc::msghdr = &*u.hdr;
            self.udp[i].armed = true;
            let e = opcode::RecvMsgMulti::new(types::Fd(fd), hdr, BGID_UDP)
                .build()
                .user_data(ud(OP_UDP_RECV, i as u64));
            self.push(e);
        }
    }

    fn arm_wake(&mut self) {
        if !self.wake_armed {
            self.wake_armed = true;
            let e = opcode::PollAdd::new(types::Fd(self.wake.0), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(ud(OP_WAKE, 0));
            self.push(e);
        }
    }

    /// Stop accepting and receiving datagrams: cancel the multishot operations.
    fn stop_listening(&mut self) {
        for i in 0..self.listeners.len() {
            if self.listeners[i].armed {
                let e = opcode::AsyncCancel::new(ud(OP_ACCEPT, i as u64))
                    .build()
                    .user_data(ud(OP_CANCEL, 0));
                self.push(e);
            } else {
                self.listeners[i].sock = None;
            }
        }
        for i in 0..self.udp.len() {
            self.close_udp(i);
        }
    }

    fn quiescent(&self) -> bool {
        self.listeners.iter().all(|l| !l.armed)
            && self.udp.iter().all(|u| !u.armed)
            && self.udp_sends.is_empty()
    }

    /// Start the I/O a connection needs now: arm or cancel its recv, send what is queued,
    /// advance its close.
    fn service<P: Plugin>(&mut self, core: &mut Core<P>, key: Key) {
        let Some(c) = core.sh.conns.get_mut(key) else {
            return;
        };
        c.flags &= !crate::core::DIRTY;
        if c.flags & crate::core::REDELIVER != 0 {
            core.redeliver(key);
        }
        let Some(c) = core.sh.conns.get_mut(key) else {
            return;
        };
        let fd = c.fd;
        if c.flags & ABORT != 0 {
            if c.inflight == 0 {
                core.finish(key);
            } else if c.flags & CANCELING == 0 {
                c.flags |= CANCELING;
                let e = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
                    .build()
                    .user_data(ud(OP_CANCEL, 0));
                self.push(e);
            }
            return;
        }
        if c.flags & crate::core::CONNECTING != 0 {
            return; // the POLLOUT completion completes it
        }
        // Read side.
        if c.wants_read() {
            if c.flags & RECV_ARMED == 0 {
                let allow = c.read_allowance(core.sh.now);
                if allow == usize::MAX
                    && let Some((mut buf, room)) = core.take_direct_input(key, DIRECT_READ_MIN)
                {
                    // The rest of a large record goes straight into the room reserved for
                    // it: one receive into the connection's buffer instead of a copy out of
                    // every provided buffer.
                    let len = room.min(u32::MAX as usize) as u32;
                    let ptr = buf.spare_capacity_mut().as_mut_ptr();
                    // The buffer is ours until the CQE (`finish_direct` gives it back): its
                    // heap block neither moves nor is freed while the kernel writes there.
                    self.direct.insert(key.to_u64(), buf);
                    if let Some(c) = core.sh.conns.get_mut(key) {
                        c.flags |= RECV_ARMED | LARGE_READS;
                        c.inflight += 1;
                    }
                    let e = opcode::Recv::new(types::Fd(fd), ptr.cast(), len).build();
                    self.push(e.user_data(ud(OP_RECV, key.to_u64())));
                    return self.service_write(core, key);
                }
                let Some(c) = core.sh.conns.get_mut(key) else {
                    return;
                };
                c.flags |= RECV_ARMED;
                c.inflight += 1;
                let e = if allow == usize::MAX && c.flags & LARGE_READS == 0 {
                    opcode::RecvMulti::new(types::Fd(fd), BGID_TCP).build()
                } else {
                    // A throttled connection reads one budget-sized piece at a time, so a full
                    // socket buffer is not drained past the budget in one batch. One that
                    // reads large records takes one buffer: a multishot receive would copy
                    // most of the next record out of provided buffers before its header is
                    // even seen (the kernel fills up to 32 of them per wake-up).
                    let len = allow.clamp(1, self.bufs.size.min(PLAIN_BUF)) as u32;
                    opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), len)
                        .buf_group(BGID_TCP)
                        .build()
                        .flags(squeue::Flags::BUFFER_SELECT)
                };
                self.push(e.user_data(ud(OP_RECV, key.to_u64())));
            } else if c.flags & RECV_CANCELING == 0
                && !c.read_throttled()
                && core.has_direct_room(key, DIRECT_READ_MIN)
                && !self.direct.contains_key(&key.to_u64())
            {
                // Room was reserved for a large record while the multishot receive is armed:
                // stop it; once its last completion is in, the next service reads directly,
                // and the next records start with a one-shot receive.
                if let Some(c) = core.sh.conns.get_mut(key) {
                    c.flags |= LARGE_READS;
                }
                self.cancel_recv(core, key);
            }
        } else if c.flags & RECV_ARMED != 0 && c.flags & RECV_CANCELING == 0 {
            self.cancel_recv(core, key);
        }
        self.service_write(core, key);
    }

    /// Cancel the connection's armed receive (its completion clears `RECV_ARMED`).
    fn cancel_recv<P: Plugin>(&mut self, core: &mut Core<P>, key: Key) {
        if let Some(c) = core.sh.conns.get_mut(key) {
            c.flags |= RECV_CANCELING;
        }
        let e = opcode::AsyncCancel::new(ud(OP_RECV, key.to_u64()))
            .build()
            .user_data(ud(OP_CANCEL, 0));
        self.push(e);
    }

    /// The write side of [`Uring::service`], and the close's progress.
    fn service_write<P: Plugin>(&mut self, core: &mut Core<P>, key: Key) {
        let Some(c) = core.sh.conns.get_mut(key) else {
            return;
        };
        // Write side: one send in flight per connection keeps the bytes in order.
        let c_flags = c.flags;
        let out_len = c.out_len;
        if out_len > 0 && c_flags & SEND_INFLIGHT == 0 {
            let allow = core.write_gate(key);
            if allow > 0 {
                self.start_send(core, key, allow);
            }
        }
        if core.close_progress(key) == Next::Finish {
            let Some(c) = core.sh.conns.get_mut(key) else {
                return;
            };
            if c.inflight == 0 {
                core.finish(key);
            } else {
                // Graceful close finished while a recv is still armed (it will end with the FIN).
                c.flags |= ABORT;
                core.sh.mark_dirty(key);
            }
        }
    }

    fn start_send<P: Plugin>(&mut self, core: &mut Core<P>, key: Key, allow: usize) {
        let Some(c) = core.sh.conns.get_mut(key) else {
            return;
        };
        let fd = c.fd;
        let off = c.out_off as usize;
        if matches!(c.out.front(), Some(OutChunk::File(_))) {
            return self.send_file(core, key, allow);
        }
        let single = c.out.len() == 1
            || c.out.front().is_some_and(|f| f.len() - off >= allow)
            || matches!(c.out.get(1), Some(OutChunk::File(_)));
        let entry = if single {
            let Some(OutChunk::Mem(front)) = c.out.front() else {
                return;
            };
            let len = (front.len() - off).min(allow).min(u32::MAX as usize);
            // The pointer stays valid: the Bytes stays in the queue until this send's CQE.
            let ptr = front[off..].as_ptr();
            opcode::Send::new(types::Fd(fd), ptr, len as u32).flags(libc::MSG_NOSIGNAL)
        } else {
            let mut op = c
                .ext
                .as_mut()
                .and_then(|e| e.sendop.take())
                .or_else(|| self.pool.pop())
                .unwrap_or_else(SendOp::new);
            let mut n = 0;
            let mut total = 0usize;
            for (i, b) in c.out.iter().enumerate() {
                if n == MAX_IOV || total >= allow {
                    break;
                }
                // A file range is written on its own, after the bytes before it.
                let OutChunk::Mem(b) = b else { break };
                let s = if i == 0 { &b[off..] } else { &b[..] };
                let len = s.len().min(allow - total);
                op.iov[n] = libc::iovec {
                    iov_base: s.as_ptr() as *mut libc::c_void,
                    iov_len: len,
                };
                total += len;
                n += 1;
            }
            op.hdr.msg_iov = op.iov.as_mut_ptr();
            op.hdr.msg_iovlen = n as _;
            let hdr: *const libc::msghdr = &op.hdr;
            c.ext().sendop = Some(op);
            return self.finish_send_entry(
                core,
                key,
                opcode::SendMsg::new(types::Fd(fd), hdr)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build(),
            );
        };
        self.finish_send_entry(core, key, entry.build());
    }

    /// The front of the out-queue is a file range: sendfile(2) it now, outside the ring (the
    /// ring has no sendfile; splice would need a pipe per connection), until the socket is full,
    /// then wait for POLLOUT through the ring. Counts as the connection's send in flight.
    fn send_file<P: Plugin>(&mut self, core: &mut Core<P>, key: Key, mut allow: usize) {
        loop {
            let Some(c) = core.sh.conns.get_mut(key) else {
                return;
            };
            if allow == 0 || c.flags & (ABORT | SEND_INFLIGHT) != 0 {
                return;
            }
            if !matches!(c.out.front(), Some(OutChunk::File(_))) {
                // Bytes follow the file: the next service sends them.
                if c.out_len > 0 {
                    core.sh.mark_dirty(key);
                }
                return;
            }
            match super::sendfile_front(c, allow) {
                super::FileStep::Sent(n) => {
                    if n > 0 {
                        allow = allow.saturating_sub(n);
                        core.sh.stats.file_bytes_out += n as u64;
                        core.sent(key, n);
                    }
                }
                super::FileStep::Blocked => {
                    c.flags |= SEND_INFLIGHT;
                    c.inflight += 1;
                    let e = opcode::PollAdd::new(types::Fd(c.fd), libc::POLLOUT as u32)
                        .build()
                        .user_data(ud(OP_WRITABLE, key.to_u64()));
                    self.push(e);
                    return;
                }
                super::FileStep::Failed(e) => {
                    core.error(key, e);
                    return;
                }
            }
        }
    }

    fn finish_send_entry<P: Plugin>(&mut self, core: &mut Core<P>, key: Key, e: squeue::Entry) {
        if let Some(c) = core.sh.conns.get_mut(key) {
            c.flags |= SEND_INFLIGHT;
            c.inflight += 1;
        }
        self.push(e.user_data(ud(OP_SEND, key.to_u64())));
    }

    /// Stop receiving on UDP socket `i`; its fd closes once no operation refers to it.
    fn close_udp(&mut self, i: usize) {
        let Some(u) = self.udp.get_mut(i) else { return };
        if u.sock.is_none() || u.closing {
            return;
        }
        u.closing = true;
        if u.armed {
            let e = opcode::AsyncCancel::new(ud(OP_UDP_RECV, i as u64))
                .build()
                .user_data(ud(OP_CANCEL, 0));
            self.push(e);
        }
    }

    /// Release closed UDP sockets nothing refers to any more; their ids become free again.
    fn release_udp<P: Plugin>(&mut self, core: &mut Core<P>) {
        for (i, u) in self.udp.iter_mut().enumerate() {
            if u.closing && !u.armed && u.sends == 0 && u.sock.is_some() {
                u.sock = None;
                u.closing = false;
                if !core.sh.stopping {
                    core.sh.udp_free.push(i);
                }
            }
        }
    }

    fn flush_udp<P: Plugin>(&mut self, core: &mut Core<P>) {
        let ops = std::mem::take(&mut core.sh.udp_ops);
        let mut closes = Vec::new();
        for op in ops {
            match op {
                crate::core::UdpOp::Add(id, sock) => {
                    if self.udp_bufs.is_none() {
                        let (n, size) = self.udp_buf_cfg;
                        match BufRing::new(&self.ring, n, size, BGID_UDP, false, n) {
                            Ok(b) => self.udp_bufs = Some(b),
                            Err(e) => tracing::warn!("UDP buffer ring registration failed: {e}"),
                        }
                    }
                    // SAFETY: all-zero is a valid msghdr.
                    let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
                    hdr.msg_namelen =
                        std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                    let u = Udp {
                        sock: Some(sock),
                        armed: false,
                        closing: false,
                        sends: 0,
                        hdr,
                    };
                    if self.udp.len() <= id {
                        self.udp.resize_with(id + 1, || {
                            // SAFETY: all-zero is a valid msghdr.
                            let hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
                            Udp {
                                sock: None,
                                armed: false,
                                closing: false,
                                sends: 0,
                                hdr,
                            }
                        });
                    }
                    self.udp[id] = u;
                }
                crate::core::UdpOp::Close(id) => closes.push(id),
            }
        }
        self.arm_udp(core.sh.stopping);
        self.send_datagrams(core);
        for id in closes {
            self.close_udp(id);
        }
        self.release_udp(core);
    }

    fn send_datagrams<P: Plugin>(&mut self, core: &mut Core<P>) {
        for out in core.sh.udp_out.drain(..) {
            let Some(fd) = self
                .udp
                .get(out.sock.0)
                .and_then(|u| u.sock.as_ref())
                .map(|s| s.as_raw_fd())
            else {
                core.sh.stats.datagrams_dropped += 1;
                continue;
            };
            let (addr, alen) = std_to_sockaddr(&out.to);
            if let Some(u) = self.udp.get_mut(out.sock.0) {
                u.sends += 1;
            }
            let mut op = Box::new(UdpSend {
                sock: out.sock.0,
                // SAFETY: all-zero is a valid msghdr.
                hdr: unsafe { std::mem::zeroed() },
                iov: libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                },
                addr,
                _data: out.data.clone(),
            });
            op.iov = libc::iovec {
                iov_base: out.data.as_ptr() as *mut libc::c_void,
                iov_len: out.data.len(),
            };
            op.hdr.msg_name = (&mut op.addr as *mut libc::sockaddr_storage).cast();
            op.hdr.msg_namelen = alen;
            op.hdr.msg_iov = &mut op.iov;
            op.hdr.msg_iovlen = 1;
            let hdr: *const libc::msghdr = &op.hdr;
            let k = self.udp_sends.insert(op);
            let e = opcode::SendMsg::new(types::Fd(fd), hdr)
                .build()
                .user_data(ud(OP_UDP_SEND, k.to_u64()));
            self.push(e);
        }
    }

    /// Run the core until it stops.
    pub(crate) fn run<P: Plugin>(mut self, core: &mut Core<P>, bus: &Bus) -> io::Result<()> {
        let mut stop_at: Option<Instant> = None;
        loop {
            core.sh.now = Instant::now();
            self.arm_wake();
            self.arm_listeners(core.sh.stopping);
            self.arm_udp(core.sh.stopping);
            core.settle(&mut self);
            self.bufs.publish();
            core.sh.stats.recv_buffer_window = self.bufs.window as u64;
            if let Some(u) = self.udp_bufs.as_mut() {
                u.publish();
            }
            if core.sh.stopping && core.sh.conns.is_empty() && self.quiescent() {
                break;
            }
            if let Some(t) = stop_at
                && Instant::now() > t + Duration::from_secs(2)
            {
                tracing::warn!(
                    core = core.sh.core,
                    "io_uring driver did not quiesce after the shutdown deadline"
                );
                // Leak what the kernel may still reference rather than free it under it.
                std::mem::forget(std::mem::take(&mut self.udp_sends));
                break;
            }
            // One io_uring_enter: submit everything and wait for a completion or the next timer.
            let mut wait = core
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            // With a batch wait, the kernel returns once `want` completions are there, or
            // once `us` passed and at least one is. Only a busy core waits so: after a quiet
            // turn, the next completion is handled at once.
            let batch = self.batch.filter(|_| self.cqes.len() >= self.batch_busy);
            let would_wait = !wait.is_some_and(|d| d.is_zero());
            // A busy poll first, for up to `busy_poll` (or the next timer, if sooner).
            let polled = would_wait
                && !self.busy_poll.is_zero()
                && self.poll_completions(wait.map_or(self.busy_poll, |d| d.min(self.busy_poll)))?;
            if would_wait && !polled && !self.busy_poll.is_zero() {
                // The poll took its time: wait only for what is left until the next timer.
                wait = core
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()));
            }
            if polled {
                core.sh.stats.busy_polls += 1;
            } else if batch.is_some() && would_wait {
                core.sh.stats.batch_waits += 1;
            }
            let r = match (wait, batch) {
                _ if polled => Ok(0),
                (Some(d), _) if d.is_zero() => self.ring.submit(),
                (Some(d), Some((want, us))) => {
                    let ts = types::Timespec::from(d);
                    let args = types::SubmitArgs::new().min_wait_usec(us).timespec(&ts);
                    self.ring.submitter().submit_with_args(want, &args)
                }
                (None, Some((want, us))) => {
                    let args = types::SubmitArgs::new().min_wait_usec(us);
                    self.ring.submitter().submit_with_args(want, &args)
                }
                (Some(d), None) => {
                    let ts = types::Timespec::from(d);
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                }
                (None, None) => self.ring.submit_and_wait(1),
            };
            if let Err(e) = r {
                match e.raw_os_error() {
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                    | Some(libc::EAGAIN) => {}
                    _ => return Err(e),
                }
            }
            core.sh.now = Instant::now();
            self.cqes.clear();
            self.cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            let cqes = std::mem::take(&mut self.cqes);
            for &(u, res, flags) in &cqes {
                self.complete(core, bus, u, res, flags);
            }
            self.cqes = cqes;
            core.fire_timers();
            if core.sh.stopping && stop_at.is_none() {
                stop_at = Some(core.sh.now + core.sh.cfg.shutdown_timeout);
            }
        }
        core.publish_stats();
        Ok(())
    }

    /// Busy poll ([`crate::RuntimeConfig::busy_poll`]): submit what is queued, then reap
    /// completions without sleeping until one is there (true) or `limit` passed (false).
    fn poll_completions(&mut self, limit: Duration) -> io::Result<bool> {
        const IORING_ENTER_GETEVENTS: u32 = 1;
        // The errors a turn's own io_uring_enter shrugs off; the next turn retries.
        let passing = |e: &io::Error| {
            matches!(
                e.raw_os_error(),
                Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
            )
        };
        if let Err(e) = self.ring.submit()
            && !passing(&e)
        {
            return Err(e);
        }
        super::poll_until(limit, || {
            // With DEFER_TASKRUN, completions are posted only inside an io_uring_enter that
            // asks for events: one with GETEVENTS and min_complete 0 runs that work and
            // returns at once.
            // SAFETY: no submissions, no argument pointer (None) and only GETEVENTS: this
            // call touches no memory of ours besides the rings the kernel already maps.
            let r = unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(0, 0, IORING_ENTER_GETEVENTS, None)
            };
            if let Err(e) = r
                && !passing(&e)
            {
                return Err(e);
            }
            Ok(!self.ring.completion().is_empty())
        })
    }

    fn complete<P: Plugin>(&mut self, core: &mut Core<P>, bus: &Bus, u: u64, res: i32, flags: u32) {
        let v = u & LOW;
        match u >> 56 {
            OP_RECV => {
                let key = Key::from_u64(v);
                let more = cqueue::more(flags);
                let bid = cqueue::buffer_select(flags);
                if !more && let Some(c) = core.sh.conns.get_mut(key) {
                    c.flags &= !(RECV_ARMED | RECV_CANCELING);
                    c.inflight -= 1;
                    core.sh.mark_dirty(key);
                }
                // A direct receive selects no provided buffer; the map is looked up (hashed)
                // only when one may be in flight, not for every receive.
                let direct = if bid.is_none() && !self.direct.is_empty() {
                    self.direct.remove(&v)
                } else {
                    None
                };
                if let Some(mut buf) = direct {
                    // A direct receive into the connection's own buffer.
                    let n = usize::try_from(res).unwrap_or(0);
                    let len = buf.len() + n;
                    assert!(len <= buf.capacity(), "direct receive past its room");
                    // SAFETY: the kernel wrote `n` bytes into the spare capacity right after
                    // `buf.len()`, within the room the receive was given (checked above);
                    // `u8` has no invalid bit patterns.
                    unsafe { buf.set_len(len) };
                    core.finish_direct(key, buf, n);
                    match res {
                        0 => core.eof(key),
                        r if r < 0 => match -r {
                            libc::ECANCELED | libc::EINTR | libc::EAGAIN => {}
                            e => core.error(key, io::Error::from_raw_os_error(e)),
                        },
                        _ => {}
                    }
                    return;
                }
                if res > 0 {
                    if let Some(bid) = bid {
                        // Whether this buffer starts a record (nothing partial was kept).
                        let at_boundary =
                            core.sh.conns.get(key).is_some_and(|c| c.inbuf().is_empty());
                        let (at, done) = self.bufs.take(bid, res as usize, flags);
                        core.deliver(key, self.bufs.bytes(at));
                        if done {
                            self.bufs.push(bid);
                        }
                        if more && core.has_direct_room(key, DIRECT_READ_MIN) {
                            // The plugin reserved room for a large record: the next service
                            // swaps the multishot receive for a direct one.
                            core.sh.mark_dirty(key);
                        } else if !more
                            && at_boundary
                            && let Some(c) = core.sh.conns.get_mut(key)
                            && c.flags & LARGE_READS != 0
                            && c.inbuf().is_empty()
                        {
                            // The buffer held whole records only (it began and ended on a
                            // record boundary): small records again, back to the multishot
                            // receive. A buffer that ends a large record's tail does not
                            // count: the next record is likely large too.
                            c.flags &= !LARGE_READS;
                        }
                    }
                } else if res == 0 {
                    if let Some(bid) = bid.filter(|_| self.bufs.unused()) {
                        self.bufs.push(bid);
                    }
                    core.eof(key);
                } else {
                    if let Some(bid) = bid.filter(|_| self.bufs.unused()) {
                        self.bufs.push(bid);
                    }
                    match -res {
                        // The ring ran dry: buffers come back in this batch; the recv is
                        // re-armed when the connection is serviced.
                        libc::ENOBUFS => {
                            core.sh.stats.recv_nobufs += 1;
                            self.bufs.starved();
                        }
                        libc::ECANCELED | libc::EINTR | libc::EAGAIN => {}
                        e => core.error(key, io::Error::from_raw_os_error(e)),
                    }
                }
            }
            OP_SEND => {
                let key = Key::from_u64(v);
                if let Some(c) = core.sh.conns.get_mut(key) {
                    c.flags &= !SEND_INFLIGHT;
                    c.inflight -= 1;
                    if let Some(op) = c.ext.as_mut().and_then(|e| e.sendop.take()) {
                        self.pool.push(op);
                    }
                    core.sh.mark_dirty(key);
                }
                if res >= 0 {
                    core.sent(key, res as usize);
                } else {
                    match -res {
                        libc::EAGAIN | libc::EINTR => {}
                        e => core.error(key, io::Error::from_raw_os_error(e)),
                    }
                }
            }
            OP_WRITABLE => {
                // The socket drained below its low-water mark (or the poll was cancelled): the
                // next service goes on with sendfile, which reports any error itself.
                let key = Key::from_u64(v);
                if let Some(c) = core.sh.conns.get_mut(key) {
                    c.flags &= !SEND_INFLIGHT;
                    c.inflight -= 1;
                    core.sh.mark_dirty(key);
                }
            }
            OP_CONNECT => {
                let key = Key::from_u64(v);
                if let Some(c) = core.sh.conns.get_mut(key) {
                    c.inflight -= 1;
                    let fd = c.fd;
                    let r = if res < 0 {
                        Err(io::Error::from_raw_os_error(-res))
                    } else {
                        super::connect_result(fd)
                    };
                    core.connected(key, r);
                    core.sh.mark_dirty(key);
                }
            }
            OP_ACCEPT => {
                let i = v as usize;
                if !cqueue::more(flags)
                    && let Some(l) = self.listeners.get_mut(i)
                {
                    l.armed = false;
                    if core.sh.stopping {
                        l.sock = None;
                    }
                }
                if res >= 0 {
                    self.accepted(core, res, i);
                } else if -res != libc::ECANCELED {
                    tracing::warn!(
                        core = core.sh.core,
                        "accept failed: {}",
                        io::Error::from_raw_os_error(-res)
                    );
                }
            }
            OP_WAKE => {
                if !cqueue::more(flags) {
                    self.wake_armed = false;
                }
                let mut buf = 0u64;
                // SAFETY: reading 8 bytes into a live u64 from the non-blocking eventfd we own.
                unsafe { libc::read(self.wake.0, (&mut buf as *mut u64).cast(), 8) };
                if core.drain_inbox(bus) && !core.sh.stopping {
                    self.stop_listening();
                    core.begin_stop();
                }
            }
            OP_UDP_RECV => {
                let i = v as usize;
                let more = cqueue::more(flags);
                if !more && let Some(u) = self.udp.get_mut(i) {
                    u.armed = false;
                    if core.sh.stopping {
                        u.closing = true;
                    }
                    self.release_udp(core);
                }
                let Some(bid) = cqueue::buffer_select(flags) else {
                    return;
                };
                let Some(ub) = self.udp_bufs.as_mut() else {
                    return;
                };
                if res > 0
                    && let Some(u) = self.udp.get(i)
                {
                    let buf = ub.slice(bid, res as usize);
                    if let Ok(msg) = types::RecvMsgOut::parse(buf, &u.hdr) {
                        let from = {
                            let name = msg.name_data();
                            // SAFETY: all-zero is a valid sockaddr_storage.
                            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                            let n = name
                                .len()
                                .min(std::mem::size_of::<libc::sockaddr_storage>());
                            // SAFETY: copying `n` bytes into a storage at least that large.
                            unsafe {
                                std::ptr::copy_nonoverlapping(
                                    name.as_ptr(),
                                    (&mut ss as *mut libc::sockaddr_storage).cast::<u8>(),
                                    n,
                                )
                            };
                            sockaddr_to_std(&ss, n as libc::socklen_t)
                        };
                        if msg.is_payload_truncated() {
                            core.sh.stats.datagrams_dropped += 1;
                        } else if let Some(from) = from {
                            let payload = msg.payload_data();
                            let (off, len) = (
                                payload.as_ptr() as usize - buf.as_ptr() as usize,
                                payload.len(),
                            );
                            let b = &mut buf[off..off + len];
                            core.datagram(i, from, b);
                        }
                    }
                }
                if let Some(ub) = self.udp_bufs.as_mut() {
                    ub.push(bid);
                }
            }
            OP_UDP_SEND => {
                let k = Key::from_u64(v);
                if let Some(op) = self.udp_sends.remove(k) {
                    if let Some(u) = self.udp.get_mut(op.sock) {
                        u.sends = u.sends.saturating_sub(1);
                    }
                    self.release_udp(core);
                    if res >= 0 {
                        core.sh.stats.datagrams_out += 1;
                    } else {
                        core.sh.stats.datagrams_dropped += 1;
                    }
                }
            }
            _ => {}
        }
    }

    fn accepted<P: Plugin>(&mut self, core: &mut Core<P>, fd: RawFd, listener: usize) {
        if !core.admit() {
            // SAFETY: `fd` was just accepted and is owned by nobody else.
            unsafe { libc::close(fd) };
            return;
        }
        set_nodelay(fd, core.sh.cfg.nodelay);
        // Multishot accept reports no address: one getpeername.
        let peer = sock_addr(fd, true).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        if let Some(key) = core.open(fd, listener, peer) {
            core.sh.mark_dirty(key);
        }
    }
}

pub(crate) fn set_nodelay(fd: RawFd, on: bool) {
    if on {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on an open socket with a live int of the right size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
}

impl<P: Plugin> crate::core::Io<P> for Uring {
    fn watch_connect(&mut self, core: &mut Core<P>, key: Key) {
        let Some(c) = core.sh.conns.get_mut(key) else {
            return;
        };
        c.inflight += 1;
        let e = opcode::PollAdd::new(types::Fd(c.fd), libc::POLLOUT as u32)
            .build()
            .user_data(ud(OP_CONNECT, key.to_u64()));
        self.push(e);
    }
    fn service_conn(&mut self, core: &mut Core<P>, key: Key) {
        self.service(core, key);
    }
    fn flush_datagrams(&mut self, core: &mut Core<P>) {
        self.flush_udp(core);
    }
}
