//! The upload address and credential that CreateUpload* and RefreshUploadVideo return as
//! Base64-encoded JSON (`docs/reference/vod-api.md` §2). The emulator encodes them, the worker decodes them.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Where to upload: decoded `UploadAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAddress {
    /// OSS endpoint, with scheme (e.g. `https://oss-cn-shanghai.aliyuncs.com`).
    #[serde(rename = "Endpoint")]
    pub endpoint: String,
    #[serde(rename = "Bucket")]
    pub bucket: String,
    /// The object key to write.
    #[serde(rename = "FileName")]
    pub file_name: String,
    /// Key prefix for M3U8 segments.
    #[serde(
        rename = "ObjectPrefix",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub object_prefix: Option<String>,
}

/// Wire form of `UploadAuth`: every value is a JSON string.
#[derive(Serialize, Deserialize)]
struct UploadAuthWire {
    #[serde(rename = "SecurityToken")]
    security_token: String,
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(
        rename = "ExpireUTCTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    expire_utc_time: Option<String>,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: String,
    #[serde(
        rename = "Expiration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    expiration: Option<serde_json::Value>,
    #[serde(rename = "Region", default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
}

/// Temporary STS credentials for OSS: decoded `UploadAuth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadAuth {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub security_token: Secret,
    /// When the credential stops working, from `ExpireUTCTime`, else from now + `Expiration`.
    pub expires_at: DateTime<Utc>,
    pub region: Option<String>,
}

/// Why an `UploadAddress` or `UploadAuth` could not be decoded. Never carries the secret text.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} is not valid Base64")]
    Base64 { what: &'static str },
    #[error("{what} is not the expected JSON: {detail}")]
    Json { what: &'static str, detail: String },
    #[error("UploadAuth carries neither ExpireUTCTime nor Expiration, so its lifetime is unknown")]
    NoExpiry,
}

fn b64_json<T: serde::de::DeserializeOwned>(
    encoded: &str,
    what: &'static str,
) -> Result<T, DecodeError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| DecodeError::Base64 { what })?;
    // serde_json's message names the field and position, never the value.
    serde_json::from_slice(&bytes).map_err(|e| DecodeError::Json {
        what,
        detail: e.to_string(),
    })
}

fn to_b64_json<T: Serialize>(value: &T) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(value).expect("plain structs serialize"))
}

impl UploadAddress {
    pub fn decode(encoded: &str) -> Result<Self, DecodeError> {
        b64_json(encoded, "UploadAddress")
    }

    pub fn encode(&self) -> String {
        to_b64_json(self)
    }
}

impl UploadAuth {
    /// Decodes `UploadAuth`, taking expiry from `ExpireUTCTime` or, failing that, from
    /// `now + Expiration` seconds; never assumes the documented 3000 s.
    pub fn decode(encoded: &str, now: DateTime<Utc>) -> Result<Self, DecodeError> {
        let wire: UploadAuthWire = b64_json(encoded, "UploadAuth")?;
        let from_utc = wire
            .expire_utc_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let from_seconds = wire
            .expiration
            .as_ref()
            .and_then(|v| match v {
                serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
                serde_json::Value::Number(n) => n.as_i64(),
                _ => None,
            })
            // Checked: a lifetime past chrono's range is as unknown as a missing one.
            .and_then(|secs| now.checked_add_signed(chrono::Duration::try_seconds(secs)?));
        let expires_at = from_utc.or(from_seconds).ok_or(DecodeError::NoExpiry)?;
        Ok(Self {
            access_key_id: wire.access_key_id,
            access_key_secret: Secret::new(wire.access_key_secret),
            security_token: Secret::new(wire.security_token),
            expires_at,
            region: wire.region,
        })
    }

    /// Encodes as VOD does: `Expiration` is the remaining seconds at `now`, as a string.
    pub fn encode(&self, now: DateTime<Utc>) -> String {
        let remaining = (self.expires_at - now).num_seconds().max(0);
        to_b64_json(&UploadAuthWire {
            security_token: self.security_token.expose().to_owned(),
            access_key_id: self.access_key_id.clone(),
            expire_utc_time: Some(self.expires_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            access_key_secret: self.access_key_secret.expose().to_owned(),
            expiration: Some(serde_json::Value::String(remaining.to_string())),
            region: self.region.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_real_2018_upload_address() {
        let a = UploadAddress::decode("eyJFbmRwb2ludCI6Imh0dHBzOi8vb3NzLWNuLXNoYW5naGFpLmFsaXl1bmNzLmNvbSIsIkJ1Y2tldCI6Im91dGluLTAzNzM5YmQ5ODhiYjExZTg4ZDA5MDAxNjNlMWE2NWI2IiwiRmlsZU5hbWUiOiJzdi8yYjYxNmM1NS0xNjdiMDVmNmM2NS8yYjYxNmM1NS0xNjdiMDVmNmM2NS5tcDQifQ==").unwrap();
        assert_eq!(a.endpoint, "https://oss-cn-shanghai.aliyuncs.com");
        assert_eq!(a.bucket, "outin-03739bd988bb11e88d0900163e1a65b6");
        assert_eq!(
            a.file_name,
            "sv/2b616c55-167b05f6c65/2b616c55-167b05f6c65.mp4"
        );
    }

    #[test]
    fn expiry_comes_from_expire_utc_time_before_expiration() {
        let json = r#"{"SecurityToken":"t","AccessKeyId":"STS.x","ExpireUTCTime":"2018-12-15T06:33:54Z","AccessKeySecret":"s","Expiration":"3331","Region":"cn-shanghai"}"#;
        let enc = base64::engine::general_purpose::STANDARD.encode(json);
        let now = Utc::now();
        let auth = UploadAuth::decode(&enc, now).unwrap();
        assert_eq!(auth.expires_at.to_rfc3339(), "2018-12-15T06:33:54+00:00");
        let json = r#"{"SecurityToken":"t","AccessKeyId":"STS.x","AccessKeySecret":"s","Expiration":"120"}"#;
        let enc = base64::engine::general_purpose::STANDARD.encode(json);
        let auth = UploadAuth::decode(&enc, now).unwrap();
        assert_eq!(auth.expires_at, now + chrono::Duration::seconds(120));
    }

    /// `now + Expiration` overflowed chrono (a panic in the worker or the API handler) for an
    /// `Expiration` of 13 digits or more. Found by the `upload_auth` fuzz target
    /// (`"333333333333333331"`).
    #[test]
    fn an_expiration_out_of_range_is_no_expiry_not_a_panic() {
        let now = Utc::now();
        for expiration in [
            r#""9223372036854775807""#,
            "-9223372036854775808",
            r#""99999999999999""#,
        ] {
            let json = format!(
                r#"{{"SecurityToken":"t","AccessKeyId":"STS.x","AccessKeySecret":"s","Expiration":{expiration}}}"#
            );
            let enc = base64::engine::general_purpose::STANDARD.encode(json);
            let err = UploadAuth::decode(&enc, now).unwrap_err();
            assert!(matches!(err, DecodeError::NoExpiry), "{expiration}: {err}");
        }
    }

    #[test]
    fn decode_errors_do_not_echo_secrets() {
        let enc =
            base64::engine::general_purpose::STANDARD.encode(r#"{"AccessKeySecret":"hunter2"}"#);
        let err = UploadAuth::decode(&enc, Utc::now())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
