//! Applicable actions only (GFD.185 3.5.3: only the actions applicable in an entity's current
//! state SHOULD be rendered): every rendering of an entity (OCCI 1.2 JSON, pyOCNI JSON,
//! text/plain, text/occi) lists the actions its state allows, and invoking another one is a 409
//! naming the state, on an entity and on a collection (all or nothing). Built-in kinds follow
//! the GFD.224 state machines; a kind driven by a handler follows what the handler's optional
//! `actions.applicable` export (WIT 0.1.1) answered, and every action applies for a handler
//! without it (one built against 0.1.0) or with the SDK's default.

use ocni_tests::{COMPUTE, COMPUTE_ACTION, NETWORK, PYOCNI, Reply, TestServer, expect, expect_error, guests};
use serde_json::{Value, json};

async fn create(server: &TestServer, collection: &str, body: Value) {
    expect(&server.json("POST", collection, Some(body)).await, 201);
}

async fn compute(server: &TestServer, id: &str) {
    create(server, "/compute/", json!({"kind": COMPUTE, "id": id})).await;
}

async fn act(server: &TestServer, path: &str, term: &str) -> Reply {
    server.json("POST", &format!("{path}?action={term}"), None).await
}

fn term(id: &str) -> String {
    id.rsplit('#').next().unwrap_or_default().to_string()
}

/// The action terms each rendering of the entity at `path` lists, checked to agree: OCCI 1.2
/// `actions`, pyOCNI action links, text/plain and text/occi `Link: <path?action=term>` lines.
async fn rendered_actions(server: &TestServer, path: &str) -> Vec<String> {
    let v = server.get_ok(path).await;
    let occi12: Vec<String> =
        v["actions"].as_array().map(|a| a.iter().map(|a| term(a.as_str().unwrap())).collect()).unwrap_or_default();

    let py = server.send("GET", path, Some(PYOCNI), None, None).await;
    expect(&py, 200);
    let py = py.json();
    let entity = &py["resources"][0];
    let pyocni: Vec<String> = entity["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    let href = l["href"].as_str().unwrap();
                    assert!(href.starts_with(&format!("{path}?action=")), "{l}");
                    term(l["category"].as_str().unwrap())
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(pyocni, occi12, "pyOCNI and OCCI 1.2 JSON agree on {path}");

    let action_links = |lines: Vec<String>| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.split_once(&format!("<{path}?action=")))
            .map(|(_, rest)| rest.split('>').next().unwrap().to_string())
            .collect()
    };
    let plain = server.send("GET", path, Some("text/plain"), None, None).await;
    expect(&plain, 200);
    let plain = action_links(plain.text.lines().filter(|l| l.starts_with("Link:")).map(str::to_string).collect());
    assert_eq!(plain, occi12, "text/plain and OCCI 1.2 JSON agree on {path}");

    let occi = server.send("GET", path, Some("text/occi"), None, None).await;
    expect(&occi, 200);
    let links: Vec<String> = occi
        .headers
        .get_all("Link")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert_eq!(action_links(links), occi12, "text/occi and OCCI 1.2 JSON agree on {path}");
    occi12
}

async fn state(server: &TestServer, path: &str) -> Value {
    server.get_ok(path).await["attributes"]["occi.compute.state"].clone()
}

// ---------------------------------------------------------------------- built-in state machines

/// A new compute is inactive: only `start` is rendered, in every rendering; once started,
/// `stop`, `restart`, `suspend` and `save`, not `start`; suspended, `start` again.
#[tokio::test]
async fn builtin_compute_renders_the_actions_of_its_state() {
    let server = TestServer::start().await;
    compute(&server, "x").await;
    assert_eq!(rendered_actions(&server, "/compute/x").await, ["start"]);

    let reply = act(&server, "/compute/x", "start").await;
    expect(&reply, 200);
    // The action's answer renders the entity as committed: its new actions already.
    let answered: Vec<String> =
        reply.json()["actions"].as_array().unwrap().iter().map(|a| term(a.as_str().unwrap())).collect();
    assert_eq!(answered, ["stop", "restart", "suspend", "save"]);
    assert_eq!(rendered_actions(&server, "/compute/x").await, ["stop", "restart", "suspend", "save"]);

    expect(&act(&server, "/compute/x", "suspend").await, 200);
    assert_eq!(rendered_actions(&server, "/compute/x").await, ["start"]);
}

/// An inapplicable action is a 409 that names the state (and what does apply), and changes
/// nothing; the same action is fine once the state allows it.
#[tokio::test]
async fn inapplicable_action_is_a_conflict_naming_the_state() {
    let server = TestServer::start().await;
    compute(&server, "x").await;
    expect_error(&act(&server, "/compute/x", "stop").await, 409, &["stop", "/compute/x", "\"inactive\""]);
    expect(&act(&server, "/compute/x", "start").await, 200);
    let reply = act(&server, "/compute/x", "start").await;
    expect_error(
        &reply,
        409,
        &["action start does not apply to /compute/x in state \"active\"", &format!("{COMPUTE_ACTION}stop")],
    );
    assert_eq!(state(&server, "/compute/x").await, "active", "a refused action changes nothing");
    // An action the entity does not offer at all stays a 400.
    expect_error(&act(&server, "/compute/x", "up").await, 400, &["up"]);
    // The JSON body naming the action changes nothing to the rule.
    let body = json!({"action": format!("{COMPUTE_ACTION}start")});
    expect_error(&server.json("POST", "/compute/x?action=start", Some(body)).await, 409, &["\"active\""]);
    expect(&act(&server, "/compute/x", "stop").await, 200);
    assert_eq!(state(&server, "/compute/x").await, "inactive");
}

/// A collection action is all or nothing: one member in which the action does not apply makes
/// the whole request a 409 naming that member and its state, and no member changes.
#[tokio::test]
async fn collection_action_is_all_or_nothing() {
    let server = TestServer::start().await;
    for id in ["a", "b", "c"] {
        compute(&server, id).await;
    }
    expect(&act(&server, "/compute/b", "start").await, 200);
    let reply = act(&server, "/compute/", "start").await;
    expect_error(&reply, 409, &["/compute/b", "\"active\""]);
    for (id, want) in [("a", "inactive"), ("b", "active"), ("c", "inactive")] {
        assert_eq!(state(&server, &format!("/compute/{id}")).await, want, "{id} is unchanged");
    }
    expect(&act(&server, "/compute/b", "stop").await, 200);
    expect(&act(&server, "/compute/", "start").await, 200);
    for id in ["a", "b", "c"] {
        assert_eq!(state(&server, &format!("/compute/{id}")).await, "active");
    }
}

/// Network (up/down) follows its machine too; actions of a tenant kind and of a mixin, which
/// have none, are always rendered and allowed.
/// Defines a sub-kind `vm` of compute (its own action `go`, bound to `handler` if given) and a
/// mixin `tagged` (action `tag`), and creates `/vm/v` with the mixin.
async fn vm_with_a_tagged_mixin(server: &TestServer, handler: Option<&str>) {
    let mut vm = json!({"term": "vm", "scheme": "http://example.com/occi/x#", "parent": COMPUTE,
                        "actions": ["http://example.com/occi/x/action#go"], "location": "/vm/"});
    if let Some(h) = handler {
        vm["handler"] = json!(h);
    }
    let categories = json!({
        "actions": [{"term": "go", "scheme": "http://example.com/occi/x/action#"},
                    {"term": "tag", "scheme": "http://example.com/occi/x/action#"}],
        "kinds": [vm],
        "mixins": [{"term": "tagged", "scheme": "http://example.com/occi/x#",
                    "actions": ["http://example.com/occi/x/action#tag"], "location": "/tagged/"}],
    });
    expect(&server.json("POST", "/-/", Some(categories)).await, 200);
    create(
        server,
        "/vm/",
        json!({"kind": "http://example.com/occi/x#vm", "id": "v", "mixins": ["http://example.com/occi/x#tagged"]}),
    )
    .await;
}

#[tokio::test]
async fn other_machines_and_actions_without_one() {
    let server = TestServer::start().await;
    create(&server, "/network/", json!({"kind": NETWORK, "id": "n"})).await;
    assert_eq!(rendered_actions(&server, "/network/n").await, ["up"]);
    expect_error(&act(&server, "/network/n", "down").await, 409, &["\"inactive\""]);
    expect(&act(&server, "/network/n", "up").await, 200);
    assert_eq!(rendered_actions(&server, "/network/n").await, ["down"]);

    vm_with_a_tagged_mixin(&server, None).await;
    assert_eq!(rendered_actions(&server, "/vm/v").await, ["start", "go", "tag"], "a sub-kind keeps compute's machine");
    for _ in 0..2 {
        expect(&act(&server, "/vm/v", "go").await, 200);
        expect(&act(&server, "/vm/v", "tag").await, 200);
    }
    expect(&act(&server, "/vm/v", "start").await, 200);
    assert_eq!(rendered_actions(&server, "/vm/v").await, ["stop", "restart", "suspend", "save", "go", "tag"]);
}

// ---------------------------------------------------------------------- handlers

const ALL_COMPUTE: [&str; 5] = ["start", "stop", "restart", "suspend", "save"];

async fn upload(server: &TestServer, name: &str, path: &str) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("guest component {path}: {e}"));
    let reply =
        server.send_as(None, "PUT", &format!("/-/handlers/{name}"), None, Some("application/wasm"), Some(bytes)).await;
    expect(&reply, 201);
}

async fn bind(server: &TestServer, category: &str, handler: &str) {
    let body = json!({"providers": [{"OCCI_ID": category, "Provider": {"local": [handler]}}]});
    expect(&server.json("PUT", "/-/", Some(body)).await, 200);
}

/// The compute handler answers `applicable` from its own state table, which is not the
/// built-in one (an inactive compute may be saved, a suspended one stopped): what it says is
/// rendered, in every rendering, after a restart too; what it excludes is a 409 naming the
/// state, answered without calling its `on-action`.
#[tokio::test]
async fn compute_handler_says_which_actions_apply() {
    let server = TestServer::start().await;
    upload(&server, "compute", guests::COMPUTE).await;
    bind(&server, COMPUTE, "compute").await;
    compute(&server, "h").await;
    assert_eq!(rendered_actions(&server, "/compute/h").await, ["start", "save"], "the handler's table, not GFD.224's");
    expect_error(
        &act(&server, "/compute/h", "stop").await,
        409,
        &["action stop does not apply to /compute/h in state \"inactive\"", &format!("{COMPUTE_ACTION}start")],
    );

    let reply = act(&server, "/compute/h", "start").await;
    expect(&reply, 200);
    let answered: Vec<String> =
        reply.json()["actions"].as_array().unwrap().iter().map(|a| term(a.as_str().unwrap())).collect();
    assert_eq!(answered, ["stop", "restart", "suspend", "save"], "asked after on-action changed the state");
    expect_error(&act(&server, "/compute/h", "start").await, 409, &["\"active\""]);
    expect(&act(&server, "/compute/h", "suspend").await, 200);
    assert_eq!(rendered_actions(&server, "/compute/h").await, ["start", "stop", "save"]);
    expect(&act(&server, "/compute/h", "stop").await, 200);
    assert_eq!(state(&server, "/compute/h").await, "inactive");

    // An update asks again; the answer is stored with the entity and outlives a restart.
    let update = json!({"attributes": {"occi.compute.cores": 2}});
    expect(&server.json("POST", "/compute/h", Some(update)).await, 201);
    let server = server.restart().await;
    assert_eq!(rendered_actions(&server, "/compute/h").await, ["start", "save"]);

    // A collection action: all or nothing, by the handler's answers.
    compute(&server, "i").await;
    expect(&act(&server, "/compute/i", "start").await, 200);
    expect_error(&act(&server, "/compute/", "restart").await, 409, &["/compute/h", "\"inactive\""]);
    assert_eq!(state(&server, "/compute/i").await, "active", "no member changed");
}

/// A tenant kind bound to the compute handler: its compute actions follow the handler's
/// answer, its own action (another scheme, which the handler keeps) and a mixin's always apply.
#[tokio::test]
async fn a_kind_bound_to_the_compute_handler() {
    let server = TestServer::start().await;
    upload(&server, "compute", guests::COMPUTE).await;
    vm_with_a_tagged_mixin(&server, Some("compute")).await;
    assert_eq!(rendered_actions(&server, "/vm/v").await, ["start", "save", "go", "tag"]);
    expect_error(&act(&server, "/vm/v", "suspend").await, 409, &["/vm/v", "\"inactive\""]);
    expect(&act(&server, "/vm/v", "go").await, 200);
    expect(&act(&server, "/vm/v", "start").await, 200);
    assert_eq!(rendered_actions(&server, "/vm/v").await, ["stop", "restart", "suspend", "save", "go", "tag"]);
}

/// A handler built against WIT 0.1.0 has no `applicable` export: it keeps working, every action
/// of its kind is rendered and allowed whatever the state, and its `on-action` runs them.
#[tokio::test]
async fn a_handler_without_the_export_allows_every_action() {
    let server = TestServer::start().await;
    upload(&server, "old", guests::OLDWORLD).await;
    bind(&server, COMPUTE, "old").await;
    compute(&server, "o").await;
    assert_eq!(state(&server, "/compute/o").await, "inactive");
    assert_eq!(rendered_actions(&server, "/compute/o").await, ALL_COMPUTE);
    for term in ["stop", "suspend", "start", "start"] {
        expect(&act(&server, "/compute/o", term).await, 200);
        let v = server.get_ok("/compute/o").await;
        assert_eq!(v["summary"], format!("last action: {term}"), "the handler ran {term}: {v}");
        assert_eq!(v["attributes"]["occi.compute.state"], "inactive", "no built-in machine moved it");
    }
    assert_eq!(rendered_actions(&server, "/compute/o").await, ALL_COMPUTE);
}

/// A handler built with the SDK that does not implement `applicable` gets its default: every
/// action applies (here the counter, on a compute sub-kind with an action of its own).
#[tokio::test]
async fn the_sdk_default_allows_every_action() {
    let server = TestServer::start().await;
    upload(&server, "counter", guests::COUNTER).await;
    let model = json!({
        "actions": [{"term": "reset", "scheme": "http://example.com/occi/counted/action#"}],
        "kinds": [{"term": "counted", "scheme": "http://example.com/occi#", "parent": COMPUTE, "location": "/counted/",
                   "actions": ["http://example.com/occi/counted/action#reset"],
                   "attributes": {"example.counter.serial": {"type": "integer", "mutable": true, "required": false}},
                   "handler": "counter"}],
    });
    expect(&server.json("POST", "/-/", Some(model)).await, 200);
    create(&server, "/counted/", json!({"kind": "http://example.com/occi#counted", "id": "c"})).await;
    let all: Vec<&str> = ALL_COMPUTE.iter().copied().chain(["reset"]).collect();
    assert_eq!(rendered_actions(&server, "/counted/c").await, all);
    expect(&act(&server, "/counted/c", "stop").await, 200);
    expect(&act(&server, "/counted/c", "reset").await, 200);
    assert_eq!(rendered_actions(&server, "/counted/c").await, all);
}
