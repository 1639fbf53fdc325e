//! Device actors: one actix actor per physical device, owning that device's shadow and alarm
//! state, with the registry that creates them and the rule model they evaluate.
//!
//! This crate has no MQTT, HTTP or storage code: frames come in as messages, and
//! everything an actor publishes goes out through the [`DeviceEvents`] trait.

pub mod actor;
pub mod clock;
pub mod device_id;
pub mod device_map;
pub mod device_types;
pub mod document;
pub mod equipment;
pub mod events;
pub mod registry;
pub mod retained;
pub mod rules;
pub mod runtime;
pub mod shadow;
pub mod telemetry;
pub mod usage;
pub mod value;
pub mod wear;

pub use actor::{
    AlarmCommandRequest, DesiredUpdate, DesiredUpdateError, DeviceActor, DocumentQuery, FrameBatch,
    MaintenanceDue, PresenceReport, RulesReplaced, SnapshotQuery, UsageQuery,
};
pub use device_id::{DeviceId, DeviceIdError};
pub use device_types::{DeviceTypePattern, DeviceTypes, FarmPattern, Farms};
pub use document::DeviceDocument;
pub use equipment::{EquipmentProfile, EquipmentProfiles, UsageReport, UsageState};
pub use events::{DesiredChange, DeviceEvents, DeviceSnapshot, PresenceChange, ShadowChange};
pub use registry::{ActorSetup, DeviceRegistry};
pub use runtime::ActorRuntime;
pub use shadow::{FrameOutcome, ReportedValue, Shadow};
pub use value::{Frame, Value};
