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

/// Writes a `valmetal serve` configuration on the test broker with `prefix`, `data_dir`, and
/// the given flush interval and extra TOML.
fn write_serve_config(
    path: &std::path::Path,
    broker: &(String, u16),
    prefix: &str,
    data_dir: &std::path::Path,
    max_age: &str,
    extra: &str,
) {
    let text = format!(
        r#"
[mqtt]
host = "{host}"
port = {port}
topic_prefix = "{prefix}"
client_id = "engine-{client}"

[auth]
mode = "off"

[storage]
data_dir = "{data}"
{extra}

[storage.timeseries_batch]
max_age = "{max_age}"
max_records = 100000
drain_timeout = "1s"

[storage.shadow_batch]
max_age = "{max_age}"
overflow = "drop"
"#,
        host = broker.0,
        port = broker.1,
        client = prefix.replace('/', "-"),
        data = data_dir.display(),
    );
    std::fs::write(path, text).unwrap();
}

/// Publishes `count` QoS 1 frames over four feed bins, one second of device time apart from
/// `t0`, with weights `100 + seq`.
async fn publish_weights(broker: &(String, u16), prefix: &str, t0: i64, count: u64) {
    let client =
        common::connected_client(broker, &format!("pub-{}", prefix.replace('/', "-"))).await;
    for seq in 0..count {
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
}

/// Waits until the engine has accepted `frames` frames in all.
async fn wait_accepted(engine: &ServeProcess, frames: u64) {
    for _ in 0..500 {
        if engine
            .metric("telemetry_ingest_frames_accepted_total")
            .await
            >= frames as f64
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let accepted = engine
        .metric("telemetry_ingest_frames_accepted_total")
        .await;
    panic!("the engine accepted {accepted} frames, not {frames}");
}

/// Returns how many telemetry samples of the four test bins the history holds.
async fn stored_samples(addr: std::net::SocketAddr, t0: i64) -> i64 {
    let mut total = 0;
    for device in 950..954 {
        let path = format!(
            "/api/v1/devices/feedbin-{device}/telemetry?from={}&to={}&points=5000",
            t0 - 1,
            t0 + 3_600_000
        );
        let (_, history) = http_get(addr, &path).await;
        total += history["series"]["end_weight_kg"]
            .as_array()
            .map(|points| {
                points
                    .iter()
                    .filter_map(|point| point["count"].as_i64())
                    .sum()
            })
            .unwrap_or(0);
    }
    total
}

async fn wait_stored(addr: std::net::SocketAddr, t0: i64, samples: i64) {
    for _ in 0..500 {
        if stored_samples(addr, t0).await >= samples {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored = stored_samples(addr, t0).await;
    panic!("the history holds {stored} samples, not {samples}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_engine_loses_nothing_it_acknowledged() {
    const MESSAGES: u64 = 200;
    let broker = mosquitto_addr();
    let prefix = unique_prefix("kill");
    let data_dir = tempfile::tempdir().unwrap();
    let config = data_dir.path().join("valmetal.toml");
    write_serve_config(&config, &broker, &prefix, data_dir.path(), "1h", "");
    let engine = ServeProcess::start(&config);
    engine.wait_ready().await;
    let t0 = now_ms() - 600_000;
    publish_weights(&broker, &prefix, t0, MESSAGES).await;
    wait_accepted(&engine, MESSAGES).await;
    assert_eq!(
        engine.metric("telemetry_sink_records_sent_total").await,
        0.0,
        "nothing is stored before the kill"
    );
    engine.kill();
    let journal = data_dir.path().join("journal");
    assert!(common::journal_segments(&journal) >= 1);

    write_serve_config(&config, &broker, &prefix, data_dir.path(), "100ms", "");
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
    }
    wait_stored(engine.http, t0, MESSAGES as i64).await;
    assert_eq!(stored_samples(engine.http, t0).await, MESSAGES as i64);
    for _ in 0..250 {
        if common::journal_segments(&journal) <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        common::journal_segments(&journal),
        1,
        "replayed segments are deleted once stored; only the open one stays"
    );
    engine.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_segment_replays_around_the_damage() {
    const MESSAGES: u64 = 100;
    let broker = mosquitto_addr();
    let prefix = unique_prefix("damaged");
    let data_dir = tempfile::tempdir().unwrap();
    let config = data_dir.path().join("valmetal.toml");
    write_serve_config(&config, &broker, &prefix, data_dir.path(), "1h", "");
    let engine = ServeProcess::start(&config);
    engine.wait_ready().await;
    let t0 = now_ms() - 600_000;
    publish_weights(&broker, &prefix, t0, MESSAGES).await;
    wait_accepted(&engine, MESSAGES).await;
    engine.kill();

    let journal = data_dir.path().join("journal");
    let segment = std::fs::read_dir(&journal)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            std::fs::metadata(path).is_ok_and(|meta| meta.len() > 0)
                && path.extension().is_some_and(|extension| extension == "log")
        })
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();

    write_serve_config(&config, &broker, &prefix, data_dir.path(), "100ms", "");
    let engine = ServeProcess::start(&config);
    engine.wait_ready().await;
    wait_stored(engine.http, t0, MESSAGES as i64 - 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stored_samples(engine.http, t0).await,
        MESSAGES as i64 - 1,
        "only the damaged record is lost; the records after it are replayed"
    );
    let copies = std::fs::read_dir(journal.join("damaged")).unwrap().count();
    assert_eq!(copies, 1, "a copy of the damaged segment is kept");
    engine.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_engine_on_one_data_dir_is_refused() {
    let broker = mosquitto_addr();
    let prefix = unique_prefix("locked");
    let engine = TestEngine::start(broker, &prefix, feed_bin_rules("1h")).await;
    let mut config = engine.config.clone();
    config.mqtt.client_id.push_str("-second");
    let error = valmetal_engine::RunningEngine::start(&config, feed_bin_rules("1h"))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("in use by another engine"), "{error}");
    assert!(error.contains("--data-dir"), "{error}");
    engine.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_while_ingest_waits_on_a_down_store() {
    const MESSAGES: u64 = 500;
    let broker = mosquitto_addr();
    let prefix = unique_prefix("stuck");
    let data_dir = tempfile::tempdir().unwrap();
    let config = data_dir.path().join("valmetal.toml");
    let down_store = r#"timeseries = ["timestream", "sql"]
timestream.aws.endpoint_url = "http://127.0.0.1:1"
"#;
    write_serve_config(
        &config,
        &broker,
        &prefix,
        data_dir.path(),
        "100ms",
        down_store,
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "max_records = 100000",
        "max_records = 50\ncapacity = 100\nmax_in_flight = 1",
    );
    std::fs::write(&config, text).unwrap();
    let engine = ServeProcess::start(&config);
    engine.wait_ready().await;
    let t0 = now_ms() - 600_000;
    publish_weights(&broker, &prefix, t0, MESSAGES).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let accepted = engine
        .metric("telemetry_ingest_frames_accepted_total")
        .await;
    assert!(
        accepted < MESSAGES as f64,
        "ingest waits for the down store, at {accepted} frames"
    );
    let started = std::time::Instant::now();
    engine.terminate();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "SIGTERM ended the engine in {:?}",
        started.elapsed()
    );

    write_serve_config(&config, &broker, &prefix, data_dir.path(), "100ms", "");
    let engine = ServeProcess::start(&config);
    engine.wait_ready().await;
    wait_stored(engine.http, t0, MESSAGES as i64).await;
    assert_eq!(
        stored_samples(engine.http, t0).await,
        MESSAGES as i64,
        "the journal and the broker's session deliver every frame after the restart"
    );
    engine.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_a_raise_does_not_raise_twice() {
    let broker = mosquitto_addr();
    let prefix = unique_prefix("raise");
    let data_dir = tempfile::tempdir().unwrap();
    let config = data_dir.path().join("valmetal.toml");
    write_serve_config(&config, &broker, &prefix, data_dir.path(), "1h", "");
    let engine = ServeProcess::start(&config);
    engine.wait_ready().await;
    let topic = format!("{prefix}/feedbin-970/telemetry");
    let t0 = now_ms() - 60_000;
    publish_once(&broker, "raise-a", &topic, weight(t0, 1, 10.0)).await;
    publish_once(&broker, "raise-b", &topic, weight(t0 + 1_000, 2, 1.0)).await;
    let raised = |body: &Value| {
        body["events"].as_array().map_or(0, |events| {
            events
                .iter()
                .filter(|event| event["transition"] == "raised")
                .count()
        })
    };
    let history = "/api/v1/alarms?device=feedbin-970";
    wait_until_json(engine.http, history, |body| raised(body) == 1).await;
    let (_, before) = http_get(engine.http, history).await;
    engine.kill();

    let engine = ServeProcess::start(&config);
    engine.wait_ready().await;
    let (_, active) = http_get(engine.http, "/api/v1/alarms?active=true&device=feedbin-970").await;
    assert_eq!(
        active["alarms"].as_array().map(Vec::len),
        Some(1),
        "{active}"
    );
    assert_eq!(
        active["alarms"][0]["id"], before["events"][0]["alarm_id"],
        "{active}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, after) = http_get(engine.http, history).await;
    assert_eq!(
        raised(&after),
        1,
        "the replayed frame raises nothing new: {after}"
    );
    engine.terminate();
}
