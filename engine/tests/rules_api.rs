//! Rule files stored through the API: validated, applied at once to live devices, kept across
//! a restart, and removed to fall back to the directory's rules.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::time::Duration;

use common::{
    Dashboard, TestEngine, feed_bin_rules, http_send_json, mosquitto_addr, publish_once,
    unique_prefix,
};
use serde_json::{Value, json};

const STORED: &str = "device_type = \"feed_bin\"\nversion = \"db-1\"\n[[rule]]\nid = \"bin_low\"\nwhen = { key = \"end_weight_kg\", below = 10.0, clear_above = 20.0 }\n";

fn source_of(listing: &Value, device_type: &str) -> Value {
    let sets = listing["rule_sets"].as_array().unwrap();
    let set = sets
        .iter()
        .find(|set| set["device_type"] == device_type)
        .unwrap();
    json!({"source": set["source"], "version": set["version"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_rules_apply_and_survive_restart() {
    let broker = mosquitto_addr();
    let prefix = unique_prefix("rules-api");
    let data_dir = tempfile::tempdir().unwrap();
    let keep_data =
        |config: &mut valmetal_engine::Config| config.storage.data_dir = data_dir.path().to_owned();
    let engine =
        TestEngine::start_with(broker.clone(), &prefix, feed_bin_rules("1h"), keep_data).await;
    let addr = engine.http_addr();

    let (_, listing) = engine.get_json("/api/v1/rules").await;
    assert_eq!(source_of(&listing, "feed_bin")["source"], "files");

    let (status, checked) = http_send_json(
        addr,
        "POST",
        "/api/v1/rules/validate",
        &json!({"text": "device_type = \"x\"\n[[rule]]\nid = \"a\"\nwhen = { key = \"t\" }\n"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(checked["valid"], false);
    assert!(
        checked["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("line 2, rule `a`"),
        "{checked}"
    );

    let (status, body) = http_send_json(
        addr,
        "PUT",
        "/api/v1/rules/feed_bin",
        &json!({"text": STORED.replace("feed_bin", "fan"), "by": "alice"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("`fan`"),
        "{body}"
    );

    let mut dashboard = Dashboard::connect(addr).await;
    dashboard
        .send(json!({"type": "subscribe", "all": true}))
        .await;
    dashboard.next_of("snapshot", Duration::from_secs(5)).await;
    let topic = format!("{prefix}/feedbin-009/telemetry");
    publish_once(
        &broker,
        "rules-api-pub",
        &topic,
        json!({"ts": 1_641_000_000_000_i64, "values": {"end_weight_kg": 8.0}}).to_string(),
    )
    .await;
    dashboard.next_of("update", Duration::from_secs(5)).await;

    let (status, body) = http_send_json(
        addr,
        "PUT",
        "/api/v1/rules/feed_bin",
        &json!({"text": STORED, "by": "alice"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "db-1");
    publish_once(
        &broker,
        "rules-api-pub",
        &topic,
        json!({"ts": 1_641_000_060_000_i64, "values": {"end_weight_kg": 7.5}}).to_string(),
    )
    .await;
    let alarm = dashboard.next_of("alarm", Duration::from_secs(5)).await;
    assert_eq!(
        alarm["alarm"]["rule_version"], "db-1",
        "7.5 is below the stored limit of 10"
    );
    engine.engine.shutdown().await;

    let engine =
        TestEngine::start_with(broker.clone(), &prefix, feed_bin_rules("1h"), keep_data).await;
    let (_, listing) = engine.get_json("/api/v1/rules").await;
    assert_eq!(
        source_of(&listing, "feed_bin"),
        json!({"source": "database", "version": "db-1"})
    );
    let (status, _) = http_send_json(
        engine.http_addr(),
        "DELETE",
        "/api/v1/rules/feed_bin?by=alice",
        &json!({}),
    )
    .await;
    assert_eq!(status, 204);
    let (_, listing) = engine.get_json("/api/v1/rules").await;
    assert_eq!(source_of(&listing, "feed_bin")["source"], "files");
    let (status, _) = http_send_json(
        engine.http_addr(),
        "DELETE",
        "/api/v1/rules/feed_bin?by=alice",
        &json!({}),
    )
    .await;
    assert_eq!(status, 404);
    engine.engine.shutdown().await;
}
