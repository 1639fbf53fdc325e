//! Telemetry history in the SQL database: the default time-series store, written through the
//! batcher, and the source of the dashboard's chart history.
//!
//! One row per device, key and device time; a replayed or corrected frame rewrites its rows,
//! and a row is only replaced by one of an equal or higher version.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;

use serde::Serialize;
use sqlx::Row;
use valmetal_actors::Value;

use super::database::classify;
use super::database::{Backend, Database};
use crate::sinks::timeseries::TimeSeriesRecord;
use crate::sinks::{BatchOutcome, Sink, SinkError};

/// Rows per statement at most, well under both servers' parameter limits.
const ROWS_PER_STATEMENT: usize = 500;
/// Parameters per row.
const PARAMETERS_PER_ROW: usize = 6;

/// The `telemetry` table as a sink.
#[derive(Clone)]
pub struct SqlTelemetry {
    database: Database,
}

/// One point of a downsampled series: the values of one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    /// Start of the bucket, device time in milliseconds since the Unix epoch.
    pub ts: i64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub count: i64,
}

impl SqlTelemetry {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Returns the numeric values of `device`, of one key or all, between `from`
    /// (inclusive) and `to` (exclusive) in device time, reduced to buckets of `bucket_ms`, by
    /// key then oldest first.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn history(
        &self,
        device: &str,
        key: Option<&str>,
        range: std::ops::Range<i64>,
        bucket_ms: i64,
    ) -> Result<Vec<(String, HistoryPoint)>, sqlx::Error> {
        let bucket_ms = bucket_ms.max(1);
        let rows = sqlx::query(
            "SELECT key, (ts / $5) * $5 AS bucket, MIN(value_number) AS min_value, MAX(value_number) AS max_value, \
             AVG(value_number) AS avg_value, COUNT(*) AS samples FROM telemetry \
             WHERE device_id = $1 AND ($2 IS NULL OR key = $2) AND ts >= $3 AND ts < $4 AND value_number IS NOT NULL \
             GROUP BY key, (ts / $5) * $5 ORDER BY key, bucket",
        )
        .bind(device)
        .bind(key)
        .bind(range.start)
        .bind(range.end)
        .bind(bucket_ms)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("key")?,
                    HistoryPoint {
                        ts: row.try_get("bucket")?,
                        min: row.try_get("min_value")?,
                        max: row.try_get("max_value")?,
                        avg: row.try_get("avg_value")?,
                        count: row.try_get("samples")?,
                    },
                ))
            })
            .collect()
    }

    /// Deletes rows the engine received before `cutoff` (engine time), returning how many.
    /// Receipt time rather than device time, so replayed recordings stay for the retention.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn prune(&self, cutoff: i64) -> Result<u64, sqlx::Error> {
        let result = sqlx::query("DELETE FROM telemetry WHERE version < $1")
            .bind(cutoff)
            .execute(self.database.pool())
            .await?;
        Ok(result.rows_affected())
    }

    /// Returns how many rows are stored, for tests and the demo's summary.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) AS rows_stored FROM telemetry")
            .fetch_one(self.database.pool())
            .await?
            .try_get("rows_stored")
    }

    async fn insert(&self, rows: &[TelemetryRow<'_>]) -> Result<(), SinkError> {
        let mut transaction = self.database.begin_write().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let statement = insert_statement(chunk.len(), self.database.backend());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for row in chunk {
                let (number, text) = match row.value {
                    Value::Number(number) => (Some(*number), None),
                    Value::Bool(flag) => (Some(if *flag { 1.0 } else { 0.0 }), None),
                    Value::Text(text) => (None, Some(text.to_string())),
                };
                query = query
                    .bind(row.device)
                    .bind(row.key)
                    .bind(row.ts)
                    .bind(number)
                    .bind(text)
                    .bind(row.version);
            }
            query
                .execute(&mut **transaction)
                .await
                .map_err(|error| classify(&error))?;
        }
        transaction.commit().await
    }
}

/// One row to insert.
struct TelemetryRow<'a> {
    device: &'a str,
    key: &'a str,
    ts: i64,
    value: &'a Value,
    version: i64,
}

/// Builds the insert of `rows` rows for `backend`.
///
/// SQLite gets anonymous `?` placeholders. SQLite looks each numbered placeholder up in a list
/// as long as the statement's parameters, so binding a 500-row statement with `$N` costs time
/// quadratic in its parameters, which dominated the engine's CPU. PostgreSQL needs `$N`.
fn insert_statement(rows: usize, backend: Backend) -> String {
    let mut statement = String::from(
        "INSERT INTO telemetry (device_id, key, ts, value_number, value_text, version) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            statement.push_str(", ");
        }
        statement.push('(');
        let first = row * PARAMETERS_PER_ROW + 1;
        for number in first..first + PARAMETERS_PER_ROW {
            if number > first {
                statement.push_str(", ");
            }
            match backend {
                Backend::Sqlite => statement.push('?'),
                Backend::Postgres => {
                    let _ = write!(statement, "${number}");
                }
            }
        }
        statement.push(')');
    }
    statement.push_str(
        " ON CONFLICT (device_id, key, ts) DO UPDATE SET value_number = excluded.value_number, \
         value_text = excluded.value_text, version = excluded.version WHERE telemetry.version <= excluded.version",
    );
    statement
}

/// Rows of `batch`, the newest version of each device, key and time only: one statement may
/// not name the same row twice.
fn rows(batch: &[TimeSeriesRecord]) -> Vec<TelemetryRow<'_>> {
    let mut newest: HashMap<(&str, &str, i64), TelemetryRow<'_>> = HashMap::new();
    for record in batch {
        for (key, value) in &record.values {
            let row = TelemetryRow {
                device: &record.device,
                key,
                ts: record.ts,
                value,
                version: record.version,
            };
            match newest.entry((&*record.device, &**key, record.ts)) {
                Entry::Occupied(mut kept) if kept.get().version <= row.version => {
                    kept.insert(row);
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(slot) => {
                    slot.insert(row);
                }
            }
        }
    }
    newest.into_values().collect()
}

impl Sink for SqlTelemetry {
    type Record = TimeSeriesRecord;
    type Key = ();

    fn name(&self) -> &'static str {
        "sql_telemetry"
    }

    fn record_bytes(&self, record: &TimeSeriesRecord) -> usize {
        record.approximate_bytes()
    }

    fn coalesce_key(&self, _record: &TimeSeriesRecord) -> Option<()> {
        None
    }

    async fn write(&self, batch: &mut [TimeSeriesRecord]) -> Result<BatchOutcome, SinkError> {
        self.insert(&rows(batch)).await?;
        Ok(BatchOutcome::default())
    }
}
