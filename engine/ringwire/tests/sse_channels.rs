//! Server-Sent Events as members of the WebSocket channels, on real sockets, on both drivers:
//! cross-core delivery between WebSocket (tungstenite) and SSE (raw HTTP over TcpStream)
//! subscribers, SSE-only channels, `Last-Event-ID` resume from the replay buffer, leaving the
//! channels on disconnect, the slow-reader cut-off, `ringwire serve`'s `/broadcast` →
//! `/events?channel=broadcast` bridge, and `curl -N` reading a broadcast.

use std::io::{BufRead, BufReader, Read, Write};
mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringwire::http::sse::SseConfig;
use ringwire::http::{HttpApp, HttpConfig, HttpServer, Response, SseEndpoint, SseEvent, sse};
use ringwire::runtime::{Bytes, DriverChoice, RuntimeConfig, ServerBuilder, ServerHandle};
use ringwire::serve::{ServeConfig, Service};
use ringwire::ws::{
    self, BROADCAST_PATH, Broadcast, MessageKind, WsCtx, WsHandler, WsServer, WsServerConfig,
};
use tungstenite::Message;

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    ws_and_sse_subscribers_share_channels_on_every_core,
    sse_only_channel_and_last_event_id_resume,
    disconnect_leaves_every_channel,
    slow_sse_reader_is_cut_off,
    serve_broadcast_path_reaches_sse_and_curl,
    heartbeat_comments_only_on_a_quiet_stream,
);

/// Commands: "core" (answers the core), "sub:CH", "pub:CH:TEXT" (broadcast to the channel,
/// sender included), "ssepub:CH:TEXT" (`sse::publish` with event type `note`).
struct TestHandler;

impl WsHandler for TestHandler {
    fn on_message(&mut self, ws: &mut WsCtx<'_, '_>, _kind: MessageKind, data: &[u8]) {
        let t = std::str::from_utf8(data).unwrap_or_default();
        if t == "core" {
            let c = ws.core().core().to_string();
            let _ = ws.send_text(&c);
        } else if let Some(ch) = t.strip_prefix("sub:") {
            ws.subscribe(ch);
            let _ = ws.send_text("subscribed");
        } else if let Some((ch, text)) = t.strip_prefix("pub:").and_then(|r| r.split_once(':')) {
            ws.broadcast(Broadcast::to_channel(
                ch,
                MessageKind::Text,
                text.to_owned(),
            ));
        } else if let Some((ch, text)) = t.strip_prefix("ssepub:").and_then(|r| r.split_once(':')) {
            sse::publish(ws.core(), ch, &SseEvent::data(text).with_event("note"));
        }
    }
}

/// The SSE endpoint of the tests: `/sse?channel=..`, an opening event naming the core thread.
fn endpoint() -> SseEndpoint {
    let mut ep = SseEndpoint::new("").with_query_channels(4);
    ep.on_open = Some(Arc::new(|_, _| {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        vec![SseEvent::data(name).with_event("core")]
    }));
    ep
}

fn start(
    d: DriverChoice,
    threads: usize,
    sse: SseConfig,
) -> (ServerHandle, SocketAddr, Arc<HttpApp>) {
    let rt = RuntimeConfig {
        driver: d,
        threads,
        // SSE heartbeats run on the connection deadline: `/hb`'s 100 ms one needs a finer
        // grid than the default 100 ms.
        deadline_tick: Duration::from_millis(5),
        ..Default::default()
    };
    let mut b = ServerBuilder::new(rt);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let app = Arc::new(
        HttpApp::new(HttpConfig {
            sse,
            ..Default::default()
        })
        .sse("/sse", endpoint())
        .sse("/fixed", SseEndpoint::new("fixed").with_channels(["extra"]))
        .sse("/hb", {
            let mut ep = SseEndpoint::new("hb");
            ep.heartbeat = Some(Duration::from_millis(HB_MS));
            ep
        })
        .post("/publish", |r| {
            let (Some(ch), Ok(text)) = (r.query_param("channel"), std::str::from_utf8(r.body()))
            else {
                return Response::status(400);
            };
            let b = Broadcast::to_channel(ch, MessageKind::Text, text.to_owned());
            Response::status(if ws::publish_here(b) { 202 } else { 500 })
        }),
    );
    let ws = Arc::new(WsServerConfig::default());
    let a2 = app.clone();
    let s = b
        .start(move |_| {
            WsServer::new(TestHandler, ws.clone()).with_http(HttpServer::new(a2.clone()))
        })
        .unwrap();
    let addr = s.local_addrs()[0];
    (s, addr, app)
}

type Client = tungstenite::WebSocket<common::Retry>;

fn ws_client(addr: SocketAddr, path: &str) -> Client {
    common::ws_client(addr, path, Duration::from_secs(10))
}

fn next_text(c: &mut Client) -> String {
    loop {
        match c.read().unwrap() {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            m => panic!("unexpected {m:?}"),
        }
    }
}

/// The heartbeat of the `/hb` stream.
const HB_MS: u64 = 100;

/// An SSE client on a raw socket.
struct Sse(BufReader<TcpStream>);

impl Sse {
    fn open(addr: SocketAddr, target: &str, extra: &str) -> Sse {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = BufReader::new(s);
        c.get_mut()
            .write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes())
            .unwrap();
        let mut status = String::new();
        c.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
        loop {
            let mut l = String::new();
            c.read_line(&mut l).unwrap();
            if l == "\r\n" {
                break;
            }
        }
        Sse(c)
    }
    /// The next event's lines (comments skipped), de-chunked.
    fn event(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            assert!(self.0.read_line(&mut l).unwrap() > 0, "stream ended");
            let l = l.trim_end_matches(['\r', '\n']).to_owned();
            if l.is_empty() && !lines.is_empty() {
                return lines;
            }
            if !l.is_empty() && !l.starts_with(':') && !l.bytes().all(|b| b.is_ascii_hexdigit()) {
                lines.push(l);
            }
        }
    }
    /// The next non-empty line of the stream, comments included (chunk sizes skipped).
    fn line(&mut self) -> String {
        loop {
            let mut l = String::new();
            assert!(self.0.read_line(&mut l).unwrap() > 0, "stream ended");
            let l = l.trim_end_matches(['\r', '\n']);
            if !l.is_empty() && !l.bytes().all(|b| b.is_ascii_hexdigit()) {
                return l.to_owned();
            }
        }
    }
    /// The next event's data line and id.
    fn data(&mut self) -> (String, Option<u64>) {
        let e = self.event();
        let data = e
            .iter()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap()
            .to_owned();
        let id = e
            .iter()
            .find_map(|l| l.strip_prefix("id: "))
            .map(|i| i.parse().unwrap());
        (data, id)
    }
}

/// A quiet stream gets a `: heartbeat` comment every interval, none sooner; a stream with
/// events more often than that gets none (the heartbeat counts from the last write).
fn heartbeat_comments_only_on_a_quiet_stream(d: DriverChoice) {
    let (_s, addr, _app) = start(d, 1, SseConfig::default());
    let t0 = Instant::now();
    let mut c = Sse::open(addr, "/hb", "");
    assert_eq!(c.line(), ": ok");
    // Quiet: heartbeats, the first no sooner than one interval after the open.
    let mut beats = Vec::new();
    while beats.len() < 4 {
        assert_eq!(c.line(), ": heartbeat");
        beats.push(t0.elapsed());
    }
    assert!(
        beats[0] >= Duration::from_millis(HB_MS),
        "first heartbeat after {:?}",
        beats[0]
    );
    for w in beats.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(HB_MS) / 2,
            "heartbeats {beats:?}"
        );
    }
    // Busy: an event every 10 ms for 600 ms, each read as it comes. A heartbeat could only
    // come from a stall of a whole interval; allow one.
    let mut ws = ws_client(addr, "/ws");
    let mut heartbeats = 0;
    for i in 0..60 {
        ws.send(Message::text(format!("pub:hb:e{i}"))).unwrap();
        loop {
            let l = c.line();
            if l == ": heartbeat" {
                heartbeats += 1;
                continue;
            }
            if l == format!("data: e{i}") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(heartbeats <= 1, "{heartbeats} heartbeats on a busy stream");
    // Quiet again: the heartbeat comes back.
    let quiet = Instant::now();
    assert_eq!(c.line(), ": heartbeat");
    assert!(quiet.elapsed() >= Duration::from_millis(HB_MS) / 2);
}

/// Open SSE clients on `target` until both cores hold one (at least `n` clients).
fn sse_on_both_cores(addr: SocketAddr, target: &str, n: usize) -> Vec<Sse> {
    let mut seen = [false; 2];
    let mut out = Vec::new();
    for _ in 0..200 {
        let mut c = Sse::open(addr, target, "");
        let e = c.event();
        assert_eq!(e[0], "event: core");
        let core: usize = e[1].trim_start_matches("data: ringwire-").parse().unwrap();
        seen[core] = true;
        out.push(c);
        if seen[0] && seen[1] && out.len() >= n {
            return out;
        }
    }
    panic!("the kernel never spread SSE clients over both cores");
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn ws_and_sse_subscribers_share_channels_on_every_core(d: DriverChoice) {
    let (s, addr, app) = start(d, 2, SseConfig::default());
    let mut sses = sse_on_both_cores(addr, "/sse?channel=news&channel=other", 4);
    // WebSocket subscribers on both cores too.
    let mut wss: Vec<Client> = Vec::new();
    let mut cores = [false; 2];
    for _ in 0..200 {
        let mut c = ws_client(addr, "/chan");
        c.send(Message::text("core")).unwrap();
        cores[next_text(&mut c).parse::<usize>().unwrap()] = true;
        c.send(Message::text("sub:news")).unwrap();
        assert_eq!(next_text(&mut c), "subscribed");
        wss.push(c);
        if cores[0] && cores[1] && wss.len() >= 4 {
            break;
        }
    }
    assert!(cores[0] && cores[1]);
    wait_for("registrations", || {
        app.sse_subscriptions() == 2 * sses.len()
    });

    // WebSocket → WebSocket and SSE, every core; one id for the event everywhere.
    wss[0]
        .send(Message::text("pub:news:flash\nline 2"))
        .unwrap();
    for c in wss.iter_mut() {
        assert_eq!(next_text(c), "flash\nline 2");
    }
    let mut ids = Vec::new();
    for c in sses.iter_mut() {
        let e = c.event();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("id: "), "{e:?}");
        assert_eq!(&e[1..], ["data: flash", "data: line 2"]);
        ids.push(e[0].clone());
    }
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");

    // From the embedding API on any thread that holds the handle.
    let b = Broadcast::to_channel("news", MessageKind::Text, "from outside");
    assert_eq!(ws::publish(&s, &b), 2);
    for c in wss.iter_mut() {
        assert_eq!(next_text(c), "from outside");
    }
    for c in sses.iter_mut() {
        assert_eq!(c.data().0, "from outside");
    }
    // From an HTTP handler (`publish_here`); outside a handler it refuses.
    assert!(!ws::publish_here(Broadcast::to_channel(
        "news",
        MessageKind::Text,
        "lost"
    )));
    let mut h = TcpStream::connect(addr).unwrap();
    h.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    h.write_all(
        b"POST /publish?channel=news HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nvia http",
    )
    .unwrap();
    let mut status = [0u8; 12];
    h.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 202");
    for c in wss.iter_mut() {
        assert_eq!(next_text(c), "via http");
    }
    for c in sses.iter_mut() {
        assert_eq!(c.data().0, "via http");
    }
    // An SSE event of our own reaches WebSocket subscribers as its data.
    wss[1].send(Message::text("ssepub:news:noted")).unwrap();
    for c in wss.iter_mut() {
        assert_eq!(next_text(c), "noted");
    }
    for c in sses.iter_mut() {
        let e = c.event();
        assert_eq!(e[0], "event: note");
        assert_eq!(e.last().unwrap(), "data: noted");
    }
    // Binary broadcasts are WebSocket-only; the next SSE event is the next text one.
    let bin = Broadcast::to_channel("news", MessageKind::Binary, Bytes::from_static(b"\x00\x01"));
    ws::publish(&s, &bin);
    for c in wss.iter_mut() {
        assert_eq!(c.read().unwrap(), Message::binary(&b"\x00\x01"[..]));
    }
    ws::publish(
        &s,
        &Broadcast::to_channel("other", MessageKind::Text, "second channel"),
    );
    for c in sses.iter_mut() {
        assert_eq!(c.data().0, "second channel");
    }
    // Endpoint channels: /fixed joins "fixed" and "extra" whatever the query says.
    let mut f = Sse::open(addr, "/fixed?channel=news", "");
    wait_for("fixed registration", || {
        app.sse_subscriptions() == 2 * sses.len() + 2
    });
    ws::publish(
        &s,
        &Broadcast::to_channel("news", MessageKind::Text, "not for fixed"),
    );
    ws::publish(&s, &Broadcast::to_channel("extra", MessageKind::Text, "x"));
    ws::publish(&s, &Broadcast::to_channel("fixed", MessageKind::Text, "f"));
    assert_eq!(f.data().0, "x");
    assert_eq!(f.data().0, "f");
}

fn sse_only_channel_and_last_event_id_resume(d: DriverChoice) {
    let cfg = SseConfig {
        replay: 2,
        ..SseConfig::default()
    };
    let (s, addr, app) = start(d, 2, cfg);
    let mut a = Sse::open(addr, "/sse?channel=only", "");
    assert_eq!(a.event()[0], "event: core");
    wait_for("registration", || app.sse_subscriptions() == 1);
    ws::publish(&s, &Broadcast::to_channel("only", MessageKind::Text, "one"));
    let (data, id) = a.data();
    assert_eq!(data, "one");
    let id = id.unwrap();
    drop(a);
    wait_for("leave", || app.sse_subscriptions() == 0);
    // Three events while away; the buffer keeps two.
    for t in ["two", "three", "four"] {
        ws::publish(&s, &Broadcast::to_channel("only", MessageKind::Text, t));
    }
    // Replayed on either core (every core buffers every channel), in order, then live.
    for _ in 0..4 {
        let mut b = Sse::open(
            addr,
            "/sse?channel=only",
            &format!("Last-Event-ID: {id}\r\n"),
        );
        assert_eq!(b.event()[0], "event: core");
        assert_eq!(b.data().0, "three");
        let (four, four_id) = b.data();
        assert_eq!(four, "four");
        // Resuming from "three" gives "four" only.
        let mut c = Sse::open(
            addr,
            "/sse?channel=only",
            &format!("Last-Event-ID: {}\r\n", four_id.unwrap() - 1),
        );
        c.event();
        assert_eq!(c.data().0, "four");
    }
    // Too many or malformed channel names: 400.
    for bad in [
        "/sse?channel=a&channel=b&channel=c&channel=d&channel=e",
        "/sse?channel=%zz",
        "/sse?channel=",
    ] {
        let mut t = TcpStream::connect(addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        t.write_all(format!("GET {bad} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut buf = [0u8; 12];
        t.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"HTTP/1.1 400", "{bad}");
    }
    let long = format!("/sse?channel={}", "n".repeat(sse::MAX_CHANNEL_NAME + 1));
    let mut t = TcpStream::connect(addr).unwrap();
    t.write_all(format!("GET {long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = [0u8; 12];
    t.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 400");
}

fn disconnect_leaves_every_channel(d: DriverChoice) {
    let (s, addr, app) = start(d, 2, SseConfig::default());
    let mut clients = sse_on_both_cores(addr, "/sse?channel=a&channel=b&channel=c", 6);
    let n = clients.len();
    wait_for("registrations", || app.sse_subscriptions() == 3 * n);
    ws::publish(&s, &Broadcast::to_channel("b", MessageKind::Text, "hi"));
    for c in clients.iter_mut() {
        assert_eq!(c.data().0, "hi");
    }
    // Half leave with a plain close, half shut down both directions first.
    for (i, c) in clients.drain(..).enumerate() {
        let sock = c.0.into_inner();
        if i % 2 == 0 {
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
        drop(sock);
    }
    wait_for("every subscription gone", || app.sse_subscriptions() == 0);
    // The server keeps publishing to the (now empty) channels without trouble.
    ws::publish(&s, &Broadcast::to_channel("b", MessageKind::Text, "nobody"));
    let mut c = Sse::open(addr, "/sse?channel=b", "");
    c.event();
    wait_for("re-registration", || app.sse_subscriptions() == 1);
    ws::publish(&s, &Broadcast::to_channel("b", MessageKind::Text, "again"));
    assert_eq!(c.data().0, "again");
}

fn slow_sse_reader_is_cut_off(d: DriverChoice) {
    let cfg = SseConfig {
        max_lag: 0x1_0000,
        ..SseConfig::default()
    };
    let (s, addr, app) = start(d, 1, cfg);
    // A reader that stops reading after the head.
    let mut slow = Sse::open(addr, "/sse?channel=flood", "");
    slow.event();
    let mut fast = Sse::open(addr, "/sse?channel=calm", "");
    fast.event();
    wait_for("registrations", || app.sse_subscriptions() == 2);
    // 16 MiB of events: far past the socket buffers and `max_lag`.
    let big = "x".repeat(0x4000);
    for _ in 0..1024 {
        ws::publish(
            &s,
            &Broadcast::to_channel("flood", MessageKind::Text, big.clone()),
        );
        if app.sse_subscriptions() == 1 {
            break;
        }
    }
    wait_for("the slow reader cut off", || app.sse_subscriptions() == 1);
    // It gets what was queued, then the end (reset or EOF), never 16 MiB.
    let mut total = 0usize;
    let mut buf = vec![0u8; 0x1_0000];
    loop {
        match slow.0.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < 0x80_0000, "read {total} bytes");
    // Others are unaffected.
    ws::publish(
        &s,
        &Broadcast::to_channel("calm", MessageKind::Text, "still here"),
    );
    assert_eq!(fast.data().0, "still here");
}

fn curl() -> Option<&'static str> {
    let ok = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("NOTICE: curl not found; skipping the curl part");
    }
    ok.then_some("curl")
}

fn serve_broadcast_path_reaches_sse_and_curl(d: DriverChoice) {
    let rt = RuntimeConfig {
        driver: d,
        threads: 2,
        ..Default::default()
    };
    let s = ringwire::serve::start_with(
        rt,
        ServeConfig::default(),
        &[("127.0.0.1:0".parse().unwrap(), Service::Http)],
    )
    .unwrap();
    let addr = s.local_addrs()[0];
    let mut sses: Vec<Sse> = (0..4)
        .map(|_| {
            let mut c = Sse::open(addr, "/events?channel=broadcast", "");
            assert_eq!(c.0.fill_buf().map(|b| !b.is_empty()).ok(), Some(true));
            c
        })
        .collect();
    // No clock ticks on a channel request: the first event is the broadcast.
    let mut curl_child = curl().map(|curl| {
        let mut child = Command::new(curl)
            .args(["-sN", "--max-time", "20"])
            .arg(format!("http://{addr}/events?channel=broadcast"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert_eq!(first, ": ok\n");
        (child, out)
    });
    let mut sub = ws_client(addr, BROADCAST_PATH);
    let mut sender = ws_client(addr, BROADCAST_PATH);
    // Every SSE registration happened before its head went out; curl's too once it printed.
    sender.send(Message::text("to everyone")).unwrap();
    assert_eq!(next_text(&mut sub), "to everyone");
    assert_eq!(next_text(&mut sender), "to everyone");
    for c in sses.iter_mut() {
        assert_eq!(c.data().0, "to everyone");
    }
    if let Some((mut child, mut out)) = curl_child.take() {
        let mut got = Vec::new();
        loop {
            let mut l = String::new();
            assert!(out.read_line(&mut l).unwrap() > 0, "curl ended: {got:?}");
            if l == "data: to everyone\n" {
                break;
            }
            got.push(l);
        }
        assert!(got.iter().any(|l| l.starts_with("id: ")), "{got:?}");
        let _ = child.kill();
        let _ = child.wait();
    }
    // Plain /events is still the clock.
    let mut clock = Sse::open(addr, "/events", "");
    let e = clock.event();
    assert_eq!(e[0], "event: time", "{e:?}");
}
