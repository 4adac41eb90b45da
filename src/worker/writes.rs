//! Group commit for the two writes every job makes: its media id before the upload
//! (`set_media`) and `uploaded` after it. The jobs of one process hand them to a few tasks,
//! which take whatever has queued up meanwhile and write it with one statement
//! ([`JobStore::set_media_many`], [`JobStore::mark_uploaded_many`]). Each job goes on only
//! once its write committed, so the invariants do not change; what changes is that many small
//! jobs share a round trip and a commit instead of taking two each. Batches grow with the
//! load by themselves (no timer), so a lone job waits for nothing.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::jobs::{JobStore, MediaAssignment, StoreError, Transition};

/// Jobs one statement takes at most.
const MAX_BATCH: usize = 64;

/// Statements in flight at once per kind of write: one fills while another commits.
const TASKS: usize = 2;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;
type Queue<Req, Out> = mpsc::Sender<(Req, Reply<Out>)>;

/// The jobs' side: cheap to clone. The tasks end when the last clone is dropped.
#[derive(Clone)]
pub(super) struct GroupWrites {
    media: Queue<MediaAssignment, ()>,
    uploaded: Queue<(String, i64), Vec<Transition>>,
}

impl GroupWrites {
    pub fn start(store: JobStore) -> Self {
        let media = {
            let store = store.clone();
            spawn_group(move |batch: Vec<MediaAssignment>| {
                let store = store.clone();
                async move { store.set_media_many(&batch).await }
            })
        };
        let uploaded = spawn_group(move |batch: Vec<(String, i64)>| {
            let store = store.clone();
            async move { store.mark_uploaded_many(&batch).await }
        });
        Self { media, uploaded }
    }

    /// [`JobStore::set_media`], with whatever other jobs are storing theirs.
    pub async fn set_media(&self, assignment: MediaAssignment) -> Result<(), StoreError> {
        submit(&self.media, assignment).await
    }

    /// [`JobStore::mark_uploaded`], with whatever other jobs finished meanwhile.
    pub async fn mark_uploaded(
        &self,
        job_id: &str,
        token: i64,
    ) -> Result<Vec<Transition>, StoreError> {
        submit(&self.uploaded, (job_id.to_owned(), token)).await
    }
}

async fn submit<Req, Out>(queue: &Queue<Req, Out>, request: Req) -> Result<Out, StoreError> {
    let (reply, answer) = oneshot::channel();
    let stopped = || StoreError::Db(sqlx::Error::PoolClosed);
    queue.send((request, reply)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// Starts [`TASKS`] tasks that write batches with `write`, whose answer has one entry per
/// request, in order. A statement that fails fails every job of its batch with its error.
fn spawn_group<Req, Out, F, Fut>(write: F) -> Queue<Req, Out>
where
    Req: Send + 'static,
    Out: Send + 'static,
    F: Fn(Vec<Req>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Vec<Result<Out, StoreError>>, sqlx::Error>> + Send,
{
    let (queue, receiver) = mpsc::channel::<(Req, Reply<Out>)>(4 * MAX_BATCH);
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..TASKS {
        let (receiver, write) = (receiver.clone(), write.clone());
        tokio::spawn(async move {
            loop {
                let mut batch = Vec::new();
                if receiver.lock().await.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    return;
                }
                let (requests, replies): (Vec<Req>, Vec<Reply<Out>>) = batch.into_iter().unzip();
                match write(requests).await {
                    Ok(answers) => {
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(answer);
                        }
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        for reply in replies {
                            let _ = reply.send(Err(StoreError::Shared(e.clone())));
                        }
                    }
                }
            }
        });
    }
    queue
}
