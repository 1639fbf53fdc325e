//! The SQL stores against both backends: a SQLite file and the PostgreSQL server of
//! `VALMETAL_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), each
//! test in a database of its own. The same migrations, queries and version rules must hold
//! on both, and an engine on PostgreSQL restores from it after a restart.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::postgres::PostgresDatabase;
use common::{TestEngine, feed_bin_rules, mosquitto_addr, publish_once, unique_prefix};
use serde_json::json;
use valmetal_actors::clock::now_ms;
use valmetal_actors::rules::{Alarm, AlarmEvent, AlarmState, Severity, Transition};
use valmetal_actors::{DeviceDocument, DeviceId, Frame, Shadow, Value};
use valmetal_engine::sinks::Sink;
use valmetal_engine::sinks::shadows::ShadowStore;
use valmetal_engine::sinks::timeseries::TimeSeriesRecord;
use valmetal_engine::store::equipment::{Equipment, EquipmentStore};
use valmetal_engine::store::shadows::SqlShadowStore;
use valmetal_engine::store::telemetry::SqlTelemetry;
use valmetal_engine::store::{AlarmHistory, Backend, Database, RuleStore, StoredRuleFile};

fn device(id: &str) -> DeviceId {
    DeviceId::parse(id).unwrap()
}

fn alarm(device_id: &str, raised_at: i64) -> Alarm {
    Alarm {
        id: Arc::from(format!("{device_id}/bin_low/{raised_at}")),
        device: device(device_id),
        rule: Arc::from("bin_low"),
        severity: Severity::Major,
        state: AlarmState::Active,
        key: Some(Arc::from("end_weight_kg")),
        value: Some(Value::Number(1.5)),
        message: "end_weight_kg 1.5 below 2".into(),
        raised_at,
        cleared_at: None,
        frame_ts: Some(raised_at - 10),
        cleared_frame_ts: None,
        rule_version: Arc::from("v1"),
        inputs: Vec::new(),
        flapping: true,
        acknowledged: None,
        cleared_by: None,
        shelved: None,
        shelved_until: None,
    }
}

fn document(device_id: &str, version: u64, weight: f64) -> DeviceDocument {
    let mut shadow = Shadow::default();
    for step in 0..version {
        shadow.apply(&Frame {
            ts: 1_700_000_000_000 + step as i64,
            seq: Some(step),
            values: vec![(Arc::from("end_weight_kg"), Value::Number(weight))],
        });
    }
    shadow
        .set_desired(&[(Arc::from("target_kg"), Some(Value::Number(900.0)))], 5)
        .unwrap();
    DeviceDocument::from_shadow(
        device(device_id),
        "feed_bin",
        Some("odrc"),
        &shadow,
        Some(1_700_000_000_500),
        vec![alarm(device_id, 1_700_000_000_400)],
        now_ms(),
    )
}

fn record(device_id: &str, ts: i64, version: i64, weight: f64) -> TimeSeriesRecord {
    TimeSeriesRecord {
        device: Arc::from(device_id),
        device_type: Arc::from("feed_bin"),
        farm: Some(Arc::from("odrc")),
        ts,
        version,
        values: vec![
            (Arc::from("end_weight_kg"), Value::Number(weight)),
            (Arc::from("state"), Value::Text(Arc::from("filling"))),
        ],
    }
}

/// Exercises every SQL store on `database`.
async fn exercise(database: Database) {
    let history = AlarmHistory::new(database.clone());
    let raised = alarm("feedbin-001", 1_700_000_000_400);
    history
        .insert(&[AlarmEvent {
            transition: Transition::Raised,
            alarm: raised.clone(),
            operator: None,
        }])
        .await
        .unwrap();
    let rows = history.recent(10, Some("feedbin-001"), None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].alarm_id, &*raised.id);
    assert!(rows[0].flapping);
    assert!(
        history
            .recent(10, Some("feedbin-002"), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        history.transition_counts().await.unwrap(),
        [("raised".to_owned(), 1)]
    );

    let rules = RuleStore::new(database.clone());
    rules
        .put(&StoredRuleFile {
            device_type: "feed_bin".into(),
            text: "device_type = \"feed_bin\"".into(),
            version: "v2".into(),
            updated_at: 7,
            updated_by: "ops".into(),
        })
        .await
        .unwrap();
    assert_eq!(rules.list().await.unwrap()[0].version, "v2");
    assert!(rules.delete("feed_bin").await.unwrap());
    assert!(!rules.delete("feed_bin").await.unwrap());

    let shadows = SqlShadowStore::new(database.clone());
    let newer = document("feedbin-001", 5, 3.0);
    let older = document("feedbin-001", 3, 9.0);
    assert!(
        shadows
            .put(std::slice::from_ref(&newer))
            .await
            .unwrap()
            .superseded
            .is_empty()
    );
    let outcome = shadows
        .put(&[older, document("feedbin-002", 1, 4.0)])
        .await
        .unwrap();
    assert_eq!(
        outcome.superseded,
        [0],
        "version 3 never replaces version 5"
    );
    let loaded = shadows.load_all().await.unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0], newer, "the document round-trips whole");

    let telemetry = SqlTelemetry::new(database.clone());
    let mut batch = vec![
        record("feedbin-001", 1_000, 10, 5.0),
        record("feedbin-001", 1_000, 12, 6.0),
        record("feedbin-001", 61_000, 10, 7.0),
    ];
    telemetry.write(&mut batch).await.unwrap();
    telemetry
        .write(&mut [record("feedbin-001", 1_000, 11, 99.0)])
        .await
        .unwrap();
    let points = telemetry
        .history("feedbin-001", Some("end_weight_kg"), 0..120_000, 60_000)
        .await
        .unwrap();
    let averages: Vec<(i64, f64)> = points
        .iter()
        .map(|(_, point)| (point.ts, point.avg))
        .collect();
    assert_eq!(
        averages,
        [(0, 6.0), (60_000, 7.0)],
        "the higher version wins within a batch and against a later, older rewrite"
    );
    assert_eq!(
        telemetry.count().await.unwrap(),
        4,
        "text values are stored too"
    );
    assert_eq!(
        telemetry.prune(11).await.unwrap(),
        1,
        "frames received before the cutoff go, whatever their device time"
    );
    // The stored frame at 1,000 has version 12. In a batch with an older record of that frame
    // and a newer one, only the newer one may change it.
    let mut older = record("feedbin-001", 1_000, 11, 50.0);
    older.values = vec![(Arc::from("intake_kg"), Value::Number(0.5))];
    telemetry
        .write(&mut [older, record("feedbin-001", 1_000, 13, 8.0)])
        .await
        .unwrap();
    let weight = telemetry
        .history("feedbin-001", Some("end_weight_kg"), 0..60_000, 60_000)
        .await
        .unwrap();
    assert_eq!(weight.len(), 1);
    assert_eq!(
        weight[0].1.avg, 8.0,
        "the newer record of the batch is applied"
    );
    let intake = telemetry
        .history("feedbin-001", Some("intake_kg"), 0..60_000, 60_000)
        .await
        .unwrap();
    assert!(
        intake.is_empty(),
        "a record older than the stored row adds nothing, even beside a newer one: {intake:?}"
    );

    let equipment = EquipmentStore::new(database.clone());
    let mut registered = vec![
        Equipment {
            device_id: device("feedbin-001"),
            device_type: "feed_bin".into(),
            farm: Some("odrc".into()),
            name: "feedbin-001".into(),
        },
        Equipment {
            device_id: device("machine-01"),
            device_type: "machine".into(),
            farm: Some("nab".into()),
            name: "machine-01".into(),
        },
    ];
    equipment.write(&mut registered).await.unwrap();
    equipment.write(&mut registered[..1]).await.unwrap();
    assert_eq!(equipment.farms().await.unwrap(), ["nab", "odrc"]);
    let odrc = equipment.list(Some("odrc")).await.unwrap();
    assert_eq!(odrc.len(), 1);
    assert_eq!(odrc[0].device_type, "feed_bin");
    assert_eq!(equipment.list(None).await.unwrap().len(), 2);
    database.close().await;
}

#[tokio::test]
async fn sql_stores_hold_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::open_sqlite(&dir.path().join("valmetal.db"))
        .await
        .unwrap();
    assert_eq!(database.backend(), Backend::Sqlite);
    exercise(database).await;
}

#[tokio::test]
async fn sql_stores_hold_on_postgres() {
    let postgres = PostgresDatabase::create("stores").await;
    let database = Database::open_url(&postgres.url).await.unwrap();
    assert_eq!(database.backend(), Backend::Postgres);
    exercise(database).await;
    let reopened = Database::open_url(&postgres.url).await.unwrap();
    reopened.close().await;
    postgres.drop_database().await;
}

#[tokio::test]
async fn an_unreachable_or_unknown_database_is_named_in_the_error() {
    let error = Database::open_url("mysql://root@127.0.0.1/test")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("mysql://root@127.0.0.1/test"), "{error}");
    assert!(error.contains("postgres://"), "{error}");
    let error = Database::open_url("postgres://app:secret@127.0.0.1:1/none")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("postgres://app:***@127.0.0.1:1/none"),
        "{error}"
    );
    assert!(!error.contains("secret"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_on_postgres_restores_after_a_restart() {
    let postgres = PostgresDatabase::create("engine").await;
    let broker = mosquitto_addr();
    let prefix = unique_prefix("postgres");
    let url = postgres.url.clone();
    let engine = TestEngine::start_with(broker.clone(), &prefix, feed_bin_rules("1h"), |config| {
        config.storage.database_url = Some(url);
        config.storage.shadow_batch.max_age = Duration::from_millis(50);
        config.storage.timeseries_batch.max_age = Duration::from_millis(50);
    })
    .await;
    let ts = now_ms() - 1_000;
    publish_once(
        &broker,
        "postgres-a",
        &format!("{prefix}/feedbin-777/telemetry"),
        json!({"ts": ts, "values": {"end_weight_kg": 1.0}}).to_string(),
    )
    .await;
    let path = "/api/v1/devices/feedbin-777";
    let mut raised = false;
    for _ in 0..250 {
        let (_, body) = engine.get_json(path).await;
        if body["alarms"]
            .as_array()
            .is_some_and(|alarms| !alarms.is_empty())
        {
            raised = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(raised, "the low weight raises an alarm");
    let engine = engine.restart(feed_bin_rules("1h")).await;
    let (status, body) = engine.get_json(path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reported"]["end_weight_kg"]["value"], 1.0, "{body}");
    assert_eq!(body["alarms"][0]["state"], "active", "{body}");
    let (_, history) = engine
        .get_json(&format!("{path}/telemetry?from={}&to={}", ts - 1, ts + 1))
        .await;
    assert_eq!(
        history["series"]["end_weight_kg"][0]["avg"], 1.0,
        "{history}"
    );
    let database = Database::open_url(&postgres.url).await.unwrap();
    let equipment = EquipmentStore::new(database.clone())
        .list(Some("odrc"))
        .await
        .unwrap();
    assert_eq!(
        equipment.len(),
        1,
        "the device was registered with its farm"
    );
    database.close().await;
    engine.engine.shutdown().await;
    postgres.drop_database().await;
}
