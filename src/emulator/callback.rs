//! What happens when an upload completes: media status moves on, a video's processing starts
//! (`processing`), and VOD's upload event is sent as the real sender writes it
//! (`docs/reference/callbacks.md` §3, §4, §7): compact JSON with `Status` first, delivered by `delivery`.

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;

use super::delivery::{callback_target, send_event};
use super::state::{Media, MediaKind, Shared};

// Field order follows the documented samples (DOC-CUR for videos, DOC-2021 for images and
// attached media), with `Status` first as in real captures.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FileUploadComplete<'a> {
    status: &'a str,
    event_time: &'a str,
    event_type: &'a str,
    video_id: &'a str,
    size: u64,
    file_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    extend: Option<String>,
}

#[derive(Serialize)]
struct ImageUploadComplete<'a> {
    #[serde(rename = "Status")]
    status: &'a str,
    #[serde(rename = "FileURL")]
    file_url: &'a str,
    #[serde(rename = "AppId")]
    app_id: &'a str,
    #[serde(rename = "EventType")]
    event_type: &'a str,
    #[serde(rename = "EventTime")]
    event_time: &'a str,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "ImageId")]
    image_id: &'a str,
    #[serde(rename = "Extend", skip_serializing_if = "Option::is_none")]
    extend: Option<String>,
}

#[derive(Serialize)]
struct AttachedMediaUploadComplete<'a> {
    #[serde(rename = "Status")]
    status: &'a str,
    #[serde(rename = "EventTime")]
    event_time: &'a str,
    #[serde(rename = "EventType")]
    event_type: &'a str,
    #[serde(rename = "AttachedMediaId")]
    attached_media_id: &'a str,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "FileURL")]
    file_url: &'a str,
    #[serde(rename = "Extend", skip_serializing_if = "Option::is_none")]
    extend: Option<String>,
}

/// Called after an object was stored. If it is the `FileName` of a media asset, the asset is
/// marked uploaded and its callback is sent in the background (never delaying the PUT).
pub(crate) fn object_stored(shared: &Arc<Shared>, bucket: &str, key: &str, size: u64) {
    let media = {
        let mut inner = shared.lock();
        let Some(id) = inner
            .media_by_object
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
        else {
            return;
        };
        let Some(media) = inner.media.get_mut(&id) else {
            return;
        };
        media.size = Some(size);
        media.modified = Utc::now();
        media.status = match media.kind {
            MediaKind::Video => "UploadSucc",
            MediaKind::Image | MediaKind::Attached => "Normal",
        };
        media.clone()
    };
    if media.kind == MediaKind::Video {
        super::processing::start(shared.clone(), media.id.clone());
    }
    let Some((url, body)) = event(shared, &media, size) else {
        return;
    };
    let event_type = match media.kind {
        MediaKind::Video => "FileUploadComplete",
        MediaKind::Image => "ImageUploadComplete",
        MediaKind::Attached => "AttachedMediaUploadComplete",
    };
    send_event(shared, url, event_type, body);
}

/// The callback URL and the upload event's body.
fn event(shared: &Shared, media: &Media, size: u64) -> Option<(String, String)> {
    let (url, extend) = callback_target(shared, media)?;
    let event_time = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let file_url = format!("{}/{}/{}", shared.base_url, media.bucket, media.key);
    let body = match media.kind {
        MediaKind::Video => serde_json::to_string(&FileUploadComplete {
            status: "success",
            event_time: &event_time,
            event_type: "FileUploadComplete",
            video_id: &media.id,
            size,
            file_url: &file_url,
            extend,
        }),
        MediaKind::Image => serde_json::to_string(&ImageUploadComplete {
            status: "success",
            file_url: &file_url,
            app_id: &media.app_id,
            event_type: "ImageUploadComplete",
            event_time: &event_time,
            size,
            image_id: &media.id,
            extend,
        }),
        MediaKind::Attached => serde_json::to_string(&AttachedMediaUploadComplete {
            status: "success",
            event_time: &event_time,
            event_type: "AttachedMediaUploadComplete",
            attached_media_id: &media.id,
            size,
            file_url: &file_url,
            extend,
        }),
    }
    .ok()?;
    Some((url, body))
}
