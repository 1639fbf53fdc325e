//! Alarm conditions: a tree of `all` / `any` over leaves, each leaf a test of one key or of
//! the device's silence.
//!
//! Every leaf keeps a boolean state with its own exit rule, so a combination inherits each
//! leaf's hysteresis: a threshold leaf turns off only past its clear level, whatever the other
//! leaves do.

use std::sync::Arc;
use std::time::Duration;

use crate::value::Value;

/// Side of the limit on which a threshold leaf turns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Above,
    Below,
}

impl Direction {
    /// Returns the word for the direction, as messages use it.
    pub fn word(self) -> &'static str {
        match self {
            Self::Above => "above",
            Self::Below => "below",
        }
    }
}

/// A numeric limit on one key, with a separate clear level so a value hovering at the limit
/// raises one alarm, not a storm.
///
/// The leaf turns on when the value passes `raise_at` (strictly above, or strictly below) and
/// turns off only once it passes `clear_at` back the other way.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub key: Arc<str>,
    pub direction: Direction,
    pub raise_at: f64,
    pub clear_at: f64,
}

/// Conclusion a two-level test draws from one new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Raise,
    Clear,
    Hold,
}

impl Threshold {
    /// Judges `value` given whether the leaf is already `active`.
    pub fn judge(&self, active: bool, value: f64) -> Verdict {
        let (raises, clears) = match self.direction {
            Direction::Above => (value > self.raise_at, value < self.clear_at),
            Direction::Below => (value < self.raise_at, value > self.clear_at),
        };
        match (active, raises, clears) {
            (false, true, _) => Verdict::Raise,
            (true, _, true) => Verdict::Clear,
            _ => Verdict::Hold,
        }
    }
}

/// A band of values on one key. With `outside`, values beyond the band turn the leaf on;
/// otherwise values inside it do. `hysteresis` widens the way back: an `outside` leaf turns
/// off only once the value is `hysteresis` inside the band.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub key: Arc<str>,
    pub low: f64,
    pub high: f64,
    pub outside: bool,
    pub hysteresis: f64,
}

impl Range {
    /// Returns the leaf's next state for `value`.
    pub fn next_state(&self, active: bool, value: f64) -> bool {
        let margin = if active { self.hysteresis } else { 0.0 };
        if self.outside {
            value < self.low + margin || value > self.high - margin
        } else {
            value >= self.low - margin && value <= self.high + margin
        }
    }
}

/// One test of a condition tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    Threshold(Threshold),
    Range(Range),
    /// The key's value equals (or, with `negate`, differs from) a number, boolean or string.
    Equals {
        key: Arc<str>,
        value: Value,
        negate: bool,
    },
    /// The key changes faster than `limit` per `per`, measured between the newest value and
    /// the oldest one within the last `per` of device time.
    RateOfChange {
        key: Arc<str>,
        direction: Direction,
        limit: f64,
        per: Duration,
    },
    /// The key keeps arriving with the same value for `unchanged_for` of device time: a stuck
    /// sensor. It turns off when the value changes.
    Stale {
        key: Arc<str>,
        unchanged_for: Duration,
    },
    /// The inner leaf turned on at least `at_least` times within `within` of device time.
    Count {
        inner: Box<Leaf>,
        at_least: u32,
        within: Duration,
    },
    /// No frame from the device, or no value of `key`, for `after` on the engine's clock. It
    /// turns off when the next frame (or value of `key`) arrives.
    NoData {
        key: Option<Arc<str>>,
        after: Duration,
    },
    /// The key has a desired value and its reported value has not come within `tolerance` of
    /// it `within` (engine clock) after the desired value was set: a device that does not
    /// converge. It turns off once the reported value matches, or the desired value is removed.
    DesiredNotReached {
        key: Arc<str>,
        within: Duration,
        tolerance: f64,
    },
}

impl Leaf {
    /// Returns the key the leaf reads, if any.
    pub fn key(&self) -> Option<&Arc<str>> {
        match self {
            Self::Threshold(threshold) => Some(&threshold.key),
            Self::Range(range) => Some(&range.key),
            Self::Equals { key, .. } | Self::RateOfChange { key, .. } | Self::Stale { key, .. } => {
                Some(key)
            }
            Self::Count { inner, .. } => inner.key(),
            Self::NoData { key, .. } => key.as_ref(),
            Self::DesiredNotReached { key, .. } => Some(key),
        }
    }

    /// Returns the level a message calls `{limit}`.
    pub fn limit_text(&self) -> String {
        match self {
            Self::Threshold(threshold) => format_number(threshold.raise_at),
            Self::Range(range) => format!(
                "{}..{}",
                format_number(range.low),
                format_number(range.high)
            ),
            Self::Equals { value, .. } => value.to_string(),
            Self::RateOfChange { limit, per, .. } => {
                format!(
                    "{} per {}",
                    format_number(*limit),
                    humantime::format_duration(*per)
                )
            }
            Self::Stale { unchanged_for, .. } => {
                humantime::format_duration(*unchanged_for).to_string()
            }
            Self::Count {
                at_least, within, ..
            } => {
                format!("{at_least} in {}", humantime::format_duration(*within))
            }
            Self::NoData { after, .. } => humantime::format_duration(*after).to_string(),
            Self::DesiredNotReached { within, .. } => {
                humantime::format_duration(*within).to_string()
            }
        }
    }
}

/// A condition tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Leaf(Leaf),
}

impl Condition {
    /// Returns the leaves in depth-first order, the order their states are stored in.
    pub fn leaves(&self) -> Vec<&Leaf> {
        let mut leaves = Vec::new();
        self.collect_leaves(&mut leaves);
        leaves
    }

    fn collect_leaves<'a>(&'a self, leaves: &mut Vec<&'a Leaf>) {
        match self {
            Self::All(children) | Self::Any(children) => {
                for child in children {
                    child.collect_leaves(leaves);
                }
            }
            Self::Leaf(leaf) => leaves.push(leaf),
        }
    }

    /// Returns whether the tree holds, given each leaf's state in depth-first order.
    pub fn holds(&self, states: &[bool]) -> bool {
        let mut index = 0;
        self.holds_from(states, &mut index)
    }

    fn holds_from(&self, states: &[bool], index: &mut usize) -> bool {
        match self {
            Self::All(children) => {
                let results: Vec<bool> = children
                    .iter()
                    .map(|child| child.holds_from(states, index))
                    .collect();
                results.iter().all(|result| *result)
            }
            Self::Any(children) => {
                let results: Vec<bool> = children
                    .iter()
                    .map(|child| child.holds_from(states, index))
                    .collect();
                results.iter().any(|result| *result)
            }
            Self::Leaf(_) => {
                let state = states.get(*index).copied().unwrap_or(false);
                *index += 1;
                state
            }
        }
    }

    /// Returns the first leaf, which names the key and limit in default messages.
    pub fn first_leaf(&self) -> Option<&Leaf> {
        match self {
            Self::All(children) | Self::Any(children) => {
                children.iter().find_map(Condition::first_leaf)
            }
            Self::Leaf(leaf) => Some(leaf),
        }
    }

    /// Returns true when the tree has a leaf that only a timer can turn on.
    pub fn has_timer_leaf(&self) -> bool {
        self.leaves()
            .iter()
            .any(|leaf| matches!(leaf, Leaf::NoData { .. }))
    }
}

impl std::fmt::Display for Leaf {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Threshold(threshold) => {
                let (raise, clear) = match threshold.direction {
                    Direction::Above => (">", "<"),
                    Direction::Below => ("<", ">"),
                };
                let (key, limit, back) = (
                    &threshold.key,
                    format_number(threshold.raise_at),
                    format_number(threshold.clear_at),
                );
                write!(formatter, "{key} {raise} {limit} (clears {clear} {back})")
            }
            Self::Range(range) => {
                let side = if range.outside { "outside" } else { "inside" };
                write!(formatter, "{} {side} {}", range.key, self.limit_text())?;
                if range.hysteresis > 0.0 {
                    write!(
                        formatter,
                        " (hysteresis {})",
                        format_number(range.hysteresis)
                    )?;
                }
                Ok(())
            }
            Self::Equals { key, value, negate } => {
                let operator = if *negate { "!=" } else { "==" };
                match value {
                    Value::Text(text) => write!(formatter, "{key} {operator} \"{text}\""),
                    other => write!(formatter, "{key} {operator} {other}"),
                }
            }
            Self::RateOfChange { key, direction, .. } => {
                let verb = if *direction == Direction::Above {
                    "rises"
                } else {
                    "falls"
                };
                write!(formatter, "{key} {verb} faster than {}", self.limit_text())
            }
            Self::Stale { key, .. } => {
                write!(formatter, "{key} unchanged for {}", self.limit_text())
            }
            Self::Count { inner, .. } => {
                write!(formatter, "({inner}) at least {}", self.limit_text())
            }
            Self::NoData { key: None, .. } => {
                write!(formatter, "no frame for {}", self.limit_text())
            }
            Self::NoData { key: Some(key), .. } => {
                write!(formatter, "no {key} for {}", self.limit_text())
            }
            Self::DesiredNotReached { key, tolerance, .. } => write!(
                formatter,
                "{key} not within {} of desired after {}",
                format_number(*tolerance),
                self.limit_text()
            ),
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (children, joint) = match self {
            Self::Leaf(leaf) => return write!(formatter, "{leaf}"),
            Self::All(children) => (children, " and "),
            Self::Any(children) => (children, " or "),
        };
        let parts: Vec<String> = children.iter().map(ToString::to_string).collect();
        write!(formatter, "({})", parts.join(joint))
    }
}

/// Formats a number for messages: at most three decimals, trailing zeros dropped, so a
/// reading of 103.09666390000001 reads as 103.097.
pub fn format_number(number: f64) -> String {
    let text = format!("{number:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn high_temperature() -> Threshold {
        Threshold {
            key: Arc::from("t"),
            direction: Direction::Above,
            raise_at: 95.0,
            clear_at: 90.0,
        }
    }

    fn run(threshold: &Threshold, values: &[f64]) -> Vec<(usize, Verdict)> {
        let mut active = false;
        let mut transitions = Vec::new();
        for (index, value) in values.iter().enumerate() {
            let verdict = threshold.judge(active, *value);
            match verdict {
                Verdict::Raise => active = true,
                Verdict::Clear => active = false,
                Verdict::Hold => continue,
            }
            transitions.push((index, verdict));
        }
        transitions
    }

    #[test]
    fn value_hovering_at_limit_raises_once() {
        let values = [94.0, 95.5, 94.9, 95.1, 94.0, 95.9, 91.0, 89.9, 95.0];
        let transitions = run(&high_temperature(), &values);
        assert_eq!(transitions, vec![(1, Verdict::Raise), (7, Verdict::Clear)]);
    }

    #[test]
    fn below_threshold_clears_above_band() {
        let low = Threshold {
            key: Arc::from("w"),
            direction: Direction::Below,
            raise_at: 2.0,
            clear_at: 5.0,
        };
        let transitions = run(&low, &[3.0, 1.9, 4.9, 2.5, 5.1, 1.0]);
        assert_eq!(
            transitions,
            vec![
                (1, Verdict::Raise),
                (4, Verdict::Clear),
                (5, Verdict::Raise)
            ]
        );
    }

    #[test]
    fn limit_value_itself_does_not_raise() {
        assert_eq!(high_temperature().judge(false, 95.0), Verdict::Hold);
    }

    #[test]
    fn outside_range_clears_inside_margin() {
        let range = Range {
            key: Arc::from("p"),
            low: 10.0,
            high: 20.0,
            outside: true,
            hysteresis: 1.0,
        };
        assert!(range.next_state(false, 20.5));
        assert!(
            range.next_state(true, 19.5),
            "still within the hysteresis margin"
        );
        assert!(!range.next_state(true, 18.9));
        assert!(!range.next_state(false, 15.0));
        assert!(range.next_state(false, 9.9));
    }

    #[test]
    fn tree_combines_leaf_states_in_order() {
        let leaf = |key: &str| {
            Condition::Leaf(Leaf::Equals {
                key: Arc::from(key),
                value: Value::Bool(true),
                negate: false,
            })
        };
        let tree = Condition::All(vec![leaf("a"), Condition::Any(vec![leaf("b"), leaf("c")])]);
        assert!(tree.holds(&[true, false, true]));
        assert!(!tree.holds(&[true, false, false]));
        assert!(!tree.holds(&[false, true, true]));
        assert_eq!(tree.leaves().len(), 3);
    }

    #[test]
    fn format_number_trims_noise() {
        assert_eq!(format_number(103.096_663_900_000_01), "103.097");
        assert_eq!(format_number(2.0), "2");
        assert_eq!(format_number(-0.25), "-0.25");
    }

    proptest! {
        /// Each raise needs a crossing of the raise level and each clear a crossing of the
        /// clear level, so transitions never outnumber crossings of the band.
        #[test]
        fn transitions_never_exceed_band_crossings(values in proptest::collection::vec(80.0..110.0_f64, 0..200)) {
            let threshold = high_temperature();
            let transitions = run(&threshold, &values);
            let mut crossings = 0;
            let mut above_raise = false;
            let mut below_clear = true;
            for value in &values {
                if (*value > threshold.raise_at) != above_raise { crossings += 1; above_raise = !above_raise; }
                if (*value < threshold.clear_at) != below_clear { crossings += 1; below_clear = !below_clear; }
            }
            prop_assert!(transitions.len() <= crossings);
            for pair in transitions.windows(2) {
                prop_assert_ne!(pair[0].1, pair[1].1, "raise and clear must alternate");
            }
        }
    }
}
