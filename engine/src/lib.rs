//! The valmetal telemetry engine: MQTT ingest, the wiring of device actors to the WebSocket
//! gateway and the alarm history, the HTTP port, the embedded broker and the replay of real
//! barn data. The binary `valmetal` is a thin command-line front over this library.

pub mod auth;
pub mod backtest;
pub mod broker;
pub mod bundled_rules;
pub mod config;
pub mod engine;
pub mod equipment;
pub mod events;
pub mod http;
pub mod ingest;
pub mod journal;
pub mod mqtt_client;
pub mod notify;
pub mod replay;
pub mod rule_sources;
pub mod rules_reload;
pub mod secret;
pub mod sinks;
pub mod storage;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use engine::{EngineError, RunningEngine};
