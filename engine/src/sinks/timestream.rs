//! The Timestream for LiveAnalytics sink: every accepted frame becomes one multi-measure
//! record in a Timestream table.
//!
//! Each record has the measure name `telemetry` and one measure value per frame key: numbers
//! as `DOUBLE`, booleans as `BOOLEAN`, text as `VARCHAR`. Its time is the device time in
//! milliseconds, its version that of the [`TimeSeriesRecord`], and its dimensions are
//! `device_id`, `equipment_type` and, when known, `farm`. The sink splits a batch into requests of at most 100 records,
//! merges records Timestream would see as duplicates, and turns each rejected record into a
//! rewrite, a supersession or a refusal. Queueing, retries and dead-lettering belong to the
//! [batcher](super::batcher).

pub mod records;
mod rejections;

use std::time::Duration;

use aws_sdk_timestreamwrite::Client;
use aws_sdk_timestreamwrite::error::SdkError;
use aws_sdk_timestreamwrite::operation::write_records::WriteRecordsError;
use aws_sdk_timestreamwrite::types::{
    MagneticStoreWriteProperties, RejectedRecord, RetentionProperties,
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use valmetal_actors::clock::now_ms;

pub use records::{MAX_RECORDS_PER_REQUEST, MEASURE_NAME};

use self::records::{MergedRecord, PlannedRequest};
use self::rejections::{Verdict, describe_time};
use super::aws::{self, AwsConfig, AwsSetupError};
use super::timeseries::TimeSeriesRecord;
use super::{BatchOutcome, ErrorClass, Refusal, Sink, SinkError};

/// Name of the sink in metrics, logs and the dead-letter file.
const SINK_NAME: &str = "timestream";
/// Magnetic store retention of a table that [`TimestreamSink::ensure_table`] creates.
const CREATED_MAGNETIC_RETENTION_DAYS: i64 = 365;
/// Maximum memory store retention of Timestream: 8766 hours, one year.
const MAX_MEMORY_RETENTION_HOURS: i64 = 8766;

/// Settings of the Timestream sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimestreamConfig {
    /// Timestream database. Default `valmetal`.
    pub database: String,
    /// Table in `database`. Default `telemetry`.
    pub table: String,
    /// Region, endpoint and credentials.
    pub aws: AwsConfig,
    /// Whether the table accepts records older than its memory store retention, which
    /// Timestream then writes to the magnetic store. It must match the table's own
    /// `EnableMagneticStoreWrites`. When false, the sink sends no record older than
    /// `memory_store_retention` and dead-letters it as `too_old` instead. Default true.
    pub magnetic_store_writes: bool,
    /// Memory store retention of the table, e.g. `24h`; it must match the table's own. Only
    /// whole hours from 1 hour to 8766 hours (one year) exist in Timestream. Default `24h`.
    #[serde(with = "humantime_serde")]
    pub memory_store_retention: Duration,
}

impl Default for TimestreamConfig {
    fn default() -> Self {
        Self {
            database: "valmetal".to_owned(),
            table: "telemetry".to_owned(),
            aws: AwsConfig::default(),
            magnetic_store_writes: true,
            memory_store_retention: Duration::from_secs(24 * 3600),
        }
    }
}

impl TimestreamConfig {
    /// Returns the retention in whole hours as Timestream takes it, rounded up and clamped
    /// to the allowed range.
    fn memory_retention_hours(&self) -> i64 {
        let hours = self.memory_store_retention.as_secs().div_ceil(3600);
        i64::try_from(hours)
            .unwrap_or(MAX_MEMORY_RETENTION_HOURS)
            .clamp(1, MAX_MEMORY_RETENTION_HOURS)
    }

    fn memory_retention_ms(&self) -> i64 {
        i64::try_from(self.memory_store_retention.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The sink writing [`TimeSeriesRecord`]s to a Timestream table.
pub struct TimestreamSink {
    client: Client,
    config: TimestreamConfig,
}

// === impl TimestreamSink ===

impl TimestreamSink {
    /// Builds the client of `config`. Without a fixed endpoint the client discovers its cell
    /// endpoint, as Timestream requires, and refreshes it in a background task that ends
    /// when the sink is dropped. With `endpoint_url` set, every request goes there.
    ///
    /// NOTE: the tests only run the fixed-endpoint path, because discovered endpoints are
    /// always `https` and no emulator here serves TLS.
    ///
    /// # Errors
    ///
    /// Returns [`AwsSetupError`] when endpoint discovery fails.
    pub async fn connect(config: &TimestreamConfig) -> Result<Self, AwsSetupError> {
        let sdk_config = aws::sdk_config(&config.aws).await;
        let client = Client::new(&sdk_config);
        let client = if config.aws.endpoint_url.is_some() {
            client
        } else {
            let (client, reloader) = client
                .with_endpoint_discovery_enabled()
                .await
                .map_err(|error| AwsSetupError::new("DescribeEndpoints", error.to_string()))?;
            tokio::spawn(reloader.reload_task());
            client
        };
        Ok(Self {
            client,
            config: config.clone(),
        })
    }

    /// Creates the database and table of the configuration unless they exist, with the
    /// configured memory store retention and magnetic-store writes, and a magnetic store
    /// retention of 365 days. An existing table is left as it is.
    ///
    /// # Errors
    ///
    /// Returns [`AwsSetupError`] when a request fails for another reason than the database
    /// or table existing.
    pub async fn ensure_table(&self) -> Result<(), AwsSetupError> {
        let database = &self.config.database;
        let table = &self.config.table;
        let created = self
            .client
            .create_database()
            .database_name(database)
            .send()
            .await;
        match created {
            Ok(_) => info!(timestream.database = %database, "Created Timestream database"),
            Err(error) if is_conflict(&error) => {}
            Err(error) => return Err(setup_error("CreateDatabase", &error)),
        }

        let created = self
            .client
            .create_table()
            .database_name(database)
            .table_name(table)
            .retention_properties(self.retention()?)
            .magnetic_store_write_properties(
                MagneticStoreWriteProperties::builder()
                    .enable_magnetic_store_writes(self.config.magnetic_store_writes)
                    .build()
                    .map_err(|error| AwsSetupError::new("CreateTable", error.to_string()))?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {
                info!(timestream.database = %database, timestream.table = %table, "Created Timestream table");
                Ok(())
            }
            Err(error) if is_conflict(&error) => Ok(()),
            Err(error) => Err(setup_error("CreateTable", &error)),
        }
    }

    fn retention(&self) -> Result<RetentionProperties, AwsSetupError> {
        RetentionProperties::builder()
            .memory_store_retention_period_in_hours(self.config.memory_retention_hours())
            .magnetic_store_retention_period_in_days(CREATED_MAGNETIC_RETENTION_DAYS)
            .build()
            .map_err(|error| AwsSetupError::new("CreateTable", error.to_string()))
    }

    /// Refuses, without sending them, the records Timestream would reject for sure, and
    /// returns the indexes of the others.
    fn screen(
        &self,
        batch: &[TimeSeriesRecord],
        now: i64,
        outcome: &mut BatchOutcome,
    ) -> Vec<usize> {
        let oldest_accepted = now.saturating_sub(self.config.memory_retention_ms());
        let mut sendable = Vec::with_capacity(batch.len());
        for (index, record) in batch.iter().enumerate() {
            if record.values.is_empty() {
                outcome.refused.push(Refusal {
                    index,
                    reason: "no_values",
                    detail: "the record has no values, and a Timestream record needs at least one measure".to_owned(),
                });
            } else if !self.config.magnetic_store_writes && record.ts < oldest_accepted {
                outcome.refused.push(Refusal {
                    index,
                    reason: "too_old",
                    detail: format!(
                        "device time {} is older than the memory store retention of {}, and magnetic-store writes are off",
                        describe_time(record.ts),
                        humantime::format_duration(self.config.memory_store_retention)
                    ),
                });
            } else {
                sendable.push(index);
            }
        }
        sendable
    }

    /// Sends one request.
    async fn send(&self, request: &PlannedRequest) -> Result<(), SdkError<WriteRecordsError>> {
        let (common, sdk_records) = match (request.common_attributes(), request.sdk_records()) {
            (Ok(common), Ok(sdk_records)) => (common, sdk_records),
            (Err(error), _) | (_, Err(error)) => {
                return Err(SdkError::construction_failure(error));
            }
        };
        self.client
            .write_records()
            .database_name(&self.config.database)
            .table_name(&self.config.table)
            .common_attributes(common)
            .set_records(Some(sdk_records))
            .send()
            .await
            .map(|_| ())
    }
}

impl Sink for TimestreamSink {
    type Record = TimeSeriesRecord;
    type Key = ();

    fn name(&self) -> &'static str {
        SINK_NAME
    }

    fn record_bytes(&self, record: &TimeSeriesRecord) -> usize {
        record.approximate_bytes()
    }

    fn coalesce_key(&self, _record: &TimeSeriesRecord) -> Option<()> {
        None
    }

    async fn write(&self, batch: &mut [TimeSeriesRecord]) -> Result<BatchOutcome, SinkError> {
        let now = now_ms();
        let mut outcome = BatchOutcome::default();
        let sendable = self.screen(batch, now, &mut outcome);
        let requests = records::plan(records::merge(batch, sendable));

        let mut failures = Vec::new();
        let mut answered = false;
        for request in &requests {
            let Err(error) = self.send(request).await else {
                answered = true;
                continue;
            };
            match rejected_records(&error) {
                Some(rejected) => {
                    answered = true;
                    settle_rejections(batch, &request.records, rejected, now, &mut outcome);
                }
                None => failures.push((request, aws::classify(&error))),
            }
        }

        // With no response at all, and every request failed alike, the batch as a whole
        // failed, so the batcher logs and backs off once for it.
        let first_class = failures.first().map(|(_, error)| error.class);
        let failed_alike = failures
            .iter()
            .all(|(_, error)| Some(error.class) == first_class);
        if !answered && outcome.refused.is_empty() && failed_alike {
            if let Some((_, error)) = failures.into_iter().next() {
                return Err(error);
            }
            return Ok(outcome);
        }
        for (request, error) in failures {
            fail_request(request, &error, &mut outcome);
        }
        Ok(outcome)
    }
}

// === Responses ===

/// Returns the rejected records when `error` is a `RejectedRecordsException`.
fn rejected_records(error: &SdkError<WriteRecordsError>) -> Option<&[RejectedRecord]> {
    match error.as_service_error()? {
        WriteRecordsError::RejectedRecordsException(exception) => {
            Some(exception.rejected_records())
        }
        _ => None,
    }
}

/// Marks the records of a failed request for a retry or a refusal. This is used when other
/// requests of the batch got a response, so the batch as a whole does not fail.
fn fail_request(request: &PlannedRequest, error: &SinkError, outcome: &mut BatchOutcome) {
    let members = request
        .records
        .iter()
        .flat_map(|record| record.members.iter().copied());
    match error.class {
        ErrorClass::Retriable => {
            warn!(sink = SINK_NAME, records = request.records.len(), %error, "Timestream request failed; retrying its records");
            outcome.retry.extend(members);
        }
        ErrorClass::Permanent => {
            outcome.refused.extend(members.map(|index| Refusal {
                index,
                reason: error.reason,
                detail: error.message.clone(),
            }));
        }
    }
}

/// Applies the rejected records of one request: the others of the request were written.
fn settle_rejections(
    batch: &mut [TimeSeriesRecord],
    sent: &[MergedRecord],
    rejected: &[RejectedRecord],
    now: i64,
    outcome: &mut BatchOutcome,
) {
    let mut settled = vec![false; sent.len()];
    for rejection in rejected {
        let position = usize::try_from(rejection.record_index()).ok();
        let Some(position) = position.filter(|&position| position < sent.len()) else {
            warn!(
                sink = SINK_NAME,
                record.index = rejection.record_index(),
                records = sent.len(),
                "Timestream rejected a record index outside the request; ignoring it"
            );
            continue;
        };
        if std::mem::replace(&mut settled[position], true) {
            continue;
        }
        let record = &sent[position];
        let verdict = rejections::judge(
            record.version,
            record.ts,
            rejection.existing_version(),
            rejection.reason(),
            now,
        );
        apply_verdict(batch, record, verdict, outcome);
    }
}

fn apply_verdict(
    batch: &mut [TimeSeriesRecord],
    record: &MergedRecord,
    verdict: Verdict,
    outcome: &mut BatchOutcome,
) {
    match verdict {
        Verdict::Rewrite { version } => {
            // Every member moves up by the same step, so the merge of the next attempt picks
            // the same value per key as this one.
            let step = version.saturating_sub(record.version);
            for &index in &record.members {
                batch[index].version = batch[index].version.saturating_add(step);
            }
            outcome.retry.extend(record.members.iter().copied());
        }
        Verdict::Superseded { .. } => outcome.superseded.extend(record.members.iter().copied()),
        Verdict::Refuse { reason, detail } => {
            outcome
                .refused
                .extend(record.members.iter().map(|&index| Refusal {
                    index,
                    reason,
                    detail: detail.clone(),
                }));
        }
    }
}

fn is_conflict<E: aws_sdk_timestreamwrite::error::ProvideErrorMetadata>(
    error: &SdkError<E>,
) -> bool {
    error.as_service_error().and_then(|error| error.code()) == Some("ConflictException")
}

fn setup_error<E>(operation: &'static str, error: &SdkError<E>) -> AwsSetupError
where
    E: std::error::Error + 'static,
{
    AwsSetupError::new(
        operation,
        aws_sdk_timestreamwrite::error::DisplayErrorContext(error).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_retention_as_duration() {
        let config: TimestreamConfig = serde_json::from_str(
            r#"{"database": "farm", "memory_store_retention": "90min", "magnetic_store_writes": false}"#,
        )
        .unwrap();
        assert_eq!(config.database, "farm");
        assert_eq!(config.table, "telemetry");
        assert!(!config.magnetic_store_writes);
        assert_eq!(config.memory_store_retention, Duration::from_secs(5400));
        assert_eq!(
            config.memory_retention_hours(),
            2,
            "rounded up to whole hours"
        );
        let unknown: Result<TimestreamConfig, _> = serde_json::from_str(r#"{"tabel": "x"}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn retention_hours_stay_within_timestream_range() {
        let mut config = TimestreamConfig {
            memory_store_retention: Duration::from_secs(60),
            ..TimestreamConfig::default()
        };
        assert_eq!(config.memory_retention_hours(), 1);
        config.memory_store_retention = Duration::from_secs(10 * 365 * 24 * 3600);
        assert_eq!(config.memory_retention_hours(), MAX_MEMORY_RETENTION_HOURS);
    }
}
