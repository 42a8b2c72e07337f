//! The WebDAV backend example (examples/webdav, guest `guests/handlers/webdav`), end to end:
//! its walkthrough against a real nginx (Debian `nginx-light`, which `.ci/run` installs), and
//! its failure cases against an in-memory WebDAV server of the test's own that can be told to
//! fail: whatever the backend does, the client gets a clear answer and the ocni side is never
//! half done (no entity without its folder, no folder removed while its entity stays).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ocni_tests::{JSON, Reply, TestServer, expect, expect_error, guests, repo_root};
use serde_json::{Value, json};

const FOLDER: &str = "http://example.com/occi/dav#folder";
const PUT: &str = "http://example.com/occi/dav/folder/action#put";

/// A server that lets the handler reach loopback, with room for a few requests per call in a
/// debug build on a loaded machine.
async fn server() -> TestServer {
    TestServer::start_configured(|c| {
        c.runtime.deadline = Duration::from_secs(2);
        c.handler_allow_outbound = vec!["http://127.0.0.1:*".into()];
        c.handler_allow_private = true;
        c.handler_outbound_bytes_in = 10_000;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_provisions_folders_on_a_real_nginx() {
    let server = server().await;
    let port = free_port();
    let script = repo_root().join("examples/webdav/walkthrough.sh");
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(server.url(""))
        .env("DAV_PORT", port.to_string())
        .env("WASM", guests::WEBDAV)
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the walkthrough failed ({:?}):\n{stdout}\n{stderr}", out.status);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.ends_with("passed, 0 failed"), "{last}");
    let passed: usize = last.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 16, "the walkthrough ran {passed} checks:\n{stdout}");
    // What the walkthrough left on the ocni side: the folder it deleted is gone, the refused
    // creates made nothing.
    let listed = server.get("/folders/").await;
    expect(&listed, 200);
    assert_eq!(listed.json()["resources"].as_array().map(Vec::len).unwrap_or(0), 0, "{}", listed.json());
}

/// A port nobody listens on right now (nginx binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An in-memory WebDAV server: collections and files by path; `fail` makes the next requests
/// of one method answer a status instead (a status of 0 closes the connection unanswered,
/// 1 answers after 5 s, 2 answers 50,000 bytes).
#[derive(Default)]
struct Dav {
    paths: BTreeMap<String, Option<Vec<u8>>>,
    fail: BTreeMap<String, u16>,
    log: Vec<String>,
}

struct Backend {
    addr: SocketAddr,
    dav: Arc<Mutex<Dav>>,
}

impl Backend {
    async fn start() -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dav = Arc::new(Mutex::new(Dav::default()));
        let shared = Arc::clone(&dav);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let dav = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(Arc::clone(&dav), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend { addr, dav }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn fail(&self, method: &str, status: u16) {
        self.dav.lock().unwrap().fail.insert(method.into(), status);
    }

    fn heal(&self) {
        self.dav.lock().unwrap().fail.clear();
    }

    fn has(&self, path: &str) -> bool {
        self.dav.lock().unwrap().paths.contains_key(path)
    }

    fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.dav.lock().unwrap().paths.get(path).cloned().flatten()
    }

    /// The requests received, as `METHOD /path`.
    fn log(&self) -> Vec<String> {
        self.dav.lock().unwrap().log.clone()
    }
}

async fn answer(dav: Arc<Mutex<Dav>>, req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, String> {
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let reply = |status: u16, body: Vec<u8>| Response::builder().status(status).body(Full::new(body.into())).unwrap();
    let failure = {
        let mut dav = dav.lock().unwrap();
        dav.log.push(format!("{method} {path}"));
        dav.fail.get(&method).copied()
    };
    match failure {
        // Dropping the connection: hyper closes it when the service errors.
        Some(0) => return Err("closed".into()),
        Some(1) => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            return Ok(reply(201, Vec::new()));
        }
        Some(2) => return Ok(reply(200, vec![b'x'; 50_000])),
        Some(status) => return Ok(reply(status, b"told to fail".to_vec())),
        None => {}
    }
    let mut dav = dav.lock().unwrap();
    let parent = |p: &str| {
        let trimmed = p.trim_end_matches('/');
        format!("{}/", &trimmed[..trimmed.rfind('/').unwrap_or(0)])
    };
    let parent_exists = |dav: &Dav, p: &str| parent(p) == "/" || dav.paths.contains_key(&parent(p));
    Ok(match method.as_str() {
        "MKCOL" if dav.paths.contains_key(&path) => reply(405, Vec::new()),
        "MKCOL" if !parent_exists(&dav, &path) => reply(409, Vec::new()),
        "MKCOL" => {
            dav.paths.insert(path, None);
            reply(201, Vec::new())
        }
        "PUT" if !parent_exists(&dav, &path) => reply(409, Vec::new()),
        "PUT" => match dav.paths.insert(path, Some(body)) {
            Some(_) => reply(204, Vec::new()),
            None => reply(201, Vec::new()),
        },
        "GET" => match dav.paths.get(&path) {
            Some(Some(file)) => reply(200, file.clone()),
            Some(None) => reply(200, b"a collection".to_vec()),
            None => reply(404, Vec::new()),
        },
        "DELETE" if !dav.paths.contains_key(&path) => reply(404, Vec::new()),
        "DELETE" => {
            dav.paths.retain(|p, _| !p.starts_with(&path));
            reply(204, Vec::new())
        }
        _ => reply(405, Vec::new()),
    })
}

/// Uploads the webdav guest, allowed to reach `origin`, and defines the example's folder kind.
async fn setup(server: &TestServer, origin: &str) {
    let bytes = std::fs::read(guests::WEBDAV).unwrap();
    let path = format!("/-/handlers/dav?allow-outbound={origin}");
    expect(&server.send_as(None, "PUT", &path, Some(JSON), Some("application/wasm"), Some(bytes)).await, 201);
    let kind = std::fs::read_to_string(repo_root().join("examples/webdav/folder-kind.json")).unwrap();
    let kind: Value = serde_json::from_str(&kind).unwrap();
    expect(&server.json("POST", "/-/", Some(kind)).await, 200);
}

/// An in-memory WebDAV server, and an ocni server with the webdav handler allowed to reach it
/// and the folder kind defined; the WebDAV server's origin.
async fn started() -> (Backend, TestServer, String) {
    let dav = Backend::start().await;
    let server = server().await;
    let origin = dav.origin();
    setup(&server, &origin).await;
    (dav, server, origin)
}

async fn create(server: &TestServer, id: &str, name: &str, origin: &str) -> Reply {
    let body = json!({"kind": FOLDER, "id": id, "attributes": {"dav.folder.name": name, "dav.folder.server": origin}});
    server.json("POST", "/folders/", Some(body)).await
}

async fn put(server: &TestServer, id: &str, file: &str, content: &str) -> Reply {
    let body = json!({"action": PUT, "attributes": {"dav.file.name": file, "dav.file.content": content}});
    server.json("POST", &format!("/folders/{id}?action=put"), Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_leaves_nothing_half_done() {
    let (dav, server, origin) = started().await;

    // The backend answers MKCOL with an error: no entity, no folder, and the client is told.
    dav.fail("MKCOL", 507);
    let r = create(&server, "a", "a", &origin).await;
    expect_error(&r, 400, &[&format!("MKCOL {origin}/a/ answered 507")]);
    expect(&server.get("/folders/a").await, 404);
    assert!(!dav.has("/a/"));

    // The folder is made but its ownership marker cannot be written: the folder is removed
    // again and the create fails as a whole.
    dav.heal();
    dav.fail("PUT", 500);
    let r = create(&server, "a", "a", &origin).await;
    expect_error(&r, 400, &[&format!("PUT {origin}/a/.ocni-owner answered 500")]);
    expect(&server.get("/folders/a").await, 404);
    assert!(!dav.has("/a/"), "{:?}", dav.log());

    // The backend closes the connection: refused with the host's reason.
    dav.heal();
    dav.fail("MKCOL", 0);
    let r = create(&server, "a", "a", &origin).await;
    expect_error(&r, 400, &["MKCOL", "failed"]);
    expect(&server.get("/folders/a").await, 404);

    // No answer within the call's deadline: the call ends there, with a clear reason.
    dav.heal();
    dav.fail("MKCOL", 1);
    let r = create(&server, "slow", "slow", &origin).await;
    match r.status {
        400 => expect_error(&r, 400, &["MKCOL", "limit", "no answer within the call's deadline"]),
        _ => expect_error(&r, 504, &["dav", "time limit"]),
    }
    expect(&server.get("/folders/slow").await, 404);

    // Too big an answer: the host's bytes-in limit (the marker is read back on a 405).
    dav.heal();
    dav.dav.lock().unwrap().paths.insert("/big/".into(), None);
    dav.fail("GET", 2);
    let r = create(&server, "big", "big", &origin).await;
    expect_error(&r, 400, &["GET", "limit", "10000 bytes a call may receive"]);
    expect(&server.get("/folders/big").await, 404);

    // Made at last; then a put the backend refuses changes nothing.
    dav.heal();
    expect(&create(&server, "a", "a", &origin).await, 201);
    assert!(dav.has("/a/") && dav.file("/a/.ocni-owner").is_some());
    let entity = server.get_ok("/folders/a").await;
    assert_eq!(entity["attributes"]["dav.folder.url"], format!("{origin}/a/"));
    assert_eq!(entity["attributes"]["dav.folder.files"], 0);
    dav.fail("PUT", 403);
    expect_error(&put(&server, "a", "f.txt", "x").await, 400, &[&format!("PUT {origin}/a/f.txt answered 403")]);
    assert_eq!(server.get_ok("/folders/a").await["attributes"]["dav.folder.files"], 0);
    dav.heal();
    expect(&put(&server, "a", "f.txt", "one").await, 200);
    expect(&put(&server, "a", "f.txt", "two").await, 200);
    assert_eq!(dav.file("/a/f.txt").as_deref(), Some(&b"two"[..]));
    assert_eq!(server.get_ok("/folders/a").await["attributes"]["dav.folder.files"], 1, "a replaced file counts once");

    // A delete the backend refuses keeps the entity (and the folder): 409, named.
    dav.fail("DELETE", 423);
    let r = server.json("DELETE", "/folders/a", None).await;
    expect_error(&r, 409, &[&format!("DELETE {origin}/a/ answered 423"), "kept"]);
    expect(&server.get("/folders/a").await, 200);
    assert!(dav.has("/a/f.txt"));
    dav.heal();
    expect(&server.json("DELETE", "/folders/a", None).await, 200);
    expect(&server.get("/folders/a").await, 404);
    assert!(!dav.has("/a/") && !dav.has("/a/f.txt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_folder_is_taken_over_only_by_the_entity_that_made_it() {
    let (dav, server, origin) = started().await;

    expect(&create(&server, "x", "shared", &origin).await, 201);
    // Someone else's folder (another entity's marker): a conflict, and it stays untouched.
    let r = create(&server, "y", "shared", &origin).await;
    expect_error(&r, 409, &[&format!("the folder shared already exists on {origin}")]);
    assert!(dav.has("/shared/"));
    // A folder with no marker at all (made outside ocni): also a conflict.
    dav.dav.lock().unwrap().paths.insert("/manual/".into(), None);
    expect_error(&create(&server, "m", "manual", &origin).await, 409, &["already exists"]);

    // The entity goes while the backend reports the folder gone already (404): the folder with
    // x's marker is left. A create of the same entity again (what a create prepared a second
    // time looks like to the backend) takes it over instead of failing.
    dav.fail("DELETE", 404);
    expect(&server.json("DELETE", "/folders/x", None).await, 200);
    dav.heal();
    assert!(dav.has("/shared/.ocni-owner"));
    expect(&create(&server, "x", "shared", &origin).await, 201);
    let mkcols = dav.log().iter().filter(|l| *l == "MKCOL /shared/").count();
    assert_eq!(mkcols, 3, "{:?}", dav.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_forbidden_servers_are_refused_before_any_request() {
    let (dav, server, origin) = started().await;

    let r = create(&server, "s", "a/b", &origin).await;
    expect_error(&r, 400, &["dav.folder.name", "'/' is not allowed"]);
    let r = create(&server, "u", "..", &origin).await;
    expect_error(&r, 400, &["dav.folder.name", "must not start with '.'"]);
    let r = create(&server, "h", ".hidden", &origin).await;
    expect_error(&r, 400, &["dav.folder.name", "must not start with '.'"]);
    let r = create(&server, "f", "ok", "ftp://127.0.0.1").await;
    expect_error(&r, 400, &["dav.folder.server", "an http:// URL"]);
    assert!(dav.log().is_empty(), "{:?}", dav.log());

    // An origin outside the handler's allow-list: the host refuses, the backend never sees it.
    let other = Backend::start().await;
    let r = create(&server, "o", "ok", &other.origin()).await;
    expect_error(&r, 400, &["denied", &other.origin()]);
    assert!(other.log().is_empty());
    // A put of a file with a bad name, on a good folder.
    expect(&create(&server, "g", "good", &origin).await, 201);
    expect_error(&put(&server, "g", "a/b", "x").await, 400, &["dav.file.name", "'/' is not allowed"]);
    assert!(!dav.has("/good/a/b"));
}
