//! The server's state as the HTTP layer sees it ([`App`]): the [`Services`] every operation is
//! served with, the bounds on requests prepared or listed at once, and [`App::serve`], which
//! hands an authenticated request to the operation its route names (`occi/`).

use std::sync::Arc;

use hyper::Method;
use ocni_model::Class;
use ocni_store::Store;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::error::ApiError;
use crate::jobs::JobRunner;
use crate::occi::{admin, collection, entity, handlers, jobs, query};
use crate::reply::{Framed, R, Reply, Request};
use crate::route::{self, Allowed, Target};
use crate::services::{self, InPlace, MAX_ATTEMPTS, Services, kept_conflicting};
use crate::tenancy::Tenancy;

/// Shared server state (one per server, behind an `Arc`).
pub struct App {
    /// Runs the jobs handlers submit; dropped first (it waits for the attempts under way, then
    /// lets go of the services).
    _jobs: JobRunner,
    services: Arc<Services>,
    /// Writes being prepared, all tenants together (`Config::max_concurrent_writes`).
    write_slots: Arc<Semaphore>,
    /// Reads that may be large (listings, the query interface) running at once, all tenants
    /// together: they run on blocking threads, one per core.
    listing_slots: Arc<Semaphore>,
}

impl App {
    /// Builds the state of a server over an open store and handler runtime.
    pub fn new(store: Store, runtime: ocni_runtime::Runtime, config: Config) -> Result<App, String> {
        let writes = config.max_concurrent_writes.max(1);
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let services = Arc::new(Services::start(store, runtime, config)?);
        let jobs =
            JobRunner::start(Arc::clone(&services)).map_err(|e| format!("cannot start the job runner thread: {e}"))?;
        Ok(App {
            _jobs: jobs,
            services,
            write_slots: Arc::new(Semaphore::new(writes)),
            listing_slots: Arc::new(Semaphore::new(cores)),
        })
    }

    /// Waits until this node's reads see every write acknowledged before (by any node, on a
    /// shared store), and the tenancy with them; nothing to wait for on redb.
    pub(crate) async fn sync(&self) -> R<()> {
        let s = &self.services;
        s.store.sync().await?;
        s.tenancy.refresh(&s.store, &s.config)
    }

    pub fn config(&self) -> &Config {
        &self.services.config
    }

    /// The server's mode, tokens and tenants.
    pub fn tenancy(&self) -> &Tenancy {
        &self.services.tenancy
    }

    /// The WebAssembly runtime (uploads are compiled as they arrive, before their write).
    pub(crate) fn runtime(&self) -> &ocni_runtime::Runtime {
        self.services.sandbox.runtime()
    }

    /// The slots a request waits for before it runs on a blocking thread: a write's, or a
    /// large read's.
    pub(crate) fn slots(&self, write: bool) -> &Arc<Semaphore> {
        if write { &self.write_slots } else { &self.listing_slots }
    }

    /// The methods `target` allows for `tenant` (a collection path is a kind's, a mixin's or
    /// unbound by the tenant's cached catalog); `None` for an unknown admin path. Asked before
    /// the request body is read, so that a method the target refuses is 405 whatever the body.
    pub(crate) fn allowed(&self, tenant: &str, target: &Target) -> R<Option<Allowed>> {
        let class = match target {
            Target::Collection(path) => self.services.catalog(tenant)?.by_location(path).map(|c| c.class),
            _ => None,
        };
        Ok(route::allowed(target, class))
    }

    /// Serves an authenticated request of `tenant` (the admin API's, or the tenant's OCCI API),
    /// its answer framed for HTTP. Blocking for everything but a single entity's read.
    pub(crate) fn serve(&self, tenant: &str, req: &Request<'_>) -> R<Framed> {
        if let Target::Entity(path) = &req.route.target
            && req.route.reads_one_entity(req.method)
        {
            // Framed once, kept until the next commit (`Services::rendered`).
            return entity::get(&self.services, tenant, path, req);
        }
        Ok(self.operation(tenant, req)?.framed(req.format))
    }

    /// Whether `req` may be prepared in place, on the async worker it arrived on (see
    /// [`services::prepare_in_place`]): a store with a writer thread (redb), a tenant that binds
    /// no handler (a call may take its whole deadline), and a write of one entity's size: a
    /// create in a kind's collection, an update, replacement or action of one entity. Deletes,
    /// which cascade to an entity's links, and collection-wide writes go to a blocking thread.
    pub(crate) fn prepares_in_place(&self, tenant: &str, req: &Request<'_>) -> bool {
        let s = &self.services;
        let Ok(view) = s.view(tenant) else { return false };
        if !s.writes_in_place() || !view.handlers.bindings.is_empty() {
            return false;
        }
        match &req.route.target {
            Target::Entity(_) => matches!(*req.method, Method::PUT | Method::POST),
            Target::Collection(path) => {
                *req.method == Method::POST
                    && req.route.action.is_none()
                    && view.catalog.by_location(path).is_some_and(|c| c.class == Class::Kind)
            }
            _ => false,
        }
    }

    /// [`App::serve`] with its write prepared in place, on this async worker (see
    /// [`App::prepares_in_place`]), its commit awaited: prepared again when its step conflicted
    /// (at most [`MAX_ATTEMPTS`] times, as on a blocking thread). `Ok(None)`: it turned out to
    /// need a blocking thread (a handler call, a second write); nothing was written.
    pub(crate) async fn write_in_place(&self, tenant: &str, req: &Request<'_>) -> R<Option<Framed>> {
        let _slot = self
            .write_slots
            .acquire()
            .await
            .map_err(|_| ApiError::internal("a request", "the server is shutting down"))?;
        let mut last = String::new();
        for _ in 0..MAX_ATTEMPTS {
            let (answer, left) = services::prepare_in_place(|| self.serve(tenant, req));
            match left {
                InPlace::Nothing => return answer.map(Some),
                InPlace::OnThread => return Ok(None),
                InPlace::Apply(pending) => {
                    // An answer that failed after its write was prepared writes nothing.
                    let framed = answer?;
                    match self.services.apply_pending(pending).await? {
                        None => return Ok(Some(framed)),
                        Some(what) => last = what,
                    }
                }
            }
        }
        Err(kept_conflicting(&last))
    }

    /// The operation `req` names.
    fn operation(&self, tenant: &str, req: &Request<'_>) -> R<Reply> {
        let s = &self.services;
        if let Target::Admin(path) = &req.route.target {
            return admin::admin(s, path, req);
        }
        let catalog = s.catalog(tenant)?;
        match &req.route.target {
            Target::QueryInterface => query::query_interface(s, tenant, &catalog, req),
            Target::Collection(path) => match catalog.by_location(path).cloned() {
                Some(cat) if cat.class == Class::Kind => collection::kind_collection(s, tenant, &catalog, &cat, req),
                Some(cat) => collection::mixin_collection(s, tenant, &catalog, &cat, req),
                None => collection::unbound_path(s, tenant, &catalog, path, req),
            },
            Target::Entity(path) => entity::entity(s, tenant, &catalog, path, req),
            Target::Handlers(name) => handlers::handlers(s, tenant, name.as_deref(), req),
            Target::HandlerLog(name) => handlers::handler_log(s, tenant, name, req),
            Target::Jobs(id) => jobs::jobs(s, tenant, id.as_deref(), req),
            Target::Admin(_) => Err(ApiError::not_found("the admin API is not part of a tenant's API")),
        }
    }
}
