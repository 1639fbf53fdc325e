//! Reasons a caller is rejected, and the JSON reply each reason gets.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::api::ApiError;

/// A request that could not be authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "no bearer token; send `Authorization: Bearer TOKEN` (or `access_token=TOKEN` on /ws); the engine prints a sign-in link at start in local mode"
    )]
    Missing,
    #[error("the token expired; sign in again for a fresh one")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error(
        "the token grants no role; give it a `{claim}` claim of admin, operator or farm_viewer, or a Cognito group of one of those names"
    )]
    NoRole { claim: String },
    #[error("the issuer's signing keys could not be loaded ({0}); retry shortly")]
    KeysUnavailable(String),
}

impl AuthError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Missing => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Expired => (StatusCode::UNAUTHORIZED, "token_expired"),
            Self::Invalid(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            Self::NoRole { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Self::KeysUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable"),
        }
    }

    /// Returns the metric label of the reason.
    pub fn label(&self) -> &'static str {
        self.status_and_code().1
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = ApiError::new(status, code, self.to_string()).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match self {
                Self::Missing => "Bearer realm=\"valmetal\"",
                _ => "Bearer realm=\"valmetal\", error=\"invalid_token\"",
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// Returns the reply to a caller whose role may not do what it requested.
pub fn forbidden(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("your role may not {what}; ask an admin for an operator or admin sign-in"),
    )
}
