//! OSS: V1 header signatures (`docs/reference/oss.md` §1), PutObject / HeadObject / GetObject / DeleteObject
//! (§3), errors (§4), path-style and virtual-hosted addressing (§7), CORS (`cors`).
//!
//! Multipart (§2) is in `multipart`, and what both write with in `object`; other operations
//! (bucket-level, copy, append) are answered `NotImplemented` after authentication.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::cors;
use super::errors::{oss_common_headers, oss_request_id, OssError};
use super::multipart;
use super::object::{forbid_overwrite, header_str, insert, object_stored, receive_body, user_meta};
use super::oss_v4;
use super::state::{ObjectMeta, Scope, Shared};
use crate::sign;

const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(15);

/// Error codes OSS documents (`docs/reference/oss.md` §3.2, §4.2); only these are sent as `<EC>` / `x-oss-ec`,
/// since an invented EC would mislead more than a missing one.
mod post_object;
#[cfg(feature = "fuzzing")]
pub(crate) use post_object::fuzz_policy;

const EC_TOKEN_EXPIRED: &str = "0002-00000007";
const EC_TOKEN_INVALID: &str = "0002-00000006";
const EC_NO_SUCH_KEY: &str = "0026-00000001";

/// Whether `host` (the request's `Host`) is the emulator's public URL's domain, which acts as
/// a domain bound to its bucket (OSS's CNAME). An IP address never is.
fn is_bound_domain(shared: &Shared, host: &str) -> bool {
    let Ok(public) = url::Url::parse(&shared.base_url) else {
        return false;
    };
    let Some(url::Host::Domain(domain)) = public.host() else {
        return false;
    };
    let expected = match public.port() {
        Some(port) => format!("{domain}:{port}"),
        None => domain.to_owned(),
    };
    host.eq_ignore_ascii_case(&expected)
}

pub(crate) enum Target {
    VirtualHosted { bucket: String, host: String },
    PathStyle { host: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    PutObject,
    GetObject,
    HeadObject,
    DeleteObject,
    InitiateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    ListParts,
    AbortMultipartUpload,
    ListMultipartUploads,
    /// A form upload to the bucket's root (`post_object`).
    PostObject,
    /// Anything else (bucket operations, copy, append, ...).
    Unsupported,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::PutObject => "PutObject",
            Operation::GetObject => "GetObject",
            Operation::HeadObject => "HeadObject",
            Operation::DeleteObject => "DeleteObject",
            Operation::InitiateMultipartUpload => "InitiateMultipartUpload",
            Operation::UploadPart => "UploadPart",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
            Operation::ListParts => "ListParts",
            Operation::AbortMultipartUpload => "AbortMultipartUpload",
            Operation::ListMultipartUploads => "ListMultipartUploads",
            Operation::PostObject => "PostObject",
            Operation::Unsupported => "UnsupportedOssOperation",
        }
    }

    fn classify(
        method: &Method,
        key: &str,
        query: &[(String, String)],
        headers: &HeaderMap,
    ) -> Self {
        let has = |name: &str| query.iter().any(|(n, _)| n == name);
        if key.is_empty() {
            return if *method == Method::GET && has("uploads") {
                Operation::ListMultipartUploads
            } else if *method == Method::POST && post_object::is_form(headers) {
                Operation::PostObject
            } else {
                Operation::Unsupported
            };
        }
        match *method {
            Method::POST if has("uploads") => Operation::InitiateMultipartUpload,
            Method::POST if has("uploadId") => Operation::CompleteMultipartUpload,
            Method::PUT if has("uploadId") && has("partNumber") => Operation::UploadPart,
            Method::GET if has("uploadId") => Operation::ListParts,
            Method::DELETE if has("uploadId") => Operation::AbortMultipartUpload,
            Method::PUT if !headers.contains_key("x-oss-copy-source") && !has("append") => {
                Operation::PutObject
            }
            Method::GET => Operation::GetObject,
            Method::HEAD => Operation::HeadObject,
            Method::DELETE => Operation::DeleteObject,
            _ => Operation::Unsupported,
        }
    }

    /// What UploadAuth credentials may do on their own object.
    fn allowed_for_upload_credentials(self) -> bool {
        !matches!(
            self,
            Operation::DeleteObject | Operation::ListMultipartUploads | Operation::Unsupported
        )
    }
}

fn decode(raw: &str) -> Result<String, OssError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| OssError::new(400, "InvalidURI", "Couldn't parse the specified URI.", None))
}

pub(crate) async fn handle(shared: Arc<Shared>, req: Request, target: Target) -> Response {
    let request_id = oss_request_id();
    let (parts, body) = req.into_parts();
    let head = parts.method == Method::HEAD;
    // Keys are percent-decoded, `%2F` included; `+` is a literal plus in a path.
    let raw_path = parts.uri.path().strip_prefix('/').unwrap_or_default();
    let (host_id, resolved) = match target {
        Target::VirtualHosted { bucket, host } => (host, decode(raw_path).map(|k| (bucket, k))),
        Target::PathStyle { host } => {
            let (b, k) = raw_path.split_once('/').unwrap_or((raw_path, ""));
            if !shared.known_bucket(b) && is_bound_domain(&shared, &host) {
                // A CNAME: the Android OSS SDK addresses any host that is neither an IP nor
                // `*.aliyuncs.com` as a domain bound to the bucket, so the whole path is the key.
                let bucket = shared.bucket.clone();
                (host, decode(raw_path).map(|k| (bucket, k)))
            } else {
                (host, decode(b).and_then(|b| decode(k).map(|k| (b, k))))
            }
        }
    };
    let (bucket, key) = match resolved {
        Ok(v) => v,
        Err(e) => {
            shared.count(Operation::Unsupported.name());
            return e.response(&request_id, &host_id, head);
        }
    };
    if parts.method == Method::OPTIONS {
        return preflight(&shared, &parts.headers, &bucket, &request_id, &host_id);
    }
    // CORS rules are the bucket's: another bucket (which does not exist) has none.
    let origin = shared
        .known_bucket(&bucket)
        .then(|| parts.headers.get(header::ORIGIN).cloned())
        .flatten();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let op = Operation::classify(&parts.method, &key, &query, &parts.headers);
    shared.count(op.name());
    let result = if op == Operation::PostObject {
        // Authenticated by its form, not by headers.
        post_object::handle(&shared, &parts.headers, body, &bucket).await
    } else {
        process(&shared, &parts, body, &bucket, &key, &query, op).await
    };
    let mut resp = match result {
        Ok(mut resp) => {
            oss_common_headers(&mut resp, &request_id);
            resp
        }
        Err(e) => {
            tracing::debug!(op = op.name(), code = %e.code, status = %e.status, "oss rejected");
            e.response(&request_id, &host_id, head)
        }
    };
    if shared.known_bucket(&bucket) {
        cors::decorate(&mut resp, origin.as_ref());
    }
    resp
}

/// Browsers send preflights unsigned: they are answered from the bucket's CORS rule.
fn preflight(
    shared: &Shared,
    headers: &HeaderMap,
    bucket: &str,
    request_id: &str,
    host_id: &str,
) -> Response {
    shared.count("Options");
    if !shared.known_bucket(bucket) {
        return no_such_bucket(bucket).response(request_id, host_id, false);
    }
    match cors::preflight(headers) {
        Ok(mut resp) => {
            oss_common_headers(&mut resp, request_id);
            resp
        }
        Err(e) => {
            tracing::debug!(code = %e.code, "oss preflight rejected");
            let mut resp = e.response(request_id, host_id, false);
            cors::decorate(&mut resp, None);
            resp
        }
    }
}

fn no_such_bucket(bucket: &str) -> OssError {
    OssError::new(
        404,
        "NoSuchBucket",
        "The specified bucket does not exist.",
        None,
    )
    .with("BucketName", bucket)
}

enum Scheme<'a> {
    V1 {
        access_key_id: &'a str,
        provided: &'a str,
    },
    V4(oss_v4::V4Authorization<'a>),
}

enum Principal {
    /// The configured AccessKey: any object.
    Root,
    Sts(Scope),
}

async fn process(
    shared: &Arc<Shared>,
    parts: &Parts,
    body: Body,
    bucket: &str,
    key: &str,
    query: &[(String, String)],
    op: Operation,
) -> Result<Response, OssError> {
    if bucket.is_empty() {
        authenticate(shared, parts, None, "", query)?;
        return Err(not_implemented());
    }
    if !shared.known_bucket(bucket) {
        return Err(no_such_bucket(bucket));
    }
    if key.len() > 1023 || key.starts_with('/') || key.starts_with('\\') {
        return Err(OssError::new(
            400,
            "InvalidObjectName",
            "The specified object is not valid.",
            None,
        ));
    }
    let principal = authenticate(shared, parts, Some(bucket), key, query)?;
    authorize(&principal, op, bucket, key)?;
    if let Some(f) = shared.take_failure(op.name()) {
        let message = f.message.unwrap_or_else(|| {
            match f.code.as_str() {
                "ServiceUnavailable" => "Thread pool is almost full, please retry later.",
                "InternalError" => {
                    "Please contact the server administrator, oss@service.aliyun.com."
                }
                _ => "Injected by the emulator.",
            }
            .to_owned()
        });
        let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(OssError {
            status,
            code: f.code,
            message,
            ec: None,
            extra: Vec::new(),
        });
    }
    match op {
        Operation::PutObject => put_object(shared, &parts.headers, body, bucket, key).await,
        Operation::HeadObject => read_object(shared, &parts.headers, bucket, key, false).await,
        Operation::GetObject => read_object(shared, &parts.headers, bucket, key, true).await,
        Operation::DeleteObject => delete_object(shared, bucket, key).await,
        Operation::InitiateMultipartUpload => {
            multipart::initiate(shared, &parts.headers, bucket, key, query).await
        }
        Operation::UploadPart => {
            multipart::upload_part(shared, &parts.headers, body, bucket, key, query).await
        }
        Operation::CompleteMultipartUpload => {
            multipart::complete(shared, &parts.headers, body, bucket, key, query).await
        }
        Operation::ListParts => multipart::list_parts(shared, bucket, key, query),
        Operation::AbortMultipartUpload => multipart::abort(shared, bucket, key, query).await,
        Operation::ListMultipartUploads => multipart::list_uploads(shared, bucket, query),
        Operation::Unsupported | Operation::PostObject => Err(not_implemented()),
    }
}

fn not_implemented() -> OssError {
    OssError::new(
        501,
        "NotImplemented",
        "A header you provided implies functionality that is not implemented.",
        None,
    )
}

fn iso_millis(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Verifies `Authorization: OSS <AccessKeyId>:<Signature>` (V1) or `OSS4-HMAC-SHA256 ...` (V4)
/// the way OSS does: presence and shape, request time, AccessKeyId, STS token, then the
/// signature itself.
fn authenticate(
    shared: &Shared,
    parts: &Parts,
    bucket: Option<&str>,
    key: &str,
    query: &[(String, String)],
) -> Result<Principal, OssError> {
    let headers = &parts.headers;
    let Some(authorization) = header_str(headers, header::AUTHORIZATION) else {
        // Requests signed in the URL (`OSSAccessKeyId`/`Signature` query) are not supported:
        // they are anonymous to the emulator, hence denied like any anonymous request.
        return Err(OssError::new(
            403,
            "AccessDenied",
            "You have no right to access this object because of bucket acl.",
            None,
        ));
    };
    let invalid_authorization = || {
        OssError::new(
            400,
            "InvalidArgument",
            "Authorization header is invalid.",
            None,
        )
        .with("ArgumentName", "Authorization")
    };
    let scheme = if authorization.starts_with(oss_v4::ALGORITHM) {
        Scheme::V4(oss_v4::parse(authorization).ok_or_else(invalid_authorization)?)
    } else {
        let (id, sig) = authorization
            .strip_prefix("OSS ")
            .and_then(|rest| rest.split_once(':'))
            .filter(|(id, sig)| {
                !id.is_empty() && !sig.is_empty() && !id.contains(char::is_whitespace)
            })
            .ok_or_else(invalid_authorization)?;
        Scheme::V1 {
            access_key_id: id,
            provided: sig,
        }
    };
    let access_key_id = match &scheme {
        Scheme::V1 { access_key_id, .. } => *access_key_id,
        Scheme::V4(v4) => v4.access_key_id,
    };

    let request_time: DateTime<Utc> = match &scheme {
        // V1: `x-oss-date` wins over `Date` (`docs/reference/oss.md` §1.1), both HTTP dates.
        Scheme::V1 { .. } => {
            let date_header =
                header_str(headers, "x-oss-date").or_else(|| header_str(headers, header::DATE));
            let Some(date_value) = date_header else {
                return Err(OssError::new(
                    403,
                    "AccessDenied",
                    "Missing Date header.",
                    None,
                ));
            };
            httpdate::parse_http_date(date_value)
                .map_err(|_| OssError::new(403, "AccessDenied", "Invalid Date header.", None))?
                .into()
        }
        // V4: `x-oss-date` in ISO 8601 basic form, on the day named by the credential scope,
        // for the region this endpoint serves.
        Scheme::V4(v4) => {
            let value = header_str(headers, "x-oss-date").ok_or_else(|| {
                OssError::new(403, "AccessDenied", "Missing x-oss-date header.", None)
            })?;
            let time = chrono::NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%SZ")
                .map_err(|_| {
                    OssError::new(403, "AccessDenied", "Invalid x-oss-date header.", None)
                })?
                .and_utc();
            if !value.starts_with(v4.date) {
                return Err(OssError::new(
                    400,
                    "InvalidArgument",
                    "Invalid signing date in Authorization header.",
                    None,
                )
                .with("ArgumentName", "Authorization"));
            }
            if v4.region != shared.config.region {
                return Err(OssError::new(
                    400,
                    "InvalidArgument",
                    "Invalid signing region in Authorization header.",
                    None,
                )
                .with("ArgumentName", "Authorization"));
            }
            time
        }
    };
    let now = Utc::now();
    if (now - request_time).abs() > MAX_SKEW {
        return Err(OssError::new(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            None,
        )
        .with("MaxAllowedSkewMilliseconds", "900000")
        .with("RequestTime", iso_millis(request_time))
        .with("ServerTime", iso_millis(now)));
    }

    let (principal, secret) = principal_and_secret(
        shared,
        access_key_id,
        header_str(headers, "x-oss-security-token"),
        now,
    )?;

    let header_list: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let mismatch = |provided: &str, string_to_sign: &str| {
        let bytes = string_to_sign
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ");
        signature_mismatch(access_key_id)
            .with("SignatureProvided", provided)
            .with("StringToSign", string_to_sign)
            .with("StringToSignBytes", bytes)
    };
    match &scheme {
        Scheme::V1 { provided, .. } => {
            let request = sign::oss::SignedRequest {
                method: parts.method.as_str(),
                content_md5: header_str(headers, "content-md5").unwrap_or_default(),
                content_type: header_str(headers, header::CONTENT_TYPE).unwrap_or_default(),
                date: header_str(headers, header::DATE).unwrap_or_default(),
                headers: &header_list,
                bucket,
                key,
                query,
            };
            let string_to_sign = sign::oss::string_to_sign(&request);
            let expected = sign::oss::signature(&string_to_sign, &secret);
            if !sign::constant_time_eq(expected.as_bytes(), provided.as_bytes()) {
                return Err(mismatch(provided, &string_to_sign));
            }
        }
        Scheme::V4(v4) => {
            let canonical = oss_v4::canonical_request(
                parts.method.as_str(),
                bucket,
                key,
                query,
                &header_list,
                &v4.additional_headers,
            );
            let datetime = header_str(headers, "x-oss-date").unwrap_or_default();
            let string_to_sign = oss_v4::string_to_sign(datetime, v4.date, v4.region, &canonical);
            let expected = oss_v4::signature(&secret, v4.date, v4.region, &string_to_sign);
            let provided = v4.signature.to_ascii_lowercase();
            if !sign::constant_time_eq(expected.as_bytes(), provided.as_bytes()) {
                return Err(
                    mismatch(v4.signature, &string_to_sign).with("CanonicalRequest", canonical)
                );
            }
        }
    }
    Ok(principal)
}

/// OSS's answer to a signature that does not match, headers' or a form's.
fn signature_mismatch(access_key_id: &str) -> OssError {
    OssError::new(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        None,
    )
    .with("OSSAccessKeyId", access_key_id)
}

/// Who `access_key_id` is and its secret: the configured key, or an STS credential with its
/// `token` (`x-oss-security-token`, a header or, in a PostObject form, a field), unexpired.
fn principal_and_secret(
    shared: &Shared,
    access_key_id: &str,
    token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Principal, String), OssError> {
    let unknown_key = || {
        OssError::new(
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
            None,
        )
        .with("OSSAccessKeyId", access_key_id)
    };
    let found = if access_key_id == shared.config.access_key_id {
        (
            Principal::Root,
            shared.config.access_key_secret.expose().to_owned(),
        )
    } else {
        let inner = shared.lock();
        let cred = inner
            .credentials
            .get(access_key_id)
            .cloned()
            .ok_or_else(unknown_key)?;
        // An STS AccessKeyId means nothing without its token (`docs/reference/oss.md` §4.2).
        let token = token.ok_or_else(unknown_key)?;
        match inner.tokens.get(token) {
            None => {
                return Err(OssError::new(
                    403,
                    "InvalidSecurityToken",
                    "The security token you provided is invalid.",
                    Some(EC_TOKEN_INVALID),
                ))
            }
            Some(owner) if owner != access_key_id => {
                return Err(OssError::new(
                    403,
                    "AccessKeyIdAndSecurityTokenNotMatch",
                    "The OSS access key id and security token you provided does not match.",
                    None,
                ))
            }
            Some(_) => {}
        }
        if cred.expires_at <= now {
            // The real service echoes the token in the body (`docs/reference/oss.md` §4.2); clients must not
            // log error bodies verbatim, and this keeps them honest.
            return Err(OssError::new(
                403,
                "SecurityTokenExpired",
                "The security token you provided has expired.",
                Some(EC_TOKEN_EXPIRED),
            )
            .with("SecurityToken", token));
        }
        (Principal::Sts(cred.scope), cred.secret.expose().to_owned())
    };
    Ok(found)
}

/// Upload credentials reach only their own object (or, for M3U8, their prefix); AssumeRole
/// credentials have no rights on VOD's bucket, which belongs to VOD's account.
fn authorize(
    principal: &Principal,
    op: Operation,
    bucket: &str,
    key: &str,
) -> Result<(), OssError> {
    match principal {
        Principal::Root => Ok(()),
        Principal::Sts(Scope::Api { .. }) => Err(OssError::new(
            403,
            "AccessDenied",
            "The bucket you access does not belong to you.",
            None,
        )),
        Principal::Sts(Scope::Object {
            bucket: b,
            key: k,
            prefix,
        }) => {
            let in_scope =
                b == bucket && (k == key || prefix.as_deref().is_some_and(|p| key.starts_with(p)));
            if in_scope && op.allowed_for_upload_credentials() {
                Ok(())
            } else {
                Err(OssError::new(
                    403,
                    "AccessDenied",
                    "You have no right to access this object.",
                    None,
                ))
            }
        }
    }
}

async fn put_object(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: Body,
    bucket: &str,
    key: &str,
) -> Result<Response, OssError> {
    forbid_overwrite(shared, headers, bucket, key)?;
    let received = receive_body(shared, headers, body).await?;
    if let Err(e) = received.persist(&shared.object_path(bucket, key)).await {
        received.discard().await;
        return Err(e);
    }
    let meta = ObjectMeta {
        size: received.size,
        etag: format!("\"{}\"", hex::encode_upper(received.md5)),
        content_md5: Some(received.md5),
        crc64: received.crc,
        object_type: "Normal",
        content_type: header_str(headers, header::CONTENT_TYPE)
            .unwrap_or("application/octet-stream")
            .to_owned(),
        last_modified: std::time::SystemTime::now(),
        user_meta: user_meta(headers),
    };
    let etag = meta.etag.clone();
    object_stored(shared, bucket, key, meta);

    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    insert(h, "etag", &etag);
    insert(h, "x-oss-hash-crc64ecma", &received.crc.to_string());
    insert(
        h,
        "content-md5",
        &base64::engine::general_purpose::STANDARD.encode(received.md5),
    );
    Ok(resp)
}

fn no_such_key(key: &str) -> OssError {
    OssError::new(
        404,
        "NoSuchKey",
        "The specified key does not exist.",
        Some(EC_NO_SUCH_KEY),
    )
    .with("Key", key)
}

/// HeadObject (`with_body == false`) and GetObject, the body streamed from disk.
async fn read_object(
    shared: &Shared,
    headers: &HeaderMap,
    bucket: &str,
    key: &str,
    with_body: bool,
) -> Result<Response, OssError> {
    let meta = shared
        .lock()
        .objects
        .get(&(bucket.to_owned(), key.to_owned()))
        .cloned()
        .ok_or_else(|| no_such_key(key))?;
    let range = if with_body {
        requested_range(headers, meta.size)?
    } else {
        None
    };
    let body = if with_body {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let mut file = tokio::fs::File::open(shared.object_path(bucket, key))
            .await
            .map_err(|_| no_such_key(key))?;
        let (start, len) = range.map_or((0, meta.size), |(a, b)| (a, b - a + 1));
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|_| OssError::internal())?;
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            file.take(len),
            64 * 1024,
        ))
    } else {
        Body::empty()
    };
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    match range {
        Some((a, b)) => {
            insert(h, "content-length", &(b - a + 1).to_string());
            insert(h, "content-range", &format!("bytes {a}-{b}/{}", meta.size));
        }
        None => insert(h, "content-length", &meta.size.to_string()),
    }
    insert(h, "content-type", &meta.content_type);
    insert(h, "etag", &meta.etag);
    insert(
        h,
        "last-modified",
        &httpdate::fmt_http_date(meta.last_modified),
    );
    insert(h, "x-oss-object-type", meta.object_type);
    insert(h, "x-oss-storage-class", "Standard");
    insert(h, "x-oss-hash-crc64ecma", &meta.crc64.to_string());
    if let Some(md5) = meta.content_md5 {
        insert(
            h,
            "content-md5",
            &base64::engine::general_purpose::STANDARD.encode(md5),
        );
    }
    insert(h, "accept-ranges", "bytes");
    for (name, value) in &meta.user_meta {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.insert(n, v);
        }
    }
    Ok(resp)
}

/// A single `Range: bytes=a-b` / `a-` / `-n`, as inclusive offsets. OSS ignores a range it
/// cannot satisfy and sends the whole object, unless `x-oss-range-behavior: standard` asks for
/// `416 InvalidRange`; several ranges are likewise ignored.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, OssError> {
    let Some(spec) =
        header_str(headers, header::RANGE).and_then(|r| r.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    let parsed = spec.split_once('-').and_then(|(a, b)| {
        let (a, b) = (a.trim(), b.trim());
        match (a.is_empty(), b.is_empty()) {
            (false, false) => Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)),
            (false, true) => Some((a.parse::<u64>().ok()?, size.checked_sub(1)?)),
            (true, false) => {
                let n = b.parse::<u64>().ok()?.min(size);
                (n > 0).then(|| (size - n, size - 1))
            }
            (true, true) => None,
        }
    });
    let valid = parsed
        .filter(|(a, b)| !spec.contains(',') && a <= b && *a < size)
        .map(|(a, b)| (a, b.min(size - 1)));
    let standard = header_str(headers, "x-oss-range-behavior")
        .is_some_and(|v| v.eq_ignore_ascii_case("standard"));
    if valid.is_none() && standard {
        return Err(OssError::new(
            416,
            "InvalidRange",
            "The requested range cannot be satisfied",
            None,
        )
        .with("RangeRequested", format!("bytes={spec}"))
        .with("ActualObjectSize", size.to_string()));
    }
    Ok(valid)
}

async fn delete_object(shared: &Shared, bucket: &str, key: &str) -> Result<Response, OssError> {
    let removed = {
        let mut inner = shared.lock();
        let removed = inner.objects.remove(&(bucket.to_owned(), key.to_owned()));
        inner.stats.objects = inner.objects.len() as u64;
        removed
    };
    if removed.is_some() {
        let _ = tokio::fs::remove_file(shared.object_path(bucket, key)).await;
    }
    // OSS answers 204 whether or not the object existed.
    Ok(StatusCode::NO_CONTENT.into_response())
}
