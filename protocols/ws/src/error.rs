//! The crate's one error type and the close-code newtype (STYLE.md §4: errors are wire codes).

use std::fmt;

/// A WebSocket close status code (RFC 6455 §7.4).
///
/// A newtype over the wire value, so codes this crate does not know round-trip unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure; the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(0x03E8);
    /// 1001: an endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(0x03E9);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(0x03EA);
    /// 1003: a data type the endpoint cannot accept (binary to a text-only endpoint).
    pub const UNSUPPORTED_DATA: Self = Self(0x03EB);
    /// 1005: reserved; means "no status code was present". Never sent on the wire.
    pub const NO_STATUS: Self = Self(0x03ED);
    /// 1006: reserved; means "closed without a Close frame". Never sent on the wire.
    pub const ABNORMAL: Self = Self(0x03EE);
    /// 1007: data inside a message did not match its type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: Self = Self(0x03EF);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(0x03F0);
    /// 1009: a message (or frame) is too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(0x03F1);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: Self = Self(0x03F2);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(0x03F3);
    /// 1012: service restart (IANA registry).
    pub const SERVICE_RESTART: Self = Self(0x03F4);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: Self = Self(0x03F5);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: Self = Self(0x03F6);
    /// 1015: reserved; means "TLS handshake failed". Never sent on the wire.
    pub const TLS_HANDSHAKE: Self = Self(0x03F7);

    /// Whether this code may appear in a Close frame on the wire.
    ///
    /// RFC 6455 §7.4.1 defines 1000–1003 and 1007–1011; the IANA "WebSocket Close Code Number"
    /// registry (§11.7) adds 1012–1014. 1004 is reserved, 1005, 1006 and 1015 "MUST NOT be set
    /// as a status code in a Close control frame by an endpoint", the rest of 0–2999 is
    /// reserved or unassigned (Autobahn 7.9.x sends 0, 999, 1004, 1005, 1006, 1016, 1100,
    /// 2000, 2999 and expects a protocol error), 3000–3999 is registered by libraries and
    /// 4000–4999 is private use. Everything from 5000 up is undefined.
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// The registered name of the code, if it has one this crate knows.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "NORMAL",
            1001 => "GOING_AWAY",
            1002 => "PROTOCOL_ERROR",
            1003 => "UNSUPPORTED_DATA",
            1005 => "NO_STATUS",
            1006 => "ABNORMAL",
            1007 => "INVALID_PAYLOAD",
            1008 => "POLICY_VIOLATION",
            1009 => "MESSAGE_TOO_BIG",
            1010 => "MANDATORY_EXTENSION",
            1011 => "INTERNAL_ERROR",
            1012 => "SERVICE_RESTART",
            1013 => "TRY_AGAIN_LATER",
            1014 => "BAD_GATEWAY",
            1015 => "TLS_HANDSHAKE",
            _ => return None,
        })
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "CloseCode({} {name})", self.0),
            None => write!(f, "CloseCode({})", self.0),
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<u16> for CloseCode {
    fn from(v: u16) -> Self {
        Self(v)
    }
}

/// Everything that can go wrong in this crate.
///
/// Each variant documents what it produces on the wire: the Close code that
/// [`WebSocket`](crate::WebSocket) sends when the peer causes it ([`WsError::close_code`]), or for
/// handshake errors the HTTP status of the rejection ([`WsError::http_status`]). Local misuse
/// (sending after close and so on) sends nothing.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsError {
    // ---- framing: close 1002 -------------------------------------------------------------
    /// RSV2 or RSV3 set, or RSV1 set without permessage-deflate, on a control frame or on a
    /// continuation frame. Close 1002.
    ReservedBits,
    /// Opcode 0x3–0x7 or 0xB–0xF. Close 1002.
    ReservedOpcode(u8),
    /// A control frame with FIN clear. Close 1002.
    FragmentedControlFrame,
    /// A control frame whose payload is longer than 125 bytes. Close 1002.
    ControlFrameTooLong,
    /// A server received an unmasked frame. Close 1002.
    UnmaskedFrame,
    /// A client received a masked frame. Close 1002.
    MaskedFrame,
    /// The most significant bit of a 64-bit payload length was set. Close 1002.
    LengthMsbSet,
    /// A continuation frame arrived with no fragmented message in progress. Close 1002.
    UnexpectedContinuation,
    /// A new text or binary frame arrived while a fragmented message was in progress. Close 1002.
    ExpectedContinuation,
    /// A Close frame with a one-byte payload. Close 1002.
    CloseFrameTooShort,
    /// A Close frame with a status code that must not appear on the wire. Close 1002.
    InvalidCloseCode(u16),

    // ---- payload: close 1007 -------------------------------------------------------------
    /// A text message (or fragment) that is not valid UTF-8. Close 1007.
    InvalidUtf8,
    /// A Close frame whose reason is not valid UTF-8. Close 1007.
    InvalidCloseReason,
    /// A permessage-deflate payload that does not inflate. Close 1007.
    InvalidCompressedData,

    // ---- limits: close 1009 --------------------------------------------------------------
    /// A data frame longer than `Config::max_frame_payload`. Close 1009.
    FrameTooLarge,
    /// A message (on the wire or inflated) longer than `Config::max_message_size`. Close 1009.
    MessageTooLarge,
    /// A message in more frames than `Config::max_fragments`. Close 1009.
    TooManyFragments,

    // ---- internal: close 1011 ------------------------------------------------------------
    /// The deflate compressor failed. Close 1011 if it happens while failing the connection;
    /// returned to the caller of a send otherwise.
    CompressionFailed,

    // ---- local misuse: nothing is sent; close_code() is 1011 -----------------------------
    /// The connection is closing or closed: no data frame may be sent.
    Closed,
    /// A control frame payload (ping, pong, close reason + 2) over 125 bytes was given to send.
    ControlPayloadTooLong,
    /// A whole message was sent while a fragmented send is in progress, or a fragment of a
    /// different kind was sent.
    MessageInProgress,
    /// `close` was given a code that must not be sent on the wire.
    CloseCodeNotSendable(u16),
    /// A header name or value given to a handshake writer contains CR, LF or NUL, or a request
    /// path does not start with `/`. HTTP 500 if it reached a response.
    InvalidHeader,

    // ---- server handshake: HTTP status, no close frame ----------------------------------
    /// The request head is not valid HTTP/1.x. HTTP 400.
    HandshakeMalformed,
    /// The request head is larger than the limit, or has more than
    /// [`MAX_HEADERS`](crate::handshake::MAX_HEADERS) headers. HTTP 431.
    HandshakeTooLarge,
    /// The method is not GET. HTTP 405.
    MethodNotGet,
    /// The request is not HTTP/1.1. HTTP 400.
    NotHttp11,
    /// The request target is neither origin-form nor an absolute http(s)/ws(s) URI. HTTP 400.
    BadRequestTarget,
    /// No Host header, or more than one. HTTP 400.
    MissingHost,
    /// No `Upgrade: websocket`. HTTP 400 (also returned to a client for a bad 101).
    MissingUpgrade,
    /// No `upgrade` token in Connection. HTTP 400 (also returned to a client for a bad 101).
    MissingConnectionUpgrade,
    /// Sec-WebSocket-Key missing, repeated, or not the base64 of 16 bytes. HTTP 400.
    BadKey,
    /// Sec-WebSocket-Version missing or not 13. HTTP 426 with `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
    /// The application refused the request (Origin, path, auth). HTTP 403.
    Forbidden,
    /// The server application chose a subprotocol the client did not offer. HTTP 500.
    ProtocolNotOffered,

    // ---- client handshake: no close frame (the client fails the TCP connection) ---------
    /// The server answered with a status other than 101.
    BadStatus(u16),
    /// Sec-WebSocket-Accept is missing or wrong.
    BadAccept,
    /// The server selected a subprotocol the client did not offer (or sent several).
    UnsolicitedProtocol,
    /// The server selected an extension the client did not offer.
    UnsolicitedExtension,
    /// The server's permessage-deflate parameters are invalid or break the client's offer.
    BadExtensionParams,
}

impl WsError {
    /// The Close code this error produces when the connection is failed because of it.
    pub const fn close_code(&self) -> CloseCode {
        use WsError::*;
        match self {
            ReservedBits
            | ReservedOpcode(_)
            | FragmentedControlFrame
            | ControlFrameTooLong
            | UnmaskedFrame
            | MaskedFrame
            | LengthMsbSet
            | UnexpectedContinuation
            | ExpectedContinuation
            | CloseFrameTooShort
            | InvalidCloseCode(_) => CloseCode::PROTOCOL_ERROR,
            InvalidUtf8 | InvalidCloseReason | InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            FrameTooLarge | MessageTooLarge | TooManyFragments => CloseCode::MESSAGE_TOO_BIG,
            UnsolicitedExtension => CloseCode::MANDATORY_EXTENSION,
            // Handshake errors never reach a WebSocket connection: nothing is sent.
            HandshakeMalformed
            | HandshakeTooLarge
            | MethodNotGet
            | NotHttp11
            | BadRequestTarget
            | MissingHost
            | MissingUpgrade
            | MissingConnectionUpgrade
            | BadKey
            | UnsupportedVersion
            | Forbidden
            | BadStatus(_)
            | BadAccept
            | UnsolicitedProtocol
            | BadExtensionParams => CloseCode::PROTOCOL_ERROR,
            CompressionFailed
            | Closed
            | ControlPayloadTooLong
            | MessageInProgress
            | CloseCodeNotSendable(_)
            | InvalidHeader
            | ProtocolNotOffered => CloseCode::INTERNAL_ERROR,
        }
    }

    /// The HTTP status a server answers a failed upgrade request with, for handshake errors.
    pub const fn http_status(&self) -> Option<u16> {
        use WsError::*;
        Some(match self {
            HandshakeMalformed
            | NotHttp11
            | BadRequestTarget
            | MissingHost
            | MissingUpgrade
            | MissingConnectionUpgrade
            | BadKey => 400,
            Forbidden => 403,
            MethodNotGet => 405,
            UnsupportedVersion => 426,
            HandshakeTooLarge => 431,
            ProtocolNotOffered | InvalidHeader => 500,
            _ => return None,
        })
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WsError::*;
        let s = match self {
            ReservedBits => "reserved bits set",
            ReservedOpcode(op) => return write!(f, "reserved opcode {op:#x}"),
            FragmentedControlFrame => "fragmented control frame",
            ControlFrameTooLong => "control frame payload over 125 bytes",
            UnmaskedFrame => "unmasked frame from a client",
            MaskedFrame => "masked frame from a server",
            LengthMsbSet => "64-bit payload length with the most significant bit set",
            UnexpectedContinuation => "continuation frame without a message in progress",
            ExpectedContinuation => "new data frame while a fragmented message is in progress",
            CloseFrameTooShort => "close frame with a one-byte payload",
            InvalidCloseCode(c) => return write!(f, "invalid close code {c}"),
            InvalidUtf8 => "invalid UTF-8 in a text message",
            InvalidCloseReason => "invalid UTF-8 in a close reason",
            InvalidCompressedData => "permessage-deflate payload does not inflate",
            FrameTooLarge => "frame payload over the limit",
            MessageTooLarge => "message over the size limit",
            TooManyFragments => "message in too many fragments",
            CompressionFailed => "deflate compression failed",
            Closed => "connection is closing or closed",
            ControlPayloadTooLong => "control payload over 125 bytes",
            MessageInProgress => "a fragmented send is in progress",
            CloseCodeNotSendable(c) => return write!(f, "close code {c} must not be sent"),
            InvalidHeader => "header name or value not allowed",
            HandshakeMalformed => "malformed HTTP request",
            HandshakeTooLarge => "request head too large",
            MethodNotGet => "method is not GET",
            NotHttp11 => "not HTTP/1.1",
            BadRequestTarget => "bad request target",
            MissingHost => "missing or repeated Host header",
            MissingUpgrade => "missing Upgrade: websocket",
            MissingConnectionUpgrade => "missing Connection: upgrade",
            BadKey => "bad Sec-WebSocket-Key",
            UnsupportedVersion => "Sec-WebSocket-Version is not 13",
            Forbidden => "forbidden",
            ProtocolNotOffered => "chosen subprotocol was not offered",
            BadStatus(s) => return write!(f, "handshake response status {s}"),
            BadAccept => "bad Sec-WebSocket-Accept",
            UnsolicitedProtocol => "server chose a subprotocol that was not offered",
            UnsolicitedExtension => "server chose an extension that was not offered",
            BadExtensionParams => "bad permessage-deflate parameters in the response",
        };
        f.write_str(s)
    }
}

impl std::error::Error for WsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_7_4_valid_codes() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(c).is_valid_on_wire(), "{c}");
        }
        // Autobahn 7.9.x
        for c in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(c).is_valid_on_wire(), "{c}");
        }
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            WsError::InvalidUtf8.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
        assert_eq!(
            WsError::TooManyFragments.close_code(),
            CloseCode::MESSAGE_TOO_BIG
        );
        assert_eq!(
            WsError::ReservedOpcode(3).close_code(),
            CloseCode::PROTOCOL_ERROR
        );
        assert_eq!(WsError::UnsupportedVersion.http_status(), Some(426));
        assert_eq!(WsError::InvalidUtf8.http_status(), None);
        assert_eq!(format!("{:?}", CloseCode(1000)), "CloseCode(1000 NORMAL)");
    }
}
