//! `ocni`: the command line of the ocni OCCI server.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ocni_server::logging::{LogWriter, PlainFields, PlainFormat};
use ocni_server::{Secret, ServeArgs};
use serde::Serialize;
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

#[derive(Subcommand)]
enum Command {
    /// Serve OCCI over HTTP.
    Serve(ServeArgs),
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
/// Serialized as the admin API's limits object (the limits not given left out).
#[derive(Args, Default, Serialize)]
struct LimitArgs {
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_entities: Option<u64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_categories: Option<u64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_category_attributes: Option<u64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_catalog_bytes: Option<u64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_handlers: Option<u64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_handler_bytes: Option<u64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    handler_deadline_ms: Option<u64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    handler_memory_mib: Option<u64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_body_bytes: Option<u64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    requests_per_second: Option<u64>,
}

impl LimitArgs {
    fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("limits serialize")
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
        Command::Serve(_) => unreachable!("serve is not an admin command"),
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
    if !matches!(cli.command, Command::Serve(_)) {
        return admin_command(cli.command);
    }
    let log = tracing_subscriber::fmt()
        .with_writer(LogWriter)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
    if std::io::stderr().is_terminal() {
        // Colours for a person watching; the same text otherwise (`logging::PlainFormat`).
        log.with_ansi(true).init();
    } else {
        log.with_ansi(false).event_format(PlainFormat).fmt_fields(PlainFields).init();
        ocni_server::logging::use_plain_format();
    }
    match cli.command {
        Command::Serve(args) => {
            let admin_token = admin_token(args.admin_token_file.as_deref())?;
            let (listen, allow_unauthenticated_remote) = (args.listen, args.allow_unauthenticated_remote);
            let config = args.into_config(admin_token);
            // Workers write out the buffered log lines when they run out of work (`logging.rs`).
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .on_thread_park(LogWriter::flush_buffered)
                .build()?;
            let served = rt.block_on(async move {
                let app = ocni_server::open(config.clone())
                    .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
                let multi = app.tenancy().is_multi_tenant();
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
            });
            drop(rt);
            LogWriter::flush_buffered();
            served
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
