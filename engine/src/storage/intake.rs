//! The one path every accepted telemetry message takes, from the broker or from the journal
//! at start: journal, time-series queues, then the device's actor.

use std::sync::Arc;

use tracing::{error, warn};
use valmetal_actors::retained::Retained;
use valmetal_actors::{DeviceId, DeviceRegistry, Frame, FrameBatch};

use crate::ingest::payload;
use crate::journal::{Backlog, Journal, JournalError};
use crate::sinks::SinkQueue;
use crate::sinks::timeseries::TimeSeriesRecord;
use crate::sinks::timestream::TimestreamSink;
use crate::store::telemetry::SqlTelemetry;

/// The queues of the configured time-series stores.
#[derive(Clone, Default)]
pub struct TimeSeriesQueues {
    pub sql: Option<Arc<SinkQueue<SqlTelemetry>>>,
    pub timestream: Option<Arc<SinkQueue<TimestreamSink>>>,
}

impl TimeSeriesQueues {
    /// Queues `record` to every store, waiting for room where the overflow policy is `Wait`.
    async fn push(&self, record: TimeSeriesRecord, retained: Option<&Retained>) {
        if let Some(queue) = &self.timestream {
            Self::push_one(queue, record.clone(), retained).await;
        }
        if let Some(queue) = &self.sql {
            Self::push_one(queue, record, retained).await;
        }
    }

    async fn push_one<S>(queue: &SinkQueue<S>, record: S::Record, retained: Option<&Retained>)
    where
        S: crate::sinks::Sink,
    {
        if let Err(error) = queue.push(record, retained.cloned()).await {
            warn!(sink = queue.sink().name(), %error, "Frame not queued for a store");
        }
    }
}

/// Takes accepted messages into the engine.
#[derive(Clone)]
pub struct Intake {
    registry: Arc<DeviceRegistry>,
    journal: Option<Arc<Journal>>,
    timeseries: TimeSeriesQueues,
}

impl Intake {
    pub fn new(
        registry: Arc<DeviceRegistry>,
        journal: Option<Arc<Journal>>,
        timeseries: TimeSeriesQueues,
    ) -> Self {
        Self {
            registry,
            journal,
            timeseries,
        }
    }

    /// Appends a message to the journal, if there is one, and returns the handle that keeps
    /// it there until its effects are stored.
    ///
    /// # Errors
    ///
    /// Returns [`JournalError`] when the append fails; the message must not be acknowledged.
    pub fn journal(
        &self,
        device: &DeviceId,
        received_at: i64,
        payload: &[u8],
    ) -> Result<Option<Retained>, JournalError> {
        self.journal
            .as_ref()
            .map(|journal| journal.append(device.as_str(), received_at, payload))
            .transpose()
    }

    /// Queues the frames of one message to the time-series stores and hands them to the
    /// device's actor.
    pub async fn accept(
        &self,
        device: &DeviceId,
        frames: Vec<Frame>,
        received_at: i64,
        retained: Option<Retained>,
    ) {
        let (device_type, farm) = self.registry.describe(device.as_str());
        let name: Arc<str> = Arc::from(device.as_str());
        for frame in &frames {
            let record =
                TimeSeriesRecord::of_frame(&name, &device_type, farm.as_ref(), frame, received_at);
            self.timeseries.push(record, retained.as_ref()).await;
        }
        self.registry
            .deliver(
                device,
                FrameBatch {
                    frames,
                    received_at,
                    retained,
                },
            )
            .await;
    }

    /// Feeds the messages an earlier run journaled through [`Self::accept`] again, returning
    /// how many were replayed.
    ///
    /// # Errors
    ///
    /// Returns [`JournalError`] when a segment cannot be read.
    pub async fn replay(
        &self,
        backlog: Backlog,
        max_payload_bytes: usize,
    ) -> Result<u64, JournalError> {
        backlog
            .replay(|entry, retained| async move {
                let Ok(device) = DeviceId::parse(&entry.device) else {
                    error!(device.id = %entry.device, "Journaled message names an invalid device; skipped");
                    return;
                };
                match payload::decode(&entry.payload, max_payload_bytes, entry.received_at) {
                    Ok(frames) => {
                        self.accept(&device, frames, entry.received_at, Some(retained))
                            .await;
                    }
                    Err(error) => {
                        warn!(device.id = %device, %error, "Journaled message no longer decodes; skipped");
                    }
                }
            })
            .await
    }
}
