//! `ringwire-stun`: a sans-IO codec for STUN (RFC 8489, RFC 5389) and TURN (RFC 8656,
//! RFC 5766, RFC 6156, RFC 6062 attributes) messages.
//!
//! # What it does
//! - **Parses** a datagram or stream prefix into a borrowed [`StunMessage`]: header checks
//!   (first two bits, magic cookie, length), one validating pass over the attributes (lengths,
//!   padding, [`Limits`], FINGERPRINT last), then an iterator and typed getters that decode
//!   values on demand. Attributes after MESSAGE-INTEGRITY are ignored as RFC 8489 §14.5 says.
//!   Unknown comprehension-required attributes are listed for a 420 answer.
//! - **Builds** messages into a caller's `Vec<u8>` with [`MessageBuilder`]: every RFC 8489 /
//!   8656 attribute, MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256, FINGERPRINT.
//! - **Verifies** integrity (constant time) and fingerprint on received messages.
//! - **TURN framing**: [`classify`] tells STUN from ChannelData by the first two bits,
//!   [`ChannelData`] parses and encodes channel messages (padded over streams),
//!   [`stream_frame`] sizes the next frame on a TCP/TLS stream.
//! - **Credentials**: [`LongTermKey`] (MD5 / SHA-256), [`short_term_key`], [`userhash`],
//!   [`saslprep`] (a documented subset of RFC 4013), TURN REST time-limited credentials
//!   ([`RestCredentials`]) and stateless HMAC nonces ([`Nonce`]) that any core can verify.
//! - **Client transactions**: [`ClientTransaction`] runs the RFC 8489 §6.2 retransmission
//!   schedule (UDP) or the single Ti timeout (TCP) with time passed in.
//!
//! # What it does not do
//! No sockets, threads, timers or clock reads; no random numbers (the caller supplies
//! transaction ids); no server or client policy (authentication flow, allocations,
//! permissions, channels, 401/438 retry logic live in the engine's STUN/TURN plugin). Classic
//! RFC 3489 messages without the magic cookie are rejected as not STUN. RFC 5780 NAT-behaviour
//! attributes (CHANGE-REQUEST, RESPONSE-PORT, PADDING) are named but not implemented, so they
//! count as unknown. SASLprep skips the bidi and unassigned-code-point checks.
//!
//! # Fuzzing
//! `fuzz_check(&[u8])` (hidden from the docs) is the oracle for a `fuzz/` target: it panics
//! unless parsing consumes at most its input, the stream framer agrees with the parsers, and
//! every parsed message and ChannelData frame re-encodes to something that parses to the same
//! values.
//!
//! # Run loop (server side)
//! ```
//! use ringwire_stun::{classify, MessageBuilder, PacketKind, StunMessage, Class};
//! # let mut request = Vec::new();
//! # ringwire_stun::MessageBuilder::new(&mut request, ringwire_stun::MessageType::BINDING_REQUEST,
//! #     ringwire_stun::TransactionId::new([1; 12])).finish().unwrap();
//! let peer: std::net::SocketAddr = "198.51.100.7:40000".parse().unwrap();
//! let datagram: &[u8] = &request;
//! let mut out = Vec::new();
//! if classify(datagram) == PacketKind::Stun {
//!     match StunMessage::parse(datagram) {
//!         Ok(msg) if msg.class() == Class::Request => {
//!             let mut b = MessageBuilder::success_response(&mut out, &msg);
//!             b.xor_mapped_address(peer).fingerprint();
//!             b.finish().unwrap();
//!         }
//!         _ => {} // malformed: discard, or answer `err.error_code()`
//!     }
//! }
//! assert!(StunMessage::parse(&out).unwrap().xor_mapped_address().unwrap() == Some(peer));
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

mod attr;
mod builder;
mod channel;
mod credentials;
mod error;
mod integrity;
mod message;
mod saslprep;
mod transaction;
mod types;

pub use attr::{
    AlgorithmParams, AttrTypeList, Attribute, ErrorCodeAttr, MAX_DOMAIN_LEN, MAX_TEXT_LEN,
    MAX_USERNAME_LEN, PasswordAlgorithms, Payload,
};
pub use builder::MessageBuilder;
pub use channel::{
    CHANNEL_DATA_HEADER_LEN, ChannelData, PacketKind, StreamFrame, classify, stream_frame,
};
pub use credentials::{
    LongTermKey, NONCE_COOKIE, Nonce, RestCredentials, RestPassword, SecurityFeatures,
    short_term_key, userhash,
};
pub use error::StunError;
pub use integrity::FINGERPRINT_XOR;
pub use message::{
    Attributes, DEFAULT_MAX_ATTRIBUTES, DEFAULT_MAX_MESSAGE_SIZE, Limits, MAX_WIRE_MESSAGE_SIZE,
    RawAttribute, StunMessage,
};
pub use saslprep::saslprep;
pub use transaction::{ClientTransaction, RetransmitConfig, TransactionState, Transport};
pub use types::{
    AddressFamily, AttrType, ChannelNumber, Class, ErrorCode, HEADER_LEN, MAGIC_COOKIE,
    MessageType, Method, PasswordAlgorithm, TransactionId, TransportProtocol,
};

/// Fuzzing oracle, for a `fuzz/` target to call with arbitrary bytes. Panics (the fuzzer's
/// signal) when an invariant breaks:
/// - framing, ChannelData and STUN parsing never consume more than they were given, and the
///   stream framer's sizes agree with the parsers;
/// - a parsed message re-encodes (typed attributes through the builder, others raw) into a
///   message that parses to the same type, transaction id and decoded attributes;
/// - a parsed ChannelData re-encodes to a frame that parses to the same channel and data.
#[doc(hidden)]
#[allow(clippy::expect_used, clippy::panic)] // an oracle: panicking is how it reports
pub fn fuzz_check(data: &[u8]) {
    let limits = Limits::DEFAULT;
    let _ = classify(data);

    match stream_frame(data, &limits) {
        Ok(StreamFrame::Stun { len }) if len <= data.len() => {
            if let Ok(m) = StunMessage::parse_prefix(data, &limits) {
                assert_eq!(m.wire_len(), len, "framer and parser disagree");
            }
        }
        Ok(StreamFrame::ChannelData { len }) if len <= data.len() => {
            let (_, n) = ChannelData::parse_stream(data).expect("framed ChannelData parses");
            assert_eq!(n, len, "framer and ChannelData disagree");
        }
        Ok(StreamFrame::NeedMore(n)) => {
            assert!(n > data.len(), "NeedMore({n}) with {} bytes", data.len())
        }
        _ => {}
    }

    if let Ok(cd) = ChannelData::parse_datagram(data) {
        assert!(CHANNEL_DATA_HEADER_LEN + cd.data().len() <= data.len());
        for pad in [false, true] {
            let mut out = Vec::new();
            let n = cd
                .encode(&mut out, pad)
                .expect("parsed ChannelData re-encodes");
            assert_eq!(n, out.len());
            let back = ChannelData::parse_datagram(&out).expect("re-encoded ChannelData parses");
            assert_eq!(back, cd);
        }
    }

    if let Ok(msg) = StunMessage::parse_prefix(data, &limits) {
        assert!(msg.wire_len() <= data.len());
        let _ = (
            msg.verify_integrity(b"k"),
            msg.verify_integrity_sha256(b"k"),
            msg.verify_fingerprint(),
        );
        let _ = msg.unknown_comprehension_required().count();
        let _ = format!("{msg:?}");

        let tid = msg.transaction_id();
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(&mut out, msg.message_type(), tid);
        let mut decoded = Vec::new();
        for a in msg.attributes() {
            let d = a.decode(&tid);
            match &d {
                Ok(attr) => b.attribute(attr),
                Err(_) => b.raw_attribute(a.attr_type(), a.value()),
            };
            decoded.push(d);
        }
        let n = b.finish().expect("a parsed message re-encodes");
        assert!(n <= msg.wire_len());
        let again = StunMessage::parse_with(&out, &limits).expect("the re-encoded message parses");
        assert_eq!(again.message_type(), msg.message_type());
        assert_eq!(again.transaction_id(), tid);
        let redecoded: Vec<_> = again.attributes().map(|a| a.decode(&tid)).collect();
        assert_eq!(decoded, redecoded, "attributes changed in a round trip");
    }
}
