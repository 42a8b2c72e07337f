//! The one `bindgen!` site: host bindings of `ocni:handler/handler-world@0.1.3` (from the
//! workspace's `wit/` directory), and conversions between the generated types and the plain
//! mirrors in [`crate::types`].
//!
//! Host functions are synchronous and `trappable`: the outer `wasmtime::Result` is a trap, the
//! inner `Result` (where the WIT has one) is what the guest sees.
//!
//! The generated `HandlerWorldPre` is not used: it requires every export of the world, and the
//! `actions` (since 0.1.1) and `job-runner` (since 0.1.3) exports are optional. [`Exports`]
//! looks the exports up one interface at a time instead. Imports and exports match by semver
//! (`0.1.0` to `0.1.3` are compatible), so a component built against 0.1.0 links against this
//! host as it is; the `outbound` (since 0.1.2) and `jobs` (since 0.1.3) imports are offered to
//! every component and used by those that import them.

use wasmtime::AsContextMut;
use wasmtime::component::{Instance, InstancePre};

use crate::types::{
    AttributeView, ChangeView, EntityView, FilterView, HttpRequest, HttpResponse, JobView, LogLevel, Operation,
    OutboundError, RefusalView, ValueView,
};

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "handler-world",
    imports: { default: trappable },
});

use self::exports::ocni::handler::{actions, handler, job_runner};
pub(crate) use self::ocni::handler::types::Operation as WitOperation;
pub(crate) use self::ocni::handler::types::{Attribute, Change, Entity, Refusal, Value};
use self::ocni::handler::{log::Level, outbound, query::Filter};

/// The name the optional `actions` interface is exported under (any `0.1.x` matches).
const ACTIONS_EXPORT: &str = "ocni:handler/actions@0.1.3";
/// The name the optional `job-runner` interface is exported under (since 0.1.3).
const JOB_RUNNER_EXPORT: &str = "ocni:handler/job-runner@0.1.3";

/// Where a component's exports are: `handler` (required), `actions` (optional, since 0.1.1)
/// and `job-runner` (optional, since 0.1.3), found once per component so that a call only
/// loads them from its instance.
#[derive(Clone)]
pub(crate) struct Exports {
    handler: handler::GuestIndices,
    actions: Option<actions::GuestIndices>,
    job_runner: Option<job_runner::GuestIndices>,
}

impl Exports {
    /// Finds the exports of the component behind `pre`: fails without `handler`; `actions`
    /// is looked for only when the component exports an instance by that name (one with the
    /// wrong functions fails, rather than being taken for a 0.1.0 component).
    pub(crate) fn new<T>(pre: &InstancePre<T>) -> wasmtime::Result<Exports> {
        let handler = handler::GuestIndices::new(pre)?;
        let actions = match pre.component().get_export_index(None, ACTIONS_EXPORT) {
            Some(_) => Some(actions::GuestIndices::new(pre)?),
            None => None,
        };
        let job_runner = match pre.component().get_export_index(None, JOB_RUNNER_EXPORT) {
            Some(_) => Some(job_runner::GuestIndices::new(pre)?),
            None => None,
        };
        Ok(Exports { handler, actions, job_runner })
    }

    /// Whether the component exports `job-runner`.
    pub(crate) fn has_job_runner(&self) -> bool {
        self.job_runner.is_some()
    }

    /// The `job-runner` functions of `instance` (type-checked here), if the component exports
    /// them.
    pub(crate) fn job_runner(
        &self,
        store: impl AsContextMut,
        instance: &Instance,
    ) -> wasmtime::Result<Option<job_runner::Guest>> {
        self.job_runner.as_ref().map(|j| j.load(store, instance)).transpose()
    }

    /// Whether the component exports `actions`.
    pub(crate) fn has_actions(&self) -> bool {
        self.actions.is_some()
    }

    /// The `handler` functions of `instance` (type-checked here).
    pub(crate) fn handler(&self, store: impl AsContextMut, instance: &Instance) -> wasmtime::Result<handler::Guest> {
        self.handler.load(store, instance)
    }

    /// The `actions` functions of `instance` (type-checked here), if the component exports them.
    pub(crate) fn actions(
        &self,
        store: impl AsContextMut,
        instance: &Instance,
    ) -> wasmtime::Result<Option<actions::Guest>> {
        self.actions.as_ref().map(|a| a.load(store, instance)).transpose()
    }
}

impl From<ValueView> for Value {
    fn from(value: ValueView) -> Value {
        match value {
            ValueView::Text(s) => Value::Text(s),
            ValueView::Number(n) => Value::Number(n),
            ValueView::Integer(i) => Value::Integer(i),
            ValueView::Boolean(b) => Value::Boolean(b),
            ValueView::Json(s) => Value::Json(s),
        }
    }
}

impl From<Value> for ValueView {
    fn from(value: Value) -> ValueView {
        match value {
            Value::Text(s) => ValueView::Text(s),
            Value::Number(n) => ValueView::Number(n),
            Value::Integer(i) => ValueView::Integer(i),
            Value::Boolean(b) => ValueView::Boolean(b),
            Value::Json(s) => ValueView::Json(s),
        }
    }
}

impl From<AttributeView> for Attribute {
    fn from(a: AttributeView) -> Attribute {
        Attribute { name: a.name, value: a.value.into() }
    }
}

impl From<Attribute> for AttributeView {
    fn from(a: Attribute) -> AttributeView {
        AttributeView { name: a.name, value: a.value.into() }
    }
}

impl From<EntityView> for Entity {
    fn from(e: EntityView) -> Entity {
        Entity {
            location: e.location,
            id: e.id,
            kind: e.kind,
            mixins: e.mixins,
            attributes: e.attributes.into_iter().map(Attribute::from).collect(),
        }
    }
}

impl From<Entity> for EntityView {
    fn from(e: Entity) -> EntityView {
        EntityView {
            location: e.location,
            id: e.id,
            kind: e.kind,
            mixins: e.mixins,
            attributes: e.attributes.into_iter().map(AttributeView::from).collect(),
        }
    }
}

impl From<Operation> for WitOperation {
    fn from(op: Operation) -> WitOperation {
        match op {
            Operation::Create => WitOperation::Create,
            Operation::Update => WitOperation::Update,
            Operation::Delete => WitOperation::Delete,
            Operation::Action => WitOperation::Action,
        }
    }
}

impl From<Refusal> for RefusalView {
    fn from(r: Refusal) -> RefusalView {
        match r {
            Refusal::InvalidAttribute((name, reason)) => RefusalView::InvalidAttribute { name, reason },
            Refusal::Conflict(reason) => RefusalView::Conflict(reason),
            Refusal::Other(reason) => RefusalView::Other(reason),
        }
    }
}

impl From<Change> for ChangeView {
    fn from(c: Change) -> ChangeView {
        match c {
            Change::Set(a) => ChangeView::Set(a.into()),
            Change::Remove(name) => ChangeView::Remove(name),
        }
    }
}

impl From<Level> for LogLevel {
    fn from(level: Level) -> LogLevel {
        match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        }
    }
}

impl FilterView {
    /// The guest's filter, its limit lowered to `max`.
    pub(crate) fn from_wit(filter: Filter, max: usize) -> FilterView {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        FilterView {
            kind: filter.kind,
            mixin: filter.mixin,
            attributes: filter.attributes.into_iter().map(AttributeView::from).collect(),
            limit: filter.limit.min(max),
        }
    }
}

impl From<JobView> for job_runner::Job {
    fn from(j: JobView) -> job_runner::Job {
        job_runner::Job {
            id: j.id,
            name: j.name,
            payload: j.payload,
            entity: j.entity.into(),
            attempt: j.attempt,
            max_attempts: j.max_attempts,
        }
    }
}

impl From<outbound::Request> for HttpRequest {
    fn from(r: outbound::Request) -> HttpRequest {
        HttpRequest {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body: r.body,
            follow_redirects: r.follow_redirects,
        }
    }
}

impl From<HttpResponse> for outbound::Response {
    fn from(r: HttpResponse) -> outbound::Response {
        outbound::Response { status: r.status, headers: r.headers, body: r.body, url: r.url }
    }
}

impl From<OutboundError> for outbound::Error {
    fn from(e: OutboundError) -> outbound::Error {
        match e {
            OutboundError::Denied(m) => outbound::Error::Denied(m),
            OutboundError::Limit(m) => outbound::Error::Limit(m),
            OutboundError::Invalid(m) => outbound::Error::Invalid(m),
            OutboundError::Failed(m) => outbound::Error::Failed(m),
        }
    }
}
