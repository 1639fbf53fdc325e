//! Webhook notifications from a running engine: an alarm raised over MQTT reaches a signed
//! webhook exactly once, whether the receiver was down for a while or the engine restarted
//! with the notification still queued.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::notify::WebhookReceiver;
use common::{TestEngine, feed_bin_rules, mosquitto_addr, publish_once, unique_prefix, wait_until};
use serde_json::json;
use valmetal_engine::notify::{NotifyConfig, OutboxRow};

const SECRET: &str = "webhook-test-secret";

fn notify_config(receiver: SocketAddr, secret_file: &std::path::Path) -> NotifyConfig {
    let text = format!(
        r#"
        poll_interval = "50ms"
        max_attempts = 100
        backoff = {{ first = "50ms", max = "200ms" }}
        send_timeout = "2s"

        [[channels]]
        type = "webhook"
        name = "ops"
        url = "http://{receiver}/hook"
        secret = {{ file = "{}" }}

        [[recipients]]
        id = "farmer"
        channels = ["ops"]

        [[routes]]
        id = "bins"
        device_types = ["feed_bin"]
        recipients = ["farmer"]
        "#,
        secret_file.display()
    );
    toml::from_str(&text).unwrap()
}

/// Starts an engine whose notifications go to `receiver`, and raises `bin_low` on one bin.
async fn engine_with_alarm(test: &str, receiver: SocketAddr) -> (TestEngine, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("webhook");
    std::fs::write(&secret_file, SECRET).unwrap();
    let broker = mosquitto_addr();
    let prefix = unique_prefix(test);
    let notify = notify_config(receiver, &secret_file);
    let engine = TestEngine::start_with(broker.clone(), &prefix, feed_bin_rules("1h"), |config| {
        config.notify = Some(notify);
    })
    .await;
    publish_once(
        &broker,
        &format!("{test}-pub"),
        &format!("{prefix}/feedbin-003/telemetry"),
        json!({"ts": 1_641_000_000_000_i64, "values": {"end_weight_kg": 1.0}}).to_string(),
    )
    .await;
    (engine, secrets)
}

async fn only_row(engine: &TestEngine) -> Option<OutboxRow> {
    let outbox = engine.engine.notifications().unwrap();
    let rows = outbox.list(None, None, 10).await.unwrap();
    assert!(rows.len() <= 1, "{rows:?}");
    rows.into_iter().next()
}

/// Polls the outbox until `condition` holds for its one row.
async fn wait_for_row(engine: &TestEngine, condition: impl Fn(&OutboxRow) -> bool) -> OutboxRow {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(row) = only_row(engine).await.filter(|row| condition(row)) {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox row not as expected within 10 s: {:?}",
            only_row(engine).await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivered_once_after_receiver_recovers() {
    let port = common::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (engine, _secrets) = engine_with_alarm("notify-recover", addr).await;

    let failing = wait_for_row(&engine, |row| row.attempts >= 2).await;
    assert_eq!(failing.status, "failed");
    assert!(failing.last_error.is_some());

    let receiver = WebhookReceiver::start_on(addr, SECRET).await;
    let sent = wait_for_row(&engine, |row| row.status == "sent").await;
    assert!(sent.attempts >= 3, "{sent:?}");
    // A few more sender passes must not send it again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(received[0].signature_valid, "the HMAC signature verifies");
    assert_eq!(received[0].delivery, sent.dedup_key);
    assert_eq!(received[0].body["alarm"]["rule"], "bin_low");
    assert_eq!(received[0].body["recipient"]["id"], "farmer");

    let alarm_id = sent.alarm_id.clone().unwrap();
    let (status, body) = engine
        .get_json(&format!("/api/v1/notifications?alarm={alarm_id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["configured"], true);
    assert_eq!(body["notifications"][0]["status"], "sent");
    assert_eq!(body["notifications"][0]["channel"], "ops");
    let (status, body) = engine.get_json(&format!("/api/v1/alarms/{alarm_id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["notifications"][0]["status"], "sent", "{body}");

    let (status, metrics) = common::http_get_text(engine.http_addr(), "/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        "telemetry_notify_sent_total{channel=\"ops\"}",
        "telemetry_notify_failures_total{channel=\"ops\",reason=\"unreachable\"}",
        "telemetry_notify_delivery_latency_seconds_bucket{channel=\"ops\",le=\"0.05\"}",
        "telemetry_notify_queue_depth{channel=\"ops\"}",
        "telemetry_notify_created_total{kind=\"alarm\",status=\"queued\"}",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from /metrics"
        );
    }
    engine.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_notification_sent_once_after_restart() {
    let port = common::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (engine, _secrets) = engine_with_alarm("notify-restart", addr).await;
    let pending = wait_for_row(&engine, |row| row.attempts >= 1).await;
    assert_ne!(pending.status, "sent");

    let rules = feed_bin_rules("1h");
    let receiver = WebhookReceiver::start_on(addr, SECRET).await;
    let engine = engine.restart(rules).await;
    let sent = wait_for_row(&engine, |row| row.status == "sent").await;
    assert_eq!(sent.id, pending.id, "the same row, not a new one");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 1);
    wait_until(Duration::from_secs(1), || receiver.count() == 1).await;
    engine.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_api_stores_and_removes_windows() {
    let receiver = WebhookReceiver::start(SECRET).await;
    let (engine, _secrets) = engine_with_alarm("notify-maintenance", receiver.addr).await;
    let addr = engine.http_addr();
    let (status, body) = common::http_post_json(
        addr,
        "/api/v1/notifications/maintenance",
        &json!({"farm": "odrc", "for": "2h", "by": "alice", "reason": "feed cart service"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let (_, list) = engine.get_json("/api/v1/notifications/maintenance").await;
    assert_eq!(list["windows"][0]["farm"], "odrc");
    let (status, body) = common::http_send_json(
        addr,
        "DELETE",
        &format!("/api/v1/notifications/maintenance/{id}"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = engine.get_json("/api/v1/notifications?status=bogus").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_status");
    engine.engine.shutdown().await;
}
