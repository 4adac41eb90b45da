//! Setting a key's webhook: its URL checked against [`TargetPolicy`], and its secret shown
//! when there is a new one. The CLI and the console both go through here.

use crate::keys::{ApiKey, KeyStore};
use crate::secret::Secret;

use super::{TargetError, TargetPolicy};
use crate::sign::standard_webhooks::WebhookSecret;

/// Why a key's webhook could not be set.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    #[error("webhooks are off: set VOD_INGEST_WEBHOOK_SIGNING_KEY (at least 32 characters, e.g. `openssl rand -base64 32`, the same in every process) to give keys a webhook URL")]
    NoSigningKey,
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("no API key with id {0:?}: `vod-ingest api-key list` shows the ids")]
    NoSuchKey(String),
    #[error(
        "API key {0} has no webhook URL: set one first (`api-key update {0} --webhook-url URL`)"
    )]
    NoWebhook(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A webhook URL that [`KeyWebhooks::check_url`] accepted (normalised): the only kind
/// [`KeyWebhooks::set_url`] stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl(String);

impl CheckedUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What setting a webhook did.
#[derive(Debug)]
pub struct WebhookSet {
    pub key: ApiKey,
    /// `whsec_...`, when the key got a new secret: shown this once.
    pub new_secret: Option<Secret>,
}

/// The webhook settings of keys, for operators.
#[derive(Debug, Clone)]
pub struct KeyWebhooks {
    pub signing_key: Option<Secret>,
    pub policy: TargetPolicy,
}

impl KeyWebhooks {
    /// Sets (`Some`) or removes (`None`) the webhook URL of a key.
    pub async fn set_url(
        &self,
        keys: &KeyStore,
        key_id: &str,
        url: Option<&CheckedUrl>,
    ) -> Result<WebhookSet, WebhookSetupError> {
        let before = keys
            .get(key_id)
            .await?
            .ok_or_else(|| WebhookSetupError::NoSuchKey(key_id.to_owned()))?;
        let key = keys
            .set_webhook_url(key_id, url.map(CheckedUrl::as_str))
            .await?
            .ok_or_else(|| WebhookSetupError::NoSuchKey(key_id.to_owned()))?;
        let fresh = before.webhook.url.is_none() && key.webhook.url.is_some();
        let new_secret = fresh.then(|| self.secret_of(&key)).transpose()?;
        Ok(WebhookSet { key, new_secret })
    }

    /// Checks a webhook URL against the [`TargetPolicy`] (before anything is stored or a key is
    /// created with it, so that a refused URL changes nothing).
    pub async fn check_url(&self, raw: &str) -> Result<CheckedUrl, WebhookSetupError> {
        if self.signing_key.is_none() {
            return Err(WebhookSetupError::NoSigningKey);
        }
        let parsed = self.policy.parse(raw)?;
        self.policy.check(&parsed).await?;
        Ok(CheckedUrl(parsed.to_string()))
    }

    /// Moves the key to a new secret and shows it; the previous one still signs for a day.
    pub async fn rotate(
        &self,
        keys: &KeyStore,
        key_id: &str,
    ) -> Result<WebhookSet, WebhookSetupError> {
        if self.signing_key.is_none() {
            return Err(WebhookSetupError::NoSigningKey);
        }
        let before = keys
            .get(key_id)
            .await?
            .ok_or_else(|| WebhookSetupError::NoSuchKey(key_id.to_owned()))?;
        if before.webhook.url.is_none() {
            return Err(WebhookSetupError::NoWebhook(key_id.to_owned()));
        }
        let key = keys
            .rotate_webhook_secret(key_id)
            .await?
            .ok_or_else(|| WebhookSetupError::NoSuchKey(key_id.to_owned()))?;
        let new_secret = Some(self.secret_of(&key)?);
        Ok(WebhookSet { key, new_secret })
    }

    fn secret_of(&self, key: &ApiKey) -> Result<Secret, WebhookSetupError> {
        let signing_key = self
            .signing_key
            .as_ref()
            .ok_or(WebhookSetupError::NoSigningKey)?;
        Ok(
            WebhookSecret::derive(signing_key, &key.key_id, key.webhook.secret_generation)
                .to_whsec(),
        )
    }
}
