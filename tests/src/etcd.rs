//! A throwaway etcd cluster on loopback for tests that kill and restart its members (issue 14):
//! every member is a child process of the test (`etcd` from the PATH; Debian `etcd-server`),
//! with its data directory and log in a temporary directory of the cluster's own, on free
//! loopback ports below the kernel's ephemeral range (so that no outgoing connection is ever
//! given the port of a member that is down, and a restart finds it free). Members keep etcd's
//! defaults otherwise: fsync on, heartbeat 100 ms, election timeout 1 s.
//!
//! Health and leadership are read through etcd's HTTP gateway on the client port (`/health`,
//! which answers true only when the member has a leader and a linearizable read succeeds, and
//! `/v3/maintenance/status`), so no `etcdctl` process is started per check.

use std::fs::File;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a start or a restart may take before the test fails (2-core CI machines).
const STARTUP: Duration = Duration::from_secs(60);
/// How long [`EtcdCluster::leader`] waits for the live members to agree on a live leader.
const ELECTION: Duration = Duration::from_secs(30);

/// A running etcd cluster. Dropping it kills every member (SIGKILL) and removes its directory.
pub struct EtcdCluster {
    members: Vec<Member>,
    token: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

struct Member {
    client_port: u16,
    peer_port: u16,
    /// `None` while killed.
    process: Option<Child>,
}

impl EtcdCluster {
    /// Starts `n` members as one new cluster and waits until every one is healthy. A port
    /// taken between choosing it and etcd binding it makes a member exit: then the cluster is
    /// started again on other ports (three attempts).
    pub async fn start(n: usize) -> EtcdCluster {
        assert!(n >= 1, "an etcd cluster has at least one member");
        let dir = tempfile::Builder::new().prefix("ocni-etcd-").tempdir().unwrap();
        let token = format!("ocni-test-{}", dir.path().file_name().unwrap().to_string_lossy());
        let mut cluster = EtcdCluster { members: Vec::new(), token, client: reqwest::Client::new(), dir };
        for attempt in 1.. {
            let ports = free_ports(2 * n);
            cluster.members = (0..n)
                .map(|i| Member { client_port: ports[2 * i], peer_port: ports[2 * i + 1], process: None })
                .collect();
            for i in 0..n {
                let _ = std::fs::remove_dir_all(cluster.data_dir(i));
                cluster.spawn(i, "new");
            }
            match cluster.wait_healthy(STARTUP).await {
                Ok(()) => break,
                Err(e) if attempt < 3 => {
                    eprintln!("etcd cluster: {e}; starting it again on other ports");
                    cluster.kill_all();
                }
                Err(e) => panic!("the etcd cluster did not start: {e}"),
            }
        }
        cluster
    }

    /// The store URL naming every member (running or not), without a key prefix:
    /// `etcd://127.0.0.1:P1,127.0.0.1:P2,...`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.members.iter().map(|m| format!("127.0.0.1:{}", m.client_port)).collect();
        format!("etcd://{}", hosts.join(","))
    }

    /// The store URL naming member `i` only, without a key prefix.
    pub fn member_url(&self, i: usize) -> String {
        format!("etcd://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Compacts the cluster's history up to its current revision (through member `i`, which
    /// must be running), so that no watch can resume from before it.
    pub async fn compact(&self, i: usize) {
        let gateway = format!("http://127.0.0.1:{}/v3", self.members[i].client_port);
        let post = |path: &str, body: Value| self.client.post(format!("{gateway}{path}")).body(body.to_string()).send();
        // A range of one key ("\0", base64) for the header's revision; the gateway renders it
        // as a string.
        let range: Value = post("/kv/range", serde_json::json!({"key": "AA=="})).await.unwrap().json().await.unwrap();
        let revision = range["header"]["revision"].as_str().expect("a revision").to_string();
        let compacted =
            post("/kv/compaction", serde_json::json!({"revision": revision, "physical": true})).await.unwrap();
        assert!(compacted.status().is_success(), "compaction: {}", compacted.text().await.unwrap());
    }

    /// How many members the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no member (never: [`EtcdCluster::start`] starts at least one).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether member `i` is running (not killed).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].process.is_some()
    }

    /// The directory holding every member's data directory (`m{i}`) and log (`m{i}.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills member `i` with SIGKILL and reaps it: nothing it had not written to disk survives.
    pub fn kill(&mut self, i: usize) {
        let mut process = self.members[i].process.take().unwrap_or_else(|| panic!("etcd member m{i} is not running"));
        process.kill().unwrap();
        process.wait().unwrap();
    }

    /// Starts member `i` again, killed before, on its data directory and ports, and waits until
    /// every running member is healthy (the restarted one has rejoined and has a leader).
    pub async fn restart(&mut self, i: usize) {
        assert!(!self.is_running(i), "etcd member m{i} is running");
        self.spawn(i, "existing");
        if let Err(e) = self.wait_healthy(STARTUP).await {
            panic!("etcd member m{i} did not come back: {e}");
        }
    }

    /// The index of the current leader: the running member that every running member names as
    /// leader, once they agree and are a quorum of the cluster (waits through an election, up
    /// to 30 s).
    pub async fn leader(&self) -> usize {
        let quorum = self.members.len() / 2 + 1;
        let started = Instant::now();
        let mut last = String::new();
        loop {
            let mut ids = Vec::new(); // (index, member id, the leader it names)
            for (i, m) in self.members.iter().enumerate().filter(|(_, m)| m.process.is_some()) {
                match self.status(m.client_port).await {
                    Ok(s) => ids.push((i, s.0, s.1)),
                    Err(e) => last = format!("m{i}: {e}"),
                }
            }
            let running = self.members.iter().filter(|m| m.process.is_some()).count();
            if ids.len() == running && running >= quorum {
                let named = ids[0].2;
                if named != 0
                    && ids.iter().all(|(_, _, l)| *l == named)
                    && let Some((i, _, _)) = ids.iter().find(|(_, id, _)| *id == named)
                {
                    return *i;
                }
                last = format!("no agreed running leader: (member, id, leader it names) {ids:?}");
            }
            assert!(started.elapsed() < ELECTION, "the etcd cluster has no leader after {ELECTION:?}: {last}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Member `i`'s data directory.
    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("m{i}"))
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("m{i}.log"))
    }

    /// Starts member `i`'s process (`state`: `new` or `existing`), its output appended to its log.
    fn spawn(&mut self, i: usize, state: &str) {
        let initial: Vec<String> =
            self.members.iter().enumerate().map(|(j, m)| format!("m{j}=http://127.0.0.1:{}", m.peer_port)).collect();
        let log = File::options().create(true).append(true).open(self.log(i)).unwrap();
        let client = format!("http://127.0.0.1:{}", self.members[i].client_port);
        let peer = format!("http://127.0.0.1:{}", self.members[i].peer_port);
        let process = Command::new("etcd")
            .args(["--name", &format!("m{i}")])
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", state, "--initial-cluster-token", &self.token])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run etcd ({e}); Debian: apt-get install etcd-server etcd-client"));
        self.members[i].process = Some(process);
    }

    /// Waits until every running member answers `/health` true; an error when one exits or
    /// `limit` passes.
    async fn wait_healthy(&mut self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let mut unhealthy = Vec::new();
            for i in 0..self.members.len() {
                let Some(process) = self.members[i].process.as_mut() else { continue };
                if let Some(status) = process.try_wait().unwrap() {
                    self.members[i].process = None;
                    return Err(format!("member m{i} exited ({status}); its log ends:\n{}", self.log_tail(i)));
                }
                let url = format!("http://127.0.0.1:{}/health", self.members[i].client_port);
                let healthy = match self.client.get(&url).timeout(Duration::from_secs(2)).send().await {
                    Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["health"] == "true"),
                    Err(_) => false,
                };
                if !healthy {
                    unhealthy.push(i);
                }
            }
            if unhealthy.is_empty() {
                return Ok(());
            }
            if started.elapsed() > limit {
                let logs: Vec<String> =
                    unhealthy.iter().map(|&i| format!("m{i}'s log ends:\n{}", self.log_tail(i))).collect();
                return Err(format!("members {unhealthy:?} not healthy after {limit:?}; {}", logs.join("\n")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (member id, the leader it names, 0 for none) of the member at `client_port`.
    async fn status(&self, client_port: u16) -> Result<(u64, u64), String> {
        let url = format!("http://127.0.0.1:{client_port}/v3/maintenance/status");
        let reply = self.client.post(&url).body("{}").timeout(Duration::from_secs(2)).send().await;
        let v: Value = reply.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        // The gateway renders uint64 fields as JSON strings; an absent one is zero.
        let id = |v: &Value| v.as_str().map_or(Ok(0), |s| s.parse::<u64>().map_err(|e| format!("{e}: {s}")));
        Ok((id(&v["header"]["member_id"])?, id(&v["leader"])?))
    }

    /// The last lines of member `i`'s log, for failure messages (the directory goes with the
    /// cluster).
    fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.log(i)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    fn kill_all(&mut self) {
        for m in &mut self.members {
            if let Some(mut p) = m.process.take() {
                let _ = p.kill();
                let _ = p.wait();
            }
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// `n` distinct loopback TCP ports that were free a moment ago, chosen at random below the
/// ephemeral range (which outgoing connections take their ports from).
fn free_ports(n: usize) -> Vec<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
        .max(10001);
    let random = std::collections::hash_map::RandomState::new();
    let mut held = Vec::new();
    for draw in 0u64.. {
        if held.len() == n {
            break;
        }
        assert!(draw < 10_000, "no free loopback ports below {low}");
        let port = 10000 + (random.hash_one(draw) % u64::from(low - 10000)) as u16;
        // Binding holds the port until every one is chosen (and refuses a port chosen twice).
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key and value through the gateway (base64: "ocni-etcd-test", "kept").
    const KEY: &str = "b2NuaS1ldGNkLXRlc3Q=";
    const VALUE: &str = "a2VwdA==";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_leader_is_replaced_and_catches_up_after_its_restart() {
        let started = Instant::now();
        let mut cluster = EtcdCluster::start(3).await;
        println!("etcd: 3 members healthy in {} ms", started.elapsed().as_millis());
        let url = cluster.url();
        let target: ocni_store::EtcdTarget = url.parse().unwrap();
        assert_eq!(target.endpoints.len(), 3, "{url}");
        assert_eq!(target.prefix, "/ocni", "no prefix in {url}, so the default");

        let old = cluster.leader().await;
        let killed = Instant::now();
        cluster.kill(old);
        assert!(!cluster.is_running(old));
        let new = cluster.leader().await;
        println!("etcd: m{old} killed, m{new} leader {} ms later", killed.elapsed().as_millis());
        assert_ne!(new, old, "a killed member cannot lead");

        // A write the killed member missed, through the new leader.
        let client = reqwest::Client::new();
        let put = format!("http://127.0.0.1:{}/v3/kv/put", cluster.members[new].client_port);
        let reply = client.post(&put).body(format!(r#"{{"key":"{KEY}","value":"{VALUE}"}}"#)).send().await.unwrap();
        assert!(reply.status().is_success(), "{}", reply.text().await.unwrap());

        let restarted = Instant::now();
        cluster.restart(old).await;
        println!("etcd: m{old} healthy again {} ms after its restart", restarted.elapsed().as_millis());
        assert!(cluster.is_running(old));
        assert!(cluster.leader().await < 3);

        // Same data directory, rejoined: it catches up with the write it missed (a serializable
        // read answers from the member's own state).
        let range = format!("http://127.0.0.1:{}/v3/kv/range", cluster.members[old].client_port);
        let caught_up = Instant::now();
        loop {
            let body = format!(r#"{{"key":"{KEY}","serializable":true}}"#);
            let v: Value = client.post(&range).body(body).send().await.unwrap().json().await.unwrap();
            if v["kvs"][0]["value"] == VALUE {
                break;
            }
            assert!(caught_up.elapsed() < Duration::from_secs(10), "m{old} never saw the write: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
