//! Signatures of the webhooks we send to apps, as the Standard Webhooks specification defines
//! them: `webhook-signature: v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>`, the
//! secret handed to the app as `whsec_<base64>`. Pinned to vectors made by the specification's
//! own Python library (`tests/fixtures/standard_webhooks_vectors.json`).
//!
//! Secrets are not stored anywhere: each key's secret is derived from the server's signing key,
//! the key id and a generation that rotation increments, so the database holds nothing that
//! signs and every process derives the same secret.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

const PREFIX: &str = "whsec_";

/// A webhook signing secret (its bytes; `Debug` shows none of them).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// Why a `whsec_` string is not a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is whsec_ followed by base64 (as it was shown when the key was created)")]
pub struct MalformedSecret;

impl WebhookSecret {
    /// The secret of API key `key_id` at `generation`, derived from the server's signing key.
    pub fn derive(signing_key: &Secret, key_id: &str, generation: i32) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        // Separators that cannot appear in a key id keep (id, generation) pairs distinct.
        mac.update(b"vod-ingest app webhook secret v1\0");
        mac.update(key_id.as_bytes());
        mac.update(b"\0");
        mac.update(generation.to_string().as_bytes());
        Self(mac.finalize().into_bytes().to_vec())
    }

    /// A secret as an app holds it (`whsec_<base64>`).
    pub fn parse(whsec: &str) -> Result<Self, MalformedSecret> {
        let encoded = whsec.trim().strip_prefix(PREFIX).ok_or(MalformedSecret)?;
        STANDARD
            .decode(encoded)
            .ok()
            .filter(|bytes| !bytes.is_empty())
            .map(Self)
            .ok_or(MalformedSecret)
    }

    /// `whsec_<base64>`: what the operator hands to the app, once.
    pub fn to_whsec(&self) -> Secret {
        Secret::new(format!("{PREFIX}{}", STANDARD.encode(&self.0)))
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret, space-separated, so that during a
/// rotation a receiver holding either the old or the new secret accepts the message.
pub fn signature_header(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_secrets_differ_by_key_generation_and_signing_key() {
        let a = Secret::from("signing key one, long enough to be a key");
        let b = Secret::from("signing key two, long enough to be a key");
        let s = WebhookSecret::derive(&a, "key1", 0);
        assert_eq!(s, WebhookSecret::derive(&a, "key1", 0));
        assert_ne!(s, WebhookSecret::derive(&a, "key1", 1));
        assert_ne!(s, WebhookSecret::derive(&a, "key2", 0));
        assert_ne!(s, WebhookSecret::derive(&b, "key1", 0));
        assert_eq!(WebhookSecret::parse(s.to_whsec().expose()).unwrap(), s);
        assert!(!format!("{s:?}").contains(&STANDARD.encode(&s.0)));
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for bad in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
        ] {
            assert_eq!(WebhookSecret::parse(bad), Err(MalformedSecret), "{bad:?}");
        }
    }
}
