//! Runtime configuration: every limit the engine enforces has a name here and a default.

use std::time::Duration;

/// Which I/O driver a core runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriverKind {
    /// Linux io_uring: multishot accept, multishot recv into provided-buffer rings.
    Uring,
    /// Readiness (epoll on Linux, kqueue on macOS) through mio.
    Epoll,
}

impl DriverKind {
    /// The name printed in logs and in the `listening on` line.
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Uring => "uring",
            DriverKind::Epoll => "epoll",
        }
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the user asked for: a driver, or `auto` (io_uring when the start-up probe passes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DriverChoice {
    /// io_uring when the probe passes, else epoll; the reason is logged.
    #[default]
    Auto,
    /// io_uring or a start-up error.
    Uring,
    /// epoll (mio) always.
    Epoll,
}

impl std::str::FromStr for DriverChoice {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(DriverChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(DriverChoice::Uring),
            "epoll" | "mio" | "kqueue" => Ok(DriverChoice::Epoll),
            _ => Err(ConfigError::UnknownDriver),
        }
    }
}

impl DriverChoice {
    /// The environment variable that overrides the configured driver in any binary or test.
    pub const ENV: &'static str = "RINGWIRE_DRIVER";

    /// `RINGWIRE_DRIVER` when set (and valid), else `self`.
    pub fn with_env_override(self) -> Self {
        match std::env::var(Self::ENV) {
            Ok(v) if !v.trim().is_empty() => match v.parse() {
                Ok(d) => d,
                Err(_) => {
                    tracing::warn!(value = %v, "ignoring invalid {}", Self::ENV);
                    self
                }
            },
            _ => self,
        }
    }
}

/// An invalid configuration value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The driver name is not `auto`, `uring` or `epoll`.
    UnknownDriver,
    /// The overflow policy is not `refuse` or `close`.
    UnknownOverflowPolicy,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::UnknownDriver => f.write_str("driver must be one of auto, uring, epoll"),
            ConfigError::UnknownOverflowPolicy => {
                f.write_str("overflow policy must be refuse or close")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// What happens to a send that would take a connection's out-queue past its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// The send is refused with [`crate::SendError::Backpressure`]; nothing is queued.
    #[default]
    Refuse,
    /// The connection is aborted: a peer that does not read is cut off.
    Close,
}

impl std::str::FromStr for OverflowPolicy {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "refuse" => Ok(OverflowPolicy::Refuse),
            "close" => Ok(OverflowPolicy::Close),
            _ => Err(ConfigError::UnknownOverflowPolicy),
        }
    }
}

/// A bandwidth limit for one direction of one connection (the suite's Throttle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Bytes per second.
    pub bytes_per_sec: u64,
    /// The budget that may be spent at once after an idle period (bytes).
    pub burst: u64,
}

impl Rate {
    /// A rate with a burst of one tenth of a second's worth (at least 1 KiB).
    pub fn per_sec(bytes_per_sec: u64) -> Self {
        Rate {
            bytes_per_sec,
            burst: (bytes_per_sec / 10).max(1024),
        }
    }
}

/// Per-connection throttle: either direction may be limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Throttle {
    /// Limit on bytes read from the peer; past it the runtime stops reading the socket.
    pub read: Option<Rate>,
    /// Limit on bytes written to the peer; past it writes wait for the budget to refill.
    pub write: Option<Rate>,
}

/// Everything the runtime needs to know; the `ringwire` binary fills it from flags and TOML.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Worker threads, one per core. 0 means "all available cores".
    pub threads: usize,
    /// Pin worker `i` to CPU `i % ncpus`.
    pub pin_cores: bool,
    /// Driver selection.
    pub driver: DriverChoice,
    /// Most open TCP connections across all cores; past it new connections are closed at once.
    pub max_connections: usize,
    /// Default limit on a connection's queued outgoing bytes (at most 2 GiB: a larger one is
    /// lowered to it).
    pub max_out_buffer: usize,
    /// What a send past `max_out_buffer` does.
    pub overflow_policy: OverflowPolicy,
    /// Most unconsumed input kept for a connection whose plugin returned less than it was given;
    /// past it the connection is aborted.
    pub max_in_buffer: usize,
    /// Default throttle for every new connection (usually none).
    pub throttle: Throttle,
    /// After a graceful close has flushed and sent FIN, how long to wait for the peer's FIN.
    pub linger: Duration,
    /// On shutdown, how long plugins get to flush and close before connections are aborted.
    pub shutdown_timeout: Duration,
    /// io_uring: submission queue entries.
    pub uring_entries: u32,
    /// io_uring: on a busy core, wait up to this long for [`Self::uring_batch_size`]
    /// completions before a loop turn (one is enough once it passed). Fewer `io_uring_enter`
    /// calls per message under load, for up to this much added latency. A turn waits so only
    /// when the one before handled at least [`Self::uring_batch_busy`] completions: a lightly
    /// loaded core answers every completion at once. Zero (the default) turns batching off:
    /// on Linux 6.18 it cut syscalls per message 2-5× at 500 connections without a measurable
    /// saving of server CPU, and it raises latency. Needs Linux 6.12
    /// (IORING_FEAT_MIN_TIMEOUT); ignored before.
    pub uring_batch_wait: Duration,
    /// Before a core sleeps for want of events, it polls for them for up to this long
    /// (a non-blocking `io_uring_enter` or `epoll_wait` in a loop), so that what arrives
    /// meanwhile is handled without the wake-up of a sleeping thread: lower latency at a
    /// moderate load, for a core that runs flat out whenever it has traffic at all (an idle
    /// core still sleeps once a poll found nothing). Zero (the default) turns it off. For
    /// latency-bound services with a core to spare; with cores shared with other work, it
    /// takes their CPU time.
    pub busy_poll: Duration,
    /// io_uring: completions that end a batch wait early.
    pub uring_batch_size: usize,
    /// io_uring: completions a loop turn must have handled for the next one to wait for a
    /// batch (16 by default); 0 makes every turn wait.
    pub uring_batch_busy: usize,
    /// io_uring: provided receive buffers per core (a power of two; 256 by default, 8 MiB
    /// with the default size).
    pub recv_buffers: u16,
    /// io_uring: how many of the `recv_buffers` the kernel is offered at least, at a time
    /// (64 by default). The rest wait in a stack; the offer doubles when a receive finds
    /// none left (many connections with data at once) and shrinks back while it does not.
    /// Buffers given back are offered again first, so the bytes in rotation stay in the CPU
    /// cache: with every one of 256 buffers offered, each receive writes into memory not
    /// touched for 256 receives. At least `recv_buffers` offers them all (the behaviour
    /// before this setting).
    pub recv_buffer_window: u16,
    /// io_uring: size of one provided receive buffer (at most 16 MiB: a larger one is
    /// lowered to it). 32 KiB by default, so that a 16 KiB record and its header (a
    /// WebSocket frame, a full TLS record) come in one buffer rather than two, the first of
    /// which would be copied aside until the second came.
    pub recv_buffer_size: usize,
    /// io_uring: consume provided buffers incrementally (Linux 6.12, `IOU_PBUF_RING_INC`):
    /// a receive takes only the bytes it got and the next goes on after them, so receives
    /// share buffers and a record lies whole in one unless it crosses a buffer's end. With
    /// buffers much larger than the records (say 64 × 128 KiB), a 16 KiB WebSocket frame is
    /// then not copied together out of two buffers: 12% less server CPU per message in a
    /// 500 × 16 KiB echo. The cost: until a connection's large records go to direct reads,
    /// a receive can take a whole large buffer, which is copied; under load, fewer bytes of
    /// 1 MiB records were read directly (65-70% against 83-94%), and the whole ring becomes
    /// resident sooner (receives walk through it rather than reuse the buffers just given
    /// back: +150 B per idle connection at 10k). Off by default. Where the
    /// kernel lacks it, every receive takes a whole buffer, and the ring's `recv_buffers` ×
    /// `recv_buffer_size` bytes are cut into buffers of at most 16 KiB.
    pub recv_buffer_incremental: bool,
    /// epoll: size of the one receive buffer each core shares between its connections (a read
    /// never takes more; 64 KiB holds a 16 KiB WebSocket frame and its header in one read).
    pub epoll_read_buffer: usize,
    /// io_uring: provided buffers for UDP datagrams (a power of two).
    pub udp_buffers: u16,
    /// Largest UDP datagram received (bytes); larger ones are truncated and dropped.
    pub udp_max_datagram: usize,
    /// listen(2) backlog.
    pub backlog: i32,
    /// Set TCP_NODELAY on accepted sockets.
    pub nodelay: bool,
    /// Most reads one connection gets per loop turn on epoll before others get theirs.
    pub reads_per_turn: usize,
    /// TLS: a handshake not complete after this long is aborted.
    pub tls_handshake_timeout: Duration,
    /// TLS: handshakes in progress per core; past it new TLS connections are refused.
    pub tls_max_handshakes: usize,
    /// Outgoing connections ([`crate::CoreCtx::connect`]): the connect deadline.
    pub connect_timeout: Duration,
    /// The timer wheel's resolution: a timer fires at most one tick late (never early). 1 ms
    /// by default; finer ticks (down to microseconds) suit paced sending such as a load
    /// generator's fixed rate. io_uring waits with nanosecond precision; epoll (mio) rounds its
    /// wait up to whole milliseconds whatever the tick.
    pub timer_tick: Duration,
    /// The grid of connection deadlines ([`crate::ConnCtx::set_deadline`]): one fires at most
    /// this late (never early), and their array is swept at most once per tick. 100 ms by
    /// default.
    pub deadline_tick: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            threads: 0,
            pin_cores: false,
            driver: DriverChoice::Auto,
            max_connections: 1_000_000,
            max_out_buffer: 16 * 1024 * 1024,
            overflow_policy: OverflowPolicy::Refuse,
            max_in_buffer: 16 * 1024 * 1024,
            throttle: Throttle::default(),
            linger: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(10),
            uring_entries: 1024,
            uring_batch_wait: Duration::ZERO,
            busy_poll: Duration::ZERO,
            uring_batch_size: 64,
            uring_batch_busy: 16,
            recv_buffers: 256,
            recv_buffer_window: 64,
            recv_buffer_size: 32 * 1024,
            recv_buffer_incremental: false,
            epoll_read_buffer: 64 * 1024,
            udp_buffers: 256,
            udp_max_datagram: 2048,
            backlog: 1024,
            nodelay: true,
            reads_per_turn: 16,
            tls_handshake_timeout: Duration::from_secs(10),
            tls_max_handshakes: 1024,
            connect_timeout: Duration::from_secs(10),
            timer_tick: Duration::from_millis(1),
            deadline_tick: Duration::from_millis(100),
        }
    }
}

impl RuntimeConfig {
    /// The number of worker threads this config starts (resolving 0 to the core count).
    pub fn resolved_threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.threads
        }
    }
}
