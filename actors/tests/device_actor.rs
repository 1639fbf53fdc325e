//! Device actor behaviour under a paused clock: alarms at the right frames, the offline timer,
//! late and repeated frames.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use parking_lot::Mutex;
use valmetal_actors::rules::{AlarmEvent, AlarmState, Transition, rule_file};
use valmetal_actors::{
    DesiredChange, DeviceActor, DeviceEvents, DeviceId, Frame, FrameBatch, PresenceChange,
    PresenceReport, ShadowChange, SnapshotQuery, Value,
};

const RULES: &str = r#"
device_type = "feed_bin"

[[rule]]
id = "bin_low"
when = { key = "end_weight_kg", below = 2.0, clear_above = 5.0 }

[[rule]]
id = "offline"
when = { no_data = "10s" }
"#;

#[derive(Default)]
struct Recorder {
    changes: Mutex<Vec<ShadowChange>>,
    alarms: Mutex<Vec<AlarmEvent>>,
    presence: Mutex<Vec<PresenceChange>>,
}

impl DeviceEvents for Recorder {
    fn shadow_changed(&self, change: &ShadowChange) {
        self.changes.lock().push(change.clone());
    }
    fn alarm_transition(&self, event: &AlarmEvent) {
        self.alarms.lock().push(event.clone());
    }
    fn presence_changed(&self, change: &PresenceChange) {
        self.presence.lock().push(change.clone());
    }
    fn desired_changed(&self, _change: &DesiredChange) {}
}

impl Recorder {
    fn transitions(&self) -> Vec<(String, Transition, Option<i64>, Option<i64>)> {
        self.alarms
            .lock()
            .iter()
            .map(|event| {
                (
                    event.alarm.rule.to_string(),
                    event.transition,
                    event.alarm.frame_ts,
                    event.alarm.cleared_frame_ts,
                )
            })
            .collect()
    }
}

fn start(recorder: &Arc<Recorder>) -> Addr<DeviceActor> {
    let rules = Arc::new(rule_file::parse(RULES, "test").unwrap());
    let events: Arc<dyn DeviceEvents> = Arc::clone(recorder) as Arc<dyn DeviceEvents>;
    DeviceActor::new(DeviceId::parse("feedbin-001").unwrap(), rules, events).start()
}

fn weight(ts: i64, seq: u64, kg: f64) -> FrameBatch {
    let frame = Frame {
        ts,
        seq: Some(seq),
        values: vec![(Arc::from("end_weight_kg"), Value::Number(kg))],
    };
    FrameBatch {
        frames: vec![frame],
        received_at: 0,
        retained: None,
    }
}

/// Runs `test` inside an actix system whose clock is paused.
fn with_paused_system<F: std::future::Future<Output = ()>>(test: impl FnOnce() -> F) {
    actix::System::new().block_on(async move {
        tokio::time::pause();
        test().await;
    });
}

#[test]
fn threshold_alarm_raises_and_clears_at_frames() {
    with_paused_system(|| async {
        let recorder = Arc::new(Recorder::default());
        let actor = start(&recorder);
        for (ts, kg) in [
            (1_000, 6.0),
            (2_000, 1.9),
            (3_000, 1.5),
            (4_000, 4.9),
            (5_000, 5.1),
            (6_000, 1.0),
        ] {
            actor.send(weight(ts, ts as u64, kg)).await.unwrap();
        }
        let expected = vec![
            ("bin_low".to_owned(), Transition::Raised, Some(2_000), None),
            (
                "bin_low".to_owned(),
                Transition::Cleared,
                Some(2_000),
                Some(5_000),
            ),
            ("bin_low".to_owned(), Transition::Raised, Some(6_000), None),
        ];
        assert_eq!(recorder.transitions(), expected);
        let snapshot = actor.send(SnapshotQuery).await.unwrap();
        assert_eq!(snapshot.version, 6);
        let states: Vec<AlarmState> = snapshot.alarms.iter().map(|alarm| alarm.state).collect();
        assert_eq!(
            states,
            vec![AlarmState::Active, AlarmState::Cleared],
            "the unacknowledged clear stays in view"
        );
    });
}

#[test]
fn late_frame_does_not_flip_alarm() {
    with_paused_system(|| async {
        let recorder = Arc::new(Recorder::default());
        let actor = start(&recorder);
        actor.send(weight(5_000, 5, 6.0)).await.unwrap();
        actor.send(weight(4_000, 4, 1.0)).await.unwrap();
        assert!(recorder.transitions().is_empty());
        let snapshot = actor.send(SnapshotQuery).await.unwrap();
        assert_eq!(snapshot.reported[0].1.value, Value::Number(6.0));
    });
}

#[test]
fn redelivered_frame_applies_once() {
    with_paused_system(|| async {
        let recorder = Arc::new(Recorder::default());
        let actor = start(&recorder);
        actor.send(weight(1_000, 1, 1.0)).await.unwrap();
        actor.send(weight(1_000, 1, 1.0)).await.unwrap();
        assert_eq!(recorder.changes.lock().len(), 1);
        assert_eq!(recorder.transitions().len(), 1);
    });
}

#[test]
fn offline_fires_on_time_without_frames() {
    with_paused_system(|| async {
        let recorder = Arc::new(Recorder::default());
        let actor = start(&recorder);
        actor.send(weight(1_000, 1, 6.0)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        assert!(
            recorder.transitions().is_empty(),
            "offline must not fire before 10s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            recorder.transitions(),
            vec![("offline".to_owned(), Transition::Raised, Some(1_000), None)]
        );
        let presence = recorder.presence.lock().clone();
        assert_eq!(presence.len(), 1);
        assert!(!presence[0].online);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            recorder.transitions().len(),
            1,
            "a silent device raises one offline alarm"
        );
    });
}

#[test]
fn busy_device_stays_online() {
    with_paused_system(|| async {
        let recorder = Arc::new(Recorder::default());
        let actor = start(&recorder);
        for step in 0..40_i64 {
            actor
                .send(weight(step * 1_000, step as u64, 6.0))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(recorder.transitions().is_empty());
    });
}

#[test]
fn frame_after_offline_clears_it() {
    with_paused_system(|| async {
        let recorder = Arc::new(Recorder::default());
        let actor = start(&recorder);
        actor.send(weight(1_000, 1, 6.0)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(11)).await;
        actor.send(weight(2_000, 2, 6.0)).await.unwrap();
        let transitions = recorder.transitions();
        assert_eq!(transitions.len(), 2);
        assert_eq!(
            transitions[1],
            (
                "offline".to_owned(),
                Transition::Cleared,
                Some(1_000),
                Some(2_000)
            )
        );
        assert!(recorder.changes.lock().last().unwrap().online);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(
            recorder.transitions().len(),
            3,
            "the timer re-arms after the device returns"
        );
    });
}

#[test]
fn status_topic_offline_then_online() {
    with_paused_system(|| async {
        let recorder = Arc::new(Recorder::default());
        let actor = start(&recorder);
        actor.send(weight(1_000, 1, 6.0)).await.unwrap();
        actor.send(PresenceReport { online: false }).await.unwrap();
        actor.send(PresenceReport { online: true }).await.unwrap();
        let presence: Vec<bool> = recorder
            .presence
            .lock()
            .iter()
            .map(|change| change.online)
            .collect();
        assert_eq!(presence, vec![false, true]);
    });
}
