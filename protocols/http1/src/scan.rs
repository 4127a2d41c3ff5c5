//! Finds the end of a head or trailer section line by line, enforcing the
//! size limits and the line-level smuggling rules before any field is parsed.
//!
//! The scan is incremental: [`LineScan`] remembers where the first unfinished
//! line starts, so a head fed one byte per call costs O(n), not O(n²). That
//! relies on the caller's contract that unconsumed bytes are passed again.
//! Every check fires when the line that violates it is complete (or when a
//! limit is passed with the line still open), so the verdict depends only on
//! the bytes, never on how they were split.

use crate::HttpError;

/// Progress through one section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LineScan {
    /// Offset of the first line not yet complete.
    pos: usize,
    /// Complete lines seen so far (the request line included).
    lines: usize,
    /// Bytes already searched for a LF without finding one (the open line is
    /// not searched again from its start).
    searched: usize,
}

/// Which section is being scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// Request line, field lines, empty line.
    Head,
    /// Field lines, empty line (after the last chunk).
    Trailers,
}

/// The limits that apply to one section.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanLimits {
    /// Longest request line without its CRLF (Head only). Must be at most
    /// `max_bytes - 2` so that 414 always fires before 431.
    pub(crate) max_first_line: usize,
    /// Longest section, final empty line included.
    pub(crate) max_bytes: usize,
    /// Most field lines.
    pub(crate) max_fields: usize,
    /// Whether a lone LF ends a line.
    pub(crate) bare_lf: bool,
}

/// Returns the section's length (final empty line included) once it is
/// complete, `None` while more bytes are needed.
pub(crate) fn scan(
    buf: &[u8],
    st: &mut LineScan,
    section: Section,
    lim: &ScanLimits,
) -> Result<Option<usize>, HttpError> {
    let (too_large, too_many) = match section {
        Section::Head => (HttpError::HeadTooLarge, HttpError::TooManyHeaders),
        Section::Trailers => (HttpError::TrailersTooLarge, HttpError::TrailersTooLarge),
    };
    if st.pos > buf.len() || st.searched > buf.len() {
        // The caller broke the "pass unconsumed bytes again" contract; start over.
        *st = LineScan::default();
    }
    loop {
        let start = st.pos;
        let request_line = section == Section::Head && st.lines == 0;
        let from = start.max(st.searched);
        let rest = buf.get(from..).unwrap_or_default();
        let Some(i) = memchr::memchr(b'\n', rest) else {
            st.searched = buf.len();
            // An open line: only the limits can be decided yet.
            if request_line && buf.len() >= lim.max_first_line + 2 {
                return Err(HttpError::RequestLineTooLong);
            }
            if buf.len() > lim.max_bytes {
                return Err(too_large);
            }
            return Ok(None);
        };
        let lf = from + i;
        let cr = lf > start && buf.get(lf - 1) == Some(&b'\r');
        let line = buf.get(start..lf - usize::from(cr)).unwrap_or_default();
        if request_line && line.len() > lim.max_first_line {
            return Err(HttpError::RequestLineTooLong);
        }
        if lf + 1 > lim.max_bytes {
            return Err(too_large);
        }
        // RFC 9112 §2.2: "a recipient MAY recognize a single LF as a line
        // terminator and ignore any preceding CR." We do only when configured.
        if !cr && !lim.bare_lf {
            return Err(HttpError::BareLf);
        }
        if request_line {
            if line.is_empty() {
                return Err(HttpError::InvalidRequestLine);
            }
        } else if line.is_empty() {
            return Ok(Some(lf + 1));
        } else {
            let fields = match section {
                Section::Head => st.lines,
                Section::Trailers => st.lines + 1,
            };
            if fields > lim.max_fields {
                return Err(too_many);
            }
            check_field_line(line)?;
        }
        st.lines += 1;
        st.pos = lf + 1;
    }
}

/// Line-level field rules that must hold before any value is interpreted.
fn check_field_line(line: &[u8]) -> Result<(), HttpError> {
    // RFC 9112 §5.2: "A server that receives an obs-fold in a request message
    // that is not within a "message/http" container MUST either reject the
    // message by sending a 400 (Bad Request) ..." We reject.
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(HttpError::ObsFold);
    }
    let colon = match memchr::memchr(b':', line) {
        Some(0) | None => return Err(HttpError::InvalidHeader),
        Some(c) => c,
    };
    // RFC 9112 §5.1: "A server MUST reject, with a response status code of
    // 400 (Bad Request), any received request message that contains
    // whitespace between a header field name and colon."
    if matches!(line.get(colon - 1), Some(b' ' | b'\t')) {
        return Err(HttpError::WhitespaceBeforeColon);
    }
    Ok(())
}

/// RFC 9110 §5.6.2 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.5 field-value octets: VCHAR, SP, HTAB, obs-text.
pub(crate) fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Strips RFC 9110 OWS (SP / HTAB) from both ends.
pub(crate) fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: ScanLimits = ScanLimits {
        max_first_line: 20,
        max_bytes: 64,
        max_fields: 2,
        bare_lf: false,
    };

    fn whole(buf: &[u8]) -> Result<Option<usize>, HttpError> {
        scan(buf, &mut LineScan::default(), Section::Head, &LIM)
    }

    fn bytewise(buf: &[u8]) -> Result<Option<usize>, HttpError> {
        let mut st = LineScan::default();
        for n in 0..=buf.len() {
            if let Some(end) = scan(&buf[..n], &mut st, Section::Head, &LIM)? {
                return Ok(Some(end));
            }
        }
        Ok(None)
    }

    #[test]
    fn finds_end_and_agrees_bytewise() {
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest",
            b"GET / HTTP/1.1\r\nA: b\r\nC: d\r\nE: f\r\n\r\n",
            b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
        ];
        for c in cases {
            assert_eq!(whole(c), bytewise(c), "{}", String::from_utf8_lossy(c));
        }
        assert_eq!(whole(cases[0]), Ok(Some(27)));
        assert_eq!(whole(cases[1]), Err(HttpError::TooManyHeaders));
        assert_eq!(whole(cases[2]), Err(HttpError::RequestLineTooLong));
        assert_eq!(whole(cases[3]), Err(HttpError::BareLf));
        assert_eq!(whole(cases[4]), Err(HttpError::WhitespaceBeforeColon));
        assert_eq!(whole(cases[5]), Err(HttpError::ObsFold));
        assert_eq!(whole(cases[6]), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn trims_ows() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }
}
