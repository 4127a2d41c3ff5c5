//! Every limit in `Config`: the value itself passes, one more fails, the same
//! way whether the bytes arrive whole or one at a time.

mod common;

use common::{Split, drive, now};
use ringwire_http1::{
    BodyLen, Config, DEFAULT_MAX_BODY, DEFAULT_MAX_CHUNK_LINE, DEFAULT_MAX_HEAD_BYTES,
    DEFAULT_MAX_HEADERS, DEFAULT_MAX_PIPELINE, DEFAULT_MAX_REQUEST_LINE, DEFAULT_MAX_TRAILER_BYTES,
    Event, HttpError, MAX_HEADERS_CAP, ServerConn, ServerSettings, StatusCode,
};

/// The last line of the rendering, after checking that splits agree.
fn verdict(cfg: Config, input: &[u8]) -> String {
    let (whole, _) = drive(cfg, input, Split::Whole);
    let (bytewise, _) = drive(cfg, input, Split::Bytewise);
    let (random, _) = drive(cfg, input, Split::Random(3));
    assert_eq!(whole, bytewise);
    assert_eq!(whole, random);
    whole
}

fn ok(cfg: Config, input: &[u8]) {
    let v = verdict(cfg, input);
    assert!(!v.contains("error"), "{v}");
    assert!(v.ends_with("end\n"), "{v}");
}

fn fails(cfg: Config, input: &[u8], err: HttpError) {
    let v = verdict(cfg, input);
    let want = format!("error {} {err:?}\n", err.status().as_u16());
    assert!(v.ends_with(&want), "{v}");
}

fn request_with_line_len(n: usize) -> Vec<u8> {
    // "GET /" + pad + " HTTP/1.1" is n bytes.
    let pad = "a".repeat(n - "GET / HTTP/1.1".len());
    format!("GET /{pad} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes()
}

#[test]
fn defaults_are_the_named_constants() {
    let c = Config::default();
    assert_eq!(c.max_request_line, DEFAULT_MAX_REQUEST_LINE);
    assert_eq!(c.max_head_bytes, DEFAULT_MAX_HEAD_BYTES);
    assert_eq!(c.max_headers, DEFAULT_MAX_HEADERS);
    assert_eq!(c.max_body, DEFAULT_MAX_BODY);
    assert_eq!(c.max_chunk_line, DEFAULT_MAX_CHUNK_LINE);
    assert_eq!(c.max_trailer_bytes, DEFAULT_MAX_TRAILER_BYTES);
    assert_eq!(c.max_pipeline, DEFAULT_MAX_PIPELINE);
    let clamped = ServerConn::new(Config {
        max_headers: MAX_HEADERS_CAP + 1,
        max_pipeline: 0,
        max_request_line: usize::MAX,
        ..Config::default()
    });
    assert_eq!(clamped.config().max_headers, MAX_HEADERS_CAP);
    assert_eq!(clamped.config().max_pipeline, 1);
    assert_eq!(
        clamped.config().max_request_line,
        DEFAULT_MAX_HEAD_BYTES - 2
    );
}

#[test]
fn max_request_line_exceeded_by_one_is_414() {
    let cfg = Config {
        max_request_line: 64,
        ..Config::default()
    };
    ok(cfg, &request_with_line_len(64));
    fails(
        cfg,
        &request_with_line_len(65),
        HttpError::RequestLineTooLong,
    );
    // Decided before the line ends: 66 bytes without a LF are too many.
    fails(cfg, &[b'G'; 66], HttpError::RequestLineTooLong);
    ok_partial(cfg, &[b'G'; 65]);
    // The default, too.
    ok(
        Config::default(),
        &request_with_line_len(DEFAULT_MAX_REQUEST_LINE),
    );
    fails(
        Config::default(),
        &request_with_line_len(DEFAULT_MAX_REQUEST_LINE + 1),
        HttpError::RequestLineTooLong,
    );
}

/// Input that is neither complete nor wrong yet.
fn ok_partial(cfg: Config, input: &[u8]) {
    let v = verdict(cfg, input);
    assert!(v.starts_with("paused leftover="), "{v}");
}

#[test]
fn max_head_bytes_exceeded_by_one_is_431() {
    let cfg = Config {
        max_head_bytes: 128,
        max_request_line: 64,
        ..Config::default()
    };
    // Head = "GET / HTTP/1.1\r\nHost: a\r\nX: " + pad + "\r\n\r\n".
    let head = |total: usize| {
        let fixed = "GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n".len();
        let pad = "v".repeat(total - fixed);
        format!("GET / HTTP/1.1\r\nHost: a\r\nX: {pad}\r\n\r\n").into_bytes()
    };
    assert_eq!(head(128).len(), 128);
    ok(cfg, &head(128));
    fails(cfg, &head(129), HttpError::HeadTooLarge);
}

#[test]
fn max_headers_exceeded_by_one_is_431() {
    let cfg = Config {
        max_headers: 4,
        ..Config::default()
    };
    let req = |n: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 1..n {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    };
    ok(cfg, &req(4));
    fails(cfg, &req(5), HttpError::TooManyHeaders);
}

#[test]
fn max_body_content_length_exceeded_by_one_is_413() {
    let cfg = Config {
        max_body: 10,
        ..Config::default()
    };
    let req = |n: usize| {
        format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n{}",
            "b".repeat(n)
        )
        .into_bytes()
    };
    ok(cfg, &req(10));
    fails(cfg, &req(11), HttpError::BodyTooLarge);
}

/// Whether a connection with `settings` takes a POST of `n` body bytes to `path` (with a
/// query, which per-path limits ignore), or the error it gives.
fn post_on(c: &mut ServerConn, path: &str, n: usize) -> Result<(), HttpError> {
    let req = format!(
        "POST {path}?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: {n}\r\n\r\n{}",
        "b".repeat(n)
    );
    c.handle_read(req.as_bytes()).map(|_| ())
}

/// Per-path body limits (upload routes): settings shared by many connections give each the
/// same limits, exceeded by one gives 413; a limit set on one connection stays with it.
#[test]
fn per_path_body_limits_shared_and_per_connection() {
    let cfg = Config {
        max_body: 10,
        ..Config::default()
    };
    let settings = ServerSettings::new(cfg)
        .with_body_limit("/up", 20)
        .with_body_limit("/small", 2);
    let conn = || ServerConn::with_settings(&settings);
    assert_eq!(post_on(&mut conn(), "/up", 20), Ok(()));
    assert_eq!(
        post_on(&mut conn(), "/up", 21),
        Err(HttpError::BodyTooLarge)
    );
    assert_eq!(post_on(&mut conn(), "/small", 2), Ok(()));
    assert_eq!(
        post_on(&mut conn(), "/small", 3),
        Err(HttpError::BodyTooLarge)
    );
    assert_eq!(post_on(&mut conn(), "/other", 10), Ok(()));
    assert_eq!(
        post_on(&mut conn(), "/other", 11),
        Err(HttpError::BodyTooLarge)
    );
    // Set on one connection: the others keep the shared limits.
    let mut own = conn();
    own.set_body_limit_for("/other", 30);
    assert_eq!(post_on(&mut own, "/other", 30), Ok(()));
    assert_eq!(
        post_on(&mut conn(), "/other", 11),
        Err(HttpError::BodyTooLarge)
    );
    // Clamped once, for all of them.
    let clamped = ServerSettings::new(Config {
        max_pipeline: 0,
        ..cfg
    });
    assert_eq!(clamped.config().max_pipeline, 1);
    assert_eq!(ServerConn::with_settings(&clamped).config().max_pipeline, 1);
}

#[test]
fn max_body_chunked_exceeded_by_one_is_413() {
    let cfg = Config {
        max_body: 10,
        ..Config::default()
    };
    let req = |last: usize| {
        format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
             6\r\nabcdef\r\n{last:x}\r\n{}\r\n0\r\n\r\n",
            "z".repeat(last)
        )
        .into_bytes()
    };
    ok(cfg, &req(4));
    let v = verdict(cfg, &req(5));
    // The first chunk was delivered before the second one's size gave it away.
    assert!(v.contains("body abcdef\n"), "{v}");
    assert!(v.ends_with("error 413 BodyTooLarge\n"), "{v}");
}

#[test]
fn max_chunk_line_exceeded_by_one_is_400() {
    let cfg = Config {
        max_chunk_line: 8,
        ..Config::default()
    };
    let req = |line: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{line}\r\nx\r\n0\r\n\r\n"
        )
        .into_bytes()
    };
    ok(cfg, &req("1;abcdef"));
    fails(cfg, &req("1;abcdefg"), HttpError::ChunkLineTooLong);
    // Leading zeros count too: no unbounded digit runs.
    ok(cfg, &req("00000001"));
    fails(cfg, &req("000000001"), HttpError::ChunkLineTooLong);
}

#[test]
fn max_trailer_bytes_exceeded_by_one_is_431() {
    let cfg = Config {
        max_trailer_bytes: 32,
        ..Config::default()
    };
    // Trailer section = "T: " + pad + "\r\n" + "\r\n".
    let req = |total: usize| {
        let pad = "t".repeat(total - "T: \r\n\r\n".len());
        format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: {pad}\r\n\r\n"
        )
        .into_bytes()
    };
    ok(cfg, &req(32));
    fails(cfg, &req(33), HttpError::TrailersTooLarge);
}

#[test]
fn trailer_field_count_exceeded_by_one_is_431() {
    let cfg = Config {
        max_headers: 3,
        ..Config::default()
    };
    let req = |n: usize| {
        let mut s =
            String::from("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
        for i in 0..n {
            s.push_str(&format!("T{i}: v\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    };
    ok(cfg, &req(3));
    fails(cfg, &req(4), HttpError::TrailersTooLarge);
}

#[test]
fn max_pipeline_exceeded_by_one_waits_for_a_response() {
    let cfg = Config {
        max_pipeline: 2,
        ..Config::default()
    };
    let one = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let three: Vec<u8> = one.repeat(3);
    let mut conn = ServerConn::new(cfg);
    let n = conn.handle_read(&three).unwrap();
    assert_eq!(n, 2 * one.len(), "the third request stays with the caller");
    let mut requests = 0;
    while let Some(ev) = conn.poll_event() {
        requests += usize::from(matches!(ev, Event::Request(_)));
    }
    assert_eq!(requests, 2);
    assert_eq!(conn.outstanding(), 2);
    assert_eq!(conn.handle_read(&three[n..]).unwrap(), 0, "still full");

    let mut out = Vec::new();
    conn.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out)
        .unwrap();
    conn.finish_response(&mut out).unwrap();
    assert_eq!(conn.handle_read(&three[n..]).unwrap(), one.len());
    assert!(matches!(conn.poll_event(), Some(Event::Request(_))));
    assert_eq!(conn.outstanding(), 2);
}
