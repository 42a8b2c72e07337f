//! `ocni-bench serve`: what users run. The real `ocni serve` release binary as a child process
//! (its own data directory on disk, default logging to a file) and a trivial hyper server in a
//! process of its own (this binary's hidden `trivial` mode) answering the bytes ocni answered,
//! each pinned to core 0, loaded by `wrk` pinned to core 1, alternated over rounds.
//!
//! While the trivial server is measured, ocni is stopped (SIGSTOP), so that its background
//! threads take nothing from the core they share; it is continued for its own runs.

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::Method;

use crate::load::{Canned, Req};
use crate::{Bench, JSON, ONE, compute_body};

/// The CPU lists processes are pinned to: servers, load generator (`None`: fewer than 2 cores).
fn pins() -> Option<(&'static str, &'static str)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores >= 2).then_some(("0", "1"))
}

/// `cmd` under `taskset -c cpus`, or as is when not pinning.
fn pinned(cpus: Option<&str>, program: &Path) -> Command {
    match cpus {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// A free loopback port (bound then released: the child binds it next).
fn free_addr() -> SocketAddr {
    let l = StdListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("its address")
}

/// Waits until something accepts connections on `addr`; panics with `what` after 20 s.
fn wait_listening(addr: SocketAddr, what: &str, child: &mut Child) {
    let until = Instant::now() + Duration::from_secs(20);
    while StdStream::connect(addr).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(Instant::now() < until, "{what} did not listen on {addr} within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process, killed when dropped.
pub(crate) struct Proc {
    child: Child,
    pub addr: SocketAddr,
}

impl Proc {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{sig} {}", self.child.id());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One operation: a `wrk` run against either server.
struct Op {
    name: &'static str,
    connections: usize,
    /// Whether the compute handler is bound while it runs.
    handler: bool,
    /// The request, for the sample answer the trivial server replays.
    sample: Req,
    status: u16,
    /// A wrk Lua script (requests that differ), else a plain GET with `Accept: accept`.
    script: Option<String>,
    accept: &'static str,
    trivial: Option<Proc>,
    /// Per round: (trivial, ocni).
    rounds: Vec<(Wrk, Wrk)>,
}

/// What one wrk run reported.
#[derive(Clone, Debug, Default)]
pub(crate) struct Wrk {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Answers that were not the expected status, and socket errors.
    pub errors: u64,
}

/// wrk's durations (`790.00us`, `1.20ms`, `2.00s`) in microseconds.
fn micros(text: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

fn parse_wrk(out: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in out.lines() {
        let t = line.trim();
        let mut f = t.split_whitespace();
        match (f.next(), f.next()) {
            (Some("50%"), Some(v)) => w.p50_us = micros(v).unwrap_or(0.0),
            (Some("99%"), Some(v)) => w.p99_us = micros(v).unwrap_or(0.0),
            (Some("Requests/sec:"), Some(v)) => w.rps = v.parse().unwrap_or(0.0),
            _ => {}
        }
        if let Some(n) = t.strip_prefix("Non-2xx or 3xx responses:") {
            w.errors += n.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(rest) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            w.errors += rest.split(',').filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok()).sum::<u64>();
        }
        if let Some(n) = t.strip_prefix("unexpected status:") {
            w.errors += n.trim().parse::<u64>().unwrap_or(0);
        }
    }
    w
}

/// The Lua lines that count answers other than `status` (printed as `unexpected status: N`).
fn status_check(status: u16) -> String {
    format!(
        r#"
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
unexpected = 0
function response(status, headers, body)
  if status ~= {status} then unexpected = unexpected + 1 end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("unexpected") end
  io.write(string.format("unexpected status: %d\n", n))
end
"#
    )
}

/// A wrk script of creates of fresh computes, titles and host names unique per run (`{tag}`
/// is replaced by the run's tag).
pub(crate) fn create_script() -> String {
    let body = compute_body("%s").replace('"', "\\\"");
    format!(
        r#"local n = 0
function request()
  n = n + 1
  local tag = "{{tag}}" .. n
  local body = string.format("{body}", tag, tag)
  return wrk.format("POST", "/compute/", {{["Content-Type"] = "{JSON}", ["Accept"] = "{JSON}"}}, body)
end
{check}"#,
        check = status_check(201)
    )
}

/// A wrk script of `restart` actions on the active computes `act-0`..`act-{count-1}`, in turn.
fn action_script(count: usize) -> String {
    format!(
        r#"local n = 0
function request()
  local i = n % {count}
  n = n + 1
  return wrk.format("POST", "/compute/act-" .. i .. "?action=restart", {{["Content-Type"] = "{JSON}", ["Accept"] = "{JSON}"}}, "")
end
{check}"#,
        check = status_check(200)
    )
}

/// Runs wrk against `addr` for `op`.
fn run_wrk(bench: &Bench, op: &Op, addr: SocketAddr, tag: &str, scripts: &Path) -> Wrk {
    let load = Load { connections: op.connections, script: op.script.as_deref(), accept: op.accept, pin: true };
    wrk(bench, &load, addr, tag, scripts).spawn_and_wait()
}

/// One wrk load: `connections`, a Lua script (else a GET of [`ONE`] with `Accept: accept`),
/// pinned to the load generator's CPU or not.
pub(crate) struct Load<'a> {
    pub connections: usize,
    pub script: Option<&'a str>,
    pub accept: &'a str,
    pub pin: bool,
}

/// A wrk command, ready to run.
pub(crate) struct WrkCmd(Command);

impl WrkCmd {
    /// Runs it and reads what it reported.
    pub fn spawn_and_wait(self) -> Wrk {
        self.spawn().wait()
    }

    pub fn spawn(mut self) -> WrkRun {
        let child = self.0.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap_or_else(|e| {
            panic!("cannot run wrk ({e}): install it (Debian: apt-get install -y wrk)");
        });
        WrkRun(child)
    }
}

/// A wrk process running.
pub(crate) struct WrkRun(Child);

impl WrkRun {
    pub fn wait(self) -> Wrk {
        let out = self.0.wait_with_output().expect("wrk's output");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "wrk failed: {text}");
        let w = parse_wrk(&text);
        assert!(w.rps > 0.0, "wrk reported no throughput:\n{text}");
        w
    }
}

/// The wrk command of `load` against `addr` (its script written under `scripts`, named by `tag`).
pub(crate) fn wrk(bench: &Bench, load: &Load<'_>, addr: SocketAddr, tag: &str, scripts: &Path) -> WrkCmd {
    let secs = bench.opts.seconds.round().max(1.0) as u64;
    let mut cmd = pinned(pins().filter(|_| load.pin).map(|p| p.1), Path::new("wrk"));
    cmd.args(["-t1", "--latency", "--timeout", "10s"])
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{secs}s"))
        .arg("-H")
        .arg(format!("Accept: {}", load.accept));
    if let Some(script) = load.script {
        let file = scripts.join(format!("{tag}.lua"));
        std::fs::write(&file, script.replace("{tag}", tag)).expect("write a wrk script");
        cmd.arg("-s").arg(file);
    }
    let url = if load.script.is_some() { format!("http://{addr}/") } else { format!("http://{addr}{ONE}") };
    cmd.arg(url);
    WrkCmd(cmd)
}

/// The `ocni` binary beside this one (both are built into `target/release`).
pub(crate) fn ocni_binary(given: Option<&Path>) -> PathBuf {
    let path = given
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::current_exe().expect("this binary's path").with_file_name("ocni"));
    assert!(
        path.is_file(),
        "no ocni binary at {}: build it (cargo build --release -p ocni-server --bin ocni) or pass --ocni PATH",
        path.display()
    );
    path
}

/// Starts `ocni serve` (the binary at `ocni`, pinned to `cpus` if given) on a free port, with
/// its data directory `data`, `--store` if given, and default logging to the file `log`.
pub(crate) fn start_ocni(ocni: &Path, cpus: Option<&str>, data: &Path, store: Option<&str>, log: &Path) -> Proc {
    let log = std::fs::File::create(log).expect("the log file");
    let addr = free_addr();
    let mut cmd = pinned(cpus, ocni);
    cmd.arg("serve").arg("--listen").arg(addr.to_string()).arg("--data").arg(data);
    if let Some(store) = store {
        cmd.arg("--store").arg(store);
    }
    let mut child = cmd
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", ocni.display()));
    wait_listening(addr, "ocni", &mut child);
    Proc { child, addr }
}

/// Starts the trivial server (this binary, mode `trivial`) answering `canned`.
fn start_trivial(canned: &Canned, dir: &Path, n: usize) -> Proc {
    let file = dir.join(format!("canned-{n}.json"));
    let headers: Vec<(String, String)> =
        canned.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().expect("a text header").to_string())).collect();
    let json = serde_json::json!({
        "status": canned.status.as_u16(),
        "headers": headers,
        "body": String::from_utf8(canned.body.to_vec()).expect("a text body"),
    });
    std::fs::write(&file, json.to_string()).expect("write the canned answer");
    let addr = free_addr();
    let me = std::env::current_exe().expect("this binary's path");
    let mut child = pinned(pins().map(|p| p.0), &me)
        .arg("trivial")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--canned")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the trivial server");
    wait_listening(addr, "the trivial server", &mut child);
    Proc { child, addr }
}

/// Mode `trivial` (started by `serve`): a hyper server answering the canned answer in `--canned`
/// on `--listen`, on a default multi-thread tokio runtime (as `ocni serve` has).
pub fn trivial_main(args: &[String]) {
    let mut listen = None;
    let mut canned = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => listen = it.next().and_then(|v| v.parse::<SocketAddr>().ok()),
            "--canned" => canned = it.next().map(PathBuf::from),
            _ => {}
        }
    }
    let (Some(listen), Some(canned)) = (listen, canned) else {
        eprintln!("usage: ocni-bench trivial --listen ADDR --canned FILE");
        std::process::exit(2);
    };
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&canned).expect("read the canned answer")).expect("JSON");
    let headers = v["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| {
            let name = hyper::header::HeaderName::from_bytes(h[0].as_str().expect("a name").as_bytes()).expect("name");
            let value = hyper::header::HeaderValue::from_str(h[1].as_str().expect("a value")).expect("value");
            (name, value)
        })
        .collect();
    let canned = Canned {
        status: hyper::StatusCode::from_u16(v["status"].as_u64().expect("status") as u16).expect("status"),
        headers,
        body: bytes::Bytes::from(v["body"].as_str().expect("body").to_string()),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        crate::load::serve_canned(listener, canned).await;
    });
}

pub fn run(bench: &Bench) {
    let conns = bench.opts.connections.unwrap_or(64);
    match pins() {
        Some((s, c)) => println!("pinning: servers to CPU {s}, load generator (wrk -t1) to CPU {c}"),
        None => println!("pinning: none (fewer than 2 cores): servers and load generator share the core"),
    }
    let ocni_path = ocni_binary(bench.opts.ocni.as_deref());
    println!("ocni: {} serve (default logging, to a file)", ocni_path.display());
    let dir = tempfile::Builder::new()
        .prefix("ocni-bench-serve-")
        .tempdir_in(&bench.opts.dir)
        .unwrap_or_else(|e| panic!("a directory in {}: {e}", bench.opts.dir.display()));
    let cpus = pins().map(|p| p.0);
    let ocni = start_ocni(&ocni_path, cpus, &dir.path().join("data"), None, &dir.path().join("ocni.log"));
    let addr = ocni.addr;

    // Fixtures: the GET entity and one active compute per connection for the actions.
    bench.computes_for_get_and_actions(addr, conns);

    let get = |name, accept| Op {
        name,
        connections: conns,
        handler: false,
        sample: Req::get(ONE, accept),
        status: 200,
        script: None,
        accept,
        trivial: None,
        rounds: Vec::new(),
    };
    let create = |c| Op {
        name: "create (durable)",
        connections: c,
        handler: false,
        sample: Req::with_body(Method::POST, "/compute/", compute_body("sample")),
        status: 201,
        script: Some(create_script()),
        accept: JSON,
        trivial: None,
        rounds: Vec::new(),
    };
    let action = |c| Op {
        name: "action through handler",
        connections: c,
        handler: true,
        sample: Req::with_body(Method::POST, "/compute/act-0?action=restart", ""),
        status: 200,
        script: Some(action_script(conns)),
        accept: JSON,
        trivial: None,
        rounds: Vec::new(),
    };
    let mut ops = vec![
        get("GET entity, OCCI JSON", JSON),
        get("GET entity, text/occi", "text/occi"),
        create(1),
        create(conns),
        action(1),
        action(conns),
    ];
    if let Some(only) = &bench.opts.only {
        let only = only.to_lowercase();
        ops.retain(|op| op.name.to_lowercase().contains(&only));
    }
    let mut bound = false;
    let mut bind = |want: bool| {
        if want != bound {
            bench.bind_compute(addr, want);
            bound = want;
        }
    };
    for (n, op) in ops.iter_mut().enumerate() {
        bind(op.handler);
        let sample = bench.expect(addr, op.sample.clone(), op.status);
        op.trivial = Some(start_trivial(&Canned::from_answer(&sample), dir.path(), n));
    }
    let o = &bench.opts;
    println!(
        "wrk -t1 -c<conn> -d{}s --latency, {} rounds; in each round every operation runs on the trivial server (ocni stopped), then on ocni",
        o.seconds.round().max(1.0),
        o.rounds
    );
    println!(
        "{:<6} {:<24} {:>5}  {:>10} {:>8} {:>8}  {:>10} {:>8} {:>8} {:>6}  {:>11}",
        "round",
        "operation",
        "conn",
        "bare req/s",
        "p50 us",
        "p99 us",
        "ocni req/s",
        "p50 us",
        "p99 us",
        "errors",
        "ocni/bare"
    );
    for round in 0..o.rounds {
        for (n, op) in ops.iter_mut().enumerate() {
            bind(op.handler);
            let trivial = op.trivial.as_ref().expect("started above");
            ocni.signal("STOP");
            let t = run_wrk(bench, op, trivial.addr, &format!("r{round}o{n}t"), dir.path());
            ocni.signal("CONT");
            let s = run_wrk(bench, op, addr, &format!("r{round}o{n}n"), dir.path());
            println!(
                "{:<6} {:<24} {:>5}  {:>10.0} {:>8.0} {:>8.0}  {:>10.0} {:>8.0} {:>8.0} {:>6}  {:>11.3}",
                round + 1,
                op.name,
                op.connections,
                t.rps,
                t.p50_us,
                t.p99_us,
                s.rps,
                s.p50_us,
                s.p99_us,
                t.errors + s.errors,
                s.rps / t.rps.max(1e-9)
            );
            op.rounds.push((t, s));
        }
    }
    println!();
    for op in &ops {
        let mut ratios: Vec<f64> = op.rounds.iter().map(|(t, s)| s.rps / t.rps.max(1e-9)).collect();
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        let ocni: Vec<String> = op.rounds.iter().map(|(_, s)| format!("{:.0}", s.rps)).collect();
        println!(
            "{} at {} connections: ocni/bare median {median:.3} (min {:.3}, max {:.3}); ocni req/s {}",
            op.name,
            op.connections,
            ratios[0],
            ratios[ratios.len() - 1],
            ocni.join(", ")
        );
    }
    let rps = |name: &str, c: usize| {
        ops.iter().find(|op| op.name == name && op.connections == c).map(|op| {
            let mut v: Vec<f64> = op.rounds.iter().map(|(_, s)| s.rps).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
    };
    if let (Some(one), Some(many)) = (rps("create (durable)", 1), rps("create (durable)", conns))
        && conns > 1
    {
        println!(
            "group commit: durable creates at {conns} connections / 1 connection = {:.2} ({many:.0} vs {one:.0} req/s, medians; target: at least 10)",
            many / one.max(1e-9)
        );
    }
    drop(ocni);
}
