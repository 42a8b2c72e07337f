//! The job runner: runs the jobs handlers submit (WIT `jobs` / `job-runner`, since 0.1.3).
//!
//! The queue is the store's `jobs_open` table (tenant, entity, job id: every unfinished job,
//! each entity's in submission order), so it survives a restart as it is. One dispatcher
//! thread (`ocni-jobs`) reads it whenever it is woken (a write that submitted jobs committed,
//! a job ended) or a backoff is over, and hands the first job of each entity that is not
//! already running to one of the worker threads (`ocni-job-N`), within the bounds: at most
//! [`workers`] jobs at once, and in multi-tenant mode at most `handler_calls_per_tenant` of one
//! tenant. Jobs of one entity thus run one at a time, in submission order.
//!
//! One attempt is three steps, each an ordinary write (`Services::write`: prepared on a
//! snapshot, applied if what it read is unchanged, else prepared again):
//! 1. *claim*: the job becomes `running` and its attempt count moves (the entity is gone:
//!    `cancelled`);
//! 2. *run*: `job-runner.run` on the sandbox threads with the job deadline (no write);
//! 3. *result*: its changes applied to the entity as it then is, checked against the model,
//!    written with the job `succeeded`; or, for a failed attempt, the job back to `pending`
//!    with a backoff, or after the last one `failed` with the changes of `job-runner.failed`.
//!
//! A job left `running` by a process that died is claimed again at start: runs are at least
//! once. On a shared store (etcd, several nodes) a `running` job may be another node's: it is
//! claimed again only once its attempt should long be over ([`claim_after`]). Each node's
//! dispatcher is woken by its own writes (and looks at the queue every [`IDLE_WAKE`]), so a
//! job usually runs on the node that took the request that submitted it. Stopping the runner
//! (the server shutting down) waits for the attempts under way.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use ocni_runtime::LogLevel;
use ocni_store::{JobRecord, JobState, OpenJob, Reads};

use crate::config::MAX_JOB_BACKOFF;
use crate::error::ApiError;
use crate::reply::R;
use crate::sandbox::jobs::now_ms;
use crate::sandbox::{JobOutcome, apply_changes};
use crate::services::Services;

/// The most unfinished jobs the dispatcher looks at in one pass.
const QUEUE_SCAN: usize = 100_000;
/// The dispatcher looks at the queue at least this often (a missed wake-up costs no more).
const IDLE_WAKE: Duration = Duration::from_secs(30);

/// When a job left `running` may be claimed again (Unix ms), or `None` when at once: on a
/// shared store, another node may be running it, until its job deadline, the most waiting for a
/// core may move it (`MAX_CORE_WAIT`), and a margin passed.
fn claim_after(s: &Services, job: &JobRecord) -> Option<u64> {
    if job.state != JobState::Running || !s.store.is_shared() {
        return None;
    }
    let lease = s.config.runtime.job_deadline + ocni_runtime::MAX_CORE_WAIT + Duration::from_secs(10);
    Some(job.updated_ms.saturating_add(lease.as_millis() as u64))
}

/// How many jobs run at once, all tenants together: one per core, at least 2.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get).max(2)
}

/// Which jobs run now: by entity (one at a time) and by tenant.
#[derive(Default)]
struct Running {
    entities: HashSet<(String, String)>,
    tenants: HashMap<String, usize>,
}

/// The dispatcher and worker threads; dropping it stops them, after the attempts under way.
pub(crate) struct JobRunner {
    services: Arc<Services>,
    dispatcher: Option<JoinHandle<()>>,
}

impl Drop for JobRunner {
    fn drop(&mut self) {
        self.services.jobs.stop();
        if let Some(d) = self.dispatcher.take()
            && d.join().is_err()
        {
            tracing::error!("the job dispatcher panicked");
        }
    }
}

impl JobRunner {
    /// Starts the runner; it resumes every unfinished job at once.
    pub(crate) fn start(services: Arc<Services>) -> std::io::Result<JobRunner> {
        let s = Arc::clone(&services);
        let dispatcher = std::thread::Builder::new().name("ocni-jobs".into()).spawn(move || dispatch(&s))?;
        Ok(JobRunner { services, dispatcher: Some(dispatcher) })
    }
}

fn dispatch(s: &Arc<Services>) {
    let running = Arc::new(Mutex::new(Running::default()));
    let (tx, rx) = std::sync::mpsc::channel::<OpenJob>();
    let rx = Arc::new(Mutex::new(rx));
    let count = workers();
    let mut threads = Vec::new();
    for i in 0..count {
        let (s, rx, running) = (Arc::clone(s), Arc::clone(&rx), Arc::clone(&running));
        match std::thread::Builder::new().name(format!("ocni-job-{i}")).spawn(move || work(&s, &rx, &running)) {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "cannot start a job worker thread"),
        }
    }
    let per_tenant = s.tenancy.is_multi_tenant().then_some(s.config.handler_calls_per_tenant.max(1));
    let mut wait = Duration::ZERO;
    while s.jobs.wait(wait) {
        wait = match next_jobs(s, &running, &tx, threads.len(), per_tenant) {
            Ok(Some(due)) => due.min(IDLE_WAKE),
            Ok(None) => IDLE_WAKE,
            Err(e) => {
                tracing::error!(error = %e.message, "the job dispatcher could not read the queue");
                Duration::from_secs(1)
            }
        };
    }
    drop(tx);
    for t in threads {
        let _ = t.join();
    }
}

/// Hands out the jobs that may start now; returns when the next backed-off one is due.
fn next_jobs(
    s: &Services,
    running: &Mutex<Running>,
    tx: &Sender<OpenJob>,
    workers: usize,
    per_tenant: Option<usize>,
) -> R<Option<Duration>> {
    let r = s.store.read()?;
    let now = now_ms();
    let mut due: Option<u64> = None;
    let mut seen = HashSet::new();
    for open in r.open_jobs(QUEUE_SCAN)? {
        // Only the first unfinished job of each entity may run.
        if !seen.insert((open.tenant.clone(), open.entity.clone())) {
            continue;
        }
        let mut run = running.lock().unwrap_or_else(PoisonError::into_inner);
        if run.entities.len() >= workers {
            break;
        }
        let key = (open.tenant.clone(), open.entity.clone());
        let of_tenant = run.tenants.get(&open.tenant).copied().unwrap_or(0);
        if run.entities.contains(&key) || per_tenant.is_some_and(|n| of_tenant >= n) {
            continue;
        }
        let Some(job) = r.job(&open.tenant, &open.id)? else { continue };
        let not_before = job.not_before_ms.max(claim_after(s, &job).unwrap_or(0));
        if not_before > now {
            due = Some(due.map_or(not_before, |d| d.min(not_before)));
            continue;
        }
        run.entities.insert(key);
        *run.tenants.entry(open.tenant.clone()).or_default() += 1;
        drop(run);
        if tx.send(open).is_err() {
            break;
        }
    }
    Ok(due.map(|d| Duration::from_millis(d.saturating_sub(now).max(1))))
}

fn work(s: &Services, rx: &Mutex<Receiver<OpenJob>>, running: &Mutex<Running>) {
    loop {
        let Ok(open) = rx.lock().unwrap_or_else(PoisonError::into_inner).recv() else { return };
        if let Err(e) = attempt(s, &open) {
            // The store or the writer failed (not the handler): the job stays as it is and is
            // tried again later.
            tracing::error!(tenant = open.tenant, job = open.id, error = %e.message, "a job attempt could not finish");
            // Not at once: what failed is likely to fail again right away.
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut run = running.lock().unwrap_or_else(PoisonError::into_inner);
        run.entities.remove(&(open.tenant.clone(), open.entity.clone()));
        if let Some(n) = run.tenants.get_mut(&open.tenant) {
            *n -= 1;
            if *n == 0 {
                run.tenants.remove(&open.tenant);
            }
        }
        drop(run);
        s.jobs.wake();
    }
}

/// The backoff before attempt `attempts + 1`: the configured wait, doubled per earlier retry.
fn backoff(s: &Services, attempts: u32) -> Duration {
    let base = s.config.handler_job_backoff;
    base.saturating_mul(1u32 << attempts.saturating_sub(1).min(16)).min(MAX_JOB_BACKOFF)
}

/// One attempt at a job: claim, run, write the result.
fn attempt(s: &Services, open: &OpenJob) -> R<()> {
    let tenant = open.tenant.as_str();
    let max_attempts = s.config.handler_job_retries.saturating_add(1);
    // 1. Claim (a pending job, or one left running by a process that died).
    let claimed = s.write(tenant, |w, _| {
        let Some(mut job) = w.job(tenant, &open.id)? else { return Ok(None) };
        if job.state.is_final() || claim_after(s, &job).is_some_and(|t| t > now_ms()) {
            return Ok(None);
        }
        job.updated_ms = now_ms();
        let Some(entity) = w.entity(tenant, &job.entity)? else {
            job.state = JobState::Cancelled;
            job.last_error = Some("the entity was deleted".into());
            w.put_job(tenant, &job)?;
            return Ok(None);
        };
        job.state = JobState::Running;
        job.attempts += 1;
        w.put_job(tenant, &job)?;
        Ok(Some((job, entity)))
    });
    let (job, entity) = match claimed {
        Ok(Some(claimed)) => claimed,
        Ok(None) => return Ok(()),
        // The tenant was deleted (its jobs went with it), or the write kept conflicting.
        Err(e) if e.status.is_client_error() => return Ok(()),
        Err(e) => return Err(e),
    };
    tracing::debug!(tenant, job = job.id, attempt = job.attempts, "job attempt");
    // 2. Run.
    let view = s.view(tenant)?;
    let limits = s.tenancy.call_limits(tenant);
    let outcome = s.sandbox.run_job(tenant, &view.catalog, &view.handlers, limits, &job, &entity, max_attempts)?;
    // 3. The result, in a write of its own.
    let why = match outcome {
        JobOutcome::Done { changes, inapplicable } => {
            let done = s.write(tenant, |w, catalog| {
                let Some(mut current) = still_ours(w, tenant, &job)? else { return Ok(()) };
                current.updated_ms = now_ms();
                match w.entity(tenant, &job.entity)? {
                    None => {
                        current.state = JobState::Cancelled;
                        current.last_error = Some("the entity was deleted while the job ran".into());
                    }
                    Some(mut e) => {
                        apply_changes(&job.handler, &mut e, changes.clone())?;
                        catalog.check_entity(&e).map_err(|err| {
                            ApiError::bad(format!("handler {:?} produced an invalid entity: {err}", job.handler))
                        })?;
                        if inapplicable.is_some() {
                            e.inapplicable.clone_from(&inapplicable);
                        }
                        w.put_entity(tenant, &e)?;
                        current.state = JobState::Succeeded;
                        current.last_error = None;
                    }
                }
                w.put_job(tenant, &current).map_err(ApiError::from)
            });
            match done {
                Ok(()) => {
                    tracing::info!(tenant, job = job.id, entity = job.entity, "job succeeded");
                    return Ok(());
                }
                // What the handler returned cannot be written: the attempt failed.
                Err(e) if e.status.is_client_error() || e.status == hyper::StatusCode::BAD_GATEWAY => {
                    s.sandbox.job_note(tenant, &job, LogLevel::Error, &format!("job {}: {}", job.id, e.message));
                    e.message
                }
                Err(e) => return Err(e),
            }
        }
        JobOutcome::Failed(why) => why,
    };
    fail(s, tenant, &job, &entity, &why, max_attempts)
}

/// The job as stored, if it is still the attempt `job` claimed (a tenant deletion, say, ends
/// it otherwise).
fn still_ours(w: &crate::sandbox::Write, tenant: &str, job: &JobRecord) -> R<Option<JobRecord>> {
    Ok(w.job(tenant, &job.id)?.filter(|j| j.state == JobState::Running && j.attempts == job.attempts))
}

/// A failed attempt: back to `pending` after a backoff, or, after the last one, `failed` with
/// the entity put in its error state by `job-runner.failed`.
fn fail(s: &Services, tenant: &str, job: &JobRecord, entity: &ocni_model::Entity, why: &str, max: u32) -> R<()> {
    let last = job.attempts >= max;
    let changes = match last {
        true => {
            let view = s.view(tenant)?;
            s.sandbox.job_failed(tenant, &view.handlers, s.tenancy.call_limits(tenant), job, entity, max, why)?
        }
        false => Vec::new(),
    };
    let result = s.write(tenant, |w, catalog| {
        let Some(mut current) = still_ours(w, tenant, job)? else { return Ok(()) };
        let now = now_ms();
        current.updated_ms = now;
        current.last_error = Some(why.to_string());
        if !last {
            current.state = JobState::Pending;
            current.not_before_ms = now.saturating_add(backoff(s, job.attempts).as_millis() as u64);
            return Ok(w.put_job(tenant, &current)?);
        }
        match w.entity(tenant, &job.entity)? {
            None => current.state = JobState::Cancelled,
            Some(mut e) => {
                current.state = JobState::Failed;
                if !changes.is_empty() {
                    let ok = apply_changes(&job.handler, &mut e, changes.clone()).is_ok()
                        && catalog.check_entity(&e).is_ok();
                    if ok {
                        e.inapplicable = None;
                        w.put_entity(tenant, &e)?;
                    } else {
                        let note =
                            format!("job {}: the changes of failed() are not a valid entity; left as is", job.id);
                        s.sandbox.job_note(tenant, job, LogLevel::Error, &note);
                    }
                }
            }
        }
        Ok(w.put_job(tenant, &current)?)
    });
    match result {
        Err(e) if e.status.is_client_error() => Ok(()),
        other => {
            if last {
                tracing::warn!(tenant, job = job.id, entity = job.entity, attempts = job.attempts, "job failed");
            }
            other
        }
    }
}
