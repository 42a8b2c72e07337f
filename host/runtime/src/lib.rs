//! The only crate that knows wasmtime: runs tenants' WebAssembly handler components (the
//! `ocni:handler/handler-world@0.1.3` world in the workspace's `wit/handler.wit`) sandboxed, for
//! kind and mixin validation and lifecycle and action logic.
//!
//! - [`Runtime::compile`] accepts an upload (off the request path: a worker thread bounded by a
//!   timeout), checks it is a component of the handler world whose imports are offered, and
//!   caches it in memory and as a compiled artifact in the cache directory;
//!   [`Runtime::load`] finds it again by digest, after a restart too, without recompiling.
//! - [`Runtime::call_each`] runs a request's [`Call`]s (`validate`, then a hook) on one fresh
//!   instance in a fresh `Store` with every limit of [`RuntimeConfig`] applied, serving the
//!   guest's imports with a caller-provided [`HostApi`], and answers [`Outcome`]s or a
//!   [`CallError`] whose message is meant for the HTTP client.
//!
//! Sandbox: one engine with the pooling allocator; a deadline per call (epoch interruption,
//! 1 ms ticks; time waiting for a core does not count), optional fuel; per-memory, table, instance and memory-count
//! limits; a bound on data the guest passes to the host (hostcall fuel); a log budget per call;
//! WASI 0.2 (what Rust's std and CPython import) against a locked-down context: no environment,
//! arguments or stdio passthrough, no preopened directory, sockets and name lookups denied,
//! clocks whose timers end at the call's deadline, random numbers (outbound HTTP only through
//! the `outbound` import, which the caller's [`HostApi::http`] decides).
//! The cache directory must be writable by the server only: artifacts in it are loaded as
//! trusted native code.

#![warn(missing_docs)]

mod bindings;
mod config;
mod error;
mod host;
mod priority;
mod runtime;
mod types;

pub use crate::config::{CallLimits, EPOCH_TICK, LOWERED_TICK, MAX_CORE_WAIT, RuntimeConfig};
pub use crate::error::{CallError, RuntimeError, UploadError};
pub use crate::priority::thread_yielded;
pub use crate::runtime::{Compiled, Handler, Runtime};
pub use crate::types::{
    AttributeView, Call, ChangeView, EntityView, FilterView, HostApi, HostFault, HttpRequest, HttpResponse, JobView,
    LogLevel, NullHost, Operation, OutboundError, Outcome, RefusalView, ValueView,
};

#[cfg(test)]
mod tests;
