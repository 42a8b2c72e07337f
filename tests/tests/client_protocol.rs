//! What an OCCI client sends and what the protocol says it must get back: a method the target
//! does not allow is 405 with `Allow` whatever the body or its media type (RFC 9110 15.5.6);
//! every error answer is in the rendering the client negotiated.

use ocni_tests::{ADMIN_TOKEN, COMPUTE, JSON, PYOCNI, Reply, TestServer, expect};
use serde_json::json;

/// A request with exactly these headers and body: no Content-Type unless given (the harness
/// adds one to every body).
async fn raw(server: &TestServer, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    let client = reqwest::Client::new();
    let mut req = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    Reply::read(req.send().await.expect("request reaches the server")).await
}

// ---------------------------------------------------------- 4: the method before the body

#[track_caller]
fn method_not_allowed(r: &Reply, allow: &str) {
    expect(r, 405);
    assert_eq!(r.header("allow"), Some(allow), "{:?}", r.headers);
}

/// PATCH with a body and no Content-Type is 405 (not 415), with the target's `Allow`.
#[tokio::test]
async fn patch_with_a_body_and_no_content_type_is_405() {
    let server = TestServer::start().await;
    expect(&server.json("PUT", "/compute/c1", Some(json!({"kind": COMPUTE}))).await, 201);
    let body = r#"{"attributes": {"occi.compute.cores": 2}}"#;
    let r = raw(&server, "PATCH", "/-/", &[("Accept", JSON)], Some(body)).await;
    method_not_allowed(&r, "GET, HEAD, POST, PUT, DELETE");
    assert!(r.error_message().contains("PATCH"), "{}", r.text);
    let r = raw(&server, "PATCH", "/compute/c1", &[("Accept", JSON)], Some(body)).await;
    method_not_allowed(&r, "GET, HEAD, PUT, POST, DELETE");
    assert!(server.get_ok("/compute/c1").await["attributes"].get("occi.compute.cores").is_none());
}

/// Every kind of target, whatever the body's media type or size: the Allow list of the target.
#[tokio::test]
async fn unsupported_methods_are_405_whatever_the_body() {
    let server = TestServer::start_configured(|c| c.max_body = 256).await;
    let define = json!({"mixins": [{"term": "gold", "scheme": "http://example.com/occi#", "location": "/gold/"}]});
    expect(&server.json("POST", "/-/", Some(define)).await, 200);
    let big = "x".repeat(1000);
    let cases = [
        ("PUT", "/compute/", "GET, HEAD, POST, DELETE"),
        ("PATCH", "/gold/", "GET, HEAD, POST, PUT, DELETE"),
        ("POST", "/nothing/here/", "GET, HEAD, DELETE"),
        ("PUT", "/", "GET, HEAD, POST, DELETE"),
        ("POST", "/-/handlers/", "GET, HEAD"),
        ("POST", "/-/handlers/h", "GET, HEAD, PUT, DELETE"),
    ];
    for (method, path, allow) in cases {
        for headers in [
            vec![("Accept", JSON)],
            vec![("Accept", JSON), ("Content-Type", "application/x-www-form-urlencoded")],
            vec![("Accept", JSON), ("Content-Type", "application/wasm")],
        ] {
            // A body over the limit too: the method is refused before the size.
            for body in ["kind=compute", big.as_str()] {
                let r = raw(&server, method, path, &headers, Some(body)).await;
                assert_eq!(r.status, 405, "{method} {path} {headers:?}: {}", r.text);
                assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
            }
        }
    }
    // An unsupported OCCI version or Accept does not hide the method either.
    let r = raw(&server, "PATCH", "/-/", &[("User-Agent", "x OCCI/9.9"), ("Accept", "image/png")], Some("x")).await;
    method_not_allowed(&r, "GET, HEAD, POST, PUT, DELETE");
}

/// Who the client is comes first: an unauthenticated PATCH is 401; the admin API's methods
/// are checked the same way.
#[tokio::test]
async fn authentication_comes_before_the_method() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let r = raw(&server, "PATCH", "/-/", &[("Accept", JSON)], Some("{}")).await;
    expect(&r, 401);
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = raw(&server, "PATCH", "/-/admin/tenants", &[("Authorization", &admin)], Some("{}")).await;
    method_not_allowed(&r, "GET, HEAD, POST");
    let r = raw(&server, "GET", "/-/admin/tenants/a/tokens/0f", &[("Authorization", &admin)], None).await;
    method_not_allowed(&r, "DELETE");
}

// ------------------------------------------------------ 5: errors in the negotiated rendering

/// text/occi: the error's Content-Type is text/occi, the message its body.
#[tokio::test]
async fn errors_in_text_occi_mode_are_text_occi() {
    let server = TestServer::start().await;
    let r = raw(&server, "GET", "/compute/nope", &[("Accept", "text/occi")], None).await;
    expect(&r, 404);
    assert_eq!(r.header("content-type"), Some("text/occi"));
    assert!(r.text.contains("/compute/nope") && r.text != "OK\n", "{}", r.text);
    // A 405 and a client mistake in a header too.
    let r = raw(&server, "PATCH", "/compute/", &[("Accept", "text/occi")], Some("x")).await;
    expect(&r, 405);
    assert_eq!(r.header("content-type"), Some("text/occi"));
    let r = raw(&server, "GET", "/-/", &[("Accept", "text/occi"), ("Category", "compute; scheme=")], None).await;
    expect(&r, 400);
    assert_eq!(r.header("content-type"), Some("text/occi"));
}

/// JSON in the pyOCNI dialect: the error's Content-Type names the dialect; OCCI 1.2 JSON keeps
/// its own.
#[tokio::test]
async fn errors_in_pyocni_mode_carry_the_dialect() {
    let server = TestServer::start().await;
    let r = server.py("GET", "/compute/nope", None).await;
    expect(&r, 404);
    assert_eq!(r.header("content-type"), Some(PYOCNI));
    assert!(r.error_message().contains("/compute/nope"), "{}", r.text);
    let r = server.json("GET", "/compute/nope", None).await;
    assert_eq!(r.header("content-type"), Some(JSON));
    assert!(r.error_message().contains("/compute/nope"), "{}", r.text);
}

/// text/uri-list: the error is a URI list with no URI, the message as `#` comments.
#[tokio::test]
async fn errors_in_uri_list_mode_are_comments() {
    let server = TestServer::start().await;
    let body = json!({"kind": COMPUTE, "attributes": {"occi.compute.cores": "two", "occi.compute.memory": "lots"}});
    let errors = [
        raw(&server, "GET", "/compute/nope", &[("Accept", "text/uri-list")], None).await,
        raw(&server, "PATCH", "/compute/", &[("Accept", "text/uri-list")], Some("x")).await,
        server.send("POST", "/compute/", Some("text/uri-list"), None, Some(body.to_string())).await,
    ];
    for (r, status) in errors.iter().zip([404, 405, 400]) {
        expect(r, status);
        assert_eq!(r.header("content-type"), Some("text/uri-list"), "{status}");
        assert!(!r.text.trim().is_empty(), "{status}: a message");
        // RFC 2483: lines starting with # are comments; a parser finds no URI here.
        for line in r.text.lines() {
            assert!(line.starts_with('#'), "{status}: {line:?} in {:?}", r.text);
        }
    }
    assert!(errors[0].text.contains("/compute/nope"), "{}", errors[0].text);
    assert!(errors[2].text.lines().count() >= 3, "message and details: {}", errors[2].text);
}

/// A failed negotiation keeps plain text, and the admin API answers JSON whatever is asked.
#[tokio::test]
async fn failed_negotiation_and_admin_errors_keep_their_renderings() {
    let server = TestServer::start().await;
    let r = raw(&server, "GET", "/compute/", &[("Accept", "image/png")], None).await;
    expect(&r, 406);
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"), "{:?}", r.headers);
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = raw(&server, "GET", "/-/admin/tenants/nobody", &[("Authorization", &admin), ("Accept", "text/occi")], None)
        .await;
    expect(&r, 404);
    assert!(r.header("content-type").unwrap_or_default().contains("json"), "{:?}", r.headers);
}
