//! `ocni`: the command line of the ocni OCCI server.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use ocni_model::Dialect;
use ocni_server::Config;
use tracing_subscriber::EnvFilter;

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
        /// Serve on a non-loopback address even though there is no authentication yet.
        #[arg(long)]
        allow_unauthenticated_remote: bool,
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
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match Cli::parse().command {
        Command::Serve {
            listen,
            data,
            base_url,
            max_body,
            max_page_size,
            json_dialect,
            templates,
            allow_unauthenticated_remote,
            handler_deadline_ms,
            handler_memory_mib,
            max_handler_bytes,
            handler_fuel,
        } => {
            if !listen.ip().is_loopback() && !allow_unauthenticated_remote {
                anyhow::bail!(
                    "refusing to serve {listen} without authentication: ocni has no tenants or tokens configured; \
                     pass --allow-unauthenticated-remote if you mean it"
                );
            }
            let mut config = Config::new(data);
            config.base_url = base_url;
            config.max_body = max_body;
            config.max_page_size = max_page_size;
            config.templates = templates;
            config.runtime.deadline = std::time::Duration::from_millis(handler_deadline_ms);
            config.runtime.max_memory_bytes = handler_memory_mib << 20;
            config.runtime.max_component_bytes = max_handler_bytes;
            config.runtime.fuel = handler_fuel;
            config.default_dialect = match json_dialect {
                JsonDialect::Occi12 => Dialect::Occi12,
                JsonDialect::Pyocni => Dialect::Pyocni,
            };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let app = ocni_server::open(config.clone())
                    .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
                let listener =
                    tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
                tracing::info!(address = %listener.local_addr()?, data = %config.data_dir.display(), "ocni serving");
                ocni_server::serve(listener, app, shutdown_signal()).await;
                tracing::info!("ocni stopped");
                Ok(())
            })
        }
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
