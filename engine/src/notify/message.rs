//! Notification content: the payload stored in the outbox row, and its rendering as a
//! subject line and plain text, shared by every channel.

use serde::{Deserialize, Serialize};

/// Items a digest or summary lists by name; the rest are counted.
pub const MAX_LISTED_ITEMS: usize = 50;

/// Why a notification exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An alarm transition that a route notifies.
    Alarm,
    /// An alarm still unacknowledged after the route's `remind_every`.
    Reminder,
    /// An alarm still unacknowledged after an escalation step's `after`.
    Escalation,
    /// The notifications a rate limit held back.
    Digest,
    /// The notifications quiet hours held back, sent when they end.
    Summary,
}

impl Kind {
    /// Returns the name stored in the outbox's `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alarm => "alarm",
            Self::Reminder => "reminder",
            Self::Escalation => "escalation",
            Self::Digest => "digest",
            Self::Summary => "summary",
        }
    }
}

/// The alarm a notification is about, as the alarm history stored its last transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmSummary {
    pub id: String,
    pub device: String,
    pub device_type: String,
    pub farm: Option<String>,
    pub rule: String,
    pub severity: String,
    pub message: String,
    /// Engine time of the raise, in milliseconds since the Unix epoch.
    pub raised_at: i64,
    pub cleared_at: Option<i64>,
}

/// One held-back notification listed in a digest or summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldItem {
    pub kind: Kind,
    pub transition: Option<String>,
    pub alarm: AlarmSummary,
    /// Engine time the notification was created, in milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// The stored content of one notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub kind: Kind,
    /// The recipient's name as shown in messages.
    pub recipient_name: String,
    /// The alarm, for every kind but digests and summaries.
    pub alarm: Option<AlarmSummary>,
    /// The transition notified, for [`Kind::Alarm`].
    pub transition: Option<String>,
    /// The operator who made the transition, when one did.
    pub operator: Option<String>,
    /// 1 for the first reminder.
    pub reminder: Option<u32>,
    /// 1 for the first escalation step.
    pub escalation_level: Option<u32>,
    /// Held-back notifications, for digests and summaries, at most [`MAX_LISTED_ITEMS`].
    #[serde(default)]
    pub held: Vec<HeldItem>,
    /// Every held-back notification this digest or summary stands for.
    #[serde(default)]
    pub held_total: u64,
    /// Link to the dashboard, from `notify.dashboard_url`.
    pub dashboard_url: Option<String>,
}

// === impl Payload ===

impl Payload {
    /// Returns a one-line subject, such as `[major] feedbin-001: bin_low raised`.
    pub fn subject(&self) -> String {
        match (self.kind, &self.alarm) {
            (Kind::Digest, _) => format!(
                "{} notifications held back by your rate limit",
                self.held_total
            ),
            (Kind::Summary, _) => {
                format!("{} notifications during your quiet hours", self.held_total)
            }
            (kind, Some(alarm)) => {
                let what = match kind {
                    Kind::Reminder => format!(
                        "still unacknowledged (reminder {})",
                        self.reminder.unwrap_or(1)
                    ),
                    Kind::Escalation => format!(
                        "unacknowledged, escalated to you (level {})",
                        self.escalation_level.unwrap_or(1)
                    ),
                    _ => self.transition.clone().unwrap_or_default(),
                };
                format!(
                    "[{}] {}: {} {what}",
                    alarm.severity, alarm.device, alarm.rule
                )
            }
            (_, None) => "Valmetal notification".to_owned(),
        }
    }

    /// Returns the plain-text body: the alarm's facts, or the list of held items.
    pub fn text(&self) -> String {
        let mut lines = Vec::new();
        if let Some(alarm) = &self.alarm {
            lines.extend(alarm_lines(alarm));
            if let Some(operator) = &self.operator {
                lines.push(format!("By: {operator}"));
            }
        }
        if !self.held.is_empty() {
            for item in &self.held {
                let transition = item.transition.as_deref().unwrap_or(item.kind.as_str());
                lines.push(format!(
                    "- [{}] {} {} {transition} at {}: {}",
                    item.alarm.severity,
                    item.alarm.device,
                    item.alarm.rule,
                    format_time(item.created_at),
                    item.alarm.message
                ));
            }
            let listed = self.held.len() as u64;
            if self.held_total > listed {
                lines.push(format!("… and {} more", self.held_total - listed));
            }
        }
        if let Some(url) = &self.dashboard_url {
            lines.push(format!("Dashboard: {url}"));
        }
        lines.join("\n")
    }
}

fn alarm_lines(alarm: &AlarmSummary) -> Vec<String> {
    let mut lines = vec![
        alarm.message.clone(),
        String::new(),
        format!("Device: {} ({})", alarm.device, alarm.device_type),
    ];
    if let Some(farm) = &alarm.farm {
        lines.push(format!("Farm: {farm}"));
    }
    lines.push(format!("Rule: {}", alarm.rule));
    lines.push(format!("Severity: {}", alarm.severity));
    lines.push(format!("Raised: {}", format_time(alarm.raised_at)));
    if let Some(cleared_at) = alarm.cleared_at {
        lines.push(format!("Cleared: {}", format_time(cleared_at)));
    }
    lines.push(format!("Alarm id: {}", alarm.id));
    lines
}

/// Formats engine time as UTC, such as `2026-12-04 18:05 UTC`.
pub fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |time| time.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm() -> AlarmSummary {
        AlarmSummary {
            id: "feedbin-001/bin_low/1700000000000".into(),
            device: "feedbin-001".into(),
            device_type: "feed_bin".into(),
            farm: Some("odrc".into()),
            rule: "bin_low".into(),
            severity: "major".into(),
            message: "feed low".into(),
            raised_at: 1_700_000_000_000,
            cleared_at: None,
        }
    }

    fn payload(kind: Kind) -> Payload {
        Payload {
            kind,
            recipient_name: "Alice".into(),
            alarm: Some(alarm()),
            transition: Some("raised".into()),
            operator: None,
            reminder: Some(2),
            escalation_level: None,
            held: Vec::new(),
            held_total: 0,
            dashboard_url: None,
        }
    }

    #[test]
    fn subject_names_severity_device_and_transition() {
        assert_eq!(
            payload(Kind::Alarm).subject(),
            "[major] feedbin-001: bin_low raised"
        );
        assert_eq!(
            payload(Kind::Reminder).subject(),
            "[major] feedbin-001: bin_low still unacknowledged (reminder 2)"
        );
    }

    #[test]
    fn digest_text_counts_unlisted_items() {
        let mut digest = payload(Kind::Digest);
        digest.alarm = None;
        digest.held = vec![HeldItem {
            kind: Kind::Alarm,
            transition: Some("raised".into()),
            alarm: alarm(),
            created_at: 1_700_000_000_000,
        }];
        digest.held_total = 3;
        let text = digest.text();
        assert!(text.contains("- [major] feedbin-001 bin_low raised at 2023-11-14 22:13 UTC"));
        assert!(text.ends_with("… and 2 more"), "{text}");
    }
}
