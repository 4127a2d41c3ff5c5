//! The crate's one error enum and the status-code newtype it maps to.

use core::fmt;

/// An HTTP status code as sent on the wire.
///
/// A newtype so that codes this crate has no constant for still round-trip:
/// `StatusCode(299)` is as good as any named one. Valid codes are 100–999
/// (RFC 9110 §15: "three-digit integer code"); the response writer refuses others.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// 100 Continue (RFC 9110 §15.2.1), sent by [`ServerConn::send_continue`](crate::ServerConn::send_continue).
    pub const CONTINUE: Self = Self(100);
    /// 101 Switching Protocols (RFC 9110 §15.2.2).
    pub const SWITCHING_PROTOCOLS: Self = Self(101);
    /// 200 OK.
    pub const OK: Self = Self(200);
    /// 201 Created.
    pub const CREATED: Self = Self(201);
    /// 202 Accepted.
    pub const ACCEPTED: Self = Self(202);
    /// 204 No Content: never carries a body or a Content-Length.
    pub const NO_CONTENT: Self = Self(204);
    /// 206 Partial Content.
    pub const PARTIAL_CONTENT: Self = Self(206);
    /// 301 Moved Permanently.
    pub const MOVED_PERMANENTLY: Self = Self(301);
    /// 302 Found.
    pub const FOUND: Self = Self(302);
    /// 303 See Other.
    pub const SEE_OTHER: Self = Self(303);
    /// 304 Not Modified: never carries a body.
    pub const NOT_MODIFIED: Self = Self(304);
    /// 307 Temporary Redirect.
    pub const TEMPORARY_REDIRECT: Self = Self(307);
    /// 308 Permanent Redirect.
    pub const PERMANENT_REDIRECT: Self = Self(308);
    /// 400 Bad Request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Unauthorized.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 404 Not Found.
    pub const NOT_FOUND: Self = Self(404);
    /// 405 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    /// 408 Request Timeout.
    pub const REQUEST_TIMEOUT: Self = Self(408);
    /// 411 Length Required.
    pub const LENGTH_REQUIRED: Self = Self(411);
    /// 413 Content Too Large.
    pub const CONTENT_TOO_LARGE: Self = Self(413);
    /// 414 URI Too Long.
    pub const URI_TOO_LONG: Self = Self(414);
    /// 417 Expectation Failed.
    pub const EXPECTATION_FAILED: Self = Self(417);
    /// 426 Upgrade Required.
    pub const UPGRADE_REQUIRED: Self = Self(426);
    /// 431 Request Header Fields Too Large (RFC 6585 §5).
    pub const REQUEST_HEADER_FIELDS_TOO_LARGE: Self = Self(431);
    /// 500 Internal Server Error.
    pub const INTERNAL_SERVER_ERROR: Self = Self(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 502 Bad Gateway.
    pub const BAD_GATEWAY: Self = Self(502);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    /// 504 Gateway Timeout.
    pub const GATEWAY_TIMEOUT: Self = Self(504);
    /// 505 HTTP Version Not Supported.
    pub const HTTP_VERSION_NOT_SUPPORTED: Self = Self(505);

    /// The numeric code.
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// 1xx: an interim response.
    #[must_use]
    pub const fn is_informational(self) -> bool {
        self.0 >= 100 && self.0 < 200
    }

    /// 2xx.
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 >= 200 && self.0 < 300
    }

    /// The reason phrase written after the code, or `""` for codes without a
    /// constant (RFC 9112 §4: "A client SHOULD ignore the reason-phrase content").
    #[must_use]
    pub const fn reason_phrase(self) -> &'static str {
        match self.0 {
            100 => "Continue",
            101 => "Switching Protocols",
            200 => "OK",
            201 => "Created",
            202 => "Accepted",
            204 => "No Content",
            206 => "Partial Content",
            301 => "Moved Permanently",
            302 => "Found",
            303 => "See Other",
            304 => "Not Modified",
            307 => "Temporary Redirect",
            308 => "Permanent Redirect",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            413 => "Content Too Large",
            414 => "URI Too Long",
            417 => "Expectation Failed",
            426 => "Upgrade Required",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            505 => "HTTP Version Not Supported",
            _ => "",
        }
    }
}

impl fmt::Debug for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusCode({} {})", self.0, self.reason_phrase())
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason_phrase())
    }
}

/// Everything that can go wrong in this crate.
///
/// Request-side variants are the peer's fault: each documents the status the
/// engine answers with ([`HttpError::status`]) before closing the connection;
/// [`ServerConn::write_error_response`](crate::ServerConn::write_error_response)
/// writes exactly that. Response-side variants (`Response*`) are the caller's
/// bugs; they map to 500 and also end the connection.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpError {
    /// 400: the request line is not `method SP request-target SP HTTP-version`
    /// (bad method token, bad target characters, extra spaces, bare CR).
    InvalidRequestLine,
    /// 505: the version is not `HTTP/1.0` or `HTTP/1.1`.
    UnsupportedVersion,
    /// 414: the request line is longer than [`Config::max_request_line`](crate::Config::max_request_line).
    RequestLineTooLong,
    /// 431: the head (request line, fields, final CRLF) is longer than
    /// [`Config::max_head_bytes`](crate::Config::max_head_bytes).
    HeadTooLarge,
    /// 431: more field lines than [`Config::max_headers`](crate::Config::max_headers).
    TooManyHeaders,
    /// 400: a field line that is not `token ":" OWS value OWS`, or a value
    /// with control characters.
    InvalidHeader,
    /// 400: whitespace between a field name and its colon (RFC 9112 §5.1).
    WhitespaceBeforeColon,
    /// 400: an obs-fold continuation line (RFC 9112 §5.2).
    ObsFold,
    /// 400: a line ended by LF without CR while [`Config::bare_lf`](crate::Config::bare_lf)
    /// is [`BareLf::Reject`](crate::BareLf::Reject), or anywhere in chunked framing.
    BareLf,
    /// 400: an HTTP/1.1 request without Host, with two, or with an invalid one (RFC 9112 §3.2).
    InvalidHost,
    /// 400: Content-Length is not `1*DIGIT` (signs, spaces, lists, overflow).
    InvalidContentLength,
    /// 400: Content-Length appears more than once, equal or not.
    DuplicateContentLength,
    /// 400: both Content-Length and Transfer-Encoding (the CL.TE / TE.CL smuggling shapes).
    ContentLengthWithTransferEncoding,
    /// 400: Transfer-Encoding whose final coding is not `chunked`, or that
    /// applies `chunked` twice (RFC 9112 §6.3 item 4).
    TransferEncodingNotChunked,
    /// 501: Transfer-Encoding with a coding other than `chunked` before the
    /// final `chunked` (RFC 9112 §6.1: "SHOULD respond with 501").
    UnsupportedTransferCoding,
    /// 400: Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: "MUST treat
    /// the message as if the framing is faulty").
    TransferEncodingInHttp10,
    /// 413: the body is larger than [`Config::max_body`](crate::Config::max_body)
    /// (declared by Content-Length or reached by chunks).
    BodyTooLarge,
    /// 400: a chunk-size that is not `1*HEXDIG` (signs, `0x`, spaces) or overflows 64 bits.
    InvalidChunkSize,
    /// 400: a chunk-size line (size and extensions) longer than
    /// [`Config::max_chunk_line`](crate::Config::max_chunk_line).
    ChunkLineTooLong,
    /// 400: chunk data not followed by CRLF.
    InvalidChunkData,
    /// 431: the trailer section is longer than
    /// [`Config::max_trailer_bytes`](crate::Config::max_trailer_bytes) or has too many fields.
    TrailersTooLarge,
    /// 417: an Expect value other than `100-continue` (RFC 9110 §10.1.1).
    ExpectationFailed,
    /// 400: the peer closed the connection in the middle of a request.
    IncompleteRequest,
    /// 408: never produced by the parser (it reads no clock); the engine's
    /// request timer passes it to [`ServerConn::write_error_response`](crate::ServerConn::write_error_response).
    RequestTimeout,
    /// 500: a response call with no request waiting for it, out of order, or
    /// after the connection was closed or upgraded.
    ResponseState,
    /// 500: a response header name that is not a token, a value with CR, LF
    /// or NUL (response splitting), or a framing header (Content-Length,
    /// Transfer-Encoding) that [`BodyLen`](crate::BodyLen) owns.
    ResponseHeader,
    /// 500: a status outside 100–999, an interim status other than 101, or a
    /// 101 / CONNECT-2xx that does not answer an upgrade request.
    ResponseStatus,
    /// 500: more body bytes than `BodyLen::Known` declared, or fewer at finish.
    ResponseBodyLength,
    /// 502: an upstream's response ([`ResponseReader`](crate::ResponseReader)) is malformed,
    /// too large, framed ambiguously (Content-Length with Transfer-Encoding) or a 101.
    InvalidResponse,
    /// 502: the upstream closed before its response was complete.
    IncompleteResponse,
}

impl HttpError {
    /// The status the engine answers with before closing.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::UnsupportedVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Self::RequestLineTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadTooLarge | Self::TooManyHeaders | Self::TrailersTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Self::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Self::BodyTooLarge => StatusCode::CONTENT_TOO_LARGE,
            Self::ExpectationFailed => StatusCode::EXPECTATION_FAILED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::ResponseState
            | Self::ResponseHeader
            | Self::ResponseStatus
            | Self::ResponseBodyLength => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidResponse | Self::IncompleteResponse => StatusCode::BAD_GATEWAY,
            Self::InvalidRequestLine
            | Self::InvalidHeader
            | Self::WhitespaceBeforeColon
            | Self::ObsFold
            | Self::BareLf
            | Self::InvalidHost
            | Self::InvalidContentLength
            | Self::DuplicateContentLength
            | Self::ContentLengthWithTransferEncoding
            | Self::TransferEncodingNotChunked
            | Self::TransferEncodingInHttp10
            | Self::InvalidChunkSize
            | Self::ChunkLineTooLong
            | Self::InvalidChunkData
            | Self::IncompleteRequest => StatusCode::BAD_REQUEST,
        }
    }

    /// True for the caller-side (`Response*`) variants.
    #[must_use]
    pub const fn is_caller_bug(self) -> bool {
        matches!(
            self,
            Self::ResponseState
                | Self::ResponseHeader
                | Self::ResponseStatus
                | Self::ResponseBodyLength
        )
    }

    const fn description(self) -> &'static str {
        match self {
            Self::InvalidRequestLine => "invalid request line",
            Self::UnsupportedVersion => "unsupported HTTP version",
            Self::RequestLineTooLong => "request line too long",
            Self::HeadTooLarge => "request head too large",
            Self::TooManyHeaders => "too many header fields",
            Self::InvalidHeader => "invalid header field",
            Self::WhitespaceBeforeColon => "whitespace between field name and colon",
            Self::ObsFold => "obsolete line folding",
            Self::BareLf => "bare LF line terminator",
            Self::InvalidHost => "missing, duplicate or invalid Host",
            Self::InvalidContentLength => "invalid Content-Length",
            Self::DuplicateContentLength => "duplicate Content-Length",
            Self::ContentLengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            Self::TransferEncodingNotChunked => "Transfer-Encoding does not end in one chunked",
            Self::UnsupportedTransferCoding => "unsupported transfer coding",
            Self::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            Self::BodyTooLarge => "request body too large",
            Self::InvalidChunkSize => "invalid chunk size",
            Self::ChunkLineTooLong => "chunk-size line too long",
            Self::InvalidChunkData => "chunk data not followed by CRLF",
            Self::TrailersTooLarge => "trailer section too large",
            Self::ExpectationFailed => "unsupported expectation",
            Self::IncompleteRequest => "connection closed mid-request",
            Self::RequestTimeout => "request timeout",
            Self::ResponseState => "response call out of order",
            Self::ResponseHeader => "invalid response header",
            Self::ResponseStatus => "invalid response status",
            Self::ResponseBodyLength => "response body length mismatch",
            Self::InvalidResponse => "malformed upstream response",
            Self::IncompleteResponse => "upstream response cut short",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description(), self.status().0)
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_brief() {
        assert_eq!(HttpError::RequestLineTooLong.status().0, 414);
        assert_eq!(HttpError::TooManyHeaders.status().0, 431);
        assert_eq!(HttpError::BodyTooLarge.status().0, 413);
        assert_eq!(HttpError::UnsupportedTransferCoding.status().0, 501);
        assert_eq!(HttpError::UnsupportedVersion.status().0, 505);
        assert_eq!(HttpError::ExpectationFailed.status().0, 417);
        assert_eq!(HttpError::RequestTimeout.status().0, 408);
        assert_eq!(HttpError::ObsFold.status().0, 400);
        assert!(HttpError::ResponseState.is_caller_bug());
        assert_eq!(StatusCode(299).reason_phrase(), "");
        assert_eq!(
            HttpError::BareLf.to_string(),
            "bare LF line terminator (400)"
        );
    }
}
