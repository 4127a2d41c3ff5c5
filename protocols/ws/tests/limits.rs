//! Every DoS bound, exceeded by one (STYLE.md §5).

mod common;

use common::*;
use ringwire_ws::deflate::{DeflateConfig, DeflateParams};
use ringwire_ws::handshake::{MAX_HEADERS, ServerResponse, UpgradeRequest};
use ringwire_ws::{Config, MessageKind, WebSocket, WsError};

const KEY: [u8; 4] = [9, 8, 7, 6];

fn server_with(cfg: Config) -> WebSocket {
    WebSocket::server(cfg, None)
}

fn run(cfg: Config, input: &[u8]) -> (Vec<Owned>, Option<WsError>, Option<u16>) {
    let mut ws = server_with(cfg);
    let (events, _, err) = feed_all(&mut ws, input);
    let mut out = Vec::new();
    ws.poll_transmit(&mut out);
    (events, err, last_close_code(&out))
}

#[test]
fn limit_max_frame_payload() {
    let cfg = Config {
        max_frame_payload: 1000,
        ..Config::default()
    };
    let (events, err, _) = run(cfg.clone(), &client_frame(0x82, &[0; 1000], KEY));
    assert_eq!((events.len(), err), (1, None));
    let (_, err, code) = run(cfg.clone(), &client_frame(0x82, &[0; 1001], KEY));
    assert_eq!((err, code), (Some(WsError::FrameTooLarge), Some(1009)));
    // Fails on the header alone: the engine need not buffer the oversized payload.
    let header = &client_frame(0x82, &[0; 1001], KEY)[..8];
    let (_, err, code) = run(cfg, header);
    assert_eq!((err, code), (Some(WsError::FrameTooLarge), Some(1009)));
}

#[test]
fn limit_max_message_size() {
    let cfg = Config {
        max_message_size: 1000,
        ..Config::default()
    };
    // Fragments adding up to exactly the limit, then one byte more.
    let mut ok = client_frame(0x02, &[0; 600], KEY);
    ok.extend(client_frame(0x80, &[0; 400], KEY));
    let (events, err, _) = run(cfg.clone(), &ok);
    assert_eq!((events.len(), err), (1, None));
    let mut big = client_frame(0x02, &[0; 600], KEY);
    big.extend(client_frame(0x80, &[0; 401], KEY));
    let (_, err, code) = run(cfg.clone(), &big);
    assert_eq!((err, code), (Some(WsError::MessageTooLarge), Some(1009)));
    // One frame over the message limit (the frame limit being larger).
    let (_, err, code) = run(cfg, &client_frame(0x81, &[b'a'; 1001], KEY));
    assert_eq!((err, code), (Some(WsError::MessageTooLarge), Some(1009)));
}

#[test]
fn limit_max_fragments() {
    let cfg = Config {
        max_fragments: 4,
        ..Config::default()
    };
    let frames = |n: usize| {
        let mut v = Vec::new();
        for i in 0..n {
            let b0 = match (i == 0, i + 1 == n) {
                (true, _) => 0x01,
                (false, true) => 0x80,
                (false, false) => 0x00,
            };
            v.extend(client_frame(b0, b"x", KEY));
        }
        v
    };
    let (events, err, _) = run(cfg.clone(), &frames(4));
    assert_eq!((events.len(), err), (1, None));
    let (_, err, code) = run(cfg, &frames(5));
    assert_eq!((err, code), (Some(WsError::TooManyFragments), Some(1009)));
}

fn zeros_compressed(n: usize) -> Vec<u8> {
    // What a peer would send: our own compressor at level 9.
    let cfg = Config {
        deflate: DeflateConfig {
            level: 9,
            compress_threshold: 0,
            ..DeflateConfig::enabled()
        },
        ..Config::default()
    };
    let mut c = WebSocket::client(cfg, Some(DeflateParams::default()), [0; 16]);
    let mut out = Vec::new();
    c.send_binary(&vec![0; n], &mut out).unwrap();
    out
}

#[test]
fn limit_inflated_size_deflate_bomb() {
    // 16 MiB of zeros compress to about 16 KiB; a 1 MiB message limit stops the inflater at
    // 1 MiB + 1 byte, not after 16 MiB.
    let bomb = zeros_compressed(16 << 20);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let cfg = Config {
        max_message_size: 1 << 20,
        ..Config::default()
    };
    let mut ws = WebSocket::server(cfg, Some(DeflateParams::default()));
    let (events, _, err) = feed_all(&mut ws, &bomb);
    assert_eq!(events, []);
    assert_eq!(err, Some(WsError::MessageTooLarge));
    let mut out = Vec::new();
    ws.poll_transmit(&mut out);
    assert_eq!(last_close_code(&out), Some(1009));
}

#[test]
fn limit_inflated_size_exact() {
    let cfg = |max| Config {
        max_message_size: max,
        ..Config::default()
    };
    let wire = zeros_compressed(5000);
    let mut ws = WebSocket::server(cfg(5000), Some(DeflateParams::default()));
    let (events, _, err) = feed_all(&mut ws, &wire);
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Message(MessageKind::Binary, vec![0; 5000])]);
    let mut ws = WebSocket::server(cfg(4999), Some(DeflateParams::default()));
    let (_, _, err) = feed_all(&mut ws, &wire);
    assert_eq!(err, Some(WsError::MessageTooLarge));
}

#[test]
fn limit_inflated_size_across_fragments() {
    // Each fragment inflates within the limit, together they do not.
    let sender = Config {
        deflate: DeflateConfig {
            compress_threshold: 0,
            ..DeflateConfig::enabled()
        },
        ..Config::default()
    };
    let mut c = WebSocket::client(sender, Some(DeflateParams::default()), [0; 16]);
    let mut wire = Vec::new();
    c.send_fragment(MessageKind::Binary, &[1; 3000], false, &mut wire)
        .unwrap();
    c.send_fragment(MessageKind::Binary, &[1; 3001], true, &mut wire)
        .unwrap();
    let cfg = Config {
        max_message_size: 6000,
        ..Config::default()
    };
    let mut ws = WebSocket::server(cfg, Some(DeflateParams::default()));
    let (_, _, err) = feed_all(&mut ws, &wire);
    assert_eq!(err, Some(WsError::MessageTooLarge));
}

fn request_with_headers(extra: usize) -> Vec<u8> {
    let mut s = String::from(
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    for i in 0..extra {
        s.push_str(&format!("X-{i}: v\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[test]
fn limit_max_headers() {
    // Five required headers plus filler: exactly MAX_HEADERS parse, one more is 431.
    let ok = request_with_headers(MAX_HEADERS - 5);
    assert!(
        UpgradeRequest::parse_with_limit(&ok, 1 << 20)
            .unwrap()
            .is_some()
    );
    let too_many = request_with_headers(MAX_HEADERS - 4);
    let err = UpgradeRequest::parse_with_limit(&too_many, 1 << 20).unwrap_err();
    assert_eq!(err, WsError::HandshakeTooLarge);
    assert_eq!(err.http_status(), Some(431));
}

#[test]
fn limit_max_head_size() {
    let req = request_with_headers(3);
    let n = req.len();
    assert!(UpgradeRequest::parse_with_limit(&req, n).unwrap().is_some());
    assert_eq!(
        UpgradeRequest::parse_with_limit(&req, n - 1).unwrap_err(),
        WsError::HandshakeTooLarge
    );
    // An incomplete head already over the limit fails too (no unbounded buffering).
    let partial = &req[..n - 2];
    assert!(matches!(
        UpgradeRequest::parse_with_limit(partial, n - 2),
        Ok(None)
    ));
    assert_eq!(
        UpgradeRequest::parse_with_limit(partial, n - 3).unwrap_err(),
        WsError::HandshakeTooLarge
    );
    let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    assert!(
        ServerResponse::parse_with_limit(resp, resp.len())
            .unwrap()
            .is_some()
    );
    assert_eq!(
        ServerResponse::parse_with_limit(resp, resp.len() - 1).unwrap_err(),
        WsError::HandshakeTooLarge
    );
}
