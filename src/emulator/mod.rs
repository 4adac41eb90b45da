//! A local VOD + STS + OSS emulator: one HTTP listener that answers the VOD RPC API and STS
//! (`/?Action=...`, told apart by `Version`), OSS (path-style `/{bucket}/{key}` and
//! virtual-hosted `Host: {bucket}.{host}`), and two endpoints of its own for tests.
//!
//! It is only as useful as it is strict: it verifies every signature (RPC V1 and V3 (`v3`);
//! OSS V1 and V4),
//! expires credentials, scopes upload credentials to their object, and answers errors with the
//! real services' codes, HTTP statuses and bodies (see `rpc`, `oss`, `errors`).
//!
//! - VOD 2017-03-21: `CreateUploadVideo`, `CreateUploadImage`, `CreateUploadAttachedMedia`,
//!   `RefreshUploadVideo`, `GetVideoInfo`, `GetImageInfo`, the batch reads `GetVideoInfos`,
//!   `GetImageInfos`, `GetAttachedMediaInfo` (`batch`) (and unsigned `ReportUploadProgress`).
//! - STS 2015-04-01: `AssumeRole`, with the configured AccessKey; its credentials sign VOD calls,
//!   narrowed by the session `Policy` if one was given (`policy`), for DurationSeconds (900 up
//!   to `role_max_session_seconds`).
//! - OSS: PutObject, HeadObject, GetObject, DeleteObject, and multipart (`multipart`); CORS
//!   preflights and headers for browser uploads from any origin (`cors`).
//!   Objects are stored on disk under `data_dir`; bodies are streamed, never buffered whole.
//! - Uploading a media's `FileName` completes it: its upload event is sent (`callback`), and a
//!   video goes through processing (`processing`): `UploadSucc` -> `Transcoding` -> `Normal`
//!   with its analysis, snapshot, per-definition and transcode events.
//! - `GET /_emulator/stats`: [`Stats`] as JSON.
//! - `GET /_emulator/media`: every media asset (id, kind, title, status, size).
//! - `GET|PUT /_emulator/faults`: [`Faults`] as JSON; a PUT changes only the fields it names:
//!   `{"credential_ttl_seconds": 5, "callback_drop": true, "delay_ms": 200,
//!     "error_rates": {"UploadPart": 0.1},
//!     "fail_next": [{"action": "PutObject", "code": "InternalError", "status": 500}],
//!     "rate_limits": {"CreateUploadVideo": 50}}` (`throttle`)
//!   (`null` resets `credential_ttl_seconds`, `assume_role_ttl_seconds` and
//!   `transcode_delay_ms`).

mod auth;
mod batch;
mod callback;
mod cors;
mod delivery;
pub(crate) mod errors;
mod media_json;
pub(crate) mod multipart;
mod object;
mod oss;
#[cfg(feature = "fuzzing")]
pub(crate) use oss::fuzz_policy as fuzz_post_policy;
pub(crate) mod oss_v4;
pub(crate) mod params;
mod persist;
pub(crate) mod policy;
mod processing;
mod rpc;
mod state;
mod throttle;
mod tls;
mod v3;

pub use tls::TlsCertificate;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::secret::Secret;
use state::Shared;

/// How the emulator runs. Build it with [`EmulatorConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub listen: SocketAddr,
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// Lifetime of UploadAuth credentials (VOD documents 3000 s).
    pub credential_ttl: Duration,
    /// The assumed role's `MaxSessionDuration`, in seconds: AssumeRole accepts DurationSeconds
    /// from 900 up to this. RAM allows 3600..=43200 [default: 3600].
    pub role_max_session_seconds: u64,
    /// Objects are stored on disk under here.
    pub data_dir: PathBuf,
    /// Default callback URL; `UserData.MessageCallback.CallbackURL` overrides it per media.
    pub callback_url: Option<String>,
    /// Signs callbacks; when `None`, callbacks carry no `X-VOD-*` headers.
    pub callback_key: Option<Secret>,
    pub region: String,
    /// The URL clients reach the emulator at, handed out as the OSS `Endpoint` (e.g.
    /// `http://emulator:9000` in Docker Compose) [default: the listen address].
    pub public_url: Option<String>,
    /// Also answer TLS on the same port (for VOD's client SDKs, which call VOD over https).
    pub tls: Option<TlsCertificate>,
}

impl EmulatorConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_key_id: "emulator-access-key-id".to_owned(),
            access_key_secret: Secret::new("emulator-access-key-secret"),
            credential_ttl: Duration::from_secs(3000),
            role_max_session_seconds: 3600,
            data_dir,
            callback_url: None,
            callback_key: None,
            region: "cn-shanghai".to_owned(),
            public_url: None,
            tls: None,
        }
    }
}

/// Counters, as served by `GET /_emulator/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Requests per action (`CreateUploadVideo`, `AssumeRole`, `PutObject`, ...), rejected
    /// ones included.
    pub requests: BTreeMap<String, u64>,
    /// Body bytes received by PutObject and UploadPart (rejected bodies included).
    pub bytes_received: u64,
    /// Objects currently stored.
    pub objects: u64,
    /// Callbacks answered with 200.
    pub callbacks_sent: u64,
    /// Callbacks dropped: after three failed attempts, or by the `callback_drop` fault.
    pub callbacks_failed: u64,
    /// Multipart parts received (UploadPart answered 200).
    pub parts: u64,
    /// Media assets created, per kind (`video`, `image`, `attached_media`): more than one
    /// per job means a job made a duplicate asset.
    #[serde(default)]
    pub media_created: BTreeMap<String, u64>,
    /// Requests answered `Throttling.User` by the `rate_limits` fault, per action.
    #[serde(default)]
    pub throttled: BTreeMap<String, u64>,
    /// Per rate-limited action, requests accepted in each Unix second (the last 300 seconds
    /// that saw any): what a limiter test checks against the limit.
    #[serde(default)]
    pub rate_windows: BTreeMap<String, BTreeMap<u64, u32>>,
    /// Events answered with 200, per event type.
    #[serde(default)]
    pub events_sent: BTreeMap<String, u64>,
    /// Events lost, per event type: by a fault, or after three failed attempts.
    #[serde(default)]
    pub events_lost: BTreeMap<String, u64>,
    /// VOD and STS requests that passed authentication, per signature (`v1`, `v3`).
    #[serde(default)]
    pub signatures: BTreeMap<String, u64>,
    /// Failures injected by `fail_next` or `error_rates`, per action.
    #[serde(default)]
    pub injected_failures: BTreeMap<String, u64>,
}

/// Faults injected at run time with `PUT /_emulator/faults` (fields absent from the request
/// keep their value).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Overrides `EmulatorConfig::credential_ttl` for credentials issued from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_ttl_seconds: Option<u64>,
    /// Overrides the lifetime of AssumeRole credentials issued from now on, whatever their
    /// DurationSeconds (their `Expiration` says so), so that tests can see one expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role_ttl_seconds: Option<u64>,
    /// Drop every event, upload and processing ones (counted in `callbacks_failed`).
    #[serde(default)]
    pub callback_drop: bool,
    /// Deliver every event twice, as VOD does when a 200 comes too late.
    #[serde(default)]
    pub callback_duplicate: bool,
    /// Lose each event with this probability (0.0..=1.0), as if all three attempts failed.
    #[serde(default)]
    pub event_loss_rate: f64,
    /// Deliver each event twice with this probability.
    #[serde(default)]
    pub event_duplicate_rate: f64,
    /// Hold every event back this long before its first attempt.
    #[serde(default)]
    pub event_delay_ms: u64,
    /// Lose every event of these types (`TranscodeComplete`, `FileUploadComplete`, ...).
    #[serde(default)]
    pub drop_event_types: Vec<String>,
    /// Deliver a video's processing events after its processing, in random order.
    #[serde(default)]
    pub event_reorder: bool,
    /// Fail the transcoding of videos uploaded from now on: every stream and
    /// `TranscodeComplete` fail with `InvalidParameter.ResourceContentBad`, status
    /// `TranscodeFail`.
    #[serde(default)]
    pub transcode_fail: bool,
    /// Delay before answering any VOD, STS or OSS request.
    #[serde(default)]
    pub delay_ms: u64,
    /// How long a video stays `UploadSucc` before it becomes `Normal` (default 1000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcode_delay_ms: Option<u64>,
    /// Errors to answer, once each, to the next requests of the given actions (after the
    /// request was authenticated).
    #[serde(default)]
    pub fail_next: Vec<InjectedFailure>,
    /// Per action, the probability (0.0..=1.0) of answering `ServiceUnavailable` (503).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_rates: BTreeMap<String, f64>,
    /// Corrupt the next N parts "in transit": one byte of what is stored is flipped, and the
    /// stored part's ETag and CRC-64 (which UploadPart returns) describe the corrupted bytes.
    #[serde(default)]
    pub corrupt_next_parts: u32,
    /// Per action, the account's calls per second; beyond it the answer is `Throttling.User`
    /// (HTTP 400), as VOD answers (`throttle`). Empty: no limit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rate_limits: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectedFailure {
    /// `PutObject`, `HeadObject`, `GetObject`, `CreateUploadVideo`, `AssumeRole`, ...
    pub action: String,
    pub code: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A field that may be absent (keep), `null` (reset) or a value (set).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Unknown fields are refused, so that a misspelt fault is not silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsPatch {
    #[serde(default, deserialize_with = "double_option")]
    credential_ttl_seconds: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double_option")]
    assume_role_ttl_seconds: Option<Option<u64>>,
    callback_drop: Option<bool>,
    callback_duplicate: Option<bool>,
    event_loss_rate: Option<f64>,
    event_duplicate_rate: Option<f64>,
    event_delay_ms: Option<u64>,
    drop_event_types: Option<Vec<String>>,
    event_reorder: Option<bool>,
    transcode_fail: Option<bool>,
    delay_ms: Option<u64>,
    #[serde(default, deserialize_with = "double_option")]
    transcode_delay_ms: Option<Option<u64>>,
    fail_next: Option<Vec<InjectedFailure>>,
    error_rates: Option<BTreeMap<String, f64>>,
    corrupt_next_parts: Option<u32>,
    rate_limits: Option<BTreeMap<String, u32>>,
}

impl Shared {
    /// The failure to inject into this request of `action`, if any: the first queued one,
    /// else one drawn at the action's error rate.
    pub(crate) fn take_failure(&self, action: &str) -> Option<InjectedFailure> {
        let mut inner = self.lock();
        if let Some(pos) = inner
            .faults
            .fail_next
            .iter()
            .position(|f| f.action == action)
        {
            let failure = inner.faults.fail_next.remove(pos);
            *inner
                .stats
                .injected_failures
                .entry(action.to_owned())
                .or_default() += 1;
            return Some(failure);
        }
        let rate = inner.faults.error_rates.get(action).copied().unwrap_or(0.0);
        let failure = (rate > 0.0 && rand::random::<f64>() < rate).then(|| InjectedFailure {
            action: action.to_owned(),
            code: "ServiceUnavailable".to_owned(),
            status: 503,
            message: None,
        });
        if failure.is_some() {
            *inner
                .stats
                .injected_failures
                .entry(action.to_owned())
                .or_default() += 1;
        }
        failure
    }
}

/// A running emulator. Stops on [`RunningEmulator::shutdown`] or when dropped.
pub struct RunningEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tls_cert: Option<PathBuf>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the VOD/STS endpoint and the OSS endpoint in UploadAddress.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// With TLS on, the certificate clients should trust (PEM).
    pub fn tls_cert_path(&self) -> Option<&std::path::Path> {
        self.tls_cert.as_deref()
    }

    /// Where a stored object's bytes are on disk.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.shared.object_path(bucket, key)
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// What the emulator recorded for a media (title, AppId, TemplateGroupId, UserData, ...),
    /// as JSON: for tests that check what reached "VOD". In-process only: never served.
    pub fn media_record(&self, media_id: &str) -> Option<serde_json::Value> {
        // A read-only borrow: it does not mark the state for saving.
        let state = self.shared.lock();
        state
            .media
            .get(media_id)
            .and_then(|m| serde_json::to_value(m).ok())
    }

    /// The secrets it handed out most recently (STS AccessKey secrets and tokens, UploadAuth
    /// strings), for tests that prove they leak nowhere. In-process only: never served.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared.lock().issued_secrets.iter().cloned().collect()
    }

    /// Stops accepting connections and waits (at most 5 s) for open ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn base_url_for(addr: SocketAddr) -> String {
    // A wildcard listen address is not something a client can connect to.
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

struct Bound {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<tls::Tls>,
}

async fn bind(config: EmulatorConfig) -> anyhow::Result<Bound> {
    if !(3600..=43200).contains(&config.role_max_session_seconds) {
        anyhow::bail!(
            "the role's maximum session duration must be 3600 to 43200 seconds (RAM's range for \
             MaxSessionDuration), not {}",
            config.role_max_session_seconds
        );
    }
    tokio::fs::create_dir_all(config.data_dir.join("tmp")).await?;
    tokio::fs::create_dir_all(config.data_dir.join("objects")).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let base_url = config
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| base_url_for(addr));
    let (tls_source, region, data_dir) = (
        config.tls.clone(),
        config.region.clone(),
        config.data_dir.clone(),
    );
    let shared = Arc::new(persist::open(config, base_url.clone())?);
    let tls = match tls_source {
        Some(source) => {
            let names = tls::certificate_names(&region, &base_url, addr, &shared.bucket);
            Some(tls::load(&source, &data_dir, names)?)
        }
        None => None,
    };
    Ok(Bound {
        listener,
        shared,
        tls,
    })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

/// Serves until `shutdown`, over plain HTTP or, with TLS, both on the one port.
async fn run_server(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<tls::Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(tls) => tls::serve(listener, router(shared), tls, shutdown).await,
        None => {
            axum::serve(listener, router(shared))
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Binds (port 0 is fine), spawns the server and returns at once.
pub async fn start(config: EmulatorConfig) -> anyhow::Result<RunningEmulator> {
    let Bound {
        listener,
        shared,
        tls,
    } = bind(config).await?;
    let addr = listener.local_addr()?;
    let tls_cert = tls.as_ref().map(|t| t.cert_path.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let (save_stop, save_stopped) = tokio::sync::watch::channel(false);
    let saver = tokio::spawn(persist::run(shared.clone(), save_stopped));
    let server_shared = shared.clone();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = run_server(listener, server_shared, tls, shutdown).await {
            tracing::error!(error = %e, "emulator server stopped with an error");
        }
        // One last save of what the final requests changed.
        let _ = save_stop.send(true);
        let _ = saver.await;
    });
    tracing::info!(%addr, bucket = %shared.bucket, "emulator listening");
    Ok(RunningEmulator {
        addr,
        shared,
        tls_cert,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Runs the emulator until `shutdown` completes (for `vod-ingest emulator`).
pub async fn serve(
    config: EmulatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Bound {
        listener,
        shared,
        tls,
    } = bind(config).await?;
    match &tls {
        Some(tls) => tracing::info!(
            addr = %listener.local_addr()?,
            bucket = %shared.bucket,
            certificate = %tls.cert_path.display(),
            "emulator listening (HTTP and HTTPS on one port)"
        ),
        None => {
            tracing::info!(addr = %listener.local_addr()?, bucket = %shared.bucket, "emulator listening")
        }
    }
    let (save_stop, save_stopped) = tokio::sync::watch::channel(false);
    let saver = tokio::spawn(persist::run(shared.clone(), save_stopped));
    let result = run_server(listener, shared, tls, shutdown).await;
    let _ = save_stop.send(true);
    let _ = saver.await;
    result?;
    Ok(())
}

/// Routes by path and Host: the emulator's own endpoints, OSS virtual-hosted, VOD/STS RPC on
/// `/`, and everything else as OSS path-style.
async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/_emulator/stats" => return stats_endpoint(&shared, req.method()),
        "/_emulator/faults" => return faults_endpoint(&shared, req).await,
        "/_emulator/media" => return media_endpoint(&shared, req.method()),
        _ => {}
    }
    let delay = shared.lock().faults.delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Some(bucket) = virtual_hosted_bucket(&shared, &host) {
        return oss::handle(shared, req, oss::Target::VirtualHosted { bucket, host }).await;
    }
    let oss_auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| a.starts_with("OSS"));
    if path == "/" && !oss_auth {
        return rpc::handle(shared, req).await;
    }
    oss::handle(shared, req, oss::Target::PathStyle { host }).await
}

/// `Host: {bucket}.{rest}` names a bucket when its first label is one of ours.
fn virtual_hosted_bucket(shared: &Shared, host: &str) -> Option<String> {
    let name = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let (first, rest) = name.split_once('.')?;
    (!rest.is_empty() && shared.known_bucket(first)).then(|| first.to_owned())
}

/// Every media asset the emulator holds (id, kind, title, status, size): what a test or the
/// chaos run compares with the jobs, e.g. to find a job that created two assets.
fn media_endpoint(shared: &Shared, method: &Method) -> Response {
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let inner = shared.lock();
    let mut media: Vec<serde_json::Value> = inner
        .media
        .values()
        .map(|m| {
            serde_json::json!({
                "id": m.id,
                "kind": match m.kind {
                    state::MediaKind::Video => "video",
                    state::MediaKind::Image => "image",
                    state::MediaKind::Attached => "attached_media",
                },
                "title": m.title,
                "status": m.status,
                "size": m.size,
            })
        })
        .collect();
    media.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    axum::Json(media).into_response()
}

fn stats_endpoint(shared: &Shared, method: &Method) -> Response {
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    axum::Json(shared.lock().stats.clone()).into_response()
}

async fn faults_endpoint(shared: &Shared, req: Request) -> Response {
    match *req.method() {
        Method::GET => axum::Json(shared.lock().faults.clone()).into_response(),
        Method::PUT | Method::POST => {
            let body = match axum::body::to_bytes(req.into_body(), 1 << 20).await {
                Ok(b) => b,
                Err(_) => return (StatusCode::BAD_REQUEST, "body too large").into_response(),
            };
            let patch: FaultsPatch = match serde_json::from_slice(&body) {
                Ok(p) => p,
                // serde names the unknown field and lists the valid ones.
                Err(e) => {
                    let body = serde_json::json!({
                        "code": "InvalidFaults",
                        "message": format!("PUT /_emulator/faults: {e}"),
                    });
                    return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
                }
            };
            let mut inner = shared.lock();
            let f = &mut inner.faults;
            if let Some(v) = patch.credential_ttl_seconds {
                f.credential_ttl_seconds = v;
            }
            if let Some(v) = patch.assume_role_ttl_seconds {
                f.assume_role_ttl_seconds = v;
            }
            if let Some(v) = patch.callback_drop {
                f.callback_drop = v;
            }
            if let Some(v) = patch.callback_duplicate {
                f.callback_duplicate = v;
            }
            for (rate, name) in [
                (patch.event_loss_rate, "event_loss_rate"),
                (patch.event_duplicate_rate, "event_duplicate_rate"),
            ] {
                if rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
                    return (
                        StatusCode::BAD_REQUEST,
                        format!("{name} is a probability: give a number from 0.0 to 1.0"),
                    )
                        .into_response();
                }
            }
            if let Some(v) = patch.event_loss_rate {
                f.event_loss_rate = v;
            }
            if let Some(v) = patch.event_duplicate_rate {
                f.event_duplicate_rate = v;
            }
            if let Some(v) = patch.event_delay_ms {
                f.event_delay_ms = v;
            }
            if let Some(v) = patch.drop_event_types {
                f.drop_event_types = v;
            }
            if let Some(v) = patch.event_reorder {
                f.event_reorder = v;
            }
            if let Some(v) = patch.transcode_fail {
                f.transcode_fail = v;
            }
            if let Some(v) = patch.delay_ms {
                f.delay_ms = v;
            }
            if let Some(v) = patch.transcode_delay_ms {
                f.transcode_delay_ms = v;
            }
            if let Some(v) = patch.fail_next {
                f.fail_next = v;
            }
            if let Some(v) = patch.error_rates {
                f.error_rates = v;
            }
            if let Some(v) = patch.corrupt_next_parts {
                f.corrupt_next_parts = v;
            }
            if let Some(v) = patch.rate_limits {
                f.rate_limits = v;
            }
            axum::Json(f.clone()).into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}
