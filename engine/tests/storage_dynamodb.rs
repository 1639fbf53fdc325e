//! The DynamoDB shadow store against dynalite (`VALMETAL_TEST_DYNALITE_URL`) and against the
//! fault server: both write modes, version conditions, partial batches, throttling, item
//! size and reading every document back.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use common::aws_fault::harness::{counter, dead_letters, emulator_url, metrics_handle};
use common::aws_fault::{AwsFaultServer, Operation, Scripted};
use parking_lot::Mutex;
use valmetal_actors::rules::{Alarm, AlarmInput, AlarmState, OperatorAction, Severity};
use valmetal_actors::{DeviceDocument, DeviceId, ReportedValue, Value};
use valmetal_engine::sinks::aws::AwsConfig;
use valmetal_engine::sinks::backoff::Backoff;
use valmetal_engine::sinks::batcher::DrainReport;
use valmetal_engine::sinks::dead_letter::DeadLetter;
use valmetal_engine::sinks::dynamodb::{DynamoConfig, DynamoShadowStore, DynamoWrite};
use valmetal_engine::sinks::shadows::{DocumentSource, ShadowEntry, ShadowSink, ShadowStore};
use valmetal_engine::sinks::{BatchOutcome, BatcherConfig, SinkError, spawn};

const SUPERSEDED_TOTAL: &str = "telemetry_sink_records_superseded_total";
const REJECTED_TOTAL: &str = "telemetry_sink_records_rejected_total";

// === Fixtures ===

/// The current documents of the devices, as the device registry would hand them out.
#[derive(Default)]
struct Documents(Mutex<HashMap<DeviceId, DeviceDocument>>);

impl Documents {
    fn set(&self, document: DeviceDocument) {
        self.0.lock().insert(document.device_id.clone(), document);
    }
}

impl DocumentSource for Documents {
    async fn document(&self, device: &DeviceId) -> Option<DeviceDocument> {
        self.0.lock().get(device).cloned()
    }
}

/// A store under a test's own name that records the size of every `put` call.
struct Observed {
    name: &'static str,
    inner: DynamoShadowStore,
    puts: Arc<Mutex<Vec<usize>>>,
}

impl ShadowStore for Observed {
    fn name(&self) -> &'static str {
        self.name
    }

    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }

    async fn put(&self, documents: &[DeviceDocument]) -> Result<BatchOutcome, SinkError> {
        self.puts.lock().push(documents.len());
        self.inner.put(documents).await
    }

    async fn load_all(&self) -> Result<Vec<DeviceDocument>, SinkError> {
        self.inner.load_all().await
    }
}

/// Returns a table name no other test or run uses.
fn unique_table(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let number = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("valmetal-{test}-{}-{nanos}-{number}", std::process::id())
}

fn dynamo_config(url: String, table: String, write: DynamoWrite) -> DynamoConfig {
    DynamoConfig {
        table,
        aws: AwsConfig {
            region: "us-east-1".to_owned(),
            endpoint_url: Some(url),
        },
        write,
    }
}

/// Returns a store on a fresh dynalite table.
async fn dynalite_store(test: &str, write: DynamoWrite) -> (DynamoConfig, DynamoShadowStore) {
    let url = emulator_url("VALMETAL_TEST_DYNALITE_URL");
    let config = dynamo_config(url, unique_table(test), write);
    let store = DynamoShadowStore::connect(&config).await;
    store.ensure_table().await.unwrap();
    (config, store)
}

/// Short backoff, because real sockets need real time, and a flush by age long enough that
/// batches hold every device marked before shutdown.
fn fast_batcher() -> BatcherConfig {
    BatcherConfig {
        max_records: 1000,
        max_age: Duration::from_secs(2),
        backoff: Backoff {
            first: Duration::from_millis(5),
            max: Duration::from_millis(50),
        },
        drain_timeout: Duration::from_secs(8),
        ..BatcherConfig::default()
    }
}

/// Marks every device of `documents` as changed and shuts the sink down, which writes them.
async fn write_documents(
    store: Observed,
    documents: &[DeviceDocument],
    dead_letter_dir: &Path,
) -> DrainReport {
    // The recorder must be in place before the sink counts anything.
    metrics_handle();
    let source = Arc::new(Documents::default());
    for document in documents {
        source.set(document.clone());
    }
    let sink = ShadowSink::new(store, source);
    let task = spawn(
        sink,
        fast_batcher(),
        DeadLetter::new(dead_letter_dir.to_owned()),
    );
    for document in documents {
        let mark = ShadowEntry::mark(document.device_id.clone());
        task.queue().push(mark, None).await.unwrap();
    }
    task.shutdown().await
}

fn observed(name: &'static str, inner: DynamoShadowStore) -> (Observed, Arc<Mutex<Vec<usize>>>) {
    let puts = Arc::new(Mutex::new(Vec::new()));
    let store = Observed {
        name,
        inner,
        puts: Arc::clone(&puts),
    };
    (store, puts)
}

fn reported(value: Value, ts: i64) -> ReportedValue {
    ReportedValue { value, ts }
}

fn document(device: &str, version: u64) -> DeviceDocument {
    DeviceDocument {
        device_id: DeviceId::parse(device).unwrap(),
        device_type: "feed_bin".to_owned(),
        farm: Some("odrc".to_owned()),
        version,
        reported: BTreeMap::from([
            (
                "end_weight_kg".to_owned(),
                reported(Value::Number(412.25), 1_640_995_472_000),
            ),
            (
                "diet".to_owned(),
                reported(Value::Text(Arc::from("lactating")), 1_640_995_472_000),
            ),
            (
                "door_open".to_owned(),
                reported(Value::Bool(false), 1_640_995_470_000),
            ),
        ]),
        desired: BTreeMap::new(),
        newest_ts: Some(1_640_995_472_000),
        last_seen: Some(1_640_995_473_000),
        seq_highest: Some(u64::MAX - 1),
        seq_bits: Some(0b1011),
        alarms: Vec::new(),
        taken_at: 1_640_995_474_000,
        usage: Default::default(),
    }
}

/// Returns a document with a desired value and two alarms, one acknowledged and cleared.
fn document_with_alarms(device: &str, version: u64) -> DeviceDocument {
    let mut document = document(device, version);
    document.desired.insert(
        "target_weight_kg".to_owned(),
        reported(Value::Number(500.0), 1_640_995_400_000),
    );
    let device_id = document.device_id.clone();
    let alarm = |rule: &str, state: AlarmState| Alarm {
        id: Arc::from(format!("{device}/{rule}/1640995472000")),
        device: device_id.clone(),
        rule: Arc::from(rule),
        severity: Severity::Major,
        state,
        key: Some(Arc::from("end_weight_kg")),
        value: Some(Value::Number(1.5)),
        message: format!("{rule} on {device}"),
        raised_at: 1_640_995_472_100,
        cleared_at: (state == AlarmState::Cleared).then_some(1_640_995_480_000),
        frame_ts: Some(1_640_995_472_000),
        cleared_frame_ts: None,
        rule_version: Arc::from("sha256:0123abcd"),
        inputs: vec![AlarmInput {
            key: Arc::from("end_weight_kg"),
            value: Value::Number(1.5),
            ts: 1_640_995_472_000,
        }],
        flapping: false,
        acknowledged: Some(OperatorAction {
            by: Arc::from("operator@example.test"),
            at: 1_640_995_475_000,
        }),
        cleared_by: None,
        shelved: None,
        shelved_until: None,
    };
    document.alarms = vec![
        alarm("bin_low", AlarmState::Active),
        alarm("offline", AlarmState::Cleared),
    ];
    document
}

fn by_device(documents: Vec<DeviceDocument>) -> BTreeMap<String, DeviceDocument> {
    documents
        .into_iter()
        .map(|document| (document.device_id.to_string(), document))
        .collect()
}

// === Against dynalite ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_batch_writes_26_in_two_requests() {
    let (config, store) = dynalite_store("batch26", DynamoWrite::Batch).await;
    let (store, puts) = observed("ddb_batch26", store);
    let documents: Vec<_> = (1..=26)
        .map(|n| document(&format!("feedbin-{n:03}"), n))
        .collect();
    let dir = tempfile::tempdir().unwrap();

    let report = write_documents(store, &documents, dir.path()).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(
        *puts.lock(),
        [25, 1],
        "one BatchWriteItem of 25 and one of 1"
    );
    let loaded = DynamoShadowStore::connect(&config)
        .await
        .load_all()
        .await
        .unwrap();
    assert_eq!(loaded.len(), 26);
    assert_eq!(by_device(loaded), by_device(documents));
    assert!(dead_letters(dir.path(), "ddb_batch26").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_conditional_write_keeps_newer_version() {
    let (config, store) = dynalite_store("conditional", DynamoWrite::Conditional).await;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = observed("ddb_conditional_v5", store);
    write_documents(store, &[document("feedbin-001", 5)], dir.path()).await;

    let mut older = document("feedbin-001", 3);
    older.reported.clear();
    let newer_elsewhere = document("feedbin-002", 1);
    let (store, _) = observed(
        "ddb_conditional_v3",
        DynamoShadowStore::connect(&config).await,
    );
    let report = write_documents(store, &[older, newer_elsewhere], dir.path()).await;

    assert_eq!(report.unwritten, 0);
    let loaded = by_device(
        DynamoShadowStore::connect(&config)
            .await
            .load_all()
            .await
            .unwrap(),
    );
    assert_eq!(
        loaded["feedbin-001"],
        document("feedbin-001", 5),
        "v3 must not replace v5"
    );
    assert_eq!(loaded["feedbin-002"].version, 1);
    assert_eq!(
        counter(SUPERSEDED_TOTAL, &[("sink", "ddb_conditional_v3")]),
        1
    );
    assert!(dead_letters(dir.path(), "ddb_conditional_v3").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_load_all_round_trips_alarms_over_pages() {
    let (config, store) = dynalite_store("roundtrip", DynamoWrite::Batch).await;
    // 30 documents of about 40 KB: more than one 1 MB Scan page.
    let documents: Vec<_> = (1..=30)
        .map(|n| {
            let mut document = document_with_alarms(&format!("feedbin-{n:03}"), n);
            let note = Value::Text(Arc::from("x".repeat(40_000)));
            document
                .reported
                .insert("note".to_owned(), reported(note, 1_640_995_472_000));
            document
        })
        .collect();
    let (store, _) = observed("ddb_roundtrip", store);
    let dir = tempfile::tempdir().unwrap();
    write_documents(store, &documents, dir.path()).await;

    let reader = DynamoShadowStore::connect(&config).await;
    let first_page = reader
        .client()
        .scan()
        .table_name(&config.table)
        .send()
        .await
        .unwrap();
    let loaded = reader.load_all().await.unwrap();

    assert!(
        first_page.last_evaluated_key().is_some(),
        "the table spans several Scan pages"
    );
    assert_eq!(loaded.len(), 30);
    assert_eq!(by_device(loaded), by_device(documents));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_load_all_skips_unparsable_items() {
    let (config, store) = dynalite_store("unparsable", DynamoWrite::Conditional).await;
    let (store, _) = observed("ddb_unparsable", store);
    let dir = tempfile::tempdir().unwrap();
    write_documents(store, &[document("feedbin-001", 1)], dir.path()).await;
    let reader = DynamoShadowStore::connect(&config).await;
    reader
        .client()
        .put_item()
        .table_name(&config.table)
        .item("device_id", AttributeValue::S("feedbin-broken".to_owned()))
        .item("version", AttributeValue::S("not a number".to_owned()))
        .send()
        .await
        .unwrap();

    let loaded = reader.load_all().await.unwrap();

    assert_eq!(loaded, [document("feedbin-001", 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_item_over_limit_is_dead_lettered() {
    for (write, name) in [
        (DynamoWrite::Batch, "ddb_large_batch"),
        (DynamoWrite::Conditional, "ddb_large_conditional"),
    ] {
        let (config, store) = dynalite_store("large", write).await;
        let mut large = document("feedbin-003", 1);
        let note = Value::Text(Arc::from("x".repeat(420 * 1024)));
        large.reported.insert("note".to_owned(), reported(note, 0));
        let documents = [
            document("feedbin-001", 1),
            large,
            document("feedbin-002", 1),
        ];
        let (store, _) = observed(name, store);
        let dir = tempfile::tempdir().unwrap();

        let report = write_documents(store, &documents, dir.path()).await;

        assert_eq!(report.unwritten, 0, "{name}");
        let loaded = by_device(
            DynamoShadowStore::connect(&config)
                .await
                .load_all()
                .await
                .unwrap(),
        );
        assert_eq!(
            loaded.keys().collect::<Vec<_>>(),
            ["feedbin-001", "feedbin-002"],
            "{name}"
        );
        let lines = dead_letters(dir.path(), name);
        assert_eq!(lines.len(), 1, "{name}");
        assert_eq!(lines[0]["reason"], "item_too_large");
        assert_eq!(lines[0]["record"]["device"], "feedbin-003");
        assert_eq!(
            counter(
                REJECTED_TOTAL,
                &[("sink", name), ("reason", "item_too_large")]
            ),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_ensure_table_rejects_other_key() {
    let url = emulator_url("VALMETAL_TEST_DYNALITE_URL");
    let config = dynamo_config(url, unique_table("otherkey"), DynamoWrite::Conditional);
    let store = DynamoShadowStore::connect(&config).await;
    store
        .client()
        .create_table()
        .table_name(&config.table)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();

    let error = store.ensure_table().await.unwrap_err();

    assert!(error.message.contains("device_id"), "{error}");
    let (_, fresh) = dynalite_store("twice", DynamoWrite::Conditional).await;
    fresh.ensure_table().await.unwrap();
}

// === Against the fault server ===

async fn fault_store(server: &AwsFaultServer, write: DynamoWrite) -> DynamoShadowStore {
    let config = dynamo_config(server.url(), "devices".to_owned(), write);
    DynamoShadowStore::connect(&config).await
}

fn devices(count: u64) -> Vec<DeviceDocument> {
    (1..=count)
        .map(|n| document(&format!("feedbin-{n:03}"), n))
        .collect()
}

fn assert_all_stored(server: &AwsFaultServer, documents: &[DeviceDocument]) {
    let items = server.dynamodb_items();
    assert_eq!(items.len(), documents.len());
    for document in documents {
        let item = &items[document.device_id.as_str()];
        assert_eq!(item.version, document.version);
    }
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_unprocessed_items_are_retried_until_written() {
    let server = AwsFaultServer::start().await;
    server.script(Operation::BatchWriteItem, Scripted::Unprocessed(vec![1, 3]));
    server.script(Operation::BatchWriteItem, Scripted::Unprocessed(vec![0]));
    let (store, _) = observed(
        "ddb_unprocessed",
        fault_store(&server, DynamoWrite::Batch).await,
    );
    let documents = devices(10);
    let dir = tempfile::tempdir().unwrap();

    let report = write_documents(store, &documents, dir.path()).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.request_sizes(Operation::BatchWriteItem), [10, 2, 1]);
    assert_all_stored(&server, &documents);
    assert_eq!(
        server.dynamodb_writes().len(),
        10,
        "each document is written once"
    );
    assert!(dead_letters(dir.path(), "ddb_unprocessed").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_throttling_is_retried() {
    let server = AwsFaultServer::start().await;
    server.script(
        Operation::BatchWriteItem,
        Scripted::provisioned_throughput_exceeded(),
    );
    server.script(Operation::BatchWriteItem, Scripted::dynamodb_throttling());
    let (store, _) = observed(
        "ddb_throttled_batch",
        fault_store(&server, DynamoWrite::Batch).await,
    );
    let documents = devices(5);
    let dir = tempfile::tempdir().unwrap();

    let report = write_documents(store, &documents, dir.path()).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.requests(Operation::BatchWriteItem), 3);
    assert_all_stored(&server, &documents);

    let server = AwsFaultServer::start().await;
    server.script_times(
        Operation::PutItem,
        2,
        Scripted::provisioned_throughput_exceeded(),
    );
    let store = fault_store(&server, DynamoWrite::Conditional).await;
    let (store, _) = observed("ddb_throttled_conditional", store);

    let report = write_documents(store, &documents, dir.path()).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.requests(Operation::PutItem), 5 + 2);
    assert_all_stored(&server, &documents);
    assert!(dead_letters(dir.path(), "ddb_throttled_conditional").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_server_errors_are_retried() {
    let server = AwsFaultServer::start().await;
    server.script(
        Operation::BatchWriteItem,
        Scripted::dynamodb_internal_error(),
    );
    server.script(Operation::BatchWriteItem, Scripted::PlainUnavailable);
    let (store, _) = observed(
        "ddb_server_errors",
        fault_store(&server, DynamoWrite::Batch).await,
    );
    let documents = devices(3);
    let dir = tempfile::tempdir().unwrap();

    let report = write_documents(store, &documents, dir.path()).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.requests(Operation::BatchWriteItem), 3);
    assert_all_stored(&server, &documents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_validation_error_dead_letters_batch() {
    let server = AwsFaultServer::start().await;
    server.script(
        Operation::BatchWriteItem,
        Scripted::validation("One or more parameter values were invalid"),
    );
    let (store, _) = observed(
        "ddb_validation",
        fault_store(&server, DynamoWrite::Batch).await,
    );
    let documents = devices(4);
    let dir = tempfile::tempdir().unwrap();

    let report = write_documents(store, &documents, dir.path()).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.requests(Operation::BatchWriteItem), 1);
    assert!(server.dynamodb_items().is_empty());
    let lines = dead_letters(dir.path(), "ddb_validation");
    assert_eq!(lines.len(), 4);
    assert!(
        lines.iter().all(|line| line["reason"] == "invalid_request"),
        "{lines:?}"
    );
    assert_eq!(
        counter(
            REJECTED_TOTAL,
            &[("sink", "ddb_validation"), ("reason", "invalid_request")]
        ),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_failed_condition_counts_superseded() {
    let server = AwsFaultServer::start().await;
    server.script(Operation::PutItem, Scripted::conditional_check_failed());
    let store = fault_store(&server, DynamoWrite::Conditional).await;
    let (store, _) = observed("ddb_condition_scripted", store);
    let dir = tempfile::tempdir().unwrap();

    let report = write_documents(store, &devices(1), dir.path()).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(
        server.requests(Operation::PutItem),
        1,
        "a superseded document is not retried"
    );
    assert!(server.dynamodb_items().is_empty());
    assert_eq!(
        counter(SUPERSEDED_TOTAL, &[("sink", "ddb_condition_scripted")]),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_batch_size_error_falls_back_to_puts() {
    let server = AwsFaultServer::start().await;
    server.script(
        Operation::BatchWriteItem,
        Scripted::validation("Item size has exceeded the maximum allowed size"),
    );
    let (store, _) = observed(
        "ddb_size_fallback",
        fault_store(&server, DynamoWrite::Batch).await,
    );
    let documents = devices(3);
    let dir = tempfile::tempdir().unwrap();

    let report = write_documents(store, &documents, dir.path()).await;

    assert_eq!(report.unwritten, 0);
    assert_eq!(server.requests(Operation::BatchWriteItem), 1);
    assert_eq!(
        server.requests(Operation::PutItem),
        3,
        "each item is written alone"
    );
    assert_all_stored(&server, &documents);
    assert!(dead_letters(dir.path(), "ddb_size_fallback").is_empty());
}
