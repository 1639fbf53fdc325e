//! Who the caller is (`GET /api/v1/me`) and the local issuer's public keys
//! (`GET /api/v1/auth/jwks.json`), which let other services verify the engine's own tokens.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::HttpState;
use super::api::ApiError;
use crate::auth::Principal;
use crate::auth::layer::TokenExpiry;

pub async fn me(
    Extension(principal): Extension<Principal>,
    expiry: Option<Extension<TokenExpiry>>,
) -> Response {
    let farms = principal.farms.farms().map(|farms| {
        farms
            .iter()
            .map(|farm| farm.to_string())
            .collect::<Vec<_>>()
    });
    Json(serde_json::json!({
        "subject": principal.subject,
        "name": principal.name,
        "role": principal.role,
        "farms": farms,
        "expires_at": expiry.map(|Extension(TokenExpiry(at))| at),
    }))
    .into_response()
}

pub async fn jwks(State(state): State<Arc<HttpState>>) -> Result<Response, ApiError> {
    match state.auth.local_issuer() {
        Some(issuer) => Ok(Json(issuer.jwks()).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_local_issuer",
            "the engine signs no tokens of its own unless `auth.mode` is \"local\"",
        )),
    }
}
