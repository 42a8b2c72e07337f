//! The admin API under `/-/admin/` (tenants, their tokens and limits), for the operator's
//! token only (checked in `http.rs` before the body is read). Its writes are transactions of
//! their own (`Store::write`), and the in-memory tenancy is updated once they committed.

use std::collections::BTreeMap;

use hyper::{Method, StatusCode};
use ocni_store::{Reads, Step, TenantRecord};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::reply::{Body, R, Reply, Request};
use crate::route::{AdminPath, Allowed};
use crate::services::{MAX_ATTEMPTS, Services, Settled, kept_conflicting};
use crate::tenancy::{Limits, check_tenant_name, new_token, now, parse_limits};

/// A tenant's tokens as the admin API lists them: ids and creation times, never a secret.
fn token_list(r: &ocni_store::Reader, tenant: &str) -> R<Vec<Value>> {
    Ok(r.tokens()?
        .into_iter()
        .filter(|t| t.tenant == tenant)
        .map(|t| json!({"id": t.id, "created": t.created}))
        .collect())
}

fn admin_reply(status: StatusCode, v: &Value) -> Reply {
    let mut body = serde_json::to_vec_pretty(v).expect("JSON values serialize");
    body.push(b'\n');
    Reply { status, headers: Vec::new(), body, content_type: Some("application/json") }
}

fn json_body<'a>(req: &'a Request) -> R<Option<&'a Value>> {
    match &req.body {
        None => Ok(None),
        Some(Body::Json(v)) => Ok(Some(v)),
        Some(_) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the admin API takes JSON bodies (Content-Type: application/json)",
        )),
    }
}

fn no_tenant(name: &str) -> ApiError {
    ApiError::not_found(format!("no tenant named {name:?}"))
}

/// Serves `/-/admin/{rest}` (already authenticated as the admin).
pub(crate) fn admin(s: &Services, path: &AdminPath, req: &Request) -> R<Reply> {
    if req.route.action.is_some() {
        return Err(ApiError::bad("?action= does not apply to the admin API"));
    }
    let method = req.method;
    match (path, method) {
        (AdminPath::Tenants, &Method::GET | &Method::HEAD) => {
            let r = s.store.read()?;
            let mut list = Vec::new();
            for t in r.tenants()? {
                list.push(describe_tenant(s, &r, &t)?);
            }
            Ok(admin_reply(StatusCode::OK, &json!({ "tenants": list })))
        }
        (AdminPath::Tenants, &Method::POST) => create_tenant(s, req),
        (AdminPath::Tenants, m) => Err(ApiError::method(m, Allowed::TENANTS)),
        (AdminPath::Tenant(name), &Method::GET | &Method::HEAD) => {
            let r = s.store.read()?;
            let t = r.tenant(name)?.ok_or_else(|| no_tenant(name))?;
            Ok(admin_reply(StatusCode::OK, &describe_tenant(s, &r, &t)?))
        }
        (AdminPath::Tenant(name), &Method::DELETE) => delete_tenant(s, name),
        (AdminPath::Tenant(_), m) => Err(ApiError::method(m, Allowed::TENANT)),
        (AdminPath::Tokens(name), &Method::GET | &Method::HEAD) => {
            let r = s.store.read()?;
            r.tenant(name)?.ok_or_else(|| no_tenant(name))?;
            Ok(admin_reply(StatusCode::OK, &json!({ "tenant": name, "tokens": token_list(&r, name)? })))
        }
        (AdminPath::Tokens(name), &Method::POST) => {
            if json_body(req)?.is_some_and(|b| b.as_object().is_none_or(|o| !o.is_empty())) {
                return Err(ApiError::bad("issuing a token takes no body (or {})"));
            }
            let (record, token) = new_token(name)?;
            admin_write(s, |w| {
                w.tenant(name)?.ok_or_else(|| no_tenant(name))?;
                Ok(w.put_token(&record)?)
            })?;
            s.tenancy.add_token(&record);
            tracing::info!(tenant = name, token_id = %record.id, "token issued");
            let v = json!({"tenant": name, "id": record.id, "created": record.created, "token": token});
            Ok(admin_reply(StatusCode::CREATED, &v))
        }
        (AdminPath::Tokens(_), m) => Err(ApiError::method(m, Allowed::TOKENS)),
        (AdminPath::Token(name, id), &Method::DELETE) => {
            admin_write(s, |w| {
                w.tenant(name)?.ok_or_else(|| no_tenant(name))?;
                if w.delete_token(name, id)? {
                    Ok(())
                } else {
                    Err(ApiError::not_found(format!("tenant {name:?} has no token {id:?}")))
                }
            })?;
            s.tenancy.revoke_token(id);
            tracing::info!(tenant = name, token_id = id, "token revoked");
            Ok(admin_reply(StatusCode::OK, &json!({"tenant": name, "revoked": id})))
        }
        (AdminPath::Token(..), m) => Err(ApiError::method(m, Allowed::TOKEN)),
        (AdminPath::Limits(name), &Method::GET | &Method::HEAD) => {
            let t = s.store.read()?.tenant(name)?.ok_or_else(|| no_tenant(name))?;
            Ok(admin_reply(
                StatusCode::OK,
                &json!({"tenant": name, "limits": Limits::of(&t.limits, &s.config).to_json()}),
            ))
        }
        (AdminPath::Limits(name), &Method::PUT) => {
            let body = json_body(req)?.ok_or_else(|| ApiError::bad("PUT limits needs a JSON object of limits"))?;
            let changes = parse_limits(body, &s.config)?;
            let record = admin_write(s, |w| {
                let mut t = w.tenant(name)?.ok_or_else(|| no_tenant(name))?;
                for (k, v) in &changes {
                    match v {
                        Some(n) => t.limits.insert(k.clone(), *n),
                        None => t.limits.remove(k),
                    };
                }
                w.put_tenant(&t)?;
                Ok(t)
            })?;
            let limits = Limits::of(&record.limits, &s.config);
            s.tenancy.set_tenant(name, limits.clone());
            let changed = Value::Object(changes.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
            tracing::info!(tenant = name, limits = %changed, "limits set");
            Ok(admin_reply(StatusCode::OK, &json!({"tenant": name, "limits": limits.to_json()})))
        }
        (AdminPath::Limits(_), m) => Err(ApiError::method(m, Allowed::LIMITS)),
        (AdminPath::Unknown(rest), _) => Err(ApiError::not_found(format!(
            "no admin resource at /-/admin/{rest}: see /-/admin/tenants, /-/admin/tenants/NAME, \
             /-/admin/tenants/NAME/tokens[/ID], /-/admin/tenants/NAME/limits"
        ))),
    }
}

/// Runs an administration write (tenants, tokens, limits) as a step of its own, prepared again
/// (`f` runs again) when a concurrent write changed what it read; answers once it is durable.
fn admin_write<T>(s: &Services, mut f: impl FnMut(&mut Step) -> R<T>) -> R<T> {
    let mut last = String::new();
    for _ in 0..MAX_ATTEMPTS {
        let mut step = s.store.step()?;
        let out = f(&mut step)?;
        match s.apply(step.finish())? {
            Settled::Written(_) => return Ok(out),
            Settled::Changed { table, key } => {
                tracing::debug!(table, key = %key, "admin write conflicted; preparing it again");
                last = format!("{table} {key:?}");
            }
        }
    }
    Err(kept_conflicting(&last))
}

fn create_tenant(s: &Services, req: &Request) -> R<Reply> {
    let body = json_body(req)?.ok_or_else(|| ApiError::bad("POST /-/admin/tenants needs {\"name\": ...}"))?;
    let obj = body.as_object().ok_or_else(|| ApiError::bad("the body must be a JSON object"))?;
    if let Some(other) = obj.keys().find(|k| *k != "name" && *k != "limits") {
        return Err(ApiError::bad(format!("member {other:?} is not allowed here (name, limits)")));
    }
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("member \"name\" (the tenant's name) is missing"))?;
    check_tenant_name(name)?;
    let set: BTreeMap<String, u64> = match obj.get("limits") {
        None => BTreeMap::new(),
        Some(l) => parse_limits(l, &s.config)?.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
    };
    let record = TenantRecord { name: name.to_string(), created: now(), limits: set };
    let (token_record, token) = new_token(name)?;
    admin_write(s, |w| {
        if w.tenant(name)?.is_some() {
            return Err(ApiError::conflict(format!("tenant {name:?} already exists")));
        }
        w.put_tenant(&record)?;
        Ok(w.put_token(&token_record)?)
    })?;
    let limits = Limits::of(&record.limits, &s.config);
    s.tenancy.set_tenant(name, limits.clone());
    s.tenancy.add_token(&token_record);
    // Data already under this name (the local mode's `default`) is the tenant's; its catalog
    // is read afresh.
    s.forget_catalog(name);
    tracing::info!(tenant = name, token_id = %token_record.id, "tenant created");
    let r = s.store.read()?;
    let mut v = describe_tenant(s, &r, &record)?;
    v["token"] = json!({"id": token_record.id, "created": token_record.created, "token": token});
    let mut reply = admin_reply(StatusCode::CREATED, &v);
    reply.headers.push(("Location", format!("{}/-/admin/tenants/{name}", req.base_url)));
    Ok(reply)
}

fn delete_tenant(s: &Services, name: &str) -> R<Reply> {
    let (ids, entities) = admin_write(s, |w| {
        w.tenant(name)?.ok_or_else(|| no_tenant(name))?;
        let entities = w.entity_count(name)?;
        Ok((w.delete_tenant(name)?, entities))
    })?;
    s.tenancy.remove_tenant(name);
    s.forget_catalog(name);
    s.sandbox.logs().forget_tenant(name);
    tracing::info!(tenant = name, tokens = ids.len(), entities, "tenant deleted");
    Ok(admin_reply(
        StatusCode::OK,
        &json!({"deleted": name, "tokens_revoked": ids.len(), "entities_deleted": entities}),
    ))
}

fn describe_tenant(s: &Services, r: &ocni_store::Reader, t: &TenantRecord) -> R<Value> {
    let tokens = token_list(r, &t.name)?;
    Ok(json!({
        "name": t.name,
        "created": t.created,
        "limits": Limits::of(&t.limits, &s.config).to_json(),
        "entities": r.entity_count(&t.name)?,
        "categories": r.categories(&t.name)?.len(),
        "handlers": r.handlers(&t.name)?.len(),
        "tokens": tokens,
    }))
}
