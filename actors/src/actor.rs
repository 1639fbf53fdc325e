//! The device actor: sole owner of one device's shadow and rule state.
//!
//! Frames arrive as [`FrameBatch`] messages, are applied to the shadow in device-time order,
//! and are then judged by the device type's rules through a [`RuleEvaluator`]. A timer on the
//! engine's clock runs the evaluator's time-driven checks (no data, clear after silence,
//! escalation), so an offline alarm fires on time even if the device never sends again.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message, SpawnHandle};
use tracing::trace;

use crate::clock::now_ms;
use crate::device_id::DeviceId;
use crate::document::DeviceDocument;
use crate::equipment::{DeviceUsage, EquipmentProfile, MAINTENANCE_RULE_PREFIX, UsageReport};
use crate::events::{DesiredChange, DeviceEvents, DeviceSnapshot, PresenceChange, ShadowChange};
use crate::retained::Retained;
use crate::rules::{
    AlarmCommand, AlarmEvent, CommandError, ExternalCondition, RuleBook, RuleEvaluator, RuleSet,
};
use crate::shadow::{FrameOutcome, MAX_DESIRED_KEYS, Shadow};
use crate::telemetry::{ActorFrameProcessed, AlarmTransitioned, FrameOutcomeLabel};
use crate::value::{Frame, Value};

/// Frames of one device received together, as one MQTT message carries them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FrameBatch {
    pub frames: Vec<Frame>,
    /// Engine time of receipt, in milliseconds since the Unix epoch.
    pub received_at: i64,
    /// Kept alive until the shadow changes the frames cause are stored.
    pub retained: Option<Retained>,
}

/// The device's own report of its presence, from its status topic or MQTT last will.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PresenceReport {
    pub online: bool,
}

/// A request for the device's state as the stores keep it.
#[derive(Debug, Message)]
#[rtype(result = "DeviceDocument")]
pub struct DocumentQuery;

/// A request for the device's whole state.
#[derive(Debug, Message)]
#[rtype(result = "DeviceSnapshot")]
pub struct SnapshotQuery;

/// An operator's request on one of the device's alarms.
#[derive(Debug, Message)]
#[rtype(result = "Result<AlarmEvent, CommandError>")]
pub struct AlarmCommandRequest(pub AlarmCommand);

/// An operator's change of desired values; `None` removes a key's desired value.
#[derive(Debug, Message)]
#[rtype(result = "Result<DesiredChange, DesiredUpdateError>")]
pub struct DesiredUpdate {
    pub changes: Vec<(Arc<str>, Option<Value>)>,
}

/// A request for the device's usage counters and wear trends.
#[derive(Debug, Message)]
#[rtype(result = "UsageReport")]
pub struct UsageQuery;

/// The maintenance tasks of the device's equipment that are due now, as alarm conditions with
/// `maintenance.`-prefixed rule names. Open maintenance alarms missing from the list clear.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct MaintenanceDue(pub Vec<ExternalCondition>);

/// A new rule book; the actor takes the rule set of its device type.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RulesReplaced(pub Arc<RuleBook>);

/// One device's actor.
pub struct DeviceActor {
    id: DeviceId,
    device_type: Arc<str>,
    /// The farm whose rule overrides apply, if any.
    farm: Option<Arc<str>>,
    shadow: Shadow,
    evaluator: RuleEvaluator,
    /// Usage counters and wear trends of the device type's profile.
    usage: DeviceUsage,
    last_seen: Option<i64>,
    reported_offline: bool,
    /// The armed timer and the engine time it fires at.
    timer: Option<(SpawnHandle, i64)>,
    events: Arc<dyn DeviceEvents>,
}

impl DeviceActor {
    /// Creates the actor of `id` with the rules of its device type.
    pub fn new(id: DeviceId, rules: Arc<RuleSet>, events: Arc<dyn DeviceEvents>) -> Self {
        Self {
            device_type: Arc::clone(&rules.device_type),
            farm: None,
            evaluator: RuleEvaluator::new(id.clone(), rules),
            id,
            shadow: Shadow::default(),
            usage: DeviceUsage::default(),
            last_seen: None,
            reported_offline: false,
            timer: None,
            events,
        }
    }

    /// Takes the shadow, last contact and alarms of a stored document, at engine time `now`.
    /// The device counts as offline until it speaks again.
    pub fn with_document(mut self, document: &DeviceDocument, now: i64) -> Self {
        self.shadow = document.shadow();
        self.last_seen = document.last_seen;
        self.reported_offline = true;
        self.evaluator
            .restore(document.alarms.clone(), &self.shadow, now);
        self.usage.restore(&document.usage);
        self
    }

    /// Sets the usage counters and wear trends of the device type; call before
    /// [`DeviceActor::with_document`], which restores their state.
    pub fn with_profile(mut self, profile: Option<&EquipmentProfile>) -> Self {
        self.usage = DeviceUsage::new(profile);
        self
    }

    /// Sets the farm, which later rule replacements use to pick the farm's overrides.
    pub fn with_farm(mut self, farm: Option<Arc<str>>) -> Self {
        self.farm = farm;
        self
    }

    fn is_online(&self) -> bool {
        self.last_seen.is_some() && !self.evaluator.is_silent() && !self.reported_offline
    }

    fn snapshot(&self) -> DeviceSnapshot {
        DeviceSnapshot {
            device: self.id.clone(),
            device_type: Arc::clone(&self.device_type),
            version: self.shadow.version(),
            reported: self.shadow.reported().to_vec(),
            desired: self.shadow.desired().to_vec(),
            last_frame_ts: self.shadow.newest_ts(),
            last_seen: self.last_seen,
            online: self.is_online(),
            alarms: self.evaluator.alarms_in_view().cloned().collect(),
        }
    }

    // === frames ===

    /// Applies one frame, judges it, then publishes the shadow change before the alarm
    /// transitions it caused, so a dashboard receives the value before the alarm about it.
    fn apply_frame(&mut self, frame: &Frame, received_at: i64, retained: Option<&Retained>) {
        let outcome = self.shadow.apply(frame);
        trace!(device.id = %self.id, ts = frame.ts, ?outcome, "Frame applied");
        let (change, late, label) = match outcome {
            FrameOutcome::Applied {
                changes,
                version,
                late: true,
            } => (
                Some((changes, version)),
                true,
                FrameOutcomeLabel::AppliedLate,
            ),
            FrameOutcome::Applied {
                changes,
                version,
                late: false,
            } => (Some((changes, version)), false, FrameOutcomeLabel::Applied),
            FrameOutcome::Unchanged { late } => (None, late, FrameOutcomeLabel::Unchanged),
            FrameOutcome::Duplicate => (None, true, FrameOutcomeLabel::Duplicate),
        };
        ActorFrameProcessed(label).emit();
        let now = now_ms();
        let mut events = self.evaluator.on_frame(frame, late, &self.shadow, now);
        if !matches!(label, FrameOutcomeLabel::Duplicate) {
            for (rule, condition) in self.usage.observe(self.id.as_str(), frame) {
                events.extend(
                    self.evaluator
                        .set_external(&rule, condition, Some(frame.ts), now),
                );
            }
        }
        if let Some((changes, version)) = change {
            self.events.shadow_changed(&ShadowChange {
                device: self.id.clone(),
                device_type: Arc::clone(&self.device_type),
                version,
                changes,
                last_frame_ts: self.shadow.newest_ts(),
                last_seen: received_at,
                online: self.is_online(),
                retained: retained.cloned(),
            });
        }
        self.publish_alarms(events);
    }

    fn apply_maintenance(&mut self, due: Vec<ExternalCondition>) {
        let now = now_ms();
        let frame_ts = self.shadow.newest_ts();
        let mut events = Vec::new();
        for rule in self.evaluator.external_rules(MAINTENANCE_RULE_PREFIX) {
            if !due.iter().any(|condition| condition.rule == rule) {
                events.extend(self.evaluator.set_external(&rule, None, frame_ts, now));
            }
        }
        for condition in due {
            let rule = Arc::clone(&condition.rule);
            events.extend(
                self.evaluator
                    .set_external(&rule, Some(condition), frame_ts, now),
            );
        }
        self.publish_alarms(events);
    }

    fn publish_alarms(&self, events: Vec<AlarmEvent>) {
        for event in events {
            AlarmTransitioned {
                transition: event.transition,
                severity: event.alarm.severity,
            }
            .emit();
            tracing::debug!(
                device.id = %self.id,
                alarm.id = %event.alarm.id,
                transition = event.transition.as_str(),
                "Alarm transition"
            );
            self.events.alarm_transition(&event);
        }
    }

    // === timer ===

    /// Arms the timer for the evaluator's next deadline unless one at least as early is armed.
    ///
    /// The timer is not reset per frame: when it fires early (the device spoke meanwhile) the
    /// evaluator finds nothing due and the timer is armed again, so a busy device costs no
    /// timer work per frame.
    fn arm_timer(&mut self, context: &mut Context<Self>) {
        let Some(deadline) = self.evaluator.next_deadline() else {
            return;
        };
        if self.timer.is_some_and(|(_, armed)| armed <= deadline) {
            return;
        }
        if let Some((handle, _)) = self.timer.take() {
            context.cancel_future(handle);
        }
        let wait = Duration::from_millis(u64::try_from(deadline - now_ms()).unwrap_or(0));
        let handle = context.run_later(wait, |actor, context| actor.on_timer(context));
        self.timer = Some((handle, deadline));
    }

    fn on_timer(&mut self, context: &mut Context<Self>) {
        self.timer = None;
        let was_online = self.is_online();
        let events = self.evaluator.on_tick(&self.shadow, now_ms());
        self.publish_alarms(events);
        if was_online != self.is_online() {
            self.publish_presence();
        }
        self.arm_timer(context);
    }

    fn publish_presence(&self) {
        self.events.presence_changed(&PresenceChange {
            device: self.id.clone(),
            device_type: Arc::clone(&self.device_type),
            online: self.is_online(),
            last_seen: self.last_seen,
        });
    }
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
        self.last_seen = Some(batch.received_at);
        self.reported_offline = false;
        batch.frames.sort_by_key(|frame| frame.ts);
        let version_before = self.shadow.version();
        for frame in &batch.frames {
            self.apply_frame(frame, batch.received_at, batch.retained.as_ref());
        }
        if !was_online && self.shadow.version() == version_before {
            self.publish_presence();
        }
        self.arm_timer(context);
    }
}

impl Handler<PresenceReport> for DeviceActor {
    type Result = ();

    fn handle(&mut self, report: PresenceReport, _context: &mut Self::Context) {
        let was_online = self.is_online();
        self.reported_offline = !report.online;
        if report.online && self.last_seen.is_none() {
            self.last_seen = Some(now_ms());
        }
        if was_online != self.is_online() {
            self.publish_presence();
        }
    }
}

impl Handler<DocumentQuery> for DeviceActor {
    type Result = actix::MessageResult<DocumentQuery>;

    fn handle(&mut self, _query: DocumentQuery, _context: &mut Self::Context) -> Self::Result {
        let mut document = DeviceDocument::from_shadow(
            self.id.clone(),
            &self.device_type,
            self.farm.as_deref(),
            &self.shadow,
            self.last_seen,
            self.evaluator.alarms_in_view().cloned().collect(),
            now_ms(),
        );
        document.usage = self.usage.state();
        actix::MessageResult(document)
    }
}

impl Handler<UsageQuery> for DeviceActor {
    type Result = actix::MessageResult<UsageQuery>;

    fn handle(&mut self, _query: UsageQuery, _context: &mut Self::Context) -> Self::Result {
        actix::MessageResult(UsageReport {
            device: self.id.clone(),
            device_type: Arc::clone(&self.device_type),
            counters: self.usage.counters().clone(),
            wear: self.usage.wear_reports(),
        })
    }
}

impl Handler<MaintenanceDue> for DeviceActor {
    type Result = ();

    fn handle(&mut self, message: MaintenanceDue, context: &mut Self::Context) {
        self.apply_maintenance(message.0);
        self.arm_timer(context);
    }
}

impl Handler<SnapshotQuery> for DeviceActor {
    type Result = actix::MessageResult<SnapshotQuery>;

    fn handle(&mut self, _query: SnapshotQuery, _context: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.snapshot())
    }
}

/// Error changing desired values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredUpdateError {
    #[error("device has not reported yet")]
    NotFound,
    #[error("the device's actor stopped")]
    Stopped,
    #[error(
        "the change leaves {0} desired keys; the limit is {MAX_DESIRED_KEYS}, remove keys with null first"
    )]
    TooManyKeys(usize),
}

impl Handler<DesiredUpdate> for DeviceActor {
    type Result = Result<DesiredChange, DesiredUpdateError>;

    fn handle(&mut self, update: DesiredUpdate, context: &mut Self::Context) -> Self::Result {
        let now = now_ms();
        let changed = self
            .shadow
            .set_desired(&update.changes, now)
            .map_err(DesiredUpdateError::TooManyKeys)?;
        let change = DesiredChange {
            device: self.id.clone(),
            version: self.shadow.version(),
            desired: self.shadow.desired().to_vec(),
            delta: self.shadow.delta(),
            at: now,
        };
        if changed.is_some() {
            self.events.desired_changed(&change);
            let events = self.evaluator.on_desired(&self.shadow, now);
            self.publish_alarms(events);
            self.arm_timer(context);
        }
        Ok(change)
    }
}

impl Handler<AlarmCommandRequest> for DeviceActor {
    type Result = Result<AlarmEvent, CommandError>;

    fn handle(
        &mut self,
        request: AlarmCommandRequest,
        context: &mut Self::Context,
    ) -> Self::Result {
        let was_online = self.is_online();
        let event = self.evaluator.command(&request.0, now_ms())?;
        tracing::info!(
            device.id = %self.id,
            alarm.id = %event.alarm.id,
            operator = %request.0.by,
            transition = event.transition.as_str(),
            "Alarm changed by operator"
        );
        self.publish_alarms(vec![event.clone()]);
        if was_online != self.is_online() {
            self.publish_presence();
        }
        self.arm_timer(context);
        Ok(event)
    }
}

impl Handler<RulesReplaced> for DeviceActor {
    type Result = ();

    fn handle(&mut self, message: RulesReplaced, context: &mut Self::Context) {
        let set = message.0.rules_for(&self.device_type);
        let rules = RuleSet::for_device(&set, self.id.as_str(), self.farm.as_deref());
        if *rules == **self.evaluator.rules() {
            return;
        }
        let was_online = self.is_online();
        let events = self.evaluator.replace_rules(rules, &self.shadow, now_ms());
        self.publish_alarms(events);
        if was_online != self.is_online() {
            self.publish_presence();
        }
        if let Some((handle, _)) = self.timer.take() {
            context.cancel_future(handle);
        }
        self.arm_timer(context);
    }
}
