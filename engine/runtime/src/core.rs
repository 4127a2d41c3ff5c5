//! What both drivers share: the connection table, out-queues, close state machine, throttles,
//! timers, the bus inbox, and the contexts plugins write through.
//!
//! A driver owns the loop and the syscalls. It calls into [`Core`] when something happened
//! (accepted, bytes read, bytes sent, EOF, error) and, after each batch, services the
//! connections the plugin touched (the `dirty` list): it starts sends, pauses or resumes reads,
//! and moves closing connections along. Nothing here makes a syscall except `shutdown(2)`,
//! `setsockopt(SO_LINGER)` and the final `close(2)`, which both drivers need identically.

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bus::{BusMessage, BusSender, Envelope};
use crate::config::{OverflowPolicy, Rate, RuntimeConfig, Throttle};
use crate::deadline::{Deadlines, Sweep};
use crate::plugin::{CloseReason, ConnId, ListenerId, Plugin, SendError, UdpId, core_ctx};
use crate::slab::{Key, Slab};
use crate::timer::{TimerKey, TimerWheel};

// Connection flags.
pub(crate) const DIRTY: u32 = 1;
/// Graceful close requested: flush, FIN, wait for the peer's FIN.
pub(crate) const CLOSING: u32 = 1 << 1;
/// Abort requested: drop what is queued, RST.
pub(crate) const ABORT: u32 = 1 << 2;
/// EOF or a read error was seen.
pub(crate) const READ_CLOSED: u32 = 1 << 3;
/// shutdown(SHUT_WR) done.
pub(crate) const WR_SHUT: u32 = 1 << 4;
/// The plugin paused reading.
pub(crate) const PAUSED: u32 = 1 << 5;
/// The read throttle paused reading.
pub(crate) const THROTTLED_R: u32 = 1 << 6;
/// The write throttle holds writes until its timer.
pub(crate) const THROTTLED_W: u32 = 1 << 7;
/// io_uring: a multishot recv is armed.
pub(crate) const RECV_ARMED: u32 = 1 << 8;
/// io_uring: a send is in flight.
pub(crate) const SEND_INFLIGHT: u32 = 1 << 9;
/// io_uring: a cancel of everything on the fd was submitted.
pub(crate) const CANCELING: u32 = 1 << 10;
/// io_uring: a cancel of the recv alone was submitted.
pub(crate) const RECV_CANCELING: u32 = 1 << 11;
/// epoll: the socket may have bytes to read (edge seen, not yet read to EAGAIN).
pub(crate) const READ_READY: u32 = 1 << 12;
/// epoll: the last write hit EAGAIN; wait for a writable edge.
pub(crate) const WRITE_BLOCKED: u32 = 1 << 13;
/// The plugin was told about EOF.
pub(crate) const EOF_TOLD: u32 = 1 << 14;
/// The linger timer is armed.
pub(crate) const LINGERING: u32 = 1 << 15;
/// The out-queue was non-empty since the last drained callback.
pub(crate) const WAS_BUSY: u32 = 1 << 16;
/// epoll: the peer's FIN (or an error) was signalled; read until EOF, no short-read shortcut.
pub(crate) const RDHUP: u32 = 1 << 18;
/// Reading resumed with unconsumed input buffered: offer it to the plugin again.
pub(crate) const REDELIVER: u32 = 1 << 17;
/// An outgoing connection whose connect has not completed.
pub(crate) const CONNECTING: u32 = 1 << 19;
/// io_uring: the connection reads large records (its plugin reserved room worth a direct
/// receive): arm a one-shot receive of one provided buffer instead of the multishot one, so
/// the next record's start comes in alone and the rest of it goes straight into its room.
pub(crate) const LARGE_READS: u32 = 1 << 20;

/// Per-connection tables smaller than this are not worth a walk of malloc's free lists when
/// they grow (what their growth freed is under a page or two).
const TABLES_RELEASE_MIN: usize = 256 * 1024;

/// The listener index of outgoing connections ([`CoreCtx::connect`]).
pub(crate) const OUTGOING: u16 = u16::MAX;

/// A throttle's running budget for one direction.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: Rate,
    budget: i64,
    last: Instant,
}

impl Bucket {
    fn new(rate: Rate, now: Instant) -> Self {
        Bucket {
            rate,
            budget: rate.burst as i64,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last);
        let add = (dt.as_nanos() * self.rate.bytes_per_sec as u128 / 1_000_000_000) as i64;
        if add > 0 {
            self.budget = (self.budget + add).min(self.rate.burst as i64);
            self.last = now;
        }
    }

    /// Bytes that may pass now (0 when exhausted).
    pub(crate) fn available(&mut self, now: Instant) -> usize {
        self.refill(now);
        self.budget.max(0) as usize
    }

    pub(crate) fn spend(&mut self, n: usize) {
        self.budget -= n as i64;
    }

    /// How long until the budget is back to a useful size (a quarter of the burst).
    pub(crate) fn wait(&self) -> Duration {
        let want = (self.rate.burst as i64 / 4).max(1) - self.budget;
        let ns =
            (want.max(1) as u128 * 1_000_000_000 / self.rate.bytes_per_sec.max(1) as u128) as u64;
        Duration::from_nanos(ns).max(Duration::from_millis(1))
    }
}

/// Throttle state for one connection.
#[derive(Debug, Default)]
pub(crate) struct ThrottleState {
    pub read: Option<Bucket>,
    pub write: Option<Bucket>,
}

/// A range of a file queued with [`ConnCtx::send_file`]: written with sendfile(2), the bytes
/// go from the page cache to the socket without passing through user space.
pub(crate) struct FileSlice {
    pub file: Arc<std::fs::File>,
    pub off: u64,
    pub len: usize,
}

/// One entry of a connection's out-queue.
pub(crate) enum OutChunk {
    Mem(Bytes),
    File(FileSlice),
}

impl OutChunk {
    pub(crate) fn len(&self) -> usize {
        match self {
            OutChunk::Mem(b) => b.len(),
            OutChunk::File(f) => f.len,
        }
    }
}

/// A connection's out-queue. A lone chunk (most sends to a connection that keeps up) is held
/// inline; a second one moves the queue to a `VecDeque`, which keeps its storage while the
/// connection is busy and gives it back in the idle sweep ([`Shared::trim_idle`]).
#[derive(Default)]
pub(crate) enum OutQueue {
    #[default]
    Empty,
    One(OutChunk),
    Many(VecDeque<OutChunk>),
}

impl OutQueue {
    pub(crate) fn as_slices(&self) -> (&[OutChunk], &[OutChunk]) {
        match self {
            OutQueue::Empty => (&[], &[]),
            OutQueue::One(c) => (std::slice::from_ref(c), &[]),
            OutQueue::Many(v) => v.as_slices(),
        }
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = &OutChunk> {
        let (a, b) = self.as_slices();
        a.iter().chain(b)
    }
    pub(crate) fn len(&self) -> usize {
        match self {
            OutQueue::Empty => 0,
            OutQueue::One(_) => 1,
            OutQueue::Many(v) => v.len(),
        }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(crate) fn front(&self) -> Option<&OutChunk> {
        match self {
            OutQueue::Empty => None,
            OutQueue::One(c) => Some(c),
            OutQueue::Many(v) => v.front(),
        }
    }
    pub(crate) fn front_mut(&mut self) -> Option<&mut OutChunk> {
        match self {
            OutQueue::Empty => None,
            OutQueue::One(c) => Some(c),
            OutQueue::Many(v) => v.front_mut(),
        }
    }
    pub(crate) fn get(&self, i: usize) -> Option<&OutChunk> {
        match self {
            OutQueue::Many(v) => v.get(i),
            _ if i == 0 => self.front(),
            _ => None,
        }
    }
    pub(crate) fn push_back(&mut self, chunk: OutChunk) {
        match self {
            OutQueue::Empty => *self = OutQueue::One(chunk),
            OutQueue::Many(v) => v.push_back(chunk),
            OutQueue::One(_) => {
                let OutQueue::One(first) = std::mem::take(self) else {
                    return;
                };
                let mut v = VecDeque::with_capacity(4);
                v.push_back(first);
                v.push_back(chunk);
                *self = OutQueue::Many(v);
            }
        }
    }
    pub(crate) fn pop_front(&mut self) -> Option<OutChunk> {
        match self {
            OutQueue::Empty => None,
            OutQueue::Many(v) => v.pop_front(),
            OutQueue::One(_) => match std::mem::take(self) {
                OutQueue::One(c) => Some(c),
                _ => None,
            },
        }
    }
    /// Heap storage held (chunks' room, in entries).
    pub(crate) fn capacity(&self) -> usize {
        match self {
            OutQueue::Many(v) => v.capacity(),
            _ => 0,
        }
    }
    /// Give back the storage of an empty queue.
    pub(crate) fn release_if_empty(&mut self) {
        if self.is_empty() {
            *self = OutQueue::Empty;
        }
    }
}

/// A connection's peer address in 24 bytes (a `SocketAddr` takes 32): the IP (an IPv4 one as
/// its 4 bytes), the port and the IPv6 scope id. The IPv6 flow label is not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PeerAddr {
    ip: [u8; 16],
    scope_id: u32,
    port: u16,
    v6: bool,
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> Self {
        match a {
            SocketAddr::V4(a) => {
                let mut ip = [0; 16];
                ip[..4].copy_from_slice(&a.ip().octets());
                PeerAddr {
                    ip,
                    scope_id: 0,
                    port: a.port(),
                    v6: false,
                }
            }
            SocketAddr::V6(a) => PeerAddr {
                ip: a.ip().octets(),
                scope_id: a.scope_id(),
                port: a.port(),
                v6: true,
            },
        }
    }
}

impl PeerAddr {
    pub(crate) fn get(self) -> SocketAddr {
        if self.v6 {
            let ip = std::net::Ipv6Addr::from(self.ip);
            SocketAddr::V6(std::net::SocketAddrV6::new(ip, self.port, 0, self.scope_id))
        } else {
            let [a, b, c, d, ..] = self.ip;
            SocketAddr::from(([a, b, c, d], self.port))
        }
    }
}

/// Runtime state of one TCP connection. Idle, it owns no buffer: the out-queue and the input
/// remainder are empty and unallocated.
pub(crate) struct Conn {
    pub fd: RawFd,
    pub flags: u32,
    /// io_uring operations in flight on this fd; the slot is freed only at zero.
    pub inflight: u16,
    pub listener: u16,
    /// The peer's address (24 bytes, where a `SocketAddr` takes 32). The local one is not
    /// kept: [`ConnCtx::local_addr`] asks the kernel.
    pub peer: PeerAddr,
    pub out: OutQueue,
    /// Bytes queued (at most [`MAX_OUT_LIMIT`] past `max_out`: 32 bits hold it).
    pub out_len: u32,
    /// Bytes of `out.front()` already written.
    pub out_off: u32,
    /// The out-queue limit, at most [`MAX_OUT_LIMIT`].
    pub max_out: u32,
    pub policy: OverflowPolicy,
    pub reason: Option<CloseReason>,
    /// What few connections need ([`ConnExt`]); `None` on an idle plain connection.
    pub ext: Option<Box<ConnExt>>,
}

/// The part of a connection few connections need, boxed so that an idle plain connection
/// does not carry it: the input remainder, a throttle, the iovecs of an io_uring vectored
/// send, a TLS session. The idle sweep ([`Shared::trim_idle`]) frees it once it is empty.
#[derive(Default)]
pub(crate) struct ConnExt {
    /// Input the plugin left unconsumed, offered again with what arrives next.
    pub inbuf: Vec<u8>,
    pub throttle: Option<ThrottleState>,
    /// io_uring: iovecs of the send in flight (kept until its CQE).
    pub sendop: Option<Box<crate::driver::SendOp>>,
    /// TLS session, on a TLS listener's connections.
    pub tls: Option<Box<crate::tls::TlsConn>>,
}

impl ConnExt {
    fn is_empty(&self) -> bool {
        self.inbuf.capacity() == 0
            && self.throttle.is_none()
            && self.sendop.is_none()
            && self.tls.is_none()
    }
}

impl Conn {
    /// The boxed part, made on first use.
    pub(crate) fn ext(&mut self) -> &mut ConnExt {
        self.ext.get_or_insert_with(Default::default)
    }

    /// Count `n` more bytes queued. [`Shared::admit`] keeps the queue under `max_out`
    /// ([`MAX_OUT_LIMIT`] at most), and TLS framing adds little to that: the sum stays far
    /// below 2^32.
    #[inline]
    pub(crate) fn count_out(&mut self, n: usize) {
        self.out_len += n as u32;
    }

    /// Unconsumed input (empty when none is kept).
    pub(crate) fn inbuf(&self) -> &[u8] {
        self.ext.as_ref().map_or(&[], |e| &e.inbuf)
    }

    /// Take the unconsumed input out (leaving none).
    pub(crate) fn take_inbuf(&mut self) -> Vec<u8> {
        self.ext
            .as_mut()
            .map(|e| std::mem::take(&mut e.inbuf))
            .unwrap_or_default()
    }

    /// Drop the unconsumed input and its storage.
    pub(crate) fn free_inbuf(&mut self) {
        if let Some(e) = self.ext.as_mut() {
            e.inbuf = Vec::new();
        }
    }

    pub(crate) fn tls(&self) -> Option<&crate::tls::TlsConn> {
        self.ext.as_ref().and_then(|e| e.tls.as_deref())
    }

    pub(crate) fn tls_mut(&mut self) -> Option<&mut crate::tls::TlsConn> {
        self.ext.as_mut().and_then(|e| e.tls.as_deref_mut())
    }

    /// A read throttle is set (its reads are budget-sized, never direct).
    pub(crate) fn read_throttled(&self) -> bool {
        self.ext
            .as_ref()
            .and_then(|e| e.throttle.as_ref())
            .is_some_and(|t| t.read.is_some())
    }

    pub(crate) fn throttle_mut(&mut self) -> Option<&mut ThrottleState> {
        self.ext.as_mut().and_then(|e| e.throttle.as_mut())
    }

    /// Free the boxed part if nothing is left in it.
    pub(crate) fn release_ext_if_empty(&mut self) {
        if self.ext.as_ref().is_some_and(|e| e.is_empty()) {
            self.ext = None;
        }
    }

    /// Reading is wanted: not at EOF, not paused (a closing connection reads to see the FIN).
    pub(crate) fn wants_read(&self) -> bool {
        if self.flags & (READ_CLOSED | ABORT) != 0 {
            return false;
        }
        if self.flags & CLOSING != 0 {
            return true;
        }
        self.flags & (PAUSED | THROTTLED_R) == 0
    }

    /// Mark `n` bytes at the front of the out-queue as written.
    pub(crate) fn advance_out(&mut self, n: usize) {
        let total = n;
        let mut n = n + self.out_off as usize;
        while let Some(front) = self.out.front() {
            if n >= front.len() {
                n -= front.len();
                self.out.pop_front();
            } else {
                break;
            }
        }
        // Both fit: the queue holds at most `out_len` bytes, and `out_len` fits in 32 bits.
        self.out_off = n as u32;
        self.out_len -= total as u32;
        if self.out.is_empty() {
            self.out_off = 0;
            // An idle connection keeps no queue memory around.
            if self.out.capacity() > 16 {
                self.out = OutQueue::Empty;
            }
        }
    }

    /// The read budget now (usize::MAX when not throttled).
    pub(crate) fn read_allowance(&mut self, now: Instant) -> usize {
        match self.throttle_mut().and_then(|t| t.read.as_mut()) {
            Some(b) => b.available(now),
            None => usize::MAX,
        }
    }

    /// The write budget now (usize::MAX when not throttled).
    pub(crate) fn write_allowance(&mut self, now: Instant) -> usize {
        match self.throttle_mut().and_then(|t| t.write.as_mut()) {
            Some(b) => b.available(now),
            None => usize::MAX,
        }
    }
}

/// Declares [`CoreStats`] from one list of its counters, and derives from the same list
/// their names and their conversion to and from the array the cores publish.
macro_rules! core_stats {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Counters of one core.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct CoreStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// The names of [`CoreStats`]' fields, in the order of [`CoreStats::named`].
        const STAT_NAMES: &[&str] = &[$(stringify!($name)),*];

        impl CoreStats {
            fn to_array(self) -> [u64; STAT_FIELDS] {
                [$(self.$name),*]
            }
            fn from_array(a: [u64; STAT_FIELDS]) -> Self {
                let [$($name),*] = a;
                CoreStats { $($name),* }
            }
        }
    };
}

core_stats! {
    /// Connections accepted.
    accepted,
    /// Connections refused (max-connections, or the plugin said no).
    refused,
    /// Connections closed.
    closed,
    /// Connections open now.
    open,
    /// Bytes read from sockets.
    bytes_in,
    /// Bytes written to sockets.
    bytes_out,
    /// Messages, as counted by plugins through [`CoreCtx::count_messages`].
    messages,
    /// UDP datagrams received.
    datagrams_in,
    /// UDP datagrams sent.
    datagrams_out,
    /// UDP datagrams dropped (send buffer full, truncated on receive).
    datagrams_dropped,
    /// io_uring: receives that found the provided-buffer ring empty (ENOBUFS) and were re-armed.
    recv_nobufs,
    /// TLS handshakes completed.
    tls_handshakes,
    /// TLS connections that failed: a bad handshake or record, the handshake deadline, or the
    /// cap on handshakes in progress.
    tls_failures,
    /// Bytes of files written with sendfile(2) ([`ConnCtx::send_file`]), also in `bytes_out`.
    file_bytes_out,
    /// Bytes read straight into the room a plugin reserved for a large record
    /// ([`ConnCtx::reserve_input`]), without a copy from the driver's buffers; also in
    /// `bytes_in`.
    direct_bytes_in,
    /// io_uring loop turns that waited for a batch of completions
    /// ([`crate::RuntimeConfig::uring_batch_wait`]) rather than for the first one.
    batch_waits,
    /// Loop turns whose events a busy poll ([`crate::RuntimeConfig::busy_poll`]) found, where
    /// the core would otherwise have gone to sleep.
    busy_polls,
    /// io_uring: provided receive buffers the kernel is offered at a time now
    /// ([`crate::RuntimeConfig::recv_buffer_window`], which grows while connections with
    /// data at once need more).
    recv_buffer_window,
}

const STAT_FIELDS: usize = STAT_NAMES.len();

impl CoreStats {
    /// Every counter with its field name, in declaration order (for logs and metrics).
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + use<> {
        STAT_NAMES.iter().copied().zip(self.to_array())
    }
    /// The sum of several cores' counters.
    pub fn total<'a>(all: impl IntoIterator<Item = &'a CoreStats>) -> CoreStats {
        let mut sum = [0u64; STAT_FIELDS];
        for s in all {
            for (t, v) in sum.iter_mut().zip(s.to_array()) {
                *t = t.saturating_add(v);
            }
        }
        CoreStats::from_array(sum)
    }
}

/// State shared by all cores of one server (touched on accept/close and for stats, never per message).
pub(crate) struct Global {
    pub open: AtomicUsize,
    pub max_connections: usize,
    published: Vec<[AtomicU64; STAT_FIELDS]>,
}

impl Global {
    pub(crate) fn new(cores: usize, max_connections: usize) -> Self {
        Global {
            open: AtomicUsize::new(0),
            max_connections,
            published: (0..cores)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
        }
    }

    pub(crate) fn stats(&self) -> Vec<CoreStats> {
        self.published
            .iter()
            .map(|a| CoreStats::from_array(std::array::from_fn(|i| a[i].load(Ordering::Relaxed))))
            .collect()
    }

    fn publish(&self, core: usize, s: &CoreStats) {
        if let Some(p) = self.published.get(core) {
            for (slot, v) in p.iter().zip(s.to_array()) {
                slot.store(v, Ordering::Relaxed);
            }
        }
    }
}

/// The largest out-queue limit a connection takes (2 GiB): larger ones are lowered to it, so
/// that queue lengths fit in 32 bits.
pub(crate) const MAX_OUT_LIMIT: usize = 1 << 31;

fn out_limit(max_bytes: usize) -> u32 {
    max_bytes.min(MAX_OUT_LIMIT) as u32
}

/// What a timer in the core's wheel is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TimerTarget {
    Conn(Key, u64),
    Core(u64),
    Linger(Key),
    ThrottleRead(Key),
    ThrottleWrite(Key),
    ShutdownDeadline,
    PublishStats,
    /// The idle-memory sweep ([`Shared::trim_idle`]).
    Trim,
    /// The sweep of connection deadlines ([`ConnCtx::set_deadline`]).
    Deadlines,
    TlsHandshake(Key),
    Connect(Key),
}

/// A timer handle, for [`CoreCtx::cancel_timer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(TimerKey);

/// What a send queues: chunks the caller keeps (cloned: a reference count, or for `Bytes` made
/// from a `Vec` a shared header allocated once), or one chunk it gives away (moved).
enum Chunks<'a> {
    Shared(&'a [Bytes]),
    One(Bytes),
}

/// How often [`Shared::trim_idle`] runs, and how many connection slots it visits each time
/// (a full pass over 100k connections takes about 1.5 s; a visit is a few nanoseconds).
const TRIM_EVERY: Duration = Duration::from_millis(250);
const TRIM_BATCH: u32 = 16 * 1024;

/// A UDP datagram the plugin queued, sent by the driver after the callback.
pub(crate) struct UdpOut {
    pub sock: UdpId,
    pub to: SocketAddr,
    pub data: Bytes,
}

/// A UDP socket change requested by a plugin.
pub(crate) enum UdpOp {
    /// A socket bound by [`CoreCtx::udp_bind`], to start receiving on.
    Add(usize, std::net::UdpSocket),
    /// Stop receiving and close; the driver returns the id to `udp_free` when nothing refers to it.
    Close(usize),
}

/// Everything a context may touch.
pub(crate) struct Shared {
    /// Where the next idle-memory sweep starts ([`Shared::trim_idle`]).
    pub trim_cursor: u32,
    pub core: usize,
    pub now: Instant,
    pub conns: Slab<Conn>,
    pub dirty: Vec<Key>,
    pub timers: TimerWheel<TimerTarget>,
    /// Coarse per-connection deadlines ([`ConnCtx::set_deadline`]) and the wheel timer of
    /// their next sweep.
    pub deadlines: Deadlines,
    pub deadline_timer: Option<TimerKey>,
    /// Scratch for the slots a sweep found due (kept between sweeps).
    pub deadline_due: Vec<u32>,
    pub bus: BusSender,
    pub cfg: Arc<RuntimeConfig>,
    pub global: Arc<Global>,
    pub stats: CoreStats,
    pub stopping: bool,
    pub udp_out: Vec<UdpOut>,
    /// Per UDP id: is the socket live (bound and not closed by the plugin)?
    pub udp_live: Vec<bool>,
    /// Ids whose sockets the driver has fully released, free for reuse.
    pub udp_free: Vec<usize>,
    /// Sockets added or closed by plugins, for the driver to pick up after the callback.
    pub udp_ops: Vec<UdpOp>,
    pub driver: crate::DriverKind,
    /// Per listener: its TLS acceptor, if it is a TLS listener.
    pub tls: Arc<Vec<Option<Arc<crate::tls::TlsAcceptor>>>>,
    /// TLS handshakes in progress on this core.
    pub tls_handshaking: usize,
    /// Scratch for decrypted input (kept between calls).
    pub tls_plain: Vec<u8>,
    /// Outgoing connections started by plugins, for the driver to watch.
    pub new_outgoing: Vec<Key>,
    /// What the `on_data` call running now asked of its input ([`ConnCtx::reserve_input`],
    /// [`ConnCtx::take_input`]); reset before each call.
    pub input_req: InputReq,
}

/// Requests a plugin makes about its input during one `on_data` call.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InputReq {
    /// Unconsumed bytes the plugin needs before it can make progress (0: no hint).
    pub reserve: usize,
    /// Bytes after the consumed ones to hand over to [`Plugin::on_owned_data`] (0: none).
    pub take: usize,
    /// The input of the call sits in the connection's own buffer ([`ConnCtx::input_is_owned`]).
    pub owned: bool,
}

/// A [`ConnCtx::reserve_input`] hint up to this size is acted on at once.
const RESERVE_AT_ONCE: usize = 64 * 1024;
/// A larger hint is acted on once the bytes buffered are at least this fraction of it, so
/// that a header alone does not make the runtime reserve megabytes: room is made at most this
/// many times ahead of what arrived (until then the buffer grows as it fills).
const RESERVE_AHEAD: usize = 16;

/// The capacity to keep for `len` unconsumed bytes when the plugin said it needs `hint`:
/// the hint when it is more, within the limit and not too far ahead, else just `len`.
fn input_room(hint: usize, len: usize, max_in: usize) -> usize {
    let near = hint <= RESERVE_AT_ONCE || hint / RESERVE_AHEAD <= len;
    if hint > len && hint <= max_in && near {
        hint
    } else {
        len
    }
}

/// The input [`Core::call_data`] offers: the driver's receive buffer, or the connection's own.
enum Input<'a> {
    Borrowed(&'a mut [u8]),
    Owned(&'a mut Vec<u8>),
}

impl Input<'_> {
    fn bytes(&mut self) -> &mut [u8] {
        match self {
            Input::Borrowed(d) => d,
            Input::Owned(v) => v,
        }
    }

    /// The `n` bytes at `*at` as `Bytes`, `*at` moved past them. An owned buffer changes hands
    /// when what follows the `n` bytes is shorter than they are: only that tail is copied, into
    /// the new buffer (and `*at` restarts at 0). Otherwise the `n` bytes are copied.
    fn take(&mut self, at: &mut usize, n: usize) -> Bytes {
        let (start, end) = (*at, *at + n);
        if let Input::Owned(v) = self
            && v.len().saturating_sub(end) < n
        {
            let tail = v.get(end..).unwrap_or_default().to_vec();
            let mut whole = std::mem::replace(*v, tail);
            whole.truncate(end);
            *at = 0;
            return Bytes::from(whole).slice(start..);
        }
        *at = end;
        Bytes::copy_from_slice(self.bytes().get(start..end).unwrap_or_default())
    }
}

impl Shared {
    /// Release the out-queue storage of connections whose queue is empty, [`TRIM_BATCH`]
    /// slots per call, round the slab. A queue that spilled past one chunk keeps its capacity
    /// between sends (a busy connection reuses it, no allocation per message); this sweep
    /// gives it back once the connection is idle, so an idle connection holds no queue memory.
    pub(crate) fn trim_idle(&mut self) {
        let slots = self.conns.slots() as u32;
        if slots == 0 {
            return;
        }
        let mut i = self.trim_cursor.min(slots);
        for _ in 0..TRIM_BATCH.min(slots) {
            if i >= slots {
                i = 0;
            }
            if let Some((_, c)) = self.conns.get_by_index_mut(i) {
                if c.out.capacity() > 0 {
                    c.out.release_if_empty();
                }
                c.release_ext_if_empty();
            }
            i += 1;
        }
        self.trim_cursor = i;
    }

    pub(crate) fn mark_dirty(&mut self, key: Key) {
        if let Some(c) = self.conns.get_mut(key)
            && c.flags & DIRTY == 0
        {
            c.flags |= DIRTY;
            self.dirty.push(key);
        }
    }

    fn id_of(&self, key: Key) -> ConnId {
        ConnId(((self.core as u64) << 56) | key.to_u64())
    }

    fn key_of(&self, id: ConnId) -> Result<Key, SendError> {
        if id.core() != self.core {
            return Err(SendError::OtherCore);
        }
        Ok(Key::from_u64(id.0 & ((1 << 56) - 1)))
    }

    /// Whether `len` more bytes may be queued on `key`: a closing connection refuses, and past
    /// the out-queue limit its overflow policy decides (refuse, or abort the connection).
    fn admit(&mut self, key: Key, len: usize) -> Result<(), SendError> {
        let Some(c) = self.conns.get(key) else {
            return Err(SendError::Closed);
        };
        if c.flags & (CLOSING | ABORT | WR_SHUT) != 0 {
            return Err(SendError::Closed);
        }
        if c.out_len as usize + len > c.max_out as usize {
            return match c.policy {
                OverflowPolicy::Refuse => Err(SendError::Backpressure),
                OverflowPolicy::Close => {
                    self.abort(key, CloseReason::Aborted);
                    Err(SendError::Closed)
                }
            };
        }
        Ok(())
    }

    pub(crate) fn queue(&mut self, key: Key, chunks: &[Bytes]) -> Result<usize, SendError> {
        self.queue_chunks(key, Chunks::Shared(chunks))
    }

    /// [`Shared::queue`] of one chunk the caller gives away: it is moved into the queue, not
    /// cloned (a clone of `Bytes` made from a `Vec` allocates its shared header).
    pub(crate) fn queue_one(&mut self, key: Key, chunk: Bytes) -> Result<usize, SendError> {
        self.queue_chunks(key, Chunks::One(chunk))
    }

    fn queue_chunks(&mut self, key: Key, chunks: Chunks<'_>) -> Result<usize, SendError> {
        let total = match &chunks {
            Chunks::Shared(v) => v.iter().map(|b| b.len()).sum(),
            Chunks::One(b) => b.len(),
        };
        self.admit(key, total)?;
        let Some(c) = self.conns.get_mut(key) else {
            return Err(SendError::Closed);
        };
        if total == 0 {
            return Ok(c.out_len as usize);
        }
        if let Some(t) = c.ext.as_mut().and_then(|e| e.tls.as_deref_mut()) {
            match &chunks {
                Chunks::Shared(v) => t.encrypt(v),
                Chunks::One(b) => t.encrypt(std::slice::from_ref(b)),
            }
            let n = t.drain_into(&mut c.out);
            c.count_out(n);
        } else {
            match chunks {
                Chunks::Shared(v) => {
                    for b in v.iter().filter(|b| !b.is_empty()) {
                        c.out.push_back(OutChunk::Mem(b.clone()));
                    }
                }
                Chunks::One(b) => c.out.push_back(OutChunk::Mem(b)),
            }
            c.count_out(total);
        }
        c.flags |= WAS_BUSY;
        let buffered = c.out_len as usize;
        self.mark_dirty(key);
        Ok(buffered)
    }

    pub(crate) fn queue_file(
        &mut self,
        key: Key,
        file: &Arc<std::fs::File>,
        off: u64,
        len: usize,
    ) -> Result<usize, SendError> {
        self.admit(key, len)?;
        let Some(c) = self.conns.get_mut(key) else {
            return Err(SendError::Closed);
        };
        if len == 0 {
            return Ok(c.out_len as usize);
        }
        if c.tls().is_some() {
            // TLS encrypts in user space: the range is read and queued as bytes.
            return match read_range(file, off, len) {
                Ok(v) => self.queue_one(key, Bytes::from(v)),
                Err(e) => {
                    self.abort(key, CloseReason::Error(e.kind()));
                    Err(SendError::Closed)
                }
            };
        }
        c.out.push_back(OutChunk::File(FileSlice {
            file: Arc::clone(file),
            off,
            len,
        }));
        c.count_out(len);
        c.flags |= WAS_BUSY;
        let buffered = c.out_len as usize;
        self.mark_dirty(key);
        Ok(buffered)
    }

    pub(crate) fn close(&mut self, key: Key) {
        if let Some(c) = self.conns.get_mut(key)
            && c.flags & (CLOSING | ABORT) == 0
        {
            c.flags |= CLOSING;
            c.reason.get_or_insert(if c.flags & READ_CLOSED != 0 {
                CloseReason::Peer
            } else {
                CloseReason::Local
            });
            if let Some(t) = c.ext.as_mut().and_then(|e| e.tls.as_deref_mut())
                && !t.handshaking
                && !t.failed
            {
                t.conn.send_close_notify();
                let n = t.drain_into(&mut c.out);
                c.count_out(n);
            }
            // What arrived but was not consumed will never be: free it now.
            c.free_inbuf();
            self.mark_dirty(key);
        }
    }

    pub(crate) fn abort(&mut self, key: Key, reason: CloseReason) {
        if let Some(c) = self.conns.get_mut(key)
            && c.flags & ABORT == 0
        {
            c.flags |= ABORT;
            c.reason = Some(reason);
            c.free_inbuf();
            self.mark_dirty(key);
        }
    }

    fn set_paused(&mut self, key: Key, paused: bool) {
        if let Some(c) = self.conns.get_mut(key) {
            if paused {
                c.flags |= PAUSED;
            } else {
                c.flags &= !PAUSED;
                if !c.inbuf().is_empty() {
                    c.flags |= REDELIVER;
                }
            }
        }
        self.mark_dirty(key);
    }

    /// Arm a wheel timer `after` from now. The clock is read here rather than taken from the
    /// turn's start (`self.now`): a callback late in a long turn would otherwise get its timer
    /// early by however long the turn had run.
    fn set_timer(&mut self, after: Duration, target: TimerTarget) -> TimerId {
        TimerId(self.timers.insert(Instant::now() + after, target))
    }

    /// Set, move or cancel the deadline sweep's timer as [`Deadlines`] asks.
    fn apply_sweep(&mut self, sweep: Sweep) {
        match sweep {
            Sweep::Keep => {}
            Sweep::At(at) => {
                if let Some(t) = self.deadline_timer.take() {
                    self.timers.cancel(t);
                }
                self.deadline_timer = Some(self.timers.insert(at, TimerTarget::Deadlines));
            }
            Sweep::Cancel => {
                if let Some(t) = self.deadline_timer.take() {
                    self.timers.cancel(t);
                }
            }
        }
    }
}

/// A core-level context: timers, the bus, other connections of this core, UDP.
pub struct CoreCtx<'a> {
    pub(crate) sh: &'a mut Shared,
}

impl<'a> CoreCtx<'a> {
    /// This core's index (0-based).
    pub fn core(&self) -> usize {
        self.sh.core
    }
    /// How many cores the server runs.
    pub fn cores(&self) -> usize {
        self.sh.bus.cores()
    }
    /// The time this loop turn started (read once per turn).
    pub fn now(&self) -> Instant {
        self.sh.now
    }
    /// The driver this core runs.
    pub fn driver(&self) -> crate::DriverKind {
        self.sh.driver
    }
    /// True once the server is stopping.
    pub fn stopping(&self) -> bool {
        self.sh.stopping
    }
    /// Open connections on this core.
    pub fn connection_count(&self) -> usize {
        self.sh.conns.len()
    }
    /// The connection in slot `slot` of this core ([`ConnId::slot`]), if one is there (closing
    /// or not).
    pub fn conn_at(&self, slot: u32) -> Option<ConnId> {
        self.sh.conns.key_at(slot).map(|k| self.sh.id_of(k))
    }
    /// This core's counters.
    pub fn stats(&self) -> CoreStats {
        self.sh.stats
    }
    /// Count `n` protocol messages in this core's stats.
    pub fn count_messages(&mut self, n: u64) {
        self.sh.stats.messages += n;
    }

    /// Queue bytes on a connection of this core. Returns the bytes now buffered for it.
    pub fn send_to(
        &mut self,
        id: ConnId,
        data: impl crate::plugin::IntoChunk,
    ) -> Result<usize, SendError> {
        let key = self.sh.key_of(id)?;
        self.sh.queue_one(key, data.into_chunk())
    }
    /// Queue several chunks at once (written with one vectored write where possible); all or nothing.
    pub fn send_vectored_to(&mut self, id: ConnId, chunks: &[Bytes]) -> Result<usize, SendError> {
        let key = self.sh.key_of(id)?;
        self.sh.queue(key, chunks)
    }
    /// Bytes queued and not yet written for a connection of this core (0 if gone).
    pub fn buffered_of(&self, id: ConnId) -> usize {
        self.sh
            .key_of(id)
            .ok()
            .and_then(|k| self.sh.conns.get(k))
            .map_or(0, |c| c.out_len as usize)
    }
    /// Close a connection of this core gracefully (flush, FIN, wait for the peer's FIN).
    pub fn close_conn(&mut self, id: ConnId) {
        if let Ok(k) = self.sh.key_of(id) {
            self.sh.close(k);
        }
    }
    /// Abort a connection of this core: drop its queue and reset it.
    pub fn abort_conn(&mut self, id: ConnId) {
        if let Ok(k) = self.sh.key_of(id) {
            self.sh.abort(k, CloseReason::Aborted);
        }
    }
    /// True if the connection is open on this core and not closing.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.sh
            .key_of(id)
            .ok()
            .and_then(|k| self.sh.conns.get(k))
            .is_some_and(|c| c.flags & (CLOSING | ABORT) == 0)
    }

    /// Arm a core timer: [`Plugin::on_core_timer`] gets `token` once `after` has passed,
    /// counted from this call: never early, at most one [`RuntimeConfig::timer_tick`] late
    /// (plus however long the loop is busy).
    pub fn set_core_timer(&mut self, after: Duration, token: u64) -> TimerId {
        self.sh.set_timer(after, TimerTarget::Core(token))
    }
    /// Cancel a timer (connection or core); a fired or unknown timer is ignored.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.sh.timers.cancel(id.0);
    }

    /// Stop reading another connection of this core (a relay's backpressure: pause the side
    /// that produces while the other side's out-queue drains). Unknown ids are ignored.
    pub fn pause_reading_of(&mut self, id: ConnId) {
        if let Ok(key) = self.sh.key_of(id) {
            self.sh.set_paused(key, true);
        }
    }

    /// Resume reading a connection paused with [`CoreCtx::pause_reading_of`] or
    /// [`ConnCtx::pause_reading`]; input it had buffered is offered again.
    pub fn resume_reading_of(&mut self, id: ConnId) {
        if let Ok(key) = self.sh.key_of(id) {
            self.sh.set_paused(key, false);
        }
    }

    /// Open an outgoing TCP connection. Returns its id at once; the plugin's `on_open` runs
    /// with that id once connected ([`ConnCtx::is_outgoing`] tells it apart), or
    /// [`Plugin::on_connect_error`] if the connect fails or passes
    /// [`RuntimeConfig::connect_timeout`]. It counts against `max_connections`.
    pub fn connect(&mut self, addr: SocketAddr) -> std::io::Result<ConnId> {
        self.start_connect(addr, None, None)
    }

    /// [`CoreCtx::connect`] from the source address `from` (port 0: any port). Each source
    /// IP (127.0.0.x on loopback) has its own 64k ports per destination, which is how a load
    /// generator opens more connections than one address allows. A `from` that cannot be
    /// bound is an error here, before any connection exists.
    pub fn connect_from(&mut self, addr: SocketAddr, from: SocketAddr) -> std::io::Result<ConnId> {
        self.start_connect(addr, Some(from), None)
    }

    /// Open an outgoing TLS connection: the certificate is verified for `server_name` by
    /// `tls` ([`crate::tls::client_config`]); `on_open` runs after the handshake.
    pub fn connect_tls(
        &mut self,
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> std::io::Result<ConnId> {
        let t = tls_client(tls, server_name)?;
        self.start_connect(addr, None, Some(t))
    }

    /// [`CoreCtx::connect_tls`] from the source address `from` (see [`CoreCtx::connect_from`]).
    pub fn connect_tls_from(
        &mut self,
        addr: SocketAddr,
        from: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> std::io::Result<ConnId> {
        let t = tls_client(tls, server_name)?;
        self.start_connect(addr, Some(from), Some(t))
    }

    fn start_connect(
        &mut self,
        addr: SocketAddr,
        from: Option<SocketAddr>,
        tls: Option<Box<crate::tls::TlsConn>>,
    ) -> std::io::Result<ConnId> {
        use std::io::Error;
        if self.sh.stopping {
            return Err(Error::other("server stopping"));
        }
        let g = &self.sh.global;
        if g.open.fetch_add(1, Ordering::AcqRel) >= g.max_connections {
            g.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::other("max_connections reached"));
        }
        let fd = match crate::driver::connect_nonblocking(addr, from, self.sh.cfg.nodelay) {
            Ok(fd) => fd,
            Err(e) => {
                self.sh.global.open.fetch_sub(1, Ordering::AcqRel);
                return Err(e);
            }
        };
        let conn = Conn {
            fd,
            flags: CONNECTING,
            inflight: 0,
            listener: OUTGOING,
            peer: addr.into(),
            out: OutQueue::Empty,
            out_len: 0,
            out_off: 0,
            max_out: out_limit(self.sh.cfg.max_out_buffer),
            policy: self.sh.cfg.overflow_policy,
            reason: None,
            ext: tls.map(|t| {
                Box::new(ConnExt {
                    tls: Some(t),
                    ..ConnExt::default()
                })
            }),
        };
        let key = self.sh.conns.insert(conn);
        self.sh.stats.open += 1;
        self.sh.new_outgoing.push(key);
        let d = self.sh.cfg.connect_timeout;
        self.sh.set_timer(d, TimerTarget::Connect(key));
        self.sh.mark_dirty(key);
        Ok(self.sh.id_of(key))
    }

    /// Post a message to one core's inbox (this one included). False if the core is gone.
    pub fn post(&mut self, core: usize, tag: u64, data: Bytes) -> bool {
        let msg = BusMessage {
            from: self.sh.core,
            tag,
            data,
            extra: None,
        };
        self.sh.bus.post(core, Envelope::User(msg))
    }
    /// Post a full message (with a structured `extra`) to one core.
    pub fn post_message(&mut self, core: usize, msg: BusMessage) -> bool {
        self.sh.bus.post(core, Envelope::User(msg))
    }
    /// Hand the same refcounted bytes to every core, this one included; returns how many got it.
    pub fn broadcast(&mut self, tag: u64, data: Bytes) -> usize {
        let msg = BusMessage {
            from: self.sh.core,
            tag,
            data,
            extra: None,
        };
        self.broadcast_message(msg)
    }
    /// Broadcast a full message to every core, this one included.
    pub fn broadcast_message(&mut self, msg: BusMessage) -> usize {
        (0..self.sh.bus.cores())
            .filter(|&c| self.sh.bus.post(c, Envelope::User(msg.clone())))
            .count()
    }

    /// Bind a new UDP socket on this core (a TURN relay, a client socket). Datagrams to it arrive
    /// in [`Plugin::on_datagram`] with the returned id. Port 0 picks a free port.
    pub fn udp_bind(&mut self, addr: SocketAddr) -> std::io::Result<(UdpId, SocketAddr)> {
        let s = std::net::UdpSocket::bind(addr)?;
        s.set_nonblocking(true)?;
        let local = s.local_addr()?;
        let id = match self.sh.udp_free.pop() {
            Some(id) => id,
            None => {
                self.sh.udp_live.push(false);
                self.sh.udp_live.len() - 1
            }
        };
        if let Some(l) = self.sh.udp_live.get_mut(id) {
            *l = true;
        }
        self.sh.udp_ops.push(UdpOp::Add(id, s));
        Ok((UdpId(id), local))
    }

    /// Close a UDP socket opened with [`CoreCtx::udp_bind`] (or a bound one). Datagrams queued
    /// on it before the close are still sent.
    pub fn udp_close(&mut self, sock: UdpId) {
        if let Some(l) = self.sh.udp_live.get_mut(sock.0)
            && *l
        {
            *l = false;
            self.sh.udp_ops.push(UdpOp::Close(sock.0));
        }
    }

    /// Queue a datagram on one of this core's UDP sockets; sent after the callback returns.
    /// Returns false (and counts a drop) for an unknown socket.
    pub fn send_datagram(
        &mut self,
        sock: UdpId,
        to: SocketAddr,
        data: impl crate::plugin::IntoChunk,
    ) -> bool {
        if !self.sh.udp_live.get(sock.0).copied().unwrap_or(false) {
            self.sh.stats.datagrams_dropped += 1;
            return false;
        }
        self.sh.udp_out.push(UdpOut {
            sock,
            to,
            data: data.into_chunk(),
        });
        true
    }
}

/// The context of one connection's callback. It derefs to the core's [`CoreCtx`].
pub struct ConnCtx<'a> {
    pub(crate) core: CoreCtx<'a>,
    pub(crate) key: Key,
}

impl<'a> std::ops::Deref for ConnCtx<'a> {
    type Target = CoreCtx<'a>;
    fn deref(&self) -> &CoreCtx<'a> {
        &self.core
    }
}

impl<'a> std::ops::DerefMut for ConnCtx<'a> {
    fn deref_mut(&mut self) -> &mut CoreCtx<'a> {
        &mut self.core
    }
}

impl ConnCtx<'_> {
    fn conn(&self) -> Option<&Conn> {
        self.core.sh.conns.get(self.key)
    }
    fn conn_mut(&mut self) -> Option<&mut Conn> {
        self.core.sh.conns.get_mut(self.key)
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.core.sh.id_of(self.key)
    }
    /// The binding it arrived on.
    pub fn listener(&self) -> ListenerId {
        ListenerId(self.conn().map_or(0, |c| c.listener as usize))
    }
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.conn()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.peer.get())
    }
    /// The local address the connection arrived on (or, outgoing, was bound to). It is not
    /// stored per connection: each call asks the kernel (getsockname(2)).
    pub fn local_addr(&self) -> SocketAddr {
        self.conn()
            .and_then(|c| sock_addr(c.fd, false))
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    }
    /// Queue bytes (owned or shared, never copied). Returns the bytes now buffered.
    pub fn send(&mut self, data: impl crate::plugin::IntoChunk) -> Result<usize, SendError> {
        let key = self.key;
        self.core.sh.queue_one(key, data.into_chunk())
    }
    /// Queue several chunks, written vectored; all or nothing against the limit.
    pub fn send_vectored(&mut self, chunks: &[Bytes]) -> Result<usize, SendError> {
        let key = self.key;
        self.core.sh.queue(key, chunks)
    }
    /// Queue `len` bytes of `file` from `offset`, in order with everything else queued. On a
    /// plain connection the bytes go from the page cache to the socket with sendfile(2) on both
    /// drivers (no copy through user space; a file system without sendfile falls back to reads);
    /// on TLS they are read and encrypted at this call. The file must hold the range until it
    /// is written: a file that shrank aborts the connection. Counts against the out-queue limit
    /// like bytes do, so queue large files in pieces as [`Plugin::on_drained`] fires.
    ///
    /// [`Plugin::on_drained`]: crate::Plugin::on_drained
    pub fn send_file(
        &mut self,
        file: &Arc<std::fs::File>,
        offset: u64,
        len: usize,
    ) -> Result<usize, SendError> {
        let key = self.key;
        self.core.sh.queue_file(key, file, offset, len)
    }
    /// The TLS session (ALPN, SNI, client certificate...), on a TLS listener's connection.
    pub fn tls(&self) -> Option<crate::tls::TlsInfo<'_>> {
        self.conn()
            .and_then(|c| c.tls())
            .map(|t| crate::tls::TlsInfo { conn: &t.conn })
    }

    /// Whether this is an outgoing connection (made with [`CoreCtx::connect`]).
    pub fn is_outgoing(&self) -> bool {
        self.conn().is_some_and(|c| c.listener == OUTGOING)
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.conn().is_some_and(|c| c.tls().is_some())
    }

    /// Bytes queued for sending and not yet written (on TLS: encrypted bytes).
    pub fn buffered(&self) -> usize {
        self.conn().map_or(0, |c| c.out_len as usize)
    }
    /// Bytes received and not yet consumed.
    pub fn unconsumed(&self) -> usize {
        self.conn().map_or(0, |c| c.inbuf().len())
    }
    /// From [`Plugin::on_data`]: the plugin cannot make progress before it has `n` unconsumed
    /// bytes (counting those it leaves now), say because a frame header announced that length.
    /// The runtime then makes room for all of them at once instead of growing the buffer as
    /// they arrive: right away for up to 64 KiB, else once a sixteenth of them is there (a
    /// header alone reserves no megabytes). A hint past [`RuntimeConfig::max_in_buffer`] is
    /// ignored: nothing is reserved, and the connection is aborted
    /// ([`CloseReason::InputOverflow`]) once its unconsumed input actually passes the limit.
    /// Elsewhere than in `on_data` it does nothing.
    pub fn reserve_input(&mut self, n: usize) {
        self.core.sh.input_req.reserve = n;
    }
    /// In [`Plugin::on_data`]: whether `data` sits in the connection's own input buffer (it
    /// arrived over several reads), which [`ConnCtx::take_input`] hands over without a copy;
    /// false when it is the driver's receive buffer, from which taking bytes copies them.
    pub fn input_is_owned(&self) -> bool {
        self.core.sh.input_req.owned
    }
    /// From [`Plugin::on_data`]: take the `n` bytes that follow the ones this call returns as
    /// consumed, as owned, refcounted bytes. Right after `on_data` returns, the runtime hands
    /// them, as the call left them (unmasked in place, say), to [`Plugin::on_owned_data`] and
    /// counts them as consumed; then it offers the rest of the input to `on_data` again. When
    /// they sit in the connection's own input buffer (they arrived over several reads), that
    /// buffer changes hands without a copy; otherwise they are copied once. `n` past the input
    /// is cut to it. A plugin that wraps others must forward `on_owned_data` to the one that
    /// took the input. Elsewhere than in `on_data` it does nothing.
    pub fn take_input(&mut self, n: usize) {
        self.core.sh.input_req.take = n;
    }
    /// Close gracefully: send what is queued, then FIN, then wait for the peer's FIN
    /// (up to the linger time). Input arriving meanwhile is discarded.
    pub fn close(&mut self) {
        let key = self.key;
        self.core.sh.close(key);
    }
    /// Abort: drop what is queued and reset the connection.
    pub fn abort(&mut self) {
        let key = self.key;
        self.core.sh.abort(key, CloseReason::Aborted);
    }
    /// True once close or abort was requested.
    pub fn is_closing(&self) -> bool {
        self.conn().is_none_or(|c| c.flags & (CLOSING | ABORT) != 0)
    }
    /// Arm a timer for this connection: [`Plugin::on_timer`] gets `token` once `after` has
    /// passed, counted from this call (never early, at most one timer tick late)
    /// (not if the connection closed first).
    pub fn set_timer(&mut self, after: Duration, token: u64) -> TimerId {
        let key = self.key;
        self.core.sh.set_timer(after, TimerTarget::Conn(key, token))
    }
    /// Arm this connection's deadline: [`Plugin::on_deadline`] runs once `after` has passed
    /// (not if the connection closed first). A connection has one; setting it again moves it.
    ///
    /// Coarse: it fires at the first deadline sweep at or after the instant, so up to
    /// [`RuntimeConfig::deadline_tick`] late (100 ms by default), never early. In return it
    /// costs 4 bytes per connection slot and nothing per arming, where a [`ConnCtx::set_timer`]
    /// timer is a 56-byte wheel entry, and the wheel keeps the storage of its busiest moment.
    /// Meant for the timeouts every connection has: a handshake or request-head deadline, a
    /// keep-alive limit.
    pub fn set_deadline(&mut self, after: Duration) {
        // Counted from the call, not from the turn's start (see `Shared::set_timer`).
        let at = Instant::now() + after;
        let sweep = self.core.sh.deadlines.set(self.key.index(), at);
        self.core.sh.apply_sweep(sweep);
    }
    /// Disarm this connection's deadline, if one is armed.
    pub fn clear_deadline(&mut self) {
        let sweep = self.core.sh.deadlines.clear(self.key.index());
        self.core.sh.apply_sweep(sweep);
    }
    /// When this connection's deadline fires, if one is armed (rounded up to the sweep's
    /// tick grid).
    pub fn deadline(&self) -> Option<Instant> {
        self.core.sh.deadlines.get(self.key.index())
    }
    /// Set this connection's out-queue limit (at most 2 GiB: a larger one is lowered to it)
    /// and what a send past it does.
    pub fn set_send_limit(&mut self, max_bytes: usize, policy: OverflowPolicy) {
        if let Some(c) = self.conn_mut() {
            c.max_out = out_limit(max_bytes);
            c.policy = policy;
        }
    }
    /// Set (or clear, with `Throttle::default()`) this connection's bandwidth limits.
    pub fn set_throttle(&mut self, t: Throttle) {
        let now = self.core.sh.now;
        let key = self.key;
        if let Some(c) = self.conn_mut() {
            if t.read.is_none() && t.write.is_none() {
                c.flags &= !(THROTTLED_R | THROTTLED_W);
                if let Some(e) = c.ext.as_mut() {
                    e.throttle = None;
                }
            } else {
                c.ext().throttle = Some(ThrottleState {
                    read: t.read.map(|r| Bucket::new(r, now)),
                    write: t.write.map(|r| Bucket::new(r, now)),
                });
            }
        }
        self.core.sh.mark_dirty(key);
    }
    /// Stop reading this socket (the kernel's buffer then pushes back on the peer).
    pub fn pause_reading(&mut self) {
        let key = self.key;
        self.core.sh.set_paused(key, true);
    }
    /// Resume reading after [`ConnCtx::pause_reading`].
    pub fn resume_reading(&mut self) {
        let key = self.key;
        self.core.sh.set_paused(key, false);
    }
    /// Reading is paused ([`ConnCtx::pause_reading`]): input not consumed yet waits for
    /// [`ConnCtx::resume_reading`].
    pub fn is_reading_paused(&self) -> bool {
        self.conn().is_some_and(|c| c.flags & PAUSED != 0)
    }
}

/// One core: its plugin, the plugin's per-connection states, and the shared table.
pub(crate) struct Core<P: Plugin> {
    pub plugin: P,
    pub states: Vec<Option<P::Conn>>,
    pub sh: Shared,
    pub inbox: Receiver<Envelope>,
    /// Bytes of the per-connection tables (slab, plugin states, deadlines) when they last grew.
    table_bytes: usize,
}

/// What a driver should do with a connection after [`Core::service`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing more (or the driver's own I/O steps).
    Io,
    /// Finish it: close the fd and free the slot (the driver checks its in-flight ops first).
    Finish,
}

/// What a driver does for [`Core::settle`]: start a touched connection's I/O, send queued
/// datagrams.
pub(crate) trait Io<P: Plugin> {
    /// Watch an outgoing connection's socket for its connect to complete.
    fn watch_connect(&mut self, core: &mut Core<P>, key: Key);
    fn service_conn(&mut self, core: &mut Core<P>, key: Key);
    fn flush_datagrams(&mut self, core: &mut Core<P>);
}

impl<P: Plugin> Core<P> {
    /// Service every connection a callback touched, and the UDP queue, until nothing is left
    /// (servicing may call plugins, which may touch more connections). Both drivers run this
    /// before they wait.
    pub(crate) fn settle(&mut self, io: &mut impl Io<P>) {
        while !self.sh.dirty.is_empty()
            || !self.sh.udp_out.is_empty()
            || !self.sh.udp_ops.is_empty()
            || !self.sh.new_outgoing.is_empty()
        {
            for key in std::mem::take(&mut self.sh.new_outgoing) {
                io.watch_connect(self, key);
            }
            let mut dirty = std::mem::take(&mut self.sh.dirty);
            for &key in &dirty {
                io.service_conn(self, key);
            }
            dirty.clear();
            if self.sh.dirty.is_empty() {
                // Keep the allocation for the next batch.
                self.sh.dirty = dirty;
            }
            io.flush_datagrams(self);
        }
    }

    pub(crate) fn new(plugin: P, sh: Shared, inbox: Receiver<Envelope>) -> Self {
        Core {
            plugin,
            states: Vec::new(),
            sh,
            inbox,
            table_bytes: 0,
        }
    }

    /// After a connection opened: if a per-connection table grew (by doubling: its old storage
    /// was freed), give the freed memory back ([`crate::alloc::release_freed_memory`]), which
    /// [`crate::alloc::keep_freed_memory`]'s thresholds would otherwise keep resident, at up to
    /// half the tables' size. Happens about log2(connections) times in a core's life.
    fn release_if_tables_grew(&mut self) {
        let bytes = self.sh.conns.table_bytes()
            + self.states.capacity() * std::mem::size_of::<Option<P::Conn>>()
            + self.sh.deadlines.table_bytes();
        if bytes > self.table_bytes {
            let grew = self.table_bytes != 0;
            self.table_bytes = bytes;
            if grew && bytes >= TABLES_RELEASE_MIN {
                crate::alloc::release_freed_memory();
            }
        }
    }

    /// Call the plugin for one connection, if it is still there.
    fn with_conn<R>(
        &mut self,
        key: Key,
        f: impl FnOnce(&mut P, &mut P::Conn, &mut ConnCtx<'_>) -> R,
    ) -> Option<R> {
        if !self.sh.conns.contains(key) {
            return None;
        }
        let st = self.states.get_mut(key.index() as usize)?.as_mut()?;
        let mut cx = ConnCtx {
            core: CoreCtx { sh: &mut self.sh },
            key,
        };
        Some(f(&mut self.plugin, st, &mut cx))
    }

    pub(crate) fn start(&mut self) {
        let mut cx = core_ctx(&mut self.sh);
        self.plugin.on_start(&mut cx);
        let t = self.sh.now + Duration::from_millis(100);
        self.sh.timers.insert(t, TimerTarget::PublishStats);
        self.sh
            .timers
            .insert(self.sh.now + TRIM_EVERY, TimerTarget::Trim);
    }

    /// Whether a newly accepted socket may be kept (the global max-connections limit).
    pub(crate) fn admit(&mut self) -> bool {
        let g = &self.sh.global;
        let prev = g.open.fetch_add(1, Ordering::AcqRel);
        if prev >= g.max_connections || self.sh.stopping {
            g.open.fetch_sub(1, Ordering::AcqRel);
            self.sh.stats.refused += 1;
            false
        } else {
            true
        }
    }

    /// A connection was accepted (and admitted). Returns its key if the plugin kept it.
    pub(crate) fn open(&mut self, fd: RawFd, listener: usize, peer: SocketAddr) -> Option<Key> {
        let cfg = &self.sh.cfg;
        let conn = Conn {
            fd,
            flags: 0,
            inflight: 0,
            listener: listener as u16,
            peer: peer.into(),
            out: OutQueue::Empty,
            out_len: 0,
            out_off: 0,
            max_out: out_limit(cfg.max_out_buffer),
            policy: cfg.overflow_policy,
            reason: None,
            ext: None,
        };
        let throttle = cfg.throttle;
        let tls = self.sh.tls.get(listener).and_then(Option::clone);
        let key = self.sh.conns.insert(conn);
        let idx = key.index() as usize;
        if self.states.len() <= idx {
            self.states.resize_with(idx + 1, || None);
        }
        self.sh.stats.accepted += 1;
        self.sh.stats.open += 1;
        let mut cx = ConnCtx {
            core: CoreCtx { sh: &mut self.sh },
            key,
        };
        if throttle.read.is_some() || throttle.write.is_some() {
            cx.set_throttle(throttle);
        }
        if let Some(acc) = tls {
            // The plugin sees the connection once the handshake completed (deliver_tls).
            self.start_tls(key, &acc);
            return Some(key);
        }
        self.open_plugin(key);
        self.release_if_tables_grew();
        Some(key)
    }

    /// Begin a TLS server handshake on a new connection, within the per-core cap.
    fn start_tls(&mut self, key: Key, acc: &crate::tls::TlsAcceptor) {
        let peer = self.sh.conns.get(key).map(|c| c.peer.get());
        if self.sh.tls_handshaking >= self.sh.cfg.tls_max_handshakes {
            tracing::debug!(?peer, "tls: refused, handshakes in progress at the cap");
            self.sh.stats.refused += 1;
            self.sh.stats.tls_failures += 1;
            self.sh.abort(key, CloseReason::Refused);
            return;
        }
        match crate::tls::TlsConn::new(acc.config()) {
            Ok(t) => {
                if let Some(c) = self.sh.conns.get_mut(key) {
                    c.ext().tls = Some(Box::new(t));
                }
                self.sh.tls_handshaking += 1;
                let d = self.sh.cfg.tls_handshake_timeout;
                self.sh.set_timer(d, TimerTarget::TlsHandshake(key));
            }
            Err(e) => {
                tracing::warn!(?peer, "tls: cannot start a session: {e}");
                self.sh.stats.tls_failures += 1;
                self.sh.abort(key, CloseReason::Tls);
            }
        }
    }

    /// An outgoing connect completed (or failed, or timed out).
    pub(crate) fn connected(&mut self, key: Key, res: std::io::Result<()>) {
        let Some(c) = self.sh.conns.get_mut(key) else {
            return;
        };
        if c.flags & CONNECTING == 0 {
            return;
        }
        c.flags &= !CONNECTING;
        self.sh.mark_dirty(key);
        let id = self.sh.id_of(key);
        let Some(c) = self.sh.conns.get_mut(key) else {
            return;
        };
        if c.flags & ABORT != 0 {
            return;
        }
        match res {
            Ok(()) => {
                if let Some(t) = c.ext.as_mut().and_then(|e| e.tls.as_deref_mut()) {
                    // The ClientHello goes out now; on_open follows the handshake.
                    let n = t.drain_into(&mut c.out);
                    c.count_out(n);
                    let d = self.sh.cfg.tls_handshake_timeout;
                    self.sh.set_timer(d, TimerTarget::TlsHandshake(key));
                } else {
                    self.open_plugin(key);
                }
            }
            Err(e) => {
                let kind = e.kind();
                let mut cx = core_ctx(&mut self.sh);
                self.plugin.on_connect_error(&mut cx, id, e);
                self.sh.abort(key, CloseReason::Error(kind));
            }
        }
    }

    /// Hand an accepted (and, on TLS, handshaken) connection to the plugin.
    fn open_plugin(&mut self, key: Key) {
        let idx = key.index() as usize;
        if self.states.len() <= idx {
            self.states.resize_with(idx + 1, || None);
        }
        let mut cx = ConnCtx {
            core: CoreCtx { sh: &mut self.sh },
            key,
        };
        match self.plugin.on_open(&mut cx) {
            Some(st) => {
                if let Some(s) = self.states.get_mut(idx) {
                    *s = Some(st);
                }
            }
            None => {
                self.sh.stats.refused += 1;
                self.sh.abort(key, CloseReason::Refused);
            }
        }
    }

    /// Bytes arrived on a connection. `data` is the driver's receive buffer.
    pub(crate) fn deliver(&mut self, key: Key, data: &mut [u8]) {
        match self.count_input(key, data.len()) {
            Some(true) => self.deliver_tls(key, data),
            Some(false) => self.deliver_plain(key, data),
            None => {} // input after close is discarded
        }
    }

    /// Count `n` bytes read on `key` (stats, read throttle). `None` if they are to be
    /// discarded (the connection is gone or closing), else whether the connection is TLS.
    fn count_input(&mut self, key: Key, n: usize) -> Option<bool> {
        let now = self.sh.now;
        let c = self.sh.conns.get_mut(key)?;
        self.sh.stats.bytes_in += n as u64;
        if let Some(b) = c
            .ext
            .as_mut()
            .and_then(|e| e.throttle.as_mut())
            .and_then(|t| t.read.as_mut())
        {
            b.refill(now);
            b.spend(n);
            if b.budget <= 0 && c.flags & THROTTLED_R == 0 {
                c.flags |= THROTTLED_R;
                let wait = b.wait();
                self.sh.set_timer(wait, TimerTarget::ThrottleRead(key));
                self.sh.mark_dirty(key);
            }
        }
        let c = self.sh.conns.get(key)?;
        (c.flags & (CLOSING | ABORT) == 0).then_some(c.tls().is_some())
    }

    /// Where a driver may read the next bytes of `key` straight into the connection's input
    /// buffer: a plain (not TLS) connection whose buffer holds the start of a record and has
    /// at least `min` bytes of room reserved for the rest (a large WebSocket frame, say).
    /// Reading there saves copying every byte of the record from the driver's buffer.
    pub(crate) fn direct_input(&mut self, key: Key, min: usize) -> Option<&mut [MaybeUninit<u8>]> {
        let max_in = self.sh.cfg.max_in_buffer;
        let c = self.sh.conns.get_mut(key)?;
        if c.flags & (CLOSING | ABORT | REDELIVER) != 0 {
            return None;
        }
        let e = c.ext.as_deref_mut()?;
        if e.tls.is_some() || e.inbuf.is_empty() {
            return None;
        }
        // Never past the input limit: the last bytes up to it, and the byte that passes it
        // (which aborts the connection), are read the usual way, where the limit is checked.
        let below_limit = max_in.saturating_sub(e.inbuf.len());
        let spare = e.inbuf.spare_capacity_mut();
        let n = spare.len().min(below_limit);
        (n >= min).then(|| &mut spare[..n])
    }

    /// io_uring: the connection's buffered input taken out for a read into its room that
    /// completes later ([`Core::direct_input`] decides when), with how many bytes may be read
    /// there. The driver owns the buffer until [`Core::finish_direct`], so nothing frees or
    /// moves it while the kernel writes into it.
    pub(crate) fn take_direct_input(&mut self, key: Key, min: usize) -> Option<(Vec<u8>, usize)> {
        let n = self.direct_input(key, min)?.len();
        let c = self.sh.conns.get_mut(key)?;
        Some((c.take_inbuf(), n))
    }

    /// io_uring: the read into a buffer from [`Core::take_direct_input`] ended with `n` bytes
    /// added to it (0: none, the read failed or was cancelled). The buffer goes back to the
    /// connection and, with new bytes, is offered to the plugin; a connection gone or closing
    /// meanwhile drops it.
    pub(crate) fn finish_direct(&mut self, key: Key, mut buf: Vec<u8>, n: usize) {
        if n > 0 {
            self.sh.stats.direct_bytes_in += n as u64;
            if self.count_input(key, n).is_some() {
                self.offer_buffered(key, buf);
            }
            return;
        }
        if let Some(c) = self.sh.conns.get_mut(key)
            && c.flags & (CLOSING | ABORT) == 0
        {
            // Nothing can have arrived meanwhile (the direct read was the connection's only
            // one), but keep any such bytes after the older ones.
            buf.extend_from_slice(c.inbuf());
            c.ext().inbuf = buf;
        }
    }

    /// io_uring: whether the connection has room reserved for a direct read (the multishot
    /// receive is then swapped for one into that room).
    pub(crate) fn has_direct_room(&mut self, key: Key, min: usize) -> bool {
        self.direct_input(key, min).is_some()
    }

    /// `n` bytes were read into the room [`Core::direct_input`] gave: they now follow the
    /// buffered input, which is offered to the plugin.
    pub(crate) fn deliver_direct(&mut self, key: Key, n: usize) {
        let Some(c) = self.sh.conns.get_mut(key) else {
            return;
        };
        let inbuf = &mut c.ext().inbuf;
        let len = inbuf.len() + n;
        assert!(
            len <= inbuf.capacity(),
            "direct read past the reserved room"
        );
        // SAFETY: the driver's read initialized the `n` bytes after `len - n`, inside the
        // capacity (checked above); `u8` has no invalid bit patterns.
        unsafe { inbuf.set_len(len) };
        self.sh.stats.direct_bytes_in += n as u64;
        if self.count_input(key, n).is_none() {
            return;
        }
        let Some(c) = self.sh.conns.get_mut(key) else {
            return;
        };
        let buf = c.take_inbuf();
        self.offer_buffered(key, buf);
    }

    /// Records arrived on a TLS connection: decrypt, finish the handshake (then open the
    /// connection to the plugin), deliver the plaintext.
    fn deliver_tls(&mut self, key: Key, data: &[u8]) {
        let mut plain = std::mem::take(&mut self.sh.tls_plain);
        let Some(c) = self.sh.conns.get_mut(key) else {
            return;
        };
        let Some(t) = c.ext.as_mut().and_then(|e| e.tls.as_deref_mut()) else {
            return;
        };
        let fed = t.feed(data, &mut plain);
        let opened = t.handshaking && !t.conn.is_handshaking();
        let counted = t.counted;
        if opened {
            t.handshaking = false;
        }
        let handshaking = t.handshaking;
        let added = t.drain_into(&mut c.out);
        c.count_out(added);
        let peer = c.peer.get();
        if added > 0 {
            self.sh.mark_dirty(key);
        }
        if let Some(e) = fed.error {
            tracing::debug!(%peer, "tls: closing: {e}");
            if let Some(c) = self.sh.conns.get_mut(key) {
                if let Some(t) = c.tls_mut() {
                    t.failed = true;
                }
                c.flags |= CLOSING;
                c.reason = Some(CloseReason::Tls);
                c.free_inbuf();
            }
            if handshaking {
                self.sh.stats.tls_failures += 1;
                if self
                    .sh
                    .conns
                    .get(key)
                    .is_some_and(|c| c.listener == OUTGOING)
                {
                    let id = self.sh.id_of(key);
                    let err = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
                    let mut cx = core_ctx(&mut self.sh);
                    self.plugin.on_connect_error(&mut cx, id, err);
                }
            }
            self.sh.mark_dirty(key);
            self.sh.tls_plain = plain;
            return;
        }
        if opened {
            if counted {
                self.sh.tls_handshaking = self.sh.tls_handshaking.saturating_sub(1);
            }
            self.sh.stats.tls_handshakes += 1;
            self.open_plugin(key);
        }
        if let Some(p) = plain.get_mut(..fed.len).filter(|p| !p.is_empty()) {
            self.deliver_plain(key, p);
        }
        if fed.peer_closed {
            self.eof(key);
        }
        if plain.len() <= 256 * 1024 {
            self.sh.tls_plain = plain;
        }
    }

    /// Plaintext for the plugin: straight from `data`, or after what is still buffered.
    fn deliver_plain(&mut self, key: Key, data: &mut [u8]) {
        let max_in = self.sh.cfg.max_in_buffer;
        let Some(c) = self.sh.conns.get_mut(key) else {
            return;
        };
        if c.flags & (CLOSING | ABORT) != 0 {
            return;
        }
        if c.inbuf().is_empty() {
            // Fast path: the plugin reads straight from the driver's buffer.
            let consumed = self.call_data(key, Input::Borrowed(data));
            let rest = data.get(consumed..).unwrap_or_default();
            if !rest.is_empty() {
                self.keep_rest(key, rest, max_in);
            }
        } else {
            if c.inbuf().len() + data.len() > max_in {
                self.sh.abort(key, CloseReason::InputOverflow);
                return;
            }
            let mut buf = c.take_inbuf();
            buf.extend_from_slice(data);
            self.offer_buffered(key, buf);
        }
    }

    fn keep_rest(&mut self, key: Key, rest: &[u8], max_in: usize) {
        let hint = self.sh.input_req.reserve;
        if let Some(c) = self.sh.conns.get_mut(key)
            && c.flags & (CLOSING | ABORT) == 0
        {
            if rest.len() > max_in {
                self.sh.abort(key, CloseReason::InputOverflow);
            } else {
                let inbuf = &mut c.ext().inbuf;
                inbuf.reserve_exact(input_room(hint, rest.len(), max_in));
                inbuf.extend_from_slice(rest);
            }
        }
    }

    /// Offer the connection's buffered input (taken out of `Conn::inbuf`) to the plugin, and
    /// keep what it leaves, with room for what it said it needs.
    fn offer_buffered(&mut self, key: Key, mut buf: Vec<u8>) {
        let consumed = self.call_data(key, Input::Owned(&mut buf));
        buf.drain(..consumed.min(buf.len()));
        let (hint, max_in) = (self.sh.input_req.reserve, self.sh.cfg.max_in_buffer);
        if let Some(c) = self.sh.conns.get_mut(key)
            && c.flags & (CLOSING | ABORT) == 0
            && !buf.is_empty()
        {
            // Input that arrived meanwhile (none: callbacks do not nest) would go after it.
            buf.extend_from_slice(c.inbuf());
            let room = input_room(hint, buf.len(), max_in);
            buf.reserve_exact(room - buf.len());
            c.ext().inbuf = buf;
        }
    }

    /// Call on_data until it consumes everything or stops making progress, handing over what
    /// it takes ([`ConnCtx::take_input`]). Returns how many bytes at the front of the input
    /// were consumed (of an owned buffer as it is on return: a hand-over may replace it).
    // Inlined into both callers: called, it cost ~60 instructions per small message
    // (perf/callgrind.sh, 10x512: 3,170 against 3,110).
    #[inline(always)]
    fn call_data(&mut self, key: Key, mut input: Input<'_>) -> usize {
        let owned = matches!(input, Input::Owned(_));
        self.sh.input_req = InputReq {
            owned,
            ..InputReq::default()
        };
        let mut done = 0;
        while let Some(rest) = input.bytes().get_mut(done..).filter(|r| !r.is_empty()) {
            let len = rest.len();
            // Each call makes its own requests.
            self.sh.input_req.reserve = 0;
            self.sh.input_req.take = 0;
            let n = self.with_conn(key, |p, st, cx| {
                if cx.is_closing() {
                    0
                } else {
                    p.on_data(st, cx, rest)
                }
            });
            let Some(n) = n.map(|n| n.min(len)) else {
                break;
            };
            done += n;
            let take = self.sh.input_req.take.min(len - n);
            if take > 0 {
                self.hand_over(key, &mut input, &mut done, take);
            } else if n == 0 {
                break;
            }
        }
        done
    }

    /// Hand the `n` input bytes at `*done` that `on_data` took to the plugin, counted as
    /// consumed.
    #[inline(never)]
    fn hand_over(&mut self, key: Key, input: &mut Input<'_>, done: &mut usize, n: usize) {
        let taken = input.take(done, n);
        self.with_conn(key, |p, st, cx| {
            if !cx.is_closing() {
                p.on_owned_data(st, cx, taken);
            }
        });
    }

    /// Offer buffered input again after the plugin resumed reading (drivers call this when
    /// servicing a connection flagged `REDELIVER`).
    pub(crate) fn redeliver(&mut self, key: Key) {
        let Some(c) = self.sh.conns.get_mut(key) else {
            return;
        };
        c.flags &= !REDELIVER;
        if c.inbuf().is_empty() || c.flags & (CLOSING | ABORT) != 0 {
            return;
        }
        let buf = c.take_inbuf();
        self.offer_buffered(key, buf);
    }

    /// The peer sent FIN (read returned 0).
    pub(crate) fn eof(&mut self, key: Key) {
        let Some(c) = self.sh.conns.get_mut(key) else {
            return;
        };
        c.flags |= READ_CLOSED;
        if c.tls().is_some_and(|t| t.handshaking) {
            // The peer left mid-handshake: the plugin never saw this connection.
            self.sh.close(key);
        } else if c.flags & (CLOSING | ABORT | EOF_TOLD) == 0 {
            c.flags |= EOF_TOLD;
            self.with_conn(key, |p, st, cx| p.on_read_closed(st, cx));
        }
        self.sh.mark_dirty(key);
    }

    /// A socket error on read or write.
    pub(crate) fn error(&mut self, key: Key, err: std::io::Error) {
        if let Some(c) = self.sh.conns.get_mut(key) {
            c.flags |= READ_CLOSED;
        }
        self.sh.abort(key, CloseReason::Error(err.kind()));
    }

    /// `n` bytes of the out-queue were written.
    pub(crate) fn sent(&mut self, key: Key, n: usize) {
        let Some(c) = self.sh.conns.get_mut(key) else {
            return;
        };
        self.sh.stats.bytes_out += n as u64;
        if let Some(b) = c.throttle_mut().and_then(|t| t.write.as_mut()) {
            b.spend(n);
        }
        c.advance_out(n);
        if c.out_len == 0 && c.flags & WAS_BUSY != 0 && c.flags & (CLOSING | ABORT) == 0 {
            c.flags &= !WAS_BUSY;
            self.with_conn(key, |p, st, cx| p.on_drained(st, cx));
        }
        self.sh.mark_dirty(key);
    }

    /// Hold writes until the write budget refills; true when a write may go now.
    pub(crate) fn write_gate(&mut self, key: Key) -> usize {
        let now = self.sh.now;
        let Some(c) = self.sh.conns.get_mut(key) else {
            return 0;
        };
        if c.flags & THROTTLED_W != 0 {
            return 0;
        }
        let allow = c.write_allowance(now);
        if allow == 0 {
            c.flags |= THROTTLED_W;
            let wait = c
                .throttle_mut()
                .and_then(|t| t.write.as_ref())
                .map_or(Duration::from_millis(1), |b| b.wait());
            self.sh.set_timer(wait, TimerTarget::ThrottleWrite(key));
        }
        allow
    }

    /// The close state machine shared by both drivers: after the driver did its I/O steps,
    /// decide whether to FIN, to wait, or to finish.
    pub(crate) fn close_progress(&mut self, key: Key) -> Next {
        let linger = self.sh.cfg.linger;
        let Some(c) = self.sh.conns.get_mut(key) else {
            return Next::Io;
        };
        if c.flags & ABORT != 0 {
            return Next::Finish;
        }
        if c.flags & CLOSING == 0 {
            return Next::Io;
        }
        if c.out_len == 0 && c.flags & (SEND_INFLIGHT | WR_SHUT) == 0 {
            // SAFETY: `fd` is this connection's open socket; it is closed only in `finish`.
            unsafe { libc::shutdown(c.fd, libc::SHUT_WR) };
            c.flags |= WR_SHUT;
        }
        if c.flags & WR_SHUT != 0 && c.flags & READ_CLOSED != 0 {
            return Next::Finish;
        }
        if c.flags & WR_SHUT != 0 && c.flags & LINGERING == 0 {
            c.flags |= LINGERING;
            self.sh.set_timer(linger, TimerTarget::Linger(key));
        }
        Next::Io
    }

    /// Free the connection: reset it if aborted, close the fd, hand the state back to the plugin.
    /// The driver calls this only when no operation of its own is in flight on the fd.
    pub(crate) fn finish(&mut self, key: Key) {
        let Some(c) = self.sh.conns.remove(key) else {
            return;
        };
        let sweep = self.sh.deadlines.clear(key.index());
        self.sh.apply_sweep(sweep);
        if c.flags & ABORT != 0 && c.flags & WR_SHUT == 0 {
            let lg = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: `fd` is still open (closed just below); `lg` lives across the call and
            // the length matches its type.
            unsafe {
                libc::setsockopt(
                    c.fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&lg as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
        // SAFETY: the fd belongs to this connection and no operation is in flight on it.
        unsafe { libc::close(c.fd) };
        if c.tls().is_some_and(|t| t.handshaking && t.counted) {
            self.sh.tls_handshaking = self.sh.tls_handshaking.saturating_sub(1);
        }
        self.sh.global.open.fetch_sub(1, Ordering::AcqRel);
        self.sh.stats.closed += 1;
        self.sh.stats.open = self.sh.stats.open.saturating_sub(1);
        let reason = c.reason.unwrap_or(CloseReason::Peer);
        if let Some(st) = self
            .states
            .get_mut(key.index() as usize)
            .and_then(Option::take)
        {
            let mut cx = core_ctx(&mut self.sh);
            self.plugin.on_close(st, &mut cx, reason);
        }
    }

    /// Fire every timer due at `now`. Returns the connections whose read throttle lifted
    /// (already marked dirty).
    pub(crate) fn fire_timers(&mut self) {
        let now = self.sh.now;
        while let Some((_, t)) = self.sh.timers.poll_expired(now) {
            match t {
                TimerTarget::Conn(key, token) => {
                    self.with_conn(key, |p, st, cx| p.on_timer(st, cx, token));
                }
                TimerTarget::Core(token) => {
                    let mut cx = core_ctx(&mut self.sh);
                    self.plugin.on_core_timer(&mut cx, token);
                }
                TimerTarget::Linger(key) => {
                    if self
                        .sh
                        .conns
                        .get(key)
                        .is_some_and(|c| c.flags & READ_CLOSED == 0)
                    {
                        self.sh.abort(key, CloseReason::LingerTimeout);
                    }
                }
                TimerTarget::ThrottleRead(key) => {
                    if let Some(c) = self.sh.conns.get_mut(key) {
                        let wait = match c.throttle_mut().and_then(|t| t.read.as_mut()) {
                            Some(b) => (b.available(now) == 0).then(|| b.wait()),
                            None => None,
                        };
                        match wait {
                            Some(w) => {
                                self.sh.set_timer(w, TimerTarget::ThrottleRead(key));
                            }
                            None => {
                                c.flags &= !THROTTLED_R;
                                c.flags |= READ_READY;
                                self.sh.mark_dirty(key);
                            }
                        }
                    }
                }
                TimerTarget::ThrottleWrite(key) => {
                    if let Some(c) = self.sh.conns.get_mut(key) {
                        c.flags &= !THROTTLED_W;
                        self.sh.mark_dirty(key);
                    }
                }
                TimerTarget::ShutdownDeadline => {
                    for key in self.sh.conns.keys() {
                        self.sh.abort(key, CloseReason::Shutdown);
                    }
                }
                TimerTarget::Connect(key) => {
                    if self
                        .sh
                        .conns
                        .get(key)
                        .is_some_and(|c| c.flags & CONNECTING != 0)
                    {
                        let e =
                            std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                        self.connected(key, Err(e));
                    }
                }
                TimerTarget::TlsHandshake(key) => {
                    if let Some(c) = self.sh.conns.get(key)
                        && c.tls().is_some_and(|t| t.handshaking)
                        && c.flags & (CLOSING | ABORT) == 0
                    {
                        tracing::debug!(peer = %c.peer.get(), "tls: handshake deadline passed");
                        self.sh.stats.tls_failures += 1;
                        self.sh.abort(key, CloseReason::Tls);
                    }
                }
                TimerTarget::PublishStats => {
                    self.sh.global.publish(self.sh.core, &self.sh.stats);
                    self.sh
                        .timers
                        .insert(now + Duration::from_millis(100), TimerTarget::PublishStats);
                }
                TimerTarget::Trim => {
                    self.sh.trim_idle();
                    self.sh.timers.insert(now + TRIM_EVERY, TimerTarget::Trim);
                }
                TimerTarget::Deadlines => self.sweep_deadlines(),
            }
        }
    }

    /// The deadline sweep's timer fired: call [`Plugin::on_deadline`] for every connection
    /// whose deadline passed, and set the timer for the next sweep.
    fn sweep_deadlines(&mut self) {
        self.sh.deadline_timer = None;
        let mut due = std::mem::take(&mut self.sh.deadline_due);
        if let Some(at) = self.sh.deadlines.sweep(self.sh.now, &mut due) {
            self.sh.deadline_timer = Some(self.sh.timers.insert(at, TimerTarget::Deadlines));
        }
        for &index in &due {
            let Some((key, _)) = self.sh.conns.get_by_index_mut(index) else {
                continue;
            };
            self.with_conn(key, |p, st, cx| p.on_deadline(st, cx));
        }
        due.clear();
        self.sh.deadline_due = due;
    }

    /// Drain the inbox. Returns true if a stop was requested (the driver then closes its listeners
    /// and calls [`Core::begin_stop`]).
    pub(crate) fn drain_inbox(&mut self, bus: &crate::bus::Bus) -> bool {
        bus.clear_notified(self.sh.core);
        let mut stop = false;
        while let Ok(env) = self.inbox.try_recv() {
            match env {
                Envelope::User(msg) => {
                    let mut cx = core_ctx(&mut self.sh);
                    self.plugin.on_message(&mut cx, &msg);
                }
                Envelope::Stop => stop = true,
            }
        }
        stop
    }

    /// Graceful stop: tell the plugin, close every connection gracefully, arm the deadline.
    pub(crate) fn begin_stop(&mut self) {
        if self.sh.stopping {
            return;
        }
        self.sh.stopping = true;
        let mut cx = core_ctx(&mut self.sh);
        self.plugin.on_stop(&mut cx);
        for key in self.sh.conns.keys() {
            self.sh.close(key);
        }
        let d = self.sh.cfg.shutdown_timeout;
        self.sh.set_timer(d, TimerTarget::ShutdownDeadline);
        self.sh.global.publish(self.sh.core, &self.sh.stats);
    }

    /// A datagram arrived on UDP socket `sock`.
    pub(crate) fn datagram(&mut self, sock: usize, from: SocketAddr, data: &mut [u8]) {
        self.sh.stats.datagrams_in += 1;
        let mut cx = core_ctx(&mut self.sh);
        self.plugin.on_datagram(&mut cx, UdpId(sock), from, data);
    }

    /// The instant the driver should wake at the latest (the next timer), if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.sh.timers.next_expiration()
    }

    pub(crate) fn publish_stats(&self) {
        self.sh.global.publish(self.sh.core, &self.sh.stats);
    }
}

/// Convert a `sockaddr_storage` the kernel filled into a `SocketAddr`.
/// Read exactly `len` bytes of `file` at `off` (positional: the file offset is not moved).
pub(crate) fn read_range(file: &std::fs::File, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut v = vec![0u8; len];
    file.read_exact_at(&mut v, off)?;
    Ok(v)
}

pub(crate) fn sockaddr_to_std(
    ss: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let _ = len;
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large enough for.
            let a: &libc::sockaddr_in = unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which it is large enough for.
            let a: &libc::sockaddr_in6 = unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Convert a `SocketAddr` into a `sockaddr_storage` and its length.
pub(crate) fn std_to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let s = socket2::SockAddr::from(*addr);
    let len = s.len();
    // SAFETY: SockAddr wraps a sockaddr_storage; reading it by value copies plain data.
    let ss = unsafe { *s.as_ptr().cast::<libc::sockaddr_storage>() };
    (ss, len)
}

/// The peer's (`peer`) or the local address of a connected socket.
pub(crate) fn sock_addr(fd: RawFd, peer: bool) -> Option<SocketAddr> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let p = (&mut ss as *mut libc::sockaddr_storage).cast();
    // SAFETY: `ss` and `len` are valid for writes of the storage's size.
    let r = unsafe {
        if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        }
    };
    if r == 0 {
        sockaddr_to_std(&ss, len)
    } else {
        None
    }
}

/// The client side of a TLS connection to `server_name`.
fn tls_client(
    tls: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> std::io::Result<Box<crate::tls::TlsConn>> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let t = crate::tls::TlsConn::client(tls, name)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    Ok(Box::new(t))
}

#[cfg(test)]
mod tests {
    use super::{OutChunk, OutQueue};
    use bytes::Bytes;

    fn chunk(s: &'static str) -> OutChunk {
        OutChunk::Mem(Bytes::from_static(s.as_bytes()))
    }

    fn contents(q: &OutQueue) -> Vec<u8> {
        q.iter()
            .flat_map(|c| match c {
                OutChunk::Mem(b) => b.to_vec(),
                OutChunk::File(_) => panic!("no files here"),
            })
            .collect()
    }

    #[test]
    fn out_queue_holds_one_chunk_inline_and_spills_in_order() {
        let mut q = OutQueue::default();
        assert!(q.is_empty() && q.front().is_none() && q.get(0).is_none());
        q.push_back(chunk("a"));
        assert!(matches!(q, OutQueue::One(_)));
        assert_eq!(
            (q.len(), q.capacity()),
            (1, 0),
            "one chunk allocates nothing"
        );
        assert!(q.get(0).is_some() && q.get(1).is_none());
        q.push_back(chunk("b"));
        q.push_back(chunk("c"));
        assert_eq!(q.len(), 3);
        assert!(q.capacity() >= 3);
        assert_eq!(contents(&q), b"abc");
        assert_eq!(q.get(2).map(|c| c.len()), Some(1));
        assert!(q.pop_front().is_some());
        assert_eq!(contents(&q), b"bc");
        if let Some(OutChunk::Mem(b)) = q.front_mut() {
            *b = Bytes::from_static(b"B");
        }
        assert_eq!(contents(&q), b"Bc");
        q.pop_front();
        q.pop_front();
        assert!(q.is_empty() && q.pop_front().is_none());
        // The spilled queue keeps its storage for the next burst until released.
        assert!(q.capacity() > 0);
        q.release_if_empty();
        assert_eq!(q.capacity(), 0);
        q.push_back(chunk("x"));
        q.release_if_empty();
        assert_eq!(contents(&q), b"x", "a queue with data is not released");
        assert!(q.pop_front().is_some());
        assert!(matches!(q, OutQueue::Empty));
    }

    #[test]
    fn connection_slot_stays_small() {
        // Every open connection pays for this (perf/README.md, idle_memory).
        assert!(std::mem::size_of::<super::Conn>() <= 104);
    }

    #[test]
    fn out_limit_fits_32_bits() {
        assert_eq!(super::out_limit(16 << 20), 16 << 20);
        assert_eq!(super::out_limit(usize::MAX), 1 << 31);
        assert_eq!(super::out_limit(super::MAX_OUT_LIMIT + 1), 1 << 31);
    }

    #[test]
    fn the_boxed_part_comes_and_goes_with_its_contents() {
        let mut c = super::Conn {
            fd: -1,
            flags: 0,
            inflight: 0,
            listener: 0,
            peer: "127.0.0.1:1"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
            out: OutQueue::Empty,
            out_len: 0,
            out_off: 0,
            max_out: 1024,
            policy: Default::default(),
            reason: None,
            ext: None,
        };
        assert!(c.inbuf().is_empty() && c.tls().is_none() && c.throttle_mut().is_none());
        assert!(c.take_inbuf().is_empty());
        assert!(c.ext.is_none(), "reading made nothing");
        c.ext().inbuf.extend_from_slice(b"partial");
        assert_eq!(c.inbuf(), b"partial");
        c.release_ext_if_empty();
        assert_eq!(c.inbuf(), b"partial", "kept while it holds input");
        let taken = c.take_inbuf();
        assert_eq!(taken, b"partial");
        // Taken out, the buffer left no storage behind: the box may go.
        c.release_ext_if_empty();
        assert!(c.ext.is_none());
        c.ext().throttle = Some(super::ThrottleState::default());
        c.release_ext_if_empty();
        assert!(c.throttle_mut().is_some(), "kept while throttled");
        c.ext().throttle = None;
        c.ext().inbuf.reserve(64);
        c.release_ext_if_empty();
        assert!(c.ext.is_some(), "kept while the buffer has storage");
        c.free_inbuf();
        c.release_ext_if_empty();
        assert!(c.ext.is_none());
    }

    #[test]
    fn peer_addr_round_trips() {
        assert_eq!(std::mem::size_of::<super::PeerAddr>(), 24);
        for a in [
            "127.0.0.1:80",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:443",
            "[fe80::1%7]:8080",
            "[::ffff:10.0.0.1]:9",
        ] {
            let a: std::net::SocketAddr = a.parse().unwrap();
            assert_eq!(super::PeerAddr::from(a).get(), a, "{a}");
        }
    }
}
