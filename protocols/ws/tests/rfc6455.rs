//! RFC 6455 vectors from tests/vectors/rfc6455/, decoded and re-encoded.

mod common;

use common::*;
use ringwire_ws::handshake::{
    AcceptKey, ClientHandshake, ClientRequest, ServerResponse, UpgradeRequest, write_accept,
};
use ringwire_ws::mask::apply_mask;
use ringwire_ws::{Config, FrameHeader, MessageKind, OpCode, WebSocket};

/// Decodes a vector whole, then byte by byte, then in 7-byte chunks: same events every time.
fn check_vector(name: &str) {
    let v = load_vector("rfc6455", name);
    for chunk in [usize::MAX, 1, 7] {
        let mut ws = receiver_for(&v, Config::default());
        let (events, err) = if chunk == usize::MAX {
            let (e, consumed, err) = feed_all(&mut ws, &v.wire);
            assert_eq!(consumed, v.wire.len(), "{name}");
            (e, err)
        } else {
            feed_chunked(&mut ws, &v.wire, chunk)
        };
        assert_eq!(err, None, "{name} chunk={chunk}");
        let got: Vec<Expected> = events
            .iter()
            .map(|e| match e {
                Owned::Message(MessageKind::Text, d) => {
                    Expected::Text(String::from_utf8(d.clone()).unwrap())
                }
                Owned::Message(MessageKind::Binary, d) => Expected::Binary(d.clone()),
                Owned::Ping(p) => Expected::Ping(p.clone()),
                Owned::Pong(p) => Expected::Pong(p.clone()),
                other => panic!("{name}: {other:?}"),
            })
            .collect();
        assert_eq!(got, v.events, "{name} chunk={chunk}");
    }
}

#[test]
fn rfc6455_5_7_single_frame_unmasked() {
    check_vector("5_7_single_frame_unmasked.txt");
    // And the server encodes exactly these bytes.
    let v = load_vector("rfc6455", "5_7_single_frame_unmasked.txt");
    let mut ws = WebSocket::server(Config::default(), None);
    let mut out = Vec::new();
    ws.send_text("Hello", &mut out).unwrap();
    assert_eq!(out, v.wire);
}

#[test]
fn rfc6455_5_7_single_frame_masked() {
    check_vector("5_7_single_frame_masked.txt");
    // Encoding with the RFC's key reproduces the bytes.
    let v = load_vector("rfc6455", "5_7_single_frame_masked.txt");
    let h = FrameHeader {
        fin: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::Text,
        mask: Some([0x37, 0xfa, 0x21, 0x3d]),
        payload_len: 5,
    };
    let mut out = h.encode().to_vec();
    let mut payload = *b"Hello";
    apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d]);
    out.extend_from_slice(&payload);
    assert_eq!(out, v.wire);
}

#[test]
fn rfc6455_5_7_fragmented_unmasked() {
    check_vector("5_7_fragmented_unmasked.txt");
    let v = load_vector("rfc6455", "5_7_fragmented_unmasked.txt");
    let mut ws = WebSocket::server(Config::default(), None);
    let mut out = Vec::new();
    ws.send_fragment(MessageKind::Text, b"Hel", false, &mut out)
        .unwrap();
    ws.send_fragment(MessageKind::Text, b"lo", true, &mut out)
        .unwrap();
    assert_eq!(out, v.wire);
}

#[test]
fn rfc6455_5_7_ping_unmasked() {
    check_vector("5_7_ping_unmasked.txt");
    let v = load_vector("rfc6455", "5_7_ping_unmasked.txt");
    let mut ws = WebSocket::server(Config::default(), None);
    let mut out = Vec::new();
    ws.ping(b"Hello", &mut out).unwrap();
    assert_eq!(out, v.wire);
}

#[test]
fn rfc6455_5_7_pong_masked() {
    check_vector("5_7_pong_masked.txt");
}

#[test]
fn rfc6455_5_7_ping_gets_pong() {
    // The client answers the §5.7 ping with a masked pong carrying the same payload.
    let v = load_vector("rfc6455", "5_7_ping_unmasked.txt");
    let mut ws = WebSocket::client(Config::default(), None, [3; 16]);
    let (events, _, err) = feed_all(&mut ws, &v.wire);
    assert_eq!((events.len(), err), (1, None));
    let mut out = Vec::new();
    assert!(ws.poll_transmit(&mut out));
    let mut server = WebSocket::server(Config::default(), None);
    let (events, _, err) = feed_all(&mut server, &out);
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Pong(b"Hello".to_vec())]);
}

#[test]
fn rfc6455_5_7_256_bytes_binary() {
    check_vector("5_7_256_bytes_binary.txt");
    let v = load_vector("rfc6455", "5_7_256_bytes_binary.txt");
    let mut ws = WebSocket::server(Config::default(), None);
    let mut out = Vec::new();
    ws.send_binary(&pattern(256), &mut out).unwrap();
    assert_eq!(out, v.wire);
}

#[test]
fn rfc6455_5_7_64k_binary() {
    check_vector("5_7_64k_binary.txt");
    let v = load_vector("rfc6455", "5_7_64k_binary.txt");
    let mut ws = WebSocket::server(Config::default(), None);
    let mut payload = pattern(65536);
    let header = ws.send_header(MessageKind::Binary, &mut payload).unwrap();
    assert_eq!(&header[..], &v.wire[..10]);
}

#[test]
fn rfc6455_1_3_key_accept() {
    let text = String::from_utf8(read_vector_file("rfc6455", "1_3_key_accept.txt")).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.trim().strip_prefix('=').map(str::trim))
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        AcceptKey::from_key(get("key").as_bytes()).as_str(),
        get("accept")
    );
}

#[test]
fn rfc6455_1_3_handshake_server() {
    let request = read_vector_file("rfc6455", "1_3_request.http");
    let response = read_vector_file("rfc6455", "1_3_response.http");
    let (req, n) = UpgradeRequest::parse(&request).unwrap().unwrap();
    assert_eq!(n, request.len());
    assert_eq!(req.path(), "/chat");
    assert_eq!(req.query(), None);
    assert_eq!(req.host(), "server.example.com");
    assert_eq!(req.origin(), Some("http://example.com"));
    assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
    assert_eq!(req.extensions().count(), 0);
    let mut out = Vec::new();
    write_accept(&req, Some("chat"), None, &[], &mut out).unwrap();
    assert_eq!(out, response);
}

#[test]
fn rfc6455_1_3_handshake_client() {
    let request = read_vector_file("rfc6455", "1_3_request.http");
    let response = read_vector_file("rfc6455", "1_3_response.http");
    let mut out = Vec::new();
    let hs = ClientHandshake::new(
        &ClientRequest {
            host: "server.example.com",
            path: "/chat",
            origin: Some("http://example.com"),
            protocols: &["chat", "superchat"],
            deflate: None,
            extra_headers: &[],
        },
        *b"the sample nonce",
        &mut out,
    )
    .unwrap();
    // Same headers as the RFC's example (ours come in a different order).
    let (ours, _) = UpgradeRequest::parse(&out).unwrap().unwrap();
    let (theirs, _) = UpgradeRequest::parse(&request).unwrap().unwrap();
    let mut a: Vec<_> = ours.headers().iter().map(|h| format!("{h:?}")).collect();
    let mut b: Vec<_> = theirs.headers().iter().map(|h| format!("{h:?}")).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let (resp, n) = ServerResponse::parse(&response).unwrap().unwrap();
    assert_eq!(n, response.len());
    let neg = hs.verify(&resp).unwrap();
    assert_eq!(neg.protocol, Some("chat"));
    assert_eq!(neg.deflate, None);
}
