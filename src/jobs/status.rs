//! A client upload as its app sees it: what `GET /v1/uploads/{job_id}` answers and what the
//! app's webhooks carry in `data`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Job, JobKind, JobState};

/// What `GET /v1/uploads/{job_id}` answers: where the upload is, and what VOD made of it.
#[derive(Debug, Serialize)]
pub struct UploadStatus {
    pub job_id: String,
    pub kind: JobKind,
    /// `awaiting_upload`, `uploaded`, `completed`, `failed` or `cancelled`.
    pub state: JobState,
    pub media_id: Option<String>,
    /// VOD's status of the media after the upload (`UploadSucc`, `Transcoding`, `Normal`,
    /// `TranscodeFail`, ...), once VOD has reported one.
    pub media_status: Option<String>,
    /// Whether VOD says the media can be played (its status is `Normal`).
    pub playable: bool,
    /// Why it failed, when it did.
    pub error: Option<UploadStatusError>,
    /// The size declared when the credential was issued.
    pub file_size: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub uploaded_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// When the last credential handed out stops working.
    pub credential_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct UploadStatusError {
    pub code: String,
    pub message: String,
}

impl UploadStatus {
    /// The status of a client upload as its job stands now.
    pub fn of(job: &Job) -> Self {
        let state = job.state();
        let error = (state == JobState::Failed).then(|| UploadStatusError {
            code: job
                .last_error_code
                .clone()
                .unwrap_or_else(|| "Failed".into()),
            message: job.last_error_message.clone().unwrap_or_default(),
        });
        Self {
            job_id: job.job_id.clone(),
            kind: job.kind(),
            state,
            media_id: job.media_id.clone(),
            media_status: job.media_status.clone(),
            playable: job.media_status.as_deref() == Some("Normal"),
            error,
            file_size: job.bytes_total,
            created_at: job.created_at,
            updated_at: job.updated_at,
            uploaded_at: job.uploaded_at,
            completed_at: job.completed_at,
            credential_expires_at: job.credential_expires_at,
        }
    }
}
