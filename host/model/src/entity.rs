//! OCCI entities (resources and links) as stored, and the client's description of one as parsed
//! from either JSON dialect, before it is checked against the catalog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ModelError, Result, type_name};

pub const CORE: &str = "http://schemas.ogf.org/occi/core#";
pub const ENTITY_KIND: &str = "http://schemas.ogf.org/occi/core#entity";
pub const RESOURCE_KIND: &str = "http://schemas.ogf.org/occi/core#resource";
pub const LINK_KIND: &str = "http://schemas.ogf.org/occi/core#link";

pub const ATTR_ID: &str = "occi.core.id";
pub const ATTR_TITLE: &str = "occi.core.title";
pub const ATTR_SUMMARY: &str = "occi.core.summary";
pub const ATTR_SOURCE: &str = "occi.core.source";
pub const ATTR_TARGET: &str = "occi.core.target";
pub const ATTR_TARGET_KIND: &str = "occi.core.target.kind";

/// Attributes rendered as top-level members rather than inside `attributes`.
pub const TOP_LEVEL_ATTRS: [&str; 6] = [ATTR_ID, ATTR_TITLE, ATTR_SUMMARY, ATTR_SOURCE, ATTR_TARGET, ATTR_TARGET_KIND];

/// A stored entity. Every attribute, `occi.core.*` included, lives in `attributes` under its
/// full dotted name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Server-relative path, e.g. `/compute/3f2a...`.
    pub location: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mixins: Vec<String>,
    pub attributes: BTreeMap<String, Value>,
    /// Which of its kind's actions the handler driving the kind said do *not* apply to the
    /// entity as it was last written (its `actions.applicable` answer, stored so that a read
    /// renders it without calling the handler; empty when the handler has no say). `None`
    /// when no handler drove the kind then: the built-in state machines decide
    /// ([`Catalog::applicable_actions`](crate::Catalog::applicable_actions)). Records written
    /// before this field existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inapplicable: Option<Vec<String>>,
}

impl Entity {
    pub fn id(&self) -> &str {
        self.attributes.get(ATTR_ID).and_then(Value::as_str).unwrap_or("")
    }
    pub fn attr_str(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).and_then(Value::as_str)
    }
    /// For links: the source resource's location.
    pub fn source(&self) -> Option<&str> {
        self.attr_str(ATTR_SOURCE)
    }
    pub fn target(&self) -> Option<&str> {
        self.attr_str(ATTR_TARGET)
    }
}

/// Where a link end points: a location (a server path or an absolute URL) and maybe its kind.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LinkEnd {
    pub location: String,
    pub kind: Option<String>,
}

/// An entity as a client described it: every member optional, attributes still raw JSON
/// (flat or nested) until the catalog knows which attribute names apply.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct EntityInput {
    pub kind: Option<String>,
    pub mixins: Option<Vec<String>>,
    pub id: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub attributes: Map<String, Value>,
    pub source: Option<LinkEnd>,
    pub target: Option<LinkEnd>,
    /// Links created together with a resource (GFD.226 `links`).
    pub links: Vec<EntityInput>,
}

/// Whether `s` holds a control character (Unicode general category Cc: U+0000-U+001F and
/// U+007F-U+009F, so line breaks and tabs included). Such a character has no place in a location
/// or link end, and written into a text rendering it could end a header line early.
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Refuses a location (an entity location, a link source or target) holding a control
/// character. `what` names the value in the error, e.g. `member "target"`.
pub fn check_no_control(what: &str, s: &str) -> Result<()> {
    match s.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(ModelError::bad(format!(
            "{what}: location {s:?} contains control character U+{:04X}; percent-encode it",
            u32::from(c)
        ))),
    }
}

fn opt_string(obj: &Map<String, Value>, member: &str) -> Result<Option<String>> {
    match obj.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ModelError::bad(format!("member {member:?} must be a string, found {}", type_name(other)))),
    }
}

fn link_end(obj: &Map<String, Value>, member: &str) -> Result<Option<LinkEnd>> {
    match obj.get(member) {
        None | Some(Value::Null) => Ok(None),
        // pyOCNI: a plain location string.
        Some(Value::String(s)) => {
            check_no_control(&format!("member {member:?}"), s)?;
            Ok(Some(LinkEnd { location: s.clone(), kind: None }))
        }
        // GFD.226: {"location": ..., "kind": ...}
        Some(Value::Object(o)) => {
            let location = o
                .get("location")
                .and_then(Value::as_str)
                .ok_or_else(|| ModelError::bad(format!("member {member:?} needs a \"location\" string")))?;
            check_no_control(&format!("member {member:?}"), location)?;
            let kind = match o.get("kind") {
                None | Some(Value::Null) => None,
                Some(Value::String(k)) => Some(k.clone()),
                Some(_) => return Err(ModelError::bad(format!("{member}.kind must be a string"))),
            };
            for k in o.keys() {
                if k != "location" && k != "kind" {
                    return Err(ModelError::bad(format!("member {member:?}: unknown member {k:?}")));
                }
            }
            Ok(Some(LinkEnd { location: location.to_string(), kind }))
        }
        Some(other) => Err(ModelError::bad(format!(
            "member {member:?} must be a location string or an object with \"location\", found {}",
            type_name(other)
        ))),
    }
}

/// Parses one entity description (resource or link) in either JSON dialect.
pub fn parse_entity_input(value: &Value) -> Result<EntityInput> {
    let obj = value
        .as_object()
        .ok_or_else(|| ModelError::bad(format!("an entity must be a JSON object, found {}", type_name(value))))?;
    let mut input = EntityInput {
        kind: opt_string(obj, "kind")?,
        id: opt_string(obj, "id")?,
        title: opt_string(obj, "title")?,
        summary: opt_string(obj, "summary")?,
        source: link_end(obj, "source")?,
        target: link_end(obj, "target")?,
        ..Default::default()
    };
    for (member, v) in obj {
        match member.as_str() {
            "kind" | "id" | "title" | "summary" | "source" | "target" => {}
            // pyOCNI renders a link's target kind beside its target location.
            "target_kind" => {
                let kind = opt_string(obj, "target_kind")?;
                match &mut input.target {
                    Some(t) if t.kind.is_none() => t.kind = kind,
                    Some(t) if t.kind != kind && kind.is_some() => {
                        return Err(ModelError::bad("member \"target_kind\" differs from target.kind"));
                    }
                    Some(_) => {}
                    None => return Err(ModelError::bad("member \"target_kind\" needs a \"target\"")),
                }
            }
            "mixins" => {
                let list = v
                    .as_array()
                    .ok_or_else(|| ModelError::bad("member \"mixins\" must be an array of category ids"))?;
                let mut mixins = Vec::with_capacity(list.len());
                for m in list {
                    let s = m
                        .as_str()
                        .ok_or_else(|| ModelError::bad(format!("mixins: {m} is not a category id string")))?;
                    mixins.push(s.to_string());
                }
                input.mixins = Some(mixins);
            }
            "attributes" => match v {
                Value::Object(a) => input.attributes = a.clone(),
                Value::Null => {}
                other => {
                    return Err(ModelError::bad(format!(
                        "member \"attributes\" must be an object, found {}",
                        type_name(other)
                    )));
                }
            },
            // Actions are derived from the kind and mixins; what a client sends is not stored.
            "actions" => {
                if !v.is_array() {
                    return Err(ModelError::bad("member \"actions\" must be an array"));
                }
            }
            "links" => {
                let list = v.as_array().ok_or_else(|| ModelError::bad("member \"links\" must be an array of links"))?;
                for (i, l) in list.iter().enumerate() {
                    input.links.push(parse_entity_input(l).map_err(|e| e.at(format!("links[{i}]")))?);
                }
            }
            other => return Err(ModelError::bad(format!("member {other:?} is not allowed in an entity"))),
        }
    }
    Ok(input)
}

/// A request body naming entities: `{"resources": [...], "links": [...]}` (both dialects), or a
/// single resource or link object (GFD.226 entity instance rendering).
pub fn parse_entity_collection(value: &Value) -> Result<Vec<EntityInput>> {
    let obj = value.as_object().ok_or_else(|| ModelError::bad("the body must be a JSON object"))?;
    // A single entity (GFD.226 instance rendering, possibly partial for an update).
    if obj.contains_key("kind") || (!obj.contains_key("resources") && !obj.contains_key("links")) {
        return Ok(vec![parse_entity_input(value)?]);
    }
    let mut out = Vec::new();
    for (member, v) in obj {
        match member.as_str() {
            "resources" | "links" => {
                let list =
                    v.as_array().ok_or_else(|| ModelError::bad(format!("member {member:?} must be an array")))?;
                for (i, e) in list.iter().enumerate() {
                    out.push(parse_entity_input(e).map_err(|e| e.at(format!("{member}[{i}]")))?);
                }
            }
            other => {
                return Err(ModelError::bad(format!(
                    "member {other:?} is not allowed here: expected \"resources\" and/or \"links\""
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(ModelError::bad("the body names no entity: give \"resources\" or \"links\""));
    }
    Ok(out)
}

/// Turns a location as a client may write it (absolute URL or server path) into a server path.
pub fn location_path(loc: &str) -> &str {
    if let Some(rest) = loc.strip_prefix("http://").or_else(|| loc.strip_prefix("https://")) {
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    } else {
        loc
    }
}

/// Parses a list of entity locations: `{"X-OCCI-Location": [...]}` (pyOCNI), `{"locations": [...]}`
/// or a bare JSON array of strings (GFD.226 locations). Returns server paths.
pub fn parse_locations(value: &Value) -> Result<Vec<String>> {
    let list = match value {
        Value::Array(a) => a,
        Value::Object(o) => {
            let mut found = None;
            for (k, v) in o {
                if k.eq_ignore_ascii_case("X-OCCI-Location") || k == "locations" {
                    found = Some(v);
                } else {
                    return Err(ModelError::bad(format!(
                        "member {k:?} is not allowed here: expected \"X-OCCI-Location\" (a list of entity locations)"
                    )));
                }
            }
            found
                .and_then(Value::as_array)
                .ok_or_else(|| ModelError::bad("expected \"X-OCCI-Location\": an array of entity locations"))?
        }
        _ => return Err(ModelError::bad("expected a list of entity locations")),
    };
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let s = v.as_str().ok_or_else(|| ModelError::bad(format!("location {v} is not a string")))?;
            let s = s.trim();
            check_no_control(&format!("X-OCCI-Location[{i}]"), s)?;
            Ok(location_path(s).to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Records written before `inapplicable` existed read as `None`, and `None` is not
    /// written: stored records of entities no handler drives keep their old shape.
    #[test]
    fn stored_records_without_inapplicable_read_fine() {
        let old = r#"{"location":"/compute/a","kind":"k#c","attributes":{"occi.core.id":"a"}}"#;
        let e: Entity = serde_json::from_str(old).unwrap();
        assert_eq!(e.inapplicable, None);
        assert_eq!(serde_json::to_string(&e).unwrap(), old);
        let driven = Entity { inapplicable: Some(vec!["s#start".into()]), ..e };
        let back: Entity = serde_json::from_str(&serde_json::to_string(&driven).unwrap()).unwrap();
        assert_eq!(back, driven);
    }

    #[test]
    fn both_link_end_forms() {
        let a = parse_entity_input(
            &json!({"kind": "k#l", "source": "/compute/1", "target": {"location": "/network/2", "kind": "k#n"}}),
        )
        .unwrap();
        assert_eq!(a.source.unwrap().location, "/compute/1");
        assert_eq!(a.target.unwrap().kind.as_deref(), Some("k#n"));
    }

    #[test]
    fn locations_bodies() {
        assert_eq!(
            parse_locations(&json!({"X-OCCI-Location": ["http://localhost:8090/compute/vm1", "/compute/vm2"]}))
                .unwrap(),
            vec!["/compute/vm1", "/compute/vm2"]
        );
        assert_eq!(parse_locations(&json!(["/a/b"])).unwrap(), vec!["/a/b"]);
        assert!(parse_locations(&json!({"foo": []})).is_err());
    }

    #[test]
    fn control_characters_in_link_ends_are_refused() {
        assert!(!has_control("/compute/1") && !has_control("http://h.example/a b/ü"));
        for bad in [
            "/n\r\nX-OCCI-Attribute: occi.compute.state=\"hacked\"",
            "/n\n",
            "/n\t1",
            "/n\u{0}",
            "/n\u{7f}",
            "/n\u{85}",
        ] {
            assert!(has_control(bad), "{bad:?}");
            for member in ["source", "target"] {
                for end in [json!(bad), json!({"location": bad, "kind": "k#n"})] {
                    let e = parse_entity_input(&json!({"kind": "k#l", member: end})).unwrap_err();
                    assert!(e.message.contains(&format!("member \"{member}\"")), "{e}");
                    assert!(e.message.contains("control character"), "{e}");
                    assert!(!has_control(&e.message), "the error itself is safe to render: {e:?}");
                }
            }
            // Inline links of a resource name their place.
            let e = parse_entity_collection(
                &json!({"resources": [{"kind": "k#r", "links": [{"kind": "k#l", "target": bad}]}]}),
            )
            .unwrap_err();
            assert!(e.message.starts_with("resources[0]: links[0]: member \"target\""), "{e}");
            let e = parse_locations(&json!({"X-OCCI-Location": ["/a/1", format!("{bad}/x")]})).unwrap_err();
            assert!(e.message.starts_with("X-OCCI-Location[1]"), "{e}");
        }
        // Surrounding white space is trimmed, as before, and not a control character inside.
        assert_eq!(parse_locations(&json!(["\t/a/1\n"])).unwrap(), vec!["/a/1"]);
    }

    #[test]
    fn unknown_members_are_named() {
        let e = parse_entity_input(&json!({"kind": "a#b", "colour": 1})).unwrap_err();
        assert!(e.message.contains("colour"));
        let e = parse_entity_collection(&json!({"resources": [{"kind": 3}]})).unwrap_err();
        assert!(e.message.starts_with("resources[0]"), "{e}");
    }
}
