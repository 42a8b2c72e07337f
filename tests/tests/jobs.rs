//! Long operations as jobs (WIT 0.1.3), end to end, with the `provisioner` guest against a
//! loopback backend of the test's own: a create answers 202 at once (state `pending`) and the
//! job then sets the state from the backend's answer; a server killed (SIGKILL) during a job
//! finishes it after a restart; a job whose backend keeps failing ends `failed`, the entity in
//! the error state, after exactly the configured retries; another tenant sees nothing of a
//! job; the jobs of one entity run one at a time, in submission order.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ocni_server::Config;
use ocni_tests::{JSON, Reply, Tenant, TestServer, expect, guests};
use serde_json::{Value, json};

const KIND: &str = "http://example.com/occi#provision";
const REFRESH: &str = "http://example.com/occi/provision/action#refresh";
const RETRIES: u32 = 2;

/// A loopback backend. `/ok?ms=N` answers 200 `provisioned` after N ms; `/fail` always 500;
/// `/hold` holds its first request forever (the server is killed meanwhile) and answers the
/// next ones 200. It counts requests, the most in flight at once, and the job ids in order.
#[derive(Clone)]
struct Backend {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    jobs: Arc<Mutex<Vec<String>>>,
}

impl Backend {
    async fn start() -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = Backend {
            addr: listener.local_addr().unwrap(),
            hits: Arc::default(),
            in_flight: Arc::default(),
            most_in_flight: Arc::default(),
            jobs: Arc::default(),
        };
        let b = backend.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let b = b.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let b = b.clone();
                        async move { b.answer(req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        backend
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let hit = self.hits.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let job = req.headers().get("x-ocni-job").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        self.jobs.lock().unwrap().push(job);
        let reply =
            |status: u16, body: &str| Response::builder().status(status).body(Full::new(Bytes::from(body.to_string())));
        let answer = match req.uri().path() {
            "/ok" => {
                let ms = req.uri().query().and_then(|q| q.strip_prefix("ms=")).and_then(|n| n.parse().ok());
                tokio::time::sleep(Duration::from_millis(ms.unwrap_or(0))).await;
                reply(200, "provisioned")
            }
            "/fail" => reply(500, "broken backend"),
            "/hold" if hit == 1 => std::future::pending().await,
            "/hold" => reply(200, "provisioned after all"),
            _ => reply(404, "no such thing"),
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(answer.unwrap())
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The test servers' settings: loopback allowed, a short job deadline and backoff.
fn configure(c: &mut Config) {
    c.runtime.deadline = Duration::from_secs(2);
    c.runtime.job_deadline = Duration::from_secs(10);
    c.handler_allow_outbound = vec!["http://127.0.0.1:*".into()];
    c.handler_allow_private = true;
    c.handler_job_retries = RETRIES;
    c.handler_job_backoff = Duration::from_millis(50);
}

/// Uploads the provisioner (allowed to reach `backend`) and defines the kind `provision`
/// bound to it, with the action `refresh`; `auth` is a tenant's `Authorization`, if any.
async fn setup(server: &TestServer, auth: Option<&str>, backend: &Backend) {
    let bytes = std::fs::read(guests::PROVISIONER).unwrap();
    let path = format!("/-/handlers/provisioner?allow-outbound=http://{}", backend.addr);
    expect(&server.send_as(auth, "PUT", &path, Some(JSON), Some("application/wasm"), Some(bytes)).await, 201);
    let attr = |required: bool| json!({"type": "string", "mutable": true, "required": required});
    let categories = json!({
        "actions": [{"term": "refresh", "scheme": "http://example.com/occi/provision/action#"}],
        "kinds": [{
            "term": "provision", "scheme": "http://example.com/occi#", "location": "/provision/",
            "handler": "provisioner", "actions": [REFRESH],
            "attributes": {
                "example.provision.url": attr(true), "example.provision.state": attr(false),
                "example.provision.answer": attr(false), "example.provision.job": attr(false),
            },
        }],
    });
    let body = Some(categories.to_string().into_bytes());
    expect(&server.send_as(auth, "POST", "/-/", Some(JSON), None, body).await, 200);
}

/// `POST /provision/` of entity `id` driving the backend at `url`.
async fn create(server: &TestServer, auth: Option<&str>, id: &str, url: &str) -> Reply {
    let body = json!({"kind": KIND, "id": id, "attributes": {"example.provision.url": url}});
    server.send_as(auth, "POST", "/provision/", Some(JSON), None, Some(body.to_string().into_bytes())).await
}

/// The job id a 202 names in its `Link: <.../-/jobs/ID>; rel="monitor"`.
fn job_of(reply: &Reply) -> String {
    expect(reply, 202);
    let links: Vec<&str> = reply.headers.get_all("link").iter().filter_map(|v| v.to_str().ok()).collect();
    let link = links.iter().find(|l| l.contains("/-/jobs/")).unwrap_or_else(|| panic!("no job link: {links:?}"));
    let start = link.find("/-/jobs/").unwrap() + "/-/jobs/".len();
    let end = link[start..].find('>').unwrap() + start;
    assert!(link.ends_with("rel=\"monitor\""), "{link}");
    link[start..end].to_string()
}

/// Polls `GET /-/jobs/{id}` until its state is `state` (at most 30 s; a debug build on a busy
/// machine), and returns it.
async fn wait_for(server: &TestServer, auth: Option<&str>, id: &str, state: &str) -> Value {
    let started = Instant::now();
    loop {
        let reply = server.send_as(auth, "GET", &format!("/-/jobs/{id}"), Some(JSON), None, None).await;
        expect(&reply, 200);
        let job = reply.json();
        if job["state"] == state {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "job {id} never became {state}: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn entity(server: &TestServer, auth: Option<&str>, path: &str) -> Value {
    let reply = server.send_as(auth, "GET", path, Some(JSON), None, None).await;
    expect(&reply, 200);
    reply.json()["attributes"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_202_job_completes_and_the_entity_then_shows_its_result() {
    let backend = Backend::start().await;
    let server = TestServer::start_configured(configure).await;
    setup(&server, None, &backend).await;
    let reply = create(&server, None, "p1", &backend.url("/ok?ms=300")).await;
    let job = job_of(&reply);
    assert_eq!(reply.header("location"), Some(server.url("/provision/p1").as_str()));
    // The answer came before the backend's: the entity is pending.
    let pending = entity(&server, None, "/provision/p1").await;
    assert_eq!(pending["example.provision.state"], "pending", "{pending}");
    assert_eq!(pending["example.provision.job"], job.as_str());

    let done = wait_for(&server, None, &job, "succeeded").await;
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(done["entity"], "/provision/p1");
    assert_eq!(done["location"], server.url("/provision/p1"));
    assert_eq!(done["name"], "provision");
    let active = entity(&server, None, "/provision/p1").await;
    assert_eq!(active["example.provision.state"], "active", "{active}");
    assert_eq!(active["example.provision.answer"], "provisioned");
    assert_eq!(backend.hits(), 1);
    // The list shows it.
    let list = server.get_ok("/-/jobs").await;
    assert_eq!(list["jobs"][0]["id"], job.as_str(), "{list}");
    // An entity created without a job is answered 201 as before.
    let plain = server.json("POST", "/compute/", Some(json!({"kind": ocni_tests::COMPUTE}))).await;
    expect(&plain, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_backend_keeps_failing_ends_failed_after_its_retries() {
    let backend = Backend::start().await;
    let server = TestServer::start_configured(configure).await;
    setup(&server, None, &backend).await;
    let job = job_of(&create(&server, None, "bad", &backend.url("/fail")).await);
    let failed = wait_for(&server, None, &job, "failed").await;
    let attempts = RETRIES as usize + 1;
    assert_eq!(failed["attempts"], attempts, "{failed}");
    assert_eq!(failed["max_attempts"], attempts);
    assert!(failed["last_error"].as_str().unwrap().contains("500"), "{failed}");
    let e = entity(&server, None, "/provision/bad").await;
    assert_eq!(e["example.provision.state"], "error", "{e}");
    assert!(e["example.provision.answer"].as_str().unwrap().contains("broken backend"), "{e}");
    // Exactly one request per attempt, and none after the last.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.hits(), attempts);
    // Every failed attempt is in the handler's log.
    let log = server.get_ok("/-/handlers/provisioner/log").await;
    let failures = log["lines"].as_array().unwrap().iter().filter(|l| {
        l["operation"] == "job" && l["message"].as_str().is_some_and(|m| m.contains("attempt") && m.contains("failed"))
    });
    assert_eq!(failures.count(), attempts, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_cannot_see_a_job() {
    let backend = Backend::start().await;
    let server = TestServer::start_multi_tenant(configure).await;
    let a: Tenant = server.create_tenant("alpha", None).await;
    let b = server.create_tenant("beta", None).await;
    let auth_a = format!("Bearer {}", a.token);
    setup(&server, Some(&auth_a), &backend).await;
    let job = job_of(&create(&server, Some(&auth_a), "p", &backend.url("/ok")).await);
    wait_for(&server, Some(&auth_a), &job, "succeeded").await;
    let theirs = b.get(&format!("/-/jobs/{job}")).await;
    let missing = b.get("/-/jobs/0190aaaa-0000-7000-8000-000000000000").await;
    expect(&theirs, 404);
    assert_eq!(theirs.text.replace(&job, "ID"), missing.text.replace("0190aaaa-0000-7000-8000-000000000000", "ID"));
    assert_eq!(b.get_ok("/-/jobs").await["jobs"], json!([]));
    assert_eq!(a.get_ok("/-/jobs").await["jobs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_of_one_entity_run_one_at_a_time_in_order() {
    let backend = Backend::start().await;
    let server = TestServer::start_configured(configure).await;
    setup(&server, None, &backend).await;
    let mut jobs = vec![job_of(&create(&server, None, "one", &backend.url("/ok?ms=200")).await)];
    for _ in 0..2 {
        let reply = server.json("POST", "/provision/one?action=refresh", None).await;
        assert_eq!(reply.header("location"), Some(server.url("/provision/one").as_str()));
        jobs.push(job_of(&reply));
    }
    for id in &jobs {
        wait_for(&server, None, id, "succeeded").await;
    }
    assert_eq!(backend.hits(), 3);
    assert_eq!(backend.most_in_flight.load(Ordering::SeqCst), 1, "two jobs of one entity ran at once");
    assert_eq!(*backend.jobs.lock().unwrap(), jobs, "not in submission order");
    let names: Vec<Value> =
        server.get_ok("/-/jobs").await["jobs"].as_array().unwrap().iter().map(|j| j["name"].clone()).collect();
    assert_eq!(names, [json!("refresh"), json!("refresh"), json!("provision")], "newest first");
}

/// Where the child server of the kill test keeps its data and writes its address.
const CHILD_DATA: &str = "OCNI_JOBS_CHILD_DATA";

/// Not a test on its own: the server process of the kill test below, which runs this test
/// binary again with [`CHILD_DATA`] set (so it can be killed with SIGKILL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_server_for_the_kill_test() {
    let Some(data) = std::env::var_os(CHILD_DATA).map(PathBuf::from) else { return };
    let mut config = Config::new(data.join("data"));
    configure(&mut config);
    let server = TestServer::start_with(config, None).await;
    std::fs::write(data.join("address.tmp"), &server.base).unwrap();
    std::fs::rename(data.join("address.tmp"), data.join("address")).unwrap();
    std::future::pending::<()>().await;
}

/// The child server process: killed (SIGKILL) and reaped when dropped, so a failing test
/// leaves no server behind.
struct ChildServer(Child);

impl ChildServer {
    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the child server on `dir` and waits for its address.
async fn spawn_child(dir: &Path) -> (ChildServer, TestServer) {
    let _ = std::fs::remove_file(dir.join("address"));
    let log = std::fs::File::options().create(true).append(true).open(dir.join("server.log")).unwrap();
    let child = ChildServer(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_server_for_the_kill_test", "--nocapture", "--test-threads=1"])
            .env(CHILD_DATA, dir)
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let base = loop {
        if let Ok(base) = std::fs::read_to_string(dir.join("address")) {
            break base;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the child server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (child, TestServer::remote(&base))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_a_job_finishes_it_after_restart() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, server) = spawn_child(dir.path()).await;
    setup(&server, None, &backend).await;
    let job = job_of(&create(&server, None, "k", &backend.url("/hold")).await);
    // The first attempt is at the backend, which holds it: kill the server there.
    let started = Instant::now();
    while backend.hits() == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the job never reached the backend");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let running = wait_for(&server, None, &job, "running").await;
    assert_eq!(running["attempts"], 1);
    child.kill();
    assert_eq!(entity_after_kill(dir.path()).await, "pending", "the kill left the entity pending");

    let (mut child, server) = spawn_child(dir.path()).await;
    let done = wait_for(&server, None, &job, "succeeded").await;
    assert_eq!(done["attempts"], 2, "the attempt cut short is run again: {done}");
    let e = entity(&server, None, "/provision/k").await;
    assert_eq!(e["example.provision.state"], "active", "{e}");
    assert_eq!(e["example.provision.answer"], "provisioned after all");
    assert_eq!(backend.hits(), 2);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for id in backend.jobs.lock().unwrap().iter() {
        *seen.entry(id.clone()).or_default() += 1;
    }
    assert_eq!(seen.get(&job), Some(&2), "both attempts carried the job id (the idempotency key)");
    child.kill();
}

/// The entity's state as the store has it after the kill, read directly.
async fn entity_after_kill(dir: &Path) -> String {
    let store = ocni_store::Store::open(&dir.join("data/ocni.redb")).unwrap();
    let r = store.read().unwrap();
    use ocni_store::Reads;
    let e = r.entity("default", "/provision/k").unwrap().unwrap();
    e.attributes["example.provision.state"].as_str().unwrap().to_string()
}
