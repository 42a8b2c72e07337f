//! What a call's `Store` holds ([`StoreData`]: the caller's [`HostApi`], a locked-down WASI
//! context, the resource limiter, the log budget, the console buffer), the host side of the
//! handler world's imports, and the [`Linker`] that offers exactly those imports.
//!
//! WASI 0.2 is linked as far as guest runtimes need it (Rust's `std`, CPython from
//! componentize-py), against a context that gives nothing away:
//!
//! - `wasi:io` (error, poll, streams) and `wasi:cli`: empty environment and arguments, no
//!   initial directory, closed stdin, stdout and stderr into a small bounded buffer
//!   ([`Console`], reported with a failed call), no terminal, `exit`;
//! - `wasi:clocks`: the real wall clock, and a monotonic clock whose timers ([`BoundedClock`])
//!   never outlast the call's deadline, so that `poll` on a long sleep returns at the deadline
//!   and the epoch check then stops the guest (the guest runs on the host thread; a sleep the
//!   host honoured would hold it past the deadline, where no epoch check can reach);
//! - `wasi:random`: random bytes (at most [`MAX_RANDOM_BYTES`] a call) and seeds (std's
//!   `HashMap::new()` asks for one);
//! - `wasi:filesystem`: the interfaces, with no preopened directory: there is no descriptor to
//!   open a file from, so every path fails;
//! - `wasi:sockets`: the interfaces, with TCP, UDP and name lookups denied: creating a socket
//!   or resolving a name fails at once. Handlers reach the network only through
//!   `ocni:handler/outbound`.
//!
//! Nothing else (`wasi:http`, unknown interfaces) links: such a component is refused at upload.

use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime::component::{HasData, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream, WasiCli, WasiCliView};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::ocni::handler::{jobs, kv, log, outbound, query, types};
use crate::bindings::{Entity, HandlerWorld};
use crate::config::RuntimeConfig;
use crate::types::{FilterView, HostApi, LogLevel};

/// Live resource handles (WASI streams, pollables) a call may hold at once.
pub(crate) const MAX_HANDLES: usize = 1000;

/// Most bytes one `wasi:random` `get-random-bytes` call may ask for (the host allocates them
/// before the guest's memory limit applies); more traps the call. CPython asks for 256 at a time.
pub(crate) const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// The data of one call's `Store`.
pub(crate) struct StoreData {
    /// The caller's host, returned to it after the call.
    pub(crate) host: Box<dyn HostApi + Send>,
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory and table limits, and which of them the guest ran into.
    pub(crate) limiter: Limiter,
    log: LogBudget,
    /// What the guest wrote to stdout and stderr.
    pub(crate) console: Console,
    max_find_results: usize,
    /// When the call's deadline passes: outbound requests must end before it.
    pub(crate) deadline: Instant,
}

impl StoreData {
    /// Fresh data for one call served by `host`, with `config`'s limits.
    pub(crate) fn new(host: Box<dyn HostApi + Send>, config: &RuntimeConfig) -> StoreData {
        let console = Console::new(config.max_console_bytes);
        // Defaults: no environment, no arguments, no preopens, stdin closed, every socket
        // address denied, no name lookups. Sockets are denied outright on top of that.
        let mut wasi = WasiCtx::builder();
        wasi.stdout(console.clone())
            .stderr(console.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        StoreData {
            host,
            wasi: wasi.build(),
            table,
            limiter: Limiter::new(config),
            log: LogBudget {
                remaining: config.max_log_bytes,
                limit: config.max_log_bytes,
                dropped_lines: 0,
                dropped_bytes: 0,
            },
            console,
            max_find_results: config.max_find_results,
            deadline: Instant::now() + config.deadline,
        }
    }

    /// Log lines dropped so far: (lines, bytes, the per-call budget).
    pub(crate) fn dropped_logs(&self) -> (u64, u64, usize) {
        (self.log.dropped_lines, self.log.dropped_bytes, self.log.limit)
    }
}

/// The per-call log budget.
struct LogBudget {
    remaining: usize,
    limit: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
}

/// A limit the guest ran into while growing a memory or a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    /// A memory would have grown past `max_memory_bytes`.
    Memory,
    /// A table would have grown past `max_table_elements`.
    Table,
}

/// `StoreLimits` that also remember which limit was hit, so a trap that follows a failed
/// `memory.grow` (Rust's allocation-failure abort) is reported as the memory limit.
pub(crate) struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
    /// The first limit hit during the call, if any.
    pub(crate) hit: Option<LimitHit>,
}

impl Limiter {
    fn new(config: &RuntimeConfig) -> Limiter {
        Limiter {
            memory_bytes: config.max_memory_bytes,
            table_elements: config.max_table_elements,
            instances: config.max_instances,
            tables: config.max_tables,
            memories: config.max_memories,
            hit: None,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit.get_or_insert(LimitHit::Memory);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit.get_or_insert(LimitHit::Table);
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

/// The guest's stdout and stderr: one buffer that keeps the first `capacity` bytes and counts
/// the rest. Writes never fail and never block, so a guest printing in a loop is stopped by the
/// deadline, not by a trap or a hang.
#[derive(Clone)]
pub(crate) struct Console {
    inner: Arc<Mutex<ConsoleBuffer>>,
    capacity: usize,
}

#[derive(Default)]
struct ConsoleBuffer {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Console {
    fn new(capacity: usize) -> Console {
        Console { inner: Arc::default(), capacity }
    }

    fn push(&self, bytes: &[u8]) {
        let mut buffer = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let room = self.capacity.saturating_sub(buffer.bytes.len());
        let kept = bytes.len().min(room);
        buffer.bytes.extend_from_slice(&bytes[..kept]);
        buffer.dropped += bytes.len() - kept;
    }

    /// What was kept (lossy UTF-8) and how many bytes were dropped.
    pub(crate) fn contents(&self) -> (String, usize) {
        let buffer = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (String::from_utf8_lossy(&buffer.bytes).into_owned(), buffer.dropped)
    }
}

impl IsTerminal for Console {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Console {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for Console {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl OutputStream for Console {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready; what does not fit is dropped by `push`.
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Console {
    async fn ready(&mut self) {}
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for StoreData {}

impl log::Host for StoreData {
    fn write(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) -> wasmtime::Result<()> {
        let size = fields.iter().fold(message.len(), |n, (k, v)| n.saturating_add(k.len()).saturating_add(v.len()));
        if size <= self.log.remaining {
            self.log.remaining -= size;
            self.host.log(LogLevel::from(level), &message, &fields);
        } else {
            // Once the budget is exceeded, every further line is dropped (no gaps in the middle).
            self.log.remaining = 0;
            self.log.dropped_lines += 1;
            self.log.dropped_bytes = self.log.dropped_bytes.saturating_add(size as u64);
        }
        Ok(())
    }
}

impl query::Host for StoreData {
    fn find(&mut self, filter: query::Filter) -> wasmtime::Result<Vec<Entity>> {
        let filter = FilterView::from_wit(filter, self.max_find_results);
        let limit = filter.limit as usize;
        Ok(self.host.find(filter)?.into_iter().take(limit).map(Entity::from).collect())
    }

    fn get(&mut self, location: String) -> wasmtime::Result<Option<Entity>> {
        Ok(self.host.get(&location)?.map(Entity::from))
    }
}

impl kv::Host for StoreData {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.host.kv_get(&key)?)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        Ok(self.host.kv_set(&key, &value))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.host.kv_delete(&key);
        Ok(())
    }

    fn keys(&mut self, prefix: String) -> wasmtime::Result<Vec<String>> {
        Ok(self.host.kv_keys(&prefix)?)
    }
}

impl outbound::Host for StoreData {
    fn send(&mut self, request: outbound::Request) -> wasmtime::Result<Result<outbound::Response, outbound::Error>> {
        Ok(self.host.http(request.into(), self.deadline).map(Into::into).map_err(Into::into))
    }
}

impl jobs::Host for StoreData {
    fn submit(&mut self, name: String, payload: String) -> wasmtime::Result<Result<String, String>> {
        Ok(self.host.submit_job(&name, &payload))
    }
}

/// `HasData` projection to the store's resource table, for `wasi:io`.
struct IoTable;

impl HasData for IoTable {
    type Data<'a> = &'a mut ResourceTable;
}

fn io_table(data: &mut StoreData) -> &mut ResourceTable {
    &mut data.table
}

/// The `wasi:clocks/monotonic-clock` a call sees: nanoseconds since the process started its
/// first call, and timers that end at the call's deadline at the latest.
pub(crate) struct BoundedClock<'a> {
    table: &'a mut ResourceTable,
    deadline: Instant,
}

impl HasData for BoundedClock<'static> {
    type Data<'a> = BoundedClock<'a>;
}

fn bounded_clock(data: &mut StoreData) -> BoundedClock<'_> {
    BoundedClock { table: &mut data.table, deadline: data.deadline }
}

/// The origin of the guests' monotonic clock.
fn clock_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl BoundedClock<'_> {
    /// A pollable ready at `when`, or at the call's deadline if that comes first.
    fn subscribe(&mut self, when: Instant) -> wasmtime::Result<wasmtime::component::Resource<DynPollable>> {
        let until = when.min(self.deadline);
        let timer = self.table.push(Timer { until: tokio::time::Instant::from_std(until) })?;
        wasmtime_wasi_io::poll::subscribe(self.table, timer)
    }
}

impl monotonic_clock::Host for BoundedClock<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(u64::try_from(clock_origin().elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<wasmtime::component::Resource<DynPollable>> {
        // Past the deadline is as good as never: the call ends there.
        let when = clock_origin().checked_add(Duration::from_nanos(when)).unwrap_or(self.deadline);
        self.subscribe(when)
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<wasmtime::component::Resource<DynPollable>> {
        let when = Instant::now().checked_add(Duration::from_nanos(duration)).unwrap_or(self.deadline);
        self.subscribe(when)
    }
}

/// A monotonic-clock timer (see [`BoundedClock`]).
struct Timer {
    until: tokio::time::Instant,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Timer {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.until).await;
    }
}

/// The linker every handler is instantiated with: the handler world's imports plus the WASI
/// subset described in the module documentation. Anything else a component imports fails
/// `instantiate_pre`.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<StoreData>> {
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::sync::io as sync_io;
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets, sync};
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

    let mut linker = Linker::<StoreData>::new(engine);
    let l = &mut linker;
    HandlerWorld::add_to_linker::<StoreData, HasSelf<StoreData>>(l, |data| data)?;

    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<StoreData, IoTable>(l, io_table)?;
    sync_io::poll::add_to_linker::<StoreData, IoTable>(l, io_table)?;
    sync_io::streams::add_to_linker::<StoreData, IoTable>(l, io_table)?;

    let cli = <StoreData as WasiCliView>::cli;
    cli::environment::add_to_linker::<StoreData, WasiCli>(l, cli)?;
    cli::exit::add_to_linker::<StoreData, WasiCli>(l, cli)?;
    cli::stdin::add_to_linker::<StoreData, WasiCli>(l, cli)?;
    cli::stdout::add_to_linker::<StoreData, WasiCli>(l, cli)?;
    cli::stderr::add_to_linker::<StoreData, WasiCli>(l, cli)?;
    cli::terminal_input::add_to_linker::<StoreData, WasiCli>(l, cli)?;
    cli::terminal_output::add_to_linker::<StoreData, WasiCli>(l, cli)?;
    cli::terminal_stdin::add_to_linker::<StoreData, WasiCli>(l, cli)?;
    cli::terminal_stdout::add_to_linker::<StoreData, WasiCli>(l, cli)?;
    cli::terminal_stderr::add_to_linker::<StoreData, WasiCli>(l, cli)?;

    clocks::wall_clock::add_to_linker::<StoreData, WasiClocks>(l, <StoreData as WasiClocksView>::clocks)?;
    clocks::monotonic_clock::add_to_linker::<StoreData, BoundedClock<'static>>(l, bounded_clock)?;

    fn random(data: &mut StoreData) -> &mut wasmtime_wasi::random::WasiRandomCtx {
        data.wasi.random()
    }
    random::random::add_to_linker::<StoreData, WasiRandom>(l, random)?;
    random::insecure::add_to_linker::<StoreData, WasiRandom>(l, random)?;
    random::insecure_seed::add_to_linker::<StoreData, WasiRandom>(l, random)?;

    let fs = <StoreData as WasiFilesystemView>::filesystem;
    filesystem::preopens::add_to_linker::<StoreData, WasiFilesystem>(l, fs)?;
    sync::filesystem::types::add_to_linker::<StoreData, WasiFilesystem>(l, fs)?;

    let net = <StoreData as WasiSocketsView>::sockets;
    sockets::instance_network::add_to_linker::<StoreData, WasiSockets>(l, net)?;
    sockets::network::add_to_linker::<StoreData, WasiSockets>(l, &Default::default(), net)?;
    sockets::ip_name_lookup::add_to_linker::<StoreData, WasiSockets>(l, net)?;
    sockets::tcp_create_socket::add_to_linker::<StoreData, WasiSockets>(l, net)?;
    sync::sockets::tcp::add_to_linker::<StoreData, WasiSockets>(l, net)?;
    sync::sockets::udp_create_socket::add_to_linker::<StoreData, WasiSockets>(l, net)?;
    sync::sockets::udp::add_to_linker::<StoreData, WasiSockets>(l, net)?;
    Ok(linker)
}

/// Why an import is refused, and how much that matters (lower first: when a component has
/// several refused imports, the upload error names the most telling one).
pub(crate) struct ImportRefusal {
    pub(crate) rank: u8,
    pub(crate) reason: &'static str,
}

/// Why an import outside the linker is refused, for the upload's error message; `None` when the
/// import is one the linker offers (the linker still checks its version and types).
pub(crate) fn refused_import(name: &str) -> Option<ImportRefusal> {
    let interface = name.split_once('@').map_or(name, |(interface, _version)| interface);
    const OFFERED: &[&str] = &[
        "ocni:handler/types",
        "ocni:handler/log",
        "ocni:handler/query",
        "ocni:handler/kv",
        "ocni:handler/outbound",
        "ocni:handler/jobs",
        "wasi:io/error",
        "wasi:io/poll",
        "wasi:io/streams",
        "wasi:cli/environment",
        "wasi:cli/exit",
        "wasi:cli/stdin",
        "wasi:cli/stdout",
        "wasi:cli/stderr",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
        "wasi:clocks/wall-clock",
        "wasi:clocks/monotonic-clock",
        "wasi:random/random",
        "wasi:random/insecure",
        "wasi:random/insecure-seed",
        "wasi:filesystem/types",
        "wasi:filesystem/preopens",
        "wasi:sockets/network",
        "wasi:sockets/instance-network",
        "wasi:sockets/ip-name-lookup",
        "wasi:sockets/tcp",
        "wasi:sockets/tcp-create-socket",
        "wasi:sockets/udp",
        "wasi:sockets/udp-create-socket",
    ];
    if OFFERED.contains(&interface) {
        return None;
    }
    let (rank, reason) = if interface.starts_with("wasi:http/") {
        (0, "but handlers get no network access beyond ocni:handler/outbound (HTTP to allowed origins)")
    } else if interface.starts_with("wasi:") {
        (1, "which handlers are not given (of WASI 0.2: io, cli, clocks, random, filesystem, sockets)")
    } else {
        (2, "which is not part of ocni:handler/handler-world@0.1.3")
    };
    Some(ImportRefusal { rank, reason })
}
