//! Job kinds and states.
//!
//! ```text
//!            +-------------------- cancel ---------------------+
//!            |                                                  v
//! queued --claim--> uploading --upload done--> uploaded --callback/reconciler--> completed
//!   ^                 |   ^                        |
//!   |                 |   +--claim-- retrying <----+ (never: uploaded only moves forward)
//!   |                 +--retryable error--> retrying
//!   |                 +--fatal error / attempts exhausted--> failed
//! retry (operator) <-- failed | cancelled
//!
//! client apps (the authorization API):
//! awaiting_upload --callback--> completed          (size within the key's limit)
//!        |          --callback--> failed             (UploadTooLarge)
//!        |          --callback without a size--> uploaded --reconciler--> completed | failed
//!        +--reconciler, after the client-upload timeout--> completed (callback lost) | failed (UploadAbandoned)
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What VOD asset a job creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Audio or video: CreateUploadVideo, refreshable with RefreshUploadVideo.
    Video,
    /// CreateUploadImage; credentials cannot be refreshed.
    Image,
    /// CreateUploadAttachedMedia (watermarks, subtitles, materials); no refresh either.
    AttachedMedia,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Video, JobKind::Image, JobKind::AttachedMedia];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Video => "video",
            JobKind::Image => "image",
            JobKind::AttachedMedia => "attached_media",
        }
    }

    /// The callback event that reports this kind's upload as finished.
    pub fn completion_event(self) -> &'static str {
        match self {
            JobKind::Video => "FileUploadComplete",
            JobKind::Image => "ImageUploadComplete",
            JobKind::AttachedMedia => "AttachedMediaUploadComplete",
        }
    }

    /// The kind whose upload `event_type` reports finished, for the three upload events.
    pub fn completed_by(event_type: &str) -> Option<JobKind> {
        [JobKind::Video, JobKind::Image, JobKind::AttachedMedia]
            .into_iter()
            .find(|k| k.completion_event() == event_type)
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "video" => Ok(JobKind::Video),
            "image" => Ok(JobKind::Image),
            "attached_media" => Ok(JobKind::AttachedMedia),
            other => Err(UnknownName {
                what: "kind",
                value: other.to_owned(),
                expected: "\"video\", \"image\" or \"attached_media\"",
            }),
        }
    }
}

/// Who started an upload (`ingest_jobs.origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A producer's message on the jobs queue.
    Queue,
    /// `vod-ingest upload`.
    Cli,
    /// A client app that got an upload credential from `POST /v1/uploads`.
    Client,
    /// A client app that holds an STS token and called CreateUpload* itself; known to us only
    /// from VOD's callback.
    Sts,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Queue => "queue",
            Origin::Cli => "cli",
            Origin::Client => "client",
            Origin::Sts => "sts",
        }
    }

    /// Whether the service itself moves the bytes (and so can retry the job).
    pub fn worker_uploads(self) -> bool {
        matches!(self, Origin::Queue | Origin::Cli)
    }
}

impl FromStr for Origin {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Origin::Queue, Origin::Cli, Origin::Client, Origin::Sts]
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "origin",
                value: s.to_owned(),
                expected: "one of queue, cli, client, sts",
            })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a job is in its life. The comment on each state says who moves it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Recorded from the queue; waits for a worker to claim it.
    Queued,
    /// A client app holds an upload credential and uploads the bytes itself; VOD's callback
    /// (or the reconciler) moves it on. No worker ever claims it.
    AwaitingUpload,
    /// Leased by a worker that is getting credentials or uploading. If the worker dies, any
    /// worker rescues it once the lease expires.
    Uploading,
    /// Failed with an error a retry can fix; a worker claims it again after `run_at`.
    Retrying,
    /// Every byte is in OSS; the VOD callback (or the reconciler) completes it.
    Uploaded,
    /// VOD confirmed the upload. Final.
    Completed,
    /// Gave up, with an error code and message. Final unless an operator retries it.
    Failed,
    /// Stopped by an operator. Final unless an operator retries it.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::AwaitingUpload,
        JobState::Uploading,
        JobState::Retrying,
        JobState::Uploaded,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::AwaitingUpload => "awaiting_upload",
            JobState::Uploading => "uploading",
            JobState::Retrying => "retrying",
            JobState::Uploaded => "uploaded",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// No worker will touch the job again on its own.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "state",
                value: s.to_owned(),
                expected: "one of queued, awaiting_upload, uploading, retrying, uploaded, \
                           completed, failed, cancelled",
            })
    }
}

/// A kind, state or origin that is not one: what was given and what is valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// The three enums are TEXT columns (with CHECK constraints) in PostgreSQL: read and written
/// by name, so a row decodes straight into the type and an unknown name is a decode error,
/// not a panic.
macro_rules! text_column {
    ($t:ty) => {
        impl sqlx::Type<sqlx::Postgres> for $t {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $t {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let name = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(name.parse()?)
            }
        }
        impl sqlx::Encode<'_, sqlx::Postgres> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }
    };
}

text_column!(JobKind);
text_column!(JobState);
text_column!(Origin);
