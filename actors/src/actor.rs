//! The device actor: sole owner of one device's shadow and alarm state.
//!
//! Frames arrive as [`FrameBatch`] messages, are applied to the shadow in device-time order,
//! and each frame that is not late is judged by the device type's rules. An offline timer on
//! the engine's clock raises the offline alarm even if the device never sends again.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message};
use tokio::time::Instant;
use tracing::trace;

use crate::clock::now_ms;
use crate::device_id::DeviceId;
use crate::events::{DeviceEvents, DeviceSnapshot, PresenceChange, ShadowChange};
use crate::rules::template::{self, TemplateContext};
use crate::rules::{Alarm, AlarmEvent, AlarmState, Condition, Rule, RuleSet, Transition, Verdict};
use crate::shadow::{FrameOutcome, Shadow};
use crate::telemetry::{ActorFrameProcessed, AlarmTransitioned, FrameOutcomeLabel};
use crate::value::{Frame, Value};

/// Frames of one device received together, as one MQTT message carries them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FrameBatch {
    pub frames: Vec<Frame>,
    /// Engine time of receipt, in milliseconds since the Unix epoch.
    pub received_at: i64,
}

/// The device's own report of its presence, from its status topic or MQTT last will.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PresenceReport {
    pub online: bool,
}

/// A request for the device's whole state.
#[derive(Debug, Message)]
#[rtype(result = "DeviceSnapshot")]
pub struct SnapshotQuery;

/// One device's actor.
pub struct DeviceActor {
    id: DeviceId,
    device_type: Arc<str>,
    rules: Arc<RuleSet>,
    /// The open alarm of each rule, by the rule's index in `rules`.
    open_alarms: Vec<Option<Alarm>>,
    shadow: Shadow,
    last_seen: Option<(Instant, i64)>,
    reported_offline: bool,
    offline_timer_armed: bool,
    last_raised_at: i64,
    events: Arc<dyn DeviceEvents>,
}

impl DeviceActor {
    /// Creates the actor of `id` with the rules of its device type.
    pub fn new(id: DeviceId, rules: Arc<RuleSet>, events: Arc<dyn DeviceEvents>) -> Self {
        let open_alarms = vec![None; rules.rules.len()];
        Self {
            id,
            device_type: Arc::clone(&rules.device_type),
            rules,
            open_alarms,
            shadow: Shadow::default(),
            last_seen: None,
            reported_offline: false,
            offline_timer_armed: false,
            last_raised_at: 0,
            events,
        }
    }

    fn is_online(&self) -> bool {
        let offline_alarm_open =
            self.rules
                .rules
                .iter()
                .zip(&self.open_alarms)
                .any(|(rule, open)| {
                    open.is_some() && matches!(rule.condition, Condition::Offline { .. })
                });
        self.last_seen.is_some() && !offline_alarm_open && !self.reported_offline
    }

    fn snapshot(&self) -> DeviceSnapshot {
        DeviceSnapshot {
            device: self.id.clone(),
            device_type: Arc::clone(&self.device_type),
            version: self.shadow.version(),
            reported: self.shadow.reported().to_vec(),
            last_frame_ts: self.shadow.newest_ts(),
            last_seen: self.last_seen.map(|(_, at)| at),
            online: self.is_online(),
            alarms: self.open_alarms.iter().flatten().cloned().collect(),
        }
    }

    // === frames ===

    /// Records that the device sent frames, clearing its offline alarms; `newest_ts` is the
    /// device time of the newest frame received.
    fn mark_seen(&mut self, received_at: i64, newest_ts: Option<i64>) {
        self.last_seen = Some((Instant::now(), received_at));
        self.reported_offline = false;
        for index in 0..self.rules.rules.len() {
            if matches!(self.rules.rules[index].condition, Condition::Offline { .. }) {
                self.clear_alarm(index, None, newest_ts);
            }
        }
    }

    fn apply_frame(&mut self, frame: &Frame, received_at: i64) {
        let outcome = self.shadow.apply(frame);
        trace!(device.id = %self.id, ts = frame.ts, ?outcome, "Frame applied");
        match outcome {
            FrameOutcome::Applied {
                changes,
                version,
                late,
            } => {
                let label = if late {
                    FrameOutcomeLabel::AppliedLate
                } else {
                    FrameOutcomeLabel::Applied
                };
                ActorFrameProcessed(label).emit();
                self.events.shadow_changed(&ShadowChange {
                    device: self.id.clone(),
                    device_type: Arc::clone(&self.device_type),
                    version,
                    changes,
                    last_frame_ts: self.shadow.newest_ts(),
                    last_seen: received_at,
                    online: self.is_online(),
                });
                if !late {
                    self.evaluate_rules(frame);
                }
            }
            FrameOutcome::Unchanged { .. } => {
                ActorFrameProcessed(FrameOutcomeLabel::Unchanged).emit()
            }
            FrameOutcome::Duplicate => ActorFrameProcessed(FrameOutcomeLabel::Duplicate).emit(),
        }
    }

    fn evaluate_rules(&mut self, frame: &Frame) {
        for index in 0..self.rules.rules.len() {
            let rule = Arc::clone(&self.rules.rules[index]);
            let Condition::Threshold(threshold) = &rule.condition else {
                continue;
            };
            let Some((key, value)) = frame.values.iter().find(|(key, _)| *key == threshold.key)
            else {
                continue;
            };
            let Some(number) = value.as_number() else {
                continue;
            };
            let limit = format_for_message(&Value::Number(threshold.raise_at));
            match threshold.judge(self.open_alarms[index].is_some(), number) {
                Verdict::Raise => {
                    let default = format!(
                        "{{device}}: {{key}} {{value}} {} {{limit}}",
                        threshold.direction_word()
                    );
                    let trigger = Trigger {
                        key: Some(key),
                        value: Some(value),
                        limit: &limit,
                        frame_ts: Some(frame.ts),
                    };
                    self.raise_alarm(index, &rule, &default, &trigger);
                }
                Verdict::Clear => self.clear_alarm(index, Some(value), Some(frame.ts)),
                Verdict::Hold => {}
            }
        }
    }

    // === alarms ===

    fn raise_alarm(
        &mut self,
        index: usize,
        rule: &Rule,
        default_message: &str,
        trigger: &Trigger<'_>,
    ) {
        let raised_at = now_ms().max(self.last_raised_at + 1);
        self.last_raised_at = raised_at;
        let value_text = trigger.value.map(format_for_message).unwrap_or_default();
        let context = TemplateContext {
            device: self.id.as_str(),
            rule: &rule.id,
            severity: rule.severity.as_str(),
            key: trigger.key.map_or("", |key| &**key),
            value: &value_text,
            limit: trigger.limit,
        };
        let message =
            template::render(rule.message.as_deref().unwrap_or(default_message), &context);
        let alarm = Alarm {
            id: Arc::from(format!("{}/{}/{raised_at}", self.id, rule.id)),
            device: self.id.clone(),
            rule: Arc::clone(&rule.id),
            severity: rule.severity,
            state: AlarmState::Active,
            key: trigger.key.cloned(),
            value: trigger.value.cloned(),
            message,
            raised_at,
            cleared_at: None,
            frame_ts: trigger.frame_ts,
            cleared_frame_ts: None,
        };
        self.open_alarms[index] = Some(alarm.clone());
        self.publish_transition(Transition::Raised, alarm);
    }

    /// Clears the open alarm of rule `index`, if any. `value` is the value that cleared it,
    /// absent when a frame's mere arrival cleared an offline alarm.
    fn clear_alarm(&mut self, index: usize, value: Option<&Value>, cleared_frame_ts: Option<i64>) {
        let Some(mut alarm) = self.open_alarms[index].take() else {
            return;
        };
        alarm.state = AlarmState::Cleared;
        alarm.cleared_at = Some(now_ms().max(alarm.raised_at));
        alarm.cleared_frame_ts = cleared_frame_ts;
        if let Some(value) = value {
            alarm.value = Some(value.clone());
        }
        self.publish_transition(Transition::Cleared, alarm);
    }

    fn publish_transition(&self, transition: Transition, alarm: Alarm) {
        AlarmTransitioned {
            transition,
            severity: alarm.severity,
        }
        .emit();
        tracing::debug!(device.id = %self.id, alarm.id = %alarm.id, transition = transition.as_str(), "Alarm transition");
        self.events
            .alarm_transition(&AlarmEvent { transition, alarm });
    }

    // === offline timer ===

    /// Returns the time until the next offline rule that is not yet open comes due.
    fn next_offline_deadline(&self) -> Option<Duration> {
        let (seen_at, _) = self.last_seen?;
        let silent_for = seen_at.elapsed();
        self.rules
            .rules
            .iter()
            .zip(&self.open_alarms)
            .filter(|(_, open)| open.is_none())
            .filter_map(|(rule, _)| match rule.condition {
                Condition::Offline { after } => Some(after.saturating_sub(silent_for)),
                Condition::Threshold(_) => None,
            })
            .min()
    }

    fn arm_offline_timer(&mut self, context: &mut Context<Self>) {
        if self.offline_timer_armed {
            return;
        }
        if let Some(wait) = self.next_offline_deadline() {
            self.offline_timer_armed = true;
            context.run_later(wait, |actor, context| actor.on_offline_timer(context));
        }
    }

    /// Raises every offline rule whose silence has passed, then re-arms for the next one.
    ///
    /// The timer is armed once and re-armed on firing rather than reset per frame, so a busy
    /// device costs no timer work per frame.
    fn on_offline_timer(&mut self, context: &mut Context<Self>) {
        self.offline_timer_armed = false;
        let Some((seen_at, _)) = self.last_seen else {
            return;
        };
        let silent_for = seen_at.elapsed();
        let was_online = self.is_online();
        for index in 0..self.rules.rules.len() {
            let rule = Arc::clone(&self.rules.rules[index]);
            let Condition::Offline { after } = rule.condition else {
                continue;
            };
            if self.open_alarms[index].is_none() && silent_for >= after {
                let limit = humantime::format_duration(after).to_string();
                let trigger = Trigger {
                    key: None,
                    value: None,
                    limit: &limit,
                    frame_ts: self.shadow.newest_ts(),
                };
                self.raise_alarm(index, &rule, "{device}: no frame for {limit}", &trigger);
            }
        }
        if was_online && !self.is_online() {
            self.publish_presence();
        }
        self.arm_offline_timer(context);
    }

    fn publish_presence(&self) {
        self.events.presence_changed(&PresenceChange {
            device: self.id.clone(),
            online: self.is_online(),
            last_seen: self.last_seen.map(|(_, at)| at),
        });
    }
}

/// Formats a value for an alarm message: numbers to at most three decimals, so a reading of
/// 103.09666390000001 reads as 103.097.
fn format_for_message(value: &Value) -> String {
    match value {
        Value::Number(number) => {
            let text = format!("{number:.3}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
        other => other.to_string(),
    }
}

/// Cause of a rule firing, recorded in the alarm and its message.
struct Trigger<'a> {
    key: Option<&'a Arc<str>>,
    value: Option<&'a Value>,
    limit: &'a str,
    frame_ts: Option<i64>,
}

impl Actor for DeviceActor {
    type Context = Context<Self>;

    fn started(&mut self, _context: &mut Self::Context) {
        trace!(device.id = %self.id, device.r#type = %self.device_type, "Device actor started");
    }
}

impl Handler<FrameBatch> for DeviceActor {
    type Result = ();

    fn handle(&mut self, mut batch: FrameBatch, context: &mut Self::Context) {
        let was_online = self.is_online();
        batch.frames.sort_by_key(|frame| frame.ts);
        self.mark_seen(batch.received_at, batch.frames.last().map(|frame| frame.ts));
        let version_before = self.shadow.version();
        for frame in &batch.frames {
            self.apply_frame(frame, batch.received_at);
        }
        if !was_online && self.shadow.version() == version_before {
            self.publish_presence();
        }
        self.arm_offline_timer(context);
    }
}

impl Handler<PresenceReport> for DeviceActor {
    type Result = ();

    fn handle(&mut self, report: PresenceReport, _context: &mut Self::Context) {
        let was_online = self.is_online();
        self.reported_offline = !report.online;
        if report.online && self.last_seen.is_none() {
            self.last_seen = Some((Instant::now(), now_ms()));
        }
        if was_online != self.is_online() {
            self.publish_presence();
        }
    }
}

impl Handler<SnapshotQuery> for DeviceActor {
    type Result = actix::MessageResult<SnapshotQuery>;

    fn handle(&mut self, _query: SnapshotQuery, _context: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.snapshot())
    }
}
