//! The embedded backend: one redb file, no server process (one machine).
//!
//! Layout (three tables):
//! * `records`: key → 8-byte big-endian expiry (absolute Unix seconds, `0` =
//!   never) followed by the value bytes;
//! * `sets`: set name → expiry (same encoding), one row per non-empty set;
//! * `set_members`: set name → members (a multimap).
//!
//! Record keys and set names share one namespace, as in Redis: use a name for
//! one or the other, never both.
//!
//! Time is read through the [`gateway_common::clock::Clock`] seam, so tests move it by hand. A record
//! whose expiry is at or before "now" is dead: never returned, removed when it
//! is touched and by a background sweep ([`EmbeddedStore::purge_expired`] runs
//! on open and every [`PURGE_INTERVAL`]).
//!
//! redb is synchronous. Point reads ([`Store::get`]) run in the caller's task,
//! other reads on tokio's blocking pool; readers never block writers (MVCC),
//! so prefix listing does not stall the store.
//!
//! Writes go to one writer thread, which commits them in groups (group
//! commit): it takes every write queued so far, applies them one after
//! another inside one write transaction — take, compare-and-swap and
//! put-if-absent each read and write inside it, in order, so each stays
//! atomic and sees the writes queued before it — commits once, and only then
//! answers each caller. What is durable when: a write is acknowledged only
//! after the commit that holds it has reached the disk (redb's default
//! `Durability::Immediate`, an fsync), so every acknowledged write survives a
//! crash or power loss, exactly as with one commit per write; a write not yet
//! acknowledged when the process dies may or may not be there, and a batch is
//! all there or not at all. Concurrent writes share one disk sync instead of
//! paying one each; a lone write costs what it did.
//!
//! Publish/subscribe is in-process (tokio broadcast): a redb file is opened by
//! one process only.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::stream::{BoxStream, StreamExt};
use gateway_common::clock::{self, SharedClock};
use redb::{
    Database, MultimapTableDefinition, ReadableMultimapTable, ReadableTable, TableDefinition,
    WriteTransaction,
};
use tokio::sync::{broadcast, oneshot};

use crate::{Store, StoreError, StoreResult, Ttl};

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
const SETS: TableDefinition<&str, u64> = TableDefinition::new("sets");
const SET_MEMBERS: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("set_members");

/// How often the background sweep removes dead records.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Events buffered per channel for a slow subscriber; past this it lags and its
/// stream ends (it resubscribes and catches up, as after a lost connection).
const CHANNEL_CAPACITY: usize = 1024;

/// How long `open` waits for a previous handle on the same file (for example one
/// still finishing a blocking call after being dropped) to let go of it.
const OPEN_WAIT: Duration = Duration::from_secs(5);

/// Expiry stamp meaning "never expires".
const NEVER: u64 = 0;

/// The on-disk store. Cheap to share behind an `Arc`; dropping the last handle
/// closes the file (after any in-flight blocking call finishes).
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    /// To the writer thread (see the module doc: group commit). The only
    /// strong handle: when the store is dropped the queue closes and the
    /// writer ends, releasing the file (the purger holds a `Weak`, so an
    /// aborted purger that its runtime has not polled yet cannot keep the
    /// file open).
    writer: Arc<mpsc::Sender<Box<dyn BatchOp>>>,
    channels: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
    purger: Option<tokio::task::JoinHandle<()>>,
}

struct Inner {
    db: Database,
    clock: SharedClock,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Some(purger) = self.purger.take() {
            purger.abort();
        }
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`, reading time from the system clock.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with_clock(path, clock::system()).await
    }

    /// Opens (or creates) the store at `path` with an explicit clock (tests pass
    /// a `ManualClock` to expire records without sleeping).
    ///
    /// Dead records are purged before this returns; a background sweep then runs
    /// every [`PURGE_INTERVAL`] while a tokio runtime is available.
    pub async fn open_with_clock(path: impl AsRef<Path>, clock: SharedClock) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let inner = tokio::task::spawn_blocking(move || Inner::open(path, clock))
            .await
            .map_err(join_error)??;
        let inner = Arc::new(inner);
        let (writer, queue) = mpsc::channel();
        let writer = Arc::new(writer);
        let for_writer = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(&for_writer, &queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer: {e}")))?;
        let mut store = Self {
            inner,
            writer,
            channels: Mutex::new(HashMap::new()),
            purger: None,
        };
        store.purger = tokio::runtime::Handle::try_current()
            .ok()
            .map(|rt| rt.spawn(purge_loop(Arc::downgrade(&store.writer))));
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Removes every dead record and set now; returns how many were removed.
    pub async fn purge_expired(&self) -> StoreResult<usize> {
        write(&self.writer, |inner, tx| inner.purge_expired(tx)).await
    }

    async fn blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(join_error)?
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Vec<u8>>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn purge_loop(writer: std::sync::Weak<mpsc::Sender<Box<dyn BatchOp>>>) {
    let mut every = tokio::time::interval(PURGE_INTERVAL);
    every.tick().await; // the first tick is immediate; `open` has just purged
    loop {
        every.tick().await;
        let Some(writer) = writer.upgrade().map(|w| mpsc::Sender::clone(&w)) else {
            return; // the store is gone
        };
        match write(&writer, |inner, tx| inner.purge_expired(tx)).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "purged expired records"),
            Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
        }
    }
}

/// A write's result and whether it changed anything (nothing changed in a
/// whole batch: no commit, no disk sync).
type Applied<T> = StoreResult<(T, bool)>;

/// What a dead record found by a read leaves to do.
enum Found {
    Live(Vec<u8>),
    /// Dead at this clock second: the writer removes it.
    Dead(u64),
    Absent,
}

/// The most writes one commit takes; more wait for the next one.
const MAX_BATCH: usize = 256;

/// One queued write: applied inside the batch's transaction, answered once
/// that transaction is committed (or has failed).
trait BatchOp: Send {
    /// Applies the write; whether it changed anything. An error aborts the
    /// batch's transaction: this write is answered with the error, the others
    /// are applied again in a new transaction.
    fn apply(&mut self, inner: &Inner, tx: &WriteTransaction) -> StoreResult<bool>;
    /// The commit's outcome reaches the caller with the write's result.
    fn answer(self: Box<Self>, committed: StoreResult<()>);
    fn fail(self: Box<Self>, e: StoreError);
}

struct Op<T, F> {
    f: F,
    out: Option<T>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> BatchOp for Op<T, F>
where
    T: Send,
    F: FnMut(&Inner, &WriteTransaction) -> Applied<T> + Send,
{
    fn apply(&mut self, inner: &Inner, tx: &WriteTransaction) -> StoreResult<bool> {
        let (value, changed) = (self.f)(inner, tx)?;
        self.out = Some(value);
        Ok(changed)
    }

    fn answer(self: Box<Self>, committed: StoreResult<()>) {
        let Op { out, reply, .. } = *self;
        let result = committed.and_then(|()| {
            out.ok_or_else(|| StoreError::Backend("write answered before it ran".into()))
        });
        // The caller may have gone (request cancelled); the write stands.
        let _ = reply.send(result);
    }

    fn fail(self: Box<Self>, e: StoreError) {
        let _ = self.reply.send(Err(e));
    }
}

/// Queues a write for the writer thread and waits for its commit.
async fn write<T, F>(writer: &mpsc::Sender<Box<dyn BatchOp>>, f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnMut(&Inner, &WriteTransaction) -> Applied<T> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    writer
        .send(Box::new(Op {
            f,
            out: None,
            reply,
        }))
        .map_err(|_| writer_gone())?;
    answer.await.map_err(|_| writer_gone())?
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the embedded store's writer has stopped".into())
}

/// The writer thread: takes every write queued so far (up to [`MAX_BATCH`]),
/// applies them in order in one transaction, commits once, then answers them
/// all. Ends when the store is dropped (the queue closes).
fn run_writer(inner: &Inner, queue: &mpsc::Receiver<Box<dyn BatchOp>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        inner.commit_batch(batch);
    }
}

impl Inner {
    fn open(path: PathBuf, clock: SharedClock) -> StoreResult<Self> {
        let deadline = Instant::now() + OPEN_WAIT;
        let db = loop {
            match Database::create(&path) {
                Ok(db) => break db,
                // Polls until an earlier handle on this file has been released.
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot open {}: {e}",
                        path.display()
                    )))
                }
            }
        };
        // Create the tables so read transactions can always open them.
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(RECORDS).map_err(backend)?;
        tx.open_table(SETS).map_err(backend)?;
        tx.open_multimap_table(SET_MEMBERS).map_err(backend)?;
        tx.commit().map_err(backend)?;
        let inner = Self { db, clock, path };
        let tx = inner.db.begin_write().map_err(backend)?;
        let (_, changed) = inner.purge_expired(&tx)?;
        finish(tx, changed)?;
        Ok(inner)
    }

    /// One transaction for the whole batch, one commit (one disk sync with
    /// redb's default `Durability::Immediate`); then every write is answered.
    fn commit_batch(&self, mut batch: Vec<Box<dyn BatchOp>>) {
        while !batch.is_empty() {
            let tx = match self.db.begin_write() {
                Ok(tx) => tx,
                Err(e) => {
                    let e = e.to_string();
                    for op in batch {
                        op.fail(StoreError::Backend(e.clone()));
                    }
                    return;
                }
            };
            let mut changed = false;
            let mut failed = None;
            for (i, op) in batch.iter_mut().enumerate() {
                match op.apply(self, &tx) {
                    Ok(c) => changed |= c,
                    Err(e) => {
                        failed = Some((i, e));
                        break;
                    }
                }
            }
            match failed {
                None => {
                    let committed = finish(tx, changed).map_err(|e| e.to_string());
                    for op in batch {
                        op.answer(committed.clone().map_err(StoreError::Backend));
                    }
                    return;
                }
                Some((i, e)) => {
                    // Nothing of this transaction stands; the others run again.
                    let _ = tx.abort();
                    batch.remove(i).fail(e);
                }
            }
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_secs()
    }

    fn purge_expired(&self, tx: &WriteTransaction) -> Applied<usize> {
        let now = self.now();
        let mut records = tx.open_table(RECORDS).map_err(backend)?;
        let dead_records = records
            .extract_if(|_, v| is_dead(expiry_of(v), now))
            .map_err(backend)?
            .count();
        let mut sets = tx.open_table(SETS).map_err(backend)?;
        let mut dead_sets = Vec::new();
        for entry in sets
            .extract_if(|_, exp| is_dead(exp, now))
            .map_err(backend)?
        {
            let (name, _) = entry.map_err(backend)?;
            dead_sets.push(name.value().to_string());
        }
        let mut members = tx.open_multimap_table(SET_MEMBERS).map_err(backend)?;
        for name in &dead_sets {
            members.remove_all(name.as_str()).map_err(backend)?;
        }
        let removed = dead_records + dead_sets.len();
        Ok((removed, removed > 0))
    }

    fn put(&self, tx: &WriteTransaction, key: &str, value: &[u8], ttl: Ttl) -> Applied<()> {
        let now = self.now();
        let mut records = tx.open_table(RECORDS).map_err(backend)?;
        match expiry_for(now, ttl) {
            Some(exp) => {
                records
                    .insert(key, encode(exp, value).as_slice())
                    .map_err(backend)?;
            }
            // A zero TTL: the record would be dead on arrival.
            None => {
                records.remove(key).map_err(backend)?;
            }
        }
        Ok(((), true))
    }

    fn put_if_absent(
        &self,
        tx: &WriteTransaction,
        key: &str,
        value: &[u8],
        ttl: Ttl,
    ) -> Applied<bool> {
        let now = self.now();
        let Some(exp) = expiry_for(now, ttl) else {
            return Ok((false, false));
        };
        let mut records = tx.open_table(RECORDS).map_err(backend)?;
        let live = match records.get(key).map_err(backend)? {
            Some(old) => !is_dead(expiry_of(old.value()), now),
            None => false,
        };
        if !live {
            records
                .insert(key, encode(exp, value).as_slice())
                .map_err(backend)?;
        }
        Ok((!live, !live))
    }

    /// The live value, or whether a dead record is in the way (to be removed
    /// by the writer: reads never write).
    fn get(&self, key: &str) -> StoreResult<Found> {
        let now = self.now();
        let tx = self.db.begin_read().map_err(backend)?;
        let records = tx.open_table(RECORDS).map_err(backend)?;
        let found = records
            .get(key)
            .map_err(backend)?
            .map(|v| decode(v.value()).map(|(exp, data)| (exp, data.to_vec())))
            .transpose()?;
        Ok(match found {
            Some((exp, data)) if !is_dead(exp, now) => Found::Live(data),
            Some(_) => Found::Dead(now),
            None => Found::Absent,
        })
    }

    /// Purge on access, re-checked inside the write transaction in case a
    /// writer has replaced the record meanwhile.
    fn remove_if_dead(&self, tx: &WriteTransaction, key: &str, now: u64) -> Applied<()> {
        let mut records = tx.open_table(RECORDS).map_err(backend)?;
        let dead = match records.get(key).map_err(backend)? {
            Some(v) => is_dead(expiry_of(v.value()), now),
            None => false,
        };
        if dead {
            records.remove(key).map_err(backend)?;
        }
        Ok(((), dead))
    }

    /// Removes the record; returns its value if it was live.
    fn take(&self, tx: &WriteTransaction, key: &str) -> Applied<Option<Vec<u8>>> {
        let now = self.now();
        let mut records = tx.open_table(RECORDS).map_err(backend)?;
        let removed = records.remove(key).map_err(backend)?;
        match removed {
            None => Ok((None, false)),
            Some(old) => {
                let (exp, data) = decode(old.value())?;
                Ok(((!is_dead(exp, now)).then(|| data.to_vec()), true))
            }
        }
    }

    fn compare_and_swap(
        &self,
        tx: &WriteTransaction,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Ttl,
    ) -> Applied<bool> {
        let now = self.now();
        let mut records = tx.open_table(RECORDS).map_err(backend)?;
        let current = records
            .get(key)
            .map_err(backend)?
            .map(|v| decode(v.value()).map(|(exp, data)| (exp, data == expected)))
            .transpose()?;
        match current {
            Some((exp, true)) if !is_dead(exp, now) => {
                match (new, expiry_for(now, ttl)) {
                    (Some(value), Some(exp)) => {
                        records
                            .insert(key, encode(exp, value).as_slice())
                            .map_err(backend)?;
                    }
                    // Delete requested, or a zero TTL (dead on arrival).
                    (None, _) | (Some(_), None) => {
                        records.remove(key).map_err(backend)?;
                    }
                }
                Ok((true, true))
            }
            Some((exp, _)) if is_dead(exp, now) => {
                records.remove(key).map_err(backend)?;
                Ok((false, true))
            }
            Some(_) | None => Ok((false, false)),
        }
    }

    fn ttl(&self, key: &str) -> StoreResult<Option<Ttl>> {
        let now = self.now();
        let tx = self.db.begin_read().map_err(backend)?;
        let records = tx.open_table(RECORDS).map_err(backend)?;
        let exp = match records.get(key).map_err(backend)? {
            Some(v) => expiry_of(v.value()),
            None => {
                // A set has a TTL too (as in Redis).
                let sets = tx.open_table(SETS).map_err(backend)?;
                match sets.get(key).map_err(backend)? {
                    Some(exp) => exp.value(),
                    None => return Ok(None),
                }
            }
        };
        Ok(remaining(exp, now))
    }

    fn set_add(&self, tx: &WriteTransaction, set: &str, member: &str, ttl: Ttl) -> Applied<()> {
        let now = self.now();
        let mut sets = tx.open_table(SETS).map_err(backend)?;
        let mut members = tx.open_multimap_table(SET_MEMBERS).map_err(backend)?;
        let existing = sets.get(set).map_err(backend)?.map(|e| e.value());
        let current_exp = match existing {
            Some(exp) if !is_dead(exp, now) => exp,
            Some(_) => {
                // A dead set starts over empty.
                members.remove_all(set).map_err(backend)?;
                NEVER
            }
            None => NEVER,
        };
        let new_exp = match ttl {
            None => Some(current_exp),
            Some(_) => expiry_for(now, ttl),
        };
        match new_exp {
            Some(exp) => {
                members.insert(set, member).map_err(backend)?;
                sets.insert(set, exp).map_err(backend)?;
            }
            // Zero TTL: like SADD then PEXPIRE 0, the set is gone.
            None => {
                members.remove_all(set).map_err(backend)?;
                sets.remove(set).map_err(backend)?;
            }
        }
        Ok(((), true))
    }

    fn set_remove(&self, tx: &WriteTransaction, set: &str, member: &str) -> Applied<bool> {
        let now = self.now();
        let mut sets = tx.open_table(SETS).map_err(backend)?;
        let mut members = tx.open_multimap_table(SET_MEMBERS).map_err(backend)?;
        let existing = sets.get(set).map_err(backend)?.map(|e| e.value());
        match existing {
            None => Ok((false, false)),
            Some(exp) if is_dead(exp, now) => {
                members.remove_all(set).map_err(backend)?;
                sets.remove(set).map_err(backend)?;
                Ok((false, true))
            }
            Some(_) => {
                let removed = members.remove(set, member).map_err(backend)?;
                // Like Redis, an empty set does not exist.
                if members.get(set).map_err(backend)?.is_empty() {
                    sets.remove(set).map_err(backend)?;
                }
                Ok((removed, removed))
            }
        }
    }

    fn set_members(&self, set: &str) -> StoreResult<Vec<String>> {
        let now = self.now();
        let tx = self.db.begin_read().map_err(backend)?;
        let sets = tx.open_table(SETS).map_err(backend)?;
        match sets.get(set).map_err(backend)? {
            Some(exp) if !is_dead(exp.value(), now) => {}
            Some(_) | None => return Ok(Vec::new()),
        }
        let members = tx.open_multimap_table(SET_MEMBERS).map_err(backend)?;
        let mut out = Vec::new();
        for m in members.get(set).map_err(backend)? {
            out.push(m.map_err(backend)?.value().to_string());
        }
        Ok(out)
    }

    fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let now = self.now();
        let tx = self.db.begin_read().map_err(backend)?;
        let mut keys = BTreeSet::new();
        let records = tx.open_table(RECORDS).map_err(backend)?;
        for entry in records.range::<&str>(prefix..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            if !is_dead(expiry_of(v.value()), now) {
                keys.insert(k.to_string());
            }
        }
        let sets = tx.open_table(SETS).map_err(backend)?;
        for entry in sets.range::<&str>(prefix..).map_err(backend)? {
            let (k, exp) = entry.map_err(backend)?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            if !is_dead(exp.value(), now) {
                keys.insert(k.to_string());
            }
        }
        Ok(keys.into_iter().collect())
    }

    fn ping(&self) -> StoreResult<()> {
        let tx = self.db.begin_read().map_err(backend)?;
        tx.open_table(RECORDS).map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Ttl) -> StoreResult<()> {
        let (key, value) = (key.to_string(), value.to_vec());
        write(&self.writer, move |s, tx| s.put(tx, &key, &value, ttl)).await
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Ttl) -> StoreResult<bool> {
        let (key, value) = (key.to_string(), value.to_vec());
        write(&self.writer, move |s, tx| {
            s.put_if_absent(tx, &key, &value, ttl)
        })
        .await
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        // A point read runs here, not on the blocking pool: a B-tree lookup in
        // redb's page cache costs less than handing it to another thread (two
        // of them per refresh grant) and it never waits for the writer (MVCC).
        match self.inner.get(key)? {
            Found::Live(data) => Ok(Some(data)),
            Found::Absent => Ok(None),
            Found::Dead(now) => {
                let key = key.to_string();
                write(&self.writer, move |s, tx| s.remove_if_dead(tx, &key, now)).await?;
                Ok(None)
            }
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        let key = key.to_string();
        write(&self.writer, move |s, tx| {
            s.take(tx, &key).map(|(v, changed)| (v.is_some(), changed))
        })
        .await
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = key.to_string();
        write(&self.writer, move |s, tx| s.take(tx, &key)).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Ttl,
    ) -> StoreResult<bool> {
        let (key, expected) = (key.to_string(), expected.to_vec());
        let new = new.map(<[u8]>::to_vec);
        write(&self.writer, move |s, tx| {
            s.compare_and_swap(tx, &key, &expected, new.as_deref(), ttl)
        })
        .await
    }

    async fn ttl(&self, key: &str) -> StoreResult<Option<Ttl>> {
        let key = key.to_string();
        self.blocking(move |s| s.ttl(&key)).await
    }

    async fn set_add(&self, set: &str, member: &str, ttl: Ttl) -> StoreResult<()> {
        let (set, member) = (set.to_string(), member.to_string());
        write(&self.writer, move |s, tx| s.set_add(tx, &set, &member, ttl)).await
    }

    async fn set_remove(&self, set: &str, member: &str) -> StoreResult<bool> {
        let (set, member) = (set.to_string(), member.to_string());
        write(&self.writer, move |s, tx| s.set_remove(tx, &set, &member)).await
    }

    async fn set_members(&self, set: &str) -> StoreResult<Vec<String>> {
        let set = set.to_string();
        self.blocking(move |s| s.set_members(&set)).await
    }

    async fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let prefix = prefix.to_string();
        self.blocking(move |s| s.keys_with_prefix(&prefix)).await
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> StoreResult<()> {
        let mut channels = self.channels();
        if let Some(sender) = channels.get(channel) {
            if sender.send(payload.to_vec()).is_err() {
                // Nobody listens any more; forget the channel.
                channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> StoreResult<BoxStream<'static, Vec<u8>>> {
        let receiver = self
            .channels()
            .entry(channel.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((event, receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Events were lost: end the stream so the caller catches up.
                    tracing::warn!(missed, "subscriber lagged; ending its stream");
                    None
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Ok(stream.boxed())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.blocking(Inner::ping).await
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

/// Commits when something changed; otherwise aborts (no disk sync for a no-op).
fn finish(tx: redb::WriteTransaction, changed: bool) -> StoreResult<()> {
    if changed {
        tx.commit().map_err(backend)
    } else {
        tx.abort().map_err(backend)
    }
}

/// The absolute expiry for a TTL starting `now`: `Some(NEVER)` for no TTL,
/// `None` for a zero TTL (dead on arrival). Sub-second TTLs round up to a
/// second, the clock's resolution.
fn expiry_for(now: u64, ttl: Ttl) -> Option<u64> {
    match ttl {
        None => Some(NEVER),
        Some(d) if d.is_zero() => None,
        Some(d) => {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            Some(now.saturating_add(secs))
        }
    }
}

/// Dead at or after its expiry second, like a JWT `exp` (RFC 7519 §4.1.4).
fn is_dead(exp: u64, now: u64) -> bool {
    exp != NEVER && now >= exp
}

fn remaining(exp: u64, now: u64) -> Option<Ttl> {
    if exp == NEVER {
        Some(None)
    } else if now >= exp {
        None
    } else {
        Some(Some(Duration::from_secs(exp - now)))
    }
}

fn encode(exp: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&exp.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(raw: &[u8]) -> StoreResult<(u64, &[u8])> {
    match raw.split_first_chunk::<8>() {
        Some((exp, data)) => Ok((u64::from_be_bytes(*exp), data)),
        None => Err(StoreError::Backend(
            "corrupt record: shorter than its expiry stamp".into(),
        )),
    }
}

/// The expiry of a raw record; a corrupt (too short) record counts as dead so
/// the sweep removes it.
fn expiry_of(raw: &[u8]) -> u64 {
    decode(raw).map(|(exp, _)| exp).unwrap_or(1)
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(e.into().to_string())
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Backend(format!("storage task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rounds_sub_seconds_up_and_zero_means_dead_on_arrival() {
        assert_eq!(expiry_for(100, None), Some(NEVER));
        assert_eq!(expiry_for(100, Some(Duration::ZERO)), None);
        assert_eq!(expiry_for(100, Some(Duration::from_millis(1))), Some(101));
        assert_eq!(expiry_for(100, Some(Duration::from_secs(10))), Some(110));
        assert_eq!(
            expiry_for(u64::MAX - 1, Some(Duration::from_secs(10))),
            Some(u64::MAX)
        );
    }

    #[test]
    fn a_record_dies_at_its_expiry_second() {
        assert!(!is_dead(NEVER, u64::MAX));
        assert!(!is_dead(110, 109));
        assert!(is_dead(110, 110));
        assert_eq!(remaining(110, 100), Some(Some(Duration::from_secs(10))));
        assert_eq!(remaining(110, 110), None);
        assert_eq!(remaining(NEVER, 110), Some(None));
    }

    #[test]
    fn records_round_trip_and_short_ones_are_corrupt() {
        let raw = encode(42, b"value");
        assert_eq!(decode(&raw).unwrap(), (42, &b"value"[..]));
        assert_eq!(decode(&encode(0, b"")).unwrap(), (0, &b""[..]));
        assert!(matches!(decode(b"short"), Err(StoreError::Backend(_))));
        assert!(is_dead(expiry_of(b"short"), 2));
    }
}
