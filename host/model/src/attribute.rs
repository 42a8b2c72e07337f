//! Attribute definitions: their types, the parser for definitions sent by clients (OCCI 1.2 JSON
//! and the pyOCNI nested dialect, flat or nested), the compiling of their patterns, and the checks
//! of one attribute value against its definition (type, pattern, range, enumeration).
//!
//! This module knows nothing of categories or catalogs: `category` builds on it, `catalog` on both.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{ModelError, Result, type_name};

/// The value types an attribute can declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttrType {
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Number => "number",
            AttrType::Integer => "integer",
            AttrType::Boolean => "boolean",
            AttrType::Array => "array",
            AttrType::Object => "object",
        }
    }
    fn parse(s: &str) -> Option<AttrType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "string" | "enum" => AttrType::String,
            "number" | "float" | "double" => AttrType::Number,
            "integer" | "int" => AttrType::Integer,
            "boolean" | "bool" => AttrType::Boolean,
            "array" | "list" => AttrType::Array,
            "object" | "hash" | "map" => AttrType::Object,
            _ => return None,
        })
    }
}

/// One attribute definition. Members a client left out stay `None`, so that a mixin that
/// redefines an attribute (e.g. only to give it a default) overrides just what it states.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct AttributeDef {
    pub name: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<AttrType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A regular expression the whole string value must match, or a JSON-schema object
    /// (of which `pattern`, `enum`, `minimum`, `maximum`, `minLength`, `maxLength` are enforced),
    /// compiled with the definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub enumeration: Option<Vec<Value>>,
    /// Numbers: lowest value. Strings: shortest length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Numbers: highest value. Strings: longest length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `"indexed": true`: the store keeps an index of this attribute's values (an ocni
    /// extension; equality filters on it then cost what they find, not the collection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed: Option<bool>,
}

impl AttributeDef {
    pub fn ty(&self) -> AttrType {
        self.ty.unwrap_or(AttrType::String)
    }
    /// GFD.226: `mutable` defaults to false.
    pub fn is_mutable(&self) -> bool {
        self.mutable.unwrap_or(false)
    }
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(false)
    }
    pub fn is_indexed(&self) -> bool {
        self.indexed.unwrap_or(false)
    }
    /// Lays `over` on top of `self`: every member `over` states wins.
    pub fn overlay(&mut self, over: &AttributeDef) {
        macro_rules! take {
            ($($f:ident),*) => {$( if over.$f.is_some() { self.$f = over.$f.clone(); } )*};
        }
        take!(ty, mutable, required, default, pattern, enumeration, minimum, maximum, description, indexed);
    }
}

/// An attribute's `pattern` member as it was written (a regular expression string, or a
/// JSON-schema object whose `pattern` member is one) together with that regular expression
/// compiled by [`compile_pattern`], once, when the definition is parsed or read back from
/// storage. It (de)serialises as the member it was read from, and compares and prints as it.
#[derive(Clone)]
pub struct Pattern {
    source: Value,
    /// `None` when the source holds no regular expression (e.g. a schema with bounds only).
    compiled: Option<std::result::Result<Regex, regex::Error>>,
}

impl Pattern {
    /// Compiles the regular expression in `source`. One that does not compile is kept with its
    /// error, so that stored data is read as it is; [`check_value`] reports it. Definitions
    /// sent by clients are refused instead ([`parse_attribute_defs`]).
    pub fn new(source: Value) -> Pattern {
        let compiled = regex_in(&source).map(compile_pattern);
        Pattern { source, compiled }
    }
    /// The member as it was written.
    pub fn source(&self) -> &Value {
        &self.source
    }
    /// The regular expression: the source string, or the schema's `pattern` member.
    pub fn regex_source(&self) -> Option<&str> {
        regex_in(&self.source)
    }
    /// The schema, when the source is a JSON-schema object.
    pub fn schema(&self) -> Option<&Map<String, Value>> {
        self.source.as_object()
    }
    /// The compiled (anchored) regular expression, or why it does not compile; `None` when
    /// there is no regular expression.
    pub fn compiled(&self) -> Option<std::result::Result<&Regex, &regex::Error>> {
        self.compiled.as_ref().map(|r| r.as_ref())
    }
    /// Returns why the string `value` does not match the regular expression (other values are
    /// not matched).
    fn check_regex(&self, value: &Value) -> Result<(), String> {
        let (Some(s), Some(re), Some(compiled)) = (value.as_str(), self.regex_source(), self.compiled()) else {
            return Ok(());
        };
        // Patterns sent by clients were refused unless they compiled; a failure here means a
        // stored definition is broken, which we report rather than ignore.
        let compiled = compiled.map_err(|e| format!("pattern: {re:?} does not compile: {e}"))?;
        if compiled.is_match(s) { Ok(()) } else { Err(format!("pattern: {s:?} does not match {re:?}")) }
    }
}

fn regex_in(source: &Value) -> Option<&str> {
    match source {
        Value::String(re) => Some(re),
        Value::Object(schema) => schema.get("pattern").and_then(Value::as_str),
        _ => None,
    }
}

impl From<Value> for Pattern {
    fn from(source: Value) -> Pattern {
        Pattern::new(source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Pattern, D::Error> {
        Value::deserialize(deserializer).map(Pattern::new)
    }
}

static ATTR_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$").unwrap());

pub fn check_attribute_name(name: &str) -> Result<()> {
    if ATTR_NAME.is_match(name) {
        Ok(())
    } else {
        Err(ModelError::bad(format!(
            "attribute name {name:?} is not valid: dot-separated words of letters, digits, '_' or '-'"
        )))
    }
}

const DEF_MEMBERS: [&str; 11] = [
    "type",
    "mutable",
    "required",
    "default",
    "pattern",
    "enum",
    "minimum",
    "maximum",
    "description",
    "title",
    "indexed",
];

/// Is this JSON object an attribute definition (rather than a level of the pyOCNI nesting)?
/// A definition has no object-valued member except `pattern` and `default`.
pub(crate) fn is_definition(obj: &Map<String, Value>) -> bool {
    obj.iter().all(|(k, v)| !v.is_object() || k == "pattern" || k == "default")
}

/// Reads attribute definitions in either dialect: flat (`{"occi.compute.cores": {...}}`, GFD.226)
/// or nested (`{"occi": {"compute": {"cores": {...}}}}`, pyOCNI), or a mix.
pub fn parse_attribute_defs(value: &Value) -> Result<Vec<AttributeDef>> {
    let obj = value
        .as_object()
        .ok_or_else(|| ModelError::bad("attributes must be a JSON object of attribute definitions"))?;
    let mut out = Vec::new();
    collect_defs("", obj, &mut out)?;
    let mut seen = std::collections::HashSet::new();
    for d in &out {
        if !seen.insert(d.name.clone()) {
            return Err(ModelError::bad(format!("attribute {:?} is defined twice", d.name)));
        }
    }
    Ok(out)
}

fn collect_defs(prefix: &str, obj: &Map<String, Value>, out: &mut Vec<AttributeDef>) -> Result<()> {
    for (key, value) in obj {
        let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let Some(inner) = value.as_object() else {
            return Err(ModelError::bad(format!(
                "attribute definition {name:?} must be a JSON object, found {}",
                type_name(value)
            )));
        };
        if is_definition(inner) {
            check_attribute_name(&name)?;
            out.push(parse_def(&name, inner)?);
        } else {
            collect_defs(&name, inner, out)?;
        }
    }
    Ok(())
}

fn number_member(name: &str, member: &str, v: &Value) -> Result<f64> {
    match v {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        // pyOCNI wrote bounds as strings ("minimum": "1").
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| ModelError::bad(format!("attribute {name:?}: {member} must be a number, found {s:?}"))),
        other => {
            Err(ModelError::bad(format!("attribute {name:?}: {member} must be a number, found {}", type_name(other))))
        }
    }
}

fn parse_def(name: &str, obj: &Map<String, Value>) -> Result<AttributeDef> {
    let mut def = AttributeDef { name: name.to_string(), ..Default::default() };
    for (member, v) in obj {
        let bad = |what: &str| {
            ModelError::bad(format!("attribute {name:?}: {member} must be {what}, found {}", type_name(v)))
        };
        match member.as_str() {
            "type" => {
                let s = v.as_str().ok_or_else(|| bad("a string"))?;
                def.ty = Some(AttrType::parse(s).ok_or_else(|| {
                    ModelError::bad(format!(
                        "attribute {name:?}: unknown type {s:?} (string, number, integer, boolean, array, object)"
                    ))
                })?);
            }
            "mutable" => def.mutable = Some(v.as_bool().ok_or_else(|| bad("true or false"))?),
            "required" => def.required = Some(v.as_bool().ok_or_else(|| bad("true or false"))?),
            "indexed" => def.indexed = Some(v.as_bool().ok_or_else(|| bad("true or false"))?),
            "default" => def.default = Some(v.clone()),
            "pattern" => {
                if !(v.is_string() || v.is_object()) {
                    return Err(bad("a regular expression string or a JSON-schema object"));
                }
                let pattern = Pattern::new(v.clone());
                if let (Some(re), Some(Err(e))) = (pattern.regex_source(), pattern.compiled()) {
                    return Err(ModelError::bad(format!(
                        "attribute {name:?}: pattern {re:?} is not a valid regular expression: {e}"
                    )));
                }
                def.pattern = Some(pattern);
            }
            "enum" => {
                let list = v.as_array().ok_or_else(|| bad("an array"))?;
                if list.is_empty() {
                    return Err(bad("a non-empty array"));
                }
                def.enumeration = Some(list.clone());
            }
            "minimum" => def.minimum = Some(number_member(name, member, v)?),
            "maximum" => def.maximum = Some(number_member(name, member, v)?),
            "description" | "title" => def.description = Some(v.as_str().ok_or_else(|| bad("a string"))?.to_string()),
            other => {
                return Err(ModelError::bad(format!(
                    "attribute {name:?}: unknown member {other:?} (allowed: {})",
                    DEF_MEMBERS.join(", ")
                )));
            }
        }
    }
    if let (Some(min), Some(max)) = (def.minimum, def.maximum)
        && min > max
    {
        return Err(ModelError::bad(format!("attribute {name:?}: minimum {min} is above maximum {max}")));
    }
    if let Some(default) = &def.default {
        check_value(&def, default).map_err(|e| {
            ModelError::bad(format!("attribute {name:?}: default does not satisfy the definition: {e}"))
        })?;
    }
    Ok(def)
}

/// Compiles a pattern so that it must match the whole value.
///
/// The pattern is first compiled on its own: only a complete expression may be wrapped in the
/// anchors, or one that closes the wrapping group itself (`a)|(?:.*` makes `^(?:a)|(?:.*)$`)
/// would escape them and match anything.
pub fn compile_pattern(re: &str) -> std::result::Result<Regex, regex::Error> {
    #[cfg(test)]
    COMPILES.with(|n| n.set(n.get() + 1));
    let build = |re: &str| regex::RegexBuilder::new(re).size_limit(1 << 20).build();
    build(re)?;
    build(&format!("^(?:{re})$"))
}

#[cfg(test)]
thread_local! {
    static COMPILES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many patterns this thread compiled.
#[cfg(test)]
pub(crate) fn compiles() -> usize {
    COMPILES.with(std::cell::Cell::get)
}

// Checks of one value against its definition.

/// Returns why `value` does not satisfy `def`, naming the rule that failed.
pub fn check_value(def: &AttributeDef, value: &Value) -> Result<(), String> {
    let ty = def.ty();
    let type_ok = match ty {
        AttrType::String => value.is_string(),
        AttrType::Number => value.is_number(),
        AttrType::Integer => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        AttrType::Boolean => value.is_boolean(),
        AttrType::Array => value.is_array(),
        AttrType::Object => value.is_object(),
    };
    if !type_ok {
        return Err(format!("type: expected {}, found {}", ty.as_str(), type_name(value)));
    }
    if let Some(values) = &def.enumeration
        && !values.contains(value)
    {
        return Err(format!("enum: {value} is not one of {}", Value::Array(values.clone())));
    }
    range(def.minimum, def.maximum, value)?;
    if let Some(pattern) = &def.pattern {
        pattern.check_regex(value)?;
        if let Some(schema) = pattern.schema() {
            if let Some(Value::Array(values)) = schema.get("enum")
                && !values.contains(value)
            {
                return Err(format!("enum: {value} is not one of {}", Value::Array(values.clone())));
            }
            let num = |k: &str| schema.get(k).and_then(Value::as_f64);
            if value.is_number() {
                range(num("minimum"), num("maximum"), value)?;
            }
            if value.is_string() {
                range(num("minLength"), num("maxLength"), value)?;
            }
        }
    }
    Ok(())
}

/// Numbers: value bounds. Strings: length bounds (pyOCNI's hostname had minimum 1, maximum 255).
fn range(min: Option<f64>, max: Option<f64>, value: &Value) -> Result<(), String> {
    let (measure, what) = match value {
        Value::Number(n) => (n.as_f64().unwrap_or(0.0), "value"),
        Value::String(s) => (s.chars().count() as f64, "length"),
        _ => return Ok(()),
    };
    if let Some(min) = min
        && measure < min
    {
        return Err(format!("minimum: {what} {measure} is below {min}"));
    }
    if let Some(max) = max
        && measure > max
    {
        return Err(format!("maximum: {what} {measure} is above {max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn def(ty: AttrType) -> AttributeDef {
        AttributeDef { name: "a".into(), ty: Some(ty), ..Default::default() }
    }

    #[test]
    fn types() {
        assert!(check_value(&def(AttrType::String), &json!("x")).is_ok());
        assert!(check_value(&def(AttrType::String), &json!(1)).unwrap_err().starts_with("type"));
        assert!(check_value(&def(AttrType::Integer), &json!(2)).is_ok());
        assert!(check_value(&def(AttrType::Integer), &json!(2.5)).is_err());
        assert!(check_value(&def(AttrType::Number), &json!(2.5)).is_ok());
        assert!(check_value(&def(AttrType::Boolean), &json!("true")).is_err());
        assert!(check_value(&def(AttrType::Array), &json!([1])).is_ok());
        assert!(check_value(&def(AttrType::Object), &json!({"k": 1})).is_ok());
    }

    #[test]
    fn pattern_matches_whole_value() {
        let d = AttributeDef { pattern: Some(Pattern::new(json!("inactive|active"))), ..def(AttrType::String) };
        assert!(check_value(&d, &json!("active")).is_ok());
        assert!(check_value(&d, &json!("reactive")).unwrap_err().starts_with("pattern"));
        let schema = AttributeDef {
            pattern: Some(Pattern::new(json!({"type": "string", "pattern": "\\S+"}))),
            ..def(AttrType::String)
        };
        assert!(check_value(&schema, &json!("a b")).is_err());
    }

    #[test]
    fn enum_and_ranges() {
        let d = AttributeDef { enumeration: Some(vec![json!("x86"), json!("x64")]), ..def(AttrType::String) };
        assert!(check_value(&d, &json!("arm")).unwrap_err().starts_with("enum"));
        let n = AttributeDef { minimum: Some(1.0), maximum: Some(8.0), ..def(AttrType::Integer) };
        assert!(check_value(&n, &json!(0)).unwrap_err().starts_with("minimum"));
        assert!(check_value(&n, &json!(9)).unwrap_err().starts_with("maximum"));
        let s = AttributeDef { minimum: Some(1.0), maximum: Some(3.0), ..def(AttrType::String) };
        assert!(check_value(&s, &json!("")).is_err());
        assert!(check_value(&s, &json!("abcd")).is_err());
    }

    #[test]
    fn nested_and_flat_attribute_definitions_read_the_same() {
        let nested = json!({"occi": {"compute": {"cores": {"type": "integer", "mutable": true}, "state": {"type": "string", "default": "inactive"}}}});
        let flat = json!({"occi.compute.cores": {"type": "integer", "mutable": true}, "occi.compute.state": {"type": "string", "default": "inactive"}});
        assert_eq!(parse_attribute_defs(&nested).unwrap(), parse_attribute_defs(&flat).unwrap());
        let defs = parse_attribute_defs(&nested).unwrap();
        assert_eq!(defs[0].name, "occi.compute.cores");
        assert_eq!(defs[0].ty, Some(AttrType::Integer));
    }

    #[test]
    fn overlay_keeps_unstated_members() {
        let mut base =
            AttributeDef { name: "s".into(), ty: Some(AttrType::Number), mutable: Some(true), ..Default::default() };
        let over = AttributeDef { name: "s".into(), default: Some(json!(2.8)), ..Default::default() };
        base.overlay(&over);
        assert_eq!(base.mutable, Some(true));
        assert_eq!(base.default, Some(json!(2.8)));
    }

    /// A definition's pattern is compiled with the definition: validating against it compiles
    /// nothing, however many other patterns were compiled meanwhile (there used to be one
    /// process-wide cache of 1,024 patterns, which any tenant could flush).
    #[test]
    fn a_definitions_pattern_outlives_any_number_of_other_patterns() {
        let kept = parse_attribute_defs(&json!({"a.b": {"type": "string", "pattern": "kept-(on|off)"}})).unwrap();
        let kept = &kept[0];
        assert!(check_value(kept, &json!("kept-on")).is_ok());
        for i in 0..1100 {
            let other =
                parse_attribute_defs(&json!({"x.y": {"type": "string", "pattern": format!("other-{i}|w")}})).unwrap();
            assert!(check_value(&other[0], &json!("w")).is_ok());
            assert!(check_value(&other[0], &json!(format!("other-{i}"))).is_ok());
            assert!(check_value(&other[0], &json!("other-")).is_err());
        }
        let before = compiles();
        assert!(check_value(kept, &json!("kept-off")).is_ok());
        assert!(check_value(kept, &json!("kept-onoff")).unwrap_err().starts_with("pattern"));
        assert_eq!(compiles(), before, "validating compiled a pattern again");
    }

    /// A definition read back from storage validates with the pattern compiled as it was read,
    /// and writes back the very JSON it was read from: a regular expression string, or a
    /// JSON-schema object.
    #[test]
    fn a_stored_definition_validates_with_its_pattern_and_writes_back_the_same_json() {
        let stored = [
            r#"{"name":"a.b","type":"string","mutable":true,"pattern":"stored-[0-9]+"}"#,
            r#"{"name":"a.c","type":"string","pattern":{"type":"string","pattern":"stored-[a-z]+","maxLength":10}}"#,
        ];
        let defs: Vec<AttributeDef> = stored.iter().map(|s| serde_json::from_str(s).unwrap()).collect();
        let before = compiles();
        assert!(check_value(&defs[0], &json!("stored-42")).is_ok());
        assert!(check_value(&defs[0], &json!("stored-x")).unwrap_err().starts_with("pattern"));
        assert!(check_value(&defs[1], &json!("stored-abc")).is_ok());
        assert!(check_value(&defs[1], &json!("stored-4")).unwrap_err().starts_with("pattern"));
        assert!(check_value(&defs[1], &json!("stored-abcdef")).unwrap_err().starts_with("maximum"));
        assert_eq!(compiles(), before, "validating compiled a stored pattern");
        for (text, def) in stored.iter().zip(&defs) {
            assert_eq!(&serde_json::to_string(def).unwrap(), text);
            assert_eq!(&serde_json::from_str::<AttributeDef>(text).unwrap(), def);
        }
    }

    /// Stored data is read as it is: a stored pattern that does not compile (say, after a change
    /// of the regex engine's limits) does not make its category unreadable; values checked
    /// against it are refused, saying why.
    #[test]
    fn a_stored_pattern_that_does_not_compile_is_reported_when_checking() {
        let text = r#"{"name":"a.b","pattern":"("}"#;
        let def: AttributeDef = serde_json::from_str(text).unwrap();
        assert!(check_value(&def, &json!("x")).unwrap_err().contains("does not compile"));
        assert!(check_value(&AttributeDef { ty: Some(AttrType::Integer), ..def.clone() }, &json!(1)).is_ok());
        assert_eq!(serde_json::to_string(&def).unwrap(), text);
    }

    proptest! {
        #[test]
        fn integer_range_is_exact(min in -100i64..100, span in 0i64..100, v in -300i64..300) {
            let d = AttributeDef { minimum: Some(min as f64), maximum: Some((min + span) as f64), ..def(AttrType::Integer) };
            prop_assert_eq!(check_value(&d, &json!(v)).is_ok(), v >= min && v <= min + span);
        }
    }
}
