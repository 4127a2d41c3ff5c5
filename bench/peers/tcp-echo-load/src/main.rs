//! Closed-loop TCP echo load client (the uWebSockets `load_test` method).
//!
//! N connections, each with exactly one message of S bytes in flight: write S
//! bytes, read until S bytes came back, verify them byte for byte, repeat.
//! Single thread, mio (epoll, edge-triggered), so the client costs the same
//! whatever server it drives. Every round trip's latency goes into an HDR
//! histogram; p50/p99/p99.9 are printed in µs.
//!
//! ```text
//! tcp-echo-load --addr 127.0.0.1:9000 --conns 100 --size 64 --secs 5 --warmup 1 [--json]
//! ```
//!
//! Any mismatch, short read at EOF, extra byte or I/O error fails loudly
//! (message on stderr, exit status 1). Only loopback addresses are accepted.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::process::exit;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

const USAGE: &str = "usage: tcp-echo-load --addr IP:PORT [--conns N] [--size BYTES] \
[--secs T] [--warmup W] [--json]\n  \
closed loop: each connection keeps exactly one SIZE-byte message in flight;\n  \
T and W are seconds (fractions allowed); ADDR must be a loopback address";

struct Args {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    json: bool,
}

fn die(msg: &str) -> ! {
    eprintln!("tcp-echo-load: {msg}\n{USAGE}");
    exit(2);
}

fn fail(msg: &str) -> ! {
    eprintln!("tcp-echo-load: FAIL: {msg}");
    exit(1);
}

fn parse_args() -> Args {
    let mut addr = None;
    let mut args = Args {
        addr: "127.0.0.1:0".parse().expect("placeholder"),
        conns: 100,
        size: 64,
        secs: 5.0,
        warmup: 1.0,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            "--json" => {
                args.json = true;
                continue;
            }
            _ => {}
        }
        let Some(val) = it.next() else {
            die(&format!("missing value for {flag}"));
        };
        match flag.as_str() {
            "--addr" => addr = Some(val.parse().unwrap_or_else(|_| die("bad --addr"))),
            "--conns" => args.conns = val.parse().unwrap_or_else(|_| die("bad --conns")),
            "--size" => args.size = val.parse().unwrap_or_else(|_| die("bad --size")),
            "--secs" => args.secs = val.parse().unwrap_or_else(|_| die("bad --secs")),
            "--warmup" => args.warmup = val.parse().unwrap_or_else(|_| die("bad --warmup")),
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    args.addr = addr.unwrap_or_else(|| die("--addr is required"));
    if !args.addr.ip().is_loopback() {
        die("--addr must be a loopback address (this client only loads this machine)");
    }
    if args.conns == 0 || args.size == 0 {
        die("--conns and --size must be >= 1");
    }
    let ok = |t: f64| t.is_finite() && (0.0..=3600.0).contains(&t);
    if !ok(args.secs) || args.secs == 0.0 || !ok(args.warmup) {
        die("--secs must be in (0, 3600], --warmup in [0, 3600]");
    }
    args
}

struct Conn {
    sock: TcpStream,
    /// The message in flight; its first (up to) 8 bytes carry a per-round
    /// sequence number so a stale or replayed echo cannot pass verification.
    tx: Vec<u8>,
    /// Bytes of `tx` written so far.
    wr: usize,
    /// Bytes of the echo received (and verified) so far.
    rd: usize,
    seq: u64,
    started: Instant,
    /// Last write/read hit WouldBlock; cleared by the matching readiness event.
    w_blocked: bool,
    r_blocked: bool,
}

impl Conn {
    fn new(sock: TcpStream, idx: usize, size: usize) -> Self {
        let tx = (0..size)
            .map(|i| (i.wrapping_mul(131) ^ idx.wrapping_mul(17)).wrapping_add(7) as u8)
            .collect();
        Conn {
            sock,
            tx,
            wr: 0,
            rd: 0,
            seq: 0,
            started: Instant::now(),
            w_blocked: false,
            r_blocked: false,
        }
    }

    /// Starts the next round: stamps a new sequence number into the message.
    fn next_message(&mut self, idx: usize, now: Instant) {
        self.seq += 1;
        let stamp = (self.seq ^ ((idx as u64) << 40)).to_le_bytes();
        let n = stamp.len().min(self.tx.len());
        self.tx[..n].copy_from_slice(&stamp[..n]);
        self.wr = 0;
        self.rd = 0;
        self.started = now;
        // The echo can only arrive after this round's write, i.e. after the
        // epoll_wait that delivered the current event, so with edge-triggered
        // epoll it raises a fresh readiness event: no need to probe with a
        // read that would return EAGAIN (saves one syscall per round trip).
        self.r_blocked = true;
    }
}

struct Stats {
    hist: Histogram<u64>,
    measured: u64,
    warmup_msgs: u64,
}

/// Writes and reads on one connection until both directions block.
fn drive(c: &mut Conn, idx: usize, scratch: &mut [u8], stats: &mut Stats, measuring: bool) {
    let size = c.tx.len();
    loop {
        let mut progressed = false;
        if c.wr < size && !c.w_blocked {
            match c.sock.write(&c.tx[c.wr..]) {
                Ok(0) => fail(&format!("conn {idx}: write returned 0")),
                Ok(n) => {
                    c.wr += n;
                    progressed = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => c.w_blocked = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => progressed = true,
                Err(e) => fail(&format!("conn {idx}: write: {e}")),
            }
        }
        if c.rd < c.wr && !c.r_blocked {
            match c.sock.read(scratch) {
                Ok(0) => fail(&format!(
                    "conn {idx}: server closed the connection with {} of {size} bytes echoed \
                     (round {})",
                    c.rd, c.seq
                )),
                Ok(n) => {
                    let outstanding = c.wr - c.rd;
                    if n > outstanding {
                        fail(&format!(
                            "conn {idx}: received {n} bytes but only {outstanding} were \
                             outstanding (round {}) - server sent extra data",
                            c.seq
                        ));
                    }
                    let want = &c.tx[c.rd..c.rd + n];
                    if scratch[..n] != *want {
                        let at = scratch[..n]
                            .iter()
                            .zip(want)
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                        fail(&format!(
                            "conn {idx}: echo mismatch in round {} at byte {}: got {:#04x}, \
                             expected {:#04x}",
                            c.seq,
                            c.rd + at,
                            scratch[at],
                            want[at]
                        ));
                    }
                    c.rd += n;
                    progressed = true;
                    if c.rd == size {
                        let now = Instant::now();
                        if measuring {
                            let ns = now.duration_since(c.started).as_nanos();
                            stats
                                .hist
                                .saturating_record(ns.min(u64::MAX as u128) as u64);
                            stats.measured += 1;
                        } else {
                            stats.warmup_msgs += 1;
                        }
                        c.next_message(idx, now);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => c.r_blocked = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => progressed = true,
                Err(e) => fail(&format!("conn {idx}: read: {e}")),
            }
        }
        if !progressed {
            return;
        }
    }
}

fn connect_all(args: &Args) -> io::Result<Vec<StdStream>> {
    let mut socks = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let s = StdStream::connect_timeout(&args.addr, Duration::from_secs(5))
            .map_err(|e| io::Error::new(e.kind(), format!("connect #{i} to {}: {e}", args.addr)))?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        socks.push(s);
    }
    Ok(socks)
}

/// CPU seconds (user + system) this process used so far, from /proc/self/stat
/// (USER_HZ is 100 on Linux/x86). None where /proc is unavailable.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields
    // 14 and 15 of the whole line, i.e. 12 and 13 after ")".
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn main() {
    let args = parse_args();
    let socks = connect_all(&args).unwrap_or_else(|e| fail(&e.to_string()));

    let mut poll = Poll::new().unwrap_or_else(|e| fail(&format!("epoll: {e}")));
    let mut conns: Vec<Conn> = Vec::with_capacity(args.conns);
    for (i, s) in socks.into_iter().enumerate() {
        let mut sock = TcpStream::from_std(s);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .unwrap_or_else(|e| fail(&format!("register: {e}")));
        conns.push(Conn::new(sock, i, args.size));
    }

    let mut stats = Stats {
        hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds"),
        measured: 0,
        warmup_msgs: 0,
    };
    let mut scratch = vec![0u8; args.size.clamp(4096, 256 * 1024)];
    let mut events = Events::with_capacity(1024);

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.secs);
    let mut measuring = args.warmup == 0.0;
    let mut cpu_at_measure = if measuring { cpu_secs() } else { None };

    // Put the first message of every connection in flight.
    for (i, c) in conns.iter_mut().enumerate() {
        c.next_message(i, start);
        drive(c, i, &mut scratch, &mut stats, measuring);
    }

    let mut now = start;
    while now < end {
        let boundary = if measuring { end } else { measure_from };
        let timeout = boundary
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        if let Err(e) = poll.poll(&mut events, Some(timeout))
            && e.kind() != ErrorKind::Interrupted
        {
            fail(&format!("epoll_wait: {e}"));
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut conns[i];
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.r_blocked = false;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                c.w_blocked = false;
            }
            drive(c, i, &mut scratch, &mut stats, measuring);
        }
        now = Instant::now();
        if !measuring && now >= measure_from {
            measuring = true;
            cpu_at_measure = cpu_secs();
        }
    }
    let elapsed = now.duration_since(measure_from).as_secs_f64();
    // Share of one CPU the client used while measuring: near 100 means the
    // client, not the server, may be the bottleneck.
    let cpu_pct = match (cpu_at_measure, cpu_secs()) {
        (Some(a), Some(b)) if elapsed > 0.0 => 100.0 * (b - a) / elapsed,
        _ => -1.0,
    };

    let h = &stats.hist;
    let rate = stats.measured as f64 / elapsed;
    let (p50, p99, p999, max, mean) = if h.is_empty() {
        (0.0, 0.0, 0.0, 0.0, 0.0)
    } else {
        (
            us(h.value_at_quantile(0.50)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max()),
            h.mean() / 1000.0,
        )
    };
    if stats.measured == 0 {
        fail("no round trip completed during the measured interval");
    }
    if args.json {
        println!(
            "{{\"addr\":\"{}\",\"conns\":{},\"size\":{},\"warmup_secs\":{},\"secs\":{},\
             \"elapsed_secs\":{:.4},\"messages\":{},\"messages_total\":{},\
             \"msgs_per_sec\":{:.1},\"bytes_per_sec\":{:.1},\"p50_us\":{:.2},\
             \"p99_us\":{:.2},\"p999_us\":{:.2},\"max_us\":{:.2},\"mean_us\":{:.2},\
             \"client_cpu_pct\":{:.1}}}",
            args.addr,
            args.conns,
            args.size,
            args.warmup,
            args.secs,
            elapsed,
            stats.measured,
            stats.measured + stats.warmup_msgs,
            rate,
            rate * args.size as f64,
            p50,
            p99,
            p999,
            max,
            mean,
            cpu_pct
        );
    } else {
        println!(
            "tcp-echo-load addr={} conns={} size={} warmup={}s secs={}s",
            args.addr, args.conns, args.size, args.warmup, args.secs
        );
        println!(
            "round trips/s: {rate:.0}  (messages: {} in {elapsed:.2} s, {} more during warm-up, \
             all verified)",
            stats.measured, stats.warmup_msgs
        );
        println!(
            "latency us: p50 {p50:.1}  p99 {p99:.1}  p99.9 {p999:.1}  max {max:.1}  mean {mean:.1}"
        );
        println!("client cpu: {cpu_pct:.0}% of one core while measuring");
    }
}
