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
//! recv_buffers = 512
//! recv_buffer_size = 16384
//! ```

use std::net::SocketAddr;
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
    /// io_uring provided receive buffers per core.
    pub recv_buffers: Option<u16>,
    /// Receive buffer size (bytes).
    pub recv_buffer_size: Option<usize>,
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
        macro_rules! pick { ($($f:ident),*) => { FileConfig { $($f: over.$f.or(self.$f)),* } } }
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
            recv_buffers,
            recv_buffer_size
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
        if let Some(v) = self.recv_buffers {
            if v == 0 {
                return Err(ConfigError("recv_buffers must be at least 1".into()));
            }
            c.recv_buffers = v;
        }
        if let Some(v) = self.recv_buffer_size {
            if v < 64 {
                return Err(ConfigError("recv_buffer_size must be at least 64".into()));
            }
            c.recv_buffer_size = v;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
