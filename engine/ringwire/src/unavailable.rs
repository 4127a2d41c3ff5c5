//! The HTTP/WebSocket listener's stand-in until the WebSocket and HTTP plugins land: it reads
//! one request head (bounded) and answers `503 Service Unavailable`, then closes.

use ringwire_runtime::{ConnCtx, Plugin};

/// Largest request head read before answering anyway.
pub const MAX_HEAD: usize = 16 * 1024;

const RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain\r\n\
content-length: 47\r\n\
connection: close\r\n\
retry-after: 60\r\n\
\r\n\
ringwire: the HTTP/WebSocket service is not on\n";

/// Answers 503 to the first request head, then closes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unavailable;

impl Plugin for Unavailable {
    type Conn = ();

    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        Some(())
    }

    fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let complete = data.windows(4).any(|w| w == b"\r\n\r\n");
        if complete || data.len() >= MAX_HEAD {
            let _ = cx.send(RESPONSE);
            cx.close();
            return data.len();
        }
        0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_length_matches_body() {
        let r = std::str::from_utf8(super::RESPONSE).unwrap();
        let (_, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(r.contains(&format!("content-length: {}\r\n", body.len())));
    }
}
