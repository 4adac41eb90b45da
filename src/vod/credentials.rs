//! Where the credentials that sign VOD calls come from: a long-term AccessKey, a static STS
//! token, or STS credentials obtained with AssumeRole and renewed before they run out.
//! (Module order, no cycle: `signing` <- `rpc` <- `sts` <- `credentials`.)

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use super::error::VodError;
pub use super::signing::Credentials;
use super::sts::{AssumeRoleRequest, StsClient};
use crate::secret::Secret;

/// Renew when less than this much of the credential's life remains, and never later than
/// [`MIN_RENEWAL_MARGIN`] before expiry: a renewal has time to fail and be retried, and a call
/// signed just before renewal still has time to reach the server.
const RENEWAL_FRACTION: i32 = 5;
const MIN_RENEWAL_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// Whether STS credentials issued at `issued_at` and expiring at `expiration` must be renewed at
/// `now`: true once less than max(60 s, 1/5 of their lifetime) remains.
pub fn needs_renewal(
    now: DateTime<Utc>,
    issued_at: DateTime<Utc>,
    expiration: DateTime<Utc>,
) -> bool {
    let lifetime = (expiration - issued_at).max(chrono::Duration::zero());
    let margin = (lifetime / RENEWAL_FRACTION).max(MIN_RENEWAL_MARGIN);
    expiration - now < margin
}

/// Where credentials come from. Cheap to clone; clones share one AssumeRole cache.
#[derive(Clone)]
pub struct CredentialProvider {
    inner: Arc<Source>,
}

enum Source {
    Static(Credentials),
    AssumeRole(Box<AssumeRole>),
}

struct AssumeRole {
    base: Credentials,
    request: AssumeRoleRequest,
    sts: StsClient,
    /// One lock so that concurrent callers wait for a single renewal instead of stampeding STS.
    cache: Mutex<Option<Cached>>,
}

struct Cached {
    credentials: Credentials,
    issued_at: DateTime<Utc>,
    expiration: DateTime<Utc>,
}

impl fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Source::Static(c) => f
                .debug_struct("CredentialProvider")
                .field("kind", &"static")
                .field("access_key_id", &c.access_key_id())
                .finish(),
            Source::AssumeRole(a) => f
                .debug_struct("CredentialProvider")
                .field("kind", &"assume_role")
                .field("access_key_id", &a.base.access_key_id())
                .field("role_arn", &a.request.role_arn)
                .finish(),
        }
    }
}

impl CredentialProvider {
    /// A long-term AccessKey (`ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET`).
    pub fn access_key(id: impl Into<String>, secret: Secret) -> Self {
        Self::from_credentials(Credentials::AccessKey {
            access_key_id: id.into(),
            access_key_secret: secret,
        })
    }

    /// A fixed STS token (`ALIBABA_CLOUD_SECURITY_TOKEN`); it is never renewed.
    pub fn sts_token(id: impl Into<String>, secret: Secret, token: Secret) -> Self {
        Self::from_credentials(Credentials::StsToken {
            access_key_id: id.into(),
            access_key_secret: secret,
            security_token: token,
        })
    }

    /// Any fixed credentials.
    pub fn from_credentials(credentials: Credentials) -> Self {
        Self {
            inner: Arc::new(Source::Static(credentials)),
        }
    }

    /// STS credentials for `role_arn`, obtained with the AccessKey `id`/`secret` and renewed
    /// before they expire. The session lasts STS's default (3600 s) unless
    /// [`CredentialProvider::with_duration`] says otherwise.
    pub fn assume_role(
        id: impl Into<String>,
        secret: Secret,
        role_arn: String,
        session_name: String,
        sts: StsClient,
    ) -> Self {
        Self {
            inner: Arc::new(Source::AssumeRole(Box::new(AssumeRole {
                base: Credentials::AccessKey {
                    access_key_id: id.into(),
                    access_key_secret: secret,
                },
                request: AssumeRoleRequest {
                    role_arn,
                    role_session_name: session_name,
                    duration_seconds: None,
                    policy: None,
                },
                sts,
                cache: Mutex::new(None),
            }))),
        }
    }

    /// Sets the AssumeRole session length (900 s up to the role's maximum). No effect on static
    /// credentials. Call before the provider is cloned or used.
    pub fn with_duration(self, duration: Duration) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(Source::AssumeRole(mut a)) => {
                a.request.duration_seconds = Some(duration.as_secs().min(u32::MAX as u64) as u32);
                Self {
                    inner: Arc::new(Source::AssumeRole(a)),
                }
            }
            Ok(other) => Self {
                inner: Arc::new(other),
            },
            Err(shared) => Self { inner: shared },
        }
    }

    /// Credentials to sign the next call with. For AssumeRole, cached STS credentials are
    /// returned until [`needs_renewal`] says otherwise; if a renewal fails while the cached ones
    /// are still valid for a while, those are used and the renewal is tried again next time.
    pub async fn current(&self) -> Result<Credentials, VodError> {
        match &*self.inner {
            Source::Static(c) => Ok(c.clone()),
            Source::AssumeRole(a) => a.current().await,
        }
    }
}

impl AssumeRole {
    async fn current(&self) -> Result<Credentials, VodError> {
        let mut cache = self.cache.lock().await;
        let now = Utc::now();
        if let Some(c) = cache.as_ref() {
            if !needs_renewal(now, c.issued_at, c.expiration) {
                return Ok(c.credentials.clone());
            }
        }
        match self.sts.assume_role(&self.base, &self.request).await {
            Ok(sts) => {
                let credentials = Credentials::StsToken {
                    access_key_id: sts.access_key_id,
                    access_key_secret: sts.access_key_secret,
                    security_token: sts.security_token,
                };
                tracing::info!(
                    role_arn = %self.request.role_arn,
                    expiration = %sts.expiration,
                    "obtained STS credentials with AssumeRole"
                );
                *cache = Some(Cached {
                    credentials: credentials.clone(),
                    issued_at: now,
                    expiration: sts.expiration,
                });
                Ok(credentials)
            }
            Err(err) => match cache.as_ref() {
                // Still usable for a little while: keep working and renew on a later call.
                Some(c) if c.expiration - now > chrono::Duration::seconds(15) => {
                    tracing::warn!(
                        error = %err,
                        expiration = %c.expiration,
                        "renewing STS credentials failed; using the current ones until they expire"
                    );
                    Ok(c.credentials.clone())
                }
                _ => Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn renewal_starts_when_a_fifth_of_the_lifetime_remains() {
        // 3600 s lifetime: renew with less than 720 s left.
        let (issued, expires) = (t(0), t(3600));
        assert!(!needs_renewal(t(0), issued, expires));
        assert!(!needs_renewal(t(2879), issued, expires));
        assert!(!needs_renewal(t(2880), issued, expires)); // exactly 720 s left
        assert!(needs_renewal(t(2881), issued, expires));
        assert!(needs_renewal(t(3600), issued, expires));
        assert!(needs_renewal(t(4000), issued, expires));
    }

    #[test]
    fn short_lifetimes_still_renew_a_minute_ahead() {
        // 120 s lifetime: a fifth is 24 s, the 60 s floor wins.
        let (issued, expires) = (t(0), t(120));
        assert!(!needs_renewal(t(59), issued, expires));
        assert!(needs_renewal(t(61), issued, expires));
        // Already-expired or nonsensical (expiry before issue) credentials are always renewed.
        assert!(needs_renewal(t(0), t(0), t(0)));
        assert!(needs_renewal(t(0), t(10), t(5)));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let p =
            CredentialProvider::sts_token("STS.id", Secret::new("s3cr3t"), Secret::new("t0k3n"));
        let c = Credentials::StsToken {
            access_key_id: "STS.id".into(),
            access_key_secret: Secret::new("s3cr3t"),
            security_token: Secret::new("t0k3n"),
        };
        let shown = format!("{p:?} {c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0k3n"),
            "{shown}"
        );
        assert!(shown.contains("STS.id"));
    }

    #[tokio::test]
    async fn static_providers_return_their_credentials() {
        let p = CredentialProvider::access_key("id", Secret::new("s"));
        let c = p.clone().current().await.unwrap();
        assert_eq!(c.access_key_id(), "id");
        assert!(c.security_token().is_none());
        let p = CredentialProvider::sts_token("STS.id", Secret::new("s"), Secret::new("t"));
        assert_eq!(
            p.current()
                .await
                .unwrap()
                .security_token()
                .unwrap()
                .expose(),
            "t"
        );
    }
}
