//! Streaming `multipart/form-data` parser (RFC 7578 over RFC 2046 §5.1), sans-IO.
//!
//! Body bytes go in with [`Multipart::feed`] in pieces of any size, as they arrive; events come
//! out through the callback: a part's head ([`MultipartEvent::Head`]: field name, file name,
//! content type), its content in pieces with the boundaries removed ([`MultipartEvent::Data`]),
//! its end ([`MultipartEvent::PartEnd`]). Nothing but a part head (bounded by
//! [`MultipartLimits::max_head`]) and a possible delimiter prefix at the end of a piece (less
//! than the delimiter's length) is held, so memory does not grow with the body. Data pieces
//! borrow the caller's input, except when a held delimiter prefix turned out to be content:
//! then that input is copied once into a scratch buffer.
//!
//! Preamble and epilogue are ignored (the preamble bounded by
//! [`MultipartLimits::max_preamble`]). [`Multipart::finish`] at the body's end fails unless the
//! close delimiter was seen.
//!
//! State diagram:
//! ```text
//! Preamble --delimiter--> AfterDelimiter --CRLF--> Head --CRLF CRLF--> Body --delimiter--> AfterDelimiter
//!                          AfterDelimiter --"--"--> Done (epilogue ignored)
//! any error --> Failed (sticky)
//! ```
//!
//! Not done: `Content-Transfer-Encoding` (RFC 7578 §4.7 deprecates it; content is passed as
//! is), `filename*` (RFC 7578 §4.2 says senders must not use it), nested `multipart/mixed`.

use core::fmt;

/// Default [`MultipartLimits::max_parts`].
pub const DEFAULT_MAX_PARTS: usize = 64;
/// Default [`MultipartLimits::max_head`]: bytes of one part's header block.
pub const DEFAULT_MAX_PART_HEAD: usize = 0x2000;
/// Default [`MultipartLimits::max_preamble`].
pub const DEFAULT_MAX_PREAMBLE: u64 = 0x1_0000;
/// Most bytes of transport padding after a delimiter (RFC 2046 §5.1.1 `transport-padding`).
const MAX_PADDING: usize = 0x40;

/// Bounds of one multipart body (each exceeded one gets an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MultipartLimits {
    /// Most parts ([`MultipartError::TooManyParts`] past it).
    pub max_parts: usize,
    /// Largest header block of one part ([`MultipartError::HeadTooLarge`]).
    pub max_head: usize,
    /// Most bytes before the first delimiter ([`MultipartError::PreambleTooLarge`]).
    pub max_preamble: u64,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        MultipartLimits {
            max_parts: DEFAULT_MAX_PARTS,
            max_head: DEFAULT_MAX_PART_HEAD,
            max_preamble: DEFAULT_MAX_PREAMBLE,
        }
    }
}

/// Why a multipart body was refused (every one answers 400, but `TooManyParts` 413).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MultipartError {
    /// The boundary is empty, longer than 70 characters or has characters outside `bchars`.
    BadBoundary,
    /// More parts than [`MultipartLimits::max_parts`] (413).
    TooManyParts,
    /// A part's header block is past [`MultipartLimits::max_head`] (431-like, answered 400).
    HeadTooLarge,
    /// More preamble than [`MultipartLimits::max_preamble`].
    PreambleTooLarge,
    /// A delimiter followed by something other than CRLF or `--`.
    BadDelimiter,
    /// A part header is not `name: value` UTF-8, or Content-Disposition is malformed.
    BadHead,
    /// A part without `Content-Disposition: form-data; name=…`.
    MissingName,
    /// The body ended before the close delimiter.
    Truncated,
}

impl MultipartError {
    /// The HTTP status this error answers with.
    pub fn status(self) -> u16 {
        match self {
            MultipartError::TooManyParts => 413,
            _ => 400,
        }
    }
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MultipartError::BadBoundary => "bad multipart boundary",
            MultipartError::TooManyParts => "too many parts",
            MultipartError::HeadTooLarge => "part header block too large",
            MultipartError::PreambleTooLarge => "preamble too large",
            MultipartError::BadDelimiter => "malformed delimiter line",
            MultipartError::BadHead => "malformed part header",
            MultipartError::MissingName => "part without a form-data name",
            MultipartError::Truncated => "body ended before the close delimiter",
        })
    }
}

impl std::error::Error for MultipartError {}

/// A part's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartHead<'a> {
    /// The form field name (`name=`).
    pub name: &'a str,
    /// The file name (`filename=`), as sent (not sanitised: callers must not use it as a path).
    pub filename: Option<&'a str>,
    /// The part's Content-Type.
    pub content_type: Option<&'a str>,
}

/// What [`Multipart::feed`] reports.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MultipartEvent<'a> {
    /// A part begins.
    Head(PartHead<'a>),
    /// Content of the current part (boundaries removed).
    Data(&'a [u8]),
    /// The current part ended.
    PartEnd,
}

impl fmt::Debug for MultipartEvent<'_> {
    /// Data prints its length, not its bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartEvent::Head(h) => f.debug_tuple("Head").field(h).finish(),
            MultipartEvent::Data(d) => write!(f, "Data({} bytes)", d.len()),
            MultipartEvent::PartEnd => f.write_str("PartEnd"),
        }
    }
}

/// The boundary parameter of a `multipart/form-data` Content-Type (`None` if it is another
/// type or has no valid boundary).
pub fn boundary_of(content_type: &str) -> Option<&str> {
    let mut it = content_type.split(';');
    let ty = it.next()?.trim();
    if !ty.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    for p in it {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v);
            return valid_boundary(v).then_some(v);
        }
    }
    None
}

/// RFC 2046 §5.1.1: `boundary := 0*69<bchars> bcharsnospace`, 1 to 70 characters.
fn valid_boundary(b: &str) -> bool {
    let ok = |c: u8| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c);
    !b.is_empty() && b.len() <= 70 && b.bytes().all(ok) && !b.ends_with(' ')
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Preamble,
    AfterDelimiter,
    Head,
    Body,
    Done,
    Failed(MultipartError),
}

/// A streaming multipart/form-data parser for one body.
pub struct Multipart {
    /// `CRLF -- boundary`.
    delim: Vec<u8>,
    st: St,
    limits: MultipartLimits,
    /// A delimiter prefix left at the end of the last piece.
    held: Vec<u8>,
    scratch: Vec<u8>,
    /// The header block being read, or the bytes after a delimiter.
    head: Vec<u8>,
    parts: usize,
    preamble: u64,
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

impl fmt::Debug for Multipart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multipart")
            .field("state", &self.st)
            .field("parts", &self.parts)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Multipart {
    /// A parser for a body with this boundary.
    pub fn new(boundary: &str, limits: MultipartLimits) -> Result<Self, MultipartError> {
        if !valid_boundary(boundary) {
            return Err(MultipartError::BadBoundary);
        }
        let mut delim = b"\r\n--".to_vec();
        delim.extend_from_slice(boundary.as_bytes());
        Ok(Multipart {
            delim,
            st: St::Preamble,
            limits,
            // The first delimiter may start the body: as if a CRLF came before it.
            held: b"\r\n".to_vec(),
            scratch: Vec::new(),
            head: Vec::new(),
            parts: 0,
            preamble: 0,
            name: String::new(),
            filename: None,
            content_type: None,
        })
    }

    /// True once the close delimiter was seen.
    pub fn is_done(&self) -> bool {
        self.st == St::Done
    }

    /// Parts seen so far.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// The body ended: an error unless the close delimiter was seen.
    pub fn finish(&mut self) -> Result<(), MultipartError> {
        match self.st {
            St::Done => Ok(()),
            St::Failed(e) => Err(e),
            _ => {
                self.st = St::Failed(MultipartError::Truncated);
                Err(MultipartError::Truncated)
            }
        }
    }

    /// Feed the next piece of the body; events go to `on`. An error is sticky.
    pub fn feed(
        &mut self,
        input: &[u8],
        on: &mut dyn FnMut(MultipartEvent<'_>),
    ) -> Result<(), MultipartError> {
        if let St::Failed(e) = self.st {
            return Err(e);
        }
        let r = if self.held.is_empty() {
            self.run(input, on).map(|keep| {
                let tail = input.get(keep..).unwrap_or_default();
                self.held.extend_from_slice(tail);
            })
        } else {
            let mut buf = core::mem::take(&mut self.scratch);
            buf.clear();
            buf.append(&mut self.held);
            buf.extend_from_slice(input);
            let r = self.run(&buf, on).map(|keep| {
                let tail = buf.get(keep..).unwrap_or_default();
                self.held.extend_from_slice(tail);
            });
            buf.clear();
            self.scratch = buf;
            r
        };
        if let Err(e) = r {
            self.st = St::Failed(e);
        }
        r
    }

    /// Parse `buf`; returns where the bytes to hold begin.
    fn run(
        &mut self,
        buf: &[u8],
        on: &mut dyn FnMut(MultipartEvent<'_>),
    ) -> Result<usize, MultipartError> {
        let mut i = 0;
        loop {
            let rest = buf.get(i..).unwrap_or_default();
            match self.st {
                St::Failed(e) => return Err(e),
                St::Done => return Ok(buf.len()),
                St::Preamble | St::Body => {
                    let (content, found) = match memchr::memmem::find(rest, &self.delim) {
                        Some(j) => (j, true),
                        None => (self.hold_from(rest), false),
                    };
                    let piece = rest.get(..content).unwrap_or_default();
                    if self.st == St::Body {
                        if !piece.is_empty() {
                            on(MultipartEvent::Data(piece));
                        }
                    } else {
                        self.preamble = self.preamble.saturating_add(piece.len() as u64);
                        // (+2: the CRLF assumed before the first delimiter is not preamble.)
                        if self.preamble > self.limits.max_preamble.saturating_add(2) {
                            return Err(MultipartError::PreambleTooLarge);
                        }
                    }
                    if !found {
                        return Ok(i + content);
                    }
                    if self.st == St::Body {
                        on(MultipartEvent::PartEnd);
                    }
                    i += content + self.delim.len();
                    self.st = St::AfterDelimiter;
                    self.head.clear();
                }
                St::AfterDelimiter => {
                    let Some((&c, _)) = rest.split_first() else {
                        return Ok(buf.len());
                    };
                    i += 1;
                    self.head.push(c);
                    let h = self.head.as_slice();
                    // RFC 2046 §5.1.1: `close-delimiter := delimiter "--"`; then epilogue.
                    if h == b"--" {
                        self.st = St::Done;
                    } else if h.ends_with(b"\r\n") {
                        // `dash-boundary transport-padding CRLF`, padding = LWSP.
                        let pad = h.get(..h.len() - 2).unwrap_or_default();
                        if !pad.iter().all(|&b| b == b' ' || b == b'\t') {
                            return Err(MultipartError::BadDelimiter);
                        }
                        self.parts += 1;
                        if self.parts > self.limits.max_parts {
                            return Err(MultipartError::TooManyParts);
                        }
                        self.head.clear();
                        self.st = St::Head;
                    } else if h.len() > MAX_PADDING
                        || !(h == b"-" || h.iter().all(|&b| b" \t\r".contains(&b)))
                        || h.iter()
                            .position(|&b| b == b'\r')
                            .is_some_and(|p| p + 1 < h.len())
                    {
                        return Err(MultipartError::BadDelimiter);
                    }
                }
                St::Head => {
                    // Copy up to the end of the header block, bounded.
                    let room = self.limits.max_head.saturating_sub(self.head.len());
                    let mut end = None;
                    for (k, &c) in rest.iter().enumerate() {
                        if k >= room {
                            return Err(MultipartError::HeadTooLarge);
                        }
                        self.head.push(c);
                        if self.head == b"\r\n" || self.head.ends_with(b"\r\n\r\n") {
                            end = Some(k + 1);
                            break;
                        }
                    }
                    let Some(n) = end else {
                        return Ok(buf.len());
                    };
                    i += n;
                    self.parse_head()?;
                    on(MultipartEvent::Head(PartHead {
                        name: &self.name,
                        filename: self.filename.as_deref(),
                        content_type: self.content_type.as_deref(),
                    }));
                    self.st = St::Body;
                }
            }
        }
    }

    /// Where the longest suffix of `rest` that could begin a delimiter starts.
    fn hold_from(&self, rest: &[u8]) -> usize {
        let from = rest.len().saturating_sub(self.delim.len() - 1);
        (from..rest.len())
            .find(|&s| rest.get(s..).is_some_and(|t| self.delim.starts_with(t)))
            .unwrap_or(rest.len())
    }

    fn parse_head(&mut self) -> Result<(), MultipartError> {
        let text = core::str::from_utf8(&self.head).map_err(|_| MultipartError::BadHead)?;
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            let (n, v) = line.split_once(':').ok_or(MultipartError::BadHead)?;
            if n.is_empty() || n.bytes().any(|b| !b.is_ascii_graphic()) {
                return Err(MultipartError::BadHead);
            }
            let v = v.trim_matches([' ', '\t']);
            if n.eq_ignore_ascii_case("content-disposition") {
                let (kind, params) = v.split_once(';').unwrap_or((v, ""));
                if !kind.trim().eq_ignore_ascii_case("form-data") {
                    return Err(MultipartError::BadHead);
                }
                for (k, val) in params_of(params)? {
                    if k.eq_ignore_ascii_case("name") {
                        name = Some(val);
                    } else if k.eq_ignore_ascii_case("filename") {
                        filename = Some(val);
                    }
                }
            } else if n.eq_ignore_ascii_case("content-type") {
                content_type = Some(v.to_owned());
            }
        }
        self.name = name.ok_or(MultipartError::MissingName)?;
        self.filename = filename;
        self.content_type = content_type;
        Ok(())
    }
}

/// `; k=v; k="quoted \"v\""` → pairs (RFC 7578 §4.2 uses quoted-string values).
fn params_of(s: &str) -> Result<Vec<(String, String)>, MultipartError> {
    let mut out = Vec::new();
    let mut rest = s.trim_start_matches([' ', '\t', ';']);
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=').ok_or(MultipartError::BadHead)?;
        let k = k.trim();
        let after = after.trim_start_matches([' ', '\t']);
        let mut val = String::new();
        let tail;
        if let Some(q) = after.strip_prefix('"') {
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((idx, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => val.push(e),
                        None => return Err(MultipartError::BadHead),
                    },
                    '"' => {
                        end = Some(idx + 1);
                        break;
                    }
                    c => val.push(c),
                }
            }
            let end = end.ok_or(MultipartError::BadHead)?;
            tail = q.get(end..).unwrap_or_default();
        } else {
            let (v, t) = after.split_once(';').unwrap_or((after, ""));
            val.push_str(v.trim());
            tail = t;
        }
        if k.is_empty() {
            return Err(MultipartError::BadHead);
        }
        out.push((k.to_owned(), val));
        let tail = tail.trim_start_matches([' ', '\t']);
        if !tail.is_empty() && !tail.starts_with(';') {
            return Err(MultipartError::BadHead);
        }
        rest = tail.trim_start_matches([' ', '\t', ';']);
    }
    Ok(out)
}

/// A part as the oracle records it.
#[derive(Debug, PartialEq, Eq, Default)]
struct Seen {
    name: String,
    filename: Option<String>,
    data: Vec<u8>,
    ended: bool,
}

fn parse_in_pieces(body: &[u8], cuts: &[usize]) -> (Vec<Seen>, Result<(), MultipartError>) {
    let mut parts: Vec<Seen> = Vec::new();
    let mut mp = match Multipart::new("XyZb0und", MultipartLimits::default()) {
        Ok(m) => m,
        Err(e) => return (parts, Err(e)),
    };
    let mut on = |ev: MultipartEvent<'_>| match ev {
        MultipartEvent::Head(h) => parts.push(Seen {
            name: h.name.to_owned(),
            filename: h.filename.map(str::to_owned),
            ..Seen::default()
        }),
        MultipartEvent::Data(d) => {
            if let Some(p) = parts.last_mut() {
                p.data.extend_from_slice(d);
            }
        }
        MultipartEvent::PartEnd => {
            if let Some(p) = parts.last_mut() {
                p.ended = true;
            }
        }
    };
    let mut at = 0;
    let mut r = Ok(());
    for &c in cuts.iter().chain(core::iter::once(&body.len())) {
        let c = c.clamp(at, body.len());
        if let Err(e) = mp.feed(body.get(at..c).unwrap_or_default(), &mut on) {
            r = Err(e);
            break;
        }
        at = c;
    }
    if r.is_ok() {
        r = mp.finish();
    }
    (parts, r)
}

/// The fuzz oracle: parsing `data` whole and in pieces (cut where its bytes say) gives the same
/// parts and result; a body built around `data` as file content parses back to `data`.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let cuts: Vec<usize> = data
        .iter()
        .take(16)
        .scan(0usize, |acc, &b| {
            *acc += usize::from(b % 17);
            Some(*acc)
        })
        .collect();
    let whole = parse_in_pieces(data, &[]);
    let split = parse_in_pieces(data, &cuts);
    assert_eq!(whole, split, "split feeding changed the result");
    let ones: Vec<usize> = (1..data.len().min(512)).collect();
    if data.len() < 512 {
        assert_eq!(
            whole,
            parse_in_pieces(data, &ones),
            "byte-wise feeding changed the result"
        );
    }
    if memchr::memmem::find(data, b"\r\n--XyZb0und").is_none() {
        let mut body =
            b"--XyZb0und\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n"
                .to_vec();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n--XyZb0und--\r\n");
        let (parts, r) = parse_in_pieces(&body, &cuts);
        assert_eq!(r, Ok(()));
        assert_eq!(parts.len(), 1);
        assert_eq!(parts.first().map(|p| p.data.as_slice()), Some(data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"preamble\r\n--XyZb0und\r\n\
Content-Disposition: form-data; name=\"field\"\r\n\r\n\
value\r\n--XyZb0und  \r\n\
Content-Disposition: form-data; name=\"file_1\"; filename=\"a \\\"b\\\".txt\"\r\n\
Content-Type: text/plain\r\n\r\n\
line1\r\n--XyZb0un\r\nline2\r\n--XyZb0und--\r\nepilogue";

    #[test]
    fn rfc7578_two_parts_any_split() {
        let (parts, r) = parse_in_pieces(BODY, &[]);
        assert_eq!(r, Ok(()));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "field");
        assert_eq!(parts[0].data, b"value");
        assert_eq!(parts[1].filename.as_deref(), Some("a \"b\".txt"));
        assert_eq!(parts[1].data, b"line1\r\n--XyZb0un\r\nline2");
        for cut in 0..BODY.len() {
            assert_eq!(
                parse_in_pieces(BODY, &[cut]),
                (parts_clone(&parts), Ok(())),
                "cut {cut}"
            );
        }
        let ones: Vec<usize> = (1..BODY.len()).collect();
        assert_eq!(parse_in_pieces(BODY, &ones).1, Ok(()));
    }

    fn parts_clone(p: &[Seen]) -> Vec<Seen> {
        p.iter()
            .map(|s| Seen {
                name: s.name.clone(),
                filename: s.filename.clone(),
                data: s.data.clone(),
                ended: s.ended,
            })
            .collect()
    }

    #[test]
    fn boundary_parameter() {
        assert_eq!(
            boundary_of("multipart/form-data; boundary=abc"),
            Some("abc")
        );
        assert_eq!(
            boundary_of("Multipart/Form-Data; charset=x; boundary=\"a b\""),
            Some("a b")
        );
        assert_eq!(boundary_of("text/plain; boundary=abc"), None);
        assert_eq!(boundary_of("multipart/form-data"), None);
        assert_eq!(
            boundary_of(&format!("multipart/form-data; boundary={}", "a".repeat(71))),
            None
        );
        assert!(Multipart::new("", MultipartLimits::default()).is_err());
    }

    #[test]
    fn limits_one_over_each() {
        let part = b"--XyZb0und\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n";
        let mut body = Vec::new();
        for _ in 0..DEFAULT_MAX_PARTS {
            body.extend_from_slice(part);
        }
        let mut at_limit = body.clone();
        at_limit.extend_from_slice(b"--XyZb0und--");
        assert_eq!(parse_in_pieces(&at_limit, &[]).1, Ok(()));
        body.extend_from_slice(part);
        body.extend_from_slice(b"--XyZb0und--");
        assert_eq!(
            parse_in_pieces(&body, &[]).1,
            Err(MultipartError::TooManyParts)
        );

        let mut head = b"--XyZb0und\r\nContent-Disposition: form-data; name=\"a\"\r\nX: ".to_vec();
        let fill = DEFAULT_MAX_PART_HEAD - (head.len() - 12) - 4;
        head.extend(std::iter::repeat_n(b'y', fill));
        let mut ok = head.clone();
        ok.extend_from_slice(b"\r\n\r\nx\r\n--XyZb0und--");
        assert_eq!(parse_in_pieces(&ok, &[]).1, Ok(()));
        head.extend_from_slice(b"y\r\n\r\nx\r\n--XyZb0und--");
        assert_eq!(
            parse_in_pieces(&head, &[]).1,
            Err(MultipartError::HeadTooLarge)
        );

        let mut pre = vec![b'p'; DEFAULT_MAX_PREAMBLE as usize];
        pre.extend_from_slice(b"\r\n--XyZb0und--");
        assert_eq!(parse_in_pieces(&pre, &[]).1, Ok(()));
        pre.insert(0, b'p');
        assert_eq!(
            parse_in_pieces(&pre, &[]).1,
            Err(MultipartError::PreambleTooLarge)
        );
    }

    #[test]
    fn malformed_inputs_are_errors_never_panics() {
        for cut in 0..BODY.len() - b"--\r\nepilogue".len() {
            let r = parse_in_pieces(&BODY[..cut], &[]).1;
            assert!(r.is_err(), "truncated at {cut} accepted");
        }
        let mut seed: u32 = 0x1234_5678;
        for _ in 0..4000 {
            let mut b = BODY.to_vec();
            for _ in 0..3 {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let i = (seed >> 8) as usize % b.len();
                b[i] ^= 1 << (seed % 8);
            }
            let _ = parse_in_pieces(&b, &[7, 40, 41, 100]);
            fuzz_check(&b);
        }
        for bad in [
            &b"--XyZb0und\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZb0und--"
                [..],
            b"--XyZb0und\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZb0und--",
            b"--XyZb0und\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--XyZb0und--",
            b"--XyZb0undX\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--XyZb0und--",
            b"--XyZb0und\r\nno colon\r\n\r\nx\r\n--XyZb0und--",
        ] {
            assert!(
                parse_in_pieces(bad, &[]).1.is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
