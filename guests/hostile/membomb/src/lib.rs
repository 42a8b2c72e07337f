//! Hostile guest: `validate` allocates (and writes) 1 MiB blocks until memory runs out. The
//! host must cap the instance's memory; the guest then aborts ("memory allocation of 1048576
//! bytes failed" on stderr, then `unreachable`), which the host must report as an error.

use core::hint::black_box;

use ocni_handler_sdk::{Entity, Handler, Operation, Refusal};

struct MemBomb;

impl Handler for MemBomb {
    fn validate(_entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            blocks.push(black_box(vec![0xA5u8; 1 << 20]));
            black_box(&mut blocks);
        }
    }
}

ocni_handler_sdk::export_handler!(MemBomb);
