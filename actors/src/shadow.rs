//! The reported half of a device shadow: newest value per key, per-key device times, a version,
//! and the duplicate detection that keeps a redelivered frame from being applied twice.
//!
//! Desired state and deltas live beside this when the shadow topics are served; this module
//! owns only what the device itself reports.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::value::{Frame, Value};

/// Desired keys one device may have, as many as one frame may report.
pub const MAX_DESIRED_KEYS: usize = 256;

/// A reported value with the device time it was measured at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedValue {
    pub value: Value,
    /// Device time in milliseconds since the Unix epoch.
    pub ts: i64,
}

/// Result of applying one frame to the shadow.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameOutcome {
    /// At least one key took a new value or a newer timestamp, and the version grew by one.
    Applied {
        changes: Vec<(Arc<str>, ReportedValue)>,
        version: u64,
        /// True when the frame is older than the newest frame already seen.
        late: bool,
    },
    /// Every key already held a value at least as new, so nothing changed.
    Unchanged { late: bool },
    /// The frame's `seq` was already applied and it brings no newer device time.
    Duplicate,
}

/// Everything a shadow holds, as stores keep it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShadowParts {
    pub reported: Vec<(Arc<str>, ReportedValue)>,
    pub desired: Vec<(Arc<str>, ReportedValue)>,
    pub version: u64,
    pub newest_ts: Option<i64>,
    /// The highest `seq` seen and the bitmap of the 64 below it.
    pub seq_window: Option<(u64, u64)>,
}

/// Reported state of one device.
///
/// Keys live in a small vector because equipment reports a handful of keys, and a linear scan
/// over a few entries beats hashing while costing less memory per idle device.
#[derive(Debug, Default, Clone)]
pub struct Shadow {
    reported: Vec<(Arc<str>, ReportedValue)>,
    /// Values operators asked the device to take, each with the engine time it was set.
    desired: Vec<(Arc<str>, ReportedValue)>,
    version: u64,
    newest_ts: Option<i64>,
    seen_seqs: Option<SeqWindow>,
}

impl Shadow {
    /// Applies `frame`: each key is written unless the stored value is newer, and a repeated
    /// `seq` with no newer device time is dropped as a duplicate.
    ///
    /// A key whose stored value has the same device time but a different value is overwritten,
    /// so a device can correct a reading by sending it again.
    pub fn apply(&mut self, frame: &Frame) -> FrameOutcome {
        if self.is_duplicate(frame) {
            return FrameOutcome::Duplicate;
        }
        let late = self.newest_ts.is_some_and(|newest| frame.ts < newest);
        self.newest_ts = Some(
            self.newest_ts
                .map_or(frame.ts, |newest| newest.max(frame.ts)),
        );

        let changes: Vec<_> = frame
            .values
            .iter()
            .filter_map(|(key, value)| self.write_key(key, value, frame.ts))
            .collect();
        if changes.is_empty() {
            return FrameOutcome::Unchanged { late };
        }
        self.version += 1;
        FrameOutcome::Applied {
            changes,
            version: self.version,
            late,
        }
    }

    /// Rebuilds a shadow from what a store kept of it.
    pub fn restore(parts: ShadowParts) -> Self {
        Self {
            reported: parts.reported,
            desired: parts.desired,
            version: parts.version,
            newest_ts: parts.newest_ts,
            seen_seqs: parts
                .seq_window
                .map(|(highest, bits)| SeqWindow { highest, bits }),
        }
    }

    /// Returns what a store keeps of the shadow.
    pub fn parts(&self) -> ShadowParts {
        ShadowParts {
            reported: self.reported.clone(),
            desired: self.desired.clone(),
            version: self.version,
            newest_ts: self.newest_ts,
            seq_window: self.seen_seqs.map(|window| (window.highest, window.bits)),
        }
    }

    /// Returns the shadow version: the number of frames that changed the reported state.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Returns the device time of the newest frame accepted, if any.
    pub fn newest_ts(&self) -> Option<i64> {
        self.newest_ts
    }

    /// Returns the reported keys with their values, in first-reported order.
    pub fn reported(&self) -> &[(Arc<str>, ReportedValue)] {
        &self.reported
    }

    /// Returns the reported value of `key`.
    pub fn get(&self, key: &str) -> Option<&ReportedValue> {
        self.reported
            .iter()
            .find(|(name, _)| &**name == key)
            .map(|(_, value)| value)
    }

    /// Sets or, with `None`, removes desired values at engine time `now`. Returns the new
    /// version when anything changed; a desired change counts as a shadow change. A change
    /// that would leave more than [`MAX_DESIRED_KEYS`] desired keys is refused whole.
    ///
    /// # Errors
    ///
    /// Returns the number of keys the change would leave when it is over the limit.
    pub fn set_desired(
        &mut self,
        changes: &[(Arc<str>, Option<Value>)],
        now: i64,
    ) -> Result<Option<u64>, usize> {
        let added = changes
            .iter()
            .filter(|(key, value)| {
                value.is_some() && !self.desired.iter().any(|(name, _)| name == key)
            })
            .count();
        let removed = changes
            .iter()
            .filter(|(key, value)| {
                value.is_none() && self.desired.iter().any(|(name, _)| name == key)
            })
            .count();
        let total = self.desired.len() + added - removed;
        if total > MAX_DESIRED_KEYS {
            return Err(total);
        }
        Ok(self.apply_desired(changes, now))
    }

    fn apply_desired(&mut self, changes: &[(Arc<str>, Option<Value>)], now: i64) -> Option<u64> {
        let mut changed = false;
        for (key, value) in changes {
            let position = self.desired.iter().position(|(name, _)| name == key);
            match (position, value) {
                (Some(index), None) => {
                    self.desired.remove(index);
                    changed = true;
                }
                (Some(index), Some(value)) if self.desired[index].1.value != *value => {
                    self.desired[index].1 = ReportedValue {
                        value: value.clone(),
                        ts: now,
                    };
                    changed = true;
                }
                (None, Some(value)) => {
                    self.desired.push((
                        Arc::clone(key),
                        ReportedValue {
                            value: value.clone(),
                            ts: now,
                        },
                    ));
                    changed = true;
                }
                _ => {}
            }
        }
        if !changed {
            return None;
        }
        self.version += 1;
        Some(self.version)
    }

    /// Returns the desired values with the engine time each was set.
    pub fn desired(&self) -> &[(Arc<str>, ReportedValue)] {
        &self.desired
    }

    /// Returns the desired value of `key`.
    pub fn desired_value(&self, key: &str) -> Option<&ReportedValue> {
        self.desired
            .iter()
            .find(|(name, _)| &**name == key)
            .map(|(_, value)| value)
    }

    /// Returns the desired values the device has not reported yet: the delta.
    pub fn delta(&self) -> Vec<(Arc<str>, Value)> {
        self.desired
            .iter()
            .filter(|(key, desired)| {
                self.get(key)
                    .is_none_or(|reported| reported.value != desired.value)
            })
            .map(|(key, desired)| (Arc::clone(key), desired.value.clone()))
            .collect()
    }

    fn is_duplicate(&mut self, frame: &Frame) -> bool {
        let Some(seq) = frame.seq else {
            return false;
        };
        let newer_than_all = self.newest_ts.is_none_or(|newest| frame.ts > newest);
        match &mut self.seen_seqs {
            Some(window) if newer_than_all && window.contains(seq) => {
                // The device restarted its counter: same seq, but a frame newer than any seen.
                *window = SeqWindow::starting_at(seq);
                false
            }
            Some(window) => !window.insert(seq),
            None => {
                self.seen_seqs = Some(SeqWindow::starting_at(seq));
                false
            }
        }
    }

    fn write_key(
        &mut self,
        key: &Arc<str>,
        value: &Value,
        ts: i64,
    ) -> Option<(Arc<str>, ReportedValue)> {
        let incoming = ReportedValue {
            value: value.clone(),
            ts,
        };
        match self.reported.iter_mut().find(|(name, _)| name == key) {
            Some((_, stored)) => {
                let newer = ts > stored.ts || (ts == stored.ts && *value != stored.value);
                if !newer {
                    return None;
                }
                *stored = incoming.clone();
            }
            None => self.reported.push((Arc::clone(key), incoming.clone())),
        }
        Some((Arc::clone(key), incoming))
    }
}

/// The sequence numbers seen among the 64 below the highest, as a bitmap.
///
/// A seq more than 64 below the highest cannot be distinguished from new data. It is treated
/// as new, and the per-key timestamps keep it from overwriting newer values.
#[derive(Debug, Clone, Copy)]
struct SeqWindow {
    highest: u64,
    bits: u64,
}

impl SeqWindow {
    const SPAN: u64 = 64;

    fn starting_at(seq: u64) -> Self {
        Self {
            highest: seq,
            bits: 1,
        }
    }

    fn contains(&self, seq: u64) -> bool {
        match self.highest.checked_sub(seq) {
            Some(offset) if offset < Self::SPAN => self.bits & (1 << offset) != 0,
            _ => false,
        }
    }

    /// Records `seq`, returning false when it was already recorded.
    fn insert(&mut self, seq: u64) -> bool {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.bits = if shift >= Self::SPAN {
                0
            } else {
                self.bits << shift
            };
            self.bits |= 1;
            self.highest = seq;
            return true;
        }
        let offset = self.highest - seq;
        if offset >= Self::SPAN {
            return true;
        }
        let mask = 1 << offset;
        let fresh = self.bits & mask == 0;
        self.bits |= mask;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn frame(ts: i64, seq: Option<u64>, values: &[(&str, f64)]) -> Frame {
        let values = values
            .iter()
            .map(|(k, v)| (Arc::from(*k), Value::Number(*v)))
            .collect();
        Frame { ts, seq, values }
    }

    fn number(shadow: &Shadow, key: &str) -> f64 {
        shadow
            .get(key)
            .and_then(|reported| reported.value.as_number())
            .unwrap()
    }

    #[test]
    fn apply_increments_version_per_changing_frame() {
        let mut shadow = Shadow::default();
        shadow.apply(&frame(1_000, None, &[("weight", 10.0)]));
        let outcome = shadow.apply(&frame(2_000, None, &[("weight", 9.0), ("intake", 1.0)]));
        let FrameOutcome::Applied {
            changes,
            version,
            late,
        } = outcome
        else {
            panic!("expected applied, got {outcome:?}");
        };
        assert_eq!(version, 2);
        assert!(!late);
        assert_eq!(changes.len(), 2);
        assert_eq!(number(&shadow, "weight"), 9.0);
        assert_eq!(shadow.get("weight").unwrap().ts, 2_000);
    }

    #[test]
    fn older_frame_never_overwrites_newer_key() {
        let mut shadow = Shadow::default();
        shadow.apply(&frame(2_000, None, &[("weight", 9.0)]));
        let outcome = shadow.apply(&frame(1_000, None, &[("weight", 10.0)]));
        assert_eq!(outcome, FrameOutcome::Unchanged { late: true });
        assert_eq!(number(&shadow, "weight"), 9.0);
        assert_eq!(shadow.version(), 1);
    }

    #[test]
    fn late_frame_fills_keys_not_yet_reported() {
        let mut shadow = Shadow::default();
        shadow.apply(&frame(2_000, None, &[("weight", 9.0)]));
        let outcome = shadow.apply(&frame(1_000, None, &[("weight", 10.0), ("intake", 0.5)]));
        let FrameOutcome::Applied { changes, late, .. } = outcome else {
            panic!("expected applied, got {outcome:?}");
        };
        assert!(late);
        assert_eq!(changes.len(), 1);
        assert_eq!(&*changes[0].0, "intake");
        assert_eq!(number(&shadow, "weight"), 9.0);
        assert_eq!(shadow.newest_ts(), Some(2_000));
    }

    #[test]
    fn repeated_seq_applies_once() {
        let mut shadow = Shadow::default();
        let first = frame(1_000, Some(7), &[("weight", 10.0)]);
        assert!(matches!(shadow.apply(&first), FrameOutcome::Applied { .. }));
        assert_eq!(shadow.apply(&first), FrameOutcome::Duplicate);
        let corrected = frame(1_000, Some(7), &[("weight", 11.0)]);
        assert_eq!(shadow.apply(&corrected), FrameOutcome::Duplicate);
        assert_eq!(number(&shadow, "weight"), 10.0);
        assert_eq!(shadow.version(), 1);
    }

    #[test]
    fn out_of_order_seqs_each_apply_once() {
        let mut shadow = Shadow::default();
        let keys = ["", "", "", "c", "d", "e"];
        for seq in [5_u64, 3, 4] {
            let key = keys[seq as usize];
            let outcome = shadow.apply(&frame(seq as i64 * 1_000, Some(seq), &[(key, seq as f64)]));
            assert!(matches!(outcome, FrameOutcome::Applied { .. }), "seq {seq}");
        }
        for seq in [3_u64, 4, 5] {
            let key = keys[seq as usize];
            let outcome = shadow.apply(&frame(seq as i64 * 1_000, Some(seq), &[(key, seq as f64)]));
            assert_eq!(outcome, FrameOutcome::Duplicate, "seq {seq}");
        }
    }

    #[test]
    fn seq_counter_restart_is_not_duplicate() {
        let mut shadow = Shadow::default();
        shadow.apply(&frame(1_000, Some(1), &[("k", 1.0)]));
        shadow.apply(&frame(2_000, Some(2), &[("k", 2.0)]));
        let restarted = shadow.apply(&frame(9_000, Some(1), &[("k", 3.0)]));
        assert!(matches!(
            restarted,
            FrameOutcome::Applied { version: 3, .. }
        ));
        assert_eq!(
            shadow.apply(&frame(9_000, Some(1), &[("k", 3.0)])),
            FrameOutcome::Duplicate
        );
    }

    #[test]
    fn same_ts_with_new_value_corrects_key() {
        let mut shadow = Shadow::default();
        shadow.apply(&frame(1_000, None, &[("t", 70.0)]));
        assert!(matches!(
            shadow.apply(&frame(1_000, None, &[("t", 71.0)])),
            FrameOutcome::Applied { .. }
        ));
        assert_eq!(
            shadow.apply(&frame(1_000, None, &[("t", 71.0)])),
            FrameOutcome::Unchanged { late: false }
        );
        assert_eq!(number(&shadow, "t"), 71.0);
    }

    proptest! {
        /// Whatever the arrival order, each key ends at the value of its newest frame.
        #[test]
        fn arrival_order_does_not_change_final_state(
            order in Just((0..40_i64).collect::<Vec<_>>()).prop_shuffle(),
        ) {
            let mut shadow = Shadow::default();
            for step in &order {
                shadow.apply(&frame(step * 100, Some(*step as u64), &[("k", *step as f64)]));
            }
            prop_assert_eq!(number(&shadow, "k"), 39.0);
            prop_assert_eq!(shadow.newest_ts(), Some(3_900));
            for step in &order {
                let again = shadow.apply(&frame(step * 100, Some(*step as u64), &[("k", 0.0)]));
                prop_assert_eq!(again, FrameOutcome::Duplicate);
            }
        }
    }
}
