//! Telemetry values and frames as the engine stores them after decoding.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One reported value: a finite number, a boolean or a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Bool(bool),
    Text(Arc<str>),
}

impl Value {
    /// Returns the number, or `None` for booleans and strings.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(number) => Some(*number),
            Self::Bool(_) | Self::Text(_) => None,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(number) => write!(formatter, "{number}"),
            Self::Bool(flag) => write!(formatter, "{flag}"),
            Self::Text(text) => formatter.write_str(text),
        }
    }
}

/// One telemetry frame of one device, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Device time of the frame, in milliseconds since the Unix epoch.
    pub ts: i64,
    /// The device's sequence number, used to apply a redelivered frame once.
    pub seq: Option<u64>,
    /// Reported keys and their values, in the order the device sent them.
    pub values: Vec<(Arc<str>, Value)>,
}
