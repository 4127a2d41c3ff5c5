//! Forwarding (reverse proxy) on both drivers: std upstreams in test threads, raw-socket
//! clients, and curl through ringwire to `python3 -m http.server` as an independent peer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use ringwire::http::forward::Upstream;
use ringwire::http::{HttpApp, HttpConfig, HttpServer, Response};
use ringwire::runtime::{DriverChoice, RuntimeConfig, ServerBuilder, ServerHandle};
use ringwire::ws::{EchoHandler, WsServer, WsServerConfig};

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    rewrites_and_adds_forwarded_headers,
    chunked_upstream_response_and_pipelining,
    refused_upstream_is_502,
    silent_upstream_is_504,
    large_bodies_both_ways,
    client_gone_aborts_upstream,
    curl_to_python_http_server,
);

fn start(d: DriverChoice, up: SocketAddr, timeout: Duration) -> (ServerHandle, SocketAddr) {
    let rt = RuntimeConfig {
        driver: d,
        threads: 1,
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let mut b = ServerBuilder::new(rt);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let mut cfg = HttpConfig {
        forward_timeout: timeout,
        ..HttpConfig::default()
    };
    // Forwarded request bodies obey the codec's max_body (16 MiB by default).
    cfg.limits.max_body = 64 << 20;
    let upstream = Upstream::parse(&format!("http://{up}/base"), None).unwrap();
    let app = Arc::new(
        HttpApp::new(cfg)
            .forward("/api/", upstream)
            .get("/local", |_| Response::text(200, "local")),
    );
    let ws = Arc::new(WsServerConfig::default());
    let s = b
        .start(move |_| {
            WsServer::new(EchoHandler, ws.clone()).with_http(HttpServer::new(app.clone()))
        })
        .unwrap();
    let a = s.local_addrs()[0];
    (s, a)
}

/// Read one request head from a std stream.
fn read_head(r: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            return lines;
        }
        let l = l.trim_end().to_string();
        if l.is_empty() {
            return lines;
        }
        lines.push(l);
    }
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Read a response (content-length or chunked) from the client side.
fn read_response(r: &mut BufReader<TcpStream>) -> (u16, Vec<String>, Vec<u8>) {
    let head = read_head(r);
    let status: u16 = head[0].split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = Vec::new();
    if let Some(n) = header(&head, "content-length") {
        body.resize(n.parse().unwrap(), 0);
        r.read_exact(&mut body).unwrap();
    } else if header(&head, "transfer-encoding") == Some("chunked") {
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            let n = usize::from_str_radix(l.trim(), 16).unwrap();
            let mut c = vec![0; n + 2];
            r.read_exact(&mut c).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&c[..n]);
        }
    }
    (status, head, body)
}

fn client(a: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    BufReader::new(s)
}

/// An upstream that answers each connection with `f(head, body-reader)`.
fn upstream(
    f: impl Fn(Vec<String>, &mut BufReader<TcpStream>) + Send + Sync + 'static,
) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    let f = Arc::new(f);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let f = f.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut r = BufReader::new(s);
                let head = read_head(&mut r);
                f(head, &mut r);
            });
        }
    });
    a
}

fn rewrites_and_adds_forwarded_headers(d: DriverChoice) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let up = upstream(move |head, r| {
        let _ = tx.lock().unwrap().send(head.clone());
        let body = b"hello from upstream";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Up: yes\r\n\r\n",
            body.len()
        );
        let s = r.get_mut();
        s.write_all(resp.as_bytes()).unwrap();
        s.write_all(body).unwrap();
    });
    let (_srv, a) = start(d, up, Duration::from_secs(30));
    let mut c = client(a);
    c.get_mut()
        .write_all(
            b"GET /api/items?x=1 HTTP/1.1\r\nHost: front.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nTE: trailers\r\nX-Forwarded-For: 10.1.2.3\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
    let (status, head, body) = read_response(&mut c);
    assert_eq!(status, 200);
    assert_eq!(body, b"hello from upstream");
    assert_eq!(header(&head, "x-up"), Some("yes"));
    assert_eq!(header(&head, "x-hop"), None);
    assert_eq!(header(&head, "keep-alive"), None);
    let up_head = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(up_head[0], "GET /base/items?x=1 HTTP/1.1");
    assert_eq!(header(&up_head, "host"), Some(up.to_string().as_str()));
    assert_eq!(
        header(&up_head, "x-forwarded-for"),
        Some("10.1.2.3, 127.0.0.1")
    );
    assert_eq!(header(&up_head, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(&up_head, "x-forwarded-host"), Some("front.test"));
    assert_eq!(header(&up_head, "via"), Some("1.1 ringwire"));
    assert_eq!(header(&up_head, "x-secret"), None);
    assert_eq!(header(&up_head, "te"), None);
    assert_eq!(header(&up_head, "accept"), Some("*/*"));
    // The connection stays usable for local routes.
    c.get_mut()
        .write_all(b"GET /local HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, _, body) = read_response(&mut c);
    assert_eq!((status, body.as_slice()), (200, &b"local"[..]));
}

fn chunked_upstream_response_and_pipelining(d: DriverChoice) {
    let up = upstream(|head, r| {
        let path = head[0].split(' ').nth(1).unwrap().to_string();
        let s = r.get_mut();
        if path.ends_with("/slow") {
            std::thread::sleep(Duration::from_millis(200));
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        for piece in [&b"path="[..], path.as_bytes()] {
            s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .unwrap();
            s.write_all(piece).unwrap();
            s.write_all(b"\r\n").unwrap();
        }
        s.write_all(b"0\r\nX-Trailer: t\r\n\r\n").unwrap();
    });
    let (_srv, a) = start(d, up, Duration::from_secs(30));
    let mut c = client(a);
    // Pipelined: the slow one first; answers come back in request order.
    c.get_mut()
        .write_all(
            b"GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\nGET /api/fast HTTP/1.1\r\nHost: x\r\n\r\nGET /local HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
    let (s1, _, b1) = read_response(&mut c);
    let (s2, _, b2) = read_response(&mut c);
    let (s3, _, b3) = read_response(&mut c);
    assert_eq!((s1, b1.as_slice()), (200, &b"path=/base/slow"[..]));
    assert_eq!((s2, b2.as_slice()), (200, &b"path=/base/fast"[..]));
    assert_eq!((s3, b3.as_slice()), (200, &b"local"[..]));
}

fn refused_upstream_is_502(d: DriverChoice) {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (_srv, a) = start(d, dead, Duration::from_secs(30));
    let mut c = client(a);
    c.get_mut()
        .write_all(b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, _, _) = read_response(&mut c);
    assert_eq!(status, 502);
}

fn silent_upstream_is_504(d: DriverChoice) {
    let up = upstream(|_head, r| {
        // Read, never answer.
        let mut buf = [0u8; 64];
        let _ = r.read(&mut buf);
        std::thread::sleep(Duration::from_secs(5));
    });
    let (_srv, a) = start(d, up, Duration::from_millis(300));
    let mut c = client(a);
    let t = std::time::Instant::now();
    c.get_mut()
        .write_all(b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, _, _) = read_response(&mut c);
    assert_eq!(status, 504);
    assert!(t.elapsed() < Duration::from_secs(3));
}

fn large_bodies_both_ways(d: DriverChoice) {
    const N: usize = 20 << 20;
    // Echo upstream: reads the whole body, answers with the same bytes, streamed.
    let up = upstream(|head, r| {
        let n: usize = header(&head, "content-length").unwrap().parse().unwrap();
        let mut got = 0usize;
        let mut sum = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        while got < n {
            let k = r.read(&mut buf[..(n - got).min(1 << 16)]).unwrap();
            assert!(k > 0);
            sum += buf[..k].iter().map(|b| *b as u64).sum::<u64>();
            got += k;
        }
        let s = r.get_mut();
        s.write_all(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nX-Sum: {sum}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let chunk: Vec<u8> = (0..1 << 16).map(|i| (i % 251) as u8).collect();
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            s.write_all(&chunk[..k]).unwrap();
            left -= k;
        }
    });
    let (_srv, a) = start(d, up, Duration::from_secs(30));
    let mut c = client(a);
    let w = c.get_mut().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut w = w;
        w.write_all(
            format!("POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: {N}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let chunk: Vec<u8> = (0..1 << 16).map(|i| (i % 7) as u8).collect();
        let mut left = N;
        while left > 0 {
            let k = left.min(chunk.len());
            w.write_all(&chunk[..k]).unwrap();
            left -= k;
        }
    });
    let head = read_head(&mut c);
    assert!(head[0].contains(" 200 "), "{head:?}");
    let expect_sum: u64 = (0..N).map(|i| ((i % (1 << 16)) % 7) as u64).sum();
    assert_eq!(
        header(&head, "x-sum"),
        Some(expect_sum.to_string().as_str())
    );
    assert_eq!(
        header(&head, "content-length"),
        Some(N.to_string().as_str())
    );
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    while got < N {
        let k = c.read(&mut buf).unwrap();
        assert!(k > 0);
        for (j, b) in buf[..k].iter().enumerate() {
            assert_eq!(*b as usize, ((got + j) % (1 << 16)) % 251);
        }
        got += k;
    }
    writer.join().unwrap();
}

fn client_gone_aborts_upstream(d: DriverChoice) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let up = upstream(move |_head, r| {
        let s = r.get_mut();
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        // Stream until the proxy drops us.
        let piece = vec![b'x'; 1 << 14];
        let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
        frame.extend_from_slice(&piece);
        frame.extend_from_slice(b"\r\n");
        let t = std::time::Instant::now();
        let gone = loop {
            if s.write_all(&frame).is_err() {
                break true;
            }
            if t.elapsed() > Duration::from_secs(10) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let _ = tx.lock().unwrap().send(gone);
    });
    let (_srv, a) = start(d, up, Duration::from_secs(30));
    let mut c = client(a);
    c.get_mut()
        .write_all(b"GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_head(&mut c);
    assert!(head[0].contains(" 200 "));
    let mut buf = [0u8; 4096];
    c.read_exact(&mut buf).unwrap();
    drop(c);
    assert_eq!(rx.recv_timeout(Duration::from_secs(15)), Ok(true));
}

fn curl_to_python_http_server(d: DriverChoice) {
    let have = |p: &str| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("curl") || !have("python3") {
        eprintln!("skipped: curl or python3 not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "ringwire-fwd-py-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(dir.join("base")).unwrap();
    std::fs::write(dir.join("base/hello.txt"), "hello via python\n").unwrap();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut py = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if TcpStream::connect(up).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_srv, a) = start(d, up, Duration::from_secs(30));
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-i",
            "--max-time",
            "10",
            &format!("http://{a}/api/hello.txt"),
        ])
        .output()
        .unwrap();
    let _ = py.kill();
    let _ = py.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Via: 1.1 ringwire"), "{text}");
    assert!(text.ends_with("hello via python\n"), "{text}");
}
