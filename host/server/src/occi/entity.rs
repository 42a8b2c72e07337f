//! Single entities: read, create or replace (PUT), update (POST), delete (with the links at
//! them), actions; and the pieces collections share with them (creating an entity with its
//! inline links, acting on one, deleting one).

use std::collections::HashSet;
use std::ops::ControlFlow;

use hyper::{Method, StatusCode};
use ocni_model::entity::{ATTR_TARGET, ATTR_TARGET_KIND, EntityInput, location_path};
use ocni_model::provider::{self, ATTR_DEVICE_ID, ATTR_INTERFACE, ATTR_MAC};
use ocni_model::text;
use ocni_model::{Applicable, Catalog, Category, Class, Dialect, Entity, parse_category_ref};
use ocni_store::{Reads, Source, Step};
use serde_json::{Map, Value, json};

use super::{Purpose, body_as, links_from, need, not_found, prefix, render_one};
use crate::error::ApiError;
use crate::negotiate::Format;
use crate::reply::{Framed, R, Reply, Request, accepted, created_reply, json_reply, text_reply};
use crate::route::Allowed;
use crate::sandbox::{Stage, Write, kind_has_handler};
use crate::services::Services;

/// GET (or HEAD) of one entity, framed, served from the answers framed since the last commit
/// when it is there (see `Services::rendered`).
pub(crate) fn get(s: &Services, tenant: &str, path: &str, req: &Request) -> R<Framed> {
    refuse_body(req)?;
    // First: a commit after this may or may not be in what is rendered next, but the answer
    // is kept under this count, which that commit makes stale.
    let commits = s.store.commits();
    let key = [tenant, path, req.format.content_type(), &req.base_url].join("\0");
    if let Some(framed) = s.rendered(&key, commits) {
        return Ok(framed);
    }
    let (reply, current) = read(s, tenant, path, req)?;
    let framed = reply.framed(req.format);
    if current {
        s.keep_rendered(key, commits, &framed);
    }
    Ok(framed)
}

/// One entity rendered with the tenant's cached catalog, and whether that catalog is the read
/// snapshot's own: the cached one may be older or newer (a catalog write commits, then drops
/// the cached view), and only an answer rendered with the snapshot's own may be kept.
fn read(s: &Services, tenant: &str, path: &str, req: &Request) -> R<(Reply, bool)> {
    let view = s.view(tenant)?;
    let r = s.store.read()?;
    let e = r.entity(tenant, path)?.ok_or_else(|| not_found(path))?;
    let reply = render_entity_reply(&r, tenant, &view.catalog, &e, req.format, &req.base_url)?;
    Ok((reply, r.catalog_generation(tenant)? == view.generation))
}

fn refuse_body(req: &Request) -> R<()> {
    match req.body {
        Some(_) => Err(ApiError::bad("GET on an entity takes no body")),
        None => Ok(()),
    }
}

pub(crate) fn entity(s: &Services, tenant: &str, catalog: &Catalog, path: &str, req: &Request) -> R<Reply> {
    match (req.method.clone(), &req.route.action) {
        (Method::POST, Some(term)) => {
            let (given, params) = parse_action_body(body_as(req, Purpose::Action, catalog)?.as_deref(), term)?;
            // The answer is rendered inside the write: it shows the entity as committed.
            let reply = s.write(tenant, |w, catalog| {
                let e = w.entity(tenant, path)?.ok_or_else(|| not_found(path))?;
                let next = act(s, w, tenant, catalog, &e, term, given.as_deref(), &params)?;
                w.put_entity(tenant, &next)?;
                let reply = match req.format {
                    Format::Json(Dialect::Occi12) => {
                        let v = render_one(&**w, tenant, catalog, &next, Dialect::Occi12, &req.base_url)?;
                        json_reply(StatusCode::OK, &v, req.format)
                    }
                    _ => Reply::new(StatusCode::OK),
                };
                // Work continues as jobs: 202 with the entity's location.
                Ok(accepted(reply, &req.base_url, Some(path), w.jobs()))
            })?;
            tracing::info!(tenant, location = path, action = term, "action");
            Ok(reply)
        }
        (_, Some(_)) => Err(ApiError::bad("?action= is only for POST")),
        // `App::serve` sends these to `get` (framed, cached); the same answer, uncached.
        (Method::GET | Method::HEAD, None) => refuse_body(req).and_then(|()| Ok(read(s, tenant, path, req)?.0)),
        (Method::PUT, None) => {
            let input = single_entity(&*need(req, Purpose::Entity, catalog)?)?;
            let (created, location, jobs) = s.write(tenant, |w, catalog| match w.entity(tenant, path)? {
                Some(old) => {
                    let base = &req.base_url;
                    update(s, w, tenant, catalog, base, &old, &input, |old, input| catalog.replace_entity(old, input))?;
                    Ok((false, path.to_string(), Vec::new()))
                }
                None => {
                    let last = path.rsplit('/').next().unwrap_or("");
                    let eid = entity_id(Some(last))?;
                    if let Some(id) = &input.id
                        && id != &eid
                    {
                        return Err(ApiError::bad(format!(
                            "id {id:?} does not match the last segment of the URL ({eid:?})"
                        )));
                    }
                    let mut created = Vec::new();
                    create_entity(s, w, tenant, catalog, &req.base_url, &input, path, &eid, &mut created)?;
                    Ok((true, path.to_string(), w.jobs().to_vec()))
                }
            })?;
            tracing::info!(tenant, location = %location, created, jobs = jobs.len(), "entity put");
            Ok(accepted(created_reply(&req.base_url, &[location], req.format), &req.base_url, None, &jobs))
        }
        (Method::POST, None) => {
            let input = single_entity(&*need(req, Purpose::Entity, catalog)?)?;
            s.write(tenant, |w, catalog| {
                let old = w.entity(tenant, path)?.ok_or_else(|| not_found(path))?;
                update(s, w, tenant, catalog, &req.base_url, &old, &input, |old, input| {
                    catalog.update_entity(old, input)
                })
            })?;
            tracing::info!(tenant, location = path, "entity updated");
            Ok(created_reply(&req.base_url, &[path.to_string()], req.format))
        }
        (Method::DELETE, None) => {
            let removed = s.write(tenant, |w, catalog| {
                let removed = delete_entity(s, w, tenant, catalog, path)?;
                if removed.is_empty() {
                    return Err(not_found(path));
                }
                Ok(removed)
            })?;
            tracing::info!(tenant, location = path, removed = removed.len(), "entity deleted");
            Ok(Reply::new(StatusCode::OK))
        }
        (m, None) => Err(ApiError::method(&m, Allowed::ENTITY)),
    }
}

/// Writes what an update (POST) or a replacement (PUT) of `old` makes of it (`next_of`): the
/// links a client sent back must be the current ones, the id stays, link ends are checked,
/// provider-assigned values the result lacks are filled, then the handlers have their say.
#[allow(clippy::too_many_arguments)]
fn update(
    s: &Services,
    w: &mut Write,
    tenant: &str,
    catalog: &Catalog,
    base: &str,
    old: &Entity,
    input: &EntityInput,
    next_of: impl FnOnce(&Entity, &EntityInput) -> ocni_model::Result<Entity>,
) -> R<()> {
    links_left_intact(w, tenant, catalog, base, old, input)?;
    if let Some(id) = &input.id
        && id != old.id()
    {
        return Err(ApiError::bad(format!("id is immutable: the entity's id is {:?}", old.id())));
    }
    let mut next = next_of(old, input)?;
    check_link_ends(w, tenant, catalog, base, &mut next)?;
    assign_provider_attributes(s, w, tenant, catalog, &mut next)?;
    s.run_handlers(w, tenant, catalog, Stage::Update { old }, &mut next)?;
    Ok(w.put_entity(tenant, &next)?)
}

/// Acts on one entity: the action must be one of its kind's or mixins' (else 400), apply in the
/// entity's current state (else 409, naming the state: what GET renders is what may be
/// invoked) and its parameters fit; the built-in state machine moves it unless a handler drives
/// its kind; then its handlers have their say (and the kind's handler says which actions apply
/// next).
///
/// Which actions apply: with no handler on the kind, the built-in state machines; with one,
/// what it answered when the entity was last written (`Entity::inapplicable`). An entity of a
/// handler-driven kind last written before the handler was bound has no answer yet: its
/// handler decides in `on-action`, as it did before it could say.
#[allow(clippy::too_many_arguments)]
pub(crate) fn act(
    s: &Services,
    w: &mut Write,
    tenant: &str,
    catalog: &Catalog,
    e: &Entity,
    term: &str,
    given: Option<&str>,
    params: &Map<String, Value>,
) -> R<Entity> {
    let action = catalog.resolve_action(e, term)?;
    check_given_action(given, &action)?;
    let builtin = !kind_has_handler(&s.handler_index(w, tenant)?.bindings, &e.kind);
    match (builtin, e.inapplicable.as_deref()) {
        // The built-in machine decides, not what a handler since unbound said.
        (true, _) => catalog.check_applicable(e, &action, Applicable::Builtin)?,
        (false, Some(excluded)) => catalog.check_applicable(e, &action, Applicable::Excluding(excluded))?,
        // A handler that has not answered for this entity yet decides in its `on-action`.
        (false, None) => {}
    }
    let (mut next, params) = catalog.apply_action(e, &action, params, builtin)?;
    s.run_handlers(w, tenant, catalog, Stage::Action { action: action.id(), params: &params }, &mut next)?;
    Ok(next)
}

/// Deletes an entity and the links at it, once the handlers of each agreed. Returns the
/// locations removed (none when nothing was there).
pub(crate) fn delete_entity(
    s: &Services,
    w: &mut Write,
    tenant: &str,
    catalog: &Catalog,
    location: &str,
) -> R<Vec<String>> {
    let Some(mut e) = w.entity(tenant, location)? else { return Ok(Vec::new()) };
    for mut link in w.links_at(tenant, location)? {
        s.run_handlers(w, tenant, catalog, Stage::Delete, &mut link)?;
    }
    s.run_handlers(w, tenant, catalog, Stage::Delete, &mut e)?;
    Ok(w.delete_entity(tenant, location)?)
}

/// Writes a changed set of mixins, through the handlers as an update.
pub(crate) fn put_mixins(
    s: &Services,
    w: &mut Write,
    tenant: &str,
    catalog: &Catalog,
    e: &Entity,
    mixins: Vec<String>,
) -> R<()> {
    let mut next = catalog.set_mixins(e, mixins)?;
    s.run_handlers(w, tenant, catalog, Stage::Update { old: e }, &mut next)?;
    Ok(w.put_entity(tenant, &next)?)
}

fn render_entity_reply(
    r: &impl Reads,
    tenant: &str,
    catalog: &Catalog,
    e: &Entity,
    format: Format,
    base: &str,
) -> R<Reply> {
    match format {
        Format::Json(dialect) => {
            let v = render_one(r, tenant, catalog, e, dialect, base)?;
            let v = match dialect {
                Dialect::Occi12 => v,
                Dialect::Pyocni => {
                    if catalog.is_link_kind(&e.kind) {
                        json!({ "links": [v] })
                    } else {
                        json!({ "resources": [v] })
                    }
                }
            };
            Ok(json_reply(StatusCode::OK, &v, format))
        }
        Format::TextPlain | Format::TextOcci => {
            Ok(text_reply(StatusCode::OK, text::entity_lines(e, catalog, &links_from(r, tenant, e)?, base), format))
        }
        // GFD.185 3.6.6 / GFD.229 8: text/uri-list for anything but a listing is a Bad Request.
        Format::UriList => Err(ApiError::bad(
            "text/uri-list renders collections only; ask for application/occi+json, text/plain or text/occi",
        )),
    }
}

/// Entity ids become the last segment of a URL: keep them to unreserved URL characters.
pub(crate) fn entity_id(given: Option<&str>) -> R<String> {
    match given {
        // Time-ordered (RFC 9562 version 7): new entities' keys follow each other in the store,
        // so a batch of creates dirties a few pages instead of one per entity.
        None | Some("") => Ok(uuid::Uuid::now_v7().to_string()),
        Some(id) => {
            let id = id.strip_prefix("urn:uuid:").unwrap_or(id);
            let ok = id.len() <= 200
                && id != "."
                && id != ".."
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "-._~:@!$&'()*+,;=".contains(c));
            if ok {
                Ok(id.to_string())
            } else {
                Err(ApiError::bad(format!(
                    "id {id:?} cannot be part of a URL: use letters, digits and -._~:@!$&'()*+,;= (at most 200)"
                )))
            }
        }
    }
}

/// Creates one entity (and its inline links) after checking nothing is at its location.
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_entity(
    s: &Services,
    w: &mut Write,
    tenant: &str,
    catalog: &Catalog,
    base: &str,
    input: &EntityInput,
    location: &str,
    id: &str,
    created: &mut Vec<String>,
) -> R<()> {
    if w.entity(tenant, location)?.is_some() {
        return Err(ApiError::conflict(format!("an entity already exists at {location:?}")));
    }
    let mut e = catalog.create_entity(input, location, id)?;
    check_link_ends(w, tenant, catalog, base, &mut e)?;
    assign_provider_attributes(s, w, tenant, catalog, &mut e)?;
    s.tenancy.check_entity_limit(w, tenant)?;
    s.run_handlers(w, tenant, catalog, Stage::Create, &mut e)?;
    w.put_entity(tenant, &e)?;
    created.push(location.to_string());
    for (j, link) in input.links.iter().enumerate() {
        let place = format!("links[{j}]");
        if catalog.is_link_kind(&e.kind) {
            return Err(ApiError::bad(format!("{place}: only resources carry inline links")));
        }
        if !link.links.is_empty() {
            return Err(ApiError::bad(format!("{place}: a link cannot carry links")));
        }
        let kind_id =
            link.kind.as_deref().ok_or_else(|| ApiError::bad(format!("{place}: member \"kind\" is missing")))?;
        let kind = catalog
            .get(kind_id)
            .filter(|k| k.class == Class::Kind && catalog.is_link_kind(kind_id))
            .ok_or_else(|| ApiError::bad(format!("{place}: {kind_id:?} is not a link kind")))?;
        let mut link = link.clone();
        match &link.source {
            Some(s) if location_path(&s.location) != location => {
                return Err(ApiError::bad(format!(
                    "{place}: an inline link's source is the resource itself ({location:?}), not {:?}",
                    s.location
                )));
            }
            _ => {
                link.source =
                    Some(ocni_model::entity::LinkEnd { location: location.to_string(), kind: Some(e.kind.clone()) })
            }
        }
        let lid = entity_id(link.id.as_deref())?;
        let lloc = format!("{}{lid}", kind.location.as_deref().unwrap_or("/"));
        // The answer lists the resources created, not their inline links (GFD.185 3.4.5).
        create_entity(s, w, tenant, catalog, base, &link, &lloc, &lid, &mut Vec::new())
            .map_err(|e| prefix(e, &place))?;
    }
    Ok(())
}

/// A link's source must be a resource of this tenant; a local target must exist (its kind is
/// recorded); a target outside the server (absolute URL) is taken as given. A target naming
/// this server (`base`, the `--base-url` or `http://` + `Host` of the request) is local: it is
/// stored as its path, so it must exist and it goes with its resource.
fn check_link_ends(w: &Step, tenant: &str, catalog: &Catalog, base: &str, e: &mut Entity) -> R<()> {
    if !catalog.is_link_kind(&e.kind) {
        return Ok(());
    }
    if let Some(path) = e.target().and_then(|t| own_path(base, t)) {
        e.attributes.insert(ATTR_TARGET.into(), Value::String(path.to_string()));
    }
    let source = e.source().unwrap_or_default().to_string();
    match w.entity(tenant, &source)? {
        Some(s) if !catalog.is_link_kind(&s.kind) => {}
        Some(_) => return Err(ApiError::bad(format!("source {source:?} is a link; a link's source is a resource"))),
        None => return Err(ApiError::not_found(format!("source {source:?} does not exist"))),
    }
    let target = e.target().unwrap_or_default().to_string();
    if target.starts_with('/') {
        let t = w
            .entity(tenant, &target)?
            .ok_or_else(|| ApiError::not_found(format!("target {target:?} does not exist")))?;
        if catalog.is_link_kind(&t.kind) {
            return Err(ApiError::bad(format!("target {target:?} is a link; a link's target is a resource")));
        }
        e.attributes.insert(ATTR_TARGET_KIND.into(), Value::String(t.kind));
    } else if !target.contains("://") {
        return Err(ApiError::bad(format!(
            "target {target:?} must be a path on this server or an absolute URL ({ATTR_TARGET})"
        )));
    }
    Ok(())
}

/// The path of `url` when it is a URL of this server (`base` followed by a path; scheme and
/// host compared without case).
fn own_path<'a>(base: &str, url: &'a str) -> Option<&'a str> {
    let head = url.get(..base.len())?;
    let path = &url[base.len()..];
    (head.eq_ignore_ascii_case(base) && path.starts_with('/')).then_some(path)
}

/// Links of a resource are left intact by an update (GFD.223 "Any OCCI Links associated with an
/// existing OCCI Resource MUST be left intact"); they are created, changed and deleted at their
/// own location. An update body may still list them, as a client that read the resource sends
/// back what it read: each listed link must be one of the resource's links as it is (see
/// [`Catalog::check_listed_links`]), and is then left alone; one that would add or change a link
/// is refused rather than dropped silently. Links the body leaves out are left alone too.
fn links_left_intact(
    w: &Step,
    tenant: &str,
    catalog: &Catalog,
    base: &str,
    old: &Entity,
    input: &EntityInput,
) -> R<()> {
    if input.links.is_empty() {
        return Ok(());
    }
    let current = links_from(w, tenant, old)?;
    let local = |t: &str| own_path(base, t).unwrap_or(t).to_string();
    Ok(catalog.check_listed_links(old, &current, &input.links, &local)?)
}

/// Fills the provider-assigned attributes a client left out of a link (see
/// [`ocni_model::provider`]): the first free interface name and device id among the links of the
/// same source, and a random MAC address no committed network interface of the tenant has.
/// Names are read in the step (the snapshot plus this request's own writes, so two inline links
/// of one create get `eth0` and `eth1`); the reads are recorded, so a concurrent create on the
/// same source that took the same name makes this one conflict and be prepared again. MACs in
/// use are read from a committed snapshot outside the step: recording a scan of every interface
/// would make every concurrent interface create of the tenant conflict with every other, and two
/// concurrent creates drawing the same 46 random bits is not a case worth that price. A value the
/// client gave is kept (it was validated like any other).
fn assign_provider_attributes(s: &Services, w: &Step, tenant: &str, catalog: &Catalog, e: &mut Entity) -> R<()> {
    if !catalog.is_link_kind(&e.kind) {
        return Ok(());
    }
    let defs = catalog.attribute_set(&e.kind, &e.mixins);
    let missing = |e: &Entity, name: &str| defs.contains_key(name) && !e.attributes.contains_key(name);
    if missing(e, ATTR_INTERFACE) || missing(e, ATTR_DEVICE_ID) {
        let source = e.source().unwrap_or_default().to_string();
        let siblings: Vec<Entity> = w
            .links_at(tenant, &source)?
            .into_iter()
            .filter(|l| l.source() == Some(source.as_str()) && l.location != e.location)
            .collect();
        let used = |name: &str| siblings.iter().filter_map(move |l| l.attr_str(name)).collect::<Vec<_>>();
        if missing(e, ATTR_INTERFACE) {
            let name = provider::next_interface(used(ATTR_INTERFACE));
            e.attributes.insert(ATTR_INTERFACE.to_string(), Value::String(name));
        }
        if missing(e, ATTR_DEVICE_ID) {
            let id = provider::next_device_id(used(ATTR_DEVICE_ID));
            e.attributes.insert(ATTR_DEVICE_ID.to_string(), Value::String(id));
        }
    }
    if missing(e, ATTR_MAC) {
        let mut used = HashSet::new();
        let committed = s.store.read()?;
        // Every kind whose entities carry a MAC: networkinterface and the tenant's sub-kinds.
        for kind in catalog.iter().filter(|c| c.class == Class::Kind) {
            if !catalog.attribute_set(&kind.id(), &[]).contains_key(ATTR_MAC) {
                continue;
            }
            committed.each_entity(tenant, Source::Kind(&kind.id()), &mut |other| {
                if let Some(mac) = other.attr_str(ATTR_MAC) {
                    used.insert(provider::canonical_mac(mac));
                }
                ControlFlow::Continue(())
            })?;
        }
        let mac = loop {
            let mut bytes = [0u8; 6];
            getrandom::fill(&mut bytes).map_err(|err| ApiError::internal("no randomness for a MAC address", err))?;
            let mac = provider::mac_from_bytes(bytes);
            if !used.contains(&mac) {
                break mac;
            }
        };
        e.attributes.insert(ATTR_MAC.to_string(), Value::String(mac));
    }
    Ok(())
}

fn single_entity(body: &Value) -> R<EntityInput> {
    let mut list = ocni_model::parse_entity_collection(body)?;
    if list.len() != 1 {
        return Err(ApiError::bad(format!("this request takes exactly one entity, the body has {}", list.len())));
    }
    Ok(list.remove(0))
}
/// An action invocation body, in either dialect, or none: (named action id, parameters).
pub(crate) fn parse_action_body(body: Option<&Value>, term: &str) -> R<(Option<String>, Map<String, Value>)> {
    let Some(body) = body else { return Ok((None, Map::new())) };
    let obj = body.as_object().ok_or_else(|| ApiError::bad("an action invocation must be a JSON object"))?;
    let mut named = None;
    let mut params = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            // GFD.226: {"action": "scheme#term", "attributes": {...}}
            "action" => {
                named =
                    Some(v.as_str().ok_or_else(|| ApiError::bad("member \"action\" must be an action id"))?.to_string())
            }
            // pyOCNI: {"actions": [{"term": ..., "scheme": ...}], "attributes": {...}}
            "actions" => {
                let list = v.as_array().ok_or_else(|| ApiError::bad("member \"actions\" must be an array"))?;
                match list.as_slice() {
                    [one] => named = Some(parse_category_ref(one).map_err(|e| ApiError::from(e.at("actions[0]")))?),
                    _ => return Err(ApiError::bad("member \"actions\" must name exactly one action")),
                }
            }
            "attributes" => {
                params =
                    v.as_object().cloned().ok_or_else(|| ApiError::bad("member \"attributes\" must be an object"))?
            }
            other => return Err(ApiError::bad(format!("member {other:?} is not allowed in an action invocation"))),
        }
    }
    if let Some(id) = &named
        && id.rsplit('#').next() != Some(term)
    {
        return Err(ApiError::bad(format!("the body invokes {id:?} but the URL says ?action={term}")));
    }
    Ok((named, params))
}

fn check_given_action(given: Option<&str>, action: &Category) -> R<()> {
    match given {
        Some(id) if id != action.id() => Err(ApiError::bad(format!(
            "the body invokes {id:?}, but the applicable action with this term is {:?}",
            action.id()
        ))),
        _ => Ok(()),
    }
}
