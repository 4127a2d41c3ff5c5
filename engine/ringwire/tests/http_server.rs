//! The HTTP plugin on the HTTP/WebSocket port, on real sockets, on both drivers: raw sockets
//! for keep-alive, pipelining, uploads, static files, SSE and limits; curl as an independent
//! client (skipped with a notice when curl is not installed).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ringwire::http::{
    BodySink, BodyStream, Cors, HttpApp, HttpConfig, HttpServer, Limits, Request, Response,
    SseEndpoint, SseEvent, files, sse,
};
use ringwire::runtime::{Bytes, DriverChoice, RuntimeConfig, ServerBuilder, ServerHandle};
use ringwire::ws::{EchoHandler, WsServer, WsServerConfig};

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    keep_alive_and_pipelining_in_order,
    keep_alive_requests_after_idle_gaps,
    pipelining_past_the_codec_depth,
    chunked_upload_streamed_to_handler,
    whole_body_and_content_length_upload,
    static_file_etag_304_range_traversal,
    large_static_file_streamed,
    static_cache_answers_from_memory_within_the_window,
    static_cache_sees_changes_after_the_window,
    sse_stream_with_last_event_id,
    sse_stream_goes_on_whatever_its_client_sends,
    sse_stream_to_an_http10_client_is_not_chunked,
    limits_one_over_each,
    hook_cors_options_405_500,
    websocket_first_then_http_and_late_upgrade_refused,
    curl_static_upload_and_sse,
    serve_binary_www_cors_and_events,
    mutated_requests_never_take_the_server_down,
    slow_head_gets_408,
    keep_alive_limit_closes_quiet_connections_only,
);

/// Counts a streamed body: answers "pieces=N bytes=M".
struct Counter {
    pieces: usize,
    bytes: usize,
}

impl BodySink for Counter {
    fn data(&mut self, _req: &Request, chunk: &[u8]) {
        self.pieces += 1;
        self.bytes += chunk.len();
    }
    fn finish(self: Box<Self>, _req: &Request) -> Response {
        Response::text(200, format!("pieces={} bytes={}", self.pieces, self.bytes))
    }
}

/// A streamed body: "3\n", "2\n", "1\n".
struct Countdown(u32);

impl BodyStream for Countdown {
    fn next_chunk(&mut self) -> Option<Bytes> {
        let n = self.0;
        self.0 = n.checked_sub(1)?;
        Some(Bytes::from(format!("{n}\n")))
    }
}

fn www_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ringwire-http-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("index.html"), "<h1>index</h1>\n").unwrap();
    std::fs::write(d.join("a.txt"), "0123456789abcdefghij").unwrap();
    std::fs::write(d.join("sub/index.html"), "sub\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(d.join("big.bin"), big).unwrap();
    // Outside the root, for traversal attempts.
    std::fs::write(d.with_extension("secret"), "secret").unwrap();
    d
}

fn cleanup(www: &std::path::Path) {
    let _ = std::fs::remove_dir_all(www);
    let _ = std::fs::remove_file(www.with_extension("secret"));
}

fn app(cfg: HttpConfig) -> HttpApp {
    HttpApp::new(cfg)
        .before(|r| {
            (r.path() == "/private" && r.header("authorization").is_none())
                .then(|| Response::status(401).with_header("WWW-Authenticate", "Bearer"))
        })
        .get("/hello", |r| {
            Response::text(200, format!("hello {}", r.query_param("n").unwrap_or("-")))
        })
        .get("/private", |_| Response::text(200, "secret"))
        .post("/echo", |r| {
            Response::bytes(200, "application/octet-stream", r.body().to_vec())
        })
        .streaming(Some("POST"), "/count", |_| {
            Box::new(Counter {
                pieces: 0,
                bytes: 0,
            })
        })
        .prefix(Some("GET"), "/api/", |r| {
            Response::text(200, format!("rest={}", r.path_rest()))
        })
        .get("/panic", |_| panic!("handler bug"))
        .get("/stream", |_| {
            Response::stream(200, "text/plain", Countdown(3))
        })
        .get("/file", |r| {
            Response::file(r, r.query_param("p").unwrap_or("/nonexistent"))
        })
        .sse(
            "/sse",
            SseEndpoint::new("test").with_tick(Duration::from_millis(20), |seq| {
                SseEvent::data(format!("tick {seq}\nline2"))
                    .with_id(seq.to_string())
                    .with_event("t")
            }),
        )
}

fn start_with(d: DriverChoice, cfg: HttpConfig) -> (ServerHandle, SocketAddr) {
    let rt = RuntimeConfig {
        driver: d,
        threads: 1,
        ..Default::default()
    };
    let mut b = ServerBuilder::new(rt);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let app = Arc::new(app(cfg));
    let ws = Arc::new(WsServerConfig::default());
    let s = b
        .start(move |_| {
            WsServer::new(EchoHandler, ws.clone()).with_http(HttpServer::new(app.clone()))
        })
        .unwrap();
    let a = s.local_addrs()[0];
    (s, a)
}

fn start(d: DriverChoice) -> (ServerHandle, SocketAddr) {
    start_with(d, HttpConfig::default())
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

fn send(c: &mut BufReader<TcpStream>, bytes: &[u8]) {
    c.get_mut().write_all(bytes).unwrap();
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Read one response (Content-Length, chunked, or none for HEAD/304/204 when `head`).
fn read_resp(c: &mut BufReader<TcpStream>, head: bool) -> Resp {
    let mut line = String::new();
    c.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 "), "status line {line:?}");
    let status: u16 = line[9..12].parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        c.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.to_owned(), v.trim().to_owned()));
    }
    let mut r = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head || status == 304 || status == 204 {
        return r;
    }
    if let Some(n) = r.header("content-length") {
        let mut body = vec![0; n.parse().unwrap()];
        c.read_exact(&mut body).unwrap();
        r.body = body;
    } else if r.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut l = String::new();
            c.read_line(&mut l).unwrap();
            let n = usize::from_str_radix(l.trim(), 16).unwrap();
            let mut piece = vec![0; n + 2];
            c.read_exact(&mut piece).unwrap();
            if n == 0 {
                break;
            }
            r.body.extend_from_slice(&piece[..n]);
        }
    }
    r
}

fn get(addr: SocketAddr, target: &str, extra: &str) -> Resp {
    let mut c = connect(addr);
    send(
        &mut c,
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes(),
    );
    read_resp(&mut c, false)
}

/// The server closed: EOF (or a reset) on the next read.
fn assert_closed(c: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "unexpected bytes {:?}",
        String::from_utf8_lossy(&rest)
    );
}

fn keep_alive_and_pipelining_in_order(d: DriverChoice) {
    let (_s, addr) = start(d);
    let mut c = connect(addr);
    // The first request (which the WebSocket plugin looked at first) and two more, in one write.
    send(
        &mut c,
        b"GET /hello?n=1 HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
          HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /nope HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /api/v1/items HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let r = read_resp(&mut c, false);
    assert_eq!((r.status, r.text()), (200, "hello 1"));
    let r = read_resp(&mut c, false);
    assert_eq!((r.status, r.text()), (200, "abc"));
    let r = read_resp(&mut c, true);
    assert_eq!((r.status, r.header("content-length")), (200, Some("7")));
    let r = read_resp(&mut c, false);
    assert_eq!(r.status, 404);
    let r = read_resp(&mut c, false);
    assert_eq!((r.status, r.text()), (200, "rest=v1/items"));
    // Still open: one more, split across writes, then Connection: close.
    send(&mut c, b"GET /hello?n=2 HTT");
    std::thread::sleep(Duration::from_millis(20));
    send(&mut c, b"P/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = read_resp(&mut c, false);
    assert_eq!((r.status, r.text()), (200, "hello 2"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_closed(&mut c);
}

/// Between requests a keep-alive connection gives back what parsing and answering used: the
/// next requests, whole, split anywhere, with many fields, with a body that comes later, or
/// answered with a stream, are served as on a fresh connection.
fn keep_alive_requests_after_idle_gaps(d: DriverChoice) {
    let (_s, addr) = start(d);
    let mut c = connect(addr);
    let pause = || std::thread::sleep(Duration::from_millis(5));
    for i in 0..3 {
        send(
            &mut c,
            format!("GET /hello?n={i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        assert_eq!(read_resp(&mut c, false).text(), format!("hello {i}"));
        pause();
        // A head of 40 fields (more than any buffer's first capacity), in three pieces.
        let mut head = format!("GET /hello?n=f{i} HTTP/1.1\r\nHost: x\r\n");
        for k in 0..40 {
            head.push_str(&format!("X-Field-{k}: {}\r\n", "v".repeat(k + 1)));
        }
        head.push_str("\r\n");
        let (a, rest) = head.split_at(10);
        let (b, tail) = rest.split_at(rest.len() / 2);
        for piece in [a, b, tail] {
            send(&mut c, piece.as_bytes());
            pause();
        }
        assert_eq!(read_resp(&mut c, false).text(), format!("hello f{i}"));
        // A body that comes after its head, in two pieces.
        send(
            &mut c,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
        );
        pause();
        send(&mut c, b"ab");
        pause();
        send(&mut c, b"cde");
        let r = read_resp(&mut c, false);
        assert_eq!((r.status, r.text()), (200, "abcde"));
        // A streamed (chunked) answer, then a request right behind another one's answer.
        send(&mut c, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(read_resp(&mut c, false).text(), "3\n2\n1\n");
        pause();
    }
    send(
        &mut c,
        b"GET /hello?n=end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(read_resp(&mut c, false).text(), "hello end");
    assert_closed(&mut c);
}

/// More pipelined requests than the codec parses ahead (16), after small and after large
/// responses: every one is answered, in order.
fn pipelining_past_the_codec_depth(d: DriverChoice) {
    let www = www_dir("pipeline");
    let (_s, addr) = start_with(
        d,
        HttpConfig {
            www: Some(www.clone()),
            ..Default::default()
        },
    );
    let mut c = connect(addr);
    let mut w = String::new();
    for i in 0..40 {
        w.push_str(&format!("GET /hello?n={i} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    send(&mut c, w.as_bytes());
    for i in 0..40 {
        assert_eq!(read_resp(&mut c, false).text(), format!("hello {i}"));
    }
    let mut w = String::new();
    for _ in 0..20 {
        w.push_str("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    w.push_str("GET /hello?n=last HTTP/1.1\r\nHost: x\r\n\r\n");
    send(&mut c, w.as_bytes());
    for _ in 0..20 {
        let r = read_resp(&mut c, false);
        assert_eq!((r.status, r.body.len()), (200, 3_000_000));
    }
    assert_eq!(read_resp(&mut c, false).text(), "hello last");
    cleanup(&www);
}

fn chunked_upload_streamed_to_handler(d: DriverChoice) {
    let (_s, addr) = start(d);
    let mut c = connect(addr);
    send(
        &mut c,
        b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let piece = vec![b'z'; 5000];
    for _ in 0..20 {
        let mut w = format!("{:x}\r\n", piece.len()).into_bytes();
        w.extend_from_slice(&piece);
        w.extend_from_slice(b"\r\n");
        send(&mut c, &w);
    }
    send(&mut c, b"0\r\n\r\n");
    let r = read_resp(&mut c, false);
    assert_eq!(r.status, 200);
    let t = r.text();
    assert!(t.ends_with("bytes=100000"), "{t}");
    let pieces: usize = t
        .strip_prefix("pieces=")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(pieces >= 2, "streamed in pieces: {t}");
    // Expect: 100-continue gets the interim response before the body is sent.
    send(
        &mut c,
        b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    let mut l = String::new();
    c.read_line(&mut l).unwrap();
    assert_eq!(l, "HTTP/1.1 100 Continue\r\n");
    c.read_line(&mut l).unwrap();
    send(&mut c, b"wxyz");
    let r = read_resp(&mut c, false);
    assert_eq!(r.text(), "pieces=1 bytes=4");
}

fn whole_body_and_content_length_upload(d: DriverChoice) {
    let (_s, addr) = start(d);
    let mut c = connect(addr);
    let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    send(
        &mut c,
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    send(&mut c, &body);
    let r = read_resp(&mut c, false);
    assert_eq!(r.status, 200);
    assert!(r.body == body);
}

fn static_file_etag_304_range_traversal(d: DriverChoice) {
    let www = www_dir("static");
    let (_s, addr) = start_with(
        d,
        HttpConfig {
            www: Some(www.clone()),
            ..Default::default()
        },
    );
    let r = get(addr, "/a.txt", "");
    assert_eq!((r.status, r.text()), (200, "0123456789abcdefghij"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = r.header("etag").unwrap().to_owned();
    let lm = r.header("last-modified").unwrap().to_owned();
    let r = get(addr, "/a.txt", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = get(addr, "/a.txt", "If-None-Match: \"other\"\r\n");
    assert_eq!(r.status, 200);
    let r = get(addr, "/a.txt", &format!("If-Modified-Since: {lm}\r\n"));
    assert_eq!(r.status, 304);
    let r = get(
        addr,
        "/a.txt",
        "If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT\r\n",
    );
    assert_eq!(r.status, 200);
    // Ranges.
    let r = get(addr, "/a.txt", "Range: bytes=2-5\r\n");
    assert_eq!((r.status, r.text()), (206, "2345"));
    assert_eq!(r.header("content-range"), Some("bytes 2-5/20"));
    let r = get(addr, "/a.txt", "Range: bytes=-3\r\n");
    assert_eq!((r.status, r.text()), (206, "hij"));
    let r = get(addr, "/a.txt", "Range: bytes=20-\r\n");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */20"));
    let r = get(
        addr,
        "/a.txt",
        "Range: bytes=0-1\r\nIf-Range: \"stale\"\r\n",
    );
    assert_eq!(r.status, 200);
    // index.html, directory redirect.
    let r = get(addr, "/", "");
    assert_eq!((r.status, r.text()), (200, "<h1>index</h1>\n"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = get(addr, "/sub", "");
    assert_eq!((r.status, r.header("location")), (301, Some("/sub/")));
    let r = get(addr, "/sub/", "");
    assert_eq!(r.text(), "sub\n");
    let r = get(addr, "//sub", "");
    assert_eq!((r.status, r.header("location")), (301, Some("/sub/")));
    // A symlink out of the root is refused.
    std::os::unix::fs::symlink(www.with_extension("secret"), www.join("link")).unwrap();
    assert_eq!(get(addr, "/link", "").status, 403);
    // Traversal: refused, never the file outside the root.
    let name = www.with_extension("secret");
    let name = name.file_name().unwrap().to_str().unwrap();
    for t in [
        format!("/../{name}"),
        format!("/%2e%2e/{name}"),
        format!("/sub/..%2f..%2f{name}"),
        "/..%5c..%5cetc/passwd".to_owned(),
    ] {
        let r = get(addr, &t, "");
        assert!(r.status == 403 || r.status == 404, "{t}: {}", r.status);
        assert_ne!(r.text(), "secret");
    }
    assert_eq!(get(addr, "/a%00.txt", "").status, 400);
    assert_eq!(get(addr, "/missing.txt", "").status, 404);
    // Static files answer GET/HEAD only.
    let mut c = connect(addr);
    send(&mut c, b"DELETE /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = read_resp(&mut c, false);
    assert_eq!(r.status, 405);
    cleanup(&www);
}

fn large_static_file_streamed(d: DriverChoice) {
    let www = www_dir("large");
    let want = std::fs::read(www.join("big.bin")).unwrap();
    // With sendfile (the default) and without: the same bytes, and the runtime's counter of
    // bytes written by sendfile(2) tells which path carried them.
    for sendfile in [true, false] {
        let (s, addr) = start_with(
            d,
            HttpConfig {
                www: Some(www.clone()),
                sendfile,
                ..Default::default()
            },
        );
        let mut c = connect(addr);
        // Three pipelined: the later ones wait for the 3 MB body, sent as the socket drains.
        send(
            &mut c,
            b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000000-1000009\r\n\r\nHEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        let r = read_resp(&mut c, false);
        assert_eq!(r.status, 200);
        assert!(r.body == want, "body differs (sendfile {sendfile})");
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        let r = read_resp(&mut c, false);
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &want[1_000_000..1_000_010]);
        let r = read_resp(&mut c, true);
        assert_eq!(r.status, 200);
        let len = want.len().to_string();
        assert_eq!(r.header("content-length"), Some(len.as_str()));
        // Nothing after the HEAD answer: the next request's answer comes next, intact.
        send(
            &mut c,
            b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-5\r\n\r\n",
        );
        let r = read_resp(&mut c, false);
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &want[want.len() - 5..]);
        let expect = if sendfile { want.len() as u64 + 15 } else { 0 };
        let t = std::time::Instant::now();
        while s.stats()[0].file_bytes_out != expect {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "file_bytes_out {} want {expect}",
                s.stats()[0].file_bytes_out
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        s.stop();
    }
    cleanup(&www);
}

/// One request on a keep-alive connection.
fn ask(c: &mut BufReader<TcpStream>, method: &str, target: &str, extra: &str) -> Resp {
    send(
        c,
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes(),
    );
    read_resp(c, method == "HEAD")
}

/// A static root with `small.txt` (13 bytes, held in memory), `a.txt` (20 bytes, above
/// `max_file`: metadata only) and a server whose cache keeps answers for `valid`.
fn start_cached(
    d: DriverChoice,
    name: &str,
    valid: Duration,
) -> (ServerHandle, SocketAddr, PathBuf) {
    let www = www_dir(name);
    std::fs::write(www.join("small.txt"), "hello, world\n").unwrap();
    let (s, addr) = start_with(
        d,
        HttpConfig {
            www: Some(www.clone()),
            www_cache: files::CacheConfig {
                valid,
                max_file: 16,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    (s, addr, www)
}

/// A window longer than the test: what was changed on disk is not seen, so every answer below
/// comes from the cache (hits, 304, ranges, 416, If-Range, HEAD, 404, redirects); security
/// checks still answer 403.
fn static_cache_answers_from_memory_within_the_window(d: DriverChoice) {
    let (_s, addr, www) = start_cached(d, "cache-hit", Duration::from_secs(600));
    let mut c = connect(addr);
    let r = ask(&mut c, "GET", "/small.txt", "");
    assert_eq!((r.status, r.text()), (200, "hello, world\n"));
    let etag = r.header("etag").unwrap().to_owned();
    let lm = r.header("last-modified").unwrap().to_owned();
    std::fs::write(www.join("small.txt"), "changed on disk, not yet seen").unwrap();
    let r = ask(&mut c, "GET", "/small.txt", "");
    assert_eq!((r.status, r.text()), (200, "hello, world\n"));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let r = ask(
        &mut c,
        "GET",
        "/small.txt",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!((r.status, r.header("etag")), (304, Some(etag.as_str())));
    assert_eq!(r.header("content-type"), None);
    let r = ask(
        &mut c,
        "GET",
        "/small.txt",
        &format!("If-Modified-Since: {lm}\r\n"),
    );
    assert_eq!(r.status, 304);
    let r = ask(&mut c, "GET", "/small.txt", "Range: bytes=7-11\r\n");
    assert_eq!((r.status, r.text()), (206, "world"));
    assert_eq!(r.header("content-range"), Some("bytes 7-11/13"));
    let r = ask(&mut c, "GET", "/small.txt", "Range: bytes=-6\r\n");
    assert_eq!((r.status, r.text()), (206, "world\n"));
    let r = ask(&mut c, "GET", "/small.txt", "Range: bytes=13-\r\n");
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */13"))
    );
    let r = ask(
        &mut c,
        "GET",
        "/small.txt",
        "Range: bytes=0-4\r\nIf-Range: \"stale\"\r\n",
    );
    assert_eq!((r.status, r.text()), (200, "hello, world\n"));
    let r = ask(
        &mut c,
        "GET",
        "/small.txt",
        &format!("Range: bytes=0-4\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!((r.status, r.text()), (206, "hello"));
    let r = ask(&mut c, "HEAD", "/small.txt", "");
    assert_eq!((r.status, r.header("content-length")), (200, Some("13")));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    // Above max_file: opened per request, whole and ranges, twice (the second from cached
    // metadata).
    for _ in 0..2 {
        let r = ask(&mut c, "GET", "/a.txt", "");
        assert_eq!((r.status, r.text()), (200, "0123456789abcdefghij"));
        let r = ask(&mut c, "GET", "/a.txt", "Range: bytes=2-5\r\n");
        assert_eq!((r.status, r.text()), (206, "2345"));
        assert_eq!(r.header("content-range"), Some("bytes 2-5/20"));
        let r = ask(&mut c, "GET", "/a.txt", "Range: bytes=20-\r\n");
        assert_eq!(r.status, 416);
        let r = ask(
            &mut c,
            "GET",
            "/big.bin",
            "Range: bytes=1000000-1000009\r\n",
        );
        assert_eq!(r.status, 206);
        assert_eq!(r.body.len(), 10);
    }
    let want = std::fs::read(www.join("big.bin")).unwrap();
    assert!(ask(&mut c, "GET", "/big.bin", "").body == want);
    // 404 cached: a file created inside the window is not seen yet.
    assert_eq!(ask(&mut c, "GET", "/later.txt", "").status, 404);
    std::fs::write(www.join("later.txt"), "later").unwrap();
    assert_eq!(ask(&mut c, "GET", "/later.txt", "").status, 404);
    // Redirects: the cached answer keeps each request's query.
    let r = ask(&mut c, "GET", "/sub", "");
    assert_eq!((r.status, r.header("location")), (301, Some("/sub/")));
    let r = ask(&mut c, "GET", "/sub?x=1", "");
    assert_eq!((r.status, r.header("location")), (301, Some("/sub/?x=1")));
    assert_eq!(ask(&mut c, "GET", "/sub/", "").text(), "sub\n");
    // Security answers are the same the second time.
    std::os::unix::fs::symlink(www.with_extension("secret"), www.join("link")).unwrap();
    let name = www.with_extension("secret");
    let name = name.file_name().unwrap().to_str().unwrap().to_owned();
    for _ in 0..2 {
        assert_eq!(ask(&mut c, "GET", "/link", "").status, 403);
        let r = ask(&mut c, "GET", &format!("/%2e%2e/{name}"), "");
        assert_eq!(r.status, 403);
        assert_eq!(ask(&mut c, "GET", "/a%00.txt", "").status, 400);
    }
    cleanup(&www);
}

/// A 50 ms window: changes, new files and deletions show once it has passed; with the cache
/// off (window 0) at once.
fn static_cache_sees_changes_after_the_window(d: DriverChoice) {
    let past = Duration::from_millis(200);
    let (_s, addr, www) = start_cached(d, "cache-change", Duration::from_millis(50));
    let mut c = connect(addr);
    let r = ask(&mut c, "GET", "/small.txt", "");
    let etag = r.header("etag").unwrap().to_owned();
    let r = ask(&mut c, "GET", "/a.txt", "");
    let big_etag = r.header("etag").unwrap().to_owned();
    assert_eq!(ask(&mut c, "GET", "/later.txt", "").status, 404);
    std::fs::write(www.join("small.txt"), "bye\n").unwrap();
    std::fs::write(www.join("a.txt"), "abcdefghijklmnopqrstuvwxyz").unwrap();
    std::fs::write(www.join("later.txt"), "later").unwrap();
    std::thread::sleep(past);
    let r = ask(&mut c, "GET", "/small.txt", "");
    assert_eq!((r.status, r.text()), (200, "bye\n"));
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    let r = ask(
        &mut c,
        "GET",
        "/small.txt",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(r.status, 200);
    let r = ask(&mut c, "GET", "/a.txt", "");
    assert_eq!(r.text(), "abcdefghijklmnopqrstuvwxyz");
    assert_ne!(r.header("etag"), Some(big_etag.as_str()));
    let r = ask(&mut c, "GET", "/a.txt", "Range: bytes=20-\r\n");
    assert_eq!((r.status, r.text()), (206, "uvwxyz"));
    assert_eq!(ask(&mut c, "GET", "/later.txt", "").text(), "later");
    // Deleted: 404 after the window.
    std::fs::remove_file(www.join("small.txt")).unwrap();
    std::fs::remove_file(www.join("a.txt")).unwrap();
    std::thread::sleep(past);
    assert_eq!(ask(&mut c, "GET", "/small.txt", "").status, 404);
    assert_eq!(ask(&mut c, "GET", "/a.txt", "").status, 404);
    cleanup(&www);
    // Window 0: no cache.
    let (_s, addr, www) = start_cached(d, "cache-off", Duration::ZERO);
    let mut c = connect(addr);
    assert_eq!(
        ask(&mut c, "GET", "/small.txt", "").text(),
        "hello, world\n"
    );
    std::fs::write(www.join("small.txt"), "bye\n").unwrap();
    assert_eq!(ask(&mut c, "GET", "/small.txt", "").text(), "bye\n");
    std::fs::remove_file(www.join("small.txt")).unwrap();
    assert_eq!(ask(&mut c, "GET", "/small.txt", "").status, 404);
    cleanup(&www);
}

fn read_event(c: &mut BufReader<TcpStream>) -> Vec<String> {
    // Chunk-framed: size line, event lines, CRLF.
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        c.read_line(&mut l).unwrap();
        let l = l.trim_end_matches(['\r', '\n']).to_owned();
        if l.is_empty() && !lines.is_empty() {
            return lines;
        }
        if !l.is_empty() && !l.bytes().all(|b| b.is_ascii_hexdigit()) {
            lines.push(l);
        }
    }
}

fn sse_stream_with_last_event_id(d: DriverChoice) {
    let (s, addr) = start(d);
    let mut c = connect(addr);
    send(
        &mut c,
        b"GET /sse HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 41\r\n\r\n",
    );
    let r = read_resp(&mut c, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let first = read_event(&mut c);
    assert_eq!(first, [": ok"]);
    let e = read_event(&mut c);
    assert_eq!(e, ["event: t", "id: 42", "data: tick 42", "data: line2"]);
    let e = read_event(&mut c);
    assert_eq!(e[1], "id: 43");
    // A publication from outside the engine reaches the stream's subscribers.
    let ev = SseEvent::data("news").with_event("pub");
    assert_eq!(s.broadcast(sse::TAG_SSE, sse::publication("test", &ev)), 1);
    let got = (0..50)
        .map(|_| read_event(&mut c))
        .find(|e| e[0] == "event: pub")
        .unwrap();
    assert_eq!(got, ["event: pub", "data: news"]);
}

/// A live stream keeps only its own state (the request parsing goes): what its client sends
/// then (a request, garbage) is read and dropped, the stream goes on, and the connection
/// closes when the client does.
fn sse_stream_goes_on_whatever_its_client_sends(d: DriverChoice) {
    let (_s, addr) = start(d);
    let mut c = connect(addr);
    send(&mut c, b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_resp(&mut c, true).status, 200);
    assert_eq!(read_event(&mut c), [": ok"]);
    assert_eq!(read_event(&mut c)[1], "id: 0");
    send(
        &mut c,
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff garbage \r\n\r\n",
    );
    for seq in 1..4 {
        let e = read_event(&mut c);
        assert_eq!(
            e,
            [
                "event: t",
                &format!("id: {seq}"),
                &format!("data: tick {seq}"),
                "data: line2"
            ]
        );
    }
    // Half-closed by the client: the server closes (the last ticks may still arrive).
    c.get_mut().shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        !rest.contains("HTTP/1.1"),
        "an answer after the stream: {rest:?}"
    );
}

/// HTTP/1.0 has no chunked encoding: the stream's events go out bare, read until the close.
fn sse_stream_to_an_http10_client_is_not_chunked(d: DriverChoice) {
    let (_s, addr) = start(d);
    let mut c = connect(addr);
    send(&mut c, b"GET /sse HTTP/1.0\r\n\r\n");
    let r = read_resp(&mut c, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("content-length"), None);
    let mut lines = Vec::new();
    while lines.len() < 12 {
        let mut l = String::new();
        c.read_line(&mut l).unwrap();
        lines.push(l.trim_end_matches('\n').to_owned());
    }
    assert_eq!(
        lines,
        [
            ": ok",
            "",
            "event: t",
            "id: 0",
            "data: tick 0",
            "data: line2",
            "",
            "event: t",
            "id: 1",
            "data: tick 1",
            "data: line2",
            ""
        ]
    );
}

fn limits_one_over_each(d: DriverChoice) {
    let limits = Limits {
        max_request_line: 64,
        max_head_bytes: 256,
        max_headers: 4,
        max_body: 10,
        ..Limits::default()
    };
    let (_s, addr) = start_with(
        d,
        HttpConfig {
            limits,
            ..Default::default()
        },
    );
    let line = |n: usize| {
        let pad = "a".repeat(n - "GET / HTTP/1.1".len());
        format!("GET /{pad} HTTP/1.1\r\nHost: x\r\n\r\n")
    };
    let head = |n: usize| {
        let fixed = "GET / HTTP/1.1\r\nHost: x\r\nX: \r\n\r\n".len();
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "v".repeat(n - fixed)
        )
    };
    let fields = |n: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 1..n {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s + "\r\n"
    };
    let body = |n: usize| {
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n\r\n{}",
            "b".repeat(n)
        )
    };
    let chunked = |n: usize| {
        format!(
            "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{n:x}\r\n{}\r\n0\r\n\r\n",
            "c".repeat(n)
        )
    };
    let cases: [(String, u16, String, u16); 5] = [
        (line(64), 404, line(65), 414),
        (head(256), 404, head(257), 431),
        (fields(4), 404, fields(5), 431),
        (body(10), 200, body(11), 413),
        (chunked(10), 200, chunked(11), 413),
    ];
    for (at, at_status, over, over_status) in cases {
        let mut c = connect(addr);
        send(&mut c, at.as_bytes());
        assert_eq!(read_resp(&mut c, false).status, at_status, "{at:?}");
        let mut c = connect(addr);
        send(&mut c, over.as_bytes());
        let r = read_resp(&mut c, false);
        assert_eq!(r.status, over_status, "{over:?}");
        assert_eq!(r.header("connection"), Some("close"));
        assert_closed(&mut c);
    }
    // Hostile framing: an error status and a clean close.
    for bad in [
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n Folded: yes\r\n\r\n",
        "\x00\x01\x02 garbage\r\n\r\n",
    ] {
        let mut c = connect(addr);
        send(&mut c, bad.as_bytes());
        let r = read_resp(&mut c, false);
        assert_eq!(r.status, 400, "{bad:?}");
        assert_closed(&mut c);
    }
    // A second request on a keep-alive connection that breaks a limit.
    let mut c = connect(addr);
    send(&mut c, format!("{}{}", body(2), line(65)).as_bytes());
    assert_eq!(read_resp(&mut c, false).status, 200);
    assert_eq!(read_resp(&mut c, false).status, 414);
    assert_closed(&mut c);
}

fn hook_cors_options_405_500(d: DriverChoice) {
    let (_s, addr) = start_with(
        d,
        HttpConfig {
            cors: Some(Cors::origin("https://app.example")),
            ..Default::default()
        },
    );
    let r = get(addr, "/private", "");
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    let r = get(addr, "/private", "Authorization: Bearer x\r\n");
    assert_eq!((r.status, r.text()), (200, "secret"));
    let r = get(addr, "/hello", "Origin: https://app.example\r\n");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = get(addr, "/hello", "Origin: https://evil.example\r\n");
    assert_eq!(r.header("access-control-allow-origin"), None);
    let mut c = connect(addr);
    send(
        &mut c,
        b"OPTIONS /echo HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\
          Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: x-token\r\n\r\n\
          OPTIONS /hello HTTP/1.1\r\nHost: x\r\n\r\n\
          PUT /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\
          GET /panic HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let r = read_resp(&mut c, false);
    assert_eq!(r.status, 204);
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert_eq!(r.header("access-control-allow-headers"), Some("x-token"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = read_resp(&mut c, false);
    assert_eq!(
        (r.status, r.header("allow")),
        (204, Some("GET, HEAD, OPTIONS"))
    );
    let r = read_resp(&mut c, false);
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD, OPTIONS"))
    );
    let r = read_resp(&mut c, false);
    assert_eq!(r.status, 500);
    // The connection survives a handler's panic.
    let r = read_resp(&mut c, false);
    assert_eq!(r.status, 200);
    // A streamed body (chunked) and a file from a handler (with ranges).
    let r = get(addr, "/stream", "");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "3\n2\n1\n");
    let www = www_dir("handler-file");
    let p = www.join("a.txt");
    let r = get(
        addr,
        &format!("/file?p={}", p.display()),
        "Range: bytes=0-3\r\n",
    );
    assert_eq!((r.status, r.text()), (206, "0123"));
    assert_eq!(get(addr, "/file", "").status, 404);
    cleanup(&www);
}

fn websocket_first_then_http_and_late_upgrade_refused(d: DriverChoice) {
    let (_s, addr) = start(d);
    // A WebSocket still opens on the same port.
    let mut ws = common::ws_client(addr, "/echo", Duration::from_secs(10));
    ws.send(tungstenite::Message::text("hi")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("hi"));
    // An upgrade after a plain request on the same connection: 400, and HTTP goes on.
    let mut c = connect(addr);
    send(
        &mut c,
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\
          GET /hello?n=3 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(read_resp(&mut c, false).status, 200);
    assert_eq!(read_resp(&mut c, false).status, 400);
    assert_eq!(read_resp(&mut c, false).text(), "hello 3");
    // A POST or an HTTP/1.0 request first goes to HTTP too.
    let mut c = connect(addr);
    send(
        &mut c,
        b"POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\nok",
    );
    let mut all = String::new();
    c.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.ends_with("\r\n\r\nok"), "{all}");
}

fn curl() -> Option<&'static str> {
    let ok = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("NOTICE: curl not found; skipping the curl test");
    }
    ok.then_some("curl")
}

fn curl_static_upload_and_sse(d: DriverChoice) {
    let Some(curl) = curl() else { return };
    let www = www_dir("curl");
    let (_s, addr) = start_with(
        d,
        HttpConfig {
            www: Some(www.clone()),
            ..Default::default()
        },
    );
    let base = format!("http://{addr}");
    let out = Command::new(curl)
        .args(["-sS", "--fail", &format!("{base}/big.bin")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == std::fs::read(www.join("big.bin")).unwrap());
    // Keep-alive across two URLs (curl says it re-used the connection).
    let out = Command::new(curl)
        .args([
            "-sS",
            "-v",
            &format!("{base}/a.txt"),
            &format!("{base}/hello"),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Re-using") || err.contains("Reusing"), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "0123456789abcdefghijhello -"
    );
    // A chunked upload from curl.
    let out = Command::new(curl)
        .args([
            "-sS",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{}", www.join("big.bin").display()),
            &format!("{base}/count"),
        ])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.ends_with("bytes=3000000"), "{t}");
    // SSE with curl -N: at least two events within the time limit.
    let out = Command::new(curl)
        .args(["-sSN", "--max-time", "1", &format!("{base}/sse")])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("id: 0\ndata: tick 0\ndata: line2\n\n"), "{t}");
    assert!(t.contains("id: 1\n"), "{t}");
    cleanup(&www);
}

/// `ringwire serve --www DIR --cors-origin '*'`: static files with CORS, the `/events` clock.
fn serve_binary_www_cors_and_events(d: DriverChoice) {
    let www = www_dir("serve");
    let driver = if d == DriverChoice::Uring {
        "uring"
    } else {
        "epoll"
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["serve", "--threads", "1", "--driver", driver])
        .args(["--bind", "127.0.0.1:0"])
        .args(["--www", www.to_str().unwrap(), "--cors-origin", "*"])
        .args(["--www-cache-valid-ms", "0", "--www-cache-max-file", "1024"])
        .args(["--www-cache-size", "65536", "--www-cache-entries", "64"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port = common::announced_port(&first);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = get(addr, "/a.txt", "Origin: https://x.example\r\n");
    assert_eq!((r.status, r.text()), (200, "0123456789abcdefghij"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // --www-cache-valid-ms 0: no cache, a change shows at once.
    std::fs::write(www.join("a.txt"), "edited").unwrap();
    assert_eq!(get(addr, "/a.txt", "").text(), "edited");
    let mut c = connect(addr);
    send(
        &mut c,
        b"GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 9\r\n\r\n",
    );
    let r = read_resp(&mut c, true);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(read_event(&mut c), [": ok"]);
    let e = read_event(&mut c);
    assert_eq!(e[..2], ["event: time", "id: 10"]);
    assert!(
        e[2].starts_with("data: ") && e[2].ends_with(" GMT"),
        "{e:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
    cleanup(&www);
}

/// Truncations and bit flips of valid requests: each gets a response or a close (never a hang),
/// and the server answers normally afterwards (a panic would have stopped the core).
fn mutated_requests_never_take_the_server_down(d: DriverChoice) {
    let www = www_dir("mutate");
    let (_s, addr) = start_with(
        d,
        HttpConfig {
            www: Some(www.clone()),
            ..Default::default()
        },
    );
    let seeds: [&[u8]; 5] = [
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=2-5\r\nIf-None-Match: \"x\"\r\n\r\n",
        b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"OPTIONS /echo HTTP/1.1\r\nHost: x\r\nOrigin: o\r\nAccess-Control-Request-Method: POST\r\n\r\n",
        b"GET /sub/%2e%2e/a.txt?x=1 HTTP/1.0\r\n\r\n",
    ];
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..120 {
        let seed = seeds[i % seeds.len()];
        let mut m = seed.to_vec();
        if i % 3 == 0 {
            m.truncate((next() as usize) % m.len());
        } else {
            for _ in 0..(1 + next() % 3) {
                let at = (next() as usize) % m.len();
                m[at] ^= 1 << (next() % 8);
            }
        }
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = BufReader::new(s);
        send(&mut c, &m);
        c.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        // A response (or nothing) and then EOF, within the timeout.
        c.read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("case {i} {:?}: {e}", String::from_utf8_lossy(&m)));
        assert!(
            out.is_empty() || out.starts_with(b"HTTP/1.1 "),
            "case {i}: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    let r = get(addr, "/hello", "");
    assert_eq!((r.status, r.text()), (200, "hello -"));
    cleanup(&www);
}

/// Slowloris on a keep-alive connection: a head trickling in past `head_timeout` gets 408.
fn slow_head_gets_408(d: DriverChoice) {
    let (_s, addr) = start_with(
        d,
        HttpConfig {
            head_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    );
    let mut c = connect(addr);
    send(&mut c, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_resp(&mut c, false).status, 200);
    let t = std::time::Instant::now();
    for part in [
        &b"GET /hello HTTP/1.1\r\n"[..],
        b"X-A: 1\r\n",
        b"X-B: 2\r\n",
    ] {
        send(&mut c, part);
        std::thread::sleep(Duration::from_millis(150));
    }
    let r = read_resp(&mut c, false);
    assert_eq!(r.status, 408);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_closed(&mut c);
}

/// The keep-alive limit (the connection's deadline): a connection quiet that long is closed,
/// one that keeps asking is not, and none is closed early.
fn keep_alive_limit_closes_quiet_connections_only(d: DriverChoice) {
    let (_s, addr) = start_with(
        d,
        HttpConfig {
            keep_alive_timeout: Duration::from_millis(400),
            ..Default::default()
        },
    );
    let t = std::time::Instant::now();
    let mut quiet = connect(addr);
    send(&mut quiet, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_resp(&mut quiet, false).status, 200);
    let mut busy = connect(addr);
    // Asking every 150 ms for 900 ms: more than twice the limit in all, never quiet that long.
    for _ in 0..6 {
        send(&mut busy, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(read_resp(&mut busy, false).status, 200);
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eof(&mut quiet);
    assert!(t.elapsed() >= Duration::from_millis(400));
    send(&mut busy, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_resp(&mut busy, false).status, 200);
    let quiet_from = std::time::Instant::now();
    assert_eof(&mut busy);
    let waited = quiet_from.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

/// The server closed the connection: end of stream with nothing before it (not a timeout).
fn assert_eof(c: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    match c.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest)),
        Err(e) => panic!("no close: {e}"),
    }
}
