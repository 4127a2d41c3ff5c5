//! The connection state machine: fragmentation, control frames, UTF-8, the closing handshake.
//! Many cases mirror Autobahn sections (named in each test).

mod common;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use common::*;
use ringwire_ws::{
    CloseCode, Config, DeflateParams, FragmentMode, MessageKind, State, WebSocket, WsError, WsEvent,
};

const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

fn server() -> WebSocket {
    WebSocket::server(Config::default(), None)
}

fn text(s: &str) -> Owned {
    Owned::Message(MessageKind::Text, s.as_bytes().to_vec())
}

/// Feeds `input` to a fresh server and returns events, error and what it transmitted.
fn run_server(input: &[u8]) -> (Vec<Owned>, Option<WsError>, Vec<u8>) {
    let mut ws = server();
    let (events, _, err) = feed_all(&mut ws, input);
    let mut out = Vec::new();
    ws.poll_transmit(&mut out);
    (events, err, out)
}

fn expect_fail(input: &[u8], err: WsError, code: u16) {
    let (_, e, out) = run_server(input);
    assert_eq!(e, Some(err));
    assert_eq!(last_close_code(&out), Some(code), "{err:?}");
}

#[test]
fn rfc6455_5_4_control_frame_between_fragments() {
    // Autobahn 5.6: text fragment, ping, continuation.
    let mut input = client_frame(0x01, b"Hel", KEY);
    input.extend(client_frame(0x89, b"ping!", KEY));
    input.extend(client_frame(0x80, b"lo", KEY));
    let (events, err, out) = run_server(&input);
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Ping(b"ping!".to_vec()), text("Hello")]);
    assert_eq!(out, server_frame(0x8A, b"ping!"));
}

#[test]
fn rfc6455_5_4_empty_fragments() {
    // Autobahn 5.18-like empty continuation frames, then an empty final one.
    let mut input = client_frame(0x01, b"", KEY);
    input.extend(client_frame(0x00, b"a", KEY));
    input.extend(client_frame(0x00, b"", KEY));
    input.extend(client_frame(0x80, b"", KEY));
    let (events, err, _) = run_server(&input);
    assert_eq!(err, None);
    assert_eq!(events, [text("a")]);
}

#[test]
fn rfc6455_5_4_continuation_without_message() {
    // Autobahn 5.9
    expect_fail(
        &client_frame(0x80, b"x", KEY),
        WsError::UnexpectedContinuation,
        1002,
    );
}

#[test]
fn rfc6455_5_4_new_message_inside_fragmented_one() {
    let mut input = client_frame(0x01, b"a", KEY);
    input.extend(client_frame(0x81, b"b", KEY));
    expect_fail(&input, WsError::ExpectedContinuation, 1002);
}

#[test]
fn rfc6455_5_2_reserved_opcodes_close_1002() {
    // Autobahn 4.1.x / 4.2.x
    for op in (0x3..=0x7u8).chain(0xB..=0xF) {
        expect_fail(
            &client_frame(0x80 | op, b"", KEY),
            WsError::ReservedOpcode(op),
            1002,
        );
    }
}

#[test]
fn rfc6455_5_2_reserved_bits_close_1002() {
    // Autobahn 3.x: RSV1 without deflate, RSV2, RSV3, on data and control frames.
    for b0 in [0xC1, 0xA1, 0x91, 0xF1, 0xC9, 0xA9] {
        expect_fail(&client_frame(b0, b"x", KEY), WsError::ReservedBits, 1002);
    }
}

#[test]
fn autobahn_3_2_message_delivered_before_bad_frame() {
    let mut input = client_frame(0x81, b"Hello", KEY);
    input.extend(client_frame(0xA1, b"Hello", KEY));
    input.extend(client_frame(0x89, b"", KEY));
    let (events, err, out) = run_server(&input);
    assert_eq!(events, [text("Hello")]);
    assert_eq!(err, Some(WsError::ReservedBits));
    // No pong for the ping after the bad frame: only the close.
    assert_eq!(out, server_frame(0x88, &1002u16.to_be_bytes()));
}

#[test]
fn rfc6455_5_7_rsv1_with_deflate_rules() {
    let mut ws = WebSocket::server(Config::default(), Some(DeflateParams::default()));
    // RSV1 on a continuation frame.
    let mut input = client_frame(0x41, &[0xf2, 0x48], KEY);
    input.extend(client_frame(0xC0, &[0xcd], KEY));
    let (_, _, err) = feed_all(&mut ws, &input);
    assert_eq!(err, Some(WsError::ReservedBits));
    // RSV1 on a ping.
    let mut ws = WebSocket::server(Config::default(), Some(DeflateParams::default()));
    let (_, _, err) = feed_all(&mut ws, &client_frame(0xC9, b"", KEY));
    assert_eq!(err, Some(WsError::ReservedBits));
}

#[test]
fn rfc6455_5_1_masking_direction() {
    expect_fail(&server_frame(0x81, b"x"), WsError::UnmaskedFrame, 1002);
    let mut client = WebSocket::client(Config::default(), None, [0; 16]);
    let (_, _, err) = feed_all(&mut client, &client_frame(0x81, b"x", KEY));
    assert_eq!(err, Some(WsError::MaskedFrame));
    let mut out = Vec::new();
    client.poll_transmit(&mut out);
    assert_eq!(last_close_code(&out), Some(1002));
    // The client's close frame is masked.
    assert_eq!(out[1] & 0x80, 0x80);
}

#[test]
fn rfc6455_5_5_control_frame_rules() {
    // Autobahn 2.5: ping with 126 bytes.
    expect_fail(
        &client_frame(0x89, &[0; 126], KEY),
        WsError::ControlFrameTooLong,
        1002,
    );
    // Autobahn 5.1 / 5.2: fragmented ping / pong.
    expect_fail(
        &client_frame(0x09, b"", KEY),
        WsError::FragmentedControlFrame,
        1002,
    );
    expect_fail(
        &client_frame(0x0A, b"", KEY),
        WsError::FragmentedControlFrame,
        1002,
    );
    // 125 is fine.
    let (events, err, out) = run_server(&client_frame(0x89, &[7; 125], KEY));
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Ping(vec![7; 125])]);
    assert_eq!(out, server_frame(0x8A, &[7; 125]));
}

#[test]
fn autobahn_2_10_every_ping_answered() {
    let mut input = Vec::new();
    for i in 0..10u8 {
        input.extend(client_frame(0x89, &[i; 10], KEY));
    }
    let (events, err, out) = run_server(&input);
    assert_eq!(err, None);
    assert_eq!(events.len(), 10);
    let mut want = Vec::new();
    for i in 0..10u8 {
        want.extend(server_frame(0x8A, &[i; 10]));
    }
    assert_eq!(out, want);
}

#[test]
fn rfc6455_8_1_invalid_utf8_fails_at_the_bad_fragment() {
    // Autobahn 6.4.1: the second fragment holds U+110000 (F4 90 80 80); the third never
    // needs to arrive.
    let mut input = client_frame(0x01, "κόσμε".as_bytes(), KEY);
    input.extend(client_frame(0x00, &[0xF4, 0x90, 0x80, 0x80], KEY));
    let (events, err, out) = run_server(&input);
    assert_eq!(events, []);
    assert_eq!(err, Some(WsError::InvalidUtf8));
    assert_eq!(last_close_code(&out), Some(1007));
}

#[test]
fn autobahn_6_4_3_invalid_utf8_fails_inside_a_partial_frame() {
    // One frame, sent in chops: the second chop holds the invalid sequence. The connection
    // fails before the frame is complete.
    let payload: Vec<u8> = [
        "κόσμε".as_bytes(),
        &[0xF4, 0x90, 0x80, 0x80],
        "edited".as_bytes(),
    ]
    .concat();
    let frame = client_frame(0x81, &payload, KEY);
    let first_chop = 6 + "κόσμε".len();
    let mut ws = server();
    let mut buf = frame[..first_chop].to_vec();
    let r = ws.handle_read(Instant::now(), &mut buf).unwrap();
    assert_eq!((r.consumed, r.event), (0, None));
    // The chop was unmasked in place; the engine keeps it and appends the next chop.
    buf.extend_from_slice(&frame[first_chop..first_chop + 4]);
    assert_eq!(
        ws.handle_read(Instant::now(), &mut buf),
        Err(WsError::InvalidUtf8)
    );
    assert_eq!(ws.state(), State::Closed);
}

#[test]
fn valid_text_arriving_byte_by_byte() {
    // The partial-frame unmasking must not disturb a valid message.
    let msg = "Hello-µ@ßöäüàá-UTF-8!! 𝄞 κόσμε";
    let mut input = client_frame(0x81, msg.as_bytes(), KEY);
    input.extend(client_frame(0x01, &msg.as_bytes()[..7], KEY));
    input.extend(client_frame(0x80, &msg.as_bytes()[7..], KEY));
    let mut ws = server();
    let (events, err) = feed_chunked(&mut ws, &input, 1);
    assert_eq!(err, None);
    assert_eq!(events, [text(msg), text(msg)]);
}

#[test]
fn large_binary_frames_unmasked_as_they_arrive() {
    // A masked frame past 64 KiB is unmasked piece by piece as its bytes come: the pieces
    // end at any offset modulo the 4-byte key, and a message may be fragmented.
    let payload: Vec<u8> = (0..200_003u32).map(|i| (i * 31 % 251) as u8).collect();
    let bin = |d: &[u8]| Owned::Message(MessageKind::Binary, d.to_vec());
    let frame = client_frame(0x82, &payload, KEY);
    let header_len = 2 + 8 + 4;

    // The bytes of an incomplete large frame are unmasked in place, once each.
    let mut ws = server();
    let first_chop = header_len + 70_001;
    let mut buf = frame[..first_chop].to_vec();
    let r = ws.handle_read(Instant::now(), &mut buf).unwrap();
    assert_eq!((r.consumed, r.event), (0, None));
    assert_eq!(&buf[header_len..], &payload[..70_001]);
    buf.extend_from_slice(&frame[first_chop..first_chop + 3]);
    let r = ws.handle_read(Instant::now(), &mut buf).unwrap();
    assert_eq!((r.consumed, r.event), (0, None));
    assert_eq!(&buf[header_len..], &payload[..70_004]);
    buf.extend_from_slice(&frame[first_chop + 3..]);
    let r = ws.handle_read(Instant::now(), &mut buf).unwrap();
    assert_eq!(r.consumed, frame.len());
    assert_eq!(r.event.as_ref().map(own), Some(bin(&payload)));

    // A shorter frame is left as it came until it is complete.
    let short = client_frame(0x82, &payload[..1000], KEY);
    let mut ws = server();
    let mut buf = short[..500].to_vec();
    let r = ws.handle_read(Instant::now(), &mut buf).unwrap();
    assert_eq!((r.consumed, r.event), (0, None));
    assert_eq!(buf, &short[..500]);

    // Whole frames, fragments of a message (large first, then large and small continuations)
    // and a text frame between them, fed in pieces of several sizes.
    let mut input = frame.clone();
    input.extend(client_frame(0x02, &payload[..100_000], KEY));
    input.extend(client_frame(0x00, &payload[100_000..190_000], KEY));
    input.extend(client_frame(0x80, &payload[190_000..], KEY));
    input.extend(client_frame(0x81, b"after", KEY));
    input.extend(client_frame(0x82, &payload[..66_000], KEY));
    let want = [
        bin(&payload),
        bin(&payload),
        text("after"),
        bin(&payload[..66_000]),
    ];
    for chunk in [1, 3, 4093, 65_536, 1 << 20] {
        let mut ws = server();
        let (events, err) = feed_chunked(&mut ws, &input, chunk);
        assert_eq!(err, None, "chunk {chunk}");
        assert_eq!(events, want, "chunk {chunk}");
    }
}

#[test]
fn rfc6455_8_1_code_point_split_across_fragments() {
    let bytes = "a𝄞b".as_bytes();
    for split in 0..=bytes.len() {
        let mut input = client_frame(0x01, &bytes[..split], KEY);
        input.extend(client_frame(0x80, &bytes[split..], KEY));
        let (events, err, _) = run_server(&input);
        assert_eq!((events, err), (vec![text("a𝄞b")], None), "split {split}");
    }
}

#[test]
fn rfc6455_8_1_truncated_code_point_at_message_end() {
    let mut input = client_frame(0x01, b"a", KEY);
    input.extend(client_frame(0x80, &[0xE2, 0x82], KEY));
    expect_fail(&input, WsError::InvalidUtf8, 1007);
    expect_fail(
        &client_frame(0x81, &[0xE2, 0x82], KEY),
        WsError::InvalidUtf8,
        1007,
    );
}

#[test]
fn validate_utf8_off_delivers_bytes() {
    let cfg = Config {
        validate_utf8: false,
        ..Config::default()
    };
    let mut ws = WebSocket::server(cfg, None);
    let (events, _, err) = feed_all(&mut ws, &client_frame(0x81, &[0xFF], KEY));
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Message(MessageKind::Text, vec![0xFF])]);
}

#[test]
fn single_frame_message_borrows_the_input() {
    let mut buf = client_frame(0x82, &[1, 2, 3, 4, 5], KEY);
    let range = buf.as_ptr_range();
    let mut ws = server();
    let r = ws.handle_read(Instant::now(), &mut buf).unwrap();
    match r.event {
        Some(WsEvent::Message {
            data: Cow::Borrowed(d),
            ..
        }) => {
            assert!(range.contains(&d.as_ptr()));
            assert_eq!(d, [1, 2, 3, 4, 5]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn spec_2_17_stream_mode_one_megabyte_in_1000_fragments() {
    let cfg = Config {
        fragment_mode: FragmentMode::Stream,
        ..Config::default()
    };
    let mut rng = Rng::new(17);
    let msg = rng.bytes(1_000_000);
    let mut input = Vec::new();
    for (i, chunk) in msg.chunks(1000).enumerate() {
        let b0 = match (i, i == 999) {
            (0, _) => 0x02,
            (_, true) => 0x80,
            _ => 0x00,
        };
        input.extend(client_frame(b0, chunk, KEY));
    }
    let mut ws = WebSocket::server(cfg, None);
    let (events, _, err) = feed_all(&mut ws, &input);
    assert_eq!(err, None);
    assert_eq!(events.len(), 1000);
    let mut joined = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let Owned::Fragment(MessageKind::Binary, data, fin, received) = e else {
            panic!("{e:?}")
        };
        joined.extend_from_slice(data);
        assert_eq!(*fin, i == 999);
        assert_eq!(*received, joined.len() as u64);
    }
    assert_eq!(*events.last().unwrap(), {
        let Owned::Fragment(k, d, _, _) = events.last().unwrap().clone() else {
            unreachable!()
        };
        Owned::Fragment(k, d, true, 1_000_000)
    });
    assert_eq!(joined, msg);
}

#[test]
fn stream_mode_compressed_fragments() {
    let cfg = Config {
        fragment_mode: FragmentMode::Stream,
        ..Config::default()
    };
    let sender_cfg = Config {
        deflate: ringwire_ws::DeflateConfig {
            compress_threshold: 0,
            ..ringwire_ws::DeflateConfig::enabled()
        },
        ..Config::default()
    };
    let mut tx = WebSocket::client(sender_cfg, Some(DeflateParams::default()), [1; 16]);
    let mut out = Vec::new();
    let text_msg = "stream me ".repeat(500);
    let pieces: Vec<&[u8]> = text_msg.as_bytes().chunks(333).collect();
    for (i, p) in pieces.iter().enumerate() {
        tx.send_fragment(MessageKind::Text, p, i + 1 == pieces.len(), &mut out)
            .unwrap();
    }
    let mut rx = WebSocket::server(cfg, Some(DeflateParams::default()));
    let (events, _, err) = feed_all(&mut rx, &out);
    assert_eq!(err, None);
    let mut joined = Vec::new();
    for e in &events {
        let Owned::Fragment(MessageKind::Text, d, _, received) = e else {
            panic!("{e:?}")
        };
        joined.extend_from_slice(d);
        assert_eq!(*received, joined.len() as u64);
    }
    assert_eq!(joined, text_msg.as_bytes());
}

// ---- closing handshake --------------------------------------------------------------------

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason].concat()
}

#[test]
fn rfc6455_5_5_1_close_is_echoed() {
    // Autobahn 7.7.x: valid codes.
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let mut ws = server();
        let (events, _, err) = feed_all(
            &mut ws,
            &client_frame(0x88, &close_payload(code, b"bye"), KEY),
        );
        assert_eq!(err, None);
        assert_eq!(events, [Owned::Close(Some(code), "bye".into())]);
        assert_eq!(ws.state(), State::CloseReceived);
        let mut out = Vec::new();
        assert!(ws.poll_transmit(&mut out));
        assert_eq!(last_close_code(&out), Some(code));
        assert_eq!(ws.state(), State::Closed);
        assert!(ws.is_closed());
    }
}

#[test]
fn rfc6455_7_4_invalid_close_codes() {
    // Autobahn 7.9.x plus 1015 and 5000.
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        expect_fail(
            &client_frame(0x88, &close_payload(code, b""), KEY),
            WsError::InvalidCloseCode(code),
            1002,
        );
    }
}

#[test]
fn rfc6455_5_5_1_close_payload_rules() {
    // Autobahn 7.3.1: empty close -> clean close with 1000.
    let (events, err, out) = run_server(&client_frame(0x88, b"", KEY));
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Close(None, String::new())]);
    assert_eq!(last_close_code(&out), Some(1000));
    // Autobahn 7.3.2: one byte -> 1002.
    expect_fail(
        &client_frame(0x88, b"\x03", KEY),
        WsError::CloseFrameTooShort,
        1002,
    );
    // Autobahn 7.5.1: invalid UTF-8 reason -> 1007.
    expect_fail(
        &client_frame(
            0x88,
            &close_payload(
                1000,
                &[
                    0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0,
                    0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64,
                ],
            ),
            KEY,
        ),
        WsError::InvalidCloseReason,
        1007,
    );
    // Autobahn 7.3.5/7.3.6: 123-byte reason is fine.
    let (events, err, _) = run_server(&client_frame(0x88, &close_payload(1000, &[b'x'; 123]), KEY));
    assert_eq!(err, None);
    assert_eq!(events.len(), 1);
}

#[test]
fn rfc6455_5_5_1_nothing_after_close_received() {
    // Autobahn 7.1.2 / 7.1.3: a close then a message / a ping: ignored.
    let mut input = client_frame(0x88, &close_payload(1000, b""), KEY);
    input.extend(client_frame(0x81, b"after", KEY));
    input.extend(client_frame(0x89, b"ping", KEY));
    let mut ws = server();
    let (events, consumed, err) = feed_all(&mut ws, &input);
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Close(Some(1000), String::new())]);
    let mut rest = input[consumed..].to_vec();
    let len = rest.len();
    let r = ws.handle_read(Instant::now(), &mut rest).unwrap();
    assert_eq!((r.consumed, r.event), (len, None));
    let mut out = Vec::new();
    ws.poll_transmit(&mut out);
    assert_eq!(out, server_frame(0x88, &1000u16.to_be_bytes()));
    let mut out = Vec::new();
    assert_eq!(ws.send_text("no", &mut out), Err(WsError::Closed));
    assert_eq!(ws.ping(b"", &mut out), Err(WsError::Closed));
}

#[test]
fn rfc6455_7_closing_handshake_we_start() {
    let t0 = Instant::now();
    let mut ws = server();
    let mut out = Vec::new();
    ws.close(t0, CloseCode::GOING_AWAY, "shutdown", &mut out)
        .unwrap();
    assert_eq!(out, server_frame(0x88, &close_payload(1001, b"shutdown")));
    assert_eq!(ws.state(), State::CloseSent);
    assert_eq!(ws.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    // No data after our close; a second close is a no-op.
    assert_eq!(ws.send_binary(b"x", &mut out), Err(WsError::Closed));
    ws.close(t0, CloseCode::NORMAL, "", &mut out).unwrap();
    // Data from the peer is checked but not delivered; its pings are still answered.
    let mut input = client_frame(0x81, b"late", KEY);
    input.extend(client_frame(0x89, b"p", KEY));
    input.extend(client_frame(0x88, &close_payload(1001, b""), KEY));
    let (events, _, err) = feed_all(&mut ws, &input);
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Close(Some(1001), String::new())]);
    assert_eq!(ws.state(), State::Closed);
    assert_eq!(ws.poll_timeout(), None);
    let mut out = Vec::new();
    ws.poll_transmit(&mut out);
    assert_eq!(out, server_frame(0x8A, b"p"));
    assert!(ws.is_closed());
}

#[test]
fn close_timeout_fires() {
    let t0 = Instant::now();
    let cfg = Config {
        close_timeout: Duration::from_millis(250),
        ..Config::default()
    };
    let mut ws = WebSocket::client(cfg, None, [2; 16]);
    let mut out = Vec::new();
    ws.close(t0, CloseCode::NORMAL, "", &mut out).unwrap();
    let deadline = ws.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Duration::from_millis(250));
    ws.handle_timeout(t0 + Duration::from_millis(249));
    assert_eq!(ws.state(), State::CloseSent);
    ws.handle_timeout(deadline);
    assert_eq!(ws.state(), State::Closed);
    assert_eq!(ws.poll_timeout(), None);
}

#[test]
fn close_argument_checks() {
    let t0 = Instant::now();
    let mut ws = server();
    let mut out = Vec::new();
    assert_eq!(
        ws.close(t0, CloseCode(1005), "", &mut out),
        Err(WsError::CloseCodeNotSendable(1005))
    );
    assert_eq!(
        ws.close(t0, CloseCode::NORMAL, &"x".repeat(124), &mut out),
        Err(WsError::ControlPayloadTooLong)
    );
    assert_eq!(
        ws.ping(&[0; 126], &mut out),
        Err(WsError::ControlPayloadTooLong)
    );
    assert!(out.is_empty());
    assert_eq!(ws.state(), State::Open);
    ws.close(t0, CloseCode::NORMAL, &"x".repeat(123), &mut out)
        .unwrap();
}

#[test]
fn send_fragment_rules() {
    let mut ws = server();
    let mut out = Vec::new();
    ws.send_fragment(MessageKind::Text, b"a", false, &mut out)
        .unwrap();
    assert_eq!(ws.send_text("b", &mut out), Err(WsError::MessageInProgress));
    assert_eq!(
        ws.send_fragment(MessageKind::Binary, b"b", true, &mut out),
        Err(WsError::MessageInProgress)
    );
    ws.ping(b"between", &mut out).unwrap();
    ws.send_fragment(MessageKind::Text, b"c", true, &mut out)
        .unwrap();
    let mut client = WebSocket::client(Config::default(), None, [0; 16]);
    let (events, _, err) = feed_all(&mut client, &out);
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Ping(b"between".to_vec()), text("ac")]);
}

#[test]
fn client_frames_are_masked_with_changing_keys() {
    let mut ws = WebSocket::client(Config::default(), None, [42; 16]);
    let mut out = Vec::new();
    ws.send_text("Hello", &mut out).unwrap();
    ws.send_text("Hello", &mut out).unwrap();
    assert_eq!(out[1], 0x85);
    assert_ne!(out[2..6], out[13..17], "masking keys repeat");
    let mut srv = server();
    let (events, _, err) = feed_all(&mut srv, &out);
    assert_eq!(err, None);
    assert_eq!(events, [text("Hello"), text("Hello")]);
}

#[test]
fn send_header_for_vectored_writes() {
    let mut ws = WebSocket::client(Config::default(), None, [7; 16]);
    let mut payload = b"vectored".to_vec();
    let header = ws.send_header(MessageKind::Binary, &mut payload).unwrap();
    assert_ne!(payload, b"vectored", "client payload is masked in place");
    let wire = [&header[..], &payload].concat();
    let mut srv = server();
    let (events, _, err) = feed_all(&mut srv, &wire);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [Owned::Message(MessageKind::Binary, b"vectored".to_vec())]
    );
}

#[test]
fn send_header_unmasked_for_shared_payloads() {
    let mut srv = server();
    let payload = vec![9u8; 70_000];
    let header = srv
        .send_header_unmasked(MessageKind::Text, payload.len())
        .unwrap()
        .expect("a server's frames are unmasked");
    // FIN + text, 127 = 64-bit length, 70000 big-endian.
    assert_eq!(&header[..], [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    let mut client = WebSocket::client(Config::default(), None, [7; 16]);
    let (events, _, err) = feed_all(&mut client, &[&header[..], &payload].concat());
    assert_eq!(err, None);
    assert_eq!(events, [Owned::Message(MessageKind::Text, payload)]);
    // A client must mask: no unmasked header for it.
    assert_eq!(
        client.send_header_unmasked(MessageKind::Binary, 3),
        Ok(None)
    );
    // Not inside a fragmented message, not after Close.
    let mut out = Vec::new();
    srv.send_fragment(MessageKind::Binary, b"a", false, &mut out)
        .unwrap();
    assert_eq!(
        srv.send_header_unmasked(MessageKind::Binary, 1),
        Err(WsError::MessageInProgress)
    );
    srv.close(Instant::now(), CloseCode::NORMAL, "", &mut out)
        .unwrap();
    assert_eq!(
        srv.send_header_unmasked(MessageKind::Binary, 1),
        Err(WsError::Closed)
    );
}

#[test]
fn recycle_reuses_the_reassembly_buffer() {
    let mut ws = server();
    let mut input = client_frame(0x02, &[1; 100], KEY);
    input.extend(client_frame(0x80, &[2; 100], KEY));
    let mut buf = input.clone();
    let r = ws.handle_read(Instant::now(), &mut buf).unwrap();
    let Some(WsEvent::Message {
        data: Cow::Owned(v),
        ..
    }) = r.event
    else {
        panic!()
    };
    let cap = v.capacity();
    let ptr = v.as_ptr();
    ws.recycle(v);
    let mut buf = input.clone();
    let r = ws.handle_read(Instant::now(), &mut buf).unwrap();
    let Some(WsEvent::Message {
        data: Cow::Owned(v),
        ..
    }) = r.event
    else {
        panic!()
    };
    assert_eq!(v.as_ptr(), ptr);
    assert!(v.capacity() >= cap);
}
