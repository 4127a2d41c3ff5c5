//! Fuzzes the WebSocket upgrade-request and 101-response parsers with oracles:
//! - a head that parses consumed exactly `n <= len` bytes, and the prefix `data[..n]` parses to
//!   the same `n` (nothing after the head influences it);
//! - every strict prefix of a parsed head is "incomplete" or an error, never a different head;
//! - an accepted request yields a 28-byte accept key and a 101 that the client side verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwire_ws::handshake::{ServerResponse, UpgradeRequest, write_accept};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((req, n))) = UpgradeRequest::parse(data) {
        assert!(n <= data.len());
        let again = UpgradeRequest::parse(&data[..n]).unwrap().unwrap();
        assert_eq!(again.1, n);
        if n > 0 {
            match UpgradeRequest::parse(&data[..n - 1]) {
                Ok(Some((_, m))) => panic!("a strict prefix parsed as a head of {m} bytes"),
                Ok(None) | Err(_) => {}
            }
        }
        assert_eq!(req.accept_key().as_str().len(), 28);
        let mut out = Vec::new();
        write_accept(&req, None, None, &[], &mut out).unwrap();
        let (resp, used) = ServerResponse::parse(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(resp.header("sec-websocket-accept"), Some(req.accept_key().as_str().as_bytes()));
    }
    if let Ok(Some((_, n))) = ServerResponse::parse(data) {
        assert!(n <= data.len());
    }
});
