//! Optimistic writes: a [`Step`] prepares a write against a committed snapshot, anywhere and in
//! parallel with others; [`Writer::apply`](crate::Writer::apply) then checks, inside the one
//! write transaction, that everything the step read is still as it was, and applies its writes.
//!
//! A step reads the snapshot plus its own writes. Every read of the snapshot is recorded: a
//! point read as (table, key, SHA-256 of the value or of its absence), a range read as (table,
//! range, the key where the reader stopped, SHA-256 of every entry visited). Applying re-reads
//! the same keys and ranges in the write transaction, which holds everything committed and
//! every step applied before in the same batch; a difference is a [`Applied::Conflict`] and
//! nothing of the step is written (the caller prepares it again on a newer snapshot). Steps are
//! thus serializable: a step that applies saw exactly the state it is applied to, as far as it
//! looked.
//!
//! Two things are not reads, so that concurrent steps of one tenant do not conflict on them:
//! - the tenant's entity count moves by a delta, and a step that adds entities carries a cap
//!   (`cap_entities`) checked against the count at apply time ([`Applied::Limit`]);
//! - the catalog generation of a tenant (a counter bumped whenever its categories, bindings or
//!   handlers change) is compared, not read: the server caches a tenant's catalog with the
//!   generation it was read at and has the step expect that generation (`expect_generation`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ocni_model::catalog::builtin_indexed_attributes;
use ocni_model::{Category, Entity};
use sha2::{Digest, Sha256};

use crate::etcd::mirror::Snapshot;
use crate::reads::{KeyRange, Reads, Tbl, Visit, counter, sealed::Raw, with_def};
use crate::{
    CATALOG_GENERATION, ENTITY_COUNT, HandlerRecord, JobRecord, Reader, Result, TenantRecord, TokenRecord, Writer,
    attr_keys, encode, key2, key3,
};

type Hash = [u8; 32];

/// One read of the snapshot, to be checked when the step is applied.
#[derive(Debug)]
pub(crate) enum Read {
    Point {
        tbl: Tbl,
        key: String,
        digest: Hash,
    },
    /// A value the step expects (not read from its snapshot: a catalog generation).
    Value {
        tbl: Tbl,
        key: String,
        value: Option<Vec<u8>>,
    },
    /// Entries of `range` up to and including `stop` (the whole range when `None`).
    Range {
        tbl: Tbl,
        range: KeyRange,
        stop: Option<String>,
        digest: Hash,
    },
}

/// The part of `range` a range read visited: up to and including `stop` (nothing sorts
/// between `stop` and `stop\0`), the whole range without one.
pub(crate) fn visited(range: &KeyRange, stop: Option<&str>) -> KeyRange {
    match stop {
        Some(s) => KeyRange { start: range.start.clone(), end: Some(format!("{s}\0")) },
        None => range.clone(),
    }
}

fn point_digest(value: Option<&[u8]>) -> Hash {
    let mut h = Sha256::new();
    match value {
        Some(v) => {
            h.update([1]);
            h.update(v);
        }
        None => h.update([0]),
    }
    h.finalize().into()
}

fn entry_digest(h: &mut Sha256, key: &str, value: &[u8]) {
    h.update((key.len() as u64).to_le_bytes());
    h.update(key.as_bytes());
    h.update((value.len() as u64).to_le_bytes());
    h.update(value);
}

/// The tenant a key belongs to (keys start with it).
fn tenant_of(key: &str) -> &str {
    key.split('\0').next().unwrap_or_default()
}

/// What a prepared step hands to the writer: what it read (to check) and what it writes.
#[derive(Debug, Default)]
pub struct WriteSet {
    pub(crate) reads: Vec<Read>,
    pub(crate) writes: BTreeMap<(Tbl, String), Option<Vec<u8>>>,
    /// Ranges removed whole (before `writes`): a tenant's keys when it is deleted.
    pub(crate) range_deletes: Vec<(Tbl, KeyRange)>,
    /// Counter key -> change (the tenants' entity counts).
    pub(crate) deltas: BTreeMap<String, i64>,
    /// Counter key -> (tenant, most allowed after this step).
    pub(crate) caps: BTreeMap<String, (String, u64)>,
    /// Tenants whose categories, bindings or handlers this step changes.
    pub(crate) touched: BTreeSet<String>,
    /// The snapshot the step read (etcd: its reads are compared by revision against it).
    pub(crate) snap: Option<Arc<Snapshot>>,
}

impl WriteSet {
    /// Does this step write nothing (then there is nothing to apply)?
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.range_deletes.is_empty() && self.deltas.values().all(|d| *d == 0)
    }

    fn deleted(&self, tbl: Tbl, key: &str) -> bool {
        self.range_deletes.iter().any(|(t, r)| *t == tbl && r.contains(key))
    }
}

/// How applying a step ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Written; the tenants whose catalog generation moved, with their new generation.
    Done { generations: Vec<(String, u64)> },
    /// Something the step read has changed since its snapshot: nothing was written.
    Conflict { table: &'static str, key: String },
    /// The step would take a tenant's entity count above its cap: nothing was written.
    Limit { tenant: String, max: u64 },
    /// The step needs more operations in one transaction than the store allows (etcd's
    /// `--max-txn-ops`): nothing was written.
    TooLarge { needed: usize, max: usize },
}

struct State {
    snap: Reader,
    set: WriteSet,
    /// Tenant -> its indexed attributes, as read by this step (dropped when the step changes
    /// them): one read of `indexed` per tenant and step, however many entities it writes.
    indexed: BTreeMap<String, BTreeSet<String>>,
}

/// A write in preparation. Cloning gives another handle on the same step (a handler's host
/// holds one while the handler runs); only [`Step::finish`] ends it.
#[derive(Clone)]
pub struct Step {
    state: Arc<Mutex<State>>,
}

impl Step {
    pub(crate) fn new(snap: Reader) -> Step {
        Step { state: Arc::new(Mutex::new(State { snap, set: WriteSet::default(), indexed: BTreeMap::new() })) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves at worst a step that is never applied.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The write set, to hand to [`Writer::apply`]; the step (every handle of it) is empty after.
    pub fn finish(self) -> WriteSet {
        let mut state = self.lock();
        let mut set = std::mem::take(&mut state.set);
        set.snap = state.snap.etcd_snapshot();
        set
    }

    /// Has this step changed the categories, bindings or handlers of `tenant`?
    pub fn touched(&self, tenant: &str) -> bool {
        self.lock().set.touched.contains(tenant)
    }

    /// The step holds only if the tenant's catalog generation is still `generation` when it
    /// is applied (the catalog the step was prepared with is the current one).
    pub fn expect_generation(&self, tenant: &str, generation: u64) {
        let read = Read::Value {
            tbl: Tbl::Counters,
            key: key2(tenant, CATALOG_GENERATION),
            value: (generation != 0).then(|| generation.to_le_bytes().to_vec()),
        };
        self.lock().set.reads.push(read);
    }

    /// The tenant's entity count as this step would leave it, were nothing else applied first
    /// (not a read: the count is checked again by the cap at apply time).
    pub fn entity_count_estimate(&self, tenant: &str) -> Result<u64> {
        let key = key2(tenant, ENTITY_COUNT);
        let state = self.lock();
        let base = counter(&state.snap, &key)?;
        Ok(base.saturating_add_signed(state.set.deltas.get(&key).copied().unwrap_or(0)))
    }

    /// Refuses (at apply time) a step that leaves the tenant with more than `max` entities.
    pub fn cap_entities(&self, tenant: &str, max: u64) {
        self.lock().set.caps.insert(key2(tenant, ENTITY_COUNT), (tenant.to_string(), max));
    }

    fn put_raw(&mut self, tbl: Tbl, key: String, value: Option<Vec<u8>>) {
        let mut state = self.lock();
        if matches!(tbl, Tbl::Categories | Tbl::Bindings | Tbl::Handlers | Tbl::HandlerBlobs) {
            let tenant = tenant_of(&key);
            if !state.set.touched.contains(tenant) {
                state.set.touched.insert(tenant.to_string());
            }
        }
        if tbl == Tbl::Indexed {
            let tenant = tenant_of(&key).to_string();
            state.indexed.remove(&tenant);
        }
        state.set.writes.insert((tbl, key), value);
    }

    fn exists(&self, tbl: Tbl, key: &str) -> Result<bool> {
        self.get_raw(tbl, key, |v| Ok(v.is_some()))
    }

    fn add_to_count(&mut self, tenant: &str, delta: i64) {
        *self.lock().set.deltas.entry(key2(tenant, ENTITY_COUNT)).or_default() += delta;
    }

    /// Writes a category; when that changes which attributes the tenant's categories mark
    /// indexed, the index follows in the same step (see [`Step::sync_indexed`]).
    pub fn put_category(&mut self, tenant: &str, cat: &Category) -> Result<()> {
        let old: Option<Category> = self.get_raw(Tbl::Categories, &key2(tenant, &cat.id()), |v| {
            v.map(|v| crate::decode(&key2(tenant, &cat.id()), v)).transpose()
        })?;
        let marks = |c: &Category| c.indexed_attributes().map(str::to_string).collect::<BTreeSet<_>>();
        let changed = old.as_ref().map(marks).unwrap_or_default() != marks(cat);
        self.put_raw(Tbl::Categories, key2(tenant, &cat.id()), Some(encode(cat)));
        if changed {
            self.sync_indexed(tenant)?;
        }
        Ok(())
    }

    /// Removes a category and its binding; false when there was no such category.
    pub fn delete_category(&mut self, tenant: &str, id: &str) -> Result<bool> {
        let key = key2(tenant, id);
        let old: Option<Category> =
            self.get_raw(Tbl::Categories, &key, |v| v.map(|v| crate::decode(&key, v)).transpose())?;
        if let Some(old) = &old {
            self.put_raw(Tbl::Categories, key, None);
            if old.indexed_attributes().next().is_some() {
                self.sync_indexed(tenant)?;
            }
        }
        self.set_binding(tenant, id, None)?;
        Ok(old.is_some())
    }

    /// Makes the tenant's attribute index cover exactly the attributes its categories mark
    /// indexed (besides the built-ins'): an attribute newly marked is indexed for every entity
    /// of the tenant that has it (a scan of the tenant's entities, in this step, so the index
    /// is complete from the moment the category is), one no longer marked has its entries
    /// removed. The step reads the tenant's entities: a concurrent entity write conflicts.
    fn sync_indexed(&mut self, tenant: &str) -> Result<()> {
        let builtin = builtin_indexed_attributes();
        let want: BTreeSet<String> = self
            .categories(tenant)?
            .iter()
            .flat_map(|c| c.indexed_attributes())
            .filter(|a| !builtin.contains(*a))
            .map(str::to_string)
            .collect();
        let prefix = format!("{tenant}\0");
        let mut have = BTreeSet::new();
        self.scan_raw(Tbl::Indexed, &KeyRange::prefix(&prefix), 0, &mut |k, _| {
            have.insert(k[prefix.len()..].to_string());
            Ok(ControlFlow::Continue(()))
        })?;
        for gone in have.difference(&want) {
            let entries = format!("{tenant}\0{gone}\0");
            let mut keys = Vec::new();
            self.scan_raw(Tbl::ByAttr, &KeyRange::prefix(&entries), 0, &mut |k, _| {
                keys.push(k.to_string());
                Ok(ControlFlow::Continue(()))
            })?;
            for key in keys {
                self.put_raw(Tbl::ByAttr, key, None);
            }
            self.put_raw(Tbl::Indexed, key2(tenant, gone), None);
        }
        let added: BTreeSet<String> = want.difference(&have).cloned().collect();
        if added.is_empty() {
            return Ok(());
        }
        for a in &added {
            self.put_raw(Tbl::Indexed, key2(tenant, a), Some(Vec::new()));
        }
        let mut keys = Vec::new();
        self.each_entity(tenant, crate::Source::Prefix("/"), &mut |e| {
            keys.extend(attr_keys(tenant, &e, &added));
            ControlFlow::Continue(())
        })?;
        for key in keys {
            self.put_raw(Tbl::ByAttr, key, Some(Vec::new()));
        }
        Ok(())
    }

    /// The tenant's indexed attributes, read once per step.
    fn indexed_set(&self, tenant: &str) -> Result<BTreeSet<String>> {
        if let Some(set) = self.lock().indexed.get(tenant) {
            return Ok(set.clone());
        }
        let set = self.indexed_attributes(tenant)?;
        self.lock().indexed.insert(tenant.to_string(), set.clone());
        Ok(set)
    }

    pub fn set_binding(&mut self, tenant: &str, id: &str, provider: Option<&str>) -> Result<()> {
        let key = key2(tenant, id);
        match provider {
            Some(p) => self.put_raw(Tbl::Bindings, key, Some(p.as_bytes().to_vec())),
            // Unbinding what has no binding changes nothing.
            None if self.exists(Tbl::Bindings, &key)? => self.put_raw(Tbl::Bindings, key, None),
            None => {}
        }
        Ok(())
    }

    /// Stores a handler and its component bytes (keeping no longer used bytes out).
    pub fn put_handler(&mut self, tenant: &str, record: &HandlerRecord, bytes: &[u8]) -> Result<()> {
        let old = self.handler(tenant, &record.name)?;
        self.put_raw(Tbl::Handlers, key2(tenant, &record.name), Some(encode(record)));
        self.put_raw(Tbl::HandlerBlobs, key2(tenant, &record.digest), Some(bytes.to_vec()));
        if let Some(old) = old
            && old.digest != record.digest
        {
            self.drop_blob_if_unused(tenant, &old.digest)?;
        }
        Ok(())
    }

    /// Removes a handler, its bytes (unless another handler uses them) and its key-value store.
    pub fn delete_handler(&mut self, tenant: &str, name: &str) -> Result<bool> {
        let Some(old) = self.handler(tenant, name)? else { return Ok(false) };
        self.put_raw(Tbl::Handlers, key2(tenant, name), None);
        self.drop_blob_if_unused(tenant, &old.digest)?;
        for key in self.kv_keys(tenant, name, "", usize::MAX)? {
            self.kv_delete(tenant, name, &key)?;
        }
        Ok(true)
    }

    fn drop_blob_if_unused(&mut self, tenant: &str, digest: &str) -> Result<()> {
        if !self.handlers(tenant)?.iter().any(|h| h.digest == digest) {
            self.put_raw(Tbl::HandlerBlobs, key2(tenant, digest), None);
        }
        Ok(())
    }

    pub fn kv_set(&mut self, tenant: &str, handler: &str, key: &str, value: &[u8]) -> Result<()> {
        self.put_raw(Tbl::HandlerKv, key3(tenant, handler, key), Some(value.to_vec()));
        Ok(())
    }

    pub fn kv_delete(&mut self, tenant: &str, handler: &str, key: &str) -> Result<()> {
        self.put_raw(Tbl::HandlerKv, key3(tenant, handler, key), None);
        Ok(())
    }

    /// Writes a job record, and keeps it in the runner's queue (`jobs_open`) while it is not
    /// finished.
    pub fn put_job(&mut self, tenant: &str, job: &JobRecord) -> Result<()> {
        self.put_raw(Tbl::Jobs, key2(tenant, &job.id), Some(encode(job)));
        let open = key3(tenant, &job.entity, &job.id);
        self.put_raw(Tbl::JobsOpen, open, (!job.state.is_final()).then(Vec::new));
        Ok(())
    }

    /// Writes an entity and keeps the indexes (and the tenant's entity count) in step.
    pub fn put_entity(&mut self, tenant: &str, e: &Entity) -> Result<()> {
        let indexed = self.indexed_set(tenant)?;
        let mut old = BTreeSet::new();
        match self.entity(tenant, &e.location)? {
            Some(prev) => old.extend(Self::index_keys(tenant, &prev, &indexed)),
            None => self.add_to_count(tenant, 1),
        }
        self.put_raw(Tbl::Entities, key2(tenant, &e.location), Some(encode(e)));
        // Only what changed: an update that keeps the kind, mixins, ends and indexed values
        // writes no index entry.
        let new: BTreeSet<(Tbl, String)> = Self::index_keys(tenant, e, &indexed).into_iter().collect();
        for gone in old.difference(&new) {
            self.put_raw(gone.0, gone.1.clone(), None);
        }
        for (tbl, key) in new.difference(&old) {
            self.put_raw(*tbl, key.clone(), Some(Vec::new()));
        }
        Ok(())
    }

    fn index_keys(tenant: &str, e: &Entity, indexed: &BTreeSet<String>) -> Vec<(Tbl, String)> {
        let mut keys = vec![(Tbl::ByKind, key3(tenant, &e.kind, &e.location))];
        keys.extend(e.mixins.iter().map(|m| (Tbl::ByMixin, key3(tenant, m, &e.location))));
        keys.extend(
            [e.source(), e.target()].into_iter().flatten().map(|end| (Tbl::ByEnd, key3(tenant, end, &e.location))),
        );
        keys.extend(attr_keys(tenant, e, indexed).map(|k| (Tbl::ByAttr, k)));
        keys
    }

    fn unindex(&mut self, tenant: &str, e: &Entity) -> Result<()> {
        let indexed = self.indexed_set(tenant)?;
        for (tbl, key) in Self::index_keys(tenant, e, &indexed) {
            self.put_raw(tbl, key, None);
        }
        Ok(())
    }

    /// Deletes an entity and every link that has it as source or target. Returns the locations
    /// removed (the entity first), empty when nothing was there. Iterative: no depth of links
    /// can exhaust a stack.
    pub fn delete_entity(&mut self, tenant: &str, location: &str) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let mut todo = vec![location.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(loc) = todo.pop() {
            if !seen.insert(loc.clone()) {
                continue;
            }
            let Some(e) = self.entity(tenant, &loc)? else { continue };
            let links = self.links_at(tenant, &loc)?;
            self.unindex(tenant, &e)?;
            self.put_raw(Tbl::Entities, key2(tenant, &loc), None);
            self.add_to_count(tenant, -1);
            removed.push(loc);
            // Reversed so that links go in the order they are listed.
            todo.extend(links.into_iter().rev().map(|l| l.location));
        }
        Ok(removed)
    }
}

/// Administration: tenants and their tokens.
impl Step {
    pub fn put_tenant(&mut self, tenant: &TenantRecord) -> Result<()> {
        self.put_raw(Tbl::Tenants, tenant.name.clone(), Some(encode(tenant)));
        Ok(())
    }

    pub fn put_token(&mut self, token: &TokenRecord) -> Result<()> {
        self.put_raw(Tbl::Tokens, token.id.clone(), Some(encode(token)));
        Ok(())
    }

    /// Removes a token of `tenant`; false when the tenant has no token with this id.
    pub fn delete_token(&mut self, tenant: &str, id: &str) -> Result<bool> {
        let owned = self
            .get_raw(Tbl::Tokens, id, |v| v.map(|v| crate::decode::<TokenRecord>(id, v)).transpose())?
            .is_some_and(|t| t.tenant == tenant);
        if owned {
            self.put_raw(Tbl::Tokens, id.to_string(), None);
        }
        Ok(owned)
    }

    /// Removes a tenant and everything it owns: its record, tokens, categories, bindings,
    /// entities and their indexes, handlers, component bytes, key-value data, jobs and
    /// counters (one range per table). Returns the ids of the tokens removed. A step of this
    /// tenant prepared before conflicts (it read the tenant's record) and is not applied.
    pub fn delete_tenant(&mut self, tenant: &str) -> Result<Vec<String>> {
        let ids: Vec<String> = self.tokens()?.into_iter().filter(|t| t.tenant == tenant).map(|t| t.id).collect();
        let range = KeyRange::prefix(&format!("{tenant}\0"));
        {
            let mut state = self.lock();
            // Every table but the server-wide ones has keys that start with the tenant.
            for tbl in Tbl::ALL.into_iter().filter(|t| !t.is_admin()) {
                state.set.writes.retain(|(t, k), _| *t != tbl || !range.contains(k));
                state.set.range_deletes.push((tbl, range.clone()));
            }
            state.set.touched.remove(tenant);
            state.set.deltas.retain(|k, _| !range.contains(k));
            state.set.caps.retain(|k, _| !range.contains(k));
        }
        for id in &ids {
            self.put_raw(Tbl::Tokens, id.clone(), None);
        }
        self.put_raw(Tbl::Tenants, tenant.to_string(), None);
        Ok(ids)
    }
}

impl Raw for Step {
    fn get_raw<T>(&self, tbl: Tbl, key: &str, f: impl FnOnce(Option<&[u8]>) -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        if let Some(v) = state.set.writes.get(&(tbl, key.to_string())) {
            return f(v.as_deref());
        }
        if state.set.deleted(tbl, key) {
            return f(None);
        }
        let State { snap, set, .. } = &mut *state;
        snap.get_raw(tbl, key, |v| {
            set.reads.push(Read::Point { tbl, key: key.to_string(), digest: point_digest(v) });
            f(v)
        })
    }

    fn scan_raw(&self, tbl: Tbl, range: &KeyRange, skip: usize, f: &mut Visit<'_>) -> Result<()> {
        let mut state = self.lock();
        let State { snap, set, .. } = &mut *state;
        let gone: Vec<KeyRange> = set.range_deletes.iter().filter(|(t, _)| *t == tbl).map(|(_, r)| r.clone()).collect();
        let mut own = set
            .writes
            .range((tbl, range.start.clone())..)
            .take_while(|((t, k), _)| *t == tbl && range.contains(k))
            .map(|((_, k), v)| (k.as_str(), v.as_deref()))
            .peekable();
        let mut hash = Sha256::new();
        let mut skipped = 0;
        let mut stop: Option<String> = None;
        // Hands one merged entry to `f`, after the first `skip`.
        let mut emit = |k: &str, v: &[u8], stop: &mut Option<String>| -> Result<ControlFlow<()>> {
            if skipped < skip {
                skipped += 1;
                return Ok(ControlFlow::Continue(()));
            }
            let flow = f(k, v)?;
            if flow.is_break() {
                *stop = Some(k.to_string());
            }
            Ok(flow)
        };
        snap.scan_raw(tbl, range, 0, &mut |k, v| {
            // The step's own entries before this one come first.
            while let Some((ok, ov)) = own.next_if(|(ok, _)| *ok < k) {
                if let Some(ov) = ov
                    && emit(ok, ov, &mut stop)?.is_break()
                {
                    return Ok(ControlFlow::Break(()));
                }
            }
            entry_digest(&mut hash, k, v);
            // The step's own write of this key hides the snapshot's, and so does its removal
            // of a range that holds the key.
            let value = match own.next_if(|(ok, _)| *ok == k) {
                Some((_, None)) => return Ok(ControlFlow::Continue(())),
                Some((_, Some(ov))) => ov,
                None if gone.iter().any(|r| r.contains(k)) => return Ok(ControlFlow::Continue(())),
                None => v,
            };
            emit(k, value, &mut stop)
        })?;
        if stop.is_none() {
            for (ok, ov) in own {
                if let Some(ov) = ov
                    && emit(ok, ov, &mut stop)?.is_break()
                {
                    break;
                }
            }
        }
        set.reads.push(Read::Range { tbl, range: range.clone(), stop, digest: hash.finalize().into() });
        Ok(())
    }
}

impl Writer {
    /// Applies a prepared step, if what it read is unchanged (see the module documentation).
    /// A storage failure midway leaves the transaction half-written: the caller must drop it.
    pub fn apply(&mut self, set: WriteSet) -> Result<Applied> {
        for read in &set.reads {
            let (tbl, key, same) = match read {
                Read::Point { tbl, key, digest } => {
                    (*tbl, key, self.get_raw(*tbl, key, |v| Ok(point_digest(v)))? == *digest)
                }
                Read::Value { tbl, key, value } => (*tbl, key, self.get_raw(*tbl, key, |v| Ok(v == value.as_deref()))?),
                Read::Range { tbl, range, stop, digest } => {
                    let mut hash = Sha256::new();
                    self.scan_raw(*tbl, &visited(range, stop.as_deref()), 0, &mut |k, v| {
                        entry_digest(&mut hash, k, v);
                        Ok(ControlFlow::Continue(()))
                    })?;
                    (*tbl, &range.start, <Hash>::from(hash.finalize()) == *digest)
                }
            };
            if !same {
                return Ok(Applied::Conflict { table: tbl.name(), key: key.replace('\0', " ") });
            }
        }
        for (key, (tenant, max)) in &set.caps {
            let delta = set.deltas.get(key).copied().unwrap_or(0);
            if delta > 0 && counter(self, key)?.saturating_add_signed(delta) > *max {
                return Ok(Applied::Limit { tenant: tenant.clone(), max: *max });
            }
        }
        for (tbl, range) in &set.range_deletes {
            with_def!(*tbl, def => {
                self.txn().open_table(def)?.retain_in::<&str, _>(range.bounds(), |_, _| false)?;
            });
        }
        // The writes are sorted by table: each table is opened once for all of its writes.
        let mut writes = set.writes.iter().peekable();
        while let Some(&(&(tbl, _), _)) = writes.peek() {
            with_def!(tbl, def => {
                let mut t = self.txn().open_table(def)?;
                while let Some(((_, key), value)) = writes.next_if(|((next, _), _)| *next == tbl) {
                    put_value(&mut t, key, value.as_deref())?;
                }
            });
        }
        for (key, delta) in &set.deltas {
            if *delta != 0 {
                let n = counter(self, key)?.saturating_add_signed(*delta);
                put_bytes(self.txn(), crate::COUNTERS, key, Some(&n.to_le_bytes()))?;
            }
        }
        let mut generations = Vec::new();
        for tenant in set.touched {
            let key = key2(&tenant, CATALOG_GENERATION);
            let g = counter(self, &key)? + 1;
            put_bytes(self.txn(), crate::COUNTERS, &key, Some(&g.to_le_bytes()))?;
            generations.push((tenant, g));
        }
        Ok(Applied::Done { generations })
    }
}

/// Puts the redb encoding `bytes` of a value at `key` (removes the key when `None`).
fn put_bytes<V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    def: redb::TableDefinition<'static, &'static str, V>,
    key: &str,
    bytes: Option<&[u8]>,
) -> Result<()> {
    put_value(&mut txn.open_table(def)?, key, bytes)
}

/// Puts the redb encoding `bytes` of a value at `key` of an open table (removes the key when
/// `None`).
fn put_value<V: redb::Value + 'static>(
    t: &mut redb::Table<'_, &'static str, V>,
    key: &str,
    bytes: Option<&[u8]>,
) -> Result<()> {
    match bytes {
        Some(b) => {
            t.insert(key, V::from_bytes(b))?;
        }
        None => {
            t.remove(key)?;
        }
    }
    Ok(())
}
