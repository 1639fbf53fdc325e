//! Operators acting on alarms through the REST API: acknowledge, shelve, clear by hand, with
//! who and when recorded, sent live to dashboards and stored in the history.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::time::Duration;

use common::{Dashboard, TestEngine, http_post_json, mosquitto_addr, publish_once, unique_prefix};
use serde_json::{Value, json};
use valmetal_actors::rules::{RuleBook, rule_file};

const RULES: &str = r#"device_type = "feed_bin"
[[rule]]
id = "bin_low"
reraise_after = "1s"
when = { key = "end_weight_kg", below = 2.0, clear_above = 5.0 }
"#;

async fn next_alarm(dashboard: &mut Dashboard, transition: &str) -> Value {
    let message = dashboard.next_of("alarm", Duration::from_secs(5)).await;
    assert_eq!(message["transition"], transition, "{message}");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_reach_dashboard_and_history() {
    let broker = mosquitto_addr();
    let prefix = unique_prefix("lifecycle");
    let rules = RuleBook::from_sets([rule_file::parse(RULES, "feed_bin.toml").unwrap()]);
    let engine = TestEngine::start(broker.clone(), &prefix, rules).await;
    let addr = engine.http_addr();
    let mut dashboard = Dashboard::connect(addr).await;
    dashboard
        .send(json!({"type": "subscribe", "all": true}))
        .await;
    dashboard.next_of("snapshot", Duration::from_secs(5)).await;
    let topic = format!("{prefix}/feedbin-003/telemetry");

    publish_once(
        &broker,
        "lifecycle-pub",
        &topic,
        json!({"ts": 1_641_000_000_000_i64, "values": {"end_weight_kg": 1.0}}).to_string(),
    )
    .await;
    let raised = next_alarm(&mut dashboard, "raised").await;
    let id = raised["alarm"]["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/alarms/{id}");

    let (status, body) = http_post_json(
        addr,
        &format!("{base}/acknowledge"),
        &json!({"by": "alice"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alarm"]["acknowledged"]["by"], "alice");
    let acknowledged = next_alarm(&mut dashboard, "acknowledged").await;
    assert_eq!(acknowledged["operator"]["by"], "alice");
    let (status, body) =
        http_post_json(addr, &format!("{base}/acknowledge"), &json!({"by": "bob"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "alarm_state_conflict");

    let (status, body) = http_post_json(
        addr,
        &format!("{base}/shelve"),
        &json!({"by": "alice", "for": "1h"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    next_alarm(&mut dashboard, "shelved").await;
    let (status, body) =
        http_post_json(addr, &format!("{base}/shelve"), &json!({"by": "alice"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`until`"),
        "{body}"
    );

    let (status, body) =
        http_post_json(addr, &format!("{base}/clear"), &json!({"by": "carol"})).await;
    assert_eq!(status, 200, "{body}");
    let cleared = next_alarm(&mut dashboard, "cleared").await;
    assert_eq!(cleared["alarm"]["cleared_by"]["by"], "carol");
    let reraised = next_alarm(&mut dashboard, "raised").await;
    assert_ne!(
        reraised["alarm"]["id"], raised["alarm"]["id"],
        "the condition still holds, so a new alarm follows"
    );

    let (status, body) = http_post_json(
        addr,
        &format!("{base}/acknowledge"),
        &json!({"by": "alice"}),
    )
    .await;
    assert_eq!(
        status, 404,
        "the first alarm is closed and acknowledged: {body}"
    );
    let (status, _) = http_post_json(addr, &format!("{base}/dance"), &json!({"by": "alice"})).await;
    assert_eq!(status, 404);
    let (status, body) =
        http_post_json(addr, &format!("{base}/acknowledge"), &json!({"by": ""})).await;
    assert_eq!(status, 400, "{body}");

    let mut transitions = Vec::new();
    for _ in 0..100 {
        let (_, history) = engine.get_json("/api/v1/alarms?device=feedbin-003").await;
        transitions = history["events"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|event| {
                (
                    event["transition"].as_str().unwrap().to_owned(),
                    event["operator"].as_str().map(str::to_owned),
                )
            })
            .collect();
        if transitions.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected = vec![
        ("raised".to_owned(), None),
        ("acknowledged".to_owned(), Some("alice".to_owned())),
        ("shelved".to_owned(), Some("alice".to_owned())),
        ("cleared".to_owned(), Some("carol".to_owned())),
        ("raised".to_owned(), None),
    ];
    assert_eq!(transitions, expected);
    engine.engine.shutdown().await;
}
