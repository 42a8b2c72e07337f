//! `ocni-bench handlers`: the cost of one handler call through the runtime directly, and
//! creates over HTTP without and with the compute handler bound, interleaved.

use std::sync::Arc;
use std::time::Instant;

use hyper::StatusCode;

use crate::Bench;
use crate::load::{self, Gen, Run};

/// p50 and p99 in microseconds of one call of the compute handler `wasm` through the runtime: a
/// fresh store and instance from the pre-instantiated component, then `validate` (and
/// `on-create` on the same instance with `with_hook`, as a create does). Says how long the
/// component took to compile.
pub fn call_cost(wasm: &[u8], with_hook: bool) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = ocni_runtime::Runtime::new(ocni_runtime::RuntimeConfig::default(), dir.path()).expect("a runtime");
    let started = Instant::now();
    let digest = runtime.compile(wasm).expect("the compute handler compiles").digest;
    eprintln!("compute handler ({} bytes) compiled in {:.2} s", wasm.len(), started.elapsed().as_secs_f64());
    let handler = runtime.load(&digest).expect("and loads");
    let entity = ocni_runtime::EntityView {
        location: "/compute/x".into(),
        id: "x".into(),
        kind: crate::COMPUTE.into(),
        mixins: vec![],
        attributes: vec![
            ocni_runtime::AttributeView::new("occi.compute.cores", ocni_runtime::ValueView::Integer(2)),
            ocni_runtime::AttributeView::new("occi.compute.memory", ocni_runtime::ValueView::Number(4.0)),
            ocni_runtime::AttributeView::new("occi.compute.state", ocni_runtime::ValueView::Text("inactive".into())),
        ],
    };
    let mut lat = Vec::new();
    let mut host: Box<dyn ocni_runtime::HostApi + Send> = Box::new(ocni_runtime::NullHost);
    for _ in 0..5000 {
        let mut calls =
            vec![ocni_runtime::Call::Validate { entity: entity.clone(), op: ocni_runtime::Operation::Create }];
        if with_hook {
            calls.push(ocni_runtime::Call::Create { entity: entity.clone() });
        }
        let expected = calls.len();
        let t = Instant::now();
        let (outcomes, back) = runtime.call_each(&handler, host, calls, ocni_runtime::CallLimits::default());
        lat.push(t.elapsed().as_nanos() as u64);
        host = back;
        // Timed calls must be the ones a create makes: validate accepts, the hook answers.
        let accepted = |o: &ocni_runtime::Outcome| !matches!(o, ocni_runtime::Outcome::Refused(_));
        assert!(matches!(&outcomes, Ok(o) if o.len() == expected && o.iter().all(accepted)), "{outcomes:?}");
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    (pct(0.5), pct(0.99))
}

pub fn run(bench: &Bench) {
    let connections = bench.opts.connections.unwrap_or(16);
    let (p50, p99) = call_cost(&bench.compute_wasm(), false);
    println!("handler call (fresh instance + validate, compute guest), 5000 calls: p50 {p50:.1} us, p99 {p99:.1} us");

    let ocni = bench.start_ocni();
    let addr = ocni.addr;
    bench.upload_compute_handler(addr);
    let make: Gen = crate::creates();
    println!("POST /compute/ (create, durable commit), {connections} connections, {} s per run", bench.opts.seconds);
    println!("{:<16} {:>10} {:>9} {:>9} {:>8}", "handler", "req/s", "p50 us", "p99 us", "errors");
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    for round in 0..bench.opts.rounds {
        for (i, bound) in [false, true].into_iter().enumerate() {
            bench.bind_compute(addr, bound);
            let run = bench.client.block_on(load::load(
                addr,
                Arc::clone(&make),
                StatusCode::CREATED,
                connections,
                bench.opts.duration(),
            ));
            println!(
                "{:<16} {:>10.0} {:>9} {:>9} {:>8}  (round {})",
                if bound { "compute" } else { "none" },
                run.rps(),
                run.pct(0.5),
                run.pct(0.99),
                run.errors,
                round + 1
            );
            if let Some(e) = &run.first_error {
                println!("  first error: {e}");
            }
            runs[i].push(run);
        }
    }
    let [without, with] = runs.map(Run::merge);
    println!(
        "create with handler / without: throughput {:.2}, p50 difference {} us",
        with.rps() / without.rps().max(1e-9),
        with.pct(0.5) as i64 - without.pct(0.5) as i64
    );
}
