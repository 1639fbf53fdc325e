//! The engine's clock in the unit every message uses: milliseconds since the Unix epoch.
//!
//! It reads the wall clock once and then advances with tokio's monotonic clock, so a wall
//! clock step never moves alarm times backwards, and tests that pause tokio's clock control
//! it too.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

static ANCHOR: OnceLock<(Instant, i64)> = OnceLock::new();

/// Returns the engine's current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let (instant, wall_ms) = *ANCHOR.get_or_init(|| (Instant::now(), wall_clock_ms()));
    let elapsed = i64::try_from(instant.elapsed().as_millis()).unwrap_or(i64::MAX);
    wall_ms.saturating_add(elapsed)
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
