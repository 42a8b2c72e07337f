//! Error types at the crate boundary: [`RuntimeError`] (starting the runtime, loading a cached
//! handler), [`UploadError`] (an upload refused, mostly the client's fault) and [`CallError`]
//! (a handler call that failed; its `Display` is written for the HTTP client).

use std::time::Duration;

/// Starting the runtime or loading a handler failed. Not the client's fault, except
/// [`RuntimeError::InvalidDigest`].
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration cannot be honoured (bad values, or the engine or the pool could not be
    /// created with them).
    #[error("runtime configuration: {0}")]
    Config(String),
    /// The cache directory could not be used.
    #[error("handler cache directory {path}: {source}")]
    Cache {
        /// The path that failed.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The digest is not 64 lowercase hexadecimal digits.
    #[error("not a handler digest: {0:?}")]
    InvalidDigest(String),
    /// Neither memory nor the cache directory holds this handler: compile its stored bytes
    /// again with [`Runtime::compile`](crate::Runtime::compile).
    #[error("handler {0} is not compiled")]
    NotCompiled(String),
}

/// An upload was refused. Everything but [`UploadError::Busy`] and [`UploadError::Internal`] is
/// the client's fault (400); the message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The upload is larger than the configured maximum.
    #[error("component is {size} bytes; the limit is {max} bytes")]
    TooLarge {
        /// The upload's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly component (no `\\0asm` header)")]
    NotWasm,
    /// The bytes are a precompiled wasmtime artifact, which is never accepted from clients.
    #[error("precompiled artifacts are not accepted; upload the component's .wasm")]
    Precompiled,
    /// The bytes are a core WebAssembly module, not a component.
    #[error(
        "a core WebAssembly module, not a component: build for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    NotAComponent,
    /// The component is malformed or uses WebAssembly features the runtime does not enable.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component imports something handlers are not given.
    #[error("component imports `{import}`, {reason}")]
    Import {
        /// The import's name, e.g. `wasi:filesystem/preopens@0.2.6`.
        import: String,
        /// Why it is refused.
        reason: String,
    },
    /// The component's imports or exports do not match `ocni:handler/handler-world@0.1.x`.
    #[error("component does not fit the ocni:handler@0.1.x handler-world: {0}")]
    World(String),
    /// The component cannot be instantiated within the runtime's limits.
    #[error("component exceeds the handler limits when instantiated: {0}")]
    Limits(String),
    /// Compilation took longer than the configured timeout.
    #[error("compiling the component took longer than {} s", .0.as_secs_f64())]
    CompileTimeout(Duration),
    /// Too many compilations are running; try again later (503).
    #[error("too many components are being compiled; try again later")]
    Busy,
    /// A server fault (e.g. the cache directory could not be written); log it, answer 500.
    #[error("internal error while compiling: {0}")]
    Internal(String),
}

/// A handler call failed. The request it belongs to must fail; nothing the call did (buffered
/// key-value writes included) should be committed. `Display` is meant for the HTTP client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call ran past its wall-clock deadline (moved by the time it waited for a core, see
    /// [`RuntimeConfig::deadline`](crate::RuntimeConfig::deadline)).
    #[error("handler exceeded its {} ms time limit", .limit.as_millis())]
    Timeout {
        /// The configured deadline.
        limit: Duration,
    },
    /// The call used up its fuel budget.
    #[error("handler exceeded its budget of {fuel} fuel units")]
    OutOfFuel {
        /// The configured budget.
        fuel: u64,
    },
    /// The guest tried to grow a memory past the limit (and failed because of it).
    #[error("handler exceeded its memory limit of {}", human_bytes(*.limit_bytes))]
    MemoryLimit {
        /// The configured limit per memory.
        limit_bytes: usize,
    },
    /// The guest exhausted its wasm stack (deep recursion).
    #[error("handler overflowed its stack")]
    StackOverflow,
    /// The guest trapped (a panic, `unreachable`, out-of-bounds access, invalid data given to the
    /// host, an `exit` call...).
    #[error("handler failed: {0}")]
    Trap(String),
    /// The guest exceeded another resource limit (tables, instances, memories, handles).
    #[error("handler exceeded a resource limit: {0}")]
    ResourceLimit(String),
    /// The guest passed more data to the host in one host call or result than allowed.
    #[error("handler passed more than {} to the host at once", human_bytes(*.limit_bytes))]
    OutputTooLarge {
        /// The configured limit.
        limit_bytes: usize,
    },
    /// Every call slot stayed busy for the whole deadline (503).
    #[error("too many handler calls in progress; try again later")]
    Busy,
    /// A server fault; log it, answer 500 without the details.
    #[error("internal error calling the handler: {0}")]
    Internal(String),
}

impl CallError {
    /// Whether the failure is the server's (answer 5xx) rather than the handler's.
    pub fn is_server_fault(&self) -> bool {
        matches!(self, CallError::Busy | CallError::Internal(_))
    }
}

/// `32 MiB`, `64 KiB` or `1000 bytes`.
fn human_bytes(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_meant_for_clients() {
        let cases = [
            (CallError::Timeout { limit: Duration::from_millis(100) }, "handler exceeded its 100 ms time limit"),
            (CallError::MemoryLimit { limit_bytes: 32 << 20 }, "handler exceeded its memory limit of 32 MiB"),
            (CallError::OutputTooLarge { limit_bytes: 1 << 20 }, "handler passed more than 1 MiB to the host at once"),
            (
                CallError::OutputTooLarge { limit_bytes: 1000 },
                "handler passed more than 1000 bytes to the host at once",
            ),
            (CallError::OutOfFuel { fuel: 5 }, "handler exceeded its budget of 5 fuel units"),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
        assert!(CallError::Busy.is_server_fault());
        assert!(!CallError::StackOverflow.is_server_fault());
        assert_eq!(
            UploadError::CompileTimeout(Duration::from_secs(30)).to_string(),
            "compiling the component took longer than 30 s"
        );
    }
}
