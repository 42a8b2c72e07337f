//! JSON renderings of categories and entities: OCCI 1.2 (GFD.226, checked against the rOCCI
//! schemas) and the pyOCNI nested dialect of the seed.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use crate::attribute::{AttrType, AttributeDef, Pattern};
use crate::catalog::Catalog;
use crate::category::{Category, Class};
use crate::entity::*;

/// Which JSON shape to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dialect {
    /// OCCI 1.2 JSON rendering (GFD.226): flat attribute names, `parent`/`depends`/`applies`.
    #[default]
    Occi12,
    /// pyOCNI's nested JSON: attributes nested by name segment, `related`, action links.
    Pyocni,
}

fn put(obj: &mut Map<String, Value>, k: &str, v: impl Into<Value>) {
    obj.insert(k.to_string(), v.into());
}

fn put_list(obj: &mut Map<String, Value>, k: &str, list: &[String]) {
    if !list.is_empty() {
        put(obj, k, list.to_vec());
    }
}

/// Renders one attribute definition.
fn render_def(def: &AttributeDef, dialect: Dialect) -> Value {
    let mut o = Map::new();
    let ty = match (dialect, def.ty()) {
        // GFD.226 knows string, number, boolean, array and object only.
        (Dialect::Occi12, AttrType::Integer) => "number",
        (_, t) => t.as_str(),
    };
    put(&mut o, "mutable", def.is_mutable());
    put(&mut o, "required", def.is_required());
    put(&mut o, "type", ty);
    if let Some(d) = &def.default {
        put(&mut o, "default", d.clone());
    }
    if let Some(d) = &def.description {
        put(&mut o, "description", d.as_str());
    }
    match dialect {
        Dialect::Occi12 => {
            // The rOCCI schema takes `pattern` as a string: fold an enumeration into one.
            let pattern = def.pattern.as_ref().and_then(Pattern::regex_source).map(str::to_string).or_else(|| {
                def.enumeration.as_ref().map(|values| {
                    values
                        .iter()
                        .map(|v| regex::escape(&v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                        .collect::<Vec<_>>()
                        .join("|")
                })
            });
            if let Some(p) = pattern {
                put(&mut o, "pattern", p);
            }
        }
        Dialect::Pyocni => {
            if let Some(p) = &def.pattern {
                put(&mut o, "pattern", p.source().clone());
            }
            if let Some(e) = &def.enumeration {
                put(&mut o, "enum", e.clone());
            }
            if let Some(m) = def.minimum {
                put(&mut o, "minimum", m);
            }
            if let Some(m) = def.maximum {
                put(&mut o, "maximum", m);
            }
            // The OCCI 1.2 schema allows no member of its own: only this dialect says it.
            if def.is_indexed() {
                put(&mut o, "indexed", true);
            }
        }
    }
    Value::Object(o)
}

/// Renders one category.
pub fn render_category(cat: &Category, dialect: Dialect) -> Value {
    let mut o = Map::new();
    put(&mut o, "term", cat.term.as_str());
    put(&mut o, "scheme", cat.scheme.as_str());
    if let Some(t) = &cat.title {
        put(&mut o, "title", t.as_str());
    }
    match dialect {
        Dialect::Occi12 => {
            if cat.class == Class::Kind
                && let Some(p) = &cat.parent
            {
                put(&mut o, "parent", p.as_str());
            }
            if cat.class == Class::Mixin {
                put_list(&mut o, "depends", &cat.depends);
                put_list(&mut o, "applies", &cat.applies);
            }
            if !cat.attributes.is_empty() {
                let attrs: Map<String, Value> =
                    cat.attributes.iter().map(|d| (d.name.clone(), render_def(d, dialect))).collect();
                put(&mut o, "attributes", attrs);
            }
        }
        Dialect::Pyocni => {
            if cat.class != Class::Action {
                let related: Vec<String> = cat.parent.iter().chain(cat.depends.iter()).cloned().collect();
                put(&mut o, "related", related);
            }
            if cat.class == Class::Mixin {
                put_list(&mut o, "applies", &cat.applies);
            }
            if !cat.attributes.is_empty() {
                put(
                    &mut o,
                    "attributes",
                    nest(cat.attributes.iter().map(|d| (d.name.as_str(), render_def(d, dialect)))),
                );
            }
        }
    }
    if cat.class != Class::Action {
        put_list(&mut o, "actions", &cat.actions);
    }
    if let Some(l) = &cat.location {
        put(&mut o, "location", l.as_str());
    }
    Value::Object(o)
}

/// Renders categories as a collection: `{"kinds": [...], "mixins": [...], "actions": [...]}`.
/// OCCI 1.2 leaves out empty arrays (the schema wants at least one item); pyOCNI always has all
/// three.
pub fn render_categories<'a>(cats: impl IntoIterator<Item = &'a Category>, dialect: Dialect) -> Value {
    let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for c in Class::ALL {
        groups.insert(c.plural(), Vec::new());
    }
    for cat in cats {
        groups.get_mut(cat.class.plural()).unwrap().push(render_category(cat, dialect));
    }
    let mut o = Map::new();
    for c in Class::ALL {
        let list = groups.remove(c.plural()).unwrap();
        if dialect == Dialect::Pyocni || !list.is_empty() {
            put(&mut o, c.plural(), list);
        }
    }
    Value::Object(o)
}

/// The proper dotted prefixes of a name: `a` and `a.b` for `a.b.c`.
fn dotted_prefixes(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices('.').map(move |(i, _)| &name[..i])
}

/// Builds the pyOCNI nested form of dotted names. A name that is a dotted prefix of another, or
/// has another as dotted prefix, keeps its flat spelling so that no value is lost.
///
/// Linear in the total length of the names: whether a name is a prefix of another is one lookup
/// in the set of every name's proper dotted prefixes, not a scan of all the other names.
pub fn nest<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let pairs: Vec<(&str, Value)> = pairs.into_iter().collect();
    let names: HashSet<&str> = pairs.iter().map(|(n, _)| *n).collect();
    let prefixes: HashSet<&str> = pairs.iter().flat_map(|(n, _)| dotted_prefixes(n)).collect();
    let mut root = Map::new();
    for (name, value) in pairs {
        if prefixes.contains(name) || dotted_prefixes(name).any(|p| names.contains(p)) {
            root.insert(name.to_string(), value);
            continue;
        }
        let mut node = &mut root;
        let mut segs = name.split('.').peekable();
        while let Some(seg) = segs.next() {
            if segs.peek().is_none() {
                node.insert(seg.to_string(), value);
                break;
            }
            let entry = node.entry(seg.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            node = entry.as_object_mut().unwrap();
        }
    }
    Value::Object(root)
}

/// A link end as rendered: absolute, `base` (the server's scheme and authority, e.g.
/// `http://example.com:8090`) before a local path; an end outside the server (an absolute URL,
/// stored as given) as it is. Both ends of a link are rendered so, in every rendering.
pub fn link_end_url(base: &str, location: &str) -> String {
    if location.starts_with('/') { format!("{base}{location}") } else { location.to_string() }
}

/// Renders one entity. `links` are the links whose source is this resource (rendered inline);
/// `base` makes link ends absolute ([`link_end_url`]); `kind_of_location` tells the kind of a
/// local entity (for link ends).
pub fn render_entity(
    e: &Entity,
    catalog: &Catalog,
    links: &[Entity],
    dialect: Dialect,
    base: &str,
    kind_of_location: &dyn Fn(&str) -> Option<String>,
) -> Value {
    let mut o = Map::new();
    put(&mut o, "kind", e.kind.as_str());
    put_list(&mut o, "mixins", &e.mixins);
    let plain: Vec<(&str, Value)> = e
        .attributes
        .iter()
        .filter(|(k, _)| !TOP_LEVEL_ATTRS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let actions = catalog.applicable_actions(e);
    match dialect {
        Dialect::Occi12 => {
            put(&mut o, "attributes", Value::Object(plain.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
            put_list(&mut o, "actions", &actions);
        }
        Dialect::Pyocni => {
            put(&mut o, "attributes", nest(plain));
            let links: Vec<Value> = actions
                .iter()
                .map(|a| {
                    let term = a.rsplit('#').next().unwrap_or("");
                    let mut l = Map::new();
                    if let Some(t) = catalog.get(a).and_then(|c| c.title.clone()) {
                        put(&mut l, "title", t);
                    }
                    put(&mut l, "href", format!("{}?action={term}", e.location));
                    put(&mut l, "category", a.as_str());
                    Value::Object(l)
                })
                .collect();
            if !links.is_empty() {
                put(&mut o, "actions", links);
            }
        }
    }
    put(&mut o, "id", e.id());
    if let Some(t) = e.attr_str(ATTR_TITLE) {
        put(&mut o, "title", t);
    }
    if let Some(s) = e.attr_str(ATTR_SUMMARY) {
        put(&mut o, "summary", s);
    }
    if let (Some(src), Some(tgt)) = (e.source(), e.target()) {
        let (src_url, tgt_url) = (link_end_url(base, src), link_end_url(base, tgt));
        match dialect {
            Dialect::Occi12 => {
                let mut s = Map::new();
                put(&mut s, "location", src_url);
                if let Some(k) = kind_of_location(src) {
                    put(&mut s, "kind", k);
                }
                put(&mut o, "source", s);
                let mut t = Map::new();
                put(&mut t, "location", tgt_url);
                if let Some(k) = e.attr_str(ATTR_TARGET_KIND).map(str::to_string).or_else(|| kind_of_location(tgt)) {
                    put(&mut t, "kind", k);
                }
                put(&mut o, "target", t);
            }
            Dialect::Pyocni => {
                put(&mut o, "source", src_url);
                put(&mut o, "target", tgt_url);
                if let Some(k) = e.attr_str(ATTR_TARGET_KIND) {
                    put(&mut o, "target_kind", k);
                }
            }
        }
    }
    if !links.is_empty() {
        let rendered: Vec<Value> =
            links.iter().map(|l| render_entity(l, catalog, &[], dialect, base, kind_of_location)).collect();
        put(&mut o, "links", rendered);
    }
    Value::Object(o)
}

/// Wraps entity renderings as an entity collection: `{"resources": [...], "links": [...]}`;
/// empty groups are left out (GFD.226 schema), except in pyOCNI's single-entity answer.
pub fn entity_collection(resources: Vec<Value>, links: Vec<Value>) -> Value {
    let mut o = Map::new();
    if !resources.is_empty() {
        put(&mut o, "resources", resources);
    }
    if !links.is_empty() {
        put(&mut o, "links", links);
    }
    Value::Object(o)
}

/// A list of locations: pyOCNI `{"X-OCCI-Location": [...]}`, OCCI 1.2 a JSON array.
pub fn render_locations(urls: Vec<String>, dialect: Dialect) -> Value {
    match dialect {
        Dialect::Occi12 => json!(urls),
        Dialect::Pyocni => json!({ "X-OCCI-Location": urls }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::parse_category;
    use proptest::prelude::*;

    /// Both ends of a link are absolute in both dialects, inline links of a resource too; an
    /// end outside the server is rendered as given.
    #[test]
    fn link_ends_are_absolute() {
        let catalog = Catalog::builtin();
        let vm = catalog
            .create_entity(
                &parse_entity_input(&json!({"kind": "http://schemas.ogf.org/occi/infrastructure#compute"})).unwrap(),
                "/compute/a",
                "a",
            )
            .unwrap();
        let link = |target: &str| {
            let input = parse_entity_input(&json!({
                "kind": "http://schemas.ogf.org/occi/infrastructure#networkinterface",
                "source": "/compute/a", "target": target,
                "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}}))
            .unwrap();
            catalog.create_entity(&input, "/networkinterface/l", "l").unwrap()
        };
        let base = "http://example.com:8090";
        let local = link("/network/b");
        let v = render_entity(&local, &catalog, &[], Dialect::Occi12, base, &|_| None);
        assert_eq!(v["source"]["location"], "http://example.com:8090/compute/a", "{v}");
        assert_eq!(v["target"]["location"], "http://example.com:8090/network/b", "{v}");
        let v = render_entity(&local, &catalog, &[], Dialect::Pyocni, base, &|_| None);
        assert_eq!(
            (&v["source"], &v["target"]),
            (&json!(format!("{base}/compute/a")), &json!(format!("{base}/network/b")))
        );
        let v = render_entity(&vm, &catalog, std::slice::from_ref(&local), Dialect::Occi12, base, &|_| None);
        assert_eq!(v["links"][0]["source"]["location"], "http://example.com:8090/compute/a", "{v}");
        assert_eq!(v["links"][0]["target"]["location"], "http://example.com:8090/network/b", "{v}");
        let foreign = link("http://elsewhere.example/network/b");
        let v = render_entity(&foreign, &catalog, &[], Dialect::Occi12, base, &|_| None);
        assert_eq!(v["target"]["location"], "http://elsewhere.example/network/b", "{v}");
        assert_eq!(v["source"]["location"], "http://example.com:8090/compute/a", "{v}");
    }

    #[test]
    fn nest_keeps_prefix_names_flat() {
        let v = nest([("a.b", json!(1)), ("a.c.d", json!(2)), ("x", json!(3)), ("x.y", json!(4))]);
        assert_eq!(v, json!({"a": {"b": 1, "c": {"d": 2}}, "x": 3, "x.y": 4}));
    }

    /// The rule `nest` had when it compared every name with every other (quadratic), kept as
    /// the reference its faster form must agree with.
    fn nest_reference<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        let pairs: Vec<(&str, Value)> = pairs.into_iter().collect();
        let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
        let mut root = Map::new();
        for (name, value) in pairs {
            let under = |a: &str, b: &str| a.len() > b.len() && a.starts_with(b) && a.as_bytes()[b.len()] == b'.';
            if names.iter().any(|o| under(o, name) || under(name, o)) {
                root.insert(name.to_string(), value);
                continue;
            }
            let mut node = &mut root;
            let mut segs = name.split('.').peekable();
            while let Some(seg) = segs.next() {
                if segs.peek().is_none() {
                    node.insert(seg.to_string(), value);
                    break;
                }
                let entry = node.entry(seg.to_string()).or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                node = entry.as_object_mut().unwrap();
            }
        }
        Value::Object(root)
    }

    #[test]
    fn nest_matches_reference_on_edge_cases() {
        let cases: &[&[&str]] = &[
            &[],
            &["a"],
            &["a", "a"],
            &["a", "ab"],
            &["a", "a.b"],
            &["a.b", "a"],
            &["a", "a.b", "a.b.c"],
            &["a.b.c", "a"],
            &["a.b", "a.c", "a.b.c"],
            &["ab.c", "a"],
            &["a.bc", "a.b"],
            &["", ".a", "a."],
            &["a..b", "a.", "a"],
            &[".", "..", "x"],
            &["x.y", "x.y", "x"],
            &["occi.core.title", "occi.core.target", "occi.core.target.kind"],
        ];
        for names in cases {
            let pairs = || names.iter().enumerate().map(|(i, n)| (*n, json!(i)));
            assert_eq!(nest(pairs()), nest_reference(pairs()), "names {names:?}");
        }
    }

    /// 30,000 attributes, a third nested under one name, the rest in prefix pairs kept flat:
    /// a comparison of every name with every other (900 million) would not finish in a test run.
    #[test]
    fn nest_many_attributes() {
        const N: usize = 10_000;
        let names: Vec<String> = (0..N).flat_map(|i| [format!("g.n{i}"), format!("f{i}"), format!("f{i}.x")]).collect();
        let v = nest(names.iter().enumerate().map(|(i, n)| (n.as_str(), json!(i))));
        let root = v.as_object().unwrap();
        assert_eq!(root.len(), 1 + 2 * N);
        let g = root["g"].as_object().unwrap();
        assert_eq!(g.len(), N);
        assert_eq!(g["n0"], json!(0));
        assert_eq!(g[&format!("n{}", N - 1)], json!(3 * (N - 1)));
        assert_eq!(root["f7"], json!(22));
        assert_eq!(root["f7.x"], json!(23));
        assert!(!root.contains_key("g.n7") && !root.contains_key("f7.x.x"));
    }

    fn arb_def() -> impl Strategy<Value = AttributeDef> {
        (
            "[a-z]{1,6}(\\.[a-z]{1,6}){0,3}",
            prop::option::of(prop::sample::select(vec![AttrType::String, AttrType::Number, AttrType::Boolean])),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
            prop::option::of("[a-z ]{0,12}"),
        )
            .prop_map(|(name, ty, mutable, required, description)| AttributeDef {
                name,
                ty,
                mutable,
                required,
                description,
                ..Default::default()
            })
    }

    proptest! {
        /// `nest` agrees with the old all-pairs rule on small sets of names, odd ones included
        /// (empty segments, repeats, shared starts that are not dotted prefixes).
        #[test]
        fn nest_matches_reference(names in prop::collection::vec("[ab.]{0,5}", 0..8)) {
            let pairs = || names.iter().enumerate().map(|(i, n)| (n.as_str(), json!(i)));
            prop_assert_eq!(nest(pairs()), nest_reference(pairs()));
        }

        /// Rendering a category and parsing the rendering gives the same category, in both
        /// dialects (with the members a rendering makes explicit filled in).
        #[test]
        fn category_render_parse_round_trip(
            term in "[a-z][a-z0-9_]{0,8}",
            host in "[a-z]{1,8}",
            title in prop::option::of("[A-Za-z ]{0,16}"),
            defs in prop::collection::vec(arb_def(), 0..6),
            mixin in any::<bool>(),
        ) {
            // Names must be unique and none a prefix of another for the nested dialect.
            let mut defs_unique: Vec<AttributeDef> = Vec::new();
            for d in defs {
                if !defs_unique.iter().any(|o| o.name == d.name || o.name.starts_with(&format!("{}.", d.name)) || d.name.starts_with(&format!("{}.", o.name))) {
                    defs_unique.push(d);
                }
            }
            let class = if mixin { Class::Mixin } else { Class::Kind };
            let cat = Category {
                class, term: term.clone(), scheme: format!("http://{host}.example/occi#"), title,
                attributes: defs_unique, actions: vec![], parent: None, depends: vec![], applies: vec![],
                location: Some(format!("/{term}/")), builtin: false,
            };
            for dialect in [Dialect::Occi12, Dialect::Pyocni] {
                let rendered = render_category(&cat, dialect);
                let back = parse_category(class, &rendered).unwrap();
                prop_assert_eq!(render_category(&back, dialect), rendered.clone());
                prop_assert_eq!(back.attributes.len(), cat.attributes.len());
                // The nested dialect groups names by prefix, so compare in name order.
                let mut want = cat.attributes.clone();
                let mut got = back.attributes.clone();
                want.sort_by(|a, b| a.name.cmp(&b.name));
                got.sort_by(|a, b| a.name.cmp(&b.name));
                for (a, b) in want.iter().zip(got.iter()) {
                    prop_assert_eq!(&a.name, &b.name);
                    prop_assert_eq!(a.ty(), b.ty());
                    prop_assert_eq!(a.is_mutable(), b.is_mutable());
                    prop_assert_eq!(a.is_required(), b.is_required());
                    prop_assert_eq!(&a.description, &b.description);
                }
            }
        }

        /// An entity rendered in either dialect and parsed back, then rebuilt by the catalog,
        /// is the same entity.
        #[test]
        fn entity_render_parse_round_trip(
            cores in 1i64..64,
            memory in 0.5f64..512.0,
            hostname in "[a-z]{1,10}",
            title in prop::option::of("[A-Za-z0-9 ]{0,20}"),
        ) {
            let catalog = Catalog::builtin();
            let mut input = EntityInput {
                kind: Some("http://schemas.ogf.org/occi/infrastructure#compute".into()),
                title,
                ..Default::default()
            };
            input.attributes.insert("occi.compute.cores".into(), json!(cores));
            input.attributes.insert("occi.compute.memory".into(), json!(memory));
            input.attributes.insert("occi.compute.hostname".into(), json!(hostname));
            let e = catalog.create_entity(&input, "/compute/abc", "abc").unwrap();
            for dialect in [Dialect::Occi12, Dialect::Pyocni] {
                let rendered = render_entity(&e, &catalog, &[], dialect, "http://example.com", &|_| None);
                let parsed = parse_entity_input(&rendered).unwrap();
                let rebuilt = catalog.create_entity(&parsed, "/compute/abc", "abc").unwrap();
                prop_assert_eq!(&rebuilt, &e);
            }
        }
    }
}
