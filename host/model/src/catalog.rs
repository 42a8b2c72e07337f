//! The catalog: every category a tenant can use (the built-in ones plus its own), with the rules
//! that tie categories to each other and to entities: reference checks, effective attribute sets,
//! entity validation on create / replace / update, and the built-in action state machines.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::attribute::{AttributeDef, check_value};
use crate::category::{Category, Class, parse_category};
use crate::entity::*;
use crate::error::{ModelError, Result};
use crate::provider::PROVIDER_ASSIGNED;

static BUILTIN: LazyLock<Vec<Category>> = LazyLock::new(|| {
    let mut out = Vec::new();
    for text in [include_str!("builtin/core_infra.json"), include_str!("builtin/templates.json")] {
        out.extend(parse_category_file(text).expect("built-in category files are valid"));
    }
    for c in &mut out {
        c.builtin = true;
    }
    out
});

static BUILTIN_INDEXED: LazyLock<std::collections::BTreeSet<String>> =
    LazyLock::new(|| BUILTIN.iter().flat_map(|c| c.indexed_attributes()).map(str::to_string).collect());

/// The attributes the built-in categories mark indexed (`occi.core.title`, the `occi.*.state`
/// attributes, `occi.compute.hostname`): the store indexes them for every tenant.
pub fn builtin_indexed_attributes() -> &'static std::collections::BTreeSet<String> {
    &BUILTIN_INDEXED
}

/// Reads a category file: `{"kinds": [...], "mixins": [...], "actions": [...]}` in either JSON
/// dialect (a top-level `_notes` member is ignored). Used for the built-ins and for operator
/// template files.
pub fn parse_category_file(text: &str) -> Result<Vec<Category>> {
    let v: Value = serde_json::from_str(text).map_err(|e| ModelError::bad(format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| ModelError::bad("expected a JSON object"))?;
    let mut out = Vec::new();
    for (member, list) in obj {
        let class = match member.as_str() {
            "kinds" => Class::Kind,
            "mixins" => Class::Mixin,
            "actions" => Class::Action,
            "_notes" => continue,
            other => return Err(ModelError::bad(format!("unknown member {other:?}"))),
        };
        let list = list.as_array().ok_or_else(|| ModelError::bad(format!("{member} must be an array")))?;
        for (i, c) in list.iter().enumerate() {
            out.push(parse_category(class, c).map_err(|e| e.at(format!("{member}[{i}]")))?);
        }
    }
    Ok(out)
}

/// The effective attribute definitions of an entity: name -> definition, in definition order.
pub type AttributeSet = IndexMap<String, AttributeDef>;

/// All categories visible to one tenant. Cheap to clone (shared categories).
#[derive(Clone, Debug)]
pub struct Catalog {
    by_id: BTreeMap<String, Arc<Category>>,
    by_location: HashMap<String, String>,
}

impl Catalog {
    /// The built-in Core, Infrastructure and template categories alone.
    pub fn builtin() -> Catalog {
        let mut c = Catalog { by_id: BTreeMap::new(), by_location: HashMap::new() };
        for cat in BUILTIN.iter() {
            c.insert(cat.clone());
        }
        c
    }

    /// The built-ins plus `extra` (operator templates, marked built-in, and the tenant's own
    /// categories as stored). Stored categories were checked when written; this does not fail.
    pub fn with(mut self, extra: impl IntoIterator<Item = Category>) -> Catalog {
        for cat in extra {
            self.insert(cat);
        }
        self
    }

    fn insert(&mut self, cat: Category) {
        let id = cat.id();
        if let Some(loc) = &cat.location {
            self.by_location.insert(loc.clone(), id.clone());
        }
        self.by_id.insert(id, Arc::new(cat));
    }

    fn remove(&mut self, id: &str) -> Option<Arc<Category>> {
        let cat = self.by_id.remove(id)?;
        if let Some(loc) = &cat.location {
            self.by_location.remove(loc);
        }
        Some(cat)
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Category>> {
        self.by_id.get(id)
    }

    /// The kind or mixin bound to this collection path.
    pub fn by_location(&self, path: &str) -> Option<&Arc<Category>> {
        self.by_location.get(path).and_then(|id| self.by_id.get(id))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Category>> {
        self.by_id.values()
    }

    fn expect_class(&self, id: &str, class: Class, role: &str) -> Result<&Arc<Category>> {
        match self.by_id.get(id) {
            Some(c) if c.class == class => Ok(c),
            Some(c) => {
                Err(ModelError::bad(format!("{role} {id:?} is a {}, not a {}", c.class.as_str(), class.as_str())))
            }
            None => Err(ModelError::bad(format!("{role} {id:?} is not a known {}", class.as_str()))),
        }
    }

    /// The kind chain of `kind`, root (entity) first.
    pub fn kind_chain(&self, kind: &str) -> Vec<&Arc<Category>> {
        let mut chain = Vec::new();
        let mut next = Some(kind);
        let mut seen = HashSet::new();
        while let Some(id) = next {
            let Some(cat) = self.by_id.get(id) else { break };
            if !seen.insert(id) {
                break;
            }
            chain.push(cat);
            next = cat.parent.as_deref();
        }
        chain.reverse();
        chain
    }

    pub fn is_link_kind(&self, kind: &str) -> bool {
        self.kind_chain(kind).iter().any(|c| c.id() == LINK_KIND)
    }

    /// A mixin and everything it depends on, dependencies first.
    fn mixin_closure<'a>(&'a self, mixin: &str, out: &mut Vec<&'a Arc<Category>>, seen: &mut HashSet<String>) {
        if !seen.insert(mixin.to_string()) {
            return;
        }
        if let Some(m) = self.by_id.get(mixin) {
            for d in &m.depends {
                self.mixin_closure(d, out, seen);
            }
            out.push(m);
        }
    }

    fn entity_categories(&self, kind: &str, mixins: &[String]) -> Vec<&Arc<Category>> {
        let mut cats = self.kind_chain(kind);
        let mut seen = HashSet::new();
        for m in mixins {
            self.mixin_closure(m, &mut cats, &mut seen);
        }
        cats
    }

    /// The attribute definitions that apply to an entity: its kind chain (root first), then each
    /// mixin after the mixins it depends on. A later definition of the same name overrides only
    /// the members it states.
    pub fn attribute_set(&self, kind: &str, mixins: &[String]) -> AttributeSet {
        let mut set = AttributeSet::new();
        for cat in self.entity_categories(kind, mixins) {
            for def in &cat.attributes {
                match set.get_mut(&def.name) {
                    Some(existing) => existing.overlay(def),
                    None => {
                        set.insert(def.name.clone(), def.clone());
                    }
                }
            }
        }
        set
    }

    /// The actions applicable to an entity of this kind with these mixins.
    pub fn actions_for(&self, kind: &str, mixins: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for cat in self.entity_categories(kind, mixins) {
            for a in &cat.actions {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    /// The actions of a kind (its kind chain's, root first), without its mixins': those a
    /// handler driving the kind is asked about.
    pub fn kind_actions(&self, kind: &str) -> Vec<String> {
        self.actions_for(kind, &[])
    }

    /// The actions that apply to `e` in its current state (GFD.185 3.5.3: only those SHOULD be
    /// rendered), in the order of [`Catalog::actions_for`], by [`Applicable::of`] the entity.
    pub fn applicable_actions(&self, e: &Entity) -> Vec<String> {
        self.applicable_by(e, Applicable::of(e))
    }

    fn applicable_by(&self, e: &Entity, rule: Applicable) -> Vec<String> {
        let mut actions = self.actions_for(&e.kind, &e.mixins);
        actions.retain(|a| rule.applies(e, a));
        actions
    }

    /// Refuses (409, naming the entity's state) an action that does not apply to `e` in its
    /// current state by `rule`; `action` is one [`Catalog::resolve_action`] found.
    pub fn check_applicable(&self, e: &Entity, action: &Category, rule: Applicable) -> Result<()> {
        if rule.applies(e, &action.id()) {
            return Ok(());
        }
        let state = match self.state_of(e) {
            Some((_, value)) => format!("in state {value:?}"),
            None => "in its current state".to_string(),
        };
        let now = self.applicable_by(e, rule);
        Err(ModelError::conflict(format!(
            "action {} does not apply to {} {state}; applicable now: {}",
            action.term,
            e.location,
            if now.is_empty() { "none".to_string() } else { now.join(", ") }
        )))
    }

    /// The entity's state: the first attribute named `*.state` that its kind chain defines
    /// (the most specific kind first) and the entity has as a string, e.g.
    /// (`occi.compute.state`, `active`).
    pub fn state_of<'e>(&self, e: &'e Entity) -> Option<(&'e str, &'e str)> {
        self.kind_chain(&e.kind).iter().rev().flat_map(|k| k.attributes.iter()).find_map(|def| {
            if !def.name.ends_with(".state") {
                return None;
            }
            let (name, value) = e.attributes.get_key_value(&def.name)?;
            Some((name.as_str(), value.as_str()?))
        })
    }

    // ---------------------------------------------------------------- category management

    /// Checks categories a client adds (all of one request together) and returns the catalog
    /// that results. Duplicates (of each other or of existing ids or locations) are conflicts.
    pub fn add(&self, new: Vec<Category>) -> Result<Catalog> {
        let mut next = self.clone();
        let new: Vec<Category> = new.into_iter().map(default_parent).collect();
        for (i, cat) in new.iter().enumerate() {
            let id = cat.id();
            let place = format!("{}[{i}]", cat.class.plural());
            if next.by_id.contains_key(&id) {
                return Err(ModelError::conflict(format!("category {id:?} already exists")).at(place));
            }
            if let Some(loc) = &cat.location
                && let Some(other) = next.by_location.get(loc)
            {
                return Err(ModelError::conflict(format!("location {loc:?} is already bound to {other:?}")).at(place));
            }
            next.insert(cat.clone());
        }
        for cat in &new {
            next.check_references(cat).map_err(|e| e.at(cat.id()))?;
        }
        Ok(next)
    }

    /// Checks replacements of existing categories: term, scheme, class and location are fixed;
    /// built-ins cannot change. Returns the resulting catalog.
    pub fn replace(&self, new: Vec<Category>) -> Result<Catalog> {
        let mut next = self.clone();
        let mut seen = HashSet::new();
        let new: Vec<Category> = new.into_iter().map(default_parent).collect();
        for cat in &new {
            let id = cat.id();
            if !seen.insert(id.clone()) {
                return Err(ModelError::bad(format!("category {id:?} appears twice in the request")));
            }
            let old =
                self.by_id.get(&id).ok_or_else(|| ModelError::not_found(format!("category {id:?} does not exist")))?;
            if old.builtin {
                return Err(ModelError::forbidden(format!("category {id:?} is built in and cannot be changed")));
            }
            if old.class != cat.class {
                return Err(ModelError::bad(format!(
                    "category {id:?} is a {}, it cannot be updated as a {}",
                    old.class.as_str(),
                    cat.class.as_str()
                )));
            }
            if old.location != cat.location {
                return Err(ModelError::bad(format!(
                    "category {id:?}: location is immutable (it is {:?})",
                    old.location.as_deref().unwrap_or("")
                )));
            }
            next.insert(cat.clone());
        }
        for cat in &new {
            next.check_references(cat).map_err(|e| e.at(cat.id()))?;
        }
        Ok(next)
    }

    /// Checks the removal of categories by id (entities are the store's business) and returns
    /// the resulting catalog.
    pub fn delete(&self, ids: &[String]) -> Result<Catalog> {
        let mut next = self.clone();
        for id in ids {
            let cat =
                self.by_id.get(id).ok_or_else(|| ModelError::not_found(format!("category {id:?} does not exist")))?;
            if cat.builtin {
                return Err(ModelError::forbidden(format!("category {id:?} is built in and cannot be deleted")));
            }
            next.remove(id);
        }
        for cat in next.by_id.values() {
            if let Some(r) = cat.references().into_iter().find(|r| ids.contains(r)) {
                return Err(ModelError::conflict(format!(
                    "category {r:?} is still referenced by {:?}; delete or change that one first",
                    cat.id()
                )));
            }
        }
        Ok(next)
    }

    fn check_references(&self, cat: &Category) -> Result<()> {
        if let Some(p) = &cat.parent {
            self.expect_class(p, Class::Kind, "parent")?;
            // A cycle would make the kind chain endless.
            let mut cur = Some(p.as_str());
            let mut hops = 0;
            while let Some(id) = cur {
                if id == cat.id() || hops > 64 {
                    return Err(ModelError::bad(format!("parent {p:?} leads back to this kind")));
                }
                cur = self.by_id.get(id).and_then(|c| c.parent.as_deref());
                hops += 1;
            }
        }
        for a in &cat.actions {
            self.expect_class(a, Class::Action, "action")?;
        }
        for d in &cat.depends {
            self.expect_class(d, Class::Mixin, "depends")?;
            if d == &cat.id() {
                return Err(ModelError::bad("a mixin cannot depend on itself"));
            }
        }
        for k in &cat.applies {
            self.expect_class(k, Class::Kind, "applies")?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- entities

    /// Checks a kind id for instantiation.
    fn instantiable_kind(&self, kind: &str) -> Result<&Arc<Category>> {
        let k = self.expect_class(kind, Class::Kind, "kind")?;
        if kind == ENTITY_KIND {
            return Err(ModelError::bad("kind \"http://schemas.ogf.org/occi/core#entity\" cannot be instantiated"));
        }
        Ok(k)
    }

    fn check_mixins(&self, kind: &str, mixins: &[String]) -> Result<()> {
        let chain: Vec<String> = self.kind_chain(kind).iter().map(|c| c.id()).collect();
        let mut seen = HashSet::new();
        for m in mixins {
            if !seen.insert(m) {
                return Err(ModelError::bad(format!("mixin {m:?} is listed twice")));
            }
            let mixin = self.expect_class(m, Class::Mixin, "mixin")?;
            if !mixin.applies.is_empty() && !mixin.applies.iter().any(|a| chain.contains(a)) {
                return Err(ModelError::bad(format!(
                    "mixin {m:?} applies to {} only, not to kind {kind:?}",
                    mixin.applies.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Builds a new entity at `location` from a client's description: kind and mixins checked,
    /// attributes normalised and validated, defaults applied, required ones enforced.
    pub fn create_entity(&self, input: &EntityInput, location: &str, id: &str) -> Result<Entity> {
        let kind = input.kind.as_deref().ok_or_else(|| ModelError::bad("member \"kind\" is missing"))?;
        self.instantiable_kind(kind)?;
        let mixins = input.mixins.clone().unwrap_or_default();
        self.check_mixins(kind, &mixins)?;
        let defs = self.attribute_set(kind, &mixins);
        let mut attrs = normalize_attributes(&input.attributes, &defs)?;
        merge_top_level(input, &mut attrs);
        match attrs.get(ATTR_ID) {
            Some(Value::String(given)) if given != id => {
                return Err(ModelError::bad(format!(
                    "attribute occi.core.id is {given:?} but the entity's id is {id:?}"
                )));
            }
            _ => {}
        }
        attrs.insert(ATTR_ID.to_string(), Value::String(id.to_string()));
        self.check_link_ends(kind, &mut attrs)?;
        for (name, def) in &defs {
            if !attrs.contains_key(name)
                && let Some(d) = &def.default
            {
                attrs.insert(name.clone(), d.clone());
            }
        }
        check_attributes(&defs, &attrs)?;
        let missing: Vec<String> =
            defs.values().filter(|d| d.is_required() && !attrs.contains_key(&d.name)).map(|d| d.name.clone()).collect();
        if !missing.is_empty() {
            return Err(ModelError::bad(format!("required attribute {} is missing", missing[0]))
                .with_details(missing.iter().map(|m| format!("{m}: required")).collect()));
        }
        Ok(Entity {
            location: location.to_string(),
            kind: kind.to_string(),
            mixins,
            attributes: attrs,
            inapplicable: None,
        })
    }

    /// Link entities carry their ends as attributes; checks that a link has both and that a
    /// resource has neither.
    fn check_link_ends(&self, kind: &str, attrs: &mut BTreeMap<String, Value>) -> Result<()> {
        if self.is_link_kind(kind) {
            for a in [ATTR_SOURCE, ATTR_TARGET] {
                match attrs.get(a) {
                    Some(Value::String(s)) if !s.is_empty() => {
                        check_no_control(&format!("attribute {a}"), s)?;
                        let path = location_path(s).to_string();
                        if a == ATTR_SOURCE || s.starts_with('/') {
                            attrs.insert(a.to_string(), Value::String(path));
                        }
                    }
                    _ => return Err(ModelError::bad(format!("a link needs {:?} (attribute {a})", &a[10..]))),
                }
            }
        } else if attrs.contains_key(ATTR_SOURCE) || attrs.contains_key(ATTR_TARGET) {
            return Err(ModelError::bad(format!(
                "kind {kind:?} is not a link kind: source and target are not allowed"
            )));
        }
        Ok(())
    }

    /// Full replacement (PUT on an existing entity): the kind and id stay; attributes not given
    /// fall back to defaults, except immutable and provider-assigned ones, which keep their value.
    pub fn replace_entity(&self, old: &Entity, input: &EntityInput) -> Result<Entity> {
        if let Some(k) = &input.kind
            && k != &old.kind
        {
            return Err(ModelError::bad(format!("kind is immutable: the entity is a {:?}", old.kind)));
        }
        let mixins = input.mixins.clone().unwrap_or_default();
        self.check_mixins(&old.kind, &mixins)?;
        let defs = self.attribute_set(&old.kind, &mixins);
        let mut given = normalize_attributes(&input.attributes, &defs)?;
        merge_top_level(input, &mut given);
        check_immutable(&defs, old, &given)?;
        let mut attrs = given;
        for (name, def) in &defs {
            if attrs.contains_key(name) {
                continue;
            }
            if (!def.is_mutable() || PROVIDER_ASSIGNED.contains(&name.as_str()))
                && let Some(v) = old.attributes.get(name)
            {
                attrs.insert(name.clone(), v.clone());
                continue;
            }
            if let Some(d) = &def.default {
                attrs.insert(name.clone(), d.clone());
            }
        }
        attrs.insert(ATTR_ID.to_string(), Value::String(old.id().to_string()));
        self.check_link_ends(&old.kind, &mut attrs)?;
        self.finish_update(old, mixins, attrs, &defs)
    }

    /// Partial update (POST on an entity): given attributes are merged over the stored ones; a
    /// given `mixins` list replaces the entity's mixins.
    pub fn update_entity(&self, old: &Entity, input: &EntityInput) -> Result<Entity> {
        if let Some(k) = &input.kind
            && k != &old.kind
        {
            return Err(ModelError::bad(format!("kind is immutable: the entity is a {:?}", old.kind)));
        }
        let mixins = input.mixins.clone().unwrap_or_else(|| old.mixins.clone());
        self.check_mixins(&old.kind, &mixins)?;
        let defs = self.attribute_set(&old.kind, &mixins);
        let mut given = normalize_attributes(&input.attributes, &defs)?;
        merge_top_level(input, &mut given);
        check_immutable(&defs, old, &given)?;
        let mut attrs = old.attributes.clone();
        // Attributes of mixins that were removed go with them.
        attrs.retain(|k, _| defs.contains_key(k));
        for (k, v) in given {
            attrs.insert(k, v);
        }
        for (name, def) in &defs {
            if !attrs.contains_key(name)
                && let Some(d) = &def.default
            {
                attrs.insert(name.clone(), d.clone());
            }
        }
        self.check_link_ends(&old.kind, &mut attrs)?;
        self.finish_update(old, mixins, attrs, &defs)
    }

    /// Checks the links an update body lists (a client sending back the rendering it read, Link
    /// lines and inline links included). An update leaves a resource's links as they are (GFD.223
    /// "Any OCCI Links associated with an existing OCCI Resource MUST be left intact"): a listed
    /// link must describe one of `current` (the links whose source is `resource`) as it is, with
    /// the same target, the same kind and id when given, and every attribute it gives equal to the
    /// stored one; it is then left alone. Links not listed are left alone too. A listed link that
    /// would add or change one is refused, naming it: links are created and changed at their own
    /// location. `local` turns a target as the client wrote it into the form links store (a URL of
    /// this server into its path).
    pub fn check_listed_links(
        &self,
        resource: &Entity,
        current: &[Entity],
        listed: &[EntityInput],
        local: &dyn Fn(&str) -> String,
    ) -> Result<()> {
        if listed.is_empty() {
            return Ok(());
        }
        if self.is_link_kind(&resource.kind) {
            return Err(ModelError::bad("member \"links\": a link has no links of its own"));
        }
        for (i, link) in listed.iter().enumerate() {
            self.check_listed_link(resource, current, link, local).map_err(|e| e.at(format!("links[{i}]")))?;
        }
        Ok(())
    }

    fn check_listed_link(
        &self,
        resource: &Entity,
        current: &[Entity],
        link: &EntityInput,
        local: &dyn Fn(&str) -> String,
    ) -> Result<()> {
        if !link.links.is_empty() {
            return Err(ModelError::bad("a link cannot carry links"));
        }
        let target = link
            .target
            .as_ref()
            .map(|t| t.location.as_str())
            .or_else(|| link.attributes.get(ATTR_TARGET).and_then(Value::as_str))
            .ok_or_else(|| {
                ModelError::bad("a link in an update needs its target, to tell which of the resource's links it is")
            })?;
        let target = local(target);
        let id = link
            .id
            .as_deref()
            .or_else(|| link.attributes.get(ATTR_ID).and_then(Value::as_str))
            .map(|id| id.strip_prefix("urn:uuid:").unwrap_or(id));
        let kind = link.kind.as_deref();
        let mut name = format!("the link to {target:?}");
        if let Some(k) = kind {
            name.push_str(&format!(" of kind {k:?}"));
        }
        if let Some(id) = id {
            name.push_str(&format!(" with id {id:?}"));
        }
        let candidates: Vec<&Entity> = current
            .iter()
            .filter(|l| {
                l.target() == Some(target.as_str())
                    && kind.is_none_or(|k| k == l.kind)
                    && id.is_none_or(|id| id == l.id())
            })
            .collect();
        if candidates.is_empty() {
            let create = match kind.and_then(|k| self.get(k)).and_then(|k| k.location.clone()) {
                Some(loc) => format!("create a link by POST to {loc}"),
                None => "create a link at its kind's location".to_string(),
            };
            return Err(ModelError::bad(format!(
                "{name} is not one of the links of {:?}, and an update leaves a resource's links as they are: {create}",
                resource.location
            )));
        }
        let mut first_difference = None;
        for stored in candidates {
            match self.link_difference(resource, stored, link, local)? {
                None => return Ok(()),
                Some(d) => {
                    first_difference.get_or_insert((stored.location.clone(), d));
                }
            }
        }
        let (location, difference) = first_difference.expect("at least one candidate");
        Err(ModelError::bad(format!(
            "{name} ({location}) differs from the stored link: {difference}; an update leaves a resource's links as they are: change the link at its own location ({location})"
        )))
    }

    /// How a listed link differs from the stored link `stored` of `resource`: the first given
    /// member that is not as stored, `None` when every given one is.
    fn link_difference(
        &self,
        resource: &Entity,
        stored: &Entity,
        link: &EntityInput,
        local: &dyn Fn(&str) -> String,
    ) -> Result<Option<String>> {
        if let Some(mixins) = &link.mixins {
            let given: HashSet<&String> = mixins.iter().collect();
            if given != stored.mixins.iter().collect::<HashSet<_>>() {
                return Ok(Some(format!("its mixins are {:?}, the update says {mixins:?}", stored.mixins)));
            }
        }
        let defs = self.attribute_set(&stored.kind, &stored.mixins);
        let mut given = normalize_attributes(&link.attributes, &defs)?;
        merge_top_level(link, &mut given);
        for (name, value) in &given {
            let current = stored.attributes.get(name);
            let same = match name.as_str() {
                ATTR_ID => value.as_str().map(|v| v.strip_prefix("urn:uuid:").unwrap_or(v)) == Some(stored.id()),
                ATTR_SOURCE => value.as_str().map(location_path) == Some(resource.location.as_str()),
                ATTR_TARGET => value.as_str().map(local).as_deref() == stored.target(),
                // Not recorded for a target outside the server; the text rendering then shows the
                // link's kind in its place.
                ATTR_TARGET_KIND if current.is_none() => true,
                _ => current.is_some_and(|c| same_value(c, value)),
            };
            if !same {
                let was = current.map_or_else(|| "not set".to_string(), |c| format!("{c}"));
                return Ok(Some(format!("attribute {name} is {was}, the update says {value}")));
            }
        }
        Ok(None)
    }

    fn finish_update(
        &self,
        old: &Entity,
        mixins: Vec<String>,
        attrs: BTreeMap<String, Value>,
        defs: &AttributeSet,
    ) -> Result<Entity> {
        check_complete(defs, &attrs)?;
        Ok(Entity {
            location: old.location.clone(),
            kind: old.kind.clone(),
            mixins,
            attributes: attrs,
            inapplicable: None,
        })
    }

    /// Sets the mixins of an entity (association, dissociation), keeping attributes that still
    /// apply and filling the new mixins' defaults.
    pub fn set_mixins(&self, old: &Entity, mixins: Vec<String>) -> Result<Entity> {
        self.check_mixins(&old.kind, &mixins)?;
        let defs = self.attribute_set(&old.kind, &mixins);
        let mut attrs = old.attributes.clone();
        attrs.retain(|k, _| defs.contains_key(k));
        for (name, def) in &defs {
            if !attrs.contains_key(name)
                && let Some(d) = &def.default
            {
                attrs.insert(name.clone(), d.clone());
            }
        }
        let missing: Vec<&str> = defs
            .values()
            .filter(|d| d.is_required() && !attrs.contains_key(&d.name))
            .map(|d| d.name.as_str())
            .collect();
        if let Some(m) = missing.first() {
            return Err(ModelError::bad(format!(
                "entity {:?} lacks attribute {m}, required by its new mixins; set it first",
                old.location
            )));
        }
        check_attributes(&defs, &attrs)?;
        Ok(Entity {
            location: old.location.clone(),
            kind: old.kind.clone(),
            mixins,
            attributes: attrs,
            inapplicable: None,
        })
    }

    /// Resolves `?action=term` against the actions applicable to an entity.
    pub fn resolve_action(&self, entity: &Entity, term: &str) -> Result<Arc<Category>> {
        let actions = self.actions_for(&entity.kind, &entity.mixins);
        let matching: Vec<&String> = actions.iter().filter(|a| a.rsplit('#').next() == Some(term)).collect();
        match matching.as_slice() {
            [one] => self
                .by_id
                .get(one.as_str())
                .cloned()
                .ok_or_else(|| ModelError::bad(format!("action {one:?} is not defined"))),
            [] => Err(ModelError::bad(format!(
                "action {term:?} is not applicable to {:?} (kind {}); applicable: {}",
                entity.location,
                entity.kind,
                if actions.is_empty() { "none".to_string() } else { actions.join(", ") }
            ))),
            _ => Err(ModelError::bad(format!("action term {term:?} is ambiguous here: {:?}", matching))),
        }
    }

    /// Checks a whole entity against its attribute set: every value against its definition,
    /// nothing unknown, nothing required missing. (Used after handlers changed attributes.)
    pub fn check_entity(&self, e: &Entity) -> Result<()> {
        check_complete(&self.attribute_set(&e.kind, &e.mixins), &e.attributes)
    }

    /// Validates action parameters (returned normalised) and, when `builtin` (no handler drives
    /// the entity's kind), applies the built-in state machine. Returns the updated entity.
    pub fn apply_action(
        &self,
        entity: &Entity,
        action: &Category,
        params: &Map<String, Value>,
        builtin: bool,
    ) -> Result<(Entity, Map<String, Value>)> {
        let defs: AttributeSet = action.attributes.iter().map(|d| (d.name.clone(), d.clone())).collect();
        let params = normalize_attributes(params, &defs).map_err(|e| e.at(format!("action {}", action.id())))?;
        check_attributes(&defs, &params).map_err(|e| e.at(format!("action {}", action.id())))?;
        if let Some(d) = defs.values().find(|d| d.is_required() && !params.contains_key(&d.name)) {
            return Err(ModelError::bad(format!("action {}: parameter {} is required", action.id(), d.name)));
        }
        let mut next = entity.clone();
        if !builtin {
            return Ok((next, params.into_iter().collect()));
        }
        // The built-in machine decides from now on (not what a handler since unbound said).
        next.inapplicable = None;
        let set = |e: &mut Entity, k: &str, v: Value| {
            e.attributes.insert(k.to_string(), v);
        };
        match (action.scheme.as_str(), action.term.as_str()) {
            (COMPUTE_ACTIONS, "start" | "restart") => set(&mut next, "occi.compute.state", "active".into()),
            (COMPUTE_ACTIONS, "stop") => set(&mut next, "occi.compute.state", "inactive".into()),
            (COMPUTE_ACTIONS, "suspend") => set(&mut next, "occi.compute.state", "suspended".into()),
            (NETWORK_ACTIONS, "up") => set(&mut next, "occi.network.state", "active".into()),
            (NETWORK_ACTIONS, "down") => set(&mut next, "occi.network.state", "inactive".into()),
            (STORAGE_ACTIONS, "online") => set(&mut next, "occi.storage.state", "online".into()),
            (STORAGE_ACTIONS, "offline") => set(&mut next, "occi.storage.state", "offline".into()),
            (STORAGE_ACTIONS, "resize") => {
                if let Some(size) = params.get("size") {
                    set(&mut next, "occi.storage.size", size.clone());
                }
            }
            // save, backup, snapshot and tenant actions change no attribute without a handler.
            _ => {}
        }
        if next.attributes != entity.attributes {
            for state in ["occi.compute.state.message", "occi.network.state.message", "occi.storage.state.message"] {
                next.attributes.remove(state);
            }
        }
        Ok((next, params.into_iter().collect()))
    }
}

/// A tenant kind without a parent is a resource kind, as pyOCNI's kinds were.
fn default_parent(mut cat: Category) -> Category {
    if cat.class == Class::Kind && cat.parent.is_none() {
        cat.parent = Some(RESOURCE_KIND.to_string());
    }
    cat
}

const COMPUTE_ACTIONS: &str = "http://schemas.ogf.org/occi/infrastructure/compute/action#";
const NETWORK_ACTIONS: &str = "http://schemas.ogf.org/occi/infrastructure/network/action#";
const STORAGE_ACTIONS: &str = "http://schemas.ogf.org/occi/infrastructure/storage/action#";

/// A built-in state machine: the actions of `scheme` apply according to the entity's `state`
/// attribute, `states` listing for each state the action terms that leave it.
struct Machine {
    scheme: &'static str,
    state: &'static str,
    states: &'static [(&'static str, &'static [&'static str])],
}

/// The state diagrams of GFD.224 (figures 3-5), read as which actions leave which state. The
/// arrows into `error` are failures of an action, not actions. Where the figures are silent:
///
/// * compute `save` ("active (via stop and start chain)", no arrow) applies where `restart`
///   does: to an active compute; `suspended` leaves by `start` only, as drawn;
/// * storage `backup`, `snapshot` and `resize` (OCCI 1.1, GFD.184 figure 4) leave `online` only;
/// * `error` has no way out in the figures; nothing in the built-in machine enters it, so an
///   entity found there (put there by a handler since unbound, say) keeps every action, as does
///   an entity without the state attribute or with a value not listed here.
const MACHINES: [Machine; 3] = [
    Machine {
        scheme: COMPUTE_ACTIONS,
        state: "occi.compute.state",
        states: &[
            ("inactive", &["start"]),
            ("active", &["stop", "restart", "suspend", "save"]),
            ("suspended", &["start"]),
        ],
    },
    Machine {
        scheme: NETWORK_ACTIONS,
        state: "occi.network.state",
        states: &[("inactive", &["up"]), ("active", &["down"])],
    },
    Machine {
        scheme: STORAGE_ACTIONS,
        state: "occi.storage.state",
        states: &[("offline", &["online"]), ("online", &["offline", "backup", "snapshot", "resize"])],
    },
];

/// Which rule decides whether an action applies to an entity.
#[derive(Clone, Copy, Debug)]
pub enum Applicable<'a> {
    /// The built-in state machines (compute, network, storage): an action of a machine applies
    /// in the states it allows; every other action (of mixins, of tenant kinds) always applies.
    Builtin,
    /// What the handler driving the entity's kind answered: every action but these.
    Excluding(&'a [String]),
}

impl<'a> Applicable<'a> {
    /// The entity's own rule: its handler's stored answer ([`Entity::inapplicable`]) when it
    /// has one, else the built-in machines.
    pub fn of(e: &'a Entity) -> Applicable<'a> {
        e.inapplicable.as_deref().map_or(Applicable::Builtin, Applicable::Excluding)
    }

    /// Whether `action` (`scheme#term`) applies to `e` in its current state.
    pub fn applies(self, e: &Entity, action: &str) -> bool {
        match self {
            Applicable::Excluding(excluded) => !excluded.iter().any(|x| x == action),
            Applicable::Builtin => builtin_action_applies(e, action),
        }
    }
}

/// Whether the built-in state machines let the action `action` (`scheme#term`) apply to `e`
/// in its current state. Actions of no built-in machine always apply.
fn builtin_action_applies(e: &Entity, action: &str) -> bool {
    let Some(machine) = MACHINES.iter().find(|m| action.starts_with(m.scheme)) else { return true };
    let term = &action[machine.scheme.len()..];
    let Some(state) = e.attr_str(machine.state) else { return true };
    match machine.states.iter().find(|(s, _)| *s == state) {
        Some((_, terms)) => terms.contains(&term),
        None => true,
    }
}

impl Category {
    /// Every category id this one refers to.
    pub fn references(&self) -> Vec<String> {
        let mut out: Vec<String> = self.parent.iter().cloned().collect();
        out.extend(self.actions.iter().cloned());
        out.extend(self.depends.iter().cloned());
        out.extend(self.applies.iter().cloned());
        out
    }
}

/// Copies `title`, `summary`, `source`, `target` given as top-level members into attributes.
fn merge_top_level(input: &EntityInput, attrs: &mut BTreeMap<String, Value>) {
    if let Some(t) = &input.title {
        attrs.insert(ATTR_TITLE.into(), Value::String(t.clone()));
    }
    if let Some(s) = &input.summary {
        attrs.insert(ATTR_SUMMARY.into(), Value::String(s.clone()));
    }
    if let Some(s) = &input.source {
        attrs.insert(ATTR_SOURCE.into(), Value::String(s.location.clone()));
    }
    if let Some(t) = &input.target {
        attrs.insert(ATTR_TARGET.into(), Value::String(t.location.clone()));
        if let Some(k) = &t.kind {
            attrs.insert(ATTR_TARGET_KIND.into(), Value::String(k.clone()));
        }
    }
}

/// Flattens attribute values given flat (`"occi.compute.cores": 2`) or nested
/// (`{"occi": {"compute": {"cores": 2}}}`) into full names, using the definitions to know where
/// a name ends (an object value of a defined `object` attribute stays whole). Unknown names are
/// refused.
pub fn normalize_attributes(raw: &Map<String, Value>, defs: &AttributeSet) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    let mut unknown = Vec::new();
    flatten_into("", raw, defs, &mut out, &mut unknown);
    if !unknown.is_empty() {
        return Err(ModelError::bad(format!("attribute {} is not defined by the entity's kind or mixins", unknown[0]))
            .with_details(unknown.iter().map(|u| format!("{u}: unknown attribute")).collect()));
    }
    Ok(out)
}

fn flatten_into(
    prefix: &str,
    obj: &Map<String, Value>,
    defs: &AttributeSet,
    out: &mut BTreeMap<String, Value>,
    unknown: &mut Vec<String>,
) {
    for (k, v) in obj {
        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if defs.contains_key(&name) {
            out.insert(name, v.clone());
        } else if let Value::Object(inner) = v {
            if inner.is_empty() {
                unknown.push(name);
            } else {
                flatten_into(&name, inner, defs, out, unknown);
            }
        } else {
            unknown.push(name);
        }
    }
}

/// Checks every value against its definition; collects all failures.
/// Every value against its definition, and nothing required missing.
fn check_complete(defs: &AttributeSet, attrs: &BTreeMap<String, Value>) -> Result<()> {
    check_attributes(defs, attrs)?;
    if let Some(d) = defs.values().find(|d| d.is_required() && !attrs.contains_key(&d.name)) {
        return Err(ModelError::bad(format!("required attribute {} is missing", d.name)));
    }
    Ok(())
}

fn check_attributes(defs: &AttributeSet, attrs: &BTreeMap<String, Value>) -> Result<()> {
    let mut failures = Vec::new();
    for (name, value) in attrs {
        let Some(def) = defs.get(name) else {
            failures.push(format!("{name}: unknown attribute"));
            continue;
        };
        if let Err(why) = check_value(def, value) {
            failures.push(format!("{name}: {why}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ModelError::bad(format!("attribute {}", failures[0])).with_details(failures))
    }
}

/// Whether a value a client sent back is the stored one: numbers compare by value (a text
/// rendering may turn `2` into `2.0`), and an array or object read back from a text rendering
/// arrives as its JSON text.
fn same_value(stored: &Value, given: &Value) -> bool {
    match (stored, given) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(_) | Value::Object(_), Value::String(s)) => {
            serde_json::from_str::<Value>(s).is_ok_and(|v| &v == stored)
        }
        _ => stored == given,
    }
}

/// Refuses changes of immutable attributes (giving the same value again is fine).
fn check_immutable(defs: &AttributeSet, old: &Entity, given: &BTreeMap<String, Value>) -> Result<()> {
    for (name, value) in given {
        if let Some(def) = defs.get(name)
            && !def.is_mutable()
            && old.attributes.get(name) != Some(value)
        {
            return Err(ModelError::bad(format!("attribute {name} is immutable and cannot be changed")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::parse_category;
    use crate::entity::parse_entity_input;
    use serde_json::json;

    const COMPUTE: &str = "http://schemas.ogf.org/occi/infrastructure#compute";

    fn input(v: Value) -> EntityInput {
        parse_entity_input(&v).unwrap()
    }

    #[test]
    fn builtins_load_and_reference_each_other() {
        let c = Catalog::builtin();
        for cat in c.iter() {
            c.check_references(cat).unwrap_or_else(|e| panic!("{}: {e}", cat.id()));
        }
        assert!(c.by_location("/compute/").is_some());
        assert!(c.is_link_kind("http://schemas.ogf.org/occi/infrastructure#networkinterface"));
        assert!(!c.is_link_kind(COMPUTE));
        let defs = c.attribute_set(COMPUTE, &[]);
        assert!(
            defs.contains_key("occi.core.id")
                && defs.contains_key("occi.core.summary")
                && defs.contains_key("occi.compute.cores")
        );
    }

    #[test]
    fn create_applies_defaults_and_checks_types() {
        let c = Catalog::builtin();
        let e = c
            .create_entity(
                &input(json!({"kind": COMPUTE, "attributes": {"occi": {"compute": {"cores": 2}}}})),
                "/compute/x",
                "x",
            )
            .unwrap();
        assert_eq!(e.attributes["occi.compute.cores"], json!(2));
        assert_eq!(e.attributes["occi.core.id"], json!("x"));
        let err = c
            .create_entity(
                &input(json!({"kind": COMPUTE, "attributes": {"occi.compute.cores": "two"}})),
                "/compute/x",
                "x",
            )
            .unwrap_err();
        assert!(err.message.contains("occi.compute.cores") && err.message.contains("type"), "{err}");
        let err = c
            .create_entity(
                &input(json!({"kind": COMPUTE, "attributes": {"occi.compute.colour": 1}})),
                "/compute/x",
                "x",
            )
            .unwrap_err();
        assert!(err.message.contains("occi.compute.colour"), "{err}");
        let err = c
            .create_entity(
                &input(json!({"kind": "http://schemas.ogf.org/occi/infrastructure#storage"})),
                "/storage/x",
                "x",
            )
            .unwrap_err();
        assert!(err.message.contains("occi.storage.size") && err.message.contains("required"), "{err}");
    }

    /// Link ends given as attributes (as the text renderings and pyOCNI send them) are refused
    /// with a control character, on creation and on replacement alike.
    #[test]
    fn link_end_attributes_with_control_characters_are_refused() {
        let c = Catalog::builtin();
        let ni = "http://schemas.ogf.org/occi/infrastructure#networkinterface";
        let link = |source: &str, target: &str| {
            input(json!({"kind": ni, "attributes": {
                "occi.core.source": source,
                "occi.core.target": target,
                "occi.networkinterface.interface": "eth0",
                "occi.networkinterface.mac": "00:11:22:33:44:55",
            }}))
        };
        let ok = c.create_entity(&link("/compute/a", "/network/b"), "/networkinterface/l", "l").unwrap();
        let forged = "/network/b>; rel=\"x\"\r\nX-OCCI-Attribute: occi.compute.state=\"hacked\"";
        let err = c.create_entity(&link("/compute/a", forged), "/networkinterface/l", "l").unwrap_err();
        assert!(err.message.starts_with("attribute occi.core.target: ") && err.message.contains("U+000D"), "{err}");
        let err = c.create_entity(&link("/compute/a\n", "/network/b"), "/networkinterface/l", "l").unwrap_err();
        assert!(err.message.starts_with("attribute occi.core.source: "), "{err}");
        let err = c.replace_entity(&ok, &link("/compute/a", "http://h.example/n\u{1b}[2J")).unwrap_err();
        assert!(err.message.starts_with("attribute occi.core.target: ") && err.message.contains("U+001B"), "{err}");
    }

    /// The compute `/compute/a` (described by `vm`) and its network interface
    /// `/networkinterface/l` to `/network/n`, as stored.
    fn compute_with_an_interface(c: &Catalog, vm: Value) -> (Entity, Entity) {
        let ni = "http://schemas.ogf.org/occi/infrastructure#networkinterface";
        let vm = c.create_entity(&input(vm), "/compute/a", "a").unwrap();
        let mut l = c
            .create_entity(
                &input(json!({"kind": ni, "source": "/compute/a", "target": "/network/n",
                    "attributes": {"occi.networkinterface.mac": "02:00:00:00:00:01", "occi.networkinterface.interface": "eth0"}})),
                "/networkinterface/l",
                "l",
            )
            .unwrap();
        l.attributes.insert(ATTR_TARGET_KIND.into(), json!("http://schemas.ogf.org/occi/infrastructure#network"));
        (vm, l)
    }

    /// An update may list the resource's links as they are (a client sending back what it
    /// read); a link it does not have, or one with other values, is refused and named.
    #[test]
    fn listed_links_must_be_the_current_ones() {
        let c = Catalog::builtin();
        let ni = "http://schemas.ogf.org/occi/infrastructure#networkinterface";
        let (vm, l) = compute_with_an_interface(&c, json!({"kind": COMPUTE}));
        let current = [l];
        let local = |t: &str| t.strip_prefix("http://h.example").unwrap_or(t).to_string();
        let check = |links: Value| {
            let listed = input(json!({"kind": COMPUTE, "links": links})).links;
            c.check_listed_links(&vm, &current, &listed, &local)
        };
        // As rendered (JSON, text Link line turned into JSON), in part, or by its URL.
        check(json!([{"kind": ni, "id": "l", "source": {"location": "/compute/a", "kind": COMPUTE},
            "target": {"location": "/network/n", "kind": "http://schemas.ogf.org/occi/infrastructure#network"},
            "attributes": {"occi.networkinterface.mac": "02:00:00:00:00:01", "occi.networkinterface.state": "inactive"}}]))
        .unwrap();
        check(json!([{"kind": ni, "id": "l", "target": {"location": "/network/n"},
            "attributes": {"occi.core.id": "l", "occi.core.target.kind": "http://schemas.ogf.org/occi/infrastructure#network",
                "occi.networkinterface.interface": "eth0"}}]))
        .unwrap();
        check(json!([{"target": "http://h.example/network/n"}])).unwrap();
        check(json!([])).unwrap();
        // A new target, kind or id: not one of its links.
        for (links, words) in [
            (
                json!([{"kind": ni, "target": "/network/other"}]),
                vec!["links[0]", "\"/network/other\"", "POST to /networkinterface/"],
            ),
            (
                json!([{"kind": "http://schemas.ogf.org/occi/infrastructure#storagelink", "target": "/network/n"}]),
                vec!["storagelink", "not one of the links"],
            ),
            (
                json!([{"target": "/network/n"}, {"kind": ni, "id": "l2", "target": "/network/n"}]),
                vec!["links[1]", "\"l2\""],
            ),
        ] {
            let e = check(links).unwrap_err();
            for w in words {
                assert!(e.message.contains(w), "{w}: {e}");
            }
        }
        // Another value, a source elsewhere, other mixins, an unknown attribute: refused.
        for (links, words) in [
            (
                json!([{"kind": ni, "target": "/network/n", "attributes": {"occi.networkinterface.mac": "02:00:00:00:00:02"}}]),
                vec!["links[0]", "/networkinterface/l", "occi.networkinterface.mac", "02:00:00:00:00:02"],
            ),
            (json!([{"target": "/network/n", "title": "new"}]), vec!["occi.core.title", "not set"]),
            (json!([{"target": "/network/n", "source": "/compute/b"}]), vec!["occi.core.source"]),
            (
                json!([{"target": "/network/n", "mixins": ["http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface"]}]),
                vec!["mixins"],
            ),
            (json!([{"target": "/network/n", "attributes": {"occi.compute.cores": 2}}]), vec!["occi.compute.cores"]),
            (json!([{"kind": ni}]), vec!["needs its target"]),
        ] {
            let e = check(links).unwrap_err();
            for w in words {
                assert!(e.message.contains(w), "{w}: {e}");
            }
        }
        // A link has no links.
        let e = c.check_listed_links(&current[0], &[], &input(json!({"links": [{"target": "/x"}]})).links, &local);
        assert!(e.unwrap_err().message.contains("no links"));
        // Numbers compare by value; structured values may come back as their JSON text.
        assert!(same_value(&json!(2), &json!(2.0)) && !same_value(&json!(2), &json!("2")));
        assert!(same_value(&json!(["a", 1]), &json!("[\"a\",1]")));
    }

    /// A resource's whole rendering (text and JSON, links and action links included), sent back
    /// with one attribute changed, is an update that leaves the links alone.
    #[test]
    fn a_rendering_sent_back_is_an_update() {
        let c = Catalog::builtin();
        let (vm, l) = compute_with_an_interface(&c, json!({"kind": COMPUTE, "title": "vm"}));
        let links = [l];
        // Renderings carry absolute link ends; the server maps its own URLs back to paths.
        let base = "http://ocni.example";
        let local = |t: &str| t.strip_prefix(base).unwrap_or(t).to_string();
        let lines = crate::text::entity_lines(&vm, &c, &links, base);
        assert!(lines.iter().any(|(k, v)| *k == "Link" && v.contains("?action=start")));
        let text = crate::text::parse_plain(&crate::text::plain_body(&lines)).unwrap().to_entity_json(&c).unwrap();
        let json = crate::render::render_entity(&vm, &c, &links, crate::Dialect::Occi12, base, &|_| None);
        assert!(json["actions"].is_array() && json["links"].is_array());
        let pyocni = crate::render::render_entity(&vm, &c, &links, crate::Dialect::Pyocni, base, &|_| None);
        for body in [text, json, pyocni] {
            let mut sent = crate::entity::parse_entity_collection(&body).unwrap().remove(0);
            assert_eq!(sent.links.len(), 1, "{body}");
            sent.title = Some("renamed".into());
            c.check_listed_links(&vm, &links, &sent.links, &local).unwrap_or_else(|e| panic!("{e}: {body}"));
            assert_eq!(c.update_entity(&vm, &sent).unwrap().attributes[ATTR_TITLE], json!("renamed"));
            assert_eq!(c.replace_entity(&vm, &sent).unwrap().attributes[ATTR_TITLE], json!("renamed"));
        }
    }

    /// A replacement that leaves out a provider-assigned value keeps it.
    #[test]
    fn replace_keeps_provider_assigned_values() {
        let c = Catalog::builtin();
        let sl = "http://schemas.ogf.org/occi/infrastructure#storagelink";
        let old = c
            .create_entity(
                &input(json!({"kind": sl, "source": "/compute/a", "target": "/storage/s",
                    "attributes": {"occi.storagelink.deviceid": "/dev/vdb", "occi.storagelink.mountpoint": "/mnt"}})),
                "/storagelink/l",
                "l",
            )
            .unwrap();
        let next = c
            .replace_entity(&old, &input(json!({"kind": sl, "source": "/compute/a", "target": "/storage/s"})))
            .unwrap();
        assert_eq!(next.attributes["occi.storagelink.deviceid"], json!("/dev/vdb"));
        assert!(!next.attributes.contains_key("occi.storagelink.mountpoint"), "a client's value goes");
        let next = c
            .replace_entity(
                &old,
                &input(json!({"kind": sl, "source": "/compute/a", "target": "/storage/s",
                "attributes": {"occi.storagelink.deviceid": "/dev/vdc"}})),
            )
            .unwrap();
        assert_eq!(next.attributes["occi.storagelink.deviceid"], json!("/dev/vdc"));
    }

    #[test]
    fn template_mixin_defaults_apply() {
        let c = Catalog::builtin();
        let small = "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#small";
        let e = c.create_entity(&input(json!({"kind": COMPUTE, "mixins": [small]})), "/compute/x", "x").unwrap();
        assert_eq!(e.attributes["occi.compute.cores"], json!(1));
        let err = c
            .create_entity(
                &input(json!({"kind": "http://schemas.ogf.org/occi/infrastructure#network", "mixins": [small]})),
                "/network/x",
                "x",
            )
            .unwrap_err();
        assert!(err.message.contains("applies"), "{err}");
    }

    #[test]
    fn immutable_attributes_refused_on_update() {
        let c = Catalog::builtin();
        let e = c.create_entity(&input(json!({"kind": COMPUTE})), "/compute/x", "x").unwrap();
        let err = c.update_entity(&e, &input(json!({"attributes": {"occi.compute.state": "active"}}))).unwrap_err();
        assert!(err.message.contains("immutable"), "{err}");
        let ok = c.update_entity(&e, &input(json!({"attributes": {"occi.compute.cores": 4}}))).unwrap();
        assert_eq!(ok.attributes["occi.compute.cores"], json!(4));
        let err = c
            .update_entity(&e, &input(json!({"kind": "http://schemas.ogf.org/occi/infrastructure#network"})))
            .unwrap_err();
        assert!(err.message.contains("kind is immutable"));
    }

    #[test]
    fn actions_move_state_and_check_params() {
        let c = Catalog::builtin();
        let e = c.create_entity(&input(json!({"kind": COMPUTE})), "/compute/x", "x").unwrap();
        let start = c.resolve_action(&e, "start").unwrap();
        let (e2, _) = c.apply_action(&e, &start, &Map::new(), true).unwrap();
        let (same, _) = c.apply_action(&e, &start, &Map::new(), false).unwrap();
        assert_eq!(same, e, "without the built-in state machine nothing changes");
        assert_eq!(e2.attributes["occi.compute.state"], json!("active"));
        let stop = c.resolve_action(&e2, "stop").unwrap();
        let bad: Map<String, Value> = json!({"method": "explode"}).as_object().unwrap().clone();
        assert!(c.apply_action(&e2, &stop, &bad, true).unwrap_err().message.contains("method"));
        assert!(c.resolve_action(&e, "up").is_err());
    }

    /// GFD.224's state diagrams decide which built-in actions apply; rendering and invoking
    /// use the same answer.
    #[test]
    fn applicable_actions_follow_the_builtin_state_machines() {
        let c = Catalog::builtin();
        let terms = |e: &Entity| -> Vec<String> {
            c.applicable_actions(e).iter().map(|a| a.rsplit('#').next().unwrap().to_string()).collect()
        };
        let with_state = |e: &Entity, attr: &str, state: &str| {
            let mut e = e.clone();
            e.attributes.insert(attr.to_string(), json!(state));
            e
        };
        let compute = c.create_entity(&input(json!({"kind": COMPUTE})), "/compute/x", "x").unwrap();
        let state = "occi.compute.state";
        assert_eq!(terms(&compute), ["start"], "a new compute is inactive");
        assert_eq!(terms(&with_state(&compute, state, "active")), ["stop", "restart", "suspend", "save"]);
        assert_eq!(terms(&with_state(&compute, state, "suspended")), ["start"]);
        let all = ["start", "stop", "restart", "suspend", "save"];
        assert_eq!(terms(&with_state(&compute, state, "error")), all, "no way out of error is drawn: all");
        let mut stateless = compute.clone();
        stateless.attributes.remove(state);
        assert_eq!(terms(&stateless), all, "no state attribute: all");

        let network = c
            .create_entity(
                &input(json!({"kind": "http://schemas.ogf.org/occi/infrastructure#network"})),
                "/network/n",
                "n",
            )
            .unwrap();
        assert_eq!(terms(&network), ["up"]);
        assert_eq!(terms(&with_state(&network, "occi.network.state", "active")), ["down"]);
        let storage = c
            .create_entity(
                &input(json!({"kind": "http://schemas.ogf.org/occi/infrastructure#storage",
                              "attributes": {"occi.storage.size": 1.0}})),
                "/storage/s",
                "s",
            )
            .unwrap();
        assert_eq!(terms(&storage), ["online"]);
        assert_eq!(
            terms(&with_state(&storage, "occi.storage.state", "online")),
            ["offline", "backup", "snapshot", "resize"]
        );

        // Invoking follows the same rule: 409 naming the state, the applicable ones listed.
        let active = with_state(&compute, state, "active");
        let start = c.resolve_action(&active, "start").unwrap();
        let err = c.check_applicable(&active, &start, Applicable::Builtin).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Conflict);
        assert!(
            err.message.starts_with("action start does not apply to /compute/x in state \"active\"; applicable now: ")
                && err.message.contains(&format!("{COMPUTE_ACTIONS}stop")),
            "{err}"
        );
        c.check_applicable(&compute, &start, Applicable::Builtin).unwrap();
        assert_eq!(c.state_of(&active), Some((state, "active")));
        assert_eq!(c.state_of(&stateless), None);

        // What a handler said, once stored, replaces the built-in rule: every action but those
        // it excluded (none: all of them).
        let mut driven = compute.clone();
        driven.inapplicable = Some(vec![format!("{COMPUTE_ACTIONS}start"), format!("{COMPUTE_ACTIONS}save")]);
        assert_eq!(terms(&driven), ["stop", "restart", "suspend"]);
        let err = c.check_applicable(&driven, &start, Applicable::of(&driven)).unwrap_err();
        assert!(err.message.starts_with("action start does not apply to /compute/x in state \"inactive\""), "{err}");
        driven.inapplicable = Some(Vec::new());
        assert_eq!(terms(&driven), all);
        assert_eq!(c.kind_actions(COMPUTE).len(), 5);
        // The built-in machine moving an entity takes the decision back.
        let (moved, _) =
            c.apply_action(&driven, &c.resolve_action(&driven, "stop").unwrap(), &Map::new(), true).unwrap();
        assert_eq!(moved.inapplicable, None);
    }

    /// Actions of tenant kinds and of mixins have no built-in state machine: they always apply.
    #[test]
    fn actions_without_a_state_machine_always_apply() {
        let go = parse_category(Class::Action, &json!({"term": "go", "scheme": "http://e.com/x/action#"})).unwrap();
        let vm = parse_category(
            Class::Kind,
            &json!({"term": "vm", "scheme": "http://e.com/x#", "parent": COMPUTE,
            "actions": ["http://e.com/x/action#go"], "location": "/vm/"}),
        )
        .unwrap();
        let tag = parse_category(
            Class::Mixin,
            &json!({"term": "tag", "scheme": "http://e.com/x#",
            "actions": ["http://e.com/x/action#go"], "location": "/tag/"}),
        )
        .unwrap();
        let c = Catalog::builtin().add(vec![go, vm, tag]).unwrap();
        let e = c.create_entity(&input(json!({"kind": "http://e.com/x#vm"})), "/vm/v", "v").unwrap();
        let terms: Vec<String> =
            c.applicable_actions(&e).iter().map(|a| a.rsplit('#').next().unwrap().to_string()).collect();
        assert_eq!(terms, ["start", "go"], "a sub-kind of compute keeps compute's machine");
        let m = c
            .create_entity(&input(json!({"kind": COMPUTE, "mixins": ["http://e.com/x#tag"]})), "/compute/m", "m")
            .unwrap();
        assert!(c.applicable_actions(&m).contains(&"http://e.com/x/action#go".to_string()));
    }

    #[test]
    fn category_add_checks_references_and_conflicts() {
        let c = Catalog::builtin();
        let k = parse_category(
            Class::Kind,
            &json!({"term": "vm", "scheme": "http://e.com/x#", "parent": "http://e.com/x#nothing", "location": "/vm/"}),
        )
        .unwrap();
        assert!(c.add(vec![k]).unwrap_err().message.contains("nothing"));
        let dup = parse_category(
            Class::Kind,
            &json!({"term": "other", "scheme": "http://e.com/x#", "location": "/compute/"}),
        )
        .unwrap();
        assert_eq!(c.add(vec![dup]).unwrap_err().kind, crate::ErrorKind::Conflict);
        let a = parse_category(Class::Action, &json!({"term": "go", "scheme": "http://e.com/x/action#"})).unwrap();
        let k = parse_category(Class::Kind, &json!({"term": "vm", "scheme": "http://e.com/x#", "actions": ["http://e.com/x/action#go"], "location": "/vm/"})).unwrap();
        let next = c.add(vec![k, a]).unwrap();
        assert!(next.delete(&["http://e.com/x/action#go".into()]).unwrap_err().message.contains("referenced"));
        assert_eq!(next.delete(&[COMPUTE.into()]).unwrap_err().kind, crate::ErrorKind::Forbidden);
    }
}
