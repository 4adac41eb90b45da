//! STS tokens for client apps (`POST /v1/sts-token`): AssumeRole on `VOD_INGEST_STS_ROLE_ARN`
//! with a session policy that allows only the VOD upload actions of the kinds the key may
//! upload. STS is throttled and its docs advise caching, so tokens are reused per key and
//! scope until a fifth of their life (at least a minute) remains. Durations are rounded down to
//! whole quarter hours, so a client that varies them gets the same few scopes (and cached
//! tokens) instead of one AssumeRole call per value.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use std::sync::Arc;

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

/// Requested durations are rounded down to a multiple of this.
pub const DURATION_STEP_SECS: u32 = 900;

/// `duration_secs` (already within the bounds) rounded down to a whole step.
pub fn round_duration(duration_secs: u32) -> u32 {
    (duration_secs / DURATION_STEP_SECS).max(1) * DURATION_STEP_SECS
}

/// The VOD actions a token for `kinds` may call. `RefreshUploadVideo` only with `refresh`: it
/// takes any VideoId in the account and its credential overwrites that video's source file,
/// and RAM cannot narrow it to the token's own videos.
pub fn upload_actions(kinds: &BTreeSet<JobKind>, refresh: bool) -> Vec<&'static str> {
    let mut actions = Vec::new();
    for kind in kinds {
        match kind {
            JobKind::Video => {
                actions.push("vod:CreateUploadVideo");
                if refresh {
                    actions.push("vod:RefreshUploadVideo");
                }
            }
            JobKind::Image => actions.push("vod:CreateUploadImage"),
            JobKind::AttachedMedia => actions.push("vod:CreateUploadAttachedMedia"),
        }
    }
    actions
}

/// The session policy: the token can do the intersection of this and the role's rights.
pub fn session_policy(kinds: &BTreeSet<JobKind>, refresh: bool) -> String {
    serde_json::json!({
        "Version": "1",
        "Statement": [{
            "Effect": "Allow",
            "Action": upload_actions(kinds, refresh),
            "Resource": "*",
        }],
    })
    .to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    key_id: String,
    kinds: BTreeSet<JobKind>,
    refresh: bool,
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
    /// One slot per scope, each with its own async lock: concurrent requests for the same
    /// scope wait for one AssumeRole, and other scopes do not wait for it. The map's own lock
    /// is held only to find a slot.
    cache: std::sync::Mutex<HashMap<CacheKey, Slot>>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

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
            cache: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &StsSettings {
        &self.settings
    }

    /// A token for `key_id` limited to `kinds` (and `RefreshUploadVideo` with `refresh`), valid
    /// for `duration_secs` (already checked against the settings, then rounded down to a
    /// quarter hour).
    pub async fn issue(
        &self,
        key_id: &str,
        kinds: BTreeSet<JobKind>,
        refresh: bool,
        duration_secs: u32,
    ) -> Result<Issued, VodError> {
        let cache_key = CacheKey {
            key_id: key_id.to_owned(),
            kinds,
            refresh,
            duration_secs: round_duration(duration_secs),
        };
        let now = Utc::now();
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            // Slots of expired tokens go, so the map holds at most the live scopes.
            cache.retain(|_, slot| {
                slot.try_lock().map_or(true, |c| {
                    c.as_ref().is_some_and(|c| c.credentials.expiration > now)
                })
            });
            cache.entry(cache_key.clone()).or_default().clone()
        };
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref() {
            if !needs_renewal(now, c.issued_at, c.credentials.expiration) {
                return Ok(Issued {
                    credentials: c.credentials.clone(),
                    cached: true,
                });
            }
        }
        let request = AssumeRoleRequest {
            role_arn: self.settings.role_arn.clone(),
            // Shows in ActionTrail which key the client's calls came through.
            role_session_name: format!("vod-ingest-{key_id}"),
            duration_seconds: Some(cache_key.duration_secs),
            policy: Some(session_policy(&cache_key.kinds, refresh)),
        };
        let credentials = self.sts.assume_role(&self.signer, &request).await?;
        *cached = Some(Cached {
            credentials: credentials.clone(),
            issued_at: now,
        });
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
        let policy: serde_json::Value =
            serde_json::from_str(&session_policy(&kinds, false)).unwrap();
        assert_eq!(policy["Version"], "1");
        assert_eq!(
            policy["Statement"][0]["Action"],
            serde_json::json!(["vod:CreateUploadVideo", "vod:CreateUploadAttachedMedia"])
        );
        assert_eq!(
            upload_actions(&kinds, true),
            vec![
                "vod:CreateUploadVideo",
                "vod:RefreshUploadVideo",
                "vod:CreateUploadAttachedMedia"
            ]
        );
        let images: BTreeSet<JobKind> = [JobKind::Image].into();
        assert_eq!(upload_actions(&images, true), vec!["vod:CreateUploadImage"]);
    }

    #[test]
    fn durations_round_down_to_quarter_hours() {
        assert_eq!(round_duration(900), 900);
        assert_eq!(round_duration(901), 900);
        assert_eq!(round_duration(1799), 900);
        assert_eq!(round_duration(3600), 3600);
        assert_eq!(round_duration(43200), 43200);
    }
}
