//! wss:// echo server on tokio-rustls + tokio-tungstenite: the peer of Ringwire's TLS
//! benchmark (scripts/bench-tls.sh, issue 7). The WebSocket side is `tungstenite-echo`
//! (tokio-tungstenite's `examples/echo-server.rs`: `accept_async`, read half forwarded into
//! the write half); in front of it a `tokio_rustls::TlsAcceptor`.
//!
//! The rustls configuration matches what `ringwire serve --bind-tls` builds
//! (engine/runtime/src/tls.rs `build_server_config`): rustls 0.23 with the ring provider, TLS
//! 1.3 and 1.2, no client authentication, ALPN `http/1.1`, a stateful session cache of 4096
//! entries (session IDs) and stateless tickets from ring's `Ticketer` (TLS 1.2 tickets and TLS
//! 1.3 PSK tickets, two per connection, rustls's default), so resumed handshakes are resumed on
//! both servers the same way. One certificate chain and key from PEM files.
//!
//! By default one current-thread tokio runtime on the main thread, like the other peers;
//! `--multi` uses the multi-thread runtime with `--threads N` workers (default 1).
//! TCP_NODELAY on every accepted socket.
//!
//! ```text
//! tls-tungstenite-echo --addr 127.0.0.1:9443 --cert cert.pem --key key.pem [--multi [--threads N]]
//! ```
//!
//! Prints `listening on ADDR (driver=-, threads=N, tls)` on stdout once the listener is bound.
//! A failed TLS or WebSocket handshake is not logged (a handshake storm resets connections on
//! purpose).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::exit;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, future};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerSessionMemoryCache;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const USAGE: &str =
    "usage: tls-tungstenite-echo --cert FILE --key FILE [--addr IP:PORT] [--multi] [--threads N]";

/// Sessions the server keeps for resumption by session ID (ringwire's default).
const SESSION_CACHE: usize = 4096;

fn die(msg: &str) -> ! {
    eprintln!("tls-tungstenite-echo: {msg}\n{USAGE}");
    exit(2);
}

fn fatal(msg: &str) -> ! {
    eprintln!("tls-tungstenite-echo: {msg}");
    exit(1);
}

struct Args {
    addr: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    multi: bool,
    threads: usize,
}

fn parse_args() -> Args {
    let mut addr: SocketAddr = "127.0.0.1:9443".parse().expect("default addr");
    let (mut cert, mut key) = (None, None);
    let (mut multi, mut threads) = (false, 1usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            "--multi" => multi = true,
            "--addr" | "--cert" | "--key" | "--threads" => {
                let Some(val) = it.next() else {
                    die(&format!("missing value for {flag}"));
                };
                match flag.as_str() {
                    "--addr" => addr = val.parse().unwrap_or_else(|_| die("bad --addr")),
                    "--cert" => cert = Some(PathBuf::from(val)),
                    "--key" => key = Some(PathBuf::from(val)),
                    _ => threads = val.parse().unwrap_or_else(|_| die("bad --threads")),
                }
            }
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        die("--cert and --key are required");
    };
    if threads == 0 {
        die("--threads must be at least 1");
    }
    Args {
        addr,
        cert,
        key,
        multi,
        threads,
    }
}

/// The server configuration, built like ringwire's `build_server_config` with its defaults.
fn server_config(a: &Args) -> Arc<ServerConfig> {
    let certs = CertificateDer::pem_file_iter(&a.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| fatal(&format!("{}: {e}", a.cert.display())));
    if certs.is_empty() {
        fatal(&format!("{}: no certificate", a.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&a.key)
        .unwrap_or_else(|e| fatal(&format!("{}: {e}", a.key.display())));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap_or_else(|e| fatal(&format!("protocol versions: {e}")))
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|e| fatal(&format!("certificate/key: {e}")));
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()
        .unwrap_or_else(|e| fatal(&format!("session tickets: {e}")));
    Arc::new(cfg)
}

async fn accept_connection(acceptor: TlsAcceptor, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // A handshake the client resets (a storm) or gets wrong ends here, quietly.
    let Ok(tls) = acceptor.accept(stream).await else {
        return;
    };
    // Quiet too: a storm resets each connection as soon as it has read the 101.
    let Ok(ws) = tokio_tungstenite::accept_async(tls).await else {
        return;
    };
    let (write, read) = ws.split();
    // Errors here are mostly the client dropping its sockets at the end of a run.
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
}

fn main() {
    let args = parse_args();
    let acceptor = TlsAcceptor::from(server_config(&args));
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
    .unwrap_or_else(|e| fatal(&format!("runtime: {e}")));
    let threads = if args.multi { args.threads } else { 1 };
    let addr = args.addr;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| fatal(&format!("bind {addr}: {e}")));
        let local = listener.local_addr().expect("local_addr");
        println!("listening on {local} (driver=-, threads={threads}, tls)");
        let _ = io::stdout().flush();
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(accept_connection(acceptor.clone(), stream));
                }
                Err(e) => eprintln!("tls-tungstenite-echo: accept: {e}"),
            }
        }
    });
}
