//! Filtered, paged reads of the alarm history for the API: newest first, by device, alarm,
//! rule, severity, transition and time, continuing below a cursor.

use serde::Serialize;
use sqlx::Row;

use super::alarm_history::{AlarmHistory, AlarmRecord, record_from_row};

/// What to read of the history. Every `None` leaves that filter out.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub device: Option<String>,
    pub alarm: Option<String>,
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub transition: Option<String>,
    /// Recorded at or after, engine time in milliseconds.
    pub from: Option<i64>,
    /// Recorded before, engine time in milliseconds.
    pub to: Option<i64>,
    /// Only events with an id below this one: the cursor of the previous page.
    pub before: Option<i64>,
    pub limit: u32,
}

/// One stored transition with its position in the history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEvent {
    /// Position in the history; pass the last one as `before` for the next page.
    pub event_id: i64,
    #[serde(flatten)]
    pub record: AlarmRecord,
}

impl AlarmHistory {
    /// Returns up to `filter.limit` events matching `filter`, newest first.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn search(&self, filter: &HistoryFilter) -> Result<Vec<HistoryEvent>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, alarm_id, device_id, rule_id, severity, transition, key, value, message, raised_at, \
             cleared_at, frame_ts, cleared_frame_ts, rule_version, inputs, flapping, operator, shelved_until, recorded_at \
             FROM alarm_events \
             WHERE ($1 IS NULL OR device_id = $1) AND ($2 IS NULL OR alarm_id = $2) \
             AND ($3 IS NULL OR rule_id = $3) AND ($4 IS NULL OR severity = $4) \
             AND ($5 IS NULL OR transition = $5) AND ($6 IS NULL OR recorded_at >= $6) \
             AND ($7 IS NULL OR recorded_at < $7) AND ($8 IS NULL OR id < $8) \
             ORDER BY id DESC LIMIT $9",
        )
        .bind(filter.device.as_deref())
        .bind(filter.alarm.as_deref())
        .bind(filter.rule.as_deref())
        .bind(filter.severity.as_deref())
        .bind(filter.transition.as_deref())
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.before)
        .bind(i64::from(filter.limit))
        .fetch_all(self.database().pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(HistoryEvent {
                    event_id: row.try_get("id")?,
                    record: record_from_row(row)?,
                })
            })
            .collect()
    }
}
