//! Telemetry history in the SQL database: the default time-series store, written through the
//! batcher, and the source of the dashboard's chart history.
//!
//! One row per device and device time, with the frame's values as one JSON object (`TEXT` in
//! SQLite, `JSONB` in PostgreSQL). A replayed or corrected frame of an equal or higher version
//! is merged into its row key by key. A frame of a lower version is ignored whole.

use std::collections::HashMap;
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
const PARAMETERS_PER_ROW: usize = 4;

/// Numeric samples of one device between two device times, one row per key and value, for
/// the history query to bucket. Booleans count as 1 and 0, and text values are left out.
const SQLITE_SAMPLES: &str = "SELECT j.key AS key, t.ts AS ts, CAST(j.value AS REAL) AS v \
     FROM telemetry t, json_each(t.frame_values) j \
     WHERE t.device_id = $1 AND ($2 IS NULL OR j.key = $2) AND t.ts >= $3 AND t.ts < $4 \
     AND j.type IN ('integer', 'real', 'true', 'false')";
const POSTGRES_SAMPLES: &str = "SELECT j.key AS key, t.ts AS ts, \
     CASE jsonb_typeof(j.value) WHEN 'number' THEN (j.value)::float8 \
     WHEN 'boolean' THEN CASE WHEN (j.value)::boolean THEN 1.0 ELSE 0.0 END END AS v \
     FROM telemetry t, jsonb_each(t.frame_values) j \
     WHERE t.device_id = $1 AND ($2 IS NULL OR j.key = $2) AND t.ts >= $3 AND t.ts < $4";

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
        let samples = match self.database.backend() {
            Backend::Sqlite => SQLITE_SAMPLES,
            Backend::Postgres => POSTGRES_SAMPLES,
        };
        let statement = format!(
            "SELECT key, (ts / $5) * $5 AS bucket, MIN(v) AS min_value, MAX(v) AS max_value, \
             AVG(v) AS avg_value, COUNT(*) AS samples FROM ({samples}) AS numeric_samples \
             WHERE v IS NOT NULL GROUP BY key, (ts / $5) * $5 ORDER BY key, bucket"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(statement))
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

    /// Deletes frames the engine received before `cutoff` (engine time), returning how many.
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

    /// Returns how many values are stored, all keys of all frames, for tests and the demo's
    /// summary.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn count(&self) -> Result<i64, sqlx::Error> {
        let statement = match self.database.backend() {
            Backend::Sqlite => {
                "SELECT COUNT(*) AS values_stored FROM telemetry t, json_each(t.frame_values)"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) AS values_stored FROM telemetry t, jsonb_each(t.frame_values)"
            }
        };
        sqlx::query(statement)
            .fetch_one(self.database.pool())
            .await?
            .try_get("values_stored")
    }

    async fn insert(&self, rounds: &[Vec<FrameRow<'_>>]) -> Result<(), SinkError> {
        let mut transaction = self.database.begin_write().await?;
        for chunk in rounds
            .iter()
            .flat_map(|round| round.chunks(ROWS_PER_STATEMENT))
        {
            let statement = insert_statement(chunk.len(), self.database.backend());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for row in chunk {
                query = query
                    .bind(row.device)
                    .bind(row.ts)
                    .bind(row.version)
                    .bind(frame_values(&row.values));
            }
            query
                .execute(&mut **transaction)
                .await
                .map_err(|error| classify(&error))?;
        }
        transaction.commit().await.map_err(|error| classify(&error))
    }
}

/// One row to insert: the values of one device at one device time and version.
struct FrameRow<'a> {
    device: &'a str,
    ts: i64,
    version: i64,
    values: Vec<(&'a str, &'a Value)>,
}

impl<'a> FrameRow<'a> {
    fn of(record: &'a TimeSeriesRecord) -> Self {
        let mut row = Self {
            device: &record.device,
            ts: record.ts,
            version: record.version,
            values: Vec::with_capacity(record.values.len()),
        };
        row.absorb(record);
        row
    }

    /// Takes the values of `record`, of the same version, over those of the same keys.
    fn absorb(&mut self, record: &'a TimeSeriesRecord) {
        for (key, value) in &record.values {
            match self.values.iter_mut().find(|(kept, _)| *kept == &**key) {
                Some(slot) => slot.1 = value,
                None => self.values.push((key, value)),
            }
        }
    }
}

/// The values of one row as a JSON object, in the order given, each value as `Value`
/// serializes it.
struct FrameValues<'a>(&'a [(&'a str, &'a Value)]);

impl Serialize for FrameValues<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().copied())
    }
}

/// Returns the values as one JSON object.
fn frame_values(values: &[(&str, &Value)]) -> String {
    serde_json::to_string(&FrameValues(values))
        .expect("string keys and telemetry values always serialize to JSON")
}

/// Builds the insert of `rows` rows for `backend`.
///
/// SQLite gets anonymous `?` placeholders. SQLite looks each numbered placeholder up in a list
/// as long as the statement's parameters, so binding a 500-row statement with `$N` costs time
/// quadratic in its parameters. PostgreSQL needs `$N`, and a cast of the values to `JSONB`.
fn insert_statement(rows: usize, backend: Backend) -> String {
    let mut statement =
        String::from("INSERT INTO telemetry (device_id, ts, version, frame_values) VALUES ");
    for row in 0..rows {
        if row > 0 {
            statement.push_str(", ");
        }
        match backend {
            Backend::Sqlite => statement.push_str("(?, ?, ?, ?)"),
            Backend::Postgres => {
                let first = row * PARAMETERS_PER_ROW + 1;
                let _ = write!(
                    statement,
                    "(${first}, ${}, ${}, ${}::jsonb)",
                    first + 1,
                    first + 2,
                    first + 3
                );
            }
        }
    }
    statement.push_str(match backend {
        Backend::Sqlite => {
            " ON CONFLICT (device_id, ts) DO UPDATE SET \
             frame_values = json_patch(telemetry.frame_values, excluded.frame_values), \
             version = excluded.version WHERE telemetry.version <= excluded.version"
        }
        Backend::Postgres => {
            " ON CONFLICT (device_id, ts) DO UPDATE SET \
             frame_values = telemetry.frame_values || excluded.frame_values, \
             version = excluded.version WHERE telemetry.version <= excluded.version"
        }
    });
    statement
}

/// Rows of `batch` in rounds to write one after another: one row per device, device time and
/// version, and each device and time at most once per round, as one statement may not update
/// a row twice. Rounds go up in version, so the store's version check sees every record's own
/// version, and a record older than the stored row changes nothing even when a newer record
/// of the same frame is in the batch.
fn rounds(batch: &[TimeSeriesRecord]) -> Vec<Vec<FrameRow<'_>>> {
    let mut by_version: Vec<&TimeSeriesRecord> = batch.iter().collect();
    by_version.sort_by_key(|record| record.version);
    let mut frames: HashMap<(&str, i64), Vec<FrameRow<'_>>> = HashMap::with_capacity(batch.len());
    for record in by_version {
        let versions = frames.entry((&*record.device, record.ts)).or_default();
        match versions.last_mut() {
            Some(row) if row.version == record.version => row.absorb(record),
            _ => versions.push(FrameRow::of(record)),
        }
    }
    let mut rounds: Vec<Vec<FrameRow<'_>>> = Vec::new();
    for versions in frames.into_values() {
        for (round, row) in versions.into_iter().enumerate() {
            if rounds.len() <= round {
                rounds.push(Vec::with_capacity(batch.len()));
            }
            rounds[round].push(row);
        }
    }
    rounds
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
        self.insert(&rounds(batch)).await?;
        Ok(BatchOutcome::default())
    }
}
