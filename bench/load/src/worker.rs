//! One core of the load generator: a ringwire-runtime [`Plugin`] that opens the core's share of
//! the connections as the runtime's outgoing connections (io_uring, or the epoll fallback) and
//! drives them. Cores share nothing but the [`Run`]: the command line, the payload, the clock
//! base and the channel to the main thread.
//!
//! Phases: *setup* opens every connection (connect, the TLS handshake with `--tls`, which the
//! runtime runs, then the WebSocket handshake in the WebSocket modes), at most
//! `--connect-batch` at a time, and reports [`Event::Ready`]; *run* starts at the instant the
//! main thread posts ([`START`]), spends `--warmup` seconds unmeasured and `--secs` measured,
//! and ends with the core's [`WorkerOut`] in [`Event::Done`]. Storms open nothing at setup.
//!
//! Pacing: open-loop sends (`--rate`, idle pings, broadcast publishes) fire from a core timer on
//! the runtime's timer wheel, whose tick is [`TIMER_TICK`]: on io_uring a send leaves at most
//! that late (its latency counts from its intended time all the same). The epoll driver rounds
//! its waits up to whole milliseconds, so there a schedule with no other traffic to wake the
//! loop fires in bursts up to 1 ms apart.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use ringwire_runtime::{
    BusMessage, CloseReason, ConnCtx, ConnId, CoreCtx, Plugin, RuntimeConfig, SendError,
};
use ringwire_ws::handshake::{ClientHandshake, ClientRequest, ServerResponse};
use ringwire_ws::{Config, DeflateConfig, MessageKind, WebSocket, WsEvent};
use rustls::ClientConfig;
use rustls::client::Resumption;

use crate::tls::TlsClient;
use crate::{Args, Mode, fail};

/// Highest latency the histograms hold (60 s, in ns); larger values saturate.
const HIST_MAX_NS: u64 = 60_000_000_000;
/// Most scheduled sends fired in one timer pass, so reads are not starved when the core lags.
const MAX_FIRE_PER_TURN: usize = 4096;
/// Storm with `--resume`: server names each slot's own session store keeps (one is used).
const SLOT_SESSIONS: usize = 4;
/// Bytes of the payload that carry the per-message stamp (hex).
pub const STAMP_LEN: usize = 16;
/// Broadcast payloads carry a sequence number and a send time: two stamps.
pub const BROADCAST_MIN_SIZE: usize = 2 * STAMP_LEN;
/// The runtime's timer tick: the open-loop schedule fires at most this late on io_uring.
const TIMER_TICK: Duration = Duration::from_micros(20);
/// Connect and TLS handshake deadline, and the base of the setup deadline (plus 1 s per 500
/// connections of a core).
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// After the run, how long connections get to close gracefully before they are reset.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);
/// A core timer set this far ahead fires at the wheel's next tick, never in the timer pass that
/// sets it (one set for "now" would, and a pass that keeps re-arming itself never ends).
const NEXT_TICK: Duration = Duration::from_nanos(1);

/// Bus tag of the run's start instant (nanoseconds after [`Run::base`], little-endian u64),
/// which the main thread posts to every core once all are [`Event::Ready`].
pub const START: u64 = 1;

/// Core timer tokens.
const T_SETUP_DEADLINE: u64 = 0;
const T_START: u64 = 1;
const T_SCHED: u64 = 2;
const T_RECONNECT: u64 = 3;
const T_END: u64 = 4;

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

/// The runtime configuration of a run on `threads` cores.
pub fn runtime_config(args: &Args, threads: usize) -> RuntimeConfig {
    RuntimeConfig {
        threads,
        driver: args.driver,
        timer_tick: TIMER_TICK,
        // A load generator buffers whatever it must send or has received (an open loop against
        // a stalled server); the WebSocket codec's own limits bound a frame.
        max_out_buffer: usize::MAX,
        max_in_buffer: usize::MAX,
        connect_timeout: SETUP_TIMEOUT,
        tls_handshake_timeout: SETUP_TIMEOUT,
        shutdown_timeout: SHUTDOWN_TIMEOUT,
        busy_poll: std::time::Duration::from_micros(args.busy_poll_us),
        ..RuntimeConfig::default()
    }
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

/// What the cores tell the main thread.
pub enum Event {
    /// The core's connections are open (storm: the core started).
    Ready,
    /// The core's run is over: what it measured.
    Done(Box<WorkerOut>),
}

/// Everything the cores share: read-only, but for the channel to the main thread.
pub struct Run {
    /// The command line.
    pub args: Arc<Args>,
    /// Cores of the run; connection `id` belongs to core `id % threads`.
    pub threads: usize,
    /// Connections over all cores (broadcast: the publisher, id 0, and the subscribers).
    pub total: usize,
    /// The payload filler.
    pub pat: Vec<u8>,
    /// Source addresses to connect from (empty: the kernel's choice).
    pub sources: Vec<IpAddr>,
    /// The clock base of broadcast stamps and of the posted start instant.
    pub base: Instant,
    /// With `--tls`: the client configuration and the server name.
    pub tls: Option<TlsClient>,
    /// Ready and done reports to the main thread.
    pub events: mpsc::Sender<Event>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// Not started (setup) or waiting to reconnect (storm).
    Idle,
    /// TCP connect, and with `--tls` the TLS handshake, in progress.
    Connecting,
    /// WebSocket handshake in progress.
    Handshaking,
    Open,
}

/// One connection of the run and what it has in flight; it outlives its TCP connections (a
/// storm slot reconnects again and again).
struct Slot {
    /// Global connection index (0 is the broadcast publisher).
    id: usize,
    /// The runtime's connection, from connect on.
    conn: Option<ConnId>,
    st: St,
    /// When the current connect started.
    t0: Instant,
    hs: Option<ClientHandshake>,
    ws: Option<WebSocket>,
    /// With `--tls`: whether the handshake resumed, counted when the connection opens.
    tls_resumed: Option<bool>,
    /// Storm with `--resume`: this slot's own configuration and session store, so each
    /// reconnect resumes from the tickets its previous connection got. (One store for all
    /// slots would not do: rustls keeps at most 8 TLS 1.3 tickets per server name, and many
    /// slots in flight would find it empty and fall back to full handshakes.)
    tls_cfg: Option<Arc<ClientConfig>>,
    /// Messages (or pings) in flight: sequence number and the time they count from.
    inflight: VecDeque<(u64, Instant)>,
    /// Last sequence number sent (echo, ping, publish) or received (broadcast subscriber).
    seq: u64,
    /// Raw TCP: bytes of the oldest in-flight message verified so far.
    rd: usize,
}

/// What the runtime keeps beside a connection: its slot, and its id, so that the close of a
/// connection its slot already left (a storm's reset) is told apart from one the server made.
pub struct Link {
    slot: usize,
    id: ConnId,
}

/// What one core measured.
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

impl WorkerOut {
    /// Nothing measured yet.
    pub fn new() -> Self {
        WorkerOut {
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
        }
    }

    /// Add another core's figures to these: counts summed, histograms merged, the longest
    /// setup, the first error and TLS parameters seen.
    pub fn absorb(&mut self, o: WorkerOut) {
        let _ = self.hist.add(&o.hist);
        let _ = self.setup_hist.add(&o.setup_hist);
        self.measured += o.measured;
        self.warm += o.warm;
        self.unfinished += o.unfinished;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.server_pings += o.server_pings;
        self.published += o.published;
        self.setup = self.setup.max(o.setup);
        self.tls_full += o.tls_full;
        self.tls_resumed += o.tls_resumed;
        if self.tls_params.is_none() {
            self.tls_params = o.tls_params;
        }
    }
}

/// The open-loop schedule: sends at fixed intervals, round-robin over the core's connections.
struct Sched {
    next: Instant,
    interval: Duration,
    cursor: usize,
}

/// The plugin of one core.
pub struct Load {
    run: Arc<Run>,
    mode: Mode,
    kind: MessageKind,
    slots: Vec<Slot>,
    /// Connections between connect and open (or connect error), by runtime id.
    pending: HashMap<ConnId, usize>,
    /// The outgoing payload: the pattern with the current stamp in front.
    msg: Vec<u8>,
    /// What is being framed for one send; [`Load::transmit`] queues it and clears it.
    tx: Vec<u8>,
    /// Where queued sends live: each is split off as shared bytes, so neither the copy nor the
    /// runtime's queue allocates, and the space comes back once the runtime has written and
    /// dropped them.
    tx_buf: BytesMut,
    /// The Host header of the WebSocket handshake.
    host: String,
    src_next: usize,
    ws_config: Config,
    rng: u64,
    /// Scheduled sends per second on this core (0: none).
    rate: f64,
    closed_loop: bool,
    setup_t0: Instant,
    /// Setup: the next slot to connect, connects in progress, connections open.
    next_setup: usize,
    opening: usize,
    open_count: usize,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    /// From the start instant on.
    running: bool,
    /// From the end (or the last `--count` echo) on: nothing is sent or measured any more.
    done: bool,
    sched: Option<Sched>,
    /// Connections done with their `--count` echoes.
    finished: usize,
    /// Storm slots to reconnect at the next tick, after an error.
    reconnect: Vec<usize>,
    reconnect_armed: bool,
    out: WorkerOut,
}

impl Load {
    /// The plugin of core `core`: connections `core`, `core + threads`, ... of the run.
    pub fn new(run: Arc<Run>, core: usize) -> Self {
        let args = run.args.clone();
        let mode = args.mode;
        let ids: Vec<usize> = (core..run.total).step_by(run.threads).collect();
        let rate = match mode {
            Mode::Idle => ids.len() as f64 / args.interval,
            Mode::Broadcast if core == 0 => args.rate,
            Mode::Broadcast | Mode::Storm => 0.0,
            Mode::WsEcho | Mode::TcpEcho => args.rate / run.threads as f64,
        };
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
            ^ core as u64;
        let slot_cfg = || {
            let t = run.tls.as_ref()?;
            if mode != Mode::Storm || !args.resume {
                return None;
            }
            let mut c = ClientConfig::clone(&t.config);
            c.resumption = Resumption::in_memory_sessions(SLOT_SESSIONS);
            Some(Arc::new(c))
        };
        let now = Instant::now();
        let slots = ids
            .iter()
            .map(|&id| Slot {
                id,
                conn: None,
                st: St::Idle,
                t0: now,
                hs: None,
                ws: None,
                tls_resumed: None,
                tls_cfg: slot_cfg(),
                inflight: VecDeque::new(),
                seq: 0,
                rd: 0,
            })
            .collect();
        Load {
            kind: if args.text {
                MessageKind::Text
            } else {
                MessageKind::Binary
            },
            closed_loop: matches!(mode, Mode::WsEcho | Mode::TcpEcho) && args.rate <= 0.0,
            mode,
            slots,
            pending: HashMap::new(),
            msg: run.pat.clone(),
            tx: Vec::new(),
            tx_buf: BytesMut::new(),
            host: args.addr.to_string(),
            src_next: 0,
            ws_config,
            rng: splitmix(seed),
            rate,
            setup_t0: now,
            next_setup: 0,
            opening: 0,
            open_count: 0,
            start: now,
            measure_from: now,
            end: now,
            running: false,
            done: false,
            sched: None,
            finished: 0,
            reconnect: Vec::new(),
            reconnect_armed: false,
            out: WorkerOut::new(),
            run,
        }
    }
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

impl Plugin for Load {
    type Conn = Link;

    fn on_start(&mut self, cx: &mut CoreCtx<'_>) {
        self.setup_t0 = Instant::now();
        if self.mode == Mode::Storm {
            self.ready();
            return;
        }
        let limit = SETUP_TIMEOUT + Duration::from_secs(self.slots.len() as u64 / 500);
        cx.set_core_timer(limit, T_SETUP_DEADLINE);
        self.fill_setup(cx);
    }

    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<Link> {
        let id = cx.id();
        let i = self.pending.remove(&id)?;
        if let Some(t) = cx.tls() {
            self.slots[i].tls_resumed = Some(t.resumed());
            if self.out.tls_params.is_none() {
                let version = t.version().map_or("?".into(), |v| format!("{v:?}"));
                let suite = t
                    .cipher_suite()
                    .map_or("?".into(), |s| format!("{:?}", s.suite()));
                let group = t
                    .key_exchange_group()
                    .map_or("?".into(), |g| format!("{g:?}"));
                self.out.tls_params = Some(format!("{version} {suite} {group}"));
            }
        }
        if self.mode == Mode::TcpEcho || (self.mode == Mode::Storm && self.run.args.tcp_only) {
            self.opened(cx, i);
        } else {
            self.start_handshake(cx, i);
        }
        Some(Link { slot: i, id })
    }

    fn on_data(&mut self, link: &mut Link, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        if self.done || self.slots[link.slot].conn != Some(link.id) {
            return data.len();
        }
        self.consume(cx, link.slot, data)
    }

    fn on_read_closed(&mut self, link: &mut Link, cx: &mut ConnCtx<'_>) {
        let s = &self.slots[link.slot];
        if self.done || s.conn != Some(link.id) {
            cx.close();
            return;
        }
        let msg = format!(
            "server closed the connection ({:?}, {} message(s) in flight)",
            s.st,
            s.inflight.len()
        );
        self.conn_error(cx, link.slot, msg);
    }

    fn on_close(&mut self, link: Link, cx: &mut CoreCtx<'_>, reason: CloseReason) {
        let s = &self.slots[link.slot];
        if self.done || s.conn != Some(link.id) {
            return;
        }
        let msg = format!(
            "connection closed: {reason:?} ({:?}, {} message(s) in flight)",
            s.st,
            s.inflight.len()
        );
        self.conn_error(cx, link.slot, msg);
    }

    fn on_connect_error(&mut self, cx: &mut CoreCtx<'_>, id: ConnId, err: std::io::Error) {
        let Some(i) = self.pending.remove(&id) else {
            return;
        };
        if !self.done {
            self.conn_error(cx, i, format!("connect: {err}"));
        }
    }

    fn on_message(&mut self, cx: &mut CoreCtx<'_>, msg: &BusMessage) {
        if msg.tag != START {
            return;
        }
        let Ok(nanos) = <[u8; 8]>::try_from(msg.data.as_ref()) else {
            return;
        };
        self.start = self.run.base + Duration::from_nanos(u64::from_le_bytes(nanos));
        self.measure_from = self.start + Duration::from_secs_f64(self.run.args.warmup);
        self.end = self.measure_from + Duration::from_secs_f64(self.run.args.secs);
        cx.set_core_timer(self.start.saturating_duration_since(cx.now()), T_START);
    }

    fn on_core_timer(&mut self, cx: &mut CoreCtx<'_>, token: u64) {
        match token {
            T_SETUP_DEADLINE if !self.running && self.open_count < self.slots.len() => {
                fail(&format!(
                    "setup: only {} of {} connections open after {:?}",
                    self.open_count,
                    self.slots.len(),
                    self.setup_t0.elapsed()
                ))
            }
            T_START => self.begin(cx),
            T_SCHED => self.fire_schedule(cx),
            T_RECONNECT => {
                self.reconnect_armed = false;
                if self.in_run(Instant::now()) {
                    for i in std::mem::take(&mut self.reconnect) {
                        self.start_connect(cx, i);
                    }
                }
            }
            T_END => self.finish(),
            _ => {}
        }
    }
}

impl Load {
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

    /// Between the start and the end of the run.
    fn in_run(&self, now: Instant) -> bool {
        self.running && !self.done && now < self.end
    }

    /// Setup: connects up to `--connect-batch` in progress.
    fn fill_setup(&mut self, cx: &mut CoreCtx<'_>) {
        while self.next_setup < self.slots.len() && self.opening < self.run.args.connect_batch {
            self.start_connect(cx, self.next_setup);
            self.next_setup += 1;
        }
    }

    /// This core's connections are open (or, storm, it has started).
    fn ready(&mut self) {
        self.out.setup = self.setup_t0.elapsed();
        let _ = self.run.events.send(Event::Ready);
    }

    /// The start instant arrived: first messages, storm connects, the schedule, the end timer.
    fn begin(&mut self, cx: &mut CoreCtx<'_>) {
        self.running = true;
        cx.set_core_timer(self.end.saturating_duration_since(cx.now()), T_END);
        match self.mode {
            Mode::Storm => {
                for i in 0..self.slots.len() {
                    self.start_connect(cx, i);
                }
            }
            _ if self.closed_loop => {
                for i in 0..self.slots.len() {
                    self.send_message(cx, i, self.start);
                }
            }
            _ => {}
        }
        if self.rate > 0.0 {
            self.sched = Some(Sched {
                next: self.start,
                interval: Duration::from_secs_f64(1.0 / self.rate),
                cursor: 0,
            });
            self.fire_schedule(cx);
        }
    }

    /// Sends whatever the schedule has due, then sets the timer for the next one.
    fn fire_schedule(&mut self, cx: &mut CoreCtx<'_>) {
        let Some(mut s) = self.sched.take() else {
            return;
        };
        let now = Instant::now();
        let mut fired = 0;
        while s.next <= now && fired < MAX_FIRE_PER_TURN {
            // Broadcast: the publisher (id 0) is core 0's first connection.
            let i = if self.mode == Mode::Broadcast {
                0
            } else {
                s.cursor % self.slots.len()
            };
            s.cursor = s.cursor.wrapping_add(1);
            let at = s.next;
            s.next += s.interval;
            fired += 1;
            match self.mode {
                Mode::Idle => self.send_ping(cx, i, at),
                Mode::Broadcast => self.publish(cx, i, at),
                _ => self.send_message(cx, i, at),
            }
        }
        cx.set_core_timer(
            s.next.saturating_duration_since(cx.now()).max(NEXT_TICK),
            T_SCHED,
        );
        self.sched = Some(s);
    }

    /// The run is over (end of the window, or the last `--count` echo): report to the main
    /// thread. Open-loop messages still in flight count at their age at the end (a lower bound).
    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.sched = None;
        if !self.closed_loop {
            for s in &self.slots {
                for &(_, t) in s.inflight.iter().filter(|(_, t)| *t >= self.measure_from) {
                    self.out.unfinished += 1;
                    self.out
                        .hist
                        .saturating_record(self.end.saturating_duration_since(t).as_nanos() as u64);
                }
            }
        }
        let out = std::mem::replace(&mut self.out, WorkerOut::new());
        let _ = self.run.events.send(Event::Done(Box::new(out)));
    }

    /// A connection-level error: storms count it and reconnect at the next tick, other modes
    /// stop the run.
    fn conn_error(&mut self, cx: &mut CoreCtx<'_>, i: usize, what: String) {
        if self.mode != Mode::Storm {
            fail(&format!("conn {}: {what}", self.slots[i].id));
        }
        if self.running && Instant::now() >= self.measure_from {
            self.out.errors += 1;
            self.out.first_error.get_or_insert(what);
        }
        self.drop_conn(cx, i);
        self.reconnect.push(i);
        if !self.reconnect_armed {
            self.reconnect_armed = true;
            cx.set_core_timer(NEXT_TICK, T_RECONNECT);
        }
    }

    /// Leaves the slot's connection, with RST instead of FIN: the client side keeps no
    /// TIME_WAIT entry, so a storm does not run out of ports.
    fn drop_conn(&mut self, cx: &mut CoreCtx<'_>, i: usize) {
        let s = &mut self.slots[i];
        if let Some(id) = s.conn.take() {
            self.pending.remove(&id);
            cx.abort_conn(id);
        }
        s.st = St::Idle;
        s.hs = None;
        s.ws = None;
        s.tls_resumed = None;
        s.inflight.clear();
        s.rd = 0;
    }

    fn start_connect(&mut self, cx: &mut CoreCtx<'_>, i: usize) {
        let run = &self.run;
        let addr = run.args.addr;
        let src = if run.sources.is_empty() {
            None
        } else {
            let ip = run.sources[self.src_next % run.sources.len()];
            self.src_next = self.src_next.wrapping_add(1);
            Some(SocketAddr::new(ip, 0))
        };
        let s = &mut self.slots[i];
        let r = match (&run.tls, src) {
            (Some(t), from) => {
                let cfg = s.tls_cfg.as_ref().unwrap_or(&t.config).clone();
                match from {
                    Some(from) => cx.connect_tls_from(addr, from, cfg, &t.name),
                    None => cx.connect_tls(addr, cfg, &t.name),
                }
            }
            (None, Some(from)) => cx.connect_from(addr, from),
            (None, None) => cx.connect(addr),
        };
        match r {
            Ok(id) => {
                self.pending.insert(id, i);
                s.conn = Some(id);
                s.st = St::Connecting;
                s.t0 = Instant::now();
                if !self.running {
                    self.opening += 1;
                }
            }
            Err(e) => {
                let from = src.map(|s| format!(" from {}", s.ip())).unwrap_or_default();
                self.conn_error(cx, i, format!("connect to {addr}{from}: {e}"));
            }
        }
    }

    /// Connected (TCP modes) or handshake verified (WebSocket modes).
    fn opened(&mut self, cx: &mut CoreCtx<'_>, i: usize) {
        let now = Instant::now();
        let s = &mut self.slots[i];
        s.st = St::Open;
        let took = now.duration_since(s.t0).as_nanos() as u64;
        if let Some(resumed) = s.tls_resumed.take() {
            let counted = !self.running
                || (self.mode == Mode::Storm && now >= self.measure_from && now < self.end);
            if counted && resumed {
                self.out.tls_resumed += 1;
            } else if counted {
                self.out.tls_full += 1;
            }
        }
        if !self.running {
            self.opening -= 1;
            self.open_count += 1;
            self.out.setup_hist.saturating_record(took);
            self.fill_setup(cx);
            if self.open_count == self.slots.len() {
                self.ready();
            }
            return;
        }
        if self.mode == Mode::Storm {
            self.complete(now, took);
            self.drop_conn(cx, i);
            if self.in_run(now) {
                self.start_connect(cx, i);
            }
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

    /// Queues what [`Load::tx`] holds on the slot's connection and clears it. A connection
    /// already closing is left to its `on_close`, which reports why.
    fn transmit(&mut self, cx: &mut CoreCtx<'_>, i: usize) {
        self.tx_buf.extend_from_slice(&self.tx);
        let out = self.tx_buf.split().freeze();
        self.tx.clear();
        let Some(id) = self.slots[i].conn else { return };
        match cx.send_to(id, out) {
            Ok(_) | Err(SendError::Closed) => {}
            Err(e) => self.conn_error(cx, i, format!("send: {e}")),
        }
    }

    fn start_handshake(&mut self, cx: &mut CoreCtx<'_>, i: usize) {
        let key = self.random16();
        let req = ClientRequest {
            host: &self.host,
            path: self.run.args.path(),
            origin: None,
            protocols: &[],
            deflate: Some(&self.ws_config.deflate),
            extra_headers: &[],
        };
        match ClientHandshake::new(&req, key, &mut self.tx) {
            Ok(h) => self.slots[i].hs = Some(h),
            Err(e) => fail(&format!("handshake request: {e:?}")),
        }
        self.slots[i].st = St::Handshaking;
        self.transmit(cx, i);
    }

    /// Consumes what it can of `buf`, the connection's unconsumed input; returns how many bytes.
    fn consume(&mut self, cx: &mut CoreCtx<'_>, i: usize, buf: &mut [u8]) -> usize {
        match self.slots[i].st {
            St::Handshaking => {
                let s = &mut self.slots[i];
                let (negotiated, used) = match ServerResponse::parse(buf) {
                    Ok(None) => return 0,
                    Ok(Some((resp, used))) => {
                        let Some(hs) = s.hs.take() else {
                            return buf.len();
                        };
                        match hs.verify(&resp) {
                            Ok(n) => (n.deflate, used),
                            Err(e) => {
                                let head = String::from_utf8_lossy(&buf[..used]).into_owned();
                                let msg = format!("bad upgrade response ({e:?}):\n{head}");
                                self.conn_error(cx, i, msg);
                                return buf.len();
                            }
                        }
                    }
                    Err(e) => {
                        self.conn_error(cx, i, format!("unparsable upgrade response ({e:?})"));
                        return buf.len();
                    }
                };
                if self.run.args.deflate && negotiated.is_none() && self.run.args.require_deflate {
                    fail("the server did not accept permessage-deflate (--require-deflate)");
                }
                let entropy = self.random16();
                self.slots[i].ws = Some(WebSocket::client(
                    self.ws_config.clone(),
                    negotiated,
                    entropy,
                ));
                self.opened(cx, i);
                if self.slots[i].st != St::Open {
                    return buf.len();
                }
                used + self.frames(cx, i, &mut buf[used..])
            }
            St::Open if self.slots[i].ws.is_some() => self.frames(cx, i, buf),
            St::Open => {
                self.tcp_bytes(cx, i, buf);
                buf.len()
            }
            St::Idle | St::Connecting => buf.len(),
        }
    }

    fn frames(&mut self, cx: &mut CoreCtx<'_>, i: usize, buf: &mut [u8]) -> usize {
        let mut off = 0;
        loop {
            let now = Instant::now();
            let Some(ws) = self.slots[i].ws.as_mut() else {
                return buf.len();
            };
            let r = match ws.handle_read(now, &mut buf[off..]) {
                Ok(r) => r,
                Err(e) => fail(&format!(
                    "conn {}: server broke the protocol: {e:?}",
                    self.slots[i].id
                )),
            };
            off += r.consumed;
            let Some(ev) = r.event else { break };
            self.on_event(cx, i, now, ev);
        }
        if let Some(ws) = self.slots[i].ws.as_mut()
            && ws.poll_transmit(&mut self.tx)
        {
            self.transmit(cx, i);
        }
        off
    }

    fn on_event(&mut self, cx: &mut CoreCtx<'_>, i: usize, now: Instant, ev: WsEvent<'_>) {
        let id = self.slots[i].id;
        match ev {
            WsEvent::Message { kind, data } => {
                if kind != self.kind {
                    fail(&format!(
                        "conn {id}: message of kind {kind:?}, sent {:?}",
                        self.kind
                    ));
                }
                match self.mode {
                    Mode::WsEcho => self.echo_message(cx, i, now, &data),
                    Mode::Broadcast => self.broadcast_message(i, now, &data),
                    _ => fail(&format!(
                        "conn {id}: unexpected message of {} bytes",
                        data.len()
                    )),
                }
                if let std::borrow::Cow::Owned(v) = data
                    && let Some(ws) = self.slots[i].ws.as_mut()
                {
                    ws.recycle(v);
                }
            }
            WsEvent::Ping(_) => self.out.server_pings += 1,
            WsEvent::Pong(p) if self.mode == Mode::Idle => {
                let s = &mut self.slots[i];
                let Some((seq, t)) = s.inflight.pop_front() else {
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
                self.slots[i].inflight.len()
            )),
            WsEvent::Fragment { .. } => fail("fragment event in reassemble mode"),
        }
    }

    fn echo_message(&mut self, cx: &mut CoreCtx<'_>, i: usize, now: Instant, data: &[u8]) {
        let s = &mut self.slots[i];
        let Some((seq, t)) = s.inflight.pop_front() else {
            fail(&format!("conn {}: echo with no message in flight", s.id));
        };
        let pat = &self.run.pat;
        if data.len() != pat.len() || !payload_matches(&stamp_of(s.id, seq), pat, 0, data) {
            fail(&format!(
                "conn {}: echo of message {seq} does not match what was sent ({} bytes back, {} sent)",
                s.id,
                data.len(),
                pat.len()
            ));
        }
        self.complete(now, now.duration_since(t).as_nanos() as u64);
        self.next_or_finish(cx, i, now);
    }

    fn broadcast_message(&mut self, i: usize, now: Instant, data: &[u8]) {
        let s = &mut self.slots[i];
        let (seq, sent) = match (
            data.get(..STAMP_LEN).and_then(parse_hex16),
            data.get(STAMP_LEN..2 * STAMP_LEN).and_then(parse_hex16),
        ) {
            (Some(seq), Some(t)) => (seq, t),
            _ => fail(&format!("conn {}: broadcast without a stamp", s.id)),
        };
        let pat = &self.run.pat;
        if data.len() != pat.len() || data[2 * STAMP_LEN..] != pat[2 * STAMP_LEN..] {
            fail(&format!(
                "conn {}: broadcast {seq} payload does not match",
                s.id
            ));
        }
        if s.id == 0 {
            return; // the publisher's own copy
        }
        if seq != s.seq + 1 {
            fail(&format!(
                "conn {}: broadcast {seq} arrived after {} (lost or reordered)",
                s.id, s.seq
            ));
        }
        s.seq = seq;
        let at = self.run.base + Duration::from_nanos(sent);
        self.complete(now, now.saturating_duration_since(at).as_nanos() as u64);
    }

    fn tcp_bytes(&mut self, cx: &mut CoreCtx<'_>, i: usize, mut data: &[u8]) {
        let size = self.run.pat.len();
        while !data.is_empty() {
            let s = &mut self.slots[i];
            let Some(&(seq, t)) = s.inflight.front() else {
                fail(&format!("conn {}: {} bytes nobody sent", s.id, data.len()));
            };
            let take = (size - s.rd).min(data.len());
            if !payload_matches(&stamp_of(s.id, seq), &self.run.pat, s.rd, &data[..take]) {
                fail(&format!(
                    "conn {}: echo of message {seq} differs from what was sent (at byte {})",
                    s.id, s.rd
                ));
            }
            s.rd += take;
            data = &data[take..];
            if s.rd == size {
                s.rd = 0;
                s.inflight.pop_front();
                let now = Instant::now();
                self.complete(now, now.duration_since(t).as_nanos() as u64);
                self.next_or_finish(cx, i, now);
            }
        }
    }

    /// Closed loop: the next message, unless this connection has sent its `--count` (the core
    /// finishes once all have).
    fn next_or_finish(&mut self, cx: &mut CoreCtx<'_>, i: usize, now: Instant) {
        if !self.closed_loop || !self.running || self.done {
            return;
        }
        let count = self.run.args.count;
        if count > 0 && self.slots[i].seq >= count {
            self.finished += 1;
            if self.finished == self.slots.len() {
                self.finish();
            }
            return;
        }
        self.send_message(cx, i, now);
    }

    /// Sends the next echo message on connection `i`; its latency counts from `at`.
    fn send_message(&mut self, cx: &mut CoreCtx<'_>, i: usize, at: Instant) {
        let s = &mut self.slots[i];
        if s.st != St::Open {
            return;
        }
        s.seq += 1;
        let n = self.msg.len().min(STAMP_LEN);
        self.msg[..n].copy_from_slice(&stamp_of(s.id, s.seq)[STAMP_LEN - n..]);
        match s.ws.as_mut() {
            Some(ws) => {
                if let Err(e) = ws.send_message(self.kind, &self.msg, &mut self.tx) {
                    fail(&format!("conn {}: send: {e:?}", s.id));
                }
            }
            None => self.tx.extend_from_slice(&self.msg),
        }
        s.inflight.push_back((s.seq, at));
        self.transmit(cx, i);
    }

    fn send_ping(&mut self, cx: &mut CoreCtx<'_>, i: usize, at: Instant) {
        let s = &mut self.slots[i];
        let Some(ws) = s.ws.as_mut() else { return };
        s.seq += 1;
        if let Err(e) = ws.ping(&stamp_of(s.id, s.seq), &mut self.tx) {
            fail(&format!("conn {}: ping: {e:?}", s.id));
        }
        s.inflight.push_back((s.seq, at));
        self.transmit(cx, i);
    }

    fn publish(&mut self, cx: &mut CoreCtx<'_>, i: usize, at: Instant) {
        let s = &mut self.slots[i];
        if s.id != 0 {
            return;
        }
        let Some(ws) = s.ws.as_mut() else { return };
        s.seq += 1;
        self.msg[..STAMP_LEN].copy_from_slice(&hex16(s.seq));
        let sent = at.saturating_duration_since(self.run.base).as_nanos() as u64;
        self.msg[STAMP_LEN..2 * STAMP_LEN].copy_from_slice(&hex16(sent));
        if let Err(e) = ws.send_message(self.kind, &self.msg, &mut self.tx) {
            fail(&format!("publisher: send: {e:?}"));
        }
        if at >= self.measure_from && at < self.end {
            self.out.published += 1;
        }
        self.transmit(cx, i);
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
