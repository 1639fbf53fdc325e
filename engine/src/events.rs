//! The engine's receiver of actor events: live state goes to the WebSocket hub, alarm
//! transitions also to the alarm history queue.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::error;
use valmetal_actors::rules::AlarmEvent;
use valmetal_actors::{DeviceEvents, PresenceChange, ShadowChange};
use valmetal_ws_gateway::Hub;

use crate::telemetry::StoreAlarmEventsDropped;

/// Capacity of the queue of alarm events waiting for the history store.
pub const ALARM_QUEUE_CAPACITY: usize = 16 * 1024;

/// Fans actor events out to the hub and the alarm history.
pub struct EngineEvents {
    hub: Arc<Hub>,
    alarm_history: mpsc::Sender<AlarmEvent>,
}

impl EngineEvents {
    pub fn new(hub: Arc<Hub>, alarm_history: mpsc::Sender<AlarmEvent>) -> Self {
        Self { hub, alarm_history }
    }
}

impl DeviceEvents for EngineEvents {
    fn shadow_changed(&self, change: &ShadowChange) {
        self.hub.publish_change(change);
    }

    fn alarm_transition(&self, event: &AlarmEvent) {
        self.hub.publish_alarm(event);
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
}
