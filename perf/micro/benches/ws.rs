//! divan micro-benchmarks of `ringwire-ws` (perf/README.md): `cargo bench` in perf/micro.
//!
//! Sizes: 20 B, 512 B, 16 KiB and 1 MiB payloads (the benchmark cases of bench/). Throughput
//! is reported in bytes per second of payload.

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use ringwire_ws::deflate::compress_standalone;
use ringwire_ws::frame::{Frame, FrameHeader, FrameRules, OpCode, Role};
use ringwire_ws::mask;
use ringwire_ws::{Config, DeflateParams, MessageKind, WebSocket};
use std::time::Instant;

const SIZES: &[usize] = &[20, 512, 16 * 1024, 1 << 20];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn main() {
    divan::main();
}

/// Printable ASCII with some 2- and 3-byte UTF-8 sequences: valid text, not pure ASCII.
fn text(len: usize) -> Vec<u8> {
    let unit = "websocket ringwire é ü 漢字 ".as_bytes();
    let mut v: Vec<u8> = unit.iter().copied().cycle().take(len).collect();
    // cut back to a char boundary, then pad with ASCII
    while std::str::from_utf8(&v).is_err() {
        v.pop();
    }
    v.resize(len, b'a');
    v
}

/// A masked client frame carrying `len` payload bytes.
fn client_frame(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 14);
    FrameHeader {
        fin: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::Binary,
        mask: Some(KEY),
        payload_len: len as u64,
    }
    .write_to(&mut out);
    let start = out.len();
    out.extend_from_slice(&text(len));
    mask::apply_mask(&mut out[start..], KEY);
    out
}

mod frame {
    use super::*;

    /// Header parse, rule check and in-place unmask of one whole masked frame.
    #[divan::bench(args = SIZES)]
    fn parse(b: Bencher, len: usize) {
        let wire = client_frame(len);
        let rules = FrameRules {
            role: Role::Server,
            allow_rsv1: false,
            max_payload: u64::MAX,
        };
        let mut buf = wire.clone();
        b.counter(BytesCount::new(len)).bench_local(|| {
            // Parsing unmasks in place; parsing again re-masks, so the input stays valid.
            let r = Frame::parse(black_box(&mut buf), &rules);
            black_box(r.map(|f| f.map(|(f, n)| (f.payload.len(), n))))
        });
    }

    /// Header encode (unmasked server frame), then the payload appended: what an echo writes.
    #[divan::bench(args = SIZES)]
    fn encode(b: Bencher, len: usize) {
        let payload = text(len);
        let mut out = Vec::with_capacity(len + 14);
        b.counter(BytesCount::new(len)).bench_local(|| {
            out.clear();
            FrameHeader {
                fin: true,
                rsv1: false,
                rsv2: false,
                rsv3: false,
                opcode: OpCode::Binary,
                mask: None,
                payload_len: len as u64,
            }
            .write_to(&mut out);
            out.extend_from_slice(black_box(&payload));
            black_box(out.len())
        });
    }

    /// A whole server-side receive: `WebSocket::handle_read` of one masked binary frame.
    #[divan::bench(args = SIZES)]
    fn handle_read_binary(b: Bencher, len: usize) {
        let wire = client_frame(len);
        let mut ws = WebSocket::server(Config::default(), None);
        let now = Instant::now();
        b.counter(BytesCount::new(len))
            .with_inputs(|| wire.clone())
            .bench_local_refs(|buf| {
                let r = ws.handle_read(now, buf).map(|r| r.consumed);
                black_box(r)
            });
    }
}

mod unmask {
    use super::*;

    fn run(b: Bencher, len: usize, f: fn(&mut [u8], [u8; 4])) {
        let mut buf = text(len);
        b.counter(BytesCount::new(len))
            .bench_local(|| f(black_box(&mut buf), black_box(KEY)));
    }

    #[divan::bench(args = SIZES)]
    fn scalar(b: Bencher, len: usize) {
        run(b, len, mask::mask_scalar);
    }
    #[divan::bench(args = SIZES)]
    fn words(b: Bencher, len: usize) {
        run(b, len, mask::mask_words);
    }
    #[divan::bench(args = SIZES)]
    fn sse2(b: Bencher, len: usize) {
        run(b, len, mask::mask_sse2);
    }
    #[divan::bench(args = SIZES)]
    fn avx2(b: Bencher, len: usize) {
        run(b, len, mask::mask_avx2);
    }
    /// What the codec calls: the best path for this CPU, chosen at run time.
    #[divan::bench(args = SIZES)]
    fn dispatch(b: Bencher, len: usize) {
        run(b, len, mask::apply_mask);
    }
    /// The floor: copying the same bytes.
    #[divan::bench(args = SIZES)]
    fn memcpy(b: Bencher, len: usize) {
        let src = text(len);
        let mut dst = vec![0u8; len];
        b.counter(BytesCount::new(len))
            .bench_local(|| dst.copy_from_slice(black_box(&src)));
    }
}

mod utf8 {
    use super::*;

    /// The validator the codec uses (simdutf8, basic API).
    #[divan::bench(args = SIZES)]
    fn simdutf8(b: Bencher, len: usize) {
        let t = text(len);
        b.counter(BytesCount::new(len))
            .bench_local(|| ::simdutf8::basic::from_utf8(black_box(&t)).is_ok());
    }
    /// The standard library's validator, for comparison.
    #[divan::bench(args = SIZES)]
    fn std(b: Bencher, len: usize) {
        let t = text(len);
        b.counter(BytesCount::new(len))
            .bench_local(|| std::str::from_utf8(black_box(&t)).is_ok());
    }
    /// The codec end to end on a text frame (unmask + incremental UTF-8): compare with
    /// `frame::handle_read_binary`.
    #[divan::bench(args = SIZES)]
    fn handle_read_text(b: Bencher, len: usize) {
        let mut wire = client_frame(len);
        wire[0] = 0x80 | OpCode::Text.as_u8();
        let mut ws = WebSocket::server(Config::default(), None);
        let now = Instant::now();
        b.counter(BytesCount::new(len))
            .with_inputs(|| wire.clone())
            .bench_local_refs(|buf| black_box(ws.handle_read(now, buf).map(|r| r.consumed)));
    }
}

mod deflate {
    use super::*;

    const DEFLATE_SIZES: &[usize] = &[512, 16 * 1024];

    /// One message through a fresh compressor (the broadcast path), level 1.
    #[divan::bench(args = DEFLATE_SIZES)]
    fn compress_standalone_l1(b: Bencher, len: usize) {
        let t = text(len);
        b.counter(BytesCount::new(len))
            .bench_local(|| compress_standalone(black_box(&t), 15, 1).map(|v| v.len()));
    }

    /// A server connection with context takeover sending a message (compress + frame).
    #[divan::bench(args = DEFLATE_SIZES)]
    fn send_message(b: Bencher, len: usize) {
        let t = text(len);
        let mut ws = WebSocket::server(Config::default(), Some(DeflateParams::default()));
        let mut out = Vec::with_capacity(len + 64);
        b.counter(BytesCount::new(len)).bench_local(|| {
            out.clear();
            black_box(ws.send_message(MessageKind::Binary, black_box(&t), &mut out))
        });
    }

    /// Receive side: a client connection inflating compressed frames from a server that resets
    /// its window per message (so every input frame is independent and can be replayed).
    #[divan::bench(args = DEFLATE_SIZES)]
    fn receive_inflate(b: Bencher, len: usize) {
        let t = text(len);
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let mut server = WebSocket::server(Config::default(), Some(params));
        let mut wire = Vec::new();
        server
            .send_message(MessageKind::Binary, &t, &mut wire)
            .unwrap();
        let mut client = WebSocket::client(Config::default(), Some(params), [7; 16]);
        let now = Instant::now();
        b.counter(BytesCount::new(len))
            .with_inputs(|| wire.clone())
            .bench_local_refs(|buf| {
                let r = client.handle_read(now, buf).map(|r| r.consumed);
                black_box(r)
            });
    }
}
