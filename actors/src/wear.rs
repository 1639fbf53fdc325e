//! Early warning of wear: a slow trend of one key, fitted by least squares over bucket means,
//! and the time at which that trend will cross the key's limit.
//!
//! Samples are averaged into fixed buckets (one hour by default), so fast swings such as a
//! daily cycle weigh less than the drift across the window. The trend is the regression line
//! through the bucket means of the last `window`, and the warning is on while the line reaches
//! the limit within `horizon`. It stays on until the projected crossing is more than twice the
//! horizon away, so a trend near the edge does not raise and clear on every sample.
//!
//! Like the usage counters, the tracker takes only samples newer than the last one it took,
//! so redelivered and late frames change nothing.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::usage::number_of;
use crate::value::Frame;

const HOUR_MS: f64 = 3_600_000.0;

/// The side of the limit that means wear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WearDirection {
    /// Wear shows as a rise towards the limit (vibration, current, bearing temperature).
    Rising,
    /// Wear shows as a fall towards the limit.
    Falling,
}

/// One watched key of a device type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WearConfig {
    /// The reported key; it must not contain `/`.
    pub key: String,
    pub direction: WearDirection,
    /// The level the trend must not reach, in the key's unit.
    pub limit: f64,
    /// Warn when the trend reaches the limit within this time. Default 24 h.
    #[serde(default = "default_horizon", with = "humantime_serde")]
    pub horizon: Duration,
    /// The time the trend is fitted over. Default 24 h.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// The length of one averaging bucket. Default 1 h.
    #[serde(default = "default_bucket", with = "humantime_serde")]
    pub bucket: Duration,
    /// Buckets needed in the window before a trend is fitted. Default 12.
    #[serde(default = "default_min_buckets")]
    pub min_buckets: usize,
}

fn default_horizon() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_window() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_bucket() -> Duration {
    Duration::from_secs(3600)
}

fn default_min_buckets() -> usize {
    12
}

/// The mean of the samples in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Device time at the bucket's start, in milliseconds since the Unix epoch.
    pub start: i64,
    pub sum: f64,
    pub count: u32,
}

/// A tracker's state, as stored with the device document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WearState {
    pub buckets: VecDeque<Bucket>,
    /// Device time of the last sample taken.
    pub last_ts: Option<i64>,
    /// The last sample's value.
    pub last_value: Option<f64>,
    /// Whether the warning is on.
    pub warning: bool,
}

/// The fitted trend at one device time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trend {
    /// Device time the trend is evaluated at.
    pub at: i64,
    /// The trend line's value at `at`.
    pub level: f64,
    /// The trend line's slope, in the key's unit per hour.
    pub slope_per_hour: f64,
    /// Hours from `at` until the line reaches the limit; `None` when it moves away from it,
    /// 0 when it is already past.
    pub crossing_in_hours: Option<f64>,
}

/// A change of a tracker's warning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WearChange {
    Raised(Trend),
    Cleared(Trend),
}

/// The trend tracker of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct WearTracker {
    config: WearConfig,
    state: WearState,
}

impl WearTracker {
    /// Creates a tracker with no samples.
    pub fn new(config: WearConfig) -> Self {
        Self {
            config,
            state: WearState::default(),
        }
    }

    /// Takes back a stored state.
    pub fn restore(&mut self, state: WearState) {
        self.state = state;
    }

    /// Returns the configuration.
    pub fn config(&self) -> &WearConfig {
        &self.config
    }

    /// Returns the state to store.
    pub fn state(&self) -> &WearState {
        &self.state
    }

    /// Takes the sample of `frame`, if it has one newer than the last, and returns the change
    /// of the warning it causes.
    pub fn observe(&mut self, frame: &Frame) -> Option<WearChange> {
        let sample = number_of(frame, &self.config.key)?;
        if self.state.last_ts.is_some_and(|last| frame.ts <= last) {
            return None;
        }
        self.state.last_ts = Some(frame.ts);
        self.state.last_value = Some(sample);
        self.add_sample(frame.ts, sample);
        let trend = self.trend(frame.ts)?;
        self.decide(trend)
    }

    /// Returns the trend at device time `at`, or `None` with too few buckets.
    pub fn trend(&self, at: i64) -> Option<Trend> {
        if self.state.buckets.len() < self.config.min_buckets.max(2) {
            return None;
        }
        let bucket_ms = duration_ms(self.config.bucket) as f64;
        let points: Vec<(f64, f64)> = self
            .state
            .buckets
            .iter()
            .map(|bucket| {
                let middle = bucket.start as f64 + bucket_ms / 2.0;
                (middle / HOUR_MS, bucket.sum / f64::from(bucket.count))
            })
            .collect();
        let (intercept, slope) = fit_line(&points)?;
        let level = intercept + slope * (at as f64 / HOUR_MS);
        Some(Trend {
            at,
            level,
            slope_per_hour: slope,
            crossing_in_hours: self.crossing_in_hours(level, slope),
        })
    }

    fn crossing_in_hours(&self, level: f64, slope: f64) -> Option<f64> {
        let distance = match self.config.direction {
            WearDirection::Rising => self.config.limit - level,
            WearDirection::Falling => level - self.config.limit,
        };
        if distance <= 0.0 {
            return Some(0.0);
        }
        let speed = match self.config.direction {
            WearDirection::Rising => slope,
            WearDirection::Falling => -slope,
        };
        (speed > 0.0).then(|| distance / speed)
    }

    fn decide(&mut self, trend: Trend) -> Option<WearChange> {
        let horizon_hours = duration_ms(self.config.horizon) as f64 / HOUR_MS;
        let crossing = trend.crossing_in_hours;
        if !self.state.warning && crossing.is_some_and(|hours| hours <= horizon_hours) {
            self.state.warning = true;
            return Some(WearChange::Raised(trend));
        }
        if self.state.warning && crossing.is_none_or(|hours| hours > 2.0 * horizon_hours) {
            self.state.warning = false;
            return Some(WearChange::Cleared(trend));
        }
        None
    }

    fn add_sample(&mut self, ts: i64, sample: f64) {
        let bucket_ms = duration_ms(self.config.bucket).max(1);
        let start = ts - ts.rem_euclid(bucket_ms);
        match self.state.buckets.back_mut() {
            Some(bucket) if bucket.start == start => {
                bucket.sum += sample;
                bucket.count += 1;
            }
            _ => self.state.buckets.push_back(Bucket {
                start,
                sum: sample,
                count: 1,
            }),
        }
        let oldest = start - duration_ms(self.config.window) + bucket_ms;
        while self
            .state
            .buckets
            .front()
            .is_some_and(|bucket| bucket.start < oldest)
        {
            self.state.buckets.pop_front();
        }
    }
}

/// Fits `y = intercept + slope * x` by least squares; `None` when every `x` is the same.
fn fit_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let count = points.len() as f64;
    let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / count;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / count;
    let spread: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    if spread == 0.0 {
        return None;
    }
    let covariance: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let slope = covariance / spread;
    Some((mean_y - slope * mean_x, slope))
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::value::Value;

    const HOUR: i64 = 3_600_000;

    fn config() -> WearConfig {
        WearConfig {
            key: "vibration".into(),
            direction: WearDirection::Rising,
            limit: 10.0,
            horizon: Duration::from_secs(24 * 3600),
            window: Duration::from_secs(24 * 3600),
            bucket: Duration::from_secs(3600),
            min_buckets: 6,
        }
    }

    fn frame(ts: i64, vibration: f64) -> Frame {
        Frame {
            ts,
            seq: None,
            values: vec![(Arc::from("vibration"), Value::Number(vibration))],
        }
    }

    #[test]
    fn rising_trend_warns_before_limit() {
        let mut tracker = WearTracker::new(config());
        let mut raised = None;
        for hour in 0..48 {
            let change = tracker.observe(&frame(hour * HOUR, 2.0 + 0.2 * hour as f64));
            if let Some(WearChange::Raised(trend)) = change {
                raised = Some((hour, trend));
                break;
            }
        }
        let (hour, trend) = raised.expect("a warning before the limit");
        assert!((trend.slope_per_hour - 0.2).abs() < 1e-9);
        let crossing = trend.crossing_in_hours.unwrap();
        assert!(crossing <= 24.0, "crossing in {crossing} h");
        assert!(
            hour + 24 >= 40,
            "warned at hour {hour}, limit reached at hour 40"
        );
    }

    #[test]
    fn flat_trend_never_warns() {
        let mut tracker = WearTracker::new(config());
        for hour in 0..72 {
            let wobble = if hour % 2 == 0 { 0.5 } else { -0.5 };
            assert_eq!(tracker.observe(&frame(hour * HOUR, 5.0 + wobble)), None);
        }
    }

    #[test]
    fn repeated_sample_is_ignored() {
        let mut tracker = WearTracker::new(config());
        tracker.observe(&frame(HOUR, 4.0));
        let before = tracker.state().clone();
        tracker.observe(&frame(HOUR, 9.0));
        tracker.observe(&frame(HOUR / 2, 9.0));
        assert_eq!(tracker.state(), &before);
    }

    #[test]
    fn warning_clears_when_trend_turns() {
        let mut tracker = WearTracker::new(config());
        let mut changes = Vec::new();
        for hour in 0..30 {
            changes.extend(tracker.observe(&frame(hour * HOUR, 2.0 + 0.3 * hour as f64)));
        }
        for hour in 30..80 {
            changes.extend(tracker.observe(&frame(hour * HOUR, 2.0)));
        }
        assert!(matches!(changes.first(), Some(WearChange::Raised(_))));
        assert!(matches!(changes.last(), Some(WearChange::Cleared(_))));
    }
}
