//! [`Runtime`]: the one wasmtime `Engine` (pooling allocator, epoch ticker), compiling uploads
//! into [`Handler`]s cached in memory and on disk, and running one call per fresh `Store`.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline};

use crate::bindings::{Attribute, Exports};
use crate::config::{CallLimits, EPOCH_TICK, LOWERED_TICK, RuntimeConfig};
use crate::error::{CallError, RuntimeError, UploadError};
use crate::host::{self, LimitHit, MAX_HANDLES, StoreData};
use crate::types::{Call, ChangeView, HostApi, LogLevel, NullHost, Outcome, RefusalView};

/// Stack of the compile worker threads (Cranelift and the validator recurse on deep nesting).
const COMPILE_STACK: usize = 8 << 20;

/// Runs tenants' handler components. Cheap to clone (an `Arc` inside), `Send + Sync`.
///
/// One wasmtime `Engine` with the pooling allocator sized from the [`RuntimeConfig`], one
/// `Linker`, and a thread (`ocni-epoch`) that advances the engine's epoch every [`EPOCH_TICK`]
/// while a call runs (and sleeps while none does). The thread stops, and is joined, when the
/// last clone is dropped.
///
/// At every tick a running call checks its wall-clock deadline (so a call ends within a tick of
/// it); a short call never reaches a tick.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: wasmtime::component::Linker<StoreData>,
    config: RuntimeConfig,
    cache_dir: PathBuf,
    /// First 16 hex digits of the SHA-256 of the engine's precompile compatibility hash.
    engine_hash: String,
    handlers: RwLock<HashMap<String, Arc<Handler>>>,
    compiled: AtomicU64,
    compiles_in_flight: Arc<AtomicUsize>,
    calls: Arc<Permits>,
    /// Dropped last: stops and joins the ticker thread.
    _ticker: Ticker,
}

/// A compiled handler component, ready to be instantiated: get one from [`Runtime::load`] and
/// pass it to [`Runtime::call_each`] of the same runtime.
pub struct Handler {
    digest: String,
    pre: InstancePre<StoreData>,
    exports: Exports,
    /// Whether this handler's last call used more than `yield_after` of CPU time: its next call
    /// then starts at idle priority (see `crate::priority`).
    long: AtomicBool,
}

impl Handler {
    /// The SHA-256 (lowercase hex) of the component's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether this handler's last call used more than `yield_after` of CPU time: its next call
    /// then starts at idle priority (see [`thread_yielded`](crate::thread_yielded)).
    pub fn runs_long(&self) -> bool {
        self.long.load(Ordering::Relaxed)
    }

    /// Whether the component exports the optional `actions` interface (since 0.1.1): only then
    /// does [`Call::Applicable`] call into it.
    pub fn has_actions(&self) -> bool {
        self.exports.has_actions()
    }

    /// Whether the component exports the optional `job-runner` interface (since 0.1.3): only
    /// then may it submit jobs, and does [`Call::Job`] call into it.
    pub fn has_job_runner(&self) -> bool {
        self.exports.has_job_runner()
    }
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler").field("digest", &self.digest).finish_non_exhaustive()
    }
}

/// An upload that [`Runtime::compile`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The SHA-256 (lowercase hex) of the uploaded bytes: the key for [`Runtime::load`].
    pub digest: String,
    /// The upload's size in bytes.
    pub size: usize,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cache_dir", &self.inner.cache_dir)
            .field("engine_hash", &self.inner.engine_hash)
            .field("compiled_count", &self.compiled_count())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Starts a runtime: builds the engine and its pool, the linker, and the epoch ticker, and
    /// creates `cache_dir` (where compiled artifacts live) if needed. Artifacts left there by
    /// another wasmtime version or engine configuration are deleted.
    pub fn new(config: RuntimeConfig, cache_dir: &Path) -> Result<Runtime, RuntimeError> {
        config.check()?;
        fs::create_dir_all(cache_dir)
            .map_err(|source| RuntimeError::Cache { path: cache_dir.to_path_buf(), source })?;
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| RuntimeError::Config(format!("cannot create the wasmtime engine: {e:#}")))?;
        let linker = host::linker(&engine)
            .map_err(|e| RuntimeError::Config(format!("cannot build the handler linker: {e:#}")))?;
        let engine_hash = compatibility_hash(&engine);
        prune_stale_artifacts(cache_dir, &engine_hash);
        let calls = Arc::new(Permits::new(config.max_concurrent_calls));
        let ticker = Ticker::start(engine.clone(), Arc::clone(&calls))
            .map_err(|e| RuntimeError::Config(format!("cannot start the epoch ticker thread: {e}")))?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                config,
                cache_dir: cache_dir.to_path_buf(),
                engine_hash,
                handlers: RwLock::default(),
                compiled: AtomicU64::new(0),
                compiles_in_flight: Arc::default(),
                calls,
                _ticker: ticker,
            }),
        })
    }

    /// Accepts an upload: checks it is a binary component within the size limit, compiles it in
    /// a worker thread bounded by `compile_timeout` (unless this digest is already in memory or
    /// in the cache directory), checks it is a component of `ocni:handler/handler-world@0.1.x`
    /// whose imports the runtime offers (anything importing `wasi:http` or other unknown
    /// imports is refused with the reason) and that it instantiates within the
    /// limits, then writes the compiled artifact to
    /// `cache_dir/<sha256>-<engine hash>.cwasm` and keeps the handler in memory.
    ///
    /// Blocks for the compilation (tens of milliseconds for a small Rust component, seconds for
    /// large ones): call it from a blocking thread.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, UploadError> {
        let inner = &*self.inner;
        let max = inner.config.max_component_bytes;
        if bytes.len() > max {
            return Err(UploadError::TooLarge { size: bytes.len(), max });
        }
        check_header(bytes)?;
        let digest = sha256_hex(bytes);
        let compiled = Compiled { digest: digest.clone(), size: bytes.len() };
        // Already in memory or in the artifact cache (an unusable artifact is deleted there).
        match self.load(&digest) {
            Ok(_) => return Ok(compiled),
            Err(RuntimeError::NotCompiled(_)) => {}
            Err(e) => return Err(UploadError::Internal(e.to_string())),
        }

        let started = Instant::now();
        let component = self.compile_in_worker(bytes)?;
        inner.compiled.fetch_add(1, Ordering::Relaxed);
        let compile_ms = started.elapsed().as_millis() as u64;

        let component_type = component.component_type();
        let refused = component_type
            .imports(&inner.engine)
            .filter_map(|(name, _)| host::refused_import(name).map(|refusal| (name, refusal)))
            .min_by_key(|(_, refusal)| refusal.rank);
        if let Some((name, refusal)) = refused {
            return Err(UploadError::Import { import: name.to_string(), reason: refusal.reason.to_string() });
        }
        let pre = inner.linker.instantiate_pre(&component).map_err(|e| UploadError::World(format!("{e:#}")))?;
        let exports = Exports::new(&pre).map_err(|e| UploadError::World(format!("{e:#}")))?;
        self.probe(&pre, &exports)?;

        let artifact = component.serialize().map_err(|e| UploadError::Internal(format!("serializing: {e:#}")))?;
        let path = self.artifact_path(&digest);
        write_atomically(&path, &artifact)
            .map_err(|e| UploadError::Internal(format!("writing {}: {e}", path.display())))?;
        self.insert(Handler { digest: digest.clone(), pre, exports, long: AtomicBool::new(false) });
        tracing::info!(digest, size = bytes.len(), artifact_size = artifact.len(), compile_ms, "handler compiled");
        Ok(compiled)
    }

    /// The ready handler for `digest`: from memory, else from the compiled artifact in the
    /// cache directory (written by [`Runtime::compile`]; client bytes are never deserialized),
    /// else [`RuntimeError::NotCompiled`], and the caller compiles the stored bytes again. An
    /// artifact that cannot be used (corrupt, or no longer fitting the linker) is deleted and
    /// reported as not compiled.
    pub fn load(&self, digest: &str) -> Result<Arc<Handler>, RuntimeError> {
        if !is_digest(digest) {
            return Err(RuntimeError::InvalidDigest(digest.to_string()));
        }
        if let Some(handler) = self.cached(digest) {
            return Ok(handler);
        }
        let path = self.artifact_path(digest);
        if !path.is_file() {
            return Err(RuntimeError::NotCompiled(digest.to_string()));
        }
        self.load_artifact(digest, &path).map_err(|reason| {
            tracing::warn!(digest, %reason, "cached handler artifact unusable; deleting it");
            let _ = fs::remove_file(&path);
            RuntimeError::NotCompiled(digest.to_string())
        })
    }

    /// Forgets the in-memory handler for `digest` (its artifact stays on disk); calls holding
    /// an `Arc<Handler>` finish normally. Returns whether it was loaded.
    pub fn evict(&self, digest: &str) -> bool {
        self.inner.handlers.write().unwrap_or_else(PoisonError::into_inner).remove(digest).is_some()
    }

    /// How many components this runtime has compiled (not loaded from the cache directory)
    /// since it started.
    pub fn compiled_count(&self) -> u64 {
        self.inner.compiled.load(Ordering::Relaxed)
    }

    /// Calls running at idle priority now.
    #[cfg(test)]
    pub(crate) fn lowered_calls(&self) -> usize {
        self.inner._ticker.lowered.load(Ordering::Relaxed)
    }

    /// Epoch ticks since the runtime started.
    #[cfg(test)]
    pub(crate) fn epoch_ticks(&self) -> u64 {
        self.inner._ticker.ticks.load(Ordering::Relaxed)
    }

    /// Runs `calls` in order on one fresh instance, under one deadline and one set of limits
    /// (a request's `validate` and its hook, then `applicable`, say), stopping after the first
    /// refusal. Returns the outcomes of the calls that ran. Every call's arguments are fixed up
    /// front: changes an earlier call returns are not shown to later ones, except to
    /// [`Call::Applicable`], which sees the entity with them applied.
    ///
    /// A fresh `Store` (limits, epoch deadline, optional fuel, hostcall fuel) and a new instance
    /// from the handler's `InstancePre`; the store is dropped whatever happened. `limits` may
    /// lower the deadline and the memory limit (a tenant's own limits), never raise them. `host`
    /// serves the guest's imports and is handed back, with whatever it buffered, next to the
    /// result.
    ///
    /// Runs on the calling thread and blocks for at most about twice the deadline (waiting for
    /// a free call slot, then the calls): call it from a thread with a stack of at least
    /// `max_wasm_stack` + 1 MiB. Guest log lines go to `host.log` within the per-instance
    /// budget; on failure the guest's stdout/stderr go there at warn level, and a note when
    /// lines were dropped.
    pub fn call_each(
        &self,
        handler: &Handler,
        host: Box<dyn HostApi + Send>,
        calls: Vec<Call>,
        limits: CallLimits,
    ) -> (Result<Vec<Outcome>, CallError>, Box<dyn HostApi + Send>) {
        let inner = &*self.inner;
        let config = inner.config.limited(limits);
        // Joined only when a log line is written (tracing evaluates fields of enabled events).
        let exports: Vec<&'static str> = calls.iter().map(Call::export_name).collect();
        if !Engine::same(handler.pre.component().engine(), &inner.engine) {
            return (Err(CallError::Internal("the handler was compiled by another runtime".into())), host);
        }
        let Some(_slot) = inner.calls.acquire(config.deadline) else {
            tracing::warn!(digest = handler.digest, export = %exports.join("+"), "no free handler call slot within the deadline");
            return (Err(CallError::Busy), host);
        };
        let started = Instant::now();
        let cpu_at_start = crate::priority::thread_cpu_time();
        let start_lowered = config.yield_after.is_some() && handler.runs_long();
        let mut store = match self.new_store(host, &config, start_lowered) {
            Ok(store) => store,
            Err((e, host)) => return (Err(e), host),
        };
        let result = run(handler, &mut store, calls);
        let cpu = crate::priority::thread_cpu_time().saturating_sub(cpu_at_start);
        handler.long.store(config.yield_after.is_some_and(|after| cpu >= after), Ordering::Relaxed);
        let elapsed_us = started.elapsed().as_micros() as u64;
        let result = result.map_err(|failure| classify(failure, store.data(), &config));
        let data = store.into_data();
        let host = report(data, &result, &handler.digest);
        match &result {
            Ok(_) => tracing::debug!(digest = handler.digest, export = %exports.join("+"), elapsed_us, "handler call"),
            Err(e) if e.is_server_fault() => {
                tracing::warn!(digest = handler.digest, export = %exports.join("+"), elapsed_us, error = %e, "handler call failed")
            }
            Err(e) => {
                tracing::info!(digest = handler.digest, export = %exports.join("+"), elapsed_us, error = %e, "handler call failed")
            }
        }
        (result, host)
    }

    fn cached(&self, digest: &str) -> Option<Arc<Handler>> {
        self.inner.handlers.read().unwrap_or_else(PoisonError::into_inner).get(digest).cloned()
    }

    /// Keeps `handler` in memory unless a concurrent compile or load got there first.
    fn insert(&self, handler: Handler) -> Arc<Handler> {
        let mut handlers = self.inner.handlers.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(handlers.entry(handler.digest.clone()).or_insert_with(|| Arc::new(handler)))
    }

    fn artifact_path(&self, digest: &str) -> PathBuf {
        self.inner.cache_dir.join(format!("{digest}-{}.cwasm", self.inner.engine_hash))
    }

    /// Deserializes and links the artifact at `path` (which must be one `compile` wrote).
    fn load_artifact(&self, digest: &str, path: &Path) -> Result<Arc<Handler>, String> {
        let inner = &*self.inner;
        let started = Instant::now();
        let component = deserialize_artifact(&inner.engine, path).map_err(|e| format!("deserializing: {e:#}"))?;
        let pre = inner.linker.instantiate_pre(&component).map_err(|e| format!("linking: {e:#}"))?;
        let exports = Exports::new(&pre).map_err(|e| format!("checking exports: {e:#}"))?;
        let handler = self.insert(Handler { digest: digest.to_string(), pre, exports, long: AtomicBool::new(false) });
        tracing::debug!(digest, load_us = started.elapsed().as_micros() as u64, "handler loaded from cache");
        Ok(handler)
    }

    /// Compiles `bytes` on a worker thread; gives up waiting after `compile_timeout`. A timed-out
    /// compilation cannot be interrupted: it keeps its in-flight slot until it ends, so at most
    /// `max_concurrent_compiles` run at once.
    fn compile_in_worker(&self, bytes: &[u8]) -> Result<Component, UploadError> {
        let inner = &*self.inner;
        let in_flight = &inner.compiles_in_flight;
        if in_flight.fetch_add(1, Ordering::SeqCst) >= inner.config.max_concurrent_compiles {
            in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(UploadError::Busy);
        }
        let slot = InFlight(Arc::clone(in_flight));
        let engine = inner.engine.clone();
        let bytes = bytes.to_vec();
        let (tx, rx) = mpsc::sync_channel(1);
        thread::Builder::new()
            .name("ocni-compile".into())
            .stack_size(COMPILE_STACK)
            .spawn(move || {
                let result = Component::new(&engine, &bytes);
                // Free the slot before answering, so the caller may compile again at once.
                drop(slot);
                let _ = tx.send(result);
            })
            .map_err(|e| UploadError::Internal(format!("cannot start a compile thread: {e}")))?;
        match rx.recv_timeout(inner.config.compile_timeout) {
            Ok(Ok(component)) => Ok(component),
            Ok(Err(e)) => Err(UploadError::Invalid(format!("{e:#}"))),
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(timeout_s = inner.config.compile_timeout.as_secs_f64(), "handler compilation timed out");
                Err(UploadError::CompileTimeout(inner.config.compile_timeout))
            }
            Err(RecvTimeoutError::Disconnected) => Err(UploadError::Internal("the compile thread panicked".into())),
        }
    }

    /// Instantiates once with a [`NullHost`], under the call limits, to refuse at upload what
    /// could never run (a memory or table larger than allowed, too many instances, a start
    /// function that traps or loops, exports of the wrong types).
    fn probe(&self, pre: &InstancePre<StoreData>, exports: &Exports) -> Result<(), UploadError> {
        let inner = &*self.inner;
        let Some(_slot) = inner.calls.acquire(inner.config.deadline) else {
            return Err(UploadError::Busy);
        };
        let mut store = self
            .new_store(Box::new(NullHost), &inner.config, false)
            .map_err(|(e, _)| UploadError::Internal(e.to_string()))?;
        let instance = match pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) => {
                return Err(UploadError::Limits(
                    classify(Failure::Instantiate(e), store.data(), &inner.config).to_string(),
                ));
            }
        };
        exports.handler(&mut store, &instance).map_err(|e| UploadError::World(format!("export `handler`: {e:#}")))?;
        exports.actions(&mut store, &instance).map_err(|e| UploadError::World(format!("export `actions`: {e:#}")))?;
        exports
            .job_runner(&mut store, &instance)
            .map_err(|e| UploadError::World(format!("export `job-runner`: {e:#}")))?;
        Ok(())
    }

    /// A store for one call with `config`'s limits, whose epoch callback enforces the deadline
    /// and lowers the thread past `yield_after`; with `start_lowered`, lowered from the start.
    fn new_store(
        &self,
        host: Box<dyn HostApi + Send>,
        config: &RuntimeConfig,
        start_lowered: bool,
    ) -> Result<Store<StoreData>, (CallError, Box<dyn HostApi + Send>)> {
        let inner = &*self.inner;
        let mut store = Store::new(&inner.engine, StoreData::new(host, config));
        store.limiter(|data| &mut data.limiter);
        // The first check comes at the next tick; then one at every tick.
        let deadline = store.data().deadline;
        // Time the thread waits for a core is the machine's doing, not the call's: it moves the
        // deadline (`StoreData::deadline`, which outbound requests started later follow too) by
        // as much, up to `max_core_wait`. Without this a call lowered to idle priority (below),
        // or one of many sharing the cores, ends in a timeout it did not earn.
        let waited_at_start = crate::priority::core_wait();
        let max_core_wait = config.max_core_wait();
        // CPU time, not wall-clock time: a short call that waits for a busy core does not yield.
        let mut yield_at = config.yield_after.map(|d| crate::priority::thread_cpu_time() + d);
        let mut lowered_call = LoweredCall { running: Arc::clone(&inner._ticker.lowered), counted: false };
        if start_lowered {
            yield_at = None;
            crate::priority::yield_thread();
        }
        if crate::priority::thread_yielded() {
            lowered_call.count();
        }
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            let now = Instant::now();
            if now >= ctx.data().deadline {
                let moved = waited_at_start
                    .zip(crate::priority::core_wait())
                    .map(|(start, waited)| deadline + waited.saturating_sub(start).min(max_core_wait));
                match moved {
                    Some(moved) if now < moved => ctx.data_mut().deadline = moved,
                    _ => return Err(Trap::Interrupt.into()),
                }
            }
            if crate::priority::thread_yielded() {
                crate::priority::give_way();
            } else if yield_at.is_some_and(|at| crate::priority::thread_cpu_time() >= at) {
                yield_at = None;
                crate::priority::yield_thread();
                if crate::priority::thread_yielded() {
                    lowered_call.count();
                }
            }
            Ok(UpdateDeadline::Continue(1))
        });
        if let Some(fuel) = config.fuel
            && let Err(e) = store.set_fuel(fuel)
        {
            let host = store.into_data().host;
            return Err((CallError::Internal(format!("cannot set fuel: {e:#}")), host));
        }
        store.set_hostcall_fuel(config.max_hostcall_bytes);
        store.set_max_component_handles(MAX_HANDLES);
        Ok(store)
    }
}

/// Where a call failed.
enum Failure {
    /// Creating the instance (pool or store limits, a trapping start function).
    Instantiate(wasmtime::Error),
    /// Running the export.
    Call(wasmtime::Error),
}

fn run(handler: &Handler, store: &mut Store<StoreData>, calls: Vec<Call>) -> Result<Vec<Outcome>, Failure> {
    let instance = handler.pre.instantiate(&mut *store).map_err(Failure::Instantiate)?;
    // Type-checks the exports (done at upload too, so this fails only on a broken invariant).
    let guest = handler.exports.handler(&mut *store, &instance).map_err(Failure::Instantiate)?;
    let mut outcomes = Vec::with_capacity(calls.len());
    // The changes the calls so far returned, for `Call::Applicable`.
    let mut changed: Vec<ChangeView> = Vec::new();
    for call in calls {
        let outcome = run_one(handler, &instance, &guest, store, call, &changed)?;
        if let Outcome::Changes(c) = &outcome {
            changed.extend(c.iter().cloned());
        }
        let refused = matches!(outcome, Outcome::Refused(_));
        outcomes.push(outcome);
        if refused {
            break;
        }
    }
    Ok(outcomes)
}

/// One call on `instance`; `guest` is its `handler` interface, `changed` what the calls before
/// this one changed.
fn run_one(
    handler: &Handler,
    instance: &wasmtime::component::Instance,
    guest: &crate::bindings::exports::ocni::handler::handler::Guest,
    store: &mut Store<StoreData>,
    call: Call,
    changed: &[ChangeView],
) -> Result<Outcome, Failure> {
    let changes = |result: Result<Vec<crate::bindings::Change>, crate::bindings::Refusal>| match result {
        Ok(changes) => Outcome::Changes(changes.into_iter().map(ChangeView::from).collect()),
        Err(refusal) => Outcome::Refused(vec![refusal.into()]),
    };
    let outcome = match call {
        Call::Validate { entity, op } => match guest.call_validate(&mut *store, &entity.into(), op.into()) {
            Ok(Ok(())) => Outcome::Accepted,
            Ok(Err(refusals)) if refusals.is_empty() => {
                Outcome::Refused(vec![RefusalView::Other("the handler refused without giving a reason".into())])
            }
            Ok(Err(refusals)) => Outcome::Refused(refusals.into_iter().map(RefusalView::from).collect()),
            Err(e) => return Err(Failure::Call(e)),
        },
        Call::Create { entity } => changes(guest.call_on_create(&mut *store, &entity.into()).map_err(Failure::Call)?),
        Call::Update { old, new } => {
            changes(guest.call_on_update(&mut *store, &old.into(), &new.into()).map_err(Failure::Call)?)
        }
        Call::Delete { entity } => match guest.call_on_delete(&mut *store, &entity.into()).map_err(Failure::Call)? {
            Ok(()) => Outcome::Accepted,
            Err(refusal) => Outcome::Refused(vec![refusal.into()]),
        },
        Call::Action { entity, action, params } => {
            let params: Vec<Attribute> = params.into_iter().map(Attribute::from).collect();
            changes(guest.call_on_action(&mut *store, &entity.into(), &action, &params).map_err(Failure::Call)?)
        }
        Call::Applicable { mut entity, actions } => {
            entity.apply(changed);
            // A component built against 0.1.0 does not export `actions`: it has no say.
            match handler.exports.actions(&mut *store, instance).map_err(Failure::Call)? {
                None => Outcome::Applicable(None),
                Some(exported) => Outcome::Applicable(Some(
                    exported.call_applicable(&mut *store, &entity.into(), &actions).map_err(Failure::Call)?,
                )),
            }
        }
        Call::Job { job } => match handler.exports.job_runner(&mut *store, instance).map_err(Failure::Call)? {
            None => Outcome::Failed("the handler does not export job-runner (WIT 0.1.3)".into()),
            Some(runner) => match runner.call_run(&mut *store, &job.into()).map_err(Failure::Call)? {
                Ok(changes) => Outcome::Changes(changes.into_iter().map(ChangeView::from).collect()),
                Err(reason) => Outcome::Failed(reason),
            },
        },
        Call::JobFailed { job, reason } => {
            match handler.exports.job_runner(&mut *store, instance).map_err(Failure::Call)? {
                None => Outcome::Changes(Vec::new()),
                Some(runner) => Outcome::Changes(
                    runner
                        .call_failed(&mut *store, &job.into(), &reason)
                        .map_err(Failure::Call)?
                        .into_iter()
                        .map(ChangeView::from)
                        .collect(),
                ),
            }
        }
    };
    Ok(outcome)
}

/// Maps a failure to the error the client sees.
fn classify(failure: Failure, data: &StoreData, config: &RuntimeConfig) -> CallError {
    let memory_limit = CallError::MemoryLimit { limit_bytes: config.max_memory_bytes };
    let table_limit =
        || CallError::ResourceLimit(format!("a table would grow past {} elements", config.max_table_elements));
    let error = match failure {
        Failure::Instantiate(e) => {
            return match data.limiter.hit {
                Some(LimitHit::Memory) => memory_limit,
                Some(LimitHit::Table) => table_limit(),
                None => match e.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => CallError::Timeout { limit: config.deadline },
                    Some(Trap::OutOfFuel) => CallError::OutOfFuel { fuel: config.fuel.unwrap_or(0) },
                    Some(trap) => CallError::Trap(format!("while starting: {trap}")),
                    None => CallError::ResourceLimit(format!("{e:#}")),
                },
            };
        }
        Failure::Call(e) => e,
    };
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => CallError::Timeout { limit: config.deadline },
            Trap::OutOfFuel => CallError::OutOfFuel { fuel: config.fuel.unwrap_or(0) },
            Trap::StackOverflow => CallError::StackOverflow,
            _ => match data.limiter.hit {
                Some(LimitHit::Memory) => memory_limit,
                Some(LimitHit::Table) => table_limit(),
                None => CallError::Trap(trap.to_string()),
            },
        };
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return CallError::Trap(format!("the handler called exit({})", exit.0));
    }
    let message = format!("{error:#}");
    if message.contains("fuel allocated for hostcalls has been exhausted") {
        return CallError::OutputTooLarge { limit_bytes: config.max_hostcall_bytes };
    }
    match data.limiter.hit {
        Some(LimitHit::Memory) => memory_limit,
        Some(LimitHit::Table) => table_limit(),
        None => CallError::Trap(message),
    }
}

/// After a call: tells the host about dropped log lines and, when the call failed, what the
/// guest printed; returns the host.
fn report<T>(data: StoreData, result: &Result<T, CallError>, digest: &str) -> Box<dyn HostApi + Send> {
    let (dropped_lines, dropped_bytes, budget) = data.dropped_logs();
    let mut host = data.host;
    if dropped_lines > 0 {
        tracing::warn!(digest, dropped_lines, dropped_bytes, "handler log lines dropped past the per-call budget");
        let message = format!(
            "{dropped_lines} log line(s) ({dropped_bytes} bytes) dropped: the budget is {budget} bytes per call"
        );
        host.log(LogLevel::Warn, &message, &[]);
    }
    // The guest's stdout/stderr only matter when the call failed.
    let console = result.is_err().then(|| data.console.contents());
    if let Some((console, console_dropped)) = console.filter(|(c, _)| !c.is_empty()) {
        let mut fields = vec![("source".to_string(), "stdout/stderr".to_string())];
        if console_dropped > 0 {
            fields.push(("dropped_bytes".to_string(), console_dropped.to_string()));
        }
        host.log(LogLevel::Warn, &console, &fields);
    }
    host
}

/// Refuses what is not a binary component before compiling.
fn check_header(bytes: &[u8]) -> Result<(), UploadError> {
    if Engine::detect_precompiled(bytes).is_some() {
        return Err(UploadError::Precompiled);
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(UploadError::NotWasm);
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(UploadError::NotAComponent),
        _ => Err(UploadError::Invalid("unknown WebAssembly binary version".into())),
    }
}

fn engine_config(config: &RuntimeConfig) -> wasmtime::Config {
    // `check` made sure these products fit in u32.
    let n = |count: usize| u32::try_from(count.saturating_mul(config.max_concurrent_calls)).unwrap_or(u32::MAX);
    let per_call = |count: usize| u32::try_from(count).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n(1))
        .total_core_instances(n(config.max_instances))
        .total_memories(n(config.max_memories))
        .total_tables(n(config.max_tables))
        .total_stacks(n(1))
        .max_core_instances_per_component(per_call(config.max_instances))
        .max_memories_per_component(per_call(config.max_memories))
        .max_tables_per_component(per_call(config.max_tables))
        .max_memories_per_module(1)
        .max_tables_per_module(per_call(config.max_tables.min(2)))
        .table_elements(config.max_table_elements)
        .max_memory_size(config.max_memory_bytes)
        // Reuse warm slots with memset instead of madvise for small instances: measured here to
        // nearly double throughput with 2 threads (wasm-notes 1.3).
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10)
        // With Linux's PAGEMAP_SCAN (6.7+), reset only the pages a call dirtied instead of the
        // whole kept-resident MiB: one call (fresh instance + validate) went from p50 31 us to
        // 10-15 us (`ocni-bench handlers`). Falls back to plain memset on older kernels.
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut wasm = wasmtime::Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(config.fuel.is_some())
        .max_wasm_stack(config.max_wasm_stack)
        .parallel_compilation(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm
}

/// Hex of the first 8 bytes of SHA-256 over the engine's precompile compatibility hash: changes
/// with the wasmtime version and any engine setting that affects compiled code.
fn compatibility_hash(engine: &Engine) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex(&hasher.0.finalize()[..8])
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Deletes `<digest>-<hash>.cwasm` files whose engine hash is not `keep`.
fn prune_stale_artifacts(dir: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".cwasm")) else { continue };
        let Some((digest, hash)) = stem.split_once('-') else { continue };
        if is_digest(digest) && hash.len() == keep.len() && hash != keep {
            match fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = %entry.path().display(), "deleted handler artifact of another engine"),
                Err(e) => tracing::warn!(file = %entry.path().display(), error = %e, "cannot delete stale artifact"),
            }
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it into place, so a
/// reader never sees a partial artifact.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Loads an artifact written by [`Runtime::compile`].
#[allow(unsafe_code)]
fn deserialize_artifact(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize_file` requires bytes produced by `Component::serialize`
    // (or `Engine::precompile_component`), unmodified. `path` is
    // `<cache_dir>/<sha256>-<engine hash>.cwasm`, built by `artifact_path` from a checked digest;
    // only `Runtime::compile` writes such files, with `Component::serialize` output, atomically
    // (temporary file + rename). Client bytes are never written there (`compile` refuses
    // precompiled uploads). The cache directory must be owned by the server (see the crate docs).
    unsafe { Component::deserialize_file(engine, path) }
}

/// Decrements the in-flight compile count when the worker ends.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A counting semaphore for call slots (the pool is sized for `max_concurrent_calls` calls),
/// which also tells the epoch ticker whether any call runs.
struct Permits {
    state: Mutex<Slots>,
    /// A slot was freed (callers waiting for one).
    freed: Condvar,
    /// A call started, or the runtime is stopping (the ticker waiting for work).
    changed: Condvar,
}

struct Slots {
    free: usize,
    total: usize,
    stopping: bool,
}

struct Permit<'a>(&'a Permits);

impl Permits {
    fn new(count: usize) -> Permits {
        let slots = Slots { free: count, total: count, stopping: false };
        Permits { state: Mutex::new(slots), freed: Condvar::new(), changed: Condvar::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn acquire(&self, timeout: Duration) -> Option<Permit<'_>> {
        let deadline = Instant::now() + timeout;
        let mut slots = self.lock();
        while slots.free == 0 {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            slots = self.freed.wait_timeout(slots, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        if slots.free == slots.total {
            self.changed.notify_one();
        }
        slots.free -= 1;
        Some(Permit(self))
    }

    /// Waits until a call runs; `false` once the runtime stops.
    fn wait_for_calls(&self) -> bool {
        let mut slots = self.lock();
        while slots.free == slots.total && !slots.stopping {
            slots = self.changed.wait(slots).unwrap_or_else(PoisonError::into_inner);
        }
        !slots.stopping
    }

    fn stop(&self) {
        self.lock().stopping = true;
        self.changed.notify_all();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.lock().free += 1;
        self.0.freed.notify_one();
    }
}

/// Counts a call among those running at idle priority from when it is lowered until its store
/// (which owns this, in its epoch callback) is dropped.
struct LoweredCall {
    running: Arc<AtomicUsize>,
    counted: bool,
}

impl LoweredCall {
    fn count(&mut self) {
        if !self.counted {
            self.counted = true;
            self.running.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for LoweredCall {
    fn drop(&mut self) {
        if self.counted {
            self.running.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The epoch ticker thread; dropping this stops and joins it.
struct Ticker {
    calls: Arc<Permits>,
    /// Ticks so far (for the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    ticks: Arc<AtomicU64>,
    /// Calls running at idle priority: while there is one, the ticker ticks every
    /// [`LOWERED_TICK`].
    lowered: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, calls: Arc<Permits>) -> std::io::Result<Ticker> {
        let waiting = Arc::clone(&calls);
        let ticks = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&ticks);
        let lowered = Arc::new(AtomicUsize::new(0));
        let running_lowered = Arc::clone(&lowered);
        let thread = thread::Builder::new().name("ocni-epoch".into()).spawn(move || {
            // Ticks only while a call runs: an idle server has no timer wake-ups.
            while waiting.wait_for_calls() {
                thread::sleep(if running_lowered.load(Ordering::Relaxed) > 0 { LOWERED_TICK } else { EPOCH_TICK });
                engine.increment_epoch();
                counted.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        Ok(Ticker { calls, ticks, lowered, thread: Some(thread) })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.calls.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
