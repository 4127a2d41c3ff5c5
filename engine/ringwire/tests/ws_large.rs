//! Large WebSocket messages (1 and 4 MiB) on both drivers: whole and fragmented, binary and
//! text, one at a time and pipelined, compressed, echoed by the zero-copy path
//! ([`WsHandler::on_message_bytes`] with [`WsCtx::send_bytes`]) and by a handler that only
//! has `on_message`; and a frame header past the limit, which closes with 1009 and allocates
//! nothing for the frame (a counting allocator records the largest allocation).

use std::alloc::{GlobalAlloc, Layout, System};
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringwire::runtime::{DriverChoice, RuntimeConfig, ServerBuilder, ServerHandle};
use ringwire::ws::{EchoHandler, MessageKind, WsCtx, WsHandler, WsServer, WsServerConfig};
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// The largest allocation (or reallocation) made so far, in bytes.
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every call is passed on unchanged to the system allocator; only sizes are recorded.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        PEAK.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        PEAK.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is, from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        PEAK.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: `ptr` came from the system allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    large_messages_echo_zero_copy,
    large_messages_echo_through_on_message,
    large_messages_echo_compressed,
    oversized_frame_header_closes_1009_without_allocating,
);

const MIB: usize = 1 << 20;

/// Echoes through `on_message` only (the default `on_message_bytes` passes messages on).
#[derive(Clone, Copy)]
struct PlainEcho;

impl WsHandler for PlainEcho {
    fn on_message(&mut self, ws: &mut WsCtx<'_, '_>, kind: MessageKind, data: &[u8]) {
        let _ = ws.send(kind, data);
    }
}

fn start<H: WsHandler + Clone + Send + Sync>(
    d: DriverChoice,
    handler: H,
    cfg: WsServerConfig,
    max_in: usize,
) -> (ServerHandle, SocketAddr) {
    let rt = RuntimeConfig {
        driver: d,
        threads: 1,
        max_in_buffer: max_in,
        ..Default::default()
    };
    let mut b = ServerBuilder::new(rt);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let cfg = Arc::new(cfg);
    let s = b
        .start(move |_| WsServer::new(handler.clone(), cfg.clone()))
        .unwrap();
    let a = s.local_addrs()[0];
    (s, a)
}

type Client = tungstenite::WebSocket<common::Retry>;

fn client(addr: SocketAddr) -> Client {
    common::ws_client(addr, "/big", Duration::from_secs(20))
}

/// Read the next data message, retrying reads a signal interrupted.
fn read(c: &mut Client) -> Message {
    loop {
        match c.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            r => return r.unwrap(),
        }
    }
}

fn binary(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

/// `n` bytes of UTF-8 text with 1-, 2-, 3- and 4-byte characters.
fn text(n: usize) -> String {
    let mut s = String::with_capacity(n + 4);
    let chars = ['a', 'é', '✓', '🎉', 'z', '\n'];
    let mut i = 0;
    while s.len() < n {
        s.push(chars[i % chars.len()]);
        i += 1;
    }
    s
}

fn expect(c: &mut Client, kind: MessageKind, want: &[u8], what: &str) {
    match (kind, read(c)) {
        (MessageKind::Binary, Message::Binary(b)) => {
            assert!(b[..] == want[..], "{what}: binary echo differs")
        }
        (MessageKind::Text, Message::Text(t)) => {
            assert!(t.as_bytes() == want, "{what}: text echo differs")
        }
        (_, other) => panic!("{what}: unexpected {other:?}"),
    }
}

/// Send `data` as a message of `kind` in fragments of at most `size` bytes (uneven: a text
/// fragment may end inside a character).
fn send_fragmented(c: &mut Client, kind: MessageKind, data: &[u8], size: usize) {
    let first = match kind {
        MessageKind::Text => OpCode::Data(Data::Text),
        MessageKind::Binary => OpCode::Data(Data::Binary),
    };
    let n = data.chunks(size).count();
    for (i, part) in data.chunks(size).enumerate() {
        let op = if i == 0 {
            first
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(part.to_vec(), op, i + 1 == n);
        c.write(Message::Frame(frame)).unwrap();
    }
    c.flush().unwrap();
}

/// Whole, fragmented and pipelined 1 and 4 MiB messages of both kinds come back intact.
fn echo_large_messages(c: &mut Client) {
    let b1 = binary(MIB, 1);
    let b4 = binary(4 * MIB, 2);
    let t1 = text(MIB);
    let t4 = text(4 * MIB);
    for round in 0..3 {
        c.send(Message::binary(b1.clone())).unwrap();
        expect(c, MessageKind::Binary, &b1, "binary 1 MiB");
        c.send(Message::text(t1.clone())).unwrap();
        expect(c, MessageKind::Text, t1.as_bytes(), "text 1 MiB");
        c.send(Message::binary(b4.clone())).unwrap();
        expect(c, MessageKind::Binary, &b4, "binary 4 MiB");
        c.send(Message::text(t4.clone())).unwrap();
        expect(c, MessageKind::Text, t4.as_bytes(), "text 4 MiB");
        // Fragmented: many 64 KiB fragments, and a few uneven ones.
        send_fragmented(c, MessageKind::Binary, &b1, 64 * 1024);
        expect(c, MessageKind::Binary, &b1, "fragmented binary 1 MiB");
        send_fragmented(c, MessageKind::Text, t4.as_bytes(), 1_500_001);
        expect(c, MessageKind::Text, t4.as_bytes(), "fragmented text 4 MiB");
        // Small messages between large ones still take the ordinary path.
        c.send(Message::text(format!("round {round}"))).unwrap();
        expect(
            c,
            MessageKind::Text,
            format!("round {round}").as_bytes(),
            "small",
        );
    }
    // Pipelined: the next message's start sits behind each frame in the input.
    let msgs = [
        binary(MIB, 3),
        binary(MIB + 7, 4),
        binary(100_000, 5),
        binary(4 * MIB, 6),
    ];
    for m in &msgs {
        c.write(Message::binary(m.clone())).unwrap();
    }
    c.write(Message::text(t1.clone())).unwrap();
    c.flush().unwrap();
    for m in &msgs {
        expect(c, MessageKind::Binary, m, "pipelined");
    }
    expect(c, MessageKind::Text, t1.as_bytes(), "pipelined text");
    c.close(None).unwrap();
}

fn large_messages_echo_zero_copy(d: DriverChoice) {
    let (_s, addr) = start(d, EchoHandler, WsServerConfig::default(), 16 * MIB);
    echo_large_messages(&mut client(addr));
}

fn large_messages_echo_through_on_message(d: DriverChoice) {
    let (_s, addr) = start(d, PlainEcho, WsServerConfig::default(), 16 * MIB);
    echo_large_messages(&mut client(addr));
}

/// permessage-deflate: large messages are inflated, echoed (compressed again) and inflated by
/// the client, through the ringwire-ws codec on both ends.
fn large_messages_echo_compressed(d: DriverChoice) {
    let mut cfg = WsServerConfig::default();
    cfg.codec.deflate = ringwire_ws::DeflateConfig::enabled();
    let (_s, addr) = start(d, EchoHandler, cfg, 16 * MIB);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (neg, mut rx) = common::deflate_handshake(&mut s, &ringwire_ws::DeflateConfig::enabled());
    assert!(neg.is_some(), "deflate negotiated");
    let mut ws = ringwire_ws::WebSocket::client(ringwire_ws::Config::default(), neg, [3u8; 16]);
    let t4 = text(4 * MIB);
    let b1 = binary(MIB, 9);
    let sends: [(MessageKind, &[u8], bool); 3] = [
        (MessageKind::Text, t4.as_bytes(), false),
        (MessageKind::Binary, &b1, false),
        (MessageKind::Binary, &b1, true),
    ];
    for (kind, data, fragmented) in sends {
        let mut out = Vec::new();
        if fragmented {
            let n = data.chunks(100_000).count();
            for (i, part) in data.chunks(100_000).enumerate() {
                ws.send_fragment(kind, part, i + 1 == n, &mut out).unwrap();
            }
        } else {
            ws.send_message(kind, data, &mut out).unwrap();
        }
        s.write_all(&out).unwrap();
        let got = loop {
            let r = ws.handle_read(Instant::now(), &mut rx).unwrap();
            let consumed = r.consumed;
            let got = match r.event {
                Some(ringwire_ws::WsEvent::Message { kind: k, data }) => {
                    assert_eq!(k, kind);
                    Some(data.into_owned())
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => None,
            };
            rx.drain(..consumed);
            if let Some(g) = got {
                break g;
            }
            if consumed == 0 {
                let mut b = vec![0u8; 256 * 1024];
                let n = s.read(&mut b).unwrap();
                assert!(n > 0, "server closed");
                rx.extend_from_slice(&b[..n]);
            }
        };
        assert!(got == data, "compressed echo differs");
    }
}

fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    s
}

/// Read server frames until a Close; returns its code.
fn read_until_close(s: &mut TcpStream) -> u16 {
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        let len = (h[1] & 0x7f) as usize;
        assert!(len < 126);
        let mut p = vec![0u8; len];
        s.read_exact(&mut p).unwrap();
        if h[0] & 0x0f == 0x8 {
            return u16::from_be_bytes([p[0], p[1]]);
        }
    }
}

/// The header of a masked binary frame of `len` bytes (64-bit length), and some payload.
fn big_frame_start(len: u64) -> Vec<u8> {
    let mut v = vec![0x82, 0x80 | 127];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[1, 2, 3, 4]); // masking key
    v.extend(std::iter::repeat_n(0x55, 1000));
    v
}

/// A frame header claiming one byte more than `max_frame_payload` closes with 1009 and makes
/// the server reserve nothing for it, though the runtime's input limit would allow it; a
/// frame within the limit gets its room once a sixteenth of it arrived.
fn oversized_frame_header_closes_1009_without_allocating(d: DriverChoice) {
    let limit = 24 * MIB;
    let mut cfg = WsServerConfig::default();
    cfg.codec.max_frame_payload = limit;
    cfg.codec.max_message_size = limit;
    let (_s, addr) = start(d, EchoHandler, cfg, 64 * MIB);
    for claim in [limit as u64 + 1, 1 << 40] {
        let mut s = raw_upgrade(addr);
        s.write_all(&big_frame_start(claim)).unwrap();
        assert_eq!(read_until_close(&mut s), 1009, "claim {claim}");
    }
    let peak = PEAK.load(Ordering::Relaxed);
    assert!(
        peak < limit,
        "{peak} bytes allocated for an oversized frame"
    );
    // Within the limit: room for the whole frame is reserved when its header arrives.
    let within = 20 * MIB;
    let mut s = raw_upgrade(addr);
    s.write_all(&big_frame_start(within as u64)).unwrap();
    s.write_all(&vec![0x55; within / 16]).unwrap();
    let t = Instant::now();
    while PEAK.load(Ordering::Relaxed) < within {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no room reserved for a {within}-byte frame"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
