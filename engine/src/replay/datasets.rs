//! The bundled real data sets and their mapping to device frames.
//!
//! - ODRC feed bins: 27,153 cow visits to 100 weighed Insentec feed bins at the Ontario Dairy
//!   Research Centre, 2022-01-01 and 02 (MIT licence; see `data/README.md`). Each visit becomes
//!   one frame of device `feedbin-NNN` at the visit's end time, when the bin logs it.
//! - NAB machine temperature: an industrial machine's component temperature every 5 minutes up
//!   to a catastrophic failure, 2013-12-02 to 2014-02-19 (Numenta Anomaly Benchmark, MIT).
//!   The file repeats one hour with different values, which replays as late frames.

use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The ODRC feed-bin visits, as bundled.
pub const FEED_BINS_CSV: &str =
    include_str!("../../../data/odrc_insentec_feedbins_2022-01-01_02.csv");
/// The NAB machine temperature series, as bundled.
pub const MACHINE_TEMPERATURE_CSV: &str =
    include_str!("../../../data/nab_machine_temperature_system_failure.csv");
/// Device id given to the NAB machine.
pub const MACHINE_DEVICE_ID: &str = "machine-01";

/// One frame to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayFrame {
    pub device: String,
    /// Device time in milliseconds since the Unix epoch.
    pub ts: i64,
    /// Per-device sequence number, starting at 1 in file order.
    pub seq: u64,
    pub values: Map<String, Value>,
}

impl ReplayFrame {
    /// Returns the frame as the JSON payload devices send.
    pub fn payload(&self) -> Vec<u8> {
        let frame = serde_json::json!({ "ts": self.ts, "seq": self.seq, "values": self.values });
        frame.to_string().into_bytes()
    }
}

/// Error reading a data set.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{dataset}, line {line}: {source}")]
    Row {
        dataset: &'static str,
        line: u64,
        source: csv::Error,
    },
    #[error("{dataset}, line {line}: invalid time `{text}`: {reason}")]
    Time {
        dataset: &'static str,
        line: u64,
        text: String,
        reason: String,
    },
}

#[derive(Deserialize)]
struct FeedBinVisit {
    transponder_id: i64,
    bin_id: u32,
    end_time: String,
    duration_sec: f64,
    start_weight_kg: f64,
    end_weight_kg: f64,
    intake: f64,
    animal_id: i64,
}

#[derive(Deserialize)]
struct TemperatureReading {
    timestamp: String,
    value: f64,
}

/// Returns the feed-bin device id of ODRC bin `bin_id`.
pub fn feed_bin_device(bin_id: u32) -> String {
    format!("feedbin-{bin_id:03}")
}

/// Maps ODRC visit rows to frames, in file order (which is end-time order), at most `limit`.
///
/// # Errors
///
/// Returns [`DatasetError`] for the first unreadable row.
pub fn feed_bins(csv_text: &str, limit: Option<usize>) -> Result<Vec<ReplayFrame>, DatasetError> {
    let dataset = "ODRC feed bins";
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut seqs = std::collections::HashMap::<u32, u64>::new();
    let mut frames = Vec::new();
    for row in reader
        .deserialize::<FeedBinVisit>()
        .take(limit.unwrap_or(usize::MAX))
    {
        let line = frames.len() as u64 + 2;
        let visit = row.map_err(|source| DatasetError::Row {
            dataset,
            line,
            source,
        })?;
        let ts = DateTime::parse_from_rfc3339(&visit.end_time)
            .map_err(|error| time_error(dataset, line, &visit.end_time, &error))?
            .timestamp_millis();
        let seq = seqs
            .entry(visit.bin_id)
            .and_modify(|seq| *seq += 1)
            .or_insert(1);
        let mut values = Map::new();
        values.insert("start_weight_kg".into(), visit.start_weight_kg.into());
        values.insert("end_weight_kg".into(), visit.end_weight_kg.into());
        values.insert("intake_kg".into(), visit.intake.into());
        values.insert("duration_s".into(), visit.duration_sec.into());
        values.insert("animal_id".into(), visit.animal_id.into());
        values.insert("transponder_id".into(), visit.transponder_id.into());
        frames.push(ReplayFrame {
            device: feed_bin_device(visit.bin_id),
            ts,
            seq: *seq,
            values,
        });
    }
    Ok(frames)
}

/// Maps NAB readings (`YYYY-MM-DD HH:MM:SS`, taken as UTC) to frames of `device`, in file
/// order, at most `limit`.
///
/// # Errors
///
/// Returns [`DatasetError`] for the first unreadable row.
pub fn machine_temperature(
    csv_text: &str,
    device: &str,
    limit: Option<usize>,
) -> Result<Vec<ReplayFrame>, DatasetError> {
    let dataset = "NAB machine temperature";
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut frames = Vec::new();
    for row in reader
        .deserialize::<TemperatureReading>()
        .take(limit.unwrap_or(usize::MAX))
    {
        let line = frames.len() as u64 + 2;
        let reading = row.map_err(|source| DatasetError::Row {
            dataset,
            line,
            source,
        })?;
        let ts = NaiveDateTime::parse_from_str(&reading.timestamp, "%Y-%m-%d %H:%M:%S")
            .map_err(|error| time_error(dataset, line, &reading.timestamp, &error))?
            .and_utc()
            .timestamp_millis();
        let mut values = Map::new();
        values.insert("temperature".into(), reading.value.into());
        frames.push(ReplayFrame {
            device: device.to_owned(),
            ts,
            seq: frames.len() as u64 + 1,
            values,
        });
    }
    Ok(frames)
}

fn time_error(
    dataset: &'static str,
    line: u64,
    text: &str,
    error: &dyn std::fmt::Display,
) -> DatasetError {
    DatasetError::Time {
        dataset,
        line,
        text: text.to_owned(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_bins_map_every_visit() {
        let frames = feed_bins(FEED_BINS_CSV, None).unwrap();
        assert_eq!(frames.len(), 27_153);
        assert_eq!(frames[0].device, "feedbin-006");
        assert_eq!(frames[0].ts, 1_640_995_472_000);
        assert_eq!(frames[0].seq, 1);
        assert_eq!(frames[0].values["end_weight_kg"], 0.3);
        let bins: std::collections::HashSet<_> = frames.iter().map(|frame| &frame.device).collect();
        assert_eq!(bins.len(), 100);
        assert!(
            frames.windows(2).all(|pair| pair[0].ts <= pair[1].ts),
            "file is in end-time order"
        );
    }

    #[test]
    fn machine_temperature_keeps_repeated_hour() {
        let frames = machine_temperature(MACHINE_TEMPERATURE_CSV, MACHINE_DEVICE_ID, None).unwrap();
        assert_eq!(frames.len(), 22_695);
        let backwards = frames
            .windows(2)
            .filter(|pair| pair[1].ts < pair[0].ts)
            .count();
        assert_eq!(backwards, 1);
        assert_eq!(frames[0].ts, 1_386_018_900_000);
    }

    #[test]
    fn payload_is_a_frame_object() {
        let frames = feed_bins(FEED_BINS_CSV, Some(1)).unwrap();
        let json: Value = serde_json::from_slice(&frames[0].payload()).unwrap();
        assert_eq!(json["ts"], 1_640_995_472_000_i64);
        assert_eq!(json["seq"], 1);
        assert_eq!(json["values"]["intake_kg"], 0.1);
    }
}
