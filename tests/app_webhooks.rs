//! Webhooks to apps: an app back end with a key that has a webhook URL gets its uploads'
//! events, signed as Standard Webhooks says, at least once and in order, retried when its
//! receiver fails; operators see the deliveries in the console and redeliver them. Each
//! signature is checked here with code of the test's own, written from the specification.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::{open_limits, pattern, TestApp, TestAppOptions};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use vod_ingest::app_webhooks::{KeyWebhooks, TargetError, TargetPolicy, WebhookSetupError};
use vod_ingest::keys::KeyStore;
use vod_ingest::secret::Secret;

/// The service and the emulator; client apps upload, so no worker.
async fn app_without_worker() -> TestApp {
    TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await
}

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Hit {
    id: String,
    timestamp: String,
    signature: String,
    raw: String,
    body: Value,
    answered: u16,
}

/// A local receiver: answers `fail_first` requests with 500 (or all, while `always_fail`
/// is set), then 200; or, with `redirect_to`, 307 to that URL.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    arrived: Arc<tokio::sync::Notify>,
    fail_first: Arc<AtomicUsize>,
    always_fail: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    async fn start(fail_first: usize, redirect_to: Option<String>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            addr: listener.local_addr().unwrap(),
            hits: Default::default(),
            arrived: Default::default(),
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
            always_fail: Default::default(),
        };
        let r = receiver.clone();
        let handler = move |headers: axum::http::HeaderMap, raw: String| {
            let r = r.clone();
            let redirect_to = redirect_to.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default()
                };
                let failing = r.always_fail.load(Ordering::SeqCst)
                    || r.fail_first
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                let answered = match (&redirect_to, failing) {
                    (Some(_), _) => 307,
                    (None, true) => 500,
                    (None, false) => 200,
                };
                r.hits.lock().unwrap().push(Hit {
                    id: header("webhook-id"),
                    timestamp: header("webhook-timestamp"),
                    signature: header("webhook-signature"),
                    body: serde_json::from_str(&raw).unwrap_or(Value::Null),
                    raw,
                    answered,
                });
                r.arrived.notify_waiters();
                let mut resp = axum::response::Response::new(axum::body::Body::empty());
                *resp.status_mut() = axum::http::StatusCode::from_u16(answered).unwrap();
                if let Some(to) = redirect_to {
                    resp.headers_mut().insert("location", to.parse().unwrap());
                }
                resp
            }
        };
        let router = axum::Router::new().route("/hook", axum::routing::post(handler));
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        receiver
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) until the hits satisfy `done`.
    async fn wait_until(&self, what: &str, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let arrived = self.arrived.notified();
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("the receiver never got {what}; it got {hits:#?}");
            }
        }
    }
}

/// Checks a `webhook-signature` header against a `whsec_` secret as the specification says:
/// some `v1,` signature equals base64(HMAC-SHA256(secret, id.timestamp.body)).
fn signed_by(hit: &Hit, whsec: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(whsec.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", hit.id, hit.timestamp, hit.raw).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    hit.signature
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

fn key_webhooks(app: &TestApp) -> KeyWebhooks {
    KeyWebhooks {
        signing_key: Some(Secret::from(common::TEST_WEBHOOK_SIGNING_KEY)),
        policy: TargetPolicy {
            own_listeners: vec![
                app.http_base()
                    .trim_start_matches("http://")
                    .parse()
                    .unwrap(),
                app.admin_base()
                    .trim_start_matches("http://")
                    .parse()
                    .unwrap(),
            ],
            allow_loopback: true,
        },
    }
}

/// Points a key's webhooks at `url`, as the CLI and the console do (checked, then stored).
async fn set_webhook(
    app: &TestApp,
    keys: &KeyStore,
    key_id: &str,
    url: &str,
) -> vod_ingest::app_webhooks::WebhookSet {
    let hooks = key_webhooks(app);
    let url = hooks.check_url(url).await.unwrap();
    hooks.set_url(keys, key_id, Some(&url)).await.unwrap()
}

/// An upload made with `key` and cancelled before its file (its job id): an event at once.
async fn cancelled_upload(app: &TestApp, key: &str) -> String {
    let upload = app.new_video_upload(key, 1000).await;
    let job_id = upload.body["job_id"].as_str().unwrap().to_owned();
    let cancel = app
        .api_post(
            &format!("/v1/uploads/{job_id}/cancel"),
            Some(key),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, 200, "{cancel:#?}");
    assert_eq!(cancel.body["state"], "cancelled");
    job_id
}

/// A key whose webhooks go to `url`: (the API key, its id, its webhook secret).
async fn key_with_webhook(app: &TestApp, url: &str) -> (String, String, String) {
    let keys = KeyStore::new(app.store().pool().clone());
    let (key, secret) = keys.create("an app", &open_limits()).await.unwrap();
    let set = set_webhook(app, &keys, &key.key_id, url).await;
    let whsec = set.new_secret.expect("a key's first URL gets a new secret");
    assert!(whsec.expose().starts_with("whsec_"));
    (
        secret.expose().to_owned(),
        key.key_id,
        whsec.expose().to_owned(),
    )
}

/// A form POST as the console's own page sends it.
async fn console_post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let base = app.admin_base();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{base}{path}"))
        .header("origin", &base)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The first of a key's deliveries that satisfies `done`, once one does (the outcome is
/// written just after the receiver answers; checked every 50 ms, for up to 30 s).
async fn delivery_where(
    app: &TestApp,
    key_id: &str,
    done: impl Fn(&vod_ingest::jobs::DeliveryRow) -> bool,
) -> vod_ingest::jobs::DeliveryRow {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = app.store().recent_deliveries(key_id, 100).await.unwrap();
        if let Some(row) = rows.iter().find(|d| done(d)) {
            return row.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery of key {key_id} got there: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn types(hits: &[Hit]) -> Vec<&str> {
    hits.iter()
        .filter(|h| h.answered == 200)
        .map(|h| h.body["type"].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_follows_its_uploads_by_status_and_by_signed_webhooks() {
    let app = app_without_worker().await;
    // The app's receiver answers 500 to its first delivery, which must then come again.
    let receiver = Receiver::start(1, None).await;
    let (key, key_id, whsec) = key_with_webhook(&app, &receiver.url()).await;
    let other_receiver = Receiver::start(0, None).await;
    let (other_key, other_key_id, _) = key_with_webhook(&app, &other_receiver.url()).await;

    // Upload 1: from awaiting_upload to completed and playable.
    let data = pattern(60_000, 7);
    let issued = app.new_video_upload(&key, data.len()).await;
    let job_id = issued.body["job_id"].as_str().unwrap().to_owned();
    let media_id = issued.body["media_id"].as_str().unwrap().to_owned();
    let status = app.api_get(&format!("/v1/uploads/{job_id}"), &key).await;
    assert_eq!(status.body["state"], "awaiting_upload", "{status:#?}");
    assert_eq!(status.body["playable"], false);
    common::client_put(
        issued.body["upload_address"].as_str().unwrap(),
        issued.body["upload_auth"].as_str().unwrap(),
        data,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen_states = vec!["awaiting_upload".to_owned()];
    let final_status = loop {
        let status = app.api_get(&format!("/v1/uploads/{job_id}"), &key).await;
        assert_eq!(status.status, 200, "{status:#?}");
        let state = status.body["state"].as_str().unwrap().to_owned();
        if seen_states.last() != Some(&state) {
            seen_states.push(state.clone());
        }
        if state == "completed" && status.body["playable"] == true {
            break status.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload never became playable: {:#}",
            status.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(seen_states.last().map(String::as_str), Some("completed"));
    assert_eq!(final_status["media_status"], "Normal");

    let hits = receiver
        .wait_until("upload.completed and media.playable", |hits| {
            let t = types(hits);
            t.contains(&"upload.completed") && t.contains(&"media.playable")
        })
        .await;
    // Every request is signed with the secret shown at creation.
    for hit in &hits {
        assert!(signed_by(hit, &whsec), "bad signature: {hit:#?}");
        let ts: i64 = hit.timestamp.parse().unwrap();
        assert!(
            (chrono::Utc::now().timestamp() - ts).abs() < 120,
            "{hit:#?}"
        );
        assert!(hit.id.starts_with("msg_"), "{hit:#?}");
    }
    // The first answer was a 500: the same message came again, with the same id and body.
    assert_eq!(hits[0].answered, 500);
    let retried: Vec<&Hit> = hits.iter().filter(|h| h.id == hits[0].id).collect();
    assert!(retried.len() >= 2, "{hits:#?}");
    assert_eq!(retried[0].raw, retried[1].raw);
    assert_eq!(retried.last().unwrap().answered, 200);
    // In order: the upload's completion before its media milestones.
    let delivered = types(&hits);
    let completed_at = delivered
        .iter()
        .position(|t| *t == "upload.completed")
        .unwrap();
    let playable_at = delivered
        .iter()
        .position(|t| *t == "media.playable")
        .unwrap();
    assert!(completed_at < playable_at, "{delivered:?}");
    let completed = hits
        .iter()
        .find(|h| h.body["type"] == "upload.completed")
        .unwrap();
    assert_eq!(completed.body["data"]["job_id"], job_id.as_str());
    assert_eq!(completed.body["data"]["media_id"], media_id.as_str());
    assert_eq!(completed.body["data"]["state"], "completed");
    assert_eq!(completed.body["data"]["kind"], "video");
    assert!(completed.body["timestamp"].is_string());
    let playable = hits
        .iter()
        .find(|h| h.body["type"] == "media.playable")
        .unwrap();
    assert_eq!(
        playable.body["data"]["playable"], true,
        "{:#}",
        playable.body
    );
    assert_eq!(playable.body["data"]["media_status"], "Normal");
    assert_eq!(playable.body["data"]["milestone"], "playable");

    // Upload 2: cancelled before its file; refresh fails from then on; the app is told.
    let second_id = cancelled_upload(&app, &key).await;
    let refresh = app
        .api_post(
            &format!("/v1/uploads/{second_id}/refresh"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(refresh.status, 409, "{refresh:#?}");
    let hits = receiver
        .wait_until("upload.cancelled", |hits| {
            hits.iter().any(|h| {
                h.answered == 200
                    && h.body["type"] == "upload.cancelled"
                    && h.body["data"]["job_id"] == second_id.as_str()
            })
        })
        .await;
    assert!(hits.iter().all(|h| signed_by(h, &whsec)));

    // Another key sees none of it: not by status, not by webhook.
    for id in [&job_id, &media_id, &second_id] {
        let refused = app.api_get(&format!("/v1/uploads/{id}"), &other_key).await;
        assert_eq!(refused.status, 404, "{refused:#?}");
    }
    assert!(
        other_receiver.hits().is_empty(),
        "{:#?}",
        other_receiver.hits()
    );
    let others: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app_webhook_deliveries WHERE key_id = $1")
            .bind(&other_key_id)
            .fetch_one(app.store().pool())
            .await
            .unwrap();
    assert_eq!(others, 0);

    // Operators see the deliveries: event, answer, attempts.
    let page = reqwest::get(format!(
        "{}/console/keys/{key_id}/deliveries",
        app.admin_base()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    for needle in [
        "upload.completed",
        "media.playable",
        "upload.cancelled",
        &hits[0].id,
    ] {
        assert!(page.contains(needle), "{needle} not on the page:\n{page}");
    }
    let rows = app.store().recent_deliveries(&key_id, 100).await.unwrap();
    let first = rows
        .iter()
        .find(|d| format!("msg_{}", d.id) == hits[0].id)
        .unwrap();
    assert_eq!(
        (first.state.as_str(), first.attempts, first.last_status),
        ("delivered", 2, Some(200))
    );
    let metrics = app.metrics().await;
    // (The counters are the test binary's, shared by the tests running beside this one.)
    assert!(
        metrics.contains(r#"vod_ingest_app_webhook_deliveries_total{outcome="failed"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"vod_ingest_app_webhook_deliveries_total{outcome="delivered"}"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_urls_that_reach_the_service_or_link_local_addresses_are_refused() {
    let app = app_without_worker().await;
    let keys = KeyStore::new(app.store().pool().clone());
    let (key, _) = keys.create("an app", &open_limits()).await.unwrap();
    let hooks = key_webhooks(&app);
    for bad in [
        format!("{}/callbacks/vod", app.http_base()),
        format!("{}/v1/jobs", app.admin_base()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fe80::1]/hook".to_owned(),
    ] {
        match hooks.check_url(&bad).await {
            Err(WebhookSetupError::Target(TargetError::Forbidden { why, .. })) => {
                assert!(!why.is_empty())
            }
            other => panic!("{bad} was not refused: {other:?}"),
        }
    }
    match hooks.check_url("https://u:p@app.example.com/hook").await {
        Err(WebhookSetupError::Target(TargetError::HasCredentials)) => {}
        other => panic!("a URL with a password was not refused: {other:?}"),
    }
    // Without the server's signing key, no key may have a webhook.
    let off = KeyWebhooks {
        signing_key: None,
        ..hooks.clone()
    };
    assert!(matches!(
        off.check_url("http://127.0.0.1:1/hook").await,
        Err(WebhookSetupError::NoSigningKey)
    ));
    // Nothing was stored by any of them.
    assert_eq!(
        keys.get(&key.key_id).await.unwrap().unwrap().webhook.url,
        None
    );
    // The console refuses the same, with the reason, and creates no key.
    let before = keys.list().await.unwrap().len();
    let resp = console_post(
        &app,
        "/console/keys",
        &[
            ("name", "metadata thief"),
            ("kind_video", "on"),
            ("max_file_size", "1G"),
            ("requests_per_minute", "60"),
            ("webhook_url", "http://169.254.169.254/"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("link-local"));
    assert_eq!(keys.list().await.unwrap().len(), before);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_deliveries_die_after_their_retries_redirects_are_not_followed_and_operators_redeliver(
) {
    let app = app_without_worker().await;
    let receiver = Receiver::start(0, None).await;
    receiver.always_fail.store(true, Ordering::SeqCst);
    let (key, key_id, whsec) = key_with_webhook(&app, &receiver.url()).await;
    cancelled_upload(&app, &key).await;
    // One attempt and the two retries of the test schedule, then dead.
    receiver
        .wait_until("three attempts", |hits| hits.len() >= 3)
        .await;
    let dead = delivery_where(&app, &key_id, |d| d.state == "dead").await;
    assert_eq!((dead.attempts, dead.last_status), (3, Some(500)));
    assert_eq!(receiver.hits().len(), 3);

    // The app is fixed; the operator redelivers from the console: same id, and it arrives.
    receiver.always_fail.store(false, Ordering::SeqCst);
    let resp = console_post(
        &app,
        &format!("/console/keys/{key_id}/deliveries/{}/redeliver", dead.id),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
    let hits = receiver
        .wait_until("the redelivery", |hits| {
            hits.iter().any(|h| h.answered == 200)
        })
        .await;
    let ok = hits.iter().find(|h| h.answered == 200).unwrap();
    assert_eq!(ok.id, format!("msg_{}", dead.id));
    assert_eq!(ok.raw, hits[0].raw);
    assert!(signed_by(ok, &whsec));

    // A rotation: the next delivery is signed with the new secret and, for a day, the old.
    let keys = KeyStore::new(app.store().pool().clone());
    let rotated = key_webhooks(&app).rotate(&keys, &key_id).await.unwrap();
    let new_whsec = rotated.new_secret.unwrap().expose().to_owned();
    assert_ne!(new_whsec, whsec);
    let second_id = cancelled_upload(&app, &key).await;
    let hits = receiver
        .wait_until("the second upload's event", |hits| {
            hits.iter()
                .any(|h| h.body["data"]["job_id"] == second_id.as_str())
        })
        .await;
    let after = hits
        .iter()
        .find(|h| h.body["data"]["job_id"] == second_id.as_str())
        .unwrap();
    assert!(
        signed_by(after, &new_whsec) && signed_by(after, &whsec),
        "{after:#?}"
    );
    assert_eq!(after.signature.split(' ').count(), 2);

    // A receiver that redirects: the redirect is not followed, and the delivery says why.
    let target = Receiver::start(0, None).await;
    let redirecting = Receiver::start(0, Some(target.url())).await;
    let (key2, key2_id, _) = key_with_webhook(&app, &redirecting.url()).await;
    cancelled_upload(&app, &key2).await;
    redirecting
        .wait_until("the first attempt", |hits| !hits.is_empty())
        .await;
    let row = delivery_where(&app, &key2_id, |d| d.last_status.is_some()).await;
    assert_eq!(row.last_status, Some(307));
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .contains("redirects are not followed"),
        "{row:?}"
    );
    assert!(target.hits().is_empty());
    app.stop().await;
}

/// The next line the example receiver prints (it must print one within 30 s).
async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> String {
    tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the example receiver printed nothing in 30 s")
        .unwrap()
        .expect("the example receiver exited")
}

/// The receiver the docs show (`examples/webhook_receiver.py`, standard library only) accepts
/// the service's deliveries and refuses a forged one.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_receiver_verifies_real_deliveries() {
    let app = app_without_worker().await;
    // The key gets its secret with a first URL; the example then starts with that secret.
    let placeholder = Receiver::start(0, None).await;
    let (key, key_id, whsec) = key_with_webhook(&app, &placeholder.url()).await;
    let mut child = tokio::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/webhook_receiver.py"
        ))
        .arg("0")
        .env("WEBHOOK_SECRET", &whsec)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs the example receiver");
    use tokio::io::AsyncBufReadExt as _;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = next_line(&mut lines).await;
    let port: u16 = listening
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/hooks/vod");
    let keys = KeyStore::new(app.store().pool().clone());
    let set = set_webhook(&app, &keys, &key_id, &url).await;
    assert!(set.new_secret.is_none(), "a new URL keeps the secret");

    let forged = app
        .http
        .post(&url)
        .header("webhook-id", "msg_1")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header("webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl")
        .body(r#"{"type":"upload.completed","data":{"job_id":"x"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    let job_id = cancelled_upload(&app, &key).await;
    let line = next_line(&mut lines).await;
    assert!(
        line.starts_with(&format!("verified upload.cancelled {job_id}")),
        "{line}"
    );
    let row = delivery_where(&app, &key_id, |d| d.state == "delivered").await;
    assert_eq!(row.last_status, Some(204));
    app.stop().await;
}
