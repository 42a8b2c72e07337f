//! `ocni`: the command line of the ocni OCCI server.

use ocni_server::tenants::TenantDefaults;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ocni_model::Dialect;
use ocni_server::Config;
use ocni_server::tenants::Secret;
use serde_json::{Map, Value, json};
use tracing_subscriber::EnvFilter;

mod admin_client;

/// Where the admin token comes from when no file is given.
const ADMIN_TOKEN_ENV: &str = "OCNI_ADMIN_TOKEN";

#[derive(Parser)]
#[command(name = "ocni", version, about = "An OCCI 1.1 / 1.2 server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum JsonDialect {
    /// OCCI 1.2 JSON rendering (GFD.226)
    Occi12,
    /// pyOCNI's nested JSON
    Pyocni,
}

#[derive(Subcommand)]
enum Command {
    /// Serve OCCI over HTTP.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Data directory (database and caches).
        #[arg(long, default_value = "./ocni-data")]
        data: PathBuf,
        /// Scheme and authority of absolute URLs in answers (default: from the Host header).
        #[arg(long)]
        base_url: Option<String>,
        /// Largest request body, in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        max_body: usize,
        /// Largest page (`number`) a listing may ask for.
        #[arg(long, default_value_t = 1000)]
        max_page_size: usize,
        /// JSON dialect of `application/occi+json` when the client names none.
        #[arg(long, value_enum, default_value = "occi12")]
        json_dialect: JsonDialect,
        /// A JSON file of extra template mixins (resource_tpl / os_tpl), served as built-ins.
        #[arg(long)]
        templates: Option<PathBuf>,
        /// Serve on a non-loopback address in local mode (no admin token, no tenants: no
        /// authentication).
        #[arg(long)]
        allow_unauthenticated_remote: bool,
        /// A file holding the admin token (at least 16 characters); else the environment
        /// variable OCNI_ADMIN_TOKEN. With an admin token the server is multi-tenant.
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
        /// Default per-tenant limit: entities.
        #[arg(long, default_value_t = TenantDefaults::default().max_entities)]
        tenant_max_entities: u64,
        /// Default per-tenant limit: categories of the tenant's own.
        #[arg(long, default_value_t = TenantDefaults::default().max_categories)]
        tenant_max_categories: u64,
        /// Default per-tenant limit: attributes one category of the tenant's may define.
        #[arg(long, default_value_t = TenantDefaults::default().max_category_attributes)]
        tenant_max_category_attributes: u64,
        /// Default per-tenant limit: bytes the tenant's category definitions take, in JSON.
        #[arg(long, default_value_t = TenantDefaults::default().max_catalog_bytes)]
        tenant_max_catalog_bytes: u64,
        /// Default per-tenant limit: handlers.
        #[arg(long, default_value_t = TenantDefaults::default().max_handlers)]
        tenant_max_handlers: u64,
        /// Default per-tenant limit: requests per second (bursts of one second's worth).
        #[arg(long, default_value_t = TenantDefaults::default().requests_per_second)]
        tenant_requests_per_second: u64,
        /// Wall-clock limit of one handler call, in milliseconds.
        #[arg(long, default_value_t = 100)]
        handler_deadline_ms: u64,
        /// Memory limit of one handler instance, in MiB.
        #[arg(long, default_value_t = 32)]
        handler_memory_mib: usize,
        /// Largest handler component accepted for upload, in bytes.
        #[arg(long, default_value_t = 16 << 20)]
        max_handler_bytes: usize,
        /// Optional fuel budget per handler call (deterministic CPU bound; off by default).
        #[arg(long)]
        handler_fuel: Option<u64>,
        /// Writes prepared at once, every tenant together (more wait their turn).
        #[arg(long, default_value_t = ocni_server::DEFAULT_MAX_CONCURRENT_WRITES)]
        max_concurrent_writes: usize,
        /// Handler calls one tenant may run at once in multi-tenant mode (default: half the
        /// cores, at least 1).
        #[arg(long, default_value_t = ocni_server::default_handler_calls_per_tenant())]
        handler_calls_per_tenant: usize,
    },
    /// Create, list, show and delete tenants (admin API).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Issue, list and revoke a tenant's tokens (admin API).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Show and set a tenant's limits (admin API).
    Limits {
        #[command(subcommand)]
        command: LimitsCommand,
    },
}

/// How the admin subcommands reach the server.
#[derive(Args)]
struct AdminArgs {
    /// The server's URL (http only).
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    server: String,
    /// A file holding the admin token; else the environment variable OCNI_ADMIN_TOKEN.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
}

/// Per-tenant limits; the ones not given keep their value (the server's default at creation).
#[derive(Args, Default)]
struct LimitArgs {
    #[arg(long)]
    max_entities: Option<u64>,
    #[arg(long)]
    max_categories: Option<u64>,
    #[arg(long)]
    max_category_attributes: Option<u64>,
    #[arg(long)]
    max_catalog_bytes: Option<u64>,
    #[arg(long)]
    max_handlers: Option<u64>,
    #[arg(long)]
    max_handler_bytes: Option<u64>,
    #[arg(long)]
    handler_deadline_ms: Option<u64>,
    #[arg(long)]
    handler_memory_mib: Option<u64>,
    #[arg(long)]
    max_body_bytes: Option<u64>,
    #[arg(long)]
    requests_per_second: Option<u64>,
}

impl LimitArgs {
    fn to_json(&self) -> Value {
        let fields = [
            ("max_entities", self.max_entities),
            ("max_categories", self.max_categories),
            ("max_category_attributes", self.max_category_attributes),
            ("max_catalog_bytes", self.max_catalog_bytes),
            ("max_handlers", self.max_handlers),
            ("max_handler_bytes", self.max_handler_bytes),
            ("handler_deadline_ms", self.handler_deadline_ms),
            ("handler_memory_mib", self.handler_memory_mib),
            ("max_body_bytes", self.max_body_bytes),
            ("requests_per_second", self.requests_per_second),
        ];
        Value::Object(fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), json!(v?)))).collect::<Map<_, _>>())
    }
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant; prints it with its first token (shown this once).
    Create {
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List the tenants.
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show one tenant.
    Show {
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Delete a tenant and everything it owns.
    Delete {
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a new token for a tenant (printed this once).
    Issue {
        tenant: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List a tenant's token ids and creation times.
    List {
        tenant: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Revoke a token by its id.
    Revoke {
        tenant: String,
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Subcommand)]
enum LimitsCommand {
    /// Set some of a tenant's limits.
    Set {
        tenant: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// Put these limits back to the server's defaults (repeatable).
        #[arg(long = "reset", value_name = "LIMIT")]
        reset: Vec<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show a tenant's limits.
    Show {
        tenant: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// The admin token from `file`, else from OCNI_ADMIN_TOKEN; `None` when neither is given.
fn admin_token(file: Option<&std::path::Path>) -> anyhow::Result<Option<Secret>> {
    let (raw, source) = match file {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the admin token file {}", path.display()))?,
            format!("the admin token file {}", path.display()),
        ),
        None => match std::env::var(ADMIN_TOKEN_ENV) {
            Ok(v) => (v, ADMIN_TOKEN_ENV.to_string()),
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(e) => anyhow::bail!("{ADMIN_TOKEN_ENV}: {e}"),
        },
    };
    Secret::admin_token(&raw).map(Some).map_err(|why| anyhow::anyhow!("refusing to start: {why} ({source})"))
}

/// Calls the admin API for a subcommand and prints the answer.
fn admin_call(admin: &AdminArgs, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<()> {
    let token = admin_token(admin.admin_token_file.as_deref())?
        .ok_or_else(|| anyhow::anyhow!("no admin token: pass --admin-token-file FILE or set {ADMIN_TOKEN_ENV}"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, text) =
        rt.block_on(admin_client::request(&admin.server, token.expose(), method, path, body.as_ref()))?;
    if (200..300).contains(&status) {
        print!("{text}");
        Ok(())
    } else {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        anyhow::bail!("{method} {path}: {status}: {}", message.trim_end())
    }
}

fn admin_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => unreachable!("serve is not an admin command"),
        Command::Tenant { command } => match command {
            TenantCommand::Create { name, limits, admin } => {
                admin_call(&admin, "POST", "/-/admin/tenants", Some(json!({"name": name, "limits": limits.to_json()})))
            }
            TenantCommand::List { admin } => admin_call(&admin, "GET", "/-/admin/tenants", None),
            TenantCommand::Show { name, admin } => admin_call(&admin, "GET", &format!("/-/admin/tenants/{name}"), None),
            TenantCommand::Delete { name, admin } => {
                admin_call(&admin, "DELETE", &format!("/-/admin/tenants/{name}"), None)
            }
        },
        Command::Token { command } => match command {
            TokenCommand::Issue { tenant, admin } => {
                admin_call(&admin, "POST", &format!("/-/admin/tenants/{tenant}/tokens"), None)
            }
            TokenCommand::List { tenant, admin } => {
                admin_call(&admin, "GET", &format!("/-/admin/tenants/{tenant}/tokens"), None)
            }
            TokenCommand::Revoke { tenant, id, admin } => {
                admin_call(&admin, "DELETE", &format!("/-/admin/tenants/{tenant}/tokens/{id}"), None)
            }
        },
        Command::Limits { command } => match command {
            LimitsCommand::Set { tenant, limits, reset, admin } => {
                let mut body = limits.to_json();
                for name in reset {
                    body[name.as_str()] = Value::Null;
                }
                if body.as_object().is_some_and(Map::is_empty) {
                    anyhow::bail!("name at least one limit to set (--max-entities N ...) or --reset LIMIT");
                }
                admin_call(&admin, "PUT", &format!("/-/admin/tenants/{tenant}/limits"), Some(body))
            }
            LimitsCommand::Show { tenant, admin } => {
                admin_call(&admin, "GET", &format!("/-/admin/tenants/{tenant}/limits"), None)
            }
        },
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        return admin_command(cli.command);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match cli.command {
        Command::Serve {
            listen,
            data,
            base_url,
            max_body,
            max_page_size,
            json_dialect,
            templates,
            allow_unauthenticated_remote,
            admin_token_file,
            tenant_max_entities,
            tenant_max_categories,
            tenant_max_category_attributes,
            tenant_max_catalog_bytes,
            tenant_max_handlers,
            tenant_requests_per_second,
            handler_deadline_ms,
            handler_memory_mib,
            max_handler_bytes,
            handler_fuel,
            max_concurrent_writes,
            handler_calls_per_tenant,
        } => {
            let mut config = Config::new(data);
            config.admin_token = admin_token(admin_token_file.as_deref())?;
            config.tenant_defaults = TenantDefaults {
                max_entities: tenant_max_entities,
                max_categories: tenant_max_categories,
                max_category_attributes: tenant_max_category_attributes,
                max_catalog_bytes: tenant_max_catalog_bytes,
                max_handlers: tenant_max_handlers,
                requests_per_second: tenant_requests_per_second.max(1),
            };
            config.base_url = base_url;
            config.max_body = max_body;
            config.max_page_size = max_page_size;
            config.templates = templates;
            config.runtime.deadline = std::time::Duration::from_millis(handler_deadline_ms);
            config.runtime.max_memory_bytes = handler_memory_mib << 20;
            config.runtime.max_component_bytes = max_handler_bytes;
            config.runtime.fuel = handler_fuel;
            config.max_concurrent_writes = max_concurrent_writes;
            config.handler_calls_per_tenant = handler_calls_per_tenant;
            config.default_dialect = match json_dialect {
                JsonDialect::Occi12 => Dialect::Occi12,
                JsonDialect::Pyocni => Dialect::Pyocni,
            };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let app = ocni_server::open(config.clone())
                    .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
                let multi = app.tenancy.is_multi_tenant();
                if !multi && !listen.ip().is_loopback() && !allow_unauthenticated_remote {
                    anyhow::bail!(
                        "refusing to serve {listen} without authentication: no admin token is configured and \
                         there are no tenants (local mode); configure an admin token (--admin-token-file FILE \
                         or {ADMIN_TOKEN_ENV}) and create tenants, or pass --allow-unauthenticated-remote if you \
                         mean it"
                    );
                }
                let listener =
                    tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
                let mode = if multi { "multi-tenant" } else { "local (one implicit tenant, no authentication)" };
                tracing::info!(address = %listener.local_addr()?, data = %config.data_dir.display(), mode, "ocni serving");
                ocni_server::serve(listener, app, shutdown_signal()).await;
                tracing::info!("ocni stopped");
                Ok(())
            })
        }
        _ => unreachable!("admin commands return above"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
