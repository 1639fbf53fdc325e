//! Alarm rules: the rule model, rule files, the evaluator, and the per-device-type rule book.

pub mod alarm;
pub mod condition;
pub mod evaluator;
pub mod leaf_state;
pub mod rule_file;
pub mod template;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use alarm::{Alarm, AlarmEvent, AlarmInput, AlarmState, OperatorAction, Severity, Transition};
pub use condition::{Condition, Direction, Leaf, Threshold, Verdict};
pub use evaluator::{
    AlarmAction, AlarmCommand, CommandError, ExternalCondition, RuleEvaluator, is_external_rule,
};
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
    /// Device time the condition must hold without interruption before the alarm is raised.
    pub hold_for: Option<Duration>,
    pub clear: ClearMode,
    /// Severity steps while the alarm stays active, by time since the raise, ascending.
    pub escalations: Vec<Escalation>,
    /// More than `transitions` raises and clears within `window` make the alarm flapping.
    pub flapping: Option<FlappingLimit>,
    /// After an operator clears the alarm while the condition still holds, the rule waits this
    /// long (engine clock) before raising it again as a new alarm.
    pub reraise_after: Duration,
}

/// Wait before a hand-cleared alarm whose condition is still true is raised again, when a rule
/// does not set `reraise_after`.
pub const DEFAULT_RERAISE_AFTER: Duration = Duration::from_secs(5 * 60);

/// The way an active alarm clears.
#[derive(Debug, Clone, PartialEq)]
pub enum ClearMode {
    /// When the condition no longer holds; each leaf's clear level gives the hysteresis.
    Condition,
    /// When this separate condition holds.
    When(Condition),
    /// When no frame has met the condition for this long on the engine's clock.
    AfterSilence(Duration),
}

/// A severity an alarm moves to once it has been active for `after`.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    pub after: Duration,
    pub severity: Severity,
}

/// The limit beyond which an alarm counts as flapping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlappingLimit {
    pub transitions: u32,
    pub window: Duration,
}

impl Rule {
    /// Returns the rule as one line: its condition, then the options that change its behaviour.
    pub fn describe(&self) -> String {
        let mut text = self.condition.to_string();
        if let Some(hold_for) = self.hold_for {
            text.push_str(&format!(" for {}", humantime::format_duration(hold_for)));
        }
        match &self.clear {
            ClearMode::Condition => {}
            ClearMode::When(condition) => text.push_str(&format!("; clears when {condition}")),
            ClearMode::AfterSilence(after) => {
                text.push_str(&format!(
                    "; clears after {} without a trigger",
                    humantime::format_duration(*after)
                ));
            }
        }
        for step in &self.escalations {
            text.push_str(&format!(
                "; {} after {}",
                step.severity.as_str(),
                humantime::format_duration(step.after)
            ));
        }
        if let Some(limit) = self.flapping {
            text.push_str(&format!(
                "; flapping past {} changes in {}",
                limit.transitions,
                humantime::format_duration(limit.window)
            ));
        }
        text
    }

    /// Returns every key the rule reads, in first-use order.
    pub fn keys(&self) -> Vec<Arc<str>> {
        let mut keys: Vec<Arc<str>> = Vec::new();
        let clear_leaves = match &self.clear {
            ClearMode::When(condition) => condition.leaves(),
            ClearMode::Condition | ClearMode::AfterSilence(_) => Vec::new(),
        };
        for key in self
            .condition
            .leaves()
            .into_iter()
            .chain(clear_leaves)
            .filter_map(Leaf::key)
        {
            if !keys.contains(key) {
                keys.push(Arc::clone(key));
            }
        }
        keys
    }
}

/// The rules of one device type.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    pub device_type: Arc<str>,
    /// The file's `version`, or a hash of its text when it has none; recorded in every alarm.
    pub version: Arc<str>,
    pub rules: Vec<Arc<Rule>>,
    /// Changes to rules for some farms or devices, applied by [`RuleSet::for_device`].
    pub overrides: Vec<RuleOverride>,
}

/// Changes to one rule for some devices or farms. Fields left `None` keep the rule's own.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOverride {
    pub rule: Arc<str>,
    pub scope: OverrideScope,
    pub severity: Option<Severity>,
    pub message: Option<String>,
    pub condition: Option<Condition>,
    pub hold_for: Option<Duration>,
    pub clear: Option<ClearMode>,
}

/// The devices an override applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum OverrideScope {
    Devices(Vec<String>),
    Farms(Vec<String>),
}

impl RuleOverride {
    fn applies_to(&self, device: &str, farm: Option<&str>) -> bool {
        match &self.scope {
            OverrideScope::Devices(devices) => devices.iter().any(|id| id == device),
            OverrideScope::Farms(farms) => {
                farm.is_some_and(|farm| farms.iter().any(|name| name == farm))
            }
        }
    }

    fn apply(&self, rule: &Rule) -> Rule {
        let mut rule = rule.clone();
        if let Some(severity) = self.severity {
            rule.severity = severity;
        }
        if let Some(message) = &self.message {
            rule.message = Some(message.clone());
        }
        if let Some(condition) = &self.condition {
            rule.condition = condition.clone();
        }
        if let Some(hold_for) = self.hold_for {
            rule.hold_for = Some(hold_for);
        }
        if let Some(clear) = &self.clear {
            rule.clear = clear.clone();
        }
        rule
    }
}

impl RuleSet {
    /// Returns an empty rule set for `device_type`.
    pub fn empty(device_type: &str) -> Self {
        Self {
            device_type: Arc::from(device_type),
            version: Arc::from("none"),
            rules: Vec::new(),
            overrides: Vec::new(),
        }
    }

    /// Returns the rules of one device: the set itself when no override applies, otherwise a
    /// copy with the farm's overrides applied, then the device's own.
    pub fn for_device(set: &Arc<RuleSet>, device: &str, farm: Option<&str>) -> Arc<RuleSet> {
        let matching: Vec<&RuleOverride> = set
            .overrides
            .iter()
            .filter(|entry| entry.applies_to(device, farm))
            .collect();
        if matching.is_empty() {
            return Arc::clone(set);
        }
        let by_farm = matching
            .iter()
            .filter(|entry| matches!(entry.scope, OverrideScope::Farms(_)));
        let by_device = matching
            .iter()
            .filter(|entry| matches!(entry.scope, OverrideScope::Devices(_)));
        let mut rules: Vec<Rule> = set.rules.iter().map(|rule| (**rule).clone()).collect();
        for entry in by_farm.chain(by_device) {
            for rule in rules.iter_mut().filter(|rule| rule.id == entry.rule) {
                *rule = entry.apply(rule);
            }
        }
        Arc::new(RuleSet {
            device_type: Arc::clone(&set.device_type),
            version: Arc::clone(&set.version),
            rules: rules.into_iter().map(Arc::new).collect(),
            overrides: Vec::new(),
        })
    }

    /// Returns a copy whose engine-clock limits (no data, desired values, clear after silence,
    /// escalation, re-raise) are divided by `speed`, for data replayed `speed` times faster than
    /// it was recorded: a no-data rule of 2 h then fires after 2 h of device time. Limits stay
    /// at [`MIN_SCALED_LIMIT`] or more, and messages keep the recorded duration. Device-time
    /// limits need no scaling.
    pub fn scaled_for_replay(&self, speed: f64) -> Self {
        if speed <= 0.0 {
            return self.clone();
        }
        let rules = self
            .rules
            .iter()
            .map(|rule| Arc::new(scale_rule(rule, speed)))
            .collect();
        let scale = |duration: Duration| scale_duration(duration, speed);
        let overrides = self
            .overrides
            .iter()
            .map(|entry| RuleOverride {
                condition: entry
                    .condition
                    .as_ref()
                    .map(|condition| scale_condition(condition, &scale)),
                ..entry.clone()
            })
            .collect();
        Self {
            device_type: Arc::clone(&self.device_type),
            version: Arc::clone(&self.version),
            rules,
            overrides,
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
        let read_error = |reason| RuleFileError::ReadDirectory {
            path: directory.display().to_string(),
            reason,
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

    /// Returns a copy in which `sets` replace the sets of the same device types.
    pub fn with_sets(&self, sets: impl IntoIterator<Item = Arc<RuleSet>>) -> Self {
        let mut merged = self.sets.clone();
        for set in sets {
            merged.insert(Arc::clone(&set.device_type), set);
        }
        Self { sets: merged }
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

/// Shortest engine-clock limit a replay-scaled rule keeps, so that the pacing jitter of a fast
/// replay on a busy machine cannot raise a no-data alarm between two regular frames.
pub const MIN_SCALED_LIMIT: Duration = Duration::from_secs(2);

fn scale_duration(duration: Duration, speed: f64) -> Duration {
    duration.div_f64(speed).max(MIN_SCALED_LIMIT.min(duration))
}

fn scale_rule(rule: &Rule, speed: f64) -> Rule {
    let scale = |duration: Duration| scale_duration(duration, speed);
    let clear = match &rule.clear {
        ClearMode::AfterSilence(after) => ClearMode::AfterSilence(scale(*after)),
        ClearMode::When(condition) => ClearMode::When(scale_condition(condition, &scale)),
        ClearMode::Condition => ClearMode::Condition,
    };
    let escalations = rule
        .escalations
        .iter()
        .map(|step| Escalation {
            after: scale(step.after),
            severity: step.severity,
        })
        .collect();
    Rule {
        message: message_with_recorded_limit(rule),
        condition: scale_condition(&rule.condition, &scale),
        clear,
        escalations,
        reraise_after: scale(rule.reraise_after),
        ..rule.clone()
    }
}

/// Returns the rule's message with `{limit}` written out as the unscaled duration when the
/// condition's first test is time-based, so a scaled no-data alarm still reads "2h".
fn message_with_recorded_limit(rule: &Rule) -> Option<String> {
    let leaf = rule.condition.first_leaf()?;
    if !matches!(leaf, Leaf::NoData { .. } | Leaf::DesiredNotReached { .. }) {
        return rule.message.clone();
    }
    let template = rule
        .message
        .as_deref()
        .unwrap_or_else(|| evaluator::default_template(leaf));
    Some(template.replace("{limit}", &leaf.limit_text()))
}

fn scale_condition(condition: &Condition, scale: &impl Fn(Duration) -> Duration) -> Condition {
    let scale_all = |children: &[Condition]| {
        children
            .iter()
            .map(|child| scale_condition(child, scale))
            .collect()
    };
    match condition {
        Condition::All(children) => Condition::All(scale_all(children)),
        Condition::Any(children) => Condition::Any(scale_all(children)),
        Condition::Leaf(Leaf::NoData { key, after }) => Condition::Leaf(Leaf::NoData {
            key: key.clone(),
            after: scale(*after),
        }),
        Condition::Leaf(Leaf::DesiredNotReached {
            key,
            within,
            tolerance,
        }) => Condition::Leaf(Leaf::DesiredNotReached {
            key: key.clone(),
            within: scale(*within),
            tolerance: *tolerance,
        }),
        Condition::Leaf(leaf) => Condition::Leaf(leaf.clone()),
    }
}
