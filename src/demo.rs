//! `vod-ingest demo`: the emulator, the worker and the webhook in one process, on generated
//! sample media, through the real RabbitMQ and PostgreSQL. The first thing a new user runs.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::{Rng as _, SeedableRng as _};

use crate::app::{self, AppConfig, HttpSettings, VodSettings};
use crate::cli::DemoArgs;
use crate::display::{human_bytes, jobs_table, progress_bar};
use crate::jobs::{JobMessage, JobState};
use crate::queue::{self, Topology};
use crate::reconciler::ReconcilerConfig;
use crate::secret::Secret;
use crate::webhook::CallbackAuth;
use crate::worker::WorkerConfig;

/// A 1×1 transparent PNG.
const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

/// Sample media: a video-sized file, an image and a subtitle file.
pub struct SampleMedia {
    pub video: PathBuf,
    pub image: PathBuf,
    pub subtitle: PathBuf,
}

/// Writes sample files into `dir`. The "video" is `video_bytes` of seeded noise behind an MP4
/// `ftyp` box: VOD's upload path does not parse media, so size is what matters here.
pub fn generate_sample_media(dir: &Path, video_bytes: u64) -> anyhow::Result<SampleMedia> {
    std::fs::create_dir_all(dir)?;
    let video = dir.join("sample-video.mp4");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&video)?);
    let header: &[u8] = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom";
    file.write_all(header)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut remaining = video_bytes.saturating_sub(header.len() as u64);
    let mut chunk = vec![0u8; 64 * 1024];
    while remaining > 0 {
        let n = remaining.min(chunk.len() as u64) as usize;
        rng.fill(&mut chunk[..n]);
        file.write_all(&chunk[..n])?;
        remaining -= n as u64;
    }
    file.flush()?;
    let image = dir.join("sample-cover.png");
    std::fs::write(&image, TINY_PNG)?;
    let subtitle = dir.join("sample-subtitles.vtt");
    std::fs::write(
        &subtitle,
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nHello from vod-ingest.\n\n00:00:02.000 --> 00:00:04.000\nEvery byte checked with CRC-64.\n",
    )?;
    Ok(SampleMedia {
        video,
        image,
        subtitle,
    })
}

/// Where each kind of client reaches the emulator.
fn print_client_urls(emulator: &crate::emulator::RunningEmulator, http_port: u16) {
    let port = emulator.addr().port();
    let region = "cn-shanghai";
    println!("\nclient SDKs against this demo (docs/clients.md explains each line):");
    println!("  application server (your back end): http://127.0.0.1:{http_port}/v1/uploads, /v1/sts-token");
    println!("  browsers and mini programs: OSS endpoint http://localhost:{port} (buckets at <bucket>.localhost)");
    println!(
        "  VOD's Web SDK in STS mode (it calls https://vod.{region}.aliyuncs.com): chromium \
         --host-resolver-rules=\"MAP vod.{region}.aliyuncs.com:443 127.0.0.1:{port}\" \
         --ignore-certificate-errors (or trust {})",
        emulator
            .tls_cert_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the emulator's certificate".into())
    );
    println!(
        "  phones on your network: run `vod-ingest emulator --listen 0.0.0.0:9000 --tls \
         --public-url http://<your-ip>.nip.io:9000` (a wildcard DNS name, so bucket sub-domains resolve)"
    );
}

/// Keeps the service up for the browser upload page until Ctrl-C, with a fresh API key.
async fn serve_upload_page(
    running: &app::RunningApp,
    emulator: &crate::emulator::RunningEmulator,
    http_port: u16,
    console: &str,
) -> anyhow::Result<()> {
    let keys = crate::keys::KeyStore::new(running.store.pool().clone());
    let limits = crate::keys::KeyLimits {
        kinds: vec![
            crate::jobs::JobKind::Video,
            crate::jobs::JobKind::Image,
            crate::jobs::JobKind::AttachedMedia,
        ],
        max_file_size: 10 << 30,
        requests_per_minute: 600,
        allowed_origins: Vec::new(),
        allow_sts: true,
        allow_sts_refresh: false,
    };
    let (key, secret) = keys.create("demo", &limits).await?;
    if !Path::new("web").join(crate::api::ALI_OSS_BUNDLE).is_file() {
        println!(
            "note: the page needs the ali-oss browser bundle: run `npm ci --prefix web` first"
        );
    }
    println!("\nupload page: http://127.0.0.1:{http_port}/upload");
    println!("API key ({}): {}", key.key_id, secret.expose());
    println!("operator console: {console} (jobs, history, throughput, dead letters, keys)");
    println!("jobs: `vod-ingest jobs` in another terminal; Ctrl-C stops the demo");
    print_client_urls(emulator, http_port);
    tokio::signal::ctrl_c().await?;
    Ok(())
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let work_dir = std::env::temp_dir().join(format!("vod-ingest-demo-{}", std::process::id()));
    let media_dir = work_dir.join("media");
    let result = run_in(&args, &work_dir, &media_dir).await;
    let _ = std::fs::remove_dir_all(&work_dir);
    if result.is_ok() {
        println!(
            "\ndemo finished in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    result
}

async fn run_in(args: &DemoArgs, work_dir: &Path, media_dir: &Path) -> anyhow::Result<()> {
    println!("vod-ingest demo: emulator + worker + webhook, through RabbitMQ and PostgreSQL\n");
    app::ensure_database(&args.db.database_url).await?;
    let media = generate_sample_media(media_dir, args.video_mib * 1024 * 1024)?;
    println!(
        "generated sample media in {}: video {}, image {}, subtitles {}",
        media_dir.display(),
        human_bytes(std::fs::metadata(&media.video)?.len() as i64),
        human_bytes(std::fs::metadata(&media.image)?.len() as i64),
        human_bytes(std::fs::metadata(&media.subtitle)?.len() as i64),
    );

    let (http_addr, admin_addr): (std::net::SocketAddr, std::net::SocketAddr) = if args.serve {
        (args.serve_addr, args.admin_addr)
    } else {
        (([127, 0, 0, 1], 0).into(), ([127, 0, 0, 1], 0).into())
    };
    // Checked here for a message that names the flag (the port is taken again at start-up).
    drop(std::net::TcpListener::bind(admin_addr).with_context(|| {
        format!("cannot listen on {admin_addr} (--admin-addr): is `vod-ingest run` or another demo using it? Pick another port")
    })?);
    let http_listener = std::net::TcpListener::bind(http_addr)
        .with_context(|| format!("cannot listen on {http_addr} (--serve-addr)"))?;
    let http_port = http_listener.local_addr()?.port();
    let callback_url = format!("http://127.0.0.1:{http_port}/callbacks/vod");
    let callback_key = hex::encode(rand::random::<[u8; 16]>());
    let mut emulator_config = crate::emulator::EmulatorConfig::new(work_dir.join("emulator"));
    std::fs::create_dir_all(&emulator_config.data_dir)?;
    emulator_config.callback_url = Some(callback_url.clone());
    emulator_config.callback_key = Some(Secret::new(callback_key.clone()));
    if args.serve {
        // For client SDKs: `localhost` endpoints (a mini program builds `<bucket>.localhost`,
        // which browsers resolve to loopback; our own clients use path style for it) and
        // HTTPS on the same port for VOD's SDKs in STS mode.
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
            .local_addr()?
            .port();
        emulator_config.listen = ([127, 0, 0, 1], port).into();
        emulator_config.public_url = Some(format!("http://localhost:{port}"));
        emulator_config.tls = Some(crate::emulator::TlsCertificate::Generated);
    }
    let emulator = crate::emulator::start(emulator_config.clone())
        .await
        .context("starting the emulator failed")?;
    let endpoint = url::Url::parse(&emulator.base_url())?;
    println!("emulator (VOD + STS + OSS) on {}", emulator.base_url());

    let roots = crate::cli::source_roots(&[media_dir.to_owned()])?;
    let mut worker = WorkerConfig::new(roots);
    worker.concurrency = 3;
    worker.progress_interval = Duration::from_millis(200);
    let topology = Topology::new(args.amqp_prefix.clone());
    let running = app::start_with_listener(
        AppConfig {
            database_url: args.db.database_url.clone(),
            amqp_url: args.amqp_url.clone(),
            topology: topology.clone(),
            vod: VodSettings {
                endpoint: endpoint.clone(),
                sts_endpoint: endpoint,
                region: emulator_config.region.clone(),
                access_key_id: emulator_config.access_key_id.clone(),
                access_key_secret: emulator_config.access_key_secret.clone(),
                security_token: None,
                role_arn: None,
                role_session_name: "vod-ingest-demo".into(),
                timeout: Duration::from_secs(30),
                rate_limits: Default::default(),
                signature_version: Default::default(),
            },
            worker: Some(worker),
            http: Some(HttpSettings {
                addr: ([127, 0, 0, 1], http_port).into(),
                admin_addr,
                admin_token: None,
                admin_allow_open: false,
                admin_https: false,
                auth: CallbackAuth {
                    urls: vec![callback_url.clone()],
                    keys: vec![Secret::new(callback_key)],
                    window: Duration::from_secs(300),
                },
                max_callback_bytes: crate::webhook::DEFAULT_MAX_CALLBACK_BYTES,
                retention: Default::default(),
                // A new signing key per demo: keys made in its console may have webhooks to
                // a receiver on this host.
                webhooks: crate::app_webhooks::WebhookSettings {
                    signing_key: Some(Secret::new(format!(
                        "{}{}",
                        uuid::Uuid::new_v4().simple(),
                        uuid::Uuid::new_v4().simple()
                    ))),
                    allow_loopback: true,
                    ..Default::default()
                },
                sts: Some(crate::api::StsSettings {
                    role_arn: "acs:ram::1234567890123456:role/vod-client-upload".into(),
                    default_duration: Duration::from_secs(3600),
                    max_duration: Duration::from_secs(3600),
                }),
                web_dir: "web".into(),
                limits: Default::default(),
            }),
            reconciler: Some(ReconcilerConfig {
                grace: Duration::from_secs(10),
                interval: Duration::from_secs(2),
                batch: 100,
                ..Default::default()
            }),
        },
        http_listener,
    )
    .await?;
    println!("worker and webhook running; callbacks go to {callback_url} (signed)");
    let console = format!(
        "http://{}/console",
        running
            .admin_addr
            .expect("the demo runs the admin listener")
    );
    println!("operator console: {console}\n");

    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    // One job fails on purpose, so that there is something to retry from the console: the
    // emulator refuses its CreateUploadImage once, as VOD refuses a RAM user without the
    // permission. It runs alone first, so that no other image takes the refusal.
    let refused_id = format!("demo-{run_id}-refused");
    let refused = JobMessage {
        job_id: Some(refused_id.clone()),
        kind: "image".into(),
        source: media.image.display().to_string(),
        title: Some("refused once by VOD (retry me)".into()),
        ..Default::default()
    };
    reqwest::Client::new()
        .put(format!("{}/_emulator/faults", emulator.base_url()))
        .json(&serde_json::json!({"fail_next": [{
            "action": "CreateUploadImage", "code": "Forbidden.RAM", "status": 403,
            "message": "User not authorized to operate on the specified resource (the demo's deliberate failure)."
        }]}))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .context("telling the emulator to refuse one upload failed")?;
    let conn = queue::connect(&args.amqp_url, "vod-ingest-demo-producer").await?;
    let channel = queue::confirm_channel(&conn).await?;
    queue::publish_job(&channel, &topology, &serde_json::to_vec(&refused)?).await?;
    println!("enqueued {refused_id:<28} (image) which VOD refuses once, on purpose");
    let deadline = Instant::now() + Duration::from_secs(30);
    while running.store.get(&refused_id).await?.map(|j| j.state()) != Some(JobState::Failed) {
        if Instant::now() > deadline {
            anyhow::bail!("the demo's deliberately refused job did not fail within 30 s; see `vod-ingest status {refused_id}`");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let jobs = vec![
        JobMessage {
            job_id: Some(format!("demo-{run_id}-video")),
            kind: "video".into(),
            source: media.video.display().to_string(),
            title: Some("vod-ingest demo video".into()),
            tags: vec!["demo".into()],
            ..Default::default()
        },
        JobMessage {
            job_id: Some(format!("demo-{run_id}-image")),
            kind: "image".into(),
            source: media.image.display().to_string(),
            image_type: Some("cover".into()),
            ..Default::default()
        },
        JobMessage {
            job_id: Some(format!("demo-{run_id}-subtitle")),
            kind: "attached_media".into(),
            source: media.subtitle.display().to_string(),
            business_type: Some("subtitle".into()),
            ..Default::default()
        },
    ];
    for job in &jobs {
        queue::publish_job(&channel, &topology, &serde_json::to_vec(job)?).await?;
        println!(
            "enqueued {:<28} ({}) on {}",
            job.job_id.as_deref().unwrap_or_default(),
            job.kind,
            topology.jobs_queue()
        );
    }
    // And a message with a typo, for the dead-letter queue (fix it there and publish it).
    let typo = serde_json::json!({
        "job_id": format!("demo-{run_id}-typo"), "kind": "video",
        "source": media.video.display().to_string(), "titel": "a typo for the dead-letter queue",
    });
    queue::publish_job(&channel, &topology, &serde_json::to_vec(&typo)?).await?;
    println!(
        "enqueued a message with a typo (`titel`): it goes to {}",
        topology.dead_letter_queue()
    );
    let _ = conn.close(200, "done").await;
    println!();

    let mut ids: Vec<String> = jobs.iter().filter_map(|j| j.job_id.clone()).collect();
    ids.insert(0, refused_id.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    // Per job: the state and time of the last line printed, and when it was first seen.
    let mut printed: Vec<Option<(JobState, i64, Instant)>> = vec![None; ids.len()];
    let mut first_seen: Vec<Option<Instant>> = vec![None; ids.len()];
    let outcome = loop {
        let mut all_final = true;
        for (i, id) in ids.iter().enumerate() {
            let Some(job) = running.store.get(id).await? else {
                all_final = false;
                continue;
            };
            let seen = *first_seen[i].get_or_insert_with(Instant::now);
            let rate = job.bytes_uploaded as f64 / seen.elapsed().as_secs_f64().max(0.001);
            let due = match &printed[i] {
                None => true,
                Some((state, bytes, at)) => {
                    *state != job.state
                        || (*bytes != job.bytes_uploaded
                            && at.elapsed() >= Duration::from_millis(500))
                }
            };
            if due {
                println!(
                    "{:<28} {:<10} {}  {}/s",
                    id,
                    job.state,
                    progress_bar(job.bytes_uploaded, job.bytes_total),
                    human_bytes(rate as i64)
                );
                printed[i] = Some((job.state, job.bytes_uploaded, Instant::now()));
            }
            all_final &= job.state().is_terminal();
        }
        if all_final {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "the demo jobs did not finish within 120 s; see `vod-ingest status <job_id>`"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let mut rows = Vec::new();
    for id in &ids {
        if let Some(job) = running.store.get(id).await? {
            rows.push(job);
        }
    }
    println!("\n{}", jobs_table(&rows));
    let stats = emulator.stats();
    println!(
        "emulator saw {} requests, received {}, stored {} objects, sent {} callbacks",
        stats.requests.values().sum::<u64>(),
        human_bytes(stats.bytes_received as i64),
        stats.objects,
        stats.callbacks_sent
    );
    println!(
        "{refused_id} failed on purpose: open {console}/jobs/{refused_id} and press Retry{}",
        if args.serve {
            ""
        } else {
            " (with `demo --serve`, which keeps the console running)"
        }
    );
    if args.serve && outcome.is_ok() {
        serve_upload_page(&running, &emulator, http_port, &console).await?;
    }
    running.stop().await;
    emulator.shutdown().await;
    outcome?;
    let failed: Vec<&str> = rows
        .iter()
        .filter(|j| j.state() != JobState::Completed && j.job_id != refused_id)
        .map(|j| j.job_id.as_str())
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("not every demo job completed: {}", failed.join(", "));
    }
    Ok(())
}
