//! Handler runs on the request path: [`Sandbox::run`] puts an entity through the handlers bound
//! to its kind and mixins (each `validate`, then the stage's hook) inside the write being
//! prepared ([`Write`]), on the sandbox threads (`threads.rs`), with the tenant's limits and at
//! most its share of concurrent calls. The host side of the handler world is `host.rs`.
//!
//! Nothing here knows HTTP routes or OCCI operations: callers hand in the catalog, the tenant's
//! handler index and its call limits.

mod host;
pub mod jobs;
mod logs;
pub mod outbound;
mod threads;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hyper::StatusCode;
use ocni_model::{Catalog, Entity};
use ocni_runtime::{
    AttributeView, Call, CallError, CallLimits, ChangeView, HostApi, JobView, LogLevel, Operation, Outcome,
    RefusalView, Runtime, RuntimeError, UploadError,
};
use ocni_store::{HandlerRecord, JobRecord, Reads, Step, Store};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::reply::R;
pub use host::entity_view;
use host::{LogContext, TenantHost, value_of, value_view};
pub use jobs::Signal;
pub use logs::{HandlerLogs, LogLine};

/// The provider name of pyOCNI's no-op backend: binding it means "no handler".
pub const DUMMY: &str = "dummy";

/// A write being prepared: its step (what it reads and writes; the only value that can change
/// tenant data) and the tenant's handler-call slot once one of its handler calls needed it.
pub struct Write {
    step: Step,
    slot: Option<OwnedSemaphorePermit>,
    /// Set by a handler call that found no free slot: the write is prepared again with one.
    wants_slot: bool,
    /// Prepared on an async worker thread, where no handler may run (see
    /// `Services::write`): a handler call refuses, and the request goes to a blocking thread.
    in_place: bool,
    /// Set by a handler call refused because the write is prepared in place.
    wants_thread: bool,
    /// The ids of the jobs this write's handler calls submitted (stored in its step).
    jobs: Vec<String>,
}

impl Write {
    /// A write over `step`, holding `slot` if its last attempt had to wait for one.
    pub(crate) fn new(step: Step, slot: Option<OwnedSemaphorePermit>) -> Write {
        Write { step, slot, wants_slot: false, in_place: false, wants_thread: false, jobs: Vec::new() }
    }

    /// A write prepared on an async worker thread: it may call no handler.
    pub(crate) fn in_place(step: Step) -> Write {
        Write { in_place: true, ..Write::new(step, None) }
    }

    /// Whether a handler call was refused because the write is prepared in place.
    pub(crate) fn wants_thread(&self) -> bool {
        self.wants_thread
    }

    /// The ids of the jobs this write's handlers submitted: written with it, run once it
    /// commits (the request answers 202).
    pub(crate) fn jobs(&self) -> &[String] {
        &self.jobs
    }

    /// Whether a handler call found the tenant's slots taken (the write must wait for one).
    pub(crate) fn wants_slot(&self) -> bool {
        self.wants_slot
    }

    /// The step, once the write's handler calls are over (the slot is released).
    pub(crate) fn into_step(self) -> Step {
        self.step
    }
}

impl std::ops::Deref for Write {
    type Target = Step;
    fn deref(&self) -> &Step {
        &self.step
    }
}

impl std::ops::DerefMut for Write {
    fn deref_mut(&mut self) -> &mut Step {
        &mut self.step
    }
}

pub(crate) fn upload_error(e: UploadError) -> ApiError {
    let status = match &e {
        UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        UploadError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        UploadError::Internal(_) => return ApiError::internal("compiling a handler", e),
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, format!("the component was refused: {e}"))
}

fn call_error(name: &str, e: CallError) -> ApiError {
    let status = match &e {
        CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        CallError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        e if e.is_server_fault() => return ApiError::internal(&format!("calling handler {name}"), e),
        // The tenant's handler failed (trap, limit): the request fails, the server goes on.
        _ => StatusCode::BAD_GATEWAY,
    };
    ApiError::new(status, format!("handler {name:?}: {e}"))
}

/// A tenant's handler bindings and handler records, as the store has them: read on every write
/// that may run handlers, so cached with the tenant's catalog (`Services::view`).
pub struct HandlerIndex {
    pub bindings: Vec<(String, String)>,
    records: BTreeMap<String, HandlerRecord>,
}

impl HandlerIndex {
    pub(crate) fn read(r: &impl Reads, tenant: &str) -> R<HandlerIndex> {
        let records = r.handlers(tenant)?.into_iter().map(|h| (h.name.clone(), h)).collect();
        Ok(HandlerIndex { bindings: r.bindings(tenant)?, records })
    }
}

/// What is happening to the entity handlers see.
pub enum Stage<'a> {
    Create,
    Update { old: &'a Entity },
    Delete,
    Action { action: String, params: &'a serde_json::Map<String, Value> },
}

/// The handler names bound to an entity: its kind's, then each mixin's in the entity's order.
pub fn bound_to(bindings: &[(String, String)], e: &Entity) -> Vec<String> {
    let of = |id: &str| bindings.iter().find(|(c, _)| c == id).map(|(_, h)| h.clone()).filter(|h| h != DUMMY);
    std::iter::once(e.kind.as_str()).chain(e.mixins.iter().map(String::as_str)).filter_map(of).collect()
}

/// Does the entity's kind have a handler (which then drives its actions)?
pub fn kind_has_handler(bindings: &[(String, String)], kind: &str) -> bool {
    bindings.iter().any(|(c, h)| c == kind && h != DUMMY)
}

/// Runs handler calls: the compiled components (`Runtime`), the threads calls run on, and in
/// multi-tenant mode each tenant's share of them.
pub(crate) struct Sandbox {
    runtime: Runtime,
    threads: threads::Threads,
    /// For reading a handler's stored bytes when its compiled artifact is gone.
    store: Arc<Store>,
    /// Handler calls one tenant may run at once; `None` in local mode (one tenant: nobody to
    /// be fair to, and the runtime's pool bounds its calls).
    per_tenant: Option<usize>,
    slots: parking_lot::Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The most entities one `find` of a handler returns.
    max_find_results: usize,
    /// Each handler's recent log lines and failures, for its author.
    logs: Arc<HandlerLogs>,
    /// What the operator allows handlers to reach over HTTP.
    outbound: Arc<outbound::Policy>,
}

impl Sandbox {
    /// Starts the sandbox threads (`runtime`'s pool size, each with the stack a call needs).
    pub(crate) fn start(
        runtime: Runtime,
        config: &ocni_runtime::RuntimeConfig,
        store: Arc<Store>,
        per_tenant: Option<usize>,
        logs: HandlerLogs,
        outbound: outbound::Policy,
    ) -> std::io::Result<Sandbox> {
        let threads = threads::Threads::start(config.max_concurrent_calls, config.max_wasm_stack)?;
        let max_find_results = config.max_find_results;
        Ok(Sandbox {
            runtime,
            threads,
            store,
            per_tenant: per_tenant.map(|n| n.max(1)),
            slots: Default::default(),
            max_find_results,
            logs: Arc::new(logs),
            outbound: Arc::new(outbound),
        })
    }

    /// The WebAssembly runtime (compiles uploads, caches artifacts).
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Each handler's recent log lines and failures.
    pub(crate) fn logs(&self) -> &HandlerLogs {
        &self.logs
    }

    /// What the operator allows handlers to reach over HTTP.
    pub(crate) fn outbound(&self) -> &outbound::Policy {
        &self.outbound
    }

    /// The handler-call slots of a tenant; none in local mode.
    pub(crate) fn handler_slots(&self, tenant: &str) -> Option<Arc<Semaphore>> {
        let per_tenant = self.per_tenant?;
        Some(Arc::clone(
            self.slots.lock().entry(tenant.to_string()).or_insert_with(|| Arc::new(Semaphore::new(per_tenant))),
        ))
    }

    /// The compiled handler of a record: from the runtime's caches, else compiled again from
    /// the stored bytes (after the cache directory was cleared, say), on the request's thread.
    fn load_handler(&self, w: &Step, tenant: &str, rec: &HandlerRecord) -> R<Arc<ocni_runtime::Handler>> {
        match self.runtime.load(&rec.digest) {
            Ok(h) => Ok(h),
            Err(RuntimeError::NotCompiled(_)) => {
                // Bytes are stored by digest: read from the step only if it uploaded them, else
                // from a snapshot (not a read of the step: they cannot change).
                let bytes = match w.touched(tenant) {
                    true => w.handler_blob(tenant, &rec.digest)?,
                    false => self.store.read()?.handler_blob(tenant, &rec.digest)?,
                };
                let bytes = bytes.ok_or_else(|| {
                    ApiError::internal("loading a handler", format!("bytes of {} are missing", rec.digest))
                })?;
                self.runtime.compile(&bytes).map_err(|e| ApiError::internal("recompiling a stored handler", e))?;
                self.runtime.load(&rec.digest).map_err(|e| ApiError::internal("loading a handler", e))
            }
            Err(e) => Err(ApiError::internal("loading a handler", e)),
        }
    }

    /// Puts `entity` through the handlers bound to it: for each, `validate` and then the stage's
    /// hook, applying the attribute changes they return. Key-value writes join the step `w`. At
    /// most `Config::handler_calls_per_tenant` calls of one tenant run at once; the others wait.
    /// The result is checked against the model again, so a handler cannot store what the model
    /// would refuse.
    ///
    /// The handler driving the entity's kind is then asked, on the same instance, which of the
    /// kind's actions apply to the entity as its hook left it (`actions.applicable`, since WIT
    /// 0.1.1; a component without that export has no say: all apply), and the answer goes into
    /// [`Entity::inapplicable`], stored with the entity: reads render it without a handler
    /// call. Not on delete, and not for a kind without actions.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        w: &mut Write,
        tenant: &str,
        catalog: &Catalog,
        index: &HandlerIndex,
        limits: CallLimits,
        stage: Stage,
        entity: &mut Entity,
    ) -> R<()> {
        let names = bound_to(&index.bindings, entity);
        if names.is_empty() {
            return Ok(());
        }
        if w.in_place {
            // A call may take its whole deadline: not on an async worker thread.
            w.wants_thread = true;
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "a handler call is prepared on a blocking thread",
            ));
        }
        let mut changed = false;
        // The kind's handler, if any, comes first in `names`; it is asked about these actions.
        let kind_actions = match stage {
            Stage::Delete => None,
            _ if !kind_has_handler(&index.bindings, &entity.kind) => None,
            _ => Some(catalog.kind_actions(&entity.kind)),
        };
        if let Some(actions) = &kind_actions
            && actions.is_empty()
        {
            entity.inapplicable = Some(Vec::new());
        }
        for (i, name) in names.iter().enumerate() {
            let rec = index.records.get(name).ok_or_else(|| {
                ApiError::conflict(format!("{} is bound to handler {name:?}, which does not exist", entity.kind))
            })?;
            let handler = self.load_handler(w, tenant, rec)?;
            let op = match stage {
                Stage::Create => Operation::Create,
                Stage::Update { .. } => Operation::Update,
                Stage::Delete => Operation::Delete,
                Stage::Action { .. } => Operation::Action,
            };
            let fault = Arc::new(std::sync::OnceLock::new());
            let log = LogContext {
                logs: Arc::clone(&self.logs),
                entity: Some(entity.location.clone()),
                operation: Some(match op {
                    Operation::Create => "create",
                    Operation::Update => "update",
                    Operation::Delete => "delete",
                    Operation::Action => "action",
                }),
            };
            // A create's or an action's calls may submit jobs, if the component can run them.
            let submissions = match stage {
                Stage::Create | Stage::Action { .. } if handler.has_job_runner() => jobs::Submissions::open(),
                Stage::Create | Stage::Action { .. } => {
                    jobs::Submissions::closed("the component does not export job-runner (WIT 0.1.3)")
                }
                _ => jobs::Submissions::closed("only a create's or an action's calls may submit jobs"),
            };
            let host: Box<dyn HostApi + Send> = Box::new(
                TenantHost::new(
                    tenant,
                    name,
                    w.step.clone(),
                    self.max_find_results,
                    Arc::clone(&fault),
                    log.clone(),
                    outbound::Outbound::new(Arc::clone(&self.outbound), &rec.outbound),
                )
                .with_jobs(submissions.clone()),
            );
            // What the host says about the call, for the handler's author (and the operator).
            let note = |level, message: &str| log.write(tenant, name, "host", level, message, &[]);
            // `validate` and the stage's hook run on one instance (one instantiation per request).
            let mut calls = vec![
                Call::Validate { entity: entity_view(entity), op },
                match &stage {
                    Stage::Create => Call::Create { entity: entity_view(entity) },
                    Stage::Update { old } => Call::Update { old: entity_view(old), new: entity_view(entity) },
                    Stage::Delete => Call::Delete { entity: entity_view(entity) },
                    Stage::Action { action, params } => Call::Action {
                        entity: entity_view(entity),
                        action: action.clone(),
                        params: params.iter().map(|(k, v)| AttributeView::new(k.clone(), value_view(v))).collect(),
                    },
                },
            ];
            let asked = kind_actions.as_ref().filter(|actions| i == 0 && !actions.is_empty());
            if let Some(actions) = asked {
                // After the hook: the runtime shows it the entity with the hook's changes.
                calls.push(Call::Applicable { entity: entity_view(entity), actions: actions.clone() });
            }
            if w.slot.is_none()
                && let Some(slots) = self.handler_slots(tenant)
            {
                match slots.try_acquire_owned() {
                    Ok(permit) => w.slot = Some(permit),
                    Err(_) => {
                        // `Services::write` waits for a slot (without the step's snapshot) and prepares
                        // the write again.
                        w.wants_slot = true;
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("tenant {tenant}'s handler calls are all in use"),
                        ));
                    }
                }
            }
            let runtime = self.runtime.clone();
            let (outcomes, host) = self
                .threads
                .run(move || runtime.call_each(&handler, host, calls, limits))
                .map_err(|e| ApiError::internal(&format!("calling handler {name}"), e))?;
            // The handler's key-value writes are in the step; the host's handle on it goes here.
            drop(host);
            if let Some(fault) = fault.get() {
                return Err(ApiError::internal(&format!("answering handler {name}"), fault));
            }
            let outcomes = outcomes.map_err(|e| {
                // Busy and internal errors are the server's, not the handler's doing.
                if !e.is_server_fault() {
                    note(LogLevel::Error, &format!("the call failed: {e}"));
                }
                call_error(name, e)
            })?;
            for outcome in outcomes {
                match outcome {
                    Outcome::Accepted => {}
                    Outcome::Changes(changes) if changes.is_empty() => {}
                    Outcome::Changes(changes) => {
                        apply_changes(name, entity, changes).inspect_err(|e| note(LogLevel::Error, &e.message))?;
                        changed = true;
                    }
                    Outcome::Refused(reasons) => {
                        let refusal = refused(name, reasons);
                        note(
                            LogLevel::Info,
                            &format!("refused the request ({}): {}", refusal.status.as_u16(), refusal.message),
                        );
                        return Err(refusal);
                    }
                    Outcome::Applicable(answer) => {
                        let Some(asked) = asked else { continue };
                        // Stored as what does not apply, so that an action added to the kind
                        // later applies until the handler says otherwise.
                        let excluded = match answer {
                            None => Vec::new(),
                            Some(applies) => asked.iter().filter(|a| !applies.contains(a)).cloned().collect(),
                        };
                        entity.inapplicable = Some(excluded);
                    }
                    Outcome::Failed(_) => {}
                }
            }
            // The jobs it submitted go into the same step as the entity.
            let submitted = submissions.records(&entity.location, name);
            if !submitted.is_empty() {
                let open = w.open_jobs_of(tenant, &entity.location)?.len();
                if open + submitted.len() > jobs::MAX_OPEN_JOBS_PER_ENTITY {
                    let message = format!(
                        "{} has {open} unfinished jobs (at most {} are allowed): wait for them to end",
                        entity.location,
                        jobs::MAX_OPEN_JOBS_PER_ENTITY
                    );
                    note(LogLevel::Warn, &message);
                    return Err(ApiError::conflict(message));
                }
                for job in submitted {
                    w.put_job(tenant, &job)?;
                    w.jobs.push(job.id);
                }
            }
        }
        // The model checked the entity before; check again what the handlers changed.
        if !changed {
            return Ok(());
        }
        if !matches!(stage, Stage::Delete) {
            catalog.check_entity(entity).map_err(|e| {
                let error = ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("handler {} produced an invalid entity: {e}", names.join(", ")),
                );
                for name in &names {
                    let log = LogContext {
                        logs: Arc::clone(&self.logs),
                        entity: Some(entity.location.clone()),
                        operation: None,
                    };
                    log.write(tenant, name, "host", LogLevel::Error, &error.message, &[]);
                }
                error
            })?;
        }
        Ok(())
    }
}

/// How an attempt at a job ended.
pub(crate) enum JobOutcome {
    /// `run` answered these changes; `inapplicable` is the kind handler's `applicable` answer
    /// on the entity with them (what to store, as after a hook), if it was asked.
    Done { changes: Vec<ChangeView>, inapplicable: Option<Vec<String>> },
    /// The attempt failed (the handler's error, a trap, the deadline, no such handler).
    Failed(String),
}

impl Sandbox {
    /// One attempt at `job` (`job-runner.run`) on a fresh instance of the handler that
    /// submitted it, with the job deadline, the handler's outbound capability and a read-only
    /// view of what has committed. Every failure is written to the handler's log.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_job(
        &self,
        tenant: &str,
        catalog: &Catalog,
        index: &HandlerIndex,
        limits: CallLimits,
        job: &JobRecord,
        entity: &Entity,
        max_attempts: u32,
    ) -> R<JobOutcome> {
        let view = job_view(job, entity, max_attempts);
        let mut calls = vec![Call::Job { job: view }];
        // The kind's handler says which actions apply once the job's changes are in.
        let kind_handler = bound_to(&index.bindings, entity).first() == Some(&job.handler)
            && kind_has_handler(&index.bindings, &entity.kind);
        let actions = if kind_handler { catalog.kind_actions(&entity.kind) } else { Vec::new() };
        if !actions.is_empty() {
            calls.push(Call::Applicable { entity: entity_view(entity), actions: actions.clone() });
        }
        let limits = CallLimits { job: true, ..limits };
        let note = |message: &str| self.job_note(tenant, job, LogLevel::Error, message);
        let outcomes = match self.call_job(tenant, index, job, calls, limits)? {
            Ok(outcomes) => outcomes,
            Err(why) => {
                note(&format!("job {} ({}) attempt {} failed: {why}", job.id, job.name, job.attempts));
                return Ok(JobOutcome::Failed(why));
            }
        };
        let (mut changes, mut inapplicable) = (Vec::new(), None);
        for outcome in outcomes {
            match outcome {
                Outcome::Failed(why) => {
                    note(&format!("job {} ({}) attempt {} failed: {why}", job.id, job.name, job.attempts));
                    return Ok(JobOutcome::Failed(why));
                }
                Outcome::Changes(c) => changes = c,
                Outcome::Applicable(answer) => {
                    inapplicable = Some(match answer {
                        None => Vec::new(),
                        Some(applies) => actions.iter().filter(|a| !applies.contains(a)).cloned().collect(),
                    })
                }
                Outcome::Accepted | Outcome::Refused(_) => {}
            }
        }
        Ok(JobOutcome::Done { changes, inapplicable })
    }

    /// `job-runner.failed` once the last attempt at `job` failed: the changes that put the
    /// entity in its error state (none when the call fails: that is logged).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn job_failed(
        &self,
        tenant: &str,
        index: &HandlerIndex,
        limits: CallLimits,
        job: &JobRecord,
        entity: &Entity,
        max_attempts: u32,
        reason: &str,
    ) -> R<Vec<ChangeView>> {
        let calls = vec![Call::JobFailed { job: job_view(job, entity, max_attempts), reason: reason.to_string() }];
        match self.call_job(tenant, index, job, calls, limits)? {
            Ok(outcomes) => Ok(outcomes
                .into_iter()
                .find_map(|o| match o {
                    Outcome::Changes(c) => Some(c),
                    _ => None,
                })
                .unwrap_or_default()),
            Err(why) => {
                self.job_note(tenant, job, LogLevel::Error, &format!("job {}: failed() itself failed: {why}", job.id));
                Ok(Vec::new())
            }
        }
    }

    /// A line about `job` in its handler's log (and the operator's).
    pub(crate) fn job_note(&self, tenant: &str, job: &JobRecord, level: LogLevel, message: &str) {
        let log = LogContext { logs: Arc::clone(&self.logs), entity: Some(job.entity.clone()), operation: Some("job") };
        log.write(tenant, &job.handler, "host", level, message, &[]);
    }

    /// Runs `calls` of `job`'s handler; `Err` is the attempt's failure (not the server's).
    fn call_job(
        &self,
        tenant: &str,
        index: &HandlerIndex,
        job: &JobRecord,
        calls: Vec<Call>,
        limits: CallLimits,
    ) -> R<Result<Vec<Outcome>, String>> {
        let Some(rec) = index.records.get(&job.handler) else {
            return Ok(Err(format!("handler {:?} no longer exists", job.handler)));
        };
        let step = self.store.step()?;
        let handler = self.load_handler(&step, tenant, rec)?;
        if !handler.has_job_runner() {
            return Ok(Err(format!("handler {:?} does not export job-runner (WIT 0.1.3)", job.handler)));
        }
        let fault = Arc::new(std::sync::OnceLock::new());
        let log = LogContext { logs: Arc::clone(&self.logs), entity: Some(job.entity.clone()), operation: Some("job") };
        let host: Box<dyn HostApi + Send> = Box::new(
            TenantHost::new(
                tenant,
                &job.handler,
                step,
                self.max_find_results,
                Arc::clone(&fault),
                log,
                outbound::Outbound::new(Arc::clone(&self.outbound), &rec.outbound),
            )
            .with_jobs(jobs::Submissions::closed("a job cannot submit jobs"))
            .read_only_kv(),
        );
        let runtime = self.runtime.clone();
        let (outcomes, host) = self
            .threads
            .run(move || runtime.call_each(&handler, host, calls, limits))
            .map_err(|e| ApiError::internal(&format!("calling handler {}", job.handler), e))?;
        drop(host);
        if let Some(fault) = fault.get() {
            return Ok(Err(format!("the host could not answer: {fault}")));
        }
        Ok(outcomes.map_err(|e| e.to_string()))
    }
}

fn job_view(job: &JobRecord, entity: &Entity, max_attempts: u32) -> JobView {
    JobView {
        id: job.id.clone(),
        name: job.name.clone(),
        payload: job.payload.clone(),
        entity: entity_view(entity),
        attempt: job.attempts,
        max_attempts,
    }
}

fn refused(name: &str, reasons: Vec<RefusalView>) -> ApiError {
    let conflict = reasons.iter().any(|r| matches!(r, RefusalView::Conflict(_)));
    let details: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
    let status = if conflict { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
    ApiError {
        status,
        message: format!("handler {name:?} refused: {}", details.first().cloned().unwrap_or_default()),
        details,
        headers: Vec::new(),
    }
}

/// Applies a handler's attribute changes to `e` (never its id or link ends).
pub(crate) fn apply_changes(name: &str, e: &mut Entity, changes: Vec<ChangeView>) -> R<()> {
    for change in changes {
        let attr = match &change {
            ChangeView::Set(a) => a.name.as_str(),
            ChangeView::Remove(n) => n.as_str(),
        };
        if matches!(attr, "occi.core.id" | "occi.core.source" | "occi.core.target") {
            return Err(ApiError::new(StatusCode::BAD_GATEWAY, format!("handler {name:?} may not change {attr}")));
        }
        match change {
            ChangeView::Set(a) => {
                let v = value_of(&a.value).map_err(|why| {
                    ApiError::new(StatusCode::BAD_GATEWAY, format!("handler {name:?} set {} to {why}", a.name))
                })?;
                e.attributes.insert(a.name, v);
            }
            ChangeView::Remove(n) => {
                e.attributes.remove(&n);
            }
        }
    }
    Ok(())
}
