//! WebSocket echo server on tokio-tungstenite, written like tokio-tungstenite's
//! own `examples/echo-server.rs` (the server of fastwebsockets' and
//! tokio-websockets' published benchmarks): `accept_async`, then the read half
//! forwarded into the write half, keeping text and binary messages.
//!
//! One current-thread tokio runtime on the main thread, as tokio-websockets'
//! benchmark patches the example to. TCP_NODELAY on every accepted socket.
//! Default tungstenite configuration. No permessage-deflate (tungstenite does
//! not have it).
//!
//! ```text
//! tungstenite-echo --addr 127.0.0.1:9000
//! ```
//!
//! Prints `listening on ADDR (driver=-, threads=1)` on stdout once the
//! listener is bound.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::exit;

use futures_util::{StreamExt, TryStreamExt, future};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: tungstenite-echo [--addr IP:PORT]";

fn die(msg: &str) -> ! {
    eprintln!("tungstenite-echo: {msg}\n{USAGE}");
    exit(2);
}

fn parse_args() -> SocketAddr {
    let mut addr: SocketAddr = "127.0.0.1:9000".parse().expect("default addr");
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            "--addr" => {
                let Some(val) = it.next() else {
                    die("missing value for --addr");
                };
                addr = val.parse().unwrap_or_else(|_| die("bad --addr"));
            }
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    addr
}

async fn accept_connection(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let ws = match tokio_tungstenite::accept_async(stream).await {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("tungstenite-echo: handshake: {e}");
            return;
        }
    };
    let (write, read) = ws.split();
    // Errors here are mostly the client dropping its sockets at the end of a
    // run; not worth a line per connection.
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
}

fn main() {
    let addr = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("tungstenite-echo: runtime: {e}");
            exit(1);
        });
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| {
            eprintln!("tungstenite-echo: bind {addr}: {e}");
            exit(1);
        });
        let local = listener.local_addr().expect("local_addr");
        println!("listening on {local} (driver=-, threads=1)");
        let _ = io::stdout().flush();
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(accept_connection(stream));
                }
                Err(e) => eprintln!("tungstenite-echo: accept: {e}"),
            }
        }
    });
}
