//! What every OSS write shares (`oss` for PutObject, `multipart` for parts and Complete):
//! receiving a body with its length and digest checks, `x-oss-forbid-overwrite`, user
//! metadata, and recording the stored object. Below both, so neither imports the other.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine as _;
use futures_util::StreamExt as _;
use md5::{Digest as _, Md5};
use tokio::io::AsyncWriteExt as _;

use super::callback;
use super::errors::OssError;
use super::state::{ObjectMeta, Shared};
use crate::crc64::Crc64;

/// Largest object a single PutObject may write.
const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

pub(super) fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A request body stored in a temporary file, with its size and digests.
pub(super) struct Received {
    pub tmp: std::path::PathBuf,
    pub size: u64,
    pub md5: [u8; 16],
    pub crc: u64,
}

impl Received {
    /// Moves the bytes into place: a failed upload never replaces what was there, a reader
    /// never sees half of a write.
    pub(super) async fn persist(&self, path: &std::path::Path) -> Result<(), OssError> {
        let stored = async {
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            tokio::fs::rename(&self.tmp, path).await
        }
        .await;
        stored.map_err(|e| {
            tracing::error!(error = %e, "could not store an upload");
            OssError::internal()
        })
    }

    pub(super) async fn discard(&self) {
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

pub(super) fn invalid_digest() -> OssError {
    OssError::new(
        400,
        "InvalidDigest",
        "The Content-MD5 you specified was invalid.",
        None,
    )
}

/// Checks `Content-Length` and `Content-MD5`, and streams the body to a temporary file while
/// hashing it (MD5 and CRC-64 in one pass): memory stays at one chunk whatever the size.
pub(super) async fn receive_body(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<Received, OssError> {
    let content_length = match header_str(headers, header::CONTENT_LENGTH) {
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            OssError::new(400, "InvalidArgument", "Content-Length is invalid.", None)
                .with("ArgumentName", "Content-Length")
        })?),
        None => None,
    };
    let chunked = header_str(headers, header::TRANSFER_ENCODING)
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if content_length.is_none() && !chunked {
        return Err(OssError::new(
            411,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
            None,
        ));
    }
    if content_length.is_some_and(|n| n > MAX_PUT_SIZE) {
        return Err(OssError::new(
            400,
            "InvalidArgument",
            "Your proposed upload exceeds the maximum allowed size.",
            None,
        )
        .with("ArgumentName", "Content-Length"));
    }
    let expected_md5: Option<[u8; 16]> = match header_str(headers, "content-md5") {
        Some(v) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
                .ok_or_else(invalid_digest)?,
        ),
        None => None,
    };
    let tmp = shared.tmp_path();
    let (size, md5, crc) = match write_body(&tmp, body).await {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    shared.lock().stats.bytes_received += size;
    let received = Received {
        tmp,
        size,
        md5,
        crc,
    };
    if content_length.is_some_and(|n| n != size) {
        received.discard().await;
        return Err(OssError::new(
            400,
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            None,
        ));
    }
    if expected_md5.is_some_and(|m| m != md5) {
        received.discard().await;
        return Err(invalid_digest());
    }
    Ok(received)
}

pub(super) fn forbid_overwrite(
    shared: &Shared,
    headers: &HeaderMap,
    bucket: &str,
    key: &str,
) -> Result<(), OssError> {
    let forbid = header_str(headers, "x-oss-forbid-overwrite")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if forbid
        && shared
            .lock()
            .objects
            .contains_key(&(bucket.to_owned(), key.to_owned()))
    {
        return Err(OssError::new(
            409,
            "FileAlreadyExists",
            "The object you specified already exists and can not be overwritten.",
            None,
        ));
    }
    Ok(())
}

pub(super) fn user_meta(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-oss-meta-"))
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// Records a stored object and lets its media (if any) move on.
pub(super) fn object_stored(shared: &Arc<Shared>, bucket: &str, key: &str, meta: ObjectMeta) {
    let size = meta.size;
    {
        let mut inner = shared.lock();
        inner
            .objects
            .insert((bucket.to_owned(), key.to_owned()), meta);
        inner.stats.objects = inner.objects.len() as u64;
    }
    callback::object_stored(shared, bucket, key, size);
}

pub(super) async fn write_body(
    path: &std::path::Path,
    body: Body,
) -> Result<(u64, [u8; 16], u64), OssError> {
    match write_stream(path, body.into_data_stream(), u64::MAX).await {
        Ok(written) => Ok(written),
        Err(WriteError::Oss(e)) => Err(e),
        Err(WriteError::Over | WriteError::Stream) => Err(OssError::new(
            400,
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            None,
        )),
    }
}

/// Why [`write_stream`] stopped.
pub(super) enum WriteError {
    /// More than the limit arrived (the rest is not read).
    Over,
    /// The stream itself failed (the client went away, or a malformed body).
    Stream,
    Oss(OssError),
}

/// Streams `stream` into `path` while hashing it (MD5 and CRC-64 in one pass), stopping as
/// soon as more than `limit` bytes arrive: memory stays at one chunk whatever the size.
pub(super) async fn write_stream<E>(
    path: &std::path::Path,
    mut stream: impl futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    limit: u64,
) -> Result<(u64, [u8; 16], u64), WriteError> {
    let io_error = |e: std::io::Error| {
        tracing::error!(error = %e, "could not write an upload");
        WriteError::Oss(OssError::internal())
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io_error)?;
    }
    let file = tokio::fs::File::create(path).await.map_err(io_error)?;
    let mut file = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut md5 = Md5::new();
    let mut crc = Crc64::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| WriteError::Stream)?;
        if crc.len() + chunk.len() as u64 > limit {
            return Err(WriteError::Over);
        }
        md5.update(&chunk);
        crc.update(&chunk);
        file.write_all(&chunk).await.map_err(io_error)?;
    }
    file.flush().await.map_err(io_error)?;
    Ok((crc.len(), md5.finalize().into(), crc.value()))
}

pub(super) fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}
