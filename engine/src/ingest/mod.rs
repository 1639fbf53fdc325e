//! MQTT ingest: subscribes to device topics, validates each message, and hands frames to the
//! device actors.

pub mod mqtt;
pub mod payload;
pub mod rejects;
pub mod status;
pub mod topic;

pub use mqtt::{IngestHandle, MqttIngest};
