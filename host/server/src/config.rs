//! Server settings: [`Config`] and the one place their defaults are written down. The `ocni
//! serve` flags ([`ServeArgs`]) take their defaults from here and convert into a `Config`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ocni_model::Dialect;
use ocni_runtime::RuntimeConfig;
pub use ocni_store::EtcdTarget;

/// Largest request body accepted by default, in bytes.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// Largest `number` a paged listing may ask for by default (and a listing's page without one).
pub const DEFAULT_MAX_PAGE_SIZE: usize = 1000;
/// etcd's own default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;
/// Writes prepared at once by default (`Config::max_concurrent_writes`).
pub const DEFAULT_MAX_CONCURRENT_WRITES: usize = 256;
/// How long a request's headers may take by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request's body may take by default once its headers are in.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines kept per handler for `GET /-/handlers/{name}/log` by default.
pub const DEFAULT_HANDLER_LOG_LINES: usize = 200;
/// Bytes (messages and fields) kept per handler for `GET /-/handlers/{name}/log` by default.
pub const DEFAULT_HANDLER_LOG_BYTES: usize = 64 << 10;

/// Outbound HTTP requests one handler call may send by default (redirects followed count).
pub const DEFAULT_OUTBOUND_REQUESTS: u32 = 8;
/// Request body bytes one handler call may send by default.
pub const DEFAULT_OUTBOUND_BYTES_OUT: usize = 256 << 10;
/// Response body bytes one handler call may receive by default.
pub const DEFAULT_OUTBOUND_BYTES_IN: usize = 256 << 10;
/// Attempts a failing job gets after its first (`--handler-job-retries`).
pub const DEFAULT_JOB_RETRIES: u32 = 3;
/// Wait before a job's first retry; doubled for each later one, at most [`MAX_JOB_BACKOFF`]
/// (`--handler-job-backoff-ms`).
pub const DEFAULT_JOB_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two attempts at a job.
pub const MAX_JOB_BACKOFF: Duration = Duration::from_secs(300);

/// Shortest admin token accepted at start.
pub const MIN_ADMIN_TOKEN: usize = 16;

/// A secret held in memory (the admin token): `Debug` never shows it.
// No `PartialEq`: a plain `==` on a secret is not constant-time.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Checks an admin token read from a file or the environment: surrounding white space is
    /// dropped; empty or shorter than [`MIN_ADMIN_TOKEN`] characters is refused.
    pub fn admin_token(raw: &str) -> Result<Secret, String> {
        let token = raw.trim();
        if token.is_empty() {
            return Err("the admin token is empty".into());
        }
        if token.chars().count() < MIN_ADMIN_TOKEN {
            return Err(format!("the admin token is shorter than {MIN_ADMIN_TOKEN} characters"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the admin token contains white space or control characters".into());
        }
        Ok(Secret(token.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Half the cores (at least one): what one tenant's handlers may keep busy.
pub fn default_handler_calls_per_tenant() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Server settings (from the command line, or set by tests).
#[derive(Clone, Debug)]
pub struct Config {
    /// The compiled component cache, and the database unless `store` names an etcd cluster.
    pub data_dir: PathBuf,
    /// An etcd cluster to keep the data in, shared by every node given the same one; `None`:
    /// redb in `data_dir`.
    pub store: Option<EtcdTarget>,
    /// Most operations (compares, or writes) one etcd transaction may carry: the cluster's
    /// `--max-txn-ops` (etcd's default 128). A write that needs more is refused with 413.
    pub max_txn_ops: usize,
    /// Scheme and authority for absolute URLs (`http://example.com:8090`); when unset, taken
    /// from the request's Host header.
    pub base_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
    /// The JSON dialect of `application/occi+json` without a `dialect` parameter.
    pub default_dialect: Dialect,
    /// Extra built-in mixins (resource and OS templates) loaded at start.
    pub templates: Option<PathBuf>,
    /// Largest `number` a paged listing may ask for.
    pub max_page_size: usize,
    /// Limits of the WebAssembly handler sandbox (per call, per upload).
    pub runtime: RuntimeConfig,
    /// How long a request's headers may take to arrive (slow clients are cut off).
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive once its headers are in (then 408).
    pub body_read_timeout: Duration,
    /// The admin token. With one (or with tenants in the store) the server is multi-tenant:
    /// every OCCI request needs a tenant's token.
    pub admin_token: Option<Secret>,
    /// Defaults of the per-tenant limits that have no server limit of their own.
    pub tenant_defaults: TenantDefaults,
    /// Writes prepared at once (on blocking threads), all tenants together; more wait.
    pub max_concurrent_writes: usize,
    /// Handler calls one tenant may have running at once in multi-tenant mode; more of its
    /// calls wait, so that one tenant's handlers cannot take every core.
    pub handler_calls_per_tenant: usize,
    /// The most recent log lines kept per handler, in this node's memory, for its author.
    pub handler_log_lines: usize,
    /// The most bytes of log lines kept per handler (at least one line's 4 KiB).
    pub handler_log_bytes: usize,
    /// Origin patterns handlers may send HTTP requests to (`http://host[:port]`, host `*` or
    /// `*.domain`, port `*`); empty: none.
    pub handler_allow_outbound: Vec<String>,
    /// Whether handlers may reach loopback, private and other non-public addresses.
    pub handler_allow_private: bool,
    /// Per-call limits of outbound HTTP: requests, bytes sent, bytes received.
    pub handler_outbound_requests: u32,
    pub handler_outbound_bytes_out: usize,
    pub handler_outbound_bytes_in: usize,
    /// How many times a failing job is attempted again (the deadline of an attempt is
    /// `runtime.job_deadline`).
    pub handler_job_retries: u32,
    /// The wait before a job's first retry, doubled for each later one.
    pub handler_job_backoff: Duration,
}

impl Config {
    /// The defaults, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            store: None,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            base_url: None,
            max_body: DEFAULT_MAX_BODY,
            default_dialect: Dialect::Occi12,
            templates: None,
            max_page_size: DEFAULT_MAX_PAGE_SIZE,
            runtime: RuntimeConfig::default(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            admin_token: None,
            tenant_defaults: TenantDefaults::default(),
            max_concurrent_writes: DEFAULT_MAX_CONCURRENT_WRITES,
            handler_calls_per_tenant: default_handler_calls_per_tenant(),
            handler_log_lines: DEFAULT_HANDLER_LOG_LINES,
            handler_log_bytes: DEFAULT_HANDLER_LOG_BYTES,
            handler_allow_outbound: Vec::new(),
            handler_allow_private: false,
            handler_outbound_requests: DEFAULT_OUTBOUND_REQUESTS,
            handler_outbound_bytes_out: DEFAULT_OUTBOUND_BYTES_OUT,
            handler_outbound_bytes_in: DEFAULT_OUTBOUND_BYTES_IN,
            handler_job_retries: DEFAULT_JOB_RETRIES,
            handler_job_backoff: DEFAULT_JOB_BACKOFF,
        }
    }
}

/// Server-wide defaults of the per-tenant limits that have no server flag of their own (the
/// handler and body limits default to the server's `--handler-*`, `--max-handler-bytes` and
/// `--max-body`). Also the `--tenant-*` flags of `ocni serve`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct TenantDefaults {
    /// Default per-tenant limit: entities.
    #[arg(long = "tenant-max-entities", default_value_t = 100_000)]
    pub max_entities: u64,
    /// Default per-tenant limit: categories of the tenant's own.
    #[arg(long = "tenant-max-categories", default_value_t = 1000)]
    pub max_categories: u64,
    /// Default per-tenant limit: attributes one category of the tenant's may define.
    #[arg(long = "tenant-max-category-attributes", default_value_t = 256)]
    pub max_category_attributes: u64,
    /// Default per-tenant limit: bytes the tenant's category definitions take, in JSON.
    #[arg(long = "tenant-max-catalog-bytes", default_value_t = 4 << 20)]
    pub max_catalog_bytes: u64,
    /// Default per-tenant limit: handlers.
    #[arg(long = "tenant-max-handlers", default_value_t = 32)]
    pub max_handlers: u64,
    /// Default per-tenant limit: requests per second (bursts of one second's worth; at least 1).
    #[arg(long = "tenant-requests-per-second", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests_per_second: u64,
}

impl Default for TenantDefaults {
    /// The flags' defaults (the numbers are written once, in the `#[arg]` attributes above).
    fn default() -> Self {
        use clap::FromArgMatches;
        let command = TenantDefaults::augment_args(clap::Command::new("defaults"));
        let matches = command.try_get_matches_from(["defaults"]).expect("every flag has a default");
        TenantDefaults::from_arg_matches(&matches).expect("every flag has a default")
    }
}

/// The JSON dialects, as `--json-dialect` names them.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum JsonDialect {
    /// OCCI 1.2 JSON rendering (GFD.226)
    Occi12,
    /// pyOCNI's nested JSON
    Pyocni,
}

impl From<JsonDialect> for Dialect {
    fn from(d: JsonDialect) -> Dialect {
        match d {
            JsonDialect::Occi12 => Dialect::Occi12,
            JsonDialect::Pyocni => Dialect::Pyocni,
        }
    }
}

/// The flags of `ocni serve`. Their defaults are [`Config::new`]'s (and [`TenantDefaults`]',
/// [`RuntimeConfig`]'s).
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Data directory (database and caches; with --store, the compiled component cache only).
    #[arg(long, default_value = "./ocni-data")]
    pub data: PathBuf,
    /// Keep the data in an etcd cluster instead of redb in --data: several nodes given the same
    /// cluster and prefix serve the same tenants (default prefix /ocni).
    #[arg(long, value_name = "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]")]
    pub store: Option<EtcdTarget>,
    /// With --store: the most operations one etcd transaction may carry (the cluster's own
    /// --max-txn-ops); a write that needs more is refused with 413.
    #[arg(long, default_value_t = DEFAULT_MAX_TXN_OPS)]
    pub max_txn_ops: usize,
    /// Scheme and authority of absolute URLs in answers (default: from the Host header).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY)]
    pub max_body: usize,
    /// Largest page (`number`) a listing may ask for, and the page of a listing that names none.
    #[arg(long, default_value_t = DEFAULT_MAX_PAGE_SIZE)]
    pub max_page_size: usize,
    /// JSON dialect of `application/occi+json` when the client names none.
    #[arg(long, value_enum, default_value = "occi12")]
    pub json_dialect: JsonDialect,
    /// A JSON file of extra template mixins (resource_tpl / os_tpl), served as built-ins.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Serve on a non-loopback address in local mode (no admin token, no tenants: no
    /// authentication).
    #[arg(long)]
    pub allow_unauthenticated_remote: bool,
    /// A file holding the admin token (at least 16 characters); else the environment
    /// variable OCNI_ADMIN_TOKEN. With an admin token the server is multi-tenant.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub tenant_defaults: TenantDefaults,
    /// Wall-clock limit of one handler call, in milliseconds.
    #[arg(long, default_value_t = RuntimeConfig::default().deadline.as_millis() as u64)]
    pub handler_deadline_ms: u64,
    /// Milliseconds of CPU time after which a running handler call yields the CPU: its thread drops to idle
    /// priority (Linux SCHED_IDLE) for the rest of the call, so that a handler spinning to its
    /// deadline slows no request of any tenant; the next call of a handler whose last call ran
    /// this long starts at idle priority. 0: never.
    #[arg(long, default_value_t = RuntimeConfig::default().yield_after.map_or(0, |d| d.as_millis() as u64))]
    pub handler_yield_after_ms: u64,
    /// Memory limit of one handler instance, in MiB.
    #[arg(long, default_value_t = RuntimeConfig::default().max_memory_bytes >> 20)]
    pub handler_memory_mib: usize,
    /// Largest handler component accepted for upload, in bytes.
    #[arg(long, default_value_t = RuntimeConfig::default().max_component_bytes)]
    pub max_handler_bytes: usize,
    /// Optional fuel budget per handler call (deterministic CPU bound; off by default).
    #[arg(long)]
    pub handler_fuel: Option<u64>,
    /// Time limit of compiling one uploaded handler component, in seconds. A JavaScript guest
    /// (12 MB: its engine is inside) takes about 20 s of one core.
    #[arg(long, default_value_t = RuntimeConfig::default().compile_timeout.as_secs())]
    pub handler_compile_timeout_s: u64,
    /// Writes prepared at once, every tenant together (more wait their turn).
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT_WRITES)]
    pub max_concurrent_writes: usize,
    /// Handler calls one tenant may run at once in multi-tenant mode (default: half the
    /// cores, at least 1).
    #[arg(long, default_value_t = default_handler_calls_per_tenant())]
    pub handler_calls_per_tenant: usize,
    /// Recent log lines kept per handler (in memory) for `GET /-/handlers/{name}/log`.
    #[arg(long, default_value_t = DEFAULT_HANDLER_LOG_LINES)]
    pub handler_log_lines: usize,
    /// Bytes of recent log lines kept per handler (in memory).
    #[arg(long, default_value_t = DEFAULT_HANDLER_LOG_BYTES)]
    pub handler_log_bytes: usize,
    /// Origin patterns handlers may send HTTP requests to: http://HOST[:PORT], HOST may be * or
    /// *.DOMAIN, PORT may be *. None by default: no handler may send any.
    #[arg(long, num_args = 1.., value_name = "PATTERN")]
    pub handler_allow_outbound: Vec<String>,
    /// Let handlers reach loopback, private, link-local and other non-public addresses.
    #[arg(long)]
    pub handler_allow_private: bool,
    /// Outbound HTTP requests one handler call may send (each redirect followed counts).
    #[arg(long, default_value_t = DEFAULT_OUTBOUND_REQUESTS)]
    pub handler_outbound_requests: u32,
    /// Request body bytes one handler call may send.
    #[arg(long, default_value_t = DEFAULT_OUTBOUND_BYTES_OUT)]
    pub handler_outbound_bytes_out: usize,
    /// Response body bytes one handler call may receive.
    #[arg(long, default_value_t = DEFAULT_OUTBOUND_BYTES_IN)]
    pub handler_outbound_bytes_in: usize,
    /// Wall-clock limit of one attempt at a job (a handler's long operation), in milliseconds.
    #[arg(long, default_value_t = RuntimeConfig::default().job_deadline.as_millis() as u64)]
    pub handler_job_timeout_ms: u64,
    /// How many times a failing job is attempted again before it ends `failed`.
    #[arg(long, default_value_t = DEFAULT_JOB_RETRIES)]
    pub handler_job_retries: u32,
    /// Wait before a failed job's first retry, in milliseconds; doubled for each later one
    /// (at most 300 s).
    #[arg(long, default_value_t = DEFAULT_JOB_BACKOFF.as_millis() as u64)]
    pub handler_job_backoff_ms: u64,
}

impl ServeArgs {
    /// The settings these flags ask for, with the admin token read by the caller (from
    /// `admin_token_file` or the environment).
    pub fn into_config(self, admin_token: Option<Secret>) -> Config {
        let mut config = Config::new(self.data);
        config.store = self.store;
        config.max_txn_ops = self.max_txn_ops;
        config.admin_token = admin_token;
        config.base_url = self.base_url;
        config.max_body = self.max_body;
        config.max_page_size = self.max_page_size;
        config.default_dialect = self.json_dialect.into();
        config.templates = self.templates;
        config.tenant_defaults = self.tenant_defaults;
        config.runtime.deadline = Duration::from_millis(self.handler_deadline_ms);
        config.runtime.yield_after =
            (self.handler_yield_after_ms > 0).then(|| Duration::from_millis(self.handler_yield_after_ms));
        config.runtime.max_memory_bytes = self.handler_memory_mib << 20;
        config.runtime.max_component_bytes = self.max_handler_bytes;
        config.runtime.fuel = self.handler_fuel;
        config.runtime.compile_timeout = Duration::from_secs(self.handler_compile_timeout_s);
        config.max_concurrent_writes = self.max_concurrent_writes;
        config.handler_calls_per_tenant = self.handler_calls_per_tenant;
        config.handler_log_lines = self.handler_log_lines;
        config.handler_log_bytes = self.handler_log_bytes;
        config.handler_allow_outbound = self.handler_allow_outbound;
        config.handler_allow_private = self.handler_allow_private;
        config.handler_outbound_requests = self.handler_outbound_requests;
        config.handler_outbound_bytes_out = self.handler_outbound_bytes_out;
        config.handler_outbound_bytes_in = self.handler_outbound_bytes_in;
        config.runtime.job_deadline = Duration::from_millis(self.handler_job_timeout_ms);
        config.handler_job_retries = self.handler_job_retries;
        config.handler_job_backoff = Duration::from_millis(self.handler_job_backoff_ms);
        config
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn the_flags_defaults_are_the_configs() {
        let flags = Cli::parse_from(["ocni"]).serve.into_config(None);
        let config = Config::new("./ocni-data");
        assert_eq!(flags.data_dir, config.data_dir);
        assert_eq!(flags.max_body, config.max_body);
        assert_eq!(flags.max_page_size, config.max_page_size);
        assert_eq!(flags.default_dialect, config.default_dialect);
        assert_eq!(flags.tenant_defaults, config.tenant_defaults);
        assert_eq!(flags.runtime.deadline, config.runtime.deadline);
        assert_eq!(flags.runtime.yield_after, config.runtime.yield_after);
        assert_eq!(flags.runtime.max_memory_bytes, config.runtime.max_memory_bytes);
        assert_eq!(flags.runtime.max_component_bytes, config.runtime.max_component_bytes);
        assert_eq!(flags.runtime.compile_timeout, config.runtime.compile_timeout);
        assert_eq!(flags.runtime.fuel, config.runtime.fuel);
        assert_eq!(flags.max_concurrent_writes, config.max_concurrent_writes);
        assert_eq!(flags.handler_calls_per_tenant, config.handler_calls_per_tenant);
        assert_eq!(flags.handler_log_lines, config.handler_log_lines);
        assert_eq!(flags.handler_log_bytes, config.handler_log_bytes);
        assert_eq!(flags.handler_allow_outbound, config.handler_allow_outbound);
        assert_eq!(flags.handler_allow_private, config.handler_allow_private);
        assert_eq!(flags.handler_outbound_requests, config.handler_outbound_requests);
        assert_eq!(flags.handler_outbound_bytes_out, config.handler_outbound_bytes_out);
        assert_eq!(flags.handler_outbound_bytes_in, config.handler_outbound_bytes_in);
        assert_eq!(flags.runtime.job_deadline, config.runtime.job_deadline);
        assert_eq!(flags.handler_job_retries, config.handler_job_retries);
        assert_eq!(flags.handler_job_backoff, config.handler_job_backoff);
        assert_eq!(TenantDefaults::default().max_entities, 100_000);
    }

    #[test]
    fn admin_tokens_must_be_long_enough_and_never_print() {
        assert!(Secret::admin_token("").is_err());
        assert!(Secret::admin_token("  \n").is_err());
        assert!(Secret::admin_token("short").is_err());
        assert!(Secret::admin_token("has white space inside").is_err());
        let s = Secret::admin_token("0123456789abcdef\n").unwrap();
        assert_eq!(s.expose(), "0123456789abcdef");
        assert_eq!(format!("{s:?}"), "Secret(..)");
    }

    #[test]
    fn flags_reach_the_config() {
        let args = ["ocni", "--max-body", "5", "--tenant-max-entities", "7", "--handler-deadline-ms", "50"];
        let config = Cli::parse_from(args).serve.into_config(None);
        assert_eq!(config.max_body, 5);
        assert_eq!(config.tenant_defaults.max_entities, 7);
        assert_eq!(config.runtime.deadline, Duration::from_millis(50));
        assert!(Cli::try_parse_from(["ocni", "--tenant-requests-per-second", "0"]).is_err());
        let args = [
            "ocni",
            "--handler-allow-outbound",
            "http://*.example.com",
            "http://10.0.0.1:*",
            "--handler-allow-private",
        ];
        let config = Cli::parse_from(args).serve.into_config(None);
        assert_eq!(config.handler_allow_outbound, ["http://*.example.com", "http://10.0.0.1:*"]);
        assert!(config.handler_allow_private);
    }
}
