//! The engine's SQL records: alarm history, stored rule files, device documents and
//! telemetry history, in SQLite by default or PostgreSQL.

pub mod alarm_history;
pub mod alarm_search;
pub mod database;
pub mod documents;
pub mod equipment;
pub mod equipment_records;
pub mod maintenance;
pub mod registration;
pub mod rule_store;
pub mod shadows;
pub mod telemetry;

pub use alarm_history::{AlarmHistory, AlarmRecord};
pub use database::{Backend, Database, StoreError};
pub use rule_store::{RuleStore, StoredRuleFile};
