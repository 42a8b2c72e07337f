//! The OCCI operations behind each route: query interface, collections, entities, actions and
//! mixin association. Runs on a blocking thread (redb calls block); every write happens in one
//! store transaction, under the server's write lock, so a refusal leaves nothing written.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use ocni_model::catalog::parse_category_file;
use ocni_model::category::split_id;
use ocni_model::entity::{ATTR_TARGET, ATTR_TARGET_KIND, EntityInput, location_path};
use ocni_model::filter::{parse_category_filters, parse_entity_filters};
use ocni_model::render::{self, render_categories, render_entity, render_locations};
use ocni_model::text::{self, Line, TextMessage};
use ocni_model::{Catalog, Category, Class, Dialect, Entity, parse_category, parse_category_ref};
use ocni_store::{Applied, Page, Reads, Source, Step, Store};
use serde_json::{Map, Value, json};

use crate::Config;
use crate::error::ApiError;
use crate::handlers::{self, HandlerIndex, Stage};
use crate::negotiate::Format;
use crate::route::{Route, Target};
use crate::tenants::Tenancy;

/// The tenant every request uses until authentication names one.
pub const DEFAULT_TENANT: &str = "default";

/// How many times a write is prepared again after conflicting with concurrent writes.
const MAX_ATTEMPTS: usize = 8;

/// Shared server state.
pub struct App {
    pub store: Arc<Store>,
    pub config: Config,
    /// The WebAssembly sandbox that runs uploaded handlers.
    pub(crate) runtime: ocni_runtime::Runtime,
    /// Built-in categories plus the operator's templates.
    base: Catalog,
    /// Per tenant, what its requests are prepared with (catalog and handlers), by generation.
    views: parking_lot::RwLock<HashMap<String, ViewSlot>>,
    /// Applies prepared writes (group commit, see `writer.rs`).
    pub(crate) writer: crate::writer::Writer,
    /// The threads handler calls run on (see `sandbox.rs`).
    pub(crate) sandbox: crate::sandbox::Sandbox,
    /// Writes being prepared, all tenants together (`Config::max_concurrent_writes`).
    pub(crate) write_slots: Arc<tokio::sync::Semaphore>,
    /// Reads that may be large (listings, the query interface) running at once, all tenants
    /// together: they run on blocking threads, one per core.
    pub(crate) listing_slots: Arc<tokio::sync::Semaphore>,
    /// Per tenant, the handler calls that may run at once (`Config::handler_calls_per_tenant`).
    handler_slots: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// The server's mode, tokens and tenants' limits.
    pub tenancy: Tenancy,
}

/// A write being prepared ([`App::write`]): its step (what it reads and writes), and the
/// tenant's handler-call slot once one of its handler calls needed it.
pub(crate) struct Write {
    step: Step,
    pub(crate) slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Set by a handler call that found no free slot: the write is prepared again with one.
    pub(crate) wants_slot: bool,
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

/// A finished response, before HTTP framing.
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub content_type: Option<&'static str>,
}

impl Reply {
    /// An answer with no body.
    pub(crate) fn new(status: StatusCode) -> Self {
        Reply { status, headers: Vec::new(), body: Vec::new(), content_type: None }
    }
}

/// A request body, parsed by its media type (text/occi headers count as a body).
#[derive(Debug)]
pub enum Body {
    Json(Value),
    Text(TextMessage),
    UriList(Vec<String>),
    /// A handler component (`application/wasm`), only for `PUT /-/handlers/{name}`.
    Wasm {
        bytes: bytes::Bytes,
        /// The digest the runtime compiled it under (uploads are compiled as they arrive).
        digest: String,
    },
}

/// What a body is read as: the text renderings are turned into the JSON shape of the same
/// operation, so every operation has one implementation.
#[derive(Clone, Copy, PartialEq)]
enum Purpose {
    Categories,
    Entity,
    Action,
    Locations,
    EntityFilter,
}

fn body_as<'a>(req: &'a Request, purpose: Purpose, catalog: &Catalog) -> R<Option<Cow<'a, Value>>> {
    Ok(match &req.body {
        None => None,
        // JSON bodies are used as they are; only the text renderings are turned into JSON.
        Some(Body::Json(v)) => Some(Cow::Borrowed(v)),
        Some(Body::Text(t)) => Some(Cow::Owned(match purpose {
            Purpose::Categories => t.to_categories_json(catalog)?,
            Purpose::Entity => t.to_entity_json(catalog)?,
            Purpose::Action => t.to_action_json(catalog)?,
            Purpose::Locations => json!({ "X-OCCI-Location": t.locations }),
            Purpose::EntityFilter => t.to_entity_filter_json(catalog)?,
        })),
        Some(Body::UriList(list)) if purpose == Purpose::Locations => {
            Some(Cow::Owned(json!({ "X-OCCI-Location": list })))
        }
        Some(Body::Wasm { .. }) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "application/wasm bodies are handler uploads (PUT /-/handlers/{name})",
            ));
        }
        Some(Body::UriList(_)) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a text/uri-list body only lists entity locations (mixin association); use application/occi+json, text/plain or text/occi",
            ));
        }
    })
}

fn need<'a>(req: &'a Request, purpose: Purpose, catalog: &Catalog) -> R<Cow<'a, Value>> {
    body_as(req, purpose, catalog)?.ok_or_else(|| ApiError::bad(format!("{} here needs a request body", req.method)))
}

/// What a request carried, already parsed.
pub struct Request<'a> {
    pub method: &'a Method,
    pub route: Route,
    pub body: Option<Body>,
    pub format: Format,
    /// `http://host:port` for absolute URLs.
    pub base_url: String,
}

type R<T> = Result<T, ApiError>;

impl App {
    pub fn new(store: Store, runtime: ocni_runtime::Runtime, config: Config) -> Result<App, String> {
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
        let config_writes = config.max_concurrent_writes.max(1);
        let sandbox =
            crate::sandbox::Sandbox::start(config.runtime.max_concurrent_calls, config.runtime.max_wasm_stack)
                .map_err(|e| format!("cannot start the handler threads: {e}"))?;
        let writer = crate::writer::Writer::start(Arc::clone(&store))
            .map_err(|e| format!("cannot start the writer thread: {e}"))?;
        Ok(App {
            tenancy,
            store,
            runtime,
            config,
            base,
            views: Default::default(),
            writer,
            sandbox,
            write_slots: Arc::new(tokio::sync::Semaphore::new(config_writes)),
            listing_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            )),
            handler_slots: Default::default(),
        })
    }

    /// The catalog of a tenant (cached).
    pub fn catalog(&self, tenant: &str) -> R<Arc<Catalog>> {
        Ok(Arc::clone(&self.view(tenant)?.catalog))
    }

    /// The catalog and handlers of a tenant as last committed (cached by catalog generation).
    pub(crate) fn view(&self, tenant: &str) -> R<Arc<TenantView>> {
        if let Some(v) = self.views.read().get(tenant).and_then(|s| s.view.clone()) {
            return Ok(v);
        }
        let r = self.store.read()?;
        let generation = r.catalog_generation(tenant)?;
        let catalog = Arc::new(self.base.clone().with(r.categories(tenant)?));
        let handlers = Arc::new(HandlerIndex::read(&r, tenant)?);
        let view = Arc::new(TenantView { generation, catalog, handlers });
        let mut views = self.views.write();
        let slot = views.entry(tenant.to_string()).or_default();
        match &slot.view {
            // Another request read a view at least as new meanwhile.
            Some(v) if v.generation >= generation => return Ok(Arc::clone(v)),
            _ if generation >= slot.min_generation => slot.view = Some(Arc::clone(&view)),
            _ => {}
        }
        Ok(view)
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

    /// The handler-call slots of a tenant; none in local mode (one tenant: nobody to be fair to,
    /// and the runtime's pool bounds its calls).
    pub(crate) fn handler_slots(&self, tenant: &str) -> Option<Arc<tokio::sync::Semaphore>> {
        // (A write that wants one waits in `App::write`, without a snapshot.)
        if !self.tenancy.is_multi_tenant() {
            return None;
        }
        let per_tenant = self.config.handler_calls_per_tenant.max(1);
        Some(Arc::clone(
            self.handler_slots
                .lock()
                .entry(tenant.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(per_tenant))),
        ))
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
            if self.tenancy.is_multi_tenant() {
                // Read, so that a deletion of the tenant since makes the step conflict.
                step.tenant(tenant)?;
            }
            let mut w = Write { step, slot: slot.take(), wants_slot: false };
            let out = match f(&mut w, &view.catalog) {
                Ok(out) => out,
                Err(_) if w.wants_slot => {
                    // A handler call found the tenant's slots taken: wait for one without
                    // holding the snapshot (a long-lived read transaction keeps the store from
                    // reusing pages), then prepare again with it.
                    let Write { step, .. } = w;
                    drop(step);
                    let slots = self.handler_slots(tenant).expect("only multi-tenant writes want a slot");
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
            let Write { step, slot: held, .. } = w;
            // Handler calls are over: the slot goes before waiting for the commit.
            drop(held);
            let set = step.finish();
            if set.is_empty() {
                return Ok(out);
            }
            match self.writer.submit(set).map_err(|e| ApiError::internal("committing a write", e))? {
                Applied::Done { generations } => {
                    for (t, g) in generations {
                        self.forget_view(&t, g);
                    }
                    return Ok(out);
                }
                Applied::Conflict { table, key } => {
                    if table == "counters" {
                        // The catalog changed: read it again.
                        self.forget_view(tenant, view.generation + 1);
                    }
                    tracing::debug!(tenant, table, key = %key, "write conflicted; preparing it again");
                    last = format!("{table} {key:?}");
                }
                Applied::Limit { tenant, max } => return Err(crate::tenants::limit_reached(&tenant, max, "entities")),
            }
        }
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the write conflicted with concurrent writes {MAX_ATTEMPTS} times (last on {last}); nothing was written, try again"
            ),
        );
        e.headers.push(("Retry-After", "1".to_string()));
        Err(e)
    }

    /// Serves one request.
    pub fn dispatch(&self, tenant: &str, req: Request<'_>) -> R<Reply> {
        let catalog = self.catalog(tenant)?;
        match &req.route.target {
            Target::QueryInterface => self.query_interface(tenant, &catalog, &req),
            Target::Collection(path) => {
                if let Some(cat) = catalog.by_location(path).cloned() {
                    if cat.class == Class::Kind {
                        self.kind_collection(tenant, &catalog, &cat, &req)
                    } else {
                        self.mixin_collection(tenant, &catalog, &cat, &req)
                    }
                } else {
                    self.unbound_path(tenant, &catalog, path, &req)
                }
            }
            Target::Entity(path) => self.entity(tenant, &catalog, path, &req),
            Target::Handlers(name) => self.handlers_api(tenant, name.as_deref(), &req),
            Target::Admin(_) => Err(ApiError::not_found("the admin API is not part of a tenant's API")),
        }
    }

    // ------------------------------------------------------------------ query interface

    fn query_interface(&self, tenant: &str, catalog: &Catalog, req: &Request) -> R<Reply> {
        no_action(req)?;
        match *req.method {
            Method::GET | Method::HEAD => {
                let cats: Vec<&Category> = match &req.body {
                    Some(Body::Json(body)) => {
                        let filters = parse_category_filters(body)?;
                        catalog.iter().filter(|c| filters.iter().any(|f| f.matches(c))).map(|c| &**c).collect()
                    }
                    // GFD.223 7.1: a Category rendering selects that category and its relatives.
                    Some(Body::Text(t)) => {
                        let ids = t.category_filter(catalog)?;
                        catalog.iter().filter(|c| ids.contains(&c.id())).map(|c| &**c).collect()
                    }
                    Some(Body::UriList(_) | Body::Wasm { .. }) => {
                        return Err(ApiError::new(
                            StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            "a category filter is application/occi+json, text/plain or text/occi",
                        ));
                    }
                    None => catalog.iter().map(|c| &**c).collect(),
                };
                render_category_list(&cats, req.format)
            }
            Method::POST => {
                let body = need(req, Purpose::Categories, catalog)?;
                let (new, bindings) = parse_category_groups(&body, false)?;
                if new.is_empty() {
                    return Err(ApiError::bad(
                        "the body defines no category: give \"kinds\", \"mixins\" and/or \"actions\"",
                    ));
                }
                let added = self.write(tenant, |w, catalog| {
                    let next = catalog.add(new.clone())?;
                    self.check_catalog_limits(tenant, &next)?;
                    for c in &new {
                        w.put_category(tenant, next.get(&c.id()).expect("just added"))?;
                    }
                    for (id, handler) in &bindings {
                        bind(w, tenant, &next, id, Some(handler))?;
                    }
                    let added: Vec<Category> = new.iter().map(|c| (**next.get(&c.id()).unwrap()).clone()).collect();
                    Ok(added)
                })?;
                tracing::info!(tenant, count = added.len(), "categories added");
                render_category_list(&added.iter().collect::<Vec<_>>(), req.format)
            }
            Method::PUT => {
                let body = need(req, Purpose::Categories, catalog)?;
                let (changed, bindings) = parse_category_groups(&body, true)?;
                let mut providers = parse_providers(&body)?;
                providers.extend(bindings.into_iter().map(|(id, h)| (id, Some(h))));
                if changed.is_empty() && providers.is_empty() {
                    return Err(ApiError::bad(
                        "the body changes nothing: give \"kinds\", \"mixins\", \"actions\" and/or \"providers\"",
                    ));
                }
                self.write(tenant, |w, catalog| {
                    let next = if changed.is_empty() { None } else { Some(catalog.replace(changed.clone())?) };
                    if let Some(next) = &next {
                        self.check_catalog_limits(tenant, next)?;
                    }
                    let effective = next.as_ref().unwrap_or(catalog);
                    for c in &changed {
                        // Store the category as the catalog completed it (e.g. default parent).
                        w.put_category(tenant, effective.get(&c.id()).expect("just replaced"))?;
                    }
                    for (id, provider) in &providers {
                        bind(w, tenant, effective, id, provider.as_deref())?;
                    }
                    Ok(())
                })?;
                Ok(Reply::new(StatusCode::OK))
            }
            Method::DELETE => {
                let body = need(req, Purpose::Categories, catalog)?;
                let ids = parse_category_refs(&body)?;
                if ids.is_empty() {
                    return Err(ApiError::bad("the body names no category to delete"));
                }
                let cascade = req.route.cascade;
                self.write(tenant, |w, catalog| {
                    let next = catalog.delete(&ids)?;
                    for id in &ids {
                        let cat = catalog.get(id).expect("checked by delete");
                        match cat.class {
                            Class::Kind => {
                                let members = w.by_kind(tenant, id, Page::ALL)?;
                                if !members.is_empty() && !cascade {
                                    return Err(ApiError::conflict(format!(
                                        "kind {id:?} still has {} entities (e.g. {}); delete them first, or send DELETE /-/?cascade=true to delete them with the kind",
                                        members.len(),
                                        members[0]
                                    )));
                                }
                                for loc in members {
                                    self.delete_entity(w, tenant, catalog, &loc)?;
                                }
                            }
                            Class::Mixin => {
                                // Deleting a mixin dissociates it from every entity.
                                for loc in w.by_mixin(tenant, id, Page::ALL)? {
                                    if let Some(e) = w.entity(tenant, &loc)? {
                                        let mixins: Vec<String> = e.mixins.iter().filter(|m| *m != id).cloned().collect();
                                        self.put_mixins(w, tenant, &next, &e, mixins)?;
                                    }
                                }
                            }
                            Class::Action => {}
                        }
                        w.delete_category(tenant, id)?;
                    }
                    Ok(())
                })?;
                tracing::info!(tenant, count = ids.len(), cascade, "categories deleted");
                Ok(Reply::new(StatusCode::OK))
            }
            _ => Err(ApiError::method(req.method, "the query interface", "GET, HEAD, POST, PUT, DELETE")),
        }
    }

    // ------------------------------------------------------------------ collections

    /// The page a listing asks for (`page`, `number`); without them, the first page of the
    /// server's page size: a listing never returns more than `max_page_size` entities.
    fn page(&self, req: &Request) -> R<Page> {
        let max = self.config.max_page_size;
        let number = req.route.number.unwrap_or(max as u64);
        if number > max as u64 {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("number={number} is above this server's page size limit of {max}"),
            ));
        }
        let page = req.route.page.unwrap_or(1);
        let offset = (page - 1).saturating_mul(number);
        Ok(Page { offset: usize::try_from(offset).unwrap_or(usize::MAX), limit: number as usize })
    }

    /// Lists the locations of one page of `source`, applying a filter body if any. A filtered
    /// listing reads entities one at a time and stops once the page is full. When there is more
    /// after the page, the answer carries `Link: <...?page=N+1&number=M>; rel="next"`.
    fn list(&self, tenant: &str, catalog: &Catalog, req: &Request, path: &str, source: Source<'_>) -> R<Reply> {
        let page = self.page(req)?;
        // One more than the page, to know whether there is a next one.
        let probe = Page { offset: page.offset, limit: page.limit.saturating_add(1) };
        let r = self.store.read()?;
        let (mut reply, more) = match body_as(req, Purpose::EntityFilter, catalog)? {
            None => {
                let mut locations = r.locations(tenant, source, probe)?;
                let more = locations.len() > page.limit;
                locations.truncate(page.limit);
                (render_listing(&r, tenant, catalog, &locations, req)?, more)
            }
            Some(body) => {
                let filters = parse_entity_filters(&body)?;
                let (mut skipped, mut hits) = (0, Vec::new());
                r.each_entity(tenant, source, &mut |e| {
                    if filters.iter().any(|f| f.matches(&e)) {
                        if skipped < probe.offset {
                            skipped += 1;
                        } else {
                            hits.push(e);
                        }
                    }
                    if hits.len() >= probe.limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
                })?;
                let more = hits.len() > page.limit;
                hits.truncate(page.limit);
                (render_entities(&r, tenant, catalog, &hits, req)?, more)
            }
        };
        if more && page.limit > 0 {
            let next = page.offset / page.limit + 2;
            let url = format!("{}{}?page={next}&number={}", req.base_url, text::location_text(path), page.limit);
            reply.headers.push(("Link", format!("<{url}>; rel=\"next\"")));
        }
        Ok(reply)
    }

    fn kind_collection(&self, tenant: &str, catalog: &Catalog, kind: &Arc<Category>, req: &Request) -> R<Reply> {
        let id = kind.id();
        match (req.method.clone(), &req.route.action) {
            (Method::POST, Some(term)) => {
                self.collection_action(tenant, catalog, req, term, |w| Ok(w.by_kind(tenant, &id, Page::ALL)?))
            }
            (_, Some(_)) => Err(ApiError::bad("?action= is only for POST")),
            (Method::GET | Method::HEAD, None) => {
                self.list(tenant, catalog, req, kind.location.as_deref().unwrap_or("/"), Source::Kind(&id))
            }
            (Method::POST, None) => {
                let body = need(req, Purpose::Entity, catalog)?;
                let inputs = ocni_model::parse_entity_collection(&body)?;
                let created = self.write(tenant, |w, catalog| {
                    let mut created = Vec::new();
                    for (i, input) in inputs.iter().enumerate() {
                        let mut input = input.clone();
                        let place = format!("entity {i}");
                        match &input.kind {
                            Some(k) if k != &id => {
                                return Err(ApiError::bad(format!(
                                    "{place}: kind {k:?} does not belong in the collection of {id:?}; POST it to its own kind's location"
                                )));
                            }
                            _ => input.kind = Some(id.clone()),
                        }
                        let eid = entity_id(input.id.as_deref())?;
                        let location = format!("{}{eid}", kind.location.as_deref().unwrap_or("/"));
                        create_entity(self, w, tenant, catalog, &req.base_url, &input, &location, &eid, &mut created)
                            .map_err(|e| prefix(e, &place))?;
                    }
                    Ok(created)
                })?;
                tracing::info!(tenant, kind = %id, count = created.len(), "entities created");
                Ok(created_reply(&req.base_url, &created, req.format))
            }
            (Method::DELETE, None) => {
                if req.body.is_some() {
                    return Err(ApiError::bad(
                        "DELETE on a kind collection deletes all its entities and takes no body",
                    ));
                }
                let removed = self.write(tenant, |w, catalog| {
                    let mut removed = 0;
                    for loc in w.by_kind(tenant, &id, Page::ALL)? {
                        removed += self.delete_entity(w, tenant, catalog, &loc)?.len();
                    }
                    Ok(removed)
                })?;
                tracing::info!(tenant, kind = %id, removed, "kind collection deleted");
                Ok(Reply::new(StatusCode::OK))
            }
            (m, None) => Err(ApiError::method(&m, "a kind collection", "GET, HEAD, POST, DELETE")),
        }
    }

    fn mixin_collection(&self, tenant: &str, catalog: &Catalog, mixin: &Arc<Category>, req: &Request) -> R<Reply> {
        let id = mixin.id();
        match (req.method.clone(), &req.route.action) {
            (Method::POST, Some(term)) => {
                self.collection_action(tenant, catalog, req, term, |w| Ok(w.by_mixin(tenant, &id, Page::ALL)?))
            }
            (_, Some(_)) => Err(ApiError::bad("?action= is only for POST")),
            (Method::GET | Method::HEAD, None) => {
                self.list(tenant, catalog, req, mixin.location.as_deref().unwrap_or("/"), Source::Mixin(&id))
            }
            (method @ (Method::POST | Method::PUT | Method::DELETE), None) => {
                let listed = match body_as(req, Purpose::Locations, catalog)? {
                    Some(b) => Some(ocni_model::parse_locations(&b)?),
                    None if method == Method::DELETE => None,
                    None => {
                        return Err(ApiError::bad("the body must list entity locations: {\"X-OCCI-Location\": [...]}"));
                    }
                };
                let changed = self.write(tenant, |w, catalog| {
                    let mut changed = 0;
                    let members: HashSet<String> = w.by_mixin(tenant, &id, Page::ALL)?.into_iter().collect();
                    let listed: Vec<String> = match &listed {
                        Some(l) => l.clone(),
                        None => members.iter().cloned().collect(),
                    };
                    let mut seen = HashSet::new();
                    for loc in &listed {
                        if !seen.insert(loc.clone()) {
                            continue;
                        }
                        let e = w
                            .entity(tenant, loc)?
                            .ok_or_else(|| ApiError::not_found(format!("entity {loc:?} does not exist")))?;
                        let mut mixins = e.mixins.clone();
                        if method == Method::DELETE {
                            mixins.retain(|m| m != &id);
                        } else if !mixins.contains(&id) {
                            mixins.push(id.clone());
                        }
                        if mixins != e.mixins {
                            self.put_mixins(w, tenant, catalog, &e, mixins).map_err(|e| prefix(e, loc))?;
                            changed += 1;
                        }
                    }
                    if method == Method::PUT {
                        for loc in members.iter().filter(|m| !seen.contains(*m)) {
                            if let Some(e) = w.entity(tenant, loc)? {
                                let mixins = e.mixins.iter().filter(|m| **m != id).cloned().collect();
                                self.put_mixins(w, tenant, catalog, &e, mixins)?;
                                changed += 1;
                            }
                        }
                    }
                    // GFD.223 9.3.2: the answer renders the collection as it now is (rendered
                    // inside the write, which sees its own changes).
                    let members = w.by_mixin(tenant, &id, Page::ALL)?;
                    Ok((changed, render_listing(&**w, tenant, catalog, &members, req)?))
                })?;
                let (changed, reply) = changed;
                tracing::info!(tenant, mixin = %id, %method, changed, "mixin membership changed");
                Ok(reply)
            }
            (m, None) => Err(ApiError::method(&m, "a mixin collection", "GET, HEAD, POST, PUT, DELETE")),
        }
    }

    fn unbound_path(&self, tenant: &str, catalog: &Catalog, path: &str, req: &Request) -> R<Reply> {
        if req.route.action.is_some() {
            return Err(ApiError::not_found(format!(
                "{path:?} is not a kind or mixin collection: there is nothing to act on"
            )));
        }
        match *req.method {
            Method::GET | Method::HEAD => self.list(tenant, catalog, req, path, Source::Prefix(path)),
            Method::DELETE => {
                if req.body.is_some() {
                    return Err(ApiError::bad("DELETE on a path deletes every entity below it and takes no body"));
                }
                let removed = self.write(tenant, |w, catalog| {
                    let mut removed = 0;
                    for loc in w.by_prefix(tenant, path, Page::ALL)? {
                        removed += self.delete_entity(w, tenant, catalog, &loc)?.len();
                    }
                    Ok(removed)
                })?;
                tracing::info!(tenant, path, removed, "path deleted");
                Ok(Reply::new(StatusCode::OK))
            }
            // GFD.185 3.4.4: POST on the service root creates an entity of the kind its body names.
            Method::POST if path == "/" => {
                let body = need(req, Purpose::Entity, catalog)?;
                let inputs = ocni_model::parse_entity_collection(&body)?;
                let kind = inputs
                    .first()
                    .and_then(|i| i.kind.clone())
                    .ok_or_else(|| ApiError::bad("POST / needs the kind of the entity to create (a kind Category)"))?;
                let cat = catalog
                    .get(&kind)
                    .filter(|c| c.class == Class::Kind && c.location.is_some())
                    .cloned()
                    .ok_or_else(|| ApiError::bad(format!("{kind:?} is not a kind with a location")))?;
                self.kind_collection(tenant, catalog, &cat, req)
            }
            _ => Err(ApiError::method(req.method, "a path that is no kind or mixin location", "GET, HEAD, DELETE")),
        }
    }

    fn collection_action(
        &self,
        tenant: &str,
        catalog: &Catalog,
        req: &Request,
        term: &str,
        members: impl Fn(&Step) -> R<Vec<String>>,
    ) -> R<Reply> {
        let (given, params) = parse_action_body(body_as(req, Purpose::Action, catalog)?.as_deref(), term)?;
        let count = self.write(tenant, |w, catalog| {
            // Read the members inside the transaction, so the action covers exactly them.
            let locations = members(w)?;
            for loc in &locations {
                let Some(e) = w.entity(tenant, loc)? else { continue };
                let next =
                    self.act(w, tenant, catalog, &e, term, given.as_deref(), &params).map_err(|e| prefix(e, loc))?;
                w.put_entity(tenant, &next)?;
            }
            Ok(locations.len())
        })?;
        tracing::info!(tenant, action = term, count, "collection action");
        Ok(Reply::new(StatusCode::OK))
    }

    // ------------------------------------------------------------------ single entities

    fn entity(&self, tenant: &str, catalog: &Catalog, path: &str, req: &Request) -> R<Reply> {
        match (req.method.clone(), &req.route.action) {
            (Method::POST, Some(term)) => {
                let (given, params) = parse_action_body(body_as(req, Purpose::Action, catalog)?.as_deref(), term)?;
                // The answer is rendered inside the write: it shows the entity as committed.
                let reply = self.write(tenant, |w, catalog| {
                    let e = w.entity(tenant, path)?.ok_or_else(|| not_found(path))?;
                    let next = self.act(w, tenant, catalog, &e, term, given.as_deref(), &params)?;
                    w.put_entity(tenant, &next)?;
                    let reply = match req.format {
                        Format::Json(Dialect::Occi12) => {
                            let v = render_one(&**w, tenant, catalog, &next, Dialect::Occi12)?;
                            json_reply(StatusCode::OK, &v, req.format)
                        }
                        _ => Reply::new(StatusCode::OK),
                    };
                    Ok(reply)
                })?;
                tracing::info!(tenant, location = path, action = term, "action");
                Ok(reply)
            }
            (_, Some(_)) => Err(ApiError::bad("?action= is only for POST")),
            (Method::GET | Method::HEAD, None) => {
                if req.body.is_some() {
                    return Err(ApiError::bad("GET on an entity takes no body"));
                }
                let r = self.store.read()?;
                let e = r.entity(tenant, path)?.ok_or_else(|| not_found(path))?;
                self.render_entity_reply(&r, tenant, catalog, &e, req.format)
            }
            (Method::PUT, None) => {
                let input = single_entity(&*need(req, Purpose::Entity, catalog)?)?;
                let (created, location) = self.write(tenant, |w, catalog| match w.entity(tenant, path)? {
                    Some(old) => {
                        no_links_on_update(&input)?;
                        if let Some(id) = &input.id
                            && id != old.id()
                        {
                            return Err(ApiError::bad(format!("id is immutable: the entity's id is {:?}", old.id())));
                        }
                        let mut next = catalog.replace_entity(&old, &input)?;
                        check_link_ends(w, tenant, catalog, &req.base_url, &mut next)?;
                        handlers::run(self, w, tenant, catalog, Stage::Update { old: &old }, &mut next)?;
                        w.put_entity(tenant, &next)?;
                        Ok((false, path.to_string()))
                    }
                    None => {
                        let last = path.rsplit('/').next().unwrap_or("");
                        let eid = entity_id(Some(last))?;
                        if let Some(id) = &input.id
                            && id != &eid
                        {
                            return Err(ApiError::bad(format!(
                                "id {id:?} does not match the last segment of the URL ({eid:?})"
                            )));
                        }
                        let mut created = Vec::new();
                        create_entity(self, w, tenant, catalog, &req.base_url, &input, path, &eid, &mut created)?;
                        Ok((true, path.to_string()))
                    }
                })?;
                tracing::info!(tenant, location = %location, created, "entity put");
                Ok(created_reply(&req.base_url, &[location], req.format))
            }
            (Method::POST, None) => {
                let input = single_entity(&*need(req, Purpose::Entity, catalog)?)?;
                self.write(tenant, |w, catalog| {
                    let old = w.entity(tenant, path)?.ok_or_else(|| not_found(path))?;
                    no_links_on_update(&input)?;
                    if let Some(id) = &input.id
                        && id != old.id()
                    {
                        return Err(ApiError::bad(format!("id is immutable: the entity's id is {:?}", old.id())));
                    }
                    let mut next = catalog.update_entity(&old, &input)?;
                    check_link_ends(w, tenant, catalog, &req.base_url, &mut next)?;
                    handlers::run(self, w, tenant, catalog, Stage::Update { old: &old }, &mut next)?;
                    w.put_entity(tenant, &next)?;
                    Ok(())
                })?;
                tracing::info!(tenant, location = path, "entity updated");
                Ok(created_reply(&req.base_url, &[path.to_string()], req.format))
            }
            (Method::DELETE, None) => {
                let removed = self.write(tenant, |w, catalog| {
                    let removed = self.delete_entity(w, tenant, catalog, path)?;
                    if removed.is_empty() {
                        return Err(not_found(path));
                    }
                    Ok(removed)
                })?;
                tracing::info!(tenant, location = path, removed = removed.len(), "entity deleted");
                Ok(Reply::new(StatusCode::OK))
            }
            (m, None) => Err(ApiError::method(&m, "an entity", "GET, HEAD, PUT, POST, DELETE")),
        }
    }

    /// Acts on one entity: the action must apply to it and its parameters fit; the built-in
    /// state machine moves it unless a handler drives its kind; then its handlers have their say.
    #[allow(clippy::too_many_arguments)]
    fn act(
        &self,
        w: &mut Write,
        tenant: &str,
        catalog: &Catalog,
        e: &Entity,
        term: &str,
        given: Option<&str>,
        params: &Map<String, Value>,
    ) -> R<Entity> {
        let action = catalog.resolve_action(e, term)?;
        check_given_action(given, &action)?;
        let builtin = !handlers::kind_has_handler(&self.handler_index(w, tenant)?.bindings, &e.kind);
        let (mut next, params) = catalog.apply_action(e, &action, params, builtin)?;
        handlers::run(self, w, tenant, catalog, Stage::Action { action: action.id(), params: &params }, &mut next)?;
        Ok(next)
    }

    /// Deletes an entity and the links at it, once the handlers of each agreed. Returns the
    /// locations removed (none when nothing was there).
    fn delete_entity(&self, w: &mut Write, tenant: &str, catalog: &Catalog, location: &str) -> R<Vec<String>> {
        let Some(mut e) = w.entity(tenant, location)? else { return Ok(Vec::new()) };
        for mut link in w.links_at(tenant, location)? {
            handlers::run(self, w, tenant, catalog, Stage::Delete, &mut link)?;
        }
        handlers::run(self, w, tenant, catalog, Stage::Delete, &mut e)?;
        Ok(w.delete_entity(tenant, location)?)
    }

    /// Writes a changed set of mixins, through the handlers as an update.
    fn put_mixins(&self, w: &mut Write, tenant: &str, catalog: &Catalog, e: &Entity, mixins: Vec<String>) -> R<()> {
        let mut next = catalog.set_mixins(e, mixins)?;
        handlers::run(self, w, tenant, catalog, Stage::Update { old: e }, &mut next)?;
        Ok(w.put_entity(tenant, &next)?)
    }

    fn render_entity_reply(
        &self,
        r: &impl Reads,
        tenant: &str,
        catalog: &Catalog,
        e: &Entity,
        format: Format,
    ) -> R<Reply> {
        match format {
            Format::Json(dialect) => {
                let v = render_one(r, tenant, catalog, e, dialect)?;
                let v = match dialect {
                    Dialect::Occi12 => v,
                    Dialect::Pyocni => {
                        if catalog.is_link_kind(&e.kind) {
                            json!({ "links": [v] })
                        } else {
                            json!({ "resources": [v] })
                        }
                    }
                };
                Ok(json_reply(StatusCode::OK, &v, format))
            }
            Format::TextPlain | Format::TextOcci => {
                Ok(text_reply(StatusCode::OK, text::entity_lines(e, catalog, &links_from(r, tenant, e)?), format))
            }
            // GFD.185 3.6.6 / GFD.229 8: text/uri-list for anything but a listing is a Bad Request.
            Format::UriList => Err(ApiError::bad(
                "text/uri-list renders collections only; ask for application/occi+json, text/plain or text/occi",
            )),
        }
    }
}

// ---------------------------------------------------------------------- helpers

/// Renders a listing: full entities in OCCI 1.2 JSON (GFD.223 entity collection), locations in
/// the other renderings.
fn render_listing(r: &impl Reads, tenant: &str, catalog: &Catalog, locations: &[String], req: &Request) -> R<Reply> {
    if req.format != Format::Json(Dialect::Occi12) {
        return Ok(locations_reply(StatusCode::OK, absolute(&req.base_url, locations), req.format, "X-OCCI-Location"));
    }
    let mut entities = Vec::with_capacity(locations.len());
    for loc in locations {
        entities.extend(r.entity(tenant, loc)?);
    }
    render_entities(r, tenant, catalog, &entities, req)
}

/// [`render_listing`] of entities already read.
fn render_entities(r: &impl Reads, tenant: &str, catalog: &Catalog, entities: &[Entity], req: &Request) -> R<Reply> {
    if req.format != Format::Json(Dialect::Occi12) {
        let locations: Vec<String> = entities.iter().map(|e| e.location.clone()).collect();
        return Ok(locations_reply(StatusCode::OK, absolute(&req.base_url, &locations), req.format, "X-OCCI-Location"));
    }
    let (mut resources, mut links) = (Vec::new(), Vec::new());
    for e in entities {
        let rendered = render_one(r, tenant, catalog, e, Dialect::Occi12)?;
        if catalog.is_link_kind(&e.kind) { links.push(rendered) } else { resources.push(rendered) }
    }
    Ok(json_reply(StatusCode::OK, &render::entity_collection(resources, links), req.format))
}

fn prefix(mut e: ApiError, place: &str) -> ApiError {
    e.message = format!("{place}: {}", e.message);
    e
}

fn not_found(path: &str) -> ApiError {
    ApiError::not_found(format!("no entity at {path:?}"))
}

fn no_action(req: &Request) -> R<()> {
    if req.route.action.is_some() {
        return Err(ApiError::bad("?action= applies to entities and collections, not to the query interface"));
    }
    Ok(())
}

fn kind_at(r: &impl Reads, tenant: &str, loc: &str) -> Option<String> {
    if !loc.starts_with('/') {
        return None;
    }
    r.entity(tenant, loc).ok().flatten().map(|e| e.kind)
}

/// The links whose source is `e` (rendered with it).
fn links_from(r: &impl Reads, tenant: &str, e: &Entity) -> R<Vec<Entity>> {
    Ok(r.links_at(tenant, &e.location)?.into_iter().filter(|l| l.source() == Some(e.location.as_str())).collect())
}

fn render_one(r: &impl Reads, tenant: &str, catalog: &Catalog, e: &Entity, dialect: Dialect) -> R<Value> {
    let links = links_from(r, tenant, e)?;
    // A link's source is `e` itself: no need to read it again for its kind.
    let kind_of = |loc: &str| if loc == e.location { Some(e.kind.clone()) } else { kind_at(r, tenant, loc) };
    Ok(render_entity(e, catalog, &links, dialect, &kind_of))
}

/// Entity ids become the last segment of a URL: keep them to unreserved URL characters.
fn entity_id(given: Option<&str>) -> R<String> {
    match given {
        // Time-ordered (RFC 9562 version 7): new entities' keys follow each other in the store,
        // so a batch of creates dirties a few pages instead of one per entity.
        None | Some("") => Ok(uuid::Uuid::now_v7().to_string()),
        Some(id) => {
            let id = id.strip_prefix("urn:uuid:").unwrap_or(id);
            let ok = id.len() <= 200
                && id != "."
                && id != ".."
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "-._~:@!$&'()*+,;=".contains(c));
            if ok {
                Ok(id.to_string())
            } else {
                Err(ApiError::bad(format!(
                    "id {id:?} cannot be part of a URL: use letters, digits and -._~:@!$&'()*+,;= (at most 200)"
                )))
            }
        }
    }
}

/// Creates one entity (and its inline links) after checking nothing is at its location.
#[allow(clippy::too_many_arguments)]
fn create_entity(
    app: &App,
    w: &mut Write,
    tenant: &str,
    catalog: &Catalog,
    base: &str,
    input: &EntityInput,
    location: &str,
    id: &str,
    created: &mut Vec<String>,
) -> R<()> {
    if w.entity(tenant, location)?.is_some() {
        return Err(ApiError::conflict(format!("an entity already exists at {location:?}")));
    }
    let mut e = catalog.create_entity(input, location, id)?;
    check_link_ends(w, tenant, catalog, base, &mut e)?;
    app.check_entity_limit(w, tenant)?;
    handlers::run(app, w, tenant, catalog, Stage::Create, &mut e)?;
    w.put_entity(tenant, &e)?;
    created.push(location.to_string());
    for (j, link) in input.links.iter().enumerate() {
        let place = format!("links[{j}]");
        if catalog.is_link_kind(&e.kind) {
            return Err(ApiError::bad(format!("{place}: only resources carry inline links")));
        }
        if !link.links.is_empty() {
            return Err(ApiError::bad(format!("{place}: a link cannot carry links")));
        }
        let kind_id =
            link.kind.as_deref().ok_or_else(|| ApiError::bad(format!("{place}: member \"kind\" is missing")))?;
        let kind = catalog
            .get(kind_id)
            .filter(|k| k.class == Class::Kind && catalog.is_link_kind(kind_id))
            .ok_or_else(|| ApiError::bad(format!("{place}: {kind_id:?} is not a link kind")))?;
        let mut link = link.clone();
        match &link.source {
            Some(s) if location_path(&s.location) != location => {
                return Err(ApiError::bad(format!(
                    "{place}: an inline link's source is the resource itself ({location:?}), not {:?}",
                    s.location
                )));
            }
            _ => {
                link.source =
                    Some(ocni_model::entity::LinkEnd { location: location.to_string(), kind: Some(e.kind.clone()) })
            }
        }
        let lid = entity_id(link.id.as_deref())?;
        let lloc = format!("{}{lid}", kind.location.as_deref().unwrap_or("/"));
        // The answer lists the resources created, not their inline links (GFD.185 3.4.5).
        create_entity(app, w, tenant, catalog, base, &link, &lloc, &lid, &mut Vec::new())
            .map_err(|e| prefix(e, &place))?;
    }
    Ok(())
}

/// A link's source must be a resource of this tenant; a local target must exist (its kind is
/// recorded); a target outside the server (absolute URL) is taken as given. A target naming
/// this server (`base`, the `--base-url` or `http://` + `Host` of the request) is local: it is
/// stored as its path, so it must exist and it goes with its resource.
fn check_link_ends(w: &Step, tenant: &str, catalog: &Catalog, base: &str, e: &mut Entity) -> R<()> {
    if !catalog.is_link_kind(&e.kind) {
        return Ok(());
    }
    if let Some(path) = e.target().and_then(|t| own_path(base, t)) {
        e.attributes.insert(ATTR_TARGET.into(), Value::String(path.to_string()));
    }
    let source = e.source().unwrap_or_default().to_string();
    match w.entity(tenant, &source)? {
        Some(s) if !catalog.is_link_kind(&s.kind) => {}
        Some(_) => return Err(ApiError::bad(format!("source {source:?} is a link; a link's source is a resource"))),
        None => return Err(ApiError::not_found(format!("source {source:?} does not exist"))),
    }
    let target = e.target().unwrap_or_default().to_string();
    if target.starts_with('/') {
        let t = w
            .entity(tenant, &target)?
            .ok_or_else(|| ApiError::not_found(format!("target {target:?} does not exist")))?;
        if catalog.is_link_kind(&t.kind) {
            return Err(ApiError::bad(format!("target {target:?} is a link; a link's target is a resource")));
        }
        e.attributes.insert(ATTR_TARGET_KIND.into(), Value::String(t.kind));
    } else if !target.contains("://") {
        return Err(ApiError::bad(format!(
            "target {target:?} must be a path on this server or an absolute URL ({ATTR_TARGET})"
        )));
    }
    Ok(())
}

/// The path of `url` when it is a URL of this server (`base` followed by a path; scheme and
/// host compared without case).
fn own_path<'a>(base: &str, url: &'a str) -> Option<&'a str> {
    let head = url.get(..base.len())?;
    let path = &url[base.len()..];
    (head.eq_ignore_ascii_case(base) && path.starts_with('/')).then_some(path)
}

/// Links of a resource are left intact by an update (GFD.223 6.2.2); they are created, changed
/// and deleted at their own location. Refuse rather than drop them silently.
fn no_links_on_update(input: &EntityInput) -> R<()> {
    if input.links.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad(
            "an update leaves a resource's links as they are: create, change or delete links at their own location",
        ))
    }
}

fn single_entity(body: &Value) -> R<EntityInput> {
    let mut list = ocni_model::parse_entity_collection(body)?;
    if list.len() != 1 {
        return Err(ApiError::bad(format!("this request takes exactly one entity, the body has {}", list.len())));
    }
    Ok(list.remove(0))
}

/// Binds a kind or mixin to a provider: `dummy` (no-op) or one of the tenant's handlers;
/// `None` unbinds.
fn bind(w: &mut Write, tenant: &str, catalog: &Catalog, id: &str, provider: Option<&str>) -> R<()> {
    let cat =
        catalog.get(id).ok_or_else(|| ApiError::not_found(format!("providers: category {id:?} does not exist")))?;
    if cat.class == Class::Action {
        return Err(ApiError::bad(format!("providers: {id:?} is an action; bind providers to kinds and mixins")));
    }
    if let Some(name) = provider
        && name != handlers::DUMMY
        && w.handler(tenant, name)?.is_none()
    {
        return Err(ApiError::bad(format!(
            "unknown provider {name:?} for {id:?}: upload it first (PUT /-/handlers/{name}) or use \"{}\"",
            handlers::DUMMY
        )));
    }
    Ok(w.set_binding(tenant, id, provider)?)
}

/// (category id, handler name) pairs.
type Bindings = Vec<(String, String)>;

/// `{"kinds": [...], "mixins": [...], "actions": [...]}` as categories, with the handler
/// bindings their `"handler"` members ask for (`providers` allowed when `allow_providers`, and
/// read separately).
fn parse_category_groups(body: &Value, allow_providers: bool) -> R<(Vec<Category>, Bindings)> {
    let obj = body.as_object().ok_or_else(|| ApiError::bad("the body must be a JSON object"))?;
    let mut out = Vec::new();
    let mut bindings = Vec::new();
    for (member, list) in obj {
        let class = match member.as_str() {
            "kinds" => Class::Kind,
            "mixins" => Class::Mixin,
            "actions" => Class::Action,
            "providers" if allow_providers => continue,
            other => {
                return Err(ApiError::bad(format!(
                    "member {other:?} is not allowed here (kinds, mixins, actions{})",
                    if allow_providers { ", providers" } else { "" }
                )));
            }
        };
        let list = list.as_array().ok_or_else(|| ApiError::bad(format!("{member} must be an array")))?;
        for (i, c) in list.iter().enumerate() {
            let place = format!("{member}[{i}]");
            let mut c = c.clone();
            let handler = match c.as_object_mut().and_then(|o| o.remove("handler")) {
                None => None,
                Some(Value::String(h)) if class != Class::Action => Some(h),
                Some(_) => {
                    return Err(ApiError::bad(format!("{place}: \"handler\" is a handler name, for kinds and mixins")));
                }
            };
            let cat = parse_category(class, &c).map_err(|e| ApiError::from(e.at(&place)))?;
            if let Some(h) = handler {
                bindings.push((cat.id(), h));
            }
            out.push(cat);
        }
    }
    Ok((out, bindings))
}

fn parse_category_refs(body: &Value) -> R<Vec<String>> {
    let obj = body.as_object().ok_or_else(|| ApiError::bad("the body must be a JSON object"))?;
    let mut out = Vec::new();
    for (member, list) in obj {
        if !matches!(member.as_str(), "kinds" | "mixins" | "actions") {
            return Err(ApiError::bad(format!("member {member:?} is not allowed here (kinds, mixins, actions)")));
        }
        let list = list.as_array().ok_or_else(|| ApiError::bad(format!("{member} must be an array")))?;
        for (i, c) in list.iter().enumerate() {
            let id = parse_category_ref(c).map_err(|e| ApiError::from(e.at(format!("{member}[{i}]"))))?;
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// The seed's providers body: `{"providers": [{"OCCI_ID": id, "Provider": {"local": [name]}}]}`.
/// An empty `local` list unbinds.
fn parse_providers(body: &Value) -> R<Vec<(String, Option<String>)>> {
    let Some(list) = body.get("providers") else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or_else(|| ApiError::bad("providers must be an array"))?;
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let place = format!("providers[{i}]");
        let obj = p.as_object().ok_or_else(|| ApiError::bad(format!("{place} must be an object")))?;
        let id = obj
            .get("OCCI_ID")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad(format!("{place}: member \"OCCI_ID\" (a category id) is missing")))?;
        split_id(id).map_err(|e| ApiError::from(e.at(&place)))?;
        let provider = obj
            .get("Provider")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::bad(format!("{place}: member \"Provider\" (an object) is missing")))?;
        let mut local = None;
        for (k, v) in provider {
            match k.as_str() {
                "local" => {
                    let names =
                        v.as_array().ok_or_else(|| ApiError::bad(format!("{place}: local must be an array")))?;
                    if names.len() > 1 {
                        return Err(ApiError::bad(format!(
                            "{place}: a category has one provider; local lists {}",
                            names.len()
                        )));
                    }
                    local = Some(match names.first() {
                        None => None,
                        Some(Value::String(n)) => Some(n.clone()),
                        Some(other) => {
                            return Err(ApiError::bad(format!("{place}: provider {other} is not a name")));
                        }
                    });
                }
                "remote" => {
                    return Err(ApiError::bad(format!(
                        "{place}: remote providers are not supported (pyOCNI never used them)"
                    )));
                }
                other => return Err(ApiError::bad(format!("{place}: unknown Provider member {other:?}"))),
            }
        }
        let local = local.ok_or_else(|| ApiError::bad(format!("{place}: Provider needs \"local\"")))?;
        out.push((id.to_string(), local));
    }
    Ok(out)
}

/// An action invocation body, in either dialect, or none: (named action id, parameters).
fn parse_action_body(body: Option<&Value>, term: &str) -> R<(Option<String>, Map<String, Value>)> {
    let Some(body) = body else { return Ok((None, Map::new())) };
    let obj = body.as_object().ok_or_else(|| ApiError::bad("an action invocation must be a JSON object"))?;
    let mut named = None;
    let mut params = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            // GFD.226: {"action": "scheme#term", "attributes": {...}}
            "action" => {
                named =
                    Some(v.as_str().ok_or_else(|| ApiError::bad("member \"action\" must be an action id"))?.to_string())
            }
            // pyOCNI: {"actions": [{"term": ..., "scheme": ...}], "attributes": {...}}
            "actions" => {
                let list = v.as_array().ok_or_else(|| ApiError::bad("member \"actions\" must be an array"))?;
                match list.as_slice() {
                    [one] => named = Some(parse_category_ref(one).map_err(|e| ApiError::from(e.at("actions[0]")))?),
                    _ => return Err(ApiError::bad("member \"actions\" must name exactly one action")),
                }
            }
            "attributes" => {
                params =
                    v.as_object().cloned().ok_or_else(|| ApiError::bad("member \"attributes\" must be an object"))?
            }
            other => return Err(ApiError::bad(format!("member {other:?} is not allowed in an action invocation"))),
        }
    }
    if let Some(id) = &named
        && id.rsplit('#').next() != Some(term)
    {
        return Err(ApiError::bad(format!("the body invokes {id:?} but the URL says ?action={term}")));
    }
    Ok((named, params))
}

fn check_given_action(given: Option<&str>, action: &Category) -> R<()> {
    match given {
        Some(id) if id != action.id() => Err(ApiError::bad(format!(
            "the body invokes {id:?}, but the applicable action with this term is {:?}",
            action.id()
        ))),
        _ => Ok(()),
    }
}

fn absolute(base: &str, locations: &[String]) -> Vec<String> {
    locations.iter().map(|l| format!("{base}{l}")).collect()
}

pub fn json_reply(status: StatusCode, v: &Value, format: Format) -> Reply {
    let mut body = serde_json::to_vec(v).expect("JSON values serialize");
    body.push(b'\n');
    Reply { status, headers: Vec::new(), body, content_type: Some(format.content_type()) }
}

fn text_reply(status: StatusCode, lines: Vec<Line>, format: Format) -> Reply {
    match format {
        Format::TextOcci => {
            Reply { status, headers: lines, body: b"OK\n".to_vec(), content_type: Some(format.content_type()) }
        }
        _ => Reply {
            status,
            headers: Vec::new(),
            body: text::plain_body(&lines).into_bytes(),
            content_type: Some(Format::TextPlain.content_type()),
        },
    }
}

fn render_category_list(cats: &[&Category], format: Format) -> R<Reply> {
    match format {
        Format::Json(d) => Ok(json_reply(StatusCode::OK, &render_categories(cats.iter().copied(), d), format)),
        Format::TextPlain | Format::TextOcci => {
            let mut lines: Vec<Line> = Vec::new();
            for class in Class::ALL {
                lines.extend(cats.iter().filter(|c| c.class == class).map(|c| text::category_line(c)));
            }
            Ok(text_reply(StatusCode::OK, lines, format))
        }
        Format::UriList => Err(ApiError::bad(
            "text/uri-list renders entity collections only; ask for application/occi+json, text/plain or text/occi",
        )),
    }
}

/// A list of absolute URLs under `header` (`X-OCCI-Location` for listings, `Location` for
/// creations).
fn locations_reply(status: StatusCode, urls: Vec<String>, format: Format, header: &'static str) -> Reply {
    match format {
        Format::Json(Dialect::Pyocni) if header == "Location" => {
            json_reply(status, &json!({ "Location": urls }), format)
        }
        Format::Json(d) => json_reply(status, &render_locations(urls, d), format),
        Format::UriList => {
            let mut body = String::new();
            for u in &urls {
                body.push_str(&text::location_text(u));
                body.push('\n');
            }
            Reply { status, headers: Vec::new(), body: body.into_bytes(), content_type: Some(format.content_type()) }
        }
        Format::TextPlain | Format::TextOcci => text_reply(status, text::location_lines(header, &urls), format),
    }
}

fn created_reply(base: &str, locations: &[String], format: Format) -> Reply {
    let urls = absolute(base, locations);
    // `Location` holds one URL: the first; text/occi lists them all as X-OCCI-Location.
    let mut reply = match format {
        Format::TextOcci if urls.len() > 1 => {
            locations_reply(StatusCode::CREATED, urls.clone(), format, "X-OCCI-Location")
        }
        Format::TextOcci => Reply { content_type: Some(format.content_type()), ..Reply::new(StatusCode::CREATED) },
        _ => locations_reply(StatusCode::CREATED, urls.clone(), format, "Location"),
    };
    if let Some(first) = urls.first() {
        reply.headers.push(("Location", text::location_text(first)));
    }
    reply
}
