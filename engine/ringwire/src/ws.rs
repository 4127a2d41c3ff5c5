//! WebSocket on the engine: the plugin that serves the HTTP/WebSocket port, and the user API.
//!
//! One [`WsServer`] runs on every core. A connection starts in the handshake state: the request
//! head is parsed (bounded by [`WsServerConfig::max_handshake`] and a deadline against slowloris),
//! the user's [`WsHandler::on_upgrade`] may refuse it with an HTTP status, subprotocol and
//! permessage-deflate are negotiated, and the 101 goes out. From then on bytes go through the
//! sans-IO codec `ringwire_ws::WebSocket`; events reach the handler with payloads borrowed from
//! the receive buffer where the codec allows it. A large message that arrived over several reads
//! changes hands instead: the runtime gives up the buffer it gathered the frame in, and
//! [`WsHandler::on_message_bytes`] gets the unmasked payload as refcounted bytes, which
//! [`WsCtx::send_bytes`] queues again without a copy (an echo copies no payload in user space).
//! While a frame is incomplete, the plugin tells the runtime its length
//! (`ConnCtx::reserve_input`), so that the frame is gathered in one buffer, not one that doubles.
//!
//! A request without `Upgrade: websocket` is plain HTTP: the connection goes to the HTTP plugin
//! ([`crate::http::HttpServer`]) with the request's bytes unchanged, for good (a WebSocket
//! upgrade on a later request of that connection is answered 400).
//!
//! What the handler gets:
//! - [`WsCtx`]: send text/binary (with a backpressure result), ping, close(code, reason), the
//!   connection's stable id, subscribe/unsubscribe to channels, broadcast;
//! - [`WsCore`]: the same broadcast and per-id sends from outside a connection's callback.
//!
//! Broadcast ([`Broadcast`]) goes to all connections, a channel or a subprotocol, on every core,
//! with include and exclude lists; a text broadcast to a channel also reaches the channel's
//! Server-Sent Events subscribers ([`crate::http::sse`]). From outside a connection's callback:
//! [`broadcast`] (plugin code), [`publish_here`] (HTTP handlers), [`publish`] (the server
//! handle). The frame is encoded once and the same refcounted bytes go to every receiver;
//! receivers that negotiated permessage-deflate with
//! `server_no_context_takeover` get a compressed frame, compressed once per core and window
//! size; receivers with context takeover get the uncompressed frame (RFC 7692 allows it, and a
//! frame compressed elsewhere would desynchronise their window).
//!
//! Timeouts per connection: the handshake deadline, the heartbeat (ping every interval, close
//! after a timeout without pong; optionally only when nothing arrived during the interval; or a
//! custom heartbeat message from the handler), the idle timeout, and the closing handshake's
//! timeout from the codec. All but the last share the connection's one deadline
//! ([`ConnCtx::set_deadline`], set for whichever is due first): an idle connection holds no
//! timer, only 4 bytes in its core's deadline array and its [`WsLive`] box.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes};
use ringwire_runtime::{BusMessage, CloseReason, ConnCtx, ConnId, CoreCtx, Plugin, SendError};
use ringwire_ws::handshake::{UpgradeRequest, write_accept, write_error_response, write_reject};
use ringwire_ws::{FrameHeader, OpCode, State, WebSocket, WsEvent};

pub use ringwire_ws::{
    CloseCode, DeflateConfig, DeflateParams, FragmentMode, MessageKind, WsError,
};

use crate::http::{HttpServer, HttpState};

/// Largest request head accepted for an upgrade, by default (431 past it).
pub const DEFAULT_MAX_HANDSHAKE: usize = 16 * 1024;
/// How long a client has to send a complete upgrade request, by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The bus tag of broadcasts from inside the engine.
pub(crate) const TAG_BROADCAST: u64 = 0x5753_4243; // "WSBC"

// Connection timer token: the codec's closing-handshake timeout.
const T_CLOSE: u64 = 5;

/// [`WsCtx::send_bytes`] queues a payload at least this large as a chunk of its own after the
/// frame header; a smaller one is copied into the frame. A message at least this large that
/// arrives in one uncompressed frame which sits in the connection's own input buffer (it came
/// in several reads) is taken from it ([`ConnCtx::take_input`]) and reaches
/// [`WsHandler::on_message_bytes`] without a copy; one in the driver's receive buffer is
/// lent to [`WsHandler::on_message`] as it is (taking it would copy it).
const SHARED_SEND_MIN: usize = 16 * 1024;

/// Heartbeat settings (the suite's HeartBeat).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// Send a ping (or the handler's custom heartbeat) every `interval`.
    pub interval: Duration,
    /// Close the connection when no pong arrived this long after a ping.
    pub timeout: Duration,
    /// Only ping when nothing was received during the last interval; then any input (not only
    /// a pong) before the timeout keeps the connection.
    pub only_if_idle: bool,
}

/// Settings of the WebSocket plugin.
#[derive(Clone, Debug)]
pub struct WsServerConfig {
    /// The codec's settings: frame, message and fragment limits (close 1009 past them),
    /// permessage-deflate, close-handshake timeout, whole or streamed delivery.
    pub codec: ringwire_ws::Config,
    /// Subprotocols the server speaks, in order of preference.
    pub subprotocols: Vec<String>,
    /// Refuse (400) a client that offers subprotocols, none of which the server speaks.
    /// When false, such a client is accepted without a subprotocol.
    pub refuse_unknown_subprotocols: bool,
    /// Largest upgrade request head (431 past it).
    pub max_handshake: usize,
    /// A complete upgrade request must arrive within this time of connecting (slowloris).
    /// Kept as the connection's deadline ([`ConnCtx::set_deadline`]): enforced up to
    /// [`ringwire_runtime::RuntimeConfig::deadline_tick`] late (100 ms by default).
    pub handshake_timeout: Duration,
    /// Close a connection from which nothing arrived for this long (1001). Kept as the
    /// connection's deadline, like `handshake_timeout`: no timer per connection, enforced up
    /// to one deadline tick late.
    pub idle_timeout: Option<Duration>,
    /// Ping-based liveness checks. Kept on the connection's deadline, like `idle_timeout`:
    /// pings and the pong timeout run up to one deadline tick late (100 ms by default; lower
    /// [`ringwire_runtime::RuntimeConfig::deadline_tick`] for sub-second intervals).
    pub heartbeat: Option<Heartbeat>,
}

impl Default for WsServerConfig {
    fn default() -> Self {
        WsServerConfig {
            codec: ringwire_ws::Config::default(),
            subprotocols: Vec::new(),
            refuse_unknown_subprotocols: false,
            max_handshake: DEFAULT_MAX_HANDSHAKE,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: None,
            heartbeat: None,
        }
    }
}

/// The upgrade request, as the handler sees it before accepting.
pub struct WsRequest<'a> {
    req: &'a UpgradeRequest<'a>,
    peer: SocketAddr,
    subprotocol: Option<&'a str>,
}

impl WsRequest<'_> {
    /// The path (without the query).
    pub fn path(&self) -> &str {
        self.req.path()
    }
    /// The query string, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.req.query()
    }
    /// A request header (case-insensitive name), raw bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.req.header(name)
    }
    /// Every header, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.req.headers().iter().map(|h| (h.name, h.value))
    }
    /// The Origin header, for the accept hook's origin policy.
    pub fn origin(&self) -> Option<&str> {
        self.req.origin()
    }
    /// The Host header.
    pub fn host(&self) -> &str {
        self.req.host()
    }
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
    /// The subprotocol the server chose (if any).
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol
    }
}

/// What a broadcast reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every WebSocket connection on every core.
    All,
    /// Connections subscribed to this channel.
    Channel(String),
    /// Connections that negotiated this subprotocol.
    Subprotocol(String),
}

/// A message for many connections, on every core.
#[derive(Clone, Debug)]
pub struct Broadcast {
    /// Text or binary.
    pub kind: MessageKind,
    /// The payload (refcounted; text must be UTF-8).
    pub payload: Bytes,
    /// Who gets it.
    pub target: Target,
    /// If set, only these connections (among the target) get it.
    pub include: Option<Vec<ConnId>>,
    /// These connections do not get it.
    pub exclude: Vec<ConnId>,
}

impl Broadcast {
    /// A text message for every connection.
    pub fn text_to_all(text: impl Into<String>) -> Self {
        Broadcast {
            kind: MessageKind::Text,
            payload: Bytes::from(text.into()),
            target: Target::All,
            include: None,
            exclude: Vec::new(),
        }
    }
    /// A message for a channel's subscribers.
    pub fn to_channel(
        channel: impl Into<String>,
        kind: MessageKind,
        payload: impl Into<Bytes>,
    ) -> Self {
        Broadcast {
            kind,
            payload: payload.into(),
            target: Target::Channel(channel.into()),
            include: None,
            exclude: Vec::new(),
        }
    }
}

/// What travels on the bus: the broadcast, its WebSocket frame (encoded once) and its SSE
/// event (encoded once, by the first core that has an SSE subscriber of the channel).
pub(crate) struct BroadcastMsg {
    pub(crate) b: Broadcast,
    pub(crate) frame: Bytes,
    /// The SSE event id ([`crate::http::sse::next_event_id`]): the same on every core, so that
    /// `Last-Event-ID` resumes wherever the client reconnects.
    pub(crate) id: u64,
    pub(crate) sse: std::sync::OnceLock<Option<crate::http::sse::SseWire>>,
}

impl BroadcastMsg {
    pub(crate) fn new(b: Broadcast, id: u64) -> Self {
        let frame = encode_frame(b.kind, &b.payload, false);
        BroadcastMsg {
            b,
            frame,
            id,
            sse: std::sync::OnceLock::new(),
        }
    }
}

/// The bus tag of [`publication`]s: broadcasts from outside the engine.
pub const TAG_PUBLISH: u64 = 0x5753_5042; // "WSPB"

/// The bus payload of a broadcast sent from outside the engine with
/// `ServerHandle::broadcast(TAG_PUBLISH, publication(&b))` ([`publish`] does exactly that).
/// Each core decodes it once and encodes the WebSocket frame and the SSE event once. Its
/// `include` / `exclude` lists are not carried (connection ids are only meaningful inside).
///
/// Layout: kind (1 text, 2 binary), target (0 all, 1 channel, 2 subprotocol), name length
/// (u16, big-endian), name, SSE event id (u64, big-endian), payload.
pub fn publication(b: &Broadcast) -> Bytes {
    let (t, name) = match &b.target {
        Target::All => (0u8, ""),
        Target::Channel(c) => (1, c.as_str()),
        Target::Subprotocol(p) => (2, p.as_str()),
    };
    let name = name.as_bytes().get(..0xffff).unwrap_or(name.as_bytes());
    let mut v = Vec::with_capacity(12 + name.len() + b.payload.len());
    v.push(if b.kind == MessageKind::Text { 1 } else { 2 });
    v.push(t);
    v.extend_from_slice(&(name.len() as u16).to_be_bytes());
    v.extend_from_slice(name);
    v.extend_from_slice(&crate::http::sse::next_event_id().to_be_bytes());
    v.extend_from_slice(&b.payload);
    Bytes::from(v)
}

/// Decode a [`publication`] (`None` if malformed: a bus message is trusted, but not blindly).
pub(crate) fn decode_publication(data: &Bytes) -> Option<BroadcastMsg> {
    let kind = match *data.first()? {
        1 => MessageKind::Text,
        2 => MessageKind::Binary,
        _ => return None,
    };
    let len = u16::from_be_bytes([*data.get(2)?, *data.get(3)?]) as usize;
    let name = std::str::from_utf8(data.get(4..4 + len)?).ok()?.to_owned();
    let target = match *data.get(1)? {
        0 => Target::All,
        1 => Target::Channel(name),
        2 => Target::Subprotocol(name),
        _ => return None,
    };
    let id = u64::from_be_bytes(data.get(4 + len..12 + len)?.try_into().ok()?);
    let payload = data.slice(12 + len..);
    if kind == MessageKind::Text && std::str::from_utf8(&payload).is_err() {
        return None;
    }
    let b = Broadcast {
        kind,
        payload,
        target,
        include: None,
        exclude: Vec::new(),
    };
    Some(BroadcastMsg::new(b, id))
}

thread_local! {
    /// Broadcasts made by the HTTP handler running now on this core's thread ([`publish_here`]).
    static OUTBOX: std::cell::RefCell<Option<Vec<Broadcast>>> =
        const { std::cell::RefCell::new(None) };
}

/// Broadcast from inside an HTTP route handler (or a streaming route's
/// [`crate::http::BodySink::finish`]), which has no [`CoreCtx`]: the broadcast is sent from the
/// handler's core as soon as the handler returns, exactly as [`broadcast`] would. Returns false
/// (and sends nothing) when called anywhere else; use [`publish`] or [`broadcast`] there.
pub fn publish_here(b: Broadcast) -> bool {
    OUTBOX.with(|o| match o.borrow_mut().as_mut() {
        Some(v) => {
            v.push(b);
            true
        }
        None => false,
    })
}

/// Run an HTTP handler with [`publish_here`] enabled, then send what it published.
pub(crate) fn with_outbox<R>(cx: &mut CoreCtx<'_>, f: impl FnOnce() -> R) -> R {
    let outer = OUTBOX.with(|o| o.borrow_mut().replace(Vec::new()));
    let r = f();
    let out = OUTBOX.with(|o| std::mem::replace(&mut *o.borrow_mut(), outer));
    for b in out.unwrap_or_default() {
        broadcast(cx, b);
    }
    r
}

/// Broadcast from outside the engine (any thread that holds the server's handle): every core
/// decodes it and delivers it to its WebSocket connections and, for a text message to a
/// channel, to the channel's SSE subscribers. Returns how many cores got it.
pub fn publish(server: &ringwire_runtime::ServerHandle, b: &Broadcast) -> usize {
    server.broadcast(TAG_PUBLISH, publication(b))
}

/// [`publish`] through a [`ringwire_runtime::Publisher`] (`server.publisher()`): cloneable and
/// `Send + Sync`, so any thread of the application can broadcast to the channels.
pub fn publish_via(publisher: &ringwire_runtime::Publisher, b: &Broadcast) -> usize {
    publisher.broadcast(TAG_PUBLISH, publication(b))
}

/// The whole length (header and payload) of the frame at the front of `rest`, once its header
/// is there.
fn frame_len(rest: &[u8]) -> Option<usize> {
    let (h, header_len) = FrameHeader::parse(rest).ok()??;
    usize::try_from(h.payload_len).ok()?.checked_add(header_len)
}

/// Where `payload`, which the codec borrowed from the input at address `base`, starts in it;
/// `None` unless it lies within the first `frame` bytes.
fn payload_offset(base: usize, payload: &[u8], frame: usize) -> Option<usize> {
    let off = (payload.as_ptr() as usize).checked_sub(base)?;
    (off.checked_add(payload.len())? <= frame).then_some(off)
}

/// The allocation of a message's bytes, for the codec to reuse, if nothing else holds them.
fn reclaim(mut b: Bytes) -> Option<Vec<u8>> {
    if !b.is_unique() {
        return None;
    }
    // Emptied first, the bytes are not moved when the Vec is rebuilt.
    b.advance(b.len());
    Some(Vec::from(b))
}

fn encode_frame(kind: MessageKind, payload: &Bytes, rsv1: bool) -> Bytes {
    let h = FrameHeader {
        fin: true,
        rsv1,
        rsv2: false,
        rsv3: false,
        opcode: kind.opcode(),
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut v = Vec::with_capacity(h.encoded_len() + payload.len());
    h.write_to(&mut v);
    v.extend_from_slice(payload);
    Bytes::from(v)
}

/// A duration in whole milliseconds, rounded up (u64 and u32 arithmetic, no 128-bit
/// division).
fn ceil_ms(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_nanos().div_ceil(1_000_000)))
}

/// The per-connection WebSocket state.
pub struct WsState {
    ws: WebSocket,
    id: ConnId,
    /// A subprotocol, channels, the peer's Close: boxed, since many connections have none.
    extra: Option<Box<WsExtra>>,
    /// Heartbeat and idle-timeout state: only with either configured.
    live: Option<Box<WsLive>>,
}

/// The part of a [`WsState`] that many connections never need.
#[derive(Default)]
struct WsExtra {
    subprotocol: Option<Arc<str>>,
    channels: Vec<Arc<str>>,
    /// The peer's Close (code, reason).
    peer_close: Option<(Option<CloseCode>, String)>,
    /// The codec's close-handshake timer is armed.
    close_timer: bool,
}

/// What a heartbeat or an idle timeout needs of a connection ([`WsServerConfig::heartbeat`],
/// [`WsServerConfig::idle_timeout`]). Times are milliseconds since the core's
/// [`WsServer::epoch`] (half the size of an `Instant`); the connection's deadline is set for
/// the earliest of them that applies ([`WsServer::arm_live`]). 24 bytes: one 32-byte chunk.
#[derive(Default)]
struct WsLive {
    /// When input last arrived, rounded up. Kept with an idle timeout or only-if-idle
    /// heartbeats.
    last_rx_ms: u64,
    /// When the next heartbeat is due (with a heartbeat).
    next_hb_ms: u64,
    /// When the outstanding ping goes unanswered; 0 while none is outstanding.
    pong_due_ms: u64,
}

impl WsState {
    fn extra_mut(&mut self) -> &mut WsExtra {
        self.extra.get_or_insert_with(Box::default)
    }
    fn subprotocol(&self) -> Option<&Arc<str>> {
        self.extra.as_ref()?.subprotocol.as_ref()
    }
    fn channels(&self) -> &[Arc<str>] {
        self.extra.as_ref().map_or(&[], |e| &e.channels)
    }
    fn peer_close(&self) -> Option<&(Option<CloseCode>, String)> {
        self.extra.as_ref()?.peer_close.as_ref()
    }
    fn close_timer(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.close_timer)
    }
}

/// A message whose frame was taken from the input ([`ConnCtx::take_input`]): its kind and
/// where its (unmasked) payload sits in the frame's bytes.
#[derive(Clone, Copy, Debug)]
struct TakenMessage {
    kind: MessageKind,
    off: usize,
    len: usize,
}

/// A connection on the HTTP/WebSocket port.
pub enum HttpConn {
    /// Waiting for a complete request head: the connection's id. Its handshake deadline is
    /// the connection's ([`ConnCtx::set_deadline`]: no timer), disarmed once the request is in.
    Handshake(ConnId),
    /// Plain HTTP, served by the HTTP plugin (a live Server-Sent Events stream too: then the
    /// stream's own state only).
    Plain(HttpState),
    /// An open WebSocket.
    Ws(Box<WsState>),
}

/// The request head is in: the handshake deadline no longer applies (the HTTP plugin keeps
/// its own request timers, a WebSocket its heartbeat and idle ones).
fn end_handshake_deadline(conn: &HttpConn, cx: &mut ConnCtx<'_>) {
    if let HttpConn::Handshake(_) = conn {
        cx.clear_deadline();
    }
}

/// What a WebSocket application implements (one instance per core).
pub trait WsHandler: 'static {
    /// An upgrade request arrived. `Err(status)` refuses it with that HTTP status (403 for an
    /// origin you do not accept, 401 for missing credentials...).
    fn on_upgrade(&mut self, _req: &WsRequest<'_>) -> Result<(), u16> {
        Ok(())
    }
    /// The 101 went out; the connection is open.
    fn on_open(&mut self, _ws: &mut WsCtx<'_, '_>) {}
    /// A whole message arrived (text is valid UTF-8). Large messages held as bytes go to
    /// [`WsHandler::on_message_bytes`], whose default passes them here.
    fn on_message(&mut self, ws: &mut WsCtx<'_, '_>, kind: MessageKind, data: &[u8]);
    /// A whole message the server holds as owned, refcounted bytes: one large enough to be
    /// taken from the input buffer without a copy, or one reassembled from fragments or
    /// inflated. Keep it, or send it on with [`WsCtx::send_bytes`], without copying. The
    /// default passes it to [`WsHandler::on_message`], which gets every other message.
    fn on_message_bytes(&mut self, ws: &mut WsCtx<'_, '_>, kind: MessageKind, data: &Bytes) {
        self.on_message(ws, kind, data);
    }
    /// A fragment of a message arrived (only with `FragmentMode::Stream`); `received` counts the
    /// message's bytes so far.
    fn on_fragment(
        &mut self,
        _ws: &mut WsCtx<'_, '_>,
        _kind: MessageKind,
        _data: &[u8],
        _fin: bool,
        _received: u64,
    ) {
    }
    /// A pong arrived.
    fn on_pong(&mut self, _ws: &mut WsCtx<'_, '_>, _data: &[u8]) {}
    /// Heartbeat time: return true after sending a custom heartbeat message instead of the ping.
    fn on_heartbeat(&mut self, _ws: &mut WsCtx<'_, '_>) -> bool {
        false
    }
    /// The peer broke the protocol (the codec already queued the close with the right code), or
    /// the heartbeat timed out.
    fn on_error(&mut self, _ws: &mut WsCtx<'_, '_>, _err: WsFailure) {}
    /// The connection is gone. `code` and `reason` are the peer's Close (1006 and "" when the
    /// connection ended without one).
    fn on_close(
        &mut self,
        _core: &mut WsCore<'_, '_>,
        _id: ConnId,
        _code: CloseCode,
        _reason: &str,
    ) {
    }
}

/// Why a WebSocket connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsFailure {
    /// A protocol error; the close code sent is `err.close_code()`.
    Protocol(WsError),
    /// No pong within the heartbeat timeout.
    HeartbeatTimeout,
    /// Nothing received within the idle timeout.
    IdleTimeout,
}

/// A set of this core's connections as a bitmap over their slots ([`ConnId::slot`]): 1 bit
/// a connection where a set of ids costs 10-20 bytes (hashbrown's 8-byte keys at 44-88% load).
#[derive(Default)]
struct SlotSet {
    words: Vec<u64>,
    len: usize,
}

impl SlotSet {
    fn insert(&mut self, id: ConnId) {
        let s = id.slot() as usize;
        let (w, bit) = (s / 64, 1u64 << (s % 64));
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        if self.words[w] & bit == 0 {
            self.words[w] |= bit;
            self.len += 1;
        }
    }

    fn remove(&mut self, id: ConnId) {
        let s = id.slot() as usize;
        let (w, bit) = (s / 64, 1u64 << (s % 64));
        if let Some(word) = self.words.get_mut(w)
            && *word & bit != 0
        {
            *word &= !bit;
            self.len -= 1;
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The connections in the set, through the core's slot table.
    fn ids(&self, cx: &CoreCtx<'_>) -> Vec<ConnId> {
        let mut out = Vec::with_capacity(self.len);
        for (i, &word) in self.words.iter().enumerate() {
            let mut w = word;
            while w != 0 {
                let slot = i * 64 + w.trailing_zeros() as usize;
                w &= w - 1;
                out.extend(cx.conn_at(slot as u32));
            }
        }
        out
    }
}

/// Per-core state the handler reaches through its contexts.
struct Registry {
    /// Every open WebSocket connection of the core (set on open, cleared on close, so a slot's
    /// bit always means the connection now in that slot).
    all: SlotSet,
    channels: HashMap<Arc<str>, HashSet<ConnId>>,
    subprotocols: HashMap<Arc<str>, HashSet<ConnId>>,
    /// Connections with permessage-deflate and `server_no_context_takeover`, and their window
    /// bits: broadcasts reach them compressed (once per core and window size).
    no_context_takeover: HashMap<ConnId, u8>,
}

impl Registry {
    fn join(&mut self, channel: &Arc<str>, id: ConnId) {
        self.channels.entry(channel.clone()).or_default().insert(id);
    }
    fn leave(&mut self, channel: &str, id: ConnId) {
        if let Some(set) = self.channels.get_mut(channel) {
            set.remove(&id);
            if set.is_empty() {
                self.channels.remove(channel);
            }
        }
    }
}

/// A WebSocket connection's context inside a handler callback.
pub struct WsCtx<'a, 'c> {
    cx: &'a mut ConnCtx<'c>,
    st: &'a mut WsState,
    reg: &'a mut Registry,
    out: &'a mut Vec<u8>,
}

impl<'c> WsCtx<'_, 'c> {
    /// The connection's stable, unique id.
    pub fn id(&self) -> ConnId {
        self.st.id
    }
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.cx.peer_addr()
    }
    /// The negotiated subprotocol.
    pub fn subprotocol(&self) -> Option<&str> {
        self.st.subprotocol().map(|p| &**p)
    }
    /// The negotiated permessage-deflate parameters.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.st.ws.deflate_params()
    }
    /// Bytes queued for this connection and not yet written.
    pub fn buffered(&self) -> usize {
        self.cx.buffered() + self.out.len()
    }
    /// The core context (timers, bus, other connections of this core).
    pub fn core(&mut self) -> &mut CoreCtx<'c> {
        self.cx
    }

    /// Send a text message. `Ok` gives the bytes now buffered for this connection (the
    /// backpressure status: compare it with the connection's limit, or wait for `buffered()`
    /// to fall); `Err(Closed)` once the connection is closing. A peer that lets the queue grow
    /// past the runtime's out-queue limit is cut off.
    pub fn send_text(&mut self, text: &str) -> Result<usize, SendError> {
        self.send(MessageKind::Text, text.as_bytes())
    }
    /// Send a binary message; see [`WsCtx::send_text`].
    pub fn send_binary(&mut self, data: &[u8]) -> Result<usize, SendError> {
        self.send(MessageKind::Binary, data)
    }
    /// Send a message of either kind.
    pub fn send(&mut self, kind: MessageKind, data: &[u8]) -> Result<usize, SendError> {
        self.st
            .ws
            .send_message(kind, data, self.out)
            .map_err(|_| SendError::Closed)?;
        Ok(self.buffered())
    }
    /// Send a message whose payload is refcounted bytes already (from
    /// [`WsHandler::on_message_bytes`], or shared between receivers). A large one is queued
    /// as it is, after a header of its own, without a copy; a small one, or one that
    /// permessage-deflate may compress, goes through [`WsCtx::send`]. Returns what `send`
    /// returns; a send past the out-queue limit aborts the connection, as it does for frames
    /// `send` queued.
    pub fn send_bytes(&mut self, kind: MessageKind, data: Bytes) -> Result<usize, SendError> {
        if data.len() < SHARED_SEND_MIN || self.st.ws.deflate_params().is_some() {
            return self.send(kind, &data);
        }
        let header = match self.st.ws.send_header_unmasked(kind, data.len()) {
            Ok(Some(h)) => h,
            Ok(None) => return self.send(kind, &data),
            Err(_) => return Err(SendError::Closed),
        };
        // What is queued goes first (control frames the codec holds, earlier sends), then
        // the header, then the payload.
        self.st.ws.poll_transmit(self.out);
        self.out.extend_from_slice(&header);
        let head = crate::take_output(self.out);
        self.cx.send_vectored(&[head, data]).inspect_err(|_| {
            // Past the out-queue limit (or closing): this peer does not keep up.
            self.cx.abort();
        })
    }
    /// Send a fragment of a message (`fin` on the last one).
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        fin: bool,
    ) -> Result<usize, SendError> {
        self.st
            .ws
            .send_fragment(kind, data, fin, self.out)
            .map_err(|_| SendError::Closed)?;
        Ok(self.buffered())
    }
    /// Send a ping (payload at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), WsError> {
        self.st.ws.ping(payload, self.out)
    }
    /// Start the closing handshake with `code` and `reason` (at most 123 bytes of UTF-8).
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), WsError> {
        let now = self.cx.now();
        self.st.ws.close(now, code, reason, self.out)
    }
    /// Subscribe this connection to a channel.
    pub fn subscribe(&mut self, channel: &str) {
        if self.st.channels().iter().any(|c| &**c == channel) {
            return;
        }
        let c: Arc<str> = Arc::from(channel);
        self.reg.join(&c, self.st.id);
        self.st.extra_mut().channels.push(c);
    }
    /// Unsubscribe this connection from a channel.
    pub fn unsubscribe(&mut self, channel: &str) {
        if let Some(e) = self.st.extra.as_deref_mut() {
            e.channels.retain(|c| &**c != channel);
        }
        self.reg.leave(channel, self.st.id);
    }
    /// The channels this connection is subscribed to.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.st.channels().iter().map(|c| &**c)
    }
    /// Broadcast on every core (this connection included unless excluded).
    pub fn broadcast(&mut self, b: Broadcast) -> usize {
        broadcast(self.cx, b)
    }
}

/// Broadcast on every core from plugin code that holds a [`CoreCtx`] (what [`WsCtx::broadcast`]
/// and [`WsCore::broadcast`] do): WebSocket connections get the frame, and a text message to a
/// channel also reaches the channel's SSE subscribers ([`crate::http::sse`]).
pub fn broadcast(cx: &mut CoreCtx<'_>, b: Broadcast) -> usize {
    send_broadcast(cx, BroadcastMsg::new(b, crate::http::sse::next_event_id()))
}

pub(crate) fn send_broadcast(cx: &mut CoreCtx<'_>, m: BroadcastMsg) -> usize {
    let msg = BusMessage {
        from: cx.core(),
        tag: TAG_BROADCAST,
        data: m.frame.clone(),
        extra: Some(Arc::new(m)),
    };
    cx.broadcast_message(msg)
}

/// A core-level context for WebSocket work outside a connection's callback.
pub struct WsCore<'a, 'c> {
    cx: &'a mut CoreCtx<'c>,
    reg: &'a Registry,
}

impl<'c> WsCore<'_, 'c> {
    /// Broadcast on every core.
    pub fn broadcast(&mut self, b: Broadcast) -> usize {
        broadcast(self.cx, b)
    }
    /// WebSocket connections open on this core.
    pub fn connections(&self) -> usize {
        self.reg.all.len()
    }
    /// The core context.
    pub fn core(&mut self) -> &mut CoreCtx<'c> {
        self.cx
    }
}

/// The plugin of the HTTP/WebSocket port.
pub struct WsServer<H> {
    handler: H,
    cfg: Arc<WsServerConfig>,
    /// `cfg.codec`, shared by this core's connections.
    codec: Arc<ringwire_ws::Config>,
    /// The message whose frame `frames` asked the runtime to hand over, and its connection:
    /// [`Plugin::on_owned_data`] follows that `on_data` at once, so one slot per core does.
    taken: Option<(ConnId, TakenMessage)>,
    reg: Registry,
    http: HttpServer,
    out: Vec<u8>,
    /// What [`WsState::last_rx_ms`] counts from.
    epoch: Instant,
}

impl<H: WsHandler> WsServer<H> {
    /// The plugin for one core.
    pub fn new(handler: H, cfg: Arc<WsServerConfig>) -> Self {
        WsServer {
            handler,
            codec: Arc::new(cfg.codec.clone()),
            taken: None,
            cfg,
            reg: Registry {
                all: SlotSet::default(),
                channels: HashMap::new(),
                subprotocols: HashMap::new(),
                no_context_takeover: HashMap::new(),
            },
            http: HttpServer::default(),
            out: Vec::new(),
            epoch: Instant::now(),
        }
    }

    /// Serve plain HTTP requests with this HTTP plugin (the default answers 404).
    pub fn with_http(mut self, http: HttpServer) -> Self {
        self.http = http;
        self
    }

    /// The handler (tests inspect it).
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Milliseconds from [`WsServer::epoch`] to `t`, rounded up: a limit measured from it
    /// never fires early. Called per read with an idle timeout.
    fn ms_since_epoch(&self, t: Instant) -> u64 {
        ceil_ms(t.saturating_duration_since(self.epoch))
    }

    /// Milliseconds from [`WsServer::epoch`] to `t`, rounded down: `floor_ms(now) >= due`
    /// only once `epoch + due` has passed.
    fn floor_ms(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.epoch);
        d.as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(d.subsec_millis()))
    }

    fn flush(&mut self, cx: &mut ConnCtx<'_>) {
        if !self.out.is_empty() && cx.send(crate::take_output(&mut self.out)).is_err() {
            // Past the out-queue limit (or closing): this peer does not keep up.
            cx.abort();
        }
    }

    fn choose_subprotocol<'r>(&self, req: &UpgradeRequest<'r>) -> Result<Option<&'r str>, u16> {
        let offered: Vec<&'r str> = req.protocols().collect();
        for ours in &self.cfg.subprotocols {
            if let Some(p) = offered.iter().find(|o| **o == ours.as_str()) {
                return Ok(Some(*p));
            }
        }
        if !offered.is_empty() && self.cfg.refuse_unknown_subprotocols {
            return Err(400);
        }
        Ok(None)
    }

    /// Handshake: returns bytes consumed (0 = need more).
    fn handshake(&mut self, conn: &mut HttpConn, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let parsed = UpgradeRequest::parse_with_limit(data, self.cfg.max_handshake);
        let (req, used) = match parsed {
            Ok(None) => return 0,
            Ok(Some(r)) => r,
            Err(WsError::MissingUpgrade) | Err(WsError::MissingConnectionUpgrade) => {
                return self.hand_to_http(conn, cx, data);
            }
            Err(_) if !crate::http::wants_websocket(data) => {
                return self.hand_to_http(conn, cx, data);
            }
            Err(e) => {
                write_reject(&e, &mut self.out);
                self.flush(cx);
                cx.close();
                return data.len();
            }
        };
        let subprotocol = match self.choose_subprotocol(&req) {
            Ok(p) => p,
            Err(status) => return self.refuse(cx, status, data.len()),
        };
        let peer = cx.peer_addr();
        // Authentication (crate::http::auth) refuses before the handler sees the upgrade.
        if let Some(auth) = self.http.app().auth()
            && let Err(d) = auth.check_upgrade(req.path(), req.header("authorization"), peer)
        {
            if write_error_response(d.status, &d.header_refs(), &mut self.out).is_err() {
                // A configured error header that is not a valid field: answer without them.
                let _ = write_error_response(d.status, &[], &mut self.out);
            }
            if let Some(l) = self.http.log() {
                let id = cx.id();
                l.handshake(cx, peer, id, req.path(), Err(d.status));
            }
            self.flush(cx);
            cx.close();
            return data.len();
        }
        let view = WsRequest {
            req: &req,
            peer,
            subprotocol,
        };
        if let Err(status) = self.handler.on_upgrade(&view) {
            return self.refuse(cx, status, data.len());
        }
        let deflate = req.negotiate_deflate(&self.cfg.codec.deflate);
        if write_accept(&req, subprotocol, deflate.as_ref(), &[], &mut self.out).is_err() {
            return self.refuse(cx, 500, data.len());
        }
        let shared_deflate = deflate
            .as_ref()
            .filter(|d| d.server_no_context_takeover)
            .map(|d| d.server_max_window_bits.unwrap_or(15));
        let now = cx.now();
        let id = cx.id();
        let sp: Option<Arc<str>> = subprotocol.map(Arc::from);
        let st = WsState {
            ws: WebSocket::server(self.codec.clone(), deflate),
            id,
            live: (self.cfg.heartbeat.is_some() || self.cfg.idle_timeout.is_some()).then(|| {
                let now_ms = self.ms_since_epoch(now);
                Box::new(WsLive {
                    last_rx_ms: now_ms,
                    next_hb_ms: self
                        .cfg
                        .heartbeat
                        .map_or(0, |hb| now_ms.saturating_add(ceil_ms(hb.interval))),
                    pong_due_ms: 0,
                })
            }),
            extra: sp.clone().map(|p| {
                Box::new(WsExtra {
                    subprotocol: Some(p),
                    ..WsExtra::default()
                })
            }),
        };
        self.reg.all.insert(id);
        if let Some(bits) = shared_deflate {
            self.reg.no_context_takeover.insert(id, bits);
        }
        if let Some(p) = sp {
            self.reg.subprotocols.entry(p).or_default().insert(id);
        }
        if let Some(l) = self.http.log() {
            l.handshake(cx, peer, id, req.path(), Ok(subprotocol));
        }
        end_handshake_deadline(conn, cx);
        // The heartbeat and the idle limit take over the connection's deadline.
        self.arm_live(&st, cx);
        *conn = HttpConn::Ws(Box::new(st));
        if let HttpConn::Ws(st) = conn {
            let mut ws = WsCtx {
                cx,
                st,
                reg: &mut self.reg,
                out: &mut self.out,
            };
            self.handler.on_open(&mut ws);
            // Frames that came with the request are handled now, and their answers leave in
            // one send with the 101: a connection's out-queue then never needs room for two.
            if let Some(rest) = data.get_mut(used..).filter(|r| !r.is_empty())
                && !cx.is_closing()
                && !cx.is_reading_paused()
            {
                return used + self.frames(st, cx, rest);
            }
        }
        self.flush(cx);
        used
    }

    /// Hand the connection to the HTTP plugin; `data` (the first request) is not yet consumed.
    fn hand_to_http(
        &mut self,
        conn: &mut HttpConn,
        cx: &mut ConnCtx<'_>,
        data: &mut [u8],
    ) -> usize {
        end_handshake_deadline(conn, cx);
        let mut st = self.http.new_conn(cx);
        let used = self.http.on_data(&mut st, cx, data);
        *conn = HttpConn::Plain(st);
        used
    }

    /// A plain-HTTP connection closed: log it, then the HTTP plugin's close.
    fn close_plain(&mut self, st: HttpState, cx: &mut CoreCtx<'_>, reason: CloseReason) {
        if let Some(l) = self.http.log() {
            l.disconnect(cx, st.id());
        }
        self.http.on_close(st, cx, reason);
    }

    fn refuse(&mut self, cx: &mut ConnCtx<'_>, status: u16, consumed: usize) -> usize {
        let _ = write_error_response(status, &[], &mut self.out);
        self.flush(cx);
        cx.close();
        consumed
    }

    /// Set the connection's deadline for the earliest of its next heartbeat, its outstanding
    /// ping's timeout and its idle limit. Input moves the idle limit without touching the
    /// deadline: a deadline that comes too early finds nothing due and is set again.
    fn arm_live(&self, st: &WsState, cx: &mut ConnCtx<'_>) {
        let Some(live) = st.live.as_deref() else {
            return;
        };
        let mut due = u64::MAX;
        if let Some(idle) = self.cfg.idle_timeout {
            due = due.min(live.last_rx_ms.saturating_add(ceil_ms(idle)));
        }
        if self.cfg.heartbeat.is_some() {
            due = due.min(live.next_hb_ms);
            if live.pong_due_ms != 0 {
                due = due.min(live.pong_due_ms);
            }
        }
        if due != u64::MAX {
            let at = self.epoch + Duration::from_millis(due);
            cx.set_deadline(at.saturating_duration_since(cx.now()));
        }
    }

    /// The connection's deadline fired: close it if its ping went unanswered or it was quiet
    /// past the idle limit, send a heartbeat if one is due, and set the next deadline.
    fn live_deadline(&mut self, st: &mut WsState, cx: &mut ConnCtx<'_>) {
        let Some(live) = st.live.as_deref_mut() else {
            return;
        };
        let now_ms = self.floor_ms(cx.now());
        if live.pong_due_ms != 0 && now_ms >= live.pong_due_ms {
            return self.fail(
                st,
                cx,
                WsFailure::HeartbeatTimeout,
                CloseCode::GOING_AWAY,
                "heartbeat timeout",
            );
        }
        if let Some(idle) = self.cfg.idle_timeout
            && now_ms >= live.last_rx_ms.saturating_add(ceil_ms(idle))
        {
            return self.fail(
                st,
                cx,
                WsFailure::IdleTimeout,
                CloseCode::GOING_AWAY,
                "idle timeout",
            );
        }
        if let Some(hb) = self.cfg.heartbeat
            && now_ms >= live.next_hb_ms
        {
            let interval = ceil_ms(hb.interval);
            // Input since the heartbeat that was due an interval ago (or since the open).
            let heard = live.last_rx_ms > live.next_hb_ms.saturating_sub(interval);
            live.next_hb_ms = now_ms.saturating_add(interval);
            if st.ws.state() == State::Open && !(hb.only_if_idle && heard) {
                let custom = {
                    let mut ws = WsCtx {
                        cx,
                        st,
                        reg: &mut self.reg,
                        out: &mut self.out,
                    };
                    self.handler.on_heartbeat(&mut ws)
                };
                if !custom {
                    let _ = st.ws.ping(b"", &mut self.out);
                    if let Some(live) = st.live.as_deref_mut()
                        && live.pong_due_ms == 0
                    {
                        live.pong_due_ms = now_ms.saturating_add(ceil_ms(hb.timeout)).max(1);
                    }
                }
                self.after_io(st, cx);
            }
        }
        self.arm_live(st, cx);
    }

    /// Frames of an open WebSocket.
    fn frames(&mut self, st: &mut WsState, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let now = cx.now();
        if let Some(live) = st.live.as_deref_mut() {
            let only_if_idle = self.cfg.heartbeat.is_some_and(|hb| hb.only_if_idle);
            if self.cfg.idle_timeout.is_some() || only_if_idle {
                live.last_rx_ms = self.ms_since_epoch(now);
            }
            // In only-if-idle mode any input is proof of life: it also answers an outstanding
            // ping.
            if only_if_idle {
                live.pong_due_ms = 0;
            }
        }
        let mut start = 0;
        while let Some(buf) = data.get_mut(start..) {
            let at = start;
            let base = buf.as_ptr() as usize;
            let r = match st.ws.handle_read(now, buf) {
                Ok(r) => r,
                Err(e) => {
                    let mut ws = WsCtx {
                        cx,
                        st,
                        reg: &mut self.reg,
                        out: &mut self.out,
                    };
                    self.handler.on_error(&mut ws, WsFailure::Protocol(e));
                    start = data.len();
                    break;
                }
            };
            start += r.consumed;
            let Some(ev) = r.event else {
                // An incomplete frame: tell the runtime how much input it needs, so that room
                // for all of it is made at once. (Its header passed the codec's limits.)
                if let Some(need) = data.get(start..).and_then(frame_len) {
                    cx.reserve_input(need);
                }
                break;
            };
            if let Some(l) = self.http.log() {
                let peer = cx.peer_addr();
                l.ws_event(cx, peer, st.id, &ev);
            }
            let mut ws = WsCtx {
                cx,
                st,
                reg: &mut self.reg,
                out: &mut self.out,
            };
            match ev {
                WsEvent::Message { kind, data } => {
                    let frame = start - at;
                    let off = match &data {
                        Cow::Borrowed(p)
                            if p.len() >= SHARED_SEND_MIN && ws.cx.input_is_owned() =>
                        {
                            payload_offset(base, p, frame)
                        }
                        _ => None,
                    };
                    if let Some(off) = off {
                        // A large message in the connection's buffer: have the runtime hand over
                        // the frame's bytes, and deliver it from on_owned_data (next, before
                        // any more input is read).
                        let t = TakenMessage {
                            kind,
                            off,
                            len: data.len(),
                        };
                        self.taken = Some((ws.st.id, t));
                        ws.cx.take_input(frame);
                        start = at;
                        break;
                    }
                    ws.cx.count_messages(1);
                    match data {
                        Cow::Owned(v) if v.len() >= SHARED_SEND_MIN => {
                            let b = Bytes::from(v);
                            self.handler.on_message_bytes(&mut ws, kind, &b);
                            if let Some(v) = reclaim(b) {
                                ws.st.ws.recycle(v);
                            }
                        }
                        Cow::Owned(v) => {
                            self.handler.on_message(&mut ws, kind, &v);
                            ws.st.ws.recycle(v);
                        }
                        Cow::Borrowed(p) => self.handler.on_message(&mut ws, kind, p),
                    }
                }
                WsEvent::Fragment {
                    kind,
                    data,
                    fin,
                    received,
                } => {
                    if fin {
                        ws.cx.count_messages(1);
                    }
                    self.handler
                        .on_fragment(&mut ws, kind, &data, fin, received);
                }
                WsEvent::Ping(_) => {}
                WsEvent::Pong(p) => {
                    if let Some(live) = ws.st.live.as_deref_mut() {
                        live.pong_due_ms = 0;
                    }
                    self.handler.on_pong(&mut ws, p);
                }
                WsEvent::Close { code, reason } => {
                    ws.st.extra_mut().peer_close = Some((code, reason.to_owned()));
                }
            }
            if start >= data.len() {
                break;
            }
        }
        self.after_io(st, cx);
        start
    }

    /// A message whose frame [`WsServer::frames`] took from the input: deliver it as bytes.
    fn taken_message(&mut self, st: &mut WsState, cx: &mut ConnCtx<'_>, frame: Bytes) {
        let Some(t) = self
            .taken
            .take()
            .filter(|(id, _)| *id == st.id)
            .map(|(_, t)| t)
        else {
            return;
        };
        let Some(end) = t.off.checked_add(t.len).filter(|&e| e <= frame.len()) else {
            return;
        };
        let payload = frame.slice(t.off..end);
        drop(frame);
        cx.count_messages(1);
        let mut ws = WsCtx {
            cx,
            st,
            reg: &mut self.reg,
            out: &mut self.out,
        };
        self.handler.on_message_bytes(&mut ws, t.kind, &payload);
        self.after_io(st, cx);
    }

    /// Flush what the codec queued; arm its close timer; close TCP once the handshake is over.
    fn after_io(&mut self, st: &mut WsState, cx: &mut ConnCtx<'_>) {
        st.ws.poll_transmit(&mut self.out);
        self.flush(cx);
        if st.ws.is_closed() {
            cx.close();
        } else if !st.close_timer()
            && let Some(t) = st.ws.poll_timeout()
        {
            st.extra_mut().close_timer = true;
            cx.set_timer(t.saturating_duration_since(cx.now()), T_CLOSE);
        }
    }

    fn fail(
        &mut self,
        st: &mut WsState,
        cx: &mut ConnCtx<'_>,
        why: WsFailure,
        code: CloseCode,
        reason: &str,
    ) {
        {
            let mut ws = WsCtx {
                cx,
                st,
                reg: &mut self.reg,
                out: &mut self.out,
            };
            self.handler.on_error(&mut ws, why);
        }
        if st.ws.state() == State::Open {
            let _ = st.ws.close(cx.now(), code, reason, &mut self.out);
        }
        self.after_io(st, cx);
    }

    fn deliver_broadcast(&mut self, cx: &mut CoreCtx<'_>, m: &BroadcastMsg) {
        let targets: Vec<ConnId> = match &m.b.target {
            Target::All => self.reg.all.ids(cx),
            Target::Channel(c) => self
                .reg
                .channels
                .get(c.as_str())
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
            Target::Subprotocol(p) => self
                .reg
                .subprotocols
                .get(p.as_str())
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
        };
        let level = self.cfg.codec.deflate.level;
        let threshold = self.cfg.codec.deflate.compress_threshold;
        let mut compressed: Vec<(u8, Option<Bytes>)> = Vec::new();
        for id in targets {
            if m.b.include.as_ref().is_some_and(|inc| !inc.contains(&id))
                || m.b.exclude.contains(&id)
            {
                continue;
            }
            let frame = match self.reg.no_context_takeover.get(&id).copied() {
                Some(bits) if m.b.payload.len() >= threshold => {
                    let slot = match compressed.iter().position(|(b, _)| *b == bits) {
                        Some(i) => i,
                        None => {
                            let z = ringwire_ws::deflate::compress_standalone(
                                &m.b.payload,
                                bits,
                                level,
                            )
                            .ok()
                            .map(|z| encode_frame(m.b.kind, &Bytes::from(z), true));
                            compressed.push((bits, z));
                            compressed.len() - 1
                        }
                    };
                    compressed
                        .get(slot)
                        .and_then(|(_, z)| z.clone())
                        .unwrap_or_else(|| m.frame.clone())
                }
                _ => m.frame.clone(),
            };
            if cx.is_open(id) && cx.send_to(id, frame).is_err() {
                cx.abort_conn(id);
            }
        }
    }
}

impl<H: WsHandler> Plugin for WsServer<H> {
    type Conn = HttpConn;

    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<HttpConn> {
        if cx.is_outgoing() {
            // The upstream of a forwarded HTTP request (crate::http::forward).
            return self.http.on_open(cx).map(HttpConn::Plain);
        }
        let (peer, id) = (cx.peer_addr(), cx.id());
        if let Some(l) = self.http.log() {
            l.connect(cx, peer, id);
        }
        cx.set_deadline(self.cfg.handshake_timeout);
        Some(HttpConn::Handshake(id))
    }

    fn on_data(&mut self, conn: &mut HttpConn, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        match conn {
            HttpConn::Handshake(..) => self.handshake(conn, cx, data),
            HttpConn::Plain(st) => self.http.on_data(st, cx, data),
            HttpConn::Ws(st) => self.frames(st, cx, data),
        }
    }

    fn on_owned_data(&mut self, conn: &mut HttpConn, cx: &mut ConnCtx<'_>, data: Bytes) {
        if let HttpConn::Ws(st) = conn {
            self.taken_message(st, cx, data);
        }
    }

    fn on_read_closed(&mut self, conn: &mut HttpConn, cx: &mut ConnCtx<'_>) {
        if let HttpConn::Plain(st) = conn {
            return self.http.on_read_closed(st, cx);
        }
        if let HttpConn::Ws(st) = conn
            && st.ws.state() == State::Open
        {
            // TCP FIN without a Close frame: abnormal closure (1006).
            st.extra_mut()
                .peer_close
                .get_or_insert_with(|| (Some(CloseCode::ABNORMAL), String::new()));
        }
        cx.close();
    }

    fn on_deadline(&mut self, conn: &mut HttpConn, cx: &mut ConnCtx<'_>) {
        match conn {
            HttpConn::Handshake(_) => {
                // Slowloris: no complete request in time.
                let _ = write_error_response(408, &[], &mut self.out);
                self.flush(cx);
                cx.close();
            }
            HttpConn::Plain(st) => self.http.on_deadline(st, cx),
            HttpConn::Ws(st) => self.live_deadline(st, cx),
        }
    }

    fn on_timer(&mut self, conn: &mut HttpConn, cx: &mut ConnCtx<'_>, token: u64) {
        if let HttpConn::Plain(st) = conn {
            return self.http.on_timer(st, cx, token);
        }
        if let HttpConn::Ws(st) = conn
            && token == T_CLOSE
        {
            st.extra_mut().close_timer = false;
            st.ws.handle_timeout(cx.now());
            self.after_io(st, cx);
        }
    }

    fn on_drained(&mut self, conn: &mut HttpConn, cx: &mut ConnCtx<'_>) {
        if let HttpConn::Plain(st) = conn {
            self.http.on_drained(st, cx);
        }
    }

    fn on_message(&mut self, cx: &mut CoreCtx<'_>, msg: &BusMessage) {
        let decoded;
        let m = match msg.tag {
            TAG_BROADCAST => msg
                .extra
                .as_ref()
                .and_then(|e| e.downcast_ref::<BroadcastMsg>()),
            TAG_PUBLISH => {
                decoded = decode_publication(&msg.data);
                decoded.as_ref()
            }
            _ => return self.http.on_message(cx, msg),
        };
        if let Some(m) = m {
            self.deliver_broadcast(cx, m);
            self.http.deliver_broadcast(cx, m);
        }
    }

    fn on_connect_error(&mut self, cx: &mut CoreCtx<'_>, id: ConnId, err: std::io::Error) {
        self.http.on_connect_error(cx, id, err);
    }

    fn on_close(&mut self, conn: HttpConn, cx: &mut CoreCtx<'_>, reason: CloseReason) {
        if let HttpConn::Plain(st) = conn {
            if st.is_upstream() {
                return self.http.on_close(st, cx, reason);
            }
            return self.close_plain(st, cx, reason);
        }
        if let Some(l) = self.http.log() {
            let id = match &conn {
                HttpConn::Handshake(id) => *id,
                HttpConn::Plain(st) => st.id(),
                HttpConn::Ws(st) => st.id,
            };
            l.disconnect(cx, id);
        }
        if let HttpConn::Plain(st) = conn {
            return self.http.on_close(st, cx, reason);
        }
        if let HttpConn::Ws(st) = conn {
            self.reg.all.remove(st.id);
            self.reg.no_context_takeover.remove(&st.id);
            for c in st.channels() {
                self.reg.leave(c, st.id);
            }
            if let Some(p) = st.subprotocol()
                && let Some(set) = self.reg.subprotocols.get_mut(p)
            {
                set.remove(&st.id);
                if set.is_empty() {
                    self.reg.subprotocols.remove(p);
                }
            }
            let (code, reason) = match st.peer_close() {
                Some((code, reason)) => (code.unwrap_or(CloseCode::NO_STATUS), reason.as_str()),
                None => (CloseCode::ABNORMAL, ""),
            };
            let mut core = WsCore { cx, reg: &self.reg };
            self.handler.on_close(&mut core, st.id, code, reason);
        }
    }

    fn on_core_timer(&mut self, cx: &mut CoreCtx<'_>, token: u64) {
        self.http.on_core_timer(cx, token);
    }

    fn on_stop(&mut self, cx: &mut CoreCtx<'_>) {
        self.http.on_stop(cx);
        // Going away: every WebSocket gets a Close 1001 before the runtime closes TCP.
        let frame = {
            let mut v = Vec::with_capacity(4);
            let h = FrameHeader {
                fin: true,
                rsv1: false,
                rsv2: false,
                rsv3: false,
                opcode: OpCode::Close,
                mask: None,
                payload_len: 2,
            };
            h.write_to(&mut v);
            v.extend_from_slice(&CloseCode::GOING_AWAY.0.to_be_bytes());
            Bytes::from(v)
        };
        for id in self.reg.all.ids(cx) {
            let _ = cx.send_to(id, frame.clone());
        }
    }
}

/// The default handler of `ringwire serve`: echoes every message on every path.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoHandler;

impl WsHandler for EchoHandler {
    fn on_message(&mut self, ws: &mut WsCtx<'_, '_>, kind: MessageKind, data: &[u8]) {
        // A slow reader gets its connection closed by the runtime's limit, not an unbounded queue.
        let _ = ws.send(kind, data);
    }
    fn on_message_bytes(&mut self, ws: &mut WsCtx<'_, '_>, kind: MessageKind, data: &Bytes) {
        // A large message goes back out without a copy.
        let _ = ws.send_bytes(kind, data.clone());
    }
}

/// The path on which [`ServeHandler`] relays every message to every connection on that path.
pub const BROADCAST_PATH: &str = "/broadcast";

/// The channel [`ServeHandler`] relays [`BROADCAST_PATH`] messages on: SSE clients of
/// `ringwire serve` join it with `GET /events?channel=broadcast` and get every text message.
pub const BROADCAST_CHANNEL: &str = "broadcast";

/// The handler of `ringwire serve`: echoes every message on every path, except on
/// [`BROADCAST_PATH`], where every message goes (as a broadcast to [`BROADCAST_CHANNEL`], on
/// every core) to every connection on that path, the sender included, and (text only) to the
/// channel's SSE subscribers. `ringwire-load broadcast` measures fan-out delivery latency
/// with it.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServeHandler {
    /// The upgrade being handled asked for [`BROADCAST_PATH`] (`on_open` follows `on_upgrade`
    /// of the same connection at once; every upgrade sets it anew).
    joining: bool,
}

impl WsHandler for ServeHandler {
    fn on_upgrade(&mut self, req: &WsRequest<'_>) -> Result<(), u16> {
        self.joining = req.path() == BROADCAST_PATH;
        Ok(())
    }
    fn on_open(&mut self, ws: &mut WsCtx<'_, '_>) {
        if std::mem::take(&mut self.joining) {
            ws.subscribe(BROADCAST_CHANNEL);
        }
    }
    fn on_message(&mut self, ws: &mut WsCtx<'_, '_>, kind: MessageKind, data: &[u8]) {
        if ws.channels().next().is_some() {
            ws.broadcast(Broadcast::to_channel(
                BROADCAST_CHANNEL,
                kind,
                Bytes::copy_from_slice(data),
            ));
        } else {
            let _ = ws.send(kind, data);
        }
    }
    fn on_message_bytes(&mut self, ws: &mut WsCtx<'_, '_>, kind: MessageKind, data: &Bytes) {
        if ws.channels().next().is_some() {
            ws.broadcast(Broadcast::to_channel(BROADCAST_CHANNEL, kind, data.clone()));
        } else {
            let _ = ws.send_bytes(kind, data.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every open WebSocket pays for these (perf/README.md, idle_memory): the boxed state
    /// stays at 72 bytes (an 80-byte malloc chunk), the plugin's slot at 16.
    #[test]
    fn per_connection_state_stays_small() {
        assert!(std::mem::size_of::<super::WsState>() <= 72);
        assert!(std::mem::size_of::<super::HttpConn>() <= 16);
        assert!(std::mem::size_of::<Option<crate::serve::RouterConn>>() <= 16);
    }
}
