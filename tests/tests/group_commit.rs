//! Group commit, end to end: many clients writing at once share commits, yet each request is
//! still all-or-nothing. A request that fails in the middle of a batch (after writing some of
//! its entities) leaves nothing behind, and the requests batched with it are kept, before and
//! after a restart.

use std::collections::BTreeSet;
use std::sync::Arc;

use ocni_tests::{COMPUTE, TestServer, expect};
use serde_json::{Value, json};

const CLIENTS: usize = 24;
const ROUNDS: usize = 8;

fn compute(id: &str, cores: Value) -> Value {
    json!({"kind": COMPUTE, "id": id, "attributes": {"occi.compute.cores": cores}})
}

/// The ids in a kind collection listing.
async fn listed(server: &TestServer) -> BTreeSet<String> {
    let reply = server.get("/compute/").await;
    expect(&reply, 200);
    let body = reply.json();
    body["resources"]
        .as_array()
        .map(|a| a.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_are_all_or_nothing_each() {
    let server = Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let (mut kept, mut refused) = (Vec::new(), Vec::new());
            for round in 0..ROUNDS {
                let ids: Vec<String> = (0..3).map(|i| format!("c{client}-r{round}-{i}")).collect();
                // Every other request fails on its last entity, after the first two were written
                // in its step: those must be undone, and nobody else's writes with them.
                let bad = (client + round) % 2 == 0;
                let last = if bad { json!("many") } else { json!(4) };
                let body = json!({"resources": [
                    compute(&ids[0], json!(1)), compute(&ids[1], json!(2)), compute(&ids[2], last)
                ]});
                let reply = server.json("POST", "/compute/", Some(body)).await;
                if bad {
                    assert_eq!(reply.status, 400, "{}", reply.text);
                    assert!(reply.text.contains("entity 2"), "the error names the entity: {}", reply.text);
                    refused.extend(ids);
                } else {
                    assert_eq!(reply.status, 201, "{}", reply.text);
                    kept.extend(ids);
                }
            }
            (kept, refused)
        }));
    }
    let (mut kept, mut refused) = (BTreeSet::new(), BTreeSet::new());
    for t in tasks {
        let (k, r) = t.await.unwrap();
        kept.extend(k);
        refused.extend(r);
    }
    assert_eq!(kept.len(), CLIENTS * ROUNDS / 2 * 3);
    assert_eq!(listed(&server).await, kept, "exactly the acknowledged entities are there");
    for id in refused.iter().take(5) {
        expect(&server.get(&format!("/compute/{id}")).await, 404);
    }

    // Acknowledged means durable: a new server on the same data finds them all.
    let server = Arc::into_inner(server).expect("every task is done").restart().await;
    assert_eq!(listed(&server).await, kept);
}

/// Creating the same location from many clients at once: exactly one wins, the others get 409,
/// whichever batch they land in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_of_one_location_have_one_winner() {
    let server = Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for client in 0..16 {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let body = json!({"resources": [compute("contested", json!(client + 1))]});
            let reply = server.json("POST", "/compute/", Some(body)).await;
            (reply.status, client + 1)
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let winners: Vec<i64> = outcomes.iter().filter(|(s, _)| *s == 201).map(|(_, c)| *c as i64).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|(s, _)| *s == 201 || *s == 409), "{outcomes:?}");
    let cores = server.get("/compute/contested").await.json()["attributes"]["occi.compute.cores"].as_i64().unwrap();
    assert_eq!(cores, winners[0], "the stored entity is the winner's");
}
