//! Building WriteRecords requests from a batch: records of one series and device time are
//! merged, records are grouped by device, and each request carries at most 100 records with
//! what they share in `CommonAttributes`.

use std::sync::Arc;

use aws_sdk_timestreamwrite::types::{
    Dimension, DimensionValueType, MeasureValue, MeasureValueType, Record, TimeUnit,
};
use valmetal_actors::Value;

use crate::sinks::SinkError;
use crate::sinks::timeseries::TimeSeriesRecord;

/// Measure name of every record: each record is one multi-measure record holding all the
/// values of a frame.
pub const MEASURE_NAME: &str = "telemetry";
/// Records one WriteRecords request may carry at most (a Timestream quota).
pub const MAX_RECORDS_PER_REQUEST: usize = 100;

const DEVICE_DIMENSION: &str = "device_id";
const FARM_DIMENSION: &str = "farm";
const EQUIPMENT_TYPE_DIMENSION: &str = "equipment_type";

/// The dimensions of a series: records with equal dimensions, time and measure name are one
/// record to Timestream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    pub device: Arc<str>,
    pub device_type: Arc<str>,
    pub farm: Option<Arc<str>>,
}

impl Series {
    fn of(record: &TimeSeriesRecord) -> Self {
        Self {
            device: Arc::clone(&record.device),
            device_type: Arc::clone(&record.device_type),
            farm: record.farm.clone(),
        }
    }
}

/// One Timestream record: the batch records of one series and device time, merged.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedRecord {
    /// Indexes in the batch of the records merged here, in batch order.
    pub members: Vec<usize>,
    pub series: Series,
    pub ts: i64,
    /// The highest version among the members.
    pub version: i64,
    /// Each key with the value of the member of the highest version that has it; the later
    /// member in the batch wins a tie.
    pub values: Vec<(Arc<str>, Value)>,
    /// The version of the member each value of `values` came from.
    value_versions: Vec<i64>,
}

/// One WriteRecords request to send.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRequest {
    /// The series of every record when all share one; its dimensions then go in
    /// `CommonAttributes`.
    pub common_series: Option<Series>,
    pub records: Vec<MergedRecord>,
}

/// Merges the records at `indexes` of `batch` by series and device time, ordered by series
/// and then time.
pub fn merge(batch: &[TimeSeriesRecord], mut indexes: Vec<usize>) -> Vec<MergedRecord> {
    indexes.sort_by(|&left, &right| {
        let (left, right) = (&batch[left], &batch[right]);
        (&left.device, &left.device_type, &left.farm, left.ts).cmp(&(
            &right.device,
            &right.device_type,
            &right.farm,
            right.ts,
        ))
    });

    let mut merged: Vec<MergedRecord> = Vec::with_capacity(indexes.len());
    for index in indexes {
        let record = &batch[index];
        let series = Series::of(record);
        match merged.last_mut() {
            Some(last) if last.series == series && last.ts == record.ts => {
                last.absorb(index, record);
            }
            _ => merged.push(MergedRecord::start(index, series, record)),
        }
    }
    merged
}

impl MergedRecord {
    fn start(index: usize, series: Series, record: &TimeSeriesRecord) -> Self {
        let mut merged = Self {
            members: Vec::new(),
            series,
            ts: record.ts,
            version: record.version,
            values: Vec::with_capacity(record.values.len()),
            value_versions: Vec::with_capacity(record.values.len()),
        };
        merged.absorb(index, record);
        merged
    }

    /// Adds a record of the same series and time. Members arrive in batch order, so a value
    /// replaces the one held when its version is the same or higher.
    fn absorb(&mut self, index: usize, record: &TimeSeriesRecord) {
        for (key, value) in &record.values {
            let held = self.values.iter().position(|(existing, _)| existing == key);
            match held {
                Some(position) if self.value_versions[position] <= record.version => {
                    self.values[position].1 = value.clone();
                    self.value_versions[position] = record.version;
                }
                Some(_) => {}
                None => {
                    self.values.push((Arc::clone(key), value.clone()));
                    self.value_versions.push(record.version);
                }
            }
        }
        self.members.push(index);
        self.version = self.version.max(record.version);
    }
}

/// Splits merged records into requests of at most [`MAX_RECORDS_PER_REQUEST`], keeping the
/// order [`merge`] gave them so that a device's records share requests.
pub fn plan(merged: Vec<MergedRecord>) -> Vec<PlannedRequest> {
    let mut requests = Vec::with_capacity(merged.len().div_ceil(MAX_RECORDS_PER_REQUEST));
    let mut records = merged.into_iter().peekable();
    while records.peek().is_some() {
        let chunk: Vec<MergedRecord> = records.by_ref().take(MAX_RECORDS_PER_REQUEST).collect();
        let first = &chunk[0].series;
        let common_series = chunk
            .iter()
            .all(|record| record.series == *first)
            .then(|| first.clone());
        requests.push(PlannedRequest {
            common_series,
            records: chunk,
        });
    }
    requests
}

impl PlannedRequest {
    /// Builds the `CommonAttributes` of the request.
    ///
    /// # Errors
    ///
    /// Returns [`SinkError`] if the SDK rejects a dimension for a missing name or value. Both
    /// are always set here.
    pub fn common_attributes(&self) -> Result<Record, SinkError> {
        let dimensions = match &self.common_series {
            Some(series) => Some(dimensions(series)?),
            None => None,
        };
        Ok(Record::builder()
            .measure_name(MEASURE_NAME)
            .measure_value_type(MeasureValueType::Multi)
            .time_unit(TimeUnit::Milliseconds)
            .set_dimensions(dimensions)
            .build())
    }

    /// Builds the records of the request, leaving out what `CommonAttributes` holds.
    ///
    /// # Errors
    ///
    /// As for [`Self::common_attributes`].
    pub fn sdk_records(&self) -> Result<Vec<Record>, SinkError> {
        self.records
            .iter()
            .map(|record| {
                let dimensions = match self.common_series {
                    Some(_) => None,
                    None => Some(dimensions(&record.series)?),
                };
                Ok(Record::builder()
                    .set_dimensions(dimensions)
                    .time(record.ts.to_string())
                    .version(record.version)
                    .set_measure_values(Some(measure_values(&record.values)?))
                    .build())
            })
            .collect()
    }
}

fn dimensions(series: &Series) -> Result<Vec<Dimension>, SinkError> {
    let mut dimensions = vec![
        dimension(DEVICE_DIMENSION, &series.device)?,
        dimension(EQUIPMENT_TYPE_DIMENSION, &series.device_type)?,
    ];
    if let Some(farm) = &series.farm {
        dimensions.push(dimension(FARM_DIMENSION, farm)?);
    }
    Ok(dimensions)
}

fn dimension(name: &str, value: &str) -> Result<Dimension, SinkError> {
    Dimension::builder()
        .name(name)
        .value(value)
        .dimension_value_type(DimensionValueType::Varchar)
        .build()
        .map_err(|error| SinkError::permanent("invalid_request", error.to_string()))
}

fn measure_values(values: &[(Arc<str>, Value)]) -> Result<Vec<MeasureValue>, SinkError> {
    values
        .iter()
        .map(|(key, value)| {
            let (text, kind) = match value {
                Value::Number(number) => (number.to_string(), MeasureValueType::Double),
                Value::Bool(flag) => (flag.to_string(), MeasureValueType::Boolean),
                Value::Text(text) => (text.to_string(), MeasureValueType::Varchar),
            };
            MeasureValue::builder()
                .name(key.as_ref())
                .value(text)
                .r#type(kind)
                .build()
                .map_err(|error| SinkError::permanent("invalid_request", error.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(device: &str, ts: i64, version: i64, values: &[(&str, f64)]) -> TimeSeriesRecord {
        TimeSeriesRecord {
            device: Arc::from(device),
            device_type: Arc::from("feed_bin"),
            farm: None,
            ts,
            version,
            values: values
                .iter()
                .map(|(key, value)| (Arc::from(*key), Value::Number(*value)))
                .collect(),
        }
    }

    fn value(merged: &MergedRecord, key: &str) -> Option<f64> {
        merged
            .values
            .iter()
            .find(|(name, _)| name.as_ref() == key)
            .and_then(|(_, value)| value.as_number())
    }

    #[test]
    fn merge_keeps_highest_version_per_key() {
        let batch = [
            record("bin-1", 100, 7, &[("weight", 1.0), ("intake", 0.5)]),
            record("bin-1", 100, 9, &[("weight", 2.0)]),
            record("bin-1", 100, 8, &[("weight", 3.0), ("duration", 30.0)]),
            record("bin-1", 100, 9, &[("weight", 4.0)]),
        ];
        let merged = merge(&batch, vec![0, 1, 2, 3]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].members, [0, 1, 2, 3]);
        assert_eq!(merged[0].version, 9);
        assert_eq!(
            value(&merged[0], "weight"),
            Some(4.0),
            "the later of two equal versions"
        );
        assert_eq!(value(&merged[0], "intake"), Some(0.5));
        assert_eq!(value(&merged[0], "duration"), Some(30.0));
    }

    #[test]
    fn merge_orders_by_device_then_time() {
        let batch = [
            record("bin-2", 200, 1, &[("weight", 1.0)]),
            record("bin-1", 300, 1, &[("weight", 1.0)]),
            record("bin-2", 100, 1, &[("weight", 1.0)]),
            record("bin-1", 100, 1, &[("weight", 1.0)]),
        ];
        let merged = merge(&batch, vec![0, 1, 2, 3]);
        let order: Vec<(&str, i64)> = merged
            .iter()
            .map(|record| (record.series.device.as_ref(), record.ts))
            .collect();
        assert_eq!(
            order,
            [
                ("bin-1", 100),
                ("bin-1", 300),
                ("bin-2", 100),
                ("bin-2", 200)
            ]
        );
    }

    #[test]
    fn plan_shares_dimensions_of_one_device() {
        let mut batch: Vec<_> = (0..150)
            .map(|ts| record("bin-1", ts, 1, &[("weight", 1.0)]))
            .collect();
        batch.extend((0..30).map(|ts| record("bin-2", ts, 1, &[("weight", 1.0)])));
        let requests = plan(merge(&batch, (0..batch.len()).collect()));

        let sizes: Vec<usize> = requests
            .iter()
            .map(|request| request.records.len())
            .collect();
        assert_eq!(sizes, [100, 80]);
        let common = requests[0]
            .common_series
            .as_ref()
            .map(|series| series.device.as_ref());
        assert_eq!(common, Some("bin-1"));
        assert_eq!(requests[1].common_series, None);

        let attributes = requests[0].common_attributes().unwrap();
        assert_eq!(attributes.measure_name(), Some(MEASURE_NAME));
        assert_eq!(
            attributes.dimensions().len(),
            2,
            "no farm dimension without a farm"
        );
        let records = requests[0].sdk_records().unwrap();
        assert!(records[0].dimensions().is_empty());
        assert_eq!(records[0].time(), Some("0"));
        assert_eq!(records[0].version(), Some(1));
        assert_eq!(requests[1].sdk_records().unwrap()[0].dimensions().len(), 2);
    }
}
