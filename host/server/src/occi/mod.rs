//! The OCCI operations, one file per kind of target: the query interface (`query.rs`), kind
//! and mixin collections and unbound paths (`collection.rs`), single entities and actions
//! (`entity.rs`), the handler upload API (`handlers.rs`) and the admin API (`admin.rs`). Each
//! takes the [`Services`](crate::services::Services) and a parsed request, and answers a
//! [`Reply`]; this file holds what they share (reading bodies, rendering entities).

pub(crate) mod admin;
pub(crate) mod collection;
pub(crate) mod cursor;
pub(crate) mod entity;
pub(crate) mod handlers;
pub(crate) mod jobs;
pub(crate) mod query;

use std::borrow::Cow;

use hyper::StatusCode;
use ocni_model::render::{self, render_entity};
use ocni_model::{Catalog, Dialect, Entity};
use ocni_store::Reads;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::negotiate::Format;
use crate::reply::{Body, R, Reply, Request, absolute, json_reply, locations_reply};

/// What a body is read as: the text renderings are turned into the JSON shape of the same
/// operation, so every operation has one implementation.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Purpose {
    Categories,
    Entity,
    Action,
    Locations,
    EntityFilter,
}

pub(crate) fn body_as<'a>(req: &'a Request, purpose: Purpose, catalog: &Catalog) -> R<Option<Cow<'a, Value>>> {
    Ok(match &req.body {
        None => None,
        // JSON bodies are used as they are; only the text renderings are turned into JSON.
        Some(Body::Json(v)) => Some(Cow::Borrowed(v)),
        Some(Body::Text(t)) => Some(Cow::Owned(match purpose {
            Purpose::Categories => t.to_categories_json(catalog)?,
            Purpose::Entity => t.to_entity_json(catalog)?,
            Purpose::Action => t.to_action_json(catalog)?,
            Purpose::Locations => json!({ "X-OCCI-Location": t.locations }),
            Purpose::EntityFilter => t.to_entity_filter_json(catalog)?,
        })),
        Some(Body::UriList(list)) if purpose == Purpose::Locations => {
            Some(Cow::Owned(json!({ "X-OCCI-Location": list })))
        }
        Some(Body::Wasm { .. }) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "application/wasm bodies are handler uploads (PUT /-/handlers/{name})",
            ));
        }
        Some(Body::UriList(_)) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a text/uri-list body only lists entity locations (mixin association); use application/occi+json, text/plain or text/occi",
            ));
        }
    })
}

pub(crate) fn need<'a>(req: &'a Request, purpose: Purpose, catalog: &Catalog) -> R<Cow<'a, Value>> {
    body_as(req, purpose, catalog)?.ok_or_else(|| ApiError::bad(format!("{} here needs a request body", req.method)))
}
/// Renders a listing: full entities in OCCI 1.2 JSON (GFD.223 entity collection), locations in
/// the other renderings.
pub(crate) fn render_listing(
    r: &impl Reads,
    tenant: &str,
    catalog: &Catalog,
    locations: &[String],
    req: &Request,
) -> R<Reply> {
    if req.format != Format::Json(Dialect::Occi12) {
        return Ok(locations_reply(StatusCode::OK, absolute(&req.base_url, locations), req.format, "X-OCCI-Location"));
    }
    let mut entities = Vec::with_capacity(locations.len());
    for loc in locations {
        entities.extend(r.entity(tenant, loc)?);
    }
    render_entities(r, tenant, catalog, &entities, req)
}

/// [`render_listing`] of entities already read.
pub(crate) fn render_entities(
    r: &impl Reads,
    tenant: &str,
    catalog: &Catalog,
    entities: &[Entity],
    req: &Request,
) -> R<Reply> {
    if req.format != Format::Json(Dialect::Occi12) {
        let locations: Vec<String> = entities.iter().map(|e| e.location.clone()).collect();
        return Ok(locations_reply(StatusCode::OK, absolute(&req.base_url, &locations), req.format, "X-OCCI-Location"));
    }
    let (mut resources, mut links) = (Vec::new(), Vec::new());
    for e in entities {
        let rendered = render_one(r, tenant, catalog, e, Dialect::Occi12, &req.base_url)?;
        if catalog.is_link_kind(&e.kind) { links.push(rendered) } else { resources.push(rendered) }
    }
    Ok(json_reply(StatusCode::OK, &render::entity_collection(resources, links), req.format))
}

pub(crate) fn prefix(mut e: ApiError, place: &str) -> ApiError {
    e.message = format!("{place}: {}", e.message);
    e
}

pub(crate) fn not_found(path: &str) -> ApiError {
    ApiError::not_found(format!("no entity at {path:?}"))
}

pub(crate) fn no_action(req: &Request) -> R<()> {
    if req.route.action.is_some() {
        return Err(ApiError::bad("?action= applies to entities and collections, not to the query interface"));
    }
    Ok(())
}

pub(crate) fn kind_at(r: &impl Reads, tenant: &str, loc: &str) -> Option<String> {
    if !loc.starts_with('/') {
        return None;
    }
    r.entity(tenant, loc).ok().flatten().map(|e| e.kind)
}

/// The links whose source is `e` (rendered with it).
pub(crate) fn links_from(r: &impl Reads, tenant: &str, e: &Entity) -> R<Vec<Entity>> {
    Ok(r.links_at(tenant, &e.location)?.into_iter().filter(|l| l.source() == Some(e.location.as_str())).collect())
}

/// One entity in JSON, with its links; link ends absolute under `base` (the request's
/// `Request::base_url`).
pub(crate) fn render_one(
    r: &impl Reads,
    tenant: &str,
    catalog: &Catalog,
    e: &Entity,
    dialect: Dialect,
    base: &str,
) -> R<Value> {
    let links = links_from(r, tenant, e)?;
    // A link's source is `e` itself: no need to read it again for its kind.
    let kind_of = |loc: &str| if loc == e.location { Some(e.kind.clone()) } else { kind_at(r, tenant, loc) };
    Ok(render_entity(e, catalog, &links, dialect, base, &kind_of))
}
