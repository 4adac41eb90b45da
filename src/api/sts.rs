//! STS tokens for client apps (`POST /v1/sts-token`): AssumeRole on `VOD_INGEST_STS_ROLE_ARN`
//! with a session policy that allows only the VOD upload actions of the kinds the key may
//! upload. STS is throttled and its docs advise caching, so tokens are reused per key and
//! scope until a fifth of their life (at least a minute) remains.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::jobs::JobKind;
use crate::vod::{
    needs_renewal, AssumeRoleRequest, Credentials, StsClient, StsCredentials, VodError,
};

/// STS's own bounds for `DurationSeconds`: at least 900 s; at most the role's
/// MaxSessionDuration, which is 3600 s unless raised (up to 43200 s).
pub const MIN_DURATION_SECS: u32 = 900;
pub const MAX_ROLE_SESSION_SECS: u32 = 43200;

/// How tokens for client apps are obtained.
#[derive(Debug, Clone)]
pub struct StsSettings {
    /// The RAM role whose tokens clients get (it must hold the VOD upload permissions).
    pub role_arn: String,
    /// Lifetime asked for when the client names none.
    pub default_duration: Duration,
    /// The role's MaxSessionDuration: longer requests are refused here, not by STS.
    pub max_duration: Duration,
}

/// The VOD actions a token for `kinds` needs (`client_uploads.md` §2).
pub fn upload_actions(kinds: &BTreeSet<JobKind>) -> Vec<&'static str> {
    let mut actions = Vec::new();
    for kind in kinds {
        match kind {
            JobKind::Video => actions.extend(["vod:CreateUploadVideo", "vod:RefreshUploadVideo"]),
            JobKind::Image => actions.push("vod:CreateUploadImage"),
            JobKind::AttachedMedia => actions.push("vod:CreateUploadAttachedMedia"),
        }
    }
    actions
}

/// The session policy: the token can do the intersection of this and the role's rights.
pub fn session_policy(kinds: &BTreeSet<JobKind>) -> String {
    serde_json::json!({
        "Version": "1",
        "Statement": [{
            "Effect": "Allow",
            "Action": upload_actions(kinds),
            "Resource": "*",
        }],
    })
    .to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    key_id: String,
    kinds: BTreeSet<JobKind>,
    duration_secs: u32,
}

struct Cached {
    credentials: StsCredentials,
    issued_at: DateTime<Utc>,
}

/// Issues and caches tokens. Cheap to share behind an `Arc`.
pub struct TokenIssuer {
    settings: StsSettings,
    sts: StsClient,
    /// The service's own credentials, which sign AssumeRole.
    signer: Credentials,
    /// One lock: concurrent requests for the same scope wait for one AssumeRole.
    cache: Mutex<HashMap<CacheKey, Cached>>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A token and whether it came from the cache.
pub struct Issued {
    pub credentials: StsCredentials,
    pub cached: bool,
}

impl TokenIssuer {
    pub fn new(settings: StsSettings, sts: StsClient, signer: Credentials) -> Self {
        Self {
            settings,
            sts,
            signer,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &StsSettings {
        &self.settings
    }

    /// A token for `key_id` limited to `kinds`, valid for `duration_secs` (already checked
    /// against the settings).
    pub async fn issue(
        &self,
        key_id: &str,
        kinds: BTreeSet<JobKind>,
        duration_secs: u32,
    ) -> Result<Issued, VodError> {
        let cache_key = CacheKey {
            key_id: key_id.to_owned(),
            kinds,
            duration_secs,
        };
        let mut cache = self.cache.lock().await;
        let now = Utc::now();
        if let Some(c) = cache.get(&cache_key) {
            if !needs_renewal(now, c.issued_at, c.credentials.expiration) {
                return Ok(Issued {
                    credentials: c.credentials.clone(),
                    cached: true,
                });
            }
        }
        cache.retain(|_, c| c.credentials.expiration > now);
        let request = AssumeRoleRequest {
            role_arn: self.settings.role_arn.clone(),
            // Shows in ActionTrail which key the client's calls came through.
            role_session_name: format!("vod-ingest-{key_id}"),
            duration_seconds: Some(duration_secs),
            policy: Some(session_policy(&cache_key.kinds)),
        };
        let credentials = self.sts.assume_role(&self.signer, &request).await?;
        cache.insert(
            cache_key,
            Cached {
                credentials: credentials.clone(),
                issued_at: now,
            },
        );
        Ok(Issued {
            credentials,
            cached: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_upload_actions_of_the_kinds() {
        let kinds: BTreeSet<JobKind> = [JobKind::Video, JobKind::AttachedMedia].into();
        let policy: serde_json::Value = serde_json::from_str(&session_policy(&kinds)).unwrap();
        assert_eq!(policy["Version"], "1");
        assert_eq!(
            policy["Statement"][0]["Action"],
            serde_json::json!([
                "vod:CreateUploadVideo",
                "vod:RefreshUploadVideo",
                "vod:CreateUploadAttachedMedia"
            ])
        );
        let images: BTreeSet<JobKind> = [JobKind::Image].into();
        assert_eq!(upload_actions(&images), vec!["vod:CreateUploadImage"]);
    }
}
