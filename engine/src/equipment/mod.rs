//! Equipment records, maintenance from real usage, wear warnings and documents.
//!
//! The device actors count usage and watch wear trends (see `valmetal_actors::equipment`).
//! This module keeps what people record about their equipment in the database, computes when
//! each maintenance task is due from the counters and the work orders, hands due tasks to the
//! actors as maintenance alarms, and stores documents.

pub mod checker;
pub mod config;
pub mod documents;
pub mod due;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;
use valmetal_actors::equipment::WearReport;
use valmetal_actors::{DeviceId, DeviceRegistry};

use self::config::EquipmentConfig;
use self::documents::{DocumentError, FileStore};
use self::due::{DueInputs, TaskDue};
use crate::store::Database;
use crate::store::documents::DocumentStore;
use crate::store::equipment_records::{EquipmentRecord, EquipmentRecordStore};
use crate::store::maintenance::MaintenanceStore;

/// The maintenance state of one piece of equipment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaintenanceView {
    /// Usage counters of the linked device by name; empty without one.
    pub counters: BTreeMap<String, f64>,
    /// Wear trends of the linked device.
    pub wear: Vec<WearReport>,
    pub tasks: Vec<TaskDue>,
}

/// Records, maintenance and documents, shared by the API and the maintenance checker.
pub struct EquipmentService {
    pub config: EquipmentConfig,
    pub records: EquipmentRecordStore,
    pub maintenance: MaintenanceStore,
    pub documents: DocumentStore,
    pub files: FileStore,
    registry: Arc<DeviceRegistry>,
}

impl EquipmentService {
    /// Opens the stores of `config` on `database`; `create_bucket` creates a missing S3
    /// bucket.
    ///
    /// # Errors
    ///
    /// Returns [`DocumentError`] when the document store cannot be set up.
    pub async fn new(
        config: EquipmentConfig,
        database: Database,
        data_dir: &std::path::Path,
        create_bucket: bool,
        registry: Arc<DeviceRegistry>,
    ) -> Result<Self, DocumentError> {
        let files = FileStore::open(&config.documents, data_dir, create_bucket).await?;
        Ok(Self {
            config,
            records: EquipmentRecordStore::new(database.clone()),
            maintenance: MaintenanceStore::new(database.clone()),
            documents: DocumentStore::new(database),
            files,
            registry,
        })
    }

    /// Returns the current maintenance state of `record` at engine time `now`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn maintenance_of(
        &self,
        record: &EquipmentRecord,
        now: i64,
    ) -> Result<MaintenanceView, sqlx::Error> {
        let usage = match linked_device(record) {
            Some(device) => self.registry.usage(&device).await,
            None => None,
        };
        let counters = usage
            .as_ref()
            .map(|usage| usage.counters.clone())
            .unwrap_or_default();
        let overrides = self.maintenance.overrides(&record.equipment_id).await?;
        let work_orders = self.maintenance.work_orders(&record.equipment_id).await?;
        let inputs = DueInputs {
            now,
            installed_at: installed_at(record),
            counters: &counters,
            link_counters: &record.link_counters,
            linked_at: record.linked_at,
            work_orders: &work_orders,
            due_soon_fraction: self.config.due_soon_fraction,
            overdue_fraction: self.config.overdue_fraction,
        };
        let tasks = self
            .config
            .tasks_of(&record.fields.equipment_type)
            .iter()
            .map(|task| due::task_due(task, overrides.get(&task.id), &inputs))
            .collect();
        Ok(MaintenanceView {
            counters: counters
                .iter()
                .map(|(name, state)| (name.clone(), state.value))
                .collect(),
            wear: usage.map(|usage| usage.wear).unwrap_or_default(),
            tasks,
        })
    }

    /// Returns the current counter values of `device_id`, empty without a device or for an
    /// unknown one.
    pub async fn device_counters(&self, device_id: Option<&str>) -> BTreeMap<String, f64> {
        let Some(device) = device_id.and_then(|id| DeviceId::parse(id).ok()) else {
            return BTreeMap::new();
        };
        self.registry
            .usage(&device)
            .await
            .map(|usage| {
                usage
                    .counters
                    .iter()
                    .map(|(name, state)| (name.clone(), state.value))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Computes the due tasks of `record` and hands them to its device's actor, which raises
    /// and clears the maintenance alarms.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn raise_due(&self, record: &EquipmentRecord, now: i64) -> Result<(), sqlx::Error> {
        let Some(device) = linked_device(record) else {
            return Ok(());
        };
        let view = self.maintenance_of(record, now).await?;
        let due = view
            .tasks
            .iter()
            .filter_map(|task| {
                due::due_condition(
                    &record.fields.name,
                    task,
                    self.config.maintenance_reraise_after,
                )
            })
            .collect();
        self.registry.set_maintenance_due(&device, due);
        Ok(())
    }

    /// Clears every maintenance alarm of `device`, after it was unlinked from its record.
    pub fn clear_due(&self, device: &str) {
        if let Ok(device) = DeviceId::parse(device) {
            self.registry.set_maintenance_due(&device, Vec::new());
        }
    }
}

fn linked_device(record: &EquipmentRecord) -> Option<DeviceId> {
    record
        .fields
        .device_id
        .as_deref()
        .and_then(|id| DeviceId::parse(id).ok())
}

/// Returns midnight UTC of the record's installation date, or its creation time.
fn installed_at(record: &EquipmentRecord) -> Option<i64> {
    install_day_start(record).or(Some(record.created_at))
}

/// Returns midnight UTC of the record's installation date, when it has one.
pub fn install_day_start(record: &EquipmentRecord) -> Option<i64> {
    record
        .fields
        .install_date
        .as_deref()
        .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc().timestamp_millis())
}
