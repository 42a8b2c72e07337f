//! Nodes on an etcd store, end to end: without a quorum every route answers 503 with a message
//! that says so (no hang, no 500) and the node recovers by itself when the quorum is back; a
//! node whose watch was cut off across a compaction lists the store again; and a tenant's
//! request rate is counted per node (documented in the README).

use std::time::{Duration, Instant};

use ocni_tests::etcd::EtcdCluster;
use ocni_tests::{COMPUTE, TestServer, expect};
use serde_json::json;

/// A server on `cluster` under `prefix`, multi-tenant when `admin`.
async fn node(cluster: &EtcdCluster, prefix: &str, admin: bool) -> TestServer {
    let target: ocni_server::EtcdTarget = format!("{}/{prefix}", cluster.url()).parse().unwrap();
    let configure = |c: &mut ocni_server::Config| c.store = Some(target.clone());
    if admin { TestServer::start_multi_tenant(configure).await } else { TestServer::start_configured(configure).await }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_quorum_every_route_answers_503_and_the_node_recovers() {
    let mut cluster = EtcdCluster::start(3).await;
    let server = node(&cluster, "quorum", false).await;
    expect(&server.json("PUT", "/compute/a", Some(json!({"kind": COMPUTE}))).await, 201);

    let leader = cluster.leader().await;
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    cluster.kill(others[0]);
    cluster.kill(others[1]);
    for (method, path, body) in [
        ("GET", "/-/", None),
        ("GET", "/compute/a", None),
        ("GET", "/compute/", None),
        ("PUT", "/compute/b", Some(json!({"kind": COMPUTE}))),
    ] {
        let started = Instant::now();
        let r = server.json(method, path, body).await;
        let took = started.elapsed();
        assert_eq!(r.status, 503, "{method} {path} without quorum: {}", r.text);
        assert!(r.error_message().contains("the store is unavailable"), "{method} {path}: {}", r.text);
        assert_eq!(r.header("retry-after"), Some("1"), "{method} {path}");
        assert!(took < Duration::from_secs(15), "{method} {path} took {took:?}");
    }

    cluster.restart(others[0]).await;
    cluster.restart(others[1]).await;
    // Back without a restart of the node: within a few seconds of the quorum.
    let started = Instant::now();
    loop {
        let r = server.get("/compute/a").await;
        if r.status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "not recovered: {} {}", r.status, r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect(&server.json("PUT", "/compute/b", Some(json!({"kind": COMPUTE}))).await, 201);
    let listed = server.send("GET", "/compute/", Some("text/uri-list"), None, None).await;
    assert_eq!(listed.text.lines().count(), 2, "the write refused without quorum was not applied: {}", listed.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_rates_are_counted_per_node() {
    let cluster = EtcdCluster::start(1).await;
    let a = node(&cluster, "rates", true).await;
    let b = node(&cluster, "rates", true).await;
    // Created on A, known on B from its next request on.
    let tenant = a.create_tenant("acme", Some(json!({"requests_per_second": 3}))).await;
    let auth = format!("Bearer {}", tenant.token);
    for (name, server) in [("A", &a), ("B", &b)] {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let r = server.send_as(Some(&auth), "GET", "/-/", Some("text/plain"), None, None).await;
            statuses.push(r.status);
        }
        // A full bucket of 3 per second on each node: B's is its own, A's requests took none.
        assert_eq!(statuses, [200, 200, 200, 429], "node {name}");
    }
}

/// A node whose watch was cut off while the cluster moved on and compacted its history lists
/// the store again: node A, given only member m0, is cut off by m0's death; node B (on m1)
/// writes, and the history is compacted; when m0 is back, A serves what B wrote.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_cut_off_across_a_compaction_lists_the_store_again() {
    let mut cluster = EtcdCluster::start(3).await;
    let only = |i: usize, c: &mut ocni_server::Config| {
        c.store = Some(format!("{}/relist", cluster.member_url(i)).parse().unwrap());
    };
    let a = TestServer::start_configured(|c| only(0, c)).await;
    let b = TestServer::start_configured(|c| only(1, c)).await;
    expect(&a.json("PUT", "/compute/before", Some(json!({"kind": COMPUTE}))).await, 201);
    expect(&b.get("/compute/before").await, 200);

    cluster.kill(0);
    for i in 0..20 {
        expect(&b.json("PUT", &format!("/compute/b{i}"), Some(json!({"kind": COMPUTE}))).await, 201);
    }
    expect(&b.json("DELETE", "/compute/before", None).await, 200);
    // Compact the history up to now, so that A's watch cannot resume where it stopped.
    cluster.compact(1).await;

    cluster.restart(0).await;
    let started = Instant::now();
    loop {
        let r = a.send("GET", "/compute/", Some("text/uri-list"), None, None).await;
        if r.status == 200 && r.text.lines().count() == 20 {
            assert!(!r.text.contains("/compute/before"), "the deletion is seen too: {}", r.text);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "A did not catch up: {} {}", r.status, r.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
