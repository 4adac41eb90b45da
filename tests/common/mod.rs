//! Test harness: every test gets its own database, its own RabbitMQ names and its own emulator,
//! so tests run in parallel against the real PostgreSQL and RabbitMQ.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use lapin::options::BasicGetOptions;
use vod_ingest::api::StsSettings;
use vod_ingest::app::{self, AppConfig, HttpSettings, RunningApp, VodSettings};
use vod_ingest::emulator::{EmulatorConfig, RunningEmulator};
use vod_ingest::jobs::{Job, JobKind, JobState, JobStore};
use vod_ingest::keys::{KeyLimits, KeyStore};
use vod_ingest::queue::{self, Topology};
use vod_ingest::reconciler::ReconcilerConfig;
use vod_ingest::secret::Secret;
use vod_ingest::webhook::CallbackAuth;
use vod_ingest::worker::WorkerConfig;

pub fn server_url() -> url::Url {
    let raw = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    url::Url::parse(&raw).expect("DATABASE_URL is a URL")
}

pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A database of its own, dropped when the test ends.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let name = format!("vod_ingest_test_{}", uuid::Uuid::new_v4().simple());
        let mut url = server_url();
        url.set_path(&format!("/{name}"));
        app::ensure_database(url.as_str())
            .await
            .expect("create test database");
        Self {
            url: url.to_string(),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        block_on_own_thread(async move {
            let mut admin = server_url();
            admin.set_path("/postgres");
            if let Ok(pool) = sqlx::PgPool::connect(admin.as_str()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&pool)
                    .await;
            }
        });
    }
}

/// Runs `cleanup` to its end from outside async code (a `Drop`, perhaps inside a test's
/// runtime): on a small runtime of its own, on a thread of its own.
fn block_on_own_thread(cleanup: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(cleanup)
    })
    .join();
}

pub struct TestAppOptions {
    pub worker: bool,
    pub callback_keys: Vec<&'static str>,
    pub credential_ttl: Duration,
    /// Run the reconciler with this grace period.
    pub reconcile_after: Option<Duration>,
    /// Let remote sources live on loopback (a test's own HTTP server).
    pub allow_private_sources: bool,
    /// Adjusts the worker's configuration (part sizes, leases, remote-source policy...).
    pub tune_worker: fn(&mut WorkerConfig),
    /// STS tokens for client apps; `None` hands out none.
    pub sts: Option<StsSettings>,
    /// The reconciler's client-upload timeout (with `reconcile_after`).
    pub client_upload_timeout: Duration,
    /// The token the admin listener requires.
    pub admin_token: Option<&'static str>,
    /// Where the admin listener binds (loopback, port 0, unless a test says otherwise).
    pub admin_addr: std::net::SocketAddr,
    /// `VOD_INGEST_ADMIN_ALLOW_OPEN`.
    pub admin_allow_open: bool,
    /// `VOD_INGEST_ADMIN_HTTPS`.
    pub admin_https: bool,
    /// Timeouts and load bounds of both listeners.
    pub http_limits: vod_ingest::http_server::Limits,
    /// The reconciler's wait for a completed video's processing outcome.
    pub processing_grace: Duration,
    /// Where the upload page's packages are (`web/` of the checkout unless a test says).
    pub web_dir: Option<std::path::PathBuf>,
    /// The emulator also answers HTTPS (`--tls`).
    pub emulator_tls: bool,
    /// The reconciler's checks before it gives up on missing media.
    pub missing_checks: u32,
    /// How the service signs its VOD and STS calls.
    pub signature_version: vod_ingest::vod::SignatureVersion,
    /// Waits between attempts of a webhook to an app (short, so retries happen in a test).
    pub webhook_retry_delays: Vec<Duration>,
}

/// `VOD_INGEST_WEBHOOK_SIGNING_KEY` of every test app.
pub const TEST_WEBHOOK_SIGNING_KEY: &str = "test webhook signing key, 32 characters or more";

impl Default for TestAppOptions {
    fn default() -> Self {
        Self {
            worker: true,
            callback_keys: vec!["test-callback-key"],
            credential_ttl: Duration::from_secs(3000),
            reconcile_after: None,
            allow_private_sources: false,
            tune_worker: |_| {},
            sts: Some(StsSettings {
                role_arn: "acs:ram::1234567890123456:role/vod-client-upload".into(),
                default_duration: Duration::from_secs(3600),
                max_duration: Duration::from_secs(3600),
            }),
            client_upload_timeout: Duration::from_secs(3600),
            admin_token: None,
            admin_addr: ([127, 0, 0, 1], 0).into(),
            admin_allow_open: false,
            admin_https: false,
            http_limits: Default::default(),
            processing_grace: Duration::from_secs(3600),
            web_dir: None,
            emulator_tls: false,
            missing_checks: 3,
            signature_version: Default::default(),
            webhook_retry_delays: vec![Duration::from_millis(200), Duration::from_millis(200)],
        }
    }
}

/// The service, an emulator and a media directory, all private to one test.
pub struct TestApp {
    pub db: TestDb,
    pub app: Option<RunningApp>,
    pub emulator: Option<RunningEmulator>,
    pub topology: Topology,
    pub media: tempfile::TempDir,
    pub emulator_dir: tempfile::TempDir,
    pub callback_url: String,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(TestAppOptions::default()).await
    }

    pub async fn spawn_with(options: TestAppOptions) -> Self {
        // TEST_LOG=debug shows the service's logs for a failing test.
        if let Ok(filter) = std::env::var("TEST_LOG") {
            vod_ingest::telemetry::init_logging(&filter);
        }
        let db = TestDb::new().await;
        let media = tempfile::tempdir().unwrap();
        let emulator_dir = tempfile::tempdir().unwrap();
        let http_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let http_port = http_listener.local_addr().unwrap().port();
        let callback_url = format!("http://127.0.0.1:{http_port}/callbacks/vod");
        let mut config = EmulatorConfig::new(emulator_dir.path().to_owned());
        config.callback_url = Some(callback_url.clone());
        config.callback_key = options.callback_keys.first().map(|k| Secret::from(*k));
        config.credential_ttl = options.credential_ttl;
        if options.emulator_tls {
            config.tls = Some(vod_ingest::emulator::TlsCertificate::Generated);
        }
        let emulator = vod_ingest::emulator::start(config.clone()).await.unwrap();
        let endpoint = url::Url::parse(&emulator.base_url()).unwrap();
        let topology = Topology::new(format!("test.{}", uuid::Uuid::new_v4().simple()));
        let worker = options.worker.then(|| {
            let mut w = WorkerConfig::new(vec![std::fs::canonicalize(media.path()).unwrap()]);
            w.concurrency = 3;
            w.poll_interval = Duration::from_millis(200);
            w.retry_base = Duration::from_millis(200);
            w.progress_interval = Duration::from_millis(100);
            w.remote.allow_private = options.allow_private_sources;
            (options.tune_worker)(&mut w);
            w
        });
        let app = app::start_with_listener(
            AppConfig {
                database_url: db.url.clone(),
                amqp_url: amqp_url(),
                topology: topology.clone(),
                vod: VodSettings {
                    endpoint: endpoint.clone(),
                    sts_endpoint: endpoint,
                    region: config.region.clone(),
                    access_key_id: config.access_key_id.clone(),
                    access_key_secret: config.access_key_secret.clone(),
                    security_token: None,
                    role_arn: None,
                    role_session_name: "test".into(),
                    timeout: Duration::from_secs(10),
                    rate_limits: Default::default(),
                    signature_version: options.signature_version,
                },
                worker,
                http: Some(HttpSettings {
                    addr: ([127, 0, 0, 1], http_port).into(),
                    admin_addr: options.admin_addr,
                    admin_token: options.admin_token.map(Secret::from),
                    admin_allow_open: options.admin_allow_open,
                    admin_https: options.admin_https,
                    auth: CallbackAuth {
                        urls: vec![callback_url.clone()],
                        keys: options
                            .callback_keys
                            .iter()
                            .map(|k| Secret::from(*k))
                            .collect(),
                        window: Duration::from_secs(300),
                    },
                    max_callback_bytes: vod_ingest::webhook::DEFAULT_MAX_CALLBACK_BYTES,
                    retention: Default::default(),
                    webhooks: vod_ingest::app_webhooks::WebhookSettings {
                        signing_key: Some(Secret::from(TEST_WEBHOOK_SIGNING_KEY)),
                        retry_delays: options.webhook_retry_delays.clone(),
                        timeout: Duration::from_secs(5),
                        allow_loopback: true,
                    },
                    sts: options.sts.clone(),
                    web_dir: options
                        .web_dir
                        .clone()
                        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/web").into()),
                    limits: options.http_limits,
                }),
                reconciler: options.reconcile_after.map(|grace| ReconcilerConfig {
                    grace,
                    interval: Duration::from_millis(200),
                    batch: 100,
                    client_upload_timeout: options.client_upload_timeout,
                    processing_grace: options.processing_grace,
                    missing_checks: options.missing_checks,
                }),
            },
            http_listener,
        )
        .await
        .unwrap();
        Self {
            db,
            app: Some(app),
            emulator: Some(emulator),
            topology,
            media,
            emulator_dir,
            callback_url,
            http: reqwest::Client::new(),
        }
    }

    pub fn store(&self) -> &JobStore {
        &self.app.as_ref().unwrap().store
    }

    pub fn emulator(&self) -> &RunningEmulator {
        self.emulator.as_ref().unwrap()
    }

    pub fn http_base(&self) -> String {
        format!("http://{}", self.app.as_ref().unwrap().http_addr.unwrap())
    }

    /// The admin listener (`/readyz`, `/metrics`, `/v1/jobs`).
    pub fn admin_base(&self) -> String {
        format!("http://{}", self.app.as_ref().unwrap().admin_addr.unwrap())
    }

    /// `GET /metrics` on the admin listener (no token), as text.
    pub async fn metrics(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/metrics", self.admin_base()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    /// Writes a source file under the allowed root.
    pub fn media_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.media.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::canonicalize(path).unwrap()
    }

    pub async fn publish_raw(&self, body: &[u8]) {
        let conn = queue::connect(&amqp_url(), "test-producer").await.unwrap();
        let channel = queue::confirm_channel(&conn).await.unwrap();
        self.topology.declare(&channel).await.unwrap();
        queue::publish_job(&channel, &self.topology, body)
            .await
            .unwrap();
        let _ = conn.close(200, "done").await;
    }

    pub async fn publish(&self, job: serde_json::Value) {
        self.publish_raw(&serde_json::to_vec(&job).unwrap()).await;
    }

    /// Polls the job row until `done` holds; panics with the job's last state after `timeout`.
    pub async fn wait_for(
        &self,
        job_id: &str,
        timeout: Duration,
        done: impl Fn(&Job) -> bool,
    ) -> Job {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.store().get(job_id).await.unwrap();
            if let Some(job) = &job {
                if done(job) {
                    return job.clone();
                }
            }
            if tokio::time::Instant::now() > deadline {
                panic!("job {job_id} did not reach the expected state in {timeout:?}; last seen: {job:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_for_state(&self, job_id: &str, state: JobState) -> Job {
        self.wait_for(job_id, Duration::from_secs(30), |j| j.state() == state)
            .await
    }

    /// Takes up to `n` dead letters, waiting up to `timeout` for them to arrive.
    pub async fn dead_letters(&self, n: usize, timeout: Duration) -> Vec<(Vec<u8>, String)> {
        let conn = queue::connect(&amqp_url(), "test-dlq-reader")
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n && tokio::time::Instant::now() < deadline {
            match channel
                .basic_get(
                    &self.topology.dead_letter_queue(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .unwrap()
            {
                Some(msg) => {
                    let reason = msg
                        .delivery
                        .properties
                        .headers()
                        .as_ref()
                        .and_then(|h| h.inner().get(queue::REASON_HEADER).cloned())
                        .map(|v| match v {
                            lapin::types::AMQPValue::LongString(s) => s.to_string(),
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    out.push((msg.delivery.data.clone(), reason));
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let _ = conn.close(200, "done").await;
        out
    }

    pub async fn set_faults(&self, faults: serde_json::Value) {
        let resp = self
            .http
            .put(format!("{}/_emulator/faults", self.emulator().base_url()))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "faults: {}",
            resp.text().await.unwrap()
        );
    }

    pub fn object_bytes(&self, job: &Job) -> Vec<u8> {
        let path = self.emulator().object_path(
            job.upload_bucket.as_deref().expect("bucket recorded"),
            job.upload_key.as_deref().expect("key recorded"),
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("object {} missing: {e}", path.display()))
    }

    /// Creates an API key with these limits and returns it.
    /// GETs from the public listener with `key` as the bearer token.
    pub async fn api_get(&self, path: &str, key: &str) -> ApiResponse {
        let resp = self
            .http
            .get(format!("{}{path}", self.http_base()))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        ApiResponse::read(resp).await
    }

    /// A video upload credential from `POST /v1/uploads`, which must be granted.
    pub async fn new_video_upload(&self, key: &str, size: usize) -> ApiResponse {
        let issued = self
            .api_post(
                "/v1/uploads",
                Some(key),
                serde_json::json!({"kind": "video", "title": "An app's clip", "file_name": "clip.mp4", "file_size": size}),
            )
            .await;
        assert_eq!(issued.status, 200, "{issued:#?}");
        issued
    }

    pub async fn api_key(&self, limits: KeyLimits) -> String {
        let keys = KeyStore::new(self.store().pool().clone());
        let (_, secret) = keys.create("test", &limits).await.unwrap();
        secret.expose().to_owned()
    }

    /// POSTs JSON to the public listener with `key` as the bearer token.
    pub async fn api_post(
        &self,
        path: &str,
        key: Option<&str>,
        body: serde_json::Value,
    ) -> ApiResponse {
        let mut req = self
            .http
            .post(format!("{}{path}", self.http_base()))
            .json(&body);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        ApiResponse::read(req.send().await.unwrap()).await
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        if let Some(emulator) = self.emulator.take() {
            emulator.shutdown().await;
        }
    }
}

impl Drop for TestApp {
    /// Deletes the test's queues and exchanges, even when the test failed.
    fn drop(&mut self) {
        delete_topology(&self.topology);
    }
}

/// Deletes a test's queues and exchanges when dropped (for tests without a [`TestApp`]).
pub struct DeletesTopology(pub Topology);

impl Drop for DeletesTopology {
    fn drop(&mut self) {
        delete_topology(&self.0);
    }
}

/// Deletes `topology`'s queues and exchanges from outside async code: each quorum queue holds
/// file handles on the broker, and a broker out of handles stops accepting connections.
fn delete_topology(topology: &Topology) {
    let topology = topology.clone();
    block_on_own_thread(async move {
        let cleanup = async {
            let conn = queue::connect(&amqp_url(), "test-cleanup").await.ok()?;
            let channel = conn.create_channel().await.ok()?;
            let _ = topology.delete(&channel).await;
            let _ = conn.close(200, "done").await;
            Some(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), cleanup).await;
    });
}

/// What a client app does with an upload credential: decode VOD's Base64 `UploadAddress` and
/// `UploadAuth` and PUT the bytes to OSS with them.
pub async fn client_put(upload_address_b64: &str, upload_auth_b64: &str, bytes: Vec<u8>) {
    use vod_ingest::oss::{ObjectTarget, OssClient, OssCredentials};
    let address = vod_ingest::vod::UploadAddress::decode(upload_address_b64).unwrap();
    let auth = vod_ingest::vod::UploadAuth::decode(upload_auth_b64, chrono::Utc::now()).unwrap();
    let len = bytes.len() as u64;
    let body: vod_ingest::source::ByteStream = Box::pin(futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))
    }));
    OssClient::new(reqwest::Client::new())
        .put_object_stream(
            &ObjectTarget::from_address(&address),
            &OssCredentials::from_upload_auth(&auth),
            body,
            len,
            None,
            None,
        )
        .await
        .expect("the client's PUT succeeds");
}

/// Limits that allow everything a test normally needs.
/// A VOD client signing with an STS token from `POST /v1/sts-token` (what a mobile app does).
pub fn sts_vod_client(
    emulator_base_url: &str,
    token: &serde_json::Value,
) -> vod_ingest::vod::VodClient {
    use vod_ingest::vod::{CredentialProvider, VodClient, VodConfig};
    VodClient::new(
        VodConfig {
            endpoint: url::Url::parse(emulator_base_url).unwrap(),
            region: "cn-shanghai".into(),
            timeout: Duration::from_secs(10),
        },
        CredentialProvider::sts_token(
            token["access_key_id"].as_str().unwrap(),
            Secret::new(token["access_key_secret"].as_str().unwrap()),
            Secret::new(token["security_token"].as_str().unwrap()),
        ),
        reqwest::Client::new(),
    )
}

pub fn open_limits() -> KeyLimits {
    KeyLimits {
        kinds: vec![JobKind::Video, JobKind::Image, JobKind::AttachedMedia],
        max_file_size: 1 << 30,
        requests_per_minute: 1000,
        allowed_origins: vec!["http://app.example".into()],
        allow_sts: true,
        allow_sts_refresh: false,
    }
}

/// An API answer: status, headers and the JSON body.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl ApiResponse {
    pub async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Self {
            status,
            headers,
            body,
        }
    }

    /// Asserts a refusal: status and code.
    #[track_caller]
    pub fn refused(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status, self.body["code"].as_str()),
            (status, Some(code)),
            "{self:#?}"
        );
        assert!(
            !self.body["message"].as_str().unwrap_or_default().is_empty(),
            "a refusal says why: {self:#?}"
        );
        self
    }
}

/// A `vod-ingest run` worker process for `app` (no HTTP, no reconciler): multipart above 1 MiB,
/// 256 KiB parts, `parallelism` in flight, one job at a time; `env` adds or overrides settings.
pub fn worker_process(
    app: &TestApp,
    log: &Path,
    parallelism: u64,
    env: &[(&str, &str)],
) -> KillOnDrop {
    let log = std::fs::File::create(log).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vod-ingest"));
    cmd.args(["run", "--no-http", "--no-reconciler"])
        .env("DATABASE_URL", &app.db.url)
        .env("AMQP_URL", amqp_url())
        .env("VOD_INGEST_AMQP_PREFIX", &app.topology.prefix)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "emulator-access-key-id")
        .env(
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            "emulator-access-key-secret",
        )
        .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN")
        .env_remove("ALIBABA_CLOUD_ROLE_ARN")
        .env("VOD_ENDPOINT", app.emulator().base_url())
        .env("STS_ENDPOINT", app.emulator().base_url())
        .env("VOD_INGEST_SOURCE_ROOTS", app.media.path())
        .env("VOD_INGEST_CONCURRENCY", "1")
        .env("VOD_INGEST_MULTIPART_THRESHOLD", "1M")
        .env("VOD_INGEST_PART_SIZE", "256K")
        .env("VOD_INGEST_PART_PARALLELISM", parallelism.to_string())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log);
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.spawn().map(KillOnDrop).expect("start vod-ingest run")
}

/// A child process that is killed when the test ends, even by a panic.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed as usize) % 251) as u8)
        .collect()
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Jobs as a worker leaves them, for the webhook's tests.
impl TestApp {
    /// Records a video job, claims it and stores `media_id` as its VideoId, as a worker would;
    /// returns the lease token.
    pub async fn claimed_with_media(&self, job_id: &str, media_id: &str) -> i64 {
        let store = self.store();
        let path = self.media_file(&format!("{job_id}.mp4"), b"x");
        let spec = vod_ingest::jobs::JobMessage {
            job_id: Some(job_id.into()),
            kind: "video".into(),
            title: Some("t".into()),
            source: path.display().to_string(),
            ..Default::default()
        }
        .validate(&[std::fs::canonicalize(self.media.path()).unwrap()])
        .unwrap();
        store
            .insert(&spec, vod_ingest::jobs::Origin::Queue)
            .await
            .unwrap();
        let (lease, _) = store
            .claim_job(job_id, "test", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        let address = vod_ingest::vod::UploadAddress {
            endpoint: "http://127.0.0.1:1".into(),
            bucket: "outin-test".into(),
            file_name: "sv/a/a.mp4".into(),
            object_prefix: None,
        };
        store
            .set_media(job_id, lease.token, media_id, &address, Some(1))
            .await
            .unwrap();
        lease.token
    }

    /// A video job in `uploaded` with `media_id`, as a worker leaves it.
    pub async fn uploaded_job(&self, job_id: &str, media_id: &str) {
        let token = self.claimed_with_media(job_id, media_id).await;
        self.store().mark_uploaded(job_id, token).await.unwrap();
    }
}

/// A consumer of the events exchange, bound with the given routing-key patterns.
pub struct Events {
    conn: lapin::Connection,
    consumer: lapin::Consumer,
}

impl Events {
    pub async fn listen(app: &TestApp, keys: &[&str]) -> Self {
        let conn = vod_ingest::queue::connect(&amqp_url(), "test-media-events")
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let queue = channel
            .queue_declare(
                "",
                lapin::options::QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        for key in keys {
            channel
                .queue_bind(
                    queue.name().as_str(),
                    &app.topology.events_exchange(),
                    key,
                    lapin::options::QueueBindOptions::default(),
                    lapin::types::FieldTable::default(),
                )
                .await
                .unwrap();
        }
        let consumer = channel
            .basic_consume(
                queue.name().as_str(),
                "test",
                lapin::options::BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        Self { conn, consumer }
    }

    /// Messages (routing key, body) until one has routing key `until`; panics after 60 s.
    pub async fn until(&mut self, until: &str) -> Vec<(String, serde_json::Value)> {
        let mut seen = Vec::new();
        loop {
            let delivery = tokio::time::timeout(
                Duration::from_secs(60),
                futures_util::StreamExt::next(&mut self.consumer),
            )
            .await
            .unwrap_or_else(|_| panic!("no {until} within 60 s; saw {seen:?}"))
            .unwrap()
            .unwrap();
            let key = delivery.routing_key.as_str().to_owned();
            let body: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
            let done = key == until;
            seen.push((key, body));
            if done {
                return seen;
            }
        }
    }

    pub async fn close(self) {
        let _ = self.conn.close(200, "done").await;
    }
}
