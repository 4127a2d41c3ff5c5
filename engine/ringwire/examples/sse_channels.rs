//! WebSocket and Server-Sent Events clients in the same channels, on every core.
//!
//! - WebSocket on any path: send `sub:NAME` to join a channel, `NAME:TEXT` to broadcast TEXT
//!   to it (WebSocket and SSE subscribers);
//! - `GET /sse?channel=NAME&channel=...`: an SSE stream of those channels (resumable with
//!   `Last-Event-ID`);
//! - `POST /publish?channel=NAME` with a UTF-8 body: broadcast it from an HTTP handler;
//! - the main thread publishes the time to the channel `clock` every second through the
//!   server handle.
//!
//! ```sh
//! cargo run -p ringwire --example sse_channels -- 127.0.0.1:8080
//! curl -N 'http://127.0.0.1:8080/sse?channel=clock&channel=news'
//! curl -d 'hello' 'http://127.0.0.1:8080/publish?channel=news'
//! ```

use std::sync::Arc;
use std::time::Duration;

use ringwire::http::{HttpApp, HttpConfig, HttpServer, Response, SseEndpoint};
use ringwire::runtime::{RuntimeConfig, ServerBuilder};
use ringwire::ws::{self, Broadcast, MessageKind, WsCtx, WsHandler, WsServer, WsServerConfig};

/// `sub:NAME` joins a channel; `NAME:TEXT` broadcasts TEXT to it.
struct Chat;

impl WsHandler for Chat {
    fn on_message(&mut self, ws: &mut WsCtx<'_, '_>, kind: MessageKind, data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Some(ch) = text.strip_prefix("sub:") {
            ws.subscribe(ch);
        } else if let Some((ch, msg)) = text.split_once(':') {
            ws.broadcast(Broadcast::to_channel(ch, kind, msg.to_owned()));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;
    let app = Arc::new(
        HttpApp::new(HttpConfig::default())
            .sse("/sse", SseEndpoint::new("").with_query_channels(8))
            .post("/publish", |r| {
                let (Some(ch), Ok(text)) =
                    (r.query_param("channel"), std::str::from_utf8(r.body()))
                else {
                    return Response::text(400, "channel and a UTF-8 body, please\n");
                };
                ws::publish_here(Broadcast::to_channel(
                    ch,
                    MessageKind::Text,
                    text.to_owned(),
                ));
                Response::status(202)
            }),
    );
    let cfg = Arc::new(WsServerConfig::default());
    let mut b = ServerBuilder::new(RuntimeConfig::default());
    b.tcp(addr);
    let server = b.start(move |_core| {
        WsServer::new(Chat, cfg.clone()).with_http(HttpServer::new(app.clone()))
    })?;
    println!(
        "listening on {} (driver={}, threads={})",
        server.local_addrs()[0],
        server.driver(),
        server.threads()
    );
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        ws::publish(
            &server,
            &Broadcast::to_channel("clock", MessageKind::Text, now),
        );
    }
}
