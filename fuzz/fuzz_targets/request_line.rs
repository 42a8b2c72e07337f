//! Request path, query, Accept and Content-Type: routing and negotiation never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocni_model::Dialect;
use ocni_server::{negotiate, route};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(4, '\n');
    let path = parts.next().unwrap_or("");
    let query = parts.next();
    let accept = parts.next();
    let content_type = parts.next();
    let _ = route::route(path, query);
    let _ = negotiate::choose(accept, Dialect::Occi12);
    let _ = negotiate::body_type(content_type);
});
