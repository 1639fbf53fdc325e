//! A fault-injecting AWS endpoint for the storage sink tests, and helpers those tests share.
//!
//! [`AwsFaultServer`] listens on a free loopback port and speaks the AWS JSON 1.0 protocol of
//! the operations the sinks use: Timestream's `WriteRecords` and `DescribeEndpoints`, and
//! DynamoDB's `BatchWriteItem` and `PutItem`. It counts requests and records per operation,
//! keeps what it accepted, and responds to each request from a per-operation queue of
//! scripted responses, or else as the service would. It emulates these service rules:
//!
//! - Timestream: at most 100 records per request. A record with the dimensions, measure name
//!   and time of a stored one but other values replaces it only with a higher version, and is
//!   otherwise rejected with `ExistingVersion`. An identical record is accepted again.
//! - DynamoDB: at most 25 items per `BatchWriteItem`, no key twice in one request, and a
//!   `PutItem` condition, if any, is taken as "missing or of a lower `version`".
//!
//! Requests that break a rule the sinks must follow are also listed in
//! [`AwsFaultServer::violations`]. Signatures are not checked.

mod dynamodb;
pub mod harness;
mod timestream;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TIMESTREAM_NAMESPACE: &str = "com.amazonaws.timestream.v20181101";
const DYNAMODB_NAMESPACE: &str = "com.amazonaws.dynamodb.v20120810";
const TIMESTREAM_MAX_RECORDS: usize = 100;
const DYNAMODB_MAX_BATCH_ITEMS: usize = 25;

/// An operation the server handles, named by its `X-Amz-Target` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    WriteRecords,
    DescribeEndpoints,
    BatchWriteItem,
    PutItem,
}

impl Operation {
    fn from_target(target: &str) -> Option<Self> {
        match target {
            "Timestream_20181101.WriteRecords" => Some(Self::WriteRecords),
            "Timestream_20181101.DescribeEndpoints" => Some(Self::DescribeEndpoints),
            "DynamoDB_20120810.BatchWriteItem" => Some(Self::BatchWriteItem),
            "DynamoDB_20120810.PutItem" => Some(Self::PutItem),
            _ => None,
        }
    }

    fn namespace(self) -> &'static str {
        match self {
            Self::WriteRecords | Self::DescribeEndpoints => TIMESTREAM_NAMESPACE,
            Self::BatchWriteItem | Self::PutItem => DYNAMODB_NAMESPACE,
        }
    }
}

/// A scripted response to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// An AWS error: the status, an `x-amzn-ErrorType` header, and a JSON body with `__type`
    /// and `message`. Nothing of the request is stored.
    Error {
        status: u16,
        error_type: &'static str,
        message: String,
    },
    /// A 503 with a plain-text body and no AWS error type, as a load balancer returns.
    PlainUnavailable,
    /// Timestream's 419 `RejectedRecordsException` naming these records; the other records
    /// of the request are stored.
    RejectedRecords(Vec<Rejection>),
    /// A 200 `BatchWriteItem` response returning the items at these positions of the request
    /// in `UnprocessedItems`; the others are stored.
    Unprocessed(Vec<usize>),
}

impl Scripted {
    fn error(status: u16, error_type: &'static str, message: &str) -> Self {
        Self::Error {
            status,
            error_type,
            message: message.to_owned(),
        }
    }

    /// Timestream's `ThrottlingException`, HTTP 429.
    pub fn timestream_throttling() -> Self {
        Self::error(429, "ThrottlingException", "Rate exceeded")
    }

    /// Timestream's `InternalServerException`, HTTP 500.
    pub fn timestream_internal_error() -> Self {
        Self::error(
            500,
            "InternalServerException",
            "Timestream was unable to process this request",
        )
    }

    /// Returns a `ValidationException`, HTTP 400, of either service.
    pub fn validation(message: &str) -> Self {
        Self::error(400, "ValidationException", message)
    }

    /// Timestream's `AccessDeniedException`, HTTP 403.
    pub fn timestream_access_denied() -> Self {
        Self::error(
            403,
            "AccessDeniedException",
            "You are not authorized to perform this action",
        )
    }

    /// DynamoDB's `ProvisionedThroughputExceededException`, HTTP 400.
    pub fn provisioned_throughput_exceeded() -> Self {
        Self::error(
            400,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded",
        )
    }

    /// DynamoDB's `ThrottlingException`, HTTP 400.
    pub fn dynamodb_throttling() -> Self {
        Self::error(
            400,
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput",
        )
    }

    /// DynamoDB's `InternalServerError`, HTTP 500.
    pub fn dynamodb_internal_error() -> Self {
        Self::error(500, "InternalServerError", "Internal server error")
    }

    /// DynamoDB's `ConditionalCheckFailedException`, HTTP 400.
    pub fn conditional_check_failed() -> Self {
        Self::error(
            400,
            "ConditionalCheckFailedException",
            "The conditional request failed",
        )
    }
}

/// One record of a scripted `RejectedRecordsException`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Index of the record in the request.
    pub index: usize,
    pub reason: String,
    pub existing_version: Option<i64>,
}

/// How the server is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The port is closed: connections are refused, and open ones are closed once idle.
    Refuse,
    /// Every request gets a plain 503.
    Unavailable,
}

/// A Timestream record the server accepted, with the request's `CommonAttributes` applied.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub dimensions: BTreeMap<String, String>,
    pub measure_name: String,
    /// Device time in milliseconds.
    pub time: i64,
    pub version: i64,
    /// Measure values by name, each with its type and its value as sent.
    pub measures: BTreeMap<String, (String, String)>,
}

impl StoredRecord {
    /// Returns the `device_id` dimension.
    pub fn device(&self) -> &str {
        self.dimensions.get("device_id").map_or("", String::as_str)
    }

    /// Returns the `DOUBLE` measure `name` as a number.
    pub fn number(&self, name: &str) -> Option<f64> {
        let (kind, value) = self.measures.get(name)?;
        assert_eq!(kind, "DOUBLE", "measure `{name}` is not a DOUBLE");
        value.parse().ok()
    }

    fn key(&self) -> (BTreeMap<String, String>, String, i64) {
        (
            self.dimensions.clone(),
            self.measure_name.clone(),
            self.time,
        )
    }
}

/// A DynamoDB item the server stored, in the wire format of attribute values.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    pub device_id: String,
    pub version: u64,
    pub item: Value,
}

/// Everything the server counted and stored.
#[derive(Default)]
struct Ledger {
    scripts: HashMap<Operation, VecDeque<Scripted>>,
    requests: HashMap<Operation, usize>,
    records: HashMap<Operation, usize>,
    request_sizes: HashMap<Operation, Vec<usize>>,
    /// WriteRecords requests whose `CommonAttributes` carry the dimensions.
    common_dimension_requests: usize,
    timestream_accepted: Vec<StoredRecord>,
    timestream_table: BTreeMap<(BTreeMap<String, String>, String, i64), StoredRecord>,
    dynamodb_writes: Vec<StoredItem>,
    dynamodb_items: BTreeMap<String, StoredItem>,
    violations: Vec<String>,
    unavailable: bool,
}

struct Shared {
    addr: SocketAddr,
    ledger: Mutex<Ledger>,
}

/// The fault-injecting AWS server; it stops when dropped.
pub struct AwsFaultServer {
    shared: Arc<Shared>,
    outage: watch::Sender<Option<Outage>>,
    task: JoinHandle<()>,
}

impl Drop for AwsFaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// === impl AwsFaultServer ===

impl AwsFaultServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port is available");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            addr,
            ledger: Mutex::new(Ledger::default()),
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (outage, outage_changes) = watch::channel(None);
        let task = tokio::spawn(serve(listener, addr, router, outage_changes));
        Self {
            shared,
            outage,
            task,
        }
    }

    /// Returns the endpoint URL for the SDK, such as `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Queues `answer` for the next request of `operation` that has no response queued.
    pub fn script(&self, operation: Operation, answer: Scripted) {
        self.script_times(operation, 1, answer);
    }

    /// Queues `answer` for the next `times` requests of `operation`.
    pub fn script_times(&self, operation: Operation, times: usize, answer: Scripted) {
        let mut ledger = self.shared.ledger.lock();
        let queue = ledger.scripts.entry(operation).or_default();
        queue.extend(std::iter::repeat_n(answer, times));
    }

    /// Returns the number of scripted responses of `operation` not used yet.
    pub fn scripts_left(&self, operation: Operation) -> usize {
        self.shared
            .ledger
            .lock()
            .scripts
            .get(&operation)
            .map_or(0, VecDeque::len)
    }

    /// Starts or ends an outage; `None` brings the server back.
    pub fn set_outage(&self, outage: Option<Outage>) {
        self.shared.ledger.lock().unavailable = outage == Some(Outage::Unavailable);
        self.outage.send_replace(outage);
    }

    /// Starts an outage that ends after `duration`, unless another outage replaced it by
    /// then.
    pub fn outage_for(&self, outage: Outage, duration: Duration) {
        self.set_outage(Some(outage));
        let shared = Arc::clone(&self.shared);
        let sender = self.outage.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            let mut ledger = shared.ledger.lock();
            sender.send_if_modified(|current| {
                if *current != Some(outage) {
                    return false;
                }
                *current = None;
                ledger.unavailable = false;
                true
            });
        });
    }

    /// Returns the number of requests of `operation` received, whatever their response.
    pub fn requests(&self, operation: Operation) -> usize {
        let ledger = self.shared.ledger.lock();
        ledger.requests.get(&operation).copied().unwrap_or(0)
    }

    /// Returns the number of records (Timestream) or items (DynamoDB) in requests of
    /// `operation`, whatever their response.
    pub fn records(&self, operation: Operation) -> usize {
        let ledger = self.shared.ledger.lock();
        ledger.records.get(&operation).copied().unwrap_or(0)
    }

    /// Returns the number of records or items of each request of `operation`, in order.
    pub fn request_sizes(&self, operation: Operation) -> Vec<usize> {
        let ledger = self.shared.ledger.lock();
        ledger
            .request_sizes
            .get(&operation)
            .cloned()
            .unwrap_or_default()
    }

    /// Returns the number of WriteRecords requests whose `CommonAttributes` carry dimensions.
    pub fn common_dimension_requests(&self) -> usize {
        self.shared.ledger.lock().common_dimension_requests
    }

    /// Returns every Timestream record accepted, in order, identical rewrites included.
    pub fn timestream_accepted(&self) -> Vec<StoredRecord> {
        self.shared.ledger.lock().timestream_accepted.clone()
    }

    /// Returns the Timestream table: the current record of each dimensions, measure name and
    /// time.
    pub fn timestream_table(&self) -> Vec<StoredRecord> {
        let ledger = self.shared.ledger.lock();
        ledger.timestream_table.values().cloned().collect()
    }

    /// Returns every DynamoDB item written, in order.
    pub fn dynamodb_writes(&self) -> Vec<StoredItem> {
        self.shared.ledger.lock().dynamodb_writes.clone()
    }

    /// Returns the stored DynamoDB items by device id.
    pub fn dynamodb_items(&self) -> BTreeMap<String, StoredItem> {
        self.shared.ledger.lock().dynamodb_items.clone()
    }

    /// Returns the rules of the services the requests broke, one line each.
    pub fn violations(&self) -> Vec<String> {
        self.shared.ledger.lock().violations.clone()
    }
}

/// Serves until aborted, closing the port while an [`Outage::Refuse`] lasts.
async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    mut outage: watch::Receiver<Option<Outage>>,
) {
    let mut listener = Some(listener);
    loop {
        let current = match listener.take() {
            Some(listener) => listener,
            None => rebind(addr).await,
        };
        let mut refused = outage.clone();
        let refusal = async move {
            let _ = refused
                .wait_for(|outage| *outage == Some(Outage::Refuse))
                .await;
        };
        let _ = axum::serve(current, router.clone())
            .with_graceful_shutdown(refusal)
            .await;
        let _ = outage
            .wait_for(|outage| *outage != Some(Outage::Refuse))
            .await;
    }
}

/// Binds `addr` again after an outage, waiting while the port is still held.
async fn rebind(addr: SocketAddr) -> TcpListener {
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let Some(operation) = Operation::from_target(target) else {
        let message = format!(
            "the fault server does not handle X-Amz-Target `{target}`; add it to `Operation`"
        );
        return plain(StatusCode::BAD_REQUEST, &message);
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(error) => {
            let message = format!("the request body is not JSON: {error}");
            return aws_error(
                operation,
                400,
                "SerializationException",
                &message,
                json!({}),
            );
        }
    };

    let mut ledger = shared.ledger.lock();
    *ledger.requests.entry(operation).or_default() += 1;
    if ledger.unavailable {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    }
    let scripted = ledger
        .scripts
        .get_mut(&operation)
        .and_then(VecDeque::pop_front);
    match operation {
        Operation::DescribeEndpoints => {
            let endpoints = json!({
                "Endpoints": [{"Address": shared.addr.to_string(), "CachePeriodInMinutes": 1440}]
            });
            answer_scripted(operation, scripted).unwrap_or_else(|| success(&endpoints))
        }
        Operation::WriteRecords => ledger.write_records(&body, scripted),
        Operation::BatchWriteItem => ledger.batch_write_item(&body, scripted),
        Operation::PutItem => ledger.put_item(&body, scripted),
    }
}

impl Ledger {
    /// Counts one request of `operation` carrying `records` records or items.
    fn count(&mut self, operation: Operation, records: usize) {
        *self.records.entry(operation).or_default() += records;
        self.request_sizes
            .entry(operation)
            .or_default()
            .push(records);
    }
}

/// Returns the response of a scripted error, or `None` for scripts the operation applies.
fn answer_scripted(operation: Operation, scripted: Option<Scripted>) -> Option<Response> {
    match scripted? {
        Scripted::Error {
            status,
            error_type,
            message,
        } => Some(aws_error(
            operation,
            status,
            error_type,
            &message,
            json!({}),
        )),
        Scripted::PlainUnavailable => Some(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
        )),
        Scripted::RejectedRecords(_) | Scripted::Unprocessed(_) => None,
    }
}

// === Responses ===

fn success(body: &Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    set_aws_headers(response.headers_mut());
    response
}

/// Builds an AWS JSON 1.0 error: the status, `x-amzn-ErrorType`, and `__type` and `message`
/// in the body with the fields of `extra`.
fn aws_error(
    operation: Operation,
    status: u16,
    error_type: &str,
    message: &str,
    extra: Value,
) -> Response {
    let mut body = json!({
        "__type": format!("{}#{error_type}", operation.namespace()),
        "message": message,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let status = StatusCode::from_u16(status).expect("scripted status is a valid HTTP status");
    let mut response = (status, body.to_string()).into_response();
    set_aws_headers(response.headers_mut());
    if let Ok(value) = HeaderValue::from_str(error_type) {
        response.headers_mut().insert("x-amzn-ErrorType", value);
    }
    response
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, text.to_owned()).into_response()
}

fn set_aws_headers(headers: &mut HeaderMap) {
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    headers.insert(
        "x-amzn-RequestId",
        HeaderValue::from_static("00000000-0000-4000-8000-000000000000"),
    );
}
