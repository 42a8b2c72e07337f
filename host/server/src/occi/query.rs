//! The query interface (`/-/`): discovery of the categories a tenant sees, with filters, and
//! the category manager (kinds, mixins and actions added, replaced and deleted, providers bound).

use hyper::{Method, StatusCode};
use ocni_model::category::split_id;
use ocni_model::filter::{parse_category_filters, with_relatives};
use ocni_model::{Catalog, Category, Class, parse_category, parse_category_ref};
use ocni_store::{Page, Reads};
use serde_json::Value;

use super::entity::{delete_entity, put_mixins};
use super::{Purpose, need, no_action};
use crate::error::ApiError;
use crate::reply::{Body, R, Reply, Request, render_category_list};
use crate::route::Allowed;
use crate::sandbox::{DUMMY, Write};
use crate::services::Services;

pub(crate) fn query_interface(s: &Services, tenant: &str, catalog: &Catalog, req: &Request) -> R<Reply> {
    no_action(req)?;
    match *req.method {
        Method::GET | Method::HEAD => {
            // GFD.185 3.4.1: a filter selects exactly the categories it names (a JSON filter:
            // those it matches); `?related=true` adds what they refer to and what refers to them.
            let named: Option<Vec<String>> = match &req.body {
                Some(Body::Json(body)) => {
                    let filters = parse_category_filters(body)?;
                    Some(catalog.iter().filter(|c| filters.iter().any(|f| f.matches(c))).map(|c| c.id()).collect())
                }
                Some(Body::Text(t)) => Some(t.category_filter(catalog)?),
                Some(Body::UriList(_) | Body::Wasm { .. }) => {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "a category filter is application/occi+json, text/plain or text/occi",
                    ));
                }
                None => None,
            };
            let cats: Vec<&Category> = match named {
                None => catalog.iter().map(|c| &**c).collect(),
                Some(named) => {
                    let ids = if req.route.related { with_relatives(catalog, &named) } else { named };
                    catalog.iter().filter(|c| ids.contains(&c.id())).map(|c| &**c).collect()
                }
            };
            render_category_list(&cats, req.format)
        }
        Method::POST => {
            let body = need(req, Purpose::Categories, catalog)?;
            let (new, bindings) = parse_category_groups(&body, false)?;
            if new.is_empty() {
                return Err(ApiError::bad(
                    "the body defines no category: give \"kinds\", \"mixins\" and/or \"actions\"",
                ));
            }
            let added = s.write(tenant, |w, catalog| {
                let next = catalog.add(new.clone())?;
                s.tenancy.check_catalog_limits(tenant, &next)?;
                for c in &new {
                    w.put_category(tenant, next.get(&c.id()).expect("just added"))?;
                }
                for (id, handler) in &bindings {
                    bind(w, tenant, &next, id, Some(handler))?;
                }
                let added: Vec<Category> = new.iter().map(|c| (**next.get(&c.id()).unwrap()).clone()).collect();
                Ok(added)
            })?;
            tracing::info!(tenant, count = added.len(), "categories added");
            render_category_list(&added.iter().collect::<Vec<_>>(), req.format)
        }
        Method::PUT => {
            let body = need(req, Purpose::Categories, catalog)?;
            let (changed, bindings) = parse_category_groups(&body, true)?;
            let mut providers = parse_providers(&body)?;
            providers.extend(bindings.into_iter().map(|(id, h)| (id, Some(h))));
            if changed.is_empty() && providers.is_empty() {
                return Err(ApiError::bad(
                    "the body changes nothing: give \"kinds\", \"mixins\", \"actions\" and/or \"providers\"",
                ));
            }
            s.write(tenant, |w, catalog| {
                let next = if changed.is_empty() { None } else { Some(catalog.replace(changed.clone())?) };
                if let Some(next) = &next {
                    s.tenancy.check_catalog_limits(tenant, next)?;
                }
                let effective = next.as_ref().unwrap_or(catalog);
                for c in &changed {
                    // Store the category as the catalog completed it (e.g. default parent).
                    w.put_category(tenant, effective.get(&c.id()).expect("just replaced"))?;
                }
                for (id, provider) in &providers {
                    bind(w, tenant, effective, id, provider.as_deref())?;
                }
                Ok(())
            })?;
            Ok(Reply::new(StatusCode::OK))
        }
        Method::DELETE => {
            let body = need(req, Purpose::Categories, catalog)?;
            let ids = parse_category_refs(&body)?;
            if ids.is_empty() {
                return Err(ApiError::bad("the body names no category to delete"));
            }
            let cascade = req.route.cascade;
            s.write(tenant, |w, catalog| {
                let next = catalog.delete(&ids)?;
                for id in &ids {
                    let cat = catalog.get(id).expect("checked by delete");
                    match cat.class {
                        Class::Kind => {
                            let members = w.by_kind(tenant, id, Page::ALL)?;
                            if !members.is_empty() && !cascade {
                                return Err(ApiError::conflict(format!(
                                    "kind {id:?} still has {} entities (e.g. {}); delete them first, or send DELETE /-/?cascade=true to delete them with the kind",
                                    members.len(),
                                    members[0]
                                )));
                            }
                            for loc in members {
                                delete_entity(s, w, tenant, catalog, &loc)?;
                            }
                        }
                        Class::Mixin => {
                            // Deleting a mixin dissociates it from every entity.
                            for loc in w.by_mixin(tenant, id, Page::ALL)? {
                                if let Some(e) = w.entity(tenant, &loc)? {
                                    let mixins: Vec<String> = e.mixins.iter().filter(|m| *m != id).cloned().collect();
                                    put_mixins(s, w, tenant, &next, &e, mixins)?;
                                }
                            }
                        }
                        Class::Action => {}
                    }
                    w.delete_category(tenant, id)?;
                }
                Ok(())
            })?;
            tracing::info!(tenant, count = ids.len(), cascade, "categories deleted");
            Ok(Reply::new(StatusCode::OK))
        }
        _ => Err(ApiError::method(req.method, Allowed::QUERY_INTERFACE)),
    }
}
/// Binds a kind or mixin to a provider: `dummy` (no-op) or one of the tenant's handlers;
/// `None` unbinds.
fn bind(w: &mut Write, tenant: &str, catalog: &Catalog, id: &str, provider: Option<&str>) -> R<()> {
    let cat =
        catalog.get(id).ok_or_else(|| ApiError::not_found(format!("providers: category {id:?} does not exist")))?;
    if cat.class == Class::Action {
        return Err(ApiError::bad(format!("providers: {id:?} is an action; bind providers to kinds and mixins")));
    }
    if let Some(name) = provider
        && name != DUMMY
        && w.handler(tenant, name)?.is_none()
    {
        return Err(ApiError::bad(format!(
            "unknown provider {name:?} for {id:?}: upload it first (PUT /-/handlers/{name}) or use \"{}\"",
            DUMMY
        )));
    }
    Ok(w.set_binding(tenant, id, provider)?)
}

/// (category id, handler name) pairs.
type Bindings = Vec<(String, String)>;

/// `{"kinds": [...], "mixins": [...], "actions": [...]}` as categories, with the handler
/// bindings their `"handler"` members ask for (`providers` allowed when `allow_providers`, and
/// read separately).
fn parse_category_groups(body: &Value, allow_providers: bool) -> R<(Vec<Category>, Bindings)> {
    let obj = body.as_object().ok_or_else(|| ApiError::bad("the body must be a JSON object"))?;
    let mut out = Vec::new();
    let mut bindings = Vec::new();
    for (member, list) in obj {
        let class = match member.as_str() {
            "kinds" => Class::Kind,
            "mixins" => Class::Mixin,
            "actions" => Class::Action,
            "providers" if allow_providers => continue,
            other => {
                return Err(ApiError::bad(format!(
                    "member {other:?} is not allowed here (kinds, mixins, actions{})",
                    if allow_providers { ", providers" } else { "" }
                )));
            }
        };
        let list = list.as_array().ok_or_else(|| ApiError::bad(format!("{member} must be an array")))?;
        for (i, c) in list.iter().enumerate() {
            let place = format!("{member}[{i}]");
            let mut c = c.clone();
            let handler = match c.as_object_mut().and_then(|o| o.remove("handler")) {
                None => None,
                Some(Value::String(h)) if class != Class::Action => Some(h),
                Some(_) => {
                    return Err(ApiError::bad(format!("{place}: \"handler\" is a handler name, for kinds and mixins")));
                }
            };
            let cat = parse_category(class, &c).map_err(|e| ApiError::from(e.at(&place)))?;
            if let Some(h) = handler {
                bindings.push((cat.id(), h));
            }
            out.push(cat);
        }
    }
    Ok((out, bindings))
}

fn parse_category_refs(body: &Value) -> R<Vec<String>> {
    let obj = body.as_object().ok_or_else(|| ApiError::bad("the body must be a JSON object"))?;
    let mut out = Vec::new();
    for (member, list) in obj {
        if !matches!(member.as_str(), "kinds" | "mixins" | "actions") {
            return Err(ApiError::bad(format!("member {member:?} is not allowed here (kinds, mixins, actions)")));
        }
        let list = list.as_array().ok_or_else(|| ApiError::bad(format!("{member} must be an array")))?;
        for (i, c) in list.iter().enumerate() {
            let id = parse_category_ref(c).map_err(|e| ApiError::from(e.at(format!("{member}[{i}]"))))?;
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// The seed's providers body: `{"providers": [{"OCCI_ID": id, "Provider": {"local": [name]}}]}`.
/// An empty `local` list unbinds.
fn parse_providers(body: &Value) -> R<Vec<(String, Option<String>)>> {
    let Some(list) = body.get("providers") else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or_else(|| ApiError::bad("providers must be an array"))?;
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let place = format!("providers[{i}]");
        let obj = p.as_object().ok_or_else(|| ApiError::bad(format!("{place} must be an object")))?;
        let id = obj
            .get("OCCI_ID")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad(format!("{place}: member \"OCCI_ID\" (a category id) is missing")))?;
        split_id(id).map_err(|e| ApiError::from(e.at(&place)))?;
        let provider = obj
            .get("Provider")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::bad(format!("{place}: member \"Provider\" (an object) is missing")))?;
        let mut local = None;
        for (k, v) in provider {
            match k.as_str() {
                "local" => {
                    let names =
                        v.as_array().ok_or_else(|| ApiError::bad(format!("{place}: local must be an array")))?;
                    if names.len() > 1 {
                        return Err(ApiError::bad(format!(
                            "{place}: a category has one provider; local lists {}",
                            names.len()
                        )));
                    }
                    local = Some(match names.first() {
                        None => None,
                        Some(Value::String(n)) => Some(n.clone()),
                        Some(other) => {
                            return Err(ApiError::bad(format!("{place}: provider {other} is not a name")));
                        }
                    });
                }
                "remote" => {
                    return Err(ApiError::bad(format!(
                        "{place}: remote providers are not supported (pyOCNI never used them)"
                    )));
                }
                other => return Err(ApiError::bad(format!("{place}: unknown Provider member {other:?}"))),
            }
        }
        let local = local.ok_or_else(|| ApiError::bad(format!("{place}: Provider needs \"local\"")))?;
        out.push((id.to_string(), local));
    }
    Ok(out)
}
