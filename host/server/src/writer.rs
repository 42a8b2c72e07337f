//! The writer of a redb store (on etcd, each request applies its own step: see
//! [`Writer::Direct`]). It applies prepared steps ([`ocni_store::WriteSet`]) in arrival order
//! as steps of a shared redb transaction (a batch), and commits the batch durably when no step is
//! waiting (or it holds [`MAX_STEPS`] steps, or has been open [`MAX_OPEN`]); only then are its
//! steps answered. Concurrent writers thus share one fsync, and a write is acknowledged only
//! once it is on disk.
//!
//! The writer runs no OCCI rule and no handler: requests prepare their steps in parallel
//! (`services.rs`, `Services::write`), and the writer only checks that what each step read is unchanged
//! ([`ocni_store::Writer::apply`]) and writes it. A step that conflicts writes nothing and is
//! answered after the batch commits, so that the request prepares it again on a snapshot that
//! holds what it conflicted with.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ocni_store::{Applied, Store, WriteSet};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::reply::R;

/// Most steps in one batch: bounds how long the first request of a busy batch waits.
const MAX_STEPS: usize = 512;
/// Longest a batch stays open while steps keep arriving.
const MAX_OPEN: Duration = Duration::from_millis(5);

/// How a submitted step ended: applied and durable, refused by the store, or not written
/// because the batch failed (the message says why).
pub(crate) type Outcome = Result<Applied, String>;

struct Job {
    set: WriteSet,
    reply: oneshot::Sender<Outcome>,
}

/// Where [`Writer::submit`] hands a step.
pub(crate) enum Writer {
    /// The writer thread of a redb store.
    Thread(WriterThread),
    /// A store whose steps are applied by whoever prepared them, in parallel (etcd: one
    /// transaction each, ordered and checked by the cluster).
    Direct(Arc<Store>),
}

/// The handle on the writer thread.
pub(crate) struct WriterThread {
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Dropping the handle stops the writer once it has answered every job sent before, and waits
/// for it: the writer's handle on the store is gone when the drop returns.
impl Drop for WriterThread {
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the writer thread panicked");
        }
    }
}

impl Writer {
    /// Starts the writer of `store`: a thread for a batched store (it ends once the handle is
    /// dropped and every job sent before has been answered), none for another.
    pub(crate) fn start(store: Arc<Store>) -> std::io::Result<Writer> {
        if !store.is_batched() {
            return Ok(Writer::Direct(store));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("ocni-writer".into()).spawn(move || run(&store, rx))?;
        Ok(Writer::Thread(WriterThread { jobs: Mutex::new(Some(tx)), thread: Some(thread) }))
    }

    /// Applies `set` and waits (blocking: call it off the async executor) until it is durable
    /// (its batch committed, or its etcd transaction).
    pub(crate) fn submit(&self, set: WriteSet) -> R<Applied> {
        match self {
            Writer::Thread(t) => outcome(t.send(set).and_then(|answer| answer.blocking_recv().unwrap_or_else(dropped))),
            Writer::Direct(store) => Ok(store.commit_set(set)?),
        }
    }

    /// Whether steps go to a writer thread, which [`Writer::submit_async`] can wait for
    /// without blocking.
    pub(crate) fn is_thread(&self) -> bool {
        matches!(self, Writer::Thread(_))
    }

    /// [`Writer::submit`] for an async task: the writer thread's answer is awaited. A store
    /// without a writer thread (etcd, whose commit blocks) refuses: see [`Writer::is_thread`].
    pub(crate) async fn submit_async(&self, set: WriteSet) -> R<Applied> {
        match self {
            Writer::Thread(t) => outcome(match t.send(set) {
                Ok(answer) => answer.await.unwrap_or_else(dropped),
                Err(e) => Err(e),
            }),
            Writer::Direct(_) => Err(ApiError::internal("committing a write", "this store has no writer thread")),
        }
    }
}

fn outcome(o: Outcome) -> R<Applied> {
    o.map_err(|e| ApiError::internal("committing a write", e))
}

fn dropped<T>(_: T) -> Outcome {
    Err("the writer dropped the write".into())
}

impl WriterThread {
    /// Hands `set` to the writer thread; the answer comes once its batch committed.
    fn send(&self, set: WriteSet) -> Result<oneshot::Receiver<Outcome>, String> {
        let (reply, answer) = oneshot::channel();
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if jobs.as_ref().is_none_or(|tx| tx.send(Job { set, reply }).is_err()) {
            return Err("the writer has stopped".into());
        }
        Ok(answer)
    }
}

fn run(store: &Store, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let opened = Instant::now();
        let mut batch = match store.begin_batch() {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "could not open a write transaction");
                let _ = first.reply.send(Err(e.to_string()));
                continue;
            }
        };
        let mut answers: Vec<(oneshot::Sender<Outcome>, Applied)> = Vec::new();
        let mut failed = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match batch.apply(job.set) {
                Ok(applied) => answers.push((job.reply, applied)),
                Err(e) => {
                    // A storage failure midway: the transaction may hold part of this step.
                    let _ = job.reply.send(Err(e.to_string()));
                    failed = Some(e.to_string());
                    break;
                }
            }
            if answers.len() >= MAX_STEPS || opened.elapsed() >= MAX_OPEN {
                break;
            }
            next = rx.try_recv().ok();
        }
        let steps = answers.len();
        let result = match failed {
            Some(why) => Err(format!("the batch was dropped: {why}")),
            None => {
                let started = Instant::now();
                let result = store.commit_batch(batch).map_err(|e| e.to_string());
                tracing::debug!(steps, commit_us = started.elapsed().as_micros() as u64, "batch committed");
                result
            }
        };
        if let Err(why) = &result {
            tracing::error!(steps, error = %why, "a batch of writes did not commit");
        }
        for (reply, applied) in answers {
            let _ = reply.send(result.clone().map(|()| applied));
        }
    }
}
