//! The axum layer in front of `/api/v1/` and `/ws`: it reads the bearer token, verifies
//! it, and hands handlers the [`Principal`] and the gateway a [`ClientAccess`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::debug;
use valmetal_ws_gateway::ClientAccess;

use super::Auth;
use crate::telemetry::AuthRequestRejected;

/// When the caller's token expires, in milliseconds since the Unix epoch; absent with
/// authentication off.
#[derive(Debug, Clone, Copy)]
pub struct TokenExpiry(pub i64);

/// Query parameter that carries the token where a header cannot: on `/ws`, since a
/// browser cannot set headers on a WebSocket. The REST API takes the header only, so
/// tokens stay out of its URLs and logs.
const TOKEN_PARAMETER: &str = "access_token";
/// The one path that takes [`TOKEN_PARAMETER`].
const WEBSOCKET_PATH: &str = "/ws";

/// Authenticates the request, or replies 401, 403 or 503 without running the handler.
pub async fn authenticate(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = bearer_token(&request);
    let caller = match auth.verify(token.as_deref()).await {
        Ok(caller) => caller,
        Err(error) => {
            AuthRequestRejected(error.label()).emit();
            debug!(%error, http.path = request.uri().path(), "Request rejected");
            return error.into_response();
        }
    };
    let access = ClientAccess {
        farms: caller.principal.farms.farms().map(Arc::from),
        expires_at: caller.expires_at,
    };
    let extensions = request.extensions_mut();
    if let Some(expires_at) = caller.expires_at {
        extensions.insert(TokenExpiry(expires_at));
    }
    extensions.insert(access);
    extensions.insert(caller.principal);
    next.run(request).await
}

/// Returns the token of `Authorization: Bearer`, else, on `/ws`, of the `access_token`
/// query parameter.
fn bearer_token(request: &Request) -> Option<String> {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    from_header.or_else(|| {
        if request.uri().path() != WEBSOCKET_PATH {
            return None;
        }
        let query = request.uri().query()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == TOKEN_PARAMETER)
            .map(|(_, token)| token.into_owned())
    })
}
