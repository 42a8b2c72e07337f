//! The category manager (the query interface `/-/` and `/.well-known/org/ogf/occi/-/`) end to
//! end: listing in both JSON dialects, adding, updating, binding providers, deleting and
//! filtering categories, with the refusals the API contract documents.

use ocni_tests::{COMPUTE, NETWORK, NETWORKINTERFACE, Reply, STORAGE, STORAGELINK, TestServer, expect, expect_error};
use serde_json::{Value, json};

const RESOURCE: &str = "http://schemas.ogf.org/occi/core#resource";
const START: &str = "http://schemas.ogf.org/occi/infrastructure/compute/action#start";
const STOP: &str = "http://schemas.ogf.org/occi/infrastructure/compute/action#stop";
const RESOURCE_TPL: &str = "http://schemas.ogf.org/occi/infrastructure#resource_tpl";
const OS_TPL: &str = "http://schemas.ogf.org/occi/infrastructure#os_tpl";
const TEMPLATE_SCHEME: &str = "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#";

const EX: &str = "http://example.com/occi/test#";
const EX_ACTIONS: &str = "http://example.com/occi/test/action#";

/// The id (scheme + term) of a rendered category.
fn cat_id(c: &Value) -> String {
    format!("{}{}", c["scheme"].as_str().unwrap_or_default(), c["term"].as_str().unwrap_or_default())
}

/// The members of one group (`kinds`, `mixins`, `actions`) of a category collection; an absent
/// group (OCCI 1.2 leaves out empty ones) is empty.
fn group<'a>(v: &'a Value, name: &str) -> Vec<&'a Value> {
    v.get(name).and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
}

fn ids(v: &Value, name: &str) -> Vec<String> {
    group(v, name).into_iter().map(cat_id).collect()
}

fn find<'a>(v: &'a Value, name: &str, id: &str) -> Option<&'a Value> {
    group(v, name).into_iter().find(|c| cat_id(c) == id)
}

#[track_caller]
fn has(v: &Value, name: &str, id: &str) -> Value {
    find(v, name, id).unwrap_or_else(|| panic!("{name} has no {id}: {v}")).clone()
}

/// GET /-/ with a filter body, OCCI 1.2 dialect.
async fn filtered(server: &TestServer, filter: Value) -> Value {
    let r = server.json("GET", "/-/", Some(filter)).await;
    expect(&r, 200);
    r.json()
}

async fn post_categories(server: &TestServer, body: Value) -> Reply {
    server.json("POST", "/-/", Some(body)).await
}

/// A tenant kind with its own attribute and one action of its own.
fn vm_kind(term: &str, location: &str) -> Value {
    json!({
        "term": term,
        "scheme": EX,
        "title": "Test VM",
        "attributes": {"ex.vm.flavour": {"type": "string", "mutable": true, "required": false}},
        "actions": [format!("{EX_ACTIONS}reboot")],
        "location": location,
    })
}

fn reboot_action() -> Value {
    json!({"term": "reboot", "scheme": EX_ACTIONS, "title": "Reboot",
           "attributes": {"force": {"type": "boolean", "mutable": true, "required": false}}})
}

// ------------------------------------------------------------------ listing

#[tokio::test]
async fn get_all_lists_builtins_in_occi12_rendering() {
    let server = TestServer::start().await;
    let v = server.get_ok("/-/").await;
    for kind in [COMPUTE, STORAGE, NETWORK, NETWORKINTERFACE, STORAGELINK, RESOURCE] {
        has(&v, "kinds", kind);
    }
    let compute = has(&v, "kinds", COMPUTE);
    assert_eq!(compute["parent"], RESOURCE, "{compute}");
    assert_eq!(compute["location"], "/compute/");
    assert!(compute.get("related").is_none(), "OCCI 1.2 uses parent, not related: {compute}");
    // Flat attribute names; GFD.226 knows no "integer" type.
    let cores = &compute["attributes"]["occi.compute.cores"];
    assert_eq!(cores["type"], "number", "{compute}");
    assert_eq!(cores["mutable"], true);
    assert!(compute["attributes"].get("occi").is_none(), "attributes must be flat in OCCI 1.2: {compute}");
    let actions: Vec<&str> = compute["actions"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(actions.contains(&START) && actions.contains(&STOP), "{compute}");
    assert_eq!(has(&v, "kinds", NETWORKINTERFACE)["parent"], "http://schemas.ogf.org/occi/core#link");

    // The CRTP templates and the template mixins they depend on.
    has(&v, "mixins", RESOURCE_TPL);
    has(&v, "mixins", OS_TPL);
    for t in ["small", "medium", "large", "mem_small", "mem_medium", "mem_large"] {
        let m = has(&v, "mixins", &format!("{TEMPLATE_SCHEME}{t}"));
        assert_eq!(m["depends"], json!([RESOURCE_TPL]), "{m}");
        assert_eq!(m["applies"], json!([COMPUTE]), "{m}");
    }
    let small = has(&v, "mixins", &format!("{TEMPLATE_SCHEME}small"));
    assert_eq!(small["attributes"]["occi.compute.cores"]["default"], 1, "{small}");

    let stop = has(&v, "actions", STOP);
    assert!(stop["attributes"]["method"].is_object(), "{stop}");
    assert!(stop.get("location").is_none(), "actions have no location: {stop}");
}

#[tokio::test]
async fn get_all_in_pyocni_dialect_nests_attributes_and_uses_related() {
    let server = TestServer::start().await;
    let r = server.py("GET", "/-/", None).await;
    expect(&r, 200);
    assert!(r.header("content-type").unwrap_or_default().contains("dialect=pyocni"), "{:?}", r.headers);
    let v = r.json();
    // pyOCNI always has all three groups.
    for g in ["kinds", "mixins", "actions"] {
        assert!(v[g].is_array(), "missing {g}: {v}");
    }
    for kind in [COMPUTE, STORAGE, NETWORK, NETWORKINTERFACE, STORAGELINK] {
        has(&v, "kinds", kind);
    }
    let compute = has(&v, "kinds", COMPUTE);
    assert_eq!(compute["related"], json!([RESOURCE]), "{compute}");
    assert!(compute.get("parent").is_none(), "{compute}");
    assert_eq!(compute["attributes"]["occi"]["compute"]["cores"]["type"], "integer", "{compute}");
    assert!(compute["attributes"].get("occi.compute.cores").is_none(), "pyOCNI nests names: {compute}");
    let small = has(&v, "mixins", &format!("{TEMPLATE_SCHEME}small"));
    assert_eq!(small["related"], json!([RESOURCE_TPL]), "{small}");
    assert_eq!(small["attributes"]["occi"]["compute"]["cores"]["default"], 1, "{small}");
    has(&v, "actions", STOP);
}

#[tokio::test]
async fn well_known_path_is_the_same_query_interface() {
    let server = TestServer::start().await;
    let a = server.get_ok("/-/").await;
    let b = server.get("/.well-known/org/ogf/occi/-/").await;
    expect(&b, 200);
    assert_eq!(a, b.json());

    let r = server
        .json(
            "POST",
            "/.well-known/org/ogf/occi/-/",
            Some(json!({"mixins": [{"term": "wk", "scheme": EX, "location": "/wk/"}]})),
        )
        .await;
    expect(&r, 200);
    has(&server.get_ok("/-/").await, "mixins", &format!("{EX}wk"));
}

// ------------------------------------------------------------------ adding

#[tokio::test]
async fn post_adds_kinds_mixins_and_actions() {
    let server = TestServer::start().await;
    let body = json!({
        "kinds": [vm_kind("vm", "/vm/")],
        "mixins": [{"term": "gold", "scheme": EX, "title": "Gold", "location": "/mixins/gold/",
                    "applies": [COMPUTE]}],
        "actions": [reboot_action()],
    });
    let r = post_categories(&server, body).await;
    expect(&r, 200);
    let answer = r.json();
    assert_eq!(ids(&answer, "kinds"), vec![format!("{EX}vm")], "{answer}");
    assert_eq!(ids(&answer, "mixins"), vec![format!("{EX}gold")], "{answer}");
    assert_eq!(ids(&answer, "actions"), vec![format!("{EX_ACTIONS}reboot")], "{answer}");

    let v = server.get_ok("/-/").await;
    let vm = has(&v, "kinds", &format!("{EX}vm"));
    assert_eq!(vm["title"], "Test VM");
    assert_eq!(vm["location"], "/vm/");
    assert_eq!(vm["parent"], RESOURCE, "a kind without parent is a resource kind: {vm}");
    assert_eq!(vm["actions"], json!([format!("{EX_ACTIONS}reboot")]));
    assert_eq!(vm["attributes"]["ex.vm.flavour"]["type"], "string");
    let gold = has(&v, "mixins", &format!("{EX}gold"));
    assert_eq!(gold["applies"], json!([COMPUTE]));
    let reboot = has(&v, "actions", &format!("{EX_ACTIONS}reboot"));
    assert_eq!(reboot["attributes"]["force"]["type"], "boolean");
    // The built-ins are still there.
    has(&v, "kinds", COMPUTE);

    // The new kind is usable: its location is a collection, and its action (defined in the same
    // request) applies to its entities.
    let r = server
        .json(
            "POST",
            "/vm/",
            Some(json!({"kind": format!("{EX}vm"), "id": "one", "attributes": {"ex.vm.flavour": "x"}})),
        )
        .await;
    expect(&r, 201);
    let r = server.json("POST", "/vm/one?action=reboot", Some(json!({"attributes": {"force": true}}))).await;
    expect(&r, 200);
    let e = server.get("/vm/one").await;
    expect(&e, 200);
    assert_eq!(e.json()["attributes"]["ex.vm.flavour"], "x");
}

#[tokio::test]
async fn nested_and_flat_attribute_definitions_read_back_the_same() {
    let server = TestServer::start().await;
    let nested = json!({"ex": {"disk": {
        "size": {"type": "number", "mutable": true, "required": false, "default": 2.5, "minimum": 1},
        "label": {"type": "string", "mutable": false, "required": false, "pattern": "[a-z]+"}
    }}});
    let flat = json!({
        "ex.disk.size": {"type": "number", "mutable": true, "required": false, "default": 2.5, "minimum": 1},
        "ex.disk.label": {"type": "string", "mutable": false, "required": false, "pattern": "[a-z]+"}
    });
    let body = json!({"mixins": [
        {"term": "nested", "scheme": EX, "location": "/nested/", "attributes": nested},
        {"term": "flat", "scheme": EX, "location": "/flat/", "attributes": flat},
    ]});
    expect(&post_categories(&server, body).await, 200);

    let v = server.get_ok("/-/").await;
    let a = has(&v, "mixins", &format!("{EX}nested"));
    let b = has(&v, "mixins", &format!("{EX}flat"));
    assert_eq!(a["attributes"], b["attributes"], "OCCI 1.2 rendering differs");
    assert_eq!(a["attributes"]["ex.disk.size"]["default"], 2.5, "{a}");
    assert_eq!(a["attributes"]["ex.disk.label"]["pattern"], "[a-z]+", "{a}");

    let r = server.py("GET", "/-/", None).await;
    expect(&r, 200);
    let py = r.json();
    let a = has(&py, "mixins", &format!("{EX}nested"));
    let b = has(&py, "mixins", &format!("{EX}flat"));
    assert_eq!(a["attributes"], b["attributes"], "pyOCNI rendering differs");
    assert_eq!(a["attributes"]["ex"]["disk"]["size"]["minimum"], 1.0, "{a}");
}

#[tokio::test]
async fn pyocni_seed_style_post_with_related() {
    let server = TestServer::start().await;
    let body = json!({
        "kinds": [{"term": "box", "scheme": EX, "related": [RESOURCE], "location": "/box/",
                   "attributes": {"ex": {"box": {"name": {"type": "string", "mutable": true,
                                                          "required": false, "minimum": "1", "maximum": "8"}}}}}],
        "mixins": [{"term": "tpl", "scheme": EX, "related": [RESOURCE_TPL], "location": "/tpl/"}],
    });
    let r = server.py("POST", "/-/", Some(body)).await;
    expect(&r, 200);
    let v = server.get_ok("/-/").await;
    let k = has(&v, "kinds", &format!("{EX}box"));
    assert_eq!(k["parent"], RESOURCE, "related of a kind is its parent: {k}");
    assert!(k["attributes"]["ex.box.name"].is_object(), "{k}");
    let m = has(&v, "mixins", &format!("{EX}tpl"));
    assert_eq!(m["depends"], json!([RESOURCE_TPL]), "related of a mixin are its dependencies: {m}");
}

#[tokio::test]
async fn duplicate_id_conflicts() {
    let server = TestServer::start().await;
    expect(&post_categories(&server, json!({"kinds": [{"term": "vm", "scheme": EX, "location": "/vm/"}]})).await, 200);
    let r = post_categories(&server, json!({"kinds": [{"term": "vm", "scheme": EX, "location": "/vm2/"}]})).await;
    expect_error(&r, 409, &[&format!("{EX}vm")]);
    // A built-in id is taken as well.
    let r = post_categories(
        &server,
        json!({"kinds": [{"term": "compute", "scheme": "http://schemas.ogf.org/occi/infrastructure#", "location": "/c2/"}]}),
    )
    .await;
    expect_error(&r, 409, &[COMPUTE]);
    let v = server.get_ok("/-/").await;
    assert_eq!(has(&v, "kinds", &format!("{EX}vm"))["location"], "/vm/");
    assert_eq!(has(&v, "kinds", COMPUTE)["location"], "/compute/");
}

#[tokio::test]
async fn duplicate_location_conflicts() {
    let server = TestServer::start().await;
    let r = post_categories(&server, json!({"mixins": [{"term": "m", "scheme": EX, "location": "/compute/"}]})).await;
    expect_error(&r, 409, &["/compute/"]);
    expect(&post_categories(&server, json!({"mixins": [{"term": "a", "scheme": EX, "location": "/ab/"}]})).await, 200);
    let r = post_categories(&server, json!({"kinds": [{"term": "b", "scheme": EX, "location": "/ab/"}]})).await;
    expect_error(&r, 409, &["/ab/"]);
    let v = server.get_ok("/-/").await;
    assert!(find(&v, "mixins", &format!("{EX}m")).is_none());
    assert!(find(&v, "kinds", &format!("{EX}b")).is_none());
}

#[tokio::test]
async fn duplicate_within_one_request_conflicts_and_writes_nothing() {
    let server = TestServer::start().await;
    let body = json!({
        "mixins": [{"term": "fresh", "scheme": EX, "location": "/fresh/"}],
        "kinds": [
            {"term": "twin", "scheme": EX, "location": "/twin1/"},
            {"term": "twin", "scheme": EX, "location": "/twin2/"},
        ],
    });
    let r = post_categories(&server, body).await;
    expect_error(&r, 409, &[&format!("{EX}twin")]);
    // Same location twice in one request.
    let body = json!({"mixins": [
        {"term": "m1", "scheme": EX, "location": "/same/"},
        {"term": "m2", "scheme": EX, "location": "/same/"},
    ]});
    expect_error(&post_categories(&server, body).await, 409, &["/same/"]);

    let v = server.get_ok("/-/").await;
    for (g, id) in [("mixins", "fresh"), ("kinds", "twin"), ("mixins", "m1"), ("mixins", "m2")] {
        assert!(find(&v, g, &format!("{EX}{id}")).is_none(), "{id} was written by a refused request");
    }
    // Nothing survives a restart either (the refusal wrote nothing to the store).
    let server = server.restart().await;
    let v = server.get_ok("/-/").await;
    assert!(find(&v, "mixins", &format!("{EX}fresh")).is_none());
    assert!(find(&v, "kinds", &format!("{EX}twin")).is_none());
}

#[tokio::test]
async fn bad_scheme_is_400_naming_it() {
    let server = TestServer::start().await;
    let r =
        post_categories(&server, json!({"kinds": [{"term": "vm", "scheme": "http: //x#", "location": "/vm/"}]})).await;
    expect_error(&r, 400, &["http: //x#", "scheme"]);
    let r =
        post_categories(&server, json!({"mixins": [{"term": "m", "scheme": "http://x/no-hash", "location": "/m/"}]}))
            .await;
    expect_error(&r, 400, &["http://x/no-hash"]);
    let v = server.get_ok("/-/").await;
    assert!(ids(&v, "kinds").iter().all(|id| !id.ends_with("#vm")), "{v}");
}

#[tokio::test]
async fn missing_location_is_400() {
    let server = TestServer::start().await;
    let r = post_categories(&server, json!({"kinds": [{"term": "nowhere", "scheme": EX}]})).await;
    expect_error(&r, 400, &["location"]);
    let r = post_categories(&server, json!({"mixins": [{"term": "nowhere", "scheme": EX}]})).await;
    expect_error(&r, 400, &["location"]);
    // An action needs none.
    expect(&post_categories(&server, json!({"actions": [{"term": "go", "scheme": EX_ACTIONS}]})).await, 200);
    let v = server.get_ok("/-/").await;
    assert!(find(&v, "kinds", &format!("{EX}nowhere")).is_none());
    has(&v, "actions", &format!("{EX_ACTIONS}go"));
}

#[tokio::test]
async fn unknown_member_is_400_naming_it() {
    let server = TestServer::start().await;
    let r =
        post_categories(&server, json!({"kinds": [{"term": "vm", "scheme": EX, "location": "/vm/", "colour": "red"}]}))
            .await;
    expect_error(&r, 400, &["colour"]);
    let r = post_categories(&server, json!({"widgets": [{"term": "vm", "scheme": EX}]})).await;
    expect_error(&r, 400, &["widgets"]);
    let r = post_categories(
        &server,
        json!({"mixins": [{"term": "m", "scheme": EX, "location": "/m/",
                           "attributes": {"ex.a": {"type": "string", "flavour": "sweet"}}}]}),
    )
    .await;
    expect_error(&r, 400, &["flavour", "ex.a"]);
    // `location` is not a member of an action.
    let r =
        post_categories(&server, json!({"actions": [{"term": "go", "scheme": EX_ACTIONS, "location": "/go/"}]})).await;
    expect_error(&r, 400, &["location"]);
}

#[tokio::test]
async fn unknown_references_are_400() {
    let server = TestServer::start().await;
    let nothing = format!("{EX}nothing");
    let cases = [
        json!({"kinds": [{"term": "k", "scheme": EX, "location": "/k/", "parent": nothing}]}),
        json!({"kinds": [{"term": "k", "scheme": EX, "location": "/k/", "related": [nothing]}]}),
        json!({"mixins": [{"term": "m", "scheme": EX, "location": "/m/", "related": [nothing]}]}),
        json!({"mixins": [{"term": "m", "scheme": EX, "location": "/m/", "depends": [nothing]}]}),
        json!({"mixins": [{"term": "m", "scheme": EX, "location": "/m/", "applies": [nothing]}]}),
        json!({"kinds": [{"term": "k", "scheme": EX, "location": "/k/", "actions": [nothing]}]}),
        json!({"mixins": [{"term": "m", "scheme": EX, "location": "/m/", "actions": [nothing]}]}),
    ];
    for body in cases {
        let r = post_categories(&server, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(&nothing), "{body}: {}", r.error_message());
    }
    // A reference of the wrong class is refused too: a mixin is no parent.
    let r =
        post_categories(&server, json!({"kinds": [{"term": "k", "scheme": EX, "location": "/k/", "parent": OS_TPL}]}))
            .await;
    expect_error(&r, 400, &[OS_TPL]);
    let v = server.get_ok("/-/").await;
    assert!(find(&v, "kinds", &format!("{EX}k")).is_none());
    assert!(find(&v, "mixins", &format!("{EX}m")).is_none());
}

#[tokio::test]
async fn invalid_regex_pattern_is_400() {
    let server = TestServer::start().await;
    let r = post_categories(
        &server,
        json!({"mixins": [{"term": "m", "scheme": EX, "location": "/m/",
                           "attributes": {"ex.name": {"type": "string", "pattern": "([a-z"}}}]}),
    )
    .await;
    expect_error(&r, 400, &["ex.name", "pattern"]);
    assert!(find(&server.get_ok("/-/").await, "mixins", &format!("{EX}m")).is_none());
}

#[tokio::test]
async fn default_violating_its_own_definition_is_400() {
    let server = TestServer::start().await;
    let r = post_categories(
        &server,
        json!({"kinds": [{"term": "k", "scheme": EX, "location": "/k/",
                          "attributes": {"ex.count": {"type": "integer", "default": "many"}}}]}),
    )
    .await;
    expect_error(&r, 400, &["ex.count", "default"]);
    let r = post_categories(
        &server,
        json!({"kinds": [{"term": "k", "scheme": EX, "location": "/k/",
                          "attributes": {"ex.state": {"type": "string", "pattern": "on|off", "default": "maybe"}}}]}),
    )
    .await;
    expect_error(&r, 400, &["ex.state", "default"]);
    assert!(find(&server.get_ok("/-/").await, "kinds", &format!("{EX}k")).is_none());
}

// ------------------------------------------------------------------ updating

#[tokio::test]
async fn put_updates_a_tenant_category() {
    let server = TestServer::start().await;
    let medium = json!({"term": "medium", "scheme": EX, "title": "Medium VM", "related": [RESOURCE_TPL],
                        "attributes": {"occi": {"compute": {"speed": {"type": "number", "default": 2.8}}}},
                        "location": "/template/resource/medium/"});
    expect(&server.py("POST", "/-/", Some(json!({"mixins": [medium.clone()]}))).await, 200);
    let mut changed = medium.clone();
    changed["title"] = json!("MediumVM");
    changed["attributes"]["occi"]["compute"]["speed"]["default"] = json!(3.2);
    let r = server.py("PUT", "/-/", Some(json!({"mixins": [changed]}))).await;
    expect(&r, 200);
    let v = server.get_ok("/-/").await;
    let m = has(&v, "mixins", &format!("{EX}medium"));
    assert_eq!(m["title"], "MediumVM", "{m}");
    assert_eq!(m["attributes"]["occi.compute.speed"]["default"], 3.2, "{m}");
    assert_eq!(m["depends"], json!([RESOURCE_TPL]), "{m}");
    assert_eq!(m["location"], "/template/resource/medium/");
}

#[tokio::test]
async fn put_update_of_a_kind_survives_restart() {
    let server = TestServer::start().await;
    let kind = json!({"term": "vm", "scheme": EX, "title": "Before", "location": "/vm/"});
    expect(&post_categories(&server, json!({"kinds": [kind.clone()]})).await, 200);
    let mut changed = kind;
    changed["title"] = json!("After");
    expect(&server.json("PUT", "/-/", Some(json!({"kinds": [changed]}))).await, 200);
    let vm = has(&server.get_ok("/-/").await, "kinds", &format!("{EX}vm"));
    assert_eq!((vm["title"].as_str(), vm["parent"].as_str()), (Some("After"), Some(RESOURCE)), "{vm}");

    // The stored category is the one in use: the same after a restart, still a resource kind.
    let server = server.restart().await;
    let vm = has(&server.get_ok("/-/").await, "kinds", &format!("{EX}vm"));
    assert_eq!(vm["title"], "After", "{vm}");
    assert_eq!(vm["parent"], RESOURCE, "the updated kind lost its parent across a restart: {vm}");
    let r = server.json("POST", "/vm/", Some(json!({"kind": format!("{EX}vm"), "id": "a", "title": "t"}))).await;
    expect(&r, 201);
}

#[tokio::test]
async fn put_changing_location_is_400() {
    let server = TestServer::start().await;
    expect(&post_categories(&server, json!({"mixins": [{"term": "m", "scheme": EX, "location": "/m/"}]})).await, 200);
    let r =
        server.json("PUT", "/-/", Some(json!({"mixins": [{"term": "m", "scheme": EX, "location": "/moved/"}]}))).await;
    expect_error(&r, 400, &["location"]);
    let v = server.get_ok("/-/").await;
    assert_eq!(has(&v, "mixins", &format!("{EX}m"))["location"], "/m/");
}

#[tokio::test]
async fn put_on_a_builtin_is_403() {
    let server = TestServer::start().await;
    let body = json!({"kinds": [{"term": "compute", "scheme": "http://schemas.ogf.org/occi/infrastructure#",
                                 "title": "Mine now", "location": "/compute/"}]});
    let r = server.json("PUT", "/-/", Some(body)).await;
    expect_error(&r, 403, &[COMPUTE]);
    let v = server.get_ok("/-/").await;
    assert_eq!(has(&v, "kinds", COMPUTE)["title"], "Compute Resource");
}

#[tokio::test]
async fn put_of_an_unknown_category_is_404() {
    let server = TestServer::start().await;
    let r = server
        .json("PUT", "/-/", Some(json!({"mixins": [{"term": "ghost", "scheme": EX, "location": "/ghost/"}]})))
        .await;
    expect_error(&r, 404, &[&format!("{EX}ghost")]);
    assert!(find(&server.get_ok("/-/").await, "mixins", &format!("{EX}ghost")).is_none(), "PUT must not create");
}

#[tokio::test]
async fn providers_bind_known_local_providers_only() {
    let server = TestServer::start().await;
    let provider = |id: &str, p: Value| json!({"providers": [{"OCCI_ID": id, "Provider": p}]});
    let r = server.json("PUT", "/-/", Some(provider(COMPUTE, json!({"local": ["dummy"]})))).await;
    expect(&r, 200);
    // Unbinding with an empty list is fine too.
    expect(&server.json("PUT", "/-/", Some(provider(COMPUTE, json!({"local": []})))).await, 200);

    let r = server.json("PUT", "/-/", Some(provider(COMPUTE, json!({"local": ["nosuchprovider"]})))).await;
    expect_error(&r, 400, &["nosuchprovider"]);
    let r = server.json("PUT", "/-/", Some(provider(COMPUTE, json!({"remote": ["http://elsewhere.example/"]})))).await;
    expect_error(&r, 400, &["remote"]);
    let ghost = format!("{EX}ghost");
    let r = server.json("PUT", "/-/", Some(provider(&ghost, json!({"local": ["dummy"]})))).await;
    expect_error(&r, 404, &[&ghost]);

    // The compute kind still works after all this.
    expect(&server.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "c"}))).await, 201);
}

// ------------------------------------------------------------------ deleting

fn category_ref(term: &str, scheme: &str) -> Value {
    json!({"term": term, "scheme": scheme})
}

#[tokio::test]
async fn delete_of_a_tenant_kind_removes_it() {
    let server = TestServer::start().await;
    expect(&post_categories(&server, json!({"kinds": [{"term": "vm", "scheme": EX, "location": "/vm/"}]})).await, 200);
    expect(&server.json("POST", "/vm/", Some(json!({"kind": format!("{EX}vm"), "id": "probe"}))).await, 201);
    expect(&server.json("DELETE", "/vm/probe", None).await, 200);

    let r = server.json("DELETE", "/-/", Some(json!({"kinds": [category_ref("vm", EX)]}))).await;
    expect(&r, 200);
    let v = server.get_ok("/-/").await;
    assert!(find(&v, "kinds", &format!("{EX}vm")).is_none(), "{v}");
    // Its location is no collection any more.
    let r = server.json("POST", "/vm/", Some(json!({"kind": format!("{EX}vm"), "id": "again"}))).await;
    expect(&r, 405);
    // And deleting it again: it does not exist.
    let r = server.json("DELETE", "/-/", Some(json!({"kinds": [category_ref("vm", EX)]}))).await;
    expect(&r, 404);
}

#[tokio::test]
async fn delete_of_a_builtin_is_403() {
    let server = TestServer::start().await;
    let r = server
        .json(
            "DELETE",
            "/-/",
            Some(json!({"kinds": [category_ref("compute", "http://schemas.ogf.org/occi/infrastructure#")]})),
        )
        .await;
    expect_error(&r, 403, &[COMPUTE]);
    let r = server
        .json("DELETE", "/-/", Some(json!({"actions": [category_ref("stop", STOP.trim_end_matches("stop"))]})))
        .await;
    expect(&r, 403);
    let v = server.get_ok("/-/").await;
    has(&v, "kinds", COMPUTE);
    has(&v, "actions", STOP);
}

#[tokio::test]
async fn delete_of_a_kind_with_entities_needs_cascade() {
    let server = TestServer::start().await;
    expect(&post_categories(&server, json!({"kinds": [{"term": "vm", "scheme": EX, "location": "/vm/"}]})).await, 200);
    for id in ["a", "b"] {
        expect(&server.json("POST", "/vm/", Some(json!({"kind": format!("{EX}vm"), "id": id}))).await, 201);
    }
    let body = json!({"kinds": [category_ref("vm", EX)]});
    let r = server.json("DELETE", "/-/", Some(body.clone())).await;
    expect_error(&r, 409, &["cascade"]);
    // Nothing was deleted.
    has(&server.get_ok("/-/").await, "kinds", &format!("{EX}vm"));
    expect(&server.get("/vm/a").await, 200);
    expect(&server.get("/vm/b").await, 200);

    let r = server.json("DELETE", "/-/?cascade=true", Some(body)).await;
    expect(&r, 200);
    assert!(find(&server.get_ok("/-/").await, "kinds", &format!("{EX}vm")).is_none());
    expect(&server.get("/vm/a").await, 404);
    expect(&server.get("/vm/b").await, 404);
}

#[tokio::test]
async fn delete_of_a_mixin_dissociates_it_from_its_entities() {
    let server = TestServer::start().await;
    let mixin = json!({"term": "tag", "scheme": EX, "location": "/mixins/tag/",
                       "attributes": {"ex.tag.colour": {"type": "string", "mutable": true, "required": false}}});
    expect(&post_categories(&server, json!({"mixins": [mixin]})).await, 200);
    let tag = format!("{EX}tag");
    let r = server
        .json(
            "POST",
            "/compute/",
            Some(json!({"kind": COMPUTE, "id": "c1", "mixins": [tag], "attributes": {"ex.tag.colour": "red"}})),
        )
        .await;
    expect(&r, 201);
    let e = server.get("/compute/c1").await.json();
    assert_eq!(e["mixins"], json!([tag]), "{e}");
    assert_eq!(e["attributes"]["ex.tag.colour"], "red", "{e}");

    expect(&server.json("DELETE", "/-/", Some(json!({"mixins": [category_ref("tag", EX)]}))).await, 200);
    let r = server.get("/compute/c1").await;
    expect(&r, 200);
    let e = r.json();
    let mixins = e.get("mixins").and_then(Value::as_array).cloned().unwrap_or_default();
    assert!(!mixins.contains(&json!(tag)), "the deleted mixin is still listed: {e}");
    assert!(e["attributes"].get("ex.tag.colour").is_none(), "the deleted mixin's attribute stayed: {e}");
    assert!(find(&server.get_ok("/-/").await, "mixins", &tag).is_none());
}

#[tokio::test]
async fn delete_of_an_action_still_referenced_is_409() {
    let server = TestServer::start().await;
    let body = json!({"kinds": [vm_kind("vm", "/vm/")], "actions": [reboot_action()]});
    expect(&post_categories(&server, body).await, 200);
    let r = server.json("DELETE", "/-/", Some(json!({"actions": [category_ref("reboot", EX_ACTIONS)]}))).await;
    expect_error(&r, 409, &[&format!("{EX_ACTIONS}reboot")]);
    has(&server.get_ok("/-/").await, "actions", &format!("{EX_ACTIONS}reboot"));
    // Deleting both in one request is fine.
    let r = server
        .json(
            "DELETE",
            "/-/",
            Some(json!({"kinds": [category_ref("vm", EX)], "actions": [category_ref("reboot", EX_ACTIONS)]})),
        )
        .await;
    expect(&r, 200);
    let v = server.get_ok("/-/").await;
    assert!(find(&v, "actions", &format!("{EX_ACTIONS}reboot")).is_none());
    assert!(find(&v, "kinds", &format!("{EX}vm")).is_none());
}

// ------------------------------------------------------------------ filtering

#[tokio::test]
async fn filter_by_term_returns_only_that_category() {
    let server = TestServer::start().await;
    let v = filtered(&server, json!({"kinds": [{"term": "compute"}]})).await;
    assert_eq!(ids(&v, "kinds"), vec![COMPUTE.to_string()], "{v}");
    assert!(group(&v, "mixins").is_empty() && group(&v, "actions").is_empty(), "{v}");
    // The filtered rendering is the full category.
    assert_eq!(v["kinds"][0], has(&server.get_ok("/-/").await, "kinds", COMPUTE));
}

#[tokio::test]
async fn filter_members_must_all_match() {
    let server = TestServer::start().await;
    let v = filtered(&server, json!({"kinds": [{"term": "compute", "scheme": "http://nomatch.example/occi#"}]})).await;
    assert!(group(&v, "kinds").is_empty(), "term matched but scheme did not: {v}");
    let v = filtered(
        &server,
        json!({"kinds": [{"term": "compute", "scheme": "http://schemas.ogf.org/occi/infrastructure#"}]}),
    )
    .await;
    assert_eq!(ids(&v, "kinds"), vec![COMPUTE.to_string()], "{v}");
    // Several filters: anything matching one of them.
    let v =
        filtered(&server, json!({"kinds": [{"term": "compute"}, {"term": "storage"}], "actions": [{"term": "up"}]}))
            .await;
    let mut kinds = ids(&v, "kinds");
    kinds.sort();
    assert_eq!(kinds, vec![COMPUTE.to_string(), STORAGE.to_string()], "{v}");
    assert_eq!(ids(&v, "actions"), vec!["http://schemas.ogf.org/occi/infrastructure/network/action#up"], "{v}");
}

#[tokio::test]
async fn filter_by_attribute_definition_seed_style() {
    let server = TestServer::start().await;
    // The seed's backup action, and its filter (examples/seed/filter_categories.json).
    let method = json!({"mutable": true, "required": false, "type": "string",
                        "pattern": "graceful|acpioff|poweroff", "default": "poweroff"});
    let backup = json!({"term": "backup", "scheme": EX_ACTIONS, "attributes": {"method": method}});
    expect(&server.py("POST", "/-/", Some(json!({"actions": [backup]}))).await, 200);
    let v = filtered(&server, json!({"actions": [{"attributes": {"method": method}}]})).await;
    assert_eq!(ids(&v, "actions"), vec![format!("{EX_ACTIONS}backup")], "{v}");
    assert!(group(&v, "kinds").is_empty() && group(&v, "mixins").is_empty(), "{v}");

    // Without the default, the built-in stop (whose enum renders as that pattern) matches too.
    let mut no_default = method.clone();
    no_default.as_object_mut().unwrap().remove("default");
    let v = filtered(&server, json!({"actions": [{"attributes": {"method": no_default}}]})).await;
    let mut got = ids(&v, "actions");
    got.sort();
    assert_eq!(got, vec![format!("{EX_ACTIONS}backup"), STOP.to_string()], "{v}");

    // A nested (pyOCNI) attribute filter on kinds: only compute defines occi.compute.cores.
    let v = filtered(&server, json!({"kinds": [{"attributes": {"occi": {"compute": {"cores": {"mutable": true}}}}}]}))
        .await;
    assert_eq!(ids(&v, "kinds"), vec![COMPUTE.to_string()], "{v}");
}
