//! Devices registered or changed through the API: their name, type and farm in the
//! `equipment` table. A farm given here is marked as assigned and outranks the id patterns
//! of the configuration, at once and after a restart.

use serde::Serialize;
use sqlx::Row;
use valmetal_actors::DeviceId;
use valmetal_actors::clock::now_ms;

use super::database::Database;
use super::equipment::add_farm;

/// A device as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registration {
    pub device_id: DeviceId,
    pub device_type: String,
    pub farm: Option<String>,
    pub name: String,
    /// True when the farm was given through the API rather than by an id pattern.
    pub farm_assigned: bool,
}

/// Reads and writes registrations.
#[derive(Clone)]
pub struct RegistrationStore {
    database: Database,
}

impl RegistrationStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Returns the registration of `device`, if it has one.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn get(&self, device: &DeviceId) -> Result<Option<Registration>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT device_id, device_type, farm_id, name, farm_assigned FROM equipment \
             WHERE device_id = $1",
        )
        .bind(device.as_str())
        .fetch_optional(self.database.pool())
        .await?;
        Ok(row.as_ref().and_then(registration_of))
    }

    /// Returns the devices whose farm was assigned through the API.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn assigned(&self) -> Result<Vec<Registration>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT device_id, device_type, farm_id, name, farm_assigned FROM equipment \
             WHERE farm_assigned = 1 ORDER BY device_id",
        )
        .fetch_all(self.database.pool())
        .await?;
        Ok(rows.iter().filter_map(registration_of).collect())
    }

    /// Inserts or replaces the registration of a device, and its farm in `farms`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn save(&self, registration: &Registration) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let mut transaction = self.database.pool().begin().await?;
        if let Some(farm) = &registration.farm {
            add_farm(&mut transaction, farm, now).await?;
        }
        sqlx::query(
            "INSERT INTO equipment (device_id, device_type, farm_id, name, first_seen, updated_at, farm_assigned) \
             VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT (device_id) DO UPDATE SET \
             device_type = excluded.device_type, farm_id = excluded.farm_id, name = excluded.name, \
             farm_assigned = excluded.farm_assigned, updated_at = excluded.updated_at",
        )
        .bind(registration.device_id.as_str())
        .bind(&registration.device_type)
        .bind(registration.farm.as_deref())
        .bind(&registration.name)
        .bind(now)
        .bind(i64::from(registration.farm_assigned))
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await
    }
}

fn registration_of(row: &sqlx::any::AnyRow) -> Option<Registration> {
    let device: String = row.try_get("device_id").ok()?;
    let assigned: i64 = row.try_get("farm_assigned").ok()?;
    Some(Registration {
        device_id: DeviceId::parse(&device).ok()?,
        device_type: row.try_get("device_type").ok()?,
        farm: row.try_get("farm_id").ok()?,
        name: row.try_get("name").ok()?,
        farm_assigned: assigned != 0,
    })
}
