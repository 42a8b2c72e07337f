//! The `ocni` binary as an operator uses it: `ocni serve` with an admin token, the `ocni tenant`,
//! `ocni token` and `ocni limits` subcommands against it, tenants' tokens over HTTP, and the
//! server's log at debug level, which must hold the audit lines and never a token.

use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_ocni");
const ADMIN_TOKEN: &str = "cli-test-admin-token-5f0e1d2c3b4a";
const OCCI_JSON: &str = "application/occi+json";

/// A running `ocni serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `ocni serve` at debug level with the admin token in a file, its output into `log`.
async fn start(data: &Path, token_file: &Path, log: &Path) -> Server {
    let port = free_port();
    let out = File::create(log).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .arg("--admin-token-file")
        .arg(token_file)
        .env("RUST_LOG", "debug")
        .env_remove("OCNI_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn ocni serve");
    let server = Server { child, base: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Multi-tenant: an anonymous request is 401 once the server is up.
        if let Ok(r) = reqwest::get(format!("{}/-/", server.base)).await
            && r.status() == 401
        {
            return server;
        }
        assert!(Instant::now() < deadline, "ocni serve did not come up; log:\n{}", read(log));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Runs an admin subcommand against `server` with the admin token in the environment.
fn ocni(server: &Server, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--server", &server.base])
        .env("OCNI_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run ocni")
}

/// Runs a subcommand that must succeed and returns its JSON output.
#[track_caller]
fn ocni_ok(server: &Server, args: &[&str]) -> Value {
    let out = ocni(server, args);
    assert!(out.status.success(), "ocni {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ocni {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

async fn request(server: &Server, token: Option<&str>, method: &str, path: &str, body: Option<Value>) -> u16 {
    let client = reqwest::Client::new();
    let mut req = client
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", server.base))
        .header("Accept", OCCI_JSON);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.header("Content-Type", OCCI_JSON).body(b.to_string());
    }
    req.send().await.expect("request reaches ocni").status().as_u16()
}

#[tokio::test]
async fn admin_subcommands_round_trip_and_logs_hold_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let log = dir.path().join("ocni.log");
    let server = start(&dir.path().join("data"), &token_file, &log).await;

    // tenant create prints the tenant and its first token.
    let created = ocni_ok(&server, &["tenant", "create", "acme", "--max-entities", "2"]);
    assert_eq!(created["name"], "acme");
    assert_eq!(created["limits"]["max_entities"], 2);
    let first = created["token"]["token"].as_str().unwrap().to_string();
    // token issue: a second token; token list shows both ids, no secret.
    let issued = ocni_ok(&server, &["token", "issue", "acme"]);
    let second = issued["token"].as_str().unwrap().to_string();
    let second_id = issued["id"].as_str().unwrap().to_string();
    let listed = ocni_ok(&server, &["token", "list", "acme"]);
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 2);
    for token in [&first, &second] {
        assert!(!listed.to_string().contains(token.rsplit('_').next().unwrap()), "a secret is listed: {listed}");
    }

    // Both tokens act as acme.
    let vm = json!({"kind": "http://schemas.ogf.org/occi/infrastructure#compute", "id": "vm"});
    assert_eq!(request(&server, Some(&first), "POST", "/compute/", Some(vm)).await, 201);
    assert_eq!(request(&server, Some(&second), "GET", "/compute/vm", None).await, 200);
    assert_eq!(request(&server, None, "GET", "/compute/vm", None).await, 401);
    let flipped = if first.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{flipped}", &first[..first.len() - 1]);
    assert_eq!(request(&server, Some(&wrong), "GET", "/compute/vm", None).await, 401);

    // limits set, then tenant list and show.
    let limits = ocni_ok(&server, &["limits", "set", "acme", "--max-entities", "1", "--requests-per-second", "50"]);
    assert_eq!(limits["limits"]["max_entities"], 1);
    assert_eq!(limits["limits"]["requests_per_second"], 50);
    let vm2 = json!({"kind": "http://schemas.ogf.org/occi/infrastructure#compute", "id": "vm2"});
    assert_eq!(request(&server, Some(&first), "POST", "/compute/", Some(vm2)).await, 403);
    let reset = ocni_ok(&server, &["limits", "set", "acme", "--reset", "max_entities"]);
    assert_eq!(reset["limits"]["max_entities"], 100000);
    let list = ocni_ok(&server, &["tenant", "list"]);
    assert_eq!(list["tenants"][0]["name"], "acme");
    assert_eq!(list["tenants"][0]["entities"], 1);
    assert_eq!(ocni_ok(&server, &["tenant", "show", "acme"])["tokens"].as_array().unwrap().len(), 2);

    // token revoke: the next request with it is refused.
    ocni_ok(&server, &["token", "revoke", "acme", &second_id]);
    assert_eq!(request(&server, Some(&second), "GET", "/compute/vm", None).await, 401);
    assert_eq!(request(&server, Some(&first), "GET", "/compute/vm", None).await, 200);

    // Errors: a clear message and a failing exit status.
    let out = ocni(&server, &["tenant", "create", "acme"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("409") && stderr.contains("already exists"), "{stderr}");
    let out = Command::new(BIN)
        .args(["tenant", "list", "--server", &server.base])
        .env("OCNI_ADMIN_TOKEN", "a-wrong-admin-token-xyz")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out =
        Command::new(BIN).args(["tenant", "list", "--server", &server.base]).env_remove("OCNI_ADMIN_TOKEN").output();
    let out = out.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no admin token"));
    // The token file works for the subcommands too.
    let out = Command::new(BIN)
        .args(["tenant", "delete", "acme", "--server", &server.base, "--admin-token-file"])
        .arg(&token_file)
        .env_remove("OCNI_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(request(&server, Some(&first), "GET", "/compute/vm", None).await, 401);

    drop(server);
    let log = read(&log);
    // Every request's `done` line names it and how it ended, a read served in place too (it has
    // no request span): here the GET refused once its tenant was gone.
    assert!(
        log.lines()
            .any(|l| l.contains("  INFO ocni_server::http: done method=GET path=/compute/vm status=401 latency_us=")),
        "{log}"
    );
    // The audit trail: every write, with tenant, operation, location and result.
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("ocni::audit")).collect();
    assert!(
        audit.iter().any(|l| l.contains("tenant=acme")
            && l.contains("operation=POST")
            && l.contains("location=/compute/")
            && l.contains("status=201")),
        "{audit:#?}"
    );
    assert!(audit.iter().any(|l| l.contains("tenant=acme") && l.contains("status=403")), "{audit:#?}");
    assert!(
        audit.iter().any(|l| l.contains("tenant=(admin)")
            && l.contains("operation=DELETE")
            && l.contains("location=/-/admin/tenants/acme")),
        "{audit:#?}"
    );
    // No token, secret or Authorization header in the log, at debug level.
    for secret in [first.as_str(), second.as_str(), wrong.as_str(), ADMIN_TOKEN] {
        assert!(!log.contains(secret), "a token is in the log");
        let tail = secret.rsplit('_').next().unwrap();
        assert!(!log.contains(tail), "a token's secret is in the log");
    }
    assert!(!log.to_ascii_lowercase().contains("bearer "), "an Authorization header is in the log");
}

#[tokio::test]
async fn serve_refuses_unsafe_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = |args: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--data").arg(&data).args(args).env_remove("OCNI_ADMIN_TOKEN");
        if let Some(t) = env {
            cmd.env("OCNI_ADMIN_TOKEN", t);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let refused = |child: Child, words: &[&str]| {
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        for w in words {
            assert!(stderr.contains(w), "{w:?} not in: {stderr}");
        }
        stderr.into_owned()
    };
    // Local mode on a non-loopback address: refused.
    refused(serve(&["--listen", "0.0.0.0:0"], None), &["refusing to serve", "--allow-unauthenticated-remote"]);
    // Admin tokens that are empty, blank or short: refused, without echoing them.
    refused(serve(&[], Some("")), &["empty", "OCNI_ADMIN_TOKEN"]);
    refused(serve(&[], Some("   ")), &["empty"]);
    let stderr = refused(serve(&[], Some("short-token")), &["shorter than 16"]);
    assert!(!stderr.contains("short-token"), "the refused token is echoed: {stderr}");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let child = serve(&["--admin-token-file", empty.to_str().unwrap()], None);
    refused(child, &["empty", "admin token file"]);
    // Multi-tenant mode may listen on any address.
    let log = dir.path().join("remote.log");
    let port = free_port();
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("0.0.0.0:{port}"), "--data"])
        .arg(&data)
        .env("OCNI_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let server = Server { child, base: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read(&log).contains("multi-tenant") {
        assert!(Instant::now() < deadline, "ocni did not start on 0.0.0.0: {}", read(&log));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(request(&server, None, "GET", "/-/", None).await, 401);
}
