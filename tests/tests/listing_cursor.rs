//! Cursor paging (`continue`) through collections in every rendering, its refusals, and
//! equality filters answered by the attribute index: the same as a scan.

use ocni_tests::{COMPUTE, JSON, NETWORK, PYOCNI, Reply, TestServer, expect, expect_error, validate_occi_json};
use serde_json::{Value, json};

const RENDERINGS: [&str; 5] = [JSON, PYOCNI, "text/plain", "text/occi", "text/uri-list"];

/// The ids (last path segments) a listing answer holds, in order.
fn ids(r: &Reply, accept: &str) -> Vec<String> {
    let last = |u: &str| u.trim().rsplit('/').next().unwrap().to_string();
    match accept {
        JSON => {
            let v = r.json();
            validate_occi_json("entity-collection", &v).unwrap_or_else(|e| panic!("{e}: {v}"));
            ["resources", "links"]
                .iter()
                .flat_map(|k| v[k].as_array().cloned().unwrap_or_default())
                .map(|e| e["id"].as_str().unwrap().to_string())
                .collect()
        }
        PYOCNI => r.json()["X-OCCI-Location"].as_array().unwrap().iter().map(|u| last(u.as_str().unwrap())).collect(),
        "text/occi" => r
            .headers
            .get_all("x-occi-location")
            .iter()
            .flat_map(|v| v.to_str().unwrap().split(',').map(last).collect::<Vec<_>>())
            .collect(),
        "text/plain" => r.text.lines().filter_map(|l| l.strip_prefix("X-OCCI-Location:")).map(last).collect(),
        _ => r.text.lines().map(last).collect(),
    }
}

/// The path and query of the `Link: rel="next"` of an answer.
fn next(server: &TestServer, r: &Reply) -> Option<String> {
    let link = r.header("link")?;
    let url = link.strip_prefix('<')?.strip_suffix(">; rel=\"next\"")?;
    Some(url.strip_prefix(&server.base).unwrap_or_else(|| panic!("{url}")).to_string())
}

/// Follows `Link: rel="next"` from `first` to the end; returns the ids and the pages' sizes.
async fn walk(server: &TestServer, first: &str, accept: &str, filter: Option<&str>) -> (Vec<String>, Vec<usize>) {
    let (mut all, mut sizes) = (Vec::new(), Vec::new());
    let mut path = Some(first.to_string());
    while let Some(p) = path {
        let ct = filter.map(|f| if f.starts_with('{') { JSON } else { "text/plain" });
        let r = server.send("GET", &p, Some(accept), ct, filter.map(str::to_string)).await;
        expect(&r, 200);
        let page = ids(&r, accept);
        sizes.push(page.len());
        all.extend(page);
        path = next(server, &r);
        if let Some(p) = &path {
            assert!(p.contains("continue=") && !p.contains("page="), "{p}");
            if accept == PYOCNI {
                let token = p.split("continue=").nth(1).unwrap().split('&').next().unwrap();
                assert_eq!(r.json()["continue"], token, "the pyOCNI body carries the token");
            }
        } else if accept == PYOCNI {
            assert!(r.json().get("continue").is_none(), "no token on the last page");
        }
        assert!(sizes.len() < 100, "the walk ends");
    }
    (all, sizes)
}

async fn create(server: &TestServer, kind: &str, body: Value) {
    expect(
        &server
            .json("POST", "/", Some(json!({"kind": kind, "attributes": body["attributes"], "id": body["id"]})))
            .await,
        201,
    );
}

#[tokio::test]
async fn cursor_pages_walk_collections_in_every_rendering() {
    let server = TestServer::start_configured(|c| c.max_page_size = 4).await;
    let computes: Vec<Value> = (0..11).map(|i| json!({"kind": COMPUTE, "id": format!("c{i:02}")})).collect();
    expect(&server.json("POST", "/compute/", Some(json!({"resources": computes}))).await, 201);
    for i in 0..3 {
        create(&server, NETWORK, json!({"id": format!("n{i}"), "attributes": {}})).await;
    }
    let every_compute: Vec<String> = (0..11).map(|i| format!("c{i:02}")).collect();
    let mut everything = every_compute.clone();
    everything.extend((0..3).map(|i| format!("n{i}")));
    for accept in RENDERINGS {
        // The server's page size (no number): pages of 4.
        let (got, sizes) = walk(&server, "/compute/", accept, None).await;
        assert_eq!(got, every_compute, "{accept}");
        assert_eq!(sizes, [4, 4, 3], "{accept}");
        let (got, sizes) = walk(&server, "/compute/?number=3", accept, None).await;
        assert_eq!(got, every_compute, "{accept}");
        assert_eq!(sizes, [3, 3, 3, 2], "{accept}");
        // An unbound path lists every kind's entities below it.
        let (mut got, _) = walk(&server, "/?number=4", accept, None).await;
        got.sort();
        assert_eq!(got, everything, "{accept}");
        // A page that ends the collection exactly has a next link whose page is empty.
        let (got, sizes) = walk(&server, "/network/?number=3", accept, None).await;
        assert_eq!((got.len(), sizes), (3, vec![3]), "{accept}");
    }
    // page= keeps GFD.223's offset paging, and its links.
    let r = server.send("GET", "/compute/?page=2&number=3", Some("text/uri-list"), None, None).await;
    assert_eq!(ids(&r, "text/uri-list"), ["c03", "c04", "c05"]);
    assert_eq!(next(&server, &r).as_deref(), Some("/compute/?page=3&number=3"));
}

/// A cursor is a position: entities created behind it are not listed, those ahead are; none
/// is listed twice or missed, and a deleted position still continues after it.
#[tokio::test]
async fn cursors_hold_across_concurrent_writes() {
    let server = TestServer::start().await;
    for i in [10, 20, 30, 40, 50, 60] {
        create(&server, COMPUTE, json!({"id": format!("c{i}"), "attributes": {}})).await;
    }
    let r = server.send("GET", "/compute/?number=2", Some("text/uri-list"), None, None).await;
    assert_eq!(ids(&r, "text/uri-list"), ["c10", "c20"]);
    let second = next(&server, &r).unwrap();
    create(&server, COMPUTE, json!({"id": "c15", "attributes": {}})).await;
    create(&server, COMPUTE, json!({"id": "c35", "attributes": {}})).await;
    expect(&server.json("DELETE", "/compute/c20", None).await, 200);
    let (rest, _) = walk(&server, &second, "text/uri-list", None).await;
    assert_eq!(rest, ["c30", "c35", "c40", "c50", "c60"]);
}

#[tokio::test]
async fn bad_tokens_are_refused_and_say_why() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let a = server.create_tenant("a", None).await;
    let b = server.create_tenant("b", None).await;
    for t in [&a, &b] {
        for i in 0..3 {
            expect(&t.json("PUT", &format!("/compute/c{i}"), Some(json!({"kind": COMPUTE}))).await, 201);
            expect(&t.json("PUT", &format!("/network/n{i}"), Some(json!({"kind": NETWORK}))).await, 201);
        }
    }
    let r = a.send("GET", "/compute/?number=1", Some("text/uri-list"), None, None).await;
    let link = next(&server, &r).unwrap();
    let token = link.split("continue=").nth(1).unwrap().split('&').next().unwrap().to_string();
    // The token works for its listing, as tenant a.
    let r = a.send("GET", &link, Some("text/uri-list"), None, None).await;
    assert_eq!(ids(&r, "text/uri-list"), ["c1"]);
    for (who, path, body) in [
        (&b, format!("/compute/?continue={token}"), None),
        (&a, format!("/network/?continue={token}"), None),
        (&a, format!("/?continue={token}"), None),
        (&a, format!("/compute/?continue={token}"), Some(json!({"attributes": {"occi.core.title": "x"}}))),
    ] {
        let r = who.send("GET", &path, Some(JSON), None, body.map(|b| b.to_string())).await;
        expect_error(&r, 400, &["continue token does not belong to this listing"]);
    }
    // A changed token (another position with the same MAC) and made-up ones.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let r = a.get(&format!("/compute/?continue={forged}")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    for junk in ["x", "%00", "AQID", "....", "c29tZXRoaW5nIHRoYXQgaXMgbG9uZyBlbm91Z2ggdG8gcGFzcw"] {
        expect_error(&a.get(&format!("/compute/?continue={junk}")).await, 400, &["not a continue token"]);
    }
    expect_error(&a.get(&format!("/compute/?continue={token}&page=2")).await, 400, &["page and continue"]);
    expect_error(&a.get("/compute/?continue=").await, 400, &["continue"]);
}

/// The attributes that the built-ins mark indexed (title, hostname, state) and one that a
/// tenant's mixin marks (after entities with it exist) filter to exactly what a scan finds:
/// the entities a client-side filter of the whole collection finds, through cursor pages, in
/// the seed's JSON filter and in X-OCCI-Attribute filters.
#[tokio::test]
async fn indexed_filters_answer_what_a_scan_does() {
    let server = TestServer::start_configured(|c| c.max_page_size = 3).await;
    let mixin = |indexed: bool| {
        json!({"mixins": [{"term": "paint", "scheme": "http://example.com/x#", "location": "/paint/",
            "applies": [COMPUTE],
            "attributes": {"ex.colour": {"type": "string", "mutable": true, "required": false, "indexed": indexed}}}]})
    };
    expect(&server.json("POST", "/-/", Some(mixin(false))).await, 200);
    let colours = ["red", "blue", "green"];
    let resources: Vec<Value> = (0..40)
        .map(|i| {
            json!({"kind": COMPUTE, "id": format!("c{i:02}"), "mixins": ["http://example.com/x#paint"],
                "attributes": {"occi.core.title": format!("t{}", i % 7), "occi.compute.hostname": format!("h{}", i % 3),
                    "occi.compute.cores": i % 4 + 1, "ex.colour": colours[i % 3]}})
        })
        .collect();
    expect(&server.json("POST", "/compute/", Some(json!({"resources": resources}))).await, 201);
    let all = server.get_ok("/compute/?number=3").await;
    assert_eq!(all["resources"].as_array().unwrap().len(), 3);
    // The whole collection, by pages, to filter here.
    let mut every = Vec::new();
    let mut path = Some("/compute/".to_string());
    while let Some(p) = path {
        let r = server.get(&p).await;
        every.extend(r.json()["resources"].as_array().cloned().unwrap_or_default());
        path = next(&server, &r);
    }
    assert_eq!(every.len(), 40);
    let by_client = |name: &str, want: &Value| -> Vec<String> {
        every
            .iter()
            .filter(|e| e["attributes"][name] == *want || (name == "occi.core.title" && e["title"] == *want))
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let cases = [
        ("occi.core.title", json!("t3")),
        ("occi.compute.hostname", json!("h1")),
        ("occi.compute.state", json!("inactive")),
        ("occi.compute.cores", json!(2)),
        ("ex.colour", json!("green")),
    ];
    for marked in [false, true] {
        if marked {
            // Marked after the entities exist: the category write indexes them.
            expect(&server.json("PUT", "/-/", Some(mixin(true))).await, 200);
        }
        for (name, want) in &cases {
            let mut expected = by_client(name, want);
            if *name == "occi.compute.state" {
                expected = every.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
            }
            assert!(!expected.is_empty(), "{name}");
            let filter = json!({"attributes": {*name: want}}).to_string();
            for accept in [JSON, "text/uri-list"] {
                let (got, _) = walk(&server, "/compute/", accept, Some(&filter)).await;
                assert_eq!(got, expected, "{name}={want} marked={marked} {accept}");
            }
            let text = format!("X-OCCI-Attribute: {name}={want}\n");
            let (got, _) = walk(&server, "/compute/?number=2", "text/plain", Some(&text)).await;
            assert_eq!(got, expected, "{text}");
            // Offset pages of the same filter.
            let r = server
                .send("GET", "/compute/?page=2&number=2", Some("text/uri-list"), None, Some(filter.clone()))
                .await;
            assert_eq!(
                ids(&r, "text/uri-list"),
                expected.iter().skip(2).take(2).cloned().collect::<Vec<_>>(),
                "{name}"
            );
            // On the mixin's collection and the unbound root too.
            let (got, _) = walk(&server, "/paint/", "text/uri-list", Some(&filter)).await;
            assert_eq!(got, expected, "mixin collection {name}");
            let (got, _) = walk(&server, "/", "text/uri-list", Some(&filter)).await;
            assert_eq!(got, expected, "root {name}");
        }
    }
    // The pyOCNI rendering of the mixin says the attribute is indexed.
    let r = server.py("GET", "/-/", None).await;
    assert!(r.text.contains("\"indexed\":true"), "{}", r.text);
}
