//! Kind and mixin collections and unbound paths: paged listings (with filters), entity
//! creation in a kind's collection, mixin association, collection actions and deletes.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use ocni_model::filter::parse_entity_filters;
use ocni_model::text;
use ocni_model::{Catalog, Category, Class, Dialect};
use ocni_store::{Page, Reads, Source, Step};

use super::cursor;
use super::entity::{act, create_entity, delete_entity, entity_id, parse_action_body, put_mixins};
use super::{Purpose, body_as, need, prefix, render_entities, render_listing};
use crate::error::ApiError;
use crate::negotiate::Format;
use crate::reply::{R, Reply, Request, accepted, created_reply};
use crate::route::Allowed;
use crate::services::Services;

/// How a listing is paged: by offset (`page`, GFD.223) or by cursor (`continue`, or neither).
enum Paging {
    Offset(usize),
    /// After this location (`None`: from the start).
    After(Option<String>),
}

/// The page size a listing asks for (`number`); without it, the server's page size: a listing
/// never returns more than `max_page_size` entities.
fn page_size(s: &Services, req: &Request) -> R<usize> {
    let max = s.config.max_page_size;
    let number = req.route.number.unwrap_or(max as u64);
    if number > max as u64 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("number={number} is above this server's page size limit of {max}"),
        ));
    }
    Ok(number as usize)
}

/// Lists one page of `source`, applying a filter body if any. When there is more after the
/// page, the answer carries `Link: <...>; rel="next"`: with `page=N+1` when the client paged
/// by `page`, else with `continue=TOKEN` (and the pyOCNI JSON rendering, an object, has the
/// token as its `continue` member too). Cursor pages cost the page at any depth (a seek to the
/// token's location); an equality filter on an indexed attribute costs what it finds (the
/// attribute index); other filters read entities one at a time until the page is full.
fn list(s: &Services, tenant: &str, catalog: &Catalog, req: &Request, path: &str, source: Source<'_>) -> R<Reply> {
    let limit = page_size(s, req)?;
    let filters = match body_as(req, Purpose::EntityFilter, catalog)? {
        Some(body) => Some(parse_entity_filters(&body)?),
        None => None,
    };
    let filter_text = filters.as_ref().map(|f| format!("{f:?}")).unwrap_or_default();
    let scope = cursor::Scope { tenant, path, filter: &filter_text };
    let key = s.store.cursor_key();
    let paging = match (&req.route.cursor, req.route.page) {
        (Some(token), _) => Paging::After(Some(cursor::decode(key, &scope, token)?)),
        (None, Some(page)) => {
            Paging::Offset(usize::try_from((page - 1).saturating_mul(limit as u64)).unwrap_or(usize::MAX))
        }
        (None, None) => Paging::After(None),
    };
    let (offset, after) = match &paging {
        Paging::Offset(o) => (*o, None),
        Paging::After(a) => (0, a.as_deref()),
    };
    // One more than the page, to know whether there is a next one.
    let probe = limit.saturating_add(1);
    let r = s.store.read()?;
    let (mut reply, last, more) = match filters {
        None => {
            let mut locations = if offset == 0 {
                r.locations_after(tenant, source, after, probe)?
            } else {
                r.locations(tenant, source, Page { offset, limit: probe })?
            };
            let more = locations.len() > limit;
            locations.truncate(limit);
            (render_listing(&r, tenant, catalog, &locations, req)?, locations.last().cloned(), more)
        }
        Some(filters) => {
            let mut hits = match r.find_indexed(tenant, source, &filters, after, offset, probe)? {
                Some(hits) => hits,
                None => {
                    let (mut skipped, mut hits) = (0, Vec::new());
                    r.each_entity_after(tenant, source, after, &mut |e| {
                        if filters.iter().any(|f| f.matches(&e)) {
                            if skipped < offset {
                                skipped += 1;
                            } else {
                                hits.push(e);
                            }
                        }
                        if hits.len() >= probe { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
                    })?;
                    hits
                }
            };
            let more = hits.len() > limit;
            hits.truncate(limit);
            (render_entities(&r, tenant, catalog, &hits, req)?, hits.last().map(|e| e.location.clone()), more)
        }
    };
    if more && let Some(last) = last {
        let base = format!("{}{}", req.base_url, text::location_text(path));
        let url = match paging {
            Paging::Offset(offset) => format!("{base}?page={}&number={limit}", offset / limit + 2),
            Paging::After(_) => {
                let token = cursor::encode(key, &scope, &last);
                if req.format == Format::Json(Dialect::Pyocni) {
                    reply = with_continue(reply, &token);
                }
                format!("{base}?continue={token}&number={limit}")
            }
        };
        reply.headers.push(("Link", format!("<{url}>; rel=\"next\"")));
    }
    Ok(reply)
}

/// Adds the `continue` member to a pyOCNI JSON listing (`{"X-OCCI-Location": [...]}`).
fn with_continue(mut reply: Reply, token: &str) -> Reply {
    if let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice(&reply.body) {
        body.insert("continue".into(), token.into());
        reply.body = serde_json::to_vec(&body).expect("JSON values serialize");
        reply.body.push(b'\n');
    }
    reply
}

pub(crate) fn kind_collection(
    s: &Services,
    tenant: &str,
    catalog: &Catalog,
    kind: &Arc<Category>,
    req: &Request,
) -> R<Reply> {
    let id = kind.id();
    match (req.method.clone(), &req.route.action) {
        (Method::POST, Some(term)) => {
            collection_action(s, tenant, catalog, req, term, |w| Ok(w.by_kind(tenant, &id, Page::ALL)?))
        }
        (_, Some(_)) => Err(ApiError::bad("?action= is only for POST")),
        (Method::GET | Method::HEAD, None) => {
            list(s, tenant, catalog, req, kind.location.as_deref().unwrap_or("/"), Source::Kind(&id))
        }
        (Method::POST, None) => {
            let body = need(req, Purpose::Entity, catalog)?;
            let inputs = ocni_model::parse_entity_collection(&body)?;
            let created = s.write(tenant, |w, catalog| {
                let mut created = Vec::new();
                for (i, input) in inputs.iter().enumerate() {
                    let mut input = input.clone();
                    let place = format!("entity {i}");
                    match &input.kind {
                        Some(k) if k != &id => {
                            return Err(ApiError::bad(format!(
                                "{place}: kind {k:?} does not belong in the collection of {id:?}; POST it to its own kind's location"
                            )));
                        }
                        _ => input.kind = Some(id.clone()),
                    }
                    let eid = entity_id(input.id.as_deref())?;
                    let location = format!("{}{eid}", kind.location.as_deref().unwrap_or("/"));
                    create_entity(s, w, tenant, catalog, &req.base_url, &input, &location, &eid, &mut created)
                        .map_err(|e| prefix(e, &place))?;
                }
                Ok((created, w.jobs().to_vec()))
            })?;
            let (created, jobs) = created;
            tracing::info!(tenant, kind = %id, count = created.len(), jobs = jobs.len(), "entities created");
            // Work continues as jobs: 202 (the `Location` is the first entity created).
            Ok(accepted(created_reply(&req.base_url, &created, req.format), &req.base_url, None, &jobs))
        }
        (Method::DELETE, None) => {
            if req.body.is_some() {
                return Err(ApiError::bad("DELETE on a kind collection deletes all its entities and takes no body"));
            }
            let removed = s.write(tenant, |w, catalog| {
                let mut removed = 0;
                for loc in w.by_kind(tenant, &id, Page::ALL)? {
                    removed += delete_entity(s, w, tenant, catalog, &loc)?.len();
                }
                Ok(removed)
            })?;
            tracing::info!(tenant, kind = %id, removed, "kind collection deleted");
            Ok(Reply::new(StatusCode::OK))
        }
        (m, None) => Err(ApiError::method(&m, Allowed::KIND_COLLECTION)),
    }
}

pub(crate) fn mixin_collection(
    s: &Services,
    tenant: &str,
    catalog: &Catalog,
    mixin: &Arc<Category>,
    req: &Request,
) -> R<Reply> {
    let id = mixin.id();
    match (req.method.clone(), &req.route.action) {
        (Method::POST, Some(term)) => {
            collection_action(s, tenant, catalog, req, term, |w| Ok(w.by_mixin(tenant, &id, Page::ALL)?))
        }
        (_, Some(_)) => Err(ApiError::bad("?action= is only for POST")),
        (Method::GET | Method::HEAD, None) => {
            list(s, tenant, catalog, req, mixin.location.as_deref().unwrap_or("/"), Source::Mixin(&id))
        }
        (method @ (Method::POST | Method::PUT | Method::DELETE), None) => {
            let listed = match body_as(req, Purpose::Locations, catalog)? {
                Some(b) => Some(ocni_model::parse_locations(&b)?),
                None if method == Method::DELETE => None,
                None => {
                    return Err(ApiError::bad("the body must list entity locations: {\"X-OCCI-Location\": [...]}"));
                }
            };
            let changed = s.write(tenant, |w, catalog| {
                let mut changed = 0;
                let members: HashSet<String> = w.by_mixin(tenant, &id, Page::ALL)?.into_iter().collect();
                let listed: Vec<String> = match &listed {
                    Some(l) => l.clone(),
                    None => members.iter().cloned().collect(),
                };
                let mut seen = HashSet::new();
                for loc in &listed {
                    if !seen.insert(loc.clone()) {
                        continue;
                    }
                    let e = w
                        .entity(tenant, loc)?
                        .ok_or_else(|| ApiError::not_found(format!("entity {loc:?} does not exist")))?;
                    let mut mixins = e.mixins.clone();
                    if method == Method::DELETE {
                        mixins.retain(|m| m != &id);
                    } else if !mixins.contains(&id) {
                        mixins.push(id.clone());
                    }
                    if mixins != e.mixins {
                        put_mixins(s, w, tenant, catalog, &e, mixins).map_err(|e| prefix(e, loc))?;
                        changed += 1;
                    }
                }
                if method == Method::PUT {
                    for loc in members.iter().filter(|m| !seen.contains(*m)) {
                        if let Some(e) = w.entity(tenant, loc)? {
                            let mixins = e.mixins.iter().filter(|m| **m != id).cloned().collect();
                            put_mixins(s, w, tenant, catalog, &e, mixins)?;
                            changed += 1;
                        }
                    }
                }
                // GFD.223 9.3.2: the answer renders the collection as it now is (rendered
                // inside the write, which sees its own changes).
                let members = w.by_mixin(tenant, &id, Page::ALL)?;
                Ok((changed, render_listing(&**w, tenant, catalog, &members, req)?))
            })?;
            let (changed, reply) = changed;
            tracing::info!(tenant, mixin = %id, %method, changed, "mixin membership changed");
            Ok(reply)
        }
        (m, None) => Err(ApiError::method(&m, Allowed::MIXIN_COLLECTION)),
    }
}

pub(crate) fn unbound_path(s: &Services, tenant: &str, catalog: &Catalog, path: &str, req: &Request) -> R<Reply> {
    if req.route.action.is_some() {
        return Err(ApiError::not_found(format!(
            "{path:?} is not a kind or mixin collection: there is nothing to act on"
        )));
    }
    match *req.method {
        Method::GET | Method::HEAD => list(s, tenant, catalog, req, path, Source::Prefix(path)),
        Method::DELETE => {
            if req.body.is_some() {
                return Err(ApiError::bad("DELETE on a path deletes every entity below it and takes no body"));
            }
            let removed = s.write(tenant, |w, catalog| {
                let mut removed = 0;
                for loc in w.by_prefix(tenant, path, Page::ALL)? {
                    removed += delete_entity(s, w, tenant, catalog, &loc)?.len();
                }
                Ok(removed)
            })?;
            tracing::info!(tenant, path, removed, "path deleted");
            Ok(Reply::new(StatusCode::OK))
        }
        // GFD.185 3.4.4: POST on the service root creates an entity of the kind its body names.
        Method::POST if path == "/" => {
            let body = need(req, Purpose::Entity, catalog)?;
            let inputs = ocni_model::parse_entity_collection(&body)?;
            let kind = inputs
                .first()
                .and_then(|i| i.kind.clone())
                .ok_or_else(|| ApiError::bad("POST / needs the kind of the entity to create (a kind Category)"))?;
            let cat = catalog
                .get(&kind)
                .filter(|c| c.class == Class::Kind && c.location.is_some())
                .cloned()
                .ok_or_else(|| ApiError::bad(format!("{kind:?} is not a kind with a location")))?;
            kind_collection(s, tenant, catalog, &cat, req)
        }
        _ => Err(ApiError::method(req.method, Allowed::unbound(path))),
    }
}

/// Acts on every member of a collection, all or nothing (GFD.223 9.3.3 says nothing of members
/// the action does not apply to): writes are atomic, so a member that refuses (an action
/// inapplicable in its state is a 409 naming it and its state, the first such member in
/// location order) fails the whole request and no member changes.
fn collection_action(
    s: &Services,
    tenant: &str,
    catalog: &Catalog,
    req: &Request,
    term: &str,
    members: impl Fn(&Step) -> R<Vec<String>>,
) -> R<Reply> {
    let (given, params) = parse_action_body(body_as(req, Purpose::Action, catalog)?.as_deref(), term)?;
    let count = s.write(tenant, |w, catalog| {
        // Read the members inside the transaction, so the action covers exactly them.
        let locations = members(w)?;
        for loc in &locations {
            let Some(e) = w.entity(tenant, loc)? else { continue };
            let next = act(s, w, tenant, catalog, &e, term, given.as_deref(), &params).map_err(|e| prefix(e, loc))?;
            w.put_entity(tenant, &next)?;
        }
        Ok((locations.len(), w.jobs().to_vec()))
    })?;
    let (count, jobs) = count;
    tracing::info!(tenant, action = term, count, jobs = jobs.len(), "collection action");
    Ok(accepted(Reply::new(StatusCode::OK), &req.base_url, None, &jobs))
}
