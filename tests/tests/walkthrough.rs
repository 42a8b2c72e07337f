//! The seed's section-4 walkthrough (examples/seed/steps.tsv, the same file the curl script
//! reads), run over HTTP against a fresh server: every step must give its documented status.

use ocni_tests::{PYOCNI, TestServer, repo_root};

#[tokio::test]
async fn seed_walkthrough_gives_documented_statuses() {
    let server = TestServer::start().await;
    let dir = repo_root().join("examples/seed");
    let steps = std::fs::read_to_string(dir.join("steps.tsv")).unwrap();
    let mut ran = 0;
    for line in steps.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 5, "malformed step line: {line:?}");
        let (id, method, path, file, status) = (cols[0], cols[1], cols[2], cols[3], cols[4]);
        let body = (file != "-").then(|| std::fs::read_to_string(dir.join(file)).unwrap());
        let reply = server.send(method, path, Some(PYOCNI), None, body).await;
        assert_eq!(
            reply.status.to_string(),
            status,
            "step {id} {method} {path}: expected {status}, body: {}",
            reply.text
        );
        ran += 1;
    }
    assert!(ran >= 25, "the walkthrough has {ran} steps");

    // What the walkthrough did is there: the entity created in 4.3.3 carries the start state.
    let vm = server.py("GET", "/compute/996ad860-2a9a-504f-8861-aeafd0b2ae29", None).await;
    let v = vm.json();
    assert_eq!(v["resources"][0]["attributes"]["occi"]["compute"]["state"], "active", "{v}");
    assert_eq!(v["resources"][0]["attributes"]["org"]["other"]["occi"]["my_mixin"]["my_attribute"], "my_value");
}
