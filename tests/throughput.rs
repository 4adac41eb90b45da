//! Many small jobs: the fleet-wide VOD rate limit against the emulator's enforcement, the
//! fleet's back-off after a `Throttling.User`, and the batch consumer's ack-after-commit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{amqp_url, TestDb};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{json, Value};
use vod_ingest::emulator::{self, EmulatorConfig, RunningEmulator};
use vod_ingest::jobs::JobStore;
use vod_ingest::queue::{self, ConsumerConfig, Topology};
use vod_ingest::ratelimit::{FleetLimiter, RateLimits};
use vod_ingest::secret::Secret;
use vod_ingest::vod::{CreateUploadImageRequest, CredentialProvider, VodClient, VodConfig};

async fn start_emulator(dir: &tempfile::TempDir) -> RunningEmulator {
    let mut config = EmulatorConfig::new(dir.path().to_owned());
    config.listen = ([127, 0, 0, 1], 0).into();
    emulator::start(config).await.expect("start the emulator")
}

async fn stats(http: &reqwest::Client, emulator: &RunningEmulator) -> Value {
    http.get(format!("{}/_emulator/stats", emulator.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn set_faults(http: &reqwest::Client, emulator: &RunningEmulator, faults: Value) {
    let resp = http
        .put(format!("{}/_emulator/faults", emulator.base_url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

/// One "process": its own connection pool, limiter and VOD client, on the shared database.
async fn process(
    db: &TestDb,
    emulator: &RunningEmulator,
    limits: &RateLimits,
) -> (VodClient, FleetLimiter) {
    let pool = vod_ingest::app::connect_database(&db.url, 4).await.unwrap();
    let limiter = FleetLimiter::new(pool, limits);
    let client = VodClient::new(
        VodConfig {
            endpoint: url::Url::parse(&emulator.base_url()).unwrap(),
            region: "cn-shanghai".into(),
            timeout: Duration::from_secs(10),
        },
        CredentialProvider::access_key(
            "emulator-access-key-id".to_owned(),
            Secret::new("emulator-access-key-secret"),
        ),
        reqwest::Client::new(),
    )
    .with_limiter(limiter.clone());
    (client, limiter)
}

fn image_request() -> CreateUploadImageRequest {
    CreateUploadImageRequest {
        image_type: "default".into(),
        image_ext: Some("jpg".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn processes_sharing_a_limit_are_never_throttled_and_use_it_fully() {
    const LIMIT: u32 = 20;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let emulator = start_emulator(&dir).await;
    let http = reqwest::Client::new();
    set_faults(
        &http,
        &emulator,
        json!({"rate_limits": {"CreateUploadImage": LIMIT}}),
    )
    .await;
    let limits: RateLimits = format!("CreateUploadImage={LIMIT}").parse().unwrap();

    // Three processes with eight callers each: far more demand than the limit.
    let target = (LIMIT * 5) as usize;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (client, _limiter) = process(&db, &emulator, &limits).await;
        for _ in 0..8 {
            let (client, done) = (client.clone(), done.clone());
            calls.spawn(async move {
                while done.load(std::sync::atomic::Ordering::Relaxed) < target {
                    client
                        .create_upload_image(&image_request())
                        .await
                        .expect("no call fails");
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap();
    }

    let stats = stats(&http, &emulator).await;
    assert_eq!(
        stats["throttled"].get("CreateUploadImage"),
        None,
        "{stats:#}"
    );
    let windows: Vec<u64> = stats["rate_windows"]["CreateUploadImage"]
        .as_object()
        .expect("the emulator counted the limited action per second")
        .values()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert!(windows.len() >= 5, "{windows:?}");
    assert!(windows.iter().all(|&n| n <= LIMIT as u64), "{windows:?}");
    // Every second but the first and the last (partial ones) is used to within 10 %.
    let interior = &windows[1..windows.len() - 1];
    assert!(
        interior.iter().all(|&n| n * 10 >= LIMIT as u64 * 9),
        "the processes together should use the limit: {windows:?}"
    );
    assert_eq!(
        stats["requests"]["CreateUploadImage"].as_u64().unwrap(),
        windows.iter().sum::<u64>(),
        "every call was counted in a window: {stats:#}"
    );
}

#[tokio::test]
async fn a_throttling_answer_lowers_the_limit_for_the_whole_fleet() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let emulator = start_emulator(&dir).await;
    let http = reqwest::Client::new();
    let limits: RateLimits = "CreateUploadImage=50".parse().unwrap();
    let (client, _) = process(&db, &emulator, &limits).await;
    let (_, other) = process(&db, &emulator, &limits).await;
    assert_eq!(
        other.effective_limit("CreateUploadImage").await.unwrap(),
        Some(50)
    );

    // VOD throttles the account once (another tool on it, say): the call is retried and
    // succeeds, and every process now sends at half the rate for a while.
    set_faults(
        &http,
        &emulator,
        json!({"fail_next": [{"action": "CreateUploadImage", "code": "Throttling.User", "status": 400}]}),
    )
    .await;
    let ticket = client.create_upload_image(&image_request()).await.unwrap();
    assert!(!ticket.media_id.is_empty());
    let stats = stats(&http, &emulator).await;
    assert_eq!(stats["requests"]["CreateUploadImage"], 2, "{stats:#}");
    assert_eq!(
        other.effective_limit("CreateUploadImage").await.unwrap(),
        Some(25)
    );
    // Actions that were not throttled keep theirs.
    let all = RateLimits::default();
    let (_, third) = process(&db, &emulator, &all).await;
    assert_eq!(
        third.effective_limit("CreateUploadVideo").await.unwrap(),
        Some(120)
    );
}

#[tokio::test]
async fn the_emulator_answers_throttling_like_vod() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start_emulator(&dir).await;
    let http = reqwest::Client::new();
    set_faults(
        &http,
        &emulator,
        json!({"rate_limits": {"CreateUploadImage": 1}}),
    )
    .await;
    let db = TestDb::new().await;
    // Without a limiter, forty callers at once: one call per second gets through, the others
    // are refused. Each is tried a few times by the client with backoff, so on a slow machine
    // ten callers could all get their own second (CI saw it); forty cannot.
    let (client, _) = process(&db, &emulator, &RateLimits::off()).await;
    let calls = (0..40).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.create_upload_image(&image_request()).await })
    });
    let mut refused = 0;
    for call in calls {
        if let Err(e) = call.await.unwrap() {
            assert_eq!(e.code(), "Throttling.User", "{e}");
            assert!(e.is_retryable() && e.request_not_executed(), "{e}");
            match e.kind() {
                vod_ingest::vod::VodErrorKind::Api {
                    http_status,
                    message,
                    ..
                } => {
                    assert_eq!(*http_status, 400);
                    assert_eq!(message, "Request was denied due to user flow control.");
                }
                other => panic!("not an API answer: {other:?}"),
            }
            refused += 1;
        }
    }
    assert!(refused > 0);
    let stats = stats(&http, &emulator).await;
    assert!(
        stats["throttled"]["CreateUploadImage"].as_u64().unwrap() >= refused,
        "{stats:#}"
    );
    let windows = stats["rate_windows"]["CreateUploadImage"]
        .as_object()
        .unwrap();
    assert!(windows.values().all(|n| n.as_u64() == Some(1)), "{stats:#}");
}

/// Each claim on the fleet's budget is a statement: a process that makes many calls claims
/// for several at a time, sized by its last second, not once per call.
#[tokio::test]
async fn a_busy_process_claims_permits_in_chunks() {
    const ACTION: &str = "CreateUploadAttachedMedia"; // no other test here limits it
    let db = TestDb::new().await;
    let pool = vod_ingest::app::connect_database(&db.url, 4).await.unwrap();
    let metrics = vod_ingest::telemetry::prometheus();
    let limiter = FleetLimiter::new(pool, &format!("{ACTION}=1000").parse().unwrap());
    let claims = || -> f64 {
        metrics
            .render()
            .lines()
            .find(|l| l.starts_with("vod_ingest_rate_limit_claims_total") && l.contains(ACTION))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    // One caller, one call at a time: nothing else is waiting to size a claim by. Its first
    // second has no earlier one to size claims by (one claim per call): measure after it.
    let warm_up = tokio::time::Instant::now() + Duration::from_millis(2100);
    while tokio::time::Instant::now() < warm_up {
        limiter.acquire(ACTION).await;
    }
    let before = claims();
    assert!(before > 0.0, "claims are counted");
    let calls = 1000;
    for _ in 0..calls {
        limiter.acquire(ACTION).await;
    }
    let claimed = claims() - before;
    assert!(
        claimed * 3.0 < calls as f64,
        "{claimed} claims for {calls} calls"
    );
}

#[tokio::test]
async fn a_bad_message_in_a_batch_is_dead_lettered_and_the_rest_are_committed() {
    let db = TestDb::new().await;
    let pool = vod_ingest::app::connect_database(&db.url, 4).await.unwrap();
    let store = JobStore::new(pool);
    let media = tempfile::tempdir().unwrap();
    let source = media.path().join("clip.mp4");
    std::fs::write(&source, b"not really a video").unwrap();
    let root = std::fs::canonicalize(media.path()).unwrap();

    let topology = Topology::new(format!("test.batch.{}", uuid::Uuid::new_v4().simple()));
    let conn = queue::connect(&amqp_url(), "test-batch").await.unwrap();
    let channel = queue::confirm_channel(&conn).await.unwrap();
    topology.declare(&channel).await.unwrap();
    // All waiting before the consumer starts, so that they arrive as one batch.
    for i in 0..30 {
        let body = if i == 12 {
            br#"{"kind": "video", "source": "/nowhere.mp4", "titel": "Typo"}"#.to_vec()
        } else {
            serde_json::to_vec(&json!({
                "job_id": format!("batch-{i}"), "kind": "video", "title": format!("Clip {i}"),
                "source": source.display().to_string(),
            }))
            .unwrap()
        };
        queue::publish_job(&channel, &topology, &body)
            .await
            .unwrap();
    }
    // A duplicate inside the batch creates nothing new.
    let dup = json!({"job_id": "batch-3", "kind": "video", "title": "again", "source": source.display().to_string()});
    queue::publish_job(&channel, &topology, &serde_json::to_vec(&dup).unwrap())
        .await
        .unwrap();

    let consumer_channel = queue::confirm_channel(&conn).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let outbox = vod_ingest::jobs::OutboxWaker::new();
    let consumer = tokio::spawn(queue::consume_jobs(
        consumer_channel.clone(),
        ConsumerConfig {
            topology: topology.clone(),
            prefetch: 100,
            source_roots: vec![root],
            consumer_tag: "test-batch".into(),
        },
        store.clone(),
        outbox.clone(),
        Arc::new(tokio::sync::Notify::new()),
        shutdown.clone(),
    ));

    // The consumer rings the outbox after each commit; count what it committed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_jobs")
            .fetch_one(store.pool())
            .await
            .unwrap();
        if queued >= 29 {
            break;
        }
        tokio::time::timeout_at(deadline, outbox.woken())
            .await
            .expect("29 jobs recorded in time");
    }
    shutdown.cancel();
    consumer.await.unwrap().unwrap();
    consumer_channel.close(200, "done").await.unwrap();

    let mut ids: Vec<String> = sqlx::query_scalar("SELECT job_id FROM ingest_jobs ORDER BY job_id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    ids.sort();
    let mut expected: Vec<String> = (0..30)
        .filter(|i| *i != 12)
        .map(|i| format!("batch-{i}"))
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    let history: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ingest_job_events WHERE to_state = 'queued'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(history, 29, "one history row per job");
    let title: String =
        sqlx::query_scalar("SELECT title FROM ingest_jobs WHERE job_id = 'batch-3'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(title, "Clip 3", "the duplicate changed nothing");

    // Every delivery was settled: acknowledged after the commit, or dead-lettered. The
    // consumer's channel is closed, so anything unacknowledged would be back in the queue.
    let check = conn.create_channel().await.unwrap();
    let jobs = check
        .queue_declare(
            &topology.jobs_queue(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(jobs.message_count(), 0, "every delivery was acknowledged");
    let dead = check
        .basic_get(
            &topology.dead_letter_queue(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the bad message is dead-lettered");
    let reason = match dead
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(queue::REASON_HEADER).cloned())
    {
        Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("no reason header: {other:?}"),
    };
    assert!(
        reason.contains("unknown field `titel`"),
        "the reason names the problem: {reason}"
    );
    topology.delete(&check).await.unwrap();
    let _ = conn.close(200, "done").await;
}
