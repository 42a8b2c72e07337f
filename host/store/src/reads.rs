//! The read operations of the store, written once over two raw primitives (`get` of one key,
//! `scan` of a key range) that a read transaction, a write transaction and a [`Step`](crate::Step)
//! each provide in their own way.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use ocni_model::catalog::builtin_indexed_attributes;
use ocni_model::filter::{EntityFilter, index_key};
use ocni_model::{Category, Entity};
#[allow(unused_imports)] // Used by the `Writer` expansion of `raw_over_txn!` (table methods).
use redb::ReadableTable;

use crate::{
    ENTITY_COUNT, HandlerRecord, JobRecord, Page, Result, Source, StoreError, TenantRecord, TokenRecord, decode, key2,
    key3, prefix_end,
};

/// The tables, as the raw primitives name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tbl {
    Categories,
    Bindings,
    Entities,
    ByKind,
    ByMixin,
    ByEnd,
    Handlers,
    HandlerBlobs,
    HandlerKv,
    Counters,
    Tenants,
    Tokens,
    ByAttr,
    Indexed,
    Jobs,
    JobsOpen,
}

impl Tbl {
    pub(crate) const ALL: [Tbl; 16] = [
        Tbl::Categories,
        Tbl::Bindings,
        Tbl::Entities,
        Tbl::ByKind,
        Tbl::ByMixin,
        Tbl::ByEnd,
        Tbl::Handlers,
        Tbl::HandlerBlobs,
        Tbl::HandlerKv,
        Tbl::Counters,
        Tbl::Tenants,
        Tbl::Tokens,
        Tbl::ByAttr,
        Tbl::Indexed,
        Tbl::Jobs,
        Tbl::JobsOpen,
    ];

    /// Whether the table is server-wide (keyed by tenant name or token id), not a tenant's.
    pub(crate) fn is_admin(self) -> bool {
        matches!(self, Tbl::Tenants | Tbl::Tokens)
    }

    /// The table of a name (as [`Tbl::name`] gives it).
    pub(crate) fn from_name(name: &str) -> Option<Tbl> {
        Tbl::ALL.into_iter().find(|t| t.name() == name)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Tbl::Categories => "categories",
            Tbl::Bindings => "bindings",
            Tbl::Entities => "entities",
            Tbl::ByKind => "by_kind",
            Tbl::ByMixin => "by_mixin",
            Tbl::ByEnd => "by_end",
            Tbl::Handlers => "handlers",
            Tbl::HandlerBlobs => "handler_blobs",
            Tbl::HandlerKv => "handler_kv",
            Tbl::Counters => "counters",
            Tbl::Tenants => "tenants",
            Tbl::Tokens => "tokens",
            Tbl::ByAttr => "by_attr",
            Tbl::Indexed => "indexed",
            Tbl::Jobs => "jobs",
            Tbl::JobsOpen => "jobs_open",
        }
    }
}

/// Runs `$body` with `$def` bound to the redb definition of `$tbl` (one monomorphic arm per
/// table: their value types differ).
macro_rules! with_def {
    ($tbl:expr, $def:ident => $body:expr) => {
        match $tbl {
            $crate::reads::Tbl::Categories => {
                let $def = $crate::CATEGORIES;
                $body
            }
            $crate::reads::Tbl::Bindings => {
                let $def = $crate::BINDINGS;
                $body
            }
            $crate::reads::Tbl::Entities => {
                let $def = $crate::ENTITIES;
                $body
            }
            $crate::reads::Tbl::ByKind => {
                let $def = $crate::BY_KIND;
                $body
            }
            $crate::reads::Tbl::ByMixin => {
                let $def = $crate::BY_MIXIN;
                $body
            }
            $crate::reads::Tbl::ByEnd => {
                let $def = $crate::BY_END;
                $body
            }
            $crate::reads::Tbl::Handlers => {
                let $def = $crate::HANDLERS;
                $body
            }
            $crate::reads::Tbl::HandlerBlobs => {
                let $def = $crate::HANDLER_BLOBS;
                $body
            }
            $crate::reads::Tbl::HandlerKv => {
                let $def = $crate::HANDLER_KV;
                $body
            }
            $crate::reads::Tbl::Counters => {
                let $def = $crate::COUNTERS;
                $body
            }
            $crate::reads::Tbl::Tenants => {
                let $def = $crate::TENANTS;
                $body
            }
            $crate::reads::Tbl::Tokens => {
                let $def = $crate::TOKENS;
                $body
            }
            $crate::reads::Tbl::ByAttr => {
                let $def = $crate::BY_ATTR;
                $body
            }
            $crate::reads::Tbl::Indexed => {
                let $def = $crate::INDEXED;
                $body
            }
            $crate::reads::Tbl::Jobs => {
                let $def = $crate::JOBS;
                $body
            }
            $crate::reads::Tbl::JobsOpen => {
                let $def = $crate::JOBS_OPEN;
                $body
            }
        }
    };
}
pub(crate) use with_def;

/// A key range: from `start` (included) to `end` (excluded; `None`: to the end of the table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub start: String,
    pub end: Option<String>,
}

impl KeyRange {
    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &str) -> KeyRange {
        KeyRange { start: prefix.to_string(), end: prefix_end(prefix) }
    }

    pub(crate) fn bounds(&self) -> (std::ops::Bound<&str>, std::ops::Bound<&str>) {
        use std::ops::Bound;
        (Bound::Included(self.start.as_str()), self.end.as_deref().map_or(Bound::Unbounded, Bound::Excluded))
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        key >= self.start.as_str() && self.end.as_deref().is_none_or(|e| key < e)
    }
}

/// What a scan calls with each key and value: continue or stop.
pub type Visit<'a> = dyn FnMut(&str, &[u8]) -> Result<ControlFlow<()>> + 'a;

pub(crate) mod sealed {
    use super::*;

    /// What a reader must provide: one key, and a scan of a range in key order.
    pub trait Raw {
        /// Calls `f` with the bytes stored at `key` of `tbl` (`None`: nothing there).
        fn get_raw<T>(&self, tbl: Tbl, key: &str, f: impl FnOnce(Option<&[u8]>) -> Result<T>) -> Result<T>;

        /// Calls `f` with each key and value of `range` in key order, skipping the first `skip`,
        /// until `f` breaks or the range ends.
        fn scan_raw(&self, tbl: Tbl, range: &KeyRange, skip: usize, f: &mut Visit<'_>) -> Result<()>;
    }
}

/// The reads of ocni's model, the same over a committed snapshot ([`Reader`](crate::Reader)), a
/// write transaction ([`Writer`](crate::Writer)) and a write being prepared
/// ([`Step`](crate::Step), which sees its own writes).
pub trait Reads: sealed::Raw {
    /// The tenant's own categories.
    fn categories(&self, tenant: &str) -> Result<Vec<Category>> {
        decode_range(self, Tbl::Categories, &format!("{tenant}\0"))
    }

    /// Provider (handler) bindings: category id -> name.
    fn bindings(&self, tenant: &str) -> Result<Vec<(String, String)>> {
        let prefix = format!("{tenant}\0");
        let mut out = Vec::new();
        self.scan_raw(Tbl::Bindings, &KeyRange::prefix(&prefix), 0, &mut |k, v| {
            out.push((k[prefix.len()..].to_string(), String::from_utf8_lossy(v).into_owned()));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    fn entity(&self, tenant: &str, location: &str) -> Result<Option<Entity>> {
        let key = key2(tenant, location);
        self.get_raw(Tbl::Entities, &key, |v| v.map(|v| decode(&key, v)).transpose())
    }

    /// Locations of the entities of one kind, in location order.
    fn by_kind(&self, tenant: &str, kind: &str, page: Page) -> Result<Vec<String>> {
        suffixes(self, Tbl::ByKind, &format!("{tenant}\0{kind}\0"), page)
    }

    /// Locations of the entities carrying one mixin, in location order.
    fn by_mixin(&self, tenant: &str, mixin: &str, page: Page) -> Result<Vec<String>> {
        suffixes(self, Tbl::ByMixin, &format!("{tenant}\0{mixin}\0"), page)
    }

    /// Locations of the entities whose location starts with `path`, in location order.
    fn by_prefix(&self, tenant: &str, path: &str, page: Page) -> Result<Vec<String>> {
        Ok(suffixes(self, Tbl::Entities, &format!("{tenant}\0{path}"), page)?
            .into_iter()
            .map(|rest| format!("{path}{rest}"))
            .collect())
    }

    /// One page of a listing's locations, in location order.
    fn locations(&self, tenant: &str, source: Source<'_>, page: Page) -> Result<Vec<String>> {
        match source {
            Source::Kind(kind) => self.by_kind(tenant, kind, page),
            Source::Mixin(mixin) => self.by_mixin(tenant, mixin, page),
            Source::Prefix(path) => self.by_prefix(tenant, path, page),
        }
    }

    /// One page of a listing's locations after the location `after` (`None`: from the start),
    /// in location order: a seek to `after` and a scan of the page, whatever the depth.
    fn locations_after(
        &self,
        tenant: &str,
        source: Source<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        Listing::of(tenant, source).scan(self, after, &mut |loc| {
            out.push(loc.to_string());
            Ok(if out.len() >= limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
        })?;
        Ok(out)
    }

    /// The entities of a listing, in location order, until `f` says to stop. Reads one entity
    /// at a time: the cost grows with how far the scan goes, not with the listing.
    fn each_entity(&self, tenant: &str, source: Source<'_>, f: &mut dyn FnMut(Entity) -> ControlFlow<()>) -> Result<()>
    where
        Self: Sized,
    {
        self.each_entity_after(tenant, source, None, f)
    }

    /// [`Reads::each_entity`] from the first location after `after`.
    fn each_entity_after(
        &self,
        tenant: &str,
        source: Source<'_>,
        after: Option<&str>,
        f: &mut dyn FnMut(Entity) -> ControlFlow<()>,
    ) -> Result<()>
    where
        Self: Sized,
    {
        let listing = Listing::of(tenant, source);
        if listing.tbl == Tbl::Entities {
            let Some(range) = listing.range_after(after) else { return Ok(()) };
            return self.scan_raw(Tbl::Entities, &range, 0, &mut |k, v| Ok(f(decode(k, v)?)));
        }
        // The index gives the locations; each entity is read by its key (outside the index
        // scan: a step's scan must not be re-entered).
        listing.scan_then(self, after, &mut |loc| {
            Ok(match self.entity(tenant, loc)? {
                Some(e) => f(e),
                None => ControlFlow::Continue(()),
            })
        })
    }

    /// The attributes the tenant's attribute index covers: those the built-in categories mark
    /// indexed and those its own categories do (kept in `indexed` by category writes).
    fn indexed_attributes(&self, tenant: &str) -> Result<BTreeSet<String>> {
        let mut set = builtin_indexed_attributes().clone();
        set.extend(suffixes(self, Tbl::Indexed, &format!("{tenant}\0"), Page::ALL)?);
        Ok(set)
    }

    /// The kinds of the tenant's entities that have an indexed `attribute` (a skip scan of the
    /// index: one seek per kind).
    fn indexed_kinds(&self, tenant: &str, attribute: &str) -> Result<Vec<String>> {
        let prefix = format!("{tenant}\0{attribute}\0");
        let mut range = KeyRange::prefix(&prefix);
        let mut kinds = Vec::new();
        loop {
            let mut next = None;
            self.scan_raw(Tbl::ByAttr, &range, 0, &mut |k, _| {
                next = k[prefix.len()..].split('\0').next().map(str::to_string);
                Ok(ControlFlow::Break(()))
            })?;
            let Some(kind) = next else { return Ok(kinds) };
            match prefix_end(&format!("{prefix}{kind}\0")) {
                Some(start) => range.start = start,
                None => range.end = Some(range.start.clone()),
            }
            kinds.push(kind);
            if range.end.as_ref().is_some_and(|end| range.start >= *end) {
                return Ok(kinds);
            }
        }
    }

    /// An equality filter answered by the attribute index: the entities of `source` after
    /// `after` that match one of `filters`, in location order, the first `offset` left out, at
    /// most `limit`. `None` when a filter states no indexed attribute with a scalar value (the
    /// caller scans). The answer is the scan's: every index hit is checked against the entity,
    /// and each (filter, kind) stream of the index stops once it has `offset + limit` matches.
    fn find_indexed(
        &self,
        tenant: &str,
        source: Source<'_>,
        filters: &[EntityFilter],
        after: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Option<Vec<Entity>>>
    where
        Self: Sized,
    {
        if filters.is_empty() {
            return Ok(None);
        }
        let indexed = self.indexed_attributes(tenant)?;
        let mut plan = Vec::new();
        for f in filters {
            let Some((name, key)) = f
                .attributes
                .iter()
                .filter(|(name, _)| indexed.contains(name.as_str()))
                .find_map(|(name, v)| Some((name, index_key(name, v)?)))
            else {
                return Ok(None);
            };
            plan.push((f, name, key));
        }
        let want = offset.saturating_add(limit);
        let mut found = BTreeMap::<String, Entity>::new();
        if want == 0 {
            return Ok(Some(Vec::new()));
        }
        for (f, name, key) in plan {
            let kinds = match (&f.kind, source) {
                (Some(k), Source::Kind(sk)) if k != sk => continue,
                (Some(k), _) => vec![k.clone()],
                (None, Source::Kind(sk)) => vec![sk.to_string()],
                (None, _) => self.indexed_kinds(tenant, name)?,
            };
            for kind in kinds {
                let listing =
                    Listing { tbl: Tbl::ByAttr, prefix: format!("{tenant}\0{name}\0{kind}\0{key}\0"), loc_at: None };
                let mut matches = 0;
                listing.scan_then(self, after, &mut |loc| {
                    let e = match found.get(loc) {
                        Some(e) => e.clone(),
                        None => match self.entity(tenant, loc)? {
                            Some(e) => e,
                            None => return Ok(ControlFlow::Continue(())),
                        },
                    };
                    let in_source = match source {
                        Source::Kind(k) => e.kind == k,
                        Source::Mixin(m) => e.mixins.iter().any(|x| x == m),
                        Source::Prefix(p) => e.location.starts_with(p),
                    };
                    if in_source && f.matches(&e) {
                        matches += 1;
                        found.entry(loc.to_string()).or_insert(e);
                    }
                    Ok(if matches >= want { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
                })?;
            }
        }
        Ok(Some(found.into_values().skip(offset).take(limit).collect()))
    }

    /// The tenant's handlers, by name.
    fn handlers(&self, tenant: &str) -> Result<Vec<HandlerRecord>> {
        decode_range(self, Tbl::Handlers, &format!("{tenant}\0"))
    }

    fn handler(&self, tenant: &str, name: &str) -> Result<Option<HandlerRecord>> {
        let key = key2(tenant, name);
        self.get_raw(Tbl::Handlers, &key, |v| v.map(|v| decode(&key, v)).transpose())
    }

    /// The uploaded bytes of a component.
    fn handler_blob(&self, tenant: &str, digest: &str) -> Result<Option<Vec<u8>>> {
        self.get_raw(Tbl::HandlerBlobs, &key2(tenant, digest), |v| Ok(v.map(<[u8]>::to_vec)))
    }

    fn kv_get(&self, tenant: &str, handler: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.get_raw(Tbl::HandlerKv, &key3(tenant, handler, key), |v| Ok(v.map(<[u8]>::to_vec)))
    }

    /// Keys of a handler's store that start with `prefix`, in order, at most `limit`.
    fn kv_keys(&self, tenant: &str, handler: &str, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let page = Page { offset: 0, limit };
        Ok(suffixes(self, Tbl::HandlerKv, &format!("{tenant}\0{handler}\0{prefix}"), page)?
            .into_iter()
            .map(|rest| format!("{prefix}{rest}"))
            .collect())
    }

    /// A job of the tenant.
    fn job(&self, tenant: &str, id: &str) -> Result<Option<JobRecord>> {
        let key = key2(tenant, id);
        self.get_raw(Tbl::Jobs, &key, |v| v.map(|v| decode(&key, v)).transpose())
    }

    /// The ids of the unfinished jobs of one entity, in submission order.
    fn open_jobs_of(&self, tenant: &str, entity: &str) -> Result<Vec<String>> {
        suffixes(self, Tbl::JobsOpen, &key3(tenant, entity, ""), Page::ALL)
    }

    /// Every unfinished job of every tenant, by tenant, entity and submission, at most
    /// `limit` (the job runner's queue).
    fn open_jobs(&self, limit: usize) -> Result<Vec<OpenJob>> {
        let mut out = Vec::new();
        self.scan_raw(Tbl::JobsOpen, &KeyRange { start: String::new(), end: None }, 0, &mut |k, _| {
            let mut parts = k.splitn(3, '\0');
            if let (Some(tenant), Some(rest)) = (parts.next(), parts.next().zip(parts.next())) {
                out.push(OpenJob { tenant: tenant.to_string(), entity: rest.0.to_string(), id: rest.1.to_string() });
            }
            Ok(if out.len() >= limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
        })?;
        Ok(out)
    }

    /// How many entities the tenant has (a counter, not a scan).
    fn entity_count(&self, tenant: &str) -> Result<u64> {
        counter(self, &key2(tenant, ENTITY_COUNT))
    }

    /// Every tenant, by name.
    fn tenants(&self) -> Result<Vec<TenantRecord>> {
        decode_range(self, Tbl::Tenants, "")
    }

    fn tenant(&self, name: &str) -> Result<Option<TenantRecord>> {
        self.get_raw(Tbl::Tenants, name, |v| v.map(|v| decode(name, v)).transpose())
    }

    /// Every token of every tenant, by id.
    fn tokens(&self) -> Result<Vec<TokenRecord>> {
        decode_range(self, Tbl::Tokens, "")
    }

    /// Links that have `resource` as source or target.
    fn links_at(&self, tenant: &str, resource: &str) -> Result<Vec<Entity>> {
        let mut out = Vec::new();
        // A location never holds a `\0` (routing refuses control characters); should an older
        // store hold one, the key of a resource `R\0X` is not one of R's.
        for loc in suffixes(self, Tbl::ByEnd, &format!("{tenant}\0{resource}\0"), Page::ALL)? {
            if !loc.contains('\0')
                && let Some(e) = self.entity(tenant, &loc)?
            {
                out.push(e);
            }
        }
        Ok(out)
    }
}

impl<T: sealed::Raw> Reads for T {}

/// An unfinished job, as the runner's queue lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OpenJob {
    pub tenant: String,
    pub entity: String,
    pub id: String,
}

/// Where a listing's keys are: a table, the prefix of its keys, and where in a key the location
/// starts (`None`: after the prefix; `Some(n)`: at byte `n`, for `entities`, whose keys are
/// tenant and location).
struct Listing {
    tbl: Tbl,
    prefix: String,
    loc_at: Option<usize>,
}

impl Listing {
    fn of(tenant: &str, source: Source<'_>) -> Listing {
        match source {
            Source::Kind(kind) => Listing { tbl: Tbl::ByKind, prefix: format!("{tenant}\0{kind}\0"), loc_at: None },
            Source::Mixin(m) => Listing { tbl: Tbl::ByMixin, prefix: format!("{tenant}\0{m}\0"), loc_at: None },
            Source::Prefix(path) => {
                Listing { tbl: Tbl::Entities, prefix: format!("{tenant}\0{path}"), loc_at: Some(tenant.len() + 1) }
            }
        }
    }

    fn location<'k>(&self, key: &'k str) -> &'k str {
        &key[self.loc_at.unwrap_or(self.prefix.len())..]
    }

    /// The keys after the one of location `after` (all of them without one); `None` when
    /// there is none.
    fn range_after(&self, after: Option<&str>) -> Option<KeyRange> {
        let mut range = KeyRange::prefix(&self.prefix);
        if let Some(after) = after {
            // Nothing sorts between a key and the key followed by NUL.
            let base = &self.prefix[..self.loc_at.unwrap_or(self.prefix.len())];
            let start = format!("{base}{after}\0");
            if start > range.start {
                range.start = start;
            }
        }
        match &range.end {
            Some(end) if range.start >= *end => None,
            _ => Some(range),
        }
    }

    /// Calls `f` with each location after `after`, in order, until it breaks.
    fn scan(
        &self,
        r: &(impl sealed::Raw + ?Sized),
        after: Option<&str>,
        f: &mut dyn FnMut(&str) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let Some(range) = self.range_after(after) else { return Ok(()) };
        r.scan_raw(self.tbl, &range, 0, &mut |k, _| f(self.location(k)))
    }

    /// [`Listing::scan`] in batches, `f` called between them (it may read the store: a step's
    /// scan must not be re-entered).
    fn scan_then(
        &self,
        r: &(impl sealed::Raw + ?Sized),
        after: Option<&str>,
        f: &mut dyn FnMut(&str) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        const BATCH: usize = 64;
        let mut batch = Vec::with_capacity(BATCH);
        let mut from = after.map(str::to_string);
        loop {
            batch.clear();
            self.scan(r, from.as_deref(), &mut |loc| {
                batch.push(loc.to_string());
                Ok(if batch.len() >= BATCH { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
            })?;
            for loc in &batch {
                if f(loc)?.is_break() {
                    return Ok(());
                }
            }
            if batch.len() < BATCH {
                return Ok(());
            }
            from = batch.pop();
        }
    }
}

/// The value of a counter (0 when it was never set).
pub(crate) fn counter(r: &(impl sealed::Raw + ?Sized), key: &str) -> Result<u64> {
    r.get_raw(Tbl::Counters, key, |v| {
        Ok(v.map_or(0, |b| u64::from_le_bytes(b.try_into().expect("counters hold u64 values"))))
    })
}

/// The last `\0`-separated parts of the keys under `prefix`, in key order, one page of them.
fn suffixes(r: &(impl sealed::Raw + ?Sized), tbl: Tbl, prefix: &str, page: Page) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if page.limit == 0 {
        return Ok(out);
    }
    r.scan_raw(tbl, &KeyRange::prefix(prefix), page.offset, &mut |k, _| {
        out.push(k[prefix.len()..].to_string());
        Ok(if out.len() >= page.limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    Ok(out)
}

/// Decodes every JSON value whose key starts with `prefix`, in key order.
fn decode_range<T: serde::de::DeserializeOwned>(
    r: &(impl sealed::Raw + ?Sized),
    tbl: Tbl,
    prefix: &str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    r.scan_raw(tbl, &KeyRange::prefix(prefix), 0, &mut |k, v| {
        out.push(decode(k, v)?);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// `get_raw` and `scan_raw` over any redb transaction (`$txn.open_table` differs in type only).
macro_rules! raw_over_txn {
    ($t:ty) => {
        impl sealed::Raw for $t {
            fn get_raw<T>(&self, tbl: Tbl, key: &str, f: impl FnOnce(Option<&[u8]>) -> Result<T>) -> Result<T> {
                with_def!(tbl, def => {
                    let t = self.txn().open_table(def).map_err(StoreError::from)?;
                    match t.get(key).map_err(StoreError::from)? {
                        Some(g) => f(Some(value_bytes(&def, &g.value()).as_ref())),
                        None => f(None),
                    }
                })
            }

            fn scan_raw(
                &self,
                tbl: Tbl,
                range: &KeyRange,
                skip: usize,
                f: &mut Visit<'_>,
            ) -> Result<()> {
                with_def!(tbl, def => {
                    let t = self.txn().open_table(def).map_err(StoreError::from)?;
                    for item in t.range::<&str>(range.bounds()).map_err(StoreError::from)?.skip(skip) {
                        let (k, v) = item.map_err(StoreError::from)?;
                        if f(k.value(), value_bytes(&def, &v.value()).as_ref())?.is_break() {
                            break;
                        }
                    }
                    Ok(())
                })
            }
        }
    };
}
raw_over_txn!(crate::RedbRead);
raw_over_txn!(crate::Writer);

impl sealed::Raw for crate::Reader {
    fn get_raw<T>(&self, tbl: Tbl, key: &str, f: impl FnOnce(Option<&[u8]>) -> Result<T>) -> Result<T> {
        match &self.0 {
            crate::ReadInner::Redb(r) => r.get_raw(tbl, key, f),
            // The table holds a manifest; the component's bytes are in chunks of their own.
            crate::ReadInner::Etcd { snap, etcd } if tbl == Tbl::HandlerBlobs => match snap.live(tbl, key) {
                Some(e) => f(Some(&etcd.blob(&e.value)?)),
                None => f(None),
            },
            crate::ReadInner::Etcd { snap, .. } => snap.get_raw(tbl, key, f),
        }
    }

    fn scan_raw(&self, tbl: Tbl, range: &KeyRange, skip: usize, f: &mut Visit<'_>) -> Result<()> {
        match &self.0 {
            crate::ReadInner::Redb(r) => r.scan_raw(tbl, range, skip, f),
            crate::ReadInner::Etcd { snap, .. } => snap.scan_raw(tbl, range, skip, f),
        }
    }
}

/// The bytes of a value of the table `def` (the redb encoding: a u64 as 8 little-endian bytes).
pub(crate) fn value_bytes<'a, V: redb::Value + 'static>(
    _def: &redb::TableDefinition<'static, &'static str, V>,
    v: &'a V::SelfType<'a>,
) -> <V as redb::Value>::AsBytes<'a> {
    V::as_bytes(v)
}
