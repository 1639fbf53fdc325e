//! The journal: every accepted telemetry message is appended here before the broker receives
//! its acknowledgement, so a crash loses nothing the broker considers delivered.
//!
//! The journal is a directory of segment files. A message's segment stays on disk while any
//! record derived from it waits in a storage sink; each record carries a [`Retained`] handle
//! to its segment, and when the last handle of a closed segment is dropped the file is
//! deleted. At start the engine replays the segments left over, which holds exactly the
//! messages whose effects may not all be stored; replay is safe because every store write is
//! idempotent.
//!
//! How far "on disk" goes is the [`Durability`] setting.

pub mod segment;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};
use valmetal_actors::retained::{Keep, Retained};

pub use segment::JournalEntry;

/// Failures an acknowledged message survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// No journal: messages queued in memory for a store are lost if the process dies.
    Memory,
    /// Written to the operating system before the acknowledgement: survives a crash or a
    /// `kill -9` of the engine, not a crash of the machine.
    Process,
    /// Flushed to the disk (`fdatasync`) before the acknowledgement: survives a power loss,
    /// at the cost of one disk flush per message.
    Disk,
}

/// Journal settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    pub durability: Durability,
    /// A segment is closed, and a new one opened, beyond this many bytes.
    pub segment_bytes: u64,
    /// ... or when it is older than this, e.g. `30s`, so stored segments are deleted soon.
    #[serde(with = "humantime_serde")]
    pub segment_age: Duration,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Process,
            segment_bytes: 16 * 1024 * 1024,
            segment_age: Duration::from_secs(30),
        }
    }
}

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use journal directory {path}: {source}; choose a writable --data-dir")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read journal segment {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "data directory {path} is in use by another engine (lock file {lock}); give each engine its own --data-dir"
    )]
    Locked { path: String, lock: String },
    #[error("cannot append to journal segment {path}: {source}")]
    Append {
        path: String,
        source: std::io::Error,
    },
}

/// One segment's life on disk: the file is deleted when the last handle is dropped, unless
/// a handle asked to keep it.
#[derive(Debug)]
pub struct SegmentLife {
    path: PathBuf,
    kept: AtomicBool,
}

impl Keep for SegmentLife {
    fn keep(&self) {
        self.kept.store(true, Ordering::Release);
    }
}

impl Drop for SegmentLife {
    fn drop(&mut self) {
        if self.kept.load(Ordering::Acquire) {
            return;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::debug!(path = %self.path.display(), "Journal segment stored and deleted")
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                warn!(path = %self.path.display(), %error, "Cannot delete a stored journal segment")
            }
        }
    }
}

struct Active {
    file: File,
    life: Arc<SegmentLife>,
    bytes: u64,
    opened: Instant,
    next_id: u64,
    buffer: Vec<u8>,
    /// A write failed part way: the next append opens a new segment.
    damaged: bool,
}

/// The open journal, appended to by ingest.
pub struct Journal {
    dir: PathBuf,
    config: JournalConfig,
    active: Mutex<Active>,
    /// Held locked while the journal is open, so a second engine cannot share the directory.
    _lock: File,
}

/// Segments left by an earlier run, to be replayed before ingest starts.
pub struct Backlog {
    segments: Vec<(u64, PathBuf)>,
}

impl Journal {
    /// Opens the journal in `dir`, returning it with the segments an earlier run left.
    ///
    /// # Errors
    ///
    /// Returns [`JournalError`] when the directory cannot be created or listed, or the new
    /// segment cannot be created.
    pub fn open(dir: &Path, config: JournalConfig) -> Result<(Self, Backlog), JournalError> {
        let directory_error = |source| JournalError::Directory {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(directory_error)?;
        let lock = lock_directory(dir)?;
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(directory_error)? {
            let path = entry.map_err(directory_error)?.path();
            match segment_id(&path) {
                Some(id) if path.is_file() => segments.push((id, path)),
                _ if is_own_file(&path) => {}
                _ => {
                    warn!(path = %path.display(), "Journal directory contains a file that is not a segment; it is left alone")
                }
            }
        }
        segments.sort_unstable();
        let last = segments.last().map_or(0, |(id, _)| *id);
        let next_id = last.checked_add(1).ok_or_else(|| JournalError::Directory {
            path: dir.display().to_string(),
            source: std::io::Error::other(format!(
                "segment number {last} is the largest possible; replay or move the segments aside"
            )),
        })?;
        let active = open_segment(dir, next_id)?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                config,
                active: Mutex::new(active),
                _lock: lock,
            },
            Backlog { segments },
        ))
    }

    /// Appends one message and returns the handle that keeps its segment until released.
    ///
    /// # Errors
    ///
    /// Returns [`JournalError::Append`] when the write or flush fails; the message must then
    /// not be acknowledged.
    pub fn append(
        &self,
        device: &str,
        received_at: i64,
        payload: &[u8],
    ) -> Result<Retained, JournalError> {
        let mut active = self.active.lock();
        if active.bytes >= self.config.segment_bytes
            || active.opened.elapsed() >= self.config.segment_age
            || active.damaged
        {
            let next = open_segment(&self.dir, active.next_id)?;
            *active = next;
        }
        let Active {
            file,
            life,
            bytes,
            buffer,
            damaged,
            ..
        } = &mut *active;
        buffer.clear();
        segment::encode(device, received_at, payload, buffer);
        let written = file.write_all(buffer).and_then(|()| {
            if self.config.durability == Durability::Disk {
                file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(source) = written {
            // A partial write may have left bytes behind; later records go to a new segment.
            *damaged = true;
            return Err(JournalError::Append {
                path: life.path.display().to_string(),
                source,
            });
        }
        *bytes += buffer.len() as u64;
        Ok(Retained::new(Arc::clone(life)))
    }

    /// Closes the open segment if it is older than the segment age, so that a quiet journal
    /// does not keep stored messages on disk. Appends roll it too; this covers quiet times.
    pub fn roll_if_aged(&self) {
        let mut active = self.active.lock();
        if active.bytes == 0 || active.opened.elapsed() < self.config.segment_age {
            return;
        }
        match open_segment(&self.dir, active.next_id) {
            Ok(next) => *active = next,
            Err(error) => warn!(%error, "Cannot open a new journal segment; the open one stays"),
        }
    }

    /// Returns the directory of the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn open_segment(dir: &Path, id: u64) -> Result<Active, JournalError> {
    let path = dir.join(format!("{id:020}.log"));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| JournalError::Append {
            path: path.display().to_string(),
            source,
        })?;
    Ok(Active {
        file,
        life: Arc::new(SegmentLife {
            path,
            kept: AtomicBool::new(false),
        }),
        bytes: 0,
        opened: Instant::now(),
        next_id: id.saturating_add(1),
        buffer: Vec::new(),
        damaged: false,
    })
}

/// Name of the lock file in the journal directory.
const LOCK_FILE: &str = "lock";
/// Directory, inside the journal directory, of copies of damaged segments.
const DAMAGED_DIR: &str = "damaged";

/// Locks the journal directory for this process.
fn lock_directory(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| JournalError::Directory {
            path: dir.display().to_string(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Locked {
            path: dir.parent().unwrap_or(dir).display().to_string(),
            lock: path.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(JournalError::Directory {
            path: dir.display().to_string(),
            source,
        }),
    }
}

/// Returns the segment number a file name gives, as `00000000000000000042.log`.
fn segment_id(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// Returns true for the journal's own files that are not segments.
fn is_own_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name == LOCK_FILE || name == DAMAGED_DIR)
}

/// Copies a damaged segment aside before it is replayed, so the bytes that could not be
/// read stay for inspection after the segment itself is deleted.
fn keep_damaged_copy(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let dir = path.with_file_name(DAMAGED_DIR);
    let copied = std::fs::create_dir_all(&dir).and_then(|()| std::fs::copy(path, dir.join(name)));
    match copied {
        Ok(_) => {
            warn!(copy = %dir.join(name).display(), "Copy of a damaged journal segment kept for inspection")
        }
        Err(error) => {
            warn!(path = %path.display(), %error, "Cannot keep a copy of a damaged journal segment")
        }
    }
}

impl Backlog {
    /// Returns the number of segments left by an earlier run.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Reads the backlog one segment at a time, calling `each` with every message and the
    /// handle of its segment; a segment is deleted once every handle of it is dropped.
    ///
    /// # Errors
    ///
    /// Returns [`JournalError::Read`] when a segment cannot be read; the segments not yet
    /// read stay on disk.
    pub async fn replay<F, Fut>(self, mut each: F) -> Result<u64, JournalError>
    where
        F: FnMut(JournalEntry, Retained) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut total = 0;
        for (_, path) in self.segments {
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|source| JournalError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
            let decoded = segment::decode(&bytes);
            if decoded.corrupt_bytes > 0 {
                error!(path = %path.display(), corrupt_bytes = decoded.corrupt_bytes, records = decoded.entries.len(), "Journal segment is damaged: unreadable bytes were skipped and the records around them replayed");
                keep_damaged_copy(&path);
            }
            if decoded.torn_bytes > 0 {
                warn!(path = %path.display(), torn_bytes = decoded.torn_bytes, "Journal segment ends in a torn record, left by a write the engine never acknowledged; skipping it");
            }
            let life = Arc::new(SegmentLife {
                path,
                kept: AtomicBool::new(false),
            });
            let count = decoded.entries.len() as u64;
            for entry in decoded.entries {
                each(entry, Retained::new(Arc::clone(&life))).await;
            }
            total += count;
        }
        if total > 0 {
            info!(messages = total, "Journal replayed");
        }
        Ok(total)
    }
}
