//! Group commit for the two writes every job makes: its media id before the upload
//! (`set_media`) and `uploaded` after it, on the store's one group-commit engine
//! ([`GroupCommit`]): many small jobs share a statement and a commit instead of taking two
//! each ([`JobStore::set_media_many`], [`JobStore::mark_uploaded_many`]). Each job goes on only
//! once its write committed, so the invariants do not change.

use std::sync::Arc;

use crate::jobs::{GroupCommit, JobStore, MediaAssignment, StoreError, Transition};

/// Jobs one statement takes at most.
const MAX_BATCH: usize = 64;

/// Statements in flight at once per kind of write: one fills while another commits.
const TASKS: usize = 2;

type Answer<T> = Result<T, StoreError>;

/// The jobs' side: cheap to clone. The tasks end when the last clone is dropped.
#[derive(Clone)]
pub(super) struct GroupWrites {
    media: GroupCommit<MediaAssignment, Answer<()>>,
    uploaded: GroupCommit<(String, i64), Answer<Vec<Transition>>>,
}

impl GroupWrites {
    pub fn start(store: JobStore) -> Self {
        let media = {
            let store = store.clone();
            GroupCommit::start(
                TASKS,
                MAX_BATCH,
                "vod_ingest_worker_write_batch_size",
                move |batch: Vec<MediaAssignment>| {
                    let store = store.clone();
                    async move { fan_out(batch.len(), store.set_media_many(&batch).await) }
                },
            )
        };
        let uploaded = GroupCommit::start(
            TASKS,
            MAX_BATCH,
            "vod_ingest_worker_write_batch_size",
            move |batch: Vec<(String, i64)>| {
                let store = store.clone();
                async move { fan_out(batch.len(), store.mark_uploaded_many(&batch).await) }
            },
        );
        Self { media, uploaded }
    }

    /// [`JobStore::set_media`], with whatever other jobs are storing theirs.
    pub async fn set_media(&self, assignment: MediaAssignment) -> Result<(), StoreError> {
        self.media.submit(assignment).await.map_err(stopped)?
    }

    /// [`JobStore::mark_uploaded`], with whatever other jobs finished meanwhile.
    pub async fn mark_uploaded(
        &self,
        job_id: &str,
        token: i64,
    ) -> Result<Vec<Transition>, StoreError> {
        self.uploaded
            .submit((job_id.to_owned(), token))
            .await
            .map_err(stopped)?
    }
}

fn stopped(_: crate::jobs::Stopped) -> StoreError {
    StoreError::Db(sqlx::Error::PoolClosed)
}

/// A statement that failed fails every job of its batch with its error.
fn fan_out<T>(n: usize, result: Result<Vec<Answer<T>>, sqlx::Error>) -> Vec<Answer<T>> {
    match result {
        Ok(answers) => answers,
        Err(e) => {
            let e = Arc::new(e);
            (0..n).map(|_| Err(StoreError::Shared(e.clone()))).collect()
        }
    }
}
