//! The VOD upload API: CreateUploadVideo / Image / AttachedMedia, RefreshUploadVideo,
//! GetVideoInfo, GetImageInfo (`docs/reference/vod-api.md` §1), and the batch reads GetVideoInfos,
//! GetImageInfos, GetAttachedMediaInfo.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Deserializer};

use super::credentials::CredentialProvider;
use super::error::{VodError, VodErrorKind};
use super::rpc::{self, RpcCall};
use super::signing::SignatureVersion;
use super::types::{UploadAddress, UploadAuth};
use crate::secret::Secret;

const VOD_VERSION: &str = "2017-03-21";

/// The official upload SDKs cut Title and Description to these many UTF-8 bytes before calling
/// (`VOD_MAX_TITLE_LENGTH`, `VOD_MAX_DESCRIPTION_LENGTH`): the server's unit is unconfirmed, and a
/// byte limit is also within any character limit.
pub const MAX_TITLE_BYTES: usize = 128;
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

/// Where and how to reach VOD.
#[derive(Debug, Clone)]
pub struct VodConfig {
    pub endpoint: url::Url,
    pub region: String,
    /// Per-attempt timeout of each API call.
    pub timeout: Duration,
}

impl VodConfig {
    /// The public endpoint of `region` (`https://vod.<region>.aliyuncs.com`), 30 s timeout.
    pub fn for_region(region: &str) -> Result<Self, VodError> {
        let endpoint =
            url::Url::parse(&format!("https://vod.{region}.aliyuncs.com/")).map_err(|e| {
                VodError::from(VodErrorKind::Config {
                    detail: format!("VOD_REGION {region:?} does not make a valid endpoint: {e}"),
                })
            })?;
        Ok(Self {
            endpoint,
            region: region.to_owned(),
            timeout: Duration::from_secs(30),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct CreateUploadVideoRequest {
    pub title: String,
    /// Source file name with a video/audio extension VOD accepts.
    pub file_name: String,
    pub file_size: Option<u64>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub cate_id: Option<i64>,
    pub cover_url: Option<String>,
    pub template_group_id: Option<String>,
    pub workflow_id: Option<String>,
    pub storage_location: Option<String>,
    pub app_id: Option<String>,
    pub user_data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default)]
pub struct CreateUploadImageRequest {
    /// `default` or `cover`.
    pub image_type: String,
    pub image_ext: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub cate_id: Option<i64>,
    pub storage_location: Option<String>,
    pub app_id: Option<String>,
    pub user_data: Option<serde_json::Value>,
    pub original_file_name: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CreateUploadAttachedMediaRequest {
    /// `watermark`, `subtitle` or `material`.
    pub business_type: String,
    pub media_ext: Option<String>,
    pub file_name: Option<String>,
    pub file_size: Option<u64>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub cate_ids: Vec<i64>,
    pub storage_location: Option<String>,
    pub app_id: Option<String>,
    pub user_data: Option<serde_json::Value>,
}

/// One of the three CreateUpload* calls.
#[derive(Debug, Clone)]
pub enum CreateUpload {
    Video(CreateUploadVideoRequest),
    Image(CreateUploadImageRequest),
    AttachedMedia(CreateUploadAttachedMediaRequest),
}

/// What CreateUpload*/RefreshUploadVideo return, decoded. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct UploadTicket {
    pub request_id: String,
    /// VideoId, ImageId or MediaId.
    pub media_id: String,
    pub address: UploadAddress,
    pub auth: UploadAuth,
    pub upload_address_b64: String,
    /// The raw `UploadAuth`, for handing to a client app as VOD's application server does.
    pub upload_auth_b64: Secret,
    /// ImageURL or MediaURL (may need URL signing to open).
    pub media_url: Option<String>,
    /// The OSS URL of the file, without auth.
    pub file_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VideoInfo {
    pub video_id: String,
    /// `Uploading`, `UploadFail`, `UploadSucc`, `Transcoding`, `TranscodeFail`, `Blocked`, `Normal`.
    pub status: String,
    pub title: Option<String>,
    pub size: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub image_id: String,
    /// `Uploading`, `Normal`, `UploadFail`.
    pub status: String,
    pub title: Option<String>,
    pub file_size: Option<u64>,
    pub url: Option<String>,
}

/// Attached media (watermarks, subtitles, materials) as `GetAttachedMediaInfo` reports them.
#[derive(Debug, Clone)]
pub struct AttachedMediaInfo {
    pub media_id: String,
    /// `Uploading`, `Normal`, `UploadFail`.
    pub status: String,
    pub title: Option<String>,
    pub file_size: Option<u64>,
    pub url: Option<String>,
}

/// What a batch read found, and the ids VOD says do not exist.
#[derive(Debug, Clone)]
pub struct Batch<T> {
    pub found: Vec<T>,
    pub missing: Vec<String>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Self {
            found: Vec::new(),
            missing: Vec::new(),
        }
    }
}

/// How many ids VOD takes per batch read (GetVideoInfos, GetImageInfos, GetAttachedMediaInfo).
pub const MAX_BATCH_IDS: usize = 20;

/// A VOD client; cheap to clone.
#[derive(Clone)]
pub struct VodClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: VodConfig,
    credentials: CredentialProvider,
    http: reqwest::Client,
    /// The fleet-wide rate limit every attempt waits for (`crate::ratelimit`).
    limiter: Option<crate::ratelimit::FleetLimiter>,
    signature: SignatureVersion,
}

impl std::fmt::Debug for VodClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VodClient")
            .field("config", &self.inner.config)
            .field("credentials", &self.inner.credentials)
            .field("signature", &self.inner.signature)
            .finish()
    }
}

impl VodClient {
    pub fn new(config: VodConfig, credentials: CredentialProvider, http: reqwest::Client) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                credentials,
                http,
                limiter: None,
                signature: SignatureVersion::default(),
            }),
        }
    }

    /// The same client, with every call waiting for the fleet's rate limit first, and
    /// `Throttling*` answers reported to it.
    pub fn with_limiter(self, limiter: crate::ratelimit::FleetLimiter) -> Self {
        let inner = &*self.inner;
        Self {
            inner: Arc::new(Inner {
                config: inner.config.clone(),
                credentials: inner.credentials.clone(),
                http: inner.http.clone(),
                limiter: Some(limiter),
                signature: inner.signature,
            }),
        }
    }

    /// Which signature to sign with (default V1). Call before the client is cloned.
    pub fn with_signature_version(self, signature: SignatureVersion) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            config: shared.config.clone(),
            credentials: shared.credentials.clone(),
            http: shared.http.clone(),
            limiter: shared.limiter.clone(),
            signature,
        });
        Self {
            inner: Arc::new(Inner { signature, ..inner }),
        }
    }

    pub fn config(&self) -> &VodConfig {
        &self.inner.config
    }

    /// Creates a video and its upload credential. Not idempotent (each success is a new
    /// VideoId), so it is retried only when the request certainly did not run.
    pub async fn create_upload_video(
        &self,
        req: &CreateUploadVideoRequest,
    ) -> Result<UploadTicket, VodError> {
        let wire: UploadWire = self
            .call("CreateUploadVideo", false, video_params(req))
            .await?;
        wire.into_ticket("CreateUploadVideo", None)
    }

    /// Creates an image and its upload credential. Not idempotent (see `create_upload_video`).
    pub async fn create_upload_image(
        &self,
        req: &CreateUploadImageRequest,
    ) -> Result<UploadTicket, VodError> {
        let wire: UploadWire = self
            .call("CreateUploadImage", false, image_params(req))
            .await?;
        wire.into_ticket("CreateUploadImage", None)
    }

    /// Creates an attached medium and its upload credential. Not idempotent.
    pub async fn create_upload_attached_media(
        &self,
        req: &CreateUploadAttachedMediaRequest,
    ) -> Result<UploadTicket, VodError> {
        let wire: UploadWire = self
            .call("CreateUploadAttachedMedia", false, attached_params(req))
            .await?;
        wire.into_ticket("CreateUploadAttachedMedia", None)
    }

    /// A new credential for an existing video; the upload address stays the same.
    /// CreateUploadVideo, CreateUploadImage or CreateUploadAttachedMedia.
    pub async fn create_upload(&self, request: &CreateUpload) -> Result<UploadTicket, VodError> {
        match request {
            CreateUpload::Video(r) => self.create_upload_video(r).await,
            CreateUpload::Image(r) => self.create_upload_image(r).await,
            CreateUpload::AttachedMedia(r) => self.create_upload_attached_media(r).await,
        }
    }

    pub async fn refresh_upload_video(&self, video_id: &str) -> Result<UploadTicket, VodError> {
        let wire: UploadWire = self
            .call(
                "RefreshUploadVideo",
                true,
                vec![("VideoId", video_id.to_owned())],
            )
            .await?;
        wire.into_ticket("RefreshUploadVideo", Some(video_id))
    }

    pub async fn get_video_info(&self, video_id: &str) -> Result<VideoInfo, VodError> {
        let wire: VideoInfoWire = self
            .call("GetVideoInfo", true, vec![("VideoId", video_id.to_owned())])
            .await?;
        Ok(wire.into_info(video_id))
    }

    pub async fn get_image_info(&self, image_id: &str) -> Result<ImageInfo, VodError> {
        let wire: ImageInfoWire = self
            .call("GetImageInfo", true, vec![("ImageId", image_id.to_owned())])
            .await?;
        Ok(wire.into_info(image_id))
    }

    /// `GetVideoInfos`, as many calls of at most [`MAX_BATCH_IDS`] as `ids` need.
    pub async fn get_video_infos(&self, ids: &[String]) -> Result<Batch<VideoInfo>, VodError> {
        let mut out = Batch::default();
        for chunk in ids.chunks(MAX_BATCH_IDS) {
            let wire: VideoInfosWire = self
                .call("GetVideoInfos", true, vec![("VideoIds", chunk.join(","))])
                .await?;
            out.found
                .extend(wire.video_list.into_iter().map(|v| v.into_info("")));
            out.missing.extend(wire.non_exist);
        }
        Ok(out)
    }

    /// `GetImageInfos`, in calls of at most [`MAX_BATCH_IDS`] ids.
    pub async fn get_image_infos(&self, ids: &[String]) -> Result<Batch<ImageInfo>, VodError> {
        let mut out = Batch::default();
        for chunk in ids.chunks(MAX_BATCH_IDS) {
            let wire: ImageInfosWire = self
                .call("GetImageInfos", true, vec![("ImageIds", chunk.join(","))])
                .await?;
            out.found
                .extend(wire.image_info.into_iter().map(|i| i.into_info("")));
            out.missing.extend(wire.non_exist);
        }
        Ok(out)
    }

    /// `GetAttachedMediaInfo` (VOD's name, singular, for a batch read), in calls of at most
    /// [`MAX_BATCH_IDS`] ids.
    pub async fn get_attached_media_infos(
        &self,
        ids: &[String],
    ) -> Result<Batch<AttachedMediaInfo>, VodError> {
        let mut out = Batch::default();
        for chunk in ids.chunks(MAX_BATCH_IDS) {
            let wire: AttachedInfosWire = self
                .call(
                    "GetAttachedMediaInfo",
                    true,
                    vec![("MediaIds", chunk.join(","))],
                )
                .await?;
            out.found.extend(wire.list.into_iter().filter_map(|a| {
                Some(AttachedMediaInfo {
                    media_id: a.media_id?,
                    status: a.status.unwrap_or_default(),
                    title: a.title,
                    file_size: a.file_size,
                    url: a.url,
                })
            }));
            out.missing.extend(wire.non_exist);
        }
        Ok(out)
    }

    /// One API call with retries; every attempt takes the current credentials and is signed anew.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        action: &'static str,
        idempotent: bool,
        params: Vec<(&'static str, String)>,
    ) -> Result<T, VodError> {
        let inner = &*self.inner;
        let call = RpcCall {
            action,
            version: VOD_VERSION,
            region: &inner.config.region,
            params,
        };
        let call = &call;
        let result = rpc::with_retries(action, idempotent, move || async move {
            let creds = inner.credentials.current().await?;
            if let Some(limiter) = &inner.limiter {
                limiter.acquire(action).await;
            }
            let result = rpc::call_once(
                &inner.http,
                &inner.config.endpoint,
                Some(inner.config.timeout),
                &creds,
                call,
                inner.signature,
            )
            .await;
            if let (Some(limiter), Err(e)) = (&inner.limiter, &result) {
                if e.code().starts_with("Throttling") {
                    limiter.throttled(action).await;
                }
            }
            result
        })
        .await;
        if let Err(e) = &result {
            tracing::debug!(action, code = e.code(), request_id = ?e.request_id(), "VOD call failed");
        }
        result
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Collects parameters, skipping empty optional ones (VOD treats absent and empty differently
/// for some of them, and absent is what the SDKs send).
#[derive(Default)]
struct Params(Vec<(&'static str, String)>);

impl Params {
    fn put(&mut self, name: &'static str, value: impl Into<String>) {
        let value = value.into();
        if !value.is_empty() {
            self.0.push((name, value));
        }
    }

    fn opt(&mut self, name: &'static str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.put(name, v.to_string());
        }
    }

    fn tags(&mut self, tags: &[String]) {
        let tags: Vec<&str> = tags
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect();
        self.put("Tags", tags.join(","));
    }

    fn user_data(&mut self, value: &Option<serde_json::Value>) {
        if let Some(v) = value.as_ref().filter(|v| !v.is_null()) {
            // Compact JSON, as the doc examples send it.
            self.put("UserData", v.to_string());
        }
    }

    fn title(&mut self, title: Option<&str>) {
        if let Some(t) = title {
            self.put("Title", truncate_utf8(t, MAX_TITLE_BYTES));
        }
    }

    fn description(&mut self, description: Option<&str>) {
        if let Some(d) = description {
            self.put("Description", truncate_utf8(d, MAX_DESCRIPTION_BYTES));
        }
    }
}

fn video_params(req: &CreateUploadVideoRequest) -> Vec<(&'static str, String)> {
    let mut p = Params::default();
    p.title(Some(&req.title));
    p.put("FileName", req.file_name.clone());
    p.opt("FileSize", req.file_size);
    p.description(req.description.as_deref());
    p.tags(&req.tags);
    p.opt("CateId", req.cate_id);
    p.opt("CoverURL", req.cover_url.as_ref());
    p.opt("TemplateGroupId", req.template_group_id.as_ref());
    p.opt("WorkflowId", req.workflow_id.as_ref());
    p.opt("StorageLocation", req.storage_location.as_ref());
    p.opt("AppId", req.app_id.as_ref());
    p.user_data(&req.user_data);
    p.0
}

fn image_params(req: &CreateUploadImageRequest) -> Vec<(&'static str, String)> {
    let mut p = Params::default();
    p.put("ImageType", req.image_type.clone());
    p.opt("ImageExt", req.image_ext.as_ref());
    p.title(req.title.as_deref());
    p.description(req.description.as_deref());
    p.tags(&req.tags);
    p.opt("CateId", req.cate_id);
    p.opt("StorageLocation", req.storage_location.as_ref());
    p.opt("AppId", req.app_id.as_ref());
    p.user_data(&req.user_data);
    p.opt("OriginalFileName", req.original_file_name.as_ref());
    p.0
}

fn attached_params(req: &CreateUploadAttachedMediaRequest) -> Vec<(&'static str, String)> {
    let mut p = Params::default();
    p.put("BusinessType", req.business_type.clone());
    p.opt("MediaExt", req.media_ext.as_ref());
    p.opt("FileName", req.file_name.as_ref());
    p.opt("FileSize", req.file_size);
    p.title(req.title.as_deref());
    p.description(req.description.as_deref());
    p.tags(&req.tags);
    let cate_ids: Vec<String> = req.cate_ids.iter().map(i64::to_string).collect();
    p.put("CateIds", cate_ids.join(","));
    p.opt("StorageLocation", req.storage_location.as_ref());
    p.opt("AppId", req.app_id.as_ref());
    p.user_data(&req.user_data);
    p.0
}

/// The union of the CreateUpload* / RefreshUploadVideo answers. `UploadAuth` is held as a
/// [`Secret`] from the moment it is parsed.
#[derive(Deserialize)]
pub(crate) struct UploadWire {
    #[serde(rename = "RequestId", default)]
    request_id: String,
    #[serde(rename = "VideoId")]
    video_id: Option<String>,
    #[serde(rename = "ImageId")]
    image_id: Option<String>,
    #[serde(rename = "MediaId")]
    media_id: Option<String>,
    #[serde(rename = "ImageURL")]
    image_url: Option<String>,
    #[serde(rename = "MediaURL")]
    media_url: Option<String>,
    #[serde(rename = "FileURL")]
    file_url: Option<String>,
    #[serde(rename = "UploadAddress")]
    upload_address: Option<String>,
    #[serde(rename = "UploadAuth")]
    upload_auth: Option<Secret>,
}

impl UploadWire {
    pub(crate) fn into_ticket(
        self,
        action: &'static str,
        requested_id: Option<&str>,
    ) -> Result<UploadTicket, VodError> {
        let invalid = |request_id: &str, detail: String| {
            VodError::from(VodErrorKind::InvalidResponse {
                action,
                http_status: 200,
                request_id: Some(request_id.to_owned()).filter(|s| !s.is_empty()),
                detail,
            })
        };
        let media_id = self
            .video_id
            .or(self.image_id)
            .or(self.media_id)
            .filter(|s| !s.is_empty())
            .or_else(|| requested_id.map(str::to_owned))
            .ok_or_else(|| invalid(&self.request_id, "the answer carries no media id".into()))?;
        let address_b64 = self
            .upload_address
            .ok_or_else(|| invalid(&self.request_id, "the answer has no UploadAddress".into()))?;
        let auth_b64 = self
            .upload_auth
            .ok_or_else(|| invalid(&self.request_id, "the answer has no UploadAuth".into()))?;
        let address = UploadAddress::decode(&address_b64)
            .map_err(|e| invalid(&self.request_id, e.to_string()))?;
        let auth = UploadAuth::decode(auth_b64.expose(), Utc::now())
            .map_err(|e| invalid(&self.request_id, e.to_string()))?;
        Ok(UploadTicket {
            request_id: self.request_id,
            media_id,
            address,
            auth,
            upload_address_b64: address_b64,
            upload_auth_b64: auth_b64,
            media_url: self.image_url.or(self.media_url),
            file_url: self.file_url,
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct VideoInfoWire {
    #[serde(rename = "Video")]
    video: VideoWire,
}

#[derive(Deserialize)]
struct VideoWire {
    #[serde(rename = "VideoId")]
    video_id: Option<String>,
    #[serde(rename = "Status")]
    status: Option<String>,
    #[serde(rename = "Title")]
    title: Option<String>,
    #[serde(rename = "Size", default, deserialize_with = "lenient_u64")]
    size: Option<u64>,
}

/// A list of ids: an array, or (in some doc examples) one comma-separated string.
fn lenient_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    })
}

#[derive(Deserialize)]
struct VideoInfosWire {
    #[serde(rename = "VideoList", default)]
    video_list: Vec<VideoWire>,
    #[serde(rename = "NonExistVideoIds", default, deserialize_with = "lenient_ids")]
    non_exist: Vec<String>,
}

#[derive(Deserialize)]
struct ImageInfosWire {
    #[serde(rename = "ImageInfo", default)]
    image_info: Vec<ImageWire>,
    #[serde(rename = "NonExistImageIds", default, deserialize_with = "lenient_ids")]
    non_exist: Vec<String>,
}

#[derive(Deserialize)]
struct AttachedInfosWire {
    #[serde(rename = "AttachedMediaList", default)]
    list: Vec<AttachedWire>,
    #[serde(rename = "NonExistMediaIds", default, deserialize_with = "lenient_ids")]
    non_exist: Vec<String>,
}

#[derive(Deserialize)]
struct AttachedWire {
    #[serde(rename = "MediaId")]
    media_id: Option<String>,
    #[serde(rename = "Status")]
    status: Option<String>,
    #[serde(rename = "Title")]
    title: Option<String>,
    #[serde(rename = "FileSize", default, deserialize_with = "lenient_u64")]
    file_size: Option<u64>,
    #[serde(rename = "URL")]
    url: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ImageInfoWire {
    #[serde(rename = "ImageInfo")]
    image_info: ImageWire,
}

#[derive(Deserialize)]
struct ImageWire {
    #[serde(rename = "ImageId")]
    image_id: Option<String>,
    #[serde(rename = "Status")]
    status: Option<String>,
    #[serde(rename = "Title")]
    title: Option<String>,
    #[serde(rename = "URL")]
    url: Option<String>,
    #[serde(rename = "Mezzanine")]
    mezzanine: Option<MezzanineWire>,
}

#[derive(Deserialize)]
struct MezzanineWire {
    #[serde(rename = "FileSize", default, deserialize_with = "lenient_u64")]
    file_size: Option<u64>,
}

impl VideoInfoWire {
    pub(crate) fn into_info(self, video_id: &str) -> VideoInfo {
        self.video.into_info(video_id)
    }
}

impl VideoWire {
    fn into_info(self, video_id: &str) -> VideoInfo {
        let v = self;
        VideoInfo {
            video_id: v.video_id.unwrap_or_else(|| video_id.to_owned()),
            status: v.status.unwrap_or_default(),
            title: v.title,
            size: v.size,
        }
    }
}

impl ImageInfoWire {
    pub(crate) fn into_info(self, image_id: &str) -> ImageInfo {
        self.image_info.into_info(image_id)
    }
}

impl ImageWire {
    fn into_info(self, image_id: &str) -> ImageInfo {
        let i = self;
        ImageInfo {
            image_id: i.image_id.unwrap_or_else(|| image_id.to_owned()),
            status: i.status.unwrap_or_default(),
            title: i.title,
            file_size: i.mezzanine.and_then(|m| m.file_size),
            url: i.url,
        }
    }
}

/// Sizes appear as numbers in the SDK models and as strings in doc examples: accept both.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn find<'a>(params: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_utf8("abc", 128), "abc");
        let long = "视".repeat(50); // 150 bytes
        let cut = truncate_utf8(&long, 128);
        assert_eq!(cut.len(), 126);
        assert_eq!(cut.chars().count(), 42);
        assert_eq!(truncate_utf8("aé", 2), "a");
    }

    #[test]
    fn video_parameters() {
        let req = CreateUploadVideoRequest {
            title: format!("{}尾", "t".repeat(127)),
            file_name: "movie 1.mp4".into(),
            file_size: Some(123),
            description: Some("d".repeat(2000)),
            tags: vec!["a".into(), " b ".into(), "".into()],
            cate_id: Some(1000),
            user_data: Some(serde_json::json!({
                "MessageCallback": {"CallbackURL": "http://example.com/cb"},
                "Extend": {"k": "v"}
            })),
            ..Default::default()
        };
        let p = video_params(&req);
        assert_eq!(find(&p, "Title").unwrap(), "t".repeat(127));
        assert_eq!(
            find(&p, "Description").unwrap().len(),
            MAX_DESCRIPTION_BYTES
        );
        assert_eq!(find(&p, "FileName"), Some("movie 1.mp4"));
        assert_eq!(find(&p, "FileSize"), Some("123"));
        assert_eq!(find(&p, "Tags"), Some("a,b"));
        assert_eq!(find(&p, "CateId"), Some("1000"));
        assert_eq!(
            find(&p, "UserData"),
            Some(
                r#"{"Extend":{"k":"v"},"MessageCallback":{"CallbackURL":"http://example.com/cb"}}"#
            )
        );
        assert_eq!(find(&p, "CoverURL"), None);
        assert_eq!(find(&p, "StorageLocation"), None);
    }

    #[test]
    fn image_and_attached_parameters() {
        let p = image_params(&CreateUploadImageRequest {
            image_type: "cover".into(),
            image_ext: Some("jpg".into()),
            ..Default::default()
        });
        assert_eq!(
            p,
            vec![("ImageType", "cover".into()), ("ImageExt", "jpg".into())]
        );
        let p = attached_params(&CreateUploadAttachedMediaRequest {
            business_type: "subtitle".into(),
            media_ext: Some("vtt".into()),
            cate_ids: vec![1, 2],
            file_size: Some(10),
            ..Default::default()
        });
        assert_eq!(find(&p, "BusinessType"), Some("subtitle"));
        assert_eq!(find(&p, "CateIds"), Some("1,2"));
        assert_eq!(find(&p, "FileSize"), Some("10"));
        assert_eq!(find(&p, "CateId"), None);
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn tickets_decode_and_hide_the_credential() {
        let auth = b64(
            r#"{"SecurityToken":"tok-secret","AccessKeyId":"STS.x","ExpireUTCTime":"2030-01-01T00:00:00Z","AccessKeySecret":"key-secret","Expiration":"3000"}"#,
        );
        let address = b64(
            r#"{"Endpoint":"https://oss-cn-shanghai.aliyuncs.com","Bucket":"outin-1","FileName":"image/default/x.png"}"#,
        );
        let body = serde_json::json!({
            "RequestId": "R1",
            "ImageId": "img-1",
            "ImageURL": "https://cdn/x.png",
            "FileURL": "https://outin-1.oss/x.png",
            "UploadAddress": address,
            "UploadAuth": auth,
        });
        let wire: UploadWire = serde_json::from_value(body).unwrap();
        let ticket = wire.into_ticket("CreateUploadImage", None).unwrap();
        assert_eq!(ticket.media_id, "img-1");
        assert_eq!(ticket.address.bucket, "outin-1");
        assert_eq!(ticket.auth.access_key_id, "STS.x");
        assert_eq!(ticket.media_url.as_deref(), Some("https://cdn/x.png"));
        let shown = format!("{ticket:?}");
        assert!(
            !shown.contains("tok-secret") && !shown.contains("key-secret"),
            "{shown}"
        );
        assert!(!shown.contains(&auth), "{shown}");
    }

    #[test]
    fn a_ticket_without_upload_auth_is_an_invalid_response() {
        let wire: UploadWire =
            serde_json::from_value(serde_json::json!({"RequestId": "R2", "VideoId": "v"})).unwrap();
        let err = wire.into_ticket("CreateUploadVideo", None).unwrap_err();
        assert_eq!(err.code(), "InvalidResponse");
        assert_eq!(err.request_id(), Some("R2"));
    }

    /// A transport error must not show the request URL: it carries Signature and SecurityToken.
    /// (Port 1 on loopback refuses the connection; nothing is listening.)
    #[tokio::test]
    async fn transport_errors_show_no_url() {
        let client = VodClient::new(
            VodConfig {
                endpoint: url::Url::parse("http://127.0.0.1:1/").unwrap(),
                region: "cn-shanghai".into(),
                timeout: Duration::from_secs(5),
            },
            CredentialProvider::sts_token(
                "STS.id",
                Secret::new("secret-value-9"),
                Secret::new("token-value-7"),
            ),
            reqwest::Client::new(),
        );
        let err = client.get_video_info("v1").await.unwrap_err();
        assert_eq!(err.code(), "ConnectError");
        assert!(err.is_retryable() && err.request_not_executed());
        let shown = format!("{err} {err:?}");
        for leak in [
            "token-value-7",
            "secret-value-9",
            "Signature",
            "127.0.0.1:1/?",
        ] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
    }

    #[test]
    fn info_sizes_may_be_strings() {
        let v: VideoInfoWire = serde_json::from_str(
            r#"{"RequestId":"R","Video":{"VideoId":"v","Status":"Normal","Size":"10897890"}}"#,
        )
        .unwrap();
        assert_eq!(v.video.size, Some(10_897_890));
        let i: ImageInfoWire = serde_json::from_str(
            r#"{"RequestId":"R","ImageInfo":{"ImageId":"i","Status":"Normal","URL":"u","Mezzanine":{"FileSize":8932}}}"#,
        )
        .unwrap();
        assert_eq!(i.image_info.mezzanine.unwrap().file_size, Some(8932));
    }
}
