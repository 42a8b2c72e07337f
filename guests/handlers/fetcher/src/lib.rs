//! The outbound HTTP test guest: a kind whose create fetches a URL through the host's
//! `outbound` interface (WIT 0.1.2) and stores the answer in the new entity.
//!
//! Attributes it reads on create: `example.fetch.url` (required), `example.fetch.method`
//! (default `GET`), `example.fetch.times` (how many requests, default 1), `example.fetch.send`
//! (bytes of body to send with each, default 0), `example.fetch.redirects` (how many redirects
//! the host follows, default 0), `example.fetch.auth` (sent as the `authorization` header, if
//! set). It sets `example.fetch.status` (the last answer's status),
//! `example.fetch.answer` (its body as text, at most 1000 characters) and `example.fetch.from`
//! (the URL that answered). Any request that gets no answer refuses the create, with the host's
//! error: the client's request fails with that message.

use ocni_handler_sdk::{Change, Entity, Handler, Refusal, log, outbound};

struct Fetcher;

impl Handler for Fetcher {
    fn on_create(entity: Entity) -> Result<Vec<Change>, Refusal> {
        let url =
            entity.attr_str("example.fetch.url").ok_or_else(|| Refusal::invalid("example.fetch.url", "required"))?;
        let method = entity.attr_str("example.fetch.method").unwrap_or("GET");
        let times = entity.attr_i64("example.fetch.times").unwrap_or(1).clamp(1, 100);
        let size = entity.attr_i64("example.fetch.send").unwrap_or(0).clamp(0, 16 << 20) as usize;
        let redirects = entity.attr_i64("example.fetch.redirects").unwrap_or(0).clamp(0, 255) as u8;
        let mut request = outbound::request(method, url);
        request.body = vec![b'x'; size];
        request.follow_redirects = redirects;
        request.headers.push(("accept".into(), "text/plain".into()));
        if let Some(auth) = entity.attr_str("example.fetch.auth") {
            request.headers.push(("authorization".into(), auth.into()));
        }
        let mut last = None;
        for i in 0..times {
            match outbound::send(&request) {
                Ok(response) => last = Some(response),
                Err(e) => {
                    log::warn("fetch failed", &[("url", url), ("request", &(i + 1).to_string())]);
                    return Err(Refusal::other(format!("request {} of {times} to {url}: {}", i + 1, e.describe())));
                }
            }
        }
        let response = last.expect("at least one request");
        let answer: String = String::from_utf8_lossy(&response.body).chars().take(1000).collect();
        Ok(vec![
            Change::set("example.fetch.status", i64::from(response.status)),
            Change::set("example.fetch.answer", answer),
            Change::set("example.fetch.from", response.url),
        ])
    }
}

ocni_handler_sdk::export_handler!(Fetcher);
