//! TCP echo server on tokio.
//!
//! Default: one current-thread runtime per thread, each with its own
//! SO_REUSEPORT listener (made with socket2). With `--multi`: one
//! multi-thread runtime with `--threads` workers and a single listener.
//! TCP_NODELAY on every accepted socket, 16 KiB read buffer, `write_all` echo.
//!
//! ```text
//! tokio-echo --threads N --addr 127.0.0.1:9000 [--multi]
//! ```
//!
//! Prints `listening on ADDR (driver=current-thread|multi-thread, threads=N)`
//! on stdout once the runtimes are up and the listeners are bound.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::exit;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const READ_BUF: usize = 16 * 1024;

struct Args {
    threads: usize,
    addr: SocketAddr,
    multi: bool,
}

const USAGE: &str = "usage: tokio-echo [--threads N] [--addr IP:PORT] [--multi]";

fn parse_args() -> Args {
    let mut args = Args {
        threads: 1,
        addr: "127.0.0.1:9000".parse().expect("default addr"),
        multi: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            "--multi" => args.multi = true,
            "--threads" | "--addr" => {
                let Some(val) = it.next() else {
                    die(&format!("missing value for {flag}"));
                };
                if flag == "--threads" {
                    args.threads = val.parse().unwrap_or_else(|_| die("bad --threads"));
                } else {
                    args.addr = val.parse().unwrap_or_else(|_| die("bad --addr"));
                }
            }
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    if args.threads == 0 {
        die("--threads must be >= 1");
    }
    args
}

fn die(msg: &str) -> ! {
    eprintln!("tokio-echo: {msg}\n{USAGE}");
    exit(2);
}

fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<StdListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

async fn serve(std_listener: StdListener) {
    let listener = TcpListener::from_std(std_listener).expect("register listener");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            Err(e) => eprintln!("tokio-echo: accept: {e}"),
        }
    }
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn announce(addr: SocketAddr, kind: &str, threads: usize) {
    println!("listening on {addr} (driver={kind}, threads={threads})");
    let _ = io::stdout().flush();
}

fn main() {
    let args = parse_args();
    let bind_or_die = |addr: SocketAddr, reuse_port: bool| {
        bind(addr, reuse_port).unwrap_or_else(|e| {
            eprintln!("tokio-echo: bind {addr}: {e}");
            exit(1);
        })
    };

    if args.multi {
        let listener = bind_or_die(args.addr, false);
        let addr = listener.local_addr().expect("local_addr");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_io()
            .build()
            .unwrap_or_else(|e| {
                eprintln!("tokio-echo: runtime: {e}");
                exit(1);
            });
        rt.block_on(async move {
            announce(addr, "multi-thread", args.threads);
            serve(listener).await;
        });
        return;
    }

    let first = bind_or_die(args.addr, true);
    let addr = first.local_addr().expect("local_addr");
    let mut listeners = vec![first];
    for _ in 1..args.threads {
        listeners.push(bind_or_die(addr, true));
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let ready = ready_tx.clone();
            std::thread::Builder::new()
                .name(format!("tokio-echo-{i}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .build()
                    {
                        Ok(rt) => {
                            let _ = ready.send(Ok(()));
                            rt.block_on(serve(l));
                        }
                        Err(e) => {
                            let _ = ready.send(Err(format!("runtime: {e}")));
                        }
                    }
                })
                .expect("spawn thread")
        })
        .collect();
    drop(ready_tx);
    for _ in 0..args.threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("tokio-echo: {e}");
                exit(1);
            }
            Err(_) => {
                eprintln!("tokio-echo: a runtime thread died during start-up");
                exit(1);
            }
        }
    }
    announce(addr, "current-thread", args.threads);
    for h in handles {
        if h.join().is_err() {
            exit(1);
        }
    }
}
