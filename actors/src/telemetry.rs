//! Metrics of the device actors, emitted through typed events.

use std::sync::LazyLock;

use metrics::{Counter, counter, gauge};

use crate::rules::{Severity, Transition};

const FRAMES_TOTAL: &str = "telemetry_actor_frames_total";
const ALARM_TRANSITIONS_TOTAL: &str = "telemetry_alarm_transitions_total";
const ACTORS: &str = "telemetry_registry_actors";
const MAILBOX_FULL_TOTAL: &str = "telemetry_registry_mailbox_full_total";

/// Outcome of one frame at the shadow, as a metric label.
#[derive(Debug, Clone, Copy)]
pub enum FrameOutcomeLabel {
    Applied,
    AppliedLate,
    Unchanged,
    Duplicate,
}

/// A frame reached an actor and was applied, ignored as old, or dropped as a duplicate.
pub struct ActorFrameProcessed(pub FrameOutcomeLabel);

/// The counters of the four outcomes, looked up once, on the first frame, instead of in the
/// registry on every frame. The engine installs its recorder before any actor starts.
static FRAME_COUNTERS: LazyLock<[Counter; 4]> = LazyLock::new(|| {
    ["applied", "applied_late", "unchanged", "duplicate"]
        .map(|outcome| counter!(FRAMES_TOTAL, "outcome" => outcome))
});

impl ActorFrameProcessed {
    pub fn emit(self) {
        let index = match self.0 {
            FrameOutcomeLabel::Applied => 0,
            FrameOutcomeLabel::AppliedLate => 1,
            FrameOutcomeLabel::Unchanged => 2,
            FrameOutcomeLabel::Duplicate => 3,
        };
        FRAME_COUNTERS[index].increment(1);
    }
}

/// An alarm was raised or cleared.
pub struct AlarmTransitioned {
    pub transition: Transition,
    pub severity: Severity,
}

impl AlarmTransitioned {
    pub fn emit(self) {
        counter!(
            ALARM_TRANSITIONS_TOTAL,
            "transition" => self.transition.as_str(),
            "severity" => self.severity.as_str()
        )
        .increment(1);
    }
}

/// The number of live device actors changed.
pub struct RegistryActorsCounted(pub usize);

impl RegistryActorsCounted {
    pub fn emit(self) {
        #[allow(
            clippy::cast_precision_loss,
            reason = "a gauge of actors fits f64 exactly"
        )]
        gauge!(ACTORS).set(self.0 as f64);
    }
}

/// An actor's mailbox was full, so delivery waited for room.
pub struct RegistryMailboxFull;

impl RegistryMailboxFull {
    pub fn emit(self) {
        counter!(MAILBOX_FULL_TOTAL).increment(1);
    }
}
