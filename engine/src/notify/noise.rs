//! Noise control: whether a notification goes out now, waits for a digest or summary, or is
//! not sent at all.
//!
//! The checks run in order. First, a farm in a maintenance window suppresses the
//! notifications of its alarms. Then a recipient's quiet hours hold back every severity but
//! the allowed ones. Last, a recipient's rate limit holds back what exceeds it, except the
//! exempt severities. Held rows are sent later as one digest or summary (see `digest.rs`).

use std::str::FromStr;

use chrono::{FixedOffset, NaiveTime, TimeZone, Utc};
use sqlx::AnyConnection;
use valmetal_actors::rules::Severity;

use super::config::{MaintenanceWindow, QuietHours, RecipientConfig};
use super::{maintenance, outbox};

/// Reason stored with rows that quiet hours held back.
pub const QUIET_HOURS: &str = "quiet_hours";
/// Reason stored with rows that a rate limit held back.
pub const RATE_LIMIT: &str = "rate_limit";
/// Reason stored with rows that a maintenance window suppressed.
pub const MAINTENANCE: &str = "maintenance";

/// Outcome of noise control for a new notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Send it now.
    Send,
    /// Hold it back for a digest or summary, for the reason given.
    Hold(&'static str),
    /// Record it without ever sending it, for the reason given.
    Suppress(&'static str),
}

/// A time zone of quiet hours: an IANA name or a fixed offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Named(chrono_tz::Tz),
    Fixed(FixedOffset),
}

// === impl Zone ===

impl Zone {
    /// Parses `Europe/Paris`, `UTC`, or an offset such as `+02:00`.
    ///
    /// # Errors
    ///
    /// Returns a message naming the text when it is neither.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(zone) = chrono_tz::Tz::from_str(text) {
            return Ok(Self::Named(zone));
        }
        FixedOffset::from_str(text).map(Self::Fixed).map_err(|_| {
            format!(
                "\"{text}\" is neither an IANA time zone such as `Europe/Paris` nor an offset such as `+02:00`"
            )
        })
    }

    /// Returns the local time of day at engine time `now_ms`.
    pub fn time_of_day(self, now_ms: i64) -> NaiveTime {
        let utc = Utc
            .timestamp_millis_opt(now_ms)
            .single()
            .unwrap_or_default();
        match self {
            Self::Named(zone) => utc.with_timezone(&zone).time(),
            Self::Fixed(offset) => utc.with_timezone(&offset).time(),
        }
    }
}

/// Returns true when `now_ms` falls within the quiet hours. The hours include `start` and
/// exclude `end`, and span midnight when `end` is before `start`. An invalid zone, which
/// validation rejects at start, counts as UTC.
pub fn in_quiet_hours(quiet: &QuietHours, now_ms: i64) -> bool {
    let zone = Zone::parse(&quiet.time_zone).unwrap_or(Zone::Named(chrono_tz::UTC));
    let time = zone.time_of_day(now_ms);
    if quiet.start < quiet.end {
        quiet.start <= time && time < quiet.end
    } else {
        time >= quiet.start || time < quiet.end
    }
}

/// Returns true when `farm` is in a maintenance window of the configuration at `now_ms`.
pub fn in_configured_maintenance(windows: &[MaintenanceWindow], farm: &str, now_ms: i64) -> bool {
    windows.iter().any(|window| {
        window.farm == farm
            && window.from.timestamp_millis() <= now_ms
            && now_ms < window.until.timestamp_millis()
    })
}

/// Decides what happens to a new notification of `severity` for `recipient` on `channel`
/// about a device of `farm`, at `now_ms`. Digests and summaries do not pass through here.
///
/// # Errors
///
/// Returns the database error of the rate or maintenance look-ups.
pub async fn decide(
    connection: &mut AnyConnection,
    windows: &[MaintenanceWindow],
    recipient: &RecipientConfig,
    channel: &str,
    severity: Severity,
    farm: Option<&str>,
    now_ms: i64,
) -> Result<Disposition, sqlx::Error> {
    if let Some(farm) = farm {
        let configured = in_configured_maintenance(windows, farm, now_ms);
        if configured || maintenance::is_active(connection, farm, now_ms).await? {
            return Ok(Disposition::Suppress(MAINTENANCE));
        }
    }
    let quiet = recipient.quiet_hours.as_ref();
    if quiet.is_some_and(|quiet| !quiet.allow.contains(&severity) && in_quiet_hours(quiet, now_ms))
    {
        return Ok(Disposition::Hold(QUIET_HOURS));
    }
    let Some(limit) = &recipient.rate_limit else {
        return Ok(Disposition::Send);
    };
    if limit.exempt.contains(&severity) {
        return Ok(Disposition::Send);
    }
    // Items wait behind a pending digest, so the digest goes out first when the window allows.
    if outbox::has_held(connection, &recipient.id, channel).await? {
        return Ok(Disposition::Hold(RATE_LIMIT));
    }
    let since = now_ms - millis(limit.per);
    let sent = outbox::count_since(connection, &recipient.id, channel, since).await?;
    if sent >= i64::from(limit.max) {
        Ok(Disposition::Hold(RATE_LIMIT))
    } else {
        Ok(Disposition::Send)
    }
}

/// Returns a duration in milliseconds, saturating.
pub fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(start: &str, end: &str, zone: &str) -> QuietHours {
        QuietHours {
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
            time_zone: zone.into(),
            allow: vec![Severity::Critical],
        }
    }

    fn at(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn quiet_hours_span_midnight_in_local_time() {
        let hours = quiet("22:00", "06:30", "Europe/Paris");
        // Paris is UTC+1 in winter.
        assert!(in_quiet_hours(&hours, at("2026-12-04T21:00:00Z")));
        assert!(in_quiet_hours(&hours, at("2026-12-05T05:29:59Z")));
        assert!(!in_quiet_hours(&hours, at("2026-12-05T05:30:00Z")));
        assert!(!in_quiet_hours(&hours, at("2026-12-04T20:59:59Z")));
    }

    #[test]
    fn quiet_hours_take_fixed_offsets() {
        let hours = quiet("12:00", "13:00", "-05:00");
        assert!(in_quiet_hours(&hours, at("2026-06-01T17:30:00Z")));
        assert!(!in_quiet_hours(&hours, at("2026-06-01T12:30:00Z")));
        assert!(Zone::parse("Mars/Olympus").is_err());
    }
}
