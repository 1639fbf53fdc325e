//! What every handler of the REST API under `/api/v1/` shares: the JSON error shape, the
//! extractors that reply in it, and the farm checks made with the caller's [`Principal`].

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use valmetal_actors::DeviceId;

use super::HttpState;
use crate::auth::Principal;

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

/// Returns whether `farm` uses only the characters of a farm id: letters, digits, `-`, `_`
/// and `.`.
pub fn has_farm_id_characters(farm: &str) -> bool {
    farm.chars()
        .all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character))
}

/// Largest JSON request body, in bytes.
pub const JSON_BODY_LIMIT: usize = 2 * 1024 * 1024;

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
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "the JSON body is over the limit of {JSON_BODY_LIMIT} bytes; send a smaller body"
                    ),
                ))
            }
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

/// Returns the device if `principal` may see it. A device outside the caller's farms gets
/// the same reply as an unknown one, so its existence is not revealed.
///
/// # Errors
///
/// Returns 400 `invalid_device_id` or 404 `device_not_found`.
pub(super) fn visible_device(
    state: &HttpState,
    principal: &Principal,
    id: &str,
) -> Result<DeviceId, ApiError> {
    let device = parse_device(id)?;
    if principal.can_see(state.hub.farm_of(&device).as_deref()) {
        Ok(device)
    } else {
        Err(device_not_found(&device))
    }
}

/// Returns the device if `principal` may change it.
///
/// # Errors
///
/// Returns 404 `device_not_found` outside the caller's farms and 403 `forbidden` for a
/// viewer inside them.
pub(super) fn changeable_device(
    state: &HttpState,
    principal: &Principal,
    id: &str,
    what: &str,
) -> Result<DeviceId, ApiError> {
    let device = visible_device(state, principal, id)?;
    if principal.can_change(state.hub.farm_of(&device).as_deref()) {
        Ok(device)
    } else {
        Err(crate::auth::error::forbidden(what))
    }
}

/// Returns the 404 reply for a device that has not reported, or that the caller may not see.
pub(super) fn device_not_found(device: &DeviceId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "device_not_found",
        format!("device `{device}` has not reported yet, or is outside your farms"),
    )
}

/// Returns the 503 reply when a store read fails. The cause is logged, not sent.
pub(super) fn store_unavailable(what: &str, error: &sqlx::Error) -> ApiError {
    tracing::error!(%error, "{what} query failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        format!("the {what} could not be read or written; retry shortly"),
    )
}

/// Checks a page size against its bounds.
///
/// # Errors
///
/// Returns 400 `invalid_limit` naming the value and the range.
pub(super) fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            format!("`limit` is {limit}; use 1 to {max}"),
        ))
    }
}
