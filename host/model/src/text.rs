//! OCCI text renderings of responses (GFD.185 / GFD.229): the same header lines serve
//! `text/plain` (lines in the body) and `text/occi` (HTTP headers, body `OK`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::catalog::Catalog;
use crate::category::Category;
use crate::entity::{ATTR_SOURCE, ATTR_TARGET, Entity, check_no_control};
use crate::render::link_end_url;

/// One rendered line: header name and value.
pub type Line = (&'static str, String);

/// A quoted string: `"` and `\` escaped with `\`; control characters, which a header or a
/// text/plain line cannot hold (a raw line break would end the line and let a value forge the
/// next one), as `\n`, `\r` and `\t`, any other as `\uXXXX` (four hex digits), an ocni
/// extension that [`parse_plain`] and [`parse_headers`] read back.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Every control character is in the Basic Multilingual Plane: four digits suffice.
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A location written where nothing is quoted: between `<` and `>` of a Link value, and as an
/// `X-OCCI-Location` value. Control characters are percent-encoded (each byte of their UTF-8
/// form), so the value cannot end the line; so are `<`, `>` and `"`, which would close the
/// `<...>` early or open a quoted string for a parser. Everything else, `%` included, stays as
/// it is: a location is a URI, where `%0D` already means an encoded byte.
pub fn location_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '<' | '>' | '"') {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Lines listing locations under `header` (`X-OCCI-Location`, or `Location` for a creation),
/// each written with [`location_text`].
pub fn location_lines(header: &'static str, urls: &[String]) -> Vec<Line> {
    urls.iter().map(|u| (header, location_text(u))).collect()
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
    // GFD.229 5.5.2: a mixin's `rel` is its first `depends` only.
    if let Some(rel) = cat.parent.as_ref().or(cat.depends.first()) {
        s.push_str(&format!("; rel={}", quote(rel)));
    }
    if let Some(l) = &cat.location {
        s.push_str(&format!("; location={}", quote(l)));
    }
    if !cat.attributes.is_empty() {
        let names: Vec<String> = cat
            .attributes
            .iter()
            .map(|a| match (a.is_required(), a.is_mutable()) {
                (false, true) => a.name.clone(),
                (true, true) => format!("{}{{required}}", a.name),
                (false, false) => format!("{}{{immutable}}", a.name),
                (true, false) => format!("{}{{required immutable}}", a.name),
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

/// The lines of one entity: its categories, action and link `Link` lines, attributes. Link
/// ends (`occi.core.source`, `occi.core.target` and the `<target>` of a resource's links) are
/// absolute, `base` before a local path ([`link_end_url`]).
pub fn entity_lines(e: &Entity, catalog: &Catalog, links: &[Entity], base: &str) -> Vec<Line> {
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
            location_text(&link_end_url(base, target.unwrap_or(""))),
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
    for a in catalog.applicable_actions(e) {
        let term = a.rsplit('#').next().unwrap_or("");
        out.push(("Link", format!("<{}?action={term}>; rel={}", location_text(&e.location), quote(&a))));
    }
    for (k, v) in &e.attributes {
        let value = match v {
            Value::String(end) if k == ATTR_SOURCE || k == ATTR_TARGET => quote(&link_end_url(base, end)),
            v => attr_value(v),
        };
        out.push(("X-OCCI-Attribute", format!("{k}={value}")));
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

// ---------------------------------------------------------------------- request side

use crate::attribute::check_attribute_name;
use crate::category::{Class, check_scheme, check_term};
use crate::error::{ModelError, Result};

/// A Category value of a request: a category definition (query interface) or a reference to
/// one (entity bodies, filters, action invocations).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TextCategory {
    pub term: String,
    pub scheme: String,
    /// Optional in requests: the server looks the category up by scheme and term.
    pub class: Option<Class>,
    pub title: Option<String>,
    pub rel: Vec<String>,
    pub location: Option<String>,
    /// Attribute names with their `{required}` / `{immutable}` properties.
    pub attributes: Vec<TextAttributeDef>,
    pub actions: Vec<String>,
}

impl TextCategory {
    pub fn id(&self) -> String {
        format!("{}{}", self.scheme, self.term)
    }
}

/// An attribute of a category rendering: `name{required immutable}`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TextAttributeDef {
    pub name: String,
    pub required: bool,
    pub immutable: bool,
}

/// A Link value: a link instance reference or an action reference.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TextLink {
    /// The URI between `<` and `>`.
    pub target: String,
    pub rel: Vec<String>,
    pub self_location: Option<String>,
    pub category: Vec<String>,
    pub attributes: Vec<(String, Value)>,
}

impl TextLink {
    /// An action reference (`</compute/1?action=start>`), not a link instance.
    pub fn is_action(&self) -> bool {
        self.target.contains("?action=")
    }
}

/// Everything a text/plain body or the text/occi headers of a request carried.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TextMessage {
    pub categories: Vec<TextCategory>,
    pub links: Vec<TextLink>,
    pub attributes: Vec<(String, Value)>,
    pub locations: Vec<String>,
}

impl TextMessage {
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty() && self.links.is_empty() && self.attributes.is_empty() && self.locations.is_empty()
    }
}

/// The OCCI header names, as they are matched (case-insensitively).
pub const OCCI_HEADERS: [&str; 4] = ["category", "link", "x-occi-attribute", "x-occi-location"];

/// Parses a `text/plain` body (GFD.185 3.6.6, GFD.229 section 6): one `Name: value` per line;
/// a line starting with white space, or following a line ending in `\`, continues the previous
/// one; empty lines are skipped. Errors name the line.
pub fn parse_plain(body: &str) -> Result<TextMessage> {
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut continued = false;
    for (i, raw) in body.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let (line, cont) = match line.trim_end().strip_suffix('\\') {
            Some(l) => (l, true),
            None => (line, false),
        };
        let starts_blank = line.starts_with([' ', '\t']);
        if (continued || starts_blank) && !logical.is_empty() {
            let last = logical.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else if !line.trim().is_empty() {
            logical.push((i + 1, line.trim().to_string()));
        }
        continued = cont;
    }
    let mut msg = TextMessage::default();
    for (n, line) in logical {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ModelError::bad(format!("line {n}: expected \"Name: value\", found {line:?}")))?;
        add_field(&mut msg, name.trim(), value, &format!("line {n}"))?;
    }
    Ok(msg)
}

/// Parses the OCCI headers of a `text/occi` request (GFD.185 3.6.6, GFD.229 section 7). Other
/// headers are ignored; names match case-insensitively; a header may repeat or carry a
/// comma-separated list.
pub fn parse_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<TextMessage> {
    let mut msg = TextMessage::default();
    for (name, value) in headers {
        if OCCI_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            add_field(&mut msg, name, value, &format!("header {name}"))?;
        }
    }
    Ok(msg)
}

fn add_field(msg: &mut TextMessage, name: &str, value: &str, place: &str) -> Result<()> {
    let lower = name.to_ascii_lowercase();
    let at = |e: ModelError| e.at(place);
    for item in split_top(value, ',').map_err(at)? {
        if item.is_empty() {
            continue;
        }
        match lower.as_str() {
            "category" => msg.categories.push(parse_category_value(item).map_err(at)?),
            "link" => msg.links.push(parse_link_value(item).map_err(at)?),
            "x-occi-attribute" => msg.attributes.push(parse_attribute(item).map_err(at)?),
            "x-occi-location" => {
                check_no_control("X-OCCI-Location", item).map_err(at)?;
                msg.locations.push(item.to_string())
            }
            _ => {
                return Err(ModelError::bad(format!(
                    "{place}: unknown field {name:?} (Category, Link, X-OCCI-Attribute or X-OCCI-Location)"
                )));
            }
        }
    }
    Ok(())
}

/// Splits at `sep` outside quoted strings and `<...>`; trims the pieces. `\"` inside a quoted
/// string does not end it.
pub fn split_top(s: &str, sep: char) -> Result<Vec<&str>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_quotes {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => in_angle = true,
            '>' => in_angle = false,
            c if c == sep && !in_angle => {
                out.push(s[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err(ModelError::bad(format!("unterminated quoted string in {s:?}")));
    }
    out.push(s[start..].trim());
    Ok(out)
}

/// A quoted string or a bare token. In a quoted string `\n`, `\r`, `\t` and `\uXXXX` (four
/// hex digits) stand for the character they name, as [`quote`] writes them; `\` before any
/// other character stands for that character.
fn unquote(s: &str) -> Result<String> {
    let s = s.trim();
    let Some(inner) = s.strip_prefix('"') else { return Ok(s.to_string()) };
    let inner = inner.strip_suffix('"').ok_or_else(|| ModelError::bad(format!("unterminated quoted string {s:?}")))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(match chars.next().ok_or_else(|| ModelError::bad(format!("dangling escape in {s:?}")))? {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'u' => {
                        let hex: String = chars.clone().take(4).collect();
                        if hex.len() == 4 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                            chars.nth(3);
                            u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).ok_or_else(|| {
                                ModelError::bad(format!("escape \\u{hex} in {s:?} is not a character"))
                            })?
                        } else {
                            'u'
                        }
                    }
                    other => other,
                })
            }
            '"' => return Err(ModelError::bad(format!("unescaped quote inside {s:?}"))),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `key=value` pieces after the first `;`-separated element.
fn params(pieces: &[&str]) -> Result<Vec<(String, String, bool)>> {
    let mut out = Vec::new();
    for p in pieces.iter().filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').ok_or_else(|| ModelError::bad(format!("parameter {p:?} is not key=value")))?;
        let quoted = v.trim().starts_with('"');
        out.push((k.trim().to_ascii_lowercase(), unquote(v)?, quoted));
    }
    Ok(out)
}

fn words(v: &str) -> Vec<String> {
    v.split_whitespace().map(str::to_string).collect()
}

/// One category value: `term; scheme="..."; class="..."[; title=...][; rel=...][; location=...]
/// [; attributes="..."][; actions="..."]`, with an optional trailing `;`.
pub fn parse_category_value(s: &str) -> Result<TextCategory> {
    let pieces = split_top(s, ';')?;
    let term = pieces[0].trim();
    check_term(term)?;
    let mut cat = TextCategory { term: term.to_string(), ..Default::default() };
    for (k, v, _) in params(&pieces[1..])? {
        match k.as_str() {
            "scheme" => {
                check_scheme(&v)?;
                cat.scheme = v;
            }
            "class" => {
                cat.class = Some(match v.as_str() {
                    "kind" => Class::Kind,
                    "mixin" => Class::Mixin,
                    "action" => Class::Action,
                    other => return Err(ModelError::bad(format!("class {other:?} is not kind, mixin or action"))),
                })
            }
            "title" => cat.title = Some(v),
            "rel" => cat.rel = words(&v),
            "location" => {
                check_no_control("Category location", &v)?;
                cat.location = Some(v)
            }
            "attributes" => {
                for def in split_attribute_list(&v)? {
                    cat.attributes.push(def);
                }
            }
            "actions" => cat.actions = words(&v),
            other => return Err(ModelError::bad(format!("unknown Category parameter {other:?}"))),
        }
    }
    if cat.scheme.is_empty() {
        return Err(ModelError::bad(format!("category {term:?} has no scheme")));
    }
    Ok(cat)
}

/// `a.b{required} c.d{immutable required} e`
fn split_attribute_list(v: &str) -> Result<Vec<TextAttributeDef>> {
    let mut out = Vec::new();
    let mut rest = v.trim();
    while !rest.is_empty() {
        let end = rest.find(|c: char| c.is_whitespace() || c == '{').unwrap_or(rest.len());
        let name = &rest[..end];
        check_attribute_name(name)?;
        let mut def = TextAttributeDef { name: name.to_string(), ..Default::default() };
        rest = rest[end..].trim_start();
        if let Some(props) = rest.strip_prefix('{') {
            let close = props.find('}').ok_or_else(|| ModelError::bad(format!("attribute {name:?}: unclosed '{{'")))?;
            for p in props[..close].split_whitespace() {
                match p {
                    "required" => def.required = true,
                    "immutable" => def.immutable = true,
                    other => return Err(ModelError::bad(format!("attribute {name:?}: unknown property {other:?}"))),
                }
            }
            rest = props[close + 1..].trim_start();
        }
        out.push(def);
    }
    Ok(out)
}

/// One link value: `<uri>; rel="..."[; self="..."][; category="..."[; name=value]...]`.
pub fn parse_link_value(s: &str) -> Result<TextLink> {
    let pieces = split_top(s, ';')?;
    let target = pieces[0]
        .trim()
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .ok_or_else(|| ModelError::bad(format!("link {:?} must start with <URI>", pieces[0])))?;
    check_no_control("Link target", target)?;
    let mut link = TextLink { target: target.trim().to_string(), ..Default::default() };
    for (k, v, quoted) in params(&pieces[1..])? {
        match k.as_str() {
            "rel" => link.rel = words(&v),
            "self" => {
                check_no_control("Link self", &v)?;
                link.self_location = Some(v)
            }
            "category" => link.category = words(&v),
            name => {
                check_attribute_name(name)?;
                link.attributes.push((name.to_string(), typed_value(&v, quoted)));
            }
        }
    }
    if link.rel.is_empty() {
        return Err(ModelError::bad(format!("link <{}> has no rel", link.target)));
    }
    Ok(link)
}

/// `name=value`: a quoted string, `true`/`false`, a number, or a bare token (an enum value).
pub fn parse_attribute(s: &str) -> Result<(String, Value)> {
    let (name, v) = s.split_once('=').ok_or_else(|| ModelError::bad(format!("attribute {s:?} is not name=value")))?;
    let name = name.trim();
    check_attribute_name(name)?;
    let quoted = v.trim().starts_with('"');
    Ok((name.to_string(), typed_value(&unquote(v)?, quoted)))
}

fn typed_value(v: &str, quoted: bool) -> Value {
    if quoted {
        return Value::String(v.to_string());
    }
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            let numeric = v.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
                && v.chars().all(|c| c.is_ascii_digit() || ".-+eE".contains(c));
            if let Ok(i) = v.parse::<i64>() {
                Value::from(i)
            } else if numeric && let Ok(f) = v.parse::<f64>() {
                Value::from(f)
            } else {
                Value::String(v.to_string())
            }
        }
    }
}

/// A `text/uri-list` body: one URI per line, `#` comments skipped.
pub fn parse_uri_list(body: &str) -> Vec<String> {
    body.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

// ---------------------------------------------------------------------- text to JSON shapes

/// Turns the parts of a text request into the JSON shapes the JSON paths take, so both
/// renderings share one implementation of every operation.
impl TextMessage {
    /// The class and id of a category reference; without `class`, found by scheme and term.
    pub fn resolve(&self, c: &TextCategory, catalog: &Catalog) -> Result<(Class, String)> {
        let id = c.id();
        match (c.class, catalog.get(&id)) {
            (Some(class), _) => Ok((class, id)),
            (None, Some(cat)) => Ok((cat.class, id)),
            (None, None) => Err(ModelError::bad(format!("category {id:?} is unknown; give its class to define it"))),
        }
    }

    /// An entity description (`{"resources": [...]}` around one entity) from Category,
    /// X-OCCI-Attribute and Link fields. Attribute values of `array` or `object` attributes
    /// arrive as JSON text and are decoded.
    pub fn to_entity_json(&self, catalog: &Catalog) -> Result<Value> {
        let mut kind = None;
        let mut mixins = Vec::new();
        for c in &self.categories {
            match self.resolve(c, catalog)? {
                (Class::Kind, id) => {
                    if kind.replace(id.clone()).is_some() {
                        return Err(ModelError::bad("an entity has one kind: more than one kind Category given"));
                    }
                }
                (Class::Mixin, id) => mixins.push(Value::String(id)),
                (Class::Action, id) => {
                    return Err(ModelError::bad(format!(
                        "action {id:?} in an entity description: use ?action= to trigger it"
                    )));
                }
            }
        }
        let mixin_ids: Vec<String> = mixins.iter().filter_map(|m| m.as_str().map(str::to_string)).collect();
        let defs = kind.as_deref().map(|k| catalog.attribute_set(k, &mixin_ids));
        let mut obj = Map::new();
        let mut attrs = Map::new();
        for (name, value) in &self.attributes {
            let value = decode_structured(defs.as_ref().and_then(|d| d.get(name)), value);
            if name == crate::entity::ATTR_ID {
                let id = value.as_str().unwrap_or_default();
                obj.insert("id".into(), Value::String(id.strip_prefix("urn:uuid:").unwrap_or(id).to_string()));
            } else {
                attrs.insert(name.clone(), value);
            }
        }
        if let Some(k) = kind {
            obj.insert("kind".into(), Value::String(k));
        }
        if !mixins.is_empty() {
            obj.insert("mixins".into(), Value::Array(mixins));
        }
        obj.insert("attributes".into(), Value::Object(attrs));
        let mut links = Vec::new();
        for l in self.links.iter().filter(|l| !l.is_action()) {
            let kind = l.category.first().ok_or_else(|| {
                ModelError::bad(format!("link <{}> needs a category (its link kind) to be created", l.target))
            })?;
            let mut link = Map::new();
            link.insert("kind".into(), Value::String(kind.clone()));
            let mut target = Map::new();
            target.insert("location".into(), Value::String(l.target.clone()));
            if let Some(k) = l.rel.first() {
                target.insert("kind".into(), Value::String(k.clone()));
            }
            link.insert("target".into(), Value::Object(target));
            if let Some(id) =
                l.self_location.as_deref().and_then(|own| own.rsplit('/').next()).filter(|s| !s.is_empty())
            {
                link.insert("id".into(), Value::String(id.to_string()));
            }
            link.insert("attributes".into(), Value::Object(l.attributes.iter().cloned().collect()));
            links.push(Value::Object(link));
        }
        if !links.is_empty() {
            obj.insert("links".into(), Value::Array(links));
        }
        let mut wrapper = Map::new();
        wrapper.insert("resources".into(), Value::Array(vec![Value::Object(obj)]));
        Ok(Value::Object(wrapper))
    }

    /// Category definitions (`{"kinds": [...], "mixins": [...], "actions": [...]}`) from
    /// Category fields. A definition without `class` must name an existing category.
    pub fn to_categories_json(&self, catalog: &Catalog) -> Result<Value> {
        let mut groups: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
        for c in &self.categories {
            let (class, _) = self.resolve(c, catalog)?;
            let mut o = Map::new();
            o.insert("term".into(), Value::String(c.term.clone()));
            o.insert("scheme".into(), Value::String(c.scheme.clone()));
            if let Some(t) = &c.title {
                o.insert("title".into(), Value::String(t.clone()));
            }
            if !c.attributes.is_empty() {
                let defs: Map<String, Value> = c
                    .attributes
                    .iter()
                    .map(|a| (a.name.clone(), json!({"mutable": !a.immutable, "required": a.required})))
                    .collect();
                o.insert("attributes".into(), Value::Object(defs));
            }
            match class {
                Class::Kind => {
                    if let Some(p) = c.rel.first() {
                        o.insert("parent".into(), Value::String(p.clone()));
                    }
                }
                Class::Mixin => {
                    if !c.rel.is_empty() {
                        o.insert("depends".into(), json!(c.rel));
                    }
                }
                Class::Action => {}
            }
            if class != Class::Action {
                if !c.actions.is_empty() {
                    o.insert("actions".into(), json!(c.actions));
                }
                if let Some(l) = &c.location {
                    o.insert("location".into(), Value::String(crate::entity::location_path(l).to_string()));
                }
            }
            groups.entry(class.plural()).or_default().push(Value::Object(o));
        }
        Ok(Value::Object(groups.into_iter().map(|(k, v)| (k.to_string(), Value::Array(v))).collect()))
    }

    /// An action invocation (`{"action": id, "attributes": {...}}`): one action Category and
    /// its parameters as X-OCCI-Attribute fields.
    pub fn to_action_json(&self, catalog: &Catalog) -> Result<Value> {
        let mut obj = Map::new();
        match self.categories.as_slice() {
            [] => {}
            [one] => {
                let (class, id) = self.resolve(one, catalog)?;
                if class != Class::Action {
                    return Err(ModelError::bad(format!("{id:?} is a {}, not an action", class.as_str())));
                }
                obj.insert("action".into(), Value::String(id));
            }
            _ => return Err(ModelError::bad("an action invocation names one action Category")),
        }
        obj.insert("attributes".into(), Value::Object(self.attributes.iter().cloned().collect()));
        Ok(Value::Object(obj))
    }

    /// An entity filter (`{"kind": ..., "mixins": [...], "attributes": {...}}`).
    pub fn to_entity_filter_json(&self, catalog: &Catalog) -> Result<Value> {
        let mut obj = Map::new();
        let mut mixins = Vec::new();
        for c in &self.categories {
            match self.resolve(c, catalog)? {
                (Class::Kind, id) => {
                    obj.insert("kind".into(), Value::String(id));
                }
                (Class::Mixin, id) => mixins.push(Value::String(id)),
                (Class::Action, id) => return Err(ModelError::bad(format!("cannot filter entities by action {id:?}"))),
            }
        }
        if !mixins.is_empty() {
            obj.insert("mixins".into(), Value::Array(mixins));
        }
        obj.insert("attributes".into(), Value::Object(self.attributes.iter().cloned().collect()));
        Ok(Value::Object(obj))
    }

    /// The categories a Category filter on the query interface names (GFD.185 3.4.1: exactly
    /// the requested kinds, mixins and actions), in the order named: those the catalog has, of
    /// the class the filter gives, if it gives one. [`crate::filter::with_relatives`] adds
    /// what they refer to and what refers to them (`?related=true`).
    pub fn category_filter(&self, catalog: &Catalog) -> Result<Vec<String>> {
        let mut named = Vec::new();
        for c in &self.categories {
            let id = c.id();
            let Some(cat) = catalog.get(&id) else { continue };
            if c.class.is_some_and(|class| cat.class != class) || named.contains(&id) {
                continue;
            }
            named.push(id);
        }
        Ok(named)
    }
}

/// A value sent as text for an `array` or `object` attribute is JSON text: decode it.
fn decode_structured(def: Option<&crate::attribute::AttributeDef>, value: &Value) -> Value {
    use crate::attribute::AttrType;
    match (def.map(|d| d.ty()), value) {
        (Some(AttrType::Array | AttrType::Object), Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| value.clone())
        }
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::parse_entity_input;
    use serde_json::json;

    /// The server's scheme and authority, as link ends are rendered with it.
    const BASE: &str = "http://example.com";

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
        let body = plain_body(&entity_lines(&e, &c, &[], BASE));
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

    use crate::attribute::AttributeDef;
    use crate::category::{Category, Class, parse_category};
    use proptest::prelude::*;

    fn category_from_text(c: TextCategory, catalog: &Catalog) -> Category {
        let msg = TextMessage { categories: vec![c], ..Default::default() };
        let v = msg.to_categories_json(catalog).unwrap();
        let (group, list) = v.as_object().unwrap().iter().next().unwrap();
        let class = match group.as_str() {
            "kinds" => Class::Kind,
            "mixins" => Class::Mixin,
            _ => Class::Action,
        };
        parse_category(class, &list[0]).unwrap()
    }

    fn arb_category() -> impl Strategy<Value = Category> {
        (
            prop::sample::select(vec![Class::Kind, Class::Mixin, Class::Action]),
            "[a-z][a-z0-9_-]{0,8}",
            "[a-z]{1,8}",
            prop::option::of("[A-Za-z0-9 ,;=\"\\\\]{0,16}"),
            prop::collection::btree_map("[a-z]{1,5}(\\.[a-z]{1,5}){0,2}", (any::<bool>(), any::<bool>()), 0..5),
            prop::collection::vec("[a-z]{1,6}", 0..3),
        )
            .prop_map(|(class, term, host, title, attrs, actions)| {
                let scheme = format!("http://{host}.example/occi#");
                Category {
                    class,
                    term: term.clone(),
                    scheme: scheme.clone(),
                    title,
                    attributes: attrs
                        .into_iter()
                        .map(|(name, (required, mutable))| AttributeDef {
                            name,
                            required: Some(required),
                            mutable: Some(mutable),
                            ..Default::default()
                        })
                        .collect(),
                    actions: if class == Class::Action {
                        vec![]
                    } else {
                        actions.iter().map(|a| format!("http://{host}.example/occi/action#{a}")).collect()
                    },
                    parent: (class == Class::Kind).then(|| crate::entity::RESOURCE_KIND.to_string()),
                    depends: if class == Class::Mixin { vec![format!("{scheme}base")] } else { vec![] },
                    applies: vec![],
                    location: (class != Class::Action).then(|| format!("/{term}/")),
                    builtin: false,
                }
            })
    }

    proptest! {
        /// GFD.185 3.5.1: a category line parses back to the same category (render -> parse ->
        /// render is the identity).
        #[test]
        fn category_line_round_trip(cat in arb_category()) {
            let catalog = Catalog::builtin();
            let (_, line) = category_line(&cat);
            let parsed = parse_category_value(&line).unwrap();
            let back = category_from_text(parsed, &catalog);
            prop_assert_eq!(category_line(&back).1, line);
            // Through a whole text/plain body and through headers alike.
            let body = plain_body(&[category_line(&cat)]);
            prop_assert_eq!(&parse_plain(&body).unwrap().categories[0], &parse_category_value(&category_line(&cat).1).unwrap());
            let via_headers = parse_headers([("category", category_line(&cat).1.as_str())]).unwrap();
            prop_assert_eq!(&via_headers.categories[0], &parse_plain(&body).unwrap().categories[0]);
        }

        /// GFD.185 3.5.2-3.5.4: an entity rendering (categories, action and link Links,
        /// attributes) parses back into the same entity, in text/plain and in text/occi.
        #[test]
        fn entity_lines_round_trip(
            hostname in "[ -~]{0,20}",
            title in prop::option::of("[ -~\n\t]{0,20}"),
            cores in 1i64..64,
            memory in prop::num::f64::POSITIVE | prop::num::f64::NORMAL,
            small in any::<bool>(),
        ) {
            let catalog = Catalog::builtin();
            let mut input = crate::entity::EntityInput {
                kind: Some("http://schemas.ogf.org/occi/infrastructure#compute".into()),
                title,
                ..Default::default()
            };
            if small {
                input.mixins = Some(vec!["http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#small".into()]);
            }
            input.attributes.insert("occi.compute.hostname".into(), json!(hostname));
            input.attributes.insert("occi.compute.cores".into(), json!(cores));
            input.attributes.insert("occi.compute.memory".into(), json!(memory.abs()));
            let e = catalog.create_entity(&input, "/compute/x1", "x1").unwrap();
            let lines = entity_lines(&e, &catalog, &[], BASE);
            let from_plain = parse_plain(&plain_body(&lines)).unwrap();
            let headers: Vec<(&str, &str)> = lines.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let from_headers = parse_headers(headers).unwrap();
            prop_assert_eq!(&from_plain, &from_headers);
            let v = from_plain.to_entity_json(&catalog).unwrap();
            let parsed = crate::entity::parse_entity_collection(&v).unwrap().remove(0);
            let rebuilt = catalog.create_entity(&parsed, "/compute/x1", "x1").unwrap();
            prop_assert_eq!(&rebuilt, &e);
            prop_assert_eq!(entity_lines(&rebuilt, &catalog, &[], BASE), lines);
        }

        /// A link's own rendering (its category, attributes with source and target) round-trips.
        #[test]
        fn link_lines_round_trip(mac in "([0-9a-f]{2}:){5}[0-9a-f]{2}", interface in "[a-z0-9]{1,8}") {
            let catalog = Catalog::builtin();
            let mut input = crate::entity::EntityInput {
                kind: Some("http://schemas.ogf.org/occi/infrastructure#networkinterface".into()),
                ..Default::default()
            };
            input.attributes.insert("occi.core.source".into(), json!("/compute/a"));
            input.attributes.insert("occi.core.target".into(), json!("/network/b"));
            input.attributes.insert("occi.networkinterface.mac".into(), json!(mac));
            input.attributes.insert("occi.networkinterface.interface".into(), json!(interface));
            let l = catalog.create_entity(&input, "/networkinterface/l", "l").unwrap();
            let lines = entity_lines(&l, &catalog, &[], BASE);
            let parsed = parse_plain(&plain_body(&lines)).unwrap();
            let v = parsed.to_entity_json(&catalog).unwrap();
            let input = crate::entity::parse_entity_collection(&v).unwrap().remove(0);
            let rebuilt = catalog.create_entity(&input, "/networkinterface/l", "l").unwrap();
            prop_assert_eq!(entity_lines(&rebuilt, &catalog, &[], BASE), lines);
            // And as an inline Link line of its source resource.
            let vm = catalog.create_entity(
                &crate::entity::parse_entity_input(&json!({"kind": "http://schemas.ogf.org/occi/infrastructure#compute"})).unwrap(),
                "/compute/a",
                "a",
            ).unwrap();
            let vm_lines = entity_lines(&vm, &catalog, std::slice::from_ref(&l), BASE);
            let link_line = vm_lines.iter().find(|(k, v)| *k == "Link" && !v.contains("?action=")).unwrap();
            let parsed = parse_link_value(&link_line.1).unwrap();
            prop_assert_eq!(parsed.target, "http://example.com/network/b");
            prop_assert_eq!(parsed.self_location.as_deref(), Some("/networkinterface/l"));
            prop_assert!(parsed.attributes.contains(&("occi.networkinterface.mac".to_string(), json!(mac))));
        }

        /// Any string, control characters included, comes back from a quoted attribute value
        /// unchanged, and its rendering is one line.
        #[test]
        fn quoted_values_round_trip(v in prop_oneof![any::<String>(), "[\\x00-\\x20\\x7f-\\xa0\"\\\\a-z]{0,20}"]) {
            let rendered = format!("a.b={}", quote(&v));
            prop_assert!(!crate::entity::has_control(&rendered), "{:?}", rendered);
            prop_assert_eq!(parse_attribute(&rendered).unwrap().1, json!(v.clone()));
            let m = parse_plain(&plain_body(&[("X-OCCI-Attribute", rendered.clone())])).unwrap();
            prop_assert_eq!(m.attributes, vec![("a.b".to_string(), json!(v))]);
        }

        /// Random input never panics the text parsers.
        #[test]
        fn parsers_do_not_panic(s in "\\PC{0,200}") {
            let _ = parse_plain(&s);
            let _ = parse_headers([("Category", s.as_str()), ("Link", s.as_str()), ("X-OCCI-Attribute", s.as_str())]);
            let _ = parse_uri_list(&s);
        }
    }

    /// Both ends of a link are absolute, as attributes of the link and as the `<target>` of
    /// its source's Link line; an end outside the server is rendered as given.
    #[test]
    fn link_ends_are_absolute() {
        let catalog = Catalog::builtin();
        let vm_input =
            parse_entity_input(&json!({"kind": "http://schemas.ogf.org/occi/infrastructure#compute"})).unwrap();
        let vm = catalog.create_entity(&vm_input, "/compute/a", "a").unwrap();
        for (target, rendered) in [
            ("/network/b", "http://example.com/network/b"),
            ("http://elsewhere.example/n", "http://elsewhere.example/n"),
        ] {
            let input = parse_entity_input(&json!({
                "kind": "http://schemas.ogf.org/occi/infrastructure#networkinterface",
                "source": "/compute/a", "target": target,
                "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}}))
            .unwrap();
            let l = catalog.create_entity(&input, "/networkinterface/l", "l").unwrap();
            let lines = entity_lines(&l, &catalog, &[], BASE);
            assert!(lines.contains(&("X-OCCI-Attribute", r#"occi.core.source="http://example.com/compute/a""#.into())));
            assert!(lines.contains(&("X-OCCI-Attribute", format!(r#"occi.core.target="{rendered}""#))), "{lines:?}");
            let lines = entity_lines(&vm, &catalog, std::slice::from_ref(&l), BASE);
            let link = lines.iter().find(|(k, v)| *k == "Link" && !v.contains("?action=")).unwrap();
            assert!(link.1.starts_with(&format!("<{rendered}>; ")), "{link:?}");
            assert!(link.1.contains(r#"self="/networkinterface/l""#), "{link:?}");
        }
    }

    #[test]
    fn typed_values() {
        assert_eq!(parse_attribute("a=2").unwrap().1, json!(2));
        assert_eq!(parse_attribute("a=2.5").unwrap().1, json!(2.5));
        assert_eq!(parse_attribute("a=1e3").unwrap().1, json!(1000.0));
        assert_eq!(parse_attribute("a=true").unwrap().1, json!(true));
        assert_eq!(parse_attribute("a=\"true\"").unwrap().1, json!("true"));
        assert_eq!(parse_attribute("a=x86").unwrap().1, json!("x86"));
        assert_eq!(parse_attribute(r#"a="say \"hi\", ok""#).unwrap().1, json!("say \"hi\", ok"));
        assert!(parse_attribute("a=\"open").is_err());
    }

    const FORGED: &str = "\r\nX-OCCI-Attribute: occi.compute.state=\"hacked\"";

    /// A resource and a link whose values hold control characters, as if stored before they
    /// were refused: `vm` at `vm_location`, linked to a network through `l`.
    fn forged_entities(vm_location: &str) -> (Catalog, Entity, Entity) {
        let catalog = Catalog::builtin();
        let vm_input =
            parse_entity_input(&json!({"kind": "http://schemas.ogf.org/occi/infrastructure#compute"})).unwrap();
        let mut vm = catalog.create_entity(&vm_input, "/compute/a", "a").unwrap();
        vm.location = vm_location.to_string();
        vm.attributes.insert("occi.compute.hostname".into(), json!(format!("h{FORGED}")));
        vm.attributes.insert("occi.core.title".into(), json!("t\u{1b}[2J\u{0}\u{7f}\u{85}\u{b}"));
        let link_input = parse_entity_input(&json!({
            "kind": "http://schemas.ogf.org/occi/infrastructure#networkinterface",
            "source": "/compute/a",
            "target": "/network/b",
            "attributes": {"occi.networkinterface.interface": "eth0", "occi.networkinterface.mac": "00:11:22:33:44:55"},
        }))
        .unwrap();
        let mut l = catalog.create_entity(&link_input, "/networkinterface/l", "l").unwrap();
        l.attributes.insert(ATTR_SOURCE.into(), json!(vm_location));
        l.attributes.insert(ATTR_TARGET.into(), json!(format!("/network/b>; rel=\"x\"{FORGED}")));
        l.attributes.insert("occi.networkinterface.interface".into(), json!(format!("eth0{FORGED}")));
        (catalog, vm, l)
    }

    /// No rendered line holds a control character, so a value cannot end its line and forge the
    /// next one; parsed back, the lines give exactly the fields rendered, values unchanged.
    #[test]
    fn rendering_never_emits_control_characters() {
        for vm_location in ["/compute/a", "/compute/a\r\nX-OCCI-Attribute: occi.compute.state=\"hacked\""] {
            let (catalog, vm, l) = forged_entities(vm_location);
            for lines in [
                entity_lines(&vm, &catalog, std::slice::from_ref(&l), ""),
                entity_lines(&l, &catalog, &[], ""),
                location_lines("X-OCCI-Location", &[vm.location.clone(), l.attr_str(ATTR_TARGET).unwrap().into()]),
            ] {
                for (name, value) in &lines {
                    assert!(!crate::entity::has_control(value), "{name}: {value:?}");
                }
                let body = plain_body(&lines);
                assert_eq!(body.lines().count(), lines.len(), "{body}");
                let parsed = parse_plain(&body).unwrap();
                let headers: Vec<(&str, &str)> = lines.iter().map(|(k, v)| (*k, v.as_str())).collect();
                assert_eq!(parse_headers(headers).unwrap(), parsed);
                assert_eq!(
                    parsed.categories.len() + parsed.links.len() + parsed.attributes.len() + parsed.locations.len(),
                    lines.len()
                );
                assert!(!parsed.attributes.contains(&("occi.compute.state".to_string(), json!("hacked"))), "{body}");
            }
            // The resource's attributes come back as they were, control characters included.
            let lines = entity_lines(&vm, &catalog, std::slice::from_ref(&l), "");
            let parsed = parse_plain(&plain_body(&lines)).unwrap();
            let attrs: Vec<(String, Value)> = vm.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(parsed.attributes, attrs);
            // Link ends are percent-encoded, with their `<`, `>` and `"`.
            let link = parsed.links.iter().find(|k| !k.is_action()).unwrap();
            assert_eq!(
                link.target,
                "/network/b%3E; rel=%22x%22%0D%0AX-OCCI-Attribute: occi.compute.state=%22hacked%22"
            );
            assert_eq!(link.self_location.as_deref(), Some("/networkinterface/l"));
            assert!(
                link.attributes
                    .contains(&("occi.networkinterface.interface".to_string(), json!(format!("eth0{FORGED}"))))
            );
            for action in parsed.links.iter().filter(|k| k.is_action()) {
                assert!(action.target.starts_with(&location_text(vm_location)), "{action:?}");
            }
        }
    }

    #[test]
    fn location_text_percent_encodes_what_would_break_a_line() {
        assert_eq!(location_text("/compute/a-1"), "/compute/a-1");
        assert_eq!(location_text("/a\r\nb\tc\u{0}"), "/a%0D%0Ab%09c%00");
        assert_eq!(location_text("/a>b<c\"d"), "/a%3Eb%3Cc%22d");
        assert_eq!(location_text("/\u{7f}\u{85}/ü/%41"), "/%7F%C2%85/ü/%41");
        assert_eq!(
            location_lines("X-OCCI-Location", &["http://h/a\n".into(), "http://h/b".into()]),
            vec![("X-OCCI-Location", "http://h/a%0A".to_string()), ("X-OCCI-Location", "http://h/b".to_string())]
        );
    }

    /// Every control character, and any other text, survives a quoted string both ways, and the
    /// quoted form holds none.
    #[test]
    fn quoted_strings_escape_every_control_character() {
        let controls: String = (0u32..=0xa0).filter_map(char::from_u32).filter(|c| c.is_control()).collect();
        assert_eq!(controls.chars().count(), 65);
        let q = quote(&controls);
        assert!(!crate::entity::has_control(&q), "{q:?}");
        assert!(
            q.starts_with("\"\\u0000\\u0001")
                && q.contains("\\t\\n\\u000B\\u000C\\r")
                && q.contains("\\u001F\\u007F\\u0080")
                && q.ends_with("\\u009F\""),
            "{q}"
        );
        assert_eq!(unquote(&q).unwrap(), controls);
        assert_eq!(parse_attribute(&format!("a.b={q}")).unwrap().1, json!(controls));
        // `\u` not followed by four hex digits is a `u`, as before; four digits naming no
        // character are refused.
        assert_eq!(unquote(r#""\u0041\user\u12""#).unwrap(), "Auseru12");
        assert!(unquote(r#""\uD800""#).unwrap_err().message.contains("not a character"));
    }

    /// The text parsers refuse a location holding a control character, naming the line or the
    /// header and the field.
    #[test]
    fn parsers_refuse_control_characters_in_locations() {
        let e =
            parse_plain("Link: </network/b\rX-OCCI-Attribute: occi.compute.state=\"hacked\">; rel=\"http://s#n\"\n")
                .unwrap_err();
        assert!(e.message.starts_with("line 1: Link target: ") && e.message.contains("U+000D"), "{e}");
        let e = parse_headers([("Link", "</network/b\tc>; rel=\"http://s#n\"")]).unwrap_err();
        assert!(e.message.starts_with("header Link: Link target: ") && e.message.contains("U+0009"), "{e}");
        let e = parse_plain("X-OCCI-Location: /compute/1\nX-OCCI-Location: /compute/a\u{1b}b\n").unwrap_err();
        assert!(e.message.starts_with("line 2: X-OCCI-Location: ") && e.message.contains("U+001B"), "{e}");
        let e = parse_headers([("X-OCCI-Location", "/compute/1, /compute/a\u{7f}b")]).unwrap_err();
        assert!(e.message.starts_with("header X-OCCI-Location: "), "{e}");
        // Escaped in a quoted string is no better for a location.
        let e = parse_plain("Link: </network/b>; rel=\"http://s#n\"; self=\"/l/1\\r\\nX\"\n").unwrap_err();
        assert!(e.message.starts_with("line 1: Link self: "), "{e}");
        let e = parse_plain("Category: m; scheme=\"http://s#\"; class=\"mixin\"; location=\"/m\\n/\"\n").unwrap_err();
        assert!(e.message.starts_with("line 1: Category location: "), "{e}");
        assert!(!crate::entity::has_control(&e.message), "{e:?}");
        // Percent-encoded, as the renderings write them, they are taken.
        let m = parse_plain("Link: </network/b%0D%0A>; rel=\"http://s#n\"\nX-OCCI-Location: /compute/a%1Bb\n").unwrap();
        assert_eq!(m.links[0].target, "/network/b%0D%0A");
        assert_eq!(m.locations, vec!["/compute/a%1Bb"]);
    }

    #[test]
    fn lists_and_errors_name_the_line() {
        let m = parse_plain("X-OCCI-Attribute: a.b=1, c.d=\"x, y\"\nx-occi-attribute: e.f=2\n").unwrap();
        assert_eq!(m.attributes.len(), 3);
        assert_eq!(m.attributes[1].1, json!("x, y"));
        let e = parse_plain("Category: compute; scheme=\"http://s#\"\nBogus line\n").unwrap_err();
        assert!(e.message.starts_with("line 2"), "{e}");
        let e = parse_headers([("X-OCCI-Attribute", "=3")]).unwrap_err();
        assert!(e.message.contains("X-OCCI-Attribute"), "{e}");
    }
}
