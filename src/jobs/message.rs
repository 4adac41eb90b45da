//! The job message producers publish (`docs/design.md`, "Job message"), parsed into a [`JobSpec`]
//! at the boundary: everything after this module handles only valid jobs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::{JobKind, UnknownName};
use crate::vod::{
    CreateUpload, CreateUploadAttachedMediaRequest, CreateUploadImageRequest,
    CreateUploadVideoRequest,
};

/// Video and audio extensions VOD accepts (`docs/reference/vod-api.md` §7).
const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "ts", "3gp", "mpg", "mpeg", "mpe", "dat", "vob", "asf", "avi", "wmv", "flv", "f4v",
    "rm", "rmvb", "mov", "mkv", "m3u8", "dv", "gif", "m2t", "m4v", "mj2", "mjpeg", "mts", "ogg",
    "qt", "swf", "webm", "mp3", "wma", "wav", "aac", "ra", "m4a", "flac", "ape", "ac3", "amr",
    "caf", "acm",
];
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "heic", "webp"];

/// Extensions each attached-media business type accepts.
pub fn attached_media_extensions(business_type: &str) -> Option<&'static [&'static str]> {
    match business_type {
        "watermark" => Some(&["png", "gif", "apng", "mov"]),
        "subtitle" => Some(&["srt", "ass", "stl", "ttml", "vtt"]),
        "material" => Some(&["jpg", "gif", "png", "mp4", "mat", "zip", "apk"]),
        _ => None,
    }
}

/// The message as it arrives. Unknown fields are rejected so a typo (`titel`) is caught
/// instead of silently dropped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub kind: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cate_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_ext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// Where the bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A regular file under one of `VOD_INGEST_SOURCE_ROOTS`, canonicalised.
    Local(PathBuf),
    /// An `http://` or `https://` URL; its host is checked when the job runs.
    Remote(url::Url),
}

impl Source {
    pub fn display(&self) -> String {
        match self {
            Source::Local(path) => path.display().to_string(),
            Source::Remote(url) => url.to_string(),
        }
    }

    /// Parses a stored `ingest_jobs.source` back.
    pub fn from_stored(stored: &str) -> Self {
        match url::Url::parse(stored) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Source::Remote(url),
            _ => Source::Local(PathBuf::from(stored)),
        }
    }
}

/// A job that passed validation.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub job_id: String,
    pub kind: JobKind,
    pub source: Source,
    pub title: String,
    pub file_name: String,
    /// The extension VOD is told about (lower case): `ImageExt` / `MediaExt`, or FileName's.
    pub extension: String,
    /// The message with defaults filled in and `callback_url` folded into `user_data`;
    /// stored as `ingest_jobs.request` and used to build the VOD request.
    pub message: JobMessage,
}

/// A client upload's validated metadata (no source: the client app holds the file).
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub kind: JobKind,
    pub title: String,
    pub file_name: String,
    pub extension: String,
    /// With defaults filled in and `callback_url` folded into `user_data`.
    pub message: JobMessage,
}

struct Metadata {
    title: String,
    file_name: String,
    extension: String,
}

/// Why a message is not a valid job. The text is what goes into the dead-letter header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidJob(pub String);

fn invalid(msg: impl Into<String>) -> InvalidJob {
    InvalidJob(msg.into())
}

/// Checks a producer's `job_id`: 1–64 of `[A-Za-z0-9._:-]`.
pub fn validate_job_id(job_id: &str) -> Result<(), InvalidJob> {
    let ok_len = (1..=64).contains(&job_id.len());
    let ok_chars = job_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(invalid(format!(
            "job_id {job_id:?} is not valid: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
        )))
    }
}

fn extension_of(name: &str) -> Option<String> {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl JobMessage {
    /// Parses JSON bytes; the error says which field is wrong.
    pub fn from_json(bytes: &[u8]) -> Result<Self, InvalidJob> {
        serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("message is not a valid job: {e}")))
    }

    /// Validates the message against the allowed source roots (already canonicalised).
    pub fn validate(mut self, source_roots: &[PathBuf]) -> Result<JobSpec, InvalidJob> {
        let job_id = match non_empty(self.job_id.take()) {
            Some(id) => {
                validate_job_id(&id)?;
                id
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        self.job_id = Some(job_id.clone());
        let kind: JobKind = self
            .kind
            .parse()
            .map_err(|e: UnknownName| invalid(e.to_string()))?;
        let source = resolve_source(&self.source, source_roots)?;
        let base_name = match &source {
            Source::Local(path) => path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned(),
            Source::Remote(url) => url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .map(|s| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .unwrap_or_default(),
        };
        let Metadata {
            title,
            file_name,
            extension,
        } = self.validate_metadata(kind, &base_name)?;
        Ok(JobSpec {
            job_id,
            kind,
            source,
            title,
            file_name,
            extension,
            message: self,
        })
    }
    /// The CreateUpload* call for this (validated) message and a file of `size` bytes.
    pub fn vod_request(&self, kind: JobKind, size: u64) -> CreateUpload {
        let m = self;
        match kind {
            JobKind::Video => CreateUpload::Video(CreateUploadVideoRequest {
                title: m.title.clone().unwrap_or_default(),
                file_name: m.file_name.clone().unwrap_or_default(),
                file_size: Some(size),
                description: m.description.clone(),
                tags: m.tags.clone(),
                cate_id: m.cate_id,
                cover_url: m.cover_url.clone(),
                template_group_id: m.template_group_id.clone(),
                workflow_id: m.workflow_id.clone(),
                storage_location: m.storage_location.clone(),
                app_id: m.app_id.clone(),
                user_data: m.user_data.clone(),
            }),
            JobKind::Image => CreateUpload::Image(CreateUploadImageRequest {
                image_type: m.image_type.clone().unwrap_or_else(|| "default".into()),
                image_ext: m.image_ext.clone(),
                title: m.title.clone(),
                description: m.description.clone(),
                tags: m.tags.clone(),
                cate_id: m.cate_id,
                storage_location: m.storage_location.clone(),
                app_id: m.app_id.clone(),
                user_data: m.user_data.clone(),
                original_file_name: m.file_name.clone(),
            }),
            JobKind::AttachedMedia => {
                CreateUpload::AttachedMedia(CreateUploadAttachedMediaRequest {
                    business_type: m.business_type.clone().unwrap_or_default(),
                    media_ext: m.media_ext.clone(),
                    file_name: m.file_name.clone(),
                    file_size: Some(size),
                    title: m.title.clone(),
                    description: m.description.clone(),
                    tags: m.tags.clone(),
                    cate_ids: m.cate_id.into_iter().collect(),
                    storage_location: m.storage_location.clone(),
                    app_id: m.app_id.clone(),
                    user_data: m.user_data.clone(),
                })
            }
        }
    }

    /// A client upload's metadata (`POST /v1/uploads`): everything but the source, which the
    /// client holds. `file_name` is required: VOD needs its extension.
    pub fn validate_client(mut self) -> Result<ClientSpec, InvalidJob> {
        let kind: JobKind = self
            .kind
            .parse()
            .map_err(|e: UnknownName| invalid(e.to_string()))?;
        let base_name = non_empty(self.file_name.clone()).ok_or_else(|| {
            invalid(
                "file_name is required: the name of the file with its extension (e.g. clip.mp4)",
            )
        })?;
        if base_name.contains('/') || base_name.contains('\\') {
            return Err(invalid(format!(
                "file_name {base_name:?} must be a file name, not a path"
            )));
        }
        let Metadata {
            title,
            file_name,
            extension,
        } = self.validate_metadata(kind, &base_name)?;
        Ok(ClientSpec {
            kind,
            title,
            file_name,
            extension,
            message: self,
        })
    }

    /// Checks and completes everything but the source and the job id: title, file name and
    /// extension, kind-specific fields, tags, user data.
    fn validate_metadata(
        &mut self,
        kind: JobKind,
        base_name: &str,
    ) -> Result<Metadata, InvalidJob> {
        // Trimmed like given names, so that the stored message validates to the same job.
        let base_name = base_name.trim().to_owned();
        let file_name = non_empty(self.file_name.take()).unwrap_or_else(|| base_name.clone());
        self.file_name = Some(file_name.clone());

        let title = match (kind, non_empty(self.title.take())) {
            (_, Some(title)) => title,
            (JobKind::Video, None) => {
                return Err(invalid("title is required for a video job"));
            }
            (_, None) => Path::new(&base_name)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or(&base_name)
                .trim()
                .to_owned(),
        };
        self.title = Some(title.clone());

        let extension = match kind {
            JobKind::Video => {
                let ext = extension_of(&file_name).ok_or_else(|| {
                    invalid(format!(
                        "file_name {file_name:?} has no extension; VOD needs one (e.g. .mp4)"
                    ))
                })?;
                if !VIDEO_EXTENSIONS.contains(&ext.as_str()) {
                    return Err(invalid(format!(
                        "file_name {file_name:?}: .{ext} is not an audio or video format VOD accepts ({})",
                        VIDEO_EXTENSIONS.join(", ")
                    )));
                }
                ext
            }
            JobKind::Image => {
                let image_type = non_empty(self.image_type.take()).unwrap_or("default".into());
                if image_type != "default" && image_type != "cover" {
                    return Err(invalid(format!(
                        "image_type {image_type:?} is not valid: use \"default\" or \"cover\""
                    )));
                }
                self.image_type = Some(image_type);
                let ext = non_empty(self.image_ext.take())
                    .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                    .or_else(|| extension_of(&file_name))
                    .ok_or_else(|| {
                        invalid("image_ext is missing and file_name has no extension")
                    })?;
                if !IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                    return Err(invalid(format!(
                        "image extension {ext:?} is not one VOD accepts ({})",
                        IMAGE_EXTENSIONS.join(", ")
                    )));
                }
                self.image_ext = Some(ext.clone());
                ext
            }
            JobKind::AttachedMedia => {
                let business_type = non_empty(self.business_type.take()).ok_or_else(|| {
                    invalid("business_type is required for attached_media: use \"watermark\", \"subtitle\" or \"material\"")
                })?;
                let allowed = attached_media_extensions(&business_type).ok_or_else(|| {
                    invalid(format!(
                        "business_type {business_type:?} is not valid: use \"watermark\", \"subtitle\" or \"material\""
                    ))
                })?;
                self.business_type = Some(business_type.clone());
                let ext = non_empty(self.media_ext.take())
                    .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                    .or_else(|| extension_of(&file_name))
                    .ok_or_else(|| {
                        invalid("media_ext is missing and file_name has no extension")
                    })?;
                if !allowed.contains(&ext.as_str()) {
                    return Err(invalid(format!(
                        "{ext:?} is not a {business_type} format VOD accepts ({})",
                        allowed.join(", ")
                    )));
                }
                self.media_ext = Some(ext.clone());
                ext
            }
        };

        if self.tags.len() > 16 {
            return Err(invalid(format!(
                "{} tags given; VOD accepts at most 16",
                self.tags.len()
            )));
        }
        if let Some(tag) = self.tags.iter().find(|t| t.len() > 32 || t.contains(',')) {
            return Err(invalid(format!(
                "tag {tag:?} is not valid: at most 32 bytes and no commas"
            )));
        }

        self.user_data = build_user_data(self.user_data.take(), self.callback_url.take())?;
        // Last: names taken from the source (`%00` in a URL) can bring one in too.
        reject_nul(self)?;
        Ok(Metadata {
            title,
            file_name,
            extension,
        })
    }
}

/// PostgreSQL's text and jsonb cannot hold U+0000, so the store would refuse a message with one
/// anywhere in it on every attempt (a poison message): it is invalid, and the field is named.
fn reject_nul(message: &JobMessage) -> Result<(), InvalidJob> {
    fn holds_nul(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(holds_nul),
            serde_json::Value::Object(map) => {
                map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v))
            }
            _ => false,
        }
    }
    let fields = serde_json::to_value(message).expect("a message serializes");
    let serde_json::Value::Object(fields) = fields else {
        unreachable!("a message serializes as an object");
    };
    match fields.iter().find(|(_, value)| holds_nul(value)) {
        Some((name, _)) => Err(invalid(format!(
            "{name} contains a NUL character (U+0000), which cannot be stored: remove it"
        ))),
        None => Ok(()),
    }
}

fn build_user_data(
    user_data: Option<serde_json::Value>,
    callback_url: Option<String>,
) -> Result<Option<serde_json::Value>, InvalidJob> {
    let mut object = match user_data {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(map)) => map,
        Some(_) => return Err(invalid("user_data must be a JSON object")),
    };
    if let Some(url) = non_empty(callback_url) {
        let parsed = url::Url::parse(&url)
            .map_err(|e| invalid(format!("callback_url {url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("callback_url must be an http:// or https:// URL"));
        }
        let callback = object
            .entry("MessageCallback")
            .or_insert_with(|| serde_json::json!({}));
        match callback {
            serde_json::Value::Object(cb) => {
                cb.insert("CallbackURL".into(), serde_json::Value::String(url));
            }
            _ => return Err(invalid("user_data.MessageCallback must be a JSON object")),
        }
    }
    if let Some(extend) = object.get("Extend") {
        let size = match extend {
            serde_json::Value::String(s) => s.len(),
            other => other.to_string().len(),
        };
        if size > 512 {
            return Err(invalid(format!(
                "user_data.Extend is {size} bytes; VOD passes back at most 512"
            )));
        }
    }
    Ok((!object.is_empty()).then_some(serde_json::Value::Object(object)))
}

fn resolve_source(source: &str, roots: &[PathBuf]) -> Result<Source, InvalidJob> {
    let source = source.trim();
    if source.is_empty() {
        return Err(invalid(
            "source is empty: give an absolute path or a file:// URL",
        ));
    }
    let path = if let Some(rest) = source.strip_prefix("file://") {
        let url = url::Url::parse(source)
            .map_err(|e| invalid(format!("source {source:?} is not a valid file URL: {e}")))?;
        url.to_file_path().map_err(|_| {
            invalid(format!(
                "source {source:?} is not a local file URL (file:///absolute/path); got path {rest:?}"
            ))
        })?
    } else if source.starts_with("http://") || source.starts_with("https://") {
        let url = url::Url::parse(source)
            .map_err(|e| invalid(format!("source {source:?} is not a valid URL: {e}")))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(format!("source {source:?} has no host")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(format!(
                "source {}: credentials in the URL are not accepted (they would be stored and logged); use a pre-signed URL",
                url.host_str().unwrap_or_default()
            )));
        }
        return Ok(Source::Remote(url));
    } else {
        PathBuf::from(source)
    };
    if !path.is_absolute() {
        return Err(invalid(format!(
            "source {source:?} is not an absolute path"
        )));
    }
    if roots.is_empty() {
        return Err(invalid(
            "local sources are disabled: set VOD_INGEST_SOURCE_ROOTS to the directories jobs may read",
        ));
    }
    // Canonicalising resolves `..` and symlinks, so a path cannot escape its root.
    let canonical = std::fs::canonicalize(&path)
        .map_err(|e| invalid(format!("source {} cannot be read: {e}", path.display())))?;
    if !roots.iter().any(|root| canonical.starts_with(root)) {
        return Err(invalid(format!(
            "source {} is outside the allowed roots ({}); set VOD_INGEST_SOURCE_ROOTS to include it",
            path.display(),
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if !canonical.is_file() {
        return Err(invalid(format!(
            "source {} is not a regular file",
            path.display()
        )));
    }
    Ok(Source::Local(canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> Vec<PathBuf> {
        vec![std::fs::canonicalize(dir).unwrap()]
    }

    fn message(kind: &str, source: &Path) -> JobMessage {
        JobMessage {
            kind: kind.into(),
            source: source.display().to_string(),
            title: Some("A title".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_video_job_gets_defaults_and_keeps_the_callback_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clip.MP4");
        std::fs::write(&file, b"x").unwrap();
        let mut msg = message("video", &file);
        msg.callback_url = Some("https://example.com/cb".into());
        let spec = msg.validate(&roots(dir.path())).unwrap();
        assert_eq!(spec.kind, JobKind::Video);
        assert_eq!(spec.file_name, "clip.MP4");
        assert_eq!(spec.extension, "mp4");
        assert_eq!(spec.job_id.len(), 36, "generated uuid");
        assert_eq!(
            spec.message.user_data.unwrap()["MessageCallback"]["CallbackURL"],
            "https://example.com/cb"
        );
    }

    #[test]
    fn rejections_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("a.mp4");
        std::fs::write(&video, b"x").unwrap();
        let roots = roots(dir.path());
        let cases: Vec<(JobMessage, &str)> = vec![
            (message("audio", &video), "unknown kind"),
            (
                JobMessage {
                    title: None,
                    ..message("video", &video)
                },
                "title is required",
            ),
            (
                message("video", Path::new("/etc/passwd")),
                "outside the allowed roots",
            ),
            (
                message("video", &dir.path().join("missing.mp4")),
                "cannot be read",
            ),
            (
                message("video", Path::new("relative.mp4")),
                "not an absolute path",
            ),
            (
                message("attached_media", &video),
                "business_type is required",
            ),
            (
                JobMessage {
                    business_type: Some("subtitle".into()),
                    ..message("attached_media", &video)
                },
                "not a subtitle format",
            ),
            (
                JobMessage {
                    image_type: Some("poster".into()),
                    ..message("image", &video)
                },
                "image_type",
            ),
            (
                JobMessage {
                    job_id: Some("bad id!".into()),
                    ..message("video", &video)
                },
                "job_id",
            ),
            (
                JobMessage {
                    tags: vec!["t".into(); 17],
                    ..message("video", &video)
                },
                "at most 16",
            ),
            (
                JobMessage {
                    user_data: Some(serde_json::json!({"Extend": "x".repeat(600)})),
                    ..message("video", &video)
                },
                "512",
            ),
        ];
        for (msg, expected) in cases {
            let err = msg.clone().validate(&roots).unwrap_err().to_string();
            assert!(err.contains(expected), "{msg:?}: {err}");
        }
    }

    #[test]
    fn symlinks_cannot_escape_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("secret.mp4");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link.mp4");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = message("video", &link)
            .validate(&roots(dir.path()))
            .unwrap_err();
        assert!(err.0.contains("outside the allowed roots"), "{err}");
    }

    /// Found by the `job_message` fuzz target: from `https://host/%20b.png` the title was
    /// `" b"`, which the stored message then validated to as `"b"`.
    #[test]
    fn names_taken_from_the_source_are_trimmed() {
        let message = JobMessage {
            kind: "image".into(),
            source: "https://cdn.example.com/%20b%20.png?sig=1".into(),
            ..Default::default()
        };
        let spec = message.validate(&[]).unwrap();
        assert_eq!(
            (spec.title.as_str(), spec.file_name.as_str()),
            ("b", "b .png")
        );
        let again = spec.message.clone().validate(&[]).unwrap();
        assert_eq!((again.title, again.file_name), (spec.title, spec.file_name));
    }

    /// Found by scripts/schemathesis.sh (a title with U+0000 in `POST /v1/uploads` was a 503):
    /// PostgreSQL refuses the character, so the job could never be stored.
    #[test]
    fn nul_characters_are_refused_wherever_they_are() {
        let client = |m: JobMessage| m.validate_client().map(|_| ()).unwrap_err().0;
        let base = JobMessage {
            kind: "image".into(),
            source: "client".into(),
            file_name: Some("a.png".into()),
            ..Default::default()
        };
        let err = client(JobMessage {
            title: Some("a\0b".into()),
            ..base.clone()
        });
        assert!(err.starts_with("title contains a NUL"), "{err}");
        let err = client(JobMessage {
            user_data: Some(serde_json::json!({"Extend": {"k": ["x\0"]}})),
            ..base.clone()
        });
        assert!(err.starts_with("user_data contains a NUL"), "{err}");
        let err = client(JobMessage {
            tags: vec!["ok".into(), "\0".into()],
            ..base.clone()
        });
        assert!(err.starts_with("tags contains a NUL"), "{err}");
        let queued = JobMessage {
            kind: "video".into(),
            source: "https://example.com/a.mp4".into(),
            title: Some("t".into()),
            description: Some("\0".into()),
            ..Default::default()
        };
        let err = queued.validate(&[]).unwrap_err().0;
        assert!(err.starts_with("description contains a NUL"), "{err}");
        // Found by the `job_message` fuzz target: the title derived from `a%008b.png`.
        let derived = JobMessage {
            kind: "image".into(),
            source: "https://example.com/a%008b.png".into(),
            ..Default::default()
        };
        let err = derived.validate(&[]).unwrap_err().0;
        assert!(err.starts_with("file_name contains a NUL"), "{err}");
        assert!(base.validate_client().is_ok());
    }

    #[test]
    fn unknown_fields_and_bad_json_are_named() {
        let err = JobMessage::from_json(br#"{"kind":"video","source":"/a.mp4","titel":"x"}"#)
            .unwrap_err();
        assert!(err.0.contains("titel"), "{err}");
        let err = JobMessage::from_json(b"not json").unwrap_err();
        assert!(err.0.contains("not a valid job"), "{err}");
    }
}
