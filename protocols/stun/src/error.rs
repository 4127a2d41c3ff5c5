//! The crate's one error type. Each variant says which STUN error response (if any) a server
//! answers with; [`StunError::error_code`] gives it as a value.

use core::fmt;

use crate::types::{AttrType, ErrorCode};

/// Everything that can go wrong while parsing, verifying or building STUN/TURN messages.
///
/// RFC 8489 §6.3: a message that is not well-formed STUN is silently discarded; a request that
/// is STUN but malformed gets 400; unknown comprehension-required attributes get 420; failed
/// authentication gets 401; a stale nonce gets 438. [`StunError::error_code`] returns `None`
/// for "discard silently".
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StunError {
    /// Fewer bytes than the 20-byte header, or than the header's length field (or a
    /// ChannelData length) announces. No response: discard (over a stream, wait for more).
    Truncated,
    /// Not STUN: the first two bits are not zero or the magic cookie is not 0x2112A442
    /// (or, for ChannelData, the first two bits are not 01). No response: discard.
    NotStun,
    /// The length field is not a multiple of 4, or the datagram is longer than the header's
    /// length field says. No response: discard.
    BadLength,
    /// The message is larger than [`Limits::max_message_size`](crate::Limits). No response:
    /// discard (over a stream, close the connection).
    MessageTooLarge,
    /// More attributes than [`Limits::max_attributes`](crate::Limits). 400 Bad Request.
    TooManyAttributes,
    /// An attribute's length, with its padding, runs past the end of the message.
    /// 400 Bad Request.
    AttributeOverrun,
    /// An attribute follows FINGERPRINT, which RFC 8489 §14.7 says "MUST be the last
    /// attribute". 400 Bad Request.
    FingerprintNotLast,
    /// An attribute value is malformed: wrong size, unknown address family, not UTF-8, too
    /// long, out of range. 400 Bad Request.
    InvalidAttribute(AttrType),
    /// A required attribute is absent (e.g. REQUESTED-TRANSPORT in an Allocate, or USERNAME /
    /// REALM / NONCE beside MESSAGE-INTEGRITY, RFC 8489 §9.2.4). 400 Bad Request.
    MissingAttribute(AttrType),
    /// The request carries comprehension-required attributes (0x0000–0x7FFF) the receiver does
    /// not know. 420 Unknown Attribute, listing them in UNKNOWN-ATTRIBUTES (see
    /// [`StunMessage::unknown_comprehension_required`](crate::StunMessage::unknown_comprehension_required)).
    UnknownComprehensionRequired,
    /// Neither MESSAGE-INTEGRITY nor MESSAGE-INTEGRITY-SHA256 is present where credentials are
    /// required. 401 Unauthenticated (RFC 8489 §9.2.4), with REALM and NONCE.
    MissingIntegrity,
    /// MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 does not verify with the key.
    /// 401 Unauthenticated.
    IntegrityMismatch,
    /// FINGERPRINT is present but wrong: RFC 8489 §7.3 treats the message as not STUN.
    /// No response: discard.
    FingerprintMismatch,
    /// The nonce was issued by this server's key but its time has run out.
    /// 438 Stale Nonce, with a fresh NONCE.
    StaleNonce,
    /// The nonce was not issued with this key (forged, garbled, another deployment).
    /// 438 Stale Nonce, with a fresh NONCE, so that an honest client simply retries.
    InvalidNonce,
    /// A password (or username/realm input) contains a character SASLprep prohibits, so no key
    /// can be derived. 401 Unauthenticated.
    ProhibitedCharacter,
    /// A TURN REST (use-auth-secret) username has expired or carries no expiry.
    /// 401 Unauthenticated.
    CredentialsExpired,
    /// Building: a value is too long for its attribute (USERNAME ≥ 513 bytes, REALM/NONCE/
    /// SOFTWARE/reason > 763 bytes, any value > 65535 bytes). A local error: 500 Server Error
    /// if it happens while answering.
    ValueTooLong(AttrType),
    /// Building: the attribute cannot follow MESSAGE-INTEGRITY(-SHA256) or FINGERPRINT
    /// (RFC 8489 §14.5, §14.7). A local error: 500 Server Error.
    AttributeOrder(AttrType),
    /// Building: the message body would exceed 65535 bytes. A local error: 500 Server Error.
    MessageLengthOverflow,
    /// A client transaction was given a message that is not a request. A local error: no
    /// STUN error code.
    NotRequest,
}

impl StunError {
    /// The STUN error code a server answers a request with, or `None` when the message must be
    /// discarded silently (and for indications, which are never answered).
    pub const fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Truncated
            | Self::NotStun
            | Self::BadLength
            | Self::MessageTooLarge
            | Self::FingerprintMismatch
            | Self::NotRequest => None,
            Self::TooManyAttributes
            | Self::AttributeOverrun
            | Self::FingerprintNotLast
            | Self::InvalidAttribute(_)
            | Self::MissingAttribute(_) => Some(ErrorCode::BAD_REQUEST),
            Self::UnknownComprehensionRequired => Some(ErrorCode::UNKNOWN_ATTRIBUTE),
            Self::MissingIntegrity
            | Self::IntegrityMismatch
            | Self::ProhibitedCharacter
            | Self::CredentialsExpired => Some(ErrorCode::UNAUTHORIZED),
            Self::StaleNonce | Self::InvalidNonce => Some(ErrorCode::STALE_NONCE),
            Self::ValueTooLong(_) | Self::AttributeOrder(_) | Self::MessageLengthOverflow => {
                Some(ErrorCode::SERVER_ERROR)
            }
        }
    }
}

impl fmt::Display for StunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated STUN/ChannelData message"),
            Self::NotStun => f.write_str("not a STUN or ChannelData message"),
            Self::BadLength => f.write_str("bad STUN length field"),
            Self::MessageTooLarge => f.write_str("message larger than the configured limit"),
            Self::TooManyAttributes => f.write_str("more attributes than the configured limit"),
            Self::AttributeOverrun => f.write_str("attribute runs past the end of the message"),
            Self::FingerprintNotLast => f.write_str("attribute after FINGERPRINT"),
            Self::InvalidAttribute(t) => write!(f, "malformed attribute {t:?}"),
            Self::MissingAttribute(t) => write!(f, "missing attribute {t:?}"),
            Self::UnknownComprehensionRequired => {
                f.write_str("unknown comprehension-required attribute")
            }
            Self::MissingIntegrity => f.write_str("no MESSAGE-INTEGRITY"),
            Self::IntegrityMismatch => f.write_str("MESSAGE-INTEGRITY does not verify"),
            Self::FingerprintMismatch => f.write_str("FINGERPRINT does not match"),
            Self::StaleNonce => f.write_str("stale nonce"),
            Self::InvalidNonce => f.write_str("nonce not issued by this key"),
            Self::ProhibitedCharacter => f.write_str("SASLprep prohibited character"),
            Self::CredentialsExpired => f.write_str("time-limited credentials expired"),
            Self::ValueTooLong(t) => write!(f, "value too long for {t:?}"),
            Self::AttributeOrder(t) => {
                write!(f, "{t:?} cannot follow MESSAGE-INTEGRITY or FINGERPRINT")
            }
            Self::MessageLengthOverflow => f.write_str("message body over 65535 bytes"),
            Self::NotRequest => f.write_str("not a STUN request"),
        }
    }
}

impl std::error::Error for StunError {}
