//! `ringwire serve`: the listeners of the binary, each with its service, on one server.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use ringwire_runtime::{ConnCtx, CoreCtx, Plugin, RuntimeConfig, ServerBuilder, ServerHandle};

use crate::tcp::Echo;
use crate::unavailable::Unavailable;

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// HTTP and WebSocket (a 503 stand-in until those plugins land).
    Http,
    /// Raw TCP echo.
    TcpEcho,
}

/// Routes each connection to the service of the listener it arrived on.
pub struct Router {
    services: Arc<Vec<Service>>,
    http: Unavailable,
    echo: Echo,
}

/// A connection's service state.
pub enum RouterConn {
    /// On the HTTP listener.
    Http(()),
    /// On an echo listener.
    Echo(()),
}

impl Router {
    /// A router for one core; `services[i]` serves listener `i`.
    pub fn new(services: Arc<Vec<Service>>) -> Self {
        Router {
            services,
            http: Unavailable,
            echo: Echo,
        }
    }
}

impl Plugin for Router {
    type Conn = RouterConn;

    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<RouterConn> {
        match self.services.get(cx.listener().0).copied()? {
            Service::Http => self.http.on_open(cx).map(RouterConn::Http),
            Service::TcpEcho => self.echo.on_open(cx).map(RouterConn::Echo),
        }
    }

    fn on_data(&mut self, conn: &mut RouterConn, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        match conn {
            RouterConn::Http(c) => self.http.on_data(c, cx, data),
            RouterConn::Echo(c) => self.echo.on_data(c, cx, data),
        }
    }

    fn on_drained(&mut self, conn: &mut RouterConn, cx: &mut ConnCtx<'_>) {
        match conn {
            RouterConn::Http(c) => self.http.on_drained(c, cx),
            RouterConn::Echo(c) => self.echo.on_drained(c, cx),
        }
    }

    fn on_stop(&mut self, _cx: &mut CoreCtx<'_>) {}
}

/// Start a server with these listeners; returns it once every core listens.
pub fn start(
    cfg: RuntimeConfig,
    listeners: &[(SocketAddr, Service)],
) -> std::io::Result<ServerHandle> {
    let mut b = ServerBuilder::new(cfg);
    for (addr, _) in listeners {
        b.tcp(*addr);
    }
    let services: Arc<Vec<Service>> = Arc::new(listeners.iter().map(|(_, s)| *s).collect());
    b.start(move |_core| Router::new(services.clone()))
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
