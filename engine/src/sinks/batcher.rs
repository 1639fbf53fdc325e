//! The task that drains one sink's queue: it writes batches, several at a time, retries what
//! failed, dead-letters what the store refuses for good, and drains the queue on shutdown.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{info, warn};
use valmetal_actors::retained::Retained;

use super::backoff::Backoff;
use super::dead_letter::DeadLetter;
use super::queue::{BatchLimits, Envelope, Readiness};
use super::{BatchOutcome, ErrorClass, Overflow, Sink, SinkError, SinkQueue, metrics};

/// Settings of a sink's queue: flushing, bounds and retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatcherConfig {
    /// Records per batch at most; the sink's own request limit may split a batch further.
    pub max_records: usize,
    /// Bytes per batch at most, as the sink estimates them.
    pub max_bytes: usize,
    /// Maximum time a record waits for its batch to fill, e.g. `1s`.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Records queued in memory at most, besides those being written.
    pub capacity: usize,
    /// Policy of a full queue for one more record.
    pub overflow: Overflow,
    /// Batches written at once.
    pub max_in_flight: usize,
    pub backoff: Backoff,
    /// How long shutdown keeps writing and retrying before it stops, e.g. `10s`. Records
    /// still unwritten then stay in the journal for the next start, or, without a journal,
    /// go to the dead-letter file.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self {
            max_records: 100,
            max_bytes: 1024 * 1024,
            max_age: Duration::from_secs(1),
            capacity: 100_000,
            overflow: Overflow::Wait,
            max_in_flight: 4,
            backoff: Backoff::default(),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl BatcherConfig {
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_records: self.max_records.max(1),
            max_bytes: self.max_bytes.max(1),
            max_age: self.max_age,
        }
    }
}

/// Records that shutdown left unwritten.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Records still unwritten when the drain timed out.
    pub unwritten: usize,
    /// Of those, records that no journal holds, written to the dead-letter file instead.
    pub dead_lettered: usize,
}

/// A running sink: its queue for producers and the task writing from it.
pub struct SinkTask<S: Sink> {
    queue: Arc<SinkQueue<S>>,
    task: JoinHandle<DrainReport>,
}

impl<S: Sink> SinkTask<S> {
    pub fn queue(&self) -> &Arc<SinkQueue<S>> {
        &self.queue
    }

    /// Closes the queue, writes the queued records within the drain timeout, and reports what
    /// was left.
    pub async fn shutdown(self) -> DrainReport {
        self.queue.close();
        self.task.await.unwrap_or_default()
    }
}

/// Starts the batcher of `sink`.
pub fn spawn<S: Sink>(sink: S, config: BatcherConfig, dead_letter: DeadLetter) -> SinkTask<S> {
    let queue = Arc::new(SinkQueue::new(
        Arc::new(sink),
        config.capacity,
        config.overflow,
        config.limits(),
    ));
    let batcher = Batcher {
        queue: Arc::clone(&queue),
        config: Arc::new(config),
        dead_letter,
    };
    SinkTask {
        queue,
        task: tokio::spawn(batcher.run()),
    }
}

struct Batcher<S: Sink> {
    queue: Arc<SinkQueue<S>>,
    config: Arc<BatcherConfig>,
    dead_letter: DeadLetter,
}

/// Result of writing one batch.
struct BatchDone<K> {
    keys: Vec<K>,
    report: DrainReport,
}

impl<S: Sink> Batcher<S> {
    async fn run(self) -> DrainReport {
        let limits = self.config.limits();
        let mut writing: HashSet<S::Key> = HashSet::new();
        let mut in_flight = JoinSet::new();
        let mut report = DrainReport::default();
        let mut deadline = None;
        loop {
            let readiness = self.fill(&limits, &mut writing, &mut in_flight, deadline);
            if matches!(readiness, Readiness::Closed) && in_flight.is_empty() {
                break;
            }
            if deadline.is_none() && matches!(readiness, Readiness::Closed | Readiness::Now) {
                deadline = self.drain_deadline();
            }
            let wake = match readiness {
                Readiness::At(at) => Some(at),
                _ => None,
            };
            tokio::select! {
                Some(done) = in_flight.join_next() => {
                    if let Ok(done) = done {
                        Self::finish(&mut writing, &mut report, done);
                    }
                }
                () = self.queue.arrived() => {}
                () = sleep_until_some(wake) => {}
            }
        }
        if report.unwritten > 0 {
            warn!(
                sink = self.queue.sink().name(),
                unwritten = report.unwritten,
                dead_lettered = report.dead_lettered,
                "Sink stopped with records unwritten; journaled ones are written at the next start"
            );
        }
        info!(sink = self.queue.sink().name(), "Sink stopped");
        report
    }

    /// Returns the drain deadline once the queue is closed.
    fn drain_deadline(&self) -> Option<Instant> {
        self.queue
            .is_closed()
            .then(|| Instant::now() + self.config.drain_timeout)
    }

    /// Starts as many batches as the queue's state and the in-flight limit allow.
    fn fill(
        &self,
        limits: &BatchLimits,
        writing: &mut HashSet<S::Key>,
        in_flight: &mut JoinSet<BatchDone<S::Key>>,
        deadline: Option<Instant>,
    ) -> Readiness {
        loop {
            let readiness = self.queue.readiness(limits);
            if !matches!(readiness, Readiness::Now) || in_flight.len() >= self.config.max_in_flight
            {
                return readiness;
            }
            let batch = self.queue.take(limits, writing);
            if batch.is_empty() {
                return Readiness::At(Instant::now() + limits.max_age);
            }
            let sink = self.queue.sink();
            let keys: Vec<S::Key> = batch
                .iter()
                .filter_map(|envelope| sink.coalesce_key(&envelope.record))
                .collect();
            writing.extend(keys.iter().cloned());
            let job = BatchJob {
                queue: Arc::clone(&self.queue),
                config: Arc::clone(&self.config),
                dead_letter: self.dead_letter.clone(),
                deadline,
            };
            in_flight.spawn(async move {
                let report = job.write(batch).await;
                BatchDone { keys, report }
            });
        }
    }

    fn finish(writing: &mut HashSet<S::Key>, report: &mut DrainReport, done: BatchDone<S::Key>) {
        for key in &done.keys {
            writing.remove(key);
        }
        report.unwritten += done.report.unwritten;
        report.dead_lettered += done.report.dead_lettered;
    }
}

/// One batch being written until every record is stored, refused, superseded, or left at a
/// shutdown deadline.
struct BatchJob<S: Sink> {
    queue: Arc<SinkQueue<S>>,
    config: Arc<BatcherConfig>,
    dead_letter: DeadLetter,
    deadline: Option<Instant>,
}

impl<S: Sink> BatchJob<S> {
    async fn write(self, mut batch: Vec<Envelope<S::Record>>) -> DrainReport {
        let sink = Arc::clone(self.queue.sink());
        let name = sink.name();
        let mut attempt = 0;
        loop {
            batch.retain_mut(|envelope| !self.queue.supersede(envelope));
            if batch.is_empty() {
                return DrainReport::default();
            }
            let started = Instant::now();
            let mut records: Vec<S::Record> = Vec::with_capacity(batch.len());
            let mut held = Vec::with_capacity(batch.len());
            for envelope in batch.drain(..) {
                records.push(envelope.record);
                held.push((envelope.held, envelope.queued_at));
            }
            let result = tokio::select! {
                result = sink.write(&mut records) => result,
                () = self.until_drain_deadline() => Err(SinkError::retriable(
                    "drain_timeout",
                    "the drain timeout passed during the write",
                )),
            };
            let mut envelopes = records
                .into_iter()
                .zip(held)
                .map(|(record, (held, queued_at))| Envelope::rebuild(record, held, queued_at));
            batch = match result {
                Ok(outcome) => {
                    let label = if outcome.retry.is_empty() && outcome.refused.is_empty() {
                        "ok"
                    } else {
                        "partial"
                    };
                    metrics::request(name, label, started.elapsed());
                    self.settle(&mut envelopes.by_ref().collect(), outcome)
                        .await
                }
                Err(error) => {
                    metrics::request(name, error.reason, started.elapsed());
                    let all: Vec<_> = envelopes.collect();
                    match error.class {
                        ErrorClass::Retriable => {
                            warn!(sink = name, records = all.len(), attempt, %error, "Sink write failed; retrying");
                            all
                        }
                        ErrorClass::Permanent => {
                            self.refuse_all(all, &error).await;
                            Vec::new()
                        }
                    }
                }
            };
            if batch.is_empty() {
                return DrainReport::default();
            }
            metrics::retried(name, batch.len());
            let wait = self.config.backoff.wait(attempt);
            attempt = attempt.saturating_add(1);
            if self
                .deadline_or_closed()
                .is_some_and(|deadline| Instant::now() + wait > deadline)
            {
                return self.leave(batch).await;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Returns the drain deadline of this batch: the one set when it started, or one set now
    /// if the queue closed while it was being retried.
    fn deadline_or_closed(&self) -> Option<Instant> {
        self.deadline.or_else(|| {
            self.queue
                .is_closed()
                .then(|| self.queue.closed_at() + self.config.drain_timeout)
        })
    }

    /// Waits until the drain deadline, which exists only once the queue closes.
    async fn until_drain_deadline(&self) {
        loop {
            let closing = self.queue.closing();
            tokio::pin!(closing);
            closing.as_mut().enable();
            if let Some(deadline) = self.deadline_or_closed() {
                tokio::time::sleep_until(deadline).await;
                return;
            }
            closing.await;
        }
    }

    /// Applies a store's reply: counts what was written, dead-letters refusals, drops
    /// superseded records, and returns the records to send again.
    async fn settle(
        &self,
        envelopes: &mut Vec<Envelope<S::Record>>,
        outcome: BatchOutcome,
    ) -> Vec<Envelope<S::Record>> {
        let name = self.queue.sink().name();
        let total = envelopes.len();
        let mut slots: Vec<Option<Envelope<S::Record>>> = envelopes.drain(..).map(Some).collect();
        let mut retry = Vec::with_capacity(outcome.retry.len());
        for index in outcome.retry {
            if let Some(envelope) = slots.get_mut(index).and_then(Option::take) {
                retry.push(envelope);
            }
        }
        let mut refused = Vec::with_capacity(outcome.refused.len());
        for refusal in outcome.refused {
            if let Some(envelope) = slots.get_mut(refusal.index).and_then(Option::take) {
                metrics::rejected(name, refusal.reason, 1);
                refused.push((envelope, refusal.reason, refusal.detail));
            }
        }
        let mut superseded = 0;
        for index in outcome.superseded {
            if slots.get_mut(index).and_then(Option::take).is_some() {
                superseded += 1;
            }
        }
        if superseded > 0 {
            metrics::superseded(name, superseded);
        }
        let written: Vec<_> = slots.into_iter().flatten().collect();
        self.queue
            .metrics()
            .sent(written.iter().map(|envelope| envelope.queued_at.elapsed()));
        debug_assert!(written.len() + retry.len() + refused.len() + superseded <= total);
        if !refused.is_empty() {
            self.dead_letter.write(name, refused).await;
        }
        retry
    }

    async fn refuse_all(&self, envelopes: Vec<Envelope<S::Record>>, error: &SinkError) {
        let name = self.queue.sink().name();
        warn!(sink = name, records = envelopes.len(), %error, "Sink rejected a batch permanently; its records go to the dead-letter file");
        metrics::rejected(name, error.reason, envelopes.len());
        let refused = envelopes
            .into_iter()
            .map(|envelope| (envelope, error.reason, error.message.clone()))
            .collect();
        self.dead_letter.write(name, refused).await;
    }

    /// Gives up on `batch` at the drain deadline: journaled records stay in the journal for
    /// the next start; the others go to the dead-letter file.
    async fn leave(&self, batch: Vec<Envelope<S::Record>>) -> DrainReport {
        let name = self.queue.sink().name();
        let unwritten = batch.len();
        let (journaled, loose): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|envelope| !envelope.held.is_empty());
        let dead_lettered = loose.len();
        if dead_lettered > 0 {
            let refused = loose
                .into_iter()
                .map(|envelope| {
                    (
                        envelope,
                        "unwritten_at_shutdown",
                        "the store did not accept the record before the drain timeout".to_owned(),
                    )
                })
                .collect();
            self.dead_letter.write(name, refused).await;
        }
        for envelope in &journaled {
            envelope.held.iter().for_each(Retained::keep);
        }
        DrainReport {
            unwritten,
            dead_lettered,
        }
    }
}

async fn sleep_until_some(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
