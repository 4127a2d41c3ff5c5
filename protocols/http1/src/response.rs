//! Response serialisation helpers: the status line, the cached Date value,
//! numbers, and the checks on caller-supplied fields.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::scan::is_tchar;
use crate::{HttpError, StatusCode};

/// How the response body is framed, as the caller declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyLen {
    /// Exactly `n` bytes follow: `Content-Length: n`.
    Known(u64),
    /// Unknown length: `Transfer-Encoding: chunked` for HTTP/1.1 clients; for
    /// HTTP/1.0 clients the body runs to the connection's close.
    Chunked,
    /// No content: `Content-Length: 0` where the status allows content.
    None,
}

/// Length of an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
const DATE_LEN: usize = 29;
/// 9999-12-31T23:59:59Z, the last second httpdate can format.
const MAX_DATE_SECS: u64 = 253_402_300_799;

/// The Date value, formatted once per second (RFC 9110 §6.6.1).
#[derive(Clone, Debug)]
pub(crate) struct DateCache {
    secs: Option<u64>,
    buf: [u8; DATE_LEN],
}

impl DateCache {
    pub(crate) const fn new() -> Self {
        Self {
            secs: None,
            buf: [b' '; DATE_LEN],
        }
    }

    /// The value for `now`, reformatted only when the second changed.
    pub(crate) fn get(&mut self, now: SystemTime) -> &[u8] {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .min(MAX_DATE_SECS);
        if self.secs != Some(secs) {
            let date = httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs));
            let mut w = ArrayWriter {
                buf: &mut self.buf,
                len: 0,
            };
            // Always exactly 29 bytes; a short write would leave spaces, never panic.
            let _ = core::fmt::write(&mut w, format_args!("{date}"));
            self.secs = Some(secs);
        }
        &self.buf
    }
}

struct ArrayWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for ArrayWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Appends `n` in decimal.
pub(crate) fn push_dec(out: &mut Vec<u8>, n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(slot) = tmp.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(tmp.get(i..).unwrap_or_default());
}

/// Appends `n` in lower-case hex (chunk sizes).
pub(crate) fn push_hex(out: &mut Vec<u8>, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        if let (Some(slot), Some(d)) = (tmp.get_mut(i), DIGITS.get((n & 0xf) as usize)) {
            *slot = *d;
        }
        n >>= 4;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(tmp.get(i..).unwrap_or_default());
}

/// `HTTP/1.1 <code> <reason>\r\n`.
pub(crate) fn push_status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_dec(out, u64::from(status.0));
    out.push(b' ');
    out.extend_from_slice(status.reason_phrase().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `name: value\r\n`.
pub(crate) fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What the caller's fields say that the writer must know.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CallerFields {
    /// A Connection field carries `close`.
    pub(crate) close: bool,
    /// A Connection field carries `keep-alive`.
    pub(crate) keep_alive: bool,
    /// The caller wrote its own Date.
    pub(crate) date: bool,
}

/// Checks the caller's fields: names are tokens, values hold no CR, LF or NUL
/// (RFC 9110 §5.5: "Field values containing CR, LF, or NUL characters are
/// invalid and dangerous"), and framing stays with [`BodyLen`].
pub(crate) fn check_fields(headers: &[(&str, &str)]) -> Result<CallerFields, HttpError> {
    let mut seen = CallerFields::default();
    for (name, value) in headers {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(HttpError::ResponseHeader);
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(HttpError::ResponseHeader);
        }
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            return Err(HttpError::ResponseHeader);
        }
        if name.eq_ignore_ascii_case("date") {
            seen.date = true;
        }
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                seen.close |= token.eq_ignore_ascii_case("close");
                seen.keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        push_dec(&mut v, 0);
        v.push(b' ');
        push_dec(&mut v, u64::MAX);
        v.push(b' ');
        push_hex(&mut v, 0);
        v.push(b' ');
        push_hex(&mut v, 0x1a);
        v.push(b' ');
        push_hex(&mut v, u64::MAX);
        assert_eq!(v, b"0 18446744073709551615 0 1a ffffffffffffffff");
    }

    #[test]
    fn rfc9110_5_6_7_date_is_imf_fixdate_and_cached_per_second() {
        let mut c = DateCache::new();
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(c.get(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            c.get(t + Duration::from_millis(999)),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            c.get(t + Duration::from_secs(1)),
            b"Sun, 06 Nov 1994 08:49:38 GMT"
        );
        // Out-of-range clocks clamp instead of panicking inside httpdate.
        assert_eq!(
            c.get(UNIX_EPOCH - Duration::from_secs(5)),
            b"Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            c.get(UNIX_EPOCH + Duration::from_secs(u64::MAX / 4)),
            b"Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn caller_fields_cannot_split_or_reframe() {
        assert!(check_fields(&[("x", "a\r\nSet-Cookie: evil")]).is_err());
        assert!(check_fields(&[("bad name", "v")]).is_err());
        assert!(check_fields(&[("Content-Length", "5")]).is_err());
        assert!(check_fields(&[("transfer-encoding", "chunked")]).is_err());
        let f = check_fields(&[("Connection", "Upgrade, close"), ("Date", "x")]).unwrap();
        assert!(f.close && f.date && !f.keep_alive);
    }
}
