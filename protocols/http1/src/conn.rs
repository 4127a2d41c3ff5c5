//! The server connection state machine.

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::SystemTime;

use crate::chunked::{ChunkDecoder, Decoded};
use crate::request::FieldSpan;
use crate::response::{
    BodyLen, CallerFields, DateCache, check_fields, push_dec, push_field, push_hex,
    push_status_line,
};
use crate::scan::{self, LineScan, ScanLimits, Section, is_field_vchar, is_tchar, trim_ows};
use crate::{
    BodyKind, Event, Headers, HttpError, Method, RequestHead, StatusCode, Upgrade, Version,
};

/// Default [`Config::max_request_line`]: 8 KiB.
pub const DEFAULT_MAX_REQUEST_LINE: usize = 0x2000;
/// Default [`Config::max_head_bytes`]: 16 KiB.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 0x4000;
/// Default [`Config::max_headers`]: 100.
pub const DEFAULT_MAX_HEADERS: usize = 0x64;
/// Hard ceiling on [`Config::max_headers`]: 256 (the parser's on-stack field table).
pub const MAX_HEADERS_CAP: usize = 0x100;
/// Default [`Config::max_body`]: 16 MiB.
pub const DEFAULT_MAX_BODY: u64 = 0x100_0000;
/// Default [`Config::max_chunk_line`]: 1 KiB.
pub const DEFAULT_MAX_CHUNK_LINE: usize = 0x400;
/// Default [`Config::max_trailer_bytes`]: 8 KiB.
pub const DEFAULT_MAX_TRAILER_BYTES: usize = 0x2000;
/// Default [`Config::max_pipeline`]: 16 requests.
pub const DEFAULT_MAX_PIPELINE: usize = 0x10;

/// What to do with a line ended by LF alone in the head or trailers.
///
/// RFC 9112 §2.2: "Although the line terminator for the start-line and fields
/// is the sequence CRLF, a recipient MAY recognize a single LF as a line
/// terminator and ignore any preceding CR." Chunk-size lines and the CRLF after
/// chunk data always require CRLF, whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BareLf {
    /// 400 [`HttpError::BareLf`]. The default: every client we serve sends
    /// CRLF, and a lenient hop behind a strict one is how smuggling starts.
    #[default]
    Reject,
    /// Accept LF as a line end in the head and trailers (for hand-typed `nc`
    /// sessions and old tools).
    Accept,
}

/// When `100 Continue` goes out for a request with `Expect: 100-continue`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ContinuePolicy {
    /// As soon as the request is at the head of the response queue, through
    /// [`ServerConn::poll_transmit`]. The default.
    #[default]
    Auto,
    /// Only after [`ServerConn::send_continue`]; answering with a final status
    /// instead refuses the body (and closes the connection, since the client
    /// may or may not send it).
    Manual,
}

/// Limits and policies, each with a named default.
///
/// Every limit is checked so that a stream one byte over it fails the same
/// way whether it arrives whole or a byte at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Longest request line, CRLF excluded; longer gives 414. Clamped to
    /// `max_head_bytes - 2`.
    pub max_request_line: usize,
    /// Longest head (request line, fields, final empty line); longer gives 431.
    pub max_head_bytes: usize,
    /// Most field lines in a head; more gives 431. Clamped to [`MAX_HEADERS_CAP`].
    /// Also bounds the number of trailer fields.
    pub max_headers: usize,
    /// Largest request body, declared or decoded; larger gives 413.
    pub max_body: u64,
    /// Longest chunk-size line (size and extensions, CRLF excluded); longer gives 400.
    pub max_chunk_line: usize,
    /// Longest trailer section (final empty line included); longer gives 431.
    pub max_trailer_bytes: usize,
    /// Most requests parsed but not yet answered; at the limit parsing pauses
    /// (bytes stay with the caller) until a response finishes. At least 1.
    pub max_pipeline: usize,
    /// Bare-LF policy for the head and trailers.
    pub bare_lf: BareLf,
    /// When 100 Continue is sent.
    pub continue_policy: ContinuePolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_request_line: DEFAULT_MAX_REQUEST_LINE,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body: DEFAULT_MAX_BODY,
            max_chunk_line: DEFAULT_MAX_CHUNK_LINE,
            max_trailer_bytes: DEFAULT_MAX_TRAILER_BYTES,
            max_pipeline: DEFAULT_MAX_PIPELINE,
            bare_lf: BareLf::Reject,
            continue_policy: ContinuePolicy::Auto,
        }
    }
}

impl Config {
    /// Applies the clamps documented on the fields.
    fn normalized(mut self) -> Self {
        self.max_head_bytes = self.max_head_bytes.max(0x10);
        self.max_request_line = self.max_request_line.min(self.max_head_bytes - 2);
        self.max_headers = self.max_headers.min(MAX_HEADERS_CAP);
        self.max_pipeline = self.max_pipeline.max(1);
        self
    }
}

/// What the reader is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// Waiting for a request head (leading empty lines allowed).
    Head,
    /// Reading a Content-Length body.
    Length { remaining: u64 },
    /// Reading a chunked body.
    Chunked(ChunkDecoder),
    /// Waiting for the complete trailer section.
    Trailers,
    /// The last request asked for a protocol switch; parsing waits for the response.
    UpgradePending,
    /// No further request will be parsed (close requested or sent).
    Closed,
    /// A 101 or a 2xx to CONNECT went out: the bytes belong to another protocol.
    Upgraded,
    /// A parse error; it is returned again by every `handle_read`.
    Failed(HttpError),
}

/// A queued event: offsets into `scratch`, rebuilt as borrows by `poll_event`.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Request(HeadMeta),
    Body(usize, usize),
    Trailers(usize, usize),
    BodyEnd,
}

#[derive(Clone, Copy, Debug)]
struct HeadMeta {
    method: (usize, usize),
    target: (usize, usize),
    /// Offset of the `?` in the target, if any.
    query: Option<usize>,
    version: Version,
    /// Range into `spans`.
    fields: (usize, usize),
    keep_alive: bool,
    body: BodyKind,
    expect_continue: bool,
    upgrade: Option<Upgrade>,
}

/// A request whose response has not finished.
#[derive(Clone, Copy, Debug)]
struct Pending {
    seq: u64,
    head_method: bool,
    version: Version,
    keep_alive: bool,
    upgrade: Option<Upgrade>,
    expect_continue: bool,
    continue_approved: bool,
    continue_sent: bool,
    body_done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Content-Length: `remaining` bytes still to write.
    Length(u64),
    Chunked,
    /// HTTP/1.0 client, unknown length: the body ends at close.
    CloseDelimited,
    /// HEAD, 1xx, 204, 304, 2xx to CONNECT: body bytes are dropped.
    NoBody,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resp {
    /// The front request has no response head yet.
    Idle,
    /// The front request's response is written by a [`ResponseWriter`] the caller holds.
    Detached,
    /// The head went out.
    Started {
        framing: Framing,
        close: bool,
        switch: bool,
    },
}

/// A [`Config`] and per-path body limits that the connections of a server share: one
/// allocation for all of them ([`ServerConn::with_settings`]), not a copy in each.
#[derive(Clone, Debug)]
pub struct ServerSettings(Arc<SettingsInner>);

#[derive(Clone, Debug)]
struct SettingsInner {
    cfg: Config,
    /// Paths whose requests may carry more (or less) body than `max_body`.
    body_limits: Vec<(Box<str>, u64)>,
}

impl ServerSettings {
    /// These limits (clamped as [`ServerConn::new`] does) and no per-path body limits.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self(Arc::new(SettingsInner {
            cfg: config.normalized(),
            body_limits: Vec::new(),
        }))
    }

    /// Requests for exactly `path` (the query aside) may carry up to `limit` body bytes
    /// instead of [`Config::max_body`] (an upload route); 413 past it.
    #[must_use]
    pub fn with_body_limit(mut self, path: &str, limit: u64) -> Self {
        self.set_body_limit(path, limit);
        self
    }

    fn set_body_limit(&mut self, path: &str, limit: u64) {
        // Connections that already share these settings keep theirs.
        let inner = Arc::make_mut(&mut self.0);
        inner.body_limits.retain(|(p, _)| &**p != path);
        inner.body_limits.push((path.into(), limit));
    }

    /// The configuration in force (after clamping).
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.0.cfg
    }

    fn body_limit(&self, path: &str) -> u64 {
        self.0
            .body_limits
            .iter()
            .find(|(p, _)| &**p == path)
            .map_or(self.0.cfg.max_body, |(_, l)| *l)
    }
}

/// The sans-IO HTTP/1.1 server side of one connection.
///
/// Reader states (RFC 9112 §6.3 framing, §9.3 persistence):
///
/// ```text
///            +--------------------- keep-alive --------------------+
///            v                                                     |
///  Head --head--> Length(n) / Chunked --last chunk--> Trailers --> BodyEnd
///   |  ^                                                           |  |  |
///   |  +---- non-101 response finished ---- UpgradePending <-upgrade+  |  |
///   |                                         |--101 / CONNECT 2xx--> Upgraded
///   +--pipeline full: pause (bytes stay with the caller)    close ---> Closed
///  any parse error --> Failed (sticky)
/// ```
///
/// Writer: one response at a time, for the oldest unanswered request:
/// `write_response_head` → `write_body_chunk`* → `finish_response`.
pub struct ServerConn {
    settings: ServerSettings,
    read: Read,
    scan: LineScan,
    /// Sequence number of the request being read (its head was emitted).
    cur_seq: u64,
    next_seq: u64,
    cur_keep_alive: bool,
    cur_upgrade: bool,
    /// Copies of head bytes and body pieces that queued events point into.
    scratch: Vec<u8>,
    spans: Vec<FieldSpan>,
    events: VecDeque<Slot>,
    pending: VecDeque<Pending>,
    resp: Resp,
    close_now: bool,
    date: DateCache,
    /// The body limit of the request being read.
    cur_max_body: u64,
}

impl core::fmt::Debug for ServerConn {
    /// States and sizes only: the scratch buffer holds request bodies.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerConn")
            .field("read", &self.read)
            .field("resp", &self.resp)
            .field("outstanding", &self.pending.len())
            .field("queued_events", &self.events.len())
            .field("scratch_len", &self.scratch.len())
            .field("close_now", &self.close_now)
            .finish_non_exhaustive()
    }
}

impl Default for ServerConn {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl ServerConn {
    /// A connection that has seen no bytes.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self::with_settings(&ServerSettings::new(config))
    }

    /// A connection that has seen no bytes, with settings shared with other connections.
    #[must_use]
    pub fn with_settings(settings: &ServerSettings) -> Self {
        Self {
            settings: settings.clone(),
            read: Read::Head,
            scan: LineScan::default(),
            cur_seq: 0,
            next_seq: 0,
            cur_keep_alive: true,
            cur_upgrade: false,
            scratch: Vec::new(),
            spans: Vec::new(),
            events: VecDeque::new(),
            pending: VecDeque::new(),
            resp: Resp::Idle,
            close_now: false,
            date: DateCache::new(),
            cur_max_body: settings.config().max_body,
        }
    }

    /// Requests for exactly `path` (the query aside) may carry up to `limit` body bytes
    /// instead of [`Config::max_body`] (an upload route); 413 past it. For this connection
    /// only: settings shared with others are copied first.
    pub fn set_body_limit_for(&mut self, path: &str, limit: u64) {
        self.settings.set_body_limit(path, limit);
    }

    /// The configuration in force (after clamping).
    #[must_use]
    pub fn config(&self) -> &Config {
        self.settings.config()
    }

    // ----- reading ---------------------------------------------------------

    /// Parses as much of `buf` as it can and queues the resulting events.
    ///
    /// Returns how many bytes were consumed. The rest (a partial line, a
    /// pipelined request past [`Config::max_pipeline`], the first bytes of an
    /// upgraded protocol, anything after a `Connection: close` request) stays
    /// with the caller, who passes it again, extended, next time. Body bytes
    /// and heads are copied into a per-connection scratch buffer that events
    /// borrow; it is reused once every event was polled.
    ///
    /// An error is sticky: this and every later call return it, and the
    /// engine answers with [`ServerConn::write_error_response`] and closes.
    /// Events queued before the error remain valid.
    pub fn handle_read(&mut self, buf: &[u8]) -> Result<usize, HttpError> {
        if self.events.is_empty() {
            self.scratch.clear();
            self.spans.clear();
        }
        let mut pos = 0;
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            match self.step(rest) {
                Ok(Some(n)) => pos += n,
                Ok(None) => return Ok(pos),
                Err(e) => {
                    self.read = Read::Failed(e);
                    return Err(e);
                }
            }
        }
    }

    /// The next event, borrowed until the next call on `self`.
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        let slot = self.events.pop_front()?;
        let scratch = self.scratch.as_slice();
        Some(match slot {
            Slot::Request(m) => {
                let s = |r: (usize, usize)| {
                    core::str::from_utf8(scratch.get(r.0..r.1).unwrap_or_default())
                        .unwrap_or_default()
                };
                let target = s(m.target);
                let (path, query) = match m.query {
                    Some(q) => (s((m.target.0, q)), Some(s((q + 1, m.target.1)))),
                    None => (target, None),
                };
                Event::Request(RequestHead {
                    method: Method::from_token(s(m.method)),
                    target,
                    path,
                    query,
                    version: m.version,
                    headers: Headers {
                        buf: scratch,
                        spans: self.spans.get(m.fields.0..m.fields.1).unwrap_or_default(),
                    },
                    keep_alive: m.keep_alive,
                    body: m.body,
                    expect_continue: m.expect_continue,
                    upgrade: m.upgrade,
                })
            }
            Slot::Body(a, b) => Event::Body(scratch.get(a..b).unwrap_or_default()),
            Slot::Trailers(a, b) => Event::Trailers(Headers {
                buf: scratch,
                spans: self.spans.get(a..b).unwrap_or_default(),
            }),
            Slot::BodyEnd => Event::BodyEnd,
        })
    }

    /// Reports that the peer closed its sending side, with `unconsumed` bytes
    /// still held by the caller. Errors if that cuts a request short.
    pub fn handle_eof(&mut self, unconsumed: usize) -> Result<(), HttpError> {
        match self.read {
            Read::Failed(e) => Err(e),
            Read::Head if unconsumed == 0 => Ok(()),
            Read::Head | Read::Length { .. } | Read::Chunked(_) | Read::Trailers => {
                self.read = Read::Failed(HttpError::IncompleteRequest);
                Err(HttpError::IncompleteRequest)
            }
            Read::UpgradePending | Read::Closed | Read::Upgraded => Ok(()),
        }
    }

    /// Whether a request is partly received: the answer a request timer needs
    /// to choose between 408 and a silent close (RFC 9110 §15.5.9).
    #[must_use]
    pub fn request_in_progress(&self, unconsumed: usize) -> bool {
        match self.read {
            Read::Head => unconsumed > 0,
            Read::Length { .. } | Read::Chunked(_) | Read::Trailers => true,
            _ => false,
        }
    }

    /// Requests parsed whose responses have not finished.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// True once a 101 (or a 2xx to CONNECT) finished: the bytes after what
    /// `handle_read` consumed belong to the new protocol.
    #[must_use]
    pub fn is_upgraded(&self) -> bool {
        self.read == Read::Upgraded
    }

    /// True once the connection must close after the output is flushed: a
    /// response carried `Connection: close`, was close-delimited, or broke its
    /// framing, or an error response went out.
    #[must_use]
    pub fn should_close(&self) -> bool {
        self.close_now
    }

    /// Frees the scratch buffers of an idle connection (no queued events), so
    /// that it holds no heap memory beyond its queues.
    pub fn release_buffers(&mut self) {
        if self.events.is_empty() {
            self.scratch = Vec::new();
            self.spans = Vec::new();
            self.events.shrink_to_fit();
            self.pending.shrink_to_fit();
        }
    }

    fn step(&mut self, buf: &[u8]) -> Result<Option<usize>, HttpError> {
        match self.read {
            Read::Failed(e) => Err(e),
            Read::UpgradePending | Read::Closed | Read::Upgraded => Ok(None),
            Read::Head => self.step_head(buf),
            Read::Length { remaining } => {
                if remaining == 0 {
                    self.end_body();
                    return Ok(Some(0));
                }
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                self.push_body(buf.get(..n).unwrap_or_default());
                self.read = Read::Length {
                    remaining: remaining - n as u64,
                };
                Ok(Some(n))
            }
            Read::Chunked(mut dec) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let (n, got) =
                    dec.decode(buf, self.settings.0.cfg.max_chunk_line, self.cur_max_body)?;
                self.read = Read::Chunked(dec);
                match got {
                    Decoded::Nothing => {}
                    Decoded::Data(d) => self.push_body(d),
                    Decoded::LastChunk => {
                        self.read = Read::Trailers;
                        self.scan = LineScan::default();
                    }
                }
                Ok(Some(n))
            }
            Read::Trailers => self.step_trailers(buf),
        }
    }

    fn step_head(&mut self, buf: &[u8]) -> Result<Option<usize>, HttpError> {
        if self.pending.len() >= self.settings.0.cfg.max_pipeline {
            return Ok(None);
        }
        if self.scan == LineScan::default() {
            // RFC 9112 §2.2: "a server that is expecting to receive and parse a
            // request-line SHOULD ignore at least one empty line (CRLF) received
            // prior to the request-line."
            match buf.first() {
                None => return Ok(None),
                Some(b'\r') => {
                    return match buf.get(1) {
                        None => Ok(None),
                        Some(b'\n') => Ok(Some(2)),
                        Some(_) => Err(HttpError::InvalidRequestLine),
                    };
                }
                Some(b'\n') if self.settings.0.cfg.bare_lf == BareLf::Accept => return Ok(Some(1)),
                Some(b'\n') => return Err(HttpError::BareLf),
                Some(_) => {}
            }
        }
        let lim = ScanLimits {
            max_first_line: self.settings.0.cfg.max_request_line,
            max_bytes: self.settings.0.cfg.max_head_bytes,
            max_fields: self.settings.0.cfg.max_headers,
            bare_lf: self.settings.0.cfg.bare_lf == BareLf::Accept,
        };
        let Some(end) = scan::scan(buf, &mut self.scan, Section::Head, &lim)? else {
            return Ok(None);
        };
        self.scan = LineScan::default();
        self.parse_head(buf.get(..end).unwrap_or_default())?;
        Ok(Some(end))
    }

    fn step_trailers(&mut self, buf: &[u8]) -> Result<Option<usize>, HttpError> {
        let lim = ScanLimits {
            max_first_line: 0,
            max_bytes: self.settings.0.cfg.max_trailer_bytes,
            max_fields: self.settings.0.cfg.max_headers,
            bare_lf: self.settings.0.cfg.bare_lf == BareLf::Accept,
        };
        let Some(end) = scan::scan(buf, &mut self.scan, Section::Trailers, &lim)? else {
            return Ok(None);
        };
        self.scan = LineScan::default();
        let section = buf.get(..end).unwrap_or_default();
        let base = self.scratch.len();
        let first = self.spans.len();
        self.scratch.extend_from_slice(section);
        let mut at = 0;
        for line in section.split(|b| *b == b'\n') {
            let line_start = at;
            at += line.len() + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break;
            }
            // The scanner guaranteed a colon after a non-empty name.
            let colon = memchr::memchr(b':', line).unwrap_or(0);
            let name = line.get(..colon).unwrap_or_default();
            let raw = line.get(colon + 1..).unwrap_or_default();
            if !name.iter().all(|b| is_tchar(*b)) || !raw.iter().all(|b| is_field_vchar(*b)) {
                return Err(HttpError::InvalidHeader);
            }
            let value = trim_ows(raw);
            let name_at = base + line_start;
            let value_at = base + offset_in(section, value);
            self.spans.push(FieldSpan {
                name: (name_at, name_at + name.len()),
                value: (value_at, value_at + value.len()),
            });
        }
        if self.spans.len() > first {
            self.events
                .push_back(Slot::Trailers(first, self.spans.len()));
        }
        self.end_body();
        Ok(Some(end))
    }

    fn push_body(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let start = self.scratch.len();
        self.scratch.extend_from_slice(data);
        let end = self.scratch.len();
        if let Some(Slot::Body(_, prev_end)) = self.events.back_mut()
            && *prev_end == start
        {
            *prev_end = end;
            return;
        }
        self.events.push_back(Slot::Body(start, end));
    }

    fn end_body(&mut self) {
        self.events.push_back(Slot::BodyEnd);
        let seq = self.cur_seq;
        let mut still_pending = false;
        if let Some(p) = self.pending.back_mut()
            && p.seq == seq
        {
            p.body_done = true;
            still_pending = true;
        }
        self.read = if self.cur_upgrade && still_pending {
            Read::UpgradePending
        } else if self.cur_keep_alive && !self.close_now {
            Read::Head
        } else {
            Read::Closed
        };
    }

    fn parse_head(&mut self, head: &[u8]) -> Result<(), HttpError> {
        let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS_CAP] =
            [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP];
        let slots = slots
            .get_mut(..self.settings.0.cfg.max_headers)
            .unwrap_or_default();
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(head, slots) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            Ok(_) => return Err(HttpError::InvalidHeader),
            Err(e) => return Err(map_httparse(e, head)),
        }
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(HttpError::InvalidRequestLine);
        };
        let version = if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        };
        let f = FieldFacts::collect(req.headers, version)?;

        // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
        // code to any HTTP/1.1 request message that lacks a Host header field
        // and to any request message that contains more than one Host header
        // field line or a Host header field with an invalid field value."
        if f.hosts > 1 || (version == Version::Http11 && f.hosts == 0) || f.bad_host {
            return Err(HttpError::InvalidHost);
        }
        let body = f.body_kind(version)?;
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        self.cur_max_body = self.settings.body_limit(path);
        if let BodyKind::ContentLength(n) = body
            && n > self.cur_max_body
        {
            return Err(HttpError::BodyTooLarge);
        }
        // RFC 9110 §10.1.1: "A server that receives a 100-continue expectation
        // in an HTTP/1.0 request MUST ignore that expectation." and "A server
        // that receives an Expect field value containing a member other than
        // 100-continue MAY respond with a 417 (Expectation Failed)".
        let expect_continue = version == Version::Http11 && f.expect_continue;
        if version == Version::Http11 && f.expect_other {
            return Err(HttpError::ExpectationFailed);
        }
        // RFC 9112 §9.3: close wins; HTTP/1.1 persists by default; HTTP/1.0
        // persists only with "keep-alive".
        let keep_alive = !f.conn_close && (version == Version::Http11 || f.conn_keep_alive);
        let is_connect = method == "CONNECT";
        // RFC 9110 §7.8: "A server MUST ignore an Upgrade header field that is
        // received in an HTTP/1.0 request." An Upgrade also needs the
        // "upgrade" connection option to be meant for this hop.
        let upgrade = if is_connect {
            Some(Upgrade::Connect)
        } else if version == Version::Http11 && f.conn_upgrade {
            f.upgrade
        } else {
            None
        };

        // Copy the head so the event can outlive `buf`.
        let base = self.scratch.len();
        self.scratch.extend_from_slice(head);
        let at = |part: &[u8]| base + offset_in(head, part);
        let first = self.spans.len();
        for h in req.headers.iter() {
            let name_at = at(h.name.as_bytes());
            let value = trim_ows(h.value);
            let value_at = at(value);
            self.spans.push(FieldSpan {
                name: (name_at, name_at + h.name.len()),
                value: (value_at, value_at + value.len()),
            });
        }
        let method_at = at(method.as_bytes());
        let target_at = at(target.as_bytes());
        let meta = HeadMeta {
            method: (method_at, method_at + method.len()),
            target: (target_at, target_at + target.len()),
            query: memchr::memchr(b'?', target.as_bytes()).map(|q| target_at + q),
            version,
            fields: (first, self.spans.len()),
            keep_alive,
            body,
            expect_continue,
            upgrade,
        };
        self.events.push_back(Slot::Request(meta));

        let seq = self.next_seq;
        self.next_seq += 1;
        self.cur_seq = seq;
        self.cur_keep_alive = keep_alive;
        self.cur_upgrade = upgrade.is_some();
        self.pending.push_back(Pending {
            seq,
            head_method: method == "HEAD",
            version,
            keep_alive,
            upgrade,
            expect_continue,
            continue_approved: expect_continue
                && self.settings.0.cfg.continue_policy == ContinuePolicy::Auto,
            continue_sent: false,
            body_done: false,
        });
        self.read = match body {
            BodyKind::None => Read::Length { remaining: 0 },
            BodyKind::ContentLength(n) => Read::Length { remaining: n },
            BodyKind::Chunked => Read::Chunked(ChunkDecoder::new()),
        };
        Ok(())
    }

    // ----- writing ---------------------------------------------------------

    /// Writes the status line and fields of the response to the oldest
    /// unanswered request.
    ///
    /// The crate adds `Date` (unless `headers` has one), the framing field
    /// from `body`, and `Connection: close` when the request asked for it, the
    /// parser failed, the body length cannot be framed (HTTP/1.0 + chunked) or
    /// a body the client was told to hold back (Expect without 100) would be
    /// left unread; `Connection: keep-alive` for persistent HTTP/1.0.
    /// A `Connection: close` in `headers` closes too. HEAD, 204 and 304
    /// responses get no body: later body chunks are dropped. A 101 answers an
    /// upgrade request whose body is complete; after [`Self::finish_response`]
    /// the connection [`is_upgraded`](Self::is_upgraded).
    pub fn write_response_head(
        &mut self,
        status: StatusCode,
        headers: &[(&str, &str)],
        body: BodyLen,
        now: SystemTime,
        out: &mut Vec<u8>,
    ) -> Result<(), HttpError> {
        if self.close_now || self.read == Read::Upgraded || self.resp != Resp::Idle {
            return Err(HttpError::ResponseState);
        }
        let front = *self.pending.front().ok_or(HttpError::ResponseState)?;
        let only = self.pending.len() == 1;
        let failed = matches!(self.read, Read::Failed(_));
        // A request that failed in its body is answered with close; requests
        // before a failed head are answered normally, the error response follows.
        let failed_here = failed && front.seq == self.cur_seq && !front.body_done;
        self.resp = write_head(
            &front,
            only,
            failed_here,
            &mut self.date,
            status,
            headers,
            body,
            now,
            out,
        )?;
        Ok(())
    }

    /// Writes body bytes of the current response (chunk-framed if chunked).
    /// Empty slices write nothing; bodies of HEAD/204/304 responses are dropped.
    pub fn write_body_chunk(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), HttpError> {
        body_chunk(&mut self.resp, data, out)
    }

    /// True when the current response's body is chunk-framed (so its bytes must go through
    /// [`Self::write_body_chunk`]).
    #[must_use]
    pub fn body_is_chunked(&self) -> bool {
        matches!(
            self.resp,
            Resp::Started {
                framing: Framing::Chunked,
                ..
            }
        )
    }

    /// Accounts for `n` body bytes of the current response that the caller sends itself,
    /// outside `out` (a file range sent with sendfile). Only bodies sent as they are qualify:
    /// a Content-Length body (counted down; more than it promised is
    /// [`HttpError::ResponseBodyLength`]) or a close-delimited one. Returns false when the body
    /// is dropped (HEAD, 204, 304): the caller must not send the bytes. A chunked body is
    /// [`HttpError::ResponseState`].
    pub fn write_body_external(&mut self, n: u64) -> Result<bool, HttpError> {
        let Resp::Started {
            framing,
            close,
            switch,
        } = self.resp
        else {
            return Err(HttpError::ResponseState);
        };
        match framing {
            Framing::Length(remaining) => {
                if n > remaining {
                    return Err(HttpError::ResponseBodyLength);
                }
                self.resp = Resp::Started {
                    framing: Framing::Length(remaining - n),
                    close,
                    switch,
                };
                Ok(true)
            }
            Framing::CloseDelimited => Ok(true),
            Framing::NoBody => Ok(false),
            Framing::Chunked => Err(HttpError::ResponseState),
        }
    }

    /// Ends the current response (the last chunk for chunked bodies) and moves
    /// to the next request. If that one was promised a 100 Continue, it is
    /// written now, after this response, to keep responses in order.
    ///
    /// A Content-Length body that came up short returns
    /// [`HttpError::ResponseBodyLength`] and marks the connection for closing.
    pub fn finish_response(&mut self, out: &mut Vec<u8>) -> Result<(), HttpError> {
        let (close, switch, result) = end_body(&mut self.resp, out)?;
        self.after_response(close, switch, result, out)
    }

    /// Lends the response to the oldest unanswered request to a [`ResponseWriter`] that does
    /// not borrow the connection (a proxy writes it from another connection's callbacks,
    /// as the upstream's answer arrives). Reading goes on meanwhile; the connection writes
    /// no other response until [`Self::attach_response`] takes the writer back.
    pub fn detach_response(&mut self) -> Result<ResponseWriter, HttpError> {
        if self.close_now || self.read == Read::Upgraded || self.resp != Resp::Idle {
            return Err(HttpError::ResponseState);
        }
        let front = *self.pending.front().ok_or(HttpError::ResponseState)?;
        self.resp = Resp::Detached;
        Ok(ResponseWriter {
            front,
            only: self.pending.len() == 1,
            date: self.date.clone(),
            resp: Resp::Idle,
            done: None,
        })
    }

    /// Takes back a writer from [`Self::detach_response`] after its
    /// [`ResponseWriter::finish`]: the connection moves to the next request (or closes, as
    /// [`Self::finish_response`] would). An unfinished writer marks the connection for
    /// closing (its response's framing is broken) and returns
    /// [`HttpError::ResponseBodyLength`].
    pub fn attach_response(
        &mut self,
        w: ResponseWriter,
        out: &mut Vec<u8>,
    ) -> Result<(), HttpError> {
        if self.resp != Resp::Detached {
            return Err(HttpError::ResponseState);
        }
        match w.done {
            Some((close, switch, result)) => self.after_response(close, switch, result, out),
            None => self.after_response(true, false, Err(HttpError::ResponseBodyLength), out),
        }
    }

    fn after_response(
        &mut self,
        close: bool,
        switch: bool,
        result: Result<(), HttpError>,
        out: &mut Vec<u8>,
    ) -> Result<(), HttpError> {
        self.resp = Resp::Idle;
        let front = self.pending.pop_front();
        if close {
            self.close_now = true;
            self.pending.clear();
            if !matches!(self.read, Read::Failed(_)) {
                self.read = Read::Closed;
            }
            return result;
        }
        if switch {
            self.read = Read::Upgraded;
            self.pending.clear();
            return result;
        }
        if self.read == Read::UpgradePending && front.is_some_and(|p| p.upgrade.is_some()) {
            // The switch was declined; HTTP/1.1 goes on.
            self.read = if front.is_some_and(|p| p.keep_alive) {
                Read::Head
            } else {
                Read::Closed
            };
        }
        self.flush_continue(out);
        result
    }

    /// Approves the body of the request being read if it sent
    /// `Expect: 100-continue` (RFC 9110 §10.1.1), writing `100 Continue` now
    /// if that request is next to be answered, or after the responses before
    /// it. Returns whether bytes were written. Not needed with
    /// [`ContinuePolicy::Auto`].
    pub fn send_continue(&mut self, out: &mut Vec<u8>) -> Result<bool, HttpError> {
        if self.close_now || self.read == Read::Upgraded {
            return Err(HttpError::ResponseState);
        }
        if let Some(p) = self.pending.back_mut()
            && p.seq == self.cur_seq
            && p.expect_continue
        {
            p.continue_approved = true;
        }
        Ok(self.flush_continue(out))
    }

    /// Writes what the connection owes without being asked: today only the
    /// automatic 100 Continue. Call after draining events; returns whether
    /// bytes were written.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        self.flush_continue(out)
    }

    fn flush_continue(&mut self, out: &mut Vec<u8>) -> bool {
        if self.close_now || self.resp != Resp::Idle || matches!(self.read, Read::Failed(_)) {
            return false;
        }
        match self.pending.front_mut() {
            Some(p) if p.continue_approved && !p.continue_sent && !p.body_done => {
                p.continue_sent = true;
                out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                true
            }
            _ => false,
        }
    }

    /// Writes the error response for a failed request (`err.status()`, empty
    /// body, `Connection: close`) and marks the connection for closing.
    ///
    /// Use it after `handle_read` failed, or with an error of the engine's
    /// own such as [`HttpError::RequestTimeout`]. Responses to the requests
    /// before the failed one must have finished first (else
    /// [`HttpError::ResponseState`]); a request that failed in its body must
    /// not have a response started.
    pub fn write_error_response(
        &mut self,
        err: HttpError,
        now: SystemTime,
        out: &mut Vec<u8>,
    ) -> Result<(), HttpError> {
        if self.close_now || self.read == Read::Upgraded || self.resp != Resp::Idle {
            return Err(HttpError::ResponseState);
        }
        let in_body = self
            .pending
            .back()
            .is_some_and(|p| p.seq == self.cur_seq && !p.body_done);
        let ready = if in_body {
            self.pending.len() == 1
        } else {
            self.pending.is_empty()
        };
        if !ready {
            return Err(HttpError::ResponseState);
        }
        if !matches!(self.read, Read::Failed(_)) {
            self.read = Read::Failed(err);
        }
        push_status_line(out, err.status());
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(self.date.get(now));
        out.extend_from_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        self.pending.clear();
        self.close_now = true;
        Ok(())
    }
}

/// What the field lines say about framing, persistence and upgrades.
#[derive(Debug, Default)]
struct FieldFacts {
    content_length: Option<u64>,
    te_present: bool,
    /// The last transfer coding seen is `chunked`.
    te_chunked_last: bool,
    /// `chunked` appeared before another coding.
    te_chunked_not_last: bool,
    /// A coding other than `chunked` appeared.
    te_other: bool,
    conn_close: bool,
    conn_keep_alive: bool,
    conn_upgrade: bool,
    upgrade: Option<Upgrade>,
    hosts: usize,
    bad_host: bool,
    expect_continue: bool,
    expect_other: bool,
}

impl FieldFacts {
    fn collect(headers: &[httparse::Header<'_>], version: Version) -> Result<Self, HttpError> {
        let mut f = Self::default();
        for h in headers {
            let name = h.name;
            let value = trim_ows(h.value);
            if name.eq_ignore_ascii_case("content-length") {
                // RFC 9110 §8.6: a list of equal values MAY be accepted; we
                // refuse every repetition, which is the safe reading of
                // RFC 9112 §6.3 item 5 ("If a message is received without
                // Transfer-Encoding and with an invalid Content-Length header
                // field, then the message framing is invalid").
                if f.content_length.is_some() {
                    return Err(HttpError::DuplicateContentLength);
                }
                f.content_length = Some(parse_content_length(value)?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                f.te_present = true;
                for coding in list_items(value) {
                    if f.te_chunked_last {
                        f.te_chunked_not_last = true;
                    }
                    f.te_chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                    f.te_other |= !f.te_chunked_last;
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for opt in list_items(value) {
                    f.conn_close |= opt.eq_ignore_ascii_case(b"close");
                    f.conn_keep_alive |= opt.eq_ignore_ascii_case(b"keep-alive");
                    f.conn_upgrade |= opt.eq_ignore_ascii_case(b"upgrade");
                }
            } else if name.eq_ignore_ascii_case("upgrade") {
                for proto in list_items(value) {
                    let kind = if proto.eq_ignore_ascii_case(b"websocket") {
                        Some(Upgrade::WebSocket)
                    } else if proto.eq_ignore_ascii_case(b"h2c") {
                        Some(Upgrade::H2c)
                    } else {
                        None
                    };
                    f.upgrade = f.upgrade.or(kind);
                }
            } else if name.eq_ignore_ascii_case("host") {
                f.hosts += 1;
                f.bad_host |= !value.iter().all(|b| is_host_char(*b));
            } else if name.eq_ignore_ascii_case("expect") && version == Version::Http11 {
                for exp in list_items(value) {
                    if exp.eq_ignore_ascii_case(b"100-continue") {
                        f.expect_continue = true;
                    } else {
                        f.expect_other = true;
                    }
                }
            }
        }
        Ok(f)
    }

    fn body_kind(&self, version: Version) -> Result<BodyKind, HttpError> {
        if !self.te_present {
            return Ok(self
                .content_length
                .map_or(BodyKind::None, BodyKind::ContentLength));
        }
        // RFC 9112 §6.3 item 3 lets a server process TE and drop CL; we take
        // the stricter road RFC 9112 §6.1 opens ("A server MAY reject a request
        // that contains both Content-Length and Transfer-Encoding").
        if self.content_length.is_some() {
            return Err(HttpError::ContentLengthWithTransferEncoding);
        }
        // RFC 9112 §6.1: "A server or client that receives an HTTP/1.0 message
        // containing a Transfer-Encoding header field MUST treat the message as
        // if the framing is faulty".
        if version == Version::Http10 {
            return Err(HttpError::TransferEncodingInHttp10);
        }
        // RFC 9112 §6.3 item 4: "If a Transfer-Encoding header field is present
        // in a request and the chunked transfer coding is not the final
        // encoding, the message body length cannot be determined reliably; the
        // server MUST respond with the 400 (Bad Request) status code". §6.1:
        // "A sender MUST NOT apply the chunked transfer coding more than once".
        if !self.te_chunked_last || self.te_chunked_not_last {
            return Err(HttpError::TransferEncodingNotChunked);
        }
        // RFC 9112 §6.1: "A server that receives a request message with a
        // transfer coding it does not understand SHOULD respond with 501 (Not
        // Implemented)." We decode none but chunked.
        if self.te_other {
            return Err(HttpError::UnsupportedTransferCoding);
        }
        Ok(BodyKind::Chunked)
    }
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6): no sign, no inner space, no list.
fn parse_content_length(v: &[u8]) -> Result<u64, HttpError> {
    if v.is_empty() {
        return Err(HttpError::InvalidContentLength);
    }
    v.iter().try_fold(0u64, |acc, b| {
        if !b.is_ascii_digit() {
            return Err(HttpError::InvalidContentLength);
        }
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(u64::from(b - b'0')))
            .ok_or(HttpError::InvalidContentLength)
    })
}

/// The non-empty, OWS-trimmed members of a `#list` (RFC 9110 §5.6.1).
fn list_items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty())
}

/// Characters of `uri-host [ ":" port ]` (RFC 3986 reg-name, IP-literal, port).
fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b)
}

/// Offset of `part` inside `whole`; `part` must be a sub-slice of `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

fn map_httparse(e: httparse::Error, head: &[u8]) -> HttpError {
    match e {
        httparse::Error::HeaderName | httparse::Error::HeaderValue => HttpError::InvalidHeader,
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders,
        httparse::Error::Version => {
            // A well-formed version we do not speak is 505; anything else is a
            // broken request line.
            let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let mut parts = line.split(|b| *b == b' ');
            let version = parts.nth(2).unwrap_or_default();
            match version {
                [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                    if major.is_ascii_digit()
                        && minor.is_ascii_digit()
                        && parts.next().is_none() =>
                {
                    HttpError::UnsupportedVersion
                }
                _ => HttpError::InvalidRequestLine,
            }
        }
        _ => HttpError::InvalidRequestLine,
    }
}

/// The response head for `front` (see [`ServerConn::write_response_head`]); returns the
/// writer state it starts.
#[allow(clippy::too_many_arguments)]
fn write_head(
    front: &Pending,
    only: bool,
    failed_here: bool,
    date: &mut DateCache,
    status: StatusCode,
    headers: &[(&str, &str)],
    body: BodyLen,
    now: SystemTime,
    out: &mut Vec<u8>,
) -> Result<Resp, HttpError> {
    if !(100..=999).contains(&status.0) {
        return Err(HttpError::ResponseStatus);
    }
    let switch = match front.upgrade {
        Some(Upgrade::WebSocket | Upgrade::H2c) => status == StatusCode::SWITCHING_PROTOCOLS,
        // RFC 9112 §6.3: "Any 2xx (Successful) response to a CONNECT request
        // implies that the connection will become a tunnel immediately
        // after the empty line that concludes the header fields."
        Some(Upgrade::Connect) => status.is_success(),
        None => false,
    };
    if status.is_informational() && !switch {
        return Err(HttpError::ResponseStatus);
    }
    if switch && !(only && front.body_done) {
        return Err(HttpError::ResponseStatus);
    }
    let caller: CallerFields = check_fields(headers)?;
    let unsent_body = front.expect_continue && !front.continue_sent && !front.body_done;
    let mut close = !front.keep_alive || caller.close || failed_here || unsent_body;

    // RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field
    // in any response with a status code of 1xx (Informational) or 204 (No
    // Content)." and §9.3.6: "A server MUST NOT send any Transfer-Encoding
    // or Content-Length header fields in a 2xx (Successful) response to
    // CONNECT."
    let no_content = switch || status.is_informational() || status.0 == 204;
    let mut framing_field: Option<(&str, u64)> = None;
    let mut chunked_field = false;
    let framing = if no_content {
        if matches!(body, BodyLen::Known(n) if n > 0) {
            return Err(HttpError::ResponseBodyLength);
        }
        Framing::NoBody
    } else if status.0 == 304 {
        if let BodyLen::Known(n) = body {
            framing_field = Some(("Content-Length", n));
        }
        Framing::NoBody
    } else {
        match body {
            BodyLen::Known(n) => {
                framing_field = Some(("Content-Length", n));
                if front.head_method {
                    Framing::NoBody
                } else {
                    Framing::Length(n)
                }
            }
            BodyLen::None => {
                framing_field = Some(("Content-Length", 0));
                Framing::NoBody
            }
            BodyLen::Chunked if front.version == Version::Http11 => {
                chunked_field = true;
                if front.head_method {
                    Framing::NoBody
                } else {
                    Framing::Chunked
                }
            }
            BodyLen::Chunked if front.head_method => Framing::NoBody,
            BodyLen::Chunked => {
                // RFC 9112 §6.1: "A server MUST NOT send a response containing
                // Transfer-Encoding unless the corresponding request indicates
                // HTTP/1.1"; the body is delimited by closing the connection.
                close = true;
                Framing::CloseDelimited
            }
        }
    };
    if switch {
        close = false;
    }

    push_status_line(out, status);
    if !caller.date {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date.get(now));
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        push_field(out, name, value.as_bytes());
    }
    if let Some((name, n)) = framing_field {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        push_dec(out, n);
        out.extend_from_slice(b"\r\n");
    }
    if chunked_field {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if close && !caller.close {
        // RFC 9112 §9.6: "The server SHOULD send a "close" connection option
        // in its final response on that connection."
        out.extend_from_slice(b"Connection: close\r\n");
    } else if !close && !switch && front.version == Version::Http10 && !caller.keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Resp::Started {
        framing,
        close,
        switch,
    })
}

/// The response to one request, written away from its connection
/// ([`ServerConn::detach_response`]): head, body pieces, finish, then back to the
/// connection with [`ServerConn::attach_response`]. Same rules and framing as the
/// connection's own `write_*` calls.
#[derive(Clone, Debug)]
pub struct ResponseWriter {
    front: Pending,
    only: bool,
    date: DateCache,
    resp: Resp,
    /// Set by `finish`: close, switch, the framing verdict.
    done: Option<(bool, bool, Result<(), HttpError>)>,
}

impl ResponseWriter {
    /// As [`ServerConn::write_response_head`].
    pub fn write_head(
        &mut self,
        status: StatusCode,
        headers: &[(&str, &str)],
        body: BodyLen,
        now: SystemTime,
        out: &mut Vec<u8>,
    ) -> Result<(), HttpError> {
        if self.resp != Resp::Idle || self.done.is_some() {
            return Err(HttpError::ResponseState);
        }
        self.resp = write_head(
            &self.front,
            self.only,
            false,
            &mut self.date,
            status,
            headers,
            body,
            now,
            out,
        )?;
        Ok(())
    }

    /// True once the head was written.
    #[must_use]
    pub fn head_written(&self) -> bool {
        self.resp != Resp::Idle || self.done.is_some()
    }

    /// True for a request made with HEAD (its response carries no body).
    #[must_use]
    pub fn is_head_request(&self) -> bool {
        self.front.head_method
    }

    /// As [`ServerConn::write_body_chunk`].
    pub fn write_body_chunk(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), HttpError> {
        body_chunk(&mut self.resp, data, out)
    }

    /// Ends the body (the last chunk if chunked). A Content-Length body that came up short
    /// returns [`HttpError::ResponseBodyLength`]; the connection then closes at attach.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), HttpError> {
        let (close, switch, result) = end_body(&mut self.resp, out)?;
        self.done = Some((close, switch, result));
        result
    }

    /// True once [`Self::finish`] ran.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.done.is_some()
    }

    /// True when the connection closes after this response (known once the head is written).
    #[must_use]
    pub fn closes(&self) -> bool {
        match (self.resp, self.done) {
            (_, Some((close, _, _))) | (Resp::Started { close, .. }, None) => close,
            _ => false,
        }
    }
}

fn body_chunk(resp: &mut Resp, data: &[u8], out: &mut Vec<u8>) -> Result<(), HttpError> {
    let Resp::Started {
        framing,
        close,
        switch,
    } = *resp
    else {
        return Err(HttpError::ResponseState);
    };
    match framing {
        Framing::Length(remaining) => {
            let len = data.len() as u64;
            if len > remaining {
                return Err(HttpError::ResponseBodyLength);
            }
            out.extend_from_slice(data);
            *resp = Resp::Started {
                framing: Framing::Length(remaining - len),
                close,
                switch,
            };
        }
        Framing::Chunked if !data.is_empty() => {
            push_hex(out, data.len() as u64);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        Framing::CloseDelimited => out.extend_from_slice(data),
        Framing::Chunked | Framing::NoBody => {}
    }
    Ok(())
}

/// What ending a body decided: close, switch, the framing verdict.
type Ended = (bool, bool, Result<(), HttpError>);

/// Writes the end of the body and resets the writer state to Idle.
fn end_body(resp: &mut Resp, out: &mut Vec<u8>) -> Result<Ended, HttpError> {
    let Resp::Started {
        framing,
        close,
        switch,
    } = *resp
    else {
        return Err(HttpError::ResponseState);
    };
    *resp = Resp::Idle;
    let mut result = Ok(());
    let mut close = close;
    match framing {
        Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        Framing::Length(0) | Framing::NoBody => {}
        Framing::Length(_) => {
            close = true;
            result = Err(HttpError::ResponseBodyLength);
        }
        Framing::CloseDelimited => close = true,
    }
    Ok((close, switch, result))
}
