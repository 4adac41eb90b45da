//! What VOD does with a video after its upload, as a sender of events: a plausible processing
//! sequence (`docs/reference/callbacks.md` §7.5; the order is not documented) of `VideoAnalysisComplete`,
//! `SnapshotComplete`, one `StreamTranscodeComplete` per definition of the template group and
//! `TranscodeComplete`, while the status moves `UploadSucc` -> `Transcoding` -> `Normal`
//! (or `TranscodeFail` under the `transcode_fail` fault). The template group
//! `VOD_NO_TRANSCODE` (VOD's "No Transcoding" group) sends no processing event at all: only
//! the upload event, and the video is `Normal` at once.
//!
//! Faults (`Faults`): `transcode_delay_ms` (how long processing takes), `transcode_fail`,
//! `event_reorder` (the events are delivered after processing, shuffled), and the delivery
//! faults of [`super::delivery::send_event`] (loss, duplication, delay, dropped types).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::seq::SliceRandom as _;
use serde_json::{json, Value};

use super::delivery::{callback_target, send_event};
use super::state::{Media, Shared};

const DEFAULT_TRANSCODE_DELAY: Duration = Duration::from_millis(1000);

/// VOD's template group without transcoding.
pub(crate) const NO_TRANSCODE_GROUP: &str = "VOD_NO_TRANSCODE";

/// The emulated default template group: (definition, width, height, kbit/s).
const DEFINITIONS: &[(&str, u64, u64, u64)] = &[
    ("LD", 640, 360, 421),
    ("SD", 960, 540, 779),
    ("HD", 1280, 720, 1110),
];

/// What transcoding failures say (VOD's documented code for unreadable input).
const FAIL_CODE: &str = "InvalidParameter.ResourceContentBad";
const FAIL_MESSAGE: &str = "The resource operated InputFile is bad";

fn now_text() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn set_status(shared: &Shared, id: &str, from: &[&str], to: &'static str) {
    let mut inner = shared.lock();
    if let Some(m) = inner.media.get_mut(id) {
        if from.contains(&m.status) {
            m.status = to;
            m.modified = Utc::now();
        }
    }
}

fn with_extend(mut body: Value, extend: &Option<String>) -> Value {
    if let (Some(e), Value::Object(map)) = (extend, &mut body) {
        map.insert("Extend".to_owned(), json!(e));
    }
    body
}

fn stream(
    media: &Media,
    shared: &Shared,
    definition: (&str, u64, u64, u64),
    ok: bool,
    started: &str,
) -> Value {
    let (name, width, height, bitrate) = definition;
    let size = media.size.unwrap_or(0);
    let duration = (size as f64 / 125_000.0).max(1.0);
    let mut s = json!({
        "Status": if ok { "success" } else { "fail" },
        "Bitrate": bitrate.to_string(),
        "Definition": name,
        "Duration": duration,
        "Encrypt": false,
        "IsAudio": false,
        "FileUrl": format!("{}/{}/{}/{}-{}.mp4", shared.base_url.replacen("https://", "http://", 1),
            media.bucket, media.id, uuid::Uuid::new_v4().simple(), name.to_ascii_lowercase()),
        "Format": "mp4",
        "Fps": "25",
        "Height": height,
        "Width": width,
        "Size": ((bitrate * 125) as f64 * duration) as u64,
        "JobId": uuid::Uuid::new_v4().simple().to_string(),
        "StartTime": started,
        "FinishTime": now_text(),
    });
    if !ok {
        s["ErrorCode"] = json!(FAIL_CODE);
        s["ErrorMessage"] = json!(FAIL_MESSAGE);
        for k in ["FileUrl", "Size"] {
            s.as_object_mut().expect("an object").remove(k);
        }
    }
    s
}

/// Runs the processing of video `id` in the background.
pub(crate) fn start(shared: Arc<Shared>, id: String) {
    tokio::spawn(async move { run(shared, id).await });
}

async fn run(shared: Arc<Shared>, id: String) {
    let (delay, fail, reorder) = {
        let inner = shared.lock();
        (
            inner
                .faults
                .transcode_delay_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TRANSCODE_DELAY),
            inner.faults.transcode_fail,
            inner.faults.event_reorder,
        )
    };
    let Some(media) = shared.lock().media.get(&id).cloned() else {
        return;
    };
    if media.template_group_id.as_deref() == Some(NO_TRANSCODE_GROUP) {
        tokio::time::sleep(delay).await;
        set_status(&shared, &id, &["UploadSucc"], "Normal");
        return;
    }
    let target = callback_target(&shared, &media);
    let steps = DEFINITIONS.len() as u32 + 3;
    let tick = delay / steps;
    let mut held: Vec<(&'static str, Value)> = Vec::new();
    let emit = |event_type: &'static str, body: Value, held: &mut Vec<(&'static str, Value)>| {
        let body = with_extend(body, &target.as_ref().and_then(|t| t.1.clone()));
        if reorder {
            held.push((event_type, body));
        } else if let Some((url, _)) = &target {
            send_event(&shared, url.clone(), event_type, body.to_string());
        }
    };
    let started = now_text();

    tokio::time::sleep(tick).await;
    set_status(&shared, &id, &["UploadSucc"], "Transcoding");
    let size = media.size.unwrap_or(0);
    let (_, width, height, bitrate) = DEFINITIONS[DEFINITIONS.len() - 1];
    // The documented sample sends every number as a string.
    emit(
        "VideoAnalysisComplete",
        json!({
            "Status": "success",
            "VideoId": media.id,
            "EventType": "VideoAnalysisComplete",
            "EventTime": now_text(),
            "Duration": format!("{}", (size / 125_000).max(1)),
            "Height": height.to_string(),
            "Width": width.to_string(),
            "Fps": "25",
            "Bitrate": bitrate.to_string(),
            "Size": size.to_string(),
        }),
        &mut held,
    );

    tokio::time::sleep(tick).await;
    let cover = format!(
        "{}/{}/{}/covers/{}-00001.jpg",
        shared.base_url, media.bucket, media.id, media.id
    );
    emit(
        "SnapshotComplete",
        json!({
            "Status": "success",
            "VideoId": media.id,
            "EventType": "SnapshotComplete",
            "EventTime": now_text(),
            "CoverUrl": cover,
            "SnapshotInfos": [{
                "Status": "success",
                "SnapshotType": "CoverSnapshot",
                "SnapshotCount": 1,
                "SnapshotFormat": format!("{}/covers/{}-{{SnapshotCount}}.jpg", media.id, media.id),
                "SnapshotRegular": format!("{}/{}/{}/covers/{}-{{SnapshotCount}}.jpg", shared.base_url, media.bucket, media.id, media.id),
                "JobId": uuid::Uuid::new_v4().simple().to_string(),
            }],
        }),
        &mut held,
    );

    let mut streams = Vec::new();
    for definition in DEFINITIONS {
        tokio::time::sleep(tick).await;
        let s = stream(&media, &shared, *definition, !fail, &started);
        let mut body = s.clone();
        body["VideoId"] = json!(media.id);
        body["EventType"] = json!("StreamTranscodeComplete");
        body["EventTime"] = json!(now_text());
        emit("StreamTranscodeComplete", body, &mut held);
        streams.push(s);
    }

    tokio::time::sleep(tick).await;
    set_status(
        &shared,
        &id,
        &["UploadSucc", "Transcoding"],
        if fail { "TranscodeFail" } else { "Normal" },
    );
    let mut done = json!({
        "Status": if fail { "fail" } else { "success" },
        "VideoId": media.id,
        "EventType": "TranscodeComplete",
        "EventTime": now_text(),
        "StreamInfos": streams,
    });
    if fail {
        done["ErrorCode"] = json!(FAIL_CODE);
        done["ErrorMessage"] = json!(FAIL_MESSAGE);
    }
    emit("TranscodeComplete", done, &mut held);

    if reorder {
        held.shuffle(&mut rand::thread_rng());
        if let Some((url, _)) = &target {
            for (event_type, body) in held {
                send_event(&shared, url.clone(), event_type, body.to_string());
                // Apart enough that the shuffled order is the order of arrival.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
