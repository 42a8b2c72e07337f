//! The read operations of the store, written once over two raw primitives (`get` of one key,
//! `scan` of a key range) that a read transaction, a write transaction and a [`Step`](crate::Step)
//! each provide in their own way.

use std::ops::ControlFlow;

use ocni_model::{Category, Entity};
#[allow(unused_imports)] // Used by the `Writer` expansion of `raw_over_txn!` (table methods).
use redb::ReadableTable;

use crate::{
    ENTITY_COUNT, HandlerRecord, Page, Result, Source, StoreError, TenantRecord, TokenRecord, decode, key2, key3,
    prefix_end,
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
}

impl Tbl {
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

    /// The entities of a listing, in location order, until `f` says to stop. Reads one entity
    /// at a time: the cost grows with how far the scan goes, not with the listing.
    fn each_entity(&self, tenant: &str, source: Source<'_>, f: &mut dyn FnMut(Entity) -> ControlFlow<()>) -> Result<()>
    where
        Self: Sized,
    {
        let (index, prefix) = match source {
            Source::Kind(kind) => (Some(Tbl::ByKind), format!("{tenant}\0{kind}\0")),
            Source::Mixin(mixin) => (Some(Tbl::ByMixin), format!("{tenant}\0{mixin}\0")),
            Source::Prefix(path) => (None, format!("{tenant}\0{path}")),
        };
        let range = KeyRange::prefix(&prefix);
        match index {
            Some(index) => {
                // The index gives the locations; each entity is read by its key (outside the
                // index scan: a step's scan must not be re-entered).
                let mut batch = Vec::with_capacity(64);
                let mut skip = 0;
                loop {
                    batch.clear();
                    self.scan_raw(index, &range, skip, &mut |k, _| {
                        batch.push(k[prefix.len()..].to_string());
                        Ok(if batch.len() >= 64 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
                    })?;
                    skip += batch.len();
                    for loc in &batch {
                        if let Some(e) = self.entity(tenant, loc)?
                            && f(e).is_break()
                        {
                            return Ok(());
                        }
                    }
                    if batch.len() < 64 {
                        return Ok(());
                    }
                }
            }
            None => self.scan_raw(Tbl::Entities, &range, 0, &mut |k, v| Ok(f(decode(k, v)?))),
        }
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
raw_over_txn!(crate::Reader);
raw_over_txn!(crate::Writer);

/// The bytes of a value of the table `def` (the redb encoding: a u64 as 8 little-endian bytes).
pub(crate) fn value_bytes<'a, V: redb::Value + 'static>(
    _def: &redb::TableDefinition<'static, &'static str, V>,
    v: &'a V::SelfType<'a>,
) -> <V as redb::Value>::AsBytes<'a> {
    V::as_bytes(v)
}
