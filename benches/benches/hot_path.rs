//! Per-frame costs on the engine's hot path, on real frames of the bundled recordings: payload
//! decode, shadow merge, rule evaluation, update serialization and fan-out to dashboard
//! clients, and the batch building of each sink. Run with `cargo bench -p valmetal-benches`.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use valmetal_actors::rules::RuleEvaluator;
use valmetal_actors::{DeviceDocument, DeviceId, Frame, FrameOutcome, Shadow, ShadowChange};
use valmetal_engine::ingest::payload;
use valmetal_engine::replay::datasets;
use valmetal_engine::sinks::Sink;
use valmetal_engine::sinks::dynamodb::items;
use valmetal_engine::sinks::shadows::ShadowStore;
use valmetal_engine::sinks::timeseries::TimeSeriesRecord;
use valmetal_engine::sinks::timestream::records;
use valmetal_engine::store::Database;
use valmetal_engine::store::shadows::SqlShadowStore;
use valmetal_engine::store::telemetry::SqlTelemetry;
use valmetal_ws_gateway::Hub;
use valmetal_ws_gateway::client_queue::Outgoing;
use valmetal_ws_gateway::protocol::{DeviceUpdate, ServerMessage};

/// Engine clock used for the future-time check: any time after the data.
const NOW_MS: i64 = 1_800_000_000_000;
/// Frames per measured iteration.
const FRAMES: usize = 1000;

fn feed_bin_payloads() -> Vec<Vec<u8>> {
    datasets::feed_bins(datasets::FEED_BINS_CSV, Some(FRAMES))
        .expect("bundled data parses")
        .iter()
        .map(|frame| frame.payload())
        .collect()
}

fn machine_payloads() -> Vec<Vec<u8>> {
    datasets::machine_temperature(
        datasets::MACHINE_TEMPERATURE_CSV,
        datasets::MACHINE_DEVICE_ID,
        Some(FRAMES),
    )
    .expect("bundled data parses")
    .iter()
    .map(|frame| frame.payload())
    .collect()
}

fn decoded(payloads: &[Vec<u8>]) -> Vec<Frame> {
    payloads
        .iter()
        .map(|bytes| {
            payload::decode(bytes, 256 * 1024, NOW_MS)
                .expect("valid frame")
                .remove(0)
        })
        .collect()
}

fn decode(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("payload_decode");
    for (profile, payloads) in [
        ("feed_bin", feed_bin_payloads()),
        ("machine", machine_payloads()),
    ] {
        group.throughput(Throughput::Elements(payloads.len() as u64));
        group.bench_function(BenchmarkId::new(profile, payloads.len()), |bench| {
            bench.iter(|| {
                for bytes in &payloads {
                    let decoded = payload::decode(bytes, 256 * 1024, NOW_MS).expect("valid frame");
                    std::hint::black_box(decoded);
                }
            });
        });
    }
    group.finish();
}

fn shadow_merge(criterion: &mut Criterion) {
    let frames = decoded(&feed_bin_payloads());
    let mut group = criterion.benchmark_group("shadow_merge");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function(BenchmarkId::new("one_device", frames.len()), |bench| {
        bench.iter(|| {
            let mut shadow = Shadow::default();
            for frame in &frames {
                std::hint::black_box(shadow.apply(frame));
            }
        });
    });
    group.finish();
}

fn rule_evaluation(criterion: &mut Criterion) {
    let book = valmetal_engine::bundled_rules::load(None).expect("bundled rules load");
    let mut group = criterion.benchmark_group("rule_evaluation");
    for (profile, device, payloads) in [
        ("feed_bin", "feedbin-001", feed_bin_payloads()),
        ("machine", "machine-01", machine_payloads()),
    ] {
        let frames = decoded(&payloads);
        let rules = book.rules_for(profile);
        let id = DeviceId::parse(device).expect("valid id");
        group.throughput(Throughput::Elements(frames.len() as u64));
        group.bench_function(BenchmarkId::new(profile, frames.len()), |bench| {
            bench.iter(|| {
                let mut shadow = Shadow::default();
                let mut evaluator = RuleEvaluator::new(id.clone(), Arc::clone(&rules));
                for frame in &frames {
                    let late = matches!(
                        shadow.apply(frame),
                        FrameOutcome::Applied { late: true, .. }
                    );
                    std::hint::black_box(evaluator.on_frame(frame, late, &shadow, NOW_MS));
                }
            });
        });
    }
    group.finish();
}

/// Shadow changes of one device, one per frame, as the actor publishes them.
fn changes(frames: &[Frame]) -> Vec<ShadowChange> {
    let device = DeviceId::parse("feedbin-001").expect("valid id");
    let mut shadow = Shadow::default();
    frames
        .iter()
        .filter_map(|frame| match shadow.apply(frame) {
            FrameOutcome::Applied {
                changes, version, ..
            } => Some(ShadowChange {
                device: device.clone(),
                device_type: Arc::from("feed_bin"),
                version,
                changes,
                last_frame_ts: Some(frame.ts),
                last_seen: NOW_MS,
                online: true,
                retained: None,
            }),
            _ => None,
        })
        .collect()
}

fn update_serialization(criterion: &mut Criterion) {
    let changes = changes(&decoded(&feed_bin_payloads()));
    let updates: Vec<DeviceUpdate> = changes
        .iter()
        .map(|change| DeviceUpdate {
            device: change.device.clone(),
            device_type: Arc::clone(&change.device_type),
            version: change.version,
            changes: change.changes.clone(),
            last_frame_ts: change.last_frame_ts,
            last_seen: change.last_seen,
            online: change.online,
        })
        .collect();
    let mut group = criterion.benchmark_group("update_serialization");
    group.throughput(Throughput::Elements(updates.len() as u64));
    group.bench_function(BenchmarkId::new("feed_bin", updates.len()), |bench| {
        bench.iter(|| {
            for update in &updates {
                std::hint::black_box(ServerMessage::Update(update).to_json());
            }
        });
    });
    group.finish();
}

/// Publishes each change to a hub whose `subscribers` clients all watch the device, and drains
/// every client's queue after each change as a fast writer task would, rendering each update.
fn fan_out(criterion: &mut Criterion) {
    let changes: Vec<ShadowChange> = changes(&decoded(&feed_bin_payloads()))
        .into_iter()
        .take(100)
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime builds");
    let mut group = criterion.benchmark_group("fan_out");
    for subscribers in [1usize, 10, 100, 1000] {
        let hub = Hub::default();
        let device = changes[0].device.clone();
        let clients: Vec<_> = (0..subscribers)
            .map(|_| {
                let client = hub.connect();
                hub.subscribe(&client, false, vec![device.clone()]);
                client
            })
            .collect();
        runtime.block_on(async {
            for client in &clients {
                client.queue.take(16).await;
            }
        });
        group.throughput(Throughput::Elements((changes.len() * subscribers) as u64));
        group.bench_function(BenchmarkId::new("deliveries", subscribers), |bench| {
            bench.iter(|| {
                runtime.block_on(async {
                    for change in &changes {
                        hub.publish_change(change);
                        for client in &clients {
                            for item in client.queue.take(16).await {
                                match item {
                                    Outgoing::Update(update) => {
                                        std::hint::black_box(
                                            ServerMessage::Update(&update).to_json(),
                                        );
                                    }
                                    Outgoing::Rendered(_, text) => {
                                        std::hint::black_box(text);
                                    }
                                    _ => {}
                                }
                            }
                        }
                    }
                });
            });
        });
    }
    group.finish();
}

fn time_series_records(count: usize) -> Vec<TimeSeriesRecord> {
    let frames = decoded(&feed_bin_payloads());
    let device: Arc<str> = Arc::from("feedbin-001");
    let device_type: Arc<str> = Arc::from("feed_bin");
    let farm: Arc<str> = Arc::from("odrc");
    frames
        .iter()
        .take(count)
        .map(|frame| TimeSeriesRecord::of_frame(&device, &device_type, Some(&farm), frame, NOW_MS))
        .collect()
}

fn documents(count: usize) -> Vec<DeviceDocument> {
    let frames = decoded(&feed_bin_payloads());
    (0..count)
        .map(|index| {
            let mut shadow = Shadow::default();
            for frame in frames.iter().skip(index).take(3) {
                shadow.apply(frame);
            }
            let id = DeviceId::parse(&format!("feedbin-{index:03}")).expect("valid id");
            DeviceDocument::from_shadow(
                id,
                "feed_bin",
                Some("odrc"),
                &shadow,
                Some(NOW_MS),
                Vec::new(),
                NOW_MS,
            )
        })
        .collect()
}

fn sink_batches(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("sink_batch");
    let batch = time_series_records(records::MAX_RECORDS_PER_REQUEST);
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function(
        BenchmarkId::new("timestream_requests", batch.len()),
        |bench| {
            bench.iter(|| {
                let merged = records::merge(&batch, (0..batch.len()).collect());
                for request in records::plan(merged) {
                    std::hint::black_box(request.common_attributes().expect("valid"));
                    std::hint::black_box(request.sdk_records().expect("valid"));
                }
            });
        },
    );
    let docs = documents(25);
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.bench_function(BenchmarkId::new("dynamodb_items", docs.len()), |bench| {
        bench.iter(|| {
            let (mut refused, mut superseded) = (Vec::new(), Vec::new());
            std::hint::black_box(items::prepare(&docs, &mut refused, &mut superseded));
        });
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime builds");
    let directory = tempfile::tempdir().expect("temporary directory");
    let database = runtime
        .block_on(Database::open_sqlite(&directory.path().join("bench.db")))
        .expect("SQLite opens");
    let telemetry = SqlTelemetry::new(database.clone());
    let mut rows = time_series_records(100);
    let mut version = NOW_MS;
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function(
        BenchmarkId::new("sql_telemetry_write", rows.len()),
        |bench| {
            bench.iter(|| {
                version += 1;
                for record in &mut rows {
                    record.version = version;
                }
                runtime
                    .block_on(telemetry.write(&mut rows))
                    .expect("SQLite write succeeds");
            });
        },
    );
    let shadows = SqlShadowStore::new(database);
    let mut docs = documents(500);
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.bench_function(BenchmarkId::new("sql_shadow_write", docs.len()), |bench| {
        bench.iter(|| {
            for document in &mut docs {
                document.version += 1;
            }
            runtime
                .block_on(shadows.put(&docs))
                .expect("SQLite write succeeds");
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    decode,
    shadow_merge,
    rule_evaluation,
    update_serialization,
    fan_out,
    sink_batches
);
criterion_main!(benches);
