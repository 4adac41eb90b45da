//! OSS uploads with the temporary credentials VOD hands out.
//!
//! Requests are signed with OSS V1 (`crate::sign::oss`), the scheme oss2 and VOD's own upload SDKs
//! use with `UploadAuth`. Everything goes through one private `signed_request` helper so that the
//! multipart calls (InitiateMultipartUpload, UploadPart, Complete, ListParts, Abort) can sit
//! beside PutObject and HeadObject without repeating the signing rules.

pub(crate) mod error;
mod mime;
pub(crate) mod parts;

use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;

use crate::secret::Secret;
use crate::sign;
use crate::vod::{UploadAddress, UploadAuth};

pub use error::{OssError, OssErrorKind, TransportKind};
pub use parts::{
    determine_part_size, CompletedUpload, ListedPart, UploadedPart, MAX_PARTS, MIN_PART_SIZE,
};

/// Credentials for signing OSS requests; with VOD they are always STS ones (token present).
#[derive(Debug, Clone)]
pub struct OssCredentials {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub security_token: Option<Secret>,
}

impl OssCredentials {
    pub fn from_upload_auth(auth: &UploadAuth) -> Self {
        Self {
            access_key_id: auth.access_key_id.clone(),
            access_key_secret: auth.access_key_secret.clone(),
            security_token: Some(auth.security_token.clone()).filter(|t| !t.is_empty()),
        }
    }
}

/// Where an object goes: endpoint as VOD gives it (scheme optional), bucket, raw object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTarget {
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
}

impl ObjectTarget {
    pub fn from_address(addr: &UploadAddress) -> Self {
        Self {
            endpoint: addr.endpoint.clone(),
            bucket: addr.bucket.clone(),
            key: addr.file_name.clone(),
        }
    }
}

/// Called with the cumulative number of bytes handed to the connection so far.
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// What a successful PutObject tells us.
#[derive(Debug, Clone)]
pub struct PutObjectOutput {
    /// ETag without the surrounding quotes.
    pub etag: String,
    /// CRC-64/XZ of the bytes sent (equal to OSS's when OSS reported one).
    pub crc64: u64,
    pub size: u64,
    pub request_id: Option<String>,
}

/// What HeadObject tells us.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    pub size: u64,
    /// ETag without the surrounding quotes.
    pub etag: String,
    pub crc64: Option<u64>,
    /// `Normal` (PutObject), `Multipart` or `Appendable`.
    pub object_type: Option<String>,
}

/// Object keys are percent-encoded like oss2 does (`quote(key, safe='')`): only RFC 3986
/// unreserved characters stay, and `/` becomes `%2F`. That keeps the key one opaque path segment,
/// so no URL library can ever normalise `.`/`..`/`//` inside a key; OSS decodes `%2F` back to `/`.
const KEY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// An OSS client; cheap to clone (reqwest's client is an `Arc` inside).
#[derive(Clone)]
pub struct OssClient {
    http: reqwest::Client,
}

impl OssClient {
    /// Uploads run without a total timeout (a large file legitimately takes long), so give `http`
    /// a `connect_timeout` and a `read_timeout`: they turn a stalled connection into a
    /// retryable [`OssError`] instead of a hang.
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// The object's URL. Virtual-hosted (`scheme://bucket.host/key`) for a hostname, as OSS
    /// requires; path-style (`scheme://host/bucket/key`) for an IP address, `localhost` or another
    /// single-label host (a Compose service name), so a local emulator needs no wildcard DNS
    /// (oss2 does the same for the first two). An endpoint without a scheme gets
    /// `https://`. The key is one opaque path segment with `/` as `%2F`, as oss2 sends it.
    pub fn object_url(&self, target: &ObjectTarget) -> Result<url::Url, OssError> {
        object_url(target)
    }

    /// The object's size, ETag, CRC-64 and type; `NoSuchKey` (404) when it does not exist.
    pub async fn head_object(
        &self,
        target: &ObjectTarget,
        creds: &OssCredentials,
    ) -> Result<ObjectMeta, OssError> {
        let response = self
            .signed_request(Method::HEAD, target, &[], Vec::new(), None, creds)
            .await?;
        let response = check(response, true).await?;
        let headers = response.headers();
        let size = header_u64(headers, "content-length").ok_or_else(|| {
            OssError::from(OssErrorKind::UnexpectedResponse {
                http_status: response.status().as_u16(),
                request_id: header_str(headers, "x-oss-request-id"),
                detail: "HeadObject answer has no Content-Length".into(),
            })
        })?;
        Ok(ObjectMeta {
            size,
            etag: etag(headers),
            crc64: header_u64(headers, "x-oss-hash-crc64ecma"),
            object_type: header_str(headers, "x-oss-object-type"),
        })
    }

    /// Signs (OSS V1, with `x-oss-security-token` when present) and sends one request.
    /// `query` holds raw names and values; sub-resources among them are signed. `headers` may
    /// hold `Content-Type`, `Content-MD5`, `Content-Length` and any `x-oss-*`; `Date` is added.
    async fn signed_request(
        &self,
        method: Method,
        target: &ObjectTarget,
        query: &[(String, String)],
        headers: Vec<(String, String)>,
        body: Option<reqwest::Body>,
        creds: &OssCredentials,
    ) -> Result<reqwest::Response, OssError> {
        let url = request_url(target, query)?;
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let headers = signed_headers(method.as_str(), target, query, headers, creds, &date);
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            let invalid = |what: &str| {
                OssError::from(OssErrorKind::InvalidRequest {
                    detail: format!("{what} cannot be sent in an HTTP header"),
                })
            };
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(&format!("header name {name:?}")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| invalid(&format!("the value of {name}")))?;
            if name == reqwest::header::AUTHORIZATION || name.as_str() == "x-oss-security-token" {
                value.set_sensitive(true);
            }
            map.insert(name, value);
        }
        let mut request = self.http.request(method, url).headers(map);
        if let Some(body) = body {
            request = request.body(body);
        }
        request.send().await.map_err(OssError::transport)
    }
}

/// The object URL plus the query (raw names/values, encoded here; empty values as bare names).
fn request_url(target: &ObjectTarget, query: &[(String, String)]) -> Result<url::Url, OssError> {
    let mut url = object_url(target)?;
    if !query.is_empty() {
        let encoded: Vec<String> = query
            .iter()
            .map(|(n, v)| {
                let n = utf8_percent_encode(n, KEY_ENCODE_SET);
                if v.is_empty() {
                    n.to_string()
                } else {
                    format!("{n}={}", utf8_percent_encode(v, KEY_ENCODE_SET))
                }
            })
            .collect();
        url.set_query(Some(&encoded.join("&")));
    }
    Ok(url)
}

/// `headers` plus `x-oss-security-token` (when STS), `Date` and `Authorization`: everything the
/// request must carry. Pure, so it can be checked against the oss2 vectors.
fn signed_headers(
    method: &str,
    target: &ObjectTarget,
    query: &[(String, String)],
    mut headers: Vec<(String, String)>,
    creds: &OssCredentials,
    date: &str,
) -> Vec<(String, String)> {
    if let Some(token) = &creds.security_token {
        headers.push(("x-oss-security-token".to_owned(), token.expose().to_owned()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let string_to_sign = sign::oss::string_to_sign(&sign::oss::SignedRequest {
        method,
        content_md5: find("Content-MD5"),
        content_type: find("Content-Type"),
        date,
        headers: &headers,
        bucket: Some(&target.bucket),
        key: &target.key,
        query,
    });
    let authorization = sign::oss::authorization(
        &creds.access_key_id,
        &sign::oss::signature(&string_to_sign, creds.access_key_secret.expose()),
    );
    headers.push(("Date".to_owned(), date.to_owned()));
    headers.push(("Authorization".to_owned(), authorization));
    headers
}

/// Where a PostObject form for `bucket` goes: `https://<bucket>.<endpoint host>/`, or
/// `http://<ip>:<port>/<bucket>` for the endpoints that get path-style requests.
pub fn post_form_url(endpoint: &str, bucket: &str) -> Result<url::Url, OssError> {
    let url = object_url(&ObjectTarget {
        endpoint: endpoint.to_owned(),
        bucket: bucket.to_owned(),
        key: String::new(),
    })?;
    let text = url.as_str();
    if url.path() != "/" {
        // Path style: the bucket is the path, without the empty key's slash.
        return url::Url::parse(text.trim_end_matches('/')).map_err(|e| {
            OssError::from(OssErrorKind::InvalidEndpoint {
                endpoint: endpoint.to_owned(),
                detail: e.to_string(),
            })
        });
    }
    Ok(url)
}

fn object_url(target: &ObjectTarget) -> Result<url::Url, OssError> {
    let invalid = |detail: String| {
        OssError::from(OssErrorKind::InvalidEndpoint {
            endpoint: target.endpoint.clone(),
            detail,
        })
    };
    let endpoint = target.endpoint.trim();
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("https://{endpoint}")
    };
    let base = url::Url::parse(&with_scheme).map_err(|e| invalid(e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {} is not http or https",
            base.scheme()
        )));
    }
    if target.bucket.is_empty() {
        return Err(invalid("the bucket name is empty".into()));
    }
    let host = base
        .host()
        .ok_or_else(|| invalid("the endpoint has no host".into()))?;
    let path_style = match host {
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => true,
        // A single-label host (`localhost`, or a Compose service name such as `emulator`)
        // cannot carry a bucket sub-domain; real OSS endpoints always have dots.
        // Sub-domains of `localhost` resolve only in browsers: not in this process, nor in
        // the server SDKs (`emulator.localhost` in Compose is an alias of the emulator).
        url::Host::Domain(d) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || !d.contains('.')
        }
    };
    let key = utf8_percent_encode(&target.key, KEY_ENCODE_SET).to_string();
    let port = base.port().map(|p| format!(":{p}")).unwrap_or_default();
    let text = if path_style {
        let host = base.host_str().unwrap_or_default();
        format!("{}://{host}{port}/{}/{key}", base.scheme(), target.bucket)
    } else {
        format!(
            "{}://{}.{}{port}/{key}",
            base.scheme(),
            target.bucket,
            base.host_str().unwrap_or_default()
        )
    };
    url::Url::parse(&text).map_err(|e| invalid(e.to_string()))
}

/// Passes 2xx responses through; turns anything else into an [`OssError`].
async fn check(response: reqwest::Response, is_head: bool) -> Result<reqwest::Response, OssError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body = if is_head {
        Vec::new()
    } else {
        // An error body is small; a failure to read it still leaves status and headers.
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default()
    };
    Err(error::from_response(
        status.as_u16(),
        &body,
        headers.get("x-oss-err").and_then(|v| v.to_str().ok()),
        headers
            .get("x-oss-request-id")
            .and_then(|v| v.to_str().ok()),
        headers.get("x-oss-ec").and_then(|v| v.to_str().ok()),
    ))
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|s| s.parse().ok())
}

fn etag(headers: &HeaderMap) -> String {
    header_str(headers, "etag")
        .map(|s| s.trim_matches('"').to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(endpoint: &str, key: &str) -> ObjectTarget {
        ObjectTarget {
            endpoint: endpoint.into(),
            bucket: "outin-abc".into(),
            key: key.into(),
        }
    }

    #[test]
    fn hostnames_get_virtual_hosted_urls() {
        let url = object_url(&target(
            "https://oss-cn-shanghai.aliyuncs.com",
            "sv/a/b.mp4",
        ))
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://outin-abc.oss-cn-shanghai.aliyuncs.com/sv%2Fa%2Fb.mp4"
        );
        // No scheme: https. A port is kept.
        let url = object_url(&target("oss.example.test:8443", "k")).unwrap();
        assert_eq!(url.as_str(), "https://outin-abc.oss.example.test:8443/k");
        let url = object_url(&target("http://oss-cn-beijing.aliyuncs.com/", "k")).unwrap();
        assert_eq!(
            url.as_str(),
            "http://outin-abc.oss-cn-beijing.aliyuncs.com/k"
        );
    }

    #[test]
    fn ip_and_localhost_get_path_style_urls() {
        let url = object_url(&target("http://127.0.0.1:9000", "sv/x.mp4")).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9000/outin-abc/sv%2Fx.mp4");
        let url = object_url(&target("http://localhost:9000", "x.mp4")).unwrap();
        assert_eq!(url.as_str(), "http://localhost:9000/outin-abc/x.mp4");
        let url = object_url(&target("http://emulator:9000", "x.mp4")).unwrap();
        assert_eq!(url.as_str(), "http://emulator:9000/outin-abc/x.mp4");
        let url = object_url(&target("http://[::1]:9000", "x.mp4")).unwrap();
        assert_eq!(url.as_str(), "http://[::1]:9000/outin-abc/x.mp4");
        let url = object_url(&target("http://emulator.localhost:9000", "x.mp4")).unwrap();
        assert_eq!(
            url.as_str(),
            "http://emulator.localhost:9000/outin-abc/x.mp4"
        );
    }

    #[test]
    fn post_forms_go_to_the_bucket() {
        let url = post_form_url("https://oss-cn-shanghai.aliyuncs.com", "outin-abc").unwrap();
        assert_eq!(
            url.as_str(),
            "https://outin-abc.oss-cn-shanghai.aliyuncs.com/"
        );
        let url = post_form_url("http://127.0.0.1:9000", "outin-abc").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9000/outin-abc");
    }

    #[test]
    fn keys_are_encoded_as_one_opaque_segment() {
        let url = object_url(&target(
            "https://oss-cn-shanghai.aliyuncs.com",
            "a+b%20c/ü?.mp4",
        ))
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://outin-abc.oss-cn-shanghai.aliyuncs.com/a%2Bb%2520c%2F%C3%BC%3F.mp4"
        );
        // Dot segments and double slashes survive: no normalisation can touch them.
        let url = object_url(&target("https://h.example", "a/../b//c")).unwrap();
        assert_eq!(url.path(), "/a%2F..%2Fb%2F%2Fc");
    }

    #[test]
    fn bad_endpoints_are_reported() {
        let err = object_url(&target("ftp://h.example", "k")).unwrap_err();
        assert_eq!(err.code(), "InvalidEndpoint");
        assert!(!err.is_retryable());
        assert!(object_url(&target("https://", "k")).is_err());
    }

    /// The request PutObject and UploadPart actually send, against oss2 vectors (a), (c), (k)
    /// (`tests/fixtures/oss_v1_sign_vectors*.out`).
    #[test]
    fn assembled_requests_match_oss2() {
        let creds = OssCredentials {
            access_key_id: "testid".into(),
            access_key_secret: Secret::new("testsecret"),
            security_token: Some(Secret::new("testtoken")),
        };
        let date = "Tue, 14 Nov 2023 22:13:20 GMT";
        let mut target = ObjectTarget {
            endpoint: "https://oss-cn-shanghai.aliyuncs.com".into(),
            bucket: "test-bucket".into(),
            key: "dir/视频 1.mp4".into(),
        };
        let auth = |headers: &[(String, String)]| {
            headers
                .iter()
                .find(|(n, _)| n == "Authorization")
                .map(|(_, v)| v.clone())
                .unwrap()
        };

        // (a) PutObject with Content-MD5 and Content-Type.
        let headers = signed_headers(
            "PUT",
            &target,
            &[],
            vec![
                ("Content-MD5".into(), "XrY7u+Ae7tCTyyK7j1rNww==".into()),
                ("Content-Type".into(), "video/mp4".into()),
                ("Content-Length".into(), "11".into()),
            ],
            &creds,
            date,
        );
        assert_eq!(auth(&headers), "OSS testid:gb73vvHsSKuq3Py38TyXsUBO774=");
        assert!(headers.contains(&("x-oss-security-token".into(), "testtoken".into())));
        assert!(headers.contains(&("Date".into(), date.into())));
        assert_eq!(
            request_url(&target, &[]).unwrap().as_str(),
            "https://test-bucket.oss-cn-shanghai.aliyuncs.com/dir%2F%E8%A7%86%E9%A2%91%201.mp4"
        );

        // (c) UploadPart: sub-resources signed, sorted, raw.
        let query = vec![
            ("uploadId".to_owned(), "ABC".to_owned()),
            ("partNumber".to_owned(), "3".to_owned()),
        ];
        let headers = signed_headers("PUT", &target, &query, Vec::new(), &creds, date);
        assert_eq!(auth(&headers), "OSS testid:y9VwIGp8VQdRCiRHe7b8doQcbH4=");

        // (k) awkward key and upload id: raw in the signature, encoded on the wire.
        target.key = "a+b%20c/ü?.mp4".into();
        let query = vec![
            ("partNumber".to_owned(), "1".to_owned()),
            ("uploadId".to_owned(), "AB+/=C".to_owned()),
        ];
        let headers = signed_headers("PUT", &target, &query, Vec::new(), &creds, date);
        assert_eq!(auth(&headers), "OSS testid:aClg57h841F1HB7DTvZpFVPqflQ=");
        assert_eq!(
            request_url(&target, &query).unwrap().as_str(),
            "https://test-bucket.oss-cn-shanghai.aliyuncs.com/a%2Bb%2520c%2F%C3%BC%3F.mp4?partNumber=1&uploadId=AB%2B%2F%3DC"
        );

        // InitiateMultipartUpload: an empty-valued sub-resource is a bare name (`?uploads`).
        let query = vec![("uploads".to_owned(), String::new())];
        assert_eq!(
            request_url(&target, &query).unwrap().query(),
            Some("uploads")
        );
    }

    /// Port 1 on loopback refuses the connection; the error must not show the signed request.
    #[tokio::test]
    async fn transport_errors_show_no_credentials() {
        let creds = OssCredentials {
            access_key_id: "STS.id".into(),
            access_key_secret: Secret::new("secret-value-9"),
            security_token: Some(Secret::new("token-value-7")),
        };
        let err = OssClient::new(reqwest::Client::new())
            .head_object(&target("http://127.0.0.1:1", "k.mp4"), &creds)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "ConnectError");
        assert!(err.is_retryable() && !err.is_credential_expired());
        let shown = format!("{err} {err:?}");
        for leak in ["token-value-7", "secret-value-9", "OSS STS.id:"] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
    }

    #[test]
    fn credentials_from_upload_auth() {
        let auth = UploadAuth {
            access_key_id: "STS.id".into(),
            access_key_secret: Secret::new("sec-value-1"),
            security_token: Secret::new("tok-value-2"),
            expires_at: chrono::Utc::now(),
            region: None,
        };
        let creds = OssCredentials::from_upload_auth(&auth);
        assert_eq!(creds.access_key_id, "STS.id");
        assert_eq!(
            creds.security_token.as_ref().unwrap().expose(),
            "tok-value-2"
        );
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("sec-value-1") && !shown.contains("tok-value-2"),
            "{shown}"
        );
    }
}
