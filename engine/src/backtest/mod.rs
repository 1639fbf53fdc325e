//! Backtesting: recorded telemetry replayed through the same evaluator the device actors run,
//! with the engine's clock standing in as the recorded device time.
//!
//! Time-driven checks (no data, clear after silence, escalation, the end of flapping) run at
//! their deadlines between frames, exactly as the actor's timer would run them live, up to the
//! last recorded frame.

pub mod csv_frames;

use std::collections::BTreeMap;
use std::sync::Arc;

use valmetal_actors::rules::{AlarmEvent, RuleEvaluator, RuleSet};
use valmetal_actors::{DeviceId, Frame, Shadow};

pub use csv_frames::{CsvError, CsvLayout, read_frames};

/// One device's replay state.
struct DeviceReplay {
    shadow: Shadow,
    evaluator: RuleEvaluator,
}

/// Runs `frames` (in recorded order) through `rules`, with the overrides of `farm` and of each
/// device applied, and returns every alarm transition in the order it happened.
pub fn run(
    rules: &Arc<RuleSet>,
    farm: Option<&str>,
    frames: &[(DeviceId, Frame)],
) -> Vec<AlarmEvent> {
    let mut devices: BTreeMap<DeviceId, DeviceReplay> = BTreeMap::new();
    let mut events = Vec::new();
    let mut clock = i64::MIN;
    for (device, frame) in frames {
        clock = clock.max(frame.ts);
        tick_until(&mut devices, clock, &mut events);
        let replay = devices
            .entry(device.clone())
            .or_insert_with(|| DeviceReplay {
                shadow: Shadow::default(),
                evaluator: RuleEvaluator::new(
                    device.clone(),
                    RuleSet::for_device(rules, device.as_str(), farm),
                ),
            });
        let late = replay
            .shadow
            .newest_ts()
            .is_some_and(|newest| frame.ts < newest);
        replay.shadow.apply(frame);
        events.extend(
            replay
                .evaluator
                .on_frame(frame, late, &replay.shadow, clock),
        );
    }
    tick_until(&mut devices, clock, &mut events);
    events
}

/// Runs every device's time-driven checks that fall due up to `until`, in time order.
fn tick_until(
    devices: &mut BTreeMap<DeviceId, DeviceReplay>,
    until: i64,
    events: &mut Vec<AlarmEvent>,
) {
    // A device whose deadline did not move after its tick is skipped, so a deadline that
    // nothing resolves cannot stall the replay.
    let mut stalled: Vec<DeviceId> = Vec::new();
    loop {
        let due = devices
            .iter_mut()
            .filter(|(device, _)| !stalled.contains(device))
            .filter_map(|(device, replay)| {
                replay
                    .evaluator
                    .next_deadline()
                    .map(|deadline| (deadline, device, replay))
            })
            .filter(|(deadline, _, _)| *deadline <= until)
            .min_by_key(|(deadline, _, _)| *deadline);
        let Some((deadline, device, replay)) = due else {
            return;
        };
        let fired = replay.evaluator.on_tick(&replay.shadow, deadline);
        if fired.is_empty() && replay.evaluator.next_deadline() == Some(deadline) {
            stalled.push(device.clone());
        }
        events.extend(fired);
    }
}
