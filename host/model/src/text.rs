//! OCCI text renderings of responses (GFD.185 / GFD.229): the same header lines serve
//! `text/plain` (lines in the body) and `text/occi` (HTTP headers, body `OK`).

use serde_json::Value;

use crate::catalog::Catalog;
use crate::category::Category;
use crate::entity::{ATTR_SOURCE, ATTR_TARGET, Entity};

/// One rendered line: header name and value.
pub type Line = (&'static str, String);

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn attr_value(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        // Arrays and objects have no text form of their own: send their JSON, quoted.
        other => quote(&other.to_string()),
    }
}

/// `Category:` line of a category definition (query interface).
pub fn category_line(cat: &Category) -> Line {
    let mut s = format!("{}; scheme={}; class={}", cat.term, quote(&cat.scheme), quote(cat.class.as_str()));
    if let Some(t) = &cat.title {
        s.push_str(&format!("; title={}", quote(t)));
    }
    let rel: Vec<&str> = cat.parent.iter().chain(cat.depends.iter()).map(String::as_str).collect();
    if !rel.is_empty() {
        s.push_str(&format!("; rel={}", quote(&rel.join(" "))));
    }
    if let Some(l) = &cat.location {
        s.push_str(&format!("; location={}", quote(l)));
    }
    if !cat.attributes.is_empty() {
        let names: Vec<String> = cat
            .attributes
            .iter()
            .map(|a| {
                let mut n = a.name.clone();
                if a.is_required() {
                    n.push_str("{required}");
                } else if !a.is_mutable() {
                    n.push_str("{immutable}");
                }
                n
            })
            .collect();
        s.push_str(&format!("; attributes={}", quote(&names.join(" "))));
    }
    if !cat.actions.is_empty() {
        s.push_str(&format!("; actions={}", quote(&cat.actions.join(" "))));
    }
    ("Category", s)
}

fn category_ref(catalog: &Catalog, id: &str) -> Option<String> {
    let cat = catalog.get(id)?;
    Some(format!("{}; scheme={}; class={}", cat.term, quote(&cat.scheme), quote(cat.class.as_str())))
}

/// The lines of one entity: its categories, action and link `Link` lines, attributes.
pub fn entity_lines(e: &Entity, catalog: &Catalog, links: &[Entity]) -> Vec<Line> {
    let mut out = Vec::new();
    for id in std::iter::once(&e.kind).chain(e.mixins.iter()) {
        if let Some(c) = category_ref(catalog, id) {
            out.push(("Category", c));
        }
    }
    for l in links {
        let target = if l.source() == Some(e.location.as_str()) { l.target() } else { l.source() };
        let mut s = format!(
            "<{}>; rel={}; self={}; category={}",
            target.unwrap_or(""),
            quote(l.attr_str("occi.core.target.kind").unwrap_or(&l.kind)),
            quote(&l.location),
            quote(&l.kind)
        );
        for (k, v) in &l.attributes {
            if k != ATTR_SOURCE && k != ATTR_TARGET {
                s.push_str(&format!("; {k}={}", attr_value(v)));
            }
        }
        out.push(("Link", s));
    }
    for a in catalog.actions_for(&e.kind, &e.mixins) {
        let term = a.rsplit('#').next().unwrap_or("");
        out.push(("Link", format!("<{}?action={term}>; rel={}", e.location, quote(&a))));
    }
    for (k, v) in &e.attributes {
        out.push(("X-OCCI-Attribute", format!("{k}={}", attr_value(v))));
    }
    out
}

/// Joins lines into a text/plain body.
pub fn plain_body(lines: &[Line]) -> String {
    let mut s = String::new();
    for (k, v) in lines {
        s.push_str(k);
        s.push_str(": ");
        s.push_str(v);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::parse_entity_input;
    use serde_json::json;

    #[test]
    fn gfd185_forms() {
        let c = Catalog::builtin();
        let compute = c.get("http://schemas.ogf.org/occi/infrastructure#compute").unwrap();
        let (name, line) = category_line(compute);
        assert_eq!(name, "Category");
        assert!(
            line.starts_with("compute; scheme=\"http://schemas.ogf.org/occi/infrastructure#\"; class=\"kind\""),
            "{line}"
        );
        assert!(line.contains("location=\"/compute/\"") && line.contains("occi.compute.state{immutable}"), "{line}");
        let e = c
            .create_entity(
                &parse_entity_input(&json!({"kind": "http://schemas.ogf.org/occi/infrastructure#compute", "attributes": {"occi.compute.cores": 2, "occi.compute.hostname": "a\"b"}})).unwrap(),
                "/compute/x",
                "x",
            )
            .unwrap();
        let body = plain_body(&entity_lines(&e, &c, &[]));
        assert!(
            body.starts_with(
                "Category: compute; scheme=\"http://schemas.ogf.org/occi/infrastructure#\"; class=\"kind\"\n"
            ),
            "{body}"
        );
        assert!(body.contains(
            "Link: </compute/x?action=start>; rel=\"http://schemas.ogf.org/occi/infrastructure/compute/action#start\"\n"
        ));
        assert!(body.contains("X-OCCI-Attribute: occi.compute.cores=2\n"));
        assert!(body.contains("X-OCCI-Attribute: occi.compute.hostname=\"a\\\"b\"\n"), "{body}");
    }
}
