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
use tracing::{info, warn};
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
}

/// The open journal, appended to by ingest.
pub struct Journal {
    dir: PathBuf,
    config: JournalConfig,
    active: Mutex<Active>,
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
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(directory_error)? {
            let path = entry.map_err(directory_error)?.path();
            let id = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".log"))
                .and_then(|stem| stem.parse::<u64>().ok());
            if let Some(id) = id {
                segments.push((id, path));
            }
        }
        segments.sort_unstable();
        let next_id = segments.last().map_or(1, |(id, _)| id + 1);
        let active = open_segment(dir, next_id)?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                config,
                active: Mutex::new(active),
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
        {
            let next = open_segment(&self.dir, active.next_id)?;
            *active = next;
        }
        let Active {
            file,
            life,
            bytes,
            buffer,
            ..
        } = &mut *active;
        buffer.clear();
        segment::encode(device, received_at, payload, buffer);
        let append_error = |source| JournalError::Append {
            path: life.path.display().to_string(),
            source,
        };
        file.write_all(buffer).map_err(append_error)?;
        if self.config.durability == Durability::Disk {
            file.sync_data().map_err(append_error)?;
        }
        *bytes += buffer.len() as u64;
        Ok(Retained::new(Arc::clone(life)))
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
        next_id: id + 1,
        buffer: Vec::new(),
    })
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
            if decoded.torn_bytes > 0 {
                warn!(path = %path.display(), torn_bytes = decoded.torn_bytes, "Journal segment ends in a torn record, which was never acknowledged; skipping it");
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
