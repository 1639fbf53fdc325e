//! Usage counters of one device: run hours, starts and totals of a quantity, counted from the
//! frames the device actor applies.
//!
//! Each counter keeps the device time of the last sample it counted and takes only samples
//! newer than that, so a redelivered frame, a duplicate without `seq` and a late frame never
//! add to a counter twice. A late frame is not counted at all: the counters see the device's
//! values as a step function through its in-order samples.
//!
//! Counters are lifetime totals. Maintenance work orders record the values at the time of the
//! work and count from there, so nothing here is ever reset.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::value::Frame;

/// Default longest interval between two samples that still counts as run time.
pub const DEFAULT_MAX_GAP: Duration = Duration::from_secs(15 * 60);

/// The quantity a usage counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterKind {
    /// Hours during which `key` was above `above`. The time between two samples counts when
    /// the earlier sample was above the level, up to `max_gap` per interval, so a device that
    /// falls silent while running does not count the silence.
    RunHours,
    /// Starts: how often `key` went from at or below `above` to above it.
    Starts,
    /// The sum of the decreases of a quantity, such as feed delivered from a bin's weight.
    /// With `start_key`, each frame's own drop from `start_key` to `key` is added; without
    /// it, each fall of `key` from the previous sample. Rises (refills) are never added.
    Drops,
}

/// One configured counter of a device type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterConfig {
    /// The counter's name, unique per device type: `run_hours`, `starts`, `feed_delivered_kg`.
    pub name: String,
    pub kind: CounterKind,
    /// The reported key whose samples drive the counter.
    pub key: String,
    /// The level above which the device counts as running (`run_hours`, `starts`). Default 0.
    #[serde(default)]
    pub above: f64,
    /// For `drops`: the key holding the quantity at the start of the frame's interval.
    #[serde(default)]
    pub start_key: Option<String>,
    /// For `run_hours`: the longest interval between two samples that counts. Default 15 min.
    #[serde(default = "default_max_gap", with = "humantime_serde")]
    pub max_gap: Duration,
}

fn default_max_gap() -> Duration {
    DEFAULT_MAX_GAP
}

/// The state of one counter, as stored with the device document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterState {
    /// The lifetime total: hours, starts, or the quantity's unit.
    pub value: f64,
    /// Device time of the last sample counted, in milliseconds since the Unix epoch.
    pub last_ts: Option<i64>,
    /// The value of the counter's key at `last_ts`.
    pub last_sample: Option<f64>,
}

/// The counters of one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageCounters {
    configs: Vec<CounterConfig>,
    states: BTreeMap<String, CounterState>,
}

impl UsageCounters {
    /// Creates the counters of `configs`, all at zero.
    pub fn new(configs: Vec<CounterConfig>) -> Self {
        Self {
            configs,
            states: BTreeMap::new(),
        }
    }

    /// Takes back stored states. Counters no longer configured are kept unchanged, so a
    /// configuration mistake loses no totals.
    pub fn restore(&mut self, states: &BTreeMap<String, CounterState>) {
        self.states.extend(
            states
                .iter()
                .map(|(name, state)| (name.clone(), state.clone())),
        );
    }

    /// Returns every counter's state by name.
    pub fn states(&self) -> &BTreeMap<String, CounterState> {
        &self.states
    }

    /// Counts `frame`; samples not newer than a counter's last counted sample are skipped.
    pub fn observe(&mut self, frame: &Frame) {
        for config in &self.configs {
            let Some(sample) = number_of(frame, &config.key) else {
                continue;
            };
            let state = self.states.entry(config.name.clone()).or_default();
            if state.last_ts.is_some_and(|last| frame.ts <= last) {
                continue;
            }
            state.value += increment(config, state, frame, sample);
            state.last_ts = Some(frame.ts);
            state.last_sample = Some(sample);
        }
    }
}

/// Returns what `sample`, taken at `frame.ts`, adds to a counter in `state`.
fn increment(config: &CounterConfig, state: &CounterState, frame: &Frame, sample: f64) -> f64 {
    let previous = state.last_ts.zip(state.last_sample);
    match (config.kind, previous) {
        (CounterKind::RunHours, Some((last_ts, last_sample))) if last_sample > config.above => {
            let max_gap_ms = i64::try_from(config.max_gap.as_millis()).unwrap_or(i64::MAX);
            let counted_ms = (frame.ts - last_ts).min(max_gap_ms);
            counted_ms as f64 / 3_600_000.0
        }
        (CounterKind::Starts, Some((_, last_sample)))
            if last_sample <= config.above && sample > config.above =>
        {
            1.0
        }
        (CounterKind::Drops, _) => match &config.start_key {
            Some(start_key) => {
                number_of(frame, start_key).map_or(0.0, |start| (start - sample).max(0.0))
            }
            None => previous.map_or(0.0, |(_, last_sample)| (last_sample - sample).max(0.0)),
        },
        _ => 0.0,
    }
}

/// Returns the number `frame` reports for `key`.
pub(crate) fn number_of(frame: &Frame, key: &str) -> Option<f64> {
    frame
        .values
        .iter()
        .find(|(name, _)| &**name == key)
        .and_then(|(_, value)| value.as_number())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;
    use std::sync::Arc;

    const HOUR: i64 = 3_600_000;

    fn frame(ts: i64, values: &[(&str, f64)]) -> Frame {
        Frame {
            ts,
            seq: None,
            values: values
                .iter()
                .map(|(key, value)| (Arc::from(*key), Value::Number(*value)))
                .collect(),
        }
    }

    fn run_hours() -> CounterConfig {
        CounterConfig {
            name: "run_hours".into(),
            kind: CounterKind::RunHours,
            key: "current_a".into(),
            above: 1.0,
            start_key: None,
            max_gap: Duration::from_secs(2 * 3600),
        }
    }

    fn value(counters: &UsageCounters, name: &str) -> f64 {
        counters.states()[name].value
    }

    #[test]
    fn run_hours_count_time_above_level() {
        let mut counters = UsageCounters::new(vec![run_hours()]);
        counters.observe(&frame(0, &[("current_a", 5.0)]));
        counters.observe(&frame(HOUR, &[("current_a", 0.0)]));
        counters.observe(&frame(2 * HOUR, &[("current_a", 4.0)]));
        counters.observe(&frame(3 * HOUR, &[("current_a", 4.0)]));
        assert_eq!(value(&counters, "run_hours"), 2.0);
    }

    #[test]
    fn run_hours_cap_silent_gap() {
        let mut counters = UsageCounters::new(vec![run_hours()]);
        counters.observe(&frame(0, &[("current_a", 5.0)]));
        counters.observe(&frame(10 * HOUR, &[("current_a", 5.0)]));
        assert_eq!(value(&counters, "run_hours"), 2.0);
    }

    #[test]
    fn repeated_and_late_samples_add_nothing() {
        let mut counters = UsageCounters::new(vec![run_hours()]);
        counters.observe(&frame(0, &[("current_a", 5.0)]));
        counters.observe(&frame(HOUR, &[("current_a", 5.0)]));
        counters.observe(&frame(HOUR, &[("current_a", 5.0)]));
        counters.observe(&frame(HOUR / 2, &[("current_a", 5.0)]));
        assert_eq!(value(&counters, "run_hours"), 1.0);
    }

    #[test]
    fn starts_count_rising_edges() {
        let mut counters = UsageCounters::new(vec![CounterConfig {
            name: "starts".into(),
            kind: CounterKind::Starts,
            key: "current_a".into(),
            above: 1.0,
            start_key: None,
            max_gap: DEFAULT_MAX_GAP,
        }]);
        for (step, current) in [0.0, 3.0, 3.0, 0.5, 2.0, 0.0].into_iter().enumerate() {
            counters.observe(&frame(step as i64 * 1_000, &[("current_a", current)]));
        }
        assert_eq!(value(&counters, "starts"), 2.0);
    }

    #[test]
    fn drops_skip_refills() {
        let mut counters = UsageCounters::new(vec![CounterConfig {
            name: "feed_kg".into(),
            kind: CounterKind::Drops,
            key: "weight_kg".into(),
            above: 0.0,
            start_key: None,
            max_gap: DEFAULT_MAX_GAP,
        }]);
        for (step, weight) in [30.0, 28.5, 27.0, 40.0, 39.0].into_iter().enumerate() {
            counters.observe(&frame(step as i64 * 1_000, &[("weight_kg", weight)]));
        }
        assert_eq!(value(&counters, "feed_kg"), 4.0);
    }

    #[test]
    fn drops_within_frame_use_start_key() {
        let mut counters = UsageCounters::new(vec![CounterConfig {
            name: "feed_kg".into(),
            kind: CounterKind::Drops,
            key: "end_kg".into(),
            above: 0.0,
            start_key: Some("start_kg".into()),
            max_gap: DEFAULT_MAX_GAP,
        }]);
        counters.observe(&frame(1_000, &[("start_kg", 10.0), ("end_kg", 9.5)]));
        counters.observe(&frame(2_000, &[("start_kg", 30.0), ("end_kg", 29.0)]));
        counters.observe(&frame(2_000, &[("start_kg", 30.0), ("end_kg", 29.0)]));
        assert_eq!(value(&counters, "feed_kg"), 1.5);
    }

    #[test]
    fn counter_config_parses_from_toml() {
        let config: CounterConfig = toml::from_str(
            "name = \"run_hours\"\nkind = \"run_hours\"\nkey = \"current_a\"\nabove = 0.5\nmax_gap = \"5m\"",
        )
        .unwrap();
        assert_eq!(config.kind, CounterKind::RunHours);
        assert_eq!(config.max_gap, Duration::from_secs(300));
    }
}
