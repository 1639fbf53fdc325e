//! The Timestream sink against moto (`VALMETAL_TEST_MOTO_URL`) and against the fault server:
//! batching, merging, outages, throttling, rejected records and dead-lettering.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::aws_fault::harness::{
    Renamed, counter, dead_letters, emulator_url, metrics_handle, moto_records,
};
use common::aws_fault::{AwsFaultServer, Operation, Outage, Rejection, Scripted, StoredRecord};
use valmetal_actors::Value;
use valmetal_actors::clock::now_ms;
use valmetal_engine::replay::datasets::{
    MACHINE_DEVICE_ID, MACHINE_TEMPERATURE_CSV, machine_temperature,
};
use valmetal_engine::sinks::aws::AwsConfig;
use valmetal_engine::sinks::backoff::Backoff;
use valmetal_engine::sinks::batcher::DrainReport;
use valmetal_engine::sinks::dead_letter::DeadLetter;
use valmetal_engine::sinks::timeseries::TimeSeriesRecord;
use valmetal_engine::sinks::timestream::{TimestreamConfig, TimestreamSink};
use valmetal_engine::sinks::{BatcherConfig, spawn};

const HOUR_MS: i64 = 3_600_000;
const REJECTED_TOTAL: &str = "telemetry_sink_records_rejected_total";
const SUPERSEDED_TOTAL: &str = "telemetry_sink_records_superseded_total";
const RETRIED_TOTAL: &str = "telemetry_sink_records_retried_total";

// === Fixtures ===

fn timestream_config(url: String) -> TimestreamConfig {
    TimestreamConfig {
        database: "valmetal".to_owned(),
        table: "telemetry".to_owned(),
        aws: AwsConfig {
            region: "us-east-1".to_owned(),
            endpoint_url: Some(url),
        },
        magnetic_store_writes: true,
        memory_store_retention: Duration::from_secs(24 * 3600),
    }
}

async fn fault_sink(
    server: &AwsFaultServer,
    name: &'static str,
    adjust: impl FnOnce(&mut TimestreamConfig),
) -> Renamed<TimestreamSink> {
    let mut config = timestream_config(server.url());
    adjust(&mut config);
    Renamed {
        name,
        inner: TimestreamSink::connect(&config).await.unwrap(),
    }
}

/// Short backoff, so that retries take milliseconds, because real sockets need real time.
/// Batches fill up to 100 records or until shutdown, so request counts do not depend on
/// timing.
fn fast_batcher() -> BatcherConfig {
    BatcherConfig {
        max_records: 100,
        max_age: Duration::from_secs(2),
        backoff: Backoff {
            first: Duration::from_millis(5),
            max: Duration::from_millis(50),
        },
        drain_timeout: Duration::from_secs(8),
        ..BatcherConfig::default()
    }
}

/// Queues every record, then shuts the batcher down, which writes what is left.
async fn write_all(
    sink: Renamed<TimestreamSink>,
    config: BatcherConfig,
    dead_letter_dir: &Path,
    records: Vec<TimeSeriesRecord>,
) -> DrainReport {
    // The recorder must be in place before the sink counts anything.
    metrics_handle();
    let task = spawn(sink, config, DeadLetter::new(dead_letter_dir.to_owned()));
    for record in records {
        task.queue().push(record, None).await.unwrap();
    }
    task.shutdown().await
}

fn reading(device: &str, ts: i64, version: i64, weight: f64) -> TimeSeriesRecord {
    TimeSeriesRecord {
        device: Arc::from(device),
        device_type: Arc::from("feed_bin"),
        farm: Some(Arc::from("odrc")),
        ts,
        version,
        values: vec![(Arc::from("end_weight_kg"), Value::Number(weight))],
    }
}

/// Asserts that each series and time was accepted with one set of values only, so repeated
/// writes were identical rewrites.
fn assert_no_conflicting_rewrites(accepted: &[StoredRecord]) {
    let mut values: HashMap<(String, i64), &StoredRecord> = HashMap::new();
    for record in accepted {
        let key = (record.device().to_owned(), record.time);
        if let Some(first) = values.insert(key, record) {
            assert_eq!(
                first.measures,
                record.measures,
                "{} at {} was written with two different values",
                record.device(),
                record.time
            );
        }
    }
}

// === Against moto ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_nab_series_reaches_moto() {
    let moto = emulator_url("VALMETAL_TEST_MOTO_URL");
    let frames = machine_temperature(MACHINE_TEMPERATURE_CSV, MACHINE_DEVICE_ID, None).unwrap();
    assert_eq!(frames.len(), 22_695);

    // Shift the series to end now, keeping its repeated hour, so it is within retention.
    let now = now_ms();
    let shift = now - frames.iter().map(|frame| frame.ts).max().unwrap();
    let records: Vec<TimeSeriesRecord> = frames
        .iter()
        .map(|frame| TimeSeriesRecord {
            device: Arc::from(MACHINE_DEVICE_ID),
            device_type: Arc::from("machine"),
            farm: None,
            ts: frame.ts + shift,
            version: now + i64::try_from(frame.seq).unwrap(),
            values: vec![(
                Arc::from("temperature"),
                Value::Number(frame.values["temperature"].as_f64().unwrap()),
            )],
        })
        .collect();
    let mut expected: BTreeMap<i64, (i64, f64)> = BTreeMap::new();
    for record in &records {
        let Value::Number(temperature) = record.values[0].1 else {
            unreachable!()
        };
        expected.insert(record.ts, (record.version, temperature));
    }
    assert_eq!(expected.len(), 22_695 - 12, "the file repeats twelve times");

    let database = format!("valmetal_nab_{}_{now}", std::process::id());
    let mut config = timestream_config(moto.clone());
    config.database = database.clone();
    config.magnetic_store_writes = false;
    config.memory_store_retention = Duration::from_secs(90 * 24 * 3600);
    let sink = TimestreamSink::connect(&config).await.unwrap();
    sink.ensure_table().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = Renamed {
        name: "ts_nab_moto",
        inner: sink,
    };
    let report = write_all(sink, fast_batcher(), dir.path(), records).await;

    assert_eq!(report.unwritten, 0);
    assert!(dead_letters(dir.path(), "ts_nab_moto").is_empty());
    let stored = moto_records(&moto, &database).await;
    // moto keeps every record it receives. A repeated reading is merged into its first
    // reading when both fall into one request, and written again with a higher version when
    // they do not, so 22,683 to 22,695 records are stored.
    assert!(
        (22_683..=22_695).contains(&stored.len()),
        "moto stored {} records",
        stored.len()
    );
    let mut newest: BTreeMap<i64, (i64, f64)> = BTreeMap::new();
    for record in &stored {
        let time: i64 = record["Time"].as_str().unwrap().parse().unwrap();
        let version = record["Version"].as_i64().unwrap();
        let measures = record["MeasureValues"].as_array().unwrap();
        assert_eq!(measures.len(), 1);
        assert_eq!(measures[0]["Name"], "temperature");
        assert_eq!(measures[0]["Type"], "DOUBLE");
        let temperature: f64 = measures[0]["Value"].as_str().unwrap().parse().unwrap();
        let entry = newest.entry(time).or_insert((version, temperature));
        if version > entry.0 {
            *entry = (version, temperature);
        }
    }
    assert_eq!(newest.len(), 22_683);
    assert_eq!(
        newest, expected,
        "newest stored version per time differs from the file"
    );
}

// === Against the fault server ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_outage_loses_and_duplicates_nothing() {
    let server = AwsFaultServer::start().await;
    let sink = fault_sink(&server, "ts_outage", |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    metrics_handle();
    let task = spawn(sink, fast_batcher(), DeadLetter::new(dir.path().to_owned()));
    let now = now_ms();

    server.outage_for(Outage::Refuse, Duration::from_millis(600));
    for number in 0..300_i64 {
        let device = format!("feedbin-{:03}", number % 7);
        let record = reading(&device, now - 300 + number, now, number as f64);
        task.queue().push(record, None).await.unwrap();
        if number % 30 == 0 {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }
    server.outage_for(Outage::Unavailable, Duration::from_millis(300));
    for number in 300..400_i64 {
        let device = format!("feedbin-{:03}", number % 7);
        let record = reading(&device, now - 300 + number, now, number as f64);
        task.queue().push(record, None).await.unwrap();
    }
    let report = task.shutdown().await;

    assert_eq!(report.unwritten, 0);
    assert!(dead_letters(dir.path(), "ts_outage").is_empty());
    let table = server.timestream_table();
    assert_eq!(table.len(), 400, "every record is stored once");
    for record in &table {
        let number = record.time - (now - 300);
        assert_eq!(record.number("end_weight_kg"), Some(number as f64));
    }
    assert_no_conflicting_rewrites(&server.timestream_accepted());
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    assert!(counter(RETRIED_TOTAL, &[("sink", "ts_outage")]) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_throttling_is_retried_until_written() {
    let server = AwsFaultServer::start().await;
    server.script_times(
        Operation::WriteRecords,
        3,
        Scripted::timestream_throttling(),
    );
    let sink = fault_sink(&server, "ts_throttled", |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let records = (0..50)
        .map(|n| reading("feedbin-001", now - n, now, 1.0))
        .collect();

    let report = write_all(sink, fast_batcher(), dir.path(), records).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.requests(Operation::WriteRecords), 4);
    assert_eq!(server.timestream_table().len(), 50);
    assert_eq!(server.timestream_accepted().len(), 50);
    assert!(dead_letters(dir.path(), "ts_throttled").is_empty());
    assert_eq!(counter(RETRIED_TOTAL, &[("sink", "ts_throttled")]), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_server_errors_are_retried() {
    let server = AwsFaultServer::start().await;
    server.script(
        Operation::WriteRecords,
        Scripted::timestream_internal_error(),
    );
    server.script(Operation::WriteRecords, Scripted::PlainUnavailable);
    let sink = fault_sink(&server, "ts_server_errors", |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let records = (0..10)
        .map(|n| reading("feedbin-002", now - n, now, 2.0))
        .collect();

    let report = write_all(sink, fast_batcher(), dir.path(), records).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.requests(Operation::WriteRecords), 3);
    assert_eq!(server.timestream_table().len(), 10);
    assert!(dead_letters(dir.path(), "ts_server_errors").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_request_errors_dead_letter_the_batch() {
    let cases = [
        (
            "ts_validation",
            Scripted::validation("The value of a measure is invalid"),
            "invalid_request",
        ),
        (
            "ts_access_denied",
            Scripted::timestream_access_denied(),
            "access_denied",
        ),
    ];
    for (name, answer, reason) in cases {
        let server = AwsFaultServer::start().await;
        server.script(Operation::WriteRecords, answer);
        let sink = fault_sink(&server, name, |_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        let records = (0..5)
            .map(|n| reading("feedbin-003", now - n, now, 3.0))
            .collect();

        let report = write_all(sink, fast_batcher(), dir.path(), records).await;

        assert_eq!(report.unwritten, 0, "{name}");
        assert_eq!(server.requests(Operation::WriteRecords), 1, "{name}");
        assert!(server.timestream_table().is_empty(), "{name}");
        let lines = dead_letters(dir.path(), name);
        assert_eq!(lines.len(), 5, "{name}");
        assert!(
            lines.iter().all(|line| line["reason"] == reason),
            "{name}: {lines:?}"
        );
        assert_eq!(lines[0]["record"]["device"], "feedbin-003");
        assert_eq!(
            counter(REJECTED_TOTAL, &[("sink", name), ("reason", reason)]),
            5
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_corrected_value_is_rewritten_one_version_higher() {
    let server = AwsFaultServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ts = now_ms() - 1000;
    let sink = fault_sink(&server, "ts_correction_first", |_| {}).await;
    write_all(
        sink,
        fast_batcher(),
        dir.path(),
        vec![reading("feedbin-004", ts, 40, 5.0)],
    )
    .await;

    // The same device time and version with another value: a correction.
    let sink = fault_sink(&server, "ts_correction", |_| {}).await;
    let report = write_all(
        sink,
        fast_batcher(),
        dir.path(),
        vec![reading("feedbin-004", ts, 40, 6.0)],
    )
    .await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(
        server.requests(Operation::WriteRecords),
        3,
        "first write, rejection, rewrite"
    );
    let table = server.timestream_table();
    assert_eq!(table.len(), 1);
    assert_eq!(table[0].version, 41);
    assert_eq!(table[0].number("end_weight_kg"), Some(6.0));
    assert!(dead_letters(dir.path(), "ts_correction").is_empty());
    assert_eq!(counter(SUPERSEDED_TOTAL, &[("sink", "ts_correction")]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_newer_stored_version_supersedes() {
    let server = AwsFaultServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ts = now_ms() - 1000;
    let sink = fault_sink(&server, "ts_superseding", |_| {}).await;
    write_all(
        sink,
        fast_batcher(),
        dir.path(),
        vec![reading("feedbin-005", ts, 200, 5.0)],
    )
    .await;

    let sink = fault_sink(&server, "ts_superseded", |_| {}).await;
    let records = vec![
        reading("feedbin-005", ts, 2, 7.0),
        reading("feedbin-005", ts + 1, 2, 8.0),
    ];
    let report = write_all(sink, fast_batcher(), dir.path(), records).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(
        server.requests(Operation::WriteRecords),
        2,
        "the old record is not sent again"
    );
    let table = server.timestream_table();
    assert_eq!(table.len(), 2);
    assert_eq!(table[0].version, 200);
    assert_eq!(table[0].number("end_weight_kg"), Some(5.0));
    assert_eq!(table[1].number("end_weight_kg"), Some(8.0));
    assert_eq!(counter(SUPERSEDED_TOTAL, &[("sink", "ts_superseded")]), 1);
    assert!(dead_letters(dir.path(), "ts_superseded").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_rejected_too_old_goes_to_dead_letter() {
    let server = AwsFaultServer::start().await;
    server.script(
        Operation::WriteRecords,
        Scripted::RejectedRecords(vec![Rejection {
            index: 1,
            reason: "The record timestamp is outside the time range of the memory store."
                .to_owned(),
            existing_version: None,
        }]),
    );
    let sink = fault_sink(&server, "ts_rejected_old", |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let records = (0..3)
        .map(|n| reading("feedbin-006", now - 3 + n, now, n as f64))
        .collect();

    let report = write_all(sink, fast_batcher(), dir.path(), records).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.requests(Operation::WriteRecords), 1);
    let stored: Vec<i64> = server
        .timestream_table()
        .iter()
        .map(|record| record.time)
        .collect();
    assert_eq!(stored, [now - 3, now - 1]);
    let lines = dead_letters(dir.path(), "ts_rejected_old");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["reason"], "too_old");
    assert_eq!(lines[0]["record"]["ts"], now - 2);
    assert!(
        lines[0]["detail"]
            .as_str()
            .unwrap()
            .contains("memory store")
    );
    assert_eq!(
        counter(
            REJECTED_TOTAL,
            &[("sink", "ts_rejected_old"), ("reason", "too_old")]
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_other_rejections_keep_their_text() {
    let server = AwsFaultServer::start().await;
    let rejection = |index: usize, reason: &str| Rejection {
        index,
        reason: reason.to_owned(),
        existing_version: None,
    };
    server.script(
        Operation::WriteRecords,
        Scripted::RejectedRecords(vec![
            rejection(0, "Measure value exceeds the maximum size of 2048 bytes"),
            rejection(2, "Unexpected record content"),
        ]),
    );
    let sink = fault_sink(&server, "ts_rejected_other", |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let records = (0..3)
        .map(|n| reading("feedbin-007", now - 3 + n, now, 1.0))
        .collect();

    let report = write_all(sink, fast_batcher(), dir.path(), records).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.timestream_table().len(), 1);
    let lines = dead_letters(dir.path(), "ts_rejected_other");
    let reasons: BTreeMap<i64, (String, String)> = lines
        .iter()
        .map(|line| {
            let ts = line["record"]["ts"].as_i64().unwrap();
            let reason = line["reason"].as_str().unwrap().to_owned();
            (ts, (reason, line["detail"].as_str().unwrap().to_owned()))
        })
        .collect();
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[&(now - 3)].0, "limit_exceeded");
    assert!(reasons[&(now - 3)].1.contains("maximum size of 2048 bytes"));
    assert_eq!(reasons[&(now - 1)].0, "rejected");
    assert!(reasons[&(now - 1)].1.contains("Unexpected record content"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_backlog_refused_without_magnetic_writes() {
    let server = AwsFaultServer::start().await;
    let sink = fault_sink(&server, "ts_backlog_memory", |config| {
        config.magnetic_store_writes = false;
        config.memory_store_retention = Duration::from_secs(3600);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let mut records: Vec<_> = (0..5)
        .map(|n| reading("feedbin-008", now - 2 * HOUR_MS + n, now, 1.0))
        .collect();
    records.extend((0..2).map(|n| reading("feedbin-008", now - n, now, 2.0)));

    let report = write_all(sink, fast_batcher(), dir.path(), records).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(
        server.request_sizes(Operation::WriteRecords),
        [2],
        "old records are not sent"
    );
    let lines = dead_letters(dir.path(), "ts_backlog_memory");
    assert_eq!(lines.len(), 5);
    for line in &lines {
        assert_eq!(line["reason"], "too_old");
        let detail = line["detail"].as_str().unwrap();
        let ts = line["record"]["ts"].as_i64().unwrap();
        assert!(detail.contains(&format!("{ts} ms")), "{detail}");
        assert!(detail.contains("retention of 1h"), "{detail}");
    }
    assert_eq!(
        counter(
            REJECTED_TOTAL,
            &[("sink", "ts_backlog_memory"), ("reason", "too_old")]
        ),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_backlog_sent_with_magnetic_writes() {
    let server = AwsFaultServer::start().await;
    let sink = fault_sink(&server, "ts_backlog_magnetic", |config| {
        config.magnetic_store_writes = true;
        config.memory_store_retention = Duration::from_secs(3600);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let mut records: Vec<_> = (0..5)
        .map(|n| reading("feedbin-009", now - 2 * HOUR_MS + n, now, 1.0))
        .collect();
    records.extend((0..2).map(|n| reading("feedbin-009", now - n, now, 2.0)));

    let report = write_all(sink, fast_batcher(), dir.path(), records).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.timestream_table().len(), 7);
    assert!(dead_letters(dir.path(), "ts_backlog_magnetic").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_repeated_time_is_merged_in_one_request() {
    let server = AwsFaultServer::start().await;
    let sink = fault_sink(&server, "ts_merge", |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let ts = now_ms() - 1000;
    let mut first = reading("feedbin-010", ts, 10, 5.0);
    first
        .values
        .push((Arc::from("intake_kg"), Value::Number(1.5)));
    let second = reading("feedbin-010", ts, 11, 6.0);
    let stale = reading("feedbin-010", ts, 9, 4.0);

    let report = write_all(sink, fast_batcher(), dir.path(), vec![first, second, stale]).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.request_sizes(Operation::WriteRecords), [1]);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    let table = server.timestream_table();
    assert_eq!(table[0].version, 11);
    assert_eq!(
        table[0].number("end_weight_kg"),
        Some(6.0),
        "highest version wins"
    );
    assert_eq!(
        table[0].number("intake_kg"),
        Some(1.5),
        "keys of older records are kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_large_batch_splits_by_device() {
    let server = AwsFaultServer::start().await;
    let sink = fault_sink(&server, "ts_split", |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    // Interleaved: 150 records of one device and 100 of another in one batch.
    let mut records = Vec::new();
    for n in 0..150 {
        records.push(reading("feedbin-011", now - 1000 + n, now, 1.0));
        if n < 100 {
            records.push(reading("feedbin-012", now - 1000 + n, now, 2.0));
        }
    }
    let config = BatcherConfig {
        max_records: 250,
        max_age: Duration::from_millis(200),
        ..fast_batcher()
    };

    let report = write_all(sink, config, dir.path(), records).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(
        server.request_sizes(Operation::WriteRecords),
        [100, 100, 50]
    );
    assert_eq!(
        server.common_dimension_requests(),
        2,
        "the one-device requests share dimensions"
    );
    let table = server.timestream_table();
    assert_eq!(table.len(), 250);
    let record = &table[0];
    assert_eq!(record.measure_name, "telemetry");
    assert_eq!(
        record.dimensions,
        BTreeMap::from([
            ("device_id".to_owned(), "feedbin-011".to_owned()),
            ("equipment_type".to_owned(), "feed_bin".to_owned()),
            ("farm".to_owned(), "odrc".to_owned()),
        ])
    );
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestream_measure_types_follow_values() {
    let server = AwsFaultServer::start().await;
    let sink = fault_sink(&server, "ts_types", |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let mut record = reading("feedbin-013", now_ms(), 1, 2.5);
    record.farm = None;
    record
        .values
        .push((Arc::from("door_open"), Value::Bool(true)));
    record
        .values
        .push((Arc::from("diet"), Value::Text(Arc::from("lactating"))));

    write_all(sink, fast_batcher(), dir.path(), vec![record]).await;

    let table = server.timestream_table();
    let measures = &table[0].measures;
    assert_eq!(
        measures["end_weight_kg"],
        ("DOUBLE".to_owned(), "2.5".to_owned())
    );
    assert_eq!(
        measures["door_open"],
        ("BOOLEAN".to_owned(), "true".to_owned())
    );
    assert_eq!(
        measures["diet"],
        ("VARCHAR".to_owned(), "lactating".to_owned())
    );
    assert!(
        !table[0].dimensions.contains_key("farm"),
        "no farm dimension without a farm"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_server_answers_describe_endpoints() {
    let server = AwsFaultServer::start().await;
    let sdk_config =
        valmetal_engine::sinks::aws::sdk_config(&timestream_config(server.url()).aws).await;
    let client = aws_sdk_timestreamwrite::Client::new(&sdk_config);

    let output = client.describe_endpoints().send().await.unwrap();

    let endpoint = &output.endpoints()[0];
    assert_eq!(
        endpoint.address(),
        server.url().trim_start_matches("http://")
    );
    assert_eq!(endpoint.cache_period_in_minutes(), 1440);
    assert_eq!(server.requests(Operation::DescribeEndpoints), 1);
}
