//! WebSocket echo server on fastwebsockets, written like fastwebsockets' own
//! `examples/echo_server.rs` (the server of its published benchmark): hyper 1
//! HTTP/1.1 connection with the upgrade, `fastwebsockets::upgrade`, then a
//! `FragmentCollector` echoing every text and binary message whole.
//!
//! One current-thread tokio runtime on the main thread (one thread, as in the
//! peers' own benchmarks). TCP_NODELAY on every accepted socket. No
//! permessage-deflate (fastwebsockets does not have it).
//!
//! ```text
//! fastwebsockets-echo --addr 127.0.0.1:9000
//! ```
//!
//! Prints `listening on ADDR (driver=-, threads=1)` on stdout once the
//! listener is bound.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::exit;

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;

const USAGE: &str = "usage: fastwebsockets-echo [--addr IP:PORT]";

fn die(msg: &str) -> ! {
    eprintln!("fastwebsockets-echo: {msg}\n{USAGE}");
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

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::task::spawn(async move {
        if let Err(e) = tokio::task::unconstrained(handle_client(fut)).await {
            // A client that just drops its sockets at the end of a run is
            // not worth a line per connection.
            if !matches!(
                e,
                WebSocketError::UnexpectedEOF | WebSocketError::IoError(_)
            ) {
                eprintln!("fastwebsockets-echo: connection: {e}");
            }
        }
    });
    Ok(response)
}

fn main() {
    let addr = parse_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("fastwebsockets-echo: runtime: {e}");
            exit(1);
        });
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| {
            eprintln!("fastwebsockets-echo: bind {addr}: {e}");
            exit(1);
        });
        let local = listener.local_addr().expect("local_addr");
        println!("listening on {local} (driver=-, threads=1)");
        let _ = io::stdout().flush();
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    eprintln!("fastwebsockets-echo: accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = http1::Builder::new()
                    .serve_connection(io, service_fn(server_upgrade))
                    .with_upgrades();
                if let Err(e) = conn.await {
                    eprintln!("fastwebsockets-echo: http: {e}");
                }
            });
        }
    });
}
