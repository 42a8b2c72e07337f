//! The load generator (HTTP/1.1 keep-alive connections on tokio, each sending requests back to
//! back and recording per-request latencies), one-shot requests for setup, and the trivial hyper
//! server that answers canned bytes: the baseline every ocni figure is a ratio to.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// One request the generator sends.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub accept: &'static str,
    /// The `Content-Type` of the body (none is sent without a body).
    pub content_type: &'static str,
    pub body: Option<Bytes>,
}

impl Req {
    pub fn get(path: impl Into<String>, accept: &'static str) -> Req {
        Req { method: Method::GET, path: path.into(), accept, content_type: crate::JSON, body: None }
    }
    pub fn with_body(method: Method, path: impl Into<String>, body: impl Into<Bytes>) -> Req {
        Req { method, path: path.into(), accept: crate::JSON, content_type: crate::JSON, body: Some(body.into()) }
    }
}

/// Makes the `seq`-th request of connection `conn`: requests may differ (fresh bodies, varying
/// pages, one entity per connection).
pub type Gen = Arc<dyn Fn(usize, u64) -> Req + Send + Sync>;

/// The outcome of one timed run (or several merged).
pub struct Run {
    /// Requests answered with the expected status.
    pub requests: u64,
    pub elapsed: Duration,
    /// Latencies of the successful requests, sorted.
    pub latencies_us: Vec<u32>,
    /// Unexpected statuses and transport failures.
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Run {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// The `p`-quantile (0..=1) of the latencies, in microseconds.
    pub fn pct(&self, p: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i]
    }
    /// Runs of the same operation taken at different times, as one: throughput over the summed
    /// time, quantiles over every latency.
    pub fn merge(runs: impl IntoIterator<Item = Run>) -> Run {
        let mut out =
            Run { requests: 0, elapsed: Duration::ZERO, latencies_us: Vec::new(), errors: 0, first_error: None };
        for r in runs {
            out.requests += r.requests;
            out.elapsed += r.elapsed;
            out.latencies_us.extend(r.latencies_us);
            out.errors += r.errors;
            out.first_error = out.first_error.or(r.first_error);
        }
        out.latencies_us.sort_unstable();
        out
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

fn request(addr: SocketAddr, req: &Req) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(req.method.clone())
        .uri(&req.path)
        .header(header::HOST, addr.to_string())
        .header(header::ACCEPT, req.accept);
    if req.body.is_some() {
        b = b.header(header::CONTENT_TYPE, req.content_type);
    }
    b.body(Full::new(req.body.clone().unwrap_or_default())).expect("a valid request")
}

/// `connections` keep-alive connections, each sending the requests `make` makes back to back
/// for `duration`. An answer other than `status` is an error; a broken connection is an error
/// and is reopened.
pub async fn load(addr: SocketAddr, make: Gen, status: StatusCode, connections: usize, duration: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut first_error: Option<String> = None;
            let mut fail = |msg: String, errors: &mut u64| {
                *errors += 1;
                first_error.get_or_insert(msg);
            };
            let mut sender: Option<Sender> = None;
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let s = match &mut sender {
                    Some(s) => s,
                    None => match connect(addr).await {
                        Ok(s) => sender.insert(s),
                        Err(e) => {
                            fail(format!("connect: {e}"), &mut errors);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let req = make(conn, seq);
                seq += 1;
                let t = Instant::now();
                let answer = async {
                    s.ready().await?;
                    let resp = s.send_request(request(addr, &req)).await?;
                    let st = resp.status();
                    let body = resp.into_body().collect().await?.to_bytes();
                    anyhow::Ok((st, body))
                };
                match answer.await {
                    Ok((st, _)) if st == status => lat.push(t.elapsed().as_micros() as u32),
                    Ok((st, body)) => {
                        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                        fail(format!("{} {}: {st} {text}", req.method, req.path), &mut errors);
                    }
                    Err(e) => {
                        fail(format!("{} {}: {e}", req.method, req.path), &mut errors);
                        sender = None;
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (l, e, f) = t.await.expect("a load task");
        latencies_us.extend(l);
        errors += e;
        first_error = first_error.or(f);
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    Run { requests: latencies_us.len() as u64, elapsed, latencies_us, errors, first_error }
}

/// A whole answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection.
pub async fn once(addr: SocketAddr, req: &Req) -> Answer {
    let mut s = connect(addr).await.unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let resp = s.send_request(request(addr, req)).await.unwrap_or_else(|e| panic!("{} {}: {e}", req.method, req.path));
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("a response body").to_bytes();
    Answer { status, headers, body }
}

/// One request that must be answered with `status`; panics with the answer otherwise.
pub async fn expect(addr: SocketAddr, req: &Req, status: u16) -> Answer {
    let a = once(addr, req).await;
    assert_eq!(a.status.as_u16(), status, "{} {}: {}", req.method, req.path, a.text());
    a
}

/// What the trivial server answers: an answer of ocni, as it was sent.
pub struct Canned {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Canned {
    /// The status, body and headers (content type, location, server...) of `a`; hyper frames
    /// the rest (date, length) itself.
    pub fn from_answer(a: &Answer) -> Canned {
        let framing = [header::DATE, header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION];
        let headers =
            a.headers.iter().filter(|(k, _)| !framing.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        Canned { status: a.status, headers, body: a.body.clone() }
    }
}

/// A hyper server that reads each request (body included, as ocni does) and answers `canned`.
pub async fn trivial_server(canned: Canned) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the trivial server");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(serve_canned(listener, canned));
    addr
}

/// Serves `canned` on every connection `listener` accepts, for ever.
pub async fn serve_canned(listener: TcpListener, canned: Canned) {
    let canned = Arc::new(canned);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let canned = Arc::clone(&canned);
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let canned = Arc::clone(&canned);
                async move {
                    let _ = req.into_body().collect().await;
                    let mut resp = Response::new(Full::new(canned.body.clone()));
                    *resp.status_mut() = canned.status;
                    for (k, v) in &canned.headers {
                        resp.headers_mut().append(k.clone(), v.clone());
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
