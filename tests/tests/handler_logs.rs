//! Handler logs for their authors, end to end: `GET /-/handlers/{name}/log` shows a handler's
//! `log` calls, its refusals and its failures (traps, time and memory limits), newest last,
//! within the per-handler bounds, in JSON and text/plain; a replaced handler keeps its log, a
//! deleted one loses it, and another tenant cannot read it.

use std::time::Duration;

use ocni_tests::{COMPUTE, JSON, Reply, TestServer, expect, expect_error, guests};
use serde_json::{Value, json};

const WASM: &str = "application/wasm";
const HOSTILE_SCHEME: &str = "http://example.com/occi/hostile#";

async fn upload(server: &TestServer, name: &str, path: &str) -> Reply {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("guest component {path}: {e}"));
    server.send_as(None, "PUT", &format!("/-/handlers/{name}"), Some(JSON), Some(WASM), Some(bytes)).await
}

async fn bind(server: &TestServer, category: &str, handler: Option<&str>) {
    let local: Vec<&str> = handler.into_iter().collect();
    let body = json!({"providers": [{"OCCI_ID": category, "Provider": {"local": local}}]});
    expect(&server.json("PUT", "/-/", Some(body)).await, 200);
}

/// The JSON log of a handler (which must exist).
async fn log_json(server: &TestServer, name: &str) -> Value {
    let reply = server.get(&format!("/-/handlers/{name}/log")).await;
    expect(&reply, 200);
    reply.json()
}

fn messages(log: &Value) -> Vec<String> {
    log["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines: {log}"))
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect()
}

async fn act(server: &TestServer, path: &str, term: &str) -> Reply {
    server.json("POST", &format!("{path}?action={term}"), None).await
}

#[tokio::test]
async fn a_handlers_log_shows_its_lines_and_refusals_newest_last() {
    let server = TestServer::start().await;
    expect(&upload(&server, "compute", guests::COMPUTE).await, 201);
    // Before any call: an empty log (the handler exists).
    let empty = log_json(&server, "compute").await;
    assert_eq!(empty["lines"], json!([]), "{empty}");
    assert_eq!(empty["handler"], "compute");
    assert_eq!(empty["evicted"], 0);
    expect(&server.get("/-/handlers/nothing/log").await, 404);

    bind(&server, COMPUTE, Some("compute")).await;
    let body = json!({"kind": COMPUTE, "id": "c1", "attributes": {"occi.compute.cores": 2}});
    expect(&server.json("POST", "/compute/", Some(body)).await, 201);
    expect(&act(&server, "/compute/c1", "start").await, 200);
    expect(&act(&server, "/compute/c1", "stop").await, 200);
    // A refusal (validate: too many cores) is noted for the author too.
    let bad = json!({"kind": COMPUTE, "id": "c2", "attributes": {"occi.compute.cores": 500}});
    expect_error(&server.json("POST", "/compute/", Some(bad)).await, 400, &["occi.compute.cores"]);

    let log = log_json(&server, "compute").await;
    let lines = log["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3, "{log}");
    // The start, then the stop: newest last.
    for (line, (from, to)) in lines.iter().zip([("inactive", "active"), ("active", "inactive")]) {
        assert_eq!(line["message"], "compute action", "{line}");
        assert_eq!(line["level"], "info");
        assert_eq!(line["source"], "guest");
        assert_eq!(line["entity"], "/compute/c1");
        assert_eq!(line["operation"], "action");
        assert_eq!(line["fields"]["from"], from, "{line}");
        assert_eq!(line["fields"]["to"], to, "{line}");
        let time = line["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == "2026-01-01T00:00:00.000Z".len(), "RFC 3339 time: {time}");
    }
    let refusal = &lines[2];
    assert_eq!(refusal["source"], "host", "{refusal}");
    assert_eq!(refusal["operation"], "create");
    assert_eq!(refusal["entity"], "/compute/c2");
    let message = refusal["message"].as_str().unwrap();
    assert!(message.starts_with("refused the request (400)") && message.contains("occi.compute.cores"), "{message}");

    // text/plain (also what a client without Accept gets): one line each, same order.
    let text = server.send("GET", "/-/handlers/compute/log", None, None, None).await;
    expect(&text, 200);
    assert_eq!(text.header("content-type"), Some("text/plain; charset=utf-8"));
    let text_lines: Vec<&str> = text.text.lines().collect();
    assert_eq!(text_lines.len(), 3, "{}", text.text);
    assert!(text_lines[0].contains(" INFO  guest action /compute/c1: compute action"), "{}", text_lines[0]);
    assert!(text_lines[0].contains(r#"from="inactive""#) && text_lines[0].contains(r#"to="active""#));
    assert!(text_lines[2].contains("host create /compute/c2: refused the request (400)"), "{}", text_lines[2]);

    // Only GET and HEAD.
    let put = server.send("PUT", "/-/handlers/compute/log", Some(JSON), Some("text/plain"), Some("x".into())).await;
    expect_error(&put, 405, &["log"]);
    assert_eq!(put.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn the_log_is_bounded_and_says_how_many_lines_left() {
    let server = TestServer::start_configured(|c| c.handler_log_lines = 4).await;
    expect(&upload(&server, "compute", guests::COMPUTE).await, 201);
    bind(&server, COMPUTE, Some("compute")).await;
    expect(&server.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "c"}))).await, 201);
    for i in 0..7 {
        let term = if i % 2 == 0 { "start" } else { "stop" };
        expect(&act(&server, "/compute/c", term).await, 200);
    }
    let log = log_json(&server, "compute").await;
    let lines = log["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 4, "{log}");
    assert_eq!(log["evicted"], 3);
    assert_eq!(log["max_lines"], 4);
    // The newest is the last start (the 7th action).
    assert_eq!(lines[3]["fields"]["action"], "start", "{log}");
    assert_eq!(lines[2]["fields"]["action"], "stop", "{log}");
    let text = server.send("GET", "/-/handlers/compute/log", Some("text/plain"), None, None).await;
    assert!(text.text.starts_with("# 3 older line(s) evicted"), "{}", text.text);
}

async fn create(server: &TestServer, name: &str) -> Reply {
    let body = json!({"kind": format!("{HOSTILE_SCHEME}{name}"), "id": "x"});
    server.json("POST", &format!("/{name}/"), Some(body)).await
}

#[tokio::test]
async fn traps_and_limits_reach_the_log() {
    // 1 s, as in handlers.rs: the memory bomb must reach its memory limit before the deadline.
    let server = TestServer::start_configured(|c| c.runtime.deadline = Duration::from_secs(1)).await;
    let hostile = [("loop", guests::LOOP), ("membomb", guests::MEMBOMB), ("panic", guests::PANIC)];
    for (name, path) in hostile {
        expect(&upload(&server, name, path).await, 201);
    }
    let kinds: Vec<Value> = hostile
        .iter()
        .map(|(n, _)| json!({"term": n, "scheme": HOSTILE_SCHEME, "location": format!("/{n}/"), "handler": n}))
        .collect();
    expect(&server.json("POST", "/-/", Some(json!({ "kinds": kinds }))).await, 200);
    expect_error(&create(&server, "loop").await, 504, &["time limit"]);
    expect_error(&create(&server, "membomb").await, 502, &["memory"]);
    expect(&create(&server, "panic").await, 502);

    let last_error = |log: &Value| {
        let lines = log["lines"].as_array().unwrap();
        lines.iter().rev().find(|l| l["level"] == "error").cloned().unwrap_or_else(|| panic!("no error line: {log}"))
    };
    let log = log_json(&server, "loop").await;
    let line = last_error(&log);
    assert_eq!(line["source"], "host");
    assert_eq!(line["entity"], "/loop/x");
    assert_eq!(line["operation"], "create");
    assert!(line["message"].as_str().unwrap().contains("time limit"), "{line}");

    let log = log_json(&server, "membomb").await;
    assert!(last_error(&log)["message"].as_str().unwrap().contains("memory"), "{log}");

    // The panic: the trap, and what the guest printed (its panic message) before it.
    let log = log_json(&server, "panic").await;
    assert!(last_error(&log)["message"].as_str().unwrap().contains("the call failed"), "{log}");
    assert!(
        messages(&log).iter().any(|m| m.contains("ocni hostile guest: panic in validate of /panic/x")),
        "the guest's stderr is in the log: {log}"
    );
}

#[tokio::test]
async fn a_replaced_handler_keeps_its_log_and_a_deleted_one_loses_it() {
    let server = TestServer::start().await;
    expect(&upload(&server, "compute", guests::COMPUTE).await, 201);
    bind(&server, COMPUTE, Some("compute")).await;
    expect(&server.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "c"}))).await, 201);
    expect(&act(&server, "/compute/c", "start").await, 200);

    // Replaced by other bytes: the old lines stay, and a line says where the new component starts.
    let old = server.get("/-/handlers/compute").await.json()["digest"].as_str().unwrap().to_string();
    let replaced = upload(&server, "compute", guests::COUNTER).await;
    expect(&replaced, 200);
    let new = replaced.json()["digest"].as_str().unwrap().to_string();
    let log = log_json(&server, "compute").await;
    assert_eq!(messages(&log), ["compute action".to_string(), format!("replaced: digest {old} -> {new}")]);

    // Deleted: its log goes (404); uploaded anew under that name: an empty log.
    bind(&server, COMPUTE, None).await;
    expect(&server.json("DELETE", "/-/handlers/compute", None).await, 200);
    expect(&server.get("/-/handlers/compute/log").await, 404);
    expect(&upload(&server, "compute", guests::COMPUTE).await, 201);
    assert_eq!(log_json(&server, "compute").await["lines"], json!([]));
}

#[tokio::test]
async fn another_tenant_cannot_read_a_handlers_log() {
    let server = TestServer::start_multi_tenant(|_| {}).await;
    let a = server.create_tenant("alpha", None).await;
    let b = server.create_tenant("beta", None).await;
    expect(&a.upload("compute", guests::COMPUTE).await, 201);
    let bind = json!({"providers": [{"OCCI_ID": COMPUTE, "Provider": {"local": ["compute"]}}]});
    expect(&a.json("PUT", "/-/", Some(bind)).await, 200);
    expect(&a.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "a1"}))).await, 201);
    expect(&a.json("POST", "/compute/a1?action=start", None).await, 200);
    let own = a.get_ok("/-/handlers/compute/log").await;
    assert_eq!(own["lines"].as_array().map(Vec::len), Some(1), "{own}");

    // B: exactly the answer for a handler that does not exist.
    let about_a = b.get("/-/handlers/compute/log").await;
    let missing = b.get("/-/handlers/nothing/log").await;
    expect(&about_a, 404);
    assert_eq!(about_a.text.replace("compute", "NAME"), missing.text.replace("nothing", "NAME"));
    // B's own handler of the same name has its own, empty, log.
    expect(&b.upload("compute", guests::COMPUTE).await, 201);
    assert_eq!(b.get_ok("/-/handlers/compute/log").await["lines"], json!([]));
}
