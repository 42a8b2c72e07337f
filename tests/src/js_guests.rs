//! The JavaScript handlers of `guests/js`, built into components on first use with the
//! ComponentizeJS toolchain that `scripts/test.sh` installs (`npm ci --prefix guests/js`).
//!
//! A build takes about 20 s, so each result is kept (`cached_build`), named by a hash of the
//! handler, the SDK, the build script, the lock file and the WIT.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cached_build::{self, Build};

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
    let inputs = [
        source.to_path_buf(),
        dir.join("ocni.js"),
        dir.join("build.mjs"),
        dir.join("package-lock.json"),
        dir.join("../../wit/handler.wit"),
    ];
    cached_build::component(Build {
        folder: "js",
        name,
        source,
        inputs: &inputs,
        toolchain_ready: &|| {
            assert!(
                dir.join("node_modules/@bytecodealliance/componentize-js").is_dir(),
                "the JavaScript guest toolchain is not installed: run `npm ci --prefix guests/js` (scripts/test.sh does)"
            )
        },
        needs: "Node.js 18 or later is needed for the JavaScript guests",
        command: &|output| {
            let mut node = Command::new("node");
            node.current_dir(&dir).arg("build.mjs").arg(source).arg(output);
            node
        },
    })
}
