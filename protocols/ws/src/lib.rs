//! Sans-IO WebSocket codec: RFC 6455 with permessage-deflate (RFC 7692), server and client.
//!
//! # What it does
//!
//! - **Handshake** ([`handshake`]): validates an upgrade request (borrowed views of path, query,
//!   headers, Origin, offered subprotocols and extensions), computes Sec-WebSocket-Accept,
//!   writes the 101 or a 400/403/405/426/431 rejection; on the client side writes the request
//!   and checks the 101.
//! - **Framing** ([`frame`]): header parse/encode, one-shot frame parse that unmasks in place,
//!   every RFC 6455 §5 rule (RSV bits, reserved opcodes, control frames, masking direction,
//!   64-bit length MSB). Non-minimal length encodings are accepted.
//! - **Masking** ([`mask`]): portable 64-bit words, SSE2 and AVX2 chosen at run time.
//! - **Connection** ([`WebSocket`]): fragmentation with interleaved control frames, automatic
//!   pongs, fail-fast incremental UTF-8 validation (also inside a partly received frame), the
//!   closing handshake with a timeout, the limits of [`Config`] (frame, message, fragment count,
//!   inflated size), whole-message or streamed delivery.
//! - **permessage-deflate** ([`deflate`]): negotiation of every RFC 7692 parameter, context
//!   takeover per direction, a compression threshold, a decompression-bomb bound.
//!
//! # What it does not
//!
//! No sockets, threads, timers or clock reads: the engine passes bytes and `Instant`s in and
//! writes what comes out. No randomness: the client's handshake key and masking entropy come
//! from the caller. No TLS, no HTTP routing, no redirects, no heartbeat policy (send
//! [`WebSocket::ping`] on your own timer), no `x-webkit-deflate-frame` (declined by leaving it
//! out of the response), no Hixie-76. Outgoing text is not re-validated.
//!
//! # Run loop (server)
//!
//! ```
//! use std::time::Instant;
//! use ringwire_ws::handshake::{write_accept, write_reject, UpgradeRequest};
//! use ringwire_ws::{Config, WebSocket, WsEvent};
//!
//! # fn client_bytes() -> Vec<u8> {
//! #     let mut v = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//! #         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
//! #     v.extend_from_slice(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//! #     v
//! # }
//! let config = Config::default();
//! let mut rx: Vec<u8> = client_bytes(); // what the socket delivered so far
//! let mut out: Vec<u8> = Vec::new(); // what to write to the socket
//!
//! // 1. Handshake.
//! let (mut ws, used) = match UpgradeRequest::parse(&rx) {
//!     Ok(Some((req, used))) => {
//!         let deflate = req.negotiate_deflate(&config.deflate);
//!         write_accept(&req, None, deflate.as_ref(), &[], &mut out).unwrap();
//!         (WebSocket::server(config, deflate), used)
//!     }
//!     Ok(None) => return, // read more
//!     Err(e) => { write_reject(&e, &mut out); return }
//! };
//! rx.drain(..used);
//!
//! // 2. Frames: feed bytes, handle each event, drop what was consumed, keep the tail.
//! let now = Instant::now(); // the engine's clock, not the crate's
//! let mut start = 0;
//! loop {
//!     let r = match ws.handle_read(now, &mut rx[start..]) {
//!         Ok(r) => r,
//!         Err(_) => break, // a Close is queued: flush poll_transmit, then close TCP
//!     };
//!     start += r.consumed;
//!     match r.event {
//!         Some(WsEvent::Message { kind, data }) => {
//!             // Echo; `data` borrows `rx` when the message was one uncompressed frame.
//!             ws.send_message(kind, &data, &mut out).unwrap();
//!         }
//!         Some(WsEvent::Close { .. }) => {}
//!         Some(_) => {}
//!         None => break, // need more bytes
//!     }
//! }
//! rx.drain(..start);
//! ws.poll_transmit(&mut out); // pongs and Close replies the connection queued itself
//! // Write `out`; arm a timer for `ws.poll_timeout()` and call `ws.handle_timeout(now)`;
//! // close the socket once `ws.is_closed()`.
//! assert_eq!(&out[out.len() - 7..], b"\x81\x05Hello");
//! ```
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
mod utf8;

pub use connection::{
    Config, DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_FRAME_PAYLOAD,
    DEFAULT_MAX_MESSAGE_SIZE, FragmentMode, MessageKind, Received, State, WebSocket, WsEvent,
};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{CloseCode, WsError};
pub use frame::{Frame, FrameHeader, FrameRules, HeaderBytes, OpCode, Role};
