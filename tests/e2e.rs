//! The whole pipeline: RabbitMQ → worker → VOD → OSS (emulator) → callback → PostgreSQL.

mod common;

use std::time::Duration;

use common::{path_str, pattern, TestApp};
use serde_json::json;
use vod_ingest::jobs::JobState;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_of_every_kind_complete_with_their_media_id_and_exact_bytes() {
    let app = TestApp::spawn().await;
    let video = pattern(3 * 1024 * 1024 + 17, 1);
    let image = pattern(20_000, 2);
    let subtitle = b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n".to_vec();
    let jobs = [
        (
            "e2e-video",
            json!({"job_id": "e2e-video", "kind": "video", "title": "A video",
            "source": path_str(&app.media_file("movie.mp4", &video))}),
            video,
        ),
        (
            "e2e-image",
            json!({"job_id": "e2e-image", "kind": "image", "image_type": "cover",
            "source": format!("file://{}", path_str(&app.media_file("cover.png", &image)))}),
            image,
        ),
        (
            "e2e-subtitle",
            json!({"job_id": "e2e-subtitle", "kind": "attached_media",
            "business_type": "subtitle", "source": path_str(&app.media_file("subs.vtt", &subtitle))}),
            subtitle,
        ),
    ];
    for (_, message, _) in &jobs {
        app.publish(message.clone()).await;
    }
    for (job_id, _, bytes) in &jobs {
        let job = app.wait_for_state(job_id, JobState::Completed).await;
        let media_id = job.media_id.clone().expect("media id recorded");
        assert_eq!(media_id.len(), 32, "{job_id}: {media_id}");
        assert_eq!(job.bytes_total, Some(bytes.len() as i64));
        assert_eq!(job.bytes_uploaded, bytes.len() as i64);
        assert_eq!(
            &app.object_bytes(&job),
            bytes,
            "{job_id}: stored object differs"
        );
        let history: Vec<String> = app
            .store()
            .history(job_id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.to_state)
            .collect();
        assert_eq!(history.first().map(String::as_str), Some("queued"));
        assert!(
            history.contains(&"uploaded".to_string()) || history.ends_with(&["completed".into()])
        );
        assert_eq!(
            history.last().map(String::as_str),
            Some("completed"),
            "{history:?}"
        );
    }
    // The callbacks that completed the jobs were verified and stored. (VOD's processing
    // events for the video may have arrived too, on a slow machine before the count: they are
    // not what completed a job.)
    let verified: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM vod_events WHERE verification = 'verified' AND applied
           AND event_type IN ('FileUploadComplete', 'ImageUploadComplete', 'AttachedMediaUploadComplete')",
    )
    .fetch_one(app.store().pool())
    .await
    .unwrap();
    assert_eq!(verified, 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_that_are_not_jobs_are_dead_lettered_while_good_jobs_complete() {
    let app = TestApp::spawn().await;
    let good = path_str(&app.media_file("good.mp4", &pattern(100_000, 3)));
    app.publish(json!({"job_id": "good-1", "kind": "video", "title": "t", "source": good}))
        .await;
    app.publish_raw(b"{not json").await;
    app.publish(json!({"kind": "hologram", "source": good}))
        .await;
    app.publish(json!({"kind": "video", "title": "t"})).await;
    app.publish(json!({"kind": "video", "title": "t", "source": "/etc/hostname"}))
        .await;
    app.publish(json!({"job_id": "good-2", "kind": "image", "source":
        path_str(&app.media_file("good.png", &pattern(5000, 4)))}))
        .await;

    let dead = app.dead_letters(4, Duration::from_secs(30)).await;
    let reasons: Vec<&str> = dead.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(dead.len(), 4, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("not a valid job")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("unknown kind")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("missing field `source`")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("outside the allowed roots")),
        "{reasons:?}"
    );
    assert_eq!(dead[0].0, b"{not json", "the original body is kept");

    app.wait_for_state("good-1", JobState::Completed).await;
    app.wait_for_state("good-2", JobState::Completed).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_jobs")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(count, 2, "invalid messages create no job rows");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_message_with_the_same_job_id_creates_nothing_new() {
    let app = TestApp::spawn().await;
    let source = path_str(&app.media_file("dup.mp4", &pattern(50_000, 5)));
    let message = json!({"job_id": "dup", "kind": "video", "title": "t", "source": source});
    app.publish(message.clone()).await;
    let first = app.wait_for_state("dup", JobState::Completed).await;
    app.publish(message).await;
    // A third, distinct job behind the duplicate proves the duplicate was consumed.
    app.publish(json!({"job_id": "after-dup", "kind": "video", "title": "t", "source": source}))
        .await;
    app.wait_for_state("after-dup", JobState::Completed).await;
    let again = app.store().get("dup").await.unwrap().unwrap();
    assert_eq!(again.media_id, first.media_id);
    assert_eq!(again.attempts, 1);
    let stats = app.emulator().stats();
    assert_eq!(stats.requests.get("CreateUploadVideo").copied(), Some(2));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_that_vanishes_fails_the_job_with_an_actionable_error() {
    let app = TestApp::spawn_with(common::TestAppOptions {
        worker: true,
        ..Default::default()
    })
    .await;
    let path = app.media_file("gone.mp4", &pattern(1000, 6));
    // Validated at intake, deleted before upload: a dangling reference the worker must report.
    let store = app.store().clone();
    let spec = vod_ingest::jobs::JobMessage {
        job_id: Some("gone".into()),
        kind: "video".into(),
        title: Some("t".into()),
        source: path_str(&path),
        ..Default::default()
    }
    .validate(&[std::fs::canonicalize(app.media.path()).unwrap()])
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    store
        .insert(&spec, vod_ingest::jobs::Origin::Queue)
        .await
        .unwrap();
    let job = app.wait_for_state("gone", JobState::Failed).await;
    assert_eq!(job.last_error_code.as_deref(), Some("SourceNotFound"));
    assert!(job.last_error_message.unwrap().contains("gone.mp4"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_callback_never_comes_is_completed_by_the_reconciler() {
    let app = TestApp::spawn_with(common::TestAppOptions {
        reconcile_after: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let faults = app
        .http
        .put(format!("{}/_emulator/faults", app.emulator().base_url()))
        .json(&json!({"callback_drop": true}))
        .send()
        .await
        .unwrap();
    assert!(faults.status().is_success(), "{faults:?}");
    let source = path_str(&app.media_file("quiet.mp4", &pattern(10_000, 7)));
    app.publish(json!({"job_id": "quiet", "kind": "video", "title": "t", "source": source}))
        .await;
    app.wait_for_state("quiet", JobState::Completed).await;
    let history = app.store().history("quiet").await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.from_state.as_deref(), Some("uploaded"));
    assert_eq!(last.detail.as_ref().unwrap()["via"], "reconciler");
    let callbacks: i64 = sqlx::query_scalar("SELECT count(*) FROM vod_events")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(callbacks, 0, "the emulator dropped the callback");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_transition_is_published_on_the_events_exchange() {
    let app = TestApp::spawn().await;
    let mut events = common::Events::listen(&app, &["job.#"]).await;
    let source = path_str(&app.media_file("events.mp4", &pattern(10_000, 8)));
    app.publish(json!({"job_id": "events", "kind": "video", "title": "t", "source": source}))
        .await;
    let mut seen = Vec::new();
    for (key, body) in events.until("job.completed").await {
        assert_eq!(body["job_id"], "events");
        assert_eq!(key, format!("job.{}", body["state"].as_str().unwrap()));
        for field in ["media_id", "error_code", "error_message", "at"] {
            assert!(body.get(field).is_some(), "{field} missing from {body}");
        }
        seen.push(body["state"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["queued", "uploading", "uploaded", "completed"]);
    events.close().await;
    app.stop().await;
}

/// The same pipeline with our client signing V3 (`VOD_INGEST_SIGNATURE_VERSION=v3`): every VOD
/// call the worker makes is verified by the emulator's V3 path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_complete_with_signature_v3() {
    let app = TestApp::spawn_with(common::TestAppOptions {
        signature_version: vod_ingest::vod::SignatureVersion::V3,
        ..Default::default()
    })
    .await;
    let video = pattern(1024 * 1024 + 3, 7);
    let image = pattern(10_000, 8);
    app.publish(
        json!({"job_id": "v3-video", "kind": "video", "title": "V3 测试 a+b",
        "source": path_str(&app.media_file("v3 movie.mp4", &video))}),
    )
    .await;
    app.publish(json!({"job_id": "v3-image", "kind": "image",
        "source": path_str(&app.media_file("v3.png", &image))}))
        .await;
    for (job_id, bytes) in [("v3-video", &video), ("v3-image", &image)] {
        let job = app.wait_for_state(job_id, JobState::Completed).await;
        assert_eq!(&app.object_bytes(&job), bytes, "{job_id}");
    }
    let stats = app.emulator.as_ref().unwrap().stats();
    assert!(
        stats.signatures.get("v3").copied().unwrap_or(0) >= 2,
        "{stats:?}"
    );
    assert_eq!(stats.signatures.get("v1"), None, "{stats:?}");
    app.stop().await;
}
