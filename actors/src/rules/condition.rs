//! Alarm conditions and how each one judges new input.

use std::sync::Arc;
use std::time::Duration;

/// Side of the limit on which a threshold alarm is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Above,
    Below,
}

/// A numeric limit on one key, with a separate clear level so a value hovering at the limit
/// raises one alarm, not a storm.
///
/// The alarm is raised when the value passes `raise_at` (strictly above, or strictly below)
/// and cleared only once it passes `clear_at` back the other way.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub key: Arc<str>,
    pub direction: Direction,
    pub raise_at: f64,
    pub clear_at: f64,
}

/// Conclusion a condition draws from one new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Raise,
    Clear,
    Hold,
}

impl Threshold {
    /// Judges `value` given whether the rule's alarm is already `active`.
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

    /// Returns the word for the direction, as messages use it.
    pub fn direction_word(&self) -> &'static str {
        match self.direction {
            Direction::Above => "above",
            Direction::Below => "below",
        }
    }
}

/// The condition a rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Threshold(Threshold),
    /// No frame from the device for `after`, measured on the engine's clock. The alarm clears
    /// when the next frame arrives.
    Offline {
        after: Duration,
    },
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
