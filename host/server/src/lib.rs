//! The only crate that knows HTTP: the ocni OCCI server. `main.rs` and `cli.rs` hold the `ocni`
//! command line.
//!
//! Modules import one way, top to bottom:
//!
//! - `http.rs`: the accept loop, framing, negotiation, authentication, limits, logging;
//! - `app.rs`: [`App`], which routes an authenticated request to its operation;
//! - `jobs.rs`: the job runner (handlers' long operations), over the services;
//! - `occi/`: the operations (query interface, collections, entities, handler uploads, jobs,
//!   admin);
//! - `services.rs`: what operations are served with (store, view cache, the write loop);
//! - `sandbox/` (handler runs), `writer.rs` (the writer thread), `tenancy.rs` (modes, tokens,
//!   limits);
//! - `reply.rs`, `route.rs`, `negotiate.rs`, `error.rs`, `config.rs`: plain data and pure
//!   functions.

mod app;
mod config;
pub mod error;
mod http;
mod jobs;
pub mod logging;
pub mod negotiate;
mod occi;
mod reply;
pub mod route;
mod sandbox;
mod services;
pub mod tenancy;
mod writer;

use std::sync::Arc;

use ocni_store::Store;

pub use crate::app::App;
pub use crate::config::Secret;
pub use crate::config::{
    Config, DEFAULT_MAX_CONCURRENT_WRITES, DEFAULT_MAX_TXN_OPS, EtcdTarget, JsonDialect, ServeArgs, TenantDefaults,
    default_handler_calls_per_tenant,
};
pub use crate::http::serve;
pub use crate::reply::SERVER;
pub use crate::tenancy::DEFAULT_TENANT;

/// Opens the data directory and builds the shared state.
pub fn open(config: Config) -> anyhow::Result<Arc<App>> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = match &config.store {
        Some(target) => Store::open_etcd(target, config.max_txn_ops)?,
        None => Store::open(&config.data_dir.join("ocni.redb"))?,
    };
    // Compiled handler components live next to the database, keyed by digest.
    let runtime = ocni_runtime::Runtime::new(config.runtime.clone(), &config.data_dir.join("components"))?;
    Ok(Arc::new(App::new(store, runtime, config).map_err(anyhow::Error::msg)?))
}
