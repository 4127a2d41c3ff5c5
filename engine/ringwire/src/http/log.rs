//! The connection log file (`--log-file`), as the suite's LogFile: one line per event.
//!
//! ```text
//! 2024-06-01 12:00:00.123 127.0.0.1:50000 #5 Stat Connected.
//! 2024-06-01 12:00:00.124 127.0.0.1:50000 #5 Request GET /index.html HTTP/1.1
//! 2024-06-01 12:00:00.125 127.0.0.1:50000 #5 Handshake GET /chat subprotocol=-
//! 2024-06-01 12:00:00.126 127.0.0.1:50000 #5 Recv text 5 "hello"
//! 2024-06-01 12:00:00.127 127.0.0.1:50000 #5 Stat Disconnected.
//! ```
//! Times are UTC. WebSocket payloads are written unmasked (the codec unmasked them), escaped
//! (`\n`, `\"`, `\xNN` for non-printable bytes) and cut to [`LogConfig::payload_max`] bytes
//! (`…` marks a cut); binary payloads are written in hex. Credentials are redacted: the
//! password of `/sgc/auth/url/USER/PASSWORD` and `/sgc/req/auth/session/USER/PASSWORD`, and
//! session tokens; `Authorization` headers are never written.
//!
//! Each core buffers its lines and appends them with one `write` when the buffer passes
//! [`LogConfig::flush_bytes`], when [`LogConfig::flush_interval`] has passed (a core timer),
//! and when the server stops. The file is opened in append mode (created if missing) and not
//! locked; cores append whole buffers, so lines of different cores never interleave
//! mid-line. A failed write drops that buffer and is reported once.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ringwire_runtime::{ConnId, CoreCtx};

/// Default [`LogConfig::payload_max`].
pub const DEFAULT_PAYLOAD_MAX: usize = 256;
/// Default [`LogConfig::flush_bytes`].
pub const DEFAULT_FLUSH_BYTES: usize = 0x1_0000;
/// Default [`LogConfig::flush_interval`].
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// The core timer token of the flush.
pub const T_LOG_FLUSH: u64 = 0x4854_4c47; // "HTLG"

/// Log settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// The file (appended to; created if missing).
    pub path: PathBuf,
    /// WebSocket payload bytes written per frame.
    pub payload_max: usize,
    /// Append when a core's buffer passes this many bytes.
    pub flush_bytes: usize,
    /// Append buffered lines at least this often.
    pub flush_interval: Duration,
}

impl LogConfig {
    /// Log to `path` with the default settings.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LogConfig {
            path: path.into(),
            payload_max: DEFAULT_PAYLOAD_MAX,
            flush_bytes: DEFAULT_FLUSH_BYTES,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
        }
    }

    /// Open (create) the file, as a check at start-up.
    pub fn open(&self) -> std::io::Result<File> {
        File::options().append(true).create(true).open(&self.path)
    }
}

/// One core's log writer.
pub struct ConnLog {
    cfg: LogConfig,
    file: Option<File>,
    buf: Vec<u8>,
    timer_armed: bool,
    warned: bool,
    /// Peers of the open connections (for the disconnect line).
    peers: std::collections::HashMap<ConnId, SocketAddr>,
}

impl std::fmt::Debug for ConnLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnLog")
            .field("path", &self.cfg.path)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// `YYYY-MM-DD hh:mm:ss.mmm` (UTC).
fn timestamp(t: SystemTime, out: &mut Vec<u8>) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    );
}

/// `path` with credentials replaced by `***`.
pub fn redact(path: &str) -> std::borrow::Cow<'_, str> {
    use super::auth::{SESSION_PREFIX, SESSION_REQUEST_PREFIX, URL_PREFIX};
    for p in [URL_PREFIX, SESSION_REQUEST_PREFIX] {
        if let Some(rest) = path.strip_prefix(p) {
            let user = rest.split('/').next().unwrap_or_default();
            return format!("{p}{user}/***").into();
        }
    }
    if path.starts_with(SESSION_PREFIX) {
        return format!("{SESSION_PREFIX}***").into();
    }
    path.into()
}

impl ConnLog {
    /// A writer for one core (`None` if the file cannot be opened; reported).
    pub fn open(cfg: &LogConfig) -> Option<Self> {
        match cfg.open() {
            Ok(f) => Some(ConnLog {
                cfg: cfg.clone(),
                file: Some(f),
                buf: Vec::with_capacity(cfg.flush_bytes.min(0x1_0000) + 256),
                timer_armed: false,
                warned: false,
                peers: std::collections::HashMap::new(),
            }),
            Err(e) => {
                tracing::warn!(path = %cfg.path.display(), error = %e, "log file: cannot open");
                None
            }
        }
    }

    fn start(&mut self, peer: SocketAddr, id: ConnId, what: &str) {
        timestamp(SystemTime::now(), &mut self.buf);
        let _ = write!(self.buf, " {peer} #{:x} {what}", id.as_u64());
    }

    fn end(&mut self, cx: &mut CoreCtx<'_>) {
        self.buf.push(b'\n');
        if self.buf.len() >= self.cfg.flush_bytes {
            self.flush();
        } else if !self.timer_armed {
            self.timer_armed = true;
            cx.set_core_timer(self.cfg.flush_interval, T_LOG_FLUSH);
        }
    }

    /// `Stat Connected.`
    pub fn connect(&mut self, cx: &mut CoreCtx<'_>, peer: SocketAddr, id: ConnId) {
        self.peers.insert(id, peer);
        self.start(peer, id, "Stat Connected.");
        self.end(cx);
    }

    /// `Stat Disconnected.`
    pub fn disconnect(&mut self, cx: &mut CoreCtx<'_>, id: ConnId) {
        let peer = self
            .peers
            .remove(&id)
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        self.start(peer, id, "Stat Disconnected.");
        self.end(cx);
    }

    /// `Request METHOD PATH[?query] VERSION` (credentials in the path redacted).
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &mut self,
        cx: &mut CoreCtx<'_>,
        peer: SocketAddr,
        id: ConnId,
        method: &str,
        path: &str,
        query: Option<&str>,
        http10: bool,
    ) {
        self.start(peer, id, "Request ");
        let _ = write!(self.buf, "{method} ");
        escape(redact(path).as_bytes(), usize::MAX, &mut self.buf);
        if let Some(q) = query {
            self.buf.push(b'?');
            escape(q.as_bytes(), 512, &mut self.buf);
        }
        let v = if http10 { " HTTP/1.0" } else { " HTTP/1.1" };
        self.buf.extend_from_slice(v.as_bytes());
        self.end(cx);
    }

    /// `Handshake GET PATH subprotocol=P` (the 101 went out) or `Handshake refused STATUS PATH`.
    pub fn handshake(
        &mut self,
        cx: &mut CoreCtx<'_>,
        peer: SocketAddr,
        id: ConnId,
        path: &str,
        result: Result<Option<&str>, u16>,
    ) {
        match result {
            Ok(sp) => {
                self.start(peer, id, "Handshake GET ");
                escape(redact(path).as_bytes(), usize::MAX, &mut self.buf);
                let _ = write!(self.buf, " subprotocol={}", sp.unwrap_or("-"));
            }
            Err(status) => {
                self.start(peer, id, "Handshake refused ");
                let _ = write!(self.buf, "{status} ");
                escape(redact(path).as_bytes(), usize::MAX, &mut self.buf);
            }
        }
        self.end(cx);
    }

    /// `Recv|Sent text|binary|ping|pong|close LEN PAYLOAD` (unmasked, cut, escaped).
    pub fn frame(
        &mut self,
        cx: &mut CoreCtx<'_>,
        peer: SocketAddr,
        id: ConnId,
        sent: bool,
        kind: &str,
        payload: &[u8],
    ) {
        self.start(peer, id, if sent { "Sent " } else { "Recv " });
        let _ = write!(self.buf, "{kind} {} ", payload.len());
        let max = self.cfg.payload_max;
        if kind == "binary" {
            for b in payload.iter().take(max) {
                let _ = write!(self.buf, "{b:02x}");
            }
            if payload.len() > max {
                self.buf.extend_from_slice("…".as_bytes());
            }
        } else {
            self.buf.push(b'"');
            escape(payload, max, &mut self.buf);
            self.buf.push(b'"');
        }
        self.end(cx);
    }

    /// A WebSocket event as received (payloads unmasked by the codec).
    pub fn ws_event(
        &mut self,
        cx: &mut CoreCtx<'_>,
        peer: SocketAddr,
        id: ConnId,
        ev: &ringwire_ws::WsEvent<'_>,
    ) {
        use ringwire_ws::{MessageKind, WsEvent};
        let kind = |k: &MessageKind| match k {
            MessageKind::Text => "text",
            MessageKind::Binary => "binary",
        };
        match ev {
            WsEvent::Message { kind: k, data } => self.frame(cx, peer, id, false, kind(k), data),
            WsEvent::Fragment { kind: k, data, .. } => {
                self.frame(cx, peer, id, false, kind(k), data)
            }
            WsEvent::Ping(p) => self.frame(cx, peer, id, false, "ping", p),
            WsEvent::Pong(p) => self.frame(cx, peer, id, false, "pong", p),
            WsEvent::Close { code, reason } => {
                let text = format!("{} {reason}", code.map_or(1005, |c| c.0));
                self.frame(cx, peer, id, false, "close", text.as_bytes());
            }
        }
    }

    /// The flush timer fired.
    pub fn on_timer(&mut self) {
        self.timer_armed = false;
        self.flush();
    }

    /// Append what is buffered.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.write_all(&self.buf)
            && !self.warned
        {
            self.warned = true;
            tracing::warn!(path = %self.cfg.path.display(), error = %e, "log file: write failed; lines dropped");
        }
        self.buf.clear();
    }
}

impl Drop for ConnLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Printable ASCII as is, `\"`, `\\`, `\n`, `\r`, `\t`, else `\xNN`; at most `max` input
/// bytes, then `…`.
fn escape(b: &[u8], max: usize, out: &mut Vec<u8>) {
    for &c in b.iter().take(max) {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(c),
            _ => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    if b.len() > max {
        out.extend_from_slice("…".as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        let mut v = Vec::new();
        timestamp(
            SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_123),
            &mut v,
        );
        assert_eq!(v, b"2000-02-29 00:00:00.123");
        v.clear();
        timestamp(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_000_000),
            &mut v,
        );
        assert_eq!(v, b"2024-06-10 06:13:20.000");
    }

    #[test]
    fn credentials_are_redacted_and_payloads_escaped() {
        assert_eq!(
            redact("/sgc/auth/url/admin/1234"),
            "/sgc/auth/url/admin/***"
        );
        assert_eq!(
            redact("/sgc/req/auth/session/admin/1234"),
            "/sgc/req/auth/session/admin/***"
        );
        assert_eq!(redact("/sgc/auth/session/abcd"), "/sgc/auth/session/***");
        assert_eq!(redact("/x"), "/x");
        let mut v = Vec::new();
        escape(b"a\"\n\x01bcdef", 5, &mut v);
        assert_eq!(String::from_utf8(v).unwrap(), "a\\\"\\n\\x01b…");
    }
}
