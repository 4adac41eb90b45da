//! The batch reads: `GetVideoInfos` (`VideoIds`), `GetImageInfos` (`ImageIds`) and
//! `GetAttachedMediaInfo` (`MediaIds`, singular action name as VOD spells it), up to 20 ids
//! each, comma-separated. Unknown ids are listed in `NonExistVideoIds` / `NonExistImageIds` /
//! `NonExistMediaIds` (help.aliyun.com/document_detail/86042, /454905, and the GetImageInfos
//! page); the list of found ones is `VideoList`, `ImageInfo` (an array here) and
//! `AttachedMediaList`.
//!
//! Too many ids: VOD documents `LimitExceeded.MediaIds` ("The input parameter \"MediaIds\"
//! Exceed the limit.", 400) for `MediaIds` (GetUploadDetails, `docs/reference/vod-api.md` §1.6). The same
//! form for `VideoIds` and `ImageIds` is a guess.

use serde_json::{json, Map, Value};

use super::errors::RpcError;
use super::media_json::{file_url, image_json, video_json};
use super::params::{fmt_time, required, Params};
use super::state::{Media, MediaKind, Shared};

/// VOD's limit for every batch read.
const MAX_IDS: usize = 20;

/// The ids of `name`, deduplicated in order; refused when empty or over the limit.
fn ids(params: &Params, name: &str) -> Result<Vec<String>, RpcError> {
    let raw = required(params, name)?;
    let mut out: Vec<String> = Vec::new();
    for id in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
    if out.is_empty() {
        return Err(RpcError::invalid_param(name));
    }
    if out.len() > MAX_IDS {
        return Err(RpcError::new(
            400,
            format!("LimitExceeded.{name}"),
            format!("The input parameter \"{name}\" Exceed the limit."),
        ));
    }
    Ok(out)
}

/// Found media (in the order asked) and the ids of those that do not exist (as this kind).
fn lookup(shared: &Shared, ids: &[String], kind: MediaKind) -> (Vec<Media>, Vec<String>) {
    let inner = shared.lock();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match inner.media.get(id).filter(|m| m.kind == kind) {
            Some(m) => found.push(m.clone()),
            None => missing.push(id.clone()),
        }
    }
    (found, missing)
}

pub(crate) fn get_video_infos(shared: &Shared, params: &Params) -> Result<Value, RpcError> {
    let ids = ids(params, "VideoIds")?;
    let (found, missing) = lookup(shared, &ids, MediaKind::Video);
    let list: Vec<Value> = found
        .iter()
        .map(|m| Value::Object(video_json(shared, m)))
        .collect();
    Ok(json!({ "VideoList": list, "NonExistVideoIds": missing }))
}

pub(crate) fn get_image_infos(shared: &Shared, params: &Params) -> Result<Value, RpcError> {
    let ids = ids(params, "ImageIds")?;
    let (found, missing) = lookup(shared, &ids, MediaKind::Image);
    let list: Vec<Value> = found
        .iter()
        .map(|m| Value::Object(image_json(shared, m)))
        .collect();
    Ok(json!({ "ImageInfo": list, "NonExistImageIds": missing }))
}

pub(crate) fn get_attached_media_info(shared: &Shared, params: &Params) -> Result<Value, RpcError> {
    let ids = ids(params, "MediaIds")?;
    let (found, missing) = lookup(shared, &ids, MediaKind::Attached);
    let list: Vec<Value> = found.iter().map(|m| attached_json(shared, m)).collect();
    Ok(json!({ "AttachedMediaList": list, "NonExistMediaIds": missing }))
}

fn attached_json(shared: &Shared, m: &Media) -> Value {
    let mut a = Map::new();
    a.insert("MediaId".to_owned(), json!(m.id));
    a.insert("Title".to_owned(), json!(m.title));
    // The key starts with the business type (`watermark/…`), as CreateUploadAttachedMedia made it.
    let business_type = m.key.split('/').next().unwrap_or_default();
    a.insert("BusinessType".to_owned(), json!(business_type));
    if let Some(d) = &m.description {
        a.insert("Description".to_owned(), json!(d));
    }
    if let Some(t) = &m.tags {
        a.insert("Tags".to_owned(), json!(t));
    }
    a.insert("Status".to_owned(), json!(m.status));
    a.insert("URL".to_owned(), json!(file_url(shared, &m.bucket, &m.key)));
    if let Some(size) = m.size {
        a.insert("FileSize".to_owned(), json!(size));
    }
    a.insert("StorageLocation".to_owned(), json!(shared.storage_location));
    a.insert("CreationTime".to_owned(), json!(fmt_time(m.created)));
    a.insert("ModificationTime".to_owned(), json!(fmt_time(m.modified)));
    a.insert("AppId".to_owned(), json!(m.app_id));
    Value::Object(a)
}
