//! Shared fixtures of the engine's integration tests: an engine on free ports with its own
//! topic prefix, a dashboard WebSocket client, and expectations computed from the data.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

pub mod aws_fault;
pub mod notify;
pub mod postgres;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use valmetal_actors::rules::{RuleBook, rule_file};
use valmetal_engine::replay::ReplayFrame;
use valmetal_engine::{Config, RunningEngine};

/// Address of the external test broker: `VALMETAL_TEST_MQTT_ADDR`, default Mosquitto on
/// loopback.
pub fn mosquitto_addr() -> (String, u16) {
    let text = std::env::var("VALMETAL_TEST_MQTT_ADDR").unwrap_or_else(|_| "127.0.0.1:1883".into());
    let (host, port) = text
        .rsplit_once(':')
        .expect("VALMETAL_TEST_MQTT_ADDR is HOST:PORT");
    (
        host.to_owned(),
        port.parse()
            .expect("VALMETAL_TEST_MQTT_ADDR has a numeric port"),
    )
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Returns a topic prefix no other test run uses, so tests can share one broker.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "valmetal-test/{}-{}-{nanos}-{}",
        test,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Feed-bin rules of the tests: the bundled low-feed threshold and a chosen offline time.
pub fn feed_bin_rules(offline_after: &str) -> RuleBook {
    let text = format!(
        r#"
device_type = "feed_bin"

[[rule]]
id = "bin_low"
when = {{ key = "end_weight_kg", below = 2.0, clear_above = 5.0 }}

[[rule]]
id = "offline"
when = {{ no_data = "{offline_after}" }}
"#
    );
    RuleBook::from_sets([rule_file::parse(&text, "test feed_bin.toml").unwrap()])
}

/// An engine under test with its own data directory and topic prefix.
pub struct TestEngine {
    pub engine: RunningEngine,
    pub config: Config,
    _data_dir: tempfile::TempDir,
}

impl TestEngine {
    pub async fn start(broker: (String, u16), prefix: &str, rules: RuleBook) -> Self {
        Self::start_with(broker, prefix, rules, |_| {}).await
    }

    pub async fn start_with(
        broker: (String, u16),
        prefix: &str,
        rules: RuleBook,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.mqtt.host = broker.0;
        config.mqtt.port = broker.1;
        config.mqtt.topic_prefix = prefix.to_owned();
        config.mqtt.client_id = format!("engine-{}", prefix.replace('/', "-"));
        config.mqtt.clean_session = true;
        config.http.addr = "127.0.0.1:0".parse().unwrap();
        config.storage.data_dir = data_dir.path().to_owned();
        // Tests of other stages call the API as an admin would; access tests turn it on.
        config.auth.mode = valmetal_engine::auth::AuthMode::Off;
        adjust(&mut config);
        let engine = RunningEngine::start(&config, rules).await.unwrap();
        wait_until(Duration::from_secs(10), || engine.is_broker_connected()).await;
        Self {
            engine,
            config,
            _data_dir: data_dir,
        }
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.engine.http_addr()
    }

    /// Stops the engine gracefully and starts a new one with the same configuration and data
    /// directory, as a restart of the process would.
    pub async fn restart(self, rules: RuleBook) -> Self {
        let Self {
            engine,
            config,
            _data_dir,
        } = self;
        engine.shutdown().await;
        let engine = RunningEngine::start(&config, rules).await.unwrap();
        wait_until(Duration::from_secs(10), || engine.is_broker_connected()).await;
        Self {
            engine,
            config,
            _data_dir,
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.config.storage.data_dir
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        http_get(self.http_addr(), path).await
    }
}

/// Polls `condition` every 20 ms until it holds, failing the test after `timeout`.
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a minimal HTTP/1.1 GET, enough for the engine's JSON endpoints, and parses the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = http_get_text(addr, path).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Sends a minimal HTTP/1.1 POST of a JSON body and parses the JSON reply.
pub async fn http_post_json(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    http_send_json(addr, "POST", path, body).await
}

/// Sends a minimal HTTP/1.1 request with a JSON body and parses the JSON reply.
pub async fn http_send_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let body = body.to_string();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, text) = http_exchange(addr, &request).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sends a minimal HTTP/1.1 GET and returns the status and the body as text.
pub async fn http_get_text(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http_exchange(addr, &request).await
}

async fn http_exchange(addr: SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(body: &str) -> String {
    let mut output = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        output.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    output
}

/// A dashboard client speaking the WebSocket protocol.
pub struct Dashboard {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Dashboard {
    /// Connects and consumes the `hello` message.
    pub async fn connect(addr: SocketAddr) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        let mut dashboard = Self { socket };
        let hello = dashboard
            .next(Duration::from_secs(5))
            .await
            .expect("hello within 5s");
        assert_eq!(hello["type"], "hello");
        dashboard
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .unwrap();
    }

    /// Returns the next JSON message, or `None` if none arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(timeout, self.socket.next())
                .await
                .ok()??
                .ok()?;
            if let Message::Text(text) = message {
                return Some(serde_json::from_str(text.as_str()).unwrap());
            }
        }
    }

    /// Returns the next message of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no `{kind}` message within {timeout:?}"));
            if message["type"] == kind {
                return message;
            }
        }
    }
}

/// Expected alarm transitions of the low-feed rule for one bin's frames, in order:
/// (transition, raising frame ts, clearing frame ts).
pub fn expected_low_feed_alarms(frames: &[&ReplayFrame]) -> Vec<(String, i64, Option<i64>)> {
    let mut transitions = Vec::new();
    let mut raised_at: Option<i64> = None;
    for frame in frames {
        let weight = frame.values["end_weight_kg"].as_f64().unwrap();
        match raised_at {
            None if weight < 2.0 => {
                raised_at = Some(frame.ts);
                transitions.push(("raised".to_owned(), frame.ts, None));
            }
            Some(raise_ts) if weight > 5.0 => {
                raised_at = None;
                transitions.push(("cleared".to_owned(), raise_ts, Some(frame.ts)));
            }
            _ => {}
        }
    }
    transitions
}

/// Frames grouped by device, each group in publish order.
pub fn by_device(frames: &[ReplayFrame]) -> BTreeMap<String, Vec<&ReplayFrame>> {
    let mut groups: BTreeMap<String, Vec<&ReplayFrame>> = BTreeMap::new();
    for frame in frames {
        groups.entry(frame.device.clone()).or_default().push(frame);
    }
    groups
}

/// Returns an MQTT client connected to `broker` under `client_id`, with its event loop polled
/// in the background.
pub async fn connected_client(broker: &(String, u16), client_id: &str) -> rumqttc::AsyncClient {
    let mut options = rumqttc::MqttOptions::new(client_id, &broker.0, broker.1);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 100);
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut connected = Some(connected_tx);
        while let Ok(event) = event_loop.poll().await {
            if let (rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)), Some(sender)) =
                (event, connected.take())
            {
                let _ = sender.send(());
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), connected_rx)
        .await
        .unwrap()
        .unwrap();
    client
}

/// Publishes one message at QoS 1 with a short-lived client and waits for the broker's
/// acknowledgement.
pub async fn publish_once(
    broker: &(String, u16),
    client_id: &str,
    topic: &str,
    payload: impl Into<Vec<u8>>,
) {
    let options = rumqttc::MqttOptions::new(client_id, &broker.0, broker.1);
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 10);
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.into())
        .await
        .unwrap();
    let acknowledged = async {
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) =
                event_loop.poll().await.unwrap()
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), acknowledged)
        .await
        .unwrap();
}

/// Returns the number of journal segment files in `journal`.
pub fn journal_segments(journal: &std::path::Path) -> usize {
    std::fs::read_dir(journal)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .path()
                .extension()
                .is_some_and(|extension| extension == "log")
        })
        .count()
}
