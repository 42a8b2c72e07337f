//! Hostile guest: reads a file, so the component imports `wasi:filesystem` (`types` and
//! `preopens`). The host links no filesystem: it must refuse this component at upload (when
//! it pre-instantiates it), never run it.

use ocni_handler_sdk::{Entity, Handler, Operation, Refusal};

struct FsImport;

impl Handler for FsImport {
    fn validate(_entity: Entity, _op: Operation) -> Result<(), Vec<Refusal>> {
        match std::fs::read_to_string("/etc/passwd") {
            Ok(text) => Err(vec![Refusal::other(format!("read {} bytes of /etc/passwd", text.len()))]),
            Err(e) => Err(vec![Refusal::other(format!("no filesystem: {e}"))]),
        }
    }
}

ocni_handler_sdk::export_handler!(FsImport);
