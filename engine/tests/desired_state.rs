//! Desired values set through the API: the device receives the delta on its shadow topic,
//! dashboards see it, and a device that does not converge raises an alarm.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::time::Duration;

use common::{Dashboard, TestEngine, http_send_json, mosquitto_addr, unique_prefix};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use valmetal_actors::rules::{RuleBook, rule_file};

const RULES: &str = r#"device_type = "feed_bin"
[[rule]]
id = "speed_not_reached"
when = { key = "speed", desired_not_reached_within = "1s", tolerance = 5.0 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_change_reaches_device_and_watches_it() {
    let broker = mosquitto_addr();
    let prefix = unique_prefix("desired");
    let rules = RuleBook::from_sets([rule_file::parse(RULES, "feed_bin.toml").unwrap()]);
    let engine = TestEngine::start(broker.clone(), &prefix, rules).await;
    let addr = engine.http_addr();
    let mut dashboard = Dashboard::connect(addr).await;
    dashboard
        .send(json!({"type": "subscribe", "devices": ["feedbin-001"]}))
        .await;
    dashboard.next_of("snapshot", Duration::from_secs(5)).await;

    // The device: it reports telemetry and listens on its delta topic.
    let (device, mut event_loop) = AsyncClient::new(
        MqttOptions::new(
            format!("device-{}", std::process::id()),
            &broker.0,
            broker.1,
        ),
        10,
    );
    let delta_topic = format!("{prefix}/feedbin-001/shadow/update/delta");
    device
        .subscribe(&delta_topic, QoS::AtLeastOnce)
        .await
        .unwrap();
    let (deltas_tx, mut deltas) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        while let Ok(event) = event_loop.poll().await {
            if let Event::Incoming(Packet::Publish(publish)) = event {
                let _ = deltas_tx.send(serde_json::from_slice(&publish.payload).unwrap());
            }
        }
    });
    let telemetry = format!("{prefix}/feedbin-001/telemetry");
    let speed = |ts: i64, value: f64| json!({"ts": ts, "values": {"speed": value}}).to_string();
    device
        .publish(
            &telemetry,
            QoS::AtLeastOnce,
            false,
            speed(1_641_000_000_000, 800.0),
        )
        .await
        .unwrap();
    dashboard.next_of("update", Duration::from_secs(5)).await;

    let path = "/api/v1/devices/feedbin-001/desired";
    let (status, body) = http_send_json(
        addr,
        "PUT",
        path,
        &json!({"desired": {"speed": 1200, "mode": "auto"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["delta"], json!({"speed": 1200.0, "mode": "auto"}));
    let delta = tokio::time::timeout(Duration::from_secs(5), deltas.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delta["state"], json!({"speed": 1200.0, "mode": "auto"}));
    assert_eq!(delta["version"], body["version"]);
    assert!(delta["metadata"]["speed"]["timestamp"].is_i64(), "{delta}");
    let pushed = dashboard.next_of("desired", Duration::from_secs(5)).await;
    assert_eq!(pushed["desired"]["speed"]["value"], 1200.0);

    let alarm = dashboard.next_of("alarm", Duration::from_secs(5)).await;
    assert_eq!(
        alarm["transition"], "raised",
        "800 has not reached 1200 within 1 s"
    );
    assert_eq!(alarm["alarm"]["rule"], "speed_not_reached");

    device
        .publish(
            &telemetry,
            QoS::AtLeastOnce,
            false,
            speed(1_641_000_060_000, 1198.0),
        )
        .await
        .unwrap();
    let cleared = dashboard.next_of("alarm", Duration::from_secs(5)).await;
    assert_eq!(cleared["transition"], "cleared");
    let (_, state) = engine.get_json("/api/v1/devices/feedbin-001").await;
    assert_eq!(
        state["delta"],
        json!({"speed": 1200.0, "mode": "auto"}),
        "1198 is within tolerance but not equal"
    );
    assert_eq!(state["desired"]["mode"]["value"], "auto");

    let (status, body) =
        http_send_json(addr, "PUT", path, &json!({"desired": {"speed": [1]}})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = http_send_json(
        addr,
        "PUT",
        "/api/v1/devices/feedbin-404/desired",
        &json!({"desired": {"speed": 1}}),
    )
    .await;
    assert_eq!(status, 404);
    engine.engine.shutdown().await;
}
