//! Telemetry history for the dashboard's charts: `GET /api/v1/devices/{id}/telemetry`, read
//! from the SQL time-series store and reduced on the server to the number of points a chart
//! can show.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tracing::error;

use super::HttpState;
use super::api::{ApiError, ApiPath, ApiQuery, visible_device};
use crate::auth::Principal;
use crate::store::telemetry::HistoryPoint;

/// Default window: the day before the device's newest frame.
const DEFAULT_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Maximum window of one request.
const MAX_WINDOW_MS: i64 = 31 * 24 * 3600 * 1000;
const DEFAULT_POINTS: u32 = 600;
const MAX_POINTS: u32 = 5000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// One key; unset: every numeric key.
    key: Option<String>,
    /// Start of the window, device time in milliseconds since the Unix epoch.
    from: Option<i64>,
    /// End of the window (exclusive); default just after the device's newest frame.
    to: Option<i64>,
    /// Points per key at most; each is one time bucket's average, minimum and maximum.
    points: Option<u32>,
}

#[derive(Debug, Serialize)]
struct HistoryBody {
    device: String,
    from: i64,
    to: i64,
    bucket_ms: i64,
    /// Points by key, oldest first.
    series: BTreeMap<String, Vec<HistoryPoint>>,
}

pub async fn device_history(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    let device = visible_device(&state, &principal, &id)?;
    let Some(telemetry) = &state.telemetry else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "history_not_stored",
            "telemetry history is kept only by the SQL store; add \"sql\" to storage.timeseries",
        ));
    };
    let newest = state
        .hub
        .device_state(&device)
        .and_then(|device_state| device_state.last_frame_ts);
    let to = query
        .to
        .or(newest.map(|ts| ts + 1))
        .unwrap_or_else(valmetal_actors::clock::now_ms);
    let from = query.from.unwrap_or(to.saturating_sub(DEFAULT_WINDOW_MS));
    if from >= to || to.saturating_sub(from) > MAX_WINDOW_MS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_window",
            format!(
                "window from {from} to {to} is empty or longer than 31 days; give `from` below `to`, in milliseconds since the Unix epoch"
            ),
        ));
    }
    let points = query.points.unwrap_or(DEFAULT_POINTS);
    if points == 0 || points > MAX_POINTS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_points",
            format!("`points` is {points}; give 1 to {MAX_POINTS}"),
        ));
    }
    let bucket_ms = ((to - from) / i64::from(points)).max(1);
    let rows = telemetry
        .history(device.as_str(), query.key.as_deref(), from..to, bucket_ms)
        .await
        .map_err(|source| {
            error!(%source, device.id = %device, "Telemetry history query failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the telemetry store did not answer; try again shortly",
            )
        })?;
    let mut series: BTreeMap<String, Vec<HistoryPoint>> = BTreeMap::new();
    for (key, point) in rows {
        series.entry(key).or_default().push(point);
    }
    Ok(Json(HistoryBody {
        device: device.to_string(),
        from,
        to,
        bucket_ms,
        series,
    })
    .into_response())
}
