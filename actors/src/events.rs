//! Events device actors publish, and the trait through which the engine receives them.
//!
//! Actors call these methods on their own arbiter thread, so an implementation should return
//! quickly and not block, for example by handing the event to a bounded queue.

use std::sync::Arc;

use serde::Serialize;

use crate::device_id::DeviceId;
use crate::retained::Retained;
use crate::rules::{Alarm, AlarmEvent};
use crate::shadow::ReportedValue;
use crate::value::Value;

/// The reported keys that one frame changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowChange {
    pub device: DeviceId,
    pub device_type: Arc<str>,
    /// Shadow version after the change.
    pub version: u64,
    pub changes: Vec<(Arc<str>, ReportedValue)>,
    /// Device time of the newest frame accepted so far.
    pub last_frame_ts: Option<i64>,
    /// Engine time the frame was received, in milliseconds since the Unix epoch.
    pub last_seen: i64,
    pub online: bool,
    /// Kept alive until the change is stored.
    #[serde(skip)]
    pub retained: Option<Retained>,
}

/// A change of presence that no frame carried: the offline timer fired, or the device's
/// status topic reported it went away or came back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PresenceChange {
    pub device: DeviceId,
    pub device_type: Arc<str>,
    pub online: bool,
    pub last_seen: Option<i64>,
}

/// Desired values changed: what the device is asked to take, and what it has not reported yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredChange {
    pub device: DeviceId,
    /// Shadow version after the change.
    pub version: u64,
    /// Every desired value, with the engine time it was set.
    pub desired: Vec<(Arc<str>, ReportedValue)>,
    /// The desired values that differ from the reported ones.
    pub delta: Vec<(Arc<str>, Value)>,
    /// Engine time of the change, in milliseconds since the Unix epoch.
    pub at: i64,
}

/// The whole state of one device, as a query returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceSnapshot {
    pub device: DeviceId,
    pub device_type: Arc<str>,
    pub version: u64,
    pub reported: Vec<(Arc<str>, ReportedValue)>,
    pub desired: Vec<(Arc<str>, ReportedValue)>,
    pub last_frame_ts: Option<i64>,
    pub last_seen: Option<i64>,
    pub online: bool,
    pub alarms: Vec<Alarm>,
}

/// Receiver of everything device actors publish.
pub trait DeviceEvents: Send + Sync + 'static {
    /// Called once per frame that changed the shadow.
    fn shadow_changed(&self, change: &ShadowChange);
    /// Called for every alarm raise and clear.
    fn alarm_transition(&self, event: &AlarmEvent);
    /// Called when presence changes without a shadow change.
    fn presence_changed(&self, change: &PresenceChange);
    /// Called when an operator changes desired values.
    fn desired_changed(&self, change: &DesiredChange);
}
