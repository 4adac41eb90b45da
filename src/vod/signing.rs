//! What signs a VOD / STS call: the credentials, and which signature (V1 or V3) to use.
//! The lowest layer of the client: `rpc`, `sts` and `credentials` build on it.

use crate::secret::Secret;

/// How VOD/STS calls are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    AccessKey {
        access_key_id: String,
        access_key_secret: Secret,
    },
    StsToken {
        access_key_id: String,
        access_key_secret: Secret,
        security_token: Secret,
    },
}

impl Credentials {
    pub fn access_key_id(&self) -> &str {
        match self {
            Credentials::AccessKey { access_key_id, .. }
            | Credentials::StsToken { access_key_id, .. } => access_key_id,
        }
    }

    pub fn access_key_secret(&self) -> &Secret {
        match self {
            Credentials::AccessKey {
                access_key_secret, ..
            }
            | Credentials::StsToken {
                access_key_secret, ..
            } => access_key_secret,
        }
    }

    /// The STS token to send as `SecurityToken`, if these are STS credentials.
    pub fn security_token(&self) -> Option<&Secret> {
        match self {
            Credentials::AccessKey { .. } => None,
            Credentials::StsToken { security_token, .. } => Some(security_token),
        }
    }
}

/// Which API signature our client uses (`VOD_INGEST_SIGNATURE_VERSION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SignatureVersion {
    /// RPC signature V1 (HMAC-SHA1 `Signature` parameter), what the classic SDKs send.
    #[default]
    V1,
    /// Signature V3 (`ACS3-HMAC-SHA256` in `Authorization`), the V2.0 SDKs' default.
    V3,
}

impl std::str::FromStr for SignatureVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(Self::V1),
            "v3" | "3" => Ok(Self::V3),
            other => Err(format!(
                "{other:?} is not a signature version: use v1 or v3"
            )),
        }
    }
}

impl std::fmt::Display for SignatureVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::V3 => "v3",
        })
    }
}
