//! The `ringwire serve` configuration: a TOML file, then command-line flags over it.
//!
//! Every flag has a key of the same name (dashes become underscores). Example:
//! ```toml
//! bind = ["127.0.0.1:8080"]
//! tcp_echo = ["127.0.0.1:9000"]
//! threads = 2
//! driver = "auto"          # auto | uring | epoll
//! pin_cores = false
//! max_connections = 100000
//! max_out_buffer = 16777216
//! overflow_policy = "refuse"  # refuse | close
//! max_in_buffer = 16777216
//! linger_ms = 5000
//! shutdown_timeout_ms = 10000
//! throttle_read = 0         # bytes/s per connection, 0 = off
//! throttle_write = 0
//! uring_entries = 1024
//! busy_poll_us = 0              # poll this long for events before a core sleeps (0 = off)
//! uring_batch_wait_us = 0        # io_uring, busy core: wait this long to batch completions (0 = off)
//! uring_batch_size = 64          # completions that end the batch wait early
//! uring_batch_busy = 16          # completions in a turn that make the next one batch (0 = always)
//! deadline_tick_ms = 100         # grid of the connection deadlines: how late they may fire
//!                                # (default: 100, or a tenth of the shortest ws heartbeat/idle)
//! recv_buffers = 256
//! recv_buffer_window = 64         # io_uring: buffers offered at least, at a time (the rest wait)
//! recv_buffer_size = 32768
//! recv_buffer_incremental = false # io_uring: receives share provided buffers (Linux >= 6.12)
//! # HTTP (docs/http.md)
//! www = "/srv/www"               # static files
//! www_cache_valid_ms = 1000      # per-core cache of static answers, 0 = off
//! www_cache_max_file = 65536     # larger files: metadata cached, content not
//! www_cache_size = 16777216      # content bytes per core
//! www_cache_entries = 4096       # cached paths per core
//! no_sendfile = false            # true: read file bodies instead of sendfile(2)
//! cors_origin = "*"              # or "https://a.example, https://b.example"
//! http_max_body = 16777216       # 413 past it
//! http_keep_alive_ms = 60000
//! no_test_page = false           # /ringwire.html and /ringwire.js
//! auth_user = ["admin=1234"]     # enables authentication (docs/http.md)
//! auth_mode = "basic,session,url"  # or bearer, all
//! auth_bearer_token = ["t0ken"]
//! auth_exempt = ["/public/"]
//! auth_realm = "ringwire"
//! auth_session_ttl_ms = 60000
//! upload_dir = "/srv/uploads"    # enables POST /upload
//! forward = ["/api/=http://127.0.0.1:9000"]  # reverse proxy (docs/http.md)
//! forward_ca = "/etc/ringwire/upstream-ca.pem"  # trust for https:// upstreams
//! forward_timeout_ms = 30000
//! upload_min_size = 0            # smaller file parts stay in memory
//! upload_max_file = 4294967296
//! upload_max_body = 4294967296
//! upload_max_parts = 64
//! log_file = "/var/log/ringwire.log"
//! log_payload_max = 256
//! # STUN/TURN (docs/stun.md)
//! stun = ["127.0.0.1:3478"]      # UDP and TCP on each address
//! turn_user = ["user:pass"]
//! realm = "ringwire"
//! turn_secret = "shared-secret"  # REST credentials "expiry:user"
//! turn_relay_ports = "49152-65535"
//! turn_relay_ip = ["127.0.0.1"]
//! turn_external_ip = "203.0.113.1"
//! turn_allow_loopback_peers = false
//! turn_allow_private_peers = false
//! turn_rfc5766_channels = false  # accept channels up to 0x7FFF
//! turn_user_quota = 0           # 0 = unlimited
//! turn_max_lifetime = 3600
//! stun_alternate_server = "192.0.2.2:3478"
//! # TLS (docs/tls.md)
//! bind_tls = ["127.0.0.1:8443"]  # HTTPS/WSS listeners
//! stun_tls = ["127.0.0.1:5349"]  # TURN over TLS (TCP)
//! tls_cert = ["/etc/ringwire/a.pem"]  # chains, leaf first; the first is the default,
//! tls_key = ["/etc/ringwire/a.key"]   # the others are picked by SNI
//! tls_self_signed = false        # development: generate one for localhost
//! tls_alpn = ["http/1.1"]
//! tls_client_ca = "/etc/ringwire/clients-ca.pem"
//! tls_client_auth = "required"   # or "optional" (with tls_client_ca)
//! tls_session_cache = 4096
//! tls_tickets = true
//! tls12 = true
//! tls_handshake_timeout_ms = 10000
//! tls_max_handshakes = 1024      # per core, in progress
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use ringwire_runtime::{DriverChoice, OverflowPolicy, Rate, RuntimeConfig, Throttle};
use serde::Deserialize;

/// The file's shape; every field optional.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// HTTP/WebSocket listeners.
    pub bind: Option<Vec<SocketAddr>>,
    /// Raw TCP echo listeners.
    pub tcp_echo: Option<Vec<SocketAddr>>,
    /// Worker threads (0 = all cores).
    pub threads: Option<usize>,
    /// auto | uring | epoll.
    pub driver: Option<String>,
    /// Pin worker i to CPU i.
    pub pin_cores: Option<bool>,
    /// Most open connections.
    pub max_connections: Option<usize>,
    /// Per-connection out-queue limit (bytes).
    pub max_out_buffer: Option<usize>,
    /// refuse | close.
    pub overflow_policy: Option<String>,
    /// Per-connection unconsumed-input limit (bytes).
    pub max_in_buffer: Option<usize>,
    /// Wait for the peer's FIN after ours (ms).
    pub linger_ms: Option<u64>,
    /// Graceful-stop deadline (ms).
    pub shutdown_timeout_ms: Option<u64>,
    /// Per-connection read limit, bytes/s (0 = none).
    pub throttle_read: Option<u64>,
    /// Per-connection write limit, bytes/s (0 = none).
    pub throttle_write: Option<u64>,
    /// io_uring SQ entries.
    pub uring_entries: Option<u32>,
    /// Busy poll before a core sleeps (µs, 0 = off).
    pub busy_poll_us: Option<u64>,
    /// io_uring: batch wait (µs, 0 = off).
    pub uring_batch_wait_us: Option<u64>,
    /// io_uring: completions that end a batch wait.
    pub uring_batch_size: Option<usize>,
    /// io_uring: completions a turn handles for the next to wait for a batch (0 = always).
    pub uring_batch_busy: Option<usize>,
    /// Grid of connection deadlines (handshake, request head, keep-alive), ms.
    pub deadline_tick_ms: Option<u64>,
    /// io_uring provided receive buffers per core.
    pub recv_buffers: Option<u16>,
    /// io_uring: provided buffers offered to the kernel at least, at a time.
    pub recv_buffer_window: Option<u16>,
    /// Receive buffer size (bytes).
    pub recv_buffer_size: Option<usize>,
    /// io_uring: consume provided buffers incrementally.
    pub recv_buffer_incremental: Option<bool>,
    /// WebSocket: largest message (bytes, inflated), close 1009 past it.
    pub ws_max_message: Option<usize>,
    /// WebSocket: largest frame payload (bytes), close 1009 past it.
    pub ws_max_frame: Option<usize>,
    /// WebSocket: most fragments in one message, close 1009 past it.
    pub ws_max_fragments: Option<u32>,
    /// WebSocket: offer/accept permessage-deflate.
    pub ws_compression: Option<bool>,
    /// WebSocket: compress only messages of at least this many bytes.
    pub ws_compress_threshold: Option<usize>,
    /// WebSocket: ping interval in ms (0 = no heartbeat).
    pub ws_heartbeat_ms: Option<u64>,
    /// WebSocket: close when no pong arrives this long after a ping (ms).
    pub ws_heartbeat_timeout_ms: Option<u64>,
    /// WebSocket: ping only when nothing arrived during the interval.
    pub ws_heartbeat_only_idle: Option<bool>,
    /// WebSocket: close after this long without input (ms, 0 = never).
    pub ws_idle_timeout_ms: Option<u64>,
    /// WebSocket: a complete upgrade request must arrive within this time (ms).
    pub ws_handshake_timeout_ms: Option<u64>,
    /// WebSocket: subprotocols the server speaks, in order of preference.
    pub ws_subprotocols: Option<Vec<String>>,
    /// HTTP: serve static files from this directory.
    pub www: Option<std::path::PathBuf>,
    /// HTTP: static answers are cached this long without a syscall (ms, 0 = no cache).
    pub www_cache_valid_ms: Option<u64>,
    /// HTTP: files up to this size are held in memory by the cache (bytes).
    pub www_cache_max_file: Option<u64>,
    /// HTTP: file content held by the cache per core (bytes).
    pub www_cache_size: Option<usize>,
    /// HTTP: cached paths per core.
    pub www_cache_entries: Option<usize>,
    /// HTTP: read file bodies into user space instead of sendfile(2).
    pub no_sendfile: Option<bool>,
    /// HTTP: CORS allowed origin(s): `*` or a comma-separated list.
    pub cors_origin: Option<String>,
    /// HTTP: largest request body (bytes), 413 past it.
    pub http_max_body: Option<u64>,
    /// HTTP: close keep-alive connections idle this long (ms).
    pub http_keep_alive_ms: Option<u64>,
    /// HTTP: do not serve the test page `/ringwire.html` and `/ringwire.js`.
    pub no_test_page: Option<bool>,
    /// Auth: users, `"USER=PASSWORD"` (Basic, Session and URL schemes).
    pub auth_user: Option<Vec<String>>,
    /// Auth: accepted schemes, comma-separated: basic, session, url, bearer, all.
    pub auth_mode: Option<String>,
    /// Auth: accepted bearer tokens.
    pub auth_bearer_token: Option<Vec<String>>,
    /// Auth: path prefixes that need no credentials.
    pub auth_exempt: Option<Vec<String>>,
    /// Auth: the realm of `WWW-Authenticate`.
    pub auth_realm: Option<String>,
    /// Auth: session token lifetime (ms).
    pub auth_session_ttl_ms: Option<u64>,
    /// Uploads: enable `POST /upload`, saving files in this directory.
    pub upload_dir: Option<std::path::PathBuf>,
    /// Forwarding: `PREFIX=http://HOST:PORT[/base]` rules.
    pub forward: Option<Vec<String>>,
    /// Forwarding: a PEM CA file for `https://` upstreams (else the webpki roots).
    pub forward_ca: Option<std::path::PathBuf>,
    /// Forwarding: 504 after this long without a byte from the upstream (ms).
    pub forward_timeout_ms: Option<u64>,
    /// Uploads: file parts smaller than this stay in memory (bytes; 0 = all to disk).
    pub upload_min_size: Option<u64>,
    /// Uploads: largest file part (bytes), 413 past it.
    pub upload_max_file: Option<u64>,
    /// Uploads: largest upload request body (bytes), 413 past it.
    pub upload_max_body: Option<u64>,
    /// Uploads: most parts in one upload, 413 past it.
    pub upload_max_parts: Option<usize>,
    /// Connection log file (connect, disconnect, request, handshake and frame lines).
    pub log_file: Option<std::path::PathBuf>,
    /// Connection log: WebSocket payload bytes written per frame.
    pub log_payload_max: Option<usize>,
    /// STUN/TURN listeners (UDP and TCP on each address).
    pub stun: Option<Vec<SocketAddr>>,
    /// TURN users, `"USER:PASSWORD"`.
    pub turn_user: Option<Vec<String>>,
    /// Long-term credential realm.
    pub realm: Option<String>,
    /// TURN REST shared secret.
    pub turn_secret: Option<String>,
    /// Relay port range, `"A-B"`.
    pub turn_relay_ports: Option<String>,
    /// Relay bind addresses (one per family).
    pub turn_relay_ip: Option<Vec<IpAddr>>,
    /// Advertised relay address (1:1 NAT).
    pub turn_external_ip: Option<IpAddr>,
    /// Allow loopback peers.
    pub turn_allow_loopback_peers: Option<bool>,
    /// Allow private / link-local peers.
    pub turn_allow_private_peers: Option<bool>,
    /// Accept channel numbers up to 0x7FFF.
    pub turn_rfc5766_channels: Option<bool>,
    /// Most allocations per user (0 = unlimited).
    pub turn_user_quota: Option<u32>,
    /// Longest allocation lifetime (s).
    pub turn_max_lifetime: Option<u64>,
    /// 300 Try Alternate target.
    pub stun_alternate_server: Option<SocketAddr>,
    /// TLS: HTTPS/WSS listeners.
    pub bind_tls: Option<Vec<SocketAddr>>,
    /// TLS: TURN-over-TLS listeners (TCP).
    pub stun_tls: Option<Vec<SocketAddr>>,
    /// TLS: certificate chains (PEM), paired in order with `tls_key`.
    pub tls_cert: Option<Vec<std::path::PathBuf>>,
    /// TLS: private keys (PEM).
    pub tls_key: Option<Vec<std::path::PathBuf>>,
    /// TLS: generate a self-signed certificate for localhost (development).
    pub tls_self_signed: Option<bool>,
    /// TLS: ALPN protocols offered.
    pub tls_alpn: Option<Vec<String>>,
    /// TLS: CA file client certificates are verified against.
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// TLS: `optional` or `required` client certificates.
    pub tls_client_auth: Option<String>,
    /// TLS: sessions kept for resumption.
    pub tls_session_cache: Option<usize>,
    /// TLS: issue session tickets.
    pub tls_tickets: Option<bool>,
    /// TLS: accept TLS 1.2 as well as 1.3.
    pub tls12: Option<bool>,
    /// TLS: handshake deadline in ms.
    pub tls_handshake_timeout_ms: Option<u64>,
    /// TLS: handshakes in progress per core.
    pub tls_max_handshakes: Option<usize>,
}

/// A configuration error with the key it concerns.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl FileConfig {
    /// Read and parse a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parse TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// Merge `over` (flags) onto `self` (file): set fields of `over` win.
    pub fn merge(self, over: FileConfig) -> FileConfig {
        macro_rules! pick { ($($f:ident),* $(,)?) => { FileConfig { $($f: over.$f.or(self.$f)),* } } }
        pick!(
            bind,
            tcp_echo,
            threads,
            driver,
            pin_cores,
            max_connections,
            max_out_buffer,
            overflow_policy,
            max_in_buffer,
            linger_ms,
            shutdown_timeout_ms,
            throttle_read,
            throttle_write,
            uring_entries,
            busy_poll_us,
            uring_batch_wait_us,
            uring_batch_size,
            uring_batch_busy,
            deadline_tick_ms,
            recv_buffers,
            recv_buffer_window,
            recv_buffer_size,
            recv_buffer_incremental,
            ws_max_message,
            ws_max_frame,
            ws_max_fragments,
            ws_compression,
            ws_compress_threshold,
            ws_heartbeat_ms,
            ws_heartbeat_timeout_ms,
            ws_heartbeat_only_idle,
            ws_idle_timeout_ms,
            ws_handshake_timeout_ms,
            ws_subprotocols,
            www,
            www_cache_valid_ms,
            www_cache_max_file,
            www_cache_size,
            www_cache_entries,
            no_sendfile,
            cors_origin,
            http_max_body,
            http_keep_alive_ms,
            no_test_page,
            auth_user,
            auth_mode,
            auth_bearer_token,
            auth_exempt,
            auth_realm,
            auth_session_ttl_ms,
            upload_dir,
            forward,
            forward_ca,
            forward_timeout_ms,
            upload_min_size,
            upload_max_file,
            upload_max_body,
            upload_max_parts,
            log_file,
            log_payload_max,
            stun,
            turn_user,
            realm,
            turn_secret,
            turn_relay_ports,
            turn_relay_ip,
            turn_external_ip,
            turn_allow_loopback_peers,
            turn_allow_private_peers,
            turn_rfc5766_channels,
            turn_user_quota,
            turn_max_lifetime,
            stun_alternate_server,
            bind_tls,
            stun_tls,
            tls_cert,
            tls_key,
            tls_self_signed,
            tls_alpn,
            tls_client_ca,
            tls_client_auth,
            tls_session_cache,
            tls_tickets,
            tls12,
            tls_handshake_timeout_ms,
            tls_max_handshakes,
        )
    }

    /// The runtime configuration this describes (defaults for what is unset).
    pub fn runtime(&self) -> Result<RuntimeConfig, ConfigError> {
        let mut c = RuntimeConfig::default();
        if let Some(t) = self.threads {
            c.threads = t;
        }
        if let Some(d) = &self.driver {
            c.driver = d
                .parse::<DriverChoice>()
                .map_err(|e| ConfigError(format!("driver: {e}")))?;
        }
        if let Some(p) = self.pin_cores {
            c.pin_cores = p;
        }
        if let Some(v) = self.max_connections {
            c.max_connections = v;
        }
        if let Some(v) = self.max_out_buffer {
            c.max_out_buffer = v;
        }
        if let Some(v) = &self.overflow_policy {
            c.overflow_policy = v
                .parse::<OverflowPolicy>()
                .map_err(|e| ConfigError(format!("overflow_policy: {e}")))?;
        }
        if let Some(v) = self.max_in_buffer {
            c.max_in_buffer = v;
        }
        if let Some(v) = self.linger_ms {
            c.linger = Duration::from_millis(v);
        }
        if let Some(v) = self.shutdown_timeout_ms {
            c.shutdown_timeout = Duration::from_millis(v);
        }
        let rate = |v: Option<u64>| v.filter(|&r| r > 0).map(Rate::per_sec);
        c.throttle = Throttle {
            read: rate(self.throttle_read),
            write: rate(self.throttle_write),
        };
        if let Some(v) = self.uring_entries {
            c.uring_entries = v;
        }
        if let Some(us) = self.busy_poll_us {
            if us > 1_000_000 {
                return Err(ConfigError(format!(
                    "busy_poll_us: {us} is more than 1000000 (one second)"
                )));
            }
            c.busy_poll = Duration::from_micros(us);
        }
        if let Some(us) = self.uring_batch_wait_us {
            c.uring_batch_wait = Duration::from_micros(us);
        }
        if let Some(v) = self.uring_batch_size {
            if v == 0 {
                return Err(ConfigError("uring_batch_size must be at least 1".into()));
            }
            c.uring_batch_size = v;
        }
        if let Some(v) = self.uring_batch_busy {
            c.uring_batch_busy = v;
        }
        if let Some(v) = self.deadline_tick_ms {
            if v == 0 || v > 60_000 {
                return Err(ConfigError(
                    "deadline_tick_ms must be between 1 and 60000".into(),
                ));
            }
            c.deadline_tick = Duration::from_millis(v);
        } else {
            // WebSocket heartbeats and idle limits run on the connection deadlines: unless told
            // otherwise, keep how late they may fire to a tenth of the shortest of them.
            let finest = [
                self.ws_heartbeat_ms,
                self.ws_heartbeat_timeout_ms,
                self.ws_idle_timeout_ms,
            ]
            .into_iter()
            .flatten()
            .filter(|&ms| ms > 0)
            .min();
            if let Some(ms) = finest {
                c.deadline_tick = c.deadline_tick.min(Duration::from_millis((ms / 10).max(1)));
            }
        }
        if let Some(v) = self.recv_buffers {
            if v == 0 {
                return Err(ConfigError("recv_buffers must be at least 1".into()));
            }
            c.recv_buffers = v;
        }
        if let Some(v) = self.recv_buffer_window {
            if v == 0 {
                return Err(ConfigError("recv_buffer_window must be at least 1".into()));
            }
            c.recv_buffer_window = v;
        }
        if let Some(v) = self.recv_buffer_size {
            if !(64..=16 << 20).contains(&v) {
                return Err(ConfigError(
                    "recv_buffer_size must be from 64 to 16777216 (16 MiB)".into(),
                ));
            }
            c.recv_buffer_size = v;
        }
        if let Some(v) = self.recv_buffer_incremental {
            c.recv_buffer_incremental = v;
        }
        if let Some(v) = self.tls_handshake_timeout_ms {
            c.tls_handshake_timeout = Duration::from_millis(v.max(1));
        }
        if let Some(v) = self.tls_max_handshakes {
            if v == 0 {
                return Err(ConfigError("tls_max_handshakes must be at least 1".into()));
            }
            c.tls_max_handshakes = v;
        }
        Ok(c)
    }
}

impl FileConfig {
    /// The WebSocket plugin's settings this describes.
    pub fn ws(&self) -> Result<crate::ws::WsServerConfig, ConfigError> {
        let mut c = crate::ws::WsServerConfig::default();
        if let Some(v) = self.ws_max_message {
            c.codec.max_message_size = v;
        }
        if let Some(v) = self.ws_max_frame {
            c.codec.max_frame_payload = v;
        }
        if let Some(v) = self.ws_max_fragments {
            c.codec.max_fragments = v;
        }
        // `ringwire serve` negotiates permessage-deflate unless told not to.
        c.codec.deflate.enabled = self.ws_compression.unwrap_or(true);
        if let Some(v) = self.ws_compress_threshold {
            c.codec.deflate.compress_threshold = v;
        }
        if let Some(ms) = self.ws_heartbeat_ms.filter(|&ms| ms > 0) {
            let timeout =
                Duration::from_millis(self.ws_heartbeat_timeout_ms.unwrap_or(ms.max(1000)));
            c.heartbeat = Some(crate::ws::Heartbeat {
                interval: Duration::from_millis(ms),
                timeout,
                only_if_idle: self.ws_heartbeat_only_idle.unwrap_or(false),
            });
        } else if self.ws_heartbeat_timeout_ms.is_some() || self.ws_heartbeat_only_idle.is_some() {
            return Err(ConfigError(
                "ws_heartbeat_timeout_ms / ws_heartbeat_only_idle need ws_heartbeat_ms".into(),
            ));
        }
        if let Some(ms) = self.ws_idle_timeout_ms.filter(|&ms| ms > 0) {
            c.idle_timeout = Some(Duration::from_millis(ms));
        }
        if let Some(ms) = self.ws_handshake_timeout_ms {
            if ms == 0 {
                return Err(ConfigError(
                    "ws_handshake_timeout_ms must be positive".into(),
                ));
            }
            c.handshake_timeout = Duration::from_millis(ms);
        }
        if let Some(p) = &self.ws_subprotocols {
            c.subprotocols = p.clone();
        }
        Ok(c)
    }
}

impl FileConfig {
    /// The HTTP plugin's settings this describes.
    pub fn http(&self) -> Result<crate::http::HttpConfig, ConfigError> {
        let mut c = crate::http::HttpConfig::default();
        if let Some(dir) = &self.www {
            if !dir.is_dir() {
                return Err(ConfigError(format!(
                    "www: {} is not a directory",
                    dir.display()
                )));
            }
            c.www = Some(dir.clone());
        }
        if self.no_sendfile == Some(true) {
            c.sendfile = false;
        }
        if let Some(ms) = self.www_cache_valid_ms {
            c.www_cache.valid = Duration::from_millis(ms);
        }
        if let Some(v) = self.www_cache_max_file {
            c.www_cache.max_file = v;
        }
        if let Some(v) = self.www_cache_size {
            c.www_cache.size = v;
        }
        if let Some(v) = self.www_cache_entries {
            c.www_cache.entries = v;
        }
        if let Some(o) = &self.cors_origin {
            c.cors = Some(crate::http::Cors::origin(o.clone()));
        }
        if let Some(v) = self.http_max_body {
            c.limits.max_body = v;
        }
        if let Some(ms) = self.http_keep_alive_ms {
            if ms == 0 {
                return Err(ConfigError("http_keep_alive_ms must be positive".into()));
            }
            c.keep_alive_timeout = Duration::from_millis(ms);
        }
        crate::http::builtin::configure(self, &mut c)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_keys() {
        let c = FileConfig::parse("cors_origin = \"*\"\nhttp_max_body = 10\n")
            .unwrap()
            .http()
            .unwrap();
        assert_eq!(c.limits.max_body, 10);
        assert_eq!(c.cors.unwrap().origin, "*");
        assert_eq!(c.www_cache, crate::http::files::CacheConfig::default());
        let c = FileConfig::parse(
            "www_cache_valid_ms = 50\nwww_cache_max_file = 10\nwww_cache_size = 20\nwww_cache_entries = 3\n",
        )
        .unwrap()
        .http()
        .unwrap();
        assert_eq!(c.www_cache.valid, Duration::from_millis(50));
        assert_eq!(
            (c.www_cache.max_file, c.www_cache.size, c.www_cache.entries),
            (10, 20, 3)
        );
        assert!(
            FileConfig::parse("www = \"/nonexistent-dir\"")
                .unwrap()
                .http()
                .is_err()
        );
    }

    #[test]
    fn flags_override_file() {
        let file = FileConfig::parse("threads = 4\ndriver = \"epoll\"\nbind = [\"127.0.0.1:1\"]\n")
            .unwrap();
        let flags = FileConfig {
            threads: Some(1),
            ..Default::default()
        };
        let m = file.merge(flags);
        assert_eq!(m.threads, Some(1));
        assert_eq!(m.driver.as_deref(), Some("epoll"));
        let rt = m.runtime().unwrap();
        assert_eq!(rt.threads, 1);
        assert_eq!(rt.driver, DriverChoice::Epoll);
    }

    #[test]
    fn uring_batch_keys() {
        let rt = FileConfig::parse("").unwrap().runtime().unwrap();
        assert_eq!(rt.uring_batch_wait, Duration::ZERO);
        assert_eq!(rt.uring_batch_busy, 16);
        let rt = FileConfig::parse(
            "uring_batch_wait_us = 50\nuring_batch_size = 256\nuring_batch_busy = 0\n",
        )
        .unwrap()
        .runtime()
        .unwrap();
        assert_eq!(rt.uring_batch_wait, Duration::from_micros(50));
        assert_eq!((rt.uring_batch_size, rt.uring_batch_busy), (256, 0));
        let e = FileConfig::parse("uring_batch_size = 0").unwrap().runtime();
        assert!(e.unwrap_err().0.contains("uring_batch_size"));
    }

    #[test]
    fn busy_poll_key() {
        let rt = FileConfig::parse("").unwrap().runtime().unwrap();
        assert_eq!(rt.busy_poll, Duration::ZERO);
        let rt = FileConfig::parse("busy_poll_us = 200")
            .unwrap()
            .runtime()
            .unwrap();
        assert_eq!(rt.busy_poll, Duration::from_micros(200));
        let e = FileConfig::parse("busy_poll_us = 1000001")
            .unwrap()
            .runtime();
        assert!(e.unwrap_err().0.contains("busy_poll_us"));
    }

    #[test]
    fn deadline_tick_key() {
        let rt = FileConfig::parse("").unwrap().runtime().unwrap();
        assert_eq!(rt.deadline_tick, Duration::from_millis(100));
        let rt = FileConfig::parse("deadline_tick_ms = 20")
            .unwrap()
            .runtime()
            .unwrap();
        assert_eq!(rt.deadline_tick, Duration::from_millis(20));
        for bad in ["deadline_tick_ms = 0", "deadline_tick_ms = 60001"] {
            let e = FileConfig::parse(bad).unwrap().runtime();
            assert!(e.unwrap_err().0.contains("deadline_tick_ms"), "{bad}");
        }
        // Unset, it follows short heartbeats and idle limits (a tenth of the shortest)...
        let tick = |text: &str| {
            FileConfig::parse(text)
                .unwrap()
                .runtime()
                .unwrap()
                .deadline_tick
        };
        assert_eq!(tick("ws_heartbeat_ms = 30000"), Duration::from_millis(100));
        assert_eq!(tick("ws_heartbeat_ms = 500"), Duration::from_millis(50));
        assert_eq!(
            tick("ws_heartbeat_ms = 500\nws_heartbeat_timeout_ms = 200"),
            Duration::from_millis(20)
        );
        assert_eq!(tick("ws_idle_timeout_ms = 5"), Duration::from_millis(1));
        assert_eq!(tick("ws_heartbeat_ms = 0"), Duration::from_millis(100));
        // ...and set, it is kept.
        assert_eq!(
            tick("ws_heartbeat_ms = 500\ndeadline_tick_ms = 100"),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn ws_keys() {
        let f = FileConfig::parse(
            "ws_max_message = 1000\nws_compression = true\nws_heartbeat_ms = 500\nws_idle_timeout_ms = 9000\n",
        )
        .unwrap();
        let ws = f.ws().unwrap();
        assert_eq!(ws.codec.max_message_size, 1000);
        assert!(ws.codec.deflate.enabled);
        assert_eq!(ws.heartbeat.unwrap().interval, Duration::from_millis(500));
        assert_eq!(ws.idle_timeout, Some(Duration::from_secs(9)));
        assert!(
            FileConfig::parse("ws_heartbeat_timeout_ms = 5")
                .unwrap()
                .ws()
                .is_err()
        );
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(FileConfig::parse("nope = 1").is_err());
        assert!(
            FileConfig::parse("driver = \"x\"")
                .unwrap()
                .runtime()
                .is_err()
        );
        assert!(
            FileConfig::parse("overflow_policy = \"x\"")
                .unwrap()
                .runtime()
                .is_err()
        );
        assert!(
            FileConfig::parse("recv_buffers = 0")
                .unwrap()
                .runtime()
                .is_err()
        );
        assert!(
            FileConfig::parse("recv_buffer_size = 16777217")
                .unwrap()
                .runtime()
                .is_err()
        );
        let rt = FileConfig::parse("recv_buffer_incremental = true\nrecv_buffer_size = 65536")
            .unwrap()
            .runtime()
            .unwrap();
        assert!(rt.recv_buffer_incremental);
        assert_eq!(rt.recv_buffer_size, 65536);
        assert!(
            FileConfig::parse("recv_buffer_window = 0")
                .unwrap()
                .runtime()
                .is_err()
        );
        let rt = FileConfig::parse("recv_buffer_window = 512")
            .unwrap()
            .runtime()
            .unwrap();
        assert_eq!(rt.recv_buffer_window, 512);
        assert!(
            FileConfig::parse("throttle_read = 1000")
                .unwrap()
                .runtime()
                .unwrap()
                .throttle
                .read
                .is_some()
        );
    }
}
