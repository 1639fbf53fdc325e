//! Rule files changed while the engine runs: a valid change reaches live actors without a
//! restart, and an invalid one is rejected whole while the rules in force stay.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::time::Duration;

use common::{
    Dashboard, TestEngine, connected_client, http_get_text, mosquitto_addr, unique_prefix,
};
use rumqttc::QoS;
use serde_json::json;
use valmetal_engine::bundled_rules;

fn rules(limit: f64, version: u32) -> String {
    format!(
        "device_type = \"feed_bin\"\nversion = \"{version}\"\n[[rule]]\nid = \"bin_low\"\nwhen = {{ key = \"end_weight_kg\", below = {limit:.1}, clear_above = 10.0 }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_change_applies_without_restart() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("feed_bin.toml");
    std::fs::write(&path, rules(2.0, 1)).unwrap();
    let broker = mosquitto_addr();
    let prefix = unique_prefix("reload");
    let book = bundled_rules::load(Some(directory.path())).unwrap();
    let engine = TestEngine::start_with(broker.clone(), &prefix, book, |config| {
        config.rules.dir = Some(directory.path().to_owned());
        config.rules.reload_interval = Duration::from_millis(100);
    })
    .await;
    let mut dashboard = Dashboard::connect(engine.http_addr()).await;
    dashboard
        .send(json!({"type": "subscribe", "devices": ["feedbin-001"]}))
        .await;
    dashboard.next_of("snapshot", Duration::from_secs(5)).await;
    let client = connected_client(&broker, &format!("reload-{}", prefix.replace('/', "-"))).await;
    let topic = format!("{prefix}/feedbin-001/telemetry");
    let weight = |ts: i64, kg: f64| json!({"ts": ts, "values": {"end_weight_kg": kg}}).to_string();

    client
        .publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            weight(1_641_000_000_000, 3.0),
        )
        .await
        .unwrap();
    let update = dashboard.next_of("update", Duration::from_secs(5)).await;
    assert_eq!(update["version"], 1);

    std::fs::write(&path, "device_type = \"feed_bin\"\n[[rule]]\nid = \"bin_low\"\nwhen = { key = \"end_weight_kg\", below = \"two\" }\n").unwrap();
    wait_for_metric(
        &engine,
        "telemetry_rules_reloads_total{outcome=\"rejected\"}",
    )
    .await;
    client
        .publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            weight(1_641_000_030_000, 1.5),
        )
        .await
        .unwrap();
    let alarm = dashboard.next_of("alarm", Duration::from_secs(5)).await;
    assert_eq!(
        alarm["alarm"]["rule_version"], "1",
        "the rules in force stay after an invalid file"
    );
    client
        .publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            weight(1_641_000_040_000, 12.0),
        )
        .await
        .unwrap();
    let cleared = dashboard.next_of("alarm", Duration::from_secs(5)).await;
    assert_eq!(cleared["transition"], "cleared");

    std::fs::write(&path, rules(4.0, 2)).unwrap();
    wait_for_metric(
        &engine,
        "telemetry_rules_reloads_total{outcome=\"applied\"}",
    )
    .await;

    client
        .publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            weight(1_641_000_060_000, 3.5),
        )
        .await
        .unwrap();
    let alarm = dashboard.next_of("alarm", Duration::from_secs(5)).await;
    assert_eq!(
        alarm["transition"], "raised",
        "3.5 kg is low under the reloaded limit of 4"
    );
    assert_eq!(alarm["alarm"]["rule_version"], "2");
    assert_eq!(alarm["alarm"]["inputs"][0]["key"], "end_weight_kg");
    assert_eq!(alarm["alarm"]["inputs"][0]["value"], 3.5);
    engine.engine.shutdown().await;
}

/// Polls `/metrics` until it contains `needle`, failing after 10 s.
async fn wait_for_metric(engine: &TestEngine, needle: &str) {
    for _ in 0..200 {
        let (_, metrics) = http_get_text(engine.http_addr(), "/metrics").await;
        if metrics.contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/metrics never showed {needle}");
}
