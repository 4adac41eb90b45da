//! The app's view of its uploads on the client API: `GET /v1/uploads/{id}` from
//! `awaiting_upload` to `completed` and playable, and `POST /v1/uploads/{id}/cancel`; for the
//! key that created the upload only.

mod common;

use std::time::Duration;

use common::{open_limits, pattern, TestApp, TestAppOptions};
use serde_json::json;
use vod_ingest::jobs::JobState;

async fn app() -> TestApp {
    TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_follows_an_upload_to_completed_and_playable() {
    let app = app().await;
    let key = app.api_key(open_limits()).await;
    let other = app.api_key(open_limits()).await;
    let data = pattern(50_000, 1);
    let issued = app.new_video_upload(&key, data.len()).await;
    let job_id = issued.body["job_id"].as_str().unwrap();
    let media_id = issued.body["media_id"].as_str().unwrap();

    let status = app.api_get(&format!("/v1/uploads/{job_id}"), &key).await;
    assert_eq!(status.status, 200, "{status:#?}");
    assert_eq!(status.body["state"], "awaiting_upload");
    assert_eq!(status.body["kind"], "video");
    assert_eq!(status.body["media_id"], media_id);
    assert_eq!(status.body["playable"], false);
    assert_eq!(status.body["error"], serde_json::Value::Null);
    assert_eq!(status.body["file_size"], data.len());
    // By the media id the client holds, too; another key sees nothing.
    let by_media = app.api_get(&format!("/v1/uploads/{media_id}"), &key).await;
    assert_eq!(by_media.body["job_id"], job_id);
    // A browser app may ask from its page: the preflight allows GET.
    let preflight = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/uploads/{job_id}", app.http_base()),
        )
        .header("origin", "http://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    let methods = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("GET"), "{methods}");
    for id in [job_id, media_id] {
        let refused = app.api_get(&format!("/v1/uploads/{id}"), &other).await;
        assert_eq!(refused.status, 404, "{refused:#?}");
        assert_eq!(refused.body["code"], "UploadNotFound");
    }

    common::client_put(
        issued.body["upload_address"].as_str().unwrap(),
        issued.body["upload_auth"].as_str().unwrap(),
        data,
    )
    .await;
    app.wait_for_state(job_id, JobState::Completed).await;
    // VOD's processing events make it playable (the emulator transcodes in about a second).
    app.wait_for(job_id, Duration::from_secs(30), |j| {
        j.media_status.as_deref() == Some("Normal")
    })
    .await;
    let status = app.api_get(&format!("/v1/uploads/{job_id}"), &key).await;
    assert_eq!(status.body["state"], "completed", "{:#}", status.body);
    assert_eq!(status.body["media_status"], "Normal");
    assert_eq!(status.body["playable"], true);
    assert!(status.body["completed_at"].is_string());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_upload_stays_cancelled() {
    let app = app().await;
    let key = app.api_key(open_limits()).await;
    let other = app.api_key(open_limits()).await;
    let data = pattern(20_000, 2);
    let issued = app.new_video_upload(&key, data.len()).await;
    let job_id = issued.body["job_id"].as_str().unwrap();
    let cancel = format!("/v1/uploads/{job_id}/cancel");

    let refused = app.api_post(&cancel, Some(&other), json!({})).await;
    assert_eq!(refused.status, 404, "{refused:#?}");
    let cancelled = app.api_post(&cancel, Some(&key), json!({})).await;
    assert_eq!(cancelled.status, 200, "{cancelled:#?}");
    assert_eq!(cancelled.body["state"], "cancelled");
    // The console's use counts: the cancel is audited, but it is no refusal of the key.
    let key_id = &key[4..16];
    let usage = vod_ingest::keys::KeyStore::new(app.store().pool().clone())
        .usage()
        .await
        .unwrap();
    assert_eq!((usage[key_id].issued, usage[key_id].refused), (1, 0));
    assert_eq!(usage[&other[4..16]].refused, 1, "the other key's attempt");

    let again = app.api_post(&cancel, Some(&key), json!({})).await;
    assert_eq!(again.status, 409, "{again:#?}");
    assert_eq!(again.body["code"], "UploadNotPending");
    let refresh = app
        .api_post(
            &format!("/v1/uploads/{job_id}/refresh"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(refresh.status, 409, "{refresh:#?}");
    assert_eq!(refresh.body["code"], "UploadNotPending");

    // The client uploads anyway: VOD's callback is recorded, the job is not revived.
    let media_id = issued.body["media_id"].as_str().unwrap().to_owned();
    common::client_put(
        issued.body["upload_address"].as_str().unwrap(),
        issued.body["upload_auth"].as_str().unwrap(),
        data,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let recorded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM vod_events WHERE media_id = $1 AND event_type = 'FileUploadComplete'",
        )
        .bind(&media_id)
        .fetch_one(app.store().pool())
        .await
        .unwrap();
        if recorded > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the callback never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = app.api_get(&format!("/v1/uploads/{job_id}"), &key).await;
    assert_eq!(status.body["state"], "cancelled", "{:#}", status.body);
    app.stop().await;
}
