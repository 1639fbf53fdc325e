//! The rule evaluator on its own, driven by hand-made frames and clock ticks: durations,
//! clear modes, escalation, flapping, explanations and rule replacement.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

use std::sync::Arc;

use valmetal_actors::rules::{
    AlarmAction, AlarmCommand, AlarmEvent, CommandError, RuleEvaluator, RuleSet, Severity,
    Transition, rule_file,
};
use valmetal_actors::{DeviceId, Frame, Shadow, Value};

const MINUTE: i64 = 60_000;

/// A device under test: a shadow and an evaluator, fed like the actor feeds them.
struct Device {
    shadow: Shadow,
    evaluator: RuleEvaluator,
    events: Vec<AlarmEvent>,
}

impl Device {
    fn new(rules: &str) -> Self {
        let set = Arc::new(rule_file::parse(rules, "test.toml").unwrap());
        Self {
            shadow: Shadow::default(),
            evaluator: RuleEvaluator::new(DeviceId::parse("dev-1").unwrap(), set),
            events: Vec::new(),
        }
    }

    /// Applies a frame at device time `ts`, received at engine time `ts` as in a backtest.
    fn frame(&mut self, ts: i64, values: &[(&str, Value)]) {
        let frame = Frame {
            ts,
            seq: None,
            values: values
                .iter()
                .map(|(key, value)| (Arc::from(*key), value.clone()))
                .collect(),
        };
        let late = self.shadow.newest_ts().is_some_and(|newest| ts < newest);
        self.shadow.apply(&frame);
        let events = self.evaluator.on_frame(&frame, late, &self.shadow, ts);
        self.events.extend(events);
    }

    fn number(&mut self, ts: i64, key: &str, value: f64) {
        self.frame(ts, &[(key, Value::Number(value))]);
    }

    fn tick(&mut self, now: i64) {
        let events = self.evaluator.on_tick(&self.shadow, now);
        self.events.extend(events);
    }

    fn transitions(&self) -> Vec<(Transition, Severity)> {
        self.events
            .iter()
            .map(|event| (event.transition, event.alarm.severity))
            .collect()
    }
}

#[test]
fn duration_interrupted_halfway_restarts() {
    let mut device = Device::new(
        "device_type = \"m\"\n[[rule]]\nid = \"hot\"\nfor = \"5m\"\nwhen = { key = \"t\", above = 30.0 }\n",
    );
    device.number(0, "t", 31.0);
    device.number(3 * MINUTE, "t", 32.0);
    device.number(4 * MINUTE, "t", 29.0);
    device.number(5 * MINUTE, "t", 31.0);
    device.number(9 * MINUTE, "t", 31.0);
    assert!(
        device.events.is_empty(),
        "interrupted at 4 min, so 5 min have not passed"
    );
    device.number(10 * MINUTE, "t", 31.5);
    assert_eq!(
        device.transitions(),
        vec![(Transition::Raised, Severity::Major)]
    );
    assert_eq!(device.events[0].alarm.frame_ts, Some(10 * MINUTE));
}

#[test]
fn combined_condition_needs_all_leaves() {
    let mut device = Device::new(
        r#"device_type = "m"
[[rule]]
id = "hot_while_running"
when = { all = [ { key = "t", above = 95.0, clear_below = 90.0 }, { key = "mode", equals = "run" } ] }
"#,
    );
    device.frame(
        0,
        &[
            ("t", Value::Number(96.0)),
            ("mode", Value::Text(Arc::from("idle"))),
        ],
    );
    assert!(device.events.is_empty());
    device.frame(MINUTE, &[("mode", Value::Text(Arc::from("run")))]);
    assert_eq!(
        device.events.len(),
        1,
        "mode changed while t stayed above 95"
    );
    device.number(2 * MINUTE, "t", 93.0);
    assert_eq!(
        device.events.len(),
        1,
        "93 is inside the band, so the alarm holds"
    );
    device.number(3 * MINUTE, "t", 89.0);
    assert_eq!(
        device.transitions(),
        vec![
            (Transition::Raised, Severity::Major),
            (Transition::Cleared, Severity::Major)
        ]
    );
}

#[test]
fn alarm_explains_its_inputs_and_version() {
    let mut device = Device::new(
        "device_type = \"m\"\nversion = \"12\"\n[[rule]]\nid = \"hot\"\nmessage = \"{device} {key}={value} > {limit}\"\nwhen = { any = [ { key = \"t\", above = 30.0 }, { key = \"p\", above = 5.0 } ] }\n",
    );
    device.frame(
        0,
        &[("p", Value::Number(1.0)), ("other", Value::Number(7.0))],
    );
    device.number(MINUTE, "t", 30.123_456);
    let alarm = &device.events[0].alarm;
    assert_eq!(&*alarm.rule_version, "12");
    assert_eq!(alarm.message, "dev-1 t=30.123 > 30");
    let inputs: Vec<(&str, i64)> = alarm
        .inputs
        .iter()
        .map(|input| (&*input.key, input.ts))
        .collect();
    assert_eq!(
        inputs,
        vec![("t", MINUTE), ("p", 0)],
        "every key the rule reads, and only those"
    );
}

#[test]
fn stuck_sensor_raises_stale_alarm() {
    let mut device = Device::new(
        "device_type = \"bin\"\n[[rule]]\nid = \"stuck\"\nwhen = { key = \"w\", unchanged_for = \"30m\" }\n",
    );
    for step in 0..=6 {
        device.number(step * 10 * MINUTE, "w", 12.5);
    }
    assert_eq!(
        device.transitions(),
        vec![(Transition::Raised, Severity::Major)]
    );
    assert_eq!(device.events[0].alarm.frame_ts, Some(30 * MINUTE));
    device.number(70 * MINUTE, "w", 12.4);
    assert_eq!(
        device.events.last().unwrap().transition,
        Transition::Cleared
    );
}

#[test]
fn frame_at_no_data_deadline_wins() {
    let mut device = Device::new(
        "device_type = \"bin\"\n[[rule]]\nid = \"offline\"\nwhen = { no_data = \"10m\" }\n",
    );
    device.number(0, "w", 1.0);
    assert_eq!(device.evaluator.next_deadline(), Some(10 * MINUTE));
    device.number(10 * MINUTE, "w", 1.0);
    device.tick(10 * MINUTE);
    assert!(
        device.events.is_empty(),
        "a frame at the deadline, handled first, keeps the device online"
    );
    device.tick(20 * MINUTE);
    assert_eq!(
        device.transitions(),
        vec![(Transition::Raised, Severity::Major)]
    );
    assert!(device.evaluator.is_silent());
    device.tick(90 * MINUTE);
    assert_eq!(
        device.events.len(),
        1,
        "a device that never returns raises one alarm"
    );
    assert_eq!(device.evaluator.next_deadline(), None);
}

#[test]
fn clear_after_silence_waits_for_quiet() {
    let mut device = Device::new(
        r#"device_type = "door"
[[rule]]
id = "door_opened"
when = { key = "door", equals = true }
clear_after_silence = "30m"
"#,
    );
    device.frame(0, &[("door", Value::Bool(true))]);
    device.frame(MINUTE, &[("door", Value::Bool(false))]);
    device.frame(10 * MINUTE, &[("door", Value::Bool(true))]);
    device.tick(35 * MINUTE);
    assert_eq!(
        device.events.len(),
        1,
        "30 min have not passed since the last opening"
    );
    assert_eq!(device.evaluator.next_deadline(), Some(40 * MINUTE));
    device.tick(40 * MINUTE);
    assert_eq!(
        device.transitions(),
        vec![
            (Transition::Raised, Severity::Major),
            (Transition::Cleared, Severity::Major)
        ]
    );
}

#[test]
fn escalation_raises_severity_over_time() {
    let mut device = Device::new(
        r#"device_type = "m"
[[rule]]
id = "hot"
severity = "warning"
when = { key = "t", above = 30.0 }
escalate = [ { after = "15m", severity = "major" }, { after = "1h", severity = "critical" } ]
"#,
    );
    device.number(0, "t", 31.0);
    device.tick(14 * MINUTE);
    device.tick(15 * MINUTE);
    device.number(70 * MINUTE, "t", 32.0);
    let expected = vec![
        (Transition::Raised, Severity::Warning),
        (Transition::Escalated, Severity::Major),
        (Transition::Escalated, Severity::Critical),
    ];
    assert_eq!(device.transitions(), expected);
    assert!(
        device
            .events
            .iter()
            .all(|event| event.alarm.id == device.events[0].alarm.id),
        "one alarm throughout"
    );
}

#[test]
fn flapping_condition_becomes_one_alarm() {
    let mut device = Device::new(
        r#"device_type = "m"
[[rule]]
id = "hot"
when = { key = "t", above = 30.0 }
flapping = { transitions = 3, window = "10m" }
"#,
    );
    for step in 0..20 {
        let value = if step % 2 == 0 { 31.0 } else { 29.0 };
        device.number(step * 20_000, "t", value);
    }
    let kinds: Vec<Transition> = device.events.iter().map(|event| event.transition).collect();
    assert_eq!(
        kinds,
        vec![
            Transition::Raised,
            Transition::Cleared,
            Transition::Raised,
            Transition::Flapping
        ]
    );
    assert!(device.events[3].alarm.flapping);
    let last_flip = 19 * 20_000;
    device.tick(last_flip + 10 * MINUTE + 1);
    let last = device.events.last().unwrap();
    assert_eq!(
        last.transition,
        Transition::Cleared,
        "settles to the condition's state: 29 is below 30"
    );
    assert!(!last.alarm.flapping);
}

#[test]
fn late_frame_never_flips_alarm() {
    let mut device = Device::new(
        "device_type = \"m\"\n[[rule]]\nid = \"hot\"\nwhen = { key = \"t\", above = 30.0 }\n",
    );
    device.number(2 * MINUTE, "t", 20.0);
    device.number(MINUTE, "t", 40.0);
    assert!(device.events.is_empty());
}

#[test]
fn replacing_rules_keeps_unchanged_state() {
    let original = r#"device_type = "m"
[[rule]]
id = "hot"
when = { key = "t", above = 30.0 }
[[rule]]
id = "cold"
when = { key = "t", below = 0.0 }
"#;
    let mut device = Device::new(original);
    device.number(0, "t", 31.0);
    let raised_id = device.events[0].alarm.id.clone();

    let same = Arc::new(rule_file::parse(original, "test.toml").unwrap());
    let events = device.evaluator.replace_rules(same, &device.shadow, MINUTE);
    assert!(events.is_empty(), "an identical rule keeps its open alarm");
    assert_eq!(device.evaluator.open_alarms().next().unwrap().id, raised_id);

    let changed: RuleSet = rule_file::parse(
        &original.replace("above = 30.0", "above = 35.0"),
        "test.toml",
    )
    .unwrap();
    let events = device
        .evaluator
        .replace_rules(Arc::new(changed), &device.shadow, 2 * MINUTE);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].transition,
        Transition::Cleared,
        "a changed rule's alarm is closed"
    );
    device.number(3 * MINUTE, "t", 33.0);
    assert_eq!(
        device.evaluator.open_alarms().count(),
        0,
        "33 is below the new limit of 35"
    );
}

#[test]
fn count_rule_fires_on_repeated_events() {
    let mut device = Device::new(
        r#"device_type = "door"
[[rule]]
id = "door_cycling"
when = { count = { key = "door", equals = true }, at_least = 3, within = "10m" }
"#,
    );
    for step in 0..6 {
        device.frame(step * MINUTE, &[("door", Value::Bool(step % 2 == 0))]);
    }
    assert_eq!(
        device.transitions(),
        vec![(Transition::Raised, Severity::Major)]
    );
    assert_eq!(
        device.events[0].alarm.frame_ts,
        Some(4 * MINUTE),
        "the third opening"
    );
}

fn command(
    device: &mut Device,
    alarm_id: &str,
    action: AlarmAction,
    now: i64,
) -> Result<AlarmEvent, CommandError> {
    let command = AlarmCommand {
        alarm_id: alarm_id.to_owned(),
        action,
        by: Arc::from("alice"),
    };
    let result = device.evaluator.command(&command, now);
    if let Ok(event) = &result {
        device.events.push(event.clone());
    }
    result
}

const HOT: &str = "device_type = \"m\"\n[[rule]]\nid = \"hot\"\nreraise_after = \"10m\"\nwhen = { key = \"t\", above = 30.0 }\n";

#[test]
fn manual_clear_reraises_while_condition_holds() {
    let mut device = Device::new(HOT);
    device.number(0, "t", 31.0);
    let first = device.events[0].alarm.id.to_string();
    let cleared = command(&mut device, &first, AlarmAction::Clear, MINUTE).unwrap();
    assert_eq!(cleared.transition, Transition::Cleared);
    assert_eq!(&*cleared.operator.unwrap().by, "alice");
    assert_eq!(
        cleared.alarm.cleared_by.as_ref().map(|action| &*action.by),
        Some("alice")
    );
    device.number(5 * MINUTE, "t", 32.0);
    assert_eq!(
        device.events.len(),
        2,
        "no re-raise before the 10 min delay"
    );
    assert_eq!(device.evaluator.next_deadline(), Some(11 * MINUTE));
    device.tick(11 * MINUTE);
    let again = device.events.last().unwrap();
    assert_eq!(again.transition, Transition::Raised);
    assert_ne!(&*again.alarm.id, first, "the re-raise is a new alarm");
}

#[test]
fn manual_clear_stays_clear_once_condition_ends() {
    let mut device = Device::new(HOT);
    device.number(0, "t", 31.0);
    let id = device.events[0].alarm.id.to_string();
    command(&mut device, &id, AlarmAction::Clear, MINUTE).unwrap();
    device.number(2 * MINUTE, "t", 25.0);
    device.tick(11 * MINUTE);
    assert_eq!(device.events.len(), 2);
}

#[test]
fn acknowledge_applies_to_active_and_cleared() {
    let mut device = Device::new(HOT);
    device.number(0, "t", 31.0);
    let id = device.events[0].alarm.id.to_string();
    let acknowledged = command(&mut device, &id, AlarmAction::Acknowledge, MINUTE).unwrap();
    assert_eq!(
        acknowledged
            .alarm
            .acknowledged
            .as_ref()
            .map(|action| action.at),
        Some(MINUTE)
    );
    let again = command(&mut device, &id, AlarmAction::Acknowledge, MINUTE).unwrap_err();
    assert!(matches!(again, CommandError::Conflict { .. }), "{again}");
    device.number(2 * MINUTE, "t", 25.0);
    assert_eq!(
        device.evaluator.alarms_in_view().count(),
        0,
        "an acknowledged alarm leaves view when it clears"
    );

    device.number(3 * MINUTE, "t", 35.0);
    let second = device.events.last().unwrap().alarm.id.to_string();
    device.number(4 * MINUTE, "t", 25.0);
    assert_eq!(
        device.evaluator.alarms_in_view().count(),
        1,
        "cleared but not acknowledged stays in view"
    );
    let shelve = command(
        &mut device,
        &second,
        AlarmAction::Shelve { until: 9 * MINUTE },
        5 * MINUTE,
    )
    .unwrap_err();
    assert!(
        matches!(shelve, CommandError::Conflict { .. }),
        "a cleared alarm can only be acknowledged"
    );
    command(&mut device, &second, AlarmAction::Acknowledge, 5 * MINUTE).unwrap();
    assert_eq!(device.evaluator.alarms_in_view().count(), 0);
    let missing = command(
        &mut device,
        "dev-1/hot/1",
        AlarmAction::Acknowledge,
        6 * MINUTE,
    )
    .unwrap_err();
    assert_eq!(missing, CommandError::NotFound("dev-1/hot/1".into()));
}

#[test]
fn shelving_ends_at_its_time() {
    let mut device = Device::new(HOT);
    device.number(0, "t", 31.0);
    let id = device.events[0].alarm.id.to_string();
    let past = command(&mut device, &id, AlarmAction::Shelve { until: 0 }, MINUTE).unwrap_err();
    assert!(matches!(past, CommandError::Conflict { .. }));
    let shelved = command(
        &mut device,
        &id,
        AlarmAction::Shelve { until: 30 * MINUTE },
        MINUTE,
    )
    .unwrap();
    assert_eq!(shelved.alarm.shelved_until, Some(30 * MINUTE));
    assert_eq!(device.evaluator.next_deadline(), Some(30 * MINUTE));
    device.tick(30 * MINUTE);
    let unshelved = device.events.last().unwrap();
    assert_eq!(unshelved.transition, Transition::Unshelved);
    assert!(unshelved.operator.is_none(), "the timer ended the shelving");
    assert_eq!(unshelved.alarm.shelved_until, None);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the values and their spacing, raises and clears alternate, one alarm is
        /// open at a time, and a `for` rule never raises before its condition has held that
        /// long without a break.
        #[test]
        fn transitions_alternate_and_respect_duration(
            steps in proptest::collection::vec((1_i64..600_000, 20.0..40.0_f64), 1..120),
        ) {
            let mut device = Device::new(
                "device_type = \"m\"\n[[rule]]\nid = \"hot\"\nfor = \"5m\"\nwhen = { key = \"t\", above = 30.0, clear_below = 28.0 }\n",
            );
            let mut ts = 0;
            let mut above_since: Option<i64> = None;
            for (gap, value) in steps {
                ts += gap;
                let before = device.events.len();
                device.number(ts, "t", value);
                // The test's own model of the threshold with its clear level.
                if value > 30.0 {
                    above_since.get_or_insert(ts);
                } else if value < 28.0 {
                    above_since = None;
                }
                for event in &device.events[before..] {
                    if event.transition == Transition::Raised {
                        let since = above_since.expect("raised while the condition holds");
                        prop_assert!(ts - since >= 5 * MINUTE, "raised after {} ms above", ts - since);
                    }
                }
                prop_assert!(device.evaluator.open_alarms().count() <= 1);
            }
            for pair in device.events.windows(2) {
                prop_assert_ne!(pair[0].transition, pair[1].transition, "raises and clears alternate");
            }
        }
    }
}

#[test]
fn overrides_apply_by_farm_then_device() {
    let text = r#"device_type = "feed_bin"
[[rule]]
id = "bin_low"
when = { key = "w", below = 2.0, clear_above = 5.0 }

[[override]]
rule = "bin_low"
farms = ["north"]
severity = "minor"
when = { key = "w", below = 3.0, clear_above = 6.0 }

[[override]]
rule = "bin_low"
devices = ["bin-7"]
when = { key = "w", below = 1.0, clear_above = 4.0 }
"#;
    let set = Arc::new(rule_file::parse(text, "feed_bin.toml").unwrap());
    let limit = |device: &str, farm: Option<&str>| {
        let rules = RuleSet::for_device(&set, device, farm);
        (
            rules.rules[0].condition.to_string(),
            rules.rules[0].severity,
        )
    };
    assert_eq!(
        limit("bin-1", None),
        ("w < 2 (clears > 5)".to_owned(), Severity::Major)
    );
    assert_eq!(
        limit("bin-1", Some("north")),
        ("w < 3 (clears > 6)".to_owned(), Severity::Minor)
    );
    assert_eq!(
        limit("bin-7", Some("north")),
        ("w < 1 (clears > 4)".to_owned(), Severity::Minor),
        "device wins, farm's severity stays"
    );
    assert!(
        Arc::ptr_eq(&RuleSet::for_device(&set, "bin-1", Some("south")), &set),
        "no copy without overrides"
    );
}

#[test]
fn override_must_name_a_rule_and_scope() {
    let text = "device_type = \"fan\"\n[[rule]]\nid = \"hot\"\nwhen = { key = \"t\", above = 1.0 }\n\n[[override]]\nrule = \"cold\"\n";
    let error = rule_file::parse(text, "fan.toml").unwrap_err().to_string();
    assert!(
        error.contains("line 6, override of `cold`: no rule `cold`"),
        "{error}"
    );
    assert!(
        error.contains("set exactly one of `devices` or `farms`"),
        "{error}"
    );
}

#[test]
fn device_not_reaching_desired_raises() {
    let mut device = Device::new(
        r#"device_type = "feeder"
[[rule]]
id = "speed_not_reached"
when = { key = "speed", desired_not_reached_within = "2m", tolerance = 5.0 }
"#,
    );
    device.number(0, "speed", 800.0);
    device
        .shadow
        .set_desired(&[(Arc::from("speed"), Some(Value::Number(1200.0)))], MINUTE)
        .unwrap();
    let events = device.evaluator.on_desired(&device.shadow, MINUTE);
    assert!(events.is_empty());
    assert_eq!(device.evaluator.next_deadline(), Some(3 * MINUTE));
    device.number(2 * MINUTE, "speed", 1000.0);
    device.tick(3 * MINUTE);
    assert_eq!(
        device.transitions(),
        vec![(Transition::Raised, Severity::Major)]
    );
    assert_eq!(device.events[0].alarm.value, Some(Value::Number(1000.0)));
    device.number(4 * MINUTE, "speed", 1196.0);
    assert_eq!(
        device.events.last().unwrap().transition,
        Transition::Cleared,
        "within 5 of 1200"
    );

    device
        .shadow
        .set_desired(
            &[(Arc::from("speed"), Some(Value::Number(900.0)))],
            5 * MINUTE,
        )
        .unwrap();
    device
        .events
        .extend(device.evaluator.on_desired(&device.shadow, 5 * MINUTE));
    device
        .shadow
        .set_desired(&[(Arc::from("speed"), None)], 6 * MINUTE)
        .unwrap();
    device
        .events
        .extend(device.evaluator.on_desired(&device.shadow, 6 * MINUTE));
    device.tick(10 * MINUTE);
    assert_eq!(
        device.events.len(),
        2,
        "a removed desired value ends the wait"
    );
    assert!(device.shadow.delta().is_empty());
}

#[test]
fn desired_keys_are_capped() {
    let mut shadow = Shadow::default();
    let many: Vec<(Arc<str>, Option<Value>)> = (0..257)
        .map(|index| (Arc::from(format!("k{index}")), Some(Value::Number(1.0))))
        .collect();
    assert_eq!(shadow.set_desired(&many, 0), Err(257));
    assert!(shadow.desired().is_empty(), "a refused change sets nothing");
    assert_eq!(shadow.set_desired(&many[..256], 0), Ok(Some(1)));
}

#[test]
fn replay_scaling_keeps_recorded_limit_in_message() {
    let set = rule_file::parse(
        "device_type = \"bin\"\n[[rule]]\nid = \"offline\"\nmessage = \"{device}: silent for {limit}\"\nwhen = { no_data = \"2h\" }\n[[rule]]\nid = \"machine_offline\"\nwhen = { no_data = \"30m\" }\n",
        "bin.toml",
    )
    .unwrap();
    let scaled = set.scaled_for_replay(600.0);
    assert_eq!(scaled.rules[0].condition.to_string(), "no frame for 12s");
    assert_eq!(
        scaled.rules[0].message.as_deref(),
        Some("{device}: silent for 2h")
    );
    let fast = set.scaled_for_replay(24_000.0);
    assert_eq!(
        fast.rules[1].condition.to_string(),
        "no frame for 2s",
        "kept at the 2 s floor"
    );
    assert_eq!(
        fast.rules[1].message.as_deref(),
        Some("{device}: no frame for 30m")
    );
}
