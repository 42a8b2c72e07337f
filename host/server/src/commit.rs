//! Group commit through one writer thread. Every request that may write (any method but GET and
//! HEAD) is a *job* sent to the writer thread, which runs jobs one after the other as *steps* of
//! a shared redb transaction (a batch). When no job is waiting (or the batch holds
//! [`MAX_STEPS`] steps, or has been open [`MAX_OPEN`]) the batch commits durably, and only then
//! are its requests answered. Concurrent writers thus share one fsync, a write is acknowledged
//! only once it is on disk, and running the steps back to back on one thread costs no lock
//! hand-over or thread wake-up per request.
//!
//! A job that fails is undone alone (`ocni_store::Writer::undo_step`) and answered at once, so a
//! refusal still writes nothing and the other steps of its batch are not affected. Readers see a
//! batch only once it has committed; code running inside a job (its handlers, and the answer of
//! a mixin association or an action, rendered inside the write) sees the batch as it stands.
//!
//! Handler uploads are compiled before their job is sent (see `lib.rs`), so a slow compile never
//! holds up other writes.

use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use hyper::Method;
use ocni_model::Catalog;
use ocni_store::Writer;
use tokio::sync::oneshot;

use crate::api::{App, Reply, Request};
use crate::error::ApiError;

type R<T> = Result<T, ApiError>;

/// Most steps in one batch: bounds how long the first request of a busy batch waits.
const MAX_STEPS: usize = 512;
/// Longest a batch stays open while jobs keep arriving.
const MAX_OPEN: Duration = Duration::from_millis(5);
/// Stack of the writer thread, beyond what handler calls may use (`max_wasm_stack`).
const WRITER_STACK_MARGIN: usize = 4 << 20;

thread_local! {
    /// Set on the writer thread: `App::write` and `App::catalog` use the open batch there.
    static ON_WRITER: Cell<bool> = const { Cell::new(false) };
}

/// A request that may write, owned so that it can cross to the writer thread.
pub(crate) struct Job {
    pub tenant: String,
    pub method: Method,
    pub route: crate::route::Route,
    pub body: Option<crate::api::Body>,
    pub format: crate::negotiate::Format,
    pub base_url: String,
    pub span: tracing::Span,
    pub reply: oneshot::Sender<R<Reply>>,
}

/// The writer thread's queue and the batch it is building.
pub(crate) struct WriteQueue {
    jobs: Mutex<Option<Sender<Job>>>,
    /// Taken by [`start_writer`].
    receiver: Mutex<Option<Receiver<Job>>>,
    batch: Mutex<Batch>,
}

impl Default for WriteQueue {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        WriteQueue { jobs: Mutex::new(Some(tx)), receiver: Mutex::new(Some(rx)), batch: Mutex::default() }
    }
}

#[derive(Default)]
struct Batch {
    /// The open transaction, if any.
    writer: Option<Writer>,
    /// Steps (jobs that wrote) in the open batch.
    steps: usize,
    /// Whether the job in progress has begun its step (written something).
    in_step: bool,
    /// Catalogs the open batch changed, installed for readers when it commits.
    catalogs: HashMap<String, Arc<Catalog>>,
    /// Answers of the open batch's jobs, sent once it committed.
    answers: Vec<(oneshot::Sender<R<Reply>>, Reply)>,
}

impl WriteQueue {
    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a job to the writer thread; its answer arrives on the job's `reply`.
    pub(crate) fn submit(&self, job: Job) -> R<()> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let sent = jobs.as_ref().map(|tx| tx.send(job).is_ok()).unwrap_or(false);
        if sent { Ok(()) } else { Err(ApiError::internal("queueing a write", "the writer thread has stopped")) }
    }
}

/// Starts the writer thread of `app`. It holds only a weak reference: it ends once the app is
/// dropped (its job sender with it).
pub(crate) fn start_writer(app: &Arc<App>) -> std::io::Result<()> {
    let Some(rx) = app.queue.receiver.lock().unwrap_or_else(PoisonError::into_inner).take() else {
        return Ok(());
    };
    let weak = Arc::downgrade(app);
    let stack = app.config.runtime.max_wasm_stack + WRITER_STACK_MARGIN;
    std::thread::Builder::new().name("ocni-writer".into()).stack_size(stack).spawn(move || writer(weak, rx))?;
    Ok(())
}

fn writer(app: Weak<App>, rx: Receiver<Job>) {
    ON_WRITER.with(|w| w.set(true));
    while let Ok(first) = rx.recv() {
        let Some(app) = app.upgrade() else { break };
        let opened = Instant::now();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            app.run_job(job);
            if app.queue.lock().steps >= MAX_STEPS || opened.elapsed() >= MAX_OPEN {
                break;
            }
            next = rx.try_recv().ok();
        }
        let mut batch = app.queue.lock();
        app.end_batch(&mut batch, None);
    }
}

impl App {
    /// Runs one job as a step of the open batch: its answer waits for the batch's commit when
    /// it wrote, and goes at once when it failed (its step undone) or wrote nothing.
    fn run_job(&self, job: Job) {
        let Job { tenant, method, route, body, format, base_url, span, reply } = job;
        let _entered = span.enter();
        let saved = self.queue.lock().catalogs.get(&tenant).cloned();
        let request = Request { method: &method, route, body, format, base_url };
        let result = catch_unwind(AssertUnwindSafe(|| crate::serve_request(self, &tenant, request)))
            .unwrap_or_else(|_| Err(ApiError::internal("a write", "it panicked")));
        let mut batch = self.queue.lock();
        let in_step = std::mem::take(&mut batch.in_step);
        match result {
            Ok(answer) if in_step && batch.writer.is_some() => {
                batch.steps += 1;
                batch.answers.push((reply, answer));
            }
            Ok(answer) => {
                let _ = reply.send(Ok(answer));
            }
            Err(e) => {
                if in_step {
                    match &saved {
                        Some(c) => batch.catalogs.insert(tenant.clone(), Arc::clone(c)),
                        None => batch.catalogs.remove(&tenant),
                    };
                    if let Some(w) = batch.writer.as_mut()
                        && let Err(undo) = w.undo_step()
                    {
                        tracing::error!(error = %undo, "a failed write could not be undone; its whole batch is dropped");
                        self.end_batch(&mut batch, Some(format!("the batch was dropped: {undo}")));
                    }
                }
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Runs a write of the job in progress (on the writer thread) in the open batch. `f` may
    /// return a new catalog for the tenant, seen by the batch's later jobs and installed for
    /// readers once the batch committed. The job's answer waits for that commit.
    pub(crate) fn write<T>(
        &self,
        tenant: &str,
        f: impl FnOnce(&mut Writer, &Catalog) -> R<(T, Option<Catalog>)>,
    ) -> R<T> {
        if !ON_WRITER.with(Cell::get) {
            return Err(ApiError::internal("a write", "writes run on the writer thread only"));
        }
        let catalog = self.catalog(tenant)?;
        let mut w = {
            let mut batch = self.queue.lock();
            if batch.writer.is_none() {
                batch.writer = Some(self.store.begin_batch()?);
            }
            let mut w = batch.writer.take().expect("opened above");
            if !batch.in_step {
                w.begin_step();
                batch.in_step = true;
            }
            w
        };
        // The writer is out of the batch while `f` runs, so that `f` may look at the batch
        // (the tenant's catalog, say) without deadlocking; it goes back whatever happens.
        let overlay = || self.kv_overlay.lock().unwrap_or_else(PoisonError::into_inner);
        // A panic in `f` must not take the batch's transaction with it: the writer goes back and
        // the job's step is undone like any failed one.
        let result = catch_unwind(AssertUnwindSafe(|| -> R<(T, Option<Catalog>)> {
            // A request authenticated just before its tenant was deleted must not write.
            self.tenancy.check_live(tenant)?;
            let out = f(&mut w, &catalog)?;
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
        let mut batch = self.queue.lock();
        batch.writer = Some(w);
        let (out, next) = result?;
        if let Some(next) = next {
            batch.catalogs.insert(tenant.to_string(), Arc::new(next));
        }
        Ok(out)
    }

    /// On the writer thread, the catalog the open batch gave `tenant`, if it changed it.
    pub(crate) fn pending_catalog(&self, tenant: &str) -> Option<Arc<Catalog>> {
        if !ON_WRITER.with(Cell::get) {
            return None;
        }
        self.queue.lock().catalogs.get(tenant).cloned()
    }

    /// Runs an admin write (tenants, tokens, limits) in a transaction of its own, after the open
    /// batch (if any) has committed.
    pub(crate) fn admin_write<T>(&self, f: impl FnOnce(&mut Writer) -> R<T>) -> R<T> {
        let mut batch = self.queue.lock();
        self.end_batch(&mut batch, None);
        drop(batch);
        self.store.write(f)
    }

    /// Drops the cached catalog of a tenant (created or deleted): the next request reads it.
    pub(crate) fn forget_catalog(&self, tenant: &str) {
        let mut batch = self.queue.lock();
        batch.catalogs.remove(tenant);
        self.forget_handler_indexes([&tenant.to_string()]);
        self.catalogs.write().unwrap_or_else(PoisonError::into_inner).remove(tenant);
    }

    /// Commits the open batch (or drops it, when `abort` gives a reason) and sends its answers.
    fn end_batch(&self, batch: &mut Batch, abort: Option<String>) {
        let steps = std::mem::take(&mut batch.steps);
        let catalogs = std::mem::take(&mut batch.catalogs);
        let answers = std::mem::take(&mut batch.answers);
        let Some(mut writer) = batch.writer.take() else {
            // No transaction: nothing to commit, and no answer can be waiting (steps only count
            // in an open transaction); should one be, it must not be acknowledged.
            for (reply, _) in answers {
                let _ = reply.send(Err(ApiError::internal("committing a write", "its batch was lost")));
            }
            return;
        };
        // Committed or not, what is cached of these tenants' handlers may be stale now.
        let touched = writer.take_handlers_touched();
        let result = match abort {
            Some(why) => Err(why),
            // Nothing to commit: dropping the transaction aborts it.
            None if steps == 0 => Ok(()),
            None => {
                let started = Instant::now();
                let result = self.store.commit_batch(writer).map_err(|e| e.to_string());
                tracing::debug!(steps, commit_us = started.elapsed().as_micros() as u64, "batch committed");
                result
            }
        };
        self.forget_handler_indexes(&touched);
        match &result {
            Ok(()) => self.catalogs.write().unwrap_or_else(PoisonError::into_inner).extend(catalogs),
            Err(why) => tracing::error!(steps, error = %why, "a batch of writes did not commit"),
        }
        for (reply, answer) in answers {
            let answer = match &result {
                Ok(()) => Ok(answer),
                Err(why) => Err(ApiError::internal("committing a write", why)),
            };
            let _ = reply.send(answer);
        }
    }
}
