//! `ocni-bench all`: the operations of issue 6 against one ocni server, each beside a trivial
//! hyper server answering the bytes ocni answered for it (same status, content type, location
//! and body), runs interleaved to cancel drift.

use std::sync::Arc;

use hyper::{Method, StatusCode};

use crate::load::{self, Canned, Gen, Req, Run};
use crate::{Bench, JSON, ONE, creates};

/// Entities in the listed kind collection.
const COLLECTION: usize = 10_000;
/// Entities per listed page.
const PAGE: usize = 100;
/// One measured operation.
struct Op {
    name: &'static str,
    connections: usize,
    /// Whether the compute handler is bound while it runs.
    handler: bool,
    status: StatusCode,
    make: Gen,
    /// Merged runs: trivial, ocni.
    trivial: Vec<Run>,
    ocni: Vec<Run>,
}

impl Op {
    fn new(name: &'static str, connections: usize, handler: bool, status: u16, make: Gen) -> Op {
        Op {
            name,
            connections,
            handler,
            status: StatusCode::from_u16(status).expect("a status"),
            make,
            trivial: Vec::new(),
            ocni: Vec::new(),
        }
    }
}

pub fn run(bench: &Bench) {
    let conns = bench.opts.connections.unwrap_or(64);
    let ocni = bench.start_ocni();
    let addr = ocni.addr;

    // Fixtures: the GET entity, one active compute per connection for the actions, and the
    // rest of the listed collection.
    bench.computes_for_get_and_actions(addr, conns);
    let fill = COLLECTION.saturating_sub(1 + conns);
    eprintln!("filling /compute/ to {COLLECTION} entities");
    crate::fill(bench, addr, "list-", 0..fill, |_| false);
    let pages = (COLLECTION / PAGE) as u64;

    let get = |accept: &'static str| -> Gen { Arc::new(move |_, _| Req::get(ONE, accept)) };
    let list: Gen = Arc::new(move |conn, seq| {
        // Pages vary over the run and between connections: late pages cost a longer skip.
        let page = (conn as u64 * 37 + seq) % pages + 1;
        Req::get(format!("/compute/?page={page}&number={PAGE}"), JSON)
    });
    let action: Gen =
        Arc::new(|conn, _| Req::with_body(Method::POST, format!("/compute/act-{conn}?action=restart"), ""));
    let mut groups: Vec<Vec<Op>> = vec![
        vec![
            Op::new("GET entity, OCCI JSON", conns, false, 200, get(JSON)),
            Op::new("GET entity, text/occi", conns, false, 200, get("text/occi")),
        ],
        vec![Op::new("GET page of 10,000 (100 per page)", conns, false, 200, list)],
        vec![
            Op::new("create (durable)", 1, false, 201, creates()),
            Op::new("create, handler bound", 1, true, 201, creates()),
            Op::new("create (durable)", conns, false, 201, creates()),
        ],
        vec![
            Op::new("action through handler", 1, true, 200, Arc::clone(&action)),
            Op::new("action through handler", conns, true, 200, action),
        ],
    ];
    if let Some(only) = &bench.opts.only {
        let only = only.to_lowercase();
        for g in &mut groups {
            g.retain(|op| op.name.to_lowercase().contains(&only));
        }
    }

    let o = &bench.opts;
    println!(
        "{} s per run, {} rounds; in each round every operation of a group runs on the trivial server, then on ocni",
        o.seconds, o.rounds
    );
    let mut bound = false;
    let mut bind = |want: bool| {
        if want != bound {
            bench.bind_compute(addr, want);
            bound = want;
        }
    };
    for group in &mut groups {
        // The baseline of each operation answers what ocni answers to it.
        let mut trivial = Vec::new();
        for op in group.iter() {
            bind(op.handler);
            let sample = bench.client.block_on(load::once(addr, &(op.make)(0, 0)));
            assert_eq!(sample.status, op.status, "{}: {}", op.name, sample.text());
            trivial.push(bench.servers.block_on(load::trivial_server(Canned::from_answer(&sample))));
        }
        for round in 0..o.rounds {
            for (op, &trivial) in group.iter_mut().zip(&trivial) {
                for (server, target) in [("trivial", trivial), ("ocni", addr)] {
                    if server == "ocni" {
                        bind(op.handler);
                    }
                    let make = Arc::clone(&op.make);
                    let run = bench.client.block_on(load::load(target, make, op.status, op.connections, o.duration()));
                    eprintln!(
                        "  round {} {:<34} {:>4} {:<8} {:>9.0} req/s  p50 {:>6} us  p99 {:>7} us  errors {}",
                        round + 1,
                        op.name,
                        op.connections,
                        server,
                        run.rps(),
                        run.pct(0.5),
                        run.pct(0.99),
                        run.errors
                    );
                    if let Some(e) = &run.first_error {
                        eprintln!("    first error: {e}");
                    }
                    if server == "ocni" { op.ocni.push(run) } else { op.trivial.push(run) }
                }
            }
        }
    }
    let ops: Vec<(Op, Run, Run)> = groups
        .into_iter()
        .flatten()
        .map(|mut op| {
            let t = Run::merge(std::mem::take(&mut op.trivial));
            let n = Run::merge(std::mem::take(&mut op.ocni));
            (op, t, n)
        })
        .collect();

    println!();
    println!(
        "{:<34} {:>5}  {:<8} {:>9} {:>8} {:>8} {:>7} {:>13}",
        "operation", "conn", "server", "req/s", "p50 us", "p99 us", "errors", "ocni/trivial"
    );
    for (op, t, n) in &ops {
        for (server, run) in [("trivial", t), ("ocni", n)] {
            let ratio = if server == "ocni" { format!("{:.3}", n.rps() / t.rps().max(1e-9)) } else { String::new() };
            println!(
                "{:<34} {:>5}  {:<8} {:>9.0} {:>8} {:>8} {:>7} {:>13}",
                op.name,
                op.connections,
                server,
                run.rps(),
                run.pct(0.5),
                run.pct(0.99),
                run.errors,
                ratio
            );
        }
    }
    println!();
    let find = |name: &str, c: usize| ops.iter().find(|(op, _, _)| op.name == name && op.connections == c);
    for (name, label) in [("GET entity, OCCI JSON", "OCCI JSON"), ("GET entity, text/occi", "text/occi")] {
        if let Some((_, t, n)) = find(name, conns) {
            println!(
                "GET one entity ({label}) at {conns} connections: ocni / trivial throughput {:.2} (target: at least 0.50)",
                n.rps() / t.rps().max(1e-9)
            );
        }
    }
    if let (Some((_, _, one)), Some((_, _, many))) = (find("create (durable)", 1), find("create (durable)", conns))
        && conns > 1
    {
        println!(
            "group commit: durable creates at {conns} connections / 1 connection = {:.2} ({:.0} vs {:.0} req/s; target: at least 10)",
            many.rps() / one.rps().max(1e-9),
            many.rps(),
            one.rps()
        );
    }
    if let (Some((_, _, without)), Some((_, _, with))) = (find("create (durable)", 1), find("create, handler bound", 1))
    {
        println!(
            "handler: the compute handler adds {} us at p50 to a create at 1 connection ({} us with, {} us without; target: at most 50)",
            with.pct(0.5) as i64 - without.pct(0.5) as i64,
            with.pct(0.5),
            without.pct(0.5)
        );
    }
    if bench.opts.only.is_none() || ops.iter().any(|(op, _, _)| op.handler) {
        let (p50, p99) = crate::handlers::call_cost(&bench.compute_wasm(), false);
        println!(
            "one handler call through the runtime directly (fresh instance + validate): p50 {p50:.1} us, p99 {p99:.1} us"
        );
        let (p50, p99) = crate::handlers::call_cost(&bench.compute_wasm(), true);
        println!(
            "the calls of one create through the runtime directly (fresh instance + validate + on-create): p50 {p50:.1} us, p99 {p99:.1} us"
        );
    }
    let errors: u64 = ops.iter().map(|(_, t, n)| t.errors + n.errors).sum();
    if errors > 0 {
        println!("errors: {errors} (see the first error of each run above)");
    }
}
