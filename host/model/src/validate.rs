//! Checks of one attribute value against its definition: type, pattern, range, enumeration.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::Value;

use crate::category::{AttrType, AttributeDef, compile_pattern, type_name};

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
    match &def.pattern {
        Some(Value::String(re)) => pattern(re, value)?,
        Some(Value::Object(schema)) => {
            if let Some(Value::String(re)) = schema.get("pattern") {
                pattern(re, value)?;
            }
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
        _ => {}
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

/// Compiled patterns, so that validating a write does not compile a regex per attribute.
/// Bounded: a tenant defining many patterns only makes the cache start over.
static COMPILED: LazyLock<Mutex<HashMap<String, Regex>>> = LazyLock::new(Default::default);
const MAX_COMPILED: usize = 1024;

fn compiled(re: &str) -> Result<Regex, regex::Error> {
    let mut cache = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = cache.get(re) {
        return Ok(r.clone());
    }
    let r = compile_pattern(re)?;
    if cache.len() >= MAX_COMPILED {
        cache.clear();
    }
    cache.insert(re.to_string(), r.clone());
    Ok(r)
}

fn pattern(re: &str, value: &Value) -> Result<(), String> {
    let Some(s) = value.as_str() else { return Ok(()) };
    // Patterns were compiled when the definition was accepted; a failure here means a stored
    // definition is broken, which we report rather than ignore.
    let compiled = compiled(re).map_err(|e| format!("pattern: {re:?} does not compile: {e}"))?;
    if compiled.is_match(s) { Ok(()) } else { Err(format!("pattern: {s:?} does not match {re:?}")) }
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
        let d = AttributeDef { pattern: Some(json!("inactive|active")), ..def(AttrType::String) };
        assert!(check_value(&d, &json!("active")).is_ok());
        assert!(check_value(&d, &json!("reactive")).unwrap_err().starts_with("pattern"));
        let schema =
            AttributeDef { pattern: Some(json!({"type": "string", "pattern": "\\S+"})), ..def(AttrType::String) };
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

    proptest! {
        #[test]
        fn integer_range_is_exact(min in -100i64..100, span in 0i64..100, v in -300i64..300) {
            let d = AttributeDef { minimum: Some(min as f64), maximum: Some((min + span) as f64), ..def(AttrType::Integer) };
            prop_assert_eq!(check_value(&d, &json!(v)).is_ok(), v >= min && v <= min + span);
        }
    }
}
