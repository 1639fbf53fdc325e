//! Fixtures of the notification tests: a webhook receiver that checks the HMAC signature,
//! an SMTP server (aiosmtpd, as `scripts/emulators` installs it), a PostgreSQL database per
//! test, and alarm events written straight to the alarm history.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::task::JoinHandle;
use valmetal_actors::rules::{Alarm, AlarmEvent, AlarmState, OperatorAction, Severity, Transition};
use valmetal_actors::{DeviceId, Value as FrameValue};
use valmetal_engine::store::AlarmHistory;

/// One request the webhook receiver took.
#[derive(Debug, Clone)]
pub struct ReceivedWebhook {
    pub delivery: String,
    pub body: Value,
    /// Whether `x-valmetal-signature` matched the receiver's own HMAC of the timestamp and body.
    pub signature_valid: bool,
}

/// An HTTP receiver of webhooks on loopback; it responds 200 to every signed request.
pub struct WebhookReceiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<ReceivedWebhook>>>,
    task: JoinHandle<()>,
}

impl WebhookReceiver {
    /// Starts a receiver on a free port.
    pub async fn start(secret: &str) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), secret).await
    }

    /// Starts a receiver on `addr`.
    pub async fn start_on(addr: SocketAddr, secret: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let secret = secret.as_bytes().to_vec();
        let store = Arc::clone(&received);
        let handler = move |headers: HeaderMap, body: Bytes| {
            let store = Arc::clone(&store);
            let secret = secret.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let signature_valid = verify_signature(
                    &secret,
                    &header("x-valmetal-timestamp"),
                    &body,
                    &header("x-valmetal-signature"),
                );
                store.lock().unwrap().push(ReceivedWebhook {
                    delivery: header("x-valmetal-delivery"),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    signature_valid,
                });
                if signature_valid {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }
        };
        let router = axum::Router::new().route("/hook", axum::routing::post(handler));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            addr,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<ReceivedWebhook> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Stops listening; later connections are refused.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Checks the documented scheme with the HMAC crate directly: `v1=` and the hex
/// HMAC-SHA256 of `{timestamp}.{body}`.
fn verify_signature(secret: &[u8], timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(expected) = header.strip_prefix("v1=") else {
        return false;
    };
    if timestamp.parse::<i64>().is_err() {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == expected
}

/// An aiosmtpd server on a free loopback port, storing each message in a Maildir.
pub struct SmtpServer {
    pub port: u16,
    maildir: tempfile::TempDir,
    child: std::process::Child,
}

impl SmtpServer {
    /// Starts aiosmtpd from `VALMETAL_TEST_AIOSMTPD`, by default the one `scripts/emulators`
    /// installs, and waits until it accepts connections.
    pub async fn start() -> Self {
        let program = std::env::var("VALMETAL_TEST_AIOSMTPD").map_or_else(
            |_| {
                let tools = std::env::var("VALMETAL_TOOLS_DIR")
                    .unwrap_or_else(|_| "/var/tmp/valmetal-tools".to_owned());
                PathBuf::from(tools).join("moto-venv/bin/aiosmtpd")
            },
            PathBuf::from,
        );
        assert!(
            program.is_file(),
            "aiosmtpd is needed at {} (VALMETAL_TEST_AIOSMTPD); run `scripts/emulators start` to install it",
            program.display()
        );
        let maildir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let child = std::process::Command::new(&program)
            .args(["-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            port,
            maildir,
            child,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "aiosmtpd did not listen on {port} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// Returns the text of every message received so far.
    pub fn messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.path().join("mail").join(folder))
            else {
                continue;
            };
            for entry in entries {
                messages.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
            }
        }
        messages
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns an active alarm of `rule` on `device`, raised at `raised_at`.
pub fn alarm(device: &str, rule: &str, severity: Severity, raised_at: i64) -> Alarm {
    Alarm {
        id: Arc::from(format!("{device}/{rule}/{raised_at}")),
        device: DeviceId::parse(device).unwrap(),
        rule: Arc::from(rule),
        severity,
        state: AlarmState::Active,
        key: Some(Arc::from("end_weight_kg")),
        value: Some(FrameValue::Number(1.5)),
        message: format!("{device}: {rule}"),
        raised_at,
        cleared_at: None,
        frame_ts: Some(raised_at),
        cleared_frame_ts: None,
        rule_version: Arc::from("test"),
        inputs: Vec::new(),
        flapping: false,
        acknowledged: None,
        cleared_by: None,
        shelved: None,
        shelved_until: None,
    }
}

/// Stores `transition` of `alarm` in the alarm history, as the engine's writer would.
pub async fn record(history: &AlarmHistory, alarm: &Alarm, transition: Transition) {
    record_all(history, std::slice::from_ref(alarm), transition).await;
}

/// Stores `transition` of each alarm, in one transaction.
pub async fn record_all(history: &AlarmHistory, alarms: &[Alarm], transition: Transition) {
    let operator = matches!(transition, Transition::Acknowledged).then(|| OperatorAction {
        by: Arc::from("alice"),
        at: alarms.first().map_or(0, |alarm| alarm.raised_at),
    });
    let events: Vec<AlarmEvent> = alarms
        .iter()
        .map(|alarm| AlarmEvent {
            transition,
            alarm: alarm.clone(),
            operator: operator.clone(),
        })
        .collect();
    history.insert(&events).await.unwrap();
}

/// Returns engine milliseconds of an RFC 3339 time.
pub fn at(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// Parses a `[notify]` section, checks it, and starts notifications on `database` with the
/// default device types and farms (`feedbin-*` is a `feed_bin` of farm `odrc`).
pub async fn notifications(
    database: &valmetal_engine::store::Database,
    toml_text: &str,
) -> valmetal_engine::notify::Notifications {
    let config: valmetal_engine::notify::NotifyConfig = toml::from_str(toml_text).unwrap();
    assert_eq!(config.problems(), Vec::<String>::new());
    let defaults = valmetal_engine::Config::default();
    valmetal_engine::notify::Notifications::new(
        &config,
        database.clone(),
        valmetal_actors::DeviceTypes::new(&defaults.device_types),
        valmetal_actors::Farms::new(&defaults.farms),
    )
    .await
    .unwrap()
}

/// Counts the outbox rows of each status, as `[("queued", 2), ...]`, by status name.
pub async fn status_counts(
    outbox: &valmetal_engine::notify::OutboxStore,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for row in outbox.list(None, None, 100_000).await.unwrap() {
        *counts.entry(row.status).or_insert(0) += 1;
    }
    counts
}
