//! The whole engine on AWS stores: telemetry to Timestream (moto), device documents to
//! DynamoDB (dynalite) and back at a restart; and a Timestream outage of a minute, across an
//! engine restart, after which every frame is written once.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::aws_fault::harness::{emulator_url, moto_records};
use common::aws_fault::{AwsFaultServer, Outage};
use common::{TestEngine, feed_bin_rules, mosquitto_addr, unique_prefix};
use serde_json::json;
use valmetal_actors::clock::now_ms;
use valmetal_engine::Config;
use valmetal_engine::sinks::aws::AwsConfig;
use valmetal_engine::sinks::backoff::Backoff;
use valmetal_engine::sinks::dynamodb::{DynamoConfig, DynamoShadowStore};
use valmetal_engine::sinks::shadows::ShadowStore;
use valmetal_engine::storage::{ShadowTarget, TimeSeriesTarget};

fn unique_name(kind: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("valmetal_{kind}_{}_{nanos}", std::process::id())
}

/// Publishes `count` frames, spread over four feed bins, one second of device time apart.
async fn publish_frames(broker: &(String, u16), prefix: &str, t0: i64, count: u64) {
    let client = common::connected_client(broker, &unique_name("publisher")).await;
    for seq in 0..count {
        let device = format!("feedbin-{:03}", 960 + seq % 4);
        let payload = json!({
            "ts": t0 + seq as i64 * 1_000,
            "seq": seq,
            "values": {"end_weight_kg": 100.0 + seq as f64, "state": "filling"},
        });
        client
            .publish(
                format!("{prefix}/{device}/telemetry"),
                rumqttc::QoS::AtLeastOnce,
                false,
                payload.to_string(),
            )
            .await
            .unwrap();
    }
}

async fn eventually<F: Future<Output = bool>>(timeout: Duration, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within {timeout:?}");
}

fn fast_batches(config: &mut Config) {
    for batch in [
        &mut config.storage.timeseries_batch,
        &mut config.storage.shadow_batch,
    ] {
        batch.max_age = Duration::from_millis(100);
        batch.backoff = Backoff {
            first: Duration::from_millis(50),
            max: Duration::from_secs(2),
        };
        batch.drain_timeout = Duration::from_secs(1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_writes_timestream_and_dynamodb_and_restores_from_dynamodb() {
    let moto = emulator_url("VALMETAL_TEST_MOTO_URL");
    let dynalite = emulator_url("VALMETAL_TEST_DYNALITE_URL");
    let database = unique_name("db");
    let table = unique_name("shadows");
    let broker = mosquitto_addr();
    let prefix = unique_prefix("aws");
    let (moto_url, dynalite_url) = (moto.clone(), dynalite.clone());
    let (database_name, table_name) = (database.clone(), table.clone());
    let engine = TestEngine::start_with(
        broker.clone(),
        &prefix,
        feed_bin_rules("1h"),
        move |config| {
            fast_batches(config);
            config.storage.timeseries = vec![TimeSeriesTarget::Timestream, TimeSeriesTarget::Sql];
            config.storage.shadows = ShadowTarget::Dynamodb;
            config.storage.create_tables = true;
            config.storage.timestream.database = database_name;
            config.storage.timestream.aws.endpoint_url = Some(moto_url);
            config.storage.dynamodb.table = table_name;
            config.storage.dynamodb.aws.endpoint_url = Some(dynalite_url);
        },
    )
    .await;
    let t0 = now_ms() - 60_000;
    publish_frames(&broker, &prefix, t0, 40).await;
    eventually(Duration::from_secs(20), || async {
        moto_records(&moto, &database).await.len() == 40
    })
    .await;
    let records = moto_records(&moto, &database).await;
    let devices: BTreeSet<String> = records
        .iter()
        .flat_map(|record| record["Dimensions"].as_array().cloned().unwrap_or_default())
        .filter(|dimension| dimension["Name"] == "device_id")
        .filter_map(|dimension| dimension["Value"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(devices.len(), 4, "{records:?}");

    let store = DynamoShadowStore::connect(&DynamoConfig {
        table: table.clone(),
        aws: AwsConfig {
            endpoint_url: Some(dynalite.clone()),
            ..AwsConfig::default()
        },
        ..DynamoConfig::default()
    })
    .await;
    eventually(Duration::from_secs(20), || async {
        store.load_all().await.is_ok_and(|documents| {
            documents.len() == 4 && documents.iter().all(|document| document.version == 10)
        })
    })
    .await;

    let engine = engine.restart(feed_bin_rules("1h")).await;
    let (status, body) = engine.get_json("/api/v1/devices/feedbin-963").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reported"]["end_weight_kg"]["value"], 139.0, "{body}");
    assert_eq!(body["version"], 10, "{body}");
    engine.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_timestream_outage_across_a_restart_loses_nothing() {
    const FRAMES: u64 = 120;
    let server = AwsFaultServer::start().await;
    server.outage_for(Outage::Refuse, Duration::from_secs(60));
    let broker = mosquitto_addr();
    let prefix = unique_prefix("outage");
    let url = server.url();
    let engine = TestEngine::start_with(
        broker.clone(),
        &prefix,
        feed_bin_rules("1h"),
        move |config| {
            fast_batches(config);
            config.storage.timeseries = vec![TimeSeriesTarget::Timestream];
            config.storage.timestream.aws.endpoint_url = Some(url);
        },
    )
    .await;
    let t0 = now_ms() - 600_000;
    publish_frames(&broker, &prefix, t0, FRAMES).await;
    eventually(Duration::from_secs(20), || async {
        engine.engine.messages_taken() == FRAMES
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(server.timestream_accepted().is_empty(), "the store is down");

    let engine = engine.restart(feed_bin_rules("1h")).await;
    let journal = engine.data_dir().join("journal");
    assert!(
        common::journal_segments(&journal) >= 2,
        "the unwritten frames wait in the journal"
    );
    eventually(Duration::from_secs(90), || async {
        server.timestream_table().len() as u64 == FRAMES
    })
    .await;
    let accepted = server.timestream_accepted();
    let distinct: BTreeSet<(String, i64)> = accepted
        .iter()
        .map(|record| (record.device().to_owned(), record.time))
        .collect();
    assert_eq!(distinct.len() as u64, FRAMES, "every frame was written");
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    for record in &accepted {
        let seq = (record.time - t0) / 1_000;
        assert_eq!(record.number("end_weight_kg"), Some(100.0 + seq as f64));
    }
    eventually(Duration::from_secs(10), || async {
        common::journal_segments(&journal) == 1
    })
    .await;
    engine.engine.shutdown().await;
}
