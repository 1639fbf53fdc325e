//! The engine's own records in SQLite: the alarm history and rule files stored through the API.

pub mod alarm_history;
pub mod rule_store;

pub use alarm_history::{AlarmHistory, AlarmRecord, StoreError};
pub use rule_store::{RuleStore, StoredRuleFile};
