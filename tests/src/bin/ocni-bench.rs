//! `ocni-bench`: throughput and latency of `GET` of one entity on ocni, as a ratio to a trivial
//! hyper server that answers the same bytes, measured in the same run by the same small load
//! generator (HTTP/1.1 keep-alive connections, each sending requests back to back).
//!
//! Run a release build: `cargo run --release -p ocni-tests --bin ocni-bench -- [CONNECTIONS] [SECONDS]`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
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
                let req = Request::get(&path)
                    .header("Host", addr.to_string())
                    .header("Accept", &accept)
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let t = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) if resp.status() == 200 => {
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
