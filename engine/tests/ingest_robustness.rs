//! Malformed, oversized and repeated messages through a real broker: each is rejected or
//! applied once on its own, and the frames around them all arrive.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::time::Duration;

use common::{
    Dashboard, TestEngine, connected_client, feed_bin_rules, http_get_text, mosquitto_addr,
    unique_prefix,
};
use rumqttc::QoS;
use serde_json::json;

/// Payload limit configured for this test, in bytes.
const MAX_PAYLOAD: usize = 4096;

fn frame(ts: i64, seq: u64, weight: f64) -> Vec<u8> {
    json!({"ts": ts, "seq": seq, "values": {"end_weight_kg": weight}})
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_never_block_good_frames() {
    let broker = mosquitto_addr();
    let prefix = unique_prefix("robustness");
    let engine = TestEngine::start_with(broker.clone(), &prefix, feed_bin_rules("1h"), |config| {
        config.mqtt.max_payload_bytes = MAX_PAYLOAD
    })
    .await;
    let mut dashboard = Dashboard::connect(engine.http_addr()).await;
    dashboard
        .send(json!({"type": "subscribe", "devices": ["feedbin-007"]}))
        .await;
    dashboard.next_of("snapshot", Duration::from_secs(5)).await;

    let client = connected_client(&broker, &format!("pub-{}", prefix.replace('/', "-"))).await;
    let topic = format!("{prefix}/feedbin-007/telemetry");
    let oversized = format!(
        r#"{{"ts":1641000000000,"values":{{"note":"{}"}}}}"#,
        "x".repeat(MAX_PAYLOAD * 4)
    );
    let messages: Vec<(String, Vec<u8>)> = vec![
        (topic.clone(), frame(1_641_000_000_000, 1, 30.5)),
        (topic.clone(), b"{not json".to_vec()),
        (
            topic.clone(),
            br#"{"ts":1641000000000,"values":{"t":NaN}}"#.to_vec(),
        ),
        (topic.clone(), oversized.into_bytes()),
        (
            topic.clone(),
            br#"{"ts":1641000060,"values":{"w":1}}"#.to_vec(),
        ),
        (
            topic.clone(),
            br#"{"ts":1641000060000,"values":{"w":[1,2]}}"#.to_vec(),
        ),
        (
            format!("{prefix}/bad!id/telemetry"),
            frame(1_641_000_000_000, 1, 1.0),
        ),
        (format!("{prefix}/feedbin-007/status"), b"sideways".to_vec()),
        (topic.clone(), frame(1_641_000_120_000, 2, 29.0)),
        (topic.clone(), frame(1_641_000_120_000, 2, 29.0)),
        (topic.clone(), frame(1_641_000_060_000, 3, 99.0)),
        (topic.clone(), frame(1_641_000_180_000, 4, 28.5)),
    ];
    for (topic, payload) in messages {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    let mut versions = Vec::new();
    let mut weights = Vec::new();
    while versions.last() != Some(&3) {
        let update = dashboard.next_of("update", Duration::from_secs(10)).await;
        versions.push(update["version"].as_u64().unwrap());
        if let Some(weight) = update["changes"]["end_weight_kg"]["value"].as_f64() {
            weights.push(weight);
        }
    }
    // A dashboard may receive these coalesced, so it gets a subsequence of the versions and
    // values, always ending at the newest.
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "versions increase: {versions:?}"
    );
    assert!(
        !weights.contains(&99.0),
        "a late frame never overwrites a newer value: {weights:?}"
    );
    assert_eq!(weights.last(), Some(&28.5));

    let (_, metrics) = http_get_text(engine.http_addr(), "/metrics").await;
    for reason in [
        "invalid_json",
        "too_large",
        "invalid_frame",
        "invalid_device_id",
        "invalid_status",
    ] {
        let line = format!("telemetry_ingest_messages_rejected_total{{reason=\"{reason}\"}}");
        assert!(
            metrics.contains(&line),
            "metrics should count {reason}:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("telemetry_actor_frames_total{outcome=\"duplicate\"}"),
        "{metrics}"
    );
    assert!(
        engine.engine.is_broker_connected(),
        "an oversized message does not drop the connection"
    );
    let (_, device) = engine.get_json("/api/v1/devices/feedbin-007").await;
    assert_eq!(device["version"], 3);
    assert_eq!(device["reported"]["end_weight_kg"]["value"], 28.5);
    engine.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_bin_goes_offline_and_returns() {
    let broker = mosquitto_addr();
    let prefix = unique_prefix("offline");
    let engine = TestEngine::start(broker.clone(), &prefix, feed_bin_rules("2s")).await;
    let mut dashboard = Dashboard::connect(engine.http_addr()).await;
    dashboard
        .send(json!({"type": "subscribe", "all": true}))
        .await;
    dashboard.next_of("snapshot", Duration::from_secs(5)).await;

    // Two real bins: bin 41 keeps reporting its recorded visits, bin 6 sends its first visit
    // and then falls silent.
    let frames = valmetal_engine::replay::datasets::feed_bins(
        valmetal_engine::replay::datasets::FEED_BINS_CSV,
        None,
    )
    .unwrap();
    let busy: Vec<_> = frames
        .iter()
        .filter(|frame| frame.device == "feedbin-041")
        .take(20)
        .collect();
    let silent: Vec<_> = frames
        .iter()
        .filter(|frame| frame.device == "feedbin-006")
        .take(2)
        .collect();
    let client = connected_client(&broker, &format!("pub-{}", prefix.replace('/', "-"))).await;
    let topic = |device: &str| format!("{prefix}/{device}/telemetry");
    client
        .publish(
            topic("feedbin-006"),
            QoS::AtLeastOnce,
            false,
            silent[0].payload(),
        )
        .await
        .unwrap();
    for frame in &busy {
        client
            .publish(
                topic("feedbin-041"),
                QoS::AtLeastOnce,
                false,
                frame.payload(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let alarm = next_offline_alarm(&mut dashboard).await;
    assert_eq!(alarm["transition"], "raised");
    assert_eq!(alarm["alarm"]["device"], "feedbin-006");
    assert_eq!(alarm["alarm"]["rule"], "offline");
    assert_eq!(
        alarm["alarm"]["frame_ts"], silent[0].ts,
        "offline names the last frame received"
    );
    let (_, device) = engine.get_json("/api/v1/devices/feedbin-006").await;
    assert_eq!(device["online"], false);
    let (_, busy_device) = engine.get_json("/api/v1/devices/feedbin-041").await;
    assert_eq!(busy_device["online"], true);
    assert_eq!(
        busy_device["alarms"],
        json!([]),
        "a bin reporting every 200 ms stays online"
    );

    client
        .publish(
            topic("feedbin-006"),
            QoS::AtLeastOnce,
            false,
            silent[1].payload(),
        )
        .await
        .unwrap();
    // The update carrying the frame comes first, already online, then the alarm it cleared.
    let mut update = dashboard.next_of("update", Duration::from_secs(5)).await;
    while update["device"] != "feedbin-006" {
        update = dashboard.next_of("update", Duration::from_secs(5)).await;
    }
    assert_eq!(update["online"], true);
    let cleared = next_offline_alarm(&mut dashboard).await;
    assert_eq!(cleared["transition"], "cleared");
    assert_eq!(cleared["alarm"]["id"], alarm["alarm"]["id"]);
    assert_eq!(cleared["alarm"]["cleared_frame_ts"], silent[1].ts);
    engine.engine.shutdown().await;
}

/// Returns the next offline-rule alarm message, skipping the low-feed alarms the real data
/// also raises.
async fn next_offline_alarm(dashboard: &mut Dashboard) -> serde_json::Value {
    loop {
        let alarm = dashboard.next_of("alarm", Duration::from_secs(5)).await;
        if alarm["alarm"]["rule"] == "offline" {
            return alarm;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_only_device_is_listed() {
    let broker = mosquitto_addr();
    let prefix = unique_prefix("status-only");
    let engine = TestEngine::start(broker.clone(), &prefix, feed_bin_rules("1h")).await;
    let topic = format!("{prefix}/fan-12/status");
    common::publish_once(&broker, "status-only-pub", &topic, "online").await;
    common::publish_once(&broker, "status-only-pub", &topic, r#"{"online": false}"#).await;

    let mut device = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = engine.get_json("/api/v1/devices/fan-12").await;
        if status == 200 && body["online"] == false {
            device = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        device["device"], "fan-12",
        "a device known only from its status topic is listed"
    );
    assert_eq!(device["online"], false);
    assert_eq!(device["version"], 0);
    assert_eq!(device["last_frame_ts"], serde_json::Value::Null);
    engine.engine.shutdown().await;
}
