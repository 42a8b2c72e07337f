//! What every operation is served with ([`Services`]): the store, the per-tenant view cache
//! (catalog and handler bindings by catalog generation), the prepare-then-apply loop of writes
//! ([`Services::write`]), handler runs and the tenancy. The OCCI operations (`occi/`) take a
//! `&Services`; only `app.rs` builds one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use hyper::StatusCode;
use ocni_model::catalog::parse_category_file;
use ocni_model::{Catalog, Entity};
use ocni_store::{Applied, Reads, Step, Store};

use crate::config::Config;
use crate::error::ApiError;
use crate::reply::{Framed, R};
use crate::sandbox::{HandlerIndex, HandlerLogs, Sandbox, Signal, Stage, Write, outbound};
use crate::tenancy::{Tenancy, limit_reached};
use crate::writer::Writer;

/// How many times a write is prepared again after conflicting with concurrent writes.
pub(crate) const MAX_ATTEMPTS: usize = 8;

/// What became of a step handed to the writer (refusals are errors).
pub(crate) enum Settled {
    /// Written; the tenants whose catalog generation moved, with their new generation.
    Written(Vec<(String, u64)>),
    /// Something the step read has changed: prepare it again.
    Changed { table: &'static str, key: String },
}

/// The shared state every operation is served with.
pub struct Services {
    pub store: Arc<Store>,
    pub config: Config,
    /// The server's mode, tokens and tenants' limits.
    pub tenancy: Tenancy,
    /// Built-in categories plus the operator's templates.
    base: Catalog,
    /// Per tenant, what its requests are prepared with (catalog and handlers), by generation.
    views: parking_lot::RwLock<HashMap<String, ViewSlot>>,
    /// Applies prepared writes (group commit, see `writer.rs`).
    writer: Writer,
    /// Runs handler calls (see `sandbox/`).
    pub(crate) sandbox: Sandbox,
    /// Answers to single-entity GETs, as of one count of store commits.
    rendered: parking_lot::RwLock<Rendered>,
    /// Wakes the job runner (`jobs.rs`) when a write that submitted jobs has committed.
    pub(crate) jobs: Arc<Signal>,
}

/// Answers to single-entity GETs by tenant, path, rendering and base URL, all rendered from
/// snapshots taken while the store had committed `commits` times (with the tenant's catalog of
/// that snapshot). Any commit makes them all stale: the first request that sees a newer count
/// empties the cache, so a write is visible to every GET after its answer.
#[derive(Default)]
struct Rendered {
    commits: u64,
    bytes: usize,
    answers: HashMap<String, Framed>,
}

/// What the rendered answers may hold in all (their bodies and header values).
const RENDERED_BYTES: usize = 16 << 20;

/// A tenant's catalog (the built-in categories, the operator's templates and its own) and
/// handler bindings, as of one catalog generation of the store.
pub(crate) struct TenantView {
    pub generation: u64,
    pub catalog: Arc<Catalog>,
    pub handlers: Arc<HandlerIndex>,
}

/// The cached view of a tenant, and the lowest generation a view may have to be cached (a
/// view read from a snapshot older than a committed change is not).
#[derive(Default)]
struct ViewSlot {
    min_generation: u64,
    view: Option<Arc<TenantView>>,
}

impl Services {
    /// Loads the tenancy and the operator's templates, and starts the writer and sandbox
    /// threads.
    pub fn start(store: Store, runtime: ocni_runtime::Runtime, config: Config) -> Result<Services, String> {
        let mut base = Catalog::builtin();
        if let Some(path) = &config.templates {
            let text = std::fs::read_to_string(path).map_err(|e| format!("templates file {}: {e}", path.display()))?;
            let mut extra =
                parse_category_file(&text).map_err(|e| format!("templates file {}: {e}", path.display()))?;
            for c in &mut extra {
                c.builtin = true;
            }
            base = base.add(extra).map_err(|e| format!("templates file {}: {e}", path.display()))?;
        }
        let tenancy = Tenancy::load(&store, &config)?;
        let store = Arc::new(store);
        let per_tenant = tenancy.is_multi_tenant().then_some(config.handler_calls_per_tenant);
        let logs = HandlerLogs::new(config.handler_log_lines, config.handler_log_bytes);
        let patterns =
            config.handler_allow_outbound.iter().map(|p| outbound::Pattern::parse(p)).collect::<Result<Vec<_>, _>>()?;
        let outbound = outbound::Policy {
            patterns,
            allow_private: config.handler_allow_private,
            max_requests: config.handler_outbound_requests,
            max_bytes_out: config.handler_outbound_bytes_out,
            max_bytes_in: config.handler_outbound_bytes_in,
        };
        let sandbox = Sandbox::start(runtime, &config.runtime, Arc::clone(&store), per_tenant, logs, outbound)
            .map_err(|e| format!("cannot start the handler threads: {e}"))?;
        let writer = Writer::start(Arc::clone(&store)).map_err(|e| format!("cannot start the writer thread: {e}"))?;
        Ok(Services {
            store,
            config,
            tenancy,
            base,
            views: Default::default(),
            writer,
            sandbox,
            rendered: Default::default(),
            jobs: Arc::default(),
        })
    }

    /// The catalog of a tenant (cached).
    pub fn catalog(&self, tenant: &str) -> R<Arc<Catalog>> {
        Ok(Arc::clone(&self.view(tenant)?.catalog))
    }

    /// The catalog and handlers of a tenant as last committed (cached by catalog generation).
    /// On a shared store (etcd) other nodes change catalogs too: a cached view is checked
    /// against the generation in this node's copy (a map lookup) before it is used.
    pub(crate) fn view(&self, tenant: &str) -> R<Arc<TenantView>> {
        let shared = self.store.is_shared();
        let cached = self.views.read().get(tenant).and_then(|s| s.view.clone());
        let r = match cached {
            Some(v) if !shared => return Ok(v),
            Some(v) => {
                let r = self.store.read()?;
                if r.catalog_generation(tenant)? == v.generation {
                    return Ok(v);
                }
                r
            }
            None => self.store.read()?,
        };
        let generation = r.catalog_generation(tenant)?;
        let catalog = Arc::new(self.base.clone().with(r.categories(tenant)?));
        let handlers = Arc::new(HandlerIndex::read(&r, tenant)?);
        let view = Arc::new(TenantView { generation, catalog, handlers });
        let mut views = self.views.write();
        let slot = views.entry(tenant.to_string()).or_default();
        match &slot.view {
            // The generation of the newest copy (a tenant deleted and made again starts at 0).
            _ if shared => slot.view = Some(Arc::clone(&view)),
            // Another request read a view at least as new meanwhile.
            Some(v) if v.generation >= generation => return Ok(Arc::clone(v)),
            _ if generation >= slot.min_generation => slot.view = Some(Arc::clone(&view)),
            _ => {}
        }
        Ok(view)
    }

    /// Applies a finished step (see [`Writer::submit`]) and waits until it is durable; a
    /// step over a tenant's entity limit or over the store's transaction size is refused.
    pub(crate) fn apply(&self, set: ocni_store::WriteSet) -> R<Settled> {
        settled(self.writer.submit(set)?)
    }

    /// Whether writes may be prepared on an async worker thread and their commit awaited there
    /// (see [`prepare_in_place`]): on redb, whose writer thread answers through a channel.
    pub(crate) fn writes_in_place(&self) -> bool {
        self.writer.is_thread()
    }

    /// Applies a step prepared in place and waits (asynchronously) until it is durable; then as
    /// [`Services::write`] does after a commit. `Ok(Some(what))`: the step conflicted on
    /// `what` and wrote nothing: the request is prepared again.
    pub(crate) async fn apply_pending(&self, p: Pending) -> R<Option<String>> {
        let applied = settled(self.writer.submit_async(p.set).await?)?;
        Ok(self.settle(&p.tenant, p.generation, p.jobs, applied))
    }

    /// After a step was applied: a written one makes the tenants' cached views stale (and wakes
    /// the job runner when it submitted jobs): `None`; a conflicting one: what it conflicted on.
    fn settle(&self, tenant: &str, generation: u64, jobs: bool, settled: Settled) -> Option<String> {
        match settled {
            Settled::Written(generations) => {
                for (t, g) in generations {
                    self.forget_view(&t, g);
                }
                if jobs {
                    self.jobs.wake();
                }
                None
            }
            Settled::Changed { table, key } => {
                if table == "counters" {
                    // The catalog changed: read it again.
                    self.forget_view(tenant, generation + 1);
                }
                tracing::debug!(tenant, table, key = %key, "write conflicted; preparing it again");
                Some(format!("{table} {key:?}"))
            }
        }
    }

    /// The answer cached under `key` if nothing committed since it was rendered; `commits` is
    /// [`Store::commits`] read before anything else of the request.
    pub(crate) fn rendered(&self, key: &str, commits: u64) -> Option<Framed> {
        let cache = self.rendered.read();
        if cache.commits != commits {
            return None;
        }
        cache.answers.get(key).cloned()
    }

    /// Keeps `answer` under `key`: it was rendered from a snapshot taken after the store's
    /// commit count was `commits`, with that snapshot's catalog.
    pub(crate) fn keep_rendered(&self, key: String, commits: u64, answer: &Framed) {
        let mut cache = self.rendered.write();
        if cache.commits != commits {
            if commits < cache.commits {
                // Rendered before a commit another request has seen: stale already.
                return;
            }
            *cache = Rendered { commits, ..Rendered::default() };
        }
        let size = key.len() + answer.body.len() + answer.headers.iter().map(|(_, v)| v.len() + 32).sum::<usize>();
        if cache.bytes + size <= RENDERED_BYTES && !cache.answers.contains_key(&key) {
            cache.bytes += size;
            cache.answers.insert(key, answer.clone());
        }
    }

    /// Drops the cached view of a tenant: its catalog generation is now (at least) `generation`.
    pub(crate) fn forget_view(&self, tenant: &str, generation: u64) {
        let mut views = self.views.write();
        let slot = views.entry(tenant.to_string()).or_default();
        slot.view = None;
        slot.min_generation = slot.min_generation.max(generation);
    }

    /// Forgets all that is cached of a tenant (created or deleted).
    pub(crate) fn forget_catalog(&self, tenant: &str) {
        self.views.write().remove(tenant);
    }

    /// The handler bindings and records of `tenant` as the step `w` sees them: the cached ones
    /// unless the step changed them.
    pub(crate) fn handler_index(&self, w: &Step, tenant: &str) -> R<Arc<HandlerIndex>> {
        if w.touched(tenant) {
            return Ok(Arc::new(HandlerIndex::read(w, tenant)?));
        }
        Ok(Arc::clone(&self.view(tenant)?.handlers))
    }

    /// Puts `entity` through the handlers bound to it, with the tenant's call limits (see
    /// [`Sandbox::run`]).
    pub(crate) fn run_handlers(
        &self,
        w: &mut Write,
        tenant: &str,
        catalog: &Catalog,
        stage: Stage,
        entity: &mut Entity,
    ) -> R<()> {
        let index = self.handler_index(w, tenant)?;
        let limits = self.tenancy.call_limits(tenant);
        self.sandbox.run(w, tenant, catalog, &index, limits, stage, entity)
    }

    /// Prepares a write of `tenant` with `f` on a snapshot and has the writer apply it; answers
    /// once it is durable. `f` runs again (on a newer snapshot) when what it read changed
    /// before its step was applied, at most [`MAX_ATTEMPTS`] times; a refusal by `f` writes
    /// nothing. Blocking: runs off the async executor, unless the request is prepared in place
    /// ([`prepare_in_place`]): then `f` runs once and its step is left for the caller to apply.
    pub(crate) fn write<T>(&self, tenant: &str, mut f: impl FnMut(&mut Write, &Catalog) -> R<T>) -> R<T> {
        if IN_PLACE.with_borrow(Option::is_some) {
            return self.write_in_place(tenant, &mut f);
        }
        let mut last = String::new();
        let mut slot = None;
        let mut attempts = 0;
        while attempts < MAX_ATTEMPTS {
            match self.attempt(tenant, &mut f, slot.take(), false)? {
                Attempt::Nothing(out) => return Ok(out),
                Attempt::WantsSlot => {
                    // A handler call found the tenant's slots taken: wait for one without
                    // holding the snapshot (a long-lived read transaction keeps the store from
                    // reusing pages), then prepare again with it.
                    let slots = self.sandbox.handler_slots(tenant).expect("only multi-tenant writes want a slot");
                    slot = Some(
                        tokio::runtime::Handle::current()
                            .block_on(slots.acquire_owned())
                            .map_err(|_| ApiError::internal("calling a handler", "the server is shutting down"))?,
                    );
                }
                Attempt::WantsThread => unreachable!("only a write prepared in place refuses handler calls"),
                Attempt::Step { out, pending: p } => {
                    attempts += 1;
                    match self.settle(&p.tenant, p.generation, p.jobs, self.apply(p.set)?) {
                        None => return Ok(out),
                        Some(what) => last = what,
                    }
                }
            }
        }
        Err(kept_conflicting(&last))
    }

    /// One preparation of a write: a snapshot, the tenant's view, `f`, and the step it made.
    fn attempt<T>(
        &self,
        tenant: &str,
        f: &mut impl FnMut(&mut Write, &Catalog) -> R<T>,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        in_place: bool,
    ) -> R<Attempt<T>> {
        // A request authenticated just before its tenant was deleted must not write.
        self.tenancy.check_live(tenant)?;
        let view = self.view(tenant)?;
        let step = self.store.step()?;
        step.expect_generation(tenant, view.generation);
        // Read, so that a deletion of the tenant after this snapshot makes the step
        // conflict; one before it (another node's, not yet in this node's tenancy) refuses
        // the write here.
        if self.tenancy.is_multi_tenant() && step.tenant(tenant)?.is_none() {
            return Err(crate::tenancy::deleted_tenant());
        }
        let mut w = if in_place { Write::in_place(step) } else { Write::new(step, slot) };
        let out = match f(&mut w, &view.catalog) {
            Ok(out) => out,
            Err(_) if w.wants_slot() => return Ok(Attempt::WantsSlot),
            Err(_) if w.wants_thread() => return Ok(Attempt::WantsThread),
            Err(e) => return Err(e),
        };
        let jobs = !w.jobs().is_empty();
        // Handler calls are over: the slot goes (with `w`) before waiting for the commit.
        let set = w.into_step().finish();
        if set.is_empty() {
            return Ok(Attempt::Nothing(out));
        }
        Ok(Attempt::Step {
            out,
            pending: Pending { set, tenant: tenant.to_string(), generation: view.generation, jobs },
        })
    }

    /// [`Services::write`] of a request prepared in place: one attempt, its step left in
    /// [`IN_PLACE`] for the caller. A handler call, or a second write in the same request (it
    /// would have to see the first one applied), sends the request to a blocking thread.
    fn write_in_place<T>(&self, tenant: &str, f: &mut impl FnMut(&mut Write, &Catalog) -> R<T>) -> R<T> {
        let on_thread = || {
            IN_PLACE.set(Some(InPlace::OnThread));
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the write is prepared on a blocking thread"))
        };
        if !IN_PLACE.with_borrow(|p| matches!(p, Some(InPlace::Nothing))) {
            return on_thread();
        }
        match self.attempt(tenant, f, None, true)? {
            Attempt::Nothing(out) => Ok(out),
            Attempt::WantsSlot | Attempt::WantsThread => on_thread(),
            Attempt::Step { out, pending } => {
                IN_PLACE.set(Some(InPlace::Apply(pending)));
                Ok(out)
            }
        }
    }
}

/// A step prepared, waiting to be applied, with what settling it takes.
pub(crate) struct Pending {
    set: ocni_store::WriteSet,
    tenant: String,
    /// The tenant's catalog generation the step was prepared with.
    generation: u64,
    /// Whether it submits jobs (the job runner is woken once it is written).
    jobs: bool,
}

/// One preparation of a write.
enum Attempt<T> {
    /// Nothing to write: the answer.
    Nothing(T),
    /// The answer, once the step is applied.
    Step { out: T, pending: Pending },
    /// A handler call found the tenant's slots taken: prepare again holding one.
    WantsSlot,
    /// A handler call refused to run in place.
    WantsThread,
}

/// What a request prepared in place ([`prepare_in_place`]) left to do.
pub(crate) enum InPlace {
    /// Nothing: its answer is final.
    Nothing,
    /// Apply this step, then send the answer (or, if it conflicted, prepare the request again).
    Apply(Pending),
    /// It needs a blocking thread (a handler call, a second write): serve it there instead.
    OnThread,
}

thread_local! {
    /// Set while a request is prepared in place on this thread (see [`prepare_in_place`]).
    static IN_PLACE: RefCell<Option<InPlace>> = const { RefCell::new(None) };
}

/// Runs `serve` (a request's operation) on this async worker thread with its writes prepared in
/// place: [`Services::write`] runs its closure once and, instead of applying the step and
/// waiting for the commit (which would block the worker), leaves it in the answer's
/// [`InPlace`]; the caller awaits [`Services::apply_pending`] and, on a conflict, calls this
/// again. Saves a write without handlers the hops through a blocking thread (it is woken, it
/// waits for the writer, it wakes the worker). Only for requests whose preparation is short
/// (`App::prepares_in_place`): it holds the worker while it runs.
pub(crate) fn prepare_in_place<T>(serve: impl FnOnce() -> T) -> (T, InPlace) {
    /// Clears the state whatever happens, a panic included.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_PLACE.set(None);
        }
    }
    IN_PLACE.set(Some(InPlace::Nothing));
    let _reset = Reset;
    let out = serve();
    let left = IN_PLACE.take().unwrap_or(InPlace::Nothing);
    (out, left)
}

/// The outcome of a step handed to the writer: written or conflicting, or refused.
fn settled(applied: Applied) -> R<Settled> {
    match applied {
        Applied::Done { generations } => Ok(Settled::Written(generations)),
        Applied::Conflict { table, key } => Ok(Settled::Changed { table, key }),
        Applied::Limit { tenant, max } => Err(limit_reached(&tenant, max, "entities")),
        Applied::TooLarge { needed, max } => Err(too_many_ops(needed, max)),
    }
}

/// 503 for a write that conflicted [`MAX_ATTEMPTS`] times (`last`: what changed the last time).
pub(crate) fn kept_conflicting(last: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the write conflicted with concurrent writes {MAX_ATTEMPTS} times (last on {last}); nothing was written, try again"
        ),
    )
    .with_header("Retry-After", "1")
}

/// 413 for a write larger than one etcd transaction may be.
fn too_many_ops(needed: usize, max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "this write needs {needed} operations in one transaction and the store allows {max} (ocni serve \
             --max-txn-ops, at most etcd's own --max-txn-ops); nothing was written: split it into smaller requests \
             (fewer entities per collection request or delete)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use ocni_store::Reads;

    use super::*;
    use crate::tenancy::DEFAULT_TENANT as T;

    fn services(dir: &std::path::Path) -> Services {
        let store = Store::open(&dir.join("ocni.redb")).unwrap();
        let runtime = ocni_runtime::Runtime::new(Default::default(), &dir.join("components")).unwrap();
        Services::start(store, runtime, Config::new(dir)).unwrap()
    }

    fn kv(s: &Services, key: &str) -> Option<Vec<u8>> {
        s.store.read().unwrap().kv_get(T, "h", key).unwrap()
    }

    /// A write of `value` at `key`, answering 7.
    fn set<'a>(s: &'a Services, key: &'a str, value: &'a [u8]) -> impl FnOnce() -> R<u32> + 'a {
        move || {
            s.write(T, |w, _| {
                w.kv_set(T, "h", key, value)?;
                Ok(7)
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_write_prepared_in_place_waits_for_its_caller_who_applies_it_or_sends_it_to_a_thread() {
        let dir = tempfile::tempdir().unwrap();
        let s = services(dir.path());
        // Prepared, answered, not written until the caller applies it.
        let (out, left) = prepare_in_place(set(&s, "a", b"1"));
        assert_eq!(out.unwrap(), 7);
        let InPlace::Apply(pending) = left else { panic!("a prepared write left no step") };
        assert_eq!(kv(&s, "a"), None);
        assert_eq!(s.apply_pending(pending).await.unwrap(), None);
        assert_eq!(kv(&s, "a").as_deref(), Some(&b"1"[..]));

        // A request that writes twice needs the first write applied before it prepares the
        // second: it is sent to a blocking thread, having written nothing.
        let (out, left) = prepare_in_place(|| set(&s, "b", b"1")().and_then(|_| set(&s, "c", b"1")()));
        assert_eq!(out.unwrap_err().status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(left, InPlace::OnThread));

        // A step whose read changed before it was applied writes nothing and says on what.
        let copy = || {
            s.write(T, |w, _| {
                let v = w.kv_get(T, "h", "a")?.unwrap_or_default();
                w.kv_set(T, "h", "copy", &v)?;
                Ok(())
            })
        };
        let (out, stale) = prepare_in_place(copy);
        out.unwrap();
        let (_, change) = prepare_in_place(set(&s, "a", b"2"));
        let (InPlace::Apply(stale), InPlace::Apply(change)) = (stale, change) else { panic!("no steps") };
        assert_eq!(s.apply_pending(change).await.unwrap(), None);
        let conflict = s.apply_pending(stale).await.unwrap();
        assert!(conflict.is_some_and(|what| what.contains("handler_kv")), "the stale step was applied");
        assert_eq!(kv(&s, "copy"), None);
        assert_eq!(kv(&s, "b"), None);

        // A handler call cannot run in place (it may take its whole deadline): the request goes
        // to a blocking thread, having written nothing.
        let compute = "http://schemas.ogf.org/occi/infrastructure#compute";
        let input = ocni_model::entity::parse_entity_input(&serde_json::json!({"kind": compute})).unwrap();
        let (out, left) = prepare_in_place(|| {
            s.write(T, |w, catalog| {
                w.set_binding(T, compute, Some("h"))?;
                let mut e = catalog.create_entity(&input, "/compute/x", "x")?;
                s.run_handlers(w, T, catalog, Stage::Create, &mut e)?;
                w.put_entity(T, &e)?;
                Ok(())
            })
        });
        assert_eq!(out.unwrap_err().status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(left, InPlace::OnThread));
        assert!(s.store.read().unwrap().entity(T, "/compute/x").unwrap().is_none());

        // Outside `prepare_in_place`, a write is applied before it answers (on a blocking thread).
        let s = Arc::new(s);
        let t = Arc::clone(&s);
        assert_eq!(tokio::task::spawn_blocking(move || set(&t, "d", b"1")()).await.unwrap().unwrap(), 7);
        assert_eq!(kv(&s, "d").as_deref(), Some(&b"1"[..]));
    }
}
