//! The REST API under `/api/v1/`: devices and alarms, read from the hub and the alarm history.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use valmetal_actors::rules::{Alarm, AlarmAction, AlarmCommand, AlarmState, CommandError};
use valmetal_actors::{DesiredUpdateError, DeviceId};
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

/// A JSON request body whose rejection (missing, malformed, wrong content type, unknown field)
/// gets an [`ApiError`] reply in the API's JSON shape instead of plain text.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!(
                    "{}; send a JSON body as the API documents it",
                    rejection.body_text()
                ),
            )),
        }
    }
}

/// A query string whose rejection gets an [`ApiError`] reply in the API's JSON shape.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    Query<T>:
        axum::extract::FromRequestParts<S, Rejection = axum::extract::rejection::QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                rejection.body_text(),
            )),
        }
    }
}

/// Path parameters whose rejection gets an [`ApiError`] reply in the API's JSON shape.
pub struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    Path<T>:
        axum::extract::FromRequestParts<S, Rejection = axum::extract::rejection::PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                rejection.body_text(),
            )),
        }
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
    let device = parse_device(&id)?;
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
    /// `true`: the alarms active now.
    #[serde(default)]
    active: bool,
    /// `true`: the alarms no operator has acknowledged, active or cleared.
    #[serde(default)]
    unacknowledged: bool,
    device: Option<String>,
    /// An alarm id: the history of that alarm alone.
    alarm: Option<String>,
    limit: Option<u32>,
}

pub async fn list_alarms(
    State(state): State<Arc<HttpState>>,
    ApiQuery(query): ApiQuery<AlarmQuery>,
) -> Result<Response, ApiError> {
    let device = query.device.as_deref().map(parse_device).transpose()?;
    if query.active || query.unacknowledged {
        let devices = device.map(|device| vec![device]);
        let states = state.hub.device_states(devices.as_deref());
        let alarms: Vec<&Alarm> = states
            .iter()
            .flat_map(|device| device.alarms.iter())
            .filter(|alarm| !query.active || alarm.state == AlarmState::Active)
            .filter(|alarm| !query.unacknowledged || alarm.acknowledged.is_none())
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
        .recent(
            limit,
            device.as_ref().map(DeviceId::as_str),
            query.alarm.as_deref(),
        )
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

/// Body of an operator's request on an alarm.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmActionBody {
    /// Name of the operator acting; recorded in the alarm.
    by: String,
    /// For `shelve`: until when, RFC 3339.
    until: Option<String>,
    /// For `shelve`: for how long, e.g. `"2h"`, instead of `until`.
    #[serde(rename = "for")]
    duration: Option<String>,
}

/// Path of one alarm: its id is `{device}/{rule}/{raised_at}`.
#[derive(Debug, Deserialize)]
pub struct AlarmPath {
    device: String,
    rule: String,
    raised_at: i64,
}

pub async fn get_alarm(
    State(state): State<Arc<HttpState>>,
    ApiPath(path): ApiPath<AlarmPath>,
) -> Result<Response, ApiError> {
    let id = format!("{}/{}/{}", path.device, path.rule, path.raised_at);
    let alarm = state.hub.alarm(&id).ok_or_else(|| alarm_not_found(&id))?;
    let mut body = serde_json::to_value(&alarm).unwrap_or_default();
    if let Some(notifications) = super::notify_api::of_alarm(&state, &id).await {
        body["notifications"] = notifications;
    }
    Ok(Json(body).into_response())
}

pub async fn act_on_alarm(
    State(state): State<Arc<HttpState>>,
    ApiPath((device, rule, raised_at, action)): ApiPath<(String, String, i64, String)>,
    JsonBody(body): JsonBody<AlarmActionBody>,
) -> Result<Response, ApiError> {
    let id = format!("{device}/{rule}/{raised_at}");
    let by = body.by.trim();
    if by.is_empty() || by.len() > 128 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "`by` must name who acts, 1 to 128 characters",
        ));
    }
    let action = parse_action(&action, &body)?;
    let command = AlarmCommand {
        alarm_id: id.clone(),
        action,
        by: Arc::from(by),
    };
    match state.registry.command_alarm(command).await {
        Ok(event) => Ok(Json(event).into_response()),
        Err(CommandError::NotFound(_)) => Err(alarm_not_found(&id)),
        Err(error @ CommandError::Conflict { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "alarm_state_conflict",
            error.to_string(),
        )),
    }
}

fn parse_action(action: &str, body: &AlarmActionBody) -> Result<AlarmAction, ApiError> {
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message);
    match action {
        "acknowledge" => Ok(AlarmAction::Acknowledge),
        "clear" => Ok(AlarmAction::Clear),
        "unshelve" => Ok(AlarmAction::Unshelve),
        "shelve" => {
            let until =
                match (&body.until, &body.duration) {
                    (Some(until), None) => chrono::DateTime::parse_from_rfc3339(until)
                        .map_err(|error| {
                            invalid(format!("`until` \"{until}\" is not RFC 3339 ({error})"))
                        })?
                        .timestamp_millis(),
                    (None, Some(duration)) => {
                        let duration = humantime::parse_duration(duration).map_err(|error| {
                            invalid(format!(
                                "`for` \"{duration}\" is not a duration such as \"2h\" ({error})"
                            ))
                        })?;
                        valmetal_actors::clock::now_ms()
                            + i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
                    }
                    _ => return Err(invalid(
                        "shelving needs exactly one of `until` (RFC 3339) or `for` (e.g. \"2h\")"
                            .to_owned(),
                    )),
                };
            if until <= valmetal_actors::clock::now_ms() {
                return Err(invalid(
                    "the shelving end is already past; give a future `until` or a positive `for`"
                        .to_owned(),
                ));
            }
            Ok(AlarmAction::Shelve { until })
        }
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("unknown alarm action `{other}`; use acknowledge, clear, shelve or unshelve"),
        )),
    }
}

/// Parses a device id from a path or query, as a 400 `invalid_device_id` when it is invalid.
pub(super) fn parse_device(id: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(id).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_device_id",
            error.to_string(),
        )
    })
}

fn alarm_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "alarm_not_found",
        format!("alarm `{id}` is not open or awaiting acknowledgement"),
    )
}

/// Body of a change of desired values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredBody {
    /// New desired values by key; `null` removes a key's desired value.
    desired: serde_json::Map<String, serde_json::Value>,
}

pub async fn update_desired(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DesiredBody>,
) -> Result<Response, ApiError> {
    let device = parse_device(&id)?;
    if body.desired.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "`desired` is empty; name at least one key",
        ));
    }
    let mut changes = Vec::with_capacity(body.desired.len());
    for (key, value) in body.desired {
        let value =
            match value {
                serde_json::Value::Null => None,
                other => Some(crate::ingest::payload::decode_value(&key, other).map_err(
                    |reason| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", reason),
                )?),
            };
        changes.push((Arc::<str>::from(key), value));
    }
    let change = match state.registry.update_desired(&device, changes).await {
        Ok(change) => change,
        Err(DesiredUpdateError::NotFound) => {
            let message = format!("device `{device}` has not reported yet");
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "device_not_found",
                message,
            ));
        }
        Err(error @ DesiredUpdateError::TooManyKeys(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                error.to_string(),
            ));
        }
        Err(error @ DesiredUpdateError::Stopped) => {
            tracing::error!(device.id = %device, %error, "Device actor did not take a desired change");
            let message = "the device's actor stopped; retry shortly";
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "device_unavailable",
                message,
            ));
        }
    };
    let desired: serde_json::Map<String, serde_json::Value> = change
        .desired
        .iter()
        .map(|(key, value)| (key.to_string(), serde_json::json!(value)))
        .collect();
    let delta: serde_json::Map<String, serde_json::Value> = change
        .delta
        .iter()
        .map(|(key, value)| (key.to_string(), serde_json::json!(value)))
        .collect();
    Ok(
        Json(serde_json::json!({ "version": change.version, "desired": desired, "delta": delta }))
            .into_response(),
    )
}
