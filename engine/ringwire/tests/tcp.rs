//! The framed TCP plugin and the `ringwire serve` router on real sockets, on both drivers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ringwire::runtime::{ConnCtx, DriverChoice, RuntimeConfig, ServerBuilder, ServerHandle};
use ringwire::serve::{self, Service};
use ringwire::tcp::{Framed, Framing, TcpError, TcpHandler, TcpOptions};

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    delimiter_anywhere_splits_stream,
    delimiter_at_end_waits_for_tail,
    packet_mode_delivers_reads,
    message_too_large_closes,
    router_serves_echo_and_http,
);

/// Answers every message with `[len:msg]`.
struct Brackets;
impl TcpHandler for Brackets {
    fn on_message(&mut self, cx: &mut ConnCtx<'_>, msg: &mut [u8]) {
        let mut out = format!("[{}:", msg.len()).into_bytes();
        out.extend_from_slice(msg);
        out.push(b']');
        let _ = cx.send(out);
    }
    fn on_error(&mut self, cx: &mut ConnCtx<'_>, err: TcpError) {
        let _ = cx.send(format!("{err:?}").into_bytes());
    }
}

fn start(d: DriverChoice, framing: Framing, max: usize) -> (ServerHandle, SocketAddr) {
    let cfg = RuntimeConfig {
        driver: d,
        threads: 1,
        ..Default::default()
    };
    let opts = Arc::new(TcpOptions {
        framing,
        max_message: max,
    });
    let mut b = ServerBuilder::new(cfg);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let s = b
        .start(move |_| Framed::new(Brackets, opts.clone()))
        .unwrap();
    let a = s.local_addrs()[0];
    (s, a)
}

fn connect(a: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn read_n(s: &mut TcpStream, n: usize) -> String {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).unwrap();
    String::from_utf8(b).unwrap()
}

fn delimiter_anywhere_splits_stream(d: DriverChoice) {
    let (_s, a) = start(d, Framing::DelimiterAnywhere(b"\r\n".to_vec()), 1024);
    let mut s = connect(a);
    s.write_all(b"ab\r\ncd\r").unwrap();
    assert_eq!(read_n(&mut s, 6), "[2:ab]");
    // The delimiter completes across writes.
    s.write_all(b"\nef").unwrap();
    assert_eq!(read_n(&mut s, 6), "[2:cd]");
    s.write_all(b"\r\n\r\n").unwrap();
    assert_eq!(read_n(&mut s, 10), "[2:ef][0:]");
}

fn delimiter_at_end_waits_for_tail(d: DriverChoice) {
    let (_s, a) = start(d, Framing::DelimiterAtEnd(b"END".to_vec()), 1024);
    let mut s = connect(a);
    s.write_all(b"one END two").unwrap();
    s.write_all(b" three").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"END").unwrap();
    // Everything up to the final delimiter is one message (an inner "END" does not split).
    assert_eq!(read_n(&mut s, 22), "[17:one END two three]");
}

fn packet_mode_delivers_reads(d: DriverChoice) {
    let (_s, a) = start(d, Framing::Packet, 1024);
    let mut s = connect(a);
    s.write_all(b"hello").unwrap();
    assert_eq!(read_n(&mut s, 9), "[5:hello]");
}

fn message_too_large_closes(d: DriverChoice) {
    let (_s, a) = start(d, Framing::DelimiterAnywhere(b"\n".to_vec()), 10);
    let mut s = connect(a);
    s.write_all(b"0123456789\n").unwrap(); // exactly the limit: fine
    assert_eq!(read_n(&mut s, 15), "[10:0123456789]");
    s.write_all(b"0123456789A\n").unwrap(); // one over
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "MessageTooLarge");
}

fn router_serves_echo_and_http(d: DriverChoice) {
    let cfg = RuntimeConfig {
        driver: d,
        threads: 2,
        ..Default::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = serve::start(cfg, &[(any, Service::Http), (any, Service::TcpEcho)]).unwrap();
    let (http, echo) = (server.local_addrs()[0], server.local_addrs()[1]);
    let mut e = connect(echo);
    e.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut e, 4), "ping");
    let mut h = connect(http);
    h.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    h.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 404 "), "{resp}");
}
