//! A PostObject form signed by the service (`"upload_method": "post_form"` on
//! `POST /v1/uploads`), in the shape of S3's presigned POST: a URL and the fields to send
//! before the file. The policy names exactly this object, expires with the credential and
//! bounds the size by the declared `file_size` (capped at the key's limit), so OSS itself
//! refuses an oversized file before a byte is stored. Signed with signature V4
//! (`OSS4-HMAC-SHA256`), using the upload credential VOD issued for this object.

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;

use crate::vod::UploadTicket;

/// The form a client sends as `multipart/form-data`: every field of `fields`, then the file as
/// the last field, named `file`. No `Debug`: the fields hold the credential's token.
#[derive(Serialize)]
pub struct PostForm {
    pub url: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Why no form can be made for a ticket (VOD's address cannot be posted to).
#[derive(Debug, thiserror::Error)]
#[error("VOD's upload address cannot take a form upload: {0}")]
pub struct PostFormError(String);

/// The form for `ticket`: at most `max_bytes` (the declared size capped at the key's limit).
pub fn build(
    ticket: &UploadTicket,
    region: &str,
    max_bytes: u64,
    now: DateTime<Utc>,
) -> Result<PostForm, PostFormError> {
    let address = &ticket.address;
    let auth = &ticket.auth;
    let url = crate::oss::post_form_url(&address.endpoint, &address.bucket)
        .map_err(|e| PostFormError(e.to_string()))?;
    let region = auth.region.as_deref().unwrap_or(region);
    let date = now.format("%Y%m%d").to_string();
    let datetime = now.format("%Y%m%dT%H%M%SZ").to_string();
    let credential = crate::sign::post_policy::v4_credential(&auth.access_key_id, &date, region);
    let token = auth.security_token.expose();
    // Every field but the signature and the file is bound by a condition, so a client can
    // change none of them; the token is bound too, as OSS's V4 form requires.
    let policy = json!({
        "expiration": auth.expires_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "conditions": [
            {"bucket": address.bucket},
            ["eq", "$key", address.file_name],
            ["content-length-range", 0, max_bytes],
            ["eq", "$success_action_status", "200"],
            {"x-oss-signature-version": "OSS4-HMAC-SHA256"},
            {"x-oss-credential": credential},
            {"x-oss-date": datetime},
            {"x-oss-security-token": token},
        ],
    });
    let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let signature = crate::sign::post_policy::v4_signature(
        auth.access_key_secret.expose(),
        &date,
        region,
        &policy,
    );
    let mut fields = serde_json::Map::new();
    for (name, value) in [
        ("key", address.file_name.as_str()),
        ("policy", policy.as_str()),
        ("success_action_status", "200"),
        ("x-oss-signature-version", "OSS4-HMAC-SHA256"),
        ("x-oss-credential", credential.as_str()),
        ("x-oss-date", datetime.as_str()),
        ("x-oss-security-token", token),
        ("x-oss-signature", signature.as_str()),
    ] {
        fields.insert(name.to_owned(), value.into());
    }
    Ok(PostForm {
        url: url.to_string(),
        fields,
    })
}
