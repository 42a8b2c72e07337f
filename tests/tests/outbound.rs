//! Outbound HTTP by capability (WIT `outbound`, since 0.1.2), end to end: the `fetcher` guest
//! fetches a URL on create, against loopback HTTP servers of the test's own. An allowed request
//! succeeds; a forbidden origin, a redirect to one, a private address reached through a name,
//! too many requests and too many bytes are refused: the guest sees the error (and refuses the
//! create with it), the client's request gets it as its answer, the forbidden server is never
//! reached, and the handler's log names the origin. The allow-list is checked at upload.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ocni_tests::{JSON, Reply, TestServer, expect, expect_error, guests};
use serde_json::{Value, json};

const FETCH: &str = "http://example.com/occi#fetch";

/// A loopback HTTP server: `/hello` answers a greeting, `/big` 2000 bytes, `/whoami` the
/// `Authorization` it got, `/redirect?to=URL`
/// a 302 to URL, `/slow` after 3 s; anything else 404. Counts the requests it got.
struct Backend {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Backend {
    async fn start() -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        answer(req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend { addr, hits }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let header = |name: &str| req.headers().get(name).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    let (host, auth) = (header("host"), header("authorization"));
    let sent = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
    let reply =
        |status: u16, body: String| Response::builder().status(status).body(Full::new(Bytes::from(body))).unwrap();
    Ok(match path.as_str() {
        "/hello" => reply(200, format!("hello from {host}, {sent} bytes received")),
        "/big" => reply(200, "y".repeat(2000)),
        "/whoami" => reply(200, format!("authorization: {auth:?}")),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            reply(200, "late".into())
        }
        "/redirect" => {
            let to = query.strip_prefix("to=").unwrap_or("/hello").to_string();
            Response::builder().status(302).header("location", to).body(Full::new(Bytes::new())).unwrap()
        }
        _ => reply(404, "no such thing".into()),
    })
}

/// `PUT /-/handlers/fetcher?allow-outbound=...` with the fetcher guest.
async fn upload(server: &TestServer, allow: &str) -> Reply {
    let bytes = std::fs::read(guests::FETCHER).unwrap();
    let path = format!("/-/handlers/fetcher?allow-outbound={allow}");
    server.send_as(None, "PUT", &path, Some(JSON), Some("application/wasm"), Some(bytes)).await
}

/// The kind `fetch`, bound to the fetcher.
async fn fetch_kind(server: &TestServer) {
    let attr = |t: &str| json!({"type": t, "mutable": true, "required": false});
    let kind = json!({"kinds": [{
        "term": "fetch", "scheme": "http://example.com/occi#", "location": "/fetch/", "handler": "fetcher",
        "attributes": {
            "example.fetch.url": attr("string"), "example.fetch.method": attr("string"),
            "example.fetch.times": attr("integer"), "example.fetch.send": attr("integer"),
            "example.fetch.redirects": attr("integer"), "example.fetch.status": attr("integer"),
            "example.fetch.answer": attr("string"), "example.fetch.from": attr("string"),
            "example.fetch.auth": attr("string"),
        },
    }]});
    expect(&server.json("POST", "/-/", Some(kind)).await, 200);
}

/// Creates `/fetch/{id}` with these attributes (the fetch happens in `on-create`).
async fn fetch(server: &TestServer, id: &str, attributes: Value) -> Reply {
    server.json("POST", "/fetch/", Some(json!({"kind": FETCH, "id": id, "attributes": attributes}))).await
}

async fn servers(allow_private: bool, patterns: &[&str]) -> TestServer {
    let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
    TestServer::start_configured(move |c| {
        // Debug builds on a loaded machine: room for a few loopback requests.
        c.runtime.deadline = Duration::from_secs(2);
        c.handler_allow_outbound = patterns;
        c.handler_allow_private = allow_private;
        c.handler_outbound_requests = 3;
        c.handler_outbound_bytes_out = 1000;
        c.handler_outbound_bytes_in = 1000;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_requests_succeed_and_everything_else_is_refused() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    // The operator allows any loopback port (and private addresses); the handler only A.
    let server = servers(true, &["http://127.0.0.1:*"]).await;
    let uploaded = upload(&server, &a.origin()).await;
    expect(&uploaded, 201);
    assert_eq!(uploaded.json()["outbound"], json!([format!("{}:{}", "http://127.0.0.1", a.addr.port())]));
    fetch_kind(&server).await;

    // Allowed: the answer is stored in the entity.
    let r = fetch(&server, "ok", json!({"example.fetch.url": a.url("/hello"), "example.fetch.send": 10})).await;
    expect(&r, 201);
    let attrs = server.get("/fetch/ok").await.json()["attributes"].clone();
    assert_eq!(attrs["example.fetch.status"], 200, "{attrs}");
    assert_eq!(attrs["example.fetch.answer"], format!("hello from {}, 10 bytes received", a.addr), "{attrs}");
    assert_eq!(a.hits(), 1);

    // A forbidden origin (B: within the operator's patterns, not in the handler's list).
    let r = fetch(&server, "b", json!({"example.fetch.url": b.url("/hello")})).await;
    expect_error(&r, 400, &["fetcher", "denied", &format!("origin {} is not in the handler's allow-list", b.origin())]);
    expect(&server.get("/fetch/b").await, 404);

    // A redirect to B: returned as is when not followed, refused when followed.
    let to_b = a.url(&format!("/redirect?to={}", b.url("/hello")));
    let r = fetch(&server, "r0", json!({"example.fetch.url": to_b})).await;
    expect(&r, 201);
    assert_eq!(server.get("/fetch/r0").await.json()["attributes"]["example.fetch.status"], 302);
    let r = fetch(&server, "r1", json!({"example.fetch.url": to_b, "example.fetch.redirects": 3})).await;
    expect_error(&r, 400, &["denied", &b.origin()]);
    assert_eq!(b.hits(), 0, "B was never reached");
    // A redirect within A is followed.
    let r =
        fetch(&server, "r2", json!({"example.fetch.url": a.url("/redirect?to=/hello"), "example.fetch.redirects": 1}))
            .await;
    expect(&r, 201);
    let attrs = server.get("/fetch/r2").await.json()["attributes"].clone();
    assert_eq!(
        (attrs["example.fetch.status"].clone(), attrs["example.fetch.from"].clone()),
        (json!(200), json!(a.url("/hello")))
    );

    // Too many requests: 3 per call; the 4th is refused and never sent.
    let before = a.hits();
    let r = fetch(&server, "many", json!({"example.fetch.url": a.url("/hello"), "example.fetch.times": 4})).await;
    expect_error(&r, 400, &["request 4 of 4", "limit", "at most 3 requests per call"]);
    assert_eq!(a.hits() - before, 3);
    // Too many bytes out (1000 per call) and in (1000 per call).
    let before = a.hits();
    let r = fetch(&server, "out", json!({"example.fetch.url": a.url("/hello"), "example.fetch.send": 1001})).await;
    expect_error(&r, 400, &["limit", "1000 bytes a call may send"]);
    assert_eq!(a.hits(), before, "an oversized body is not sent");
    let r = fetch(&server, "in", json!({"example.fetch.url": a.url("/big")})).await;
    expect_error(&r, 400, &["limit", "1000 bytes a call may receive"]);

    // Methods: any token (WebDAV's MKCOL reaches the backend), but no tunnel (CONNECT).
    let r =
        fetch(&server, "mkcol", json!({"example.fetch.url": a.url("/hello"), "example.fetch.method": "MKCOL"})).await;
    expect(&r, 201);
    let before = a.hits();
    let r = fetch(&server, "connect", json!({"example.fetch.url": a.url("/hello"), "example.fetch.method": "CONNECT"}))
        .await;
    expect_error(&r, 400, &["invalid", "CONNECT"]);
    assert_eq!(a.hits(), before);

    // The handler's log names each refused origin.
    let log = server.get("/-/handlers/fetcher/log").await.json();
    let refused: Vec<String> = log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["level"] == "warn" && l["source"] == "host")
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    assert!(refused.iter().any(|m| m.contains("outbound request refused: denied") && m.contains(&b.origin())), "{log}");
    assert!(refused.iter().any(|m| m.contains("at most 3 requests per call")), "{log}");
    assert!(refused.iter().any(|m| m.contains("1000 bytes a call may receive")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let server = servers(true, &["http://127.0.0.1:*"]).await;
    expect(&upload(&server, &format!("{},{}", a.origin(), b.origin())).await, 201);
    fetch_kind(&server).await;
    let answer = |id: &'static str| {
        let server = &server;
        async move { server.get(&format!("/fetch/{id}")).await.json()["attributes"]["example.fetch.answer"].clone() }
    };
    // Within A: the header follows.
    let same = json!({"example.fetch.url": a.url("/redirect?to=/whoami"), "example.fetch.redirects": 1,
                      "example.fetch.auth": "Bearer s3cret"});
    expect(&fetch(&server, "same", same).await, 201);
    assert_eq!(answer("same").await, r#"authorization: "Bearer s3cret""#);
    // A to B (both allowed): B gets no credentials meant for A.
    let to_b = a.url(&format!("/redirect?to={}", b.url("/whoami")));
    let other = json!({"example.fetch.url": to_b, "example.fetch.redirects": 1, "example.fetch.auth": "Bearer s3cret"});
    expect(&fetch(&server, "other", other).await, 201);
    assert_eq!(answer("other").await, r#"authorization: """#);
    assert_eq!(b.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_even_through_a_name() {
    let a = Backend::start().await;
    // The operator allows localhost and 127.0.0.1 by pattern, but not private addresses.
    let server = servers(false, &["http://localhost:*", "http://127.0.0.1:*"]).await;
    let by_name = format!("http://localhost:{}", a.addr.port());
    expect(&upload(&server, &format!("{by_name},{}", a.origin())).await, 201);
    fetch_kind(&server).await;
    let r = fetch(&server, "n", json!({"example.fetch.url": format!("{by_name}/hello")})).await;
    expect_error(&r, 400, &["denied", "localhost resolves to", "a private address handlers may not reach"]);
    let r = fetch(&server, "ip", json!({"example.fetch.url": a.url("/hello")})).await;
    expect_error(&r, 400, &["denied", "127.0.0.1", "private address"]);
    assert_eq!(a.hits(), 0, "the backend was never reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_deadline_ends_with_the_call() {
    let a = Backend::start().await;
    let server = TestServer::start_configured(|c| {
        c.runtime.deadline = Duration::from_millis(500);
        c.handler_allow_outbound = vec!["http://127.0.0.1:*".into()];
        c.handler_allow_private = true;
    })
    .await;
    expect(&upload(&server, &a.origin()).await, 201);
    fetch_kind(&server).await;
    let started = std::time::Instant::now();
    let r = fetch(&server, "slow", json!({"example.fetch.url": a.url("/slow")})).await;
    // The host gives up at the deadline and the guest sees a limit error. The epoch deadline
    // stops a guest at its next check within one tick (10 ms) after that, so the guest's
    // refusal (400) or the time limit (504) answers, whichever comes first; both say why.
    match r.status {
        400 => expect_error(&r, 400, &["fetcher", "limit", "no answer within the call's deadline"]),
        _ => expect_error(&r, 504, &["fetcher", "time limit"]),
    }
    assert!(started.elapsed() < Duration::from_millis(2500), "took {:?}", started.elapsed());
    // The author sees why: the request hit the deadline.
    let log = server.get("/-/handlers/fetcher/log").await.json().to_string();
    assert!(
        log.contains("outbound request refused: limit") && log.contains("no answer within the call's deadline"),
        "{log}"
    );
}

#[tokio::test]
async fn the_allow_list_is_checked_at_upload() {
    // No patterns: nothing may be allowed.
    let server = TestServer::start().await;
    expect_error(&upload(&server, "http://api.example.com").await, 400, &["allows handlers no outbound requests"]);
    let server = servers(false, &["http://*.example.com"]).await;
    expect(&upload(&server, "http://api.example.com").await, 201);
    assert_eq!(server.get("/-/handlers/fetcher").await.json()["outbound"], json!(["http://api.example.com:80"]));
    for (bad, words) in [
        ("http://api.example.org", "outside what this server allows"),
        ("http://api.example.com:8080", "outside what this server allows"),
        ("http://*.example.com", "no wildcard"),
        ("https://api.example.com", "only http"),
        ("http://api.example.com/path", "path"),
    ] {
        expect_error(&upload(&server, bad).await, 400, &["allow-outbound", words]);
    }
    // A replacement without the parameter keeps the handler's origins; an empty one clears them.
    let put = |path: &'static str| {
        let bytes = std::fs::read(guests::FETCHER).unwrap();
        server.send_as(None, "PUT", path, Some(JSON), Some("application/wasm"), Some(bytes))
    };
    let kept = put("/-/handlers/fetcher").await;
    expect(&kept, 200);
    assert_eq!(kept.json()["outbound"], json!(["http://api.example.com:80"]), "{}", kept.text);
    let cleared = put("/-/handlers/fetcher?allow-outbound=").await;
    expect(&cleared, 200);
    assert!(cleared.json().get("outbound").is_none(), "{}", cleared.text);
    // A new handler without the parameter has none.
    let other = put("/-/handlers/other").await;
    expect(&other, 201);
    assert!(other.json().get("outbound").is_none(), "{}", other.text);
}
