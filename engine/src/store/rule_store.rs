//! Rule files stored in the database through the API.

use serde::Serialize;
use sqlx::Row;

use super::database::Database;

/// One stored rule file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRuleFile {
    pub device_type: String,
    pub text: String,
    pub version: String,
    /// Engine time of the last change, in milliseconds since the Unix epoch.
    pub updated_at: i64,
    pub updated_by: String,
}

/// The `rule_files` table.
#[derive(Clone)]
pub struct RuleStore {
    database: Database,
}

impl RuleStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Returns every stored file, by device type.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn list(&self) -> Result<Vec<StoredRuleFile>, sqlx::Error> {
        let rows = sqlx::query("SELECT device_type, text, version, updated_at, updated_by FROM rule_files ORDER BY device_type")
            .fetch_all(self.database.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredRuleFile {
                    device_type: row.try_get("device_type")?,
                    text: row.try_get("text")?,
                    version: row.try_get("version")?,
                    updated_at: row.try_get("updated_at")?,
                    updated_by: row.try_get("updated_by")?,
                })
            })
            .collect()
    }

    /// Stores `file`, replacing the file of the same device type.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn put(&self, file: &StoredRuleFile) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO rule_files (device_type, text, version, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (device_type) DO UPDATE SET text = excluded.text, version = excluded.version, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(&file.device_type)
        .bind(&file.text)
        .bind(&file.version)
        .bind(file.updated_at)
        .bind(&file.updated_by)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Removes the stored file of `device_type`; returns false when there was none.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn delete(&self, device_type: &str) -> Result<bool, sqlx::Error> {
        let result = sqlx::query("DELETE FROM rule_files WHERE device_type = $1")
            .bind(device_type)
            .execute(self.database.pool())
            .await?;
        Ok(result.rows_affected() > 0)
    }
}
