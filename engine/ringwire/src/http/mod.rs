//! HTTP/1.1 on the engine: the plugin behind the HTTP/WebSocket port's plain-HTTP path, and the
//! user API (routes, handlers, static files, Server-Sent Events).
//!
//! One [`HttpServer`] runs on every core, built from one shared [`HttpApp`]. Bytes go through
//! the sans-IO codec [`ringwire_http1::ServerConn`] (limits, smuggling defences, pipelining,
//! `100 Continue`); this module turns its events into [`Request`]s, finds the route, runs the
//! handler and writes the [`Response`]s strictly in request order.
//!
//! What a request meets, in order:
//! 1. the codec's limits: request line (414), head and header count (431), body (413),
//!    malformed framing (400/501): an error response with `Connection: close`, then a close;
//! 2. the before-request hook ([`HttpApp::before`]): it may answer (401, 403...) instead;
//! 3. CORS preflight (`OPTIONS` with `Access-Control-Request-Method`, when [`Cors`] is set),
//!    `OPTIONS` (204 with `Allow`);
//! 4. the routes, in the order they were added: exact paths, or prefixes
//!    ([`HttpApp::prefix`]); a path that matches with another method gets 405 and `Allow`;
//! 5. static files from [`HttpConfig::www`] for `GET`/`HEAD` ([`files`], answers cached per
//!    core by [`files::FileCache`]), else 404.
//!
//! Handlers get the whole body ([`HttpApp::route`], bounded by the codec's `max_body`) or a
//! stream of body pieces as they arrive ([`HttpApp::streaming`]); a panicking handler gets its
//! request a 500. Responses carry bytes, a file (read in chunks as the socket drains, never
//! copied whole into memory) or a [`BodyStream`]; [`sse`] endpoints hold the response open.
//!
//! Keep-alive connections close after [`HttpConfig::keep_alive_timeout`] without input (a
//! request half received then gets 408), and a request head must arrive whole within
//! [`HttpConfig::head_timeout`] of its first byte (408: slowloris).
//!
//! Also here: [`auth`] (Basic, Bearer, Session, URL; checked before the before-request hook
//! and, by the WebSocket plugin, before an upgrade), [`upload`] (multipart/form-data streamed
//! to disk), [`log`] (the connection log file), [`builtin`] (the test page and JS client).
//!
//! Not done here (later): sendfile/splice or io_uring reads for files (today a blocking
//! `read` of [`HttpConfig::file_chunk`] bytes on the core's thread per drain, which the page
//! cache usually serves). Forwarding to upstream servers is in [`forward`].
//!
//! A WebSocket upgrade on a later request of a keep-alive connection is refused with 400: the
//! upgrade must be the connection's first request (browsers open a fresh connection for it).

pub mod auth;
pub mod builtin;
pub mod files;
pub mod forward;
pub mod log;
pub mod sse;
pub mod upload;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use ringwire_http1::{BodyLen, Event, HttpError, ServerConn, ServerSettings, StatusCode, Upgrade};
use ringwire_runtime::{BusMessage, CloseReason, ConnCtx, ConnId, CoreCtx, Plugin};

pub use ringwire_http1::Config as Limits;
pub use sse::{SseEndpoint, SseEvent};

/// Default [`HttpConfig::head_timeout`].
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`HttpConfig::keep_alive_timeout`].
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default [`HttpConfig::file_chunk`]: bytes read from a file per read.
pub const DEFAULT_FILE_CHUNK: usize = 0x1_0000;
/// Default [`HttpConfig::high_water`]: a streamed body is read ahead until this many bytes are
/// queued for the socket, and resumed when the queue drains.
pub const DEFAULT_HIGH_WATER: usize = 0x4_0000;

// Connection timer tokens (distinct from the WebSocket plugin's 1..=5).
const T_HEAD: u64 = 0x4854_0004;
pub(crate) const T_SSE_TICK: u64 = 0x4854_0002;

/// CORS settings: every response to a request with `Origin` gets
/// `Access-Control-Allow-Origin`; preflights are answered 204.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    /// The allowed origin: `*` or one origin such as `https://app.example`.
    pub origin: String,
    /// `Access-Control-Allow-Methods` of preflight answers.
    pub methods: String,
    /// `Access-Control-Allow-Headers` of preflight answers (the request's list is echoed when
    /// this is empty).
    pub headers: String,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: u32,
}

impl Cors {
    /// Allow `origin` with the usual methods.
    pub fn origin(origin: impl Into<String>) -> Self {
        Cors {
            origin: origin.into(),
            methods: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS".into(),
            headers: String::new(),
            max_age: 600,
        }
    }
}

/// Settings of the HTTP plugin.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// The codec's limits (request line 414, head 431, header count 431, body 413, pipeline
    /// depth, chunk line, trailers).
    pub limits: Limits,
    /// Serve static files from this directory (`--www`).
    pub www: Option<PathBuf>,
    /// Each core's cache of static-file answers ([`files::FileCache`], `--www-cache-*`).
    pub www_cache: files::CacheConfig,
    /// CORS (`--cors-origin`).
    pub cors: Option<Cors>,
    /// Close a connection that sent nothing for this long (408 if a request was half sent).
    /// Kept as the connection's deadline ([`ringwire_runtime::ConnCtx::set_deadline`]): no
    /// timer per connection, enforced up to one deadline tick (100 ms by default) late.
    pub keep_alive_timeout: Duration,
    /// A request head must be complete this long after its first byte arrived (408 past it).
    pub head_timeout: Duration,
    /// Send file bodies with sendfile(2) on plain connections (`--no-sendfile` turns it off:
    /// bodies are then read in `file_chunk` pieces, as on TLS).
    pub sendfile: bool,
    /// Bytes read from a file per read (TLS, or `sendfile` off).
    pub file_chunk: usize,
    /// Read-ahead bound of file and stream bodies (bytes queued for the socket).
    pub high_water: usize,
    /// Authentication of HTTP requests and WebSocket upgrades ([`auth`]).
    pub auth: Option<auth::AuthConfig>,
    /// Serve the built-in test page and client ([`builtin`]) in `ringwire serve`'s app.
    pub test_page: bool,
    /// Multipart uploads ([`upload`]) in `ringwire serve`'s app (`--upload-dir`).
    pub upload: Option<upload::UploadConfig>,
    /// The connection log file ([`log`], `--log-file`).
    pub log: Option<log::LogConfig>,
    /// Server-Sent Events: replay buffers and the slow-reader limit ([`sse`]).
    pub sse: sse::SseConfig,
    /// Forwarding rules ([`forward`], `--forward PREFIX=URL`), tried in order after the
    /// before-request hook and before the routes.
    pub forward: Vec<forward::ForwardRule>,
    /// A forwarded request gets 504 when its upstream sends nothing for this long.
    pub forward_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            limits: Limits::default(),
            www: None,
            www_cache: files::CacheConfig::default(),
            cors: None,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            sendfile: true,
            file_chunk: DEFAULT_FILE_CHUNK,
            high_water: DEFAULT_HIGH_WATER,
            auth: None,
            test_page: false,
            upload: None,
            log: None,
            sse: sse::SseConfig::default(),
            forward: Vec::new(),
            forward_timeout: forward::DEFAULT_FORWARD_TIMEOUT,
        }
    }
}

/// A request as handlers see it (head owned; the body for whole-body routes).
pub struct Request {
    method: String,
    path: String,
    query: Option<String>,
    http10: bool,
    headers: Vec<(String, Vec<u8>)>,
    peer: SocketAddr,
    body: Vec<u8>,
    rest: usize,
}

impl std::fmt::Debug for Request {
    /// The head's shape and the body's length, not header values or body bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Request {
    /// The method, as sent (`GET`, `POST`...).
    pub fn method(&self) -> &str {
        &self.method
    }
    /// The path (without the query), as sent (percent-encoded).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The query, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    /// A query parameter's raw value (`?a=1&b` gives `Some("1")` and `Some("")`).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
    /// The part of the path after a prefix route's prefix ("" for exact routes).
    pub fn path_rest(&self) -> &str {
        self.path.get(self.rest..).unwrap_or_default()
    }
    /// The first header named `name` (case-insensitive), raw bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
    /// The first header named `name`, if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }
    /// Every header, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
    /// The whole body (empty for streaming routes, which get it piece by piece).
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// True for HTTP/1.0 requests.
    pub fn is_http10(&self) -> bool {
        self.http10
    }
    /// A request built by hand (tests of handlers).
    pub fn new(method: &str, target: &str, headers: &[(&str, &str)]) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.to_owned(), None),
        };
        Request {
            method: method.to_owned(),
            path,
            query,
            http10: false,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
                .collect(),
            peer: SocketAddr::from(([127, 0, 0, 1], 0)),
            body: Vec::new(),
            rest: 0,
        }
    }
}

/// A body produced piece by piece, pulled as the socket drains.
pub trait BodyStream: 'static {
    /// The next piece; `None` ends the body. Called while less than
    /// [`HttpConfig::high_water`] bytes are queued.
    fn next_chunk(&mut self) -> Option<Bytes>;
    /// The total length if known in advance (sent as Content-Length; else chunked).
    fn total_len(&self) -> Option<u64> {
        None
    }
}

/// Receives a streaming route's body as it arrives.
pub trait BodySink: 'static {
    /// A piece of the body (already de-chunked).
    fn data(&mut self, req: &Request, chunk: &[u8]);
    /// The body ended; answer.
    fn finish(self: Box<Self>, req: &Request) -> Response;
}

/// A response body.
pub enum Body {
    /// No content.
    Empty,
    /// These bytes.
    Bytes(Bytes),
    /// Part of a file, read in chunks as the socket drains.
    File(files::FileBody),
    /// A stream.
    Stream(Box<dyn BodyStream>),
    /// A Server-Sent Events stream (held open).
    Sse(Box<sse::SseBody>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::File(fb) => write!(f, "File({} bytes)", fb.remaining()),
            Body::Stream(_) => f.write_str("Stream"),
            Body::Sse(_) => f.write_str("Sse"),
        }
    }
}

/// A response: status, header fields (framing fields are the crate's), body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields (not Content-Length / Transfer-Encoding: the body decides those).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

impl Response {
    /// An empty response with this status.
    pub fn status(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }
    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response::bytes(
            status,
            "text/plain; charset=utf-8",
            Bytes::from(text.into()),
        )
    }
    /// A response with these bytes and content type.
    pub fn bytes(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Bytes(body.into()),
        }
    }
    /// A streamed response.
    pub fn stream(status: u16, content_type: &str, s: impl BodyStream) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Stream(Box::new(s)),
        }
    }
    /// The file at `path`, with MIME type, ETag, Last-Modified, conditional requests and
    /// ranges answered as for static files (404 if it does not exist).
    pub fn file(req: &Request, path: impl Into<PathBuf>) -> Self {
        files::file_response(req, &path.into())
    }
    /// Add a header field.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    fn error(status: u16) -> Self {
        let reason = StatusCode(status).reason_phrase();
        Response::text(status, format!("{status} {reason}\n"))
    }
}

type HandlerFn = dyn Fn(&Request) -> Response + Send + Sync;
type SinkFn = dyn Fn(&Request) -> Box<dyn BodySink> + Send + Sync;
type BeforeFn = dyn Fn(&Request) -> Option<Response> + Send + Sync;

enum RouteKind {
    Whole(Arc<HandlerFn>),
    Streaming(Arc<SinkFn>),
    Sse(Arc<SseEndpoint>),
}

struct Route {
    /// `None` matches every method.
    method: Option<String>,
    path: String,
    prefix: bool,
    kind: RouteKind,
}

impl Route {
    fn matches_path(&self, path: &str) -> bool {
        if self.prefix {
            path.starts_with(self.path.as_str())
        } else {
            path == self.path
        }
    }
    fn matches_method(&self, m: &str) -> bool {
        match &self.method {
            None => true,
            Some(x) => x == m || (x == "GET" && m == "HEAD"),
        }
    }
}

/// The application: settings, hook and routes, shared by every core.
pub struct HttpApp {
    cfg: HttpConfig,
    /// `cfg.www`, canonicalized once.
    www: Option<PathBuf>,
    auth: Option<Arc<auth::Auth>>,
    before: Option<Arc<BeforeFn>>,
    routes: Vec<Route>,
    /// Routes whose bodies may exceed `limits.max_body` (uploads): path, limit.
    body_limits: Vec<(String, u64)>,
    /// SSE subscriptions (connection, channel) on every core of this app.
    sse_subscriptions: std::sync::atomic::AtomicIsize,
}

impl Default for HttpApp {
    fn default() -> Self {
        HttpApp::new(HttpConfig::default())
    }
}

impl std::fmt::Debug for HttpApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApp")
            .field("cfg", &self.cfg)
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl HttpApp {
    /// An application with these settings and no routes.
    pub fn new(cfg: HttpConfig) -> Self {
        let www = cfg
            .www
            .as_ref()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()));
        let auth = cfg.auth.clone().map(|a| Arc::new(auth::Auth::new(a)));
        HttpApp {
            cfg,
            www,
            auth,
            before: None,
            routes: Vec::new(),
            body_limits: Vec::new(),
            sse_subscriptions: std::sync::atomic::AtomicIsize::new(0),
        }
    }
    /// The settings.
    pub fn config(&self) -> &HttpConfig {
        &self.cfg
    }
    /// SSE channel subscriptions (one per connection and channel) open now on every core
    /// serving this app.
    pub fn sse_subscriptions(&self) -> usize {
        let n = self
            .sse_subscriptions
            .load(std::sync::atomic::Ordering::Relaxed);
        usize::try_from(n).unwrap_or(0)
    }
    fn sse_joined(&self, n: isize) {
        self.sse_subscriptions
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    /// The authenticator (from [`HttpConfig::auth`]), shared by every core; the WebSocket
    /// plugin checks upgrades with it.
    pub fn auth(&self) -> Option<&Arc<auth::Auth>> {
        self.auth.as_ref()
    }
    /// The before-request hook: runs for every request before routing; `Some` answers it.
    pub fn before(
        mut self,
        f: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static,
    ) -> Self {
        self.before = Some(Arc::new(f));
        self
    }
    /// Forward requests under `prefix` to `upstream` ([`forward`]), streamed both ways.
    pub fn forward(mut self, prefix: &str, upstream: forward::Upstream) -> Self {
        self.cfg.forward.push(forward::ForwardRule {
            prefix: prefix.to_owned(),
            upstream,
        });
        self
    }
    /// A route for `method` (`None`: any) and the exact `path`; the handler gets the whole body.
    pub fn route(
        mut self,
        method: Option<&str>,
        path: &str,
        f: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.routes.push(Route {
            method: method.map(str::to_owned),
            path: path.to_owned(),
            prefix: false,
            kind: RouteKind::Whole(Arc::new(f)),
        });
        self
    }
    /// `GET` (and `HEAD`) on `path`.
    pub fn get(self, path: &str, f: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        self.route(Some("GET"), path, f)
    }
    /// `POST` on `path`.
    pub fn post(
        self,
        path: &str,
        f: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.route(Some("POST"), path, f)
    }
    /// A route for every path starting with `prefix` ([`Request::path_rest`] gives the rest).
    pub fn prefix(
        mut self,
        method: Option<&str>,
        prefix: &str,
        f: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.routes.push(Route {
            method: method.map(str::to_owned),
            path: prefix.to_owned(),
            prefix: true,
            kind: RouteKind::Whole(Arc::new(f)),
        });
        self
    }
    /// A route whose body is streamed to a [`BodySink`] made per request.
    pub fn streaming(
        mut self,
        method: Option<&str>,
        path: &str,
        f: impl Fn(&Request) -> Box<dyn BodySink> + Send + Sync + 'static,
    ) -> Self {
        self.routes.push(Route {
            method: method.map(str::to_owned),
            path: path.to_owned(),
            prefix: false,
            kind: RouteKind::Streaming(Arc::new(f)),
        });
        self
    }
    /// Multipart uploads at `POST cfg.path`, streamed to `cfg.dir` ([`upload`]); the route's
    /// body limit is `cfg.max_body` instead of the codec's `max_body`.
    pub fn upload(mut self, cfg: upload::UploadConfig) -> Self {
        let cfg = Arc::new(cfg);
        self.body_limits.push((cfg.path.clone(), cfg.max_body));
        let path = cfg.path.clone();
        self.streaming(Some("POST"), &path, move |req| {
            Box::new(upload::UploadSink::new(cfg.clone(), req))
        })
    }
    /// A Server-Sent Events endpoint at `path` (GET).
    pub fn sse(mut self, path: &str, ep: SseEndpoint) -> Self {
        self.routes.push(Route {
            method: Some("GET".into()),
            path: path.to_owned(),
            prefix: false,
            kind: RouteKind::Sse(Arc::new(ep)),
        });
        self
    }

    fn allow(&self, path: &str) -> String {
        let mut ms: Vec<&str> = Vec::new();
        for r in self.routes.iter().filter(|r| r.matches_path(path)) {
            match &r.method {
                None => return "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS".into(),
                Some(m) => {
                    if !ms.contains(&m.as_str()) {
                        ms.push(m);
                    }
                    if m == "GET" && !ms.contains(&"HEAD") {
                        ms.push("HEAD");
                    }
                }
            }
        }
        if self.cfg.www.is_some() {
            for m in ["GET", "HEAD"] {
                if !ms.contains(&m) {
                    ms.push(m);
                }
            }
        }
        ms.push("OPTIONS");
        ms.join(", ")
    }
}

/// What the request being read will get.
enum Action {
    Respond(Response),
    Whole(Arc<HandlerFn>),
    Sink(Box<dyn BodySink>),
    Sse(Arc<SseEndpoint>),
    /// To be forwarded by this rule ([`forward`]).
    Forward(usize),
    /// Being forwarded through this upstream connection.
    Forwarding(ConnId),
}

struct Reading {
    req: Request,
    action: Action,
}

struct Outgoing {
    resp: Response,
    head: bool,
    started: bool,
    origin: Option<String>,
    /// A forwarded response, written as its upstream connection delivers it.
    fwd: Option<ConnId>,
}

/// The per-connection HTTP state: a connection reading requests and writing answers, or what
/// is left of one once it carries a live Server-Sent Events stream (the stream's own state, as
/// a WebSocket keeps its own and drops the HTTP one).
pub struct HttpState(Repr);

enum Repr {
    Full(Box<ConnState>),
    Sse(Box<sse::SseConn>),
}

impl HttpState {
    /// True for the outgoing connection of a forwarded request ([`forward`]).
    pub fn is_upstream(&self) -> bool {
        matches!(&self.0, Repr::Full(c) if c.upstream)
    }
    /// The connection's id.
    pub fn id(&self) -> ConnId {
        match &self.0 {
            Repr::Full(c) => c.id,
            Repr::Sse(s) => s.id,
        }
    }
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Repr::Full(c) => c.fmt(f),
            Repr::Sse(_) => f.write_str("HttpState(live SSE stream)"),
        }
    }
}

/// A connection reading requests and writing answers.
pub(crate) struct ConnState {
    codec: ServerConn,
    /// The request being read (boxed: a keep-alive connection spends most of its life between
    /// requests).
    reading: Option<Box<Reading>>,
    queue: VecDeque<Outgoing>,
    failed: Option<HttpError>,
    read_closed: bool,
    last_rx: Instant,
    /// When the partial request head now buffered began arriving.
    head_since: Option<Instant>,
    id: ConnId,
    /// The Server-Sent Events stream this connection carries, if any.
    pub(crate) sse: Option<Box<sse::SseConn>>,
    /// An upstream connection of a forwarded request, not a client.
    upstream: bool,
    fwd: forward::ForwardClient,
}

impl std::fmt::Debug for ConnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnState")
            .field("codec", &self.codec)
            .field("queued", &self.queue.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// The HTTP plugin of one core.
pub struct HttpServer {
    app: Arc<HttpApp>,
    /// The codec's limits and upload routes' body limits, shared by this core's connections.
    codec: ServerSettings,
    out: Vec<u8>,
    fbuf: Vec<u8>,
    /// Static-file answers of this core.
    files: files::FileCache,
    /// SSE subscribers and replay buffers of this core.
    sse_hub: sse::Hub,
    /// Client connections with an HTTP state (not the upstreams of forwarded requests).
    conns: usize,
    log: Option<log::ConnLog>,
    /// Forwarded requests of this core.
    fwd: forward::Table,
}

impl Default for HttpServer {
    fn default() -> Self {
        HttpServer::new(Arc::new(HttpApp::default()))
    }
}

impl HttpServer {
    /// The plugin for one core.
    pub fn new(app: Arc<HttpApp>) -> Self {
        let log = app.cfg.log.as_ref().and_then(log::ConnLog::open);
        let files = files::FileCache::new(app.cfg.www_cache.clone());
        let codec = app
            .body_limits
            .iter()
            .fold(ServerSettings::new(app.cfg.limits), |s, (path, limit)| {
                s.with_body_limit(path, *limit)
            });
        HttpServer {
            app,
            codec,
            log,
            out: Vec::new(),
            fbuf: Vec::new(),
            files,
            sse_hub: sse::Hub::default(),
            conns: 0,
            fwd: forward::Table::default(),
        }
    }

    /// The application.
    pub fn app(&self) -> &Arc<HttpApp> {
        &self.app
    }

    /// This core's connection log, when [`HttpConfig::log`] is set (the WebSocket plugin
    /// writes its lines here too).
    pub fn log(&mut self) -> Option<&mut log::ConnLog> {
        self.log.as_mut()
    }

    /// Connections with an HTTP state on this core.
    pub fn connections(&self) -> usize {
        self.conns
    }

    /// SSE channel subscriptions (one per connection and channel) on this core.
    pub fn sse_subscriptions(&self) -> usize {
        self.sse_hub.subscriptions()
    }

    /// The SSE part of a WebSocket-plugin broadcast ([`sse`]).
    pub(crate) fn deliver_broadcast(&mut self, cx: &mut CoreCtx<'_>, m: &crate::ws::BroadcastMsg) {
        sse::deliver(self, cx, m);
    }

    /// A new connection's state (the keep-alive limit starts: the connection's deadline).
    pub fn new_conn(&mut self, cx: &mut ConnCtx<'_>) -> HttpState {
        HttpState(Repr::Full(Box::new(self.new_state(cx))))
    }

    fn new_state(&mut self, cx: &mut ConnCtx<'_>) -> ConnState {
        cx.set_deadline(self.app.cfg.keep_alive_timeout);
        let id = cx.id();
        self.conns += 1;
        ConnState {
            codec: ServerConn::with_settings(&self.codec),
            reading: None,
            queue: VecDeque::new(),
            failed: None,
            read_closed: false,
            last_rx: cx.now(),
            head_since: None,
            id,
            sse: None,
            upstream: false,
            fwd: forward::ForwardClient::default(),
        }
    }

    fn flush(&mut self, cx: &mut ConnCtx<'_>) {
        if !self.out.is_empty() && cx.send(crate::take_output(&mut self.out)).is_err() {
            cx.abort();
        }
    }

    fn route(&mut self, req: &Request, now: Instant) -> Action {
        let app = &self.app;
        if let Some(a) = &app.auth
            && let Some(r) = catch_unwind(AssertUnwindSafe(|| a.check_http(req)))
                .unwrap_or_else(|_| Some(Response::error(500)))
        {
            return Action::Respond(r);
        }
        if let Some(hook) = &app.before {
            match catch_unwind(AssertUnwindSafe(|| hook(req))) {
                Ok(Some(r)) => return Action::Respond(r),
                Ok(None) => {}
                Err(_) => return Action::Respond(Response::error(500)),
            }
        }
        if let Some(i) = app
            .cfg
            .forward
            .iter()
            .position(|f| req.path.starts_with(f.prefix.as_str()))
        {
            return Action::Forward(i);
        }
        let m = req.method();
        if m == "OPTIONS" {
            if req.path == "*" {
                return Action::Respond(Response::status(204).with_header("Allow", app.allow("")));
            }
            if let Some(c) = &app.cfg.cors
                && req.header("access-control-request-method").is_some()
            {
                let headers = if c.headers.is_empty() {
                    req.header_str("access-control-request-headers")
                        .unwrap_or_default()
                        .to_owned()
                } else {
                    c.headers.clone()
                };
                let mut r = Response::status(204)
                    .with_header("Access-Control-Allow-Methods", c.methods.clone())
                    .with_header("Access-Control-Max-Age", c.max_age.to_string());
                if !headers.is_empty() {
                    r = r.with_header("Access-Control-Allow-Headers", headers);
                }
                return Action::Respond(r);
            }
        }
        let mut path_matched = false;
        for r in &app.routes {
            if !r.matches_path(&req.path) {
                continue;
            }
            path_matched = true;
            if !r.matches_method(m) {
                continue;
            }
            return match &r.kind {
                RouteKind::Whole(f) => Action::Whole(f.clone()),
                RouteKind::Streaming(f) => match catch_unwind(AssertUnwindSafe(|| f(req))) {
                    Ok(sink) => Action::Sink(sink),
                    Err(_) => Action::Respond(Response::error(500)),
                },
                RouteKind::Sse(ep) => Action::Sse(ep.clone()),
            };
        }
        if m == "OPTIONS" {
            return Action::Respond(
                Response::status(204).with_header("Allow", app.allow(&req.path)),
            );
        }
        if let Some(root) = &app.www
            && (m == "GET" || m == "HEAD")
        {
            return Action::Respond(self.files.response(root, req, now));
        }
        if path_matched || app.cfg.www.is_some() {
            return Action::Respond(
                Response::error(405).with_header("Allow", app.allow(&req.path)),
            );
        }
        Action::Respond(Response::error(404))
    }

    fn on_body(reading: &mut Option<Box<Reading>>, chunk: &[u8]) {
        if let Some(r) = reading.as_mut() {
            match &mut r.action {
                Action::Whole(_) => r.req.body.extend_from_slice(chunk),
                Action::Sink(s) => {
                    let req = &r.req;
                    if catch_unwind(AssertUnwindSafe(|| s.data(req, chunk))).is_err() {
                        r.action = Action::Respond(Response::error(500));
                    }
                }
                Action::Respond(_)
                | Action::Sse(_)
                | Action::Forward(_)
                | Action::Forwarding(_) => {}
            }
        }
    }

    fn on_body_end(&mut self, st: &mut ConnState, cx: &mut ConnCtx<'_>) {
        let Some(reading) = st.reading.take() else {
            return;
        };
        let Reading { req, action } = *reading;
        let resp = match action {
            Action::Respond(r) => r,
            // Handlers may broadcast (`ws::publish_here`): sent from this core when they return.
            Action::Whole(f) => crate::ws::with_outbox(cx, || {
                catch_unwind(AssertUnwindSafe(|| f(&req))).unwrap_or_else(|_| Response::error(500))
            }),
            Action::Sink(s) => crate::ws::with_outbox(cx, || {
                catch_unwind(AssertUnwindSafe(|| s.finish(&req)))
                    .unwrap_or_else(|_| Response::error(500))
            }),
            Action::Sse(ep) => sse::open(st, cx, &req, ep),
            Action::Forward(_) | Action::Forwarding(_) => return,
        };
        let origin = self.app.cfg.cors.as_ref().and_then(|c| {
            let o = req.header_str("origin")?;
            Some(if c.origin == "*" {
                "*".to_owned()
            } else if c.origin.split(',').any(|x| x.trim() == o) {
                o.to_owned()
            } else {
                return None;
            })
        });
        st.queue.push_back(Outgoing {
            resp,
            head: req.method == "HEAD",
            started: false,
            origin,
            fwd: None,
        });
    }

    /// Write what can be written: heads, bytes, file and stream pieces up to the high-water mark.
    fn pump(&mut self, st: &mut ConnState, cx: &mut ConnCtx<'_>) {
        let now = SystemTime::now();
        let high = self.app.cfg.high_water;
        let mut sse_live = false;
        while let Some(o) = st.queue.front_mut() {
            if let Some(up) = o.fwd {
                match self.forward_pump(&mut st.codec, &mut o.started, up) {
                    forward::Step::Wait => break,
                    forward::Step::Finished => {
                        st.fwd.ups.retain(|u| *u != up);
                        st.queue.pop_front();
                        continue;
                    }
                    forward::Step::Broken => {
                        self.flush(cx);
                        cx.abort();
                        return;
                    }
                }
            }
            if !o.started {
                o.started = true;
                if Self::write_head(&mut st.codec, o, now, &mut self.out).is_err() {
                    // A handler's bad header or status: answer 500 instead.
                    o.resp = Response::error(500);
                    if Self::write_head(&mut st.codec, o, now, &mut self.out).is_err() {
                        cx.abort();
                        return;
                    }
                }
                if o.head && !matches!(o.resp.body, Body::Sse(_)) {
                    o.resp.body = Body::Empty;
                }
                // The head is out: a long body or a held-open stream does not need its fields.
                o.resp.headers = Vec::new();
                o.origin = None;
            }
            let done = match &mut o.resp.body {
                Body::Empty => true,
                Body::Bytes(b) => {
                    let _ = st.codec.write_body_chunk(b, &mut self.out);
                    true
                }
                Body::File(f)
                    if self.app.cfg.sendfile && !cx.is_tls() && !st.codec.body_is_chunked() =>
                {
                    // Ranges of the file go into the out-queue after the head (flushed first,
                    // to keep the order); the runtime writes them with sendfile(2).
                    loop {
                        if f.remaining() == 0 {
                            break true;
                        }
                        if self.out.len() + cx.buffered() >= high {
                            break false;
                        }
                        let (file, off, n) = f.take_range(high);
                        match st.codec.write_body_external(n as u64) {
                            Ok(true) => {
                                self.flush(cx);
                                if cx.send_file(&file, off, n).is_err() {
                                    cx.abort();
                                    return;
                                }
                            }
                            Ok(false) => {}
                            Err(_) => break true,
                        }
                    }
                }
                Body::File(f) => loop {
                    if self.out.len() + cx.buffered() >= high {
                        break false;
                    }
                    self.fbuf.resize(self.app.cfg.file_chunk.max(512), 0);
                    match f.read(&mut self.fbuf) {
                        Ok(0) => break true,
                        Ok(n) => {
                            let piece = self.fbuf.get(..n).unwrap_or_default();
                            if st.codec.write_body_chunk(piece, &mut self.out).is_err() {
                                break true;
                            }
                        }
                        Err(_) => {
                            // The file shrank or failed mid-body: the framing cannot be kept.
                            self.flush(cx);
                            cx.abort();
                            return;
                        }
                    }
                },
                Body::Stream(s) => loop {
                    if self.out.len() + cx.buffered() >= high {
                        break false;
                    }
                    match catch_unwind(AssertUnwindSafe(|| s.next_chunk())) {
                        Ok(Some(b)) => {
                            if st.codec.write_body_chunk(&b, &mut self.out).is_err() {
                                break true;
                            }
                        }
                        Ok(None) => break true,
                        Err(_) => {
                            self.flush(cx);
                            cx.abort();
                            return;
                        }
                    }
                },
                Body::Sse(b) => {
                    if o.head {
                        true
                    } else {
                        let pre = std::mem::take(&mut b.initial);
                        if !pre.is_empty() {
                            let _ = st.codec.write_body_chunk(&pre, &mut self.out);
                        }
                        sse_live = true;
                        false
                    }
                }
            };
            if !done {
                break;
            }
            if st.codec.finish_response(&mut self.out).is_err() {
                // A stream shorter than its declared length: the codec marked the close.
                st.queue.clear();
                break;
            }
            st.queue.pop_front();
        }
        if sse_live {
            sse::register(self, st);
        }
        while st.codec.poll_transmit(&mut self.out) {}
        if st.queue.is_empty() {
            if let Some(e) = st.failed.take() {
                let _ = st.codec.write_error_response(e, now, &mut self.out);
                self.flush(cx);
                cx.close();
                return;
            }
            if st.codec.should_close() || st.read_closed {
                self.flush(cx);
                cx.close();
                return;
            }
        }
        self.flush(cx);
    }

    fn write_head(
        codec: &mut ServerConn,
        o: &Outgoing,
        now: SystemTime,
        out: &mut Vec<u8>,
    ) -> Result<(), HttpError> {
        let r = &o.resp;
        let mut hs: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if let Some(orig) = &o.origin {
            hs.push(("Access-Control-Allow-Origin", orig));
            if orig != "*" {
                hs.push(("Vary", "Origin"));
            }
        }
        let len = match &r.body {
            _ if r.status == 304 || r.status == 204 => BodyLen::None,
            Body::Empty => BodyLen::None,
            Body::Bytes(b) => BodyLen::Known(b.len() as u64),
            Body::File(f) => BodyLen::Known(f.remaining()),
            Body::Stream(s) => s.total_len().map_or(BodyLen::Chunked, BodyLen::Known),
            Body::Sse(_) => BodyLen::Chunked,
        };
        codec.write_response_head(StatusCode(r.status), &hs, len, now, out)
    }

    fn handle(&mut self, st: &mut ConnState, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        st.last_rx = cx.now();
        if st.failed.is_some() || st.codec.should_close() {
            return data.len();
        }
        let mut consumed = 0;
        // The codec stops at `max_pipeline` unanswered requests; once answers went out it can
        // take more of what is already here.
        loop {
            let rest = data.get(consumed..).unwrap_or_default();
            let n = match st.codec.handle_read(rest) {
                Ok(n) => n,
                Err(e) => {
                    st.failed = Some(e);
                    rest.len()
                }
            };
            consumed += n;
            // Events borrow the codec; each arm works on the other fields.
            while let Some(ev) = st.codec.poll_event() {
                match ev {
                    Event::Request(head) => {
                        if let Some(l) = self.log.as_mut() {
                            let http10 = head.version == ringwire_http1::Version::Http10;
                            let m = head.method.as_str();
                            let peer = cx.peer_addr();
                            l.request(cx, peer, st.id, m, head.path, head.query, http10);
                        }
                        let body = head.body;
                        self.on_request(&mut st.reading, cx.peer_addr(), &head, cx.now());
                        if let Some(r) = st.reading.as_mut()
                            && let Action::Forward(rule) = r.action
                        {
                            r.action = match self.forward_start(cx, rule, &r.req, body) {
                                Some(up) => {
                                    st.fwd.ups.push(up);
                                    st.queue.push_back(Outgoing {
                                        resp: Response::status(502),
                                        head: r.req.method == "HEAD",
                                        started: false,
                                        origin: None,
                                        fwd: Some(up),
                                    });
                                    Action::Forwarding(up)
                                }
                                None => Action::Respond(Response::error(502)),
                            };
                        }
                    }
                    Event::Body(b) => match st.reading.as_ref().map(|r| &r.action) {
                        Some(Action::Forwarding(up)) => {
                            let up = *up;
                            self.forward_body(&mut st.fwd, cx, up, b);
                        }
                        _ => Self::on_body(&mut st.reading, b),
                    },
                    Event::Trailers(_) => {}
                    Event::BodyEnd => match st.reading.as_ref().map(|r| &r.action) {
                        Some(Action::Forwarding(up)) => {
                            let up = *up;
                            st.reading = None;
                            self.forward_end(cx, up);
                        }
                        _ => self.on_body_end(st, cx),
                    },
                }
            }
            if st.failed.is_some() {
                // The request being read failed: it gets the error response, not a handler's.
                st.reading = None;
            }
            self.pump(st, cx);
            if n == 0 || consumed >= data.len() || st.failed.is_some() || cx.is_closing() {
                let leftover = consumed < data.len();
                self.watch_head(st, cx, leftover);
                Self::release_if_idle(st, leftover);
                return consumed;
            }
        }
    }
}

impl HttpServer {
    /// A request limit passed: answer 408 first if `answer`, then close.
    fn time_out(&mut self, st: &mut ConnState, cx: &mut ConnCtx<'_>, answer: bool) {
        if answer {
            let _ = st.codec.write_error_response(
                HttpError::RequestTimeout,
                SystemTime::now(),
                &mut self.out,
            );
            self.flush(cx);
        }
        cx.close();
    }

    /// Between requests a keep-alive connection keeps no buffers: what parsing the last
    /// request and queueing its answer used (about 1 KB) goes back to the allocator, and the
    /// next request takes it again. `leftover`: bytes of a next request are already here.
    fn release_if_idle(st: &mut ConnState, leftover: bool) {
        if !leftover && st.reading.is_none() && st.queue.is_empty() {
            st.codec.release_buffers();
            if st.queue.capacity() > 0 {
                st.queue = VecDeque::new();
            }
        }
    }

    /// Start or stop the head deadline: a partial head is buffered when bytes are left over
    /// while no request is being read and no response waits.
    fn watch_head(&self, st: &mut ConnState, cx: &mut ConnCtx<'_>, leftover: bool) {
        let partial = leftover && st.reading.is_none() && st.queue.is_empty();
        match (partial, st.head_since) {
            (true, None) => {
                st.head_since = Some(cx.now());
                cx.set_timer(self.app.cfg.head_timeout, T_HEAD);
            }
            (false, Some(_)) => st.head_since = None,
            _ => {}
        }
    }

    fn on_request(
        &mut self,
        slot: &mut Option<Box<Reading>>,
        peer: SocketAddr,
        head: &ringwire_http1::RequestHead<'_>,
        now: Instant,
    ) {
        let mut req = Request {
            method: head.method.as_str().to_owned(),
            path: head.path.to_owned(),
            query: head.query.map(str::to_owned),
            http10: head.version == ringwire_http1::Version::Http10,
            headers: head
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect(),
            peer,
            body: Vec::new(),
            rest: 0,
        };
        if let Some(r) = self
            .app
            .routes
            .iter()
            .find(|r| r.prefix && r.matches_path(&req.path))
        {
            req.rest = r.path.len();
        }
        let action = match head.upgrade {
            Some(Upgrade::WebSocket) => Action::Respond(Response::text(
                400,
                "a WebSocket upgrade must be the first request on its connection\n",
            )),
            Some(Upgrade::Connect) => Action::Respond(Response::error(405)),
            _ => self.route(&req, now),
        };
        *slot = Some(Box::new(Reading { req, action }));
    }
}

/// True when the request head at the start of `buf` asks for a WebSocket upgrade (used by the
/// WebSocket plugin to decide whether a request it cannot accept is plain HTTP).
pub fn wants_websocket(buf: &[u8]) -> bool {
    let mut c = ServerConn::default();
    if c.handle_read(buf).is_err() {
        return false;
    }
    matches!(
        c.poll_event(),
        Some(Event::Request(h)) if h.upgrade == Some(Upgrade::WebSocket)
    )
}

/// The callbacks of a connection reading requests and writing answers.
impl HttpServer {
    /// A connection whose only business left is a live SSE stream keeps the stream's state
    /// alone: the codec, the response queue and the request state go (~600 B a subscriber).
    /// A stream with requests pipelined behind it (never answered) keeps them as they were.
    fn settle(&mut self, st: &mut HttpState) {
        let Repr::Full(c) = &mut st.0 else { return };
        let lone_stream = c.sse.as_ref().is_some_and(|s| s.registered)
            && sse::live(c)
            && c.queue.len() == 1
            && c.reading.is_none()
            && c.failed.is_none()
            && !c.read_closed
            && c.fwd.ups.is_empty();
        if lone_stream && let Some(s) = c.sse.take() {
            st.0 = Repr::Sse(s);
        }
    }

    fn full_on_data(&mut self, st: &mut ConnState, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        if st.upstream {
            return self.forward_up_data(cx, data);
        }
        self.handle(st, cx, data)
    }

    fn full_on_read_closed(&mut self, st: &mut ConnState, cx: &mut ConnCtx<'_>) {
        if st.upstream {
            return self.forward_up_eof(cx);
        }
        st.read_closed = true;
        let unconsumed = cx.unconsumed();
        if st.failed.is_none() && st.codec.handle_eof(unconsumed).is_err() {
            // Cut short mid-request: that request gets no answer; the ones before it do.
            st.reading = None;
        }
        if st.queue.is_empty() || st.sse.is_some() {
            cx.close();
        } else {
            self.pump(st, cx);
        }
    }

    fn full_on_drained(&mut self, st: &mut ConnState, cx: &mut ConnCtx<'_>) {
        if st.upstream {
            return self.forward_up_drained(cx);
        }
        if !st.queue.is_empty() {
            let before = st.queue.len();
            self.pump(st, cx);
            if st.queue.len() < before && cx.unconsumed() > 0 && !cx.is_closing() {
                // Pipelined requests wait in the input buffer (past `max_pipeline`): offer them
                // again now that responses finished.
                cx.resume_reading();
            }
            Self::release_if_idle(st, cx.unconsumed() > 0);
        }
        if !st.fwd.ups.is_empty() {
            let ups = std::mem::take(&mut st.fwd.ups);
            self.forward_client_drained(cx, &ups);
            st.fwd.ups = ups;
        }
    }

    /// The keep-alive limit: close a connection quiet that long (408 to a request half in).
    /// An SSE stream's heartbeat shares the deadline ([`sse::heartbeat`]).
    fn full_on_deadline(&mut self, st: &mut ConnState, cx: &mut ConnCtx<'_>) {
        if st.upstream {
            return;
        }
        let is_live = sse::live(st);
        let heartbeat = match st.sse.as_mut() {
            Some(s) => sse::heartbeat(self, s, cx, is_live),
            None => None,
        };
        let idle = self.app.cfg.keep_alive_timeout;
        let now = cx.now();
        let quiet = now.saturating_duration_since(st.last_rx);
        if !st.queue.is_empty() || quiet < idle {
            let wait = if st.queue.is_empty() {
                idle - quiet
            } else {
                idle
            };
            cx.set_deadline(heartbeat.map_or(wait, |hb| hb.min(wait)));
            return;
        }
        let half_in = st.codec.request_in_progress(cx.unconsumed()) || st.reading.is_some();
        if half_in {
            st.reading = None;
        }
        self.time_out(st, cx, half_in);
    }

    fn full_on_timer(&mut self, st: &mut ConnState, cx: &mut ConnCtx<'_>, token: u64) {
        if st.upstream {
            return self.forward_up_timer(cx, token);
        }
        match token {
            forward::T_FWD_POLL => {
                let up = match st.reading.as_ref().map(|r| &r.action) {
                    Some(Action::Forwarding(up)) => Some(*up),
                    _ => None,
                };
                self.forward_client_poll(&mut st.fwd, cx, up);
            }
            T_HEAD => {
                let Some(since) = st.head_since else { return };
                let waited = cx.now().saturating_duration_since(since);
                let limit = self.app.cfg.head_timeout;
                if waited < limit {
                    cx.set_timer(limit - waited, T_HEAD);
                    return;
                }
                let answer = st.queue.is_empty() && st.reading.is_none();
                self.time_out(st, cx, answer);
            }
            T_SSE_TICK => {
                let is_live = sse::live(st);
                if let Some(s) = st.sse.as_mut() {
                    sse::on_timer(self, s, cx, is_live);
                }
            }
            _ => {}
        }
    }

    fn full_on_close(&mut self, st: &ConnState, cx: &mut CoreCtx<'_>) {
        if st.upstream {
            return self.forward_up_closed(cx, st.id);
        }
        self.forward_client_closed(cx, &st.fwd.ups);
        self.conns = self.conns.saturating_sub(1);
        if let Some(s) = &st.sse {
            sse::leave(self, s);
        }
    }
}

impl Plugin for HttpServer {
    type Conn = HttpState;

    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<HttpState> {
        if cx.is_outgoing() {
            // The upstream of a forwarded request ([`forward`]).
            if !self.forward_up_open(cx) {
                return None;
            }
            let mut st = self.new_state(cx);
            // The forwarding keeps its own timers on an upstream.
            cx.clear_deadline();
            st.upstream = true;
            self.conns -= 1;
            return Some(HttpState(Repr::Full(Box::new(st))));
        }
        Some(self.new_conn(cx))
    }

    fn on_data(&mut self, st: &mut HttpState, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let n = match &mut st.0 {
            Repr::Full(c) => self.full_on_data(c, cx, data),
            // A live stream answers nothing more: what its client sends is read and dropped.
            Repr::Sse(_) => data.len(),
        };
        self.settle(st);
        n
    }

    fn on_connect_error(&mut self, cx: &mut CoreCtx<'_>, id: ConnId, err: std::io::Error) {
        self.forward_connect_error(cx, id, &err);
    }

    fn on_read_closed(&mut self, st: &mut HttpState, cx: &mut ConnCtx<'_>) {
        match &mut st.0 {
            Repr::Full(c) => self.full_on_read_closed(c, cx),
            Repr::Sse(_) => cx.close(),
        }
    }

    fn on_drained(&mut self, st: &mut HttpState, cx: &mut ConnCtx<'_>) {
        if let Repr::Full(c) = &mut st.0 {
            self.full_on_drained(c, cx);
            self.settle(st);
        }
    }

    /// The keep-alive limit: close a connection quiet that long (408 to a request half in).
    /// An SSE stream's heartbeat shares the deadline ([`sse::heartbeat`]).
    fn on_deadline(&mut self, st: &mut HttpState, cx: &mut ConnCtx<'_>) {
        match &mut st.0 {
            Repr::Full(c) => self.full_on_deadline(c, cx),
            Repr::Sse(s) => {
                if let Some(next) = sse::heartbeat(self, s, cx, true) {
                    cx.set_deadline(next);
                }
            }
        }
    }

    fn on_timer(&mut self, st: &mut HttpState, cx: &mut ConnCtx<'_>, token: u64) {
        match &mut st.0 {
            Repr::Full(c) => self.full_on_timer(c, cx, token),
            Repr::Sse(s) => {
                if token == T_SSE_TICK {
                    sse::on_timer(self, s, cx, true);
                }
            }
        }
    }

    fn on_close(&mut self, st: HttpState, cx: &mut CoreCtx<'_>, _reason: CloseReason) {
        match &st.0 {
            Repr::Full(c) => self.full_on_close(c, cx),
            Repr::Sse(s) => {
                self.conns = self.conns.saturating_sub(1);
                sse::leave(self, s);
            }
        }
    }

    fn on_message(&mut self, cx: &mut CoreCtx<'_>, msg: &BusMessage) {
        sse::on_message(self, cx, msg);
    }

    fn on_core_timer(&mut self, _cx: &mut CoreCtx<'_>, token: u64) {
        if token == log::T_LOG_FLUSH
            && let Some(l) = self.log.as_mut()
        {
            l.on_timer();
        }
    }

    fn on_stop(&mut self, _cx: &mut CoreCtx<'_>) {
        if let Some(l) = self.log.as_mut() {
            l.flush();
        }
    }
}
