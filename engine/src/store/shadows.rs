//! Device documents in the SQL database: the default shadow store, used when DynamoDB is not
//! configured.

use sqlx::Row;
use tracing::warn;
use valmetal_actors::DeviceDocument;
use valmetal_actors::clock::now_ms;

use super::database::{Database, classify};
use crate::sinks::shadows::ShadowStore;
use crate::sinks::{BatchOutcome, Refusal, SinkError};

/// Documents written per transaction at most.
const MAX_BATCH: usize = 500;

/// The `device_shadows` table.
#[derive(Clone)]
pub struct SqlShadowStore {
    database: Database,
}

impl SqlShadowStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

impl ShadowStore for SqlShadowStore {
    fn name(&self) -> &'static str {
        "sql_shadows"
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn put(&self, documents: &[DeviceDocument]) -> Result<BatchOutcome, SinkError> {
        let mut outcome = BatchOutcome::default();
        let now = now_ms();
        let mut transaction = self.database.begin_write().await?;
        for (index, document) in documents.iter().enumerate() {
            let text = match serde_json::to_string(document) {
                Ok(text) => text,
                Err(error) => {
                    outcome.refused.push(Refusal {
                        index,
                        reason: "unserializable",
                        detail: error.to_string(),
                    });
                    continue;
                }
            };
            let version = i64::try_from(document.version).unwrap_or(i64::MAX);
            let result = sqlx::query(
                "INSERT INTO device_shadows (device_id, version, document, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (device_id) DO UPDATE SET version = excluded.version, document = excluded.document, \
                 updated_at = excluded.updated_at WHERE device_shadows.version <= excluded.version",
            )
            .bind(document.device_id.as_str())
            .bind(version)
            .bind(text)
            .bind(now)
            .execute(&mut **transaction)
            .await
            .map_err(|error| classify(&error))?;
            if result.rows_affected() == 0 {
                outcome.superseded.push(index);
            }
        }
        transaction
            .commit()
            .await
            .map_err(|error| classify(&error))?;
        Ok(outcome)
    }

    async fn load_all(&self) -> Result<Vec<DeviceDocument>, SinkError> {
        let rows = sqlx::query("SELECT device_id, document FROM device_shadows ORDER BY device_id")
            .fetch_all(self.database.pool())
            .await
            .map_err(|error| classify(&error))?;
        let mut documents = Vec::with_capacity(rows.len());
        for row in rows {
            let device: String = row.try_get("device_id").map_err(|error| classify(&error))?;
            let text: String = row.try_get("document").map_err(|error| classify(&error))?;
            match serde_json::from_str(&text) {
                Ok(document) => documents.push(document),
                Err(error) => {
                    warn!(device.id = %device, %error, "Stored shadow cannot be read; the device starts empty");
                }
            }
        }
        Ok(documents)
    }
}
