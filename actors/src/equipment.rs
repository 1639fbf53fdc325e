//! The equipment state a device actor keeps besides the shadow: usage counters and wear
//! trends, configured per device type, and the alarms their state raises.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::device_id::DeviceId;
use crate::rules::{AlarmInput, ExternalCondition, Severity};
use crate::usage::{CounterConfig, CounterState, UsageCounters};
use crate::value::{Frame, Value};
use crate::wear::{Trend, WearChange, WearConfig, WearDirection, WearState, WearTracker};

/// Prefix of the rule name of wear alarms: `wear.{key}`.
pub const WEAR_RULE_PREFIX: &str = "wear.";
/// Prefix of the rule name of maintenance alarms: `maintenance.{task}`.
pub const MAINTENANCE_RULE_PREFIX: &str = "maintenance.";

/// The counters and wear trends of one device type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EquipmentProfile {
    pub device_type: String,
    #[serde(default)]
    pub counters: Vec<CounterConfig>,
    #[serde(default)]
    pub wear: Vec<WearConfig>,
}

/// Profiles by device type.
#[derive(Debug, Clone, Default)]
pub struct EquipmentProfiles(HashMap<Arc<str>, Arc<EquipmentProfile>>);

impl EquipmentProfiles {
    /// Builds the lookup; a later profile of the same device type replaces an earlier one.
    pub fn new(profiles: &[EquipmentProfile]) -> Self {
        Self(
            profiles
                .iter()
                .map(|profile| {
                    (
                        Arc::from(profile.device_type.as_str()),
                        Arc::new(profile.clone()),
                    )
                })
                .collect(),
        )
    }

    /// Returns the profile of `device_type`, if one is configured.
    pub fn profile_for(&self, device_type: &str) -> Option<Arc<EquipmentProfile>> {
        self.0.get(device_type).cloned()
    }
}

/// Usage counters and wear trends as stored with the device document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageState {
    #[serde(default)]
    pub counters: BTreeMap<String, CounterState>,
    /// Wear tracker states by key.
    #[serde(default)]
    pub wear: BTreeMap<String, WearState>,
}

/// One wear tracker as a query returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WearReport {
    pub key: String,
    pub direction: WearDirection,
    pub limit: f64,
    pub warning: bool,
    /// The trend at the last sample, when enough buckets are filled.
    pub trend: Option<Trend>,
}

/// A device's usage counters and wear trends, as a query returns them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    pub device: DeviceId,
    pub device_type: Arc<str>,
    pub counters: BTreeMap<String, CounterState>,
    pub wear: Vec<WearReport>,
}

/// A device's usage counters and wear trends.
#[derive(Debug, Clone, Default)]
pub struct DeviceUsage {
    counters: UsageCounters,
    wear: Vec<WearTracker>,
}

impl DeviceUsage {
    /// Creates the trackers of `profile`, or none without one.
    pub fn new(profile: Option<&EquipmentProfile>) -> Self {
        let Some(profile) = profile else {
            return Self::default();
        };
        Self {
            counters: UsageCounters::new(profile.counters.clone()),
            wear: profile.wear.iter().cloned().map(WearTracker::new).collect(),
        }
    }

    /// Takes back a stored state.
    pub fn restore(&mut self, state: &UsageState) {
        self.counters.restore(&state.counters);
        for tracker in &mut self.wear {
            if let Some(stored) = state.wear.get(&tracker.config().key) {
                tracker.restore(stored.clone());
            }
        }
    }

    /// Returns the state to store.
    pub fn state(&self) -> UsageState {
        UsageState {
            counters: self.counters.states().clone(),
            wear: self
                .wear
                .iter()
                .map(|tracker| (tracker.config().key.clone(), tracker.state().clone()))
                .collect(),
        }
    }

    /// Returns the counters by name.
    pub fn counters(&self) -> &BTreeMap<String, CounterState> {
        self.counters.states()
    }

    /// Returns each wear tracker's warning and current trend.
    pub fn wear_reports(&self) -> Vec<WearReport> {
        self.wear
            .iter()
            .map(|tracker| WearReport {
                key: tracker.config().key.clone(),
                direction: tracker.config().direction,
                limit: tracker.config().limit,
                warning: tracker.state().warning,
                trend: tracker.state().last_ts.and_then(|last| tracker.trend(last)),
            })
            .collect()
    }

    /// Counts `frame` and returns, per wear rule whose warning changed, the alarm condition
    /// (`None` to clear).
    pub fn observe(
        &mut self,
        device: &str,
        frame: &Frame,
    ) -> Vec<(Arc<str>, Option<ExternalCondition>)> {
        self.counters.observe(frame);
        let mut changes = Vec::new();
        for tracker in &mut self.wear {
            let rule: Arc<str> = Arc::from(format!("{WEAR_RULE_PREFIX}{}", tracker.config().key));
            match tracker.observe(frame) {
                Some(WearChange::Raised(trend)) => {
                    let condition = wear_condition(device, &rule, tracker, &trend);
                    changes.push((rule, Some(condition)));
                }
                Some(WearChange::Cleared(_)) => changes.push((rule, None)),
                None => {}
            }
        }
        changes
    }
}

/// Builds the alarm of a wear warning, whose inputs explain the projection.
fn wear_condition(
    device: &str,
    rule: &Arc<str>,
    tracker: &WearTracker,
    trend: &Trend,
) -> ExternalCondition {
    let config = tracker.config();
    let key: Arc<str> = Arc::from(config.key.as_str());
    let hours = trend.crossing_in_hours.unwrap_or(0.0);
    let crossing_at = trend.at + (hours * 3_600_000.0) as i64;
    let movement = match config.direction {
        WearDirection::Rising => "rising",
        WearDirection::Falling => "falling",
    };
    let message = format!(
        "{device}: {key} trend {level:.1} {movement} {speed:.2}/h, reaches {limit} in about {hours:.1} h",
        level = trend.level,
        speed = trend.slope_per_hour.abs(),
        limit = config.limit,
    );
    let input = |name: &str, value: f64| AlarmInput {
        key: Arc::from(format!("{key}.{name}")),
        value: Value::Number(value),
        ts: trend.at,
    };
    let last_value = tracker.state().last_value.unwrap_or(trend.level);
    ExternalCondition {
        rule: Arc::clone(rule),
        severity: Severity::Warning,
        message,
        key: Some(Arc::clone(&key)),
        value: Some(Value::Number(last_value)),
        inputs: vec![
            AlarmInput {
                key: Arc::clone(&key),
                value: Value::Number(last_value),
                ts: trend.at,
            },
            input("trend_level", trend.level),
            input("slope_per_hour", trend.slope_per_hour),
            input("limit", config.limit),
            input("crossing_in_hours", hours),
            input("crossing_at", crossing_at as f64),
        ],
        quiet_after_clear_ms: 0,
    }
}
