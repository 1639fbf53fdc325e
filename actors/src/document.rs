//! A device's whole state as the stores keep it: written by the shadow sink, read back at
//! start to restore the device's actor with its shadow and open alarms.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::device_id::DeviceId;
use crate::equipment::UsageState;
use crate::rules::Alarm;
use crate::shadow::{ReportedValue, Shadow, ShadowParts};

/// One device's stored state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceDocument {
    pub device_id: DeviceId,
    pub device_type: String,
    pub farm: Option<String>,
    /// Shadow version; a store never replaces a document with one of a lower version.
    pub version: u64,
    /// Reported values by key, each with its device time.
    pub reported: BTreeMap<String, ReportedValue>,
    /// Desired values by key, each with the engine time it was set.
    pub desired: BTreeMap<String, ReportedValue>,
    /// Device time of the newest frame applied.
    pub newest_ts: Option<i64>,
    /// Engine time of the last message from the device.
    pub last_seen: Option<i64>,
    /// The duplicate-detection window: highest `seq` and the bitmap below it.
    pub seq_highest: Option<u64>,
    pub seq_bits: Option<u64>,
    /// Active alarms and cleared ones awaiting acknowledgement.
    pub alarms: Vec<Alarm>,
    /// Engine time the document was taken.
    pub taken_at: i64,
    /// Usage counters and wear trends; empty in documents written before they existed.
    #[serde(default)]
    pub usage: UsageState,
}

impl DeviceDocument {
    /// Returns the shadow the document describes.
    pub fn shadow(&self) -> Shadow {
        let entries = |map: &BTreeMap<String, ReportedValue>| {
            map.iter()
                .map(|(key, value)| (Arc::from(key.as_str()), value.clone()))
                .collect()
        };
        Shadow::restore(ShadowParts {
            reported: entries(&self.reported),
            desired: entries(&self.desired),
            version: self.version,
            newest_ts: self.newest_ts,
            seq_window: self.seq_highest.zip(self.seq_bits),
        })
    }

    /// Builds the document of a shadow and its device's other state.
    pub fn from_shadow(
        device_id: DeviceId,
        device_type: &str,
        farm: Option<&str>,
        shadow: &Shadow,
        last_seen: Option<i64>,
        alarms: Vec<Alarm>,
        taken_at: i64,
    ) -> Self {
        let parts = shadow.parts();
        let map = |entries: Vec<(Arc<str>, ReportedValue)>| {
            entries
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect()
        };
        Self {
            device_id,
            device_type: device_type.to_owned(),
            farm: farm.map(str::to_owned),
            version: parts.version,
            reported: map(parts.reported),
            desired: map(parts.desired),
            newest_ts: parts.newest_ts,
            last_seen,
            seq_highest: parts.seq_window.map(|(highest, _)| highest),
            seq_bits: parts.seq_window.map(|(_, bits)| bits),
            alarms,
            taken_at,
            usage: UsageState::default(),
        }
    }
}
