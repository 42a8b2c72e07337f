//! The etcd engine of the store, below the HTTP layer: two stores on one cluster and prefix
//! stand for two ocni nodes. Conflicts are found by `mod_revision` compares (a key changed, a
//! range grown or shrunk, a catalog generation moved), creates of one tenant do not conflict,
//! a tenant goes by range deletes, components larger than one etcd request round-trip in
//! chunks, and a write larger than one transaction may be is refused whole.

use ocni_model::{Catalog, Entity, parse_entity_input};
use ocni_store::{Applied, EtcdTarget, HandlerRecord, Page, Reads, Step, Store, TenantRecord, TokenRecord};
use ocni_tests::COMPUTE;
use ocni_tests::etcd::EtcdCluster;
use serde_json::json;

fn vm(c: &Catalog, loc: &str, title: &str) -> Entity {
    let v = json!({"kind": COMPUTE, "attributes": {"occi.core.title": title}});
    c.create_entity(&parse_entity_input(&v).unwrap(), loc, loc.rsplit('/').next().unwrap()).unwrap()
}

/// Two stores ("nodes") on a fresh prefix of `cluster`, with room for `ops` per transaction.
fn nodes(cluster: &EtcdCluster, prefix: &str, ops: usize) -> (Store, Store) {
    let target: EtcdTarget = format!("{}/{prefix}", cluster.url()).parse().unwrap();
    (Store::open_etcd(&target, ops).unwrap(), Store::open_etcd(&target, ops).unwrap())
}

fn done(a: Applied) {
    assert!(matches!(a, Applied::Done { .. }), "{a:?}");
}

/// Prepares one step on `store` with `f` and applies it alone; it must apply.
fn write<T>(store: &Store, f: impl FnOnce(&mut Step) -> ocni_store::Result<T>) -> T {
    let mut step = store.step().unwrap();
    let out = f(&mut step).unwrap();
    done(store.commit_step(step).unwrap());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_steps_conflict_on_what_they_read_and_only_on_that() {
    let cluster = EtcdCluster::start(1).await;
    let (a, b) = nodes(&cluster, "conflicts", 128);
    let c = Catalog::builtin();
    write(&a, |s| {
        s.put_entity("t", &vm(&c, "/compute/1", "one"))?;
        s.put_entity("t", &vm(&c, "/compute/2", "two"))
    });

    // Node B sees A's acknowledged write once synced.
    b.sync().await.unwrap();
    assert_eq!(b.read().unwrap().by_kind("t", COMPUTE, Page::ALL).unwrap(), ["/compute/1", "/compute/2"]);
    assert_eq!(b.read().unwrap().entity_count("t").unwrap(), 2);

    // Two updates of one entity prepared side by side, on two nodes: the second conflicts.
    let (mut on_a, mut on_b) = (a.step().unwrap(), b.step().unwrap());
    for (s, title) in [(&mut on_a, "from a"), (&mut on_b, "from b")] {
        assert!(s.entity("t", "/compute/1").unwrap().is_some());
        s.put_entity("t", &vm(&c, "/compute/1", title)).unwrap();
    }
    done(a.commit_step(on_a).unwrap());
    assert_eq!(b.commit_step(on_b).unwrap(), Applied::Conflict { table: "entities", key: "t /compute/1".into() });

    // Creates of other entities of the same tenant and kind, on both nodes: no conflict (the
    // entity count is no key), and the counts follow.
    let (mut on_a, mut on_b) = (a.step().unwrap(), b.step().unwrap());
    on_a.put_entity("t", &vm(&c, "/compute/3", "three")).unwrap();
    on_b.put_entity("t", &vm(&c, "/compute/4", "four")).unwrap();
    done(a.commit_step(on_a).unwrap());
    done(b.commit_step(on_b).unwrap());
    a.sync().await.unwrap();
    assert_eq!(a.read().unwrap().entity_count("t").unwrap(), 4);

    // A listing read conflicts with a member added since, and with one removed since.
    for change in ["add", "remove"] {
        b.sync().await.unwrap();
        let mut lister = b.step().unwrap();
        let n = lister.by_kind("t", COMPUTE, Page::ALL).unwrap().len();
        lister.kv_set("t", "h", "seen", &[n as u8]).unwrap();
        match change {
            "add" => write(&a, |s| s.put_entity("t", &vm(&c, "/compute/5", "five"))),
            _ => assert_eq!(write(&a, |s| s.delete_entity("t", "/compute/2")), ["/compute/2"]),
        }
        let applied = b.commit_step(lister).unwrap();
        assert!(matches!(applied, Applied::Conflict { table: "by_kind", .. }), "{change}: {applied:?}");
    }
    b.sync().await.unwrap();
    assert_eq!(b.read().unwrap().kv_get("t", "h", "seen").unwrap(), None, "no conflicting step wrote");

    // A catalog change moves the tenant's generation; a step that expects the old one conflicts.
    b.sync().await.unwrap();
    let g = b.read().unwrap().catalog_generation("t").unwrap();
    let mut stale = b.step().unwrap();
    stale.expect_generation("t", g);
    let mut bind = a.step().unwrap();
    bind.set_binding("t", COMPUTE, Some("h")).unwrap();
    assert_eq!(a.commit_step(bind).unwrap(), Applied::Done { generations: vec![("t".into(), g + 1)] });
    stale.kv_set("t", "h", "k", b"v").unwrap();
    assert!(matches!(b.commit_step(stale).unwrap(), Applied::Conflict { table: "counters", .. }));
    b.sync().await.unwrap();
    write(&b, |fresh| {
        fresh.expect_generation("t", g + 1);
        fresh.kv_set("t", "h", "k", b"v")
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_tenant_deletes_are_range_deletes_and_components_come_in_chunks() {
    let cluster = EtcdCluster::start(1).await;
    let (a, b) = nodes(&cluster, "tenants", 128);
    let c = Catalog::builtin();
    // 2.5 MiB: three chunks, each under etcd's 1.5 MiB request limit.
    let component: Vec<u8> = (0..2_621_440u32).map(|i| (i % 251) as u8).collect();
    let record = |name: &str| HandlerRecord {
        name: name.into(),
        digest: "d1".into(),
        size: component.len() as u64,
        ..Default::default()
    };
    for t in ["a", "ab"] {
        write(&a, |s| {
            s.put_tenant(&TenantRecord { name: t.into(), created: 1, limits: Default::default() })?;
            s.put_token(&TokenRecord {
                id: format!("{t}-1"),
                tenant: t.into(),
                secret_sha256: "00".into(),
                created: 1,
            })?;
            s.put_entity(t, &vm(&c, "/compute/1", t))?;
            s.put_handler(t, &record("h"), &component)?;
            s.kv_set(t, "h", "k", b"v")
        });
    }
    b.sync().await.unwrap();
    let blob = b.read().unwrap().handler_blob("ab", "d1").unwrap();
    assert_eq!(blob.as_deref(), Some(&component[..]), "node B reads the component A stored");

    assert_eq!(write(&b, |s| s.delete_tenant("a")), ["a-1"]);
    a.sync().await.unwrap();
    let r = a.read().unwrap();
    assert!(r.tenant("a").unwrap().is_none());
    assert!(r.entity("a", "/compute/1").unwrap().is_none());
    assert!(r.handlers("a").unwrap().is_empty());
    assert!(r.kv_get("a", "h", "k").unwrap().is_none());
    assert_eq!(r.entity_count("a").unwrap(), 0);
    assert_eq!(r.tokens().unwrap().iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["ab-1"]);
    assert!(r.entity("ab", "/compute/1").unwrap().is_some(), "a prefix of a name leaves the other tenant");
    assert_eq!(r.kv_get("ab", "h", "k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_writes_larger_than_a_transaction_are_refused_whole() {
    let cluster = EtcdCluster::start(1).await;
    let (a, _b) = nodes(&cluster, "large", 16);
    let c = Catalog::builtin();
    let mut s = a.step().unwrap();
    for i in 0..20 {
        s.put_entity("t", &vm(&c, &format!("/compute/{i}"), "x")).unwrap();
    }
    let applied = a.commit_step(s).unwrap();
    assert!(matches!(applied, Applied::TooLarge { max: 16, needed } if needed > 16), "{applied:?}");
    a.sync().await.unwrap();
    assert_eq!(a.read().unwrap().entity_count("t").unwrap(), 0, "nothing of it was written");
    // A write within the limit goes through.
    write(&a, |s| s.put_entity("t", &vm(&c, "/compute/x", "x")));
}

/// A step that read more keys than a transaction may compare is checked table by table (one
/// compare over the span of its reads): it applies when nothing it read changed, and a deletion
/// among what it read (a tombstone written) still makes it conflict.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_steps_that_read_many_keys_are_checked_by_span() {
    let cluster = EtcdCluster::start(1).await;
    let (a, b) = nodes(&cluster, "wide", 16);
    let c = Catalog::builtin();
    for chunk in 0..10 {
        // Four operations an entity (itself, its kind and two indexed attributes).
        write(&a, |s| (0..3).try_for_each(|i| s.put_entity("t", &vm(&c, &format!("/compute/{chunk}{i}"), "x"))));
    }
    let read_all = |store: &Store| {
        let mut s = store.step().unwrap();
        let locations = s.by_kind("t", COMPUTE, Page::ALL).unwrap();
        assert_eq!(locations.len(), 30, "more reads than the 16 compares a transaction may hold");
        for loc in &locations {
            assert!(s.entity("t", loc).unwrap().is_some());
        }
        s.kv_set("t", "h", "read", b"30").unwrap();
        s
    };
    b.sync().await.unwrap();
    done(b.commit_step(read_all(&b)).unwrap());
    let wide = read_all(&b);
    assert_eq!(write(&a, |s| s.delete_entity("t", "/compute/71")), ["/compute/71"]);
    assert!(matches!(b.commit_step(wide).unwrap(), Applied::Conflict { .. }));
}

/// The keys of `cluster` under `prefix`, read with `etcdctl`.
fn etcd_keys(cluster: &EtcdCluster, prefix: &str) -> Vec<String> {
    let endpoints = cluster.url().trim_start_matches("etcd://").to_string();
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &endpoints, "get", prefix, "--prefix", "--keys-only"])
        .output()
        .expect("etcdctl runs (Debian: etcd-client)");
    assert!(out.status.success(), "etcdctl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// A component no handler uses any more has its chunks removed (two collection rounds, about
/// 40 s, later); the one still used keeps them.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_chunks_of_components_no_handler_uses_are_removed() {
    let cluster = EtcdCluster::start(1).await;
    let (a, _b) = nodes(&cluster, "chunks", 128);
    let old: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let new: Vec<u8> = (0..1_200_000u32).map(|i| (i % 241) as u8).collect();
    let record = |digest: &str, size: usize| HandlerRecord {
        name: "h".into(),
        digest: digest.into(),
        size: size as u64,
        ..Default::default()
    };
    write(&a, |s| s.put_handler("t", &record("dold", old.len()), &old));
    assert_eq!(etcd_keys(&cluster, "/chunks/blob/dold/").len(), 2, "1.5 MB in chunks of 1 MiB");
    // The handler gets other bytes: the old manifest goes, its chunks are no one's.
    write(&a, |s| s.put_handler("t", &record("dnew", new.len()), &new));
    let started = std::time::Instant::now();
    while !etcd_keys(&cluster, "/chunks/blob/dold/").is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(90), "the old chunks are still there");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(etcd_keys(&cluster, "/chunks/blob/dnew/").len(), 2);
    a.sync().await.unwrap();
    assert_eq!(a.read().unwrap().handler_blob("t", "dnew").unwrap().as_deref(), Some(&new[..]));
}
