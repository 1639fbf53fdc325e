//! Per-frame costs on the ingest path: payload decode and shadow merge, on real feed-bin
//! frames. Run with `cargo bench -p valmetal-benches`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use valmetal_actors::Shadow;
use valmetal_engine::ingest::payload;
use valmetal_engine::replay::datasets;

/// Engine clock used for the future-time check: any time after the data.
const NOW_MS: i64 = 1_800_000_000_000;

fn decode(criterion: &mut Criterion) {
    let frames =
        datasets::feed_bins(datasets::FEED_BINS_CSV, Some(1000)).expect("bundled data parses");
    let payloads: Vec<Vec<u8>> = frames.iter().map(|frame| frame.payload()).collect();
    let mut group = criterion.benchmark_group("payload_decode");
    group.throughput(Throughput::Elements(payloads.len() as u64));
    group.bench_function(
        BenchmarkId::new("feed_bin_frame", payloads.len()),
        |bench| {
            bench.iter(|| {
                for bytes in &payloads {
                    let decoded = payload::decode(bytes, 256 * 1024, NOW_MS).expect("valid frame");
                    std::hint::black_box(decoded);
                }
            });
        },
    );
    group.finish();
}

fn shadow_merge(criterion: &mut Criterion) {
    let frames =
        datasets::feed_bins(datasets::FEED_BINS_CSV, Some(1000)).expect("bundled data parses");
    let decoded: Vec<_> = frames
        .iter()
        .map(|frame| {
            payload::decode(&frame.payload(), 256 * 1024, NOW_MS)
                .expect("valid frame")
                .remove(0)
        })
        .collect();
    let mut group = criterion.benchmark_group("shadow_merge");
    group.throughput(Throughput::Elements(decoded.len() as u64));
    group.bench_function(BenchmarkId::new("one_device", decoded.len()), |bench| {
        bench.iter(|| {
            let mut shadow = Shadow::default();
            for frame in &decoded {
                std::hint::black_box(shadow.apply(frame));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, decode, shadow_merge);
criterion_main!(benches);
