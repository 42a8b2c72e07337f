//! The only crate that knows a storage engine: ocni's persistent state (categories, handler
//! bindings, entities and their indexes), every key scoped by tenant, in redb (embedded, the
//! default) or in an etcd cluster shared by several nodes (`etcd/`; [`Store::open_etcd`]).
//!
//! Reads: [`Store::read`] gives a committed snapshot ([`Reader`]); every read operation is a
//! method of the [`Reads`] trait, the same over a snapshot, a write transaction and a [`Step`].
//! On etcd, [`Store::sync`] first brings the node's copy up to every acknowledged write.
//!
//! Writes are optimistic (see `step.rs`): a request prepares a [`Step`] against a snapshot, in
//! parallel with any other. On redb it hands its [`WriteSet`] to the one writer, which applies
//! it as a step of a batch ([`Store::begin_batch`], [`Writer::apply`], [`Store::commit_batch`]:
//! one durable commit, one fsync, for the whole batch) unless something it read has changed
//! since its snapshot; on etcd it is one transaction whose compares check the same
//! ([`Store::commit_set`]). Only a [`Step`] can change data, administration included.
//!
//! Tables (keys are `\0`-joined strings, so a prefix range lists one tenant's, one kind's or one
//! path's entries without touching others; no key part holds a `\0` of its own):
//! - `meta`: `schema_version` -> version; `builtin_indexed` -> the built-in indexed attributes
//!   the attribute index was built for (a build that indexes others rebuilds it at open);
//!   `cursor_key` -> the hex key that signs listing cursors (made once, at creation)
//! - `categories`: tenant, category id -> category (JSON)
//! - `bindings`: tenant, category id -> provider (handler) name
//! - `entities`: tenant, location -> entity (JSON)
//! - `by_kind`: tenant, kind id, location -> ()
//! - `by_mixin`: tenant, mixin id, location -> ()
//! - `by_end`: tenant, resource location, link location -> () (links by source and by target)
//! - `by_attr`: tenant, attribute, kind, value key, location -> () (the attribute index: an
//!   equality lookup of one attribute's value in one kind is one range; the value key is
//!   `ocni_model::filter::index_key`, equal exactly when a filter finds the values equal)
//! - `indexed`: tenant, attribute -> () (the attributes the tenant's own categories mark
//!   `"indexed": true`; the built-in categories' are indexed for every tenant)
//! - `handlers`: tenant, handler name -> handler record (JSON: digest, size)
//! - `handler_blobs`: tenant, digest -> the uploaded component bytes (to recompile when the
//!   compiled cache is gone)
//! - `handler_kv`: tenant, handler name, key -> value (the handlers' private key-value stores)
//! - `jobs`: tenant, job id -> job record (JSON: entity, handler, name, payload, state,
//!   attempts, last error, times); ids are UUIDv7, so a tenant's jobs are in submission order
//! - `jobs_open`: tenant, entity location, job id -> () (the jobs not finished yet: the job
//!   runner's queue, an entity's jobs in submission order; kept by `Step::put_job`)
//! - `counters`: tenant, counter name -> count (`entities`: the tenant's entities, kept in step
//!   by `put_entity` and `delete_entity`, so a limit check is no scan; `catalog_generation`:
//!   bumped by every write to the tenant's categories, bindings or handlers)
//!
//! Server-level tables (administration, not tenant data; keyed by tenant name or token id):
//! - `tenants`: tenant name -> tenant record (JSON: creation time, limits)
//! - `tokens`: token id -> token record (JSON: tenant, SHA-256 of the secret, creation time)

mod etcd;
#[cfg(test)]
mod index_tests;
mod reads;
mod step;

use std::path::Path;
use std::sync::Arc;

use ocni_model::Entity;
use ocni_model::catalog::builtin_indexed_attributes;
use ocni_model::filter::index_key;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

pub use etcd::target::EtcdTarget;
pub use reads::{KeyRange, OpenJob, Reads};
pub use step::{Applied, Step, WriteSet};

/// Version 2 added `counters`, `tenants` and `tokens`; version 3 the attribute index (`by_attr`,
/// `indexed`); version 4 the jobs (`jobs`, `jobs_open`: new tables, nothing to convert). Older
/// stores are migrated at open.
pub const SCHEMA_VERSION: &str = "4";

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
const BY_ATTR: TableDefinition<&str, ()> = TableDefinition::new("by_attr");
const INDEXED: TableDefinition<&str, ()> = TableDefinition::new("indexed");
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const JOBS_OPEN: TableDefinition<&str, ()> = TableDefinition::new("jobs_open");

/// The counter of a tenant's entities (in `counters`).
const ENTITY_COUNT: &str = "entities";

/// The tenant whose entity counter `key` (of `counters`) is, if it is one.
fn entity_count_tenant(key: &str) -> Option<&str> {
    key.strip_suffix(ENTITY_COUNT)?.strip_suffix('\0')
}
/// The counter bumped by every change of a tenant's categories, bindings or handlers.
const CATALOG_GENERATION: &str = "catalog_generation";

/// An uploaded handler as stored: its name, and which component it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HandlerRecord {
    pub name: String,
    /// SHA-256 of the component, hex.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// The origins (`http://host:port`) the handler may send HTTP requests to, as its tenant
    /// set them at upload (checked against the server's patterns then and at every request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<String>,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its turn (its entity's earlier jobs, a free runner, the backoff).
    Pending,
    /// An attempt has started (and, after a crash, is started again).
    Running,
    /// An attempt succeeded and its changes were written.
    Succeeded,
    /// Every attempt failed.
    Failed,
    /// Its entity was deleted before it could finish.
    Cancelled,
}

impl JobState {
    /// Whether the job is over (it leaves `jobs_open`).
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// A job as stored (see `jobs`): work a handler asked for, for one entity of its tenant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobRecord {
    /// UUIDv7: jobs sort by submission.
    pub id: String,
    /// The location of the entity it belongs to.
    pub entity: String,
    /// The handler that submitted it, and runs it.
    pub handler: String,
    pub name: String,
    pub payload: String,
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Unix times in milliseconds: submitted, last changed, and not to be attempted before.
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default)]
    pub not_before_ms: u64,
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
    #[error("no randomness for the cursor key: {0}")]
    Random(String),
    #[error("data directory was written by schema version {found}, this build knows version {SCHEMA_VERSION}")]
    SchemaVersion { found: String },
    /// The store cannot be reached, or not in time (etcd without quorum): worth retrying.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
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

/// The exclusive end of the range of keys that start with `prefix`: the prefix with its last
/// character raised by one (carrying over U+10FFFF), `None` when no string is above them all.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut end: Vec<char> = prefix.chars().collect();
    while let Some(last) = end.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(next) = next {
            end.push(next);
            return Some(end.into_iter().collect());
        }
    }
    None
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { key: key.replace('\0', " "), source })
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("model types serialize")
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

/// The attribute index keys of an entity for the attributes in `indexed` (see `by_attr`).
fn attr_keys<'a>(
    tenant: &'a str,
    e: &'a Entity,
    indexed: &'a std::collections::BTreeSet<String>,
) -> impl Iterator<Item = String> + 'a {
    e.attributes.iter().filter(|(name, _)| indexed.contains(name.as_str())).filter_map(move |(name, v)| {
        let value = index_key(name, v)?;
        Some(format!("{tenant}\0{name}\0{}\0{value}\0{}", e.kind, e.location))
    })
}

/// The storage engine under a [`Store`].
enum Engine {
    /// One embedded redb file: writes are applied in batches by one writer.
    Redb(Database),
    /// An etcd cluster shared with other nodes: each write is a transaction of its own.
    Etcd(Arc<etcd::Etcd>),
}

/// The database.
pub struct Store {
    engine: Engine,
    cursor_key: [u8; 32],
    /// Commits since the store was opened (see [`Store::commits`]).
    commits: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Connects to an etcd cluster (see `etcd/mod.rs`): the store shared by every node given
    /// the same target. `max_txn_ops` is the most operations (and compares) one write may put
    /// in one etcd transaction: etcd's own `--max-txn-ops` (128 by default) or less.
    pub fn open_etcd(target: &EtcdTarget, max_txn_ops: usize) -> Result<Store> {
        let etcd = etcd::Etcd::open(target, max_txn_ops)?;
        Ok(Store {
            cursor_key: etcd.cursor_key,
            engine: Engine::Etcd(Arc::new(etcd)),
            commits: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Opens (or creates) the database file, creating tables and recording the schema version.
    pub fn open(path: &Path) -> Result<Store> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| v.value().to_string());
            let count = match found.as_deref() {
                None | Some("2") | Some("3") | Some(SCHEMA_VERSION) => false,
                Some("1") => true,
                Some(_) => return Err(StoreError::SchemaVersion { found: found.unwrap_or_default() }),
            };
            meta.insert("schema_version", SCHEMA_VERSION)?;
            if count {
                count_entities(&txn)?;
            }
            // Versions before 3 have no attribute index; a build that indexes other built-in
            // attributes than the one that built it rebuilds it.
            let builtin = builtin_indexed_attributes().iter().cloned().collect::<Vec<_>>().join(" ");
            let built = meta.get("builtin_indexed")?.map(|v| v.value().to_string());
            if built.as_deref() != Some(builtin.as_str()) {
                meta.insert("builtin_indexed", builtin.as_str())?;
                build_attr_index(&txn)?;
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
            txn.open_table(BY_ATTR)?;
            txn.open_table(INDEXED)?;
            txn.open_table(JOBS)?;
            txn.open_table(JOBS_OPEN)?;
        }
        let cursor_key = {
            let mut meta = txn.open_table(META)?;
            let stored = meta.get("cursor_key")?.and_then(|v| hex_key(v.value()));
            match stored {
                Some(k) => k,
                None => {
                    let mut k = [0u8; 32];
                    getrandom::fill(&mut k).map_err(|e| StoreError::Random(e.to_string()))?;
                    meta.insert("cursor_key", hex::encode(k).as_str())?;
                    k
                }
            }
        };
        txn.commit()?;
        Ok(Store { engine: Engine::Redb(db), cursor_key, commits: std::sync::atomic::AtomicU64::new(0) })
    }

    fn db(&self) -> Result<&Database> {
        match &self.engine {
            Engine::Redb(db) => Ok(db),
            Engine::Etcd(_) => Err(StoreError::Unavailable("a redb-only operation on the etcd engine (a bug)".into())),
        }
    }

    /// Whether writes go through one writer in batches ([`Store::begin_batch`]; redb), or each
    /// is applied on its own, from any thread ([`Store::commit_step`]; etcd).
    pub fn is_batched(&self) -> bool {
        matches!(self.engine, Engine::Redb(_))
    }

    /// Whether other processes (nodes) write the same store (etcd): what this process caches
    /// of it must be checked against the store, not only kept by its own writes.
    pub fn is_shared(&self) -> bool {
        matches!(self.engine, Engine::Etcd(_))
    }

    /// Waits until reads on this node see every write acknowledged (by any node) before the
    /// call; nothing to wait for on redb, where this process is the only writer. An error is
    /// [`StoreError::Unavailable`]: the cluster has no quorum, or this node cannot follow it.
    pub fn sync(&self) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let etcd = match &self.engine {
            Engine::Etcd(e) => Some(e.sync()),
            Engine::Redb(_) => None,
        };
        async move {
            match etcd {
                Some(wait) => wait.await,
                None => Ok(()),
            }
        }
    }

    /// A number that moves whenever a tenant record or a token changes, where other nodes may
    /// change them (etcd): caches of them compare it. `None` on redb (only this process writes).
    pub fn admin_changes(&self) -> Option<u64> {
        match &self.engine {
            Engine::Etcd(e) => Some(e.snapshot().admin_changes),
            Engine::Redb(_) => None,
        }
    }

    /// A secret of this data directory, made at its creation: the server signs listing
    /// cursors with it, so that they survive a restart and cannot be forged.
    pub fn cursor_key(&self) -> &[u8; 32] {
        &self.cursor_key
    }

    pub fn schema_version(&self) -> Result<String> {
        let txn = self.db()?.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get("schema_version")?.map(|v| v.value().to_string()).unwrap_or_default())
    }

    /// A consistent read-only view of what has committed (on etcd: of this node's copy; see
    /// [`Store::sync`]).
    pub fn read(&self) -> Result<Reader> {
        Ok(match &self.engine {
            Engine::Redb(db) => Reader(ReadInner::Redb(RedbRead { txn: db.begin_read()? })),
            Engine::Etcd(e) => Reader(ReadInner::Etcd { snap: e.snapshot(), etcd: Arc::clone(e) }),
        })
    }

    /// Starts preparing a write on a snapshot of what has committed.
    pub fn step(&self) -> Result<Step> {
        Ok(Step::new(self.read()?))
    }

    /// Applies one step in a transaction of its own, committed durably when it applied
    /// (blocking; on redb it waits for the batch being written, if any).
    pub fn commit_step(&self, step: Step) -> Result<Applied> {
        self.commit_set(step.finish())
    }

    /// [`Store::commit_step`] of a finished step.
    pub fn commit_set(&self, set: WriteSet) -> Result<Applied> {
        if let Engine::Etcd(e) = &self.engine {
            return e.apply(set);
        }
        let mut w = self.begin_batch()?;
        let applied = w.apply(set)?;
        if matches!(applied, Applied::Done { .. }) {
            self.commit_batch(w)?;
        }
        Ok(applied)
    }

    /// Opens a batch (redb only: see [`Store::is_batched`]): a write transaction that steps
    /// are applied to in turn. Commit it with [`Store::commit_batch`]; dropping it aborts
    /// every step.
    pub fn begin_batch(&self) -> Result<Writer> {
        Ok(Writer { txn: self.db()?.begin_write()? })
    }

    /// Commits a batch durably (redb `Durability::Immediate`: on disk when this returns).
    pub fn commit_batch(&self, w: Writer) -> Result<()> {
        let committed = w.txn.commit();
        // Counted even when the commit failed: a count that moves too often only costs a
        // cache miss (see `commits`).
        self.commits.fetch_add(1, std::sync::atomic::Ordering::Release);
        committed?;
        Ok(())
    }

    /// How many write transactions have committed (or tried to) since the store was opened;
    /// every commit goes through [`Store::commit_batch`]. It moves after a commit is on disk and
    /// before `commit_batch` returns, so before any writer is answered: what was read from a
    /// snapshot taken after this returned `n` stays current for as long as it returns `n` (the
    /// server's cache of rendered entities is exact by it).
    /// On etcd, the revision of this node's copy, which moves with every write of any node.
    pub fn commits(&self) -> u64 {
        match &self.engine {
            Engine::Etcd(e) => e.revision() as u64,
            Engine::Redb(_) => self.commits.load(std::sync::atomic::Ordering::Acquire),
        }
    }
}

fn hex_key(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// Builds the attribute index of every tenant's entities anew (migration to version 3, or
/// other built-in indexed attributes): the built-in ones and each tenant's `indexed`.
fn build_attr_index(txn: &redb::WriteTransaction) -> Result<()> {
    let mut by_attr = txn.open_table(BY_ATTR)?;
    by_attr.retain(|_, _| false)?;
    let mut own = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for item in txn.open_table(INDEXED)?.iter()? {
        let (k, _) = item?;
        if let Some((tenant, attr)) = k.value().split_once('\0') {
            own.entry(tenant.to_string()).or_default().insert(attr.to_string());
        }
    }
    let builtin = builtin_indexed_attributes();
    for item in txn.open_table(ENTITIES)?.iter()? {
        let (k, v) = item?;
        let Some((tenant, _)) = k.value().split_once('\0') else { continue };
        let e: Entity = decode(k.value(), v.value())?;
        let mut indexed = builtin.clone();
        indexed.extend(own.get(tenant).into_iter().flatten().cloned());
        for key in attr_keys(tenant, &e, &indexed) {
            by_attr.insert(key.as_str(), ())?;
        }
    }
    Ok(())
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

/// A snapshot of what had committed when it was taken: a redb read transaction, or this
/// node's copy of an etcd store at one revision.
pub struct Reader(ReadInner);

enum ReadInner {
    Redb(RedbRead),
    Etcd { snap: Arc<etcd::mirror::Snapshot>, etcd: Arc<etcd::Etcd> },
}

/// A redb read transaction.
struct RedbRead {
    txn: redb::ReadTransaction,
}

impl RedbRead {
    pub(crate) fn txn(&self) -> &redb::ReadTransaction {
        &self.txn
    }
}

impl Reader {
    /// The snapshot, when it is one of etcd's (a step compares its reads against it).
    pub(crate) fn etcd_snapshot(&self) -> Option<Arc<etcd::mirror::Snapshot>> {
        match &self.0 {
            ReadInner::Etcd { snap, .. } => Some(Arc::clone(snap)),
            ReadInner::Redb(_) => None,
        }
    }

    /// The tenant's newest jobs, newest first, at most `limit`.
    pub fn newest_jobs(&self, tenant: &str, limit: usize) -> Result<Vec<JobRecord>> {
        let range = KeyRange::prefix(&format!("{tenant}\0"));
        let mut out = Vec::new();
        match &self.0 {
            ReadInner::Redb(r) => {
                let t = r.txn.open_table(JOBS)?;
                for item in t.range::<&str>(range.bounds())?.rev().take(limit) {
                    let (k, v) = item?;
                    out.push(decode(k.value(), v.value())?);
                }
            }
            ReadInner::Etcd { snap, .. } => {
                for (k, e) in snap.range(reads::Tbl::Jobs, &range).filter(|(_, e)| e.live).rev().take(limit) {
                    out.push(decode(k, &e.value)?);
                }
            }
        }
        Ok(out)
    }

    /// The tenant's catalog generation (see `step.rs`): a catalog read with this snapshot is
    /// current for as long as the generation stays.
    pub fn catalog_generation(&self, tenant: &str) -> Result<u64> {
        reads::counter(self, &key2(tenant, CATALOG_GENERATION))
    }
}

/// A write transaction: applies steps ([`Writer::apply`]) and the server-level writes; reads see
/// the transaction's own writes.
pub struct Writer {
    txn: WriteTransaction,
}

impl Writer {
    pub(crate) fn txn(&self) -> &WriteTransaction {
        &self.txn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocni_model::{Catalog, Entity, parse_entity_input};
    use serde_json::json;

    const COMPUTE: &str = "http://schemas.ogf.org/occi/infrastructure#compute";
    const NETWORK: &str = "http://schemas.ogf.org/occi/infrastructure#network";
    const NIC: &str = "http://schemas.ogf.org/occi/infrastructure#networkinterface";

    /// Prepares one step with `f` and applies it alone; it must apply.
    fn write<T>(store: &Store, f: impl FnOnce(&mut Step) -> Result<T>) -> T {
        let mut step = store.step().unwrap();
        let out = f(&mut step).unwrap();
        assert!(matches!(store.commit_step(step).unwrap(), Applied::Done { .. }));
        out
    }

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
            write(&store, |w| {
                w.put_entity("t1", &vm)?;
                w.put_entity("t1", &net)?;
                w.put_entity("t1", &nic)?;
                w.put_entity("t2", &vm)?;
                Ok(())
            });
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
        let removed = write(&store, |w| w.delete_entity("t1", "/compute/a"));
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
        // A step that is dropped instead of applied writes nothing.
        let mut step = store.step().unwrap();
        step.put_entity("t", &vm).unwrap();
        assert_eq!(step.entity("t", "/compute/a").unwrap().as_ref(), Some(&vm), "a step sees its own writes");
        drop(step);
        assert!(store.read().unwrap().entity("t", "/compute/a").unwrap().is_none());
        // So does an administration step, and a step that conflicts.
        let mut admin = store.step().unwrap();
        admin.put_tenant(&TenantRecord { name: "t".into(), created: 1, limits: Default::default() }).unwrap();
        drop(admin);
        assert!(store.read().unwrap().tenant("t").unwrap().is_none());
        let stale = store.step().unwrap();
        assert!(stale.tenant("t").unwrap().is_none());
        write(&store, |w| w.put_tenant(&TenantRecord { name: "t".into(), created: 2, limits: Default::default() }));
        let mut stale = stale;
        stale.put_tenant(&TenantRecord { name: "t".into(), created: 3, limits: Default::default() }).unwrap();
        assert!(matches!(store.commit_step(stale).unwrap(), Applied::Conflict { table: "tenants", .. }));
        assert_eq!(store.read().unwrap().tenant("t").unwrap().unwrap().created, 2);
    }

    #[test]
    fn handlers_blobs_and_kv() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let rec = |name: &str, digest: &str| HandlerRecord {
            name: name.into(),
            digest: digest.into(),
            size: 3,
            ..Default::default()
        };
        write(&store, |w| {
            w.put_handler("t", &rec("a", "d1"), b"one")?;
            w.put_handler("t", &rec("b", "d1"), b"one")?;
            w.kv_set("t", "a", "k1", b"v1")?;
            w.kv_set("t", "a", "k2", b"v2")?;
            w.kv_set("t", "ab", "k1", b"other handler")?;
            Ok(())
        });
        let r = store.read().unwrap();
        assert_eq!(r.kv_keys("t", "a", "k", 10).unwrap(), vec!["k1", "k2"]);
        assert_eq!(r.kv_get("t", "a", "k1").unwrap().as_deref(), Some(&b"v1"[..]));
        assert!(r.kv_get("u", "a", "k1").unwrap().is_none(), "tenants are apart");
        drop(r);
        // Replacing a's component keeps d1 (b uses it); deleting both drops it.
        write(&store, |w| w.put_handler("t", &rec("a", "d2"), b"two"));
        assert!(store.read().unwrap().handler_blob("t", "d1").unwrap().is_some());
        write(&store, |w| w.delete_handler("t", "b"));
        assert!(store.read().unwrap().handler_blob("t", "d1").unwrap().is_none());
        write(&store, |w| w.delete_handler("t", "a"));
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
        write(&store, |w| {
            w.put_entity("t", &vm)?;
            w.put_entity("t", &vm)?; // a replace is no new entity
            w.put_entity("t", &net)?;
            w.put_entity("t", &nic)?;
            w.put_entity("u", &vm)?;
            Ok(())
        });
        assert_eq!(store.read().unwrap().entity_count("t").unwrap(), 3);
        assert_eq!(store.read().unwrap().entity_count("u").unwrap(), 1);
        // Deleting the compute takes its link along: both are counted out.
        write(&store, |w| w.delete_entity("t", "/compute/a"));
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
        let rec = HandlerRecord { name: "h".into(), digest: "d".into(), size: 1, ..Default::default() };
        let token = |id: &str, tenant: &str| TokenRecord {
            id: id.into(),
            tenant: tenant.into(),
            secret_sha256: "00".into(),
            created: 1,
        };
        // "a" and "ab": a prefix of a name must not catch the other tenant's keys.
        for t in ["a", "ab"] {
            write(&store, |w| {
                w.put_tenant(&TenantRecord { name: t.into(), created: 1, limits: Default::default() })?;
                w.put_token(&token(&format!("{t}-1"), t))
            });
            write(&store, |w| {
                w.put_category(t, &mixin)?;
                w.set_binding(t, &mixin.id(), Some("h"))?;
                w.put_entity(t, &vm)?;
                w.put_handler(t, &rec, b"bytes")?;
                w.kv_set(t, "h", "k", b"v")?;
                Ok(())
            });
        }
        let mut step = store.step().unwrap();
        assert!(!step.delete_token("ab", "a-1").unwrap(), "not ab's token");
        let removed = write(&store, |w| w.delete_tenant("a"));
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
            write(&store, |w| {
                w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), "/compute/a"))?;
                w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), "/compute/b"))?;
                Ok(())
            });
            // Make it look like version 1: no counters, the old version.
            let txn = store.db().unwrap().begin_write().unwrap();
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
        write(&store, |w| {
            for i in 0..10 {
                w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), &format!("/compute/{i}")))?;
            }
            w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), "/computer/x"))?;
            Ok(())
        });
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
        for def in [BY_KIND, BY_MIXIN, BY_END, BY_ATTR, INDEXED] {
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
        /// Reads a listing (a kind's members) and records how many it saw, in the kv store.
        CountVms,
    }

    fn apply(w: &mut Step, c: &Catalog, op: &Op) -> Result<()> {
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
            Op::Handler(n, d) => w.put_handler(
                "t",
                &HandlerRecord { name: format!("h{n}"), digest: format!("d{d}"), size: 1, ..Default::default() },
                &[*d],
            ),
            Op::DropHandler(n) => w.delete_handler("t", &format!("h{n}")).map(drop),
            Op::Binding(n, p) => w.set_binding("t", &format!("c{n}"), p.map(|p| format!("h{p}")).as_deref()),
            Op::CountVms => {
                let n = w.by_kind("t", COMPUTE, Page::ALL)?.len();
                w.kv_set("t", "h1", "count", &[n as u8])
            }
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
            Just(Op::CountVms),
        ]
    }

    /// Prepares a step of `ops` on the current snapshot.
    fn prepare(store: &Store, c: &Catalog, ops: &[Op]) -> Step {
        let mut step = store.step().unwrap();
        for op in ops {
            apply(&mut step, c, op).unwrap();
        }
        step
    }

    fn snapshot(store: &Store) -> Vec<(String, String, Vec<u8>)> {
        dump(&store.db().unwrap().begin_write().unwrap())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Steps are serializable: of two steps prepared on the same snapshot and applied in
        /// one batch, the second either conflicts (and the batch holds the first alone) or
        /// leaves exactly what preparing it after the first had committed would have.
        #[test]
        fn concurrent_steps_apply_as_if_one_after_the_other(
            base in proptest::collection::vec(op(), 0..10),
            first in proptest::collection::vec(op(), 1..8),
            second in proptest::collection::vec(op(), 1..8),
        ) {
            let c = Catalog::builtin();
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("db")).unwrap();
            store.commit_step(prepare(&store, &c, &base)).unwrap();
            let (a, b) = (prepare(&store, &c, &first), prepare(&store, &c, &second));
            let mut w = store.begin_batch().unwrap();
            let applied_a = w.apply(a.finish()).unwrap();
            let done = matches!(applied_a, Applied::Done { .. });
            proptest::prop_assert!(done);
            let applied_b = w.apply(b.finish()).unwrap();
            store.commit_batch(w).unwrap();
            let together = snapshot(&store);

            // The same, one after the other.
            let dir = tempfile::tempdir().unwrap();
            let serial = Store::open(&dir.path().join("db")).unwrap();
            serial.commit_step(prepare(&serial, &c, &base)).unwrap();
            serial.commit_step(prepare(&serial, &c, &first)).unwrap();
            let after_first = snapshot(&serial);
            match applied_b {
                Applied::Done { .. } => {
                    serial.commit_step(prepare(&serial, &c, &second)).unwrap();
                    proptest::prop_assert_eq!(&together, &snapshot(&serial));
                }
                Applied::Conflict { .. } => proptest::prop_assert_eq!(&together, &after_first),
                Applied::Limit { .. } | Applied::TooLarge { .. } => {
                    proptest::prop_assert!(false, "no cap was set, redb has no operation limit")
                }
            }
        }
    }

    #[test]
    fn each_entity_follows_its_source_and_stops_when_told() {
        use std::ops::ControlFlow;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        const TPL: &str = "http://schemas.ogf.org/occi/infrastructure#os_tpl";
        write(&store, |w| {
            for i in 0..6 {
                let mixins = if i % 2 == 0 { json!([TPL]) } else { json!([]) };
                w.put_entity("t", &entity(&c, json!({"kind": COMPUTE, "mixins": mixins}), &format!("/vm/{i}")))?;
            }
            w.put_entity("t", &entity(&c, json!({"kind": NETWORK}), "/net/a"))?;
            w.put_entity("u", &entity(&c, json!({"kind": COMPUTE}), "/vm/9"))
        });
        let r = store.read().unwrap();
        let scan = |source: Source, stop_after: usize| {
            let mut seen = Vec::new();
            r.each_entity("t", source, &mut |e| {
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
    fn steps_conflict_on_what_they_read_and_only_on_that() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        let vm = |loc: &str, title: &str| {
            entity(&c, json!({"kind": COMPUTE, "attributes": {"occi.core.title": title}}), loc)
        };
        write(&store, |w| w.put_entity("t", &vm("/compute/a", "0")));
        // Two updates of one entity, prepared side by side: the second read a stale value.
        let (mut s1, mut s2) = (store.step().unwrap(), store.step().unwrap());
        for (s, title) in [(&mut s1, "1"), (&mut s2, "2")] {
            assert!(s.entity("t", "/compute/a").unwrap().is_some());
            s.put_entity("t", &vm("/compute/a", title)).unwrap();
        }
        // Creates of other entities by other steps (same tenant, same kind) do not conflict.
        let (mut s3, mut s4) = (store.step().unwrap(), store.step().unwrap());
        s3.put_entity("t", &vm("/compute/b", "b")).unwrap();
        s4.put_entity("t", &vm("/compute/c", "c")).unwrap();
        let mut w = store.begin_batch().unwrap();
        assert!(matches!(w.apply(s1.finish()).unwrap(), Applied::Done { .. }));
        assert_eq!(w.apply(s2.finish()).unwrap(), Applied::Conflict { table: "entities", key: "t /compute/a".into() });
        assert!(matches!(w.apply(s3.finish()).unwrap(), Applied::Done { .. }));
        assert!(matches!(w.apply(s4.finish()).unwrap(), Applied::Done { .. }));
        store.commit_batch(w).unwrap();
        let r = store.read().unwrap();
        assert_eq!(r.entity("t", "/compute/a").unwrap().unwrap().attributes["occi.core.title"], "1");
        assert_eq!(r.entity_count("t").unwrap(), 3, "the count moved by deltas, not by reads");
        drop(r);

        // A listing read is a range read: a member added since makes it conflict.
        let mut lister = store.step().unwrap();
        let n = lister.by_kind("t", COMPUTE, Page::ALL).unwrap().len();
        lister.kv_set("t", "h", "seen", &[n as u8]).unwrap();
        write(&store, |w| w.put_entity("t", &vm("/compute/d", "d")));
        assert!(matches!(store.commit_step(lister).unwrap(), Applied::Conflict { table: "by_kind", .. }));
        // A page read ending before the new member does not.
        let mut pager = store.step().unwrap();
        assert_eq!(pager.by_kind("t", COMPUTE, Page { offset: 0, limit: 1 }).unwrap(), ["/compute/a"]);
        pager.kv_set("t", "h", "first", b"a").unwrap();
        write(&store, |w| w.put_entity("t", &vm("/compute/e", "e")));
        assert!(matches!(store.commit_step(pager).unwrap(), Applied::Done { .. }));
    }

    #[test]
    fn entity_caps_hold_across_concurrent_steps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        let steps: Vec<Step> = (0..3)
            .map(|i| {
                let mut s = store.step().unwrap();
                assert_eq!(s.entity_count_estimate("t").unwrap(), 0);
                s.cap_entities("t", 2);
                s.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), &format!("/compute/{i}"))).unwrap();
                s
            })
            .collect();
        let mut w = store.begin_batch().unwrap();
        let outcomes: Vec<Applied> = steps.into_iter().map(|s| w.apply(s.finish()).unwrap()).collect();
        store.commit_batch(w).unwrap();
        assert!(matches!(outcomes[0], Applied::Done { .. }));
        assert!(matches!(outcomes[1], Applied::Done { .. }));
        assert_eq!(outcomes[2], Applied::Limit { tenant: "t".into(), max: 2 });
        assert_eq!(store.read().unwrap().entity_count("t").unwrap(), 2);
    }

    #[test]
    fn catalog_generations_move_with_categories_bindings_and_handlers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        assert_eq!(store.read().unwrap().catalog_generation("t").unwrap(), 0);
        // An entity write leaves the generation.
        write(&store, |w| w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), "/compute/a")));
        assert_eq!(store.read().unwrap().catalog_generation("t").unwrap(), 0);
        let mut s = store.step().unwrap();
        s.set_binding("t", COMPUTE, Some("h")).unwrap();
        assert!(s.touched("t") && !s.touched("u"));
        assert_eq!(store.commit_step(s).unwrap(), Applied::Done { generations: vec![("t".into(), 1)] });
        // A step prepared with generation 0 no longer holds; one with 1 does.
        let stale = store.step().unwrap();
        stale.expect_generation("t", 0);
        let mut stale = stale;
        stale.kv_set("t", "h", "k", b"v").unwrap();
        assert!(matches!(store.commit_step(stale).unwrap(), Applied::Conflict { table: "counters", .. }));
        let mut fresh = store.step().unwrap();
        fresh.expect_generation("t", 1);
        fresh.kv_set("t", "h", "k", b"v").unwrap();
        assert_eq!(store.commit_step(fresh).unwrap(), Applied::Done { generations: vec![] });
    }

    #[test]
    fn jobs_stay_queued_until_they_end_and_go_with_their_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let job = |id: &str, entity: &str, state: JobState| JobRecord {
            id: id.into(),
            entity: entity.into(),
            handler: "h".into(),
            name: "n".into(),
            payload: String::new(),
            state,
            attempts: 0,
            last_error: None,
            created_ms: 1,
            updated_ms: 1,
            not_before_ms: 0,
        };
        write(&store, |w| {
            w.put_job("t", &job("01", "/e/a", JobState::Pending))?;
            w.put_job("t", &job("02", "/e/a", JobState::Pending))?;
            w.put_job("t", &job("03", "/e/b", JobState::Running))?;
            w.put_job("u", &job("04", "/e/a", JobState::Pending))
        });
        let r = store.read().unwrap();
        assert_eq!(r.open_jobs_of("t", "/e/a").unwrap(), ["01", "02"]);
        let open: Vec<String> =
            r.open_jobs(100).unwrap().into_iter().map(|j| format!("{}{}{}", j.tenant, j.entity, j.id)).collect();
        assert_eq!(open, ["t/e/a01", "t/e/a02", "t/e/b03", "u/e/a04"]);
        assert_eq!(r.newest_jobs("t", 2).unwrap().iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["03", "02"]);
        assert_eq!(r.job("u", "01").unwrap(), None, "another tenant's job is not there");
        drop(r);
        write(&store, |w| w.put_job("t", &job("01", "/e/a", JobState::Succeeded)));
        let r = store.read().unwrap();
        assert_eq!(r.open_jobs_of("t", "/e/a").unwrap(), ["02"]);
        assert_eq!(r.job("t", "01").unwrap().unwrap().state, JobState::Succeeded);
        drop(r);
        write(&store, |w| w.delete_tenant("t"));
        let r = store.read().unwrap();
        assert_eq!(r.open_jobs(100).unwrap().len(), 1);
        assert!(r.newest_jobs("t", 10).unwrap().is_empty());
    }

    #[test]
    fn prefix_ranges_hold_the_highest_characters_and_nothing_more() {
        assert_eq!(prefix_end("t\0").as_deref(), Some("t\u{1}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        write(&store, |w| {
            w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), "/p/\u{10FFFF}/x"))?;
            w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), "/q/x"))
        });
        assert_eq!(store.read().unwrap().by_prefix("t", "/p/", Page::ALL).unwrap(), ["/p/\u{10FFFF}/x"]);
    }

    #[test]
    fn deletes_are_iterative_and_keys_with_a_nul_are_no_ones_links() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let c = Catalog::builtin();
        let nic = |loc: &str, source: &str| {
            entity(
                &c,
                json!({"kind": NIC, "source": source, "target": "/network/n",
                    "attributes": {"occi.networkinterface.mac": "00:11:22:33:44:55"}}),
                loc,
            )
        };
        // What an older server stored for a source with a NUL in its path (`/e\0x`): it is not
        // a link of `/e`, and deleting `/e` leaves it.
        write(&store, |w| {
            w.put_entity("t", &entity(&c, json!({"kind": COMPUTE}), "/e"))?;
            w.put_entity("t", &nic("/l/1", "/e"))?;
            // The model refuses such a source today, so the old record is built by hand.
            let mut old = nic("/l/2", "/e");
            old.attributes.insert("occi.core.source".into(), json!("/e\0x"));
            w.put_entity("t", &old)
        });
        assert_eq!(store.read().unwrap().links_at("t", "/e").unwrap().len(), 1);
        assert_eq!(write(&store, |w| w.delete_entity("t", "/e")), ["/e", "/l/1"]);
        assert!(store.read().unwrap().entity("t", "/l/2").unwrap().is_some());
    }
}
