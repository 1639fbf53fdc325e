//! Assignment of device types and farms to device ids by pattern. The type selects a device's
//! rule set; the farm selects the rule overrides that apply to it.

use std::sync::Arc;

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

/// Farms by id pattern.
#[derive(Debug, Clone, Default)]
pub struct Farms(PatternMap);

impl Farms {
    /// Builds the lookup from patterns, in the order given.
    pub fn new(patterns: &[FarmPattern]) -> Self {
        Self(PatternMap::new(
            patterns
                .iter()
                .map(|entry| (entry.pattern.as_str(), entry.farm.as_str())),
        ))
    }

    /// Returns the farm of `device_id`, if a pattern gives one.
    pub fn farm_of(&self, device_id: &str) -> Option<Arc<str>> {
        self.0.lookup(device_id)
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
}
