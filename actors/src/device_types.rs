//! Assignment of device types and farms to device ids by pattern. The type selects a device's
//! rule set; the farm selects the rule overrides that apply to it.

use std::sync::Arc;

use crate::device_map::DeviceMap;
use serde::{Deserialize, Serialize};

/// Type given to a device that no pattern matches.
pub const DEFAULT_DEVICE_TYPE: &str = "default";

/// One mapping from device ids to a device type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTypePattern {
    /// An exact device id, or a prefix followed by `*` (`feedbin-*`).
    pub pattern: String,
    /// The device type, which names a rule file's `device_type`.
    pub device_type: String,
}

/// One mapping from device ids to a farm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarmPattern {
    /// An exact device id, or a prefix followed by `*`.
    pub pattern: String,
    pub farm: String,
}

/// Ordered id patterns with a label each; the first that matches an id gives its label.
#[derive(Debug, Clone, Default)]
struct PatternMap {
    entries: Vec<(String, bool, Arc<str>)>,
}

impl PatternMap {
    fn new<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let entries = pairs
            .map(|(pattern, label)| match pattern.strip_suffix('*') {
                Some(prefix) => (prefix.to_owned(), true, Arc::from(label)),
                None => (pattern.to_owned(), false, Arc::from(label)),
            })
            .collect();
        Self { entries }
    }

    fn lookup(&self, id: &str) -> Option<Arc<str>> {
        self.entries
            .iter()
            .find(|(stem, is_prefix, _)| {
                if *is_prefix {
                    id.starts_with(stem.as_str())
                } else {
                    id == stem
                }
            })
            .map(|(_, _, label)| Arc::clone(label))
    }
}

/// Device types by id pattern.
#[derive(Debug, Clone, Default)]
pub struct DeviceTypes(PatternMap);

impl DeviceTypes {
    /// Builds the lookup from patterns, in the order given.
    pub fn new(patterns: &[DeviceTypePattern]) -> Self {
        Self(PatternMap::new(patterns.iter().map(|entry| {
            (entry.pattern.as_str(), entry.device_type.as_str())
        })))
    }

    /// Returns the type of `device_id`, or [`DEFAULT_DEVICE_TYPE`].
    pub fn type_of(&self, device_id: &str) -> Arc<str> {
        self.0
            .lookup(device_id)
            .unwrap_or_else(|| Arc::from(DEFAULT_DEVICE_TYPE))
    }
}

/// Farms of devices: explicit assignments (from the equipment registry) first, then id
/// patterns.
///
/// Clones share the assignments, so a device registered through the API is seen in its farm
/// by every part of the engine holding a clone.
#[derive(Debug, Clone, Default)]
pub struct Farms {
    patterns: PatternMap,
    assigned: Arc<DeviceMap<String, Option<Arc<str>>>>,
}

impl Farms {
    /// Builds the lookup from patterns, in the order given.
    pub fn new(patterns: &[FarmPattern]) -> Self {
        Self {
            patterns: PatternMap::new(
                patterns
                    .iter()
                    .map(|entry| (entry.pattern.as_str(), entry.farm.as_str())),
            ),
            assigned: Arc::default(),
        }
    }

    /// Returns the farm of `device_id`: its assignment if it has one, else the first pattern
    /// that matches it.
    pub fn farm_of(&self, device_id: &str) -> Option<Arc<str>> {
        match self.assigned.get(device_id) {
            Some(farm) => farm.clone(),
            None => self.patterns.lookup(device_id),
        }
    }

    /// Puts `device_id` in `farm`, or in no farm with `None`, whatever the patterns say.
    pub fn assign(&self, device_id: &str, farm: Option<&str>) {
        self.assigned
            .insert(device_id.to_owned(), farm.map(Arc::from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_pattern_wins() {
        let types = DeviceTypes::new(&[
            DeviceTypePattern {
                pattern: "feedbin-100".into(),
                device_type: "spare".into(),
            },
            DeviceTypePattern {
                pattern: "feedbin-*".into(),
                device_type: "feed_bin".into(),
            },
        ]);
        assert_eq!(&*types.type_of("feedbin-100"), "spare");
        assert_eq!(&*types.type_of("feedbin-006"), "feed_bin");
        assert_eq!(&*types.type_of("fan-1"), DEFAULT_DEVICE_TYPE);
    }

    #[test]
    fn farm_is_absent_without_match() {
        let farms = Farms::new(&[FarmPattern {
            pattern: "feedbin-*".into(),
            farm: "odrc".into(),
        }]);
        assert_eq!(farms.farm_of("feedbin-001").as_deref(), Some("odrc"));
        assert_eq!(farms.farm_of("machine-01"), None);
    }

    #[test]
    fn assignment_overrides_pattern_in_every_clone() {
        let farms = Farms::new(&[FarmPattern {
            pattern: "feedbin-*".into(),
            farm: "odrc".into(),
        }]);
        let shared = farms.clone();
        farms.assign("feedbin-001", Some("north"));
        farms.assign("feedbin-002", None);
        assert_eq!(shared.farm_of("feedbin-001").as_deref(), Some("north"));
        assert_eq!(shared.farm_of("feedbin-002"), None);
        assert_eq!(shared.farm_of("feedbin-003").as_deref(), Some("odrc"));
    }
}
