//! Shared test driver: vector files, event rendering, split feeding.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringwire_http1::{
    BareLf, BodyKind, BodyLen, Config, ContinuePolicy, Event, ServerConn, StatusCode, Upgrade,
    Version,
};

/// A fixed clock: Tue, 14 Nov 2023 22:13:20 GMT.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// How to cut the input.
#[derive(Clone, Copy, Debug)]
pub enum Split {
    Whole,
    Bytewise,
    Random(u64),
}

/// A parsed vector file.
#[derive(Debug)]
pub struct Vector {
    pub name: String,
    pub config: Config,
    pub request: Vec<u8>,
    pub expected: String,
}

pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Decodes `\r \n \t \\ \xNN`.
pub fn unescape(line: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                other => panic!("bad escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Renders bytes readably: printable ASCII as is, the rest escaped.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s
}

/// Reads a vector file.
///
/// ```text
/// # comment
/// --- config            (optional: key=value lines)
/// --- request           each line + CRLF; a line ending in a lone `\` gets none;
///                       escapes \r \n \t \\ \xNN (write a trailing space as \x20)
/// --- events            the expected rendering (trailing spaces ignored)
/// ```
pub fn load(rel: &str) -> Vector {
    let path = vectors_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut section = "";
    let mut config = Config::default();
    let mut request = Vec::new();
    let mut expected = String::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("--- ") {
            section = match s.trim() {
                "config" => "config",
                "request" => "request",
                "events" => "events",
                other => panic!("{rel}: unknown section {other}"),
            };
            continue;
        }
        match section {
            "" => assert!(line.is_empty() || line.starts_with('#'), "{rel}: {line}"),
            "config" => {
                let (k, v) = line.split_once('=').unwrap();
                let n = || v.parse::<usize>().unwrap();
                match k {
                    "bare_lf" => {
                        config.bare_lf = if v == "accept" {
                            BareLf::Accept
                        } else {
                            BareLf::Reject
                        }
                    }
                    "continue" => {
                        config.continue_policy = if v == "manual" {
                            ContinuePolicy::Manual
                        } else {
                            ContinuePolicy::Auto
                        }
                    }
                    "max_pipeline" => config.max_pipeline = n(),
                    "max_request_line" => config.max_request_line = n(),
                    "max_head_bytes" => config.max_head_bytes = n(),
                    "max_headers" => config.max_headers = n(),
                    "max_body" => config.max_body = n() as u64,
                    "max_chunk_line" => config.max_chunk_line = n(),
                    "max_trailer_bytes" => config.max_trailer_bytes = n(),
                    other => panic!("{rel}: unknown config {other}"),
                }
            }
            "request" => {
                if let Some(raw) = line.strip_suffix('\\').filter(|r| !r.ends_with('\\')) {
                    request.extend(unescape(raw));
                } else {
                    request.extend(unescape(line));
                    request.extend_from_slice(b"\r\n");
                }
            }
            "events" => {
                if !line.is_empty() {
                    expected.push_str(line.trim_end());
                    expected.push('\n');
                }
            }
            _ => unreachable!(),
        }
    }
    Vector {
        name: rel.to_owned(),
        config,
        request,
        expected,
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn render(ev: &Event<'_>, out: &mut Vec<String>) {
    match ev {
        Event::Request(h) => {
            let mut s = format!(
                "request {} {} {}",
                h.method.as_str(),
                h.target,
                match h.version {
                    Version::Http10 => "HTTP/1.0",
                    Version::Http11 => "HTTP/1.1",
                }
            );
            if let Some(q) = h.query {
                let _ = write!(s, " path={} query={q}", h.path);
            }
            match h.body {
                BodyKind::None => s.push_str(" body=none"),
                BodyKind::ContentLength(n) => {
                    let _ = write!(s, " body=length:{n}");
                }
                BodyKind::Chunked => s.push_str(" body=chunked"),
            }
            s.push_str(if h.keep_alive {
                " keep-alive"
            } else {
                " close"
            });
            if h.expect_continue {
                s.push_str(" continue");
            }
            match h.upgrade {
                Some(Upgrade::WebSocket) => s.push_str(" upgrade=websocket"),
                Some(Upgrade::H2c) => s.push_str(" upgrade=h2c"),
                Some(Upgrade::Connect) => s.push_str(" upgrade=connect"),
                None => {}
            }
            out.push(s);
            for f in h.headers.iter() {
                out.push(format!("header {}: {}", f.name, escape(f.value)));
            }
        }
        Event::Body(b) => {
            assert!(!b.is_empty(), "empty Body event");
            match out.last_mut() {
                Some(last) if last.starts_with("body ") => last.push_str(&escape(b)),
                _ => out.push(format!("body {}", escape(b))),
            }
        }
        Event::Trailers(t) => {
            for f in t.iter() {
                out.push(format!("trailer {}: {}", f.name, escape(f.value)));
            }
        }
        Event::BodyEnd => out.push("end".to_owned()),
    }
}

/// Feeds `input`, answering each request after its body: 101 to WebSocket and
/// h2c upgrades, 200 otherwise (a CONNECT tunnel). Returns the rendering and
/// everything the connection wrote.
pub fn drive(config: Config, input: &[u8], split: Split) -> (String, Vec<u8>) {
    let mut conn = ServerConn::new(config);
    let mut rng = match split {
        Split::Random(seed) => Rng(seed | 1),
        _ => Rng(1),
    };
    let mut held = Vec::new();
    let mut fed = 0;
    let mut lines = Vec::new();
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    let mut answer = Vec::new();
    let mut error = None;
    'feed: loop {
        let n = match split {
            Split::Whole => input.len() - fed,
            Split::Bytewise => 1,
            Split::Random(_) => (rng.next() % 13 + 1) as usize,
        }
        .min(input.len() - fed);
        held.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            let r = conn.handle_read(&held);
            while let Some(ev) = conn.poll_event() {
                match &ev {
                    Event::Request(h) => kinds.push(h.upgrade),
                    Event::BodyEnd => answer.push(kinds.remove(0)),
                    _ => {}
                }
                render(&ev, &mut lines);
            }
            while conn.poll_transmit(&mut out) {}
            let answered = !answer.is_empty();
            for kind in answer.drain(..) {
                let (status, body, hdrs): (_, _, &[(&str, &str)]) = match kind {
                    Some(Upgrade::WebSocket) => (
                        StatusCode::SWITCHING_PROTOCOLS,
                        BodyLen::None,
                        &[("Connection", "Upgrade"), ("Upgrade", "websocket")],
                    ),
                    Some(Upgrade::H2c) => (
                        StatusCode::SWITCHING_PROTOCOLS,
                        BodyLen::None,
                        &[("Connection", "Upgrade"), ("Upgrade", "h2c")],
                    ),
                    Some(Upgrade::Connect) => (StatusCode::OK, BodyLen::None, &[]),
                    None => (StatusCode::OK, BodyLen::Known(2), &[]),
                };
                conn.write_response_head(status, hdrs, body, now(), &mut out)
                    .unwrap();
                conn.write_body_chunk(b"ok", &mut out).unwrap();
                conn.finish_response(&mut out).unwrap();
            }
            match r {
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
                Ok(n) => {
                    assert!(n <= held.len());
                    held.drain(..n);
                    if n == 0 && !answered {
                        break;
                    }
                }
            }
        }
        if fed == input.len() {
            break;
        }
    }
    if let Some(e) = error {
        lines.push(format!("error {} {e:?}", e.status().as_u16()));
    } else if conn.is_upgraded() {
        lines.push(format!("upgraded leftover={}", held.len()));
    } else if conn.should_close() {
        lines.push(format!("closed leftover={}", held.len()));
    } else if !held.is_empty() {
        lines.push(format!("paused leftover={}", held.len()));
    }
    // Trailing spaces are trimmed so vector files survive editors that strip them.
    let mut s = String::new();
    for l in lines {
        s.push_str(l.trim_end());
        s.push('\n');
    }
    (s, out)
}

/// Runs a vector whole, byte by byte and in random splits; all must match.
pub fn check_vector(rel: &str) {
    let v = load(rel);
    for split in [
        Split::Whole,
        Split::Bytewise,
        Split::Random(7),
        Split::Random(0xdead),
    ] {
        let (got, _) = drive(v.config, &v.request, split);
        assert_eq!(got, v.expected, "{} fed {split:?}", v.name);
    }
}

/// Every vector file under `tests/vectors/<dir>`.
pub fn list(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir().join(dir))
        .unwrap()
        .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    names
}
