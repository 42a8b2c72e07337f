//! Tests of cursor listings and of the attribute index: the index answers what a scan does.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use ocni_model::filter::{EntityFilter, parse_entity_filters};
use ocni_model::{Category, Class, Entity, parse_category};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{Applied, Page, Reads, Source, Step, Store};

const COMPUTE: &str = "http://schemas.ogf.org/occi/infrastructure#compute";
const NETWORK: &str = "http://schemas.ogf.org/occi/infrastructure#network";
const TPL: &str = "http://schemas.ogf.org/occi/infrastructure#os_tpl";
const TITLE: &str = "occi.core.title";
const STATE: &str = "occi.compute.state";

fn write<T>(store: &Store, f: impl FnOnce(&mut Step) -> crate::Result<T>) -> T {
    let mut step = store.step().unwrap();
    let out = f(&mut step).unwrap();
    assert!(matches!(store.commit_step(step).unwrap(), Applied::Done { .. }));
    out
}

fn ent(loc: &str, kind: &str, mixins: &[&str], attrs: Value) -> Entity {
    Entity {
        location: loc.into(),
        kind: kind.into(),
        mixins: mixins.iter().map(|m| m.to_string()).collect(),
        attributes: attrs.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        inapplicable: None,
    }
}

/// What a scan answers (the server's path without the index).
fn scan(
    r: &impl Reads,
    tenant: &str,
    source: Source<'_>,
    filters: &[EntityFilter],
    after: Option<&str>,
    offset: usize,
    limit: usize,
) -> Vec<String> {
    let mut hits = Vec::new();
    r.each_entity_after(tenant, source, after, &mut |e| {
        if filters.iter().any(|f| f.matches(&e)) {
            hits.push(e.location);
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    hits.into_iter().skip(offset).take(limit).collect()
}

fn indexed(
    r: &impl Reads,
    tenant: &str,
    source: Source<'_>,
    filters: &[EntityFilter],
    after: Option<&str>,
    offset: usize,
    limit: usize,
) -> Option<Vec<String>> {
    r.find_indexed(tenant, source, filters, after, offset, limit)
        .unwrap()
        .map(|es| es.into_iter().map(|e| e.location).collect())
}

#[test]
fn cursor_pages_cover_a_listing_once_whatever_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    write(&store, |w| {
        for i in 0..25 {
            let mixins: &[&str] = if i % 3 == 0 { &[TPL] } else { &[] };
            w.put_entity("t", &ent(&format!("/compute/{i:02}"), COMPUTE, mixins, json!({})))?;
        }
        w.put_entity("t", &ent("/compute0", NETWORK, &[], json!({})))?;
        w.put_entity("t", &ent("/network/n", NETWORK, &[], json!({})))?;
        w.put_entity("u", &ent("/compute/99", COMPUTE, &[], json!({})))
    });
    let r = store.read().unwrap();
    for source in [Source::Kind(COMPUTE), Source::Mixin(TPL), Source::Prefix("/compute/"), Source::Prefix("/")] {
        let all = r.locations("t", source, Page::ALL).unwrap();
        for limit in [1, 4, 7, 100] {
            let mut pages = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = r.locations_after("t", source, after.as_deref(), limit).unwrap();
                pages.extend(page.iter().cloned());
                if page.len() < limit {
                    break;
                }
                after = page.last().cloned();
            }
            assert_eq!(pages, all, "{source:?} by {limit}");
        }
    }
    // A position outside the listing's range gives the right rest: nothing, or all of it.
    assert!(r.locations_after("t", Source::Prefix("/compute/"), Some("/zzz"), 10).unwrap().is_empty());
    assert_eq!(r.locations_after("t", Source::Prefix("/compute/"), Some("/a"), 100).unwrap().len(), 25);
}

#[test]
fn a_category_marking_an_attribute_indexed_indexes_what_exists_and_unmarking_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    write(&store, |w| {
        for i in 0..10 {
            w.put_entity(
                "t",
                &ent(&format!("/c/{i}"), COMPUTE, &[], json!({"my.colour": if i % 2 == 0 { "red" } else { "blue" }})),
            )?;
        }
        Ok(())
    });
    let red = parse_entity_filters(&json!({"attributes": {"my.colour": "red"}})).unwrap();
    let r = store.read().unwrap();
    assert_eq!(indexed(&r, "t", Source::Kind(COMPUTE), &red, None, 0, 100), None, "not indexed yet: scan");
    drop(r);
    let mixin = |indexed: bool| -> Category {
        parse_category(
            Class::Mixin,
            &json!({"term": "paint", "scheme": "http://example.com/x#", "location": "/paint/",
                "attributes": {"my.colour": {"type": "string", "mutable": true, "required": false, "indexed": indexed}}}),
        )
        .unwrap()
    };
    write(&store, |w| w.put_category("t", &mixin(true)));
    let r = store.read().unwrap();
    assert!(r.indexed_attributes("t").unwrap().contains("my.colour"));
    assert!(!r.indexed_attributes("u").unwrap().contains("my.colour"), "per tenant");
    let want = scan(&r, "t", Source::Kind(COMPUTE), &red, None, 0, 100);
    assert_eq!(want.len(), 5);
    assert_eq!(indexed(&r, "t", Source::Kind(COMPUTE), &red, None, 0, 100), Some(want.clone()));
    drop(r);
    // New and changed entities follow.
    write(&store, |w| {
        w.put_entity("t", &ent("/c/1", COMPUTE, &[], json!({"my.colour": "red"})))?;
        w.put_entity("t", &ent("/c/0", COMPUTE, &[], json!({"my.colour": "green"})))?;
        w.delete_entity("t", "/c/2").map(drop)
    });
    let r = store.read().unwrap();
    let want = scan(&r, "t", Source::Prefix("/"), &red, None, 0, 100);
    assert_eq!(want, ["/c/1", "/c/4", "/c/6", "/c/8"]);
    assert_eq!(indexed(&r, "t", Source::Prefix("/"), &red, None, 0, 100), Some(want));
    drop(r);
    // Unmarked: the entries go, and filters scan again.
    write(&store, |w| w.put_category("t", &mixin(false)));
    let r = store.read().unwrap();
    assert!(!r.indexed_attributes("t").unwrap().contains("my.colour"));
    assert_eq!(indexed(&r, "t", Source::Kind(COMPUTE), &red, None, 0, 100), None);
    assert_eq!(r.indexed_kinds("t", "my.colour").unwrap(), Vec::<String>::new());
    drop(r);
    write(&store, |w| w.put_category("t", &mixin(true)));
    write(&store, |w| w.delete_category("t", "http://example.com/x#paint").map(drop));
    assert_eq!(store.read().unwrap().indexed_kinds("t", "my.colour").unwrap(), Vec::<String>::new());
}

/// A category step that indexes existing entities read them: an entity written meanwhile makes
/// it conflict, so the index never misses that entity.
#[test]
fn marking_an_attribute_indexed_conflicts_with_a_concurrent_entity_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let cat = parse_category(
        Class::Mixin,
        &json!({"term": "p", "scheme": "http://example.com/x#", "location": "/p/",
            "attributes": {"my.a": {"type": "string", "indexed": true}}}),
    )
    .unwrap();
    let mut marker = store.step().unwrap();
    marker.put_category("t", &cat).unwrap();
    let mut writer = store.step().unwrap();
    writer.put_entity("t", &ent("/c/1", COMPUTE, &[], json!({"my.a": "x"}))).unwrap();
    let mut w = store.begin_batch().unwrap();
    assert!(matches!(w.apply(writer.finish()).unwrap(), Applied::Done { .. }));
    assert!(matches!(w.apply(marker.finish()).unwrap(), Applied::Conflict { .. }));
    store.commit_batch(w).unwrap();
    // And the other order: the entity step read the indexed set, which the category changed.
    let mut marker = store.step().unwrap();
    marker.put_category("t", &cat).unwrap();
    let mut writer = store.step().unwrap();
    writer.put_entity("t", &ent("/c/2", COMPUTE, &[], json!({"my.a": "x"}))).unwrap();
    let mut w = store.begin_batch().unwrap();
    assert!(matches!(w.apply(marker.finish()).unwrap(), Applied::Done { .. }));
    assert!(matches!(w.apply(writer.finish()).unwrap(), Applied::Conflict { .. }));
    store.commit_batch(w).unwrap();
    write(&store, |w| w.put_entity("t", &ent("/c/2", COMPUTE, &[], json!({"my.a": "x"}))));
    let f = parse_entity_filters(&json!({"attributes": {"my.a": "x"}})).unwrap();
    let r = store.read().unwrap();
    assert_eq!(indexed(&r, "t", Source::Kind(COMPUTE), &f, None, 0, 10), Some(vec!["/c/1".into(), "/c/2".into()]));
}

/// A version 2 store (no attribute index, no jobs) opens as the current version with the index
/// of what it holds and empty job tables.
#[test]
fn a_version_2_store_is_migrated_with_its_attribute_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).unwrap();
        write(&store, |w| {
            for i in 0..6 {
                let state = if i < 2 { "active" } else { "inactive" };
                w.put_entity("t", &ent(&format!("/compute/{i}"), COMPUTE, &[], json!({STATE: state, TITLE: "vm"})))?;
            }
            Ok(())
        });
        // What version 2 left: no index tables, no marker.
        let txn = store.db().unwrap().begin_write().unwrap();
        txn.delete_table(crate::BY_ATTR).unwrap();
        txn.delete_table(crate::INDEXED).unwrap();
        txn.delete_table(crate::JOBS).unwrap();
        txn.delete_table(crate::JOBS_OPEN).unwrap();
        {
            let mut meta = txn.open_table(crate::META).unwrap();
            meta.insert("schema_version", "2").unwrap();
            meta.remove("builtin_indexed").unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), crate::SCHEMA_VERSION);
    let r = store.read().unwrap();
    assert!(r.open_jobs(10).unwrap().is_empty());
    let f = parse_entity_filters(&json!({"attributes": {STATE: "active"}})).unwrap();
    assert_eq!(
        indexed(&r, "t", Source::Kind(COMPUTE), &f, None, 0, 10),
        Some(vec!["/compute/0".into(), "/compute/1".into()])
    );
}

#[derive(Debug, Clone)]
struct Op {
    n: u8,
    kind: bool,
    mixin: bool,
    title: Option<u8>,
    state: Option<u8>,
    delete: bool,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0..12u8,
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(0..4u8),
        proptest::option::of(0..3u8),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(n, kind, mixin, title, state, delete)| Op { n, kind, mixin, title, state, delete })
}

/// Titles as a filter can want them: strings, numbers (2 and 2.0 are equal), booleans, null.
fn title_value(t: u8) -> Value {
    match t {
        0 => json!("a"),
        1 => json!(2),
        2 => json!(2.0),
        _ => json!(true),
    }
}

fn filter() -> impl Strategy<Value = Value> {
    (0..5u8, proptest::option::of(any::<bool>()), any::<bool>(), proptest::option::of(0..3u8)).prop_map(
        |(t, kind, mixin, state)| {
            let mut f = serde_json::Map::new();
            let title = if t == 4 { json!(null) } else { title_value(t) };
            f.insert("title".into(), title);
            if let Some(k) = kind {
                f.insert("kind".into(), json!(if k { COMPUTE } else { NETWORK }));
            }
            if mixin {
                f.insert("mixins".into(), json!([TPL]));
            }
            if let Some(s) = state {
                let state = ["active", "inactive", "error"][s as usize];
                f.insert("attributes".into(), json!({ STATE: state }));
            }
            Value::Object(f)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Differential: on any history of writes, for every source, page window and cursor, the
    /// index answers exactly what the scan does.
    #[test]
    fn the_index_answers_what_a_scan_does(
        ops in proptest::collection::vec(op(), 0..30),
        filters in proptest::collection::vec(filter(), 1..3),
        offset in 0..3usize,
        limit in 1..6usize,
        after in proptest::option::of(0..12u8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        for chunk in ops.chunks(4) {
            write(&store, |w| {
                for o in chunk {
                    let loc = format!("/e/{:02}", o.n);
                    if o.delete {
                        w.delete_entity("t", &loc)?;
                        continue;
                    }
                    let mut attrs = BTreeMap::new();
                    if let Some(t) = o.title {
                        attrs.insert(TITLE.to_string(), title_value(t));
                    }
                    if let Some(s) = o.state {
                        attrs.insert(STATE.to_string(), json!(["active", "inactive", "error"][s as usize]));
                    }
                    let kind = if o.kind { COMPUTE } else { NETWORK };
                    let mixins: &[&str] = if o.mixin { &[TPL] } else { &[] };
                    w.put_entity("t", &ent(&loc, kind, mixins, serde_json::to_value(attrs).unwrap()))?;
                }
                Ok(())
            });
        }
        let filters: Vec<EntityFilter> = filters.iter().flat_map(|f| parse_entity_filters(f).unwrap()).collect();
        let after = after.map(|n| format!("/e/{n:02}"));
        let r = store.read().unwrap();
        for source in [Source::Kind(COMPUTE), Source::Kind(NETWORK), Source::Mixin(TPL), Source::Prefix("/e/"), Source::Prefix("/")] {
            let want = scan(&r, "t", source, &filters, after.as_deref(), offset, limit);
            let got = indexed(&r, "t", source, &filters, after.as_deref(), offset, limit);
            prop_assert_eq!(got, Some(want), "{:?}", source);
        }
    }
}
