//! The evolving state of each condition leaf for one device.
//!
//! Frame-driven leaves measure time in device time (the frames' `ts`); no-data leaves measure
//! it on the engine's clock, because silence has no device time.

use std::collections::VecDeque;

use super::condition::{Direction, Leaf, Verdict};
use crate::shadow::Shadow;
use crate::value::Value;

/// Samples a rate-of-change leaf keeps, whatever its window.
const MAX_RATE_SAMPLES: usize = 4096;

/// State of one leaf.
#[derive(Debug, Clone, PartialEq)]
pub enum LeafState {
    Flag(bool),
    Rate {
        samples: VecDeque<(i64, f64)>,
        active: bool,
    },
    Stale {
        value: Option<Value>,
        since: i64,
        active: bool,
    },
    Count {
        inner: Box<LeafState>,
        events: VecDeque<i64>,
        active: bool,
    },
    NoData {
        last_seen: Option<i64>,
        active: bool,
    },
    Desired {
        /// Engine time the desired value was set, while the reported value does not match it.
        pending_since: Option<i64>,
        active: bool,
    },
}

impl LeafState {
    /// Returns the initial, inactive state of `leaf`.
    pub fn new(leaf: &Leaf) -> Self {
        match leaf {
            Leaf::Threshold(_) | Leaf::Range(_) | Leaf::Equals { .. } => Self::Flag(false),
            Leaf::RateOfChange { .. } => Self::Rate {
                samples: VecDeque::new(),
                active: false,
            },
            Leaf::Stale { .. } => Self::Stale {
                value: None,
                since: 0,
                active: false,
            },
            Leaf::Count { inner, .. } => Self::Count {
                inner: Box::new(Self::new(inner)),
                events: VecDeque::new(),
                active: false,
            },
            Leaf::NoData { .. } => Self::NoData {
                last_seen: None,
                active: false,
            },
            Leaf::DesiredNotReached { .. } => Self::Desired {
                pending_since: None,
                active: false,
            },
        }
    }

    /// Returns whether the leaf is on.
    pub fn is_active(&self) -> bool {
        match self {
            Self::Flag(active) => *active,
            Self::Rate { active, .. }
            | Self::Stale { active, .. }
            | Self::Count { active, .. }
            | Self::NoData { active, .. }
            | Self::Desired { active, .. } => *active,
        }
    }

    /// Compares a desired-value leaf's key in `shadow` at engine time `now`: whether a desired
    /// value is set and not yet reported, and since when. Other leaves are left as they are.
    pub fn refresh_desired(&mut self, leaf: &Leaf, shadow: &Shadow, now: i64) {
        let (
            Leaf::DesiredNotReached {
                key,
                within,
                tolerance,
            },
            Self::Desired {
                pending_since,
                active,
            },
        ) = (leaf, self)
        else {
            return;
        };
        let Some(desired) = shadow.desired_value(key) else {
            *pending_since = None;
            *active = false;
            return;
        };
        let reached = shadow
            .get(key)
            .is_some_and(|reported| matches_within(&reported.value, &desired.value, *tolerance));
        if reached {
            *pending_since = None;
            *active = false;
            return;
        }
        let since = *pending_since.get_or_insert(desired.ts);
        *active = now - since >= duration_ms(*within);
    }

    /// Updates the leaf from a frame of device time `ts`, received at engine time `now`.
    /// `value` is the frame's value of the leaf's key, if it has one.
    pub fn on_frame(&mut self, leaf: &Leaf, value: Option<&Value>, ts: i64, now: i64) {
        if let (Leaf::NoData { key, .. }, Self::NoData { last_seen, active }) = (leaf, &mut *self) {
            if key.is_none() || value.is_some() || last_seen.is_none() {
                *last_seen = Some(now);
            }
            if key.is_none() || value.is_some() {
                *active = false;
            }
            return;
        }
        if let Some(value) = value {
            self.on_value(leaf, value, ts);
        }
    }

    fn on_value(&mut self, leaf: &Leaf, value: &Value, ts: i64) {
        match (leaf, self) {
            (Leaf::Threshold(threshold), Self::Flag(active)) => {
                if let Some(number) = value.as_number() {
                    match threshold.judge(*active, number) {
                        Verdict::Raise => *active = true,
                        Verdict::Clear => *active = false,
                        Verdict::Hold => {}
                    }
                }
            }
            (Leaf::Range(range), Self::Flag(active)) => {
                if let Some(number) = value.as_number() {
                    *active = range.next_state(*active, number);
                }
            }
            (
                Leaf::Equals {
                    value: expected,
                    negate,
                    ..
                },
                Self::Flag(active),
            ) => {
                *active = (value == expected) != *negate;
            }
            (
                Leaf::RateOfChange {
                    direction,
                    limit,
                    per,
                    ..
                },
                Self::Rate { samples, active },
            ) => {
                if let Some(number) = value.as_number() {
                    let per_ms = duration_ms(*per);
                    samples.push_back((ts, number));
                    while samples.len() > MAX_RATE_SAMPLES
                        || samples
                            .front()
                            .is_some_and(|(first, _)| *first < ts - 2 * per_ms)
                    {
                        samples.pop_front();
                    }
                    *active = rate_over(samples, per_ms).is_some_and(|rate| match direction {
                        Direction::Above => rate > *limit,
                        Direction::Below => rate < -*limit,
                    });
                }
            }
            (
                Leaf::Stale { unchanged_for, .. },
                Self::Stale {
                    value: last,
                    since,
                    active,
                },
            ) => {
                if last.as_ref() == Some(value) {
                    *active = ts - *since >= duration_ms(*unchanged_for);
                } else {
                    *last = Some(value.clone());
                    *since = ts;
                    *active = false;
                }
            }
            (
                Leaf::Count {
                    inner,
                    at_least,
                    within,
                },
                Self::Count {
                    inner: inner_state,
                    events,
                    active,
                },
            ) => {
                let was_on = inner_state.is_active();
                inner_state.on_value(inner, value, ts);
                if !was_on && inner_state.is_active() {
                    events.push_back(ts);
                }
                while events
                    .front()
                    .is_some_and(|first| *first <= ts - duration_ms(*within))
                {
                    events.pop_front();
                }
                *active = events.len() >= *at_least as usize;
            }
            _ => {}
        }
    }

    /// Updates a time-driven leaf at engine time `now`; other leaves do not change without
    /// frames.
    pub fn on_tick(&mut self, leaf: &Leaf, now: i64) {
        if let (
            Leaf::DesiredNotReached { within, .. },
            Self::Desired {
                pending_since: Some(since),
                active,
            },
        ) = (leaf, &mut *self)
        {
            *active = now - *since >= duration_ms(*within);
            return;
        }
        if let (
            Leaf::NoData { after, .. },
            Self::NoData {
                last_seen: Some(seen),
                active,
            },
        ) = (leaf, self)
        {
            *active = now - *seen >= duration_ms(*after);
        }
    }

    /// Returns the engine time at which a no-data leaf turns on, if it is waiting to.
    pub fn deadline(&self, leaf: &Leaf) -> Option<i64> {
        match (leaf, self) {
            (
                Leaf::NoData { after, .. },
                Self::NoData {
                    last_seen: Some(seen),
                    active: false,
                },
            ) => Some(seen + duration_ms(*after)),
            (
                Leaf::DesiredNotReached { within, .. },
                Self::Desired {
                    pending_since: Some(since),
                    active: false,
                },
            ) => Some(since + duration_ms(*within)),
            _ => None,
        }
    }
}

/// Returns whether a reported value counts as the desired one: numbers within `tolerance`,
/// other values equal.
fn matches_within(reported: &Value, desired: &Value, tolerance: f64) -> bool {
    match (reported.as_number(), desired.as_number()) {
        (Some(reported), Some(desired)) => (reported - desired).abs() <= tolerance,
        _ => reported == desired,
    }
}

/// Returns the change per `per_ms`, measured from the newest sample back to the newest sample
/// at least `per_ms` older, or to the oldest sample if that spans at least half of `per_ms`.
fn rate_over(samples: &VecDeque<(i64, f64)>, per_ms: i64) -> Option<f64> {
    let &(newest_ts, newest_value) = samples.back()?;
    let anchor = samples
        .iter()
        .rev()
        .find(|(ts, _)| newest_ts - ts >= per_ms)
        .or_else(|| {
            samples
                .front()
                .filter(|(ts, _)| 2 * (newest_ts - ts) >= per_ms)
        })?;
    let span = newest_ts - anchor.0;
    if span <= 0 {
        return None;
    }
    Some((newest_value - anchor.1) / span as f64 * per_ms as f64)
}

/// Returns a duration in whole milliseconds, saturating.
pub fn duration_ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::rules::condition::Threshold;

    fn number(value: f64) -> Value {
        Value::Number(value)
    }

    fn feed(leaf: &Leaf, points: &[(i64, f64)]) -> Vec<bool> {
        let mut state = LeafState::new(leaf);
        points
            .iter()
            .map(|(ts, value)| {
                state.on_frame(leaf, Some(&number(*value)), *ts, *ts);
                state.is_active()
            })
            .collect()
    }

    #[test]
    fn rate_of_change_spike_turns_on() {
        let leaf = Leaf::RateOfChange {
            key: Arc::from("t"),
            direction: Direction::Above,
            limit: 2.0,
            per: Duration::from_secs(60),
        };
        let minute = 60_000;
        let states = feed(
            &leaf,
            &[
                (0, 70.0),
                (minute, 71.0),
                (2 * minute, 72.5),
                (3 * minute, 76.0),
                (4 * minute, 76.5),
            ],
        );
        assert_eq!(states, vec![false, false, false, true, false]);
    }

    #[test]
    fn rate_needs_half_a_window_of_history() {
        let leaf = Leaf::RateOfChange {
            key: Arc::from("t"),
            direction: Direction::Below,
            limit: 1.0,
            per: Duration::from_secs(60),
        };
        assert_eq!(
            feed(&leaf, &[(0, 80.0), (10_000, 60.0), (30_000, 50.0)]),
            vec![false, false, true]
        );
    }

    #[test]
    fn stuck_sensor_turns_stale() {
        let leaf = Leaf::Stale {
            key: Arc::from("w"),
            unchanged_for: Duration::from_secs(600),
        };
        let states = feed(
            &leaf,
            &[
                (0, 5.0),
                (300_000, 5.0),
                (600_000, 5.0),
                (660_000, 5.0),
                (700_000, 4.9),
            ],
        );
        assert_eq!(states, vec![false, false, true, true, false]);
    }

    #[test]
    fn count_counts_rising_edges_in_window() {
        let inner = Leaf::Threshold(Threshold {
            key: Arc::from("i"),
            direction: Direction::Above,
            raise_at: 10.0,
            clear_at: 10.0,
        });
        let leaf = Leaf::Count {
            inner: Box::new(inner),
            at_least: 3,
            within: Duration::from_secs(60),
        };
        let points = [
            (0, 11.0),
            (1_000, 12.0),
            (2_000, 5.0),
            (3_000, 11.0),
            (4_000, 5.0),
            (5_000, 11.0),
            (70_000, 5.0),
        ];
        assert_eq!(
            feed(&leaf, &points),
            vec![false, false, false, false, false, true, false]
        );
    }

    #[test]
    fn no_data_key_waits_from_first_frame() {
        let leaf = Leaf::NoData {
            key: Some(Arc::from("t")),
            after: Duration::from_secs(10),
        };
        let mut state = LeafState::new(&leaf);
        assert_eq!(
            state.deadline(&leaf),
            None,
            "no deadline before the device is seen"
        );
        state.on_frame(&leaf, None, 0, 1_000);
        assert_eq!(state.deadline(&leaf), Some(11_000));
        state.on_frame(&leaf, None, 0, 5_000);
        assert_eq!(
            state.deadline(&leaf),
            Some(11_000),
            "frames without the key do not reset it"
        );
        state.on_tick(&leaf, 11_000);
        assert!(state.is_active());
        state.on_frame(&leaf, Some(&number(1.0)), 0, 12_000);
        assert!(!state.is_active());
        assert_eq!(state.deadline(&leaf), Some(22_000));
    }
}
