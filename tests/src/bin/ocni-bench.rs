//! `ocni-bench`: throughput and latency of `GET` of one entity on ocni, as a ratio to a trivial
//! hyper server that answers the same bytes, measured in the same run by the same small load
//! generator (HTTP/1.1 keep-alive connections, each sending requests back to back).
//!
//! Run a release build: `cargo run --release -p ocni-tests --bin ocni-bench -- [CONNECTIONS] [SECONDS]`.
//!
//! `ocni-bench handlers [CONNECTIONS] [SECONDS]` measures the WebAssembly handlers instead: the
//! cost of one handler call (fresh instance + `validate` of the compute handler, through the
//! runtime directly), and the throughput and latency of creating a compute resource over HTTP
//! without and with the compute handler bound, interleaved, as a ratio.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ocni_server::Config;
use tokio::net::{TcpListener, TcpStream};

struct Run {
    requests: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    errors: u64,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i]
    }
}

/// `connections` keep-alive connections, each sending GETs back to back for `duration`.
async fn load(addr: SocketAddr, path: &str, accept: &str, connections: usize, duration: Duration) -> Run {
    load_with(addr, "GET", path, accept, None, 200, connections, duration).await
}

/// `connections` keep-alive connections, each sending `method path` (with `body` as OCCI JSON)
/// back to back for `duration`; answers other than `status` count as errors.
#[allow(clippy::too_many_arguments)]
async fn load_with(
    addr: SocketAddr,
    method: &'static str,
    path: &str,
    accept: &str,
    body: Option<&'static str>,
    status: u16,
    connections: usize,
    duration: Duration,
) -> Run {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let path = path.to_string();
        let accept = accept.to_string();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(conn);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let req = Request::builder()
                    .method(method)
                    .uri(&path)
                    .header("Host", addr.to_string())
                    .header("Accept", &accept)
                    .header("Content-Type", "application/occi+json")
                    .body(Full::new(Bytes::from_static(body.unwrap_or("").as_bytes())))
                    .unwrap();
                let t = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) if resp.status() == status => {
                        resp.into_body().collect().await.unwrap();
                        lat.push(t.elapsed().as_micros() as u32);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies_us.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Run { requests: latencies_us.len() as u64, elapsed, latencies_us, errors }
}

/// A hyper server answering every request with `body` and `content_type`: the baseline.
async fn trivial_server(body: Bytes, content_type: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let body = body.clone();
            let ct = content_type.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let mut resp = Response::new(Full::new(body.clone()));
                    resp.headers_mut().insert("content-type", ct.parse().unwrap());
                    resp.headers_mut().insert("server", ocni_server::SERVER.parse().unwrap());
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("handlers") {
        return handlers(&args[2..]);
    }
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; run with --release for meaningful figures");
    }
    // The servers and the load generator each get their own runtime (and threads); on a
    // 2-core machine they share the cores, the same way for both servers.
    let servers = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = ocni_server::open(Config::new(dir.path().join("data"))).unwrap();
    let ocni_addr = servers.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(ocni_server::serve(listener, Arc::clone(&app), std::future::pending()));
        addr
    });
    let path = "/compute/bench-vm";
    let body = r#"{"kind":"http://schemas.ogf.org/occi/infrastructure#compute","title":"bench","attributes":{"occi.compute.cores":2,"occi.compute.memory":4.0,"occi.compute.hostname":"bench.example"}}"#;
    let formats = [("application/occi+json", "OCCI 1.2 JSON"), ("text/occi", "text/occi")];
    client.block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .put(format!("http://{ocni_addr}{path}"))
            .header("Content-Type", "application/occi+json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "creating the benchmark entity");
    });
    println!("GET {path}, {connections} connections, {seconds} s per run, runs interleaved trivial/ocni twice");
    println!("{:<16} {:<8} {:>10} {:>9} {:>9} {:>8}", "rendering", "server", "req/s", "p50 us", "p99 us", "errors");
    for (accept, label) in formats {
        // The exact bytes ocni answers, for the baseline to answer too.
        let (bytes, ct) = client.block_on(async {
            let r = reqwest::Client::new()
                .get(format!("http://{ocni_addr}{path}"))
                .header("Accept", accept)
                .send()
                .await
                .unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            (r.bytes().await.unwrap(), ct)
        });
        let trivial_addr = servers.block_on(trivial_server(bytes, ct));
        let mut totals = [0.0f64; 2];
        for round in 0..2 {
            for (i, (name, addr)) in [("trivial", trivial_addr), ("ocni", ocni_addr)].into_iter().enumerate() {
                let run = client.block_on(load(addr, path, accept, connections, Duration::from_secs(seconds)));
                totals[i] += run.rps();
                println!(
                    "{:<16} {:<8} {:>10.0} {:>9} {:>9} {:>8}{}",
                    label,
                    name,
                    run.rps(),
                    run.pct(0.5),
                    run.pct(0.99),
                    run.errors,
                    if round == 0 { "" } else { "  (round 2)" }
                );
            }
        }
        println!("{label}: ocni / trivial throughput = {:.2}", totals[1] / totals[0]);
    }
    drop(app);
}

/// Handler cost and create throughput without / with the compute handler.
fn handlers(args: &[String]) {
    let connections: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let wasm = std::fs::read(ocni_tests::guests::COMPUTE).expect("the compute guest is built by tests/build.rs");

    // 1. One call: a fresh store and instance from the InstancePre, then validate.
    let dir = tempfile::tempdir().unwrap();
    let runtime = ocni_runtime::Runtime::new(ocni_runtime::RuntimeConfig::default(), dir.path()).unwrap();
    let digest = runtime.compile(&wasm).unwrap().digest;
    let handler = runtime.load(&digest).unwrap();
    let entity = ocni_runtime::EntityView {
        location: "/compute/x".into(),
        id: "x".into(),
        kind: "http://schemas.ogf.org/occi/infrastructure#compute".into(),
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
        let call = ocni_runtime::Call::Validate { entity: entity.clone(), op: ocni_runtime::Operation::Create };
        let t = Instant::now();
        let (outcome, back) = runtime.call(&handler, host, call);
        lat.push(t.elapsed().as_nanos() as u64);
        host = back;
        assert!(matches!(outcome, Ok(ocni_runtime::Outcome::Accepted)), "{outcome:?}");
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    println!(
        "handler call (fresh instance + validate, compute guest), 5000 calls: p50 {:.1} us, p99 {:.1} us",
        pct(0.5),
        pct(0.99)
    );

    // 2. Creates over HTTP, without and with the handler bound to compute, interleaved.
    let servers = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = ocni_server::open(Config::new(data.path().join("data"))).unwrap();
    let addr = servers.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(ocni_server::serve(listener, Arc::clone(&app), std::future::pending()));
        addr
    });
    let http = reqwest::Client::new();
    let bind = |name: Option<&str>| {
        let local: Vec<&str> = name.into_iter().collect();
        let body = serde_json::json!({"providers": [{"OCCI_ID": "http://schemas.ogf.org/occi/infrastructure#compute", "Provider": {"local": local}}]});
        client.block_on(async {
            let r = http
                .put(format!("http://{addr}/-/"))
                .header("Content-Type", "application/occi+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        });
    };
    client.block_on(async {
        let r = http
            .put(format!("http://{addr}/-/handlers/compute"))
            .header("Content-Type", "application/wasm")
            .body(wasm.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    });
    const BODY: &str = r#"{"kind":"http://schemas.ogf.org/occi/infrastructure#compute","attributes":{"occi.compute.cores":2,"occi.compute.memory":4.0}}"#;
    println!("POST /compute/ (create, durable commit), {connections} connections, {seconds} s per run");
    println!("{:<16} {:>10} {:>9} {:>9} {:>8}", "handler", "req/s", "p50 us", "p99 us", "errors");
    let mut totals = [0.0f64; 2];
    let mut p50 = [0u32; 2];
    for round in 0..2 {
        for (i, bound) in [None, Some("compute")].into_iter().enumerate() {
            bind(bound);
            let run = client.block_on(load_with(
                addr,
                "POST",
                "/compute/",
                "application/occi+json",
                Some(BODY),
                201,
                connections,
                Duration::from_secs(seconds),
            ));
            totals[i] += run.rps();
            p50[i] += run.pct(0.5) / 2;
            println!(
                "{:<16} {:>10.0} {:>9} {:>9} {:>8}{}",
                bound.unwrap_or("none"),
                run.rps(),
                run.pct(0.5),
                run.pct(0.99),
                run.errors,
                if round == 0 { "" } else { "  (round 2)" }
            );
        }
    }
    println!(
        "create with handler / without: throughput {:.2}, p50 difference {} us",
        totals[1] / totals[0],
        p50[1] as i64 - p50[0] as i64
    );
    drop(app);
}
