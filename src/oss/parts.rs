//! Streamed PutObject from any source, and the multipart API: InitiateMultipartUpload,
//! UploadPart, CompleteMultipartUpload, ListParts (paginated), AbortMultipartUpload.
//! Every body is streamed and CRC-64-checked against what OSS reports (`docs/reference/oss.md` §2, §3.3).

use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use reqwest::Method;
use serde::Deserialize;

use super::{
    check, etag, header_str, header_u64, mime, ObjectTarget, OssClient, OssCredentials, OssError,
    OssErrorKind, ProgressFn, PutObjectOutput,
};
use crate::crc64::{self, Crc64};
use crate::source::ByteStream;

/// OSS limits (`docs/reference/oss.md` §2).
pub const MIN_PART_SIZE: u64 = 100 * 1024;
pub const MAX_PARTS: u64 = 10_000;

/// The part size oss2 would choose: the whole file when it is smaller than `preferred`,
/// otherwise `preferred` doubled until the file fits in 10,000 parts of at least 100 KiB.
pub fn determine_part_size(total: u64, preferred: u64) -> u64 {
    if total < preferred {
        return total.max(1);
    }
    let mut size = preferred.max(1);
    while size * MAX_PARTS < total || size < MIN_PART_SIZE {
        size *= 2;
    }
    size
}

/// A part OSS accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: u32,
    /// Without quotes.
    pub etag: String,
    pub size: u64,
    pub crc64: u64,
}

/// A part as ListParts reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    pub crc64: Option<u64>,
}

/// What CompleteMultipartUpload answered.
#[derive(Debug, Clone)]
pub struct CompletedUpload {
    pub etag: String,
    /// The whole object's CRC-64 as OSS reported it (already compared with the parts').
    pub crc64: Option<u64>,
    pub request_id: Option<String>,
}

#[derive(Deserialize)]
struct InitiateResult {
    #[serde(rename = "UploadId")]
    upload_id: String,
}

#[derive(Deserialize)]
struct ListPartsResult {
    #[serde(rename = "IsTruncated", default)]
    is_truncated: Option<String>,
    #[serde(rename = "NextPartNumberMarker", default)]
    next_part_number_marker: Option<String>,
    #[serde(rename = "Part", default)]
    parts: Vec<ListPartXml>,
}

#[derive(Deserialize)]
struct ListPartXml {
    #[serde(rename = "PartNumber")]
    part_number: u32,
    #[serde(rename = "ETag")]
    etag: String,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "HashCrc64ecma", default)]
    crc64: Option<String>,
}

/// One page of a ListParts answer: its parts, and the marker of the next page when it is
/// truncated.
#[derive(Debug)]
pub(crate) struct ListPartsPage {
    pub parts: Vec<ListedPart>,
    pub next_marker: Option<String>,
}

/// An OSS answer whose XML is not what the operation answers; becomes
/// `OssErrorKind::UnexpectedResponse` with the status and request id it came with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} answer: {reason}")]
pub struct MalformedAnswer {
    pub operation: &'static str,
    pub reason: String,
}

/// The upload id in an InitiateMultipartUpload answer.
pub(crate) fn parse_initiate_answer(text: &str) -> Result<String, MalformedAnswer> {
    quick_xml::de::from_str::<InitiateResult>(text)
        .map(|parsed| parsed.upload_id)
        .map_err(|e| MalformedAnswer {
            operation: "InitiateMultipartUpload",
            reason: e.to_string(),
        })
}

/// One ListParts answer. A truncated page without a `NextPartNumberMarker` is the last one.
pub(crate) fn parse_list_parts_page(text: &str) -> Result<ListPartsPage, MalformedAnswer> {
    let page: ListPartsResult = quick_xml::de::from_str(text).map_err(|e| MalformedAnswer {
        operation: "ListParts",
        reason: e.to_string(),
    })?;
    let truncated = page.is_truncated.as_deref().map(str::trim) == Some("true");
    Ok(ListPartsPage {
        parts: page
            .parts
            .into_iter()
            .map(|p| ListedPart {
                part_number: p.part_number,
                etag: p.etag.trim_matches('"').to_owned(),
                size: p.size,
                crc64: p.crc64.and_then(|c| c.trim().parse().ok()),
            })
            .collect(),
        next_marker: page
            .next_part_number_marker
            .filter(|_| truncated)
            .map(|m| m.trim().to_owned()),
    })
}

/// The CompleteMultipartUpload body for `parts` (in ascending order), and the CRC-64 the whole
/// object must then have.
pub(crate) fn complete_body(parts: &[UploadedPart]) -> (String, u64) {
    let mut sorted: Vec<&UploadedPart> = parts.iter().collect();
    sorted.sort_by_key(|p| p.part_number);
    let mut body = String::from("<CompleteMultipartUpload>");
    let mut expected = 0u64;
    for part in &sorted {
        // The ETag is the server's text (a header, or a ListParts answer on resume): escaped,
        // so that whatever it holds the body stays the XML OSS expects.
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>\"{}\"</ETag></Part>",
            part.part_number,
            quick_xml::escape::escape(part.etag.as_str())
        ));
        expected = crc64::combine(expected, part.crc64, part.size);
    }
    body.push_str("</CompleteMultipartUpload>");
    (body, expected)
}

fn unexpected(status: u16, request_id: Option<String>, detail: impl Into<String>) -> OssError {
    OssError::from(OssErrorKind::UnexpectedResponse {
        http_status: status,
        request_id,
        detail: detail.into(),
    })
}

/// Compares what we sent with the CRC-64 OSS computed over what it stored, when it reports one.
fn verify_crc(response: &reqwest::Response, local: u64, size: u64) -> Result<(), OssError> {
    match header_u64(response.headers(), "x-oss-hash-crc64ecma") {
        Some(server) if server != local => Err(OssError::from(OssErrorKind::CrcMismatch {
            local,
            server,
            size,
            request_id: header_str(response.headers(), "x-oss-request-id"),
        })),
        _ => Ok(()),
    }
}

/// Wraps a body so its CRC-64 and length are computed while it is sent.
fn crc_tracked(
    body: ByteStream,
    progress: Option<ProgressFn>,
) -> (reqwest::Body, Arc<Mutex<Crc64>>) {
    let crc = Arc::new(Mutex::new(Crc64::new()));
    let tracked = {
        let crc = Arc::clone(&crc);
        body.map(move |chunk| {
            let chunk = chunk?;
            let sent = {
                let mut crc = crc.lock().expect("CRC lock is never poisoned");
                crc.update(&chunk);
                crc.len()
            };
            if let Some(progress) = &progress {
                progress(sent);
            }
            Ok::<_, std::io::Error>(chunk)
        })
    };
    (reqwest::Body::wrap_stream(tracked), crc)
}

impl OssClient {
    /// PutObject from a stream of exactly `len` bytes (remote sources, rewritten playlists).
    pub async fn put_object_stream(
        &self,
        target: &ObjectTarget,
        creds: &OssCredentials,
        body: ByteStream,
        len: u64,
        content_type: Option<&str>,
        progress: Option<ProgressFn>,
    ) -> Result<PutObjectOutput, OssError> {
        let content_type = content_type
            .map(str::to_owned)
            .or_else(|| mime::from_name(&target.key))
            .unwrap_or_else(|| mime::DEFAULT.to_owned());
        let (body, crc) = crc_tracked(body, progress);
        let headers = vec![
            ("Content-Type".to_owned(), content_type),
            ("Content-Length".to_owned(), len.to_string()),
        ];
        let response = self
            .signed_request(Method::PUT, target, &[], headers, Some(body), creds)
            .await?;
        let response = check(response, false).await?;
        let request_id = header_str(response.headers(), "x-oss-request-id");
        let local = crc.lock().expect("CRC lock is never poisoned").value();
        verify_crc(&response, local, len)?;
        Ok(PutObjectOutput {
            etag: etag(response.headers()),
            crc64: local,
            size: len,
            request_id,
        })
    }

    /// Starts a multipart upload; returns its upload id.
    pub async fn initiate_multipart_upload(
        &self,
        target: &ObjectTarget,
        creds: &OssCredentials,
        content_type: Option<&str>,
    ) -> Result<String, OssError> {
        let content_type = content_type
            .map(str::to_owned)
            .or_else(|| mime::from_name(&target.key))
            .unwrap_or_else(|| mime::DEFAULT.to_owned());
        let response = self
            .signed_request(
                Method::POST,
                target,
                &[("uploads".to_owned(), String::new())],
                vec![
                    ("Content-Type".to_owned(), content_type),
                    ("Content-Length".to_owned(), "0".to_owned()),
                ],
                Some(reqwest::Body::from(Vec::new())),
                creds,
            )
            .await?;
        let response = check(response, false).await?;
        let status = response.status().as_u16();
        let request_id = header_str(response.headers(), "x-oss-request-id");
        let text = response.text().await.map_err(OssError::transport)?;
        parse_initiate_answer(&text).map_err(|e| unexpected(status, request_id, e.to_string()))
    }

    /// Sends one part of exactly `len` bytes and checks its CRC-64 against OSS's.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part(
        &self,
        target: &ObjectTarget,
        creds: &OssCredentials,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        len: u64,
        progress: Option<ProgressFn>,
    ) -> Result<UploadedPart, OssError> {
        let (body, crc) = crc_tracked(body, progress);
        let query = [
            ("partNumber".to_owned(), part_number.to_string()),
            ("uploadId".to_owned(), upload_id.to_owned()),
        ];
        let response = self
            .signed_request(
                Method::PUT,
                target,
                &query,
                vec![("Content-Length".to_owned(), len.to_string())],
                Some(body),
                creds,
            )
            .await?;
        let response = check(response, false).await?;
        let request_id = header_str(response.headers(), "x-oss-request-id");
        let local = crc.lock().expect("CRC lock is never poisoned").value();
        verify_crc(&response, local, len)?;
        let etag = etag(response.headers());
        if etag.is_empty() {
            return Err(unexpected(200, request_id, "UploadPart answer has no ETag"));
        }
        Ok(UploadedPart {
            part_number,
            etag,
            size: len,
            crc64: local,
        })
    }

    /// Completes the upload with `parts` (sent in ascending order) and checks the object's
    /// CRC-64 against the combination of the parts' CRCs.
    pub async fn complete_multipart_upload(
        &self,
        target: &ObjectTarget,
        creds: &OssCredentials,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<CompletedUpload, OssError> {
        let (body, expected) = complete_body(parts);
        let response = self
            .signed_request(
                Method::POST,
                target,
                &[("uploadId".to_owned(), upload_id.to_owned())],
                vec![("Content-Length".to_owned(), body.len().to_string())],
                Some(reqwest::Body::from(body)),
                creds,
            )
            .await?;
        let response = check(response, false).await?;
        let request_id = header_str(response.headers(), "x-oss-request-id");
        let server = header_u64(response.headers(), "x-oss-hash-crc64ecma");
        let etag = etag(response.headers());
        if let Some(server) = server {
            if server != expected {
                return Err(OssError::from(OssErrorKind::CrcMismatch {
                    local: expected,
                    server,
                    size: parts.iter().map(|p| p.size).sum(),
                    request_id,
                }));
            }
        }
        Ok(CompletedUpload {
            etag,
            crc64: server,
            request_id,
        })
    }

    /// Every part OSS holds for the upload, following `NextPartNumberMarker` across pages.
    pub async fn list_parts(
        &self,
        target: &ObjectTarget,
        creds: &OssCredentials,
        upload_id: &str,
    ) -> Result<Vec<ListedPart>, OssError> {
        let mut parts = Vec::new();
        let mut marker = "0".to_owned();
        loop {
            let query = [
                ("uploadId".to_owned(), upload_id.to_owned()),
                ("max-parts".to_owned(), "1000".to_owned()),
                ("part-number-marker".to_owned(), marker.clone()),
            ];
            let response = self
                .signed_request(Method::GET, target, &query, Vec::new(), None, creds)
                .await?;
            let response = check(response, false).await?;
            let status = response.status().as_u16();
            let request_id = header_str(response.headers(), "x-oss-request-id");
            let text = response.text().await.map_err(OssError::transport)?;
            let page = parse_list_parts_page(&text)
                .map_err(|e| unexpected(status, request_id.clone(), e.to_string()))?;
            parts.extend(page.parts);
            match page.next_marker {
                Some(next) if next != marker => marker = next,
                Some(_) => {
                    return Err(unexpected(
                        status,
                        request_id,
                        "ListParts is truncated but its marker does not advance",
                    ));
                }
                _ => break,
            }
        }
        Ok(parts)
    }

    /// Aborts the upload so OSS frees its parts.
    pub async fn abort_multipart_upload(
        &self,
        target: &ObjectTarget,
        creds: &OssCredentials,
        upload_id: &str,
    ) -> Result<(), OssError> {
        let response = self
            .signed_request(
                Method::DELETE,
                target,
                &[("uploadId".to_owned(), upload_id.to_owned())],
                Vec::new(),
                None,
                creds,
            )
            .await?;
        check(response, false).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `oss_multipart` fuzz target: a listed ETag `&quot;A&amp;B&quot;` (read back
    /// as `A&B`) made the Complete body malformed XML.
    #[test]
    fn complete_bodies_escape_the_etags() {
        let page = parse_list_parts_page(
            "<ListPartsResult><IsTruncated>false</IsTruncated><Part><PartNumber>3</PartNumber><ETag>&quot;A&amp;B&lt;/ETag&gt;&quot;</ETag><Size>1</Size></Part></ListPartsResult>",
        )
        .unwrap();
        assert_eq!(page.parts[0].etag, "A&B</ETag>");
        assert_eq!(page.next_marker, None);
        let parts: Vec<UploadedPart> = page
            .parts
            .iter()
            .map(|p| UploadedPart {
                part_number: p.part_number,
                etag: p.etag.clone(),
                size: p.size,
                crc64: 0,
            })
            .collect();
        let (body, _) = complete_body(&parts);
        assert_eq!(
            body,
            "<CompleteMultipartUpload><Part><PartNumber>3</PartNumber><ETag>\"A&amp;B&lt;/ETag&gt;\"</ETag></Part></CompleteMultipartUpload>"
        );
        assert_eq!(
            crate::emulator::multipart::parse_complete_body(&body).unwrap(),
            [(3, "A&B</ETag>".to_owned())]
        );
    }

    #[test]
    fn part_sizes_match_oss2() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(determine_part_size(350 * 1024, 10 * MIB), 358400);
        assert_eq!(determine_part_size(50 * MIB, 10 * MIB), 10 * MIB);
        assert_eq!(determine_part_size(200 * 1024 * MIB, 10 * MIB), 40 * MIB);
        assert_eq!(determine_part_size(1024 * 1024 * MIB, 10 * MIB), 160 * MIB);
        assert_eq!(determine_part_size(1_000_000, 51200), 102400);
        assert_eq!(determine_part_size(5 * 1024 * MIB, 2 * MIB), 2 * MIB);
    }
}
