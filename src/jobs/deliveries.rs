//! The outbox of webhooks to apps (`app_webhook_deliveries`): rows are written by a trigger in
//! the transaction that records the event (migration `20261225000001_app_webhooks.sql`); the
//! dispatcher (`crate::app_webhooks`) takes the due ones under a lease and writes back what the
//! app answered.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Job, JobState, JobStore, UploadStatus};

/// A delivery taken by a dispatcher: what to send, and where.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub key_id: String,
    pub job_id: String,
    /// `upload.completed`, `media.playable`, ...
    pub event_type: String,
    /// This attempt's number, from 1.
    pub attempts: i32,
    /// The bytes of the first attempt, which every retry sends again.
    pub body: Option<String>,
    /// The key's URL now (`None`: removed, or the key was revoked, since the event).
    pub webhook_url: Option<String>,
    pub webhook_secret_generation: i32,
    pub webhook_secret_rotated_at: Option<DateTime<Utc>>,
    pub event_state: String,
    pub event_media_id: Option<String>,
    pub event_error_code: Option<String>,
    pub event_error_message: Option<String>,
    pub event_detail: Option<serde_json::Value>,
    pub event_milestone: Option<String>,
    pub event_at: DateTime<Utc>,
}

impl DueDelivery {
    /// `data` of the webhook: the upload's status ([`UploadStatus`], as `GET /v1/uploads/{id}`
    /// answers it) with the state, error and media status the event left, and for a media
    /// milestone what VOD reported for the step.
    pub fn data(&self, job: &Job) -> serde_json::Value {
        let mut status = UploadStatus::of(job);
        if let Ok(state) = self.event_state.parse::<JobState>() {
            status.state = state;
        }
        if self.event_media_id.is_some() {
            status.media_id = self.event_media_id.clone();
        }
        status.error = (status.state == JobState::Failed).then(|| super::UploadStatusError {
            code: self
                .event_error_code
                .clone()
                .unwrap_or_else(|| "Failed".into()),
            message: self.event_error_message.clone().unwrap_or_default(),
        });
        let detail = self.event_detail.clone().unwrap_or(serde_json::Value::Null);
        if self.event_milestone.is_some() {
            if let Some(media_status) = detail.get("media_status").and_then(|s| s.as_str()) {
                status.media_status = Some(media_status.to_owned());
            }
            status.playable = status.media_status.as_deref() == Some("Normal");
        }
        let mut data = serde_json::to_value(&status).expect("plain data serializes");
        if let Some(milestone) = &self.event_milestone {
            data["milestone"] = milestone.clone().into();
            data["detail"] = detail;
        }
        data["event_at"] = serde_json::to_value(self.event_at).expect("a time serializes");
        data
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The app answered 2xx.
    Delivered { status: u16 },
    /// Another answer or none; tried again at `retry_at`, or never again when `None` (dead).
    Failed {
        status: Option<u16>,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

/// A delivery as the console lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub key_id: String,
    pub job_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl JobStore {
    /// A connection that hears the outbox trigger's `NOTIFY app_webhooks` when deliveries are
    /// written, so dispatchers need not wait for their next poll.
    pub async fn listen_for_deliveries(&self) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
        let mut listener = sqlx::postgres::PgListener::connect_with(self.pool()).await?;
        listener.listen("app_webhooks").await?;
        Ok(listener)
    }

    /// Takes up to `limit` due deliveries, at most one per upload and only the first one still
    /// pending of each (so each upload's events arrive in order), leased for `lease`; counts
    /// the attempt. Another process's leased deliveries are skipped, and taken again once the
    /// lease has run out (its process died mid-delivery: at least once).
    pub async fn claim_deliveries(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<DueDelivery>, sqlx::Error> {
        sqlx::query_as(
            "WITH due AS (
                 SELECT d.id FROM app_webhook_deliveries d
                 WHERE d.state = 'pending' AND d.next_attempt_at <= now()
                   AND (d.leased_until IS NULL OR d.leased_until < now())
                   AND NOT EXISTS (SELECT 1 FROM app_webhook_deliveries e
                                   WHERE e.job_id = d.job_id AND e.state = 'pending' AND e.id < d.id)
                 ORDER BY d.next_attempt_at, d.id
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED)
             UPDATE app_webhook_deliveries d
             SET attempts = d.attempts + 1, leased_until = now() + $2, last_attempt_at = now()
             FROM due, api_keys k, ingest_job_events ev
             WHERE d.id = due.id AND k.key_id = d.key_id AND ev.id = d.event_id
             RETURNING d.id, d.key_id, d.job_id, d.event_type, d.attempts, d.body,
                       CASE WHEN k.revoked_at IS NULL THEN k.webhook_url END AS webhook_url,
                       k.webhook_secret_generation, k.webhook_secret_rotated_at,
                       ev.to_state AS event_state, ev.media_id AS event_media_id,
                       ev.error_code AS event_error_code, ev.error_message AS event_error_message,
                       ev.detail AS event_detail, ev.milestone AS event_milestone,
                       ev.at AS event_at",
        )
        .bind(limit)
        .bind(lease)
        .fetch_all(self.pool())
        .await
    }

    /// Keeps the body of a delivery's first attempt, so every later one sends the same bytes;
    /// answers the body kept (another process's, if it was first).
    pub async fn fix_delivery_body(&self, id: i64, body: &str) -> Result<String, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE app_webhook_deliveries SET body = COALESCE(body, $2) WHERE id = $1 RETURNING body",
        )
        .bind(id)
        .bind(body)
        .fetch_one(self.pool())
        .await
    }

    /// Records an attempt's outcome and releases the lease.
    pub async fn record_delivery(
        &self,
        id: i64,
        outcome: &DeliveryOutcome,
    ) -> Result<(), sqlx::Error> {
        let (state, status, error, retry_at) = match outcome {
            DeliveryOutcome::Delivered { status } => ("delivered", Some(*status), None, None),
            DeliveryOutcome::Failed {
                status,
                error,
                retry_at: Some(at),
            } => ("pending", *status, Some(error.as_str()), Some(*at)),
            DeliveryOutcome::Failed {
                status,
                error,
                retry_at: None,
            } => ("dead", *status, Some(error.as_str()), None),
        };
        sqlx::query(
            "UPDATE app_webhook_deliveries
             SET state = $2, last_status = $3, last_error = $4,
                 next_attempt_at = COALESCE($5, next_attempt_at), leased_until = NULL,
                 finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
             WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(status.map(i32::from))
        .bind(error)
        .bind(retry_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A key's latest deliveries, newest first.
    pub async fn recent_deliveries(
        &self,
        key_id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, key_id, job_id, event_type, state, attempts, next_attempt_at, last_status,
                    last_error, last_attempt_at, created_at, finished_at
             FROM app_webhook_deliveries WHERE key_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(key_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    /// Operator: send a delivery again, now, with a fresh retry schedule (same id and body, so
    /// a receiver that deduplicates by `webhook-id` sees a repeat). `None` when no such
    /// delivery exists for this key.
    pub async fn redeliver(
        &self,
        key_id: &str,
        id: i64,
    ) -> Result<Option<DeliveryRow>, sqlx::Error> {
        let row = sqlx::query_as(
            "UPDATE app_webhook_deliveries
             SET state = 'pending', attempts = 0, next_attempt_at = now(), leased_until = NULL,
                 finished_at = NULL
             WHERE id = $1 AND key_id = $2
             RETURNING id, key_id, job_id, event_type, state, attempts, next_attempt_at,
                       last_status, last_error, last_attempt_at, created_at, finished_at",
        )
        .bind(id)
        .bind(key_id)
        .fetch_optional(self.pool())
        .await?;
        if row.is_some() {
            // Wakes the dispatchers now rather than at their next poll.
            sqlx::query("SELECT pg_notify('app_webhooks', '')")
                .execute(self.pool())
                .await?;
        }
        Ok(row)
    }

    /// Deletes up to `batch` deliveries delivered or dead for longer than `older_than`
    /// (the retention sweep calls it until it answers less than `batch`).
    pub async fn prune_deliveries(
        &self,
        older_than: Duration,
        batch: i64,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM app_webhook_deliveries WHERE id IN (
                 SELECT id FROM app_webhook_deliveries
                 WHERE state <> 'pending' AND finished_at < now() - $1
                 LIMIT $2)",
        )
        .bind(older_than)
        .bind(batch)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
