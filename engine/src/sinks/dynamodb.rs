//! The DynamoDB shadow store: one item per device, keyed by `device_id`, holding the
//! [`DeviceDocument`] as readable DynamoDB maps and lists.
//!
//! Documents are written in one of two [modes](DynamoWrite): one conditional `PutItem` per
//! document, which never replaces a newer version, or `BatchWriteItem` requests of up to 25
//! documents, which cost fewer requests but cannot be conditional. Queueing, coalescing per
//! device, retries and dead-lettering belong to the [shadow sink](super::shadows) and the
//! [batcher](super::batcher).

pub mod items;
mod table;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tracing::{error, info, warn};
use valmetal_actors::DeviceDocument;

pub use items::{KEY_ATTRIBUTE, MAX_ITEM_BYTES, VERSION_ATTRIBUTE, item_bytes};

use self::items::{Item, PreparedItem};
use super::aws::{self, AwsConfig, AwsSetupError};
use super::shadows::ShadowStore;
use super::{BatchOutcome, ErrorClass, Refusal, SinkError};

/// Name of the store in metrics, logs and the dead-letter file.
const STORE_NAME: &str = "dynamodb";
/// Items one `BatchWriteItem` request may carry at most (a DynamoDB limit).
pub const MAX_BATCH_WRITE_ITEMS: usize = 25;
/// Documents one `put` call takes in conditional mode.
const CONDITIONAL_DOCUMENTS_PER_CALL: usize = 100;
/// Conditional `PutItem` requests in flight at once, per `put` call.
const CONDITIONAL_PUTS_IN_FLIGHT: usize = 16;
/// Condition of a conditional write: the item is new, or not newer than the document. An
/// equal version is written: alarm and presence changes keep the shadow version, and a
/// replayed document rewrites itself.
const NEWER_CONDITION: &str = "attribute_not_exists(device_id) OR #version <= :version";
/// Items failing to parse in `load_all` are logged one by one up to this many, then counted.
const LOGGED_UNREADABLE_ITEMS: usize = 10;

/// Settings of the DynamoDB shadow store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamoConfig {
    /// Table of device documents, with the partition key `device_id` (string) and no sort
    /// key. Default `valmetal-device-state`.
    pub table: String,
    /// Region, endpoint and credentials.
    pub aws: AwsConfig,
    /// Write mode of documents. Default `conditional`.
    pub write: DynamoWrite,
}

impl Default for DynamoConfig {
    fn default() -> Self {
        Self {
            table: "valmetal-device-state".to_owned(),
            aws: AwsConfig::default(),
            write: DynamoWrite::default(),
        }
    }
}

/// Write mode of the DynamoDB store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DynamoWrite {
    /// One `PutItem` per document, on condition that the stored item is missing or of a
    /// lower version, up to 16 at once. A stored newer version is never replaced.
    #[default]
    Conditional,
    /// `BatchWriteItem` requests of up to 25 documents: about 25 times fewer requests, but
    /// DynamoDB cannot apply a condition to them, so the last write wins. One engine never
    /// writes a device twice at once, so this is safe while a single engine writes the table.
    /// With several engines, an older document may replace a newer one.
    Batch,
}

/// The shadow store writing device documents to a DynamoDB table.
pub struct DynamoShadowStore {
    client: Client,
    table: Arc<str>,
    write: DynamoWrite,
}

// === impl DynamoShadowStore ===

impl DynamoShadowStore {
    /// Builds the client of `config`.
    pub async fn connect(config: &DynamoConfig) -> Self {
        let sdk_config = aws::sdk_config(&config.aws).await;
        Self {
            client: Client::new(&sdk_config),
            table: Arc::from(config.table.as_str()),
            write: config.write,
        }
    }

    /// Returns the SDK client, for tools and tests that read the table directly.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table with the key `device_id` (string) and on-demand capacity unless it
    /// exists, and waits until it is active.
    ///
    /// # Errors
    ///
    /// Returns [`AwsSetupError`] when a request fails, the table has another key, or it is
    /// not active within 60 seconds.
    pub async fn ensure_table(&self) -> Result<(), AwsSetupError> {
        table::ensure(&self.client, &self.table).await
    }

    /// Writes `prepared` in one `BatchWriteItem` request.
    async fn put_batch(&self, prepared: Vec<PreparedItem>, outcome: &mut BatchOutcome) -> Written {
        if prepared.is_empty() {
            return Written::default();
        }
        let mut requests = Vec::with_capacity(prepared.len());
        for entry in &prepared {
            let put = PutRequest::builder()
                .set_item(Some(entry.item.clone()))
                .build();
            match put {
                Ok(put) => requests.push(WriteRequest::builder().put_request(put).build()),
                Err(error) => {
                    return Written::failed_all(
                        &prepared,
                        &SinkError::permanent("invalid_request", error.to_string()),
                    );
                }
            }
        }

        let sent = self
            .client
            .batch_write_item()
            .request_items(self.table.as_ref(), requests)
            .send()
            .await;
        let output = match sent {
            Ok(output) => output,
            Err(error) => {
                let error = aws::classify(&error);
                if is_item_too_large(&error) {
                    // DynamoDB does not say which item of the batch is too large, so each is
                    // written alone and only that one is refused.
                    warn!(dynamodb.table = %self.table, %error, "A batch contains an item over the 400 KB limit; writing its items one at a time");
                    return self.put_conditional(prepared, outcome).await;
                }
                return Written::failed_all(&prepared, &error);
            }
        };

        let unprocessed = output
            .unprocessed_items()
            .and_then(|tables| tables.get(self.table.as_ref()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let by_device: HashMap<&str, usize> = prepared
            .iter()
            .map(|entry| (entry.device_id.as_str(), entry.index))
            .collect();
        for request in unprocessed {
            let item = request.put_request().map(PutRequest::item);
            match item.and_then(|item| by_device.get(items::device_id_of(item))) {
                Some(&index) => outcome.retry.push(index),
                None => {
                    warn!(dynamodb.table = %self.table, "DynamoDB returned an unprocessed item that the request did not contain; ignoring it")
                }
            }
        }
        Written {
            answered: true,
            failures: Vec::new(),
        }
    }

    /// Writes each of `prepared` with a conditional `PutItem`, several at once.
    async fn put_conditional(
        &self,
        prepared: Vec<PreparedItem>,
        outcome: &mut BatchOutcome,
    ) -> Written {
        let mut written = Written::default();
        // Documents without a result, such as those of a panicked task, are retried.
        let mut outstanding: HashSet<usize> = prepared.iter().map(|entry| entry.index).collect();
        let mut waiting = prepared.into_iter();
        let mut running = JoinSet::new();
        loop {
            while running.len() < CONDITIONAL_PUTS_IN_FLIGHT {
                let Some(entry) = waiting.next() else { break };
                let request = self.conditional_put(entry.item, entry.version);
                let index = entry.index;
                running.spawn(async move { (index, request.send().await) });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            match joined {
                Ok((index, result)) => {
                    outstanding.remove(&index);
                    settle_put(index, result, &mut written, outcome);
                }
                Err(join_error) => {
                    error!(dynamodb.table = %self.table, error = %join_error, "A conditional write task failed; its document is retried");
                }
            }
        }
        outcome.retry.extend(outstanding);
        written
    }

    /// Builds the `PutItem` of `item` that succeeds only over a missing item or one of a
    /// lower version than `version`.
    fn conditional_put(&self, item: Item, version: u64) -> PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression(NEWER_CONDITION)
            .expression_attribute_names("#version", items::VERSION_ATTRIBUTE)
            .expression_attribute_values(":version", AttributeValue::N(version.to_string()))
    }
}

impl ShadowStore for DynamoShadowStore {
    fn name(&self) -> &'static str {
        STORE_NAME
    }

    fn max_batch(&self) -> usize {
        match self.write {
            DynamoWrite::Conditional => CONDITIONAL_DOCUMENTS_PER_CALL,
            DynamoWrite::Batch => MAX_BATCH_WRITE_ITEMS,
        }
    }

    async fn put(&self, documents: &[DeviceDocument]) -> Result<BatchOutcome, SinkError> {
        let mut outcome = BatchOutcome::default();
        let prepared = items::prepare(documents, &mut outcome.refused, &mut outcome.superseded);
        let written = match self.write {
            DynamoWrite::Conditional => self.put_conditional(prepared, &mut outcome).await,
            DynamoWrite::Batch => self.put_batch(prepared, &mut outcome).await,
        };
        written.settle(outcome)
    }

    async fn load_all(&self) -> Result<Vec<DeviceDocument>, SinkError> {
        let mut pages = self
            .client
            .scan()
            .table_name(self.table.as_ref())
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut documents = Vec::new();
        let mut unreadable = 0_usize;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| aws::classify(&error))?;
            for item in page.items() {
                match items::from_item(item.clone()) {
                    Ok(document) => documents.push(document),
                    Err(error) => {
                        unreadable += 1;
                        if unreadable <= LOGGED_UNREADABLE_ITEMS {
                            warn!(%error, device.id = items::device_id_of(item), dynamodb.table = %self.table, "Skipping a stored device document that does not parse");
                        }
                    }
                }
            }
        }
        if unreadable > LOGGED_UNREADABLE_ITEMS {
            warn!(unreadable, dynamodb.table = %self.table, "Skipped stored device documents that do not parse; only the first {LOGGED_UNREADABLE_ITEMS} were logged");
        }
        info!(documents = documents.len(), dynamodb.table = %self.table, "Loaded device documents");
        Ok(documents)
    }
}

// === Outcomes ===

/// The result of the requests of one `put` call, besides what is already in its outcome.
#[derive(Default)]
struct Written {
    /// Whether DynamoDB processed at least one document, a failed condition included.
    answered: bool,
    /// Documents whose request failed, by index, with the classified error.
    failures: Vec<(usize, SinkError)>,
}

impl Written {
    fn failed_all(prepared: &[PreparedItem], error: &SinkError) -> Self {
        Self {
            answered: false,
            failures: prepared
                .iter()
                .map(|entry| (entry.index, error.clone()))
                .collect(),
        }
    }

    /// Returns the outcome of the call, or the error when DynamoDB processed none of the
    /// documents and they all failed alike, so the batcher handles the batch as a whole.
    fn settle(self, mut outcome: BatchOutcome) -> Result<BatchOutcome, SinkError> {
        let decided = !outcome.refused.is_empty()
            || !outcome.superseded.is_empty()
            || !outcome.retry.is_empty();
        if !self.answered
            && !decided
            && let Some((_, first)) = self.failures.first()
            && self
                .failures
                .iter()
                .all(|(_, error)| error.class == first.class)
        {
            return Err(first.clone());
        }
        for (index, error) in self.failures {
            match error.class {
                ErrorClass::Retriable => outcome.retry.push(index),
                ErrorClass::Permanent => outcome.refused.push(Refusal {
                    index,
                    reason: error.reason,
                    detail: error.message,
                }),
            }
        }
        Ok(outcome)
    }
}

/// Records the result of the conditional `PutItem` of document `index`.
fn settle_put(
    index: usize,
    result: Result<PutItemOutput, SdkError<PutItemError>>,
    written: &mut Written,
    outcome: &mut BatchOutcome,
) {
    let sdk_error = match result {
        Ok(_) => {
            written.answered = true;
            return;
        }
        Err(sdk_error) => sdk_error,
    };
    if is_condition_failure(&sdk_error) {
        written.answered = true;
        outcome.superseded.push(index);
        return;
    }
    let error = aws::classify(&sdk_error);
    if is_item_too_large(&error) {
        written.answered = true;
        outcome.refused.push(Refusal {
            index,
            reason: "item_too_large",
            detail: error.message,
        });
    } else {
        written.failures.push((index, error));
    }
}

fn is_condition_failure(error: &SdkError<PutItemError>) -> bool {
    matches!(
        error.as_service_error(),
        Some(PutItemError::ConditionalCheckFailedException(_))
    )
}

/// DynamoDB rejects an item over 400 KB with a `ValidationException` whose message starts
/// with "Item size has exceeded".
fn is_item_too_large(error: &SinkError) -> bool {
    error.reason == "invalid_request" && error.message.contains("Item size has exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_fails_whole_call_when_nothing_answered() {
        let error = SinkError::retriable("throttled", "slow down");
        let written = Written {
            answered: false,
            failures: vec![(0, error.clone()), (1, error.clone())],
        };
        assert_eq!(written.settle(BatchOutcome::default()), Err(error));
    }

    #[test]
    fn settle_splits_failures_when_some_were_answered() {
        let written = Written {
            answered: true,
            failures: vec![
                (0, SinkError::retriable("throttled", "slow down")),
                (2, SinkError::permanent("invalid_request", "bad item")),
            ],
        };
        let outcome = written.settle(BatchOutcome::default()).unwrap();
        assert_eq!(outcome.retry, [0]);
        assert_eq!(outcome.refused.len(), 1);
        assert_eq!(outcome.refused[0].index, 2);
        assert_eq!(outcome.refused[0].reason, "invalid_request");
    }

    #[test]
    fn config_reads_write_mode() {
        let config: DynamoConfig =
            serde_json::from_str(r#"{"table": "devices", "write": "batch"}"#).unwrap();
        assert_eq!(config.table, "devices");
        assert_eq!(config.write, DynamoWrite::Batch);
        assert_eq!(DynamoConfig::default().write, DynamoWrite::Conditional);
        let unknown: Result<DynamoConfig, _> = serde_json::from_str(r#"{"mode": "batch"}"#);
        assert!(unknown.is_err());
    }
}
