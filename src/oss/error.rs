//! What can go wrong talking to OSS, classified for the caller: retry, refresh credentials, or stop.

use std::fmt;

pub use crate::transport::TransportKind;

use base64::Engine as _;
use serde::Deserialize;

/// An OSS failure. `Display` and `Debug` never contain credentials: the security token that OSS
/// echoes in some error bodies (`<SecurityToken>`), the `StringToSign` it echoes on signature
/// errors (which holds the token) and request URLs are all dropped when the error is built.
pub struct OssError(Box<OssErrorKind>);

/// The cases of [`OssError`], for callers that need more than the accessors give.
/// Every field is secret-free by construction.
#[derive(Debug, thiserror::Error)]
pub enum OssErrorKind {
    /// OSS answered with an error status (XML `<Error>` body, or `x-oss-err` on HEAD).
    #[error("{}", describe_service(.http_status, .code, .message, .request_id, .ec))]
    Service {
        http_status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
        host_id: Option<String>,
        /// OSS's detailed error code, e.g. `0002-00000007`.
        ec: Option<String>,
    },
    /// No usable answer: connection refused, timeout, reset, TLS failure...
    #[error("OSS request failed ({kind}): {detail}; the network or OSS endpoint may be unreachable, retry later")]
    Transport { kind: TransportKind, detail: String },
    /// The bytes OSS stored are not the bytes we sent.
    #[error("OSS stored a CRC-64 of {server} but the {size} bytes sent have {local} (RequestId {}): the data was corrupted in transit; upload it again", .request_id.as_deref().unwrap_or("unknown"))]
    CrcMismatch {
        local: u64,
        server: u64,
        size: u64,
        request_id: Option<String>,
    },
    /// The upload address cannot be turned into a URL.
    #[error(
        "invalid OSS endpoint {endpoint:?}: {detail}; check the UploadAddress returned by VOD"
    )]
    InvalidEndpoint { endpoint: String, detail: String },
    /// The request cannot be expressed in HTTP (e.g. a Content-Type with a newline).
    #[error("cannot build the OSS request: {detail}")]
    InvalidRequest { detail: String },
    /// OSS answered 2xx but not with what the API promises.
    #[error("unexpected OSS response (HTTP {http_status}, RequestId {}): {detail}", .request_id.as_deref().unwrap_or("unknown"))]
    UnexpectedResponse {
        http_status: u16,
        request_id: Option<String>,
        detail: String,
    },
}

impl From<OssErrorKind> for OssError {
    fn from(kind: OssErrorKind) -> Self {
        Self(Box::new(kind))
    }
}

impl fmt::Display for OssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for OssError {}

impl fmt::Debug for OssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Display is already secret-free; Debug adds the variant for logs.
        f.debug_struct("OssError")
            .field("code", &self.code())
            .field("http_status", &self.http_status())
            .field("request_id", &self.request_id())
            .field("message", &self.to_string())
            .finish()
    }
}

fn describe_service(
    status: &u16,
    code: &str,
    message: &str,
    request_id: &Option<String>,
    ec: &Option<String>,
) -> String {
    let mut s = format!(
        "OSS {code} (HTTP {status}, RequestId {}",
        request_id.as_deref().unwrap_or("unknown")
    );
    if let Some(ec) = ec {
        s.push_str(&format!(", EC {ec}"));
    }
    s.push_str(&format!("): {}", message.trim_end_matches('.')));
    if let Some(hint) = hint(code) {
        s.push_str("; ");
        s.push_str(hint);
    }
    s
}

/// What a person should do about an OSS error code.
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "SecurityTokenExpired" | "InvalidAccessKeyId" | "InvalidSecurityToken"
        | "AccessKeyIdAndSecurityTokenNotMatch" => {
            "the upload credential is no longer valid: get a new one (RefreshUploadVideo for a video, CreateUpload* again for an image or attached media) and retry"
        }
        "RequestTimeTooSkewed" => "check this machine's clock (it must be within 15 minutes of OSS time)",
        "SignatureDoesNotMatch" => {
            "the request was signed with a secret OSS does not accept: the UploadAuth may be corrupted, request a new one"
        }
        "AccessDenied" => "the credential may not cover this bucket/key or the endpoint's region is wrong: check the UploadAddress",
        "NoSuchBucket" => "the bucket in the UploadAddress does not exist in this region",
        "NoSuchKey" => "the object does not exist (yet)",
        "InternalError" | "ServiceUnavailable" | "TotalQpsLimitExceeded"
        | "ActiveRequestLimitExceeded" | "UploadTrafficRateLimitExceeded" => {
            "OSS is busy or failing: retry with backoff"
        }
        "RequestTimeout" | "IncompleteBody" => "the body arrived incompletely: retry",
        "InvalidDigest" => "the body did not match its Content-MD5: retry the upload",
        _ => return None,
    })
}

const RETRYABLE_CODES: &[&str] = &[
    "InternalError",
    "ServiceUnavailable",
    "TotalQpsLimitExceeded",
    "ActiveRequestLimitExceeded",
    "UploadTrafficRateLimitExceeded",
    "RequestTimeout",
    "IncompleteBody",
    "InvalidDigest",
];

const CREDENTIAL_CODES: &[&str] = &[
    "SecurityTokenExpired",
    "InvalidAccessKeyId",
    "InvalidSecurityToken",
];

impl OssError {
    pub fn kind(&self) -> &OssErrorKind {
        &self.0
    }

    /// The OSS error code, or a local code (`ConnectError`, `Timeout`, `TransportError`,
    /// `CrcMismatch`, `InvalidEndpoint`, `InvalidRequest`, `UnexpectedResponse`).
    pub fn code(&self) -> &str {
        match &*self.0 {
            OssErrorKind::Service { code, .. } => code,
            OssErrorKind::Transport { kind, .. } => kind.code(),
            OssErrorKind::CrcMismatch { .. } => "CrcMismatch",
            OssErrorKind::InvalidEndpoint { .. } => "InvalidEndpoint",
            OssErrorKind::InvalidRequest { .. } => "InvalidRequest",
            OssErrorKind::UnexpectedResponse { .. } => "UnexpectedResponse",
        }
    }

    /// The server's message, or a description of the local failure.
    pub fn message(&self) -> &str {
        match &*self.0 {
            OssErrorKind::Service { message, .. } => message,
            OssErrorKind::Transport { detail, .. }
            | OssErrorKind::InvalidEndpoint { detail, .. }
            | OssErrorKind::InvalidRequest { detail }
            | OssErrorKind::UnexpectedResponse { detail, .. } => detail,
            OssErrorKind::CrcMismatch { .. } => {
                "CRC-64 of the stored object differs from the data sent"
            }
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match &*self.0 {
            OssErrorKind::Service { request_id, .. }
            | OssErrorKind::CrcMismatch { request_id, .. }
            | OssErrorKind::UnexpectedResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match &*self.0 {
            OssErrorKind::Service { http_status, .. }
            | OssErrorKind::UnexpectedResponse { http_status, .. } => Some(*http_status),
            _ => None,
        }
    }

    /// Whether sending the same request again (same credentials) can succeed: server faults,
    /// throttling, incomplete bodies, transport failures and CRC mismatches. Credential errors
    /// are not retryable as such: see [`OssError::is_credential_expired`].
    pub fn is_retryable(&self) -> bool {
        match &*self.0 {
            OssErrorKind::Service {
                http_status, code, ..
            } => {
                !CREDENTIAL_CODES.contains(&code.as_str())
                    && (*http_status >= 500 || RETRYABLE_CODES.contains(&code.as_str()))
            }
            OssErrorKind::Transport { .. } | OssErrorKind::CrcMismatch { .. } => true,
            OssErrorKind::UnexpectedResponse { http_status, .. } => *http_status >= 500,
            OssErrorKind::InvalidEndpoint { .. } | OssErrorKind::InvalidRequest { .. } => false,
        }
    }

    /// The temporary credential no longer works: get a new one (RefreshUploadVideo, or a new
    /// CreateUpload*) and retry the same request with it.
    pub fn is_credential_expired(&self) -> bool {
        matches!(&*self.0, OssErrorKind::Service { code, .. } if CREDENTIAL_CODES.contains(&code.as_str()))
    }

    pub(crate) fn transport(err: reqwest::Error) -> Self {
        let kind = TransportKind::of(&err);
        OssError::from(OssErrorKind::Transport {
            kind,
            detail: crate::transport::describe(err),
        })
    }
}

/// The fields of an OSS `<Error>` body we keep. Unknown elements (`SecurityToken`,
/// `StringToSign`, `SignatureProvided`, ...) are skipped by the deserializer and never stored.
#[derive(Debug, Default, Deserialize)]
struct ErrorXml {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "RequestId", default)]
    request_id: Option<String>,
    #[serde(rename = "HostId", default)]
    host_id: Option<String>,
    #[serde(rename = "EC", default)]
    ec: Option<String>,
}

/// Builds the error for a non-2xx answer from its body (or, for HEAD, the base64 `x-oss-err`
/// header), falling back to the status code and the `x-oss-request-id` / `x-oss-ec` headers.
pub(crate) fn from_response(
    status: u16,
    body: &[u8],
    x_oss_err: Option<&str>,
    header_request_id: Option<&str>,
    header_ec: Option<&str>,
) -> OssError {
    let decoded_header;
    let xml: &[u8] = if body.iter().any(|b| !b.is_ascii_whitespace()) {
        body
    } else if let Some(h) = x_oss_err {
        decoded_header = base64::engine::general_purpose::STANDARD
            .decode(h.trim())
            .unwrap_or_default();
        &decoded_header
    } else {
        &[]
    };
    let parsed = std::str::from_utf8(xml)
        .ok()
        .and_then(|s| quick_xml::de::from_str::<ErrorXml>(s).ok())
        .filter(|e| !e.code.is_empty())
        .unwrap_or_default();
    let code = if parsed.code.is_empty() {
        match status {
            404 => "NoSuchKey".to_owned(),
            403 => "AccessDenied".to_owned(),
            _ => format!("Http{status}"),
        }
    } else {
        parsed.code
    };
    let message = if parsed.message.is_empty() {
        format!("HTTP {status} without an error body")
    } else {
        parsed.message
    };
    OssError::from(OssErrorKind::Service {
        http_status: status,
        code,
        message,
        request_id: parsed
            .request_id
            .filter(|s| !s.is_empty())
            .or_else(|| header_request_id.map(str::to_owned)),
        host_id: parsed.host_id,
        ec: parsed.ec.or_else(|| header_ec.map(str::to_owned)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/reference/oss.md` §4.2: the expired-token body, which echoes the token.
    const EXPIRED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error>
  <Code>SecurityTokenExpired</Code>
  <Message>The security token you provided has expired.</Message>
  <RequestId>6A7D67BB6CC4843538EAEA6A</RequestId>
  <HostId>fhnfile.oss-cn-shenzhen.aliyuncs.com</HostId>
  <SecurityToken>CAIS4AJ1SuperSecretTokenValue</SecurityToken>
  <EC>0002-00000007</EC>
  <RecommendDoc>https://api.aliyun.com/troubleshoot?q=0002-00000007</RecommendDoc>
</Error>"#;

    #[test]
    fn security_token_expired_is_parsed_and_the_token_never_shown() {
        let err = from_response(403, EXPIRED.as_bytes(), None, None, None);
        assert_eq!(err.code(), "SecurityTokenExpired");
        assert_eq!(
            err.message(),
            "The security token you provided has expired."
        );
        assert_eq!(err.request_id(), Some("6A7D67BB6CC4843538EAEA6A"));
        assert_eq!(err.http_status(), Some(403));
        assert!(err.is_credential_expired());
        assert!(!err.is_retryable());
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("SuperSecret"), "{shown}");
        assert!(!shown.contains("CAIS4AJ1"), "{shown}");
        assert!(shown.contains("0002-00000007"), "{shown}");
        assert!(shown.contains("RefreshUploadVideo"), "{shown}");
    }

    #[test]
    fn signature_error_drops_the_echoed_string_to_sign() {
        let body = "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message><RequestId>625A</RequestId><HostId>h</HostId><SignatureProvided>X5eag9XWCsd</SignatureProvided><StringToSign>PUT\n\n\nx-oss-security-token:tok-123\n/b/k</StringToSign></Error>";
        let err = from_response(403, body.as_bytes(), None, None, None);
        assert_eq!(err.code(), "SignatureDoesNotMatch");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("tok-123") && !shown.contains("X5eag9XWCsd"),
            "{shown}"
        );
        assert!(!err.is_retryable() && !err.is_credential_expired());
    }

    #[test]
    fn head_errors_come_from_the_x_oss_err_header() {
        let xml = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><RequestId>R1</RequestId></Error>";
        let header = base64::engine::general_purpose::STANDARD.encode(xml);
        let err = from_response(
            404,
            b"",
            Some(&header),
            Some("R-header"),
            Some("0026-00000001"),
        );
        assert_eq!(err.code(), "NoSuchKey");
        assert_eq!(err.request_id(), Some("R1"));
        assert!(err.to_string().contains("0026-00000001"));
        // No body and no header: the status decides.
        let err = from_response(404, b"", None, Some("R2"), None);
        assert_eq!(err.code(), "NoSuchKey");
        assert_eq!(err.request_id(), Some("R2"));
    }

    #[test]
    fn retry_classification() {
        let svc = |status, code: &str| {
            from_response(
                status,
                format!("<Error><Code>{code}</Code><Message>m</Message></Error>").as_bytes(),
                None,
                None,
                None,
            )
        };
        assert!(svc(503, "ServiceUnavailable").is_retryable());
        assert!(svc(500, "InternalError").is_retryable());
        assert!(svc(400, "RequestTimeout").is_retryable());
        assert!(svc(502, "Http502").is_retryable());
        assert!(!svc(403, "AccessDenied").is_retryable());
        assert!(!svc(400, "InvalidArgument").is_retryable());
        assert!(!svc(403, "RequestTimeTooSkewed").is_retryable());
        assert!(svc(403, "RequestTimeTooSkewed")
            .to_string()
            .contains("clock"));
        for code in [
            "SecurityTokenExpired",
            "InvalidAccessKeyId",
            "InvalidSecurityToken",
        ] {
            assert!(svc(403, code).is_credential_expired(), "{code}");
        }
        let crc = OssError::from(OssErrorKind::CrcMismatch {
            local: 1,
            server: 2,
            size: 3,
            request_id: None,
        });
        assert!(crc.is_retryable());
        assert!(crc.to_string().contains("upload it again"));
        let endpoint = OssError::from(OssErrorKind::InvalidEndpoint {
            endpoint: "ftp://x".into(),
            detail: "bad scheme".into(),
        });
        assert!(!endpoint.is_retryable());
    }

    #[test]
    fn garbage_bodies_still_give_a_usable_error() {
        let err = from_response(502, b"<html>Bad gateway</html>", None, Some("RID"), None);
        assert_eq!(err.code(), "Http502");
        assert_eq!(err.request_id(), Some("RID"));
        assert!(err.is_retryable());
    }
}
