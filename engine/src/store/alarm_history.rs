//! Alarm history in SQLite, written by one task from a bounded queue.

use std::time::Duration;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};
use valmetal_actors::clock::now_ms;
use valmetal_actors::rules::AlarmEvent;

use super::database::Database;
use crate::telemetry::{StoreAlarmEventsWritten, StoreAlarmWriteFailed};

/// Alarm events taken from the queue per transaction. The writer waits its turn behind the
/// telemetry batches for SQLite's one writer, so each turn takes up to an eighth of the
/// 16,384-event queue. At 256 per turn, a burst of raises from many devices overflowed it.
const WRITE_BATCH: usize = 2048;
/// Attempts per batch once shutdown has begun; while running, a batch is retried until written.
const SHUTDOWN_ATTEMPTS: u32 = 3;

/// One stored alarm transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmRecord {
    pub alarm_id: String,
    pub device: String,
    pub rule: String,
    pub severity: String,
    pub transition: String,
    pub key: Option<String>,
    pub value: Option<String>,
    pub message: String,
    pub raised_at: i64,
    pub cleared_at: Option<i64>,
    pub frame_ts: Option<i64>,
    pub cleared_frame_ts: Option<i64>,
    pub rule_version: String,
    /// The rule's input values at the raise, as JSON `[{"key", "value", "ts"}]`.
    pub inputs: serde_json::Value,
    pub flapping: bool,
    /// The operator who made this transition; `None` when the rule or its timer did.
    pub operator: Option<String>,
    pub shelved_until: Option<i64>,
    pub recorded_at: i64,
}

/// The alarm history table.
#[derive(Clone)]
pub struct AlarmHistory {
    database: Database,
}

impl AlarmHistory {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Inserts alarm events in one transaction.
    ///
    /// # Errors
    ///
    /// Returns the database error; nothing of the batch is written then.
    pub async fn insert(&self, events: &[AlarmEvent]) -> Result<(), sqlx::Error> {
        let recorded_at = now_ms();
        let mut transaction = self.database.begin_writer().await?;
        for event in events {
            let alarm = &event.alarm;
            sqlx::query(
                "INSERT INTO alarm_events (alarm_id, device_id, rule_id, severity, transition, key, value, \
                 message, raised_at, cleared_at, frame_ts, cleared_frame_ts, rule_version, inputs, flapping, \
                 operator, shelved_until, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            )
            .bind(&*alarm.id)
            .bind(alarm.device.as_str())
            .bind(&*alarm.rule)
            .bind(alarm.severity.as_str())
            .bind(event.transition.as_str())
            .bind(alarm.key.as_deref())
            .bind(alarm.value.as_ref().map(ToString::to_string))
            .bind(&alarm.message)
            .bind(alarm.raised_at)
            .bind(alarm.cleared_at)
            .bind(alarm.frame_ts)
            .bind(alarm.cleared_frame_ts)
            .bind(&*alarm.rule_version)
            .bind(serde_json::to_string(&alarm.inputs).unwrap_or_else(|_| "[]".to_owned()))
            .bind(i64::from(alarm.flapping))
            .bind(event.operator.as_ref().map(|operator| &*operator.by))
            .bind(alarm.shelved_until)
            .bind(recorded_at)
            .execute(&mut **transaction)
            .await?;
        }
        transaction.commit().await
    }

    /// Returns the newest transitions first, at most `limit`, optionally of one device or one
    /// alarm.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn recent(
        &self,
        limit: u32,
        device: Option<&str>,
        alarm: Option<&str>,
    ) -> Result<Vec<AlarmRecord>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT alarm_id, device_id, rule_id, severity, transition, key, value, message, raised_at, \
             cleared_at, frame_ts, cleared_frame_ts, rule_version, inputs, flapping, operator, shelved_until, recorded_at \
             FROM alarm_events \
             WHERE ($1 IS NULL OR device_id = $1) AND ($3 IS NULL OR alarm_id = $3) ORDER BY id DESC LIMIT $2",
        )
        .bind(device)
        .bind(i64::from(limit))
        .bind(alarm)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Returns the alarms recorded since `since` (engine time) that no clear has followed,
    /// each as its latest transition left it.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn open_since(&self, since: i64) -> Result<Vec<AlarmRecord>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT alarm_id, device_id, rule_id, severity, transition, key, value, message, raised_at, \
             cleared_at, frame_ts, cleared_frame_ts, rule_version, inputs, flapping, operator, shelved_until, recorded_at \
             FROM alarm_events WHERE id IN (SELECT MAX(id) FROM alarm_events WHERE recorded_at >= $1 GROUP BY alarm_id) \
             AND alarm_id NOT IN (SELECT alarm_id FROM alarm_events WHERE recorded_at >= $1 AND transition = 'cleared') \
             ORDER BY id",
        )
        .bind(since)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Returns how many transitions of each kind are stored, e.g. `[("cleared", 3), ("raised", 5)]`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn transition_counts(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let rows = sqlx::query("SELECT transition, COUNT(*) AS count FROM alarm_events GROUP BY transition ORDER BY transition")
            .fetch_all(self.database.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("transition")?, row.try_get("count")?)))
            .collect()
    }

    /// Returns the database, shared with the engine's other tables.
    pub fn database(&self) -> &Database {
        &self.database
    }
}

pub(super) fn record_from_row(row: &AnyRow) -> Result<AlarmRecord, sqlx::Error> {
    Ok(AlarmRecord {
        alarm_id: row.try_get("alarm_id")?,
        device: row.try_get("device_id")?,
        rule: row.try_get("rule_id")?,
        severity: row.try_get("severity")?,
        transition: row.try_get("transition")?,
        key: row.try_get("key")?,
        value: row.try_get("value")?,
        message: row.try_get("message")?,
        raised_at: row.try_get("raised_at")?,
        cleared_at: row.try_get("cleared_at")?,
        frame_ts: row.try_get("frame_ts")?,
        cleared_frame_ts: row.try_get("cleared_frame_ts")?,
        rule_version: row.try_get("rule_version")?,
        inputs: serde_json::from_str(row.try_get::<&str, _>("inputs")?).unwrap_or_default(),
        flapping: row.try_get::<i64, _>("flapping")? != 0,
        operator: row.try_get("operator")?,
        shelved_until: row.try_get("shelved_until")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// Starts the task that writes queued alarm events until every sender is dropped, then
/// writes what is left and ends.
pub fn spawn_writer(
    history: AlarmHistory,
    mut queue: mpsc::Receiver<AlarmEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
            let running = !queue.is_closed();
            write_with_retry(&history, &batch, running).await;
            batch.clear();
        }
        info!("Alarm history writer stopped");
    })
}

async fn write_with_retry(history: &AlarmHistory, batch: &[AlarmEvent], running: bool) {
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match history.insert(batch).await {
            Ok(()) => {
                StoreAlarmEventsWritten(batch.len() as u64).emit();
                return;
            }
            Err(error) if running || attempt < SHUTDOWN_ATTEMPTS => {
                StoreAlarmWriteFailed.emit();
                warn!(%error, events = batch.len(), attempt, "Alarm history write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(error) => {
                error!(%error, events = batch.len(), "Alarm history write failed at shutdown; these events are lost");
                return;
            }
        }
    }
}
