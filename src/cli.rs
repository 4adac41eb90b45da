//! Command-line interface. Every setting is a flag and an environment variable (`docs/design.md`,
//! "Configuration"); a bad or missing one stops start-up with a line that names it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};

use crate::app::{AppConfig, HttpSettings, VodSettings};
use crate::queue::Topology;
use crate::reconciler::ReconcilerConfig;
use crate::secret::Secret;
use crate::units::parse_size;
use crate::webhook::CallbackAuth;
use crate::worker::WorkerConfig;

#[derive(Debug, Parser)]
#[command(name = "vod-ingest", version, about = "Get media into Alibaba Cloud ApsaraVideo VOD, reliably and fast.", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the worker, the jobs consumer and the HTTP listener (webhook and operations).
    Run(Box<RunArgs>),
    /// Create the database if needed and apply the schema migrations.
    Migrate(DbArgs),
    /// Publish a job to the jobs queue (with publisher confirms).
    Enqueue(EnqueueArgs),
    /// Show one job and its history.
    Status(StatusArgs),
    /// List jobs, newest first.
    Jobs(JobsArgs),
    /// Run a failed or cancelled job again.
    Retry(JobIdArgs),
    /// Cancel a job that has not finished.
    Cancel(JobIdArgs),
    /// Upload one file now, in this process, without the queue (prints the media id).
    Upload(UploadArgs),
    /// Create, list and revoke the API keys client apps use (`/v1/uploads`, `/v1/sts-token`).
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Run the local VOD + STS + OSS emulator.
    Emulator(EmulatorArgs),
    /// Run emulator, worker and webhook in one process on generated sample media.
    Demo(DemoArgs),
}

#[derive(Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/vod_ingest",
        hide_env_values = true
    )]
    pub database_url: String,
}

/// Without the URL's password.
impl std::fmt::Debug for DbArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbArgs")
            .field("database_url", &crate::app::redact_url(&self.database_url))
            .finish()
    }
}

/// Without the URL's password.
impl std::fmt::Debug for AmqpArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpArgs")
            .field("amqp_url", &crate::app::redact_url(&self.amqp_url))
            .field("amqp_prefix", &self.amqp_prefix)
            .finish()
    }
}

#[derive(Clone, Args)]
pub struct AmqpArgs {
    /// RabbitMQ connection URL.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// Prefix of the queue and exchange names.
    #[arg(long, env = "VOD_INGEST_AMQP_PREFIX", default_value = "vod.ingest")]
    pub amqp_prefix: String,
}

#[derive(Debug, Clone, Args)]
pub struct VodArgs {
    /// AccessKey ID used to call VOD (or to assume ALIBABA_CLOUD_ROLE_ARN).
    #[arg(long, env = "ALIBABA_CLOUD_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    /// AccessKey secret.
    #[arg(long, env = "ALIBABA_CLOUD_ACCESS_KEY_SECRET", hide_env_values = true)]
    pub access_key_secret: Option<Secret>,
    /// STS security token, when the AccessKey is a temporary one.
    #[arg(long, env = "ALIBABA_CLOUD_SECURITY_TOKEN", hide_env_values = true)]
    pub security_token: Option<Secret>,
    /// RAM role to assume with STS AssumeRole; its credentials sign the VOD calls.
    #[arg(long, env = "ALIBABA_CLOUD_ROLE_ARN")]
    pub role_arn: Option<String>,
    /// Session name for AssumeRole.
    #[arg(
        long,
        env = "ALIBABA_CLOUD_ROLE_SESSION_NAME",
        default_value = "vod-ingest"
    )]
    pub role_session_name: String,
    /// VOD region.
    #[arg(long, env = "VOD_REGION", default_value = "cn-shanghai")]
    pub region: String,
    /// VOD endpoint [default: https://vod.<region>.aliyuncs.com].
    #[arg(long, env = "VOD_ENDPOINT")]
    pub vod_endpoint: Option<String>,
    /// STS endpoint [default: https://sts.<region>.aliyuncs.com].
    #[arg(long, env = "STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// VOD calls per second per action for the whole deployment, shared through PostgreSQL:
    /// `off`, or `Action=N,...` (unnamed actions keep the documented 120; `Action=0` lifts one).
    #[arg(long, env = "VOD_INGEST_VOD_RATE_LIMITS", default_value = "")]
    pub vod_rate_limits: String,
    /// Signature for VOD and STS calls: `v1` (HMAC-SHA1, the classic SDKs') or `v3`
    /// (ACS3-HMAC-SHA256, today's V2.0 SDKs').
    #[arg(long, env = "VOD_INGEST_SIGNATURE_VERSION", default_value = "v1")]
    pub signature_version: crate::vod::SignatureVersion,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Jobs uploaded at once by this process.
    #[arg(long, env = "VOD_INGEST_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// Directories local sources may be read from (comma-separated).
    #[arg(long, env = "VOD_INGEST_SOURCE_ROOTS", value_delimiter = ',')]
    pub source_roots: Vec<PathBuf>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

/// How bytes move: part sizes, parallelism, leases, remote sources.
#[derive(Debug, Clone, Args)]
pub struct TransferArgs {
    /// Sources at least this large use a multipart upload (bytes; K/M/G suffixes allowed).
    #[arg(long, env = "VOD_INGEST_MULTIPART_THRESHOLD", default_value = "32M", value_parser = parse_size)]
    pub multipart_threshold: u64,
    /// Preferred part size; grown so no upload needs more than 10,000 parts.
    #[arg(long, env = "VOD_INGEST_PART_SIZE", default_value = "8M", value_parser = parse_size)]
    pub part_size: u64,
    /// Parts in flight per job.
    #[arg(long, env = "VOD_INGEST_PART_PARALLELISM", default_value_t = 4)]
    pub part_parallelism: usize,
    /// Seconds a claimed job stays leased without renewal; after that any worker rescues it.
    #[arg(long, env = "VOD_INGEST_LEASE_SECS", default_value_t = 60)]
    pub lease_secs: u64,
    /// Allow http(s) sources on loopback, private and link-local addresses.
    #[arg(long, env = "VOD_INGEST_ALLOW_PRIVATE_SOURCES")]
    pub allow_private_sources: bool,
    /// Where http(s) sources without range support are copied first [default: the temp dir].
    #[arg(long, env = "VOD_INGEST_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Largest http(s) source that may be copied to the spool directory.
    #[arg(long, env = "VOD_INGEST_SPOOL_LIMIT", default_value = "10G", value_parser = parse_size)]
    pub spool_limit: u64,
}

impl TransferArgs {
    /// Applies these settings to a worker configuration.
    pub fn apply(&self, config: &mut WorkerConfig) -> anyhow::Result<()> {
        if self.part_size < crate::oss::MIN_PART_SIZE {
            bail!(
                "VOD_INGEST_PART_SIZE must be at least {} bytes (OSS's minimum part size)",
                crate::oss::MIN_PART_SIZE
            );
        }
        if self.part_size > 5 * (1 << 30) {
            bail!("VOD_INGEST_PART_SIZE must be at most 5G (OSS's maximum part size)");
        }
        if self.part_parallelism == 0 {
            bail!("VOD_INGEST_PART_PARALLELISM must be at least 1");
        }
        if self.lease_secs < 3 {
            bail!("VOD_INGEST_LEASE_SECS must be at least 3");
        }
        config.multipart_threshold = self.multipart_threshold;
        config.part_size = self.part_size;
        config.part_parallelism = self.part_parallelism;
        config.lease = Duration::from_secs(self.lease_secs);
        config.remote.allow_private = self.allow_private_sources;
        if let Some(dir) = &self.spool_dir {
            config.remote.spool_dir = dir.clone();
        }
        config.remote.spool_limit = self.spool_limit;
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address of the public HTTP listener (VOD callbacks, client API, upload page, /healthz).
    #[arg(long, env = "VOD_INGEST_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Address of the admin listener for operators (/readyz, /metrics, /v1/jobs).
    #[arg(long, env = "VOD_INGEST_ADMIN_ADDR", default_value = "127.0.0.1:9090")]
    pub admin_addr: SocketAddr,
    /// Token the admin endpoints require (`Authorization: Bearer ...`); unset: none, which
    /// needs a loopback VOD_INGEST_ADMIN_ADDR.
    #[arg(long, env = "VOD_INGEST_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Allow a non-loopback VOD_INGEST_ADMIN_ADDR without a token: only where a firewall or
    /// an authenticating proxy keeps everyone else out.
    #[arg(long, env = "VOD_INGEST_ADMIN_ALLOW_OPEN")]
    pub admin_allow_open: bool,
    /// The console is reached over HTTPS (a TLS proxy in front of the admin listener): its
    /// session cookie gets Secure and the __Host- prefix.
    #[arg(long, env = "VOD_INGEST_ADMIN_HTTPS")]
    pub admin_https: bool,
    /// The callback URL exactly as registered with VOD (it is part of what VOD signs);
    /// comma-separate several when per-job callback URLs are used.
    #[arg(long, env = "VOD_CALLBACK_URL", value_delimiter = ',')]
    pub callback_url: Vec<String>,
    /// Callback authentication keys (comma-separated, so keys can rotate).
    #[arg(
        long,
        env = "VOD_CALLBACK_AUTH_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub callback_auth_keys: Vec<Secret>,
    /// Largest accepted clock difference for X-VOD-TIMESTAMP, in seconds.
    #[arg(long, env = "VOD_CALLBACK_WINDOW_SECS", default_value_t = 300)]
    pub callback_window_secs: u64,
    /// RAM role whose STS tokens client apps get from POST /v1/sts-token (unset: none).
    #[arg(long, env = "VOD_INGEST_STS_ROLE_ARN")]
    pub sts_role_arn: Option<String>,
    /// Lifetime of those tokens when the client asks for none, in seconds (STS's shortest:
    /// a token cannot be revoked, so it should not outlive its need).
    #[arg(long, env = "VOD_INGEST_STS_DURATION_SECS", default_value_t = 900)]
    pub sts_duration_secs: u64,
    /// The role's MaxSessionDuration, in seconds (3600 unless raised in RAM, up to 43200).
    #[arg(long, env = "VOD_INGEST_STS_MAX_DURATION_SECS", default_value_t = 3600)]
    pub sts_max_duration_secs: u64,
    /// Directory holding node_modules/ali-oss for the upload page (`npm ci --prefix web`).
    #[arg(long, env = "VOD_INGEST_WEB_DIR", default_value = "web")]
    pub web_dir: PathBuf,
    /// Seconds a request may take on either listener, its body included (then 408).
    #[arg(
        long,
        env = "VOD_INGEST_HTTP_REQUEST_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub http_request_timeout_secs: u64,
    /// Seconds a client has to send a request's headers (slow clients are cut off).
    #[arg(
        long,
        env = "VOD_INGEST_HTTP_HEADER_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub http_header_timeout_secs: u64,
    /// Requests handled at once per listener; beyond it, 503 with Retry-After.
    #[arg(long, env = "VOD_INGEST_HTTP_MAX_IN_FLIGHT", default_value_t = 256)]
    pub http_max_in_flight: usize,
    /// Connections open at once per listener; beyond it, new ones wait to be accepted.
    #[arg(long, env = "VOD_INGEST_HTTP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub http_max_connections: usize,
    /// Requests handled at once per listener for one client address; beyond it, 503.
    #[arg(
        long,
        env = "VOD_INGEST_HTTP_MAX_IN_FLIGHT_PER_CLIENT",
        default_value_t = 64
    )]
    pub http_max_in_flight_per_client: usize,
    /// Connections open at once per listener from one client address; beyond it, closed.
    #[arg(
        long,
        env = "VOD_INGEST_HTTP_MAX_CONNECTIONS_PER_CLIENT",
        default_value_t = 256
    )]
    pub http_max_connections_per_client: usize,
    /// Days stored callbacks (vod_events) are kept; an hourly sweep deletes older ones.
    #[arg(long, env = "VOD_INGEST_EVENT_RETENTION_DAYS", default_value_t = 30)]
    pub event_retention_days: u64,
    /// Days the API audit (api_audit: credentials handed out) is kept.
    #[arg(long, env = "VOD_INGEST_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u64,
    #[command(flatten)]
    pub webhook: WebhookArgs,
    /// Waits between attempts of a webhook to an app (ms, s, m, h); after the last, the
    /// delivery is dead. The default is Standard Webhooks' schedule, 27.6 hours in all.
    #[arg(
        long,
        env = "VOD_INGEST_WEBHOOK_RETRY_DELAYS",
        default_value = "5s,5m,30m,2h,5h,10h,10h",
        value_delimiter = ',',
        value_parser = humantime::parse_duration
    )]
    pub webhook_retry_delays: Vec<Duration>,
    /// Seconds one webhook attempt may take (connect, send, answer).
    #[arg(long, env = "VOD_INGEST_WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    pub webhook_timeout_secs: u64,
    /// Days delivered and dead webhook deliveries are kept (the console lists them).
    #[arg(long, env = "VOD_INGEST_WEBHOOK_RETENTION_DAYS", default_value_t = 30)]
    pub webhook_retention_days: u64,
}

/// Webhooks to apps: the key that signs them and where they may go. Shared by `run` and the
/// `api-key` commands (which show a key's secret and check its URL).
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Derives each API key's webhook signing secret (at least 32 characters; every process
    /// needs the same). Unset: keys cannot have a webhook URL. Changing it changes every
    /// key's secret.
    #[arg(long, env = "VOD_INGEST_WEBHOOK_SIGNING_KEY", hide_env_values = true)]
    pub webhook_signing_key: Option<Secret>,
    /// Allow webhook URLs on loopback addresses (a receiver on this host; development). The
    /// service's own listeners and link-local addresses are refused regardless.
    #[arg(long, env = "VOD_INGEST_WEBHOOK_ALLOW_LOOPBACK")]
    pub webhook_allow_loopback: bool,
}

impl WebhookArgs {
    /// The signing key, checked; `None` when unset or empty.
    pub fn signing_key(&self) -> anyhow::Result<Option<Secret>> {
        let key = self
            .webhook_signing_key
            .as_ref()
            .map(|k| k.expose().trim())
            .filter(|k| !k.is_empty())
            .map(Secret::from);
        if let Some(k) = &key {
            crate::app_webhooks::check_signing_key(k)?;
        }
        Ok(key)
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub vod: VodArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    /// Run without the worker and jobs consumer (HTTP only).
    #[arg(long)]
    pub no_worker: bool,
    /// Run without the HTTP listener (worker only).
    #[arg(long)]
    pub no_http: bool,
    /// Run without the reconciler.
    #[arg(long)]
    pub no_reconciler: bool,
    /// Seconds a job may wait in `uploaded` for its callback before the reconciler asks VOD.
    #[arg(long, env = "VOD_INGEST_RECONCILE_AFTER_SECS", default_value_t = 120)]
    pub reconcile_after_secs: u64,
    /// Seconds after its completion a video may go without a processing outcome (playable or
    /// transcode failed) before the reconciler asks VOD for its status.
    #[arg(long, env = "VOD_INGEST_PROCESSING_GRACE_SECS", default_value_t = 600)]
    pub processing_grace_secs: u64,
    /// Checks in a row (one per reconciler interval) that find a media missing in VOD, or its
    /// upload failed, before the job ends failed (MediaNotFound / UploadFailed).
    #[arg(long, env = "VOD_INGEST_RECONCILE_MISSING_CHECKS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub reconcile_missing_checks: u32,
    /// On SIGTERM or SIGINT: seconds the jobs in flight get to finish before they are
    /// released to other workers (new jobs are not taken from the first signal on).
    #[arg(long, env = "VOD_INGEST_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Seconds a client upload may go without completing, counted from its last credential,
    /// before the reconciler ends it (completed if VOD has the file, else UploadAbandoned).
    #[arg(
        long,
        env = "VOD_INGEST_CLIENT_UPLOAD_TIMEOUT_SECS",
        default_value_t = 86400
    )]
    pub client_upload_timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// `video`, `image` or `attached_media`.
    #[arg(long)]
    pub kind: Option<String>,
    /// Absolute path or file:// URL of the source.
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub job_id: Option<String>,
    #[arg(long)]
    pub file_name: Option<String>,
    /// Attached media: `watermark`, `subtitle` or `material`.
    #[arg(long)]
    pub business_type: Option<String>,
    /// Images: `default` or `cover`.
    #[arg(long)]
    pub image_type: Option<String>,
    #[arg(long)]
    pub callback_url: Option<String>,
    /// The whole job message as JSON (fields given as flags override it).
    #[arg(long)]
    pub json: Option<String>,
    /// Follow the job until it finishes (reads PostgreSQL).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    /// The file to upload.
    pub path: PathBuf,
    /// `video`, `image` or `attached_media`.
    #[arg(long, default_value = "video")]
    pub kind: String,
    /// Title [default: the file's name without extension].
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub job_id: Option<String>,
    /// Attached media: `watermark`, `subtitle` or `material`.
    #[arg(long)]
    pub business_type: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub vod: VodArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    pub job_id: String,
    #[command(flatten)]
    pub db: DbArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only jobs in this state.
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

#[derive(Debug, Clone, Args)]
pub struct JobIdArgs {
    pub job_id: String,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print it (once: only its hash is stored).
    Create(ApiKeyCreateArgs),
    /// List the keys and their limits (never the keys themselves).
    List(DbArgs),
    /// Revoke a key: it is refused from now on.
    Revoke(KeyIdArgs),
    /// Change a key's VOD settings, webhook URL or STS refresh permission (empty values
    /// clear one).
    Update(ApiKeyUpdateArgs),
    /// Give a key's webhooks a new signing secret and print it (the previous one still signs
    /// for a day, so the app can switch without losing a delivery).
    RotateWebhookSecret(KeyWebhookArgs),
}

/// What the `api-key` commands need to set a webhook: the signing key, and the listeners a
/// webhook URL may not point at.
#[derive(Debug, Clone, Args)]
pub struct KeyWebhookTargetArgs {
    #[command(flatten)]
    pub webhook: WebhookArgs,
    /// The service's public listener (a webhook URL may not point at it).
    #[arg(
        long,
        env = "VOD_INGEST_HTTP_ADDR",
        default_value = "0.0.0.0:8080",
        hide = true
    )]
    pub http_addr: SocketAddr,
    /// The service's admin listener (a webhook URL may not point at it).
    #[arg(
        long,
        env = "VOD_INGEST_ADMIN_ADDR",
        default_value = "127.0.0.1:9090",
        hide = true
    )]
    pub admin_addr: SocketAddr,
}

impl KeyWebhookTargetArgs {
    pub fn key_webhooks(&self) -> anyhow::Result<crate::app_webhooks::KeyWebhooks> {
        Ok(crate::app_webhooks::KeyWebhooks {
            signing_key: self.webhook.signing_key()?,
            policy: crate::app_webhooks::TargetPolicy {
                own_listeners: vec![self.http_addr, self.admin_addr],
                allow_loopback: self.webhook.webhook_allow_loopback,
            },
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct KeyWebhookArgs {
    /// The key's id, as `api-key list` shows it (not the key itself).
    pub key_id: String,
    #[command(flatten)]
    pub target: KeyWebhookTargetArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The VOD parameters an operator sets per key; clients cannot send them.
#[derive(Debug, Clone, Args)]
pub struct KeySettingsArgs {
    /// VOD application (AppId) the key's uploads go to.
    #[arg(long)]
    pub app_id: Option<String>,
    /// Workflow run on the key's uploads (WorkflowId).
    #[arg(long)]
    pub workflow_id: Option<String>,
    /// Transcoding template group for the key's uploads (TemplateGroupId).
    #[arg(long)]
    pub template_group_id: Option<String>,
    /// Storage address for the key's uploads (StorageLocation).
    #[arg(long)]
    pub storage_location: Option<String>,
    /// Where VOD sends the callbacks of the key's uploads (MessageCallback.CallbackURL).
    #[arg(long)]
    pub callback_url: Option<String>,
}

impl KeySettingsArgs {
    pub fn parse(&self) -> Result<crate::keys::KeySettings, crate::keys::InvalidKeySetting> {
        crate::keys::KeySettings::parse(
            self.app_id.as_deref(),
            self.workflow_id.as_deref(),
            self.template_group_id.as_deref(),
            self.storage_location.as_deref(),
            self.callback_url.as_deref(),
        )
    }
}

#[derive(Debug, Clone, Args)]
pub struct ApiKeyUpdateArgs {
    /// The key's id, as `api-key list` shows it (not the key itself).
    pub key_id: String,
    /// Whether its STS tokens may call RefreshUploadVideo (true or false).
    #[arg(long)]
    pub allow_sts_refresh: Option<bool>,
    #[command(flatten)]
    pub settings: KeySettingsArgs,
    /// Where the key's uploads' events are POSTed (empty: no webhooks). A key's first URL
    /// gets a new signing secret, printed once.
    #[arg(long)]
    pub webhook_url: Option<String>,
    #[command(flatten)]
    pub target: KeyWebhookTargetArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Clone, Args)]
pub struct KeyIdArgs {
    /// The key's id, as `api-key list` shows it (not the key itself).
    pub key_id: String,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ApiKeyCreateArgs {
    /// Who the key is for (shown in `api-key list`).
    #[arg(long)]
    pub name: String,
    /// Kinds it may upload (comma-separated: video, image, attached_media).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "video,image,attached_media"
    )]
    pub kinds: Vec<String>,
    /// Largest file it may upload (K/M/G suffixes allowed).
    #[arg(long, default_value = "10G", value_parser = parse_size)]
    pub max_file_size: u64,
    /// Requests it may make per minute.
    #[arg(long, default_value_t = 60)]
    pub requests_per_minute: u32,
    /// Browser origins allowed to use it (comma-separated or repeated; `*` for any), e.g.
    /// https://app.example.com. Calls without an Origin header (mobile apps, servers) are
    /// always allowed.
    #[arg(long = "origin", value_delimiter = ',')]
    pub origins: Vec<String>,
    /// May get STS tokens (POST /v1/sts-token).
    #[arg(long)]
    pub allow_sts: bool,
    /// Its STS tokens may also call RefreshUploadVideo, which the official SDKs use for
    /// uploads that outlive their credential. RefreshUploadVideo takes any VideoId of the
    /// account and overwrites that video's file: allow it only for apps you trust that far.
    #[arg(long, requires = "allow_sts")]
    pub allow_sts_refresh: bool,
    #[command(flatten)]
    pub settings: KeySettingsArgs,
    /// Where the key's uploads' events are POSTed, signed (Standard Webhooks); the signing
    /// secret is printed once, after the key.
    #[arg(long)]
    pub webhook_url: Option<String>,
    #[command(flatten)]
    pub target: KeyWebhookTargetArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    #[arg(long, default_value = "emulator-access-key-id")]
    pub access_key_id: String,
    #[arg(
        long,
        default_value = "emulator-access-key-secret",
        hide_default_value = true
    )]
    pub access_key_secret: Secret,
    /// Lifetime of the upload credentials it hands out, in seconds.
    #[arg(long, default_value_t = 3000)]
    pub credential_ttl: u64,
    /// The assumed role's MaxSessionDuration, in seconds (3600 to 43200): AssumeRole accepts
    /// DurationSeconds from 900 up to this.
    #[arg(long, default_value_t = 3600)]
    pub role_max_session_duration: u64,
    /// Where objects are stored [default: a new temporary directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Default callback URL for upload events.
    #[arg(long)]
    pub callback_url: Option<String>,
    /// Key that signs callbacks (X-VOD-SIGNATURE); unsigned when absent.
    #[arg(long)]
    pub callback_key: Option<Secret>,
    #[arg(long, default_value = "cn-shanghai")]
    pub region: String,
    /// URL clients reach the emulator at, handed out as the OSS endpoint
    /// [default: http://<listen address>]. For browsers and mini programs use
    /// `http://localhost:PORT`: they build `<bucket>.localhost`, which resolves to loopback.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Also answer HTTPS on the same port, with a self-signed certificate for localhost,
    /// *.localhost, vod.<region>.aliyuncs.com and the public URL's host (written to
    /// <data dir>/tls/cert.pem): VOD's client SDKs call VOD over https only.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls: bool,
    /// Answer HTTPS with this certificate chain (PEM) instead of a generated one.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Without the AMQP URL's password.
impl std::fmt::Debug for DemoArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoArgs")
            .field("db", &self.db)
            .field("amqp_url", &crate::app::redact_url(&self.amqp_url))
            .field("amqp_prefix", &self.amqp_prefix)
            .field("serve", &self.serve)
            .field("serve_addr", &self.serve_addr)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// RabbitMQ connection URL.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,
    /// Prefix of the demo's queues, kept apart from a real deployment's.
    #[arg(long, default_value = "vod.ingest.demo")]
    pub amqp_prefix: String,
    /// Size of the generated sample video, in MiB.
    #[arg(long, default_value_t = 8)]
    pub video_mib: u64,
    /// After the sample jobs, keep running and serve the browser upload page: prints its URL
    /// and a new API key; Ctrl-C stops.
    #[arg(long)]
    pub serve: bool,
    /// With --serve: the address of the public listener (page, client API, callbacks).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub serve_addr: SocketAddr,
    /// With --serve: the address of the admin listener, where the operator console is
    /// (without --serve a free port is used, printed at the start).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_addr: SocketAddr,
}

fn required(value: &Option<String>, name: &str, hint: &str) -> anyhow::Result<String> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => bail!("{name} is not set: {hint}"),
    }
}

fn parse_url(value: &str, name: &str) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(value).with_context(|| {
        format!("{name} {value:?} is not a URL (e.g. https://vod.cn-shanghai.aliyuncs.com)")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("{name} {value:?} must start with http:// or https://");
    }
    Ok(url)
}

impl VodArgs {
    pub fn settings(&self) -> anyhow::Result<VodSettings> {
        let access_key_id = required(
            &self.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            "set it to a RAM user's AccessKey ID (or, with the emulator, to its --access-key-id)",
        )?;
        let access_key_secret = required(
            &self
                .access_key_secret
                .as_ref()
                .map(|s| s.expose().to_owned()),
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            "set it to the secret of ALIBABA_CLOUD_ACCESS_KEY_ID",
        )?;
        let endpoint = match &self.vod_endpoint {
            Some(e) => parse_url(e, "VOD_ENDPOINT")?,
            None => parse_url(
                &format!("https://vod.{}.aliyuncs.com", self.region),
                "VOD_ENDPOINT",
            )?,
        };
        let sts_endpoint = match &self.sts_endpoint {
            Some(e) => parse_url(e, "STS_ENDPOINT")?,
            None => parse_url(
                &format!("https://sts.{}.aliyuncs.com", self.region),
                "STS_ENDPOINT",
            )?,
        };
        let rate_limits = self.vod_rate_limits.parse().map_err(|e| {
            anyhow::anyhow!(
                "VOD_INGEST_VOD_RATE_LIMITS: {e} (e.g. CreateUploadVideo=120,CreateUploadImage=120, or off)"
            )
        })?;
        Ok(VodSettings {
            endpoint,
            sts_endpoint,
            rate_limits,
            region: self.region.clone(),
            access_key_id,
            access_key_secret: Secret::new(access_key_secret),
            security_token: self
                .security_token
                .as_ref()
                .map(|t| t.expose().trim())
                .filter(|t| !t.is_empty())
                .map(Secret::from),
            role_arn: self.role_arn.clone().filter(|r| !r.trim().is_empty()),
            role_session_name: self.role_session_name.clone(),
            timeout: Duration::from_secs(30),
            signature_version: self.signature_version,
        })
    }
}

/// Canonicalises the source roots; each must be an existing directory.
pub fn source_roots(roots: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    roots
        .iter()
        .filter(|r| !r.as_os_str().is_empty())
        .map(|root| {
            let canonical = std::fs::canonicalize(root).with_context(|| {
                format!(
                    "VOD_INGEST_SOURCE_ROOTS: {} cannot be opened",
                    root.display()
                )
            })?;
            if !canonical.is_dir() {
                bail!(
                    "VOD_INGEST_SOURCE_ROOTS: {} is not a directory",
                    root.display()
                );
            }
            Ok(canonical)
        })
        .collect()
}

impl HttpArgs {
    pub fn settings(&self) -> anyhow::Result<HttpSettings> {
        let keys: Vec<Secret> = self
            .callback_auth_keys
            .iter()
            .map(|k| k.expose().trim())
            .filter(|k| !k.is_empty())
            .map(Secret::from)
            .collect();
        let urls: Vec<String> = self
            .callback_url
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        for u in &urls {
            parse_url(u, "VOD_CALLBACK_URL")?;
        }
        if !keys.is_empty() && urls.is_empty() {
            bail!("VOD_CALLBACK_URL is not set: callbacks are signed over the URL registered with VOD, so it is needed to verify them");
        }
        if keys.is_empty() {
            tracing::warn!(
                "VOD_CALLBACK_AUTH_KEYS is empty: callbacks are accepted without verification"
            );
        }
        let sts = match self.sts_role_arn.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(role_arn) => {
                if !role_arn.starts_with("acs:ram::") || !role_arn.contains(":role/") {
                    bail!("VOD_INGEST_STS_ROLE_ARN {role_arn:?} is not a role ARN (acs:ram::<account id>:role/<role name>)");
                }
                let max = self.sts_max_duration_secs;
                if !(3600..=43200).contains(&max) {
                    bail!("VOD_INGEST_STS_MAX_DURATION_SECS must be between 3600 and 43200 (RAM's range for a role's MaxSessionDuration)");
                }
                if !(900..=max).contains(&self.sts_duration_secs) {
                    bail!("VOD_INGEST_STS_DURATION_SECS must be between 900 and VOD_INGEST_STS_MAX_DURATION_SECS ({max})");
                }
                Some(crate::api::StsSettings {
                    role_arn: role_arn.to_owned(),
                    default_duration: Duration::from_secs(self.sts_duration_secs),
                    max_duration: Duration::from_secs(max),
                })
            }
        };
        if sts.is_some() && keys.is_empty() {
            bail!("VOD_INGEST_STS_ROLE_ARN is set but VOD_CALLBACK_AUTH_KEYS is empty: uploads made with STS tokens are recorded from VOD's callbacks, which must then be signed; set VOD_CALLBACK_AUTH_KEYS (and VOD_CALLBACK_URL) as configured in VOD, or unset VOD_INGEST_STS_ROLE_ARN");
        }
        if self.admin_addr == self.http_addr {
            bail!("VOD_INGEST_ADMIN_ADDR must differ from VOD_INGEST_HTTP_ADDR: the admin endpoints are for operators only");
        }
        let settings = HttpSettings {
            admin_allow_open: self.admin_allow_open,
            admin_https: self.admin_https,
            addr: self.http_addr,
            admin_addr: self.admin_addr,
            admin_token: self
                .admin_token
                .as_ref()
                .map(|t| t.expose().trim())
                .filter(|t| !t.is_empty())
                .map(Secret::from),
            auth: CallbackAuth {
                urls,
                keys,
                window: Duration::from_secs(self.callback_window_secs),
            },
            max_callback_bytes: crate::webhook::DEFAULT_MAX_CALLBACK_BYTES,
            sts,
            web_dir: self.web_dir.clone(),
            limits: {
                for (name, value) in [
                    (
                        "VOD_INGEST_HTTP_REQUEST_TIMEOUT_SECS",
                        self.http_request_timeout_secs as usize,
                    ),
                    (
                        "VOD_INGEST_HTTP_HEADER_TIMEOUT_SECS",
                        self.http_header_timeout_secs as usize,
                    ),
                    ("VOD_INGEST_HTTP_MAX_IN_FLIGHT", self.http_max_in_flight),
                    ("VOD_INGEST_HTTP_MAX_CONNECTIONS", self.http_max_connections),
                    (
                        "VOD_INGEST_HTTP_MAX_IN_FLIGHT_PER_CLIENT",
                        self.http_max_in_flight_per_client,
                    ),
                    (
                        "VOD_INGEST_HTTP_MAX_CONNECTIONS_PER_CLIENT",
                        self.http_max_connections_per_client,
                    ),
                ] {
                    if value == 0 {
                        bail!("{name} must be at least 1");
                    }
                }
                crate::http_server::Limits {
                    header_read_timeout: Duration::from_secs(self.http_header_timeout_secs),
                    request_timeout: Duration::from_secs(self.http_request_timeout_secs),
                    max_in_flight: self.http_max_in_flight,
                    max_connections: self.http_max_connections,
                    max_in_flight_per_client: self.http_max_in_flight_per_client,
                    max_connections_per_client: self.http_max_connections_per_client,
                    ..Default::default()
                }
            },
            retention: {
                for (name, days) in [
                    ("VOD_INGEST_EVENT_RETENTION_DAYS", self.event_retention_days),
                    ("VOD_INGEST_AUDIT_RETENTION_DAYS", self.audit_retention_days),
                    (
                        "VOD_INGEST_WEBHOOK_RETENTION_DAYS",
                        self.webhook_retention_days,
                    ),
                ] {
                    if days == 0 {
                        bail!("{name} must be at least 1 (days)");
                    }
                }
                crate::app::Retention {
                    events: Duration::from_secs(self.event_retention_days * 86400),
                    audit: Duration::from_secs(self.audit_retention_days * 86400),
                    deliveries: Duration::from_secs(self.webhook_retention_days * 86400),
                }
            },
            webhooks: {
                if self.webhook_retry_delays.is_empty() {
                    bail!("VOD_INGEST_WEBHOOK_RETRY_DELAYS must name at least one delay");
                }
                if self.webhook_timeout_secs == 0 {
                    bail!("VOD_INGEST_WEBHOOK_TIMEOUT_SECS must be at least 1");
                }
                crate::app_webhooks::WebhookSettings {
                    signing_key: self.webhook.signing_key()?,
                    retry_delays: self.webhook_retry_delays.clone(),
                    timeout: Duration::from_secs(self.webhook_timeout_secs),
                    allow_loopback: self.webhook.webhook_allow_loopback,
                }
            },
        };
        // Refused here too, so `run` stops before it connects to anything.
        settings.check_admin_exposure()?;
        Ok(settings)
    }
}

impl RunArgs {
    pub fn app_config(&self) -> anyhow::Result<AppConfig> {
        if self.no_worker && self.no_http {
            bail!("--no-worker and --no-http together leave nothing to run");
        }
        let worker = if self.no_worker {
            None
        } else {
            if self.worker.concurrency == 0 {
                bail!("VOD_INGEST_CONCURRENCY must be at least 1");
            }
            let roots = source_roots(&self.worker.source_roots)?;
            if roots.is_empty() {
                tracing::warn!("VOD_INGEST_SOURCE_ROOTS is empty: every job with a local source will be dead-lettered");
            }
            let mut config = WorkerConfig::new(roots);
            config.concurrency = self.worker.concurrency;
            self.worker.transfer.apply(&mut config)?;
            Some(config)
        };
        Ok(AppConfig {
            database_url: self.db.database_url.clone(),
            amqp_url: self.amqp.amqp_url.clone(),
            topology: Topology::new(self.amqp.amqp_prefix.clone()),
            vod: self.vod.settings()?,
            worker,
            http: if self.no_http {
                None
            } else {
                Some(self.http.settings()?)
            },
            reconciler: (!self.no_reconciler).then(|| ReconcilerConfig {
                grace: Duration::from_secs(self.reconcile_after_secs),
                client_upload_timeout: Duration::from_secs(self.client_upload_timeout_secs),
                processing_grace: Duration::from_secs(self.processing_grace_secs),
                missing_checks: self.reconcile_missing_checks,
                ..Default::default()
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_setting_shows_a_secret_in_its_debug_output() {
        let secrets = [
            "S3CRET-access-key",
            "S3CRET-sts-token",
            "S3CRET-admin-token",
            "S3CRET-callback-key",
            "S3CRET-db-password",
            "S3CRET-amqp-password",
        ];
        let cli = Cli::try_parse_from([
            "vod-ingest",
            "run",
            "--access-key-id=id",
            "--access-key-secret=S3CRET-access-key",
            "--security-token=S3CRET-sts-token",
            "--admin-token=S3CRET-admin-token",
            "--callback-auth-keys=S3CRET-callback-key",
            "--callback-url=http://127.0.0.1:8080/callbacks/vod",
            "--database-url=postgres://u:S3CRET-db-password@127.0.0.1/db",
            "--amqp-url=amqp://u:S3CRET-amqp-password@127.0.0.1/%2f",
        ])
        .expect("valid arguments");
        let Command::Run(args) = &cli.command else {
            panic!("parsed as run")
        };
        let config = args.app_config().expect("a valid configuration");
        for shown in [
            format!("{cli:?}"),
            format!("{config:?}"),
            format!("{config:#?}"),
        ] {
            for secret in secrets {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
        let demo = Cli::try_parse_from([
            "vod-ingest",
            "demo",
            "--amqp-url=amqp://u:S3CRET-amqp-password@127.0.0.1/%2f",
        ])
        .unwrap();
        assert!(!format!("{demo:?}").contains("S3CRET"));
        let emulator = Cli::try_parse_from([
            "vod-ingest",
            "emulator",
            "--access-key-secret=S3CRET-access-key",
            "--callback-key=S3CRET-callback-key",
        ])
        .unwrap();
        assert!(!format!("{emulator:?}").contains("S3CRET"));
    }
}
