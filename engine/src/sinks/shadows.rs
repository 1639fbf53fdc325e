//! The shadow sink: the newest state of every changed device, written to a shadow store at
//! most once per flush interval whatever the device's frame rate.
//!
//! Producers queue only a mark naming the device; marks of one device coalesce in the queue.
//! At write time the sink takes each device's current document from its actor, so a write
//! always carries the newest state, and a retried write picks up changes made meanwhile.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use valmetal_actors::{DeviceDocument, DeviceId};

use super::{BatchOutcome, Sink, SinkError};

/// A store of device documents: DynamoDB in production, SQL by default.
pub trait ShadowStore: Send + Sync + 'static {
    /// Short name for metrics, logs and the dead-letter file.
    fn name(&self) -> &'static str;

    /// Records one request may carry at most.
    fn max_batch(&self) -> usize;

    /// Writes `documents`, never replacing a stored document of a higher version. Indexes in
    /// the outcome refer to `documents`.
    ///
    /// # Errors
    ///
    /// Returns [`SinkError`] when the store wrote none of them.
    fn put(
        &self,
        documents: &[DeviceDocument],
    ) -> impl Future<Output = Result<BatchOutcome, SinkError>> + Send;

    /// Reads every stored document, for restoring the actors at start.
    ///
    /// # Errors
    ///
    /// Returns [`SinkError`] when the store cannot be read.
    fn load_all(&self) -> impl Future<Output = Result<Vec<DeviceDocument>, SinkError>> + Send;
}

/// Where the sink takes current documents from: the device registry.
pub trait DocumentSource: Send + Sync + 'static {
    /// Returns the current document of `device`, or `None` if it has no actor.
    fn document(&self, device: &DeviceId) -> impl Future<Output = Option<DeviceDocument>> + Send;
}

/// A device whose state changed, and once taken, its document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowEntry {
    pub device: DeviceId,
    pub document: Option<DeviceDocument>,
}

impl ShadowEntry {
    pub fn mark(device: DeviceId) -> Self {
        Self {
            device,
            document: None,
        }
    }
}

/// The sink writing device documents to `store`.
pub struct ShadowSink<T, D> {
    store: T,
    source: Arc<D>,
}

impl<T: ShadowStore, D: DocumentSource> ShadowSink<T, D> {
    pub fn new(store: T, source: Arc<D>) -> Self {
        Self { store, source }
    }

    pub fn store(&self) -> &T {
        &self.store
    }
}

impl<T: ShadowStore, D: DocumentSource> Sink for ShadowSink<T, D> {
    type Record = ShadowEntry;
    type Key = DeviceId;

    fn name(&self) -> &'static str {
        self.store.name()
    }

    fn record_bytes(&self, _record: &ShadowEntry) -> usize {
        1
    }

    fn coalesce_key(&self, record: &ShadowEntry) -> Option<DeviceId> {
        Some(record.device.clone())
    }

    async fn write(&self, batch: &mut [ShadowEntry]) -> Result<BatchOutcome, SinkError> {
        for entry in batch.iter_mut() {
            if let Some(document) = self.source.document(&entry.device).await {
                entry.document = Some(document);
            }
        }
        let mut positions = Vec::with_capacity(batch.len());
        let mut documents = Vec::with_capacity(batch.len());
        for (index, entry) in batch.iter().enumerate() {
            if let Some(document) = &entry.document {
                positions.push(index);
                documents.push(document.clone());
            }
        }
        let mut outcome = BatchOutcome::default();
        for (chunk_start, chunk) in documents
            .chunks(self.store.max_batch().max(1))
            .enumerate()
            .map(|(number, chunk)| (number * self.store.max_batch().max(1), chunk))
        {
            let answer = self.store.put(chunk).await?;
            let at = |index: usize| positions[chunk_start + index];
            outcome.retry.extend(answer.retry.into_iter().map(at));
            outcome
                .superseded
                .extend(answer.superseded.into_iter().map(at));
            outcome
                .refused
                .extend(answer.refused.into_iter().map(|mut refusal| {
                    refusal.index = at(refusal.index);
                    refusal
                }));
        }
        Ok(outcome)
    }
}
