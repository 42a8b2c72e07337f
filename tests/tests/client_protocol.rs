//! What an OCCI client sends and what the protocol says it must get back, for four rules a
//! client depends on: a Category filter on the query interface answers exactly the named
//! categories (GFD.185 3.4.1), their relatives only when asked for (`?related=true`); a method
//! the target does not allow is 405 with `Allow` whatever the body or its media type (RFC 9110
//! 15.5.6); every error answer is in the rendering the client negotiated; and both ends of a
//! link are rendered absolute, in every rendering, and accepted back as they were rendered.

use ocni_tests::{
    ADMIN_TOKEN, COMPUTE, JSON, NETWORK, NETWORKINTERFACE, PYOCNI, Reply, TestServer, expect, linked, raw_request,
    send_exactly,
};
use serde_json::{Value, json};

const INFRA: &str = "http://schemas.ogf.org/occi/infrastructure#";
const COMPUTE_FILTER: &str = r#"compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind""#;
const START: &str = "http://schemas.ogf.org/occi/infrastructure/compute/action#start";
const RESOURCE: &str = "http://schemas.ogf.org/occi/core#resource";

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
    let r = send_exactly(&server, "GET", "/-/", &accept, None).await;
    expect(&r, 200);
    assert_eq!(r.header("content-type"), Some("text/occi"));
    let cats = header_values(&r, "category");
    assert_eq!(cats.len(), 1, "{cats:#?}");
    assert!(cats[0].starts_with(&format!(r#"compute; scheme="{INFRA}"; class="kind"; title="#)), "{}", cats[0]);
    assert!(cats[0].contains(r#"location="/compute/""#) && cats[0].contains("actions="), "complete: {}", cats[0]);

    let r = send_exactly(&server, "GET", "/-/?related=true", &accept, None).await;
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
    let r = send_exactly(&server, "GET", "/-/", &[("Accept", JSON), ("Category", COMPUTE_FILTER)], None).await;
    expect(&r, 200);
    assert_eq!(json_ids(&r.json()), [format!("{INFRA}compute")]);
    let r =
        send_exactly(&server, "GET", "/-/?related=true", &[("Accept", JSON), ("Category", COMPUTE_FILTER)], None).await;
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
    let r = send_exactly(&server, "PATCH", "/-/", &[("Accept", JSON)], Some(body)).await;
    method_not_allowed(&r, "GET, HEAD, POST, PUT, DELETE");
    assert!(r.error_message().contains("PATCH"), "{}", r.text);
    let r = send_exactly(&server, "PATCH", "/compute/c1", &[("Accept", JSON)], Some(body)).await;
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
                let r = send_exactly(&server, method, path, &headers, Some(body)).await;
                assert_eq!(r.status, 405, "{method} {path} {headers:?}: {}", r.text);
                assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
            }
        }
    }
    // An unsupported OCCI version or Accept does not hide the method either.
    let r = send_exactly(&server, "PATCH", "/-/", &[("User-Agent", "x OCCI/9.9"), ("Accept", "image/png")], Some("x"))
        .await;
    method_not_allowed(&r, "GET, HEAD, POST, PUT, DELETE");
}

/// Who the client is comes first: an unauthenticated PATCH is 401; the admin API's methods
/// are checked the same way.
#[tokio::test]
async fn authentication_comes_before_the_method() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let r = send_exactly(&server, "PATCH", "/-/", &[("Accept", JSON)], Some("{}")).await;
    expect(&r, 401);
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = send_exactly(&server, "PATCH", "/-/admin/tenants", &[("Authorization", &admin)], Some("{}")).await;
    method_not_allowed(&r, "GET, HEAD, POST");
    let r = send_exactly(&server, "GET", "/-/admin/tenants/a/tokens/0f", &[("Authorization", &admin)], None).await;
    method_not_allowed(&r, "DELETE");
}

// ------------------------------------------------------ 5: errors in the negotiated rendering

/// text/occi: the error's Content-Type is text/occi, the message its body.
#[tokio::test]
async fn errors_in_text_occi_mode_are_text_occi() {
    let server = TestServer::start().await;
    let r = send_exactly(&server, "GET", "/compute/nope", &[("Accept", "text/occi")], None).await;
    expect(&r, 404);
    assert_eq!(r.header("content-type"), Some("text/occi"));
    assert!(r.text.contains("/compute/nope") && r.text != "OK\n", "{}", r.text);
    // A 405 and a client mistake in a header too.
    let r = send_exactly(&server, "PATCH", "/compute/", &[("Accept", "text/occi")], Some("x")).await;
    expect(&r, 405);
    assert_eq!(r.header("content-type"), Some("text/occi"));
    let r =
        send_exactly(&server, "GET", "/-/", &[("Accept", "text/occi"), ("Category", "compute; scheme=")], None).await;
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
        send_exactly(&server, "GET", "/compute/nope", &[("Accept", "text/uri-list")], None).await,
        send_exactly(&server, "PATCH", "/compute/", &[("Accept", "text/uri-list")], Some("x")).await,
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
    let r = send_exactly(&server, "GET", "/compute/", &[("Accept", "image/png")], None).await;
    expect(&r, 406);
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"), "{:?}", r.headers);
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = send_exactly(
        &server,
        "GET",
        "/-/admin/tenants/nobody",
        &[("Authorization", &admin), ("Accept", "text/occi")],
        None,
    )
    .await;
    expect(&r, 404);
    assert!(r.header("content-type").unwrap_or_default().contains("json"), "{:?}", r.headers);
}

// ------------------------------------------------------------ 7: one form for link ends

/// Both ends absolute, `base` before their paths, in every rendering of the link, of its
/// source's inline links, and of listings.
async fn both_ends_absolute(server: &TestServer, base: &str) {
    let (src, tgt) = (format!("{base}/compute/vm"), format!("{base}/network/net"));
    // OCCI 1.2 JSON: the link, the resource's inline link, both listings.
    let link = server.get_ok("/networkinterface/nic").await;
    assert_eq!((&link["source"]["location"], &link["target"]["location"]), (&json!(src), &json!(tgt)), "{link}");
    let vm = server.get_ok("/compute/vm").await;
    let inline = &vm["links"][0];
    assert_eq!((&inline["source"]["location"], &inline["target"]["location"]), (&json!(src), &json!(tgt)), "{vm}");
    let listed = server.get_ok("/networkinterface/").await;
    let l = &listed["links"][0];
    assert_eq!((&l["source"]["location"], &l["target"]["location"]), (&json!(src), &json!(tgt)), "{listed}");
    let listed = server.get_ok("/compute/").await;
    let l = &listed["resources"][0]["links"][0];
    assert_eq!((&l["source"]["location"], &l["target"]["location"]), (&json!(src), &json!(tgt)), "{listed}");
    // pyOCNI JSON.
    let py = server.py("GET", "/networkinterface/nic", None).await.json();
    assert_eq!((&py["links"][0]["source"], &py["links"][0]["target"]), (&json!(src), &json!(tgt)), "{py}");
    let py = server.py("GET", "/compute/vm", None).await.json();
    let l = &py["resources"][0]["links"][0];
    assert_eq!((&l["source"], &l["target"]), (&json!(src), &json!(tgt)), "{py}");
    // text/plain and text/occi: the link's attributes and the resource's Link.
    let source_attr = format!(r#"occi.core.source="{src}""#);
    let target_attr = format!(r#"occi.core.target="{tgt}""#);
    let r = server.send("GET", "/networkinterface/nic", Some("text/plain"), None, None).await;
    let attrs = plain_values(&r, "X-OCCI-Attribute");
    assert!(attrs.contains(&source_attr) && attrs.contains(&target_attr), "{}", r.text);
    let r = server.send("GET", "/networkinterface/nic", Some("text/occi"), None, None).await;
    let attrs = header_values(&r, "x-occi-attribute");
    assert!(attrs.contains(&source_attr) && attrs.contains(&target_attr), "{:?}", r.headers);
    let r = server.send("GET", "/compute/vm", Some("text/plain"), None, None).await;
    assert!(plain_values(&r, "Link").iter().any(|l| l.starts_with(&format!("<{tgt}>; "))), "{}", r.text);
    let r = server.send("GET", "/compute/vm", Some("text/occi"), None, None).await;
    assert!(header_values(&r, "link").iter().any(|l| l.starts_with(&format!("<{tgt}>; "))), "{:?}", r.headers);
}

/// Without `--base-url`, ends are absolute under the request's Host.
#[tokio::test]
async fn link_ends_are_absolute_in_every_rendering() {
    let server = TestServer::start().await;
    linked(&server).await;
    both_ends_absolute(&server, &server.base).await;
}

/// With `--base-url`, under it.
#[tokio::test]
async fn link_ends_are_absolute_under_the_base_url() {
    let server = TestServer::start_configured(|c| c.base_url = Some("https://occi.example.com".into())).await;
    linked(&server).await;
    both_ends_absolute(&server, "https://occi.example.com").await;
}

/// A client sends back the ends as it read them: accepted on create, replace and update, in
/// JSON and text/plain, and stored as the same link (its ends still local).
#[tokio::test]
async fn absolute_link_ends_are_accepted_back() {
    let server = TestServer::start().await;
    linked(&server).await;
    let read = server.get_ok("/networkinterface/nic").await;
    // Replace it with its own rendering.
    let mut again = read.clone();
    again.as_object_mut().unwrap().remove("actions");
    expect(&server.json("PUT", "/networkinterface/nic", Some(again)).await, 201);
    // Update, with the ends as read.
    let update = json!({"kind": NETWORKINTERFACE, "source": read["source"], "target": read["target"],
                        "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:66"}});
    expect(&server.json("POST", "/networkinterface/nic", Some(update)).await, 201);
    // Create another the same way, in text/plain.
    let body = format!(
        "Category: networkinterface; scheme=\"{INFRA}\"; class=\"kind\"\nX-OCCI-Attribute: occi.core.source=\"{}\"\nX-OCCI-Attribute: occi.core.target=\"{}\"\nX-OCCI-Attribute: occi.networkinterface.mac=\"00:11:22:33:44:77\"\n",
        server.url("/compute/vm"),
        server.url("/network/net")
    );
    let r = server.send("PUT", "/networkinterface/nic2", Some("text/plain"), Some("text/plain"), Some(body)).await;
    expect(&r, 201);
    for nic in ["/networkinterface/nic", "/networkinterface/nic2"] {
        let link = server.get_ok(nic).await;
        assert_eq!(link["source"], json!({"location": server.url("/compute/vm"), "kind": COMPUTE}), "{link}");
        assert_eq!(link["target"], json!({"location": server.url("/network/net"), "kind": NETWORK}), "{link}");
    }
    assert_eq!(server.get_ok("/compute/vm").await["links"].as_array().map(Vec::len), Some(2));
    // A filter by an end as rendered finds the link.
    let filter = json!({"links": [{"target": server.url("/network/net")}]});
    let r = server.send("GET", "/networkinterface/", Some("text/uri-list"), None, Some(filter.to_string())).await;
    expect(&r, 200);
    assert_eq!(r.text.lines().count(), 2, "{}", r.text);
    // The target goes with its resource, as for a target given as a path.
    expect(&server.json("DELETE", "/network/net", None).await, 200);
    assert_eq!(server.get("/networkinterface/nic").await.status, 404);
}

/// An end outside the server is rendered as given, next to an absolute source.
#[tokio::test]
async fn a_foreign_target_is_rendered_as_given() {
    let server = TestServer::start().await;
    expect(&server.json("PUT", "/compute/vm", Some(json!({"kind": COMPUTE}))).await, 201);
    let foreign = "http://elsewhere.example/network/n";
    let link = json!({"kind": NETWORKINTERFACE, "source": "/compute/vm", "target": foreign,
                      "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}});
    expect(&server.json("PUT", "/networkinterface/out", Some(link)).await, 201);
    let link = server.get_ok("/networkinterface/out").await;
    assert_eq!(link["source"]["location"], server.url("/compute/vm"), "{link}");
    assert_eq!(link["target"]["location"], foreign, "{link}");
    let r = raw_request(
        &server,
        "GET /networkinterface/out HTTP/1.1\r\nHost: occi.example.org:81\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    expect(&r, 200);
    let attrs = plain_values(&r, "X-OCCI-Attribute");
    assert!(attrs.contains(&r#"occi.core.source="http://occi.example.org:81/compute/vm""#.to_string()), "{}", r.text);
    assert!(attrs.contains(&format!(r#"occi.core.target="{foreign}""#)), "{}", r.text);
}
