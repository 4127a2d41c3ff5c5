//! One load thread: its own mio (epoll, edge-triggered) event loop over its share of the
//! connections. Threads share nothing but the start barrier and the clock base.
//!
//! Phases: *setup* opens every connection (TCP connect, then the WebSocket handshake for the
//! WebSocket modes), at most `--connect-batch` at a time; *run* starts at the instant the main
//! thread hands out, spends `--warmup` seconds unmeasured and `--secs` measured.
//!
//! With `--tls` each connection has a rustls `ClientConnection` between the socket and the
//! plaintext queues: `out` holds plaintext, moved into records with `writer()` and onto the
//! socket with `write_tls`; received records go through `read_tls` and `process_new_packets`,
//! and the plaintext read from `reader()` into the scratch buffer takes the plain path.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use ringwire_ws::handshake::{ClientHandshake, ClientRequest, ServerResponse};
use ringwire_ws::{Config, DeflateConfig, MessageKind, WebSocket, WsEvent};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind};
use socket2::{Domain, SockRef, Socket, Type};

use crate::{Args, Mode, fail};

/// Highest latency the histograms hold (60 s, in ns); larger values saturate.
const HIST_MAX_NS: u64 = 60_000_000_000;
/// Most scheduled sends fired in one loop turn, so reads are not starved when the loop lags.
const MAX_FIRE_PER_TURN: usize = 4096;
/// The read buffer shared by a thread's connections.
const SCRATCH_LEN: usize = 256 * 1024;
/// Storm with `--resume`: server names each slot's own session store keeps (one is used).
const SLOT_SESSIONS: usize = 4;
/// Bytes of the payload that carry the per-message stamp (hex).
pub const STAMP_LEN: usize = 16;
/// Broadcast payloads carry a sequence number and a send time: two stamps.
pub const BROADCAST_MIN_SIZE: usize = 2 * STAMP_LEN;

/// A new empty latency histogram (1 ns .. 60 s, 3 significant digits).
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).unwrap_or_else(|e| fail(&format!("hist: {e}")))
}

/// The payload filler: printable ASCII (valid UTF-8 for text frames), different at every
/// offset modulo 94 so a shifted echo does not pass.
pub fn pattern(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| ((i.wrapping_mul(131) ^ (i >> 7).wrapping_mul(17)) % 94 + 33) as u8)
        .collect()
}

/// `v` as 16 lower-case hex digits.
fn hex16(v: u64) -> [u8; STAMP_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; STAMP_LEN];
    for (j, o) in out.iter_mut().enumerate() {
        *o = HEX[((v >> (4 * (15 - j))) & 0xF) as usize];
    }
    out
}

fn parse_hex16(b: &[u8]) -> Option<u64> {
    if b.len() != STAMP_LEN {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    u64::from_str_radix(s, 16).ok()
}

/// The stamp of message `seq` on connection `id`: unique per connection and round.
fn stamp_of(id: usize, seq: u64) -> [u8; STAMP_LEN] {
    hex16(seq ^ ((id as u64) << 40))
}

/// Checks `data`, found at offset `off` of the echo of a message stamped `stamp`, against what
/// was sent: the last `min(16, size)` stamp digits first, then the pattern.
fn payload_matches(stamp: &[u8; STAMP_LEN], pat: &[u8], off: usize, data: &[u8]) -> bool {
    let n = pat.len().min(STAMP_LEN);
    let Some(want) = pat.get(off..off + data.len()) else {
        return false;
    };
    let head = n.saturating_sub(off).min(data.len());
    let stamp_ok =
        head == 0 || data[..head] == stamp[STAMP_LEN - n + off..STAMP_LEN - n + off + head];
    stamp_ok && data[head..] == want[head..]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// Not started (setup) or waiting to reconnect (storm).
    Idle,
    Connecting,
    /// TLS handshake in progress (before the WebSocket one).
    TlsHandshaking,
    Handshaking,
    Open,
}

struct Conn {
    /// Global connection index (0 is the broadcast publisher).
    id: usize,
    sock: Option<TcpStream>,
    st: St,
    /// When the current connect started.
    t0: Instant,
    hs: Option<ClientHandshake>,
    ws: Option<WebSocket>,
    /// With `--tls`: the connection's rustls state.
    tls: Option<Box<ClientConnection>>,
    /// How the TLS handshake went, counted when the connection opens.
    tls_kind: Option<HandshakeKind>,
    /// Storm with `--resume`: this slot's own configuration and session store, so each
    /// reconnect resumes from the tickets its previous connection got. (One store for all
    /// slots would not do: rustls keeps at most 8 TLS 1.3 tickets per server name, and many
    /// slots in flight would find it empty and fall back to full handshakes.)
    tls_cfg: Option<Arc<ClientConfig>>,
    /// Received bytes not consumed yet (an incomplete frame or response head).
    rx: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    w_blocked: bool,
    r_blocked: bool,
    /// Messages (or pings) in flight: sequence number and the time they count from.
    inflight: VecDeque<(u64, Instant)>,
    /// Last sequence number sent (echo, ping, publish) or received (broadcast subscriber).
    seq: u64,
    /// Raw TCP: bytes of the oldest in-flight message verified so far.
    rd: usize,
}

/// What one thread measured.
pub struct WorkerOut {
    /// Latency of every measured message (echo round trip, pong, delivery, handshake).
    pub hist: Histogram<u64>,
    /// Connect-to-open latency of the setup phase.
    pub setup_hist: Histogram<u64>,
    /// Messages completed in the measured window.
    pub measured: u64,
    /// Messages completed before it (warm-up).
    pub warm: u64,
    /// Open-loop messages still in flight at the end (recorded at their age then).
    pub unfinished: u64,
    /// Connection errors (storm mode counts them and goes on; other modes fail at once).
    pub errors: u64,
    /// The first connection error's text.
    pub first_error: Option<String>,
    /// Pings the server sent (answered by the codec).
    pub server_pings: u64,
    /// Messages the broadcast publisher sent in the measured window.
    pub published: u64,
    /// Wall time of the setup phase.
    pub setup: Duration,
    /// Full TLS handshakes (storm: opened in the measured window; other modes: at setup).
    pub tls_full: u64,
    /// Resumed TLS handshakes, counted the same way.
    pub tls_resumed: u64,
    /// The first connection's TLS version, cipher suite and key exchange group.
    pub tls_params: Option<String>,
}

struct Sched {
    next: Instant,
    interval: Duration,
    cursor: usize,
}

struct Worker {
    args: Arc<Args>,
    mode: Mode,
    kind: MessageKind,
    poll: Poll,
    conns: Vec<Conn>,
    scratch: Vec<u8>,
    /// The outgoing payload: the pattern with the current stamp in front.
    msg: Vec<u8>,
    pat: Arc<Vec<u8>>,
    sources: Arc<Vec<IpAddr>>,
    src_next: usize,
    ws_config: Config,
    rng: u64,
    base: Instant,
    measure_from: Instant,
    end: Instant,
    running: bool,
    closed_loop: bool,
    opening: usize,
    open_count: usize,
    /// Connections done with their `--count` echoes.
    finished: usize,
    /// Storm slots to reconnect after this turn's events.
    reconnect: Vec<usize>,
    /// With `--tls`: the run's client configuration and the server name.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    out: WorkerOut,
}

/// One thread's share of the run.
pub struct Job {
    /// The command line.
    pub args: Arc<Args>,
    /// Global connection indices of this thread.
    pub ids: Vec<usize>,
    /// Scheduled sends per second on this thread (0: none).
    pub rate: f64,
    /// The clock base of broadcast stamps (shared by all threads).
    pub base: Instant,
    /// The payload filler.
    pub pat: Arc<Vec<u8>>,
    /// Source addresses to bind before connect (empty: the kernel's choice).
    pub sources: Arc<Vec<IpAddr>>,
    /// Every thread and the main thread meet here once all connections are open.
    pub barrier: Arc<Barrier>,
    /// The run's start instant, from the main thread.
    pub start_rx: Receiver<Instant>,
    /// With `--tls`: the run's client configuration and the server name.
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// Runs one thread's share.
pub fn run(job: Job) -> WorkerOut {
    let Job {
        args,
        ids,
        rate,
        base,
        pat,
        sources,
        barrier,
        start_rx,
        tls,
    } = job;
    let poll = Poll::new().unwrap_or_else(|e| fail(&format!("epoll_create: {e}")));
    let now = Instant::now();
    let mode = args.mode;
    let mut deflate = DeflateConfig::default();
    if args.deflate {
        deflate = DeflateConfig::enabled();
    }
    let ws_config = Config {
        deflate,
        ..Config::default()
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ ids.first().copied().unwrap_or(0) as u64;
    let slot_cfg = || {
        let (cfg, _) = tls.as_ref()?;
        if mode != Mode::Storm || !args.resume {
            return None;
        }
        let mut c = ClientConfig::clone(cfg);
        c.resumption = Resumption::in_memory_sessions(SLOT_SESSIONS);
        Some(Arc::new(c))
    };
    let conns = ids
        .iter()
        .map(|&id| Conn {
            id,
            sock: None,
            st: St::Idle,
            t0: now,
            hs: None,
            ws: None,
            tls: None,
            tls_kind: None,
            tls_cfg: slot_cfg(),
            rx: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            w_blocked: true,
            r_blocked: true,
            inflight: VecDeque::new(),
            seq: 0,
            rd: 0,
        })
        .collect();
    let mut w = Worker {
        kind: if args.text {
            MessageKind::Text
        } else {
            MessageKind::Binary
        },
        closed_loop: matches!(mode, Mode::WsEcho | Mode::TcpEcho) && args.rate <= 0.0,
        args,
        mode,
        poll,
        conns,
        scratch: vec![0; SCRATCH_LEN],
        msg: pat.as_ref().clone(),
        pat,
        sources,
        src_next: 0,
        ws_config,
        rng: splitmix(seed),
        base,
        measure_from: now,
        end: now,
        running: false,
        opening: 0,
        open_count: 0,
        reconnect: Vec::new(),
        finished: 0,
        tls,
        out: WorkerOut {
            hist: new_hist(),
            setup_hist: new_hist(),
            measured: 0,
            warm: 0,
            unfinished: 0,
            errors: 0,
            first_error: None,
            server_pings: 0,
            published: 0,
            setup: Duration::ZERO,
            tls_full: 0,
            tls_resumed: 0,
            tls_params: None,
        },
    };
    let mut events = Events::with_capacity(1024);

    // ---- setup: every connection open before the run (storms open theirs during the run)
    if mode != Mode::Storm {
        let t = Instant::now();
        let deadline = t + Duration::from_secs(60 + w.conns.len() as u64 / 500);
        let mut next = 0;
        while w.open_count < w.conns.len() {
            while next < w.conns.len() && w.opening < w.args.connect_batch {
                w.start_connect(next);
                next += 1;
            }
            w.turn(&mut events, Duration::from_millis(50));
            if Instant::now() > deadline {
                fail(&format!(
                    "setup: only {} of {} connections open after {:?}",
                    w.open_count,
                    w.conns.len(),
                    deadline - t
                ));
            }
        }
        w.out.setup = t.elapsed();
    }

    // ---- run
    barrier.wait();
    let start = start_rx
        .recv()
        .unwrap_or_else(|_| fail("main thread went away"));
    w.measure_from = start + Duration::from_secs_f64(w.args.warmup);
    w.end = w.measure_from + Duration::from_secs_f64(w.args.secs);
    while Instant::now() < start {
        std::thread::sleep(start.saturating_duration_since(Instant::now()));
    }
    w.running = true;
    let mut sched = if rate > 0.0 && !w.conns.is_empty() {
        Some(Sched {
            next: start,
            interval: Duration::from_secs_f64(1.0 / rate),
            cursor: 0,
        })
    } else {
        None
    };
    match mode {
        Mode::Storm => {
            for i in 0..w.conns.len() {
                w.start_connect(i);
            }
        }
        _ if w.closed_loop => {
            for i in 0..w.conns.len() {
                w.send_message(i, start);
                w.service(i);
            }
        }
        _ => {}
    }
    loop {
        let now = Instant::now();
        if now >= w.end || (w.args.count > 0 && w.finished == w.conns.len()) {
            break;
        }
        let mut wait = w.end - now;
        if now < w.measure_from {
            wait = wait.min(w.measure_from - now);
        }
        if let Some(s) = sched.as_mut() {
            let mut fired = 0;
            while s.next <= now && fired < MAX_FIRE_PER_TURN {
                // Broadcast: the publisher (id 0) is this thread's first connection.
                let i = if mode == Mode::Broadcast {
                    0
                } else {
                    s.cursor % w.conns.len()
                };
                s.cursor = s.cursor.wrapping_add(1);
                let at = s.next;
                s.next += s.interval;
                fired += 1;
                match mode {
                    Mode::Idle => w.send_ping(i, at),
                    Mode::Broadcast => w.publish(i, at),
                    _ => w.send_message(i, at),
                }
                w.service(i);
            }
            wait = wait.min(s.next.saturating_duration_since(Instant::now()));
        }
        w.turn(&mut events, wait);
    }
    // Open-loop messages still in flight count at their age now (a lower bound).
    let end = w.end;
    for c in &w.conns {
        for &(_, t) in &c.inflight {
            if t >= w.measure_from && !w.closed_loop {
                w.out.unfinished += 1;
                w.out
                    .hist
                    .saturating_record(end.saturating_duration_since(t).as_nanos() as u64);
            }
        }
    }
    w.out
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

impl Worker {
    fn random(&mut self) -> u64 {
        // xorshift64: handshake keys and mask entropy against our own loopback servers.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn random16(&mut self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.random().to_ne_bytes());
        k[8..].copy_from_slice(&self.random().to_ne_bytes());
        k
    }

    /// Polls once (up to `wait`) and services every connection that had an event.
    fn turn(&mut self, events: &mut Events, wait: Duration) {
        if let Err(e) = self.poll.poll(events, Some(wait))
            && e.kind() != ErrorKind::Interrupted
        {
            fail(&format!("epoll_wait: {e}"));
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(c) = self.conns.get_mut(i) else {
                continue;
            };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.r_blocked = false;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                c.w_blocked = false;
            }
            self.service(i);
        }
        if self.running && !self.reconnect.is_empty() && Instant::now() < self.end {
            for i in std::mem::take(&mut self.reconnect) {
                self.start_connect(i);
            }
        }
    }

    /// A connection-level error: storms count it and reconnect, other modes stop the run.
    fn conn_error(&mut self, i: usize, what: String) {
        if self.mode != Mode::Storm {
            fail(&format!("conn {}: {what}", self.conns[i].id));
        }
        if self.running && Instant::now() >= self.measure_from {
            self.out.errors += 1;
            self.out.first_error.get_or_insert(what);
        }
        self.drop_conn(i);
        // Reconnect after this turn; a refused connect comes back as another error.
        self.reconnect.push(i);
    }

    fn drop_conn(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if let Some(mut s) = c.sock.take() {
            let _ = self.poll.registry().deregister(&mut s);
            // RST instead of FIN: the client side keeps no TIME_WAIT entry, so a storm does not
            // run out of ports.
            let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
        c.st = St::Idle;
        c.hs = None;
        c.ws = None;
        c.tls = None;
        c.tls_kind = None;
        c.rx.clear();
        c.out.clear();
        c.out_pos = 0;
        c.inflight.clear();
        c.rd = 0;
    }

    fn start_connect(&mut self, i: usize) {
        let addr = self.args.addr;
        let src = if self.sources.is_empty() {
            None
        } else {
            let ip = self.sources[self.src_next % self.sources.len()];
            self.src_next = self.src_next.wrapping_add(1);
            Some(ip)
        };
        let sock = match connect_nonblocking(addr, src) {
            Ok(s) => s,
            Err(e) => {
                let src = src.map(|s| format!(" from {s}")).unwrap_or_default();
                return self.conn_error(i, format!("connect to {addr}{src}: {e}"));
            }
        };
        let mut sock = TcpStream::from_std(sock);
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            fail(&format!("epoll_ctl: {e}"));
        }
        let c = &mut self.conns[i];
        c.sock = Some(sock);
        c.st = St::Connecting;
        c.t0 = Instant::now();
        c.w_blocked = true;
        c.r_blocked = true;
        if !self.running {
            self.opening += 1;
        }
    }

    /// Connected (TCP modes) or handshake verified (WebSocket modes).
    fn on_open(&mut self, i: usize) {
        let now = Instant::now();
        let c = &mut self.conns[i];
        c.st = St::Open;
        let took = now.duration_since(c.t0).as_nanos() as u64;
        if let Some(kind) = c.tls_kind.take() {
            let counted = !self.running
                || (self.mode == Mode::Storm && now >= self.measure_from && now < self.end);
            if counted && kind == HandshakeKind::Resumed {
                self.out.tls_resumed += 1;
            } else if counted {
                self.out.tls_full += 1;
            }
        }
        if !self.running {
            self.opening -= 1;
            self.open_count += 1;
            self.out.setup_hist.saturating_record(took);
            return;
        }
        if self.mode == Mode::Storm {
            self.complete(now, took);
            self.drop_conn(i);
            self.reconnect.push(i);
        }
    }

    /// Counts one finished message (or handshake) of latency `ns` that completed at `now`.
    fn complete(&mut self, now: Instant, ns: u64) {
        if now >= self.measure_from && now < self.end {
            self.out.measured += 1;
            self.out.hist.saturating_record(ns);
        } else if now < self.measure_from {
            self.out.warm += 1;
        }
    }

    fn service(&mut self, i: usize) {
        loop {
            let mut progress = false;
            let c = &mut self.conns[i];
            if c.st == St::Idle {
                return;
            }
            if c.st == St::Connecting {
                if c.w_blocked && c.r_blocked {
                    return;
                }
                let Some(sock) = c.sock.as_ref() else { return };
                match sock.take_error() {
                    Ok(Some(e)) | Err(e) => return self.conn_error(i, format!("connect: {e}")),
                    Ok(None) => {}
                }
                match sock.peer_addr() {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::NotConnected => {
                        c.w_blocked = true;
                        return;
                    }
                    Err(e) => return self.conn_error(i, format!("connect: {e}")),
                }
                let _ = sock.set_nodelay(true);
                if let Some((cfg, name)) = &self.tls {
                    let cfg = c.tls_cfg.as_ref().unwrap_or(cfg).clone();
                    match ClientConnection::new(cfg, name.clone()) {
                        Ok(t) => c.tls = Some(Box::new(t)),
                        Err(e) => fail(&format!("tls client: {e}")),
                    }
                    c.st = St::TlsHandshaking;
                } else if self.mode == Mode::TcpEcho
                    || (self.mode == Mode::Storm && self.args.tcp_only)
                {
                    self.on_open(i);
                } else {
                    self.start_handshake(i);
                }
                continue;
            }
            if c.tls.is_some() {
                return self.service_tls(i);
            }
            if !c.w_blocked && c.out_pos < c.out.len() {
                let Some(sock) = c.sock.as_mut() else { return };
                match sock.write(&c.out[c.out_pos..]) {
                    Ok(0) => return self.conn_error(i, "write returned 0".into()),
                    Ok(n) => {
                        c.out_pos += n;
                        if c.out_pos == c.out.len() {
                            c.out.clear();
                            c.out_pos = 0;
                            if c.out.capacity() > SCRATCH_LEN && self.mode == Mode::Idle {
                                c.out = Vec::new();
                            }
                        }
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.w_blocked = true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => progress = true,
                    Err(e) => return self.conn_error(i, format!("write: {e}")),
                }
            }
            let c = &mut self.conns[i];
            if !c.r_blocked {
                let Some(sock) = c.sock.as_mut() else { return };
                match sock.read(&mut self.scratch) {
                    Ok(0) => {
                        let msg = format!(
                            "server closed the connection ({:?}, {} message(s) in flight)",
                            c.st,
                            c.inflight.len()
                        );
                        return self.conn_error(i, msg);
                    }
                    Ok(n) => {
                        self.received(i, n);
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.r_blocked = true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => progress = true,
                    Err(e) => return self.conn_error(i, format!("read: {e}")),
                }
            }
            if !progress || self.conns[i].st == St::Idle {
                return;
            }
        }
    }

    /// [`service`](Self::service) of a TLS connection once TCP is up: plaintext into records,
    /// records onto the socket, records from the socket, plaintext out, until nothing moves.
    fn service_tls(&mut self, i: usize) {
        loop {
            let mut progress = false;
            let c = &mut self.conns[i];
            if c.st == St::Idle {
                return;
            }
            let (Some(tls), Some(sock)) = (c.tls.as_mut(), c.sock.as_mut()) else {
                return;
            };
            if !tls.is_handshaking() && c.out_pos < c.out.len() {
                match tls.writer().write(&c.out[c.out_pos..]) {
                    Ok(n) => {
                        progress |= n > 0;
                        c.out_pos += n;
                        if c.out_pos == c.out.len() {
                            c.out.clear();
                            c.out_pos = 0;
                            if c.out.capacity() > SCRATCH_LEN && self.mode == Mode::Idle {
                                c.out = Vec::new();
                            }
                        }
                    }
                    Err(e) => return self.conn_error(i, format!("tls write: {e}")),
                }
            }
            while !c.w_blocked && tls.wants_write() {
                match tls.write_tls(sock) {
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.w_blocked = true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return self.conn_error(i, format!("write: {e}")),
                }
            }
            if !c.r_blocked {
                match tls.read_tls(sock) {
                    Ok(0) => {
                        let msg = format!(
                            "server closed the connection ({:?}, {} message(s) in flight)",
                            c.st,
                            c.inflight.len()
                        );
                        return self.conn_error(i, msg);
                    }
                    Ok(_) => {
                        progress = true;
                        if let Err(e) = tls.process_new_packets() {
                            let _ = tls.write_tls(sock); // the alert, if there is one
                            return self.conn_error(i, format!("tls: {e}"));
                        }
                        if c.st == St::TlsHandshaking && !tls.is_handshaking() {
                            self.tls_established(i);
                        }
                        if !self.tls_plaintext(i) {
                            return;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.r_blocked = true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => progress = true,
                    Err(e) => return self.conn_error(i, format!("read: {e}")),
                }
            }
            if !progress || self.conns[i].st == St::Idle {
                return;
            }
        }
    }

    /// Hands every decrypted byte to [`received`](Self::received); false once the connection
    /// is gone.
    fn tls_plaintext(&mut self, i: usize) -> bool {
        loop {
            let c = &mut self.conns[i];
            if c.st == St::Idle {
                return false;
            }
            let Some(tls) = c.tls.as_mut() else {
                return false;
            };
            match tls.reader().read(&mut self.scratch) {
                Ok(0) => {
                    self.conn_error(i, "server sent close_notify".into());
                    return false;
                }
                Ok(n) => self.received(i, n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) => {
                    self.conn_error(i, format!("tls read: {e}"));
                    return false;
                }
            }
        }
    }

    /// The TLS handshake is done: note how it went, then the WebSocket handshake (or open).
    fn tls_established(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(tls) = c.tls.as_ref() else { return };
        c.tls_kind = tls.handshake_kind();
        if self.out.tls_params.is_none() {
            let dbg = |v: Option<&dyn std::fmt::Debug>| match v {
                Some(v) => format!("{v:?}"),
                None => "?".into(),
            };
            let version = tls.protocol_version();
            let suite = tls.negotiated_cipher_suite().map(|s| s.suite());
            let group = tls.negotiated_key_exchange_group().map(|g| g.name());
            self.out.tls_params = Some(format!(
                "{} {} {}",
                dbg(version.as_ref().map(|v| v as _)),
                dbg(suite.as_ref().map(|v| v as _)),
                dbg(group.as_ref().map(|v| v as _)),
            ));
        }
        if self.mode == Mode::TcpEcho {
            self.on_open(i);
        } else {
            self.start_handshake(i);
        }
    }

    fn start_handshake(&mut self, i: usize) {
        let key = self.random16();
        let host = self.args.addr.to_string();
        let deflate = self.ws_config.deflate.clone();
        let c = &mut self.conns[i];
        let req = ClientRequest {
            host: &host,
            path: self.args.path(),
            origin: None,
            protocols: &[],
            deflate: Some(&deflate),
            extra_headers: &[],
        };
        match ClientHandshake::new(&req, key, &mut c.out) {
            Ok(h) => c.hs = Some(h),
            Err(e) => fail(&format!("handshake request: {e:?}")),
        }
        c.st = St::Handshaking;
    }

    /// `n` new bytes are at the front of the scratch buffer.
    fn received(&mut self, i: usize, n: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut rx = std::mem::take(&mut self.conns[i].rx);
        if rx.is_empty() {
            let used = self.consume(i, &mut scratch[..n]);
            if self.conns[i].st != St::Idle {
                rx.extend_from_slice(&scratch[used..n]);
            }
        } else {
            rx.extend_from_slice(&scratch[..n]);
            let used = self.consume(i, &mut rx);
            rx.drain(..used);
        }
        self.scratch = scratch;
        let c = &mut self.conns[i];
        if c.st != St::Idle {
            if rx.is_empty() && rx.capacity() > SCRATCH_LEN {
                rx = Vec::new();
            }
            c.rx = rx;
        }
    }

    /// Consumes what it can of `buf`; returns how many bytes.
    fn consume(&mut self, i: usize, buf: &mut [u8]) -> usize {
        match self.conns[i].st {
            St::Handshaking => {
                let c = &mut self.conns[i];
                let (negotiated, used) = match ServerResponse::parse(buf) {
                    Ok(None) => return 0,
                    Ok(Some((resp, used))) => {
                        let Some(hs) = c.hs.take() else {
                            return buf.len();
                        };
                        match hs.verify(&resp) {
                            Ok(n) => (n.deflate, used),
                            Err(e) => {
                                let head = String::from_utf8_lossy(&buf[..used]).into_owned();
                                return {
                                    self.conn_error(
                                        i,
                                        format!("bad upgrade response ({e:?}):\n{head}"),
                                    );
                                    buf.len()
                                };
                            }
                        }
                    }
                    Err(e) => {
                        self.conn_error(i, format!("unparsable upgrade response ({e:?})"));
                        return buf.len();
                    }
                };
                if self.args.deflate && negotiated.is_none() && self.args.require_deflate {
                    fail("the server did not accept permessage-deflate (--require-deflate)");
                }
                let entropy = self.random16();
                let c = &mut self.conns[i];
                c.ws = Some(WebSocket::client(
                    self.ws_config.clone(),
                    negotiated,
                    entropy,
                ));
                self.on_open(i);
                if self.conns[i].st != St::Open {
                    return buf.len();
                }
                used + self.frames(i, &mut buf[used..])
            }
            St::Open if self.conns[i].ws.is_some() => self.frames(i, buf),
            St::Open => {
                self.tcp_bytes(i, buf);
                buf.len()
            }
            _ => buf.len(),
        }
    }

    fn frames(&mut self, i: usize, buf: &mut [u8]) -> usize {
        let mut off = 0;
        loop {
            let now = Instant::now();
            let Some(ws) = self.conns[i].ws.as_mut() else {
                return buf.len();
            };
            let r = match ws.handle_read(now, &mut buf[off..]) {
                Ok(r) => r,
                Err(e) => fail(&format!(
                    "conn {}: server broke the protocol: {e:?}",
                    self.conns[i].id
                )),
            };
            off += r.consumed;
            let Some(ev) = r.event else { break };
            self.on_event(i, now, ev);
        }
        let c = &mut self.conns[i];
        if let Some(ws) = c.ws.as_mut() {
            ws.poll_transmit(&mut c.out);
        }
        off
    }

    fn on_event(&mut self, i: usize, now: Instant, ev: WsEvent<'_>) {
        let id = self.conns[i].id;
        match ev {
            WsEvent::Message { kind, data } => {
                if kind != self.kind {
                    fail(&format!(
                        "conn {id}: message of kind {kind:?}, sent {:?}",
                        self.kind
                    ));
                }
                match self.mode {
                    Mode::WsEcho => self.echo_message(i, now, &data),
                    Mode::Broadcast => self.broadcast_message(i, now, &data),
                    _ => fail(&format!(
                        "conn {id}: unexpected message of {} bytes",
                        data.len()
                    )),
                }
                if let std::borrow::Cow::Owned(v) = data
                    && let Some(ws) = self.conns[i].ws.as_mut()
                {
                    ws.recycle(v);
                }
            }
            WsEvent::Ping(_) => self.out.server_pings += 1,
            WsEvent::Pong(p) if self.mode == Mode::Idle => {
                let c = &mut self.conns[i];
                let Some((seq, t)) = c.inflight.pop_front() else {
                    fail(&format!("conn {id}: pong with no ping in flight"));
                };
                if p != stamp_of(id, seq) {
                    fail(&format!(
                        "conn {id}: pong payload does not match ping {seq}"
                    ));
                }
                self.complete(now, now.duration_since(t).as_nanos() as u64);
            }
            WsEvent::Pong(_) => {}
            WsEvent::Close { code, reason } => fail(&format!(
                "conn {id}: server sent Close (code {:?}, reason {reason:?}) with {} message(s) in flight",
                code.map(|c| c.0),
                self.conns[i].inflight.len()
            )),
            WsEvent::Fragment { .. } => fail("fragment event in reassemble mode"),
        }
    }

    fn echo_message(&mut self, i: usize, now: Instant, data: &[u8]) {
        let c = &mut self.conns[i];
        let Some((seq, t)) = c.inflight.pop_front() else {
            fail(&format!("conn {}: echo with no message in flight", c.id));
        };
        if data.len() != self.pat.len()
            || !payload_matches(&stamp_of(c.id, seq), &self.pat, 0, data)
        {
            fail(&format!(
                "conn {}: echo of message {seq} does not match what was sent ({} bytes back, {} sent)",
                c.id,
                data.len(),
                self.pat.len()
            ));
        }
        self.complete(now, now.duration_since(t).as_nanos() as u64);
        self.next_or_finish(i, now);
    }

    fn broadcast_message(&mut self, i: usize, now: Instant, data: &[u8]) {
        let c = &mut self.conns[i];
        let (seq, sent) = match (
            data.get(..STAMP_LEN).and_then(parse_hex16),
            data.get(STAMP_LEN..2 * STAMP_LEN).and_then(parse_hex16),
        ) {
            (Some(s), Some(t)) => (s, t),
            _ => fail(&format!("conn {}: broadcast without a stamp", c.id)),
        };
        if data.len() != self.pat.len() || data[2 * STAMP_LEN..] != self.pat[2 * STAMP_LEN..] {
            fail(&format!(
                "conn {}: broadcast {seq} payload does not match",
                c.id
            ));
        }
        if c.id == 0 {
            return; // the publisher's own copy
        }
        if seq != c.seq + 1 {
            fail(&format!(
                "conn {}: broadcast {seq} arrived after {} (lost or reordered)",
                c.id, c.seq
            ));
        }
        c.seq = seq;
        let at = self.base + Duration::from_nanos(sent);
        self.complete(now, now.saturating_duration_since(at).as_nanos() as u64);
    }

    fn tcp_bytes(&mut self, i: usize, mut data: &[u8]) {
        let size = self.pat.len();
        while !data.is_empty() {
            let c = &mut self.conns[i];
            let Some(&(seq, t)) = c.inflight.front() else {
                fail(&format!("conn {}: {} bytes nobody sent", c.id, data.len()));
            };
            let take = (size - c.rd).min(data.len());
            if !payload_matches(&stamp_of(c.id, seq), &self.pat, c.rd, &data[..take]) {
                fail(&format!(
                    "conn {}: echo of message {seq} differs from what was sent (at byte {})",
                    c.id, c.rd
                ));
            }
            c.rd += take;
            data = &data[take..];
            if c.rd == size {
                c.rd = 0;
                c.inflight.pop_front();
                let now = Instant::now();
                self.complete(now, now.duration_since(t).as_nanos() as u64);
                self.next_or_finish(i, now);
            }
        }
    }

    /// Closed loop: the next message, unless this connection has sent its `--count`.
    fn next_or_finish(&mut self, i: usize, now: Instant) {
        if !self.closed_loop || !self.running {
            return;
        }
        if self.args.count > 0 && self.conns[i].seq >= self.args.count {
            self.finished += 1;
            return;
        }
        self.send_message(i, now);
    }

    /// Queues the next echo message on connection `i`; its latency counts from `at`. The write
    /// happens in [`service`](Self::service) (the caller's, or the one that follows).
    fn send_message(&mut self, i: usize, at: Instant) {
        let c = &mut self.conns[i];
        if c.st != St::Open {
            return;
        }
        c.seq += 1;
        let n = self.msg.len().min(STAMP_LEN);
        self.msg[..n].copy_from_slice(&stamp_of(c.id, c.seq)[STAMP_LEN - n..]);
        match c.ws.as_mut() {
            Some(ws) => {
                if let Err(e) = ws.send_message(self.kind, &self.msg, &mut c.out) {
                    fail(&format!("conn {}: send: {e:?}", c.id));
                }
            }
            None => c.out.extend_from_slice(&self.msg),
        }
        c.inflight.push_back((c.seq, at));
    }

    fn send_ping(&mut self, i: usize, at: Instant) {
        let c = &mut self.conns[i];
        let Some(ws) = c.ws.as_mut() else { return };
        c.seq += 1;
        if let Err(e) = ws.ping(&stamp_of(c.id, c.seq), &mut c.out) {
            fail(&format!("conn {}: ping: {e:?}", c.id));
        }
        c.inflight.push_back((c.seq, at));
    }

    fn publish(&mut self, i: usize, at: Instant) {
        let c = &mut self.conns[i];
        if c.id != 0 {
            return;
        }
        let Some(ws) = c.ws.as_mut() else { return };
        c.seq += 1;
        self.msg[..STAMP_LEN].copy_from_slice(&hex16(c.seq));
        let sent = at.saturating_duration_since(self.base).as_nanos() as u64;
        self.msg[STAMP_LEN..2 * STAMP_LEN].copy_from_slice(&hex16(sent));
        if let Err(e) = ws.send_message(self.kind, &self.msg, &mut c.out) {
            fail(&format!("publisher: send: {e:?}"));
        }
        if at >= self.measure_from && at < self.end {
            self.out.published += 1;
        }
    }
}

/// A non-blocking socket with a connect to `addr` in progress, bound first to `src` if given.
fn connect_nonblocking(
    addr: SocketAddr,
    src: Option<IpAddr>,
) -> std::io::Result<std::net::TcpStream> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    if let Some(ip) = src {
        if ip.is_ipv4() {
            set_bind_address_no_port(&sock)?;
        }
        sock.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(sock.into())
}

/// IP_BIND_ADDRESS_NO_PORT: a bind to (ip, 0) picks the port at connect time, per destination,
/// so each source address gives a full ephemeral range towards each server port.
fn set_bind_address_no_port(sock: &Socket) -> std::io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `sock` is an open socket for the duration of the call; `one` is a live c_int and
    // its size is passed, as setsockopt(2) requires.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_check_accepts_the_message_and_refuses_a_stale_one() {
        let pat = pattern(40);
        let mut msg = pat.clone();
        msg[..16].copy_from_slice(&stamp_of(3, 7));
        assert!(payload_matches(&stamp_of(3, 7), &pat, 0, &msg));
        // in pieces, as raw TCP delivers it
        assert!(payload_matches(&stamp_of(3, 7), &pat, 0, &msg[..5]));
        assert!(payload_matches(&stamp_of(3, 7), &pat, 5, &msg[5..30]));
        assert!(payload_matches(&stamp_of(3, 7), &pat, 30, &msg[30..]));
        assert!(payload_matches(&stamp_of(3, 7), &pat, 40, &[]));
        assert!(!payload_matches(&stamp_of(3, 7), &pat, 39, &msg[38..]));
        assert!(!payload_matches(&stamp_of(3, 6), &pat, 0, &msg));
        assert!(!payload_matches(&stamp_of(3, 7), &pat, 1, &msg[..39]));
    }

    #[test]
    fn short_payloads_carry_the_low_stamp_digits() {
        let pat = pattern(4);
        let mut msg = pat.clone();
        let s = stamp_of(1, 2);
        msg.copy_from_slice(&s[12..]);
        assert!(payload_matches(&s, &pat, 0, &msg));
        assert!(payload_matches(&s, &pat, 2, &msg[2..]));
        assert!(!payload_matches(&stamp_of(1, 3), &pat, 0, &msg));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(
            parse_hex16(&hex16(0x0123_4567_89ab_cdef)),
            Some(0x0123_4567_89ab_cdef)
        );
        assert_eq!(parse_hex16(b"xyz"), None);
    }
}
