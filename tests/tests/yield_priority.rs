//! A handler call that runs long yields the CPU: past `yield_after` (2 ms) the runtime drops
//! its sandbox thread to idle priority (`SCHED_IDLE`), and since an unprivileged thread cannot
//! rise again, the thread ends after the call and a fresh one at normal priority takes its
//! place. Alone in its test binary: it reads the scheduling policy of every `ocni-sandbox-*`
//! thread of the process, which another test's server would share.

use std::time::{Duration, Instant};

use ocni_tests::{TestServer, expect, expect_error, guests};
use serde_json::json;

const SCHEME: &str = "http://hostile.example/occi#";
/// The scheduling policy (`/proc/.../sched`'s `policy`: 0 normal, 5 idle) of this process's
/// threads named `ocni-sandbox-*`.
fn sandbox_thread_policies() -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("ocni-sandbox-") {
            continue;
        }
        // A thread that ended meanwhile has no file left.
        let Ok(sched) = std::fs::read_to_string(task.path().join("sched")) else { continue };
        let policy =
            sched.lines().find_map(|l| l.strip_prefix("policy")).map(|v| v.trim_start_matches([' ', ':']).trim());
        policies.push(policy.and_then(|v| v.parse().ok()).expect("a policy line in sched"));
    }
    policies.sort();
    policies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_runs_long_yields_and_its_thread_is_replaced_at_normal_priority() {
    const THREADS: usize = 4;
    let server = TestServer::start_multi_tenant(|c| {
        c.store = None;
        c.runtime.max_concurrent_calls = THREADS;
    })
    .await;
    let a = server.create_tenant("alpha", None).await;
    expect(&a.upload("loop", guests::LOOP).await, 201);
    let kinds = json!({"kinds": [{"term": "loop", "scheme": SCHEME, "location": "/loop/", "handler": "loop"}]});
    expect(&a.json("POST", "/-/", Some(kinds)).await, 200);
    assert_eq!(sandbox_thread_policies(), vec![0; THREADS], "sandbox threads start at normal priority");

    // The looping call runs to its 100 ms deadline; at 2 ms its thread drops to idle priority.
    let looping = json!({"kind": format!("{SCHEME}loop"), "id": "x"});
    expect_error(&a.json("POST", "/loop/", Some(looping)).await, 504, &["time limit"]);

    // Then that thread ends and a fresh one takes its place: as many threads, none idle.
    let started = Instant::now();
    loop {
        let policies = sandbox_thread_policies();
        if policies == vec![0; THREADS] {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "sandbox thread policies after a long call: {policies:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
