//! The JavaScript handlers of `guests/js`, built into components on first use with the
//! ComponentizeJS toolchain that `scripts/test.sh` installs (`npm ci --prefix guests/js`).
//!
//! A build takes about 20 s, so each result is kept under the test build's `OUT_DIR`, named by a
//! hash of everything that goes into it (the handler, the SDK, the build script, the lock file
//! and the WIT): a later test, or a later run, reuses it until one of those changes.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One build at a time within a test binary (binaries running at once write distinct temporary
/// files and rename them into place).
static BUILDING: Mutex<()> = Mutex::new(());

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests/js")
}

/// The path of the component built from `guests/js/handlers/{name}.js`, building it if needed.
/// Panics, saying what to do, when Node.js or the toolchain is missing or the build fails.
pub fn component(name: &str) -> String {
    component_from(&js_dir().join("handlers").join(format!("{name}.js")), name)
}

/// The path of the component built from the JavaScript handler at `source` (anywhere in the
/// repository: its imports of the SDK are relative), named `name`, building it if needed.
pub fn component_from(source: &Path, name: &str) -> String {
    let dir = js_dir();
    let source = source.to_path_buf();
    let inputs = [
        source.clone(),
        dir.join("ocni.js"),
        dir.join("build.mjs"),
        dir.join("package-lock.json"),
        dir.join("../../wit/handler.wit"),
    ];
    let mut hasher = DefaultHasher::new();
    for input in &inputs {
        let bytes = std::fs::read(input).unwrap_or_else(|e| panic!("reading {}: {e}", input.display()));
        bytes.hash(&mut hasher);
    }
    let out_dir = Path::new(env!("OUT_DIR")).join("js");
    let output = out_dir.join(format!("{name}-{:016x}.wasm", hasher.finish()));
    let _one = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if output.exists() {
        return output.display().to_string();
    }
    let toolchain = dir.join("node_modules/@bytecodealliance/componentize-js");
    assert!(
        toolchain.is_dir(),
        "the JavaScript guest toolchain is not installed: run `npm ci --prefix guests/js` (scripts/test.sh does)"
    );
    std::fs::create_dir_all(&out_dir).unwrap();
    let temporary = out_dir.join(format!("{name}.{}.tmp", std::process::id()));
    let built = Command::new("node")
        .current_dir(&dir)
        .arg("build.mjs")
        .arg(&source)
        .arg(&temporary)
        .output()
        .unwrap_or_else(|e| panic!("running node (Node.js 18 or later is needed for the JavaScript guests): {e}"));
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
