//! The command line, run as a user runs it.

mod common;

use std::process::Command;

use common::{pattern, TestApp, TestAppOptions};
use vod_ingest::jobs::JobStore;
use vod_ingest::queue::Topology;

fn vod_ingest(app: &TestApp) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vod-ingest"));
    cmd.env("DATABASE_URL", &app.db.url)
        .env("AMQP_URL", common::amqp_url())
        .env("VOD_INGEST_AMQP_PREFIX", &app.topology.prefix)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "emulator-access-key-id")
        .env(
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            "emulator-access-key-secret",
        )
        .env("VOD_ENDPOINT", app.emulator().base_url())
        .env("RUST_LOG", "warn");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_prints_the_media_id_and_status_shows_the_job() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let data = pattern(2 * 1024 * 1024, 30);
    let path = app.media_file("cli.mp4", &data);
    let out = vod_ingest(&app)
        .args(["upload", path.to_str().unwrap(), "--job-id", "cli-1"])
        .args(["--multipart-threshold", "1M", "--part-size", "512K"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let media_id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(media_id.len(), 32, "{media_id}");
    let job = app.store().get("cli-1").await.unwrap().unwrap();
    assert_eq!(job.media_id.as_deref(), Some(media_id.as_str()));
    assert!(app.object_bytes(&job) == data);

    let out = vod_ingest(&app).args(["status", "cli-1"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(
        text.contains(&media_id) && text.contains("100.0%"),
        "{text}"
    );

    let out = vod_ingest(&app).args(["status", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no job with id \"nope\""), "{err}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_stops_start_up_with_one_line_that_names_it() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    for (name, value, expected) in [
        (
            "VOD_INGEST_PART_SIZE",
            "10K",
            "VOD_INGEST_PART_SIZE must be at least",
        ),
        (
            "VOD_ENDPOINT",
            "ftp://x",
            "VOD_ENDPOINT \"ftp://x\" must start with http",
        ),
        (
            "VOD_INGEST_SOURCE_ROOTS",
            "/does/not/exist",
            "VOD_INGEST_SOURCE_ROOTS: /does/not/exist cannot be opened",
        ),
        (
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            "",
            "ALIBABA_CLOUD_ACCESS_KEY_ID is not set",
        ),
    ] {
        let out = vod_ingest(&app)
            .env(name, value)
            .arg("run")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8(out.stderr).unwrap();
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("vod-ingest: ") && last.contains(expected),
            "{name}: {err}"
        );
    }
    app.stop().await;
}

/// STS clients create their own media, and the service records their uploads from VOD's
/// callbacks: without callback keys anyone could forge those, so it does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_tokens_without_callback_keys_refuse_to_start() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let out = vod_ingest(&app)
        .env(
            "VOD_INGEST_STS_ROLE_ARN",
            "acs:ram::1234567890123456:role/vod-client-upload",
        )
        .env_remove("VOD_CALLBACK_AUTH_KEYS")
        .args(["run", "--no-worker", "--no-reconciler"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("vod-ingest: ")
            && last.contains("VOD_INGEST_STS_ROLE_ARN")
            && last.contains("VOD_CALLBACK_AUTH_KEYS"),
        "{err}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_shown_once_listed_without_secrets_and_revoked() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let out = vod_ingest(&app)
        .args([
            "api-key",
            "create",
            "--name",
            "mobile app",
            "--kinds",
            "video,image",
        ])
        .args(["--max-file-size", "2G", "--requests-per-minute", "30"])
        .args(["--origin", "https://app.example.com", "--allow-sts"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("vik_") && key.len() == 49, "{key}");
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(note.contains("shown only this once"), "{note}");

    // The key works, then is listed without its secret.
    let r = app
        .api_post(
            "/v1/uploads",
            Some(&key),
            serde_json::json!({"kind": "image", "file_name": "a.png", "file_size": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    let out = vod_ingest(&app).args(["api-key", "list"]).output().unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    let key_id = &key[4..16];
    assert!(
        listing.contains(key_id) && listing.contains("mobile app"),
        "{listing}"
    );
    assert!(listing.contains("video,image") && listing.contains("https://app.example.com"));
    assert!(
        listing.contains("active") && !listing.contains(&key[17..]),
        "{listing}"
    );

    let out = vod_ingest(&app)
        .args(["api-key", "revoke", key_id])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = vod_ingest(&app).args(["api-key", "list"]).output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("revoked"));
    app.api_post(
        "/v1/uploads",
        Some(&key),
        serde_json::json!({"kind": "image", "file_name": "a.png", "file_size": 1}),
    )
    .await
    .refused(401, "ApiKeyRevoked");

    // Mistakes get one line that says what to do.
    for (args, expected) in [
        (
            vec!["api-key", "revoke", "nope"],
            "no API key with id \"nope\"",
        ),
        (
            vec!["api-key", "create", "--name", "x", "--kinds", "films"],
            "--kinds: unknown kind \"films\"",
        ),
        (
            vec![
                "api-key",
                "create",
                "--name",
                "x",
                "--origin",
                "https://a.example/path",
            ],
            "is not an origin",
        ),
    ] {
        let out = vod_ingest(&app).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_vod_settings_are_set_by_the_operator() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let out = vod_ingest(&app)
        .args(["api-key", "create", "--name", "tv app", "--allow-sts"])
        .args(["--allow-sts-refresh", "--app-id", "app-1000007"])
        .args(["--callback-url", "https://hooks.example/vod"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let key_id = &key[4..16];
    let out = vod_ingest(&app).args(["api-key", "list"]).output().unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.contains("app app-1000007")
            && listing.contains("callback https://hooks.example/vod")
            && listing.contains("RefreshUploadVideo"),
        "{listing}"
    );
    // Update: a new workflow, the callback cleared, refresh withdrawn.
    let out = vod_ingest(&app)
        .args(["api-key", "update", key_id, "--workflow-id", "wf-42"])
        .args(["--callback-url", "", "--allow-sts-refresh", "false"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = vod_ingest::keys::KeyStore::new(app.store().pool().clone());
    let stored = keys
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.key_id == key_id)
        .unwrap();
    assert_eq!(stored.settings.app_id.as_deref(), Some("app-1000007"));
    assert_eq!(stored.settings.workflow_id.as_deref(), Some("wf-42"));
    assert_eq!(stored.settings.callback_url, None);
    assert!(!stored.limits.allow_sts_refresh);
    for (args, expected) in [
        (
            vec![
                "api-key",
                "create",
                "--name",
                "x",
                "--callback-url",
                "ftp://x.example/",
            ],
            "--callback-url \"ftp://x.example/\" is not an http(s) URL",
        ),
        (
            vec!["api-key", "update", "nope", "--app-id", "a"],
            "no API key with id \"nope\"",
        ),
        (
            vec!["api-key", "update", key_id, "--app-id", "a b"],
            "--app-id \"a b\" is not a VOD id",
        ),
    ] {
        let out = vod_ingest(&app).args(&args).output().unwrap();
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    app.stop().await;
}

/// The first command a newcomer runs (`cargo run --release -- demo`): its sample jobs reach
/// their end through the emulator, RabbitMQ and PostgreSQL, the deliberate failure says what
/// to do, and its logs are plain text when they do not go to a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_takes_its_sample_jobs_to_their_end() {
    let db = common::TestDb::new().await;
    let topology = Topology::new(format!("test.demo.{}", uuid::Uuid::new_v4().simple()));
    let _cleanup = common::DeletesTopology(topology.clone());
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vod-ingest"))
        .args([
            "demo",
            "--video-mib",
            "1",
            "--amqp-prefix",
            &topology.prefix,
        ])
        .env("DATABASE_URL", &db.url)
        .env("AMQP_URL", common::amqp_url())
        .env("TMPDIR", tmp.path())
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("demo finished in"), "{stdout}");
    assert!(
        stdout.contains("press Retry"),
        "the refused job says what to do: {stdout}"
    );
    // The deliberate refusal and the typo are logged, without terminal colours.
    assert!(stderr.contains("Forbidden.RAM"), "{stderr}");
    assert!(stderr.contains("unknown field `titel`"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in piped logs: {stderr}"
    );

    let store = JobStore::new(sqlx::PgPool::connect(&db.url).await.unwrap());
    let mut states: Vec<(String, String)> = store
        .list(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.kind.to_string(), j.state.to_string()))
        .collect();
    states.sort();
    assert_eq!(
        states,
        [
            ("attached_media".into(), "completed".into()),
            ("image".into(), "completed".into()),
            ("image".into(), "failed".into()),
            ("video".into(), "completed".into()),
        ]
    );
}

/// `api-key create --webhook-url` prints the key and its webhook secret once; a URL the
/// service may not call, or no signing key, creates nothing and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_get_webhooks_from_the_command_line() {
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        ..Default::default()
    })
    .await;
    let keys = vod_ingest::keys::KeyStore::new(app.store().pool().clone());
    let signing_key = common::TEST_WEBHOOK_SIGNING_KEY;
    for (env, url, expected) in [
        (
            None,
            "http://127.0.0.1:7/hook",
            "set VOD_INGEST_WEBHOOK_SIGNING_KEY",
        ),
        (
            Some("too short"),
            "http://127.0.0.1:7/hook",
            "at least 32 characters",
        ),
        (
            Some(signing_key),
            "http://169.254.169.254/",
            "a link-local address",
        ),
        (
            Some(signing_key),
            "http://127.0.0.1:7/hook",
            "VOD_INGEST_WEBHOOK_ALLOW_LOOPBACK=true",
        ),
    ] {
        let mut cmd = vod_ingest(&app);
        cmd.env_remove("VOD_INGEST_WEBHOOK_SIGNING_KEY");
        if let Some(k) = env {
            cmd.env("VOD_INGEST_WEBHOOK_SIGNING_KEY", k);
        }
        let out = cmd
            .args([
                "api-key",
                "create",
                "--name",
                "refused",
                "--webhook-url",
                url,
            ])
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "{url}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(expected), "{url}: {err}");
        assert!(keys.list().await.unwrap().is_empty(), "{url} created a key");
    }
    let with_hooks = |args: &[&str]| {
        vod_ingest(&app)
            .env("VOD_INGEST_WEBHOOK_SIGNING_KEY", signing_key)
            .env("VOD_INGEST_WEBHOOK_ALLOW_LOOPBACK", "true")
            .args(args)
            .output()
            .unwrap()
    };
    let out = with_hooks(&[
        "api-key",
        "create",
        "--name",
        "app with hooks",
        "--webhook-url",
        "http://127.0.0.1:7/hook",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("vik_") && lines[1].starts_with("whsec_"),
        "{stdout}"
    );
    let key_id = &lines[0][4..16];
    let listing = String::from_utf8(with_hooks(&["api-key", "list"]).stdout).unwrap();
    assert!(
        listing.contains("webhooks to http://127.0.0.1:7/hook"),
        "{listing}"
    );
    // Nothing that signs is in the database.
    let dump: String = sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k")
        .fetch_one(app.store().pool())
        .await
        .unwrap();
    assert!(!dump.contains(&lines[1][6..]), "{dump}");

    let out = with_hooks(&["api-key", "rotate-webhook-secret", key_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        rotated.starts_with("whsec_") && rotated != lines[1],
        "{rotated}"
    );
    // A changed URL keeps the secret and prints none.
    let out = with_hooks(&[
        "api-key",
        "update",
        key_id,
        "--webhook-url",
        "http://127.0.0.1:8/h",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8(out.stdout).unwrap().contains("whsec_"));
    let stored = keys.get(key_id).await.unwrap().unwrap();
    assert_eq!(stored.webhook.url.as_deref(), Some("http://127.0.0.1:8/h"));
    app.stop().await;
}
