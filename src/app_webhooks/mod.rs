//! Webhooks to apps: the events of a key's uploads (`upload.completed`, `upload.failed`,
//! `upload.cancelled`, `media.<milestone>`), POSTed to the key's webhook URL and signed as the
//! Standard Webhooks specification says (`crate::sign::standard_webhooks`).
//!
//! Deliveries come from an outbox in PostgreSQL that the events' own transactions fill
//! (`crate::jobs::DueDelivery`), so a restart loses none; every process with the HTTP
//! listeners runs a dispatcher, and they share the work through leases. Each upload's events
//! go out in order; a failed one is retried with backoff (about 27 hours by default) before
//! it is marked dead, and the upload's later events wait for it. Nothing here runs in a
//! request's path.

mod keys;
mod target;

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt as _;
use rand::Rng as _;
use tokio_util::sync::CancellationToken;

pub use keys::{CheckedUrl, KeyWebhooks, WebhookSet, WebhookSetupError};
pub use target::{TargetError, TargetPolicy};

use crate::jobs::{DeliveryOutcome, DueDelivery, JobStore};
use crate::secret::Secret;
use crate::sign::standard_webhooks::{signature_header, WebhookSecret};

/// The retry schedule of Standard Webhooks' reference implementations: after the first
/// attempt, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (27.6 hours in all), each ±10 %.
pub const DEFAULT_RETRY_DELAYS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// How long after a rotation deliveries carry a signature with the previous secret too.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(86400);

/// Deliveries one pass takes (one per upload), and how many are in flight at once.
const BATCH: i64 = 32;
const IN_FLIGHT: usize = 16;

/// How webhooks are signed and sent.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Derives every key's webhook secret (`VOD_INGEST_WEBHOOK_SIGNING_KEY`); without it no
    /// key may have a webhook URL and nothing is sent.
    pub signing_key: Option<Secret>,
    /// Waits between attempts; a delivery is dead after `retry_delays.len() + 1` attempts.
    pub retry_delays: Vec<Duration>,
    /// For one attempt: connecting, sending and the answer's headers.
    pub timeout: Duration,
    /// Receivers on loopback addresses are allowed (`VOD_INGEST_WEBHOOK_ALLOW_LOOPBACK`).
    pub allow_loopback: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            signing_key: None,
            retry_delays: DEFAULT_RETRY_DELAYS.to_vec(),
            timeout: Duration::from_secs(10),
            allow_loopback: false,
        }
    }
}

/// A webhook signing key too short to derive secrets from.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("VOD_INGEST_WEBHOOK_SIGNING_KEY must be at least 32 characters: generate one with `openssl rand -base64 32` and give every process the same")]
pub struct WeakSigningKey;

/// Refuses a signing key that is too short.
pub fn check_signing_key(key: &Secret) -> Result<(), WeakSigningKey> {
    if key.expose().trim().len() < 32 {
        return Err(WeakSigningKey);
    }
    Ok(())
}

/// The secrets a key's deliveries are signed with now: its current one, and for a day after a
/// rotation the previous one too.
pub fn current_secrets(
    signing_key: &Secret,
    key_id: &str,
    generation: i32,
    rotated_at: Option<chrono::DateTime<Utc>>,
) -> Vec<WebhookSecret> {
    let mut secrets = vec![WebhookSecret::derive(signing_key, key_id, generation)];
    let overlap = chrono::Duration::from_std(ROTATION_OVERLAP).expect("a day fits");
    if generation > 0 && rotated_at.is_some_and(|at| Utc::now() - at < overlap) {
        secrets.push(WebhookSecret::derive(signing_key, key_id, generation - 1));
    }
    secrets
}

/// Sends the outbox's deliveries until `shutdown`.
pub struct Dispatcher {
    store: JobStore,
    client: reqwest::Client,
    policy: TargetPolicy,
    signing_key: Secret,
    retry_delays: Vec<Duration>,
    lease: Duration,
}

impl Dispatcher {
    pub fn new(
        store: JobStore,
        settings: &WebhookSettings,
        signing_key: Secret,
        policy: TargetPolicy,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            // A redirect would lead the service's request wherever the receiver likes.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(policy.resolver())
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .timeout(settings.timeout)
            .user_agent(concat!("vod-ingest-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            store,
            client,
            policy,
            signing_key,
            retry_delays: settings.retry_delays.clone(),
            lease: settings.timeout + Duration::from_secs(30),
        })
    }

    pub async fn run(self, shutdown: CancellationToken) {
        // Woken by the trigger's NOTIFY at once; polled every second regardless (retries come
        // due, and the listener may be down).
        let mut listener = match self.store.listen_for_deliveries().await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for app webhooks; polling every second");
                None
            }
        };
        loop {
            let taken = match self.store.claim_deliveries(BATCH, self.lease).await {
                Ok(due) => {
                    let n = due.len();
                    futures_util::stream::iter(due)
                        .for_each_concurrent(IN_FLIGHT, |d| self.deliver(d))
                        .await;
                    n
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the app webhook outbox; will try again");
                    0
                }
            };
            if taken as i64 == BATCH {
                continue;
            }
            let wait = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wait => {}
                woken = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                } => if let Err(e) = woken {
                    tracing::debug!(error = %e, "the app webhook listener reconnects");
                },
            }
        }
    }

    /// One attempt of one delivery, and its outcome written back.
    async fn deliver(&self, due: DueDelivery) {
        let outcome = match self.attempt(&due).await {
            Ok(status) => DeliveryOutcome::Delivered { status },
            Err(failure) => {
                let retry_at = (!failure.final_)
                    .then(|| self.retry_delays.get(due.attempts as usize - 1))
                    .flatten()
                    .map(|delay| {
                        let jittered = delay.mul_f64(rand::thread_rng().gen_range(0.9..1.1));
                        Utc::now() + chrono::Duration::from_std(jittered).unwrap_or_default()
                    });
                DeliveryOutcome::Failed {
                    status: failure.status,
                    error: failure.error,
                    retry_at,
                }
            }
        };
        let label = match &outcome {
            DeliveryOutcome::Delivered { .. } => "delivered",
            DeliveryOutcome::Failed {
                retry_at: Some(_), ..
            } => "failed",
            DeliveryOutcome::Failed { retry_at: None, .. } => "dead",
        };
        metrics::counter!("vod_ingest_app_webhook_deliveries_total", "outcome" => label)
            .increment(1);
        if let DeliveryOutcome::Failed { error, .. } = &outcome {
            tracing::info!(delivery = due.id, key_id = %due.key_id, job_id = %due.job_id,
                event = %due.event_type, attempt = due.attempts, outcome = label, error = %error,
                "app webhook not delivered");
        }
        if let Err(e) = self.store.record_delivery(due.id, &outcome).await {
            // The lease runs out and the delivery is taken again: at least once.
            tracing::warn!(error = %e, delivery = due.id, "could not record an app webhook attempt; it will be sent again");
        }
    }

    async fn attempt(&self, due: &DueDelivery) -> Result<u16, Failure> {
        let Some(raw_url) = due.webhook_url.as_deref() else {
            return Err(Failure::final_(
                "the key has no webhook URL any more (removed, or the key was revoked)",
            ));
        };
        let url = self.policy.parse(raw_url).map_err(Failure::target)?;
        self.policy.check(&url).await.map_err(Failure::target)?;
        let body = match &due.body {
            Some(body) => body.clone(),
            None => self.first_body(due).await?,
        };
        let id = format!("msg_{}", due.id);
        let timestamp = Utc::now().timestamp();
        let secrets = current_secrets(
            &self.signing_key,
            &due.key_id,
            due.webhook_secret_generation,
            due.webhook_secret_rotated_at,
        );
        let signature = signature_header(&secrets, &id, timestamp, body.as_bytes());
        let answer = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| Failure {
                status: None,
                error: describe(&e),
                final_: false,
            })?;
        let status = answer.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(Failure {
                status: Some(status.as_u16()),
                error: if status.is_redirection() {
                    format!("answered {status}; redirects are not followed: give the final URL")
                } else {
                    format!("answered {status}")
                },
                final_: false,
            })
        }
    }

    /// Builds the body of a delivery's first attempt and keeps it for the retries.
    async fn first_body(&self, due: &DueDelivery) -> Result<String, Failure> {
        let store_failed = |e: sqlx::Error| Failure {
            status: None,
            error: format!("the job store is unavailable: {e}"),
            final_: false,
        };
        let job = self
            .store
            .get(&due.job_id)
            .await
            .map_err(store_failed)?
            .ok_or_else(|| Failure::final_("the upload's job no longer exists"))?;
        let payload = serde_json::json!({
            "type": due.event_type,
            "timestamp": due.event_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": due.data(&job),
        });
        let body = serde_json::to_string(&payload).expect("plain data serializes");
        self.store
            .fix_delivery_body(due.id, &body)
            .await
            .map_err(store_failed)
    }
}

/// Why an attempt did not deliver.
struct Failure {
    status: Option<u16>,
    error: String,
    /// No later attempt can succeed.
    final_: bool,
}

impl Failure {
    fn final_(error: &str) -> Self {
        Self {
            status: None,
            error: error.to_owned(),
            final_: true,
        }
    }

    fn target(e: TargetError) -> Self {
        Self {
            status: None,
            error: e.to_string(),
            // Retried like any failure: a name may resolve elsewhere later, and an operator
            // may correct the URL in the meantime.
            final_: false,
        }
    }
}

/// A transport error in a few words (reqwest's own text names the URL, which the console
/// shows beside it anyway).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    }
}
