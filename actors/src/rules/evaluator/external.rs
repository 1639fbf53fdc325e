//! Alarms raised from outside the rule set: maintenance that comes due and wear trends that
//! will cross a limit. They share the rule alarms' lifecycle (raise, escalate, clear,
//! acknowledge, shelve, history, notifications) but their condition is decided by the caller.
//!
//! Their rule names contain a `.` (`maintenance.grease_bearings`, `wear.temperature`), which
//! rule file ids cannot, so a restore can separate them from rule alarms.

use std::sync::Arc;

use super::{AlarmCommand, CommandError, Moment, RuleEvaluator};
use crate::rules::alarm::{
    Alarm, AlarmEvent, AlarmInput, AlarmState, OperatorAction, Severity, Transition,
};
use crate::rules::evaluator::AlarmAction;
use crate::shadow::Shadow;
use crate::value::Value;

/// An alarm condition decided outside the rule set, and what its alarm reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalCondition {
    /// The alarm's rule name; it must contain a `.` and no `/`. [`RuleEvaluator::set_external`]
    /// uses the name it is given instead.
    pub rule: Arc<str>,
    pub severity: Severity,
    pub message: String,
    pub key: Option<Arc<str>>,
    pub value: Option<Value>,
    /// The values the decision was made on, for the operator.
    pub inputs: Vec<AlarmInput>,
    /// After an operator clears the alarm while the condition still holds, how long in
    /// milliseconds the condition stays quiet unless it becomes more urgent. Zero raises the
    /// alarm again at the next decision.
    pub quiet_after_clear_ms: i64,
}

/// An external alarm that an operator cleared: its rule, its severity then, and when.
#[derive(Debug, Clone)]
pub(super) struct HandCleared {
    rule: Arc<str>,
    severity: Severity,
    at: i64,
}

/// Returns true for the rule name of an external alarm.
pub fn is_external_rule(rule: &str) -> bool {
    rule.contains('.')
}

impl RuleEvaluator {
    /// Raises, escalates or clears the external alarm `rule` at engine time `now` and returns
    /// the transitions. An open alarm clears when `condition` is `None`. It escalates when the
    /// condition becomes more urgent, and when it becomes less urgent the alarm clears and a
    /// new one is raised at the lower severity. `frame_ts` is the device time the decision is
    /// about.
    pub fn set_external(
        &mut self,
        rule: &str,
        condition: Option<ExternalCondition>,
        frame_ts: Option<i64>,
        now: i64,
    ) -> Vec<AlarmEvent> {
        let position = self.external.iter().position(|alarm| &*alarm.rule == rule);
        let Some(mut condition) = condition else {
            self.hand_cleared.retain(|cleared| &*cleared.rule != rule);
            return position
                .map(|index| self.close_external(index, now))
                .into_iter()
                .collect();
        };
        condition.rule = Arc::from(rule);
        match position {
            None if self.quieted(rule, &condition, now) => Vec::new(),
            None => {
                self.hand_cleared.retain(|cleared| &*cleared.rule != rule);
                vec![self.raise_external(condition, frame_ts, now)]
            }
            Some(index) => {
                let alarm = &mut self.external[index];
                if alarm.severity == condition.severity {
                    Vec::new()
                } else if condition.severity < alarm.severity {
                    alarm.severity = condition.severity;
                    alarm.message = condition.message;
                    alarm.inputs = condition.inputs;
                    vec![AlarmEvent {
                        transition: Transition::Escalated,
                        alarm: alarm.clone(),
                        operator: None,
                    }]
                } else {
                    let cleared = self.close_external(index, now);
                    vec![cleared, self.raise_external(condition, frame_ts, now)]
                }
            }
        }
    }

    /// Clears the open external alarm at `index` because its condition ended.
    fn close_external(&mut self, index: usize, now: i64) -> AlarmEvent {
        let alarm = self.external.remove(index);
        let shadow = Shadow::default();
        let moment = Moment {
            now,
            frame: None,
            shadow: &shadow,
        };
        self.closed_alarm_event(alarm, moment)
    }

    /// Returns the rule names starting with `prefix` of the open external alarms and of
    /// those an operator cleared while their condition held, whose condition the caller
    /// should end when it no longer holds.
    pub fn external_rules(&self, prefix: &str) -> Vec<Arc<str>> {
        self.external
            .iter()
            .map(|alarm| &alarm.rule)
            .chain(self.hand_cleared.iter().map(|cleared| &cleared.rule))
            .filter(|rule| rule.starts_with(prefix))
            .map(Arc::clone)
            .collect()
    }

    /// Returns whether `condition` stays quiet because an operator cleared its alarm less
    /// than its quiet time ago and it has not become more urgent since.
    fn quieted(&self, rule: &str, condition: &ExternalCondition, now: i64) -> bool {
        self.hand_cleared.iter().any(|cleared| {
            &*cleared.rule == rule
                && condition.severity >= cleared.severity
                && now < cleared.at.saturating_add(condition.quiet_after_clear_ms)
        })
    }

    /// Returns shelved external alarms to view once their shelving time has passed.
    pub(super) fn unshelve_external(&mut self, now: i64) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        for alarm in &mut self.external {
            if alarm.shelved_until.is_none_or(|until| now < until) {
                continue;
            }
            alarm.shelved = None;
            alarm.shelved_until = None;
            events.push(AlarmEvent {
                transition: Transition::Unshelved,
                alarm: alarm.clone(),
                operator: None,
            });
        }
        events
    }

    fn raise_external(
        &mut self,
        condition: ExternalCondition,
        frame_ts: Option<i64>,
        now: i64,
    ) -> AlarmEvent {
        let raised_at = now.max(self.last_raised_at + 1);
        self.last_raised_at = raised_at;
        let alarm = Alarm {
            id: Arc::from(format!("{}/{}/{raised_at}", self.device, condition.rule)),
            device: self.device.clone(),
            rule: condition.rule,
            severity: condition.severity,
            state: AlarmState::Active,
            key: condition.key,
            value: condition.value,
            message: condition.message,
            raised_at,
            cleared_at: None,
            frame_ts,
            cleared_frame_ts: None,
            rule_version: Arc::clone(&self.rules.version),
            inputs: condition.inputs,
            flapping: false,
            acknowledged: None,
            cleared_by: None,
            shelved: None,
            shelved_until: None,
        };
        self.external.push(alarm.clone());
        AlarmEvent {
            transition: Transition::Raised,
            alarm,
            operator: None,
        }
    }

    /// Applies an operator's request to an open external alarm, or returns `None` when no
    /// open external alarm has the id. A hand-cleared external alarm is raised again by a
    /// decision that still calls for it once its condition's quiet time has passed, or
    /// sooner when the condition becomes more urgent.
    pub(super) fn command_external(
        &mut self,
        command: &AlarmCommand,
        action: OperatorAction,
    ) -> Option<Result<AlarmEvent, CommandError>> {
        let index = self
            .external
            .iter()
            .position(|alarm| *alarm.id == *command.alarm_id)?;
        let conflict = |name: &'static str, reason: &str| CommandError::Conflict {
            id: command.alarm_id.clone(),
            action: name,
            reason: reason.to_owned(),
        };
        let alarm = &mut self.external[index];
        let transition = match command.action {
            AlarmAction::Acknowledge => {
                if let Some(previous) = &alarm.acknowledged {
                    let reason = format!("already acknowledged by {}", previous.by);
                    return Some(Err(conflict("acknowledged", &reason)));
                }
                alarm.acknowledged = Some(action.clone());
                Transition::Acknowledged
            }
            AlarmAction::Shelve { until } => {
                if until <= action.at {
                    return Some(Err(conflict(
                        "shelved",
                        "the shelving time is already past",
                    )));
                }
                alarm.shelved = Some(action.clone());
                alarm.shelved_until = Some(until);
                Transition::Shelved
            }
            AlarmAction::Unshelve => {
                if alarm.shelved_until.is_none() {
                    return Some(Err(conflict("unshelved", "it is not shelved")));
                }
                alarm.shelved = None;
                alarm.shelved_until = None;
                Transition::Unshelved
            }
            AlarmAction::Clear => {
                let mut alarm = self.external.remove(index);
                alarm.cleared_by = Some(action.clone());
                self.hand_cleared.push(HandCleared {
                    rule: Arc::clone(&alarm.rule),
                    severity: alarm.severity,
                    at: action.at,
                });
                let shadow = Shadow::default();
                let moment = Moment {
                    now: action.at,
                    frame: None,
                    shadow: &shadow,
                };
                return Some(Ok(self.closed_alarm_event(alarm, moment)));
            }
        };
        Some(Ok(AlarmEvent {
            transition,
            alarm: alarm.clone(),
            operator: Some(action),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_id::DeviceId;
    use crate::rules::RuleSet;

    fn evaluator() -> RuleEvaluator {
        RuleEvaluator::new(
            DeviceId::parse("fan-1").unwrap(),
            Arc::new(RuleSet::empty("fan")),
        )
    }

    fn due(severity: Severity) -> ExternalCondition {
        ExternalCondition {
            rule: Arc::from("maintenance.belt"),
            severity,
            message: "belt check due".into(),
            key: None,
            value: None,
            inputs: Vec::new(),
            quiet_after_clear_ms: 10_000,
        }
    }

    #[test]
    fn external_alarm_raises_escalates_and_clears() {
        let mut evaluator = evaluator();
        let raised = evaluator
            .set_external(
                "maintenance.belt",
                Some(due(Severity::Warning)),
                None,
                1_000,
            )
            .pop()
            .unwrap();
        assert_eq!(raised.transition, Transition::Raised);
        assert_eq!(&*raised.alarm.id, "fan-1/maintenance.belt/1000");
        assert!(
            evaluator
                .set_external(
                    "maintenance.belt",
                    Some(due(Severity::Warning)),
                    None,
                    2_000
                )
                .is_empty()
        );
        let escalated = evaluator
            .set_external("maintenance.belt", Some(due(Severity::Minor)), None, 3_000)
            .pop()
            .unwrap();
        assert_eq!(escalated.transition, Transition::Escalated);
        let cleared = evaluator
            .set_external("maintenance.belt", None, None, 4_000)
            .pop()
            .unwrap();
        assert_eq!(cleared.transition, Transition::Cleared);
        assert_eq!(evaluator.open_alarms().count(), 0);
        assert_eq!(evaluator.alarms_in_view().count(), 1);
    }

    #[test]
    fn external_alarm_takes_operator_commands() {
        let mut evaluator = evaluator();
        let raised = evaluator
            .set_external(
                "maintenance.belt",
                Some(due(Severity::Warning)),
                None,
                1_000,
            )
            .pop()
            .unwrap();
        let command = AlarmCommand {
            alarm_id: raised.alarm.id.to_string(),
            action: AlarmAction::Acknowledge,
            by: Arc::from("tech"),
        };
        let event = evaluator.command(&command, 2_000).unwrap();
        assert_eq!(event.transition, Transition::Acknowledged);
        assert!(evaluator.command(&command, 3_000).is_err());
    }

    /// Raises a `maintenance.belt` warning at 1 s and clears it by hand at 2 s; returns the
    /// clear request.
    fn raise_warning_then_clear(evaluator: &mut RuleEvaluator) -> AlarmCommand {
        let raised = evaluator
            .set_external(
                "maintenance.belt",
                Some(due(Severity::Warning)),
                None,
                1_000,
            )
            .pop()
            .unwrap();
        let clear = AlarmCommand {
            alarm_id: raised.alarm.id.to_string(),
            action: AlarmAction::Clear,
            by: Arc::from("tech"),
        };
        evaluator.command(&clear, 2_000).unwrap();
        clear
    }

    #[test]
    fn hand_clear_quiet_until_overdue_or_late() {
        let mut evaluator = evaluator();
        let clear = raise_warning_then_clear(&mut evaluator);
        let again = |evaluator: &mut RuleEvaluator, severity, now| {
            evaluator.set_external("maintenance.belt", Some(due(severity)), None, now)
        };
        assert!(again(&mut evaluator, Severity::Warning, 5_000).is_empty());
        assert_eq!(
            evaluator.external_rules("maintenance."),
            vec![Arc::from("maintenance.belt")]
        );
        let overdue = again(&mut evaluator, Severity::Minor, 6_000).pop().unwrap();
        assert_eq!(overdue.transition, Transition::Raised);

        let clear = AlarmCommand {
            alarm_id: overdue.alarm.id.to_string(),
            ..clear
        };
        evaluator.command(&clear, 7_000).unwrap();
        assert!(again(&mut evaluator, Severity::Minor, 16_000).is_empty());
        assert!(again(&mut evaluator, Severity::Minor, 17_000).len() == 1);
    }

    #[test]
    fn less_urgent_condition_clears_and_raises_again() {
        let mut evaluator = evaluator();
        evaluator.set_external("maintenance.belt", Some(due(Severity::Minor)), None, 1_000);
        let events = evaluator.set_external(
            "maintenance.belt",
            Some(due(Severity::Warning)),
            None,
            2_000,
        );
        let transitions: Vec<Transition> = events.iter().map(|event| event.transition).collect();
        assert_eq!(transitions, [Transition::Cleared, Transition::Raised]);
        assert_eq!(events[1].alarm.severity, Severity::Warning);
        assert_eq!(evaluator.open_alarms().count(), 1);
    }

    #[test]
    fn ended_condition_forgets_the_hand_clear() {
        let mut evaluator = evaluator();
        raise_warning_then_clear(&mut evaluator);
        assert!(
            evaluator
                .set_external("maintenance.belt", None, None, 3_000)
                .is_empty()
        );
        assert!(evaluator.external_rules("maintenance.").is_empty());
        let raised = evaluator.set_external(
            "maintenance.belt",
            Some(due(Severity::Warning)),
            None,
            4_000,
        );
        assert_eq!(raised.len(), 1);
    }

    #[test]
    fn external_alarm_survives_restore() {
        let mut evaluator = evaluator();
        let raised = evaluator
            .set_external(
                "wear.temperature",
                Some(due(Severity::Warning)),
                None,
                1_000,
            )
            .pop()
            .unwrap();
        let mut restored = self::evaluator();
        restored.restore(vec![raised.alarm], &Shadow::default(), 5_000);
        assert_eq!(restored.open_alarms().count(), 1);
        assert_eq!(
            restored.external_rules("wear."),
            vec![Arc::from("wear.temperature")]
        );
    }
}
