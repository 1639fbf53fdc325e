//! Alarms: what the dashboard, the alarm history and notifications receive when a rule fires.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::device_id::DeviceId;
use crate::value::Value;

/// Urgency of an alarm, from most to least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Warning,
    Info,
}

impl Severity {
    /// Returns the lowercase name used in rule files, messages and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Major => "major",
            Self::Minor => "minor",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

/// Whether an alarm is still in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Active,
    Cleared,
}

/// One alarm of one device and rule, from its raise to its clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// `{device}/{rule}/{raised_at}`: the same for the raise and the clear of one alarm.
    pub id: Arc<str>,
    pub device: DeviceId,
    pub rule: Arc<str>,
    pub severity: Severity,
    pub state: AlarmState,
    /// The key whose value raised the alarm; `None` for rules on the device as a whole.
    pub key: Option<Arc<str>>,
    pub value: Option<Value>,
    pub message: String,
    /// Engine time of the raise, in milliseconds since the Unix epoch.
    pub raised_at: i64,
    /// Engine time of the clear, in milliseconds since the Unix epoch.
    pub cleared_at: Option<i64>,
    /// Device time of the frame that raised the alarm, or of the last frame before an
    /// offline alarm.
    pub frame_ts: Option<i64>,
    /// Device time of the frame that cleared the alarm.
    pub cleared_frame_ts: Option<i64>,
    /// Version of the rule file the alarm was raised under.
    pub rule_version: Arc<str>,
    /// Every key the rule reads, with its value and device time when the alarm was raised.
    pub inputs: Vec<AlarmInput>,
    /// True while the rule's condition flips faster than its flapping limit allows; the alarm
    /// then stays active and individual flips are not reported.
    pub flapping: bool,
    /// The operator who acknowledged the alarm, and when (engine time).
    pub acknowledged: Option<OperatorAction>,
    /// The operator who cleared the alarm by hand, and when; `None` for a clear by the rule.
    pub cleared_by: Option<OperatorAction>,
    /// The operator who shelved the alarm, and when; `shelved_until` gives the end.
    pub shelved: Option<OperatorAction>,
    /// Engine time at which a shelved alarm returns to view.
    pub shelved_until: Option<i64>,
}

/// Operator and engine time of an action on an alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorAction {
    pub by: Arc<str>,
    /// Engine time, in milliseconds since the Unix epoch.
    pub at: i64,
}

/// One input value recorded when an alarm was raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmInput {
    pub key: Arc<str>,
    pub value: Value,
    /// Device time of the value, in milliseconds since the Unix epoch.
    pub ts: i64,
}

/// The change an [`AlarmEvent`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Raised,
    Cleared,
    /// The alarm has persisted long enough to move to a higher severity.
    Escalated,
    /// The condition began flipping faster than the flapping limit; the alarm stays active.
    Flapping,
    /// Flipping stopped while the condition still holds; the alarm stays active.
    Settled,
    /// An operator acknowledged the alarm, active or cleared.
    Acknowledged,
    /// An operator shelved the active alarm until a time.
    Shelved,
    /// The shelving ended, by an operator or because its time passed.
    Unshelved,
}

impl Transition {
    /// Returns the lowercase name used in messages and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Cleared => "cleared",
            Self::Escalated => "escalated",
            Self::Flapping => "flapping",
            Self::Settled => "settled",
            Self::Acknowledged => "acknowledged",
            Self::Shelved => "shelved",
            Self::Unshelved => "unshelved",
        }
    }
}

/// An alarm transition, with the alarm as it is after the transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmEvent {
    pub transition: Transition,
    pub alarm: Alarm,
    /// The operator who caused the transition; `None` when the rule or its timer did.
    pub operator: Option<OperatorAction>,
}
