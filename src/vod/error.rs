//! What can go wrong calling VOD or STS, classified for the caller: retry, fix configuration, or
//! give up. Reference: `docs/reference/vod-api.md` §5.

use std::fmt;

pub use crate::transport::TransportKind;

use serde::Deserialize;

/// A VOD or STS failure. `Display` and `Debug` never contain secrets: request URLs (which carry
/// `Signature` and `SecurityToken`) are stripped from transport errors, and the StringToSign the
/// gateway echoes on `SignatureDoesNotMatch` (which can hold the `SecurityToken`) is cut off.
pub struct VodError(Box<VodErrorKind>);

/// The cases of [`VodError`], for callers that need more than the accessors give.
/// Every field is secret-free by construction.
#[derive(Debug, thiserror::Error)]
pub enum VodErrorKind {
    /// The service answered with an error body `{RequestId, HostId, Code, Message, Recommend?}`.
    #[error("{}", describe_api(.action, .code, .message, .http_status, .request_id))]
    Api {
        action: &'static str,
        code: String,
        message: String,
        request_id: Option<String>,
        host_id: Option<String>,
        recommend: Option<String>,
        http_status: u16,
    },
    /// No usable answer: connection refused, timeout, reset, TLS failure...
    #[error("{action} failed ({kind}): {detail}; check the endpoint and network, then retry")]
    Transport {
        action: &'static str,
        kind: TransportKind,
        detail: String,
    },
    /// The service answered, but not with what the API promises (e.g. a proxy's HTML page).
    #[error("{action}: unexpected response (HTTP {}, RequestId {}): {detail}", .http_status, .request_id.as_deref().unwrap_or("unknown"))]
    InvalidResponse {
        action: &'static str,
        http_status: u16,
        request_id: Option<String>,
        detail: String,
    },
    /// Local configuration is unusable (e.g. an endpoint URL that cannot take a query).
    #[error("{detail}")]
    Config { detail: String },
}

impl From<VodErrorKind> for VodError {
    fn from(kind: VodErrorKind) -> Self {
        Self(Box::new(kind))
    }
}

impl fmt::Display for VodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for VodError {}

impl fmt::Debug for VodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Display is secret-free by construction; Debug reuses it with the structured fields.
        f.debug_struct("VodError")
            .field("code", &self.code())
            .field("http_status", &self.http_status())
            .field("request_id", &self.request_id())
            .field("retryable", &self.is_retryable())
            .field("message", &self.to_string())
            .finish()
    }
}

fn describe_api(
    action: &str,
    code: &str,
    message: &str,
    status: &u16,
    request_id: &Option<String>,
) -> String {
    let mut s = format!(
        "{action} failed: {code} (HTTP {status}, RequestId {}): {message}",
        request_id.as_deref().unwrap_or("unknown")
    );
    if let Some(hint) = hint(code) {
        s.push_str(" -- ");
        s.push_str(hint);
    }
    s
}

/// What a person should do about an error code.
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "InvalidAccessKeyId.NotFound" => {
            "the AccessKey ID is unknown: check ALIBABA_CLOUD_ACCESS_KEY_ID (and the endpoint/region)"
        }
        "InvalidAccessKeyId.Inactive" => {
            "the AccessKey is disabled: enable it in the RAM console or set another ALIBABA_CLOUD_ACCESS_KEY_ID"
        }
        "SignatureDoesNotMatch" | "InvalidAccessKeySecret" => {
            "the signature was rejected: check ALIBABA_CLOUD_ACCESS_KEY_SECRET (it must belong to ALIBABA_CLOUD_ACCESS_KEY_ID)"
        }
        "IncompleteSignature" | "InvalidSignatureMethod" => {
            "the request was signed in a way the service does not accept: this is a bug in vod-ingest"
        }
        "InvalidTimeStamp.Expired" => {
            "the request time is more than 15 minutes off: check this machine's clock (NTP)"
        }
        "InvalidTimeStamp.Format" => "the Timestamp is malformed: this is a bug in vod-ingest",
        "SignatureNonceUsed" => "the nonce was reused: the call is retried with a fresh one",
        "Forbidden.RAM" | "Forbidden" | "NoPermission" => {
            "the RAM user or role lacks permission: grant it AliyunVODFullAccess (or the specific vod:* actions)"
        }
        "OperationDenied" => "VOD is not activated for this account: activate it in the console",
        "OperationDenied.Suspended" => "the VOD service is suspended: check the account's billing",
        "InvalidSecurityToken.Expired" | "SecurityToken.Expired" => {
            "the STS token expired: set a new ALIBABA_CLOUD_SECURITY_TOKEN or use ALIBABA_CLOUD_ROLE_ARN so it is renewed"
        }
        "InvalidSecurityToken.Malformed" | "InvalidSecurityToken.MismatchWithAccessKey" => {
            "the STS token does not match the AccessKey: check ALIBABA_CLOUD_SECURITY_TOKEN"
        }
        "EntityNotExist.Role" | "InvalidParameter.RoleArn" => {
            "the role does not exist: check ALIBABA_CLOUD_ROLE_ARN"
        }
        "NoPermission.Role" | "AuthenticationFail.NoPermission" => {
            "this AccessKey may not assume the role: grant AliyunSTSAssumeRoleAccess and check the role's trust policy"
        }
        "InvalidStorage.NotFound" => "the StorageLocation does not exist in this region: fix storage_location",
        "InvalidTemplateGroupId.NotFound" => "the TemplateGroupId does not exist: fix template_group_id",
        "InvalidFileName.Extension" => {
            "VOD does not accept this file extension: give a file_name with a supported extension"
        }
        "IllegalCharacters" => "a parameter contains emoji or other forbidden characters: remove them",
        "LengthExceededMax" | "TagsExceededMax" => "a parameter is too long: shorten it",
        "InvalidVideo.NotFound" | "NoSuchResource" => "the media does not exist (deleted, or another account/region)",
        "InvalidVideo.Damaged" => "the video is damaged: create a new upload instead of refreshing this one",
        "InternalError" | "ServiceUnavailable" | "ServiceUnAvailable" | "UnknownError" => {
            "the service failed temporarily: retry later"
        }
        c if c.starts_with("Throttling") => "the request was throttled: retry later or lower VOD_INGEST_CONCURRENCY",
        _ => return None,
    })
}

/// Codes that say the request was refused before it was executed, so even a non-idempotent call
/// (CreateUpload*) can be sent again without creating a second asset.
fn not_executed_code(code: &str) -> bool {
    code.starts_with("Throttling") || code == "SignatureNonceUsed"
}

impl VodError {
    pub fn kind(&self) -> &VodErrorKind {
        &self.0
    }

    /// The service's error code, or a local one: `ConnectError`, `Timeout`, `TransportError`,
    /// `InvalidResponse`, `InvalidConfig`.
    pub fn code(&self) -> &str {
        match &*self.0 {
            VodErrorKind::Api { code, .. } => code,
            VodErrorKind::Transport { kind, .. } => kind.code(),
            VodErrorKind::InvalidResponse { .. } => "InvalidResponse",
            VodErrorKind::Config { .. } => "InvalidConfig",
        }
    }

    /// The service's message (without any echoed StringToSign), or a local description.
    pub fn message(&self) -> &str {
        match &*self.0 {
            VodErrorKind::Api { message, .. } => message,
            VodErrorKind::Transport { detail, .. }
            | VodErrorKind::InvalidResponse { detail, .. }
            | VodErrorKind::Config { detail } => detail,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match &*self.0 {
            VodErrorKind::Api { request_id, .. }
            | VodErrorKind::InvalidResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match &*self.0 {
            VodErrorKind::Api { http_status, .. }
            | VodErrorKind::InvalidResponse { http_status, .. } => Some(*http_status),
            _ => None,
        }
    }

    /// Whether the same call may succeed later: HTTP 5xx, `InternalError`,
    /// `ServiceUnavailable`/`ServiceUnAvailable`, `Throttling*`, `SignatureNonceUsed`, and
    /// transport failures. Signature, AccessKey, validation and not-found errors are final.
    pub fn is_retryable(&self) -> bool {
        match &*self.0 {
            VodErrorKind::Api {
                code, http_status, ..
            } => {
                *http_status >= 500
                    || matches!(
                        code.as_str(),
                        "InternalError" | "ServiceUnavailable" | "ServiceUnAvailable"
                    )
                    || not_executed_code(code)
            }
            VodErrorKind::Transport { .. } => true,
            VodErrorKind::InvalidResponse { http_status, .. } => *http_status >= 500,
            VodErrorKind::Config { .. } => false,
        }
    }

    /// Whether the request certainly did not run on the server (connection never established,
    /// throttled, nonce rejected), so that even a non-idempotent CreateUpload* can be resent
    /// without risking a duplicate asset.
    pub fn request_not_executed(&self) -> bool {
        match &*self.0 {
            VodErrorKind::Api { code, .. } => not_executed_code(code),
            VodErrorKind::Transport { kind, .. } => *kind == TransportKind::Connect,
            _ => false,
        }
    }

    /// Defence in depth: blanks out any of `secrets` that the server echoed into a message.
    pub(crate) fn redact(mut self, secrets: &[String]) -> Self {
        if let VodErrorKind::Api { message, .. }
        | VodErrorKind::InvalidResponse {
            detail: message, ..
        } = &mut *self.0
        {
            for secret in secrets.iter().filter(|s| s.len() >= 4) {
                if message.contains(secret.as_str()) {
                    *message = message.replace(secret.as_str(), "[redacted]");
                }
            }
        }
        self
    }

    pub(crate) fn transport(action: &'static str, err: reqwest::Error) -> Self {
        let kind = TransportKind::of(&err);
        VodError::from(VodErrorKind::Transport {
            action,
            kind,
            // The URL holds the signature and any SecurityToken: never show it.
            detail: crate::transport::describe(err),
        })
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "RequestId")]
    request_id: Option<String>,
    #[serde(rename = "HostId")]
    host_id: Option<String>,
    #[serde(rename = "Recommend")]
    recommend: Option<String>,
}

/// The part of a `SignatureDoesNotMatch` message that echoes the server's StringToSign.
const ECHO_MARKER: &str = "server string to sign is:";

/// Builds the error for a non-2xx answer. `our_string_to_sign` lets a `SignatureDoesNotMatch` say
/// whether the secret is wrong (same StringToSign on both sides) or the request was altered.
pub(crate) fn from_error_response(
    action: &'static str,
    status: u16,
    body: &[u8],
    our_string_to_sign: &str,
) -> VodError {
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return VodError::from(VodErrorKind::InvalidResponse {
            action,
            http_status: status,
            request_id: None,
            detail: format!(
                "HTTP {status} with a body that is not a JSON error ({} bytes); is the endpoint a VOD/STS endpoint?",
                body.len()
            ),
        });
    };
    let Some(code) = parsed.code.filter(|c| !c.is_empty()) else {
        return VodError::from(VodErrorKind::InvalidResponse {
            action,
            http_status: status,
            request_id: parsed.request_id,
            detail: format!("HTTP {status} with an error body that has no Code"),
        });
    };
    let mut message = parsed.message.unwrap_or_default();
    if let Some(at) = message.find(ECHO_MARKER) {
        let echoed = message[at + ECHO_MARKER.len()..].trim().to_owned();
        message.truncate(at);
        let message_trimmed = message.trim_end().trim_end_matches('.').to_owned();
        message = if echoed == our_string_to_sign {
            format!("{message_trimmed} (the request arrived unaltered, so the AccessKeySecret is wrong)")
        } else {
            format!("{message_trimmed} (the server saw a different request than the one signed: a proxy may have altered it)")
        };
    }
    VodError::from(VodErrorKind::Api {
        action,
        code,
        message,
        request_id: parsed.request_id,
        host_id: parsed.host_id,
        recommend: parsed.recommend,
        http_status: status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> VodError {
        from_error_response(
            "CreateUploadVideo",
            status,
            format!(r#"{{"RequestId":"R","HostId":"vod.cn-shanghai.aliyuncs.com","Code":"{code}","Message":"m"}}"#).as_bytes(),
            "",
        )
    }

    #[test]
    fn parses_the_documented_error_body() {
        let body = br#"{"RequestId":"8906582E-6722-409A-A6C4-0E7863B733A5","HostId":"vod.cn-shanghai.aliyuncs.com","Code":"UnsupportedOperation","Message":"The specified action is not supported."}"#;
        let err = from_error_response("GetVideoInfo", 400, body, "");
        assert_eq!(err.code(), "UnsupportedOperation");
        assert_eq!(err.message(), "The specified action is not supported.");
        assert_eq!(
            err.request_id(),
            Some("8906582E-6722-409A-A6C4-0E7863B733A5")
        );
        assert_eq!(err.http_status(), Some(400));
        assert!(!err.is_retryable());
        assert!(err
            .to_string()
            .contains("GetVideoInfo failed: UnsupportedOperation"));
    }

    #[test]
    fn signature_mismatch_drops_the_echoed_string_to_sign() {
        let ours = "POST&%2F&AccessKeyId%3DSTS.x%26SecurityToken%3Dsecret-token-value";
        let body = serde_json::json!({
            "Recommend": "https://error-center.aliyun.com/status/search?Keyword=SignatureDoesNotMatch&source=PopGw",
            "Message": format!("Specified signature is not matched with our calculation. server string to sign is:{ours}"),
            "RequestId": "1DD9FD9A-8E57-43E5-B911-E4F5AD2027F7",
            "HostId": "vod.cn-shanghai.aliyuncs.com",
            "Code": "SignatureDoesNotMatch"
        })
        .to_string();
        let err = from_error_response("CreateUploadVideo", 400, body.as_bytes(), ours);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("secret-token-value"), "{shown}");
        assert!(shown.contains("AccessKeySecret is wrong"), "{shown}");
        assert!(shown.contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"), "{shown}");
        assert!(!err.is_retryable());
        let altered = from_error_response("CreateUploadVideo", 400, body.as_bytes(), "other");
        assert!(altered.to_string().contains("proxy"), "{altered}");
    }

    #[test]
    fn echoed_secrets_are_redacted() {
        let body = br#"{"RequestId":"R","Code":"InvalidParameter","Message":"The specified parameter SecurityToken value CAIS-tok is not valid."}"#;
        let err = from_error_response("GetVideoInfo", 400, body, "")
            .redact(&["CAIS-tok".to_owned(), "ab".to_owned()]);
        assert_eq!(
            err.message(),
            "The specified parameter SecurityToken value [redacted] is not valid."
        );
    }

    #[test]
    fn hints_tell_a_person_what_to_do() {
        assert!(api(404, "InvalidAccessKeyId.NotFound")
            .to_string()
            .contains("check ALIBABA_CLOUD_ACCESS_KEY_ID"));
        assert!(api(400, "InvalidTimeStamp.Expired")
            .to_string()
            .contains("check this machine's clock"));
    }

    #[test]
    fn retry_classification() {
        for (status, code) in [
            (500, "InternalError"),
            (503, "ServiceUnavailable"),
            (503, "ServiceUnAvailable"),
            (400, "Throttling"),
            (400, "Throttling.User"),
            (400, "Throttling.Api"),
            (400, "SignatureNonceUsed"),
            (503, "AddVideoFailed"),
        ] {
            assert!(api(status, code).is_retryable(), "{code}");
        }
        for (status, code) in [
            (400, "SignatureDoesNotMatch"),
            (404, "InvalidAccessKeyId.NotFound"),
            (400, "InvalidParameter"),
            (400, "MissingTitle"),
            (404, "InvalidVideo.NotFound"),
            (403, "Forbidden.RAM"),
            (400, "InvalidTimeStamp.Expired"),
        ] {
            assert!(!api(status, code).is_retryable(), "{code}");
        }
        // Only refusals before execution make a non-idempotent call safe to resend.
        assert!(api(400, "Throttling.User").request_not_executed());
        assert!(api(400, "SignatureNonceUsed").request_not_executed());
        assert!(!api(500, "InternalError").request_not_executed());
        assert!(!api(503, "ServiceUnavailable").request_not_executed());
        let connect = VodError::from(VodErrorKind::Transport {
            action: "CreateUploadVideo",
            kind: TransportKind::Connect,
            detail: "refused".into(),
        });
        assert!(connect.is_retryable() && connect.request_not_executed());
        let timeout = VodError::from(VodErrorKind::Transport {
            action: "CreateUploadVideo",
            kind: TransportKind::Timeout,
            detail: "slow".into(),
        });
        assert!(timeout.is_retryable() && !timeout.request_not_executed());
        assert_eq!(timeout.code(), "Timeout");
    }

    #[test]
    fn non_json_error_bodies() {
        let err = from_error_response("GetVideoInfo", 502, b"<html>bad gateway</html>", "");
        assert_eq!(err.code(), "InvalidResponse");
        assert!(err.is_retryable());
        assert!(!from_error_response("GetVideoInfo", 404, b"nope", "").is_retryable());
    }
}
