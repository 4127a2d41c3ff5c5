//! Test helpers shared by the test binaries (each uses some of them).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A socket whose reads and writes retry EINTR: io_uring workers in the test process can
/// interrupt a test thread's blocking calls (a read with a timeout is not restarted after a
/// signal), which tungstenite would otherwise report as errors.
pub struct Retry(pub TcpStream);

impl Read for Retry {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.0.read(b) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
}

impl Write for Retry {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        loop {
            match self.0.write(b) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A tungstenite client on `ws://addr{path}` whose socket retries EINTR, reads timing out
/// after `timeout`.
pub fn ws_client(addr: SocketAddr, path: &str, timeout: Duration) -> tungstenite::WebSocket<Retry> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    match tungstenite::client(format!("ws://{addr}{path}"), Retry(stream)) {
        Ok((ws, _)) => ws,
        Err(e) => panic!("handshake on {path}: {e}"),
    }
}

/// The client side of a WebSocket handshake offering permessage-deflate `deflate`, on the
/// ringwire-ws codec: returns the negotiated deflate parameters and the bytes read past the
/// 101 response (the first frames, if any).
pub fn deflate_handshake(
    s: &mut TcpStream,
    deflate: &ringwire_ws::DeflateConfig,
) -> (Option<ringwire_ws::DeflateParams>, Vec<u8>) {
    use ringwire_ws::handshake::{ClientHandshake, ClientRequest, ServerResponse};
    let req = ClientRequest {
        host: "x",
        path: "/d",
        origin: None,
        protocols: &[],
        deflate: Some(deflate),
        extra_headers: &[],
    };
    let mut out = Vec::new();
    let hs = ClientHandshake::new(&req, [7u8; 16], &mut out).unwrap();
    s.write_all(&out).unwrap();
    let mut rx = Vec::new();
    let (neg, used) = loop {
        let mut b = [0u8; 4096];
        let n = s.read(&mut b).unwrap();
        assert!(n > 0);
        rx.extend_from_slice(&b[..n]);
        if let Some((resp, used)) = ServerResponse::parse(&rx).unwrap() {
            break (hs.verify(&resp).unwrap().deflate, used);
        }
    };
    rx.drain(..used);
    (neg, rx)
}

/// The port of a `ringwire serve` readiness line, `listening on 127.0.0.1:PORT (driver=D,
/// threads=N)`. Tests start the server on port 0 and read the port from here, so no other
/// test's socket can take a port between choosing it and the server binding it.
pub fn announced_port(line: &str) -> u16 {
    let port = line
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a readiness line: {line}"));
    assert_ne!(port, 0, "{line}");
    port
}
