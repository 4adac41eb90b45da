//! Entry points into the parsers of outside input that are private to their modules, for the
//! `cargo fuzz` targets in `fuzz/`. Compiled only with the `fuzzing` feature, so the crate's
//! public API is unchanged without it; nothing else should call these.
//!
//! Each function is a thin wrapper: it calls the parser the service itself calls, and hands
//! back plain data so that a target can check properties of the result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use crate::oss::{ListedPart, OssError, UploadedPart};
pub use crate::vod::{ImageInfo, StsCredentials, UploadTicket, VideoInfo, VodError};
pub use crate::worker::m3u8::{PlaylistError, RefKind};

// ---------------------------------------------------------------------------------------------
// Webhook (src/webhook)

/// What `POST /callbacks/vod` reads from a body.
#[derive(Debug)]
pub struct CallbackEvent {
    pub event_type: String,
    pub media_id: Option<String>,
    pub succeeded: bool,
    pub size: Option<u64>,
    pub event_time: Option<chrono::DateTime<chrono::Utc>>,
    pub extend: Option<serde_json::Value>,
}

pub fn parse_callback_event(body: &[u8]) -> Option<CallbackEvent> {
    crate::jobs::parse_event(body).map(|e| CallbackEvent {
        event_type: e.event_type,
        media_id: e.media_id,
        succeeded: e.succeeded,
        size: e.size,
        event_time: e.event_time,
        extend: e.extend,
    })
}

// ---------------------------------------------------------------------------------------------
// OSS client (src/oss)

/// The error the client builds from a non-2xx answer.
pub fn oss_error_from_response(
    status: u16,
    body: &[u8],
    x_oss_err: Option<&str>,
    header_request_id: Option<&str>,
    header_ec: Option<&str>,
) -> OssError {
    crate::oss::error::from_response(status, body, x_oss_err, header_request_id, header_ec)
}

pub fn oss_initiate_answer(text: &str) -> Result<String, crate::oss::parts::MalformedAnswer> {
    crate::oss::parts::parse_initiate_answer(text)
}

/// One ListParts page: its parts and the next page's marker.
pub fn oss_list_parts_page(
    text: &str,
) -> Result<(Vec<ListedPart>, Option<String>), crate::oss::parts::MalformedAnswer> {
    crate::oss::parts::parse_list_parts_page(text).map(|page| (page.parts, page.next_marker))
}

/// The CompleteMultipartUpload body the client sends, and the CRC-64 it then expects.
pub fn oss_complete_body(parts: &[UploadedPart]) -> (String, u64) {
    crate::oss::parts::complete_body(parts)
}

// ---------------------------------------------------------------------------------------------
// VOD and STS clients (src/vod)

/// A CreateUpload* / RefreshUploadVideo answer, decoded as the client decodes it.
pub fn vod_upload_answer(
    action: &'static str,
    body: &[u8],
    requested_id: Option<&str>,
) -> Result<UploadTicket, VodError> {
    crate::vod::rpc::decode_answer::<crate::vod::client::UploadWire>(action, 200, body)?
        .into_ticket(action, requested_id)
}

pub fn vod_video_info_answer(body: &[u8], video_id: &str) -> Result<VideoInfo, VodError> {
    crate::vod::rpc::decode_answer::<crate::vod::client::VideoInfoWire>("GetVideoInfo", 200, body)
        .map(|w| w.into_info(video_id))
}

pub fn vod_image_info_answer(body: &[u8], image_id: &str) -> Result<ImageInfo, VodError> {
    crate::vod::rpc::decode_answer::<crate::vod::client::ImageInfoWire>("GetImageInfo", 200, body)
        .map(|w| w.into_info(image_id))
}

pub fn sts_assume_role_answer(body: &[u8]) -> Result<StsCredentials, VodError> {
    crate::vod::rpc::decode_answer::<crate::vod::sts::AssumeRoleResponse>("AssumeRole", 200, body)?
        .into_credentials()
}

/// The error for a non-2xx VOD/STS answer, with `secrets` redacted as `call_once` does.
pub fn vod_error_response(
    status: u16,
    body: &[u8],
    our_string_to_sign: &str,
    secrets: &[String],
) -> VodError {
    crate::vod::error::from_error_response("CreateUploadVideo", status, body, our_string_to_sign)
        .redact(secrets)
}

// ---------------------------------------------------------------------------------------------
// M3U8 playlists (src/worker/m3u8.rs)

/// A URI the playlist refers to: its 0-based line, what it is, the URI as written.
#[derive(Debug)]
pub struct PlaylistRef {
    pub line: usize,
    pub kind: RefKind,
    pub uri: String,
}

/// What the parser finds: the playlist's lines and the URIs in them.
pub fn m3u8_parse(text: &str) -> Result<(Vec<String>, Vec<PlaylistRef>), PlaylistError> {
    crate::worker::m3u8::parse(text).map(|p| {
        let refs = p
            .refs
            .into_iter()
            .map(|r| PlaylistRef {
                line: r.line,
                kind: r.kind,
                uri: r.uri,
            })
            .collect();
        (p.lines, refs)
    })
}

/// One file a plan uploads: where it is read from (a path or a URL) and its object name.
#[derive(Debug)]
pub struct PlannedFile {
    pub local: Option<PathBuf>,
    pub remote: Option<url::Url>,
    pub name: String,
    pub kind: RefKind,
}

/// The rewritten playlist and the files it needs.
#[derive(Debug)]
pub struct PlaylistPlan {
    pub playlist: String,
    pub files: Vec<PlannedFile>,
}

/// Plans the upload of a local playlist in `dir` (canonical), with `roots` allowed.
pub fn m3u8_plan_local(
    text: &str,
    dir: &Path,
    roots: &[PathBuf],
) -> Result<PlaylistPlan, PlaylistError> {
    plan(
        text,
        &crate::worker::m3u8::Base::Local(dir.to_owned()),
        roots,
    )
}

/// Plans the upload of the playlist at `url`.
pub fn m3u8_plan_remote(text: &str, url: &url::Url) -> Result<PlaylistPlan, PlaylistError> {
    plan(text, &crate::worker::m3u8::Base::Remote(url.clone()), &[])
}

fn plan(
    text: &str,
    base: &crate::worker::m3u8::Base,
    roots: &[PathBuf],
) -> Result<PlaylistPlan, PlaylistError> {
    use crate::worker::m3u8::Location;
    crate::worker::m3u8::plan(text, base, roots).map(|p| PlaylistPlan {
        playlist: p.playlist,
        files: p
            .resources
            .into_iter()
            .map(|r| {
                let (local, remote) = match r.location {
                    Location::Local(path) => (Some(path), None),
                    Location::Remote(url) => (None, Some(url)),
                };
                PlannedFile {
                    local,
                    remote,
                    name: r.name,
                    kind: r.kind,
                }
            })
            .collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// Emulator (src/emulator)

/// The RPC parameters the emulator reads from a query string and a form body.
pub fn emulator_rpc_params(query: &[u8], form: Option<&[u8]>) -> BTreeMap<String, String> {
    crate::emulator::params::collect_params(query, form)
}

/// The emulator's reading of a PostObject policy (JSON, before Base64) and the size range its
/// conditions allow for a form with `fields`; `Err` holds OSS's error code.
pub fn emulator_post_policy(
    policy_json: &[u8],
    bucket: &str,
    key: &str,
    fields: &[(String, String)],
) -> Result<(Option<u64>, Option<u64>), String> {
    crate::emulator::fuzz_post_policy(policy_json, bucket, key, fields)
}

/// The emulator's reading of an RPC `Timestamp`.
pub fn emulator_rpc_timestamp(value: &str) -> Option<DateTime<Utc>> {
    crate::emulator::params::parse_timestamp(value)
}

/// The parts a CompleteMultipartUpload body lists, or the OSS error code refusing it.
pub fn emulator_complete_body(text: &str) -> Result<Vec<(u32, String)>, String> {
    crate::emulator::multipart::parse_complete_body(text).map_err(|e| e.code)
}

/// A parsed RAM session policy.
#[derive(Debug)]
pub struct SessionPolicy(crate::emulator::policy::SessionPolicy);

impl SessionPolicy {
    pub fn parse(text: &str) -> Result<Self, crate::emulator::policy::PolicyGrammarError> {
        crate::emulator::policy::SessionPolicy::parse(text).map(Self)
    }

    pub fn allows(&self, action: &str, resource: &str) -> bool {
        self.0.allows(action, resource)
    }
}

/// The glob matcher policies use for actions and resources.
pub fn emulator_wildcard_match(pattern: &str, value: &str) -> bool {
    crate::emulator::policy::wildcard_match(pattern, value)
}

/// The parts of an OSS V4 `Authorization` header, as the emulator reads them.
#[derive(Debug)]
pub struct V4Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub additional_headers: Vec<String>,
    pub signature: String,
}

pub fn emulator_oss_v4_authorization(header: &str) -> Option<V4Authorization> {
    crate::emulator::oss_v4::parse(header).map(|a| V4Authorization {
        access_key_id: a.access_key_id.to_owned(),
        date: a.date.to_owned(),
        region: a.region.to_owned(),
        additional_headers: a.additional_headers,
        signature: a.signature.to_owned(),
    })
}
