//! Requests that contend for one row, gathered per row: those that arrive while a
//! transaction holds the row go together in the next one. A transaction keeps its row
//! locks until its commit is flushed to disk, so one transaction per request would make
//! every request on a hot row wait for its own flush; a batch shares one lock and one
//! flush. Each request still gets its own answer.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::storage::error::{Result, StorageError};

/// Requests in one batch at most: a batch is one transaction, whose arrays grow with it.
const MAX_BATCH: usize = 64;

type Waiting<R, T> = Vec<(R, oneshot::Sender<Result<T>>)>;

/// The requests waiting for each row. A row has an entry exactly while a worker task
/// serves it; the task removes the entry when it finds nothing left to do.
pub(super) struct Batches<K, R, T> {
    waiting: Mutex<HashMap<K, Waiting<R, T>>>,
}

impl<K, R, T> Default for Batches<K, R, T> {
    fn default() -> Self {
        Self {
            waiting: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, R, T> Batches<K, R, T>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    R: Send + 'static,
    T: Send + 'static,
{
    /// `request`'s answer, from the batch it joins: `serve` makes a batch, in the order
    /// given, and answers each of its requests in that order.
    pub async fn join<F, Fut>(self: &Arc<Self>, key: K, request: R, serve: F) -> Result<T>
    where
        F: Fn(K, Vec<R>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Result<T>>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let first = {
            let mut waiting = self.lock();
            let first = !waiting.contains_key(&key);
            waiting
                .entry(key.clone())
                .or_default()
                .push((request, answer));
            first
        };
        if first {
            // A task of its own, not the first caller's: a caller that gives up (its
            // request timed out) must not strand the others.
            tokio::spawn(Arc::clone(self).serve(key, serve));
        }
        answered.await.unwrap_or_else(|_| {
            Err(StorageError::Internal(
                "the batch serving this request stopped".into(),
            ))
        })
    }

    async fn serve<F, Fut>(self: Arc<Self>, key: K, serve: F)
    where
        F: Fn(K, Vec<R>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Result<T>>> + Send + 'static,
    {
        let mut running = Running {
            batches: &self,
            key: &key,
            done: false,
        };
        while let Some(batch) = running.next() {
            let (requests, answers): (Vec<R>, Vec<_>) = batch.into_iter().unzip();
            let results = serve(key.clone(), requests).await;
            for (answer, result) in answers.into_iter().zip(results) {
                // A caller that has gone does not want its answer.
                let _ = answer.send(result);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Waiting<R, T>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A worker's hold on its row's entry. Should the worker panic, dropping this removes
/// the entry (and with it the waiting requests, whose callers then get an error), so
/// that the next request starts a new worker.
struct Running<'a, K: Hash + Eq, R, T> {
    batches: &'a Batches<K, R, T>,
    key: &'a K,
    done: bool,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static, R: Send + 'static, T: Send + 'static>
    Running<'_, K, R, T>
{
    /// The next batch: the oldest waiting requests whose callers still wait for an
    /// answer (one that gave up before its batch began is not made at all). `None`, and
    /// the entry removed, when there is none.
    fn next(&mut self) -> Option<Waiting<R, T>> {
        let mut waiting = self.batches.lock();
        let queue = waiting.get_mut(self.key)?;
        queue.retain(|(_, answer)| !answer.is_closed());
        if queue.is_empty() {
            waiting.remove(self.key);
            self.done = true;
            return None;
        }
        let rest = queue.split_off(queue.len().min(MAX_BATCH));
        Some(std::mem::replace(queue, rest))
    }
}

impl<K: Hash + Eq, R, T> Drop for Running<'_, K, R, T> {
    fn drop(&mut self) {
        if !self.done {
            let mut waiting = self
                .batches
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            waiting.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_wait_together_go_together_and_each_gets_its_answer() {
        let batches: Arc<Batches<&str, u32, (usize, u32)>> = Arc::default();
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let batches = batches.clone();
                let sizes = sizes.clone();
                tokio::spawn(async move {
                    batches
                        .join("row", i, move |_, requests: Vec<u32>| {
                            let sizes = sizes.clone();
                            async move {
                                sizes.lock().unwrap().push(requests.len());
                                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                                let n = requests.len();
                                requests.into_iter().map(|r| Ok((n, r * 2))).collect()
                            }
                        })
                        .await
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let (_, doubled) = task.await.unwrap().unwrap();
            assert_eq!(doubled, 2 * i as u32);
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 200);
        assert!(sizes.iter().all(|n| *n <= MAX_BATCH));
        assert!(sizes.len() < 200, "some requests went together: {sizes:?}");
        // The worker leaves once it finds nothing more to do, just after its last answer.
        for _ in 0..100 {
            if batches.lock().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(batches.lock().is_empty(), "the worker is gone");
    }

    #[tokio::test]
    async fn a_worker_that_panics_fails_its_callers_and_the_next_request_starts_anew() {
        let batches: Arc<Batches<&str, u32, u32>> = Arc::default();
        let failed = batches
            .join("row", 1, |_, requests: Vec<u32>| async move {
                assert!(requests.is_empty(), "boom");
                Vec::new()
            })
            .await;
        assert!(matches!(failed, Err(StorageError::Internal(_))));
        let served = batches
            .join("row", 2, |_, requests: Vec<u32>| async move {
                requests.into_iter().map(Ok).collect()
            })
            .await;
        assert_eq!(served.unwrap(), 2);
    }
}
