//! The Python handlers of `guests/python`, built into components on first use with
//! componentize-py, which `scripts/test.sh` installs into `guests/python/.venv` (at the version
//! and hashes `guests/python/requirements.txt` pins).
//!
//! A build takes about 17 s of one core, so each result is kept (`cached_build`), named by a
//! hash of the handler, the SDK, the build script, the requirements and the WIT.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cached_build::{self, Build};

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests/python")
}

/// The path of the component built from `guests/python/handlers/{name}.py`, building it if
/// needed. Panics, saying what to do, when Python or componentize-py is missing or the build
/// fails.
pub fn component(name: &str) -> String {
    let dir = python_dir();
    let source = dir.join("handlers").join(format!("{name}.py"));
    let inputs = [
        source.clone(),
        dir.join("ocni.py"),
        dir.join("build.py"),
        dir.join("requirements.txt"),
        dir.join("../../wit/handler.wit"),
    ];
    cached_build::component(Build {
        folder: "python",
        name,
        source: &source,
        inputs: &inputs,
        toolchain_ready: &|| {
            assert!(
                dir.join(".venv/bin/componentize-py").exists(),
                "the Python guest toolchain is not installed: run `python3 -m venv guests/python/.venv && \
                 guests/python/.venv/bin/pip install --require-hashes -r guests/python/requirements.txt` \
                 (scripts/test.sh does)"
            )
        },
        needs: "the virtual environment scripts/test.sh makes in guests/python/.venv",
        command: &|output| {
            let mut python = Command::new(dir.join(".venv/bin/python"));
            python.arg(dir.join("build.py")).arg(&source).arg(output);
            python
        },
    })
}
