//! Forwarding (a reverse proxy, the suite's "Forward HTTP Requests"): requests whose path
//! starts with a configured prefix go to an upstream HTTP/1.1 server, streamed both ways.
//!
//! Per forwarded request: one outgoing connection ([`CoreCtx::connect`], or `connect_tls`
//! for `https://` upstreams) on the client's core; no keep-alive pool. The request line is
//! rewritten (`prefix` replaced by the upstream's base path), hop-by-hop fields are dropped
//! (Connection and the fields it names, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding,
//! Upgrade, Expect), `Host` becomes the upstream's, and `X-Forwarded-For` (appended),
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and `Via` are added. The body is re-framed as it
//! arrives (Content-Length kept, chunked re-chunked). The response head is parsed by
//! [`ringwire_http1::ResponseReader`]; its fields, minus hop-by-hop ones, go to the client,
//! the body re-framed by the client's codec through a detached
//! [`ringwire_http1::ResponseWriter`], so pipelined requests keep their order.
//!
//! Backpressure: a side stops reading when the other side's out-queue holds more than
//! [`FORWARD_HIGH_WATER`] bytes, and is resumed by the other side's drain
//! ([`CoreCtx::resume_reading_of`] from its `on_drained`). A slow backstop timer ([`POLL`])
//! re-checks a paused side, so a missed drain cannot leave it paused for good.
//!
//! Failures: connect refused or failed → 502, connect timeout or no upstream byte for
//! [`HttpConfig::forward_timeout`](super::HttpConfig::forward_timeout) → 504, a malformed
//! or truncated upstream response → 502 if nothing was sent yet, else the client connection
//! is aborted (its framing cannot be kept). A client that goes away aborts its upstreams.
//!
//! Not done: WebSocket upgrades under a forward prefix (the WebSocket plugin takes upgrades
//! first), upstream keep-alive pooling, trailers (dropped), DNS at request time (upstream
//! names are resolved once, at configuration).

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use ringwire_http1::{
    BodyKind, BodyLen, ResponseBody, ResponseEvent, ResponseLimits, ResponseReader, ResponseWriter,
    StatusCode,
};
use ringwire_runtime::{ConnCtx, ConnId, CoreCtx};

use super::{HttpServer, Request};

/// Default [`HttpConfig::forward_timeout`](super::HttpConfig::forward_timeout): 30 s.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// A side stops reading while the other side has more than this queued (1 MiB).
pub const FORWARD_HIGH_WATER: usize = 0x10_0000;
/// How often a paused side re-checks whether it may read again, besides being resumed by the
/// other side's drain.
pub const POLL: Duration = Duration::from_millis(50);

pub(crate) const T_FWD_POLL: u64 = 0x4854_0010;
pub(crate) const T_FWD_TIMEOUT: u64 = 0x4854_0011;

/// Where forwarded requests go.
#[derive(Clone)]
pub struct Upstream {
    /// The resolved address.
    pub addr: SocketAddr,
    /// `host[:port]` as written in the URL: the upstream request's `Host`.
    pub authority: String,
    /// The base path that replaces the prefix (`""` or `/base`, no trailing `/`).
    pub base: String,
    /// TLS client settings and server name, for `https://` upstreams.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field("authority", &self.authority)
            .field("base", &self.base)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Upstream {
    /// Parse `http://HOST:PORT[/base]` or `https://...` (the name is resolved now, once).
    /// `ca`: trust anchors for `https://` (a PEM file) instead of the webpki roots.
    pub fn parse(url: &str, ca: Option<&Path>) -> Result<Upstream, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!("{url}: not an http:// or https:// URL"));
        };
        let (authority, base) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let base = base.trim_end_matches('/').to_owned();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
                Ok(p) => (h, p),
                Err(_) => return Err(format!("{url}: bad port")),
            },
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host_bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (host_bare, port)
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: no address"))?;
        let tls = if tls {
            let roots = match ca {
                Some(p) => ringwire_runtime::tls::ClientRoots::CaFile(p.to_path_buf()),
                None => ringwire_runtime::tls::ClientRoots::WebPki,
            };
            let cfg =
                ringwire_runtime::tls::client_config(&ringwire_runtime::tls::TlsClientOptions {
                    roots,
                    ..Default::default()
                })
                .map_err(|e| format!("{url}: {e}"))?;
            Some((cfg, host_bare.to_owned()))
        } else {
            None
        };
        Ok(Upstream {
            addr,
            authority: authority.to_owned(),
            base,
            tls,
        })
    }
}

/// One forwarding rule: requests under `prefix` go to `upstream`.
#[derive(Clone, Debug)]
pub struct ForwardRule {
    /// A path prefix such as `/api/`.
    pub prefix: String,
    /// Where they go.
    pub upstream: Upstream,
}

impl ForwardRule {
    /// Parse `PREFIX=URL` (the `--forward` flag and the `forward` TOML key).
    pub fn parse(spec: &str, ca: Option<&Path>) -> Result<ForwardRule, String> {
        let (prefix, url) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec}: expected PREFIX=http://HOST:PORT[/base]"))?;
        if !prefix.starts_with('/') {
            return Err(format!("{spec}: the prefix must start with /"));
        }
        Ok(ForwardRule {
            prefix: prefix.to_owned(),
            upstream: Upstream::parse(url, ca)?,
        })
    }
}

/// Hop-by-hop fields (RFC 9110 §7.6.1), plus the framing fields we set ourselves.
fn is_hop_by_hop(name: &str, listed: &[&str]) -> bool {
    const HOP: [&str; 11] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "expect",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || listed.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The field names a `Connection` header lists (RFC 9110 §7.6.1: "a proxy or gateway MUST
/// parse a received Connection header field before a message is forwarded and, for each
/// connection-option in this field, remove any header or trailer field(s) from the message
/// with the same name").
fn connection_options<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<String> {
    let mut v = Vec::new();
    for (n, val) in headers {
        if n.eq_ignore_ascii_case("connection") {
            for t in String::from_utf8_lossy(val).split(',') {
                let t = t.trim();
                if !t.is_empty() {
                    v.push(t.to_ascii_lowercase());
                }
            }
        }
    }
    v
}

/// The upstream request head.
pub(crate) fn request_head(
    rule: &ForwardRule,
    req: &Request,
    body: BodyKind,
    client_tls: bool,
) -> Vec<u8> {
    let u = &rule.upstream;
    let rest = req.path().get(rule.prefix.len()..).unwrap_or_default();
    let mut path = u.base.clone();
    if !rest.starts_with('/') {
        path.push('/');
    }
    path.push_str(rest);
    let mut h = Vec::with_capacity(512);
    h.extend_from_slice(req.method().as_bytes());
    h.push(b' ');
    h.extend_from_slice(path.as_bytes());
    if let Some(q) = req.query() {
        h.push(b'?');
        h.extend_from_slice(q.as_bytes());
    }
    h.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    h.extend_from_slice(u.authority.as_bytes());
    h.extend_from_slice(b"\r\n");
    let listed = connection_options(req.headers());
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    let mut xff: Option<&[u8]> = None;
    let mut via: Option<&[u8]> = None;
    for (n, v) in req.headers() {
        if n.eq_ignore_ascii_case("x-forwarded-for") {
            xff = Some(v);
            continue;
        }
        if n.eq_ignore_ascii_case("via") {
            via = Some(v);
            continue;
        }
        if n.eq_ignore_ascii_case("host")
            || n.eq_ignore_ascii_case("x-forwarded-proto")
            || n.eq_ignore_ascii_case("x-forwarded-host")
            || is_hop_by_hop(n, &listed)
        {
            continue;
        }
        field(&mut h, n, v);
    }
    let ip = req.peer_addr().ip().to_string();
    let xff_v = match xff {
        Some(prev) => [prev, b", ", ip.as_bytes()].concat(),
        None => ip.into_bytes(),
    };
    field(&mut h, "X-Forwarded-For", &xff_v);
    field(
        &mut h,
        "X-Forwarded-Proto",
        if client_tls { b"https" } else { b"http" },
    );
    if let Some(host) = req.header("host") {
        field(&mut h, "X-Forwarded-Host", host);
    }
    let via_v = match via {
        Some(prev) => [prev, b", 1.1 ringwire"].concat(),
        None => b"1.1 ringwire".to_vec(),
    };
    field(&mut h, "Via", &via_v);
    match body {
        BodyKind::None => {}
        BodyKind::ContentLength(n) => field(&mut h, "Content-Length", n.to_string().as_bytes()),
        BodyKind::Chunked => field(&mut h, "Transfer-Encoding", b"chunked"),
    }
    h.extend_from_slice(b"Connection: close\r\n\r\n");
    h
}

fn field(h: &mut Vec<u8>, n: &str, v: &[u8]) {
    h.extend_from_slice(n.as_bytes());
    h.extend_from_slice(b": ");
    h.extend_from_slice(v);
    h.extend_from_slice(b"\r\n");
}

/// The response head as the client gets it.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    len: BodyLen,
}

/// One forwarded request, keyed by its upstream connection.
pub(crate) struct Proxy {
    client: ConnId,
    up_open: bool,
    /// Bytes for the upstream before it opened.
    req_pending: Vec<u8>,
    req_chunked: bool,
    reader: ResponseReader,
    /// Raw upstream bytes not yet parsed (a partial head).
    rx: Vec<u8>,
    head: Option<Head>,
    body: Vec<u8>,
    done: bool,
    error: Option<u16>,
    writer: Option<ResponseWriter>,
    last_rx: Instant,
    /// The client's reading is paused until this upstream's queue drains.
    client_paused: bool,
    /// This upstream's reading is paused until the client's queue drains.
    up_paused: bool,
}

/// What a step of a forwarded response did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Waiting for more from the upstream.
    Wait,
    /// The response is complete: attach the writer.
    Finished,
    /// The upstream failed after the head went out: the client connection must be aborted.
    Broken,
}

impl Proxy {
    /// Write what is ready through the writer (if lent) into `out`.
    fn step(&mut self, now: SystemTime, out: &mut Vec<u8>) -> Step {
        let Some(w) = self.writer.as_mut() else {
            return Step::Wait;
        };
        if w.is_finished() {
            return Step::Finished;
        }
        if let Some(code) = self.error {
            if w.head_written() {
                return Step::Broken;
            }
            let reason = StatusCode(code).reason_phrase();
            let body = format!("{code} {reason}\n");
            let hs = [("Content-Type", "text/plain; charset=utf-8")];
            let len = BodyLen::Known(body.len() as u64);
            if w.write_head(StatusCode(code), &hs, len, now, out).is_err()
                || w.write_body_chunk(body.as_bytes(), out).is_err()
                || w.finish(out).is_err()
            {
                return Step::Broken;
            }
            return Step::Finished;
        }
        if !w.head_written() {
            let Some(h) = self.head.as_ref() else {
                return Step::Wait;
            };
            let hs: Vec<(&str, &str)> = h
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            if w.write_head(StatusCode(h.status), &hs, h.len, now, out)
                .is_err()
            {
                return Step::Broken;
            }
        }
        if !self.body.is_empty() {
            if w.write_body_chunk(&self.body, out).is_err() {
                return Step::Broken;
            }
            self.body.clear();
            if self.body.capacity() > FORWARD_HIGH_WATER {
                self.body = Vec::new();
            }
        }
        if self.done {
            return if w.finish(out).is_ok() {
                Step::Finished
            } else {
                Step::Broken
            };
        }
        Step::Wait
    }

    /// Feed upstream bytes; `Err` on a malformed response.
    fn feed(&mut self, data: &[u8], now: SystemTime, out: &mut Vec<u8>) -> Result<(), ()> {
        let mut held = std::mem::take(&mut self.rx);
        let buf: &[u8] = if held.is_empty() {
            data
        } else {
            held.extend_from_slice(data);
            &held
        };
        let mut pos = 0;
        let mut result = Ok(());
        while !self.done {
            let rest = buf.get(pos..).unwrap_or_default();
            match self.reader.read(rest) {
                Ok((n, ev)) => {
                    pos += n;
                    match ev {
                        ResponseEvent::NeedMore => break,
                        ResponseEvent::Head(h) => {
                            let listed =
                                connection_options(h.headers.iter().map(|x| (x.name, x.value)));
                            let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
                            let mut headers: Vec<(String, String)> = h
                                .headers
                                .iter()
                                .filter(|x| !is_hop_by_hop(x.name, &listed))
                                .filter_map(|x| {
                                    let v = std::str::from_utf8(x.value).ok()?;
                                    Some((x.name.to_owned(), v.to_owned()))
                                })
                                .collect();
                            headers.push(("Via".into(), "1.1 ringwire".into()));
                            let len = match h.body {
                                ResponseBody::Length(n) => BodyLen::Known(n),
                                ResponseBody::Chunked | ResponseBody::UntilClose => {
                                    BodyLen::Chunked
                                }
                                ResponseBody::None => {
                                    // A HEAD answer or 304 keeps the upstream's Content-Length.
                                    let cl = h
                                        .headers
                                        .iter()
                                        .find(|x| x.name.eq_ignore_ascii_case("content-length"));
                                    match cl.and_then(|x| std::str::from_utf8(x.value).ok()) {
                                        Some(v) if h.status.0 != 204 => {
                                            v.parse().map_or(BodyLen::None, BodyLen::Known)
                                        }
                                        _ => BodyLen::None,
                                    }
                                }
                            };
                            self.head = Some(Head {
                                status: h.status.0,
                                headers,
                                len,
                            });
                        }
                        ResponseEvent::Data(d) => {
                            let direct = self.writer.as_ref().is_some_and(|w| w.head_written())
                                && self.body.is_empty();
                            if direct {
                                if let Some(w) = self.writer.as_mut()
                                    && w.write_body_chunk(d, out).is_err()
                                {
                                    result = Err(());
                                    break;
                                }
                            } else {
                                self.body.extend_from_slice(d);
                            }
                        }
                        ResponseEvent::End => self.done = true,
                    }
                }
                Err(_) => {
                    result = Err(());
                    break;
                }
            }
        }
        if result.is_ok() && !self.done {
            let rest = buf.get(pos..).unwrap_or_default();
            if !rest.is_empty() {
                self.rx = rest.to_vec();
            }
        }
        let _ = now;
        result
    }
}

/// The forwarded requests of one core.
#[derive(Default)]
pub(crate) struct Table {
    map: HashMap<ConnId, Proxy>,
}

impl HttpServer {
    /// Start forwarding `req` by `rule`: connect and queue the head. `None`: connect failed.
    pub(crate) fn forward_start(
        &mut self,
        cx: &mut ConnCtx<'_>,
        rule: usize,
        req: &Request,
        body: BodyKind,
    ) -> Option<ConnId> {
        let app = self.app.clone();
        let rule = app.cfg.forward.get(rule)?;
        let u = &rule.upstream;
        let id = match &u.tls {
            Some((cfg, name)) => cx.connect_tls(u.addr, cfg.clone(), name),
            None => cx.connect(u.addr),
        }
        .ok()?;
        let head = request_head(rule, req, body, cx.is_tls());
        self.fwd.map.insert(
            id,
            Proxy {
                client: cx.id(),
                up_open: false,
                req_pending: head,
                req_chunked: body == BodyKind::Chunked,
                reader: ResponseReader::new(ResponseLimits::default(), req.method() == "HEAD"),
                rx: Vec::new(),
                head: None,
                body: Vec::new(),
                done: false,
                error: None,
                writer: None,
                last_rx: cx.now(),
                client_paused: false,
                up_paused: false,
            },
        );
        Some(id)
    }

    /// A piece of the client's request body.
    pub(crate) fn forward_body(
        &mut self,
        st: &mut ForwardClient,
        cx: &mut ConnCtx<'_>,
        up: ConnId,
        piece: &[u8],
    ) {
        let Some(p) = self.fwd.map.get_mut(&up) else {
            return;
        };
        if p.error.is_some() {
            return;
        }
        let mut v = Vec::with_capacity(piece.len() + 16);
        if p.req_chunked {
            v.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            v.extend_from_slice(piece);
            v.extend_from_slice(b"\r\n");
        } else {
            v.extend_from_slice(piece);
        }
        let queued = if p.up_open {
            let _ = cx.send_to(up, Bytes::from(v));
            cx.buffered_of(up)
        } else {
            p.req_pending.extend_from_slice(&v);
            p.req_pending.len()
        };
        if queued > FORWARD_HIGH_WATER && !p.client_paused {
            p.client_paused = true;
            st.paused = true;
            cx.pause_reading();
            cx.set_timer(POLL, T_FWD_POLL);
        }
    }

    /// The client's request body ended.
    pub(crate) fn forward_end(&mut self, cx: &mut ConnCtx<'_>, up: ConnId) {
        let Some(p) = self.fwd.map.get_mut(&up) else {
            return;
        };
        if p.req_chunked && p.error.is_none() {
            if p.up_open {
                let _ = cx.send_to(up, &b"0\r\n\r\n"[..]);
            } else {
                p.req_pending.extend_from_slice(b"0\r\n\r\n");
            }
        }
    }

    /// The client's poll timer: resume reading once the upstream took its bytes.
    pub(crate) fn forward_client_poll(
        &mut self,
        st: &mut ForwardClient,
        cx: &mut ConnCtx<'_>,
        up: Option<ConnId>,
    ) {
        if !st.paused {
            return;
        }
        if let Some(p) = up.and_then(|u| self.fwd.map.get(&u))
            && !p.client_paused
        {
            // The upstream's drain resumed reading already.
            st.paused = false;
            return;
        }
        let queued = match up.and_then(|u| self.fwd.map.get(&u).map(|p| (u, p))) {
            Some((u, p)) if p.error.is_none() => {
                if p.up_open {
                    cx.buffered_of(u)
                } else {
                    p.req_pending.len()
                }
            }
            _ => 0,
        };
        if queued <= FORWARD_HIGH_WATER / 2 {
            st.paused = false;
            if let Some(p) = up.and_then(|u| self.fwd.map.get_mut(&u)) {
                p.client_paused = false;
            }
            cx.resume_reading();
        } else {
            cx.set_timer(POLL, T_FWD_POLL);
        }
    }

    /// The client's pump reached a forwarded response: lend the writer, write what is ready.
    pub(crate) fn forward_pump(
        &mut self,
        codec: &mut ringwire_http1::ServerConn,
        started: &mut bool,
        up: ConnId,
    ) -> Step {
        let Some(p) = self.fwd.map.get_mut(&up) else {
            return Step::Broken;
        };
        if !*started {
            *started = true;
            match codec.detach_response() {
                Ok(w) => p.writer = Some(w),
                Err(_) => return Step::Broken,
            }
        }
        let step = p.step(SystemTime::now(), &mut self.out);
        if step == Step::Finished
            && let Some(p) = self.fwd.map.remove(&up)
            && let Some(w) = p.writer
        {
            let _ = codec.attach_response(w, &mut self.out);
        }
        step
    }

    /// The client connection closed: drop its forwards and abort their upstreams.
    pub(crate) fn forward_client_closed(&mut self, cx: &mut CoreCtx<'_>, ups: &[ConnId]) {
        for up in ups {
            if self.fwd.map.remove(up).is_some() {
                cx.abort_conn(*up);
            }
        }
    }

    /// An upstream connection opened: send the head and what body arrived.
    pub(crate) fn forward_up_open(&mut self, cx: &mut ConnCtx<'_>) -> bool {
        let id = cx.id();
        let Some(p) = self.fwd.map.get_mut(&id) else {
            return false;
        };
        p.up_open = true;
        p.last_rx = cx.now();
        let pending = std::mem::take(&mut p.req_pending);
        let _ = cx.send(Bytes::from(pending));
        cx.set_timer(self.app.cfg.forward_timeout, T_FWD_TIMEOUT);
        true
    }

    /// Bytes from an upstream.
    pub(crate) fn forward_up_data(&mut self, cx: &mut ConnCtx<'_>, data: &[u8]) -> usize {
        let id = cx.id();
        let now = SystemTime::now();
        let mut out = std::mem::take(&mut self.out);
        let Some(p) = self.fwd.map.get_mut(&id) else {
            cx.abort();
            return data.len();
        };
        p.last_rx = cx.now();
        if p.feed(data, now, &mut out).is_err() {
            p.error = Some(502);
            cx.abort();
        }
        if p.done {
            cx.close();
        }
        self.up_flush(cx, id, out);
        if !cx.is_closing()
            && self.up_blocked(cx, id)
            && let Some(p) = self.fwd.map.get_mut(&id)
            && !p.up_paused
        {
            p.up_paused = true;
            cx.pause_reading();
            cx.set_timer(POLL, T_FWD_POLL);
        }
        data.len()
    }

    /// An upstream's out-queue drained (it took the client's body): resume the client.
    pub(crate) fn forward_up_drained(&mut self, cx: &mut ConnCtx<'_>) {
        let id = cx.id();
        if let Some(p) = self.fwd.map.get_mut(&id)
            && p.client_paused
        {
            p.client_paused = false;
            cx.resume_reading_of(p.client);
        }
    }

    /// The client's out-queue drained (after its pump wrote what was ready): resume its
    /// paused upstreams that are no longer blocked.
    pub(crate) fn forward_client_drained(&mut self, cx: &mut ConnCtx<'_>, ups: &[ConnId]) {
        for &up in ups {
            if self.fwd.map.get(&up).is_some_and(|p| p.up_paused) && !self.up_blocked(cx, up) {
                if let Some(p) = self.fwd.map.get_mut(&up) {
                    p.up_paused = false;
                }
                cx.resume_reading_of(up);
            }
        }
    }

    fn up_blocked(&self, cx: &ConnCtx<'_>, id: ConnId) -> bool {
        self.fwd.map.get(&id).is_some_and(|p| {
            if p.writer.is_some() {
                cx.buffered_of(p.client) > FORWARD_HIGH_WATER
            } else {
                p.body.len() > FORWARD_HIGH_WATER
            }
        })
    }

    /// Write what is ready for the client of upstream `id` (from the upstream's side).
    fn up_flush(&mut self, cx: &mut CoreCtx<'_>, id: ConnId, mut out: Vec<u8>) {
        let Some(p) = self.fwd.map.get_mut(&id) else {
            return;
        };
        let step = p.step(SystemTime::now(), &mut out);
        let client = p.client;
        let closes = p.writer.as_ref().is_some_and(ResponseWriter::closes);
        let had = !out.is_empty();
        if had {
            let _ = cx.send_to(client, Bytes::from(out));
        } else {
            self.out = out;
        }
        match step {
            Step::Broken => {
                self.fwd.map.remove(&id);
                cx.abort_conn(client);
            }
            // The client's on_drained attaches the writer; with nothing left to write (a
            // close-delimited body) no drain comes, and the connection ends here anyway.
            Step::Finished if !had && cx.buffered_of(client) == 0 && closes => {
                cx.close_conn(client);
            }
            _ => {}
        }
    }

    /// An upstream's poll or timeout timer.
    pub(crate) fn forward_up_timer(&mut self, cx: &mut ConnCtx<'_>, token: u64) {
        let id = cx.id();
        match token {
            T_FWD_POLL => {
                if !self.fwd.map.get(&id).is_some_and(|p| p.up_paused) {
                    return; // the client's drain resumed it already
                }
                let out = std::mem::take(&mut self.out);
                self.up_flush(cx, id, out);
                if self.up_blocked(cx, id) {
                    cx.set_timer(POLL, T_FWD_POLL);
                } else {
                    if let Some(p) = self.fwd.map.get_mut(&id) {
                        p.up_paused = false;
                    }
                    cx.resume_reading();
                }
            }
            T_FWD_TIMEOUT => {
                let limit = self.app.cfg.forward_timeout;
                let Some(p) = self.fwd.map.get_mut(&id) else {
                    return;
                };
                if p.done {
                    return;
                }
                let quiet = cx.now().saturating_duration_since(p.last_rx);
                if quiet < limit {
                    cx.set_timer(limit - quiet, T_FWD_TIMEOUT);
                    return;
                }
                p.error = Some(504);
                cx.abort();
                let out = std::mem::take(&mut self.out);
                self.up_flush(cx, id, out);
            }
            _ => {}
        }
    }

    /// The upstream sent FIN.
    pub(crate) fn forward_up_eof(&mut self, cx: &mut ConnCtx<'_>) {
        let id = cx.id();
        if let Some(p) = self.fwd.map.get_mut(&id) {
            let mut out = std::mem::take(&mut self.out);
            if !p.rx.is_empty() || p.reader.handle_eof().is_err() {
                if !p.done {
                    p.error = Some(502);
                }
            } else {
                p.done = true;
                let _ = p.feed(&[], SystemTime::now(), &mut out);
            }
            self.up_flush(cx, id, out);
        }
        cx.close();
    }

    /// The upstream connection closed (after FIN, abort or error).
    pub(crate) fn forward_up_closed(&mut self, cx: &mut CoreCtx<'_>, id: ConnId) {
        if let Some(p) = self.fwd.map.get_mut(&id) {
            if p.client_paused {
                p.client_paused = false;
                cx.resume_reading_of(p.client);
            }
            if !p.done && p.error.is_none() {
                p.error = Some(502);
            }
            let out = std::mem::take(&mut self.out);
            self.up_flush(cx, id, out);
        }
    }

    /// The connect failed or timed out.
    pub(crate) fn forward_connect_error(
        &mut self,
        cx: &mut CoreCtx<'_>,
        id: ConnId,
        err: &std::io::Error,
    ) {
        if let Some(p) = self.fwd.map.get_mut(&id) {
            p.error = Some(if err.kind() == std::io::ErrorKind::TimedOut {
                504
            } else {
                502
            });
            let out = std::mem::take(&mut self.out);
            self.up_flush(cx, id, out);
        }
    }
}

/// A client connection's forwarding state.
#[derive(Debug, Default)]
pub(crate) struct ForwardClient {
    /// Reading paused for an upstream's backpressure.
    pub(crate) paused: bool,
    /// Upstreams of this connection's forwarded requests still in the table.
    pub(crate) ups: Vec<ConnId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        let r = ForwardRule::parse("/api/=http://127.0.0.1:9000/base/", None).unwrap();
        assert_eq!(r.prefix, "/api/");
        assert_eq!(r.upstream.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(r.upstream.base, "/base");
        assert_eq!(r.upstream.authority, "127.0.0.1:9000");
        assert!(ForwardRule::parse("api=http://127.0.0.1:1", None).is_err());
        assert!(ForwardRule::parse("/a=ftp://x", None).is_err());
    }

    #[test]
    fn rewrites_the_head() {
        let r = ForwardRule::parse("/api/=http://127.0.0.1:9000/v1", None).unwrap();
        let req = Request::new(
            "POST",
            "/api/items?x=1",
            &[
                ("Host", "front.example"),
                ("Connection", "keep-alive, X-Secret"),
                ("X-Secret", "s"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("Upgrade", "h2c"),
                ("Proxy-Authorization", "Basic x"),
                ("X-Forwarded-For", "10.0.0.1"),
                ("Accept", "*/*"),
                ("Transfer-Encoding", "chunked"),
            ],
        );
        let h = String::from_utf8(request_head(&r, &req, BodyKind::Chunked, false)).unwrap();
        assert!(
            h.starts_with("POST /v1/items?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"),
            "{h}"
        );
        for gone in [
            "X-Secret",
            "Keep-Alive",
            "TE:",
            "Upgrade",
            "Proxy-Authorization",
        ] {
            assert!(!h.contains(gone), "{gone} in {h}");
        }
        assert!(h.contains("X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n"));
        assert!(h.contains("X-Forwarded-Proto: http\r\n"));
        assert!(h.contains("X-Forwarded-Host: front.example\r\n"));
        assert!(h.contains("Via: 1.1 ringwire\r\n"));
        assert!(h.contains("Accept: */*\r\n"));
        assert_eq!(h.matches("Transfer-Encoding: chunked").count(), 1);
        assert!(h.ends_with("Connection: close\r\n\r\n"));
    }
}
