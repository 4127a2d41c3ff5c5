//! The `ringwire` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringwire::config::FileConfig;
use ringwire::serve::{self, Service};

#[derive(Parser, Debug)]
#[command(
    name = "ringwire",
    version,
    about = "Ringwire: a thread-per-core real-time network engine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Discover the mapped address with a STUN Binding (prints `mapped-address: IP:PORT`).
    StunClient(ringwire::stun::cli::StunClientArgs),
    /// Allocate a TURN relay, bind a channel to a peer and count its echoes.
    TurnClient(ringwire::stun::cli::TurnClientArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// HTTP/WebSocket listener (repeatable; default 127.0.0.1:8080).
    #[arg(long)]
    bind: Vec<SocketAddr>,
    /// Raw TCP echo listener (repeatable).
    #[arg(long = "tcp-echo")]
    tcp_echo: Vec<SocketAddr>,
    /// Worker threads, one per core (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// I/O driver: auto, uring or epoll (RINGWIRE_DRIVER overrides).
    #[arg(long)]
    driver: Option<String>,
    /// TOML configuration file; flags override its keys.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Pin worker i to CPU i.
    #[arg(long)]
    pin_cores: bool,
    /// Most open connections across all cores.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Per-connection out-queue limit in bytes.
    #[arg(long)]
    max_out_buffer: Option<usize>,
    /// What a send past the limit does: refuse or close.
    #[arg(long)]
    overflow_policy: Option<String>,
    /// Graceful-stop deadline in milliseconds.
    #[arg(long)]
    shutdown_timeout_ms: Option<u64>,
    /// Per-connection read limit in bytes/s (0 = none).
    #[arg(long)]
    throttle_read: Option<u64>,
    /// Per-connection write limit in bytes/s (0 = none).
    #[arg(long)]
    throttle_write: Option<u64>,
    #[command(flatten)]
    stun: ringwire::stun::cli::StunServeArgs,
    #[command(flatten)]
    tls: ringwire::tls::TlsServeArgs,
    /// WebSocket: largest message in bytes (close 1009 past it).
    #[arg(long)]
    ws_max_message: Option<usize>,
    /// WebSocket: permessage-deflate on or off.
    #[arg(long)]
    ws_compression: Option<bool>,
    /// WebSocket: ping interval in ms (0 = none).
    #[arg(long)]
    ws_heartbeat_ms: Option<u64>,
    /// WebSocket: close after this many ms without a pong.
    #[arg(long)]
    ws_heartbeat_timeout_ms: Option<u64>,
    /// WebSocket: close after this many ms without input (0 = never).
    #[arg(long)]
    ws_idle_timeout_ms: Option<u64>,
    /// HTTP: serve static files from this directory.
    #[arg(long)]
    www: Option<PathBuf>,
    /// HTTP: static answers are reused this many ms without a syscall, then revalidated with
    /// one stat (0 = no cache).
    #[arg(long)]
    www_cache_valid_ms: Option<u64>,
    /// HTTP: files up to this many bytes are held in memory by the static cache.
    #[arg(long)]
    www_cache_max_file: Option<u64>,
    /// HTTP: file content bytes the static cache holds per core.
    #[arg(long)]
    www_cache_size: Option<usize>,
    /// HTTP: paths the static cache holds per core.
    #[arg(long)]
    www_cache_entries: Option<usize>,
    /// HTTP: CORS allowed origin(s): `*` or a comma-separated list.
    #[arg(long)]
    cors_origin: Option<String>,
    /// Before a core sleeps for want of events, poll for them for up to this many µs:
    /// lower latency at moderate load, for a core that then runs flat out (0 = off, the
    /// default).
    #[arg(long)]
    busy_poll_us: Option<u64>,
    /// io_uring: on a busy core, wait up to this many µs to handle completions in batches
    /// (fewer syscalls per message under load, up to this much added latency; 0 = off, the
    /// default).
    #[arg(long)]
    uring_batch_wait_us: Option<u64>,
    /// io_uring: completions one loop turn handles for the next to wait for a batch
    /// (default 16; 0 = every turn waits).
    #[arg(long)]
    uring_batch_busy: Option<usize>,
    /// Grid of connection deadlines in ms (handshake, request head, keep-alive): one fires up
    /// to this late, never early; their array is swept at most once per tick (default 100).
    #[arg(long)]
    deadline_tick_ms: Option<u64>,
    /// HTTP: read file bodies into user space instead of sending them with sendfile(2).
    #[arg(long)]
    no_sendfile: bool,
    /// HTTP: do not serve the test page /ringwire.html and the client /ringwire.js.
    #[arg(long)]
    no_test_page: bool,
    /// Auth: a user, USER=PASSWORD (repeatable; turns authentication on).
    #[arg(
        long = "auth-user",
        visible_alias = "auth-basic",
        value_name = "USER=PASSWORD"
    )]
    auth_user: Vec<String>,
    /// Auth: accepted schemes, comma-separated: basic, session, url, bearer, all
    /// (default: basic,session,url, plus bearer when tokens are given).
    #[arg(long)]
    auth_mode: Option<String>,
    /// Auth: an accepted bearer token (repeatable).
    #[arg(long = "auth-bearer-token", value_name = "TOKEN")]
    auth_bearer_token: Vec<String>,
    /// Auth: a path prefix that needs no credentials (repeatable).
    #[arg(long = "auth-exempt", value_name = "PREFIX")]
    auth_exempt: Vec<String>,
    /// Auth: the realm of WWW-Authenticate.
    #[arg(long)]
    auth_realm: Option<String>,
    /// Auth: session token lifetime in ms.
    #[arg(long)]
    auth_session_ttl_ms: Option<u64>,
    /// Forward requests under PREFIX to an upstream: PREFIX=http://HOST:PORT[/base] (repeatable).
    #[arg(long, value_name = "PREFIX=URL")]
    forward: Vec<String>,
    /// Forwarding: a PEM CA file for https:// upstreams (default: the webpki roots).
    #[arg(long, value_name = "FILE")]
    forward_ca: Option<PathBuf>,
    /// Forwarding: 504 after this many ms without a byte from the upstream.
    #[arg(long)]
    forward_timeout_ms: Option<u64>,
    /// Uploads: enable POST /upload (multipart/form-data), saving files in DIR.
    #[arg(long, value_name = "DIR")]
    upload_dir: Option<PathBuf>,
    /// Uploads: file parts smaller than this many bytes stay in memory (0 = all to disk).
    #[arg(long)]
    upload_min_size: Option<u64>,
    /// Uploads: largest file part in bytes (413 past it).
    #[arg(long)]
    upload_max_file: Option<u64>,
    /// Uploads: largest upload body in bytes (413 past it).
    #[arg(long)]
    upload_max_body: Option<u64>,
    /// Uploads: most parts per upload (413 past it).
    #[arg(long)]
    upload_max_parts: Option<usize>,
    /// Write a connection log (connect, disconnect, request, handshake, frames) to PATH.
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Connection log: WebSocket payload bytes written per frame.
    #[arg(long)]
    log_payload_max: Option<usize>,
}

fn main() -> ExitCode {
    ringwire_runtime::alloc::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(a) => match run_serve(*a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringwire: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::StunClient(a) => ringwire::stun::cli::stun_client(a),
        Cmd::TurnClient(a) => ringwire::stun::cli::turn_client(a),
    }
}

fn run_serve(a: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let file = match &a.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let flags = FileConfig {
        bind: (!a.bind.is_empty()).then_some(a.bind),
        tcp_echo: (!a.tcp_echo.is_empty()).then_some(a.tcp_echo),
        threads: a.threads,
        driver: a.driver,
        pin_cores: a.pin_cores.then_some(true),
        max_connections: a.max_connections,
        max_out_buffer: a.max_out_buffer,
        overflow_policy: a.overflow_policy,
        shutdown_timeout_ms: a.shutdown_timeout_ms,
        throttle_read: a.throttle_read,
        throttle_write: a.throttle_write,
        ws_max_message: a.ws_max_message,
        ws_compression: a.ws_compression,
        ws_heartbeat_ms: a.ws_heartbeat_ms,
        ws_heartbeat_timeout_ms: a.ws_heartbeat_timeout_ms,
        ws_idle_timeout_ms: a.ws_idle_timeout_ms,
        www: a.www,
        www_cache_valid_ms: a.www_cache_valid_ms,
        www_cache_max_file: a.www_cache_max_file,
        www_cache_size: a.www_cache_size,
        www_cache_entries: a.www_cache_entries,
        no_sendfile: a.no_sendfile.then_some(true),
        busy_poll_us: a.busy_poll_us,
        uring_batch_wait_us: a.uring_batch_wait_us,
        uring_batch_busy: a.uring_batch_busy,
        deadline_tick_ms: a.deadline_tick_ms,
        cors_origin: a.cors_origin,
        no_test_page: a.no_test_page.then_some(true),
        auth_user: (!a.auth_user.is_empty()).then_some(a.auth_user),
        auth_mode: a.auth_mode,
        auth_bearer_token: (!a.auth_bearer_token.is_empty()).then_some(a.auth_bearer_token),
        auth_exempt: (!a.auth_exempt.is_empty()).then_some(a.auth_exempt),
        auth_realm: a.auth_realm,
        auth_session_ttl_ms: a.auth_session_ttl_ms,
        upload_dir: a.upload_dir,
        forward: (!a.forward.is_empty()).then_some(a.forward),
        forward_ca: a.forward_ca,
        forward_timeout_ms: a.forward_timeout_ms,
        upload_min_size: a.upload_min_size,
        upload_max_file: a.upload_max_file,
        upload_max_body: a.upload_max_body,
        upload_max_parts: a.upload_max_parts,
        log_file: a.log_file,
        log_payload_max: a.log_payload_max,
        ..Default::default()
    };
    let flags = a.stun.apply(flags);
    let flags = a.tls.apply(flags);
    let cfg = file.merge(flags);
    let rt = cfg.runtime()?;
    // The default HTTP listener is left out of a STUN-only server.
    let binds = cfg.bind.clone().unwrap_or_else(|| match cfg.stun {
        Some(_) => Vec::new(),
        None => vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
    });
    let mut listeners: Vec<(SocketAddr, Service)> =
        binds.into_iter().map(|b| (b, Service::Http)).collect();
    let tls = ringwire::tls::acceptor(&cfg)?;
    listeners.extend(
        cfg.tcp_echo
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|b| (b, Service::TcpEcho)),
    );

    let stun = ringwire::stun::cli::stun_service(&cfg)?;
    if let Some((_, addrs)) = &stun {
        listeners.extend(addrs.iter().map(|a| (*a, Service::Stun)));
    }
    let services = serve::ServeConfig {
        ws: cfg.ws()?,
        http: cfg.http()?,
        stun: stun.map(|(s, _)| s),
    };
    if cfg.stun_tls.as_ref().is_some_and(|v| !v.is_empty()) && services.stun.is_none() {
        return Err("stun_tls needs the STUN/TURN settings (--stun)".into());
    }
    let mut all: Vec<serve::Listener> = listeners
        .into_iter()
        .map(|(addr, service)| serve::Listener {
            addr,
            service,
            tls: None,
        })
        .collect();
    for (addrs, service) in [
        (&cfg.bind_tls, Service::Http),
        (&cfg.stun_tls, Service::Stun),
    ] {
        all.extend(addrs.iter().flatten().map(|&addr| serve::Listener {
            addr,
            service,
            tls: tls.clone(),
        }));
    }
    let server = serve::start_listeners(rt, services, &all)?;
    let stopper = server.stopper();
    let stats = server.stats_reader();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGUSR1,
    ])?;
    std::thread::Builder::new()
        .name("ringwire-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == signal_hook::consts::SIGUSR1 {
                    serve::print_stats(&stats.stats());
                    continue;
                }
                if sig == signal_hook::consts::SIGHUP {
                    // Certificates are re-read; open connections keep theirs.
                    match &tls {
                        Some(acc) => match acc.reload() {
                            Ok(()) => tracing::info!("tls: certificates reloaded (SIGHUP)"),
                            Err(e) => tracing::error!("tls: reload failed, keeping the old: {e}"),
                        },
                        None => tracing::info!("SIGHUP: no TLS listener, nothing to reload"),
                    }
                    continue;
                }
                tracing::info!(
                    signal = sig,
                    "stopping: closing listeners and flushing connections"
                );
                stopper.stop();
                break;
            }
        })?;
    serve::announce(&server);
    server.join();
    tracing::info!("stopped");
    Ok(())
}
