//! Crash safety: SIGKILL `ocni serve` in the middle of a concurrent write load, restart it on the
//! same data directory and check that every acknowledged write survived, every acknowledged delete
//! stayed deleted, and every write in flight at the kill is either fully applied or not at all.
//!
//! The seed of the pseudo-random choices is printed; `OCNI_CRASH_SEED=N` replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const ROUNDS: usize = 20;
const WRITERS: usize = 4;
const KIND: &str = "http://schemas.ogf.org/occi/infrastructure#compute";
const OCCI_JSON: &str = "application/occi+json";

/// A running `ocni serve`; killed (SIGKILL) and reaped when dropped, so a panic leaves no server behind.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL ocni");
        self.child.wait().expect("reap ocni");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// xorshift64*: enough randomness for delays and operation mixes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that neighbouring seeds give unrelated streams
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Create(i64),
    Update(i64),
    Delete,
}

impl Op {
    /// The entity's state (cores, or absent) once the operation is applied.
    fn after(self) -> Option<i64> {
        match self {
            Op::Create(c) | Op::Update(c) => Some(c),
            Op::Delete => None,
        }
    }
}

/// What the client knows of one entity: its last acknowledged state and the operation sent but not
/// answered, if any. Each entity belongs to one writer, so at most one operation is in flight on it.
#[derive(Clone, Debug, Default)]
struct Entry {
    acked: Option<i64>,
    in_flight: Option<Op>,
}

type Model = Arc<Mutex<BTreeMap<String, Entry>>>;

#[derive(Default)]
struct WriterStats {
    creates: usize,
    updates: usize,
    deletes: usize,
    unexpected: Vec<String>,
}

fn compute_body(cores: i64, kind: bool) -> String {
    let mut body = json!({ "attributes": { "occi.compute.cores": cores } });
    if kind {
        body["kind"] = json!(KIND);
    }
    body.to_string()
}

async fn start(bin: &str, data: &Path, log: &Path) -> Server {
    for attempt in 0..5 {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            listener.local_addr().expect("local address").port()
        };
        let stderr = File::options().create(true).append(true).open(log).expect("open the server log");
        let child = Command::new(bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn ocni");
        let mut server = Server { child, base: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let probe = client.get(format!("{}/-/", server.base)).header("Accept", OCCI_JSON).send().await;
            if matches!(&probe, Ok(r) if r.status() == 200) {
                return server;
            }
            if let Some(status) = server.child.try_wait().expect("try_wait") {
                eprintln!("ocni on port {port} exited with {status} (attempt {attempt}); retrying on another port");
                break;
            }
            assert!(Instant::now() < deadline, "ocni did not answer GET /-/ within 30 s; see {}", log.display());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("ocni did not start in 5 attempts; see {}", log.display());
}

async fn writer(
    client: reqwest::Client,
    base: String,
    name: String,
    model: Model,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) -> WriterStats {
    let mut stats = WriterStats::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let (id, op) = {
            let mut m = model.lock().unwrap();
            let live: Vec<(String, i64)> = m.iter().filter_map(|(k, e)| e.acked.map(|c| (k.clone(), c))).collect();
            let r = rng.below(100);
            let (id, op) = if live.len() < 3 || (live.len() < 60 && r < 35) || (live.len() < 30 && r < 45) {
                n += 1;
                (format!("{name}-{n}"), Op::Create(1 + rng.below(32) as i64))
            } else {
                let (id, old) = live[rng.below(live.len() as u64) as usize].clone();
                if r < 75 {
                    let mut new = 1 + rng.below(32) as i64;
                    if new == old {
                        new = new % 32 + 1;
                    }
                    (id, Op::Update(new))
                } else {
                    (id, Op::Delete)
                }
            };
            // recorded before the request leaves: from here on the write may or may not land
            m.entry(id.clone()).or_default().in_flight = Some(op);
            (id, op)
        };
        let url = format!("{base}/compute/{id}");
        let (request, expected) = match op {
            Op::Create(c) => (client.put(&url).body(compute_body(c, true)), 201),
            Op::Update(c) => (client.post(&url).body(compute_body(c, false)), 201),
            Op::Delete => (client.delete(&url), 200),
        };
        let request = request.header("Content-Type", OCCI_JSON).header("Accept", OCCI_JSON);
        let status = match request.send().await {
            Ok(response) => response.status().as_u16(),
            // the server died (or never answered): the operation stays in flight
            Err(_) => break,
        };
        if status != expected {
            // not an acknowledgement of the write: leave it in flight (either state allowed) and stop
            stats.unexpected.push(format!("{op:?} on {id}: status {status}, expected {expected}"));
            break;
        }
        let mut m = model.lock().unwrap();
        let entry = m.get_mut(&id).expect("entry recorded before the request");
        entry.acked = op.after();
        entry.in_flight = None;
        match op {
            Op::Create(_) => stats.creates += 1,
            Op::Update(_) => stats.updates += 1,
            Op::Delete => stats.deletes += 1,
        }
    }
    stats
}

/// The entity's cores, `None` if it is absent (404); `Err` for anything that is not a whole,
/// well-formed compute entity as this test writes them.
async fn read_entity(client: &reqwest::Client, base: &str, id: &str) -> Result<Option<i64>, String> {
    let response = client
        .get(format!("{base}/compute/{id}"))
        .header("Accept", OCCI_JSON)
        .send()
        .await
        .map_err(|e| format!("GET failed: {e}"))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| format!("reading the body: {e}"))?;
    match status {
        404 => Ok(None),
        200 => {
            let v: Value = serde_json::from_str(&body).map_err(|e| format!("unparseable entity {body}: {e}"))?;
            let attrs = v["attributes"].as_object();
            let whole = v["kind"] == KIND
                && v["id"] == id
                && attrs.is_some_and(|a| a.len() == 2 && a.get("occi.compute.state") == Some(&json!("inactive")));
            match v["attributes"]["occi.compute.cores"].as_i64() {
                Some(cores) if whole => Ok(Some(cores)),
                _ => Err(format!("malformed entity: {body}")),
            }
        }
        _ => Err(format!("status {status}: {body}")),
    }
}

async fn list_ids(client: &reqwest::Client, base: &str) -> Result<BTreeSet<String>, String> {
    let response = client
        .get(format!("{base}/compute/"))
        .header("Accept", OCCI_JSON)
        .send()
        .await
        .map_err(|e| format!("GET /compute/ failed: {e}"))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| format!("reading the body: {e}"))?;
    if status != 200 {
        return Err(format!("GET /compute/: status {status}: {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("unparseable collection {body}: {e}"))?;
    let resources = v.get("resources").and_then(Value::as_array).cloned().unwrap_or_default();
    resources
        .iter()
        .map(|r| r["id"].as_str().map(str::to_owned).ok_or_else(|| format!("resource without id: {r}")))
        .collect()
}

#[derive(Default)]
struct Verified {
    entities: usize,
    live: usize,
    in_flight_landed: usize,
    in_flight_not_landed: usize,
}

/// Checks the restarted server against the model, then resets the model to what the server holds.
async fn verify(server: &Server, models: &[Model], round: usize, violations: &mut Vec<String>) -> Verified {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let mut out = Verified::default();
    let mut live = BTreeSet::new();
    let mut allowed_ids = BTreeSet::new();
    for model in models {
        let snapshot = model.lock().unwrap().clone();
        let mut next = BTreeMap::new();
        for (id, entry) in snapshot {
            out.entities += 1;
            if entry.acked.is_some() || entry.in_flight.is_some_and(|op| op.after().is_some()) {
                allowed_ids.insert(id.clone());
            }
            let observed = match read_entity(&client, &server.base, &id).await {
                Ok(observed) => observed,
                Err(e) => {
                    violations.push(format!("after round {round}: /compute/{id} (model {entry:?}): {e}"));
                    continue;
                }
            };
            match entry.in_flight {
                None if observed == entry.acked => {}
                Some(op) if observed == op.after() => out.in_flight_landed += 1,
                Some(_) if observed == entry.acked => out.in_flight_not_landed += 1,
                _ => violations.push(format!(
                    "after round {round}: /compute/{id} is {observed:?}, but the acknowledged state is {:?} \
                     and the operation in flight {:?}",
                    entry.acked, entry.in_flight
                )),
            }
            if let Some(cores) = observed {
                live.insert(id.clone());
                next.insert(id, Entry { acked: Some(cores), in_flight: None });
            }
        }
        *model.lock().unwrap() = next;
    }
    out.live = live.len();
    match list_ids(&client, &server.base).await {
        Ok(listed) => {
            if listed != live {
                violations.push(format!(
                    "after round {round}: GET /compute/ lists {} entities; missing {:?}, extra {:?} (not allowed by the \
                     model: {:?})",
                    listed.len(),
                    live.difference(&listed).collect::<Vec<_>>(),
                    listed.difference(&live).collect::<Vec<_>>(),
                    listed.difference(&allowed_ids).collect::<Vec<_>>(),
                ));
            }
        }
        Err(e) => violations.push(format!("after round {round}: {e}")),
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let bin = env!("CARGO_BIN_EXE_ocni");
    let seed = match std::env::var("OCNI_CRASH_SEED") {
        Ok(s) => s.parse().expect("OCNI_CRASH_SEED is a number"),
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64,
    };
    println!("crash_safety: seed {seed} (replay with OCNI_CRASH_SEED={seed})");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log = dir.path().join("ocni.log");
    let started = Instant::now();

    let models: Vec<Model> = (0..WRITERS).map(|_| Model::default()).collect();
    let mut violations = Vec::new();
    let (mut total_acked, mut total_in_flight, mut total_landed) = (0, 0, 0);
    for round in 0..=ROUNDS {
        let server = start(bin, &data, &log).await;
        if round > 0 {
            let v = verify(&server, &models, round - 1, &mut violations).await;
            total_landed += v.in_flight_landed;
            println!(
                "  verified after restart: {} entities checked, {} live, in flight: {} landed, {} did not",
                v.entities, v.live, v.in_flight_landed, v.in_flight_not_landed
            );
        }
        if round == ROUNDS {
            break;
        }

        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = models
            .iter()
            .enumerate()
            .map(|(w, model)| {
                tokio::spawn(writer(
                    client.clone(),
                    server.base.clone(),
                    format!("r{round}w{w}"),
                    model.clone(),
                    stop.clone(),
                    Rng::new(rng.next()),
                ))
            })
            .collect();
        let delay = 50 + rng.below(351);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        stop.store(true, Ordering::SeqCst);
        server.kill();
        let (mut creates, mut updates, mut deletes) = (0, 0, 0);
        for w in writers {
            let stats = w.await.expect("writer task");
            creates += stats.creates;
            updates += stats.updates;
            deletes += stats.deletes;
            violations.extend(stats.unexpected.into_iter().map(|u| format!("round {round}: {u}")));
        }
        let in_flight: usize =
            models.iter().map(|m| m.lock().unwrap().values().filter(|e| e.in_flight.is_some()).count()).sum();
        let acked = creates + updates + deletes;
        total_acked += acked;
        total_in_flight += in_flight;
        println!(
            "round {round:2}: SIGKILL after {delay:3} ms: {acked:3} acked ({creates} creates, {updates} updates, \
             {deletes} deletes), {in_flight} in flight at the kill"
        );
    }
    println!(
        "crash_safety: {ROUNDS} rounds, {total_acked} acknowledged operations, {total_in_flight} in flight at kills \
         ({total_landed} of them landed), {} violations, {:.1} s",
        violations.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(total_acked > 0, "no write was ever acknowledged; see {}", log.display());
    assert!(violations.is_empty(), "crash safety violations (seed {seed}):\n{}", violations.join("\n"));
}
