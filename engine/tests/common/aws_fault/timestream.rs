//! The fault server's `WriteRecords`: Timestream's record rules and version semantics.

use std::collections::{BTreeMap, HashSet};

use axum::response::Response;
use serde_json::{Value, json};

use super::{
    Ledger, Operation, Rejection, Scripted, StoredRecord, TIMESTREAM_MAX_RECORDS, answer_scripted,
    aws_error, success,
};

impl Ledger {
    pub(super) fn write_records(&mut self, body: &Value, scripted: Option<Scripted>) -> Response {
        let operation = Operation::WriteRecords;
        let records = body["Records"].as_array().cloned().unwrap_or_default();
        self.count(operation, records.len());
        if records.len() > TIMESTREAM_MAX_RECORDS {
            let message = format!("a WriteRecords request has {} records", records.len());
            self.violations.push(message.clone());
            return aws_error(operation, 400, "ValidationException", &message, json!({}));
        }
        let common = &body["CommonAttributes"];
        if common["Dimensions"]
            .as_array()
            .is_some_and(|dimensions| !dimensions.is_empty())
        {
            self.common_dimension_requests += 1;
        }
        let mut parsed = Vec::with_capacity(records.len());
        for record in &records {
            match parse_record(common, record) {
                Ok(record) => parsed.push(record),
                Err(message) => {
                    self.violations.push(message.clone());
                    return aws_error(operation, 400, "ValidationException", &message, json!({}));
                }
            }
        }
        if let Some(response) = answer_scripted(operation, scripted.clone()) {
            return response;
        }

        let mut rejections: Vec<Rejection> = match scripted {
            Some(Scripted::RejectedRecords(rejections)) => rejections,
            _ => Vec::new(),
        };
        let scripted_indexes: HashSet<usize> = rejections.iter().map(|r| r.index).collect();
        let mut keys_in_request = HashSet::new();
        for (index, record) in parsed.into_iter().enumerate() {
            if !keys_in_request.insert(record.key()) {
                self.violations.push(format!(
                    "record {index} of a WriteRecords request repeats the dimensions and time of another"
                ));
                rejections.push(Rejection {
                    index,
                    reason: "Duplicate record in the request".to_owned(),
                    existing_version: None,
                });
                continue;
            }
            if scripted_indexes.contains(&index) {
                continue;
            }
            if let Some(rejection) = self.upsert(index, record) {
                rejections.push(rejection);
            }
        }

        if rejections.is_empty() {
            let total = records.len();
            return success(&json!({
                "RecordsIngested": {"Total": total, "MemoryStore": total, "MagneticStore": 0}
            }));
        }
        rejections.sort_by_key(|rejection| rejection.index);
        let rejected: Vec<Value> = rejections
            .iter()
            .map(|rejection| {
                let mut entry = json!({"RecordIndex": rejection.index, "Reason": rejection.reason});
                if let Some(version) = rejection.existing_version {
                    entry["ExistingVersion"] = json!(version);
                }
                entry
            })
            .collect();
        aws_error(
            operation,
            419,
            "RejectedRecordsException",
            "One or more records have been rejected. See RejectedRecords for details.",
            json!({"RejectedRecords": rejected}),
        )
    }

    /// Stores `record` as Timestream would, or returns why it is rejected.
    fn upsert(&mut self, index: usize, record: StoredRecord) -> Option<Rejection> {
        let key = record.key();
        if let Some(existing) = self.timestream_table.get_mut(&key) {
            if existing.measures == record.measures {
                existing.version = existing.version.max(record.version);
            } else if record.version > existing.version {
                *existing = record.clone();
            } else {
                let reason = if record.version == existing.version {
                    "A record already exists with the same time, dimensions, measure name, and \
                     record version. A higher record version must be specified in order to \
                     update the measure value."
                        .to_owned()
                } else {
                    format!(
                        "The record version {} is lower than the existing version {}. A higher \
                         version is required to update the measure value.",
                        record.version, existing.version
                    )
                };
                return Some(Rejection {
                    index,
                    reason,
                    existing_version: Some(existing.version),
                });
            }
        } else {
            self.timestream_table.insert(key, record.clone());
        }
        self.timestream_accepted.push(record);
        None
    }
}

/// Reads one record of a request, with `common` applied, checking the form the sink uses.
fn parse_record(common: &Value, record: &Value) -> Result<StoredRecord, String> {
    let field = |name: &str| record.get(name).or_else(|| common.get(name));
    let text = |name: &str| field(name).and_then(Value::as_str).map(str::to_owned);

    let time_unit = text("TimeUnit").unwrap_or_else(|| "MILLISECONDS".to_owned());
    if time_unit != "MILLISECONDS" {
        return Err(format!(
            "a record has TimeUnit `{time_unit}`, not MILLISECONDS"
        ));
    }
    if text("MeasureValueType").as_deref() != Some("MULTI") {
        return Err(format!("a record is not a MULTI measure record: {record}"));
    }
    let measure_name = text("MeasureName").ok_or("a record has no MeasureName")?;
    let time: i64 = text("Time")
        .and_then(|time| time.parse().ok())
        .ok_or_else(|| format!("a record has no numeric Time: {record}"))?;
    let version = field("Version")
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("a record has no Version: {record}"))?;

    let mut dimensions = BTreeMap::new();
    for source in [common, record] {
        for dimension in source["Dimensions"].as_array().into_iter().flatten() {
            let name = dimension["Name"].as_str().unwrap_or_default().to_owned();
            let value = dimension["Value"].as_str().unwrap_or_default().to_owned();
            if dimensions.insert(name.clone(), value).is_some() {
                return Err(format!("dimension `{name}` is given twice"));
            }
        }
    }
    let mut measures = BTreeMap::new();
    for measure in record["MeasureValues"].as_array().into_iter().flatten() {
        let name = measure["Name"].as_str().unwrap_or_default().to_owned();
        let kind = measure["Type"].as_str().unwrap_or_default().to_owned();
        let value = measure["Value"].as_str().unwrap_or_default().to_owned();
        if dimensions.contains_key(&name) || measures.insert(name.clone(), (kind, value)).is_some()
        {
            return Err(format!(
                "measure `{name}` is given twice or is also a dimension"
            ));
        }
    }
    if measures.is_empty() {
        return Err(format!("a record has no MeasureValues: {record}"));
    }
    Ok(StoredRecord {
        dimensions,
        measure_name,
        time,
        version,
        measures,
    })
}
