//! Assignment of device types to device ids, which selects each device's rule set.

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

/// Ordered patterns; the first that matches a device id gives its type.
#[derive(Debug, Clone, Default)]
pub struct DeviceTypes {
    patterns: Vec<(String, bool, Arc<str>)>,
}

impl DeviceTypes {
    /// Builds the lookup from patterns, in the order given.
    pub fn new(patterns: &[DeviceTypePattern]) -> Self {
        let patterns = patterns
            .iter()
            .map(|entry| {
                let (stem, is_prefix) = match entry.pattern.strip_suffix('*') {
                    Some(prefix) => (prefix.to_owned(), true),
                    None => (entry.pattern.clone(), false),
                };
                (stem, is_prefix, Arc::from(entry.device_type.as_str()))
            })
            .collect();
        Self { patterns }
    }

    /// Returns the type of `device_id`, or [`DEFAULT_DEVICE_TYPE`].
    pub fn type_of(&self, device_id: &str) -> Arc<str> {
        self.patterns
            .iter()
            .find(|(stem, is_prefix, _)| {
                if *is_prefix {
                    device_id.starts_with(stem.as_str())
                } else {
                    device_id == stem
                }
            })
            .map_or_else(
                || Arc::from(DEFAULT_DEVICE_TYPE),
                |(_, _, device_type)| Arc::clone(device_type),
            )
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
}
