//! Replays a slice of the real ODRC feed-bin data through a real MQTT broker into the engine,
//! and checks what a dashboard receives against values computed from the data itself.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    Dashboard, TestEngine, by_device, expected_low_feed_alarms, feed_bin_rules, free_port,
    mosquitto_addr, unique_prefix,
};
use rumqttc::QoS;
use serde_json::{Value, json};
use tokio::sync::watch;
use valmetal_engine::broker;
use valmetal_engine::replay::{self, ReplayFrame, ReplayOptions, ReplayStream, datasets};

/// Rows of the bundled data replayed: the first hours of 2022-01-01.
const SLICE_ROWS: usize = 3000;

/// Wall time over which the Mosquitto replay is spread. Mosquitto's defaults
/// (`max_inflight_messages 20`, `max_queued_messages 1000`) drop QoS 1 messages for a
/// subscriber that falls more than 1000 behind, so an unpaced burst is not a fair test of a
/// broker the test does not configure.
const MOSQUITTO_REPLAY_SECONDS: f64 = 3.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_replay_matches_data() {
    let frames = slice();
    let span_ms = (frames.last().unwrap().ts - frames[0].ts) as f64;
    let speed = span_ms / (MOSQUITTO_REPLAY_SECONDS * 1000.0);
    replay_and_check(mosquitto_addr(), "mosquitto", frames, speed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_replay_matches_data() {
    let port = free_port();
    broker::start(format!("127.0.0.1:{port}").parse().unwrap(), 256 * 1024).unwrap();
    replay_and_check(("127.0.0.1".into(), port), "embedded", slice(), 0.0).await;
}

fn slice() -> Vec<ReplayFrame> {
    datasets::feed_bins(datasets::FEED_BINS_CSV, Some(SLICE_ROWS)).unwrap()
}

/// Bins whose slice raises and clears the low-feed alarm, plus the busiest bin.
fn chosen_bins(groups: &BTreeMap<String, Vec<&ReplayFrame>>) -> Vec<String> {
    let mut chosen: Vec<String> = groups
        .iter()
        .filter(|(_, frames)| {
            expected_low_feed_alarms(frames)
                .iter()
                .any(|(transition, _, _)| transition == "cleared")
        })
        .map(|(device, _)| device.clone())
        .take(3)
        .collect();
    let busiest = groups
        .iter()
        .max_by_key(|(_, frames)| frames.len())
        .map(|(device, _)| device.clone())
        .unwrap();
    if !chosen.contains(&busiest) {
        chosen.push(busiest);
    }
    chosen
}

/// Replays `frames` at `speed` (0: unpaced) and checks what a dashboard receives.
async fn replay_and_check(broker: (String, u16), name: &str, frames: Vec<ReplayFrame>, speed: f64) {
    let prefix = unique_prefix(name);
    let engine = TestEngine::start(broker.clone(), &prefix, feed_bin_rules("1h")).await;
    let groups = by_device(&frames);
    let chosen = chosen_bins(&groups);
    assert!(
        chosen.len() >= 2,
        "the slice should contain bins that raise and clear the alarm: {chosen:?}"
    );

    let mut dashboard = Dashboard::connect(engine.http_addr()).await;
    dashboard
        .send(json!({"type": "subscribe", "devices": chosen}))
        .await;
    let snapshot = dashboard.next_of("snapshot", Duration::from_secs(5)).await;
    assert_eq!(
        snapshot["devices"],
        json!([]),
        "no bin has reported before the replay"
    );

    let options = ReplayOptions {
        host: broker.0,
        port: broker.1,
        topic_prefix: prefix.clone(),
        client_id: format!("replay-{}", prefix.replace('/', "-")),
        qos: QoS::AtLeastOnce,
    };
    let (_stop, stopped) = watch::channel(false);
    let stream = ReplayStream {
        name: "slice".into(),
        frames: frames.clone(),
        speed,
    };
    let summary = replay::replay(options, vec![stream], stopped)
        .await
        .unwrap();
    assert_eq!(summary.published, SLICE_ROWS as u64);

    let received = collect_until_complete(&mut dashboard, &groups, &chosen).await;
    for device in &chosen {
        check_updates(device, &groups[device], &received.updates[device]);
        check_alarms(device, &groups[device], &received.alarms[device]);
        check_history(&engine, device, &groups[device]).await;
        check_rest_device(&engine, device, &groups[device]).await;
    }
    engine.engine.shutdown().await;
}

#[derive(Default)]
struct Received {
    updates: BTreeMap<String, Vec<Value>>,
    alarms: BTreeMap<String, Vec<Value>>,
}

async fn collect_until_complete(
    dashboard: &mut Dashboard,
    groups: &BTreeMap<String, Vec<&ReplayFrame>>,
    chosen: &[String],
) -> Received {
    let mut received = Received::default();
    for device in chosen {
        received.updates.insert(device.clone(), Vec::new());
        received.alarms.insert(device.clone(), Vec::new());
    }
    let complete = |received: &Received| {
        chosen.iter().all(|device| {
            let version = received.updates[device]
                .last()
                .map_or(0, |update| update["version"].as_u64().unwrap());
            let alarms = expected_low_feed_alarms(&groups[device]).len();
            version == groups[device].len() as u64 && received.alarms[device].len() >= alarms
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !complete(&received) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let message = dashboard
            .next(left)
            .await
            .expect("the dashboard received every chosen bin's frames within 30s");
        match message["type"].as_str().unwrap() {
            "update" => received
                .updates
                .get_mut(message["device"].as_str().unwrap())
                .unwrap()
                .push(message),
            "alarm" => received
                .alarms
                .get_mut(message["alarm"]["device"].as_str().unwrap())
                .unwrap()
                .push(message),
            "status" => {}
            other => panic!("unexpected message type {other}: {message}"),
        }
    }
    received
}

/// Each update's version counts the bin's frames so far, and each changed key carries the
/// value and time of the frame it came from. Coalescing may skip versions, never reorder them.
fn check_updates(device: &str, frames: &[&ReplayFrame], updates: &[Value]) {
    assert!(
        frames.windows(2).all(|pair| pair[0].ts < pair[1].ts),
        "{device}: visit end times strictly increase"
    );
    let mut previous = 0;
    let mut state: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    for update in updates {
        let version = update["version"].as_u64().unwrap();
        assert!(
            version > previous,
            "{device}: version {version} after {previous}"
        );
        previous = version;
        let frame = frames[version as usize - 1];
        assert_eq!(
            update["last_frame_ts"], frame.ts,
            "{device} v{version}: last_frame_ts"
        );
        for (key, change) in update["changes"].as_object().unwrap() {
            let ts = change["ts"].as_i64().unwrap();
            let source = frames
                .iter()
                .find(|candidate| candidate.ts == ts)
                .expect("change ts matches a frame");
            assert_eq!(
                change["value"].as_f64(),
                source.values[key].as_f64(),
                "{device} v{version}: {key}"
            );
            state.insert(key.clone(), (change["value"].as_f64().unwrap(), ts));
        }
    }
    assert_eq!(previous, frames.len() as u64, "{device}: final version");
    let last = frames.last().unwrap();
    for (key, value) in &last.values {
        assert_eq!(
            state[key],
            (value.as_f64().unwrap(), last.ts),
            "{device}: final {key}"
        );
    }
}

fn check_alarms(device: &str, frames: &[&ReplayFrame], alarms: &[Value]) {
    let actual: Vec<(String, i64, Option<i64>)> = alarms
        .iter()
        .map(|message| {
            let alarm = &message["alarm"];
            assert_eq!(
                alarm["rule"], "bin_low",
                "{device}: only the low-feed rule fires"
            );
            (
                message["transition"].as_str().unwrap().to_owned(),
                alarm["frame_ts"].as_i64().unwrap(),
                alarm["cleared_frame_ts"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        actual,
        expected_low_feed_alarms(frames),
        "{device}: alarm transitions"
    );
    for message in alarms
        .iter()
        .filter(|message| message["transition"] == "raised")
    {
        let value = message["alarm"]["value"].as_f64().unwrap();
        assert!(value < 2.0, "{device}: raised at {value}");
        assert_eq!(message["alarm"]["state"], "active");
        assert_eq!(message["alarm"]["severity"], "major");
    }
}

async fn check_history(engine: &TestEngine, device: &str, frames: &[&ReplayFrame]) {
    let expected: Vec<String> = expected_low_feed_alarms(frames)
        .into_iter()
        .rev()
        .map(|(transition, _, _)| transition)
        .collect();
    let path = format!("/api/v1/alarms?device={device}");
    let mut events = Vec::new();
    for _ in 0..100 {
        let (status, body) = engine.get_json(&path).await;
        assert_eq!(status, 200, "{body}");
        events = body["events"].as_array().unwrap().clone();
        if events.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let transitions: Vec<String> = events
        .iter()
        .map(|event| event["transition"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        transitions, expected,
        "{device}: stored alarm history, newest first"
    );
}

async fn check_rest_device(engine: &TestEngine, device: &str, frames: &[&ReplayFrame]) {
    let (status, body) = engine.get_json(&format!("/api/v1/devices/{device}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], frames.len() as u64);
    assert_eq!(body["device_type"], "feed_bin");
    let expected = frames.last().unwrap().values["end_weight_kg"].as_f64();
    assert_eq!(
        body["reported"]["end_weight_kg"]["value"].as_f64(),
        expected
    );
}
