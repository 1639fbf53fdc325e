//! The notification endpoints: delivery status of notifications, and maintenance windows
//! that silence a farm. Without `[notify]` in the configuration, the list is empty with
//! `"configured": false` so that the dashboard can tell. The maintenance endpoints return 501.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use valmetal_actors::clock::now_ms;

use super::HttpState;
use super::api::{ApiError, ApiPath, ApiQuery, JsonBody};
use crate::auth::Principal;
use crate::auth::error::forbidden;
use crate::notify::{MaintenanceStore, OutboxStore, Status};

/// Default and maximum number of notifications per request.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    /// An alarm id: the notifications of that alarm alone.
    alarm: Option<String>,
    /// One status, such as `dead`.
    status: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/notifications`: the newest notifications, of one alarm or status if given.
pub async fn list_notifications(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<NotificationQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        let message = format!("`limit` is {limit}; use 1 to {MAX_LIMIT}");
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            message,
        ));
    }
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            let message = format!(
                "`status` \"{text}\" is unknown; use queued, sent, failed, dead, held, digested, cancelled or suppressed"
            );
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_status", message)
        })?),
    };
    let Some(outbox) = &state.notifications else {
        let body = serde_json::json!({ "configured": false, "notifications": [] });
        return Ok(Json(body).into_response());
    };
    let mut rows = outbox
        .list(query.alarm.as_deref(), status, i64::from(limit))
        .await
        .map_err(unavailable)?;
    rows.retain(|row| alarm_visible(&state, &principal, row.alarm_id.as_deref()));
    let body = serde_json::json!({ "configured": true, "notifications": rows });
    Ok(Json(body).into_response())
}

/// Returns true when the caller may see the notifications of `alarm_id`: those of alarms of
/// devices in their farms. Digests and summaries, which belong to no alarm, are an admin's.
fn alarm_visible(state: &HttpState, principal: &Principal, alarm_id: Option<&str>) -> bool {
    let device = alarm_id
        .and_then(|id| id.split('/').next())
        .and_then(|id| valmetal_actors::DeviceId::parse(id).ok());
    match device {
        Some(device) => principal.can_see(state.hub.farm_of(&device).as_deref()),
        None => principal.is_admin(),
    }
}

/// Returns the notifications of one alarm, newest first, for the alarm endpoint; `None`
/// without `[notify]` or when the outbox cannot be read.
pub async fn of_alarm(state: &HttpState, alarm_id: &str) -> Option<serde_json::Value> {
    let outbox = state.notifications.as_ref()?;
    match outbox
        .list(Some(alarm_id), None, i64::from(DEFAULT_LIMIT))
        .await
    {
        Ok(rows) => Some(serde_json::json!(rows)),
        Err(error) => {
            tracing::warn!(%error, alarm.id = %alarm_id, "Notification outbox query failed");
            None
        }
    }
}

/// Body of a new maintenance window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceBody {
    farm: String,
    /// Start, RFC 3339; default now.
    from: Option<String>,
    /// End, RFC 3339.
    until: Option<String>,
    /// Length from the start, such as `"4h"`, instead of `until`.
    #[serde(rename = "for")]
    duration: Option<String>,
    #[serde(default)]
    reason: String,
    /// Name of the person who sets the window, when authentication is off; a signed-in
    /// caller is recorded by the name in their token.
    by: Option<String>,
}

/// `GET /api/v1/notifications/maintenance`: the stored windows that have not ended.
pub async fn list_maintenance(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let store = MaintenanceStore::new(outbox(&state)?.database().clone());
    let mut windows = store.current(now_ms()).await.map_err(unavailable)?;
    windows.retain(|window| principal.can_see(Some(&window.farm)));
    Ok(Json(serde_json::json!({ "windows": windows })).into_response())
}

/// `POST /api/v1/notifications/maintenance`: stores a window.
pub async fn add_maintenance(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    JsonBody(body): JsonBody<MaintenanceBody>,
) -> Result<Response, ApiError> {
    let store = MaintenanceStore::new(outbox(&state)?.database().clone());
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message);
    let farm = body.farm.trim();
    if !principal.can_change(Some(farm)) {
        return Err(forbidden("set maintenance windows for this farm"));
    }
    let by = match state.auth.is_enabled() {
        true => principal.name.as_str(),
        false => body.by.as_deref().unwrap_or_default().trim(),
    };
    if farm.is_empty() || by.is_empty() || farm.len() > 128 || by.len() > 128 {
        return Err(invalid(
            "`farm` and `by` must each be 1 to 128 characters".to_owned(),
        ));
    }

    let now = now_ms();
    let starts_at = match &body.from {
        Some(text) => parse_time("from", text)?,
        None => now,
    };
    let ends_at = match (&body.until, &body.duration) {
        (Some(text), None) => parse_time("until", text)?,
        (None, Some(text)) => {
            let duration = humantime::parse_duration(text).map_err(|error| {
                invalid(format!(
                    "`for` \"{text}\" is not a duration such as \"4h\" ({error})"
                ))
            })?;
            starts_at + crate::notify::noise::millis(duration)
        }
        _ => {
            return Err(invalid(
                "a window needs exactly one of `until` (RFC 3339) or `for` (e.g. \"4h\")"
                    .to_owned(),
            ));
        }
    };
    if ends_at <= starts_at.max(now) {
        return Err(invalid(
            "the window must end after its start and in the future".to_owned(),
        ));
    }

    let id = store
        .add(farm, starts_at, ends_at, body.reason.trim(), by, now)
        .await
        .map_err(unavailable)?;
    let window = serde_json::json!({
        "id": id, "farm": farm, "starts_at": starts_at, "ends_at": ends_at,
        "reason": body.reason.trim(), "created_by": by, "created_at": now,
    });
    Ok((StatusCode::CREATED, Json(window)).into_response())
}

/// `DELETE /api/v1/notifications/maintenance/{id}`: deletes a stored window.
pub async fn remove_maintenance(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let store = MaintenanceStore::new(outbox(&state)?.database().clone());
    let windows = store.current(now_ms()).await.map_err(unavailable)?;
    let farm = windows
        .iter()
        .find(|window| window.id == id)
        .map(|window| window.farm.clone());
    if let Some(farm) = farm
        .as_deref()
        .filter(|farm| !principal.can_change(Some(farm)))
    {
        return Err(match principal.can_see(Some(farm)) {
            true => forbidden("remove maintenance windows"),
            false => window_not_found(id),
        });
    }
    if farm.is_none() && !principal.is_admin() {
        return Err(window_not_found(id));
    }
    if store.delete(id).await.map_err(unavailable)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(window_not_found(id))
    }
}

fn window_not_found(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "maintenance_not_found",
        format!("no current maintenance window of your farms has id {id}"),
    )
}

fn outbox(state: &HttpState) -> Result<&OutboxStore, ApiError> {
    state.notifications.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "notifications_not_configured",
            "notifications are off; add a [notify] section to the configuration",
        )
    })
}

fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("`{field}` \"{text}\" is not an RFC 3339 time such as 2026-03-18T06:30:00Z ({error})"),
            )
        })
}

fn unavailable(error: sqlx::Error) -> ApiError {
    tracing::error!(%error, "Notification store query failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the notification store could not be read; retry shortly",
    )
}
