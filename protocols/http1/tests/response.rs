//! The response side: framing, persistence, ordering, 100 Continue, upgrades
//! and error responses, byte for byte.

mod common;

use std::time::Duration;

use common::now;
use ringwire_http1::{BodyLen, Config, ContinuePolicy, Event, HttpError, ServerConn, StatusCode};

const DATE: &str = "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n";

/// Feeds `input` whole and returns (consumed, number of requests seen).
fn feed(conn: &mut ServerConn, input: &[u8]) -> (usize, usize) {
    let n = conn.handle_read(input).unwrap();
    let mut requests = 0;
    while let Some(ev) = conn.poll_event() {
        requests += usize::from(matches!(ev, Event::Request(_)));
    }
    (n, requests)
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

#[test]
fn rfc9112_6_2_content_length_response() {
    let mut c = ServerConn::default();
    feed(&mut c, GET);
    let mut out = Vec::new();
    c.write_response_head(
        StatusCode::OK,
        &[("content-type", "text/plain")],
        BodyLen::Known(5),
        now(),
        &mut out,
    )
    .unwrap();
    c.write_body_chunk(b"hel", &mut out).unwrap();
    c.write_body_chunk(b"lo", &mut out).unwrap();
    c.finish_response(&mut out).unwrap();
    assert_eq!(
        text(&out),
        format!(
            "HTTP/1.1 200 OK\r\n{DATE}content-type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        )
    );
    assert!(!c.should_close());
    assert_eq!(c.outstanding(), 0);
}

#[test]
fn rfc9112_7_1_chunked_response() {
    let mut c = ServerConn::default();
    feed(&mut c, GET);
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::Chunked, now(), &mut out)
        .unwrap();
    c.write_body_chunk(b"hello", &mut out).unwrap();
    c.write_body_chunk(b"", &mut out).unwrap(); // must not end the body early
    c.write_body_chunk(&[b'x'; 26], &mut out).unwrap();
    c.finish_response(&mut out).unwrap();
    let x = "x".repeat(26);
    assert_eq!(
        text(&out),
        format!(
            "HTTP/1.1 200 OK\r\n{DATE}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1a\r\n{x}\r\n0\r\n\r\n"
        )
    );
}

#[test]
fn rfc9110_9_3_2_head_response_has_no_body() {
    let mut c = ServerConn::default();
    feed(
        &mut c,
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /c HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::Known(5), now(), &mut out)
        .unwrap();
    c.write_body_chunk(b"hello", &mut out).unwrap();
    c.finish_response(&mut out).unwrap();
    c.write_response_head(StatusCode::OK, &[], BodyLen::Chunked, now(), &mut out)
        .unwrap();
    c.write_body_chunk(b"hello", &mut out).unwrap();
    c.finish_response(&mut out).unwrap();
    assert_eq!(
        text(&out),
        format!(
            "HTTP/1.1 200 OK\r\n{DATE}Content-Length: 5\r\n\r\n\
             HTTP/1.1 200 OK\r\n{DATE}Transfer-Encoding: chunked\r\n\r\n"
        )
    );
}

#[test]
fn rfc9110_8_6_no_content_length_in_204_and_kept_in_304() {
    let mut c = ServerConn::default();
    feed(&mut c, &GET.repeat(3));
    let mut out = Vec::new();
    c.write_response_head(StatusCode::NO_CONTENT, &[], BodyLen::None, now(), &mut out)
        .unwrap();
    c.finish_response(&mut out).unwrap();
    c.write_response_head(
        StatusCode::NOT_MODIFIED,
        &[],
        BodyLen::Known(10),
        now(),
        &mut out,
    )
    .unwrap();
    c.write_body_chunk(b"ignored", &mut out).unwrap();
    c.finish_response(&mut out).unwrap();
    assert_eq!(
        text(&out),
        format!(
            "HTTP/1.1 204 No Content\r\n{DATE}\r\n\
             HTTP/1.1 304 Not Modified\r\n{DATE}Content-Length: 10\r\n\r\n"
        )
    );
    assert_eq!(
        c.write_response_head(
            StatusCode::NO_CONTENT,
            &[],
            BodyLen::Known(1),
            now(),
            &mut out
        ),
        Err(HttpError::ResponseBodyLength)
    );
}

#[test]
fn rfc9112_9_6_close_requested_is_echoed_and_closes() {
    let mut c = ServerConn::default();
    feed(
        &mut c,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out)
        .unwrap();
    assert!(
        !c.should_close(),
        "closing waits for the response to finish"
    );
    c.finish_response(&mut out).unwrap();
    assert!(c.should_close());
    assert!(text(&out).ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"));
    assert_eq!(
        c.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out),
        Err(HttpError::ResponseState)
    );
}

#[test]
fn rfc9112_9_3_http10_keep_alive_is_announced() {
    let mut c = ServerConn::default();
    feed(&mut c, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::Known(0), now(), &mut out)
        .unwrap();
    c.finish_response(&mut out).unwrap();
    assert!(text(&out).ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"));
    assert!(!c.should_close());
}

#[test]
fn rfc9112_6_1_http10_unknown_length_is_close_delimited() {
    let mut c = ServerConn::default();
    feed(&mut c, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::Chunked, now(), &mut out)
        .unwrap();
    c.write_body_chunk(b"raw", &mut out).unwrap();
    c.finish_response(&mut out).unwrap();
    assert_eq!(
        text(&out),
        format!("HTTP/1.1 200 OK\r\n{DATE}Connection: close\r\n\r\nraw")
    );
    assert!(c.should_close());
}

#[test]
fn caller_fields_close_and_date() {
    let mut c = ServerConn::default();
    feed(&mut c, GET);
    let mut out = Vec::new();
    c.write_response_head(
        StatusCode(299),
        &[("Date", "custom"), ("Connection", "close")],
        BodyLen::None,
        now(),
        &mut out,
    )
    .unwrap();
    c.finish_response(&mut out).unwrap();
    assert_eq!(
        text(&out),
        "HTTP/1.1 299 \r\nDate: custom\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    assert!(c.should_close());
}

#[test]
fn rfc9110_5_5_response_splitting_refused() {
    let mut c = ServerConn::default();
    feed(&mut c, GET);
    let mut out = Vec::new();
    for bad in [
        [("X", "a\r\nSet-Cookie: x")],
        [("X\r\nY", "a")],
        [("Content-Length", "3")],
        [("Transfer-Encoding", "chunked")],
    ] {
        assert_eq!(
            c.write_response_head(StatusCode::OK, &bad, BodyLen::None, now(), &mut out),
            Err(HttpError::ResponseHeader)
        );
    }
    assert!(out.is_empty(), "nothing written on refusal");
    for bad in [StatusCode(99), StatusCode(1000), StatusCode(103)] {
        assert_eq!(
            c.write_response_head(bad, &[], BodyLen::None, now(), &mut out),
            Err(HttpError::ResponseStatus)
        );
    }
    assert_eq!(
        c.write_response_head(
            StatusCode::SWITCHING_PROTOCOLS,
            &[],
            BodyLen::None,
            now(),
            &mut out
        ),
        Err(HttpError::ResponseStatus),
        "101 without an upgrade request"
    );
}

#[test]
fn response_calls_out_of_order_are_refused() {
    let mut c = ServerConn::default();
    let mut out = Vec::new();
    assert_eq!(
        c.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out),
        Err(HttpError::ResponseState),
        "no request yet"
    );
    assert_eq!(
        c.write_body_chunk(b"x", &mut out),
        Err(HttpError::ResponseState)
    );
    assert_eq!(c.finish_response(&mut out), Err(HttpError::ResponseState));
    feed(&mut c, GET);
    c.write_response_head(StatusCode::OK, &[], BodyLen::Known(2), now(), &mut out)
        .unwrap();
    assert_eq!(
        c.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out),
        Err(HttpError::ResponseState),
        "head twice"
    );
    assert_eq!(
        c.write_body_chunk(b"abc", &mut out),
        Err(HttpError::ResponseBodyLength)
    );
    c.write_body_chunk(b"a", &mut out).unwrap();
    assert_eq!(
        c.finish_response(&mut out),
        Err(HttpError::ResponseBodyLength)
    );
    assert!(c.should_close(), "a short body breaks framing");
}

#[test]
fn pipelined_responses_stay_in_order() {
    let mut c = ServerConn::default();
    let (_, n) = feed(
        &mut c,
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(n, 2);
    assert_eq!(c.outstanding(), 2);
    let mut out = Vec::new();
    for body in [&b"one"[..], b"two"] {
        c.write_response_head(StatusCode::OK, &[], BodyLen::Known(3), now(), &mut out)
            .unwrap();
        c.write_body_chunk(body, &mut out).unwrap();
        c.finish_response(&mut out).unwrap();
    }
    let t = text(&out);
    assert!(t.find("one").unwrap() < t.find("two").unwrap());
    assert_eq!(c.outstanding(), 0);
}

const EXPECT: &[u8] =
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
const CONTINUE: &str = "HTTP/1.1 100 Continue\r\n\r\n";

#[test]
fn rfc9110_10_1_1_auto_continue_once() {
    let mut c = ServerConn::default();
    feed(&mut c, EXPECT);
    let mut out = Vec::new();
    assert!(c.poll_transmit(&mut out));
    assert!(!c.poll_transmit(&mut out));
    assert_eq!(text(&out), CONTINUE);
    feed(&mut c, b"abc");
    c.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out)
        .unwrap();
    c.finish_response(&mut out).unwrap();
    assert!(!c.should_close());
}

#[test]
fn rfc9110_10_1_1_no_continue_once_the_body_arrived() {
    let mut c = ServerConn::default();
    let mut req = EXPECT.to_vec();
    req.extend_from_slice(b"abc");
    feed(&mut c, &req);
    let mut out = Vec::new();
    assert!(!c.poll_transmit(&mut out), "the client did not wait");
}

#[test]
fn rfc9110_10_1_1_manual_continue_and_refusal() {
    let manual = Config {
        continue_policy: ContinuePolicy::Manual,
        ..Config::default()
    };
    // Approved: written on request.
    let mut c = ServerConn::new(manual);
    feed(&mut c, EXPECT);
    let mut out = Vec::new();
    assert!(!c.poll_transmit(&mut out));
    assert_eq!(c.send_continue(&mut out), Ok(true));
    assert_eq!(text(&out), CONTINUE);

    // Refused: a final status without 100 leaves the body unsent, so close.
    let mut c = ServerConn::new(manual);
    feed(&mut c, EXPECT);
    let mut out = Vec::new();
    c.write_response_head(StatusCode(413), &[], BodyLen::None, now(), &mut out)
        .unwrap();
    c.finish_response(&mut out).unwrap();
    assert!(text(&out).contains("Connection: close\r\n"));
    assert!(c.should_close());
}

#[test]
fn rfc9110_10_1_1_continue_waits_for_earlier_responses() {
    let manual = Config {
        continue_policy: ContinuePolicy::Manual,
        ..Config::default()
    };
    let mut c = ServerConn::new(manual);
    let mut input = GET.to_vec();
    input.extend_from_slice(EXPECT);
    feed(&mut c, &input);
    let mut out = Vec::new();
    assert_eq!(
        c.send_continue(&mut out),
        Ok(false),
        "deferred behind GET /"
    );
    assert!(out.is_empty());
    c.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out)
        .unwrap();
    c.finish_response(&mut out).unwrap();
    let t = text(&out);
    assert!(t.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(t.ends_with(CONTINUE), "{t}");
}

#[test]
fn rfc6455_4_2_2_switching_protocols_hands_over() {
    let mut c = ServerConn::default();
    let mut input =
        b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            .to_vec();
    let head_len = input.len();
    input.extend_from_slice(b"\x81\x80frame");
    let (n, _) = feed(&mut c, &input);
    assert_eq!(n, head_len, "frame bytes stay with the caller");
    assert_eq!(c.handle_read(&input[n..]), Ok(0), "parsing paused");
    let mut out = Vec::new();
    c.write_response_head(
        StatusCode::SWITCHING_PROTOCOLS,
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Accept", "x"),
        ],
        BodyLen::None,
        now(),
        &mut out,
    )
    .unwrap();
    c.finish_response(&mut out).unwrap();
    assert!(c.is_upgraded());
    assert!(!c.should_close());
    assert_eq!(
        text(&out),
        format!(
            "HTTP/1.1 101 Switching Protocols\r\n{DATE}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n"
        )
    );
    assert_eq!(c.handle_read(&input[n..]), Ok(0));
    assert_eq!(
        c.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out),
        Err(HttpError::ResponseState)
    );
}

#[test]
fn rfc9110_7_8_declined_upgrade_resumes_http() {
    let mut c = ServerConn::default();
    let mut input =
        b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            .to_vec();
    input.extend_from_slice(GET);
    let (n, reqs) = feed(&mut c, &input);
    assert_eq!(reqs, 1);
    let mut out = Vec::new();
    c.write_response_head(
        StatusCode::UPGRADE_REQUIRED,
        &[],
        BodyLen::None,
        now(),
        &mut out,
    )
    .unwrap();
    c.finish_response(&mut out).unwrap();
    assert!(!c.is_upgraded());
    let (m, reqs) = feed(&mut c, &input[n..]);
    assert_eq!((m, reqs), (GET.len(), 1));
}

#[test]
fn error_response_after_a_bad_head() {
    let mut c = ServerConn::default();
    let mut input = GET.to_vec();
    input.extend_from_slice(
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    );
    assert_eq!(
        c.handle_read(&input),
        Err(HttpError::DuplicateContentLength)
    );
    assert_eq!(
        c.handle_read(&input),
        Err(HttpError::DuplicateContentLength),
        "sticky"
    );
    assert!(
        matches!(c.poll_event(), Some(Event::Request(_))),
        "earlier events survive"
    );
    while c.poll_event().is_some() {}
    let mut out = Vec::new();
    assert_eq!(
        c.write_error_response(HttpError::DuplicateContentLength, now(), &mut out),
        Err(HttpError::ResponseState),
        "GET / is answered first"
    );
    c.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out)
        .unwrap();
    c.finish_response(&mut out).unwrap();
    assert!(!text(&out).contains("Connection: close"));
    out.clear();
    c.write_error_response(HttpError::DuplicateContentLength, now(), &mut out)
        .unwrap();
    assert_eq!(
        text(&out),
        format!("HTTP/1.1 400 Bad Request\r\n{DATE}Content-Length: 0\r\nConnection: close\r\n\r\n")
    );
    assert!(c.should_close());
}

#[test]
fn error_response_for_a_body_that_went_wrong() {
    let mut c = ServerConn::default();
    let input =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n";
    assert_eq!(c.handle_read(input), Err(HttpError::InvalidChunkSize));
    let mut out = Vec::new();
    c.write_error_response(HttpError::InvalidChunkSize, now(), &mut out)
        .unwrap();
    assert!(text(&out).starts_with("HTTP/1.1 400 Bad Request\r\n"));
}

#[test]
fn rfc9110_15_5_9_request_timeout_is_the_engines_call() {
    let mut c = ServerConn::default();
    let partial = b"GET / HTTP/1.1\r\nHo";
    assert_eq!(c.handle_read(partial), Ok(0));
    assert!(c.request_in_progress(partial.len()));
    assert!(
        !ServerConn::default().request_in_progress(0),
        "idle: close silently"
    );
    let mut out = Vec::new();
    c.write_error_response(HttpError::RequestTimeout, now(), &mut out)
        .unwrap();
    assert!(text(&out).starts_with("HTTP/1.1 408 Request Timeout\r\n"));
    assert_eq!(c.handle_read(partial), Err(HttpError::RequestTimeout));
}

#[test]
fn eof_mid_request_is_incomplete() {
    let mut c = ServerConn::default();
    assert_eq!(c.handle_eof(0), Ok(()));
    feed(
        &mut c,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab",
    );
    assert_eq!(c.handle_eof(0), Err(HttpError::IncompleteRequest));
    let mut c = ServerConn::default();
    assert_eq!(
        c.handle_eof(3),
        Err(HttpError::IncompleteRequest),
        "a partial head"
    );
}

#[test]
fn rfc9110_6_6_1_date_follows_the_clock_passed_in() {
    let mut c = ServerConn::default();
    feed(&mut c, &GET.repeat(2));
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out)
        .unwrap();
    c.finish_response(&mut out).unwrap();
    c.write_response_head(
        StatusCode::OK,
        &[],
        BodyLen::None,
        now() + Duration::from_secs(61),
        &mut out,
    )
    .unwrap();
    c.finish_response(&mut out).unwrap();
    let t = text(&out);
    assert!(t.contains("Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"));
    assert!(t.contains("Date: Tue, 14 Nov 2023 22:14:21 GMT\r\n"));
}

#[test]
fn events_borrow_scratch_and_buffers_can_be_released() {
    let mut c = ServerConn::default();
    let input = b"POST /p?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody";
    assert_eq!(c.handle_read(input), Ok(input.len()));
    match c.poll_event() {
        Some(Event::Request(h)) => {
            assert_eq!((h.path, h.query), ("/p", Some("q=1")));
            assert_eq!(h.headers.get("content-length"), Some(&b"4"[..]));
            assert_eq!(h.headers.get_all("HOST").count(), 1);
            assert_eq!(
                h.headers.to_owned_vec()[0],
                ("Host".to_owned(), b"a".to_vec())
            );
            assert!(format!("{h:?}").contains("Host"));
        }
        other => panic!("{other:?}"),
    }
    match c.poll_event() {
        Some(ev @ Event::Body(b)) => {
            assert_eq!(b, b"body");
            assert_eq!(format!("{ev:?}"), "Body(4 bytes)");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.poll_event(), Some(Event::BodyEnd)));
    assert!(c.poll_event().is_none());
    c.release_buffers();
    // Still usable afterwards.
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::None, now(), &mut out)
        .unwrap();
    c.finish_response(&mut out).unwrap();
    assert_eq!(c.handle_read(GET), Ok(GET.len()));
}

#[test]
fn connection_debug_prints_sizes_not_bytes() {
    let mut c = ServerConn::default();
    c.handle_read(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nsecret")
        .unwrap();
    let d = format!("{c:?}");
    assert!(!d.contains("secret") && d.contains("scratch_len"), "{d}");
}

#[test]
fn external_body_bytes_are_counted_against_content_length() {
    // A file range sent by the caller (sendfile) counts down the Content-Length.
    let mut c = ServerConn::default();
    feed(&mut c, GET);
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::Known(10), now(), &mut out)
        .unwrap();
    assert!(!c.body_is_chunked());
    assert_eq!(c.write_body_external(4), Ok(true));
    assert_eq!(
        c.write_body_external(7),
        Err(HttpError::ResponseBodyLength),
        "one byte more than promised"
    );
    assert_eq!(c.write_body_external(6), Ok(true));
    c.finish_response(&mut out).unwrap();
    assert!(!c.should_close());
    assert!(
        text(&out).ends_with("Content-Length: 10\r\n\r\n"),
        "{}",
        text(&out)
    );

    // Short: finishing after fewer bytes than promised is an error and closes.
    feed(&mut c, GET);
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::Known(10), now(), &mut out)
        .unwrap();
    assert_eq!(c.write_body_external(9), Ok(true));
    assert_eq!(
        c.finish_response(&mut out),
        Err(HttpError::ResponseBodyLength)
    );
    assert!(c.should_close());
}

#[test]
fn external_body_bytes_dropped_for_head_refused_for_chunked() {
    let mut c = ServerConn::default();
    feed(&mut c, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::Known(10), now(), &mut out)
        .unwrap();
    assert_eq!(c.write_body_external(10), Ok(false), "HEAD: not sent");
    c.finish_response(&mut out).unwrap();

    feed(&mut c, GET);
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::Chunked, now(), &mut out)
        .unwrap();
    assert!(c.body_is_chunked());
    assert_eq!(
        c.write_body_external(3),
        Err(HttpError::ResponseState),
        "chunks need framing"
    );
}

/// Releasing the buffers of a connection in the middle of a long response changes nothing:
/// the response goes on, and the next request parses as before. With an event still queued,
/// the scratch it borrows from is kept.
#[test]
fn release_buffers_keeps_state() {
    let mut c = ServerConn::default();
    c.handle_read(b"GET /a HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\n")
        .unwrap();
    c.release_buffers(); // the request event is still queued: nothing is released
    match c.poll_event() {
        Some(Event::Request(r)) => {
            // The path is borrowed from the scratch copy of the head.
            assert_eq!(r.path, "/a");
        }
        _ => panic!("no request"),
    }
    while c.poll_event().is_some() {}
    let mut out = Vec::new();
    c.write_response_head(StatusCode::OK, &[], BodyLen::Chunked, now(), &mut out)
        .unwrap();
    c.release_buffers();
    c.write_body_chunk(b"data: x\n\n", &mut out).unwrap();
    c.finish_response(&mut out).unwrap();
    assert!(
        text(&out).ends_with("9\r\ndata: x\n\n\r\n0\r\n\r\n"),
        "{}",
        text(&out)
    );
    assert_eq!(c.outstanding(), 0);
    assert_eq!(feed(&mut c, b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n"), (28, 1));
    assert_eq!(c.outstanding(), 1);
}
