//! The engine's receiver of actor events: live state goes to the WebSocket hub and marks the
//! device for storage; alarm transitions also go to the alarm history queue.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::error;
use valmetal_actors::rules::AlarmEvent;
use valmetal_actors::{DesiredChange, DeviceEvents, Farms, PresenceChange, ShadowChange};
use valmetal_ws_gateway::Hub;

use crate::storage::ShadowQueue;
use crate::telemetry::{OutgoingMessageDropped, StoreAlarmEventsDropped};

/// Capacity of the queue of alarm events waiting for the history store.
pub const ALARM_QUEUE_CAPACITY: usize = 16 * 1024;

/// Capacity of the queue of messages waiting to be published to devices.
pub const OUTGOING_QUEUE_CAPACITY: usize = 4096;

/// A message for a device, published by the MQTT connection.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Fans actor events out to the hub, storage, the alarm history and, for desired values, the
/// devices.
pub struct EngineEvents {
    hub: Arc<Hub>,
    storage: ShadowQueue,
    farms: Farms,
    alarm_history: mpsc::Sender<AlarmEvent>,
    outgoing: mpsc::Sender<OutgoingMessage>,
    topic_prefix: String,
}

impl EngineEvents {
    pub fn new(
        hub: Arc<Hub>,
        storage: ShadowQueue,
        farms: Farms,
        alarm_history: mpsc::Sender<AlarmEvent>,
        outgoing: mpsc::Sender<OutgoingMessage>,
        topic_prefix: String,
    ) -> Self {
        Self {
            hub,
            storage,
            farms,
            alarm_history,
            outgoing,
            topic_prefix,
        }
    }
}

/// Returns the delta document sent to a device on `{prefix}/{device}/shadow/update/delta`,
/// shaped as AWS IoT Device Shadow shapes it: the desired values not yet reported, with
/// per-key metadata, the version and a timestamp in epoch seconds.
pub fn delta_document(change: &DesiredChange) -> serde_json::Value {
    let seconds = |millis: i64| millis / 1000;
    let mut state = serde_json::Map::new();
    let mut metadata = serde_json::Map::new();
    for (key, value) in &change.delta {
        state.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or_default(),
        );
        let set_at = change
            .desired
            .iter()
            .find(|(name, _)| name == key)
            .map_or(change.at, |(_, desired)| desired.ts);
        metadata.insert(
            key.to_string(),
            serde_json::json!({ "timestamp": seconds(set_at) }),
        );
    }
    serde_json::json!({
        "version": change.version,
        "timestamp": seconds(change.at),
        "state": state,
        "metadata": metadata,
    })
}

impl DeviceEvents for EngineEvents {
    fn shadow_changed(&self, change: &ShadowChange) {
        self.hub.publish_change(change);
        self.storage
            .changed(&change.device, change.retained.clone());
        self.storage.seen(
            &change.device,
            &change.device_type,
            self.farms.farm_of(change.device.as_str()).as_deref(),
        );
    }

    fn alarm_transition(&self, event: &AlarmEvent) {
        self.hub.publish_alarm(event);
        self.storage.changed(&event.alarm.device, None);
        // NOTE: a full queue drops the history row (counted and logged); the live alarm state
        // and the dashboard are unaffected. The queue has room for 16,384 events.
        if let Err(dropped) = self.alarm_history.try_send(event.clone()) {
            StoreAlarmEventsDropped(1).emit();
            let event = dropped.into_inner();
            error!(alarm.id = %event.alarm.id, device.id = %event.alarm.device, "Alarm history queue full; event not stored");
        }
    }

    fn presence_changed(&self, change: &PresenceChange) {
        self.hub.publish_presence(change);
    }

    fn desired_changed(&self, change: &DesiredChange) {
        self.hub.publish_desired(change);
        self.storage.changed(&change.device, None);
        if change.delta.is_empty() {
            return;
        }
        let message = OutgoingMessage {
            topic: format!(
                "{}/{}/shadow/update/delta",
                self.topic_prefix, change.device
            ),
            payload: delta_document(change).to_string().into_bytes(),
        };
        if self.outgoing.try_send(message).is_err() {
            OutgoingMessageDropped.emit();
            error!(device.id = %change.device, "Outgoing MQTT queue full; delta not sent, the next desired change sends it again");
        }
    }
}
