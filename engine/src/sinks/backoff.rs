//! Exponential backoff with full jitter between attempts of a failed write.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Waits between attempts: attempt `n` waits a random time up to `first * 2^n`, at most `max`.
///
/// The randomness spreads the retries of many batches, so a store that comes back is not hit
/// by all of them at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backoff {
    /// Upper bound of the first wait, e.g. `100ms`.
    #[serde(with = "humantime_serde")]
    pub first: Duration,
    /// Upper bound of any wait, e.g. `20s`.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(100),
            max: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    /// Returns the upper bound of the wait before attempt `attempt + 1`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// Returns a random wait between zero and [`Self::ceiling`].
    pub fn wait(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        if ceiling.is_zero() {
            return ceiling;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_maximum() {
        let backoff = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let ceilings: Vec<_> = (0..6).map(|attempt| backoff.ceiling(attempt)).collect();
        assert_eq!(
            ceilings,
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        assert_eq!(backoff.ceiling(200), Duration::from_secs(1));
    }

    #[test]
    fn wait_stays_under_the_ceiling() {
        let backoff = Backoff::default();
        for attempt in 0..40 {
            assert!(backoff.wait(attempt) <= backoff.ceiling(attempt));
        }
    }
}
