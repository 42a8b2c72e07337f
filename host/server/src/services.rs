//! What every operation is served with ([`Services`]): the store, the per-tenant view cache
//! (catalog and handler bindings by catalog generation), the prepare-then-apply loop of writes
//! ([`Services::write`]), handler runs and the tenancy. The OCCI operations (`occi/`) take a
//! `&Services`; only `app.rs` builds one.

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
        match self.writer.submit(set)? {
            Applied::Done { generations } => Ok(Settled::Written(generations)),
            Applied::Conflict { table, key } => Ok(Settled::Changed { table, key }),
            Applied::Limit { tenant, max } => Err(limit_reached(&tenant, max, "entities")),
            Applied::TooLarge { needed, max } => Err(too_many_ops(needed, max)),
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
    /// nothing. Blocking: runs off the async executor.
    pub(crate) fn write<T>(&self, tenant: &str, mut f: impl FnMut(&mut Write, &Catalog) -> R<T>) -> R<T> {
        let mut last = String::new();
        let mut slot = None;
        let mut attempts = 0;
        while attempts < MAX_ATTEMPTS {
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
            let mut w = Write::new(step, slot.take());
            let out = match f(&mut w, &view.catalog) {
                Ok(out) => out,
                Err(_) if w.wants_slot() => {
                    // A handler call found the tenant's slots taken: wait for one without
                    // holding the snapshot (a long-lived read transaction keeps the store from
                    // reusing pages), then prepare again with it.
                    drop(w);
                    let slots = self.sandbox.handler_slots(tenant).expect("only multi-tenant writes want a slot");
                    slot = Some(
                        tokio::runtime::Handle::current()
                            .block_on(slots.acquire_owned())
                            .map_err(|_| ApiError::internal("calling a handler", "the server is shutting down"))?,
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            attempts += 1;
            let submitted = !w.jobs().is_empty();
            // Handler calls are over: the slot goes before waiting for the commit.
            let set = w.into_step().finish();
            if set.is_empty() {
                return Ok(out);
            }
            match self.apply(set)? {
                Settled::Written(generations) => {
                    for (t, g) in generations {
                        self.forget_view(&t, g);
                    }
                    if submitted {
                        self.jobs.wake();
                    }
                    return Ok(out);
                }
                Settled::Changed { table, key } => {
                    if table == "counters" {
                        // The catalog changed: read it again.
                        self.forget_view(tenant, view.generation + 1);
                    }
                    tracing::debug!(tenant, table, key = %key, "write conflicted; preparing it again");
                    last = format!("{table} {key:?}");
                }
            }
        }
        Err(kept_conflicting(&last))
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
