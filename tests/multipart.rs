//! Large files: parallel multipart uploads, CRC-64 at every step, credential renewal, and
//! remote sources, against the emulator over real HTTP.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use common::{path_str, pattern, TestApp, TestAppOptions};
use serde_json::json;
use vod_ingest::crc64;
use vod_ingest::jobs::JobState;
use vod_ingest::worker::WorkerConfig;

const KIB: u64 = 1024;

/// Multipart above 1 MiB, 256 KiB parts, three in flight.
fn small_parts(w: &mut WorkerConfig) {
    w.multipart_threshold = 1024 * KIB;
    w.part_size = 256 * KIB;
    w.part_parallelism = 3;
}

fn small_parts_private_sources(w: &mut WorkerConfig) {
    small_parts(w);
    w.remote.allow_private = true;
}

async fn checkpoint_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM multipart_uploads")
        .fetch_one(app.store().pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multipart_upload_arrives_byte_for_byte_with_its_crc() {
    let app = TestApp::spawn_with(TestAppOptions {
        tune_worker: small_parts,
        ..Default::default()
    })
    .await;
    let data = pattern(3 * 1024 * 1024 + 12_345, 9);
    let source = path_str(&app.media_file("large.mp4", &data));
    app.publish(json!({"job_id": "mp", "kind": "video", "title": "t", "source": source}))
        .await;
    let job = app.wait_for_state("mp", JobState::Completed).await;
    let stored = app.object_bytes(&job);
    assert_eq!(stored.len(), data.len());
    assert_eq!(crc64::checksum(&stored), crc64::checksum(&data));
    assert!(stored == data, "stored object differs from the source");
    let stats = app.emulator().stats();
    assert_eq!(
        stats.parts, 13,
        "ceil(3 MiB + 12345 / 256 KiB) parts, each sent once"
    );
    assert_eq!(
        stats.requests.get("CompleteMultipartUpload").copied(),
        Some(1)
    );
    assert_eq!(
        checkpoint_rows(&app).await,
        0,
        "the checkpoint is dropped after Complete"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupted_part_is_detected_and_sent_again() {
    let app = TestApp::spawn_with(TestAppOptions {
        tune_worker: small_parts,
        ..Default::default()
    })
    .await;
    app.set_faults(json!({"corrupt_next_parts": 1})).await;
    let data = pattern(2 * 1024 * 1024, 10);
    let source = path_str(&app.media_file("corrupt.mp4", &data));
    app.publish(json!({"job_id": "bad-part", "kind": "video", "title": "t", "source": source}))
        .await;
    let job = app.wait_for_state("bad-part", JobState::Completed).await;
    assert!(
        app.object_bytes(&job) == data,
        "the corrupted part was replaced"
    );
    assert_eq!(
        app.emulator().stats().parts,
        8 + 1,
        "eight parts plus one re-sent"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn video_credentials_that_expire_mid_upload_are_refreshed_and_the_upload_continues() {
    let app = TestApp::spawn_with(TestAppOptions {
        credential_ttl: Duration::from_secs(2),
        tune_worker: |w| {
            small_parts(w);
            w.part_parallelism = 2;
        },
        ..Default::default()
    })
    .await;
    // 24 parts, two at a time, 250 ms each: the upload outlives two credentials.
    app.set_faults(json!({"delay_ms": 250})).await;
    let data = pattern(6 * 1024 * 1024, 11);
    let source = path_str(&app.media_file("long.mp4", &data));
    app.publish(json!({"job_id": "long", "kind": "video", "title": "t", "source": source}))
        .await;
    let job = app
        .wait_for("long", Duration::from_secs(60), |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert!(app.object_bytes(&job) == data);
    let stats = app.emulator().stats();
    assert_eq!(
        stats.requests.get("CreateUploadVideo").copied(),
        Some(1),
        "one VideoId"
    );
    assert!(
        stats
            .requests
            .get("RefreshUploadVideo")
            .copied()
            .unwrap_or(0)
            >= 1,
        "{stats:?}"
    );
    assert_eq!(
        stats.requests.get("InitiateMultipartUpload").copied(),
        Some(1),
        "the same upload continued"
    );
    assert!(job.superseded_media_ids.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_whose_credential_expires_is_recreated_and_the_old_id_recorded() {
    let app = TestApp::spawn_with(TestAppOptions {
        credential_ttl: Duration::from_secs(2),
        tune_worker: |w| {
            small_parts(w);
            w.part_parallelism = 1;
        },
        ..Default::default()
    })
    .await;
    app.set_faults(json!({"delay_ms": 300})).await;
    let data = pattern(2 * 1024 * 1024, 12);
    let source = path_str(&app.media_file("big.png", &data));
    app.publish(json!({"job_id": "img", "kind": "image", "source": source}))
        .await;
    // The first asset's credential (2 s) runs out mid-upload; the next ones last.
    app.wait_for("img", Duration::from_secs(30), |j| j.media_id.is_some())
        .await;
    app.set_faults(json!({"credential_ttl_seconds": 3000}))
        .await;
    let job = app
        .wait_for("img", Duration::from_secs(60), |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert!(!job.superseded_media_ids.is_empty(), "{job:#?}");
    assert!(!job
        .superseded_media_ids
        .contains(job.media_id.as_ref().unwrap()));
    assert!(
        app.object_bytes(&job) == data,
        "the final asset holds the whole image"
    );
    let created = app
        .emulator()
        .stats()
        .requests
        .get("CreateUploadImage")
        .copied();
    assert_eq!(created, Some(1 + job.superseded_media_ids.len() as u64));
    app.stop().await;
}

/// A file server for remote-source tests: honours `Range` unless told not to.
#[derive(Clone)]
struct FileServer {
    data: Arc<Vec<u8>>,
    ranges: bool,
    requests: Arc<AtomicUsize>,
}

async fn serve_file(State(server): State<FileServer>, headers: HeaderMap) -> Response {
    server.requests.fetch_add(1, Ordering::SeqCst);
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
    match range {
        Some((start, end)) if server.ranges => {
            let end = end.min(server.data.len() - 1);
            (
                StatusCode::PARTIAL_CONTENT,
                [(
                    "content-range",
                    format!("bytes {start}-{end}/{}", server.data.len()),
                )],
                server.data[start..=end].to_vec(),
            )
                .into_response()
        }
        _ => (StatusCode::OK, server.data.to_vec()).into_response(),
    }
}

async fn spawn_file_server(data: Vec<u8>, ranges: bool) -> (String, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let state = FileServer {
        data: Arc::new(data),
        ranges,
        requests: requests.clone(),
    };
    let router = axum::Router::new()
        .route("/media/clip.mp4", axum::routing::get(serve_file))
        .route(
            "/redirect/clip.mp4",
            axum::routing::get(|| async { Redirect::temporary("/media/clip.mp4") }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http_source_with_ranges_is_streamed_part_by_part_through_a_redirect() {
    let app = TestApp::spawn_with(TestAppOptions {
        tune_worker: small_parts_private_sources,
        ..Default::default()
    })
    .await;
    let data = pattern(2 * 1024 * 1024 + 7, 13);
    let (base, requests) = spawn_file_server(data.clone(), true).await;
    app.publish(json!({"job_id": "remote", "kind": "video", "title": "t",
        "source": format!("{base}/redirect/clip.mp4")}))
        .await;
    let job = app.wait_for_state("remote", JobState::Completed).await;
    assert!(app.object_bytes(&job) == data);
    assert_eq!(job.file_name.as_deref(), Some("clip.mp4"));
    // One probe, then one range request per part (9 parts); no full download.
    assert_eq!(requests.load(Ordering::SeqCst), 1 + 9);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http_source_without_ranges_is_spooled_then_uploaded() {
    let app = TestApp::spawn_with(TestAppOptions {
        tune_worker: small_parts_private_sources,
        ..Default::default()
    })
    .await;
    let data = pattern(1536 * 1024, 14);
    let (base, requests) = spawn_file_server(data.clone(), false).await;
    app.publish(json!({"job_id": "spooled", "kind": "video", "title": "t",
        "source": format!("{base}/media/clip.mp4")}))
        .await;
    let job = app.wait_for_state("spooled", JobState::Completed).await;
    assert!(app.object_bytes(&job) == data);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "downloaded once, into the spool"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http_source_on_a_private_address_is_refused_by_default() {
    let app = TestApp::spawn_with(TestAppOptions {
        tune_worker: small_parts,
        ..Default::default()
    })
    .await;
    let (base, requests) = spawn_file_server(pattern(1000, 15), true).await;
    app.publish(json!({"job_id": "ssrf", "kind": "video", "title": "t",
        "source": format!("{base}/media/clip.mp4")}))
        .await;
    let job = app.wait_for_state("ssrf", JobState::Failed).await;
    assert_eq!(job.last_error_code.as_deref(), Some("SourceForbidden"));
    assert!(
        job.last_error_message
            .as_deref()
            .unwrap()
            .contains("VOD_INGEST_ALLOW_PRIVATE_SOURCES"),
        "{job:#?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 0, "nothing was fetched");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_part_that_keeps_arriving_corrupted_fails_the_attempt_naming_the_part() {
    let app = TestApp::spawn_with(TestAppOptions {
        tune_worker: |w| {
            small_parts(w);
            w.part_parallelism = 1;
        },
        ..Default::default()
    })
    .await;
    // Five corruptions in a row exhaust the first part's tries; the retry then succeeds.
    app.set_faults(json!({"corrupt_next_parts": 5})).await;
    let data = pattern(1536 * 1024, 16);
    let source = path_str(&app.media_file("flaky.mp4", &data));
    app.publish(json!({"job_id": "flaky", "kind": "video", "title": "t", "source": source}))
        .await;
    let job = app.wait_for_state("flaky", JobState::Completed).await;
    assert!(app.object_bytes(&job) == data);
    let history = app.store().history("flaky").await.unwrap();
    let retry = history
        .iter()
        .find(|e| e.to_state == "retrying")
        .expect("the first attempt failed");
    assert_eq!(retry.error_code.as_deref(), Some("CrcMismatch"));
    assert!(
        retry.error_message.as_deref().unwrap().contains("part 1"),
        "{retry:?}"
    );
    assert_eq!(job.attempts, 2);
    app.stop().await;
}
