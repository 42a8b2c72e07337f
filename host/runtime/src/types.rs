//! Plain Rust mirrors of the `ocni:handler@0.1.3` WIT types, the calls a handler serves and what
//! it answers, and [`HostApi`], the host side of the imports a handler sees. Callers never see the
//! `bindgen!` types.

/// An attribute value (WIT `value`). Arrays and objects travel as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueView {
    /// A string.
    Text(String),
    /// A number with a fractional part (or any number that is not carried as an integer).
    Number(f64),
    /// A whole number.
    Integer(i64),
    /// true or false.
    Boolean(bool),
    /// An array or object, as JSON text.
    Json(String),
}

/// One attribute: its full dotted name (e.g. `occi.compute.cores`) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeView {
    /// Full dotted name.
    pub name: String,
    /// The value.
    pub value: ValueView,
}

impl AttributeView {
    /// An attribute named `name` with value `value`.
    pub fn new(name: impl Into<String>, value: ValueView) -> AttributeView {
        AttributeView { name: name.into(), value }
    }
}

/// An entity (resource or link) as a handler sees it (WIT `entity`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntityView {
    /// Server path, e.g. `/compute/3f2a...`.
    pub location: String,
    /// The entity id (last segment of the location).
    pub id: String,
    /// Kind identifier, `scheme#term`.
    pub kind: String,
    /// Mixin identifiers, in the entity's order.
    pub mixins: Vec<String>,
    /// Every attribute, `occi.core.*` included, sorted by name.
    pub attributes: Vec<AttributeView>,
}

impl EntityView {
    /// Applies attribute changes in order, as the host applies a hook's answer: `set` replaces
    /// or adds (attributes stay sorted by name), `remove` drops the attribute if it is there.
    pub fn apply(&mut self, changes: &[ChangeView]) {
        for change in changes {
            match change {
                ChangeView::Set(a) => match self.attributes.binary_search_by(|b| b.name.cmp(&a.name)) {
                    Ok(i) => self.attributes[i] = a.clone(),
                    Err(i) => self.attributes.insert(i, a.clone()),
                },
                ChangeView::Remove(name) => self.attributes.retain(|b| &b.name != name),
            }
        }
    }
}

/// What is being done to the entity that `validate` sees (WIT `operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// The entity is being created.
    Create,
    /// The entity is being updated.
    Update,
    /// The entity is being deleted.
    Delete,
    /// An action is being performed on the entity.
    Action,
}

/// Why a handler refuses a request (WIT `refusal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalView {
    /// An attribute is wrong. Meant to become a 400 naming the attribute.
    InvalidAttribute {
        /// The attribute's full name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request conflicts with the entity's state. Meant to become a 409.
    Conflict(String),
    /// Any other reason. Meant to become a 400.
    Other(String),
}

impl std::fmt::Display for RefusalView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefusalView::InvalidAttribute { name, reason } => write!(f, "attribute {name}: {reason}"),
            RefusalView::Conflict(reason) | RefusalView::Other(reason) => f.write_str(reason),
        }
    }
}

/// An attribute change a handler asks for (WIT `change`).
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeView {
    /// Set (add or replace) an attribute.
    Set(AttributeView),
    /// Remove an attribute by name.
    Remove(String),
}

/// Which entities a handler's `find` asks for (WIT `query.filter`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FilterView {
    /// Only entities of this kind (`scheme#term`).
    pub kind: Option<String>,
    /// Only entities carrying this mixin.
    pub mixin: Option<String>,
    /// Only entities whose attributes equal these.
    pub attributes: Vec<AttributeView>,
    /// At most this many. The runtime has already lowered it to
    /// [`RuntimeConfig::max_find_results`](crate::RuntimeConfig::max_find_results).
    pub limit: u32,
}

/// Severity of a handler's log line (WIT `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// One call into a handler: which export to run, with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `validate(entity, op)`: the new state for create, update and action, the stored state for
    /// delete.
    Validate {
        /// The entity to check.
        entity: EntityView,
        /// What is being done to it.
        op: Operation,
    },
    /// `on-create(entity)`, after `validate`.
    Create {
        /// The entity being created.
        entity: EntityView,
    },
    /// `on-update(old, new)`.
    Update {
        /// The stored state.
        old: EntityView,
        /// The new state.
        new: EntityView,
    },
    /// `on-delete(entity)`; a refusal keeps the entity.
    Delete {
        /// The stored entity.
        entity: EntityView,
    },
    /// `on-action(entity, action, params)`.
    Action {
        /// The entity the action is performed on.
        entity: EntityView,
        /// The action's identifier, `scheme#term`.
        action: String,
        /// The action's parameters.
        params: Vec<AttributeView>,
    },
    /// `actions.applicable(entity, actions)` (optional export, since 0.1.1): which of
    /// `actions` apply to the entity in its state. `entity` is taken with the changes the
    /// calls before this one in the same [`Runtime::call_each`](crate::Runtime::call_each)
    /// returned applied (see [`EntityView::apply`]), so that after a hook it sees the state the
    /// hook left. Answered by [`Outcome::Applicable`].
    Applicable {
        /// The entity, before the earlier calls' changes.
        entity: EntityView,
        /// The ids (`scheme#term`) of the actions the entity's kind offers.
        actions: Vec<String>,
    },
    /// `job-runner.run(job)` (optional export, since 0.1.3): one attempt at a job. Answered by
    /// [`Outcome::Changes`] (it succeeded) or [`Outcome::Failed`] (it returned an error, or the
    /// component exports no `job-runner`).
    Job {
        /// The job, with the entity as the attempt sees it.
        job: JobView,
    },
    /// `job-runner.failed(job, reason)`: the changes that put the entity in its error state
    /// once the job's last attempt failed. Answered by [`Outcome::Changes`] (none when the
    /// component exports no `job-runner`).
    JobFailed {
        /// The job, as its last attempt saw it.
        job: JobView,
        /// Why the last attempt failed.
        reason: String,
    },
}

/// One attempt at a job (WIT `job-runner.job`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// The name given to `jobs.submit`.
    pub name: String,
    /// The payload given to `jobs.submit`.
    pub payload: String,
    /// The entity the job belongs to, as the attempt sees it.
    pub entity: EntityView,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// The most attempts the job gets.
    pub max_attempts: u32,
}

impl Call {
    /// The export this call runs, as named in the WIT (`validate`, `on-create`, ...).
    pub fn export_name(&self) -> &'static str {
        match self {
            Call::Validate { .. } => "validate",
            Call::Create { .. } => "on-create",
            Call::Update { .. } => "on-update",
            Call::Delete { .. } => "on-delete",
            Call::Action { .. } => "on-action",
            Call::Applicable { .. } => "applicable",
            Call::Job { .. } => "run",
            Call::JobFailed { .. } => "failed",
        }
    }
}

/// What a handler answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The request may go on, unchanged (`validate` and `on-delete` returning `ok`).
    Accepted,
    /// The request may go on with these attribute changes (`on-create`, `on-update`, `on-action`
    /// returning `ok`; possibly empty).
    Changes(Vec<ChangeView>),
    /// The handler refuses the request. Never empty: a `validate` that refuses with an empty list
    /// is reported as one [`RefusalView::Other`].
    Refused(Vec<RefusalView>),
    /// The answer to [`Call::Applicable`]: the actions that apply, as the handler listed them
    /// (the caller keeps those it asked about), or `None` when the component does not export
    /// `actions` (one built against 0.1.0): it has no say, every action applies.
    Applicable(Option<Vec<String>>),
    /// The answer to [`Call::Job`] when the attempt failed: the handler's reason.
    Failed(String),
}

/// The host side of the imports a handler sees (`log`, `query`, `kv`, `outbound`), for one call.
///
/// The runtime owns the value during the call (it lives in the wasmtime `Store`) and hands it back
/// afterwards, so an implementation can buffer key-value writes and let the caller commit them
/// with the request. Everything it returns reaches the guest as is: scope it to the handler's
/// tenant (and handler, for `kv_*`). Calls are synchronous and happen on the calling thread; the
/// time they take counts against the call's deadline only once the guest runs again.
pub trait HostApi {
    /// A log line the guest wrote, already within the per-call budget
    /// ([`RuntimeConfig::max_log_bytes`](crate::RuntimeConfig::max_log_bytes)). The runtime also
    /// reports here, at [`LogLevel::Warn`], lines it dropped and what the guest wrote to stdout
    /// or stderr before a failure. The implementation decides where logs go.
    fn log(&mut self, level: LogLevel, message: &str, fields: &[(String, String)]);
    /// Entities matching the filter, in location order. An error (the host could not read)
    /// traps the call: a guest never decides on a false empty answer.
    fn find(&mut self, filter: FilterView) -> Result<Vec<EntityView>, HostFault>;
    /// The entity at a server path, if there is one (an error traps the call).
    fn get(&mut self, location: &str) -> Result<Option<EntityView>, HostFault>;
    /// The value stored under `key`, if any (an error traps the call).
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostFault>;
    /// Stores `value` under `key`, or says why not (size limits); the reason reaches the guest.
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), String>;
    /// Removes `key`; nothing happens if it is absent.
    fn kv_delete(&mut self, key: &str);
    /// The keys that start with `prefix`, in order (an error traps the call).
    fn kv_keys(&mut self, prefix: &str) -> Result<Vec<String>, HostFault>;
    /// An outbound HTTP request of the guest (`outbound.send`, since 0.1.2), to be answered
    /// before `deadline` (the call's). The implementation decides what is allowed; the error
    /// reaches the guest. By default nothing is: every request is denied.
    fn http(&mut self, request: HttpRequest, deadline: std::time::Instant) -> Result<HttpResponse, OutboundError> {
        let _ = deadline;
        Err(OutboundError::Denied(format!("{}: this host offers no outbound HTTP", request.url)))
    }
    /// A job the guest asks for (`jobs.submit`, since 0.1.3), for the entity of the call:
    /// its id, or why not (the reason reaches the guest). By default no call may submit.
    fn submit_job(&mut self, name: &str, payload: &str) -> Result<String, String> {
        let _ = (name, payload);
        Err("this call cannot submit jobs".to_string())
    }
}

/// An outbound HTTP request of a guest (WIT `outbound.request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method, as the guest wrote it.
    pub method: String,
    /// The absolute URL.
    pub url: String,
    /// The guest's headers.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
    /// How many redirects to follow (the host caps it).
    pub follow_redirects: u8,
}

/// The answer to an [`HttpRequest`] (WIT `outbound.response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, as received.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: String,
}

/// Why an [`HttpRequest`] got no answer (WIT `outbound.error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// Not allowed (origin or address); names the origin.
    Denied(String),
    /// A per-call limit was reached.
    Limit(String),
    /// The request is malformed.
    Invalid(String),
    /// No valid answer from the server.
    Failed(String),
}

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundError::Denied(m) => write!(f, "denied: {m}"),
            OutboundError::Limit(m) => write!(f, "limit: {m}"),
            OutboundError::Invalid(m) => write!(f, "invalid: {m}"),
            OutboundError::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

/// A host call that could not be answered (a storage failure): the call traps with this
/// message, and the host should make the request fail as the server's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFault(pub String);

impl std::fmt::Display for HostFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host call failed: {}", self.0)
    }
}

impl std::error::Error for HostFault {}

/// A [`HostApi`] that sees no entities, stores nothing and discards logs. The runtime uses it to
/// try an upload's instantiation; tests may use it too.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullHost;

impl HostApi for NullHost {
    fn log(&mut self, _level: LogLevel, _message: &str, _fields: &[(String, String)]) {}
    fn find(&mut self, _filter: FilterView) -> Result<Vec<EntityView>, HostFault> {
        Ok(Vec::new())
    }
    fn get(&mut self, _location: &str) -> Result<Option<EntityView>, HostFault> {
        Ok(None)
    }
    fn kv_get(&mut self, _key: &str) -> Result<Option<Vec<u8>>, HostFault> {
        Ok(None)
    }
    fn kv_set(&mut self, _key: &str, _value: &[u8]) -> Result<(), String> {
        Err("this host stores nothing".to_string())
    }
    fn kv_delete(&mut self, _key: &str) {}
    fn kv_keys(&mut self, _prefix: &str) -> Result<Vec<String>, HostFault> {
        Ok(Vec::new())
    }
}
