//! `ocni-bench etcd`: the etcd engine beside redb, in one run. Three `ocni serve` release
//! binaries as child processes: one on redb (its data directory under `--dir`), two on one
//! 3-member etcd cluster of child processes (`etcd` from the PATH, data under a temporary
//! directory) under one key prefix. `wrk` loads one operation at a time: GET one entity (OCCI
//! JSON) and durable creates at 1 and N connections, on the redb node, on one etcd node, and on
//! both etcd nodes at once (two wrk processes, half the connections each; at 1 connection, one
//! each). Nothing is pinned: the cluster, the nodes and wrk share the machine's cores, as they
//! would on one host.

use std::net::SocketAddr;
use std::path::Path;

use hyper::Method;

use crate::binary::{Load, Proc, Wrk, create_script, ocni_binary, start_ocni, wrk};
use crate::load::Req;
use crate::{Bench, JSON, ONE, compute_body};

/// Starts `ocni serve`, not pinned, with its data directory `data` (and `--store`, if any).
fn start_node(bench: &Bench, data: &Path, store: Option<&str>, log: &Path) -> Proc {
    start_ocni(&ocni_binary(bench.opts.ocni.as_deref()), None, data, store, log)
}

/// Where one operation runs.
#[derive(Clone, Copy)]
enum Target {
    Redb,
    OneNode,
    TwoNodes,
}

/// Runs `load` on `target`, splitting the connections over both nodes for [`Target::TwoNodes`]:
/// the combined req/s, and the slower node's p50 and p99.
fn run(bench: &Bench, target: Target, load: &Load<'_>, nodes: &[SocketAddr; 3], tag: &str, dir: &Path) -> Wrk {
    let one = |addr, connections: usize, tag: &str| {
        let load = Load { connections, ..*load };
        wrk(bench, &load, addr, tag, dir)
    };
    match target {
        Target::Redb => one(nodes[0], load.connections, tag).spawn_and_wait(),
        Target::OneNode => one(nodes[1], load.connections, tag).spawn_and_wait(),
        Target::TwoNodes => {
            let half = (load.connections / 2).max(1);
            let a = one(nodes[1], half, &format!("{tag}a")).spawn();
            let b = one(nodes[2], half, &format!("{tag}b")).spawn();
            let (a, b) = (a.wait(), b.wait());
            Wrk {
                rps: a.rps + b.rps,
                p50_us: a.p50_us.max(b.p50_us),
                p99_us: a.p99_us.max(b.p99_us),
                errors: a.errors + b.errors,
            }
        }
    }
}

/// One round's req/s of an operation on each target.
struct Sample {
    redb: f64,
    one: f64,
    two: f64,
}

pub fn run_all(bench: &Bench) {
    let conns = bench.opts.connections.unwrap_or(64);
    let dir = tempfile::Builder::new()
        .prefix("ocni-bench-etcd-")
        .tempdir_in(&bench.opts.dir)
        .unwrap_or_else(|e| panic!("a directory in {}: {e}", bench.opts.dir.display()));
    let cluster = bench.client.block_on(ocni_tests::etcd::EtcdCluster::start(3));
    let store = format!("{}/bench", cluster.url());
    println!("etcd: 3 members (etcd {}), data under {}", etcd_version(), cluster.dir().display());
    println!("nodes: redb in {}; two nodes on {store}; nothing pinned", bench.opts.dir.display());
    let redb = start_node(bench, &dir.path().join("redb"), None, &dir.path().join("redb.log"));
    let a = start_node(bench, &dir.path().join("a"), Some(&store), &dir.path().join("a.log"));
    let b = start_node(bench, &dir.path().join("b"), Some(&store), &dir.path().join("b.log"));
    let nodes = [redb.addr, a.addr, b.addr];
    for addr in [redb.addr, a.addr] {
        bench.expect(addr, Req::with_body(Method::PUT, ONE, compute_body("one")), 201);
    }
    let script = create_script();
    let ops: Vec<(&str, Load)> = vec![
        ("GET entity, OCCI JSON", Load { connections: conns, script: None, accept: JSON, pin: false }),
        ("create (durable)", Load { connections: 1, script: Some(&script), accept: JSON, pin: false }),
        ("create (durable)", Load { connections: conns, script: Some(&script), accept: JSON, pin: false }),
    ];
    let o = &bench.opts;
    println!("wrk -t1 -c<conn> -d{}s --latency, {} rounds", o.seconds.round().max(1.0), o.rounds);
    println!(
        "{:<6} {:<22} {:>5}  {:>10} {:>7} {:>7}  {:>10} {:>7} {:>7}  {:>10} {:>7} {:>7}  {:>6}  {:>7} {:>7}",
        "round",
        "operation",
        "conn",
        "redb req/s",
        "p50 us",
        "p99 us",
        "1 node",
        "p50 us",
        "p99 us",
        "2 nodes",
        "p50 us",
        "p99 us",
        "errors",
        "1n/redb",
        "2n/redb"
    );
    let mut ratios: Vec<(String, Vec<Sample>)> =
        ops.iter().map(|(name, l)| (format!("{name} at {} connections", l.connections), Vec::new())).collect();
    for round in 0..o.rounds {
        for (n, (name, load)) in ops.iter().enumerate() {
            let tag = |t: &str| format!("r{round}o{n}{t}");
            let r = run(bench, Target::Redb, load, &nodes, &tag("r"), dir.path());
            let one = run(bench, Target::OneNode, load, &nodes, &tag("e"), dir.path());
            let two = run(bench, Target::TwoNodes, load, &nodes, &tag("f"), dir.path());
            println!(
                "{:<6} {:<22} {:>5}  {:>10.0} {:>7.0} {:>7.0}  {:>10.0} {:>7.0} {:>7.0}  {:>10.0} {:>7.0} {:>7.0}  {:>6}  {:>7.3} {:>7.3}",
                round + 1,
                name,
                load.connections,
                r.rps,
                r.p50_us,
                r.p99_us,
                one.rps,
                one.p50_us,
                one.p99_us,
                two.rps,
                two.p50_us,
                two.p99_us,
                r.errors + one.errors + two.errors,
                one.rps / r.rps.max(1e-9),
                two.rps / r.rps.max(1e-9)
            );
            ratios[n].1.push(Sample { redb: r.rps, one: one.rps, two: two.rps });
        }
    }
    println!();
    for (name, runs) in &ratios {
        let median = |f: &dyn Fn(&Sample) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "{name}: medians redb {:.0} req/s, 1 etcd node {:.0} req/s ({:.3} of redb), 2 etcd nodes {:.0} req/s ({:.3} of redb)",
            median(&|r| r.redb),
            median(&|r| r.one),
            median(&|r| r.one / r.redb.max(1e-9)),
            median(&|r| r.two),
            median(&|r| r.two / r.redb.max(1e-9)),
        );
    }
    drop((redb, a, b));
    drop(cluster);
}

/// `etcd --version`'s first line.
fn etcd_version() -> String {
    std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.lines().next().map(|l| l.trim_start_matches("etcd Version: ").to_string()))
        .unwrap_or_else(|| "unknown version".into())
}
