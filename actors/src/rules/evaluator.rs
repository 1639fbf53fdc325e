//! The rule evaluator of one device: leaf states, pending durations, open alarms,
//! escalation and flapping, driven by frames and by clock ticks.
//!
//! It is a plain state machine with no I/O and no clock of its own, so the device actor, the
//! tests and `valmetal rules backtest` all run the same code. The caller passes the engine
//! time with every call and reads [`RuleEvaluator::next_deadline`] to know when to call again.

mod external;

use std::collections::VecDeque;
use std::sync::Arc;

use super::alarm::{Alarm, AlarmEvent, AlarmInput, AlarmState, OperatorAction, Transition};
use super::condition::{Condition, Leaf, format_number};
use super::leaf_state::{LeafState, duration_ms};
use super::template::{self, TemplateContext};
use super::{ClearMode, Rule, RuleSet};
use crate::device_id::DeviceId;
use crate::shadow::Shadow;
use crate::value::{Frame, Value};

/// Everything the evaluator remembers about one rule of one device.
#[derive(Debug, Clone)]
struct RuleState {
    leaves: Vec<LeafState>,
    clear_leaves: Vec<LeafState>,
    /// Device time since which the condition has held, while a `for` duration runs.
    pending_since: Option<i64>,
    open: Option<Alarm>,
    /// Engine time of the last frame that met the condition, for clear-after-silence.
    last_trigger: i64,
    /// Escalation steps already applied to the open alarm.
    escalation: usize,
    /// Whether the rule called for an active alarm at the last evaluation.
    should_be_active: bool,
    /// Engine times of recent changes of `should_be_active`, for flapping detection.
    flips: VecDeque<i64>,
    flapping: bool,
    /// After a manual clear, engine time before which the rule does not raise again.
    suppressed_until: Option<i64>,
}

impl RuleState {
    fn new(rule: &Rule) -> Self {
        let clear_leaves = match &rule.clear {
            ClearMode::When(condition) => {
                condition.leaves().into_iter().map(LeafState::new).collect()
            }
            ClearMode::Condition | ClearMode::AfterSilence(_) => Vec::new(),
        };
        Self {
            leaves: rule
                .condition
                .leaves()
                .into_iter()
                .map(LeafState::new)
                .collect(),
            clear_leaves,
            pending_since: None,
            open: None,
            last_trigger: 0,
            escalation: 0,
            should_be_active: false,
            flips: VecDeque::new(),
            flapping: false,
            suppressed_until: None,
        }
    }
}

/// Inputs of one evaluation: the engine time, the frame if a frame triggered it, the shadow.
#[derive(Clone, Copy)]
struct Moment<'a> {
    /// Engine time, in milliseconds since the Unix epoch.
    now: i64,
    frame: Option<&'a Frame>,
    shadow: &'a Shadow,
}

/// The alarm rules of one device and their state.
#[derive(Debug, Clone)]
pub struct RuleEvaluator {
    device: DeviceId,
    rules: Arc<RuleSet>,
    states: Vec<RuleState>,
    /// Cleared alarms no operator has acknowledged yet, oldest first.
    unacknowledged: VecDeque<Alarm>,
    /// Open alarms decided outside the rule set (maintenance, wear), by rule name.
    external: Vec<Alarm>,
    /// External alarms an operator cleared while their condition still held.
    hand_cleared: Vec<external::HandCleared>,
    last_raised_at: i64,
}

pub use external::{ExternalCondition, is_external_rule};

/// Cleared, unacknowledged alarms kept per device; the oldest is dropped beyond this, and
/// stays in the alarm history.
pub const MAX_UNACKNOWLEDGED: usize = 32;

/// Operator action on an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmAction {
    Acknowledge,
    /// Clears an active alarm by hand; if the condition still holds, the rule raises a new
    /// alarm after its `reraise_after`.
    Clear,
    /// Hides an active alarm until the engine time given.
    Shelve {
        until: i64,
    },
    Unshelve,
}

/// An operator's request on one alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmCommand {
    pub alarm_id: String,
    pub action: AlarmAction,
    /// Name of the operator; recorded in the alarm.
    pub by: Arc<str>,
}

/// Error applying an operator's request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("alarm `{0}` is not open or awaiting acknowledgement on this device")]
    NotFound(String),
    #[error("alarm `{id}` cannot be {action}: {reason}")]
    Conflict {
        id: String,
        action: &'static str,
        reason: String,
    },
}

impl RuleEvaluator {
    /// Creates the evaluator of `device` with no alarm open.
    pub fn new(device: DeviceId, rules: Arc<RuleSet>) -> Self {
        let states = rules
            .rules
            .iter()
            .map(|rule| RuleState::new(rule))
            .collect();
        Self {
            device,
            rules,
            states,
            unacknowledged: VecDeque::new(),
            external: Vec::new(),
            hand_cleared: Vec::new(),
            last_raised_at: 0,
        }
    }

    /// Returns the rule set in force.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Judges a frame already applied to `shadow`, at engine time `now`. A `late` frame (older
    /// than the newest frame of the device) only proves the device is alive: it resets no-data
    /// leaves but never turns another leaf on or off.
    pub fn on_frame(
        &mut self,
        frame: &Frame,
        late: bool,
        shadow: &Shadow,
        now: i64,
    ) -> Vec<AlarmEvent> {
        let moment = Moment {
            now,
            frame: Some(frame),
            shadow,
        };
        self.evaluate_each(moment, |condition, states| {
            update_leaves(condition, states, frame, late, moment)
        })
    }

    /// Judges a change of the shadow's desired values at engine time `now`.
    pub fn on_desired(&mut self, shadow: &Shadow, now: i64) -> Vec<AlarmEvent> {
        let moment = Moment {
            now,
            frame: None,
            shadow,
        };
        self.evaluate_each(moment, |condition, states| {
            refresh_desired_leaves(condition, states, shadow, now)
        })
    }

    /// Re-evaluates the timer-driven parts at engine time `now`: no-data and desired-value
    /// leaves, clear-after-silence, escalation, shelving and the end of flapping.
    pub fn on_tick(&mut self, shadow: &Shadow, now: i64) -> Vec<AlarmEvent> {
        let moment = Moment {
            now,
            frame: None,
            shadow,
        };
        let mut events = self.evaluate_each(moment, |condition, states| {
            tick_leaves(condition, states, now)
        });
        events.extend(self.unshelve_external(now));
        events
    }

    /// Updates the leaves of every rule's condition and clear condition with `update`, then
    /// decides each rule.
    fn evaluate_each(
        &mut self,
        moment: Moment<'_>,
        update: impl Fn(&Condition, &mut [LeafState]),
    ) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        for index in 0..self.states.len() {
            let rule = Arc::clone(&self.rules.rules[index]);
            let state = &mut self.states[index];
            update(&rule.condition, &mut state.leaves);
            if let ClearMode::When(condition) = &rule.clear {
                update(condition, &mut state.clear_leaves);
            }
            events.extend(self.decide(index, &rule, moment));
        }
        events
    }

    /// Returns the earliest engine time at which [`RuleEvaluator::on_tick`] could change
    /// something, or `None` when only a frame can.
    pub fn next_deadline(&self) -> Option<i64> {
        self.rules
            .rules
            .iter()
            .zip(&self.states)
            .filter_map(|(rule, state)| rule_deadline(rule, state))
            .chain(self.external.iter().filter_map(|alarm| alarm.shelved_until))
            .min()
    }

    /// Takes back what a store kept: the value leaves learn the restored shadow's values,
    /// active alarms reopen on their rule, as raised and escalated so far, and cleared ones
    /// await acknowledgement again. An alarm whose rule no longer exists stays closed, as a
    /// rule reload would leave it. Time-driven leaves (no data, stale, counts, rates) start
    /// afresh.
    pub fn restore(&mut self, alarms: Vec<Alarm>, shadow: &Shadow, now: i64) {
        for index in 0..self.states.len() {
            let rule = Arc::clone(&self.rules.rules[index]);
            let state = &mut self.states[index];
            prime_leaves(&rule.condition, &mut state.leaves, shadow, now);
            if let ClearMode::When(condition) = &rule.clear {
                prime_leaves(condition, &mut state.clear_leaves, shadow, now);
            }
        }
        for alarm in alarms {
            self.last_raised_at = self.last_raised_at.max(alarm.raised_at);
            if alarm.state != AlarmState::Active {
                self.unacknowledged.push_back(alarm);
                continue;
            }
            if external::is_external_rule(&alarm.rule) {
                self.external.push(alarm);
                continue;
            }
            let Some(index) = self
                .rules
                .rules
                .iter()
                .position(|rule| *rule.id == *alarm.rule)
            else {
                continue;
            };
            let rule = &self.rules.rules[index];
            let state = &mut self.states[index];
            state.escalation = rule
                .escalations
                .iter()
                .position(|step| step.severity == alarm.severity)
                .map_or(0, |step| step + 1);
            state.should_be_active = true;
            state.flapping = alarm.flapping;
            state.last_trigger = now;
            state.open = Some(alarm);
        }
        while self.unacknowledged.len() > MAX_UNACKNOWLEDGED {
            self.unacknowledged.pop_front();
        }
    }

    /// Returns the open alarms.
    pub fn open_alarms(&self) -> impl Iterator<Item = &Alarm> {
        self.states
            .iter()
            .filter_map(|state| state.open.as_ref())
            .chain(&self.external)
    }

    /// Returns the open alarms, then the cleared ones still awaiting acknowledgement.
    pub fn alarms_in_view(&self) -> impl Iterator<Item = &Alarm> {
        self.open_alarms().chain(&self.unacknowledged)
    }

    /// Applies an operator's request at engine time `now`.
    ///
    /// # Errors
    ///
    /// Returns [`CommandError::NotFound`] when no open or unacknowledged alarm has the id, and
    /// [`CommandError::Conflict`] when the action does not fit the alarm's state.
    pub fn command(
        &mut self,
        command: &AlarmCommand,
        now: i64,
    ) -> Result<AlarmEvent, CommandError> {
        let action = OperatorAction {
            by: Arc::clone(&command.by),
            at: now,
        };
        if let Some(result) = self.command_external(command, action.clone()) {
            return result;
        }
        let open_index = self.states.iter().position(|state| {
            state
                .open
                .as_ref()
                .is_some_and(|alarm| *alarm.id == *command.alarm_id)
        });
        let Some(index) = open_index else {
            return self.acknowledge_cleared(command, action);
        };
        let conflict = |action_name: &'static str, reason: &str| CommandError::Conflict {
            id: command.alarm_id.clone(),
            action: action_name,
            reason: reason.to_owned(),
        };
        let rule = Arc::clone(&self.rules.rules[index]);
        let state = &mut self.states[index];
        let Some(alarm) = state.open.as_mut() else {
            return Err(CommandError::NotFound(command.alarm_id.clone()));
        };
        match command.action {
            AlarmAction::Acknowledge => {
                if let Some(previous) = &alarm.acknowledged {
                    return Err(conflict(
                        "acknowledged",
                        &format!("already acknowledged by {}", previous.by),
                    ));
                }
                alarm.acknowledged = Some(action.clone());
                Ok(AlarmEvent {
                    transition: Transition::Acknowledged,
                    alarm: alarm.clone(),
                    operator: Some(action),
                })
            }
            AlarmAction::Shelve { until } => {
                if until <= now {
                    return Err(conflict("shelved", "the shelving time is already past"));
                }
                alarm.shelved = Some(action.clone());
                alarm.shelved_until = Some(until);
                Ok(AlarmEvent {
                    transition: Transition::Shelved,
                    alarm: alarm.clone(),
                    operator: Some(action),
                })
            }
            AlarmAction::Unshelve => {
                if alarm.shelved_until.is_none() {
                    return Err(conflict("unshelved", "it is not shelved"));
                }
                alarm.shelved = None;
                alarm.shelved_until = None;
                Ok(AlarmEvent {
                    transition: Transition::Unshelved,
                    alarm: alarm.clone(),
                    operator: Some(action),
                })
            }
            AlarmAction::Clear => {
                state.suppressed_until = Some(now + duration_ms(rule.reraise_after));
                let mut alarm = state
                    .open
                    .take()
                    .ok_or_else(|| CommandError::NotFound(command.alarm_id.clone()))?;
                alarm.cleared_by = Some(action);
                let moment_shadow = Shadow::default();
                let event = self.closed_alarm_event(
                    alarm,
                    Moment {
                        now,
                        frame: None,
                        shadow: &moment_shadow,
                    },
                );
                Ok(event)
            }
        }
    }

    fn acknowledge_cleared(
        &mut self,
        command: &AlarmCommand,
        action: OperatorAction,
    ) -> Result<AlarmEvent, CommandError> {
        let position = self
            .unacknowledged
            .iter()
            .position(|alarm| *alarm.id == *command.alarm_id);
        let Some(position) = position else {
            return Err(CommandError::NotFound(command.alarm_id.clone()));
        };
        if command.action != AlarmAction::Acknowledge {
            return Err(CommandError::Conflict {
                id: command.alarm_id.clone(),
                action: "changed",
                reason: "it is cleared; a cleared alarm can only be acknowledged".to_owned(),
            });
        }
        let mut alarm = self
            .unacknowledged
            .remove(position)
            .ok_or_else(|| CommandError::NotFound(command.alarm_id.clone()))?;
        alarm.acknowledged = Some(action.clone());
        Ok(AlarmEvent {
            transition: Transition::Acknowledged,
            alarm,
            operator: Some(action),
        })
    }

    /// Returns true while an alarm is open on a rule that watches the device's silence as a
    /// whole, which makes the device offline.
    pub fn is_silent(&self) -> bool {
        self.rules
            .rules
            .iter()
            .zip(&self.states)
            .any(|(rule, state)| {
                state.open.is_some()
                    && rule
                        .condition
                        .leaves()
                        .iter()
                        .any(|leaf| matches!(leaf, Leaf::NoData { key: None, .. }))
            })
    }

    /// Swaps in a new rule set. Rules that did not change keep their state and open alarms;
    /// the alarms of changed or removed rules are cleared, and changed rules start afresh.
    pub fn replace_rules(
        &mut self,
        rules: Arc<RuleSet>,
        shadow: &Shadow,
        now: i64,
    ) -> Vec<AlarmEvent> {
        let mut previous: Vec<(Arc<Rule>, RuleState)> = self
            .rules
            .rules
            .iter()
            .cloned()
            .zip(std::mem::take(&mut self.states))
            .collect();
        let mut states = Vec::with_capacity(rules.rules.len());
        for rule in &rules.rules {
            match previous.iter().position(|(old, _)| old == rule) {
                Some(position) => states.push(previous.swap_remove(position).1),
                None => states.push(RuleState::new(rule)),
            }
        }
        let moment = Moment {
            now,
            frame: None,
            shadow,
        };
        let events = previous
            .into_iter()
            .filter_map(|(rule, mut state)| state.open.take().map(|alarm| (rule, alarm)))
            .map(|(_, alarm)| self.closed_alarm_event(alarm, moment))
            .collect();
        self.rules = rules;
        self.states = states;
        events
    }

    // === decisions ===

    fn decide(&mut self, index: usize, rule: &Rule, moment: Moment<'_>) -> Vec<AlarmEvent> {
        let should_be_active = self.should_be_active(index, rule, moment);
        let mut events = Vec::new();
        let state = &mut self.states[index];
        if should_be_active != state.should_be_active {
            state.should_be_active = should_be_active;
            state.flips.push_back(moment.now);
        }
        if let Some(limit) = rule.flapping {
            let window = duration_ms(limit.window);
            while state
                .flips
                .front()
                .is_some_and(|at| *at <= moment.now - window)
            {
                state.flips.pop_front();
            }
            if state.flapping {
                if state.flips.is_empty() {
                    events.extend(self.settle(index, rule, moment));
                }
                return events;
            }
            if state.flips.len() > limit.transitions as usize {
                return self.start_flapping(index, rule, moment);
            }
        }
        events.extend(self.unshelve_if_due(index, moment.now));
        let state = &mut self.states[index];
        let suppressed = state
            .suppressed_until
            .is_some_and(|until| moment.now < until);
        if !suppressed {
            state.suppressed_until = None;
        }
        let is_open = state.open.is_some();
        match (should_be_active, is_open) {
            (true, false) if suppressed => {}
            (true, false) => events.push(self.raise(index, rule, moment, false)),
            (false, true) => events.extend(self.clear(index, moment)),
            (true, true) => events.extend(self.escalate(index, rule, moment)),
            (false, false) => {}
        }
        events
    }

    /// Returns whether the rule calls for an active alarm now.
    fn should_be_active(&mut self, index: usize, rule: &Rule, moment: Moment<'_>) -> bool {
        let state = &mut self.states[index];
        let holds = rule.condition.holds(&active_flags(&state.leaves));
        if state.open.is_some() {
            if holds && moment.frame.is_some() {
                state.last_trigger = moment.now;
            }
            let clears = match &rule.clear {
                ClearMode::Condition => !holds,
                ClearMode::When(condition) => condition.holds(&active_flags(&state.clear_leaves)),
                ClearMode::AfterSilence(after) => {
                    moment.now - state.last_trigger >= duration_ms(*after)
                }
            };
            return !clears;
        }
        if !holds {
            state.pending_since = None;
            return false;
        }
        let Some(hold_for) = rule.hold_for else {
            return true;
        };
        let Some(frame) = moment.frame else {
            return false;
        };
        let since = *state.pending_since.get_or_insert(frame.ts);
        frame.ts - since >= duration_ms(hold_for)
    }

    fn raise(
        &mut self,
        index: usize,
        rule: &Rule,
        moment: Moment<'_>,
        flapping: bool,
    ) -> AlarmEvent {
        let raised_at = moment.now.max(self.last_raised_at + 1);
        self.last_raised_at = raised_at;
        let leaf = rule.condition.first_leaf();
        let key = leaf.and_then(Leaf::key).cloned();
        let value = key
            .as_deref()
            .and_then(|key| moment.shadow.get(key))
            .map(|reported| reported.value.clone());
        let alarm = Alarm {
            id: Arc::from(format!("{}/{}/{raised_at}", self.device, rule.id)),
            device: self.device.clone(),
            rule: Arc::clone(&rule.id),
            severity: rule.severity,
            state: AlarmState::Active,
            message: self.render_message(rule, leaf, value.as_ref()),
            key,
            value,
            raised_at,
            cleared_at: None,
            frame_ts: moment
                .frame
                .map(|frame| frame.ts)
                .or_else(|| moment.shadow.newest_ts()),
            cleared_frame_ts: None,
            rule_version: Arc::clone(&self.rules.version),
            inputs: inputs(rule, moment.shadow),
            flapping,
            acknowledged: None,
            cleared_by: None,
            shelved: None,
            shelved_until: None,
        };
        let state = &mut self.states[index];
        state.open = Some(alarm.clone());
        state.pending_since = None;
        state.escalation = 0;
        state.last_trigger = moment.now;
        AlarmEvent {
            transition: Transition::Raised,
            alarm,
            operator: None,
        }
    }

    fn clear(&mut self, index: usize, moment: Moment<'_>) -> Option<AlarmEvent> {
        let alarm = self.states[index].open.take()?;
        Some(self.closed_alarm_event(alarm, moment))
    }

    /// Closes `alarm` and keeps it for acknowledgement unless an operator already did.
    fn closed_alarm_event(&mut self, mut alarm: Alarm, moment: Moment<'_>) -> AlarmEvent {
        alarm.state = AlarmState::Cleared;
        alarm.cleared_at = Some(moment.now.max(alarm.raised_at));
        alarm.cleared_frame_ts = moment.frame.map(|frame| frame.ts);
        alarm.flapping = false;
        alarm.shelved = None;
        alarm.shelved_until = None;
        if let (Some(frame), Some(key)) = (moment.frame, alarm.key.as_deref())
            && let Some((_, value)) = frame.values.iter().find(|(name, _)| &**name == key)
        {
            alarm.value = Some(value.clone());
        }
        if alarm.acknowledged.is_none() {
            if self.unacknowledged.len() >= MAX_UNACKNOWLEDGED {
                self.unacknowledged.pop_front();
            }
            self.unacknowledged.push_back(alarm.clone());
        }
        let operator = alarm.cleared_by.clone();
        AlarmEvent {
            transition: Transition::Cleared,
            alarm,
            operator,
        }
    }

    fn unshelve_if_due(&mut self, index: usize, now: i64) -> Option<AlarmEvent> {
        let alarm = self.states[index].open.as_mut()?;
        if alarm.shelved_until.is_none_or(|until| now < until) {
            return None;
        }
        alarm.shelved = None;
        alarm.shelved_until = None;
        Some(AlarmEvent {
            transition: Transition::Unshelved,
            alarm: alarm.clone(),
            operator: None,
        })
    }

    fn escalate(&mut self, index: usize, rule: &Rule, moment: Moment<'_>) -> Vec<AlarmEvent> {
        let state = &mut self.states[index];
        let mut events = Vec::new();
        while let (Some(step), Some(alarm)) =
            (rule.escalations.get(state.escalation), state.open.as_mut())
        {
            if moment.now - alarm.raised_at < duration_ms(step.after) {
                break;
            }
            alarm.severity = step.severity;
            state.escalation += 1;
            events.push(AlarmEvent {
                transition: Transition::Escalated,
                alarm: alarm.clone(),
                operator: None,
            });
        }
        events
    }

    fn start_flapping(&mut self, index: usize, rule: &Rule, moment: Moment<'_>) -> Vec<AlarmEvent> {
        self.states[index].flapping = true;
        match self.states[index].open.as_mut() {
            Some(alarm) => {
                alarm.flapping = true;
                vec![AlarmEvent {
                    transition: Transition::Flapping,
                    alarm: alarm.clone(),
                    operator: None,
                }]
            }
            None => vec![self.raise(index, rule, moment, true)],
        }
    }

    /// Ends flapping once a whole window passed without a flip: the alarm clears if the rule
    /// no longer calls for it, and otherwise stays active as a settled alarm.
    fn settle(&mut self, index: usize, rule: &Rule, moment: Moment<'_>) -> Vec<AlarmEvent> {
        let state = &mut self.states[index];
        state.flapping = false;
        if !state.should_be_active {
            return self.clear(index, moment).into_iter().collect();
        }
        let Some(alarm) = state.open.as_mut() else {
            return vec![self.raise(index, rule, moment, false)];
        };
        alarm.flapping = false;
        vec![AlarmEvent {
            transition: Transition::Settled,
            alarm: alarm.clone(),
            operator: None,
        }]
    }

    fn render_message(&self, rule: &Rule, leaf: Option<&Leaf>, value: Option<&Value>) -> String {
        let value_text = value.map(format_value).unwrap_or_default();
        let limit = leaf.map(Leaf::limit_text).unwrap_or_default();
        let context = TemplateContext {
            device: self.device.as_str(),
            rule: &rule.id,
            severity: rule.severity.as_str(),
            key: leaf.and_then(Leaf::key).map_or("", |key| &**key),
            value: &value_text,
            limit: &limit,
        };
        let default = leaf.map_or("{device}: {rule}", default_template);
        template::render(rule.message.as_deref().unwrap_or(default), &context)
    }
}

fn update_leaves(
    condition: &Condition,
    states: &mut [LeafState],
    frame: &Frame,
    late: bool,
    moment: Moment<'_>,
) {
    for (leaf, state) in condition.leaves().into_iter().zip(states) {
        let value = leaf
            .key()
            .and_then(|key| frame.values.iter().find(|(name, _)| name == key))
            .map(|(_, value)| value);
        if late && !matches!(leaf, Leaf::NoData { .. }) {
            continue;
        }
        state.on_frame(leaf, value, frame.ts, moment.now);
        state.refresh_desired(leaf, moment.shadow, moment.now);
    }
}

/// Feeds each value leaf the shadow's stored value of its key.
fn prime_leaves(condition: &Condition, states: &mut [LeafState], shadow: &Shadow, now: i64) {
    for (leaf, state) in condition.leaves().into_iter().zip(states) {
        let time_driven = matches!(
            leaf,
            Leaf::NoData { .. }
                | Leaf::Stale { .. }
                | Leaf::Count { .. }
                | Leaf::RateOfChange { .. }
        );
        if !time_driven && let Some(reported) = leaf.key().and_then(|key| shadow.get(key)) {
            state.on_frame(leaf, Some(&reported.value), reported.ts, now);
        }
        state.refresh_desired(leaf, shadow, now);
    }
}

fn refresh_desired_leaves(
    condition: &Condition,
    states: &mut [LeafState],
    shadow: &Shadow,
    now: i64,
) {
    for (leaf, state) in condition.leaves().into_iter().zip(states) {
        state.refresh_desired(leaf, shadow, now);
    }
}

fn tick_leaves(condition: &Condition, states: &mut [LeafState], now: i64) {
    for (leaf, state) in condition.leaves().into_iter().zip(states) {
        state.on_tick(leaf, now);
    }
}

fn active_flags(states: &[LeafState]) -> Vec<bool> {
    states.iter().map(LeafState::is_active).collect()
}

fn rule_deadline(rule: &Rule, state: &RuleState) -> Option<i64> {
    let leaf_deadline = |condition: &Condition, states: &[LeafState]| {
        condition
            .leaves()
            .into_iter()
            .zip(states)
            .filter_map(|(leaf, state)| state.deadline(leaf))
            .min()
    };
    let mut deadlines = vec![leaf_deadline(&rule.condition, &state.leaves)];
    if let ClearMode::When(condition) = &rule.clear {
        deadlines.push(leaf_deadline(condition, &state.clear_leaves));
    }
    if let (Some(until), true) = (
        state.suppressed_until,
        state.should_be_active && state.open.is_none(),
    ) {
        deadlines.push(Some(until));
    }
    if let Some(alarm) = &state.open {
        deadlines.push(alarm.shelved_until);
        if let ClearMode::AfterSilence(after) = rule.clear {
            deadlines.push(Some(state.last_trigger + duration_ms(after)));
        }
        let escalation = rule.escalations.get(state.escalation);
        deadlines.push(escalation.map(|step| alarm.raised_at + duration_ms(step.after)));
    }
    if let (true, Some(limit), Some(last_flip)) =
        (state.flapping, rule.flapping, state.flips.back())
    {
        deadlines.push(Some(last_flip + duration_ms(limit.window) + 1));
    }
    deadlines.into_iter().flatten().min()
}

fn inputs(rule: &Rule, shadow: &Shadow) -> Vec<AlarmInput> {
    rule.keys()
        .into_iter()
        .filter_map(|key| {
            let reported = shadow.get(&key)?;
            Some(AlarmInput {
                key,
                value: reported.value.clone(),
                ts: reported.ts,
            })
        })
        .collect()
}

pub(crate) fn default_template(leaf: &Leaf) -> &'static str {
    match leaf {
        Leaf::Threshold(threshold) => match threshold.direction {
            super::Direction::Above => "{device}: {key} {value} above {limit}",
            super::Direction::Below => "{device}: {key} {value} below {limit}",
        },
        Leaf::Range(range) if range.outside => "{device}: {key} {value} outside {limit}",
        Leaf::Range(_) => "{device}: {key} {value} inside {limit}",
        Leaf::Equals { negate: false, .. } => "{device}: {key} is {value}",
        Leaf::Equals { negate: true, .. } => "{device}: {key} is {value}, not {limit}",
        Leaf::RateOfChange { .. } => "{device}: {key} changing faster than {limit}",
        Leaf::Stale { .. } => "{device}: {key} stuck at {value} for {limit}",
        Leaf::Count { .. } => "{device}: {key} met the condition {limit}",
        Leaf::NoData { key: None, .. } => "{device}: no frame for {limit}",
        Leaf::NoData { key: Some(_), .. } => "{device}: no {key} for {limit}",
        Leaf::DesiredNotReached { .. } => {
            "{device}: {key} at {value}, desired value not reached within {limit}"
        }
    }
}

/// Formats a value for a message, numbers to at most three decimals.
fn format_value(value: &Value) -> String {
    match value {
        Value::Number(number) => format_number(*number),
        other => other.to_string(),
    }
}
