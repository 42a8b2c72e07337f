//! Builds of guest components by an outside toolchain (ComponentizeJS, componentize-py), kept
//! under the test build's `OUT_DIR`, named by a hash of everything that goes into each one: a
//! later test, or a later run, reuses a build until one of its inputs changes.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One build at a time within a test binary (binaries running at once write distinct temporary
/// files and rename them into place).
static BUILDING: Mutex<()> = Mutex::new(());

/// What one build needs.
pub(crate) struct Build<'a> {
    /// The folder under `OUT_DIR` the components go to (`js`, `python`).
    pub folder: &'a str,
    /// The component's name (its file name starts with it).
    pub name: &'a str,
    /// The handler's source, named in a failed build's message.
    pub source: &'a Path,
    /// Every file the result depends on, the source included.
    pub inputs: &'a [PathBuf],
    /// Checked before building: panics, saying what to install, when the toolchain is missing.
    pub toolchain_ready: &'a dyn Fn(),
    /// The command that writes the component to the path it is given.
    pub command: &'a dyn Fn(&Path) -> Command,
    /// What the command needs, said when it cannot be started.
    pub needs: &'a str,
}

/// The path of the component `build` makes, building it if it is not there yet.
pub(crate) fn component(build: Build<'_>) -> String {
    let mut hasher = DefaultHasher::new();
    for input in build.inputs {
        let bytes = std::fs::read(input).unwrap_or_else(|e| panic!("reading {}: {e}", input.display()));
        bytes.hash(&mut hasher);
    }
    let out_dir = Path::new(env!("OUT_DIR")).join(build.folder);
    let output = out_dir.join(format!("{}-{:016x}.wasm", build.name, hasher.finish()));
    let _one = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if output.exists() {
        return output.display().to_string();
    }
    (build.toolchain_ready)();
    std::fs::create_dir_all(&out_dir).unwrap();
    let temporary = out_dir.join(format!("{}.{}.tmp", build.name, std::process::id()));
    let mut command = (build.command)(&temporary);
    let built =
        command.output().unwrap_or_else(|e| panic!("running {:?} ({}): {e}", command.get_program(), build.needs));
    assert!(
        built.status.success(),
        "building {}: {}\n{}",
        build.source.display(),
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::rename(&temporary, &output).unwrap();
    output.display().to_string()
}
