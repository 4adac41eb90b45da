//! Real client apps against the service and the emulator: the upload page in headless Chromium
//! (Debian's `chromium`, driven by `playwright-core`), and `ali-oss` + `@alicloud/pop-core` in
//! Node the way a mobile app or mini program uses them. The drivers live in `web/tests/`; the
//! packages come from `npm ci --prefix web` (`scripts/test` installs them and Chromium).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{open_limits, pattern, TestApp, TestAppOptions};
use serde_json::{json, Value};
use vod_ingest::jobs::JobState;

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Node and the web packages, or a failure that says how to get them. Set
/// `VOD_INGEST_SKIP_CLIENT_TESTS=1` to skip these tests deliberately on a machine without them.
fn node_ready() -> bool {
    if std::env::var_os("VOD_INGEST_SKIP_CLIENT_TESTS").is_some() {
        eprintln!("skipped: VOD_INGEST_SKIP_CLIENT_TESTS is set");
        return false;
    }
    let installed = web_dir().join("node_modules/ali-oss").is_dir()
        && web_dir().join("node_modules/playwright-core").is_dir();
    assert!(
        installed,
        "the client tests need Node.js, Chromium and the web packages: run the tests with \
         `scripts/test`, which installs them (or run `npm ci --prefix web` and install \
         chromium yourself), or set VOD_INGEST_SKIP_CLIENT_TESTS=1 to skip them"
    );
    true
}

/// Runs a driver and returns the JSON line it prints; panics with its stderr on failure.
fn run_driver(script: &str, args: &[&str]) -> Value {
    let out = Command::new("node")
        .arg(web_dir().join("tests").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (is Node.js installed?): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    serde_json::from_str(line.unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script} printed no JSON line ({e}):\n{stdout}\n{stderr}"))
}

/// [`run_driver`] off the async runtime's threads.
async fn driver(script: &'static str, args: &[&str]) -> Value {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_driver(script, &args)
    })
    .await
    .unwrap()
}

async fn client_app() -> TestApp {
    TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_upload_page_uploads_from_chromium_and_resumes_after_a_reload() {
    if !node_ready() {
        return;
    }
    let app = client_app().await;
    let key = app.api_key(open_limits()).await;
    // 3 MiB in ali-oss's smallest parts (100 KiB): 31 parts. Slowed down so that the page is
    // reloaded in the middle of the upload.
    let data = pattern(3 * 1024 * 1024, 11);
    let file = app.media_file("browser clip.mp4", &data);
    app.set_faults(json!({"delay_ms": 60})).await;
    let screenshot = app.media.path().join("page.png");
    let base = app.http_base();
    let file_arg = file.display().to_string();
    let shot_arg = screenshot.display().to_string();
    let result = driver(
        "browser-upload.mjs",
        &[
            "--url",
            &base,
            "--key",
            &key,
            "--file",
            &file_arg,
            "--kind",
            "video",
            "--reload-at",
            "0.3",
            "--screenshot",
            &shot_arg,
        ],
    )
    .await;
    assert_eq!(result["state"], "done", "{result:#}");
    assert_eq!(result["resumed"], true, "{result:#}");
    let job_id = result["job_id"]
        .as_str()
        .expect("the page shows the job id");
    let job = app
        .wait_for(job_id, Duration::from_secs(30), |j| {
            j.state() == JobState::Completed
        })
        .await;
    assert_eq!(job.origin, vod_ingest::jobs::Origin::Client);
    assert_eq!(job.media_id.as_deref(), result["media_id"].as_str());
    assert!(
        app.object_bytes(&job) == data,
        "the stored object is the file"
    );
    // Resumed, not restarted: one multipart upload, and not every part sent twice.
    let stats = app.emulator().stats();
    let count = |a: &str| stats.requests.get(a).copied().unwrap_or(0);
    assert_eq!(count("InitiateMultipartUpload"), 1, "{stats:?}");
    assert!(count("UploadPart") < 31 + 10, "{stats:?}");
    assert!(screenshot.exists(), "the driver saved a screenshot");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ali_oss_in_node_uploads_with_a_credential_from_the_api() {
    if !node_ready() {
        return;
    }
    let app = client_app().await;
    let key = app.api_key(open_limits()).await;
    for (kind, name, len) in [
        ("video", "app.mp4", 2_500_000),
        ("image", "app.png", 50_000),
    ] {
        let data = pattern(len, 3);
        let file = app.media_file(name, &data);
        let (base, key, file_arg) = (app.http_base(), key.clone(), file.display().to_string());
        let result = driver(
            "ali-oss-client.mjs",
            &[
                "--mode",
                "credential",
                "--url",
                &base,
                "--key",
                &key,
                "--file",
                &file_arg,
                "--kind",
                kind,
            ],
        )
        .await;
        let job_id = result["job_id"].as_str().unwrap();
        let job = app.wait_for_state(job_id, JobState::Completed).await;
        assert_eq!(job.media_id.as_deref(), result["media_id"].as_str());
        assert_eq!(job.upload_key.as_deref(), result["key"].as_str());
        assert!(app.object_bytes(&job) == data, "{kind}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mobile_client_with_an_sts_token_creates_its_own_upload_and_is_recorded() {
    if !node_ready() {
        return;
    }
    let app = client_app().await;
    let key = app.api_key(open_limits()).await;
    let data = pattern(400_000, 8);
    let file = app.media_file("phone.mp4", &data);
    let vod = app.emulator().base_url();
    let (base, key2, file_arg, vod2) = (
        app.http_base(),
        key.clone(),
        file.display().to_string(),
        vod.clone(),
    );
    let result = driver(
        "ali-oss-client.mjs",
        &[
            "--mode",
            "sts",
            "--url",
            &base,
            "--key",
            &key2,
            "--file",
            &file_arg,
            "--vod-endpoint",
            &vod2,
        ],
    )
    .await;
    let video_id = result["video_id"].as_str().unwrap();
    let job = app
        .wait_for_state(&format!("sts:{video_id}"), JobState::Completed)
        .await;
    assert_eq!(job.origin, vod_ingest::jobs::Origin::Sts);
    assert_eq!(job.bytes_total, Some(data.len() as i64));
    let stored = app.emulator().object_path(
        result["bucket"].as_str().unwrap(),
        result["key"].as_str().unwrap(),
    );
    assert!(std::fs::read(stored).unwrap() == data);

    // The token's session policy allows uploads only.
    let base = app.http_base();
    let refusal = driver(
        "ali-oss-client.mjs",
        &[
            "--mode",
            "sts",
            "--url",
            &base,
            "--key",
            &key,
            "--vod-endpoint",
            &vod,
            "--expect-refusal",
            "GetVideoInfo",
            "--params",
            r#"{"VideoId":"x"}"#,
        ],
    )
    .await;
    assert_eq!(refusal["code"], "Forbidden.RAM", "{refusal:#}");
    assert_eq!(refusal["status"], 403, "{refusal:#}");
    app.stop().await;
}

/// Without the OSS browser bundle (no `npm ci` on the server) the page says what to run,
/// rather than failing later with "window.OSS is not a constructor".
#[tokio::test(flavor = "multi_thread")]
async fn the_upload_page_says_what_to_run_when_the_oss_bundle_is_missing() {
    if !node_ready() {
        return;
    }
    let empty_web_dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        web_dir: Some(empty_web_dir.path().to_path_buf()),
        ..Default::default()
    })
    .await;
    let shown = driver("page-status.mjs", &[&format!("{}/upload", app.http_base())]).await;
    assert_eq!(shown["errorCode"], "sdk_missing", "{shown}");
    let status = shown["status"].as_str().unwrap();
    assert!(status.contains("npm ci --prefix web"), "{status}");
    assert_eq!(shown["pageErrors"], json!([]), "{shown}");
    app.stop().await;
}

/// VOD's Android and iOS SDKs' sequence (web/tests/mobile-sequence.mjs): 1 MiB parts, killed
/// half way, resumed from ListParts, completed with `x-oss-notification`.
#[tokio::test(flavor = "multi_thread")]
async fn the_mobile_sdks_resume_from_list_parts_and_complete_with_a_notification() {
    if !node_ready() {
        return;
    }
    let app = client_app().await;
    let key = app.api_key(open_limits()).await;
    let data = pattern(4 * 1024 * 1024 + 12_345, 9);
    let file = app.media_file("phone.mp4", &data);
    let (base, file_arg) = (app.http_base(), file.display().to_string());
    let result = driver(
        "mobile-sequence.mjs",
        &[
            "--url",
            &base,
            "--key",
            &key,
            "--file",
            &file_arg,
            "--stop-after",
            "2",
        ],
    )
    .await;
    assert_eq!(result["parts"], 5, "{result}");
    assert_eq!(result["listed_parts"], 2, "{result}");
    assert_eq!(result["expires_from"], "ExpireUTCTime", "{result}");
    let job = app
        .wait_for_state(result["job_id"].as_str().unwrap(), JobState::Completed)
        .await;
    assert_eq!(job.media_id.as_deref(), result["media_id"].as_str());
    assert!(app.object_bytes(&job) == data);
    app.stop().await;
}

/// VOD's Web SDK's STS mode from a real browser (web/tests/sts-page.mjs): a page on its own
/// origin signs CreateUploadVideo and sends it with XHR to `https://vod.cn-shanghai.aliyuncs.com`,
/// which Chromium maps to the emulator's HTTPS; CORS lets the page read the answer, and the
/// upload that follows is recorded as an `sts` job.
#[tokio::test(flavor = "multi_thread")]
async fn a_page_calls_vod_over_https_in_sts_mode_and_its_upload_is_recorded() {
    if !node_ready() {
        return;
    }
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        emulator_tls: true,
        ..Default::default()
    })
    .await;
    let key = app
        .api_key(vod_ingest::keys::KeyLimits {
            allowed_origins: vec!["*".into()],
            ..open_limits()
        })
        .await;
    let (base, port) = (app.http_base(), app.emulator().addr().port().to_string());
    let result = driver(
        "sts-page.mjs",
        &["--api", &base, "--key", &key, "--emulator-port", &port],
    )
    .await;
    // The page read the answer: the browser found the CORS header it needs.
    assert_eq!(result["status"], 200, "{result}");
    let data = pattern(120_000, 11);
    common::client_put(
        result["upload_address"].as_str().unwrap(),
        result["upload_auth"].as_str().unwrap(),
        data.clone(),
    )
    .await;
    let video_id = result["video_id"].as_str().unwrap();
    let job = app
        .wait_for_state(&format!("sts:{video_id}"), JobState::Completed)
        .await;
    assert_eq!(job.origin, vod_ingest::jobs::Origin::Sts);
    assert_eq!(job.bytes_total, Some(data.len() as i64));
    app.stop().await;
}
