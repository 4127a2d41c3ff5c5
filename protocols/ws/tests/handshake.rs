//! The opening handshake, server and client (RFC 6455 §4).

use ringwire_ws::WsError;
use ringwire_ws::handshake::{
    ClientHandshake, ClientRequest, Header, ServerResponse, UpgradeRequest, write_accept,
    write_error_response, write_reject,
};

const BASE: &[(&str, &str)] = &[
    ("Host", "example.com:8080"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

fn request(line: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{line}\r\n");
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// BASE with `name` replaced by `value` (None: removed).
fn with(name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = BASE
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    if let Some(value) = value {
        v.push((name.to_owned(), value.to_owned()));
    }
    v
}

fn parse_err(line: &str, headers: &[(String, String)]) -> WsError {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let buf = request(line, &h);
    match UpgradeRequest::parse(&buf) {
        Err(e) => e,
        Ok(r) => panic!("accepted: {:?}", r.map(|(r, _)| r.path().to_owned())),
    }
}

#[test]
fn rfc6455_4_2_1_accepts_variants() {
    let cases: &[&[(&str, &str)]] = &[
        BASE,
        // Case-insensitive names and values, token lists.
        &[
            ("host", "h"),
            ("UPGRADE", "WebSocket"),
            ("connection", "keep-alive, upgrade"),
            ("sec-websocket-key", " dGhlIHNhbXBsZSBub25jZQ== "),
            ("SEC-WEBSOCKET-VERSION", "13"),
        ],
        // Upgrade list and Connection spread over two headers.
        &[
            ("Host", "h"),
            ("Upgrade", "h2c, websocket"),
            ("Connection", "keep-alive"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    ];
    for h in cases {
        let buf = request("GET /a/b?x=1&y=2 HTTP/1.1", h);
        let (req, n) = UpgradeRequest::parse(&buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(req.path(), "/a/b");
        assert_eq!(req.query(), Some("x=1&y=2"));
        assert_eq!(req.origin(), None);
    }
    // Absolute-form target.
    let buf = request("GET ws://example.com/chat?room=1 HTTP/1.1", BASE);
    let (req, _) = UpgradeRequest::parse(&buf).unwrap().unwrap();
    assert_eq!((req.path(), req.query()), ("/chat", Some("room=1")));
    assert_eq!(req.host(), "example.com:8080");
    assert_eq!(req.header("sec-websocket-version"), Some(&b"13"[..]));
}

#[test]
fn rfc6455_4_2_1_partial_then_trailing_frames() {
    let buf = request("GET / HTTP/1.1", BASE);
    for n in 0..buf.len() {
        assert!(
            matches!(UpgradeRequest::parse(&buf[..n]), Ok(None)),
            "n={n}"
        );
    }
    // Bytes after the head are the first frames; `n` stops before them.
    let mut more = buf.clone();
    more.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
    let (_, n) = UpgradeRequest::parse(&more).unwrap().unwrap();
    assert_eq!(n, buf.len());
}

#[test]
fn rfc6455_4_2_1_rejections() {
    use WsError::*;
    let line = "GET / HTTP/1.1";
    let base = with("x-none", None);
    assert_eq!(parse_err("POST / HTTP/1.1", &base), MethodNotGet);
    assert_eq!(parse_err("GET / HTTP/1.0", &base), NotHttp11);
    assert_eq!(parse_err("GET * HTTP/1.1", &base), BadRequestTarget);
    assert_eq!(parse_err("GET ftp://x/ HTTP/1.1", &base), BadRequestTarget);
    assert_eq!(parse_err(line, &with("Host", None)), MissingHost);
    let mut two_hosts = base.clone();
    two_hosts.push(("Host".into(), "other".into()));
    assert_eq!(parse_err(line, &two_hosts), MissingHost);
    assert_eq!(parse_err(line, &with("Upgrade", None)), MissingUpgrade);
    assert_eq!(
        parse_err(line, &with("Upgrade", Some("h2c"))),
        MissingUpgrade
    );
    assert_eq!(
        parse_err(line, &with("Connection", Some("keep-alive"))),
        MissingConnectionUpgrade
    );
    assert_eq!(
        parse_err(line, &with("Sec-WebSocket-Version", None)),
        UnsupportedVersion
    );
    assert_eq!(
        parse_err(line, &with("Sec-WebSocket-Version", Some("8"))),
        UnsupportedVersion
    );
    assert_eq!(
        parse_err(line, &with("Sec-WebSocket-Version", Some("13, 8"))),
        UnsupportedVersion
    );
    assert_eq!(parse_err(line, &with("Sec-WebSocket-Key", None)), BadKey);
    // 15 bytes, 17 bytes, not base64.
    for key in [
        "AQIDBAUGBwgJCgsMDQ4P",
        "AQIDBAUGBwgJCgsMDQ4PEBE=",
        "not base64 at all!!!!!!=",
        "",
    ] {
        assert_eq!(
            parse_err(line, &with("Sec-WebSocket-Key", Some(key))),
            BadKey,
            "{key}"
        );
    }
    let mut two_keys = base.clone();
    two_keys.push((
        "Sec-WebSocket-Key".into(),
        "AQIDBAUGBwgJCgsMDQ4PEA==".into(),
    ));
    assert_eq!(parse_err(line, &two_keys), BadKey);
    let garbage = b"GET / HTTP/1.1\r\nHost h\r\n\r\n";
    assert_eq!(
        UpgradeRequest::parse(garbage).unwrap_err(),
        HandshakeMalformed
    );
}

#[test]
fn rfc6455_4_4_version_426_response() {
    let mut out = Vec::new();
    write_reject(&WsError::UnsupportedVersion, &mut out);
    assert_eq!(
        out,
        b"HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\nContent-Length: 0\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n"
    );
    let mut out = Vec::new();
    write_reject(&WsError::BadKey, &mut out);
    assert!(out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    let mut out = Vec::new();
    write_reject(&WsError::MethodNotGet, &mut out);
    assert!(out.starts_with(b"HTTP/1.1 405 Method Not Allowed\r\n"));
    assert!(out.windows(12).any(|w| w == b"Allow: GET\r\n"));
    let mut out = Vec::new();
    write_error_response(403, &[("X-Reason", "origin")], &mut out).unwrap();
    assert_eq!(
        out,
        b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\nX-Reason: origin\r\n\r\n"
    );
    assert_eq!(WsError::Forbidden.http_status(), Some(403));
    // Header injection is refused.
    let mut out = Vec::new();
    assert_eq!(
        write_error_response(403, &[("X", "a\r\nSet-Cookie: x")], &mut out),
        Err(WsError::InvalidHeader)
    );
    assert_eq!(
        write_error_response(403, &[("Bad Name", "a")], &mut out),
        Err(WsError::InvalidHeader)
    );
    assert!(out.is_empty());
}

#[test]
fn rfc6455_4_2_2_subprotocol_must_be_offered() {
    let mut h: Vec<(&str, &str)> = BASE.to_vec();
    h.push(("Sec-WebSocket-Protocol", "mqtt, wamp.2.json"));
    h.push(("Sec-WebSocket-Protocol", "chat"));
    h.push(("Origin", "https://app.example"));
    let buf = request("GET / HTTP/1.1", &h);
    let (req, _) = UpgradeRequest::parse(&buf).unwrap().unwrap();
    assert_eq!(
        req.protocols().collect::<Vec<_>>(),
        ["mqtt", "wamp.2.json", "chat"]
    );
    assert_eq!(req.origin(), Some("https://app.example"));
    let mut out = Vec::new();
    assert_eq!(
        write_accept(&req, Some("stomp"), None, &[], &mut out),
        Err(WsError::ProtocolNotOffered)
    );
    assert!(out.is_empty());
    write_accept(
        &req,
        Some("wamp.2.json"),
        None,
        &[("Server", "ringwire")],
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Sec-WebSocket-Protocol: wamp.2.json\r\n"));
    assert!(text.ends_with("Server: ringwire\r\n\r\n"));
}

#[test]
fn from_parts_for_another_http_parser() {
    let headers: Vec<Header<'_>> = BASE
        .iter()
        .map(|(n, v)| Header {
            name: n,
            value: v.as_bytes(),
        })
        .collect();
    let req = UpgradeRequest::from_parts("GET", "/x", 1, &headers).unwrap();
    assert_eq!(req.path(), "/x");
    let too_many = vec![headers[0]; ringwire_ws::handshake::MAX_HEADERS + 1];
    assert_eq!(
        UpgradeRequest::from_parts("GET", "/x", 1, &too_many).unwrap_err(),
        WsError::HandshakeTooLarge
    );
}

fn client() -> (ClientHandshake, Vec<u8>) {
    let mut out = Vec::new();
    let hs = ClientHandshake::new(
        &ClientRequest {
            host: "example.com",
            path: "/ws?token=abc",
            origin: Some("https://example.com"),
            protocols: &["chat", "superchat"],
            deflate: None,
            extra_headers: &[("Authorization", "Bearer t")],
        },
        [0x42; 16],
        &mut out,
    )
    .unwrap();
    (hs, out)
}

fn response(hs: &ClientHandshake, status: &str, extra: &[(&str, &str)], accept: bool) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {status}\r\n");
    if accept {
        s.push_str(&format!(
            "Sec-WebSocket-Accept: {}\r\n",
            hs.expected_accept().as_str()
        ));
    }
    for (n, v) in extra {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

const UPGRADE: &[(&str, &str)] = &[("Upgrade", "websocket"), ("Connection", "Upgrade")];

#[test]
fn rfc6455_4_1_client_request_is_valid() {
    let (hs, out) = client();
    // Our own server parser accepts it, and its accept value is what the client expects.
    let (req, n) = UpgradeRequest::parse(&out).unwrap().unwrap();
    assert_eq!(n, out.len());
    assert_eq!(req.path(), "/ws");
    assert_eq!(req.query(), Some("token=abc"));
    assert_eq!(req.accept_key(), hs.expected_accept());
    assert_eq!(req.header("authorization"), Some(&b"Bearer t"[..]));
    // Bad inputs.
    let mut out = Vec::new();
    for bad in [
        ClientRequest {
            host: "h",
            path: "no-slash",
            origin: None,
            protocols: &[],
            deflate: None,
            extra_headers: &[],
        },
        ClientRequest {
            host: "h\r\nX: y",
            path: "/",
            origin: None,
            protocols: &[],
            deflate: None,
            extra_headers: &[],
        },
        ClientRequest {
            host: "h",
            path: "/ x",
            origin: None,
            protocols: &[],
            deflate: None,
            extra_headers: &[],
        },
        ClientRequest {
            host: "h",
            path: "/",
            origin: None,
            protocols: &["a b"],
            deflate: None,
            extra_headers: &[],
        },
    ] {
        assert_eq!(
            ClientHandshake::new(&bad, [0; 16], &mut out).unwrap_err(),
            WsError::InvalidHeader
        );
    }
    assert!(out.is_empty());
}

#[test]
fn rfc6455_4_1_client_validates_the_response() {
    let (hs, _) = client();
    let check = |buf: Vec<u8>| {
        let (r, _) = ServerResponse::parse(&buf).unwrap().unwrap();
        hs.verify(&r).map(|n| n.protocol.map(str::to_owned))
    };
    let mut ok: Vec<(&str, &str)> = UPGRADE.to_vec();
    assert_eq!(
        check(response(&hs, "101 Switching Protocols", &ok, true)),
        Ok(None)
    );
    ok.push(("Sec-WebSocket-Protocol", "superchat"));
    assert_eq!(
        check(response(&hs, "101 Switching Protocols", &ok, true)),
        Ok(Some("superchat".into()))
    );
    use WsError::*;
    assert_eq!(
        check(response(&hs, "101 Switching Protocols", UPGRADE, false)),
        Err(BadAccept)
    );
    let wrong_accept = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec();
    assert_eq!(check(wrong_accept), Err(BadAccept));
    assert_eq!(
        check(response(
            &hs,
            "101 Switching Protocols",
            &[("Connection", "Upgrade")],
            true
        )),
        Err(MissingUpgrade)
    );
    assert_eq!(
        check(response(
            &hs,
            "101 Switching Protocols",
            &[("Upgrade", "websocket")],
            true
        )),
        Err(MissingConnectionUpgrade)
    );
    let mut bad_proto: Vec<(&str, &str)> = UPGRADE.to_vec();
    bad_proto.push(("Sec-WebSocket-Protocol", "mqtt"));
    assert_eq!(
        check(response(&hs, "101 Switching Protocols", &bad_proto, true)),
        Err(UnsolicitedProtocol)
    );
    let mut ext: Vec<(&str, &str)> = UPGRADE.to_vec();
    ext.push(("Sec-WebSocket-Extensions", "permessage-deflate"));
    assert_eq!(
        check(response(&hs, "101 Switching Protocols", &ext, true)),
        Err(UnsolicitedExtension)
    );
    // A redirect: status and Location are visible to the engine.
    let buf = response(&hs, "302 Found", &[("Location", "wss://other/ws")], false);
    let (r, _) = ServerResponse::parse(&buf).unwrap().unwrap();
    assert_eq!(hs.verify(&r), Err(BadStatus(302)));
    assert_eq!(r.header("location"), Some(&b"wss://other/ws"[..]));
}
