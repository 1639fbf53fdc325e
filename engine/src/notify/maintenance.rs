//! Maintenance windows set through the API, stored in `notification_maintenance`. Windows
//! from the configuration (`notify.maintenance`) apply as well; see `noise.rs`.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::store::Database;

/// One stored maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceRecord {
    pub id: i64,
    pub farm: String,
    /// Engine time of the start, in milliseconds since the Unix epoch.
    pub starts_at: i64,
    /// Engine time of the end, excluded.
    pub ends_at: i64,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
}

/// The `notification_maintenance` table.
#[derive(Clone, Debug)]
pub struct MaintenanceStore {
    database: Database,
}

impl MaintenanceStore {
    /// Wraps the engine's database; the table comes from its migrations.
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Stores a window and returns its id.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn add(
        &self,
        farm: &str,
        starts_at: i64,
        ends_at: i64,
        reason: &str,
        created_by: &str,
        now: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query(
            "INSERT INTO notification_maintenance (farm_id, starts_at, ends_at, reason, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(farm)
        .bind(starts_at)
        .bind(ends_at)
        .bind(reason)
        .bind(created_by)
        .bind(now)
        .fetch_one(self.database.pool())
        .await?
        .try_get("id")
    }

    /// Returns the windows that have not ended at `now`, by start.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn current(&self, now: i64) -> Result<Vec<MaintenanceRecord>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, farm_id, starts_at, ends_at, reason, created_by, created_at FROM notification_maintenance \
             WHERE ends_at > $1 ORDER BY starts_at, id",
        )
        .bind(now)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MaintenanceRecord {
                    id: row.try_get("id")?,
                    farm: row.try_get("farm_id")?,
                    starts_at: row.try_get("starts_at")?,
                    ends_at: row.try_get("ends_at")?,
                    reason: row.try_get("reason")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Deletes a window; returns false when there was none of that id.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn delete(&self, id: i64) -> Result<bool, sqlx::Error> {
        let result = sqlx::query("DELETE FROM notification_maintenance WHERE id = $1")
            .bind(id)
            .execute(self.database.pool())
            .await?;
        Ok(result.rows_affected() > 0)
    }
}

/// Returns true when a stored window of `farm` covers `now`.
///
/// # Errors
///
/// Returns the database error.
pub async fn is_active(
    connection: &mut AnyConnection,
    farm: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id FROM notification_maintenance WHERE farm_id = $1 AND starts_at <= $2 AND ends_at > $2 LIMIT 1",
    )
    .bind(farm)
    .bind(now)
    .fetch_optional(&mut *connection)
    .await?;
    Ok(row.is_some())
}
