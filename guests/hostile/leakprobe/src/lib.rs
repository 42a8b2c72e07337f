//! Hostile guest: probes for memory left over from an earlier instance. `validate` always
//! refuses with one `other` refusal reporting what it found in a static 64 KiB buffer, then
//! fills the buffer with `0xAA`:
//!
//! * `leakprobe: clean` when every byte was zero, as in a fresh instance;
//! * `leakprobe: dirty <n>` when `n` bytes were not.
//!
//! A second call in the *same* instance reports `dirty 65536` (this shows the probe works); a
//! call in a fresh store must report `clean`, even when the pooling allocator reuses the slot.

use std::sync::atomic::{AtomicU8, Ordering};

use ocni_handler_sdk::{Entity, Handler, Operation, Refusal};

/// The size of the probed buffer.
pub const SIZE: usize = 64 << 10;

static BUFFER: [AtomicU8; SIZE] = [const { AtomicU8::new(0) }; SIZE];

struct LeakProbe;

impl Handler for LeakProbe {
    fn validate(_entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
        let dirty = BUFFER.iter().filter(|b| b.load(Ordering::Relaxed) != 0).count();
        for b in &BUFFER {
            b.store(0xAA, Ordering::Relaxed);
        }
        let report = if dirty == 0 { "leakprobe: clean".to_string() } else { format!("leakprobe: dirty {dirty}") };
        Err(vec![Refusal::other(report)])
    }
}

ocni_handler_sdk::export_handler!(LeakProbe);
