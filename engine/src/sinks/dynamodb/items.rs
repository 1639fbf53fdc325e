//! Device documents as DynamoDB items: the conversion both ways, and the item size check.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use valmetal_actors::DeviceDocument;

use crate::sinks::Refusal;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Partition key attribute of the table: the device id, a string.
pub const KEY_ATTRIBUTE: &str = "device_id";
/// Attribute holding the document version, a number.
pub const VERSION_ATTRIBUTE: &str = "version";
/// Largest item DynamoDB stores: 400 KB, counting attribute names and values.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// A document converted for writing.
pub struct PreparedItem {
    /// Index of the document in the slice given to `put`.
    pub index: usize,
    pub device_id: String,
    pub version: u64,
    pub item: Item,
}

/// Converts `documents` to items. Documents that cannot be stored are refused; of several
/// documents of one device, the highest version is kept and the others are superseded.
pub fn prepare(
    documents: &[DeviceDocument],
    refused: &mut Vec<Refusal>,
    superseded: &mut Vec<usize>,
) -> Vec<PreparedItem> {
    let mut prepared: Vec<PreparedItem> = Vec::with_capacity(documents.len());
    for (index, document) in documents.iter().enumerate() {
        let item = match to_item(document) {
            Ok(item) => item,
            Err(error) => {
                refused.push(Refusal {
                    index,
                    reason: "invalid_document",
                    detail: format!(
                        "the document of device `{}` cannot be converted to a DynamoDB item: {error}",
                        document.device_id
                    ),
                });
                continue;
            }
        };
        let bytes = item_bytes(&item);
        if bytes > MAX_ITEM_BYTES {
            refused.push(Refusal {
                index,
                reason: "item_too_large",
                detail: format!(
                    "the document of device `{}` is about {bytes} bytes as a DynamoDB item, over the {MAX_ITEM_BYTES}-byte item limit",
                    document.device_id
                ),
            });
            continue;
        }

        let entry = PreparedItem {
            index,
            device_id: document.device_id.as_str().to_owned(),
            version: document.version,
            item,
        };
        // A request may name each key once; DynamoDB rejects the whole batch otherwise.
        match prepared
            .iter_mut()
            .find(|held| held.device_id == entry.device_id)
        {
            Some(held) if held.version <= entry.version => {
                superseded.push(held.index);
                *held = entry;
            }
            Some(_) => superseded.push(index),
            None => prepared.push(entry),
        }
    }
    prepared
}

/// Converts a document to an item of readable attributes, with `device_id` as a string and
/// `version` as a number.
///
/// # Errors
///
/// Returns the serializer's error for a value DynamoDB cannot hold.
pub fn to_item(document: &DeviceDocument) -> Result<Item, serde_dynamo::Error> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(document)
}

/// Converts a stored item back to a document.
///
/// # Errors
///
/// Returns the deserializer's error for an item that is not a device document.
pub fn from_item(item: Item) -> Result<DeviceDocument, serde_dynamo::Error> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
}

/// Returns the device id of a stored item, or `?` if it has none, for log lines.
pub fn device_id_of(item: &Item) -> &str {
    match item.get(KEY_ATTRIBUTE) {
        Some(AttributeValue::S(device_id)) => device_id,
        _ => "?",
    }
}

/// Estimates the size DynamoDB counts for `item`, following its published sizing rules.
/// Names and strings count their UTF-8 bytes, and a number one byte per two digits plus one.
/// A list or map adds 3 bytes, and 1 byte per element. The estimate errs high for numbers,
/// because DynamoDB does not count their leading and trailing zeros.
pub fn item_bytes(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_bytes(value))
        .sum()
}

fn value_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_bytes(number),
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|number| number_bytes(number)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|blob| blob.as_ref().len()).sum(),
        AttributeValue::L(values) => {
            3 + values
                .iter()
                .map(|value| 1 + value_bytes(value))
                .sum::<usize>()
        }
        AttributeValue::M(entries) => {
            3 + entries
                .iter()
                .map(|(name, value)| 1 + name.len() + value_bytes(value))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn number_bytes(number: &str) -> usize {
    number.len().div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use valmetal_actors::{DeviceId, ReportedValue, Value};

    use super::*;

    fn document(device: &str, version: u64) -> DeviceDocument {
        DeviceDocument {
            device_id: DeviceId::parse(device).unwrap(),
            device_type: "feed_bin".to_owned(),
            farm: Some("north".to_owned()),
            version,
            reported: BTreeMap::from([(
                "end_weight_kg".to_owned(),
                ReportedValue {
                    value: Value::Number(412.5),
                    ts: 1_640_995_472_000,
                },
            )]),
            desired: BTreeMap::new(),
            newest_ts: Some(1_640_995_472_000),
            last_seen: Some(1_640_995_473_000),
            seq_highest: Some(u64::MAX),
            seq_bits: Some(0b1011),
            alarms: Vec::new(),
            taken_at: 1_640_995_474_000,
            usage: Default::default(),
        }
    }

    #[test]
    fn item_keeps_key_and_version_readable() {
        let item = to_item(&document("feedbin-006", 7)).unwrap();
        assert_eq!(item[KEY_ATTRIBUTE], AttributeValue::S("feedbin-006".into()));
        assert_eq!(item[VERSION_ATTRIBUTE], AttributeValue::N("7".into()));
        let AttributeValue::M(reported) = &item["reported"] else {
            panic!("reported is not a map: {:?}", item["reported"]);
        };
        assert!(reported.contains_key("end_weight_kg"));
        assert_eq!(from_item(item).unwrap(), document("feedbin-006", 7));
    }

    #[test]
    fn prepare_keeps_highest_version_per_device() {
        let documents = [
            document("feedbin-001", 3),
            document("feedbin-002", 1),
            document("feedbin-001", 5),
            document("feedbin-001", 4),
        ];
        let (mut refused, mut superseded) = (Vec::new(), Vec::new());
        let prepared = prepare(&documents, &mut refused, &mut superseded);
        let kept: Vec<(usize, u64)> = prepared
            .iter()
            .map(|item| (item.index, item.version))
            .collect();
        assert_eq!(kept, [(2, 5), (1, 1)]);
        superseded.sort_unstable();
        assert_eq!(superseded, [0, 3]);
        assert!(refused.is_empty());
    }

    #[test]
    fn prepare_refuses_item_over_400_kb() {
        let mut large = document("feedbin-003", 1);
        large.reported.insert(
            "note".to_owned(),
            ReportedValue {
                value: Value::Text("x".repeat(MAX_ITEM_BYTES).into()),
                ts: 0,
            },
        );
        let (mut refused, mut superseded) = (Vec::new(), Vec::new());
        let prepared = prepare(
            &[document("feedbin-001", 1), large],
            &mut refused,
            &mut superseded,
        );
        assert_eq!(prepared.len(), 1);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].index, 1);
        assert_eq!(refused[0].reason, "item_too_large");
        assert!(
            refused[0].detail.contains("feedbin-003"),
            "{}",
            refused[0].detail
        );
    }

    #[test]
    fn item_bytes_counts_names_and_values() {
        let item = Item::from([
            ("a".to_owned(), AttributeValue::S("xyz".into())),
            ("nn".to_owned(), AttributeValue::N("1234".into())),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "k".to_owned(),
                    AttributeValue::Bool(true),
                )])),
            ),
        ]);
        // a + xyz = 4; nn + 4 digits = 2 + 3; m + 3 + (1 + k + 1) = 1 + 6.
        assert_eq!(item_bytes(&item), 4 + 5 + 7);
    }
}
