//! API keys for client apps: random, shown once, stored only as a SHA-256 hash, each with its
//! own limits. Request counting is in PostgreSQL so that every process serving the API shares
//! one budget per key.

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
    ) -> Result<Self, String> {
        let kinds = kinds
            .iter()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
            .map(|k| k.parse().map_err(|e: String| format!("kinds: {e}")))
            .collect::<Result<Vec<JobKind>, String>>()?;
        if kinds.is_empty() {
            return Err("kinds is empty: name at least one of video, image, attached_media".into());
        }
        if requests_per_minute == 0 {
            return Err("requests-per-minute must be at least 1".into());
        }
        if max_file_size == 0 {
            return Err("max-file-size must be at least 1 byte".into());
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
                return Err(format!("origin {o:?} is not an origin: give scheme, host and port only (https://app.example.com), or *"));
            }
        }
        Ok(Self {
            kinds,
            max_file_size,
            requests_per_minute,
            allowed_origins,
            allow_sts,
        })
    }
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
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn allows_origin(&self, origin: &str) -> bool {
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
            },
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        }
    }
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
    hex::encode(Sha256::digest(value.as_bytes()))
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

    /// Creates a key; the returned secret is the only copy there will ever be.
    pub async fn create(
        &self,
        name: &str,
        limits: &KeyLimits,
    ) -> Result<(ApiKey, Secret), sqlx::Error> {
        let key_id = random_chars(ID_LEN);
        let full = Secret::new(format!("{PREFIX}{key_id}_{}", random_chars(SECRET_LEN)));
        let kinds: Vec<&str> = limits.kinds.iter().map(|k| k.as_str()).collect();
        let row: Row = sqlx::query_as(
            "INSERT INTO api_keys (key_id, name, secret_sha256, kinds, max_file_size,
                 requests_per_minute, allowed_origins, allow_sts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        )
        .bind(&key_id)
        .bind(name)
        .bind(sha256_hex(full.expose()))
        .bind(&kinds)
        .bind(limits.max_file_size.min(i64::MAX as u64) as i64)
        .bind(limits.requests_per_minute.min(i32::MAX as u32) as i32)
        .bind(&limits.allowed_origins)
        .bind(limits.allow_sts)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.into_key(), full))
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
                    count(*) FILTER (WHERE outcome <> 'issued') AS refused,
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

    /// Whether some active key lets `origin` call (CORS preflights carry no key).
    pub async fn any_allows_origin(&self, origin: &str) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL
                 AND EXISTS (SELECT 1 FROM unnest(allowed_origins) o
                             WHERE o = '*' OR lower(o) = lower($1)))",
        )
        .bind(origin)
        .fetch_one(&self.pool)
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
}

pub async fn audit(pool: &PgPool, entry: &AuditEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_audit (key_id, action, job_id, media_id, client_addr, http_origin, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.key_id)
    .bind(entry.action)
    .bind(entry.job_id)
    .bind(entry.media_id)
    .bind(&entry.client_addr)
    .bind(entry.http_origin)
    .bind(entry.outcome)
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
