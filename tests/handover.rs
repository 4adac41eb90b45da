//! SIGTERM and SIGINT: a worker takes no new job from the first signal on, lets the jobs in
//! flight finish within the grace period, then releases the rest, so another worker continues
//! at once rather than after the lease expires; a second signal stops it at once. With real
//! `vod-ingest run` processes.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{path_str, pattern, worker_process, KillOnDrop, TestApp, TestAppOptions};
use serde_json::json;
use vod_ingest::jobs::JobState;

const PARTS: u64 = 40;
const PARALLELISM: u64 = 2;

fn signal(process: &KillOnDrop, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &process.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit; its exit code, and how long that took.
async fn exit_of(mut process: KillOnDrop, within: Duration) -> (Option<i32>, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            return (status.code(), started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "the worker did not exit within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn parts_done(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM multipart_parts")
        .fetch_one(app.store().pool())
        .await
        .unwrap()
}

async fn wait_for_parts(app: &TestApp, at_least: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while parts_done(app).await < at_least {
        assert!(Instant::now() < deadline, "parts never got checkpointed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A slow 10 MiB video (40 parts, two at a time, 100 ms per request) being uploaded by a worker.
async fn upload_in_progress(
    app: &TestApp,
    job_id: &str,
    logs: &std::path::Path,
    grace_secs: &str,
) -> (KillOnDrop, Vec<u8>) {
    app.set_faults(json!({"delay_ms": 100})).await;
    let data = pattern((PARTS * 256 * 1024) as usize, 33);
    let source = path_str(&app.media_file(&format!("{job_id}.mp4"), &data));
    // The default 60 s lease: a hand-over that waited for it would be obvious.
    let first = worker_process(
        app,
        &logs.join("first.log"),
        PARALLELISM,
        &[("VOD_INGEST_SHUTDOWN_GRACE_SECS", grace_secs)],
    );
    app.publish(json!({"job_id": job_id, "kind": "video", "title": "t", "source": source}))
        .await;
    wait_for_parts(app, 8).await;
    (first, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_upload_hands_the_job_to_another_worker_at_once() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let logs = tempfile::tempdir().unwrap();
    let (first, data) = upload_in_progress(&app, "handover", logs.path(), "0").await;
    let second = worker_process(&app, &logs.path().join("second.log"), PARALLELISM, &[]);

    let signalled = Instant::now();
    signal(&first, "TERM");
    let (code, took) = exit_of(first, Duration::from_secs(15)).await;
    assert_eq!(code, Some(0), "a clean stop exits 0");
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    let job = app
        .wait_for("handover", Duration::from_secs(40), |j| {
            j.state() == JobState::Completed
        })
        .await;
    let handed_over_in = signalled.elapsed();
    assert!(
        handed_over_in < Duration::from_secs(30),
        "finished {handed_over_in:?} after SIGTERM: the 60 s lease was waited for"
    );
    drop(second);
    assert!(app.object_bytes(&job) == data);

    let history = app.store().history("handover").await.unwrap();
    let released = history
        .iter()
        .position(|e| {
            e.detail
                .as_ref()
                .is_some_and(|d| d["released"] == "shutdown")
        })
        .unwrap_or_else(|| panic!("no release in the history: {history:#?}"));
    assert_eq!(
        (
            history[released].from_state.as_deref(),
            history[released].to_state.as_str()
        ),
        (Some("uploading"), "queued")
    );
    let owners: Vec<String> = history
        .iter()
        .filter_map(|e| {
            e.detail
                .as_ref()?
                .get("worker")?
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(owners.len(), 2, "claimed once by each worker: {owners:?}");
    assert_ne!(owners[0], owners[1]);
    assert!(
        !history
            .iter()
            .any(|e| e.detail.as_ref().is_some_and(|d| d["rescued"] == true)),
        "handed over, not rescued after the lease expired"
    );
    // The released attempt does not count against the job.
    assert_eq!(job.attempts, 1);
    let stats = app.emulator().stats();
    assert_eq!(
        stats.requests.get("InitiateMultipartUpload").copied(),
        Some(1)
    );
    assert!(
        stats.parts <= PARTS + PARALLELISM,
        "{} parts for {PARTS}: more than those in flight were sent again",
        stats.parts
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn within_the_grace_period_the_worker_finishes_its_job_and_takes_no_new_one() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let logs = tempfile::tempdir().unwrap();
    let (first, data) = upload_in_progress(&app, "graceful", logs.path(), "60").await;
    signal(&first, "INT");
    // Published after the signal: this worker must leave it on the queue.
    let later = path_str(&app.media_file("later.png", &pattern(1000, 1)));
    app.publish(json!({"job_id": "later", "kind": "image", "source": later}))
        .await;
    let (code, _) = exit_of(first, Duration::from_secs(60)).await;
    assert_eq!(code, Some(0));
    let job = app.store().get("graceful").await.unwrap().unwrap();
    assert!(
        matches!(job.state(), JobState::Uploaded | JobState::Completed),
        "finished by its own worker: {job:#?}"
    );
    assert!(app.object_bytes(&job) == data);
    assert!(
        app.store().get("later").await.unwrap().is_none(),
        "a stopping worker took a new job"
    );
    // The message waited on the queue for the next worker.
    let next = worker_process(&app, &logs.path().join("next.log"), PARALLELISM, &[]);
    app.wait_for_state("later", JobState::Completed).await;
    drop(next);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_signal_stops_at_once() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let logs = tempfile::tempdir().unwrap();
    let (first, _) = upload_in_progress(&app, "impatient", logs.path(), "60").await;
    signal(&first, "TERM");
    // Wait until the first signal was taken (the worker logs it), then send another.
    let log = logs.path().join("first.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("draining")
    {
        assert!(Instant::now() < deadline, "the first signal was not taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&first, "TERM");
    let (code, took) = exit_of(first, Duration::from_secs(10)).await;
    assert_eq!(code, Some(130));
    assert!(took < Duration::from_secs(3), "took {took:?}");
    app.stop().await;
}
