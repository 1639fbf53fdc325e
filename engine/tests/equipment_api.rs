//! Equipment records, maintenance and documents through the HTTP API, each served with a
//! chosen caller so that farm scoping can be checked: records and documents of another farm
//! are invisible, and viewers change nothing.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use valmetal_actors::rules::RuleBook;
use valmetal_actors::usage::{CounterConfig, CounterKind};
use valmetal_actors::{DeviceId, EquipmentProfile, Frame, FrameBatch};
use valmetal_engine::auth::{FarmScope, Principal, Role};
use valmetal_engine::config::EquipmentConfig;
use valmetal_engine::equipment::config::{DocumentBackend, MaintenancePlan, MaintenanceTask};
use valmetal_engine::http;

use common::postgres::PostgresDatabase;
use common::{TestEngine, mosquitto_addr, unique_prefix, wait_until};

const FARM: &str = "odrc";
const OTHER_FARM: &str = "north";
const DEVICE: &str = "feedbin-006";
const HOUR_MS: i64 = 3_600_000;

fn principal(role: Role, farms: &[&str]) -> Principal {
    Principal {
        subject: format!("{}-{}", role.as_str(), farms.join("+")),
        name: format!("{} of {}", role.as_str(), farms.join(", ")),
        role,
        farms: FarmScope::Only(farms.iter().map(|farm| Arc::from(*farm)).collect()),
    }
}

fn admin() -> Principal {
    Principal {
        role: Role::Admin,
        farms: FarmScope::All,
        ..principal(Role::Admin, &[])
    }
}

/// Returns a feed-bin plan whose scale check comes due after 10 stocked hours or 90 days.
fn equipment_config() -> EquipmentConfig {
    let profile = EquipmentProfile {
        device_type: "feed_bin".into(),
        counters: vec![CounterConfig {
            name: "run_hours".into(),
            kind: CounterKind::RunHours,
            key: "end_weight_kg".into(),
            above: 5.0,
            start_key: None,
            max_gap: Duration::from_secs(15 * 60),
        }],
        wear: Vec::new(),
    };
    let plan = MaintenancePlan {
        equipment_type: "feed_bin".into(),
        tasks: vec![MaintenanceTask {
            id: "calibrate_scale".into(),
            title: "Calibrate the bin scale".into(),
            every_days: Some(90.0),
            every_run_hours: Some(10.0),
            every_cycles: None,
            run_hours_counter: "run_hours".into(),
            cycles_counter: "starts".into(),
        }],
    };
    EquipmentConfig {
        profiles: vec![profile],
        plans: vec![plan],
        maintenance_check_interval: Duration::from_secs(1),
        ..EquipmentConfig::default()
    }
}

/// An engine, and the extra HTTP servers that serve its routes to chosen callers.
struct Harness {
    engine: TestEngine,
    servers: Mutex<Vec<JoinHandle<()>>>,
}

impl Harness {
    /// Serves the engine's routes with `caller` as the caller of every request.
    async fn serve_as(&self, caller: Principal) -> SocketAddr {
        let state = Arc::clone(self.engine.engine.http_state());
        let router = http::router_with_principal(state, caller);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        self.servers.lock().push(server);
        addr
    }

    /// Stops the extra servers, which keep the engine's state alive, then the engine.
    async fn shutdown(self) {
        let servers = std::mem::take(&mut *self.servers.lock());
        for server in servers {
            server.abort();
            let _ = server.await;
        }
        self.engine.engine.shutdown().await;
    }
}

async fn start_engine(test: &str, adjust: impl FnOnce(&mut valmetal_engine::Config)) -> Harness {
    let prefix = unique_prefix(test);
    let engine = TestEngine::start_with(mosquitto_addr(), &prefix, RuleBook::default(), |config| {
        config.equipment = equipment_config();
        adjust(config);
    })
    .await;
    Harness {
        engine,
        servers: Mutex::new(Vec::new()),
    }
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("http://{addr}{path}");
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn record_body(farm: &str, name: &str, device: Option<&str>) -> Value {
    json!({
        "farm_id": farm,
        "barn": "Barn 2",
        "equipment_type": "feed_bin",
        "name": name,
        "model": "Insentec RIC",
        "serial_number": "RIC-0006",
        "install_date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "firmware_version": "4.2",
        "location": "row 1",
        "device_id": device,
    })
}

async fn create_record(addr: SocketAddr, farm: &str, name: &str, device: Option<&str>) -> String {
    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/equipment",
        Some(record_body(farm, name, device)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["equipment"]["equipment_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn check_farm_scoping(engine: &Harness) {
    let admin = engine.serve_as(admin()).await;
    let ours = create_record(admin, FARM, "Bin 6", None).await;
    let theirs = create_record(admin, OTHER_FARM, "North bin", None).await;

    let other_operator = engine
        .serve_as(principal(Role::Operator, &[OTHER_FARM]))
        .await;
    let (status, body) = call(other_operator, "GET", "/api/v1/equipment", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["equipment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["equipment_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [theirs.as_str()]);
    let (status, body) = call(
        other_operator,
        "GET",
        &format!("/api/v1/equipment/{ours}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = call(
        other_operator,
        "GET",
        &format!("/api/v1/equipment/{ours}/maintenance"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    let viewer = engine.serve_as(principal(Role::FarmViewer, &[FARM])).await;
    let (status, _) = call(viewer, "GET", &format!("/api/v1/equipment/{ours}"), None).await;
    assert_eq!(status, 200);
    let (status, body) = call(
        viewer,
        "PUT",
        &format!("/api/v1/equipment/{ours}"),
        Some(record_body(FARM, "Renamed", None)),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, _) = call(
        viewer,
        "POST",
        &format!("/api/v1/equipment/{ours}/work-orders"),
        Some(json!({ "notes": "x" })),
    )
    .await;
    assert_eq!(status, 403);

    let operator = engine.serve_as(principal(Role::Operator, &[FARM])).await;
    let (status, _) = call(
        operator,
        "POST",
        "/api/v1/equipment",
        Some(record_body(FARM, "Bin 7", None)),
    )
    .await;
    assert_eq!(status, 403, "records are changed by admins");
    let (status, body) = call(
        admin,
        "PUT",
        &format!("/api/v1/equipment/{ours}"),
        Some(record_body(FARM, "Bin six", None)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["equipment"]["name"], "Bin six");
    let (status, body) = call(
        admin,
        "POST",
        "/api/v1/equipment",
        Some(record_body(OTHER_FARM, "Borrowed bin", Some(DEVICE))),
    )
    .await;
    assert_eq!(
        status, 400,
        "a device of farm {FARM} is linked to farm {OTHER_FARM}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to farm `odrc`"),
        "{body}"
    );
    let (status, body) = call(
        admin,
        "PUT",
        &format!("/api/v1/equipment/{ours}"),
        Some(record_body(OTHER_FARM, "Bin six", Some(DEVICE))),
    )
    .await;
    assert_eq!(
        status, 400,
        "moving a linked record to another farm: {body}"
    );
    let (status, body) = call(
        admin,
        "POST",
        &format!("/api/v1/equipment/{ours}/work-orders"),
        Some(json!({ "performed_at": "2000-01-01T00:00:00Z" })),
    )
    .await;
    assert_eq!(status, 400, "work before installation: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("installation date"),
        "{body}"
    );
    let (status, body) = call(
        admin,
        "PUT",
        &format!("/api/v1/equipment/{ours}/maintenance/calibrate_scale"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 400, "an override that changes nothing: {body}");
    let mut garbled = record_body(FARM, "Bin\n8", None);
    garbled["farm_id"] = json!("od/rc");
    let (status, body) = call(admin, "POST", "/api/v1/equipment", Some(garbled)).await;
    assert_eq!(status, 400);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("control character"), "{message}");
    assert!(message.contains("od/rc"), "{message}");
    let mut future = record_body(FARM, "Bin 8", None);
    future["install_date"] = json!("2999-01-01");
    let (status, body) = call(admin, "POST", "/api/v1/equipment", Some(future)).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in the future"),
        "{body}"
    );
    let (status, body) = call(admin, "POST", "/api/v1/equipment", Some(json!({ "farm_id": FARM, "equipment_type": "feed_bin", "name": "x", "install_date": "June" }))).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("install_date")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_scoped_to_farm_sqlite() {
    let engine = start_engine("equipment-sqlite", |_| {}).await;
    check_farm_scoping(&engine).await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_scoped_to_farm_postgres() {
    let postgres = PostgresDatabase::create("equipment").await;
    let url = postgres.url.clone();
    let engine = start_engine("equipment-postgres", |config| {
        config.storage.database_url = Some(url);
    })
    .await;
    check_farm_scoping(&engine).await;
    engine.shutdown().await;
    postgres.drop_database().await;
}

/// Delivers one stocked-bin frame every 10 minutes for `hours` hours from `start`; a frame at
/// `start` itself is skipped by the counters when an earlier call already delivered it.
async fn deliver_stocked_hours(engine: &Harness, start: i64, hours: i64) {
    let device = DeviceId::parse(DEVICE).unwrap();
    for step in 0..=hours * 6 {
        let frame = Frame {
            ts: start + step * HOUR_MS / 6,
            seq: None,
            values: vec![(
                Arc::from("end_weight_kg"),
                valmetal_actors::Value::Number(30.0),
            )],
        };
        let batch = FrameBatch {
            frames: vec![frame],
            received_at: valmetal_actors::clock::now_ms(),
            retained: None,
        };
        engine
            .engine
            .engine
            .registry()
            .deliver(&device, batch)
            .await;
    }
    engine.engine.engine.registry().settle().await;
}

fn maintenance_alarm(engine: &Harness) -> Option<Value> {
    let device = DeviceId::parse(DEVICE).unwrap();
    let state = engine.engine.engine.hub().device_state(&device)?;
    let alarms = serde_json::to_value(&state.alarms).unwrap();
    alarms
        .as_array()?
        .iter()
        .find(|alarm| alarm["rule"] == "maintenance.calibrate_scale")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_due_alarm_until_work_order() {
    let engine = start_engine("equipment-due", |_| {}).await;
    let admin = engine.serve_as(admin()).await;
    let id = create_record(admin, FARM, "Bin 6", Some(DEVICE)).await;
    deliver_stocked_hours(&engine, 1_640_995_200_000, 12).await;

    let (status, view) = call(
        admin,
        "GET",
        &format!("/api/v1/equipment/{id}/maintenance"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    let task = &view["tasks"][0];
    assert_eq!(task["status"], "overdue", "{view}");
    assert_eq!(
        task["driver"], "run_hours",
        "hours come due long before 90 days"
    );
    assert!((view["counters"]["run_hours"].as_f64().unwrap() - 12.0).abs() < 1e-9);

    let (status, due) = call(admin, "GET", "/api/v1/maintenance/due", None).await;
    assert_eq!(status, 200);
    assert_eq!(due["due"][0]["equipment_id"], id.as_str());

    wait_until(Duration::from_secs(10), || {
        maintenance_alarm(&engine).is_some_and(|alarm| alarm["state"] == "active")
    })
    .await;
    let alarm = maintenance_alarm(&engine).unwrap();
    assert_eq!(alarm["severity"], "minor", "overdue escalates past warning");
    let inputs: Vec<&str> = alarm["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|input| input["key"].as_str().unwrap())
        .collect();
    assert!(inputs.contains(&"run_hours.used"), "{inputs:?}");

    // The history is what notifications follow, so the alarm must be stored there too.
    let history_path = format!("/api/v1/alarms?device={DEVICE}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, history) = call(admin, "GET", &history_path, None).await;
        let stored = history["events"].as_array().is_some_and(|events| {
            events
                .iter()
                .any(|event| event["rule"] == "maintenance.calibrate_scale")
        });
        if stored {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no history: {history}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let operator = engine.serve_as(principal(Role::Operator, &[FARM])).await;
    // A hand-cleared alarm stays cleared over later checks while the task is still due.
    let alarm_id = alarm["id"].as_str().unwrap();
    let (status, body) = call(
        operator,
        "POST",
        &format!("/api/v1/alarms/{alarm_id}/clear"),
        Some(json!({ "by": "operator of odrc" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = maintenance_alarm(&engine).unwrap();
    assert_eq!(
        after["state"], "cleared",
        "raised again after a hand clear: {after}"
    );

    let (status, body) = call(
        operator,
        "POST",
        &format!("/api/v1/equipment/{id}/work-orders"),
        Some(json!({ "task_id": "calibrate_scale", "notes": "Calibrated with 20 kg test weight" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let baseline = body["work_order"]["counters"]["run_hours"]
        .as_f64()
        .unwrap();
    assert!((baseline - 12.0).abs() < 1e-9, "baseline {baseline}");
    assert_eq!(body["work_order"]["performed_by"], "operator of odrc");

    let (_, view) = call(
        admin,
        "GET",
        &format!("/api/v1/equipment/{id}/maintenance"),
        None,
    )
    .await;
    assert_eq!(view["tasks"][0]["status"], "ok", "{view}");
    assert_eq!(view["tasks"][0]["intervals"][1]["used"].as_f64(), Some(0.0));
    wait_until(Duration::from_secs(10), || {
        maintenance_alarm(&engine).is_none_or(|alarm| alarm["state"] == "cleared")
    })
    .await;

    // Five more hours count from the work order, not from installation.
    deliver_stocked_hours(&engine, 1_640_995_200_000 + 12 * HOUR_MS, 5).await;
    let (_, view) = call(
        admin,
        "GET",
        &format!("/api/v1/equipment/{id}/maintenance"),
        None,
    )
    .await;
    assert_eq!(view["tasks"][0]["status"], "ok", "{view}");
    assert!((view["tasks"][0]["intervals"][1]["used"].as_f64().unwrap() - 5.0).abs() < 1e-9);

    let (status, body) = call(
        admin,
        "PUT",
        &format!("/api/v1/equipment/{id}/maintenance/calibrate_scale"),
        Some(json!({ "every_run_hours": 4.0 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, view) = call(
        admin,
        "GET",
        &format!("/api/v1/equipment/{id}/maintenance"),
        None,
    )
    .await;
    assert_eq!(
        view["tasks"][0]["status"], "overdue",
        "the override shortens the interval"
    );
    assert_eq!(view["tasks"][0]["overridden"], true);
    engine.shutdown().await;
}

// === documents ===

async fn upload(addr: SocketAddr, id: &str, bytes: &[u8]) -> (u16, Value) {
    call(
        addr,
        "POST",
        &format!("/api/v1/equipment/{id}/documents"),
        Some(json!({
            "title": "Service report",
            "kind": "service_report",
            "file_name": "report.pdf",
            "content_type": "application/pdf",
            "size_bytes": bytes.len(),
        })),
    )
    .await
}

/// Sends a signed request from the API; relative URLs are the engine's own.
async fn send_signed(
    engine_addr: SocketAddr,
    request: &Value,
    body: Option<Vec<u8>>,
) -> (u16, Vec<u8>) {
    let url = request["url"].as_str().unwrap();
    let url = if url.starts_with('/') {
        format!("http://{engine_addr}{url}")
    } else {
        url.to_owned()
    };
    let method =
        reqwest::Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
    let mut builder = reqwest::Client::new().request(method, url);
    for (name, value) in request["headers"].as_object().unwrap() {
        if name != "content-length" {
            builder = builder.header(name, value.as_str().unwrap());
        }
    }
    if let Some(body) = body {
        builder = builder.body(body);
    }
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn check_documents(engine: &Harness) {
    let admin = engine.serve_as(admin()).await;
    let id = create_record(admin, FARM, "Bin 6", None).await;
    let operator = engine.serve_as(principal(Role::Operator, &[FARM])).await;
    let bytes = b"%PDF-1.4 service report of bin 6".to_vec();

    let (status, created) = upload(operator, &id, &bytes).await;
    assert_eq!(status, 201, "{created}");
    let document_id = created["document"]["document_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created["document"]["status"], "pending");
    assert_eq!(created["document"]["uploaded_by"], "operator of odrc");
    let (status, _) = send_signed(operator, &created["upload"], Some(bytes.clone())).await;
    assert_eq!(status, 200);
    let (status, done) = call(
        operator,
        "POST",
        &format!("/api/v1/equipment/{id}/documents/{document_id}/complete"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["document"]["status"], "stored");

    let viewer = engine.serve_as(principal(Role::FarmViewer, &[FARM])).await;
    let (status, listed) = call(
        viewer,
        "GET",
        &format!("/api/v1/equipment/{id}/documents"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed["documents"][0]["title"], "Service report");
    let (status, download) = call(
        viewer,
        "GET",
        &format!("/api/v1/equipment/{id}/documents/{document_id}/download"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{download}");
    let (status, fetched) = send_signed(viewer, &download["download"], None).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, bytes);
    let (status, _) = upload(viewer, &id, &bytes).await;
    assert_eq!(status, 403, "viewers upload nothing");

    let stranger = engine
        .serve_as(principal(Role::Operator, &[OTHER_FARM]))
        .await;
    let (status, _) = call(
        stranger,
        "GET",
        &format!("/api/v1/equipment/{id}/documents"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        stranger,
        "GET",
        &format!("/api/v1/equipment/{id}/documents/{document_id}/download"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = upload(stranger, &id, &bytes).await;
    assert_eq!(status, 404);

    let (status, body) = call(operator, "POST", &format!("/api/v1/equipment/{id}/documents"), Some(json!({ "title": "Video", "kind": "other", "file_name": "a.mp4", "content_type": "video/mp4", "size_bytes": 10 }))).await;
    assert_eq!(status, 415, "{body}");
    let (status, _) = call(operator, "POST", &format!("/api/v1/equipment/{id}/documents"), Some(json!({ "title": "Huge", "kind": "manual", "file_name": "a.pdf", "content_type": "application/pdf", "size_bytes": 1u64 << 40 }))).await;
    assert_eq!(status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_on_disk_by_signed_urls() {
    // A small file limit keeps the oversized upload of the test short.
    let engine = start_engine("equipment-disk", |config| {
        config.equipment.documents.max_bytes = 1024;
    })
    .await;
    assert_eq!(
        engine.engine.config.equipment.documents.backend,
        DocumentBackend::Disk
    );
    check_documents(&engine).await;

    let admin = engine.serve_as(admin()).await;
    let id = create_record(admin, FARM, "Bin 7", None).await;
    let (_, created) = upload(admin, &id, b"abc").await;
    let mut forged = created["upload"].clone();
    let url = forged["url"]
        .as_str()
        .unwrap()
        .replace("signature=", "signature=00");
    forged["url"] = json!(url);
    let (status, _) = send_signed(admin, &forged, Some(b"abc".to_vec())).await;
    assert_eq!(status, 403, "a changed signature is rejected");
    let (status, _) = send_signed(admin, &created["upload"], Some(b"abcd".to_vec())).await;
    assert_eq!(status, 422, "a body of another size is rejected");
    check_stored_file_kept(&engine, admin, &id, &created).await;
    engine.shutdown().await;
}

/// A stored file is not replaced through its still-valid upload URL, and rejected file bodies
/// and URLs get JSON errors that give the reason.
async fn check_stored_file_kept(engine: &Harness, admin: SocketAddr, id: &str, created: &Value) {
    let document_id = created["document"]["document_id"].as_str().unwrap();
    let (status, _) = send_signed(admin, &created["upload"], Some(b"abc".to_vec())).await;
    assert_eq!(status, 200);
    let path = format!("/api/v1/equipment/{id}/documents/{document_id}/complete");
    let (status, done) = call(admin, "POST", &path, None).await;
    assert_eq!(status, 200, "{done}");
    let (status, body) = send_signed(admin, &created["upload"], Some(b"xyz".to_vec())).await;
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "already_stored");

    let unsigned = created["upload"]["url"]
        .as_str()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let mut request = created["upload"].clone();
    request["url"] = json!(unsigned);
    let (status, body) = send_signed(admin, &request, Some(b"abc".to_vec())).await;
    assert_eq!(status, 403);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`signature`"),
        "{error}"
    );

    let limit = engine.engine.config.equipment.documents.max_bytes;
    let (_, big) = upload(admin, id, b"abc").await;
    let oversized = vec![b'a'; usize::try_from(limit).unwrap() + 10];
    let (status, body) = send_signed(admin, &big["upload"], Some(oversized)).await;
    assert_eq!(status, 413);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "payload_too_large");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&limit.to_string()),
        "{error}"
    );
}

fn moto_url() -> String {
    std::env::var("VALMETAL_TEST_MOTO_URL").unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_in_s3_by_presigned_urls() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let bucket = format!("valmetal-documents-{}-{nanos}", std::process::id());
    let engine = start_engine("equipment-s3", |config| {
        let documents = &mut config.equipment.documents;
        documents.backend = DocumentBackend::S3;
        documents.bucket = bucket;
        documents.s3.endpoint_url = Some(moto_url());
        config.storage.create_tables = true;
    })
    .await;
    check_documents(&engine).await;
    engine.shutdown().await;
}
