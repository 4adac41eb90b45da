//! `POST /callbacks/vod` and the operational endpoints, over real HTTP.

mod common;

use common::{TestApp, TestAppOptions};
use serde_json::json;
use vod_ingest::jobs::{JobState, MediaAssignment, StoreError};
use vod_ingest::sign::callback;
use vod_ingest::vod::UploadAddress;

async fn http_only(keys: Vec<&'static str>) -> TestApp {
    TestApp::spawn_with(TestAppOptions {
        worker: false,
        callback_keys: keys,
        // No STS tokens: an upload event for unknown media is stored, not recorded as a job.
        sts: None,
        ..Default::default()
    })
    .await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn upload_event(video_id: &str) -> String {
    json!({"Status": "success", "VideoId": video_id, "EventType": "FileUploadComplete",
        "EventTime": "2026-11-28T10:00:00Z", "Size": 1, "FileUrl": "http://x/y.mp4"})
    .to_string()
}

async fn post(
    app: &TestApp,
    body: impl Into<reqwest::Body>,
    ts: Option<String>,
    sig: Option<String>,
) -> (u16, String) {
    let mut req = app
        .http
        .post(format!("{}/callbacks/vod", app.http_base()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(ts) = ts {
        req = req.header("X-VOD-TIMESTAMP", ts);
    }
    if let Some(sig) = sig {
        req = req.header("X-VOD-SIGNATURE", sig);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn signed(app: &TestApp, key: &str, ts: i64) -> (Option<String>, Option<String>) {
    let ts = ts.to_string();
    let sig = callback::signature(&app.callback_url, &ts, key);
    (Some(ts), Some(sig))
}

async fn job_state(app: &TestApp, job_id: &str) -> JobState {
    app.store().get(job_id).await.unwrap().unwrap().state()
}

/// `vod_ingest_callbacks_total{verification="<verdict>"}` in a metrics page (0 when absent).
fn refused_count(metrics: &str, verdict: &str) -> f64 {
    let name = format!("vod_ingest_callbacks_total{{verification=\"{verdict}\"}}");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name.as_str())?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn verifications(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT verification FROM vod_events ORDER BY id")
        .fetch_all(app.store().pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_upload_event_completes_the_job_once() {
    let app = http_only(vec!["test-callback-key"]).await;
    app.uploaded_job("cb-1", "0123456789abcdef0123456789abcdef")
        .await;
    let (ts, sig) = signed(&app, "test-callback-key", now());
    let body = upload_event("0123456789abcdef0123456789abcdef");
    assert_eq!(
        post(&app, body.clone(), ts.clone(), sig.clone()).await,
        (200, "ok\n".into())
    );
    assert_eq!(job_state(&app, "cb-1").await, JobState::Completed);
    // VOD resends when it misses our 200: the same event is recognised, nothing changes.
    assert_eq!(post(&app, body, ts, sig).await, (200, "duplicate\n".into()));
    let history = app.store().history("cb-1").await.unwrap();
    assert_eq!(
        history.iter().filter(|e| e.to_state == "completed").count(),
        1
    );
    assert_eq!(verifications(&app).await, vec!["verified"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_that_beats_the_worker_is_kept_until_the_upload_is_verified() {
    let app = http_only(vec!["test-callback-key"]).await;
    let store = app.store();
    let media_id = "1111111111111111aaaaaaaaaaaaaaaa";
    let token = app.claimed_with_media("early", media_id).await;
    let (ts, sig) = signed(&app, "test-callback-key", now());
    assert_eq!(post(&app, upload_event(media_id), ts, sig).await.0, 200);
    // The worker has not verified the object yet: the job waits.
    assert_eq!(job_state(&app, "early").await, JobState::Uploading);
    let transitions = store.mark_uploaded("early", token).await.unwrap();
    let states: Vec<JobState> = transitions.iter().map(|t| t.state).collect();
    assert_eq!(states, vec![JobState::Uploaded, JobState::Completed]);
    assert_eq!(job_state(&app, "early").await, JobState::Completed);
    let applied: bool = sqlx::query_scalar("SELECT applied FROM vod_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(applied);
    app.stop().await;
}

/// Concurrent jobs of a worker store their media ids and mark themselves uploaded together, one
/// statement for several jobs; each still gets its own outcome: written, completed at once when
/// its confirmation is stored already, or refused when its lease is gone.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_written_together_each_get_their_own_outcome() {
    let app = http_only(vec!["test-callback-key"]).await;
    let store = app.store();
    let media = [
        ("batch-a", "3333333333333333aaaaaaaaaaaaaaaa"),
        ("batch-b", "3333333333333333bbbbbbbbbbbbbbbb"),
        ("batch-c", "3333333333333333cccccccccccccccc"),
    ];
    let mut tokens = Vec::new();
    for (job_id, media_id) in media {
        tokens.push(app.claimed_with_media(job_id, media_id).await);
    }

    // New media for a and c; c's lease is gone (its token moved on).
    let address = |key: &str| UploadAddress {
        endpoint: "http://127.0.0.1:1".into(),
        bucket: "outin-test".into(),
        file_name: key.into(),
        object_prefix: None,
    };
    let assignments = [
        MediaAssignment {
            job_id: "batch-c".into(),
            token: tokens[2] + 1,
            media_id: "4444444444444444cccccccccccccccc".into(),
            address: address("sv/c/c.mp4"),
            bytes_total: Some(3),
        },
        MediaAssignment {
            job_id: "batch-a".into(),
            token: tokens[0],
            media_id: "4444444444444444aaaaaaaaaaaaaaaa".into(),
            address: address("sv/a/a2.mp4"),
            bytes_total: Some(2),
        },
    ];
    let written = store.set_media_many(&assignments).await.unwrap();
    assert!(matches!(&written[0], Err(StoreError::LeaseLost(id)) if id == "batch-c"));
    assert!(written[1].is_ok());
    let a = store.get("batch-a").await.unwrap().unwrap();
    assert_eq!(
        a.media_id.as_deref(),
        Some("4444444444444444aaaaaaaaaaaaaaaa")
    );
    assert_eq!(a.superseded_media_ids, vec![media[0].1.to_owned()]);
    assert_eq!(a.upload_key.as_deref(), Some("sv/a/a2.mp4"));
    assert_eq!(a.bytes_total, Some(2));
    let c = store.get("batch-c").await.unwrap().unwrap();
    assert_eq!(c.media_id.as_deref(), Some(media[2].1));
    let assigned: Vec<String> = sqlx::query_scalar(
        "SELECT detail->>'media_id_assigned' FROM ingest_job_events
         WHERE job_id = 'batch-a' AND detail ? 'media_id_assigned' ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(assigned, [media[0].1, "4444444444444444aaaaaaaaaaaaaaaa"]);

    // b's confirmation came first; c's lease is gone.
    let (ts, sig) = signed(&app, "test-callback-key", now());
    assert_eq!(post(&app, upload_event(media[1].1), ts, sig).await.0, 200);
    let moved = store
        .mark_uploaded_many(&[
            ("batch-c".into(), tokens[2] + 1),
            ("batch-b".into(), tokens[1]),
            ("batch-a".into(), tokens[0]),
        ])
        .await
        .unwrap();
    let states = |r: &Result<Vec<vod_ingest::jobs::Transition>, StoreError>| -> Vec<JobState> {
        r.as_ref().unwrap().iter().map(|t| t.state).collect()
    };
    assert!(matches!(&moved[0], Err(StoreError::LeaseLost(id)) if id == "batch-c"));
    assert_eq!(states(&moved[1]), [JobState::Uploaded, JobState::Completed]);
    assert_eq!(
        moved[1].as_ref().unwrap()[1].previous_state,
        Some(JobState::Uploaded)
    );
    assert_eq!(states(&moved[2]), [JobState::Uploaded]);
    assert_eq!(moved[2].as_ref().unwrap()[0].job_id, "batch-a");
    assert_eq!(job_state(&app, "batch-a").await, JobState::Uploaded);
    assert_eq!(job_state(&app, "batch-b").await, JobState::Completed);
    assert_eq!(job_state(&app, "batch-c").await, JobState::Uploading);
    app.stop().await;
}

/// The webhook's batch transaction locks the job's row and stores a confirmation for a job
/// still `uploading`; the worker marks the job uploaded meanwhile, waiting for that lock. The
/// worker's check for a stored confirmation must look after the webhook's commit, not at the
/// snapshot its update started with, or the job waits for the reconciler.
#[tokio::test(flavor = "multi_thread")]
async fn a_confirmation_committed_while_the_worker_waits_for_the_row_completes_the_job() {
    let app = http_only(vec!["test-callback-key"]).await;
    let store = app.store();
    let media_id = "2222222222222222bbbbbbbbbbbbbbbb";
    let token = app.claimed_with_media("racing", media_id).await;

    let mut webhook = store.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM ingest_jobs WHERE job_id = 'racing' FOR UPDATE")
        .execute(&mut *webhook)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO vod_events (verification, event_type, media_id, headers, body)
         VALUES ('verified', 'FileUploadComplete', $1, '{}', '')",
    )
    .bind(media_id)
    .execute(&mut *webhook)
    .await
    .unwrap();

    let worker = {
        let store = store.clone();
        tokio::spawn(async move { store.mark_uploaded("racing", token).await })
    };
    // Wait until the worker's statement is blocked on the row lock.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never waited for the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    webhook.commit().await.unwrap();

    let transitions = worker.await.unwrap().unwrap();
    let states: Vec<JobState> = transitions.iter().map(|t| t.state).collect();
    assert_eq!(states, vec![JobState::Uploaded, JobState::Completed]);
    assert_eq!(transitions[1].previous_state, Some(JobState::Uploaded));
    assert_eq!(job_state(&app, "racing").await, JobState::Completed);
    let (applied, job_id): (bool, Option<String>) =
        sqlx::query_as("SELECT applied, job_id FROM vod_events")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(applied);
    assert_eq!(job_id.as_deref(), Some("racing"));
    let history: Vec<String> = store
        .history("racing")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.to_state)
        .collect();
    assert!(
        history.ends_with(&["uploaded".to_owned(), "completed".to_owned()]),
        "{history:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_authentication_failure_is_401_stores_nothing_and_is_counted() {
    let app = http_only(vec!["test-callback-key"]).await;
    app.uploaded_job("cb-2", "fedcba9876543210fedcba9876543210")
        .await;
    let body = upload_event("fedcba9876543210fedcba9876543210");
    let t = now();
    let before = app.metrics().await;
    let cases = [
        (
            None,
            None,
            "missing_headers",
            "X-VOD-TIMESTAMP and X-VOD-SIGNATURE are required",
        ),
        (
            signed(&app, "test-callback-key", t).0,
            None,
            "missing_headers",
            "required",
        ),
        (
            Some("soon".to_string()),
            signed(&app, "test-callback-key", t).1,
            "malformed_timestamp",
            "Unix seconds",
        ),
        (
            signed(&app, "wrong-key", t).0,
            signed(&app, "wrong-key", t).1,
            "bad_signature",
            "VOD_CALLBACK_URL",
        ),
        (
            signed(&app, "test-callback-key", t - 600).0,
            signed(&app, "test-callback-key", t - 600).1,
            "outside_window",
            "window",
        ),
        (
            signed(&app, "test-callback-key", t + 600).0,
            signed(&app, "test-callback-key", t + 600).1,
            "outside_window",
            "window",
        ),
        // A valid signature for another second does not cover this one.
        (
            Some((t + 1).to_string()),
            signed(&app, "test-callback-key", t).1,
            "bad_signature",
            "does not match",
        ),
    ];
    for (ts, sig, verdict, message) in &cases {
        let (status, body_text) = post(&app, body.clone(), ts.clone(), sig.clone()).await;
        assert_eq!(status, 401, "{verdict}: {body_text}");
        assert!(body_text.contains(message), "{verdict}: {body_text}");
    }
    assert_eq!(job_state(&app, "cb-2").await, JobState::Uploaded);
    // Refused: nothing stored (a loop of curl cannot fill the database), every one counted.
    assert!(verifications(&app).await.is_empty());
    let after = app.metrics().await;
    for verdict in [
        "missing_headers",
        "malformed_timestamp",
        "bad_signature",
        "outside_window",
    ] {
        let expected = cases.iter().filter(|c| c.2 == verdict).count() as f64;
        let delta = refused_count(&after, verdict) - refused_count(&before, verdict);
        assert!(
            delta >= expected,
            "{verdict}: counted {delta}, expected {expected}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_is_accepted_alongside_the_old_one() {
    let app = http_only(vec!["old-key", "new-key"]).await;
    app.uploaded_job("cb-3", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        .await;
    app.uploaded_job("cb-4", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
        .await;
    let (ts, sig) = signed(&app, "old-key", now());
    assert_eq!(
        post(
            &app,
            upload_event("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ts,
            sig
        )
        .await
        .0,
        200
    );
    let (ts, sig) = signed(&app, "new-key", now());
    assert_eq!(
        post(
            &app,
            upload_event("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
            ts,
            sig
        )
        .await
        .0,
        200
    );
    assert_eq!(job_state(&app, "cb-3").await, JobState::Completed);
    assert_eq!(job_state(&app, "cb-4").await, JobState::Completed);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_are_not_events_get_400_and_oversized_ones_413() {
    let app = http_only(vec!["test-callback-key"]).await;
    for body in ["not json", "[1,2]", r#"{"VideoId":"x"}"#] {
        let (ts, sig) = signed(&app, "test-callback-key", now());
        let (status, text) = post(&app, body.to_string(), ts, sig).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains("EventType"), "{text}");
    }
    let (ts, sig) = signed(&app, "test-callback-key", now());
    let huge = format!(
        r#"{{"EventType":"FileUploadComplete","Pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(post(&app, huge, ts, sig).await.0, 413);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_for_unknown_media_and_other_types_are_stored_and_acknowledged() {
    let app = http_only(vec!["test-callback-key"]).await;
    app.uploaded_job("cb-5", "cccccccccccccccccccccccccccccccc")
        .await;
    let transcode = json!({"Status":"success","VideoId":"cccccccccccccccccccccccccccccccc",
        "EventType":"TranscodeComplete","EventTime":"2026-11-28T10:00:00Z"})
    .to_string();
    let (ts, sig) = signed(&app, "test-callback-key", now());
    assert_eq!(post(&app, transcode, ts, sig).await.0, 200);
    let (ts, sig) = signed(&app, "test-callback-key", now());
    assert_eq!(
        post(
            &app,
            upload_event("dddddddddddddddddddddddddddddddd"),
            ts,
            sig
        )
        .await
        .0,
        200
    );
    // A processing event for cb-5's media proves VOD has the file (its own upload event was
    // lost): cb-5 completes, and its media is playable. The upload event for media no job
    // knows is stored and acknowledged, and applies to nothing.
    assert_eq!(job_state(&app, "cb-5").await, JobState::Completed);
    let job = app.store().get("cb-5").await.unwrap().unwrap();
    assert_eq!(job.media_status.as_deref(), Some("Normal"));
    let applied: Vec<bool> = sqlx::query_scalar("SELECT applied FROM vod_events ORDER BY id")
        .fetch_all(app.store().pool())
        .await
        .unwrap();
    assert_eq!(applied, vec![true, false]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn operational_endpoints_answer() {
    let app = http_only(vec!["test-callback-key"]).await;
    app.uploaded_job("ops-1", "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee")
        .await;
    let public = app.http_base();
    let base = app.admin_base();
    // Operators' endpoints are not on the public listener.
    for path in ["/readyz", "/metrics", "/v1/jobs/ops-1"] {
        let status = app
            .http
            .get(format!("{public}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path} on the public listener");
    }
    let health = app
        .http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = app
        .http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready, json!({"postgres": "ok", "rabbitmq": "ok"}));
    let job: serde_json::Value = app
        .http
        .get(format!("{base}/v1/jobs/ops-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "uploaded");
    assert_eq!(job["media_id"], "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee");
    assert_eq!(job["history"].as_array().unwrap().len(), 4, "{job}");
    assert!(
        job.get("lease_token").is_none(),
        "lease internals are not exposed"
    );
    let missing = app
        .http
        .get(format!("{base}/v1/jobs/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("vod_ingest_jobs{state=\"uploaded\"}"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_can_require_a_token() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        admin_token: Some("ops-secret"),
        ..Default::default()
    })
    .await;
    let base = app.admin_base();
    for auth in [None, Some("Bearer wrong"), Some("ops-secret")] {
        let mut req = app.http.get(format!("{base}/metrics"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "InvalidOperatorToken");
    }
    let ok = app
        .http
        .get(format!("{base}/metrics"))
        .bearer_auth("ops-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Health needs no token (probes have none).
    let health = app
        .http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_junk_at_the_callback_url_stores_nothing() {
    let app = http_only(vec!["test-callback-key"]).await;
    let before = app.metrics().await;
    let junk = "x".repeat(60 * 1024);
    let t = now();
    for i in 0..200 {
        // Unsigned, wrong-key and garbage bodies near the size limit, with big headers.
        let (ts, sig) = match i % 3 {
            0 => (None, None),
            1 => signed(&app, "stolen-guess", t),
            _ => (Some(t.to_string()), Some("A".repeat(8 * 1024))),
        };
        let body = if i % 2 == 0 {
            junk.clone()
        } else {
            upload_event(&format!("{i:032x}"))
        };
        let (status, text) = post(&app, body, ts, sig).await;
        assert_eq!(status, 401, "{text}");
        assert!(text.contains("InvalidSignature"), "{text}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM vod_events")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(stored, 0);
    let after = app.metrics().await;
    let refused: f64 = ["missing_headers", "bad_signature"]
        .iter()
        .map(|v| refused_count(&after, v) - refused_count(&before, v))
        .sum();
    assert!(refused >= 200.0, "counted {refused}");
    // Authenticated but not an event: 400, and not stored either.
    let (ts, sig) = signed(&app, "test-callback-key", now());
    let (status, text) = post(&app, junk, ts, sig).await;
    assert_eq!(status, 400, "{text}");
    assert!(verifications(&app).await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_retention_sweep_deletes_old_rows_and_keeps_young_and_pending_ones() {
    let app = http_only(vec!["test-callback-key"]).await;
    let pool = app.store().pool().clone();
    // A worker's job waiting in `uploaded`: its early upload event must survive any sweep.
    app.uploaded_job("ret-1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        .await;
    for (label, age_days, applied, media) in [
        (
            "old-applied",
            40,
            true,
            Some("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
        ),
        (
            "old-unknown-media",
            40,
            false,
            Some("cccccccccccccccccccccccccccccccc"),
        ),
        (
            "old-pending-for-a-job",
            40,
            false,
            Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ),
        ("young", 5, true, Some("dddddddddddddddddddddddddddddddd")),
    ] {
        sqlx::query(
            "INSERT INTO vod_events (received_at, verification, event_type, media_id, applied, headers, body)
             VALUES (now() - make_interval(days => $1), 'verified', 'FileUploadComplete', $2, $3, '{}', $4)",
        )
        .bind(age_days)
        .bind(media)
        .bind(applied)
        .bind(label.as_bytes())
        .execute(&pool)
        .await
        .unwrap();
    }
    // An STS upload's event no job owns yet, waiting for VOD to confirm it.
    sqlx::query(
        "INSERT INTO vod_events (received_at, verification, event_type, media_id, applied, headers,
                                 body, confirm_requested_at)
         VALUES (now() - interval '40 days', 'verified', 'FileUploadComplete', $1, false, '{}',
                 'old-confirming', now())",
    )
    .bind("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee")
    .execute(&pool)
    .await
    .unwrap();
    for age_days in [100, 10] {
        sqlx::query(
            "INSERT INTO api_audit (key_id, action, outcome, at)
             VALUES ('k', 'upload', 'ok', now() - make_interval(days => $1))",
        )
        .bind(age_days)
        .execute(&pool)
        .await
        .unwrap();
    }
    let retention = std::time::Duration::from_secs(30 * 86400);
    // A batch of one: the sweep goes in bounded steps.
    assert_eq!(app.store().prune_events(retention, 1).await.unwrap(), 1);
    assert_eq!(app.store().prune_events(retention, 100).await.unwrap(), 1);
    assert_eq!(app.store().prune_events(retention, 100).await.unwrap(), 0);
    let kept: Vec<Vec<u8>> = sqlx::query_scalar("SELECT body FROM vod_events ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let kept: Vec<String> = kept
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect();
    assert_eq!(kept, ["old-pending-for-a-job", "young", "old-confirming"]);
    let keys = vod_ingest::keys::KeyStore::new(pool.clone());
    let audit = std::time::Duration::from_secs(90 * 86400);
    assert_eq!(keys.prune_audit(audit, 100).await.unwrap(), 1);
    let left: Vec<i32> =
        sqlx::query_scalar("SELECT extract(day FROM now() - at)::int FROM api_audit")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(left, [10]);
    app.stop().await;
}
