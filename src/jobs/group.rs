//! Group commit: callers hand a write to a few tasks, which take whatever has queued up
//! meanwhile and write it together, so many small writes share one round trip and one commit
//! (a WAL flush). Each caller gets its own answer only after its batch committed, so
//! "answered" still means "stored". Batches grow with the load by themselves, without a timer,
//! so a lone write waits for nothing. The webhook's callbacks ([`super::CallbackIntake`]) and the
//! worker's media and `uploaded` writes use this one engine.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

type Reply<Out> = oneshot::Sender<Out>;

/// The callers' side: cheap to clone. The tasks end when the last clone is dropped.
pub struct GroupCommit<Req, Out> {
    queue: mpsc::Sender<(Req, Reply<Out>)>,
}

impl<Req, Out> Clone for GroupCommit<Req, Out> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

/// The engine stopped (its tasks ended, e.g. at shutdown): nothing was written.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the group-commit tasks have stopped (the service is shutting down); try again")]
pub struct Stopped;

impl<Req: Send + 'static, Out: Send + 'static> GroupCommit<Req, Out> {
    /// Starts `tasks` tasks (two: one fills while another commits) that write batches of at
    /// most `max_batch` with `write`, whose answer has one entry per request, in order.
    /// `batch_metric` names a histogram of batch sizes.
    pub fn start<F, Fut>(
        tasks: usize,
        max_batch: usize,
        batch_metric: &'static str,
        write: F,
    ) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Vec<Out>> + Send,
    {
        let (queue, receiver) = mpsc::channel::<(Req, Reply<Out>)>(4 * max_batch);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..tasks {
            let (receiver, write) = (receiver.clone(), write.clone());
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::new();
                    if receiver.lock().await.recv_many(&mut batch, max_batch).await == 0 {
                        return;
                    }
                    let (requests, replies): (Vec<Req>, Vec<Reply<Out>>) =
                        batch.into_iter().unzip();
                    metrics::histogram!(batch_metric).record(requests.len() as f64);
                    let answers = write(requests).await;
                    debug_assert_eq!(answers.len(), replies.len(), "one answer per request");
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        // A caller that gave up (its request was dropped) is no loss: its
                        // write is committed either way.
                        let _ = reply.send(answer);
                    }
                }
            });
        }
        Self { queue }
    }

    /// Writes `request` with whatever else is waiting; returns its answer once committed.
    pub async fn submit(&self, request: Req) -> Result<Out, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((request, reply))
            .await
            .map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_caller_gets_its_own_answer_and_waiting_writes_share_a_batch() {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = batches.clone();
        let group = GroupCommit::start(1, 8, "test_batch_size", move |batch: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(batch.len());
                batch.into_iter().map(|n| n * 10).collect::<Vec<_>>()
            }
        });
        let answers = futures_util::future::join_all((0..20u32).map(|n| group.submit(n))).await;
        let answers: Vec<u32> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(answers, (0..20u32).map(|n| n * 10).collect::<Vec<_>>());
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 20);
        assert!(batches.iter().all(|&n| n <= 8), "{batches:?}");
        assert!(
            batches.len() < 20,
            "writes that waited were grouped: {batches:?}"
        );
    }
}
