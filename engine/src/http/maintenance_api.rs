//! Maintenance under `/api/v1/equipment/{id}/...` and `/api/v1/maintenance/due`: live due
//! state, per-equipment overrides of plan intervals (admin), and work orders (operators of
//! the farm and admins).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use valmetal_actors::clock::now_ms;

use super::HttpState;
use super::api::{ApiError, ApiPath, ApiQuery, JsonBody};
use super::equipment_api::{
    invalid_body, new_id, require_admin, require_change, store_failed, visible_record,
};
use crate::auth::Principal;
use crate::equipment::config::interval_problem;
use crate::equipment::due::{DueStatus, Measure};
use crate::equipment::install_day_start;
use crate::store::equipment_records::EquipmentRecord;
use crate::store::maintenance::{TaskOverride, WorkOrder};

/// Maximum length of a work order's notes, in characters.
const MAX_NOTES_CHARS: usize = 4000;

/// `GET /api/v1/equipment/{id}/maintenance`: counters, wear trends and each task's state.
pub async fn get_maintenance(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let record = visible_record(&state.equipment, &principal, &id).await?;
    let view = state
        .equipment
        .maintenance_of(&record, now_ms())
        .await
        .map_err(store_failed)?;
    Ok(Json(view).into_response())
}

/// `PUT /api/v1/equipment/{id}/maintenance/{task}`: replaces the task's intervals for this
/// equipment (admin).
pub async fn put_override(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath((id, task)): ApiPath<(String, String)>,
    JsonBody(change): JsonBody<TaskOverride>,
) -> Result<Response, ApiError> {
    let record = visible_record(&state.equipment, &principal, &id).await?;
    require_admin(&principal)?;
    check_task(&state, &record.fields.equipment_type, &task)?;
    let intervals = [
        change.every_days,
        change.every_run_hours,
        change.every_cycles,
    ];
    if intervals.iter().all(Option::is_none) {
        return Err(invalid_body(
            "set at least one of `every_days`, `every_run_hours`, `every_cycles`; DELETE the override to return to the plan's intervals".to_owned(),
        ));
    }
    let problems: Vec<String> = [
        ("every_days", change.every_days),
        ("every_run_hours", change.every_run_hours),
        ("every_cycles", change.every_cycles),
    ]
    .into_iter()
    .filter_map(|(field, every)| every.and_then(|every| interval_problem(field, every)))
    .collect();
    if !problems.is_empty() {
        return Err(invalid_body(problems.join("; ")));
    }
    state
        .equipment
        .maintenance
        .put_override(&id, &task, &change, now_ms())
        .await
        .map_err(store_failed)?;
    recheck(&state, &record).await;
    Ok(Json(serde_json::json!({ "task_id": task, "override": change })).into_response())
}

/// `DELETE /api/v1/equipment/{id}/maintenance/{task}`: returns the task to the plan's
/// intervals (admin).
pub async fn delete_override(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath((id, task)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let record = visible_record(&state.equipment, &principal, &id).await?;
    require_admin(&principal)?;
    let removed = state
        .equipment
        .maintenance
        .delete_override(&id, &task)
        .await
        .map_err(store_failed)?;
    if !removed {
        let message = format!("equipment `{id}` has no override of task `{task}`");
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", message));
    }
    recheck(&state, &record).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/equipment/{id}/work-orders`: the work orders, newest first.
pub async fn list_work_orders(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    visible_record(&state.equipment, &principal, &id).await?;
    let orders = state
        .equipment
        .maintenance
        .work_orders(&id)
        .await
        .map_err(store_failed)?;
    Ok(Json(serde_json::json!({ "work_orders": orders })).into_response())
}

/// Body of a new work order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderBody {
    /// The plan task the work completes; its intervals count from this work order.
    task_id: Option<String>,
    /// The person who did the work; default the caller's name.
    performed_by: Option<String>,
    /// When, RFC 3339; default now.
    performed_at: Option<String>,
    #[serde(default)]
    notes: String,
}

/// `POST /api/v1/equipment/{id}/work-orders`: records work done, with the counters at this
/// moment as the task's new baseline (operators of the farm and admins).
pub async fn create_work_order(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<WorkOrderBody>,
) -> Result<Response, ApiError> {
    let record = visible_record(&state.equipment, &principal, &id).await?;
    require_change(&principal, &record.fields.farm_id)?;
    if let Some(task) = &body.task_id {
        check_task(&state, &record.fields.equipment_type, task)?;
    }
    let now = now_ms();
    let order = WorkOrder {
        work_order_id: new_id("wo"),
        equipment_id: id,
        task_id: body.task_id,
        performed_by: performer(body.performed_by, &principal)?,
        performed_at: performed_at(body.performed_at.as_deref(), now, &record)?,
        notes: notes(body.notes)?,
        counters: state
            .equipment
            .device_counters(record.fields.device_id.as_deref())
            .await,
        created_at: now,
    };
    state
        .equipment
        .maintenance
        .insert_work_order(&order)
        .await
        .map_err(store_failed)?;
    tracing::info!(equipment.id = %order.equipment_id, work_order.id = %order.work_order_id, task = ?order.task_id, by = %principal.name, "Work order recorded");
    recheck(&state, &record).await;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "work_order": order })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DueQuery {
    /// One farm only.
    farm: Option<String>,
}

/// One task that is due soon, due or overdue, in the farm-wide list.
#[derive(Debug, Serialize)]
struct DueEntry {
    equipment_id: String,
    equipment_name: String,
    farm_id: String,
    barn: String,
    task_id: String,
    title: String,
    status: DueStatus,
    driver: Option<Measure>,
    /// The largest share of an interval used.
    fraction: Option<f64>,
}

/// `GET /api/v1/maintenance/due`: every task of the caller's farms that is due soon, due or
/// overdue, most urgent first.
pub async fn list_due(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<DueQuery>,
) -> Result<Response, ApiError> {
    let records = state.equipment.records.list().await.map_err(store_failed)?;
    let now = now_ms();
    let mut entries = Vec::new();
    for record in records.iter().filter(|record| {
        principal.can_see(Some(&record.fields.farm_id))
            && query
                .farm
                .as_deref()
                .is_none_or(|farm| farm == record.fields.farm_id)
    }) {
        let view = state
            .equipment
            .maintenance_of(record, now)
            .await
            .map_err(store_failed)?;
        for task in view
            .tasks
            .into_iter()
            .filter(|task| task.status >= DueStatus::DueSoon)
        {
            let fraction = task
                .intervals
                .iter()
                .filter_map(|interval| interval.fraction)
                .max_by(f64::total_cmp);
            entries.push(DueEntry {
                equipment_id: record.equipment_id.clone(),
                equipment_name: record.fields.name.clone(),
                farm_id: record.fields.farm_id.clone(),
                barn: record.fields.barn.clone(),
                task_id: task.task_id,
                title: task.title,
                status: task.status,
                driver: task.driver,
                fraction,
            });
        }
    }
    entries.sort_by(|a, b| {
        b.status.cmp(&a.status).then(
            b.fraction
                .unwrap_or(0.0)
                .total_cmp(&a.fraction.unwrap_or(0.0)),
        )
    });
    Ok(Json(serde_json::json!({ "due": entries })).into_response())
}

// === helpers ===

fn check_task(state: &HttpState, equipment_type: &str, task: &str) -> Result<(), ApiError> {
    let tasks = state.equipment.config.tasks_of(equipment_type);
    if tasks.iter().any(|known| known.id == task) {
        return Ok(());
    }
    let known: Vec<&str> = tasks.iter().map(|known| known.id.as_str()).collect();
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "task_not_found",
        format!(
            "the plan of `{equipment_type}` has no task `{task}`; its tasks are: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ),
    ))
}

async fn recheck(state: &HttpState, record: &EquipmentRecord) {
    if let Err(error) = state.equipment.raise_due(record, now_ms()).await {
        tracing::warn!(%error, equipment.id = %record.equipment_id, "Maintenance check after a change failed; the next interval retries");
    }
}

fn performer(requested: Option<String>, principal: &Principal) -> Result<String, ApiError> {
    let name = requested.map_or_else(|| principal.name.clone(), |name| name.trim().to_owned());
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid_body(
            "`performed_by` must be 1 to 200 characters".to_owned(),
        ));
    }
    Ok(name)
}

fn performed_at(text: Option<&str>, now: i64, record: &EquipmentRecord) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(now);
    };
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|error| {
            invalid_body(format!(
                "`performed_at` \"{text}\" is not an RFC 3339 time such as 2026-03-18T06:30:00Z ({error})"
            ))
        })?
        .timestamp_millis();
    if at > now + 60_000 {
        return Err(invalid_body(format!(
            "`performed_at` \"{text}\" is in the future; record work once it is done"
        )));
    }
    if let Some(installed) = install_day_start(record)
        && at < installed
    {
        let date = record.fields.install_date.as_deref().unwrap_or_default();
        return Err(invalid_body(format!(
            "`performed_at` \"{text}\" is before the installation date {date}; give the time the work was done, or correct `install_date`"
        )));
    }
    Ok(at)
}

fn notes(text: String) -> Result<String, ApiError> {
    if text.chars().count() > MAX_NOTES_CHARS {
        return Err(invalid_body(format!(
            "`notes` is longer than {MAX_NOTES_CHARS} characters"
        )));
    }
    Ok(text)
}
