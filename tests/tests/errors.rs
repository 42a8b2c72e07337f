//! Error behaviour over HTTP: malformed and unsupported bodies, unknown targets, methods a
//! target does not support, body and page limits, content negotiation, the OCCI version check,
//! the `Server` header and the shape of error bodies. No request here may end in a 5xx.

use ocni_tests::{COMPUTE, JSON, Reply, TestServer, expect, send_exactly};
use serde_json::{Value, json};

/// A `Server` header naming both OCCI versions.
#[track_caller]
fn server_header(r: &Reply) {
    let server = r.header("server").unwrap_or_else(|| panic!("no Server header: {:?}", r.headers));
    assert!(server.contains("OCCI/1.1") && server.contains("OCCI/1.2"), "Server header {server:?}");
}

/// Every answer but the deliberate 501: no server error, and the `Server` header.
#[track_caller]
fn check(r: &Reply) {
    assert!(r.status < 500, "server error {}: {}", r.status, r.text);
    server_header(r);
}

/// `expect` plus `check`.
#[track_caller]
fn status(r: &Reply, code: u16) {
    check(r);
    expect(r, code);
}

async fn create_compute(server: &TestServer, id: &str) {
    let r = server.json("PUT", &format!("/compute/{id}"), Some(json!({"kind": COMPUTE}))).await;
    status(&r, 201);
}

/// The error object of a JSON error body, checked for shape.
#[track_caller]
fn error_object(r: &Reply) -> Value {
    let v = r.json();
    let e = v.get("error").unwrap_or_else(|| panic!("no \"error\" member: {v}")).clone();
    assert_eq!(e["status"], r.status, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["details"].is_array(), "{v}");
    e
}

#[tokio::test]
async fn malformed_json_is_400_with_line_and_column() {
    let server = TestServer::start().await;
    let r = server.send("POST", "/compute/", Some(JSON), Some(JSON), Some("{\n  \"kind\": \n}".into())).await;
    status(&r, 400);
    let msg = r.error_message();
    assert!(msg.contains("JSON"), "{msg}");
    assert!(msg.contains("line 3") && msg.contains("column"), "{msg}");
    // Nothing was created.
    let list = server.send("GET", "/compute/", Some("text/uri-list"), None, None).await;
    status(&list, 200);
    assert_eq!(list.text.trim(), "", "{}", list.text);

    let r = server.send("POST", "/-/", Some(JSON), Some(JSON), Some("{\"kinds\": [}".into())).await;
    status(&r, 400);
    assert!(r.error_message().contains("line 1"), "{}", r.error_message());
}

#[tokio::test]
async fn unsupported_content_types_are_415() {
    let server = TestServer::start().await;
    let r = server
        .send("POST", "/compute/", Some(JSON), Some("application/x-www-form-urlencoded"), Some("kind=compute".into()))
        .await;
    status(&r, 415);
    assert!(r.error_message().contains("application/x-www-form-urlencoded"), "{}", r.error_message());

    let body = json!({"kind": COMPUTE, "id": "x"}).to_string();
    let r = send_exactly(&server, "POST", "/compute/", &[("Accept", JSON)], Some(&body)).await;
    status(&r, 415);
    assert!(r.error_message().contains("Content-Type"), "{}", r.error_message());
    status(&server.get("/compute/x").await, 404);

    // The same body with the right Content-Type is fine (and `application/json` is JSON too).
    let r = send_exactly(
        &server,
        "POST",
        "/compute/",
        &[("Accept", JSON), ("Content-Type", "application/json")],
        Some(&body),
    )
    .await;
    expect(&r, 201);
}

#[tokio::test]
async fn unknown_entities_are_404() {
    let server = TestServer::start().await;
    let r = server.get("/compute/nope").await;
    status(&r, 404);
    assert!(r.error_message().contains("/compute/nope"), "{}", r.error_message());
    status(&server.json("DELETE", "/compute/nope", None).await, 404);
    status(&server.json("POST", "/compute/nope", Some(json!({"kind": COMPUTE}))).await, 404);
    status(&server.json("POST", "/compute/nope?action=start", None).await, 404);
    status(&server.get("/not/a/place").await, 404);
}

/// A GET of one entity with a body is refused, also once its answer is cached (a cached answer
/// is served before anything else of the operation runs).
#[tokio::test]
async fn get_of_an_entity_with_a_body_is_400_also_when_its_answer_is_cached() {
    let server = TestServer::start().await;
    create_compute(&server, "c1").await;
    let with_body = || server.json("GET", "/compute/c1", Some(json!({"kind": COMPUTE})));
    status(&with_body().await, 400);
    // Twice without a body: the second is answered from the cache.
    status(&server.json("GET", "/compute/c1", None).await, 200);
    status(&server.json("GET", "/compute/c1", None).await, 200);
    let r = with_body().await;
    status(&r, 400);
    assert!(r.error_message().contains("takes no body"), "{}", r.error_message());
}

#[tokio::test]
async fn unknown_action_term_on_an_entity_is_400() {
    let server = TestServer::start().await;
    create_compute(&server, "c1").await;
    let r = server.json("POST", "/compute/c1?action=explode", None).await;
    status(&r, 400);
    assert!(r.error_message().contains("explode"), "{}", r.error_message());
    // A network action is not applicable to a compute either.
    let r = server.json("POST", "/compute/c1?action=up", None).await;
    status(&r, 400);
    let e = server.get("/compute/c1").await.json();
    assert_eq!(e["attributes"]["occi.compute.state"], "inactive", "{e}");
}

#[tokio::test]
async fn put_on_a_kind_collection_is_405_with_allow() {
    let server = TestServer::start().await;
    let r = server.json("PUT", "/compute/", Some(json!({"kind": COMPUTE}))).await;
    status(&r, 405);
    let allow = r.header("allow").unwrap_or_else(|| panic!("no Allow header: {:?}", r.headers));
    assert!(allow.contains("GET") && allow.contains("POST"), "Allow: {allow}");
    assert!(!allow.contains("PUT"), "Allow: {allow}");
    error_object(&r);
}

#[tokio::test]
async fn patch_on_an_entity_is_405_with_allow() {
    let server = TestServer::start().await;
    create_compute(&server, "c1").await;
    let r = server.json("PATCH", "/compute/c1", Some(json!({"attributes": {"occi.compute.cores": 2}}))).await;
    status(&r, 405);
    let allow = r.header("allow").unwrap_or_else(|| panic!("no Allow header: {:?}", r.headers));
    for m in ["GET", "PUT", "POST", "DELETE"] {
        assert!(allow.contains(m), "Allow: {allow}");
    }
    assert!(!allow.contains("PATCH"), "Allow: {allow}");
    // Unchanged.
    let e = server.get("/compute/c1").await.json();
    assert!(e["attributes"].get("occi.compute.cores").is_none(), "{e}");
}

#[tokio::test]
async fn post_on_an_unbound_path_is_405() {
    let server = TestServer::start().await;
    let r = server.json("POST", "/nothing/here/", Some(json!({"kind": COMPUTE}))).await;
    status(&r, 405);
    let allow = r.header("allow").unwrap_or_else(|| panic!("no Allow header: {:?}", r.headers));
    assert!(allow.contains("GET") && !allow.contains("POST"), "Allow: {allow}");
    // Nothing appeared below it.
    let list = server.send("GET", "/nothing/", Some("text/uri-list"), None, None).await;
    status(&list, 200);
    assert_eq!(list.text.trim(), "");
}

#[tokio::test]
async fn body_larger_than_the_limit_is_413() {
    let server = TestServer::start_configured(|c| c.max_body = 1024).await;

    let small = json!({"kind": COMPUTE, "id": "small", "title": "t"});
    status(&server.json("POST", "/compute/", Some(small)).await, 201);

    let big = json!({"kind": COMPUTE, "id": "big", "title": "x".repeat(2000)});
    let r = server.json("POST", "/compute/", Some(big)).await;
    status(&r, 413);
    assert!(r.error_message().contains("1024"), "{}", r.error_message());
    status(&server.get("/compute/big").await, 404);

    // Categories too.
    let big = json!({"mixins": [{"term": "m", "scheme": "http://example.com/x#", "location": "/m/",
                                 "title": "y".repeat(1500)}]});
    status(&server.json("POST", "/-/", Some(big)).await, 413);
}

#[tokio::test]
async fn unacceptable_accept_is_406() {
    let server = TestServer::start().await;
    create_compute(&server, "c1").await;
    let r = server.send("GET", "/compute/c1", Some("image/png"), None, None).await;
    status(&r, 406);
    assert!(!r.text.trim().is_empty());
    let r = server.send("GET", "/-/", Some("image/png"), None, None).await;
    status(&r, 406);
    // An unknown JSON dialect is not acceptable either.
    let r = server.send("GET", "/-/", Some("application/occi+json; dialect=klingon"), None, None).await;
    status(&r, 406);
}

#[tokio::test]
async fn occi_versions_above_1_2_are_501() {
    let server = TestServer::start().await;
    let r = send_exactly(&server, "GET", "/-/", &[("Accept", JSON), ("User-Agent", "foo OCCI/1.3")], None).await;
    expect(&r, 501);
    server_header(&r);
    assert!(r.error_message().contains("OCCI/1.3"), "{}", r.error_message());
    let r = send_exactly(&server, "GET", "/-/", &[("Accept", JSON), ("User-Agent", "foo OCCI/2.0")], None).await;
    expect(&r, 501);
    for ua in ["foo OCCI/1.2", "foo OCCI/1.1", "curl/8.0"] {
        let r = send_exactly(&server, "GET", "/-/", &[("Accept", JSON), ("User-Agent", ua)], None).await;
        check(&r);
        assert_eq!(r.status, 200, "User-Agent {ua:?}: {}", r.text);
    }
}

#[tokio::test]
async fn every_response_names_both_occi_versions() {
    let server = TestServer::start().await;
    create_compute(&server, "c1").await;
    let replies = [
        server.get("/-/").await,
        server.get("/compute/").await,
        server.get("/compute/c1").await,
        server.send("GET", "/compute/c1", None, None, None).await,
        server.send("HEAD", "/compute/c1", Some(JSON), None, None).await,
        server.get("/compute/nope").await,
        server.json("PUT", "/compute/", None).await,
        server.send("GET", "/-/", Some("image/png"), None, None).await,
        server.json("POST", "/compute/c1?action=start", None).await,
        server.json("DELETE", "/compute/c1", None).await,
        server.send("POST", "/compute/", Some(JSON), Some("text/html"), Some("<p>".into())).await,
    ];
    for r in &replies {
        check(r);
    }
    // The deliberate 501 of an unknown OCCI version names them too.
    let r = send_exactly(&server, "GET", "/-/", &[("User-Agent", "x OCCI/9.9")], None).await;
    expect(&r, 501);
    server_header(&r);
}

#[tokio::test]
async fn error_bodies_are_json_or_plain_text_as_accepted() {
    let server = TestServer::start().await;
    // JSON when the client accepts JSON (either dialect).
    for accept in [JSON, "application/occi+json; dialect=pyocni", "application/json"] {
        let r = server.send("GET", "/compute/nope", Some(accept), None, None).await;
        status(&r, 404);
        assert!(r.header("content-type").unwrap_or_default().contains("json"), "{:?}", r.headers);
        let e = error_object(&r);
        assert!(e["message"].as_str().unwrap().contains("/compute/nope"), "{e}");
    }
    // Details list every failure.
    let r = server
        .json(
            "POST",
            "/compute/",
            Some(json!({"kind": COMPUTE, "attributes": {"occi.compute.cores": "two", "occi.compute.memory": "lots"}})),
        )
        .await;
    status(&r, 400);
    let e = error_object(&r);
    let details = e["details"].as_array().unwrap();
    assert!(details.len() >= 2, "{e}");
    assert!(details.iter().any(|d| d.as_str().unwrap_or_default().contains("occi.compute.memory")), "{e}");

    // Plain text otherwise: text/plain, no Accept at all, or an Accept we cannot serve.
    for accept in [Some("text/plain"), None, Some("image/png")] {
        let r = server.send("GET", "/compute/nope", accept, None, None).await;
        check(&r);
        assert!(r.status == 404 || (accept == Some("image/png") && r.status == 406), "{accept:?}: {}", r.status);
        assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"), "{accept:?}: {:?}", r.headers);
        assert!(serde_json::from_str::<Value>(&r.text).is_err(), "{accept:?}: a JSON body: {}", r.text);
        assert!(!r.text.trim().is_empty());
        if r.status == 404 {
            assert!(r.text.contains("/compute/nope"), "{}", r.text);
        }
    }
    // A 405 error keeps its shape too.
    let r = server.send("PUT", "/compute/", Some("text/plain"), None, None).await;
    status(&r, 405);
    assert!(r.text.contains("PUT"), "{}", r.text);
}

#[tokio::test]
async fn head_on_an_entity_has_no_body() {
    let server = TestServer::start().await;
    create_compute(&server, "c1").await;
    let get = server.get("/compute/c1").await;
    status(&get, 200);
    let head = server.send("HEAD", "/compute/c1", Some(JSON), None, None).await;
    status(&head, 200);
    assert_eq!(head.text, "", "HEAD has a body");
    assert_eq!(head.header("content-type"), get.header("content-type"));
    if let Some(len) = head.header("content-length") {
        assert_eq!(len, get.text.len().to_string(), "HEAD Content-Length differs from GET's body");
    }
    let head = server.send("HEAD", "/compute/nope", Some(JSON), None, None).await;
    status(&head, 404);
    assert_eq!(head.text, "");
}

#[tokio::test]
async fn page_limits_are_checked() {
    let server = TestServer::start().await;
    let r = server.get("/compute/?page=0").await;
    status(&r, 400);
    assert!(r.error_message().contains("page"), "{}", r.error_message());
    status(&server.get("/compute/?page=x").await, 400);
    status(&server.get("/compute/?number=0").await, 400);
    let r = server.get("/compute/?number=1001").await;
    status(&r, 413);
    assert!(r.error_message().contains("1000"), "{}", r.error_message());
    status(&server.get("/compute/?page=1&number=1000").await, 200);
}

/// The ids of the resources of an OCCI 1.2 collection (absent group: none).
fn resource_ids(v: &Value) -> Vec<String> {
    v.get("resources")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|r| r["id"].as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn pagination_pages_in_location_order() {
    let server = TestServer::start().await;
    for id in ["e4", "e2", "e5", "e1", "e3"] {
        create_compute(&server, id).await;
    }
    let all = server.get("/compute/").await;
    status(&all, 200);
    assert_eq!(resource_ids(&all.json()), ["e1", "e2", "e3", "e4", "e5"]);

    let r = server.get("/compute/?page=2&number=2").await;
    status(&r, 200);
    assert_eq!(resource_ids(&r.json()), ["e3", "e4"], "{}", r.text);
    let r = server.get("/compute/?page=3&number=2").await;
    status(&r, 200);
    assert_eq!(resource_ids(&r.json()), ["e5"], "{}", r.text);
    let r = server.get("/compute/?page=4&number=2").await;
    status(&r, 200);
    assert!(resource_ids(&r.json()).is_empty(), "{}", r.text);
    assert!(r.json().get("links").is_none(), "{}", r.text);

    // The same pages as a location list.
    let r = server.send("GET", "/compute/?page=2&number=2", Some("text/uri-list"), None, None).await;
    status(&r, 200);
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.text);
    assert!(lines[0].ends_with("/compute/e3") && lines[1].ends_with("/compute/e4"), "{}", r.text);
    let r = server.send("GET", "/compute/?page=4&number=2", Some("text/uri-list"), None, None).await;
    status(&r, 200);
    assert_eq!(r.text.trim(), "");
}
