//! Server-Sent Events (WHATWG HTML §9.2): `text/event-stream` responses held open.
//!
//! An [`SseEndpoint`] names a stream. A client that connects gets `retry:` (if set), the
//! endpoint's opening events (given `Last-Event-ID` so it can resume), then, for as long as it
//! stays: the endpoint's periodic event ([`SseEndpoint::tick`]), heartbeat comments, and every
//! event [`publish`]ed to the stream from any core (encoded once; the same bytes go to every
//! subscriber).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringwire_runtime::{BusMessage, ConnCtx, ConnId, CoreCtx};

use super::{Body, HttpServer, HttpState, Request, Response, T_SSE_HEARTBEAT, T_SSE_TICK};

/// The bus tag of SSE publications: [`publish`] from plugin code, or
/// `ServerHandle::broadcast(TAG_SSE, publication(stream, &event))` from any thread.
pub const TAG_SSE: u64 = 0x5353_4531; // "SSE1"

/// The bus payload that publishes `ev` to `stream` (the stream name, `\n`, the event's wire
/// form), for `ServerHandle::broadcast(TAG_SSE, ..)`.
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
    /// The stream's name, for [`publish`].
    pub stream: String,
    /// `retry:` sent first, milliseconds.
    pub retry: Option<u32>,
    /// Send a `:` comment after this long without an event (keeps proxies from timing out).
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
    /// The demo stream of `ringwire serve`: the server time every second, ids counting up.
    pub fn clock() -> Self {
        SseEndpoint::new("clock").with_tick(Duration::from_secs(1), |seq| {
            SseEvent::data(httpdate::fmt_http_date(std::time::SystemTime::now()))
                .with_id(seq.to_string())
                .with_event("time")
        })
    }
}

/// The body of an SSE response: what is sent when its head goes out.
pub struct SseBody {
    pub(crate) initial: Vec<u8>,
}

/// Per-connection SSE state.
pub(crate) struct SseConn {
    pub(crate) stream: Arc<str>,
    ep: Arc<SseEndpoint>,
    seq: u64,
    last_tx: Instant,
    chunked: bool,
    registered: bool,
}

/// Open the stream for `req` (called when its request is complete).
pub(crate) fn open(
    st: &mut HttpState,
    cx: &mut ConnCtx<'_>,
    req: &Request,
    ep: Arc<SseEndpoint>,
) -> Response {
    if st.sse.is_some() || req.method() == "HEAD" {
        // One stream per connection; HEAD gets the head only.
        let r = Response::status(if req.method() == "HEAD" { 200 } else { 409 });
        return r.with_header("Content-Type", "text/event-stream");
    }
    let last = req.header_str("last-event-id").map(str::trim);
    let seq = last
        .and_then(|l| l.parse::<u64>().ok())
        .map_or(0, |n| n.saturating_add(1));
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
    if let Some((every, _)) = &ep.tick {
        cx.set_timer(*every, T_SSE_TICK);
    }
    if let Some(hb) = ep.heartbeat {
        cx.set_timer(hb, T_SSE_HEARTBEAT);
    }
    st.sse = Some(SseConn {
        stream: Arc::from(ep.stream.as_str()),
        ep,
        seq,
        last_tx: cx.now(),
        chunked: !req.is_http10(),
        registered: false,
    });
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
fn live(st: &HttpState) -> bool {
    matches!(st.queue.front(), Some(o) if o.started && matches!(o.resp.body, Body::Sse(_)))
}

/// Called by the pump once the SSE head went out.
pub(crate) fn register(server: &mut HttpServer, st: &mut HttpState) {
    if let Some(s) = st.sse.as_mut()
        && !s.registered
    {
        s.registered = true;
        server
            .streams
            .entry(s.stream.clone())
            .or_default()
            .insert(st.id, s.chunked);
    }
}

pub(crate) fn leave(server: &mut HttpServer, stream: &str, id: ConnId) {
    if let Some(m) = server.streams.get_mut(stream) {
        m.remove(&id);
        if m.is_empty() {
            server.streams.remove(stream);
        }
    }
}

fn write_event(server: &mut HttpServer, st: &mut HttpState, cx: &mut ConnCtx<'_>, wire: &[u8]) {
    let _ = st.codec.write_body_chunk(wire, &mut server.out);
    server.flush(cx);
    if let Some(s) = st.sse.as_mut() {
        s.last_tx = cx.now();
    }
}

pub(crate) fn on_timer(
    server: &mut HttpServer,
    st: &mut HttpState,
    cx: &mut ConnCtx<'_>,
    token: u64,
) {
    let is_live = live(st);
    let Some(s) = st.sse.as_mut() else { return };
    let ep = s.ep.clone();
    let now = cx.now();
    if token == T_SSE_TICK {
        let Some((every, f)) = &ep.tick else { return };
        cx.set_timer(*every, T_SSE_TICK);
        if !is_live {
            return;
        }
        let seq = s.seq;
        s.seq = s.seq.wrapping_add(1);
        let mut wire = Vec::new();
        if let Ok(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seq))) {
            e.encode(&mut wire);
            write_event(server, st, cx, &wire);
        }
    } else if token == T_SSE_HEARTBEAT {
        let Some(hb) = ep.heartbeat else { return };
        let quiet = now.saturating_duration_since(s.last_tx);
        if quiet >= hb {
            cx.set_timer(hb, T_SSE_HEARTBEAT);
            if is_live {
                write_event(server, st, cx, b": heartbeat\n\n");
            }
        } else {
            cx.set_timer(hb - quiet, T_SSE_HEARTBEAT);
        }
    }
}

/// What a publication carries: the event encoded once, bare and chunk-framed.
struct Published {
    stream: String,
    bare: Bytes,
    chunked: Bytes,
}

/// Publish an event to every subscriber of `stream` on every core. Returns how many cores
/// were reached.
pub fn publish(cx: &mut CoreCtx<'_>, stream: &str, ev: &SseEvent) -> usize {
    let mut bare = Vec::new();
    ev.encode(&mut bare);
    let mut chunked = format!("{:x}\r\n", bare.len()).into_bytes();
    chunked.extend_from_slice(&bare);
    chunked.extend_from_slice(b"\r\n");
    let bare = Bytes::from(bare);
    let msg = BusMessage {
        from: cx.core(),
        tag: TAG_SSE,
        data: bare.clone(),
        extra: Some(Arc::new(Published {
            stream: stream.to_owned(),
            bare,
            chunked: Bytes::from(chunked),
        })),
    };
    cx.broadcast_message(msg)
}

pub(crate) fn on_message(server: &mut HttpServer, cx: &mut CoreCtx<'_>, msg: &BusMessage) {
    if msg.tag != TAG_SSE {
        return;
    }
    let owned;
    let p = match msg.extra.as_ref() {
        Some(e) => match e.downcast_ref::<Published>() {
            Some(p) => p,
            None => return,
        },
        None => {
            // From `publication`: "stream\n" + the event.
            let Some(nl) = msg.data.iter().position(|&b| b == b'\n') else {
                return;
            };
            let bare = msg.data.slice(nl + 1..);
            let mut chunked = format!("{:x}\r\n", bare.len()).into_bytes();
            chunked.extend_from_slice(&bare);
            chunked.extend_from_slice(b"\r\n");
            owned = Published {
                stream: String::from_utf8_lossy(msg.data.get(..nl).unwrap_or_default()).into(),
                bare,
                chunked: Bytes::from(chunked),
            };
            &owned
        }
    };
    if p.bare.is_empty() {
        return;
    }
    if let Some(subs) = server.streams.get(p.stream.as_str()) {
        for (id, chunked) in subs {
            let b = if *chunked { &p.chunked } else { &p.bare };
            let _ = cx.send_to(*id, b.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
