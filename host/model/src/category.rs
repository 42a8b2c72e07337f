//! OCCI categories (kinds, mixins, actions): the types, the parser for definitions sent by clients
//! (OCCI 1.2 JSON and the pyOCNI nested dialect), and checks of identifiers. Their attribute
//! definitions are in [`crate::attribute`].

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ModelError, Result};

// Attribute definitions and their helpers lived here before they got a module of their own;
// these paths stay for code written against them.
pub use crate::attribute::{AttrType, AttributeDef, check_attribute_name, compile_pattern, parse_attribute_defs};
pub use crate::error::type_name;

/// The three classes of category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Kind,
    Mixin,
    Action,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Kind => "kind",
            Class::Mixin => "mixin",
            Class::Action => "action",
        }
    }
    /// The member name of a category collection of this class (`kinds`, `mixins`, `actions`).
    pub fn plural(self) -> &'static str {
        match self {
            Class::Kind => "kinds",
            Class::Mixin => "mixins",
            Class::Action => "actions",
        }
    }
    pub const ALL: [Class; 3] = [Class::Kind, Class::Mixin, Class::Action];
}

/// A kind, mixin or action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub class: Class,
    pub term: String,
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeDef>,
    /// Action ids applicable to entities of this kind or mixin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Kinds only: the parent kind id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Mixins only: mixins this one depends on (their attributes come along).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<String>,
    /// Mixins only: kinds this mixin may be applied to (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applies: Vec<String>,
    /// Kinds and mixins: the path of the collection, starting and ending with `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Built-in categories cannot be changed or deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub builtin: bool,
}

impl Category {
    /// scheme + term, the category's identifier.
    pub fn id(&self) -> String {
        format!("{}{}", self.scheme, self.term)
    }
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes.iter().find(|a| a.name == name)
    }
    /// The names of the attributes this definition marks `"indexed": true`.
    pub fn indexed_attributes(&self) -> impl Iterator<Item = &str> {
        self.attributes.iter().filter(|a| a.is_indexed()).map(|a| a.name.as_str())
    }
}

static TERM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$").unwrap());
static SCHEME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s#<>]*#$").unwrap());
static LOCATION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^/([A-Za-z0-9._~!$&'()*+,;=:@%\-]+/)+$").unwrap());

pub fn check_term(term: &str) -> Result<()> {
    if TERM.is_match(term) {
        Ok(())
    } else {
        Err(ModelError::bad(format!(
            "term {term:?} is not valid: letters, digits, '_', '-', '.' only, starting with a letter or digit"
        )))
    }
}

pub fn check_scheme(scheme: &str) -> Result<()> {
    if SCHEME.is_match(scheme) {
        Ok(())
    } else {
        Err(ModelError::bad(format!(
            "scheme {scheme:?} is not a valid URI ending in '#' (e.g. \"http://example.com/occi#\")"
        )))
    }
}

/// A category location: an absolute path that starts and ends with `/`, not under the query
/// interface.
pub fn check_location(location: &str) -> Result<()> {
    if !LOCATION.is_match(location) {
        return Err(ModelError::bad(format!(
            "location {location:?} is not valid: a path such as \"/compute/\" (starting and ending with '/')"
        )));
    }
    if location.starts_with("/-/") || location.starts_with("/.well-known/") {
        return Err(ModelError::bad(format!("location {location:?} is reserved for the query interface")));
    }
    Ok(())
}

/// Splits a category id `scheme#term` into (scheme, term).
pub fn split_id(id: &str) -> Result<(&str, &str)> {
    match id.rfind('#') {
        Some(i) if i + 1 < id.len() => {
            let (scheme, term) = id.split_at(i + 1);
            check_scheme(scheme)?;
            check_term(term)?;
            Ok((scheme, term))
        }
        _ => Err(ModelError::bad(format!("{id:?} is not a category identifier (scheme#term)"))),
    }
}

fn string_list(v: &Value, what: &str) -> Result<Vec<String>> {
    let list = v.as_array().ok_or_else(|| ModelError::bad(format!("{what} must be an array of strings")))?;
    list.iter()
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| ModelError::bad(format!("{what} must be an array of strings, found {}", type_name(x))))
        })
        .collect()
}

/// Only term and scheme: enough to name a category (e.g. in a DELETE body).
pub fn parse_category_ref(value: &Value) -> Result<String> {
    let obj = value.as_object().ok_or_else(|| ModelError::bad("a category must be a JSON object"))?;
    let term = obj
        .get("term")
        .and_then(Value::as_str)
        .ok_or_else(|| ModelError::bad("member \"term\" (a string) is missing"))?;
    let scheme = obj
        .get("scheme")
        .and_then(Value::as_str)
        .ok_or_else(|| ModelError::bad("member \"scheme\" (a string) is missing"))?;
    check_scheme(scheme)?;
    check_term(term)?;
    Ok(format!("{scheme}{term}"))
}

/// Parses a category definition sent by a client, in either JSON dialect. Checks its shape
/// only; references to other categories are checked by the [`crate::Catalog`].
pub fn parse_category(class: Class, value: &Value) -> Result<Category> {
    let obj = value.as_object().ok_or_else(|| ModelError::bad("a category must be a JSON object"))?;
    let id = parse_category_ref(value)?;
    let (scheme, term) = id.split_at(id.rfind('#').unwrap() + 1);
    let mut cat = Category {
        class,
        term: term.to_string(),
        scheme: scheme.to_string(),
        title: None,
        attributes: Vec::new(),
        actions: Vec::new(),
        parent: None,
        depends: Vec::new(),
        applies: Vec::new(),
        location: None,
        builtin: false,
    };
    let mut related = Vec::new();
    for (member, v) in obj {
        match (member.as_str(), class) {
            ("term" | "scheme", _) => {}
            ("class", _) => {
                if v.as_str() != Some(class.as_str()) {
                    return Err(ModelError::bad(format!(
                        "member \"class\" says {v}, but the category is listed under {:?}",
                        class.plural()
                    )));
                }
            }
            ("title", _) => match v {
                Value::String(s) => cat.title = Some(s.clone()),
                Value::Null => {}
                _ => return Err(ModelError::bad("member \"title\" must be a string")),
            },
            ("attributes", _) => cat.attributes = parse_attribute_defs(v)?,
            ("actions", Class::Kind | Class::Mixin) => {
                cat.actions = string_list(v, "actions")?;
                for a in &cat.actions {
                    split_id(a).map_err(|e| e.at("actions"))?;
                }
            }
            ("location", Class::Kind | Class::Mixin) => {
                let loc = v.as_str().ok_or_else(|| ModelError::bad("member \"location\" must be a string"))?;
                check_location(loc)?;
                cat.location = Some(loc.to_string());
            }
            ("parent", Class::Kind) => {
                let p = v.as_str().ok_or_else(|| ModelError::bad("member \"parent\" must be a string"))?;
                split_id(p).map_err(|e| e.at("parent"))?;
                cat.parent = Some(p.to_string());
            }
            ("related", Class::Kind | Class::Mixin) => {
                related = string_list(v, "related")?;
                for r in &related {
                    split_id(r).map_err(|e| e.at("related"))?;
                }
            }
            ("depends", Class::Mixin) => {
                cat.depends = string_list(v, "depends")?;
                for r in &cat.depends {
                    split_id(r).map_err(|e| e.at("depends"))?;
                }
            }
            ("applies", Class::Mixin) => {
                cat.applies = string_list(v, "applies")?;
                for r in &cat.applies {
                    split_id(r).map_err(|e| e.at("applies"))?;
                }
            }
            (other, _) => {
                return Err(ModelError::bad(format!(
                    "member {other:?} is not allowed in a {} definition",
                    class.as_str()
                )));
            }
        }
    }
    // pyOCNI's `related`: a kind's parent, a mixin's dependencies.
    match class {
        Class::Kind if !related.is_empty() => {
            if related.len() > 1 {
                return Err(ModelError::bad("a kind has one parent: \"related\" must name at most one kind"));
            }
            if cat.parent.is_some() {
                return Err(ModelError::bad("give either \"parent\" or \"related\", not both"));
            }
            cat.parent = related.pop();
        }
        Class::Mixin => {
            for r in related {
                if !cat.depends.contains(&r) {
                    cat.depends.push(r);
                }
            }
        }
        _ => {}
    }
    if class != Class::Action && cat.location.is_none() {
        return Err(ModelError::bad(format!("a {} needs a \"location\" such as \"/{}/\"", class.as_str(), cat.term)));
    }
    Ok(cat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheme_must_be_uri_ending_in_hash() {
        assert!(check_scheme("http://schemas.ogf.org/occi/infrastructure#").is_ok());
        assert!(check_scheme("http: //schemas.ogf.org/occi#").is_err());
        assert!(check_scheme("http://schemas.ogf.org/occi").is_err());
        assert!(check_scheme("#").is_err());
    }

    #[test]
    fn location_shape() {
        assert!(check_location("/compute/").is_ok());
        assert!(check_location("/template/resource/medium/").is_ok());
        assert!(check_location("/compute").is_err());
        assert!(check_location("compute/").is_err());
        assert!(check_location("/-/x/").is_err());
        assert!(check_location("//").is_err());
    }

    /// `"indexed": true` marks an attribute in either dialect; the pyOCNI rendering says so, the
    /// OCCI 1.2 one cannot (its schema allows no other member); the built-ins mark theirs.
    #[test]
    fn attributes_are_marked_indexed_in_both_dialects() {
        use crate::render::{Dialect, render_category};
        for attrs in [
            json!({"my.colour": {"type": "string", "indexed": true}, "my.size": {"type": "number"}}),
            json!({"my": {"colour": {"type": "string", "indexed": true}, "size": {"type": "number"}}}),
        ] {
            let m = parse_category(
                Class::Mixin,
                &json!({"term": "m", "scheme": "http://e.com/x#", "location": "/m/", "attributes": attrs}),
            )
            .unwrap();
            assert_eq!(m.indexed_attributes().collect::<Vec<_>>(), ["my.colour"]);
            let py = render_category(&m, Dialect::Pyocni).to_string();
            assert!(py.contains("\"indexed\":true"), "{py}");
            assert!(!render_category(&m, Dialect::Occi12).to_string().contains("indexed"));
        }
        let bad = parse_category(
            Class::Mixin,
            &json!({"term": "m", "scheme": "http://e.com/x#", "location": "/m/",
                "attributes": {"my.colour": {"indexed": "yes"}}}),
        );
        assert!(bad.unwrap_err().to_string().contains("indexed must be true or false"));
        let builtin: Vec<&str> = crate::catalog::builtin_indexed_attributes().iter().map(String::as_str).collect();
        assert_eq!(
            builtin,
            [
                "occi.compute.hostname",
                "occi.compute.state",
                "occi.core.title",
                "occi.network.state",
                "occi.networkinterface.state",
                "occi.storage.state",
                "occi.storagelink.state"
            ]
        );
    }

    #[test]
    fn kind_related_becomes_parent_and_mixin_related_depends() {
        let k = parse_category(
            Class::Kind,
            &json!({"term": "vm", "scheme": "http://e.com/x#", "related": ["http://schemas.ogf.org/occi/core#resource"], "location": "/vm/"}),
        )
        .unwrap();
        assert_eq!(k.parent.as_deref(), Some("http://schemas.ogf.org/occi/core#resource"));
        let m = parse_category(
            Class::Mixin,
            &json!({"term": "m", "scheme": "http://e.com/x#", "related": ["http://e.com/x#base"], "location": "/m/"}),
        )
        .unwrap();
        assert_eq!(m.depends, vec!["http://e.com/x#base".to_string()]);
    }

    #[test]
    fn errors_name_the_member() {
        let e = parse_category(
            Class::Kind,
            &json!({"term": "vm", "scheme": "http://e.com/x#", "location": "/vm/", "colour": 1}),
        )
        .unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
        let e = parse_category(Class::Kind, &json!({"term": "vm", "scheme": "http://e.com/x#"})).unwrap_err();
        assert!(e.message.contains("location"), "{e}");
        let e = parse_category(
            Class::Mixin,
            &json!({"term": "m", "scheme": "http://e.com/x#", "location": "/m/", "attributes": {"a.b": {"type": "string", "pattern": "("}}}),
        )
        .unwrap_err();
        assert!(e.message.contains("a.b") && e.message.contains("pattern"), "{e}");
        let e = parse_category(
            Class::Mixin,
            &json!({"term": "m", "scheme": "http://e.com/x#", "location": "/m/", "attributes": {"a.b": {"type": "integer", "default": "x"}}}),
        )
        .unwrap_err();
        assert!(e.message.contains("default"), "{e}");
    }

    /// A pattern is matched against the whole value: one that closes the anchoring group
    /// itself (`a)|(?:.*` would make `^(?:a)|(?:.*)$`, matching anything) is refused.
    #[test]
    fn pattern_cannot_escape_its_anchors() {
        for re in ["a)|(?:.*", "a)|.*|(?:b", ")|(", "x)|(?:"] {
            assert!(compile_pattern(re).is_err(), "{re:?} was accepted");
            let e = parse_category(
                Class::Mixin,
                &json!({"term": "m", "scheme": "http://e.com/x#", "location": "/m/", "attributes": {"a.b": {"type": "string", "pattern": re}}}),
            )
            .unwrap_err();
            assert!(e.message.contains("a.b") && e.message.contains("not a valid regular expression"), "{e}");
            let e = parse_category(
                Class::Mixin,
                &json!({"term": "m", "scheme": "http://e.com/x#", "location": "/m/", "attributes": {"a.b": {"type": "string", "pattern": {"type": "string", "pattern": re}}}}),
            )
            .unwrap_err();
            assert!(e.message.contains("a.b") && e.message.contains("pattern"), "{e}");
        }
        let ab = compile_pattern("ab").unwrap();
        assert!(ab.is_match("ab"));
        assert!(!ab.is_match("xaby") && !ab.is_match("xab") && !ab.is_match("aby"));
        let alt = compile_pattern("a|b").unwrap();
        assert!(alt.is_match("a") && alt.is_match("b"));
        assert!(!alt.is_match("ab") && !alt.is_match("xa") && !alt.is_match("bx"));
        // Groups and flags of the pattern's own stay inside it.
        let grouped = compile_pattern("(a)|(?i:b)").unwrap();
        assert!(grouped.is_match("B") && !grouped.is_match("ab") && !grouped.is_match("Bx"));
        let flagged = compile_pattern("(?m)a").unwrap();
        assert!(!flagged.is_match("a\nb") && !flagged.is_match("b\na"));
    }
}
