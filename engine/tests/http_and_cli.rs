//! The HTTP port, the WebSocket protocol's error handling, taken ports, and the demo command
//! run as a new user runs it.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::{
    Dashboard, TestEngine, feed_bin_rules, free_port, http_get_text, mosquitto_addr, unique_prefix,
};
use serde_json::json;
use valmetal_engine::{Config, RunningEngine, broker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_rejects_bad_requests_and_stays_open() {
    let engine =
        TestEngine::start(mosquitto_addr(), &unique_prefix("ws"), feed_bin_rules("1h")).await;
    let mut dashboard = Dashboard::connect(engine.http_addr()).await;

    dashboard.send_text("not json").await;
    let error = dashboard.next_of("error", Duration::from_secs(5)).await;
    assert_eq!(error["code"], "invalid_message");

    dashboard
        .send(json!({"type": "subscrib", "all": true}))
        .await;
    let error = dashboard.next_of("error", Duration::from_secs(5)).await;
    assert!(
        error["message"].as_str().unwrap().contains("subscrib"),
        "{error}"
    );

    dashboard
        .send(json!({"type": "subscribe", "devices": ["bin/1", "feedbin-001"]}))
        .await;
    let error = dashboard.next_of("error", Duration::from_secs(5)).await;
    assert_eq!(error["code"], "invalid_device_id");
    assert!(
        error["message"].as_str().unwrap().contains("bin/1"),
        "{error}"
    );
    let snapshot = dashboard.next_of("snapshot", Duration::from_secs(5)).await;
    assert_eq!(snapshot["devices"], json!([]));

    dashboard.send(json!({"type": "ping", "id": 7})).await;
    let pong = dashboard.next_of("pong", Duration::from_secs(5)).await;
    assert_eq!(pong["id"], 7);
    engine.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serves_dashboard_health_and_errors() {
    let engine = TestEngine::start(
        mosquitto_addr(),
        &unique_prefix("http"),
        feed_bin_rules("1h"),
    )
    .await;
    let addr = engine.http_addr();

    let (status, page) = http_get_text(addr, "/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("/app.js"),
        "the dashboard page loads its script"
    );
    for path in ["/app.js", "/chart.js", "/style.css", "/healthz", "/metrics"] {
        assert_eq!(http_get_text(addr, path).await.0, 200, "{path}");
    }
    let (status, ready) = engine.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready["broker_connected"], true);

    let (status, body) = engine.get_json("/api/v1/devices/feedbin-404").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "device_not_found");
    let (status, body) = engine.get_json("/api/v1/alarms?limit=0").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`limit` is 0"),
        "{body}"
    );
    let (status, body) = engine.get_json("/nowhere").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    engine.engine.shutdown().await;
}

#[tokio::test]
async fn taken_http_port_names_the_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let directory = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.http.addr = taken.local_addr().unwrap();
    config.storage.data_dir = directory.path().to_owned();
    let error = RunningEngine::start(&config, feed_bin_rules("1h"))
        .await
        .err()
        .expect("start fails");
    let message = error.to_string();
    assert!(message.contains("already in use"), "{message}");
    assert!(message.contains("--http-addr"), "{message}");
}

#[test]
fn taken_mqtt_port_names_the_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let message = broker::start(taken.local_addr().unwrap(), 1024)
        .unwrap_err()
        .to_string();
    assert!(message.contains("already in use"), "{message}");
    assert!(message.contains("--mqtt-addr"), "{message}");
}

/// Runs `valmetal demo` as the README does, at a high speed, and reads its summary.
#[test]
fn demo_replays_bundled_data_to_the_end() {
    let data_dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_valmetal"))
        .args([
            "demo",
            "--exit-after-replay",
            "--speed",
            "200000",
            "--machine-speed",
            "4000000",
        ])
        .args(["--http-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--mqtt-addr", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data_dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("Dashboard:   http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("49848 frames published, 49848 acknowledged"),
        "{stdout}"
    );
    assert!(stdout.contains("Devices: 101"), "{stdout}");
    assert!(
        stdout.contains("raised"),
        "the real data raises alarms:\n{stdout}"
    );
    assert!(data_dir.path().join("valmetal.db").exists());
}

#[test]
fn rules_check_reports_file_and_problem() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("fan.toml");
    std::fs::write(&path, "device_type = \"fan\"\n[[rule]]\nid = \"hot\"\nwhen = { key = \"t\", above = 40, clear_below = 45 }\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_valmetal"))
        .args(["rules", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fan.toml"), "{stderr}");
    assert!(
        stderr.contains("clear level 45 is on the alarm side of 40"),
        "{stderr}"
    );

    let bundled = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
    let output = Command::new(env!("CARGO_BIN_EXE_valmetal"))
        .args(["rules", "check", bundled])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("bin_low"));
}
