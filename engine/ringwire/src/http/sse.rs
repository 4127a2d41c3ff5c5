//! Server-Sent Events (WHATWG HTML §9.2): `text/event-stream` responses held open, members of
//! the same channels as WebSocket connections.
//!
//! An [`SseEndpoint`] names a stream. A client that connects gets `retry:` (if set), the
//! endpoint's opening events (given `Last-Event-ID` so it can resume), the buffered events of
//! its channels newer than its `Last-Event-ID`, then, for as long as it stays: the endpoint's
//! periodic event ([`SseEndpoint::tick`]), heartbeat comments, and every event sent to one of
//! its channels from any core.
//!
//! Channels: a client joins the endpoint's stream name ([`SseEndpoint::stream`]), its
//! [`SseEndpoint::channels`], and, when [`SseEndpoint::query_channels`] allows, the channels
//! its request names (`GET /events?channel=a&channel=b`). These are the WebSocket channels
//! ([`crate::ws::WsCtx::subscribe`]): a text [`crate::ws::Broadcast`] to channel `a` — from a
//! WebSocket handler, [`crate::ws::broadcast`] in plugin code, or [`crate::ws::publish`] on the
//! server handle from any thread — reaches the WebSocket and the SSE subscribers of `a` on
//! every core, as a WebSocket frame encoded once and an SSE event (`id:` and `data:` lines, no
//! `event:`) encoded once. [`publish`] sends an [`SseEvent`] of your own to a channel (its data
//! goes to WebSocket subscribers as a text message). Binary broadcasts and broadcasts to all
//! or to a subprotocol reach WebSocket connections only.
//!
//! Resume: every channel event gets a numeric id, the same on every core. Each core keeps the
//! last [`SseConfig::replay`] events of up to [`SseConfig::replay_channels`] channels; a client
//! that reconnects with `Last-Event-ID: N` first gets the buffered events of its channels with
//! an id above N, in id order. Events older than the buffer are gone (no gap marker is sent).
//!
//! Slow readers: a subscriber with more than [`SseConfig::max_lag`] bytes queued when an event
//! arrives is cut off (the connection is aborted, its queue freed). Dropping single events
//! would leave silent holes; closing lets the client's EventSource reconnect and resume from
//! the replay buffer with `Last-Event-ID`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringwire_runtime::{BusMessage, ConnCtx, ConnId, CoreCtx};

use super::{Body, ConnState, HttpServer, Request, Response, T_SSE_TICK};
use crate::ws::{Broadcast, BroadcastMsg, MessageKind, TAG_BROADCAST, TAG_PUBLISH, Target};

/// The bus tag of the older, SSE-only publications made with [`publication`]:
/// `ServerHandle::broadcast(TAG_SSE, publication(stream, &event))` reaches the stream's SSE
/// subscribers only. [`crate::ws::publish`] reaches WebSocket subscribers too.
pub const TAG_SSE: u64 = 0x5353_4531; // "SSE1"

/// Default [`SseConfig::replay`]: events kept per channel for `Last-Event-ID` resume.
pub const DEFAULT_REPLAY: usize = 64;
/// Default [`SseConfig::replay_channels`]: channels with a replay buffer, per core.
pub const DEFAULT_REPLAY_CHANNELS: usize = 1024;
/// Default [`SseConfig::max_lag`]: bytes queued for a subscriber before it is cut off.
pub const DEFAULT_MAX_LAG: usize = 0x10_0000;
/// Longest channel name a request may name (`?channel=`); 400 past it.
pub const MAX_CHANNEL_NAME: usize = 0x100;

/// SSE settings of the HTTP plugin ([`super::HttpConfig::sse`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SseConfig {
    /// Events kept per channel for `Last-Event-ID` resume (0: no resume of channel events).
    pub replay: usize,
    /// Most channels with a replay buffer on one core; past it the channel whose last event
    /// is oldest loses its buffer.
    pub replay_channels: usize,
    /// A subscriber with more than this many bytes queued when an event arrives is aborted.
    pub max_lag: usize,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            replay: DEFAULT_REPLAY,
            replay_channels: DEFAULT_REPLAY_CHANNELS,
            max_lag: DEFAULT_MAX_LAG,
        }
    }
}

static NEXT_EVENT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh channel event id: process-wide, increasing.
pub fn next_event_id() -> u64 {
    NEXT_EVENT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The bus payload that publishes `ev` to `stream` (the stream name, `\n`, the event's wire
/// form), for `ServerHandle::broadcast(TAG_SSE, ..)`: SSE subscribers only, no replay.
pub fn publication(stream: &str, ev: &SseEvent) -> Bytes {
    let mut v = stream.replace('\n', "").into_bytes();
    v.push(b'\n');
    ev.encode(&mut v);
    Bytes::from(v)
}

/// One event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:` (the client's Last-Event-ID on reconnect). CR/LF are removed.
    pub id: Option<String>,
    /// `event:` (the type; `message` when absent). CR/LF are removed.
    pub event: Option<String>,
    /// `data:`, one line per line of the text.
    pub data: String,
    /// `retry:` milliseconds.
    pub retry: Option<u32>,
}

impl SseEvent {
    /// An event carrying `data`.
    pub fn data(data: impl Into<String>) -> Self {
        SseEvent {
            data: data.into(),
            ..SseEvent::default()
        }
    }
    /// Set the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Set the event type.
    pub fn with_event(mut self, ev: impl Into<String>) -> Self {
        self.event = Some(ev.into());
        self
    }
    /// The wire form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let clean = |s: &str| s.replace(['\r', '\n'], "");
        if let Some(ev) = &self.event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(clean(ev).as_bytes());
            out.push(b'\n');
        }
        if let Some(id) = &self.id {
            // WHATWG: an id containing NUL is ignored by the client; drop it here.
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(clean(id).replace('\0', "").as_bytes());
            out.push(b'\n');
        }
        if let Some(r) = self.retry {
            out.extend_from_slice(format!("retry: {r}\n").as_bytes());
        }
        for line in self.data.split('\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
    }
}

type TickFn = dyn Fn(u64) -> SseEvent + Send + Sync;
type OpenFn = dyn Fn(&Request, Option<&str>) -> Vec<SseEvent> + Send + Sync;

/// An SSE endpoint's settings.
#[derive(Clone, Default)]
pub struct SseEndpoint {
    /// The stream's name: a channel every client of the endpoint joins ("" for none).
    pub stream: String,
    /// More channels every client of the endpoint joins.
    pub channels: Vec<String>,
    /// How many `channel=NAME` query parameters a request may give to join those channels too
    /// (0: the query is ignored; 400 past the number). A request that names channels gets no
    /// [`SseEndpoint::tick`]: it asked for the channels' stream.
    pub query_channels: usize,
    /// `retry:` sent first, milliseconds.
    pub retry: Option<u32>,
    /// Send a `: heartbeat` comment after this long without an event (keeps proxies from
    /// timing out); after a channel event, between one and two intervals. Kept on the
    /// connection's deadline, not a timer per stream: up to one
    /// [`ringwire_runtime::RuntimeConfig::deadline_tick`] late (100 ms by default).
    pub heartbeat: Option<Duration>,
    /// A per-connection periodic event: every interval, the function gets a sequence number
    /// (starting after the client's numeric Last-Event-ID, else 0) and returns the event.
    pub tick: Option<(Duration, Arc<TickFn>)>,
    /// Opening events, given the request and its Last-Event-ID (for resuming).
    pub on_open: Option<Arc<OpenFn>>,
}

impl std::fmt::Debug for SseEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseEndpoint")
            .field("stream", &self.stream)
            .field("channels", &self.channels)
            .field("query_channels", &self.query_channels)
            .field("retry", &self.retry)
            .field("heartbeat", &self.heartbeat)
            .field("tick", &self.tick.as_ref().map(|t| t.0))
            .finish_non_exhaustive()
    }
}

impl SseEndpoint {
    /// An endpoint for the stream `name`, with a 15 s heartbeat.
    pub fn new(name: impl Into<String>) -> Self {
        SseEndpoint {
            stream: name.into(),
            heartbeat: Some(Duration::from_secs(15)),
            ..SseEndpoint::default()
        }
    }
    /// Add a per-connection periodic event.
    pub fn with_tick(
        mut self,
        every: Duration,
        f: impl Fn(u64) -> SseEvent + Send + Sync + 'static,
    ) -> Self {
        self.tick = Some((every, Arc::new(f)));
        self
    }
    /// Every client also joins these channels.
    pub fn with_channels<S: Into<String>>(mut self, channels: impl IntoIterator<Item = S>) -> Self {
        self.channels.extend(channels.into_iter().map(Into::into));
        self
    }
    /// Let a request join up to `max` more channels with `?channel=NAME` (percent-decoded).
    pub fn with_query_channels(mut self, max: usize) -> Self {
        self.query_channels = max;
        self
    }
    /// The demo stream of `ringwire serve`: the server time every second, ids counting up;
    /// with `?channel=NAME` (up to 16) the client gets those channels instead of the time.
    pub fn clock() -> Self {
        SseEndpoint::new("clock")
            .with_tick(Duration::from_secs(1), |seq| {
                SseEvent::data(httpdate::fmt_http_date(std::time::SystemTime::now()))
                    .with_id(seq.to_string())
                    .with_event("time")
            })
            .with_query_channels(16)
    }
}

/// The body of an SSE response: what is sent when its head goes out.
pub struct SseBody {
    pub(crate) initial: Vec<u8>,
}

/// An event's wire form, encoded once: bare (HTTP/1.0 streams) and chunk-framed.
pub(crate) struct SseWire {
    bare: Bytes,
    chunked: Bytes,
}

/// Append `bare` to `out` as one chunk of a chunked body (RFC 9112 §7.1).
fn push_chunk(out: &mut Vec<u8>, bare: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", bare.len()).as_bytes());
    out.extend_from_slice(bare);
    out.extend_from_slice(b"\r\n");
}

impl SseWire {
    fn new(bare: Bytes) -> Self {
        let mut chunked = Vec::with_capacity(bare.len() + 12);
        push_chunk(&mut chunked, &bare);
        SseWire {
            bare,
            chunked: Bytes::from(chunked),
        }
    }
    fn of(ev: &SseEvent) -> Self {
        let mut bare = Vec::new();
        ev.encode(&mut bare);
        SseWire::new(Bytes::from(bare))
    }
}

/// This core's SSE subscribers and replay buffers.
#[derive(Default)]
pub(crate) struct Hub {
    /// Subscribers per channel (value: chunk-framed or not).
    subs: HashMap<Arc<str>, HashMap<ConnId, bool>>,
    /// The last events of each channel: id and bare wire form.
    replay: HashMap<Arc<str>, VecDeque<(u64, Bytes)>>,
    /// A bit per connection slot: a channel event went to the connection since its last
    /// heartbeat check (those are queued from the core, without the connection's state).
    wrote: Vec<u64>,
}

/// Set the connection's bit in [`Hub::wrote`].
fn mark_wrote(wrote: &mut Vec<u64>, id: ConnId) {
    let s = id.slot() as usize;
    if wrote.len() <= s / 64 {
        wrote.resize(s / 64 + 1, 0);
    }
    wrote[s / 64] |= 1 << (s % 64);
}

impl Hub {
    /// Whether a channel event went to the connection since the last call (and clear that).
    fn take_wrote(&mut self, id: ConnId) -> bool {
        let s = id.slot() as usize;
        let Some(w) = self.wrote.get_mut(s / 64) else {
            return false;
        };
        let bit = 1 << (s % 64);
        let was = *w & bit != 0;
        *w &= !bit;
        was
    }

    /// Subscriptions (connection, channel) on this core.
    pub(crate) fn subscriptions(&self) -> usize {
        self.subs.values().map(HashMap::len).sum()
    }

    fn record(&mut self, cfg: &SseConfig, channel: &str, id: u64, bare: &Bytes) {
        if cfg.replay == 0 || cfg.replay_channels == 0 {
            return;
        }
        if !self.replay.contains_key(channel) && self.replay.len() >= cfg.replay_channels {
            // Evict the channel whose newest event is oldest.
            let oldest = self
                .replay
                .iter()
                .min_by_key(|(_, q)| q.back().map_or(0, |e| e.0))
                .map(|(c, _)| c.clone());
            if let Some(c) = oldest {
                self.replay.remove(&c);
            }
        }
        let q = self.replay.entry(Arc::from(channel)).or_default();
        while q.len() >= cfg.replay {
            q.pop_front();
        }
        q.push_back((id, bare.clone()));
    }
}

/// Per-connection SSE state (all a connection keeps once its stream is live and nothing else
/// is pending on it).
pub(crate) struct SseConn {
    pub(crate) id: ConnId,
    channels: Vec<Arc<str>>,
    ep: Arc<SseEndpoint>,
    seq: u64,
    /// Replay channel events newer than this when registering.
    resume: Option<u64>,
    tick: bool,
    last_tx: Instant,
    chunked: bool,
    pub(crate) registered: bool,
}

/// `%XX`-decode a query value (`+` is a space); `None` if malformed or not UTF-8.
fn percent_decode(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The channels a request names (`channel=NAME`), at most `max`; `Err` for 400.
fn query_channels(req: &Request, max: usize) -> Result<Vec<String>, ()> {
    let mut out = Vec::new();
    if max == 0 {
        return Ok(out);
    }
    for kv in req.query().unwrap_or_default().split('&') {
        let Some(("channel", v)) = kv.split_once('=') else {
            continue;
        };
        let name = percent_decode(v).ok_or(())?;
        if name.is_empty() || name.len() > MAX_CHANNEL_NAME || out.len() >= max {
            return Err(());
        }
        out.push(name);
    }
    Ok(out)
}

/// Open the stream for `req` (called when its request is complete).
pub(crate) fn open(
    st: &mut ConnState,
    cx: &mut ConnCtx<'_>,
    req: &Request,
    ep: Arc<SseEndpoint>,
) -> Response {
    if st.sse.is_some() || req.method() == "HEAD" {
        // One stream per connection; HEAD gets the head only.
        let r = Response::status(if req.method() == "HEAD" { 200 } else { 409 });
        return r.with_header("Content-Type", "text/event-stream");
    }
    let Ok(asked) = query_channels(req, ep.query_channels) else {
        return Response::text(400, "bad channel list\n");
    };
    let mut channels: Vec<Arc<str>> = Vec::new();
    let names = std::iter::once(ep.stream.as_str())
        .chain(ep.channels.iter().map(String::as_str))
        .chain(asked.iter().map(String::as_str));
    for c in names {
        if !c.is_empty() && !channels.iter().any(|x| &**x == c) {
            channels.push(Arc::from(c));
        }
    }
    let last = req.header_str("last-event-id").map(str::trim);
    let resume = last.and_then(|l| l.parse::<u64>().ok());
    let seq = resume.map_or(0, |n| n.saturating_add(1));
    let mut initial = Vec::new();
    if let Some(r) = ep.retry {
        initial.extend_from_slice(format!("retry: {r}\n\n").as_bytes());
    }
    if let Some(f) = &ep.on_open
        && let Ok(evs) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(req, last)))
    {
        for e in evs {
            e.encode(&mut initial);
        }
    }
    if initial.is_empty() {
        // Something for the client (and proxies) to see at once.
        initial.extend_from_slice(b": ok\n\n");
    }
    let tick = asked.is_empty();
    if let Some((every, _)) = ep.tick.as_ref().filter(|_| tick) {
        cx.set_timer(*every, T_SSE_TICK);
    }
    // The heartbeat rides on the connection's deadline (no timer per stream): make sure the
    // first check comes within one interval ([`heartbeat`]).
    if let Some(hb) = ep.heartbeat
        && cx.deadline().is_none_or(|at| at > cx.now() + hb)
    {
        cx.set_deadline(hb);
    }
    st.sse = Some(Box::new(SseConn {
        id: st.id,
        channels,
        ep,
        seq,
        resume,
        tick,
        last_tx: cx.now(),
        chunked: !req.is_http10(),
        registered: false,
    }));
    Response {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "text/event-stream".into()),
            ("Cache-Control".into(), "no-cache".into()),
            ("X-Accel-Buffering".into(), "no".into()),
        ],
        body: Body::Sse(Box::new(SseBody { initial })),
    }
}

/// Whether the SSE response is the one on the wire now (responses before it finished).
pub(crate) fn live(st: &ConnState) -> bool {
    matches!(st.queue.front(), Some(o) if o.started && matches!(o.resp.body, Body::Sse(_)))
}

/// Called by the pump once the SSE head went out: join the channels, then write the buffered
/// events newer than the client's `Last-Event-ID` (into `server.out`, which the pump flushes).
pub(crate) fn register(server: &mut HttpServer, st: &mut ConnState) {
    let Some(s) = st.sse.as_mut().filter(|s| !s.registered) else {
        return;
    };
    s.registered = true;
    // The stream holds the connection from now on, most of the time idle. Usually the
    // connection keeps only the stream's state next (`HttpServer::settle`); one with a
    // request pipelined behind the stream keeps it all: give back what parsing and queueing
    // requests used.
    st.codec.release_buffers();
    st.queue.shrink_to_fit();
    let subs = &mut server.sse_hub.subs;
    for c in &mut s.channels {
        // One copy of a channel's name per core, the hub's, shared by its subscribers.
        if let Some((name, _)) = subs.get_key_value(&**c) {
            *c = name.clone();
        }
        subs.entry(c.clone()).or_default().insert(st.id, s.chunked);
    }
    s.channels.shrink_to_fit();
    server.app.sse_joined(s.channels.len() as isize);
    let Some(after) = s.resume else { return };
    let mut missed: Vec<&(u64, Bytes)> = s
        .channels
        .iter()
        .filter_map(|c| server.sse_hub.replay.get(c))
        .flat_map(|q| q.iter().filter(|e| e.0 > after))
        .collect();
    missed.sort_by_key(|e| e.0);
    for (_, bare) in missed {
        let _ = st.codec.write_body_chunk(bare, &mut server.out);
    }
}

/// The connection is gone: leave its channels.
pub(crate) fn leave(server: &mut HttpServer, s: &SseConn) {
    if !s.registered {
        return;
    }
    // The slot's next connection starts with a clean slate.
    server.sse_hub.take_wrote(s.id);
    for c in &s.channels {
        if let Some(m) = server.sse_hub.subs.get_mut(c) {
            m.remove(&s.id);
            if m.is_empty() {
                server.sse_hub.subs.remove(c);
            }
        }
    }
    server.app.sse_joined(-(s.channels.len() as isize));
}

/// Write `wire` (one or more whole events or comments) on the stream, chunk-framed for
/// HTTP/1.1 (the response is chunked; HTTP/1.0 reads until the close).
fn write_event(server: &mut HttpServer, s: &mut SseConn, cx: &mut ConnCtx<'_>, wire: &[u8]) {
    if cx.buffered() > server.app.cfg.sse.max_lag {
        // The reader does not keep up: cut it off (it reconnects and resumes).
        cx.abort();
        return;
    }
    if wire.is_empty() {
        return;
    }
    if s.chunked {
        push_chunk(&mut server.out, wire);
    } else {
        server.out.extend_from_slice(wire);
    }
    server.flush(cx);
    s.last_tx = cx.now();
}

/// The stream's clock tick (`T_SSE_TICK`): its next event, if the stream is `live` (else only
/// the next tick).
pub(crate) fn on_timer(
    server: &mut HttpServer,
    s: &mut SseConn,
    cx: &mut ConnCtx<'_>,
    is_live: bool,
) {
    let ep = s.ep.clone();
    let Some((every, f)) = ep.tick.as_ref().filter(|_| s.tick) else {
        return;
    };
    cx.set_timer(*every, T_SSE_TICK);
    if !is_live {
        return;
    }
    let seq = s.seq;
    s.seq = s.seq.wrapping_add(1);
    let mut wire = Vec::new();
    if let Ok(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seq))) {
        e.encode(&mut wire);
        write_event(server, s, cx, &wire);
    }
}

/// The connection's deadline fired (the HTTP plugin asks for every SSE stream): write a
/// `: heartbeat` comment if nothing went out for a whole interval. Returns when to check
/// again (`None` without a heartbeat). Channel events sent since the last check count as
/// something written now, so a stream gets its heartbeat between one and two intervals after
/// its last channel event, and exactly one interval after anything else it wrote.
pub(crate) fn heartbeat(
    server: &mut HttpServer,
    s: &mut SseConn,
    cx: &mut ConnCtx<'_>,
    is_live: bool,
) -> Option<Duration> {
    let hb = s.ep.heartbeat?;
    let now = cx.now();
    if server.sse_hub.take_wrote(s.id) {
        s.last_tx = now;
    }
    let quiet = now.saturating_duration_since(s.last_tx);
    if quiet < hb {
        return Some(hb - quiet);
    }
    if is_live {
        write_event(server, s, cx, b": heartbeat\n\n");
    }
    Some(hb)
}

/// Publish an event of your own to channel `stream` on every core: its SSE subscribers get
/// `ev` (given an id from [`next_event_id`] if it has none, so that it can be replayed), its
/// WebSocket subscribers get `ev.data` as a text message. Returns how many cores were reached.
pub fn publish(cx: &mut CoreCtx<'_>, stream: &str, ev: &SseEvent) -> usize {
    let mut ev = ev.clone();
    let id = match ev.id.as_deref().map(str::parse::<u64>) {
        Some(Ok(n)) => n,
        Some(Err(_)) => 0,
        None => {
            let n = next_event_id();
            ev.id = Some(n.to_string());
            n
        }
    };
    let b = Broadcast::to_channel(stream, MessageKind::Text, Bytes::from(ev.data.clone()));
    let m = BroadcastMsg::new(b, id);
    let _ = m.sse.set(Some(SseWire::of(&ev)));
    crate::ws::send_broadcast(cx, m)
}

/// The SSE part of a broadcast: a text message to a channel goes to the channel's SSE
/// subscribers (encoded once, by the first core that needs it) and into its replay buffer.
pub(crate) fn deliver(server: &mut HttpServer, cx: &mut CoreCtx<'_>, m: &BroadcastMsg) {
    let Target::Channel(channel) = &m.b.target else {
        return;
    };
    if m.b.kind != MessageKind::Text {
        return;
    }
    let cfg = server.app.cfg.sse;
    let subs = server.sse_hub.subs.get(channel.as_str());
    if subs.is_none() && cfg.replay == 0 {
        return;
    }
    let Some(wire) = m
        .sse
        .get_or_init(|| {
            let data = std::str::from_utf8(&m.b.payload).ok()?;
            Some(SseWire::of(&SseEvent::data(data).with_id(m.id.to_string())))
        })
        .as_ref()
    else {
        return;
    };
    if let Some(subs) = subs {
        for (&id, &chunked) in subs {
            if m.b.include.as_ref().is_some_and(|inc| !inc.contains(&id))
                || m.b.exclude.contains(&id)
            {
                continue;
            }
            send(
                cx,
                id,
                if chunked { &wire.chunked } else { &wire.bare },
                cfg.max_lag,
            );
            mark_wrote(&mut server.sse_hub.wrote, id);
        }
    }
    if m.id != 0 {
        server.sse_hub.record(&cfg, channel, m.id, &wire.bare);
    }
}

/// Queue an event for a subscriber, or cut it off past `max_lag` (see the module's doc).
fn send(cx: &mut CoreCtx<'_>, id: ConnId, wire: &Bytes, max_lag: usize) {
    if cx.buffered_of(id).saturating_add(wire.len()) > max_lag
        || cx.send_to(id, wire.clone()).is_err()
    {
        cx.abort_conn(id);
    }
}

/// Bus messages for the HTTP plugin when it runs alone (the WebSocket plugin hands
/// broadcasts to [`deliver`] itself).
pub(crate) fn on_message(server: &mut HttpServer, cx: &mut CoreCtx<'_>, msg: &BusMessage) {
    match msg.tag {
        TAG_BROADCAST => {
            if let Some(m) = msg
                .extra
                .as_ref()
                .and_then(|e| e.downcast_ref::<BroadcastMsg>())
            {
                deliver(server, cx, m);
            }
        }
        TAG_PUBLISH => {
            if let Some(m) = crate::ws::decode_publication(&msg.data) {
                deliver(server, cx, &m);
            }
        }
        TAG_SSE => {
            // From `publication`: "stream\n" + the event.
            let Some(nl) = msg.data.iter().position(|&b| b == b'\n') else {
                return;
            };
            let wire = SseWire::new(msg.data.slice(nl + 1..));
            if wire.bare.is_empty() {
                return;
            }
            let stream = String::from_utf8_lossy(msg.data.get(..nl).unwrap_or_default());
            let max_lag = server.app.cfg.sse.max_lag;
            if let Some(subs) = server.sse_hub.subs.get(&*stream) {
                for (&id, &chunked) in subs {
                    send(
                        cx,
                        id,
                        if chunked { &wire.chunked } else { &wire.bare },
                        max_lag,
                    );
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_keeps_the_last_events_of_the_newest_channels() {
        let cfg = SseConfig {
            replay: 2,
            replay_channels: 2,
            ..SseConfig::default()
        };
        let mut hub = Hub::default();
        let ev = Bytes::from_static(b"data: x\n\n");
        for id in 1..=3 {
            hub.record(&cfg, "a", id, &ev);
        }
        let ids = |hub: &Hub, c: &str| -> Vec<u64> {
            hub.replay
                .get(c)
                .map(|q| q.iter().map(|e| e.0).collect())
                .unwrap_or_default()
        };
        assert_eq!(ids(&hub, "a"), [2, 3]);
        hub.record(&cfg, "b", 4, &ev);
        hub.record(&cfg, "a", 5, &ev);
        // One channel over the limit: "b" (newest event 4) is older than "a" (5).
        hub.record(&cfg, "c", 6, &ev);
        assert_eq!(hub.replay.len(), 2);
        assert_eq!(ids(&hub, "b"), Vec::<u64>::new());
        assert_eq!(ids(&hub, "a"), [3, 5]);
        assert_eq!(ids(&hub, "c"), [6]);
        let off = SseConfig { replay: 0, ..cfg };
        hub.record(&off, "d", 7, &ev);
        assert!(!hub.replay.contains_key("d"));
    }

    #[test]
    fn query_channels_bounded_and_decoded() {
        let req = |q: &str| Request::new("GET", &format!("/e?{q}"), &[]);
        assert_eq!(
            query_channels(&req("channel=a%2Fb&x=1&channel=c+d"), 2),
            Ok(vec!["a/b".to_owned(), "c d".to_owned()])
        );
        // One over the count, the name length, bad escapes, empty names: refused.
        assert_eq!(
            query_channels(&req("channel=a&channel=b&channel=c"), 2),
            Err(())
        );
        let long = "n".repeat(MAX_CHANNEL_NAME);
        assert_eq!(
            query_channels(&req(&format!("channel={long}")), 1),
            Ok(vec![long.clone()])
        );
        assert_eq!(
            query_channels(&req(&format!("channel={long}n")), 1),
            Err(())
        );
        for bad in [
            "channel=%",
            "channel=%4",
            "channel=%zz",
            "channel=%ff",
            "channel=",
        ] {
            assert_eq!(query_channels(&req(bad), 1), Err(()), "{bad}");
        }
        // Not accepted by the endpoint: ignored.
        assert_eq!(query_channels(&req("channel=a"), 0), Ok(vec![]));
    }

    #[test]
    fn publication_round_trips_and_refuses_truncations() {
        let b = Broadcast::to_channel("news", MessageKind::Text, "héllo");
        let wire = crate::ws::publication(&b);
        let m = crate::ws::decode_publication(&wire).unwrap();
        assert_eq!(m.b.target, Target::Channel("news".into()));
        assert_eq!(
            (m.b.kind, &m.b.payload[..]),
            (MessageKind::Text, "héllo".as_bytes())
        );
        assert!(m.id > 0);
        // Every truncation that cuts the fixed part or splits the UTF-8 text is refused.
        for n in 0..wire.len() {
            let cut = wire.slice(..n);
            let ok = crate::ws::decode_publication(&cut).is_some();
            let text_ok = n >= 16 && std::str::from_utf8(&wire[16..n]).is_ok();
            assert_eq!(ok, text_ok, "cut at {n}");
        }
        let mut bad = wire.to_vec();
        bad[0] = 9;
        assert!(crate::ws::decode_publication(&Bytes::from(bad)).is_none());
    }

    #[test]
    fn encodes_fields_and_multiline_data() {
        let mut v = Vec::new();
        SseEvent {
            id: Some("7\n".into()),
            event: Some("tick".into()),
            data: "a\nb".into(),
            retry: Some(1000),
        }
        .encode(&mut v);
        assert_eq!(
            v,
            b"event: tick\nid: 7\nretry: 1000\ndata: a\ndata: b\n\n".to_vec()
        );
    }
}
