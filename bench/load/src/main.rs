//! `ringwire-load`: the load generator of Ringwire's benchmarks (bench/README.md).
//!
//! # What it does
//!
//! One binary, five modes, all against servers on this machine (loopback only):
//!
//! - `ws-echo`: WebSocket echo, the uWebSockets `benchmarks/load_test` method. N connections
//!   do the opening handshake (optionally offering permessage-deflate, through
//!   `ringwire-ws`'s client role) before the run; then each keeps exactly one masked message of
//!   S bytes in flight (closed loop), or, with `--rate R`, messages leave at a fixed total rate
//!   of R per second round-robin over the connections whatever the server does (open loop;
//!   latency counts from each message's *intended* send time, so a stalled server cannot hide
//!   its stall: no coordinated omission).
//! - `tcp-echo`: the same on raw TCP.
//! - `storm`: `--conns` slots each connect, handshake (or only connect, `--tcp-only`) and
//!   close with RST, again and again: connects per second and handshake latency.
//! - `idle`: N WebSocket connections open, each pinged every `--interval` seconds (spread
//!   evenly): pong round-trip latency, and any connection the server drops fails the run.
//! - `broadcast`: one publisher and N subscribers on `--path` (default `/broadcast`, where
//!   `ringwire serve` relays every message to every connection on that path); the publisher
//!   sends `--rate` messages per second (default 100) stamped with their intended send time;
//!   every subscriber checks the sequence and records the delivery latency.
//!
//! Every echo, pong and broadcast is verified byte for byte (a per-message stamp in the first
//! 16 payload bytes, so a stale echo cannot pass); any mismatch, protocol error or unexpected
//! close stops the run with exit status 1. Latencies go into HdrHistograms (1 ns .. 60 s, 3
//! significant digits): p50, p90, p99, p99.9, max.
//!
//! The client runs on Ringwire's own engine, ringwire-runtime: `--threads` cores, each a
//! [`worker::Load`] plugin over its share of the connections, all outgoing connections of the
//! runtime; `--driver` picks io_uring or the epoll fallback (`auto`: io_uring when its probe
//! passes; `RINGWIRE_DRIVER` overrides either). `--src`/`--src-count` spread the connections
//! over several source addresses (127.0.0.x, bound before connect with IP_BIND_ADDRESS_NO_PORT)
//! to go past 64k connections. `--server-pid` samples the server's utime+stime from /proc over
//! exactly the measured window and reports server CPU µs per message beside the client's.
//! Output: a table, or one JSON object with `--json`; both name the driver.
//!
//! ```text
//! main: start the runtime ──► cores connect (setup) ──► Ready ×N ──► post START ──►
//!       sample CPU at the window's edges ──► Done ×N (what each core measured) ──► stop, report
//! ```
//!
//! `--tls` runs any mode over TLS (wss://): rustls with the ring provider, the runtime running
//! the handshake and the records, TLS 1.3 (or `--tls12`), the server checked against `--tls-ca`
//! for `--tls-name` (or `--danger-accept-invalid-certs`). A storm then measures TCP + TLS +
//! upgrade per connection; every handshake is full unless `--resume` shares one session store
//! across the run's connections, and the report counts full and resumed handshakes as rustls
//! saw them.
//!
//! # What it does not
//!
//! No TLS-only storm (TLS 1.3 tickets come after the client's Finished, so a storm that
//! closed there would not resume), no client certificates, no HTTP/1.1 or HTTP/2 request modes (scripts/http-bench.sh uses wrk), no
//! remote targets.

mod tls;
mod worker;

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::exit;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use ringwire_runtime::{Bytes, DriverChoice, DriverKind, ServerBuilder};

use crate::worker::{BROADCAST_MIN_SIZE, Event, WorkerOut, pattern};

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// WebSocket echo (closed loop, or open loop with --rate).
    WsEcho,
    /// Raw TCP echo (closed loop, or open loop with --rate).
    TcpEcho,
    /// Connection storm: connect (+ handshake), close, repeat.
    Storm,
    /// N idle WebSocket connections, each pinged every --interval seconds.
    Idle,
    /// One publisher, N subscribers: delivery latency.
    Broadcast,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::WsEcho => "ws-echo",
            Mode::TcpEcho => "tcp-echo",
            Mode::Storm => "storm",
            Mode::Idle => "idle",
            Mode::Broadcast => "broadcast",
        }
    }
}

/// Load generator for WebSocket and TCP servers on this machine.
#[derive(Parser, Debug, Clone)]
#[command(name = "ringwire-load", version)]
pub struct Args {
    /// What to measure.
    #[arg(value_enum)]
    pub mode: Mode,
    /// The server (a loopback address).
    #[arg(long)]
    pub addr: SocketAddr,
    /// Connections (storm: concurrent slots; broadcast: subscribers, plus one publisher).
    #[arg(long, default_value_t = 100)]
    pub conns: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 20)]
    pub size: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
    /// Unmeasured seconds before them.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Threads: ringwire-runtime cores, each with a share of the connections.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// I/O driver of the client's cores: auto (io_uring when its probe passes), uring, epoll.
    /// The RINGWIRE_DRIVER environment variable overrides it.
    #[arg(long, default_value = "auto")]
    pub driver: DriverChoice,
    /// Open loop: messages per second over all connections (0: closed loop). Broadcast: the
    /// publisher's rate (default 100).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Offer permessage-deflate (WebSocket modes).
    #[arg(long)]
    pub deflate: bool,
    /// With --deflate: fail if the server does not accept it.
    #[arg(long)]
    pub require_deflate: bool,
    /// Text frames (default: binary, as uWS load_test).
    #[arg(long)]
    pub text: bool,
    /// Request path (default `/`, broadcast `/broadcast`).
    #[arg(long)]
    pub path: Option<String>,
    /// Source addresses, comma-separated (bound before connect).
    #[arg(long, value_delimiter = ',')]
    pub src: Vec<IpAddr>,
    /// Use 127.0.0.1 ..= 127.0.0.K as source addresses.
    #[arg(long)]
    pub src_count: Option<u8>,
    /// Idle mode: seconds between two pings on one connection.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Storm: TCP connect only, no WebSocket handshake.
    #[arg(long)]
    pub tcp_only: bool,
    /// Setup: most connections in progress at once, per thread.
    #[arg(long, default_value_t = 256)]
    pub connect_batch: usize,
    /// Echo modes, closed loop: each connection stops after this many echoes and the run ends
    /// when all have (no warm-up; --secs becomes a time limit). For instruction counts.
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Sample this process's CPU time (utime+stime, /proc) over the measured window.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Run over TLS (wss:// for the WebSocket modes).
    #[arg(long)]
    pub tls: bool,
    /// With --tls: PEM file of the CA(s) the server's certificate must chain to.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// With --tls: accept any certificate for any name (signatures are still checked).
    #[arg(long)]
    pub danger_accept_invalid_certs: bool,
    /// With --tls: the server name sent (SNI) and verified.
    #[arg(long, default_value = "localhost")]
    pub tls_name: String,
    /// With --tls: share one client session store so handshakes resume (default: every
    /// handshake full).
    #[arg(long)]
    pub resume: bool,
    /// With --tls: TLS 1.2 instead of 1.3.
    #[arg(long)]
    pub tls12: bool,
    /// Before a client core sleeps, poll for events for up to this many µs (the runtime's
    /// busy poll): the client's own wake-ups then add less to the latencies it measures, at
    /// the cost of a client core that runs flat out. 0 (the default): off.
    #[arg(long, default_value_t = 0)]
    pub busy_poll_us: u64,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The request path in effect.
    fn path(&self) -> &str {
        match (&self.path, self.mode) {
            (Some(p), _) => p,
            (None, Mode::Broadcast) => "/broadcast",
            (None, _) => "/",
        }
    }
}

/// Stops the run: the reason on stderr, exit status 1.
pub fn fail(msg: &str) -> ! {
    eprintln!("ringwire-load: FAIL: {msg}");
    exit(1);
}

/// A command-line error: the reason on stderr, exit status 2.
pub fn usage(msg: &str) -> ! {
    eprintln!("ringwire-load: {msg} (see --help)");
    exit(2);
}

/// CPU time of a process (all threads), split as the kernel accounts it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cpu {
    /// utime: seconds in user space.
    user: f64,
    /// stime: seconds in the kernel (syscalls, and the softirq work done on the process's
    /// behalf, such as the loopback peer's TCP receive path).
    sys: f64,
}

impl Cpu {
    fn total(self) -> f64 {
        self.user + self.sys
    }

    /// The CPU time spent from `self` to `later`.
    fn until(self, later: Cpu) -> Cpu {
        Cpu {
            user: later.user - self.user,
            sys: later.sys - self.sys,
        }
    }
}

/// utime and stime of `pid` (all threads), from /proc/PID/stat.
fn cpu_secs(pid: Option<u32>) -> Option<Cpu> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    parse_stat_cpu(&stat, clock_ticks())
}

/// utime and stime from the text of /proc/PID/stat. The command name (field 2) may hold
/// spaces and parentheses, so the fields are counted from its last `)`.
fn parse_stat_cpu(stat: &str, ticks_per_sec: f64) -> Option<Cpu> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(Cpu {
        user: utime as f64 / ticks_per_sec,
        sys: stime as f64 / ticks_per_sec,
    })
}

/// The unit of /proc's CPU times (USER_HZ), 100 where sysconf cannot say.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if tck > 0 { tck as f64 } else { 100.0 }
}

/// Raises RLIMIT_NOFILE to its hard limit, so tens of thousands of connections fit.
fn raise_nofile() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a live rlimit the call fills in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut rl) } == 0
        && rl.rlim_cur < rl.rlim_max
    {
        rl.rlim_cur = rl.rlim_max;
        // SAFETY: `rl` is a valid rlimit read just above.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const rl) };
    }
}

fn main() -> io::Result<()> {
    ringwire_runtime::alloc::keep_freed_memory();
    let mut args = Args::parse();
    if !args.addr.ip().is_loopback() {
        usage("--addr must be a loopback address (this tool only loads this machine)");
    }
    if args.conns == 0 || args.threads == 0 {
        usage("--conns and --threads must be at least 1");
    }
    let ok = |t: f64| t.is_finite() && (0.0..=86_400.0).contains(&t);
    if !ok(args.secs) || args.secs == 0.0 || !ok(args.warmup) || !ok(args.rate) {
        usage("--secs must be in (0, 86400], --warmup and --rate >= 0");
    }
    if matches!(args.mode, Mode::WsEcho | Mode::TcpEcho | Mode::Broadcast) && args.size == 0 {
        usage("--size must be at least 1");
    }
    if args.mode == Mode::Broadcast {
        args.size = args.size.max(BROADCAST_MIN_SIZE);
        if args.rate == 0.0 {
            args.rate = 100.0;
        }
    }
    if args.busy_poll_us > 1_000_000 {
        usage("--busy-poll-us must be at most 1000000 (one second)");
    }
    if args.mode == Mode::Idle && !(args.interval.is_finite() && args.interval > 0.0) {
        usage("--interval must be > 0");
    }
    if args.count > 0 {
        if !matches!(args.mode, Mode::WsEcho | Mode::TcpEcho) || args.rate > 0.0 {
            usage("--count needs ws-echo or tcp-echo in closed loop");
        }
        args.warmup = 0.0;
    }
    if !args.tls
        && (args.resume || args.tls12 || args.tls_ca.is_some() || args.danger_accept_invalid_certs)
    {
        usage("--resume, --tls12, --tls-ca and --danger-accept-invalid-certs need --tls");
    }
    if args.tls && args.mode == Mode::Storm && args.tcp_only {
        usage("storm --tls counts TCP + TLS + upgrade; --tcp-only is for plain TCP");
    }
    let tls = tls::from_args(&args);
    args.path = Some(args.path().to_string());
    let mut sources = args.src.clone();
    if let Some(k) = args.src_count {
        sources.extend((1..=k).map(|d| IpAddr::V4(Ipv4Addr::new(127, 0, 0, d))));
    }
    if sources.iter().any(|s| !s.is_loopback()) {
        usage("--src addresses must be loopback addresses");
    }
    raise_nofile();
    // A panic on a core must fail the run, not leave this thread waiting for the core's report.
    let report_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report_panic(info);
        exit(1);
    }));

    // Connection ids: broadcast has the publisher as id 0 and subscribers 1..=conns.
    let total = args.conns + usize::from(args.mode == Mode::Broadcast);
    let threads = args.threads.min(total);
    let args = Arc::new(args);
    let base = Instant::now();
    let (events_tx, events) = mpsc::channel();
    let run = Arc::new(worker::Run {
        args: args.clone(),
        threads,
        total,
        pat: pattern(args.size),
        sources,
        base,
        tls,
        events: events_tx,
    });
    let server = ServerBuilder::new(worker::runtime_config(&args, threads))
        .start(move |core| worker::Load::new(run.clone(), core))
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    let driver = server.driver();

    // Every core has its connections open: start together, sample CPU at the window's edges.
    for _ in 0..threads {
        if !matches!(events.recv(), Ok(Event::Ready)) {
            fail("a core went away during setup");
        }
    }
    let start = Instant::now() + Duration::from_millis(5);
    let at = (start - base).as_nanos() as u64;
    server.broadcast(worker::START, Bytes::copy_from_slice(&at.to_le_bytes()));
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.secs);
    let sample = || {
        (
            cpu_secs(None),
            args.server_pid.and_then(|p| cpu_secs(Some(p))),
        )
    };
    let collect = || -> Vec<WorkerOut> {
        (0..threads)
            .map(|_| match events.recv() {
                Ok(Event::Done(out)) => *out,
                _ => fail("a core went away during the run"),
            })
            .collect()
    };
    let mut window = args.secs;
    let (c0, c1, outs);
    if args.count > 0 {
        // Counted run: from the start until the last connection is done (or --secs passed).
        sleep_until(start);
        c0 = sample();
        outs = collect();
        window = start.elapsed().as_secs_f64().min(args.secs);
        c1 = sample();
    } else {
        sleep_until(measure_from);
        c0 = sample();
        sleep_until(end);
        c1 = sample();
        outs = collect();
    }
    server.stop();
    server.join();
    let client_cpu = c0.0.zip(c1.0).map(|(a, b)| a.until(b));
    let server_cpu = c0.1.zip(c1.1).map(|(a, b)| a.until(b));
    if args.server_pid.is_some() && server_cpu.is_none() {
        eprintln!("ringwire-load: warning: could not read the server's /proc/PID/stat");
    }
    let report = Report::merge(outs, driver, window, client_cpu, server_cpu);
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", report.json(&args))?;
    } else {
        report.table(&args, &mut out)?;
    }
    if args.count > 0 && report.m.measured != args.count * args.conns as u64 {
        fail(&format!(
            "{} of {} counted echoes completed within --secs",
            report.m.measured,
            args.count * args.conns as u64
        ));
    }
    if report.m.measured == 0 {
        fail("nothing completed during the measured window");
    }
    if args.tls && args.mode == Mode::Storm {
        // Verify that --resume really resumed and that without it nothing did.
        if args.resume && report.m.tls_resumed == 0 {
            fail("--resume: no handshake was resumed (does the server issue tickets/session IDs?)");
        }
        if !args.resume && report.m.tls_resumed > 0 {
            fail("handshakes resumed without --resume");
        }
    }
    if report.m.errors > 0 {
        eprintln!(
            "ringwire-load: {} connection error(s); first: {}",
            report.m.errors,
            report.m.first_error.as_deref().unwrap_or("?")
        );
        exit(1);
    }
    Ok(())
}

fn sleep_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        std::thread::sleep(t - now);
    }
}

/// Everything the threads measured, merged.
struct Report {
    /// The cores' figures, added up ([`WorkerOut::absorb`]).
    m: WorkerOut,
    driver: DriverKind,
    window: f64,
    client_cpu: Option<Cpu>,
    server_cpu: Option<Cpu>,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

impl Report {
    fn merge(
        outs: Vec<WorkerOut>,
        driver: DriverKind,
        window: f64,
        client_cpu: Option<Cpu>,
        server_cpu: Option<Cpu>,
    ) -> Self {
        let mut m = WorkerOut::new();
        for o in outs {
            m.absorb(o);
        }
        Report {
            m,
            driver,
            window,
            client_cpu,
            server_cpu,
        }
    }

    fn rate(&self) -> f64 {
        self.m.measured as f64 / self.window
    }

    fn q(&self, q: f64) -> f64 {
        us(self.m.hist.value_at_quantile(q))
    }

    fn per_msg_us(&self, cpu: Option<f64>) -> Option<f64> {
        cpu.filter(|_| self.m.measured > 0)
            .map(|c| c * 1e6 / self.m.measured as f64)
    }

    fn json(&self, args: &Args) -> String {
        fn num(v: Option<f64>) -> String {
            match v {
                Some(x) if x.is_finite() => format!("{x:.3}"),
                _ => "null".into(),
            }
        }
        let mut f: Vec<(&str, String)> = vec![
            ("tool", "\"ringwire-load\"".into()),
            ("mode", format!("\"{}\"", args.mode.name())),
            ("addr", format!("\"{}\"", args.addr)),
            ("path", format!("\"{}\"", args.path())),
            ("conns", args.conns.to_string()),
            ("size", args.size.to_string()),
            ("threads", args.threads.to_string()),
            ("driver", format!("\"{}\"", self.driver)),
            (
                "opcode",
                if args.text { "\"text\"" } else { "\"binary\"" }.into(),
            ),
            ("deflate", args.deflate.to_string()),
            (
                "loop",
                if args.rate > 0.0 || args.mode == Mode::Idle {
                    "\"open\""
                } else {
                    "\"closed\""
                }
                .into(),
            ),
            ("rate", num((args.rate > 0.0).then_some(args.rate))),
            ("warmup_secs", num(Some(args.warmup))),
            ("secs", num(Some(args.secs))),
            ("setup_ms", num(Some(self.m.setup.as_secs_f64() * 1000.0))),
            (
                "setup_p50_us",
                num((!self.m.setup_hist.is_empty())
                    .then(|| us(self.m.setup_hist.value_at_quantile(0.5)))),
            ),
            (
                "setup_p99_us",
                num((!self.m.setup_hist.is_empty())
                    .then(|| us(self.m.setup_hist.value_at_quantile(0.99)))),
            ),
            ("messages", self.m.measured.to_string()),
            (
                "messages_total",
                (self.m.measured + self.m.warm).to_string(),
            ),
            ("msgs_per_sec", num(Some(self.rate()))),
            ("bytes_per_sec", num(Some(self.rate() * args.size as f64))),
            ("p50_us", num(Some(self.q(0.5)))),
            ("p90_us", num(Some(self.q(0.9)))),
            ("p99_us", num(Some(self.q(0.99)))),
            ("p999_us", num(Some(self.q(0.999)))),
            ("max_us", num(Some(us(self.m.hist.max())))),
            ("mean_us", num(Some(self.m.hist.mean() / 1000.0))),
            ("unfinished", self.m.unfinished.to_string()),
            ("errors", self.m.errors.to_string()),
            ("server_pings", self.m.server_pings.to_string()),
            ("published", self.m.published.to_string()),
            (
                "client_cpu_pct",
                num(self.client_cpu.map(|c| 100.0 * c.total() / self.window)),
            ),
            (
                "client_cpu_us_per_msg",
                num(self.per_msg_us(self.client_cpu.map(Cpu::total))),
            ),
            (
                "server_pid",
                args.server_pid
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "null".into()),
            ),
            (
                "server_cpu_pct",
                num(self.server_cpu.map(|c| 100.0 * c.total() / self.window)),
            ),
            (
                "server_cpu_us_per_msg",
                num(self.per_msg_us(self.server_cpu.map(Cpu::total))),
            ),
            (
                "server_user_us_per_msg",
                num(self.per_msg_us(self.server_cpu.map(|c| c.user))),
            ),
            (
                "server_sys_us_per_msg",
                num(self.per_msg_us(self.server_cpu.map(|c| c.sys))),
            ),
        ];
        if args.mode == Mode::Storm {
            f.push(("connects_per_sec", num(Some(self.rate()))));
        }
        f.push(("tls", args.tls.to_string()));
        if args.tls {
            let mut p = self.m.tls_params.as_deref().unwrap_or("").split(' ');
            for k in ["tls_version", "tls_suite", "tls_group"] {
                f.push((k, format!("\"{}\"", p.next().unwrap_or("?"))));
            }
            f.push(("tls_name", format!("{:?}", args.tls_name)));
            f.push(("resume", args.resume.to_string()));
            f.push(("tls_full", self.m.tls_full.to_string()));
            f.push(("tls_resumed", self.m.tls_resumed.to_string()));
        }
        let body: Vec<String> = f.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    }

    fn table(&self, args: &Args, out: &mut impl Write) -> io::Result<()> {
        let what = match args.mode {
            Mode::WsEcho | Mode::TcpEcho => "echoes",
            Mode::Storm if args.tcp_only => "connects",
            Mode::Storm => "handshakes",
            Mode::Idle => "pongs",
            Mode::Broadcast => "deliveries",
        };
        let lat = match args.mode {
            Mode::WsEcho | Mode::TcpEcho if args.rate > 0.0 => {
                "from the intended send time (open loop, no coordinated omission)"
            }
            Mode::WsEcho | Mode::TcpEcho => "send to verified echo (closed loop)",
            Mode::Storm => "connect start to open",
            Mode::Idle => "ping (intended time) to pong",
            Mode::Broadcast => "intended publish time to delivery",
        };
        writeln!(
            out,
            "ringwire-load {}{} addr={} path={} conns={} size={} threads={} driver={} {}{}{}",
            args.mode.name(),
            if args.tls { " (tls)" } else { "" },
            args.addr,
            args.path(),
            args.conns,
            args.size,
            args.threads,
            self.driver,
            if args.text { "text" } else { "binary" },
            if args.deflate { " deflate" } else { "" },
            if args.rate > 0.0 {
                format!(" rate={}/s", args.rate)
            } else {
                String::new()
            }
        )?;
        let row = |out: &mut dyn Write, k: &str, v: String| writeln!(out, "  {k:<13} {v}");
        if !self.m.setup_hist.is_empty() {
            row(
                out,
                "setup",
                format!(
                    "{} connections in {:.1} ms (open p50 {:.1} us, p99 {:.1} us)",
                    self.m.setup_hist.len(),
                    self.m.setup.as_secs_f64() * 1000.0,
                    us(self.m.setup_hist.value_at_quantile(0.5)),
                    us(self.m.setup_hist.value_at_quantile(0.99))
                ),
            )?;
        }
        row(
            out,
            &format!("{what}/s"),
            format!(
                "{:.0}  ({} in {:.2} s after {} s warm-up ({} more); all verified)",
                self.rate(),
                self.m.measured,
                self.window,
                args.warmup,
                self.m.warm
            ),
        )?;
        if args.mode == Mode::Broadcast {
            row(
                out,
                "published",
                format!(
                    "{} in the window, to {} subscribers",
                    self.m.published, args.conns
                ),
            )?;
        }
        row(
            out,
            "latency us",
            format!(
                "p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}",
                self.q(0.5),
                self.q(0.9),
                self.q(0.99),
                self.q(0.999),
                us(self.m.hist.max()),
                self.m.hist.mean() / 1000.0
            ),
        )?;
        row(out, "", format!("({lat})"))?;
        if self.m.unfinished > 0 {
            row(
                out,
                "unfinished",
                format!(
                    "{} still in flight at the end (counted at their age)",
                    self.m.unfinished
                ),
            )?;
        }
        let cpu_row = |out: &mut dyn Write, name: &str, c: Cpu, pid: &str| {
            let per = |t: f64| self.per_msg_us(Some(t)).unwrap_or(f64::NAN);
            row(
                out,
                name,
                format!(
                    "{:.0}% of one core, {:.2} us per message (user {:.2}, kernel {:.2}){pid}",
                    100.0 * c.total() / self.window,
                    per(c.total()),
                    per(c.user),
                    per(c.sys),
                ),
            )
        };
        if let Some(c) = self.client_cpu {
            cpu_row(out, "client cpu", c, "")?;
        }
        if let Some(c) = self.server_cpu {
            let pid = format!(" (pid {})", args.server_pid.unwrap_or(0));
            cpu_row(out, "server cpu", c, &pid)?;
        }
        if args.tls {
            let when = if args.mode == Mode::Storm {
                "in the measured window"
            } else {
                "at setup"
            };
            row(
                out,
                "tls",
                format!(
                    "{}, {} full + {} resumed handshakes {when}{}",
                    self.m.tls_params.as_deref().unwrap_or("?"),
                    self.m.tls_full,
                    self.m.tls_resumed,
                    if args.resume { " (--resume)" } else { "" }
                ),
            )?;
        }
        if self.m.server_pings > 0 {
            row(
                out,
                "server pings",
                format!("{} answered", self.m.server_pings),
            )?;
        }
        if self.m.errors > 0 {
            row(
                out,
                "errors",
                format!(
                    "{} (first: {})",
                    self.m.errors,
                    self.m.first_error.as_deref().unwrap_or("?")
                ),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_split() {
        // Field 2 may hold spaces and parentheses; utime and stime are fields 14 and 15.
        let stat = "4242 (ring (wire) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    750 125 0 0 20 0 3 0 555 1000000 300 18446744073709551615";
        let c = parse_stat_cpu(stat, 100.0).unwrap();
        assert_eq!(
            c,
            Cpu {
                user: 7.5,
                sys: 1.25
            }
        );
        assert_eq!(c.total(), 8.75);
        let later = Cpu {
            user: 8.0,
            sys: 2.0,
        };
        assert_eq!(
            c.until(later),
            Cpu {
                user: 0.5,
                sys: 0.75
            }
        );
        assert_eq!(parse_stat_cpu("4242 (x) S 1 2", 100.0), None);
        assert_eq!(parse_stat_cpu("no parenthesis", 100.0), None);
        // This process's own figures parse.
        assert!(cpu_secs(None).is_some_and(|c| c.user >= 0.0 && c.sys >= 0.0));
    }
}
