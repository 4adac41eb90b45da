//! The fleet-wide limit on VOD API calls: VOD allows an account about 120 calls per second of
//! each of CreateUploadVideo, CreateUploadImage, CreateUploadAttachedMedia and
//! RefreshUploadVideo, shared by everything that uses the account, and answers
//! `Throttling.User` beyond it (`docs/reference/vod-api.md` §5.4).
//!
//! Every process of a deployment shares the budget through PostgreSQL: per action and per second
//! of PostgreSQL's clock, a row counts the calls claimed. A process claims a few calls at a time
//! (one `INSERT .. ON CONFLICT DO UPDATE`, at most a tenth of the limit, no more than it has
//! callers waiting) and hands them out locally until the second ends. A process that dies loses
//! only what it claimed for the current second; the next second starts from zero.
//!
//! When VOD still answers `Throttling*` (another tool on the account, a lower regional limit),
//! the process that saw it halves the action's shared limit for the whole fleet for a few seconds
//! (`vod_rate_backoff`), and its local permits are dropped.
//!
//! The limiter fails open: if PostgreSQL cannot be asked, the call goes out (a warning is
//! logged), and VOD's own throttling and the client's retries take over.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;
use sqlx::PgPool;

/// VOD actions whose per-account rate VOD limits, with the documented default (calls/s).
pub const DOCUMENTED_LIMITS: [(&str, u32); 4] = [
    ("CreateUploadVideo", 120),
    ("CreateUploadImage", 120),
    ("CreateUploadAttachedMedia", 120),
    ("RefreshUploadVideo", 120),
];

/// A permit is used only if at least this much of its second is left, so that the call reaches
/// VOD within the second it was counted in.
const GUARD: Duration = Duration::from_millis(50);

/// How long the fleet keeps a lowered limit after a `Throttling*` answer.
const BACKOFF_FOR: Duration = Duration::from_secs(5);

/// Calls per second per action (`VOD_INGEST_VOD_RATE_LIMITS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits(pub BTreeMap<String, u32>);

impl Default for RateLimits {
    fn default() -> Self {
        Self(
            DOCUMENTED_LIMITS
                .iter()
                .map(|(a, n)| ((*a).to_owned(), *n))
                .collect(),
        )
    }
}

impl RateLimits {
    pub fn off() -> Self {
        Self(BTreeMap::new())
    }

    pub fn is_off(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("off");
        }
        let parts: Vec<String> = self.0.iter().map(|(a, n)| format!("{a}={n}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// `off`, or `Action=N,...`; actions not named keep their documented default, `Action=0` lifts
/// that action's limit.
/// A `VOD_INGEST_VOD_RATE_LIMITS` value that is not `off` or `Action=N,...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRateLimits {
    #[error("{0:?} is not Action=calls-per-second (e.g. CreateUploadVideo=120), and the whole value is not `off`")]
    NotAPair(String),
    #[error("{0:?} is not a VOD action name (e.g. CreateUploadVideo)")]
    NotAnAction(String),
    #[error("{0:?}: the limit must be a whole number of calls per second (0 = no limit)")]
    NotALimit(String),
}

impl FromStr for RateLimits {
    type Err = InvalidRateLimits;

    fn from_str(s: &str) -> Result<Self, InvalidRateLimits> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::off());
        }
        let mut limits = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (action, n) = part
                .split_once('=')
                .ok_or_else(|| InvalidRateLimits::NotAPair(part.to_owned()))?;
            let action = action.trim();
            if !action.chars().all(|c| c.is_ascii_alphanumeric()) || action.is_empty() {
                return Err(InvalidRateLimits::NotAnAction(action.to_owned()));
            }
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| InvalidRateLimits::NotALimit(part.to_owned()))?;
            if n == 0 {
                limits.0.remove(action);
            } else {
                limits.0.insert(action.to_owned(), n);
            }
        }
        Ok(limits)
    }
}

/// Shares VOD's per-account rate among all processes that use one database. Cheap to clone.
#[derive(Clone)]
pub struct FleetLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    actions: HashMap<String, ActionLimit>,
    last_cleanup: AtomicU64,
    started: Instant,
}

struct ActionLimit {
    limit: u32,
    /// Callers waiting for a permit: how much one claim asks for.
    waiting: AtomicU32,
    local: tokio::sync::Mutex<Local>,
    /// When this process last reported throttling to the fleet (ms since `started`).
    last_report: AtomicU64,
}

/// Permits this process holds for one second.
struct Local {
    remaining: u32,
    ends: Instant,
    /// Calls this process made in the second that `ends` closes, and in the one before: what
    /// it is likely to need next.
    calls: u32,
    calls_before: u32,
}

/// What one claim got.
struct Claim {
    granted: u32,
    /// Until the end of the claimed second, by PostgreSQL's clock.
    left: Duration,
}

struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for FleetLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limits: BTreeMap<&str, u32> = self
            .inner
            .actions
            .iter()
            .map(|(a, l)| (a.as_str(), l.limit))
            .collect();
        f.debug_struct("FleetLimiter")
            .field("limits", &limits)
            .finish()
    }
}

impl FleetLimiter {
    pub fn new(pool: PgPool, limits: &RateLimits) -> Self {
        let actions = limits
            .0
            .iter()
            .map(|(action, &limit)| {
                (
                    action.clone(),
                    ActionLimit {
                        limit,
                        waiting: AtomicU32::new(0),
                        local: tokio::sync::Mutex::new(Local {
                            remaining: 0,
                            ends: Instant::now(),
                            calls: 0,
                            calls_before: 0,
                        }),
                        last_report: AtomicU64::new(0),
                    },
                )
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                pool,
                actions,
                last_cleanup: AtomicU64::new(0),
                started: Instant::now(),
            }),
        }
    }

    /// Waits until this process may send one `action` call. Actions without a limit pass.
    pub async fn acquire(&self, action: &str) {
        let Some(a) = self.inner.actions.get(action) else {
            return;
        };
        a.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&a.waiting);
        loop {
            let mut local = a.local.lock().await;
            let before = Instant::now();
            if local.remaining > 0 && before + GUARD < local.ends {
                local.remaining -= 1;
                local.calls += 1;
                return;
            }
            if before < local.ends && before + GUARD >= local.ends {
                // The end of the second: its permits could not reach VOD within it, and a claim
                // now would only use up what is left of it. Wait for the next (holding the
                // lock, so the other callers of this process wait with us).
                tokio::time::sleep_until(local.ends.into()).await;
                continue;
            }
            // Ask for what is waiting, or for an eighth of last second's calls if that is more:
            // a process that makes a hundred calls a second then claims about eight times a
            // second, not once per call or two (each claim is a statement). What it holds
            // unused when the second ends is lost to the fleet, at most one claim's worth.
            let chunk = (a.limit / 10).max(1);
            let waiting = a.waiting.load(Ordering::Relaxed);
            let want = waiting.max(local.calls_before / 8).clamp(1, chunk);
            metrics::counter!("vod_ingest_rate_limit_claims_total", "action" => action.to_owned())
                .increment(1);
            match self.claim(action, want, a.limit).await {
                Ok(claim) if claim.granted > 0 => {
                    let ends = before + claim.left;
                    if ends > local.ends + Duration::from_millis(500) {
                        // A new second.
                        local.calls_before = std::mem::take(&mut local.calls);
                    }
                    local.remaining = claim.granted;
                    local.ends = ends;
                }
                Ok(claim) => {
                    // This second is spent fleet-wide: wait for the next (holding the lock,
                    // so the other callers of this process wait with us instead of asking).
                    let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..5));
                    tokio::time::sleep_until((before + claim.left + jitter).into()).await;
                }
                Err(e) => {
                    tracing::warn!(action, error = %e, "cannot reach PostgreSQL for the VOD rate limit; sending the call unlimited");
                    return;
                }
            }
        }
    }

    /// VOD answered `Throttling*` to an `action` call: drops this process's permits and lowers
    /// the action's limit for the whole fleet for a while. Reported at most once a second per
    /// process, so a burst of refusals does not turn into a burst of writes.
    pub async fn throttled(&self, action: &str) {
        let Some(a) = self.inner.actions.get(action) else {
            return;
        };
        metrics::counter!("vod_ingest_vod_throttled_total", "action" => action.to_owned())
            .increment(1);
        if let Ok(mut local) = a.local.try_lock() {
            local.remaining = 0;
        }
        let now_ms = self.inner.started.elapsed().as_millis() as u64 + 1;
        let last = a.last_report.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < 1000 {
            return;
        }
        a.last_report.store(now_ms, Ordering::Relaxed);
        // Jitter, so that processes which saw throttling together do not recover together.
        let hold = BACKOFF_FOR.as_secs_f64() * rand::thread_rng().gen_range(0.8..1.2);
        let result = sqlx::query(
            "INSERT INTO vod_rate_backoff (action, factor, until)
             VALUES ($1, 0.5, clock_timestamp() + make_interval(secs => $2))
             ON CONFLICT (action) DO UPDATE SET
                factor = CASE WHEN vod_rate_backoff.until > clock_timestamp()
                         THEN GREATEST(0.1, vod_rate_backoff.factor * 0.5) ELSE 0.5 END,
                until = clock_timestamp() + make_interval(secs => $2)",
        )
        .bind(action)
        .bind(hold)
        .execute(&self.inner.pool)
        .await;
        match result {
            Ok(_) => {
                tracing::warn!(
                    action,
                    "VOD throttled a call: the fleet lowers this action's rate for a few seconds"
                )
            }
            Err(e) => {
                tracing::warn!(action, error = %e, "VOD throttled a call, and the fleet could not be told")
            }
        }
    }

    /// The limit the fleet applies to `action` now (lowered after throttling), if it has one.
    pub async fn effective_limit(&self, action: &str) -> Result<Option<u32>, sqlx::Error> {
        let Some(a) = self.inner.actions.get(action) else {
            return Ok(None);
        };
        let factor: Option<f64> = sqlx::query_scalar(
            "SELECT factor FROM vod_rate_backoff WHERE action = $1 AND until > clock_timestamp()",
        )
        .bind(action)
        .fetch_optional(&self.inner.pool)
        .await?;
        Ok(Some(
            ((a.limit as f64 * factor.unwrap_or(1.0)).floor() as u32).max(1),
        ))
    }

    /// Claims up to `want` calls of this second for `action`, in one statement.
    async fn claim(&self, action: &str, want: u32, limit: u32) -> Result<Claim, sqlx::Error> {
        self.maybe_cleanup();
        let (granted, left): (i32, f64) = sqlx::query_as(
            "WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS t),
             lim AS (SELECT GREATEST(1, floor($3 * COALESCE(
                        (SELECT factor FROM vod_rate_backoff WHERE action = $1 AND until > clock_timestamp()),
                        1.0)))::int AS l),
             up AS (
                INSERT INTO vod_rate_windows AS w (action, second, used, last_grant)
                SELECT $1, floor(t)::bigint, LEAST($2, l), LEAST($2, l) FROM clock, lim
                ON CONFLICT (action, second) DO UPDATE SET
                    last_grant = LEAST($2, (SELECT l FROM lim) - w.used),
                    used = w.used + LEAST($2, (SELECT l FROM lim) - w.used)
                WHERE w.used < (SELECT l FROM lim)
                RETURNING last_grant)
             SELECT COALESCE((SELECT last_grant FROM up), 0), (floor(t) + 1 - t)::float8 FROM clock",
        )
        .bind(action)
        .bind(want as i32)
        .bind(limit as i32)
        .fetch_one(&self.inner.pool)
        .await?;
        Ok(Claim {
            granted: granted.max(0) as u32,
            left: Duration::from_secs_f64(left.clamp(0.0, 1.0)),
        })
    }

    /// Forgets seconds older than a minute, at most every 30 s per process, off the call path.
    fn maybe_cleanup(&self) {
        let now = self.inner.started.elapsed().as_secs() + 1;
        let last = self.inner.last_cleanup.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 30
            || self
                .inner
                .last_cleanup
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let pool = self.inner.pool.clone();
        tokio::spawn(async move {
            let _ = sqlx::query(
                "DELETE FROM vod_rate_windows WHERE second < extract(epoch FROM now()) - 60",
            )
            .execute(&pool)
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings() {
        assert_eq!("".parse::<RateLimits>().unwrap(), RateLimits::default());
        assert!("off".parse::<RateLimits>().unwrap().is_off());
        let l: RateLimits = "CreateUploadVideo=50, RefreshUploadVideo=0"
            .parse()
            .unwrap();
        assert_eq!(l.0.get("CreateUploadVideo"), Some(&50));
        assert_eq!(l.0.get("CreateUploadImage"), Some(&120));
        assert_eq!(l.0.get("RefreshUploadVideo"), None);
        assert_eq!(
            l.to_string(),
            "CreateUploadAttachedMedia=120,CreateUploadImage=120,CreateUploadVideo=50"
        );
        for bad in [
            "CreateUploadVideo",
            "CreateUploadVideo=fast",
            "Create Upload=1",
        ] {
            let e = bad.parse::<RateLimits>().unwrap_err();
            assert!(
                e.to_string().contains(bad.split('=').next().unwrap()),
                "{e}"
            );
        }
    }
}
