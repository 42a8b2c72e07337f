//! Kind and mixin collections and unbound paths: paged listings (with filters), entity
//! creation in a kind's collection, mixin association, collection actions and deletes.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use ocni_model::filter::parse_entity_filters;
use ocni_model::text;
use ocni_model::{Catalog, Category, Class};
use ocni_store::{Page, Reads, Source, Step};

use super::entity::{act, create_entity, delete_entity, entity_id, parse_action_body, put_mixins};
use super::{Purpose, body_as, need, prefix, render_entities, render_listing};
use crate::error::ApiError;
use crate::reply::{R, Reply, Request, created_reply};
use crate::route::Allowed;
use crate::services::Services;

/// The page a listing asks for (`page`, `number`); without them, the first page of the
/// server's page size: a listing never returns more than `max_page_size` entities.
fn page(s: &Services, req: &Request) -> R<Page> {
    let max = s.config.max_page_size;
    let number = req.route.number.unwrap_or(max as u64);
    if number > max as u64 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("number={number} is above this server's page size limit of {max}"),
        ));
    }
    let page = req.route.page.unwrap_or(1);
    let offset = (page - 1).saturating_mul(number);
    Ok(Page { offset: usize::try_from(offset).unwrap_or(usize::MAX), limit: number as usize })
}

/// Lists the locations of one page of `source`, applying a filter body if any. A filtered
/// listing reads entities one at a time and stops once the page is full. When there is more
/// after the page, the answer carries `Link: <...?page=N+1&number=M>; rel="next"`.
fn list(s: &Services, tenant: &str, catalog: &Catalog, req: &Request, path: &str, source: Source<'_>) -> R<Reply> {
    let page = page(s, req)?;
    // One more than the page, to know whether there is a next one.
    let probe = Page { offset: page.offset, limit: page.limit.saturating_add(1) };
    let r = s.store.read()?;
    let (mut reply, more) = match body_as(req, Purpose::EntityFilter, catalog)? {
        None => {
            let mut locations = r.locations(tenant, source, probe)?;
            let more = locations.len() > page.limit;
            locations.truncate(page.limit);
            (render_listing(&r, tenant, catalog, &locations, req)?, more)
        }
        Some(body) => {
            let filters = parse_entity_filters(&body)?;
            let (mut skipped, mut hits) = (0, Vec::new());
            r.each_entity(tenant, source, &mut |e| {
                if filters.iter().any(|f| f.matches(&e)) {
                    if skipped < probe.offset {
                        skipped += 1;
                    } else {
                        hits.push(e);
                    }
                }
                if hits.len() >= probe.limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            })?;
            let more = hits.len() > page.limit;
            hits.truncate(page.limit);
            (render_entities(&r, tenant, catalog, &hits, req)?, more)
        }
    };
    if more && page.limit > 0 {
        let next = page.offset / page.limit + 2;
        let url = format!("{}{}?page={next}&number={}", req.base_url, text::location_text(path), page.limit);
        reply.headers.push(("Link", format!("<{url}>; rel=\"next\"")));
    }
    Ok(reply)
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
                Ok(created)
            })?;
            tracing::info!(tenant, kind = %id, count = created.len(), "entities created");
            Ok(created_reply(&req.base_url, &created, req.format))
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
        Ok(locations.len())
    })?;
    tracing::info!(tenant, action = term, count, "collection action");
    Ok(Reply::new(StatusCode::OK))
}
