//! The client side's reader: an upstream server's response head and body framing
//! (RFC 9112 §4, §6.3), for a proxy relaying the response.
//!
//! ```text
//!  Head --1xx (not 101)--> Head
//!   |--HEAD request / 204 / 304--> Done
//!   |--Transfer-Encoding: ..., chunked--> Chunked --last chunk--> Trailers --CRLF--> Done
//!   |--Content-Length: n--> Length(n) --n bytes--> Done
//!   `--neither--> UntilClose --EOF--> Done
//! ```
//!
//! Like [`ServerConn`](crate::ServerConn) it reads no clock and owns no socket: the caller
//! feeds bytes with [`ResponseReader::read`], which returns how much it consumed and one
//! event borrowed from the caller's buffer (no copy); a partial head stays with the caller.
//! Trailers are read, bounded and dropped. Refused (the proxy answers 502): a malformed
//! status line or field, a head over [`ResponseLimits::max_head_bytes`] or with more than
//! [`ResponseLimits::max_headers`] fields, Content-Length with Transfer-Encoding, repeated or
//! malformed Content-Length, a Transfer-Encoding that does not end in `chunked` (read until
//! close per RFC 9112 §6.3 item 4 would be allowed; we refuse it as a smuggling shape), a
//! `101` (the proxy never asks for an upgrade), and a body cut short by EOF.

use crate::chunked::{ChunkDecoder, Decoded};
use crate::scan::trim_ows;
use crate::{Header, HttpError, StatusCode, Version};

/// Default [`ResponseLimits::max_head_bytes`]: 16 KiB.
pub const DEFAULT_MAX_RESPONSE_HEAD: usize = 0x4000;
/// Default [`ResponseLimits::max_headers`]: 100.
pub const DEFAULT_MAX_RESPONSE_HEADERS: usize = 0x64;
/// Field table size of the parser (the cap on [`ResponseLimits::max_headers`]).
const FIELD_TABLE: usize = 0x100;

/// Bounds on what an upstream may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Status line, fields and the final CRLF (also bounds the trailer section).
    pub max_head_bytes: usize,
    /// Field lines (capped at 256).
    pub max_headers: usize,
    /// A chunk-size line.
    pub max_chunk_line: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        ResponseLimits {
            max_head_bytes: DEFAULT_MAX_RESPONSE_HEAD,
            max_headers: DEFAULT_MAX_RESPONSE_HEADERS,
            max_chunk_line: crate::DEFAULT_MAX_CHUNK_LINE,
        }
    }
}

/// How a response body is framed (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseBody {
    /// No body (HEAD request, 1xx, 204, 304).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends when the server closes.
    UntilClose,
}

/// A response head, borrowed from the caller's buffer.
#[derive(Debug)]
pub struct ResponseHead<'a> {
    /// The status code.
    pub status: StatusCode,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: Version,
    /// The fields in wire order.
    pub headers: Vec<Header<'a>>,
    /// The body framing.
    pub body: ResponseBody,
}

/// What one [`ResponseReader::read`] produced.
#[derive(Debug)]
pub enum ResponseEvent<'a> {
    /// Nothing complete yet: call again with more bytes.
    NeedMore,
    /// The final response's head (interim 1xx responses are skipped).
    Head(ResponseHead<'a>),
    /// A piece of the body (chunk framing removed); never empty.
    Data(&'a [u8]),
    /// The response is complete.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked(ChunkDecoder),
    /// Bytes of the trailer section seen so far; `at_line_start` after a CRLF.
    Trailers {
        seen: usize,
        line_len: usize,
    },
    UntilClose,
    Done,
}

/// Reads one response (the proxy opens one connection per request).
#[derive(Clone, Debug)]
pub struct ResponseReader {
    limits: ResponseLimits,
    head_request: bool,
    state: State,
}

impl ResponseReader {
    /// A reader for the response to a request; `head_request` for HEAD (no body follows).
    #[must_use]
    pub fn new(limits: ResponseLimits, head_request: bool) -> Self {
        ResponseReader {
            limits,
            head_request,
            state: State::Head,
        }
    }

    /// True once [`ResponseEvent::End`] was returned.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// True once the head was returned.
    #[must_use]
    pub fn head_seen(&self) -> bool {
        self.state != State::Head
    }

    /// Consumes bytes from `buf`; returns how many and what they made. Call again with the
    /// unconsumed rest (extended by new input when the event was `NeedMore`).
    pub fn read<'a>(&mut self, buf: &'a [u8]) -> Result<(usize, ResponseEvent<'a>), HttpError> {
        let mut pos = 0;
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            match self.state {
                State::Head => match self.parse_head(rest)? {
                    None => return Ok((pos, ResponseEvent::NeedMore)),
                    Some((n, None)) => pos += n, // an interim 1xx
                    Some((n, Some(head))) => return Ok((pos + n, ResponseEvent::Head(head))),
                },
                State::Length(0) => {
                    self.state = State::Done;
                    return Ok((pos, ResponseEvent::End));
                }
                State::Length(left) => {
                    if rest.is_empty() {
                        return Ok((pos, ResponseEvent::NeedMore));
                    }
                    let n = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
                    self.state = State::Length(left - n as u64);
                    let data = rest.get(..n).unwrap_or_default();
                    return Ok((pos + n, ResponseEvent::Data(data)));
                }
                State::Chunked(mut d) => {
                    if rest.is_empty() {
                        return Ok((pos, ResponseEvent::NeedMore));
                    }
                    let (n, got) = d
                        .decode(rest, self.limits.max_chunk_line, u64::MAX)
                        .map_err(|_| HttpError::InvalidResponse)?;
                    self.state = State::Chunked(d);
                    pos += n;
                    match got {
                        Decoded::Data(x) => return Ok((pos, ResponseEvent::Data(x))),
                        Decoded::LastChunk => {
                            self.state = State::Trailers {
                                seen: 0,
                                line_len: 0,
                            }
                        }
                        Decoded::Nothing => {}
                    }
                }
                State::Trailers { seen, line_len } => {
                    // trailer-section = *( field-line CRLF ) CRLF: skip lines up to an empty one.
                    let mut seen = seen;
                    let mut line_len = line_len;
                    let mut i = 0;
                    for &b in rest {
                        i += 1;
                        seen += 1;
                        if seen > self.limits.max_head_bytes {
                            return Err(HttpError::InvalidResponse);
                        }
                        match b {
                            b'\n' => {
                                if line_len == 0 {
                                    self.state = State::Done;
                                    return Ok((pos + i, ResponseEvent::End));
                                }
                                line_len = 0;
                            }
                            b'\r' => {}
                            _ => line_len += 1,
                        }
                    }
                    self.state = State::Trailers { seen, line_len };
                    return Ok((pos + i, ResponseEvent::NeedMore));
                }
                State::UntilClose => {
                    if rest.is_empty() {
                        return Ok((pos, ResponseEvent::NeedMore));
                    }
                    return Ok((buf.len(), ResponseEvent::Data(rest)));
                }
                State::Done => return Ok((pos, ResponseEvent::End)),
            }
        }
    }

    /// The server closed its side. Ends an until-close body; errors if that cut the response
    /// short ([`HttpError::IncompleteResponse`]).
    pub fn handle_eof(&mut self) -> Result<(), HttpError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(HttpError::IncompleteResponse),
        }
    }

    /// `Ok(None)`: incomplete. `Ok(Some((n, None)))`: an interim response of `n` bytes.
    #[allow(clippy::type_complexity)]
    fn parse_head<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<Option<(usize, Option<ResponseHead<'a>>)>, HttpError> {
        let max_fields = self.limits.max_headers.min(FIELD_TABLE);
        let mut table = [httparse::EMPTY_HEADER; FIELD_TABLE];
        let fields = table.get_mut(..max_fields).unwrap_or_default();
        let mut r = httparse::Response::new(fields);
        let parsed = httparse::ParserConfig::default().parse_response(&mut r, buf);
        let n = match parsed {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if buf.len() > self.limits.max_head_bytes {
                    return Err(HttpError::InvalidResponse);
                }
                return Ok(None);
            }
            Err(_) => return Err(HttpError::InvalidResponse),
        };
        if n > self.limits.max_head_bytes {
            return Err(HttpError::InvalidResponse);
        }
        let version = match r.version {
            Some(0) => Version::Http10,
            Some(1) => Version::Http11,
            _ => return Err(HttpError::InvalidResponse),
        };
        let status = StatusCode(r.code.ok_or(HttpError::InvalidResponse)?);
        if !(100..=999).contains(&status.0) || status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(HttpError::InvalidResponse);
        }
        if status.is_informational() {
            // RFC 9110 §15.2: "A client MUST be able to parse one or more 1xx responses
            // received prior to a final response".
            return Ok(Some((n, None)));
        }
        let mut headers = Vec::with_capacity(r.headers.len());
        let mut length: Option<u64> = None;
        let mut te: Option<bool> = None; // Some(final coding is chunked)
        for h in r.headers.iter() {
            let value = trim_ows(h.value);
            if h.name.eq_ignore_ascii_case("content-length") {
                // RFC 9112 §6.3 item 5: several differing values or an invalid one is
                // "an unrecoverable error"; a repeated equal value we refuse too.
                if length.is_some() {
                    return Err(HttpError::InvalidResponse);
                }
                length = Some(parse_length(value)?);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let last = value
                    .rsplit(|b| *b == b',')
                    .next()
                    .map(trim_ows)
                    .unwrap_or_default();
                te = Some(last.eq_ignore_ascii_case(b"chunked"));
            }
            headers.push(Header {
                name: h.name,
                value,
            });
        }
        // RFC 9112 §6.3 item 1: "Any response to a HEAD request and any response with a
        // 1xx (Informational), 204 (No Content), or 304 (Not Modified) status code is always
        // terminated by the first empty line after the header fields".
        let body = if self.head_request || status.0 == 204 || status.0 == 304 {
            ResponseBody::None
        } else {
            match (te, length) {
                // Item 3: "If a message is received with both a Transfer-Encoding and a
                // Content-Length header field, the Transfer-Encoding overrides the
                // Content-Length. Such a message might indicate an attempt to perform
                // request smuggling": refused.
                (Some(_), Some(_)) | (Some(false), None) => {
                    return Err(HttpError::InvalidResponse);
                }
                (Some(true), None) => ResponseBody::Chunked,
                (None, Some(n)) => ResponseBody::Length(n),
                (None, None) => ResponseBody::UntilClose,
            }
        };
        self.state = match body {
            ResponseBody::None => State::Length(0),
            ResponseBody::Length(n) => State::Length(n),
            ResponseBody::Chunked => State::Chunked(ChunkDecoder::new()),
            ResponseBody::UntilClose => State::UntilClose,
        };
        Ok(Some((
            n,
            Some(ResponseHead {
                status,
                version,
                headers,
                body,
            }),
        )))
    }
}

/// `Content-Length = 1*DIGIT`, no overflow.
fn parse_length(v: &[u8]) -> Result<u64, HttpError> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::InvalidResponse);
    }
    Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads everything: (status, framing, body, ended).
    fn run(input: &[u8], head_req: bool) -> Result<(u16, ResponseBody, Vec<u8>, bool), HttpError> {
        let mut r = ResponseReader::new(ResponseLimits::default(), head_req);
        let mut pos = 0;
        let mut status = 0;
        let mut framing = ResponseBody::None;
        let mut body = Vec::new();
        loop {
            let (n, ev) = r.read(&input[pos..])?;
            pos += n;
            match ev {
                ResponseEvent::NeedMore => return Ok((status, framing, body, false)),
                ResponseEvent::Head(h) => {
                    status = h.status.0;
                    framing = h.body;
                }
                ResponseEvent::Data(d) => body.extend_from_slice(d),
                ResponseEvent::End => return Ok((status, framing, body, true)),
            }
        }
    }

    #[test]
    fn rfc9112_6_3_content_length() {
        let r = run(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
            false,
        )
        .unwrap();
        assert_eq!(r, (200, ResponseBody::Length(5), b"hello".to_vec(), true));
    }

    #[test]
    fn rfc9112_7_1_chunked_with_trailers() {
        let r = run(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r, (200, ResponseBody::Chunked, b"abc".to_vec(), true));
    }

    #[test]
    fn rfc9112_6_3_until_close_and_eof() {
        let mut r = ResponseReader::new(ResponseLimits::default(), false);
        let input = b"HTTP/1.0 200 OK\r\n\r\nabc";
        let (n, ev) = r.read(input).unwrap();
        assert!(matches!(
            ev,
            ResponseEvent::Head(ResponseHead {
                body: ResponseBody::UntilClose,
                ..
            })
        ));
        let (m, ev) = r.read(&input[n..]).unwrap();
        assert!(matches!(ev, ResponseEvent::Data(b"abc")));
        assert_eq!(n + m, input.len());
        r.handle_eof().unwrap();
        assert!(r.is_done());
    }

    #[test]
    fn rfc9112_6_3_no_body_for_head_204_304() {
        let r = run(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).unwrap();
        assert_eq!(r, (200, ResponseBody::None, vec![], true));
        let r = run(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(r.3);
        let r = run(b"HTTP/1.1 204 No Content\r\n\r\n", false).unwrap();
        assert!(r.3);
    }

    #[test]
    fn rfc9110_15_2_interim_responses_are_skipped() {
        let r = run(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r, (201, ResponseBody::Length(0), vec![], true));
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let mut r = ResponseReader::new(ResponseLimits::default(), false);
        let mut held: Vec<u8> = Vec::new();
        let mut body = Vec::new();
        let mut ended = false;
        for &b in input.iter() {
            held.push(b);
            loop {
                let (n, ev) = r.read(&held).unwrap();
                let stop = matches!(ev, ResponseEvent::NeedMore | ResponseEvent::End);
                if let ResponseEvent::Data(d) = ev {
                    body.extend_from_slice(d);
                }
                ended |= r.is_done();
                held.drain(..n);
                if stop || held.is_empty() {
                    break;
                }
            }
        }
        assert!(ended);
        assert_eq!(body, b"abcde");
    }

    #[test]
    fn refuses_smuggling_shapes_and_bad_heads() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert_eq!(run(bad, false), Err(HttpError::InvalidResponse), "{bad:?}");
        }
    }

    #[test]
    fn head_limit_exceeded_by_one() {
        let limits = ResponseLimits {
            max_head_bytes: 40,
            ..ResponseLimits::default()
        };
        let ok = b"HTTP/1.1 200 OK\r\nA: 1234567890123456\r\n\r\n"; // 40 bytes
        assert_eq!(ok.len(), 40);
        let mut r = ResponseReader::new(limits, false);
        assert!(r.read(ok).is_ok());
        let bad = b"HTTP/1.1 200 OK\r\nA: 12345678901234567\r\n\r\n";
        let mut r = ResponseReader::new(limits, false);
        assert_eq!(r.read(bad).err(), Some(HttpError::InvalidResponse));
    }

    #[test]
    fn eof_mid_body_is_incomplete() {
        let mut r = ResponseReader::new(ResponseLimits::default(), false);
        let (_, ev) = r
            .read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            .unwrap();
        assert!(matches!(ev, ResponseEvent::Head(_)));
        assert_eq!(r.handle_eof(), Err(HttpError::IncompleteResponse));
    }

    #[test]
    fn malformed_input_never_panics() {
        let good: &[u8] =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\n";
        let mut v = good.to_vec();
        for i in 0..good.len() {
            for bit in 0..8 {
                v[i] ^= 1 << bit;
                let _ = run(&v, false);
                let _ = run(&v[..i], false);
                v[i] ^= 1 << bit;
            }
        }
    }
}
