//! The store room for who may ask: API keys for client apps (random, shown once, stored only
//! as a SHA-256 hash, each with its own limits and settings), their per-minute request counts
//! (in PostgreSQL, so every process serving the API shares one budget per key), the audit of
//! what each key was handed, and the console's sessions ([`sessions`]).

pub mod sessions;

use chrono::{DateTime, Utc};
use rand::Rng as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::jobs::JobKind;
use crate::secret::Secret;

/// Every key starts with this, so a leaked one is recognisable (secret scanners, logs).
const PREFIX: &str = "vik_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyLimits {
    pub kinds: Vec<JobKind>,
    /// Largest file, in bytes, it may upload (declared at issue, checked again at completion).
    pub max_file_size: u64,
    pub requests_per_minute: u32,
    /// Browser origins (`https://app.example.com`) allowed to call with it; `*` for any.
    pub allowed_origins: Vec<String>,
    /// Whether it may get STS tokens (`POST /v1/sts-token`).
    pub allow_sts: bool,
    /// Whether its STS tokens may call `RefreshUploadVideo`. Off by default: that action takes
    /// any VideoId and hands out a credential that overwrites the video's source file.
    pub allow_sts_refresh: bool,
}

impl KeyLimits {
    /// Limits from what an operator typed (the CLI's flags, the console's form), checked:
    /// the error starts with the value's name as the CLI spells its flag (without `--`) and
    /// says what is expected.
    pub fn parse(
        kinds: &[String],
        max_file_size: u64,
        requests_per_minute: u32,
        origins: &[String],
        allow_sts: bool,
    ) -> Result<Self, InvalidKeySetting> {
        let kinds = kinds
            .iter()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
            .map(|k| k.parse().map_err(InvalidKeySetting::Kind))
            .collect::<Result<Vec<JobKind>, _>>()?;
        if kinds.is_empty() {
            return Err(InvalidKeySetting::NoKinds);
        }
        if requests_per_minute == 0 {
            return Err(InvalidKeySetting::NoRequests);
        }
        if max_file_size == 0 {
            return Err(InvalidKeySetting::NoBytes);
        }
        let allowed_origins: Vec<String> = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        for o in &allowed_origins {
            let ok = o == "*"
                || url::Url::parse(o)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/");
            if !ok {
                return Err(InvalidKeySetting::NotAnOrigin(o.clone()));
            }
        }
        Ok(Self {
            kinds,
            max_file_size,
            requests_per_minute,
            allowed_origins,
            allow_sts,
            allow_sts_refresh: false,
        })
    }

    /// Lets (or not) the key's STS tokens call `RefreshUploadVideo`; only for a key that gets
    /// tokens and uploads videos.
    pub fn with_sts_refresh(mut self, allow: bool) -> Result<Self, InvalidKeySetting> {
        if allow && !(self.allow_sts && self.kinds.contains(&JobKind::Video)) {
            return Err(InvalidKeySetting::StsRefreshNeedsStsVideo);
        }
        self.allow_sts_refresh = allow;
        Ok(self)
    }
}

/// A key limit or setting an operator typed that cannot be used; the message names the value
/// as the CLI spells its flag (without `--`) and says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKeySetting {
    #[error("kinds: {0}")]
    Kind(crate::jobs::UnknownName),
    #[error("kinds is empty: name at least one of video, image, attached_media")]
    NoKinds,
    #[error("requests-per-minute must be at least 1")]
    NoRequests,
    #[error("max-file-size must be at least 1 byte")]
    NoBytes,
    #[error("origin {0:?} is not an origin: give scheme, host and port only (https://app.example.com), or *")]
    NotAnOrigin(String),
    #[error("allow-sts-refresh needs allow-sts and the kind video")]
    StsRefreshNeedsStsVideo,
    #[error(
        "{name} {value:?} is not a VOD id: use up to 128 of A-Z, a-z, 0-9, '-', '_', '.', ':'"
    )]
    NotAVodId { name: &'static str, value: String },
    #[error("callback-url {0:?} is not an http(s) URL (at most 1024 characters)")]
    NotACallbackUrl(String),
    #[error("storage-location {0:?} is not a storage address")]
    NotAStorageAddress(String),
}

/// The VOD parameters that act with the service's authority: which app's storage, which
/// workflow or transcoding template (costs), where VOD sends its callbacks. An operator sets
/// them per key; a client that names one is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeySettings {
    pub app_id: Option<String>,
    pub workflow_id: Option<String>,
    pub template_group_id: Option<String>,
    pub storage_location: Option<String>,
    /// `MessageCallback.CallbackURL` for this key's uploads.
    pub callback_url: Option<String>,
}

impl KeySettings {
    /// The request fields these settings replace, as clients spell them.
    pub const FIELDS: [&'static str; 5] = [
        "app_id",
        "workflow_id",
        "template_group_id",
        "storage_location",
        "callback_url",
    ];

    /// Settings from what an operator typed; empty values mean "not set". The error names the
    /// value as the CLI spells its flag (without `--`).
    pub fn parse(
        app_id: Option<&str>,
        workflow_id: Option<&str>,
        template_group_id: Option<&str>,
        storage_location: Option<&str>,
        callback_url: Option<&str>,
    ) -> Result<Self, InvalidKeySetting> {
        fn id(
            name: &'static str,
            value: Option<&str>,
        ) -> Result<Option<String>, InvalidKeySetting> {
            let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            let ok = v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
            if ok {
                Ok(Some(v.to_owned()))
            } else {
                Err(InvalidKeySetting::NotAVodId {
                    name,
                    value: v.to_owned(),
                })
            }
        }
        let callback_url = match callback_url.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => {
                let ok = url::Url::parse(v)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !ok || v.len() > 1024 {
                    return Err(InvalidKeySetting::NotACallbackUrl(v.to_owned()));
                }
                Some(v.to_owned())
            }
        };
        Ok(Self {
            app_id: id("app-id", app_id)?,
            workflow_id: id("workflow-id", workflow_id)?,
            template_group_id: id("template-group-id", template_group_id)?,
            storage_location: storage_location
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    if v.len() <= 256 && !v.contains(char::is_whitespace) {
                        Ok(v.to_owned())
                    } else {
                        Err(InvalidKeySetting::NotAStorageAddress(v.to_owned()))
                    }
                })
                .transpose()?,
            callback_url,
        })
    }

    /// The settings as `name=value` pairs, for lists.
    pub fn describe(&self) -> Vec<String> {
        [
            ("app", &self.app_id),
            ("workflow", &self.workflow_id),
            ("template group", &self.template_group_id),
            ("storage", &self.storage_location),
            ("callback", &self.callback_url),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| format!("{name} {v}")))
        .collect()
    }
}

/// What `api-key update` changes: each `Some` replaces the stored value (an empty string
/// clears a setting).
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub allow_sts_refresh: Option<bool>,
    pub app_id: Option<String>,
    pub workflow_id: Option<String>,
    pub template_group_id: Option<String>,
    pub storage_location: Option<String>,
    pub callback_url: Option<String>,
}

/// What a key was used for, from `api_audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyUsage {
    /// Credentials, refreshes and tokens handed out.
    pub issued: i64,
    /// Of those, in the last 24 hours.
    pub issued_last_day: i64,
    /// Requests the key's limits refused.
    pub refused: i64,
    pub last_issued_at: Option<DateTime<Utc>>,
}

/// A stored key, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub key_id: String,
    pub name: String,
    #[serde(flatten)]
    pub limits: KeyLimits,
    pub settings: KeySettings,
    /// Where the key's uploads' events are POSTed, and which secret signs them.
    pub webhook: KeyWebhook,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether a browser page on `origin` may call with this key. `null` (a sandboxed frame,
    /// a `file:` page, a redirect across origins) is an opaque origin that any page can take
    /// on, so no entry allows it, `*` included.
    pub fn allows_origin(&self, origin: &str) -> bool {
        if origin.trim().eq_ignore_ascii_case("null") {
            return false;
        }
        self.limits
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    key_id: String,
    name: String,
    secret_sha256: String,
    kinds: Vec<String>,
    max_file_size: i64,
    requests_per_minute: i32,
    allowed_origins: Vec<String>,
    allow_sts: bool,
    allow_sts_refresh: bool,
    app_id: Option<String>,
    workflow_id: Option<String>,
    template_group_id: Option<String>,
    storage_location: Option<String>,
    callback_url: Option<String>,
    webhook_url: Option<String>,
    webhook_secret_generation: i32,
    webhook_secret_rotated_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl Row {
    fn into_key(self) -> ApiKey {
        ApiKey {
            key_id: self.key_id,
            name: self.name,
            limits: KeyLimits {
                kinds: self.kinds.iter().filter_map(|k| k.parse().ok()).collect(),
                max_file_size: self.max_file_size.max(0) as u64,
                requests_per_minute: self.requests_per_minute.max(0) as u32,
                allowed_origins: self.allowed_origins,
                allow_sts: self.allow_sts,
                allow_sts_refresh: self.allow_sts_refresh,
            },
            settings: KeySettings {
                app_id: self.app_id,
                workflow_id: self.workflow_id,
                template_group_id: self.template_group_id,
                storage_location: self.storage_location,
                callback_url: self.callback_url,
            },
            webhook: KeyWebhook {
                url: self.webhook_url,
                secret_generation: self.webhook_secret_generation,
                secret_rotated_at: self.webhook_secret_rotated_at,
            },
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// A key's webhook: its URL (none: no webhooks), and the generation of its signing secret
/// (the secret itself is derived, never stored: `crate::sign::standard_webhooks`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyWebhook {
    pub url: Option<String>,
    pub secret_generation: i32,
    pub secret_rotated_at: Option<DateTime<Utc>>,
}

/// Why a request's key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRejection {
    Missing,
    /// Malformed, unknown, or the secret does not match.
    Invalid,
    Revoked,
}

/// Whether a request fits in its key's per-minute budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Within,
    /// Over budget; retry after this many seconds (the start of the next minute).
    Exceeded {
        retry_after_secs: u64,
    },
}

fn sha256_hex(value: &str) -> String {
    hex::encode(presented_sha256(value))
}

/// The SHA-256 of a key as presented: what is stored, and what [`crate::api::LocalBudget`]
/// knows an exhausted key by.
pub fn presented_sha256(presented: &str) -> [u8; 32] {
    Sha256::digest(presented.trim().as_bytes()).into()
}

fn random_chars(n: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `vik_<key id>_<secret>` split into its id, if it has that shape.
fn key_id_of(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let well_formed = id.len() == ID_LEN
        && secret.len() == SECRET_LEN
        && id
            .bytes()
            .chain(secret.bytes())
            .all(|b| ALPHABET.contains(&b));
    well_formed.then_some(id)
}

/// The `api_keys` table.
#[derive(Debug, Clone)]
pub struct KeyStore {
    pool: PgPool,
}

impl KeyStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Creates a key without VOD settings; see [`KeyStore::create_with`].
    pub async fn create(
        &self,
        name: &str,
        limits: &KeyLimits,
    ) -> Result<(ApiKey, Secret), sqlx::Error> {
        self.create_with(name, limits, &KeySettings::default())
            .await
    }

    /// Creates a key; the returned secret is the only copy there will ever be.
    pub async fn create_with(
        &self,
        name: &str,
        limits: &KeyLimits,
        settings: &KeySettings,
    ) -> Result<(ApiKey, Secret), sqlx::Error> {
        let key_id = random_chars(ID_LEN);
        let full = Secret::new(format!("{PREFIX}{key_id}_{}", random_chars(SECRET_LEN)));
        let kinds: Vec<&str> = limits.kinds.iter().map(|k| k.as_str()).collect();
        let row: Row = sqlx::query_as(
            "INSERT INTO api_keys (key_id, name, secret_sha256, kinds, max_file_size,
                 requests_per_minute, allowed_origins, allow_sts, allow_sts_refresh,
                 app_id, workflow_id, template_group_id, storage_location, callback_url)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *",
        )
        .bind(&key_id)
        .bind(name)
        .bind(sha256_hex(full.expose()))
        .bind(&kinds)
        .bind(limits.max_file_size.min(i64::MAX as u64) as i64)
        .bind(limits.requests_per_minute.min(i32::MAX as u32) as i32)
        .bind(&limits.allowed_origins)
        .bind(limits.allow_sts)
        .bind(limits.allow_sts_refresh)
        .bind(&settings.app_id)
        .bind(&settings.workflow_id)
        .bind(&settings.template_group_id)
        .bind(&settings.storage_location)
        .bind(&settings.callback_url)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.into_key(), full))
    }

    /// Changes a key's settings; `None` when there is no such key. The caller has checked the
    /// values ([`KeySettings::parse`]); `allow_sts_refresh` is kept only where the key may get
    /// tokens for videos.
    pub async fn update(
        &self,
        key_id: &str,
        update: &KeyUpdate,
    ) -> Result<Option<ApiKey>, sqlx::Error> {
        let clear = |v: &Option<String>| v.as_deref().map(str::trim).map(str::to_owned);
        let row: Option<Row> = sqlx::query_as(
            "UPDATE api_keys SET
                 allow_sts_refresh = COALESCE($2, allow_sts_refresh)
                     AND allow_sts AND 'video' = ANY (kinds),
                 app_id = CASE WHEN $3::text IS NULL THEN app_id ELSE NULLIF($3, '') END,
                 workflow_id = CASE WHEN $4::text IS NULL THEN workflow_id ELSE NULLIF($4, '') END,
                 template_group_id = CASE WHEN $5::text IS NULL THEN template_group_id ELSE NULLIF($5, '') END,
                 storage_location = CASE WHEN $6::text IS NULL THEN storage_location ELSE NULLIF($6, '') END,
                 callback_url = CASE WHEN $7::text IS NULL THEN callback_url ELSE NULLIF($7, '') END
             WHERE key_id = $1 RETURNING *",
        )
        .bind(key_id)
        .bind(update.allow_sts_refresh)
        .bind(clear(&update.app_id))
        .bind(clear(&update.workflow_id))
        .bind(clear(&update.template_group_id))
        .bind(clear(&update.storage_location))
        .bind(clear(&update.callback_url))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Row::into_key))
    }

    /// Sets (or with `None` removes) a key's webhook URL, checked by the caller
    /// (`crate::app_webhooks::KeyWebhooks`); `None` when there is no such key.
    pub async fn set_webhook_url(
        &self,
        key_id: &str,
        url: Option<&str>,
    ) -> Result<Option<ApiKey>, sqlx::Error> {
        // A key that gets a URL after having none gets a new secret (no overlap with the
        // previous one), so the secret shown then is one nobody was shown before.
        let row: Option<Row> = sqlx::query_as(
            "UPDATE api_keys SET webhook_url = $2,
                 webhook_secret_generation = CASE WHEN webhook_url IS NULL AND $2::text IS NOT NULL
                     THEN webhook_secret_generation + 1 ELSE webhook_secret_generation END,
                 webhook_secret_rotated_at = CASE WHEN webhook_url IS NULL AND $2::text IS NOT NULL
                     THEN NULL ELSE webhook_secret_rotated_at END
             WHERE key_id = $1 RETURNING *",
        )
        .bind(key_id)
        .bind(url)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Row::into_key))
    }

    /// Moves a key to its next webhook secret. Deliveries are signed with the previous one
    /// too for a day (`crate::app_webhooks::ROTATION_OVERLAP`), so the app can switch without losing any.
    pub async fn rotate_webhook_secret(&self, key_id: &str) -> Result<Option<ApiKey>, sqlx::Error> {
        let row: Option<Row> = sqlx::query_as(
            "UPDATE api_keys SET webhook_secret_generation = webhook_secret_generation + 1,
                 webhook_secret_rotated_at = now()
             WHERE key_id = $1 RETURNING *",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Row::into_key))
    }

    /// One key, revoked or not.
    pub async fn get(&self, key_id: &str) -> Result<Option<ApiKey>, sqlx::Error> {
        let row: Option<Row> = sqlx::query_as("SELECT * FROM api_keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Row::into_key))
    }

    pub async fn list(&self) -> Result<Vec<ApiKey>, sqlx::Error> {
        let rows: Vec<Row> = sqlx::query_as("SELECT * FROM api_keys ORDER BY created_at, key_id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Row::into_key).collect())
    }

    /// Revokes a key; `None` when there is no such key. Revoking twice keeps the first time.
    pub async fn revoke(&self, key_id: &str) -> Result<Option<ApiKey>, sqlx::Error> {
        let row: Option<Row> = sqlx::query_as(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
             WHERE key_id = $1 RETURNING *",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Row::into_key))
    }

    /// Issuance counts per key id, from the audit table (keys never used are absent).
    pub async fn usage(&self) -> Result<std::collections::HashMap<String, KeyUsage>, sqlx::Error> {
        #[derive(sqlx::FromRow)]
        struct UsageRow {
            key_id: String,
            issued: i64,
            issued_last_day: i64,
            refused: i64,
            last_issued_at: Option<DateTime<Utc>>,
        }
        let rows: Vec<UsageRow> = sqlx::query_as(
            "SELECT key_id,
                    count(*) FILTER (WHERE outcome = 'issued') AS issued,
                    count(*) FILTER (WHERE outcome = 'issued' AND at > now() - interval '1 day')
                        AS issued_last_day,
                    -- A cancel the app asked for is audited too, and is no refusal.
                    COALESCE(sum(repeats) FILTER (WHERE outcome NOT IN ('issued', 'issued_cached', 'cancelled')), 0)::int8 AS refused,
                    max(at) FILTER (WHERE outcome = 'issued') AS last_issued_at
             FROM api_audit GROUP BY key_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let usage = KeyUsage {
                    issued: r.issued,
                    issued_last_day: r.issued_last_day,
                    refused: r.refused,
                    last_issued_at: r.last_issued_at,
                };
                (r.key_id, usage)
            })
            .collect())
    }

    /// The key a request presents (`Authorization: Bearer vik_...`), if it is valid.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
    ) -> Result<Result<ApiKey, KeyRejection>, sqlx::Error> {
        let Some(presented) = presented.map(str::trim).filter(|p| !p.is_empty()) else {
            return Ok(Err(KeyRejection::Missing));
        };
        let Some(key_id) = key_id_of(presented) else {
            return Ok(Err(KeyRejection::Invalid));
        };
        let row: Option<Row> = sqlx::query_as("SELECT * FROM api_keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Err(KeyRejection::Invalid));
        };
        let presented_hash = sha256_hex(presented);
        if !crate::sign::constant_time_eq(presented_hash.as_bytes(), row.secret_sha256.as_bytes()) {
            return Ok(Err(KeyRejection::Invalid));
        }
        if row.revoked_at.is_some() {
            return Ok(Err(KeyRejection::Revoked));
        }
        Ok(Ok(row.into_key()))
    }

    /// Counts one request against the key's budget for the current minute.
    pub async fn count_request(&self, key: &ApiKey) -> Result<Budget, sqlx::Error> {
        let (requests, retry_after): (i32, f64) = sqlx::query_as(
            "WITH used AS (
                 INSERT INTO api_key_usage (key_id, window_start, requests)
                 VALUES ($1, date_trunc('minute', now()), 1)
                 ON CONFLICT (key_id, window_start)
                 DO UPDATE SET requests = api_key_usage.requests + 1
                 RETURNING requests, window_start
             ), touched AS (
                 UPDATE api_keys SET last_used_at = now() WHERE key_id = $1
             )
             SELECT requests,
                    EXTRACT(EPOCH FROM (window_start + interval '1 minute' - now()))::float8
             FROM used",
        )
        .bind(&key.key_id)
        .fetch_one(&self.pool)
        .await?;
        if requests as i64 > key.limits.requests_per_minute as i64 {
            Ok(Budget::Exceeded {
                retry_after_secs: retry_after.ceil().max(1.0) as u64,
            })
        } else {
            Ok(Budget::Within)
        }
    }

    /// Forgets request counters older than an hour.
    pub async fn prune_usage(&self) -> Result<u64, sqlx::Error> {
        let done =
            sqlx::query("DELETE FROM api_key_usage WHERE window_start < now() - interval '1 hour'")
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// The origins the active keys list (`*` included), for CORS preflights, which carry no
    /// key ([`crate::api::OriginCache`] keeps them for a second).
    pub async fn allowed_origins(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT DISTINCT o FROM api_keys, unnest(allowed_origins) o WHERE revoked_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Deletes up to `limit` audit rows older than `retention`, oldest first (the retention
    /// sweep); returns how many.
    pub async fn prune_audit(
        &self,
        retention: std::time::Duration,
        limit: i64,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM api_audit WHERE id IN (
                 SELECT id FROM api_audit WHERE at < now() - make_interval(secs => $1)
                 ORDER BY at LIMIT $2)",
        )
        .bind(retention.as_secs_f64())
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// One row of `api_audit`: who was handed what (never the credential itself).
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub key_id: &'a str,
    /// `CreateUploadVideo`, `RefreshUploadVideo`, `AssumeRole`, ...
    pub action: &'a str,
    pub job_id: Option<&'a str>,
    pub media_id: Option<&'a str>,
    pub client_addr: Option<String>,
    pub http_origin: Option<&'a str>,
    /// `issued`, or the error code the request was refused with.
    pub outcome: &'a str,
    /// How many requests this row stands for (refusals by the budget are counted together).
    pub repeats: u32,
}

pub async fn audit(pool: &PgPool, entry: &AuditEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_audit (key_id, action, job_id, media_id, client_addr, http_origin, outcome, repeats)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.key_id)
    .bind(entry.action)
    .bind(entry.job_id)
    .bind(entry.media_id)
    .bind(&entry.client_addr)
    .bind(entry.http_origin)
    .bind(entry.outcome)
    .bind(entry.repeats.clamp(1, i32::MAX as u32) as i32)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_name_an_id() {
        let id = "abcdefghij12";
        let secret = "a".repeat(SECRET_LEN);
        assert_eq!(key_id_of(&format!("vik_{id}_{secret}")), Some(id));
        for bad in [
            format!("vik_{id}_{}", "a".repeat(SECRET_LEN - 1)),
            format!("vik_{id}"),
            format!("xyz_{id}_{secret}"),
            format!("vik_ABCDEFGHIJ12_{secret}"),
            format!("vik_{id}_{}!", "a".repeat(SECRET_LEN - 1)),
            String::new(),
        ] {
            assert_eq!(key_id_of(&bad), None, "{bad}");
        }
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let id = random_chars(ID_LEN);
        let full = format!("{PREFIX}{id}_{}", random_chars(SECRET_LEN));
        assert_eq!(key_id_of(&full), Some(id.as_str()));
        assert_ne!(random_chars(SECRET_LEN), random_chars(SECRET_LEN));
    }
}
