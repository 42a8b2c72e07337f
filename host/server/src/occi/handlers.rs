//! The upload API of WebAssembly handlers: `GET /-/handlers/`, `GET/PUT/DELETE
//! /-/handlers/{name}`, and a handler's recent log, `GET /-/handlers/{name}/log`. Handlers run
//! in `sandbox/`.

use hyper::{Method, StatusCode};
use ocni_runtime::LogLevel;
use ocni_store::{HandlerRecord, Reads};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::negotiate::Format;
use crate::reply::{Body, R, Reply, Request, json_reply};
use crate::route::Allowed;
use crate::sandbox::{DUMMY, LogLine};
use crate::services::Services;

/// Handler names: what fits in a URL segment and a log field.
pub fn check_name(name: &str) -> R<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Err(ApiError::bad(format!(
            "handler name {name:?} is not valid: 1 to 64 of a-z, 0-9, '-', '_', starting with a letter or digit"
        )));
    }
    if name == DUMMY {
        return Err(ApiError::bad(format!("{DUMMY:?} is the built-in no-op provider; choose another name")));
    }
    Ok(())
}

/// The categories bound to each handler name.
fn bound_categories(r: &[(String, String)], name: &str) -> Vec<String> {
    r.iter().filter(|(_, h)| h == name).map(|(c, _)| c.clone()).collect()
}

fn describe(rec: &HandlerRecord, bound: Vec<String>) -> Value {
    let mut v = json!({"name": rec.name, "digest": rec.digest, "size": rec.size, "bound": bound});
    if !rec.outbound.is_empty() {
        v["outbound"] = json!(rec.outbound);
    }
    v
}

/// `GET /-/handlers/`, `GET/PUT/DELETE /-/handlers/{name}`.
pub(crate) fn handlers(s: &Services, tenant: &str, name: Option<&str>, req: &Request) -> R<Reply> {
    if req.route.action.is_some() {
        return Err(ApiError::bad("?action= does not apply to handlers"));
    }
    // Handler descriptions are JSON documents whatever the client accepts.
    let format = Format::Json(ocni_model::Dialect::Occi12);
    match (req.method, name) {
        (&Method::GET | &Method::HEAD, None) => {
            let r = s.store.read()?;
            let bindings = r.bindings(tenant)?;
            let list: Vec<Value> =
                r.handlers(tenant)?.iter().map(|h| describe(h, bound_categories(&bindings, &h.name))).collect();
            let mut v = json!({"handlers": list});
            // The compile count is server-wide: with several tenants it would tell one of
            // another's uploads.
            if !s.tenancy.is_multi_tenant() {
                v["compiled_since_start"] = json!(s.sandbox.runtime().compiled_count());
            }
            Ok(json_reply(StatusCode::OK, &v, format))
        }
        (&Method::GET | &Method::HEAD, Some(name)) => {
            let r = s.store.read()?;
            let rec =
                r.handler(tenant, name)?.ok_or_else(|| ApiError::not_found(format!("no handler named {name:?}")))?;
            let bound = bound_categories(&r.bindings(tenant)?, name);
            Ok(json_reply(StatusCode::OK, &describe(&rec, bound), format))
        }
        (&Method::PUT, Some(name)) => {
            check_name(name)?;
            // Compiled as it arrived (http.rs), in the runtime's bounded worker.
            let Some(Body::Wasm { bytes, digest }) = &req.body else {
                return Err(ApiError::bad("PUT /-/handlers/{name} needs the component as its body"));
            };
            // The origins it may reach: what this upload says; without the parameter, a
            // replacement keeps its handler's (as it keeps its bindings) and a new one has none.
            let outbound = match &req.route.allow_outbound {
                None => None,
                Some(list) => Some(
                    s.sandbox.outbound().check_list(list).map_err(|e| ApiError::bad(format!("allow-outbound: {e}")))?,
                ),
            };
            let (replaced, bound, rec) = s.write(tenant, |w, _| {
                let replaced = w.handler(tenant, name)?;
                if replaced.is_none() {
                    s.tenancy.check_handler_limit(w, tenant)?;
                }
                let outbound = match (&outbound, &replaced) {
                    (Some(list), _) => list.clone(),
                    (None, Some(old)) => old.outbound.clone(),
                    (None, None) => Vec::new(),
                };
                let rec = HandlerRecord {
                    name: name.to_string(),
                    digest: digest.clone(),
                    size: bytes.len() as u64,
                    outbound,
                };
                w.put_handler(tenant, &rec, bytes)?;
                Ok((replaced, bound_categories(&w.bindings(tenant)?, name), rec))
            })?;
            tracing::info!(tenant, handler = name, digest = %rec.digest, size = rec.size, replaced = replaced.is_some(), "handler uploaded");
            // A new handler starts with an empty log (not the lines of one deleted under that
            // name); a replacement keeps its log, noting where the new component starts.
            let logs = s.sandbox.logs();
            match &replaced {
                None => logs.forget(tenant, name),
                Some(old) => logs.push(
                    tenant,
                    name,
                    LogLine::host(LogLevel::Info, format!("replaced: digest {} -> {}", old.digest, rec.digest)),
                ),
            }
            let replaced = replaced.is_some();
            let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
            let mut reply = json_reply(status, &describe(&rec, bound), format);
            reply.headers.push(("Location", format!("{}/-/handlers/{name}", req.base_url)));
            Ok(reply)
        }
        (&Method::DELETE, Some(name)) => {
            s.write(tenant, |w, _| {
                let bound = bound_categories(&w.bindings(tenant)?, name);
                if !bound.is_empty() {
                    return Err(ApiError::conflict(format!(
                        "handler {name:?} is bound to {}; bind those categories to another provider first",
                        bound.join(", ")
                    )));
                }
                if !w.delete_handler(tenant, name)? {
                    return Err(ApiError::not_found(format!("no handler named {name:?}")));
                }
                Ok(())
            })?;
            s.sandbox.logs().forget(tenant, name);
            tracing::info!(tenant, handler = name, "handler deleted");
            Ok(Reply::new(StatusCode::OK))
        }
        (m, None) => Err(ApiError::method(m, Allowed::HANDLER_LIST)),
        (m, Some(_)) => Err(ApiError::method(m, Allowed::HANDLER)),
    }
}

/// `GET /-/handlers/{name}/log`: the handler's recent log lines and failures on this node,
/// oldest first. JSON when the client asks for a JSON type, else text/plain (one line each).
pub(crate) fn handler_log(s: &Services, tenant: &str, name: &str, req: &Request) -> R<Reply> {
    if !matches!(req.method, &Method::GET | &Method::HEAD) {
        return Err(ApiError::method(req.method, Allowed::HANDLER_LOG));
    }
    if req.route.action.is_some() {
        return Err(ApiError::bad("?action= does not apply to a handler's log"));
    }
    // Another tenant's handler, or none: the same 404.
    if s.store.read()?.handler(tenant, name)?.is_none() {
        return Err(ApiError::not_found(format!("no handler named {name:?}")));
    }
    let logs = s.sandbox.logs();
    let (lines, evicted) = logs.lines(tenant, name);
    let (max_lines, max_bytes) = logs.bounds();
    match req.format {
        Format::Json(_) => {
            let v = json!({
                "handler": name,
                "lines": lines.iter().map(LogLine::json).collect::<Vec<_>>(),
                "evicted": evicted,
                "max_lines": max_lines,
                "max_bytes": max_bytes,
            });
            Ok(json_reply(StatusCode::OK, &v, Format::Json(ocni_model::Dialect::Occi12)))
        }
        _ => {
            let mut body = String::new();
            if evicted > 0 {
                body.push_str(&format!(
                    "# {evicted} older line(s) evicted (keeping {max_lines} lines, {max_bytes} bytes)\n"
                ));
            }
            for line in &lines {
                body.push_str(&line.text());
                body.push('\n');
            }
            Ok(Reply {
                status: StatusCode::OK,
                headers: Vec::new(),
                body: body.into_bytes(),
                content_type: Some(Format::TextPlain.content_type()),
            })
        }
    }
}
