//! The Raft log, vote, state machine and snapshots, persisted in one redb database.
//!
//! Each log append and each applied batch is one redb write transaction (fsync'd), so a
//! manager killed with -9 restarts with everything it acknowledged.
//!
//! Encrypted at rest, as swarmkit encrypts its Raft log and snapshots: every log entry,
//! the vote, the applied state and the snapshot are sealed with the node's data
//! encryption key (DEK, kept in the node's identity file and, under autolock, sealed
//! there by the swarm's unlock key). Only the owner record is in the clear. Values
//! written before encryption existed (plain JSON) are still read.
//!
//! The key is rotated (`rekey`) when autolock is turned on, as swarmkit rotates its raft
//! DEK then: a copy of the store, every value re-sealed with the new key, is written beside
//! it and renamed over it, so the file holds nothing sealed with the old key (which sat in
//! the clear on disk until then), not even in redb's free pages.

// openraft's StorageError is large by design; these functions return it as openraft requires.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use shoal_ca::seal::SealKey;
use tokio::sync::watch;

use super::{Entry, LogId, NodeId, TypeConfig};
use crate::state::{ClusterState, CommandResult};

/// Log entries by index, JSON encoded.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Small records: vote, committed, last purged, state machine, snapshot.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";
const KEY_SM: &str = "state_machine";
const KEY_SNAPSHOT: &str = "snapshot";
/// The Raft ID the store was created for: start-up trusts it over node.json (see `create`).
const KEY_OWNER: &str = "owner_raft_id";

const CACHE_BYTES: usize = 8 << 20;

type StoreResult<T> = Result<T, StorageError<NodeId>>;

/// Log appends, votes, the committed index and snapshots are fsync'd before they are
/// acknowledged. The applied state is written without its own fsync: it only ever lags the
/// durable log and committed index, from which openraft re-applies on start-up, and the next
/// durable write makes it durable too. (The committed index must be durable: a leader that
/// restarts keeps leading by its saved vote, and answers linearizable reads up to the
/// committed index it reads back; a stale one would hide acknowledged writes.)
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    Durable,
    Lazy,
}

fn io<E: std::error::Error + 'static>(
    make: fn(AnyError) -> StorageIOError<NodeId>,
) -> impl Fn(E) -> StorageError<NodeId> {
    move |e| StorageError::IO {
        source: make(AnyError::new(&e)),
    }
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    io(StorageIOError::read)(e)
}
fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    io(StorageIOError::write)(e)
}

/// Why an existing store cannot be used. Every variant but `Redb` (which covers a store
/// another process holds, among others) means the file itself is unusable.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the file is missing")]
    Missing,
    #[error("the file is empty (0 bytes)")]
    Empty,
    #[error("the file is all zeros (a store whose creation was cut short)")]
    Zeroed,
    #[error("the file is not a redb database (no redb header)")]
    NotRedb,
    #[error("the file's redb header is damaged ({0})")]
    BadHeader(&'static str),
    #[error("the file is cut short: {len} bytes where its header says {expected}")]
    Truncated { len: u64, expected: u64 },
    #[error("reading it: {0}")]
    Io(#[source] std::io::Error),
    #[error("redb cannot open it: {0}")]
    Redb(#[from] redb::Error),
    #[error("redb failed while opening it: {0}")]
    Panicked(String),
    #[error("it was encrypted with another key than this node's")]
    WrongKey,
}

impl OpenError {
    /// The file is there but unusable (or gone): retrying will not help.
    pub fn is_unusable(&self) -> bool {
        !matches!(
            self,
            OpenError::Io(_) | OpenError::Redb(redb::Error::DatabaseAlreadyOpen)
        )
    }
}

/// The database and the key its values are sealed with.
struct Db {
    db: Database,
    dek: SealKey,
}

/// The open store, shared by the log and the state machine. Every read and write holds
/// the read lock for its whole transaction (and the sealing or opening of its values), so
/// a rekey, which takes the write lock to swap the database and key, runs between them:
/// no write seals with a key that is gone, no read opens a value with the wrong one.
struct Store {
    path: PathBuf,
    db: RwLock<Db>,
    /// Set by `close`: the store is being given up (a manager stopping), no rekey may
    /// replace the file any more.
    closed: std::sync::atomic::AtomicBool,
}

impl Store {
    fn get(&self) -> RwLockReadGuard<'_, Db> {
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The first byte of a sealed value. Plain JSON values (stores written before encryption)
/// start with a printable character.
const SEALED: u8 = 1;

impl Db {
    fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut out = vec![SEALED];
        out.extend_from_slice(&self.dek.seal(plain));
        out
    }

    /// The JSON of a stored value.
    fn open<'a>(&self, stored: &'a [u8]) -> StoreResult<std::borrow::Cow<'a, [u8]>> {
        match stored.split_first() {
            Some((&SEALED, sealed)) => Ok(std::borrow::Cow::Owned(
                self.dek.open(sealed).map_err(read_err)?,
            )),
            _ => Ok(std::borrow::Cow::Borrowed(stored)),
        }
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, stored: &[u8]) -> StoreResult<T> {
        serde_json::from_slice(&self.open(stored)?).map_err(read_err)
    }

    fn encode<T: Serialize>(&self, value: &T) -> StoreResult<Vec<u8>> {
        Ok(self.seal(&serde_json::to_vec(value).map_err(write_err)?))
    }
}

/// Why a rekey failed; the store is then as it was, sealed with its old key.
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error("the store is closed")]
    Closed,
    #[error("writing the re-sealed copy {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("a value does not open with the store's key: {0}")]
    Unreadable(String),
}

impl std::ops::Deref for Db {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.db
    }
}

/// An opened store: the log, the state machine, and what start-up needs to know of it.
pub struct Opened {
    pub log: LogStore,
    pub sm: StateMachineStore,
    /// The Raft ID the store was created for (stores made before this was recorded: None).
    pub owner: Option<NodeId>,
    /// Nothing was ever written to it past its creation: no vote, log, state or snapshot.
    pub pristine: bool,
    /// The key it is sealed with (of those `open_with_keys` was given).
    pub dek: SealKey,
}

/// Where a store is built before it is renamed into place.
pub fn creating_path(path: &Path) -> PathBuf {
    path.with_extension("redb.creating")
}

/// Create a new, empty store for Raft member `owner` at `path`, replacing whatever is
/// there, atomically: it is built and committed (fsync'd) under a temporary name, then
/// renamed into place and the directory fsync'd. A crash leaves the old file (or none) at
/// `path`, never a half-made store (redb sizes a new file before it writes its header, so
/// a store created in place and cut short is a file of zeros).
pub fn create(path: &Path, owner: NodeId) -> Result<(), redb::Error> {
    let tmp = prepare(path, owner)?;
    install(&tmp, path).map_err(redb::Error::Io)
}

/// The first half of `create`: the new store, complete and durable, at `creating_path`.
pub fn prepare(path: &Path, owner: NodeId) -> Result<PathBuf, redb::Error> {
    let tmp = creating_path(path);
    remove_if_present(&tmp).map_err(redb::Error::Io)?;
    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(&tmp)?;
    let owner =
        serde_json::to_vec(&owner).map_err(|e| redb::Error::Io(std::io::Error::other(e)))?;
    let txn = db.begin_write()?;
    {
        txn.open_table(LOG)?;
        let mut meta = txn.open_table(META)?;
        meta.insert(KEY_OWNER, owner.as_slice())?;
    }
    txn.commit()?;
    drop(db);
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(redb::Error::Io)?;
    Ok(tmp)
}

/// The second half of `create`: rename the prepared store into place, durably.
pub fn install(tmp: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::rename(tmp, path)?;
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Where `rekey` writes the re-sealed copy before it is renamed over the store.
pub fn rekeying_path(path: &Path) -> PathBuf {
    path.with_extension("redb.rekeying")
}

/// Remove a store creation or re-sealed copy that a crash interrupted (neither was ever
/// in use: the store in place is the one a crash left).
pub fn remove_leftovers(path: &Path) -> std::io::Result<bool> {
    let mut found = false;
    for tmp in [creating_path(path), rekeying_path(path)] {
        found |= tmp.exists();
        remove_if_present(&tmp)?;
    }
    Ok(found)
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Open the existing store at `path`, sealed with `dek`; never creates one. A missing,
/// empty, zeroed, truncated or otherwise unreadable file is an error, not a panic and not
/// a fresh store.
pub fn open(path: &Path, dek: &SealKey) -> Result<Opened, OpenError> {
    open_with_keys(path, std::slice::from_ref(dek))
}

/// `open`, with the store sealed by any one of `keys` (a rotation cut short leaves the
/// node with two keys, and the store sealed with either): the first that opens it is the
/// store's key from then on (`Opened::dek`).
pub fn open_with_keys(path: &Path, keys: &[SealKey]) -> Result<Opened, OpenError> {
    check_file(path)?;
    // The checks above cover what we have met; redb asserts on other damage it finds while
    // opening, and a panic must not take the daemon down.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        redb::Builder::new()
            // A small page cache: the hot data (recent log, one state record) is tiny, and
            // redb's default (1 GiB, filled lazily) would show up as resident memory on
            // every manager.
            .set_cache_size(CACHE_BYTES)
            .open(path)
    }));
    let db = match opened {
        Ok(db) => db.map_err(redb::Error::from)?,
        Err(panic) => return Err(OpenError::Panicked(panic_text(&panic))),
    };
    let txn = db.begin_write().map_err(redb::Error::from)?;
    {
        txn.open_table(LOG).map_err(redb::Error::from)?;
        txn.open_table(META).map_err(redb::Error::from)?;
    }
    txn.commit().map_err(redb::Error::from)?;
    let dek = store_key(&db, keys)?;
    let db = Db {
        db,
        dek: dek.clone(),
    };
    let corrupted =
        |e: StorageError<NodeId>| OpenError::Redb(redb::Error::Corrupted(e.to_string()));
    let owner: Option<NodeId> = get_meta(&db, KEY_OWNER).map_err(corrupted)?;
    let pristine = is_pristine(&db).map_err(corrupted)?;
    let store = Arc::new(Store {
        path: path.to_path_buf(),
        db: RwLock::new(db),
        closed: Default::default(),
    });
    let sm = StateMachineStore::load(store.clone())?;
    Ok(Opened {
        log: LogStore { db: store },
        sm,
        owner,
        pristine,
        dek,
    })
}

/// Which of `keys` the store is sealed with. A store sealed with another key is refused as
/// such at open, not as damage found later: the first sealed value met (the vote, the
/// state, the snapshot, the log's first entry) must open with it. (A rekey re-seals every
/// value at once, so one value tells.) A store with nothing sealed takes the first key.
fn store_key(db: &Database, keys: &[SealKey]) -> Result<SealKey, OpenError> {
    let txn = db.begin_read().map_err(redb::Error::from)?;
    let meta = txn.open_table(META).map_err(redb::Error::from)?;
    let mut sealed = None;
    for key in [KEY_VOTE, KEY_SM, KEY_SNAPSHOT, KEY_COMMITTED] {
        if let Some(v) = meta.get(key).map_err(redb::Error::from)? {
            if v.value().first() == Some(&SEALED) {
                sealed = Some(v.value().to_vec());
                break;
            }
        }
    }
    if sealed.is_none() {
        let log = txn.open_table(LOG).map_err(redb::Error::from)?;
        let first = log.first().map_err(redb::Error::from)?;
        sealed = first
            .map(|(_, v)| v.value().to_vec())
            .filter(|v| v.first() == Some(&SEALED));
    }
    keys.iter()
        .find(|k| sealed.as_ref().is_none_or(|v| k.open(&v[1..]).is_ok()))
        .cloned()
        .ok_or(OpenError::WrongKey)
}

fn is_pristine(db: &Database) -> StoreResult<bool> {
    let txn = db.begin_read().map_err(read_err)?;
    let log = txn.open_table(LOG).map_err(read_err)?;
    if log.first().map_err(read_err)?.is_some() {
        return Ok(false);
    }
    let meta = txn.open_table(META).map_err(read_err)?;
    for key in [KEY_VOTE, KEY_COMMITTED, KEY_PURGED, KEY_SM, KEY_SNAPSHOT] {
        if meta.get(key).map_err(read_err)?.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".into()
    }
}

/// redb 2's file header (its `page_store/header.rs`): a magic number, then the page size
/// and the region layout, from which the file's length follows. redb asserts (panics) when
/// the file is shorter than that, so it is checked here first.
mod header {
    pub const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    /// The header with both commit slots.
    pub const LEN: usize = 320;
    pub const PAGE_SIZE: usize = 12;
    pub const REGION_HEADER_PAGES: usize = 16;
    pub const REGION_MAX_DATA_PAGES: usize = 20;
    pub const FULL_REGIONS: usize = 24;
    pub const TRAILING_REGION_DATA_PAGES: usize = 28;
    /// The page size redb uses (and we do not change).
    pub const EXPECTED_PAGE_SIZE: u32 = 4096;

    pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(b)
    }
}

/// Check that `path` holds a whole redb database, as far as its header tells.
fn check_file(path: &Path) -> Result<(), OpenError> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OpenError::Missing),
        Err(e) => return Err(OpenError::Io(e)),
    };
    let len = file.metadata().map_err(OpenError::Io)?.len();
    if len == 0 {
        return Err(OpenError::Empty);
    }
    let mut head = Vec::with_capacity(header::LEN);
    (&mut file)
        .take(header::LEN as u64)
        .read_to_end(&mut head)
        .map_err(OpenError::Io)?;
    if head.iter().all(|b| *b == 0) {
        // Only the start is read: a file of zeros whose end was written is not a store either.
        return Err(OpenError::Zeroed);
    }
    if head.len() < header::MAGIC.len() || head[..header::MAGIC.len()] != header::MAGIC {
        return Err(OpenError::NotRedb);
    }
    if head.len() < header::LEN {
        return Err(OpenError::Truncated {
            len,
            expected: header::LEN as u64,
        });
    }
    let page_size = header::u32_at(&head, header::PAGE_SIZE);
    if page_size != header::EXPECTED_PAGE_SIZE {
        return Err(OpenError::BadHeader("unexpected page size"));
    }
    let region_header_pages = u64::from(header::u32_at(&head, header::REGION_HEADER_PAGES));
    let region_data_pages = u64::from(header::u32_at(&head, header::REGION_MAX_DATA_PAGES));
    let full_regions = u64::from(header::u32_at(&head, header::FULL_REGIONS));
    let trailing_pages = u64::from(header::u32_at(&head, header::TRAILING_REGION_DATA_PAGES));
    if region_data_pages == 0 || (full_regions == 0 && trailing_pages == 0) {
        return Err(OpenError::BadHeader("no regions"));
    }
    // The first page holds the header; then the full regions, then a partial one.
    let page = u64::from(page_size);
    let expected = (|| {
        let full = region_header_pages
            .checked_add(region_data_pages)?
            .checked_mul(page)?
            .checked_mul(full_regions)?;
        let trailing = if trailing_pages > 0 {
            region_header_pages
                .checked_add(trailing_pages)?
                .checked_mul(page)?
        } else {
            0
        };
        page.checked_add(full)?.checked_add(trailing)
    })()
    .ok_or(OpenError::BadHeader("impossible layout"))?;
    if len < expected {
        return Err(OpenError::Truncated { len, expected });
    }
    Ok(())
}

impl Store {
    /// Re-seal every value with `new`, as one step for everyone else: under the write lock
    /// (no read or write in flight), a copy of the store is written beside it with each
    /// value opened with the old key and sealed with the new one (values of older stores,
    /// in the clear, are sealed too), made durable, and renamed over the store; the copy's
    /// database then replaces the old one. A crash before the rename leaves the store
    /// sealed with the old key (and a leftover copy, see `remove_leftovers`); after it,
    /// with the new one. The copy is fresh: nothing sealed with the old key remains in the
    /// file, not even in pages redb has freed.
    fn rekey(&self, new: &SealKey) -> Result<bool, RekeyError> {
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(RekeyError::Closed);
        }
        if db.dek == *new {
            return Ok(false);
        }
        let tmp = rekeying_path(&self.path);
        let write = |source: redb::Error| RekeyError::Write {
            path: tmp.clone(),
            source,
        };
        let copy = (|| {
            remove_if_present(&tmp)
                .map_err(redb::Error::Io)
                .map_err(write)?;
            let copy = Db {
                db: redb::Builder::new()
                    .set_cache_size(CACHE_BYTES)
                    .create(&tmp)
                    .map_err(redb::Error::from)
                    .map_err(write)?,
                dek: new.clone(),
            };
            reseal(&db, &copy, &tmp)?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(redb::Error::Io)
                .map_err(write)?;
            std::fs::rename(&tmp, &self.path)
                .map_err(redb::Error::Io)
                .map_err(write)?;
            Ok(copy)
        })();
        let copy = match copy {
            Ok(copy) => copy,
            Err(e) => {
                let _ = remove_if_present(&tmp);
                return Err(e);
            }
        };
        // Renamed: the file at `path` is the copy, whatever happens next.
        *db = copy;
        drop(db);
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| RekeyError::Write {
                    path: self.path.clone(),
                    source: redb::Error::Io(source),
                })?;
        }
        Ok(true)
    }
}

/// Copy every value of `from` into `to`, re-sealed with `to`'s key, in one durable write
/// transaction (the owner record stays in the clear, as `prepare` writes it).
fn reseal(from: &Db, to: &Db, to_path: &Path) -> Result<(), RekeyError> {
    let write = |e: redb::Error| RekeyError::Write {
        path: to_path.to_path_buf(),
        source: e,
    };
    let read = |e: redb::Error| RekeyError::Unreadable(e.to_string());
    let opened = |e: StorageError<NodeId>| RekeyError::Unreadable(e.to_string());
    let rtxn = from.begin_read().map_err(|e| read(e.into()))?;
    let wtxn = to.begin_write().map_err(|e| write(e.into()))?;
    {
        let src = rtxn.open_table(LOG).map_err(|e| read(e.into()))?;
        let mut dst = wtxn.open_table(LOG).map_err(|e| write(e.into()))?;
        for item in src.iter().map_err(|e| read(e.into()))? {
            let (k, v) = item.map_err(|e| read(e.into()))?;
            let plain = from.open(v.value()).map_err(opened)?;
            dst.insert(k.value(), to.seal(&plain).as_slice())
                .map_err(|e| write(e.into()))?;
        }
        let src = rtxn.open_table(META).map_err(|e| read(e.into()))?;
        let mut dst = wtxn.open_table(META).map_err(|e| write(e.into()))?;
        for item in src.iter().map_err(|e| read(e.into()))? {
            let (k, v) = item.map_err(|e| read(e.into()))?;
            let value = if k.value() == KEY_OWNER {
                v.value().to_vec()
            } else {
                to.seal(&from.open(v.value()).map_err(opened)?)
            };
            dst.insert(k.value(), value.as_slice())
                .map_err(|e| write(e.into()))?;
        }
    }
    wtxn.commit().map_err(|e| write(e.into()))
}

fn get_meta<T: for<'de> Deserialize<'de>>(db: &Db, key: &str) -> StoreResult<Option<T>> {
    let txn = db.begin_read().map_err(read_err)?;
    let table = txn.open_table(META).map_err(read_err)?;
    match table.get(key).map_err(read_err)? {
        Some(v) => Ok(Some(db.decode(v.value())?)),
        None => Ok(None),
    }
}

fn put_meta<T: Serialize>(db: &Db, key: &str, value: &T, sync: Sync) -> StoreResult<()> {
    let bytes = db.encode(value)?;
    put_meta_bytes(db, key, &bytes, sync)
}

/// Store `bytes`, already sealed.
fn put_meta_bytes(db: &Db, key: &str, bytes: &[u8], sync: Sync) -> StoreResult<()> {
    let mut txn = db.begin_write().map_err(write_err)?;
    if sync == Sync::Lazy {
        txn.set_durability(redb::Durability::None);
    }
    {
        let mut table = txn.open_table(META).map_err(write_err)?;
        table.insert(key, bytes).map_err(write_err)?;
    }
    txn.commit().map_err(write_err)
}

/// The Raft log and vote.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Store>,
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry>> {
        let db = self.db.get();
        let txn = db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOG).map_err(read_err)?;
        let mut out = Vec::new();
        for item in table.range(range).map_err(read_err)? {
            let (_, v) = item.map_err(read_err)?;
            out.push(db.decode(v.value())?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let db = self.db.get();
        let last_purged: Option<LogId> = get_meta(&db, KEY_PURGED)?;
        let last = {
            let txn = db.begin_read().map_err(read_err)?;
            let table = txn.open_table(LOG).map_err(read_err)?;
            let last = table.last().map_err(read_err)?;
            match last {
                Some((_, v)) => {
                    let e: Entry = db.decode(v.value())?;
                    Some(e.log_id)
                }
                None => None,
            }
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        put_meta(&self.db.get(), KEY_VOTE, vote, Sync::Durable)
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        get_meta(&self.db.get(), KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> StoreResult<()> {
        put_meta(&self.db.get(), KEY_COMMITTED, &committed, Sync::Durable)
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId>> {
        Ok(get_meta::<Option<LogId>>(&self.db.get(), KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let db = self.db.get();
        let txn = db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            for entry in entries {
                let bytes = db.encode(&entry)?;
                table
                    .insert(entry.log_id.index, bytes.as_slice())
                    .map_err(write_err)?;
            }
        }
        let result = txn.commit();
        drop(db);
        let ok = result.is_ok();
        callback.log_io_completed(result.map_err(std::io::Error::other));
        if ok {
            Ok(())
        } else {
            Err(write_err(std::io::Error::other("log commit failed")))
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> StoreResult<()> {
        let db = self.db.get();
        let txn = db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            table
                .retain_in(log_id.index.., |_, _| false)
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> StoreResult<()> {
        let db = self.db.get();
        let bytes = db.encode(&Some(log_id))?;
        let txn = db.begin_write().map_err(write_err)?;
        {
            let mut meta = txn.open_table(META).map_err(write_err)?;
            meta.insert(KEY_PURGED, bytes.as_slice())
                .map_err(write_err)?;
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            table
                .retain_in(..=log_id.index, |_, _| false)
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }
}

/// What the state machine persists: the cluster state and where in the log it stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct SmData {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership<NodeId, openraft::BasicNode>,
    pub state: ClusterState,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    data: Vec<u8>,
}

/// The applied cluster state, shared with the API (readers take the lock briefly).
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<Store>,
    pub data: Arc<RwLock<SmData>>,
    applied_tx: Arc<watch::Sender<u64>>,
}

impl StateMachineStore {
    fn load(db: Arc<Store>) -> Result<Self, redb::Error> {
        let data: SmData = get_meta(&db.get(), KEY_SM)
            .map_err(|e| redb::Error::Corrupted(e.to_string()))?
            .unwrap_or_default();
        let applied = data.last_applied.map(|l| l.index).unwrap_or(0);
        Ok(StateMachineStore {
            db,
            data: Arc::new(RwLock::new(data)),
            applied_tx: Arc::new(watch::channel(applied).0),
        })
    }

    /// Watch the last applied log index.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// A copy of the current cluster state.
    pub fn state(&self) -> ClusterState {
        self.read(|d| d.state.clone())
    }

    pub fn read<T>(&self, f: impl FnOnce(&SmData) -> T) -> T {
        let guard = self.data.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    /// Re-seal the whole store with `new` (see `Store::rekey`). Returns false when it
    /// already was sealed with it (a rotation cut short after the rename).
    pub fn rekey(&self, new: &SealKey) -> Result<bool, RekeyError> {
        self.db.rekey(new)
    }

    /// No more rekeys (waiting for one under way): the store is being given up, and its
    /// file may be moved or removed.
    pub fn close(&self) {
        let _write = self.db.db.write().unwrap_or_else(|p| p.into_inner());
        self.db
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn persist(&self, data: &SmData, sync: Sync) -> StoreResult<()> {
        put_meta(&self.db.get(), KEY_SM, data, sync)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let (bytes, last_applied, membership) =
            self.read(|d| (serde_json::to_vec(d), d.last_applied, d.membership.clone()));
        let bytes = bytes.map_err(read_err)?;
        let snapshot_id = match last_applied {
            Some(l) => format!(
                "{}-{}-{}",
                l.leader_id,
                l.index,
                chrono::Utc::now().timestamp_millis()
            ),
            None => format!("0-{}", chrono::Utc::now().timestamp_millis()),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        put_meta(
            &self.db.get(),
            KEY_SNAPSHOT,
            &StoredSnapshot {
                meta: meta.clone(),
                data: bytes.clone(),
            },
            Sync::Durable,
        )?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId>, StoredMembership<NodeId, openraft::BasicNode>)> {
        Ok(self.read(|d| (d.last_applied, d.membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<CommandResult>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        // Held from sealing the state to storing it: a rekey in between would leave it
        // sealed with the old key.
        let db = self.db.get();
        let (bytes, applied) = {
            let mut guard = self.data.write().unwrap_or_else(|p| p.into_inner());
            for entry in entries {
                guard.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => results.push(CommandResult::default()),
                    EntryPayload::Normal(cmd) => {
                        results.push(guard.state.apply(&cmd, entry.log_id.index))
                    }
                    EntryPayload::Membership(m) => {
                        guard.membership = StoredMembership::new(Some(entry.log_id), m);
                        results.push(CommandResult::default());
                    }
                }
            }
            (db.encode(&*guard)?, guard.last_applied.map(|l| l.index))
        };
        put_meta_bytes(&db, KEY_SM, &bytes, Sync::Lazy)?;
        drop(db);
        if let Some(index) = applied {
            self.applied_tx.send_replace(index);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let bytes = snapshot.into_inner();
        let mut data: SmData = serde_json::from_slice(&bytes).map_err(read_err)?;
        data.last_applied = meta.last_log_id;
        data.membership = meta.last_membership.clone();
        self.persist(&data, Sync::Durable)?;
        put_meta(
            &self.db.get(),
            KEY_SNAPSHOT,
            &StoredSnapshot {
                meta: meta.clone(),
                data: bytes,
            },
            Sync::Durable,
        )?;
        let applied = data.last_applied.map(|l| l.index).unwrap_or(0);
        *self.data.write().unwrap_or_else(|p| p.into_inner()) = data;
        self.applied_tx.send_replace(applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let stored: Option<StoredSnapshot> = get_meta(&self.db.get(), KEY_SNAPSHOT)?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One key for every store of these tests.
    fn dek() -> SealKey {
        static KEY: std::sync::OnceLock<SealKey> = std::sync::OnceLock::new();
        KEY.get_or_init(SealKey::generate).clone()
    }

    fn created(dir: &tempfile::TempDir) -> PathBuf {
        let path = dir.path().join("raft.redb");
        create(&path, 7).expect("create");
        path
    }

    /// Write `entry` at its index, as `append` does (without openraft's callback).
    fn put_log(log: &LogStore, entry: &Entry) {
        let db = log.db.get();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(LOG).unwrap();
            t.insert(entry.log_id.index, db.encode(entry).unwrap().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }

    fn open_err(path: &Path) -> OpenError {
        match std::panic::catch_unwind(|| open(path, &dek())) {
            Ok(Ok(_)) => panic!("{} opened", path.display()),
            Ok(Err(e)) => e,
            Err(_) => panic!("opening {} panicked", path.display()),
        }
    }

    /// A new store opens, says whom it was made for and that nothing was written to it;
    /// the header check agrees with redb about its length (a redb upgrade that changes the
    /// header fails here, not in the field).
    #[test]
    fn a_created_store_opens_with_its_owner_and_passes_the_header_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = created(&dir);
        assert!(!creating_path(&path).exists(), "temporary file left");
        check_file(&path).expect("header check");
        let opened = open(&path, &dek()).expect("open");
        assert_eq!(opened.owner, Some(7));
        assert!(opened.pristine);
        put_meta(
            &opened.log.db.get(),
            KEY_VOTE,
            &Vote::new(1, 7),
            Sync::Durable,
        )
        .unwrap();
        drop(opened);
        let opened = open(&path, &dek()).expect("reopen");
        assert!(!opened.pristine, "a store with a vote is not pristine");
    }

    /// Opening never creates: a missing or empty file is refused and stays as it was.
    #[test]
    fn open_refuses_a_missing_or_empty_store_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        assert!(matches!(open_err(&path), OpenError::Missing));
        assert!(!path.exists(), "open created the store");
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(open_err(&path), OpenError::Empty));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    /// What a kill -9 during redb's own in-place creation left (the file sized, nothing
    /// written): refused as such, not "invalid data".
    #[test]
    fn open_refuses_a_zero_filled_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        std::fs::write(&path, vec![0u8; 1_589_248]).unwrap();
        let e = open_err(&path);
        assert!(matches!(e, OpenError::Zeroed), "{e}");
        assert!(e.is_unusable());
    }

    /// A store cut short anywhere is an error (redb asserts on it), and one that is not
    /// redb's at all too.
    #[test]
    fn open_refuses_a_truncated_or_foreign_store_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let path = created(&dir);
        let good = std::fs::read(&path).unwrap();
        for len in [good.len() / 2, good.len() - 1, 4096, 400, 100, 5] {
            std::fs::write(&path, &good[..len]).unwrap();
            let e = open_err(&path);
            assert!(
                matches!(e, OpenError::Truncated { .. } | OpenError::NotRedb),
                "cut to {len}: {e}"
            );
            assert!(e.is_unusable());
        }
        std::fs::write(&path, b"{\"not\": \"a store\"}").unwrap();
        assert!(matches!(open_err(&path), OpenError::NotRedb));
    }

    /// A creation interrupted before its rename leaves the store that was there (or none)
    /// and a temporary file, which `remove_leftovers` removes; creating again replaces both.
    #[test]
    fn an_interrupted_creation_leaves_the_old_store_and_a_removable_leftover() {
        let dir = tempfile::tempdir().unwrap();
        let path = created(&dir);
        // Cut short as redb leaves it: sized, all zeros.
        std::fs::write(creating_path(&path), vec![0u8; 1 << 20]).unwrap();
        assert_eq!(open(&path, &dek()).expect("the old store").owner, Some(7));
        assert!(remove_leftovers(&path).unwrap());
        assert!(!creating_path(&path).exists());
        assert!(!remove_leftovers(&path).unwrap());

        // Prepared but not renamed: the old store is still the one in place.
        let tmp = prepare(&path, 8).unwrap();
        assert_eq!(open(&path, &dek()).unwrap().owner, Some(7));
        install(&tmp, &path).unwrap();
        assert_eq!(open(&path, &dek()).unwrap().owner, Some(8));

        // Over an unusable file, and with a leftover beside it.
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        std::fs::write(creating_path(&path), b"junk").unwrap();
        create(&path, 9).unwrap();
        assert_eq!(open(&path, &dek()).unwrap().owner, Some(9));
        assert!(!creating_path(&path).exists());
    }

    /// What a manager writes (log entries, the vote, the applied state, the snapshot) is
    /// not readable in the file: a secret's bytes appear nowhere in it. The same store
    /// opened with another key is refused as such; with its own, everything reads back.
    #[tokio::test]
    async fn values_are_sealed_at_rest_and_need_their_key() {
        use crate::state::Command;
        let dir = tempfile::tempdir().unwrap();
        let path = created(&dir);
        let marker = "a-secret-marker-4f1d9a";
        let opened = open(&path, &dek()).unwrap();
        let (mut log, mut sm) = (opened.log, opened.sm);
        let log_id = openraft::LogId::new(openraft::CommittedLeaderId::new(1, 7), 1);
        let entry = Entry {
            log_id,
            payload: EntryPayload::Normal(Command::RotateToken {
                role: crate::types::Role::Worker,
                secret: marker.into(),
            }),
        };
        put_log(&log, &entry);
        log.save_vote(&Vote::new(1, 7)).await.unwrap();
        sm.apply([entry.clone()]).await.unwrap();
        sm.build_snapshot().await.unwrap();
        drop((log, sm));
        let raw = std::fs::read(&path).unwrap();
        assert!(
            !raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "the marker is in the file in the clear"
        );
        match open(&path, &SealKey::generate()) {
            Err(OpenError::WrongKey) => {}
            other => panic!("opened with another key: {:?}", other.map(|_| ())),
        }
        let mut again = open(&path, &dek()).unwrap();
        let got = again.log.try_get_log_entries(1..2).await.unwrap();
        assert_eq!(
            serde_json::to_string(&got[0]).unwrap(),
            serde_json::to_string(&entry).unwrap()
        );
        assert_eq!(again.log.read_vote().await.unwrap(), Some(Vote::new(1, 7)));
        assert_eq!(again.sm.read(|d| d.last_applied), Some(log_id));
        assert!(again.sm.get_current_snapshot().await.unwrap().is_some());
    }

    /// A store written before encryption (plain JSON values) still opens and reads.
    #[tokio::test]
    async fn plain_values_of_older_stores_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = created(&dir);
        {
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                let vote = serde_json::to_vec(&Vote::<NodeId>::new(3, 7)).unwrap();
                meta.insert(KEY_VOTE, vote.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let mut opened = open(&path, &dek()).unwrap();
        assert_eq!(opened.log.read_vote().await.unwrap(), Some(Vote::new(3, 7)));
    }

    fn secret_entry(index: u64, secret: &str) -> Entry {
        use crate::state::Command;
        Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 7), index),
            payload: EntryPayload::Normal(Command::RotateToken {
                role: crate::types::Role::Worker,
                secret: secret.into(),
            }),
        }
    }

    /// Every value of the file at `path` but the owner record, raw: (table, key, bytes).
    fn raw_values(path: &Path) -> Vec<(String, Vec<u8>)> {
        let db = redb::Database::open(path).unwrap();
        let txn = db.begin_read().unwrap();
        let mut out = Vec::new();
        for item in txn.open_table(LOG).unwrap().iter().unwrap() {
            let (k, v) = item.unwrap();
            out.push((format!("log {}", k.value()), v.value().to_vec()));
        }
        for item in txn.open_table(META).unwrap().iter().unwrap() {
            let (k, v) = item.unwrap();
            if k.value() != KEY_OWNER {
                out.push((k.value().to_string(), v.value().to_vec()));
            }
        }
        out
    }

    /// Every value in the file is sealed with `key`: it opens with it and with no other of
    /// `others`.
    fn assert_all_sealed_with(path: &Path, key: &SealKey, others: &[&SealKey]) {
        let values = raw_values(path);
        assert!(!values.is_empty());
        for (what, v) in values {
            assert_eq!(v.first(), Some(&SEALED), "{what} is not sealed");
            assert!(
                key.open(&v[1..]).is_ok(),
                "{what} does not open with the key"
            );
            for other in others {
                assert!(
                    other.open(&v[1..]).is_err(),
                    "{what} opens with another key"
                );
            }
        }
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    /// A store filled as a manager fills it (log, vote, committed, applied state,
    /// snapshot), with `marker` in a log entry and in the state, and a value of an older
    /// store in the clear.
    async fn filled_store(path: &Path, dek: &SealKey, marker: &str) {
        let opened = open(path, dek).unwrap();
        let (mut log, mut sm) = (opened.log, opened.sm);
        let entry = secret_entry(1, marker);
        put_log(&log, &entry);
        put_log(&log, &secret_entry(2, "another"));
        log.save_vote(&Vote::new(1, 7)).await.unwrap();
        sm.apply([entry]).await.unwrap();
        sm.build_snapshot().await.unwrap();
        // An older store's plain value.
        let plain = serde_json::to_vec(&Some(secret_entry(1, marker).log_id)).unwrap();
        put_meta_bytes(&log.db.get(), KEY_COMMITTED, &plain, Sync::Durable).unwrap();
    }

    /// A rekey re-seals every value with the new key: each reads back, none opens with
    /// the old key (which no longer opens the store: WrongKey), values of older stores in
    /// the clear are sealed too, and the file holds neither the secret in the clear nor
    /// any value as the old key sealed it (the store is a fresh copy, not rewritten in
    /// place, so redb's freed pages do not keep them).
    #[tokio::test]
    async fn rekey_reseals_every_value_and_the_old_key_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = created(&dir);
        let marker = "rekey-secret-marker-7c20e1";
        let (old, new) = (SealKey::generate(), SealKey::generate());
        filled_store(&path, &old, marker).await;
        let before: Vec<Vec<u8>> = raw_values(&path)
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| v.first() == Some(&SEALED))
            .collect();
        assert!(before.len() >= 5, "{}", before.len());
        let plain_before = std::fs::read(&path).unwrap();
        assert!(
            contains(&plain_before, b"\"index\":1"),
            "no plain value to re-seal"
        );

        let opened = open(&path, &old).unwrap();
        assert!(opened.sm.rekey(&new).unwrap(), "not rekeyed");
        assert!(!opened.sm.rekey(&new).unwrap(), "rekeyed twice");
        // Still usable, with the new key, by the same handles.
        let (mut log, sm) = (opened.log, opened.sm);
        log.save_vote(&Vote::new(2, 7)).await.unwrap();
        assert_eq!(log.try_get_log_entries(1..3).await.unwrap().len(), 2);
        drop((log, sm));

        assert!(
            !rekeying_path(&path).exists(),
            "the copy is left beside the store"
        );
        assert_all_sealed_with(&path, &new, &[&old]);
        let raw = std::fs::read(&path).unwrap();
        assert!(
            !contains(&raw, marker.as_bytes()),
            "the secret is in the clear"
        );
        assert!(
            !contains(&raw, b"\"index\":1"),
            "the plain value stayed plain"
        );
        for v in &before {
            // The ciphertext without its one-byte tag and nonce: 16 bytes are enough.
            assert!(
                !contains(&raw, &v[1 + 12..1 + 12 + 16]),
                "a value sealed with the old key is still in the file"
            );
        }
        match open(&path, &old) {
            Err(OpenError::WrongKey) => {}
            other => panic!("opened with the old key: {:?}", other.map(|_| ())),
        }
        let mut again = open(&path, &new).unwrap();
        assert_eq!(again.owner, Some(7));
        let got = again.log.try_get_log_entries(1..2).await.unwrap();
        assert_eq!(
            serde_json::to_string(&got[0]).unwrap(),
            serde_json::to_string(&secret_entry(1, marker)).unwrap()
        );
        assert_eq!(again.log.read_vote().await.unwrap(), Some(Vote::new(2, 7)));
        assert_eq!(
            again.log.read_committed().await.unwrap(),
            Some(secret_entry(1, marker).log_id)
        );
        assert_eq!(
            again.sm.read(|d| d.last_applied),
            Some(secret_entry(1, marker).log_id)
        );
        assert!(again.sm.get_current_snapshot().await.unwrap().is_some());
    }

    /// Killed during a rekey, the store opens with one of the two keys the identity then
    /// holds: before the rename, the old one (the half-written copy beside it is a
    /// leftover that start-up removes); after it, the new one.
    #[tokio::test]
    async fn a_store_opens_at_every_point_of_a_rekey() {
        let dir = tempfile::tempdir().unwrap();
        let path = created(&dir);
        let (old, new) = (SealKey::generate(), SealKey::generate());
        filled_store(&path, &old, "crash-marker").await;
        let both = [old.clone(), new.clone()];

        // Killed while writing the copy: a store of its own, partly filled, beside it.
        let copy = rekeying_path(&path);
        std::fs::copy(&path, &copy).unwrap();
        std::fs::write(&copy, &std::fs::read(&copy).unwrap()[..8192]).unwrap();
        let opened = open_with_keys(&path, &both).unwrap();
        assert_eq!(opened.dek, old);
        drop(opened);
        assert!(remove_leftovers(&path).unwrap());
        assert!(!copy.exists());

        // Killed after the copy was complete, before the rename: the same.
        {
            let opened = open(&path, &old).unwrap();
            let db = opened.log.db.get();
            let fresh = Db {
                db: redb::Builder::new().create(&copy).unwrap(),
                dek: new.clone(),
            };
            reseal(&db, &fresh, &copy).unwrap();
        }
        let opened = open_with_keys(&path, &both).unwrap();
        assert_eq!(opened.dek, old);
        drop(opened);
        assert!(remove_leftovers(&path).unwrap());

        // Killed after the rename (before the identity dropped the old key).
        let opened = open_with_keys(&path, &both).unwrap();
        assert!(opened.sm.rekey(&new).unwrap());
        drop(opened);
        let mut opened = open_with_keys(&path, &both).unwrap();
        assert_eq!(opened.dek, new);
        assert!(!opened.sm.rekey(&new).unwrap(), "already sealed with it");
        assert_eq!(opened.log.read_vote().await.unwrap(), Some(Vote::new(1, 7)));
        drop(opened);
        // The new key alone (the rotation finished).
        open(&path, &new).unwrap();
        assert!(matches!(
            open_with_keys(&path, &[old]),
            Err(OpenError::WrongKey)
        ));
    }

    /// Writes that run while the store is re-sealed are neither lost nor left sealed with
    /// the old key: each waits for the rekey, or is in the copy.
    #[test]
    fn writes_during_a_rekey_are_kept_and_sealed_with_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = created(&dir);
        let (old, new) = (SealKey::generate(), SealKey::generate());
        let opened = open(&path, &old).unwrap();
        let (log, sm) = (opened.log, opened.sm);
        let writer = {
            let mut log = log.clone();
            std::thread::spawn(move || {
                for i in 1..=300u64 {
                    put_log(&log, &secret_entry(i, "during"));
                    futures::executor::block_on(log.save_vote(&Vote::new(i, 7))).unwrap();
                }
            })
        };
        // Rekey while the writer runs (with a few entries in already).
        let written = || {
            use redb::ReadableTableMetadata;
            let db = log.db.get();
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(LOG).unwrap();
            table.len().unwrap()
        };
        while written() < 20 {
            std::thread::yield_now();
        }
        assert!(sm.rekey(&new).unwrap());
        writer.join().unwrap();
        drop((log, sm));
        assert_all_sealed_with(&path, &new, &[&old]);
        let mut opened = open(&path, &new).unwrap();
        let entries = futures::executor::block_on(opened.log.try_get_log_entries(1..=300)).unwrap();
        assert_eq!(entries.len(), 300);
        let vote = futures::executor::block_on(opened.log.read_vote()).unwrap();
        assert_eq!(vote, Some(Vote::new(300, 7)));
    }
}
