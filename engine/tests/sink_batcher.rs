//! The shared batcher, driven with a scripted in-process store under paused time: when it
//! flushes, how it coalesces, retries, dead-letters and drains, and that it releases journal
//! handles only once their records are settled.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use valmetal_actors::retained::{Keep, Retained};
use valmetal_engine::sinks::backoff::Backoff;
use valmetal_engine::sinks::dead_letter::DeadLetter;
use valmetal_engine::sinks::{
    BatchOutcome, BatcherConfig, Overflow, PushError, Refusal, Sink, SinkError, spawn,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Reading {
    device: &'static str,
    value: u32,
}

/// What the scripted store answers to its next requests; an empty script means success.
enum Answer {
    Fail(SinkError),
    Outcome(BatchOutcome),
}

#[derive(Default)]
struct Store {
    script: Mutex<VecDeque<Answer>>,
    /// Every batch the store accepted, in order.
    written: Mutex<Vec<Vec<Reading>>>,
    requests: AtomicUsize,
    coalesce: bool,
}

impl Store {
    fn written(&self) -> Vec<Reading> {
        self.written.lock().iter().flatten().cloned().collect()
    }
}

struct ScriptedSink(Arc<Store>);

impl Sink for ScriptedSink {
    type Record = Reading;
    type Key = &'static str;

    fn name(&self) -> &'static str {
        "scripted"
    }

    fn record_bytes(&self, _record: &Reading) -> usize {
        10
    }

    fn coalesce_key(&self, record: &Reading) -> Option<&'static str> {
        self.0.coalesce.then_some(record.device)
    }

    async fn write(&self, batch: &mut [Reading]) -> Result<BatchOutcome, SinkError> {
        self.0.requests.fetch_add(1, Ordering::SeqCst);
        let answer = self.0.script.lock().pop_front();
        match answer {
            Some(Answer::Fail(error)) => Err(error),
            Some(Answer::Outcome(outcome)) => {
                let settled: Vec<usize> = outcome
                    .retry
                    .iter()
                    .chain(&outcome.superseded)
                    .copied()
                    .chain(outcome.refused.iter().map(|refusal| refusal.index))
                    .collect();
                let written = batch
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| !settled.contains(index))
                    .map(|(_, record)| record.clone())
                    .collect();
                self.0.written.lock().push(written);
                Ok(outcome)
            }
            None => {
                self.0.written.lock().push(batch.to_vec());
                Ok(BatchOutcome::default())
            }
        }
    }
}

/// A journal segment stand-in that counts how often it is released or kept.
struct Segment {
    kept: std::sync::atomic::AtomicBool,
    released: Arc<AtomicUsize>,
}

impl Segment {
    fn counted_in(released: &Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new(Self {
            kept: std::sync::atomic::AtomicBool::new(false),
            released: Arc::clone(released),
        })
    }
}

impl Keep for Segment {
    fn keep(&self) {
        self.kept.store(true, Ordering::SeqCst);
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

fn config() -> BatcherConfig {
    BatcherConfig {
        max_records: 10,
        max_bytes: 1_000,
        max_age: Duration::from_secs(1),
        capacity: 100,
        overflow: Overflow::Wait,
        max_in_flight: 1,
        backoff: Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
        },
        drain_timeout: Duration::from_secs(5),
    }
}

fn reading(device: &'static str, value: u32) -> Reading {
    Reading { device, value }
}

fn retriable() -> Answer {
    Answer::Fail(SinkError::retriable("throttled", "slow down"))
}

fn dead_letters(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("scripted.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_is_written_at_once_and_a_partial_one_when_it_ages() {
    let store = Arc::new(Store::default());
    let dir = tempfile::tempdir().unwrap();
    let task = spawn(
        ScriptedSink(Arc::clone(&store)),
        config(),
        DeadLetter::new(dir.path().into()),
    );
    for value in 0..13 {
        task.queue()
            .push(reading("bin", value), None)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(store.written.lock().len(), 1, "ten records fill a batch");
    assert_eq!(store.written.lock()[0].len(), 10);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.written.lock().len(),
        1,
        "three records wait for their age"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        store.written(),
        (0..13)
            .map(|value| reading("bin", value))
            .collect::<Vec<_>>()
    );
    assert_eq!(task.shutdown().await.unwritten, 0);
}

#[tokio::test(start_paused = true)]
async fn the_byte_limit_splits_batches() {
    let store = Arc::new(Store::default());
    let dir = tempfile::tempdir().unwrap();
    let limited = BatcherConfig {
        max_bytes: 35,
        ..config()
    };
    let task = spawn(
        ScriptedSink(Arc::clone(&store)),
        limited,
        DeadLetter::new(dir.path().into()),
    );
    for value in 0..7 {
        task.queue()
            .push(reading("bin", value), None)
            .await
            .unwrap();
    }
    task.shutdown().await;
    let sizes: Vec<usize> = store.written.lock().iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_coalescing_queue_writes_the_newest_record_per_key_once() {
    let store = Arc::new(Store {
        coalesce: true,
        ..Store::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let task = spawn(
        ScriptedSink(Arc::clone(&store)),
        config(),
        DeadLetter::new(dir.path().into()),
    );
    let released = Arc::new(AtomicUsize::new(0));
    for value in 0..50 {
        let segment = Segment::counted_in(&released);
        let device = if value % 2 == 0 { "even" } else { "odd" };
        task.queue()
            .try_push(reading(device, value), Some(Retained::new(segment)))
            .unwrap();
    }
    assert_eq!(task.queue().len(), 2);
    assert_eq!(
        released.load(Ordering::SeqCst),
        0,
        "replaced records keep their segments"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let mut written = store.written();
    written.sort_by_key(|record| record.value);
    assert_eq!(written, [reading("even", 48), reading("odd", 49)]);
    assert_eq!(store.requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        released.load(Ordering::SeqCst),
        50,
        "every segment is released once written"
    );
    task.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn retriable_failures_are_retried_with_backoff_until_written() {
    let store = Arc::new(Store::default());
    store
        .script
        .lock()
        .extend([retriable(), retriable(), retriable()]);
    let dir = tempfile::tempdir().unwrap();
    let task = spawn(
        ScriptedSink(Arc::clone(&store)),
        config(),
        DeadLetter::new(dir.path().into()),
    );
    for value in 0..10 {
        task.queue()
            .push(reading("bin", value), None)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(store.requests.load(Ordering::SeqCst), 4);
    assert_eq!(
        store.written().len(),
        10,
        "written once, after three failures"
    );
    assert!(dead_letters(dir.path()).is_empty());
    task.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_partial_answer_retries_some_refuses_some_and_drops_superseded_ones() {
    let store = Arc::new(Store::default());
    store.script.lock().push_back(Answer::Outcome(BatchOutcome {
        retry: vec![1, 3],
        refused: vec![Refusal {
            index: 2,
            reason: "too_old",
            detail: "older than the retention".into(),
        }],
        superseded: vec![4],
    }));
    let dir = tempfile::tempdir().unwrap();
    let task = spawn(
        ScriptedSink(Arc::clone(&store)),
        config(),
        DeadLetter::new(dir.path().into()),
    );
    for value in 0..5 {
        task.queue()
            .push(reading("bin", value), None)
            .await
            .unwrap();
    }
    task.shutdown().await;
    let values: Vec<u32> = store.written().iter().map(|record| record.value).collect();
    assert_eq!(
        values,
        [0, 1, 3],
        "the retried records follow in a second request"
    );
    let letters = dead_letters(dir.path());
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["reason"], "too_old");
    assert_eq!(letters[0]["detail"], "older than the retention");
    assert_eq!(letters[0]["record"]["value"], 2);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_sends_the_batch_to_the_dead_letter_file() {
    let store = Arc::new(Store::default());
    store
        .script
        .lock()
        .push_back(Answer::Fail(SinkError::permanent(
            "validation",
            "table missing",
        )));
    let dir = tempfile::tempdir().unwrap();
    let task = spawn(
        ScriptedSink(Arc::clone(&store)),
        config(),
        DeadLetter::new(dir.path().into()),
    );
    for value in 0..3 {
        task.queue()
            .push(reading("bin", value), None)
            .await
            .unwrap();
    }
    task.shutdown().await;
    assert_eq!(store.requests.load(Ordering::SeqCst), 1, "never retried");
    let letters = dead_letters(dir.path());
    assert_eq!(letters.len(), 3);
    assert!(
        letters
            .iter()
            .all(|letter| letter["reason"] == "validation")
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_makes_producers_wait_or_drops_as_configured() {
    let store = Arc::new(Store::default());
    store.script.lock().extend((0..20).map(|_| retriable()));
    let dir = tempfile::tempdir().unwrap();
    let small = BatcherConfig {
        capacity: 5,
        max_records: 5,
        ..config()
    };
    let waiting = spawn(
        ScriptedSink(Arc::clone(&store)),
        small.clone(),
        DeadLetter::new(dir.path().into()),
    );
    for value in 0..10 {
        waiting
            .queue()
            .push(reading("bin", value), None)
            .await
            .unwrap();
    }
    let blocked = tokio::time::timeout(
        Duration::from_secs(1),
        waiting.queue().push(reading("bin", 10), None),
    )
    .await;
    assert!(
        blocked.is_err(),
        "the eleventh record waits: five in flight, five queued"
    );
    assert_eq!(
        waiting.queue().try_push(reading("bin", 11), None),
        Err(PushError::Full)
    );

    let dropping = spawn(
        ScriptedSink(Arc::new(Store::default())),
        BatcherConfig {
            overflow: Overflow::Drop,
            max_age: Duration::from_secs(60),
            max_records: 100,
            ..small
        },
        DeadLetter::new(dir.path().into()),
    );
    for value in 0..5 {
        dropping
            .queue()
            .push(reading("bin", value), None)
            .await
            .unwrap();
    }
    assert_eq!(
        dropping.queue().push(reading("bin", 5), None).await,
        Err(PushError::Full)
    );
    dropping.shutdown().await;
    store.script.lock().clear();
    waiting.shutdown().await;
    assert_eq!(store.written().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn shutdown_writes_what_is_queued_and_keeps_the_journal_of_what_it_cannot() {
    let store = Arc::new(Store::default());
    let dir = tempfile::tempdir().unwrap();
    let long_wait = BatcherConfig {
        max_age: Duration::from_secs(3600),
        max_records: 1000,
        ..config()
    };
    let task = spawn(
        ScriptedSink(Arc::clone(&store)),
        long_wait.clone(),
        DeadLetter::new(dir.path().into()),
    );
    for value in 0..100 {
        task.queue()
            .push(reading("bin", value), None)
            .await
            .unwrap();
    }
    assert!(store.written().is_empty());
    let report = task.shutdown().await;
    assert_eq!(report.unwritten, 0);
    assert_eq!(
        store.written().len(),
        100,
        "the drain writes what waited for its age"
    );

    let down = Arc::new(Store::default());
    down.script.lock().extend((0..1000).map(|_| retriable()));
    let task = spawn(
        ScriptedSink(Arc::clone(&down)),
        long_wait,
        DeadLetter::new(dir.path().into()),
    );
    let released = Arc::new(AtomicUsize::new(0));
    let segment = Segment::counted_in(&released);
    task.queue()
        .push(reading("bin", 1), Some(Retained::new(Arc::clone(&segment))))
        .await
        .unwrap();
    task.queue().push(reading("bin", 2), None).await.unwrap();
    let report = task.shutdown().await;
    assert_eq!(report.unwritten, 2);
    assert_eq!(
        report.dead_lettered, 1,
        "the record no journal holds is dead-lettered"
    );
    assert!(
        segment.kept.load(Ordering::SeqCst),
        "the journaled record's segment is kept"
    );
    let letters = dead_letters(dir.path());
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["reason"], "unwritten_at_shutdown");
    assert_eq!(letters[0]["record"]["value"], 2);
}
