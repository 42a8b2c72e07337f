//! Input a hostile tenant sends to confuse the server (issue: defects found probing from
//! outside): control characters in paths and link ends, locations at the top of Unicode, and a
//! pattern that tries to escape its anchors. Each is refused with a 400 that says what and
//! where, or handled exactly, and nothing else is touched.

use ocni_tests::{COMPUTE, NETWORK, NETWORKINTERFACE, TestServer, expect, expect_error};
use serde_json::json;

#[tokio::test]
async fn control_characters_in_paths_are_refused_and_reach_no_key() {
    let server = TestServer::start().await;
    // A NUL in a middle segment used to be stored, and `/v\0/l/1` fell under `/v`'s links.
    for path in ["/v%00/l/1", "/compute/a%00b", "/compute/x%0D%0AX-OCCI-Attribute:%20a"] {
        let r = server.json("PUT", path, Some(json!({"kind": COMPUTE}))).await;
        expect_error(&r, 400, &["control character"]);
    }
    expect(&server.json("PUT", "/e/1", Some(json!({"kind": COMPUTE}))).await, 201);
    let r = server.json("DELETE", "/e%00/1", None).await;
    expect_error(&r, 400, &["control character"]);
    expect(&server.get("/e/1").await, 200);
}

#[tokio::test]
async fn link_targets_with_line_breaks_are_refused_in_every_rendering() {
    let server = TestServer::start().await;
    expect(&server.json("PUT", "/compute/vm", Some(json!({"kind": COMPUTE}))).await, 201);
    expect(&server.json("PUT", "/network/n", Some(json!({"kind": NETWORK}))).await, 201);
    // JSON: a target carrying a forged attribute line.
    let forged = "http://elsewhere.example/n\r\nX-OCCI-Attribute: occi.compute.state=\"hacked\"";
    let body = json!({"kind": NETWORKINTERFACE, "source": "/compute/vm", "target": forged,
        "attributes": {"occi.networkinterface.mac": "02:00:00:00:00:01"}});
    let r = server.json("POST", "/networkinterface/", Some(body)).await;
    expect_error(&r, 400, &["control character"]);
    // text/plain: the same through a Link line's target is refused too.
    let text = "Category: compute; scheme=\"http://schemas.ogf.org/occi/infrastructure#\"; class=\"kind\"\n\
                Link: </network/n%0D%0AX-OCCI-Attribute: a=\"b\">; rel=\"http://schemas.ogf.org/occi/infrastructure#network\"\n";
    let r = server.send("POST", "/compute/", Some("text/plain"), Some("text/plain"), Some(text.to_string())).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Nothing was created, and the compute renders no forged line.
    let r = server.send("GET", "/compute/vm", Some("text/plain"), None, None).await;
    expect(&r, 200);
    assert!(!r.text.contains("hacked"), "{}", r.text);
    assert!(r.text.lines().all(|l| !l.chars().any(|c| c.is_control())), "{:?}", r.text);
}

#[tokio::test]
async fn locations_at_the_top_of_unicode_are_listed_and_deleted() {
    let server = TestServer::start().await;
    expect(&server.json("PUT", "/p/%F4%8F%BF%BF/x", Some(json!({"kind": COMPUTE}))).await, 201);
    expect(&server.json("PUT", "/q/x", Some(json!({"kind": COMPUTE}))).await, 201);
    let r = server.send("GET", "/p/", Some("text/uri-list"), None, None).await;
    expect(&r, 200);
    assert_eq!(r.text.lines().count(), 1, "{}", r.text);
    expect(&server.json("DELETE", "/p/", None).await, 200);
    assert_eq!(server.json("GET", "/p/%F4%8F%BF%BF/x", None).await.status, 404);
    expect(&server.get("/q/x").await, 200);
}

#[tokio::test]
async fn a_pattern_cannot_escape_its_anchors() {
    let server = TestServer::start().await;
    let kind = |pattern: &str| {
        json!({"kinds": [{"term": "p", "scheme": "http://example.com/x#", "location": "/p/",
            "attributes": {"x.name": {"type": "string", "pattern": pattern}}}]})
    };
    let r = server.json("POST", "/-/", Some(kind("a)|(?:.*"))).await;
    expect_error(&r, 400, &["x.name", "pattern"]);
    expect(&server.json("POST", "/-/", Some(kind("ab"))).await, 200);
    let entity = |v: &str| json!({"kind": "http://example.com/x#p", "attributes": {"x.name": v}});
    expect_error(&server.json("POST", "/p/", Some(entity("xaby"))).await, 400, &["x.name"]);
    expect(&server.json("POST", "/p/", Some(entity("ab"))).await, 201);
}
