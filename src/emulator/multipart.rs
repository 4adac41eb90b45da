//! OSS multipart upload (`docs/reference/oss.md` §2): InitiateMultipartUpload, UploadPart,
//! CompleteMultipartUpload, ListParts, AbortMultipartUpload, ListMultipartUploads.
//!
//! Parts are streamed to disk like PutObject bodies; Complete concatenates the listed parts
//! file by file (bounded memory), combines their CRC-64s, and derives the ETag the way OSS
//! was observed to: MD5 of the concatenated upper-hex part ETags, then `-<part count>`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use md5::{Digest as _, Md5};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::errors::{xml_escape, OssError};
use super::object::{
    forbid_overwrite, header_str, insert, invalid_digest, object_stored, receive_body, user_meta,
};
use super::state::{MultipartUpload, ObjectMeta, PartMeta, Shared};
use crate::crc64;

/// Smallest size of every part but the last (oss2's `min_part_size`; the doc says 100 KB).
const MIN_PART_SIZE: u64 = 100 * 1024;
const MAX_PART_NUMBER: u32 = 10_000;
const MAX_LIST: usize = 1000;
/// Documented EC for a non-last part below the minimum (`docs/reference/oss.md` §2.3).
const EC_PART_TOO_SMALL: &str = "0042-00000213";
const EC_PART_NUMBER: &str = "0017-00000220";

/// `encoding-type=url`: what oss2 un-quotes.
const URL_KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn url_encoded(query: &[(String, String)]) -> bool {
    query_value(query, "encoding-type") == Some("url")
}

fn key_text(key: &str, encode: bool) -> String {
    if encode {
        utf8_percent_encode(key, URL_KEY).to_string()
    } else {
        key.to_owned()
    }
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

fn el(out: &mut String, name: &str, value: &str) {
    out.push_str(&format!("<{name}>{}</{name}>", xml_escape(value)));
}

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn no_such_upload(upload_id: &str) -> OssError {
    OssError::new(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
        None,
    )
    .with("UploadId", upload_id)
}

/// The upload named by `uploadId`, which must be for this bucket and key.
fn find_upload(
    shared: &Shared,
    bucket: &str,
    key: &str,
    query: &[(String, String)],
) -> Result<(String, MultipartUpload), OssError> {
    let id = query_value(query, "uploadId").unwrap_or_default();
    let inner = shared.lock();
    let upload = inner
        .uploads
        .get(id)
        .filter(|u| u.bucket == bucket && u.key == key)
        .cloned()
        .ok_or_else(|| no_such_upload(id))?;
    Ok((id.to_owned(), upload))
}

pub(super) async fn initiate(
    shared: &Shared,
    headers: &HeaderMap,
    bucket: &str,
    key: &str,
    query: &[(String, String)],
) -> Result<Response, OssError> {
    forbid_overwrite(shared, headers, bucket, key)?;
    let upload_id = hex::encode_upper(uuid::Uuid::new_v4().as_bytes());
    shared.lock().uploads.insert(
        upload_id.clone(),
        MultipartUpload {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            initiated: Utc::now(),
            content_type: header_str(headers, header::CONTENT_TYPE)
                .unwrap_or("application/octet-stream")
                .to_owned(),
            user_meta: user_meta(headers),
            parts: Default::default(),
        },
    );
    let encode = url_encoded(query);
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>");
    if encode {
        el(&mut out, "EncodingType", "url");
    }
    el(&mut out, "Bucket", bucket);
    el(&mut out, "Key", &key_text(key, encode));
    el(&mut out, "UploadId", &upload_id);
    out.push_str("</InitiateMultipartUploadResult>");
    Ok(xml_response(StatusCode::OK, out))
}

/// Consumes one unit of the `corrupt_next_parts` fault.
fn take_corruption(shared: &Shared) -> bool {
    let mut inner = shared.lock();
    if inner.faults.corrupt_next_parts > 0 {
        inner.faults.corrupt_next_parts -= 1;
        true
    } else {
        false
    }
}

/// Flips one byte of a stored part, as a bad link would, and returns the MD5 and CRC-64 of
/// what is now stored. Only used under the fault, so reading the part back is fine.
async fn corrupt_stored_part(path: &std::path::Path) -> std::io::Result<([u8; 16], u64)> {
    let mut bytes = tokio::fs::read(path).await?;
    if let Some(first) = bytes.first_mut() {
        *first ^= 0x5a;
    }
    tokio::fs::write(path, &bytes).await?;
    Ok((Md5::digest(&bytes).into(), crate::crc64::checksum(&bytes)))
}

pub(super) async fn upload_part(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
    bucket: &str,
    key: &str,
    query: &[(String, String)],
) -> Result<Response, OssError> {
    let raw_number = query_value(query, "partNumber").unwrap_or_default();
    let number = raw_number
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            OssError::new(
                400,
                "InvalidArgument",
                "Part number must be an integer between 1 and 10000, inclusive.",
                Some(EC_PART_NUMBER),
            )
            .with("ArgumentName", "PartNumber")
            .with("ArgumentValue", raw_number)
        })?;
    let (upload_id, _) = find_upload(shared, bucket, key, query)?;
    let received = receive_body(shared, headers, body).await?;
    let path = shared.part_path(&upload_id, number);
    // The upload may have been completed or aborted while the body was streaming.
    let still_there = shared.lock().uploads.contains_key(&upload_id);
    if !still_there {
        received.discard().await;
        return Err(no_such_upload(&upload_id));
    }
    if let Err(e) = received.persist(&path).await {
        received.discard().await;
        return Err(e);
    }
    let (md5, crc64) = if take_corruption(shared) {
        corrupt_stored_part(&path).await.map_err(|e| {
            OssError::new(
                500,
                "InternalError",
                &format!("corrupting the part failed: {e}"),
                None,
            )
        })?
    } else {
        (received.md5, received.crc)
    };
    let part = PartMeta {
        size: received.size,
        md5,
        crc64,
        last_modified: Utc::now(),
    };
    let etag = format!("\"{}\"", part.etag_hex());
    let recorded = {
        let mut inner = shared.lock();
        match inner.uploads.get_mut(&upload_id) {
            Some(upload) => {
                // Uploading a part number again replaces the part.
                upload.parts.insert(number, part);
                inner.stats.parts += 1;
                true
            }
            None => false,
        }
    };
    if !recorded {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(no_such_upload(&upload_id));
    }
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    insert(h, "etag", &etag);
    // What was stored, which is what the client must compare with what it sent.
    insert(h, "x-oss-hash-crc64ecma", &crc64.to_string());
    insert(
        h,
        "content-md5",
        &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, md5),
    );
    Ok(resp)
}

#[derive(Deserialize)]
struct CompleteBody {
    #[serde(rename = "Part", default)]
    parts: Vec<CompletePart>,
}

#[derive(Deserialize)]
struct CompletePart {
    #[serde(rename = "PartNumber")]
    number: String,
    #[serde(rename = "ETag")]
    etag: String,
}

fn malformed_xml() -> OssError {
    OssError::new(
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema.",
        None,
    )
}

fn invalid_part() -> OssError {
    OssError::new(
        400,
        "InvalidPart",
        "One or more of the specified parts could not be found or the specified entity tag might not have matched the part's entity tag.",
        None,
    )
}

/// The parts a CompleteMultipartUpload body lists: numbers in 1..=10000, strictly ascending,
/// each with its ETag without quotes.
pub(crate) fn parse_complete_body(text: &str) -> Result<Vec<(u32, String)>, OssError> {
    let parsed: CompleteBody = quick_xml::de::from_str(text).map_err(|_| malformed_xml())?;
    let mut listed = Vec::with_capacity(parsed.parts.len());
    let mut previous = 0u32;
    for p in parsed.parts {
        let number = p
            .number
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
            .ok_or_else(|| {
                OssError::new(
                    400,
                    "InvalidPartOrder",
                    "Part number must be an integer between 1 and 10000, inclusive.",
                    None,
                )
            })?;
        if number <= previous {
            return Err(OssError::new(
                400,
                "InvalidPartOrder",
                "The list of parts was not in ascending order.",
                None,
            ));
        }
        previous = number;
        listed.push((number, p.etag.trim().trim_matches('"').to_owned()));
    }
    Ok(listed)
}

pub(super) async fn complete(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: Body,
    bucket: &str,
    key: &str,
    query: &[(String, String)],
) -> Result<Response, OssError> {
    let (upload_id, upload) = find_upload(shared, bucket, key, query)?;
    let body = axum::body::to_bytes(body, 4 << 20)
        .await
        .map_err(|_| malformed_xml())?;
    let complete_all =
        header_str(headers, "x-oss-complete-all").is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    let listed: Vec<(u32, PartMeta)> = if complete_all {
        if !body.is_empty() {
            return Err(OssError::new(
                400,
                "InvalidArgument",
                "Should not specify both complete all header and http body.",
                None,
            )
            .with("ArgumentName", "x-oss-complete-all"));
        }
        upload.parts.iter().map(|(n, p)| (*n, p.clone())).collect()
    } else {
        if let Some(md5) = header_str(headers, "content-md5") {
            let actual = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                Md5::digest(&body),
            );
            if md5.trim() != actual {
                return Err(invalid_digest());
            }
        }
        let text = std::str::from_utf8(&body).map_err(|_| malformed_xml())?;
        let parsed = parse_complete_body(text)?;
        let mut listed = Vec::with_capacity(parsed.len());
        for (number, etag) in parsed {
            let part = upload.parts.get(&number).ok_or_else(invalid_part)?;
            if !etag.eq_ignore_ascii_case(&part.etag_hex()) {
                return Err(invalid_part());
            }
            listed.push((number, part.clone()));
        }
        listed
    };
    if listed.is_empty() {
        return Err(malformed_xml());
    }
    if let Some((number, _)) = listed[..listed.len() - 1]
        .iter()
        .find(|(_, p)| p.size < MIN_PART_SIZE)
    {
        return Err(OssError::new(
            400,
            "EntityTooSmall",
            "Your proposed upload smaller than the minimum allowed size.",
            Some(EC_PART_TOO_SMALL),
        )
        .with("PartNumber", number.to_string()));
    }
    forbid_overwrite(shared, headers, bucket, key)?;

    // From here the upload is gone for everyone else; it comes back if assembling fails.
    let Some(taken) = shared.lock().uploads.remove(&upload_id) else {
        return Err(no_such_upload(&upload_id));
    };
    let assembled = assemble(shared, &upload_id, &listed, bucket, key).await;
    let (size, crc) = match assembled {
        Ok(v) => v,
        Err(e) => {
            shared.lock().uploads.insert(upload_id, taken);
            return Err(e);
        }
    };
    let _ = tokio::fs::remove_dir_all(shared.upload_dir(&upload_id)).await;

    let mut etag_source = String::with_capacity(listed.len() * 32);
    for (_, p) in &listed {
        etag_source.push_str(&p.etag_hex());
    }
    let etag = format!(
        "\"{}-{}\"",
        hex::encode_upper(Md5::digest(etag_source.as_bytes())),
        listed.len()
    );
    object_stored(
        shared,
        bucket,
        key,
        ObjectMeta {
            size,
            etag: etag.clone(),
            content_md5: None,
            crc64: crc,
            object_type: "Multipart",
            content_type: taken.content_type,
            last_modified: std::time::SystemTime::now(),
            user_meta: taken.user_meta,
        },
    );

    let encode = url_encoded(query);
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>");
    if encode {
        el(&mut out, "EncodingType", "url");
    }
    el(
        &mut out,
        "Location",
        &format!(
            "{}/{bucket}/{}",
            shared.base_url,
            utf8_percent_encode(key, URL_KEY)
        ),
    );
    el(&mut out, "Bucket", bucket);
    el(&mut out, "Key", &key_text(key, encode));
    el(&mut out, "ETag", &etag);
    out.push_str("</CompleteMultipartUploadResult>");
    let mut resp = xml_response(StatusCode::OK, out);
    insert(resp.headers_mut(), "etag", &etag);
    insert(resp.headers_mut(), "x-oss-hash-crc64ecma", &crc.to_string());
    Ok(resp)
}

/// Concatenates the parts into the object file; returns its size and combined CRC-64.
async fn assemble(
    shared: &Shared,
    upload_id: &str,
    parts: &[(u32, PartMeta)],
    bucket: &str,
    key: &str,
) -> Result<(u64, u64), OssError> {
    let io_error = |e: std::io::Error| {
        tracing::error!(error = %e, "could not assemble a multipart object");
        OssError::internal()
    };
    let tmp = shared.tmp_path();
    let sources: Vec<(std::path::PathBuf, u64)> = parts
        .iter()
        .map(|(number, part)| (shared.part_path(upload_id, *number), part.size))
        .collect();
    // One blocking task with std::io::copy (copy_file_range on Linux) instead of tokio's 8 KiB
    // hops through the blocking pool: Complete on a multi-GiB object must not dominate a run.
    let out_path = tmp.clone();
    let copied = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u64>> {
        let mut out = std::fs::File::create(&out_path)?;
        let mut sizes = Vec::with_capacity(sources.len());
        for (path, _) in &sources {
            let mut file = std::fs::File::open(path)?;
            sizes.push(std::io::copy(&mut file, &mut out)?);
        }
        Ok(sizes)
    })
    .await
    .map_err(|e| io_error(std::io::Error::other(e)));
    let result = async {
        let copied = copied?.map_err(io_error)?;
        let (mut size, mut crc) = (0u64, 0u64);
        for ((_, part), copied) in parts.iter().zip(copied) {
            if copied != part.size {
                return Err(OssError::new(
                    400,
                    "FilePartNotExist",
                    "The Part you read had been deleted.",
                    None,
                ));
            }
            size += part.size;
            crc = crc64::combine(crc, part.crc64, part.size);
        }
        let path = shared.object_path(bucket, key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io_error)?;
        }
        tokio::fs::rename(&tmp, &path).await.map_err(io_error)?;
        Ok((size, crc))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

fn list_limit(query: &[(String, String)], name: &str) -> Result<usize, OssError> {
    match query_value(query, name).filter(|v| !v.is_empty()) {
        None => Ok(MAX_LIST),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIST).contains(n))
            .ok_or_else(|| {
                OssError::new(
                    400,
                    "InvalidArgument",
                    &format!("Argument {name} is invalid."),
                    None,
                )
                .with("ArgumentName", name)
                .with("ArgumentValue", v)
            }),
    }
}

pub(super) fn list_parts(
    shared: &Shared,
    bucket: &str,
    key: &str,
    query: &[(String, String)],
) -> Result<Response, OssError> {
    let (upload_id, upload) = find_upload(shared, bucket, key, query)?;
    let max = list_limit(query, "max-parts")?;
    let marker = query_value(query, "part-number-marker")
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<u32>())
        .transpose()
        .map_err(|_| {
            OssError::new(
                400,
                "InvalidArgument",
                "Argument part-number-marker is invalid.",
                None,
            )
            .with("ArgumentName", "part-number-marker")
        })?
        .unwrap_or(0);
    let after: Vec<(&u32, &PartMeta)> = upload.parts.range(marker + 1..).collect();
    let truncated = after.len() > max;
    let page = &after[..after.len().min(max)];
    let next = page.last().map_or(marker, |(n, _)| **n);
    let encode = url_encoded(query);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListPartsResult>");
    if encode {
        el(&mut out, "EncodingType", "url");
    }
    el(&mut out, "Bucket", bucket);
    el(&mut out, "Key", &key_text(key, encode));
    el(&mut out, "UploadId", &upload_id);
    el(&mut out, "PartNumberMarker", &marker.to_string());
    el(&mut out, "NextPartNumberMarker", &next.to_string());
    el(&mut out, "MaxParts", &max.to_string());
    el(
        &mut out,
        "IsTruncated",
        if truncated { "true" } else { "false" },
    );
    el(&mut out, "StorageClass", "Standard");
    for (number, part) in page {
        out.push_str("<Part>");
        el(&mut out, "PartNumber", &number.to_string());
        el(&mut out, "LastModified", &iso(part.last_modified));
        el(&mut out, "ETag", &format!("\"{}\"", part.etag_hex()));
        el(&mut out, "HashCrc64ecma", &part.crc64.to_string());
        el(&mut out, "Size", &part.size.to_string());
        out.push_str("</Part>");
    }
    out.push_str("</ListPartsResult>");
    Ok(xml_response(StatusCode::OK, out))
}

pub(super) async fn abort(
    shared: &Shared,
    bucket: &str,
    key: &str,
    query: &[(String, String)],
) -> Result<Response, OssError> {
    let (upload_id, _) = find_upload(shared, bucket, key, query)?;
    shared.lock().uploads.remove(&upload_id);
    let _ = tokio::fs::remove_dir_all(shared.upload_dir(&upload_id)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) fn list_uploads(
    shared: &Shared,
    bucket: &str,
    query: &[(String, String)],
) -> Result<Response, OssError> {
    let max = list_limit(query, "max-uploads")?;
    let get = |name| query_value(query, name).unwrap_or_default();
    let (prefix, delimiter, key_marker, id_marker) = (
        get("prefix"),
        get("delimiter"),
        get("key-marker"),
        get("upload-id-marker"),
    );
    let mut uploads: Vec<(String, String, chrono::DateTime<Utc>)> = shared
        .lock()
        .uploads
        .iter()
        .filter(|(_, u)| u.bucket == bucket && u.key.starts_with(prefix))
        .map(|(id, u)| (u.key.clone(), id.clone(), u.initiated))
        .collect();
    uploads.sort();
    // After the markers: keys greater than key-marker, or equal with a greater upload id.
    uploads.retain(|(k, id, _)| {
        key_marker.is_empty()
            || k.as_str() > key_marker
            || (k == key_marker && !id_marker.is_empty() && id.as_str() > id_marker)
    });
    let mut entries = Vec::new();
    let mut common: Vec<String> = Vec::new();
    for (k, id, t) in uploads {
        if !delimiter.is_empty() {
            if let Some(pos) = k[prefix.len()..].find(delimiter) {
                let p = k[..prefix.len() + pos + delimiter.len()].to_owned();
                if !common.contains(&p) {
                    common.push(p);
                }
                continue;
            }
        }
        entries.push((k, id, t));
    }
    let truncated = entries.len() > max;
    entries.truncate(max);
    let encode = url_encoded(query);
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult>");
    el(&mut out, "Bucket", bucket);
    if encode {
        el(&mut out, "EncodingType", "url");
    }
    el(&mut out, "KeyMarker", &key_text(key_marker, encode));
    el(&mut out, "UploadIdMarker", id_marker);
    let (next_key, next_id) = entries
        .last()
        .map(|(k, id, _)| (k.clone(), id.clone()))
        .unwrap_or_default();
    el(&mut out, "NextKeyMarker", &key_text(&next_key, encode));
    el(&mut out, "NextUploadIdMarker", &next_id);
    el(&mut out, "Delimiter", &key_text(delimiter, encode));
    el(&mut out, "Prefix", &key_text(prefix, encode));
    el(&mut out, "MaxUploads", &max.to_string());
    el(
        &mut out,
        "IsTruncated",
        if truncated { "true" } else { "false" },
    );
    for (k, id, t) in &entries {
        out.push_str("<Upload>");
        el(&mut out, "Key", &key_text(k, encode));
        el(&mut out, "UploadId", id);
        el(&mut out, "Initiated", &iso(*t));
        out.push_str("</Upload>");
    }
    for p in &common {
        out.push_str("<CommonPrefixes>");
        el(&mut out, "Prefix", &key_text(p, encode));
        out.push_str("</CommonPrefixes>");
    }
    out.push_str("</ListMultipartUploadsResult>");
    Ok(xml_response(StatusCode::OK, out))
}
