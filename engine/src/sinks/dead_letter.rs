//! The dead-letter files: records a store refused for good, one JSON line each, so that
//! nothing accepted disappears silently and an operator can inspect them.
//!
//! Each sink appends to `{dir}/{sink}.jsonl`, and every line carries the time, the reason
//! label, the store's explanation and the record itself.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tracing::error;
use valmetal_actors::clock::now_ms;
use valmetal_actors::retained::Retained;

use super::queue::Envelope;

/// Metric counting records written to dead-letter files.
const DEAD_LETTERED_TOTAL: &str = "telemetry_sink_records_dead_lettered_total";

/// The directory of dead-letter files.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    dir: Arc<PathBuf>,
}

#[derive(Serialize)]
struct Line<'a, R> {
    at: i64,
    sink: &'static str,
    reason: &'static str,
    detail: &'a str,
    record: &'a R,
}

impl DeadLetter {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir: Arc::new(dir) }
    }

    /// Returns the file of `sink`.
    pub fn path(&self, sink: &str) -> PathBuf {
        self.dir.join(format!("{sink}.jsonl"))
    }

    /// Appends `refused` records of `sink` and syncs the file. When the file cannot be
    /// written, the records go to the log, and their journal segments are kept so that the
    /// next start replays them.
    pub(super) async fn write<R: Serialize + Send + 'static>(
        &self,
        sink: &'static str,
        refused: Vec<(Envelope<R>, &'static str, String)>,
    ) {
        let at = now_ms();
        let text: String = refused
            .iter()
            .filter_map(|(envelope, reason, detail)| {
                serde_json::to_string(&Line {
                    at,
                    sink,
                    reason,
                    detail,
                    record: &envelope.record,
                })
                .ok()
            })
            .map(|line| line + "\n")
            .collect();
        let count = refused.len() as u64;
        let path = self.path(sink);
        let dir = Arc::clone(&self.dir);
        let result = tokio::task::spawn_blocking(move || {
            append(&dir, &path, text.as_bytes()).map_err(|error| (error.to_string(), text))
        })
        .await
        .unwrap_or_else(|error| Err((error.to_string(), String::new())));
        match result {
            Ok(()) => metrics::counter!(DEAD_LETTERED_TOTAL, "sink" => sink).increment(count),
            Err((error, text)) => {
                for (envelope, _, _) in &refused {
                    envelope.held.iter().for_each(Retained::keep);
                }
                error!(sink, %error, lines = %text, "Writing the dead-letter file failed; the journal keeps the records for the next start, and they follow in this log line");
            }
        }
    }
}

fn append(dir: &std::path::Path, path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_data()
}
