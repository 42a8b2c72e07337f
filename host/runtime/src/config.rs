//! [`RuntimeConfig`]: every limit the runtime applies, with safe defaults.

use std::time::Duration;

use crate::error::RuntimeError;

/// How often the epoch ticker advances the engine's epoch while a call runs: the granularity of
/// [`RuntimeConfig::deadline`], and how often a running call gives the rest of the machine a
/// turn on its core (see `Runtime`). The ticker sleeps while no call runs.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The epoch tick while a call lowered to idle priority runs (see
/// [`RuntimeConfig::yield_after`]): such a call gives its core away at every tick, and a request
/// thread may wait behind it for up to one tick (see `priority.rs`).
pub const LOWERED_TICK: Duration = Duration::from_micros(250);

/// The most that waiting for a core may move any call's deadline (see
/// [`RuntimeConfig::deadline`]); whoever must outlast a call (a job's lease) adds it.
pub const MAX_CORE_WAIT: Duration = Duration::from_secs(5);

/// The limits of a [`Runtime`](crate::Runtime). Per-call limits apply to every call; pool sizes
/// are fixed when the runtime starts.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Wall-clock time a call may spend (instantiation, guest code and host calls together),
    /// enforced at every epoch tick ([`EPOCH_TICK`]): a call is stopped between `deadline` and
    /// `deadline + EPOCH_TICK` after it starts, at the guest's next loop header or function
    /// entry. Time its thread spent runnable but waiting for a core (Linux's schedstat) does not
    /// count, up to nine times `deadline` or [`MAX_CORE_WAIT`]: a call that was lowered to idle
    /// priority (`yield_after`), or one of more calls than cores, is not stopped for the
    /// machine's load. Default 100 ms.
    pub deadline: Duration,
    /// Optional deterministic budget of wasm fuel (about one unit per instruction) per call.
    /// `None` (the default) turns fuel metering off, which makes guests 10-40% faster.
    pub fuel: Option<u64>,
    /// Largest size of each linear memory of a call, in bytes; also the pooling allocator's
    /// per-slot maximum. Default 32 MiB.
    pub max_memory_bytes: usize,
    /// Largest number of elements of each table. Default 10 000.
    pub max_table_elements: usize,
    /// Core and component instances a call may create. Default 20 (a Rust guest needs about 5).
    pub max_instances: usize,
    /// Tables a call may create. Default 10.
    pub max_tables: usize,
    /// Linear memories a call may create. Default 2.
    pub max_memories: usize,
    /// Bytes of log lines (message plus field names and values) a call may write; later lines
    /// are dropped and counted. Default 64 KiB.
    pub max_log_bytes: usize,
    /// Bytes the guest may pass to the host in one host call or one export's result
    /// (`Store::set_hostcall_fuel`). Default 1 MiB.
    pub max_hostcall_bytes: usize,
    /// Longest time an upload's compilation may take. Default 120 s (a JavaScript guest, with
    /// its engine inside, takes about 20 s of one core).
    pub compile_timeout: Duration,
    /// Largest upload accepted by [`Runtime::compile`](crate::Runtime::compile). Default 32 MiB
    /// (a Python guest, CPython inside, is about 18 MB).
    pub max_component_bytes: usize,
    /// Calls that may run at once; further calls wait (at most their deadline) for a free slot.
    /// Sizes the pooling allocator. Default 64.
    pub max_concurrent_calls: usize,
    /// Compilations that may run at once, counting ones that outlived their timeout (they cannot
    /// be interrupted); further uploads are refused as busy. Default 2.
    pub max_concurrent_compiles: usize,
    /// Bytes of the guest's stdout and stderr kept per call (the rest is dropped), reported to
    /// the host log when the call fails. Default 4 KiB.
    pub max_console_bytes: usize,
    /// Most entities one `find` may return; the guest's own `limit` is lowered to this.
    /// Default 1000.
    pub max_find_results: usize,
    /// Largest wasm stack, in bytes (`Config::max_wasm_stack`). Calls run on the caller's thread,
    /// which needs this much plus about 1 MiB of stack. Default 512 KiB.
    pub max_wasm_stack: usize,
    /// Wall-clock time of one attempt at a job (`job-runner.run`, since WIT 0.1.3): a call
    /// with [`CallLimits::job`] set gets this deadline instead of [`RuntimeConfig::deadline`].
    /// Default 30 s.
    pub job_deadline: Duration,
    /// CPU time (of the call's thread) after which a running call's thread yields the CPU to everything else
    /// (it is lowered to `SCHED_IDLE` for the rest of the call, see [`crate::thread_yielded`]):
    /// a call that spins to its deadline then delays no request of any tenant, while short
    /// calls keep the priority of the request path. The next call of a handler whose last call
    /// ran this long starts lowered ([`crate::Handler::runs_long`]). `None`: never. Default 2 ms
    /// (a call of a well-behaved handler takes tens of microseconds).
    pub yield_after: Option<Duration>,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            deadline: Duration::from_millis(100),
            fuel: None,
            max_memory_bytes: 32 << 20,
            max_table_elements: 10_000,
            max_instances: 20,
            max_tables: 10,
            max_memories: 2,
            max_log_bytes: 64 << 10,
            max_hostcall_bytes: 1 << 20,
            compile_timeout: Duration::from_secs(120),
            max_component_bytes: 32 << 20,
            max_concurrent_calls: 64,
            max_concurrent_compiles: 2,
            max_console_bytes: 4 << 10,
            max_find_results: 1000,
            max_wasm_stack: 512 << 10,
            job_deadline: Duration::from_secs(30),
            yield_after: Some(Duration::from_millis(2)),
        }
    }
}

/// Limits of one call that are tighter than the runtime's (a tenant's own limits), for
/// [`Runtime::call_each`](crate::Runtime::call_each). A value above the runtime's limit is
/// lowered to it: the pool is sized for the runtime's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallLimits {
    /// Wall-clock time of the call, instead of [`RuntimeConfig::deadline`].
    pub deadline: Option<Duration>,
    /// Largest size of each linear memory, instead of [`RuntimeConfig::max_memory_bytes`].
    pub max_memory_bytes: Option<usize>,
    /// The call is an attempt at a job: its deadline is [`RuntimeConfig::job_deadline`] (and
    /// `deadline` above is ignored).
    pub job: bool,
}

impl RuntimeConfig {
    /// How far waiting for a core may move a call's deadline: nine times `deadline`, at most
    /// [`MAX_CORE_WAIT`].
    pub(crate) fn max_core_wait(&self) -> Duration {
        self.deadline.saturating_mul(9).min(MAX_CORE_WAIT)
    }

    /// The configuration of one call: this one with `limits` applied (never raised).
    pub(crate) fn limited(&self, limits: CallLimits) -> RuntimeConfig {
        let mut config = self.clone();
        if limits.job {
            config.deadline = self.job_deadline.max(Duration::from_millis(1));
        } else if let Some(d) = limits.deadline {
            config.deadline = d.min(self.deadline).max(Duration::from_millis(1));
        }
        if let Some(m) = limits.max_memory_bytes {
            config.max_memory_bytes = m.min(self.max_memory_bytes);
        }
        config
    }

    /// Refuses values the engine or the pool cannot honour.
    pub(crate) fn check(&self) -> Result<(), RuntimeError> {
        let bad = |what: &str| Err(RuntimeError::Config(what.to_string()));
        if self.deadline.is_zero() || self.job_deadline.is_zero() {
            return bad("deadline and job_deadline must be positive");
        }
        if self.fuel == Some(0) {
            return bad("fuel must be positive when set");
        }
        if self.max_memory_bytes < 64 << 10 || self.max_memory_bytes > 4 << 30 {
            return bad("max_memory_bytes must be between 64 KiB and 4 GiB");
        }
        if self.max_concurrent_calls == 0 || self.max_concurrent_compiles == 0 {
            return bad("max_concurrent_calls and max_concurrent_compiles must be positive");
        }
        if self.max_instances == 0 || self.max_tables == 0 || self.max_memories == 0 {
            return bad("max_instances, max_tables and max_memories must be positive");
        }
        if self.max_hostcall_bytes == 0 || self.max_component_bytes == 0 || self.compile_timeout.is_zero() {
            return bad("max_hostcall_bytes, max_component_bytes and compile_timeout must be positive");
        }
        for per_call in [self.max_instances, self.max_tables, self.max_memories] {
            if u32::try_from(per_call.saturating_mul(self.max_concurrent_calls)).is_err() {
                return bad("pool too large: max_concurrent_calls times a per-call count exceeds u32");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        RuntimeConfig::default().check().unwrap();
    }

    #[test]
    fn nonsense_is_refused() {
        let zero = RuntimeConfig { deadline: Duration::ZERO, ..RuntimeConfig::default() };
        assert!(matches!(zero.check(), Err(RuntimeError::Config(_))));
        let huge = RuntimeConfig { max_concurrent_calls: usize::MAX / 2, ..RuntimeConfig::default() };
        assert!(matches!(huge.check(), Err(RuntimeError::Config(_))));
    }
}
