//! The OpenAPI 3.1 document of the REST API, served at `GET /api/v1/openapi.json`. It is
//! kept beside the routes in `openapi.json`; a test checks that every path and method it
//! lists is routed.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The document, as shipped in the binary.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}
