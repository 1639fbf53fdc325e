//! Alarms in the REST API: open alarms from the hub, the history with filters and pages,
//! and operators' actions. Every read and action is limited to the caller's farms.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use valmetal_actors::rules::{Alarm, AlarmAction, AlarmCommand, AlarmState, CommandError};
use valmetal_ws_gateway::ClientAccess;

use super::HttpState;
use super::api::{
    ApiError, ApiPath, ApiQuery, JsonBody, changeable_device, page_limit, store_unavailable,
    visible_device,
};
use crate::auth::Principal;
use crate::store::alarm_search::{HistoryEvent, HistoryFilter};

/// Default and maximum number of history events per page.
const DEFAULT_ALARM_LIMIT: u32 = 100;
const MAX_ALARM_LIMIT: u32 = 1000;
/// History rows read per round while filling a page for a caller limited to some farms.
const SCAN_BATCH: u32 = 500;
/// Maximum rows read for one page before replying with what was found and a cursor.
const MAX_SCANNED: usize = 20_000;

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
    rule: Option<String>,
    severity: Option<String>,
    transition: Option<String>,
    /// Recorded at or after, milliseconds since the Unix epoch.
    from: Option<i64>,
    /// Recorded before, milliseconds since the Unix epoch.
    to: Option<i64>,
    /// The `next` of the previous page.
    before: Option<i64>,
    limit: Option<u32>,
}

pub async fn list_alarms(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    Extension(access): Extension<ClientAccess>,
    ApiQuery(query): ApiQuery<AlarmQuery>,
) -> Result<Response, ApiError> {
    let device = query
        .device
        .as_deref()
        .map(|id| visible_device(&state, &principal, id))
        .transpose()?;
    if query.active || query.unacknowledged {
        let devices = device.map(|device| vec![device]);
        let states = state.hub.visible_device_states(devices.as_deref(), &access);
        let alarms: Vec<&Alarm> = states
            .iter()
            .flat_map(|device| device.alarms.iter())
            .filter(|alarm| !query.active || alarm.state == AlarmState::Active)
            .filter(|alarm| !query.unacknowledged || alarm.acknowledged.is_none())
            .filter(|alarm| {
                query
                    .severity
                    .as_deref()
                    .is_none_or(|severity| alarm.severity.as_str() == severity)
            })
            .collect();
        return Ok(Json(serde_json::json!({ "alarms": alarms })).into_response());
    }
    let filter = HistoryFilter {
        device: device.map(|device| device.to_string()),
        alarm: query.alarm,
        rule: query.rule,
        severity: query.severity,
        transition: query.transition,
        from: query.from,
        to: query.to,
        before: query.before,
        limit: page_limit(query.limit, DEFAULT_ALARM_LIMIT, MAX_ALARM_LIMIT)?,
    };
    let (events, next) = history_page(&state, &principal, filter).await?;
    Ok(Json(serde_json::json!({ "events": events, "next": next })).into_response())
}

/// Reads one page of history events the caller may see, and the cursor of the next page.
/// For a caller limited to some farms, rows are read in rounds until the page is full, the
/// history ends, or [`MAX_SCANNED`] rows were read. The cursor then continues the scan.
async fn history_page(
    state: &HttpState,
    principal: &Principal,
    filter: HistoryFilter,
) -> Result<(Vec<HistoryEvent>, Option<i64>), ApiError> {
    let page_size = filter.limit as usize;
    let round = if principal.farms.farms().is_none() {
        filter.limit
    } else {
        SCAN_BATCH
    };
    let mut cursor = filter.before;
    let mut page = Vec::with_capacity(page_size);
    let mut scanned = 0;
    loop {
        let query = HistoryFilter {
            before: cursor,
            limit: round,
            ..filter.clone()
        };
        let rows = state
            .history
            .search(&query)
            .await
            .map_err(|error| store_unavailable("alarm history", &error))?;
        let fetched = rows.len();
        scanned += fetched;
        for event in rows {
            cursor = Some(event.event_id);
            if visible(state, principal, &event) {
                page.push(event);
                if page.len() == page_size {
                    return Ok((page, cursor));
                }
            }
        }
        if fetched < round as usize {
            return Ok((page, None));
        }
        if scanned >= MAX_SCANNED {
            return Ok((page, cursor));
        }
    }
}

fn visible(state: &HttpState, principal: &Principal, event: &HistoryEvent) -> bool {
    match valmetal_actors::DeviceId::parse(&event.record.device) {
        Ok(device) => principal.can_see(state.hub.farm_of(&device).as_deref()),
        Err(_) => principal.is_admin(),
    }
}

/// Body of an operator's request on an alarm.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmActionBody {
    /// Name of the person acting, used when authentication is off. A signed-in caller is
    /// recorded by the name in their token instead.
    by: Option<String>,
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
    Extension(principal): Extension<Principal>,
    ApiPath(path): ApiPath<AlarmPath>,
) -> Result<Response, ApiError> {
    let id = format!("{}/{}/{}", path.device, path.rule, path.raised_at);
    visible_device(&state, &principal, &path.device).map_err(|_| alarm_not_found(&id))?;
    let alarm = state.hub.alarm(&id).ok_or_else(|| alarm_not_found(&id))?;
    let mut body = serde_json::to_value(&alarm).unwrap_or_default();
    if let Some(notifications) = super::notify_api::of_alarm(&state, &id).await {
        body["notifications"] = notifications;
    }
    Ok(Json(body).into_response())
}

pub async fn act_on_alarm(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath((device, rule, raised_at, action)): ApiPath<(String, String, i64, String)>,
    JsonBody(body): JsonBody<AlarmActionBody>,
) -> Result<Response, ApiError> {
    let id = format!("{device}/{rule}/{raised_at}");
    visible_device(&state, &principal, &device).map_err(|_| alarm_not_found(&id))?;
    changeable_device(&state, &principal, &device, "act on alarms")?;
    let by = acting_name(&state, &principal, body.by.as_deref())?;
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

/// Returns the name recorded for an action: the token's, or `by` when authentication is off.
fn acting_name(
    state: &HttpState,
    principal: &Principal,
    by: Option<&str>,
) -> Result<String, ApiError> {
    if state.auth.is_enabled() {
        return Ok(principal.name.clone());
    }
    let by = by.map(str::trim).unwrap_or_default();
    if by.is_empty() || by.len() > 128 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "`by` must name who acts, 1 to 128 characters, when authentication is off",
        ));
    }
    Ok(by.to_owned())
}

fn parse_action(action: &str, body: &AlarmActionBody) -> Result<AlarmAction, ApiError> {
    match action {
        "acknowledge" => Ok(AlarmAction::Acknowledge),
        "clear" => Ok(AlarmAction::Clear),
        "unshelve" => Ok(AlarmAction::Unshelve),
        "shelve" => Ok(AlarmAction::Shelve {
            until: shelving_end(body)?,
        }),
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("unknown alarm action `{other}`; use acknowledge, clear, shelve or unshelve"),
        )),
    }
}

/// Returns the end of a shelving, from `until` (RFC 3339) or `for` (a duration such as `2h`).
fn shelving_end(body: &AlarmActionBody) -> Result<i64, ApiError> {
    let invalid = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message);
    let now = valmetal_actors::clock::now_ms();
    let until = match (&body.until, &body.duration) {
        (Some(until), None) => chrono::DateTime::parse_from_rfc3339(until)
            .map_err(|error| invalid(format!("`until` \"{until}\" is not an RFC 3339 time such as 2026-03-18T06:30:00Z ({error})")))?
            .timestamp_millis(),
        (None, Some(duration)) => {
            let duration = humantime::parse_duration(duration).map_err(|error| {
                invalid(format!(
                    "`for` \"{duration}\" is not a duration such as \"2h\" ({error})"
                ))
            })?;
            now + i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
        }
        _ => {
            return Err(invalid(
                "shelving needs exactly one of `until` (RFC 3339) or `for` (e.g. \"2h\")"
                    .to_owned(),
            ));
        }
    };
    if until <= now {
        return Err(invalid(
            "the shelving end is already past; give a future `until` or a positive `for`"
                .to_owned(),
        ));
    }
    Ok(until)
}

fn alarm_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "alarm_not_found",
        format!("alarm `{id}` is not open or awaiting acknowledgement, or is outside your farms"),
    )
}
