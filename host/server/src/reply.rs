//! What an operation gets and gives back, apart from HTTP: the parsed [`Request`] (route,
//! body, negotiated format), the finished [`Reply`] before framing, and the builders of the
//! replies the OCCI renderings share (JSON, text headers or body, location lists).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use ocni_model::render::{render_categories, render_locations};
use ocni_model::text::{self, Line, TextMessage};
use ocni_model::{Category, Class, Dialect};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::negotiate::Format;
use crate::route::Route;

/// A finished response, before HTTP framing.
#[derive(Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub content_type: Option<&'static str>,
}

impl Reply {
    /// An answer with no body.
    pub(crate) fn new(status: StatusCode) -> Self {
        Reply { status, headers: Vec::new(), body: Vec::new(), content_type: None }
    }

    /// Frames the answer to a request that negotiated `format`. GFD.185 3.6.6: a successful
    /// text/occi answer has the body "OK". A header value that HTTP cannot carry is dropped
    /// (and logged); renderings escape what they put in headers, so none is expected.
    pub(crate) fn framed(mut self, format: Format) -> Framed {
        if format == Format::TextOcci && self.body.is_empty() && self.status.is_success() {
            self.body = b"OK\n".to_vec();
            self.content_type = Some(Format::TextOcci.content_type());
        }
        let mut h = HeaderMap::with_capacity(2 + self.headers.len());
        h.insert(header::SERVER, HeaderValue::from_static(SERVER));
        if let Some(ct) = self.content_type {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        for (k, v) in self.headers {
            match HeaderValue::from_str(&v) {
                Ok(v) => {
                    h.append(k, v);
                }
                Err(_) => tracing::warn!(header = k, "dropped a header value that is not valid in HTTP"),
            }
        }
        Framed { status: self.status, headers: h, body: Bytes::from(self.body) }
    }
}

/// The `Server` header: product, then the OCCI versions spoken.
pub const SERVER: &str = concat!("ocni/", env!("CARGO_PKG_VERSION"), " OCCI/1.1 OCCI/1.2");

/// An answer framed for HTTP (status, checked header values, body): what a [`Reply`] becomes.
/// A clone shares its bytes, so a framed answer is kept and sent again cheaply (the
/// single-entity GET cache does).
#[derive(Clone)]
pub struct Framed {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Framed {
    /// The HTTP response; for HEAD without the body, its length in `Content-Length`.
    pub(crate) fn response(self, head: bool) -> Response<Full<Bytes>> {
        let len = self.body.len();
        let mut resp = Response::new(Full::new(if head { Bytes::new() } else { self.body }));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        if head {
            resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        resp
    }
}

/// A request body, parsed by its media type (text/occi headers count as a body).
#[derive(Debug)]
pub enum Body {
    Json(Value),
    Text(TextMessage),
    UriList(Vec<String>),
    /// A handler component (`application/wasm`), only for `PUT /-/handlers/{name}`.
    Wasm {
        bytes: bytes::Bytes,
        /// The digest the runtime compiled it under (uploads are compiled as they arrive).
        digest: String,
    },
}

/// What a request carried, already parsed.
pub struct Request<'a> {
    pub method: &'a Method,
    pub route: Route,
    pub body: Option<Body>,
    pub format: Format,
    /// `http://host:port` for absolute URLs.
    pub base_url: String,
}

/// What every operation returns.
pub(crate) type R<T> = Result<T, ApiError>;

pub(crate) fn absolute(base: &str, locations: &[String]) -> Vec<String> {
    locations.iter().map(|l| format!("{base}{l}")).collect()
}

pub fn json_reply(status: StatusCode, v: &Value, format: Format) -> Reply {
    let mut body = serde_json::to_vec(v).expect("JSON values serialize");
    body.push(b'\n');
    Reply { status, headers: Vec::new(), body, content_type: Some(format.content_type()) }
}

pub(crate) fn text_reply(status: StatusCode, lines: Vec<Line>, format: Format) -> Reply {
    match format {
        Format::TextOcci => {
            Reply { status, headers: lines, body: b"OK\n".to_vec(), content_type: Some(format.content_type()) }
        }
        _ => Reply {
            status,
            headers: Vec::new(),
            body: text::plain_body(&lines).into_bytes(),
            content_type: Some(Format::TextPlain.content_type()),
        },
    }
}

pub(crate) fn render_category_list(cats: &[&Category], format: Format) -> R<Reply> {
    match format {
        Format::Json(d) => Ok(json_reply(StatusCode::OK, &render_categories(cats.iter().copied(), d), format)),
        Format::TextPlain | Format::TextOcci => {
            let mut lines: Vec<Line> = Vec::new();
            for class in Class::ALL {
                lines.extend(cats.iter().filter(|c| c.class == class).map(|c| text::category_line(c)));
            }
            Ok(text_reply(StatusCode::OK, lines, format))
        }
        Format::UriList => Err(ApiError::bad(
            "text/uri-list renders entity collections only; ask for application/occi+json, text/plain or text/occi",
        )),
    }
}

/// A list of absolute URLs under `header` (`X-OCCI-Location` for listings, `Location` for
/// creations).
pub(crate) fn locations_reply(status: StatusCode, urls: Vec<String>, format: Format, header: &'static str) -> Reply {
    match format {
        Format::Json(Dialect::Pyocni) if header == "Location" => {
            json_reply(status, &json!({ "Location": urls }), format)
        }
        Format::Json(d) => json_reply(status, &render_locations(urls, d), format),
        Format::UriList => {
            let mut body = String::new();
            for u in &urls {
                body.push_str(&text::location_text(u));
                body.push('\n');
            }
            Reply { status, headers: Vec::new(), body: body.into_bytes(), content_type: Some(format.content_type()) }
        }
        Format::TextPlain | Format::TextOcci => text_reply(status, text::location_lines(header, &urls), format),
    }
}

pub(crate) fn created_reply(base: &str, locations: &[String], format: Format) -> Reply {
    let urls = absolute(base, locations);
    // `Location` holds one URL: the first; text/occi lists them all as X-OCCI-Location.
    let mut reply = match format {
        Format::TextOcci if urls.len() > 1 => {
            locations_reply(StatusCode::CREATED, urls.clone(), format, "X-OCCI-Location")
        }
        Format::TextOcci => Reply { content_type: Some(format.content_type()), ..Reply::new(StatusCode::CREATED) },
        _ => locations_reply(StatusCode::CREATED, urls.clone(), format, "Location"),
    };
    if let Some(first) = urls.first() {
        reply.headers.push(("Location", text::location_text(first)));
    }
    reply
}

/// The answer of a write whose handlers submitted jobs (WIT 0.1.3): `reply` as it would have
/// been, with status 202 Accepted, `Location` the entity acted on (when it names none yet) and
/// one `Link: <.../-/jobs/{id}>; rel="monitor"` per job submitted.
pub(crate) fn accepted(mut reply: Reply, base: &str, entity: Option<&str>, jobs: &[String]) -> Reply {
    if jobs.is_empty() {
        return reply;
    }
    reply.status = StatusCode::ACCEPTED;
    if let Some(entity) = entity
        && !reply.headers.iter().any(|(k, _)| *k == "Location")
    {
        reply.headers.push(("Location", text::location_text(&format!("{base}{entity}"))));
    }
    for id in jobs {
        reply.headers.push(("Link", format!("<{base}/-/jobs/{id}>; rel=\"monitor\"")));
    }
    reply
}
