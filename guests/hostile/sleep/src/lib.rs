//! Hostile guest: `validate` sleeps for a minute. `std::thread::sleep` subscribes to a
//! `wasi:clocks/monotonic-clock` timer and blocks in `wasi:io/poll`, in the host, where no epoch
//! check can reach: the host must end the timer at the call's deadline, and the call there.

use std::time::Duration;

use ocni_handler_sdk::{Entity, Handler, Operation, Refusal};

struct Sleep;

impl Handler for Sleep {
    fn validate(_entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
        std::thread::sleep(Duration::from_secs(60));
        Err(vec![Refusal::other("sleep: woke up after a minute")])
    }
}

ocni_handler_sdk::export_handler!(Sleep);
