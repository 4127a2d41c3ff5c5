//! RFC 7692 vectors from tests/vectors/rfc7692/ and the negotiation rules of §5 and §7.

mod common;

use common::*;
use ringwire_ws::deflate::{DeflateConfig, DeflateParams};
use ringwire_ws::handshake::{
    ClientHandshake, ClientRequest, ServerResponse, UpgradeRequest, write_accept,
};
use ringwire_ws::{Config, MessageKind, WebSocket};

fn check_vector(name: &str) {
    let v = load_vector("rfc7692", name);
    for chunk in [usize::MAX, 1, 3] {
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
                other => panic!("{name}: {other:?}"),
            })
            .collect();
        assert_eq!(got, v.events, "{name} chunk={chunk}");
    }
}

fn deflate_config(level: u32) -> Config {
    Config {
        deflate: DeflateConfig {
            enabled: true,
            level,
            compress_threshold: 0,
            ..DeflateConfig::default()
        },
        ..Config::default()
    }
}

#[test]
fn rfc7692_7_2_3_1_hello_compressed() {
    check_vector("7_2_3_1_hello_compressed.txt");
    // Our compressor produces the RFC's bytes (fixed Huffman block, trailer removed).
    let v = load_vector("rfc7692", "7_2_3_1_hello_compressed.txt");
    for level in [1, 6, 9] {
        let mut ws = WebSocket::server(deflate_config(level), Some(DeflateParams::default()));
        let mut out = Vec::new();
        ws.send_text("Hello", &mut out).unwrap();
        assert_eq!(out, v.wire, "level {level}");
    }
}

#[test]
fn rfc7692_7_2_3_1_hello_fragmented() {
    check_vector("7_2_3_1_hello_fragmented.txt");
}

#[test]
fn rfc7692_7_2_3_2_context_takeover() {
    check_vector("7_2_3_2_context_takeover.txt");
    // With context takeover the second "Hello" is a back-reference.
    let v = load_vector("rfc7692", "7_2_3_2_context_takeover.txt");
    let mut ws = WebSocket::server(deflate_config(6), Some(DeflateParams::default()));
    let mut out = Vec::new();
    ws.send_text("Hello", &mut out).unwrap();
    ws.send_text("Hello", &mut out).unwrap();
    assert_eq!(out, v.wire);
}

#[test]
fn rfc7692_7_2_3_2_no_context_takeover() {
    check_vector("7_2_3_2_no_context_takeover.txt");
    let v = load_vector("rfc7692", "7_2_3_2_no_context_takeover.txt");
    let params = DeflateParams {
        server_no_context_takeover: true,
        ..Default::default()
    };
    let mut ws = WebSocket::server(deflate_config(6), Some(params));
    let mut out = Vec::new();
    ws.send_text("Hello", &mut out).unwrap();
    ws.send_text("Hello", &mut out).unwrap();
    assert_eq!(out, v.wire);
}

#[test]
fn rfc7692_7_2_3_3_no_compression_block() {
    check_vector("7_2_3_3_no_compression_block.txt");
}

#[test]
fn rfc7692_7_2_3_4_bfinal() {
    check_vector("7_2_3_4_bfinal.txt");
    // After a final block the inflater starts over: a following message still decodes.
    let mut wire = load_vector("rfc7692", "7_2_3_4_bfinal.txt").wire;
    wire.extend(hex("c1 07 f2 48 cd c9 c9 07 00"));
    let mut ws = WebSocket::client(Config::default(), Some(DeflateParams::default()), [0; 16]);
    let (events, _, err) = feed_all(&mut ws, &wire);
    assert_eq!(err, None);
    assert_eq!(events.len(), 2);
}

#[test]
fn rfc7692_7_2_3_5_two_blocks() {
    check_vector("7_2_3_5_two_blocks.txt");
}

#[test]
fn rfc7692_7_2_3_6_empty() {
    check_vector("7_2_3_6_empty.txt");
    let v = load_vector("rfc7692", "7_2_3_6_empty.txt");
    let mut ws = WebSocket::server(deflate_config(1), Some(DeflateParams::default()));
    let mut out = Vec::new();
    ws.send_text("", &mut out).unwrap();
    assert_eq!(out, v.wire);
}

#[test]
fn rfc7692_6_rsv1_only_on_first_fragment() {
    let mut ws = WebSocket::server(deflate_config(1), Some(DeflateParams::default()));
    let mut out = Vec::new();
    ws.send_fragment(MessageKind::Binary, &[7; 100], false, &mut out)
        .unwrap();
    let first = out.len();
    ws.send_fragment(MessageKind::Binary, &[7; 100], true, &mut out)
        .unwrap();
    assert_eq!(out[0] & 0x40, 0x40);
    assert_eq!(out[first] & 0x40, 0);
    let mut client = WebSocket::client(Config::default(), Some(DeflateParams::default()), [0; 16]);
    let (events, _, err) = feed_all(&mut client, &out);
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Message(MessageKind::Binary, vec![7; 200])]);
}

#[test]
fn rfc7692_6_threshold_sends_small_messages_plain() {
    let cfg = Config {
        deflate: DeflateConfig {
            compress_threshold: 10,
            ..DeflateConfig::enabled()
        },
        ..Config::default()
    };
    let mut ws = WebSocket::server(cfg, Some(DeflateParams::default()));
    let mut out = Vec::new();
    ws.send_text("123456789", &mut out).unwrap();
    assert_eq!(out[0], 0x81, "9 bytes: below the threshold, RSV1 clear");
    out.clear();
    ws.send_text("1234567890", &mut out).unwrap();
    assert_eq!(out[0], 0xC1, "10 bytes: compressed");
}

fn upgrade(ext: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {ext}\r\n\r\n"
    )
    .into_bytes()
}

fn negotiate(ext: &str, cfg: &DeflateConfig) -> Option<DeflateParams> {
    let buf = upgrade(ext);
    let (req, _) = UpgradeRequest::parse(&buf).unwrap().unwrap();
    req.negotiate_deflate(cfg)
}

#[test]
fn rfc7692_5_1_first_acceptable_offer_wins() {
    let cfg = DeflateConfig::enabled();
    // An offer with an unknown parameter is declined; the next one is taken.
    assert_eq!(
        negotiate(
            "permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=10",
            &cfg
        ),
        Some(DeflateParams {
            server_max_window_bits: Some(10),
            ..Default::default()
        })
    );
    // Duplicate parameter: declined, nothing else offered.
    assert_eq!(
        negotiate(
            "permessage-deflate; client_max_window_bits; client_max_window_bits",
            &cfg
        ),
        None
    );
    // Disabled: nothing.
    assert_eq!(
        negotiate("permessage-deflate", &DeflateConfig::default()),
        None
    );
    // Quoted values are allowed.
    assert_eq!(
        negotiate("permessage-deflate; server_max_window_bits=\"12\"", &cfg)
            .and_then(|p| p.server_max_window_bits),
        Some(12)
    );
}

#[test]
fn rfc7692_x_webkit_deflate_frame_is_declined_beside_permessage_deflate() {
    // The Chrome-era header of spec 1 L1215.
    let buf = upgrade("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits");
    let (req, _) = UpgradeRequest::parse(&buf).unwrap().unwrap();
    let names: Vec<_> = req.extensions().map(|e| e.name).collect();
    assert_eq!(names, ["x-webkit-deflate-frame", "permessage-deflate"]);
    let params = req.negotiate_deflate(&DeflateConfig::enabled()).unwrap();
    let mut out = Vec::new();
    write_accept(&req, None, Some(&params), &[], &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        "{text}"
    );
    assert!(!text.contains("x-webkit"));
    // x-webkit-deflate-frame alone: no extension at all, traffic uncompressed.
    let buf = upgrade("x-webkit-deflate-frame");
    let (req, _) = UpgradeRequest::parse(&buf).unwrap().unwrap();
    assert_eq!(req.negotiate_deflate(&DeflateConfig::enabled()), None);
}

#[test]
fn rfc7692_7_1_1_1_server_no_context_takeover_is_honoured() {
    let p = negotiate(
        "permessage-deflate; server_no_context_takeover",
        &DeflateConfig::enabled(),
    )
    .unwrap();
    assert!(p.server_no_context_takeover);
    assert_eq!(
        p.to_header_value(),
        "permessage-deflate; server_no_context_takeover"
    );
}

#[test]
fn rfc7692_7_1_2_window_bits() {
    let cfg = DeflateConfig {
        server_max_window_bits: 12,
        client_max_window_bits: 10,
        ..DeflateConfig::enabled()
    };
    // Offer allows 15: we announce our own smaller bound; client asked with no value: we ask
    // for 10.
    let p = negotiate("permessage-deflate; client_max_window_bits", &cfg).unwrap();
    assert_eq!(p.server_max_window_bits, Some(12));
    assert_eq!(p.client_max_window_bits, Some(10));
    // The offer limits us below our own preference: its value wins.
    let p = negotiate("permessage-deflate; server_max_window_bits=9", &cfg).unwrap();
    assert_eq!(p.server_max_window_bits, Some(9));
    // client_max_window_bits not offered: never in the response.
    assert_eq!(p.client_max_window_bits, None);
    // Offered value 8 (Autobahn 13.3): accepted and echoed.
    let p = negotiate(
        "permessage-deflate; client_max_window_bits; server_max_window_bits=8",
        &DeflateConfig::enabled(),
    )
    .unwrap();
    assert_eq!(
        p.to_header_value(),
        "permessage-deflate; server_max_window_bits=8"
    );
}

#[test]
fn rfc7692_window_bits_8_roundtrip() {
    // A server bound to an 8-bit window sends stored blocks, valid for any window.
    let params = DeflateParams {
        server_max_window_bits: Some(8),
        client_max_window_bits: Some(8),
        ..Default::default()
    };
    let msg = "abcabcabc ".repeat(300);
    for (mut tx, mut rx) in [
        (
            WebSocket::server(deflate_config(6), Some(params)),
            WebSocket::client(Config::default(), Some(params), [5; 16]),
        ),
        (
            WebSocket::client(deflate_config(6), Some(params), [5; 16]),
            WebSocket::server(Config::default(), Some(params)),
        ),
    ] {
        let mut out = Vec::new();
        for _ in 0..3 {
            tx.send_text(&msg, &mut out).unwrap();
        }
        let (events, _, err) = feed_all(&mut rx, &out);
        assert_eq!(err, None);
        assert_eq!(events.len(), 3);
        for e in events {
            assert_eq!(
                e,
                Owned::Message(MessageKind::Text, msg.clone().into_bytes())
            );
        }
    }
}

fn client_response(
    ext: Option<&str>,
    cfg: &DeflateConfig,
) -> Result<Option<DeflateParams>, ringwire_ws::WsError> {
    let mut req = Vec::new();
    let hs = ClientHandshake::new(
        &ClientRequest {
            host: "h",
            path: "/",
            origin: None,
            protocols: &[],
            deflate: Some(cfg),
            extra_headers: &[],
        },
        [9; 16],
        &mut req,
    )
    .unwrap();
    let mut resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        hs.expected_accept().as_str()
    );
    if let Some(e) = ext {
        resp.push_str(&format!("Sec-WebSocket-Extensions: {e}\r\n"));
    }
    resp.push_str("\r\n");
    let (r, _) = ServerResponse::parse(resp.as_bytes()).unwrap().unwrap();
    hs.verify(&r).map(|n| n.deflate)
}

#[test]
fn rfc7692_5_client_checks_the_response() {
    let cfg = DeflateConfig::enabled();
    assert_eq!(client_response(None, &cfg), Ok(None));
    assert_eq!(
        client_response(Some("permessage-deflate"), &cfg),
        Ok(Some(DeflateParams::default()))
    );
    assert_eq!(
        client_response(Some("permessage-deflate; client_max_window_bits=8"), &cfg),
        Ok(Some(DeflateParams {
            client_max_window_bits: Some(8),
            ..Default::default()
        }))
    );
    use ringwire_ws::WsError::*;
    // In a response client_max_window_bits needs a value.
    assert_eq!(
        client_response(Some("permessage-deflate; client_max_window_bits"), &cfg),
        Err(BadExtensionParams)
    );
    assert_eq!(
        client_response(Some("permessage-deflate; foo"), &cfg),
        Err(BadExtensionParams)
    );
    assert_eq!(
        client_response(Some("permessage-deflate, permessage-deflate"), &cfg),
        Err(BadExtensionParams)
    );
    assert_eq!(
        client_response(Some("x-webkit-deflate-frame"), &cfg),
        Err(UnsolicitedExtension)
    );
    // We asked the server for at most 10 bits and for no context takeover.
    let strict = DeflateConfig {
        server_max_window_bits: 10,
        server_no_context_takeover: true,
        ..DeflateConfig::enabled()
    };
    assert_eq!(
        client_response(
            Some("permessage-deflate; server_no_context_takeover"),
            &strict
        ),
        Err(BadExtensionParams)
    );
    assert_eq!(
        client_response(
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=11"),
            &strict
        ),
        Err(BadExtensionParams)
    );
    assert!(
        client_response(
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=9"),
            &strict
        )
        .is_ok()
    );
    // No deflate offered: any extension is unsolicited.
    let off = DeflateConfig::default();
    assert_eq!(
        client_response(Some("permessage-deflate"), &off),
        Err(UnsolicitedExtension)
    );
}

#[test]
fn rfc7692_client_offer_text() {
    assert_eq!(
        DeflateConfig::enabled().client_offer(),
        "permessage-deflate; client_max_window_bits"
    );
    let cfg = DeflateConfig {
        server_max_window_bits: 10,
        client_max_window_bits: 9,
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateConfig::enabled()
    };
    assert_eq!(
        cfg.client_offer(),
        "permessage-deflate; client_max_window_bits=9; server_max_window_bits=10; \
         server_no_context_takeover; client_no_context_takeover"
    );
}

/// The frames of tests/vectors/regress/deflate_empty_last_fragment.bin: a compressed message
/// whose last fragment is empty, then another compressed message (context takeover).
fn empty_last_fragment_wire() -> Vec<u8> {
    let mut ws = WebSocket::server(deflate_config(6), Some(DeflateParams::default()));
    let mut out = Vec::new();
    ws.send_fragment(MessageKind::Text, b"abc", false, &mut out)
        .unwrap();
    ws.send_fragment(MessageKind::Text, b"", true, &mut out)
        .unwrap();
    ws.send_text("abcabc", &mut out).unwrap();
    out
}

#[test]
fn regress_deflate_empty_last_fragment() {
    // zlib emits nothing for a sync flush without new input; the empty last fragment must
    // still carry the 0x00 header of an empty stored block (RFC 7692 §7.2.1), or the
    // receiver's appended 00 00 ff ff desynchronises the next message.
    let wire = read_vector_file("regress", "deflate_empty_last_fragment.bin");
    if std::env::var_os("RINGWIRE_REGEN").is_some() {
        std::fs::write(
            vectors_dir("regress").join("deflate_empty_last_fragment.bin"),
            empty_last_fragment_wire(),
        )
        .unwrap();
    }
    assert_eq!(empty_last_fragment_wire(), wire);
    let mut ws = WebSocket::client(Config::default(), Some(DeflateParams::default()), [0; 16]);
    let (events, _, err) = feed_all(&mut ws, &wire);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            Owned::Message(MessageKind::Text, b"abc".to_vec()),
            Owned::Message(MessageKind::Text, b"abcabc".to_vec()),
        ]
    );
}

#[test]
fn rfc7692_7_2_1_standalone_compression_for_broadcast() {
    use ringwire_ws::deflate::compress_standalone;
    assert_eq!(
        compress_standalone(b"Hello", 15, 6).unwrap(),
        hex("f2 48 cd c9 c9 07 00")
    );
    assert_eq!(compress_standalone(b"", 15, 6).unwrap(), [0x00]);
    // One payload, framed once, decodes at every receiver without server context takeover,
    // whatever window it negotiated; twice in a row, too.
    let msg = "broadcast ".repeat(100);
    for bits in [8, 9, 15] {
        let payload = compress_standalone(msg.as_bytes(), bits, 1).unwrap();
        let frame = [
            &server_frame(0xC1, &payload)[..],
            &server_frame(0xC1, &payload)[..],
        ]
        .concat();
        let params = DeflateParams {
            server_no_context_takeover: true,
            server_max_window_bits: Some(bits),
            ..Default::default()
        };
        let mut rx = WebSocket::client(Config::default(), Some(params), [0; 16]);
        let (events, _, err) = feed_all(&mut rx, &frame);
        assert_eq!(err, None);
        let want = Owned::Message(MessageKind::Text, msg.clone().into_bytes());
        assert_eq!(events, [want.clone(), want]);
    }
}
