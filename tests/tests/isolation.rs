//! The isolation matrix: two tenants on one multi-tenant server, end to end over HTTP, each with
//! its own categories, entities and handlers. Tenant B tries every way to see or touch tenant A's
//! things; each cell is one test. Where B names something of A's, the answer must be exactly the
//! answer for something that does not exist (same status, same message with the name swapped), so
//! B cannot even learn that A's thing exists.
//!
//! A ("alpha"): handlers `ipnet` (the ipnetwork guest, which queries entities) bound to the
//! ipnetwork and ipnetworkinterface mixins, and `counter` (kv) bound to the kind `counted`; its
//! own mixin `gold`; a compute `/compute/a1` (hostname `alpha-host`, mixin gold), a network
//! `/network/alpha-net` (10.0.0.0/24) and a network interface `/networkinterface/anic1` between
//! them (10.0.0.5). B ("beta"): the handler `counter` (same name, its own) bound to its own kind
//! `counted` (same id and location as A's), its own mixin `silver`, a compute `/compute/b1`.

use std::sync::OnceLock;

use ocni_tests::{COMPUTE, JSON, NETWORK, NETWORKINTERFACE, Reply, Tenant, TestServer, expect, guests};
use serde_json::{Value, json};

const IPNETWORK: &str = "http://schemas.ogf.org/occi/infrastructure/network#ipnetwork";
const IPNETWORKINTERFACE: &str = "http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface";
const GOLD: &str = "http://alpha.example/occi#gold";
const SILVER: &str = "http://beta.example/occi#silver";
const COUNTED: &str = "http://example.com/occi#counted";
const SERIAL: &str = "example.counter.serial";

/// What B's requests about A's things are compared with: a name nobody has.
const MISSING_ENTITY: &str = "/compute/nobody-has-this";

/// The compiled-component cache shared by the servers of this file (same runtime config, so the
/// same engine), so each test does not compile the guests again.
fn shared_components() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

async fn setup() -> (TestServer, Tenant2) {
    let server = TestServer::start_multi_tenant(|c| {
        std::fs::create_dir_all(&c.data_dir).unwrap();
        std::os::unix::fs::symlink(shared_components(), c.data_dir.join("components")).unwrap();
    })
    .await;
    let a = server.create_tenant("alpha", None).await.token;
    let b = server.create_tenant("beta", None).await.token;
    let tokens = Tenant2 { a, b };
    {
        let a = tokens.a(&server);
        let b = tokens.b(&server);
        // A: handlers, categories, entities.
        expect(&a.upload("ipnet", guests::IPNETWORK).await, 201);
        expect(&a.upload("counter", guests::COUNTER).await, 201);
        let providers = json!({"providers": [
            {"OCCI_ID": IPNETWORK, "Provider": {"local": ["ipnet"]}},
            {"OCCI_ID": IPNETWORKINTERFACE, "Provider": {"local": ["ipnet"]}},
        ]});
        expect(&a.json("PUT", "/-/", Some(providers)).await, 200);
        expect(&a.json("POST", "/-/", Some(model("alpha", "gold"))).await, 200);
        let a1 = json!({"kind": COMPUTE, "id": "a1", "mixins": [GOLD],
                        "attributes": {"occi.compute.hostname": "alpha-host"}});
        expect(&a.json("POST", "/compute/", Some(a1)).await, 201);
        expect(&a.json("POST", "/network/", Some(network("alpha-net"))).await, 201);
        expect(
            &a.json("POST", "/networkinterface/", Some(nic("anic1", "/compute/a1", "/network/alpha-net", "10.0.0.5")))
                .await,
            201,
        );
        expect(&a.json("POST", "/counted/", Some(json!({"kind": COUNTED, "id": "c1"}))).await, 201);
        // B: its own handler under A's handler's name, the same kind id, its own mixin.
        expect(&b.upload("counter", guests::COUNTER).await, 201);
        expect(&b.json("POST", "/-/", Some(model("beta", "silver"))).await, 200);
        let b1 = json!({"kind": COMPUTE, "id": "b1", "attributes": {"occi.compute.hostname": "beta-host"}});
        expect(&b.json("POST", "/compute/", Some(b1)).await, 201);
    }
    (server, tokens)
}

/// The two tokens of a world.
struct Tenant2 {
    a: String,
    b: String,
}

impl Tenant2 {
    fn a<'s>(&self, server: &'s TestServer) -> Tenant<'s> {
        Tenant { server, name: "alpha".into(), token: self.a.clone() }
    }
    fn b<'s>(&self, server: &'s TestServer) -> Tenant<'s> {
        Tenant { server, name: "beta".into(), token: self.b.clone() }
    }
}

/// A tenant's model: the kind `counted` bound to its `counter`, and a mixin of its own.
fn model(tenant: &str, mixin: &str) -> Value {
    json!({
        "kinds": [{
            "term": "counted", "scheme": "http://example.com/occi#", "location": "/counted/",
            "attributes": {SERIAL: {"type": "integer", "mutable": true, "required": false}},
            "handler": "counter",
        }],
        "mixins": [{"term": mixin, "scheme": format!("http://{tenant}.example/occi#"), "location": format!("/{mixin}/"),
                    "applies": [COMPUTE]}],
    })
}

fn network(id: &str) -> Value {
    json!({"kind": NETWORK, "id": id, "mixins": [IPNETWORK],
           "attributes": {"occi.network.address": "10.0.0.0/24", "occi.network.gateway": "10.0.0.1"}})
}

fn nic(id: &str, source: &str, target: &str, address: &str) -> Value {
    json!({"kind": NETWORKINTERFACE, "id": id, "mixins": [IPNETWORKINTERFACE],
           "source": {"location": source}, "target": {"location": target},
           "attributes": {"occi.networkinterface.address": address, "occi.networkinterface.allocation": "static",
                          "occi.networkinterface.mac": "00:11:22:33:44:55"}})
}

/// Asserts B's answer about A's thing is the answer about a thing that does not exist: same
/// status, same body once the names are swapped.
#[track_caller]
fn same_as_missing(about_a: &Reply, about_missing: &Reply, a_name: &str, missing_name: &str) {
    assert_eq!(
        about_a.status, about_missing.status,
        "B's answer about A's {a_name} differs from the answer about nothing:\n{}\nvs\n{}",
        about_a.text, about_missing.text
    );
    assert_eq!(
        about_a.text.replace(a_name, "NAME"),
        about_missing.text.replace(missing_name, "NAME"),
        "B's answer about A's {a_name} differs from the answer about nothing"
    );
}

/// The locations a collection lists, server paths, sorted.
fn locations(reply: &Reply) -> Vec<String> {
    expect(reply, 200);
    assert_eq!(reply.header("content-type"), Some("text/uri-list"), "{}", reply.text);
    let mut out: Vec<String> = reply
        .text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let rest = l.split_once("://").map_or(l, |(_, r)| r);
            rest[rest.find('/').unwrap_or(0)..].to_string()
        })
        .collect();
    out.sort();
    out
}

/// What the collection at `path` lists for `t` (with a JSON filter body, if any).
async fn list(t: &Tenant<'_>, path: &str, filter: Option<Value>) -> Vec<String> {
    locations(&t.send("GET", path, Some("text/uri-list"), None, filter.map(|f| f.to_string())).await)
}

// ---------------------------------------------------------------------- reading

#[tokio::test]
async fn b_cannot_read_as_entity() {
    let (server, t) = setup().await;
    let b = t.b(&server);
    same_as_missing(&b.get("/compute/a1").await, &b.get(MISSING_ENTITY).await, "/compute/a1", MISSING_ENTITY);
    // A link too, in every rendering.
    for accept in [JSON, "text/plain", "text/occi"] {
        let about_a = b.send("GET", "/networkinterface/anic1", Some(accept), None, None).await;
        let missing = b.send("GET", "/networkinterface/nope", Some(accept), None, None).await;
        same_as_missing(&about_a, &missing, "/networkinterface/anic1", "/networkinterface/nope");
        assert_eq!(about_a.status, 404);
    }
    let head_a = b.send("HEAD", "/compute/a1", Some(JSON), None, None).await;
    assert_eq!(head_a.status, b.send("HEAD", MISSING_ENTITY, Some(JSON), None, None).await.status);
}

#[tokio::test]
async fn b_lists_only_its_own_entities() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    assert_eq!(list(&b, "/compute/", None).await, ["/compute/b1"]);
    assert_eq!(list(&a, "/compute/", None).await, ["/compute/a1"]);
    assert!(list(&b, "/network/", None).await.is_empty());
    assert!(list(&b, "/networkinterface/", None).await.is_empty());
    assert_eq!(list(&b, "/", None).await, ["/compute/b1"], "the whole tree of B");
    // Text renderings list locations: none of A's.
    let text = b.send("GET", "/", Some("text/uri-list"), None, None).await;
    expect(&text, 200);
    assert!(!text.text.contains("a1") && !text.text.contains("alpha"), "{}", text.text);
    // Paging does not reach past B's entities.
    assert!(list(&b, "/compute/?page=2&number=1", None).await.is_empty());
}

#[tokio::test]
async fn b_cannot_list_as_mixin_collection() {
    let (server, t) = setup().await;
    let b = t.b(&server);
    // /gold/ is A's mixin location; for B it is a path like any other, with nothing below it.
    let about_a = b.get("/gold/").await;
    same_as_missing(&about_a, &b.get("/nothing-here/").await, "/gold/", "/nothing-here/");
    assert!(list(&b, "/gold/", None).await.is_empty());
    // A's kind `counted` has the same id and location as B's: B sees its own (empty) collection.
    assert!(list(&b, "/counted/", None).await.is_empty());
    assert_eq!(list(&t.a(&server), "/counted/", None).await, ["/counted/c1"]);
}

#[tokio::test]
async fn b_cannot_see_as_categories() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    let b_view = b.get("/-/").await.text;
    assert!(!b_view.contains("alpha.example") && !b_view.contains("/gold/"), "A's mixin is not B's");
    assert!(b_view.contains(SILVER.split('#').next().unwrap()), "B's own mixin is there");
    let a_view = a.get("/-/").await.text;
    assert!(a_view.contains("alpha.example") && !a_view.contains("beta.example"));
}

#[tokio::test]
async fn b_cannot_filter_for_as_entities() {
    let (server, t) = setup().await;
    let b = t.b(&server);
    let filter = |v: &str| json!({"attributes": {"occi.compute.hostname": v}});
    assert!(list(&b, "/compute/", Some(filter("alpha-host"))).await.is_empty());
    assert!(list(&b, "/", Some(filter("alpha-host"))).await.is_empty());
    assert_eq!(list(&b, "/compute/", Some(filter("beta-host"))).await, ["/compute/b1"]);
    // By A's mixin, and by A's entity's id.
    let about_a = b.json("GET", "/compute/", Some(json!({"mixins": [GOLD]}))).await;
    let missing = b.json("GET", "/compute/", Some(json!({"mixins": ["http://nobody.example/occi#none"]}))).await;
    same_as_missing(&about_a, &missing, GOLD, "http://nobody.example/occi#none");
    assert!(list(&b, "/compute/", Some(json!({"mixins": [GOLD]}))).await.is_empty());
    assert!(list(&b, "/", Some(json!({"id": "a1"}))).await.is_empty());
    assert_eq!(list(&t.a(&server), "/", Some(json!({"id": "a1"}))).await, ["/compute/a1"], "the filter works");
    // The text rendering's X-OCCI-Attribute filter too.
    let text = b
        .send(
            "GET",
            "/compute/",
            Some("text/uri-list"),
            Some("text/plain"),
            Some("X-OCCI-Attribute: occi.compute.hostname=\"alpha-host\"\n".into()),
        )
        .await;
    expect(&text, 200);
    assert!(text.text.trim().is_empty(), "{}", text.text);
}

#[tokio::test]
async fn b_cannot_filter_for_as_categories() {
    let (server, t) = setup().await;
    let b = t.b(&server);
    // JSON category filter on /-/ naming A's mixin: what a mixin nobody has gives.
    let filter = |scheme: &str| json!({"mixins": [{"scheme": scheme, "term": "gold"}]});
    let about_a = b.json("GET", "/-/", Some(filter("http://alpha.example/occi#"))).await;
    let missing = b.json("GET", "/-/", Some(filter("http://nobody.example/occi#"))).await;
    same_as_missing(&about_a, &missing, "alpha.example", "nobody.example");
    assert!(!about_a.text.contains("/gold/"));
    // A text/plain Category filter (GFD.223 7.1).
    let text = |scheme: &str| format!("Category: gold; scheme=\"{scheme}\"; class=\"mixin\"\n");
    let about_a =
        b.send("GET", "/-/", Some("text/plain"), Some("text/plain"), Some(text("http://alpha.example/occi#"))).await;
    let missing =
        b.send("GET", "/-/", Some("text/plain"), Some("text/plain"), Some(text("http://nobody.example/occi#"))).await;
    same_as_missing(&about_a, &missing, "alpha.example", "nobody.example");
}

// ---------------------------------------------------------------------- writing

#[tokio::test]
async fn b_cannot_replace_as_entity() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    let before = a.get_ok("/compute/a1").await;
    let body = json!({"kind": COMPUTE, "attributes": {"occi.compute.hostname": "taken-over"}});
    // PUT creates at the URL: B gets an entity of its own there, exactly as at a free URL.
    let about_a = b.json("PUT", "/compute/a1", Some(body.clone())).await;
    let missing = b.json("PUT", MISSING_ENTITY, Some(body)).await;
    same_as_missing(&about_a, &missing, "/compute/a1", MISSING_ENTITY);
    expect(&about_a, 201);
    assert_eq!(a.get_ok("/compute/a1").await, before, "A's entity is untouched");
    assert_eq!(b.get("/compute/a1").await.json()["attributes"]["occi.compute.hostname"], "taken-over");
    assert_eq!(list(&a, "/compute/", None).await, ["/compute/a1"], "B's entity is not A's");
}

#[tokio::test]
async fn b_cannot_update_as_entity() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    let before = a.get_ok("/compute/a1").await;
    let body = json!({"attributes": {"occi.compute.hostname": "changed"}});
    let about_a = b.json("POST", "/compute/a1", Some(body.clone())).await;
    let missing = b.json("POST", MISSING_ENTITY, Some(body)).await;
    same_as_missing(&about_a, &missing, "/compute/a1", MISSING_ENTITY);
    expect(&about_a, 404);
    assert_eq!(a.get_ok("/compute/a1").await, before);
}

#[tokio::test]
async fn b_cannot_delete_as_entity() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    let before = a.get_ok("/compute/a1").await;
    let about_a = b.json("DELETE", "/compute/a1", None).await;
    same_as_missing(&about_a, &b.json("DELETE", MISSING_ENTITY, None).await, "/compute/a1", MISSING_ENTITY);
    expect(&about_a, 404);
    // Deleting whole collections and paths deletes B's entities only.
    expect(&b.json("DELETE", "/compute/", None).await, 200);
    expect(&b.json("DELETE", "/", None).await, 200);
    expect(&b.json("DELETE", "/counted/", None).await, 200);
    assert_eq!(a.get_ok("/compute/a1").await, before);
    assert_eq!(list(&a, "/", None).await.len(), 4, "A's compute, network, link and counted are all there");
    assert!(list(&b, "/", None).await.is_empty());
}

#[tokio::test]
async fn b_cannot_act_on_as_entity() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    expect(&a.json("POST", "/compute/a1?action=start", None).await, 200);
    let before = a.get_ok("/compute/a1").await;
    let about_a = b.json("POST", "/compute/a1?action=stop", None).await;
    let missing = b.json("POST", &format!("{MISSING_ENTITY}?action=stop"), None).await;
    same_as_missing(&about_a, &missing, "/compute/a1", MISSING_ENTITY);
    expect(&about_a, 404);
    // An action on the whole collection reaches B's entities only (start: A's active a1 would
    // refuse it).
    expect(&b.json("POST", "/compute/?action=start", None).await, 200);
    assert_eq!(b.get_ok("/compute/b1").await["attributes"]["occi.compute.state"], "active");
    let after = a.get_ok("/compute/a1").await;
    assert_eq!(after, before);
    assert_eq!(after["attributes"]["occi.compute.state"], "active");
}

#[tokio::test]
async fn b_cannot_link_to_as_entities() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    let link = |source: &str, target: &str| {
        json!({"kind": NETWORKINTERFACE, "source": {"location": source}, "target": {"location": target},
               "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:66"}})
    };
    // A's network as the target of B's link.
    expect(&b.json("POST", "/network/", Some(json!({"kind": NETWORK, "id": "beta-net"}))).await, 201);
    let about_a = b.json("POST", "/networkinterface/", Some(link("/compute/b1", "/network/alpha-net"))).await;
    let missing = b.json("POST", "/networkinterface/", Some(link("/compute/b1", "/network/nope"))).await;
    same_as_missing(&about_a, &missing, "/network/alpha-net", "/network/nope");
    expect(&about_a, 404);
    // A's compute as the source.
    let about_a = b.json("POST", "/networkinterface/", Some(link("/compute/a1", "/network/beta-net"))).await;
    let missing = b.json("POST", "/networkinterface/", Some(link(MISSING_ENTITY, "/network/beta-net"))).await;
    same_as_missing(&about_a, &missing, "/compute/a1", MISSING_ENTITY);
    // An inline link on create, to A's network.
    let inline = |target: &str| {
        json!({"kind": COMPUTE, "id": "b2", "links": [{"kind": NETWORKINTERFACE, "target": {"location": target},
               "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:77"}}]})
    };
    let about_a = b.json("POST", "/compute/", Some(inline("/network/alpha-net"))).await;
    let missing = b.json("POST", "/compute/", Some(inline("/network/nope"))).await;
    same_as_missing(&about_a, &missing, "/network/alpha-net", "/network/nope");
    assert!(list(&b, "/networkinterface/", None).await.is_empty(), "B has no link");
    assert_eq!(list(&a, "/networkinterface/", None).await, ["/networkinterface/anic1"]);
    // A's network shows no link of B's.
    let net = a.get_ok("/network/alpha-net").await;
    assert!(!net.to_string().contains("b1"), "{net}");
}

#[tokio::test]
async fn b_cannot_use_as_mixin() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    // Creating with A's mixin: as with a mixin nobody has.
    let with = |mixin: &str| json!({"kind": COMPUTE, "id": "b3", "mixins": [mixin]});
    let about_a = b.json("POST", "/compute/", Some(with(GOLD))).await;
    let missing = b.json("POST", "/compute/", Some(with("http://alpha.example/occi#nothing"))).await;
    same_as_missing(&about_a, &missing, "gold", "nothing");
    assert_eq!(about_a.status / 100, 4);
    // Adding A's mixin to B's entity by update.
    let update = |mixin: &str| json!({"mixins": [mixin]});
    let about_a = b.json("POST", "/compute/b1", Some(update(GOLD))).await;
    let missing = b.json("POST", "/compute/b1", Some(update("http://alpha.example/occi#nothing"))).await;
    same_as_missing(&about_a, &missing, "gold", "nothing");
    // Associating through A's mixin location: for B a path that is no collection.
    let assoc = json!({"X-OCCI-Location": ["/compute/b1"]});
    let about_a = b.json("POST", "/gold/", Some(assoc.clone())).await;
    let missing = b.json("POST", "/nothing-here/", Some(assoc)).await;
    same_as_missing(&about_a, &missing, "/gold/", "/nothing-here/");
    assert_eq!(list(&a, "/gold/", None).await, ["/compute/a1"], "A's mixin has A's member only");
    assert!(b.get_ok("/compute/b1").await.get("mixins").is_none());
}

#[tokio::test]
async fn b_cannot_associate_as_entity_with_a_mixin() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    let before = a.get_ok("/compute/a1").await;
    for method in ["POST", "PUT"] {
        let about_a = b.json(method, "/silver/", Some(json!({"X-OCCI-Location": ["/compute/a1"]}))).await;
        let missing = b.json(method, "/silver/", Some(json!({"X-OCCI-Location": [MISSING_ENTITY]}))).await;
        same_as_missing(&about_a, &missing, "/compute/a1", MISSING_ENTITY);
        expect(&about_a, 404);
    }
    let uri_list = b.send("POST", "/silver/", Some(JSON), Some("text/uri-list"), Some("/compute/a1\n".into())).await;
    expect(&uri_list, 404);
    assert_eq!(a.get_ok("/compute/a1").await, before);
    assert!(list(&b, "/silver/", None).await.is_empty());
}

#[tokio::test]
async fn b_cannot_change_or_delete_as_categories() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    let mixin = |scheme: &str| json!({"mixins": [{"term": "gold", "scheme": scheme, "title": "mine now", "location": "/gold/"}]});
    let (a_scheme, nobody) = ("http://alpha.example/occi#", "http://nobody.example/occi#");
    for method in ["PUT", "DELETE"] {
        let about_a = b.json(method, "/-/", Some(mixin(a_scheme))).await;
        let missing = b.json(method, "/-/", Some(mixin(nobody))).await;
        same_as_missing(&about_a, &missing, "alpha.example", "nobody.example");
        assert_eq!(about_a.status, 404, "{method}: {}", about_a.text);
    }
    // B may define a category with A's id: it is B's own, A's stays as it was.
    let own = json!({"mixins": [{"term": "gold", "scheme": a_scheme, "title": "B's gold", "location": "/b-gold/"}]});
    expect(&b.json("POST", "/-/", Some(own)).await, 200);
    let a_view = a.json("GET", "/-/", Some(json!({"mixins": [{"term": "gold", "scheme": a_scheme}]}))).await;
    assert!(a_view.text.contains("/gold/") && !a_view.text.contains("B's gold"), "{}", a_view.text);
    assert_eq!(list(&a, "/gold/", None).await, ["/compute/a1"]);
}

#[tokio::test]
async fn b_cannot_learn_as_ids_by_conflict() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    // Creating at A's id is no conflict for B.
    expect(&b.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "a1"}))).await, 201);
    expect(&b.json("POST", "/network/", Some(json!({"kind": NETWORK, "id": "alpha-net"}))).await, 201);
    assert_eq!(a.get_ok("/compute/a1").await["attributes"]["occi.compute.hostname"], "alpha-host");
    assert!(b.get_ok("/compute/a1").await["attributes"].get("occi.compute.hostname").is_none());
}

// ---------------------------------------------------------------------- handlers

#[tokio::test]
async fn b_cannot_see_as_handlers() {
    let (server, t) = setup().await;
    let b = t.b(&server);
    let about_a = b.get("/-/handlers/ipnet").await;
    same_as_missing(&about_a, &b.get("/-/handlers/nothing").await, "ipnet", "nothing");
    expect(&about_a, 404);
    let list = b.get("/-/handlers/").await.json();
    let names: Vec<&str> = list["handlers"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["counter"]);
    assert!(list.get("compiled_since_start").is_none(), "a server-wide count would tell of A's uploads");
    let own = b.get("/-/handlers/counter").await.json();
    assert_eq!(own["bound"], json!([COUNTED]), "B's counter is bound to B's kind only");
}

#[tokio::test]
async fn b_cannot_use_as_handler_by_name() {
    let (server, t) = setup().await;
    let b = t.b(&server);
    let kind = |handler: &str| json!({"kinds": [{"term": "k", "scheme": "http://beta.example/k#", "location": "/k/", "handler": handler}]});
    let about_a = b.json("POST", "/-/", Some(kind("ipnet"))).await;
    let missing = b.json("POST", "/-/", Some(kind("nothing"))).await;
    same_as_missing(&about_a, &missing, "ipnet", "nothing");
    expect(&about_a, 400);
    let bind = |handler: &str| json!({"providers": [{"OCCI_ID": COMPUTE, "Provider": {"local": [handler]}}]});
    let about_a = b.json("PUT", "/-/", Some(bind("ipnet"))).await;
    let missing = b.json("PUT", "/-/", Some(bind("nothing"))).await;
    same_as_missing(&about_a, &missing, "ipnet", "nothing");
    expect(&about_a, 400);
    // B's networks do not run A's handler (bound to ipnetwork in A only): a gateway outside the
    // network is B's business.
    let net = json!({"kind": NETWORK, "id": "loose", "mixins": [IPNETWORK],
                     "attributes": {"occi.network.address": "10.0.0.0/24", "occi.network.gateway": "192.168.9.9"}});
    expect(&b.json("POST", "/network/", Some(net)).await, 201);
}

#[tokio::test]
async fn b_cannot_overwrite_or_delete_as_handler() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    let before = a.get("/-/handlers/ipnet").await.json();
    let deleted = b.json("DELETE", "/-/handlers/ipnet", None).await;
    same_as_missing(&deleted, &b.json("DELETE", "/-/handlers/nothing", None).await, "ipnet", "nothing");
    // Uploading under A's handler's name creates B's own (201, not 200 "replaced").
    let uploaded = b.upload("ipnet", guests::COUNTER).await;
    expect(&uploaded, 201);
    assert_ne!(uploaded.json()["digest"], before["digest"]);
    assert_eq!(a.get("/-/handlers/ipnet").await.json(), before, "A's handler is the same component");
    // A's handler still runs for A: a gateway outside the network is refused.
    let net = json!({"kind": NETWORK, "id": "bad", "mixins": [IPNETWORK],
                     "attributes": {"occi.network.address": "10.0.0.0/24", "occi.network.gateway": "192.168.9.9"}});
    expect(&a.json("POST", "/network/", Some(net)).await, 400);
}

#[tokio::test]
async fn as_handler_queries_never_return_bs_entities() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    // B builds the same network and interface addresses, at the same locations as A's.
    expect(&b.json("POST", "/network/", Some(network("alpha-net"))).await, 201);
    expect(&b.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "a1"}))).await, 201);
    expect(
        &b.json("POST", "/networkinterface/", Some(nic("bnic", "/compute/a1", "/network/alpha-net", "10.0.0.9"))).await,
        201,
    );
    // A's handler looks for interfaces with 10.0.0.9 on /network/alpha-net (query::find): B's
    // does not count, so A may use the address.
    expect(
        &a.json("POST", "/networkinterface/", Some(nic("anic2", "/compute/a1", "/network/alpha-net", "10.0.0.9")))
            .await,
        201,
    );
    // The query does work: A's own interface with that address is a conflict.
    let r =
        a.json("POST", "/networkinterface/", Some(nic("anic3", "/compute/a1", "/network/alpha-net", "10.0.0.9"))).await;
    expect(&r, 409);
    assert!(r.error_message().contains("/networkinterface/anic2"), "{}", r.text);
    assert!(!r.text.contains("bnic"));
    // query::get of the target: B's network at a location A does not have is not found, so no
    // address check against it (as for any missing target).
    let r =
        a.json("POST", "/networkinterface/", Some(nic("anic4", "/compute/a1", "/network/alpha-net", "10.9.9.9"))).await;
    expect(&r, 400);
}

#[tokio::test]
async fn handler_key_value_state_is_per_tenant() {
    let (server, t) = setup().await;
    let (a, b) = (t.a(&server), t.b(&server));
    // Same handler name, same kind id: separate counters.
    for id in ["x1", "x2", "x3"] {
        expect(&b.json("POST", "/counted/", Some(json!({"kind": COUNTED, "id": id}))).await, 201);
    }
    assert_eq!(b.get("/counted/x3").await.json()["attributes"][SERIAL], 3);
    expect(&a.json("POST", "/counted/", Some(json!({"kind": COUNTED, "id": "c2"}))).await, 201);
    assert_eq!(a.get("/counted/c2").await.json()["attributes"][SERIAL], 2, "A's count went on from its own 1");
}

// ---------------------------------------------------------------------- the admin's view

#[tokio::test]
async fn deleting_a_removes_all_it_owns_and_nothing_of_b() {
    let (server, t) = setup().await;
    let b = t.b(&server);
    let before = server.admin("GET", "/-/admin/tenants/alpha", None).await.json();
    assert_eq!(before["entities"], 4);
    assert_eq!(before["categories"], 2);
    assert_eq!(before["handlers"], 2);
    expect(&server.admin("DELETE", "/-/admin/tenants/alpha", None).await, 200);
    expect(&server.admin("GET", "/-/admin/tenants/alpha", None).await, 404);
    // A's token is dead; B is as it was.
    expect(&t.a(&server).get("/-/").await, 401);
    assert_eq!(list(&b, "/compute/", None).await, ["/compute/b1"]);
    expect(&b.get("/-/handlers/counter").await, 200);
    // A tenant made again under the name starts empty.
    let again = server.create_tenant("alpha", None).await;
    assert!(list(&again, "/", None).await.is_empty());
    assert!(!again.get("/-/").await.text.contains("alpha.example"));
    expect(&again.get("/-/handlers/ipnet").await, 404);
    let fresh = server.admin("GET", "/-/admin/tenants/alpha", None).await.json();
    assert_eq!(
        (fresh["entities"].clone(), fresh["categories"].clone(), fresh["handlers"].clone()),
        (json!(0), json!(0), json!(0))
    );
}
