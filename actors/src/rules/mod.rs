//! Alarm rules: the rule model, rule files, and the per-device-type rule book.

pub mod alarm;
pub mod condition;
pub mod rule_file;
pub mod template;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub use alarm::{Alarm, AlarmEvent, AlarmState, Severity, Transition};
pub use condition::{Condition, Direction, Threshold, Verdict};
pub use rule_file::RuleFileError;

/// One alarm rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique within its rule file; part of every alarm id.
    pub id: Arc<str>,
    pub severity: Severity,
    /// Template for alarm messages; a default per condition is used when absent.
    pub message: Option<String>,
    pub condition: Condition,
}

/// The rules of one device type.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    pub device_type: Arc<str>,
    pub rules: Vec<Arc<Rule>>,
}

impl RuleSet {
    /// Returns an empty rule set for `device_type`.
    pub fn empty(device_type: &str) -> Self {
        Self {
            device_type: Arc::from(device_type),
            rules: Vec::new(),
        }
    }

    /// Returns a copy whose time limits are divided by `speed`, for data replayed `speed`
    /// times faster than it was recorded: an offline rule of 2 h then fires after 2 h of
    /// device time. Limits are kept at 100 ms or more.
    pub fn scaled_for_replay(&self, speed: f64) -> Self {
        if speed <= 0.0 {
            return self.clone();
        }
        let rules = self
            .rules
            .iter()
            .map(|rule| match rule.condition {
                Condition::Offline { after } => {
                    let scaled = after
                        .div_f64(speed)
                        .max(std::time::Duration::from_millis(100));
                    Arc::new(Rule {
                        condition: Condition::Offline { after: scaled },
                        ..(**rule).clone()
                    })
                }
                Condition::Threshold(_) => Arc::clone(rule),
            })
            .collect();
        Self {
            device_type: Arc::clone(&self.device_type),
            rules,
        }
    }
}

/// Rule sets by device type.
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    sets: HashMap<Arc<str>, Arc<RuleSet>>,
}

impl RuleBook {
    /// Builds a book from rule sets; a later set for the same device type replaces an earlier.
    pub fn from_sets(sets: impl IntoIterator<Item = RuleSet>) -> Self {
        let sets = sets
            .into_iter()
            .map(|set| (Arc::clone(&set.device_type), Arc::new(set)))
            .collect();
        Self { sets }
    }

    /// Loads every `*.toml` file in `directory`, in file-name order.
    ///
    /// # Errors
    ///
    /// Returns the first [`RuleFileError`]; no partial book is returned.
    pub fn load_directory(directory: &Path) -> Result<Self, RuleFileError> {
        let read_error = |source| RuleFileError::Read {
            path: directory.display().to_string(),
            source,
        };
        let mut paths: Vec<_> = std::fs::read_dir(directory)
            .map_err(read_error)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "toml")
            })
            .collect();
        paths.sort();
        let sets = paths
            .iter()
            .map(|path| rule_file::load(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_sets(sets))
    }

    /// Returns the rules of `device_type`, or an empty set when it has none.
    pub fn rules_for(&self, device_type: &str) -> Arc<RuleSet> {
        self.sets
            .get(device_type)
            .cloned()
            .unwrap_or_else(|| Arc::new(RuleSet::empty(device_type)))
    }

    /// Returns every rule set.
    pub fn sets(&self) -> impl Iterator<Item = &Arc<RuleSet>> {
        self.sets.values()
    }

    /// Returns the device types that have rules.
    pub fn device_types(&self) -> impl Iterator<Item = &str> {
        self.sets.keys().map(|name| &**name)
    }
}
