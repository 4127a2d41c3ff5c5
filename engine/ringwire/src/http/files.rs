//! Static files: path mapping (traversal refused), MIME types, validators (ETag,
//! Last-Modified), conditional requests (304), single byte ranges (206, 416) and `index.html`.
//!
//! Bodies go out as the socket drains, so a large file never sits whole in memory. On plain
//! connections a body is queued as file ranges ([`ringwire_runtime::ConnCtx::send_file`]) that
//! the runtime writes with sendfile(2): page cache to socket, no copy through user space, on
//! both drivers. On TLS (and with [`super::HttpConfig::sendfile`] off) it is read in
//! [`super::HttpConfig::file_chunk`] pieces with positional reads on the core's thread. Either
//! way a file not in the page cache blocks the core while the disk reads.
//!
//! Each core's HTTP plugin keeps a [`FileCache`] of answers by URL path: canonical path, MIME
//! type, validators and, for small files, the content as [`Bytes`]; also 404s and directory
//! redirects. Within [`CacheConfig::valid`] a hit costs no syscall; after it one `stat`
//! revalidates. Cached or not, an answer goes through the same `respond` (304, 206, 416,
//! `If-Range`).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{Body, Request, Response};

/// The unread part of a file response.
pub struct FileBody {
    file: Arc<File>,
    /// File offset of the next byte to send.
    pos: u64,
    remaining: u64,
}

impl FileBody {
    /// Bytes still to send.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
    /// Read the next piece (at most `remaining`) at the current offset; 0 at the end.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self
            .file
            .read_at(buf.get_mut(..want).unwrap_or_default(), self.pos)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
    /// Take the next range of at most `max` bytes for [`ConnCtx::send_file`]
    /// (`ringwire_runtime::ConnCtx::send_file`): the file, its offset and length.
    pub(crate) fn take_range(&mut self, max: usize) -> (Arc<File>, u64, usize) {
        let n = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(max);
        let r = (Arc::clone(&self.file), self.pos, n);
        self.pos += n as u64;
        self.remaining -= n as u64;
        r
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

/// What a URL path resolves to under the root.
enum Resolved {
    /// A regular file (or what should be one), canonical.
    File(PathBuf),
    /// A directory named without its trailing slash: `301` to the same path with `/`.
    Dir,
}

/// Map `url_path` under `root` (canonical), follow symlinks and find `index.html` of
/// directories: `Err(status)` for 400 (bad escape), 403 (traversal, a symlink out of the root),
/// 404 (missing).
fn resolve(root: &Path, url_path: &str) -> Result<Resolved, u16> {
    let path = map_path(root, url_path)?;
    // Symlinks may not lead outside the root.
    let cpath = path.canonicalize().map_err(|_| 404u16)?;
    if !cpath.starts_with(root) {
        return Err(403);
    }
    if !cpath.is_dir() {
        return Ok(Resolved::File(cpath));
    }
    if !url_path.ends_with('/') {
        return Ok(Resolved::Dir);
    }
    // index.html may itself be a symlink: the same check.
    match cpath.join("index.html").canonicalize() {
        Ok(p) if p.starts_with(root) => Ok(Resolved::File(p)),
        Ok(_) => Err(403),
        Err(_) => Err(404),
    }
}

/// The `301` of a directory named without its trailing slash.
fn redirect(req: &Request) -> Response {
    // One leading slash: `//host/dir` must not become a redirect to another host.
    let mut loc = format!("/{}/", req.path().trim_start_matches('/'));
    if let Some(q) = req.query() {
        loc.push('?');
        loc.push_str(q);
    }
    Response::text(301, "moved\n").with_header("Location", loc)
}

/// The response for `req` from the static root `root` (canonical: no symlinks, absolute),
/// without a cache ([`FileCache::response`] gives the same answers).
pub fn static_response(root: &Path, req: &Request) -> Response {
    match resolve(root, req.path()) {
        Ok(Resolved::File(path)) => file_response(req, &path),
        Ok(Resolved::Dir) => redirect(req),
        Err(s) => Response::error(s),
    }
}

/// What the head of a file response is built from (kept by [`FileCache`] between requests).
#[derive(Debug)]
struct FileMeta {
    mime: &'static str,
    etag: String,
    mtime: Option<SystemTime>,
    last_modified: Option<String>,
    len: u64,
}

impl FileMeta {
    fn of(path: &Path, meta: &Metadata) -> Self {
        let mtime = meta.modified().ok();
        let nanos = mtime
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        FileMeta {
            mime: mime_type(path),
            etag: format!("\"{:x}-{:x}\"", meta.len(), nanos),
            mtime,
            last_modified: mtime.map(httpdate::fmt_http_date),
            len: meta.len(),
        }
    }
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
    match open_file(path) {
        Ok((file, meta)) => respond(req, &FileMeta::of(path, &meta), |start, count| {
            file_body(file, start, count)
        }),
        Err(s) => Response::error(s),
    }
}

/// Open a regular file: `Err(403)` when permission is denied, `Err(404)` when it is missing or
/// not a regular file.
fn open_file(path: &Path) -> Result<(File, Metadata), u16> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Err(403),
        Err(_) => return Err(404),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok((file, meta)),
        _ => Err(404),
    }
}

/// `count` bytes of `file` from `start`, sent as the socket drains.
fn file_body(file: File, start: u64, count: u64) -> Result<Body, u16> {
    Ok(Body::File(FileBody {
        file: Arc::new(file),
        pos: start,
        remaining: count,
    }))
}

/// `count` bytes of a cached file's content from `start`.
fn bytes_body(content: &Bytes, start: u64, count: u64) -> Result<Body, u16> {
    let a = usize::try_from(start).map_err(|_| 500u16)?;
    let n = usize::try_from(count).map_err(|_| 500u16)?;
    let b = a.checked_add(n).ok_or(500u16)?;
    if b > content.len() {
        return Err(500);
    }
    Ok(Body::Bytes(content.slice(a..b)))
}

/// The response for a file described by `m`: validators, conditionals (`304`), ranges (`206`,
/// `416`), `If-Range`. `body(start, count)` gives the bytes to send; the same for files read
/// from disk and from the cache, so both answer alike.
fn respond(
    req: &Request,
    m: &FileMeta,
    body: impl FnOnce(u64, u64) -> Result<Body, u16>,
) -> Response {
    let len = m.len;
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), m.mime.into()),
        ("ETag".into(), m.etag.clone()),
        ("Accept-Ranges".into(), "bytes".into()),
    ];
    if let Some(lm) = &m.last_modified {
        headers.push(("Last-Modified".into(), lm.clone()));
    }
    // RFC 9110 §13.2.2: If-None-Match is evaluated first; If-Modified-Since only without it.
    let not_modified = if let Some(inm) = req.header_str("if-none-match") {
        etag_matches(inm, &m.etag)
    } else if let (Some(ims), Some(mt)) = (req.header_str("if-modified-since"), m.mtime) {
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
                    v.trim() == m.etag
                }
                Some(v) => m.last_modified.as_deref() == Some(v.trim()),
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
    match body(start, count) {
        Ok(body) => Response {
            status,
            headers,
            body,
        },
        Err(s) => Response::error(s),
    }
}

/// Default [`CacheConfig::valid`]: a cached answer is used this long without a syscall.
pub const DEFAULT_CACHE_VALID: Duration = Duration::from_secs(1);
/// Default [`CacheConfig::max_file`]: larger files keep only their metadata cached.
pub const DEFAULT_CACHE_MAX_FILE: u64 = 0x1_0000;
/// Default [`CacheConfig::size`]: file content held per core (bytes).
pub const DEFAULT_CACHE_SIZE: usize = 0x100_0000;
/// Default [`CacheConfig::entries`]: cached URL paths per core.
pub const DEFAULT_CACHE_ENTRIES: usize = 0x1000;
/// URL paths longer than this are answered but never cached (bounds the memory of a key).
pub const MAX_CACHED_PATH: usize = 0x400;

/// Limits of each core's [`FileCache`] (`--www-cache-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// A cached answer is used this long without a syscall; after it, one `stat` of the
    /// canonical path revalidates it (device, inode, size, mtime and ctime unchanged) or it is
    /// loaded again. Zero turns the cache off.
    pub valid: Duration,
    /// Files up to this size are held in memory; larger ones keep their canonical path and
    /// validators cached and are opened per request.
    pub max_file: u64,
    /// File content held per core (bytes); the least recently used entries go first.
    pub size: usize,
    /// Cached URL paths per core, found or not (0 turns the cache off).
    pub entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            valid: DEFAULT_CACHE_VALID,
            max_file: DEFAULT_CACHE_MAX_FILE,
            size: DEFAULT_CACHE_SIZE,
            entries: DEFAULT_CACHE_ENTRIES,
        }
    }
}

/// A file's identity and version: a cached file stays valid while these are unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &Metadata) -> Self {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// What a cached URL path answers.
enum Answer {
    /// A regular file under the root, with its content when it is small enough.
    File {
        /// Canonical, checked to be under the root when it was loaded.
        path: PathBuf,
        meta: FileMeta,
        stamp: Stamp,
        content: Option<Bytes>,
    },
    /// A directory named without its trailing slash (`301`).
    Redirect,
    /// An error status: 404 (missing), 403 (traversal, symlink out of the root, permission),
    /// 400 (bad escape).
    Error(u16),
}

struct Entry {
    answer: Answer,
    /// When the answer was loaded or last revalidated.
    validated: Instant,
    /// The cache's use counter at the last hit (least recently used goes first).
    used: u64,
}

impl Entry {
    fn content_len(&self) -> usize {
        match &self.answer {
            Answer::File {
                content: Some(c), ..
            } => c.len(),
            _ => 0,
        }
    }

    /// One `stat` of the canonical path: true when it is still the same file, unchanged.
    /// Redirects and errors are loaded again instead.
    fn still_valid(&self) -> bool {
        match &self.answer {
            Answer::File { path, stamp, .. } => {
                std::fs::metadata(path).is_ok_and(|m| m.is_file() && Stamp::of(&m) == *stamp)
            }
            Answer::Redirect | Answer::Error(_) => false,
        }
    }
}

/// One core's cache of static-file answers, keyed by the URL path as sent (nginx's
/// `open_file_cache` with a small content cache): within [`CacheConfig::valid`] a hit costs no
/// syscall (a large file: its `open` and `fstat`); after it one `stat` revalidates. Not shared
/// between cores, no locks.
///
/// Bounded by [`CacheConfig::entries`] and [`CacheConfig::size`]; when either is reached the
/// least recently used entries are evicted down to 7/8 of both bounds (one sort per eighth of
/// the cache, not per insert).
///
/// Security holds as without the cache: a cached file's canonical path was checked to be under
/// the root when it was loaded, revalidation requires the same device and inode, and a large
/// file opened per request is served only if `fstat` shows that same file unchanged (else the
/// path is resolved again).
pub struct FileCache {
    cfg: CacheConfig,
    map: HashMap<Box<str>, Entry>,
    /// Content bytes held.
    bytes: usize,
    /// The use counter.
    tick: u64,
}

impl std::fmt::Debug for FileCache {
    /// The limits and how full it is, not paths or content.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache")
            .field("cfg", &self.cfg)
            .field("entries", &self.map.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl FileCache {
    /// An empty cache with these limits.
    pub fn new(cfg: CacheConfig) -> Self {
        FileCache {
            cfg,
            map: HashMap::new(),
            bytes: 0,
            tick: 0,
        }
    }

    /// Cached URL paths.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// File content bytes held.
    pub fn content_bytes(&self) -> usize {
        self.bytes
    }

    /// The response for `req` from the static root `root` (canonical), as [`static_response`]
    /// gives it, from the cache when it can. `now` is the core's clock.
    pub fn response(&mut self, root: &Path, req: &Request, now: Instant) -> Response {
        let key = req.path();
        if self.cfg.valid.is_zero() || self.cfg.entries == 0 || key.len() > MAX_CACHED_PATH {
            return static_response(root, req);
        }
        if let Some(e) = self.map.get_mut(key) {
            let fresh = now.saturating_duration_since(e.validated) < self.cfg.valid;
            if fresh || e.still_valid() {
                if !fresh {
                    e.validated = now;
                }
                self.tick += 1;
                e.used = self.tick;
                if let Some(r) = answer(req, &e.answer) {
                    return r;
                }
            }
            self.remove(key);
        }
        self.load(root, req, now)
    }

    /// Resolve, open and (when small) read the file, answer and cache the answer.
    fn load(&mut self, root: &Path, req: &Request, now: Instant) -> Response {
        let (answer, resp) = match resolve(root, req.path()) {
            Err(s) => (Answer::Error(s), Response::error(s)),
            Ok(Resolved::Dir) => (Answer::Redirect, redirect(req)),
            Ok(Resolved::File(path)) => match open_file(&path) {
                Err(s) => (Answer::Error(s), Response::error(s)),
                Ok((file, m)) => {
                    let meta = FileMeta::of(&path, &m);
                    let stamp = Stamp::of(&m);
                    let limit = self.cfg.max_file.min(self.cfg.size as u64);
                    if m.len() <= limit {
                        let Some(content) = read_whole(file, m.len()) else {
                            // It changed while being read: answer without caching.
                            return file_response(req, &path);
                        };
                        let resp = respond(req, &meta, |a, n| bytes_body(&content, a, n));
                        let content = Some(content);
                        let answer = Answer::File {
                            path,
                            meta,
                            stamp,
                            content,
                        };
                        (answer, resp)
                    } else {
                        let resp = respond(req, &meta, |a, n| file_body(file, a, n));
                        let answer = Answer::File {
                            path,
                            meta,
                            stamp,
                            content: None,
                        };
                        (answer, resp)
                    }
                }
            },
        };
        self.insert(req.path(), answer, now);
        resp
    }

    fn insert(&mut self, key: &str, answer: Answer, now: Instant) {
        self.tick += 1;
        let e = Entry {
            answer,
            validated: now,
            used: self.tick,
        };
        self.remove(key);
        self.make_room(e.content_len());
        self.bytes += e.content_len();
        self.map.insert(key.into(), e);
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.remove(key) {
            self.bytes = self.bytes.saturating_sub(e.content_len());
        }
    }

    /// Evict the least recently used entries so that one more entry of `need` content bytes
    /// fits; when a bound is reached, down to 7/8 of both.
    fn make_room(&mut self, need: usize) {
        if self.map.len() < self.cfg.entries && self.bytes + need <= self.cfg.size {
            return;
        }
        let max_n = self.cfg.entries - self.cfg.entries / 8;
        let max_bytes = self.cfg.size - self.cfg.size / 8;
        let mut by_age: Vec<(u64, usize)> = self
            .map
            .values()
            .map(|e| (e.used, e.content_len()))
            .collect();
        by_age.sort_unstable();
        let (mut n, mut bytes) = (self.map.len(), self.bytes);
        let mut cut = None;
        for (used, len) in by_age {
            if n < max_n && bytes + need <= max_bytes {
                break;
            }
            n -= 1;
            bytes = bytes.saturating_sub(len);
            cut = Some(used);
        }
        if let Some(cut) = cut {
            // Use counts are unique: exactly the entries counted above go.
            self.map.retain(|_, e| e.used > cut);
            self.bytes = bytes;
        }
    }
}

/// The response from a cached answer; `None` when a large file is gone or changed (the caller
/// resolves the path again).
fn answer(req: &Request, a: &Answer) -> Option<Response> {
    match a {
        Answer::Error(s) => Some(Response::error(*s)),
        Answer::Redirect => Some(redirect(req)),
        Answer::File {
            meta,
            content: Some(c),
            ..
        } => Some(respond(req, meta, |s, n| bytes_body(c, s, n))),
        Answer::File {
            path,
            meta,
            stamp,
            content: None,
        } => {
            let (file, m) = open_file(path).ok()?;
            if Stamp::of(&m) != *stamp {
                return None;
            }
            Some(respond(req, meta, |s, n| file_body(file, s, n)))
        }
    }
}

/// The whole file of `len` bytes; `None` if it is not that long any more.
fn read_whole(file: File, len: u64) -> Option<Bytes> {
    let mut v = Vec::with_capacity(usize::try_from(len).ok()?);
    file.take(len.saturating_add(1)).read_to_end(&mut v).ok()?;
    (v.len() as u64 == len).then(|| Bytes::from(v))
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

    /// A fresh static root (canonical) with `n` files `f{i}.txt` of `size` bytes.
    fn root_with(name: &str, n: usize, size: usize) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ringwire-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            std::fs::write(d.join(format!("f{i}.txt")), vec![b'a'; size]).unwrap();
        }
        d.canonicalize().unwrap()
    }

    fn get(c: &mut FileCache, root: &Path, path: &str, now: Instant) -> Response {
        c.response(root, &Request::new("GET", path, &[]), now)
    }

    fn bytes_of(r: &Response) -> &[u8] {
        match &r.body {
            Body::Bytes(b) => b,
            other => panic!("not cached bytes: {other:?}"),
        }
    }

    #[test]
    fn cache_entries_bound_one_over_evicts_least_recently_used() {
        let root = root_with("entries", 0, 0);
        let mut c = FileCache::new(CacheConfig {
            entries: 16,
            ..Default::default()
        });
        let now = Instant::now();
        for i in 0..16 {
            assert_eq!(get(&mut c, &root, &format!("/m{i}"), now).status, 404);
        }
        assert_eq!(c.len(), 16);
        // /m0 is used again: /m1 is now the least recently used.
        get(&mut c, &root, "/m0", now);
        get(&mut c, &root, "/m16", now);
        assert!(c.len() <= 16);
        assert!(c.map.contains_key("/m0") && c.map.contains_key("/m16"));
        assert!(!c.map.contains_key("/m1"));
        // A flood of missing paths never grows it; a hot entry stays.
        for i in 0..1000 {
            get(&mut c, &root, &format!("/flood{i}"), now);
            get(&mut c, &root, "/m0", now);
            assert!(c.len() <= 16);
        }
        assert!(c.map.contains_key("/m0"));
        // Paths past MAX_CACHED_PATH are answered, not cached.
        let long = format!("/{}", "x".repeat(MAX_CACHED_PATH));
        assert_eq!(get(&mut c, &root, &long, now).status, 404);
        assert!(!c.map.contains_key(long.as_str()));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn cache_size_bound_one_over() {
        let root = root_with("size", 12, 100);
        std::fs::write(root.join("big.bin"), vec![7u8; 101]).unwrap();
        let mut c = FileCache::new(CacheConfig {
            max_file: 100,
            size: 1000,
            ..Default::default()
        });
        let now = Instant::now();
        for i in 0..10 {
            let r = get(&mut c, &root, &format!("/f{i}.txt"), now);
            assert_eq!(bytes_of(&r), &[b'a'; 100]);
        }
        assert_eq!(c.content_bytes(), 1000);
        get(&mut c, &root, "/f10.txt", now);
        assert!(c.content_bytes() <= 1000);
        assert!(!c.map.contains_key("/f0.txt") && c.map.contains_key("/f10.txt"));
        // One byte over max_file: metadata only, read from disk per request.
        let before = c.content_bytes();
        for _ in 0..2 {
            let r = get(&mut c, &root, "/big.bin", now);
            assert!(matches!(r.body, Body::File(ref f) if f.remaining() == 101));
        }
        assert_eq!(c.content_bytes(), before);
        assert!(c.map.contains_key("/big.bin"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn cache_revalidates_after_the_window_only() {
        let root = root_with("valid", 1, 10);
        let mut c = FileCache::new(CacheConfig::default());
        let t0 = Instant::now();
        let r = get(&mut c, &root, "/f0.txt", t0);
        let etag = r
            .headers
            .iter()
            .find(|(n, _)| n == "ETag")
            .unwrap()
            .1
            .clone();
        std::fs::write(root.join("f0.txt"), "changed!").unwrap();
        // Within the window: the cached answer, no syscall.
        let r = get(&mut c, &root, "/f0.txt", t0 + Duration::from_millis(500));
        assert_eq!(bytes_of(&r), &[b'a'; 10]);
        // Past it: one stat sees the change.
        let r = get(&mut c, &root, "/f0.txt", t0 + Duration::from_millis(1500));
        assert_eq!(bytes_of(&r), b"changed!");
        assert_ne!(r.headers.iter().find(|(n, _)| n == "ETag").unwrap().1, etag);
        // Deleted: 404 after the window.
        std::fs::remove_file(root.join("f0.txt")).unwrap();
        let r = get(&mut c, &root, "/f0.txt", t0 + Duration::from_millis(3000));
        assert_eq!(r.status, 404);
        // A symlink out of the root swapped in for a cached file: 403 after the window.
        std::fs::write(root.join("f1.txt"), "inside").unwrap();
        get(&mut c, &root, "/f1.txt", t0 + Duration::from_millis(3000));
        let outside = root.with_extension("outside");
        std::fs::write(&outside, "outside").unwrap();
        std::fs::remove_file(root.join("f1.txt")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("f1.txt")).unwrap();
        let r = get(&mut c, &root, "/f1.txt", t0 + Duration::from_millis(4500));
        assert_eq!(r.status, 403);
        let _ = std::fs::remove_file(&outside);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn cache_large_file_replaced_within_the_window_is_resolved_again() {
        let root = root_with("replaced", 0, 0);
        std::fs::write(root.join("big.bin"), vec![1u8; 200]).unwrap();
        let mut c = FileCache::new(CacheConfig {
            max_file: 100,
            ..Default::default()
        });
        let now = Instant::now();
        get(&mut c, &root, "/big.bin", now);
        // A new inode under the same name: fstat of the opened file differs.
        std::fs::write(root.join("new.bin"), vec![2u8; 300]).unwrap();
        std::fs::rename(root.join("new.bin"), root.join("big.bin")).unwrap();
        let r = get(&mut c, &root, "/big.bin", now);
        assert!(matches!(r.body, Body::File(ref f) if f.remaining() == 300));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn cache_off_with_zero_window_or_entries() {
        let root = root_with("off", 1, 10);
        for cfg in [
            CacheConfig {
                valid: Duration::ZERO,
                ..Default::default()
            },
            CacheConfig {
                entries: 0,
                ..Default::default()
            },
        ] {
            let mut c = FileCache::new(cfg);
            let r = get(&mut c, &root, "/f0.txt", Instant::now());
            assert!(matches!(r.body, Body::File(_)));
            assert!(c.is_empty());
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
