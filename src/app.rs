//! Starting the service: the pieces `vod-ingest run`, the demo and the tests put together.
//! Built so it can be started on port 0 with a fresh database (the tests do exactly that).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::api::{self, ApiState, StsSettings, TokenIssuer};
use crate::console;
use crate::http_server::{self, Limits};
use crate::jobs::{CallbackIntake, JobStore, OutboxWaker, MIGRATOR};
use crate::keys::KeyStore;
use crate::oss::OssClient;
use crate::queue::{self, ConsumerConfig, DeadLetters, EventPublisher, Topology};
use crate::reconciler::{self, ReconcilerConfig};
use crate::secret::Secret;
use crate::vod::{CredentialProvider, Credentials, StsClient, VodClient, VodConfig};
use crate::webhook::{self, CallbackAuth, WebhookState};
use crate::worker::{Worker, WorkerConfig};

/// How to reach VOD and STS, and as whom.
#[derive(Debug, Clone)]
pub struct VodSettings {
    pub endpoint: url::Url,
    pub sts_endpoint: url::Url,
    pub region: String,
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// A static STS token (`ALIBABA_CLOUD_SECURITY_TOKEN`).
    pub security_token: Option<Secret>,
    /// With a role, the AccessKey is used only to call AssumeRole; the STS credentials it
    /// returns sign the VOD calls and are renewed before they expire.
    pub role_arn: Option<String>,
    pub role_session_name: String,
    pub timeout: Duration,
    /// VOD calls per second per action, shared by every process on the database
    /// (`VOD_INGEST_VOD_RATE_LIMITS`).
    pub rate_limits: crate::ratelimit::RateLimits,
    /// V1 or V3 (`VOD_INGEST_SIGNATURE_VERSION`).
    pub signature_version: crate::vod::SignatureVersion,
}

impl VodSettings {
    pub fn client(&self, http: reqwest::Client) -> VodClient {
        let credentials = match (&self.role_arn, &self.security_token) {
            (Some(role_arn), _) => CredentialProvider::assume_role(
                self.access_key_id.clone(),
                self.access_key_secret.clone(),
                role_arn.clone(),
                self.role_session_name.clone(),
                StsClient::new(self.sts_endpoint.clone(), self.region.clone(), http.clone())
                    .with_signature_version(self.signature_version),
            ),
            (None, Some(token)) => CredentialProvider::sts_token(
                self.access_key_id.clone(),
                self.access_key_secret.clone(),
                token.clone(),
            ),
            (None, None) => CredentialProvider::access_key(
                self.access_key_id.clone(),
                self.access_key_secret.clone(),
            ),
        };
        VodClient::new(
            VodConfig {
                endpoint: self.endpoint.clone(),
                region: self.region.clone(),
                timeout: self.timeout,
            },
            credentials,
            http,
        )
        .with_signature_version(self.signature_version)
    }
}

impl VodSettings {
    /// The service's own credentials, without a role: what signs AssumeRole for client tokens.
    pub fn base_credentials(&self) -> Credentials {
        match &self.security_token {
            Some(token) => Credentials::StsToken {
                access_key_id: self.access_key_id.clone(),
                access_key_secret: self.access_key_secret.clone(),
                security_token: token.clone(),
            },
            None => Credentials::AccessKey {
                access_key_id: self.access_key_id.clone(),
                access_key_secret: self.access_key_secret.clone(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The public listener: VOD's callbacks, the client API and its page, `/healthz`.
    pub addr: SocketAddr,
    /// The admin listener, for operators: `/readyz`, `/metrics`, `/v1/jobs/...`, `/console`.
    pub admin_addr: SocketAddr,
    /// When set, the admin endpoints need `Authorization: Bearer <token>`.
    pub admin_token: Option<Secret>,
    pub auth: CallbackAuth,
    pub max_callback_bytes: usize,
    /// STS tokens for client apps (`VOD_INGEST_STS_ROLE_ARN`); `None` hands out none.
    pub sts: Option<StsSettings>,
    /// Holds `node_modules/ali-oss` for the upload page (`VOD_INGEST_WEB_DIR`).
    pub web_dir: PathBuf,
    /// Timeouts, sizes and load bounds of both listeners.
    pub limits: Limits,
    /// How long stored callbacks and the API audit are kept.
    pub retention: Retention,
    /// Serve the admin listener on a non-loopback address without a token
    /// (`VOD_INGEST_ADMIN_ALLOW_OPEN`): only where a firewall or an authenticating proxy
    /// keeps everyone else out.
    pub admin_allow_open: bool,
    /// The console is reached over HTTPS (`VOD_INGEST_ADMIN_HTTPS`, a TLS proxy in front of
    /// the admin listener): its session cookie gets `Secure` and the `__Host-` prefix.
    pub admin_https: bool,
    /// Webhooks to apps: their signing key, retries and reach.
    pub webhooks: crate::app_webhooks::WebhookSettings,
}

impl HttpSettings {
    /// An admin listener without a token opens the console (key creation included) to
    /// whoever reaches it, so without a token it must listen on loopback, unless an operator
    /// said otherwise.
    pub fn check_admin_exposure(&self) -> anyhow::Result<()> {
        if self.admin_token.is_none()
            && !self.admin_addr.ip().is_loopback()
            && !self.admin_allow_open
        {
            anyhow::bail!(
                "VOD_INGEST_ADMIN_ADDR is {}, which other hosts can reach, and VOD_INGEST_ADMIN_TOKEN is not set: anyone there could use the console and create API keys. Set VOD_INGEST_ADMIN_TOKEN, or listen on 127.0.0.1, or (only behind a firewall or an authenticating proxy) set VOD_INGEST_ADMIN_ALLOW_OPEN=true",
                self.admin_addr
            );
        }
        Ok(())
    }
}

/// How long rows that only grow are kept (`VOD_INGEST_EVENT_RETENTION_DAYS`,
/// `VOD_INGEST_AUDIT_RETENTION_DAYS`); a sweep deletes older ones.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// `vod_events` (callbacks received; unapplied ones a job may still need are kept).
    pub events: Duration,
    /// `api_audit` (credentials handed out).
    pub audit: Duration,
    /// `app_webhook_deliveries` once delivered or dead.
    pub deliveries: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events: Duration::from_secs(30 * 86400),
            audit: Duration::from_secs(90 * 86400),
            deliveries: Duration::from_secs(30 * 86400),
        }
    }
}

/// Everything a service process needs. `Debug` shows the URLs without their passwords.
#[derive(Clone)]
pub struct AppConfig {
    pub database_url: String,
    pub amqp_url: String,
    pub topology: Topology,
    pub vod: VodSettings,
    /// The worker and the jobs consumer; `None` runs without them.
    pub worker: Option<WorkerConfig>,
    /// The HTTP listener; `None` runs without it.
    pub http: Option<HttpSettings>,
    /// The reconciler for jobs whose callback never came; `None` runs without it.
    pub reconciler: Option<ReconcilerConfig>,
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("amqp_url", &redact_url(&self.amqp_url))
            .field("topology", &self.topology)
            .field("vod", &self.vod)
            .field("worker", &self.worker)
            .field("http", &self.http)
            .field("reconciler", &self.reconciler)
            .finish()
    }
}

/// Shows a connection URL without its password.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "<unparseable URL>".into(),
    }
}

/// Connects to PostgreSQL and applies the migrations.
pub async fn connect_database(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    // No ping before each use (sqlx's default): it is one more round trip per statement, and a
    // broken connection fails the statement anyway, which every caller retries.
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .connect(url)
        .await
        .with_context(|| {
            format!(
                "cannot connect to PostgreSQL at {} (is it running? check DATABASE_URL)",
                redact_url(url)
            )
        })?;
    MIGRATOR
        .run(&pool)
        .await
        .context("applying the database migrations failed")?;
    Ok(pool)
}

/// Creates the database named in `url` if it does not exist (used by `migrate` and `demo`).
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url).context("DATABASE_URL is not a URL")?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    if name.is_empty() || name == "postgres" {
        return Ok(());
    }
    let mut admin = parsed.clone();
    admin.set_path("/postgres");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(admin.as_str())
        .await
        .with_context(|| {
            format!(
                "cannot connect to PostgreSQL at {} (is it running? check DATABASE_URL)",
                redact_url(admin.as_str())
            )
        })?;
    let created = crate::jobs::create_database_if_missing(&pool, &name)
        .await
        .with_context(|| format!("creating database {name} failed"))?;
    if created {
        tracing::info!(database = %name, "created database");
    }
    Ok(())
}

/// A started service: stop it, or wait for a component to fail.
pub struct RunningApp {
    /// The public listener's address.
    pub http_addr: Option<SocketAddr>,
    /// The admin listener's address.
    pub admin_addr: Option<SocketAddr>,
    pub store: JobStore,
    /// Stops intake: the jobs consumer, and the worker's claims of new jobs.
    intake: CancellationToken,
    /// Stops the jobs in flight; each releases its lease for another worker.
    abort: CancellationToken,
    /// Cancelled by the worker when its last job has finished or been released.
    worker_stopped: CancellationToken,
    /// Stops everything else: listeners, reconciler, event publisher.
    shutdown: CancellationToken,
    tasks: tokio::task::JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl RunningApp {
    /// Waits until a component stops; returns its name and why.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        match self.tasks.join_next().await {
            Some(Ok((name, Ok(())))) => {
                if self.intake.is_cancelled() {
                    Ok(())
                } else {
                    anyhow::bail!("{name} stopped unexpectedly")
                }
            }
            Some(Ok((name, Err(e)))) => Err(e.context(format!("{name} failed"))),
            Some(Err(e)) => Err(anyhow::anyhow!("a component panicked: {e}")),
            None => Ok(()),
        }
    }

    /// The hand-over on SIGTERM: take no new jobs at once, give the jobs in flight `grace` to
    /// finish, then release the rest to other workers, and stop.
    pub async fn drain(self, grace: Duration) {
        self.intake.cancel();
        tracing::info!(grace = ?grace, "draining: no new jobs; waiting for the jobs in flight");
        if tokio::time::timeout(grace, self.worker_stopped.cancelled())
            .await
            .is_err()
        {
            tracing::info!("grace period over: releasing the jobs still in flight");
            self.abort.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), self.worker_stopped.cancelled())
                .await;
        }
        self.stop().await
    }

    /// Immediate stop: no new claims, jobs in flight released at once, listeners close.
    pub async fn stop(mut self) {
        self.intake.cancel();
        self.abort.cancel();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), self.worker_stopped.cancelled()).await;
        self.shutdown.cancel();
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = self.tasks.join_next() => if next.is_none() { break },
                _ = &mut deadline => { self.tasks.abort_all(); break }
            }
        }
    }
}

/// Starts the configured components and returns once they are running.
pub async fn start(config: AppConfig) -> anyhow::Result<RunningApp> {
    start_with(config, None).await
}

/// Like [`start`], with the HTTP listener already bound: the caller knows the port before the
/// service starts (the demo and the tests hand it to the emulator as the callback URL) and no
/// other process can take it in between.
pub async fn start_with_listener(
    config: AppConfig,
    listener: std::net::TcpListener,
) -> anyhow::Result<RunningApp> {
    start_with(config, Some(listener)).await
}

async fn start_with(
    config: AppConfig,
    bound: Option<std::net::TcpListener>,
) -> anyhow::Result<RunningApp> {
    if let Some(http) = &config.http {
        http.check_admin_exposure()?;
    }
    let concurrency = config.worker.as_ref().map_or(0, |w| w.concurrency) as u32;
    let pool = connect_database(&config.database_url, concurrency * 2 + 8).await?;
    let store = JobStore::new(pool);

    let amqp = Arc::new(
        queue::connect(&config.amqp_url, "vod-ingest")
            .await
            .with_context(|| {
                format!(
                    "cannot connect to RabbitMQ at {} (is it running? check AMQP_URL)",
                    redact_url(&config.amqp_url)
                )
            })?,
    );
    let events_channel = queue::confirm_channel(&amqp).await?;
    config
        .topology
        .declare(&events_channel)
        .await
        .context("declaring the RabbitMQ queues and exchanges failed")?;

    let shutdown = CancellationToken::new();
    let intake = CancellationToken::new();
    let abort = CancellationToken::new();
    let worker_stopped = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let outbox = OutboxWaker::new();
    let publisher = EventPublisher::new(events_channel, &config.topology);
    {
        let (store, outbox, token) = (store.clone(), outbox.clone(), shutdown.clone());
        tasks.spawn(async move {
            queue::run_event_publisher(store, publisher, outbox, token).await;
            ("event publisher", Ok(()))
        });
    }

    let http_client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client failed")?;
    let mut vod = config.vod.client(http_client.clone());
    if !config.vod.rate_limits.is_off() {
        vod = vod.with_limiter(crate::ratelimit::FleetLimiter::new(
            store.pool().clone(),
            &config.vod.rate_limits,
        ));
    }
    let api_vod = vod.clone();
    let console_vod = vod.clone();
    if let Some(reconciler_config) = config.reconciler.clone() {
        let (store, vod, outbox, token) =
            (store.clone(), vod.clone(), outbox.clone(), shutdown.clone());
        tasks.spawn(async move {
            reconciler::run(store, vod, outbox, reconciler_config, token).await;
            ("reconciler", Ok(()))
        });
    }
    if let Some(worker_config) = config.worker.clone() {
        let oss = OssClient::new(http_client.clone());
        let wake = Arc::new(Notify::new());
        let consumer = ConsumerConfig {
            topology: config.topology.clone(),
            prefetch: (worker_config.concurrency * 4).clamp(8, 300) as u16,
            source_roots: worker_config.source_roots.clone(),
            consumer_tag: format!("vod-ingest-{}", worker_config.owner),
        };
        tasks.spawn(supervise_consumer(
            amqp.clone(),
            config.amqp_url.clone(),
            consumer,
            store.clone(),
            outbox.clone(),
            wake.clone(),
            intake.clone(),
        ));
        let worker = Worker::new(store.clone(), vod, oss, worker_config, outbox.clone(), wake);
        let (intake, abort, stopped) = (intake.clone(), abort.clone(), worker_stopped.clone());
        tasks.spawn(async move {
            worker.run(intake, abort).await;
            stopped.cancel();
            ("worker", Ok(()))
        });
    } else {
        worker_stopped.cancel();
    }

    let mut http_addr = None;
    let mut admin_addr = None;
    if let Some(http) = config.http.clone() {
        let listener = match bound {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(listener)?
            }
            None => tokio::net::TcpListener::bind(http.addr)
                .await
                .with_context(|| {
                    format!("cannot listen on {} (VOD_INGEST_HTTP_ADDR)", http.addr)
                })?,
        };
        http_addr = Some(listener.local_addr()?);
        let amqp_for_ready = amqp.clone();
        let admin_state = admin::AdminState {
            store: store.clone(),
            amqp_ready: Arc::new(move || amqp_for_ready.status().connected()),
            metrics: crate::telemetry::prometheus(),
        };
        // Wakes the confirmer when a callback leaves an upload for VOD to confirm.
        let confirm = Arc::new(Notify::new());
        let webhook_state = WebhookState {
            auth: Arc::new(http.auth),
            intake: CallbackIntake::start(store.clone(), outbox.clone(), confirm.clone()),
            max_callback_bytes: http.max_callback_bytes,
            record_sts_uploads: http.sts.is_some(),
        };
        {
            let (store, vod, outbox, token) = (
                store.clone(),
                api_vod.clone(),
                outbox.clone(),
                shutdown.clone(),
            );
            let record_sts = webhook_state.record_sts_uploads;
            tasks.spawn(async move {
                reconciler::run_confirmer(store, vod, outbox, confirm, record_sts, token).await;
                ("upload confirmer", Ok(()))
            });
        }
        let keys = KeyStore::new(store.pool().clone());
        let tokens = http.sts.clone().map(|settings| {
            let sts = StsClient::new(
                config.vod.sts_endpoint.clone(),
                config.vod.region.clone(),
                http_client.clone(),
            )
            .with_signature_version(config.vod.signature_version);
            Arc::new(TokenIssuer::new(
                settings,
                sts,
                config.vod.base_credentials(),
            ))
        });
        let api_state = ApiState {
            store: store.clone(),
            keys: keys.clone(),
            vod: api_vod,
            tokens,
            outbox: outbox.clone(),
            region: config.vod.region.clone(),
            web_dir: http.web_dir.clone(),
            budget: Arc::new(api::LocalBudget::default()),
            origins: Arc::new(api::OriginCache::default()),
            upload_page_connect_src: api::upload_connect_src(&config.vod.endpoint),
        };
        {
            let (keys, token) = (keys.clone(), shutdown.clone());
            tasks.spawn(async move {
                prune_key_usage(keys, token).await;
                ("api key usage pruner", Ok(()))
            });
        }
        {
            let (budget, pool, token) = (
                api_state.budget.clone(),
                store.pool().clone(),
                shutdown.clone(),
            );
            tasks.spawn(async move {
                write_refusals(budget, pool, token).await;
                ("api refusal audit", Ok(()))
            });
        }
        {
            let (store, keys, token) = (store.clone(), keys.clone(), shutdown.clone());
            let retention = http.retention;
            tasks.spawn(async move {
                sweep_retention(store, keys, retention, token).await;
                ("retention sweep", Ok(()))
            });
        }
        let admin_listener = tokio::net::TcpListener::bind(http.admin_addr)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (VOD_INGEST_ADMIN_ADDR)",
                    http.admin_addr
                )
            })?;
        admin_addr = Some(admin_listener.local_addr()?);
        let webhook_policy = crate::app_webhooks::TargetPolicy {
            // As configured (0.0.0.0 covers every local address) and as bound.
            own_listeners: vec![
                http.addr,
                http.admin_addr,
                http_addr.expect("bound above"),
                admin_addr.expect("bound above"),
            ],
            allow_loopback: http.webhooks.allow_loopback,
        };
        match http.webhooks.signing_key.clone() {
            Some(signing_key) => {
                let dispatcher = crate::app_webhooks::Dispatcher::new(
                    store.clone(),
                    &http.webhooks,
                    signing_key,
                    webhook_policy.clone(),
                )?;
                let token = shutdown.clone();
                tasks.spawn(async move {
                    dispatcher.run(token).await;
                    ("app webhook dispatcher", Ok(()))
                });
            }
            None => tracing::info!(
                "app webhooks are off: set VOD_INGEST_WEBHOOK_SIGNING_KEY to let API keys have a webhook URL"
            ),
        }
        let console_state = console::ConsoleState {
            store: store.clone(),
            keys,
            vod: console_vod,
            dead_letters: Arc::new(DeadLetters::new(
                config.amqp_url.clone(),
                config.topology.clone(),
            )),
            outbox: outbox.clone(),
            amqp_ready: admin_state.amqp_ready.clone(),
            token: http.admin_token.clone(),
            sessions: crate::keys::sessions::SessionStore::new(store.pool().clone()),
            throttle: Default::default(),
            https: http.admin_https,
            webhooks: crate::app_webhooks::KeyWebhooks {
                signing_key: http.webhooks.signing_key.clone(),
                policy: webhook_policy.clone(),
            },
        };
        let admin_token_set = http.admin_token.is_some();
        let admin = admin::router(admin_state, http.admin_token.clone())
            .merge(console::router(console_state))
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    console::enforce_host(admin_token_set, req, next)
                },
            ));
        let router = webhook::router(webhook_state).merge(api::router(api_state));
        let (token, limits) = (shutdown.clone(), http.limits);
        tasks.spawn(async move {
            let result = http_server::serve(listener, router, limits, token)
                .await
                .context("the HTTP listener failed");
            ("http", result)
        });
        let token = shutdown.clone();
        tasks.spawn(async move {
            let result = http_server::serve(admin_listener, admin, limits, token)
                .await
                .context("the admin listener failed");
            ("admin http", result)
        });
        tracing::info!(addr = %http_addr.unwrap(), admin_addr = %admin_addr.unwrap(), "HTTP listeners ready");
    }

    Ok(RunningApp {
        http_addr,
        admin_addr,
        store,
        intake,
        abort,
        worker_stopped,
        shutdown,
        tasks,
    })
}

/// Forgets per-minute request counters an hour old, every ten minutes.
async fn prune_key_usage(keys: KeyStore, shutdown: CancellationToken) {
    loop {
        if let Err(e) = keys.prune_usage().await {
            tracing::warn!(error = %e, "pruning API key usage failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}

/// Writes the API's counted refusals to `api_audit` every few seconds, and what is left at
/// shutdown.
async fn write_refusals(budget: Arc<api::LocalBudget>, pool: PgPool, shutdown: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(Duration::from_secs(5)) => false,
        };
        if let Err(e) = budget.flush(&pool).await {
            tracing::warn!(error = %e, "writing the API's refusals to api_audit failed; kept for the next try");
        }
        if stopping {
            return;
        }
    }
}

/// Rows one sweep statement deletes at most: short statements, so the sweep never holds many
/// locks or a long transaction on the tables the webhook writes.
const SWEEP_BATCH: i64 = 1000;

/// Deletes stored callbacks, audit rows and finished webhook deliveries past their retention, in batches, once at start-up
/// and then every hour.
async fn sweep_retention(
    store: JobStore,
    keys: KeyStore,
    retention: Retention,
    shutdown: CancellationToken,
) {
    loop {
        let events = sweep_all(
            || store.prune_events(retention.events, SWEEP_BATCH),
            &shutdown,
        );
        let audit = sweep_all(|| keys.prune_audit(retention.audit, SWEEP_BATCH), &shutdown);
        let deliveries = sweep_all(
            || store.prune_deliveries(retention.deliveries, SWEEP_BATCH),
            &shutdown,
        );
        match (events.await, audit.await, deliveries.await) {
            (Ok(0), Ok(0), Ok(0)) => {}
            (Ok(events), Ok(audit), Ok(deliveries)) => {
                tracing::info!(
                    events,
                    audit,
                    deliveries,
                    "retention sweep deleted old callbacks, audit rows and webhook deliveries"
                )
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                tracing::warn!(error = %e, "the retention sweep failed; it runs again in an hour")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// Runs one bounded delete until it deletes less than a batch; returns the total.
async fn sweep_all<F, Fut>(mut delete: F, shutdown: &CancellationToken) -> Result<u64, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    let mut total = 0;
    while !shutdown.is_cancelled() {
        let n = delete().await?;
        total += n;
        if n < SWEEP_BATCH as u64 {
            break;
        }
    }
    Ok(total)
}

/// Keeps a jobs consumer running: on a broker or channel failure it reconnects with backoff.
async fn supervise_consumer(
    first: Arc<lapin::Connection>,
    amqp_url: String,
    config: ConsumerConfig,
    store: JobStore,
    outbox: OutboxWaker,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> (&'static str, anyhow::Result<()>) {
    let mut connection = Some(first);
    let mut delay = Duration::from_millis(500);
    while !shutdown.is_cancelled() {
        let conn = match connection.take() {
            Some(c) if c.status().connected() => c,
            _ => match queue::connect(&amqp_url, "vod-ingest-consumer").await {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    tracing::error!(error = %e, "cannot reach RabbitMQ; retrying in {delay:?}");
                    tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(delay) => {} }
                    delay = (delay * 2).min(Duration::from_secs(30));
                    continue;
                }
            },
        };
        let result = async {
            let channel = queue::confirm_channel(&conn).await?;
            config.topology.declare(&channel).await?;
            queue::consume_jobs(
                channel,
                config.clone(),
                store.clone(),
                outbox.clone(),
                wake.clone(),
                shutdown.clone(),
            )
            .await
        }
        .await;
        match result {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the jobs consumer stopped; reconnecting in {delay:?}");
                tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(delay) => {} }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
    ("jobs consumer", Ok(()))
}
