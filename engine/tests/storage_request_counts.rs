//! Measures the AWS requests each sink sends per million frames, as the fault server counts
//! them, next to the ideal: full 100-record requests for Timestream, and one write per
//! changed device per flush interval for DynamoDB.
//!
//! The tests print their figures (run with `--nocapture`) and assert only that every record
//! arrived, because the counts of the paced runs depend on scheduling.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::aws_fault::harness::{Renamed, metrics_handle};
use common::aws_fault::{AwsFaultServer, Operation};
use parking_lot::Mutex;
use valmetal_actors::{DeviceDocument, DeviceId, Value};
use valmetal_engine::replay::datasets::{FEED_BINS_CSV, feed_bins};
use valmetal_engine::sinks::aws::AwsConfig;
use valmetal_engine::sinks::backoff::Backoff;
use valmetal_engine::sinks::dead_letter::DeadLetter;
use valmetal_engine::sinks::dynamodb::{DynamoConfig, DynamoShadowStore, DynamoWrite};
use valmetal_engine::sinks::shadows::{DocumentSource, ShadowEntry, ShadowSink};
use valmetal_engine::sinks::timeseries::TimeSeriesRecord;
use valmetal_engine::sinks::timestream::{TimestreamConfig, TimestreamSink};
use valmetal_engine::sinks::{BatcherConfig, spawn};

const FEED_BINS: usize = 100;

fn per_million(requests: usize, frames: usize) -> f64 {
    requests as f64 * 1e6 / frames as f64
}

fn aws_config(server: &AwsFaultServer) -> AwsConfig {
    AwsConfig {
        region: "us-east-1".to_owned(),
        endpoint_url: Some(server.url()),
    }
}

fn batcher(max_records: usize, max_age: Duration) -> BatcherConfig {
    BatcherConfig {
        max_records,
        max_age,
        backoff: Backoff {
            first: Duration::from_millis(5),
            max: Duration::from_millis(50),
        },
        drain_timeout: Duration::from_secs(8),
        ..BatcherConfig::default()
    }
}

/// Returns the first 10,000 ODRC feed-bin visits (about 18 hours of the barn) as records,
/// moved to end now so none is past retention. Fewer than all 27,153 keep the test short.
fn feed_bin_records() -> Vec<TimeSeriesRecord> {
    let frames = feed_bins(FEED_BINS_CSV, Some(10_000)).unwrap();
    let now = valmetal_actors::clock::now_ms();
    let shift = now - frames.iter().map(|frame| frame.ts).max().unwrap();
    frames
        .iter()
        .map(|frame| TimeSeriesRecord {
            device: Arc::from(frame.device.as_str()),
            device_type: Arc::from("feed_bin"),
            farm: Some(Arc::from("odrc")),
            ts: frame.ts + shift,
            version: now,
            values: frame
                .values
                .iter()
                .map(|(key, value)| {
                    (
                        Arc::from(key.as_str()),
                        Value::Number(value.as_f64().unwrap()),
                    )
                })
                .collect(),
        })
        .collect()
}

/// Writes `rounds` of records, sleeping `pause` after each round, and returns the
/// WriteRecords requests the server received.
async fn timestream_requests(
    name: &'static str,
    rounds: Vec<Vec<TimeSeriesRecord>>,
    pause: Duration,
    config: BatcherConfig,
) -> usize {
    let server = AwsFaultServer::start().await;
    let sink_config = TimestreamConfig {
        aws: aws_config(&server),
        ..TimestreamConfig::default()
    };
    let sink = Renamed {
        name,
        inner: TimestreamSink::connect(&sink_config).await.unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    metrics_handle();
    let task = spawn(sink, config, DeadLetter::new(dir.path().to_owned()));
    let mut frames = 0;
    for round in rounds {
        frames += round.len();
        for record in round {
            task.queue().push(record, None).await.unwrap();
        }
        tokio::time::sleep(pause).await;
    }
    let report = task.shutdown().await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.records(Operation::WriteRecords), frames, "{name}");
    server.requests(Operation::WriteRecords)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_requests_per_million_frames() {
    let records = feed_bin_records();
    let frames = records.len();

    // The visits queued at once, as after an outage or at a replay.
    let burst = timestream_requests(
        "count_ts_burst",
        vec![records.clone()],
        Duration::ZERO,
        batcher(100, Duration::from_secs(1)),
    )
    .await;

    // Live traffic: each of the 100 bins sends one frame per flush interval of 100 ms.
    let intervals = 10;
    let live_rounds: Vec<Vec<TimeSeriesRecord>> = records
        .chunks(FEED_BINS)
        .take(intervals)
        .map(<[TimeSeriesRecord]>::to_vec)
        .collect();
    let live = timestream_requests(
        "count_ts_live",
        live_rounds,
        Duration::from_millis(100),
        batcher(100, Duration::from_millis(100)),
    )
    .await;

    // Sparse traffic: 10 frames per flush interval, so the age limit flushes small batches.
    let sparse_rounds: Vec<Vec<TimeSeriesRecord>> = records
        .chunks(10)
        .take(intervals)
        .map(<[TimeSeriesRecord]>::to_vec)
        .collect();
    let sparse = timestream_requests(
        "count_ts_sparse",
        sparse_rounds,
        Duration::from_millis(100),
        batcher(100, Duration::from_millis(100)),
    )
    .await;

    println!("Timestream WriteRecords requests per million frames (ideal: frames / 100 = 10000)");
    for (case, requests, frames) in [
        ("burst, 10000 ODRC frames", burst, frames),
        (
            "live, 100 bins x 1 frame per 100 ms flush",
            live,
            intervals * FEED_BINS,
        ),
        ("sparse, 10 frames per 100 ms flush", sparse, intervals * 10),
    ] {
        println!(
            "  {case}: {requests} requests for {frames} frames = {:.0} per million (ideal {:.0})",
            per_million(requests, frames),
            per_million(frames.div_ceil(100), frames),
        );
    }
}

/// Device documents whose version grows with every frame, as the device actors' would.
#[derive(Default)]
struct Documents(Mutex<HashMap<DeviceId, DeviceDocument>>);

impl Documents {
    fn apply_frame(&self, device: &DeviceId, ts: i64) {
        let mut documents = self.0.lock();
        let document = documents
            .entry(device.clone())
            .or_insert_with(|| DeviceDocument {
                device_id: device.clone(),
                device_type: "feed_bin".to_owned(),
                farm: Some("odrc".to_owned()),
                version: 0,
                reported: Default::default(),
                desired: Default::default(),
                newest_ts: None,
                last_seen: None,
                seq_highest: None,
                seq_bits: None,
                alarms: Vec::new(),
                taken_at: 0,
                usage: Default::default(),
            });
        document.version += 1;
        document.newest_ts = Some(ts);
    }
}

impl DocumentSource for Documents {
    async fn document(&self, device: &DeviceId) -> Option<DeviceDocument> {
        self.0.lock().get(device).cloned()
    }
}

/// Sends `frames_per_interval` frames of each of `devices` devices per flush interval, for
/// `intervals` intervals, and returns the requests of `operation` and the items written.
async fn dynamodb_requests(
    name: &'static str,
    write: DynamoWrite,
    devices: usize,
    frames_per_interval: usize,
    intervals: usize,
) -> (usize, usize) {
    let server = AwsFaultServer::start().await;
    let config = DynamoConfig {
        table: "devices".to_owned(),
        aws: aws_config(&server),
        write,
    };
    let store = DynamoShadowStore::connect(&config).await;
    let source = Arc::new(Documents::default());
    let sink = Renamed {
        name,
        inner: ShadowSink::new(store, Arc::clone(&source)),
    };
    let interval = Duration::from_millis(100);
    let dir = tempfile::tempdir().unwrap();
    metrics_handle();
    let task = spawn(
        sink,
        batcher(10_000, interval),
        DeadLetter::new(dir.path().to_owned()),
    );
    let ids: Vec<DeviceId> = (1..=devices)
        .map(|n| DeviceId::parse(&format!("feedbin-{n:03}")).unwrap())
        .collect();
    for round in 0..intervals {
        for frame in 0..frames_per_interval {
            for device in &ids {
                source.apply_frame(device, (round * frames_per_interval + frame) as i64);
                task.queue()
                    .push(ShadowEntry::mark(device.clone()), None)
                    .await
                    .unwrap();
            }
        }
        tokio::time::sleep(interval).await;
    }
    let report = task.shutdown().await;

    assert_eq!(report.unwritten, 0);
    let stored = server.dynamodb_items();
    assert_eq!(stored.len(), devices, "{name}");
    let expected_version = (frames_per_interval * intervals) as u64;
    assert!(
        stored.values().all(|item| item.version == expected_version),
        "{name}"
    );
    let operation = match write {
        DynamoWrite::Conditional => Operation::PutItem,
        DynamoWrite::Batch => Operation::BatchWriteItem,
    };
    (server.requests(operation), server.dynamodb_writes().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_requests_per_million_frames() {
    let (devices, frames_per_interval, intervals) = (FEED_BINS, 10, 10);
    let frames = devices * frames_per_interval * intervals;
    let ideal_items = devices * intervals;

    let (conditional, conditional_items) = dynamodb_requests(
        "count_ddb_conditional",
        DynamoWrite::Conditional,
        devices,
        frames_per_interval,
        intervals,
    )
    .await;
    let (batch, batch_items) = dynamodb_requests(
        "count_ddb_batch",
        DynamoWrite::Batch,
        devices,
        frames_per_interval,
        intervals,
    )
    .await;

    println!(
        "DynamoDB requests per million frames: {devices} devices x {frames_per_interval} frames per 100 ms flush x {intervals} flushes = {frames} frames (ideal: {ideal_items} item writes)"
    );
    println!(
        "  conditional: {conditional} PutItem for {conditional_items} item writes = {:.0} per million (ideal {:.0})",
        per_million(conditional, frames),
        per_million(ideal_items, frames),
    );
    println!(
        "  batch: {batch} BatchWriteItem for {batch_items} item writes = {:.0} per million (ideal {:.0})",
        per_million(batch, frames),
        per_million(intervals * devices.div_ceil(25), frames),
    );
}
