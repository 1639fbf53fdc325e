//! The engine's storage: the SQL database, the journal, and the sinks that write telemetry,
//! device documents and the equipment registry, wired as configured.
//!
//! Start order: open the database and journal, start the sinks, restore every device from
//! its stored document, replay the journal's backlog, and only then let ingest take new
//! messages. Shutdown drains the sinks after ingest has stopped and the actors have applied
//! everything they were sent.

pub mod config;
pub mod intake;
pub mod restore;
pub mod shadow_queue;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{info, warn};
use valmetal_actors::{DeviceDocument, DeviceId, DeviceRegistry};

pub use config::{ShadowTarget, StorageConfig, TimeSeriesTarget};
pub use intake::{Intake, TimeSeriesQueues};
pub use shadow_queue::{LateRegistry, ShadowQueue};

use crate::journal::{Backlog, Journal, JournalError};
use crate::sinks::batcher::DrainReport;
use crate::sinks::dead_letter::DeadLetter;
use crate::sinks::dynamodb::DynamoShadowStore;
use crate::sinks::shadows::{ShadowSink, ShadowStore};
use crate::sinks::timestream::TimestreamSink;
use crate::sinks::{self, SinkError, SinkTask};
use crate::store::equipment::EquipmentStore;
use crate::store::shadows::SqlShadowStore;
use crate::store::telemetry::SqlTelemetry;
use crate::store::{AlarmHistory, Database, StoreError};

/// How often old rows are deleted from the SQL telemetry table.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Errors starting storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Database(#[from] StoreError),
    #[error(
        "`storage.database_url` {url} cannot take `storage.database_password`; give a URL with a user, such as postgres://valmetal@host:5432/valmetal"
    )]
    DatabaseUrl { url: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(
        "cannot read stored device documents from {store} after trying for 2 minutes: {source}; check that the store is reachable, since the engine takes no messages before its devices are restored"
    )]
    Restore {
        store: &'static str,
        source: SinkError,
    },
    #[error("cannot set up {store}: {reason}")]
    Setup { store: &'static str, reason: String },
}

/// The running sinks.
pub struct Storage {
    database: Database,
    journal: Option<Arc<Journal>>,
    backlog: Option<Backlog>,
    sql_telemetry: Option<SinkTask<SqlTelemetry>>,
    timestream: Option<SinkTask<TimestreamSink>>,
    history: Option<SqlTelemetry>,
    shadows: ShadowTasks,
    equipment: SinkTask<EquipmentStore>,
    registry: LateRegistry,
    pruner: Option<JoinHandle<()>>,
    /// Closes the journal's open segment when it ages during a quiet time.
    roller: Option<JoinHandle<()>>,
}

enum ShadowTasks {
    Sql(SinkTask<ShadowSink<SqlShadowStore, LateRegistry>>),
    Dynamodb(SinkTask<ShadowSink<DynamoShadowStore, LateRegistry>>),
}

impl Storage {
    /// Opens the database and journal and starts the sinks. The actors are not known yet:
    /// [`Self::attach`] hands them over before anything is written.
    ///
    /// # Errors
    ///
    /// Returns [`StorageError`] when a store cannot be opened.
    pub async fn start(config: &StorageConfig) -> Result<Self, StorageError> {
        let url = config
            .database_url_with_password()
            .map_err(|url| StorageError::DatabaseUrl { url })?;
        let database = match url {
            Some(url) => Database::open_url(&url).await?,
            None => Database::open_sqlite(&config.sqlite_path()).await?,
        };
        let (journal, backlog) = match config.journal.durability {
            crate::journal::Durability::Memory => (None, None),
            _ => {
                let (journal, backlog) =
                    Journal::open(&config.journal_dir(), config.journal.clone())?;
                (Some(Arc::new(journal)), Some(backlog))
            }
        };
        let roller = journal
            .as_ref()
            .map(|journal| spawn_roller(Arc::clone(journal), config.journal.segment_age));
        let dead_letter = DeadLetter::new(config.dead_letter_dir());
        let registry = LateRegistry::default();
        let wants_sql = config.timeseries.contains(&TimeSeriesTarget::Sql);
        let history = wants_sql.then(|| SqlTelemetry::new(database.clone()));
        let sql_telemetry = history
            .clone()
            .map(|sink| sinks::spawn(sink, config.timeseries_batch.clone(), dead_letter.clone()));
        let pruner = history
            .clone()
            .map(|telemetry| spawn_pruner(telemetry, config.sql_telemetry_retention));
        let timestream = if config.timeseries.contains(&TimeSeriesTarget::Timestream) {
            Some(sinks::spawn(
                connect_timestream(config).await?,
                config.timeseries_batch.clone(),
                dead_letter.clone(),
            ))
        } else {
            None
        };
        let source = Arc::new(registry.clone());
        let batch = config.shadow_batch.clone();
        let shadows = match config.shadows {
            ShadowTarget::Sql => ShadowTasks::Sql(sinks::spawn(
                ShadowSink::new(SqlShadowStore::new(database.clone()), source),
                batch,
                dead_letter.clone(),
            )),
            ShadowTarget::Dynamodb => ShadowTasks::Dynamodb(sinks::spawn(
                ShadowSink::new(connect_dynamodb(config).await?, source),
                batch,
                dead_letter.clone(),
            )),
        };
        let equipment = sinks::spawn(
            EquipmentStore::new(database.clone()),
            config.shadow_batch.clone(),
            dead_letter,
        );
        Ok(Self {
            database,
            journal,
            backlog,
            sql_telemetry,
            timestream,
            history,
            shadows,
            equipment,
            registry,
            pruner,
            roller,
        })
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Returns the telemetry history the dashboard reads, when the SQL store is configured.
    pub fn history(&self) -> Option<&SqlTelemetry> {
        self.history.as_ref()
    }

    /// Returns the queues that actor events feed.
    pub fn shadow_queue(&self) -> ShadowQueue {
        let shadows = match &self.shadows {
            ShadowTasks::Sql(task) => shadow_queue::Shadows::Sql(Arc::clone(task.queue())),
            ShadowTasks::Dynamodb(task) => {
                shadow_queue::Shadows::Dynamodb(Arc::clone(task.queue()))
            }
        };
        ShadowQueue::new(shadows, Arc::clone(self.equipment.queue()))
    }

    /// Reads every stored device document.
    ///
    /// # Errors
    ///
    /// Returns [`StorageError::Restore`] when the shadow store cannot be read.
    pub async fn load_documents(&self) -> Result<Vec<DeviceDocument>, StorageError> {
        match &self.shadows {
            ShadowTasks::Sql(task) => load(task).await,
            ShadowTasks::Dynamodb(task) => load(task).await,
        }
    }

    /// Hands over the device registry, restores every stored device into it, and returns the
    /// intake that ingest and the journal replay feed, with the ids of the restored devices.
    ///
    /// # Errors
    ///
    /// Returns [`StorageError::Restore`] when the shadow store cannot be read.
    pub async fn attach(
        &mut self,
        registry: &Arc<DeviceRegistry>,
        events: &ShadowQueue,
    ) -> Result<(Intake, Vec<DeviceId>), StorageError> {
        self.registry.set(registry);
        let mut documents = self.load_documents().await?;
        let since = valmetal_actors::clock::now_ms() - restore::HISTORY_LOOKBACK_MS;
        match AlarmHistory::new(self.database.clone())
            .open_since(since)
            .await
        {
            Ok(history) => {
                let added = restore::add_open_alarms(
                    &mut documents,
                    history,
                    |device| registry.describe(device),
                    valmetal_actors::clock::now_ms(),
                );
                if added > 0 {
                    info!(
                        alarms = added,
                        "Open alarms restored from the alarm history"
                    );
                }
            }
            Err(error) => {
                warn!(%error, "Cannot read open alarms from the alarm history; devices restore from their documents alone");
            }
        }
        for document in &documents {
            registry.restore(document);
            events.registered(&document.device_id);
        }
        if !documents.is_empty() {
            info!(
                devices = documents.len(),
                "Devices restored from the shadow store"
            );
        }
        let queues = TimeSeriesQueues {
            sql: self
                .sql_telemetry
                .as_ref()
                .map(|task| Arc::clone(task.queue())),
            timestream: self
                .timestream
                .as_ref()
                .map(|task| Arc::clone(task.queue())),
        };
        let intake = Intake::new(Arc::clone(registry), self.journal.clone(), queues);
        let restored = documents
            .into_iter()
            .map(|document| document.device_id)
            .collect();
        Ok((intake, restored))
    }

    /// Replays what an earlier run journaled and did not store, returning the message count.
    ///
    /// # Errors
    ///
    /// Returns [`StorageError::Journal`] when a segment cannot be read.
    pub async fn replay(
        &mut self,
        intake: &Intake,
        max_payload_bytes: usize,
    ) -> Result<u64, StorageError> {
        let Some(backlog) = self.backlog.take() else {
            return Ok(0);
        };
        Ok(intake.replay(backlog, max_payload_bytes).await?)
    }

    /// Writes what the sinks hold, within each one's drain timeout. The actors must have
    /// applied every frame before this is called; the database stays open for the alarm
    /// history, whose writer ends after the actors.
    pub async fn shutdown(self) {
        if let Some(task) = self.pruner {
            task.abort();
        }
        if let Some(task) = self.roller {
            task.abort();
        }
        let timestream = async {
            match self.timestream {
                Some(task) => task.shutdown().await,
                None => DrainReport::default(),
            }
        };
        let sql_telemetry = async {
            match self.sql_telemetry {
                Some(task) => task.shutdown().await,
                None => DrainReport::default(),
            }
        };
        let shadows = async {
            match self.shadows {
                ShadowTasks::Sql(task) => task.shutdown().await,
                ShadowTasks::Dynamodb(task) => task.shutdown().await,
            }
        };
        let reports = tokio::join!(
            timestream,
            sql_telemetry,
            shadows,
            self.equipment.shutdown()
        );
        let reports = [reports.0, reports.1, reports.2, reports.3];
        let unwritten: usize = reports.iter().map(|report| report.unwritten).sum();
        let dead_lettered: usize = reports.iter().map(|report| report.dead_lettered).sum();
        if unwritten > dead_lettered {
            warn!(
                records = unwritten - dead_lettered,
                "Storage stopped with unwritten records; the journal keeps them for the next start"
            );
        }
        if dead_lettered > 0 {
            warn!(
                records = dead_lettered,
                "Storage stopped with records no journal holds; they are in the dead-letter files"
            );
        }
        drop(self.journal);
    }
}

async fn load<T: ShadowStore>(
    task: &SinkTask<ShadowSink<T, LateRegistry>>,
) -> Result<Vec<DeviceDocument>, StorageError> {
    let store = task.queue().sink().store();
    restore::load_with_retry(store.name(), || store.load_all())
        .await
        .map_err(|source| StorageError::Restore {
            store: store.name(),
            source,
        })
}

async fn connect_timestream(config: &StorageConfig) -> Result<TimestreamSink, StorageError> {
    let setup_error = |error: crate::sinks::aws::AwsSetupError| StorageError::Setup {
        store: "timestream",
        reason: error.to_string(),
    };
    let sink = TimestreamSink::connect(&config.timestream)
        .await
        .map_err(setup_error)?;
    if config.create_tables {
        sink.ensure_table().await.map_err(setup_error)?;
    }
    Ok(sink)
}

async fn connect_dynamodb(config: &StorageConfig) -> Result<DynamoShadowStore, StorageError> {
    let store = DynamoShadowStore::connect(&config.dynamodb).await;
    if config.create_tables {
        store
            .ensure_table()
            .await
            .map_err(|error| StorageError::Setup {
                store: "dynamodb",
                reason: error.to_string(),
            })?;
    }
    Ok(store)
}

fn spawn_roller(journal: Arc<Journal>, segment_age: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(segment_age.max(Duration::from_secs(1)) / 2);
        loop {
            interval.tick().await;
            journal.roll_if_aged();
        }
    })
}

fn spawn_pruner(telemetry: SqlTelemetry, retention: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            interval.tick().await;
            let cutoff = valmetal_actors::clock::now_ms()
                - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            match telemetry.prune(cutoff).await {
                Ok(0) => {}
                Ok(rows) => info!(rows, "Old telemetry deleted from the SQL store"),
                Err(error) => warn!(%error, "Cannot delete old telemetry from the SQL store"),
            }
        }
    })
}
