//! The REST API under `/api/v1/`: devices and alarms, read from the hub and the alarm history.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use valmetal_actors::DeviceId;
use valmetal_actors::rules::Alarm;
use valmetal_ws_gateway::protocol::DeviceState;

use super::HttpState;

/// Default and maximum number of alarm history rows per request.
const DEFAULT_ALARM_LIMIT: u32 = 100;
const MAX_ALARM_LIMIT: u32 = 1000;

/// A JSON error body: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self }))).into_response()
    }
}

#[derive(Serialize)]
struct DeviceBody<'a> {
    #[serde(flatten)]
    state: &'a DeviceState,
    alarms: &'a [Alarm],
}

pub async fn list_devices(State(state): State<Arc<HttpState>>) -> Response {
    let devices = state.hub.device_states(None);
    let bodies: Vec<_> = devices
        .iter()
        .map(|device| DeviceBody {
            state: device,
            alarms: &device.alarms,
        })
        .collect();
    Json(serde_json::json!({ "devices": bodies })).into_response()
}

pub async fn get_device(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let device = DeviceId::parse(&id).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_device_id",
            error.to_string(),
        )
    })?;
    let device_state = state.hub.device_state(&device).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "device_not_found",
            format!("device `{device}` has not reported yet"),
        )
    })?;
    Ok(Json(DeviceBody {
        state: &device_state,
        alarms: &device_state.alarms,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmQuery {
    /// `true`: the alarms active now; otherwise the history of transitions, newest first.
    #[serde(default)]
    active: bool,
    device: Option<String>,
    limit: Option<u32>,
}

pub async fn list_alarms(
    State(state): State<Arc<HttpState>>,
    Query(query): Query<AlarmQuery>,
) -> Result<Response, ApiError> {
    let device = query
        .device
        .as_deref()
        .map(DeviceId::parse)
        .transpose()
        .map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_device_id",
                error.to_string(),
            )
        })?;
    if query.active {
        let devices = device.map(|device| vec![device]);
        let states = state.hub.device_states(devices.as_deref());
        let alarms: Vec<&Alarm> = states
            .iter()
            .flat_map(|device| device.alarms.iter())
            .collect();
        return Ok(Json(serde_json::json!({ "alarms": alarms })).into_response());
    }
    let limit = query.limit.unwrap_or(DEFAULT_ALARM_LIMIT);
    if !(1..=MAX_ALARM_LIMIT).contains(&limit) {
        let message = format!("`limit` is {limit}; use 1 to {MAX_ALARM_LIMIT}");
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            message,
        ));
    }
    let records = state
        .history
        .recent(limit, device.as_ref().map(DeviceId::as_str))
        .await
        .map_err(|error| {
            tracing::error!(%error, "Alarm history query failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the alarm history could not be read; retry shortly",
            )
        })?;
    Ok(Json(serde_json::json!({ "events": records })).into_response())
}
