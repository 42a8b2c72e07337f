//! Group commit. Every write of the server runs as one *step* of a shared redb transaction (a
//! batch); the batch commits durably once no other write is waiting to join it (or it holds
//! [`MAX_STEPS`] steps, or has been open [`MAX_OPEN`]), and every request in it is answered
//! after that one commit. Concurrent writers thus share one fsync instead of queueing for one
//! each, and a write is still acknowledged only once it is on disk.
//!
//! Steps run one at a time, in arrival order, under the batch lock. A step that fails is undone
//! alone (`ocni_store::Writer::undo_step`), so a refusal still writes nothing and the other steps
//! of its batch are not affected. Readers see a batch only once it has committed.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ocni_model::Catalog;
use ocni_store::Writer;

use crate::api::App;
use crate::error::ApiError;

type R<T> = Result<T, ApiError>;

/// Most steps in one batch: bounds how long the first step of a busy batch waits for its commit.
const MAX_STEPS: usize = 256;
/// Longest a batch stays open while writers keep arriving.
const MAX_OPEN: Duration = Duration::from_millis(5);

/// How a batch ended: committed, or the reason it was not (shared by its members).
type Outcome = Arc<OnceLock<Result<(), String>>>;

/// The batch in progress and the writers queued to join it.
#[derive(Default)]
pub(crate) struct WriteQueue {
    batch: Mutex<Batch>,
    /// Signalled when a batch ends.
    ended: Condvar,
    /// Writers waiting for the batch lock (they will join the open batch).
    waiting: AtomicUsize,
}

#[derive(Default)]
struct Batch {
    /// The open transaction, if any.
    writer: Option<Writer>,
    opened: Option<Instant>,
    /// Steps that succeeded in the open batch.
    steps: usize,
    /// Catalogs the open batch's steps changed, installed when it commits.
    catalogs: HashMap<String, Arc<Catalog>>,
    outcome: Outcome,
}

impl WriteQueue {
    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl App {
    /// Runs a write as one step of the open batch. `f` may return a new catalog for the tenant,
    /// seen by the batch's later steps and installed for readers once the batch committed.
    /// Returns once the write is durable; a failed step returns at once, having written nothing.
    pub(crate) fn write<T>(
        &self,
        tenant: &str,
        f: impl FnOnce(&mut Writer, &Catalog) -> R<(T, Option<Catalog>)>,
    ) -> R<T> {
        let queue = &self.queue;
        queue.waiting.fetch_add(1, Ordering::SeqCst);
        let mut batch = queue.lock();
        queue.waiting.fetch_sub(1, Ordering::SeqCst);
        let result = self.step(&mut batch, tenant, f);
        let member = result.is_ok().then(|| Arc::clone(&batch.outcome));
        if batch.steps == 0 {
            // Nothing to commit (this step failed and was undone): close the transaction so
            // that other writers of the database are not held up.
            batch.writer = None;
        } else if queue.waiting.load(Ordering::SeqCst) == 0
            || batch.steps >= MAX_STEPS
            || batch.opened.is_some_and(|t| t.elapsed() >= MAX_OPEN)
        {
            self.end_batch(&mut batch, None);
        }
        let out = result?;
        let outcome = member.expect("a successful step joined the batch");
        loop {
            if let Some(ended) = outcome.get() {
                return match ended {
                    Ok(()) => Ok(out),
                    Err(why) => Err(ApiError::internal("committing a write", why)),
                };
            }
            batch = queue.ended.wait(batch).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn step<T>(
        &self,
        batch: &mut Batch,
        tenant: &str,
        f: impl FnOnce(&mut Writer, &Catalog) -> R<(T, Option<Catalog>)>,
    ) -> R<T> {
        if batch.writer.is_none() {
            batch.writer = Some(self.store.begin_batch()?);
            batch.opened = Some(Instant::now());
            batch.outcome = Outcome::default();
        }
        let catalog = match batch.catalogs.get(tenant) {
            Some(c) => Arc::clone(c),
            None => self.catalog(tenant)?,
        };
        let w = batch.writer.as_mut().expect("opened above");
        w.begin_step();
        let overlay = || self.kv_overlay.lock().unwrap_or_else(PoisonError::into_inner);
        overlay().clear();
        let result = catch_unwind(AssertUnwindSafe(|| {
            // A request authenticated just before its tenant was deleted must not write.
            self.tenancy.check_live(w, tenant)?;
            let out = f(w, &catalog)?;
            // The handlers' key-value writes of this request join its step.
            for ((tenant, handler, key), value) in std::mem::take(&mut *overlay()) {
                match value {
                    Some(v) => w.kv_set(&tenant, &handler, &key, &v)?,
                    None => w.kv_delete(&tenant, &handler, &key)?,
                }
            }
            Ok(out)
        }))
        .unwrap_or_else(|_| Err(ApiError::internal("a write", "it panicked")));
        overlay().clear();
        match result {
            Ok((out, next)) => {
                if let Some(next) = next {
                    batch.catalogs.insert(tenant.to_string(), Arc::new(next));
                }
                batch.steps += 1;
                Ok(out)
            }
            Err(e) => {
                if let Err(undo) = w.undo_step() {
                    tracing::error!(error = %undo, "a failed write could not be undone; its whole batch is dropped");
                    self.end_batch(batch, Some(format!("the batch was dropped: {undo}")));
                }
                Err(e)
            }
        }
    }

    /// Runs an admin write (tenants, tokens, limits) in a transaction of its own, after the open
    /// batch (if any) has committed; writes wait meanwhile.
    pub(crate) fn admin_write<T>(&self, f: impl FnOnce(&mut Writer) -> R<T>) -> R<T> {
        let mut batch = self.queue.lock();
        self.end_batch(&mut batch, None);
        self.store.write(f)
    }

    /// Drops the cached catalog of a tenant (created or deleted): the next request reads it.
    pub(crate) fn forget_catalog(&self, tenant: &str) {
        let mut batch = self.queue.lock();
        batch.catalogs.remove(tenant);
        self.catalogs.write().unwrap_or_else(PoisonError::into_inner).remove(tenant);
    }

    /// Commits the open batch (or drops it, when `abort` gives a reason) and wakes its members.
    fn end_batch(&self, batch: &mut Batch, abort: Option<String>) {
        let Some(writer) = batch.writer.take() else { return };
        let steps = std::mem::take(&mut batch.steps);
        let catalogs = std::mem::take(&mut batch.catalogs);
        let result = match abort {
            Some(why) => Err(why),
            None => {
                let started = Instant::now();
                let result = self.store.commit_batch(writer).map_err(|e| e.to_string());
                tracing::debug!(steps, commit_us = started.elapsed().as_micros() as u64, "batch committed");
                result
            }
        };
        match &result {
            Ok(()) => {
                let mut installed = self.catalogs.write().unwrap_or_else(PoisonError::into_inner);
                installed.extend(catalogs);
            }
            Err(why) => tracing::error!(steps, error = %why, "a batch of writes did not commit"),
        }
        let _ = batch.outcome.set(result);
        self.queue.ended.notify_all();
    }
}
