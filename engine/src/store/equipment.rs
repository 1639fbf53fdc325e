//! The equipment registry and farms in the SQL database. A device is registered the first
//! time the engine receives a frame from it, with the type and farm its id gives, and its farm with it.

use serde::Serialize;
use sqlx::Row;
use valmetal_actors::DeviceId;
use valmetal_actors::clock::now_ms;

use super::database::Database;
use super::database::classify;
use crate::sinks::{BatchOutcome, Sink, SinkError};

/// One registered piece of equipment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Equipment {
    pub device_id: DeviceId,
    pub device_type: String,
    pub farm: Option<String>,
    pub name: String,
}

/// The `equipment` and `farms` tables.
#[derive(Clone)]
pub struct EquipmentStore {
    database: Database,
}

impl EquipmentStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Returns the registered equipment, of one farm if given, by device id.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn list(&self, farm: Option<&str>) -> Result<Vec<Equipment>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT device_id, device_type, farm_id, name FROM equipment \
             WHERE ($1 IS NULL OR farm_id = $1) ORDER BY device_id",
        )
        .bind(farm)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .filter_map(|row| {
                let device: String = row.try_get("device_id").ok()?;
                Some(Ok(Equipment {
                    device_id: DeviceId::parse(&device).ok()?,
                    device_type: row.try_get("device_type").ok()?,
                    farm: row.try_get("farm_id").ok()?,
                    name: row.try_get("name").ok()?,
                }))
            })
            .collect()
    }

    /// Returns the farm ids, in order.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn farms(&self) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query("SELECT farm_id FROM farms ORDER BY farm_id")
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(|row| row.try_get("farm_id")).collect()
    }
}

/// Adds `farm` to the `farms` table inside `transaction`, unless it is there already.
///
/// # Errors
///
/// Returns the database error.
pub(super) async fn add_farm(
    transaction: &mut sqlx::Transaction<'static, sqlx::Any>,
    farm: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO farms (farm_id, name, updated_at) VALUES ($1, $1, $2) ON CONFLICT (farm_id) DO NOTHING",
    )
    .bind(farm)
    .bind(now)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

impl Sink for EquipmentStore {
    type Record = Equipment;
    type Key = DeviceId;

    fn name(&self) -> &'static str {
        "sql_equipment"
    }

    fn record_bytes(&self, record: &Equipment) -> usize {
        record.device_id.as_str().len() + record.device_type.len() + record.name.len() + 32
    }

    fn coalesce_key(&self, record: &Equipment) -> Option<DeviceId> {
        Some(record.device_id.clone())
    }

    async fn write(&self, batch: &mut [Equipment]) -> Result<BatchOutcome, SinkError> {
        let now = now_ms();
        let mut transaction = self.database.begin_write().await?;
        for equipment in batch.iter() {
            if let Some(farm) = &equipment.farm {
                add_farm(&mut transaction, farm, now)
                    .await
                    .map_err(|error| classify(&error))?;
            }
            sqlx::query(
                "INSERT INTO equipment (device_id, device_type, farm_id, name, first_seen, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (device_id) DO UPDATE SET \
                 device_type = excluded.device_type, farm_id = excluded.farm_id, updated_at = excluded.updated_at \
                 WHERE equipment.farm_assigned = 0 AND (equipment.device_type <> excluded.device_type \
                 OR equipment.farm_id IS DISTINCT FROM excluded.farm_id)",
            )
            .bind(equipment.device_id.as_str())
            .bind(&equipment.device_type)
            .bind(equipment.farm.as_deref())
            .bind(&equipment.name)
            .bind(now)
            .execute(&mut **transaction)
            .await
            .map_err(|error| classify(&error))?;
        }
        transaction
            .commit()
            .await
            .map_err(|error| classify(&error))?;
        Ok(BatchOutcome::default())
    }
}
