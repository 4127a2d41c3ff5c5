//! `multipart/form-data` uploads streamed to disk (the suite's "Post Big Files").
//!
//! [`HttpApp::upload`](super::HttpApp::upload) adds a `POST` route whose body goes through the
//! sans-IO parser [`ringwire_http1::multipart`] piece by piece as it arrives: file parts are
//! written to a temporary file in [`UploadConfig::dir`] (`.ringwire-upload-<random>.part`) and
//! linked to their final name when the part ends; parts smaller than [`UploadConfig::min_size`]
//! stay in memory instead; boundaries are removed; other fields are kept in memory (bounded by
//! [`UploadConfig::max_field`]). Memory does not grow with the body: a 1 GiB upload is held as
//! one read's worth at a time.
//!
//! Hooks ([`UploadHooks`]), in order, per file part: `before_create` (before the temporary file
//! exists; `false` skips the part), `before_save` (rename or refuse the finished file),
//! `after_save`; per other field: `on_field`. The answer is `200` with a JSON summary:
//! `{"files":[{"field":…,"name":…,"size":…,"stored":"disk"|"memory"}],"fields":[…],"refused":[…]}`.
//!
//! Names are made safe ([`safe_file_name`]): the last path component only, no control
//! characters, no leading dots, at most 255 bytes; an existing file is never overwritten
//! (`name`, `name.1`, `name.2`…).
//!
//! Errors: a malformed body 400, a part or body over its limit 413, a non-multipart request 415,
//! a disk error 500; temporary files of a failed or abandoned upload are removed. The body is
//! still read to its end after an error (the answer comes after it).
//!
//! Disk writes are plain `write` calls on the core's thread (the page cache absorbs them);
//! io_uring writes are not used yet.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ringwire_http1::multipart::{
    Multipart, MultipartError, MultipartEvent, MultipartLimits, boundary_of,
};

use super::{BodySink, Request, Response};

/// Default [`UploadConfig::max_file`]: 4 GiB.
pub const DEFAULT_MAX_FILE: u64 = 4 << 30;
/// Default [`UploadConfig::max_body`]: 4 GiB.
pub const DEFAULT_MAX_BODY: u64 = 4 << 30;
/// Default [`UploadConfig::max_field`]: 64 KiB.
pub const DEFAULT_MAX_FIELD: usize = 0x1_0000;
/// Default [`UploadConfig::max_memory`]: 1 MiB per upload (fields and in-memory files).
pub const DEFAULT_MAX_MEMORY: usize = 0x10_0000;
/// Longest saved file name, bytes.
pub const MAX_NAME: usize = 255;

/// A file part about to be stored (for `before_create`).
#[derive(Debug, Clone, Copy)]
pub struct FilePart<'a> {
    /// The form field.
    pub field: &'a str,
    /// The file name, already made safe.
    pub name: &'a str,
    /// Its Content-Type.
    pub content_type: Option<&'a str>,
}

/// A received file.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    /// The form field.
    pub field: String,
    /// The (safe) file name; after saving, the name it was saved as.
    pub name: String,
    /// Its Content-Type.
    pub content_type: Option<String>,
    /// Bytes.
    pub size: u64,
    /// Where it is on disk (the temporary file in `before_save`, the final one after);
    /// `None` when it stayed in memory.
    pub path: Option<PathBuf>,
    /// The content when it stayed in memory (smaller than `min_size`).
    pub data: Option<Bytes>,
}

/// What `before_save` decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveAs {
    /// Save under the name it came with.
    Keep,
    /// Save under this name (made safe again).
    Rename(String),
    /// Do not save it (the temporary file is removed).
    Refuse,
}

type CreateFn = dyn Fn(&Request, &FilePart<'_>) -> bool + Send + Sync;
type BeforeSaveFn = dyn Fn(&Request, &UploadedFile) -> SaveAs + Send + Sync;
type AfterSaveFn = dyn Fn(&Request, &UploadedFile) + Send + Sync;
type FieldFn = dyn Fn(&Request, &str, &[u8]) + Send + Sync;

/// The upload hooks (each optional).
#[derive(Clone, Default)]
pub struct UploadHooks {
    /// Before a file part's temporary file is created; `false` skips (refuses) the part.
    pub before_create: Option<Arc<CreateFn>>,
    /// When a file part is complete, before it is saved: keep, rename or refuse.
    pub before_save: Option<Arc<BeforeSaveFn>>,
    /// After a file was saved (or, below `min_size`, received in memory).
    pub after_save: Option<Arc<AfterSaveFn>>,
    /// A non-file field arrived: name and value.
    pub on_field: Option<Arc<FieldFn>>,
}

/// Upload settings.
#[derive(Clone)]
pub struct UploadConfig {
    /// Where files are saved.
    pub dir: PathBuf,
    /// The route (`POST`).
    pub path: String,
    /// File parts smaller than this stay in memory (0: every file goes to disk).
    pub min_size: u64,
    /// Largest file part, 413 past it.
    pub max_file: u64,
    /// Largest request body, 413 past it (the codec's limit for this route).
    pub max_body: u64,
    /// Largest non-file field, 413 past it.
    pub max_field: usize,
    /// Most bytes one upload keeps in memory (fields and in-memory files), 413 past it.
    pub max_memory: usize,
    /// The parser's limits (parts, part head, preamble).
    pub limits: MultipartLimits,
    /// The hooks.
    pub hooks: UploadHooks,
}

impl std::fmt::Debug for UploadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadConfig")
            .field("dir", &self.dir)
            .field("path", &self.path)
            .field("min_size", &self.min_size)
            .field("max_file", &self.max_file)
            .field("max_body", &self.max_body)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl UploadConfig {
    /// Uploads to `POST /upload`, saved in `dir`, with the default limits.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        UploadConfig {
            dir: dir.into(),
            path: "/upload".into(),
            min_size: 0,
            max_file: DEFAULT_MAX_FILE,
            max_body: DEFAULT_MAX_BODY,
            max_field: DEFAULT_MAX_FIELD,
            max_memory: DEFAULT_MAX_MEMORY,
            limits: MultipartLimits::default(),
            hooks: UploadHooks::default(),
        }
    }
}

/// The last path component of `name`, without control characters or leading dots, at most
/// [`MAX_NAME`] bytes; `"upload"` when nothing is left.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut s: String = last
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_owned();
    while s.len() > MAX_NAME {
        s.pop();
    }
    if s.is_empty() { "upload".into() } else { s }
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

enum Store {
    /// Not a file part, or a refused one: dropped.
    Skip,
    /// A field: its name and value.
    Field(String, Vec<u8>),
    /// A file, in memory until `min_size`, then in its temporary file.
    File {
        info: UploadedFile,
        mem: Vec<u8>,
        tmp: Option<(PathBuf, File)>,
    },
}

/// Why an upload failed: the status and a short text.
struct Failure(u16, String);

/// The body sink of one upload.
pub(crate) struct UploadSink {
    cfg: Arc<UploadConfig>,
    parser: Option<Multipart>,
    cur: Store,
    memory: usize,
    failed: Option<Failure>,
    files: Vec<UploadedFile>,
    fields: Vec<(String, usize)>,
    refused: Vec<String>,
}

impl UploadSink {
    pub(crate) fn new(cfg: Arc<UploadConfig>, req: &Request) -> Self {
        let ct = req.header_str("content-type").unwrap_or_default();
        let (parser, failed) = match boundary_of(ct) {
            None => (
                None,
                Some(Failure(
                    415,
                    "expected multipart/form-data with a boundary".into(),
                )),
            ),
            Some(b) => match Multipart::new(b, cfg.limits) {
                Ok(p) => (Some(p), None),
                Err(e) => (None, Some(Failure(e.status(), e.to_string()))),
            },
        };
        UploadSink {
            cfg,
            parser,
            cur: Store::Skip,
            memory: 0,
            failed,
            files: Vec::new(),
            fields: Vec::new(),
            refused: Vec::new(),
        }
    }

    fn fail(&mut self, status: u16, why: impl Into<String>) {
        if self.failed.is_none() {
            self.failed = Some(Failure(status, why.into()));
        }
        self.discard_current();
    }

    fn discard_current(&mut self) {
        if let Store::File {
            tmp: Some((p, _)), ..
        } = &self.cur
        {
            let _ = std::fs::remove_file(p);
        }
        self.cur = Store::Skip;
    }

    fn on_event(&mut self, req: &Request, ev: MultipartEvent<'_>) {
        if self.failed.is_some() {
            return;
        }
        match ev {
            MultipartEvent::Head(h) => {
                self.cur = match h.filename {
                    None => Store::Field(h.name.to_owned(), Vec::new()),
                    Some(f) => {
                        let name = safe_file_name(f);
                        let part = FilePart {
                            field: h.name,
                            name: &name,
                            content_type: h.content_type,
                        };
                        let ok = match &self.cfg.hooks.before_create {
                            Some(hook) => guard(|| hook(req, &part)).unwrap_or(false),
                            None => true,
                        };
                        if ok {
                            Store::File {
                                info: UploadedFile {
                                    field: h.name.to_owned(),
                                    name,
                                    content_type: h.content_type.map(str::to_owned),
                                    size: 0,
                                    path: None,
                                    data: None,
                                },
                                mem: Vec::new(),
                                tmp: None,
                            }
                        } else {
                            self.refused.push(name);
                            Store::Skip
                        }
                    }
                };
            }
            MultipartEvent::Data(d) => self.on_data(d),
            MultipartEvent::PartEnd => self.on_part_end(req),
        }
    }

    fn on_data(&mut self, d: &[u8]) {
        let (min, max_file, max_field, max_mem) = (
            self.cfg.min_size,
            self.cfg.max_file,
            self.cfg.max_field,
            self.cfg.max_memory,
        );
        let err = match &mut self.cur {
            Store::Skip => None,
            Store::Field(_, v) => {
                if v.len() + d.len() > max_field || self.memory + d.len() > max_mem {
                    Some((413, "form field too large".to_owned()))
                } else {
                    self.memory += d.len();
                    v.extend_from_slice(d);
                    None
                }
            }
            Store::File { info, mem, tmp } => {
                info.size += d.len() as u64;
                if info.size > max_file {
                    Some((413, format!("file {} too large", info.name)))
                } else if tmp.is_none() && info.size < min {
                    if self.memory + d.len() > max_mem {
                        Some((413, "uploads kept in memory too large".to_owned()))
                    } else {
                        self.memory += d.len();
                        mem.extend_from_slice(d);
                        None
                    }
                } else {
                    let r = (|| -> std::io::Result<()> {
                        if tmp.is_none() {
                            *tmp = Some(temp_file(&self.cfg.dir)?);
                        }
                        if let Some((_, f)) = tmp.as_mut() {
                            if !mem.is_empty() {
                                f.write_all(mem)?;
                                self.memory -= mem.len();
                                *mem = Vec::new();
                            }
                            f.write_all(d)?;
                        }
                        Ok(())
                    })();
                    r.err().map(|e| {
                        tracing::warn!(error = %e, dir = %self.cfg.dir.display(), "upload: write failed");
                        (500, "could not store the file".to_owned())
                    })
                }
            }
        };
        if let Some((s, why)) = err {
            self.fail(s, why);
        }
    }

    fn on_part_end(&mut self, req: &Request) {
        match std::mem::replace(&mut self.cur, Store::Skip) {
            Store::Skip => {}
            Store::Field(name, v) => {
                if let Some(hook) = &self.cfg.hooks.on_field {
                    let _ = guard(|| hook(req, &name, &v));
                }
                self.fields.push((name, v.len()));
            }
            Store::File { mut info, mem, tmp } => {
                if tmp.is_none() {
                    info.data = Some(Bytes::from(mem));
                }
                let tmp_path = tmp.map(|(p, f)| {
                    drop(f);
                    p
                });
                info.path.clone_from(&tmp_path);
                let decision = match &self.cfg.hooks.before_save {
                    Some(h) => guard(|| h(req, &info)).unwrap_or(SaveAs::Refuse),
                    None => SaveAs::Keep,
                };
                let name = match decision {
                    SaveAs::Keep => info.name.clone(),
                    SaveAs::Rename(n) => safe_file_name(&n),
                    SaveAs::Refuse => {
                        if let Some(p) = &tmp_path {
                            let _ = std::fs::remove_file(p);
                        }
                        self.refused.push(info.name);
                        return;
                    }
                };
                if let Some(p) = &tmp_path {
                    match link_unique(p, &self.cfg.dir, &name) {
                        Ok((final_path, final_name)) => {
                            info.path = Some(final_path);
                            info.name = final_name;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "upload: could not save {name}");
                            let _ = std::fs::remove_file(p);
                            self.fail(500, "could not save the file");
                            return;
                        }
                    }
                    let _ = std::fs::remove_file(p);
                } else {
                    info.name = name;
                }
                if let Some(h) = &self.cfg.hooks.after_save {
                    let _ = guard(|| h(req, &info));
                }
                self.files.push(info);
            }
        }
    }
}

/// Run a hook; a panic counts as `None` (the hook's default answer).
fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// A new temporary file in `dir` (never an existing one).
fn temp_file(dir: &Path) -> std::io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..8 {
        let mut r = [0u8; 8];
        crate::stun::fill_random(&mut r);
        let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let p = dir.join(format!(".ringwire-upload-{name}.part"));
        match File::options().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary file")))
}

/// Link `tmp` as `dir/name`, or `name.1`, `name.2`… if taken (never overwrites).
fn link_unique(tmp: &Path, dir: &Path, name: &str) -> std::io::Result<(PathBuf, String)> {
    for i in 0..1000u32 {
        let n = if i == 0 {
            name.to_owned()
        } else {
            format!("{name}.{i}")
        };
        let target = dir.join(&n);
        match std::fs::hard_link(tmp, &target) {
            Ok(()) => return Ok((target, n)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free name"))
}

impl BodySink for UploadSink {
    fn data(&mut self, req: &Request, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let Some(mut p) = self.parser.take() else {
            return;
        };
        let r = p.feed(chunk, &mut |ev| self.on_event(req, ev));
        self.parser = Some(p);
        if let Err(e) = r {
            self.fail(e.status(), e.to_string());
        }
    }

    fn finish(mut self: Box<Self>, _req: &Request) -> Response {
        if self.failed.is_none()
            && let Some(p) = self.parser.as_mut()
            && let Err(e) = p.finish()
        {
            let e: MultipartError = e;
            self.fail(e.status(), e.to_string());
        }
        if let Some(Failure(status, why)) = self.failed.take() {
            // Files saved before the failure stay (their hooks ran); the reply says why.
            return Response::text(status, format!("{status} {why}\n"));
        }
        let mut j = String::from("{\"files\":[");
        for (i, f) in self.files.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            j.push_str("{\"field\":");
            json_str(&f.field, &mut j);
            j.push_str(",\"name\":");
            json_str(&f.name, &mut j);
            j.push_str(&format!(
                ",\"size\":{},\"stored\":\"{}\"}}",
                f.size,
                if f.path.is_some() { "disk" } else { "memory" }
            ));
        }
        j.push_str("],\"fields\":[");
        for (i, (n, len)) in self.fields.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            j.push_str("{\"name\":");
            json_str(n, &mut j);
            j.push_str(&format!(",\"size\":{len}}}"));
        }
        j.push_str("],\"refused\":[");
        for (i, n) in self.refused.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            json_str(n, &mut j);
        }
        j.push_str("]}\n");
        Response::bytes(200, "application/json", j)
    }
}

impl Drop for UploadSink {
    /// An abandoned upload (connection gone mid-body) leaves no temporary file.
    fn drop(&mut self) {
        self.discard_current();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        assert_eq!(safe_file_name("../evil"), "evil");
        assert_eq!(safe_file_name("..\\..\\win.ini"), "win.ini");
        assert_eq!(safe_file_name("/etc/passwd"), "passwd");
        assert_eq!(safe_file_name(".."), "upload");
        assert_eq!(safe_file_name(".hidden"), "hidden");
        assert_eq!(safe_file_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(safe_file_name(""), "upload");
        assert_eq!(safe_file_name(&"x".repeat(300)).len(), MAX_NAME);
    }
}
