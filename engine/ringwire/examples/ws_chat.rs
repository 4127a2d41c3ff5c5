//! A WebSocket chat on every core: "/join ROOM" subscribes, anything else goes to the rooms
//! the sender joined (the sender excluded), across all cores.
//!
//! ```sh
//! cargo run --release -p ringwire --example ws_chat -- 127.0.0.1:9002
//! # in two terminals, e.g. with websocat: websocat ws://127.0.0.1:9002/chat
//! ```

use std::sync::Arc;

use ringwire::runtime::{RuntimeConfig, ServerBuilder};
use ringwire::ws::{Broadcast, MessageKind, WsCtx, WsHandler, WsRequest, WsServer, WsServerConfig};

struct Chat;

impl WsHandler for Chat {
    fn on_upgrade(&mut self, req: &WsRequest<'_>) -> Result<(), u16> {
        if req.path() == "/chat" {
            Ok(())
        } else {
            Err(404)
        }
    }

    fn on_message(&mut self, ws: &mut WsCtx<'_, '_>, kind: MessageKind, data: &[u8]) {
        if kind != MessageKind::Text {
            return;
        }
        let text = String::from_utf8_lossy(data);
        if let Some(room) = text.strip_prefix("/join ") {
            ws.subscribe(room.trim());
            let _ = ws.send_text(&format!("joined {}", room.trim()));
            return;
        }
        let rooms: Vec<String> = ws.channels().map(str::to_owned).collect();
        for room in rooms {
            let mut b =
                Broadcast::to_channel(room.as_str(), MessageKind::Text, format!("[{room}] {text}"));
            b.exclude.push(ws.id());
            ws.broadcast(b);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into())
        .parse()?;
    let cfg = Arc::new(WsServerConfig::default());
    let mut b = ServerBuilder::new(RuntimeConfig::default());
    b.tcp(addr);
    let server = b.start(move |_core| WsServer::new(Chat, cfg.clone()))?;
    println!(
        "chat on ws://{}/chat (driver={})",
        server.local_addrs()[0],
        server.driver()
    );
    server.join();
    Ok(())
}
