//! Static files: path mapping (traversal refused), MIME types, validators (ETag,
//! Last-Modified), conditional requests (304), single byte ranges (206, 416) and `index.html`.
//!
//! Bodies are read in [`super::HttpConfig::file_chunk`] pieces as the socket drains, so a large
//! file never sits whole in memory. The reads are blocking `read`s on the core's thread (the
//! page cache serves them in the common case); sendfile/splice or io_uring reads into
//! registered buffers are a later optimisation.

use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Body, Request, Response};

/// The unread part of a file response.
pub struct FileBody {
    file: File,
    remaining: u64,
}

impl FileBody {
    /// Bytes still to send.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
    /// Read the next piece (at most `remaining`); 0 at the end.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.file.read(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The MIME type for a file name's extension (`application/octet-stream` when unknown).
pub fn mime_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "log" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        _ => "application/octet-stream",
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode a path; `None` for bad escapes, NUL or non-UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let h = hex(*b.get(i + 1)?)?;
            let l = hex(*b.get(i + 2)?)?;
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// Where a URL path maps under `root`: `Err(status)` for paths that try to leave it (403) or
/// cannot be decoded (400).
pub fn map_path(root: &Path, url_path: &str) -> Result<PathBuf, u16> {
    let decoded = percent_decode(url_path).ok_or(400u16)?;
    let mut p = root.to_path_buf();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(403),
            s if s.contains('\\') => return Err(403),
            s => {
                // A segment must be one plain name (no root, no prefix).
                let mut comps = Path::new(s).components();
                match (comps.next(), comps.next()) {
                    (Some(Component::Normal(_)), None) => p.push(s),
                    _ => return Err(403),
                }
            }
        }
    }
    Ok(p)
}

/// The response for `req` from the static root `root` (canonical: no symlinks, absolute).
pub fn static_response(root: &Path, req: &Request) -> Response {
    let mut path = match map_path(root, req.path()) {
        Ok(p) => p,
        Err(s) => return Response::error(s),
    };
    // Symlinks may not lead outside the root.
    let Ok(cpath) = path.canonicalize() else {
        return Response::error(404);
    };
    if !cpath.starts_with(root) {
        return Response::error(403);
    }
    if cpath.is_dir() {
        if !req.path().ends_with('/') {
            // One leading slash: `//host/dir` must not become a redirect to another host.
            let mut loc = format!("/{}/", req.path().trim_start_matches('/'));
            if let Some(q) = req.query() {
                loc.push('?');
                loc.push_str(q);
            }
            return Response::text(301, "moved\n").with_header("Location", loc);
        }
        // index.html may itself be a symlink: the same check.
        match cpath.join("index.html").canonicalize() {
            Ok(p) if p.starts_with(root) => path = p,
            Ok(_) => return Response::error(403),
            Err(_) => return Response::error(404),
        }
    } else {
        path = cpath;
    }
    file_response(req, &path)
}

fn etag_of(meta: &Metadata) -> (String, Option<SystemTime>) {
    let mtime = meta.modified().ok();
    let nanos = mtime
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    (format!("\"{:x}-{:x}\"", meta.len(), nanos), mtime)
}

fn etag_matches(list: &str, etag: &str) -> bool {
    // RFC 9110 §13.1.2: If-None-Match uses the weak comparison.
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    list.split(',')
        .any(|t| t.trim() == "*" || strip(t) == strip(etag))
}

/// A byte range request's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No usable range: send the whole file.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// Not satisfiable (416).
    Unsatisfiable,
}

/// Parse a `Range` value for a file of `len` bytes (one range; several ranges are answered
/// with the whole file, which RFC 9110 §14.2 allows).
pub fn parse_range(v: &str, len: u64) -> RangeSpec {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeSpec::Whole;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    if a.is_empty() {
        // suffix-range: the last n bytes
        return match num(b) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(n) if len > 0 => RangeSpec::Part(len.saturating_sub(n), len - 1),
            Some(_) => RangeSpec::Unsatisfiable,
            None => RangeSpec::Whole,
        };
    }
    let Some(start) = num(a) else {
        return RangeSpec::Whole;
    };
    let end = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        match num(b) {
            Some(e) if e >= start => e.min(len.saturating_sub(1)),
            _ => return RangeSpec::Whole,
        }
    };
    if start >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Part(start, end)
}

/// The response for the file at `path` (validators, conditionals, ranges).
pub fn file_response(req: &Request, path: &Path) -> Response {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Response::error(403);
        }
        Err(_) => return Response::error(404),
    };
    let Ok(meta) = file.metadata() else {
        return Response::error(404);
    };
    if !meta.is_file() {
        return Response::error(404);
    }
    let len = meta.len();
    let (etag, mtime) = etag_of(&meta);
    let last_modified = mtime.map(httpdate::fmt_http_date);
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), mime_type(path).into()),
        ("ETag".into(), etag.clone()),
        ("Accept-Ranges".into(), "bytes".into()),
    ];
    if let Some(lm) = &last_modified {
        headers.push(("Last-Modified".into(), lm.clone()));
    }
    // RFC 9110 §13.2.2: If-None-Match is evaluated first; If-Modified-Since only without it.
    let not_modified = if let Some(inm) = req.header_str("if-none-match") {
        etag_matches(inm, &etag)
    } else if let (Some(ims), Some(mt)) = (req.header_str("if-modified-since"), mtime) {
        match httpdate::parse_http_date(ims) {
            Ok(t) => {
                let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                secs(mt) <= secs(t)
            }
            Err(_) => false,
        }
    } else {
        false
    };
    if not_modified {
        return Response {
            status: 304,
            headers: headers
                .into_iter()
                .filter(|(n, _)| n != "Content-Type" && n != "Accept-Ranges")
                .collect(),
            body: Body::Empty,
        };
    }
    let range = match req.header_str("range") {
        Some(r) => {
            // RFC 9110 §13.1.5: If-Range with a validator that does not match: whole file.
            let if_range_ok = match req.header_str("if-range") {
                None => true,
                Some(v) if v.trim_start().starts_with('"') || v.starts_with("W/") => {
                    v.trim() == etag
                }
                Some(v) => last_modified.as_deref() == Some(v.trim()),
            };
            if if_range_ok {
                parse_range(r, len)
            } else {
                RangeSpec::Whole
            }
        }
        None => RangeSpec::Whole,
    };
    let (status, start, count) = match range {
        RangeSpec::Whole => (200, 0, len),
        RangeSpec::Part(a, b) => {
            headers.push(("Content-Range".into(), format!("bytes {a}-{b}/{len}")));
            (206, a, b - a + 1)
        }
        RangeSpec::Unsatisfiable => {
            return Response::error(416).with_header("Content-Range", format!("bytes */{len}"));
        }
    };
    let mut file = file;
    if start > 0 && file.seek(SeekFrom::Start(start)).is_err() {
        return Response::error(500);
    }
    Response {
        status,
        headers,
        body: Body::File(FileBody {
            file,
            remaining: count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeSpec::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Part(90, 99));
        assert_eq!(parse_range("bytes=50-500", 100), RangeSpec::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Whole);
        assert_eq!(parse_range("bytes=9-1", 100), RangeSpec::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Whole);
        assert_eq!(parse_range("bytes=x-1", 100), RangeSpec::Whole);
    }

    #[test]
    fn traversal_refused() {
        let root = Path::new("/srv/www");
        assert_eq!(
            map_path(root, "/a/b.txt"),
            Ok(PathBuf::from("/srv/www/a/b.txt"))
        );
        assert_eq!(map_path(root, "/../etc/passwd"), Err(403));
        assert_eq!(map_path(root, "/a/%2e%2e/%2e%2e/etc"), Err(403));
        assert_eq!(map_path(root, "/a%5c..%5cb"), Err(403));
        assert_eq!(map_path(root, "/a%00b"), Err(400));
        assert_eq!(map_path(root, "/a%zz"), Err(400));
        assert_eq!(
            map_path(root, "//etc/passwd"),
            Ok(PathBuf::from("/srv/www/etc/passwd"))
        );
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"x\""));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }
}
