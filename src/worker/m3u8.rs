//! M3U8 uploads, the way the official upload SDKs do them (`docs/reference/vod-api.md` §8.1, `uploadLocalM3u8`
//! / `uploadWebM3u8`): one CreateUploadVideo for the playlist's name; every file the playlist
//! refers to goes to `UploadAddress.ObjectPrefix + <its base name>`; the playlist, rewritten so
//! that it names those files by base name only, goes last to `UploadAddress.FileName`. VOD
//! reports the upload complete when the playlist arrives, so it must come after the segments.
//!
//! Beyond the SDKs:
//! * `#EXT-X-MAP` files (fMP4 initialisation sections) are uploaded and rewritten like segments.
//!   `#EXT-X-KEY` files are too when their URI is relative; a URI with a scheme (a key server,
//!   `skd://`, `data:`) is left as it is, since copying a key next to public segments would
//!   defeat the encryption.
//! * A file that several lines name (`#EXT-X-BYTERANGE` playlists) is uploaded once; two
//!   different files with the same base name are refused, since they would overwrite each other.
//! * Master playlists, nested playlists and other tags that refer to files (`#EXT-X-PART`, ...)
//!   are refused: one VOD video holds one media playlist.
//! * Local files must lie under `VOD_INGEST_SOURCE_ROOTS` (checked on the lexical path, then on
//!   the canonical one, so neither `..` nor a symlink leads out); remote files go through the
//!   same SSRF policy as remote sources. Relative URIs are percent-decoded to find local files.
//! * Every object is one PutObject (CRC-64 checked by the OSS client), so a file over 5 GiB is
//!   refused. A retried job uploads every file again: PutObject is idempotent and segments are
//!   small, so no checkpoint is kept.
//!
//! This module only reads, checks and rewrites the playlist and says where each file goes
//! ([`Playlist`]); the worker sends it down the shared upload path (`upload.rs`), with the same
//! media write, credential renewal, per-request retries and progress as any other upload.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt as _;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::{JobError, WorkerConfig};
use crate::jobs::{Job, JobKind, JobMessage, Source};
use crate::source::{OpenedSource, SourceError};
use crate::vod::UploadAddress;

/// Larger than any real media playlist (a day of 2-second segments is ~3 MB): a bigger "playlist"
/// is a mislabelled media file, and reading it into memory would be a mistake.
const PLAYLIST_LIMIT: u64 = 16 * 1024 * 1024;

/// OSS's limit for one PutObject.
const PUT_OBJECT_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// What players and the official SDKs send for playlists.
pub(super) const PLAYLIST_CONTENT_TYPE: &str = "application/x-mpegURL";

/// Characters escaped when a base name is written back into the playlist: what would end or
/// change the meaning of a URI line or a quoted attribute (a `:` would make `a:b.ts` a URI with
/// the scheme `a`). Non-ASCII is always escaped.
const NAME_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b':')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Whether a job is an M3U8 upload: a video whose VOD file name is a playlist.
pub(super) fn applies(job: &Job, message: &JobMessage) -> bool {
    job.kind() == JobKind::Video
        && message
            .file_name
            .as_deref()
            .is_some_and(|n| n.to_ascii_lowercase().ends_with(".m3u8"))
}

/// Why a playlist cannot be uploaded as it is.
#[derive(Debug, thiserror::Error)]
pub enum PlaylistError {
    #[error("the playlist is not a usable M3U8 media playlist: {0}")]
    Invalid(String),
    #[error("the playlist cannot be uploaded: {0}")]
    Unsupported(String),
    #[error("{what} {uri:?} (playlist line {line}) resolves to {}, which is outside VOD_INGEST_SOURCE_ROOTS; keep the playlist's files under an allowed root (or add their directory to VOD_INGEST_SOURCE_ROOTS) and submit the job again", path.display())]
    OutsideRoots {
        what: RefKind,
        uri: String,
        line: usize,
        path: PathBuf,
    },
    #[error("{what} {uri:?} (playlist line {line}) at {}: {source}; put the file there or fix the playlist, then submit the job again", path.display())]
    Io {
        what: RefKind,
        uri: String,
        line: usize,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {uri:?} (playlist line {line}): {source}")]
    Remote {
        what: RefKind,
        uri: String,
        line: usize,
        #[source]
        source: SourceError,
    },
    #[error("{first:?} (playlist line {first_line}) and {second:?} (line {second_line}) are different files with the same name {name:?}; in VOD they would be stored under one key, so rename one of them and submit the job again")]
    Collision {
        name: String,
        first: String,
        first_line: usize,
        second: String,
        second_line: usize,
    },
    #[error("{what} {uri:?} (playlist line {line}) is {size} bytes; files in a playlist are stored with one PutObject each, which OSS limits to 5 GiB: cut the stream into smaller segments")]
    TooLarge {
        what: RefKind,
        uri: String,
        line: usize,
        size: u64,
    },
}

impl PlaylistError {
    pub fn code(&self) -> &'static str {
        match self {
            PlaylistError::Invalid(_) => "InvalidPlaylist",
            PlaylistError::Unsupported(_) => "UnsupportedPlaylist",
            PlaylistError::OutsideRoots { .. } => "SourceNotAllowed",
            PlaylistError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => "SourceNotFound",
                std::io::ErrorKind::PermissionDenied => "SourcePermissionDenied",
                _ => "SourceUnreadable",
            },
            PlaylistError::Remote { source, .. } => source.code(),
            PlaylistError::Collision { .. } => "SegmentNameCollision",
            PlaylistError::TooLarge { .. } => "SegmentTooLarge",
        }
    }

    /// Whether another attempt, later, can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            PlaylistError::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            PlaylistError::Remote { source, .. } => source.is_retryable(),
            _ => false,
        }
    }
}

/// What a playlist line refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Segment,
    Map,
    Key,
}

impl std::fmt::Display for RefKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefKind::Segment => "segment",
            RefKind::Map => "EXT-X-MAP file",
            RefKind::Key => "EXT-X-KEY file",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and planning: pure, so that they can be tested without files or servers.

/// A URI in the playlist that names a file to upload.
#[derive(Debug)]
pub(crate) struct Reference {
    /// Index into [`Parsed::lines`].
    pub line: usize,
    pub kind: RefKind,
    pub uri: String,
    /// Where the URI sits in its line: the trimmed line for segments, the quoted value for tags.
    pub span: Range<usize>,
}

#[derive(Debug)]
pub(crate) struct Parsed {
    pub lines: Vec<String>,
    pub refs: Vec<Reference>,
}

pub(crate) fn parse(text: &str) -> Result<Parsed, PlaylistError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect();
    if !lines[0].trim_end().starts_with("#EXTM3U") {
        return Err(PlaylistError::Invalid(
            "its first line is not #EXTM3U; check that the source really is an HLS playlist, or give the job a file_name without .m3u8 to upload it as a plain file".into(),
        ));
    }
    let mut refs = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(tag) = trimmed.strip_prefix('#') {
            let (name, attributes) = tag.split_once(':').unwrap_or((tag, ""));
            let attributes_at = line.len() - line.trim_start().len() + 1 + name.len() + 1;
            match name {
                "EXT-X-STREAM-INF" | "EXT-X-I-FRAME-STREAM-INF" | "EXT-X-MEDIA" => {
                    return Err(PlaylistError::Unsupported(format!(
                        "line {number} (#{name}) makes this a master playlist, which lists other playlists; one VOD video holds one media playlist, so submit each variant's .m3u8 as its own job"
                    )));
                }
                "EXT-X-MAP" => {
                    let (span, uri) = attribute(attributes, "URI").ok_or_else(|| {
                        PlaylistError::Invalid(format!("line {number}: #EXT-X-MAP has no URI"))
                    })?;
                    refs.push(Reference {
                        line: index,
                        kind: RefKind::Map,
                        uri: uri.to_owned(),
                        span: span.start + attributes_at..span.end + attributes_at,
                    });
                }
                "EXT-X-KEY" => {
                    // METHOD=NONE has no URI; a URI with a scheme stays where it is.
                    if let Some((span, uri)) = attribute(attributes, "URI") {
                        if url::Url::parse(uri).is_err() {
                            refs.push(Reference {
                                line: index,
                                kind: RefKind::Key,
                                uri: uri.to_owned(),
                                span: span.start + attributes_at..span.end + attributes_at,
                            });
                        }
                    }
                }
                _ if name.starts_with("EXT-X-") && attribute(attributes, "URI").is_some() => {
                    return Err(PlaylistError::Unsupported(format!(
                        "line {number} (#{name}) refers to another file, which this upload cannot carry; remove the tag (or its file) from the playlist and submit the job again"
                    )));
                }
                _ => {}
            }
            continue;
        }
        // URL parsers drop leading and trailing control characters, so `\0#x` would name the
        // playlist itself; no real URI holds one.
        if trimmed.chars().any(char::is_control) {
            return Err(PlaylistError::Invalid(format!(
                "line {number} holds a control character; a segment line is a URI"
            )));
        }
        let path = trimmed.split(['?', '#']).next().unwrap_or(trimmed);
        if is_playlist_name(path) {
            return Err(PlaylistError::Unsupported(format!(
                "line {number} ({trimmed:?}) is itself a playlist; one VOD video holds one media playlist, so submit each media playlist as its own job"
            )));
        }
        let start = line.len() - line.trim_start().len();
        refs.push(Reference {
            line: index,
            kind: RefKind::Segment,
            uri: trimmed.to_owned(),
            span: start..start + trimmed.len(),
        });
    }
    if !refs.iter().any(|r| r.kind == RefKind::Segment) {
        return Err(PlaylistError::Invalid(
            "it lists no segments; a playlist to upload names at least one media file on a line of its own".into(),
        ));
    }
    Ok(Parsed { lines, refs })
}

fn is_playlist_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".m3u8") || lower.ends_with(".m3u")
}

/// The value of attribute `wanted` in an attribute list (`A=1,URI="x",B=...`), with its range
/// inside `list` (without the quotes).
fn attribute<'a>(list: &'a str, wanted: &str) -> Option<(Range<usize>, &'a str)> {
    let mut rest = 0;
    while rest < list.len() {
        let eq = rest + list[rest..].find('=')?;
        let name = list[rest..eq].trim();
        let (value, next) = if list[eq + 1..].starts_with('"') {
            let start = eq + 2;
            let end = list[start..].find('"').map_or(list.len(), |e| start + e);
            (start..end, end + 1)
        } else {
            let start = eq + 1;
            let end = list[start..].find(',').map_or(list.len(), |e| start + e);
            (start..end, end)
        };
        if name == wanted {
            return Some((value.clone(), &list[value]));
        }
        // Skip to the attribute after the next comma.
        rest = match list.get(next..).and_then(|s| s.find(',')) {
            Some(comma) => next + comma + 1,
            None => return None,
        };
    }
    None
}

/// What relative URIs in the playlist are relative to.
#[derive(Debug, Clone)]
pub(crate) enum Base {
    /// The playlist's directory (canonical).
    Local(PathBuf),
    /// The playlist's URL.
    Remote(url::Url),
}

/// Where a referenced file is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Location {
    /// Lexically normalised; canonicalised (and checked again) when opened.
    Local(PathBuf),
    Remote(url::Url),
}

/// One file to upload.
#[derive(Debug)]
pub(crate) struct Resource {
    pub location: Location,
    /// Base name, decoded: the object is stored at `ObjectPrefix + name`.
    pub name: String,
    pub kind: RefKind,
    /// The URI as first written, and its 1-based line, for messages.
    pub uri: String,
    pub line: usize,
}

/// The rewritten playlist and the files it needs.
#[derive(Debug)]
pub(crate) struct Plan {
    pub playlist: String,
    pub resources: Vec<Resource>,
}

pub(crate) fn plan(text: &str, base: &Base, roots: &[PathBuf]) -> Result<Plan, PlaylistError> {
    let Parsed { mut lines, refs } = parse(text)?;
    let mut resources: Vec<Resource> = Vec::new();
    let mut by_location: HashMap<Location, usize> = HashMap::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut names = Vec::with_capacity(refs.len());
    for r in &refs {
        let line = r.line + 1;
        let invalid = |why: BadReference| {
            PlaylistError::Invalid(format!("{} {:?} on line {line} {why}", r.kind, r.uri))
        };
        let location = locate(base, &r.uri).map_err(invalid)?;
        let name = base_name(&location).map_err(invalid)?;
        // On the name it resolves to: `a.m3u%38`, or a URI that resolves to the playlist
        // itself, passes the check on the line as written.
        if is_playlist_name(&name) {
            return Err(PlaylistError::Unsupported(format!(
                "{} {:?} on line {line} is itself a playlist ({name:?}); one VOD video holds one media playlist, so submit each media playlist as its own job",
                r.kind, r.uri
            )));
        }
        if let Location::Local(path) = &location {
            if !roots.iter().any(|root| path.starts_with(root)) {
                return Err(PlaylistError::OutsideRoots {
                    what: r.kind,
                    uri: r.uri.clone(),
                    line,
                    path: path.clone(),
                });
            }
        }
        if !by_location.contains_key(&location) {
            if let Some(&other) = by_name.get(&name) {
                let other = &resources[other];
                return Err(PlaylistError::Collision {
                    name,
                    first: other.uri.clone(),
                    first_line: other.line,
                    second: r.uri.clone(),
                    second_line: line,
                });
            }
            by_location.insert(location.clone(), resources.len());
            by_name.insert(name.clone(), resources.len());
            resources.push(Resource {
                location,
                name: name.clone(),
                kind: r.kind,
                uri: r.uri.clone(),
                line,
            });
        }
        names.push(name);
    }
    for (r, name) in refs.iter().zip(&names) {
        let encoded = utf8_percent_encode(name, NAME_ESCAPES).to_string();
        lines[r.line].replace_range(r.span.clone(), &encoded);
    }
    let mut playlist = lines.join("\n");
    if !playlist.ends_with('\n') {
        playlist.push('\n');
    }
    Ok(Plan {
        playlist,
        resources,
    })
}

/// Why a file the playlist names cannot be uploaded next to it; the message completes "the
/// segment "x" on line N ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BadReference {
    #[error("is not a usable file:// URL")]
    UnusableFileUrl,
    #[error("uses the {0}: scheme; use a path relative to the playlist or an http(s) URL")]
    Scheme(String),
    #[error("is not a valid URL relative to the playlist: {0}")]
    NotAUrl(url::ParseError),
    #[error("does not end in a file name")]
    NoFileName,
    #[error("has the base name {0:?}, which cannot be an object name next to the playlist")]
    UnusableName(String),
}

/// Resolves `uri` against the playlist's location. `Err` says why it cannot be used.
fn locate(base: &Base, uri: &str) -> Result<Location, BadReference> {
    if let Ok(absolute) = url::Url::parse(uri) {
        return match (absolute.scheme(), base) {
            ("http" | "https", _) => Ok(Location::Remote(without_fragment(absolute))),
            ("file", Base::Local(_)) => absolute
                .to_file_path()
                .map(|p| Location::Local(normalize(&p)))
                .map_err(|()| BadReference::UnusableFileUrl),
            (scheme, _) => Err(BadReference::Scheme(scheme.to_owned())),
        };
    }
    match base {
        Base::Local(dir) => {
            let path = uri.split(['?', '#']).next().unwrap_or(uri);
            let decoded = percent_decode_str(path).decode_utf8_lossy();
            // `join` keeps an absolute path as it is.
            Ok(Location::Local(normalize(&dir.join(decoded.as_ref()))))
        }
        Base::Remote(playlist) => playlist
            .join(uri)
            .map(|u| Location::Remote(without_fragment(u)))
            .map_err(BadReference::NotAUrl),
    }
}

fn without_fragment(mut url: url::Url) -> url::Url {
    url.set_fragment(None);
    url
}

/// `.` and `..` resolved without touching the file system (the file may not exist; the roots
/// check must not be fooled by `..`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The decoded base name a file is stored under, query string and fragment excluded.
fn base_name(location: &Location) -> Result<String, BadReference> {
    let name = match location {
        Location::Local(path) => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Location::Remote(url) => url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .unwrap_or_default(),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(BadReference::NoFileName);
    }
    if name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(BadReference::UnusableName(name));
    }
    Ok(name)
}

// ---------------------------------------------------------------------------------------------
// Preparing the upload. Sending it is the shared upload path's (`upload.rs`): the same session,
// media write, credential renewal, retries and progress as any other upload.

/// A playlist checked and ready to send: the files it names, opened, and its rewritten text.
pub(super) struct Playlist {
    /// Base names, the objects' names under `ObjectPrefix`; one per file, in the same order.
    names: Vec<String>,
    files: Vec<OpenedSource>,
    rewritten: Bytes,
}

impl Playlist {
    /// Reads the job's playlist from `source` (the job's `stored` source, opened), plans it and
    /// opens every file it names. Done before VOD is asked for anything: a bad playlist creates
    /// no video and uploads nothing.
    pub async fn open(
        source: OpenedSource,
        stored: &str,
        config: &WorkerConfig,
    ) -> Result<Self, JobError> {
        let base = match (&source, Source::from_stored(stored)) {
            (OpenedSource::Local { path, .. }, _) => Base::Local(
                path.parent()
                    .map(Path::to_owned)
                    .unwrap_or_else(|| PathBuf::from("/")),
            ),
            // Relative URIs resolve against the URL the job names, as the SDKs do.
            (_, Source::Remote(url)) => Base::Remote(url),
            (_, Source::Local(path)) => {
                return Err(JobError::Corrupt(format!(
                    "local source {} did not open as a file",
                    path.display()
                )))
            }
        };
        let text = read_playlist(&source).await?;
        // A spooled remote playlist's file goes now, not after the upload.
        drop(source);

        let plan = plan(&text, &base, &config.source_roots)?;
        let files = open_all(config, &plan).await?;
        let playlist = Self {
            names: plan.resources.into_iter().map(|r| r.name).collect(),
            files,
            rewritten: Bytes::from(plan.playlist),
        };
        tracing::info!(
            files = playlist.files.len(),
            bytes = playlist.size(),
            "M3U8 playlist parsed; its files are readable"
        );
        Ok(playlist)
    }

    /// Bytes to upload: the files and the rewritten playlist.
    pub fn size(&self) -> u64 {
        self.files.iter().map(OpenedSource::len).sum::<u64>() + self.rewritten.len() as u64
    }

    pub fn files(&self) -> &[OpenedSource] {
        &self.files
    }

    /// What goes to `UploadAddress.FileName`, after every file is stored there: VOD reports the
    /// upload complete when the playlist arrives.
    pub fn rewritten(&self) -> &Bytes {
        &self.rewritten
    }

    /// Where each of [`Self::files`] goes for `address`: `ObjectPrefix + <its base name>`.
    pub fn file_keys(&self, address: &UploadAddress) -> Result<Vec<String>, PlaylistError> {
        // §2.1: ObjectPrefix is presumably the playlist's directory; use that if VOD ever
        // leaves it out.
        let prefix = match &address.object_prefix {
            Some(prefix) => {
                if !address.file_name.starts_with(prefix.as_str())
                    || address.file_name[prefix.len()..].contains('/')
                {
                    tracing::warn!(%prefix, key = %address.file_name, "ObjectPrefix is not the playlist's directory; players will not find the segments by their relative names");
                }
                prefix.as_str()
            }
            None => address
                .file_name
                .rfind('/')
                .map_or("", |i| &address.file_name[..=i]),
        };
        self.names
            .iter()
            .map(|name| {
                let key = format!("{prefix}{name}");
                if key == address.file_name {
                    return Err(PlaylistError::Unsupported(format!(
                        "the file {name:?} would be stored under the playlist's own key {key}; rename it and submit the job again"
                    )));
                }
                Ok(key)
            })
            .collect()
    }
}

async fn read_playlist(source: &OpenedSource) -> Result<String, JobError> {
    let len = source.len();
    if len > PLAYLIST_LIMIT {
        return Err(PlaylistError::Invalid(format!(
            "it is {len} bytes, far more than any playlist; check that the source really is an HLS playlist, or give the job a file_name without .m3u8 to upload it as a plain file"
        ))
        .into());
    }
    let mut body = source
        .range(0, len)
        .await
        .map_err(|e| JobError::SourceRead(e.to_string()))?;
    let mut bytes = Vec::with_capacity(len as usize);
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| JobError::SourceRead(e.to_string()))?);
    }
    String::from_utf8(bytes).map_err(|_| {
        PlaylistError::Invalid(
            "it is not UTF-8 text; HLS playlists must be UTF-8 (check that the source really is a playlist)".into(),
        )
        .into()
    })
}

/// Opens every file, in order, a few at a time: local ones only under the roots (checked again
/// after resolving symlinks), remote ones through the SSRF policy.
async fn open_all(config: &WorkerConfig, plan: &Plan) -> Result<Vec<OpenedSource>, JobError> {
    let parallelism = config.part_parallelism.max(1);
    // Over indices, not `&Resource`s: a stream of borrowed items makes the job's future
    // fail the `Send` check the worker's spawn needs ("implementation of `Send` is not
    // general enough", a known compiler limitation with higher-ranked lifetimes).
    let mut opening = futures_util::stream::iter(0..plan.resources.len())
        .map(|i| open_one(config, &plan.resources[i]))
        .buffered(parallelism);
    let mut opened = Vec::with_capacity(plan.resources.len());
    while let Some(result) = opening.next().await {
        opened.push(result?);
    }
    Ok(opened)
}

async fn open_one(config: &WorkerConfig, r: &Resource) -> Result<OpenedSource, PlaylistError> {
    let opened = match &r.location {
        Location::Local(path) => {
            let io = |source| PlaylistError::Io {
                what: r.kind,
                uri: r.uri.clone(),
                line: r.line,
                path: path.clone(),
                source,
            };
            let canonical = tokio::fs::canonicalize(path).await.map_err(io)?;
            if !config
                .source_roots
                .iter()
                .any(|root| canonical.starts_with(root))
            {
                return Err(PlaylistError::OutsideRoots {
                    what: r.kind,
                    uri: r.uri.clone(),
                    line: r.line,
                    path: canonical,
                });
            }
            OpenedSource::local(&canonical).await.map_err(io)?
        }
        Location::Remote(url) => crate::source::open_remote(url, &config.remote)
            .await
            .map_err(|source| PlaylistError::Remote {
                what: r.kind,
                uri: r.uri.clone(),
                line: r.line,
                source,
            })?,
    };
    if opened.len() > PUT_OBJECT_LIMIT {
        return Err(PlaylistError::TooLarge {
            what: r.kind,
            uri: r.uri.clone(),
            line: r.line,
            size: opened.len(),
        });
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(text: &str) -> Result<Plan, PlaylistError> {
        plan(
            text,
            &Base::Local(PathBuf::from("/media/shows/ep1")),
            &[PathBuf::from("/media")],
        )
    }

    fn remote(text: &str) -> Result<Plan, PlaylistError> {
        plan(
            text,
            &Base::Remote(
                url::Url::parse("https://cdn.example.com/hls/ep1/index.m3u8?sig=1").unwrap(),
            ),
            &[],
        )
    }

    fn locations(plan: &Plan) -> Vec<String> {
        plan.resources
            .iter()
            .map(|r| match &r.location {
                Location::Local(p) => p.display().to_string(),
                Location::Remote(u) => u.to_string(),
            })
            .collect()
    }

    #[test]
    fn segments_are_renamed_to_their_base_names_and_comments_are_kept() {
        let plan = local(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n\n# a comment\n#EXTINF:4.0,\nseg0.ts\n#EXTINF:4.0,\n  low/seg1.ts?token=abc  \n#EXTINF:2.5,\n/media/shows/other/seg2.ts\n#EXT-X-ENDLIST",
        )
        .unwrap();
        assert_eq!(
            plan.playlist,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n\n# a comment\n#EXTINF:4.0,\nseg0.ts\n#EXTINF:4.0,\n  seg1.ts  \n#EXTINF:2.5,\nseg2.ts\n#EXT-X-ENDLIST\n"
        );
        assert_eq!(
            locations(&plan),
            [
                "/media/shows/ep1/seg0.ts",
                "/media/shows/ep1/low/seg1.ts",
                "/media/shows/other/seg2.ts"
            ]
        );
        let names: Vec<&str> = plan.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["seg0.ts", "seg1.ts", "seg2.ts"]);
        assert_eq!(plan.resources[1].line, 9);
    }

    /// Found by the `m3u8` fuzz target: `https://cdn/a/TINF:10.0,` was written back as
    /// `TINF:10.0,`, which players (and a second reading) take for a URI with the scheme `tinf`.
    #[test]
    fn names_with_a_colon_are_not_written_back_as_a_scheme() {
        let plan =
            remote("#EXTM3U\n#EXTINF:10.0,\nhttps://cdn.example.com/a/TINF:10.0,\n").unwrap();
        assert_eq!(plan.playlist, "#EXTM3U\n#EXTINF:10.0,\nTINF%3A10.0,\n");
        assert_eq!(plan.resources[0].name, "TINF:10.0,");
        let again = remote(&plan.playlist).unwrap();
        assert_eq!(again.resources[0].name, "TINF:10.0,");
        assert_eq!(
            locations(&again),
            ["https://cdn.example.com/hls/ep1/TINF%3A10.0,"]
        );
    }

    /// Found by the `m3u8` fuzz target: a line of NUL bytes then `#EXT-X-V` resolved (URL
    /// parsers drop the NULs, `#...` is a fragment) to the playlist itself, which was planned as
    /// its own segment; `a.m3u%38` slipped past the nested-playlist check the same way.
    #[test]
    fn lines_that_resolve_to_a_playlist_are_refused() {
        let err = remote("#EXTM3U\n#EXTINF:1,\n\0\0#EXT-X-V\n").unwrap_err();
        assert_eq!(err.code(), "InvalidPlaylist", "{err}");
        assert!(err.to_string().contains("control character"), "{err}");
        for uri in ["a.m3u%38", "https://cdn.example.com/x/ep.M3U"] {
            let err = remote(&format!("#EXTM3U\n#EXTINF:1,\n{uri}\n")).unwrap_err();
            assert_eq!(err.code(), "UnsupportedPlaylist", "{uri}: {err}");
            assert!(err.to_string().contains("is itself a playlist"), "{err}");
        }
    }

    #[test]
    fn crlf_and_a_byte_order_mark_are_accepted() {
        let plan = local("\u{feff}#EXTM3U\r\n#EXTINF:4,\r\na/s.ts\r\n").unwrap();
        assert_eq!(plan.playlist, "#EXTM3U\n#EXTINF:4,\ns.ts\n");
    }

    #[test]
    fn one_file_named_by_several_lines_is_uploaded_once() {
        let plan = local(
            "#EXTM3U\n#EXT-X-BYTERANGE:100@0\nall.ts\n#EXT-X-BYTERANGE:100@100\n./x/../all.ts\n",
        )
        .unwrap();
        assert_eq!(plan.resources.len(), 1);
        assert_eq!(
            plan.playlist,
            "#EXTM3U\n#EXT-X-BYTERANGE:100@0\nall.ts\n#EXT-X-BYTERANGE:100@100\nall.ts\n"
        );
    }

    #[test]
    fn different_files_with_one_base_name_collide() {
        let err = local("#EXTM3U\na/seg.ts\nb/seg.ts\n").unwrap_err();
        assert_eq!(err.code(), "SegmentNameCollision");
        let text = err.to_string();
        assert!(
            text.contains("\"a/seg.ts\" (playlist line 2)") && text.contains("rename"),
            "{text}"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn paths_that_climb_out_of_the_roots_are_refused() {
        let err = local("#EXTM3U\nseg0.ts\n../../../etc/passwd\n").unwrap_err();
        assert_eq!(err.code(), "SourceNotAllowed");
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(
            text.contains("\"../../../etc/passwd\" (playlist line 3) resolves to /etc/passwd")
                && text.contains("VOD_INGEST_SOURCE_ROOTS"),
            "{text}"
        );
        for uri in [
            "/etc/passwd",
            "file:///etc/passwd",
            "%2E%2E/%2E%2E/%2E%2E/etc/passwd",
        ] {
            let err = local(&format!("#EXTM3U\n{uri}\n")).unwrap_err();
            assert_eq!(err.code(), "SourceNotAllowed", "{uri}");
        }
    }

    #[test]
    fn master_and_nested_playlists_are_refused() {
        let err = local("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow/index.m3u8\n").unwrap_err();
        assert_eq!(err.code(), "UnsupportedPlaylist");
        assert!(err.to_string().contains("master playlist"), "{err}");
        let err = local("#EXTM3U\n#EXTINF:4,\nother.M3U8?x=1\n").unwrap_err();
        assert!(err.to_string().contains("is itself a playlist"), "{err}");
        let err = local("#EXTM3U\n#EXT-X-PART:DURATION=1,URI=\"p.mp4\"\ns.mp4\n").unwrap_err();
        assert!(err.to_string().contains("#EXT-X-PART"), "{err}");
    }

    #[test]
    fn what_is_not_a_playlist_is_refused() {
        let err = local("seg0.ts\n").unwrap_err();
        assert_eq!(err.code(), "InvalidPlaylist");
        assert!(err.to_string().contains("#EXTM3U"), "{err}");
        let err = local("#EXTM3U\n#EXT-X-ENDLIST\n").unwrap_err();
        assert!(err.to_string().contains("no segments"), "{err}");
        let err = local("#EXTM3U\nmailto:a@b\n").unwrap_err();
        assert!(err.to_string().contains("mailto: scheme"), "{err}");
    }

    #[test]
    fn map_and_relative_key_files_are_uploaded_and_renamed() {
        let plan = local(
            "#EXTM3U\n#EXT-X-MAP:URI=\"init/main.mp4\",BYTERANGE=\"720@0\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"keys/k1.bin\",IV=0x1\n#EXTINF:4,\nv/s1.m4s\n#EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example.com/k?id=2\"\n#EXTINF:4,\nv/s2.m4s\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:4,\nv/s3.m4s\n",
        )
        .unwrap();
        assert_eq!(
            plan.playlist,
            "#EXTM3U\n#EXT-X-MAP:URI=\"main.mp4\",BYTERANGE=\"720@0\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"k1.bin\",IV=0x1\n#EXTINF:4,\ns1.m4s\n#EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example.com/k?id=2\"\n#EXTINF:4,\ns2.m4s\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:4,\ns3.m4s\n"
        );
        let kinds: Vec<RefKind> = plan.resources.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                RefKind::Map,
                RefKind::Key,
                RefKind::Segment,
                RefKind::Segment,
                RefKind::Segment
            ]
        );
    }

    #[test]
    fn remote_uris_resolve_against_the_playlist_url_and_keep_their_query_for_fetching() {
        let plan = remote(
            "#EXTM3U\n#EXTINF:4,\ns0.ts?auth=xyz\n#EXTINF:4,\n../shared/s1.ts\n#EXTINF:4,\nhttp://other.example.com/a/s2.ts#frag\n#EXTINF:4,\n/root/s%203.ts\n",
        )
        .unwrap();
        assert_eq!(
            locations(&plan),
            [
                "https://cdn.example.com/hls/ep1/s0.ts?auth=xyz",
                "https://cdn.example.com/hls/shared/s1.ts",
                "http://other.example.com/a/s2.ts",
                "https://cdn.example.com/root/s%203.ts"
            ]
        );
        assert_eq!(plan.resources[3].name, "s 3.ts");
        assert_eq!(
            plan.playlist,
            "#EXTM3U\n#EXTINF:4,\ns0.ts\n#EXTINF:4,\ns1.ts\n#EXTINF:4,\ns2.ts\n#EXTINF:4,\ns%203.ts\n"
        );
        let err = remote("#EXTM3U\nfile:///etc/passwd\n").unwrap_err();
        assert!(err.to_string().contains("file: scheme"), "{err}");
        let err = remote("#EXTM3U\nhttps://x.example.com/dir/\n").unwrap_err();
        assert!(
            err.to_string().contains("does not end in a file name"),
            "{err}"
        );
    }

    #[test]
    fn local_names_are_percent_decoded_to_find_files_and_encoded_again_in_the_playlist() {
        let plan = local("#EXTM3U\nmy%20clip%231.ts\nraw name.ts\n").unwrap();
        assert_eq!(
            locations(&plan),
            [
                "/media/shows/ep1/my clip#1.ts",
                "/media/shows/ep1/raw name.ts"
            ]
        );
        assert_eq!(plan.playlist, "#EXTM3U\nmy%20clip%231.ts\nraw%20name.ts\n");
    }

    #[test]
    fn attributes_are_found_by_exact_name() {
        let list = "METHOD=AES-128,X-URI=\"no\",URI=\"yes\",IV=0x1";
        let (range, value) = attribute(list, "URI").unwrap();
        assert_eq!(value, "yes");
        assert_eq!(&list[range], "yes");
        assert_eq!(attribute("METHOD=NONE", "URI"), None);
        assert_eq!(attribute("A=\"x,URI=y\",B=1", "URI"), None);
        assert_eq!(attribute("A=1, URI=\"z\"", "URI").unwrap().1, "z");
    }
}
