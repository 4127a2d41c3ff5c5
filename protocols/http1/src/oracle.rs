//! The differential oracle behind [`fuzz_check`]: the same bytes fed whole,
//! in pseudo-random splits and one byte at a time must give the same events
//! and the same verdict, and `handle_read` never claims more than it was given.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use crate::{
    BareLf, BodyLen, Config, ContinuePolicy, Event, HttpError, ServerConn, StatusCode, Upgrade,
};

/// What one run observed.
#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    /// Rendered events; adjacent body pieces are merged.
    events: Vec<String>,
    /// The parse error, if any.
    error: Option<HttpError>,
    /// `handle_eof` with the leftover, if no error came first.
    eof: Option<Result<(), HttpError>>,
    upgraded: bool,
    close: bool,
    /// Bytes never consumed (0 after an error, where it depends on the split).
    leftover: usize,
}

/// A small deterministic generator (xorshift64*), seeded from the input.
struct Rng(u64);

impl Rng {
    fn from_data(data: &[u8]) -> Self {
        // FNV-1a, never zero.
        let seed = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Limits small enough for a fuzzer to reach, policy bits taken from the input.
fn config(data: &[u8]) -> Config {
    let bits = data.last().copied().unwrap_or(0);
    Config {
        max_request_line: 0x40,
        max_head_bytes: 0x100,
        max_headers: 8,
        max_body: 0x400,
        max_chunk_line: 0x20,
        max_trailer_bytes: 0x40,
        max_pipeline: usize::from(bits & 3) + 1,
        bare_lf: if bits & 4 == 0 {
            BareLf::Reject
        } else {
            BareLf::Accept
        },
        continue_policy: if bits & 8 == 0 {
            ContinuePolicy::Auto
        } else {
            ContinuePolicy::Manual
        },
    }
}

fn render(ev: &Event<'_>, events: &mut Vec<String>) {
    match ev {
        Event::Request(h) => {
            let mut s = format!(
                "request {} {} {:?} {:?} ka={} cont={} up={:?} q={:?} path={}",
                h.method.as_str(),
                h.target,
                h.version,
                h.body,
                h.keep_alive,
                h.expect_continue,
                h.upgrade,
                h.query,
                h.path
            );
            for f in h.headers.iter() {
                let _ = write!(s, " | {f:?}");
            }
            events.push(s);
        }
        Event::Body(b) => {
            // Byte-wise escaping: a UTF-8 sequence split across pieces must
            // render as it would whole.
            let mut piece = String::new();
            for c in b.iter() {
                let _ = write!(piece, "{}", core::ascii::escape_default(*c));
            }
            match events.last_mut() {
                Some(last) if last.starts_with("body ") => last.push_str(&piece),
                _ => events.push(format!("body {piece}")),
            }
        }
        Event::Trailers(t) => events.push(format!("trailers {t:?}")),
        Event::BodyEnd => events.push("end".to_owned()),
    }
}

/// Feeds `data` in pieces whose sizes `next_len` picks, answering every
/// request once its body ended.
fn run(cfg: Config, data: &[u8], switch: bool, mut next_len: impl FnMut() -> usize) -> Transcript {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut conn = ServerConn::new(cfg);
    let mut held: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut out = Vec::new();
    let mut events = Vec::new();
    // Upgrade kind of each request whose body ended and is not answered yet.
    let mut to_answer: Vec<Option<Upgrade>> = Vec::new();
    let mut pending_kinds: Vec<Option<Upgrade>> = Vec::new();
    let mut error = None;
    'outer: loop {
        if let Some(piece) = data.get(fed..) {
            let n = next_len().clamp(1, piece.len().max(1)).min(piece.len());
            held.extend_from_slice(piece.get(..n).unwrap_or_default());
            fed += n;
        }
        loop {
            let r = conn.handle_read(&held);
            while let Some(ev) = conn.poll_event() {
                if let Event::Request(h) = &ev {
                    pending_kinds.push(h.upgrade);
                }
                if let Event::BodyEnd = ev
                    && !pending_kinds.is_empty()
                {
                    to_answer.push(pending_kinds.remove(0));
                }
                render(&ev, &mut events);
            }
            if cfg.continue_policy == ContinuePolicy::Manual {
                let _ = conn.send_continue(&mut out);
            }
            while conn.poll_transmit(&mut out) {}
            let answered = !to_answer.is_empty();
            for kind in to_answer.drain(..) {
                let status = match kind {
                    Some(Upgrade::WebSocket | Upgrade::H2c) if switch => {
                        StatusCode::SWITCHING_PROTOCOLS
                    }
                    Some(Upgrade::Connect) if !switch => StatusCode::METHOD_NOT_ALLOWED,
                    _ => StatusCode::OK,
                };
                let body = if status.is_informational() {
                    BodyLen::None
                } else {
                    BodyLen::Known(2)
                };
                if conn
                    .write_response_head(status, &[("server", "oracle")], body, now, &mut out)
                    .is_ok()
                {
                    let _ = conn.write_body_chunk(b"ok", &mut out);
                    let _ = conn.finish_response(&mut out);
                }
            }
            match r {
                Err(e) => {
                    error = Some(e);
                    break 'outer;
                }
                Ok(n) => {
                    assert!(n <= held.len(), "consumed {n} of {}", held.len());
                    held.drain(..n);
                    if n == 0 && !answered {
                        break;
                    }
                }
            }
        }
        if fed >= data.len() {
            break;
        }
    }
    let eof = error.is_none().then(|| conn.handle_eof(held.len()));
    Transcript {
        events,
        error,
        eof,
        upgraded: conn.is_upgraded(),
        close: conn.should_close(),
        leftover: if error.is_some() { 0 } else { held.len() },
    }
}

/// Fuzz oracle: parses `data` whole, in random splits and byte by byte, and
/// asserts the three runs agree (events, error, upgrade/close state, leftover)
/// and that no call consumed more than it was given. Panics on disagreement.
#[doc(hidden)]
#[allow(clippy::panic)] // an oracle's job is to fail loudly
pub fn fuzz_check(data: &[u8]) {
    let cfg = config(data);
    let switch = data.first().is_some_and(|b| b & 1 == 1);
    let whole = run(cfg, data, switch, || usize::MAX);
    let mut rng = Rng::from_data(data);
    let split = run(cfg, data, switch, || (rng.next() % 17) as usize + 1);
    if whole != split {
        panic!("whole vs split:\n{whole:#?}\n{split:#?}");
    }
    if data.len() <= 0x800 {
        let bytewise = run(cfg, data, switch, || 1);
        if whole != bytewise {
            panic!("whole vs bytewise:\n{whole:#?}\n{bytewise:#?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_accepts_a_pipelined_stream() {
        fuzz_check(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: y\r\n\r\nGET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00",
        );
    }
}
