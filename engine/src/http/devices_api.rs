//! Devices in the REST API: list, get, register, update, and desired values. Every read
//! and change is limited to the caller's farms.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use valmetal_actors::rules::Alarm;
use valmetal_actors::{DesiredUpdateError, DeviceId};
use valmetal_ws_gateway::ClientAccess;
use valmetal_ws_gateway::protocol::DeviceState;

use super::HttpState;
use super::api::{
    ApiError, ApiPath, ApiQuery, JsonBody, changeable_device, device_not_found,
    has_farm_id_characters, page_limit, parse_device, store_unavailable, visible_device,
};
use crate::auth::Principal;
use crate::auth::error::forbidden;
use crate::store::registration::Registration;

/// Default and maximum number of devices per page.
const DEFAULT_DEVICE_LIMIT: u32 = 1000;
const MAX_DEVICE_LIMIT: u32 = 5000;
/// Longest device name.
const MAX_NAME_CHARS: usize = 128;

#[derive(Serialize)]
struct DeviceBody<'a> {
    #[serde(flatten)]
    state: &'a DeviceState,
    alarms: &'a [Alarm],
}

/// Filters and page of `GET /api/v1/devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceListQuery {
    /// Only devices of this farm.
    farm: Option<String>,
    /// Only devices of this type.
    #[serde(rename = "type")]
    device_type: Option<String>,
    /// `online`, `offline` or `alarm`.
    status: Option<String>,
    /// Only devices whose id contains this text, ignoring case.
    q: Option<String>,
    /// Only devices whose id sorts after this one: the `next` of the previous page.
    after: Option<String>,
    limit: Option<u32>,
}

pub async fn list_devices(
    State(state): State<Arc<HttpState>>,
    Extension(access): Extension<ClientAccess>,
    ApiQuery(query): ApiQuery<DeviceListQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(query.limit, DEFAULT_DEVICE_LIMIT, MAX_DEVICE_LIMIT)? as usize;
    let status = query.status.as_deref().map(parse_status).transpose()?;
    let text = query.q.as_deref().map(str::to_lowercase);
    let states = state.hub.visible_device_states(None, &access);
    let mut matching = states.iter().filter(|device| {
        query
            .after
            .as_deref()
            .is_none_or(|after| device.device.as_str() > after)
            && query
                .farm
                .as_deref()
                .is_none_or(|farm| device.farm.as_deref() == Some(farm))
            && query
                .device_type
                .as_deref()
                .is_none_or(|kind| &*device.device_type == kind)
            && status.is_none_or(|status| status.matches(device))
            && text
                .as_deref()
                .is_none_or(|text| device.device.as_str().to_lowercase().contains(text))
    });
    let page: Vec<DeviceBody> = matching
        .by_ref()
        .take(limit)
        .map(|device| DeviceBody {
            state: device,
            alarms: &device.alarms,
        })
        .collect();
    let next = match matching.next() {
        Some(_) => page.last().map(|body| body.state.device.to_string()),
        None => None,
    };
    Ok(Json(serde_json::json!({ "devices": page, "next": next })).into_response())
}

#[derive(Debug, Clone, Copy)]
enum StatusFilter {
    Online,
    Offline,
    Alarm,
}

impl StatusFilter {
    fn matches(self, device: &DeviceState) -> bool {
        match self {
            Self::Online => device.online,
            Self::Offline => !device.online,
            Self::Alarm => !device.alarms.is_empty(),
        }
    }
}

fn parse_status(status: &str) -> Result<StatusFilter, ApiError> {
    match status {
        "online" => Ok(StatusFilter::Online),
        "offline" => Ok(StatusFilter::Offline),
        "alarm" => Ok(StatusFilter::Alarm),
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("`status` is \"{other}\"; use online, offline or alarm"),
        )),
    }
}

pub async fn get_device(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let device = visible_device(&state, &principal, &id)?;
    let device_state = state
        .hub
        .device_state(&device)
        .ok_or_else(|| device_not_found(&device))?;
    Ok(Json(DeviceBody {
        state: &device_state,
        alarms: &device_state.alarms,
    })
    .into_response())
}

/// Body of `POST /api/v1/devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    id: String,
    /// A readable name; the id when absent.
    name: Option<String>,
    /// The farm; the farm the id patterns give when absent.
    farm: Option<String>,
}

/// Body of `PATCH /api/v1/devices/{id}`. Absent fields stay as they are; `"farm": null`
/// moves the device out of every farm.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    farm: Option<Option<String>>,
}

/// Tells a field given as `null` from an absent one.
fn present<'de, D>(deserializer: D) -> Result<Option<Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer).map(Some)
}

pub async fn register_device(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<Response, ApiError> {
    if !principal.is_admin() {
        return Err(forbidden("register devices"));
    }
    let device = parse_device(&body.id)?;
    let stored = state
        .registrations
        .get(&device)
        .await
        .map_err(|error| store_unavailable("device registry", &error))?;
    if stored.as_ref().is_some_and(|stored| stored.farm_assigned) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "device_exists",
            format!(
                "device `{device}` is registered already; change it with PATCH /api/v1/devices/{device}"
            ),
        ));
    }
    let farm = match body.farm {
        Some(farm) => Some(checked_farm(farm)?),
        None => state.hub.farm_of(&device).map(|farm| farm.to_string()),
    };
    let registration = Registration {
        device_type: state.registry.describe(device.as_str()).0.to_string(),
        name: match (body.name, stored) {
            (None, Some(stored)) => stored.name,
            (name, _) => checked_name(name, &device)?,
        },
        farm_assigned: true,
        farm,
        device_id: device,
    };
    save(&state, &registration).await?;
    Ok((StatusCode::CREATED, Json(registration)).into_response())
}

pub async fn update_device(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Response, ApiError> {
    let device = visible_device(&state, &principal, &id)?;
    if !principal.is_admin() {
        return Err(forbidden("change the device registry"));
    }
    let stored = state
        .registrations
        .get(&device)
        .await
        .map_err(|error| store_unavailable("device registry", &error))?;
    let current_farm = state.hub.farm_of(&device).map(|farm| farm.to_string());
    let farm = match body.farm {
        Some(Some(farm)) => Some(checked_farm(farm)?),
        Some(None) => None,
        None => current_farm,
    };
    let name = match body.name {
        Some(name) => checked_name(Some(name), &device)?,
        None => stored
            .as_ref()
            .map_or_else(|| device.to_string(), |stored| stored.name.clone()),
    };
    let registration = Registration {
        device_type: state.registry.describe(device.as_str()).0.to_string(),
        name,
        farm_assigned: true,
        farm,
        device_id: device,
    };
    save(&state, &registration).await?;
    Ok(Json(registration).into_response())
}

/// Stores a registration, then puts the device in its farm for every reader.
async fn save(state: &HttpState, registration: &Registration) -> Result<(), ApiError> {
    state
        .registrations
        .save(registration)
        .await
        .map_err(|error| store_unavailable("device registry", &error))?;
    let device = &registration.device_id;
    state.hub.assign_farm(device, registration.farm.as_deref());
    state.hub.register(device, &registration.device_type);
    Ok(())
}

fn checked_name(name: Option<String>, device: &DeviceId) -> Result<String, ApiError> {
    let name = name.map_or_else(|| device.to_string(), |name| name.trim().to_owned());
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("`name` must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name)
}

fn checked_farm(farm: String) -> Result<String, ApiError> {
    let valid = !farm.is_empty() && farm.len() <= 64 && has_farm_id_characters(&farm);
    if valid {
        Ok(farm)
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("`farm` \"{farm}\" must be 1 to 64 letters, digits, '-', '_' or '.'"),
        ))
    }
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
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<DesiredBody>,
) -> Result<Response, ApiError> {
    let device = changeable_device(&state, &principal, &id, "change desired values")?;
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
    let change = state
        .registry
        .update_desired(&device, changes)
        .await
        .map_err(|error| desired_error(&device, error))?;
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

fn desired_error(device: &DeviceId, error: DesiredUpdateError) -> ApiError {
    match error {
        DesiredUpdateError::NotFound => device_not_found(device),
        DesiredUpdateError::TooManyKeys(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", error.to_string())
        }
        DesiredUpdateError::Stopped => {
            tracing::error!(device.id = %device, %error, "Device actor did not take a desired change");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "device_unavailable",
                "the device's actor stopped; retry shortly",
            )
        }
    }
}
