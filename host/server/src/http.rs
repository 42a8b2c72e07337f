//! HTTP: the accept loop and graceful shutdown ([`serve`]), and for each request its framing:
//! routing, authentication, request rate and body limits, content negotiation, reading and
//! parsing the body, handing it to [`App::serve`] (in place for one entity's read, else on a
//! blocking thread), error answers, request and audit logging.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ocni_model::Dialect;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::app::App;
use crate::error::ApiError;
use crate::negotiate::{self, BodyType, Format};
use crate::reply::{Body, Framed, Reply, Request as OcciRequest, json_reply};
use crate::route;
use crate::sandbox::upload_error;
use crate::tenancy::{ADMIN, NOBODY};

/// Serves connections from `listener` until `shutdown` completes, then lets open requests
/// finish (for at most 10 seconds). When every request has ended and `app` is no longer held
/// elsewhere, it is dropped before this returns: the database is closed then.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let repeated = Arc::new(Mutex::new(Repeated::default()));
                let timeout = app.config().header_read_timeout;
                // Boxed: hyper moves the future it is given, and a request's is a few KiB.
                let service = service_fn(move |req| Box::pin(handle(app.clone(), peer, Arc::clone(&repeated), req)));
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(timeout)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("shutdown timed out with connections open"),
    }
    // Connection tasks drop their handles on the app just after their connection ends.
    let mut app = app;
    for _ in 0..500 {
        match Arc::try_unwrap(app) {
            Ok(last) => {
                // Joins the writer thread, which may be finishing a batch: off the executor.
                let _ = tokio::task::spawn_blocking(move || drop(last)).await;
                tracing::info!("database closed");
                return;
            }
            Err(shared) => app = shared,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::warn!("shutdown: the app is still in use elsewhere; the database closes when it is released");
}

/// The base of the absolute URLs in answers: `--base-url` when given, else `http://` and the
/// request's `Host`, which must then be a plain authority (`host[:port]`): it is echoed in
/// `Location` and link targets. A `Host` that is not one is refused even with `--base-url`.
fn base_url(configured: Option<&str>, host: Option<&HeaderValue>) -> Result<String, ApiError> {
    let host = match host {
        None => None,
        Some(v) => {
            let bad = || ApiError::bad(format!("Host header {v:?} is not an authority (host or host:port)"));
            let text = v.to_str().map_err(|_| bad())?;
            let authority: hyper::http::uri::Authority = text.parse().map_err(|_| bad())?;
            // No user information, no empty host, nothing the parse let through but a name.
            if text.contains('@') || authority.host().is_empty() || authority.as_str() != text {
                return Err(bad());
            }
            Some(authority)
        }
    };
    Ok(match (configured, host) {
        (Some(b), _) => b.trim_end_matches('/').to_string(),
        (None, Some(h)) => format!("http://{h}"),
        (None, None) => "http://localhost".to_string(),
    })
}

/// What the requests of one connection repeat (a client sends the same `Host` and, mostly, the
/// same `Accept` each time), worked out at its first request and again when a header changes.
#[derive(Default)]
struct Repeated {
    /// The base URL `Host` makes.
    host: Memo<String>,
    /// The rendering `Accept` negotiates.
    accept: Memo<Result<Format, String>>,
}

/// A value made from one header (`None`: absent), kept with the header it was made from.
struct Memo<T>(Option<(Option<HeaderValue>, T)>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(None)
    }
}

impl<T: Clone> Memo<T> {
    /// `make(header)`, made again only when `header` is not the last one (a failure is not kept).
    fn get<E>(
        &mut self,
        header: Option<&HeaderValue>,
        make: impl FnOnce(Option<&HeaderValue>) -> Result<T, E>,
    ) -> Result<T, E> {
        if let Some((last, value)) = &self.0
            && last.as_ref() == header
        {
            return Ok(value.clone());
        }
        let value = make(header)?;
        self.0 = Some((header.cloned(), value.clone()));
        Ok(value)
    }
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// One request, end to end; never fails (errors become responses).
async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    repeated: Arc<Mutex<Repeated>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    // A clone shares the URI's bytes.
    let uri = req.uri().clone();
    let path = uri.path();
    let dialect = app.config().default_dialect;
    let Ok(format) = repeated.lock().accept.get(req.headers().get(header::ACCEPT), |accept| {
        Ok::<_, Infallible>(negotiate::choose(accept.and_then(|v| v.to_str().ok()), dialect))
    });
    let err_format = format.clone().unwrap_or(match header_str(&req, header::ACCEPT) {
        Some(a) if a.contains("json") => Format::Json(app.config().default_dialect),
        _ => Format::TextPlain,
    });
    // The admin API speaks JSON only, its errors too.
    let err_format = if path.starts_with("/-/admin/") { Format::Json(Dialect::Occi12) } else { err_format };
    let route = route::route(path, uri.query());
    // Who the request is, once authenticated (for the audit log).
    let mut who = NOBODY.to_string();
    // Every log line of the request (the write logs of the operations too) carries this span;
    // a single entity's read, the cheapest path there is, has none.
    let span = match &route {
        Ok(r) if r.reads_one_entity(&method) => tracing::Span::none(),
        _ => tracing::info_span!("request", %method, %path),
    };
    let answer = respond(&app, &repeated, req, route, format.clone(), &mut who).instrument(span).await;
    let framed = match answer {
        Ok(f) => f,
        Err(e) => error_reply(e, err_format).framed(err_format),
    };
    let status = framed.status;
    let response = framed.response(method == Method::HEAD);
    let latency_us = started.elapsed().as_micros() as u64;
    if status.is_server_error() {
        tracing::error!(%method, %path, status = status.as_u16(), latency_us, %peer, "done");
    } else if tracing::enabled!(tracing::Level::INFO)
        && !crate::logging::request_done(module_path!(), method.as_str(), path, status.as_u16(), latency_us)
    {
        tracing::info!(%method, %path, status = status.as_u16(), latency_us, "done");
    }
    // Audit: every write, with who did it and how it ended (never a token: only the tenant).
    if method != Method::GET && method != Method::HEAD {
        tracing::info!(target: "ocni::audit", tenant = %who, operation = %method, location = %path,
            status = status.as_u16(), "write");
    }
    Ok(response)
}

/// Checks the client's OCCI version (`User-Agent: ... OCCI/X.Y`): above 1.2 is 501.
fn check_version(user_agent: Option<&str>) -> Result<(), ApiError> {
    let Some(ua) = user_agent else { return Ok(()) };
    for token in ua.split_whitespace() {
        if let Some(v) = token.strip_prefix("OCCI/") {
            let mut parts = v.split('.');
            let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            if (major, minor) > (1, 2) {
                return Err(ApiError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    format!("this server speaks OCCI/1.1 and OCCI/1.2, not OCCI/{v}"),
                ));
            }
        }
    }
    Ok(())
}

/// What is known of a request once it is admitted: who it is, how it is answered, how large its
/// body may be and how it is parsed.
struct Admitted {
    route: route::Route,
    base_url: String,
    tenant: String,
    format: Format,
    content_type: Option<String>,
    /// text/occi carries the request in headers: the OCCI ones.
    occi_headers: Vec<(String, String)>,
    /// A handler upload (`PUT /-/handlers/{name}`): a component, with its own size limit.
    upload: bool,
    limit: usize,
    /// Whether `limit` is the tenant's (else the server's).
    tenants_limit: bool,
}

impl Admitted {
    fn too_large(&self) -> ApiError {
        let whose = if self.tenants_limit { format!("tenant {}'s", self.tenant) } else { "this server's".to_string() };
        too_large(self.limit, &whose)
    }
}

/// Serves a request: the checks before its body ([`admit`]), its body (read in a future of its
/// own when it has one), then the operation: a single entity's read in place, a small write of
/// a tenant without handlers prepared in place (`App::prepares_in_place`), anything else on a
/// blocking thread. The futures that only some requests need are boxed, so that the future
/// hyper holds for every request stays small.
async fn respond(
    app: &Arc<App>,
    repeated: &Mutex<Repeated>,
    req: Request<Incoming>,
    route: Result<route::Route, route::RouteError>,
    format: Result<Format, String>,
    who: &mut String,
) -> Result<Framed, ApiError> {
    let route = route.map_err(|e| ApiError::bad(e.0))?;
    // Headers that say who the client is and where it thinks it is must be unambiguous.
    for name in [header::HOST, header::AUTHORIZATION] {
        if req.headers().get_all(&name).iter().nth(1).is_some() {
            return Err(ApiError::bad(format!("the request has more than one {name} header; send one")));
        }
    }
    let configured = app.config().base_url.as_deref();
    let base_url = repeated.lock().host.get(req.headers().get(header::HOST), |host| base_url(configured, host))?;
    // On a shared store, this node first catches up with every write acknowledged anywhere
    // (and with the tenants and tokens those changed).
    app.sync().await?;
    let admitted = admit(app, &req, route, base_url, format, who)?;
    let method = req.method().clone();
    // A write whose body is known to be small may be prepared in place (see below).
    let small = req.body().size_hint().upper().is_some_and(|n| n <= IN_PLACE_BODY);
    let body = if req.body().is_end_stream() && !admitted.upload {
        // No body (most reads): nothing to wait for.
        read_body(&[], admitted.content_type.as_deref(), &admitted.occi_headers)?
    } else {
        Box::pin(request_body(app, req, &admitted)).await?
    };
    let Admitted { route, format, base_url, tenant, .. } = admitted;
    let request = OcciRequest { method: &method, route, body, format, base_url };
    if request.route.reads_one_entity(&method) {
        // One entity is a short redb read transaction, almost always over cached pages: it
        // runs in place. Handing each to a blocking thread (or `block_in_place`) cost a third
        // of GET throughput in `ocni-bench` (0.42 vs 0.60 of a trivial hyper server).
        app.serve(&tenant, &request)
    } else if small && app.prepares_in_place(&tenant, &request) {
        match Box::pin(app.write_in_place(&tenant, &request)).await? {
            Some(framed) => Ok(framed),
            None => Box::pin(on_blocking_thread(app, tenant, request)).await,
        }
    } else {
        Box::pin(on_blocking_thread(app, tenant, request)).await
    }
}

/// Largest body of a write prepared in place (a few entities: its preparation holds the
/// async worker while it runs).
const IN_PLACE_BODY: u64 = 16 << 10;

/// Who the request is, and the checks that come before its body is read: the admin, or a
/// tenant, which then has a request rate and a body size of its own; then the method the target
/// allows, the client's OCCI version, the rendering negotiated, the body's declared size.
fn admit(
    app: &App,
    req: &Request<Incoming>,
    route: route::Route,
    base_url: String,
    format: Result<Format, String>,
    who: &mut String,
) -> Result<Admitted, ApiError> {
    let auth = req.headers().get(header::AUTHORIZATION);
    let admin = matches!(route.target, route::Target::Admin(_));
    let (tenant, state) = if admin {
        app.tenancy().check_admin(auth)?;
        (ADMIN.to_string(), None)
    } else {
        app.tenancy().authenticate(auth)?
    };
    who.clone_from(&tenant);
    if let Some(state) = &state {
        state.admit()?;
    }
    // The method before anything else of the request (its version, Accept, size, body): a
    // method the target does not allow is 405 with `Allow`, whatever the body or its type.
    if let Some(allowed) = app.allowed(&tenant, &route.target)?
        && !allowed.allows(req.method())
    {
        return Err(ApiError::method(req.method(), allowed));
    }
    check_version(header_str(req, header::USER_AGENT))?;
    let format = if admin { Ok(Format::Json(Dialect::Occi12)) } else { format };
    let format = format.map_err(|m| ApiError::new(StatusCode::NOT_ACCEPTABLE, m))?;
    let content_type = header_str(req, header::CONTENT_TYPE).map(str::to_string);
    let occi_headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(name, _)| ocni_model::text::OCCI_HEADERS.contains(&name.as_str()))
        .map(|(name, v)| (name.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // Handler uploads have their own (larger) limit; everything else the request body limit.
    let upload = matches!(route.target, route::Target::Handlers(Some(_))) && req.method() == Method::PUT;
    let server_limit = if upload { app.config().runtime.max_component_bytes } else { app.config().max_body };
    let tenant_limit =
        state.as_ref().map(|s| if upload { s.limits.max_handler_bytes } else { s.limits.max_body_bytes });
    let (limit, tenants_limit) = match tenant_limit {
        Some(l) if l < server_limit as u64 => (l as usize, true),
        _ => (server_limit, false),
    };
    let admitted =
        Admitted { route, base_url, tenant, format, content_type, occi_headers, upload, limit, tenants_limit };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(admitted.too_large());
    }
    Ok(admitted)
}

/// Reads the body of an admitted request and parses it (a handler upload is compiled).
async fn request_body(app: &App, req: Request<Incoming>, admitted: &Admitted) -> Result<Option<Body>, ApiError> {
    // A client that dribbles its body must not hold the request open for ever.
    let body_timeout = app.config().body_read_timeout;
    let bytes = tokio::time::timeout(body_timeout, Limited::new(req.into_body(), admitted.limit).collect())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body did not arrive within {} s", body_timeout.as_secs_f64()),
            )
        })?
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                admitted.too_large()
            } else {
                ApiError::bad(format!("could not read the request body: {e}"))
            }
        })?
        .to_bytes();
    let content_type = admitted.content_type.as_deref();
    if !admitted.upload {
        return read_body(&bytes, content_type, &admitted.occi_headers);
    }
    match content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
        Some("application/wasm") => {
            // Compiled here, not on the writer thread: a compile may take seconds. The job
            // carries the digest; the compiled artifact waits in the runtime's cache.
            let runtime = app.runtime().clone();
            let upload = bytes.clone();
            let compiled = tokio::task::spawn_blocking(move || runtime.compile(&upload))
                .await
                .map_err(|e| ApiError::internal("compile task failed", e))?
                .map_err(upload_error)?;
            Ok(Some(Body::Wasm { bytes, digest: compiled.digest }))
        }
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a handler upload is a WebAssembly component: send it with Content-Type: application/wasm",
        )),
    }
}

/// Serves `request` on a blocking thread. Writes are prepared there (they read, run handlers,
/// and wait for their batch to commit), at most `max_concurrent_writes` at once; see
/// `Services::write`. Reads that may be large (a page of a listing, the query interface) run
/// there too, one per core, so that they never hold an async worker that other requests wait for.
async fn on_blocking_thread(app: &Arc<App>, tenant: String, request: OcciRequest<'_>) -> Result<Framed, ApiError> {
    let method = request.method.clone();
    let read = method == Method::GET || method == Method::HEAD;
    let _slot = app
        .slots(!read)
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("a request", "the server is shutting down"))?;
    let app = Arc::clone(app);
    let span = tracing::Span::current();
    let OcciRequest { route, body, format, base_url, .. } = request;
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let request = OcciRequest { method: &method, route, body, format, base_url };
        app.serve(&tenant, &request)
    })
    .await
    .map_err(|e| ApiError::internal("a request", if e.is_panic() { "it panicked" } else { "it was cancelled" }))?
}

/// Parses a request body by its media type. OCCI headers (text/occi) make a body of their own
/// when the request has no other (a GET filter, a text/occi create).
fn read_body(
    bytes: &[u8],
    content_type: Option<&str>,
    occi_headers: &[(String, String)],
) -> Result<Option<Body>, ApiError> {
    let unsupported = |m: String| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m);
    let empty = bytes.iter().all(u8::is_ascii_whitespace);
    let declared = match content_type {
        Some(ct) => Some(negotiate::body_type(Some(ct)).map_err(unsupported)?),
        None => None,
    };
    let text =
        || std::str::from_utf8(bytes).map_err(|_| ApiError::bad("the request body is not UTF-8 text".to_string()));
    let from_headers = || -> Result<Option<Body>, ApiError> {
        if occi_headers.is_empty() {
            return Ok(None);
        }
        let msg = ocni_model::text::parse_headers(occi_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        Ok(Some(Body::Text(msg)))
    };
    match (declared, empty) {
        (Some(BodyType::TextOcci), _) | (_, true) => from_headers(),
        (None, false) => Err(unsupported(
            "a request with a body needs a Content-Type (application/occi+json, text/plain, text/occi or text/uri-list)"
                .to_string(),
        )),
        (Some(BodyType::Json), false) => Ok(Some(Body::Json(serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad(format!("the body is not valid JSON: {e} (line {}, column {})", e.line(), e.column()))
        })?))),
        (Some(BodyType::TextPlain), false) => Ok(Some(Body::Text(ocni_model::text::parse_plain(text()?)?))),
        (Some(BodyType::UriList), false) => Ok(Some(Body::UriList(ocni_model::text::parse_uri_list(text()?)))),
    }
}

fn too_large(limit: usize, whose: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {whose} limit of {limit} bytes"),
    )
}

/// An error answer in the rendering the request negotiated (`format`), the message in the
/// body: JSON `{"error": ...}` in either dialect, with that dialect's content type; text/occi
/// and text/plain the message (and details) as text; text/uri-list the same lines as `#`
/// comments (RFC 2483), so that a URI-list parser reads no URI from it.
fn error_reply(e: ApiError, format: Format) -> Reply {
    let mut reply = match format {
        Format::Json(_) => {
            let v =
                serde_json::json!({"error": {"status": e.status.as_u16(), "message": e.message, "details": e.details}});
            json_reply(e.status, &v, format)
        }
        Format::TextPlain | Format::TextOcci | Format::UriList => {
            let mut text = e.message.clone();
            for d in &e.details {
                text.push_str("\n  ");
                text.push_str(d);
            }
            let text = if format == Format::UriList {
                // A bare CR ends a line for some parsers: every line must be a comment.
                text.split(['\r', '\n']).filter(|l| !l.is_empty()).map(|l| format!("# {l}\n")).collect()
            } else {
                text + "\n"
            };
            Reply {
                status: e.status,
                headers: Vec::new(),
                body: text.into_bytes(),
                content_type: Some(format.content_type()),
            }
        }
    };
    reply.headers.extend(e.headers);
    reply
}
