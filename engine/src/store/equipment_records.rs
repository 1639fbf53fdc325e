//! Equipment records that farmers and technicians keep: what a machine is, where it is and
//! which device reports for it. Unlike the `equipment` table, which the engine fills from
//! device ids, these rows are written only through the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::database::Database;

/// One piece of equipment on a farm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EquipmentRecord {
    pub equipment_id: String,
    #[serde(flatten)]
    pub fields: RecordFields,
    /// Counter values of the linked device when it was linked. Run-hour and cycle intervals
    /// count from them until a work order recorded after the link, so usage the device
    /// counted for other equipment is not charged to this one.
    pub link_counters: BTreeMap<String, f64>,
    /// Engine time the device was linked, in milliseconds since the Unix epoch; `None`
    /// without a device. Work orders recorded before it counted another device's values.
    pub linked_at: Option<i64>,
    /// Engine time of creation, in milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Engine time of the last change, in milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// The fields a caller sets on a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFields {
    pub farm_id: String,
    #[serde(default)]
    pub barn: String,
    /// Selects the maintenance plan, such as `feed_bin` or `machine`.
    pub equipment_type: String,
    pub name: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub serial_number: String,
    /// Installation date, `YYYY-MM-DD`.
    #[serde(default)]
    pub install_date: Option<String>,
    #[serde(default)]
    pub firmware_version: String,
    #[serde(default)]
    pub location: String,
    /// The device that reports for this equipment; at most one record per device.
    #[serde(default)]
    pub device_id: Option<String>,
}

/// The columns of a record, in the order of [`record_of`] and of the insert's placeholders.
macro_rules! record_columns {
    () => {
        "equipment_id, farm_id, barn, equipment_type, name, model, serial_number, \
         install_date, firmware_version, location, device_id, created_at, updated_at, \
         link_counters, linked_at"
    };
}

/// The `equipment_records` table.
#[derive(Clone)]
pub struct EquipmentRecordStore {
    database: Database,
}

impl EquipmentRecordStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Returns every record, by farm and name.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn list(&self) -> Result<Vec<EquipmentRecord>, sqlx::Error> {
        let query = concat!(
            "SELECT ",
            record_columns!(),
            " FROM equipment_records ORDER BY farm_id, name"
        );
        let rows = sqlx::query(query).fetch_all(self.database.pool()).await?;
        rows.iter().map(record_of).collect()
    }

    /// Returns the record `equipment_id`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn get(&self, equipment_id: &str) -> Result<Option<EquipmentRecord>, sqlx::Error> {
        let query = concat!(
            "SELECT ",
            record_columns!(),
            " FROM equipment_records WHERE equipment_id = $1"
        );
        let row = sqlx::query(query)
            .bind(equipment_id)
            .fetch_optional(self.database.pool())
            .await?;
        row.as_ref().map(record_of).transpose()
    }

    /// Returns the record linked to `device_id`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn by_device(&self, device_id: &str) -> Result<Option<EquipmentRecord>, sqlx::Error> {
        let query = concat!(
            "SELECT ",
            record_columns!(),
            " FROM equipment_records WHERE device_id = $1"
        );
        let row = sqlx::query(query)
            .bind(device_id)
            .fetch_optional(self.database.pool())
            .await?;
        row.as_ref().map(record_of).transpose()
    }

    /// Inserts `record`.
    ///
    /// # Errors
    ///
    /// Returns the database error, a unique violation when the id or device is taken.
    pub async fn insert(&self, record: &EquipmentRecord) -> Result<(), sqlx::Error> {
        let query = concat!(
            "INSERT INTO equipment_records (",
            record_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        );
        let fields = &record.fields;
        sqlx::query(query)
            .bind(&record.equipment_id)
            .bind(&fields.farm_id)
            .bind(&fields.barn)
            .bind(&fields.equipment_type)
            .bind(&fields.name)
            .bind(&fields.model)
            .bind(&fields.serial_number)
            .bind(fields.install_date.as_deref())
            .bind(&fields.firmware_version)
            .bind(&fields.location)
            .bind(fields.device_id.as_deref())
            .bind(record.created_at)
            .bind(record.updated_at)
            .bind(link_counters_text(record))
            .bind(record.linked_at)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Replaces the fields of `record`; returns false when it does not exist.
    ///
    /// # Errors
    ///
    /// Returns the database error, a unique violation when the device is taken.
    pub async fn update(&self, record: &EquipmentRecord) -> Result<bool, sqlx::Error> {
        let fields = &record.fields;
        let result = sqlx::query(
            "UPDATE equipment_records SET farm_id = $2, barn = $3, equipment_type = $4, name = $5, \
             model = $6, serial_number = $7, install_date = $8, firmware_version = $9, \
             location = $10, device_id = $11, updated_at = $12, link_counters = $13, \
             linked_at = $14 WHERE equipment_id = $1",
        )
        .bind(&record.equipment_id)
        .bind(&fields.farm_id)
        .bind(&fields.barn)
        .bind(&fields.equipment_type)
        .bind(&fields.name)
        .bind(&fields.model)
        .bind(&fields.serial_number)
        .bind(fields.install_date.as_deref())
        .bind(&fields.firmware_version)
        .bind(&fields.location)
        .bind(fields.device_id.as_deref())
        .bind(record.updated_at)
        .bind(link_counters_text(record))
        .bind(record.linked_at)
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Deletes the record `equipment_id`; returns false when it did not exist. Its work
    /// orders, overrides and document metadata are deleted with it.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn delete(&self, equipment_id: &str) -> Result<bool, sqlx::Error> {
        let mut transaction = self.database.pool().begin().await?;
        for statement in [
            "DELETE FROM maintenance_overrides WHERE equipment_id = $1",
            "DELETE FROM work_orders WHERE equipment_id = $1",
            "DELETE FROM equipment_documents WHERE equipment_id = $1",
        ] {
            sqlx::query(statement)
                .bind(equipment_id)
                .execute(&mut *transaction)
                .await?;
        }
        let result = sqlx::query("DELETE FROM equipment_records WHERE equipment_id = $1")
            .bind(equipment_id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(result.rows_affected() > 0)
    }
}

fn link_counters_text(record: &EquipmentRecord) -> String {
    serde_json::to_string(&record.link_counters).unwrap_or_else(|_| "{}".to_owned())
}

fn record_of(row: &AnyRow) -> Result<EquipmentRecord, sqlx::Error> {
    let link_counters: String = row.try_get("link_counters")?;
    Ok(EquipmentRecord {
        link_counters: serde_json::from_str(&link_counters).unwrap_or_default(),
        linked_at: row.try_get("linked_at")?,
        equipment_id: row.try_get("equipment_id")?,
        fields: RecordFields {
            farm_id: row.try_get("farm_id")?,
            barn: row.try_get("barn")?,
            equipment_type: row.try_get("equipment_type")?,
            name: row.try_get("name")?,
            model: row.try_get("model")?,
            serial_number: row.try_get("serial_number")?,
            install_date: row.try_get("install_date")?,
            firmware_version: row.try_get("firmware_version")?,
            location: row.try_get("location")?,
            device_id: row.try_get("device_id")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
