//! Parsing and validation of rule files: one TOML file per device type, documented with
//! examples in `docs/rules.md`.
//!
//! ```toml
//! device_type = "feed_bin"
//! version = "7"
//!
//! [[rule]]
//! id = "bin_low"
//! severity = "major"
//! when = { key = "end_weight_kg", below = 2.0, clear_above = 5.0 }
//!
//! [[rule]]
//! id = "offline"
//! severity = "warning"
//! when = { no_data = "2h" }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::alarm::Severity;
use super::condition::{Condition, Direction, Leaf, Range, Threshold};
use super::template;
use super::{
    ClearMode, DEFAULT_RERAISE_AFTER, Escalation, FlappingLimit, OverrideScope, Rule, RuleOverride,
    RuleSet,
};
use crate::value::Value;

/// Shortest duration a rule may use, so a typo such as `"1ms"` cannot make a rule spin.
const MIN_DURATION: Duration = Duration::from_millis(100);

/// Error loading a rule file. Every problem found is listed, not only the first.
#[derive(Debug, thiserror::Error)]
pub enum RuleFileError {
    #[error("cannot read rule directory {path}: {reason}")]
    ReadDirectory {
        path: String,
        reason: std::io::Error,
    },
    #[error("cannot read rule file {path}: {reason}")]
    Read {
        path: String,
        reason: std::io::Error,
    },
    #[error("invalid rule file {path}: {reason}")]
    Syntax {
        path: String,
        reason: Box<toml::de::Error>,
    },
    #[error("invalid rule file {path}:\n  {}", problems.join("\n  "))]
    Invalid { path: String, problems: Vec<String> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFileSpec {
    device_type: String,
    version: Option<toml::Value>,
    #[serde(default)]
    rule: Vec<Spanned<RuleSpec>>,
    #[serde(default, rename = "override")]
    overrides: Vec<Spanned<OverrideSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideSpec {
    rule: String,
    devices: Option<Vec<String>>,
    farms: Option<Vec<String>>,
    severity: Option<Severity>,
    message: Option<String>,
    when: Option<ConditionSpec>,
    #[serde(default, rename = "for", with = "humantime_serde")]
    hold_for: Option<Duration>,
    clear_when: Option<ConditionSpec>,
    #[serde(default, with = "humantime_serde")]
    clear_after_silence: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    severity: Option<Severity>,
    message: Option<String>,
    when: ConditionSpec,
    #[serde(default, rename = "for", with = "humantime_serde")]
    hold_for: Option<Duration>,
    clear_when: Option<ConditionSpec>,
    #[serde(default, with = "humantime_serde")]
    clear_after_silence: Option<Duration>,
    #[serde(default)]
    escalate: Vec<EscalationSpec>,
    flapping: Option<FlappingSpec>,
    #[serde(default, with = "humantime_serde")]
    reraise_after: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationSpec {
    #[serde(with = "humantime_serde")]
    after: Duration,
    severity: Severity,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlappingSpec {
    transitions: u32,
    #[serde(with = "humantime_serde")]
    window: Duration,
}

/// One condition table: a combination (`all`, `any`), a count, or a test of one key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionSpec {
    all: Option<Vec<ConditionSpec>>,
    any: Option<Vec<ConditionSpec>>,
    count: Option<Box<ConditionSpec>>,
    at_least: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    within: Option<Duration>,
    key: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
    clear_below: Option<f64>,
    clear_above: Option<f64>,
    inside: Option<[f64; 2]>,
    outside: Option<[f64; 2]>,
    hysteresis: Option<f64>,
    equals: Option<toml::Value>,
    not_equals: Option<toml::Value>,
    rises_faster_than: Option<f64>,
    falls_faster_than: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    per: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    unchanged_for: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    no_data: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    desired_not_reached_within: Option<Duration>,
    tolerance: Option<f64>,
}

/// Reads and validates the rule file at `path`.
///
/// # Errors
///
/// Returns [`RuleFileError`] when the file cannot be read, is not valid TOML of the expected
/// shape, or breaks a rule constraint.
pub fn load(path: &Path) -> Result<RuleSet, RuleFileError> {
    let text = std::fs::read_to_string(path).map_err(|reason| RuleFileError::Read {
        path: path.display().to_string(),
        reason,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates rule file text; `origin` names the file in errors.
///
/// # Errors
///
/// Returns [`RuleFileError::Syntax`] for TOML or shape errors, with line and column, and
/// [`RuleFileError::Invalid`] listing every broken rule constraint with its line.
pub fn parse(text: &str, origin: &str) -> Result<RuleSet, RuleFileError> {
    let spec: RuleFileSpec = toml::from_str(text).map_err(|reason| RuleFileError::Syntax {
        path: origin.to_owned(),
        reason: Box::new(reason),
    })?;

    let mut problems = Vec::new();
    if spec.device_type.trim().is_empty() {
        problems
            .push("`device_type` is empty; name the device type these rules apply to".to_owned());
    }
    let mut rules = Vec::with_capacity(spec.rule.len());
    for (index, spanned) in spec.rule.iter().enumerate() {
        let rule = spanned.get_ref();
        let line = text[..spanned.span().start.min(text.len())]
            .matches('\n')
            .count()
            + 1;
        let label = format!("line {line}, rule `{}`", rule.id);
        if spec.rule[..index]
            .iter()
            .any(|earlier| earlier.get_ref().id == rule.id)
        {
            problems.push(format!(
                "{label}: duplicate id; each rule id must be unique in its file"
            ));
        }
        match build_rule(rule) {
            Ok(built) => rules.push(Arc::new(built)),
            Err(reasons) => problems.extend(
                reasons
                    .into_iter()
                    .map(|reason| format!("{label}: {reason}")),
            ),
        }
    }
    let mut overrides = Vec::with_capacity(spec.overrides.len());
    for spanned in &spec.overrides {
        let entry = spanned.get_ref();
        let label = format!(
            "line {}, override of `{}`",
            line_of(text, spanned.span().start),
            entry.rule
        );
        match build_override(entry, &rules) {
            Ok(built) => overrides.push(built),
            Err(reasons) => problems.extend(
                reasons
                    .into_iter()
                    .map(|reason| format!("{label}: {reason}")),
            ),
        }
    }
    if !problems.is_empty() {
        return Err(RuleFileError::Invalid {
            path: origin.to_owned(),
            problems,
        });
    }
    let version = match spec.version {
        Some(toml::Value::String(version)) => version,
        Some(other) => other.to_string(),
        None => format!("fnv-{:016x}", fnv1a(text.as_bytes())),
    };
    Ok(RuleSet {
        device_type: Arc::from(spec.device_type.trim()),
        version: Arc::from(version),
        rules,
        overrides,
    })
}

/// Returns the 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn build_override(spec: &OverrideSpec, rules: &[Arc<Rule>]) -> Result<RuleOverride, Vec<String>> {
    let mut problems = Vec::new();
    if !rules.iter().any(|rule| *rule.id == *spec.rule) {
        problems.push(format!(
            "no rule `{}` in this file; name the `id` of a rule above",
            spec.rule
        ));
    }
    let scope = match (&spec.devices, &spec.farms) {
        (Some(devices), None) if !devices.is_empty() => {
            for device in devices {
                if let Err(error) = crate::device_id::DeviceId::parse(device) {
                    problems.push(format!("`devices`: {error}"));
                }
            }
            Some(OverrideScope::Devices(devices.clone()))
        }
        (None, Some(farms)) if !farms.is_empty() => Some(OverrideScope::Farms(farms.clone())),
        _ => {
            problems.push(
                "set exactly one of `devices` or `farms`, with at least one entry".to_owned(),
            );
            None
        }
    };
    if let Some(unknown) = spec
        .message
        .as_deref()
        .and_then(template::unknown_placeholder)
    {
        problems.push(format!("`message` has unknown placeholder `{{{unknown}}}`"));
    }
    let condition = spec
        .when
        .as_ref()
        .map(|when| build_condition(when, "when", &mut problems));
    check_duration(spec.hold_for, "for", &mut problems);
    let clear = match (&spec.clear_when, spec.clear_after_silence) {
        (Some(_), Some(_)) => {
            problems.push("set at most one of `clear_when` and `clear_after_silence`".to_owned());
            None
        }
        (Some(condition), None) => {
            build_condition(condition, "clear_when", &mut problems).map(ClearMode::When)
        }
        (None, Some(after)) => {
            check_duration(Some(after), "clear_after_silence", &mut problems);
            Some(ClearMode::AfterSilence(after))
        }
        (None, None) => None,
    };
    let (Some(scope), true) = (scope, problems.is_empty()) else {
        return Err(problems);
    };
    Ok(RuleOverride {
        rule: Arc::from(spec.rule.as_str()),
        scope,
        severity: spec.severity,
        message: spec.message.clone(),
        condition: condition.flatten(),
        hold_for: spec.hold_for,
        clear,
    })
}

fn build_rule(spec: &RuleSpec) -> Result<Rule, Vec<String>> {
    let mut problems = Vec::new();
    if !is_valid_rule_id(&spec.id) {
        problems.push("`id` must be 1 to 64 characters of a-z 0-9 _ -".to_owned());
    }
    if let Some(unknown) = spec
        .message
        .as_deref()
        .and_then(template::unknown_placeholder)
    {
        problems.push(format!(
            "`message` has unknown placeholder `{{{unknown}}}`; use one of {}",
            template::PLACEHOLDERS.join(", ")
        ));
    }
    let condition = build_condition(&spec.when, "when", &mut problems);
    let clear = build_clear(spec, &mut problems);
    check_duration(spec.hold_for, "for", &mut problems);
    check_duration(spec.reraise_after, "reraise_after", &mut problems);
    let mut escalations = Vec::new();
    for (index, step) in spec.escalate.iter().enumerate() {
        check_duration(
            Some(step.after),
            &format!("escalate[{index}].after"),
            &mut problems,
        );
        if escalations
            .last()
            .is_some_and(|previous: &Escalation| previous.after >= step.after)
        {
            problems.push(format!(
                "`escalate[{index}].after` must be longer than the step before it"
            ));
        }
        escalations.push(Escalation {
            after: step.after,
            severity: step.severity,
        });
    }
    let flapping = spec.flapping.as_ref().map(|flapping| FlappingLimit {
        transitions: flapping.transitions,
        window: flapping.window,
    });
    if let Some(limit) = flapping {
        if limit.transitions < 2 {
            problems.push("`flapping.transitions` must be at least 2".to_owned());
        }
        check_duration(Some(limit.window), "flapping.window", &mut problems);
    }
    match (condition, clear) {
        (Some(condition), Some(clear)) if problems.is_empty() => Ok(Rule {
            id: Arc::from(spec.id.as_str()),
            severity: spec.severity.unwrap_or(Severity::Major),
            message: spec.message.clone(),
            condition,
            hold_for: spec.hold_for,
            clear,
            escalations,
            flapping,
            reraise_after: spec.reraise_after.unwrap_or(DEFAULT_RERAISE_AFTER),
        }),
        _ => Err(problems),
    }
}

fn build_clear(spec: &RuleSpec, problems: &mut Vec<String>) -> Option<ClearMode> {
    match (&spec.clear_when, spec.clear_after_silence) {
        (Some(_), Some(_)) => {
            problems.push("set at most one of `clear_when` and `clear_after_silence`".to_owned());
            None
        }
        (Some(condition), None) => {
            build_condition(condition, "clear_when", problems).map(ClearMode::When)
        }
        (None, Some(after)) => {
            check_duration(Some(after), "clear_after_silence", problems);
            Some(ClearMode::AfterSilence(after))
        }
        (None, None) => Some(ClearMode::Condition),
    }
}

fn build_condition(
    spec: &ConditionSpec,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<Condition> {
    if let Some(children) = spec.all.as_ref().or(spec.any.as_ref()) {
        let kind = if spec.all.is_some() { "all" } else { "any" };
        if spec.all.is_some() && spec.any.is_some() || spec.key.is_some() || spec.count.is_some() {
            problems.push(format!(
                "`{path}`: `{kind}` cannot be combined with other tests in one table; nest them"
            ));
            return None;
        }
        if children.is_empty() {
            problems.push(format!(
                "`{path}.{kind}` is empty; list at least one condition"
            ));
            return None;
        }
        let built: Vec<Option<Condition>> = children
            .iter()
            .enumerate()
            .map(|(index, child)| {
                build_condition(child, &format!("{path}.{kind}[{index}]"), problems)
            })
            .collect();
        let built: Option<Vec<Condition>> = built.into_iter().collect();
        return built.map(|children| {
            if kind == "all" {
                Condition::All(children)
            } else {
                Condition::Any(children)
            }
        });
    }
    build_leaf(spec, path, problems).map(Condition::Leaf)
}

fn build_leaf(spec: &ConditionSpec, path: &str, problems: &mut Vec<String>) -> Option<Leaf> {
    if let Some(inner) = &spec.count {
        return build_count(spec, inner, path, problems);
    }
    let tests = [
        ("above", spec.above.is_some()),
        ("below", spec.below.is_some()),
        ("inside", spec.inside.is_some()),
        ("outside", spec.outside.is_some()),
        ("equals", spec.equals.is_some()),
        ("not_equals", spec.not_equals.is_some()),
        ("rises_faster_than", spec.rises_faster_than.is_some()),
        ("falls_faster_than", spec.falls_faster_than.is_some()),
        ("unchanged_for", spec.unchanged_for.is_some()),
        ("no_data", spec.no_data.is_some()),
        (
            "desired_not_reached_within",
            spec.desired_not_reached_within.is_some(),
        ),
    ];
    let present: Vec<&str> = tests
        .iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| *name)
        .collect();
    let [test] = present.as_slice() else {
        let names: Vec<&str> = tests.iter().map(|(name, _)| *name).collect();
        problems.push(format!(
            "`{path}` needs exactly one test of {}, or `all`, `any` or `count`; found {}",
            names.join(", "),
            present.len()
        ));
        return None;
    };
    let key = spec
        .key
        .as_deref()
        .filter(|key| !key.is_empty())
        .map(Arc::<str>::from);
    if *test == "no_data" {
        let after = spec.no_data?;
        check_duration(Some(after), &format!("{path}.no_data"), problems);
        reject_extras(spec, path, &["key", "no_data"], problems);
        return Some(Leaf::NoData { key, after });
    }
    let Some(key) = key else {
        problems.push(format!(
            "`{path}.key` is missing; name the reported key that `{test}` tests"
        ));
        return None;
    };
    if *test == "desired_not_reached_within" {
        reject_extras(
            spec,
            path,
            &["key", "desired_not_reached_within", "tolerance"],
            problems,
        );
        let within = spec.desired_not_reached_within?;
        check_duration(
            Some(within),
            &format!("{path}.desired_not_reached_within"),
            problems,
        );
        let tolerance = spec.tolerance.unwrap_or(0.0);
        if !tolerance.is_finite() || tolerance < 0.0 {
            problems.push(format!("`{path}.tolerance` must be a number of at least 0"));
        }
        return Some(Leaf::DesiredNotReached {
            key,
            within,
            tolerance,
        });
    }
    match *test {
        "above" | "below" => build_threshold(spec, key, path, problems),
        "inside" | "outside" => build_range(spec, key, path, problems),
        "equals" | "not_equals" => {
            reject_extras(spec, path, &["key", "equals", "not_equals"], problems);
            let negate = spec.not_equals.is_some();
            let raw = spec.equals.as_ref().or(spec.not_equals.as_ref())?;
            let value = toml_to_value(raw).or_else(|| {
                problems.push(format!(
                    "`{path}.{test}` must be a number, boolean or string"
                ));
                None
            })?;
            Some(Leaf::Equals { key, value, negate })
        }
        "rises_faster_than" | "falls_faster_than" => {
            reject_extras(
                spec,
                path,
                &["key", "rises_faster_than", "falls_faster_than", "per"],
                problems,
            );
            let direction = if spec.rises_faster_than.is_some() {
                Direction::Above
            } else {
                Direction::Below
            };
            let limit = spec.rises_faster_than.or(spec.falls_faster_than)?;
            let Some(per) = spec.per else {
                problems.push(format!(
                    "`{path}.per` is missing; give the window of the rate, e.g. \"1m\""
                ));
                return None;
            };
            check_duration(Some(per), &format!("{path}.per"), problems);
            if !limit.is_finite() || limit <= 0.0 {
                problems.push(format!("`{path}.{test}` must be a positive number"));
            }
            Some(Leaf::RateOfChange {
                key,
                direction,
                limit,
                per,
            })
        }
        _ => {
            reject_extras(spec, path, &["key", "unchanged_for"], problems);
            let unchanged_for = spec.unchanged_for?;
            check_duration(
                Some(unchanged_for),
                &format!("{path}.unchanged_for"),
                problems,
            );
            Some(Leaf::Stale { key, unchanged_for })
        }
    }
}

fn build_threshold(
    spec: &ConditionSpec,
    key: Arc<str>,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<Leaf> {
    let (direction, raise_at, clear_at) = match (spec.above, spec.below) {
        (Some(limit), None) => {
            reject_extras(spec, path, &["key", "above", "clear_below"], problems);
            (Direction::Above, limit, spec.clear_below.unwrap_or(limit))
        }
        (None, Some(limit)) => {
            reject_extras(spec, path, &["key", "below", "clear_above"], problems);
            (Direction::Below, limit, spec.clear_above.unwrap_or(limit))
        }
        _ => return None,
    };
    if !raise_at.is_finite() || !clear_at.is_finite() {
        problems.push(format!("`{path}`: limits must be finite numbers"));
    }
    let band_ok = match direction {
        Direction::Above => clear_at <= raise_at,
        Direction::Below => clear_at >= raise_at,
    };
    if !band_ok {
        problems.push(format!(
            "`{path}`: clear level {clear_at} is on the alarm side of {raise_at}; it must be inside the normal range"
        ));
    }
    Some(Leaf::Threshold(Threshold {
        key,
        direction,
        raise_at,
        clear_at,
    }))
}

fn build_range(
    spec: &ConditionSpec,
    key: Arc<str>,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<Leaf> {
    reject_extras(
        spec,
        path,
        &["key", "inside", "outside", "hysteresis"],
        problems,
    );
    let outside = spec.outside.is_some();
    let [low, high] = spec.inside.or(spec.outside)?;
    let hysteresis = spec.hysteresis.unwrap_or(0.0);
    if !(low.is_finite() && high.is_finite() && low < high) {
        problems.push(format!(
            "`{path}`: the range [{low}, {high}] must be two finite numbers, low first"
        ));
    }
    if !hysteresis.is_finite() || hysteresis < 0.0 || 2.0 * hysteresis >= high - low {
        problems.push(format!(
            "`{path}.hysteresis` must be at least 0 and less than half the range"
        ));
    }
    Some(Leaf::Range(Range {
        key,
        low,
        high,
        outside,
        hysteresis,
    }))
}

fn build_count(
    spec: &ConditionSpec,
    inner: &ConditionSpec,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<Leaf> {
    reject_extras(spec, path, &["count", "at_least", "within"], problems);
    let inner_leaf = build_leaf(inner, &format!("{path}.count"), problems)?;
    if !matches!(
        inner_leaf,
        Leaf::Threshold(_) | Leaf::Range(_) | Leaf::Equals { .. }
    ) {
        problems.push(format!(
            "`{path}.count` must be a threshold, range or equals test"
        ));
    }
    let (Some(at_least), Some(within)) = (spec.at_least, spec.within) else {
        problems.push(format!(
            "`{path}` needs `at_least` and `within` with `count`"
        ));
        return None;
    };
    if at_least == 0 {
        problems.push(format!("`{path}.at_least` must be at least 1"));
    }
    check_duration(Some(within), &format!("{path}.within"), problems);
    Some(Leaf::Count {
        inner: Box::new(inner_leaf),
        at_least,
        within,
    })
}

/// Lists every field set in `spec` that the chosen test does not use.
fn reject_extras(spec: &ConditionSpec, path: &str, allowed: &[&str], problems: &mut Vec<String>) {
    let fields = [
        ("key", spec.key.is_some()),
        ("above", spec.above.is_some()),
        ("below", spec.below.is_some()),
        ("clear_below", spec.clear_below.is_some()),
        ("clear_above", spec.clear_above.is_some()),
        ("inside", spec.inside.is_some()),
        ("outside", spec.outside.is_some()),
        ("hysteresis", spec.hysteresis.is_some()),
        ("equals", spec.equals.is_some()),
        ("not_equals", spec.not_equals.is_some()),
        ("rises_faster_than", spec.rises_faster_than.is_some()),
        ("falls_faster_than", spec.falls_faster_than.is_some()),
        ("per", spec.per.is_some()),
        ("unchanged_for", spec.unchanged_for.is_some()),
        ("no_data", spec.no_data.is_some()),
        (
            "desired_not_reached_within",
            spec.desired_not_reached_within.is_some(),
        ),
        ("tolerance", spec.tolerance.is_some()),
        ("count", spec.count.is_some()),
        ("at_least", spec.at_least.is_some()),
        ("within", spec.within.is_some()),
    ];
    for (field, present) in fields {
        if present && !allowed.contains(&field) {
            problems.push(format!(
                "`{path}.{field}` does not fit this test; allowed here: {}",
                allowed.join(", ")
            ));
        }
    }
}

fn check_duration(duration: Option<Duration>, field: &str, problems: &mut Vec<String>) {
    if let Some(duration) = duration.filter(|duration| *duration < MIN_DURATION) {
        problems.push(format!(
            "`{field}` of {duration:?} is too short; use at least 100ms"
        ));
    }
}

fn toml_to_value(raw: &toml::Value) -> Option<Value> {
    match raw {
        toml::Value::Integer(number) => Some(Value::Number(*number as f64)),
        toml::Value::Float(number) if number.is_finite() => Some(Value::Number(*number)),
        toml::Value::Boolean(flag) => Some(Value::Bool(*flag)),
        toml::Value::String(text) => Some(Value::Text(Arc::from(text.as_str()))),
        _ => None,
    }
}

fn is_valid_rule_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Returns the 64-bit FNV-1a hash of `bytes`, a stable fingerprint of a file's text.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED_BIN: &str = r#"
device_type = "feed_bin"
version = "3"

[[rule]]
id = "bin_low"
severity = "major"
when = { key = "end_weight_kg", below = 2.0, clear_above = 5.0 }

[[rule]]
id = "offline"
severity = "warning"
when = { no_data = "90s" }

[[rule]]
id = "overheat"
for = "5m"
when = { all = [ { key = "t", above = 95.0, clear_below = 90.0 }, { key = "mode", equals = "run" } ] }
clear_after_silence = "30m"
escalate = [ { after = "1h", severity = "critical" } ]
flapping = { transitions = 4, window = "10m" }
"#;

    #[test]
    fn parse_builds_every_part() {
        let set = parse(FEED_BIN, "feed_bin.toml").unwrap();
        assert_eq!(&*set.device_type, "feed_bin");
        assert_eq!(&*set.version, "3");
        assert_eq!(set.rules.len(), 3);
        let Condition::Leaf(Leaf::Threshold(threshold)) = &set.rules[0].condition else {
            panic!("first rule should be a threshold");
        };
        assert_eq!(threshold.direction, Direction::Below);
        assert_eq!(threshold.clear_at, 5.0);
        assert_eq!(
            set.rules[1].condition,
            Condition::Leaf(Leaf::NoData {
                key: None,
                after: Duration::from_secs(90)
            })
        );
        let overheat = &set.rules[2];
        assert_eq!(overheat.hold_for, Some(Duration::from_secs(300)));
        assert_eq!(
            overheat.clear,
            ClearMode::AfterSilence(Duration::from_secs(1800))
        );
        assert_eq!(
            overheat.escalations,
            vec![Escalation {
                after: Duration::from_secs(3600),
                severity: Severity::Critical
            }]
        );
        assert_eq!(
            overheat.flapping,
            Some(FlappingLimit {
                transitions: 4,
                window: Duration::from_secs(600)
            })
        );
        assert_eq!(overheat.keys().len(), 2);
    }

    #[test]
    fn parse_hashes_text_without_version() {
        let text = "device_type = \"fan\"\n[[rule]]\nid = \"x\"\nwhen = { no_data = \"1m\" }\n";
        let first = parse(text, "fan.toml").unwrap();
        assert!(first.version.starts_with("fnv-"), "{}", first.version);
        let changed = parse(&text.replace("1m", "2m"), "fan.toml").unwrap();
        assert_ne!(first.version, changed.version);
    }

    #[test]
    fn parse_lists_every_problem_with_line() {
        let text = r#"device_type = "fan"

[[rule]]
id = "hot"
when = { key = "t", above = 40.0, clear_below = 45.0 }

[[rule]]
id = "hot"
when = { key = "t", below = 1.0, per = "1m" }

[[rule]]
id = "Bad Id"
when = { key = "t", above = 1.0, below = 0.0 }
"#;
        let error = parse(text, "fan.toml").unwrap_err();
        let RuleFileError::Invalid { problems, .. } = &error else {
            panic!("expected invalid, got {error}");
        };
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(
            problems[0].starts_with("line 3, rule `hot`"),
            "{}",
            problems[0]
        );
        assert!(problems[0].contains("clear level 45 is on the alarm side of 40"));
        assert!(
            problems[1].starts_with("line 7, rule `hot`: duplicate id"),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].contains("`when.per` does not fit this test"),
            "{}",
            problems[2]
        );
        assert!(problems[3].starts_with("line 11"), "{}", problems[3]);
        assert!(problems[3].contains("`id` must be"));
        assert!(
            problems[4].contains("needs exactly one test"),
            "{}",
            problems[4]
        );
        assert!(error.to_string().starts_with("invalid rule file fan.toml:"));
    }

    #[test]
    fn parse_reports_line_of_syntax_error() {
        let error = parse(
            "device_type = \"fan\"\n[[rule]]\nid = \"x\"\nwhen = oops\n",
            "fan.toml",
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("fan.toml"), "{message}");
        assert!(message.contains("line 4"), "{message}");
    }

    #[test]
    fn parse_rejects_unknown_fields() {
        let error = parse(
            "device_type = \"fan\"\n[[rule]]\nid = \"x\"\nwhen = { key = \"t\", abov = 3 }\n",
            "fan.toml",
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("unknown field `abov`"),
            "{error}"
        );
    }

    #[test]
    fn parse_rejects_unknown_placeholder() {
        let text = "device_type = \"fan\"\n[[rule]]\nid = \"x\"\nwhen = { no_data = \"1m\" }\nmessage = \"{devise} gone\"\n";
        let error = parse(text, "fan.toml").unwrap_err();
        assert!(
            error.to_string().contains("unknown placeholder `{devise}`"),
            "{error}"
        );
    }

    #[test]
    fn parse_builds_each_leaf_kind() {
        let cases = [
            (
                "{ key = \"p\", outside = [10.0, 20.0], hysteresis = 1.0 }",
                "Range",
            ),
            ("{ key = \"mode\", equals = \"fault\" }", "Equals"),
            ("{ key = \"door\", not_equals = false }", "Equals"),
            (
                "{ key = \"t\", rises_faster_than = 2.0, per = \"1m\" }",
                "RateOfChange",
            ),
            ("{ key = \"w\", unchanged_for = \"30m\" }", "Stale"),
            (
                "{ count = { key = \"door\", equals = true }, at_least = 5, within = \"10m\" }",
                "Count",
            ),
            ("{ key = \"t\", no_data = \"10m\" }", "NoData"),
        ];
        for (when, kind) in cases {
            let text = format!("device_type = \"fan\"\n[[rule]]\nid = \"x\"\nwhen = {when}\n");
            let set = parse(&text, "fan.toml").unwrap_or_else(|error| panic!("{when}: {error}"));
            let Condition::Leaf(leaf) = &set.rules[0].condition else {
                panic!("{when}: not a leaf")
            };
            assert!(format!("{leaf:?}").starts_with(kind), "{when}: {leaf:?}");
        }
    }

    #[test]
    fn parse_rejects_bad_escalation_order_and_clear_modes() {
        let text = r#"device_type = "fan"
[[rule]]
id = "x"
when = { no_data = "1m" }
clear_when = { no_data = "2m" }
clear_after_silence = "5m"
escalate = [ { after = "1h", severity = "major" }, { after = "30m", severity = "critical" } ]
"#;
        let error = parse(text, "fan.toml").unwrap_err().to_string();
        assert!(
            error.contains("at most one of `clear_when` and `clear_after_silence`"),
            "{error}"
        );
        assert!(
            error.contains("`escalate[1].after` must be longer"),
            "{error}"
        );
    }
}
