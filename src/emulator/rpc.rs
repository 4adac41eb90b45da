//! VOD (2017-03-21) and STS (2015-04-01) over RPC: the gateway's checks (`docs/reference/vod-api.md` §3.5)
//! and the actions themselves (§1, §4). The top of the RPC modules: it reads parameters with
//! `params`, checks signature V3 with `v3` (and what V1 and V3 share with `auth`), shows media
//! with `media_json` and leaves the batch reads to `batch`; none of them imports it back.
//!
//! Order of the gateway checks, a guess at the real one that never lets a cheaper check hide a
//! more specific answer: required common parameters, API lookup, signature method/version,
//! timestamp, AccessKeyId, STS token, signature, nonce; then the action's own validation.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, Method};
use axum::response::Response;
use chrono::{SubsecRound, Utc};
use serde_json::{json, Value};

use super::auth::{caller_and_secret, spend_nonce, Caller, MAX_SKEW};
use super::errors::{rpc_error, rpc_request_id, rpc_success, Format, RpcError};
use super::media_json::{file_url, image_json, video_json};
use super::params::{
    collect_params, extend_string, fmt_time, get, nested_json, parse_timestamp, required, Params,
};
use super::policy::SessionPolicy;
use super::state::{Media, MediaKind, Scope, Shared, StsCredential};
use crate::sign;
use crate::vod::{UploadAddress, UploadAuth};

pub(crate) const VOD_VERSION: &str = "2017-03-21";
pub(crate) const STS_VERSION: &str = "2015-04-01";

const VOD_ACTIONS: &[&str] = &[
    "CreateUploadVideo",
    "CreateUploadImage",
    "CreateUploadAttachedMedia",
    "RefreshUploadVideo",
    "GetVideoInfo",
    "GetImageInfo",
    "GetVideoInfos",
    "GetImageInfos",
    "GetAttachedMediaInfo",
];
const STS_ACTIONS: &[&str] = &["AssumeRole"];

/// Common parameters the gateway requires, in the order it reports them missing.
const REQUIRED_COMMON: &[&str] = &[
    "Action",
    "Version",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
];

/// Extensions VOD accepts for audio and video (`docs/reference/vod-api.md` §7), lower-case.
const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "ts", "3gp", "mpg", "mpeg", "mpe", "dat", "vob", "asf", "avi", "wmv", "flv", "f4v",
    "rm", "rmvb", "mov", "mkv", "m3u8", "dv", "gif", "m2t", "m4v", "mj2", "mjpeg", "mts", "ogg",
    "qt", "swf", "webm", "mp3", "wma", "wav", "aac", "ra", "m4a", "flac", "ape", "ac3", "amr",
    "caf", "acm",
];
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "heic", "webp"];

fn attached_extensions(business_type: &str) -> Option<&'static [&'static str]> {
    match business_type {
        "watermark" => Some(&["png", "gif", "apng", "mov"]),
        "subtitle" => Some(&["srt", "ass", "stl", "ttml", "vtt"]),
        "material" => Some(&["jpg", "gif", "png", "mp4", "mat", "zip", "apk"]),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Vod,
    Sts,
}

pub(crate) async fn handle(shared: Arc<Shared>, req: Request) -> Response {
    // No preflight is answered (OPTIONS is refused as any other method): VOD's SDKs send
    // simple GETs, which need only the Allow-Origin header on the answer.
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut response = answer(shared, req).await;
    if origin.is_some() {
        allow_any_origin(response.headers_mut());
    }
    response
}

/// The API gateway answers browsers on any origin: VOD's Web and mini-program upload SDKs call
/// it from the app's page in STS mode. Credentials (cookies) are never involved, so `*` is
/// enough, and it is what a cache may share between origins.
fn allow_any_origin(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::HeaderValue::from_static("x-acs-request-id"),
    );
}

async fn answer(shared: Arc<Shared>, req: Request) -> Response {
    let request_id = rpc_request_id();
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or_default().to_owned();
    // Signature V3 (the V2.0 SDKs): action and version come in headers (`v3`).
    let v3 = super::v3::detect(req.headers(), &query);
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await;

    let form = body.as_ref().ok().filter(|_| is_form);
    let mut params = collect_params(query.as_bytes(), form.map(|b| &b[..]));
    // A V1 `Signature` may come in a POST form body (`@alicloud/pop-core` sends it there, with
    // `x-acs-*` headers): such a request is V1 whatever its headers.
    let v3 = v3.filter(|_| !params.contains_key("Signature"));
    if let Some(v3) = &v3 {
        v3.fill_action_and_version(&mut params);
    }
    let format = Format::from_param(params.get("Format").map(String::as_str));
    let version = params.get("Version").cloned().unwrap_or_default();
    let service = if version == STS_VERSION {
        Service::Sts
    } else {
        Service::Vod
    };
    let host_id = match service {
        Service::Vod => format!("vod.{}.aliyuncs.com", shared.config.region),
        Service::Sts => "sts.aliyuncs.com".to_owned(),
    };
    let action = params.get("Action").cloned().unwrap_or_default();
    let known = match service {
        Service::Vod => VOD_ACTIONS.contains(&action.as_str()) || action == "ReportUploadProgress",
        Service::Sts => STS_ACTIONS.contains(&action.as_str()),
    };
    shared.count(if known { &action } else { "Unknown" });

    let result = if body.is_err() {
        Err(RpcError::new(
            413,
            "RequestEntityTooLarge",
            "The request body is too large.",
        ))
    } else {
        let body = body.as_deref().unwrap_or_default();
        process(
            &shared,
            &method,
            &params,
            service,
            &action,
            v3.as_ref(),
            body,
        )
        .await
    };
    match result {
        Ok(mut value) => {
            if let Value::Object(map) = &mut value {
                map.insert("RequestId".to_owned(), Value::String(request_id));
            }
            rpc_success(&action, format, value)
        }
        Err(err) => {
            tracing::debug!(action = %action, code = %err.code, status = %err.status, "rpc rejected");
            rpc_error(&err, format, &host_id, &request_id)
        }
    }
}

/// VOD's answer to a RAM identity without the right to an action (docs/reference/vod-api.md §5.2, where 403
/// and 400 are both observed; 403 is what the emulator answers).
fn forbidden_ram() -> RpcError {
    RpcError::new(
        403,
        "Forbidden.RAM",
        "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
    )
}

async fn process(
    shared: &Shared,
    method: &Method,
    params: &Params,
    service: Service,
    action: &str,
    v3: Option<&super::v3::V3Request>,
    body: &[u8],
) -> Result<Value, RpcError> {
    if *method != Method::GET && *method != Method::POST {
        return Err(RpcError::new(
            400,
            "UnsupportedHTTPMethod",
            "Specified http method is not supported.",
        ));
    }
    // The VOD upload SDKs post progress reports unsigned and ignore the answer
    // (`docs/reference/vod-api.md` §8.1).
    if service == Service::Vod && action == "ReportUploadProgress" {
        return Ok(json!({}));
    }
    if v3.is_none() {
        for name in REQUIRED_COMMON {
            // VOD's client upload SDKs sign STS-mode calls without a `Timestamp` (they send a
            // `RequestId` instead), and VOD accepts them; `authenticate` allows that only to an
            // STS credential, whose token expires anyway.
            if *name == "Timestamp" && get(params, "SecurityToken").is_some() {
                continue;
            }
            required(params, name)?;
        }
    }
    let version = required(params, "Version")?;
    let known = match version {
        VOD_VERSION => VOD_ACTIONS.contains(&action),
        STS_VERSION => STS_ACTIONS.contains(&action),
        _ => {
            return Err(RpcError::new(
                400,
                "InvalidVersion",
                "Specified parameter Version is not valid.",
            ))
        }
    };
    if !known {
        return Err(RpcError::new(
            404,
            "InvalidApi.NotFound",
            "Specified api is not found, please check your url and method.",
        ));
    }
    let caller = match v3 {
        Some(v3) => super::v3::authenticate(shared, method, v3, body)?,
        None => authenticate(shared, method, params)?,
    };
    let signature = if v3.is_some() { "v3" } else { "v1" };
    *shared
        .lock()
        .stats
        .signatures
        .entry(signature.to_owned())
        .or_default() += 1;

    // Rights: UploadAuth credentials belong to VOD's storage account and are for OSS only;
    // AssumeRole needs a RAM identity, which the emulator has only as the configured key.
    // A session policy narrows an AssumeRole credential to what it allows (RAM's evaluation:
    // explicit Deny wins, else some Allow must match).
    match (&caller, service) {
        (Caller::Sts(c), _) if !matches!(c.scope, Scope::Api { .. }) => {
            return Err(forbidden_ram());
        }
        (Caller::Sts(_), Service::Sts) => {
            return Err(RpcError::new(
                403,
                "NoPermission",
                "You are not authorized to do this action. You should be authorized by RAM.",
            ))
        }
        (
            Caller::Sts(StsCredential {
                scope: Scope::Api {
                    policy: Some(policy),
                },
                ..
            }),
            Service::Vod,
        ) => {
            let resource = format!("acs:vod:{}:{}:*", shared.config.region, shared.account_id);
            if !policy.allows(&format!("vod:{action}"), &resource) {
                return Err(forbidden_ram());
            }
        }
        _ => {}
    }
    // The account's rate limit, counted once the caller is known (`throttle`); under one lock,
    // borrowed mutably only when the action has a limit.
    {
        let mut guard = shared.lock();
        if let Some(&limit) = guard.faults.rate_limits.get(action) {
            let inner = &mut *guard;
            inner.throttle.admit(action, limit, &mut inner.stats)?;
        }
    }
    if let Some(f) = shared.take_failure(action) {
        let message = f.message.unwrap_or_else(|| {
            match f.code.as_str() {
                "ServiceUnavailable" => {
                    "The request has failed due to a temporary failure of the server."
                }
                "Throttling" | "Throttling.User" => "Request was denied due to user flow control.",
                _ => "The request processing has failed due to some unknown error.",
            }
            .to_owned()
        });
        return Err(RpcError::new(f.status, f.code, message));
    }
    match action {
        "CreateUploadVideo" => create_upload_video(shared, params),
        "CreateUploadImage" => create_upload_image(shared, params),
        "CreateUploadAttachedMedia" => create_upload_attached_media(shared, params),
        "RefreshUploadVideo" => refresh_upload_video(shared, params),
        "GetVideoInfo" => get_video_info(shared, params),
        "GetImageInfo" => get_image_info(shared, params),
        "GetVideoInfos" => super::batch::get_video_infos(shared, params),
        "GetImageInfos" => super::batch::get_image_infos(shared, params),
        "GetAttachedMediaInfo" => super::batch::get_attached_media_info(shared, params),
        "AssumeRole" => assume_role(shared, params),
        _ => Err(RpcError::internal()),
    }
}

/// The gateway's checks, from signature method to nonce.
fn authenticate(shared: &Shared, method: &Method, params: &Params) -> Result<Caller, RpcError> {
    if required(params, "SignatureMethod")? != "HMAC-SHA1" {
        return Err(RpcError::new(
            400,
            "InvalidSignatureMethod",
            "Specified signature method is not valid.",
        ));
    }
    if required(params, "SignatureVersion")? != "1.0" {
        return Err(RpcError::new(
            400,
            "InvalidSignatureVersion",
            "Specified signature version is not valid.",
        ));
    }
    let timestamped = match get(params, "Timestamp") {
        Some(value) => {
            let timestamp = parse_timestamp(value).ok_or_else(|| {
                RpcError::new(
                    400,
                    "InvalidTimeStamp.Format",
                    "Specified time stamp or date value is not well formatted.",
                )
            })?;
            if (Utc::now() - timestamp).abs() > MAX_SKEW {
                return Err(RpcError::new(
                    400,
                    "InvalidTimeStamp.Expired",
                    "Specified time stamp or date value is expired.",
                ));
            }
            true
        }
        None => false,
    };

    let access_key_id = required(params, "AccessKeyId")?;
    let (caller, secret) = caller_and_secret(shared, access_key_id, get(params, "SecurityToken"))?;
    // Without a timestamp only the nonce window and the token's expiry bound a replay, so a
    // long-term AccessKey must still send one (as every server SDK does).
    if !timestamped && matches!(caller, Caller::Root) {
        return Err(RpcError::missing("Timestamp"));
    }

    let string_to_sign = sign::rpc::string_to_sign(method.as_str(), params);
    let expected = sign::rpc::signature(&string_to_sign, &secret);
    let provided = required(params, "Signature")?;
    if !sign::constant_time_eq(expected.as_bytes(), provided.as_bytes()) {
        // The official Python SDK compares the text after ':' with its own StringToSign to
        // tell a wrong secret from a signing bug, so this message must be exact.
        return Err(RpcError::new(
            400,
            "SignatureDoesNotMatch",
            format!(
                "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
            ),
        ));
    }

    // Only a correctly signed request uses up its nonce, so forgeries cannot burn nonces.
    spend_nonce(shared, access_key_id, required(params, "SignatureNonce")?)?;
    Ok(caller)
}

// ---------------------------------------------------------------------------------------------
// Validation helpers for the VOD actions.

/// Characters outside the Basic Multilingual Plane (emoji and the like), which VOD refuses.
fn has_emoticons(value: &str) -> bool {
    value.chars().any(|c| (c as u32) > 0xFFFF)
}

fn check_text(params: &Params, name: &str, max_bytes: usize) -> Result<Option<String>, RpcError> {
    let Some(value) = get(params, name) else {
        return Ok(None);
    };
    if value.len() > max_bytes {
        return Err(RpcError::length_exceeded(name, max_bytes));
    }
    if has_emoticons(value) {
        return Err(RpcError::new(
            400,
            "IllegalCharacters",
            format!("The specified {name} contains illegal emoticon or special characters."),
        ));
    }
    Ok(Some(value.to_owned()))
}

fn check_tags(params: &Params) -> Result<Option<String>, RpcError> {
    let Some(tags) = check_text(params, "Tags", usize::MAX)? else {
        return Ok(None);
    };
    let list: Vec<&str> = tags.split(',').collect();
    if list.len() > 16 {
        return Err(RpcError::new(
            400,
            "TagsExceededMax",
            "The specified Tags count has exceeded 16.",
        ));
    }
    if list.iter().any(|t| t.len() > 32) {
        return Err(RpcError::length_exceeded("Tag", 32));
    }
    Ok(Some(tags))
}

fn check_long(params: &Params, name: &str) -> Result<Option<i64>, RpcError> {
    get(params, name)
        .map(|v| v.parse::<i64>().map_err(|_| RpcError::invalid_param(name)))
        .transpose()
}

fn check_storage(shared: &Shared, params: &Params) -> Result<(), RpcError> {
    match get(params, "StorageLocation") {
        Some(loc) if loc != shared.storage_location => Err(RpcError::new(
            404,
            "InvalidStorage.NotFound",
            "The StorageLocation does not exist.",
        )),
        _ => Ok(()),
    }
}

/// `UserData` must be a JSON object; `MessageCallback` (object, or string holding one) may
/// carry an http(s) `CallbackURL` of at most 256 bytes; `Extend` is at most 512 bytes.
fn check_user_data(params: &Params) -> Result<Option<String>, RpcError> {
    let Some(raw) = get(params, "UserData") else {
        return Ok(None);
    };
    let value: Value =
        serde_json::from_str(raw).map_err(|_| RpcError::invalid_param("UserData"))?;
    let Value::Object(map) = &value else {
        return Err(RpcError::invalid_param("UserData"));
    };
    if let Some(mc) = map.get("MessageCallback") {
        let mc = nested_json(mc).ok_or_else(|| RpcError::invalid_param("UserData"))?;
        if let Some(url) = mc.get("CallbackURL") {
            let ok = url.as_str().is_some_and(|u| {
                u.len() <= 256
                    && url::Url::parse(u).is_ok_and(|p| {
                        (p.scheme() == "http" || p.scheme() == "https") && p.host().is_some()
                    })
            });
            if !ok {
                return Err(RpcError::invalid_param("CallbackURL"));
            }
        }
    }
    if let Some(extend) = map.get("Extend") {
        if extend_string(extend).len() > 512 {
            return Err(RpcError::length_exceeded("Extend", 512));
        }
    }
    Ok(Some(raw.to_owned()))
}

/// The extension of the last path component (`/` or `\`), lower-cased.
fn extension(file_name: &str) -> Option<String> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let (_, ext) = base.rsplit_once('.')?;
    (!ext.is_empty()).then(|| ext.to_ascii_lowercase())
}

fn new_media_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn upper_hex_id() -> String {
    hex::encode_upper(uuid::Uuid::new_v4().as_bytes())
}

struct NewMedia {
    kind: MediaKind,
    title: String,
    description: Option<String>,
    tags: Option<String>,
    cate_id: Option<i64>,
    cover_url: Option<String>,
    template_group_id: Option<String>,
    user_data: Option<String>,
    original_file_name: Option<String>,
    image_type: Option<String>,
    key: String,
    /// Upload credentials may also write under the prefix (M3U8 segments).
    prefix_scope: bool,
}

/// Registers a media asset and issues its upload address and credential.
fn register(shared: &Shared, params: &Params, m: NewMedia) -> (Media, String, String) {
    let now = Utc::now();
    let bucket = shared.bucket.clone();
    let object_prefix = match m.key.rfind('/') {
        Some(i) => m.key[..=i].to_owned(),
        None => String::new(),
    };
    let media = Media {
        id: new_media_id(),
        kind: m.kind,
        title: m.title,
        description: m.description,
        tags: m.tags,
        cate_id: m.cate_id,
        cover_url: m.cover_url,
        template_group_id: m.template_group_id,
        app_id: get(params, "AppId").unwrap_or("app-1000000").to_owned(),
        user_data: m.user_data,
        original_file_name: m.original_file_name,
        image_type: m.image_type,
        bucket: bucket.clone(),
        key: m.key.clone(),
        object_prefix: object_prefix.clone(),
        status: "Uploading",
        size: None,
        created: now,
        modified: now,
    };
    let address = upload_address(shared, &media);
    let auth = upload_auth(shared, &media, m.prefix_scope);
    {
        let mut inner = shared.lock();
        inner
            .media_by_object
            .insert((bucket, m.key), media.id.clone());
        inner.media.insert(media.id.clone(), media.clone());
        let kind = match media.kind {
            MediaKind::Video => "video",
            MediaKind::Image => "image",
            MediaKind::Attached => "attached_media",
        };
        *inner
            .stats
            .media_created
            .entry(kind.to_owned())
            .or_default() += 1;
    }
    (media, address, auth)
}

fn upload_address(shared: &Shared, media: &Media) -> String {
    UploadAddress {
        endpoint: shared.base_url.clone(),
        bucket: media.bucket.clone(),
        file_name: media.key.clone(),
        object_prefix: Some(media.object_prefix.clone()),
    }
    .encode()
}

/// Fresh STS credentials for this media's object, valid for the current credential TTL.
fn upload_auth(shared: &Shared, media: &Media, prefix_scope: bool) -> String {
    let ttl = shared.credential_ttl();
    let cred = shared.issue_credential(
        ttl,
        Scope::Object {
            bucket: media.bucket.clone(),
            key: media.key.clone(),
            prefix: prefix_scope.then(|| media.object_prefix.clone()),
        },
    );
    // `Expiration` is the remaining lifetime in seconds at issue time (docs/reference/vod-api.md §2.1).
    let issued = cred.expires_at - chrono::Duration::from_std(ttl).unwrap_or_default();
    let encoded = UploadAuth {
        access_key_id: cred.access_key_id,
        access_key_secret: cred.secret,
        security_token: cred.token,
        expires_at: cred.expires_at,
        region: Some(shared.config.region.clone()),
    }
    .encode(issued);
    shared.remember_secret(&encoded);
    encoded
}

// ---------------------------------------------------------------------------------------------
// Actions.

fn create_upload_video(shared: &Shared, params: &Params) -> Result<Value, RpcError> {
    let title = check_text(params, "Title", 128)?.ok_or_else(|| RpcError::missing("Title"))?;
    let file_name = required(params, "FileName")?;
    let ext = extension(file_name)
        .filter(|e| VIDEO_EXTENSIONS.contains(&e.as_str()))
        .ok_or_else(|| {
            RpcError::new(
                400,
                "InvalidFileName.Extension",
                "The specified FileName's extension is illegal.",
            )
        })?;
    let description = check_text(params, "Description", 1024)?;
    let tags = check_tags(params)?;
    check_long(params, "FileSize")?;
    let cate_id = check_long(params, "CateId")?;
    check_storage(shared, params)?;
    let user_data = check_user_data(params)?;

    // `sv/<8 hex>-<creation ms in hex>/<same>.<ext>`, the layout of real keys (§2.1).
    let stem = format!(
        "{}-{:x}",
        &uuid::Uuid::new_v4().simple().to_string()[..8],
        Utc::now().timestamp_millis()
    );
    let key = format!("sv/{stem}/{stem}.{ext}");
    let (media, address, auth) = register(
        shared,
        params,
        NewMedia {
            kind: MediaKind::Video,
            title,
            description,
            tags,
            cate_id,
            cover_url: get(params, "CoverURL").map(str::to_owned),
            template_group_id: get(params, "WorkflowId")
                .or_else(|| get(params, "TemplateGroupId"))
                .map(str::to_owned),
            user_data,
            original_file_name: Some(file_name.to_owned()),
            image_type: None,
            key,
            prefix_scope: ext == "m3u8",
        },
    );
    Ok(json!({
        "VideoId": media.id,
        "UploadAddress": address,
        "UploadAuth": auth,
    }))
}

fn create_upload_image(shared: &Shared, params: &Params) -> Result<Value, RpcError> {
    let image_type = required(params, "ImageType")?;
    if image_type != "default" && image_type != "cover" {
        return Err(RpcError::invalid_param("ImageType"));
    }
    let ext = get(params, "ImageExt")
        .unwrap_or("png")
        .to_ascii_lowercase();
    if !IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        return Err(RpcError::invalid_param("ImageExt"));
    }
    let title = check_text(params, "Title", 128)?;
    let description = check_text(params, "Description", 1024)?;
    let tags = check_tags(params)?;
    let cate_id = check_long(params, "CateId")?;
    check_storage(shared, params)?;
    let user_data = check_user_data(params)?;
    let original = get(params, "OriginalFileName").map(str::to_owned);

    let key = match image_type {
        "cover" => format!("cover/{}.{ext}", upper_hex_id()),
        _ => format!("image/default/{}.{ext}", upper_hex_id()),
    };
    let (media, address, auth) = register(
        shared,
        params,
        NewMedia {
            kind: MediaKind::Image,
            title: title.unwrap_or_default(),
            description,
            tags,
            cate_id,
            cover_url: None,
            template_group_id: None,
            user_data,
            original_file_name: original,
            image_type: Some(image_type.to_owned()),
            key,
            prefix_scope: false,
        },
    );
    let url = file_url(shared, &media.bucket, &media.key);
    Ok(json!({
        "ImageId": media.id,
        "ImageURL": url,
        "FileURL": url,
        "UploadAddress": address,
        "UploadAuth": auth,
    }))
}

fn create_upload_attached_media(shared: &Shared, params: &Params) -> Result<Value, RpcError> {
    let business_type = required(params, "BusinessType")?;
    let allowed = attached_extensions(business_type)
        .ok_or_else(|| RpcError::invalid_param("BusinessType"))?;
    // MediaExt wins over the FileName's extension (docs/reference/vod-api.md §1.3).
    let ext = match get(params, "MediaExt") {
        Some(ext) => {
            let ext = ext.to_ascii_lowercase();
            if !allowed.contains(&ext.as_str()) {
                return Err(RpcError::invalid_param("MediaExt"));
            }
            ext
        }
        None => {
            let file_name = get(params, "FileName").ok_or_else(|| RpcError::missing("MediaExt"))?;
            extension(file_name)
                .filter(|e| allowed.contains(&e.as_str()))
                .ok_or_else(|| {
                    RpcError::new(
                        400,
                        "InvalidFileName.Extension",
                        "The specified FileName's extension is illegal.",
                    )
                })?
        }
    };
    let title = check_text(params, "Title", 128)?;
    let description = check_text(params, "Description", 1024)?;
    let tags = check_tags(params)?;
    check_long(params, "FileSize")?;
    if let Some(ids) = get(params, "CateIds") {
        let list: Vec<&str> = ids.split(',').collect();
        if list.len() > 5 || list.iter().any(|i| i.trim().parse::<i64>().is_err()) {
            return Err(RpcError::invalid_param("CateIds"));
        }
    }
    check_storage(shared, params)?;
    let user_data = check_user_data(params)?;
    let key = format!("{business_type}/{}.{ext}", upper_hex_id());
    let (media, address, auth) = register(
        shared,
        params,
        NewMedia {
            kind: MediaKind::Attached,
            title: title.unwrap_or_default(),
            description,
            tags,
            cate_id: None,
            cover_url: None,
            template_group_id: None,
            user_data,
            original_file_name: get(params, "FileName").map(str::to_owned),
            image_type: None,
            key,
            prefix_scope: false,
        },
    );
    let url = file_url(shared, &media.bucket, &media.key);
    Ok(json!({
        "MediaId": media.id,
        "MediaURL": url,
        "FileURL": url,
        "UploadAddress": address,
        "UploadAuth": auth,
    }))
}

fn find_media(shared: &Shared, id: &str, kind: MediaKind) -> Option<Media> {
    shared
        .lock()
        .media
        .get(id)
        .filter(|m| m.kind == kind)
        .cloned()
}

fn refresh_upload_video(shared: &Shared, params: &Params) -> Result<Value, RpcError> {
    let id = required(params, "VideoId")?;
    let media = find_media(shared, id, MediaKind::Video)
        .ok_or_else(|| RpcError::new(404, "InvalidVideo.NotFound", "The video not exist."))?;
    // Same address, new credential (docs/reference/vod-api.md §1.4).
    let prefix_scope = media.key.ends_with(".m3u8");
    Ok(json!({
        "VideoId": media.id,
        "UploadAddress": upload_address(shared, &media),
        "UploadAuth": upload_auth(shared, &media, prefix_scope),
    }))
}

fn get_video_info(shared: &Shared, params: &Params) -> Result<Value, RpcError> {
    let id = required(params, "VideoId")?;
    let m = find_media(shared, id, MediaKind::Video)
        .ok_or_else(|| RpcError::new(404, "InvalidVideo.NotFound", "The video does not exist."))?;
    Ok(json!({ "Video": video_json(shared, &m) }))
}

fn get_image_info(shared: &Shared, params: &Params) -> Result<Value, RpcError> {
    let id = required(params, "ImageId")?;
    let m = find_media(shared, id, MediaKind::Image).ok_or_else(|| {
        RpcError::new(
            404,
            "NoSuchResource",
            "The specified resource does not exist.",
        )
    })?;
    Ok(json!({ "ImageInfo": image_json(shared, &m) }))
}

/// STS's floor for DurationSeconds (15 minutes).
const MIN_SESSION_SECONDS: u64 = 900;

/// What STS says when DurationSeconds is out of range. The text for the default maximum
/// (3600 s) is documented (help.aliyun.com/document_detail/42775); for other maxima it is a
/// guess that follows the same form ("15min/2hr", or minutes when not whole hours).
pub(crate) fn duration_message(max_seconds: u64) -> String {
    let max = if max_seconds % 3600 == 0 {
        format!("{}hr", max_seconds / 3600)
    } else {
        format!("{}min", max_seconds / 60)
    };
    format!("The Min/Max value of DurationSeconds is 15min/{max}.")
}

fn assume_role(shared: &Shared, params: &Params) -> Result<Value, RpcError> {
    let arn = required(params, "RoleArn")?;
    let role = arn
        .strip_prefix("acs:ram::")
        .and_then(|rest| rest.split_once(":role/"))
        .filter(|(account, role)| {
            !account.is_empty()
                && account.bytes().all(|b| b.is_ascii_digit())
                && !role.is_empty()
                && role
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(|(_, role)| role.to_owned())
        .ok_or_else(|| {
            RpcError::new(
                400,
                "InvalidParameter.RoleArn",
                "The parameter RoleArn is wrongly formed.",
            )
        })?;
    let session = required(params, "RoleSessionName")?;
    if !(2..=64).contains(&session.len())
        || !session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".@_-".contains(&b))
    {
        return Err(RpcError::new(
            400,
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName is wrongly formed.",
        ));
    }
    // 900 s up to the role's MaxSessionDuration; 3600 s when absent (docs/reference/vod-api.md §4).
    let max = shared.config.role_max_session_seconds;
    let duration = match get(params, "DurationSeconds") {
        None => 3600.min(max),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|d| (MIN_SESSION_SECONDS..=max).contains(d))
            .ok_or_else(|| {
                RpcError::new(
                    400,
                    "InvalidParameter.DurationSeconds",
                    duration_message(max),
                )
            })?,
    };
    // Every grammar error gets the same answer from STS; the reason is only logged.
    let policy = match params.get("Policy") {
        None => None,
        Some(text) => match SessionPolicy::parse(text) {
            Ok(p) => Some(Arc::new(p)),
            Err(reason) => {
                tracing::debug!(%reason, "AssumeRole Policy refused");
                return Err(RpcError::new(
                    400,
                    "InvalidParameter.PolicyGrammar",
                    "The parameter Policy has not passed grammar check.",
                ));
            }
        },
    };
    let ttl = shared
        .lock()
        .faults
        .assume_role_ttl_seconds
        .unwrap_or(duration);
    let cred = shared.issue_credential(Duration::from_secs(ttl), Scope::Api { policy });
    let role_id: String = shared
        .account_id
        .chars()
        .chain(shared.account_id.chars())
        .take(17)
        .collect();
    Ok(json!({
        "AssumedRoleUser": {
            "Arn": format!("acs:sts::{}:assumed-role/{role}/{session}", shared.account_id),
            "AssumedRoleId": format!("{role_id}:{session}"),
        },
        "Credentials": {
            "AccessKeyId": cred.access_key_id,
            "AccessKeySecret": cred.secret.expose(),
            "SecurityToken": cred.token.expose(),
            "Expiration": fmt_time(cred.expires_at.trunc_subsecs(0)),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_come_from_the_last_component() {
        assert_eq!(extension(r"D:\video_01.MP4").as_deref(), Some("mp4"));
        assert_eq!(extension("dir.v2/movie").as_deref(), None);
        assert_eq!(extension("a/b/c.m3u8").as_deref(), Some("m3u8"));
        assert_eq!(extension("trailing."), None);
    }
}
