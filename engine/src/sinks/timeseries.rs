//! The record time-series stores receive: one accepted frame of one device.

use std::sync::Arc;

use serde::Serialize;
use valmetal_actors::{Frame, Value};

/// One frame as the time-series stores keep it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeSeriesRecord {
    pub device: Arc<str>,
    pub device_type: Arc<str>,
    pub farm: Option<Arc<str>>,
    /// Device time, in milliseconds since the Unix epoch.
    pub ts: i64,
    /// Record version: the engine time of receipt in milliseconds, so a later correction of
    /// the same device time replaces an earlier value, and a replay of the same message
    /// writes the same record again.
    pub version: i64,
    pub values: Vec<(Arc<str>, Value)>,
}

impl TimeSeriesRecord {
    /// Builds the record of `frame`.
    pub fn of_frame(
        device: &Arc<str>,
        device_type: &Arc<str>,
        farm: Option<&Arc<str>>,
        frame: &Frame,
        received_at: i64,
    ) -> Self {
        Self {
            device: Arc::clone(device),
            device_type: Arc::clone(device_type),
            farm: farm.cloned(),
            ts: frame.ts,
            version: received_at,
            values: frame.values.clone(),
        }
    }

    /// Approximate bytes of the record in a request.
    pub fn approximate_bytes(&self) -> usize {
        let dimensions = self.device.len()
            + self.device_type.len()
            + self.farm.as_ref().map_or(0, |farm| farm.len());
        let values: usize = self
            .values
            .iter()
            .map(|(key, value)| {
                key.len()
                    + match value {
                        Value::Number(_) => 24,
                        Value::Bool(_) => 5,
                        Value::Text(text) => text.len(),
                    }
            })
            .sum();
        64 + dimensions + values
    }
}
