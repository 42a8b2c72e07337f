//! Entities over HTTP: creation (batches, ids, conflicts), both JSON renderings, PUT create and
//! replace, partial update, attribute validation, mixins on create, links (standalone and
//! inline), path management and collection listings.

use ocni_tests::{COMPUTE, NETWORK, NETWORKINTERFACE, Reply, STORAGE, TestServer, expect, expect_error};
use serde_json::{Value, json};

const SMALL: &str = "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#small";
const IPNETWORK: &str = "http://schemas.ogf.org/occi/infrastructure/network#ipnetwork";
const MAC: &str = "00:11:22:33:44:55";

fn compute(id: &str, attributes: Value) -> Value {
    json!({"kind": COMPUTE, "id": id, "attributes": attributes})
}

/// POSTs one entity (an entity object, not a collection) and expects 201.
async fn create(server: &TestServer, collection: &str, entity: Value) -> Reply {
    let reply = server.json("POST", collection, Some(entity)).await;
    expect(&reply, 201);
    reply
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("expected a string: {s}")).to_string())
        .collect()
}

fn ids_of(resources: &Value) -> Vec<String> {
    let mut ids: Vec<String> = resources
        .as_array()
        .unwrap_or_else(|| panic!("expected an array: {resources}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

// ---------------------------------------------------------------------- creation

#[tokio::test]
async fn post_batch_creates_every_resource_with_its_own_attributes() {
    let server = TestServer::start().await;
    let body = json!({"resources": [
        compute("a", json!({"occi.compute.cores": 2, "occi.compute.hostname": "alpha"})),
        {"kind": COMPUTE, "id": "b", "mixins": [SMALL], "title": "bee"},
        compute("c", json!({"occi": {"compute": {"cores": 8, "memory": 16.0}}})),
    ]});
    let reply = server.json("POST", "/compute/", Some(body)).await;
    expect(&reply, 201);
    let urls: Vec<String> = ["a", "b", "c"].iter().map(|id| server.url(&format!("/compute/{id}"))).collect();
    assert_eq!(strings(&reply.json()), urls, "1.2 body lists every URL");
    assert_eq!(reply.header("Location"), Some(urls[0].as_str()));

    let a = server.get_ok("/compute/a").await;
    assert_eq!(a["id"], "a");
    assert_eq!(a["attributes"]["occi.compute.cores"], 2);
    assert_eq!(a["attributes"]["occi.compute.hostname"], "alpha");
    assert!(a["attributes"].get("occi.compute.memory").is_none(), "{a}");
    assert!(a.get("mixins").is_none() && a.get("title").is_none(), "{a}");

    let b = server.get_ok("/compute/b").await;
    assert_eq!(b["mixins"], json!([SMALL]));
    assert_eq!(b["title"], "bee");
    assert_eq!(b["attributes"]["occi.compute.cores"], 1, "template default, not a's cores: {b}");
    assert!(b["attributes"].get("occi.compute.hostname").is_none(), "{b}");

    let c = server.get_ok("/compute/c").await;
    assert_eq!(c["attributes"]["occi.compute.cores"], 8);
    assert_eq!(c["attributes"]["occi.compute.memory"].as_f64(), Some(16.0));
    assert!(c["attributes"].get("occi.compute.hostname").is_none(), "{c}");
    assert!(c.get("mixins").is_none() && c.get("title").is_none(), "{c}");
}

#[tokio::test]
async fn post_batch_pyocni_answer_lists_locations() {
    let server = TestServer::start().await;
    let body = json!({"resources": [
        {"kind": COMPUTE, "id": "p1", "attributes": {"occi": {"compute": {"cores": 3}}}},
        {"kind": COMPUTE, "id": "p2", "attributes": {"occi": {"compute": {"cores": 5}}}},
    ]});
    let reply = server.py("POST", "/compute/", Some(body)).await;
    expect(&reply, 201);
    let urls = vec![server.url("/compute/p1"), server.url("/compute/p2")];
    assert_eq!(strings(&reply.json()["Location"]), urls);
    assert_eq!(reply.header("Location"), Some(urls[0].as_str()));
    assert_eq!(server.get_ok("/compute/p1").await["attributes"]["occi.compute.cores"], 3);
    assert_eq!(server.get_ok("/compute/p2").await["attributes"]["occi.compute.cores"], 5);
}

#[tokio::test]
async fn ids_generated_or_taken_from_the_request() {
    let server = TestServer::start().await;
    let reply = create(&server, "/compute/", json!({"kind": COMPUTE})).await;
    let url = strings(&reply.json()).remove(0);
    let prefix = server.url("/compute/");
    let id = url.strip_prefix(&prefix).unwrap_or_else(|| panic!("{url} is not below {prefix}"));
    assert!(is_uuid(id), "server-generated id should be a UUID: {id:?}");
    assert_eq!(reply.header("Location"), Some(url.as_str()));
    let e = server.get_ok(&format!("/compute/{id}")).await;
    assert_eq!(e["id"], id);

    let reply = create(&server, "/compute/", json!({"kind": COMPUTE, "id": "my-vm.1"})).await;
    assert_eq!(strings(&reply.json()), vec![server.url("/compute/my-vm.1")]);
    assert_eq!(server.get_ok("/compute/my-vm.1").await["id"], "my-vm.1");

    // Two creations without ids get different ids.
    let other = create(&server, "/compute/", json!({"kind": COMPUTE})).await;
    assert_ne!(strings(&other.json()), vec![url]);
}

#[tokio::test]
async fn duplicate_ids_conflict_and_write_nothing() {
    let server = TestServer::start().await;
    // Within one request: the whole batch is refused.
    let body = json!({"resources": [
        compute("first", json!({})),
        compute("dup", json!({})),
        compute("dup", json!({"occi.compute.cores": 2})),
    ]});
    let reply = server.json("POST", "/compute/", Some(body)).await;
    expect_error(&reply, 409, &["dup"]);
    expect(&server.get("/compute/first").await, 404);
    expect(&server.get("/compute/dup").await, 404);

    // Against an existing entity: refused, the existing one unchanged, the new one not written.
    create(&server, "/compute/", compute("dup", json!({"occi.compute.cores": 4}))).await;
    let body = json!({"resources": [compute("new", json!({})), compute("dup", json!({"occi.compute.cores": 6}))]});
    expect(&server.json("POST", "/compute/", Some(body)).await, 409);
    expect(&server.get("/compute/new").await, 404);
    assert_eq!(server.get_ok("/compute/dup").await["attributes"]["occi.compute.cores"], 4);
}

#[tokio::test]
async fn wrong_kind_for_the_collection_is_refused() {
    let server = TestServer::start().await;
    let reply = server.json("POST", "/compute/", Some(json!({"kind": NETWORK, "id": "n"}))).await;
    expect_error(&reply, 400, &[NETWORK]);
    expect(&server.get("/compute/n").await, 404);
    expect(&server.get("/network/n").await, 404);
}

// ---------------------------------------------------------------------- renderings

#[tokio::test]
async fn get_renders_occi12_flat_with_defaults_and_actions() {
    let server = TestServer::start().await;
    create(
        &server,
        "/compute/",
        json!({"kind": COMPUTE, "id": "vm", "title": "t", "summary": "s", "attributes": {"occi.compute.cores": 2}}),
    )
    .await;
    let reply = server.get("/compute/vm").await;
    expect(&reply, 200);
    assert!(reply.header("Content-Type").unwrap_or_default().starts_with("application/occi+json"));
    let v = reply.json();
    assert_eq!(v["kind"], COMPUTE);
    assert_eq!(v["id"], "vm");
    assert_eq!(v["title"], "t");
    assert_eq!(v["summary"], "s");
    let attrs = v["attributes"].as_object().unwrap();
    assert_eq!(attrs["occi.compute.cores"], 2);
    assert_eq!(attrs["occi.compute.state"], "inactive", "default applied: {v}");
    assert!(!attrs.contains_key("occi"), "attributes are flat in OCCI 1.2: {v}");
    // Only the actions applicable in its state (GFD.185 3.5.3): an inactive compute starts.
    let actions = strings(&v["actions"]);
    assert_eq!(actions, ["http://schemas.ogf.org/occi/infrastructure/compute/action#start"], "{v}");
}

#[tokio::test]
async fn get_renders_pyocni_nested() {
    let server = TestServer::start().await;
    create(&server, "/compute/", compute("vm", json!({"occi.compute.cores": 2, "occi.compute.hostname": "h"}))).await;
    let reply = server.py("GET", "/compute/vm", None).await;
    expect(&reply, 200);
    let v = reply.json();
    let r = &v["resources"][0];
    assert_eq!(r["kind"], COMPUTE);
    assert_eq!(r["id"], "vm");
    assert_eq!(r["attributes"]["occi"]["compute"]["cores"], 2, "{v}");
    assert_eq!(r["attributes"]["occi"]["compute"]["hostname"], "h");
    assert_eq!(r["attributes"]["occi"]["compute"]["state"], "inactive");
    assert!(r["attributes"].get("occi.compute.cores").is_none(), "{v}");
    let actions = r["actions"].as_array().unwrap();
    assert!(
        actions.iter().any(|a| a["href"] == "/compute/vm?action=start"
            && a["category"] == "http://schemas.ogf.org/occi/infrastructure/compute/action#start"),
        "{v}"
    );
}

// ---------------------------------------------------------------------- PUT and partial update

#[tokio::test]
async fn put_creates_at_an_unbound_path() {
    let server = TestServer::start().await;
    let reply = server
        .json(
            "PUT",
            "/users/bob/vm1",
            Some(json!({"kind": COMPUTE, "id": "vm1", "attributes": {"occi.compute.cores": 2}})),
        )
        .await;
    expect(&reply, 201);
    assert_eq!(reply.header("Location"), Some(server.url("/users/bob/vm1").as_str()));
    let v = server.get_ok("/users/bob/vm1").await;
    assert_eq!(v["id"], "vm1");
    assert_eq!(v["kind"], COMPUTE);
    assert_eq!(v["attributes"]["occi.compute.cores"], 2);
    assert_eq!(v["attributes"]["occi.compute.state"], "inactive");

    // Without an id, the last URL segment is the id.
    let reply = server.json("PUT", "/users/bob/vm2", Some(json!({"kind": COMPUTE}))).await;
    expect(&reply, 201);
    assert_eq!(server.get_ok("/users/bob/vm2").await["id"], "vm2");
}

#[tokio::test]
async fn put_with_an_id_not_matching_the_url_is_refused() {
    let server = TestServer::start().await;
    let reply = server.json("PUT", "/users/bob/vm1", Some(json!({"kind": COMPUTE, "id": "other"}))).await;
    expect_error(&reply, 400, &["other"]);
    expect(&server.get("/users/bob/vm1").await, 404);
    expect(&server.get("/users/bob/other").await, 404);
}

#[tokio::test]
async fn put_replaces_an_existing_entity() {
    let server = TestServer::start().await;
    create(
        &server,
        "/compute/",
        json!({"kind": COMPUTE, "id": "vm", "mixins": [SMALL], "title": "old",
               "attributes": {"occi.compute.cores": 3, "occi.compute.hostname": "old-host"}}),
    )
    .await;
    expect(&server.json("POST", "/compute/vm?action=start", None).await, 200);

    let reply = server
        .json(
            "PUT",
            "/compute/vm",
            Some(json!({"kind": COMPUTE, "mixins": [SMALL], "attributes": {"occi.compute.memory": 2.5}})),
        )
        .await;
    expect(&reply, 201);
    let v = server.get_ok("/compute/vm").await;
    let attrs = &v["attributes"];
    assert_eq!(attrs["occi.compute.memory"].as_f64(), Some(2.5), "{v}");
    assert_eq!(attrs["occi.compute.cores"], 1, "not given: back to the template default: {v}");
    assert!(attrs.get("occi.compute.hostname").is_none(), "not given, no default: gone: {v}");
    assert!(v.get("title").is_none(), "title not given: gone: {v}");
    assert_eq!(attrs["occi.compute.state"], "active", "immutable state kept: {v}");
    assert_eq!(v["id"], "vm");
}

#[tokio::test]
async fn post_partial_update_merges() {
    let server = TestServer::start().await;
    create(
        &server,
        "/compute/",
        json!({"kind": COMPUTE, "id": "vm", "title": "keep",
               "attributes": {"occi.compute.cores": 2, "occi.compute.hostname": "h"}}),
    )
    .await;
    // pyOCNI shape, without kind.
    let body = json!({"resources": [{"attributes": {"occi": {"compute": {"cores": 4}}}}]});
    let reply = server.py("POST", "/compute/vm", Some(body)).await;
    expect(&reply, 201);
    let v = server.get_ok("/compute/vm").await;
    assert_eq!(v["attributes"]["occi.compute.cores"], 4);
    assert_eq!(v["attributes"]["occi.compute.hostname"], "h", "other attributes kept: {v}");
    assert_eq!(v["attributes"]["occi.compute.state"], "inactive");
    assert_eq!(v["title"], "keep");

    // OCCI 1.2 shape, with kind and flat names.
    let body = json!({"kind": COMPUTE, "attributes": {"occi.compute.memory": 8.0}});
    let reply = server.json("POST", "/compute/vm", Some(body)).await;
    expect(&reply, 201);
    let v = server.get_ok("/compute/vm").await;
    assert_eq!(v["attributes"]["occi.compute.memory"].as_f64(), Some(8.0));
    assert_eq!(v["attributes"]["occi.compute.cores"], 4);
    assert_eq!(v["attributes"]["occi.compute.hostname"], "h");
}

// ---------------------------------------------------------------------- validation

#[tokio::test]
async fn validation_failures_name_the_attribute() {
    let server = TestServer::start().await;
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("/compute/", compute("t", json!({"occi.compute.cores": "two"})), vec!["occi.compute.cores", "type"]),
        ("/compute/", compute("u", json!({"occi.compute.colour": "red"})), vec!["occi.compute.colour"]),
        ("/storage/", json!({"kind": STORAGE, "id": "s"}), vec!["occi.storage.size", "required"]),
        (
            "/network/",
            json!({"kind": NETWORK, "id": "n", "attributes": {"occi.network.label": "has space"}}),
            vec!["occi.network.label", "pattern"],
        ),
        (
            "/compute/",
            compute("e", json!({"occi.compute.architecture": "arm"})),
            vec!["occi.compute.architecture", "enum"],
        ),
        ("/compute/", compute("r", json!({"occi.compute.cores": 0})), vec!["occi.compute.cores", "minimum"]),
    ];
    for (collection, body, words) in cases {
        let id = body["id"].as_str().unwrap().to_string();
        let reply = server.json("POST", collection, Some(body)).await;
        expect_error(&reply, 400, &words);
        expect(&server.get(&format!("{collection}{id}")).await, 404);
    }
    // The valid forms are accepted.
    create(&server, "/storage/", json!({"kind": STORAGE, "id": "s", "attributes": {"occi.storage.size": 10}})).await;
    create(&server, "/network/", json!({"kind": NETWORK, "id": "n", "attributes": {"occi.network.label": "dmz"}}))
        .await;
    create(&server, "/compute/", compute("e", json!({"occi.compute.architecture": "x64", "occi.compute.cores": 1})))
        .await;
}

#[tokio::test]
async fn immutable_attribute_and_kind_cannot_change() {
    let server = TestServer::start().await;
    create(&server, "/compute/", compute("vm", json!({"occi.compute.cores": 2}))).await;

    let body = json!({"resources": [{"attributes": {"occi.compute.state": "active", "occi.compute.cores": 3}}]});
    let reply = server.py("POST", "/compute/vm", Some(body)).await;
    expect_error(&reply, 400, &["occi.compute.state", "immutable"]);

    let reply = server.json("POST", "/compute/vm", Some(json!({"kind": NETWORK}))).await;
    expect_error(&reply, 400, &["kind"]);
    let reply = server.json("PUT", "/compute/vm", Some(json!({"kind": NETWORK}))).await;
    expect_error(&reply, 400, &["kind"]);

    let v = server.get_ok("/compute/vm").await;
    assert_eq!(v["kind"], COMPUTE);
    assert_eq!(v["attributes"]["occi.compute.state"], "inactive");
    assert_eq!(v["attributes"]["occi.compute.cores"], 2, "a refused update changes nothing: {v}");
}

// ---------------------------------------------------------------------- mixins on create

#[tokio::test]
async fn template_mixin_defaults_apply_and_can_be_overridden() {
    let server = TestServer::start().await;
    create(&server, "/compute/", json!({"kind": COMPUTE, "id": "s", "mixins": [SMALL]})).await;
    let v = server.get_ok("/compute/s").await;
    assert_eq!(v["mixins"], json!([SMALL]));
    assert_eq!(v["attributes"]["occi.compute.cores"], 1);
    assert_eq!(v["attributes"]["occi.compute.memory"].as_f64(), Some(1.0));

    create(
        &server,
        "/compute/",
        json!({"kind": COMPUTE, "id": "s2", "mixins": [SMALL], "attributes": {"occi.compute.cores": 2}}),
    )
    .await;
    assert_eq!(server.get_ok("/compute/s2").await["attributes"]["occi.compute.cores"], 2);
}

#[tokio::test]
async fn mixins_that_do_not_apply_or_do_not_exist_are_refused() {
    let server = TestServer::start().await;
    let reply = server.json("POST", "/network/", Some(json!({"kind": NETWORK, "id": "n", "mixins": [SMALL]}))).await;
    expect_error(&reply, 400, &[SMALL]);
    expect(&server.get("/network/n").await, 404);

    let reply =
        server.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "c", "mixins": [IPNETWORK]}))).await;
    expect_error(&reply, 400, &[IPNETWORK]);

    let unknown = "http://example.com/nothing#here";
    let reply = server.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "c", "mixins": [unknown]}))).await;
    expect_error(&reply, 400, &[unknown]);
    expect(&server.get("/compute/c").await, 404);

    // ipnetwork applies to networks.
    create(
        &server,
        "/network/",
        json!({"kind": NETWORK, "id": "n", "mixins": [IPNETWORK], "attributes": {"occi.network.address": "10.0.0.0/24"}}),
    )
    .await;
    assert_eq!(server.get_ok("/network/n").await["attributes"]["occi.network.address"], "10.0.0.0/24");
}

// ---------------------------------------------------------------------- links

async fn compute_and_network(server: &TestServer) {
    create(server, "/compute/", compute("vm", json!({}))).await;
    create(server, "/network/", json!({"kind": NETWORK, "id": "net"})).await;
}

fn nic(id: &str, source: &str, target: &str) -> Value {
    json!({
        "kind": NETWORKINTERFACE, "id": id,
        "source": {"location": source, "kind": COMPUTE},
        "target": {"location": target, "kind": NETWORK},
        "attributes": {"occi.networkinterface.mac": MAC},
    })
}

#[tokio::test]
async fn standalone_link_is_created_and_rendered_inline() {
    let server = TestServer::start().await;
    compute_and_network(&server).await;
    let reply = create(&server, "/networkinterface/", nic("nic1", "/compute/vm", "/network/net")).await;
    assert_eq!(strings(&reply.json()), vec![server.url("/networkinterface/nic1")]);

    let link = server.get_ok("/networkinterface/nic1").await;
    assert_eq!(link["kind"], NETWORKINTERFACE);
    assert!(link["source"]["location"].as_str().unwrap().ends_with("/compute/vm"), "{link}");
    assert_eq!(link["target"]["kind"], NETWORK);
    assert_eq!(link["attributes"]["occi.networkinterface.mac"], MAC);
    assert_eq!(link["attributes"]["occi.networkinterface.state"], "inactive");

    let vm = server.get_ok("/compute/vm").await;
    let links = vm["links"].as_array().unwrap_or_else(|| panic!("compute has no links: {vm}"));
    assert_eq!(links.len(), 1, "{vm}");
    let l = &links[0];
    assert_eq!(l["id"], "nic1");
    assert_eq!(l["kind"], NETWORKINTERFACE);
    assert!(l["source"]["location"].as_str().unwrap().ends_with("/compute/vm"), "{vm}");
    assert_eq!(l["source"]["kind"], COMPUTE, "{vm}");
    assert!(l["target"]["location"].as_str().unwrap().ends_with("/network/net"), "{vm}");
    assert_eq!(l["target"]["kind"], NETWORK, "{vm}");

    // The target's rendering does not carry the link inline (only the source does).
    let net = server.get_ok("/network/net").await;
    assert!(net.get("links").is_none_or(|l| l.as_array().is_some_and(Vec::is_empty)), "{net}");
}

#[tokio::test]
async fn links_to_missing_ends_are_not_found() {
    let server = TestServer::start().await;
    compute_and_network(&server).await;
    let reply = server.json("POST", "/networkinterface/", Some(nic("l1", "/compute/ghost", "/network/net"))).await;
    expect_error(&reply, 404, &["/compute/ghost"]);
    let reply = server.json("POST", "/networkinterface/", Some(nic("l2", "/compute/vm", "/network/ghost"))).await;
    expect_error(&reply, 404, &["/network/ghost"]);
    expect(&server.get("/networkinterface/l1").await, 404);
    expect(&server.get("/networkinterface/l2").await, 404);
    assert!(server.get_ok("/compute/vm").await.get("links").is_none());
}

#[tokio::test]
async fn inline_link_is_created_with_its_resource() {
    let server = TestServer::start().await;
    create(&server, "/network/", json!({"kind": NETWORK, "id": "net"})).await;
    let body = json!({"resources": [{
        "kind": COMPUTE, "id": "vm",
        "links": [{
            "kind": NETWORKINTERFACE, "id": "eth0",
            "target": {"location": "/network/net", "kind": NETWORK},
            "attributes": {"occi.networkinterface.mac": MAC},
        }],
    }]});
    let reply = server.json("POST", "/compute/", Some(body)).await;
    expect(&reply, 201);
    let urls = strings(&reply.json());
    assert!(urls.contains(&server.url("/compute/vm")), "{urls:?}");
    // GFD.185 3.4.5: only the resource's location is returned; its links are found on it.
    assert!(!urls.contains(&server.url("/networkinterface/eth0")), "{urls:?}");

    let link = server.get_ok("/networkinterface/eth0").await;
    assert!(link["source"]["location"].as_str().unwrap().ends_with("/compute/vm"), "{link}");
    assert!(link["target"]["location"].as_str().unwrap().ends_with("/network/net"), "{link}");
    let vm = server.get_ok("/compute/vm").await;
    assert_eq!(vm["links"][0]["id"], "eth0", "{vm}");
}

#[tokio::test]
async fn deleting_a_resource_deletes_its_links() {
    let server = TestServer::start().await;
    compute_and_network(&server).await;
    create(&server, "/networkinterface/", nic("nic1", "/compute/vm", "/network/net")).await;
    expect(&server.json("DELETE", "/compute/vm", None).await, 200);
    expect(&server.get("/compute/vm").await, 404);
    expect(&server.get("/networkinterface/nic1").await, 404);
    server.get_ok("/network/net").await;
    let reply = server.get("/networkinterface/").await;
    expect(&reply, 200);
    assert!(reply.json().get("links").is_none(), "{}", reply.text);
}

// ---------------------------------------------------------------------- paths and listings

#[tokio::test]
async fn path_listing_and_deletion() {
    let server = TestServer::start().await;
    for path in ["/users/bob/vm1", "/users/bob/vm2", "/users/bobby/vm3", "/users/alice/vm4"] {
        expect(&server.json("PUT", path, Some(json!({"kind": COMPUTE}))).await, 201);
    }
    let reply = server.py("GET", "/users/", None).await;
    expect(&reply, 200);
    let mut listed = strings(&reply.json()["X-OCCI-Location"]);
    listed.sort();
    let mut want: Vec<String> = ["/users/alice/vm4", "/users/bob/vm1", "/users/bob/vm2", "/users/bobby/vm3"]
        .iter()
        .map(|p| server.url(p))
        .collect();
    want.sort();
    assert_eq!(listed, want);

    let reply = server.py("GET", "/users/bob/", None).await;
    let mut bob = strings(&reply.json()["X-OCCI-Location"]);
    bob.sort();
    assert_eq!(bob, vec![server.url("/users/bob/vm1"), server.url("/users/bob/vm2")]);

    expect(&server.json("DELETE", "/users/bob/", None).await, 200);
    expect(&server.get("/users/bob/vm1").await, 404);
    expect(&server.get("/users/bob/vm2").await, 404);
    server.get_ok("/users/bobby/vm3").await;
    server.get_ok("/users/alice/vm4").await;
    let reply = server.py("GET", "/users/", None).await;
    let mut left = strings(&reply.json()["X-OCCI-Location"]);
    left.sort();
    assert_eq!(left, vec![server.url("/users/alice/vm4"), server.url("/users/bobby/vm3")]);
}

async fn three_computes(server: &TestServer) {
    let body = json!({"resources": [
        compute("c1", json!({"occi.compute.cores": 2})),
        compute("c2", json!({"occi.compute.cores": 4})),
        compute("c3", json!({"occi.compute.cores": 2, "occi.compute.hostname": "three"})),
    ]});
    expect(&server.json("POST", "/compute/", Some(body)).await, 201);
    create(server, "/network/", json!({"kind": NETWORK, "id": "n1"})).await;
}

#[tokio::test]
async fn kind_collection_lists_full_resources() {
    let server = TestServer::start().await;
    three_computes(&server).await;
    let reply = server.get("/compute/").await;
    expect(&reply, 200);
    let v = reply.json();
    assert_eq!(ids_of(&v["resources"]), vec!["c1", "c2", "c3"], "{v}");
    let c3 = v["resources"].as_array().unwrap().iter().find(|r| r["id"] == "c3").unwrap();
    assert_eq!(c3["kind"], COMPUTE);
    assert_eq!(c3["attributes"]["occi.compute.hostname"], "three");
    assert_eq!(c3["attributes"]["occi.compute.state"], "inactive");
}

#[tokio::test]
async fn filter_body_selects_matching_resources() {
    let server = TestServer::start().await;
    three_computes(&server).await;
    let filter = json!({"resources": [{"attributes": {"occi": {"compute": {"cores": 2}}}}]});
    let reply = server.json("GET", "/compute/", Some(filter.clone())).await;
    expect(&reply, 200);
    assert_eq!(ids_of(&reply.json()["resources"]), vec!["c1", "c3"], "{}", reply.text);

    let reply = server.py("GET", "/compute/", Some(filter)).await;
    expect(&reply, 200);
    let mut urls = strings(&reply.json()["X-OCCI-Location"]);
    urls.sort();
    assert_eq!(urls, vec![server.url("/compute/c1"), server.url("/compute/c3")]);

    let reply = server
        .json("GET", "/compute/", Some(json!({"resources": [{"attributes": {"occi.compute.hostname": "three"}}]})))
        .await;
    assert_eq!(ids_of(&reply.json()["resources"]), vec!["c3"]);
}

/// A filtered listing pages over the matches (not over the collection), in location order.
#[tokio::test]
async fn filtered_listing_pages_over_the_matches() {
    let server = TestServer::start().await;
    let resources: Vec<Value> = (1..=9)
        .map(|i| compute(&format!("v{i}"), json!({"occi.compute.cores": if i % 2 == 1 { 4 } else { 1 }})))
        .collect();
    expect(&server.json("POST", "/compute/", Some(json!({"resources": resources}))).await, 201);
    let filter = json!({"resources": [{"attributes": {"occi.compute.cores": 4}}]});
    let page = |n: u32| {
        let server = &server;
        let filter = filter.clone();
        async move {
            let reply = server.json("GET", &format!("/compute/?page={n}&number=2"), Some(filter)).await;
            expect(&reply, 200);
            let body = reply.json();
            if body["resources"].is_null() { Vec::new() } else { ids_of(&body["resources"]) }
        }
    };
    assert_eq!(page(1).await, ["v1", "v3"]);
    assert_eq!(page(2).await, ["v5", "v7"]);
    assert_eq!(page(3).await, ["v9"]);
    assert!(page(4).await.is_empty());
}

#[tokio::test]
async fn uri_list_has_one_url_per_line() {
    let server = TestServer::start().await;
    three_computes(&server).await;
    let reply = server.send("GET", "/compute/", Some("text/uri-list"), None, None).await;
    expect(&reply, 200);
    assert!(reply.header("Content-Type").unwrap_or_default().starts_with("text/uri-list"));
    let mut lines: Vec<&str> = reply.text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.sort();
    let want: Vec<String> = ["c1", "c2", "c3"].iter().map(|id| server.url(&format!("/compute/{id}"))).collect();
    assert_eq!(lines, want.iter().map(String::as_str).collect::<Vec<_>>(), "{}", reply.text);
}

// ---------------------------------------------------------------------- cached answers

/// The `X-OCCI-Attribute` lines of a text/occi GET of `path`, which must answer 200.
async fn text_attributes(server: &TestServer, path: &str) -> Vec<String> {
    let reply = server.send("GET", path, Some("text/occi"), None, None).await;
    expect(&reply, 200);
    reply.headers.get_all("X-OCCI-Attribute").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

/// A GET answer is served from the answers rendered since the last commit: every write is
/// visible to the GET that follows its answer, in every rendering, whatever it changed (the
/// entity itself, a link to it, its deletion).
#[tokio::test]
async fn get_answers_follow_every_write_at_once() {
    let server = TestServer::start().await;
    compute_and_network(&server).await;
    let titled = |lines: &[String]| lines.iter().any(|l| l.contains("occi.core.title=\"renamed\""));
    for _ in 0..2 {
        assert_eq!(server.get_ok("/compute/vm").await["title"], Value::Null);
        assert!(!titled(&text_attributes(&server, "/compute/vm").await));
    }
    // The entity itself.
    let update = json!({"kind": COMPUTE, "title": "renamed", "attributes": {}});
    expect(&server.json("POST", "/compute/vm", Some(update)).await, 201);
    assert_eq!(server.get_ok("/compute/vm").await["title"], "renamed");
    let lines = text_attributes(&server, "/compute/vm").await;
    assert!(titled(&lines), "{lines:?}");
    // Another entity: a link whose source it is.
    assert!(server.get_ok("/compute/vm").await["links"].is_null());
    create(&server, "/networkinterface/", nic("nic1", "/compute/vm", "/network/net")).await;
    assert_eq!(server.get_ok("/compute/vm").await["links"].as_array().map(Vec::len), Some(1));
    // Its deletion.
    expect(&server.json("DELETE", "/compute/vm", None).await, 200);
    expect(&server.get("/compute/vm").await, 404);
    expect(&server.send("GET", "/compute/vm", Some("text/occi"), None, None).await, 404);
}
