//! Starting and stopping a server: bindings, one worker thread per core, readiness, shutdown.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

use crate::bus::{Bus, BusMessage, Envelope};
use crate::config::{DriverKind, RuntimeConfig};
use crate::core::{Core, CoreStats, Global, Shared};
use crate::deadline::Deadlines;
use crate::driver::{epoll::Epoll, resolve_driver, uring::Uring};
use crate::plugin::{ListenerId, PluginFactory, UdpId};
use crate::slab::Slab;
use crate::timer::TimerWheel;
use crate::tls::TlsAcceptor;

type Hook = Box<dyn FnOnce() + Send>;

/// Collects bindings and options, then starts the cores.
pub struct ServerBuilder {
    cfg: RuntimeConfig,
    tcp: Vec<SocketAddr>,
    tls: Vec<Option<Arc<TlsAcceptor>>>,
    udp: Vec<SocketAddr>,
    on_stopped: Vec<Hook>,
}

impl ServerBuilder {
    /// A builder with this configuration and no bindings yet.
    pub fn new(cfg: RuntimeConfig) -> Self {
        ServerBuilder {
            cfg,
            tcp: Vec::new(),
            tls: Vec::new(),
            udp: Vec::new(),
            on_stopped: Vec::new(),
        }
    }

    /// The configuration, to adjust before starting.
    pub fn config_mut(&mut self) -> &mut RuntimeConfig {
        &mut self.cfg
    }

    /// Add a TCP binding (port 0 picks a free port, the same one on every core).
    pub fn tcp(&mut self, addr: SocketAddr) -> ListenerId {
        self.tcp.push(addr);
        self.tls.push(None);
        ListenerId(self.tcp.len() - 1)
    }

    /// Add a TLS binding: connections run the handshake with `tls`'s configuration (swapped on
    /// [`TlsAcceptor::reload`]) and the plugin sees plaintext.
    pub fn tcp_tls(&mut self, addr: SocketAddr, tls: Arc<TlsAcceptor>) -> ListenerId {
        self.tcp.push(addr);
        self.tls.push(Some(tls));
        ListenerId(self.tcp.len() - 1)
    }

    /// Add a UDP binding (one `SO_REUSEPORT` socket per core).
    pub fn udp(&mut self, addr: SocketAddr) -> UdpId {
        self.udp.push(addr);
        UdpId(self.udp.len() - 1)
    }

    /// Run `f` once every core has stopped (the shutdown hook).
    pub fn on_stopped(&mut self, f: impl FnOnce() + Send + 'static) {
        self.on_stopped.push(Box::new(f));
    }

    /// Bind everything, start one worker per core and return once every core is listening.
    pub fn start<F: PluginFactory>(self, factory: F) -> io::Result<ServerHandle> {
        let ServerBuilder {
            cfg,
            tcp,
            tls,
            udp,
            on_stopped,
        } = self;
        let tls = Arc::new(tls);
        let threads = cfg.resolved_threads();
        let (driver, why) = resolve_driver(cfg.driver).map_err(io::Error::other)?;
        tracing::info!(driver = %driver, threads, "driver chosen: {why}");

        // Bind on this thread, so port 0 resolves once and errors come back before any thread.
        let mut tcp_socks: Vec<Vec<TcpListener>> = (0..threads).map(|_| Vec::new()).collect();
        let mut tcp_addrs = Vec::new();
        for addr in &tcp {
            let mut actual = *addr;
            for socks in tcp_socks.iter_mut() {
                let l = bind_tcp(actual, cfg.backlog)?;
                actual = l.local_addr()?;
                socks.push(l);
            }
            tcp_addrs.push(actual);
        }
        let mut udp_socks: Vec<Vec<UdpSocket>> = (0..threads).map(|_| Vec::new()).collect();
        let mut udp_addrs = Vec::new();
        for addr in &udp {
            let mut actual = *addr;
            for socks in udp_socks.iter_mut() {
                let u = bind_udp(actual)?;
                actual = u.local_addr()?;
                socks.push(u);
            }
            udp_addrs.push(actual);
        }

        let mut cfg = cfg;
        // Accepting past the file-descriptor limit would fail in the kernel (EMFILE) and spin;
        // keep the connection limit under it, with room for listeners, rings and files.
        let fd_limit = fd_limit();
        let headroom = 64 + 16 * threads as u64 * (tcp.len() + udp.len() + 2) as u64;
        if let Some(lim) = fd_limit
            && (cfg.max_connections as u64).saturating_add(headroom) > lim
        {
            let clamped = lim.saturating_sub(headroom) as usize;
            if cfg.max_connections == RuntimeConfig::default().max_connections {
                tracing::info!(
                    "max_connections: {clamped} (RLIMIT_NOFILE {lim}; raise `ulimit -n` for more)"
                );
            } else {
                tracing::warn!(
                    configured = cfg.max_connections,
                    clamped,
                    "max_connections lowered to fit RLIMIT_NOFILE ({lim}); raise `ulimit -n` for more"
                );
            }
            cfg.max_connections = clamped;
        }
        let cfg = Arc::new(cfg);
        let global = Arc::new(Global::new(threads, cfg.max_connections));
        let (bus, inboxes) = Bus::new(threads);
        let factory = Arc::new(factory);
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<usize>>();
        let mut joins = Vec::with_capacity(threads);
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        for (core, ((inbox, tcp), udp)) in inboxes
            .into_iter()
            .zip(tcp_socks)
            .zip(udp_socks)
            .enumerate()
        {
            let cfg = cfg.clone();
            let global = global.clone();
            let bus = bus.clone();
            let factory = factory.clone();
            let ready = ready_tx.clone();
            let tls = tls.clone();
            let j = std::thread::Builder::new()
                .name(format!("ringwire-{core}"))
                .spawn(move || {
                    if cfg.pin_cores {
                        pin(core % ncpu);
                    }
                    let udp_n = udp.len();
                    let sh = Shared {
                        trim_cursor: 0,
                        core,
                        now: Instant::now(),
                        conns: Slab::new(),
                        dirty: Vec::with_capacity(256),
                        timers: TimerWheel::with_tick(Instant::now(), cfg.timer_tick),
                        deadlines: Deadlines::new(Instant::now(), cfg.deadline_tick),
                        deadline_timer: None,
                        deadline_due: Vec::new(),
                        bus: bus.sender(),
                        cfg: cfg.clone(),
                        global,
                        stats: CoreStats::default(),
                        stopping: false,
                        udp_out: Vec::new(),
                        udp_live: vec![true; udp_n],
                        udp_free: Vec::new(),
                        udp_ops: Vec::new(),
                        driver,
                        tls,
                        tls_handshaking: 0,
                        tls_plain: Vec::new(),
                        new_outgoing: Vec::new(),
                        input_req: Default::default(),
                    };
                    let plugin = factory.create(core);
                    let mut c = Core::new(plugin, sh, inbox);
                    let res = match driver {
                        DriverKind::Uring => match Uring::new(&cfg, tcp, udp) {
                            Ok(d) => {
                                bus.set_waker(core, d.waker());
                                c.start();
                                let _ = ready.send(Ok(core));
                                d.run(&mut c, &bus)
                            }
                            Err(e) => {
                                let _ = ready.send(Err(e));
                                return;
                            }
                        },
                        DriverKind::Epoll => match Epoll::new(&cfg, tcp, udp) {
                            Ok(d) => {
                                bus.set_waker(core, d.waker());
                                c.start();
                                let _ = ready.send(Ok(core));
                                d.run(&mut c, &bus)
                            }
                            Err(e) => {
                                let _ = ready.send(Err(e));
                                return;
                            }
                        },
                    };
                    if let Err(e) = res {
                        tracing::error!(core, "core stopped on error: {e}");
                    }
                })?;
            joins.push(j);
        }
        drop(ready_tx);
        let handle = ServerHandle {
            joins,
            bus,
            global,
            tcp_addrs,
            udp_addrs,
            driver,
            threads,
            on_stopped,
        };
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    handle.stop();
                    return Err(e);
                }
                Err(_) => {
                    handle.stop();
                    return Err(io::Error::other("a core exited during start-up"));
                }
            }
        }
        Ok(handle)
    }
}

fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s.into())
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// The soft RLIMIT_NOFILE, if it is finite.
fn fd_limit() -> Option<u64> {
    // SAFETY: all-zero is a valid rlimit; getrlimit writes it.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is valid for writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0
        || r.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    Some(r.rlim_cur)
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes inside it; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!(cpu, "pinning failed: {}", io::Error::last_os_error());
        }
    }
}

/// A running server: its addresses, its driver, and the means to stop it.
/// Dropping the handle stops the server and waits for it.
pub struct ServerHandle {
    joins: Vec<JoinHandle<()>>,
    bus: Arc<Bus>,
    global: Arc<Global>,
    tcp_addrs: Vec<SocketAddr>,
    udp_addrs: Vec<SocketAddr>,
    driver: DriverKind,
    threads: usize,
    on_stopped: Vec<Hook>,
}

impl ServerHandle {
    /// The bound TCP addresses, in binding order (ports resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }
    /// The bound UDP addresses, in binding order.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }
    /// The driver every core runs.
    pub fn driver(&self) -> DriverKind {
        self.driver
    }
    /// Worker threads (cores).
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// Open connections across all cores.
    pub fn open_connections(&self) -> usize {
        self.global.open.load(std::sync::atomic::Ordering::Acquire)
    }
    /// Per-core counters, as last published (every 100 ms, and at stop).
    pub fn stats(&self) -> Vec<CoreStats> {
        self.global.stats()
    }
    /// A cloneable, `Send + Sync` handle that reads the per-core counters from any thread
    /// (a signal handler thread, a metrics exporter).
    pub fn stats_reader(&self) -> StatsReader {
        StatsReader {
            global: self.global.clone(),
        }
    }
    /// Post a message to one core's plugin.
    pub fn post(&self, core: usize, tag: u64, data: bytes::Bytes) -> bool {
        self.bus.post(
            core,
            Envelope::User(BusMessage {
                from: usize::MAX,
                tag,
                data,
                extra: None,
            }),
        )
    }
    /// Post the same refcounted message to every core.
    pub fn broadcast(&self, tag: u64, data: bytes::Bytes) -> usize {
        let msg = BusMessage {
            from: usize::MAX,
            tag,
            data,
            extra: None,
        };
        (0..self.bus.cores())
            .filter(|&c| self.bus.post(c, Envelope::User(msg.clone())))
            .count()
    }
    /// A cloneable, `Send + Sync` handle that posts bus messages to the cores from any thread
    /// (an embedding application publishing to its connections).
    pub fn publisher(&self) -> Publisher {
        Publisher {
            bus: self.bus.clone(),
        }
    }
    /// A cloneable handle that can stop the server from another thread (a signal handler thread).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            bus: self.bus.clone(),
        }
    }
    /// Begin a graceful stop: cores stop accepting, plugins get `on_stop`, connections are
    /// flushed and closed, and aborted at the shutdown deadline.
    pub fn stop(&self) {
        for c in 0..self.bus.cores() {
            self.bus.post(c, Envelope::Stop);
        }
    }
    /// Wait until every core has stopped, then run the stop hooks.
    pub fn join(mut self) {
        self.join_inner();
    }
    fn join_inner(&mut self) {
        for j in self.joins.drain(..) {
            let _ = j.join();
        }
        for h in self.on_stopped.drain(..) {
            h();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if !self.joins.is_empty() {
            self.stop();
            self.join_inner();
        }
    }
}

/// Reads a server's per-core counters from any thread; see [`ServerHandle::stats_reader`].
#[derive(Clone)]
pub struct StatsReader {
    global: Arc<Global>,
}

impl StatsReader {
    /// Per-core counters, as last published (every 100 ms, and at stop).
    pub fn stats(&self) -> Vec<CoreStats> {
        self.global.stats()
    }
}

/// Stops a server from any thread; see [`ServerHandle::stopper`].
#[derive(Clone)]
pub struct Stopper {
    bus: Arc<Bus>,
}

/// Posts messages to a running server's cores from any thread: each arrives in
/// [`crate::Plugin::on_message`] on its core (with `from == usize::MAX`). Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    bus: Arc<Bus>,
}

impl Publisher {
    /// The number of cores.
    pub fn cores(&self) -> usize {
        self.bus.cores()
    }
    /// Post to one core. False if that core is gone (stopped) or does not exist.
    pub fn post(&self, core: usize, tag: u64, data: bytes::Bytes) -> bool {
        self.post_message(
            core,
            BusMessage {
                from: usize::MAX,
                tag,
                data,
                extra: None,
            },
        )
    }
    /// Post a full message (with its shared `extra` payload) to one core.
    pub fn post_message(&self, core: usize, msg: BusMessage) -> bool {
        core < self.bus.cores() && self.bus.post(core, Envelope::User(msg))
    }
    /// Post the same refcounted message to every core; returns how many took it.
    pub fn broadcast(&self, tag: u64, data: bytes::Bytes) -> usize {
        let msg = BusMessage {
            from: usize::MAX,
            tag,
            data,
            extra: None,
        };
        (0..self.bus.cores())
            .filter(|&c| self.bus.post(c, Envelope::User(msg.clone())))
            .count()
    }
}

impl Stopper {
    /// Begin a graceful stop (idempotent).
    pub fn stop(&self) {
        for c in 0..self.bus.cores() {
            self.bus.post(c, Envelope::Stop);
        }
    }
}
