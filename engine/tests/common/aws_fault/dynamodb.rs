//! The fault server's `BatchWriteItem` and `PutItem`: DynamoDB's batch limits and the
//! version condition of the shadow store.

use std::collections::{BTreeMap, HashSet};

use axum::response::Response;
use serde_json::{Value, json};

use super::{
    DYNAMODB_MAX_BATCH_ITEMS, Ledger, Operation, Scripted, StoredItem, answer_scripted, aws_error,
    success,
};

impl Ledger {
    pub(super) fn batch_write_item(
        &mut self,
        body: &Value,
        scripted: Option<Scripted>,
    ) -> Response {
        let operation = Operation::BatchWriteItem;
        let mut requests = Vec::new();
        for (table, writes) in body["RequestItems"].as_object().into_iter().flatten() {
            for write in writes.as_array().into_iter().flatten() {
                requests.push((table.clone(), write["PutRequest"]["Item"].clone()));
            }
        }
        self.count(operation, requests.len());
        if requests.len() > DYNAMODB_MAX_BATCH_ITEMS {
            let message = format!("a BatchWriteItem request has {} items", requests.len());
            self.violations.push(message.clone());
            return aws_error(operation, 400, "ValidationException", &message, json!({}));
        }
        let keys: HashSet<String> = requests.iter().map(|(_, item)| device_id(item)).collect();
        if keys.len() < requests.len() {
            let message = "Provided list of item keys contains duplicates";
            self.violations.push(message.to_owned());
            return aws_error(operation, 400, "ValidationException", message, json!({}));
        }
        if let Some(response) = answer_scripted(operation, scripted.clone()) {
            return response;
        }

        let unprocessed: HashSet<usize> = match scripted {
            Some(Scripted::Unprocessed(positions)) => positions.into_iter().collect(),
            _ => HashSet::new(),
        };
        let mut returned: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (position, (table, item)) in requests.into_iter().enumerate() {
            if unprocessed.contains(&position) {
                returned
                    .entry(table)
                    .or_default()
                    .push(json!({"PutRequest": {"Item": item}}));
            } else {
                self.store_item(item);
            }
        }
        success(&json!({ "UnprocessedItems": returned }))
    }

    pub(super) fn put_item(&mut self, body: &Value, scripted: Option<Scripted>) -> Response {
        let operation = Operation::PutItem;
        self.count(operation, 1);
        if let Some(response) = answer_scripted(operation, scripted) {
            return response;
        }
        let item = body["Item"].clone();
        if body.get("ConditionExpression").is_some() {
            let name = body["ExpressionAttributeNames"]["#version"].as_str();
            let bound = body["ExpressionAttributeValues"][":version"]["N"]
                .as_str()
                .and_then(|version| version.parse::<u64>().ok());
            let (Some("version"), Some(bound)) = (name, bound) else {
                let message = format!(
                    "PutItem has a condition other than the shadow store's version check: {body}"
                );
                self.violations.push(message.clone());
                return aws_error(operation, 400, "ValidationException", &message, json!({}));
            };
            let stored = self.dynamodb_items.get(&device_id(&item));
            if stored.is_some_and(|stored| stored.version >= bound) {
                return aws_error(
                    operation,
                    400,
                    "ConditionalCheckFailedException",
                    "The conditional request failed",
                    json!({}),
                );
            }
        }
        self.store_item(item);
        success(&json!({}))
    }

    fn store_item(&mut self, item: Value) {
        let stored = StoredItem {
            device_id: device_id(&item),
            version: item["version"]["N"]
                .as_str()
                .and_then(|version| version.parse().ok())
                .unwrap_or_default(),
            item,
        };
        self.dynamodb_writes.push(stored.clone());
        self.dynamodb_items.insert(stored.device_id.clone(), stored);
    }
}

fn device_id(item: &Value) -> String {
    item["device_id"]["S"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
