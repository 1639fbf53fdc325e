//! Engine configuration: a TOML file, overridden by `VALMETAL_`-prefixed environment
//! variables (`VALMETAL_MQTT__HOST` sets `mqtt.host`), overridden by command-line flags.
//!
//! Every key, with its unit and default, is listed in `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use valmetal_actors::{DeviceTypePattern, FarmPattern};

pub use crate::auth::AuthConfig;
pub use crate::equipment::config::EquipmentConfig;
pub use crate::notify::NotifyConfig;
pub use crate::storage::config::StorageConfig;

/// Environment variable prefix of configuration overrides.
pub const ENV_PREFIX: &str = "VALMETAL_";

/// The whole engine configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub storage: StorageConfig,
    pub rules: RulesConfig,
    pub actors: ActorsConfig,
    pub gateway: GatewayConfig,
    /// Device id patterns and the device type each gives; the first match wins.
    pub device_types: Vec<DeviceTypePattern>,
    /// Device id patterns and the farm each gives, which selects rule overrides by farm.
    pub farms: Vec<FarmPattern>,
    /// Notifications to alert recipients; unset sends none.
    pub notify: Option<NotifyConfig>,
    /// Equipment usage counters, wear trends, maintenance plans and documents.
    pub equipment: EquipmentConfig,
}

/// The MQTT broker the engine subscribes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address. Default `127.0.0.1`.
    pub host: String,
    /// Broker TCP port. Default 1883.
    pub port: u16,
    /// Client id; with `clean_session = false` the broker keeps this id's session and queued
    /// QoS 1 messages while the engine is away. Default `valmetal-engine`.
    pub client_id: String,
    /// Topic prefix: frames arrive on `{prefix}/{device_id}/telemetry`. Default
    /// `valmetal/equipment`.
    pub topic_prefix: String,
    /// Subscription QoS, 0 or 1. Default 1.
    pub qos: u8,
    /// Keep-alive interval, e.g. `30s`. Default 30 s, at least 5 s.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Start with a fresh session instead of resuming the broker's. Default false.
    pub clean_session: bool,
    /// Largest accepted payload in bytes; larger messages are rejected. Default 262144.
    pub max_payload_bytes: usize,
    /// Maximum wait between reconnection attempts, e.g. `30s`. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub max_reconnect_delay: Duration,
}

/// The HTTP server of the dashboard, API, WebSocket and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address. Default `127.0.0.1:8080`; port 0 picks a free port.
    pub addr: SocketAddr,
}

/// Source of the alarm rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Directory of rule files (`*.toml`, one per device type). Unset: the bundled rules.
    pub dir: Option<PathBuf>,
    /// How often `dir` is checked for changed files, which are then reloaded without a
    /// restart. Default 2 s, at least 100 ms.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            dir: None,
            reload_interval: Duration::from_secs(2),
        }
    }
}

/// Device actor runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorsConfig {
    /// Arbiter threads hosting device actors; 0 means one per CPU core. Default 0.
    pub workers: usize,
    /// Messages a device actor queues before ingest waits for it. Default 256, at least 1.
    pub mailbox_capacity: usize,
}

/// WebSocket gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Alarm and status events one client may have queued before it is sent a fresh
    /// snapshot instead. Default 1024, at least 1.
    pub max_queued_events: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mqtt: MqttConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            storage: StorageConfig::default(),
            rules: RulesConfig::default(),
            actors: ActorsConfig::default(),
            gateway: GatewayConfig::default(),
            device_types: default_device_types(),
            farms: default_farms(),
            notify: None,
            equipment: EquipmentConfig::default(),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "valmetal-engine".into(),
            topic_prefix: "valmetal/equipment".into(),
            qos: 1,
            keep_alive: Duration::from_secs(30),
            clean_session: false,
            max_payload_bytes: 256 * 1024,
            max_reconnect_delay: Duration::from_secs(30),
        }
    }
}

impl MqttConfig {
    /// Returns one line per out-of-bounds value.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.host.trim().is_empty() {
            problems.push("`mqtt.host` is empty; set the broker's host name or address".to_owned());
        }
        if self.port == 0 {
            problems.push("`mqtt.port` is 0; set the broker's TCP port, usually 1883".to_owned());
        }
        if self.qos > 1 {
            problems.push(format!("`mqtt.qos` is {}; use 0 or 1", self.qos));
        }
        if self.client_id.is_empty() || self.client_id.len() > 128 {
            problems.push("`mqtt.client_id` must be 1 to 128 characters".to_owned());
        }
        if let Err(reason) = crate::ingest::topic::validate_prefix(&self.topic_prefix) {
            problems.push(format!("`mqtt.topic_prefix` {reason}"));
        }
        if self.keep_alive < Duration::from_secs(5) {
            problems.push(format!(
                "`mqtt.keep_alive` is {:?}; use at least 5s",
                self.keep_alive
            ));
        }
        let limit = crate::ingest::payload::MAX_PAYLOAD_BYTES_LIMIT;
        if !(1024..=limit).contains(&self.max_payload_bytes) {
            problems.push(format!(
                "`mqtt.max_payload_bytes` is {}; use 1024 to {limit}",
                self.max_payload_bytes
            ));
        }
        if self.max_reconnect_delay < Duration::from_secs(1) {
            problems.push("`mqtt.max_reconnect_delay` must be at least 1s".to_owned());
        }
        problems
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

impl Default for ActorsConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            mailbox_capacity: valmetal_actors::registry::DEFAULT_MAILBOX_CAPACITY,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_queued_events: valmetal_ws_gateway::hub::DEFAULT_MAX_QUEUED_EVENTS,
        }
    }
}

fn default_farms() -> Vec<FarmPattern> {
    let pattern = |pattern: &str, farm: &str| FarmPattern {
        pattern: pattern.into(),
        farm: farm.into(),
    };
    vec![pattern("feedbin-*", "odrc"), pattern("machine-*", "nab")]
}

fn default_device_types() -> Vec<DeviceTypePattern> {
    let pattern = |pattern: &str, device_type: &str| DeviceTypePattern {
        pattern: pattern.into(),
        device_type: device_type.into(),
    };
    vec![
        pattern("feedbin-*", "feed_bin"),
        pattern("machine-*", "machine"),
    ]
}

/// Error loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} not found; pass an existing file to --config")]
    FileNotFound { path: String },
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Parse(Vec<String>),
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads defaults, then the TOML file at `path` if given, then `VALMETAL_*` variables.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError`] when the file is missing or malformed, or when any value is
    /// out of bounds; every problem is listed.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError::FileNotFound {
                    path: path.display().to_string(),
                });
            }
            figment = figment.merge(Toml::file(path));
        }
        let sections = Env::prefixed(ENV_PREFIX)
            .filter(|key| is_section_key(key.as_str()))
            .split("__");
        let config: Config = figment
            .merge(sections)
            .extract()
            .map_err(|error| ConfigError::Parse(describe_errors(error)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every bound, listing all problems found.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::Invalid`] with one line per problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.mqtt.problems();
        problems.extend(self.storage.problems());
        problems.extend(self.auth.problems());
        if self.actors.mailbox_capacity == 0 {
            problems.push("`actors.mailbox_capacity` must be at least 1".to_owned());
        }
        if self.rules.reload_interval < Duration::from_millis(100) {
            problems.push("`rules.reload_interval` must be at least 100ms".to_owned());
        }
        if self.gateway.max_queued_events == 0 {
            problems.push("`gateway.max_queued_events` must be at least 1".to_owned());
        }
        if let Some(notify) = &self.notify {
            problems.extend(notify.problems());
        }
        problems.extend(self.equipment.problems());
        for (index, entry) in self.device_types.iter().enumerate() {
            if entry.pattern.is_empty() || entry.device_type.is_empty() {
                problems.push(format!(
                    "`device_types[{index}]` needs a non-empty `pattern` and `device_type`"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Returns the path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.storage.sqlite_path()
    }
}

/// Returns one line per error figment found, naming the key as the configuration file spells
/// it and where the value came from.
fn describe_errors(error: figment::Error) -> Vec<String> {
    error
        .into_iter()
        .map(|error| {
            let key = error.path.join(".");
            let source = error.metadata.as_ref().map(|metadata| {
                metadata
                    .source
                    .as_ref()
                    .map_or_else(|| metadata.name.to_string(), ToString::to_string)
            });
            match (key.is_empty(), source) {
                (true, Some(source)) => format!("{} (in {source})", error.kind),
                (true, None) => error.kind.to_string(),
                (false, Some(source)) => format!("`{key}`: {} (in {source})", error.kind),
                (false, None) => format!("`{key}`: {}", error.kind),
            }
        })
        .collect()
}

/// Sections that `VALMETAL_{SECTION}__{KEY}` variables may set. Other `VALMETAL_` variables,
/// such as the test suite's `VALMETAL_TEST_MQTT_ADDR`, are not configuration and are ignored.
const ENV_SECTIONS: [&str; 9] = [
    "mqtt",
    "http",
    "auth",
    "storage",
    "rules",
    "actors",
    "gateway",
    "notify",
    "equipment",
];

fn is_section_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ENV_SECTIONS.iter().any(|section| {
        key.strip_prefix(section)
            .is_some_and(|rest| rest.starts_with("__"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Durability;
    use crate::storage::{ShadowTarget, TimeSeriesTarget};

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn validate_lists_every_problem() {
        let mut config = Config::default();
        config.mqtt.qos = 2;
        config.mqtt.topic_prefix = "a/+/b".into();
        config.actors.mailbox_capacity = 0;
        let ConfigError::Invalid(problems) = config.validate().unwrap_err() else {
            panic!("expected invalid");
        };
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].contains("`mqtt.qos` is 2"));
        assert!(problems[1].contains("`mqtt.topic_prefix`"));
        assert!(problems[2].contains("`actors.mailbox_capacity`"));
    }

    #[test]
    fn load_reads_file_then_environment() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("engine.toml");
        std::fs::write(
            &path,
            "[mqtt]\nport = 1884\ntopic_prefix = \"farm/a\"\n[http]\naddr = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.mqtt.port, 1884);
        assert_eq!(config.mqtt.topic_prefix, "farm/a");
        assert_eq!(config.mqtt.host, "127.0.0.1");
        assert_eq!(config.http.addr.port(), 0);
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment::Jail fixes the closure's error type"
    )]
    fn load_takes_section_variables_only() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("VALMETAL_MQTT__PORT", "1999");
            jail.set_env("VALMETAL_HTTP__ADDR", "127.0.0.1:9999");
            jail.set_env("VALMETAL_EQUIPMENT__DOCUMENTS__BACKEND", "s3");
            jail.set_env("VALMETAL_EQUIPMENT__DOCUMENTS__BUCKET", "farm-documents");
            jail.set_env("VALMETAL_TEST_MQTT_ADDR", "127.0.0.1:1");
            jail.set_env("VALMETAL_UPDATE_SCREENSHOTS", "1");
            let config = Config::load(None).map_err(|error| error.to_string())?;
            assert_eq!(config.mqtt.port, 1999);
            assert_eq!(config.http.addr.port(), 9999);
            assert_eq!(
                config.equipment.documents.backend,
                crate::equipment::config::DocumentBackend::S3
            );
            assert_eq!(config.equipment.documents.bucket, "farm-documents");
            Ok(())
        });
    }

    #[test]
    fn every_table_section_is_settable_from_the_environment() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let sections: Vec<&String> = defaults
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, value)| value.is_object())
            .map(|(name, _)| name)
            .collect();
        for section in sections {
            assert!(
                ENV_SECTIONS.contains(&section.as_str()),
                "`{section}` is missing from ENV_SECTIONS"
            );
        }
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment::Jail fixes the closure's error type"
    )]
    fn storage_is_set_from_the_environment_as_a_container_would() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("VALMETAL_STORAGE__TIMESERIES", "[\"timestream\", \"sql\"]");
            jail.set_env("VALMETAL_STORAGE__SHADOWS", "dynamodb");
            jail.set_env("VALMETAL_STORAGE__DYNAMODB__TABLE", "prod-device-state");
            jail.set_env("VALMETAL_STORAGE__DYNAMODB__AWS__REGION", "ca-central-1");
            jail.set_env(
                "VALMETAL_STORAGE__DATABASE_URL",
                "postgres://valmetal@db/valmetal",
            );
            jail.set_env("VALMETAL_STORAGE__DATABASE_PASSWORD", "s3cret");
            jail.set_env("VALMETAL_STORAGE__JOURNAL__DURABILITY", "disk");
            let config = Config::load(None).map_err(|error| error.to_string())?;
            let storage = &config.storage;
            assert_eq!(
                storage.timeseries,
                [TimeSeriesTarget::Timestream, TimeSeriesTarget::Sql]
            );
            assert_eq!(storage.shadows, ShadowTarget::Dynamodb);
            assert_eq!(storage.dynamodb.table, "prod-device-state");
            assert_eq!(storage.dynamodb.aws.region, "ca-central-1");
            assert_eq!(storage.journal.durability, Durability::Disk);
            assert_eq!(
                storage.database_url_with_password().unwrap().as_deref(),
                Some("postgres://valmetal:s3cret@db/valmetal")
            );
            Ok(())
        });
    }

    #[test]
    fn load_reads_notify_section() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("engine.toml");
        std::fs::write(
            &path,
            r#"
[notify]
poll_interval = "250ms"

[[notify.channels]]
type = "webhook"
name = "ops"
url = "https://hooks.example.com/valmetal"
secret = { env = "VALMETAL_OPS_WEBHOOK_SECRET" }

[[notify.recipients]]
id = "ops"
channels = ["ops"]
quiet_hours = { start = "22:00", end = "06:00", time_zone = "Europe/Paris" }

[[notify.routes]]
id = "all"
recipients = ["ops", "nobody"]
"#,
        )
        .unwrap();
        let ConfigError::Invalid(problems) = Config::load(Some(&path)).unwrap_err() else {
            panic!("expected invalid");
        };
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("`nobody`"), "{problems:#?}");

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace(", \"nobody\"", "")).unwrap();
        let notify = Config::load(Some(&path)).unwrap().notify.unwrap();
        assert_eq!(notify.poll_interval, Duration::from_millis(250));
        assert_eq!(notify.routes[0].recipients, ["ops"]);
        assert!(Config::load(None).unwrap().notify.is_none());
    }

    #[test]
    fn load_rejects_unknown_key() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("engine.toml");
        std::fs::write(&path, "[mqtt]\nprot = 1884\n").unwrap();
        let message = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(message.contains("prot"), "{message}");
    }

    #[test]
    fn load_reports_missing_file() {
        let message = Config::load(Some(Path::new("/nonexistent/engine.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("/nonexistent/engine.toml not found"),
            "{message}"
        );
    }
}
