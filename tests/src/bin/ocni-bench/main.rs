//! `ocni-bench`: throughput and latency of ocni over HTTP on loopback, each figure a ratio to a
//! trivial hyper server answering the same bytes, measured in the same run by the same small
//! load generator (HTTP/1.1 keep-alive connections, each sending requests back to back).
//!
//! Run a release build: `cargo run --release -p ocni-tests --bin ocni-bench -- [MODE] [OPTIONS]`.
//!
//! * `all` (the default): the suite of issue 6 (GET one entity in two renderings, a page of a
//!   10,000-entity collection, durable creates at 1 and N connections, creates with the compute
//!   handler bound, an action through the handler), as one table; then the group-commit ratio,
//!   what a handler adds to a create, and the cost of one handler call through the runtime.
//! * `listing`: paged and filtered listings of a kind holding 10,000 and 100,000 entities, as a
//!   ratio of the larger to the smaller: does the cost grow with the page or with the total?
//! * `handlers`: the cost of one handler call through the runtime directly, and creates over
//!   HTTP without and with the compute handler bound.
//! * `serve`: what users run: the `ocni serve` release binary as a child process beside a
//!   trivial hyper server process, each pinned to core 0, loaded by `wrk` pinned to core 1
//!   (GETs, durable creates, actions through a handler), alternated over rounds (`binary.rs`).
//! * `etcd`: the etcd engine beside redb: GET and durable creates on a redb node, on one node
//!   of a 3-member etcd cluster and on two nodes at once (`cluster.rs`).
//!
//! Options: `--connections N`, `--seconds S` (per run), `--rounds R` (runs of each operation,
//! interleaved with the others of its group to cancel drift), `--dir PATH` (where the data
//! directories go: a durable commit costs what that file system's fsync costs), `--only TEXT`
//! (`all`, `serve`: only the operations whose name contains TEXT), `--sizes N,M` (`listing`),
//! `--ocni PATH` (`serve`: the binary, by default `ocni` beside this one).

mod binary;
mod cluster;
mod handlers;
mod listing;
mod load;
mod suite;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ocni_server::Config;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

use crate::load::Req;

pub use ocni_tests::{COMPUTE, JSON};

const USAGE: &str = "usage: ocni-bench [all|listing|handlers] [--connections N] [--seconds S] [--rounds R] \
                     [--dir PATH] [--only TEXT] [--sizes N,M] [--compute WASM]\n       \
                     ocni-bench serve [--ocni PATH] [--connections N] [--seconds S] [--rounds R] [--dir PATH] [--only TEXT]\n       \
                     ocni-bench etcd [--ocni PATH] [--connections N] [--seconds S] [--rounds R] [--dir PATH]";

/// The command line.
pub struct Opts {
    pub mode: String,
    pub connections: Option<usize>,
    pub seconds: f64,
    pub rounds: usize,
    pub dir: PathBuf,
    pub only: Option<String>,
    pub sizes: Vec<usize>,
    pub ocni: Option<PathBuf>,
    /// A compute handler component to measure instead of the Rust one (`guests/handlers/compute`),
    /// such as the JavaScript or Python build of the same handler.
    pub compute: Option<PathBuf>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, String> {
        let mut o = Opts {
            mode: "all".into(),
            connections: None,
            seconds: 5.0,
            rounds: 2,
            dir: std::env::temp_dir(),
            only: None,
            sizes: vec![10_000, 100_000],
            ocni: None,
            compute: None,
        };
        let mut it = args.iter();
        let mut first = true;
        while let Some(a) = it.next() {
            if first && !a.starts_with("--") {
                o.mode = a.clone();
                first = false;
                continue;
            }
            first = false;
            let mut value = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
            let bad = |v: &str| format!("{a}: cannot read {v:?}");
            match a.as_str() {
                "--connections" | "-c" => {
                    let v = value()?;
                    o.connections = Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad(&v))?);
                }
                "--seconds" | "-s" => {
                    let v = value()?;
                    o.seconds = v.parse().ok().filter(|s: &f64| *s > 0.0).ok_or_else(|| bad(&v))?;
                }
                "--rounds" | "-r" => {
                    let v = value()?;
                    o.rounds = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad(&v))?;
                }
                "--dir" => o.dir = PathBuf::from(value()?),
                "--only" => o.only = Some(value()?),
                "--ocni" => o.ocni = Some(PathBuf::from(value()?)),
                "--compute" => o.compute = Some(PathBuf::from(value()?)),
                "--sizes" => {
                    let v = value()?;
                    o.sizes = v
                        .split(',')
                        // Whole pages of 100, and a middle page past the first.
                        .map(|s| s.trim().parse().ok().filter(|n: &usize| *n >= 200 && n.is_multiple_of(100)))
                        .collect::<Option<Vec<usize>>>()
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| bad(&v))?;
                }
                "--help" | "-h" => return Err(String::new()),
                _ => return Err(format!("unknown option {a:?}")),
            }
        }
        if !["all", "listing", "handlers", "serve", "etcd"].contains(&o.mode.as_str()) {
            return Err(format!("unknown mode {:?}", o.mode));
        }
        Ok(o)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

/// The runtimes: the servers (ocni and the trivial ones) and the load generator each get their
/// own runtime and threads; on a 2-core machine they share the cores, the same way for both
/// servers.
pub struct Bench {
    pub opts: Opts,
    pub servers: Runtime,
    pub client: Runtime,
}

/// An ocni server of the real code (`ocni_server::open` + `serve`) on `127.0.0.1:0`.
pub struct Ocni {
    pub addr: SocketAddr,
    _app: Arc<ocni_server::App>,
    _dir: tempfile::TempDir,
}

impl Bench {
    pub fn start_ocni(&self) -> Ocni {
        let dir = tempfile::Builder::new()
            .prefix("ocni-bench-")
            .tempdir_in(&self.opts.dir)
            .unwrap_or_else(|e| panic!("a data directory in {}: {e}", self.opts.dir.display()));
        let app = ocni_server::open(Config::new(dir.path().join("data"))).expect("open the server");
        let addr = self.servers.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("its address");
            tokio::spawn(ocni_server::serve(listener, Arc::clone(&app), std::future::pending()));
            addr
        });
        Ocni { addr, _app: app, _dir: dir }
    }

    /// One request that must be answered with `status`.
    pub fn expect(&self, addr: SocketAddr, req: Req, status: u16) -> load::Answer {
        self.client.block_on(load::expect(addr, &req, status))
    }

    /// The compute handler's component: `--compute`, else the Rust one.
    pub fn compute_wasm(&self) -> Vec<u8> {
        match &self.opts.compute {
            Some(path) => std::fs::read(path).unwrap_or_else(|e| panic!("--compute {}: {e}", path.display())),
            None => std::fs::read(ocni_tests::guests::COMPUTE).expect("the compute guest is built by tests/build.rs"),
        }
    }

    /// Uploads the compute handler (as `compute`).
    pub fn upload_compute_handler(&self, addr: SocketAddr) {
        let wasm = self.compute_wasm();
        let req =
            Req { content_type: "application/wasm", ..Req::with_body(hyper::Method::PUT, "/-/handlers/compute", wasm) };
        self.expect(addr, req, 201);
    }

    /// The fixtures the suites share: the compute at [`ONE`] (for GETs), and `conns` active
    /// computes `/compute/act-{i}`, created through the compute handler and started (one per
    /// connection, for the actions); the compute kind is left unbound.
    pub fn computes_for_get_and_actions(&self, addr: SocketAddr, conns: usize) {
        use hyper::Method;
        self.expect(addr, Req::with_body(Method::PUT, ONE, compute_body("one")), 201);
        self.upload_compute_handler(addr);
        self.bind_compute(addr, true);
        for i in 0..conns {
            let path = format!("/compute/act-{i}");
            self.expect(addr, Req::with_body(Method::PUT, path.as_str(), compute_body(&format!("act-{i}"))), 201);
            self.expect(addr, Req::with_body(Method::POST, format!("{path}?action=start"), ""), 200);
        }
        self.bind_compute(addr, false);
    }

    /// Binds the compute kind to the compute handler, or (`false`) unbinds it.
    pub fn bind_compute(&self, addr: SocketAddr, bound: bool) {
        let local: Vec<&str> = if bound { vec!["compute"] } else { vec![] };
        let body = serde_json::json!({"providers": [{"OCCI_ID": COMPUTE, "Provider": {"local": local}}]});
        self.expect(addr, Req::with_body(hyper::Method::PUT, "/-/", body.to_string()), 200);
    }
}

/// The compute every suite GETs.
pub const ONE: &str = "/compute/bench-vm";

/// A compute create body; `tag` makes it unique.
pub fn compute_body(tag: &str) -> String {
    format!(
        r#"{{"kind":"{COMPUTE}","title":"bench {tag}","attributes":{{"occi.compute.cores":2,"occi.compute.memory":4.0,"occi.compute.hostname":"vm-{tag}.example"}}}}"#
    )
}

/// Creates of fresh computes (each body differs: a new title and host name).
pub fn creates() -> load::Gen {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    std::sync::Arc::new(move |_, _| {
        let tag = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string();
        Req::with_body(hyper::Method::POST, "/compute/", compute_body(&tag))
    })
}

/// Creates computes `{prefix}{i:07}` for every `i` of `ids` through `POST /compute/` with many
/// entities per request; those for which `needle` holds get the host name `needle.example`
/// (and `occi.compute.share` 7, not indexed).
pub fn fill(
    bench: &Bench,
    addr: SocketAddr,
    prefix: &str,
    ids: std::ops::Range<usize>,
    needle: impl Fn(usize) -> bool,
) {
    const BATCH: usize = 1000;
    let mut start = ids.start;
    while start < ids.end {
        let end = (start + BATCH).min(ids.end);
        let resources: Vec<serde_json::Value> = (start..end)
            .map(|i| {
                let host = if needle(i) { "needle.example".to_string() } else { format!("h{i}.example") };
                let mut e = serde_json::json!({"kind": COMPUTE, "id": format!("{prefix}{i:07}"), "attributes": {
                    "occi.compute.cores": 2, "occi.compute.memory": 4.0, "occi.compute.hostname": host}});
                // The needles again, by an attribute that is not indexed.
                if needle(i) {
                    e["attributes"]["occi.compute.share"] = 7.into();
                }
                e
            })
            .collect();
        let body = serde_json::json!({ "resources": resources }).to_string();
        bench.expect(addr, Req::with_body(hyper::Method::POST, "/compute/", body), 201);
        start = end;
    }
}

/// The machine, for the record: CPUs, model, kernel, load.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {kernel}, load average {load}")
}

/// The file system type holding `dir` (from /proc/self/mounts), for the record: on tmpfs an
/// fsync is free and a durable commit costs nothing.
fn file_system(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(point).then(|| (point.len(), kind.to_string()))
        })
        .max()
        .map_or_else(|| "unknown".into(), |(_, kind)| kind)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("trivial") {
        // The trivial server process of mode `serve`.
        binary::trivial_main(&args[1..]);
        return;
    }
    let opts = match Opts::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ocni-bench: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; run with --release for meaningful figures");
    }
    println!("command: ocni-bench {}", args.join(" "));
    println!("machine: {}", machine());
    println!("data: {} ({})", opts.dir.display(), file_system(&opts.dir));
    let bench = Bench {
        servers: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime"),
        client: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime"),
        opts,
    };
    match bench.opts.mode.as_str() {
        "listing" => listing::run(&bench),
        "handlers" => handlers::run(&bench),
        "serve" => binary::run(&bench),
        "etcd" => cluster::run_all(&bench),
        _ => suite::run(&bench),
    }
    // The servers run for ever: stop with the process, not by waiting for them.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}
