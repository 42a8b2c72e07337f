//! End-to-end test support: a real ocni server on `127.0.0.1:0` with its own data directory,
//! and a small HTTP client that keeps status, headers and body.
//! [`conformance`] holds the table-driven harness shared by the conformance tests;
//! [`validate_occi_json`] checks a document against the OCCI 1.2 JSON schemas.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ocni_server::Config;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod cached_build;
pub mod conformance;
pub mod etcd;
pub mod js_guests;
mod occi_schema;
pub mod py_guests;

pub use occi_schema::validate_occi_json;

pub const JSON: &str = "application/occi+json";
pub const PYOCNI: &str = "application/occi+json; dialect=pyocni";
pub const COMPUTE: &str = "http://schemas.ogf.org/occi/infrastructure#compute";
pub const NETWORK: &str = "http://schemas.ogf.org/occi/infrastructure#network";
pub const STORAGE: &str = "http://schemas.ogf.org/occi/infrastructure#storage";
pub const NETWORKINTERFACE: &str = "http://schemas.ogf.org/occi/infrastructure#networkinterface";
pub const STORAGELINK: &str = "http://schemas.ogf.org/occi/infrastructure#storagelink";
pub const COMPUTE_ACTION: &str = "http://schemas.ogf.org/occi/infrastructure/compute/action#";
/// The admin token of [`TestServer::start_multi_tenant`].
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// The etcd store `OCNI_TEST_STORE` names, under a key prefix no other test server uses.
pub fn test_store() -> Option<ocni_server::EtcdTarget> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let url = std::env::var("OCNI_TEST_STORE").ok().filter(|u| !u.is_empty())?;
    let mut target: ocni_server::EtcdTarget =
        url.parse().unwrap_or_else(|e| panic!("OCNI_TEST_STORE is not an etcd store URL: {e}"));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    target.prefix = format!("{}/test-{}-{nanos}-{n}", target.prefix, std::process::id());
    Some(target)
}

/// A running server. Dropping it stops the server (the data directory lives as long as the
/// `TempDir` given to or made by [`TestServer::start`]).
pub struct TestServer {
    pub base: String,
    pub data: PathBuf,
    /// The etcd store it keeps its data in (`None`: redb in `data`).
    pub store: Option<ocni_server::EtcdTarget>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: Option<Arc<tempfile::TempDir>>,
    client: reqwest::Client,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// Reads a whole response.
    pub async fn read(resp: reqwest::Response) -> Reply {
        Reply { status: resp.status().as_u16(), headers: resp.headers().clone(), text: resp.text().await.unwrap() }
    }
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The error message of a JSON error body.
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_string()
    }
}

impl TestServer {
    /// Starts a server on a fresh data directory.
    pub async fn start() -> TestServer {
        Self::start_configured(|_| {}).await
    }

    /// Starts a server on a fresh data directory, with the configuration `configure` makes of
    /// the default one. With `OCNI_TEST_STORE=etcd://...` in the environment (`scripts/test.sh`
    /// runs the end-to-end tests so a second time), its store is that etcd cluster, under a key
    /// prefix of its own.
    pub async fn start_configured(configure: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut config = Config::new(dir.path().join("data"));
        config.store = test_store();
        if config.store.is_some() {
            // The test cluster's own --max-txn-ops (scripts/test.sh sets both): tests that
            // create a thousand entities in one request are about listings, not about etcd.
            if let Some(n) = std::env::var("OCNI_TEST_MAX_TXN_OPS").ok().and_then(|n| n.parse().ok()) {
                config.max_txn_ops = n;
            }
        }
        configure(&mut config);
        Self::start_with(config, Some(dir)).await
    }

    /// Starts a server with this configuration.
    pub async fn start_with(config: Config, dir: Option<Arc<tempfile::TempDir>>) -> TestServer {
        let data = config.data_dir.clone();
        let store = config.store.clone();
        // `stop` returns once the previous server has closed the database.
        let app = ocni_server::open(config.clone())
            .unwrap_or_else(|e| panic!("server cannot open its data directory: {e:#}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(ocni_server::serve(listener, app, async move {
            let _ = rx.await;
        }));
        TestServer {
            base: format!("http://{addr}"),
            data,
            store,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
            client: reqwest::Client::new(),
        }
    }

    /// A client of a server running elsewhere (another process) at `base` (`http://host:port`);
    /// stopping it does nothing.
    pub fn remote(base: &str) -> TestServer {
        TestServer {
            base: base.to_string(),
            data: PathBuf::new(),
            store: None,
            shutdown: None,
            task: None,
            _dir: None,
            client: reqwest::Client::new(),
        }
    }

    /// Stops the server (waiting until it has closed its database) and starts a new one on the
    /// same data directory.
    pub async fn restart(mut self) -> TestServer {
        let dir = self._dir.take();
        let data = self.data.clone();
        let store = self.store.clone();
        self.stop().await;
        let mut config = Config::new(&data);
        config.store = store;
        Self::start_with(config, dir).await
    }

    /// Opens the store the server keeps its data in (stop a redb server first: its file has
    /// one owner at a time).
    pub fn open_store(&self) -> ocni_store::Store {
        match &self.store {
            Some(target) => ocni_store::Store::open_etcd(target, ocni_server::DEFAULT_MAX_TXN_OPS).unwrap(),
            None => ocni_store::Store::open(&self.data.join("ocni.redb")).unwrap(),
        }
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request. `body` is sent as `application/occi+json` unless `content_type` says
    /// otherwise.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        accept: Option<&str>,
        content_type: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        self.send_as(None, method, path, accept, content_type, body.map(String::into_bytes)).await
    }

    /// [`TestServer::send`] with `Authorization: {authorization}` (e.g. `Bearer ocni_...`) and
    /// a byte body.
    pub async fn send_as(
        &self,
        authorization: Option<&str>,
        method: &str,
        path: &str,
        accept: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut req = self.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), self.url(path));
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", content_type.unwrap_or(JSON)).body(b);
        } else if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let resp = req.send().await.expect("request reaches the server");
        Reply::read(resp).await
    }

    /// JSON request, OCCI 1.2 JSON answer.
    pub async fn json(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, Some(JSON), None, body.map(|b| b.to_string())).await
    }

    /// JSON request, pyOCNI-dialect answer.
    pub async fn py(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, Some(PYOCNI), None, body.map(|b| b.to_string())).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.json("GET", path, None).await
    }

    /// The OCCI 1.2 JSON rendering at `path`, which must answer 200.
    pub async fn get_ok(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        expect(&reply, 200);
        reply.json()
    }

    /// Starts a multi-tenant server (admin token [`ADMIN_TOKEN`]) on a fresh data directory;
    /// `configure` may change the configuration first.
    pub async fn start_multi_tenant(configure: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_configured(|config| {
            config.admin_token = Some(ocni_server::Secret::admin_token(ADMIN_TOKEN).unwrap());
            configure(config);
        })
        .await
    }

    /// A request to the admin API with the admin token.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        self.send_as(
            Some(&auth),
            method,
            path,
            Some("application/json"),
            None,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    /// Creates a tenant through the admin API (with these limits, if any) and returns it with
    /// its first token.
    pub async fn create_tenant(&self, name: &str, limits: Option<Value>) -> Tenant<'_> {
        let mut body = serde_json::json!({ "name": name });
        if let Some(l) = limits {
            body["limits"] = l;
        }
        let reply = self.admin("POST", "/-/admin/tenants", Some(body)).await;
        expect(&reply, 201);
        let token = reply.json()["token"]["token"].as_str().expect("a token in the answer").to_string();
        Tenant { server: self, name: name.to_string(), token }
    }
}

/// One tenant of a multi-tenant [`TestServer`]: its requests carry its bearer token.
pub struct Tenant<'a> {
    pub server: &'a TestServer,
    pub name: String,
    pub token: String,
}

impl Tenant<'_> {
    /// Like [`TestServer::send`], as this tenant.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        accept: Option<&str>,
        content_type: Option<&str>,
        body: Option<String>,
    ) -> Reply {
        let auth = format!("Bearer {}", self.token);
        self.server.send_as(Some(&auth), method, path, accept, content_type, body.map(String::into_bytes)).await
    }

    /// JSON request, OCCI 1.2 JSON answer, as this tenant.
    pub async fn json(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, Some(JSON), None, body.map(|b| b.to_string())).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.json("GET", path, None).await
    }

    /// The OCCI 1.2 JSON rendering at `path` as this tenant, which must answer 200.
    pub async fn get_ok(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        expect(&reply, 200);
        reply.json()
    }

    /// `PUT /-/handlers/{name}` with the component at `path`, as this tenant.
    pub async fn upload(&self, name: &str, path: &str) -> Reply {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("guest component {path}: {e}"));
        let auth = format!("Bearer {}", self.token);
        let path = format!("/-/handlers/{name}");
        self.server.send_as(Some(&auth), "PUT", &path, Some(JSON), Some("application/wasm"), Some(bytes)).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The repository root (for example files).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// A compute `/compute/vm`, a network `/network/net` and a network interface
/// `/networkinterface/nic` between them, created with relative ends.
pub async fn linked(server: &TestServer) {
    expect(&server.json("PUT", "/compute/vm", Some(serde_json::json!({"kind": COMPUTE}))).await, 201);
    expect(&server.json("PUT", "/network/net", Some(serde_json::json!({"kind": NETWORK}))).await, 201);
    let link = serde_json::json!({"kind": NETWORKINTERFACE, "source": {"location": "/compute/vm"},
                      "target": {"location": "/network/net"},
                      "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}});
    expect(&server.json("PUT", "/networkinterface/nic", Some(link)).await, 201);
}

/// A request with exactly these headers and body: no Content-Type unless given (the
/// [`TestServer::send`] family adds one to every body). The caller checks the status.
pub async fn send_exactly(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
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

/// Sends `request` (a whole HTTP/1.1 request, as bytes on the wire) over a bare connection and
/// reads the answer until the server closes it: for what an HTTP client library would not send.
pub async fn raw_request(server: &TestServer, request: &str) -> Result<Reply, String> {
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no end of the header section")?;
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).ok_or("no status")?;
    let mut headers = HeaderMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':')
            && let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.trim().as_bytes()), HeaderValue::from_str(v.trim()))
        {
            headers.append(k, v);
        }
    }
    Ok(Reply { status, headers, text: body.to_string() })
}

/// Asserts a status, showing the body when it differs.
#[track_caller]
pub fn expect(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "unexpected status; body: {}", reply.text);
}

/// Asserts an error status whose JSON error message mentions every one of `words`.
#[track_caller]
pub fn expect_error(reply: &Reply, status: u16, words: &[&str]) {
    expect(reply, status);
    let msg = reply.error_message();
    for w in words {
        assert!(msg.contains(w), "error message should mention {w:?}: {msg}");
    }
}

/// Paths of the guest components built by build.rs.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
