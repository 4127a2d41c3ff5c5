//! `ringwire serve`: the listeners of the binary, each with its service, on one server.
//!
//! [`Router`] is the one plugin the runtime runs on every core; it hands each connection (and
//! each bus message, timer and stop) to the service of the listener it arrived on.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use ringwire_runtime::tls::TlsAcceptor;
use ringwire_runtime::{
    BusMessage, Bytes, CloseReason, ConnCtx, ConnId, CoreCtx, Plugin, RuntimeConfig, ServerBuilder,
    ServerHandle,
};

use crate::http::{HttpApp, HttpConfig, HttpServer};
use crate::stun::{StunConn, StunServer, StunService, is_stun_timer};
use crate::tcp::Echo;
use crate::ws::{HttpConn, ServeHandler, WsServer, WsServerConfig};

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// HTTP and WebSocket (WebSocket echo on every path; plain HTTP: the SSE clock at
    /// `/events`, static files from `--www`, else 404).
    Http,
    /// Raw TCP echo.
    TcpEcho,
    /// STUN and TURN, on UDP and TCP at the same address.
    Stun,
}

/// Everything the services of `ringwire serve` are configured with.
#[derive(Clone, Debug, Default)]
pub struct ServeConfig {
    /// The WebSocket plugin's settings.
    pub ws: WsServerConfig,
    /// The HTTP plugin's settings (plain requests on the HTTP/WebSocket listeners).
    pub http: HttpConfig,
    /// The STUN/TURN service of the [`Service::Stun`] listeners.
    pub stun: Option<StunService>,
}

impl ServeConfig {
    /// Raise the runtime's per-connection buffer limits to what the services need: a WebSocket
    /// frame is buffered whole before it is parsed (frame limit + header + one read), and an
    /// echoed message is queued whole (message limit + header).
    pub fn fit_runtime(&self, cfg: &mut RuntimeConfig) {
        let codec = &self.ws.codec;
        let need_in = codec
            .max_frame_payload
            .saturating_add(14 + cfg.recv_buffer_size.max(cfg.epoll_read_buffer));
        cfg.max_in_buffer = cfg.max_in_buffer.max(need_in);
        cfg.max_out_buffer = cfg
            .max_out_buffer
            .max(codec.max_message_size.saturating_add(14));
    }
}

/// Routes each connection to the service of the listener it arrived on.
pub struct Router {
    services: Arc<Vec<Service>>,
    http: WsServer<ServeHandler>,
    echo: Echo,
    stun: Option<StunServer>,
}

/// A connection's service state.
pub enum RouterConn {
    /// On the HTTP/WebSocket listener.
    Http(HttpConn),
    /// On an echo listener.
    Echo(()),
    /// On a STUN/TURN listener (boxed: it is the largest, and the rarest on a busy server;
    /// every connection slot is as large as the largest variant).
    Stun(Box<StunConn>),
}

impl Router {
    /// A router for one core; `services[i]` serves listener `i`.
    pub fn new(services: Arc<Vec<Service>>, cfg: &ServeConfig) -> Self {
        Router {
            services,
            http: WsServer::new(ServeHandler::default(), Arc::new(cfg.ws.clone()))
                .with_http(HttpServer::new(serve_app(&cfg.http))),
            echo: Echo,
            stun: None,
        }
    }

    /// Serve the STUN/TURN listeners (and their relay sockets) with this core's plugin.
    pub fn with_stun(mut self, stun: StunServer) -> Self {
        self.stun = Some(stun);
        self
    }
}

impl Plugin for Router {
    type Conn = RouterConn;

    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<RouterConn> {
        if cx.is_outgoing() {
            // Outgoing connections (listener index u16::MAX) are forwarded requests' upstreams.
            return self.http.on_open(cx).map(RouterConn::Http);
        }
        match self.services.get(cx.listener().0).copied()? {
            Service::Http => self.http.on_open(cx).map(RouterConn::Http),
            Service::TcpEcho => self.echo.on_open(cx).map(RouterConn::Echo),
            Service::Stun => self
                .stun
                .as_mut()?
                .on_open(cx)
                .map(|c| RouterConn::Stun(Box::new(c))),
        }
    }

    fn on_data(&mut self, conn: &mut RouterConn, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        match conn {
            RouterConn::Http(c) => self.http.on_data(c, cx, data),
            RouterConn::Echo(c) => self.echo.on_data(c, cx, data),
            RouterConn::Stun(c) => match self.stun.as_mut() {
                Some(s) => s.on_data(c, cx, data),
                None => data.len(),
            },
        }
    }

    fn on_owned_data(&mut self, conn: &mut RouterConn, cx: &mut ConnCtx<'_>, data: Bytes) {
        // Only the WebSocket plugin takes input.
        if let RouterConn::Http(c) = conn {
            self.http.on_owned_data(c, cx, data);
        }
    }

    fn on_read_closed(&mut self, conn: &mut RouterConn, cx: &mut ConnCtx<'_>) {
        match conn {
            RouterConn::Http(c) => self.http.on_read_closed(c, cx),
            RouterConn::Echo(c) => self.echo.on_read_closed(c, cx),
            RouterConn::Stun(_) => cx.close(),
        }
    }

    fn on_drained(&mut self, conn: &mut RouterConn, cx: &mut ConnCtx<'_>) {
        match conn {
            RouterConn::Http(c) => self.http.on_drained(c, cx),
            RouterConn::Echo(c) => self.echo.on_drained(c, cx),
            RouterConn::Stun(_) => {}
        }
    }

    fn on_timer(&mut self, conn: &mut RouterConn, cx: &mut ConnCtx<'_>, token: u64) {
        match conn {
            RouterConn::Http(c) => self.http.on_timer(c, cx, token),
            RouterConn::Echo(c) => self.echo.on_timer(c, cx, token),
            RouterConn::Stun(_) => {}
        }
    }

    fn on_deadline(&mut self, conn: &mut RouterConn, cx: &mut ConnCtx<'_>) {
        match conn {
            RouterConn::Http(c) => self.http.on_deadline(c, cx),
            RouterConn::Echo(c) => self.echo.on_deadline(c, cx),
            RouterConn::Stun(_) => {}
        }
    }

    fn on_close(&mut self, conn: RouterConn, cx: &mut CoreCtx<'_>, reason: CloseReason) {
        match conn {
            RouterConn::Http(c) => self.http.on_close(c, cx, reason),
            RouterConn::Echo(c) => self.echo.on_close(c, cx, reason),
            RouterConn::Stun(c) => {
                if let Some(s) = self.stun.as_mut() {
                    s.on_close(*c, cx, reason);
                }
            }
        }
    }

    fn on_connect_error(&mut self, cx: &mut CoreCtx<'_>, id: ConnId, err: std::io::Error) {
        self.http.on_connect_error(cx, id, err);
    }

    fn on_core_timer(&mut self, cx: &mut CoreCtx<'_>, token: u64) {
        if let Some(s) = self.stun.as_mut().filter(|_| is_stun_timer(token)) {
            s.on_core_timer(cx, token);
        } else {
            // The HTTP plugin's (the connection log's flush).
            self.http.on_core_timer(cx, token);
        }
    }

    fn on_datagram(
        &mut self,
        cx: &mut CoreCtx<'_>,
        sock: ringwire_runtime::UdpId,
        from: SocketAddr,
        data: &mut [u8],
    ) {
        // Only STUN binds UDP sockets (its listeners and its relays).
        if let Some(s) = self.stun.as_mut() {
            s.on_datagram(cx, sock, from, data);
        }
    }

    fn on_message(&mut self, cx: &mut CoreCtx<'_>, msg: &BusMessage) {
        self.http.on_message(cx, msg);
    }

    fn on_stop(&mut self, cx: &mut CoreCtx<'_>) {
        self.http.on_stop(cx);
        self.echo.on_stop(cx);
        if let Some(s) = self.stun.as_mut() {
            s.on_stop(cx);
        }
    }
}

/// The HTTP application of `ringwire serve` ([`crate::http::builtin::serve_app`]): the SSE
/// clock at `/events`, the test page, uploads, then static files.
pub fn serve_app(cfg: &HttpConfig) -> Arc<HttpApp> {
    Arc::new(crate::http::builtin::serve_app(cfg))
}

/// Start a server with these listeners and default service settings.
pub fn start(
    cfg: RuntimeConfig,
    listeners: &[(SocketAddr, Service)],
) -> std::io::Result<ServerHandle> {
    start_with(cfg, ServeConfig::default(), listeners)
}

/// Start a server with these listeners and service settings; returns once every core listens.
pub fn start_with(
    cfg: RuntimeConfig,
    services_cfg: ServeConfig,
    listeners: &[(SocketAddr, Service)],
) -> std::io::Result<ServerHandle> {
    let ls: Vec<Listener> = listeners
        .iter()
        .map(|&(addr, service)| Listener {
            addr,
            service,
            tls: None,
        })
        .collect();
    start_listeners(cfg, services_cfg, &ls)
}

/// One listener of `ringwire serve`.
#[derive(Clone, Debug)]
pub struct Listener {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it serves.
    pub service: Service,
    /// TLS on it (HTTPS/WSS; TURN over TLS is TCP only).
    pub tls: Option<Arc<TlsAcceptor>>,
}

/// Start a server with these listeners, plain or TLS; returns once every core listens.
pub fn start_listeners(
    mut cfg: RuntimeConfig,
    services_cfg: ServeConfig,
    listeners: &[Listener],
) -> std::io::Result<ServerHandle> {
    services_cfg.fit_runtime(&mut cfg);
    let cores = cfg.resolved_threads();
    let mut b = ServerBuilder::new(cfg);
    for l in listeners {
        match &l.tls {
            Some(acc) => {
                b.tcp_tls(l.addr, acc.clone());
            }
            None => {
                if l.service == Service::Stun {
                    // STUN answers UDP and TCP on one port (the caller resolves port 0 first).
                    b.udp(l.addr);
                }
                b.tcp(l.addr);
            }
        }
    }
    let services: Arc<Vec<Service>> = Arc::new(listeners.iter().map(|l| l.service).collect());
    b.start(move |core| {
        let r = Router::new(services.clone(), &services_cfg);
        match &services_cfg.stun {
            Some(svc) => r.with_stun(svc.plugin(core, cores)),
            None => r,
        }
    })
}

/// Print per-core counters to stdout, a line per core and one for their sum
/// (`stats core=0 accepted=12 ...`, then `stats core=all ...`); `ringwire serve` does it on
/// SIGUSR1. The counters are those the cores last published (every 100 ms).
pub fn print_stats(stats: &[ringwire_runtime::CoreStats]) {
    let mut out = std::io::stdout().lock();
    let total = ringwire_runtime::CoreStats::total(stats);
    let rows = stats.iter().enumerate().map(|(i, s)| (i.to_string(), s));
    for (core, s) in rows.chain(std::iter::once(("all".to_string(), &total))) {
        use std::fmt::Write as _;
        let mut line = format!("stats core={core}");
        for (name, v) in s.named() {
            let _ = write!(line, " {name}={v}");
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

/// Print the readiness lines, exactly `listening on ADDR (driver=D, threads=N)` per listener.
pub fn announce(server: &ServerHandle) {
    let mut out = std::io::stdout().lock();
    for a in server.local_addrs() {
        let _ = writeln!(
            out,
            "listening on {a} (driver={}, threads={})",
            server.driver(),
            server.threads()
        );
    }
    let _ = out.flush();
}
