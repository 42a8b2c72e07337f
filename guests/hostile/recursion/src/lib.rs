//! Hostile guest: `validate` recurses without end (not a tail call, so it cannot become a
//! loop). The host must trap on stack exhaustion (`max_wasm_stack`) without harming its own
//! stack, and report an error.

use core::hint::black_box;

use ocni_handler_sdk::{Entity, Handler, Operation, Refusal};

struct Recursion;

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 8]);
    if black_box(depth) == 0 { frame[0] } else { recurse(black_box(depth - 1)).wrapping_add(frame[7]) }
}

impl Handler for Recursion {
    fn validate(_entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
        let depth = recurse(black_box(u64::MAX));
        Err(vec![Refusal::other(format!("recursion returned {depth}"))])
    }
}

ocni_handler_sdk::export_handler!(Recursion);
