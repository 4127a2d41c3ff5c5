//! Hostile input never panics (STYLE.md §5): every truncation and random bit flips of valid
//! streams, for both roles, with and without deflate, and of handshake heads.

mod common;

use std::time::Instant;

use common::*;
use ringwire_ws::deflate::{DeflateConfig, DeflateParams};
use ringwire_ws::handshake::{ClientHandshake, ClientRequest, ServerResponse, UpgradeRequest};
use ringwire_ws::{CloseCode, Config, FragmentMode, MessageKind, WebSocket};

/// A valid stream of everything a peer can send, produced by our own encoder.
fn valid_stream(sender: &mut WebSocket) -> Vec<u8> {
    let mut out = Vec::new();
    let t = Instant::now();
    sender.send_text("Hello", &mut out).unwrap();
    sender.send_binary(&[0xAB; 300], &mut out).unwrap();
    sender.ping(b"ping", &mut out).unwrap();
    sender
        .send_fragment(MessageKind::Text, "κό".as_bytes(), false, &mut out)
        .unwrap();
    sender.pong(b"", &mut out).unwrap();
    sender
        .send_fragment(MessageKind::Text, "σμε".as_bytes(), true, &mut out)
        .unwrap();
    sender
        .send_text(&"compress me ".repeat(40), &mut out)
        .unwrap();
    sender.send_binary(&[7; 70_000], &mut out).unwrap();
    sender.close(t, CloseCode::NORMAL, "bye", &mut out).unwrap();
    out
}

fn deflate_cfg() -> Config {
    Config {
        deflate: DeflateConfig {
            compress_threshold: 0,
            ..DeflateConfig::enabled()
        },
        ..Config::default()
    }
}

/// Makes a fresh receiver.
type Factory = Box<dyn Fn() -> WebSocket>;

/// (stream, receiver factory) pairs covering both roles, deflate and streaming.
fn cases() -> Vec<(Vec<u8>, Factory)> {
    let d = Some(DeflateParams::default());
    let stream_cfg = || Config {
        fragment_mode: FragmentMode::Stream,
        ..Config::default()
    };
    vec![
        (
            valid_stream(&mut WebSocket::client(Config::default(), None, [1; 16])),
            Box::new(|| WebSocket::server(Config::default(), None)),
        ),
        (
            valid_stream(&mut WebSocket::server(Config::default(), None)),
            Box::new(|| WebSocket::client(Config::default(), None, [2; 16])),
        ),
        (
            valid_stream(&mut WebSocket::client(deflate_cfg(), d, [3; 16])),
            Box::new(move || WebSocket::server(Config::default(), d)),
        ),
        (
            valid_stream(&mut WebSocket::server(deflate_cfg(), d)),
            Box::new(move || WebSocket::client(stream_cfg(), d, [4; 16])),
        ),
    ]
}

#[test]
fn valid_streams_decode() {
    for (stream, make) in cases() {
        let mut ws = make();
        let (events, consumed, err) = feed_all(&mut ws, &stream);
        assert_eq!(err, None);
        assert_eq!(consumed, stream.len());
        assert!(matches!(events.last(), Some(Owned::Close(Some(1000), r)) if r == "bye"));
    }
}

#[test]
fn every_truncation() {
    for (stream, make) in cases() {
        // Every prefix of the small frames, then a stride through the 70 000-byte one.
        let lens =
            (0..=stream.len()).filter(|n| *n < 1200 || n % 97 == 0 || *n > stream.len() - 200);
        for n in lens {
            let mut ws = make();
            let (_, consumed, err) = feed_all(&mut ws, &stream[..n]);
            assert!(consumed <= n);
            assert_eq!(
                err, None,
                "a prefix of a valid stream is never an error (n={n})"
            );
        }
    }
}

#[test]
fn random_bit_flips() {
    let mut rng = Rng::new(0x5EED);
    for (stream, make) in cases() {
        // Keep the flips in the first 2 KiB where the headers are dense.
        let window = stream.len().min(2048);
        for _ in 0..1500 {
            let mut s = stream.clone();
            for _ in 0..=rng.below(3) {
                let i = rng.below(window as u64) as usize;
                s[i] ^= 1 << rng.below(8);
            }
            let mut ws = make();
            let (_, consumed, _) = feed_all(&mut ws, &s);
            assert!(consumed <= s.len());
            // Also fed in small pieces, as an engine would.
            let mut ws = make();
            let _ = feed_chunked(&mut ws, &s[..window], 1 + rng.below(40) as usize);
        }
    }
}

#[test]
fn random_garbage() {
    let mut rng = Rng::new(99);
    for _ in 0..3000 {
        let len = rng.below(300) as usize;
        let mut s = rng.bytes(len);
        // Make short lengths likely so frames complete.
        if s.len() > 1 {
            s[1] &= 0x80 | 0x3F;
        }
        for mut ws in [
            WebSocket::server(Config::default(), Some(DeflateParams::default())),
            WebSocket::client(Config::default(), Some(DeflateParams::default()), [0; 16]),
        ] {
            let (_, consumed, _) = feed_all(&mut ws, &s);
            assert!(consumed <= s.len());
        }
    }
}

#[test]
fn handshake_truncations_and_flips() {
    let req = b"GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\", x-webkit-deflate-frame\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    let cfg = DeflateConfig::enabled();
    let exercise = |buf: &[u8]| {
        if let Ok(Some((r, n))) = UpgradeRequest::parse(buf) {
            assert!(n <= buf.len());
            let _ = r.negotiate_deflate(&cfg);
            let _ = r.protocols().count();
            for e in r.extensions() {
                let _ = e.params().count();
            }
        }
    };
    for n in 0..=req.len() {
        exercise(&req[..n]);
    }
    let mut rng = Rng::new(7);
    for _ in 0..5000 {
        let mut s = req.to_vec();
        for _ in 0..=rng.below(4) {
            let i = rng.below(s.len() as u64) as usize;
            s[i] ^= 1 << rng.below(8);
        }
        exercise(&s);
    }

    // Client side: flips of a valid 101.
    let mut out = Vec::new();
    let hs = ClientHandshake::new(
        &ClientRequest {
            host: "h",
            path: "/",
            origin: None,
            protocols: &["chat"],
            deflate: Some(&cfg),
            extra_headers: &[],
        },
        [5; 16],
        &mut out,
    )
    .unwrap();
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: chat\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; client_max_window_bits=9\r\n\r\n",
        hs.expected_accept().as_str()
    )
    .into_bytes();
    let (r, _) = ServerResponse::parse(&resp).unwrap().unwrap();
    assert!(hs.verify(&r).is_ok());
    for n in 0..=resp.len() {
        if let Ok(Some((r, _))) = ServerResponse::parse(&resp[..n]) {
            let _ = hs.verify(&r);
        }
    }
    for _ in 0..5000 {
        let mut s = resp.clone();
        let i = rng.below(s.len() as u64) as usize;
        s[i] ^= 1 << rng.below(8);
        if let Ok(Some((r, _))) = ServerResponse::parse(&s) {
            let _ = hs.verify(&r);
        }
    }
}
