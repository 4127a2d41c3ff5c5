//! WebSocket echo server on tokio-websockets, written like the echo server of
//! tokio-websockets' own benchmark (`benches/` in its repository): accept,
//! `ServerBuilder::accept`, then every text or binary message sent back.
//!
//! By default one current-thread tokio runtime on the main thread, as that
//! benchmark runs it ("in order to bottleneck faster"); `--multi` uses the
//! multi-thread runtime with `--threads N` workers (default 1). TCP_NODELAY on
//! every accepted socket. Default tokio-websockets configuration. No
//! permessage-deflate (tokio-websockets does not have it).
//!
//! ```text
//! tokio-websockets-echo --addr 127.0.0.1:9000 [--multi [--threads N]]
//! ```
//!
//! Prints `listening on ADDR (driver=-, threads=N)` on stdout once the
//! listener is bound.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::exit;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::ServerBuilder;

const USAGE: &str = "usage: tokio-websockets-echo [--addr IP:PORT] [--multi] [--threads N]";

fn die(msg: &str) -> ! {
    eprintln!("tokio-websockets-echo: {msg}\n{USAGE}");
    exit(2);
}

struct Args {
    addr: SocketAddr,
    multi: bool,
    threads: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:9000".parse().expect("default addr"),
        multi: false,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            "--multi" => a.multi = true,
            "--addr" | "--threads" => {
                let Some(val) = it.next() else {
                    die(&format!("missing value for {flag}"));
                };
                if flag == "--addr" {
                    a.addr = val.parse().unwrap_or_else(|_| die("bad --addr"));
                } else {
                    a.threads = val.parse().unwrap_or_else(|_| die("bad --threads"));
                }
            }
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    if a.threads == 0 {
        die("--threads must be at least 1");
    }
    a
}

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut ws = match ServerBuilder::new().accept(stream).await {
        Ok((_req, ws)) => ws,
        Err(e) => {
            eprintln!("tokio-websockets-echo: handshake: {e}");
            return;
        }
    };
    // Errors here are mostly the client dropping its sockets at the end of a
    // run; not worth a line per connection.
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

fn main() {
    let args = parse_args();
    let rt = if args.multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    }
    .unwrap_or_else(|e| {
        eprintln!("tokio-websockets-echo: runtime: {e}");
        exit(1);
    });
    let threads = if args.multi { args.threads } else { 1 };
    let addr = args.addr;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.unwrap_or_else(|e| {
            eprintln!("tokio-websockets-echo: bind {addr}: {e}");
            exit(1);
        });
        let local = listener.local_addr().expect("local_addr");
        println!("listening on {local} (driver=-, threads={threads})");
        let _ = io::stdout().flush();
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream));
                }
                Err(e) => eprintln!("tokio-websockets-echo: accept: {e}"),
            }
        }
    });
}
