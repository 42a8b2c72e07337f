//! Filters on GET: the seed's JSON filter bodies for categories (`/-/`) and entities
//! (collections). A filter is a partial description; something matches when every member the
//! filter states is equal in it (a deep subset test), and it matches a list of filters when it
//! matches any one of them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::attribute::is_definition;
use crate::catalog::Catalog;
use crate::category::{Category, Class};
use crate::entity::{ATTR_ID, ATTR_SOURCE, ATTR_SUMMARY, ATTR_TARGET, ATTR_TITLE, Entity, location_path};
use crate::error::{ModelError, Result, type_name};
use crate::render::{Dialect, render_category};

/// Values are equal, numbers compared by value (2 equals 2.0).
pub fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| value_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| value_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The key an attribute index files the value `v` under: two values have the same key whenever
/// [`EntityFilter::matches`] finds them equal (numbers by value, `2` and `2.0` and `0` and `-0`
/// alike; strings exactly; booleans; null), so an index lookup finds every entity a scan would.
/// `None` for arrays and objects (not indexed) and for the link ends (matched by path or URL).
/// Long values are cut: keys stay short, and an index hit is always checked against the entity.
pub fn index_key(name: &str, v: &Value) -> Option<String> {
    if name == ATTR_SOURCE || name == ATTR_TARGET {
        return None;
    }
    let mut key = match v {
        Value::Number(n) => {
            let f = n.as_f64()?;
            // -0.0 == 0.0: one key for both.
            format!("{:?}", if f == 0.0 { 0.0 } else { f })
        }
        // JSON text: a string key starts with '"' (no number, boolean or null does) and holds
        // no NUL (escaped), so it cannot run into the next part of a store key.
        Value::String(_) | Value::Bool(_) | Value::Null => v.to_string(),
        Value::Array(_) | Value::Object(_) => return None,
    };
    const MAX: usize = 200;
    if key.len() > MAX {
        let mut end = MAX;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        key.truncate(end);
        key.push('~');
    }
    Some(key)
}

/// One entity filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntityFilter {
    pub kind: Option<String>,
    pub mixins: Vec<String>,
    /// Full attribute name -> wanted value.
    pub attributes: BTreeMap<String, Value>,
}

impl EntityFilter {
    pub fn matches(&self, e: &Entity) -> bool {
        self.kind.as_ref().is_none_or(|k| k == &e.kind)
            && self.mixins.iter().all(|m| e.mixins.contains(m))
            && self.attributes.iter().all(|(k, v)| e.attributes.get(k).is_some_and(|have| attr_eq(k, have, v)))
    }
}

/// An attribute value `have` is what the filter wants. A link end is rendered absolute and
/// stored as a path when it is local: a wanted URL matches a local end by its path, so a
/// client can filter by the value it read.
fn attr_eq(name: &str, have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::String(h), Value::String(w)) if name == ATTR_SOURCE || name == ATTR_TARGET => {
            h == w || (h.starts_with('/') && location_path(w) == h)
        }
        _ => value_eq(have, want),
    }
}

fn flatten_leaves(prefix: &str, obj: &Map<String, Value>, out: &mut BTreeMap<String, Value>) {
    for (k, v) in obj {
        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(inner) if !inner.is_empty() => flatten_leaves(&name, inner, out),
            _ => {
                out.insert(name, v.clone());
            }
        }
    }
}

fn parse_entity_filter(v: &Value) -> Result<EntityFilter> {
    let obj = v.as_object().ok_or_else(|| ModelError::bad("a filter must be a JSON object"))?;
    let mut f = EntityFilter::default();
    for (member, value) in obj {
        match (member.as_str(), value) {
            ("kind", Value::String(k)) => f.kind = Some(k.clone()),
            ("mixins", Value::Array(list)) => {
                for m in list {
                    f.mixins
                        .push(m.as_str().ok_or_else(|| ModelError::bad("filter mixins must be strings"))?.to_string());
                }
            }
            ("attributes", Value::Object(a)) => flatten_leaves("", a, &mut f.attributes),
            ("id", v) => {
                f.attributes.insert(ATTR_ID.into(), v.clone());
            }
            ("title", v) => {
                f.attributes.insert(ATTR_TITLE.into(), v.clone());
            }
            ("summary", v) => {
                f.attributes.insert(ATTR_SUMMARY.into(), v.clone());
            }
            ("source" | "target", v) => {
                let loc = v.as_str().or_else(|| v.get("location").and_then(Value::as_str));
                let loc = loc.ok_or_else(|| ModelError::bad(format!("filter {member} must be a location")))?;
                f.attributes.insert(format!("occi.core.{member}"), Value::String(loc.to_string()));
            }
            (m, v) => {
                return Err(ModelError::bad(format!("filter member {m:?} ({}) is not supported", type_name(v))));
            }
        }
    }
    Ok(f)
}

/// Parses an entity filter body: `{"resources": [filter...], "links": [filter...]}` or one filter
/// object.
pub fn parse_entity_filters(v: &Value) -> Result<Vec<EntityFilter>> {
    let obj = v.as_object().ok_or_else(|| ModelError::bad("a filter body must be a JSON object"))?;
    if !obj.contains_key("resources") && !obj.contains_key("links") {
        return Ok(vec![parse_entity_filter(v)?]);
    }
    let mut out = Vec::new();
    for (member, list) in obj {
        match member.as_str() {
            "resources" | "links" => {
                let list = list.as_array().ok_or_else(|| ModelError::bad(format!("{member} must be an array")))?;
                for (i, f) in list.iter().enumerate() {
                    out.push(parse_entity_filter(f).map_err(|e| e.at(format!("{member}[{i}]")))?);
                }
            }
            other => return Err(ModelError::bad(format!("filter member {other:?} is not supported"))),
        }
    }
    Ok(out)
}

/// Does `have` contain everything `want` states? Objects: every member of `want`, recursively.
fn subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, v)| h.get(k).is_some_and(|hv| subset(v, hv))),
        (Value::Array(w), Value::Array(h)) => w.iter().all(|x| h.iter().any(|y| value_eq(x, y))),
        _ => value_eq(want, have),
    }
}

/// Flattens category attribute definitions given in either dialect to name -> definition.
fn flatten_defs(prefix: &str, obj: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (k, v) in obj {
        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(inner) if !is_definition(inner) => flatten_defs(&name, inner, out),
            _ => {
                out.insert(name, v.clone());
            }
        }
    }
}

/// One category filter: a partial category of one class.
#[derive(Clone, Debug, PartialEq)]
pub struct CategoryFilter {
    pub class: Class,
    pub members: Map<String, Value>,
}

impl CategoryFilter {
    pub fn matches(&self, cat: &Category) -> bool {
        if cat.class != self.class {
            return false;
        }
        // Compare against both renderings, so either dialect's spelling of a member works.
        let flat = render_category(cat, Dialect::Occi12);
        let nested = render_category(cat, Dialect::Pyocni);
        self.members.iter().all(|(k, want)| match k.as_str() {
            "attributes" => {
                let Some(have) = flat.get("attributes") else { return want.as_object().is_some_and(Map::is_empty) };
                let mut have_py = Map::new();
                if let Some(Value::Object(n)) = nested.get("attributes") {
                    flatten_defs("", n, &mut have_py);
                }
                want.as_object().is_some_and(|w| {
                    w.iter().all(|(name, wdef)| {
                        have.get(name).is_some_and(|h| subset(wdef, h))
                            || have_py.get(name).is_some_and(|h| subset(wdef, h))
                    })
                })
            }
            _ => [&flat, &nested].iter().any(|r| r.get(k).is_some_and(|have| subset(want, have))),
        })
    }
}

/// Parses a category filter body `{"kinds": [...], "mixins": [...], "actions": [...]}`.
pub fn parse_category_filters(v: &Value) -> Result<Vec<CategoryFilter>> {
    let obj = v.as_object().ok_or_else(|| ModelError::bad("a filter body must be a JSON object"))?;
    let mut out = Vec::new();
    for (member, list) in obj {
        let class = match member.as_str() {
            "kinds" => Class::Kind,
            "mixins" => Class::Mixin,
            "actions" => Class::Action,
            other => {
                return Err(ModelError::bad(format!(
                    "filter member {other:?} is not supported (kinds, mixins, actions)"
                )));
            }
        };
        let list = list.as_array().ok_or_else(|| ModelError::bad(format!("{member} must be an array")))?;
        for (i, f) in list.iter().enumerate() {
            let mut members =
                f.as_object().cloned().ok_or_else(|| ModelError::bad(format!("{member}[{i}] must be an object")))?;
            if let Some(Value::Object(a)) = members.get("attributes") {
                let mut flat = Map::new();
                flatten_defs("", a, &mut flat);
                members.insert("attributes".into(), Value::Object(flat));
            }
            out.push(CategoryFilter { class, members });
        }
    }
    Ok(out)
}

/// The ids of `catalog` that are in `named` or related to one of them, in both directions:
/// what a named category refers to (its parent, the mixins it depends on or applies to, its
/// actions) and what refers to it (sub-kinds, mixins that depend on or apply to it, kinds and
/// mixins offering it as an action). GFD.223 7.1's discovery of a category "and its relatives",
/// asked for with `?related=true`. In catalog order.
pub fn with_relatives(catalog: &Catalog, named: &[String]) -> Vec<String> {
    let referred: Vec<String> = named.iter().filter_map(|id| catalog.get(id)).flat_map(|c| c.references()).collect();
    catalog
        .iter()
        .filter(|cat| {
            let id = cat.id();
            named.contains(&id) || referred.contains(&id) || cat.references().iter().any(|r| named.contains(r))
        })
        .map(|c| c.id())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_category_filter_finds_stop() {
        let c = Catalog::builtin();
        let filters = parse_category_filters(&json!({"actions": [{"attributes": {"method": {
            "mutable": true, "required": false, "type": "string", "pattern": "graceful|acpioff|poweroff"}}}]}))
        .unwrap();
        let hits: Vec<String> = c.iter().filter(|cat| filters.iter().any(|f| f.matches(cat))).map(|c| c.id()).collect();
        assert_eq!(hits, vec!["http://schemas.ogf.org/occi/infrastructure/compute/action#stop".to_string()]);
        let by_term =
            parse_category_filters(&json!({"kinds": [{"term": "compute", "scheme": "http://nomatch#"}]})).unwrap();
        assert!(!c.iter().any(|cat| by_term[0].matches(cat)), "all members must match, not only the first");
    }

    /// A text Category filter names exactly its categories (GFD.185 3.4.1); the relatives are
    /// what `?related=true` adds.
    #[test]
    fn category_filter_is_exact_and_relatives_are_asked_for() {
        let c = Catalog::builtin();
        let compute = "http://schemas.ogf.org/occi/infrastructure#compute".to_string();
        let filter = crate::text::parse_plain(
            "Category: compute; scheme=\"http://schemas.ogf.org/occi/infrastructure#\"; class=\"kind\"\n",
        )
        .unwrap();
        let named = filter.category_filter(&c).unwrap();
        assert_eq!(named, vec![compute.clone()]);
        let related = with_relatives(&c, &named);
        for id in [
            &compute,
            "http://schemas.ogf.org/occi/core#resource",
            "http://schemas.ogf.org/occi/infrastructure/compute/action#start",
        ] {
            assert!(related.iter().any(|r| r == id), "{id} in {related:?}");
        }
        assert!(!related.iter().any(|r| r.ends_with("#storage")), "{related:?}");
        // The wrong class names nothing.
        let wrong = crate::text::parse_plain(
            "Category: compute; scheme=\"http://schemas.ogf.org/occi/infrastructure#\"; class=\"mixin\"\n",
        )
        .unwrap();
        assert!(wrong.category_filter(&c).unwrap().is_empty());
    }

    /// A link end filter matches a local end given as a path or as an absolute URL (as it is
    /// rendered), and an end outside the server as given.
    #[test]
    fn link_end_filters_match_rendered_urls() {
        let mut e = Entity {
            location: "/l/1".into(),
            kind: "k#l".into(),
            mixins: vec![],
            attributes: BTreeMap::new(),
            inapplicable: None,
        };
        e.attributes.insert(ATTR_SOURCE.into(), json!("/compute/a"));
        e.attributes.insert(ATTR_TARGET.into(), json!("http://elsewhere.example/n"));
        let hits = |f: Value| parse_entity_filters(&f).unwrap()[0].matches(&e);
        assert!(hits(json!({"source": "/compute/a"})));
        assert!(hits(json!({"source": "http://example.com/compute/a"})));
        assert!(hits(json!({"attributes": {"occi.core.source": "http://example.com/compute/a"}})));
        assert!(!hits(json!({"source": "http://example.com/compute/b"})));
        assert!(hits(json!({"target": "http://elsewhere.example/n"})));
        assert!(!hits(json!({"target": "/n"})));
    }

    /// Index keys are equal exactly when the filter finds the values equal (scalars).
    #[test]
    fn index_keys_follow_filter_equality() {
        let vals = [
            json!(2),
            json!(2.0),
            json!(-0.0),
            json!(0),
            json!(2.5),
            json!("2"),
            json!(""),
            json!(true),
            json!(false),
            json!(null),
            json!("true"),
            json!("null"),
            json!("a\u{0}b"),
            json!(u64::MAX),
            json!(18446744073709551615.0),
        ];
        for a in &vals {
            for b in &vals {
                let (ka, kb) = (index_key("x", a).unwrap(), index_key("x", b).unwrap());
                assert_eq!(ka == kb, value_eq(a, b), "{a} {b}: {ka} {kb}");
                assert!(!ka.contains('\0'));
            }
        }
        assert_eq!(index_key("x", &json!([1])), None);
        assert_eq!(index_key(ATTR_SOURCE, &json!("/a")), None);
        let long = "é".repeat(300);
        assert!(index_key("x", &json!(long)).unwrap().len() <= 201);
    }

    #[test]
    fn entity_filter_is_a_deep_subset() {
        let f =
            parse_entity_filters(&json!({"resources": [{"attributes": {"occi": {"compute": {"cores": 2}}}}]})).unwrap();
        let mut e = Entity {
            location: "/compute/a".into(),
            kind: "k#c".into(),
            mixins: vec![],
            attributes: BTreeMap::new(),
            inapplicable: None,
        };
        e.attributes.insert("occi.compute.cores".into(), json!(2.0));
        e.attributes.insert("occi.storage.size".into(), json!(5));
        assert!(f[0].matches(&e));
        e.attributes.insert("occi.compute.cores".into(), json!(4));
        assert!(!f[0].matches(&e));
    }
}
