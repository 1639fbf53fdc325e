//! Storage sinks: everything the engine accepts is written to its stores in batches.
//!
//! Each store is a [`Sink`]: it writes one batch and reports, per record, what became of it.
//! The shared [`batcher`] does the rest for every store alike: it queues records within a
//! memory bound, flushes on size, bytes or age, retries with backoff and jitter, sends
//! records a store refuses for good to a [dead-letter file](dead_letter), keeps the journal
//! segments of unwritten records alive, and drains on shutdown.

pub mod aws;
pub mod backoff;
pub mod batcher;
pub mod dead_letter;
pub mod dynamodb;
pub mod metrics;
pub mod queue;
pub mod shadows;
pub mod timeseries;
pub mod timestream;

use std::future::Future;

use serde::{Deserialize, Serialize};

pub use batcher::{BatcherConfig, SinkTask, spawn};
pub use queue::{Overflow, PushError, SinkQueue};

/// Whether a failed request may succeed when sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, a timeout, a 5xx or a lost connection: the batch is sent again after a
    /// backoff, for as long as the engine runs.
    Retriable,
    /// The request itself is wrong (validation, access denied, missing table): sending it
    /// again cannot help, so its records go to the dead-letter file.
    Permanent,
}

/// A failed write request, classified by the sink that made it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub class: ErrorClass,
    /// A short stable label for metrics, such as `throttled` or `server_error`.
    pub reason: &'static str,
    pub message: String,
}

impl SinkError {
    pub fn retriable(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Retriable,
            reason,
            message: message.into(),
        }
    }

    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Permanent,
            reason,
            message: message.into(),
        }
    }
}

/// A record the store refused for good, with the reason it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Index of the record in the batch passed to [`Sink::write`].
    pub index: usize,
    /// A short stable label for metrics, such as `too_old`.
    pub reason: &'static str,
    pub detail: String,
}

/// Outcome of each record of a batch the store replied to.
///
/// Records named in none of the lists were written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Indexes of records to send again: left unprocessed, or changed by the sink (a higher
    /// record version) to be accepted next time.
    pub retry: Vec<usize>,
    /// Records refused for good; they go to the dead-letter file.
    pub refused: Vec<Refusal>,
    /// Indexes of records the store already has a newer version of. They are dropped and
    /// counted, because they must not overwrite the newer one.
    pub superseded: Vec<usize>,
}

/// One store the engine writes to.
pub trait Sink: Send + Sync + 'static {
    /// Record type that is queued and written.
    type Record: Send + Serialize + 'static;
    /// Key under which a newer record replaces a queued older one; `()` for stores that keep
    /// every record.
    type Key: Eq + std::hash::Hash + Clone + Send + 'static;

    /// Short name used in metrics, logs and the dead-letter file name.
    fn name(&self) -> &'static str;

    /// Approximate bytes the record takes in a request, for the batch byte limit.
    fn record_bytes(&self, record: &Self::Record) -> usize;

    /// Returns the key under which a newer record replaces a queued one, if the store coalesces.
    fn coalesce_key(&self, record: &Self::Record) -> Option<Self::Key>;

    /// Writes `batch` in one or more requests. The sink may change the records it returns for
    /// a retry, such as raising a record version.
    ///
    /// # Errors
    ///
    /// Returns [`SinkError`] when the store wrote none of the batch, classified as retriable
    /// or permanent.
    fn write(
        &self,
        batch: &mut [Self::Record],
    ) -> impl Future<Output = Result<BatchOutcome, SinkError>> + Send;
}
