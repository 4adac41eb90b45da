//! What the gateway's authentication does alike for signature V1 (`rpc`) and V3 (`v3`): the
//! clock skew it allows, who an AccessKeyId is (with its STS token), and spending the nonce.
//! Its own module, below both, so that `rpc` (which picks V1 or V3) and `v3` import one way.

use chrono::Utc;

use super::errors::RpcError;
use super::state::{Shared, StsCredential, NONCE_WINDOW};

/// Allowed clock difference between client and server.
pub(super) const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(15);

/// Who signed the request.
pub(super) enum Caller {
    /// The configured long-term AccessKey.
    Root,
    Sts(StsCredential),
}

/// Refuses a nonce this AccessKeyId used within [`NONCE_WINDOW`], else remembers it.
pub(super) fn spend_nonce(
    shared: &Shared,
    access_key_id: &str,
    nonce: &str,
) -> Result<(), RpcError> {
    let mut inner = shared.lock();
    inner.prune();
    let key = (access_key_id.to_owned(), nonce.to_owned());
    let now = std::time::Instant::now();
    if inner
        .nonces
        .get(&key)
        .is_some_and(|seen| now.duration_since(*seen) < NONCE_WINDOW)
    {
        return Err(RpcError::new(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    inner.nonces.insert(key, now);
    Ok(())
}

/// Who `access_key_id` is, and the secret its signature must be made with; STS credentials
/// need their `token`. Shared by signature V1 and V3.
pub(super) fn caller_and_secret(
    shared: &Shared,
    access_key_id: &str,
    token: Option<&str>,
) -> Result<(Caller, String), RpcError> {
    let not_found = || {
        RpcError::new(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        )
    };
    let (caller, secret) = if access_key_id == shared.config.access_key_id {
        (
            Caller::Root,
            shared.config.access_key_secret.expose().to_owned(),
        )
    } else if access_key_id.starts_with("STS.") {
        let inner = shared.lock();
        let cred = inner
            .credentials
            .get(access_key_id)
            .cloned()
            .ok_or_else(not_found)?;
        // STS token errors: the POP gateway's `InvalidSecurityToken.*` family (docs/reference/vod-api.md §5.2
        // lists the names; not confirmed for VOD, and one public report shows an expired token
        // as `InvalidParameter` "SecurityToken.Expired"). We choose the specific codes, 400,
        // because a client can act on them. A missing token is `MissingSecurityToken`, the
        // answer STS itself gives (docs/reference/oss.md §4.2, aliyun-sts-go-sdk#1).
        let token = token.ok_or_else(|| {
            RpcError::new(
                400,
                "MissingSecurityToken",
                "SecurityToken is mandatory for this action.",
            )
        })?;
        match inner.tokens.get(token) {
            None => {
                return Err(RpcError::new(
                    400,
                    "InvalidSecurityToken.Malformed",
                    "Specified SecurityToken is malformed.",
                ))
            }
            Some(owner) if owner != access_key_id => {
                return Err(RpcError::new(
                    400,
                    "InvalidSecurityToken.MismatchWithAccessKey",
                    "Specified SecurityToken mismatch with the AccessKey.",
                ))
            }
            Some(_) => {}
        }
        if cred.expires_at <= Utc::now() {
            return Err(RpcError::new(
                400,
                "InvalidSecurityToken.Expired",
                "Specified SecurityToken is expired.",
            ));
        }
        let secret = cred.secret.expose().to_owned();
        (Caller::Sts(cred), secret)
    } else {
        return Err(not_found());
    };
    Ok((caller, secret))
}
