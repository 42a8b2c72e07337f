//! The Python handlers of `guests/python`, built into components on first use with
//! componentize-py, which `scripts/test.sh` installs into `guests/python/.venv` (at the version
//! and hashes `guests/python/requirements.txt` pins).
//!
//! A build takes about 17 s of one core, so each result is kept under the test build's
//! `OUT_DIR`, named by a hash of everything that goes into it (the handler, the SDK, the build
//! script, the requirements and the WIT): a later test, or a later run, reuses it until one of
//! those changes.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One build at a time within a test binary (binaries running at once write distinct temporary
/// files and rename them into place).
static BUILDING: Mutex<()> = Mutex::new(());

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
    let mut hasher = DefaultHasher::new();
    for input in &inputs {
        let bytes = std::fs::read(input).unwrap_or_else(|e| panic!("reading {}: {e}", input.display()));
        bytes.hash(&mut hasher);
    }
    let out_dir = Path::new(env!("OUT_DIR")).join("python");
    let output = out_dir.join(format!("{name}-{:016x}.wasm", hasher.finish()));
    let _one = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if output.exists() {
        return output.display().to_string();
    }
    assert!(
        dir.join(".venv/bin/componentize-py").exists(),
        "the Python guest toolchain is not installed: run `python3 -m venv guests/python/.venv && \
         guests/python/.venv/bin/pip install --require-hashes -r guests/python/requirements.txt` \
         (scripts/test.sh does)"
    );
    std::fs::create_dir_all(&out_dir).unwrap();
    let temporary = out_dir.join(format!("{name}.{}.tmp", std::process::id()));
    let built = Command::new(dir.join(".venv/bin/python"))
        .arg(dir.join("build.py"))
        .arg(&source)
        .arg(&temporary)
        .output()
        .unwrap_or_else(|e| panic!("running guests/python/.venv/bin/python: {e}"));
    assert!(
        built.status.success(),
        "building {}: {}\n{}",
        source.display(),
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::rename(&temporary, &output).unwrap();
    output.display().to_string()
}
