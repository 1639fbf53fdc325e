//! The engine's HTTP port: dashboard, WebSocket (`/ws`), REST API (`/api/v1/`), Prometheus
//! metrics (`/metrics`), and health (`/healthz`, `/readyz`).

pub mod alarms_api;
pub mod api;
pub mod assets;
pub mod devices_api;
pub mod notify_api;
pub mod openapi;
pub mod rules_api;
pub mod session_api;
pub mod telemetry_api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use valmetal_ws_gateway::Hub;

use crate::auth::Auth;
use crate::auth::layer::authenticate;
use crate::store::AlarmHistory;
use crate::store::registration::RegistrationStore;

/// Shared state of the handlers.
pub struct HttpState {
    /// How callers are checked; the layer in front of the API and `/ws` uses it.
    pub auth: Arc<Auth>,
    /// Devices registered or changed through the API.
    pub registrations: RegistrationStore,
    pub hub: Arc<Hub>,
    pub registry: Arc<valmetal_actors::DeviceRegistry>,
    pub rules: Arc<crate::rule_sources::RuleSources>,
    pub history: AlarmHistory,
    /// Telemetry history for charts, when the SQL time-series store is configured.
    pub telemetry: Option<crate::store::telemetry::SqlTelemetry>,
    pub metrics: PrometheusHandle,
    pub broker_connected: Arc<AtomicBool>,
    /// The notification outbox, when `[notify]` is configured.
    pub notifications: Option<crate::notify::OutboxStore>,
}

/// Errors binding the HTTP port.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "HTTP address {addr} is already in use; choose another with --http-addr (e.g. 127.0.0.1:8081) or `http.addr`"
    )]
    AddressInUse { addr: SocketAddr },
    #[error(
        "cannot listen for HTTP on {addr}: {source}; choose another address with --http-addr or `http.addr`"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds the HTTP listener.
///
/// # Errors
///
/// Returns [`HttpError`] naming the address and the flag that changes it.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => HttpError::AddressInUse { addr },
            _ => HttpError::Bind { addr, source },
        })
}

/// Builds every route of the HTTP port. The API and `/ws` sit behind the authentication
/// layer; the dashboard's files, the OpenAPI document, the local issuer's keys, metrics and
/// health checks do not.
pub fn router(state: Arc<HttpState>) -> Router {
    let protected = api_routes()
        .with_state(Arc::clone(&state))
        .merge(valmetal_ws_gateway::router(Arc::clone(&state.hub)))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.auth),
            authenticate,
        ));
    let mut public = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/auth/jwks.json", get(session_api::jwks));
    for asset in &assets::ASSETS {
        public = public.route(
            asset.path,
            get(move || async move { assets::respond(asset) }),
        );
    }
    public
        .fallback(not_found)
        .with_state(state)
        .merge(protected)
}

/// The routes of `/api/v1/` that need a signed-in caller.
fn api_routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/api/v1/me", get(session_api::me))
        .route(
            "/api/v1/devices",
            get(devices_api::list_devices).post(devices_api::register_device),
        )
        .route(
            "/api/v1/devices/{id}",
            get(devices_api::get_device).patch(devices_api::update_device),
        )
        .route(
            "/api/v1/devices/{id}/telemetry",
            get(telemetry_api::device_history),
        )
        .route(
            "/api/v1/devices/{id}/desired",
            put(devices_api::update_desired),
        )
        .route("/api/v1/rules", get(rules_api::list_rules))
        .route("/api/v1/rules/validate", post(rules_api::validate_rules))
        .route(
            "/api/v1/rules/{device_type}",
            put(rules_api::store_rules).delete(rules_api::remove_rules),
        )
        .route("/api/v1/alarms", get(alarms_api::list_alarms))
        .route(
            "/api/v1/alarms/{device}/{rule}/{raised_at}",
            get(alarms_api::get_alarm),
        )
        .route(
            "/api/v1/alarms/{device}/{rule}/{raised_at}/{action}",
            post(alarms_api::act_on_alarm),
        )
        .route("/api/v1/notifications", get(notify_api::list_notifications))
        .route(
            "/api/v1/notifications/maintenance",
            get(notify_api::list_maintenance).post(notify_api::add_maintenance),
        )
        .route(
            "/api/v1/notifications/maintenance/{id}",
            delete(notify_api::remove_maintenance),
        )
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    let connected = state.broker_connected.load(Ordering::Acquire);
    let body = serde_json::json!({
        "status": if connected { "ready" } else { "not_ready" },
        "broker_connected": connected,
        "devices": state.hub.device_count(),
        "dashboard_clients": state.hub.client_count(),
    });
    let status = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let headers = [(
        axum::http::header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    )];
    (headers, state.metrics.render()).into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    let message = format!(
        "no route for `{}`; the API is under /api/v1/ and the dashboard at /",
        uri.path()
    );
    api::ApiError::new(StatusCode::NOT_FOUND, "not_found", message).into_response()
}
