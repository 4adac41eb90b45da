//! Where the bytes of a job come from: a local file under the allowed roots, or an
//! `http(s)://` URL. Either way the uploader asks for byte ranges on demand, so memory does not
//! grow with the file, and a failed part can be read again.
//!
//! Remote sources are streamed straight to OSS when the server gives a length and honours
//! `Range`; otherwise they are spooled to a temporary file under a size cap. Hosts that resolve
//! to loopback, private or link-local addresses are refused unless explicitly allowed, and every
//! redirect is checked again.

mod remote;

pub use remote::{is_internal, open as open_remote, RangedUrl, RemotePolicy, SourceError};

use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// A stream of body bytes for one request.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Chunk size for reading files: large enough for throughput, small enough that
/// parallelism × chunk stays tiny.
const READ_CHUNK: usize = 256 * 1024;

/// A source opened for reading.
#[derive(Debug)]
pub enum OpenedSource {
    Local {
        path: PathBuf,
        len: u64,
        /// Modification time, to notice a source that changed between attempts.
        mtime_ns: Option<i64>,
    },
    /// A server that gave a length and honours range requests.
    Ranged(remote::RangedUrl),
    /// A remote file copied to a temporary file first; removed on drop.
    Spooled { file: tempfile::TempPath, len: u64 },
}

impl OpenedSource {
    pub async fn local(path: &Path) -> std::io::Result<Self> {
        // A stat of a path the caller just canonicalized (itself a series of system calls on
        // this thread) is as quick: no hand-off to the blocking pool for it.
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64);
        Ok(OpenedSource::Local {
            path: path.to_owned(),
            len: meta.len(),
            mtime_ns,
        })
    }

    pub fn len(&self) -> u64 {
        match self {
            OpenedSource::Local { len, .. } | OpenedSource::Spooled { len, .. } => *len,
            OpenedSource::Ranged(r) => r.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Identifies this version of the source for checkpoints (None when unknown).
    pub fn version(&self) -> Option<i64> {
        match self {
            OpenedSource::Local { mtime_ns, .. } => *mtime_ns,
            _ => None,
        }
    }

    /// The bytes `offset .. offset + len`, read on demand.
    pub async fn range(&self, offset: u64, len: u64) -> std::io::Result<ByteStream> {
        match self {
            OpenedSource::Local { path, .. } => file_range(path, offset, len).await,
            OpenedSource::Spooled { file, .. } => file_range(file, offset, len).await,
            OpenedSource::Ranged(r) => r.range(offset, len).await,
        }
    }
}

async fn file_range(path: &Path, offset: u64, len: u64) -> std::io::Result<ByteStream> {
    if len <= READ_CHUNK as u64 {
        // A small range is read whole: on this thread when it is small enough (a page-cache
        // read of tens of microseconds costs less than a hand-off to the blocking pool, two
        // thread switches, which were a fifth of the worker's switches for many small jobs;
        // a slow network file system blocks this runtime thread as long as a read takes),
        // else in one trip to the blocking pool rather than one per open, seek and read.
        let bytes = if len <= INLINE_READ_MAX {
            read_range(path, offset, len)?
        } else {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || read_range(&path, offset, len))
                .await
                .map_err(std::io::Error::other)??
        };
        let stream = futures_util::stream::iter([Ok(Bytes::from(bytes))]);
        return Ok(exact_length(Box::pin(stream), len));
    }
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let reader = tokio::io::BufReader::with_capacity(READ_CHUNK, file.take(len));
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK);
    Ok(exact_length(Box::pin(stream), len))
}

/// Ranges up to this size are read on the calling thread (see `file_range`).
const INLINE_READ_MAX: u64 = 128 * 1024;

fn read_range(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path)?;
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Ends the stream with an error if it yields fewer bytes than promised (a file truncated
/// under us, a server that hung up), so a short body is never sent with a long Content-Length.
pub fn exact_length(inner: ByteStream, expected: u64) -> ByteStream {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = seen.clone();
    let counted = inner.map(move |chunk| {
        if let Ok(bytes) = &chunk {
            counter.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        chunk
    });
    let check = futures_util::stream::once(async move {
        let got = seen.load(std::sync::atomic::Ordering::Relaxed);
        if got == expected {
            None
        } else {
            Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("source ended after {got} of {expected} bytes"),
            )))
        }
    })
    .filter_map(|x| async move { x });
    Box::pin(counted.chain(check))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(mut s: ByteStream) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_range_reads_exactly_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let src = OpenedSource::local(&path).await.unwrap();
        assert_eq!(src.len(), data.len() as u64);
        let got = collect(src.range(300_000, 400_001).await.unwrap())
            .await
            .unwrap();
        assert_eq!(got, &data[300_000..700_001]);
    }

    #[tokio::test]
    async fn a_short_source_is_an_error_not_a_short_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 100]).unwrap();
        let err = collect(file_range(&path, 50, 100).await.unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
