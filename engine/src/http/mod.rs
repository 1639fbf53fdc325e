//! The engine's HTTP port: dashboard, WebSocket (`/ws`), REST API (`/api/v1/`), Prometheus
//! metrics (`/metrics`), and health (`/healthz`, `/readyz`).

pub mod alarms_api;
pub mod api;
pub mod assets;
pub mod devices_api;
pub mod documents_api;
pub mod equipment_api;
pub mod maintenance_api;
pub mod notify_api;
pub mod openapi;
pub mod rules_api;
pub mod session_api;
pub mod telemetry_api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use valmetal_ws_gateway::{ClientAccess, Hub};

use crate::auth::Auth;
use crate::auth::Principal;
use crate::auth::layer::authenticate;
use crate::equipment::EquipmentService;
use crate::equipment::documents::DISK_URL_PATH;
use crate::store::AlarmHistory;
use crate::store::registration::RegistrationStore;

/// Shared state of the handlers.
pub struct HttpState {
    /// Authentication of callers, used by the layer in front of the API and `/ws`.
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
    /// Equipment records, maintenance and documents.
    pub equipment: Arc<EquipmentService>,
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
    let auth = Arc::clone(&state.auth);
    assemble(state, move |protected| {
        protected.route_layer(axum::middleware::from_fn_with_state(auth, authenticate))
    })
}

/// Builds every route with `principal` as the caller of every protected request, in place
/// of the authentication layer, for tests of farm scoping.
pub fn router_with_principal(state: Arc<HttpState>, principal: Principal) -> Router {
    let access = ClientAccess {
        farms: principal.farms.farms().map(Arc::from),
        expires_at: None,
    };
    assemble(state, move |protected| {
        protected
            .layer(axum::Extension(principal))
            .layer(axum::Extension(access))
    })
}

/// Puts the public routes beside the protected ones, which `guard` wraps in what
/// establishes the caller.
fn assemble(state: Arc<HttpState>, guard: impl FnOnce(Router) -> Router) -> Router {
    let protected = api_routes()
        .merge(equipment_routes())
        .layer(DefaultBodyLimit::max(api::JSON_BODY_LIMIT))
        .with_state(Arc::clone(&state))
        .merge(valmetal_ws_gateway::router(Arc::clone(&state.hub)));
    let protected = guard(protected);
    let max_upload = usize::try_from(state.equipment.config.documents.max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    // Document files are checked by their URL's signature and expiry, not by a token, so
    // browsers and presigned-style clients can fetch them directly.
    let mut public = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/auth/jwks.json", get(session_api::jwks))
        .route(
            &format!("{DISK_URL_PATH}/{{document}}"),
            put(documents_api::put_file)
                .get(documents_api::get_file)
                .layer(DefaultBodyLimit::max(max_upload)),
        );
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

/// Returns the routes of `/api/v1/` that need a signed-in caller.
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

/// Routes of equipment records, maintenance and document metadata.
fn equipment_routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route(
            "/api/v1/equipment",
            get(equipment_api::list_equipment).post(equipment_api::create_equipment),
        )
        .route(
            "/api/v1/equipment/{id}",
            get(equipment_api::get_equipment)
                .put(equipment_api::update_equipment)
                .delete(equipment_api::delete_equipment),
        )
        .route(
            "/api/v1/equipment/{id}/maintenance",
            get(maintenance_api::get_maintenance),
        )
        .route(
            "/api/v1/equipment/{id}/maintenance/{task}",
            put(maintenance_api::put_override).delete(maintenance_api::delete_override),
        )
        .route(
            "/api/v1/equipment/{id}/work-orders",
            get(maintenance_api::list_work_orders).post(maintenance_api::create_work_order),
        )
        .route(
            "/api/v1/equipment/{id}/documents",
            get(documents_api::list_documents).post(documents_api::create_upload),
        )
        .route(
            "/api/v1/equipment/{id}/documents/{document}",
            delete(documents_api::delete_document),
        )
        .route(
            "/api/v1/equipment/{id}/documents/{document}/complete",
            post(documents_api::complete_upload),
        )
        .route(
            "/api/v1/equipment/{id}/documents/{document}/download",
            get(documents_api::create_download),
        )
        .route("/api/v1/maintenance/due", get(maintenance_api::list_due))
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
