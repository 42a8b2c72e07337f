//! Fairness under a hostile tenant: tenant A's handler loops to its deadline on every call while
//! 16 clients of A keep calling it; tenant B's creates (and reads) must not notice. B's create
//! latency is measured with A idle and with A hostile, in alternating blocks of the same run
//! (so that both see the same machine): the p50 and the p99 with A hostile must stay within
//! twice those with A idle.
//!
//! What makes it hold: writes are prepared in parallel, not on the one writer thread (B's, a
//! tenant without handlers, on the async workers; A's on blocking threads); one tenant's
//! handler calls are capped (`Config::handler_calls_per_tenant`, half the cores), so A keeps at
//! most that many cores busy whatever its number of clients; a call that runs past
//! `yield_after` (2 ms) drops its thread to idle priority, and so does from its start every
//! call of a handler whose last call ran long, so A's spinning takes no CPU B's requests want;
//! and a lowered call gives its core away at every epoch tick (see `ocni_runtime`'s
//! `priority.rs` for what idle priority alone left: B's p99 at 1.5-3.1x).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ocni_tests::{COMPUTE, JSON, Tenant, TestServer, expect, expect_error, guests};
use serde_json::json;

const SCHEME: &str = "http://hostile.example/occi#";
/// Clients of the hostile tenant.
const HOSTILE_CLIENTS: usize = 16;
/// Creates of B measured with A idle, and as many with A hostile.
const SAMPLES: usize = 2000;
/// Blocks of each kind the samples are taken in, alternating (idle first).
const BLOCKS: usize = 2;

/// B creates `n` computes one after the other (reading each back); their create latencies.
async fn b_creates(b: &Tenant<'_>, tag: &str, n: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{tag}-{i}");
        let started = Instant::now();
        let r = b.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": id}))).await;
        latencies.push(started.elapsed());
        expect(&r, 201);
        expect(&b.get(&format!("/compute/{id}")).await, 200);
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_tenant_does_not_slow_another_tenants_writes() {
    // The default handler deadline (100 ms): A's every call runs for all of it.
    // On redb whatever OCNI_TEST_STORE says: the bound is on ocni's scheduling of one tenant's
    // handler calls against another's writes. On the 2-core test machine an etcd store's three
    // members run beside the server, and A's looping calls then take the CPU from them (a run
    // on etcd measured B's p99 at 3.2x, another passed): the figure would measure that sharing.
    // B's creates and reads come back to back: above the default 1,000 requests a second in a
    // release build. The rate limit is not what this measures.
    let server = TestServer::start_multi_tenant(|c| {
        c.store = None;
        c.tenant_defaults.requests_per_second = 100_000;
    })
    .await;
    let a = server.create_tenant("alpha", None).await;
    let b = server.create_tenant("beta", None).await;
    expect(&a.upload("loop", guests::LOOP).await, 201);
    let kinds = json!({"kinds": [{"term": "loop", "scheme": SCHEME, "location": "/loop/", "handler": "loop"}]});
    expect(&a.json("POST", "/-/", Some(kinds)).await, 200);
    let looping = json!({"kind": format!("{SCHEME}loop"), "id": "x"});
    expect_error(&a.json("POST", "/loop/", Some(looping)).await, 504, &["time limit"]);

    // Warm up B's path (catalog, pages).
    b_creates(&b, "warm", 500).await;

    // A's clients: while `hostile` is set, each calls the looping handler back to back.
    let stop = Arc::new(AtomicBool::new(false));
    let hostile = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let clients: Vec<_> = (0..HOSTILE_CLIENTS)
        .map(|c| {
            let (stop, hostile, client) = (Arc::clone(&stop), Arc::clone(&hostile), client.clone());
            let (calls, in_flight) = (Arc::clone(&calls), Arc::clone(&in_flight));
            let (url, auth) = (server.url("/loop/"), format!("Bearer {}", a.token));
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    if !hostile.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let body = json!({"kind": format!("{SCHEME}loop"), "id": format!("c{c}-{i}")}).to_string();
                    let r = client
                        .post(&url)
                        .header("Authorization", &auth)
                        .header("Content-Type", JSON)
                        .body(body)
                        .send()
                        .await
                        .expect("A's request reaches the server");
                    assert_eq!(r.status().as_u16(), 504, "A's looping call ends at its deadline");
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    calls.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();

    let (mut idle, mut busy) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    let mut hostile_time = Duration::ZERO;
    for block in 0..BLOCKS {
        // A idle: no call of A's left running or waiting.
        hostile.store(false, Ordering::Relaxed);
        while in_flight.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        idle.extend(b_creates(&b, &format!("idle{block}"), SAMPLES / BLOCKS).await);
        // A hostile: let its calls fill its slots and queue up, then measure.
        let calls_before = calls.load(Ordering::Relaxed);
        hostile.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        busy.extend(b_creates(&b, &format!("hostile{block}"), SAMPLES / BLOCKS).await);
        hostile_time += started.elapsed();
        // A really was hostile the whole time: its calls ran back to back (one slot, 100 ms
        // each: about 10 a second).
        let a_calls = calls.load(Ordering::Relaxed) - calls_before;
        assert!(
            a_calls as f64 >= started.elapsed().as_secs_f64() * 5.0,
            "only {a_calls} calls of A in {:?}",
            started.elapsed()
        );
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let a_calls = calls.load(Ordering::Relaxed);
    idle.sort();
    busy.sort();

    let (idle_p50, idle_p95, idle_p99) = (percentile(&idle, 0.5), percentile(&idle, 0.95), percentile(&idle, 0.99));
    let (busy_p50, busy_p95, busy_p99) = (percentile(&busy, 0.5), percentile(&busy, 0.95), percentile(&busy, 0.99));
    eprintln!(
        "B's create latency over {SAMPLES} creates each, in {BLOCKS} alternating blocks: A idle p50 {idle_p50:?} p95 \
         {idle_p95:?} p99 {idle_p99:?}; A hostile ({HOSTILE_CLIENTS} clients, {a_calls} calls of 100 ms, {hostile_time:?} \
         measured) p50 {busy_p50:?} p95 {busy_p95:?} p99 {busy_p99:?}"
    );
    assert!(
        busy_p50 <= idle_p50 * 2,
        "B's p50 create latency went from {idle_p50:?} (A idle) to {busy_p50:?} (A hostile): more than 2x"
    );
    assert!(
        busy_p99 <= idle_p99 * 2,
        "B's p99 create latency went from {idle_p99:?} (A idle) to {busy_p99:?} (A hostile): more than 2x"
    );
    // Nothing of A's was written.
    assert_eq!(a.get_ok("/loop/").await["resources"].as_array().map_or(0, Vec::len), 0);
}
