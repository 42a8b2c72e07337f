//! The etcd engine: the store's tables as keys of an etcd cluster, shared by every node.
//!
//! - Keys: `{prefix}/t/{table}/{key}` for the tables (the key as the redb engine has it, `\0`
//!   separators included), `{prefix}/meta/{name}` (schema version, cursor key),
//!   `{prefix}/blob/{digest}/{n}` (uploaded components in chunks of [`CHUNK`] bytes, under
//!   etcd's request size limit: the `handler_blobs` table holds a manifest),
//!   `{prefix}/t/~txn/{id}` (a marker each write transaction puts, on a lease, so that a write
//!   whose answer was lost is recognised when it is sent again) and `{prefix}/t/~sync` (see
//!   below). Table values start with a byte that says value or tombstone (`mirror.rs`).
//! - Reads: every node keeps a copy of the tables ([`Snapshot`]), listed once and then kept
//!   current by a watch (relisted when the watch was compacted away). A request first waits
//!   until the copy holds the cluster's current revision ([`Etcd::sync`]: one linearizable read
//!   of a revision, then the watch catching up), so that a write acknowledged by any node is
//!   seen by any later request on any node; every read of the request then comes from one
//!   snapshot. The copy's revision moves only with the events the watch brings, never with
//!   progress reports (etcd 3.4 before 3.4.25 may send a requested one ahead of events, etcd
//!   issue 15220): when the revision to reach was made by writes the watch does not see (other
//!   prefixes), the node writes `~sync` and waits for that event instead ([`catch_up`]).
//! - Writes: a prepared step becomes one etcd transaction ([`Etcd::apply`]) whose compares
//!   are the `mod_revision`s of what the step read, taken from its snapshot; a compare that
//!   fails is a conflict (the request is prepared again). A transaction whose outcome is
//!   unknown (a timeout, a leader lost) is sent again as it was, within [`WRITE_BUDGET`]: its
//!   marker says whether the first one committed. Entity counts are not stored (each node
//!   derives them from its copy), so creates of one tenant do not conflict on a counter.

pub(crate) mod mirror;
pub mod target;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use tokio::sync::{oneshot, watch};

use crate::reads::Tbl;
use crate::step::{Applied, Read, WriteSet, visited};
use crate::{CATALOG_GENERATION, Result, SCHEMA_VERSION, StoreError, entity_count_tenant, key2};
use mirror::{Entry, Snapshot, encode};
pub use target::EtcdTarget;

/// How long one etcd request may take before it is given up (and, for a write, sent again):
/// a proposal sent to a follower just as the leader died waits for an election that etcd
/// starts only after its 1 s election timeout, so past half a second another try (perhaps
/// through another member, perhaps to a new leader) does better than waiting. Loaded, a
/// transaction takes tens of milliseconds (p99 under 200 ms at 64 connections on 2 cores).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest pause between two tries (of a request, or of watching again): short, so that
/// a node notices a new leader within a tenth of a second of its election.
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(100);
/// How long a write keeps trying (a leader election takes about a second) before it answers
/// that the store is unavailable.
const WRITE_BUDGET: Duration = Duration::from_secs(10);
/// How long a request waits for this node's copy to catch up with the cluster.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening the store keeps trying to reach the cluster.
const OPEN_BUDGET: Duration = Duration::from_secs(15);
/// Bytes of a component per etcd key (etcd refuses requests above 1.5 MiB by default).
const CHUNK: usize = 1 << 20;
/// Keys per request of the initial listing.
const LIST_PAGE: i64 = 2000;
/// Lifetime of the lease write markers are put with (they matter for a few seconds).
const MARKER_TTL: i64 = 600;

/// The etcd keys of one store (one prefix).
#[derive(Clone, Debug)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn tables(&self) -> String {
        format!("{}/t/", self.prefix)
    }

    /// The end of the range of keys that start with `prefix`.
    fn end_of(prefix: &str) -> String {
        crate::prefix_end(prefix).expect("key prefixes end in ASCII")
    }

    fn key(&self, tbl: Tbl, key: &str) -> Vec<u8> {
        format!("{}/t/{}/{key}", self.prefix, tbl.name()).into_bytes()
    }

    /// The end of a range of `tbl` (`None`: the end of the table).
    fn end(&self, tbl: Tbl, end: Option<&str>) -> Vec<u8> {
        match end {
            Some(e) => self.key(tbl, e),
            None => Keys::end_of(&format!("{}/t/{}/", self.prefix, tbl.name())).into_bytes(),
        }
    }

    fn meta(&self, name: &str) -> String {
        format!("{}/meta/{name}", self.prefix)
    }

    fn blob(&self, digest: &str, n: usize) -> String {
        format!("{}{digest}/{n:05}", self.blobs())
    }

    fn blobs(&self) -> String {
        format!("{}/blob/", self.prefix)
    }

    /// The digest of a chunk's key.
    fn blob_digest<'a>(&self, key: &'a [u8]) -> Option<&'a str> {
        let rest = std::str::from_utf8(key).ok()?.strip_prefix(&self.blobs())?;
        rest.split_once('/').map(|(digest, _)| digest)
    }

    /// Under the watched keys (so that the watch sees every revision a write makes), in no
    /// table.
    fn marker(&self, id: &str) -> String {
        format!("{}/t/~txn/{id}", self.prefix)
    }

    /// The key a node writes to make the watch bring it a revision (see [`catch_up`]).
    fn barrier(&self) -> String {
        format!("{}/t/~sync", self.prefix)
    }

    /// The table and key of an etcd key under [`Keys::tables`].
    fn parse(&self, key: &[u8]) -> Option<(Tbl, String)> {
        let key = std::str::from_utf8(key).ok()?.strip_prefix(&self.tables())?;
        let (table, rest) = key.split_once('/')?;
        Some((Tbl::from_name(table)?, rest.to_string()))
    }
}

/// What the `handler_blobs` table holds for a component on etcd.
#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    digest: String,
    size: usize,
    chunks: usize,
}

/// The copy of the tables and who waits for it.
struct Shared {
    snap: RwLock<Arc<Snapshot>>,
    /// The revision of `snap`, for those who wait for one.
    rev: watch::Sender<i64>,
}

impl Shared {
    fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snap.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn publish(&self, snap: &Snapshot) {
        *self.snap.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snap.clone());
        self.rev.send_replace(snap.rev);
    }

    /// Waits until the copy holds revision `rev`, at most `limit`; false when it did not.
    async fn wait_for(&self, rev: i64, limit: Duration) -> bool {
        let mut rx = self.rev.subscribe();
        matches!(tokio::time::timeout(limit, rx.wait_for(|r| *r >= rev)).await, Ok(Ok(_)))
    }
}

/// How long a node waits for the watch to bring a revision before it writes `~sync`.
const BARRIER_AFTER: Duration = Duration::from_millis(25);

/// What the engine and its tasks share: the client, the keys, this node's copy, and the
/// store's name (for messages). Cheap to clone.
#[derive(Clone)]
struct Link {
    client: Client,
    keys: Keys,
    shared: Arc<Shared>,
    target: String,
}

impl Link {
    fn unavailable(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        unavailable(&self.target, what, e)
    }

    /// The cluster's current revision: a linearizable read (of no key's value).
    async fn revision(&self) -> std::result::Result<i64, etcd_client::Error> {
        let options = GetOptions::new().with_count_only();
        let resp = self.client.kv_client().get(self.keys.meta("schema_version"), Some(options)).await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Waits until the copy holds revision `rev` (see the module documentation).
    async fn catch_up(&self, rev: i64) -> Result<()> {
        if self.shared.wait_for(rev, BARRIER_AFTER).await {
            return Ok(());
        }
        let started = Instant::now();
        let put = retrying(SYNC_TIMEOUT, || {
            let (mut kv, key) = (self.client.kv_client(), self.keys.barrier());
            async move { kv.put(key, Vec::new(), None).await }
        })
        .await
        .map_err(|e| self.unavailable("no quorum answered", e))?;
        let at = put.header().map_or(rev, |h| h.revision()).max(rev);
        if self.shared.wait_for(at, SYNC_TIMEOUT.saturating_sub(started.elapsed())).await {
            return Ok(());
        }
        Err(self.unavailable(
            "this node's copy of the store did not catch up",
            format!("revision {at} not reached within {} s", SYNC_TIMEOUT.as_secs()),
        ))
    }
}

/// A transaction that deletes `keys` if each is still at its revision.
fn delete_unchanged(keys: impl Iterator<Item = (Vec<u8>, i64)>) -> Txn {
    let (compares, deletes): (Vec<Compare>, Vec<TxnOp>) = keys
        .map(|(key, rev)| (Compare::mod_revision(key.clone(), CompareOp::Equal, rev), TxnOp::delete(key, None)))
        .unzip();
    Txn::new().when(compares).and_then(deletes)
}

/// An open etcd store.
pub(crate) struct Etcd {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    link: Link,
    max_txn_ops: usize,
    /// The lease write markers are put with, and when it was granted.
    lease: Mutex<Option<(i64, Instant)>>,
    /// The calls of [`Etcd::sync`] waiting for a revision read.
    reads: Arc<Mutex<RevisionReads>>,
    pub cursor_key: [u8; 32],
}

/// Who waits for the cluster's revision (see [`Etcd::sync`]).
#[derive(Default)]
struct RevisionReads {
    in_flight: bool,
    waiting: Vec<oneshot::Sender<std::result::Result<i64, String>>>,
}

/// Reads the cluster's revision for the calls waiting, round after round, until none waits.
async fn read_revisions(link: Link, reads: Arc<Mutex<RevisionReads>>) {
    loop {
        let waiting = {
            let mut r = reads.lock().unwrap_or_else(PoisonError::into_inner);
            if r.waiting.is_empty() {
                r.in_flight = false;
                return;
            }
            std::mem::take(&mut r.waiting)
        };
        let rev = retrying(SYNC_TIMEOUT, || link.revision()).await;
        if let Err(e) = &rev {
            tracing::warn!(etcd = %link.target, error = %e, waiting = waiting.len(), "no revision read");
        }
        for w in waiting {
            let _ = w.send(rev.clone());
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Never blocks (the store may be dropped on an async worker): the watch task and the
        // client's connections end with the runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn unavailable(target: &str, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("etcd at {target}: {what}: {e}"))
}

/// Whether an etcd error may go away by itself (a member down, a leader being elected, a
/// timeout), so that the request is worth sending again.
fn transient(e: &etcd_client::Error) -> bool {
    match e {
        // InvalidArgument, PermissionDenied, ResourceExhausted, FailedPrecondition, OutOfRange,
        // Unauthenticated: sending it again gets the same answer.
        etcd_client::Error::GRpcStatus(s) => !matches!(s.code() as i32, 3 | 7 | 8 | 9 | 11 | 16),
        etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_) => false,
        _ => true,
    }
}

/// Runs `f` on the etcd runtime and waits for it (from any thread that may block).
fn block_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    f: impl Future<Output = T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().map_err(|_| StoreError::Unavailable("the etcd client has stopped".into()))
}

/// Calls `f` until it succeeds, fails for good, or `budget` is spent (each call limited to
/// [`REQUEST_TIMEOUT`]).
async fn retrying<T, F, Fut>(budget: Duration, mut f: F) -> std::result::Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(25);
    loop {
        let last = match tokio::time::timeout(REQUEST_TIMEOUT, f()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if !transient(&e) => return Err(e.to_string()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", REQUEST_TIMEOUT.as_secs_f64()),
        };
        if started.elapsed() + pause >= budget {
            return Err(last);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_PAUSE_MAX);
    }
}

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(REQUEST_TIMEOUT)
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(1))
        .with_keep_alive_while_idle(true)
        .with_require_leader(true)
}

impl Etcd {
    /// Connects, checks (or records) the schema version, lists the tables and starts the
    /// watch that keeps them current.
    pub(crate) fn open(target: &EtcdTarget, max_txn_ops: usize) -> Result<Etcd> {
        let name = target.to_string();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ocni-etcd")
            .enable_all()
            .build()
            .map_err(|e| unavailable(&name, "cannot start its client thread", e))?;
        let handle = runtime.handle().clone();
        let keys = Keys { prefix: target.prefix.clone() };
        let endpoints = target.endpoints.clone();
        let client = block_on(&handle, async move { Client::connect(endpoints, Some(options())).await })?
            .map_err(|e| unavailable(&name, "cannot connect", e))?;
        let cursor_key = block_on(&handle, init_meta(client.clone(), keys.clone()))?.map_err(|e| match e {
            Init::Etcd(e) => unavailable(&name, "cannot read the store's version", e),
            Init::Schema(found) => StoreError::SchemaVersion { found },
            Init::Corrupt(what) => StoreError::Unavailable(format!("etcd at {name}: {what}")),
        })?;
        let first = block_on(&handle, {
            let (client, keys) = (client.clone(), keys.clone());
            async move { retrying(OPEN_BUDGET, || list(client.clone(), keys.clone())).await }
        })?
        .map_err(|e| unavailable(&name, "cannot list the store", e))?;
        let (rev, _) = watch::channel(first.rev);
        let shared = Arc::new(Shared { snap: RwLock::new(Arc::new(first.clone())), rev });
        let link = Link { client, keys, shared, target: name };
        handle.spawn(follow(link.clone(), first));
        handle.spawn(collect(link.clone(), max_txn_ops));
        Ok(Etcd {
            runtime: Some(runtime),
            handle,
            link,
            max_txn_ops,
            lease: Mutex::new(None),
            reads: Arc::default(),
            cursor_key,
        })
    }

    /// The newest snapshot of this node's copy (no waiting).
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.link.shared.current()
    }

    /// Waits until this node's copy holds every write acknowledged before the call (by any
    /// node): a linearizable read of the cluster's revision, then the watch catching up.
    /// Concurrent calls share reads: one read is in flight at a time, and it answers every call
    /// that arrived before it was sent (a read sent earlier could miss a write acknowledged
    /// after it was sent but before the call), so a node sends at most one read per round trip
    /// however many requests it serves.
    pub(crate) fn sync(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut reads = self.reads.lock().unwrap_or_else(PoisonError::into_inner);
            reads.waiting.push(answer);
            !std::mem::replace(&mut reads.in_flight, true)
        };
        if start {
            self.handle.spawn(read_revisions(self.link.clone(), Arc::clone(&self.reads)));
        }
        let link = self.link.clone();
        let caught_up = self.handle.spawn(async move {
            let rev = answered
                .await
                .map_err(|_| StoreError::Unavailable("the etcd client has stopped".into()))?
                .map_err(|e| link.unavailable("no quorum answered", e))?;
            link.catch_up(rev).await
        });
        async move { caught_up.await.map_err(|_| StoreError::Unavailable("the etcd client has stopped".into()))? }
    }

    /// The revision of this node's copy: what was read from a snapshot at revision `n` stays
    /// current for as long as this returns `n` (the server's cache of rendered answers).
    pub(crate) fn revision(&self) -> i64 {
        *self.link.shared.rev.borrow()
    }

    /// The bytes of a component, from its manifest.
    pub(crate) fn blob(&self, manifest: &[u8]) -> Result<Vec<u8>> {
        let m: Manifest = serde_json::from_slice(manifest)
            .map_err(|source| StoreError::Corrupt { key: "handler_blobs manifest".into(), source })?;
        let keys: Vec<String> = (0..m.chunks).map(|n| self.link.keys.blob(&m.digest, n)).collect();
        let client = self.link.client.clone();
        let chunks = block_on(&self.handle, async move {
            let mut out = Vec::new();
            for key in keys {
                let resp = retrying(WRITE_BUDGET, || {
                    let (mut kv, key) = (client.kv_client(), key.clone());
                    async move { kv.get(key, None).await }
                })
                .await?;
                match resp.kvs().first() {
                    Some(kv) => out.push(kv.value().to_vec()),
                    None => return Err(format!("chunk {key} is missing")),
                }
            }
            Ok(out)
        })?
        .map_err(|e| self.link.unavailable("cannot read a component", e))?;
        let bytes = chunks.concat();
        if bytes.len() != m.size {
            let sizes = format!("{} bytes, its manifest says {}", bytes.len(), m.size);
            return Err(self.link.unavailable(&format!("component {}", m.digest), sizes));
        }
        Ok(bytes)
    }

    /// Stores a component's chunks (idempotent: keyed by digest); returns its manifest and the
    /// chunks' keys.
    fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(Vec<u8>, Vec<String>)> {
        let chunks: Vec<(String, Vec<u8>)> =
            bytes.chunks(CHUNK).enumerate().map(|(n, c)| (self.link.keys.blob(digest, n), c.to_vec())).collect();
        let manifest = Manifest { digest: digest.to_string(), size: bytes.len(), chunks: chunks.len() };
        let names = chunks.iter().map(|(key, _)| key.clone()).collect();
        let client = self.link.client.clone();
        block_on(&self.handle, async move {
            for (key, value) in chunks {
                retrying(WRITE_BUDGET, || {
                    let (mut kv, key, value) = (client.kv_client(), key.clone(), value.clone());
                    async move { kv.put(key, value, None).await }
                })
                .await?;
            }
            Ok::<_, String>(())
        })?
        .map_err(|e| self.link.unavailable("cannot store a component", e))?;
        Ok((serde_json::to_vec(&manifest).expect("manifests serialize"), names))
    }

    /// A lease for write markers, granted anew when half its life is gone.
    fn marker_lease(&self) -> Result<i64> {
        let mut lease = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((id, at)) = *lease
            && at.elapsed() < Duration::from_secs(MARKER_TTL as u64 / 2)
        {
            return Ok(id);
        }
        let client = self.link.client.clone();
        let granted = block_on(&self.handle, async move {
            retrying(WRITE_BUDGET, || {
                let mut leases = client.lease_client();
                async move { leases.grant(MARKER_TTL, None).await }
            })
            .await
        })?
        .map_err(|e| self.link.unavailable("cannot grant a lease", e))?;
        *lease = Some((granted.id(), Instant::now()));
        Ok(granted.id())
    }

    /// Applies a prepared step as one etcd transaction (see the module documentation).
    pub(crate) fn apply(&self, set: WriteSet) -> Result<Applied> {
        let snap = set.snap.clone().unwrap_or_else(|| self.snapshot());
        let latest = self.snapshot();
        let k = &self.link.keys;
        // Compares, one per key or range (a step may read one key many times).
        let mut compares: BTreeMap<(Vec<u8>, Vec<u8>), Compare> = BTreeMap::new();
        for read in &set.reads {
            match read {
                Read::Point { tbl, key, .. } => {
                    if *tbl == Tbl::Counters && entity_count_tenant(key).is_some() {
                        // Derived from the entities on etcd (no key): caps check it.
                        continue;
                    }
                    let ek = k.key(*tbl, key);
                    let rev = snap.rev_of(*tbl, key);
                    compares
                        .entry((ek.clone(), Vec::new()))
                        .or_insert_with(|| Compare::mod_revision(ek, CompareOp::Equal, rev));
                }
                Read::Value { tbl, key, value } => {
                    let ek = k.key(*tbl, key);
                    let c = match value {
                        Some(v) => Compare::value(ek.clone(), CompareOp::Equal, encode(Some(v))),
                        None => Compare::version(ek.clone(), CompareOp::Equal, 0),
                    };
                    compares.insert((ek, b"=".to_vec()), c);
                }
                Read::Range { tbl, range, stop, .. } => {
                    let seen = visited(range, stop.as_deref());
                    let (start, stop_key) = (k.key(*tbl, &seen.start), k.end(*tbl, seen.end.as_deref()));
                    // Nothing in the range written since the snapshot (a deletion is the write
                    // of a tombstone).
                    compares.entry((start.clone(), stop_key.clone())).or_insert_with(|| {
                        Compare::mod_revision(start.clone(), CompareOp::Less, snap.rev + 1).with_range(stop_key)
                    });
                }
            }
        }
        // Too many to send: one compare per table instead, over the span of its reads (nothing
        // in it written since the snapshot). Stricter (a write next to what was read conflicts
        // too), never looser.
        let room = self.max_txn_ops.saturating_sub(1 + set.touched.len());
        if compares.len() > room {
            compares = coarse(k, &set.reads, snap.rev);
        }
        // Entity caps, against the newest copy (see ARCHITECTURE.md: soft across nodes).
        for (key, (tenant, max)) in &set.caps {
            let delta = set.deltas.get(key).copied().unwrap_or(0);
            if delta > 0 && latest.entity_count(tenant).saturating_add_signed(delta) > *max {
                return Ok(Applied::Limit { tenant: tenant.clone(), max: *max });
            }
        }
        let mut ops = Vec::new();
        for (tbl, range) in &set.range_deletes {
            let (start, end) = (k.key(*tbl, &range.start), k.end(*tbl, range.end.as_deref()));
            ops.push(TxnOp::delete(start, Some(DeleteOptions::new().with_range(end))));
        }
        for ((tbl, key), value) in &set.writes {
            let ek = k.key(*tbl, key);
            match value {
                Some(v) if *tbl == Tbl::HandlerBlobs => {
                    let digest = key.split('\0').nth(1).unwrap_or_default();
                    let (manifest, chunks) = self.put_blob(digest, v)?;
                    // The chunks are still there when the manifest lands (`collect` removes
                    // chunks no manifest names; a step whose chunks went is prepared again).
                    for chunk in chunks {
                        compares.insert(
                            (chunk.clone().into_bytes(), b"c".to_vec()),
                            Compare::version(chunk, CompareOp::Greater, 0),
                        );
                    }
                    ops.push(TxnOp::put(ek, encode(Some(&manifest)), None));
                }
                Some(v) => ops.push(TxnOp::put(ek, encode(Some(v)), None)),
                // Not there in the snapshot (live or not): nothing to delete.
                None if snap.rev_of(*tbl, key) == 0 && latest.rev_of(*tbl, key) == 0 => {}
                None => ops.push(TxnOp::put(ek, encode(None), None)),
            }
        }
        let mut generations = Vec::new();
        for tenant in &set.touched {
            let gk = key2(tenant, CATALOG_GENERATION);
            let g = crate::reads::counter(&*latest, &gk)? + 1;
            let ek = k.key(Tbl::Counters, &gk);
            compares.insert(
                (ek.clone(), b"g".to_vec()),
                Compare::mod_revision(ek.clone(), CompareOp::Equal, latest.rev_of(Tbl::Counters, &gk)),
            );
            ops.push(TxnOp::put(ek, encode(Some(&g.to_le_bytes())), None));
            generations.push((tenant.clone(), g));
        }
        if ops.is_empty() {
            return Ok(Applied::Done { generations });
        }
        let needed = compares.len().max(ops.len()) + 1;
        if needed > self.max_txn_ops {
            return Ok(Applied::TooLarge { needed, max: self.max_txn_ops });
        }
        let marker = k.marker(&uuid::Uuid::new_v4().to_string());
        let lease = self.marker_lease()?;
        let mut compares: Vec<Compare> = compares.into_values().collect();
        compares.push(Compare::version(marker.clone(), CompareOp::Equal, 0));
        ops.push(TxnOp::put(marker.clone(), Vec::new(), Some(PutOptions::new().with_lease(lease))));
        let txn = Txn::new().when(compares).and_then(ops).or_else(vec![TxnOp::get(marker, None)]);
        let client = self.link.client.clone();
        let resp = block_on(&self.handle, async move {
            retrying(WRITE_BUDGET, || {
                let (mut kv, txn) = (client.kv_client(), txn.clone());
                async move { kv.txn(txn).await }
            })
            .await
        })?
        .map_err(|e| {
            if e.contains("too many operations") {
                self.link.unavailable(
                    &format!("refused a transaction of {needed} operations"),
                    format!(
                        "its --max-txn-ops is lower than ocni's --max-txn-ops ({}); lower ocni's",
                        self.max_txn_ops
                    ),
                )
            } else {
                self.link.unavailable(
                    &format!("the write was not confirmed within {} s", WRITE_BUDGET.as_secs()),
                    format!("{e}; it may or may not have been applied"),
                )
            }
        })?;
        let rev = resp.header().map_or(0, |h| h.revision());
        let committed = resp.succeeded()
            || resp.op_responses().iter().any(|r| matches!(r, TxnOpResponse::Get(g) if !g.kvs().is_empty()));
        // This node's later reads see what was just written (or what it conflicted with).
        let caught_up = block_on(&self.handle, {
            let link = self.link.clone();
            async move { link.catch_up(rev).await }
        })?;
        if let Err(e) = caught_up {
            // Not the write's failure: it is in etcd; this node's next request waits again.
            tracing::warn!(error = %e, "a write's revision did not reach this node's copy in time");
        }
        if committed {
            return Ok(Applied::Done { generations });
        }
        Ok(self.conflict(&set, &snap))
    }

    /// Which read of a step that did not apply has changed (for the message and the caller).
    fn conflict(&self, set: &WriteSet, snap: &Snapshot) -> Applied {
        let latest = self.snapshot();
        let named = |tbl: Tbl, key: &str| Applied::Conflict { table: tbl.name(), key: key.replace('\0', " ") };
        for tenant in &set.touched {
            let gk = key2(tenant, CATALOG_GENERATION);
            if latest.rev_of(Tbl::Counters, &gk) != snap.rev_of(Tbl::Counters, &gk) {
                return named(Tbl::Counters, &gk);
            }
        }
        for read in &set.reads {
            match read {
                Read::Point { tbl, key, .. } => {
                    if latest.rev_of(*tbl, key) != snap.rev_of(*tbl, key) {
                        return named(*tbl, key);
                    }
                }
                Read::Value { tbl, key, value } => {
                    if latest.entry(*tbl, key).map(|e| e.value.to_vec()) != *value {
                        return named(*tbl, key);
                    }
                }
                Read::Range { tbl, range, .. } => {
                    let now: BTreeSet<(&String, i64)> = latest.range(*tbl, range).map(|(k, e)| (k, e.rev)).collect();
                    let then: BTreeSet<(&String, i64)> = snap.range(*tbl, range).map(|(k, e)| (k, e.rev)).collect();
                    if now != then {
                        return named(*tbl, &range.start);
                    }
                }
            }
        }
        // Changed and changed back, or not yet in this node's copy.
        Applied::Conflict { table: "etcd", key: "a key this write read".into() }
    }
}

/// One compare per table read: nothing written since `rev` from its first key read to its last.
fn coarse(k: &Keys, reads: &[Read], rev: i64) -> BTreeMap<(Vec<u8>, Vec<u8>), Compare> {
    // Table -> (lowest start, highest end; `None`: the end of the table).
    let mut spans: BTreeMap<Tbl, (String, Option<String>)> = BTreeMap::new();
    for read in reads {
        let (tbl, start, end) = match read {
            Read::Point { tbl, key, .. } | Read::Value { tbl, key, .. } => {
                (*tbl, key.clone(), Some(format!("{key}\0")))
            }
            Read::Range { tbl, range, stop, .. } => {
                let seen = visited(range, stop.as_deref());
                (*tbl, seen.start, seen.end)
            }
        };
        let span = spans.entry(tbl).or_insert_with(|| (start.clone(), end.clone()));
        if start < span.0 {
            span.0 = start;
        }
        span.1 = match (span.1.take(), end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    spans
        .into_iter()
        .map(|(tbl, (start, end))| {
            let (from, to) = (k.key(tbl, &start), k.end(tbl, end.as_deref()));
            ((from.clone(), to.clone()), Compare::mod_revision(from, CompareOp::Less, rev + 1).with_range(to))
        })
        .collect()
}

/// How often a node removes old tombstones.
const COLLECT_EVERY: Duration = Duration::from_secs(20);

/// Removes tombstones at least one [`COLLECT_EVERY`] old, each only if it is still the
/// tombstone this node saw (every node does this; the transactions of all but one fail). A
/// step that read a tombstone it then finds gone conflicts and is prepared again, which is
/// why they are kept a while.
async fn collect(link: Link, max_txn_ops: usize) {
    let batch = (max_txn_ops / 2).max(1);
    let mut old_rev = 0;
    loop {
        tokio::time::sleep(COLLECT_EVERY + Duration::from_millis(u64::from(rand_jitter()))).await;
        // Chunks only with a copy known to hold every manifest written so far.
        let synced = match link.revision().await {
            Ok(rev) => link.catch_up(rev).await.is_ok(),
            Err(_) => false,
        };
        let snap = link.shared.current();
        if synced {
            collect_chunks(&link, &snap, old_rev).await;
        }
        for chunk in snap.tombstones(old_rev, usize::MAX).chunks(batch) {
            let txn = delete_unchanged(chunk.iter().map(|(rev, tbl, key)| (link.keys.key(*tbl, key), *rev)));
            if let Err(e) = tokio::time::timeout(REQUEST_TIMEOUT, link.client.kv_client().txn(txn)).await {
                tracing::debug!(error = %e, "removing tombstones timed out");
            }
        }
        old_rev = snap.rev;
    }
}

/// Removes the chunks of components that no `handler_blobs` manifest of `snap` names and that
/// were last written at or before `old_rev` (a collection period ago: an upload writes its
/// manifest within seconds of its chunks, and its transaction compares that they are there).
/// `snap` must be current, or a manifest just written elsewhere would be missed (see
/// [`collect`]). Each digest goes in a transaction that compares every
/// chunk's revision, so a chunk written again meanwhile (the same bytes uploaded again) stays.
async fn collect_chunks(link: &Link, snap: &Snapshot, old_rev: i64) {
    if old_rev == 0 {
        return;
    }
    let keys = &link.keys;
    let mut kv = link.client.kv_client();
    let start = keys.blobs();
    let end = Keys::end_of(&start);
    let listed = match kv.get(start, Some(GetOptions::new().with_range(end).with_keys_only())).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list component chunks");
            return;
        }
    };
    let all = crate::reads::KeyRange { start: String::new(), end: None };
    let named: BTreeSet<&str> = snap
        .range(Tbl::HandlerBlobs, &all)
        .filter(|(_, e)| e.live)
        .filter_map(|(key, _)| key.split('\0').nth(1))
        .collect();
    let mut unnamed: BTreeMap<&str, Vec<(Vec<u8>, i64)>> = BTreeMap::new();
    for item in listed.kvs() {
        if let Some(digest) = keys.blob_digest(item.key())
            && !named.contains(digest)
        {
            unnamed.entry(digest).or_default().push((item.key().to_vec(), item.mod_revision()));
        }
    }
    for (digest, chunks) in unnamed {
        if chunks.iter().any(|(_, rev)| *rev > old_rev) {
            continue;
        }
        let txn = delete_unchanged(chunks.iter().cloned());
        match tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(txn)).await {
            Ok(Ok(r)) if r.succeeded() => tracing::debug!(digest, chunks = chunks.len(), "component chunks removed"),
            _ => {}
        }
    }
}

/// Up to a second, so that nodes started together do not collect together.
fn rand_jitter() -> u16 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    u16::from_le_bytes(b) % 1000
}

enum Init {
    Etcd(String),
    Schema(String),
    Corrupt(String),
}

/// Records the schema version and the cursor key of a new store, or reads them.
async fn init_meta(client: Client, keys: Keys) -> std::result::Result<[u8; 32], Init> {
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| Init::Corrupt(format!("no randomness for the cursor key: {e}")))?;
    let (version, cursor) = (keys.meta("schema_version"), keys.meta("cursor_key"));
    let txn = Txn::new()
        .when(vec![Compare::version(version.clone(), CompareOp::Equal, 0)])
        .and_then(vec![
            TxnOp::put(version.clone(), SCHEMA_VERSION, None),
            TxnOp::put(cursor.clone(), hex::encode(fresh), None),
        ])
        .or_else(vec![TxnOp::get(version, None), TxnOp::get(cursor, None)]);
    let resp = retrying(OPEN_BUDGET, || {
        let (mut kv, txn) = (client.kv_client(), txn.clone());
        async move { kv.txn(txn).await }
    })
    .await
    .map_err(Init::Etcd)?;
    if resp.succeeded() {
        return Ok(fresh);
    }
    let values: Vec<Option<Vec<u8>>> = resp
        .op_responses()
        .into_iter()
        .map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        })
        .collect();
    let found = values.first().cloned().flatten().map(|v| String::from_utf8_lossy(&v).into_owned());
    if found.as_deref() != Some(SCHEMA_VERSION) {
        return Err(Init::Schema(found.unwrap_or_default()));
    }
    values
        .get(1)
        .cloned()
        .flatten()
        .and_then(|v| crate::hex_key(&String::from_utf8_lossy(&v)))
        .ok_or_else(|| Init::Corrupt("the store's cursor key is missing or corrupt".into()))
}

/// Every table key at one revision.
async fn list(client: Client, keys: Keys) -> std::result::Result<Snapshot, etcd_client::Error> {
    let mut kv = client.kv_client();
    let prefix = keys.tables();
    let end = Keys::end_of(&prefix);
    let mut snap = Snapshot::default();
    let mut from = prefix.into_bytes();
    let mut rev = 0;
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(LIST_PAGE);
        if rev > 0 {
            options = options.with_revision(rev);
        }
        let resp = kv.get(from.clone(), Some(options)).await?;
        if rev == 0 {
            rev = resp.header().map_or(0, |h| h.revision());
        }
        for item in resp.kvs() {
            if let Some((tbl, key)) = keys.parse(item.key()) {
                snap.set(tbl, &key, Some(Entry::decode(item.value(), item.mod_revision())));
            }
        }
        match resp.kvs().last() {
            Some(last) if resp.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => break,
        }
    }
    snap.rev = rev;
    Ok(snap)
}

/// Keeps `shared` current: watches the tables from the snapshot's revision on, relisting
/// when the watch's history was compacted away, reconnecting (with a pause) when it broke.
async fn follow(link: Link, mut snap: Snapshot) {
    let Link { client, keys, shared, target } = &link;
    let mut pause = Duration::from_millis(50);
    loop {
        let options = WatchOptions::new().with_range(Keys::end_of(&keys.tables())).with_start_revision(snap.rev + 1);
        let mut stream = match client.watch_client().watch(keys.tables(), Some(options)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(etcd = %target, error = %e, "cannot watch the store; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_PAUSE_MAX);
                continue;
            }
        };
        let mut relist = false;
        loop {
            let resp = match stream.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(etcd = %target, error = %e, "the store's watch broke; watching again");
                    break;
                }
            };
            pause = Duration::from_millis(50);
            if resp.compact_revision() > 0 {
                tracing::warn!(etcd = %target, compacted = resp.compact_revision(), "the watch fell behind a compaction; listing the store again");
                relist = true;
                break;
            }
            if resp.canceled() {
                tracing::warn!(etcd = %target, reason = resp.cancel_reason(), "the watch was cancelled; watching again");
                break;
            }
            if resp.events().is_empty() {
                // The watch's creation (no progress reports are asked for: see the module
                // documentation).
                continue;
            }
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                // Markers and `~sync` are in no table, but their revisions count.
                snap.rev = snap.rev.max(kv.mod_revision());
                let Some((tbl, key)) = keys.parse(kv.key()) else { continue };
                let entry = match event.event_type() {
                    EventType::Put => Some(Entry::decode(kv.value(), kv.mod_revision())),
                    EventType::Delete => None,
                };
                snap.set(tbl, &key, entry);
            }
            shared.publish(&snap);
        }
        if relist {
            match retrying(Duration::from_secs(5), || list(client.clone(), keys.clone())).await {
                Ok(mut fresh) => {
                    // Tenants and tokens may have changed meanwhile: their caches reload.
                    fresh.admin_changes = snap.admin_changes + 1;
                    snap = fresh;
                    shared.publish(&snap);
                }
                Err(e) => tracing::warn!(etcd = %target, error = %e, "cannot list the store; trying again"),
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_PAUSE_MAX);
    }
}
