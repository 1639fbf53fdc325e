//! The JSON messages of the dashboard WebSocket protocol (`docs/websocket-protocol.md`).

use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use valmetal_actors::rules::{Alarm, OperatorAction, Transition};
use valmetal_actors::{DeviceId, ReportedValue, Value};

/// Version of this protocol, sent in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A message from a dashboard.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Subscribe(Selection),
    Unsubscribe(Selection),
    Ping {
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
}

/// Devices named by a `subscribe` or `unsubscribe`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub devices: Vec<String>,
}

/// One device's whole state, as a snapshot carries it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceState {
    pub device: DeviceId,
    pub device_type: Arc<str>,
    /// The farm the device belongs to, which decides who may see it.
    pub farm: Option<Arc<str>>,
    pub version: u64,
    #[serde(serialize_with = "serialize_key_map")]
    pub reported: Vec<(Arc<str>, ReportedValue)>,
    /// Desired values, each with the engine time it was set.
    #[serde(serialize_with = "serialize_key_map")]
    pub desired: Vec<(Arc<str>, ReportedValue)>,
    /// Desired values the device has not reported yet.
    #[serde(serialize_with = "serialize_key_map")]
    pub delta: Vec<(Arc<str>, Value)>,
    pub last_frame_ts: Option<i64>,
    pub last_seen: Option<i64>,
    pub online: bool,
    #[serde(skip)]
    pub alarms: Vec<Alarm>,
}

/// Pending changes of one device, coalesced when the client is slow.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceUpdate {
    pub device: DeviceId,
    pub device_type: Arc<str>,
    pub version: u64,
    #[serde(serialize_with = "serialize_key_map")]
    pub changes: Vec<(Arc<str>, ReportedValue)>,
    pub last_frame_ts: Option<i64>,
    pub last_seen: i64,
    pub online: bool,
}

impl DeviceUpdate {
    /// Folds a newer update of the same device into this one: newest value per key, newest
    /// version and presence.
    pub fn merge(&mut self, newer: &DeviceUpdate) {
        for (key, value) in &newer.changes {
            match self.changes.iter_mut().find(|(name, _)| name == key) {
                Some((_, stored)) if stored.ts <= value.ts => *stored = value.clone(),
                Some(_) => {}
                None => self.changes.push((Arc::clone(key), value.clone())),
            }
        }
        self.version = self.version.max(newer.version);
        self.last_frame_ts = self.last_frame_ts.max(newer.last_frame_ts);
        self.last_seen = self.last_seen.max(newer.last_seen);
        self.online = newer.online;
    }
}

/// A message to a dashboard.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    Hello {
        server: &'static str,
        version: &'static str,
        protocol: u32,
    },
    Snapshot {
        devices: &'a [DeviceState],
        alarms: Vec<&'a Alarm>,
    },
    Update(&'a DeviceUpdate),
    Alarm {
        transition: Transition,
        alarm: &'a Alarm,
        /// The operator who made the transition; null when the rule or its timer did.
        operator: Option<&'a OperatorAction>,
    },
    Desired {
        device: &'a DeviceId,
        version: u64,
        #[serde(serialize_with = "serialize_key_map")]
        desired: &'a [(Arc<str>, ReportedValue)],
        #[serde(serialize_with = "serialize_key_map")]
        delta: &'a [(Arc<str>, Value)],
    },
    Status {
        device: &'a DeviceId,
        online: bool,
        last_seen: Option<i64>,
    },
    Pong {
        id: Option<&'a serde_json::Value>,
    },
    Error {
        code: ErrorCode,
        message: &'a str,
    },
}

/// Stable codes of `error` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidMessage,
    InvalidDeviceId,
    /// The device is unknown, or outside the farms the client's token grants.
    DeviceNotPermitted,
}

impl ServerMessage<'_> {
    /// Returns the `type` name, as metric labels use it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Snapshot { .. } => "snapshot",
            Self::Update(_) => "update",
            Self::Alarm { .. } => "alarm",
            Self::Desired { .. } => "desired",
            Self::Status { .. } => "status",
            Self::Pong { .. } => "pong",
            Self::Error { .. } => "error",
        }
    }

    /// Serializes the message as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|error| {
            format!(r#"{{"type":"error","code":"invalid_message","message":"serialization failed: {error}"}}"#)
        })
    }
}

/// Serializes key-value pairs as a JSON object, in their order.
fn serialize_key_map<S: Serializer, V: Serialize>(
    entries: &[(Arc<str>, V)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(entries.len()))?;
    for (key, value) in entries {
        map.serialize_entry(&**key, value)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use valmetal_actors::Value;

    use super::*;

    fn update(version: u64, changes: &[(&str, f64, i64)]) -> DeviceUpdate {
        DeviceUpdate {
            device: DeviceId::parse("bin-1").unwrap(),
            device_type: Arc::from("feed_bin"),
            version,
            changes: changes
                .iter()
                .map(|(key, value, ts)| {
                    (
                        Arc::from(*key),
                        ReportedValue {
                            value: Value::Number(*value),
                            ts: *ts,
                        },
                    )
                })
                .collect(),
            last_frame_ts: changes.iter().map(|(_, _, ts)| *ts).max(),
            last_seen: version as i64,
            online: true,
        }
    }

    #[test]
    fn merge_keeps_newest_value_per_key() {
        let mut pending = update(3, &[("w", 10.0, 100), ("i", 1.0, 100)]);
        pending.merge(&update(4, &[("w", 9.0, 200)]));
        pending.merge(&update(5, &[("w", 8.0, 150), ("d", 30.0, 150)]));
        let json: serde_json::Value = serde_json::to_value(&pending).unwrap();
        assert_eq!(json["version"], 5);
        assert_eq!(json["changes"]["w"]["value"], 9.0);
        assert_eq!(json["changes"]["w"]["ts"], 200);
        assert_eq!(json["changes"]["i"]["value"], 1.0);
        assert_eq!(json["changes"]["d"]["value"], 30.0);
        assert_eq!(json["last_frame_ts"], 200);
    }

    #[test]
    fn client_message_rejects_unknown_type() {
        let error =
            serde_json::from_str::<ClientMessage>(r#"{"type":"subscrib","all":true}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown variant `subscrib`"),
            "{error}"
        );
    }

    #[test]
    fn update_serializes_with_type_tag() {
        let text = ServerMessage::Update(&update(1, &[("w", 2.5, 10)])).to_json();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["type"], "update");
        assert_eq!(json["device"], "bin-1");
        assert_eq!(json["changes"]["w"]["value"], 2.5);
    }
}
