//! Closed-loop WebSocket echo load client (the uWebSockets
//! `benchmarks/load_test` method).
//!
//! N connections. All of them do the opening handshake first (no extension,
//! so no permessage-deflate), then the run starts: each connection keeps
//! exactly one masked message of S payload bytes in flight: write the frame,
//! read the server's echo (one frame, or several fragments), verify the
//! payload byte for byte, repeat. Single thread, mio (epoll, edge-triggered),
//! the structure of `tcp-echo-load`, so the client costs the same whatever
//! server it drives. Every round trip's latency goes into an HDR histogram;
//! p50/p99/p99.9 are printed in µs.
//!
//! ```text
//! ws-echo-load --addr 127.0.0.1:9000 --conns 100 --size 20 --secs 5 --warmup 1 [--binary] [--json]
//! ```
//!
//! Frames: the client writes one FIN frame per message (text by default,
//! binary with `--binary`, as uWS `load_test` does), masked with a key fixed
//! per connection (drawn from xorshift), with a 7-, 16- or 64-bit length as
//! the size needs. The first (up to) 16 payload bytes carry a per-round
//! sequence number in hex, so a stale or replayed echo cannot pass; the rest is
//! printable ASCII (valid UTF-8 for text messages). Server frames are parsed
//! with 7/16/64-bit lengths; they must be unmasked, RSV bits clear, and the
//! echo must be one message of the same opcode (fragments allowed). A ping
//! from the server is answered with a pong. A close frame, a mismatch, a short
//! or long echo, a handshake that does not validate or an I/O error fails
//! loudly (message on stderr, exit status 1). Only loopback addresses are
//! accepted.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::process::exit;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use sha1::{Digest, Sha1};

const USAGE: &str = "usage: ws-echo-load --addr IP:PORT [--conns N] [--size BYTES] \
[--secs T] [--warmup W] [--binary] [--path /PATH] [--json]\n  \
closed loop: each connection keeps exactly one masked SIZE-byte message in flight\n  \
(text frames unless --binary); T and W are seconds (fractions allowed);\n  \
ADDR must be a loopback address";

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest message this client agrees to send (it keeps two copies per
/// connection).
const MAX_SIZE: usize = 64 << 20;

struct Args {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    json: bool,
    binary: bool,
    path: String,
}

fn die(msg: &str) -> ! {
    eprintln!("ws-echo-load: {msg}\n{USAGE}");
    exit(2);
}

fn fail(msg: &str) -> ! {
    eprintln!("ws-echo-load: FAIL: {msg}");
    exit(1);
}

fn parse_args() -> Args {
    let mut addr = None;
    let mut args = Args {
        addr: "127.0.0.1:0".parse().expect("placeholder"),
        conns: 100,
        size: 20,
        secs: 5.0,
        warmup: 1.0,
        json: false,
        binary: false,
        path: "/".to_string(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            "--json" => {
                args.json = true;
                continue;
            }
            "--binary" => {
                args.binary = true;
                continue;
            }
            _ => {}
        }
        let Some(val) = it.next() else {
            die(&format!("missing value for {flag}"));
        };
        match flag.as_str() {
            "--addr" => addr = Some(val.parse().unwrap_or_else(|_| die("bad --addr"))),
            "--conns" => args.conns = val.parse().unwrap_or_else(|_| die("bad --conns")),
            "--size" => args.size = val.parse().unwrap_or_else(|_| die("bad --size")),
            "--secs" => args.secs = val.parse().unwrap_or_else(|_| die("bad --secs")),
            "--warmup" => args.warmup = val.parse().unwrap_or_else(|_| die("bad --warmup")),
            "--path" => args.path = val,
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    args.addr = addr.unwrap_or_else(|| die("--addr is required"));
    if !args.addr.ip().is_loopback() {
        die("--addr must be a loopback address (this client only loads this machine)");
    }
    if args.conns == 0 {
        die("--conns must be >= 1");
    }
    if args.size > MAX_SIZE {
        die(&format!("--size must be <= {MAX_SIZE}"));
    }
    if !args.path.starts_with('/') || args.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        die("--path must start with / and contain no spaces or control characters");
    }
    let ok = |t: f64| t.is_finite() && (0.0..=3600.0).contains(&t);
    if !ok(args.secs) || args.secs == 0.0 || !ok(args.warmup) {
        die("--secs must be in (0, 3600], --warmup in [0, 3600]");
    }
    args
}

/// xorshift64: the source of handshake keys and mask keys (no need for a
/// cryptographic generator against our own loopback servers).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so neighbouring seeds diverge at once
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Where the parser is inside the server's byte stream.
struct Parser {
    /// Header bytes of the current frame collected so far (at most 2 + 8).
    hdr: [u8; 10],
    hdr_have: usize,
    /// True while payload bytes of the current frame are being consumed.
    in_payload: bool,
    opcode: u8,
    fin: bool,
    remaining: u64,
    /// Payload of the current control frame.
    ctrl: Vec<u8>,
    /// A data frame of the current echo was seen (so continuations are legal).
    msg_started: bool,
}

impl Parser {
    fn new() -> Self {
        Parser {
            hdr: [0; 10],
            hdr_have: 0,
            in_payload: false,
            opcode: 0,
            fin: false,
            remaining: 0,
            ctrl: Vec::with_capacity(125),
            msg_started: false,
        }
    }
}

struct Conn {
    sock: TcpStream,
    /// The payload in flight, unmasked: what the echo must equal.
    plain: Vec<u8>,
    /// The frame on the wire: header, masking key, masked payload.
    wire: Vec<u8>,
    hdr_len: usize,
    key: [u8; 4],
    /// Bytes of `wire` written so far.
    wr: usize,
    /// Payload bytes of the echo received (and verified) so far.
    rd: usize,
    seq: u64,
    started: Instant,
    /// Last write/read hit WouldBlock; cleared by the matching readiness event.
    w_blocked: bool,
    r_blocked: bool,
    parser: Parser,
    /// Pong frames waiting to be written (only between two data frames).
    ctrl_out: Vec<u8>,
    ctrl_wr: usize,
    pings: u64,
}

fn frame_header(opcode: u8, len: usize, key: [u8; 4]) -> Vec<u8> {
    let mut h = Vec::with_capacity(14);
    h.push(0x80 | opcode);
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    h.extend_from_slice(&key);
    h
}

fn mask_into(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    for (i, (d, s)) in dst.iter_mut().zip(src).enumerate() {
        *d = s ^ key[i & 3];
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Conn {
    fn new(sock: TcpStream, idx: usize, size: usize, opcode: u8, key: [u8; 4]) -> Self {
        // Printable ASCII (33..=126): valid UTF-8 for text frames too.
        let plain: Vec<u8> = (0..size)
            .map(|i| ((i.wrapping_mul(131) ^ idx.wrapping_mul(17)) % 94 + 33) as u8)
            .collect();
        let mut wire = frame_header(opcode, size, key);
        let hdr_len = wire.len();
        wire.resize(hdr_len + size, 0);
        mask_into(&mut wire[hdr_len..], &plain, key);
        Conn {
            sock,
            plain,
            wire,
            hdr_len,
            key,
            wr: 0,
            rd: 0,
            seq: 0,
            started: Instant::now(),
            w_blocked: false,
            r_blocked: false,
            parser: Parser::new(),
            ctrl_out: Vec::new(),
            ctrl_wr: 0,
            pings: 0,
        }
    }

    /// Starts the next round: stamps a new sequence number (hex) into the
    /// first up-to-16 payload bytes and re-masks just those bytes.
    fn next_message(&mut self, idx: usize, now: Instant) {
        self.seq += 1;
        let v = self.seq ^ ((idx as u64) << 40);
        let n = self.plain.len().min(16);
        // the low-order digits, which change every round, come last
        for j in 0..n {
            let shift = 4 * (n - 1 - j);
            self.plain[j] = HEX[((v >> shift) & 0xF) as usize];
        }
        let h = self.hdr_len;
        mask_into(&mut self.wire[h..h + n], &self.plain[..n], self.key);
        self.wr = 0;
        self.rd = 0;
        self.parser.msg_started = false;
        self.started = now;
        // The echo can only arrive after this round's write, so with
        // edge-triggered epoll it raises a fresh readiness event: no need to
        // probe with a read that would return EAGAIN (as in tcp-echo-load).
        self.r_blocked = true;
    }

    fn queue_pong(&mut self, payload: &[u8], rng: &mut XorShift) {
        let key = (rng.next() as u32).to_ne_bytes();
        self.ctrl_out
            .extend_from_slice(&frame_header(OP_PONG, payload.len(), key));
        let start = self.ctrl_out.len();
        self.ctrl_out.resize(start + payload.len(), 0);
        mask_into(&mut self.ctrl_out[start..], payload, key);
    }
}

struct Stats {
    hist: Histogram<u64>,
    measured: u64,
    warmup_msgs: u64,
}

/// Why the server's stream cannot be accepted.
fn proto_fail(idx: usize, c: &Conn, what: &str) -> ! {
    fail(&format!("conn {idx}: {what} (round {})", c.seq))
}

/// Feeds bytes read from the socket through the frame parser, verifying echo
/// payload in place. Completes rounds (and starts the next) as echoes finish.
fn feed(
    c: &mut Conn,
    idx: usize,
    mut data: &[u8],
    opcode: u8,
    stats: &mut Stats,
    measuring: bool,
    rng: &mut XorShift,
) {
    while !data.is_empty() {
        if !c.parser.in_payload {
            // Collect the header: 2 bytes, then 0, 2 or 8 length bytes.
            let p = &mut c.parser;
            let need = |have: &[u8]| -> usize {
                if have.len() < 2 {
                    2
                } else {
                    match have[1] & 0x7F {
                        126 => 4,
                        127 => 10,
                        _ => 2,
                    }
                }
            };
            while p.hdr_have < need(&p.hdr[..p.hdr_have]) && !data.is_empty() {
                p.hdr[p.hdr_have] = data[0];
                p.hdr_have += 1;
                data = &data[1..];
            }
            if p.hdr_have < need(&p.hdr[..p.hdr_have]) {
                return; // header continues in the next read
            }
            let (b0, b1) = (p.hdr[0], p.hdr[1]);
            let len = match b1 & 0x7F {
                126 => u64::from(u16::from_be_bytes([p.hdr[2], p.hdr[3]])),
                127 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&p.hdr[2..10]);
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            p.hdr_have = 0;
            let fin = b0 & 0x80 != 0;
            let op = b0 & 0x0F;
            if b0 & 0x70 != 0 {
                proto_fail(
                    idx,
                    c,
                    &format!(
                        "server frame with RSV bits {:#04x} (no extension was negotiated)",
                        b0 & 0x70
                    ),
                );
            }
            if b1 & 0x80 != 0 {
                proto_fail(idx, c, "server sent a masked frame");
            }
            if len >> 63 != 0 {
                proto_fail(idx, c, "64-bit frame length with the top bit set");
            }
            match op {
                OP_CLOSE | OP_PING | OP_PONG => {
                    if !fin || len > 125 {
                        proto_fail(
                            idx,
                            c,
                            &format!("bad control frame opcode {op:#x} len {len}"),
                        );
                    }
                }
                OP_TEXT | OP_BINARY => {
                    if op != opcode {
                        proto_fail(
                            idx,
                            c,
                            &format!("echo has opcode {op:#x}, sent {opcode:#x}"),
                        );
                    }
                    if c.parser.msg_started {
                        proto_fail(idx, c, "new data message before the last one finished");
                    }
                    c.parser.msg_started = true;
                }
                OP_CONT => {
                    if !c.parser.msg_started {
                        proto_fail(idx, c, "continuation frame with no message started");
                    }
                }
                _ => proto_fail(idx, c, &format!("reserved opcode {op:#x}")),
            }
            if op == OP_TEXT || op == OP_BINARY || op == OP_CONT {
                let sent_payload = c.wr.saturating_sub(c.hdr_len) as u64;
                if c.rd as u64 + len > sent_payload {
                    proto_fail(
                        idx,
                        c,
                        &format!(
                            "echo frame of {len} bytes after {} echoed, but only {sent_payload} of \
                             {} payload bytes were sent - server sent extra data",
                            c.rd,
                            c.plain.len()
                        ),
                    );
                }
            }
            let p = &mut c.parser;
            p.opcode = op;
            p.fin = fin;
            p.remaining = len;
            p.in_payload = true;
            p.ctrl.clear();
        }

        // Payload bytes of the current frame.
        let take = (c.parser.remaining.min(data.len() as u64)) as usize;
        let (chunk, rest) = data.split_at(take);
        data = rest;
        c.parser.remaining -= take as u64;
        if c.parser.opcode >= OP_CLOSE {
            c.parser.ctrl.extend_from_slice(chunk);
        } else if !chunk.is_empty() {
            let want = &c.plain[c.rd..c.rd + take];
            if chunk != want {
                let at = chunk
                    .iter()
                    .zip(want)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                fail(&format!(
                    "conn {idx}: echo mismatch in round {} at payload byte {}: got {:#04x}, \
                     expected {:#04x}",
                    c.seq,
                    c.rd + at,
                    chunk[at],
                    want[at]
                ));
            }
            c.rd += take;
        }
        if c.parser.remaining > 0 {
            return; // frame continues in the next read
        }

        // End of a frame.
        c.parser.in_payload = false;
        match c.parser.opcode {
            OP_PING => {
                c.pings += 1;
                let payload = std::mem::take(&mut c.parser.ctrl);
                c.queue_pong(&payload, rng);
                c.parser.ctrl = payload;
            }
            OP_PONG => {}
            OP_CLOSE => {
                let p = &c.parser.ctrl;
                let (code, reason) = if p.len() >= 2 {
                    (
                        u16::from_be_bytes([p[0], p[1]]).to_string(),
                        String::from_utf8_lossy(&p[2..]).into_owned(),
                    )
                } else {
                    ("none".to_string(), String::new())
                };
                proto_fail(
                    idx,
                    c,
                    &format!(
                        "server sent close (code {code}, reason {reason:?}) after {} of {} payload bytes echoed",
                        c.rd,
                        c.plain.len()
                    ),
                );
            }
            _ => {
                if c.parser.fin {
                    if c.rd != c.plain.len() {
                        proto_fail(
                            idx,
                            c,
                            &format!(
                                "echo message ended after {} of {} payload bytes",
                                c.rd,
                                c.plain.len()
                            ),
                        );
                    }
                    let now = Instant::now();
                    if measuring {
                        let ns = now.duration_since(c.started).as_nanos();
                        stats
                            .hist
                            .saturating_record(ns.min(u64::MAX as u128) as u64);
                        stats.measured += 1;
                    } else {
                        stats.warmup_msgs += 1;
                    }
                    c.next_message(idx, now);
                }
            }
        }
    }
}

/// Writes and reads on one connection until both directions block.
fn drive(
    c: &mut Conn,
    idx: usize,
    scratch: &mut [u8],
    opcode: u8,
    stats: &mut Stats,
    measuring: bool,
    rng: &mut XorShift,
) {
    loop {
        let mut progressed = false;
        if !c.w_blocked {
            // A pong goes out only between two data frames, never inside one.
            let between = c.wr == 0 || c.wr == c.wire.len();
            let ctrl_pending = c.ctrl_wr < c.ctrl_out.len();
            let buf = if ctrl_pending && between {
                Some((&c.ctrl_out[c.ctrl_wr..], true))
            } else if c.wr < c.wire.len() {
                Some((&c.wire[c.wr..], false))
            } else {
                None
            };
            if let Some((buf, is_ctrl)) = buf {
                match c.sock.write(buf) {
                    Ok(0) => fail(&format!("conn {idx}: write returned 0")),
                    Ok(n) => {
                        if is_ctrl {
                            c.ctrl_wr += n;
                            if c.ctrl_wr == c.ctrl_out.len() {
                                c.ctrl_out.clear();
                                c.ctrl_wr = 0;
                            }
                        } else {
                            c.wr += n;
                        }
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.w_blocked = true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => progressed = true,
                    Err(e) => fail(&format!("conn {idx}: write: {e}")),
                }
            }
        }
        if !c.r_blocked {
            match c.sock.read(scratch) {
                Ok(0) => fail(&format!(
                    "conn {idx}: server closed the connection with {} of {} payload bytes \
                     echoed (round {})",
                    c.rd,
                    c.plain.len(),
                    c.seq
                )),
                Ok(n) => {
                    feed(c, idx, &scratch[..n], opcode, stats, measuring, rng);
                    progressed = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => c.r_blocked = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => progressed = true,
                Err(e) => fail(&format!("conn {idx}: read: {e}")),
            }
        }
        if !progressed {
            return;
        }
    }
}

/// Connects and runs the opening handshake on a blocking socket. Returns the
/// socket (non-blocking, TCP_NODELAY) and any bytes the server sent after the
/// 101 response.
fn handshake(args: &Args, idx: usize, rng: &mut XorShift) -> Result<(StdStream, Vec<u8>), String> {
    let ctx = |what: &str, e: &dyn std::fmt::Display| format!("conn {idx}: {what}: {e}");
    let mut s = StdStream::connect_timeout(&args.addr, Duration::from_secs(5))
        .map_err(|e| ctx(&format!("connect to {}", args.addr), &e))?;
    s.set_nodelay(true).map_err(|e| ctx("TCP_NODELAY", &e))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| ctx("SO_RCVTIMEO", &e))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| ctx("SO_SNDTIMEO", &e))?;

    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&rng.next().to_ne_bytes());
    nonce[8..].copy_from_slice(&rng.next().to_ne_bytes());
    let key = B64.encode(nonce);
    let expect_accept = {
        let mut h = Sha1::new();
        h.update(key.as_bytes());
        h.update(WS_GUID.as_bytes());
        B64.encode(h.finalize())
    };
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        args.path, args.addr
    );
    s.write_all(req.as_bytes())
        .map_err(|e| ctx("write upgrade request", &e))?;

    let mut buf = Vec::with_capacity(1024);
    let mut tmp = [0u8; 2048];
    loop {
        let n = s
            .read(&mut tmp)
            .map_err(|e| ctx("read upgrade response", &e))?;
        if n == 0 {
            return Err(format!(
                "conn {idx}: server closed during the handshake (got {:?})",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Partial) => {
                if buf.len() > 16 * 1024 {
                    return Err(format!("conn {idx}: upgrade response over 16 KiB"));
                }
            }
            Ok(httparse::Status::Complete(end)) => {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let bad = |why: &str| format!("conn {idx}: bad upgrade response ({why}):\n{head}");
                if resp.code != Some(101) {
                    return Err(bad("status is not 101"));
                }
                let get = |name: &str| {
                    resp.headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
                        .collect::<Vec<_>>()
                };
                if !get("upgrade")
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case("websocket"))
                {
                    return Err(bad("no Upgrade: websocket"));
                }
                if !get("connection")
                    .iter()
                    .flat_map(|v| {
                        v.split(',')
                            .map(|t| t.trim().to_string())
                            .collect::<Vec<_>>()
                    })
                    .any(|t| t.eq_ignore_ascii_case("upgrade"))
                {
                    return Err(bad("no Connection: upgrade"));
                }
                if get("sec-websocket-accept") != [expect_accept.clone()] {
                    return Err(bad(&format!("Sec-WebSocket-Accept is not {expect_accept}")));
                }
                if !get("sec-websocket-extensions").is_empty() {
                    return Err(bad("server chose an extension, none was offered"));
                }
                if !get("sec-websocket-protocol").is_empty() {
                    return Err(bad("server chose a subprotocol, none was offered"));
                }
                let rest = buf[end..].to_vec();
                s.set_read_timeout(None)
                    .map_err(|e| ctx("SO_RCVTIMEO", &e))?;
                s.set_write_timeout(None)
                    .map_err(|e| ctx("SO_SNDTIMEO", &e))?;
                s.set_nonblocking(true).map_err(|e| ctx("O_NONBLOCK", &e))?;
                return Ok((s, rest));
            }
            Err(e) => {
                return Err(format!(
                    "conn {idx}: unparsable upgrade response ({e}): {:?}",
                    String::from_utf8_lossy(&buf)
                ));
            }
        }
    }
}

/// CPU seconds (user + system) this process used so far, from /proc/self/stat
/// (USER_HZ is 100 on Linux/x86). None where /proc is unavailable.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn main() -> io::Result<()> {
    let args = parse_args();
    let opcode = if args.binary { OP_BINARY } else { OP_TEXT };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id());
    let mut rng = XorShift::new(seed);

    // Every connection does its handshake before any message is sent.
    let hs_start = Instant::now();
    let mut socks = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        socks.push(handshake(&args, i, &mut rng).unwrap_or_else(|e| fail(&e)));
    }
    let handshake_ms = hs_start.elapsed().as_secs_f64() * 1000.0;

    let mut poll = Poll::new().unwrap_or_else(|e| fail(&format!("epoll: {e}")));
    let mut conns: Vec<Conn> = Vec::with_capacity(args.conns);
    let mut leftovers = Vec::with_capacity(args.conns);
    for (i, (s, rest)) in socks.into_iter().enumerate() {
        let mut sock = TcpStream::from_std(s);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .unwrap_or_else(|e| fail(&format!("register: {e}")));
        let key = (rng.next() as u32).to_ne_bytes();
        conns.push(Conn::new(sock, i, args.size, opcode, key));
        leftovers.push(rest);
    }

    let mut stats = Stats {
        hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds"),
        measured: 0,
        warmup_msgs: 0,
    };
    let mut scratch = vec![0u8; (args.size + 14).clamp(4096, 256 * 1024)];
    let mut events = Events::with_capacity(1024);

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.secs);
    let mut measuring = args.warmup == 0.0;
    let mut cpu_at_measure = if measuring { cpu_secs() } else { None };

    // Put the first message of every connection in flight.
    for (i, c) in conns.iter_mut().enumerate() {
        c.next_message(i, start);
        // Bytes that came right behind the 101 (a server ping, say).
        if !leftovers[i].is_empty() {
            let rest = std::mem::take(&mut leftovers[i]);
            feed(c, i, &rest, opcode, &mut stats, measuring, &mut rng);
        }
        drive(c, i, &mut scratch, opcode, &mut stats, measuring, &mut rng);
    }

    let mut now = start;
    while now < end {
        let boundary = if measuring { end } else { measure_from };
        let timeout = boundary
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        if let Err(e) = poll.poll(&mut events, Some(timeout))
            && e.kind() != ErrorKind::Interrupted
        {
            fail(&format!("epoll_wait: {e}"));
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut conns[i];
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.r_blocked = false;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                c.w_blocked = false;
            }
            drive(c, i, &mut scratch, opcode, &mut stats, measuring, &mut rng);
        }
        now = Instant::now();
        if !measuring && now >= measure_from {
            measuring = true;
            cpu_at_measure = cpu_secs();
        }
    }
    let elapsed = now.duration_since(measure_from).as_secs_f64();
    let cpu_pct = match (cpu_at_measure, cpu_secs()) {
        (Some(a), Some(b)) if elapsed > 0.0 => 100.0 * (b - a) / elapsed,
        _ => -1.0,
    };
    let pings: u64 = conns.iter().map(|c| c.pings).sum();

    let h = &stats.hist;
    let rate = stats.measured as f64 / elapsed;
    if stats.measured == 0 {
        fail("no round trip completed during the measured interval");
    }
    let (p50, p99, p999, max, mean) = (
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
        h.mean() / 1000.0,
    );
    let kind = if args.binary { "binary" } else { "text" };
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{{\"addr\":\"{}\",\"conns\":{},\"size\":{},\"opcode\":\"{kind}\",\"warmup_secs\":{},\
             \"secs\":{},\"handshake_ms\":{handshake_ms:.1},\"elapsed_secs\":{elapsed:.4},\
             \"messages\":{},\"messages_total\":{},\"msgs_per_sec\":{rate:.1},\
             \"bytes_per_sec\":{:.1},\"p50_us\":{p50:.2},\"p99_us\":{p99:.2},\
             \"p999_us\":{p999:.2},\"max_us\":{max:.2},\"mean_us\":{mean:.2},\
             \"server_pings\":{pings},\"client_cpu_pct\":{cpu_pct:.1}}}",
            args.addr,
            args.conns,
            args.size,
            args.warmup,
            args.secs,
            stats.measured,
            stats.measured + stats.warmup_msgs,
            rate * args.size as f64,
        )?;
    } else {
        writeln!(
            out,
            "ws-echo-load addr={} conns={} size={} opcode={kind} warmup={}s secs={}s",
            args.addr, args.conns, args.size, args.warmup, args.secs
        )?;
        writeln!(
            out,
            "handshakes: {} in {handshake_ms:.1} ms (all before the first message)",
            args.conns
        )?;
        writeln!(
            out,
            "messages/s: {rate:.0}  (echoes: {} in {elapsed:.2} s, {} more during warm-up, \
             all verified)",
            stats.measured, stats.warmup_msgs
        )?;
        writeln!(
            out,
            "latency us: p50 {p50:.1}  p99 {p99:.1}  p99.9 {p999:.1}  max {max:.1}  mean {mean:.1}"
        )?;
        writeln!(out, "client cpu: {cpu_pct:.0}% of one core while measuring")?;
        if pings > 0 {
            writeln!(out, "server pings answered: {pings}")?;
        }
    }
    Ok(())
}
