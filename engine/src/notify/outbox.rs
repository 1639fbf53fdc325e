//! The notification outbox in the SQL database: one row per notification, written before it
//! is sent, and the cursor of alarm events already turned into rows.
//!
//! A row's `dedup_key` is unique, and rows are inserted with `ON CONFLICT DO NOTHING`, so an
//! alarm event processed twice (after a crash between sending and committing, say) never
//! creates a second notification. Functions that take an `AnyConnection` run inside the
//! caller's transaction.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use crate::store::{Backend, Database};

/// Name of the cursor over `alarm_events`.
const ALARM_EVENTS_CURSOR: &str = "alarm_events";

/// Delivery status of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its first attempt, or for its lease to end.
    Queued,
    /// Delivered.
    Sent,
    /// The last attempt failed; another is scheduled at `next_attempt_at`.
    Failed,
    /// Every attempt failed, or the receiver rejected it for good.
    Dead,
    /// Held back by a rate limit or quiet hours, waiting for a digest or summary.
    Held,
    /// Listed in the digest or summary of `digest_id` instead of being sent alone.
    Digested,
    /// A reminder or escalation no longer needed, because the alarm was acknowledged or
    /// cleared.
    Cancelled,
    /// Not sent, because the farm was in a maintenance window.
    Suppressed,
}

impl Status {
    /// Returns the name stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Held => "held",
            Self::Digested => "digested",
            Self::Cancelled => "cancelled",
            Self::Suppressed => "suppressed",
        }
    }

    /// Parses a stored status name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Sent,
            Self::Failed,
            Self::Dead,
            Self::Held,
            Self::Digested,
            Self::Cancelled,
            Self::Suppressed,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A notification to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification<'a> {
    pub dedup_key: &'a str,
    pub alarm_id: Option<&'a str>,
    /// The `alarm_events` row that caused it, if one did.
    pub event_id: Option<i64>,
    pub kind: &'a str,
    pub transition: Option<&'a str>,
    pub severity: Option<&'a str>,
    pub route_id: Option<&'a str>,
    pub recipient: &'a str,
    pub channel: &'a str,
    /// The [`super::message::Payload`] as JSON.
    pub payload: &'a str,
    pub status: Status,
    /// Reason the row is held, suppressed or cancelled.
    pub reason: Option<&'a str>,
}

/// A stored notification as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub dedup_key: String,
    pub alarm_id: Option<String>,
    pub kind: String,
    pub transition: Option<String>,
    pub severity: Option<String>,
    pub route_id: Option<String>,
    pub recipient: String,
    pub channel: String,
    pub status: String,
    pub reason: Option<String>,
    /// The digest or summary that listed this row.
    pub digest_id: Option<i64>,
    pub attempts: i64,
    /// Engine time of the next attempt, in milliseconds since the Unix epoch.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    #[serde(skip)]
    pub payload: String,
}

/// One stored alarm transition, as notifications read it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlarmEvent {
    /// The `alarm_events` row id, increasing in the order the engine wrote them.
    pub id: i64,
    pub alarm_id: String,
    pub device: String,
    pub rule: String,
    pub severity: String,
    pub transition: String,
    pub message: String,
    pub raised_at: i64,
    pub cleared_at: Option<i64>,
    pub operator: Option<String>,
    pub shelved_until: Option<i64>,
    pub recorded_at: i64,
}

/// The outbox, the alarm-event cursor and the reads the API needs.
#[derive(Clone, Debug)]
pub struct OutboxStore {
    database: Database,
}

/// The columns [`row_from`] reads, as a literal for `concat!`.
macro_rules! row_columns {
    () => {
        "id, dedup_key, alarm_id, kind, transition, severity, route_id, recipient, channel, payload, \
         status, reason, digest_id, attempts, next_attempt_at, last_error, created_at, sent_at"
    };
}

// === impl OutboxStore ===

impl OutboxStore {
    /// Wraps the engine's database; the tables come from its migrations.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Returns the database, shared with the engine's other tables.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), waiting up to the busy timeout: a transaction that read first
    /// would fail outright if the alarm history writer committed in between.
    ///
    /// # Errors
    ///
    /// Returns the database error when no connection or lock can be had.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.database.backend() {
            Backend::Sqlite => self.database.pool().begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.database.pool().begin().await,
        }
    }

    /// Sets the cursor to the newest alarm event when there is none yet, so notifications
    /// start with the events that come after they were first enabled.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn init_cursor(&self, now: i64) -> Result<i64, sqlx::Error> {
        let mut transaction = self.begin().await?;
        if let Some(cursor) = cursor(&mut transaction).await? {
            return Ok(cursor);
        }
        let newest: Option<i64> = sqlx::query("SELECT MAX(id) AS newest FROM alarm_events")
            .fetch_one(&mut *transaction)
            .await?
            .try_get("newest")?;
        let newest = newest.unwrap_or(0);
        set_cursor(&mut transaction, newest, now).await?;
        transaction.commit().await?;
        Ok(newest)
    }

    /// Returns rows whose attempt is due at `now`, oldest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn due(&self, now: i64, limit: i64) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            row_columns!(),
            " FROM notification_outbox WHERE status IN ('queued', 'failed') \
             AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(row_from).collect()
    }

    /// Claims a due row for one attempt by moving its `next_attempt_at` to `lease_until`.
    /// Returns false when another sender claimed it first, so two senders never send one row
    /// at once. A sender that dies mid-attempt leaves the row due again at `lease_until`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn claim(&self, row: &OutboxRow, lease_until: i64) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE notification_outbox SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 \
             AND status IN ('queued', 'failed')",
        )
        .bind(lease_until)
        .bind(row.id)
        .bind(row.next_attempt_at)
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Marks a row delivered.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn mark_sent(&self, id: i64, attempts: i64, at: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE notification_outbox SET status = 'sent', attempts = $1, sent_at = $2, last_error = NULL WHERE id = $3",
        )
        .bind(attempts)
        .bind(at)
        .bind(id)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Records a failed attempt: `failed` with the next attempt at `next_attempt_at`, or
    /// `dead` when `next_attempt_at` is `None`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn mark_failed(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_at: Option<i64>,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        let (status, next) = match next_attempt_at {
            Some(next) => (Status::Failed, Some(next)),
            None => (Status::Dead, None),
        };
        sqlx::query(
            "UPDATE notification_outbox SET status = $1, attempts = $2, \
             next_attempt_at = COALESCE($3, next_attempt_at), last_error = $4 WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(attempts)
        .bind(next)
        .bind(error)
        .bind(id)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Returns the newest rows first, at most `limit`, of one alarm and one status if given.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn list(
        &self,
        alarm: Option<&str>,
        status: Option<Status>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            row_columns!(),
            " FROM notification_outbox WHERE ($1 IS NULL OR alarm_id = $1) \
             AND ($2 IS NULL OR status = $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(alarm)
        .bind(status.map(Status::as_str))
        .bind(limit)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(row_from).collect()
    }

    /// Returns one row by id.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn get(&self, id: i64) -> Result<Option<OutboxRow>, sqlx::Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            row_columns!(),
            " FROM notification_outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(row_from).transpose()
    }

    /// Returns how many rows wait to be sent, per channel.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn queue_depths(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT channel, COUNT(*) AS depth FROM notification_outbox \
             WHERE status IN ('queued', 'failed') GROUP BY channel",
        )
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("channel")?, row.try_get("depth")?)))
            .collect()
    }
}

fn row_from(row: &AnyRow) -> Result<OutboxRow, sqlx::Error> {
    Ok(OutboxRow {
        id: row.try_get("id")?,
        dedup_key: row.try_get("dedup_key")?,
        alarm_id: row.try_get("alarm_id")?,
        kind: row.try_get("kind")?,
        transition: row.try_get("transition")?,
        severity: row.try_get("severity")?,
        route_id: row.try_get("route_id")?,
        recipient: row.try_get("recipient")?,
        channel: row.try_get("channel")?,
        payload: row.try_get("payload")?,
        status: row.try_get("status")?,
        reason: row.try_get("reason")?,
        digest_id: row.try_get("digest_id")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        sent_at: row.try_get("sent_at")?,
    })
}

/// Inserts `notification` unless a row with its dedup key exists; returns the new row's id,
/// or `None` for a duplicate.
///
/// # Errors
///
/// Returns the database error.
pub async fn insert(
    connection: &mut AnyConnection,
    notification: &NewNotification<'_>,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO notification_outbox (dedup_key, alarm_id, event_id, kind, transition, severity, route_id, \
         recipient, channel, payload, status, reason, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13, $13) \
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(notification.dedup_key)
    .bind(notification.alarm_id)
    .bind(notification.event_id)
    .bind(notification.kind)
    .bind(notification.transition)
    .bind(notification.severity)
    .bind(notification.route_id)
    .bind(notification.recipient)
    .bind(notification.channel)
    .bind(notification.payload)
    .bind(notification.status.as_str())
    .bind(notification.reason)
    .bind(now)
    .fetch_optional(&mut *connection)
    .await?;
    row.map(|row| row.try_get("id")).transpose()
}

/// Returns the id of the last alarm event already turned into notifications.
///
/// # Errors
///
/// Returns the database error.
pub async fn cursor(connection: &mut AnyConnection) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query("SELECT last_event_id FROM notification_cursor WHERE name = $1")
        .bind(ALARM_EVENTS_CURSOR)
        .fetch_optional(&mut *connection)
        .await?;
    row.map(|row| row.try_get("last_event_id")).transpose()
}

/// Moves the cursor to `last_event_id`.
///
/// # Errors
///
/// Returns the database error.
pub async fn set_cursor(
    connection: &mut AnyConnection,
    last_event_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_cursor (name, last_event_id, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET last_event_id = excluded.last_event_id, updated_at = excluded.updated_at",
    )
    .bind(ALARM_EVENTS_CURSOR)
    .bind(last_event_id)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Returns the alarm events after `cursor`, in the order they were written, at most `limit`.
///
/// # Errors
///
/// Returns the database error.
pub async fn events_after(
    connection: &mut AnyConnection,
    cursor: i64,
    limit: i64,
) -> Result<Vec<StoredAlarmEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, alarm_id, device_id, rule_id, severity, transition, message, raised_at, cleared_at, \
         operator, shelved_until, recorded_at FROM alarm_events WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(cursor)
    .bind(limit)
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredAlarmEvent {
                id: row.try_get("id")?,
                alarm_id: row.try_get("alarm_id")?,
                device: row.try_get("device_id")?,
                rule: row.try_get("rule_id")?,
                severity: row.try_get("severity")?,
                transition: row.try_get("transition")?,
                message: row.try_get("message")?,
                raised_at: row.try_get("raised_at")?,
                cleared_at: row.try_get("cleared_at")?,
                operator: row.try_get("operator")?,
                shelved_until: row.try_get("shelved_until")?,
                recorded_at: row.try_get("recorded_at")?,
            })
        })
        .collect()
}

/// Cancels the reminders and escalations of `alarm_id` that are not sent yet; returns how
/// many.
///
/// # Errors
///
/// Returns the database error.
pub async fn cancel_pending(
    connection: &mut AnyConnection,
    alarm_id: &str,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE notification_outbox SET status = 'cancelled', reason = $1 WHERE alarm_id = $2 \
         AND kind IN ('reminder', 'escalation') AND status IN ('queued', 'failed', 'held')",
    )
    .bind(reason)
    .bind(alarm_id)
    .execute(&mut *connection)
    .await?;
    Ok(result.rows_affected())
}

/// Counts the messages created for `recipient` on `channel` since `since`: those queued,
/// sent or being retried, and digests and summaries, but not the held-back ones.
///
/// # Errors
///
/// Returns the database error.
pub async fn count_since(
    connection: &mut AnyConnection,
    recipient: &str,
    channel: &str,
    since: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT COUNT(*) AS sent FROM notification_outbox WHERE recipient = $1 AND channel = $2 \
         AND created_at > $3 AND status IN ('queued', 'sent', 'failed', 'dead')",
    )
    .bind(recipient)
    .bind(channel)
    .bind(since)
    .fetch_one(&mut *connection)
    .await?
    .try_get("sent")
}

/// Returns true when `recipient` has held-back rows on `channel`.
///
/// # Errors
///
/// Returns the database error.
pub async fn has_held(
    connection: &mut AnyConnection,
    recipient: &str,
    channel: &str,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id FROM notification_outbox WHERE recipient = $1 AND channel = $2 AND status = 'held' LIMIT 1",
    )
    .bind(recipient)
    .bind(channel)
    .fetch_optional(&mut *connection)
    .await?;
    Ok(row.is_some())
}

/// Returns each recipient and channel with held-back rows.
///
/// # Errors
///
/// Returns the database error.
pub async fn held_pairs(
    connection: &mut AnyConnection,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT recipient, channel FROM notification_outbox WHERE status = 'held' ORDER BY recipient, channel",
    )
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("recipient")?, row.try_get("channel")?)))
        .collect()
}

/// Returns the held-back rows of `recipient` on `channel`, oldest first.
///
/// # Errors
///
/// Returns the database error.
pub async fn held_rows(
    connection: &mut AnyConnection,
    recipient: &str,
    channel: &str,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        row_columns!(),
        " FROM notification_outbox WHERE recipient = $1 AND channel = $2 \
         AND status = 'held' ORDER BY id"
    ))
    .bind(recipient)
    .bind(channel)
    .fetch_all(&mut *connection)
    .await?;
    rows.iter().map(row_from).collect()
}

/// Marks the held rows of `recipient` on `channel` up to `last_id` as listed in `digest_id`.
///
/// # Errors
///
/// Returns the database error.
pub async fn mark_digested(
    connection: &mut AnyConnection,
    recipient: &str,
    channel: &str,
    last_id: i64,
    digest_id: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE notification_outbox SET status = 'digested', digest_id = $1 WHERE recipient = $2 \
         AND channel = $3 AND status = 'held' AND id <= $4",
    )
    .bind(digest_id)
    .bind(recipient)
    .bind(channel)
    .bind(last_id)
    .execute(&mut *connection)
    .await?;
    Ok(result.rows_affected())
}

/// Cancels the held rows of a recipient that the configuration no longer has.
///
/// # Errors
///
/// Returns the database error.
pub async fn cancel_held(
    connection: &mut AnyConnection,
    recipient: &str,
    channel: &str,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE notification_outbox SET status = 'cancelled', reason = $1 WHERE recipient = $2 \
         AND channel = $3 AND status = 'held'",
    )
    .bind(reason)
    .bind(recipient)
    .bind(channel)
    .execute(&mut *connection)
    .await?;
    Ok(result.rows_affected())
}
