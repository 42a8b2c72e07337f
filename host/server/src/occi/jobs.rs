//! The tenant's jobs (handlers' long operations, WIT 0.1.3): `GET /-/jobs` (the newest, at
//! most [`LISTED`]) and `GET /-/jobs/{id}`, in JSON. Another tenant's job is a 404, as for
//! one that does not exist.

use std::time::{Duration, UNIX_EPOCH};

use hyper::{Method, StatusCode};
use ocni_model::Dialect;
use ocni_store::{JobRecord, Reads};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::negotiate::Format;
use crate::reply::{R, Reply, Request, json_reply};
use crate::route::Allowed;
use crate::services::Services;

/// The most jobs `GET /-/jobs` lists (the newest).
pub(crate) const LISTED: usize = 100;

fn time(ms: u64) -> Value {
    json!(humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string())
}

/// A job as the API shows it.
pub(crate) fn describe(s: &Services, job: &JobRecord, base: &str) -> Value {
    let mut v = json!({
        "id": job.id,
        "state": job.state.as_str(),
        "name": job.name,
        "handler": job.handler,
        "entity": job.entity,
        "location": format!("{base}{}", ocni_model::text::location_text(&job.entity)),
        "attempts": job.attempts,
        "max_attempts": s.config.handler_job_retries.saturating_add(1),
        "last_error": job.last_error,
        "created": time(job.created_ms),
        "updated": time(job.updated_ms),
    });
    if !job.state.is_final() && job.not_before_ms > job.updated_ms {
        v["next_attempt"] = time(job.not_before_ms);
    }
    v
}

pub(crate) fn jobs(s: &Services, tenant: &str, id: Option<&str>, req: &Request) -> R<Reply> {
    let allowed = if id.is_some() { Allowed::JOB } else { Allowed::JOB_LIST };
    if !matches!(req.method, &Method::GET | &Method::HEAD) {
        return Err(ApiError::method(req.method, allowed));
    }
    if req.route.action.is_some() {
        return Err(ApiError::bad("?action= does not apply to jobs"));
    }
    if req.body.is_some() {
        return Err(ApiError::bad("GET of jobs takes no body"));
    }
    // Job descriptions are JSON documents whatever the client accepts.
    let format = Format::Json(Dialect::Occi12);
    let r = s.store.read()?;
    match id {
        Some(id) => {
            let job = r.job(tenant, id)?.ok_or_else(|| ApiError::not_found(format!("no job {id:?}")))?;
            Ok(json_reply(StatusCode::OK, &describe(s, &job, &req.base_url), format))
        }
        None => {
            let list: Vec<Value> =
                r.newest_jobs(tenant, LISTED)?.iter().map(|j| describe(s, j, &req.base_url)).collect();
            Ok(json_reply(StatusCode::OK, &json!({"jobs": list, "max_listed": LISTED}), format))
        }
    }
}
