//! The HTTP port's extras on real sockets, on both drivers: authentication (Basic, Bearer,
//! Session, URL; HTTP and WebSocket), multipart uploads to disk, the connection log, the
//! built-in test page; and, with the `ringwire` binary as a child process, a large upload with
//! the server's RSS checked.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringwire::http::auth::AuthConfig;
use ringwire::http::log::LogConfig;
use ringwire::http::upload::{SaveAs, UploadConfig};
use ringwire::http::{HttpConfig, HttpServer, builtin};
use ringwire::runtime::{DriverChoice, RuntimeConfig, ServerBuilder, ServerHandle};
use ringwire::ws::{EchoHandler, WsServer, WsServerConfig};

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    auth_basic_bearer_exempt_on_http,
    auth_session_url_basic_on_websocket,
    upload_fields_files_hooks_and_names,
    upload_limits_and_malformed_bodies,
    log_file_lines,
    test_page_and_client_served,
    upload_256_mib_rss_bounded,
);

fn start(d: DriverChoice, app: ringwire::http::HttpApp) -> (ServerHandle, SocketAddr) {
    let rt = RuntimeConfig {
        driver: d,
        threads: 1,
        ..Default::default()
    };
    let mut b = ServerBuilder::new(rt);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let app = Arc::new(app);
    let ws = Arc::new(WsServerConfig::default());
    let s = b
        .start(move |_| {
            WsServer::new(EchoHandler, ws.clone()).with_http(HttpServer::new(app.clone()))
        })
        .unwrap();
    let a = s.local_addrs()[0];
    (s, a)
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ringwire-extras-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One request on a fresh connection; (status, head, body) read to EOF (Connection: close).
fn request(addr: SocketAddr, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, head, all[split + 4..].to_vec())
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n").as_bytes(),
    )
}

fn ws_connect(
    addr: SocketAddr,
    path: &str,
    extra: Option<(&str, &str)>,
) -> Result<tungstenite::WebSocket<TcpStream>, u16> {
    use tungstenite::client::IntoClientRequest;
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some((n, v)) = extra {
        req.headers_mut().insert(
            n.parse::<tungstenite::http::HeaderName>().unwrap(),
            v.parse().unwrap(),
        );
    }
    match tungstenite::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16())
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

fn echo_once(ws: &mut tungstenite::WebSocket<TcpStream>, text: &str) {
    ws.send(tungstenite::Message::text(text)).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text(text));
}

fn auth_app() -> ringwire::http::HttpApp {
    let cfg = HttpConfig {
        auth: Some(
            AuthConfig::new("all".parse().unwrap())
                .user("admin", "1234")
                .bearer_token("t0ken")
                .exempt("/public/")
                .on_password(|c| c.user == "cb" && c.password == "pw")
                .on_token(|t, _| t == "cb-token"),
        ),
        ..HttpConfig::default()
    };
    ringwire::http::HttpApp::new(cfg)
        .get("/private", |_| {
            ringwire::http::Response::text(200, "secret")
        })
        .get("/public/x", |_| ringwire::http::Response::text(200, "open"))
}

fn auth_basic_bearer_exempt_on_http(d: DriverChoice) {
    let (_s, addr) = start(d, auth_app());
    let (st, head, _) = get(addr, "/private", "");
    assert_eq!(st, 401);
    assert!(
        head.contains("WWW-Authenticate: Basic realm=\"ringwire\""),
        "{head}"
    );
    assert!(
        head.contains("WWW-Authenticate: Bearer realm=\"ringwire\""),
        "{head}"
    );
    // RFC 7617 vector: admin:1234.
    let (st, _, body) = get(
        addr,
        "/private",
        "Authorization: Basic YWRtaW46MTIzNA==\r\n",
    );
    assert_eq!((st, body.as_slice()), (200, &b"secret"[..]));
    assert_eq!(
        get(
            addr,
            "/private",
            "Authorization: Basic YWRtaW46MTIzNQ==\r\n"
        )
        .0,
        401
    );
    // cb:pw goes to the callback.
    assert_eq!(
        get(addr, "/private", "Authorization: Basic Y2I6cHc=\r\n").0,
        200
    );
    assert_eq!(
        get(addr, "/private", "Authorization: Bearer t0ken\r\n").0,
        200
    );
    assert_eq!(
        get(addr, "/private", "Authorization: Bearer cb-token\r\n").0,
        200
    );
    assert_eq!(
        get(addr, "/private", "Authorization: Bearer nope\r\n").0,
        401
    );
    assert_eq!(get(addr, "/private", "Authorization: Digest x\r\n").0, 401);
    assert_eq!(get(addr, "/public/x", "").0, 200);
    // CORS preflights carry no credentials.
    let (st, _, _) = request(
        addr,
        b"OPTIONS /private HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
          Access-Control-Request-Method: GET\r\n\r\n",
    );
    assert_ne!(st, 401);
}

fn auth_session_url_basic_on_websocket(d: DriverChoice) {
    let (_s, addr) = start(d, auth_app());
    assert_eq!(ws_connect(addr, "/", None).err(), Some(401));
    // URL authentication, percent-decoded.
    echo_once(
        &mut ws_connect(addr, "/sgc/auth/url/admin/1234", None).unwrap(),
        "u",
    );
    echo_once(
        &mut ws_connect(addr, "/sgc/auth/url/a%64min/1234", None).unwrap(),
        "u",
    );
    assert_eq!(
        ws_connect(addr, "/sgc/auth/url/admin/12345", None).err(),
        Some(401)
    );
    // Session: a token over plain HTTP, then the WebSocket, once.
    let (st, _, body) = get(addr, "/sgc/req/auth/session/admin/1234", "");
    assert_eq!(st, 200);
    let body = String::from_utf8(body).unwrap();
    let token = body.split('"').nth(3).unwrap().to_owned();
    assert_eq!(token.len(), 32, "{body}");
    let path = format!("/sgc/auth/session/{token}");
    echo_once(&mut ws_connect(addr, &path, None).unwrap(), "s");
    assert_eq!(
        ws_connect(addr, &path, None).err(),
        Some(401),
        "reused token"
    );
    assert_eq!(get(addr, "/sgc/req/auth/session/admin/bad", "").0, 401);
    assert_eq!(
        ws_connect(addr, "/sgc/auth/session/0123", None).err(),
        Some(401)
    );
    // Basic and Bearer headers on the upgrade.
    let basic = ("authorization", "Basic YWRtaW46MTIzNA==");
    echo_once(&mut ws_connect(addr, "/", Some(basic)).unwrap(), "b");
    let bearer = ("authorization", "Bearer t0ken");
    echo_once(&mut ws_connect(addr, "/", Some(bearer)).unwrap(), "t");
    echo_once(&mut ws_connect(addr, "/public/ws", None).unwrap(), "p");
}

fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, file, data) in parts {
        b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => b.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => b.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    b
}

fn post_upload(addr: SocketAddr, ct: &str, body: &[u8], chunked: bool) -> (u16, String) {
    let mut raw =
        format!("POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {ct}\r\n")
            .into_bytes();
    if chunked {
        raw.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for piece in body.chunks(7) {
            raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            raw.extend_from_slice(piece);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
    } else {
        raw.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        raw.extend_from_slice(body);
    }
    let (st, _, b) = request(addr, &raw);
    (st, String::from_utf8_lossy(&b).into_owned())
}

type Seen = Arc<Mutex<Vec<String>>>;

fn upload_app(dir: &Path, seen: Seen) -> ringwire::http::HttpApp {
    let mut u = UploadConfig::new(dir);
    u.min_size = 16;
    u.max_file = 1000;
    u.max_body = 100_000;
    u.limits.max_parts = 4;
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen);
    u.hooks.before_create = Some(Arc::new(move |_, p| {
        s1.lock().unwrap().push(format!("create {}", p.name));
        p.name != "refuse.bin"
    }));
    u.hooks.before_save = Some(Arc::new(move |_, f| {
        s2.lock()
            .unwrap()
            .push(format!("save {} {}", f.name, f.size));
        if f.name == "rename.bin" {
            SaveAs::Rename("../renamed.bin".into())
        } else {
            SaveAs::Keep
        }
    }));
    u.hooks.after_save = Some(Arc::new(move |_, f| {
        s3.lock()
            .unwrap()
            .push(format!("saved {} disk={}", f.name, f.path.is_some()));
    }));
    u.hooks.on_field = Some(Arc::new(move |_, n, v| {
        s4.lock()
            .unwrap()
            .push(format!("field {n}={}", String::from_utf8_lossy(v)));
    }));
    ringwire::http::HttpApp::new(HttpConfig::default()).upload(u)
}

fn upload_fields_files_hooks_and_names(d: DriverChoice) {
    let dir = tmp_dir("upload");
    let seen: Seen = Arc::default();
    let (_s, addr) = start(d, upload_app(&dir, seen.clone()));
    let big: Vec<u8> = (0..900u32).map(|i| (i % 251) as u8).collect();
    let body = multipart(
        "b0undary",
        &[
            ("name", None, b"x"),
            ("file_1", Some("../evil"), &big),
            ("small", Some("tiny.txt"), b"tiny"),
            ("r", Some("rename.bin"), b"0123456789abcdef--"),
        ],
    );
    for chunked in [false, true] {
        seen.lock().unwrap().clear();
        let (st, json) = post_upload(
            addr,
            "multipart/form-data; boundary=b0undary",
            &body,
            chunked,
        );
        assert_eq!(st, 200, "{json}");
        let want_evil = if chunked { "evil.1" } else { "evil" };
        assert!(
            json.contains(&format!(
                "\"name\":\"{want_evil}\",\"size\":900,\"stored\":\"disk\""
            )),
            "{json}"
        );
        assert!(
            json.contains("\"name\":\"tiny.txt\",\"size\":4,\"stored\":\"memory\""),
            "{json}"
        );
        assert!(
            json.contains("\"fields\":[{\"name\":\"name\",\"size\":1}]"),
            "{json}"
        );
        assert_eq!(std::fs::read(dir.join(want_evil)).unwrap(), big);
        assert!(!dir.parent().unwrap().join("evil").exists());
        let log = seen.lock().unwrap().clone();
        assert!(log.contains(&"field name=x".to_owned()), "{log:?}");
        assert!(log.contains(&"create evil".to_owned()), "{log:?}");
        assert!(
            log.contains(&format!("saved {want_evil} disk=true")),
            "{log:?}"
        );
        assert!(
            log.contains(&"saved tiny.txt disk=false".to_owned()),
            "{log:?}"
        );
    }
    // Renamed (and made safe again) by before_save; a second upload never overwrites.
    assert_eq!(
        std::fs::read(dir.join("renamed.bin")).unwrap(),
        b"0123456789abcdef--"
    );
    assert!(dir.join("renamed.bin.1").exists());
    assert!(
        !dir.join("tiny.txt").exists(),
        "below min_size: kept in memory"
    );
    // before_create refuses a part.
    let body = multipart("b", &[("f", Some("refuse.bin"), b"data data data data")]);
    let (st, json) = post_upload(addr, "multipart/form-data; boundary=b", &body, false);
    assert_eq!(st, 200);
    assert!(json.contains("\"refused\":[\"refuse.bin\"]"), "{json}");
    assert!(!dir.join("refuse.bin").exists());
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn upload_limits_and_malformed_bodies(d: DriverChoice) {
    let dir = tmp_dir("limits");
    let (_s, addr) = start(d, upload_app(&dir, Arc::default()));
    let ct = "multipart/form-data; boundary=b";
    // max_file = 1000: 1000 is fine, 1001 is 413.
    let ok = multipart("b", &[("f", Some("a"), &[7u8; 1000])]);
    assert_eq!(post_upload(addr, ct, &ok, false).0, 200);
    let over = multipart("b", &[("f", Some("b"), &[7u8; 1001])]);
    assert_eq!(post_upload(addr, ct, &over, false).0, 413);
    assert!(!dir.join("b").exists());
    // max_parts = 4.
    let p: Vec<(&str, Option<&str>, &[u8])> = vec![("a", None, b"1"); 4];
    assert_eq!(post_upload(addr, ct, &multipart("b", &p), false).0, 200);
    let p: Vec<(&str, Option<&str>, &[u8])> = vec![("a", None, b"1"); 5];
    assert_eq!(post_upload(addr, ct, &multipart("b", &p), false).0, 413);
    // max_body = 100000 (the route's own codec limit).
    let (st, _) = post_upload(addr, ct, &vec![b'x'; 100_001], false);
    assert_eq!(st, 413);
    // Not multipart; truncated; garbage after the delimiter.
    assert_eq!(post_upload(addr, "text/plain", b"x", false).0, 415);
    let mut cut = ok.clone();
    cut.truncate(ok.len() - 8);
    assert_eq!(post_upload(addr, ct, &cut, false).0, 400);
    assert_eq!(post_upload(addr, ct, b"--bXX\r\n", false).0, 400);
    let _ = std::fs::remove_dir_all(&dir);
}

fn log_file_lines(d: DriverChoice) {
    let dir = tmp_dir("log");
    let path = dir.join("conn.log");
    let cfg = HttpConfig {
        log: Some(LogConfig {
            payload_max: 8,
            ..LogConfig::new(&path)
        }),
        auth: Some(AuthConfig::default().user("admin", "1234").exempt("/")),
        ..HttpConfig::default()
    };
    let (s, addr) = start(d, builtin::serve_app(&cfg));
    assert_eq!(get(addr, "/nothing?q=1", "").0, 404);
    let mut ws = ws_connect(addr, "/sgc/auth/url/admin/1234", None).unwrap();
    echo_once(&mut ws, "hello \"log\" with a long tail");
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    // Lines reach the file within the flush interval, without a stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&path).unwrap_or_default();
        if t.matches("Disconnected.").count() >= 2 || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(s);
    assert!(text.contains("Stat Connected."), "{text}");
    assert!(text.contains("Request GET /nothing?q=1 HTTP/1.1"), "{text}");
    assert!(
        text.contains("Handshake GET /sgc/auth/url/admin/*** subprotocol=-"),
        "{text}"
    );
    assert!(!text.contains("1234"), "password in the log: {text}");
    assert!(text.contains("Recv text 28 \"hello \\\"l…\""), "{text}");
    assert_eq!(text.matches("Stat Disconnected.").count(), 2, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn test_page_and_client_served(d: DriverChoice) {
    let cfg = HttpConfig {
        test_page: true,
        ..HttpConfig::default()
    };
    let (_s, addr) = start(d, builtin::serve_app(&cfg));
    let (st, head, body) = get(addr, "/ringwire.html", "");
    assert_eq!(st, 200);
    assert!(head.contains("text/html"), "{head}");
    assert_eq!(body, builtin::TEST_PAGE.as_bytes());
    let (st, head, body) = get(addr, "/ringwire.js", "");
    assert_eq!(st, 200);
    assert!(head.contains("text/javascript"), "{head}");
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("Ringwire.authUrl")
    );
    let (_s2, addr2) = start(d, builtin::serve_app(&HttpConfig::default()));
    assert_eq!(get(addr2, "/ringwire.html", "").0, 404);
}

// ----- a large upload to the `ringwire` binary, with its RSS checked -----

/// VmRSS and VmHWM of `pid`, KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Upload `total` bytes of file content to a `ringwire serve --upload-dir` child; returns
/// (VmHWM growth in KiB, seconds). The body is generated as it is sent.
pub fn big_upload(driver: DriverChoice, total: u64) -> (u64, f64) {
    let dir = tmp_dir("big");
    let drv = match driver {
        DriverChoice::Epoll => "epoll",
        _ => "uring",
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwire"))
        .args(["serve", "--threads", "1", "--driver", drv])
        .args(["--bind", "127.0.0.1:0"])
        .arg("--upload-dir")
        .arg(&dir)
        .args(["--upload-max-file", &(total + 1).to_string()])
        .args(["--upload-max-body", &(total + 4096).to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port = common::announced_port(&first);
    let pid = child.id();
    // Warm up (one small upload) so the baseline includes the steady-state buffers.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let small = multipart("XyZ", &[("f", Some("warm"), b"warm")]);
    assert_eq!(
        post_upload(addr, "multipart/form-data; boundary=XyZ", &small, false).0,
        200
    );
    let (_, hwm0) = rss_kib(pid);
    let head =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file_1\"; filename=\"big.bin\"\r\n\r\n";
    let tail =
        b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--XyZ--\r\n";
    let len = head.len() as u64 + total + tail.len() as u64;
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(
        format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {len}\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(head).unwrap();
    let mut block = vec![0u8; 1 << 20];
    for (i, b) in block.iter_mut().enumerate() {
        *b = (i * 31 % 253) as u8;
    }
    let mut sent = 0u64;
    let mut peak = hwm0;
    while sent < total {
        let n = (total - sent).min(block.len() as u64) as usize;
        s.write_all(&block[..n]).unwrap();
        sent += n as u64;
        if sent.is_multiple_of(64 << 20) {
            peak = peak.max(rss_kib(pid).1);
        }
    }
    s.write_all(tail).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains(&format!("\"size\":{total}")), "{resp}");
    let (_, hwm1) = rss_kib(pid);
    peak = peak.max(hwm1);
    assert_eq!(std::fs::metadata(dir.join("big.bin")).unwrap().len(), total);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    (peak.saturating_sub(hwm0), secs)
}

/// 256 MiB by default (quick in CI); `upload_1_gib_rss_bounded` below does 1 GiB.
fn upload_256_mib_rss_bounded(d: DriverChoice) {
    let (grew, secs) = big_upload(d, 256 << 20);
    eprintln!("256 MiB upload: VmHWM grew {grew} KiB in {secs:.1} s");
    assert!(grew <= 16 * 1024, "server RSS grew {grew} KiB");
}

/// The issue's figure: a 1 GiB upload raises the server's RSS by at most 16 MiB.
/// `cargo test -p ringwire --test http_extras -- --ignored --nocapture`
#[test]
#[ignore = "1 GiB through the loopback and the disk: run by hand"]
fn upload_1_gib_rss_bounded() {
    for d in [DriverChoice::Uring, DriverChoice::Epoll] {
        let (grew, secs) = big_upload(d, 1 << 30);
        eprintln!("{d:?}: 1 GiB upload: VmHWM grew {grew} KiB in {secs:.1} s");
        assert!(grew <= 16 * 1024, "server RSS grew {grew} KiB");
    }
}
