//! Usage counters of device actors against the bundled ODRC feed-bin visits, with the
//! expected totals computed here from the raw rows, and the wear warning on the bundled NAB
//! machine-temperature series.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use chrono::NaiveDateTime;
use valmetal_actors::equipment::DeviceUsage;
use valmetal_actors::rules::{AlarmEvent, RuleSet, Severity};
use valmetal_actors::usage::{CounterConfig, CounterKind};
use valmetal_actors::wear::{WearConfig, WearDirection};
use valmetal_actors::{
    DesiredChange, DeviceActor, DeviceEvents, DeviceId, DocumentQuery, EquipmentProfile, Frame,
    FrameBatch, PresenceChange, ShadowChange, UsageQuery, UsageReport, Value,
};
use valmetal_engine::replay::ReplayFrame;
use valmetal_engine::replay::datasets::{self, FEED_BINS_CSV, MACHINE_TEMPERATURE_CSV};

/// Bins with many visits, refills and, for bin 41, negative intakes (weight rose in a visit).
const CHOSEN_BINS: [&str; 2] = ["feedbin-006", "feedbin-041"];
/// Bin weight above which the bin counts as stocked, for the run-hours counter.
const STOCKED_ABOVE_KG: f64 = 5.0;
const MAX_GAP_MS: i64 = 15 * 60 * 1000;

struct Silent;

impl DeviceEvents for Silent {
    fn shadow_changed(&self, _change: &ShadowChange) {}
    fn alarm_transition(&self, _event: &AlarmEvent) {}
    fn presence_changed(&self, _change: &PresenceChange) {}
    fn desired_changed(&self, _change: &DesiredChange) {}
}

fn feed_bin_profile() -> EquipmentProfile {
    EquipmentProfile {
        device_type: "feed_bin".into(),
        counters: vec![
            CounterConfig {
                name: "feed_delivered_kg".into(),
                kind: CounterKind::Drops,
                key: "end_weight_kg".into(),
                above: 0.0,
                start_key: Some("start_weight_kg".into()),
                max_gap: Duration::from_millis(MAX_GAP_MS as u64),
            },
            CounterConfig {
                name: "run_hours".into(),
                kind: CounterKind::RunHours,
                key: "end_weight_kg".into(),
                above: STOCKED_ABOVE_KG,
                start_key: None,
                max_gap: Duration::from_millis(MAX_GAP_MS as u64),
            },
        ],
        wear: Vec::new(),
    }
}

fn frame_of(replay: &ReplayFrame) -> Frame {
    Frame {
        ts: replay.ts,
        seq: Some(replay.seq),
        values: replay
            .values
            .iter()
            .filter_map(|(key, value)| {
                Some((Arc::from(key.as_str()), Value::Number(value.as_f64()?)))
            })
            .collect(),
    }
}

fn batch(frame: Frame) -> FrameBatch {
    FrameBatch {
        frames: vec![frame],
        received_at: 0,
        retained: None,
    }
}

fn start_actor(device: &str) -> Addr<DeviceActor> {
    let profile = feed_bin_profile();
    DeviceActor::new(
        DeviceId::parse(device).unwrap(),
        Arc::new(RuleSet::empty("feed_bin")),
        Arc::new(Silent),
    )
    .with_profile(Some(&profile))
    .start()
}

fn number(replay: &ReplayFrame, key: &str) -> f64 {
    replay.values[key].as_f64().unwrap()
}

/// Feed delivered and stocked hours of one bin, computed from the rows in time order.
fn expected_totals(visits: &[&ReplayFrame]) -> (f64, f64) {
    let feed: f64 = visits
        .iter()
        .map(|visit| (number(visit, "start_weight_kg") - number(visit, "end_weight_kg")).max(0.0))
        .sum();
    let hours: f64 = visits
        .windows(2)
        .filter(|pair| number(pair[0], "end_weight_kg") > STOCKED_ABOVE_KG)
        .map(|pair| (pair[1].ts - pair[0].ts).min(MAX_GAP_MS) as f64 / 3_600_000.0)
        .sum();
    (feed, hours)
}

fn counter(report: &UsageReport, name: &str) -> f64 {
    report.counters[name].value
}

#[test]
fn feed_bin_counters_match_rows_despite_redelivery() {
    let frames = datasets::feed_bins(FEED_BINS_CSV, None).unwrap();
    actix::System::new().block_on(async move {
        for device in CHOSEN_BINS {
            let visits: Vec<&ReplayFrame> = frames.iter().filter(|f| f.device == device).collect();
            let (feed, hours) = expected_totals(&visits);
            let actor = start_actor(device);
            for visit in &visits {
                actor.send(batch(frame_of(visit))).await.unwrap();
            }
            // Redeliver every tenth visit with its seq, and again without one, as a broker
            // or a device retrying after a lost acknowledgement would.
            for visit in visits.iter().step_by(10) {
                actor.send(batch(frame_of(visit))).await.unwrap();
                let mut without_seq = frame_of(visit);
                without_seq.seq = None;
                actor.send(batch(without_seq)).await.unwrap();
            }
            let report = actor.send(UsageQuery).await.unwrap();
            let counted_feed = counter(&report, "feed_delivered_kg");
            let counted_hours = counter(&report, "run_hours");
            assert!(
                (counted_feed - feed).abs() < 1e-6,
                "{device}: feed delivered {counted_feed} kg, rows give {feed} kg"
            );
            assert!(
                (counted_hours - hours).abs() < 1e-9,
                "{device}: run hours {counted_hours}, rows give {hours}"
            );
            assert!(feed > 100.0, "{device}: {feed} kg is a real day of feeding");
            assert!(hours > 1.0, "{device}: {hours} h stocked");
        }
    });
}

#[test]
fn late_redelivered_frame_adds_no_hours() {
    let frames = datasets::feed_bins(FEED_BINS_CSV, None).unwrap();
    actix::System::new().block_on(async move {
        let visits: Vec<&ReplayFrame> = frames
            .iter()
            .filter(|f| f.device == CHOSEN_BINS[0])
            .collect();
        let actor = start_actor(CHOSEN_BINS[0]);
        for visit in &visits {
            actor.send(batch(frame_of(visit))).await.unwrap();
        }
        let before = actor.send(UsageQuery).await.unwrap();
        // An old frame arrives again under a fresh seq, beyond the duplicate window.
        let mut late = frame_of(visits[5]);
        late.seq = Some(1_000_000);
        actor.send(batch(late)).await.unwrap();
        let after = actor.send(UsageQuery).await.unwrap();
        assert_eq!(counter(&after, "run_hours"), counter(&before, "run_hours"));
        assert_eq!(
            counter(&after, "feed_delivered_kg"),
            counter(&before, "feed_delivered_kg")
        );
    });
}

#[test]
fn counters_survive_document_restore() {
    let frames = datasets::feed_bins(FEED_BINS_CSV, None).unwrap();
    actix::System::new().block_on(async move {
        let device = CHOSEN_BINS[1];
        let visits: Vec<&ReplayFrame> = frames.iter().filter(|f| f.device == device).collect();
        let (first, rest) = visits.split_at(visits.len() / 2);
        let actor = start_actor(device);
        for visit in first {
            actor.send(batch(frame_of(visit))).await.unwrap();
        }
        let document = actor.send(DocumentQuery).await.unwrap();
        let text = serde_json::to_string(&document).unwrap();
        let stored: valmetal_actors::DeviceDocument = serde_json::from_str(&text).unwrap();

        let profile = feed_bin_profile();
        let restored = DeviceActor::new(
            DeviceId::parse(device).unwrap(),
            Arc::new(RuleSet::empty("feed_bin")),
            Arc::new(Silent),
        )
        .with_profile(Some(&profile))
        .with_document(&stored, 0)
        .start();
        // The journal replays the frames after the document and some before it.
        for visit in first.iter().rev().take(20).chain(rest) {
            restored.send(batch(frame_of(visit))).await.unwrap();
        }
        let report = restored.send(UsageQuery).await.unwrap();
        let (feed, hours) = expected_totals(&visits);
        assert!((counter(&report, "feed_delivered_kg") - feed).abs() < 1e-6);
        assert!((counter(&report, "run_hours") - hours).abs() < 1e-9);
    });
}

fn utc(text: &str) -> i64 {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// Returns the wear settings the documentation reports for the NAB machine.
fn machine_wear() -> WearConfig {
    WearConfig {
        key: "temperature".into(),
        direction: WearDirection::Falling,
        limit: 50.0,
        horizon: Duration::from_secs(24 * 3600),
        window: Duration::from_secs(24 * 3600),
        bucket: Duration::from_secs(3600),
        min_buckets: 12,
    }
}

#[test]
fn wear_warning_precedes_nab_failure() {
    let frames =
        datasets::machine_temperature(MACHINE_TEMPERATURE_CSV, "machine-01", None).unwrap();
    let profile = EquipmentProfile {
        device_type: "machine".into(),
        counters: Vec::new(),
        wear: vec![machine_wear()],
    };
    let mut usage = DeviceUsage::new(Some(&profile));
    let mut raises = Vec::new();
    for replay in &frames {
        for (_, condition) in usage.observe("machine-01", &frame_of(replay)) {
            if let Some(condition) = condition {
                raises.push((replay.ts, condition));
            }
        }
    }
    // The last labelled window, 2014-02-07 14:55 to 02-09 14:05, is centred on the failure.
    let window_start = utc("2014-02-07 14:55");
    let failure = utc("2014-02-08 14:30");
    let (warned_at, condition) = raises
        .iter()
        .rev()
        .find(|(ts, _)| *ts < failure && *ts > failure - 3 * 86_400_000)
        .expect("a wear warning in the three days before the failure");
    let hours_before_failure = (failure - warned_at) as f64 / 3_600_000.0;
    let hours_before_window = (window_start - warned_at) as f64 / 3_600_000.0;
    println!(
        "wear warning at {warned_at}: {hours_before_failure:.1} h before the failure, \
         {hours_before_window:.1} h before the labelled window; {} raises over the series; {}",
        raises.len(),
        condition.message
    );
    assert!(
        (20.0..=30.0).contains(&hours_before_failure),
        "warned {hours_before_failure:.1} h before the failure"
    );
    let keys: Vec<&str> = condition.inputs.iter().map(|input| &*input.key).collect();
    assert!(
        keys.contains(&"temperature.slope_per_hour"),
        "inputs: {keys:?}"
    );
    assert!(
        keys.contains(&"temperature.crossing_at"),
        "inputs: {keys:?}"
    );
    assert_eq!(
        raises
            .iter()
            .filter(|(_, condition)| condition.severity != Severity::Warning)
            .count(),
        0
    );
}
