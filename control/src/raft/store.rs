//! The Raft log, vote, state machine and snapshots, persisted in one redb database.
//!
//! Each log append and each applied batch is one redb write transaction (fsync'd), so a
//! manager killed with -9 restarts with everything it acknowledged.

// openraft's StorageError is large by design; these functions return it as openraft requires.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
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

/// Open (or create) the store at `path`; returns the log store and the state machine.
pub fn open(path: &Path) -> Result<(LogStore, StateMachineStore), redb::Error> {
    // A small page cache: the hot data (recent log, one state record) is tiny, and redb's
    // default (1 GiB, filled lazily) would show up as resident memory on every manager.
    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)?;
    let txn = db.begin_write()?;
    {
        txn.open_table(LOG)?;
        txn.open_table(META)?;
    }
    txn.commit()?;
    let db = Arc::new(db);
    let sm = StateMachineStore::load(db.clone())?;
    Ok((LogStore { db }, sm))
}

fn get_meta<T: for<'de> Deserialize<'de>>(db: &Database, key: &str) -> StoreResult<Option<T>> {
    let txn = db.begin_read().map_err(read_err)?;
    let table = txn.open_table(META).map_err(read_err)?;
    match table.get(key).map_err(read_err)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(read_err)?)),
        None => Ok(None),
    }
}

fn put_meta<T: Serialize>(db: &Database, key: &str, value: &T, sync: Sync) -> StoreResult<()> {
    let bytes = serde_json::to_vec(value).map_err(write_err)?;
    put_meta_bytes(db, key, &bytes, sync)
}

fn put_meta_bytes(db: &Database, key: &str, bytes: &[u8], sync: Sync) -> StoreResult<()> {
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
    db: Arc<Database>,
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry>> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOG).map_err(read_err)?;
        let mut out = Vec::new();
        for item in table.range(range).map_err(read_err)? {
            let (_, v) = item.map_err(read_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let last_purged: Option<LogId> = get_meta(&self.db, KEY_PURGED)?;
        let last = {
            let txn = self.db.begin_read().map_err(read_err)?;
            let table = txn.open_table(LOG).map_err(read_err)?;
            let last = table.last().map_err(read_err)?;
            match last {
                Some((_, v)) => {
                    let e: Entry = serde_json::from_slice(v.value()).map_err(read_err)?;
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
        put_meta(&self.db, KEY_VOTE, vote, Sync::Durable)
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        get_meta(&self.db, KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> StoreResult<()> {
        put_meta(&self.db, KEY_COMMITTED, &committed, Sync::Durable)
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId>> {
        Ok(get_meta::<Option<LogId>>(&self.db, KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            for entry in entries {
                let bytes = serde_json::to_vec(&entry).map_err(write_err)?;
                table
                    .insert(entry.log_id.index, bytes.as_slice())
                    .map_err(write_err)?;
            }
        }
        let result = txn.commit();
        let ok = result.is_ok();
        callback.log_io_completed(result.map_err(std::io::Error::other));
        if ok {
            Ok(())
        } else {
            Err(write_err(std::io::Error::other("log commit failed")))
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> StoreResult<()> {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOG).map_err(write_err)?;
            table
                .retain_in(log_id.index.., |_, _| false)
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> StoreResult<()> {
        let bytes = serde_json::to_vec(&Some(log_id)).map_err(write_err)?;
        let txn = self.db.begin_write().map_err(write_err)?;
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
    db: Arc<Database>,
    pub data: Arc<RwLock<SmData>>,
    applied_tx: Arc<watch::Sender<u64>>,
}

impl StateMachineStore {
    fn load(db: Arc<Database>) -> Result<Self, redb::Error> {
        let data: SmData = get_meta(&db, KEY_SM)
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

    fn persist(&self, data: &SmData, sync: Sync) -> StoreResult<()> {
        put_meta(&self.db, KEY_SM, data, sync)
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
            &self.db,
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
            (
                serde_json::to_vec(&*guard).map_err(write_err)?,
                guard.last_applied.map(|l| l.index),
            )
        };
        put_meta_bytes(&self.db, KEY_SM, &bytes, Sync::Lazy)?;
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
            &self.db,
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
        let stored: Option<StoredSnapshot> = get_meta(&self.db, KEY_SNAPSHOT)?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
