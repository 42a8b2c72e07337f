//! Hostile guest: floods the log. The host must bound what it accepts per call (drop and count
//! lines past the budget, refuse or cut oversized lines) and stay responsive.
//!
//! * `validate` writes [`LINES`] short lines, then accepts.
//! * `on-create` writes one line of [`HUGE_LINE`] bytes, then accepts. (It fits in a 32 MiB
//!   memory limit, so the host, not the guest's allocator, has to deal with it.)

use ocni_handler_sdk::{Change, Entity, Handler, Operation, Refusal, log};

/// How many lines `validate` writes.
pub const LINES: u32 = 100_000;
/// The size of the line `on-create` writes: 8 MiB.
pub const HUGE_LINE: usize = 8 << 20;

struct LogFlood;

impl Handler for LogFlood {
    fn validate(entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
        for i in 0..LINES {
            log::info("flood", &[("n", &i.to_string()), ("location", &entity.location)]);
        }
        Ok(())
    }

    fn on_create(_entity: Entity) -> Result<Vec<Change>, Refusal> {
        let line = "x".repeat(HUGE_LINE);
        log::warn(&line, &[("size", "8 MiB")]);
        Ok(Vec::new())
    }
}

ocni_handler_sdk::export_handler!(LogFlood);
