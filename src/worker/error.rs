//! Why a job attempt failed, and whether trying again can help.

use std::path::{Path, PathBuf};

use crate::jobs::StoreError;
use crate::oss::OssError;
use crate::vod::VodError;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("VOD: {0}")]
    Vod(#[from] VodError),
    #[error("OSS: {0}")]
    Oss(#[from] OssError),
    #[error("OSS, part {part_number}: {source}")]
    Part {
        part_number: u32,
        #[source]
        source: OssError,
    },
    #[error("source {path}: {source}")]
    Source {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("source: {0}")]
    Remote(#[from] crate::source::SourceError),
    #[error("reading the source failed: {0}")]
    SourceRead(String),
    #[error("source {0} is no longer under VOD_INGEST_SOURCE_ROOTS; add its directory or move the file, then retry the job")]
    SourceNotAllowed(PathBuf),
    #[error("{0}")]
    Corrupt(String),
    #[error("each new {kind} asset's upload credential expired before its upload finished ({attempts} assets in one attempt): VOD cannot refresh image and attached-media credentials, so raise VOD_INGEST_PART_PARALLELISM or check the network to OSS, then retry the job")]
    CredentialOutrun { kind: &'static str, attempts: u32 },
    #[error("{0}")]
    Playlist(#[from] super::m3u8::PlaylistError),
    #[error("database: {0}")]
    Store(std::sync::Arc<sqlx::Error>),
    #[error("lease lost")]
    LeaseLost,
    #[error("shutting down")]
    ShuttingDown,
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeaseLost(_) => JobError::LeaseLost,
            StoreError::Db(e) => JobError::store(e),
            StoreError::Shared(e) => JobError::Store(e),
        }
    }
}

impl JobError {
    pub fn store(e: sqlx::Error) -> Self {
        JobError::Store(std::sync::Arc::new(e))
    }

    pub fn source(path: &Path, source: std::io::Error) -> Self {
        JobError::Source {
            path: path.to_owned(),
            source,
        }
    }

    /// The code stored in `last_error_code`.
    pub fn code(&self) -> String {
        match self {
            JobError::Vod(e) => e.code().to_owned(),
            JobError::Oss(e) | JobError::Part { source: e, .. } => e.code().to_owned(),
            JobError::Source { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => "SourceNotFound".into(),
                std::io::ErrorKind::PermissionDenied => "SourcePermissionDenied".into(),
                _ => "SourceUnreadable".into(),
            },
            JobError::SourceNotAllowed(_) => "SourceNotAllowed".into(),
            JobError::Remote(e) => e.code().into(),
            JobError::SourceRead(_) => "SourceReadFailed".into(),
            JobError::Corrupt(_) => "CorruptJob".into(),
            JobError::CredentialOutrun { .. } => "CredentialExpiredRepeatedly".into(),
            JobError::Playlist(e) => e.code().into(),
            JobError::Store(_) => "DatabaseError".into(),
            JobError::LeaseLost => "LeaseLost".into(),
            JobError::ShuttingDown => "ShuttingDown".into(),
        }
    }

    /// Whether another attempt, later, can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::Vod(e) => e.is_retryable(),
            JobError::Oss(e) | JobError::Part { source: e, .. } => {
                e.is_retryable() || e.is_credential_expired()
            }
            JobError::Source { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            JobError::Remote(e) => e.is_retryable(),
            JobError::SourceRead(_) => true,
            JobError::Playlist(e) => e.is_retryable(),
            JobError::SourceNotAllowed(_)
            | JobError::Corrupt(_)
            | JobError::CredentialOutrun { .. } => false,
            JobError::Store(_) | JobError::LeaseLost | JobError::ShuttingDown => true,
        }
    }
}
