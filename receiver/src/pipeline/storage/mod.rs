//! The optional persistent queue (`exporter.storage`): a write-ahead log of
//! every request gort accepts, written before the client hears that it was
//! accepted, so that gort killed (SIGKILL, OOM) and started again delivers
//! everything it acknowledged, at least once.
//!
//! The log is a directory of segment files (`<id>.wal`, ids rising). A
//! request is appended to the newest segment; a segment that is full is
//! closed and the next one started. Each record stays live until the
//! forwarder is done with the batch it went out in (sent, rejected, or
//! dropped after its retries); a closed segment whose records are all done
//! is deleted. At start, the segments left behind are read back in order
//! (`replay`): good records go to the queue again, damaged ones are counted
//! and skipped, a record a crash cut short is counted as truncated.
//!
//! Durability: the record is in the kernel's page cache before the answer,
//! so a crash of gort loses nothing it acknowledged. A crash of the machine
//! loses what was not yet synced: at most `sync_interval` of it (`0s` syncs
//! every record before the answer, at the cost of a disk flush each).

pub mod record;
pub mod replay;

use std::{
    collections::BTreeMap,
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use thiserror::Error;

use super::{Payload, SIGNALS, Signal};
use crate::config::StorageConfig;

/// Segments are this large at most, and a quarter of the bound at most: a
/// segment is deleted whole, so smaller ones give disk back sooner; a
/// replay reads one at a time.
const SEGMENT_BYTES: u64 = 4 << 20;

/// A record's place in the log: its segment, released with `done`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark(u64);

impl Mark {
    /// As a number, for stages that carry it without knowing what it is
    /// (trace linkage's hold).
    pub fn raw(self) -> u64 {
        self.0
    }

    pub fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("exporter.storage.directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
    #[error(
        "exporter.storage.directory {path} is in use by another gort (its lock is held); give each gort a directory of its own"
    )]
    Locked { path: PathBuf },
    #[error("the storage is full ({held} of {max} bytes on disk)")]
    Full { held: u64, max: u64 },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

struct Segment {
    /// Its size on disk.
    bytes: u64,
    /// Records not yet done.
    live: u64,
    /// Still written to, or left by an earlier run and not yet replayed:
    /// not deleted even with no live records.
    open: bool,
}

struct Current {
    id: u64,
    file: Arc<File>,
}

struct State {
    current: Option<Current>,
    segments: BTreeMap<u64, Segment>,
    disk_bytes: u64,
    next_id: u64,
}

/// What the storage counted, for gort's own metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub recovered: [AtomicU64; SIGNALS],
    /// Damaged stretches skipped, and records whose request did not decode.
    pub damaged: AtomicU64,
    /// Segments that ended in a record a crash cut short.
    pub truncated: AtomicU64,
    pub write_errors: AtomicU64,
    /// Items left in the log at shutdown, for the next start.
    pub kept: AtomicU64,
}

pub struct Storage {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    sync_each_record: bool,
    state: Mutex<State>,
    next_seq: AtomicU64,
    pub stats: Stats,
    /// Held while gort runs: two gorts appending to one log would each
    /// delete the other's records.
    _lock: nix::fcntl::Flock<File>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.wal"))
}

fn segment_id(name: &std::ffi::OsStr) -> Option<u64> {
    let hex = name.to_str()?.strip_suffix(".wal")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn signal_code(s: Signal) -> u8 {
    s.index() as u8
}

/// A record's request, from the segment's bytes: kept as those bytes
/// (walked, not decoded) where gort forwards it unchanged, as when it was
/// received; None if it is not a valid request.
fn decode(signal: u8, segment: &bytes::Bytes, body: std::ops::Range<usize>) -> Option<Payload> {
    let signal = *Signal::ALL.get(usize::from(signal))?;
    if !super::walk::walkable(signal) {
        return super::raw::decode_request(signal, &segment[body]);
    }
    let walked = super::walk::walk(signal, &segment[body.clone()]).ok()?;
    Some(Payload::Raw(super::raw::Raw::new(signal, walked.items, segment.slice(body))))
}

impl Storage {
    /// Opens (creating) the directory and takes its lock; the segments an
    /// earlier run left are returned, oldest first, for `replay`.
    pub fn open(config: &StorageConfig) -> Result<(Self, Vec<u64>), StorageError> {
        let dir = config.directory.clone();
        let io = |source| StorageError::Directory { path: dir.clone(), source };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let lock_file = File::create(dir.join("lock")).map_err(io)?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| StorageError::Locked { path: dir.clone() })?;
        let mut segments = BTreeMap::new();
        let mut disk_bytes = 0;
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let Some(id) = segment_id(&entry.file_name()) else { continue };
            let bytes = entry.metadata().map_err(io)?.len();
            disk_bytes += bytes;
            segments.insert(id, Segment { bytes, live: 0, open: true });
        }
        let left: Vec<u64> = segments.keys().copied().collect();
        let next_id = left.last().map_or(1, |id| id + 1);
        let storage = Self {
            max_bytes: config.max_bytes,
            segment_bytes: SEGMENT_BYTES.min(config.max_bytes / 4).max(1),
            sync_each_record: config.sync_interval.is_zero(),
            state: Mutex::new(State { current: None, segments, disk_bytes, next_id }),
            next_seq: AtomicU64::new(1),
            stats: Stats::default(),
            dir,
            _lock: lock,
        };
        Ok((storage, left))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change to the state is completed before anything can fail.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes of segments on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.lock().disk_bytes
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Writes a request of `body_len` protobuf bytes (its `encoded_len`)
    /// to the log, and syncs it with `sync_interval: 0s`. On success the
    /// request may be acknowledged.
    pub fn append(&self, payload: &Payload, body_len: u64) -> Result<Mark, StorageError> {
        let body = usize::try_from(body_len).unwrap_or(usize::MAX);
        let record_len = record::size(body);
        let size = record_len as u64;
        // A full log refuses before any encoding: while it stays full, every
        // request is refused, and that is when gort has least CPU to spare.
        self.check_room(&self.lock(), size)?;
        // Encoded and checksummed outside the lock: concurrent requests
        // share only the write. Their sequence numbers are taken in the
        // order they start, so two of them may be written the other way round.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut buf = Vec::with_capacity(record_len);
        record::encode(&mut buf, seq, signal_code(payload.signal()), body, |out| payload.encode(out));
        let mut state = self.lock();
        // Again: another request may have taken the room meanwhile.
        self.check_room(&state, size)?;
        let full = state
            .current
            .as_ref()
            .is_some_and(|c| state.segments.get(&c.id).is_none_or(|s| s.bytes >= self.segment_bytes));
        if full {
            self.close_current(&mut state);
        }
        if state.current.is_none() {
            let id = state.next_id;
            let path = segment_path(&self.dir, id);
            let file = File::options()
                .append(true)
                .create_new(true)
                .open(&path)
                .map_err(|source| self.write_failed(path, source))?;
            state.next_id += 1;
            state.segments.insert(id, Segment { bytes: 0, live: 0, open: true });
            state.current = Some(Current { id, file: Arc::new(file) });
        }
        let Some(current) = &state.current else { unreachable!("opened above") };
        let (id, file) = (current.id, current.file.clone());
        let written = (&*file).write_all(&buf).and_then(|()| match self.sync_each_record {
            true => file.sync_data(),
            false => Ok(()),
        });
        if let Err(source) = written {
            // The segment may end in part of this record: the next request
            // starts a new one, and a replay counts this one as damage.
            self.close_current(&mut state);
            return Err(self.write_failed(segment_path(&self.dir, id), source));
        }
        state.disk_bytes += size;
        if let Some(s) = state.segments.get_mut(&id) {
            s.bytes += size;
            s.live += 1;
        }
        Ok(Mark(id))
    }

    /// One record alone always fits an empty log, as in the queue.
    fn check_room(&self, state: &State, size: u64) -> Result<(), StorageError> {
        match state.disk_bytes > 0 && state.disk_bytes + size > self.max_bytes {
            true => Err(StorageError::Full { held: state.disk_bytes, max: self.max_bytes }),
            false => Ok(()),
        }
    }

    fn write_failed(&self, path: PathBuf, source: std::io::Error) -> StorageError {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        StorageError::Write { path, source }
    }

    fn close_current(&self, state: &mut State) {
        if let Some(c) = state.current.take() {
            if let Some(s) = state.segments.get_mut(&c.id) {
                s.open = false;
            }
            self.delete_if_done(state, c.id);
        }
    }

    fn delete_if_done(&self, state: &mut State, id: u64) {
        let Some(s) = state.segments.get(&id) else { return };
        if s.open || s.live > 0 {
            return;
        }
        let path = segment_path(&self.dir, id);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                state.disk_bytes = state.disk_bytes.saturating_sub(s.bytes);
                state.segments.remove(&id);
            }
            // Left on disk (and counted): a later start replays it, at
            // least once being the promise.
            Err(e) => log::warn!("storage: cannot delete {}: {e}", path.display()),
        }
    }

    /// The forwarder is done with these records (sent, or given up on).
    pub fn done(&self, marks: &[Mark]) {
        if marks.is_empty() {
            return;
        }
        let mut state = self.lock();
        for Mark(id) in marks {
            let Some(s) = state.segments.get_mut(id) else { continue };
            s.live = s.live.saturating_sub(1);
            // A segment being written whose records are all done is closed
            // (and so deleted) too: a crash would replay all of it, every
            // record a duplicate; the next request starts a new one.
            let idle = s.live == 0 && state.current.as_ref().is_some_and(|c| c.id == *id);
            if idle {
                self.close_current(&mut state);
            } else {
                self.delete_if_done(&mut state, *id);
            }
        }
    }

    /// Reads a segment an earlier run left: its good records, each marked
    /// live until done. Damage and truncation are counted and logged.
    pub fn read_segment(&self, id: u64) -> Vec<(Mark, Payload)> {
        let path = segment_path(&self.dir, id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                log::error!("storage: cannot read {}: {e}; its records are lost", path.display());
                self.stats.damaged.fetch_add(1, Ordering::Relaxed);
                Vec::new()
            }
        };
        let scan = record::scan(&bytes);
        // The requests replayed share the segment's buffer.
        let bytes = bytes::Bytes::from(bytes);
        let mut out = Vec::with_capacity(scan.records.len());
        let mut undecodable = 0;
        for r in &scan.records {
            match decode(r.signal, &bytes, r.body.clone()) {
                Some(p) => out.push((Mark(id), p)),
                None => undecodable += 1,
            }
        }
        let damaged = scan.damaged + undecodable;
        if damaged > 0 || scan.truncated {
            log::warn!(
                "storage: {}: {} good record(s), {damaged} damaged record(s) skipped{}",
                path.display(),
                out.len(),
                if scan.truncated { ", and a last record cut short (never acknowledged)" } else { "" }
            );
        }
        self.stats.damaged.fetch_add(damaged, Ordering::Relaxed);
        self.stats.truncated.fetch_add(u64::from(scan.truncated), Ordering::Relaxed);
        let mut state = self.lock();
        if let Some(s) = state.segments.get_mut(&id) {
            s.live = out.len() as u64;
            s.open = false;
        }
        self.delete_if_done(&mut state, id);
        out
    }

    /// Flushes what was written to the disk (the `sync_interval` task).
    pub fn sync(&self) -> std::io::Result<()> {
        let file = self.lock().current.as_ref().map(|c| c.file.clone());
        if let Some(f) = file {
            f.sync_data()?;
        }
        // New segments' names too.
        File::open(&self.dir)?.sync_all()
    }

    /// Items of a batch left in the log at shutdown for the next start.
    pub fn keep(&self, items: u64) {
        self.stats.kept.fetch_add(items, Ordering::Relaxed);
    }

    pub fn recovered(&self, signal: Signal, items: u64) {
        self.stats.recovered[signal.index()].fetch_add(items, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
