//! What an OCCI client sends and what the protocol says it must get back: a Category filter on
//! the query interface answers exactly the named categories (GFD.185 3.4.1), their relatives
//! only when asked for (`?related=true`); a method the target does not allow is 405 with `Allow`
//! whatever the body or its media type (RFC 9110 15.5.6); every error answer is in the
//! rendering the client negotiated.

use ocni_tests::{ADMIN_TOKEN, COMPUTE, JSON, PYOCNI, Reply, TestServer, expect};
use serde_json::{Value, json};

const INFRA: &str = "http://schemas.ogf.org/occi/infrastructure#";
const COMPUTE_FILTER: &str = r#"compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#;
const START: &str = "http://schemas.ogf.org/occi/infrastructure/compute/action#start";
const RESOURCE: &str = "http://schemas.ogf.org/occi/core#resource";

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

/// Every value of a (possibly repeated, possibly comma-joined) text/occi header.
fn header_values(r: &Reply, name: &str) -> Vec<String> {
    r.headers.get_all(name).iter().flat_map(|v| split_values(v.to_str().unwrap())).collect()
}

/// Splits a header value at the commas outside quoted strings.
fn split_values(v: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in v.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The values of the `name:` lines of a text/plain body.
fn plain_values(r: &Reply, name: &str) -> Vec<String> {
    let prefix = format!("{name}: ");
    r.text.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect()
}

/// `scheme` + `term` of a rendered Category value.
fn category_id(value: &str) -> String {
    let term = value.split(';').next().unwrap().trim();
    let scheme = value.split("scheme=\"").nth(1).and_then(|s| s.split('"').next()).unwrap();
    format!("{scheme}{term}")
}

/// Every category id of an OCCI 1.2 JSON model.
fn json_ids(v: &Value) -> Vec<String> {
    ["kinds", "mixins", "actions"]
        .iter()
        .flat_map(|g| v[g].as_array().cloned().unwrap_or_default())
        .map(|c| format!("{}{}", c["scheme"].as_str().unwrap(), c["term"].as_str().unwrap()))
        .collect()
}

/// What the old answer to a compute filter held (the kind with what it refers to and what
/// refers to it): at least the kind, its parent and its actions, and nothing unrelated.
#[track_caller]
fn is_compute_with_relatives(ids: &[String]) {
    for want in [&format!("{INFRA}compute"), RESOURCE, START] {
        assert!(ids.iter().any(|i| i == want), "{want} missing from {ids:?}");
    }
    assert!(ids.len() > 3, "{ids:?}");
    assert!(!ids.iter().any(|i| i == &format!("{INFRA}storage") || i == &format!("{INFRA}network")), "{ids:?}");
}

// ------------------------------------------------------------- 3: Category filter on /-/

/// GFD.185 3.4.1: a `Category` request header naming compute answers the compute kind only,
/// as one complete Category header; `?related=true` answers it with its relatives.
#[tokio::test]
async fn text_occi_category_filter_answers_exactly_that_category() {
    let server = TestServer::start().await;
    let accept = [("Accept", "text/occi"), ("Category", COMPUTE_FILTER)];
    let r = raw(&server, "GET", "/-/", &accept, None).await;
    expect(&r, 200);
    assert_eq!(r.header("content-type"), Some("text/occi"));
    let cats = header_values(&r, "category");
    assert_eq!(cats.len(), 1, "{cats:#?}");
    assert!(cats[0].starts_with(&format!(r#"compute; scheme="{INFRA}"; class="kind"; title="#)), "{}", cats[0]);
    assert!(cats[0].contains(r#"location="/compute/""#) && cats[0].contains("actions="), "complete: {}", cats[0]);

    let r = raw(&server, "GET", "/-/?related=true", &accept, None).await;
    expect(&r, 200);
    is_compute_with_relatives(&header_values(&r, "category").iter().map(|c| category_id(c)).collect::<Vec<_>>());
}

/// The same filter as a text/plain body line.
#[tokio::test]
async fn text_plain_category_filter_answers_exactly_that_category() {
    let server = TestServer::start().await;
    let body = format!("Category: {COMPUTE_FILTER}\n");
    let r = server.send("GET", "/-/", Some("text/plain"), Some("text/plain"), Some(body.clone())).await;
    expect(&r, 200);
    let cats = plain_values(&r, "Category");
    assert_eq!(cats.len(), 1, "{}", r.text);
    assert_eq!(category_id(&cats[0]), format!("{INFRA}compute"));
    assert!(cats[0].contains(r#"location="/compute/""#), "complete: {}", cats[0]);

    let r = server.send("GET", "/-/?related=true", Some("text/plain"), Some("text/plain"), Some(body)).await;
    expect(&r, 200);
    is_compute_with_relatives(&plain_values(&r, "Category").iter().map(|c| category_id(c)).collect::<Vec<_>>());
}

/// A JSON answer to a Category header filter, and the JSON filter body: exactly the matches,
/// with `?related=true` their relatives too.
#[tokio::test]
async fn json_category_filters_answer_exactly_the_matches() {
    let server = TestServer::start().await;
    let r = raw(&server, "GET", "/-/", &[("Accept", JSON), ("Category", COMPUTE_FILTER)], None).await;
    expect(&r, 200);
    assert_eq!(json_ids(&r.json()), [format!("{INFRA}compute")]);
    let r = raw(&server, "GET", "/-/?related=true", &[("Accept", JSON), ("Category", COMPUTE_FILTER)], None).await;
    is_compute_with_relatives(&json_ids(&r.json()));

    let filter = json!({"kinds": [{"term": "compute", "scheme": INFRA}]});
    let r = server.json("GET", "/-/", Some(filter.clone())).await;
    expect(&r, 200);
    assert_eq!(json_ids(&r.json()), [format!("{INFRA}compute")]);
    let r = server.json("GET", "/-/?related=true", Some(filter)).await;
    expect(&r, 200);
    is_compute_with_relatives(&json_ids(&r.json()));
}

/// `related` is true or false; anything else is a client mistake.
#[tokio::test]
async fn related_takes_true_or_false() {
    let server = TestServer::start().await;
    let all = server.get("/-/").await;
    expect(&all, 200);
    let r = server.get("/-/?related=false").await;
    assert_eq!(json_ids(&r.json()), json_ids(&all.json()), "no filter: everything");
    let r = server.get("/-/?related=maybe").await;
    expect(&r, 400);
    assert!(r.error_message().contains("related"), "{}", r.text);
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
