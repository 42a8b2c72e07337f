//! Restart persistence: everything a client wrote is there after the server is stopped and
//! started again on the same data directory.

use ocni_tests::{COMPUTE, NETWORK, NETWORKINTERFACE, TestServer, expect};
use serde_json::{Value, json};

/// The OCCI 1.2 JSON rendering at `path` with the server's address taken out: link ends are
/// rendered absolute, and a restarted server listens on another port.
async fn without_base(server: &TestServer, path: &str) -> Value {
    let r = server.get(path).await;
    expect(&r, 200);
    serde_json::from_str(&r.text.replace(&server.base, "")).unwrap()
}

#[tokio::test]
async fn categories_entities_links_mixins_and_bindings_survive_restart() {
    let server = TestServer::start().await;
    let r = server
        .json(
            "POST",
            "/-/",
            Some(json!({
                "kinds": [{"term": "vm", "scheme": "http://example.com/occi#", "title": "VM", "location": "/vm/",
                           "attributes": {"example.vm.size": {"type": "integer", "mutable": true, "default": 1}}}],
                "mixins": [{"term": "gold", "scheme": "http://example.com/occi#", "location": "/gold/",
                            "attributes": {"example.sla": {"type": "string", "mutable": true, "default": "99.9"}}}]
            })),
        )
        .await;
    expect(&r, 200);
    expect(
        &server
            .json(
                "PUT",
                "/vm/a",
                Some(json!({"kind": "http://example.com/occi#vm", "attributes": {"example.vm.size": 3}})),
            )
            .await,
        201,
    );
    expect(
        &server
            .json("PUT", "/compute/c1", Some(json!({"kind": COMPUTE, "attributes": {"occi.compute.cores": 4}})))
            .await,
        201,
    );
    expect(&server.json("PUT", "/network/n1", Some(json!({"kind": NETWORK}))).await, 201);
    let link = json!({"kind": NETWORKINTERFACE, "source": {"location": "/compute/c1"}, "target": {"location": "/network/n1"},
                      "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}});
    expect(&server.json("PUT", "/networkinterface/l1", Some(link)).await, 201);
    expect(&server.json("POST", "/gold/", Some(json!({"X-OCCI-Location": ["/vm/a"]}))).await, 200);
    expect(&server.json("POST", "/compute/c1?action=start", None).await, 200);
    let providers = json!({"providers": [{"OCCI_ID": "http://example.com/occi#vm", "Provider": {"local": ["dummy"]}}]});
    expect(&server.json("PUT", "/-/", Some(providers)).await, 200);
    let before_vm = server.get("/vm/a").await.json();
    let before_c1 = without_base(&server, "/compute/c1").await;

    let server = server.restart().await;

    let cats = server.get("/-/").await.json();
    let kinds: Vec<&str> = cats["kinds"].as_array().unwrap().iter().filter_map(|k| k["term"].as_str()).collect();
    assert!(kinds.contains(&"vm"), "tenant kind lost: {kinds:?}");
    let vm = server.get("/vm/a").await;
    expect(&vm, 200);
    assert_eq!(vm.json(), before_vm);
    assert_eq!(vm.json()["mixins"], json!(["http://example.com/occi#gold"]));
    assert_eq!(vm.json()["attributes"]["example.sla"], "99.9");
    let c1 = without_base(&server, "/compute/c1").await;
    assert_eq!(c1, before_c1);
    assert_eq!(c1["attributes"]["occi.compute.state"], "active");
    assert_eq!(c1["links"][0]["id"], "l1", "inline link rendering after restart: {c1}");
    let members = server.py("GET", "/gold/", None).await.json();
    assert_eq!(members["X-OCCI-Location"].as_array().unwrap().len(), 1);
    // The kind's location still routes and its collection lists the entity.
    let listed = server.py("GET", "/vm/", None).await.json();
    assert!(listed["X-OCCI-Location"][0].as_str().unwrap().ends_with("/vm/a"));
    // The binding persisted: deleting the category also removes it, which must still work.
    let r = server
        .json(
            "DELETE",
            "/-/?cascade=true",
            Some(json!({"kinds": [{"term": "vm", "scheme": "http://example.com/occi#"}]})),
        )
        .await;
    expect(&r, 200);
    expect(&server.get("/vm/a").await, 404);
}
