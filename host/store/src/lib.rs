//! The only crate that knows redb: ocni's persistent state (categories, handler bindings,
//! entities and their indexes), every key scoped by tenant.
//!
//! Writes: [`Store::write`] runs one durable transaction. For group commit, [`Store::begin_batch`]
//! opens a transaction that many requests write in turn: each request is a *step*
//! ([`Writer::begin_step`]); a failed step is rolled back alone ([`Writer::undo_step`], which
//! replays the step's undo log), and [`Store::commit_batch`] commits the survivors with one
//! durable commit (one fsync for the whole batch).
//!
//! Tables (keys are `\0`-joined strings, so a prefix range lists one tenant's, one kind's or one
//! path's entries without touching others):
//! - `meta`: `schema_version` -> version
//! - `categories`: tenant, category id -> category (JSON)
//! - `bindings`: tenant, category id -> provider (handler) name
//! - `entities`: tenant, location -> entity (JSON)
//! - `by_kind`: tenant, kind id, location -> ()
//! - `by_mixin`: tenant, mixin id, location -> ()
//! - `by_end`: tenant, resource location, link location -> () (links by source and by target)
//! - `handlers`: tenant, handler name -> handler record (JSON: digest, size)
//! - `handler_blobs`: tenant, digest -> the uploaded component bytes (to recompile when the
//!   compiled cache is gone)
//! - `handler_kv`: tenant, handler name, key -> value (the handlers' private key-value stores)
//! - `counters`: tenant, counter name -> count (`entities`: the tenant's entities, kept in step
//!   by `put_entity` and `delete_entity`, so a limit check is no scan)
//!
//! Server-level tables (administration, not tenant data; keyed by tenant name or token id):
//! - `tenants`: tenant name -> tenant record (JSON: creation time, limits)
//! - `tokens`: token id -> token record (JSON: tenant, SHA-256 of the secret, creation time)

use std::path::Path;
use std::sync::Arc;

use ocni_model::{Category, Entity};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

/// Version 2 added `counters`, `tenants` and `tokens`; a version 1 store is migrated at open.
pub const SCHEMA_VERSION: &str = "2";

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const CATEGORIES: TableDefinition<&str, &[u8]> = TableDefinition::new("categories");
const BINDINGS: TableDefinition<&str, &str> = TableDefinition::new("bindings");
const ENTITIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entities");
const BY_KIND: TableDefinition<&str, ()> = TableDefinition::new("by_kind");
const BY_MIXIN: TableDefinition<&str, ()> = TableDefinition::new("by_mixin");
const BY_END: TableDefinition<&str, ()> = TableDefinition::new("by_end");
const HANDLERS: TableDefinition<&str, &[u8]> = TableDefinition::new("handlers");
const HANDLER_BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("handler_blobs");
const HANDLER_KV: TableDefinition<&str, &[u8]> = TableDefinition::new("handler_kv");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");

/// The counter of a tenant's entities (in `counters`).
const ENTITY_COUNT: &str = "entities";

/// An uploaded handler as stored: its name, and which component it is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HandlerRecord {
    pub name: String,
    /// SHA-256 of the component, hex.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: u64,
}

/// A tenant as stored. Limits are the ones set for it (by name, e.g. `max_entities`); the server
/// fills in its defaults for the others.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantRecord {
    pub name: String,
    /// Unix time (seconds) of creation.
    pub created: u64,
    #[serde(default)]
    pub limits: std::collections::BTreeMap<String, u64>,
}

/// An access token as stored: never the token itself, only the SHA-256 of its secret part.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenRecord {
    /// The public part of the token, its key.
    pub id: String,
    pub tenant: String,
    /// SHA-256 of the secret part, hex.
    pub secret_sha256: String,
    /// Unix time (seconds) of creation.
    pub created: u64,
}

/// Storage failures: never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("stored record {key:?} is corrupt: {source}")]
    Corrupt { key: String, source: serde_json::Error },
    #[error("data directory was written by schema version {found}, this build knows version {SCHEMA_VERSION}")]
    SchemaVersion { found: String },
    #[error("a view of the write transaction was still in use when it committed")]
    ViewOutlived,
    #[error("only a batch can undo a step")]
    NotABatch,
    #[error("{0} cannot be a step of a batch")]
    NotUndoable(&'static str),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn key2(a: &str, b: &str) -> String {
    format!("{a}\0{b}")
}
fn key3(a: &str, b: &str, c: &str) -> String {
    format!("{a}\0{b}\0{c}")
}
/// The exclusive end of the range of keys that start with `prefix`.
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_string();
    end.push('\u{10FFFF}');
    end
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { key: key.replace('\0', " "), source })
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("model types serialize")
}

/// Lists the last `\0`-separated part of the keys under `prefix`, in key order, skipping
/// `offset` and returning at most `limit`.
fn scan_suffixes<T: ReadableTable<&'static str, V>, V: redb::Value + 'static>(
    table: &T,
    prefix: &str,
    offset: usize,
    limit: usize,
) -> Result<Vec<String>> {
    let end = prefix_end(prefix);
    let mut out = Vec::new();
    for item in table.range::<&str>(prefix..end.as_str())?.skip(offset).take(limit) {
        let (k, _) = item?;
        out.push(k.value()[prefix.len()..].to_string());
    }
    Ok(out)
}

/// Decodes every JSON value whose key starts with `prefix`, in key order.
fn decode_range<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<T>> {
    let end = prefix_end(prefix);
    let mut out = Vec::new();
    for item in table.range::<&str>(prefix..end.as_str())? {
        let (k, v) = item?;
        out.push(decode(k.value(), v.value())?);
    }
    Ok(out)
}

/// A window over a listing.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    pub const ALL: Page = Page { offset: 0, limit: usize::MAX };
}

/// The database.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the database file, creating tables and recording the schema version.
    pub fn open(path: &Path) -> Result<Store> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| v.value().to_string());
            let migrate = match found.as_deref() {
                None => false,
                Some(SCHEMA_VERSION) => false,
                Some("1") => true,
                Some(_) => return Err(StoreError::SchemaVersion { found: found.unwrap_or_default() }),
            };
            meta.insert("schema_version", SCHEMA_VERSION)?;
            if migrate {
                count_entities(&txn)?;
            }
            txn.open_table(CATEGORIES)?;
            txn.open_table(BINDINGS)?;
            txn.open_table(ENTITIES)?;
            txn.open_table(BY_KIND)?;
            txn.open_table(BY_MIXIN)?;
            txn.open_table(BY_END)?;
            txn.open_table(HANDLERS)?;
            txn.open_table(HANDLER_BLOBS)?;
            txn.open_table(HANDLER_KV)?;
            txn.open_table(COUNTERS)?;
            txn.open_table(TENANTS)?;
            txn.open_table(TOKENS)?;
        }
        txn.commit()?;
        Ok(Store { db })
    }

    pub fn schema_version(&self) -> Result<String> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get("schema_version")?.map(|v| v.value().to_string()).unwrap_or_default())
    }

    /// A consistent read-only view.
    pub fn read(&self) -> Result<Reader> {
        Ok(Reader { txn: self.db.begin_read()? })
    }

    /// Runs `f` in one write transaction, committed (durably) only if `f` returns Ok.
    pub fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&mut Writer) -> Result<T, E>) -> Result<T, E> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let mut w = Writer { txn: Arc::new(txn), undo: None, handlers_touched: Default::default() };
        match f(&mut w) {
            Ok(v) => {
                self.commit_batch(w)?;
                Ok(v)
            }
            Err(e) => {
                // Dropping an uncommitted transaction aborts it.
                drop(w);
                Err(e)
            }
        }
    }

    /// Opens a batch: a write transaction that can undo its last step. Commit it with
    /// [`Store::commit_batch`]; dropping it aborts every step.
    pub fn begin_batch(&self) -> Result<Writer> {
        Ok(Writer {
            txn: Arc::new(self.db.begin_write()?),
            undo: Some(Vec::new()),
            handlers_touched: Default::default(),
        })
    }

    /// Commits a batch (or a [`Store::write`] transaction) durably (redb `Durability::Immediate`:
    /// on disk when this returns).
    pub fn commit_batch(&self, w: Writer) -> Result<()> {
        let txn = Arc::try_unwrap(w.txn).map_err(|_| StoreError::ViewOutlived)?;
        txn.commit()?;
        Ok(())
    }
}

/// Version 1 to 2: counts every tenant's entities into `counters` (once).
fn count_entities(txn: &redb::WriteTransaction) -> Result<()> {
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for item in txn.open_table(ENTITIES)?.iter()? {
        let (k, _) = item?;
        let tenant = k.value().split('\0').next().unwrap_or_default().to_string();
        *counts.entry(tenant).or_default() += 1;
    }
    let mut counters = txn.open_table(COUNTERS)?;
    for (tenant, n) in counts {
        counters.insert(key2(&tenant, ENTITY_COUNT).as_str(), n)?;
    }
    Ok(())
}

/// Read operations, shared by read and write transactions.
macro_rules! read_ops {
    () => {
        /// The tenant's own categories.
        pub fn categories(&self, tenant: &str) -> Result<Vec<Category>> {
            decode_range(&self.txn.open_table(CATEGORIES)?, &format!("{tenant}\0"))
        }

        /// Provider (handler) bindings: category id -> name.
        pub fn bindings(&self, tenant: &str) -> Result<Vec<(String, String)>> {
            let t = self.txn.open_table(BINDINGS)?;
            let prefix = format!("{tenant}\0");
            let end = prefix_end(&prefix);
            let mut out = Vec::new();
            for item in t.range::<&str>(prefix.as_str()..end.as_str())? {
                let (k, v) = item?;
                out.push((k.value()[prefix.len()..].to_string(), v.value().to_string()));
            }
            Ok(out)
        }

        pub fn entity(&self, tenant: &str, location: &str) -> Result<Option<Entity>> {
            let t = self.txn.open_table(ENTITIES)?;
            let key = key2(tenant, location);
            match t.get(key.as_str())? {
                Some(v) => Ok(Some(decode(&key, v.value())?)),
                None => Ok(None),
            }
        }

        /// Locations of the entities of one kind, in location order.
        pub fn by_kind(&self, tenant: &str, kind: &str, page: Page) -> Result<Vec<String>> {
            let t = self.txn.open_table(BY_KIND)?;
            scan_suffixes(&t, &format!("{tenant}\0{kind}\0"), page.offset, page.limit)
        }

        /// One page of a listing's locations, in location order.
        pub fn locations(&self, tenant: &str, source: Source<'_>, page: Page) -> Result<Vec<String>> {
            match source {
                Source::Kind(kind) => self.by_kind(tenant, kind, page),
                Source::Mixin(mixin) => self.by_mixin(tenant, mixin, page),
                Source::Prefix(path) => self.by_prefix(tenant, path, page),
            }
        }

        /// The entities of a listing, in location order, until `f` says to stop. Reads one
        /// entity at a time: the cost grows with how far the scan goes, not with the listing.
        pub fn each_entity(
            &self,
            tenant: &str,
            source: Source<'_>,
            mut f: impl FnMut(Entity) -> std::ops::ControlFlow<()>,
        ) -> Result<()> {
            use std::ops::ControlFlow;
            let (index, prefix) = match source {
                Source::Kind(kind) => (Some(BY_KIND), format!("{tenant}\0{kind}\0")),
                Source::Mixin(mixin) => (Some(BY_MIXIN), format!("{tenant}\0{mixin}\0")),
                Source::Prefix(path) => (None, format!("{tenant}\0{path}")),
            };
            let end = prefix_end(&prefix);
            let entities = self.txn.open_table(ENTITIES)?;
            match index {
                Some(index) => {
                    let t = self.txn.open_table(index)?;
                    for item in t.range::<&str>(prefix.as_str()..end.as_str())? {
                        let (k, _) = item?;
                        let key = key2(tenant, &k.value()[prefix.len()..]);
                        let Some(v) = entities.get(key.as_str())? else { continue };
                        if let ControlFlow::Break(()) = f(decode(&key, v.value())?) {
                            break;
                        }
                    }
                }
                None => {
                    for item in entities.range::<&str>(prefix.as_str()..end.as_str())? {
                        let (k, v) = item?;
                        if let ControlFlow::Break(()) = f(decode(k.value(), v.value())?) {
                            break;
                        }
                    }
                }
            }
            Ok(())
        }

        /// Locations of the entities carrying one mixin, in location order.
        pub fn by_mixin(&self, tenant: &str, mixin: &str, page: Page) -> Result<Vec<String>> {
            let t = self.txn.open_table(BY_MIXIN)?;
            scan_suffixes(&t, &format!("{tenant}\0{mixin}\0"), page.offset, page.limit)
        }

        /// Locations of the entities whose location starts with `path`, in location order.
        pub fn by_prefix(&self, tenant: &str, path: &str, page: Page) -> Result<Vec<String>> {
            let t = self.txn.open_table(ENTITIES)?;
            let prefix = format!("{tenant}\0");
            Ok(scan_suffixes(&t, &format!("{prefix}{path}"), page.offset, page.limit)?
                .into_iter()
                .map(|rest| format!("{path}{rest}"))
                .collect())
        }

        /// The tenant's handlers, by name.
        pub fn handlers(&self, tenant: &str) -> Result<Vec<HandlerRecord>> {
            decode_range(&self.txn.open_table(HANDLERS)?, &format!("{tenant}\0"))
        }

        pub fn handler(&self, tenant: &str, name: &str) -> Result<Option<HandlerRecord>> {
            let t = self.txn.open_table(HANDLERS)?;
            let key = key2(tenant, name);
            match t.get(key.as_str())? {
                Some(v) => Ok(Some(decode(&key, v.value())?)),
                None => Ok(None),
            }
        }

        /// The uploaded bytes of a component.
        pub fn handler_blob(&self, tenant: &str, digest: &str) -> Result<Option<Vec<u8>>> {
            let t = self.txn.open_table(HANDLER_BLOBS)?;
            Ok(t.get(key2(tenant, digest).as_str())?.map(|v| v.value().to_vec()))
        }

        pub fn kv_get(&self, tenant: &str, handler: &str, key: &str) -> Result<Option<Vec<u8>>> {
            let t = self.txn.open_table(HANDLER_KV)?;
            Ok(t.get(key3(tenant, handler, key).as_str())?.map(|v| v.value().to_vec()))
        }

        /// Keys of a handler's store that start with `prefix`, in order, at most `limit`.
        pub fn kv_keys(&self, tenant: &str, handler: &str, prefix: &str, limit: usize) -> Result<Vec<String>> {
            let t = self.txn.open_table(HANDLER_KV)?;
            scan_suffixes(&t, &format!("{tenant}\0{handler}\0{prefix}"), 0, limit)
                .map(|v| v.into_iter().map(|rest| format!("{prefix}{rest}")).collect())
        }

        /// How many entities the tenant has (a counter, not a scan).
        pub fn entity_count(&self, tenant: &str) -> Result<u64> {
            let t = self.txn.open_table(COUNTERS)?;
            Ok(t.get(key2(tenant, ENTITY_COUNT).as_str())?.map_or(0, |v| v.value()))
        }

        /// Every tenant, by name.
        pub fn tenants(&self) -> Result<Vec<TenantRecord>> {
            decode_range(&self.txn.open_table(TENANTS)?, "")
        }

        pub fn tenant(&self, name: &str) -> Result<Option<TenantRecord>> {
            let t = self.txn.open_table(TENANTS)?;
            match t.get(name)? {
                Some(v) => Ok(Some(decode(name, v.value())?)),
                None => Ok(None),
            }
        }

        /// Every token of every tenant, by id.
        pub fn tokens(&self) -> Result<Vec<TokenRecord>> {
            decode_range(&self.txn.open_table(TOKENS)?, "")
        }

        /// Links that have `resource` as source or target.
        pub fn links_at(&self, tenant: &str, resource: &str) -> Result<Vec<Entity>> {
            let t = self.txn.open_table(BY_END)?;
            let mut out = Vec::new();
            for loc in scan_suffixes(&t, &format!("{tenant}\0{resource}\0"), 0, usize::MAX)? {
                if let Some(e) = self.entity(tenant, &loc)? {
                    out.push(e);
                }
            }
            Ok(out)
        }
    };
}

/// Which entities a listing covers.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The entities of one kind (`scheme#term`).
    Kind(&'a str),
    /// The entities carrying one mixin.
    Mixin(&'a str),
    /// The entities whose location starts with this path.
    Prefix(&'a str),
}

/// The reads that rendering an entity needs, from a read transaction or from a write
/// transaction in progress (which sees its own writes).
pub trait EntityReads {
    fn entity(&self, tenant: &str, location: &str) -> Result<Option<Entity>>;
    /// Links that have `resource` as source or target.
    fn links_at(&self, tenant: &str, resource: &str) -> Result<Vec<Entity>>;
}

macro_rules! entity_reads {
    ($($t:ty),*) => {$(
        impl EntityReads for $t {
            fn entity(&self, tenant: &str, location: &str) -> Result<Option<Entity>> {
                <$t>::entity(self, tenant, location)
            }
            fn links_at(&self, tenant: &str, resource: &str) -> Result<Vec<Entity>> {
                <$t>::links_at(self, tenant, resource)
            }
        }
    )*};
}
entity_reads!(Reader, Writer, TxnView);

/// A read transaction.
pub struct Reader {
    txn: redb::ReadTransaction,
}

impl Reader {
    read_ops!();
}

/// What undoes one change of a step: puts back the previous value of one key.
type Undo = Box<dyn FnOnce(&WriteTransaction) -> Result<()> + Send>;

/// A write transaction: reads see the transaction's own writes.
pub struct Writer {
    txn: Arc<WriteTransaction>,
    /// In a batch, how to undo each change of the current step (in order); `None` outside
    /// batches, where a failure aborts the whole transaction instead.
    undo: Option<Vec<Undo>>,
    /// Tenants whose handler bindings or handlers this transaction changed (even if a step
    /// was undone since): what callers cache of them is stale once it commits.
    handlers_touched: std::collections::BTreeSet<String>,
}

/// A read-only view of a write transaction in progress (its own writes included), for code that
/// must outlive a borrow of the [`Writer`], such as a handler's host. Drop it before the batch
/// commits.
pub struct TxnView {
    txn: Arc<WriteTransaction>,
}

impl TxnView {
    read_ops!();
}

/// Inserts `value` at `key` of `t` (the table `def`), logging the previous value in `undo`.
fn put<'v, V: redb::Value + Send + 'static>(
    undo: &mut Option<Vec<Undo>>,
    t: &mut Table<&'static str, V>,
    def: TableDefinition<'static, &'static str, V>,
    key: &str,
    value: impl std::borrow::Borrow<V::SelfType<'v>>,
) -> Result<()> {
    let prev = t.insert(key, value)?;
    if let Some(undo) = undo {
        let prev = prev.map(|g| V::as_bytes(&g.value()).as_ref().to_vec());
        undo.push(restore(def, key, prev));
    }
    Ok(())
}

/// Removes `key` from `t` (the table `def`), logging the previous value in `undo`. Returns
/// whether something was there.
fn del<V: redb::Value + Send + 'static>(
    undo: &mut Option<Vec<Undo>>,
    t: &mut Table<&'static str, V>,
    def: TableDefinition<'static, &'static str, V>,
    key: &str,
) -> Result<bool> {
    let Some(prev) = t.remove(key)? else { return Ok(false) };
    if let Some(undo) = undo {
        undo.push(restore(def, key, Some(V::as_bytes(&prev.value()).as_ref().to_vec())));
    }
    Ok(true)
}

/// The undo of a change at `key`: put `prev` back, or remove the key if it had no value.
fn restore<V: redb::Value + Send + 'static>(
    def: TableDefinition<'static, &'static str, V>,
    key: &str,
    prev: Option<Vec<u8>>,
) -> Undo {
    let key = key.to_string();
    Box::new(move |txn: &WriteTransaction| {
        let mut t = txn.open_table(def)?;
        match &prev {
            Some(bytes) => {
                t.insert(key.as_str(), V::from_bytes(bytes))?;
            }
            None => {
                t.remove(key.as_str())?;
            }
        }
        Ok(())
    })
}

impl Writer {
    read_ops!();

    /// Starts a step of a batch: what follows can be undone by [`Writer::undo_step`]; what came
    /// before is kept.
    pub fn begin_step(&mut self) {
        if let Some(undo) = &mut self.undo {
            undo.clear();
        }
    }

    /// Undoes every change since [`Writer::begin_step`]. Outside a batch there is nothing to
    /// undo with: the error says so, and the caller must drop (abort) the transaction.
    pub fn undo_step(&mut self) -> Result<()> {
        let Some(undo) = &mut self.undo else { return Err(StoreError::NotABatch) };
        while let Some(f) = undo.pop() {
            f(&self.txn)?;
        }
        Ok(())
    }

    /// Has this transaction changed the handler bindings or the handlers of `tenant`?
    pub fn handlers_touched(&self, tenant: &str) -> bool {
        self.handlers_touched.contains(tenant)
    }

    /// The tenants whose handler bindings or handlers this transaction changed.
    pub fn take_handlers_touched(&mut self) -> std::collections::BTreeSet<String> {
        std::mem::take(&mut self.handlers_touched)
    }

    fn touch_handlers(&mut self, tenant: &str) {
        if !self.handlers_touched.contains(tenant) {
            self.handlers_touched.insert(tenant.to_string());
        }
    }

    /// A read-only view of this transaction, its writes so far included.
    pub fn view(&self) -> TxnView {
        TxnView { txn: Arc::clone(&self.txn) }
    }

    pub fn put_category(&mut self, tenant: &str, cat: &Category) -> Result<()> {
        let Writer { txn, undo, .. } = self;
        let mut t = txn.open_table(CATEGORIES)?;
        put(undo, &mut t, CATEGORIES, &key2(tenant, &cat.id()), encode(cat).as_slice())
    }

    pub fn delete_category(&mut self, tenant: &str, id: &str) -> Result<bool> {
        let Writer { txn, undo, .. } = self;
        let removed = del(undo, &mut txn.open_table(CATEGORIES)?, CATEGORIES, &key2(tenant, id))?;
        self.set_binding(tenant, id, None)?;
        Ok(removed)
    }

    pub fn set_binding(&mut self, tenant: &str, id: &str, provider: Option<&str>) -> Result<()> {
        let Writer { txn, undo, .. } = self;
        let mut t = txn.open_table(BINDINGS)?;
        let key = key2(tenant, id);
        let changed = match provider {
            Some(p) => put(undo, &mut t, BINDINGS, &key, p).map(|()| true)?,
            // Deleting a category unbinds it: nothing changes when it had no binding.
            None => del(undo, &mut t, BINDINGS, &key)?,
        };
        drop(t);
        if changed {
            self.touch_handlers(tenant);
        }
        Ok(())
    }

    /// Stores a handler and its component bytes (keeping no longer used bytes out).
    pub fn put_handler(&mut self, tenant: &str, record: &HandlerRecord, bytes: &[u8]) -> Result<()> {
        self.touch_handlers(tenant);
        let old = self.handler(tenant, &record.name)?;
        let Writer { txn, undo, .. } = self;
        put(undo, &mut txn.open_table(HANDLERS)?, HANDLERS, &key2(tenant, &record.name), encode(record).as_slice())?;
        put(undo, &mut txn.open_table(HANDLER_BLOBS)?, HANDLER_BLOBS, &key2(tenant, &record.digest), bytes)?;
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
        self.touch_handlers(tenant);
        {
            let Writer { txn, undo, .. } = self;
            del(undo, &mut txn.open_table(HANDLERS)?, HANDLERS, &key2(tenant, name))?;
        }
        self.drop_blob_if_unused(tenant, &old.digest)?;
        let prefix = format!("{tenant}\0{name}\0");
        let keys = scan_suffixes(&self.txn.open_table(HANDLER_KV)?, &prefix, 0, usize::MAX)?;
        let Writer { txn, undo, .. } = self;
        let mut t = txn.open_table(HANDLER_KV)?;
        for rest in keys {
            del(undo, &mut t, HANDLER_KV, &format!("{prefix}{rest}"))?;
        }
        Ok(true)
    }

    fn drop_blob_if_unused(&mut self, tenant: &str, digest: &str) -> Result<()> {
        if !self.handlers(tenant)?.iter().any(|h| h.digest == digest) {
            let Writer { txn, undo, .. } = self;
            del(undo, &mut txn.open_table(HANDLER_BLOBS)?, HANDLER_BLOBS, &key2(tenant, digest))?;
        }
        Ok(())
    }

    pub fn kv_set(&mut self, tenant: &str, handler: &str, key: &str, value: &[u8]) -> Result<()> {
        let Writer { txn, undo, .. } = self;
        put(undo, &mut txn.open_table(HANDLER_KV)?, HANDLER_KV, &key3(tenant, handler, key), value)
    }

    pub fn kv_delete(&mut self, tenant: &str, handler: &str, key: &str) -> Result<()> {
        let Writer { txn, undo, .. } = self;
        del(undo, &mut txn.open_table(HANDLER_KV)?, HANDLER_KV, &key3(tenant, handler, key)).map(drop)
    }

    /// Writes an entity and keeps the indexes (and the tenant's entity count) in step.
    pub fn put_entity(&mut self, tenant: &str, e: &Entity) -> Result<()> {
        let key = key2(tenant, &e.location);
        // One B-tree walk: the insert hands back what it replaced.
        let prev = {
            let Writer { txn, undo, .. } = self;
            let prev =
                txn.open_table(ENTITIES)?.insert(key.as_str(), encode(e).as_slice())?.map(|g| g.value().to_vec());
            if let Some(undo) = undo {
                undo.push(restore(ENTITIES, &key, prev.clone()));
            }
            prev
        };
        match prev {
            Some(bytes) => self.unindex(tenant, &decode(&key, &bytes)?)?,
            None => self.add_to_count(tenant, 1)?,
        }
        self.index(tenant, e)
    }

    fn index(&mut self, tenant: &str, e: &Entity) -> Result<()> {
        let Writer { txn, undo, .. } = self;
        put(undo, &mut txn.open_table(BY_KIND)?, BY_KIND, &key3(tenant, &e.kind, &e.location), ())?;
        let mut m = txn.open_table(BY_MIXIN)?;
        for mixin in &e.mixins {
            put(undo, &mut m, BY_MIXIN, &key3(tenant, mixin, &e.location), ())?;
        }
        let mut ends = txn.open_table(BY_END)?;
        for end in [e.source(), e.target()].into_iter().flatten() {
            put(undo, &mut ends, BY_END, &key3(tenant, end, &e.location), ())?;
        }
        Ok(())
    }

    fn unindex(&mut self, tenant: &str, e: &Entity) -> Result<()> {
        let Writer { txn, undo, .. } = self;
        del(undo, &mut txn.open_table(BY_KIND)?, BY_KIND, &key3(tenant, &e.kind, &e.location))?;
        let mut m = txn.open_table(BY_MIXIN)?;
        for mixin in &e.mixins {
            del(undo, &mut m, BY_MIXIN, &key3(tenant, mixin, &e.location))?;
        }
        let mut ends = txn.open_table(BY_END)?;
        for end in [e.source(), e.target()].into_iter().flatten() {
            del(undo, &mut ends, BY_END, &key3(tenant, end, &e.location))?;
        }
        Ok(())
    }

    /// Deletes an entity and every link that has it as source or target. Returns the locations
    /// removed (the entity first), empty when nothing was there.
    pub fn delete_entity(&mut self, tenant: &str, location: &str) -> Result<Vec<String>> {
        let Some(e) = self.entity(tenant, location)? else { return Ok(Vec::new()) };
        let links = self.links_at(tenant, location)?;
        self.unindex(tenant, &e)?;
        {
            let Writer { txn, undo, .. } = self;
            del(undo, &mut txn.open_table(ENTITIES)?, ENTITIES, &key2(tenant, location))?;
        }
        self.add_to_count(tenant, -1)?;
        let mut removed = vec![location.to_string()];
        for l in links {
            removed.extend(self.delete_entity(tenant, &l.location)?);
        }
        Ok(removed)
    }

    fn add_to_count(&mut self, tenant: &str, delta: i64) -> Result<()> {
        let key = key2(tenant, ENTITY_COUNT);
        let Writer { txn, undo, .. } = self;
        let mut t = txn.open_table(COUNTERS)?;
        let n = t.get(key.as_str())?.map_or(0, |v| v.value()).saturating_add_signed(delta);
        put(undo, &mut t, COUNTERS, &key, n)
    }

    pub fn put_tenant(&mut self, tenant: &TenantRecord) -> Result<()> {
        let Writer { txn, undo, .. } = self;
        put(undo, &mut txn.open_table(TENANTS)?, TENANTS, &tenant.name, encode(tenant).as_slice())
    }

    pub fn put_token(&mut self, token: &TokenRecord) -> Result<()> {
        let Writer { txn, undo, .. } = self;
        put(undo, &mut txn.open_table(TOKENS)?, TOKENS, &token.id, encode(token).as_slice())
    }

    /// Removes a token of `tenant`; false when the tenant has no token with this id.
    pub fn delete_token(&mut self, tenant: &str, id: &str) -> Result<bool> {
        let Writer { txn, undo, .. } = self;
        let mut t = txn.open_table(TOKENS)?;
        let owned = match t.get(id)? {
            Some(v) => decode::<TokenRecord>(id, v.value())?.tenant == tenant,
            None => false,
        };
        if owned {
            del(undo, &mut t, TOKENS, id)?;
        }
        Ok(owned)
    }

    /// Removes a tenant and everything it owns: its record, tokens, categories, bindings,
    /// entities and their indexes, handlers, component bytes, key-value data and counters.
    /// Returns the ids of the tokens removed.
    ///
    /// Not undoable (it clears whole key ranges): it runs in a transaction of its own, never
    /// as a step of a batch.
    pub fn delete_tenant(&mut self, tenant: &str) -> Result<Vec<String>> {
        if self.undo.is_some() {
            return Err(StoreError::NotUndoable("deleting a tenant"));
        }
        self.touch_handlers(tenant);
        let prefix = format!("{tenant}\0");
        let end = prefix_end(&prefix);
        let range = prefix.as_str()..end.as_str();
        for table in [CATEGORIES, ENTITIES, HANDLERS, HANDLER_BLOBS, HANDLER_KV] {
            self.txn.open_table(table)?.retain_in::<&str, _>(range.clone(), |_, _| false)?;
        }
        for table in [BY_KIND, BY_MIXIN, BY_END] {
            self.txn.open_table(table)?.retain_in::<&str, _>(range.clone(), |_, _| false)?;
        }
        self.txn.open_table(BINDINGS)?.retain_in::<&str, _>(range.clone(), |_, _| false)?;
        self.txn.open_table(COUNTERS)?.retain_in::<&str, _>(range, |_, _| false)?;
        let ids: Vec<String> = self.tokens()?.into_iter().filter(|t| t.tenant == tenant).map(|t| t.id).collect();
        let mut tokens = self.txn.open_table(TOKENS)?;
        for id in &ids {
            tokens.remove(id.as_str())?;
        }
        self.txn.open_table(TENANTS)?.remove(tenant)?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocni_model::{Catalog, parse_entity_input};
    use serde_json::json;

    const COMPUTE: &str = "http://schemas.ogf.org/occi/infrastructure#compute";
    const NETWORK: &str = "http://schemas.ogf.org/occi/infrastructure#network";
    const NIC: &str = "http://schemas.ogf.org/occi/infrastructure#networkinterface";

    fn entity(c: &Catalog, v: serde_json::Value, loc: &str) -> Entity {
        let id = loc.rsplit('/').next().unwrap();
        c.create_entity(&parse_entity_input(&v).unwrap(), loc, id).unwrap()
    }

    #[test]
    fn entities_indexes_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ocni.redb");
        let c = Catalog::builtin();
        let vm = entity(&c, json!({"kind": COMPUTE}), "/compute/a");
        let net = entity(&c, json!({"kind": NETWORK}), "/network/n");
        let nic = entity(
            &c,
            json!({"kind": NIC, "source": "/compute/a", "target": "/network/n", "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}}),
            "/networkinterface/l",
        );
        {
            let store = Store::open(&path).unwrap();
            store
                .write(|w| -> Result<()> {
                    w.put_entity("t1", &vm)?;
                    w.put_entity("t1", &net)?;
                    w.put_entity("t1", &nic)?;
                    w.put_entity("t2", &vm)?;
                    Ok(())
                })
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let r = store.read().unwrap();
        assert_eq!(r.by_kind("t1", COMPUTE, Page::ALL).unwrap(), vec!["/compute/a"]);
        assert_eq!(r.by_prefix("t1", "/", Page::ALL).unwrap().len(), 3);
        assert_eq!(r.by_prefix("t2", "/", Page::ALL).unwrap(), vec!["/compute/a"]);
        assert_eq!(r.links_at("t1", "/compute/a").unwrap().len(), 1);
        assert_eq!(r.links_at("t1", "/network/n").unwrap().len(), 1);
        drop(r);
        let removed = store.write(|w| w.delete_entity("t1", "/compute/a")).unwrap();
        assert_eq!(removed, vec!["/compute/a", "/networkinterface/l"]);
        let r = store.read().unwrap();
        assert!(r.links_at("t1", "/network/n").unwrap().is_empty());
        assert_eq!(r.entity("t2", "/compute/a").unwrap().unwrap(), vm, "other tenant untouched");
    }

    #[test]
    fn failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        let vm = entity(&c, json!({"kind": COMPUTE}), "/compute/a");
        let r: Result<(), StoreError> = store.write(|w| {
            w.put_entity("t", &vm)?;
            Err(StoreError::SchemaVersion { found: "refused".into() })
        });
        assert!(r.is_err());
        assert!(store.read().unwrap().entity("t", "/compute/a").unwrap().is_none());
    }

    #[test]
    fn handlers_blobs_and_kv() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let rec = |name: &str, digest: &str| HandlerRecord { name: name.into(), digest: digest.into(), size: 3 };
        store
            .write(|w| -> Result<()> {
                w.put_handler("t", &rec("a", "d1"), b"one")?;
                w.put_handler("t", &rec("b", "d1"), b"one")?;
                w.kv_set("t", "a", "k1", b"v1")?;
                w.kv_set("t", "a", "k2", b"v2")?;
                w.kv_set("t", "ab", "k1", b"other handler")?;
                Ok(())
            })
            .unwrap();
        let r = store.read().unwrap();
        assert_eq!(r.kv_keys("t", "a", "k", 10).unwrap(), vec!["k1", "k2"]);
        assert_eq!(r.kv_get("t", "a", "k1").unwrap().as_deref(), Some(&b"v1"[..]));
        assert!(r.kv_get("u", "a", "k1").unwrap().is_none(), "tenants are apart");
        drop(r);
        // Replacing a's component keeps d1 (b uses it); deleting both drops it.
        store.write(|w| w.put_handler("t", &rec("a", "d2"), b"two")).unwrap();
        assert!(store.read().unwrap().handler_blob("t", "d1").unwrap().is_some());
        store.write(|w| w.delete_handler("t", "b")).unwrap();
        assert!(store.read().unwrap().handler_blob("t", "d1").unwrap().is_none());
        store.write(|w| w.delete_handler("t", "a")).unwrap();
        let r = store.read().unwrap();
        assert!(r.kv_keys("t", "a", "", 10).unwrap().is_empty());
        assert_eq!(r.kv_keys("t", "ab", "", 10).unwrap(), vec!["k1"], "a's keys only");
        assert!(r.handlers("t").unwrap().is_empty());
    }

    #[test]
    fn entity_counts_follow_creates_replaces_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        let vm = entity(&c, json!({"kind": COMPUTE}), "/compute/a");
        let net = entity(&c, json!({"kind": NETWORK}), "/network/n");
        let nic = entity(
            &c,
            json!({"kind": NIC, "source": "/compute/a", "target": "/network/n", "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}}),
            "/networkinterface/l",
        );
        store
            .write(|w| -> Result<()> {
                w.put_entity("t", &vm)?;
                w.put_entity("t", &vm)?; // a replace is no new entity
                w.put_entity("t", &net)?;
                w.put_entity("t", &nic)?;
                w.put_entity("u", &vm)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.read().unwrap().entity_count("t").unwrap(), 3);
        assert_eq!(store.read().unwrap().entity_count("u").unwrap(), 1);
        // Deleting the compute takes its link along: both are counted out.
        store.write(|w| w.delete_entity("t", "/compute/a")).unwrap();
        assert_eq!(store.read().unwrap().entity_count("t").unwrap(), 1);
        assert_eq!(store.read().unwrap().entity_count("v").unwrap(), 0);
    }

    #[test]
    fn deleting_a_tenant_removes_all_it_owns_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        let vm = entity(&c, json!({"kind": COMPUTE, "mixins": []}), "/compute/a");
        let mixin = ocni_model::parse_category(
            ocni_model::Class::Mixin,
            &json!({"term": "m", "scheme": "http://example.com/x#", "location": "/m/"}),
        )
        .unwrap();
        let rec = HandlerRecord { name: "h".into(), digest: "d".into(), size: 1 };
        let token = |id: &str, tenant: &str| TokenRecord {
            id: id.into(),
            tenant: tenant.into(),
            secret_sha256: "00".into(),
            created: 1,
        };
        // "a" and "ab": a prefix of a name must not catch the other tenant's keys.
        for t in ["a", "ab"] {
            store
                .write(|w| -> Result<()> {
                    w.put_tenant(&TenantRecord { name: t.into(), created: 1, limits: Default::default() })?;
                    w.put_token(&token(&format!("{t}-1"), t))?;
                    w.put_category(t, &mixin)?;
                    w.set_binding(t, &mixin.id(), Some("h"))?;
                    w.put_entity(t, &vm)?;
                    w.put_handler(t, &rec, b"bytes")?;
                    w.kv_set(t, "h", "k", b"v")?;
                    Ok(())
                })
                .unwrap();
        }
        assert!(!store.write(|w| w.delete_token("ab", "a-1")).unwrap(), "not ab's token");
        let removed = store.write(|w| w.delete_tenant("a")).unwrap();
        assert_eq!(removed, vec!["a-1"]);
        let r = store.read().unwrap();
        assert!(r.tenant("a").unwrap().is_none());
        assert!(r.categories("a").unwrap().is_empty());
        assert!(r.bindings("a").unwrap().is_empty());
        assert!(r.entity("a", "/compute/a").unwrap().is_none());
        assert!(r.by_kind("a", COMPUTE, Page::ALL).unwrap().is_empty());
        assert!(r.handlers("a").unwrap().is_empty());
        assert!(r.handler_blob("a", "d").unwrap().is_none());
        assert!(r.kv_get("a", "h", "k").unwrap().is_none());
        assert_eq!(r.entity_count("a").unwrap(), 0);
        // The other tenant keeps everything.
        assert_eq!(r.tenants().unwrap().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), vec!["ab"]);
        assert_eq!(r.tokens().unwrap(), vec![token("ab-1", "ab")]);
        assert_eq!(r.categories("ab").unwrap().len(), 1);
        assert_eq!(r.by_kind("ab", COMPUTE, Page::ALL).unwrap(), vec!["/compute/a"]);
        assert_eq!(r.kv_get("ab", "h", "k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(r.entity_count("ab").unwrap(), 1);
    }

    #[test]
    fn a_version_1_store_gets_its_entity_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let c = Catalog::builtin();
        {
            let store = Store::open(&path).unwrap();
            store
                .write(|w| -> Result<()> {
                    w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), "/compute/a"))?;
                    w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), "/compute/b"))?;
                    Ok(())
                })
                .unwrap();
            // Make it look like version 1: no counters, the old version.
            let txn = store.db.begin_write().unwrap();
            txn.open_table(COUNTERS).unwrap().retain(|_, _| false).unwrap();
            txn.open_table(META).unwrap().insert("schema_version", "1").unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.read().unwrap().entity_count("t").unwrap(), 2);
    }

    #[test]
    fn paging_and_prefix_do_not_leak_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        store
            .write(|w| -> Result<()> {
                for i in 0..10 {
                    w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), &format!("/compute/{i}")))?;
                }
                w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), "/computer/x"))?;
                Ok(())
            })
            .unwrap();
        let r = store.read().unwrap();
        assert_eq!(r.by_kind("t", COMPUTE, Page { offset: 3, limit: 2 }).unwrap(), vec!["/compute/3", "/compute/4"]);
        assert_eq!(r.by_prefix("t", "/compute/", Page::ALL).unwrap().len(), 10);
    }

    /// Every key and value of every table, as the transaction sees them.
    fn dump(txn: &WriteTransaction) -> Vec<(String, String, Vec<u8>)> {
        fn all<V: redb::Value + 'static>(
            txn: &WriteTransaction,
            def: TableDefinition<'static, &'static str, V>,
            out: &mut Vec<(String, String, Vec<u8>)>,
        ) {
            let t = txn.open_table(def).unwrap();
            for item in t.iter().unwrap() {
                let (k, v) = item.unwrap();
                out.push((def.to_string(), k.value().to_string(), V::as_bytes(&v.value()).as_ref().to_vec()));
            }
        }
        let mut out = Vec::new();
        for def in [CATEGORIES, ENTITIES, HANDLERS, HANDLER_BLOBS, HANDLER_KV, TENANTS, TOKENS] {
            all(txn, def, &mut out);
        }
        all(txn, BINDINGS, &mut out);
        all(txn, COUNTERS, &mut out);
        for def in [BY_KIND, BY_MIXIN, BY_END] {
            all(txn, def, &mut out);
        }
        out
    }

    /// One write of the property test below.
    #[derive(Debug, Clone)]
    enum Op {
        PutVm(u8, bool),
        PutNic(u8, u8),
        Delete(u8),
        Kv(u8, Option<u8>),
        Handler(u8, u8),
        DropHandler(u8),
        Binding(u8, Option<u8>),
        Tenant(u8),
        Token(u8, u8),
        DropToken(u8, u8),
    }

    fn apply(w: &mut Writer, c: &Catalog, op: &Op) -> Result<()> {
        const TPL: &str = "http://schemas.ogf.org/occi/infrastructure#os_tpl";
        match op {
            Op::PutVm(n, with_mixin) => {
                let mixins = if *with_mixin { json!([TPL]) } else { json!([]) };
                w.put_entity("t", &entity(c, json!({"kind": COMPUTE, "mixins": mixins}), &format!("/compute/{n}")))
            }
            Op::PutNic(n, vm) => {
                let body = json!({"kind": NIC, "source": format!("/compute/{vm}"), "target": "/network/n",
                    "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}});
                w.put_entity("t", &entity(c, body, &format!("/nic/{n}")))
            }
            Op::Delete(n) => w.delete_entity("t", &format!("/compute/{n}")).map(drop),
            Op::Kv(k, Some(v)) => w.kv_set("t", "h1", &format!("k{k}"), &[*v]),
            Op::Kv(k, None) => w.kv_delete("t", "h1", &format!("k{k}")),
            Op::Handler(n, d) => {
                w.put_handler("t", &HandlerRecord { name: format!("h{n}"), digest: format!("d{d}"), size: 1 }, &[*d])
            }
            Op::DropHandler(n) => w.delete_handler("t", &format!("h{n}")).map(drop),
            Op::Binding(n, p) => w.set_binding("t", &format!("c{n}"), p.map(|p| format!("h{p}")).as_deref()),
            Op::Tenant(n) => {
                w.put_tenant(&TenantRecord { name: format!("t{n}"), created: 1, limits: Default::default() })
            }
            Op::Token(n, t) => w.put_token(&TokenRecord {
                id: format!("k{n}"),
                tenant: format!("t{t}"),
                secret_sha256: "00".into(),
                created: 1,
            }),
            Op::DropToken(n, t) => w.delete_token(&format!("t{t}"), &format!("k{n}")).map(drop),
        }
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..4u8, any::<bool>()).prop_map(|(n, m)| Op::PutVm(n, m)),
            (0..3u8, 0..4u8).prop_map(|(n, v)| Op::PutNic(n, v)),
            (0..4u8).prop_map(Op::Delete),
            (0..3u8, proptest::option::of(0..3u8)).prop_map(|(k, v)| Op::Kv(k, v)),
            (0..3u8, 0..2u8).prop_map(|(n, d)| Op::Handler(n, d)),
            (0..3u8).prop_map(Op::DropHandler),
            (0..3u8, proptest::option::of(0..3u8)).prop_map(|(n, p)| Op::Binding(n, p)),
            (0..2u8).prop_map(Op::Tenant),
            (0..3u8, 0..2u8).prop_map(|(n, t)| Op::Token(n, t)),
            (0..3u8, 0..2u8).prop_map(|(n, t)| Op::DropToken(n, t)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Undoing a step puts every table back exactly as it was before the step, whatever the
        /// step did; the steps kept before it are committed, the undone one is not.
        #[test]
        fn undo_step_restores_every_table(
            kept in proptest::collection::vec(op(), 0..12),
            undone in proptest::collection::vec(op(), 1..12),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("db")).unwrap();
            let c = Catalog::builtin();
            let mut w = store.begin_batch().unwrap();
            w.begin_step();
            for op in &kept {
                apply(&mut w, &c, op).unwrap();
            }
            let before = dump(&w.txn);
            w.begin_step();
            for op in &undone {
                apply(&mut w, &c, op).unwrap();
            }
            w.undo_step().unwrap();
            proptest::prop_assert_eq!(&dump(&w.txn), &before);
            store.commit_batch(w).unwrap();
            let txn = store.db.begin_write().unwrap();
            proptest::prop_assert_eq!(&dump(&txn), &before, "the batch committed the kept steps only");
        }
    }

    #[test]
    fn each_entity_follows_its_source_and_stops_when_told() {
        use std::ops::ControlFlow;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        const TPL: &str = "http://schemas.ogf.org/occi/infrastructure#os_tpl";
        store
            .write(|w| -> Result<()> {
                for i in 0..6 {
                    let mixins = if i % 2 == 0 { json!([TPL]) } else { json!([]) };
                    w.put_entity("t", &entity(&c, json!({"kind": COMPUTE, "mixins": mixins}), &format!("/vm/{i}")))?;
                }
                w.put_entity("t", &entity(&c, json!({"kind": NETWORK}), "/net/a"))?;
                w.put_entity("u", &entity(&c, json!({"kind": COMPUTE}), "/vm/9"))
            })
            .unwrap();
        let r = store.read().unwrap();
        let scan = |source: Source, stop_after: usize| {
            let mut seen = Vec::new();
            r.each_entity("t", source, |e| {
                seen.push(e.location);
                if seen.len() >= stop_after { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            })
            .unwrap();
            seen
        };
        assert_eq!(scan(Source::Kind(COMPUTE), 100), ["/vm/0", "/vm/1", "/vm/2", "/vm/3", "/vm/4", "/vm/5"]);
        assert_eq!(scan(Source::Kind(COMPUTE), 2), ["/vm/0", "/vm/1"], "stops when told");
        assert_eq!(scan(Source::Mixin(TPL), 100), ["/vm/0", "/vm/2", "/vm/4"]);
        assert_eq!(scan(Source::Prefix("/"), 100).len(), 7, "every entity of the tenant, none of u's");
        assert_eq!(scan(Source::Prefix("/net/"), 100), ["/net/a"]);
    }

    #[test]
    fn batch_steps_view_and_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        let vm = entity(&c, json!({"kind": COMPUTE}), "/compute/a");
        let mut w = store.begin_batch().unwrap();
        w.begin_step();
        w.put_entity("t", &vm).unwrap();
        // A view sees the batch's writes; readers do not until it commits.
        let view = w.view();
        assert_eq!(view.entity("t", "/compute/a").unwrap().as_ref(), Some(&vm));
        assert!(store.read().unwrap().entity("t", "/compute/a").unwrap().is_none());
        // A view still alive at commit time is a bug of the caller: refused, nothing committed.
        assert!(matches!(store.commit_batch(w), Err(StoreError::ViewOutlived)));
        drop(view);
        assert!(store.read().unwrap().entity("t", "/compute/a").unwrap().is_none());

        let mut w = store.begin_batch().unwrap();
        w.begin_step();
        w.put_entity("t", &vm).unwrap();
        store.commit_batch(w).unwrap();
        assert_eq!(store.read().unwrap().entity("t", "/compute/a").unwrap(), Some(vm));
        // Outside a batch there is no undo log.
        store
            .write(|w| {
                assert!(matches!(w.undo_step(), Err(StoreError::NotABatch)));
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
}
