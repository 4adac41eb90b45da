//! A worker killed in the middle of a large upload, and a job cancelled in the middle of one.
//! The killed worker is a real `vod-ingest run` process, stopped with SIGKILL.

mod common;

use std::time::Duration;

use common::{path_str, pattern, KillOnDrop, TestApp, TestAppOptions};
use serde_json::json;
use vod_ingest::jobs::{Checkpoints, JobState};
use vod_ingest::oss::{ObjectTarget, OssClient, OssCredentials};
use vod_ingest::secret::Secret;

const PARTS: u64 = 40;
const PARALLELISM: u64 = 2;

/// A worker process with 3 s leases.
fn spawn_worker(app: &TestApp, log: &std::path::Path) -> KillOnDrop {
    common::worker_process(app, log, PARALLELISM, &[("VOD_INGEST_LEASE_SECS", "3")])
}

async fn checkpointed_parts(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM multipart_parts")
        .fetch_one(app.store().pool())
        .await
        .unwrap()
}

async fn wait_for_parts(app: &TestApp, at_least: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while checkpointed_parts(app).await < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "parts never got checkpointed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn admin_credentials() -> OssCredentials {
    OssCredentials {
        access_key_id: "emulator-access-key-id".into(),
        access_key_secret: Secret::from("emulator-access-key-secret"),
        security_token: None,
    }
}

/// Kills the first worker mid-upload; returns (media id, upload id) as they were then.
async fn kill_mid_upload(app: &TestApp, job_id: &str, logs: &std::path::Path) -> (String, String) {
    // 40 parts, two at a time, 100 ms per request: about two seconds of upload.
    app.set_faults(json!({"delay_ms": 100})).await;
    let data = pattern((PARTS * 256 * 1024) as usize, 21);
    let source = path_str(&app.media_file(&format!("{job_id}.mp4"), &data));
    let mut first = spawn_worker(app, &logs.join("first.log"));
    app.publish(json!({"job_id": job_id, "kind": "video", "title": "t", "source": source}))
        .await;
    wait_for_parts(app, 10).await;
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    let job = app.store().get(job_id).await.unwrap().unwrap();
    assert_eq!(job.state(), JobState::Uploading, "killed while uploading");
    let checkpoint = Checkpoints::new(app.store().pool().clone())
        .load(job_id)
        .await
        .unwrap()
        .expect("a checkpoint");
    assert!(checkpoint.parts.len() >= 10 && (checkpoint.parts.len() as u64) < PARTS);
    (job.media_id.unwrap(), checkpoint.upload_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_upload_is_replaced_and_only_in_flight_parts_are_sent_again() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let logs = tempfile::tempdir().unwrap();
    let (media_id, _) = kill_mid_upload(&app, "killed", logs.path()).await;

    let second = spawn_worker(&app, &logs.path().join("second.log"));
    let job = app
        .wait_for("killed", Duration::from_secs(60), |j| {
            j.state() == JobState::Completed
        })
        .await;
    drop(second);

    assert_eq!(
        job.media_id.as_deref(),
        Some(media_id.as_str()),
        "one VideoId"
    );
    let expected = pattern((PARTS * 256 * 1024) as usize, 21);
    assert!(
        app.object_bytes(&job) == expected,
        "object differs from the source"
    );
    let stats = app.emulator().stats();
    assert_eq!(stats.requests.get("CreateUploadVideo").copied(), Some(1));
    assert_eq!(
        stats.requests.get("InitiateMultipartUpload").copied(),
        Some(1),
        "the same upload resumed"
    );
    assert!(
        stats.parts <= PARTS + PARALLELISM,
        "{} parts received for {PARTS}: more than the {PARALLELISM} in flight were sent again",
        stats.parts
    );
    let history = app.store().history("killed").await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.detail.as_ref().is_some_and(|d| d["rescued"] == true)),
        "the second worker rescued the job: {history:#?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_job_whose_upload_id_is_gone_starts_a_new_upload_and_says_so() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let logs = tempfile::tempdir().unwrap();
    let (_, upload_id) = kill_mid_upload(&app, "gone", logs.path()).await;
    let job = app.store().get("gone").await.unwrap().unwrap();
    let target = ObjectTarget {
        endpoint: app.emulator().base_url(),
        bucket: job.upload_bucket.clone().unwrap(),
        key: job.upload_key.clone().unwrap(),
    };
    let oss = OssClient::new(reqwest::Client::new());
    oss.abort_multipart_upload(&target, &admin_credentials(), &upload_id)
        .await
        .unwrap();

    let second = spawn_worker(&app, &logs.path().join("second.log"));
    let job = app
        .wait_for("gone", Duration::from_secs(60), |j| {
            j.state() == JobState::Completed
        })
        .await;
    drop(second);
    assert!(app.object_bytes(&job) == pattern((PARTS * 256 * 1024) as usize, 21));
    assert_eq!(
        app.emulator()
            .stats()
            .requests
            .get("InitiateMultipartUpload")
            .copied(),
        Some(2)
    );
    let history = app.store().history("gone").await.unwrap();
    assert!(
        history.iter().any(|e| e
            .detail
            .as_ref()
            .is_some_and(|d| d.to_string().contains("NoSuchUpload"))),
        "{history:#?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_job_aborts_its_multipart_upload() {
    let app = TestApp::spawn_with(TestAppOptions {
        tune_worker: |w| {
            w.multipart_threshold = 1024 * 1024;
            w.part_size = 256 * 1024;
            w.part_parallelism = 2;
            w.lease = Duration::from_secs(3);
        },
        ..Default::default()
    })
    .await;
    app.set_faults(json!({"delay_ms": 100})).await;
    let source = path_str(&app.media_file("cancel.mp4", &pattern(10 * 1024 * 1024, 22)));
    app.publish(json!({"job_id": "cancel", "kind": "video", "title": "t", "source": source}))
        .await;
    wait_for_parts(&app, 3).await;
    let checkpoint = Checkpoints::new(app.store().pool().clone())
        .load("cancel")
        .await
        .unwrap()
        .unwrap();
    app.store().cancel("cancel").await.unwrap().unwrap();

    // The worker notices at its next lease renewal, aborts, and drops the checkpoint.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while Checkpoints::new(app.store().pool().clone())
        .load("cancel")
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkpoint was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let target = ObjectTarget {
        endpoint: app.emulator().base_url(),
        bucket: checkpoint.bucket.clone(),
        key: checkpoint.object_key.clone(),
    };
    let err = OssClient::new(reqwest::Client::new())
        .list_parts(&target, &admin_credentials(), &checkpoint.upload_id)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NoSuchUpload");
    let job = app.store().get("cancel").await.unwrap().unwrap();
    assert_eq!(job.state(), JobState::Cancelled);
    app.stop().await;
}
