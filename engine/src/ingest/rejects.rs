//! Rejected messages: counted always, logged at most once per interval per reason so a
//! misbehaving device cannot flood the log.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::telemetry::IngestMessageRejected;

/// Shortest time between two log lines for the same reason.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Per-reason log limiter for rejected messages.
#[derive(Default)]
pub struct RejectLog {
    reasons: Mutex<HashMap<&'static str, ReasonState>>,
}

struct ReasonState {
    logged_at: Instant,
    suppressed: u64,
}

impl RejectLog {
    /// Counts a rejected message and logs it unless the same reason was logged recently.
    pub fn reject(
        &self,
        reason: &'static str,
        device: &str,
        topic: &str,
        error: &dyn std::fmt::Display,
    ) {
        IngestMessageRejected(reason).emit();
        let Some(suppressed) = self.should_log(reason) else {
            return;
        };
        tracing::warn!(
            device.id = device,
            mqtt.topic = topic,
            reason,
            suppressed,
            %error,
            "Message rejected"
        );
    }

    /// Returns how many were suppressed since the last log line, or `None` to stay quiet.
    fn should_log(&self, reason: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut reasons = self.reasons.lock();
        let state = reasons.entry(reason).or_insert(ReasonState {
            logged_at: now - LOG_INTERVAL,
            suppressed: 0,
        });
        if now.duration_since(state.logged_at) < LOG_INTERVAL {
            state.suppressed += 1;
            return None;
        }
        state.logged_at = now;
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn repeats_are_suppressed_within_interval() {
        let log = RejectLog::default();
        assert_eq!(log.should_log("invalid_json"), Some(0));
        assert_eq!(log.should_log("invalid_json"), None);
        assert_eq!(log.should_log("invalid_json"), None);
        assert_eq!(log.should_log("too_large"), Some(0));
        tokio::time::advance(LOG_INTERVAL).await;
        assert_eq!(log.should_log("invalid_json"), Some(2));
    }
}
