//! Equipment records under `/api/v1/equipment`, scoped to the caller's farms.
//!
//! A record outside the caller's farms returns 404, as if it did not exist. Creating,
//! changing and deleting records takes an admin; others get 403.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::NaiveDate;
use serde::Deserialize;
use valmetal_actors::DeviceId;
use valmetal_actors::clock::now_ms;

use super::HttpState;
use super::api::{ApiError, ApiPath, ApiQuery, JsonBody, has_farm_id_characters};
use crate::auth::Principal;
use crate::equipment::EquipmentService;
use crate::store::equipment_records::{EquipmentRecord, RecordFields};

/// Maximum length of a record's text fields, in characters.
const MAX_TEXT_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EquipmentQuery {
    /// One farm's records only.
    farm: Option<String>,
}

/// `GET /api/v1/equipment`: the records of the caller's farms.
pub async fn list_equipment(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<EquipmentQuery>,
) -> Result<Response, ApiError> {
    let records = state.equipment.records.list().await.map_err(store_failed)?;
    let visible: Vec<EquipmentRecord> = records
        .into_iter()
        .filter(|record| principal.can_see(Some(&record.fields.farm_id)))
        .filter(|record| {
            query
                .farm
                .as_deref()
                .is_none_or(|farm| record.fields.farm_id == farm)
        })
        .collect();
    Ok(Json(serde_json::json!({ "equipment": visible })).into_response())
}

/// `GET /api/v1/equipment/{id}`: one record.
pub async fn get_equipment(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let record = visible_record(&state.equipment, &principal, &id).await?;
    Ok(Json(serde_json::json!({ "equipment": record })).into_response())
}

/// `POST /api/v1/equipment`: creates a record (admin).
pub async fn create_equipment(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    JsonBody(fields): JsonBody<RecordFields>,
) -> Result<Response, ApiError> {
    require_admin(&principal)?;
    let fields = validate(fields)?;
    check_device_farm(&state, &fields)?;
    let now = now_ms();
    let link_counters = state
        .equipment
        .device_counters(fields.device_id.as_deref())
        .await;
    let record = EquipmentRecord {
        equipment_id: new_id("eq"),
        linked_at: fields.device_id.as_ref().map(|_| now),
        fields,
        link_counters,
        created_at: now,
        updated_at: now,
    };
    check_device_free(&state.equipment, &record).await?;
    state
        .equipment
        .records
        .insert(&record)
        .await
        .map_err(store_failed)?;
    tracing::info!(equipment.id = %record.equipment_id, farm = %record.fields.farm_id, by = %principal.name, "Equipment record created");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "equipment": record })),
    )
        .into_response())
}

/// `PUT /api/v1/equipment/{id}`: replaces a record's fields (admin).
pub async fn update_equipment(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    JsonBody(fields): JsonBody<RecordFields>,
) -> Result<Response, ApiError> {
    let existing = visible_record(&state.equipment, &principal, &id).await?;
    require_admin(&principal)?;
    let fields = validate(fields)?;
    let now = now_ms();
    let (link_counters, linked_at) = if fields.device_id == existing.fields.device_id {
        (existing.link_counters.clone(), existing.linked_at)
    } else {
        let counters = state
            .equipment
            .device_counters(fields.device_id.as_deref())
            .await;
        (counters, fields.device_id.as_ref().map(|_| now))
    };
    let record = EquipmentRecord {
        equipment_id: existing.equipment_id.clone(),
        fields,
        link_counters,
        linked_at,
        created_at: existing.created_at,
        updated_at: now,
    };
    check_device_farm(&state, &record.fields)?;
    check_device_free(&state.equipment, &record).await?;
    state
        .equipment
        .records
        .update(&record)
        .await
        .map_err(store_failed)?;
    if record.fields.farm_id != existing.fields.farm_id {
        state
            .equipment
            .documents
            .move_to_farm(&record.equipment_id, &record.fields.farm_id)
            .await
            .map_err(store_failed)?;
    }
    if let Some(old) = &existing.fields.device_id
        && record.fields.device_id.as_ref() != Some(old)
    {
        state.equipment.clear_due(old);
    }
    if let Err(error) = state.equipment.raise_due(&record, now_ms()).await {
        tracing::warn!(%error, equipment.id = %record.equipment_id, "Maintenance check after an update failed; the next interval retries");
    }
    Ok(Json(serde_json::json!({ "equipment": record })).into_response())
}

/// `DELETE /api/v1/equipment/{id}`: deletes a record with its work orders, overrides and
/// documents (admin).
pub async fn delete_equipment(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let record = visible_record(&state.equipment, &principal, &id).await?;
    require_admin(&principal)?;
    let documents = state
        .equipment
        .documents
        .list(&id)
        .await
        .map_err(store_failed)?;
    for document in documents {
        if let Err(error) = state.equipment.files.delete(&document.storage_key).await {
            tracing::warn!(%error, document.id = %document.document_id, "Deleting a document file failed; the file stays in the store");
        }
    }
    state
        .equipment
        .records
        .delete(&id)
        .await
        .map_err(store_failed)?;
    if let Some(device) = &record.fields.device_id {
        state.equipment.clear_due(device);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// === shared checks ===

/// Returns the record `id` when the caller may see it, and 404 otherwise.
pub(super) async fn visible_record(
    service: &EquipmentService,
    principal: &Principal,
    id: &str,
) -> Result<EquipmentRecord, ApiError> {
    let record = service.records.get(id).await.map_err(store_failed)?;
    record
        .filter(|record| principal.can_see(Some(&record.fields.farm_id)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("equipment `{id}` not found"),
            )
        })
}

/// Returns 403 unless the caller may act on records of `farm`.
pub(super) fn require_change(principal: &Principal, farm: &str) -> Result<(), ApiError> {
    if principal.can_change(Some(farm)) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "role `{}` cannot change records of farm `{farm}`",
            principal.role.as_str()
        ),
    ))
}

/// Returns 403 unless the caller is an admin.
pub(super) fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_admin() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "role `{}` cannot change equipment records; ask an admin",
            principal.role.as_str()
        ),
    ))
}

/// Logs a database failure and returns 503.
pub(super) fn store_failed(error: sqlx::Error) -> ApiError {
    tracing::error!(%error, "Equipment store query failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the equipment store could not be read or written; retry shortly",
    )
}

/// Returns a new random id such as `eq_3f9a0c1d2b4e5f60`.
pub(super) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

pub(super) fn invalid_body(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
}

// === validation ===

fn validate(mut fields: RecordFields) -> Result<RecordFields, ApiError> {
    let mut problems = Vec::new();
    for (name, value, required) in [
        ("farm_id", &mut fields.farm_id, true),
        ("equipment_type", &mut fields.equipment_type, true),
        ("name", &mut fields.name, true),
        ("barn", &mut fields.barn, false),
        ("model", &mut fields.model, false),
        ("serial_number", &mut fields.serial_number, false),
        ("firmware_version", &mut fields.firmware_version, false),
        ("location", &mut fields.location, false),
    ] {
        *value = value.trim().to_owned();
        let length = value.chars().count();
        if (required && length == 0) || length > MAX_TEXT_CHARS {
            let range = if required { "1" } else { "0" };
            problems.push(format!(
                "`{name}` has {length} characters after trimming spaces; it must have {range} to {MAX_TEXT_CHARS}"
            ));
        }
        if value.chars().any(char::is_control) {
            problems.push(format!(
                "`{name}` contains a control character such as a line break; use one line of plain text"
            ));
        }
    }
    if !has_farm_id_characters(&fields.farm_id) {
        problems.push(format!(
            "`farm_id` \"{}\" may contain only letters, digits, '-', '_' and '.'",
            fields.farm_id
        ));
    }
    if let Some(date) = fields.install_date.as_deref() {
        problems.extend(install_date_problem(date));
    }
    if let Some(device) = fields.device_id.as_deref()
        && let Err(error) = DeviceId::parse(device)
    {
        problems.push(format!("`device_id` \"{device}\" is invalid: {error}"));
    }
    if problems.is_empty() {
        Ok(fields)
    } else {
        Err(invalid_body(problems.join("; ")))
    }
}

/// Returns what is wrong with an install date: not `YYYY-MM-DD`, or later than today (UTC).
fn install_date_problem(date: &str) -> Option<String> {
    let Ok(parsed) = NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
        return Some(format!(
            "`install_date` \"{date}\" is not a date; write it as YYYY-MM-DD, e.g. 2024-03-18"
        ));
    };
    let today = chrono::Utc::now().date_naive();
    (parsed > today).then(|| {
        format!("`install_date` {date} is in the future; use today ({today}) or an earlier day")
    })
}

/// Returns 400 unless the linked device belongs to the record's farm, so that the record
/// shows no other farm's counters and its alarms land on no other farm's device.
fn check_device_farm(state: &HttpState, fields: &RecordFields) -> Result<(), ApiError> {
    let Some(device) = fields.device_id.as_deref() else {
        return Ok(());
    };
    let device_farm = DeviceId::parse(device)
        .ok()
        .and_then(|id| state.hub.farm_of(&id));
    match device_farm.as_deref() {
        Some(farm) if farm == fields.farm_id => Ok(()),
        Some(farm) => Err(invalid_body(format!(
            "device `{device}` belongs to farm `{farm}`, not `{}`; link a device of farm `{}` or move the device first",
            fields.farm_id, fields.farm_id
        ))),
        None => Err(invalid_body(format!(
            "device `{device}` belongs to no farm; assign it to farm `{}` with PATCH /api/v1/devices/{device} first",
            fields.farm_id
        ))),
    }
}

/// Returns 409 when another record is linked to the record's device.
async fn check_device_free(
    service: &EquipmentService,
    record: &EquipmentRecord,
) -> Result<(), ApiError> {
    let Some(device) = &record.fields.device_id else {
        return Ok(());
    };
    let holder = service
        .records
        .by_device(device)
        .await
        .map_err(store_failed)?;
    match holder {
        Some(other) if other.equipment_id != record.equipment_id => Err(ApiError::new(
            StatusCode::CONFLICT,
            "device_taken",
            format!(
                "device `{device}` is already linked to equipment `{}`; unlink it there first",
                other.equipment_id
            ),
        )),
        _ => Ok(()),
    }
}
