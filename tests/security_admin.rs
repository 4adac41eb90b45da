//! Issue 19's attacks on the admin listener and the console, against a real instance.

mod common;

use common::{TestApp, TestAppOptions};
use reqwest::header;

fn console_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn login(app: &TestApp, token: &str) -> reqwest::Response {
    let base = app.admin_base();
    console_client()
        .post(format!("{base}/console/login"))
        .header(header::ORIGIN, &base)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// The cookie's `name=value` from a login's `Set-Cookie`.
fn session_of(resp: &reqwest::Response) -> String {
    let set = resp.headers()[header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn console_status(app: &TestApp, cookie: &str) -> u16 {
    console_client()
        .get(format!("{}/console/jobs", app.admin_base()))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Rule 5: an admin listener other hosts can reach needs a token, or an explicit opt-out.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_admin_address_without_a_token_does_not_start() {
    let open = TestAppOptions {
        worker: false,
        admin_addr: ([0, 0, 0, 0], 0).into(),
        ..Default::default()
    };
    let refused = std::panic::AssertUnwindSafe(TestApp::spawn_with(open));
    let refused = futures_util::FutureExt::catch_unwind(refused).await;
    let message = match refused {
        Ok(_) => panic!("the service started on 0.0.0.0 without a token"),
        Err(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    };
    for needle in [
        "VOD_INGEST_ADMIN_ADDR",
        "VOD_INGEST_ADMIN_TOKEN",
        "VOD_INGEST_ADMIN_ALLOW_OPEN",
    ] {
        assert!(message.contains(needle), "{needle} not in: {message}");
    }
    // With a token it starts, and so it does with the explicit opt-out.
    let with_token = TestApp::spawn_with(TestAppOptions {
        worker: false,
        admin_addr: ([0, 0, 0, 0], 0).into(),
        admin_token: Some("ops-token"),
        ..Default::default()
    })
    .await;
    with_token.stop().await;
    let opted_out = TestApp::spawn_with(TestAppOptions {
        worker: false,
        admin_addr: ([0, 0, 0, 0], 0).into(),
        admin_allow_open: true,
        ..Default::default()
    })
    .await;
    opted_out.stop().await;
}

/// Rule 5: without a token, a page on a hostile name that resolves to 127.0.0.1 (DNS
/// rebinding) reaches none of the admin endpoints, not only the console.
#[tokio::test(flavor = "multi_thread")]
async fn the_host_rule_covers_the_whole_admin_listener() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let base = app.admin_base();
    let port = app.app.as_ref().unwrap().admin_addr.unwrap().port();
    for path in ["/metrics", "/readyz", "/v1/jobs/some-job", "/console"] {
        let rebound = app
            .http
            .get(format!("{base}{path}"))
            .header(header::HOST, format!("rebound.evil.example:{port}"))
            .send()
            .await
            .unwrap();
        assert_eq!(rebound.status(), 403, "{path}");
        let body: serde_json::Value = rebound.json().await.unwrap();
        assert_eq!(body["code"], "HostNotAllowed", "{path}");
        let direct = app
            .http
            .get(format!("{base}{path}"))
            .header(header::HOST, format!("127.0.0.1:{port}"))
            .send()
            .await
            .unwrap();
        assert_ne!(direct.status(), 403, "{path}");
    }
    app.stop().await;
}

/// Rule 6: every login is a session of its own, logout ends it on the server, an expired one
/// is refused, and the table holds no usable session id.
#[tokio::test(flavor = "multi_thread")]
async fn console_sessions_end_on_logout_and_expiry() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        admin_token: Some("ops-token-6"),
        ..Default::default()
    })
    .await;
    let first = login(&app, "ops-token-6").await;
    assert_eq!(first.status(), 303);
    let set = first.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");
    let a = session_of(&first);
    let b = session_of(&login(&app, "ops-token-6").await);
    assert_ne!(a, b, "each login gets its own session");
    assert!(!a.contains("ops-token-6"));
    assert_eq!(console_status(&app, &a).await, 200);
    assert_eq!(console_status(&app, &b).await, 200);

    // Nothing in the table is the cookie's value.
    let rows: Vec<String> = sqlx::query_scalar("SELECT t::text FROM console_sessions t")
        .fetch_all(app.store().pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let id_a = a.split_once('=').unwrap().1;
    assert!(rows
        .iter()
        .all(|r| !r.contains(id_a) && !r.contains("ops-token-6")));

    // Logout ends the session: the same cookie, replayed, is refused.
    let base = app.admin_base();
    let out = console_client()
        .post(format!("{base}/console/logout"))
        .header(header::ORIGIN, &base)
        .header(header::COOKIE, &a)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(
        console_status(&app, &a).await,
        303,
        "a logged-out cookie still works"
    );
    assert_eq!(console_status(&app, &b).await, 200, "other sessions go on");

    // An expired session is refused.
    sqlx::query("UPDATE console_sessions SET expires_at = now() - interval '1 second'")
        .execute(app.store().pool())
        .await
        .unwrap();
    assert_eq!(console_status(&app, &b).await, 303);
    app.stop().await;
}

/// Rule 6: behind HTTPS the cookie is `Secure` with the `__Host-` prefix.
#[tokio::test(flavor = "multi_thread")]
async fn behind_https_the_session_cookie_is_secure() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        admin_token: Some("ops-token-https"),
        admin_https: true,
        ..Default::default()
    })
    .await;
    let resp = login(&app, "ops-token-https").await;
    assert_eq!(resp.status(), 303);
    let set = resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.starts_with("__Host-vod_ingest_console="), "{set}");
    for attribute in ["Secure", "Path=/;", "HttpOnly", "SameSite=Strict"] {
        assert!(set.contains(attribute), "{attribute} missing: {set}");
    }
    assert!(!set.contains("Domain"), "{set}");
    assert_eq!(console_status(&app, &session_of(&resp)).await, 200);
    app.stop().await;
}

/// Rule 6: wrong tokens are throttled; once throttled, even the right token waits.
#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_throttled() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        admin_token: Some("ops-token-7"),
        ..Default::default()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(login(&app, "guess").await.status(), 401);
    }
    let throttled = login(&app, "ops-token-7").await;
    assert_eq!(throttled.status(), 429);
    let wait: u64 = throttled.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(throttled.headers().get(header::SET_COOKIE).is_none());
    assert!(throttled
        .text()
        .await
        .unwrap()
        .contains("too many wrong tokens"));
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    app.stop().await;
}
