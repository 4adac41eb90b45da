//! Console sessions: one per login, kept in PostgreSQL (so every process behind one admin
//! address knows them), ended by logout, by their 12 hours running out, or by a change of the
//! operator token. The browser holds a random session id; the table holds only its SHA-256
//! and an HMAC of the token keyed with the id, so the table alone reveals neither the id nor
//! anything to test guesses of the token against.
//!
//! Failed logins are throttled per client address and in total ([`LoginThrottle`]), in memory:
//! per process, which is enough to make guessing a long token hopeless.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::secret::Secret;

/// How long a session lasts from its login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Live sessions kept at most; a login beyond it ends the oldest (logins are throttled, so
/// only a flood of correct logins gets here).
const MAX_SESSIONS: i64 = 1000;

fn id_sha256(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The token, bound to one session id: a new token ends every session.
fn token_binding(id: &str, token: &Secret) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(id.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(token.expose().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `console_sessions` table.
#[derive(Debug, Clone)]
pub struct SessionStore {
    pool: PgPool,
}

impl SessionStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Starts a session for a login with `token`; returns its id (the cookie's value), which is
    /// stored nowhere. Expired sessions, and the oldest beyond the bound, go at the same time.
    pub async fn create(&self, token: &Secret) -> Result<Secret, sqlx::Error> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM console_sessions WHERE expires_at <= now()
                OR id_sha256 IN (SELECT id_sha256 FROM console_sessions
                                 ORDER BY created_at DESC OFFSET $1)",
        )
        .bind(MAX_SESSIONS - 1)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_sha256, token_binding, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3))",
        )
        .bind(id_sha256(&id))
        .bind(token_binding(&id, token))
        .bind(SESSION_LIFETIME.as_secs_f64())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Secret::new(id))
    }

    /// Whether `id` names a live session made with `token`.
    pub async fn is_valid(&self, id: &str, token: &Secret) -> Result<bool, sqlx::Error> {
        // Ids are 64 hex digits; anything else names no session and costs no query.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let binding: Option<String> = sqlx::query_scalar(
            "SELECT token_binding FROM console_sessions WHERE id_sha256 = $1 AND expires_at > now()",
        )
        .bind(id_sha256(id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(binding.is_some_and(|b| {
            crate::sign::constant_time_eq(b.as_bytes(), token_binding(id, token).as_bytes())
        }))
    }

    /// Ends the session `id` (logout); ending one that does not exist is not an error.
    pub async fn end(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM console_sessions WHERE id_sha256 = $1")
            .bind(id_sha256(id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Failed logins allowed per client address, and from all addresses together, per window.
const FAILURES_PER_ADDRESS: u32 = 5;
const FAILURES_IN_TOTAL: u32 = 50;
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; beyond it new ones count only against the total.
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
struct Failures {
    window_start: Option<Instant>,
    total: u32,
    by_address: HashMap<IpAddr, u32>,
}

/// See the module documentation.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<Failures>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").finish_non_exhaustive()
    }
}

impl LoginThrottle {
    fn current(&self) -> (std::sync::MutexGuard<'_, Failures>, Duration) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let start = *f.window_start.get_or_insert(now);
        if now.duration_since(start) >= WINDOW {
            *f = Failures {
                window_start: Some(now),
                ..Default::default()
            };
        }
        let left = WINDOW.saturating_sub(now.duration_since(f.window_start.unwrap_or(now)));
        (f, left)
    }

    /// `Some(seconds to wait)` when logins from `addr` are throttled now: the token is then
    /// not even compared.
    pub fn check(&self, addr: Option<IpAddr>) -> Option<u64> {
        let (f, left) = self.current();
        let by_address = addr
            .and_then(|a| f.by_address.get(&a).copied())
            .unwrap_or(0);
        (by_address >= FAILURES_PER_ADDRESS || f.total >= FAILURES_IN_TOTAL)
            .then(|| left.as_secs().max(1))
    }

    /// Counts a wrong token from `addr`.
    pub fn failed(&self, addr: Option<IpAddr>) {
        let (mut f, _) = self.current();
        f.total = f.total.saturating_add(1);
        if let Some(a) = addr {
            if f.by_address.len() < MAX_TRACKED || f.by_address.contains_key(&a) {
                *f.by_address.entry(a).or_insert(0) += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_are_throttled_per_address_and_in_total() {
        let throttle = LoginThrottle::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..FAILURES_PER_ADDRESS {
            assert_eq!(throttle.check(Some(a)), None);
            throttle.failed(Some(a));
        }
        let wait = throttle.check(Some(a)).expect("throttled");
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(throttle.check(Some(b)), None, "another address is not");
        for i in 0..FAILURES_IN_TOTAL {
            throttle.failed(Some([10, 1, (i / 250) as u8, (i % 250) as u8].into()));
        }
        assert!(throttle.check(Some(b)).is_some(), "the total is spent");
    }

    #[test]
    fn a_session_is_bound_to_its_id_and_the_token() {
        let token = Secret::from("ops");
        let binding = token_binding("id-1", &token);
        assert_ne!(binding, token_binding("id-2", &token));
        assert_ne!(binding, token_binding("id-1", &Secret::from("new")));
        assert!(!binding.contains("ops"));
    }
}
