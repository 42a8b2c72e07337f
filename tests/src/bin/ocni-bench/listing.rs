//! `ocni-bench listing`: does the cost of a collection listing grow with the page or with the
//! kind's total? One ocni server per size (10,000 and 100,000 computes by default), measured
//! in interleaved runs: the first, a middle and the last page of 100, by offset (`page=`) and
//! by cursor (`continue=`, the tokens found by walking the collection once), and a filtered
//! listing (an attribute filter body matching the same five entities at every size) with a
//! page, on an indexed attribute (`occi.compute.hostname`) and on one that is not
//! (`occi.compute.share`, which scans).

use std::sync::Arc;

use hyper::{Method, StatusCode};

use crate::load::{self, Gen, Req, Run};
use crate::{Bench, JSON};

const PAGE: usize = 100;
/// Entities the filter matches (all within the smallest size, so every size answers the same).
const NEEDLES: usize = 5;
const FILTER: &str = r#"{"resources":[{"attributes":{"occi.compute.hostname":"needle.example"}}]}"#;
/// The same needles by an attribute no category marks indexed: a scan.
const SCAN_FILTER: &str = r#"{"resources":[{"attributes":{"occi.compute.share":7}}]}"#;

/// The operations' names; [`requests`] makes each one's request for one server.
const OPS: [&str; 8] = [
    "first page",
    "middle page",
    "last page",
    "cursor first page",
    "cursor middle page",
    "cursor last page",
    "filtered indexed",
    "filtered scan",
];

/// The requests of [`OPS`] for a kind of `size` entities at `addr`.
fn requests(bench: &Bench, addr: std::net::SocketAddr, size: usize) -> Vec<Req> {
    let (middle, last) = (size / PAGE / 2, size.div_ceil(PAGE));
    let next = cursor_pages(bench, addr);
    // next[i] is the path of page i + 2 (1-based), as the Link of page i + 1 gave it.
    let cursor = |page: usize| Req::get(next[page - 2].clone(), JSON);
    vec![
        Req::get(format!("/compute/?page=1&number={PAGE}"), JSON),
        Req::get(format!("/compute/?page={middle}&number={PAGE}"), JSON),
        Req::get(format!("/compute/?page={last}&number={PAGE}"), JSON),
        Req::get(format!("/compute/?number={PAGE}"), JSON),
        cursor(middle),
        cursor(last),
        Req::with_body(Method::GET, format!("/compute/?number={PAGE}"), FILTER),
        Req::with_body(Method::GET, format!("/compute/?number={PAGE}"), SCAN_FILTER),
    ]
}

/// Walks /compute/ by cursor, `PAGE` at a time (as locations: cheap), and returns the path of
/// each next page, as the `Link: rel="next"` headers give them.
fn cursor_pages(bench: &Bench, addr: std::net::SocketAddr) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = format!("/compute/?number={PAGE}");
    loop {
        let a = bench.expect(addr, Req::get(path, "text/uri-list"), 200);
        let Some(link) = a.headers.get("link").and_then(|l| l.to_str().ok()) else { return out };
        let start = link.find("/compute/?continue=").expect("a cursor link");
        let end = link.find('>').expect("a link");
        path = link[start..end].to_string();
        out.push(path.clone());
    }
}

pub fn run(bench: &Bench) {
    let connections = bench.opts.connections.unwrap_or(8);
    let sizes = bench.opts.sizes.clone();
    let smallest = *sizes.iter().min().expect("at least one size");
    let spacing = smallest / NEEDLES;
    let needle = move |i: usize| i < smallest && i % spacing == spacing / 2;
    let servers: Vec<_> = sizes
        .iter()
        .map(|&size| {
            let ocni = bench.start_ocni();
            let t = std::time::Instant::now();
            crate::fill(bench, ocni.addr, "e", 0..size, needle);
            eprintln!("filled /compute/ with {size} entities in {:.1} s", t.elapsed().as_secs_f64());
            ocni
        })
        .collect();
    let reqs: Vec<Vec<Req>> = servers.iter().zip(&sizes).map(|(o, &size)| requests(bench, o.addr, size)).collect();
    // Each answer must be what the operation means: a full page, or the needles; the offset
    // and cursor pages the same ones.
    for (i, name) in OPS.iter().enumerate() {
        for ((ocni, reqs), &size) in servers.iter().zip(&reqs).zip(&sizes) {
            let addr = ocni.addr;
            let a = bench.expect(addr, reqs[i].clone(), 200);
            let v: serde_json::Value = serde_json::from_slice(&a.body).expect("a JSON listing");
            let n = v["resources"].as_array().map_or(0, Vec::len);
            let want = if name.starts_with("filtered") { NEEDLES } else { PAGE };
            assert_eq!(n, want, "{name} at {size} entities lists {n} entities");
            if i < 3 {
                let c = bench.expect(addr, reqs[i + 3].clone(), 200);
                assert_eq!(a.body, c.body, "{name} by cursor at {size} entities");
            }
        }
    }
    let o = &bench.opts;
    println!(
        "listing GET /compute/ (OCCI JSON, {PAGE} per page), {connections} connections, {} s per run, {} rounds interleaved between sizes",
        o.seconds, o.rounds
    );
    let mut results: Vec<(&str, Vec<Run>)> = Vec::new();
    for (i, name) in OPS.into_iter().enumerate() {
        let mut runs: Vec<Vec<Run>> = sizes.iter().map(|_| Vec::new()).collect();
        for round in 0..o.rounds {
            for (((ocni, &size), runs), reqs) in servers.iter().zip(&sizes).zip(&mut runs).zip(&reqs) {
                let req = reqs[i].clone();
                let same: Gen = Arc::new(move |_, _| req.clone());
                let run = bench.client.block_on(load::load(ocni.addr, same, StatusCode::OK, connections, o.duration()));
                eprintln!(
                    "  round {} {:<22} {:>7} entities {:>8.0} req/s  p50 {:>7} us  errors {}",
                    round + 1,
                    name,
                    size,
                    run.rps(),
                    run.pct(0.5),
                    run.errors
                );
                if let Some(e) = &run.first_error {
                    eprintln!("    first error: {e}");
                }
                runs.push(run);
            }
        }
        results.push((name, runs.into_iter().map(Run::merge).collect()));
    }
    let (first, last) = (0, sizes.len() - 1);
    println!();
    if last > first {
        println!(
            "ratio rows: req/s and p50 at {} entities / at {}; a cost that grows with the page, not the total, stays near 1",
            sizes[last], sizes[first]
        );
    }
    println!("{:<22} {:>9} {:>9} {:>9} {:>9} {:>7}", "operation", "entities", "req/s", "p50 us", "p99 us", "errors");
    for (name, runs) in &results {
        for (run, size) in runs.iter().zip(&sizes) {
            println!(
                "{:<22} {:>9} {:>9.0} {:>9} {:>9} {:>7}",
                name,
                size,
                run.rps(),
                run.pct(0.5),
                run.pct(0.99),
                run.errors
            );
        }
        if last > first {
            let (a, b) = (&runs[first], &runs[last]);
            println!(
                "{:<22} {:>9} {:>9.2} {:>9.2}",
                name,
                format!("{}/{}", short(sizes[last]), short(sizes[first])),
                b.rps() / a.rps().max(1e-9),
                b.pct(0.5) as f64 / f64::from(a.pct(0.5).max(1)),
            );
        }
    }
}

/// 100000 -> "100k".
fn short(n: usize) -> String {
    if n.is_multiple_of(1000) { format!("{}k", n / 1000) } else { n.to_string() }
}
