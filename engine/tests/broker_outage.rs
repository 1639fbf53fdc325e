//! A broker that goes away and comes back: the engine reconnects, subscribes again, and takes
//! the frames published after the restart.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    Dashboard, TestEngine, feed_bin_rules, free_port, publish_once, unique_prefix, wait_until,
};
use serde_json::json;

/// A private Mosquitto on a loopback port, killed when dropped.
struct PrivateBroker {
    child: Child,
    _config: tempfile::NamedTempFile,
}

impl PrivateBroker {
    fn start(port: u16) -> Self {
        let config = tempfile::NamedTempFile::new().unwrap();
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
        );
        std::fs::write(config.path(), text).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(config.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the mosquitto command is installed");
        Self {
            child,
            _config: config,
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_port(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mosquitto did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_resubscribes_after_broker_restart() {
    let port = free_port();
    let mut broker = PrivateBroker::start(port);
    wait_for_port(port).await;
    let prefix = unique_prefix("outage");
    let engine = TestEngine::start_with(
        ("127.0.0.1".into(), port),
        &prefix,
        feed_bin_rules("1h"),
        |config| {
            config.mqtt.clean_session = false;
            config.mqtt.max_reconnect_delay = Duration::from_secs(1);
        },
    )
    .await;
    let mut dashboard = Dashboard::connect(engine.http_addr()).await;
    dashboard
        .send(json!({"type": "subscribe", "devices": ["feedbin-011"]}))
        .await;
    dashboard.next_of("snapshot", Duration::from_secs(5)).await;

    let topic = format!("{prefix}/feedbin-011/telemetry");
    let frame = |ts: i64, weight: f64| {
        json!({"ts": ts, "values": {"end_weight_kg": weight}})
            .to_string()
            .into_bytes()
    };
    publish_once(
        &("127.0.0.1".to_owned(), port),
        "outage-pub",
        &topic,
        frame(1_641_000_000_000, 20.0),
    )
    .await;
    let update = dashboard.next_of("update", Duration::from_secs(5)).await;
    assert_eq!(update["version"], 1);

    drop(broker);
    wait_until(Duration::from_secs(10), || {
        !engine.engine.is_broker_connected()
    })
    .await;
    let (status, ready) = engine.get_json("/readyz").await;
    assert_eq!(status, 503, "{ready}");

    broker = PrivateBroker::start(port);
    wait_for_port(port).await;
    wait_until(Duration::from_secs(15), || {
        engine.engine.is_broker_connected()
    })
    .await;
    publish_once(
        &("127.0.0.1".to_owned(), port),
        "outage-pub",
        &topic,
        frame(1_641_000_060_000, 19.5),
    )
    .await;
    let update = dashboard.next_of("update", Duration::from_secs(10)).await;
    assert_eq!(
        update["version"], 2,
        "the frame after the restart reached the actor"
    );
    assert_eq!(update["changes"]["end_weight_kg"]["value"], 19.5);
    engine.engine.shutdown().await;
    drop(broker);
}
