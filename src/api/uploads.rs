//! The handlers: upload credentials (create, refresh) and STS tokens.

use std::collections::BTreeSet;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::post_form::PostForm;
use super::{ApiError, ApiState, Caller};
use crate::jobs::{
    ClientRefresh, ClientSpec, JobKind, JobMessage, JobState, NewClientUpload, UploadStatus,
};
use crate::keys::KeySettings;
use crate::vod::UploadTicket;

/// What `POST /v1/uploads` and the refresh answer: VOD's answer, passed through. No `Debug`:
/// it holds a credential.
#[derive(Serialize)]
pub struct UploadCredential {
    pub job_id: String,
    pub kind: JobKind,
    /// VideoId, ImageId or MediaId.
    pub media_id: String,
    /// Base64, exactly as VOD sent it: the client SDKs take it unmodified.
    pub upload_address: String,
    /// Base64, exactly as VOD sent it. A credential: never logged or stored.
    pub upload_auth: String,
    /// When `upload_auth` stops working (decoded from it).
    pub expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_url: Option<String>,
    /// With `"upload_method": "post_form"`: a PostObject form for the object, signed by the
    /// service, whose policy holds the size limit (OSS refuses a larger file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form: Option<PostForm>,
    /// VOD's RequestId, for support cases.
    pub request_id: String,
}

impl UploadCredential {
    fn new(job_id: &str, kind: JobKind, ticket: UploadTicket) -> Self {
        let id = ticket.media_id.clone();
        Self {
            job_id: job_id.to_owned(),
            kind,
            media_id: id.clone(),
            upload_address: ticket.upload_address_b64,
            upload_auth: ticket.upload_auth_b64.expose().to_owned(),
            expires_at: ticket.auth.expires_at,
            video_id: (kind == JobKind::Video).then(|| id.clone()),
            image_id: (kind == JobKind::Image).then(|| id.clone()),
            image_url: ticket.media_url.clone().filter(|_| kind == JobKind::Image),
            media_url: ticket.media_url.filter(|_| kind == JobKind::AttachedMedia),
            file_url: ticket.file_url,
            form: None,
            request_id: ticket.request_id,
        }
    }

    /// A credential with its form (`max_bytes`: the declared size, capped at the key's limit).
    fn with_form(
        job_id: &str,
        kind: JobKind,
        ticket: UploadTicket,
        method: UploadMethod,
        region: &str,
        max_bytes: u64,
    ) -> Result<Self, ApiError> {
        let form = match method {
            UploadMethod::Credential => None,
            UploadMethod::PostForm => Some(
                super::post_form::build(&ticket, region, max_bytes, Utc::now()).map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "PostFormUnavailable",
                        e.to_string(),
                    )
                })?,
            ),
        };
        let mut credential = Self::new(job_id, kind, ticket);
        credential.form = form;
        Ok(credential)
    }
}

/// How the client will send the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum UploadMethod {
    /// With an OSS SDK and the upload credential (PUT, or multipart).
    #[default]
    Credential,
    /// One PostObject form (`form` in the answer), as a mini program's `wx.uploadFile` or an
    /// HTML form sends it.
    PostForm,
}

impl UploadMethod {
    fn take_from(
        object: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, ApiError> {
        match object.remove("upload_method") {
            None | Some(serde_json::Value::Null) => Ok(Self::default()),
            Some(v) => serde_json::from_value(v).map_err(|_| {
                ApiError::bad_request(
                    "InvalidRequest",
                    "upload_method must be \"credential\" (an OSS SDK with the credential) or \"post_form\" (a signed PostObject form)",
                )
            }),
        }
    }
}

fn invalid_body(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        "InvalidRequest",
        format!("the request body is not valid: {e}"),
    )
}

/// An optional JSON object body: empty means every field's default. serde would also read a
/// struct from an array of its fields in order, which no client means: that is refused.
fn parse_optional_body<T: Default + serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    match serde_json::from_slice(body).map_err(invalid_body)? {
        value @ serde_json::Value::Object(_) => serde_json::from_value(value).map_err(invalid_body),
        _ => Err(invalid_body("expected a JSON object")),
    }
}

/// The body of `POST /v1/uploads`: the job message's metadata plus the file's size; there is
/// no `source` (the client holds the file) and no `job_id` (the service picks it). The VOD
/// parameters that act with the service's authority come from the key's `settings`, never
/// from the client.
fn parse_upload_request(
    body: &[u8],
    settings: &KeySettings,
) -> Result<(ClientSpec, u64, UploadMethod), ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(invalid_body)?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| invalid_body("expected a JSON object"))?;
    let method = UploadMethod::take_from(object)?;
    for field in ["source", "job_id"] {
        if object.contains_key(field) {
            return Err(ApiError::bad_request(
                "InvalidRequest",
                format!("{field} is not accepted here: the client uploads the file itself, and the service assigns the job_id"),
            ));
        }
    }
    for field in KeySettings::FIELDS {
        if object.contains_key(field) {
            return Err(ApiError::bad_request(
                "FieldNotAllowed",
                format!("{field} is not accepted from clients: it is a setting of the API key, which the service's operators choose (vod-ingest api-key update --{})", field.replace('_', "-")),
            ));
        }
    }
    if let Some(user_data) = object.get("user_data") {
        let extra = match user_data {
            serde_json::Value::Object(o) => o.keys().find(|k| *k != "Extend").cloned(),
            serde_json::Value::Null => None,
            _ => Some("(not an object)".to_owned()),
        };
        if let Some(extra) = extra {
            return Err(ApiError::bad_request(
                "FieldNotAllowed",
                format!("user_data may hold only Extend (your own data, at most 512 bytes), not {extra}: the callback and acceleration settings are the service's"),
            ));
        }
    }
    let from_key = [
        ("app_id", &settings.app_id),
        ("workflow_id", &settings.workflow_id),
        ("template_group_id", &settings.template_group_id),
        ("storage_location", &settings.storage_location),
        ("callback_url", &settings.callback_url),
    ];
    for (field, v) in from_key {
        if let Some(v) = v {
            object.insert(field.into(), serde_json::Value::String(v.clone()));
        }
    }
    let file_size = match object.remove("file_size") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        None => {
            return Err(ApiError::bad_request(
                "InvalidRequest",
                "file_size is required: the file's size in bytes",
            ))
        }
        Some(_) => None,
    }
    .ok_or_else(|| {
        ApiError::bad_request(
            "InvalidRequest",
            "file_size must be a whole number of bytes",
        )
    })?;
    object.insert("source".into(), serde_json::Value::String("client".into()));
    let message: JobMessage = serde_json::from_value(value).map_err(invalid_body)?;
    let spec = message
        .validate_client()
        .map_err(|e| ApiError::bad_request("InvalidRequest", e.0))?;
    Ok((spec, file_size, method))
}

fn check_limits(caller: &Caller, kind: JobKind, size: u64) -> Result<(), ApiError> {
    let limits = &caller.key.limits;
    if !limits.kinds.contains(&kind) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "KindNotAllowed",
            format!(
                "this API key may not upload {kind}; it may upload: {}",
                kinds_list(&limits.kinds)
            ),
        ));
    }
    if size > limits.max_file_size {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "FileTooLarge",
            format!(
                "the file is {size} bytes; this API key may upload at most {} bytes",
                limits.max_file_size
            ),
        ));
    }
    Ok(())
}

fn kinds_list(kinds: &[JobKind]) -> String {
    if kinds.is_empty() {
        return "nothing".into();
    }
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn action_for(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Video => "CreateUploadVideo",
        JobKind::Image => "CreateUploadImage",
        JobKind::AttachedMedia => "CreateUploadAttachedMedia",
    }
}

fn ticket_record(ticket: &UploadTicket) -> ClientRefresh {
    ClientRefresh {
        media_id: ticket.media_id.clone(),
        upload_endpoint: ticket.address.endpoint.clone(),
        upload_bucket: ticket.address.bucket.clone(),
        upload_key: ticket.address.file_name.clone(),
        credential_expires_at: ticket.auth.expires_at,
    }
}

/// `POST /v1/uploads`.
pub(super) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<UploadCredential>, ApiError> {
    let (spec, size, method) = parse_upload_request(&body?, &caller.key.settings)?;
    let action = action_for(spec.kind);
    if let Err(e) = check_limits(&caller, spec.kind, size) {
        caller.audit(&state, action, None, None, &e.code).await;
        return Err(e);
    }
    let ticket = match state
        .vod
        .create_upload(&spec.message.vod_request(spec.kind, size))
        .await
    {
        Ok(t) => t,
        Err(e) => {
            let err = ApiError::from_vod(action, &e);
            caller.audit(&state, action, None, None, &err.code).await;
            return Err(err);
        }
    };
    let job_id = uuid::Uuid::new_v4().to_string();
    let mut message = spec.message.clone();
    message.job_id = Some(job_id.clone());
    let record = ticket_record(&ticket);
    let upload = NewClientUpload {
        job_id: job_id.clone(),
        kind: spec.kind,
        title: spec.title.clone(),
        file_name: spec.file_name.clone(),
        request: serde_json::to_value(&message).expect("a message serializes"),
        media_id: record.media_id,
        upload_endpoint: record.upload_endpoint,
        upload_bucket: record.upload_bucket,
        upload_key: record.upload_key,
        declared_size: size,
        api_key_id: caller.key.key_id.clone(),
        max_file_size: caller.key.limits.max_file_size,
        credential_expires_at: record.credential_expires_at,
    };
    // The media exists in VOD now; without its row the upload would be invisible, so the
    // client gets no credential either (the media stays `Uploading` in VOD).
    state
        .store
        .insert_client_upload(&upload)
        .await
        .map_err(ApiError::store_unavailable)?;
    state.outbox.wake();
    caller
        .audit(
            &state,
            action,
            Some(&job_id),
            Some(&ticket.media_id),
            "issued",
        )
        .await;
    tracing::info!(%job_id, media_id = %ticket.media_id, key_id = %caller.key.key_id, "issued an upload credential to a client");
    let max_bytes = size.min(caller.key.limits.max_file_size);
    UploadCredential::with_form(&job_id, spec.kind, ticket, method, &state.region, max_bytes)
        .map(Json)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshRequest {
    /// The VideoId the client holds (the JS SDK's `uploadInfo.videoId` after a page reload).
    #[serde(default)]
    video_id: Option<String>,
    /// `post_form` for a new form with the new credential.
    #[serde(default)]
    upload_method: Option<UploadMethod>,
}

/// `POST /v1/uploads/{job_id}/refresh`: `{job_id}` may also be the media id the client holds.
pub(super) async fn refresh(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    caller: Caller,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<UploadCredential>, ApiError> {
    let request: RefreshRequest = parse_optional_body(&body?)?;
    let job = owned_upload(&state, &caller, id, |kind| match kind {
        JobKind::Video => "RefreshUploadVideo",
        other => action_for(other),
    })
    .await?;
    let kind = job.kind();
    let action = match kind {
        JobKind::Video => "RefreshUploadVideo",
        other => action_for(other),
    };
    if let Some(video_id) = request.video_id.as_deref() {
        if job.media_id.as_deref() != Some(video_id) {
            caller
                .audit(&state, action, Some(&job.job_id), None, "UploadNotFound")
                .await;
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "UploadNotFound",
                format!(
                    "video {video_id:?} was not issued for upload {}",
                    job.job_id
                ),
            ));
        }
    }
    if job.state() != JobState::AwaitingUpload {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "UploadNotPending",
            format!(
                "upload {} is {}: only an upload that is still awaiting its file gets new credentials",
                job.job_id, job.state
            ),
        ));
    }
    if let Err(e) = check_limits(&caller, kind, job.bytes_total.unwrap_or(0).max(0) as u64) {
        caller
            .audit(&state, action, Some(&job.job_id), None, &e.code)
            .await;
        return Err(e);
    }
    let media_id = job.media_id.clone().unwrap_or_default();
    let result = match kind {
        // Same address and VideoId: the client continues where it was.
        JobKind::Video => state.vod.refresh_upload_video(&media_id).await,
        // Images and attached media cannot be refreshed: a new asset supersedes the old one.
        _ => {
            let message: JobMessage = serde_json::from_value(job.request.clone())
                .map_err(|e| {
                    tracing::error!(job_id = %job.job_id, error = %e, "a client upload's stored request does not parse");
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "CorruptJob", "the upload's stored request cannot be read; ask the service's operators")
                })?;
            let size = job.bytes_total.unwrap_or(0).max(0) as u64;
            state
                .vod
                .create_upload(&message.vod_request(kind, size))
                .await
        }
    };
    let ticket = match result {
        Ok(t) => t,
        Err(e) => {
            let err = ApiError::from_vod(action, &e);
            caller
                .audit(
                    &state,
                    action,
                    Some(&job.job_id),
                    Some(&media_id),
                    &err.code,
                )
                .await;
            return Err(err);
        }
    };
    let updated = state
        .store
        .refresh_client_upload(&job.job_id, &ticket_record(&ticket))
        .await
        .map_err(ApiError::store_unavailable)?;
    if updated.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "UploadNotPending",
            format!(
                "upload {} finished while its credential was being refreshed",
                job.job_id
            ),
        ));
    }
    caller
        .audit(
            &state,
            action,
            Some(&job.job_id),
            Some(&ticket.media_id),
            "issued",
        )
        .await;
    let max_bytes =
        (job.bytes_total.unwrap_or(0).max(0) as u64).min(caller.key.limits.max_file_size);
    UploadCredential::with_form(
        &job.job_id,
        kind,
        ticket,
        request.upload_method.unwrap_or_default(),
        &state.region,
        max_bytes,
    )
    .map(Json)
}

/// The upload `{job_id}` names (its job id, or the media id the client holds), if this key
/// created it. Another key's upload gets the same 404 as an id that does not exist, so its
/// existence is not even confirmed; that attempt is audited under `action_of(kind)`.
async fn owned_upload(
    state: &ApiState,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
    action_of: impl Fn(JobKind) -> &'static str,
) -> Result<crate::jobs::Job, ApiError> {
    // The service's ids are ASCII: one that is not UTF-8 names no upload.
    let Ok(Path(id)) = id else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "UploadNotFound",
            "no upload with this id (it is not UTF-8) was issued by this service",
        ));
    };
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "UploadNotFound",
            format!("no upload {id:?} was issued by this service"),
        )
    };
    let job = state
        .store
        .find_client_upload(&id)
        .await
        .map_err(ApiError::store_unavailable)?
        .ok_or_else(not_found)?;
    if job.api_key_id.as_deref() != Some(caller.key.key_id.as_str()) {
        caller
            .audit(
                state,
                action_of(job.kind()),
                Some(&job.job_id),
                None,
                "NotYourUpload",
            )
            .await;
        return Err(not_found());
    }
    Ok(job)
}

/// `GET /v1/uploads/{job_id}`: `{job_id}` may also be the media id the client holds.
pub(super) async fn status(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    caller: Caller,
) -> Result<Json<UploadStatus>, ApiError> {
    let job = owned_upload(&state, &caller, id, |_| "GetUpload").await?;
    Ok(Json(UploadStatus::of(&job)))
}

/// The body of a cancel: nothing, or an empty object (room for a reason later).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelRequest {}

/// `POST /v1/uploads/{job_id}/cancel`: ends an upload still waiting for its file. Refresh
/// answers 409 from then on, and a callback that arrives later is recorded but does not
/// revive it.
pub(super) async fn cancel(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    caller: Caller,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<UploadStatus>, ApiError> {
    let CancelRequest {} = parse_optional_body(&body?)?;
    let job = owned_upload(&state, &caller, id, |_| "CancelUpload").await?;
    match state
        .store
        .cancel_client_upload(&job.job_id)
        .await
        .map_err(ApiError::store_unavailable)?
    {
        Ok(_) => {
            state.outbox.wake();
            caller
                .audit(
                    &state,
                    "CancelUpload",
                    Some(&job.job_id),
                    job.media_id.as_deref(),
                    "cancelled",
                )
                .await;
        }
        Err(refused) => {
            let now = match refused {
                crate::jobs::MoveRefused::WrongState { current, .. } => current,
                _ => job.state,
            };
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "UploadNotPending",
                format!(
                    "upload {} is {now}: only an upload that is still awaiting its file can be cancelled",
                    job.job_id
                ),
            ));
        }
    }
    let job = state
        .store
        .get(&job.job_id)
        .await
        .map_err(ApiError::store_unavailable)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "UploadNotFound",
                "the upload was removed while it was being cancelled",
            )
        })?;
    Ok(Json(UploadStatus::of(&job)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StsTokenRequest {
    /// The kinds the token is for [default: every kind the key may upload].
    #[serde(default)]
    kinds: Option<Vec<String>>,
    #[serde(default)]
    duration_seconds: Option<u64>,
}

/// No `Debug`: it is a credential.
#[derive(Serialize)]
pub(super) struct StsToken {
    access_key_id: String,
    /// A credential: never logged or stored.
    access_key_secret: String,
    /// A credential: never logged or stored.
    security_token: String,
    expiration: String,
    region: String,
    /// The VOD actions the token allows.
    allowed_actions: Vec<&'static str>,
}

/// `POST /v1/sts-token`.
pub(super) async fn sts_token(
    State(state): State<ApiState>,
    caller: Caller,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<StsToken>, ApiError> {
    let request: StsTokenRequest = parse_optional_body(&body?)?;
    let refuse = |status, code: &str, message: String| ApiError::new(status, code, message);
    if !caller.key.limits.allow_sts {
        caller
            .audit(&state, "AssumeRole", None, None, "StsNotAllowed")
            .await;
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "StsNotAllowed",
            "this API key may not get STS tokens; use POST /v1/uploads, or ask for a key with STS allowed".into(),
        ));
    }
    let Some(issuer) = state.tokens.clone() else {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "StsNotConfigured",
            "this service hands out no STS tokens (its operators have not set VOD_INGEST_STS_ROLE_ARN); use POST /v1/uploads".into(),
        ));
    };
    let allowed = &caller.key.limits.kinds;
    let kinds: BTreeSet<JobKind> = match &request.kinds {
        None => allowed.iter().copied().collect(),
        Some(names) => {
            let mut kinds = BTreeSet::new();
            for name in names {
                let kind: JobKind = name.parse().map_err(|e: crate::jobs::UnknownName| {
                    ApiError::bad_request("InvalidRequest", e.to_string())
                })?;
                if !allowed.contains(&kind) {
                    return Err(refuse(
                        StatusCode::FORBIDDEN,
                        "KindNotAllowed",
                        format!(
                            "this API key may not upload {kind}; it may upload: {}",
                            kinds_list(allowed)
                        ),
                    ));
                }
                kinds.insert(kind);
            }
            kinds
        }
    };
    if kinds.is_empty() {
        return Err(ApiError::bad_request(
            "InvalidRequest",
            "kinds is empty: name at least one of video, image, attached_media",
        ));
    }
    let settings = issuer.settings();
    let max = settings.max_duration.as_secs();
    let duration = request
        .duration_seconds
        .unwrap_or(settings.default_duration.as_secs());
    if !(super::sts::MIN_DURATION_SECS as u64..=max).contains(&duration) {
        return Err(ApiError::bad_request(
            "InvalidDuration",
            format!(
                "duration_seconds must be between {} and {max}",
                super::sts::MIN_DURATION_SECS
            ),
        ));
    }
    let refresh = caller.key.limits.allow_sts_refresh;
    let issued = match issuer
        .issue(&caller.key.key_id, kinds.clone(), refresh, duration as u32)
        .await
    {
        Ok(i) => i,
        Err(e) => {
            let err = ApiError::from_vod("AssumeRole", &e);
            caller
                .audit(&state, "AssumeRole", None, None, &err.code)
                .await;
            return Err(err);
        }
    };
    caller
        .audit(
            &state,
            "AssumeRole",
            None,
            None,
            if issued.cached {
                "issued_cached"
            } else {
                "issued"
            },
        )
        .await;
    let c = issued.credentials;
    Ok(Json(StsToken {
        access_key_id: c.access_key_id,
        access_key_secret: c.access_key_secret.expose().to_owned(),
        security_token: c.security_token.expose().to_owned(),
        expiration: c.expiration.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        region: state.region.clone(),
        allowed_actions: super::sts::upload_actions(&kinds, refresh),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_requests_name_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"kind":"video","file_name":"a.mp4","title":"t"}"#,
                "file_size is required",
            ),
            (
                r#"{"kind":"video","file_name":"a.mp4","title":"t","file_size":-1}"#,
                "whole number",
            ),
            (
                r#"{"kind":"video","file_name":"a.mp4","title":"t","file_size":1,"source":"/x"}"#,
                "source is not accepted",
            ),
            (
                r#"{"kind":"video","file_name":"a.mp4","title":"t","file_size":1,"titel":"x"}"#,
                "titel",
            ),
            (
                r#"{"kind":"video","title":"t","file_size":1}"#,
                "file_name is required",
            ),
            (
                r#"{"kind":"video","file_name":"a.txt","title":"t","file_size":1}"#,
                "not an audio or video format",
            ),
            (
                r#"{"kind":"video","file_name":"../a.mp4","title":"t","file_size":1}"#,
                "not a path",
            ),
            (r#"[1]"#, "JSON object"),
        ];
        for (body, expected) in cases {
            let err = parse_upload_request(body.as_bytes(), &KeySettings::default()).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(err.message.contains(expected), "{body}: {}", err.message);
        }
        let (spec, size, _) = parse_upload_request(
            br#"{"kind":"image","file_name":"p.JPG","file_size":20480,"tags":["a"]}"#,
            &KeySettings::default(),
        )
        .unwrap();
        assert_eq!(
            (spec.kind, size, spec.extension.as_str()),
            (JobKind::Image, 20480, "jpg")
        );
        assert_eq!(spec.title, "p");
    }

    #[test]
    fn the_accounts_parameters_come_from_the_key_not_the_client() {
        for body in [
            r#"{"kind":"video","file_name":"a.mp4","title":"t","file_size":1,"app_id":"app-x"}"#,
            r#"{"kind":"video","file_name":"a.mp4","title":"t","file_size":1,"workflow_id":"w"}"#,
            r#"{"kind":"video","file_name":"a.mp4","title":"t","file_size":1,"template_group_id":"g"}"#,
            r#"{"kind":"image","file_name":"a.png","file_size":1,"storage_location":"s"}"#,
            r#"{"kind":"video","file_name":"a.mp4","title":"t","file_size":1,"callback_url":"https://evil.example/cb"}"#,
            r#"{"kind":"video","file_name":"a.mp4","title":"t","file_size":1,"user_data":{"MessageCallback":{"CallbackURL":"https://evil.example/cb"}}}"#,
            r#"{"kind":"video","file_name":"a.mp4","title":"t","file_size":1,"user_data":{"AccelerateConfig":{"Type":"oss"}}}"#,
        ] {
            let err = parse_upload_request(body.as_bytes(), &KeySettings::default()).unwrap_err();
            assert_eq!(
                (err.status, err.code.as_str()),
                (StatusCode::BAD_REQUEST, "FieldNotAllowed"),
                "{body}"
            );
        }
        let settings = KeySettings::parse(
            Some("app-1"),
            Some("wf-1"),
            None,
            None,
            Some("https://hooks.example/vod"),
        )
        .unwrap();
        let (spec, _, _) = parse_upload_request(
            br#"{"kind":"video","file_name":"a.mp4","title":"t","file_size":1,"user_data":{"Extend":"mine"}}"#,
            &settings,
        )
        .unwrap();
        let m = &spec.message;
        assert_eq!(
            (m.app_id.as_deref(), m.workflow_id.as_deref()),
            (Some("app-1"), Some("wf-1"))
        );
        let user_data = m.user_data.as_ref().unwrap();
        assert_eq!(
            user_data["MessageCallback"]["CallbackURL"],
            "https://hooks.example/vod"
        );
        assert_eq!(user_data["Extend"], "mine");
    }
}
