//! Issue 14's acceptance test: two ocni nodes (child processes, each with its own data
//! directory) on one 3-member etcd cluster, under the same random key prefix.
//!
//! * A tenant created on node A works on node B; a handler uploaded on A is bound on B; a mixin
//!   and a kind defined on A are used on B, each right after A answered.
//! * 16 clients (4 tenants, 4 clients each, half of them sent to each node) write for a few
//!   seconds per round: creates, updates, deletes, mixin association, compute actions through
//!   the compute handler, links (created, deleted, and deleted with their source). Round
//!   `baseline`: nothing happens; `leader-kill`: the etcd leader is SIGKILLed, then restarted;
//!   `follower-kill`: the same with a follower; `node-kill`: node B is SIGKILLed, then
//!   restarted (its clients retry on A meanwhile).
//! * A client retries an answer of 5xx or 429 and a connection refused (on the other node):
//!   neither may have changed anything (an error answer for a write that happened is a
//!   violation, as issue 14 requires). An outcome it cannot know (the connection broke, a
//!   timeout) it resolves by reading the entity: what it reads must be the state before or
//!   after the write. Every fourth acknowledged write is read back on the other node at once
//!   (the write must be visible there).
//! * After: every entity of every client is read on both nodes and must be exactly what its
//!   acknowledged writes made it; every collection lists exactly the live entities, the mixin's
//!   collection exactly those that carry it, the link collection exactly the live links, each
//!   with both ends present. The longest write stall of each round is printed
//!   (`cluster: round ...` lines, `--nocapture`).
//!
//! `OCNI_CLUSTER_ON_REDB=1` runs the same test with one redb node playing both nodes (the etcd
//! members are still killed, to no effect): it checks the test itself without the etcd engine.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ocni_server::{Config, EtcdTarget, Secret};
use ocni_tests::etcd::EtcdCluster;
use ocni_tests::{ADMIN_TOKEN, COMPUTE, JSON, NETWORK, NETWORKINTERFACE, Reply, Tenant, TestServer, expect, guests};
use serde_json::{Value, json};

/// Where a child node keeps its data and writes its address.
const CHILD_DIR: &str = "OCNI_CLUSTER_CHILD_DIR";
/// The child node's store URL (empty: redb in its data directory).
const CHILD_STORE: &str = "OCNI_CLUSTER_CHILD_STORE";

const TENANTS: usize = 4;
const CLIENTS: usize = 16;
const TAGGED: &str = "http://example.com/cluster#tagged";
const TAGGED_LOC: &str = "/tagged/";
const WIDGET: &str = "http://example.com/cluster#widget";
const SIZE: &str = "example.widget.size";
const CORES: &str = "occi.compute.cores";
const STATE: &str = "occi.compute.state";
const MAC: &str = "00:11:22:33:44:55";

/// How long one request may take before its outcome counts as unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a client keeps retrying one write (error answers, refused connections).
const WRITE_BUDGET: Duration = Duration::from_secs(60);
/// The longest stall this test accepts (issue 14 aims at about a second; CI machines are slow
/// and shared, so the figure is printed and only a hang fails the test).
const STALL_LIMIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------- the nodes

/// Not a test on its own: an ocni node of the cluster test, which runs this test binary again
/// with [`CHILD_DIR`] set (so that it can be killed with SIGKILL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_node_for_the_cluster_test() {
    let Some(dir) = std::env::var_os(CHILD_DIR).map(PathBuf::from) else { return };
    let store = std::env::var(CHILD_STORE).unwrap_or_default();
    let mut config = Config::new(dir.join("data"));
    if !store.is_empty() {
        config.store = Some(store.parse::<EtcdTarget>().unwrap());
    }
    config.admin_token = Some(Secret::admin_token(ADMIN_TOKEN).unwrap());
    // The test measures stalls, not the rate limit; a handler call on a loaded 2-core machine
    // can take longer than the default 100 ms.
    config.tenant_defaults.requests_per_second = 1_000_000;
    config.runtime.deadline = Duration::from_secs(5);
    let server = TestServer::start_with(config, None).await;
    std::fs::write(dir.join("address.tmp"), &server.base).unwrap();
    std::fs::rename(dir.join("address.tmp"), dir.join("address")).unwrap();
    std::future::pending::<()>().await;
}

/// A node process: killed (SIGKILL) and reaped when dropped.
struct Node {
    dir: PathBuf,
    store: String,
    process: Option<Child>,
    base: String,
}

impl Node {
    async fn start(dir: PathBuf, store: &str) -> Node {
        std::fs::create_dir_all(&dir).unwrap();
        let mut node = Node { dir, store: store.to_string(), process: None, base: String::new() };
        node.spawn().await;
        node
    }

    /// Starts the process and waits for its address (a new port at every start).
    async fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("address"));
        let log = std::fs::File::options().create(true).append(true).open(self.dir.join("node.log")).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_node_for_the_cluster_test", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &self.dir)
            .env(CHILD_STORE, &self.store)
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let started = Instant::now();
        self.base = loop {
            if let Ok(base) = std::fs::read_to_string(self.dir.join("address")) {
                break base;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the ocni node in {} exited ({status}) before serving; its log ends:\n{}",
                    self.dir.display(),
                    self.log_tail()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the ocni node did not start; its log ends:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.process = Some(child);
    }

    fn kill(&mut self) {
        let mut p = self.process.take().expect("the node is running");
        p.kill().unwrap();
        p.wait().unwrap();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

// ---------------------------------------------------------------------- what a client knows

/// A compute entity as its client's acknowledged writes made it.
#[derive(Clone, Debug, PartialEq)]
struct Compute {
    cores: i64,
    title: String,
    active: bool,
    tagged: bool,
    /// Whether the link `/networkinterface/nic-{id}` (to the client's network) exists.
    nic: bool,
}

/// Reads a compute's rendering (the `nic` from its inline links).
fn parse_compute(id: &str, v: &Value) -> Compute {
    Compute {
        cores: v["attributes"][CORES].as_i64().unwrap_or(-1),
        title: v["title"].as_str().unwrap_or_default().to_string(),
        active: v["attributes"][STATE] == "active",
        tagged: v["mixins"].as_array().is_some_and(|m| m.iter().any(|x| x == TAGGED)),
        nic: v["links"].as_array().is_some_and(|l| l.iter().any(|l| l["id"] == nic_of(id))),
    }
}

fn nic_of(id: &str) -> String {
    format!("nic-{id}")
}

fn net_of(client: usize) -> String {
    format!("net-c{client}")
}

/// The two node addresses clients send to (slot 0: node A, slot 1: node B; both the one node
/// on redb), and the signal to stop.
struct Shared {
    addrs: RwLock<[String; 2]>,
    stop: AtomicBool,
    http: reqwest::Client,
}

impl Shared {
    fn addr(&self, slot: usize) -> String {
        self.addrs.read().unwrap()[slot].clone()
    }

    async fn send(
        &self,
        token: &str,
        slot: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, reqwest::Error> {
        let url = format!("{}{path}", self.addr(slot));
        let mut req = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
            .timeout(REQUEST_TIMEOUT)
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", JSON);
        if let Some(b) = body {
            req = req.header("Content-Type", JSON).body(b.to_string());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Ok(Reply { status, headers, text: resp.text().await? })
    }

    /// Every entity of a collection, through every page, as (id, rendering).
    async fn list(&self, token: &str, slot: usize, path: &str) -> Result<Vec<(String, Value)>, String> {
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        while let Some(p) = next.take() {
            let r = self.send(token, slot, "GET", &p, None).await.map_err(|e| format!("GET {p}: {e}"))?;
            if r.status != 200 {
                return Err(format!("GET {p}: {} {}", r.status, r.text));
            }
            let v = r.json();
            for member in ["resources", "links"] {
                for e in v[member].as_array().cloned().unwrap_or_default() {
                    out.push((e["id"].as_str().unwrap_or_default().to_string(), e));
                }
            }
            // `Link: <http://host:port/path?...>; rel="next"`
            next = r.header("link").and_then(|l| {
                let url = l.strip_prefix('<')?.strip_suffix(">; rel=\"next\"")?;
                let rest = url.split_once("://").map_or(url, |(_, r)| r);
                Some(rest[rest.find('/')?..].to_string())
            });
        }
        Ok(out)
    }
}

/// When a client's write was acknowledged, and how long it took (retries included).
#[derive(Clone, Copy)]
struct Ack {
    at: Instant,
    latency: Duration,
}

/// One client: its own computes (ids `c{n}-{k}`), written through its home node.
struct Client {
    n: usize,
    token: String,
    home: usize,
    shared: Arc<Shared>,
    rng: u64,
    created: usize,
    /// Every compute it ever wrote: its state (`None`: deleted).
    model: BTreeMap<String, Option<Compute>>,
    acks: Vec<Ack>,
    violations: Vec<String>,
    /// Error answers and refused connections retried.
    retried: usize,
    /// Outcomes not known (resolved by reading), and how many of them had happened.
    unknown: usize,
    unknown_applied: usize,
}

enum Outcome {
    /// 2xx from node `slot`.
    Done(usize),
    /// An answer that says the write did not happen (recorded as a violation by the caller
    /// when the model said it should have worked).
    Refused(String),
    /// The outcome is not known.
    Unknown(String),
}

impl Client {
    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    async fn run(mut self) -> Client {
        while !self.shared.stop.load(Ordering::SeqCst) {
            self.step().await;
        }
        self
    }

    /// One write, chosen at random among those the model says must succeed.
    async fn step(&mut self) {
        let live: Vec<(String, Compute)> =
            self.model.iter().filter_map(|(id, c)| c.clone().map(|c| (id.clone(), c))).collect();
        let r = self.random() % 100;
        if live.len() < 4 || r < 25 {
            self.created += 1;
            let id = format!("c{}-{}", self.n, self.created);
            let after = Compute {
                cores: 1 + (self.random() % 8) as i64,
                title: format!("{id} v0"),
                active: false,
                tagged: self.random().is_multiple_of(3),
                nic: false,
            };
            let mut body = json!({"kind": COMPUTE, "id": id, "title": after.title,
                "attributes": {CORES: after.cores, "occi.compute.memory": 1.0}});
            if after.tagged {
                body["mixins"] = json!([TAGGED]);
            }
            self.apply("create", &id, None, Some(after), "POST", "/compute/", Some(body)).await;
            return;
        }
        let (id, before) = live[(self.random() % live.len() as u64) as usize].clone();
        let path = format!("/compute/{id}");
        let mut after = before.clone();
        if r < 45 {
            after.cores = 1 + (self.random() % 8) as i64;
            after.title = format!("{id} v{}", self.random() % 1000);
            let body = json!({"kind": COMPUTE, "title": after.title, "attributes": {CORES: after.cores}});
            self.apply("update", &id, Some(before), Some(after), "POST", &path, Some(body)).await;
        } else if r < 57 {
            self.apply("delete", &id, Some(before), None, "DELETE", &path, None).await;
        } else if r < 72 {
            after.tagged = !before.tagged;
            let method = if after.tagged { "POST" } else { "DELETE" };
            self.apply("mixin", &id, Some(before), Some(after), method, TAGGED_LOC, Some(json!([path]))).await;
        } else if r < 87 {
            after.active = !before.active;
            let action = format!("{path}?action={}", if after.active { "start" } else { "stop" });
            self.apply("action", &id, Some(before), Some(after), "POST", &action, None).await;
        } else if !before.nic {
            after.nic = true;
            let body = json!({
                "kind": NETWORKINTERFACE, "id": nic_of(&id),
                "source": {"location": path, "kind": COMPUTE},
                "target": {"location": format!("/network/{}", net_of(self.n)), "kind": NETWORK},
                "attributes": {"occi.networkinterface.mac": MAC},
            });
            self.apply("link", &id, Some(before), Some(after), "POST", "/networkinterface/", Some(body)).await;
        } else {
            after.nic = false;
            let link = format!("/networkinterface/{}", nic_of(&id));
            self.apply("unlink", &id, Some(before), Some(after), "DELETE", &link, None).await;
        }
    }

    /// Sends a write that takes compute `id` from `before` to `after` and keeps the model.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &mut self,
        op: &str,
        id: &str,
        before: Option<Compute>,
        after: Option<Compute>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) {
        match self.write(method, path, body.as_ref()).await {
            Outcome::Done(slot) => {
                self.model.insert(id.to_string(), after.clone());
                // Read your write on the other node, now (skipped when it cannot answer).
                if self.acks.len().is_multiple_of(4) {
                    let other = 1 - slot;
                    if let Ok(seen) = self.observe(other, id).await
                        && seen != after
                    {
                        self.violations.push(format!(
                            "{op} {id} acknowledged by node {slot}, then node {other} read {seen:?}, not {after:?}"
                        ));
                    }
                }
            }
            Outcome::Refused(why) => {
                self.violations.push(format!("{op} {id} ({method} {path}) refused: {why}"));
                // It did not happen: the model keeps `before`, checked at the end.
            }
            Outcome::Unknown(why) => {
                self.unknown += 1;
                let seen = self.observe_any(id).await;
                match seen {
                    Ok(seen) if seen == after => {
                        self.unknown_applied += 1;
                        self.model.insert(id.to_string(), after);
                    }
                    Ok(seen) if seen == before => {
                        self.model.insert(id.to_string(), before);
                    }
                    Ok(seen) => {
                        self.violations.push(format!(
                            "{op} {id} had an unknown outcome ({why}); then it was {seen:?}: neither before \
                             {before:?} nor after {after:?}"
                        ));
                        self.model.insert(id.to_string(), seen);
                    }
                    Err(e) => self.violations.push(format!("{op} {id}: unknown outcome ({why}), then no read: {e}")),
                }
            }
        }
    }

    /// Sends one write until it is answered 2xx, refused (another 4xx) or its outcome is
    /// unknown; retries 5xx, 429 and refused connections (the latter on the other node).
    async fn write(&mut self, method: &str, path: &str, body: Option<&Value>) -> Outcome {
        let started = Instant::now();
        let mut slot = self.home;
        let mut last = String::new();
        while started.elapsed() < WRITE_BUDGET {
            match self.shared.send(&self.token, slot, method, path, body).await {
                Ok(r) if (200..300).contains(&r.status) => {
                    self.acks.push(Ack { at: Instant::now(), latency: started.elapsed() });
                    return Outcome::Done(slot);
                }
                Ok(r) if r.status >= 500 || r.status == 429 => {
                    last = format!("{} {}", r.status, r.text);
                    self.retried += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(r) => return Outcome::Refused(format!("{} {}", r.status, r.text)),
                Err(e) if e.is_connect() => {
                    last = format!("node {slot}: {e}");
                    self.retried += 1;
                    slot = 1 - slot;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Outcome::Unknown(format!("node {slot}: {e}")),
            }
        }
        Outcome::Refused(format!("no acknowledgement within {WRITE_BUDGET:?}; last: {last}"))
    }

    /// Compute `id` as node `slot` has it (`None`: 404); an error when it cannot answer.
    async fn observe(&self, slot: usize, id: &str) -> Result<Option<Compute>, String> {
        let r = self.shared.send(&self.token, slot, "GET", &format!("/compute/{id}"), None).await;
        let r = r.map_err(|e| e.to_string())?;
        match r.status {
            200 => Ok(Some(parse_compute(id, &r.json()))),
            404 => Ok(None),
            s => Err(format!("{s} {}", r.text)),
        }
    }

    /// [`Client::observe`] on whichever node answers, retrying for [`WRITE_BUDGET`].
    async fn observe_any(&self, id: &str) -> Result<Option<Compute>, String> {
        let started = Instant::now();
        let mut slot = self.home;
        loop {
            match self.observe(slot, id).await {
                Ok(seen) => return Ok(seen),
                Err(e) if started.elapsed() > WRITE_BUDGET => return Err(e),
                Err(_) => {
                    slot = 1 - slot;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------- rounds

struct Round {
    name: &'static str,
    start: Instant,
    end: Instant,
    events: Vec<String>,
}

/// Longest time a client went without an acknowledged write within `round` (from its previous
/// acknowledgement, or the round's start), the slowest acknowledged write that ended in it,
/// and how many were acknowledged in it.
fn stall(clients: &[Client], round: &Round) -> (Duration, usize, Duration, usize) {
    let (mut longest, mut who, mut slowest, mut count) = (Duration::ZERO, 0, Duration::ZERO, 0);
    for c in clients {
        let mut previous = c.acks.iter().rev().find(|a| a.at < round.start).map_or(round.start, |a| a.at);
        for a in c.acks.iter().filter(|a| a.at >= round.start && a.at < round.end) {
            count += 1;
            slowest = slowest.max(a.latency);
            if a.at - previous > longest {
                (longest, who) = (a.at - previous, c.n);
            }
            previous = a.at;
        }
        if round.end - previous > longest {
            (longest, who) = (round.end - previous, c.n);
        }
    }
    (longest, who, slowest, count)
}

async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

// ---------------------------------------------------------------------- the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_three_etcd_members_lose_no_acknowledged_write() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    let on_redb = std::env::var_os("OCNI_CLUSTER_ON_REDB").is_some();
    let test_started = Instant::now();
    let mut etcd = EtcdCluster::start(3).await;
    let prefix = format!("/ocni-cluster-{:016x}", std::collections::hash_map::RandomState::new().hash_one(0u8));
    let store = if on_redb { String::new() } else { format!("{}{prefix}", etcd.url()) };
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = vec![Node::start(dir.path().join("a"), &store).await];
    if !on_redb {
        nodes.push(Node::start(dir.path().join("b"), &store).await);
    }
    let b = nodes.len() - 1; // node B (on redb, the one node)
    println!(
        "cluster: etcd {store:?}, nodes {} and {}, started in {} ms",
        nodes[0].base,
        nodes[b].base,
        test_started.elapsed().as_millis()
    );

    // ------------------------------------------------------------------ written on A, used on B
    let (node_a, node_b) = (TestServer::remote(&nodes[0].base), TestServer::remote(&nodes[b].base));
    let mut tokens = Vec::new();
    for t in 0..TENANTS {
        let on_a = node_a.create_tenant(&format!("t{t}"), None).await;
        let on_b = Tenant { server: &node_b, name: on_a.name.clone(), token: on_a.token.clone() };
        expect(&on_b.get("/-/").await, 200);
        expect(&on_a.upload("compute", guests::COMPUTE).await, 201);
        let bind = json!({"providers": [{"OCCI_ID": COMPUTE, "Provider": {"local": ["compute"]}}]});
        expect(&on_b.json("PUT", "/-/", Some(bind)).await, 200);
        let categories = json!({
            "mixins": [{"term": "tagged", "scheme": "http://example.com/cluster#", "location": TAGGED_LOC}],
            "kinds": [{"term": "widget", "scheme": "http://example.com/cluster#", "location": "/widget/",
                "attributes": {SIZE: {"type": "integer", "mutable": true, "required": false}}}],
        });
        expect(&on_a.json("POST", "/-/", Some(categories)).await, 200);
        let widget = json!({"kind": WIDGET, "id": "w", "mixins": [TAGGED], "attributes": {SIZE: 3}});
        expect(&on_b.json("POST", "/widget/", Some(widget)).await, 201);
        // The handler runs on B: it sets the state of a new compute, and drives its actions.
        expect(&on_b.json("POST", "/compute/", Some(json!({"kind": COMPUTE, "id": "probe"}))).await, 201);
        assert_eq!(on_b.get_ok("/compute/probe").await["attributes"][STATE], "inactive");
        expect(&on_b.json("POST", "/compute/probe?action=start", None).await, 200);
        assert_eq!(on_a.get_ok("/compute/probe").await["attributes"][STATE], "active");
        assert_eq!(on_a.get_ok("/widget/w").await["attributes"][SIZE], 3);
        expect(&on_a.json("DELETE", "/compute/probe", None).await, 200);
        expect(&on_a.json("DELETE", "/widget/w", None).await, 200);
        expect(&on_b.get("/compute/probe").await, 404);
        expect(&on_b.get("/widget/w").await, 404);
        for n in (0..CLIENTS).filter(|n| n % TENANTS == t) {
            let net = json!({"kind": NETWORK, "id": net_of(n)});
            expect(&on_b.json("POST", "/network/", Some(net)).await, 201);
        }
        tokens.push(on_a.token.clone());
    }
    println!("cluster: setup on both nodes done at {} ms", test_started.elapsed().as_millis());

    // ------------------------------------------------------------------ 16 clients, 4 rounds
    let shared = Arc::new(Shared {
        addrs: RwLock::new([nodes[0].base.clone(), nodes[b].base.clone()]),
        stop: AtomicBool::new(false),
        http: reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(5)).build().unwrap(),
    });
    let workers: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let client = Client {
                n,
                token: tokens[n % TENANTS].clone(),
                home: n % 2,
                shared: shared.clone(),
                rng: 0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1).wrapping_mul(0xff51_afd7_ed55_8ccd),
                created: 0,
                model: BTreeMap::new(),
                acks: Vec::new(),
                violations: Vec::new(),
                retried: 0,
                unknown: 0,
                unknown_applied: 0,
            };
            tokio::spawn(client.run())
        })
        .collect();

    let mut rounds = Vec::new();
    let start = Instant::now();
    sleep(Duration::from_secs(3)).await;
    rounds.push(Round { name: "baseline", start, end: Instant::now(), events: Vec::new() });

    for name in ["leader-kill", "follower-kill"] {
        let start = Instant::now();
        let mut events = Vec::new();
        sleep(Duration::from_secs(2)).await;
        let leader = etcd.leader().await;
        let victim = if name == "leader-kill" { leader } else { (leader + 1) % etcd.len() };
        let killed = Instant::now();
        etcd.kill(victim);
        events.push(format!("m{victim} killed at +{} ms", (killed - start).as_millis()));
        sleep(Duration::from_secs(2)).await;
        let restarted = Instant::now();
        etcd.restart(victim).await;
        events.push(format!(
            "restarted at +{} ms, healthy in {} ms",
            (restarted - start).as_millis(),
            restarted.elapsed().as_millis()
        ));
        let new_leader = etcd.leader().await;
        events.push(format!("leader m{leader} before, m{new_leader} after"));
        sleep(Duration::from_secs(2)).await;
        rounds.push(Round { name, start, end: Instant::now(), events });
    }

    let start = Instant::now();
    let mut events = Vec::new();
    sleep(Duration::from_secs(2)).await;
    nodes[b].kill();
    events.push(format!("node B killed at +{} ms", start.elapsed().as_millis()));
    sleep(Duration::from_secs(1)).await;
    let restarted = Instant::now();
    nodes[b].spawn().await;
    shared.addrs.write().unwrap()[1] = nodes[b].base.clone();
    if on_redb {
        shared.addrs.write().unwrap()[0] = nodes[b].base.clone();
    }
    events.push(format!(
        "restarted at +{} ms, serving in {} ms",
        (restarted - start).as_millis(),
        restarted.elapsed().as_millis()
    ));
    sleep(Duration::from_secs(2)).await;
    rounds.push(Round { name: "node-kill", start, end: Instant::now(), events });

    shared.stop.store(true, Ordering::SeqCst);
    let mut clients = Vec::new();
    for w in workers {
        clients.push(w.await.unwrap());
    }
    println!("cluster: writes stopped at {} ms", test_started.elapsed().as_millis());

    // ------------------------------------------------------------------ the figures
    let mut failures = Vec::new();
    for round in &rounds {
        let (longest, who, slowest, count) = stall(&clients, round);
        println!(
            "cluster: round {}: longest write stall {} ms (client {who}), slowest acknowledged write {} ms, \
             {count} writes acknowledged in {} ms{}{}",
            round.name,
            longest.as_millis(),
            slowest.as_millis(),
            (round.end - round.start).as_millis(),
            if round.events.is_empty() { "" } else { "; " },
            round.events.join(", "),
        );
        if count == 0 {
            failures.push(format!("round {}: no write acknowledged", round.name));
        }
        if longest > STALL_LIMIT {
            failures.push(format!(
                "round {}: writes stalled {} ms (limit {STALL_LIMIT:?})",
                round.name,
                longest.as_millis()
            ));
        }
    }
    let sum = |f: fn(&Client) -> usize| clients.iter().map(f).sum::<usize>();
    println!(
        "cluster: {} writes acknowledged, {} error answers or refused connections retried, {} outcomes unknown \
         ({} of them had happened)",
        sum(|c| c.acks.len()),
        sum(|c| c.retried),
        sum(|c| c.unknown),
        sum(|c| c.unknown_applied),
    );
    for c in &clients {
        failures.extend(c.violations.iter().map(|v| format!("client {}: {v}", c.n)));
    }

    // ------------------------------------------------------------------ every write, on both nodes
    // (A node that keeps failing to answer is given up on after a few errors, so that a hung
    // node fails the test in seconds rather than one request timeout per entity.)
    let mut unanswered = [0; 2];
    for c in &clients {
        for (id, want) in &c.model {
            for slot in [0, 1] {
                if unanswered[slot] > 5 {
                    continue;
                }
                match c.observe(slot, id).await {
                    Ok(seen) if seen == *want => {}
                    Ok(seen) => failures.push(format!("node {slot}: /compute/{id} is {seen:?}, acknowledged {want:?}")),
                    Err(e) => {
                        unanswered[slot] += 1;
                        failures.push(format!("node {slot}: /compute/{id}: {e}"));
                    }
                }
            }
        }
    }
    for (t, token) in tokens.iter().enumerate() {
        let mine: Vec<&Client> = clients.iter().filter(|c| c.n % TENANTS == t).collect();
        let live: BTreeMap<String, Compute> =
            mine.iter().flat_map(|c| c.model.iter()).filter_map(|(id, c)| Some((id.clone(), c.clone()?))).collect();
        let nets: BTreeSet<String> = mine.iter().map(|c| net_of(c.n)).collect();
        for slot in [0, 1] {
            let node = format!("tenant t{t} on node {slot}");
            let list = |path: &str| {
                let shared = shared.clone();
                let path = path.to_string();
                async move { shared.list(token, slot, &path).await }
            };
            match list("/compute/").await {
                Ok(listed) => {
                    let ids: BTreeSet<&String> = listed.iter().map(|(id, _)| id).collect();
                    let want: BTreeSet<&String> = live.keys().collect();
                    if ids != want {
                        let extra: Vec<_> = ids.difference(&want).collect();
                        let missing: Vec<_> = want.difference(&ids).collect();
                        failures.push(format!("{node}: /compute/ lists {extra:?} too and misses {missing:?}"));
                    }
                    for (id, v) in &listed {
                        let Some(want) = live.get(id) else { continue };
                        let mut seen = parse_compute(id, v);
                        seen.nic = want.nic; // links are checked from their own collection
                        if seen != *want {
                            failures.push(format!("{node}: /compute/ lists {id} as {seen:?}, acknowledged {want:?}"));
                        }
                    }
                }
                Err(e) => failures.push(format!("{node}: {e}")),
            }
            // The mixin's collection and the entities' mixins agree.
            match list(TAGGED_LOC).await {
                Ok(listed) => {
                    let ids: BTreeSet<String> = listed.into_iter().map(|(id, _)| id).collect();
                    let want: BTreeSet<String> =
                        live.iter().filter(|(_, c)| c.tagged).map(|(id, _)| id.clone()).collect();
                    if ids != want {
                        failures
                            .push(format!("{node}: {TAGGED_LOC} lists {ids:?}, the computes carrying it are {want:?}"));
                    }
                }
                Err(e) => failures.push(format!("{node}: {e}")),
            }
            match list("/network/").await {
                Ok(listed) => {
                    let ids: BTreeSet<String> = listed.into_iter().map(|(id, _)| id).collect();
                    if ids != nets {
                        failures.push(format!("{node}: /network/ lists {ids:?}, not {nets:?}"));
                    }
                }
                Err(e) => failures.push(format!("{node}: {e}")),
            }
            // Links: exactly the live ones, none dangling.
            match list("/networkinterface/").await {
                Ok(listed) => {
                    let want: BTreeSet<String> = live.iter().filter(|(_, c)| c.nic).map(|(id, _)| nic_of(id)).collect();
                    let ids: BTreeSet<String> = listed.iter().map(|(id, _)| id.clone()).collect();
                    if ids != want {
                        failures.push(format!("{node}: /networkinterface/ lists {ids:?}, the live links are {want:?}"));
                    }
                    for (id, v) in &listed {
                        let end = |e: &str| {
                            v[e]["location"]
                                .as_str()
                                .unwrap_or_default()
                                .rsplit('/')
                                .next()
                                .unwrap_or_default()
                                .to_string()
                        };
                        let (source, target) = (end("source"), end("target"));
                        if !live.contains_key(&source) || !nets.contains(&target) {
                            failures.push(format!("{node}: link {id} dangles: {source} -> {target}"));
                        }
                    }
                }
                Err(e) => failures.push(format!("{node}: {e}")),
            }
        }
    }

    println!("cluster: checked at {} ms", test_started.elapsed().as_millis());
    if !failures.is_empty() {
        for n in &nodes {
            eprintln!("node {} log ends:\n{}", n.dir.display(), n.log_tail());
        }
        let shown: Vec<&String> = failures.iter().take(40).collect();
        panic!(
            "{} failures (first {}):\n{}",
            failures.len(),
            shown.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
}
