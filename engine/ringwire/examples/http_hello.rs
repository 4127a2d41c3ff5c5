//! An HTTP server on one core: `GET /hello` from a handler, static files from a directory,
//! the SSE clock at `/events`, WebSocket echo on every other upgrade. Used by
//! `scripts/http-bench.sh`; `RINGWIRE_DRIVER=epoll` picks the fallback driver.
//!
//! ```sh
//! cargo run -p ringwire --example http_hello -- 127.0.0.1:8080 ./www
//! ```

use std::sync::Arc;

use ringwire::http::{HttpApp, HttpConfig, HttpServer, Response, SseEndpoint};
use ringwire::runtime::{RuntimeConfig, ServerBuilder};
use ringwire::ws::{EchoHandler, WsServer, WsServerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;
    let www = args.next().map(std::path::PathBuf::from);
    let app = Arc::new(
        HttpApp::new(HttpConfig {
            www,
            ..HttpConfig::default()
        })
        .get("/hello", |_| Response::text(200, "Hello, World!"))
        .sse("/events", SseEndpoint::clock()),
    );
    let ws = Arc::new(WsServerConfig::default());
    let mut b = ServerBuilder::new(RuntimeConfig {
        threads: 1,
        ..RuntimeConfig::default()
    });
    b.tcp(addr);
    let server = b.start(move |_core| {
        WsServer::new(EchoHandler, ws.clone()).with_http(HttpServer::new(app.clone()))
    })?;
    println!(
        "http on {} (driver={}, threads={})",
        server.local_addrs()[0],
        server.driver(),
        server.threads()
    );
    server.join();
    Ok(())
}
