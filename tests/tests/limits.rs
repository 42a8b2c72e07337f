//! Per-tenant limits end to end, one test per limit: exceeding it gives a clear error and changes
//! nothing, and another tenant is not affected. Then the limits API itself.

use std::time::{Duration, Instant};

use ocni_tests::{COMPUTE, Tenant, TestServer, expect, expect_error, guests};
use serde_json::{Value, json};

async fn create(t: &Tenant<'_>, id: &str) -> ocni_tests::Reply {
    t.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": id}))).await
}

async fn entities(server: &TestServer, tenant: &str) -> u64 {
    server.admin("GET", &format!("/-/admin/tenants/{tenant}"), None).await.json()["entities"].as_u64().unwrap()
}

/// A kind `/{name}/` bound to the handler `name` (uploaded from `path`).
async fn kind_with_handler(t: &Tenant<'_>, name: &str, path: &str) {
    expect(&t.upload(name, path).await, 201);
    let kind = json!({"kinds": [{"term": name, "scheme": "http://example.com/limits#", "location": format!("/{name}/"),
                                  "handler": name}]});
    expect(&t.json("POST", "/-/", Some(kind)).await, 200);
}

#[tokio::test]
async fn max_entities() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", Some(json!({"max_entities": 3}))).await;
    let other = server.create_tenant("other", Some(json!({"max_entities": 3}))).await;
    expect(&create(&acme, "e1").await, 201);
    expect(&create(&acme, "e2").await, 201);
    // A collection that would cross the limit is refused whole.
    let two = json!({"resources": [{"kind": COMPUTE, "id": "e3"}, {"kind": COMPUTE, "id": "e4"}]});
    let r = acme.json("POST", "/compute/", Some(two)).await;
    expect_error(&r, 403, &["tenant acme has reached its limit of 3 entities"]);
    expect(&acme.get("/compute/e3").await, 404);
    assert_eq!(entities(&server, "acme").await, 2);
    expect(&create(&acme, "e3").await, 201);
    // At the limit: no create (POST or PUT), an inline link counts too; a replace is fine.
    expect_error(&create(&acme, "e4").await, 403, &["limit of 3 entities"]);
    let put = acme.json("PUT", "/compute/e4", Some(json!({"kind": COMPUTE}))).await;
    expect_error(&put, 403, &["limit of 3 entities"]);
    expect(&acme.get("/compute/e4").await, 404);
    let replace =
        acme.json("PUT", "/compute/e1", Some(json!({"kind": COMPUTE, "attributes": {"occi.compute.cores": 4}})));
    expect(&replace.await, 201);
    assert_eq!(entities(&server, "acme").await, 3);
    // Another tenant has its own count.
    expect(&create(&other, "e1").await, 201);
    // A delete makes room again.
    expect(&acme.json("DELETE", "/compute/e2", None).await, 200);
    assert_eq!(entities(&server, "acme").await, 2);
    expect(&create(&acme, "e5").await, 201);
    // A resource with an inline link is two entities: one place left is not enough.
    expect(&acme.json("DELETE", "/compute/e5", None).await, 200);
    let linked = json!({"kind": COMPUTE, "id": "e6", "links": [{
        "kind": ocni_tests::NETWORKINTERFACE, "target": {"location": "http://elsewhere.example/network/1"},
        "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}}]});
    expect_error(&acme.json("POST", "/compute/", Some(linked)).await, 403, &["limit of 3 entities"]);
    expect(&acme.get("/compute/e6").await, 404);
    assert_eq!(entities(&server, "acme").await, 2);
}

#[tokio::test]
async fn max_categories() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", Some(json!({"max_categories": 2}))).await;
    let mixins = |terms: &[&str]| json!({"mixins": terms.iter().map(|t| json!({"term": t, "scheme": "http://acme.example/m#", "location": format!("/{t}/")})).collect::<Vec<_>>()});
    let r = acme.json("POST", "/-/", Some(mixins(&["a", "b", "c"]))).await;
    expect_error(&r, 403, &["tenant acme has reached its limit of 2 categories"]);
    assert!(!acme.get_ok("/-/").await.to_string().contains("acme.example"), "none of the three was added");
    expect(&acme.json("POST", "/-/", Some(mixins(&["a", "b"]))).await, 200);
    expect_error(&acme.json("POST", "/-/", Some(mixins(&["c"]))).await, 403, &["limit of 2 categories"]);
    assert_eq!(server.admin("GET", "/-/admin/tenants/acme", None).await.json()["categories"], 2);
    // Built-in categories do not count; deleting one of its own makes room.
    let delete = json!({"mixins": [{"term": "a", "scheme": "http://acme.example/m#"}]});
    expect(&acme.json("DELETE", "/-/", Some(delete)).await, 200);
    expect(&acme.json("POST", "/-/", Some(mixins(&["c"]))).await, 200);
}

/// A kind of `n` attributes `a0`..`a{n-1}`, each with a description of `pad` bytes.
fn kind_of(term: &str, n: usize, pad: usize) -> Value {
    let attributes: serde_json::Map<String, Value> = (0..n)
        .map(|i| (format!("acme.{term}.a{i}"), json!({"type": "string", "description": "x".repeat(pad)})))
        .collect();
    json!({"kinds": [{"term": term, "scheme": "http://acme.example/k#", "location": format!("/{term}/"),
        "attributes": attributes}]})
}

/// Categories cost memory for as long as they exist: the attributes of one and the size of all
/// are bounded, on adding and on replacing, and a refused write adds nothing.
#[tokio::test]
async fn category_size_is_bounded() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", None).await;
    // The defaults already bound a category: 256 attributes.
    let r = acme.json("POST", "/-/", Some(kind_of("big", 257, 0))).await;
    expect_error(&r, 403, &["limit of 256 attributes per category", "http://acme.example/k#big defines 257"]);
    expect(&acme.json("POST", "/-/", Some(kind_of("big", 256, 0))).await, 200);

    let beta =
        server.create_tenant("beta", Some(json!({"max_category_attributes": 3, "max_catalog_bytes": 2000}))).await;
    expect_error(&beta.json("POST", "/-/", Some(kind_of("k", 4, 0))).await, 403, &["limit of 3 attributes"]);
    expect(&beta.json("POST", "/-/", Some(kind_of("k", 3, 0))).await, 200);
    // Replacing a category is held to the same bound.
    let r = beta.json("PUT", "/-/", Some(kind_of("k", 4, 0))).await;
    expect_error(&r, 403, &["limit of 3 attributes"]);
    // Size: three attributes of 200 bytes each fit once, not three times.
    expect(&beta.json("POST", "/-/", Some(kind_of("l", 3, 200))).await, 200);
    let r = beta.json("POST", "/-/", Some(kind_of("m", 3, 200))).await;
    expect_error(&r, 403, &["limit of 2000 bytes of category definitions"]);
    let r = beta.json("PUT", "/-/", Some(kind_of("k", 3, 400))).await;
    expect_error(&r, 403, &["limit of 2000 bytes"]);
    let listed = beta.get_ok("/-/").await.to_string();
    assert!(!listed.contains("acme.m.a0") && !listed.contains(&"x".repeat(400)), "nothing was added or replaced");
    assert!(listed.contains("acme.l.a2") && listed.contains("acme.k.a2"), "{listed}");
}

#[tokio::test]
async fn max_handlers() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", Some(json!({"max_handlers": 1}))).await;
    expect(&acme.upload("one", guests::COUNTER).await, 201);
    let r = acme.upload("two", guests::COUNTER).await;
    expect_error(&r, 403, &["tenant acme has reached its limit of 1 handlers"]);
    expect(&acme.get("/-/handlers/two").await, 404);
    // Replacing the one it has is no new handler.
    expect(&acme.upload("one", guests::COMPUTE).await, 200);
    expect(&acme.json("DELETE", "/-/handlers/one", None).await, 200);
    expect(&acme.upload("two", guests::COUNTER).await, 201);
}

#[tokio::test]
async fn max_handler_bytes() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let size = std::fs::metadata(guests::COUNTER).unwrap().len();
    let acme = server.create_tenant("acme", Some(json!({"max_handler_bytes": size - 1}))).await;
    let r = acme.upload("counter", guests::COUNTER).await;
    expect_error(&r, 413, &[&format!("tenant acme's limit of {} bytes", size - 1)]);
    expect(&acme.get("/-/handlers/counter").await, 404);
    // Another tenant (the server's limit) may upload it.
    let other = server.create_tenant("other", None).await;
    expect(&other.upload("counter", guests::COUNTER).await, 201);
    // Raised to the size: accepted.
    expect(&server.admin("PUT", "/-/admin/tenants/acme/limits", Some(json!({"max_handler_bytes": size}))).await, 200);
    expect(&acme.upload("counter", guests::COUNTER).await, 201);
}

#[tokio::test]
async fn handler_deadline_ms() {
    let server = TestServer::start_multi_tenant(|c| c.runtime.deadline = Duration::from_secs(5)).await;
    let acme = server.create_tenant("acme", Some(json!({"handler_deadline_ms": 100}))).await;
    kind_with_handler(&acme, "loop", guests::LOOP).await;
    let started = Instant::now();
    let r = acme.json("POST", "/loop/", Some(json!({"kind": "http://example.com/limits#loop", "id": "x"}))).await;
    let elapsed = started.elapsed();
    expect_error(&r, 504, &["100 ms"]);
    assert!(elapsed < Duration::from_secs(3), "stopped at the tenant's deadline, not the server's 5 s: {elapsed:?}");
    expect(&acme.get("/loop/x").await, 404);
}

#[tokio::test]
async fn handler_memory_mib() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", Some(json!({"handler_memory_mib": 2}))).await;
    let other = server.create_tenant("other", None).await;
    for (t, limit) in [(&acme, "2 MiB"), (&other, "32 MiB")] {
        kind_with_handler(t, "membomb", guests::MEMBOMB).await;
        let r =
            t.json("POST", "/membomb/", Some(json!({"kind": "http://example.com/limits#membomb", "id": "x"}))).await;
        expect_error(&r, 502, &[&format!("memory limit of {limit}")]);
        expect(&t.get("/membomb/x").await, 404);
    }
}

#[tokio::test]
async fn max_body_bytes() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", Some(json!({"max_body_bytes": 200}))).await;
    let body = json!({"kind": COMPUTE, "id": "big", "attributes": {"occi.compute.hostname": "x".repeat(250)}});
    let r = acme.json("POST", "/compute/", Some(body.clone())).await;
    expect_error(&r, 413, &["tenant acme's limit of 200 bytes"]);
    expect(&acme.get("/compute/big").await, 404);
    expect(&create(&acme, "small").await, 201);
    // The server's limit for a tenant without its own.
    let other = server.create_tenant("other", None).await;
    expect(&other.json("POST", "/compute/", Some(body)).await, 201);
}

#[tokio::test]
async fn requests_per_second() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", Some(json!({"requests_per_second": 2}))).await;
    let other = server.create_tenant("other", Some(json!({"requests_per_second": 2}))).await;
    let mut refused = None;
    for _ in 0..6 {
        let r = acme.get("/-/").await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        expect(&r, 200);
    }
    let r = refused.expect("a burst above 2 requests per second is refused");
    expect_error(&r, 429, &["tenant acme is over its limit of 2 requests per second"]);
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // The other tenant has its own budget.
    expect(&other.get("/-/").await, 200);
    // A refused write writes nothing (and an admitted one does).
    let mut outcomes = Vec::new();
    for i in 0..8 {
        let id = format!("x{i}");
        let status = create(&acme, &id).await.status;
        assert!(status == 201 || status == 429, "{status}");
        outcomes.push((id, status));
    }
    assert!(outcomes.iter().any(|(_, s)| *s == 429), "{outcomes:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (id, status) in outcomes {
        let expected = if status == 201 { 200 } else { 404 };
        let r = acme.get(&format!("/compute/{id}")).await;
        if r.status == 429 {
            tokio::time::sleep(Duration::from_millis(600)).await;
            expect(&acme.get(&format!("/compute/{id}")).await, expected);
        } else {
            expect(&r, expected);
        }
    }
}

#[tokio::test]
async fn limits_are_set_partially_and_checked() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let acme = server.create_tenant("acme", None).await;
    let limits = |v: Value| server.admin("PUT", "/-/admin/tenants/acme/limits", Some(v));
    let defaults = server.admin("GET", "/-/admin/tenants/acme/limits", None).await.json()["limits"].clone();
    assert_eq!(
        defaults,
        json!({"max_entities": 100000, "max_categories": 1000, "max_category_attributes": 256,
               "max_catalog_bytes": 4 << 20, "max_handlers": 32, "max_handler_bytes": 32 << 20,
               "handler_deadline_ms": 100, "handler_memory_mib": 32, "max_body_bytes": 1 << 20, "requests_per_second": 1000})
    );
    let r = limits(json!({"max_entities": 1, "max_handlers": 2})).await;
    expect(&r, 200);
    assert_eq!(r.json()["limits"]["max_entities"], 1);
    assert_eq!(r.json()["limits"]["max_handlers"], 2);
    assert_eq!(r.json()["limits"]["max_categories"], 1000, "untouched");
    // In effect at once.
    expect(&create(&acme, "one").await, 201);
    expect_error(&create(&acme, "two").await, 403, &["limit of 1 entities"]);
    // null: back to the default.
    let r = limits(json!({"max_entities": null})).await;
    assert_eq!(r.json()["limits"]["max_entities"], 100000);
    expect(&create(&acme, "two").await, 201);
    // Refused whole, nothing changed: an unknown name, a value out of range, above the server's.
    let before = server.admin("GET", "/-/admin/tenants/acme/limits", None).await.text;
    expect_error(&limits(json!({"max_handlers": 3, "max_entites": 5})).await, 400, &["max_entites"]);
    expect_error(&limits(json!({"handler_deadline_ms": 101})).await, 400, &["handler_deadline_ms", "100"]);
    expect_error(&limits(json!({"handler_memory_mib": 33})).await, 400, &["handler_memory_mib"]);
    expect_error(&limits(json!({"max_body_bytes": (1 << 20) + 1})).await, 400, &["max_body_bytes"]);
    expect_error(&limits(json!({"requests_per_second": 0})).await, 400, &["requests_per_second"]);
    expect_error(&limits(json!({"max_entities": "ten"})).await, 400, &["max_entities"]);
    expect_error(&limits(json!([1])).await, 400, &["object"]);
    assert_eq!(server.admin("GET", "/-/admin/tenants/acme/limits", None).await.text, before);
    expect(&server.admin("PUT", "/-/admin/tenants/nope/limits", Some(json!({"max_entities": 1}))).await, 404);
}

#[tokio::test]
async fn server_flags_give_the_defaults() {
    let server = TestServer::start_multi_tenant(|c| {
        c.tenant_defaults.max_entities = 1;
        c.max_body = 4096;
    })
    .await;
    let acme = server.create_tenant("acme", None).await;
    let limits = server.admin("GET", "/-/admin/tenants/acme/limits", None).await.json()["limits"].clone();
    assert_eq!((limits["max_entities"].clone(), limits["max_body_bytes"].clone()), (json!(1), json!(4096)));
    expect(&create(&acme, "one").await, 201);
    expect_error(&create(&acme, "two").await, 403, &["limit of 1 entities"]);
}
