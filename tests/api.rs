//! The client authorization API over real HTTP, against the emulator: every endpoint and
//! every refusal, and the client's side of each upload done as a client app would do it.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{open_limits, pattern, ApiResponse, TestApp, TestAppOptions};
use serde_json::{json, Value};
use vod_ingest::jobs::{Job, JobKind, JobState};
use vod_ingest::keys::{KeyLimits, KeyStore};
use vod_ingest::vod::{CreateUploadImageRequest, CreateUploadVideoRequest};

async fn api_app() -> TestApp {
    TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await
}

fn decode_json(b64: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("still Base64");
    serde_json::from_slice(&bytes).expect("Base64 of JSON")
}

/// The client's PUT with the credential in an API answer.
async fn client_put(credential: &Value, bytes: Vec<u8>) {
    common::client_put(
        credential["upload_address"].as_str().unwrap(),
        credential["upload_auth"].as_str().unwrap(),
        bytes,
    )
    .await
}

async fn job(app: &TestApp, job_id: &str) -> Job {
    app.store()
        .get(job_id)
        .await
        .unwrap()
        .expect("job recorded")
}

/// Every text column of the tables a credential could leak into.
async fn stored_text(app: &TestApp) -> String {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT t::text FROM ingest_jobs t UNION ALL SELECT t::text FROM ingest_job_events t
         UNION ALL SELECT t::text FROM api_audit t UNION ALL SELECT t::text FROM api_keys t
         UNION ALL SELECT t::text FROM vod_events t",
    )
    .fetch_all(app.store().pool())
    .await
    .unwrap();
    rows.join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_video_credential_is_vods_answer_and_its_callback_completes_the_job() {
    let app = api_app().await;
    // The callback URL is the key's setting (clients may not name one).
    let settings =
        vod_ingest::keys::KeySettings::parse(None, None, None, None, Some(&app.callback_url))
            .unwrap();
    let (_, key) = vod_ingest::keys::KeyStore::new(app.store().pool().clone())
        .create_with("test", &open_limits(), &settings)
        .await
        .unwrap();
    let key = key.expose().to_owned();
    let data = pattern(300_000, 7);
    let r = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "file_name": "holiday.mp4", "file_size": data.len(),
                   "title": "Holiday", "tags": ["a", "b"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    let b = &r.body;
    let job_id = b["job_id"].as_str().unwrap();
    let media_id = b["media_id"].as_str().unwrap();
    assert_eq!(b["video_id"], b["media_id"]);
    assert_eq!(b["kind"], "video");
    // Passed through still Base64, as the client SDKs expect.
    let address = decode_json(b["upload_address"].as_str().unwrap());
    let auth = decode_json(b["upload_auth"].as_str().unwrap());
    assert!(address["FileName"].as_str().unwrap().ends_with(".mp4"));
    assert!(auth["AccessKeyId"].as_str().unwrap().starts_with("STS."));
    let expires_at: chrono::DateTime<chrono::Utc> =
        b["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        expires_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        auth["ExpireUTCTime"].as_str().unwrap()
    );

    let row = job(&app, job_id).await;
    assert_eq!(
        (row.state(), row.origin.as_str(), row.media_id.as_deref()),
        (JobState::AwaitingUpload, "client", Some(media_id))
    );
    assert_eq!(row.bytes_total, Some(data.len() as i64));
    assert_eq!(row.upload_key.as_deref(), address["FileName"].as_str());
    assert!(row.api_key_id.is_some() && key.contains(row.api_key_id.as_deref().unwrap()));

    client_put(&r.body, data.clone()).await;
    let done = app.wait_for_state(job_id, JobState::Completed).await;
    assert!(app.object_bytes(&done) == data);
    let states: Vec<String> = app
        .store()
        .history(job_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.to_state)
        .collect();
    assert_eq!(states, ["awaiting_upload", "completed"]);

    let audit: Vec<(String, Option<String>, Option<String>, String)> =
        sqlx::query_as("SELECT action, job_id, media_id, outcome FROM api_audit ORDER BY id")
            .fetch_all(app.store().pool())
            .await
            .unwrap();
    assert_eq!(
        audit,
        vec![(
            "CreateUploadVideo".into(),
            Some(job_id.into()),
            Some(media_id.into()),
            "issued".into()
        )]
    );
    let addr: Option<String> = sqlx::query_scalar("SELECT client_addr FROM api_audit")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(addr.as_deref(), Some("127.0.0.1"));
    // Neither the key, nor the credential it was handed, is stored anywhere.
    let stored = stored_text(&app).await;
    for secret in [
        key.as_str(),
        auth["AccessKeySecret"].as_str().unwrap(),
        auth["SecurityToken"].as_str().unwrap(),
        b["upload_auth"].as_str().unwrap(),
    ] {
        assert!(!stored.contains(secret), "a secret was stored");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn images_and_attached_media_get_credentials_and_complete_too() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    let image = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "image", "file_name": "cover.jpg", "file_size": 2000, "image_type": "cover"}),
        )
        .await;
    assert_eq!(image.status, 200, "{image:#?}");
    assert_eq!(image.body["image_id"], image.body["media_id"]);
    assert!(image.body["image_url"].as_str().unwrap().contains(".jpg"));
    let subtitle = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "attached_media", "file_name": "en.vtt", "file_size": 100,
                   "business_type": "subtitle"}),
        )
        .await;
    assert_eq!(subtitle.status, 200, "{subtitle:#?}");
    assert!(subtitle.body["media_url"].as_str().is_some());
    assert!(subtitle.body.get("video_id").is_none());

    client_put(&image.body, pattern(2000, 1)).await;
    client_put(&subtitle.body, b"WEBVTT\n\n".to_vec()).await;
    for r in [&image, &subtitle] {
        let done = app
            .wait_for_state(r.body["job_id"].as_str().unwrap(), JobState::Completed)
            .await;
        assert_eq!(done.origin, vod_ingest::jobs::Origin::Client);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_video_refresh_keeps_its_address_and_only_its_key_may_ask() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    let other_key = app.api_key(open_limits()).await;
    let first = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "file_name": "long.mov", "file_size": 5000, "title": "Long"}),
        )
        .await;
    let job_id = first.body["job_id"].as_str().unwrap().to_owned();
    let video_id = first.body["video_id"].as_str().unwrap().to_owned();

    // onUploadTokenExpired: the job id.
    let refreshed = app
        .api_post(
            &format!("/v1/uploads/{job_id}/refresh"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:#?}");
    assert_eq!(refreshed.body["video_id"], video_id.as_str());
    assert_eq!(refreshed.body["job_id"], job_id.as_str());
    assert_eq!(
        decode_json(refreshed.body["upload_address"].as_str().unwrap()),
        decode_json(first.body["upload_address"].as_str().unwrap()),
        "RefreshUploadVideo keeps the address"
    );
    assert_ne!(
        decode_json(refreshed.body["upload_auth"].as_str().unwrap())["AccessKeyId"],
        decode_json(first.body["upload_auth"].as_str().unwrap())["AccessKeyId"],
        "a fresh credential"
    );
    // onUploadstarted after a page reload: the SDK holds only the VideoId.
    let resumed = app
        .api_post(
            &format!("/v1/uploads/{video_id}/refresh"),
            Some(&key),
            json!({"video_id": video_id}),
        )
        .await;
    assert_eq!(resumed.status, 200, "{resumed:#?}");
    assert_eq!(resumed.body["job_id"], job_id.as_str());

    app.api_post(
        &format!("/v1/uploads/{job_id}/refresh"),
        Some(&other_key),
        json!({}),
    )
    .await
    .refused(404, "UploadNotFound");
    app.api_post(
        &format!("/v1/uploads/{job_id}/refresh"),
        Some(&key),
        json!({"video_id": "0123456789abcdef0123456789abcdef"}),
    )
    .await
    .refused(404, "UploadNotFound");
    app.api_post(
        "/v1/uploads/0123456789abcdef0123456789abcdef/refresh",
        Some(&key),
        json!({}),
    )
    .await
    .refused(404, "UploadNotFound");
    app.api_post(
        &format!("/v1/uploads/{job_id}/refresh"),
        Some(&key),
        json!({"videoid": "x"}),
    )
    .await
    .refused(400, "InvalidRequest");

    // Uploaded with the refreshed credential, the same job completes.
    client_put(&resumed.body, pattern(5000, 3)).await;
    let done = app.wait_for_state(&job_id, JobState::Completed).await;
    assert_eq!(done.media_id.as_deref(), Some(video_id.as_str()));
    assert!(done.superseded_media_ids.is_empty());
    app.api_post(
        &format!("/v1/uploads/{job_id}/refresh"),
        Some(&key),
        json!({}),
    )
    .await
    .refused(409, "UploadNotPending");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_refresh_is_a_new_asset_that_supersedes_the_old_one() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    let first = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "image", "file_name": "p.png", "file_size": 1000}),
        )
        .await;
    let job_id = first.body["job_id"].as_str().unwrap().to_owned();
    let old_id = first.body["image_id"].as_str().unwrap().to_owned();
    let second = app
        .api_post(
            &format!("/v1/uploads/{job_id}/refresh"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(second.status, 200, "{second:#?}");
    let new_id = second.body["image_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    let row = job(&app, &job_id).await;
    assert_eq!(row.media_id.as_deref(), Some(new_id.as_str()));
    assert_eq!(row.superseded_media_ids, vec![old_id.clone()]);
    // The superseded id is no longer this upload's.
    app.api_post(
        &format!("/v1/uploads/{old_id}/refresh"),
        Some(&key),
        json!({}),
    )
    .await
    .refused(404, "UploadNotFound");
    client_put(&second.body, pattern(1000, 9)).await;
    app.wait_for_state(&job_id, JobState::Completed).await;
    // A late upload to the superseded asset is stored, but is nobody's job (not even an STS one).
    client_put(&first.body, pattern(1000, 9)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM vod_events WHERE media_id = $1")
            .bind(&old_id)
            .fetch_one(app.store().pool())
            .await
            .unwrap();
        if seen > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no callback for the old asset"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_jobs")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_required_valid_and_unrevoked() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    let body = json!({"kind": "video", "file_name": "a.mp4", "file_size": 1, "title": "t"});
    app.api_post("/v1/uploads", None, body.clone())
        .await
        .refused(401, "MissingApiKey");
    let wrong_secret = format!(
        "{}{}",
        &key[..key.len() - 1],
        if key.ends_with('a') { "b" } else { "a" }
    );
    for bad in ["nonsense", "vik_short_x", wrong_secret.as_str()] {
        app.api_post("/v1/uploads", Some(bad), body.clone())
            .await
            .refused(401, "InvalidApiKey");
    }
    let resp = app
        .http
        .post(format!("{}/v1/uploads", app.http_base()))
        .header("authorization", format!("Basic {key}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    ApiResponse::read(resp).await.refused(401, "MissingApiKey");

    let keys = KeyStore::new(app.store().pool().clone());
    let listed = keys.list().await.unwrap();
    let key_id = &listed[0].key_id;
    assert!(key.starts_with(&format!("vik_{key_id}_")));
    keys.revoke(key_id).await.unwrap().unwrap();
    app.api_post("/v1/uploads", Some(&key), body.clone())
        .await
        .refused(401, "ApiKeyRevoked");
    app.api_post("/v1/sts-token", Some(&key), json!({}))
        .await
        .refused(401, "ApiKeyRevoked");
    // Nothing was created in VOD for any of these.
    assert_eq!(
        app.emulator().stats().requests.get("CreateUploadVideo"),
        None
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_refuse_with_the_reason() {
    let app = api_app().await;
    let key = app
        .api_key(KeyLimits {
            kinds: vec![JobKind::Image],
            max_file_size: 1000,
            requests_per_minute: 1000,
            allowed_origins: vec!["https://app.example.com".into()],
            allow_sts: false,
            allow_sts_refresh: false,
        })
        .await;
    app.api_post(
        "/v1/uploads",
        Some(&key),
        json!({"kind": "video", "file_name": "a.mp4", "file_size": 10, "title": "t"}),
    )
    .await
    .refused(403, "KindNotAllowed");
    let too_big = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "image", "file_name": "a.png", "file_size": 1001}),
        )
        .await;
    too_big.refused(413, "FileTooLarge");
    assert!(too_big.body["message"].as_str().unwrap().contains("1000"));
    for (body, fragment) in [
        (json!({"kind": "image", "file_name": "a.png"}), "file_size"),
        (
            json!({"kind": "image", "file_name": "a.exe", "file_size": 1}),
            "image extension",
        ),
        (
            json!({"kind": "film", "file_name": "a.png", "file_size": 1}),
            "unknown kind",
        ),
        (
            json!({"kind": "image", "file_name": "a.png", "file_size": 1, "source": "/etc/passwd"}),
            "source",
        ),
    ] {
        let r = app.api_post("/v1/uploads", Some(&key), body).await;
        r.refused(400, "InvalidRequest");
        assert!(
            r.body["message"].as_str().unwrap().contains(fragment),
            "{r:#?}"
        );
    }
    let resp = app
        .http
        .post(format!("{}/v1/uploads", app.http_base()))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    ApiResponse::read(resp).await.refused(400, "InvalidRequest");
    // From a browser origin the key does not list.
    let resp = app
        .http
        .post(format!("{}/v1/uploads", app.http_base()))
        .bearer_auth(&key)
        .header("origin", "https://evil.example")
        .json(&json!({"kind": "image", "file_name": "a.png", "file_size": 1}))
        .send()
        .await
        .unwrap();
    ApiResponse::read(resp)
        .await
        .refused(403, "OriginNotAllowed");
    app.api_post("/v1/sts-token", Some(&key), json!({}))
        .await
        .refused(403, "StsNotAllowed");
    let audit: Vec<String> = sqlx::query_scalar("SELECT outcome FROM api_audit ORDER BY id")
        .fetch_all(app.store().pool())
        .await
        .unwrap();
    assert_eq!(audit, ["KindNotAllowed", "FileTooLarge", "StsNotAllowed"]);
    app.stop().await;
}

/// Found by scripts/schemathesis.sh: what axum refuses before a handler runs (a body over the
/// limit, a path that is not UTF-8) was plain text, not the documented `{code, message}`.
#[tokio::test(flavor = "multi_thread")]
async fn requests_refused_before_the_handler_still_get_json() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    let post = |path: &str, body: Vec<u8>| {
        app.http
            .post(format!("{}{path}", app.http_base()))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let huge = format!(
        r#"{{"kind":"video","file_name":"a.mp4","file_size":1,"title":"{}"}}"#,
        "x".repeat(70_000)
    );
    for path in [
        "/v1/uploads",
        "/v1/uploads/some-job/refresh",
        "/v1/sts-token",
    ] {
        let r = ApiResponse::read(post(path, huge.clone().into_bytes()).await.unwrap()).await;
        r.refused(413, "BodyTooLarge");
        assert_eq!(r.headers["content-type"], "application/json", "{path}");
    }
    let r = ApiResponse::read(post("/callbacks/vod", huge.into_bytes()).await.unwrap()).await;
    r.refused(413, "CallbackTooLarge");
    // serde reads a struct from an array of its fields; no client means that.
    ApiResponse::read(
        post("/v1/sts-token", b"[null, 900]".to_vec())
            .await
            .unwrap(),
    )
    .await
    .refused(400, "InvalidRequest");
    ApiResponse::read(post("/v1/uploads/%FF/refresh", Vec::new()).await.unwrap())
        .await
        .refused(404, "UploadNotFound");
    let r = app
        .http
        .get(format!("{}/v1/jobs/%FF", app.admin_base()))
        .send()
        .await
        .unwrap();
    ApiResponse::read(r).await.refused(404, "JobNotFound");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vods_own_refusal_reaches_the_client_with_vods_code() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    // VOD refuses emoji in titles; the service does not second-guess it.
    let r = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "file_name": "a.mp4", "file_size": 10, "title": "fun 😀"}),
        )
        .await;
    r.refused(400, "IllegalCharacters");
    assert!(
        r.body["message"].as_str().unwrap().contains("Title"),
        "{r:#?}"
    );
    // VOD unavailable: 503 with Retry-After, and no job.
    app.set_faults(json!({"fail_next": [{"action": "CreateUploadVideo", "code": "ServiceUnavailable", "status": 503}]}))
        .await;
    let r = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "file_name": "a.mp4", "file_size": 10, "title": "t"}),
        )
        .await;
    r.refused(503, "VodUnavailable");
    assert!(r.headers.contains_key("retry-after"));
    // VOD refuses the service itself (its RAM permissions): 502, and VOD's details stay in the
    // service's log.
    app.set_faults(json!({"fail_next": [{"action": "CreateUploadVideo", "code": "Forbidden.RAM", "status": 403}]}))
        .await;
    let r = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "file_name": "a.mp4", "file_size": 10, "title": "t"}),
        )
        .await;
    r.refused(502, "VodRefused");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("Forbidden.RAM"));
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_jobs")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let app = api_app().await;
    let key = app
        .api_key(KeyLimits {
            requests_per_minute: 2,
            ..open_limits()
        })
        .await;
    let body = json!({"kind": "image", "file_name": "a.png", "file_size": 1});
    // Two requests per minute; a minute boundary in between resets the count, so allow for it.
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let r = app.api_post("/v1/uploads", Some(&key), body.clone()).await;
        statuses.push(r.status);
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    r.refused(429, "RateLimited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_get_cors_for_the_origins_their_key_lists() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/uploads", app.http_base()),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("http://app.example").await.unwrap();
    assert_eq!(ok.status(), 204);
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], "http://app.example");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    ApiResponse::read(preflight("http://other.example").await.unwrap())
        .await
        .refused(403, "OriginNotAllowed");

    let resp = app
        .http
        .post(format!("{}/v1/uploads", app.http_base()))
        .bearer_auth(&key)
        .header("origin", "http://app.example")
        .json(&json!({"kind": "image", "file_name": "a.png", "file_size": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://app.example"
    );
    // A refusal is readable by the page too.
    let resp = app
        .http
        .post(format!("{}/v1/uploads", app.http_base()))
        .header("origin", "http://app.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://app.example"
    );
    // The service's own upload page is same-origin: no entry in the key's list needed.
    let resp = app
        .http
        .post(format!("{}/v1/uploads", app.http_base()))
        .bearer_auth(&key)
        .header("origin", app.http_base())
        .json(&json!({"kind": "image", "file_name": "a.png", "file_size": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sts_token_uploads_a_video_that_is_recorded_from_its_callback() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    let token = app
        .api_post("/v1/sts-token", Some(&key), json!({"kinds": ["video"]}))
        .await;
    assert_eq!(token.status, 200, "{token:#?}");
    assert_eq!(
        token.body["allowed_actions"],
        json!(["vod:CreateUploadVideo"])
    );
    let expiration: chrono::DateTime<chrono::Utc> =
        token.body["expiration"].as_str().unwrap().parse().unwrap();
    let lifetime = expiration - chrono::Utc::now();
    assert!(
        (3590..=3600).contains(&lifetime.num_seconds()),
        "{lifetime}"
    );
    // Cached: STS is throttled, so the same scope gets the same token.
    let again = app
        .api_post("/v1/sts-token", Some(&key), json!({"kinds": ["video"]}))
        .await;
    assert_eq!(again.body["access_key_id"], token.body["access_key_id"]);
    assert_eq!(
        app.emulator().stats().requests.get("AssumeRole").copied(),
        Some(1)
    );

    // The mobile client: CreateUploadVideo signed with the token, then the upload.
    let vod = common::sts_vod_client(&app.emulator().base_url(), &token.body);
    let ticket = vod
        .create_upload_video(&CreateUploadVideoRequest {
            title: "From the app".into(),
            file_name: "app.mp4".into(),
            ..Default::default()
        })
        .await
        .expect("the token may CreateUploadVideo");
    let data = pattern(10_000, 5);
    let credential = json!({
        "upload_address": ticket.upload_address_b64,
        "upload_auth": ticket.upload_auth_b64.expose(),
    });
    client_put(&credential, data.clone()).await;
    let job_id = format!("sts:{}", ticket.media_id);
    let recorded = app.wait_for_state(&job_id, JobState::Completed).await;
    assert_eq!(recorded.origin, vod_ingest::jobs::Origin::Sts);
    assert_eq!(recorded.bytes_total, Some(data.len() as i64));

    // The session policy is enforced where it matters: by VOD.
    let refused = vod
        .create_upload_image(&CreateUploadImageRequest {
            image_type: "default".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "Forbidden.RAM", "{refused}");
    let refused = vod.get_video_info(&ticket.media_id).await.unwrap_err();
    assert_eq!(refused.code(), "Forbidden.RAM", "{refused}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sts_token_requests_are_checked() {
    let app = api_app().await;
    let key = app
        .api_key(KeyLimits {
            kinds: vec![JobKind::Video],
            ..open_limits()
        })
        .await;
    app.api_post("/v1/sts-token", Some(&key), json!({"kinds": ["image"]}))
        .await
        .refused(403, "KindNotAllowed");
    app.api_post("/v1/sts-token", Some(&key), json!({"kinds": ["movie"]}))
        .await
        .refused(400, "InvalidRequest");
    app.api_post("/v1/sts-token", Some(&key), json!({"kinds": []}))
        .await
        .refused(400, "InvalidRequest");
    for duration in [899, 3601] {
        app.api_post(
            "/v1/sts-token",
            Some(&key),
            json!({"duration_seconds": duration}),
        )
        .await
        .refused(400, "InvalidDuration");
    }
    let r = app
        .api_post(
            "/v1/sts-token",
            Some(&key),
            json!({"duration_seconds": 900}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    let expiration: chrono::DateTime<chrono::Utc> =
        r.body["expiration"].as_str().unwrap().parse().unwrap();
    assert!((expiration - chrono::Utc::now()).num_seconds() <= 900);
    app.stop().await;

    let no_sts = TestApp::spawn_with(TestAppOptions {
        worker: false,
        sts: None,
        ..Default::default()
    })
    .await;
    let key = no_sts.api_key(open_limits()).await;
    no_sts
        .api_post("/v1/sts-token", Some(&key), json!({}))
        .await
        .refused(503, "StsNotConfigured");
    no_sts.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_larger_than_the_key_allows_fails_when_vod_reports_its_size() {
    let app = api_app().await;
    let key = app
        .api_key(KeyLimits {
            max_file_size: 1000,
            ..open_limits()
        })
        .await;
    let r = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "file_name": "small.mp4", "file_size": 500, "title": "t"}),
        )
        .await;
    assert_eq!(r.status, 200);
    // The client lied: OSS takes any size under the credential.
    client_put(&r.body, pattern(4000, 2)).await;
    let failed = app
        .wait_for_state(r.body["job_id"].as_str().unwrap(), JobState::Failed)
        .await;
    assert_eq!(failed.last_error_code.as_deref(), Some("UploadTooLarge"));
    let message = failed.last_error_message.unwrap();
    assert!(
        message.contains("4000") && message.contains("1000"),
        "{message}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn abandoned_client_uploads_end_failed_or_completed_by_what_vod_says() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        reconcile_after: Some(Duration::from_secs(1)),
        client_upload_timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let key = app.api_key(open_limits()).await;
    let never = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "file_name": "never.mp4", "file_size": 10, "title": "t"}),
        )
        .await;
    // This one uploads, but its callback is lost.
    app.set_faults(json!({"callback_drop": true})).await;
    let lost = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "image", "file_name": "lost.png", "file_size": 64}),
        )
        .await;
    client_put(&lost.body, pattern(64, 4)).await;

    let failed = app
        .wait_for_state(never.body["job_id"].as_str().unwrap(), JobState::Failed)
        .await;
    assert_eq!(failed.last_error_code.as_deref(), Some("UploadAbandoned"));
    assert!(failed.last_error_message.unwrap().contains("Uploading"));
    let completed = app
        .wait_for_state(lost.body["job_id"].as_str().unwrap(), JobState::Completed)
        .await;
    assert_eq!(completed.bytes_uploaded, 64);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_served_and_every_path_in_it_is_routed() {
    let app = api_app().await;
    let resp = app
        .http
        .get(format!("{}/openapi.json", app.http_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(vod_ingest::api::OPENAPI).unwrap()
    );
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{job_id}", "no-such-job");
        for (method, op) in ops.as_object().unwrap() {
            let base = if op["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("admin")))
            {
                app.admin_base()
            } else {
                app.http_base()
            };
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let status = app
                .http
                .request(method.clone(), format!("{base}{concrete}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            // Routed: whatever the answer, it is not "no such route" or "wrong method".
            assert!(status != 405, "{method} {path}: {status}");
            if !path.contains("{job_id}") {
                assert!(status != 404, "{method} {path}: {status}");
            }
        }
    }
    let page = app
        .http
        .get(format!("{}/upload", app.http_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    app.stop().await;
}

/// A callback signed with the service's key, as one captured header pair lets anyone send:
/// VOD's signature covers the URL, the timestamp and the key, not the body.
async fn forged_upload_event(app: &TestApp, media_id: &str, size: u64) {
    let body = json!({"Status": "success", "VideoId": media_id, "EventType": "FileUploadComplete",
        "EventTime": "2026-12-07T05:00:00Z", "Size": size, "FileUrl": "http://x/forged.mp4"});
    forged_event(app, body).await;
}

async fn forged_event(app: &TestApp, body: Value) {
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = vod_ingest::sign::callback::signature(&app.callback_url, &ts, "test-callback-key");
    let resp = app
        .http
        .post(format!("{}/callbacks/vod", app.http_base()))
        .header("X-VOD-TIMESTAMP", ts)
        .header("X-VOD-SIGNATURE", sig)
        .json(&body)
        .send()
        .await
        .unwrap();
    // Answered at once, as VOD's real events are: the check with VOD comes after.
    assert_eq!(resp.status(), 200);
}

/// Waits until the confirmer has asked VOD about the stored event for `media_id` and returns
/// what VOD said (`vod_events.confirm_outcome`).
async fn confirm_outcome(app: &TestApp, media_id: &str) -> String {
    confirm_outcomes(app, media_id, 1).await.remove(0)
}

/// What VOD said about the first `n` events stored for `media_id`, once it said it about all.
async fn confirm_outcomes(app: &TestApp, media_id: &str, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let outcomes: Vec<String> = sqlx::query_scalar(
            "SELECT confirm_outcome FROM vod_events WHERE media_id = $1 AND confirm_outcome IS NOT NULL
             ORDER BY id",
        )
        .bind(media_id)
        .fetch_all(app.store().pool())
        .await
        .unwrap();
        if outcomes.len() >= n {
            return outcomes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "VOD was not asked about {media_id}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The job's history: its states, and its media milestones as `media.<name>`.
async fn history_states(app: &TestApp, job_id: &str) -> Vec<String> {
    app.store()
        .history(job_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| match e.milestone {
            Some(m) => format!("media.{m}"),
            None => e.to_state,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_upload_event_for_a_file_never_uploaded_does_not_complete_a_client_upload() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    let data = pattern(20_000, 3);
    let r = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "file_name": "never.mp4", "file_size": data.len(), "title": "Never"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    let job_id = r.body["job_id"].as_str().unwrap().to_owned();
    let media_id = r.body["media_id"].as_str().unwrap().to_owned();

    forged_upload_event(&app, &media_id, data.len() as u64).await;
    // A processing event claims VOD has the file too.
    forged_event(
        &app,
        json!({"VideoId": media_id, "EventType": "VideoAnalysisComplete", "Status": "success",
               "Duration": "12", "Size": "20000", "EventTime": "2026-12-07T05:00:01Z"}),
    )
    .await;
    // VOD says the media is still waiting for its file: the events changed nothing.
    assert_eq!(
        confirm_outcomes(&app, &media_id, 2).await,
        ["Uploading", "Uploading"]
    );
    assert!(
        app.emulator()
            .stats()
            .requests
            .get("GetVideoInfos")
            .copied()
            >= Some(1)
    );
    let row = job(&app, &job_id).await;
    assert_eq!(row.state(), JobState::AwaitingUpload);
    assert_eq!(row.media_status, None);
    assert_eq!(history_states(&app, &job_id).await, ["awaiting_upload"]);
    let applied: bool =
        sqlx::query_scalar("SELECT bool_or(applied) FROM vod_events WHERE media_id = $1")
            .bind(&media_id)
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    assert!(!applied);

    // The real upload and VOD's real event: confirmed by VOD, completed.
    client_put(&r.body, data.clone()).await;
    let done = app.wait_for_state(&job_id, JobState::Completed).await;
    assert!(app.object_bytes(&done) == data);
    assert_eq!(
        history_states(&app, &job_id).await,
        ["awaiting_upload", "completed"]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_upload_event_records_no_sts_upload_vod_does_not_confirm() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    let token = app
        .api_post("/v1/sts-token", Some(&key), json!({"kinds": ["video"]}))
        .await;
    assert_eq!(token.status, 200, "{token:#?}");
    let vod = common::sts_vod_client(&app.emulator().base_url(), &token.body);
    let ticket = vod
        .create_upload_video(&CreateUploadVideoRequest {
            title: "Never uploaded".into(),
            file_name: "app.mp4".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let random = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";
    forged_upload_event(&app, &ticket.media_id, 10_000).await;
    forged_upload_event(&app, random, 10_000).await;
    assert_eq!(confirm_outcome(&app, &ticket.media_id).await, "Uploading");
    assert_eq!(confirm_outcome(&app, random).await, "not_found");
    let sts_jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_jobs WHERE origin = 'sts'")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(sts_jobs, 0);

    // The app really uploads: VOD confirms, the upload is recorded.
    let data = pattern(10_000, 6);
    let credential = json!({
        "upload_address": ticket.upload_address_b64,
        "upload_auth": ticket.upload_auth_b64.expose(),
    });
    client_put(&credential, data.clone()).await;
    let recorded = app
        .wait_for_state(&format!("sts:{}", ticket.media_id), JobState::Completed)
        .await;
    assert_eq!(recorded.origin, vod_ingest::jobs::Origin::Sts);
    assert_eq!(recorded.bytes_total, Some(data.len() as i64));
    let sts_jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_jobs WHERE origin = 'sts'")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(sts_jobs, 1);
    app.stop().await;
}
