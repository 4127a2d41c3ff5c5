//! TCP echo server on monoio 0.2.4: one runtime per thread, one SO_REUSEPORT
//! listener per thread, TCP_NODELAY, 16 KiB owned read buffer, `write_all` echo.
//!
//! ```text
//! monoio-echo --threads N --addr 127.0.0.1:9000 --driver uring|legacy
//! ```
//!
//! Prints `listening on ADDR (driver=D, threads=N)` on stdout once every
//! listener is bound (connections queue in the backlog from then on).

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::exit;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use socket2::{Domain, Protocol, Socket, Type};

const READ_BUF: usize = 16 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Driver {
    Uring,
    Legacy,
}

struct Args {
    threads: usize,
    addr: SocketAddr,
    driver: Driver,
}

const USAGE: &str = "usage: monoio-echo [--threads N] [--addr IP:PORT] [--driver uring|legacy]";

fn parse_args() -> Args {
    let mut args = Args {
        threads: 1,
        addr: "127.0.0.1:9000".parse().expect("default addr"),
        driver: Driver::Uring,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            exit(0);
        }
        let Some(val) = it.next() else {
            die(&format!("missing value for {flag}"));
        };
        match flag.as_str() {
            "--threads" => {
                args.threads = val.parse().unwrap_or_else(|_| die("bad --threads"));
            }
            "--addr" => args.addr = val.parse().unwrap_or_else(|_| die("bad --addr")),
            "--driver" => {
                args.driver = match val.as_str() {
                    "uring" | "iouring" | "io_uring" => Driver::Uring,
                    "legacy" | "epoll" => Driver::Legacy,
                    _ => die("--driver must be uring or legacy"),
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
    eprintln!("monoio-echo: {msg}\n{USAGE}");
    exit(2);
}

/// One SO_REUSEPORT listener; non-blocking (required by the legacy driver,
/// harmless for io_uring, and what monoio's own `bind_with_config` does).
fn reuseport_listener(addr: SocketAddr) -> io::Result<StdListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
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
                monoio::spawn(echo(stream));
            }
            Err(e) => {
                // EMFILE and friends: report and keep serving.
                eprintln!("monoio-echo: accept: {e}");
            }
        }
    }
}

async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(READ_BUF);
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
        buf.clear();
    }
}

fn main() {
    let args = parse_args();

    // Bind every listener up front so a port of 0 resolves once and all
    // threads share it.
    let first = reuseport_listener(args.addr).unwrap_or_else(|e| {
        eprintln!("monoio-echo: bind {}: {e}", args.addr);
        exit(1);
    });
    let addr = first.local_addr().expect("local_addr");
    let mut listeners = vec![first];
    for _ in 1..args.threads {
        listeners.push(reuseport_listener(addr).unwrap_or_else(|e| {
            eprintln!("monoio-echo: bind {addr}: {e}");
            exit(1);
        }));
    }

    let driver = args.driver;
    // Each thread reports whether its runtime came up before we announce
    // readiness, so a missing io_uring fails here and not after "listening".
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let ready = ready_tx.clone();
            std::thread::Builder::new()
                .name(format!("monoio-echo-{i}"))
                .spawn(move || match driver {
                    Driver::Uring => {
                        match RuntimeBuilder::<IoUringDriver>::new()
                            .with_entries(1024)
                            .build()
                        {
                            Ok(mut rt) => {
                                let _ = ready.send(Ok(()));
                                rt.block_on(serve(l));
                            }
                            Err(e) => {
                                let _ = ready.send(Err(format!("io_uring runtime: {e}")));
                            }
                        }
                    }
                    Driver::Legacy => match RuntimeBuilder::<LegacyDriver>::new().build() {
                        Ok(mut rt) => {
                            let _ = ready.send(Ok(()));
                            rt.block_on(serve(l));
                        }
                        Err(e) => {
                            let _ = ready.send(Err(format!("legacy runtime: {e}")));
                        }
                    },
                })
                .expect("spawn thread")
        })
        .collect();
    drop(ready_tx);
    for _ in 0..args.threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("monoio-echo: {e}");
                exit(1);
            }
            Err(_) => {
                eprintln!("monoio-echo: a runtime thread died during start-up");
                exit(1);
            }
        }
    }

    let name = match driver {
        Driver::Uring => "uring",
        Driver::Legacy => "legacy",
    };
    println!(
        "listening on {addr} (driver={name}, threads={})",
        args.threads
    );
    let _ = io::stdout().flush();

    for h in handles {
        if h.join().is_err() {
            exit(1);
        }
    }
}
