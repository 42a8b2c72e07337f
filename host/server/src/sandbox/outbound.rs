//! Outbound HTTP by capability (WIT `outbound`, since 0.1.2): what a handler may reach and the
//! client that reaches it.
//!
//! * The operator's [`Policy`]: origin patterns (`--handler-allow-outbound`; none: nothing is
//!   allowed), whether private addresses may be reached (`--handler-allow-private`), and the
//!   per-call limits (requests, bytes out, bytes in).
//! * A handler's allow-list: exact [`Origin`]s its tenant set at upload, each within the
//!   operator's patterns (checked at upload and again at every request).
//! * [`Outbound::send`]: checks the origin, resolves the host once, refuses it if any address
//!   is not public (unless private addresses are allowed), connects to the checked address
//!   (never resolving again: no DNS rebinding), sends one HTTP/1.1 request with hyper, reads the
//!   body within the bytes-in budget, and follows redirects only as asked, each hop checked as
//!   a request of its own; all of it within the call's deadline.
//!
//! Requests run on one small tokio runtime of their own (`ocni-outbound`, process-wide), so a
//! sandbox thread only waits, with a timeout, for the answer.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use ocni_runtime::{HttpRequest, HttpResponse, OutboundError};
use url::{Host, Url};

/// The most redirects one request follows.
pub const MAX_REDIRECTS: u8 = 5;
/// The most origins a handler's allow-list holds.
pub const MAX_ORIGINS: usize = 32;
/// Headers the host sets (or refuses): a guest may not.
const HOST_HEADERS: [&str; 8] =
    ["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive"];
/// Headers dropped when a redirect leads to another origin.
const CREDENTIAL_HEADERS: [&str; 2] = ["authorization", "cookie"];
/// Methods a guest may not use: a tunnel through the server, and an echo of what it sent.
const REFUSED_METHODS: [&str; 2] = ["CONNECT", "TRACE"];

/// An origin: scheme, host (lower case; IPv6 in brackets) and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl Origin {
    fn of(url: &Url) -> Result<Origin, String> {
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(Host::Ipv4(a)) => a.to_string(),
            Some(Host::Ipv6(a)) => format!("[{a}]"),
            None => return Err(format!("{url} has no host")),
        };
        let port = url.port_or_known_default().ok_or_else(|| format!("{url} has no port"))?;
        Ok(Origin { scheme: url.scheme().to_string(), host, port })
    }

    /// An exact origin as a tenant writes it: `http://host[:port]`, nothing else (no path,
    /// query, user or wildcard).
    pub fn parse(text: &str) -> Result<Origin, String> {
        let text = text.trim();
        if text.contains('*') {
            return Err(format!("origin {text:?}: a handler's origins are exact (no wildcard)"));
        }
        let url = Url::parse(text).map_err(|e| format!("origin {text:?} is not a URL ({e})"))?;
        if url.scheme() != "http" {
            return Err(format!("origin {text:?}: only http:// is served"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("origin {text:?} holds a user name or password"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!("origin {text:?} has a path, query or fragment; give scheme://host[:port] only"));
        }
        Origin::of(&url).map_err(|e| format!("origin {text:?}: {e}"))
    }
}

/// An operator's pattern: `scheme://host[:port]` where the host may be `*` (any) or start with
/// `*.` (that domain's subdomains) and the port may be `*` (any; default: the scheme's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    scheme: String,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`: `.example.com`, matched as a suffix.
    Subdomains(String),
    Exact(String),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let bad = |why: &str| {
            format!(
                "outbound pattern {text:?}: {why} (want scheme://host[:port], host may be * or *.domain, port may be *)"
            )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if scheme != "http" {
            return Err(bad("only http is served"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, Some(p)),
            _ => (rest, None),
        };
        let port = match port {
            None => Some(80),
            Some("*") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad("the port is not a number"))?),
        };
        let host = match host {
            "*" => HostPattern::Any,
            h if h.starts_with("*.") && !h[2..].contains('*') && h.len() > 2 => {
                HostPattern::Subdomains(h[1..].to_ascii_lowercase())
            }
            h if h.contains('*') => return Err(bad("a wildcard stands for the whole host or its first labels")),
            h => {
                // Normalized as a URL would be (IPv6 brackets, case).
                let url = Url::parse(&format!("http://{h}/")).map_err(|_| bad("the host is not valid"))?;
                HostPattern::Exact(Origin::of(&url).map_err(|e| bad(&e))?.host)
            }
        };
        Ok(Pattern { scheme: scheme.to_string(), host, port })
    }

    fn matches(&self, o: &Origin) -> bool {
        self.scheme == o.scheme
            && self.port.is_none_or(|p| p == o.port)
            && match &self.host {
                HostPattern::Any => true,
                HostPattern::Subdomains(suffix) => o.host.ends_with(suffix.as_str()),
                HostPattern::Exact(h) => *h == o.host,
            }
    }
}

/// What the operator allows every handler: [`Pattern`]s, private addresses, per-call limits.
#[derive(Clone, Debug)]
pub struct Policy {
    pub patterns: Vec<Pattern>,
    pub allow_private: bool,
    pub max_requests: u32,
    pub max_bytes_out: usize,
    pub max_bytes_in: usize,
}

impl Policy {
    /// Whether the operator's patterns allow `origin`.
    pub fn allows(&self, origin: &Origin) -> bool {
        self.patterns.iter().any(|p| p.matches(origin))
    }

    /// A tenant's allow-list as given at upload (comma-separated origins): each exact, within
    /// the operator's patterns; returned normalized (`http://host:port`).
    pub fn check_list(&self, list: &str) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        for text in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let origin = Origin::parse(text)?;
            if !self.allows(&origin) {
                return Err(match self.patterns.is_empty() {
                    true => format!("origin {origin}: this server allows handlers no outbound requests"),
                    false => format!(
                        "origin {origin} is outside what this server allows handlers (--handler-allow-outbound)"
                    ),
                });
            }
            let text = origin.to_string();
            if !out.contains(&text) {
                out.push(text);
            }
        }
        if out.len() > MAX_ORIGINS {
            return Err(format!("{} origins; a handler may have at most {MAX_ORIGINS}", out.len()));
        }
        Ok(out)
    }
}

/// Whether handlers may reach `ip` without the operator allowing private addresses: not
/// loopback, private, link-local, shared (CGNAT), unique-local, multicast, broadcast,
/// documentation, benchmarking, reserved or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_public_v4(a),
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = a.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public_v4(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32));
            }
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
        }
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24, protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || o[0] >= 240) // reserved
}

/// One call's outbound capability: the operator's policy, the handler's allow-list, and what
/// is left of the call's limits.
pub struct Outbound {
    policy: std::sync::Arc<Policy>,
    allowed: Vec<Origin>,
    requests: u32,
    bytes_out: usize,
    bytes_in: usize,
}

/// What one hop answered, before redirects are looked at.
struct Hop {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Outbound {
    /// The capability of a call of a handler whose allow-list is `allowed` (as stored).
    pub fn new(policy: std::sync::Arc<Policy>, allowed: &[String]) -> Outbound {
        let allowed = allowed.iter().filter_map(|o| Origin::parse(o).ok()).collect();
        let (requests, bytes_out, bytes_in) = (policy.max_requests, policy.max_bytes_out, policy.max_bytes_in);
        Outbound { policy, allowed, requests, bytes_out, bytes_in }
    }

    /// Sends `request` (following redirects as it asks, each hop checked), answering before
    /// `deadline`.
    pub fn send(&mut self, request: HttpRequest, deadline: Instant) -> Result<HttpResponse, OutboundError> {
        let mut method = hyper::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .ok()
            .filter(|m| !REFUSED_METHODS.contains(&m.as_str()))
            .ok_or_else(|| {
                OutboundError::Invalid(format!(
                    "method {:?}: any method token but {} (WebDAV's MKCOL or PROPFIND are fine)",
                    request.method,
                    REFUSED_METHODS.join(" and ")
                ))
            })?;
        let mut headers = Vec::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| OutboundError::Invalid(format!("header name {name:?} is not valid")))?;
            if HOST_HEADERS.contains(&n.as_str()) || n.as_str().starts_with("proxy-") {
                return Err(OutboundError::Invalid(format!("header {name:?} is set by the host")));
            }
            let v = HeaderValue::from_str(value)
                .map_err(|_| OutboundError::Invalid(format!("the value of header {name:?} is not valid")))?;
            headers.push((n, v));
        }
        let mut url = Url::parse(&request.url)
            .map_err(|e| OutboundError::Invalid(format!("URL {:?} is not valid ({e})", request.url)))?;
        let mut body = request.body;
        let mut redirects_left = request.follow_redirects.min(MAX_REDIRECTS);
        loop {
            let hop = self.hop(&method, &url, &headers, &body, deadline)?;
            let location = hop.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.clone());
            let redirect = matches!(hop.status, 301 | 302 | 303 | 307 | 308);
            match location {
                Some(location) if redirect && redirects_left > 0 => {
                    redirects_left -= 1;
                    let next = url.join(&location).map_err(|e| {
                        OutboundError::Failed(format!("{url} redirected to {location:?}, which is not a URL ({e})"))
                    })?;
                    // Credentials meant for one origin do not follow a redirect to another.
                    if next.origin() != url.origin() {
                        headers.retain(|(n, _)| !CREDENTIAL_HEADERS.contains(&n.as_str()));
                    }
                    url = next;
                    // As browsers do: 303, and 301/302 after a POST, become a GET without body.
                    if hop.status == 303 || (matches!(hop.status, 301 | 302) && method == hyper::Method::POST) {
                        method = hyper::Method::GET;
                        body = Vec::new();
                    }
                }
                _ => {
                    return Ok(HttpResponse {
                        status: hop.status,
                        headers: hop.headers,
                        body: hop.body,
                        url: url.into(),
                    });
                }
            }
        }
    }

    /// One request, no redirect: origin, limits, address, then the exchange.
    fn hop(
        &mut self,
        method: &hyper::Method,
        url: &Url,
        headers: &[(HeaderName, HeaderValue)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<Hop, OutboundError> {
        if url.scheme() != "http" {
            return Err(OutboundError::Invalid(format!("{url}: only http:// URLs are served")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundError::Invalid(format!("{url}: no user name or password in URLs")));
        }
        let origin = Origin::of(url).map_err(OutboundError::Invalid)?;
        if !self.allowed.contains(&origin) {
            return Err(OutboundError::Denied(format!("origin {origin} is not in the handler's allow-list")));
        }
        if !self.policy.allows(&origin) {
            return Err(OutboundError::Denied(format!("origin {origin} is not allowed by the server")));
        }
        if self.requests == 0 {
            return Err(OutboundError::Limit(format!(
                "request to {origin}: at most {} requests per call",
                self.policy.max_requests
            )));
        }
        if body.len() > self.bytes_out {
            return Err(OutboundError::Limit(format!(
                "request to {origin}: a body of {} bytes is over what is left of the {} bytes a call may send",
                body.len(),
                self.policy.max_bytes_out
            )));
        }
        self.requests -= 1;
        self.bytes_out -= body.len();
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(OutboundError::Limit(format!("request to {origin}: the call's deadline has passed")));
        }

        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let mut builder =
            hyper::Request::builder().method(method.clone()).uri(target).header(hyper::header::HOST, authority);
        for (n, v) in headers {
            builder = builder.header(n, v);
        }
        let req = builder
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| OutboundError::Invalid(format!("request to {origin}: {e}")))?;
        let exchange = Exchange {
            origin: origin.clone(),
            host,
            port: origin.port,
            allow_private: self.policy.allow_private,
            request: req,
            max_in: self.bytes_in,
            max_in_total: self.policy.max_bytes_in,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let task = runtime().spawn(async move {
            let result = match tokio::time::timeout(remaining, exchange.run()).await {
                Ok(result) => result,
                Err(_) => {
                    Err(OutboundError::Limit(format!("request to {origin}: no answer within the call's deadline")))
                }
            };
            let _ = tx.send(result);
        });
        // The task times itself out; the margin covers scheduling only.
        let hop = match rx.recv_timeout(remaining + Duration::from_millis(50)) {
            Ok(result) => result,
            Err(_) => {
                task.abort();
                Err(OutboundError::Limit(format!("request to {url}: no answer within the call's deadline")))
            }
        }?;
        self.bytes_in -= hop.body.len();
        Ok(hop)
    }
}

/// One request on its way: resolved, checked, connected, read.
struct Exchange {
    origin: Origin,
    host: String,
    port: u16,
    allow_private: bool,
    request: hyper::Request<Full<Bytes>>,
    max_in: usize,
    max_in_total: usize,
}

impl Exchange {
    async fn run(self) -> Result<Hop, OutboundError> {
        let origin = &self.origin;
        // Resolved once; the connection goes to an address checked here, never to the name.
        let addrs: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| OutboundError::Failed(format!("{origin}: cannot resolve {} ({e})", self.host)))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(OutboundError::Failed(format!("{origin}: {} resolves to no address", self.host)));
        }
        if !self.allow_private
            && let Some(private) = addrs.iter().find(|a| !is_public(a.ip()))
        {
            return Err(OutboundError::Denied(format!(
                "origin {origin}: {} resolves to {}, a private address handlers may not reach",
                self.host,
                private.ip()
            )));
        }
        let mut last = None;
        let mut stream = None;
        for addr in &addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        let stream = stream
            .ok_or_else(|| OutboundError::Failed(format!("{origin}: cannot connect ({})", last.unwrap_or_default())))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| OutboundError::Failed(format!("{origin}: {e}")))?;
        let conn = tokio::spawn(conn);
        let response =
            sender.send_request(self.request).await.map_err(|e| OutboundError::Failed(format!("{origin}: {e}")))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut body = Vec::new();
        let mut incoming = response.into_body();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| OutboundError::Failed(format!("{origin}: reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if body.len() + data.len() > self.max_in {
                    conn.abort();
                    return Err(OutboundError::Limit(format!(
                        "answer of {origin}: the body is over what is left of the {} bytes a call may receive",
                        self.max_in_total
                    )));
                }
                body.extend_from_slice(&data);
            }
        }
        conn.abort();
        Ok(Hop { status, headers, body })
    }
}

/// The process-wide runtime outbound requests run on (one worker; requests are I/O).
fn runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("ocni-outbound")
                .enable_all()
                .build()
                .expect("the outbound runtime starts")
        })
        .handle()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_and_normalized() {
        assert_eq!(Origin::parse("http://API.example.com").unwrap().to_string(), "http://api.example.com:80");
        assert_eq!(Origin::parse("http://127.0.0.1:8080/").unwrap().to_string(), "http://127.0.0.1:8080");
        assert_eq!(Origin::parse("http://[::1]:81").unwrap().to_string(), "http://[::1]:81");
        for bad in
            ["http://*.example.com", "https://a.example", "http://a.example/path", "http://u:p@a.example", "a.example"]
        {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_match_hosts_and_ports() {
        let o = |s| Origin::parse(s).unwrap();
        let p = |s| Pattern::parse(s).unwrap();
        assert!(p("http://*.example.com").matches(&o("http://api.example.com")));
        assert!(!p("http://*.example.com").matches(&o("http://example.com")));
        assert!(!p("http://*.example.com").matches(&o("http://api.example.com:8080")));
        assert!(p("http://*.example.com:*").matches(&o("http://api.example.com:8080")));
        assert!(p("http://*:*").matches(&o("http://10.0.0.1:9")));
        assert!(p("http://127.0.0.1:*").matches(&o("http://127.0.0.1:5000")));
        assert!(!p("http://127.0.0.1:*").matches(&o("http://localhost:5000")));
        assert!(p("http://[::1]:*").matches(&o("http://[::1]:5000")));
        for bad in ["https://x", "x", "http://a*b", "http://x:port"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
