//! Replay of recorded telemetry over MQTT, as if the devices were sending it now.

pub mod datasets;
pub mod publisher;

pub use datasets::{DatasetError, ReplayFrame};
pub use publisher::{ReplayError, ReplayOptions, ReplayStream, ReplaySummary, replay};
