//! The engine's own records in SQLite: today the alarm history.

pub mod alarm_history;

pub use alarm_history::{AlarmHistory, AlarmRecord, StoreError};
