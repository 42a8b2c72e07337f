//! Write ocni handlers in plain Rust.
//!
//! An ocni handler is a WebAssembly component that a tenant uploads for its kinds and mixins.
//! It targets the WIT world `ocni:handler/handler-world@0.1.3` (`wit/handler.wit` in the ocni
//! repository): the server calls its exports to validate entities and to drive their lifecycle
//! and actions, and the handler may call back into the server through the `log`, `query` and `kv`
//! imports. This crate hides the generated bindings behind:
//!
//! * the [`Handler`] trait, whose functions all have defaults (accept, change nothing, every
//!   action applies), so a handler implements only what it needs;
//! * the [`export_handler!`] macro, which makes a type implementing [`Handler`] the component's
//!   export;
//! * the shared types ([`Entity`], [`Value`], [`Attribute`], [`Operation`], [`Refusal`],
//!   [`Change`]) with helpers such as [`Entity::attr_str`] and [`Refusal::invalid`];
//! * the host interfaces as plain functions: [`log`], [`query`], [`kv`], [`outbound`] and
//!   [`jobs`] (long operations: [`Handler::run_job`] runs them).
//!
//! ```no_run
//! use ocni_handler_sdk::{Change, Entity, Handler, Operation, Refusal, log};
//!
//! struct Quota;
//!
//! impl Handler for Quota {
//!     fn validate(entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
//!         match entity.attr_i64("occi.compute.cores") {
//!             Some(cores) if cores > 8 => Err(vec![Refusal::invalid("occi.compute.cores", "at most 8 on this plan")]),
//!             _ => Ok(()),
//!         }
//!     }
//!
//!     fn on_create(entity: Entity) -> Result<Vec<Change>, Refusal> {
//!         log::info("compute created", &[("location", &entity.location)]);
//!         Ok(vec![Change::set("occi.compute.hostname", format!("{}.example", entity.id))])
//!     }
//! }
//!
//! ocni_handler_sdk::export_handler!(Quota);
//! ```
//!
//! The handler crate is a `cdylib` built with `cargo build --release --target wasm32-wasip2`:
//! rustc links a component directly, no other tool is needed. Each request gets a fresh
//! instance (its `validate` and hook share it), so statics do not survive from one request to
//! the next: keep state in [`kv`].
//!
//! # What the server links
//!
//! Besides the `ocni:handler` interfaces, the standard library makes every `wasm32-wasip2`
//! component import `wasi:cli/{environment, exit, stdin, stdout, stderr, terminal-*}` and
//! `wasi:io/{error, poll, streams}`, and more as it is used: `wasi:clocks` (`std::time`),
//! `wasi:random` (`std::collections::HashMap::new()` seeds its hasher from it),
//! `wasi:filesystem` (`std::fs`), `wasi:sockets` (`std::net`). The server links all of them
//! against a locked-down context: no environment or arguments, a panic message to a bounded
//! stderr, real clocks (a sleep ends at the call's deadline), random numbers, no preopened
//! directory (every file operation fails) and no socket or name lookup (denied). Anything else
//! (`wasi:http`) is refused at upload.

use std::fmt;

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "handler-world",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_handler_world",
        default_bindings_module: "ocni_handler_sdk::__bindings",
        additional_derives: [Clone, PartialEq],
    });
}

use __bindings::exports::ocni::handler::actions as action_exports;
use __bindings::exports::ocni::handler::handler as exports;
use __bindings::exports::ocni::handler::job_runner as job_exports;
use __bindings::ocni::handler as imports;

pub use imports::types::{Attribute, Change, Entity, Operation, Refusal, Value};
/// One attempt at a job (see [`Handler::run_job`]).
pub use job_exports::Job;

/// The attribute holding a link's source location.
pub const ATTR_SOURCE: &str = "occi.core.source";
/// The attribute holding a link's target location.
pub const ATTR_TARGET: &str = "occi.core.target";

/// What a handler does. Every function has a default that accepts and changes nothing.
///
/// The functions are associated functions, not methods: each request runs in a fresh component
/// instance, so there is no state to keep in `self` (use [`kv`] for state that must last).
pub trait Handler {
    /// Checks an entity about to be written: the new state for create, update and action, the
    /// stored state for delete. Return every problem found, not just the first.
    fn validate(entity: Entity, op: Operation) -> Result<(), Vec<Refusal>> {
        let _ = (entity, op);
        Ok(())
    }

    /// Called when an entity is created, after [`Handler::validate`]; may change its attributes.
    fn on_create(entity: Entity) -> Result<Vec<Change>, Refusal> {
        let _ = entity;
        Ok(Vec::new())
    }

    /// Called when an entity is updated, with the stored (`old`) and the new state; the changes
    /// apply to the new state.
    fn on_update(old: Entity, new: Entity) -> Result<Vec<Change>, Refusal> {
        let _ = (old, new);
        Ok(Vec::new())
    }

    /// Called before an entity is deleted; a refusal keeps it.
    fn on_delete(entity: Entity) -> Result<(), Refusal> {
        let _ = entity;
        Ok(())
    }

    /// Performs an action (`scheme#term`, see [`action_term`]) with its parameters; may change
    /// attributes.
    fn on_action(entity: Entity, action: String, params: Vec<Attribute>) -> Result<Vec<Change>, Refusal> {
        let _ = (entity, action, params);
        Ok(Vec::new())
    }

    /// Of `actions` (the ids, `scheme#term`, of the actions the entity's kind offers), the ones
    /// that apply to `entity` in its current state. The server asks the handler bound to the
    /// entity's kind right after the hook of a create, an update or an action (the entity has
    /// the hook's changes), stores the answer with the entity, renders only those actions and
    /// refuses the others with 409 before [`Handler::on_action`] is called. Keep it consistent
    /// with `on_action`. The default: every action applies.
    fn applicable(entity: Entity, actions: Vec<String>) -> Vec<String> {
        let _ = entity;
        actions
    }

    /// Runs one attempt at a job that this handler submitted with [`jobs::submit`] (WIT
    /// 0.1.3), after the request committed: on a fresh instance, with the server's job
    /// deadline (30 s by default) and the handler's [`outbound`] capability; [`kv`] is
    /// read-only. `Ok` carries the changes for the entity (written by the host, as a hook's);
    /// `Err` fails the attempt: the host tries again after a backoff, then calls
    /// [`Handler::job_failed`]. Attempts may repeat (at least once): keep backend requests
    /// idempotent (key them by [`Job::id`] or the entity id). The default fails: a handler
    /// that submits jobs implements this.
    fn run_job(job: Job) -> Result<Vec<Change>, String> {
        Err(format!("this handler does not run jobs (job {:?})", job.name))
    }

    /// The changes that put the entity in its error state once the last attempt at `job`
    /// failed (`reason`: the last failure). The default sets every `occi.*.state` attribute
    /// the entity has (`occi.compute.state`, `occi.storage.state`...) to `"error"`.
    fn job_failed(job: Job, reason: String) -> Vec<Change> {
        let _ = reason;
        job.entity
            .attributes
            .iter()
            .filter(|a| a.name.starts_with("occi.") && a.name.ends_with(".state"))
            .map(|a| Change::set(a.name.clone(), "error"))
            .collect()
    }
}

/// Makes a type implementing [`Handler`] the export of the component. Use it once, at the
/// top level of the handler crate:
///
/// ```no_run
/// struct MyHandler;
/// impl ocni_handler_sdk::Handler for MyHandler {}
/// ocni_handler_sdk::export_handler!(MyHandler);
/// ```
#[macro_export]
macro_rules! export_handler {
    ($ty:ty) => {
        const _: () = {
            type __OcniHandlerExport = $crate::Export<$ty>;
    $crate::__bindings::__export_handler_world!(__OcniHandlerExport with_types_in $crate::__bindings);
        };
    };
}

/// The glue between [`Handler`] and the generated export trait; used by [`export_handler!`].
#[doc(hidden)]
pub struct Export<H>(std::marker::PhantomData<H>);

impl<H: Handler> exports::Guest for Export<H> {
    fn validate(entity: Entity, op: Operation) -> Result<(), Vec<Refusal>> {
        H::validate(entity, op)
    }
    fn on_create(entity: Entity) -> Result<Vec<Change>, Refusal> {
        H::on_create(entity)
    }
    fn on_update(old: Entity, new: Entity) -> Result<Vec<Change>, Refusal> {
        H::on_update(old, new)
    }
    fn on_delete(entity: Entity) -> Result<(), Refusal> {
        H::on_delete(entity)
    }
    fn on_action(entity: Entity, action: String, params: Vec<Attribute>) -> Result<Vec<Change>, Refusal> {
        H::on_action(entity, action, params)
    }
}

impl<H: Handler> action_exports::Guest for Export<H> {
    fn applicable(entity: Entity, actions: Vec<String>) -> Vec<String> {
        H::applicable(entity, actions)
    }
}

impl<H: Handler> job_exports::Guest for Export<H> {
    fn run(job: Job) -> Result<Vec<Change>, String> {
        H::run_job(job)
    }
    fn failed(job: Job, reason: String) -> Vec<Change> {
        H::job_failed(job, reason)
    }
}

/// The term of a category or action identifier: what follows the last `#`
/// (`http://schemas.ogf.org/occi/infrastructure/compute/action#start` → `start`).
pub fn action_term(id: &str) -> &str {
    id.rsplit_once('#').map_or(id, |(_, term)| term)
}

/// The scheme of a category or action identifier, `#` included
/// (`http://schemas.ogf.org/occi/infrastructure/compute/action#`).
pub fn action_scheme(id: &str) -> &str {
    id.rfind('#').map_or("", |i| &id[..=i])
}

impl Entity {
    /// The value of an attribute, by its full dotted name.
    pub fn attr(&self, name: &str) -> Option<&Value> {
        // Attributes come sorted by name, but a binary search would give wrong answers if a
        // caller built an unsorted entity by hand; the lists are short.
        self.attributes.iter().find(|a| a.name == name).map(|a| &a.value)
    }

    /// The attribute as text, if it is set and is text.
    pub fn attr_str(&self, name: &str) -> Option<&str> {
        self.attr(name).and_then(Value::as_str)
    }

    /// The attribute as a whole number, if it is set and is one (a number with no fractional
    /// part counts).
    pub fn attr_i64(&self, name: &str) -> Option<i64> {
        self.attr(name).and_then(Value::as_i64)
    }

    /// The attribute as a number, if it is set and is a number (integers included).
    pub fn attr_f64(&self, name: &str) -> Option<f64> {
        self.attr(name).and_then(Value::as_f64)
    }

    /// The attribute as a boolean, if it is set and is one.
    pub fn attr_bool(&self, name: &str) -> Option<bool> {
        self.attr(name).and_then(Value::as_bool)
    }

    /// Whether the attribute is set.
    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// Whether the entity carries the mixin (`scheme#term`).
    pub fn has_mixin(&self, mixin: &str) -> bool {
        self.mixins.iter().any(|m| m == mixin)
    }

    /// For a link: the location of its source resource.
    pub fn source(&self) -> Option<&str> {
        self.attr_str(ATTR_SOURCE)
    }

    /// For a link: the location of its target.
    pub fn target(&self) -> Option<&str> {
        self.attr_str(ATTR_TARGET)
    }
}

impl Value {
    /// The text, for [`Value::Text`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The whole number, for [`Value::Integer`] and for a [`Value::Number`] without a
    /// fractional part that fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Integer(i) => Some(i),
            Value::Number(n) if n.fract() == 0.0 && n >= i64::MIN as f64 && n < i64::MAX as f64 => Some(n as i64),
            _ => None,
        }
    }

    /// The number, for [`Value::Number`] and [`Value::Integer`].
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Number(n) => Some(n),
            Value::Integer(i) => Some(i as f64),
            _ => None,
        }
    }

    /// The boolean, for [`Value::Boolean`].
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Boolean(b) => Some(b),
            _ => None,
        }
    }

    /// The JSON text, for [`Value::Json`] (arrays and objects).
    pub fn as_json(&self) -> Option<&str> {
        match self {
            Value::Json(s) => Some(s),
            _ => None,
        }
    }

    /// The name of the value's type, for messages: `text`, `number`, `integer`, `boolean` or
    /// `json`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Text(_) => "text",
            Value::Number(_) => "number",
            Value::Integer(_) => "integer",
            Value::Boolean(_) => "boolean",
            Value::Json(_) => "json",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Integer(i.into())
    }
}
impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Integer(i.into())
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl Attribute {
    /// An attribute from a name and anything that converts into a [`Value`].
    pub fn new(name: impl Into<String>, value: impl Into<Value>) -> Self {
        Attribute { name: name.into(), value: value.into() }
    }
}

impl Change {
    /// Sets (adds or replaces) an attribute: `Change::set("occi.compute.state", "active")`.
    pub fn set(name: impl Into<String>, value: impl Into<Value>) -> Self {
        Change::Set(Attribute::new(name, value))
    }

    /// Removes an attribute.
    pub fn remove(name: impl Into<String>) -> Self {
        Change::Remove(name.into())
    }
}

impl Refusal {
    /// An attribute is wrong (the client gets 400):
    /// `Refusal::invalid("occi.compute.cores", "must be at most 64")`.
    pub fn invalid(attribute: impl Into<String>, reason: impl Into<String>) -> Self {
        Refusal::InvalidAttribute((attribute.into(), reason.into()))
    }

    /// The request conflicts with the entity's state (the client gets 409):
    /// `Refusal::conflict("the compute is already active")`.
    pub fn conflict(reason: impl Into<String>) -> Self {
        Refusal::Conflict(reason.into())
    }

    /// Any other reason (the client gets 400).
    pub fn other(reason: impl Into<String>) -> Self {
        Refusal::Other(reason.into())
    }

    /// The human-readable reason.
    pub fn reason(&self) -> &str {
        match self {
            Refusal::InvalidAttribute((_, reason)) | Refusal::Conflict(reason) | Refusal::Other(reason) => reason,
        }
    }
}

/// Structured logging into the server's log, tagged by the server with the tenant and the
/// handler. The host bounds the volume per call: lines past the budget are dropped (and
/// counted), so log what helps an operator, not every step.
pub mod log {
    pub use super::imports::log::Level;
    use super::imports::log::write as host_write;

    /// Writes one line at `level` with key-value fields.
    pub fn write(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        host_write(level, message, &fields);
    }

    /// Writes a debug line: `log::debug("checked", &[("location", &e.location)])`.
    pub fn debug(message: &str, fields: &[(&str, &str)]) {
        write(Level::Debug, message, fields)
    }

    /// Writes an info line.
    pub fn info(message: &str, fields: &[(&str, &str)]) {
        write(Level::Info, message, fields)
    }

    /// Writes a warning.
    pub fn warn(message: &str, fields: &[(&str, &str)]) {
        write(Level::Warn, message, fields)
    }

    /// Writes an error line.
    pub fn error(message: &str, fields: &[(&str, &str)]) {
        write(Level::Error, message, fields)
    }
}

/// Read-only queries over the entities of the handler's own tenant. Writes of the request
/// being handled are not visible yet.
pub mod query {
    use super::{Attribute, Entity, Value, imports::query as host};

    pub use host::Filter;

    impl Filter {
        /// Matches every entity, up to the host's own bound. Narrow it with the builder methods:
        /// `Filter::new().kind(NETWORKINTERFACE).attr("occi.core.target", "/network/1").limit(10)`.
        pub fn new() -> Self {
            Filter { kind: None, mixin: None, attributes: Vec::new(), limit: u32::MAX }
        }

        /// Only entities of this kind (`scheme#term`).
        pub fn kind(mut self, kind: impl Into<String>) -> Self {
            self.kind = Some(kind.into());
            self
        }

        /// Only entities carrying this mixin (`scheme#term`).
        pub fn mixin(mut self, mixin: impl Into<String>) -> Self {
            self.mixin = Some(mixin.into());
            self
        }

        /// Only entities whose attribute `name` equals `value` (may be repeated; all must match).
        pub fn attr(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
            self.attributes.push(Attribute::new(name, value));
            self
        }

        /// At most `limit` entities (the host also applies its own bound).
        pub fn limit(mut self, limit: u32) -> Self {
            self.limit = limit;
            self
        }
    }

    impl Default for Filter {
        fn default() -> Self {
            Filter::new()
        }
    }

    /// The entities matching the filter, in location order.
    pub fn find(filter: Filter) -> Vec<Entity> {
        host::find(&filter)
    }

    /// The entity at a server path (e.g. a link's `occi.core.target`), if there is one.
    pub fn get(location: &str) -> Option<Entity> {
        host::get(location)
    }
}

/// A small key-value store private to this handler within its tenant. Values survive
/// restarts; a write commits together with the request, so a refused or failed request leaves
/// no trace.
pub mod kv {
    use super::imports::kv as host;

    /// The value stored under `key`, if any.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        host::get(key)
    }

    /// The value stored under `key` as UTF-8 text, if there is one and it is text.
    pub fn get_string(key: &str) -> Option<String> {
        get(key).and_then(|v| String::from_utf8(v).ok())
    }

    /// The value stored under `key` as a decimal number (as [`set_u64`] writes it).
    pub fn get_u64(key: &str) -> Option<u64> {
        get_string(key).and_then(|s| s.parse().ok())
    }

    /// Stores `value` under `key`. Fails with the host's reason past its size limits.
    pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), String> {
        host::set(key, value.as_ref())
    }

    /// Stores a number under `key` as decimal text.
    pub fn set_u64(key: &str, value: u64) -> Result<(), String> {
        set(key, value.to_string())
    }

    /// Removes `key`; nothing happens if it is absent.
    pub fn delete(key: &str) {
        host::delete(key)
    }

    /// The keys that start with `prefix`, in order.
    pub fn keys(prefix: &str) -> Vec<String> {
        host::keys(prefix)
    }
}

/// Outbound HTTP (since WIT 0.1.2): plain HTTP/1.1 requests to the origins the handler is
/// allowed (the tenant lists them at upload, `?allow-outbound=http://host:port,...`, within what
/// the operator allows). Every request, and every redirect followed, is checked by the host:
/// origin, resolved address (no private addresses unless the operator allows them) and the
/// per-call limits on requests, bytes and time. A component that never calls these functions
/// does not import `outbound`, and loads on hosts older than 0.1.2.
pub mod outbound {
    use super::imports::outbound as host;
    pub use host::{Error, Request, Response};

    /// Sends `request` and waits for the whole answer (within the call's deadline).
    pub fn send(request: &Request) -> Result<Response, Error> {
        host::send(request)
    }

    /// A request with no headers and no body, following no redirect.
    pub fn request(method: &str, url: &str) -> Request {
        Request { method: method.into(), url: url.into(), headers: Vec::new(), body: Vec::new(), follow_redirects: 0 }
    }

    /// `GET url`, following no redirect.
    pub fn get(url: &str) -> Result<Response, Error> {
        send(&request("GET", url))
    }

    impl Error {
        /// `denied: origin http://... is not in the handler's allow-list`, and so on.
        pub fn describe(&self) -> String {
            match self {
                Error::Denied(m) => format!("denied: {m}"),
                Error::Limit(m) => format!("limit: {m}"),
                Error::Invalid(m) => format!("invalid: {m}"),
                Error::Failed(m) => format!("failed: {m}"),
            }
        }
    }
}

/// Long operations (since WIT 0.1.3): from a create or an action (its `validate` or hook),
/// ask the host to run a job for the entity once the request has committed; the client gets
/// 202 Accepted. The host then calls [`Handler::run_job`] with it. Typical use: the hook sets a
/// transitional state (`"pending"`) and submits; the job talks to the backend and returns the
/// final state.
pub mod jobs {
    use super::imports::jobs as host;

    /// Submits a job named `name` with `payload` (any text, e.g. JSON) for the entity of this
    /// call: its id, or why not (not a create's or an action's call, more than 4 jobs in one
    /// call, 16 unfinished for the entity, a name over 64 characters or a payload over 64 KiB).
    pub fn submit(name: &str, payload: &str) -> Result<String, String> {
        host::submit(name, payload)
    }
}

/// A readable form of a refusal: `invalid occi.compute.cores: must be at most 64`.
pub struct DisplayRefusal<'a>(pub &'a Refusal);

impl fmt::Display for DisplayRefusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Refusal::InvalidAttribute((name, reason)) => write!(f, "invalid {name}: {reason}"),
            Refusal::Conflict(reason) => write!(f, "conflict: {reason}"),
            Refusal::Other(reason) => write!(f, "{reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(attrs: Vec<Attribute>) -> Entity {
        Entity {
            location: "/compute/1".into(),
            id: "1".into(),
            kind: "http://schemas.ogf.org/occi/infrastructure#compute".into(),
            mixins: vec!["http://example.com/m#x".into()],
            attributes: attrs,
        }
    }

    #[test]
    fn attribute_helpers() {
        let e = entity(vec![
            Attribute::new("a.int", 4),
            Attribute::new("a.num", 2.5),
            Attribute::new("a.whole", 3.0),
            Attribute::new("a.text", "x"),
            Attribute::new("a.bool", true),
        ]);
        assert_eq!(e.attr_i64("a.int"), Some(4));
        assert_eq!(e.attr_f64("a.int"), Some(4.0));
        assert_eq!(e.attr_i64("a.num"), None);
        assert_eq!(e.attr_i64("a.whole"), Some(3));
        assert_eq!(e.attr_f64("a.num"), Some(2.5));
        assert_eq!(e.attr_str("a.text"), Some("x"));
        assert_eq!(e.attr_str("a.int"), None);
        assert_eq!(e.attr_bool("a.bool"), Some(true));
        assert!(e.has_mixin("http://example.com/m#x"));
        assert!(!e.has_attr("a.none"));
    }

    #[test]
    fn identifiers_and_refusals() {
        let id = "http://schemas.ogf.org/occi/infrastructure/compute/action#start";
        assert_eq!(action_term(id), "start");
        assert_eq!(action_scheme(id), "http://schemas.ogf.org/occi/infrastructure/compute/action#");
        let r = Refusal::invalid("occi.compute.cores", "must be at most 64");
        assert_eq!(r.reason(), "must be at most 64");
        assert_eq!(DisplayRefusal(&r).to_string(), "invalid occi.compute.cores: must be at most 64");
        assert_eq!(Change::set("a", 1), Change::Set(Attribute { name: "a".into(), value: Value::Integer(1) }));
    }
}
