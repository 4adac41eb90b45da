//! What each subcommand does.

use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::app;
use crate::cli::{
    ApiKeyCommand, Cli, Command, DbArgs, EmulatorArgs, EnqueueArgs, JobIdArgs, JobsArgs, RunArgs,
    StatusArgs, UploadArgs,
};
use crate::display::{describe_event, human_bytes, jobs_table, print_job};
use crate::jobs::{JobMessage, JobState, JobStore};
use crate::keys::{KeyLimits, KeyStore, KeyUpdate};
use crate::queue::{self, Topology};

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Enqueue(args) => enqueue(args).await,
        Command::Status(args) => status(args).await,
        Command::Jobs(args) => jobs(args).await,
        Command::Retry(args) => operator(args, true).await,
        Command::Cancel(args) => operator(args, false).await,
        Command::Upload(args) => upload(args).await,
        Command::ApiKey(command) => api_key(command).await,
        Command::Emulator(args) => emulator(args).await,
        Command::Demo(args) => crate::demo::run(args).await,
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// SIGTERM and SIGINT, listened to from start-up on: a second signal during the drain is then
/// queued for us, never missed while a listener for it is being set up.
#[cfg(unix)]
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
        })
    }

    async fn next(&mut self) {
        tokio::select! { _ = self.term.recv() => {}, _ = self.int.recv() => {} }
    }
}

#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(args: Box<RunArgs>) -> anyhow::Result<()> {
    let config = args.app_config()?;
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let mut signals = StopSignals::install()?;
    let mut running = app::start(config).await?;
    tokio::select! {
        result = running.wait() => result,
        _ = signals.next() => {
            tracing::info!("shutting down (a second signal stops at once)");
            tokio::spawn(async move {
                signals.next().await;
                eprintln!("vod-ingest: second signal: stopping at once; jobs in flight are rescued when their leases expire");
                std::process::exit(130);
            });
            running.drain(grace).await;
            Ok(())
        }
    }
}

async fn store(db: &DbArgs) -> anyhow::Result<JobStore> {
    Ok(JobStore::new(
        app::connect_database(&db.database_url, 2).await?,
    ))
}

async fn api_key(command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create(args) => {
            let limits = KeyLimits::parse(
                &args.kinds,
                args.max_file_size,
                args.requests_per_minute,
                &args.origins,
                args.allow_sts,
            )
            .and_then(|l| l.with_sts_refresh(args.allow_sts_refresh))
            .map_err(|e| anyhow::anyhow!("--{e}"))?;
            let settings = args
                .settings
                .parse()
                .map_err(|e| anyhow::anyhow!("--{e}"))?;
            let webhooks = args.target.key_webhooks()?;
            let webhook_url = match args.webhook_url.as_deref().map(str::trim) {
                Some(raw) if !raw.is_empty() => Some(webhooks.check_url(raw).await?),
                _ => None,
            };
            app::ensure_database(&args.db.database_url).await?;
            let keys = KeyStore::new(app::connect_database(&args.db.database_url, 1).await?);
            let (key, secret) = keys
                .create_with(args.name.trim(), &limits, &settings)
                .await?;
            println!("{}", secret.expose());
            if let Some(url) = webhook_url {
                let set = webhooks.set_url(&keys, &key.key_id, Some(&url)).await?;
                if let Some(whsec) = set.new_secret {
                    println!("{}", whsec.expose());
                }
                eprintln!(
                    "created API key {} for {:?} with webhooks to {}; the key (first line) and its webhook signing secret (second line) are shown only this once: store them now",
                    key.key_id,
                    key.name,
                    url.as_str()
                );
            } else {
                eprintln!(
                    "created API key {} for {:?}; it is shown only this once: store it now",
                    key.key_id, key.name
                );
            }
            Ok(())
        }
        ApiKeyCommand::List(db) => {
            let keys = KeyStore::new(app::connect_database(&db.database_url, 1).await?);
            println!(
                "{:<12}  {:<20}  {:<28}  {:>9}  {:>7}  {:<4}  {:<8}  origins",
                "KEY ID", "NAME", "KINDS", "MAX SIZE", "REQ/MIN", "STS", "STATUS"
            );
            for key in keys.list().await? {
                let l = &key.limits;
                let kinds: Vec<&str> = l.kinds.iter().map(|k| k.as_str()).collect();
                println!(
                    "{:<12}  {:<20}  {:<28}  {:>9}  {:>7}  {:<4}  {:<8}  {}",
                    key.key_id,
                    key.name,
                    kinds.join(","),
                    human_bytes(l.max_file_size.min(i64::MAX as u64) as i64),
                    l.requests_per_minute,
                    if l.allow_sts { "yes" } else { "no" },
                    if key.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                    if l.allowed_origins.is_empty() {
                        "(none: apps and servers only)".to_owned()
                    } else {
                        l.allowed_origins.join(",")
                    }
                );
                let mut notes = key.settings.describe();
                if let Some(url) = &key.webhook.url {
                    notes.push(format!("webhooks to {url}"));
                }
                if l.allow_sts_refresh {
                    notes.push("STS tokens may RefreshUploadVideo".into());
                }
                if !notes.is_empty() {
                    println!("{:<12}  {}", "", notes.join("; "));
                }
            }
            Ok(())
        }
        ApiKeyCommand::Update(args) => {
            // Checked as create checks them; an empty value clears a setting.
            args.settings
                .parse()
                .map_err(|e| anyhow::anyhow!("--{e}"))?;
            let s = &args.settings;
            let update = KeyUpdate {
                allow_sts_refresh: args.allow_sts_refresh,
                app_id: s.app_id.clone(),
                workflow_id: s.workflow_id.clone(),
                template_group_id: s.template_group_id.clone(),
                storage_location: s.storage_location.clone(),
                callback_url: s.callback_url.clone(),
            };
            let webhooks = args.target.key_webhooks()?;
            // `Some(None)`: remove the URL (`--webhook-url ""`).
            let webhook_url = match args.webhook_url.as_deref().map(str::trim) {
                None => None,
                Some("") => Some(None),
                Some(raw) => Some(Some(webhooks.check_url(raw).await?)),
            };
            let keys = KeyStore::new(app::connect_database(&args.db.database_url, 1).await?);
            if let Some(url) = webhook_url {
                let set = webhooks.set_url(&keys, &args.key_id, url.as_ref()).await?;
                match (&set.key.webhook.url, set.new_secret) {
                    (Some(url), Some(whsec)) => {
                        println!("{}", whsec.expose());
                        eprintln!("API key {} now sends webhooks to {url}, signed with the secret above: it is shown only this once", set.key.key_id);
                    }
                    (Some(url), None) => eprintln!(
                        "API key {} now sends webhooks to {url} (same signing secret)",
                        set.key.key_id
                    ),
                    (None, _) => eprintln!("API key {} sends no webhooks", set.key.key_id),
                }
            }
            let Some(key) = keys.update(&args.key_id, &update).await? else {
                bail!(
                    "no API key with id {:?}: `vod-ingest api-key list` shows the ids",
                    args.key_id
                );
            };
            if args.allow_sts_refresh == Some(true) && !key.limits.allow_sts_refresh {
                bail!(
                    "API key {} may not get STS tokens for videos, so --allow-sts-refresh has no effect; create a key with --allow-sts and the kind video",
                    key.key_id
                );
            }
            let mut notes = key.settings.describe();
            notes.push(format!(
                "STS refresh {}",
                if key.limits.allow_sts_refresh {
                    "allowed"
                } else {
                    "not allowed"
                }
            ));
            println!(
                "updated API key {} ({:?}): {}",
                key.key_id,
                key.name,
                notes.join("; ")
            );
            Ok(())
        }
        ApiKeyCommand::RotateWebhookSecret(args) => {
            let webhooks = args.target.key_webhooks()?;
            let keys = KeyStore::new(app::connect_database(&args.db.database_url, 1).await?);
            let set = webhooks.rotate(&keys, &args.key_id).await?;
            if let Some(whsec) = set.new_secret {
                println!("{}", whsec.expose());
            }
            eprintln!(
                "API key {}'s webhooks are now signed with the secret above (shown only this once) and, for a day, with the previous one too",
                set.key.key_id
            );
            Ok(())
        }
        ApiKeyCommand::Revoke(args) => {
            let keys = KeyStore::new(app::connect_database(&args.db.database_url, 1).await?);
            match keys.revoke(&args.key_id).await? {
                Some(key) => {
                    println!("revoked API key {} ({:?})", key.key_id, key.name);
                    Ok(())
                }
                None => bail!(
                    "no API key with id {:?}: `vod-ingest api-key list` shows the ids",
                    args.key_id
                ),
            }
        }
    }
}

async fn migrate(args: DbArgs) -> anyhow::Result<()> {
    app::ensure_database(&args.database_url).await?;
    app::connect_database(&args.database_url, 1).await?;
    println!(
        "database {} is up to date",
        app::redact_url(&args.database_url)
    );
    Ok(())
}

async fn enqueue(args: EnqueueArgs) -> anyhow::Result<()> {
    let mut message: JobMessage = match &args.json {
        Some(json) => serde_json::from_str(json).context("--json is not a valid job message")?,
        None => JobMessage::default(),
    };
    let set = |field: &mut Option<String>, value: &Option<String>| {
        if value.is_some() {
            field.clone_from(value);
        }
    };
    if let Some(kind) = &args.kind {
        message.kind.clone_from(kind);
    }
    if let Some(source) = &args.source {
        message.source.clone_from(source);
    }
    set(&mut message.title, &args.title);
    set(&mut message.file_name, &args.file_name);
    set(&mut message.business_type, &args.business_type);
    set(&mut message.image_type, &args.image_type);
    set(&mut message.callback_url, &args.callback_url);
    if message.kind.is_empty() || message.source.is_empty() {
        bail!("--kind and --source are required (or give them in --json)");
    }
    // The producer picks the id, so that a retried publish is recognised as the same job.
    let job_id = match message.job_id.clone() {
        Some(id) => {
            crate::jobs::validate_job_id(&id)?;
            id
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    message.job_id = Some(job_id.clone());
    if args.job_id.is_some() {
        message.job_id.clone_from(&args.job_id);
    }
    let job_id = message.job_id.clone().unwrap_or(job_id);

    let conn = queue::connect(&args.amqp.amqp_url, "vod-ingest-enqueue")
        .await
        .with_context(|| {
            format!(
                "cannot connect to RabbitMQ at {} (check AMQP_URL)",
                app::redact_url(&args.amqp.amqp_url)
            )
        })?;
    let channel = queue::confirm_channel(&conn).await?;
    let topology = Topology::new(args.amqp.amqp_prefix.clone());
    topology.declare(&channel).await?;
    queue::publish_job(&channel, &topology, &serde_json::to_vec(&message)?).await?;
    let _ = conn.close(200, "done").await;
    println!("{job_id}");
    eprintln!("published job {job_id} to {}", topology.jobs_queue());
    if args.wait {
        let store = store(&args.db).await?;
        follow(&store, &job_id, Duration::from_secs(args.timeout_secs)).await?;
    }
    Ok(())
}

/// Prints each transition until the job is final.
async fn follow(store: &JobStore, job_id: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = 0;
    let mut missing_since = None;
    loop {
        let job = store.get(job_id).await?;
        match &job {
            None => {
                // A message that was not a valid job never gets a row: it was dead-lettered.
                let since = *missing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > Duration::from_secs(30) {
                    bail!("job {job_id} was not recorded within 30 s: is a worker running? (a message that is not a valid job goes to the dead-letter queue)");
                }
            }
            Some(job) => {
                let history = store.history(job_id).await?;
                for event in history.iter().skip(seen) {
                    eprintln!("{}", describe_event(event));
                }
                seen = history.len();
                if job.state().is_terminal() {
                    print_job(job, &[]);
                    if job.state() == JobState::Completed {
                        return Ok(());
                    }
                    bail!("job {job_id} ended {}", job.state);
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("job {job_id} did not finish within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let store = store(&args.db).await?;
    let Some(job) = store.get(&args.job_id).await? else {
        bail!(
            "no job with id {:?} (a message that was not a valid job is in the dead-letter queue instead)",
            args.job_id
        );
    };
    let history = store.history(&args.job_id).await?;
    if args.json {
        let mut value = serde_json::to_value(&job)?;
        value["history"] = serde_json::to_value(&history)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_job(&job, &history);
    }
    Ok(())
}

async fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    let state = args
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--state: {e}"))?;
    let store = store(&args.db).await?;
    let jobs = store.list(state, args.limit).await?;
    print!("{}", jobs_table(&jobs));
    Ok(())
}

async fn operator(args: JobIdArgs, retry: bool) -> anyhow::Result<()> {
    let store = store(&args.db).await?;
    let result = if retry {
        store.retry(&args.job_id).await?
    } else {
        store.cancel(&args.job_id).await?
    };
    match result {
        Ok(t) => {
            println!("job {} is now {}", t.job_id, t.state);
            Ok(())
        }
        Err(why) => bail!(why),
    }
}

async fn upload(args: UploadArgs) -> anyhow::Result<()> {
    let path = std::fs::canonicalize(&args.path)
        .with_context(|| format!("{} cannot be opened", args.path.display()))?;
    let dir = path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| "/".into());
    let title = args
        .title
        .clone()
        .or_else(|| path.file_stem().and_then(|s| s.to_str()).map(str::to_owned));
    let spec = JobMessage {
        job_id: args.job_id.clone(),
        kind: args.kind.clone(),
        source: path.display().to_string(),
        title,
        business_type: args.business_type.clone(),
        ..Default::default()
    }
    .validate(std::slice::from_ref(&dir))?;
    app::ensure_database(&args.db.database_url).await?;
    let store = JobStore::new(app::connect_database(&args.db.database_url, 4).await?);
    store.insert(&spec, crate::jobs::Origin::Cli).await?;
    let mut config = crate::worker::WorkerConfig::new(vec![dir]);
    args.transfer.apply(&mut config)?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let settings = args.vod.settings()?;
    let mut vod = settings.client(http.clone());
    if !settings.rate_limits.is_off() {
        // One upload takes part in the deployment's shared VOD rate limit too.
        vod = vod.with_limiter(crate::ratelimit::FleetLimiter::new(
            store.pool().clone(),
            &settings.rate_limits,
        ));
    }
    // No broker here: transitions are in PostgreSQL only.
    let outbox = crate::jobs::OutboxWaker::new();
    let worker = crate::worker::Worker::new(
        store,
        vod,
        crate::oss::OssClient::new(http),
        config,
        outbox,
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );
    let started = std::time::Instant::now();
    let job = worker.run_one(&spec.job_id).await?;
    let secs = started.elapsed().as_secs_f64();
    match job.state() {
        JobState::Uploaded | JobState::Completed => {
            let bytes = job.bytes_total.unwrap_or(0);
            println!("{}", job.media_id.as_deref().unwrap_or("-"));
            eprintln!(
                "uploaded {} ({}) as {} {} in {secs:.2} s: {:.1} MB/s",
                job.job_id,
                human_bytes(bytes),
                job.kind,
                job.media_id.as_deref().unwrap_or("-"),
                bytes as f64 / secs / 1e6
            );
            Ok(())
        }
        state => bail!(
            "job {} ended {state}: {}: {}",
            job.job_id,
            job.last_error_code.as_deref().unwrap_or("-"),
            job.last_error_message.as_deref().unwrap_or("-")
        ),
    }
}

async fn emulator(args: EmulatorArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("--data-dir {} cannot be created", dir.display()))?;
            dir
        }
        None => {
            let dir =
                std::env::temp_dir().join(format!("vod-ingest-emulator-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            dir
        }
    };
    let mut config = crate::emulator::EmulatorConfig::new(data_dir.clone());
    config.listen = args.listen;
    config.access_key_id = args.access_key_id;
    config.access_key_secret = args.access_key_secret;
    config.credential_ttl = Duration::from_secs(args.credential_ttl);
    config.role_max_session_seconds = args.role_max_session_duration;
    config.callback_url = args.callback_url;
    config.callback_key = args.callback_key;
    config.region = args.region;
    config.public_url = args.public_url;
    config.tls = match (args.tls, args.tls_cert, args.tls_key) {
        (_, Some(cert), Some(key)) => Some(crate::emulator::TlsCertificate::Files { cert, key }),
        (true, _, _) => Some(crate::emulator::TlsCertificate::Generated),
        _ => None,
    };
    let schemes = if config.tls.is_some() {
        "http and https"
    } else {
        "http"
    };
    eprintln!(
        "emulator: VOD, STS and OSS on {} (port {}, {schemes}; objects in {}); stop with Ctrl-C",
        args.listen.ip(),
        args.listen.port(),
        data_dir.display()
    );
    crate::emulator::serve(config, shutdown_signal()).await
}
