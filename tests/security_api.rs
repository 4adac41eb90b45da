//! Issue 19's attacks on the client API, each run against a real instance (service, PostgreSQL,
//! RabbitMQ, emulator) and shown refused, with nothing stored that should not be.

mod common;

use std::time::{Duration, Instant};

use common::{open_limits, ApiResponse, TestApp, TestAppOptions};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use vod_ingest::http_server::Limits;
use vod_ingest::jobs::JobKind;
use vod_ingest::keys::{KeyLimits, KeySettings, KeyStore};
use vod_ingest::vod::CreateUploadVideoRequest;

async fn api_app() -> TestApp {
    TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await
}

fn video_upload() -> Value {
    json!({"kind": "video", "file_name": "clip.mp4", "file_size": 1000, "title": "Clip"})
}

/// Rule 1: a key's STS token cannot refresh (and so overwrite) a video it did not create,
/// unless an operator allowed refresh for that key.
#[tokio::test(flavor = "multi_thread")]
async fn an_sts_token_cannot_overwrite_another_video() {
    let app = api_app().await;
    // The victim: a video uploaded through another key.
    let victim_key = app.api_key(open_limits()).await;
    let victim = app
        .api_post("/v1/uploads", Some(&victim_key), video_upload())
        .await;
    assert_eq!(victim.status, 200, "{victim:#?}");
    let victim_video = victim.body["video_id"].as_str().unwrap().to_owned();

    let attacker_key = app.api_key(open_limits()).await;
    let token = app
        .api_post(
            "/v1/sts-token",
            Some(&attacker_key),
            json!({"kinds": ["video"]}),
        )
        .await;
    assert_eq!(token.status, 200, "{token:#?}");
    assert_eq!(
        token.body["allowed_actions"],
        json!(["vod:CreateUploadVideo"])
    );
    let vod = common::sts_vod_client(&app.emulator().base_url(), &token.body);
    let refused = vod.refresh_upload_video(&victim_video).await.unwrap_err();
    assert_eq!(refused.code(), "Forbidden.RAM", "{refused}");
    // Uploading its own videos still works.
    vod.create_upload_video(&CreateUploadVideoRequest {
        title: "mine".into(),
        file_name: "mine.mp4".into(),
        ..Default::default()
    })
    .await
    .expect("the token may CreateUploadVideo");

    // An operator may opt a key in (the SDKs refresh long uploads); its tokens then say so.
    let keys = KeyStore::new(app.store().pool().clone());
    let (trusted, secret) = keys
        .create(
            "trusted",
            &open_limits().with_sts_refresh(true).expect("video and STS"),
        )
        .await
        .unwrap();
    assert!(trusted.limits.allow_sts_refresh);
    let token = app
        .api_post(
            "/v1/sts-token",
            Some(secret.expose()),
            json!({"kinds": ["video"]}),
        )
        .await;
    assert_eq!(
        token.body["allowed_actions"],
        json!(["vod:CreateUploadVideo", "vod:RefreshUploadVideo"])
    );
    common::sts_vod_client(&app.emulator().base_url(), &token.body)
        .refresh_upload_video(&victim_video)
        .await
        .expect("a key opted in may refresh");
    // Refresh needs a key that gets STS tokens for videos.
    let images_only = KeyLimits {
        kinds: vec![JobKind::Image],
        ..open_limits()
    };
    assert!(images_only.with_sts_refresh(true).is_err());
    app.stop().await;
}

/// Rule 1 and 8: tokens are short by default and durations that differ by minutes share one
/// cached token (one AssumeRole), so varying them cannot drain STS's rate limit.
#[tokio::test(flavor = "multi_thread")]
async fn varied_durations_share_one_token() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    let mut ids = Vec::new();
    for duration in [900, 1000, 1234, 1799] {
        let token = app
            .api_post(
                "/v1/sts-token",
                Some(&key),
                json!({"kinds": ["video"], "duration_seconds": duration}),
            )
            .await;
        assert_eq!(token.status, 200, "{token:#?}");
        let expiration: chrono::DateTime<chrono::Utc> =
            token.body["expiration"].as_str().unwrap().parse().unwrap();
        let lifetime = (expiration - chrono::Utc::now()).num_seconds();
        assert!((880..=900).contains(&lifetime), "{lifetime}");
        ids.push(token.body["access_key_id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.emulator().stats().requests.get("AssumeRole"), Some(&1));
    app.stop().await;
}

/// Rule 2: a key holder cannot choose the account's app, workflow, template group, storage or
/// callback URL; the operator's settings for the key are what reach VOD.
#[tokio::test(flavor = "multi_thread")]
async fn clients_cannot_choose_the_accounts_privileged_parameters() {
    let app = api_app().await;
    let key = app.api_key(open_limits()).await;
    for (field, value) in [
        ("app_id", json!("app-of-someone-else")),
        ("workflow_id", json!("expensive-workflow")),
        ("template_group_id", json!("expensive-template")),
        (
            "storage_location",
            json!("other-bucket.oss-cn-shanghai.aliyuncs.com"),
        ),
        ("callback_url", json!("https://attacker.example/collect")),
        (
            "user_data",
            json!({"MessageCallback": {"CallbackURL": "https://attacker.example/collect"}}),
        ),
    ] {
        let mut body = video_upload();
        body[field] = value;
        let r = app.api_post("/v1/uploads", Some(&key), body).await;
        r.refused(400, "FieldNotAllowed");
        let message = r.body["message"].as_str().unwrap();
        assert!(message.contains(field) || field == "user_data", "{message}");
    }
    // Nothing reached VOD, nothing was recorded.
    assert_eq!(
        app.emulator().stats().requests.get("CreateUploadVideo"),
        None
    );
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_jobs")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(jobs, 0);

    // The operator's settings for the key reach VOD instead; the client keeps its metadata
    // and its own Extend.
    let keys = KeyStore::new(app.store().pool().clone());
    let settings = KeySettings::parse(
        Some("app-1000001"),
        None,
        Some("tg-for-this-app"),
        None,
        Some(&app.callback_url),
    )
    .unwrap();
    let (_, secret) = keys
        .create_with("configured", &open_limits(), &settings)
        .await
        .unwrap();
    let mut body = video_upload();
    body["tags"] = json!(["mine"]);
    body["user_data"] = json!({"Extend": "order-7"});
    let r = app
        .api_post("/v1/uploads", Some(secret.expose()), body)
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    let media = app
        .emulator()
        .media_record(r.body["video_id"].as_str().unwrap())
        .expect("VOD has the video");
    assert_eq!(media["app_id"], "app-1000001");
    assert_eq!(media["template_group_id"], "tg-for-this-app");
    let user_data: Value = serde_json::from_str(media["user_data"].as_str().unwrap()).unwrap();
    assert_eq!(
        user_data["MessageCallback"]["CallbackURL"],
        app.callback_url.as_str()
    );
    assert_eq!(user_data["Extend"], "order-7");
    app.stop().await;
}

/// Rule 7: past its budget, a key's requests are refused from memory: no key lookup, no
/// counter update, and one audit row for many refusals (150 refusals used to be 150 rows).
#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_key_costs_no_database_work_and_one_audit_row() {
    let app = api_app().await;
    let keys = KeyStore::new(app.store().pool().clone());
    let (key, secret) = keys
        .create(
            "busy",
            &KeyLimits {
                requests_per_minute: 2,
                ..open_limits()
            },
        )
        .await
        .unwrap();
    let body = json!({"kind": "image", "file_name": "a.png", "file_size": 1});
    let mut refused = 0;
    for _ in 0..150 {
        let r = app
            .api_post("/v1/uploads", Some(secret.expose()), body.clone())
            .await;
        if r.status == 429 {
            r.refused(429, "RateLimited");
            refused += 1;
        } else {
            assert_eq!(r.status, 200, "{r:#?}");
        }
    }
    // At most two minutes' budgets were used (the loop may straddle a minute boundary).
    assert!((146..=148).contains(&refused), "{refused}");
    // The shared counter saw only the requests that found the budget spent, once per minute.
    let counted: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(requests), 0) FROM api_key_usage WHERE key_id = $1",
    )
    .bind(&key.key_id)
    .fetch_one(app.store().pool())
    .await
    .unwrap();
    assert!(counted <= 6, "{counted} requests counted in PostgreSQL");
    // Revoked in the database now: a request that still reads the key would get 401; the
    // in-memory refusal answers 429 without reading it.
    keys.revoke(&key.key_id).await.unwrap();
    let r = app
        .api_post("/v1/uploads", Some(secret.expose()), body.clone())
        .await;
    if r.status == 401 {
        // Only if a new minute began meanwhile; then the budget is read again, as it must be.
        r.refused(401, "ApiKeyRevoked");
    } else {
        r.refused(429, "RateLimited");
        refused += 1;
    }
    // The refusals reach the audit together (the writer runs every few seconds).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (rows, repeats) = loop {
        let (rows, repeats): (i64, i64) = sqlx::query_as(
            "SELECT count(*), COALESCE(sum(repeats), 0)::int8 FROM api_audit
             WHERE key_id = $1 AND outcome = 'RateLimited'",
        )
        .bind(&key.key_id)
        .fetch_one(app.store().pool())
        .await
        .unwrap();
        if repeats >= refused || Instant::now() > deadline {
            break (rows, repeats);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(repeats, refused, "every refusal is counted");
    assert!(rows <= 4, "{rows} audit rows for {refused} refusals");
    let usage = keys.usage().await.unwrap();
    assert_eq!(usage[&key.key_id].refused, refused);
    app.stop().await;
}

/// Connects from `local` (any 127.x address is loopback on Linux) to the listener.
async fn connect_from(local: [u8; 4], base: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((local, 0).into()).unwrap();
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    socket.connect(addr).await.unwrap()
}

/// Whether the server closed `stream` without answering.
async fn closed_without_answer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Rule 7: one address holding slow requests cannot take every slot of the listener; VOD's
/// callbacks from another address are answered at once.
#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_make_callbacks_wait() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        http_limits: Limits {
            max_in_flight: 3,
            max_in_flight_per_client: 2,
            max_connections: 64,
            max_connections_per_client: 3,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let base = app.http_base();
    // The attacker opens as many connections as one address may; more are closed unanswered.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 1], &base).await);
    }
    for _ in 0..3 {
        let mut extra = connect_from([127, 0, 0, 1], &base).await;
        assert!(
            closed_without_answer(&mut extra).await,
            "a 4th connection was kept"
        );
    }
    // On them, stalled bodies: two are in flight, the third is refused at once.
    let head = b"POST /callbacks/vod HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"Ev";
    for s in &mut held {
        s.write_all(head).await.unwrap();
    }
    let mut refused = 0;
    for s in &mut held {
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf)).await
        {
            let answer = String::from_utf8_lossy(&buf[..n]);
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            assert!(answer.contains("TooManyRequestsFromClient"), "{answer}");
            refused += 1;
        }
    }
    assert_eq!(refused, 1, "one of three stalled requests refused");

    // VOD, from another address, gets through while the attacker holds its slots.
    let ts = chrono::Utc::now().timestamp().to_string();
    let signature =
        vod_ingest::sign::callback::signature(&app.callback_url, &ts, "test-callback-key");
    let vod = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let started = Instant::now();
    let resp = vod
        .post(&app.callback_url)
        .header("X-VOD-TIMESTAMP", ts)
        .header("X-VOD-SIGNATURE", signature)
        .body(json!({"EventType": "VideoAnalysisComplete", "VideoId": "0123456789abcdef0123456789abcdef",
            "Status": "success", "EventTime": "2026-12-07T10:00:00Z"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(held);
    app.stop().await;
}

/// Rule 8: another key's upload is answered as if it did not exist.
#[tokio::test(flavor = "multi_thread")]
async fn another_keys_upload_looks_like_no_upload() {
    let app = api_app().await;
    let owner = app.api_key(open_limits()).await;
    let other = app.api_key(open_limits()).await;
    let upload = app
        .api_post("/v1/uploads", Some(&owner), video_upload())
        .await;
    let job_id = upload.body["job_id"].as_str().unwrap();
    let theirs = app
        .api_post(
            &format!("/v1/uploads/{job_id}/refresh"),
            Some(&other),
            json!({}),
        )
        .await;
    let nobodys = app
        .api_post(
            "/v1/uploads/00000000-0000-4000-8000-000000000000/refresh",
            Some(&other),
            json!({}),
        )
        .await;
    theirs.refused(404, "UploadNotFound");
    nobodys.refused(404, "UploadNotFound");
    let shape = |r: &ApiResponse, id: &str| r.body["message"].as_str().unwrap().replace(id, "ID");
    assert_eq!(
        shape(&theirs, job_id),
        shape(&nobodys, "00000000-0000-4000-8000-000000000000")
    );
    app.stop().await;
}

/// Rule 8: `Origin: null` (a sandboxed frame, a `file:` page) is never allowed or reflected,
/// even for a key that allows every origin.
#[tokio::test(flavor = "multi_thread")]
async fn the_null_origin_is_never_reflected() {
    let app = api_app().await;
    let key = app
        .api_key(KeyLimits {
            allowed_origins: vec!["*".into()],
            ..open_limits()
        })
        .await;
    let preflight = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/uploads", app.http_base()),
        )
        .header("origin", "null")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 403);
    assert!(preflight
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let resp = app
        .http
        .post(format!("{}/v1/uploads", app.http_base()))
        .bearer_auth(&key)
        .header("origin", "null")
        .json(&video_upload())
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    ApiResponse::read(resp)
        .await
        .refused(403, "OriginNotAllowed");
    // A real origin still works with the same key.
    let resp = app
        .http
        .post(format!("{}/v1/uploads", app.http_base()))
        .bearer_auth(&key)
        .header("origin", "https://app.example.com")
        .json(&video_upload())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

/// Rule 8: the upload page may not be framed and runs only its own scripts.
#[tokio::test(flavor = "multi_thread")]
async fn the_upload_page_has_a_content_security_policy() {
    let app = api_app().await;
    let resp = app
        .http
        .get(format!("{}/upload", app.http_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    // Uploads may go to the OSS endpoint the service's VOD hands out (here: the emulator).
    assert!(csp.contains(&app.emulator().base_url()), "{csp}");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    app.stop().await;
}

/// Rule 2, for operators: the console sets a key's VOD settings at creation and changes them
/// later; what a client sends still cannot.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_sets_and_changes_a_keys_vod_settings() {
    let app = api_app().await;
    let base = app.admin_base();
    let console = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |path: String, form: Vec<(&'static str, String)>| {
        console
            .post(format!("{base}{path}"))
            .header("origin", &base)
            .form(&form)
            .send()
    };
    let created = post(
        "/console/keys".into(),
        vec![
            ("name", "tv".into()),
            ("kind_video", "on".into()),
            ("max_file_size", "1G".into()),
            ("requests_per_minute", "60".into()),
            ("allow_sts", "on".into()),
            ("allow_sts_refresh", "on".into()),
            ("app_id", "app-1000009".into()),
            ("callback_url", "https://hooks.example/vod".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 200);
    let keys = KeyStore::new(app.store().pool().clone());
    let key = keys.list().await.unwrap().pop().unwrap();
    assert_eq!(key.settings.app_id.as_deref(), Some("app-1000009"));
    assert_eq!(
        key.settings.callback_url.as_deref(),
        Some("https://hooks.example/vod")
    );
    assert!(key.limits.allow_sts_refresh);

    let bad = post(
        format!("/console/keys/{}/settings", key.key_id),
        vec![("callback_url", "javascript:alert(1)".into())],
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("not an http(s) URL"));
    let changed = post(
        format!("/console/keys/{}/settings", key.key_id),
        vec![
            ("app_id", "app-1000009".into()),
            ("workflow_id", "wf-7".into()),
            ("callback_url", "".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(changed.status(), 303);
    let key = keys.list().await.unwrap().pop().unwrap();
    assert_eq!(key.settings.workflow_id.as_deref(), Some("wf-7"));
    assert_eq!(key.settings.callback_url, None);
    assert!(!key.limits.allow_sts_refresh, "unticked: refresh withdrawn");
    let page = console
        .get(format!("{base}/console/keys?notice=updated"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("workflow wf-7") && page.contains("settings are changed"),
        "{page}"
    );
    app.stop().await;
}
