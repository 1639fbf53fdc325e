//! Parsing and validation of rule files: one TOML file per device type.
//!
//! ```toml
//! device_type = "feed_bin"
//!
//! [[rule]]
//! id = "bin_low"
//! kind = "threshold"
//! key = "end_weight_kg"
//! below = 2.0
//! clear_above = 5.0
//! severity = "major"
//! message = "{device}: {key} {value} below {limit}"
//!
//! [[rule]]
//! id = "offline"
//! kind = "offline"
//! after = "90s"
//! severity = "warning"
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::condition::{Condition, Direction, Threshold};
use super::template;
use super::{Rule, RuleSet};
use crate::rules::alarm::Severity;

/// Error loading a rule file. Every problem found is listed, not only the first.
#[derive(Debug, thiserror::Error)]
pub enum RuleFileError {
    #[error("cannot read rule file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid rule file {path}: {source}")]
    Syntax {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid rule file {path}:\n  {}", problems.join("\n  "))]
    Invalid { path: String, problems: Vec<String> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFileSpec {
    device_type: String,
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    kind: String,
    severity: Option<Severity>,
    message: Option<String>,
    key: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
    clear_below: Option<f64>,
    clear_above: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    after: Option<Duration>,
}

/// Reads and validates the rule file at `path`.
///
/// # Errors
///
/// Returns [`RuleFileError`] when the file cannot be read, is not valid TOML of the expected
/// shape, or breaks a rule constraint.
pub fn load(path: &Path) -> Result<RuleSet, RuleFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuleFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates rule file text; `origin` names the file in errors.
///
/// # Errors
///
/// Returns [`RuleFileError::Syntax`] for TOML or shape errors, with line and column, and
/// [`RuleFileError::Invalid`] listing every broken rule constraint.
pub fn parse(text: &str, origin: &str) -> Result<RuleSet, RuleFileError> {
    let spec: RuleFileSpec = toml::from_str(text).map_err(|source| RuleFileError::Syntax {
        path: origin.to_owned(),
        source: Box::new(source),
    })?;

    let mut problems = Vec::new();
    if spec.device_type.trim().is_empty() {
        problems
            .push("`device_type` is empty; name the device type these rules apply to".to_owned());
    }
    let mut rules = Vec::with_capacity(spec.rule.len());
    for (index, rule) in spec.rule.iter().enumerate() {
        let label = format!("rule #{} (`{}`)", index + 1, rule.id);
        if spec.rule[..index]
            .iter()
            .any(|earlier| earlier.id == rule.id)
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
    if !problems.is_empty() {
        return Err(RuleFileError::Invalid {
            path: origin.to_owned(),
            problems,
        });
    }
    Ok(RuleSet {
        device_type: Arc::from(spec.device_type.trim()),
        rules,
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
    let condition = match spec.kind.as_str() {
        "threshold" => build_threshold(spec, &mut problems),
        "offline" => build_offline(spec, &mut problems),
        other => {
            problems.push(format!(
                "unknown `kind` `{other}`; use `threshold` or `offline`"
            ));
            None
        }
    };
    match condition {
        Some(condition) if problems.is_empty() => Ok(Rule {
            id: Arc::from(spec.id.as_str()),
            severity: spec.severity.unwrap_or(Severity::Major),
            message: spec.message.clone(),
            condition,
        }),
        _ => Err(problems),
    }
}

fn build_threshold(spec: &RuleSpec, problems: &mut Vec<String>) -> Option<Condition> {
    if spec.after.is_some() {
        problems.push("`after` does not apply to a threshold rule".to_owned());
    }
    let Some(key) = spec.key.as_deref().filter(|key| !key.is_empty()) else {
        problems.push("`key` is missing; name the reported key to watch".to_owned());
        return None;
    };
    let (direction, raise_at, clear_at) = match (spec.above, spec.below) {
        (Some(limit), None) => {
            reject_field(
                spec.clear_above,
                "clear_above",
                "an `above` rule clears with `clear_below`",
                problems,
            );
            (Direction::Above, limit, spec.clear_below.unwrap_or(limit))
        }
        (None, Some(limit)) => {
            reject_field(
                spec.clear_below,
                "clear_below",
                "a `below` rule clears with `clear_above`",
                problems,
            );
            (Direction::Below, limit, spec.clear_above.unwrap_or(limit))
        }
        _ => {
            problems.push("set exactly one of `above` or `below`".to_owned());
            return None;
        }
    };
    if !raise_at.is_finite() || !clear_at.is_finite() {
        problems.push("limits must be finite numbers".to_owned());
    }
    let band_ok = match direction {
        Direction::Above => clear_at <= raise_at,
        Direction::Below => clear_at >= raise_at,
    };
    if !band_ok {
        problems.push(format!(
            "clear level {clear_at} is on the alarm side of {raise_at}; it must be inside the normal range"
        ));
    }
    Some(Condition::Threshold(Threshold {
        key: Arc::from(key),
        direction,
        raise_at,
        clear_at,
    }))
}

fn build_offline(spec: &RuleSpec, problems: &mut Vec<String>) -> Option<Condition> {
    let stray = [
        ("key", spec.key.is_some()),
        ("above", spec.above.is_some()),
        ("below", spec.below.is_some()),
        ("clear_above", spec.clear_above.is_some()),
        ("clear_below", spec.clear_below.is_some()),
    ];
    for (field, present) in stray {
        if present {
            problems.push(format!("`{field}` does not apply to an offline rule"));
        }
    }
    match spec.after {
        Some(after) if after >= Duration::from_millis(100) => Some(Condition::Offline { after }),
        Some(after) => {
            problems.push(format!(
                "`after` of {after:?} is too short; use at least 100ms"
            ));
            None
        }
        None => {
            problems.push(
                "`after` is missing; give the silence that makes a device offline, e.g. \"5m\""
                    .to_owned(),
            );
            None
        }
    }
}

fn reject_field(value: Option<f64>, field: &str, hint: &str, problems: &mut Vec<String>) {
    if value.is_some() {
        problems.push(format!("`{field}` does not fit here: {hint}"));
    }
}

fn is_valid_rule_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED_BIN: &str = r#"
device_type = "feed_bin"

[[rule]]
id = "bin_low"
kind = "threshold"
key = "end_weight_kg"
below = 2.0
clear_above = 5.0
severity = "major"

[[rule]]
id = "offline"
kind = "offline"
after = "90s"
severity = "warning"
"#;

    #[test]
    fn parse_builds_threshold_and_offline() {
        let set = parse(FEED_BIN, "feed_bin.toml").unwrap();
        assert_eq!(&*set.device_type, "feed_bin");
        assert_eq!(set.rules.len(), 2);
        let Condition::Threshold(threshold) = &set.rules[0].condition else {
            panic!("first rule should be a threshold");
        };
        assert_eq!(threshold.direction, Direction::Below);
        assert_eq!(threshold.raise_at, 2.0);
        assert_eq!(threshold.clear_at, 5.0);
        assert_eq!(
            set.rules[1].condition,
            Condition::Offline {
                after: Duration::from_secs(90)
            }
        );
        assert_eq!(set.rules[1].severity, Severity::Warning);
    }

    #[test]
    fn parse_lists_every_problem() {
        let text = r#"
device_type = "fan"
[[rule]]
id = "hot"
kind = "threshold"
key = "t"
above = 40.0
clear_below = 45.0
[[rule]]
id = "hot"
kind = "offline"
[[rule]]
id = "Bad Id"
kind = "vibration"
"#;
        let error = parse(text, "fan.toml").unwrap_err();
        let RuleFileError::Invalid { problems, .. } = &error else {
            panic!("expected invalid, got {error}");
        };
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].contains("clear level 45 is on the alarm side of 40"));
        assert!(problems[1].contains("duplicate id"));
        assert!(problems[2].contains("`after` is missing"));
        assert!(problems[3].contains("`id` must be"));
        assert!(problems[4].contains("unknown `kind` `vibration`"));
        assert!(error.to_string().starts_with("invalid rule file fan.toml:"));
    }

    #[test]
    fn parse_reports_line_of_syntax_error() {
        let error = parse(
            "device_type = \"fan\"\n[[rule]]\nid = \"x\"\nabove = oops\n",
            "fan.toml",
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("fan.toml"), "{message}");
        assert!(message.contains("line 4"), "{message}");
    }

    #[test]
    fn parse_rejects_unknown_field() {
        let error = parse("device_type = \"fan\"\n[[rule]]\nid = \"x\"\nkind = \"offline\"\nafter = \"1m\"\nabov = 3\n", "fan.toml")
            .unwrap_err();
        assert!(
            error.to_string().contains("unknown field `abov`"),
            "{error}"
        );
    }

    #[test]
    fn parse_rejects_unknown_placeholder() {
        let text = "device_type = \"fan\"\n[[rule]]\nid = \"x\"\nkind = \"offline\"\nafter = \"1m\"\nmessage = \"{devise} gone\"\n";
        let error = parse(text, "fan.toml").unwrap_err();
        assert!(
            error.to_string().contains("unknown placeholder `{devise}`"),
            "{error}"
        );
    }
}
