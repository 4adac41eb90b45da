//! Secrets, proven absent: every face of a real `vod-ingest run` process (worker, webhook,
//! client API, reconciler, admin listener) runs with distinctive secrets, at debug log level,
//! through successes and failures; then its logs, every table, every message on the events
//! exchange, `/metrics`, the job API, the console's pages and the CLI's output are searched for each secret: the
//! AccessKey secret, the callback key, the API key, the admin token, and every STS secret, STS
//! token and UploadAuth string the emulator handed out.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{amqp_url, pattern, KillOnDrop, TestDb};
use futures_util::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use serde_json::{json, Value};
use vod_ingest::emulator::EmulatorConfig;
use vod_ingest::jobs::{JobState, JobStore};
use vod_ingest::queue::{self, Topology};
use vod_ingest::secret::Secret;
use vod_ingest::sign::callback;
use vod_ingest::vod::CreateUploadVideoRequest;

const ACCESS_KEY_SECRET: &str = "AKSECRET-5b1f0c7e9a2d4e8f";
const CALLBACK_KEY: &str = "CBKEY-7c3a91d2e4f6b8a0";
const ADMIN_TOKEN: &str = "ADMINTOKEN-2e9d6c4b1a7f3e5d";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for(store: &JobStore, job_id: &str, state: JobState) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(job) = store.get(job_id).await.unwrap() {
            if job.state() == state {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{job_id} never became {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_logs_tables_events_or_metrics() {
    let db = TestDb::new().await;
    let topology = Topology::new(format!("test.{}", uuid::Uuid::new_v4().simple()));
    let (port, admin_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let admin = format!("http://127.0.0.1:{admin_port}");
    let callback_url = format!("{base}/callbacks/vod");
    let work = tempfile::tempdir().unwrap();
    let media = work.path().join("media");
    std::fs::create_dir_all(&media).unwrap();

    let mut config = EmulatorConfig::new(work.path().join("emulator"));
    config.access_key_id = "LTAI-secrets-test".into();
    config.access_key_secret = Secret::new(ACCESS_KEY_SECRET);
    config.callback_url = Some(callback_url.clone());
    config.callback_key = Some(Secret::new(CALLBACK_KEY));
    let emulator = vod_ingest::emulator::start(config).await.unwrap();

    // A tap on the events exchange, declared before anything is published.
    let conn = queue::connect(&amqp_url(), "test-secrets-tap")
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    topology.declare(&channel).await.unwrap();
    let tap = format!("{}.tap", topology.prefix);
    channel
        .queue_declare(&tap, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            &tap,
            &topology.events_exchange(),
            "#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let env = |cmd: &mut Command| {
        cmd.env("DATABASE_URL", &db.url)
            .env("AMQP_URL", amqp_url())
            .env("VOD_INGEST_AMQP_PREFIX", &topology.prefix)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-secrets-test")
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
            .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN")
            .env_remove("ALIBABA_CLOUD_ROLE_ARN")
            .env("VOD_ENDPOINT", emulator.base_url())
            .env("STS_ENDPOINT", emulator.base_url())
            .env("VOD_CALLBACK_URL", &callback_url)
            .env("VOD_CALLBACK_AUTH_KEYS", CALLBACK_KEY)
            .env("VOD_INGEST_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("VOD_INGEST_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("VOD_INGEST_ADMIN_TOKEN", ADMIN_TOKEN)
            .env(
                "VOD_INGEST_STS_ROLE_ARN",
                "acs:ram::1234567890123456:role/vod-client-upload",
            )
            .env("VOD_INGEST_SOURCE_ROOTS", &media)
            .env("VOD_INGEST_MULTIPART_THRESHOLD", "1M")
            .env("VOD_INGEST_PART_SIZE", "256K")
            .env("VOD_INGEST_RECONCILE_AFTER_SECS", "1")
            .env("RUST_LOG", "debug");
    };
    let log_path = work.path().join("service.log");
    let mut run = Command::new(env!("CARGO_BIN_EXE_vod-ingest"));
    env(&mut run);
    let service = run
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the service did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = JobStore::new(vod_ingest::app::connect_database(&db.url, 2).await.unwrap());
    let mut cli_output = String::new();
    let mut cli = |args: &[&str]| -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vod-ingest"));
        env(&mut cmd);
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cli_output.push_str(&String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };

    // The worker: a multipart video (its credential expires mid-upload once) and an image.
    std::fs::write(media.join("big.mp4"), pattern(3 << 20, 1)).unwrap();
    std::fs::write(media.join("small.png"), pattern(5000, 2)).unwrap();
    std::fs::write(media.join("small.vtt"), b"WEBVTT\n\n").unwrap();
    http.put(format!("{}/_emulator/faults", emulator.base_url()))
        .json(&json!({"fail_next": [
            {"action": "UploadPart", "code": "SecurityTokenExpired", "status": 403},
            {"action": "CreateUploadAttachedMedia", "code": "Forbidden.RAM", "status": 403},
        ]}))
        .send()
        .await
        .unwrap();
    let publisher = queue::confirm_channel(&conn).await.unwrap();
    for job in [
        json!({"job_id": "s-video", "kind": "video", "title": "t", "source": media.join("big.mp4")}),
        json!({"job_id": "s-image", "kind": "image", "source": media.join("small.png")}),
        json!({"job_id": "s-bad", "kind": "attached_media", "business_type": "subtitle",
               "source": media.join("small.vtt")}),
        // Not a job at all: dead-lettered.
        json!({"job_id": "s-invalid", "kind": "video", "title": "t", "source": "/nowhere/x.mp4"}),
    ] {
        queue::publish_job(&publisher, &topology, &serde_json::to_vec(&job).unwrap())
            .await
            .unwrap();
    }

    // The client API: a credential, its refresh, an upload; an STS token used to upload.
    let key = cli(&["api-key", "create", "--name", "secrets", "--allow-sts"])
        .trim()
        .to_owned();
    let credential: Value = http
        .post(format!("{base}/v1/uploads"))
        .bearer_auth(&key)
        .json(&json!({"kind": "video", "file_name": "app.mp4", "file_size": 1000, "title": "t"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = credential["job_id"].as_str().unwrap().to_owned();
    let refreshed: Value = http
        .post(format!("{base}/v1/uploads/{job_id}/refresh"))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    common::client_put(
        refreshed["upload_address"].as_str().unwrap(),
        refreshed["upload_auth"].as_str().unwrap(),
        pattern(1000, 3),
    )
    .await;
    let token: Value = http
        .post(format!("{base}/v1/sts-token"))
        .bearer_auth(&key)
        .json(&json!({"kinds": ["video"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sts_vod = common::sts_vod_client(&emulator.base_url(), &token);
    let ticket = sts_vod
        .create_upload_video(&CreateUploadVideoRequest {
            title: "sts".into(),
            file_name: "sts.mp4".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    common::client_put(
        &ticket.upload_address_b64,
        ticket.upload_auth_b64.expose(),
        pattern(700, 4),
    )
    .await;
    // Refused on the way in: a wrong key, a forged callback.
    http.post(format!("{base}/v1/uploads"))
        .bearer_auth(format!("{key}x"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    http.post(&callback_url)
        .header("X-VOD-TIMESTAMP", &ts)
        .header(
            "X-VOD-SIGNATURE",
            callback::signature(&callback_url, &ts, "not-the-key"),
        )
        .body(r#"{"EventType":"FileUploadComplete","VideoId":"x","Status":"success"}"#)
        .send()
        .await
        .unwrap();

    wait_for(&store, "s-video", JobState::Completed).await;
    wait_for(&store, "s-image", JobState::Completed).await;
    wait_for(&store, "s-bad", JobState::Failed).await;
    wait_for(&store, &job_id, JobState::Completed).await;
    wait_for(
        &store,
        &format!("sts:{}", ticket.media_id),
        JobState::Completed,
    )
    .await;

    // What operators read.
    let mut exposed = String::new();
    for path in [
        "/metrics",
        "/v1/jobs/s-video",
        &format!("/v1/jobs/{job_id}"),
        "/console",
        "/console/jobs",
        "/console/jobs/s-video",
        &format!("/console/jobs/{job_id}"),
        "/console/dead-letters",
        "/console/keys",
        "/console/api/uploads",
    ] {
        let resp = http
            .get(format!("{admin}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        exposed.push_str(&resp.text().await.unwrap());
    }
    exposed.push_str(&cli(&["status", "s-video", "--json"]));
    exposed.push_str(&cli(&["jobs"]));
    exposed.push_str(&cli(&["api-key", "list"]));

    signal_and_wait(service);
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logs.contains("DEBUG") && logs.contains("job moved on"),
        "debug logs were written: {}",
        &logs[..logs.len().min(3000)]
    );

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut rows = String::new();
    for table in &tables {
        let dump: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t"))
            .fetch_all(store.pool())
            .await
            .unwrap();
        rows.push_str(&dump.join("\n"));
    }
    assert!(rows.contains("s-video") && tables.len() >= 8, "{tables:?}");

    let mut events = String::new();
    let mut consumer = channel
        .basic_consume(
            &tap,
            "tap",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    while let Ok(Some(Ok(delivery))) =
        tokio::time::timeout(Duration::from_millis(500), consumer.next()).await
    {
        events.push_str(&String::from_utf8_lossy(&delivery.data));
        events.push('\n');
    }
    assert!(events.contains("\"completed\""), "events were published");

    let mut secrets: Vec<String> = vec![
        ACCESS_KEY_SECRET.into(),
        CALLBACK_KEY.into(),
        ADMIN_TOKEN.into(),
        key.clone(),
        key[17..].to_owned(),
    ];
    secrets.extend(emulator.issued_secrets());
    // The API's answers carried these to their client; they must go nowhere else.
    for b64 in [&credential["upload_auth"], &refreshed["upload_auth"]] {
        let b64 = b64.as_str().unwrap();
        secrets.push(b64.to_owned());
        let auth: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap();
        secrets.push(auth["AccessKeySecret"].as_str().unwrap().into());
        secrets.push(auth["SecurityToken"].as_str().unwrap().into());
    }
    secrets.push(token["access_key_secret"].as_str().unwrap().into());
    secrets.push(token["security_token"].as_str().unwrap().into());
    assert!(
        secrets.len() > 20,
        "the emulator handed out secrets: {}",
        secrets.len()
    );

    for (place, text) in [
        ("the service's logs", &logs),
        ("the CLI's messages", &cli_output),
        ("the tables", &rows),
        ("the events exchange", &events),
        (
            "/metrics, the job API, the console and the CLI's output",
            &exposed,
        ),
    ] {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret ({}…) appears in {place}",
                &secret[..6.min(secret.len())]
            );
        }
    }

    let _ = channel
        .queue_delete(&tap, QueueDeleteOptions::default())
        .await;
    let _ = topology.delete(&channel).await;
    let _ = conn.close(200, "done").await;
    emulator.shutdown().await;
}

fn signal_and_wait(mut service: KillOnDrop) {
    let status = Command::new("kill")
        .args(["-TERM", &service.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = service.0.wait().unwrap();
    assert!(status.success(), "the service stopped cleanly: {status}");
}
