//! Storage settings: the stores the engine writes to, the journal and the batching.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::journal::JournalConfig;
pub use crate::secret::Secret;
use crate::sinks::dynamodb::DynamoConfig;
use crate::sinks::timestream::TimestreamConfig;
use crate::sinks::{BatcherConfig, Overflow};

/// Records per time-series batch by default. SQLite commits each batch as one transaction
/// whose cost is mostly the pages it rewrites, so larger batches cost less per record:
/// 1,000 instead of 100 carried 1.7 times the frames per second in the direct feed.
/// Timestream splits a batch into requests of 100, sent one after another.
const TIMESERIES_BATCH_RECORDS: usize = 1000;

/// A store of telemetry history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSeriesTarget {
    /// The `telemetry` table of the SQL database; the dashboard's charts read it.
    Sql,
    /// Amazon Timestream, as configured under `storage.timestream`.
    Timestream,
}

/// The store of device documents (shadows and open alarms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowTarget {
    /// The `device_shadows` table of the SQL database.
    Sql,
    /// Amazon DynamoDB, as configured under `storage.dynamodb`.
    Dynamodb,
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory of the SQLite database `valmetal.db`, the journal and the dead-letter
    /// files, created if missing. Default `.valmetal`.
    pub data_dir: PathBuf,
    /// `postgres://user:password@host:port/database` for farms, equipment, users, rules,
    /// alarm history and the outbox in PostgreSQL. Unset: SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// Password for `database_url`, kept apart so a secret store can inject it as
    /// `VALMETAL_STORAGE__DATABASE_PASSWORD`; it replaces any password in the URL.
    #[serde(skip_serializing)]
    pub database_password: Option<Secret>,
    /// Stores of telemetry history; every accepted frame goes to each. Default `["sql"]`.
    pub timeseries: Vec<TimeSeriesTarget>,
    /// Store of device documents. Default `sql`.
    pub shadows: ShadowTarget,
    pub journal: JournalConfig,
    /// Batching of telemetry writes.
    pub timeseries_batch: BatcherConfig,
    /// Batching of device document writes; `max_age` is the flush interval, so a device
    /// costs at most one write per interval whatever its frame rate.
    pub shadow_batch: BatcherConfig,
    /// How long telemetry stays in the SQL `telemetry` table after the engine received it,
    /// e.g. `30days`; older rows are deleted hourly. Timestream keeps its own retention.
    #[serde(with = "humantime_serde")]
    pub sql_telemetry_retention: Duration,
    /// The Timestream table, used when `timeseries` names `timestream`.
    pub timestream: TimestreamConfig,
    /// The DynamoDB table, used when `shadows` is `dynamodb`.
    pub dynamodb: DynamoConfig,
    /// Create the Timestream database and table and the DynamoDB table at start when they
    /// are missing. Meant for emulators and first trials; in production the infrastructure
    /// code owns the tables. Default false.
    pub create_tables: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".valmetal"),
            database_url: None,
            database_password: None,
            timeseries: vec![TimeSeriesTarget::Sql],
            shadows: ShadowTarget::Sql,
            journal: JournalConfig::default(),
            timeseries_batch: BatcherConfig {
                max_records: TIMESERIES_BATCH_RECORDS,
                ..BatcherConfig::default()
            },
            shadow_batch: BatcherConfig {
                max_records: 500,
                capacity: 1_000_000,
                overflow: Overflow::Drop,
                max_in_flight: 2,
                ..BatcherConfig::default()
            },
            sql_telemetry_retention: Duration::from_secs(30 * 24 * 3600),
            timestream: TimestreamConfig::default(),
            dynamodb: DynamoConfig::default(),
            create_tables: false,
        }
    }
}

impl StorageConfig {
    /// Returns `database_url` with `database_password` in it, if both are set.
    ///
    /// # Errors
    ///
    /// Returns the URL, without any password, when it cannot be parsed or has no user.
    pub fn database_url_with_password(&self) -> Result<Option<String>, String> {
        let Some(url) = &self.database_url else {
            return Ok(None);
        };
        let Some(Secret(password)) = &self.database_password else {
            return Ok(Some(url.clone()));
        };
        let refused = || crate::store::database::redact(url);
        let mut parsed = url::Url::parse(url).map_err(|_| refused())?;
        if parsed.username().is_empty() || parsed.set_password(Some(password)).is_err() {
            return Err(refused());
        }
        Ok(Some(parsed.to_string()))
    }

    /// Returns the path of the SQLite database.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("valmetal.db")
    }

    /// Returns the journal directory.
    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir.join("journal")
    }

    /// Returns the dead-letter directory.
    pub fn dead_letter_dir(&self) -> PathBuf {
        self.data_dir.join("dead-letter")
    }

    /// Lists out-of-bounds values, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, batch) in [
            ("timeseries_batch", &self.timeseries_batch),
            ("shadow_batch", &self.shadow_batch),
        ] {
            if batch.max_records == 0 || batch.capacity == 0 || batch.max_in_flight == 0 {
                problems.push(format!(
                    "`storage.{name}.max_records`, `capacity` and `max_in_flight` must be at least 1"
                ));
            }
            if batch.backoff.first.is_zero() || batch.backoff.max < batch.backoff.first {
                problems.push(format!(
                    "`storage.{name}.backoff` needs `first` above zero and `max` at least `first`"
                ));
            }
        }
        if self.shadow_batch.overflow == Overflow::Wait {
            problems.push("`storage.shadow_batch.overflow` must be `drop`: device actors never wait for a store, and one queued record per device is kept, so size `capacity` to the fleet instead".to_owned());
        }
        for (name, batch) in [
            ("timeseries_batch", &self.timeseries_batch),
            ("shadow_batch", &self.shadow_batch),
        ] {
            if batch.max_bytes == 0 || batch.max_age.is_zero() || batch.drain_timeout.is_zero() {
                problems.push(format!(
                    "`storage.{name}.max_bytes`, `max_age` and `drain_timeout` must be above zero"
                ));
            }
        }
        let mut targets = self.timeseries.clone();
        targets.sort_by_key(|target| *target as u8);
        targets.dedup();
        if targets.len() != self.timeseries.len() {
            problems.push("`storage.timeseries` names a store twice; name each of `sql` and `timestream` once".to_owned());
        }
        if self.database_password.is_some() && self.database_url.is_none() {
            problems.push("`storage.database_password` is set but `storage.database_url` is not; give the PostgreSQL URL, or remove the password to use SQLite".to_owned());
        }
        if self
            .database_url
            .as_deref()
            .is_some_and(|url| !url.starts_with("postgres://") && !url.starts_with("postgresql://"))
        {
            problems.push("`storage.database_url` must start with postgres://; leave it unset for SQLite under `storage.data_dir`".to_owned());
        }
        if self.timeseries.is_empty() {
            problems.push(
                "`storage.timeseries` must name at least one store: `sql` or `timestream`"
                    .to_owned(),
            );
        }
        if self.journal.segment_bytes < 4096 {
            problems.push("`storage.journal.segment_bytes` must be at least 4096".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(url: Option<&str>, password: Option<&str>) -> StorageConfig {
        StorageConfig {
            database_url: url.map(str::to_owned),
            database_password: password.map(|text| Secret(text.to_owned())),
            ..StorageConfig::default()
        }
    }

    #[test]
    fn database_url_takes_encoded_password() {
        let config = with(
            Some("postgres://valmetal@db:5432/valmetal"),
            Some("p@ss:w/rd"),
        );
        assert_eq!(
            config.database_url_with_password().unwrap().unwrap(),
            "postgres://valmetal:p%40ss%3Aw%2Frd@db:5432/valmetal"
        );
        let replaced = with(Some("postgres://valmetal:old@db/valmetal"), Some("new"));
        assert_eq!(
            replaced.database_url_with_password().unwrap().unwrap(),
            "postgres://valmetal:new@db/valmetal"
        );
    }

    #[test]
    fn database_url_without_user_rejected() {
        let config = with(Some("postgres://db/valmetal"), Some("secret"));
        let refused = config.database_url_with_password().unwrap_err();
        assert!(!refused.contains("secret"), "{refused}");
        assert_eq!(
            with(None, Some("secret")).database_url_with_password(),
            Ok(None)
        );
        assert!(!format!("{config:?}").contains("secret"));
    }
}
