//! Per-equipment changes to maintenance plans, and work orders: who did what and when, with
//! the usage counters at that moment, from which the next interval is counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::database::Database;

/// Intervals that replace a plan task's own for one piece of equipment. A field left `None`
/// keeps the plan's interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskOverride {
    #[serde(default)]
    pub every_days: Option<f64>,
    #[serde(default)]
    pub every_run_hours: Option<f64>,
    #[serde(default)]
    pub every_cycles: Option<f64>,
}

/// One piece of work done on a piece of equipment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkOrder {
    pub work_order_id: String,
    pub equipment_id: String,
    /// The plan task the work completes; `None` for work outside the plan.
    pub task_id: Option<String>,
    pub performed_by: String,
    /// When the work was done, in milliseconds since the Unix epoch.
    pub performed_at: i64,
    pub notes: String,
    /// The device's usage counters when the work order was recorded; the task's next
    /// interval counts from these values.
    pub counters: BTreeMap<String, f64>,
    /// Engine time the work order was recorded.
    pub created_at: i64,
}

/// The `maintenance_overrides` and `work_orders` tables.
#[derive(Clone)]
pub struct MaintenanceStore {
    database: Database,
}

impl MaintenanceStore {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Returns the overrides of `equipment_id` by task id.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn overrides(
        &self,
        equipment_id: &str,
    ) -> Result<BTreeMap<String, TaskOverride>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT task_id, every_days, every_run_hours, every_cycles \
             FROM maintenance_overrides WHERE equipment_id = $1",
        )
        .bind(equipment_id)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let task: String = row.try_get("task_id")?;
                let change = TaskOverride {
                    every_days: row.try_get("every_days")?,
                    every_run_hours: row.try_get("every_run_hours")?,
                    every_cycles: row.try_get("every_cycles")?,
                };
                Ok((task, change))
            })
            .collect()
    }

    /// Stores the override of one task, replacing an earlier one.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn put_override(
        &self,
        equipment_id: &str,
        task_id: &str,
        change: &TaskOverride,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO maintenance_overrides \
             (equipment_id, task_id, every_days, every_run_hours, every_cycles, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (equipment_id, task_id) DO UPDATE SET \
             every_days = excluded.every_days, every_run_hours = excluded.every_run_hours, \
             every_cycles = excluded.every_cycles, updated_at = excluded.updated_at",
        )
        .bind(equipment_id)
        .bind(task_id)
        .bind(change.every_days)
        .bind(change.every_run_hours)
        .bind(change.every_cycles)
        .bind(now)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Removes the override of one task; returns false when there was none.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn delete_override(
        &self,
        equipment_id: &str,
        task_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "DELETE FROM maintenance_overrides WHERE equipment_id = $1 AND task_id = $2",
        )
        .bind(equipment_id)
        .bind(task_id)
        .execute(self.database.pool())
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Inserts `order`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn insert_work_order(&self, order: &WorkOrder) -> Result<(), sqlx::Error> {
        let counters = serde_json::to_string(&order.counters).unwrap_or_else(|_| "{}".to_owned());
        sqlx::query(
            "INSERT INTO work_orders (work_order_id, equipment_id, task_id, performed_by, \
             performed_at, notes, counters, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&order.work_order_id)
        .bind(&order.equipment_id)
        .bind(order.task_id.as_deref())
        .bind(&order.performed_by)
        .bind(order.performed_at)
        .bind(&order.notes)
        .bind(counters)
        .bind(order.created_at)
        .execute(self.database.pool())
        .await?;
        Ok(())
    }

    /// Returns the work orders of `equipment_id`, newest first.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn work_orders(&self, equipment_id: &str) -> Result<Vec<WorkOrder>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT work_order_id, equipment_id, task_id, performed_by, performed_at, notes, \
             counters, created_at FROM work_orders WHERE equipment_id = $1 \
             ORDER BY performed_at DESC, created_at DESC",
        )
        .bind(equipment_id)
        .fetch_all(self.database.pool())
        .await?;
        rows.iter().map(work_order_of).collect()
    }

    /// Returns the work order `work_order_id` of `equipment_id`.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn work_order(
        &self,
        equipment_id: &str,
        work_order_id: &str,
    ) -> Result<Option<WorkOrder>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT work_order_id, equipment_id, task_id, performed_by, performed_at, notes, \
             counters, created_at FROM work_orders WHERE equipment_id = $1 AND work_order_id = $2",
        )
        .bind(equipment_id)
        .bind(work_order_id)
        .fetch_optional(self.database.pool())
        .await?;
        row.as_ref().map(work_order_of).transpose()
    }
}

fn work_order_of(row: &AnyRow) -> Result<WorkOrder, sqlx::Error> {
    let counters: String = row.try_get("counters")?;
    Ok(WorkOrder {
        work_order_id: row.try_get("work_order_id")?,
        equipment_id: row.try_get("equipment_id")?,
        task_id: row.try_get("task_id")?,
        performed_by: row.try_get("performed_by")?,
        performed_at: row.try_get("performed_at")?,
        notes: row.try_get("notes")?,
        counters: serde_json::from_str(&counters).unwrap_or_default(),
        created_at: row.try_get("created_at")?,
    })
}
