//! Sans-IO HTTP/1.1 server codec: bytes in, request events out; responses
//! written into a caller's `Vec<u8>`.
//!
//! # What it does
//!
//! - Parses request heads with `httparse` after a line scanner has enforced
//!   the limits and the line-level rules (RFC 9112 §2.2, §5.1, §5.2), then
//!   derives framing (RFC 9112 §6.3), persistence (§9.3), `Expect:
//!   100-continue` and upgrade requests (WebSocket, h2c, CONNECT).
//! - Streams bodies: Content-Length and chunked (extensions ignored, trailers
//!   parsed, bounded and handed out), never holding more than one read's worth.
//! - Refuses the request-smuggling shapes: Content-Length with
//!   Transfer-Encoding, repeated or malformed Content-Length, any
//!   Transfer-Encoding but a single final `chunked` (400, or 501 for codings
//!   we do not decode), obs-fold, whitespace before a colon, signed or
//!   overflowing chunk sizes, bare LF in chunk framing.
//! - Pipelining: up to [`Config::max_pipeline`] requests are parsed ahead;
//!   responses go out strictly in request order.
//! - Writes responses: status line, a per-second cached `Date`, the framing
//!   field, `Connection: close`/`keep-alive` as persistence demands, chunk
//!   framing, no body for HEAD/204/304, `100 Continue` when due.
//!
//! # What it does not do
//!
//! No sockets, no timers, no clock reads: `now` is passed in for `Date`, and
//! the engine's request timer produces [`HttpError::RequestTimeout`] itself.
//! No content codings (gzip), no HTTP/2 (an h2c upgrade is only detected), no
//! WebSocket handshake (the upgrade request is handed over), no client side,
//! no routing. Heads and body pieces are copied once into a per-connection
//! scratch buffer so events can borrow them after `handle_read` returns; a
//! zero-copy `poll_event(&buf)` shape is not offered. Bare LF in the head is
//! refused unless [`BareLf::Accept`] is configured.
//!
//! # Run loop
//!
//! ```
//! use ringwire_http1::{BodyLen, Event, ServerConn, StatusCode};
//! use std::time::SystemTime;
//!
//! let mut conn = ServerConn::default();
//! let mut inbuf: Vec<u8> = b"GET /hi?x=1 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
//! let mut out = Vec::new();
//! loop {
//!     // 1. Feed what the socket gave; keep the unconsumed tail.
//!     let consumed = match conn.handle_read(&inbuf) {
//!         Ok(n) => n,
//!         Err(e) => {
//!             // (after finishing responses already under way)
//!             conn.write_error_response(e, SystemTime::now(), &mut out).ok();
//!             break;
//!         }
//!     };
//!     // 2. Drain events; answer in order.
//!     let mut answered = false;
//!     while let Some(ev) = conn.poll_event() {
//!         if let Event::BodyEnd = ev {
//!             answered = true;
//!         }
//!     }
//!     if answered {
//!         let now = SystemTime::now();
//!         conn.write_response_head(StatusCode::OK, &[("content-type", "text/plain")],
//!             BodyLen::Known(2), now, &mut out)?;
//!         conn.write_body_chunk(b"ok", &mut out)?;
//!         conn.finish_response(&mut out)?;
//!     }
//!     // 3. Anything owed unasked (automatic 100 Continue).
//!     while conn.poll_transmit(&mut out) {}
//!     inbuf.drain(..consumed);
//!     // 4. Flush `out`; close if `should_close()`, hand the socket and the
//!     //    rest of `inbuf` over if `is_upgraded()`, else read more.
//!     if consumed == 0 && !answered || conn.should_close() || conn.is_upgraded() {
//!         break;
//!     }
//! }
//! assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nDate: "));
//! # Ok::<(), ringwire_http1::HttpError>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod chunked;
mod client;
mod conn;
mod error;
pub mod multipart;
mod oracle;
mod request;
mod response;
mod scan;

pub use client::{
    DEFAULT_MAX_RESPONSE_HEAD, DEFAULT_MAX_RESPONSE_HEADERS, ResponseBody, ResponseEvent,
    ResponseHead, ResponseLimits, ResponseReader,
};
pub use conn::{
    BareLf, Config, ContinuePolicy, DEFAULT_MAX_BODY, DEFAULT_MAX_CHUNK_LINE,
    DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_HEADERS, DEFAULT_MAX_PIPELINE, DEFAULT_MAX_REQUEST_LINE,
    DEFAULT_MAX_TRAILER_BYTES, MAX_HEADERS_CAP, ResponseWriter, ServerConn, ServerSettings,
};
pub use error::{HttpError, StatusCode};
#[doc(hidden)]
pub use oracle::fuzz_check;
pub use request::{BodyKind, Event, Header, Headers, Method, RequestHead, Upgrade, Version};
pub use response::BodyLen;
