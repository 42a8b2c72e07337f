//! The host side of the handler world for one call ([`TenantHost`]): queries over the tenant's
//! entities and the handler's key-value store as the request's step sees them, and the
//! conversions between stored entities and the views handlers get.

use std::ops::ControlFlow;
use std::sync::Arc;

use ocni_model::Entity;
use ocni_runtime::{
    AttributeView, EntityView, FilterView, HostApi, HostFault, HttpRequest, HttpResponse, LogLevel, OutboundError,
    ValueView,
};
use ocni_store::{Reads, Source, Step};
use serde_json::Value;

use super::jobs::Submissions;
use super::logs::{HandlerLogs, LogLine};
use super::outbound::Outbound;

/// Bounds of a handler's key-value store.
const MAX_KV_KEY: usize = 256;
const MAX_KV_VALUE: usize = 64 * 1024;
const MAX_KV_KEYS_LISTED: usize = 1000;
/// How many entities a `find` looks at, at most, before giving up on more matches.
const MAX_FIND_SCAN: usize = 10_000;

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

pub(super) fn value_view(v: &Value) -> ValueView {
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

pub(super) fn value_of(v: &ValueView) -> Result<Value, String> {
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
pub(super) struct TenantHost {
    tenant: String,
    handler: String,
    step: Step,
    /// Set when a host call could not be answered (the request then fails as a server error).
    fault: Arc<std::sync::OnceLock<String>>,
    /// The most entities one `find` returns (the server's configured bound).
    max_find_results: usize,
    /// Where the handler's log lines go besides the operator's log, and what they are about.
    log: LogContext,
    /// The call's outbound HTTP capability (allow-list, limits left).
    outbound: Outbound,
    /// The jobs the call submits (`jobs.submit`), or why it may not.
    jobs: Submissions,
    /// A job's attempt: `kv` writes are refused (its result is its changes, written apart).
    kv_read_only: bool,
}

/// Where a call's log lines go besides the operator's log: the handler's ring, tagged with the
/// entity and operation of the call.
#[derive(Clone)]
pub(super) struct LogContext {
    pub(super) logs: Arc<HandlerLogs>,
    pub(super) entity: Option<String>,
    pub(super) operation: Option<&'static str>,
}

impl LogContext {
    /// Writes a line to the operator's log and to the ring of `tenant`'s `handler`.
    pub(super) fn write(
        &self,
        tenant: &str,
        handler: &str,
        source: &'static str,
        level: LogLevel,
        message: &str,
        fields: &[(String, String)],
    ) {
        let text: String = fields.iter().map(|(k, v)| format!(" {k}={v:?}")).collect();
        let entity = self.entity.as_deref().unwrap_or("");
        match level {
            LogLevel::Debug => tracing::debug!(tenant, handler, entity, source, "{message}{text}"),
            LogLevel::Info => tracing::info!(tenant, handler, entity, source, "{message}{text}"),
            LogLevel::Warn => tracing::warn!(tenant, handler, entity, source, "{message}{text}"),
            LogLevel::Error => tracing::error!(tenant, handler, entity, source, "{message}{text}"),
        }
        self.logs.push(
            tenant,
            handler,
            LogLine {
                time: std::time::SystemTime::now(),
                level,
                source,
                entity: self.entity.clone(),
                operation: self.operation,
                message: message.to_string(),
                fields: fields.to_vec(),
            },
        );
    }
}

impl TenantHost {
    pub(super) fn new(
        tenant: &str,
        handler: &str,
        step: Step,
        max_find_results: usize,
        fault: Arc<std::sync::OnceLock<String>>,
        log: LogContext,
        outbound: Outbound,
    ) -> TenantHost {
        TenantHost {
            tenant: tenant.to_string(),
            handler: handler.to_string(),
            step,
            fault,
            max_find_results,
            log,
            outbound,
            jobs: Submissions::closed("only a create's or an action's calls may submit jobs"),
            kv_read_only: false,
        }
    }

    /// Lets the call submit jobs into `jobs` (or tells it why not).
    pub(super) fn with_jobs(mut self, jobs: Submissions) -> TenantHost {
        self.jobs = jobs;
        self
    }

    /// Makes `kv` read-only (a job's attempt).
    pub(super) fn read_only_kv(mut self) -> TenantHost {
        self.kv_read_only = true;
        self
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
        self.log.write(&self.tenant, &self.handler, "guest", level, message, fields);
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
        if self.kv_read_only {
            return Err("kv is read-only in a job: a job's result is its attribute changes".to_string());
        }
        if key.is_empty() || key.len() > MAX_KV_KEY {
            return Err(format!("keys are 1 to {MAX_KV_KEY} bytes"));
        }
        if value.len() > MAX_KV_VALUE {
            return Err(format!("values are at most {MAX_KV_VALUE} bytes"));
        }
        self.step.kv_set(&self.tenant, &self.handler, key, value).map_err(|e| self.fault(e).to_string())
    }

    fn kv_delete(&mut self, key: &str) {
        if self.kv_read_only {
            let message = format!("kv.delete({key:?}) ignored: kv is read-only in a job");
            self.log.write(&self.tenant, &self.handler, "host", LogLevel::Warn, &message, &[]);
            return;
        }
        if let Err(e) = self.step.kv_delete(&self.tenant, &self.handler, key) {
            self.fault(e);
        }
    }

    fn kv_keys(&mut self, prefix: &str) -> Result<Vec<String>, HostFault> {
        self.step.kv_keys(&self.tenant, &self.handler, prefix, MAX_KV_KEYS_LISTED).map_err(|e| self.fault(e))
    }

    fn submit_job(&mut self, name: &str, payload: &str) -> Result<String, String> {
        let result = self.jobs.submit(name, payload);
        let (level, message) = match &result {
            Ok(id) => (LogLevel::Debug, format!("job {id} ({name}) submitted")),
            Err(why) => (LogLevel::Warn, format!("job {name:?} refused: {why}")),
        };
        self.log.write(&self.tenant, &self.handler, "host", level, &message, &[]);
        result
    }

    fn http(&mut self, request: HttpRequest, deadline: std::time::Instant) -> Result<HttpResponse, OutboundError> {
        let (method, url) = (request.method.clone(), request.url.clone());
        let started = std::time::Instant::now();
        let result = self.outbound.send(request, deadline);
        let elapsed_ms = started.elapsed().as_millis().to_string();
        let fields = |more: Vec<(&str, String)>| -> Vec<(String, String)> {
            [("method", method.clone()), ("url", url.clone()), ("elapsed_ms", elapsed_ms.clone())]
                .into_iter()
                .chain(more)
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        };
        // Refusals are what an author needs to see; successes are detail.
        let (level, message, fields) = match &result {
            Ok(r) => (LogLevel::Debug, "outbound request".to_string(), fields(vec![("status", r.status.to_string())])),
            Err(e @ (OutboundError::Denied(_) | OutboundError::Limit(_))) => {
                (LogLevel::Warn, format!("outbound request refused: {e}"), fields(vec![]))
            }
            Err(e) => (LogLevel::Info, format!("outbound request failed: {e}"), fields(vec![])),
        };
        self.log.write(&self.tenant, &self.handler, "host", level, &message, &fields);
        result
    }
}
