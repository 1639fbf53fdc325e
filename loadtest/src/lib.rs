//! `valmetal-loadtest`: load, latency and correctness runs against the valmetal engine over a
//! real MQTT broker and real WebSocket dashboards, on loopback only.
//!
//! A run simulates a fleet of devices publishing frames shaped like the bundled recordings,
//! opens dashboard clients on `/ws`, and reports the achieved rate against the offered one,
//! latency percentiles from publish to dashboard, the engine's CPU and memory from `/proc`, and
//! whether every frame and alarm is accounted for. See `loadtest/README.md`.

pub mod broker;
pub mod ceiling;
pub mod dashboards;
pub mod direct;
pub mod engine;
pub mod options;
pub mod profile;
pub mod publisher;
pub mod replay;
pub mod report;
pub mod run;

pub use options::{Args, Scenario};
pub use report::Report;
pub use run::run;
