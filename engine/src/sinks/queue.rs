//! The bounded queue in front of one sink, shared by its producers and its batcher.
//!
//! A record either joins the end of the queue or, for a store that coalesces, replaces the
//! queued record of the same key, keeping the older one's place and age. The journal handles
//! of every replaced record stay with the newest one, so nothing is released before it is
//! stored.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;
use valmetal_actors::retained::{Retained, hold};

use super::Sink;
use super::metrics::RecordMetrics;

/// Policy of a full queue for one more record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// The producer waits for room: ingest stops taking messages, and the broker keeps them.
    Wait,
    /// The record is dropped and counted in `telemetry_sink_records_dropped_total`.
    Drop,
}

/// Error queueing a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the sink queue is full and its overflow policy drops")]
    Full,
    #[error("the sink is shutting down")]
    Closed,
}

/// A queued record with the journal handles it keeps alive.
pub struct Envelope<R> {
    pub record: R,
    pub held: Vec<Retained>,
    pub queued_at: Instant,
    bytes: usize,
}

impl<R> Envelope<R> {
    /// Puts a record back in its envelope after a write, keeping its handles and age.
    pub(super) fn rebuild(record: R, held: Vec<Retained>, queued_at: Instant) -> Self {
        Self {
            record,
            held,
            queued_at,
            bytes: 0,
        }
    }
}

struct Pending<S: Sink> {
    /// Records of a store that keeps every record, oldest first.
    list: VecDeque<Envelope<S::Record>>,
    /// Records of a store that coalesces, by key, with their keys oldest first.
    keyed: HashMap<S::Key, Envelope<S::Record>>,
    order: VecDeque<S::Key>,
    bytes: usize,
    /// When shutdown closed the queue.
    closed: Option<Instant>,
}

impl<S: Sink> Pending<S> {
    fn len(&self) -> usize {
        self.list.len() + self.keyed.len()
    }

    fn oldest(&self) -> Option<Instant> {
        let listed = self.list.front().map(|envelope| envelope.queued_at);
        let keyed = self
            .order
            .front()
            .and_then(|key| self.keyed.get(key))
            .map(|envelope| envelope.queued_at);
        listed.into_iter().chain(keyed).min()
    }
}

/// A sink's queue.
pub struct SinkQueue<S: Sink> {
    sink: Arc<S>,
    pending: Mutex<Pending<S>>,
    /// Signalled when records leave the queue.
    room: Notify,
    /// Signalled when records arrive or the queue closes.
    arrived: Notify,
    /// Signalled once, when the queue closes.
    closing: Notify,
    capacity: usize,
    overflow: Overflow,
    /// The batcher's limits, to know when a new record completes a batch.
    limits: BatchLimits,
    metrics: RecordMetrics,
}

impl<S: Sink> SinkQueue<S> {
    pub(super) fn new(
        sink: Arc<S>,
        capacity: usize,
        overflow: Overflow,
        limits: BatchLimits,
    ) -> Self {
        Self {
            metrics: RecordMetrics::new(sink.name()),
            sink,
            pending: Mutex::new(Pending {
                list: VecDeque::new(),
                keyed: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                closed: None,
            }),
            room: Notify::new(),
            arrived: Notify::new(),
            closing: Notify::new(),
            capacity: capacity.max(1),
            overflow,
            limits,
        }
    }

    pub fn sink(&self) -> &Arc<S> {
        &self.sink
    }

    pub(super) fn metrics(&self) -> &RecordMetrics {
        &self.metrics
    }

    /// Queues `record`, waiting for room when the queue is full and the policy is `Wait`.
    ///
    /// # Errors
    ///
    /// Returns [`PushError::Full`] when the queue is full and drops, [`PushError::Closed`]
    /// once shutdown has begun.
    pub async fn push(&self, record: S::Record, held: Option<Retained>) -> Result<(), PushError> {
        let mut envelope = self.envelope(record, held);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.offer(envelope) {
                Ok(()) => return Ok(()),
                Err((returned, PushError::Full)) if self.overflow == Overflow::Wait => {
                    envelope = returned;
                    room.await;
                }
                Err((_, error)) => return Err(error),
            }
        }
    }

    /// Queues `record` without waiting; a full queue drops it whatever the policy, so callers
    /// that must not block (device actors) use a coalescing sink whose queue holds one record
    /// per key.
    ///
    /// # Errors
    ///
    /// Returns [`PushError`] when the record was not queued.
    pub fn try_push(&self, record: S::Record, held: Option<Retained>) -> Result<(), PushError> {
        let envelope = self.envelope(record, held);
        self.offer(envelope).map_err(|(_, error)| error)
    }

    fn envelope(&self, record: S::Record, held: Option<Retained>) -> Envelope<S::Record> {
        Envelope {
            bytes: self.sink.record_bytes(&record),
            record,
            held: held.into_iter().collect(),
            queued_at: Instant::now(),
        }
    }

    fn offer(&self, envelope: Envelope<S::Record>) -> Result<(), (Envelope<S::Record>, PushError)> {
        let key = self.sink.coalesce_key(&envelope.record);
        let mut pending = self.pending.lock();
        if pending.closed.is_some() {
            return Err((envelope, PushError::Closed));
        }
        if let Some(existing) = key.as_ref().and_then(|key| pending.keyed.get_mut(key)) {
            let freed = existing.bytes;
            let added = envelope.bytes;
            existing.record = envelope.record;
            existing.bytes = added;
            for handle in envelope.held {
                hold(&mut existing.held, handle);
            }
            pending.bytes = pending.bytes + added - freed;
            self.metrics.coalesced();
            return Ok(());
        }
        if pending.len() >= self.capacity {
            if self.overflow == Overflow::Drop {
                self.metrics.dropped();
            }
            return Err((envelope, PushError::Full));
        }
        let was_empty = pending.len() == 0;
        pending.bytes += envelope.bytes;
        match key {
            Some(key) => {
                pending.order.push_back(key.clone());
                pending.keyed.insert(key, envelope);
            }
            None => pending.list.push_back(envelope),
        }
        self.metrics.queued(pending.len());
        let full =
            pending.len() >= self.limits.max_records || pending.bytes >= self.limits.max_bytes;
        drop(pending);
        // The batcher sleeps until the oldest record comes of age, so only the first record,
        // which starts that wait, and a full batch need to wake it. Waking it for every record
        // cost a thread wake-up per frame.
        if was_empty || full {
            self.arrived.notify_one();
        }
        Ok(())
    }

    /// Returns whether a batch should be written now, and otherwise when the oldest record
    /// comes of age.
    pub(super) fn readiness(&self, limits: &BatchLimits) -> Readiness {
        let pending = self.pending.lock();
        let Some(oldest) = pending.oldest() else {
            return if pending.closed.is_some() {
                Readiness::Closed
            } else {
                Readiness::Empty
            };
        };
        let due = oldest + limits.max_age;
        if pending.closed.is_some()
            || pending.len() >= limits.max_records
            || pending.bytes >= limits.max_bytes
            || due <= Instant::now()
        {
            Readiness::Now
        } else {
            Readiness::At(due)
        }
    }

    /// Takes up to one batch, oldest first, skipping keys that are being written.
    pub(super) fn take(
        &self,
        limits: &BatchLimits,
        writing: &HashSet<S::Key>,
    ) -> Vec<Envelope<S::Record>> {
        let mut pending = self.pending.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < limits.max_records {
            let Some(front) = pending.list.front() else {
                break;
            };
            if !batch.is_empty() && bytes + front.bytes > limits.max_bytes {
                break;
            }
            if let Some(envelope) = pending.list.pop_front() {
                bytes += envelope.bytes;
                batch.push(envelope);
            }
        }
        let mut skipped = Vec::new();
        while batch.len() < limits.max_records {
            let Some(key) = pending.order.pop_front() else {
                break;
            };
            if writing.contains(&key) {
                skipped.push(key);
                continue;
            }
            let Some(envelope) = pending.keyed.remove(&key) else {
                continue;
            };
            if !batch.is_empty() && bytes + envelope.bytes > limits.max_bytes {
                pending.keyed.insert(key.clone(), envelope);
                pending.order.push_front(key);
                break;
            }
            bytes += envelope.bytes;
            batch.push(envelope);
        }
        for key in skipped.into_iter().rev() {
            pending.order.push_front(key);
        }
        pending.bytes -= bytes;
        self.metrics.queued(pending.len());
        drop(pending);
        if !batch.is_empty() {
            self.room.notify_waiters();
        }
        batch
    }

    /// Hands the journal handles of `envelope` to the queued record of the same key, if one
    /// is queued, and returns true; the record in hand is then stale and need not be written.
    pub(super) fn supersede(&self, envelope: &mut Envelope<S::Record>) -> bool {
        let Some(key) = self.sink.coalesce_key(&envelope.record) else {
            return false;
        };
        let mut pending = self.pending.lock();
        let Some(newer) = pending.keyed.get_mut(&key) else {
            return false;
        };
        for handle in envelope.held.drain(..) {
            hold(&mut newer.held, handle);
        }
        true
    }

    /// Refuses new records from now on; what is queued is still written.
    pub fn close(&self) {
        self.pending.lock().closed.get_or_insert_with(Instant::now);
        self.arrived.notify_one();
        self.room.notify_waiters();
        self.closing.notify_waiters();
    }

    /// Returns a future completing when the queue closes; enable it before checking
    /// [`Self::is_closed`] so that a close in between is not missed.
    pub(super) fn closing(&self) -> tokio::sync::futures::Notified<'_> {
        self.closing.notified()
    }

    /// Returns true once shutdown has begun.
    pub fn is_closed(&self) -> bool {
        self.pending.lock().closed.is_some()
    }

    /// Returns when shutdown closed the queue, or now if it is open.
    pub(super) fn closed_at(&self) -> Instant {
        self.pending.lock().closed.unwrap_or_else(Instant::now)
    }

    /// Returns the number of queued records, not counting those being written.
    pub fn len(&self) -> usize {
        self.pending.lock().len()
    }

    /// Returns true when no record is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until records arrive or the queue closes.
    pub(super) async fn arrived(&self) {
        self.arrived.notified().await;
    }
}

/// When a batch is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchLimits {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_age: std::time::Duration,
}

/// State of the queue for the batcher.
pub(super) enum Readiness {
    Now,
    At(Instant),
    Empty,
    Closed,
}
