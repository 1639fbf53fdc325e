//! The dashboard's static files, compiled into the binary so the engine serves them from
//! anywhere without a separate web server.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A file of the dashboard.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every dashboard file, by the path it is served at.
pub const ASSETS: [Asset; 12] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../../web/index.html"),
    },
    script("/app.js", include_str!("../../../web/app.js")),
    script(
        "/alarm-history.js",
        include_str!("../../../web/alarm-history.js"),
    ),
    script("/api.js", include_str!("../../../web/api.js")),
    script("/auth.js", include_str!("../../../web/auth.js")),
    script("/chart.js", include_str!("../../../web/chart.js")),
    script(
        "/chart-window.js",
        include_str!("../../../web/chart-window.js"),
    ),
    script(
        "/desired-form.js",
        include_str!("../../../web/desired-form.js"),
    ),
    script(
        "/fleet-filter.js",
        include_str!("../../../web/fleet-filter.js"),
    ),
    script("/shadow.js", include_str!("../../../web/shadow.js")),
    script("/equipment.js", include_str!("../../../web/equipment.js")),
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../web/style.css"),
    },
];

/// An ES module of the dashboard.
const fn script(path: &'static str, body: &'static str) -> Asset {
    Asset {
        path,
        content_type: "text/javascript; charset=utf-8",
        body,
    }
}

/// Responds with `asset`, telling browsers to revalidate so a new engine build is picked up.
pub fn respond(asset: &'static Asset) -> Response {
    let mut response = (StatusCode::OK, asset.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
