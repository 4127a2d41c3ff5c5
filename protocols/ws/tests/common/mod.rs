//! Shared test helpers: vector files, a deterministic PRNG, a client/server pair.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use ringwire_ws::{Config, DeflateParams, WebSocket, WsError, WsEvent};

pub fn vectors_dir(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(set)
}

pub fn read_vector_file(set: &str, name: &str) -> Vec<u8> {
    let p = vectors_dir(set).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex {b:?}")))
        .collect()
}

/// An expected event in a vector file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct Vector {
    pub role: String,
    pub wire: Vec<u8>,
    pub deflate: Option<DeflateParams>,
    pub events: Vec<Expected>,
}

fn unquote(s: &str) -> String {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("expected a quoted string: {s}"))
        .to_owned()
}

/// Reads a `key = value` vector file (format in tests/vectors/rfc6455/README.md).
pub fn load_vector(set: &str, name: &str) -> Vector {
    let text = String::from_utf8(read_vector_file(set, name)).unwrap();
    let mut v = Vector {
        role: String::new(),
        wire: Vec::new(),
        deflate: None,
        events: Vec::new(),
    };
    let mut generated_len = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, val) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{name}: {line}"));
        let (k, val) = (k.trim(), val.trim());
        match k {
            "role" => v.role = val.to_owned(),
            "wire" | "header" => v.wire.extend(hex(val)),
            "payload_len" => generated_len = Some(val.parse::<usize>().unwrap()),
            "deflate" => {
                v.deflate = Some(match val {
                    "default" => DeflateParams::default(),
                    "server_no_context_takeover" => DeflateParams {
                        server_no_context_takeover: true,
                        ..Default::default()
                    },
                    other => panic!("{name}: deflate {other}"),
                })
            }
            "event" => {
                let (kind, rest) = val.split_once(' ').unwrap();
                v.events.push(match kind {
                    "text" => Expected::Text(unquote(rest)),
                    "ping" => Expected::Ping(unquote(rest).into_bytes()),
                    "pong" => Expected::Pong(unquote(rest).into_bytes()),
                    "binary" => {
                        let n: usize = rest.strip_prefix("len=").unwrap().parse().unwrap();
                        Expected::Binary(pattern(n))
                    }
                    other => panic!("{name}: event {other}"),
                })
            }
            other => panic!("{name}: unknown key {other}"),
        }
    }
    if let Some(n) = generated_len {
        v.wire.extend(pattern(n));
    }
    v
}

/// The generated payload of the long vectors: byte i is `i as u8`.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

pub fn receiver_for(v: &Vector, config: Config) -> WebSocket {
    match v.role.as_str() {
        "client" => WebSocket::client(config, v.deflate, [1; 16]),
        "server" => WebSocket::server(config, v.deflate),
        other => panic!("role {other}"),
    }
}

/// Converts a borrowed event into an owned expectation (panics on Fragment/Close).
pub fn to_expected(ev: &WsEvent<'_>) -> Expected {
    match ev {
        WsEvent::Message {
            kind: ringwire_ws::MessageKind::Text,
            data,
        } => Expected::Text(String::from_utf8(data.to_vec()).unwrap()),
        WsEvent::Message { data, .. } => Expected::Binary(data.to_vec()),
        WsEvent::Ping(p) => Expected::Ping(p.to_vec()),
        WsEvent::Pong(p) => Expected::Pong(p.to_vec()),
        other => panic!("unexpected {other:?}"),
    }
}

/// An owned copy of any event, for comparing whole runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    Message(ringwire_ws::MessageKind, Vec<u8>),
    Fragment(ringwire_ws::MessageKind, Vec<u8>, bool, u64),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

pub fn own(ev: &WsEvent<'_>) -> Owned {
    match ev {
        WsEvent::Message { kind, data } => Owned::Message(*kind, data.to_vec()),
        WsEvent::Fragment {
            kind,
            data,
            fin,
            received,
        } => Owned::Fragment(*kind, data.to_vec(), *fin, *received),
        WsEvent::Ping(p) => Owned::Ping(p.to_vec()),
        WsEvent::Pong(p) => Owned::Pong(p.to_vec()),
        WsEvent::Close { code, reason } => Owned::Close(code.map(|c| c.0), (*reason).to_owned()),
    }
}

/// Feeds `input` to `ws` in one buffer and collects every event until it needs more bytes or
/// fails. Returns the events, the consumed count and the error if any.
pub fn feed_all(ws: &mut WebSocket, input: &[u8]) -> (Vec<Owned>, usize, Option<WsError>) {
    let mut buf = input.to_vec();
    let mut events = Vec::new();
    let mut start = 0;
    let now = Instant::now();
    let len = buf.len();
    loop {
        match ws.handle_read(now, &mut buf[start..]) {
            Ok(r) => {
                assert!(r.consumed <= len - start);
                start += r.consumed;
                match r.event {
                    Some(ev) => events.push(own(&ev)),
                    None => return (events, start, None),
                }
            }
            Err(e) => return (events, start, Some(e)),
        }
    }
}

/// Feeds `input` in chunks of `chunk` bytes, keeping the unconsumed tail like an engine.
pub fn feed_chunked(
    ws: &mut WebSocket,
    input: &[u8],
    chunk: usize,
) -> (Vec<Owned>, Option<WsError>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    let now = Instant::now();
    for piece in input.chunks(chunk.max(1)) {
        pending.extend_from_slice(piece);
        let mut start = 0;
        loop {
            match ws.handle_read(now, &mut pending[start..]) {
                Ok(r) => {
                    start += r.consumed;
                    match r.event {
                        Some(ev) => events.push(own(&ev)),
                        None => break,
                    }
                }
                Err(e) => return (events, Some(e)),
            }
        }
        pending.drain(..start);
    }
    (events, None)
}

/// xorshift64*: deterministic, seedable.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    /// Random valid UTF-8 with multi-byte characters.
    pub fn text(&mut self, chars: usize) -> String {
        const POOL: &[char] = &[
            'a',
            'Z',
            ' ',
            '~',
            'é',
            'ß',
            'κ',
            '€',
            '中',
            '𝄞',
            '😀',
            '\u{10FFFF}',
        ];
        (0..chars)
            .map(|_| POOL[self.below(POOL.len() as u64) as usize])
            .collect()
    }
}

/// Builds a masked client frame by hand (for server-role tests).
pub fn client_frame(b0: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    ringwire_ws::mask::apply_mask(&mut out[start..], key);
    out
}

/// An unmasked server frame by hand (for client-role tests).
pub fn server_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= 0xFFFF {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Decodes the Close frame at the end of `out` (unmasked or masked): its status code.
pub fn last_close_code(out: &[u8]) -> Option<u16> {
    let mut pos = 0;
    let mut last = None;
    while pos < out.len() {
        let mut copy = out[pos..].to_vec();
        let rules = ringwire_ws::FrameRules {
            role: ringwire_ws::Role::Client,
            allow_rsv1: true,
            max_payload: u64::MAX,
        };
        let masked = copy.get(1).is_some_and(|b| b & 0x80 != 0);
        let rules = if masked {
            ringwire_ws::FrameRules {
                role: ringwire_ws::Role::Server,
                ..rules
            }
        } else {
            rules
        };
        let (frame, n) = ringwire_ws::Frame::parse(&mut copy, &rules)
            .unwrap()
            .unwrap();
        if frame.header.opcode == ringwire_ws::OpCode::Close {
            last = frame
                .payload
                .get(..2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
        }
        pos += n;
    }
    last
}
