//! The rules API under `/api/v1/rules`: list the rule sets in force, validate a rule file,
//! and store or remove a device type's rule file in the database, applied at once.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use valmetal_actors::rules::{RuleFileError, rule_file};

use super::HttpState;
use super::api::{ApiError, ApiQuery, JsonBody};
use crate::auth::Principal;
use crate::auth::error::forbidden;
use crate::rule_sources::{StoreRuleError, summarize};

/// Body of a rule file upload or validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFileBody {
    /// The rule file, as TOML text.
    text: String,
    /// Name of the operator storing it; required to store, ignored by validation.
    by: Option<String>,
}

/// Query of a removal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    by: Option<String>,
}

pub async fn list_rules(State(state): State<Arc<HttpState>>) -> Response {
    Json(serde_json::json!({ "rule_sets": state.rules.summaries() })).into_response()
}

pub async fn validate_rules(JsonBody(body): JsonBody<RuleFileBody>) -> Result<Response, ApiError> {
    let reply = match rule_file::parse(&body.text, "uploaded rule file") {
        Ok(set) => serde_json::json!({
            "valid": true,
            "device_type": &*set.device_type,
            "version": &*set.version,
            "rules": summarize(&set),
        }),
        Err(error) => serde_json::json!({ "valid": false, "problems": problems_of(&error) }),
    };
    Ok(Json(reply).into_response())
}

pub async fn store_rules(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    Path(device_type): Path<String>,
    JsonBody(body): JsonBody<RuleFileBody>,
) -> Result<Response, ApiError> {
    let by = operator(
        &state,
        &principal,
        body.by.as_deref(),
        "invalid_body",
        "`by` must name who stores the file",
    )?;
    match state.rules.store(&device_type, &body.text, &by).await {
        Ok(set) => Ok(Json(serde_json::json!({
            "device_type": &*set.device_type,
            "version": &*set.version,
            "rules": summarize(&set),
        }))
        .into_response()),
        Err(StoreRuleError::Database(error)) => {
            tracing::error!(%error, device.r#type = %device_type, "Storing a rule file failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the rule store failed; retry shortly",
            ))
        }
        Err(error) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_rules",
            error.to_string(),
        )),
    }
}

pub async fn remove_rules(
    State(state): State<Arc<HttpState>>,
    Extension(principal): Extension<Principal>,
    Path(device_type): Path<String>,
    ApiQuery(query): ApiQuery<RemoveQuery>,
) -> Result<Response, ApiError> {
    let by = operator(
        &state,
        &principal,
        query.by.as_deref(),
        "invalid_query",
        "`by` must name who removes the file, as ?by=NAME",
    )?;
    let removed = state.rules.remove(&device_type).await.map_err(|error| {
        tracing::error!(%error, device.r#type = %device_type, "Removing a rule file failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the rule store failed; retry shortly",
        )
    })?;
    if !removed {
        let message = format!(
            "no stored rule file for `{device_type}`; only files stored through the API can be removed"
        );
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "rules_not_found",
            message,
        ));
    }
    tracing::info!(device.r#type = %device_type, operator = %by, "Stored rule file removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Returns who changes the rules: an admin's name from their token, or `by` (trimmed) when
/// authentication is off, where an empty one is a 400 with `code` and `message`.
fn operator(
    state: &HttpState,
    principal: &Principal,
    by: Option<&str>,
    code: &'static str,
    message: &str,
) -> Result<String, ApiError> {
    if !principal.is_admin() {
        return Err(forbidden("change rule files"));
    }
    if state.auth.is_enabled() {
        return Ok(principal.name.clone());
    }
    by.map(str::trim)
        .filter(|by| !by.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, code, message))
}

fn problems_of(error: &RuleFileError) -> Vec<String> {
    match error {
        RuleFileError::Invalid { problems, .. } => problems.clone(),
        other => vec![other.to_string()],
    }
}
