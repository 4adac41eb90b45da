//! The operator console on the admin listener, over real HTTP and in headless Chromium
//! (`web/tests/console.mjs`, Debian's `chromium` driven by `playwright-core`), against jobs
//! made through the real service: uploads through the worker and the emulator, failures from
//! emulator faults, a client upload, a dead-lettered message.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{open_limits, path_str, pattern, TestApp, TestAppOptions};
use reqwest::header;
use serde_json::{json, Value};
use vod_ingest::jobs::{Cursor, JobFilter, JobKind, JobState, Origin, PageStart};

/// Jobs in every state, made through the service (see [`jobs_in_every_state`]).
struct Fixture {
    completed: &'static str,
    subtitle: &'static str,
    failed: &'static str,
    retrying: &'static str,
    uploaded: &'static str,
    awaiting: String,
    uploading: &'static str,
    queued: &'static str,
}

/// One worker slot, so that a slow upload keeps the next job `queued`; retries far away, so
/// that a `retrying` job stays; small parts, so that a few MiB make a multipart upload.
async fn console_app() -> TestApp {
    TestApp::spawn_with(TestAppOptions {
        tune_worker: |w| {
            w.concurrency = 1;
            w.retry_base = Duration::from_secs(600);
            w.multipart_threshold = 512 * 1024;
            w.part_size = 100 * 1024;
            w.part_parallelism = 1;
        },
        ..Default::default()
    })
    .await
}

/// Makes a job in each state. The upload in progress sends `big_mib` MiB in 100 KiB parts
/// with every emulator answer delayed by `delay_ms`, so it is still running while the test
/// looks (and the test cancels it).
async fn jobs_in_every_state(app: &TestApp, big_mib: usize, delay_ms: u64) -> Fixture {
    let f = Fixture {
        completed: "c-done",
        subtitle: "c-subtitle",
        failed: "c-failed",
        retrying: "c-retrying",
        uploaded: "c-uploaded",
        awaiting: String::new(),
        uploading: "c-big",
        queued: "c-queued",
    };
    let video = |name: &str, bytes: &[u8]| path_str(&app.media_file(name, bytes));
    app.publish(
        json!({"job_id": f.completed, "kind": "video", "title": "Finished trailer",
        "source": video("done.mp4", &pattern(200_000, 1))}),
    )
    .await;
    app.wait_for_state(f.completed, JobState::Completed).await;
    app.publish(
        json!({"job_id": f.subtitle, "kind": "attached_media", "business_type": "subtitle",
        "source": video("subs.vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n")}),
    )
    .await;
    app.wait_for_state(f.subtitle, JobState::Completed).await;

    // VOD refuses the service's own call, as it does when its RAM user lacks a permission.
    app.set_faults(
        json!({"fail_next": [{"action": "CreateUploadImage", "code": "Forbidden.RAM",
        "status": 403, "message": "User not authorized to operate on the specified resource."}]}),
    )
    .await;
    app.publish(
        json!({"job_id": f.failed, "kind": "image", "image_type": "cover",
        "source": video("cover.png", &pattern(20_000, 2))}),
    )
    .await;
    app.wait_for_state(f.failed, JobState::Failed).await;

    app.set_faults(
        json!({"fail_next": [{"action": "CreateUploadVideo", "code": "ServiceUnavailable",
        "status": 503}]}),
    )
    .await;
    app.publish(
        json!({"job_id": f.retrying, "kind": "video", "title": "Unlucky",
        "source": video("retry.mp4", &pattern(50_000, 3))}),
    )
    .await;
    app.wait_for_state(f.retrying, JobState::Retrying).await;

    // The callback is lost and no reconciler runs: the job waits in `uploaded`. (No
    // transcoding, so no processing event comes later to complete it.)
    app.set_faults(json!({"callback_drop": true})).await;
    app.publish(
        json!({"job_id": f.uploaded, "kind": "video", "title": "Waiting for VOD",
        "template_group_id": "VOD_NO_TRANSCODE",
        "source": video("uploaded.mp4", &pattern(60_000, 4))}),
    )
    .await;
    app.wait_for_state(f.uploaded, JobState::Uploaded).await;
    app.set_faults(json!({"callback_drop": false})).await;

    let key = app.api_key(open_limits()).await;
    let upload = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "file_name": "phone.mp4", "file_size": 1_000_000, "title": "From the app"}),
        )
        .await;
    assert_eq!(upload.status, 200, "{upload:?}");
    let awaiting = upload.body["job_id"].as_str().unwrap().to_owned();

    // Not a job: an unknown field.
    app.publish_raw(br#"{"kind": "video", "source": "/nowhere.mp4", "titel": "Typo"}"#)
        .await;

    app.set_faults(json!({"delay_ms": delay_ms})).await;
    app.publish(
        json!({"job_id": f.uploading, "kind": "video", "title": "A long upload",
        "source": video("big.mp4", &pattern(big_mib * 1024 * 1024, 5))}),
    )
    .await;
    app.wait_for(f.uploading, Duration::from_secs(30), |j| {
        j.state() == JobState::Uploading && j.bytes_uploaded > 0
    })
    .await;
    app.publish(
        json!({"job_id": f.queued, "kind": "video", "title": "Next in line",
        "source": video("queued.mp4", &pattern(30_000, 6))}),
    )
    .await;
    app.wait_for_state(f.queued, JobState::Queued).await;
    Fixture { awaiting, ..f }
}

/// A GET on the admin listener: status and body.
async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let resp = app
        .http
        .get(format!("{}{path}", app.admin_base()))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A form POST as the console's own page sends it (`Origin` is this listener).
async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let base = app.admin_base();
    no_redirects()
        .post(format!("{base}{path}"))
        .header(header::ORIGIN, &base)
        .form(form)
        .send()
        .await
        .unwrap()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(resp: &reqwest::Response) -> &str {
    resp.headers()[header::LOCATION].to_str().unwrap()
}

#[track_caller]
fn assert_contains(page: &str, needles: &[&str]) {
    for n in needles {
        assert!(page.contains(n), "the page lacks {n:?}:\n{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pages_show_jobs_in_every_state_and_retry_and_cancel_do_what_the_cli_does() {
    let app = console_app().await;
    let f = jobs_in_every_state(&app, 4, 150).await;

    // `/` on the admin listener leads to the console; the public listener has none of it.
    let root = no_redirects()
        .get(format!("{}/", app.admin_base()))
        .send()
        .await
        .unwrap();
    assert_eq!((root.status().as_u16(), location(&root)), (303, "/console"));
    for path in ["/console", "/console/jobs", "/console/api/uploads", "/"] {
        let status = app
            .http
            .get(format!("{}{path}", app.http_base()))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path} on the public listener");
    }

    let resp = app
        .http
        .get(format!("{}/console", app.admin_base()))
        .send()
        .await
        .unwrap();
    let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let overview = resp.text().await.unwrap();
    assert_contains(
        &overview,
        &[
            "Overview",
            // Counts per state: two completed, one of each other state (the client upload is
            // awaiting_upload).
            r#"href="/console/jobs?state=completed"><span class="n">2</span>"#,
            r#"href="/console/jobs?state=failed"><span class="n">1</span>"#,
            r#"href="/console/jobs?state=uploading"><span class="n">1</span>"#,
            r#"href="/console/jobs?state=queued"><span class="n">1</span>"#,
            r#"href="/console/jobs?state=retrying"><span class="n">1</span>"#,
            r#"href="/console/jobs?state=uploaded"><span class="n">1</span>"#,
            r#"href="/console/jobs?state=awaiting_upload"><span class="n">1</span>"#,
            "<svg",
            // The chart's caption counts the last hour.
            "2 jobs completed, 1 failed",
            // The upload in progress, with a bar.
            r#"data-job-id="c-big""#,
            "<progress",
            // Waiting longest, per state.
            r#"href="/console/jobs/c-retrying""#,
            r#"href="/console/jobs/c-queued""#,
            "PostgreSQL",
            "answers",
            "1 dead letters",
        ],
    );
    let (status, live) = get(&app, "/console/api/uploads").await;
    assert_eq!(status, 200);
    let live: Value = serde_json::from_str(&live).unwrap();
    let big = &live["uploads"][0];
    assert_eq!(big["job_id"], f.uploading, "{live}");
    assert!(big["bytes_uploaded"].as_i64().unwrap() > 0, "{live}");
    assert_eq!(big["bytes_total"], 4 * 1024 * 1024, "{live}");

    // The list: everything, then each filter.
    let (status, all) = get(&app, "/console/jobs").await;
    assert_eq!(status, 200);
    for id in [
        f.completed,
        f.subtitle,
        f.failed,
        f.retrying,
        f.uploaded,
        f.uploading,
        f.queued,
        f.awaiting.as_str(),
    ] {
        assert_contains(&all, &[&format!(r#"href="/console/jobs/{id}""#)]);
    }
    let ids_in = |page: &str| -> Vec<String> {
        page.split(r#"<a href="/console/jobs/"#)
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap().to_owned())
            .collect()
    };
    for (query, expected) in [
        ("state=failed", vec![f.failed.to_owned()]),
        ("kind=image", vec![f.failed.to_owned()]),
        ("kind=attached_media", vec![f.subtitle.to_owned()]),
        ("origin=client", vec![f.awaiting.clone()]),
        ("q=c-ret", vec![f.retrying.to_owned()]),
        ("q=finished+TRAILER", vec![f.completed.to_owned()]),
        ("q=c-done", vec![f.completed.to_owned()]),
        ("state=completed&kind=video", vec![f.completed.to_owned()]),
        ("from=2000-01-01T00:00&to=2000-01-02T00:00", vec![]),
    ] {
        let (status, page) = get(&app, &format!("/console/jobs?{query}")).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(ids_in(&page), expected, "{query}");
    }
    let media = app
        .store()
        .get(f.completed)
        .await
        .unwrap()
        .unwrap()
        .media_id
        .unwrap();
    let (_, by_media) = get(&app, &format!("/console/jobs?q={media}")).await;
    assert_eq!(ids_in(&by_media), vec![f.completed.to_owned()]);
    let (status, bad) = get(&app, "/console/jobs?state=lost").await;
    assert_eq!(status, 400);
    assert_contains(&bad, &["unknown state"]);

    // A completed job: history, the callback VOD sent, and what VOD says now.
    let (status, done) = get(&app, "/console/jobs/c-done").await;
    assert_eq!(status, 200);
    assert_contains(
        &done,
        &[
            "Finished trailer",
            &media,
            "uploading</span> → <span class=\"badge state-uploaded\">uploaded",
            "FileUploadComplete",
            "verified",
            "VOD reports",
            "No multipart checkpoint",
        ],
    );
    assert!(
        !done.contains(r#"action="/console/jobs/c-done/retry""#),
        "a completed job has no retry"
    );
    let (_, subtitle) = get(&app, "/console/jobs/c-subtitle").await;
    assert_contains(&subtitle, &["VOD cannot be asked about attached media"]);
    let (_, big_page) = get(&app, "/console/jobs/c-big").await;
    assert_contains(
        &big_page,
        &[
            " of 41 parts</strong> done",
            "Cancel",
            r#"data-confirm="Cancel job c-big?"#,
        ],
    );
    let (status, failed) = get(&app, "/console/jobs/c-failed").await;
    assert_eq!(status, 200);
    assert_contains(
        &failed,
        &[
            "Forbidden.RAM",
            r#"action="/console/jobs/c-failed/retry""#,
            "data-confirm=",
            "No media id yet",
        ],
    );
    let (status, missing) = get(&app, "/console/jobs/no-such-job").await;
    assert_eq!(status, 404);
    assert_contains(&missing, &["no job with id"]);

    // A form from elsewhere changes nothing.
    let forged = no_redirects()
        .post(format!("{}/console/jobs/c-failed/retry", app.admin_base()))
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let scripted = no_redirects()
        .post(format!("{}/console/jobs/c-failed/retry", app.admin_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(scripted.status(), 403);
    assert!(scripted.text().await.unwrap().contains("no Origin header"));
    let cross_site = no_redirects()
        .post(format!("{}/console/jobs/c-failed/retry", app.admin_base()))
        .header(header::ORIGIN, app.admin_base())
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(
        app.store().get(f.failed).await.unwrap().unwrap().state(),
        JobState::Failed
    );

    // Retry: what `vod-ingest retry` does; this time VOD lets it through.
    let retried = post_form(&app, "/console/jobs/c-failed/retry", &[]).await;
    assert_eq!(retried.status(), 303);
    assert_eq!(location(&retried), "/console/jobs/c-failed?notice=retried");
    let (_, after) = get(&app, "/console/jobs/c-failed?notice=retried").await;
    assert_contains(
        &after,
        &[
            "queued again",
            "failed</span> → <span class=\"badge state-queued\">queued",
        ],
    );
    // A finished job cannot be retried: the store's reason is shown, with 409.
    let refused = post_form(&app, "/console/jobs/c-done/retry", &[]).await;
    assert_eq!(refused.status(), 409);
    assert_contains(
        &refused.text().await.unwrap(),
        &["job c-done is completed; only a job that is failed or cancelled can become queued"],
    );
    // Cancel the upload in progress: the worker lets go, the next job runs.
    let cancelled = post_form(&app, "/console/jobs/c-big/cancel", &[]).await;
    assert_eq!(cancelled.status(), 303);
    app.wait_for_state(f.uploading, JobState::Cancelled).await;
    app.set_faults(json!({"delay_ms": 0})).await;
    app.wait_for_state(f.queued, JobState::Completed).await;
    let completed = app
        .wait_for(f.failed, Duration::from_secs(60), |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert_eq!(completed.attempts, 1, "a fresh attempt budget");
    let history = app.store().history(f.failed).await.unwrap();
    assert!(history
        .iter()
        .any(|e| e.from_state.as_deref() == Some("failed")
            && e.to_state == "queued"
            && e.detail == Some(json!({"by": "operator"}))));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_is_shown_with_its_reason_republished_after_a_fix_or_dropped() {
    let app = TestApp::spawn().await;
    let source = path_str(&app.media_file("fixed.mp4", &pattern(40_000, 9)));
    let typo = format!(
        r#"{{"job_id": "dl-fixed", "kind": "video", "source": "{source}", "titel": "Typo"}}"#
    );
    app.publish_raw(typo.as_bytes()).await;
    app.publish_raw(b"this is not json").await;
    let typo_id = vod_ingest::queue::dead_letter_id(typo.as_bytes());
    let junk_id = vod_ingest::queue::dead_letter_id(b"this is not json");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let page = loop {
        let (status, page) = get(&app, "/console/dead-letters").await;
        assert_eq!(status, 200);
        if page.contains(&typo_id) && page.contains(&junk_id) {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead letters shown:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_contains(
        &page,
        &[
            "unknown field `titel`",
            "message is not a valid job",
            "x-original-routing-key",
            &format!(r#"action="/console/dead-letters/{typo_id}/republish""#),
            &format!(r#"action="/console/dead-letters/{junk_id}/drop""#),
            "Publish to test.",
        ],
    );
    // Looking takes nothing away.
    let (_, again) = get(&app, "/console/dead-letters").await;
    assert_contains(&again, &[&typo_id, &junk_id]);

    // An edit that is still not a job is refused before anything is published; the edit stays.
    let still_bad = post_form(
        &app,
        &format!("/console/dead-letters/{typo_id}/republish"),
        &[(
            "body",
            r#"{"job_id": "dl-fixed", "kind": "video", "source": "x", "tittle": "Typo"}"#,
        )],
    )
    .await;
    assert_eq!(still_bad.status(), 400);
    assert_contains(
        &still_bad.text().await.unwrap(),
        &["Not published", "tittle"],
    );
    assert!(app.store().get("dl-fixed").await.unwrap().is_none());

    let fixed = format!(
        r#"{{"job_id": "dl-fixed", "kind": "video", "source": "{source}", "title": "Typo"}}"#
    );
    let republished = post_form(
        &app,
        &format!("/console/dead-letters/{typo_id}/republish"),
        &[("body", &fixed)],
    )
    .await;
    assert_eq!(republished.status(), 303);
    assert_eq!(
        location(&republished),
        "/console/dead-letters?notice=republished"
    );
    let job = app.wait_for_state("dl-fixed", JobState::Completed).await;
    assert_eq!(job.title.as_deref(), Some("Typo"));
    let (_, after) = get(&app, "/console/dead-letters?notice=republished").await;
    assert_contains(&after, &["Published to the jobs queue", &junk_id]);
    assert!(
        !after.contains(&typo_id),
        "the republished message left the queue"
    );

    let dropped = post_form(&app, &format!("/console/dead-letters/{junk_id}/drop"), &[]).await;
    assert_eq!(dropped.status(), 303);
    let (_, empty) = get(&app, "/console/dead-letters").await;
    assert_contains(&empty, &["The dead-letter queue is empty."]);
    let gone = post_form(&app, &format!("/console/dead-letters/{junk_id}/drop"), &[]).await;
    assert_eq!(gone.status(), 404);
    assert_contains(
        &gone.text().await.unwrap(),
        &["already republished or dropped"],
    );
    let bad_id = post_form(&app, "/console/dead-letters/xyz/drop", &[]).await;
    assert_eq!(bad_id.status(), 400);
    // Nothing is left for the harness's reader either.
    assert!(app
        .dead_letters(1, Duration::from_millis(300))
        .await
        .is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_made_in_the_console_is_shown_once_counted_and_revoked() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let refused = post_form(
        &app,
        "/console/keys",
        &[
            ("name", "no kinds"),
            ("max_file_size", "1G"),
            ("requests_per_minute", "10"),
        ],
    )
    .await;
    assert_eq!(refused.status(), 400);
    assert_contains(
        &refused.text().await.unwrap(),
        &["No key created", "kinds is empty"],
    );

    let created = post_form(
        &app,
        "/console/keys",
        &[
            ("name", "Phone app"),
            ("kind_video", "on"),
            ("kind_image", "on"),
            ("max_file_size", "2G"),
            ("requests_per_minute", "30"),
            ("origins", "https://app.example.com\nhttps://m.example.com"),
            ("allow_sts", "on"),
        ],
    )
    .await;
    assert_eq!(created.status(), 200);
    assert_eq!(created.headers()[header::CACHE_CONTROL], "no-store");
    let page = created.text().await.unwrap();
    let key = page
        .split("value=\"vik_")
        .nth(1)
        .map(|rest| format!("vik_{}", rest.split('"').next().unwrap()))
        .expect("the new key is shown");
    let keys = vod_ingest::keys::KeyStore::new(app.store().pool().clone());
    let stored = keys.list().await.unwrap();
    assert_eq!(stored.len(), 1);
    let stored = &stored[0];
    assert_eq!(stored.name, "Phone app");
    assert_eq!(stored.limits.kinds, vec![JobKind::Video, JobKind::Image]);
    assert_eq!(stored.limits.max_file_size, 2 << 30);
    assert_eq!(stored.limits.requests_per_minute, 30);
    assert_eq!(
        stored.limits.allowed_origins,
        vec!["https://app.example.com", "https://m.example.com"]
    );
    assert!(stored.limits.allow_sts);

    // The key works, and its use is counted.
    let upload = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            json!({"kind": "video", "file_name": "a.mp4", "file_size": 1000, "title": "A"}),
        )
        .await;
    assert_eq!(upload.status, 200, "{upload:?}");
    app.api_post(
        "/v1/uploads",
        Some(&key),
        json!({"kind": "attached_media", "file_name": "a.vtt", "file_size": 10, "business_type": "subtitle"}),
    )
    .await
    .refused(403, "KindNotAllowed");
    let (status, list) = get(&app, "/console/keys").await;
    assert_eq!(status, 200);
    assert!(!list.contains(&key), "the secret is shown only once");
    let row = list
        .split(&format!(r#"data-key-id="{}""#, stored.key_id))
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert_contains(
        row,
        &[
            "Phone app",
            "video, image",
            r#"<span class="size">2.00 GiB</span>"#,
            r#"<span class="rpm">30</span>/min"#,
            "https://app.example.com, https://m.example.com",
            r#"issued <span class="issued">1</span> (24 h: <span class="issued-day">1</span>)"#,
            r#"refused <span class="refused">1</span>"#,
            "Revoke",
        ],
    );

    let revoked = post_form(
        &app,
        &format!("/console/keys/{}/revoke", stored.key_id),
        &[],
    )
    .await;
    assert_eq!(revoked.status(), 303);
    app.api_post(
        "/v1/uploads",
        Some(&key),
        json!({"kind": "video", "file_name": "b.mp4", "file_size": 1000, "title": "B"}),
    )
    .await
    .refused(401, "ApiKeyRevoked");
    let (_, list) = get(&app, "/console/keys?notice=revoked").await;
    assert_contains(&list, &["The key is revoked", "revoked<br><small><time"]);
    let unknown = post_form(&app, "/console/keys/nope/revoke", &[]).await;
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_admin_token_the_console_needs_a_login_or_the_bearer_header() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        admin_token: Some("ops-secret"),
        ..Default::default()
    })
    .await;
    let base = app.admin_base();
    let client = no_redirects();
    let page = client.get(format!("{base}/console")).send().await.unwrap();
    assert_eq!(
        (page.status().as_u16(), location(&page)),
        (303, "/console/login")
    );
    let api = client
        .get(format!("{base}/console/api/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    let post = post_form(&app, "/console/jobs/x/retry", &[]).await;
    assert_eq!(post.status(), 401);
    let (status, login) = get(&app, "/console/login").await;
    assert_eq!(status, 200);
    assert_contains(&login, &[r#"type="password" name="token""#]);

    let wrong = post_form(&app, "/console/login", &[("token", "guess")]).await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());
    let forged = client
        .post(format!("{base}/console/login"))
        .form(&[("token", "ops-secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "a login needs a same-origin form too");

    let ok = post_form(&app, "/console/login", &[("token", "ops-secret")]).await;
    assert_eq!((ok.status().as_u16(), location(&ok)), (303, "/console"));
    let cookie = ok.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("ops-secret"),
        "the cookie is not the token: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let inside = client
        .get(format!("{base}/console"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(inside.status(), 200);
    let body = inside.text().await.unwrap();
    assert_contains(&body, &["Overview", "Log out"]);
    assert!(!body.contains("ops-secret"));
    let bearer = client
        .get(format!("{base}/console/jobs"))
        .bearer_auth("ops-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    // The other admin endpoints keep their own rule (bearer only).
    let metrics = client
        .get(format!("{base}/metrics"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 401);
    let logout = client
        .post(format!("{base}/console/logout"))
        .header(header::ORIGIN, &base)
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    assert!(logout.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_the_console_answers_only_to_addresses_and_localhost() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let url = format!("{}/console", app.admin_base());
    let port = app.app.as_ref().unwrap().admin_addr.unwrap().port();
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("rebound.evil.example:{port}"), 403),
    ] {
        let resp = app
            .http
            .get(&url)
            .header(header::HOST, &host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{host}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hundreds_of_thousands_of_jobs_page_through_indexes_without_offset() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let pool = app.store().pool();
    // 300,000 jobs, one a second back from now; 1 % client uploads, every 10th failed.
    sqlx::query(
        "INSERT INTO ingest_jobs (job_id, kind, state, origin, source, title, request, created_at, updated_at)
         SELECT 'bulk-' || lpad(g::text, 6, '0'),
                (ARRAY['video', 'image', 'attached_media'])[1 + g % 3],
                CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'completed' END,
                CASE WHEN g % 100 = 0 THEN 'client' ELSE 'queue' END,
                '/media/' || g || '.mp4', 'Bulk title ' || g, '{}',
                now() - g * interval '1 second', now() - g * interval '1 second'
         FROM generate_series(1, 300000) g",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE ingest_jobs")
        .execute(pool)
        .await
        .unwrap();

    let deep = Cursor {
        created_at: app
            .store()
            .get("bulk-290000")
            .await
            .unwrap()
            .unwrap()
            .created_at,
        job_id: "bulk-290000".into(),
    };
    let filters = [
        JobFilter::default(),
        JobFilter {
            state: Some(JobState::Failed),
            ..Default::default()
        },
        JobFilter {
            kind: Some(JobKind::Image),
            ..Default::default()
        },
        JobFilter {
            origin: Some(Origin::Client),
            ..Default::default()
        },
        JobFilter {
            search: Some("title 12345".into()),
            ..Default::default()
        },
    ];
    for filter in &filters {
        for after in [
            PageStart::Newest,
            PageStart::OlderThan(&deep),
            PageStart::NewerThan(&deep),
        ] {
            let plan = app.store().explain_page(filter, after, 50).await.unwrap();
            eprintln!("{filter:?} from {after:?}:\n{plan}\n");
            assert!(
                !plan.contains("Seq Scan"),
                "{filter:?} after {after:?}:\n{plan}"
            );
            assert!(
                plan.contains("Index"),
                "{filter:?} after {after:?}:\n{plan}"
            );
            if filter.search.is_none() {
                // Read in index order: no sort of the matching rows, whatever the depth.
                assert!(
                    !plan.contains("Sort"),
                    "{filter:?} after {after:?}:\n{plan}"
                );
            }
        }
    }

    // Over HTTP: pages follow each other without gaps or repeats, from the newest, and the
    // "newer" links lead back through the same pages.
    let ids_on = |page: &str| -> Vec<u32> {
        page.split(r#"<a href="/console/jobs/bulk-"#)
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap().parse::<u32>().unwrap())
            .collect()
    };
    let link = |page: &str, rel: &str| -> Option<String> {
        let rest = page.split(&format!(r#"<a rel="{rel}" href=""#)).nth(1)?;
        Some(rest.split('"').next().unwrap().replace("&amp;", "&"))
    };
    let mut next = "/console/jobs?origin=queue".to_owned();
    let mut pages = Vec::new();
    for _ in 0..4 {
        let started = std::time::Instant::now();
        let (status, page) = get(&app, &next).await;
        assert_eq!(status, 200);
        eprintln!("{next}: {} ms", started.elapsed().as_millis());
        pages.push(page);
        next = link(pages.last().unwrap(), "next").expect("a next page");
    }
    let seen: Vec<u32> = pages.iter().take(3).flat_map(|p| ids_on(p)).collect();
    let expected: Vec<u32> = (1..).filter(|g| g % 100 != 0).take(150).collect();
    assert_eq!(seen, expected);
    assert!(
        link(&pages[0], "prev").is_none(),
        "the first page has no newer one"
    );
    let mut back = link(&pages[3], "prev").expect("a newer page");
    for newer in pages[..3].iter().rev() {
        assert!(back.contains("origin=queue"), "{back}");
        let (status, page) = get(&app, &back).await;
        assert_eq!(status, 200);
        assert_eq!(ids_on(&page), ids_on(newer), "{back}");
        match link(&page, "prev") {
            Some(prev) => back = prev,
            None => assert!(
                std::ptr::eq(newer, &pages[0]),
                "only the newest has no newer page"
            ),
        }
    }
    let (status, page) = get(&app, "/console/jobs?after=1_a&before=1_b").await;
    assert_eq!(status, 400);
    assert!(page.contains("start again from the first page"), "{page}");
    let deep_page = app
        .store()
        .page(&JobFilter::default(), Some(&deep), 3)
        .await
        .unwrap();
    let ids: Vec<&str> = deep_page.jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["bulk-290001", "bulk-290002", "bulk-290003"]);
    let newer = app
        .store()
        .page(&JobFilter::default(), PageStart::NewerThan(&deep), 3)
        .await
        .unwrap();
    let ids: Vec<&str> = newer.jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["bulk-289997", "bulk-289998", "bulk-289999"]);
    assert_eq!(newer.prev.as_ref().unwrap().job_id, "bulk-289997");
    assert_eq!(newer.next.as_ref().unwrap().job_id, "bulk-289999");
    // Fewer than a page newer: the newest page, full, with nothing before it.
    let near_top = Cursor {
        created_at: app
            .store()
            .get("bulk-000002")
            .await
            .unwrap()
            .unwrap()
            .created_at,
        job_id: "bulk-000002".into(),
    };
    let top = app
        .store()
        .page(&JobFilter::default(), PageStart::NewerThan(&near_top), 3)
        .await
        .unwrap();
    let ids: Vec<&str> = top.jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["bulk-000001", "bulk-000002", "bulk-000003"]);
    assert!(top.prev.is_none());
    let last = app
        .store()
        .page(
            &JobFilter::default(),
            Some(&Cursor {
                created_at: app
                    .store()
                    .get("bulk-299999")
                    .await
                    .unwrap()
                    .unwrap()
                    .created_at,
                job_id: "bulk-299999".into(),
            }),
            50,
        )
        .await
        .unwrap();
    assert_eq!(last.jobs.len(), 1);
    assert!(last.next.is_none(), "the last page says so");
    // Past the end: nothing older, and the way back starts at the cursor.
    let past = Cursor {
        created_at: last.jobs[0].created_at,
        job_id: last.jobs[0].job_id.clone(),
    };
    let beyond = app
        .store()
        .page(&JobFilter::default(), Some(&past), 50)
        .await
        .unwrap();
    assert!(beyond.jobs.is_empty() && beyond.next.is_none());
    assert_eq!(beyond.prev, Some(past));
    app.stop().await;
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Node, playwright-core and Chromium, or a failure that says how to get them;
/// `VOD_INGEST_SKIP_CLIENT_TESTS=1` skips deliberately (as in tests/clients.rs).
fn browser_ready() -> bool {
    if std::env::var_os("VOD_INGEST_SKIP_CLIENT_TESTS").is_some() {
        eprintln!("skipped: VOD_INGEST_SKIP_CLIENT_TESTS is set");
        return false;
    }
    assert!(
        web_dir().join("node_modules/playwright-core").is_dir(),
        "the browser test needs Node.js and the web packages: run `npm ci --prefix web` \
         and `apt-get install chromium`, or set VOD_INGEST_SKIP_CLIENT_TESTS=1 to skip it"
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_works_in_chromium() {
    if !browser_ready() {
        return;
    }
    let app = console_app().await;
    // Slow enough to still be running while the browser opens the pages (about 30 s).
    let f = jobs_in_every_state(&app, 8, 250).await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let args = vec![
        "--url".to_owned(),
        app.admin_base(),
        "--failed".into(),
        f.failed.into(),
        "--uploading".into(),
        f.uploading.into(),
        "--completed".into(),
        f.completed.into(),
        "--screenshots".into(),
        shots.display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(web_dir().join("tests/console.mjs"))
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run node (is Node.js installed?): {e}"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "console.mjs failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("console.mjs printed no JSON line ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(result["ok"], true, "{result:#}");
    assert_eq!(result["console_errors"], json!([]), "{result:#}");
    // What the clicks did, seen from the store.
    app.wait_for_state(f.uploading, JobState::Cancelled).await;
    app.set_faults(json!({"delay_ms": 0})).await;
    let retried = app
        .wait_for(f.failed, Duration::from_secs(60), |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert_eq!(retried.attempts, 1);
    let keys = vod_ingest::keys::KeyStore::new(app.store().pool().clone());
    let made: Vec<_> = keys
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.name == "browser app")
        .collect();
    assert_eq!(made.len(), 1);
    assert!(made[0].revoked_at.is_some(), "revoked from the page");
    for name in result["screenshots"].as_array().unwrap() {
        assert!(shots.join(name.as_str().unwrap()).is_file(), "{name}");
    }
    eprintln!("screenshots in {}", shots.display());
    app.stop().await;
}
