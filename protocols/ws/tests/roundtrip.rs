//! Client-role encode → server-role decode (and back) for random messages: sizes across the
//! 7/16/64-bit length boundaries, text and binary, whole and fragmented, with and without
//! permessage-deflate (every parameter combination), delivered in random chunk sizes.

mod common;

use std::time::Instant;

use common::*;
use ringwire_ws::deflate::{DeflateConfig, DeflateParams};
use ringwire_ws::{CloseCode, Config, FragmentMode, MessageKind, WebSocket};

#[derive(Debug, Clone)]
enum Msg {
    Whole(MessageKind, Vec<u8>),
    Fragmented(MessageKind, Vec<Vec<u8>>),
    Ping(Vec<u8>),
}

fn random_messages(rng: &mut Rng, n: usize) -> Vec<Msg> {
    const SIZES: [usize; 10] = [0, 1, 125, 126, 127, 1000, 65535, 65536, 65537, 100_000];
    (0..n)
        .map(|_| {
            let len = if rng.below(4) == 0 {
                SIZES[rng.below(SIZES.len() as u64) as usize]
            } else {
                rng.below(3000) as usize
            };
            let (kind, data) = if rng.below(2) == 0 {
                let mut s = rng.text(len / 3 + 1);
                s.truncate(s.char_indices().nth(len).map_or(s.len(), |(i, _)| i));
                (MessageKind::Text, s.into_bytes())
            } else {
                // Compressible or not.
                let data = if rng.below(2) == 0 {
                    rng.bytes(len)
                } else {
                    b"abcdefgh".iter().copied().cycle().take(len).collect()
                };
                (MessageKind::Binary, data)
            };
            match rng.below(5) {
                0 => {
                    let n = rng.below(126) as usize;
                    Msg::Ping(rng.bytes(n))
                }
                1 | 2 => {
                    // Split anywhere, including inside a UTF-8 sequence, with empty pieces.
                    let mut pieces = Vec::new();
                    let mut rest = &data[..];
                    while !rest.is_empty() && pieces.len() < 8 {
                        let k = rng.below(rest.len() as u64 + 1) as usize;
                        pieces.push(rest[..k].to_vec());
                        rest = &rest[k..];
                    }
                    pieces.push(rest.to_vec());
                    Msg::Fragmented(kind, pieces)
                }
                _ => Msg::Whole(kind, data),
            }
        })
        .collect()
}

fn encode(tx: &mut WebSocket, msgs: &[Msg]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        match m {
            Msg::Whole(kind, data) => tx.send_message(*kind, data, &mut out).unwrap(),
            Msg::Ping(p) => tx.ping(p, &mut out).unwrap(),
            Msg::Fragmented(kind, pieces) => {
                for (i, p) in pieces.iter().enumerate() {
                    tx.send_fragment(*kind, p, i + 1 == pieces.len(), &mut out)
                        .unwrap();
                }
            }
        }
    }
    tx.close(Instant::now(), CloseCode::NORMAL, "done", &mut out)
        .unwrap();
    out
}

fn expected(msgs: &[Msg]) -> Vec<Owned> {
    let mut v: Vec<Owned> = msgs
        .iter()
        .map(|m| match m {
            Msg::Whole(k, d) => Owned::Message(*k, d.clone()),
            Msg::Fragmented(k, p) => Owned::Message(*k, p.concat()),
            Msg::Ping(p) => Owned::Ping(p.clone()),
        })
        .collect();
    v.push(Owned::Close(Some(1000), "done".into()));
    v
}

/// Folds streamed fragments back into messages so both modes compare alike.
fn join_fragments(events: Vec<Owned>) -> Vec<Owned> {
    let mut out = Vec::new();
    let mut acc: Option<(MessageKind, Vec<u8>)> = None;
    for e in events {
        match e {
            Owned::Fragment(k, d, fin, received) => {
                let (_, buf) = acc.get_or_insert((k, Vec::new()));
                buf.extend_from_slice(&d);
                assert_eq!(received, buf.len() as u64);
                if fin {
                    let (k, b) = acc.take().unwrap();
                    out.push(Owned::Message(k, b));
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn deflate_variants() -> Vec<Option<DeflateParams>> {
    let mut v = vec![None];
    for snct in [false, true] {
        for cnct in [false, true] {
            for bits in [None, Some(8), Some(9), Some(12)] {
                v.push(Some(DeflateParams {
                    server_no_context_takeover: snct,
                    client_no_context_takeover: cnct,
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                }));
            }
        }
    }
    v
}

fn sender_config(rng: &mut Rng) -> Config {
    Config {
        deflate: DeflateConfig {
            compress_threshold: rng.below(200) as usize,
            level: rng.below(10) as u32,
            ..DeflateConfig::enabled()
        },
        ..Config::default()
    }
}

fn receiver_config(rng: &mut Rng) -> Config {
    Config {
        fragment_mode: if rng.below(2) == 0 {
            FragmentMode::Reassemble
        } else {
            FragmentMode::Stream
        },
        ..Config::default()
    }
}

#[test]
fn client_to_server_random() {
    let mut rng = Rng::new(2024);
    for (i, params) in deflate_variants().into_iter().enumerate() {
        for round in 0..3 {
            let msgs = random_messages(&mut rng, 25);
            let mut tx = WebSocket::client(sender_config(&mut rng), params, [i as u8; 16]);
            let wire = encode(&mut tx, &msgs);
            let mut rx = WebSocket::server(receiver_config(&mut rng), params);
            let chunk = [usize::MAX, 1 + rng.below(5000) as usize][round % 2];
            let (events, err) = if chunk == usize::MAX {
                let (e, consumed, err) = feed_all(&mut rx, &wire);
                assert_eq!(consumed, wire.len());
                (e, err)
            } else {
                feed_chunked(&mut rx, &wire, chunk)
            };
            assert_eq!(err, None, "{params:?} round {round}");
            assert_eq!(
                join_fragments(events),
                expected(&msgs),
                "{params:?} round {round}"
            );
            // The server answered every ping and the close.
            let mut out = Vec::new();
            rx.poll_transmit(&mut out);
            assert_eq!(last_close_code(&out), Some(1000));
        }
    }
}

#[test]
fn server_to_client_random() {
    let mut rng = Rng::new(4048);
    for params in deflate_variants() {
        let msgs = random_messages(&mut rng, 25);
        let mut tx = WebSocket::server(sender_config(&mut rng), params);
        let wire = encode(&mut tx, &msgs);
        let mut rx = WebSocket::client(receiver_config(&mut rng), params, [0; 16]);
        let (events, err) = feed_chunked(&mut rx, &wire, 1 + rng.below(3000) as usize);
        assert_eq!(err, None, "{params:?}");
        assert_eq!(join_fragments(events), expected(&msgs), "{params:?}");
    }
}

#[test]
fn echo_both_ways_keeps_context() {
    // Long conversation with context takeover both ways: each side's inflater must follow the
    // other's compressor across many messages.
    let params = Some(DeflateParams::default());
    let cfg = || Config {
        deflate: DeflateConfig {
            compress_threshold: 0,
            ..DeflateConfig::enabled()
        },
        ..Config::default()
    };
    let mut client = WebSocket::client(cfg(), params, [8; 16]);
    let mut server = WebSocket::server(cfg(), params);
    let mut rng = Rng::new(1);
    for _ in 0..200 {
        let n = 1 + rng.below(200) as usize;
        let msg = rng.text(n);
        let mut c2s = Vec::new();
        client.send_text(&msg, &mut c2s).unwrap();
        let mut buf = c2s.clone();
        let r = server.handle_read(Instant::now(), &mut buf).unwrap();
        assert_eq!(r.consumed, c2s.len());
        let ev = r.event.unwrap();
        assert_eq!(ev.text(), Some(msg.as_str()));
        let mut s2c = Vec::new();
        server.send_text(ev.text().unwrap(), &mut s2c).unwrap();
        let r = client.handle_read(Instant::now(), &mut s2c).unwrap();
        assert_eq!(r.event.unwrap().text(), Some(msg.as_str()));
    }
}
