//! STS AssumeRole (2015-04-01): temporary credentials for a RAM role (`docs/reference/vod-api.md` §4).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::{VodError, VodErrorKind};
use super::rpc::{self, RpcCall};
use super::signing::{Credentials, SignatureVersion};
use crate::secret::Secret;

const STS_VERSION: &str = "2015-04-01";

/// STS answers quickly or not at all; a hung call must not hold up credential renewal.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// An STS client. Cheap to clone.
#[derive(Clone)]
pub struct StsClient {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    endpoint: url::Url,
    region: String,
    http: reqwest::Client,
    timeout: Duration,
    signature: SignatureVersion,
}

/// AssumeRole's parameters.
#[derive(Debug, Clone)]
pub struct AssumeRoleRequest {
    /// `acs:ram::<account id>:role/<role name>`.
    pub role_arn: String,
    /// 2–64 of letters, digits, `.@-_`; shows up in ActionTrail as who did what.
    pub role_session_name: String,
    /// 900 up to the role's maximum; STS's default is 3600.
    pub duration_seconds: Option<u32>,
    /// A session policy (JSON) that narrows what the role may do.
    pub policy: Option<String>,
}

/// Temporary credentials from AssumeRole. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct StsCredentials {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub security_token: Secret,
    pub expiration: DateTime<Utc>,
}

impl From<StsCredentials> for Credentials {
    fn from(c: StsCredentials) -> Self {
        Credentials::StsToken {
            access_key_id: c.access_key_id,
            access_key_secret: c.access_key_secret,
            security_token: c.security_token,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct AssumeRoleResponse {
    #[serde(rename = "Credentials")]
    credentials: CredentialsWire,
}

#[derive(Deserialize)]
struct CredentialsWire {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: Secret,
    #[serde(rename = "SecurityToken")]
    security_token: Secret,
    #[serde(rename = "Expiration")]
    expiration: String,
}

impl std::fmt::Debug for StsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("region", &self.inner.region)
            .finish()
    }
}

impl StsClient {
    /// `endpoint` e.g. `https://sts.aliyuncs.com` or `https://sts.cn-shanghai.aliyuncs.com`.
    pub fn new(endpoint: url::Url, region: String, http: reqwest::Client) -> Self {
        Self {
            inner: Arc::new(Inner {
                endpoint,
                region,
                http,
                timeout: DEFAULT_TIMEOUT,
                signature: SignatureVersion::default(),
            }),
        }
    }

    /// Per-attempt timeout (default 15 s).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        let inner = Arc::unwrap_or_clone(self.inner);
        Self {
            inner: Arc::new(Inner { timeout, ..inner }),
        }
    }

    /// Which signature to sign with (default V1).
    pub fn with_signature_version(self, signature: SignatureVersion) -> Self {
        let inner = Arc::unwrap_or_clone(self.inner);
        Self {
            inner: Arc::new(Inner { signature, ..inner }),
        }
    }

    /// Calls AssumeRole, signed with `creds`. Retried (up to three attempts) on retryable
    /// errors: AssumeRole has no side effect besides issuing credentials.
    pub async fn assume_role(
        &self,
        creds: &Credentials,
        req: &AssumeRoleRequest,
    ) -> Result<StsCredentials, VodError> {
        let mut params = vec![
            ("RoleArn", req.role_arn.clone()),
            ("RoleSessionName", req.role_session_name.clone()),
        ];
        if let Some(d) = req.duration_seconds {
            params.push(("DurationSeconds", d.to_string()));
        }
        if let Some(p) = &req.policy {
            params.push(("Policy", p.clone()));
        }
        let call = RpcCall {
            action: "AssumeRole",
            version: STS_VERSION,
            region: &self.inner.region,
            params,
        };
        let inner = &self.inner;
        let response: AssumeRoleResponse = rpc::with_retries("AssumeRole", true, || {
            rpc::call_once(
                &inner.http,
                &inner.endpoint,
                Some(inner.timeout),
                creds,
                &call,
                inner.signature,
            )
        })
        .await?;
        response.into_credentials()
    }
}

impl AssumeRoleResponse {
    pub(crate) fn into_credentials(self) -> Result<StsCredentials, VodError> {
        let wire = self.credentials;
        let expiration = DateTime::parse_from_rfc3339(wire.expiration.trim())
            .map_err(|_| {
                VodError::from(VodErrorKind::InvalidResponse {
                    action: "AssumeRole",
                    http_status: 200,
                    request_id: None,
                    detail: format!(
                        "Credentials.Expiration {:?} is not an ISO 8601 UTC time",
                        wire.expiration
                    ),
                })
            })?
            .with_timezone(&Utc);
        Ok(StsCredentials {
            access_key_id: wire.access_key_id,
            access_key_secret: wire.access_key_secret,
            security_token: wire.security_token,
            expiration,
        })
    }
}
