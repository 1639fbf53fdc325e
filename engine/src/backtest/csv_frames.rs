//! Reading recorded telemetry from CSV: one row per frame, a time column, an optional device
//! column, and every other column a reported key.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime};
use valmetal_actors::{DeviceId, Frame, Value};

/// Columns recognised as the time column when none is named, in order of preference.
pub const TIME_COLUMNS: [&str; 5] = ["ts", "timestamp", "time", "end_time", "date_time"];

/// How to read a CSV file.
#[derive(Debug, Clone, Default)]
pub struct CsvLayout {
    /// The time column; found among [`TIME_COLUMNS`] when `None`.
    pub time_column: Option<String>,
    /// The column that names the device; every row belongs to `device` when `None`.
    pub device_column: Option<String>,
    /// Device id for files without a device column, and prefix of ids from a device column.
    pub device: String,
    /// Digits a numeric value of the device column is zero-padded to, so bin `6` with prefix
    /// `feedbin-` and width 3 becomes `feedbin-006`, as the replay names it. 0 keeps it as is.
    pub device_width: usize,
    /// Renames `(column, key)`; columns not listed keep their header as the key.
    pub renames: Vec<(String, String)>,
    /// Columns to leave out.
    pub skip: Vec<String>,
}

/// Error reading recorded telemetry.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read CSV: {0}")]
    Read(#[from] csv::Error),
    #[error("no time column; name one with --time-column (found columns: {0})")]
    NoTimeColumn(String),
    #[error("column `{0}` not found; the file has: {1}")]
    MissingColumn(String, String),
    #[error(
        "line {line}: invalid time `{text}`; use RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or epoch milliseconds"
    )]
    Time { line: u64, text: String },
    #[error("line {line}: invalid device id: {reason}")]
    Device { line: u64, reason: String },
}

/// Reads every row of `text` as a frame, in file order. Empty cells are left out of their
/// frame; numbers, `true` and `false` are typed, anything else is a string.
///
/// # Errors
///
/// Returns [`CsvError`] for the first unreadable row or missing column.
pub fn read_frames(text: &str, layout: &CsvLayout) -> Result<Vec<(DeviceId, Frame)>, CsvError> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers()?.clone();
    let names: Vec<&str> = headers.iter().collect();
    let find = |name: &str| names.iter().position(|header| *header == name);
    let time_index = match &layout.time_column {
        Some(name) => {
            find(name).ok_or_else(|| CsvError::MissingColumn(name.clone(), names.join(", ")))?
        }
        None => TIME_COLUMNS
            .iter()
            .find_map(|name| find(name))
            .ok_or_else(|| CsvError::NoTimeColumn(names.join(", ")))?,
    };
    let device_index = match &layout.device_column {
        Some(name) => Some(
            find(name).ok_or_else(|| CsvError::MissingColumn(name.clone(), names.join(", ")))?,
        ),
        None => None,
    };
    let keys: Vec<Option<Arc<str>>> = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let excluded = index == time_index
                || Some(index) == device_index
                || layout.skip.iter().any(|skip| skip == name);
            let renamed = layout
                .renames
                .iter()
                .find(|(column, _)| column == name)
                .map_or(*name, |(_, key)| key.as_str());
            (!excluded).then(|| Arc::from(renamed))
        })
        .collect();

    let mut frames = Vec::new();
    for (row_index, row) in reader.records().enumerate() {
        let row = row?;
        let line = row_index as u64 + 2;
        let time_text = row.get(time_index).unwrap_or_default();
        let ts = parse_time(time_text).ok_or_else(|| CsvError::Time {
            line,
            text: time_text.to_owned(),
        })?;
        let device = device_of(&row, device_index, layout, line)?;
        let values = row
            .iter()
            .zip(&keys)
            .filter_map(|(cell, key)| Some((Arc::clone(key.as_ref()?), parse_cell(cell)?)))
            .collect();
        frames.push((
            device,
            Frame {
                ts,
                seq: None,
                values,
            },
        ));
    }
    Ok(frames)
}

fn device_of(
    row: &csv::StringRecord,
    index: Option<usize>,
    layout: &CsvLayout,
    line: u64,
) -> Result<DeviceId, CsvError> {
    let id = match index {
        Some(index) => {
            let cell = row.get(index).unwrap_or_default().trim();
            let width = layout.device_width;
            match cell.parse::<u64>() {
                Ok(number) if width > 0 => format!("{}{number:0width$}", layout.device),
                _ => format!("{}{cell}", layout.device),
            }
        }
        None => layout.device.clone(),
    };
    DeviceId::parse(&id).map_err(|error| CsvError::Device {
        line,
        reason: error.to_string(),
    })
}

/// Parses RFC 3339, `YYYY-MM-DD HH:MM:SS` taken as UTC, or epoch milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(millis) = text.parse::<i64>() {
        return Some(millis);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|time| time.and_utc().timestamp_millis())
}

fn parse_cell(cell: &str) -> Option<Value> {
    let cell = cell.trim();
    if cell.is_empty() {
        return None;
    }
    if let Ok(number) = cell.parse::<f64>() {
        return number.is_finite().then_some(Value::Number(number));
    }
    match cell {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        text => Some(Value::Text(Arc::from(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_frames_types_cells_and_renames() {
        let text = "timestamp,value,mode,door\n2014-01-01 00:05:00,71.5,run,true\n2014-01-01 00:10:00,,idle,false\n";
        let layout = CsvLayout {
            device: "machine-01".into(),
            renames: vec![("value".into(), "temperature".into())],
            ..CsvLayout::default()
        };
        let frames = read_frames(text, &layout).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0.as_str(), "machine-01");
        assert_eq!(frames[0].1.ts, 1_388_534_700_000);
        assert_eq!(
            frames[0].1.values[0],
            (Arc::from("temperature"), Value::Number(71.5))
        );
        assert_eq!(
            frames[0].1.values[1],
            (Arc::from("mode"), Value::Text(Arc::from("run")))
        );
        assert_eq!(
            frames[0].1.values[2],
            (Arc::from("door"), Value::Bool(true))
        );
        assert_eq!(frames[1].1.values.len(), 2, "the empty cell is left out");
    }

    #[test]
    fn read_frames_takes_device_from_column() {
        let text = "bin_id,end_time,end_weight_kg\n6,2022-01-01T00:04:32Z,0.3\n";
        let layout = CsvLayout {
            device_column: Some("bin_id".into()),
            device: "feedbin-".into(),
            ..CsvLayout::default()
        };
        let frames = read_frames(text, &layout).unwrap();
        assert_eq!(frames[0].0.as_str(), "feedbin-6");
        let padded = CsvLayout {
            device_width: 3,
            ..layout
        };
        assert_eq!(
            read_frames(text, &padded).unwrap()[0].0.as_str(),
            "feedbin-006"
        );
        assert_eq!(frames[0].1.values.len(), 1);
    }

    #[test]
    fn read_frames_reports_bad_time_with_line() {
        let error = read_frames(
            "ts,v\n1641000000000,1\nyesterday,2\n",
            &CsvLayout {
                device: "d".into(),
                ..CsvLayout::default()
            },
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("line 3: invalid time `yesterday`"),
            "{error}"
        );
    }

    #[test]
    fn read_frames_names_missing_time_column() {
        let error = read_frames(
            "when,v\n1,2\n",
            &CsvLayout {
                device: "d".into(),
                ..CsvLayout::default()
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains("--time-column"), "{error}");
    }
}
