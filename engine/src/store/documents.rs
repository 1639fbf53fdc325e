//! Metadata of equipment documents: manuals, service reports and photos. The files themselves
//! are in the document store (local disk or S3).

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::database::Database;

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Manual,
    ServiceReport,
    Photo,
    Other,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::ServiceReport => "service_report",
            Self::Photo => "photo",
            Self::Other => "other",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "manual" => Self::Manual,
            "service_report" => Self::ServiceReport,
            "photo" => Self::Photo,
            _ => Self::Other,
        }
    }
}

/// Whether the file has arrived in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// An upload URL was handed out; the file may not be there yet.
    Pending,
    /// The file was found in the store with the announced size.
    Stored,
}

/// One document's metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentRecord {
    pub document_id: String,
    pub equipment_id: String,
    pub farm_id: String,
    /// The work order the document belongs to, such as its service report.
    pub work_order_id: Option<String>,
    pub title: String,
    pub kind: DocumentKind,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// The file's key in the document store; not shown to callers.
    #[serde(skip)]
    pub storage_key: String,
    pub status: DocumentStatus,
    pub uploaded_by: String,
    /// Engine time of the upload request, in milliseconds since the Unix epoch.
    pub uploaded_at: i64,
}

/// The columns of a document, in the order of [`document_of`] and of the insert's placeholders.
macro_rules! document_columns {
    () => {
        "document_id, equipment_id, farm_id, work_order_id, title, kind, file_name, \
         content_type, size_bytes, storage_key, status, uploaded_by, uploaded_at"
    };
}

/// The `equipment_documents` table.
#[derive(Clone)]
pub struct DocumentStore {
    database: Database,
}

impl DocumentStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Inserts `document`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn insert(&self, document: &DocumentRecord) -> Result<(), sqlx::Error> {
        let query = concat!(
            "INSERT INTO equipment_documents (",
            document_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        sqlx::query(query)
            .bind(&document.document_id)
            .bind(&document.equipment_id)
            .bind(&document.farm_id)
            .bind(document.work_order_id.as_deref())
            .bind(&document.title)
            .bind(document.kind.as_str())
            .bind(&document.file_name)
            .bind(&document.content_type)
            .bind(document.size_bytes)
            .bind(&document.storage_key)
            .bind(status_text(document.status))
            .bind(&document.uploaded_by)
            .bind(document.uploaded_at)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Returns the documents of `equipment_id`, newest first.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn list(&self, equipment_id: &str) -> Result<Vec<DocumentRecord>, sqlx::Error> {
        let query = concat!(
            "SELECT ",
            document_columns!(),
            " FROM equipment_documents WHERE equipment_id = $1 ORDER BY uploaded_at DESC"
        );
        let rows = sqlx::query(query)
            .bind(equipment_id)
            .fetch_all(self.database.pool())
            .await?;
        rows.iter().map(document_of).collect()
    }

    /// Returns the document `document_id`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn get(&self, document_id: &str) -> Result<Option<DocumentRecord>, sqlx::Error> {
        let query = concat!(
            "SELECT ",
            document_columns!(),
            " FROM equipment_documents WHERE document_id = $1"
        );
        let row = sqlx::query(query)
            .bind(document_id)
            .fetch_optional(self.database.pool())
            .await?;
        row.as_ref().map(document_of).transpose()
    }

    /// Marks `document_id` as stored with its actual size.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn mark_stored(&self, document_id: &str, size_bytes: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE equipment_documents SET status = 'stored', size_bytes = $2 WHERE document_id = $1",
        )
        .bind(document_id)
        .bind(size_bytes)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Files the documents of `equipment_id` under `farm_id`, after the record moved there.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn move_to_farm(&self, equipment_id: &str, farm_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE equipment_documents SET farm_id = $2 WHERE equipment_id = $1")
            .bind(equipment_id)
            .bind(farm_id)
            .execute(self.database.pool())
            .await?;
        Ok(())
    }

    /// Deletes the metadata of `document_id`; returns false when there was none.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn delete(&self, document_id: &str) -> Result<bool, sqlx::Error> {
        let result = sqlx::query("DELETE FROM equipment_documents WHERE document_id = $1")
            .bind(document_id)
            .execute(self.database.pool())
            .await?;
        Ok(result.rows_affected() > 0)
    }
}

fn status_text(status: DocumentStatus) -> &'static str {
    match status {
        DocumentStatus::Pending => "pending",
        DocumentStatus::Stored => "stored",
    }
}

fn document_of(row: &AnyRow) -> Result<DocumentRecord, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    Ok(DocumentRecord {
        document_id: row.try_get("document_id")?,
        equipment_id: row.try_get("equipment_id")?,
        farm_id: row.try_get("farm_id")?,
        work_order_id: row.try_get("work_order_id")?,
        title: row.try_get("title")?,
        kind: DocumentKind::parse(&kind),
        file_name: row.try_get("file_name")?,
        content_type: row.try_get("content_type")?,
        size_bytes: row.try_get("size_bytes")?,
        storage_key: row.try_get("storage_key")?,
        status: if status == "stored" {
            DocumentStatus::Stored
        } else {
            DocumentStatus::Pending
        },
        uploaded_by: row.try_get("uploaded_by")?,
        uploaded_at: row.try_get("uploaded_at")?,
    })
}
