//! WebAssembly handlers on the request path: the upload API (`/-/handlers/`), the host side of
//! the handler world for one tenant ([`TenantHost`]), and [`run`], which puts an entity through
//! the handlers bound to its kind and mixins before a write commits.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use ocni_model::{Catalog, Entity};
use ocni_runtime::{
    AttributeView, Call, CallError, ChangeView, EntityView, FilterView, HostApi, HostFault, LogLevel, Operation,
    Outcome, RefusalView, RuntimeError, UploadError, ValueView,
};
use ocni_store::{HandlerRecord, Reads, Source, Step};
use serde_json::{Value, json};

use crate::api::{App, Body, Reply, Request, json_reply};
use crate::error::ApiError;
use crate::negotiate::Format;

type R<T> = Result<T, ApiError>;

/// The provider name of pyOCNI's no-op backend: binding it means "no handler".
pub const DUMMY: &str = "dummy";

/// Bounds of a handler's key-value store.
const MAX_KV_KEY: usize = 256;
const MAX_KV_VALUE: usize = 64 * 1024;
const MAX_KV_KEYS_LISTED: usize = 1000;
/// How many entities a `find` looks at, at most, before giving up on more matches.
const MAX_FIND_SCAN: usize = 10_000;

/// Handler names: what fits in a URL segment and a log field.
pub fn check_name(name: &str) -> R<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Err(ApiError::bad(format!(
            "handler name {name:?} is not valid: 1 to 64 of a-z, 0-9, '-', '_', starting with a letter or digit"
        )));
    }
    if name == DUMMY {
        return Err(ApiError::bad(format!("{DUMMY:?} is the built-in no-op provider; choose another name")));
    }
    Ok(())
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

/// The categories bound to each handler name.
fn bound_categories(r: &[(String, String)], name: &str) -> Vec<String> {
    r.iter().filter(|(_, h)| h == name).map(|(c, _)| c.clone()).collect()
}

fn describe(rec: &HandlerRecord, bound: Vec<String>) -> Value {
    json!({"name": rec.name, "digest": rec.digest, "size": rec.size, "bound": bound})
}

impl App {
    /// `GET /-/handlers/`, `GET/PUT/DELETE /-/handlers/{name}`.
    pub(crate) fn handlers_api(&self, tenant: &str, name: Option<&str>, req: &Request) -> R<Reply> {
        if req.route.action.is_some() {
            return Err(ApiError::bad("?action= does not apply to handlers"));
        }
        // Handler descriptions are JSON documents whatever the client accepts.
        let format = Format::Json(ocni_model::Dialect::Occi12);
        match (req.method, name) {
            (&Method::GET | &Method::HEAD, None) => {
                let r = self.store.read()?;
                let bindings = r.bindings(tenant)?;
                let list: Vec<Value> =
                    r.handlers(tenant)?.iter().map(|h| describe(h, bound_categories(&bindings, &h.name))).collect();
                let mut v = json!({"handlers": list});
                // The compile count is server-wide: with several tenants it would tell one of
                // another's uploads.
                if !self.tenancy.is_multi_tenant() {
                    v["compiled_since_start"] = json!(self.runtime.compiled_count());
                }
                Ok(json_reply(StatusCode::OK, &v, format))
            }
            (&Method::GET | &Method::HEAD, Some(name)) => {
                let r = self.store.read()?;
                let rec = r
                    .handler(tenant, name)?
                    .ok_or_else(|| ApiError::not_found(format!("no handler named {name:?}")))?;
                let bound = bound_categories(&r.bindings(tenant)?, name);
                Ok(json_reply(StatusCode::OK, &describe(&rec, bound), format))
            }
            (&Method::PUT, Some(name)) => {
                check_name(name)?;
                // Compiled as it arrived (lib.rs), in the runtime's bounded worker.
                let Some(Body::Wasm { bytes, digest }) = &req.body else {
                    return Err(ApiError::bad("PUT /-/handlers/{name} needs the component as its body"));
                };
                let rec = HandlerRecord { name: name.to_string(), digest: digest.clone(), size: bytes.len() as u64 };
                let (replaced, bound) = self.write(tenant, |w, _| {
                    let replaced = w.handler(tenant, name)?.is_some();
                    if !replaced {
                        self.check_handler_limit(w, tenant)?;
                    }
                    w.put_handler(tenant, &rec, bytes)?;
                    Ok((replaced, bound_categories(&w.bindings(tenant)?, name)))
                })?;
                tracing::info!(tenant, handler = name, digest = %rec.digest, size = rec.size, replaced, "handler uploaded");
                let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
                let mut reply = json_reply(status, &describe(&rec, bound), format);
                reply.headers.push(("Location", format!("{}/-/handlers/{name}", req.base_url)));
                Ok(reply)
            }
            (&Method::DELETE, Some(name)) => {
                self.write(tenant, |w, _| {
                    let bound = bound_categories(&w.bindings(tenant)?, name);
                    if !bound.is_empty() {
                        return Err(ApiError::conflict(format!(
                            "handler {name:?} is bound to {}; bind those categories to another provider first",
                            bound.join(", ")
                        )));
                    }
                    if !w.delete_handler(tenant, name)? {
                        return Err(ApiError::not_found(format!("no handler named {name:?}")));
                    }
                    Ok(())
                })?;
                tracing::info!(tenant, handler = name, "handler deleted");
                Ok(Reply::new(StatusCode::OK))
            }
            (m, None) => Err(ApiError::method(m, "the handler list", "GET, HEAD")),
            (m, Some(_)) => Err(ApiError::method(m, "a handler", "GET, HEAD, PUT, DELETE")),
        }
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
}

/// A tenant's handler bindings and handler records, as the store has them: read on every write
/// that may run handlers, so cached with the tenant's catalog (`App::view`).
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

impl App {
    /// The handler bindings and records of `tenant` as the step `w` sees them: the cached ones
    /// unless the step changed them.
    pub(crate) fn handler_index(&self, w: &Step, tenant: &str) -> R<Arc<HandlerIndex>> {
        if w.touched(tenant) {
            return Ok(Arc::new(HandlerIndex::read(w, tenant)?));
        }
        Ok(Arc::clone(&self.view(tenant)?.handlers))
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

/// Puts `entity` through the handlers bound to it: for each, `validate` and then the stage's
/// hook, applying the attribute changes they return. Key-value writes join the step `w`. At
/// most `Config::handler_calls_per_tenant` calls of one tenant run at once; the others wait.
/// The result is checked against the model again, so a handler cannot store what the model
/// would refuse.
pub(crate) fn run(
    app: &App,
    w: &mut crate::api::Write,
    tenant: &str,
    catalog: &Catalog,
    stage: Stage,
    entity: &mut Entity,
) -> R<()> {
    let index = app.handler_index(w, tenant)?;
    let names = bound_to(&index.bindings, entity);
    if names.is_empty() {
        return Ok(());
    }
    let mut changed = false;
    for name in &names {
        let rec = index.records.get(name).ok_or_else(|| {
            ApiError::conflict(format!("{} is bound to handler {name:?}, which does not exist", entity.kind))
        })?;
        let handler = app.load_handler(w, tenant, rec)?;
        let op = match stage {
            Stage::Create => Operation::Create,
            Stage::Update { .. } => Operation::Update,
            Stage::Delete => Operation::Delete,
            Stage::Action { .. } => Operation::Action,
        };
        let fault = Arc::new(std::sync::OnceLock::new());
        let host: Box<dyn HostApi + Send> = Box::new(TenantHost::new(app, tenant, name, w.clone(), Arc::clone(&fault)));
        // `validate` and the stage's hook run on one instance (one instantiation per request).
        let calls = vec![
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
        if w.slot.is_none()
            && let Some(slots) = app.handler_slots(tenant)
        {
            match slots.try_acquire_owned() {
                Ok(permit) => w.slot = Some(permit),
                Err(_) => {
                    // `App::write` waits for a slot (without the step's snapshot) and prepares
                    // the write again.
                    w.wants_slot = true;
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("tenant {tenant}'s handler calls are all in use"),
                    ));
                }
            }
        }
        let (runtime, limits) = (app.runtime.clone(), app.call_limits(tenant));
        let (outcomes, host) = app
            .sandbox
            .run(move || runtime.call_each(&handler, host, calls, limits))
            .map_err(|e| ApiError::internal(&format!("calling handler {name}"), e))?;
        // The handler's key-value writes are in the step; the host's handle on it goes here.
        drop(host);
        if let Some(fault) = fault.get() {
            return Err(ApiError::internal(&format!("answering handler {name}"), fault));
        }
        for outcome in outcomes.map_err(|e| call_error(name, e))? {
            match outcome {
                Outcome::Accepted => {}
                Outcome::Changes(changes) if changes.is_empty() => {}
                Outcome::Changes(changes) => {
                    apply_changes(name, entity, changes)?;
                    changed = true;
                }
                Outcome::Refused(reasons) => return Err(refused(name, reasons)),
            }
        }
    }
    // The model checked the entity before; check again what the handlers changed.
    if !changed {
        return Ok(());
    }
    if !matches!(stage, Stage::Delete) {
        catalog.check_entity(entity).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("handler {} produced an invalid entity: {e}", names.join(", ")),
            )
        })?;
    }
    Ok(())
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

fn apply_changes(name: &str, e: &mut Entity, changes: Vec<ChangeView>) -> R<()> {
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

/// An entity as handlers see it.
pub fn entity_view(e: &Entity) -> EntityView {
    EntityView {
        location: e.location.clone(),
        id: e.id().to_string(),
        kind: e.kind.clone(),
        mixins: e.mixins.clone(),
        attributes: e.attributes.iter().map(|(k, v)| AttributeView::new(k.clone(), value_view(v))).collect(),
    }
}

fn value_view(v: &Value) -> ValueView {
    match v {
        Value::String(s) => ValueView::Text(s.clone()),
        Value::Bool(b) => ValueView::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ValueView::Integer(i),
            None => ValueView::Number(n.as_f64().unwrap_or(0.0)),
        },
        other => ValueView::Json(other.to_string()),
    }
}

fn value_of(v: &ValueView) -> Result<Value, String> {
    Ok(match v {
        ValueView::Text(s) => Value::String(s.clone()),
        ValueView::Integer(i) => Value::from(*i),
        ValueView::Number(f) => {
            serde_json::Number::from_f64(*f).map(Value::Number).ok_or_else(|| format!("the non-finite number {f}"))?
        }
        ValueView::Boolean(b) => Value::Bool(*b),
        ValueView::Json(text) => serde_json::from_str(text).map_err(|e| format!("invalid JSON ({e})"))?,
    })
}

/// The host side of the handler world for one call: queries over the tenant's entities and the
/// handler's key-value store as the request's step sees them (the snapshot the step was
/// prepared on, plus the step's own writes so far); key-value writes join the step.
pub struct TenantHost {
    tenant: String,
    handler: String,
    step: Step,
    /// Set when a host call could not be answered (the request then fails as a server error).
    fault: Arc<std::sync::OnceLock<String>>,
    /// The most entities one `find` returns (the server's configured bound).
    max_find_results: usize,
}

impl TenantHost {
    fn new(app: &App, tenant: &str, handler: &str, step: Step, fault: Arc<std::sync::OnceLock<String>>) -> TenantHost {
        TenantHost {
            tenant: tenant.to_string(),
            handler: handler.to_string(),
            step,
            fault,
            max_find_results: app.config.runtime.max_find_results,
        }
    }

    /// A storage failure: remembered for the request, and a trap for the guest.
    fn fault(&self, e: ocni_store::StoreError) -> HostFault {
        let message = e.to_string();
        let _ = self.fault.set(message.clone());
        HostFault(message)
    }
}

impl HostApi for TenantHost {
    fn log(&mut self, level: LogLevel, message: &str, fields: &[(String, String)]) {
        let fields: String = fields.iter().map(|(k, v)| format!(" {k}={v:?}")).collect();
        let (tenant, handler) = (&self.tenant, &self.handler);
        match level {
            LogLevel::Debug => tracing::debug!(tenant, handler, "{message}{fields}"),
            LogLevel::Info => tracing::info!(tenant, handler, "{message}{fields}"),
            LogLevel::Warn => tracing::warn!(tenant, handler, "{message}{fields}"),
            LogLevel::Error => tracing::error!(tenant, handler, "{message}{fields}"),
        }
    }

    fn find(&mut self, filter: FilterView) -> Result<Vec<EntityView>, HostFault> {
        let limit = (filter.limit as usize).min(self.max_find_results);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let source = match (&filter.kind, &filter.mixin) {
            (Some(k), _) => Source::Kind(k),
            (None, Some(m)) => Source::Mixin(m),
            (None, None) => Source::Prefix("/"),
        };
        let wanted: Vec<(String, Value)> =
            filter.attributes.iter().filter_map(|a| value_of(&a.value).ok().map(|v| (a.name.clone(), v))).collect();
        let (mut out, mut scanned) = (Vec::new(), 0);
        let scan = self.step.each_entity(&self.tenant, source, &mut |e| {
            scanned += 1;
            let mixin_ok = filter.mixin.as_ref().is_none_or(|m| e.mixins.contains(m));
            let attrs_ok = wanted
                .iter()
                .all(|(k, v)| e.attributes.get(k).is_some_and(|have| ocni_model::filter::value_eq(have, v)));
            if mixin_ok && attrs_ok {
                out.push(entity_view(&e));
            }
            if out.len() >= limit || scanned >= MAX_FIND_SCAN {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        scan.map_err(|e| self.fault(e))?;
        Ok(out)
    }

    fn get(&mut self, location: &str) -> Result<Option<EntityView>, HostFault> {
        let path = ocni_model::entity::location_path(location);
        Ok(self.step.entity(&self.tenant, path).map_err(|e| self.fault(e))?.map(|e| entity_view(&e)))
    }

    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostFault> {
        self.step.kv_get(&self.tenant, &self.handler, key).map_err(|e| self.fault(e))
    }

    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        if key.is_empty() || key.len() > MAX_KV_KEY {
            return Err(format!("keys are 1 to {MAX_KV_KEY} bytes"));
        }
        if value.len() > MAX_KV_VALUE {
            return Err(format!("values are at most {MAX_KV_VALUE} bytes"));
        }
        self.step.kv_set(&self.tenant, &self.handler, key, value).map_err(|e| self.fault(e).to_string())
    }

    fn kv_delete(&mut self, key: &str) {
        if let Err(e) = self.step.kv_delete(&self.tenant, &self.handler, key) {
            self.fault(e);
        }
    }

    fn kv_keys(&mut self, prefix: &str) -> Result<Vec<String>, HostFault> {
        self.step.kv_keys(&self.tenant, &self.handler, prefix, MAX_KV_KEYS_LISTED).map_err(|e| self.fault(e))
    }
}
