//! The WebSocket plugin on real sockets, on both drivers, with tungstenite as an independent
//! client (and raw sockets where a misbehaving client is needed).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringwire::runtime::{ConnId, DriverChoice, RuntimeConfig, ServerBuilder, ServerHandle};
use ringwire::ws::CloseCode;
use ringwire::ws::{
    Broadcast, Heartbeat, MessageKind, Target, WsCore, WsCtx, WsFailure, WsHandler, WsRequest,
    WsServer, WsServerConfig,
};
use tungstenite::{Message, client::IntoClientRequest};

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    echo_text_and_binary_with_tungstenite,
    upgrade_refused_with_status,
    subprotocol_negotiated,
    channel_broadcast_reaches_every_core,
    broadcast_to_all_follows_opens_and_closes,
    heartbeat_closes_silent_peer,
    heartbeat_keeps_responsive_peer,
    idle_timeout_closes,
    idle_timeout_spares_an_active_peer,
    slowloris_handshake_deadline,
    plain_http_gets_404,
    close_code_and_reason_reach_handler,
    message_too_big_closes_1009,
    broadcast_compressed_once_for_no_context_takeover,
    streaming_delivers_fragments,
    heartbeat_only_if_idle,
    heartbeat_many_connections,
    heartbeat_with_idle_timeout,
    frames_with_the_upgrade_request,
);

type Log = Arc<Mutex<Vec<String>>>;

/// Echo, plus commands: "sub:CH", "pub:CH:TEXT" (to the channel, sender excluded),
/// "all:TEXT" (to everyone), "core" (answers the core index), "close" (server closes 4000).
#[derive(Clone)]
struct TestHandler {
    log: Log,
}

impl WsHandler for TestHandler {
    fn on_upgrade(&mut self, req: &WsRequest<'_>) -> Result<(), u16> {
        if req.path() == "/forbidden" {
            return Err(403);
        }
        if req.origin() == Some("http://evil.example") {
            return Err(403);
        }
        Ok(())
    }
    fn on_open(&mut self, ws: &mut WsCtx<'_, '_>) {
        self.log
            .lock()
            .unwrap()
            .push(format!("open {}", ws.subprotocol().unwrap_or("-")));
    }
    fn on_message(&mut self, ws: &mut WsCtx<'_, '_>, kind: MessageKind, data: &[u8]) {
        let text = std::str::from_utf8(data).unwrap_or("");
        if let Some(ch) = text.strip_prefix("sub:") {
            ws.subscribe(ch);
            let _ = ws.send_text("subscribed");
        } else if let Some(rest) = text.strip_prefix("pub:") {
            let (ch, msg) = rest.split_once(':').unwrap();
            let mut b = Broadcast::to_channel(ch, MessageKind::Text, msg.to_owned());
            b.exclude.push(ws.id());
            ws.broadcast(b);
        } else if let Some(msg) = text.strip_prefix("all:") {
            ws.broadcast(Broadcast::text_to_all(msg));
        } else if text == "core" {
            let c = ws.core().core();
            let _ = ws.send_text(&c.to_string());
        } else if text == "close" {
            let _ = ws.close(CloseCode(4000), "bye");
        } else {
            let _ = ws.send(kind, data);
        }
    }
    fn on_fragment(
        &mut self,
        _ws: &mut WsCtx<'_, '_>,
        _kind: MessageKind,
        data: &[u8],
        fin: bool,
        received: u64,
    ) {
        self.log
            .lock()
            .unwrap()
            .push(format!("frag {} {fin} {received}", data.len()));
    }
    fn on_error(&mut self, _ws: &mut WsCtx<'_, '_>, err: WsFailure) {
        self.log.lock().unwrap().push(format!("error {err:?}"));
    }
    fn on_close(&mut self, _core: &mut WsCore<'_, '_>, _id: ConnId, code: CloseCode, reason: &str) {
        self.log
            .lock()
            .unwrap()
            .push(format!("close {} {reason}", code.0));
    }
}

fn start(d: DriverChoice, threads: usize, cfg: WsServerConfig) -> (ServerHandle, SocketAddr, Log) {
    start_tick(d, threads, cfg, RuntimeConfig::default().deadline_tick)
}

/// [`start`] with a deadline tick: heartbeats and idle limits run on the connection deadline,
/// and tests with intervals of tens of milliseconds need a finer grid than the default.
fn start_tick(
    d: DriverChoice,
    threads: usize,
    cfg: WsServerConfig,
    deadline_tick: Duration,
) -> (ServerHandle, SocketAddr, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let rt = RuntimeConfig {
        driver: d,
        threads,
        deadline_tick,
        ..Default::default()
    };
    let mut b = ServerBuilder::new(rt);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let cfg = Arc::new(cfg);
    let s = b
        .start(move |_| WsServer::new(TestHandler { log: l.clone() }, cfg.clone()))
        .unwrap();
    let a = s.local_addrs()[0];
    (s, a, log)
}

/// One core with this heartbeat, on a 5 ms deadline tick (the heartbeat rides on the
/// connection deadline; the tests' intervals are tens of milliseconds).
fn start_heartbeat(d: DriverChoice, hb: Heartbeat) -> (ServerHandle, SocketAddr, Log) {
    let cfg = WsServerConfig {
        heartbeat: Some(hb),
        ..Default::default()
    };
    start_tick(d, 1, cfg, Duration::from_millis(5))
}

type Client = tungstenite::WebSocket<common::Retry>;

fn client(addr: SocketAddr, path: &str) -> Client {
    common::ws_client(addr, path, Duration::from_secs(10))
}

/// Read the next message, retrying reads a signal interrupted.
fn read(c: &mut Client) -> Message {
    loop {
        match c.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                continue;
            }
            r => return r.unwrap(),
        }
    }
}

fn next_text(c: &mut Client) -> String {
    loop {
        match read(c) {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn echo_text_and_binary_with_tungstenite(d: DriverChoice) {
    let (_s, addr, _log) = start(d, 2, WsServerConfig::default());
    let mut c = client(addr, "/echo");
    c.send(Message::text("hello")).unwrap();
    assert_eq!(next_text(&mut c), "hello");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.send(Message::binary(big.clone())).unwrap();
    match read(&mut c) {
        Message::Binary(b) => assert!(b[..] == big[..]),
        other => panic!("{other:?}"),
    }
    let emoji = "héllo wörld ✓ 🎉";
    c.send(Message::text(emoji)).unwrap();
    assert_eq!(next_text(&mut c), emoji);
    c.close(None).unwrap();
}

fn upgrade_refused_with_status(d: DriverChoice) {
    let (_s, addr, _log) = start(d, 1, WsServerConfig::default());
    let stream = TcpStream::connect(addr).unwrap();
    match tungstenite::client(format!("ws://{addr}/forbidden"), stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let mut req = format!("ws://{addr}/ok").into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    match tungstenite::client(req, TcpStream::connect(addr).unwrap()) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
}

fn subprotocol_negotiated(d: DriverChoice) {
    let cfg = WsServerConfig {
        subprotocols: vec!["json.v1".into(), "chat".into()],
        ..Default::default()
    };
    let (_s, addr, log) = start(d, 1, cfg);
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "chat, other".parse().unwrap());
    let stream = common::Retry(TcpStream::connect(addr).unwrap());
    let (mut c, resp) = tungstenite::client(req, stream).unwrap();
    assert_eq!(
        resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "chat"
    );
    c.send(Message::text("x")).unwrap();
    assert_eq!(next_text(&mut c), "x");
    assert!(log.lock().unwrap().iter().any(|l| l == "open chat"));
    // Refusing clients that offer only unknown subprotocols is a setting.
    let cfg = WsServerConfig {
        subprotocols: vec!["chat".into()],
        refuse_unknown_subprotocols: true,
        ..Default::default()
    };
    let (_s2, addr2, _) = start(d, 1, cfg);
    let mut req = format!("ws://{addr2}/").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    assert!(tungstenite::client(req, TcpStream::connect(addr2).unwrap()).is_err());
}

/// A broadcast to every connection reaches exactly the WebSocket connections open when it is
/// delivered: not closed ones, not those whose slots new connections took over twice, not a
/// connection still in its HTTP request (the set of connections is a bitmap over slots).
fn broadcast_to_all_follows_opens_and_closes(d: DriverChoice) {
    let (_s, addr, log) = start(d, 1, WsServerConfig::default());
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // not finished
    let mut open: Vec<Client> = (0..6).map(|_| client(addr, "/a")).collect();
    for round in 0..2 {
        // Close every other one (the server logs each close), then open as many again: they
        // take the freed slots.
        let closing: Vec<Client> = (0..3).map(|i| open.remove(i)).collect();
        let closes = log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("close"))
            .count();
        for mut c in closing {
            c.close(None).unwrap();
            while c.read().is_ok() {}
        }
        wait_for("closes", || {
            log.lock()
                .unwrap()
                .iter()
                .filter(|l| l.starts_with("close"))
                .count()
                == closes + 3
        });
        open.extend((0..3).map(|_| client(addr, "/b")));
        open[0]
            .send(Message::text(format!("all:round {round}")))
            .unwrap();
        for c in open.iter_mut() {
            assert_eq!(next_text(c), format!("round {round}"));
        }
        // Exactly once each: the next thing every client sees is its own echo.
        for (i, c) in open.iter_mut().enumerate() {
            c.send(Message::text(format!("echo {i}"))).unwrap();
            assert_eq!(next_text(c), format!("echo {i}"));
        }
    }
    // The unfinished request saw no frame.
    raw.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut b = [0u8; 64];
    assert!(matches!(raw.read(&mut b), Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof));
}

fn channel_broadcast_reaches_every_core(d: DriverChoice) {
    let (_s, addr, _log) = start(d, 2, WsServerConfig::default());
    // Subscribers on both cores.
    let mut subs: Vec<(Client, String)> = Vec::new();
    let mut cores = [false; 2];
    for _ in 0..100 {
        let mut c = client(addr, "/chan");
        c.send(Message::text("core")).unwrap();
        let core: usize = next_text(&mut c).parse().unwrap();
        cores[core] = true;
        c.send(Message::text("sub:news")).unwrap();
        assert_eq!(next_text(&mut c), "subscribed");
        subs.push((c, core.to_string()));
        if cores[0] && cores[1] && subs.len() >= 4 {
            break;
        }
    }
    assert!(cores[0] && cores[1]);
    let mut outsider = client(addr, "/x");
    let mut publisher = client(addr, "/pub");
    publisher.send(Message::text("sub:news")).unwrap();
    assert_eq!(next_text(&mut publisher), "subscribed");
    publisher.send(Message::text("pub:news:flash")).unwrap();
    for (c, _) in subs.iter_mut() {
        assert_eq!(next_text(c), "flash");
    }
    // The publisher was excluded and the outsider is not subscribed: the next thing each sees is
    // the echo of what it sends now.
    publisher.send(Message::text("ping1")).unwrap();
    assert_eq!(next_text(&mut publisher), "ping1");
    outsider.send(Message::text("ping2")).unwrap();
    assert_eq!(next_text(&mut outsider), "ping2");
    // To everyone.
    outsider.send(Message::text("all:everyone")).unwrap();
    assert_eq!(next_text(&mut outsider), "everyone");
    assert_eq!(next_text(&mut publisher), "everyone");
    for (c, _) in subs.iter_mut() {
        assert_eq!(next_text(c), "everyone");
    }
}

/// Handshake by hand, so the client can stay silent (no pong).
fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    raw_upgrade_with(addr, &[])
}

/// Handshake by hand, sending `after` in the same write as the request; returns once the 101
/// head is read.
fn raw_upgrade_with(addr: SocketAddr, after: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = b"GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    req.extend_from_slice(after);
    s.write_all(&req).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
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

fn heartbeat_closes_silent_peer(d: DriverChoice) {
    let hb = Heartbeat {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(100),
        only_if_idle: false,
    };
    let (_s, addr, log) = start_heartbeat(d, hb);
    let mut s = raw_upgrade(addr);
    let t0 = Instant::now();
    assert_eq!(read_until_close(&mut s), 1001);
    assert!(t0.elapsed() >= Duration::from_millis(150));
    wait_for("error logged", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l == "error HeartbeatTimeout")
    });
}

fn heartbeat_keeps_responsive_peer(d: DriverChoice) {
    let hb = Heartbeat {
        interval: Duration::from_millis(30),
        timeout: Duration::from_millis(500),
        only_if_idle: false,
    };
    let (_s, addr, log) = start_heartbeat(d, hb);
    let mut c = client(addr, "/hb");
    // tungstenite answers pings while reading; keep talking for well over the timeout.
    for i in 0..30 {
        std::thread::sleep(Duration::from_millis(10));
        c.send(Message::text(format!("m{i}"))).unwrap();
        assert_eq!(next_text(&mut c), format!("m{i}"));
    }
    assert!(!log.lock().unwrap().iter().any(|l| l.starts_with("error")));
}

fn idle_timeout_closes(d: DriverChoice) {
    let cfg = WsServerConfig {
        idle_timeout: Some(Duration::from_millis(100)),
        ..Default::default()
    };
    let (_s, addr, log) = start(d, 1, cfg);
    let mut s = raw_upgrade(addr);
    assert_eq!(read_until_close(&mut s), 1001);
    wait_for("idle logged", || {
        log.lock().unwrap().iter().any(|l| l == "error IdleTimeout")
    });
}

/// Input keeps the idle limit away (the deadline is moved, not fired); quiet, the peer is
/// cut off, and not before the limit.
fn idle_timeout_spares_an_active_peer(d: DriverChoice) {
    let cfg = WsServerConfig {
        idle_timeout: Some(Duration::from_millis(250)),
        ..Default::default()
    };
    let (_s, addr, log) = start(d, 1, cfg);
    let mut c = client(addr, "/");
    // 900 ms of traffic, a message every 100 ms: over three times the limit in all.
    for i in 0..9 {
        let m = format!("m{i}");
        c.send(Message::text(m.clone())).unwrap();
        assert_eq!(read(&mut c), Message::text(m));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!log.lock().unwrap().iter().any(|l| l == "error IdleTimeout"));
    let quiet_from = std::time::Instant::now();
    match read(&mut c) {
        Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1001),
        m => panic!("unexpected {m:?}"),
    }
    let waited = quiet_from.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    wait_for("idle logged", || {
        log.lock().unwrap().iter().any(|l| l == "error IdleTimeout")
    });
}

fn slowloris_handshake_deadline(d: DriverChoice) {
    let cfg = WsServerConfig {
        handshake_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let (_s, addr, _log) = start(d, 1, cfg);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // and never finishes
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
}

fn plain_http_gets_404(d: DriverChoice) {
    let (_s, addr, _log) = start(d, 1, WsServerConfig::default());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
}

fn close_code_and_reason_reach_handler(d: DriverChoice) {
    let (_s, addr, log) = start(d, 1, WsServerConfig::default());
    let mut c = client(addr, "/c");
    c.close(Some(tungstenite::protocol::CloseFrame {
        code: 4001.into(),
        reason: "done here".into(),
    }))
    .unwrap();
    while c.read().is_ok() {}
    wait_for("close logged", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l == "close 4001 done here")
    });
    // The server closing: the client sees the code and reason.
    let mut c = client(addr, "/c");
    c.send(Message::text("close")).unwrap();
    match read(&mut c) {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4000);
            assert_eq!(f.reason.as_str(), "bye");
        }
        other => panic!("{other:?}"),
    }
}

fn message_too_big_closes_1009(d: DriverChoice) {
    let mut cfg = WsServerConfig::default();
    cfg.codec.max_message_size = 1000;
    let (_s, addr, _log) = start(d, 1, cfg);
    let mut c = client(addr, "/big");
    c.send(Message::binary(vec![7u8; 1000])).unwrap(); // exactly the limit
    assert!(matches!(read(&mut c), Message::Binary(b) if b.len() == 1000));
    c.send(Message::binary(vec![7u8; 1001])).unwrap(); // one over
    match read(&mut c) {
        Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1009),
        other => panic!("{other:?}"),
    }
    let _ = Target::All;
}

/// A client on the ringwire-ws codec with permessage-deflate; `no_ctx` asks for
/// server_no_context_takeover.
struct DeflateClient {
    s: TcpStream,
    ws: ringwire_ws::WebSocket,
    rx: Vec<u8>,
}

impl DeflateClient {
    fn connect(addr: SocketAddr, no_ctx: bool) -> Self {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let deflate = ringwire_ws::DeflateConfig {
            server_no_context_takeover: no_ctx,
            ..ringwire_ws::DeflateConfig::enabled()
        };
        let (neg_deflate, rx) = common::deflate_handshake(&mut s, &deflate);
        assert!(neg_deflate.is_some(), "deflate negotiated");
        assert_eq!(
            neg_deflate.as_ref().unwrap().server_no_context_takeover,
            no_ctx
        );
        let ws =
            ringwire_ws::WebSocket::client(ringwire_ws::Config::default(), neg_deflate, [3u8; 16]);
        DeflateClient { s, ws, rx }
    }

    fn send_text(&mut self, t: &str) {
        let mut out = Vec::new();
        self.ws.send_text(t, &mut out).unwrap();
        self.s.write_all(&out).unwrap();
    }

    /// The next text message, and whether its first frame had RSV1 (compressed).
    fn next_text(&mut self) -> (String, bool) {
        loop {
            let rsv1 = self.rx.first().is_some_and(|b| b & 0x40 != 0);
            let now = Instant::now();
            let mut buf = std::mem::take(&mut self.rx);
            let r = self.ws.handle_read(now, &mut buf).unwrap();
            let consumed = r.consumed;
            let got = match r.event {
                Some(ringwire_ws::WsEvent::Message { data, .. }) => {
                    Some(String::from_utf8(data.to_vec()).unwrap())
                }
                _ => None,
            };
            buf.drain(..consumed);
            self.rx = buf;
            if let Some(t) = got {
                return (t, rsv1);
            }
            if consumed == 0 {
                let mut b = [0u8; 65536];
                let n = self.s.read(&mut b).unwrap();
                assert!(n > 0, "server closed");
                self.rx.extend_from_slice(&b[..n]);
            }
        }
    }
}

fn broadcast_compressed_once_for_no_context_takeover(d: DriverChoice) {
    let mut cfg = WsServerConfig::default();
    cfg.codec.deflate = ringwire_ws::DeflateConfig::enabled();
    let (_s, addr, _log) = start(d, 2, cfg);
    let mut shared = DeflateClient::connect(addr, true);
    let mut takeover = DeflateClient::connect(addr, false);
    let mut plain = client(addr, "/p");
    // Echo round trips make sure all three are open before the broadcast.
    shared.send_text("hi");
    assert_eq!(shared.next_text().0, "hi");
    takeover.send_text("hi");
    assert_eq!(takeover.next_text().0, "hi");
    let text = "broadcast ".repeat(50);
    plain.send(Message::text(format!("all:{text}"))).unwrap();
    assert_eq!(next_text(&mut plain), text);
    let (t, rsv1) = shared.next_text();
    assert_eq!(t, text);
    assert!(
        rsv1,
        "a no-context-takeover receiver gets the compressed frame"
    );
    let (t, rsv1) = takeover.next_text();
    assert_eq!(t, text);
    assert!(
        !rsv1,
        "a context-takeover receiver gets the uncompressed frame"
    );
    // Its own compression context is intact afterwards.
    takeover.send_text(&text);
    assert_eq!(takeover.next_text().0, text);
}

/// A masked client frame (key 1,2,3,4).
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut v = vec![(if fin { 0x80 } else { 0 }) | opcode];
    assert!(payload.len() < 126);
    v.push(0x80 | payload.len() as u8);
    v.extend_from_slice(&key);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    v
}

fn streaming_delivers_fragments(d: DriverChoice) {
    let mut cfg = WsServerConfig::default();
    cfg.codec.fragment_mode = ringwire::ws::FragmentMode::Stream;
    let (_s, addr, log) = start(d, 1, cfg);
    let mut s = raw_upgrade(addr);
    s.write_all(&client_frame(false, 0x2, &[1; 10])).unwrap();
    s.write_all(&client_frame(false, 0x0, &[2; 20])).unwrap();
    s.write_all(&client_frame(true, 0x0, &[3; 5])).unwrap();
    wait_for("three fragments", || {
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("frag"))
            .count()
            == 3
    });
    let frags: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("frag"))
        .cloned()
        .collect();
    assert_eq!(
        frags,
        ["frag 10 false 10", "frag 20 false 30", "frag 5 true 35"]
    );
}

fn heartbeat_only_if_idle(d: DriverChoice) {
    let hb = Heartbeat {
        interval: Duration::from_millis(40),
        timeout: Duration::from_millis(300),
        only_if_idle: true,
    };
    let (_s, addr, log) = start_heartbeat(d, hb);
    let mut s = raw_upgrade(addr);
    // Busy for 400 ms (a message every 10 ms, never a pong): no ping is needed, or (after a
    // scheduling stall) the data itself answers it; nothing closes.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(400) {
        s.write_all(&client_frame(true, 0x2, b"data")).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !log.lock().unwrap().iter().any(|l| l.starts_with("error")),
        "{:?}",
        log.lock().unwrap()
    );
    // Then silent: pinged, no pong, closed with 1001.
    assert_eq!(read_until_close(&mut s), 1001);
    wait_for("timeout logged", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l == "error HeartbeatTimeout")
    });
}

/// Heartbeats of many connections share one core's deadline array: each connection is pinged
/// on its own schedule, a peer that answers stays, a silent one is closed (1001) no sooner
/// than interval + timeout after its open, and neither kind disturbs the other.
fn heartbeat_many_connections(d: DriverChoice) {
    const EACH: usize = 16;
    let hb = Heartbeat {
        interval: Duration::from_millis(40),
        timeout: Duration::from_millis(100),
        only_if_idle: false,
    };
    let (_s, addr, log) = start_heartbeat(d, hb);
    let answering: Vec<_> = (0..EACH)
        .map(|_| {
            let mut s = raw_upgrade(addr);
            std::thread::spawn(move || {
                // Answer every ping for 600 ms, then prove the connection still echoes.
                let t0 = Instant::now();
                let mut pings = 0;
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                while t0.elapsed() < Duration::from_millis(600) {
                    let mut h = [0u8; 2];
                    match s.read_exact(&mut h) {
                        Ok(()) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock
                                    | std::io::ErrorKind::TimedOut
                                    | std::io::ErrorKind::Interrupted
                            ) =>
                        {
                            continue;
                        }
                        Err(e) => panic!("answering peer lost its connection: {e}"),
                    }
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut p = vec![0u8; (h[1] & 0x7f) as usize];
                    s.read_exact(&mut p).unwrap();
                    assert_eq!(h[0], 0x89, "only pings before the echo");
                    pings += 1;
                    s.write_all(&client_frame(true, 0xA, &p)).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                }
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(&client_frame(true, 0x1, b"still here"))
                    .unwrap();
                loop {
                    let (op, p) = server_frame(&mut s);
                    if op == 0x89 {
                        s.write_all(&client_frame(true, 0xA, &p)).unwrap();
                        continue;
                    }
                    assert_eq!((op, p.as_slice()), (0x81, &b"still here"[..]));
                    break;
                }
                pings
            })
        })
        .collect();
    let silent: Vec<_> = (0..EACH)
        .map(|_| {
            let mut s = raw_upgrade(addr);
            let t0 = Instant::now();
            std::thread::spawn(move || (read_until_close(&mut s), t0.elapsed()))
        })
        .collect();
    for t in silent {
        let (code, after) = t.join().unwrap();
        assert_eq!(code, 1001);
        assert!(
            after >= Duration::from_millis(140),
            "closed after {after:?}"
        );
    }
    for t in answering {
        let pings = t.join().unwrap();
        // Every 40 ms for 600 ms: about 15; a loaded machine may stretch the interval.
        assert!(pings >= 4, "only {pings} pings in 600 ms");
    }
    wait_for("every silent peer logged", || {
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| *l == "error HeartbeatTimeout")
            .count()
            == EACH
    });
}

/// With both, the idle limit and the heartbeat share the connection's deadline: pongs are
/// input, so a peer that answers pings is never idle; one that sends nothing at all goes at
/// whichever limit comes first (here the idle one, 1001 with `IdleTimeout`).
fn heartbeat_with_idle_timeout(d: DriverChoice) {
    let cfg = || WsServerConfig {
        heartbeat: Some(Heartbeat {
            interval: Duration::from_millis(30),
            timeout: Duration::from_millis(400),
            only_if_idle: false,
        }),
        idle_timeout: Some(Duration::from_millis(120)),
        ..Default::default()
    };
    let (_s, addr, log) = start_tick(d, 1, cfg(), Duration::from_millis(5));
    // Silent: pinged, but idle for 120 ms long before the 400 ms pong timeout.
    let mut s = raw_upgrade(addr);
    let t0 = Instant::now();
    assert_eq!(read_until_close(&mut s), 1001);
    let after = t0.elapsed();
    assert!(
        after >= Duration::from_millis(120),
        "closed after {after:?}"
    );
    wait_for("idle logged", || {
        log.lock().unwrap().iter().any(|l| l == "error IdleTimeout")
    });
    // Answering pings (and nothing else) for 500 ms: never idle, never timed out.
    let mut s = raw_upgrade(addr);
    let t0 = Instant::now();
    let mut pings = 0;
    while t0.elapsed() < Duration::from_millis(500) {
        let (op, p) = server_frame(&mut s);
        assert_eq!(op, 0x89, "a ping, not a close");
        pings += 1;
        s.write_all(&client_frame(true, 0xA, &p)).unwrap();
    }
    assert!(pings >= 4, "only {pings} pings in 500 ms");
    let errors: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("error"))
        .cloned()
        .collect();
    assert_eq!(errors, ["error IdleTimeout"]);
}

/// Reads one unmasked server frame: (first byte, payload).
fn server_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).unwrap();
    (h[0], p)
}

/// Frames sent in the same write as the upgrade request (and one split across it and a later
/// write) are answered after the 101, in order.
fn frames_with_the_upgrade_request(d: DriverChoice) {
    let (_s, addr, log) = start(d, 1, WsServerConfig::default());
    let mut early = client_frame(true, 0x1, b"one");
    early.extend(client_frame(true, 0x9, b"ping"));
    early.extend(client_frame(true, 0x2, b"two"));
    let last = client_frame(true, 0x1, b"three");
    early.extend_from_slice(&last[..4]);
    let mut s = raw_upgrade_with(addr, &early);
    assert_eq!(server_frame(&mut s), (0x81, b"one".to_vec()));
    assert_eq!(server_frame(&mut s), (0x8A, b"ping".to_vec()));
    assert_eq!(server_frame(&mut s), (0x82, b"two".to_vec()));
    s.write_all(&last[4..]).unwrap();
    assert_eq!(server_frame(&mut s), (0x81, b"three".to_vec()));
    assert!(log.lock().unwrap().iter().any(|l| l == "open -"));
}
