//! A node's copy of the store's tables as etcd holds them, kept current by a watch: every read
//! of the etcd engine is served from a [`Snapshot`] of it, at one etcd revision.

use std::ops::ControlFlow;
use std::sync::Arc;

use imbl::{HashMap, OrdMap, OrdSet};

use crate::reads::sealed::Raw;
use crate::reads::{KeyRange, Tbl, Visit};
use crate::{Result, entity_count_tenant};

/// One key's value and the etcd revision that last wrote it. A deleted key stays a while as a
/// tombstone (`live` false): etcd's compares see no deletion, only writes, so the etcd engine
/// deletes by writing a tombstone (a range read's compare then catches it) and removes
/// tombstones later (see `etcd::collect`).
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub value: Arc<[u8]>,
    pub rev: i64,
    pub live: bool,
}

/// The first byte of a table value in etcd: a value, or a tombstone.
const LIVE: u8 = 0;
const TOMBSTONE: u8 = 1;

impl Entry {
    /// A key as etcd holds it (see [`encode`]).
    pub fn decode(raw: &[u8], rev: i64) -> Entry {
        match raw.split_first() {
            Some((&TOMBSTONE, _)) => Entry { value: Arc::from(&[][..]), rev, live: false },
            Some((&LIVE, v)) => Entry { value: Arc::from(v), rev, live: true },
            _ => Entry { value: Arc::from(raw), rev, live: true },
        }
    }
}

/// What etcd holds for a table value (`None`: a tombstone).
pub(crate) fn encode(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(LIVE);
            out.extend_from_slice(v);
            out
        }
        None => vec![TOMBSTONE],
    }
}

/// The tables at one etcd revision. Cloning is cheap (persistent maps sharing structure), so a
/// reader keeps its snapshot for as long as it likes while the watch moves on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    /// Every change up to and including this revision is in the snapshot.
    pub rev: i64,
    tables: OrdMap<Tbl, OrdMap<String, Entry>>,
    /// Tenant -> its entities (derived from `entities`: the etcd engine keeps no counter
    /// key, so that concurrent creates of a tenant do not conflict on one).
    counts: HashMap<String, u64>,
    /// Moves whenever a tenant record or a token changes (caches of them compare it).
    pub admin_changes: u64,
    /// The tombstones, by revision.
    tombstones: OrdSet<(i64, Tbl, String)>,
}

impl Snapshot {
    /// A key's entry, tombstones included.
    pub fn entry(&self, tbl: Tbl, key: &str) -> Option<&Entry> {
        self.tables.get(&tbl)?.get(key)
    }

    /// A key's value, when it is there.
    pub fn live(&self, tbl: Tbl, key: &str) -> Option<&Entry> {
        self.entry(tbl, key).filter(|e| e.live)
    }

    /// Tombstones written at or before `rev`, oldest first, at most `limit`.
    pub fn tombstones(&self, rev: i64, limit: usize) -> Vec<(i64, Tbl, String)> {
        self.tombstones.iter().take_while(|(r, ..)| *r <= rev).take(limit).cloned().collect()
    }

    /// The revision that last wrote `key` (0: not there), as etcd's `mod_revision` compares it.
    pub fn rev_of(&self, tbl: Tbl, key: &str) -> i64 {
        self.entry(tbl, key).map_or(0, |e| e.rev)
    }

    pub fn entity_count(&self, tenant: &str) -> u64 {
        self.counts.get(tenant).copied().unwrap_or(0)
    }

    /// The entries of `range`, in key order, tombstones included.
    pub fn range<'a>(
        &'a self,
        tbl: Tbl,
        range: &'a KeyRange,
    ) -> impl DoubleEndedIterator<Item = (&'a String, &'a Entry)> {
        self.tables.get(&tbl).into_iter().flat_map(move |t| t.range::<_, str>(range.bounds()))
    }

    /// Sets (or, with `None`, removes) one key, as a watch event or a listing says.
    pub fn set(&mut self, tbl: Tbl, key: &str, entry: Option<Entry>) {
        let present = entry.as_ref().is_some_and(|e| e.live);
        if let Some(e) = entry.as_ref().filter(|e| !e.live) {
            self.tombstones.insert((e.rev, tbl, key.to_string()));
        }
        let table = self.tables.entry(tbl).or_default();
        let old = match entry {
            Some(e) => table.insert(key.to_string(), e),
            None => table.remove(key),
        };
        if let Some(old) = old.as_ref().filter(|e| !e.live) {
            self.tombstones.remove(&(old.rev, tbl, key.to_string()));
        }
        let existed = old.is_some_and(|e| e.live);
        match tbl {
            Tbl::Entities => {
                let tenant = key.split('\0').next().unwrap_or_default();
                let n = self.counts.get(tenant).copied().unwrap_or(0);
                let n = match (existed, present) {
                    (false, true) => n + 1,
                    (true, false) => n.saturating_sub(1),
                    _ => n,
                };
                self.counts.insert(tenant.to_string(), n);
            }
            Tbl::Tenants | Tbl::Tokens => self.admin_changes += 1,
            _ => {}
        }
    }
}

impl Raw for Snapshot {
    fn get_raw<T>(&self, tbl: Tbl, key: &str, f: impl FnOnce(Option<&[u8]>) -> Result<T>) -> Result<T> {
        if tbl == Tbl::Counters
            && let Some(tenant) = entity_count_tenant(key)
        {
            let n = self.entity_count(tenant);
            return f((n > 0).then(|| n.to_le_bytes()).as_ref().map(|b| b.as_slice()));
        }
        f(self.live(tbl, key).map(|e| &*e.value))
    }

    fn scan_raw(&self, tbl: Tbl, range: &KeyRange, skip: usize, f: &mut Visit<'_>) -> Result<()> {
        for (k, e) in self.range(tbl, range).filter(|(_, e)| e.live).skip(skip) {
            if f(k, &e.value)? == ControlFlow::Break(()) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str, rev: i64) -> Option<Entry> {
        Some(Entry { value: Arc::from(v.as_bytes()), rev, live: true })
    }

    #[test]
    fn counts_follow_entities_and_snapshots_stay() {
        let mut s = Snapshot::default();
        s.set(Tbl::Entities, "t\0/a", entry("1", 2));
        s.set(Tbl::Entities, "t\0/b", entry("1", 3));
        let before = s.clone();
        s.set(Tbl::Entities, "t\0/a", entry("2", 4));
        s.set(Tbl::Entities, "u\0/a", entry("1", 5));
        s.set(Tbl::Entities, "t\0/b", None);
        s.set(Tbl::Entities, "t\0/zzz", None);
        assert_eq!((s.entity_count("t"), s.entity_count("u"), before.entity_count("t")), (1, 1, 2));
        assert_eq!((s.rev_of(Tbl::Entities, "t\0/a"), before.rev_of(Tbl::Entities, "t\0/a")), (4, 2));
        assert_eq!(s.rev_of(Tbl::Entities, "t\0/b"), 0);
        let all = KeyRange::prefix("t\0");
        let keys: Vec<&String> = before.range(Tbl::Entities, &all).map(|(k, _)| k).collect();
        assert_eq!(keys, ["t\0/a", "t\0/b"]);
        let n = s.get_raw(Tbl::Counters, "t\0entities", |v| Ok(v.map(|b| b.to_vec()))).unwrap();
        assert_eq!(n, Some(1u64.to_le_bytes().to_vec()));
        let admin = s.admin_changes;
        s.set(Tbl::Tokens, "id", entry("{}", 6));
        assert_eq!(s.admin_changes, admin + 1);
        // A tombstone is no entity and no value, but keeps its revision until it goes.
        s.set(Tbl::Entities, "t\0/a", Some(Entry::decode(&encode(None), 7)));
        assert_eq!((s.entity_count("t"), s.rev_of(Tbl::Entities, "t\0/a")), (0, 7));
        assert!(s.get_raw(Tbl::Entities, "t\0/a", |v| Ok(v.is_none())).unwrap());
        assert_eq!(s.tombstones(7, 10), [(7, Tbl::Entities, "t\0/a".to_string())]);
        assert!(s.tombstones(6, 10).is_empty());
        s.set(Tbl::Entities, "t\0/a", Some(Entry::decode(&encode(Some(b"x")), 8)));
        assert_eq!((s.entity_count("t"), s.tombstones(100, 10).len()), (1, 0), "written again");
        let live = Entry::decode(&encode(Some(&[1, 2])), 9);
        assert!(live.live && *live.value == [1, 2]);
    }
}
