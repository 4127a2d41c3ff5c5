//! What the parser hands out: request heads, header views and events.

use core::fmt;

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`: persistent only with `Connection: keep-alive`, no chunked
    /// responses, no Upgrade, no `Expect`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// The wire form, `HTTP/1.0` or `HTTP/1.1`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

/// A request method. Methods are case-sensitive (RFC 9110 §9.1), so `get` is
/// `Other("get")`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    /// GET.
    Get,
    /// HEAD: its response carries no body.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// CONNECT: parsing stops after it, like an upgrade.
    Connect,
    /// OPTIONS.
    Options,
    /// TRACE.
    Trace,
    /// PATCH.
    Patch,
    /// Any other token.
    Other(&'a str),
}

impl<'a> Method<'a> {
    /// Classifies a method token.
    #[must_use]
    pub fn from_token(token: &'a str) -> Self {
        match token {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "CONNECT" => Self::Connect,
            "OPTIONS" => Self::Options,
            "TRACE" => Self::Trace,
            "PATCH" => Self::Patch,
            other => Self::Other(other),
        }
    }

    /// The method token as it appears on the wire.
    #[must_use]
    pub const fn as_str(&self) -> &'a str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
            Self::Options => "OPTIONS",
            Self::Trace => "TRACE",
            Self::Patch => "PATCH",
            Self::Other(s) => s,
        }
    }
}

/// How the request body is framed (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// Neither Content-Length nor Transfer-Encoding: no body.
    None,
    /// `Content-Length: n` (n may be 0).
    ContentLength(u64),
    /// `Transfer-Encoding: chunked`; the length is known only at the end.
    Chunked,
}

/// A protocol switch the request asks for. Parsing stops after such a request
/// (its body included) until the response says whether the switch happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Upgrade {
    /// `Connection: upgrade` + `Upgrade: websocket` (RFC 6455 §4.2.1).
    WebSocket,
    /// `Connection: upgrade` + `Upgrade: h2c` (RFC 7540 §3.2).
    H2c,
    /// A CONNECT request: a 2xx response turns the connection into a tunnel
    /// (RFC 9110 §9.3.6).
    Connect,
}

/// One field line: the name as received (compare case-insensitively) and the
/// value with surrounding whitespace removed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Field name, a token.
    pub name: &'a str,
    /// Field value; may hold obs-text (bytes ≥ 0x80), never CR, LF or NUL.
    pub value: &'a [u8],
}

impl fmt::Debug for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?}",
            self.name,
            String::from_utf8_lossy(self.value)
        )
    }
}

/// Where one field line sits in the connection's scratch buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FieldSpan {
    pub(crate) name: (usize, usize),
    pub(crate) value: (usize, usize),
}

/// A borrowed view of a header (or trailer) section, in wire order.
#[derive(Clone, Copy)]
pub struct Headers<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) spans: &'a [FieldSpan],
}

impl<'a> Headers<'a> {
    /// Number of field lines.
    #[must_use]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The field lines in wire order.
    pub fn iter(&self) -> impl Iterator<Item = Header<'a>> + 'a {
        let buf = self.buf;
        self.spans.iter().map(move |s| Header {
            name: core::str::from_utf8(buf.get(s.name.0..s.name.1).unwrap_or_default())
                .unwrap_or_default(),
            value: buf.get(s.value.0..s.value.1).unwrap_or_default(),
        })
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The values of every field named `name`, in order.
    pub fn get_all<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        self.iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Copies the section out, for callers that keep it past the next
    /// [`ServerConn::handle_read`](crate::ServerConn::handle_read).
    #[must_use]
    pub fn to_owned_vec(&self) -> Vec<(String, Vec<u8>)> {
        self.iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect()
    }
}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A parsed request head. Borrowed from the connection until the next
/// [`ServerConn::handle_read`](crate::ServerConn::handle_read).
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: Method<'a>,
    /// The request-target exactly as received (origin, absolute, authority or
    /// asterisk form, RFC 9112 §3.2).
    pub target: &'a str,
    /// `target` up to the first `?` (the whole target if there is none).
    pub path: &'a str,
    /// What follows the first `?`, without it.
    pub query: Option<&'a str>,
    /// The version.
    pub version: Version,
    /// Every field line in wire order.
    pub headers: Headers<'a>,
    /// Whether the connection persists after this exchange (RFC 9112 §9.3);
    /// the response may still turn it off.
    pub keep_alive: bool,
    /// How the body is framed.
    pub body: BodyKind,
    /// `Expect: 100-continue` on an HTTP/1.1 request: the client may wait for
    /// a 100 before it sends the body.
    pub expect_continue: bool,
    /// A protocol switch this request asks for.
    pub upgrade: Option<Upgrade>,
}

impl RequestHead<'_> {
    /// True for HEAD, whose response has no body.
    #[must_use]
    pub fn is_head(&self) -> bool {
        self.method == Method::Head
    }
}

/// What [`ServerConn::poll_event`](crate::ServerConn::poll_event) yields. Each
/// request is `Request`, zero or more `Body`, at most one `Trailers`, then
/// `BodyEnd` (also for requests without a body).
#[derive(Clone, Copy)]
pub enum Event<'a> {
    /// A request head.
    Request(RequestHead<'a>),
    /// A piece of the decoded body (chunk framing removed); never empty.
    Body(&'a [u8]),
    /// The trailer section of a chunked body, if it had fields. Kept apart
    /// from the head: RFC 9110 §6.5.1 forbids merging trailer fields into it
    /// unless their definitions allow it, so framing or routing fields found
    /// here mean nothing.
    Trailers(Headers<'a>),
    /// The body (possibly empty) is complete.
    BodyEnd,
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(h) => f.debug_tuple("Request").field(h).finish(),
            Self::Body(b) => write!(f, "Body({} bytes)", b.len()),
            Self::Trailers(t) => f.debug_tuple("Trailers").field(t).finish(),
            Self::BodyEnd => f.write_str("BodyEnd"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_debug_prints_length() {
        assert_eq!(format!("{:?}", Event::Body(b"secret")), "Body(6 bytes)");
    }

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_token("GET"), Method::Get);
        assert_eq!(Method::from_token("get"), Method::Other("get"));
        assert_eq!(Method::Other("PROPFIND").as_str(), "PROPFIND");
    }
}
