//! Chaos: many jobs of mixed kinds and sizes through several worker processes while they are
//! stopped and restarted, and the emulator injects errors and delays; then every job is
//! accounted for. `scripts/chaos.sh` runs the long version (a few hundred jobs, SIGKILL as well
//! as SIGTERM, RabbitMQ and PostgreSQL restarted); the test suite runs a short one with clean
//! stops only, which must lose nothing and duplicate nothing.
//!
//! Settings (environment): `CHAOS_JOBS` (default 60), `CHAOS_WORKERS` (3), `CHAOS_SECONDS`
//! (12, the length of the chaos phase), `CHAOS_SIGKILL` (0: SIGTERM only), and
//! `CHAOS_RESTART_SERVICES` (0; 1 restarts RabbitMQ and PostgreSQL once each, which disturbs
//! anything else using them, so only the script sets it).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{path_str, pattern, worker_process, KillOnDrop, TestApp, TestAppOptions};
use rand::Rng as _;
use serde_json::{json, Value};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn restart_rabbitmq() {
    println!("chaos: restarting RabbitMQ");
    for step in ["stop_app", "start_app"] {
        let ok = Command::new("rabbitmqctl")
            .arg(step)
            .status()
            .unwrap()
            .success();
        assert!(ok, "rabbitmqctl {step} failed");
    }
}

fn restart_postgres() {
    println!("chaos: restarting PostgreSQL");
    let version = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let ok = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            version.to_str().unwrap(),
            "main",
            "restart",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "pg_ctlcluster restart failed");
}

#[derive(sqlx::FromRow)]
struct Row {
    job_id: String,
    state: String,
    last_error_code: Option<String>,
    superseded_media_ids: Vec<String>,
    bytes_total: Option<i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_loses_nothing_and_duplicates_nothing() {
    let jobs = setting("CHAOS_JOBS", 60) as usize;
    let workers = setting("CHAOS_WORKERS", 3) as usize;
    let chaos_for = Duration::from_secs(setting("CHAOS_SECONDS", 12));
    let sigkill = setting("CHAOS_SIGKILL", 0) == 1;
    let restart_services = setting("CHAOS_RESTART_SERVICES", 0) == 1;
    let app = TestApp::spawn_with(TestAppOptions {
        worker: false,
        reconcile_after: Some(Duration::from_secs(3)),
        ..Default::default()
    })
    .await;
    let logs = tempfile::tempdir().unwrap();

    // A few distinct files, shared by many jobs: small ones, a few MiB, and multipart ones.
    let sizes = [30_000usize, 200_000, 2 << 20, 5 << 20];
    let videos: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| path_str(&app.media_file(&format!("v{i}.mp4"), &pattern(n, i as u8))))
        .collect();
    let image = path_str(&app.media_file("i.png", &pattern(20_000, 9)));
    let subtitle = path_str(&app.media_file("s.vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"));
    let mut submitted = Vec::new();
    for i in 0..jobs {
        let job_id = format!("chaos-{i:04}");
        // The title names the job, so the emulator's assets can be matched to jobs.
        let job = match i % 5 {
            0..=2 => json!({"job_id": job_id, "kind": "video", "title": job_id,
                                "source": videos[(i / 5) % videos.len()]}),
            3 => json!({"job_id": job_id, "kind": "image", "title": job_id, "source": image}),
            _ => json!({"job_id": job_id, "kind": "attached_media", "title": job_id,
                        "business_type": "subtitle", "source": subtitle}),
        };
        app.publish(job).await;
        submitted.push(job_id);
    }
    app.set_faults(json!({"delay_ms": 200, "error_rates": {
        "UploadPart": 0.03, "PutObject": 0.03, "CreateUploadVideo": 0.02, "CreateUploadImage": 0.02
    }}))
    .await;

    let env: [(&str, &str); 4] = [
        ("VOD_INGEST_CONCURRENCY", "4"),
        ("VOD_INGEST_LEASE_SECS", "3"),
        ("VOD_INGEST_SHUTDOWN_GRACE_SECS", "1"),
        ("RUST_LOG", "warn"),
    ];
    let spawn = |n: usize| worker_process(&app, &logs.path().join(format!("w{n}.log")), 2, &env);
    let mut pool: Vec<KillOnDrop> = (0..workers).map(spawn).collect();
    let mut spawned = workers;
    let (mut terms, mut kills) = (0, 0);
    let started = Instant::now();
    let mut restarted = (false, false);
    while started.elapsed() < chaos_for {
        tokio::time::sleep(Duration::from_millis(
            rand::thread_rng().gen_range(400..1200),
        ))
        .await;
        let victim = rand::thread_rng().gen_range(0..pool.len());
        let mut process = pool.swap_remove(victim);
        if sigkill && rand::thread_rng().gen_bool(0.5) {
            process.0.kill().unwrap();
            kills += 1;
        } else {
            let pid = process.0.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            terms += 1;
        }
        let _ = process.0.wait();
        pool.push(spawn(spawned));
        spawned += 1;
        if restart_services {
            let t = started.elapsed().as_secs_f64() / chaos_for.as_secs_f64();
            if t > 0.33 && !restarted.0 {
                restart_rabbitmq();
                restarted.0 = true;
            }
            if t > 0.66 && !restarted.1 {
                restart_postgres();
                restarted.1 = true;
            }
        }
    }
    app.set_faults(json!({"delay_ms": 0, "error_rates": {}}))
        .await;

    // Everything must end: completed, or failed with a reason.
    let deadline = Instant::now() + Duration::from_secs(180);
    let rows = loop {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT job_id, state, last_error_code, superseded_media_ids, bytes_total
             FROM ingest_jobs",
        )
        .fetch_all(app.store().pool())
        .await
        .unwrap_or_default();
        let settled = rows
            .iter()
            .filter(|r| matches!(r.state.as_str(), "completed" | "failed" | "cancelled"))
            .count();
        if settled == jobs || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    drop(pool);

    let completed = rows.iter().filter(|r| r.state == "completed").count();
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.state == "failed") {
        *failed
            .entry(r.last_error_code.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let lost: Vec<&String> = submitted
        .iter()
        .filter(|id| {
            !rows.iter().any(|r| {
                &r.job_id == *id && matches!(r.state.as_str(), "completed" | "failed" | "cancelled")
            })
        })
        .collect();
    // Per job, the assets VOD holds for it (matched by title) beyond the one recorded.
    let media: Vec<Value> = app
        .http
        .get(format!("{}/_emulator/media", app.emulator().base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut per_title: BTreeMap<String, usize> = BTreeMap::new();
    for m in &media {
        *per_title
            .entry(m["title"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    let duplicated_videos: Vec<&String> = submitted
        .iter()
        .enumerate()
        .filter(|(i, id)| i % 5 < 3 && per_title.get(*id).copied().unwrap_or(0) > 1)
        .map(|(_, id)| id)
        .collect();
    let superseded_videos = rows
        .iter()
        .filter(|r| r.job_id.starts_with("chaos-") && !r.superseded_media_ids.is_empty())
        .filter(|r| {
            submitted
                .iter()
                .position(|s| s == &r.job_id)
                .is_some_and(|i| i % 5 < 3)
        })
        .count();
    let handed_over: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ingest_job_events WHERE detail->>'released' = 'shutdown'",
    )
    .fetch_one(app.store().pool())
    .await
    .unwrap();
    let rescued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ingest_job_events WHERE (detail->>'rescued')::boolean",
    )
    .fetch_one(app.store().pool())
    .await
    .unwrap();
    let stats = app.emulator().stats();
    let stored: i64 = rows
        .iter()
        .filter(|r| r.state == "completed")
        .filter_map(|r| r.bytes_total)
        .sum();
    let resent = stats.bytes_received as i64 - stored;

    println!("chaos: {jobs} jobs, {workers} workers, {:.0} s of chaos: {terms} SIGTERM, {kills} SIGKILL, services restarted: {restart_services}", chaos_for.as_secs_f64());
    println!("  submitted            {jobs}");
    println!("  completed            {completed}");
    println!("  failed               {}", failed.values().sum::<usize>());
    for (code, n) in &failed {
        println!("    {code:<20} {n}");
    }
    println!("  lost                 {} (must be 0) {lost:?}", lost.len());
    println!(
        "  videos with >1 asset {} (must be 0) {duplicated_videos:?}",
        duplicated_videos.len()
    );
    println!("  videos superseded    {superseded_videos} (must be 0)");
    println!("  handed over cleanly  {handed_over}");
    println!("  rescued after kills  {rescued}");
    println!(
        "  bytes re-sent        {resent} ({:.1} % of {stored})",
        100.0 * resent as f64 / stored.max(1) as f64
    );

    assert!(lost.is_empty(), "lost jobs: {lost:?}");
    assert_eq!(superseded_videos, 0, "a video job changed its VideoId");
    assert!(
        duplicated_videos.is_empty(),
        "video jobs with more than one asset in VOD: {duplicated_videos:?}"
    );
    if !sigkill && !restart_services {
        assert_eq!(completed, jobs, "failures: {failed:?}");
        assert!(
            handed_over > 0,
            "no stop hit a job in flight: the run proved nothing"
        );
    }
    app.stop().await;
}
