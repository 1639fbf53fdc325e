//! WebSocket fan-out of live device state and alarms to operators' dashboards.
//!
//! The [`Hub`] receives every device event, keeps the current state of each device for
//! snapshots, and queues events for the clients subscribed to that device. Each client's
//! [`ClientQueue`] is bounded and coalesces updates per device, so a slow browser costs memory
//! proportional to the devices it watches, never to the frame rate. The wire protocol is
//! described in `docs/websocket-protocol.md`.

pub mod access;
pub mod client_queue;
pub mod hub;
pub mod protocol;
pub mod server;
pub mod telemetry;

pub use access::ClientAccess;
pub use client_queue::ClientQueue;
pub use hub::{Client, Hub};
pub use server::router;
