//! Hostile guest: `validate` panics. On wasm32 a panic aborts: the message goes to stderr and
//! the guest hits `unreachable`. The host must report the trap as an error (the message is
//! `ocni hostile guest: panic in validate`) and drop the instance.

use ocni_handler_sdk::{Entity, Handler, Operation, Refusal};

struct Panic;

impl Handler for Panic {
    fn validate(entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
        panic!("ocni hostile guest: panic in validate of {}", entity.location);
    }
}

ocni_handler_sdk::export_handler!(Panic);
