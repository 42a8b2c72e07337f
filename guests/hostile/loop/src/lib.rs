//! Hostile guest: `validate` never returns. The host must interrupt the call (epoch deadline or
//! fuel) and report an error, and the engine must keep serving other calls.

use core::hint::black_box;

use ocni_handler_sdk::{Entity, Handler, Operation, Refusal};

struct Loop;

impl Handler for Loop {
    fn validate(_entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
        let mut x = 0u64;
        loop {
            x = black_box(x.wrapping_add(1));
        }
    }
}

ocni_handler_sdk::export_handler!(Loop);
