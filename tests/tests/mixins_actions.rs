//! Mixin association on a tenant mixin's location (POST / PUT / DELETE of member lists) and
//! actions on entities and collections (state machines, parameters, both body dialects,
//! all-or-nothing collection actions).

use ocni_tests::{COMPUTE, COMPUTE_ACTION, NETWORK, STORAGE, TestServer, expect, expect_error};
use serde_json::{Value, json};

const GOLD: &str = "http://example.com/occi/tenant#gold";
const GOLD_LOC: &str = "/mixins/gold/";
const TIER: &str = "com.example.tier";
const NETWORK_ACTION: &str = "http://schemas.ogf.org/occi/infrastructure/network/action#";
const STORAGE_ACTION: &str = "http://schemas.ogf.org/occi/infrastructure/storage/action#";

/// Defines the tenant mixin `gold` (no `applies`: any kind) with one attribute that has a
/// default.
async fn define_gold(server: &TestServer) {
    let body = json!({"mixins": [{
        "term": "gold",
        "scheme": "http://example.com/occi/tenant#",
        "title": "Gold service level",
        "attributes": {TIER: {"type": "string", "mutable": true, "required": false, "default": "gold"}},
        "location": GOLD_LOC,
    }]});
    expect(&server.json("POST", "/-/", Some(body)).await, 200);
}

async fn computes(server: &TestServer, ids: &[&str]) {
    let resources: Vec<Value> = ids.iter().map(|id| json!({"kind": COMPUTE, "id": id})).collect();
    expect(&server.json("POST", "/compute/", Some(json!({ "resources": resources }))).await, 201);
}

fn has_gold(v: &Value) -> bool {
    v.get("mixins").and_then(Value::as_array).is_some_and(|m| m.iter().any(|x| x == GOLD))
}

/// Asserts which of `/compute/{id}` carry `gold` (and its attribute), and that the mixin's
/// collection lists exactly those.
async fn assert_members(server: &TestServer, all: &[&str], members: &[&str]) {
    for id in all {
        let v = server.get_ok(&format!("/compute/{id}")).await;
        let want = members.contains(id);
        assert_eq!(has_gold(&v), want, "/compute/{id} mixins: {v}");
        if want {
            assert_eq!(v["attributes"][TIER], "gold", "mixin default applied: {v}");
        } else {
            assert!(v["attributes"].get(TIER).is_none(), "mixin attribute gone with the mixin: {v}");
        }
    }
    let reply = server.py("GET", GOLD_LOC, None).await;
    expect(&reply, 200);
    let mut listed: Vec<String> = reply.json()["X-OCCI-Location"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", reply.text))
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut want: Vec<String> = members.iter().map(|id| server.url(&format!("/compute/{id}"))).collect();
    want.sort();
    assert_eq!(listed, want, "members of {GOLD_LOC}");
}

fn locations(server: &TestServer, ids: &[&str]) -> Value {
    json!({"X-OCCI-Location": ids.iter().map(|id| server.url(&format!("/compute/{id}"))).collect::<Vec<_>>()})
}

// ---------------------------------------------------------------------- mixin association
#[tokio::test]
async fn associate_replace_and_dissociate_members() {
    let server = TestServer::start().await;
    define_gold(&server).await;
    let all = ["a", "b", "c"];
    computes(&server, &all).await;
    assert_members(&server, &all, &[]).await;

    expect(&server.py("POST", GOLD_LOC, Some(locations(&server, &["a", "b"]))).await, 200);
    assert_members(&server, &all, &["a", "b"]).await;

    // Associating again is harmless.
    expect(&server.py("POST", GOLD_LOC, Some(locations(&server, &["a"]))).await, 200);
    assert_members(&server, &all, &["a", "b"]).await;

    expect(&server.py("PUT", GOLD_LOC, Some(locations(&server, &["b", "c"]))).await, 200);
    assert_members(&server, &all, &["b", "c"]).await;

    expect(&server.py("DELETE", GOLD_LOC, Some(locations(&server, &["c"]))).await, 200);
    assert_members(&server, &all, &["b"]).await;

    expect(&server.py("POST", GOLD_LOC, Some(locations(&server, &["a", "c"]))).await, 200);
    assert_members(&server, &all, &["a", "b", "c"]).await;
    expect(&server.py("DELETE", GOLD_LOC, None).await, 200);
    assert_members(&server, &all, &[]).await;
}

#[tokio::test]
async fn association_keeps_a_value_set_before() {
    let server = TestServer::start().await;
    define_gold(&server).await;
    computes(&server, &["a"]).await;
    expect(&server.py("POST", GOLD_LOC, Some(locations(&server, &["a"]))).await, 200);
    let body = json!({"kind": COMPUTE, "attributes": {TIER: "platinum"}});
    let reply = server.json("POST", "/compute/a", Some(body)).await;
    expect(&reply, 201);
    // Associating again does not reset the attribute to the default.
    expect(&server.py("POST", GOLD_LOC, Some(locations(&server, &["a"]))).await, 200);
    assert_eq!(server.get_ok("/compute/a").await["attributes"][TIER], "platinum");
}

#[tokio::test]
async fn associating_an_unknown_location_changes_nothing() {
    let server = TestServer::start().await;
    define_gold(&server).await;
    computes(&server, &["a", "b"]).await;
    let body = json!({"X-OCCI-Location": [server.url("/compute/a"), server.url("/compute/ghost")]});
    let reply = server.py("POST", GOLD_LOC, Some(body)).await;
    expect(&reply, 404);
    assert_members(&server, &["a", "b"], &[]).await;

    expect(&server.py("POST", GOLD_LOC, Some(locations(&server, &["b"]))).await, 200);
    let body = json!({"X-OCCI-Location": [server.url("/compute/a"), "/compute/ghost"]});
    expect(&server.py("PUT", GOLD_LOC, Some(body)).await, 404);
    assert_members(&server, &["a", "b"], &["b"]).await;
}

#[tokio::test]
async fn occi12_plain_array_body_associates() {
    let server = TestServer::start().await;
    define_gold(&server).await;
    computes(&server, &["a", "b"]).await;
    let reply = server.json("POST", GOLD_LOC, Some(json!([server.url("/compute/a"), "/compute/b"]))).await;
    expect(&reply, 200);
    assert_members(&server, &["a", "b"], &["a", "b"]).await;
    expect(&server.json("DELETE", GOLD_LOC, Some(json!(["/compute/b"]))).await, 200);
    assert_members(&server, &["a", "b"], &["a"]).await;
    // The OCCI 1.2 listing of the mixin collection has the full resources.
    let v = server.get_ok(GOLD_LOC).await;
    let resources = v["resources"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0]["id"], "a");
}

// ---------------------------------------------------------------------- entity actions

async fn state(server: &TestServer, path: &str, attr: &str) -> Value {
    server.get_ok(path).await["attributes"][attr].clone()
}

#[tokio::test]
async fn compute_state_machine() {
    let server = TestServer::start().await;
    computes(&server, &["x"]).await;
    assert_eq!(state(&server, "/compute/x", "occi.compute.state").await, "inactive");
    // Each action from a state it applies in (GFD.224 figure 3).
    let steps = [
        ("start", "active"),
        ("suspend", "suspended"),
        ("start", "active"),
        ("restart", "active"),
        ("stop", "inactive"),
    ];
    for (term, want) in steps {
        let reply = server.json("POST", &format!("/compute/x?action={term}"), None).await;
        expect(&reply, 200);
        assert_eq!(reply.json()["attributes"]["occi.compute.state"], want, "answer to {term}: {}", reply.text);
        assert_eq!(state(&server, "/compute/x", "occi.compute.state").await, want, "after {term}");
    }
}

#[tokio::test]
async fn action_parameters_are_checked() {
    let server = TestServer::start().await;
    computes(&server, &["x"]).await;
    expect(&server.json("POST", "/compute/x?action=start", None).await, 200);

    let bad = json!({"action": format!("{COMPUTE_ACTION}stop"), "attributes": {"method": "explode"}});
    expect_error(&server.json("POST", "/compute/x?action=stop", Some(bad)).await, 400, &["method"]);
    let unknown = json!({"action": format!("{COMPUTE_ACTION}stop"), "attributes": {"velocity": 3}});
    expect_error(&server.json("POST", "/compute/x?action=stop", Some(unknown)).await, 400, &["velocity"]);
    assert_eq!(state(&server, "/compute/x", "occi.compute.state").await, "active", "refused actions change nothing");

    let ok = json!({"action": format!("{COMPUTE_ACTION}stop"), "attributes": {"method": "graceful"}});
    expect(&server.json("POST", "/compute/x?action=stop", Some(ok)).await, 200);
    assert_eq!(state(&server, "/compute/x", "occi.compute.state").await, "inactive");
}

#[tokio::test]
async fn pyocni_action_body() {
    let server = TestServer::start().await;
    computes(&server, &["x"]).await;
    let body = json!({"actions": [{"term": "start", "scheme": COMPUTE_ACTION}]});
    expect(&server.py("POST", "/compute/x?action=start", Some(body)).await, 200);
    assert_eq!(state(&server, "/compute/x", "occi.compute.state").await, "active");
    let body = json!({"actions": [{"term": "stop", "scheme": COMPUTE_ACTION}]});
    expect(&server.py("POST", "/compute/x?action=stop", Some(body)).await, 200);
    assert_eq!(state(&server, "/compute/x", "occi.compute.state").await, "inactive");
}

#[tokio::test]
async fn bad_action_requests() {
    let server = TestServer::start().await;
    computes(&server, &["x"]).await;

    // The body names another action than the URL.
    let body = json!({"action": format!("{COMPUTE_ACTION}start")});
    expect(&server.json("POST", "/compute/x?action=stop", Some(body)).await, 400);
    let body = json!({"actions": [{"term": "start", "scheme": COMPUTE_ACTION}]});
    expect(&server.py("POST", "/compute/x?action=stop", Some(body)).await, 400);
    // Same term, other scheme.
    let body = json!({"action": "http://example.com/other/action#start"});
    expect(&server.json("POST", "/compute/x?action=start", Some(body)).await, 400);
    assert_eq!(state(&server, "/compute/x", "occi.compute.state").await, "inactive");

    // Not applicable to the kind.
    expect_error(&server.json("POST", "/compute/x?action=up", None).await, 400, &["up"]);
    expect(&server.json("POST", "/compute/x?action=nonsense", None).await, 400);

    // No such entity.
    expect(&server.json("POST", "/compute/ghost?action=start", None).await, 404);
    expect(&server.get("/compute/ghost").await, 404);
}

#[tokio::test]
async fn network_up_and_down() {
    let server = TestServer::start().await;
    expect(&server.json("POST", "/network/", Some(json!({"kind": NETWORK, "id": "n"}))).await, 201);
    assert_eq!(state(&server, "/network/n", "occi.network.state").await, "inactive");
    expect(&server.json("POST", "/network/n?action=up", None).await, 200);
    assert_eq!(state(&server, "/network/n", "occi.network.state").await, "active");
    let body = json!({"action": format!("{NETWORK_ACTION}down")});
    expect(&server.json("POST", "/network/n?action=down", Some(body)).await, 200);
    assert_eq!(state(&server, "/network/n", "occi.network.state").await, "inactive");
    expect(&server.json("POST", "/network/n?action=start", None).await, 400);
}

#[tokio::test]
async fn storage_resize() {
    let server = TestServer::start().await;
    let body = json!({"kind": STORAGE, "id": "s", "attributes": {"occi.storage.size": 10}});
    expect(&server.json("POST", "/storage/", Some(body)).await, 201);
    // Resize (OCCI 1.1) applies to online storage only; a new storage is offline.
    expect(&server.json("POST", "/storage/s?action=online", None).await, 200);

    let resize = json!({"action": format!("{STORAGE_ACTION}resize"), "attributes": {"size": 20}});
    expect(&server.json("POST", "/storage/s?action=resize", Some(resize)).await, 200);
    assert_eq!(state(&server, "/storage/s", "occi.storage.size").await.as_f64(), Some(20.0));

    expect_error(&server.json("POST", "/storage/s?action=resize", None).await, 400, &["size"]);
    let no_size = json!({"action": format!("{STORAGE_ACTION}resize"), "attributes": {}});
    expect_error(&server.json("POST", "/storage/s?action=resize", Some(no_size)).await, 400, &["size"]);
    assert_eq!(state(&server, "/storage/s", "occi.storage.size").await.as_f64(), Some(20.0));
}

// ---------------------------------------------------------------------- collection actions

#[tokio::test]
async fn kind_collection_action_starts_every_compute() {
    let server = TestServer::start().await;
    computes(&server, &["a", "b", "c"]).await;
    expect(&server.json("POST", "/network/", Some(json!({"kind": NETWORK, "id": "n"}))).await, 201);
    expect(&server.json("POST", "/compute/?action=start", None).await, 200);
    for id in ["a", "b", "c"] {
        assert_eq!(state(&server, &format!("/compute/{id}"), "occi.compute.state").await, "active", "{id}");
    }
    assert_eq!(state(&server, "/network/n", "occi.network.state").await, "inactive");

    let body = json!({"actions": [{"term": "stop", "scheme": COMPUTE_ACTION}]});
    expect(&server.py("POST", "/compute/?action=stop", Some(body)).await, 200);
    for id in ["a", "b", "c"] {
        assert_eq!(state(&server, &format!("/compute/{id}"), "occi.compute.state").await, "inactive", "{id}");
    }
}

#[tokio::test]
async fn mixin_collection_action_acts_on_members_only() {
    let server = TestServer::start().await;
    define_gold(&server).await;
    computes(&server, &["a", "b", "c"]).await;
    expect(&server.py("POST", GOLD_LOC, Some(locations(&server, &["a", "c"]))).await, 200);
    expect(&server.json("POST", &format!("{GOLD_LOC}?action=start"), None).await, 200);
    assert_eq!(state(&server, "/compute/a", "occi.compute.state").await, "active");
    assert_eq!(state(&server, "/compute/b", "occi.compute.state").await, "inactive");
    assert_eq!(state(&server, "/compute/c", "occi.compute.state").await, "active");
}

#[tokio::test]
async fn collection_action_is_all_or_nothing() {
    let server = TestServer::start().await;
    define_gold(&server).await;
    computes(&server, &["a", "b"]).await;
    expect(&server.json("POST", "/network/", Some(json!({"kind": NETWORK, "id": "n"}))).await, 201);
    let members = json!([server.url("/compute/a"), server.url("/compute/b"), server.url("/network/n")]);
    expect(&server.json("POST", GOLD_LOC, Some(members)).await, 200);

    // start applies to the computes but not to the network: nothing starts.
    let reply = server.json("POST", &format!("{GOLD_LOC}?action=start"), None).await;
    expect_error(&reply, 400, &["/network/n"]);
    assert_eq!(state(&server, "/compute/a", "occi.compute.state").await, "inactive");
    assert_eq!(state(&server, "/compute/b", "occi.compute.state").await, "inactive");

    // Likewise for up, which only the network supports.
    expect(&server.json("POST", &format!("{GOLD_LOC}?action=up"), None).await, 400);
    assert_eq!(state(&server, "/network/n", "occi.network.state").await, "inactive");

    // A bad parameter on a kind collection refuses the whole action.
    expect(&server.json("POST", "/compute/?action=start", None).await, 200);
    let bad = json!({"action": format!("{COMPUTE_ACTION}stop"), "attributes": {"method": "explode"}});
    expect(&server.json("POST", "/compute/?action=stop", Some(bad)).await, 400);
    assert_eq!(state(&server, "/compute/a", "occi.compute.state").await, "active");
    assert_eq!(state(&server, "/compute/b", "occi.compute.state").await, "active");
}
