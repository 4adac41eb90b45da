//! After the upload: VOD's processing events applied to the job's media status, milestones on
//! the events exchange, and the reconciler for events that never came. Over real HTTP, with
//! real PostgreSQL, RabbitMQ and the emulator as VOD.

mod common;

use std::time::Duration;

use common::{Events, TestApp, TestAppOptions};
use serde_json::{json, Value};
use vod_ingest::jobs::{Job, JobState};
use vod_ingest::sign::callback;

const KEY: &str = "test-callback-key";

async fn http_only() -> TestApp {
    TestApp::spawn_with(TestAppOptions {
        worker: false,
        sts: None,
        ..Default::default()
    })
    .await
}

async fn post(app: &TestApp, body: &str) -> (u16, String) {
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = callback::signature(&app.callback_url, &ts, KEY);
    let resp = app
        .http
        .post(format!("{}/callbacks/vod", app.http_base()))
        .header("content-type", "application/json")
        .header("X-VOD-TIMESTAMP", ts)
        .header("X-VOD-SIGNATURE", sig)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn job(app: &TestApp, job_id: &str) -> Job {
    app.store().get(job_id).await.unwrap().unwrap()
}

async fn milestones(app: &TestApp, job_id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT milestone FROM ingest_job_events WHERE job_id = $1 AND milestone IS NOT NULL ORDER BY id",
    )
    .bind(job_id)
    .fetch_all(app.store().pool())
    .await
    .unwrap()
}

/// The milestones [`processing_events`] record, once each, sorted.
const SEQUENCE_MILESTONES: [&str; 5] = [
    "analysed",
    "playable",
    "snapshot_ready",
    "stream_ready",
    "stream_ready",
];

fn processing_events(video_id: &str) -> Vec<Value> {
    vec![
        json!({"Status": "success", "VideoId": video_id, "EventType": "FileUploadComplete",
            "EventTime": "2026-12-20T10:00:00Z", "Size": 1, "FileUrl": "http://x/y.mp4"}),
        // The documented VideoAnalysisComplete sends every number as a string.
        json!({"VideoId": video_id, "Duration": "12", "Height": "360", "Width": "630", "Fps": "30",
            "Bitrate": "499", "Size": "1234568", "EventTime": "2026-12-20T10:00:01Z",
            "EventType": "VideoAnalysisComplete", "Status": "success"}),
        json!({"EventType": "SnapshotComplete", "VideoId": video_id, "Status": "success",
            "EventTime": "2026-12-20T10:00:02:120Z", "CoverUrl": "http://x/c.jpg",
            "SnapshotInfos": [{"Status": "success", "SnapshotType": "CoverSnapshot", "SnapshotCount": 1}]}),
        json!({"EventTime": "2026-12-20T10:00:03.500Z", "EventType": "StreamTranscodeComplete",
            "VideoId": video_id, "Status": "success", "Bitrate": "925", "Definition": "LD",
            "Duration": 15.0, "Encrypt": false, "FileUrl": "http://x/ld.mp4", "Format": "mp4",
            "Fps": "30", "Height": 960, "Size": 1815321, "Width": 540, "JobId": "j1",
            "Extend": "{\"job\":\"x\"}"}),
        json!({"EventTime": "2026-12-20T10:00:04Z", "EventType": "StreamTranscodeComplete",
            "VideoId": video_id, "Status": "success", "Definition": "SD", "Format": "mp4",
            "FileUrl": "http://x/sd.mp4", "Height": "540", "Width": "960"}),
        json!({"EventTime": "2026-12-20T10:00:05Z", "EventType": "TranscodeComplete",
            "VideoId": video_id, "Status": "success", "StreamInfos": [
                {"Status": "success", "Definition": "LD", "Format": "mp4", "FileUrl": "http://x/ld.mp4"},
                {"Status": "success", "Definition": "SD", "Format": "mp4", "FileUrl": "http://x/sd.mp4"}]}),
    ]
}

/// Each documented payload (`docs/reference/callbacks.md`, copied to tests/fixtures/callback_examples.json,
/// invalid JSON included) is stored and answered 200, and so is a type nobody knows.
#[tokio::test(flavor = "multi_thread")]
async fn every_documented_event_and_an_unknown_one_is_stored_and_answered_200() {
    let app = http_only().await;
    let fixtures: serde_json::Map<String, Value> =
        serde_json::from_str(include_str!("fixtures/callback_examples.json")).unwrap();
    let mut sent = 0i64;
    for (event_type, samples) in &fixtures {
        for sample in samples.as_array().unwrap() {
            let body = sample.as_str().unwrap();
            let (status, text) = post(&app, body).await;
            assert_eq!(status, 200, "{event_type}: {text}\n{body}");
            sent += 1;
        }
    }
    let unknown = r#"{"EventType":"SomethingNewComplete","Status":"Success","MediaId":"m"}"#;
    assert_eq!(post(&app, unknown).await.0, 200);
    sent += 1;
    let stored: Vec<(String, bool)> = sqlx::query_as(
        "SELECT event_type, event_time IS NOT NULL FROM vod_events WHERE verification = 'verified'",
    )
    .fetch_all(app.store().pool())
    .await
    .unwrap();
    assert_eq!(stored.len() as i64, sent);
    for (event_type, _) in &stored {
        assert!(
            fixtures.contains_key(event_type) || event_type == "SomethingNewComplete",
            "{event_type}"
        );
    }
    // Every documented sample has an EventTime, in one of the three formats.
    let with_time = stored.iter().filter(|(_, t)| *t).count() as i64;
    assert_eq!(with_time, sent - 1, "{stored:?}");
    app.stop().await;
}

/// Events in any order, each twice: the job ends playable, one `playable` milestone, and
/// nothing moves back when an old event comes late.
#[tokio::test(flavor = "multi_thread")]
async fn duplicated_and_reordered_events_make_the_job_playable_once() {
    let app = http_only().await;
    let mut events = Events::listen(&app, &["job.#", "media.#"]).await;
    let media = "aaaa0000aaaa0000aaaa0000aaaa0000";
    app.uploaded_job("order", media).await;
    let mut bodies = processing_events(media);
    bodies.reverse();
    bodies.swap(1, 4);
    for body in bodies.iter().chain(bodies.iter()) {
        let (status, text) = post(&app, &body.to_string()).await;
        assert_eq!(status, 200, "{text}");
    }
    let j = job(&app, "order").await;
    assert_eq!(j.state(), JobState::Completed);
    assert_eq!(j.media_status.as_deref(), Some("Normal"));
    let detail = &j.media_detail;
    assert_eq!(detail["streams"]["LD-mp4"]["status"], "success");
    assert_eq!(detail["streams"]["SD-mp4"]["url"], "http://x/sd.mp4");
    assert_eq!(detail["analysis"]["duration"], 12.0);
    assert_eq!(detail["snapshot"]["cover_url"], "http://x/c.jpg");
    let mut names = milestones(&app, "order").await;
    assert_eq!(
        names.iter().filter(|n| *n == "playable").count(),
        1,
        "{names:?}"
    );
    names.sort();
    assert_eq!(names, SEQUENCE_MILESTONES);
    // A late failure of a stream that succeeded changes nothing.
    let late = json!({"EventTime": "2026-12-20T10:09:00Z", "EventType": "StreamTranscodeComplete",
        "VideoId": media, "Status": "fail", "Definition": "LD", "Format": "mp4"});
    assert_eq!(post(&app, &late.to_string()).await.0, 200);
    let j = job(&app, "order").await;
    assert_eq!(j.media_status.as_deref(), Some("Normal"));
    assert_eq!(j.media_detail["streams"]["LD-mp4"]["status"], "success");

    let seen = events.until("media.playable").await;
    let playable = &seen.last().unwrap().1;
    assert_eq!(playable["job_id"], "order");
    assert_eq!(playable["media_id"], media);
    assert_eq!(playable["media_status"], "Normal");
    assert!(playable["at"].is_string());
    assert_eq!(playable["detail"]["streams"].as_array().unwrap().len(), 2);
    // The job's completion is published before its media milestones.
    let keys: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    let completed = keys.iter().position(|k| *k == "job.completed").unwrap();
    let first_media = keys.iter().position(|k| k.starts_with("media.")).unwrap();
    assert!(completed < first_media, "{keys:?}");

    // `/v1/jobs/{id}` shows VOD's side too.
    let body: Value = app
        .http
        .get(format!("{}/v1/jobs/order", app.admin_base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["media_status"], "Normal");
    assert!(body["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["milestone"] == "playable"));
    events.close().await;
    app.stop().await;
}

/// Callbacks about one job's media arriving at once: each is merged (none lost to a
/// concurrent one, whichever path it takes), each milestone recorded once, and every copy sent
/// again is a duplicate that changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_events_for_one_job_are_all_merged_once() {
    let app = http_only().await;
    let media = "cccc1111cccc1111cccc1111cccc1111";
    app.uploaded_job("many", media).await;
    let first = &processing_events(media)[0];
    assert_eq!(post(&app, &first.to_string()).await.0, 200);
    assert_eq!(job(&app, "many").await.state(), JobState::Completed);
    let bodies: Vec<String> = (0..24)
        .map(|i| {
            json!({"EventTime": format!("2026-12-20T10:01:{i:02}Z"),
                "EventType": "StreamTranscodeComplete", "VideoId": media, "Status": "success",
                "Definition": format!("D{i}"), "Format": "mp4",
                "FileUrl": format!("http://x/{i}.mp4")})
            .to_string()
        })
        .collect();
    let answers = futures_util::future::join_all(bodies.iter().map(|b| post(&app, b))).await;
    for (status, text) in &answers {
        assert_eq!((*status, text.as_str()), (200, "ok\n"));
    }
    let j = job(&app, "many").await;
    let streams = j.media_detail["streams"].as_object().unwrap();
    for i in 0..24 {
        assert_eq!(
            streams[&format!("D{i}-mp4")]["url"],
            format!("http://x/{i}.mp4"),
            "{streams:?}"
        );
    }
    let count = |names: &[String]| names.iter().filter(|n| *n == "stream_ready").count();
    assert_eq!(count(&milestones(&app, "many").await), 24);
    let applied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM vod_events WHERE media_id = $1 AND applied AND job_id = 'many'
           AND event_type = 'StreamTranscodeComplete'",
    )
    .bind(media)
    .fetch_one(app.store().pool())
    .await
    .unwrap();
    assert_eq!(applied, 24);

    let again = futures_util::future::join_all(bodies.iter().map(|b| post(&app, b))).await;
    for (status, text) in &again {
        assert_eq!((*status, text.as_str()), (200, "duplicate\n"));
    }
    assert_eq!(count(&milestones(&app, "many").await), 24);
    assert_eq!(job(&app, "many").await.media_detail, j.media_detail);
    app.stop().await;
}

/// A burst for several jobs at once, every event sent twice: the webhook stores them in
/// batches (a job's upload and processing events, and both copies of one event, may share a
/// transaction), and the outcome is the one-by-one outcome: each job completed once and
/// playable once, each event stored once, every second copy a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_events_for_many_jobs_is_applied_in_batches_as_one_by_one() {
    let app = http_only().await;
    let jobs: Vec<(String, String)> = (0..12)
        .map(|i| (format!("burst-{i}"), format!("{i:032x}")))
        .collect();
    let mut bodies = Vec::new();
    for (job_id, media) in &jobs {
        app.uploaded_job(job_id, media).await;
        bodies.extend(processing_events(media).iter().map(Value::to_string));
    }
    let copies: Vec<&String> = bodies.iter().chain(bodies.iter()).collect();
    let answers = futures_util::future::join_all(copies.iter().map(|b| post(&app, b))).await;
    for (status, text) in &answers {
        assert_eq!(*status, 200, "{text}");
    }
    let ok = answers.iter().filter(|(_, t)| t == "ok\n").count();
    let duplicate = answers.iter().filter(|(_, t)| t == "duplicate\n").count();
    assert_eq!((ok, duplicate), (bodies.len(), bodies.len()));
    for (job_id, media) in &jobs {
        let j = job(&app, job_id).await;
        assert_eq!(j.state(), JobState::Completed, "{job_id}");
        assert_eq!(j.media_status.as_deref(), Some("Normal"), "{job_id}");
        let mut names = milestones(&app, job_id).await;
        names.sort();
        assert_eq!(names, SEQUENCE_MILESTONES, "{job_id}");
        let (completions, applied): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM ingest_job_events WHERE job_id = $1 AND to_state = 'completed'
                       AND from_state = 'uploaded'),
                    (SELECT count(*) FROM vod_events WHERE media_id = $2 AND applied AND job_id = $1
                       AND event_type <> 'FileUploadComplete')",
        )
        .bind(job_id)
        .bind(media)
        .fetch_one(app.store().pool())
        .await
        .unwrap();
        // The upload event is applied only if it came before every processing event (any of
        // which proves the upload too); the five processing events always are.
        assert_eq!((completions, applied), (1, 5), "{job_id}");
    }
    // Some transaction stored more than one callback.
    let metrics = app.metrics().await;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let (sum, count) = (
        value("vod_ingest_callback_batch_size_sum"),
        value("vod_ingest_callback_batch_size_count"),
    );
    assert!(
        sum > count,
        "every batch held one callback ({sum} in {count})"
    );
    app.stop().await;
}

/// A failed transcode: the job shows why (VOD's code and message) and producers get
/// `media.transcode_failed`.
#[tokio::test(flavor = "multi_thread")]
async fn a_transcode_failure_reaches_the_job_and_the_events_exchange() {
    let app = http_only().await;
    let mut events = Events::listen(&app, &["job.#", "media.#"]).await;
    let media = "bbbb0000bbbb0000bbbb0000bbbb0000";
    app.uploaded_job("fails", media).await;
    let failed = json!({"Status": "fail", "VideoId": media, "EventType": "TranscodeComplete",
        "EventTime": "2026-12-20T10:00:05Z", "StreamInfos": [{"Status": "fail", "Definition": "SD",
        "Format": "m3u8", "ErrorCode": "InvalidParameter.ResourceContentBad",
        "ErrorMessage": "The resource operated InputFile is bad"}]});
    assert_eq!(post(&app, &failed.to_string()).await.0, 200);
    let j = job(&app, "fails").await;
    // The upload itself was confirmed by the processing event (its own event was lost).
    assert_eq!(j.state(), JobState::Completed);
    assert_eq!(j.media_status.as_deref(), Some("TranscodeFail"));
    assert_eq!(
        j.media_detail["transcode"]["error_code"],
        "InvalidParameter.ResourceContentBad"
    );
    let line = vod_ingest::display::media_line(&j).unwrap();
    assert!(
        line.contains("InvalidParameter.ResourceContentBad"),
        "{line}"
    );
    let seen = events.until("media.transcode_failed").await;
    let body = &seen.last().unwrap().1;
    assert_eq!(body["media_status"], "TranscodeFail");
    assert_eq!(body["error_code"], "InvalidParameter.ResourceContentBad");
    assert_eq!(
        body["error_message"],
        "The resource operated InputFile is bad"
    );
    events.close().await;
    app.stop().await;
}

/// Events for media no job knows are stored (for an operator to see) and answered 200.
#[tokio::test(flavor = "multi_thread")]
async fn events_for_unknown_media_are_stored_and_answered_200() {
    let app = http_only().await;
    for body in processing_events("cccc0000cccc0000cccc0000cccc0000") {
        let (status, text) = post(&app, &body.to_string()).await;
        assert_eq!((status, text.as_str()), (200, "ok\n"));
    }
    let (stored, applied): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE applied) FROM vod_events")
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    assert_eq!((stored, applied), (6, 0));
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_jobs")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    app.stop().await;
}

fn with_reconciler(missing_checks: u32) -> TestAppOptions {
    TestAppOptions {
        reconcile_after: Some(Duration::from_millis(300)),
        processing_grace: Duration::from_millis(500),
        missing_checks,
        ..Default::default()
    }
}

async fn publish_video(app: &TestApp, job_id: &str) {
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let source = app.media_file(&format!("{job_id}.mp4"), &bytes);
    app.publish(json!({"job_id": job_id, "kind": "video", "title": "t",
        "source": source.display().to_string()}))
        .await;
}

/// The done criterion: a video uploaded through the emulator ends playable, with a
/// `media.playable` message, also when its events are duplicated, reordered, and some lost
/// (here always TranscodeComplete and FileUploadComplete, so the reconciler must step in).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_uploaded_video_ends_playable_despite_lost_duplicated_and_reordered_events() {
    for (name, faults) in [
        ("clean", json!({})),
        (
            "faulty",
            json!({"event_duplicate_rate": 1.0, "event_reorder": true,
                   "drop_event_types": ["TranscodeComplete", "FileUploadComplete"]}),
        ),
    ] {
        let app = TestApp::spawn_with(with_reconciler(3)).await;
        app.set_faults(faults).await;
        let mut events = Events::listen(&app, &["job.#", "media.#"]).await;
        publish_video(&app, name).await;
        let j = app
            .wait_for(name, Duration::from_secs(60), |j| {
                j.media_status.as_deref() == Some("Normal")
            })
            .await;
        assert_eq!(j.state(), JobState::Completed, "{name}");
        let seen = events.until("media.playable").await;
        assert_eq!(seen.last().unwrap().1["job_id"], name);
        // The emulator counts a delivery when it reads our 200, just after the commit.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let stats = loop {
            let stats = app.emulator().stats();
            let settled = if name == "faulty" {
                stats.events_lost.contains_key("TranscodeComplete")
            } else {
                stats.events_sent.contains_key("TranscodeComplete")
            };
            if settled || tokio::time::Instant::now() > deadline {
                break stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if name == "faulty" {
            assert!(
                stats.events_lost.contains_key("TranscodeComplete"),
                "{stats:?}"
            );
            // Each milestone is recorded once although every event came twice.
            let names = milestones(&app, name).await;
            assert_eq!(
                names.iter().filter(|n| *n == "playable").count(),
                1,
                "{names:?}"
            );
        } else {
            assert_eq!(
                stats.events_sent.get("TranscodeComplete"),
                Some(&1),
                "{stats:?}"
            );
            assert_eq!(stats.events_sent.get("StreamTranscodeComplete"), Some(&3));
            assert_eq!(j.media_detail["transcode"]["via"], "TranscodeComplete");
        }
        events.close().await;
        app.stop().await;
    }
}

/// Every processing event lost: the reconciler asks VOD, finds the video `Normal`, and the job
/// says so (`via: reconciler`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_processing_events_are_recovered_by_the_reconciler() {
    let app = TestApp::spawn_with(with_reconciler(3)).await;
    app.set_faults(
        json!({"drop_event_types": ["VideoAnalysisComplete", "SnapshotComplete",
        "StreamTranscodeComplete", "TranscodeComplete"]}),
    )
    .await;
    publish_video(&app, "lost").await;
    let j = app
        .wait_for("lost", Duration::from_secs(60), |j| {
            j.media_status.as_deref() == Some("Normal")
        })
        .await;
    assert_eq!(j.media_detail["transcode"]["via"], "reconciler");
    assert_eq!(milestones(&app, "lost").await, ["playable"]);
    app.stop().await;
}

/// The emulator fails the transcode: the job shows `TranscodeFail` with VOD's reason, and
/// `media.transcode_failed` goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_emulated_transcode_failure_reaches_the_job() {
    let app = TestApp::spawn_with(with_reconciler(3)).await;
    app.set_faults(json!({"transcode_fail": true})).await;
    let mut events = Events::listen(&app, &["job.#", "media.#"]).await;
    publish_video(&app, "badvideo").await;
    let j = app
        .wait_for("badvideo", Duration::from_secs(60), |j| {
            j.media_status.as_deref() == Some("TranscodeFail")
        })
        .await;
    assert_eq!(
        j.media_detail["transcode"]["error_code"],
        "InvalidParameter.ResourceContentBad"
    );
    let seen = events.until("media.transcode_failed").await;
    assert_eq!(
        seen.last().unwrap().1["error_code"],
        "InvalidParameter.ResourceContentBad"
    );
    assert!(!seen.iter().any(|(k, _)| k == "media.playable"));
    events.close().await;
    app.stop().await;
}

/// A media VOD does not know: after the configured checks the job ends `failed` with
/// `MediaNotFound`, instead of a warning every pass.
#[tokio::test(flavor = "multi_thread")]
async fn media_vod_reports_missing_fails_the_job_after_the_configured_checks() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..with_reconciler(2)
    })
    .await;
    app.uploaded_job("ghost", "dddd0000dddd0000dddd0000dddd0000")
        .await;
    let j = app.wait_for_state("ghost", JobState::Failed).await;
    assert_eq!(j.last_error_code.as_deref(), Some("MediaNotFound"));
    let message = j.last_error_message.unwrap();
    assert!(message.contains("in 2 checks"), "{message}");
    assert!(message.contains("vod-ingest retry ghost"), "{message}");
    assert_eq!(j.media_checks, 2);
    app.stop().await;
}

/// Every upload event lost: the reconciler confirms videos, images and attached media (which it
/// could not before GetAttachedMediaInfo), with batch reads only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reconciler_confirms_all_three_kinds_with_batch_reads() {
    let app = TestApp::spawn_with(with_reconciler(3)).await;
    app.set_faults(json!({"callback_drop": true})).await;
    for i in 0..3 {
        publish_video(&app, &format!("batch-v{i}")).await;
    }
    let png = app.media_file("batch.png", b"\x89PNG\r\n\x1a\nnot really");
    app.publish(json!({"job_id": "batch-i", "kind": "image", "source": png.display().to_string()}))
        .await;
    let vtt = app.media_file("batch.vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n");
    app.publish(
        json!({"job_id": "batch-a", "kind": "attached_media", "business_type": "subtitle",
        "source": vtt.display().to_string()}),
    )
    .await;
    for id in ["batch-v0", "batch-v1", "batch-v2", "batch-i", "batch-a"] {
        let j = app.wait_for_state(id, JobState::Completed).await;
        let via: String = sqlx::query_scalar(
            "SELECT detail->>'via' FROM ingest_job_events WHERE job_id = $1 AND to_state = 'completed'",
        )
        .bind(id)
        .fetch_one(app.store().pool())
        .await
        .unwrap();
        assert_eq!(via, "reconciler", "{id}");
        assert!(j.media_status.is_some(), "{id}: {j:?}");
    }
    let requests = app.emulator().stats().requests;
    assert!(
        requests
            .get("GetAttachedMediaInfo")
            .is_some_and(|n| *n >= 1),
        "{requests:?}"
    );
    assert!(
        requests.get("GetVideoInfos").is_some_and(|n| *n >= 1),
        "{requests:?}"
    );
    assert!(
        requests.get("GetImageInfos").is_some_and(|n| *n >= 1),
        "{requests:?}"
    );
    for single in ["GetVideoInfo", "GetImageInfo"] {
        assert_eq!(requests.get(single), None, "{single}: {requests:?}");
    }
    app.stop().await;
}
