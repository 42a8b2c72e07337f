//! The handler tutorial (examples/handler), end to end in each language it shows: its
//! walkthrough script builds and uploads the Rust order handler, then uploads the JavaScript
//! port (`orders.js`) to a second fresh server, and each run must pass every step with the same
//! statuses.

use ocni_tests::{TestServer, js_guests, repo_root};

/// Runs examples/handler/walkthrough.sh against a fresh server; `wasm` skips its build.
async fn walkthrough(wasm: Option<String>) -> String {
    let server = TestServer::start().await;
    let mut command = tokio::process::Command::new("bash");
    command.arg(repo_root().join("examples/handler/walkthrough.sh")).arg(server.url(""));
    // The script's own cargo build (the Rust handler) must not wait for the lock of the build
    // running these tests: a target directory of its own.
    command.env("CARGO_TARGET_DIR", std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tutorial-handler"));
    for leaked in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "RUSTC_WRAPPER", "CARGO_MAKEFLAGS"] {
        command.env_remove(leaked);
    }
    if let Some(wasm) = wasm {
        command.env("WASM", wasm);
    }
    let out = command.output().await.expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the walkthrough failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// "N passed, M failed", the script's last line.
fn summary(stdout: &str) -> &str {
    stdout.lines().last().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_runs_the_same_in_rust_and_javascript() {
    let rust = walkthrough(None).await;
    assert_eq!(summary(&rust), "13 passed, 0 failed", "{rust}");
    let js = js_guests::component_from(&repo_root().join("examples/handler/orders.js"), "tutorial-orders");
    let javascript = walkthrough(Some(js)).await;
    assert_eq!(summary(&javascript), "13 passed, 0 failed", "{javascript}");
    // The same answers, step by step (statuses; the bodies differ in ids).
    let statuses = |out: &str| {
        out.lines()
            .filter(|l| l.trim_start().contains(" -> "))
            .map(|l| l.rsplit(" -> ").next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(statuses(&rust), statuses(&javascript));
}
