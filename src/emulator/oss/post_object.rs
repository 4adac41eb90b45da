//! PostObject: an upload as one `multipart/form-data` POST to the bucket (OSS API "PostObject"
//! and its "Appendix: Policy"), what VOD's WeChat mini-program SDK (`wx.uploadFile`) and HTML
//! forms send. The signature is over the Base64 policy, not over the request, so everything
//! the uploader may not change must be bound by a policy condition; the emulator checks what
//! OSS documents:
//!
//! - the form: fields before the file (names case-insensitive, the file last; later fields are
//!   ignored), at most [`MAX_FIELD_BYTES`] of them; `${filename}` in `key` is the file's name;
//! - the policy: Base64 JSON with exactly `expiration` (ISO 8601, with or without
//!   milliseconds) and `conditions`; exact matches (`{"field": "v"}`, `["eq", "$f", "v"]`),
//!   `starts-with`, `in`, `not-in`, and `content-length-range`, enforced while the file streams
//!   so that an oversized file is never stored;
//! - the signature: V1 (`OSSAccessKeyId`, `Signature`; VOD's mini-program SDK sends
//!   `signature`) or V4 (`x-oss-signature-version`, `x-oss-credential`, `x-oss-date`,
//!   `x-oss-signature`), with the STS token (`x-oss-security-token`) and the credential's scope
//!   as for a PUT;
//! - the answer: `success_action_status` 200 or 204 (empty) or 201 (a `PostResponse`
//!   document), default 204; the same upload-complete event to VOD as a PUT.
//!
//! Where OSS's documentation names no code for a refusal (a form without a file, a field too
//! large), the emulator answers `MalformedPOSTRequest` or `InvalidArgument` with a message that
//! says what is wrong: a guess at the code, never a silent acceptance.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{authorize, principal_and_secret, Operation};
use crate::emulator::errors::OssError;
use crate::emulator::object::{
    header_str, insert, object_stored, write_stream, Received, WriteError,
};
use crate::emulator::state::{ObjectMeta, Shared};
use crate::sign;

/// Largest object a PostObject may write (5 GB, as for PutObject).
const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// All the fields before the file together; a form is a few kilobytes (the policy, the token).
const MAX_FIELD_BYTES: usize = 64 * 1024;

const EC_ENTITY_TOO_LARGE: &str = "0006-00000003";
const EC_ENTITY_TOO_SMALL: &str = "0006-00000004";
const EC_POLICY_EXTRA_KEY: &str = "0006-00000206";
const EC_POLICY_NO_CONDITIONS: &str = "0006-00000207";
const EC_POLICY_NO_EXPIRATION: &str = "0006-00000208";
const EC_BAD_LENGTH_RANGE: &str = "0006-00000221";
const EC_CONDITION_FAILED: &str = "0006-00000227";

/// Whether a request to a bucket's root is a PostObject.
pub(super) fn is_form(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE).is_some_and(|v| {
        v.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    })
}

fn malformed(detail: &str) -> OssError {
    OssError::new(
        400,
        "MalformedPOSTRequest",
        &format!("The body of your POST request is not well-formed multipart/form-data. {detail}"),
        None,
    )
}

/// A form field that is missing or malformed, named in `ArgumentName`.
fn invalid_argument(name: &str, message: &str) -> OssError {
    OssError::new(400, "InvalidArgument", message, None).with("ArgumentName", name)
}

fn invalid_policy(message: &str, ec: Option<&str>) -> OssError {
    OssError::new(400, "InvalidPolicyDocument", message, ec)
}

fn access_denied(message: &str, ec: Option<&str>) -> OssError {
    OssError::new(403, "AccessDenied", message, ec)
}

/// The form's fields before the file, names lower-cased, and the file part itself.
struct Form {
    fields: BTreeMap<String, String>,
    file_name: String,
    file_content_type: Option<String>,
}

pub(super) async fn handle(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: Body,
    bucket: &str,
) -> Result<Response, OssError> {
    if !shared.known_bucket(bucket) {
        return Err(super::no_such_bucket(bucket));
    }
    let content_type = header_str(headers, header::CONTENT_TYPE).unwrap_or_default();
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| malformed("The Content-Type has no boundary."))?;
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);

    // Fields up to the file.
    let mut fields = BTreeMap::new();
    let mut field_bytes = 0usize;
    let file_field = loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| malformed(&format!("({e})")))?
            .ok_or_else(|| {
                malformed(
                    "The form has no file field: send the file last, as the field named \"file\".",
                )
            })?;
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" {
            break field;
        }
        let value = field
            .text()
            .await
            .map_err(|e| malformed(&format!("({e})")))?;
        field_bytes += name.len() + value.len();
        if field_bytes > MAX_FIELD_BYTES {
            return Err(malformed("The form fields before the file exceed 64 KB."));
        }
        fields.entry(name).or_insert(value);
    };
    let form = Form {
        file_name: file_field.file_name().unwrap_or_default().to_owned(),
        file_content_type: file_field.content_type().map(|m| m.to_string()),
        fields,
    };
    let key = form
        .fields
        .get("key")
        .filter(|k| !k.is_empty())
        .map(|k| k.replace("${filename}", &form.file_name))
        .ok_or_else(|| {
            invalid_argument(
                "key",
                "The form has no key field: name the object in a field called \"key\", before the file.",
            )
        })?;
    if key.len() > 1023 || key.starts_with('/') || key.starts_with('\\') {
        return Err(OssError::new(
            400,
            "InvalidObjectName",
            "The specified object is not valid.",
            None,
        ));
    }

    let now = Utc::now();
    let Some(policy_b64) = form.fields.get("policy") else {
        // No policy, no signature: anonymous, and VOD's bucket is private.
        return Err(access_denied(
            "You have no right to access this object because of bucket acl.",
            None,
        ));
    };
    let policy = Policy::parse(policy_b64)?;
    let principal = verify_signature(shared, &form, policy_b64, now)?;
    if policy.expiration <= now {
        return Err(access_denied(
            "Invalid according to Policy: Policy expired.",
            None,
        ));
    }
    let (min_size, max_size) = policy.check_conditions(&form, bucket, &key)?;
    authorize(&principal, Operation::PutObject, bucket, &key)?;

    // The file, streamed to disk and cut off past the policy's (or OSS's) limit.
    let limit = max_size.unwrap_or(MAX_OBJECT_SIZE).min(MAX_OBJECT_SIZE);
    let tmp = shared.tmp_path();
    let written = write_stream(&tmp, file_field, limit).await;
    let (size, md5, crc) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(match e {
                WriteError::Over => too_large(),
                WriteError::Stream => malformed("The file part ended early."),
                WriteError::Oss(e) => e,
            });
        }
    };
    shared.lock().stats.bytes_received += size;
    if min_size.is_some_and(|min| size < min) {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(OssError::new(
            400,
            "EntityTooSmall",
            "Your proposed upload smaller than the minimum allowed size.",
            Some(EC_ENTITY_TOO_SMALL),
        ));
    }
    let received = Received {
        tmp,
        size,
        md5,
        crc,
    };
    if let Err(e) = received.persist(&shared.object_path(bucket, &key)).await {
        received.discard().await;
        return Err(e);
    }
    let etag = format!("\"{}\"", hex::encode_upper(md5));
    let user_meta = form
        .fields
        .iter()
        .filter(|(n, _)| n.starts_with("x-oss-meta-"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let meta = ObjectMeta {
        size,
        etag: etag.clone(),
        content_md5: Some(md5),
        crc64: crc,
        object_type: "Normal",
        content_type: form
            .fields
            .get("content-type")
            .cloned()
            .or(form.file_content_type.clone())
            .unwrap_or_else(|| "application/octet-stream".to_owned()),
        last_modified: std::time::SystemTime::now(),
        user_meta,
    };
    object_stored(shared, bucket, &key, meta);
    Ok(success(shared, &form, bucket, &key, &etag, crc, md5))
}

fn too_large() -> OssError {
    OssError::new(
        400,
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed size.",
        Some(EC_ENTITY_TOO_LARGE),
    )
}

fn success(
    shared: &Shared,
    form: &Form,
    bucket: &str,
    key: &str,
    etag: &str,
    crc: u64,
    md5: [u8; 16],
) -> Response {
    let status = match form.fields.get("success_action_status").map(String::as_str) {
        Some("200") => StatusCode::OK,
        Some("201") => StatusCode::CREATED,
        // Anything else, as OSS does, is the default.
        _ => StatusCode::NO_CONTENT,
    };
    let mut resp = if status == StatusCode::CREATED {
        let location = format!("{}/{bucket}/{key}", shared.base_url);
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Bucket>{}</Bucket><Location>{}</Location><Key>{}</Key><ETag>{}</ETag></PostResponse>",
            xml_escape(bucket),
            xml_escape(&location),
            xml_escape(key),
            xml_escape(etag)
        );
        (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
    } else {
        status.into_response()
    };
    let h = resp.headers_mut();
    insert(h, "etag", etag);
    insert(h, "x-oss-hash-crc64ecma", &crc.to_string());
    insert(
        h,
        "content-md5",
        &base64::engine::general_purpose::STANDARD.encode(md5),
    );
    resp
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The signature over the Base64 policy, V4 when the form says so, else V1.
fn verify_signature(
    shared: &Shared,
    form: &Form,
    policy_b64: &str,
    now: DateTime<Utc>,
) -> Result<super::Principal, OssError> {
    let field = |name: &str| form.fields.get(name).map(String::as_str);
    let token = field("x-oss-security-token");
    let mismatch = super::signature_mismatch;
    if let Some(version) = field("x-oss-signature-version") {
        if version != "OSS4-HMAC-SHA256" {
            return Err(invalid_argument(
                "x-oss-signature-version",
                "The x-oss-signature-version field must be OSS4-HMAC-SHA256.",
            ));
        }
        let missing =
            |name: &str| invalid_argument(name, &format!("A V4 form needs the {name} field."));
        let credential = field("x-oss-credential").ok_or_else(|| missing("x-oss-credential"))?;
        let datetime = field("x-oss-date").ok_or_else(|| missing("x-oss-date"))?;
        let provided = field("x-oss-signature").ok_or_else(|| missing("x-oss-signature"))?;
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, "oss", "aliyun_v4_request"] = parts[..] else {
            return Err(invalid_argument(
                "x-oss-credential",
                "x-oss-credential must be <AccessKeyId>/<yyyymmdd>/<region>/oss/aliyun_v4_request.",
            ));
        };
        if !datetime.starts_with(date) || datetime.len() != 16 {
            return Err(invalid_argument(
                "x-oss-date",
                "x-oss-date must be yyyymmddTHHMMSSZ of the credential's date.",
            ));
        }
        if region != shared.config.region {
            return Err(mismatch(access_key_id));
        }
        let (principal, secret) = principal_and_secret(shared, access_key_id, token, now)?;
        let expected = sign::post_policy::v4_signature(&secret, date, region, policy_b64);
        if !sign::constant_time_eq(
            expected.as_bytes(),
            provided.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(mismatch(access_key_id));
        }
        return Ok(principal);
    }
    let access_key_id = field("ossaccesskeyid").ok_or_else(|| {
        invalid_argument(
            "OSSAccessKeyId",
            "A signed form needs the OSSAccessKeyId field (or the V4 fields).",
        )
    })?;
    let provided = field("signature").ok_or_else(|| {
        invalid_argument(
            "Signature",
            "A form with a policy needs its Signature field.",
        )
    })?;
    let (principal, secret) = principal_and_secret(shared, access_key_id, token, now)?;
    let expected = sign::post_policy::v1_signature(&secret, policy_b64);
    if !sign::constant_time_eq(expected.as_bytes(), provided.as_bytes()) {
        return Err(mismatch(access_key_id));
    }
    Ok(principal)
}

struct Policy {
    expiration: DateTime<Utc>,
    conditions: Vec<Value>,
}

impl Policy {
    fn parse(policy_b64: &str) -> Result<Self, OssError> {
        let invalid_json = || invalid_policy("Invalid Policy: Invalid JSON.", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(policy_b64.trim())
            .map_err(|_| invalid_policy("Invalid Policy: Invalid Base64 Encoding.", None))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid_json())?;
        let object = value.as_object().ok_or_else(invalid_json)?;
        if let Some(extra) = object
            .keys()
            .find(|k| *k != "expiration" && *k != "conditions")
        {
            return Err(invalid_policy(
                &format!("Invalid Policy: Unexpected field {extra}: a policy has only expiration and conditions."),
                Some(EC_POLICY_EXTRA_KEY),
            ));
        }
        let expiration = object
            .get("expiration")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid_policy(
                    "Invalid Policy: Policy missing expiration.",
                    Some(EC_POLICY_NO_EXPIRATION),
                )
            })?;
        let expiration = DateTime::parse_from_rfc3339(expiration)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                invalid_policy(
                    "Invalid Policy: Invalid 'expiration' value: it must be ISO 8601 in GMT, e.g. 2023-02-19T13:19:00.000Z.",
                    None,
                )
            })?;
        let conditions = object
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| {
                invalid_policy(
                    "Invalid Policy: Policy missing conditions.",
                    Some(EC_POLICY_NO_CONDITIONS),
                )
            })?;
        Ok(Self {
            expiration,
            conditions,
        })
    }

    /// Checks every condition but the size; answers the size range (min, max) to enforce.
    fn check_conditions(
        &self,
        form: &Form,
        bucket: &str,
        key: &str,
    ) -> Result<(Option<u64>, Option<u64>), OssError> {
        let value_of = |name: &str| -> String {
            match name.to_ascii_lowercase().as_str() {
                "bucket" => bucket.to_owned(),
                "key" => key.to_owned(),
                other => form.fields.get(other).cloned().unwrap_or_default(),
            }
        };
        let failed = |condition: &Value| {
            access_denied(
                &format!("Invalid according to Policy: Policy Condition failed: {condition}"),
                Some(EC_CONDITION_FAILED),
            )
        };
        let invalid = |condition: &Value| {
            invalid_policy(
                &format!("Invalid Policy: Invalid Simple-Condition: {condition}"),
                None,
            )
        };
        let (mut min, mut max) = (None, None);
        for condition in &self.conditions {
            match condition {
                Value::Object(map) => {
                    for (name, want) in map {
                        let want = want.as_str().ok_or_else(|| invalid(condition))?;
                        if value_of(name) != want {
                            return Err(failed(condition));
                        }
                    }
                }
                Value::Array(items) => {
                    let op = items
                        .first()
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(condition))?;
                    if op.eq_ignore_ascii_case("content-length-range") {
                        let bound = |i: usize| items.get(i).and_then(Value::as_u64);
                        let (Some(lo), Some(hi), 3) = (bound(1), bound(2), items.len()) else {
                            return Err(invalid_policy(
                                &format!("Invalid Policy: Invalid content-length-range: {condition}: both bounds must be whole numbers of bytes."),
                                Some(EC_BAD_LENGTH_RANGE),
                            ));
                        };
                        if hi < lo {
                            return Err(invalid_policy(
                                &format!("Invalid Policy: Invalid content-length-range: {condition}: the maximum is below the minimum."),
                                Some(EC_BAD_LENGTH_RANGE),
                            ));
                        }
                        min = Some(min.map_or(lo, |m: u64| m.max(lo)));
                        max = Some(max.map_or(hi, |m: u64| m.min(hi)));
                        continue;
                    }
                    let (Some(field), Some(operand), 3) = (
                        items.get(1).and_then(Value::as_str),
                        items.get(2),
                        items.len(),
                    ) else {
                        return Err(invalid(condition));
                    };
                    let field = field.strip_prefix('$').ok_or_else(|| invalid(condition))?;
                    let actual = value_of(field);
                    let list = || -> Result<Vec<&str>, OssError> {
                        operand
                            .as_array()
                            .ok_or_else(|| invalid(condition))?
                            .iter()
                            .map(|v| v.as_str().ok_or_else(|| invalid(condition)))
                            .collect()
                    };
                    let holds = match op.to_ascii_lowercase().as_str() {
                        "eq" => actual == operand.as_str().ok_or_else(|| invalid(condition))?,
                        "starts-with" => {
                            actual.starts_with(operand.as_str().ok_or_else(|| invalid(condition))?)
                        }
                        "in" => list()?.contains(&actual.as_str()),
                        "not-in" => !list()?.contains(&actual.as_str()),
                        _ => return Err(invalid(condition)),
                    };
                    if !holds {
                        return Err(failed(condition));
                    }
                }
                _ => return Err(invalid(condition)),
            }
        }
        Ok((min, max))
    }
}

/// For the `cargo fuzz` target: the policy as the emulator reads it and the size range its
/// conditions allow for a form with these fields (`bucket` and `key` as given).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_policy(
    policy_json: &[u8],
    bucket: &str,
    key: &str,
    fields: &[(String, String)],
) -> Result<(Option<u64>, Option<u64>), String> {
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy_json);
    let policy = Policy::parse(&policy_b64).map_err(|e| e.code)?;
    let form = Form {
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        file_name: "clip.mp4".to_owned(),
        file_content_type: None,
    };
    policy
        .check_conditions(&form, bucket, key)
        .map_err(|e| e.code)
}
