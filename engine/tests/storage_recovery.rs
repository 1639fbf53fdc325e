//! Recovery: a restarted engine comes back with every device's shadow, desired values, open
//! alarms and telemetry history, and a killed one loses nothing it acknowledged to the broker.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    TestEngine, feed_bin_rules, free_port, http_get, http_get_text, http_send_json, mosquitto_addr,
    publish_once, unique_prefix,
};
use serde_json::{Value, json};
use valmetal_actors::clock::now_ms;

fn weight(ts: i64, seq: u64, kg: f64) -> String {
    json!({"ts": ts, "seq": seq, "values": {"end_weight_kg": kg}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_shadow_desired_alarms_and_history() {
    let broker = mosquitto_addr();
    let prefix = unique_prefix("restart");
    let engine = TestEngine::start(broker.clone(), &prefix, feed_bin_rules("1h")).await;
    let topic = format!("{prefix}/feedbin-901/telemetry");
    let t0 = now_ms() - 60_000;
    publish_once(&broker, "restart-a", &topic, weight(t0, 1, 10.0)).await;
    publish_once(&broker, "restart-b", &topic, weight(t0 + 1_000, 2, 1.5)).await;
    let path = "/api/v1/devices/feedbin-901";
    let addr = engine.http_addr();
    let mut before = Value::Null;
    for _ in 0..250 {
        let (_, body) = http_get(addr, path).await;
        if body["alarms"]
            .as_array()
            .is_some_and(|alarms| !alarms.is_empty())
        {
            before = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(before["alarms"][0]["rule"], "bin_low", "{before}");
    let (status, _) = http_send_json(
        addr,
        "PUT",
        &format!("{path}/desired"),
        &json!({"desired": {"target_kg": 900}}),
    )
    .await;
    assert_eq!(status, 200);

    let engine = engine.restart(feed_bin_rules("1h")).await;
    let (status, after) = engine.get_json(path).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["reported"]["end_weight_kg"]["value"], 1.5, "{after}");
    assert_eq!(after["reported"]["end_weight_kg"]["ts"], t0 + 1_000);
    assert_eq!(after["desired"]["target_kg"]["value"], 900.0, "{after}");
    assert_eq!(after["delta"]["target_kg"], 900.0, "{after}");
    assert_eq!(
        after["alarms"][0]["id"], before["alarms"][0]["id"],
        "{after}"
    );
    assert_eq!(after["alarms"][0]["state"], "active");
    assert_eq!(
        after["online"], false,
        "a restored device is offline until it speaks"
    );
    let version = after["version"].as_u64().unwrap();

    publish_once(&broker, "restart-c", &topic, weight(t0 + 1_000, 2, 1.5)).await;
    publish_once(&broker, "restart-d", &topic, weight(t0 + 2_000, 3, 1.0)).await;
    let addr = engine.http_addr();
    wait_until_json(addr, path, |body| {
        body["reported"]["end_weight_kg"]["value"] == 1.0
    })
    .await;
    let (_, latest) = engine.get_json(path).await;
    assert_eq!(
        latest["version"].as_u64().unwrap(),
        version + 1,
        "the redelivered seq 2 is a duplicate after the restart too: {latest}"
    );
    assert_eq!(
        latest["alarms"].as_array().unwrap().len(),
        1,
        "no second raise: {latest}"
    );

    let history_path = format!(
        "{path}/telemetry?key=end_weight_kg&from={}&to={}&points=1000",
        t0 - 1,
        t0 + 10_000
    );
    let averages = |body: &Value| -> Vec<f64> {
        body["series"]["end_weight_kg"]
            .as_array()
            .map(|points| {
                points
                    .iter()
                    .filter_map(|point| point["avg"].as_f64())
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_until_json(addr, &history_path, |body| averages(body).len() == 3).await;
    let (_, history) = engine.get_json(&history_path).await;
    assert_eq!(averages(&history), [10.0, 1.5, 1.0], "{history}");
    engine.engine.shutdown().await;
}

async fn wait_until_json(addr: std::net::SocketAddr, path: &str, done: impl Fn(&Value) -> bool) {
    for _ in 0..250 {
        let (_, body) = http_get(addr, path).await;
        if done(&body) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, body) = http_get(addr, path).await;
    panic!("{path} never reached the expected state: {body}");
}

/// A `valmetal serve` process on the test broker, with long flush intervals so that at the
/// moment it is killed its stores hold nothing yet.
struct ServeProcess {
    child: Child,
    http: std::net::SocketAddr,
}

impl ServeProcess {
    fn start(config: &std::path::Path) -> Self {
        let http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_valmetal"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--http-addr", &http.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, http }
    }

    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = http_get_text(self.http, "/metrics").await;
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    }

    async fn wait_ready(&self) {
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(self.http).await.is_ok() {
                let (status, _) = http_get(self.http, "/readyz").await;
                if status == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("valmetal serve did not become ready");
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_engine_loses_nothing_it_acknowledged() {
    const MESSAGES: u64 = 200;
    let broker = mosquitto_addr();
    let prefix = unique_prefix("kill");
    let data_dir = tempfile::tempdir().unwrap();
    let config = data_dir.path().join("valmetal.toml");
    let write_config = |max_age: &str| {
        let text = format!(
            r#"
[mqtt]
host = "{host}"
port = {port}
topic_prefix = "{prefix}"
client_id = "engine-{client}"

[storage]
data_dir = "{data}"

[storage.timeseries_batch]
max_age = "{max_age}"
max_records = 100000

[storage.shadow_batch]
max_age = "{max_age}"
overflow = "drop"
"#,
            host = broker.0,
            port = broker.1,
            client = prefix.replace('/', "-"),
            data = data_dir.path().display(),
        );
        std::fs::write(&config, text).unwrap();
    };
    write_config("1h");
    let engine = ServeProcess::start(&config);
    engine.wait_ready().await;
    let client = common::connected_client(&broker, &format!("kill-{}", std::process::id())).await;
    let t0 = now_ms() - 600_000;
    for seq in 0..MESSAGES {
        let device = format!("feedbin-{:03}", 950 + seq % 4);
        let payload = weight(t0 + seq as i64 * 1_000, seq, 100.0 + seq as f64);
        client
            .publish(
                format!("{prefix}/{device}/telemetry"),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }
    for _ in 0..500 {
        if engine
            .metric("telemetry_ingest_frames_accepted_total")
            .await
            >= MESSAGES as f64
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        engine
            .metric("telemetry_ingest_frames_accepted_total")
            .await,
        MESSAGES as f64
    );
    assert_eq!(
        engine.metric("telemetry_sink_records_sent_total").await,
        0.0,
        "nothing is stored before the kill"
    );
    engine.kill();
    let journal = data_dir.path().join("journal");
    assert!(std::fs::read_dir(&journal).unwrap().count() >= 1);

    write_config("100ms");
    let engine = ServeProcess::start(&config);
    engine.wait_ready().await;
    for device in 950..954 {
        let path = format!("/api/v1/devices/feedbin-{device}");
        let (status, body) = http_get(engine.http, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let last_seq = 199 - (3 - (device - 950));
        assert_eq!(
            body["reported"]["end_weight_kg"]["value"],
            100.0 + last_seq as f64,
            "{body}"
        );
        let history_path = format!(
            "{path}/telemetry?from={}&to={}&points=5000",
            t0 - 1,
            t0 + 300_000
        );
        let samples = |body: &Value| -> i64 {
            body["series"]["end_weight_kg"]
                .as_array()
                .map(|points| {
                    points
                        .iter()
                        .filter_map(|point| point["count"].as_i64())
                        .sum()
                })
                .unwrap_or(0)
        };
        wait_until_json(engine.http, &history_path, |body| samples(body) >= 50).await;
        let (_, history) = http_get(engine.http, &history_path).await;
        assert_eq!(
            samples(&history),
            50,
            "every journaled frame reached the history: {history}"
        );
    }
    for _ in 0..250 {
        if std::fs::read_dir(&journal).unwrap().count() <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        std::fs::read_dir(&journal).unwrap().count(),
        1,
        "replayed segments are deleted once stored; only the open one stays"
    );
    engine.terminate();
}
