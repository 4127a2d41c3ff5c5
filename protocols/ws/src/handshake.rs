//! The opening handshake (RFC 6455 §4), both roles.
//!
//! Server: [`UpgradeRequest::parse`] validates a request head and exposes path, query, headers,
//! Origin, offered subprotocols and extensions as views borrowed from the input; the
//! application decides, then [`write_accept`] writes the 101 (or [`write_reject`] /
//! [`write_error_response`] a 400/403/426/...).
//!
//! Client: [`ClientHandshake::new`] writes the request with a key the caller drew from a CSPRNG;
//! [`ServerResponse::parse`] reads the answer and [`ClientHandshake::verify`] checks it
//! (status 101, Sec-WebSocket-Accept, no subprotocol or extension that was not offered).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest as _, Sha1};

use crate::deflate::{self, DeflateConfig, DeflateParams};
use crate::error::WsError;

/// The GUID of RFC 6455 §1.3, appended to the key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The most headers a request or response head may carry (DoS bound; one more is
/// [`WsError::HandshakeTooLarge`], HTTP 431).
pub const MAX_HEADERS: usize = 64;

/// Default bound on the size of a request or response head in bytes (DoS bound; see
/// [`UpgradeRequest::parse_with_limit`]).
pub const DEFAULT_MAX_HEAD_SIZE: usize = 8192;

/// One header of a parsed head, borrowed from the input.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Header<'b> {
    /// The name as sent (compare with `eq_ignore_ascii_case`).
    pub name: &'b str,
    /// The raw value.
    pub value: &'b [u8],
}

impl Header<'_> {
    const EMPTY: Header<'static> = Header {
        name: "",
        value: b"",
    };
}

impl fmt::Debug for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.name,
            String::from_utf8_lossy(self.value).escape_debug()
        )
    }
}

/// A Sec-WebSocket-Accept value: base64 of SHA-1, always 28 ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AcceptKey([u8; 28]);

impl AcceptKey {
    /// Computes the accept value for a Sec-WebSocket-Key as sent (the base64 text, trimmed).
    ///
    /// RFC 6455 §1.3: "the server has to take the value (as present in the header field [...])
    /// and concatenate this with the Globally Unique Identifier [...] A SHA-1 hash (160 bits),
    /// base64-encoded [...] of this concatenation is then returned".
    pub fn from_key(key: &[u8]) -> Self {
        let mut h = Sha1::new();
        h.update(key);
        h.update(WEBSOCKET_GUID.as_bytes());
        let digest: [u8; 20] = h.finalize().into();
        let mut out = [0u8; 28];
        // 20 bytes encode to exactly 28 base64 characters, so this cannot fail.
        let _ = STANDARD.encode_slice(digest, &mut out);
        Self(out)
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for AcceptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AcceptKey({})", self.as_str())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 7230 `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Iterates the comma-separated elements of the values of every header named `name`,
/// trimmed, skipping empty elements and values that are not UTF-8.
fn list_values<'h, 'b: 'h>(
    headers: &'h [Header<'b>],
    name: &'static str,
) -> impl Iterator<Item = &'b str> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| SplitQuoted::new(v, b','))
        .map(trim_ows)
        .filter(|s| !s.is_empty())
}

fn has_token(headers: &[Header<'_>], name: &'static str, token: &str) -> bool {
    list_values(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

fn single_value<'b>(headers: &[Header<'b>], name: &str) -> Result<Option<&'b [u8]>, ()> {
    let mut it = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name));
    let first = it.next().map(|h| h.value);
    if it.next().is_some() {
        return Err(());
    }
    Ok(first)
}

fn trim_bytes(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |p| p + 1);
    v.get(start..end).unwrap_or_default()
}

/// Splits at `sep` outside double-quoted strings (RFC 7230 quoted-string, with `\` escapes).
#[derive(Clone, Debug)]
struct SplitQuoted<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> SplitQuoted<'a> {
    fn new(s: &'a str, sep: u8) -> Self {
        Self { rest: Some(s), sep }
    }
}

impl<'a> Iterator for SplitQuoted<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, b) in s.bytes().enumerate() {
            if quoted {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    quoted = false;
                }
            } else if b == b'"' {
                quoted = true;
            } else if b == self.sep {
                // `sep` is ASCII, so `i` and `i + 1` are char boundaries.
                self.rest = s.get(i + 1..);
                return s.get(..i);
            }
        }
        self.rest = None;
        Some(s)
    }
}

/// One element of a Sec-WebSocket-Extensions header: an extension name and its parameters
/// (RFC 6455 §9.1), borrowed from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionOffer<'b> {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: &'b str,
    /// The raw text after the name (`; a=1; b`), parsed by [`params`](Self::params).
    pub raw_params: &'b str,
}

/// One extension parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionParam<'b> {
    /// The parameter name.
    pub name: &'b str,
    /// The value: a token, or the inner text of a quoted-string (escapes are left as sent, so
    /// a value needing unescaping never matches a plain number and its offer is declined).
    pub value: Option<&'b str>,
}

impl<'b> ExtensionOffer<'b> {
    fn parse(element: &'b str) -> Self {
        let (name, raw_params) = match element.find(';') {
            Some(i) => (
                element.get(..i).unwrap_or_default(),
                element.get(i + 1..).unwrap_or_default(),
            ),
            None => (element, ""),
        };
        Self {
            name: trim_ows(name),
            raw_params,
        }
    }

    /// The parameters; an element that does not parse yields
    /// `Err(WsError::BadExtensionParams)` (a server declines such an offer).
    pub fn params(&self) -> impl Iterator<Item = Result<ExtensionParam<'b>, WsError>> + 'b {
        SplitQuoted::new(self.raw_params, b';')
            .map(trim_ows)
            .filter(|s| !s.is_empty())
            .map(parse_param)
    }
}

fn parse_param(s: &str) -> Result<ExtensionParam<'_>, WsError> {
    let (name, value) = match s.find('=') {
        Some(i) => (
            trim_ows(s.get(..i).unwrap_or_default()),
            Some(trim_ows(s.get(i + 1..).unwrap_or_default())),
        ),
        None => (s, None),
    };
    if !is_token(name) {
        return Err(WsError::BadExtensionParams);
    }
    let value = match value {
        None => None,
        Some(v) if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => {
            // RFC 6455 §9.1: "When using the quoted-string syntax variant, the value after
            // quoted-string unescaping MUST conform to the 'token' ABNF."
            let inner = v.get(1..v.len() - 1).unwrap_or_default();
            if inner.is_empty() {
                return Err(WsError::BadExtensionParams);
            }
            Some(inner)
        }
        Some(v) if is_token(v) => Some(v),
        Some(_) => return Err(WsError::BadExtensionParams),
    };
    Ok(ExtensionParam { name, value })
}

/// Iterates the extension elements of every Sec-WebSocket-Extensions header.
pub(crate) fn extension_elements<'h, 'b: 'h>(
    headers: &'h [Header<'b>],
) -> impl Iterator<Item = ExtensionOffer<'b>> + 'h {
    list_values(headers, "sec-websocket-extensions").map(ExtensionOffer::parse)
}

/// A validated WebSocket upgrade request (server side), borrowed from the input buffer.
#[derive(Clone)]
pub struct UpgradeRequest<'b> {
    target: &'b str,
    path: &'b str,
    query: Option<&'b str>,
    host: &'b str,
    key: &'b str,
    origin: Option<&'b str>,
    headers: [Header<'b>; MAX_HEADERS],
    header_count: usize,
}

impl<'b> UpgradeRequest<'b> {
    /// Parses and validates a request head from the start of `buf`, with
    /// [`DEFAULT_MAX_HEAD_SIZE`].
    pub fn parse(buf: &'b [u8]) -> Result<Option<(Self, usize)>, WsError> {
        Self::parse_with_limit(buf, DEFAULT_MAX_HEAD_SIZE)
    }

    /// Parses and validates a request head from the start of `buf`.
    ///
    /// `Ok(None)`: the head is not complete yet. `Ok(Some((req, n)))`: a valid upgrade request
    /// of `n` bytes (anything after it is already WebSocket data). A head longer than
    /// `max_head` bytes, complete or not, is [`WsError::HandshakeTooLarge`].
    pub fn parse_with_limit(
        buf: &'b [u8],
        max_head: usize,
    ) -> Result<Option<(Self, usize)>, WsError> {
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut raw);
        let Some(n) = head_len(req.parse(buf), buf.len(), max_head)? else {
            return Ok(None);
        };
        let headers = copy_headers(req.headers);
        let count = req.headers.len().min(MAX_HEADERS);
        let method = req.method.unwrap_or_default();
        let target = req.path.unwrap_or_default();
        let minor = req.version.unwrap_or_default();
        let parsed = Self::from_parts(
            method,
            target,
            minor,
            headers.get(..count).unwrap_or_default(),
        )?;
        Ok(Some((parsed, n)))
    }

    /// Validates a request that another HTTP/1.1 parser already read: method, request target,
    /// HTTP/1.x minor version and headers (more than [`MAX_HEADERS`] is
    /// [`WsError::HandshakeTooLarge`]).
    ///
    /// The checks of RFC 6455 §4.2.1, in order: GET; HTTP/1.1; an origin-form or absolute
    /// request target; exactly one Host; `Upgrade` containing `websocket`; `Connection`
    /// containing `Upgrade` (both case-insensitive token lists); `Sec-WebSocket-Version: 13`
    /// (else 426, so an old client learns the version); one `Sec-WebSocket-Key` that is the
    /// base64 of 16 bytes.
    pub fn from_parts(
        method: &'b str,
        target: &'b str,
        http_minor: u8,
        header_list: &[Header<'b>],
    ) -> Result<Self, WsError> {
        if header_list.len() > MAX_HEADERS {
            return Err(WsError::HandshakeTooLarge);
        }
        let count = header_list.len();
        let mut headers = [Header::EMPTY; MAX_HEADERS];
        for (d, s) in headers.iter_mut().zip(header_list) {
            *d = *s;
        }
        let hs = header_list;
        // RFC 6455 §4.2.1: "1. An HTTP/1.1 or higher GET request"
        if method != "GET" {
            return Err(WsError::MethodNotGet);
        }
        if http_minor != 1 {
            return Err(WsError::NotHttp11);
        }
        let resource = resource_name(target).ok_or(WsError::BadRequestTarget)?;
        let (path, query) = match resource.find('?') {
            Some(i) => (resource.get(..i).unwrap_or_default(), resource.get(i + 1..)),
            None => (resource, None),
        };
        // "2. A |Host| header field containing the server's authority."
        let host = match single_value(hs, "host") {
            Ok(Some(v)) => std::str::from_utf8(trim_bytes(v)).map_err(|_| WsError::MissingHost)?,
            _ => return Err(WsError::MissingHost),
        };
        if host.is_empty() {
            return Err(WsError::MissingHost);
        }
        // "3. An |Upgrade| header field containing the value "websocket", treated as an ASCII
        // case-insensitive value."
        if !has_token(hs, "upgrade", "websocket") {
            return Err(WsError::MissingUpgrade);
        }
        // "4. A |Connection| header field that includes the token "Upgrade", treated as an
        // ASCII case-insensitive value."
        if !has_token(hs, "connection", "upgrade") {
            return Err(WsError::MissingConnectionUpgrade);
        }
        // "6. A |Sec-WebSocket-Version| header field, with a value of 13."
        // §4.4: otherwise answer with the versions we support (426 + Sec-WebSocket-Version).
        match single_value(hs, "sec-websocket-version") {
            Ok(Some(v)) if trim_bytes(v) == b"13" => {}
            _ => return Err(WsError::UnsupportedVersion),
        }
        // "5. A |Sec-WebSocket-Key| header field with a base64-encoded value that, when
        // decoded, is 16 bytes in length."
        let key = match single_value(hs, "sec-websocket-key") {
            Ok(Some(v)) => trim_bytes(v),
            _ => return Err(WsError::BadKey),
        };
        let mut decoded = [0u8; 18];
        match STANDARD.decode_slice(key, &mut decoded) {
            Ok(16) => {}
            _ => return Err(WsError::BadKey),
        }
        let key = std::str::from_utf8(key).map_err(|_| WsError::BadKey)?;
        // "8. Optionally, an |Origin| header field." Absent, repeated or not text: None.
        let origin = single_value(hs, "origin")
            .ok()
            .flatten()
            .and_then(|v| std::str::from_utf8(trim_bytes(v)).ok());
        Ok(Self {
            target,
            path,
            query,
            host,
            key,
            origin,
            headers,
            header_count: count,
        })
    }

    /// The request target as sent.
    pub fn target(&self) -> &'b str {
        self.target
    }

    /// The path part of the resource name (before `?`), e.g. `/chat`.
    pub fn path(&self) -> &'b str {
        self.path
    }

    /// The query (after `?`, without it), if any.
    pub fn query(&self) -> Option<&'b str> {
        self.query
    }

    /// The Host header value.
    pub fn host(&self) -> &'b str {
        self.host
    }

    /// The Origin header value, if exactly one was sent.
    pub fn origin(&self) -> Option<&'b str> {
        self.origin
    }

    /// The Sec-WebSocket-Key value (base64 text).
    pub fn key(&self) -> &'b str {
        self.key
    }

    /// Every header, in order.
    pub fn headers(&self) -> &[Header<'b>] {
        self.headers.get(..self.header_count).unwrap_or_default()
    }

    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers()
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The subprotocols offered in Sec-WebSocket-Protocol, in the client's order of preference.
    pub fn protocols(&self) -> impl Iterator<Item = &'b str> + '_ {
        list_values(self.headers(), "sec-websocket-protocol")
    }

    /// The extensions offered in Sec-WebSocket-Extensions, in the client's order.
    pub fn extensions(&self) -> impl Iterator<Item = ExtensionOffer<'b>> + '_ {
        extension_elements(self.headers())
    }

    /// The Sec-WebSocket-Accept value for this request.
    pub fn accept_key(&self) -> AcceptKey {
        AcceptKey::from_key(self.key.as_bytes())
    }

    /// Picks the first acceptable permessage-deflate offer under `config` (RFC 7692 §5.1);
    /// `None` if `config` is disabled or no offer is acceptable. Other extensions
    /// (`x-webkit-deflate-frame`, ...) are declined by leaving them out of the response.
    pub fn negotiate_deflate(&self, config: &DeflateConfig) -> Option<DeflateParams> {
        deflate::negotiate(self.extensions(), config)
    }
}

impl fmt::Debug for UpgradeRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeRequest")
            .field("target", &self.target)
            .field("host", &self.host)
            .field("origin", &self.origin)
            .field("headers", &self.headers())
            .finish()
    }
}

/// The /resource name/ of a request target: origin-form as is; absolute-form
/// (`ws://host/x`, `http://host/x`) reduced to its path ("/" if empty).
fn resource_name(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let lower_scheme = target.get(..target.find("://")?)?;
    if !["http", "https", "ws", "wss"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(lower_scheme))
    {
        return None;
    }
    let after = target.get(lower_scheme.len() + 3..)?;
    let path_start = after.find(['/', '?']);
    match path_start {
        // `?query` with no path: the path is empty, the query is kept.
        Some(i) => after.get(i..),
        None => Some("/"),
    }
}

fn check_header_text(s: &str) -> Result<(), WsError> {
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(WsError::InvalidHeader);
    }
    Ok(())
}

fn check_extra_headers(extra: &[(&str, &str)]) -> Result<(), WsError> {
    for (name, value) in extra {
        if !is_token(name) {
            return Err(WsError::InvalidHeader);
        }
        check_header_text(value)?;
    }
    Ok(())
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes the 101 Switching Protocols response for `req` to `out`.
///
/// `protocol` must be one of [`UpgradeRequest::protocols`] (else
/// [`WsError::ProtocolNotOffered`]); `deflate` is what [`UpgradeRequest::negotiate_deflate`]
/// returned; `extra` headers are appended as given (names must be tokens, values free of CR/LF).
/// Nothing is written on error.
pub fn write_accept(
    req: &UpgradeRequest<'_>,
    protocol: Option<&str>,
    deflate: Option<&DeflateParams>,
    extra: &[(&str, &str)],
    out: &mut Vec<u8>,
) -> Result<(), WsError> {
    if let Some(p) = protocol {
        // RFC 6455 §4.2.2: the selected subprotocol "MUST be one of the values from the list
        // provided by the client".
        if !req.protocols().any(|o| o == p) {
            return Err(WsError::ProtocolNotOffered);
        }
    }
    check_extra_headers(extra)?;
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    push_header(out, "Sec-WebSocket-Accept", req.accept_key().as_str());
    if let Some(p) = protocol {
        push_header(out, "Sec-WebSocket-Protocol", p);
    }
    if let Some(d) = deflate {
        push_header(out, "Sec-WebSocket-Extensions", &d.to_header_value());
    }
    for (name, value) in extra {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The reason phrase this crate writes for `status`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Writes an error response with an empty body and `Connection: close`.
///
/// 426 carries `Sec-WebSocket-Version: 13` (RFC 6455 §4.4), 405 carries `Allow: GET`.
pub fn write_error_response(
    status: u16,
    extra: &[(&str, &str)],
    out: &mut Vec<u8>,
) -> Result<(), WsError> {
    check_extra_headers(extra)?;
    let status = status.clamp(100, 999);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\nConnection: close\r\nContent-Length: 0\r\n");
    if status == 426 {
        push_header(out, "Sec-WebSocket-Version", "13");
    }
    if status == 405 {
        push_header(out, "Allow", "GET");
    }
    for (name, value) in extra {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Writes the error response for a handshake error (its [`WsError::http_status`], 400 for
/// errors that have none).
pub fn write_reject(err: &WsError, out: &mut Vec<u8>) {
    // No extra headers, so this cannot fail.
    let _ = write_error_response(err.http_status().unwrap_or(400), &[], out);
}

/// What a client asks for in its opening handshake.
#[derive(Clone, Copy, Debug)]
pub struct ClientRequest<'a> {
    /// The Host header value (`host[:port]`).
    pub host: &'a str,
    /// The resource name: path and query, starting with `/`.
    pub path: &'a str,
    /// The Origin header, if any.
    pub origin: Option<&'a str>,
    /// Subprotocols to offer, most preferred first (tokens).
    pub protocols: &'a [&'a str],
    /// Offer permessage-deflate with these preferences (ignored if not `enabled`).
    pub deflate: Option<&'a DeflateConfig>,
    /// More headers (Authorization, Cookie, ...).
    pub extra_headers: &'a [(&'a str, &'a str)],
}

/// The client's side of the handshake: what it sent, to check the server's answer against.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    accept: AcceptKey,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
}

/// What the client and server agreed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated<'b> {
    /// The subprotocol the server selected, if any.
    pub protocol: Option<&'b str>,
    /// The permessage-deflate parameters, if the server accepted the offer.
    pub deflate: Option<DeflateParams>,
}

impl ClientHandshake {
    /// Writes the opening handshake request to `out` and remembers what to expect.
    ///
    /// `key` must be 16 bytes from a CSPRNG (RFC 6455 §4.1: "randomly selected"); this crate
    /// has no randomness of its own.
    pub fn new(req: &ClientRequest<'_>, key: [u8; 16], out: &mut Vec<u8>) -> Result<Self, WsError> {
        if !req.path.starts_with('/') {
            return Err(WsError::InvalidHeader);
        }
        check_header_text(req.path)?;
        if req.path.bytes().any(|b| b == b' ') {
            return Err(WsError::InvalidHeader);
        }
        check_header_text(req.host)?;
        if let Some(o) = req.origin {
            check_header_text(o)?;
        }
        if !req.protocols.iter().all(|p| is_token(p)) {
            return Err(WsError::InvalidHeader);
        }
        check_extra_headers(req.extra_headers)?;
        let mut key_b64 = [0u8; 24];
        // 16 bytes encode to exactly 24 base64 characters.
        let _ = STANDARD.encode_slice(key, &mut key_b64);
        let key_str = std::str::from_utf8(&key_b64).unwrap_or_default();

        out.extend_from_slice(b"GET ");
        out.extend_from_slice(req.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        push_header(out, "Host", req.host);
        out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
        push_header(out, "Sec-WebSocket-Key", key_str);
        push_header(out, "Sec-WebSocket-Version", "13");
        if let Some(o) = req.origin {
            push_header(out, "Origin", o);
        }
        if !req.protocols.is_empty() {
            push_header(out, "Sec-WebSocket-Protocol", &req.protocols.join(", "));
        }
        let deflate = req.deflate.filter(|d| d.enabled).cloned();
        if let Some(d) = &deflate {
            push_header(out, "Sec-WebSocket-Extensions", &d.client_offer());
        }
        for (name, value) in req.extra_headers {
            push_header(out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        Ok(Self {
            accept: AcceptKey::from_key(&key_b64),
            protocols: req.protocols.iter().map(|p| (*p).to_owned()).collect(),
            deflate,
        })
    }

    /// The Sec-WebSocket-Accept value the server must send.
    pub fn expected_accept(&self) -> AcceptKey {
        self.accept
    }

    /// Checks the server's response (RFC 6455 §4.1, "the client MUST validate the server's
    /// response as follows"): status 101 (anything else is [`WsError::BadStatus`]; a redirect's
    /// Location is in `resp`), `Upgrade: websocket`, `Connection: Upgrade`, the accept value, a
    /// subprotocol only if it was offered, an extension only if it was offered and its
    /// parameters fit the offer.
    pub fn verify<'b>(&self, resp: &ServerResponse<'b>) -> Result<Negotiated<'b>, WsError> {
        if resp.status != 101 {
            return Err(WsError::BadStatus(resp.status));
        }
        let hs = resp.headers();
        if !has_token(hs, "upgrade", "websocket") {
            return Err(WsError::MissingUpgrade);
        }
        if !has_token(hs, "connection", "upgrade") {
            return Err(WsError::MissingConnectionUpgrade);
        }
        match single_value(hs, "sec-websocket-accept") {
            Ok(Some(v)) if trim_bytes(v) == self.accept.as_str().as_bytes() => {}
            _ => return Err(WsError::BadAccept),
        }
        let protocol = match single_value(hs, "sec-websocket-protocol") {
            Ok(None) => None,
            Ok(Some(v)) => {
                let p =
                    std::str::from_utf8(trim_bytes(v)).map_err(|_| WsError::UnsolicitedProtocol)?;
                if !self.protocols.iter().any(|o| o == p) {
                    return Err(WsError::UnsolicitedProtocol);
                }
                Some(p)
            }
            Err(()) => return Err(WsError::UnsolicitedProtocol),
        };
        let mut deflate = None;
        for ext in extension_elements(hs) {
            let Some(cfg) = &self.deflate else {
                return Err(WsError::UnsolicitedExtension);
            };
            if !ext.name.eq_ignore_ascii_case(deflate::PERMESSAGE_DEFLATE) {
                return Err(WsError::UnsolicitedExtension);
            }
            if deflate.is_some() {
                // The server "MUST NOT" accept more than one permessage-deflate offer.
                return Err(WsError::BadExtensionParams);
            }
            deflate = Some(deflate::accept_response(&ext, cfg)?);
        }
        Ok(Negotiated { protocol, deflate })
    }
}

/// A parsed HTTP response head (client side), borrowed from the input.
#[derive(Clone)]
pub struct ServerResponse<'b> {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: &'b str,
    headers: [Header<'b>; MAX_HEADERS],
    header_count: usize,
}

impl<'b> ServerResponse<'b> {
    /// Parses a response head from the start of `buf` (`Ok(None)` if incomplete), bounded by
    /// [`DEFAULT_MAX_HEAD_SIZE`] and [`MAX_HEADERS`].
    pub fn parse(buf: &'b [u8]) -> Result<Option<(Self, usize)>, WsError> {
        Self::parse_with_limit(buf, DEFAULT_MAX_HEAD_SIZE)
    }

    /// As [`parse`](Self::parse) with a custom head-size bound.
    pub fn parse_with_limit(
        buf: &'b [u8],
        max_head: usize,
    ) -> Result<Option<(Self, usize)>, WsError> {
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut raw);
        let Some(n) = head_len(resp.parse(buf), buf.len(), max_head)? else {
            return Ok(None);
        };
        if resp.version != Some(1) {
            return Err(WsError::NotHttp11);
        }
        let headers = copy_headers(resp.headers);
        let header_count = resp.headers.len().min(MAX_HEADERS);
        Ok(Some((
            Self {
                status: resp.code.unwrap_or_default(),
                reason: resp.reason.unwrap_or_default(),
                headers,
                header_count,
            },
            n,
        )))
    }

    /// Every header, in order.
    pub fn headers(&self) -> &[Header<'b>] {
        self.headers.get(..self.header_count).unwrap_or_default()
    }

    /// The first header named `name` (ASCII case-insensitive), e.g. `Location` on a redirect.
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers()
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

impl fmt::Debug for ServerResponse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerResponse")
            .field("status", &self.status)
            .field("headers", &self.headers())
            .finish()
    }
}

/// The length of a complete head, `None` while incomplete; a head past `max_head` bytes
/// (complete or not) or with more than [`MAX_HEADERS`] headers is [`WsError::HandshakeTooLarge`].
fn head_len(
    parsed: Result<httparse::Status<usize>, httparse::Error>,
    buffered: usize,
    max_head: usize,
) -> Result<Option<usize>, WsError> {
    match parsed {
        Ok(httparse::Status::Complete(n)) if n > max_head => Err(WsError::HandshakeTooLarge),
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) if buffered > max_head => Err(WsError::HandshakeTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(WsError::HandshakeTooLarge),
        Err(_) => Err(WsError::HandshakeMalformed),
    }
}

/// Borrowed copies of httparse's headers (at most [`MAX_HEADERS`]).
fn copy_headers<'b>(src: &[httparse::Header<'b>]) -> [Header<'b>; MAX_HEADERS] {
    let mut headers = [Header::EMPTY; MAX_HEADERS];
    for (d, s) in headers.iter_mut().zip(src.iter()) {
        *d = Header {
            name: s.name,
            value: s.value,
        };
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_1_3_accept_key() {
        assert_eq!(
            AcceptKey::from_key(b"dGhlIHNhbXBsZSBub25jZQ==").as_str(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn split_quoted() {
        let v: Vec<_> = SplitQuoted::new(r#"a; b="x,;\"y", c"#, b',').collect();
        assert_eq!(v, [r#"a; b="x,;\"y""#, " c"]);
    }

    #[test]
    fn params_parse() {
        let e = ExtensionOffer::parse(
            "permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\"",
        );
        assert_eq!(e.name, "permessage-deflate");
        let p: Vec<_> = e.params().collect();
        assert_eq!(
            p,
            [
                Ok(ExtensionParam {
                    name: "client_max_window_bits",
                    value: None
                }),
                Ok(ExtensionParam {
                    name: "server_max_window_bits",
                    value: Some("10")
                }),
            ]
        );
        let bad = ExtensionOffer::parse("permessage-deflate; a=b c");
        assert!(bad.params().any(|p| p.is_err()));
    }

    #[test]
    fn resource_names() {
        assert_eq!(resource_name("/chat?x=1"), Some("/chat?x=1"));
        assert_eq!(resource_name("ws://h:80/chat"), Some("/chat"));
        assert_eq!(resource_name("https://h"), Some("/"));
        assert_eq!(resource_name("ftp://h/x"), None);
        assert_eq!(resource_name("*"), None);
    }
}
