//! What stands in front of the database for every API request, so that a refusal costs less
//! than the request it refuses:
//!
//! - [`LocalBudget`]: once the shared, per-minute budget of a key (in PostgreSQL, see
//!   [`super::KeyStore::count_request`]) has said "exceeded", this process refuses that same key
//!   from memory until the minute ends: no key lookup, no counter update. The refusals are
//!   counted here and written as one `api_audit` row per key and minute (`repeats` = how many),
//!   not one row each (written every few seconds: at most a dozen rows a minute per key,
//!   however many requests it sends).
//! - [`OriginCache`]: the browser origins that some active key allows, for CORS preflights,
//!   read from PostgreSQL at most once a second.
//!
//! Both are per process; the shared budget stays the authority, so a fleet admits no more than
//! the key's limit.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::keys::{audit, AuditEntry, KeyStore};

/// A key this process knows to be over its budget for the current minute.
struct Exhausted {
    key_id: String,
    requests_per_minute: u32,
}

/// Refusals not yet written, per key and minute.
#[derive(Default)]
struct Refusals {
    count: u32,
    client_addr: Option<String>,
    http_origin: Option<String>,
}

#[derive(Default)]
struct Inner {
    /// The minute (Unix seconds / 60) `exhausted` is about.
    minute: i64,
    /// By the SHA-256 of the presented key, so only the very key that was counted is refused
    /// here (someone who knows a key's id but not its secret cannot exhaust it).
    exhausted: HashMap<[u8; 32], Exhausted>,
    refusals: HashMap<(i64, String), Refusals>,
}

/// A refusal answered from memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub key_id: String,
    pub requests_per_minute: u32,
    pub retry_after_secs: u64,
}

/// See the module documentation.
#[derive(Default)]
pub struct LocalBudget {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for LocalBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBudget").finish_non_exhaustive()
    }
}

fn minute_of(now: DateTime<Utc>) -> (i64, u64) {
    let secs = now.timestamp();
    (secs.div_euclid(60), (60 - secs.rem_euclid(60)) as u64)
}

impl LocalBudget {
    fn inner(&self, now: DateTime<Utc>) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (minute, _) = minute_of(now);
        if inner.minute != minute {
            inner.minute = minute;
            inner.exhausted.clear();
        }
        inner
    }

    /// Whether the key presented (its SHA-256) is known to be over budget this minute; if so
    /// the refusal is counted.
    pub fn check(
        &self,
        presented_sha256: &[u8; 32],
        client_addr: Option<&str>,
        http_origin: Option<&str>,
    ) -> Option<Refused> {
        let now = Utc::now();
        let mut inner = self.inner(now);
        let (minute, retry_after_secs) = minute_of(now);
        let e = inner.exhausted.get(presented_sha256)?;
        let refused = Refused {
            key_id: e.key_id.clone(),
            requests_per_minute: e.requests_per_minute,
            retry_after_secs,
        };
        Self::count(
            &mut inner,
            minute,
            &refused.key_id,
            client_addr,
            http_origin,
        );
        Some(refused)
    }

    /// The shared budget refused this key: refuse it here for the rest of the minute, and count
    /// this refusal.
    pub fn exhausted(
        &self,
        presented_sha256: [u8; 32],
        key_id: &str,
        requests_per_minute: u32,
        client_addr: Option<&str>,
        http_origin: Option<&str>,
    ) {
        let now = Utc::now();
        let mut inner = self.inner(now);
        let (minute, _) = minute_of(now);
        inner.exhausted.insert(
            presented_sha256,
            Exhausted {
                key_id: key_id.to_owned(),
                requests_per_minute,
            },
        );
        Self::count(&mut inner, minute, key_id, client_addr, http_origin);
    }

    fn count(
        inner: &mut Inner,
        minute: i64,
        key_id: &str,
        client_addr: Option<&str>,
        http_origin: Option<&str>,
    ) {
        let r = inner
            .refusals
            .entry((minute, key_id.to_owned()))
            .or_default();
        r.count = r.count.saturating_add(1);
        // The first address and origin of the minute stand for the rest.
        if r.client_addr.is_none() {
            r.client_addr = client_addr.map(str::to_owned);
        }
        if r.http_origin.is_none() {
            r.http_origin = http_origin.map(str::to_owned);
        }
    }

    /// Writes the refusals counted since the last call as audit rows, one per key and minute.
    /// Rows that cannot be written are kept for the next call.
    pub async fn flush(&self, pool: &PgPool) -> Result<usize, sqlx::Error> {
        let due: Vec<((i64, String), Refusals)> = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.refusals.drain().collect()
        };
        let mut written = 0;
        let mut failed = Vec::new();
        let mut error = None;
        for ((minute, key_id), r) in due {
            let entry = AuditEntry {
                key_id: &key_id,
                action: "Request",
                job_id: None,
                media_id: None,
                client_addr: r.client_addr.clone(),
                http_origin: r.http_origin.as_deref(),
                outcome: "RateLimited",
                repeats: r.count,
            };
            match audit(pool, &entry).await {
                Ok(()) => written += 1,
                Err(e) => {
                    failed.push(((minute, key_id), r));
                    error = Some(e);
                }
            }
        }
        if !failed.is_empty() {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            for (k, r) in failed {
                // Bounded: one entry per key and minute, and only while PostgreSQL is down.
                let merged = inner.refusals.entry(k).or_default();
                merged.count = merged.count.saturating_add(r.count);
                merged.client_addr = merged.client_addr.take().or(r.client_addr);
                merged.http_origin = merged.http_origin.take().or(r.http_origin);
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }
}

/// How long a list of allowed origins is trusted. A key created or revoked in another process
/// changes what preflights get within this long (the actual request is always checked against
/// its own key, read fresh).
const ORIGINS_TTL: Duration = Duration::from_secs(1);

struct Origins {
    read_at: Instant,
    any: bool,
    exact: HashSet<String>,
}

/// See the module documentation.
pub struct OriginCache {
    /// An async lock: one reader refreshes while the others wait for its answer.
    cached: tokio::sync::Mutex<Option<Origins>>,
}

impl std::fmt::Debug for OriginCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginCache").finish_non_exhaustive()
    }
}

impl Default for OriginCache {
    fn default() -> Self {
        Self {
            cached: tokio::sync::Mutex::new(None),
        }
    }
}

impl OriginCache {
    /// Whether some active key lets `origin` call.
    pub async fn allows(&self, keys: &KeyStore, origin: &str) -> Result<bool, sqlx::Error> {
        let mut cached = self.cached.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|c| c.read_at.elapsed() < ORIGINS_TTL);
        if !fresh {
            let listed = keys.allowed_origins().await?;
            *cached = Some(Origins {
                read_at: Instant::now(),
                any: listed.iter().any(|o| o == "*"),
                exact: listed.into_iter().map(|o| o.to_ascii_lowercase()).collect(),
            });
        }
        let c = cached.as_ref().expect("filled above");
        Ok(c.any || c.exact.contains(&origin.to_ascii_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_key_is_refused_from_memory_and_its_refusals_counted_together() {
        let budget = LocalBudget::default();
        let presented = [7u8; 32];
        assert_eq!(budget.check(&presented, None, None), None);
        budget.exhausted(presented, "k1", 5, Some("10.0.0.1"), None);
        let refused = budget.check(&presented, Some("10.0.0.2"), None).unwrap();
        assert_eq!(
            (refused.key_id.as_str(), refused.requests_per_minute),
            ("k1", 5)
        );
        assert!((1..=60).contains(&refused.retry_after_secs));
        // Another secret for the same key id is not refused here.
        assert_eq!(budget.check(&[8u8; 32], None, None), None);
        let inner = budget.inner.lock().unwrap();
        let counted: Vec<u32> = inner.refusals.values().map(|r| r.count).collect();
        assert_eq!(counted, vec![2]);
        let r = inner.refusals.values().next().unwrap();
        assert_eq!(r.client_addr.as_deref(), Some("10.0.0.1"));
    }
}
