//! The OCCI 1.2 JSON schemas in `tests/occi-json-schema` (draft-04, as rOCCI-core 5 ships them),
//! checked in process with the `jsonschema` crate.
//!
//! Every `*.json` file of that directory is registered under one made-up base URI, so the
//! schemas' relative `$ref`s (`occi-schema.json#/definitions/...`) resolve to each other; the
//! draft-04 meta-schema they also refer to (`.../draft-04/schema#/definitions/stringArray`) is
//! built into the crate. Nothing is ever fetched: the crate is built without its HTTP and file
//! resolvers, and both the registry and the validators run offline, so a `$ref` that is not
//! registered fails loudly instead of going to the network.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use jsonschema::{Draft, Registry, Validator};
use serde_json::Value;

/// Where the schema files are registered. `.invalid` never resolves; nothing is fetched anyway.
const BASE: &str = "https://ocni.invalid/occi-json-schema/";

/// The validators, by schema name (the file name without `.json`), built once.
fn validators() -> &'static Result<BTreeMap<String, Validator>, String> {
    static VALIDATORS: OnceLock<Result<BTreeMap<String, Validator>, String>> = OnceLock::new();
    VALIDATORS.get_or_init(build)
}

fn build() -> Result<BTreeMap<String, Validator>, String> {
    let dir = crate::repo_root().join("tests/occi-json-schema");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        // `ex_*.json` are examples, not schemas.
        if !name.ends_with(".json") || name.starts_with("ex_") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let schema: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        files.insert(name.to_string(), fix_refs(schema));
    }
    let registry = Registry::new()
        .draft(Draft::Draft4)
        .extend(files.iter().map(|(name, schema)| (format!("{BASE}{name}"), schema)))
        .and_then(|b| b.prepare())
        .map_err(|e| format!("the OCCI JSON schemas in {} do not load: {e}", dir.display()))?;
    let mut validators = BTreeMap::new();
    for name in files.keys() {
        let uri = format!("{BASE}{name}");
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .with_registry(&registry)
            .offline()
            .build(&serde_json::json!({ "$ref": uri }))
            .map_err(|e| format!("the OCCI JSON schema {name} does not compile: {e}"))?;
        validators.insert(name.trim_end_matches(".json").to_string(), validator);
    }
    Ok(validators)
}

/// `resource.json` says `"$ref": "occi-schema.json#definitions/resource"`: a fragment without the
/// leading slash, which is no JSON pointer (nor a draft-04 plain-name `id` of that schema). It
/// means `#/definitions/resource`; make it say so (rOCCI's Ruby validator reads it that way).
fn fix_refs(node: Value) -> Value {
    match node {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) if k == "$ref" => (k, Value::String(s.replace("#definitions/", "#/definitions/"))),
                    v => (k, fix_refs(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(fix_refs).collect()),
        other => other,
    }
}

/// Validates a document against one of the OCCI 1.2 JSON schemas of `tests/occi-json-schema`
/// (`resource`, `link`, `model`, `entity-collection`, `action-instance`, `locations`,
/// `category-identifiers`). The error lists every violation as `INVALID at /json/pointer: message`,
/// ordered by place in the document.
pub fn validate_occi_json(schema: &str, doc: &Value) -> Result<(), String> {
    let validators = validators().as_ref().map_err(Clone::clone)?;
    let validator = validators.get(schema).ok_or_else(|| {
        format!(
            "no OCCI JSON schema {schema:?} (there are: {})",
            validators.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let mut errors: Vec<(String, String)> =
        validator.iter_errors(doc).map(|e| (e.instance_path().as_str().to_string(), e.to_string())).collect();
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort();
    let lines: Vec<String> =
        errors.iter().map(|(at, msg)| format!("INVALID at {}: {msg}", if at.is_empty() { "/" } else { at })).collect();
    Err(format!("fails the {schema} schema:\n{}", lines.join("\n")))
}
