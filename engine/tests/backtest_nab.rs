//! The bundled machine rules backtested on the NAB machine-temperature series, whose anomaly
//! windows are labelled by the data set's authors.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on any error"
)]

use std::sync::Arc;

use chrono::NaiveDateTime;
use valmetal_actors::rules::{Transition, rule_file};
use valmetal_engine::backtest::{self, CsvLayout};
use valmetal_engine::bundled_rules::BUNDLED_RULE_FILES;
use valmetal_engine::replay::datasets::MACHINE_TEMPERATURE_CSV;

fn utc(text: &str) -> i64 {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// Returns the labelled anomaly windows of the series. The last ends in the catastrophic
/// failure.
fn labelled_windows() -> [(i64, i64); 4] {
    [
        (utc("2013-12-10 06:25"), utc("2013-12-12 05:35")),
        (utc("2013-12-15 17:50"), utc("2013-12-17 17:00")),
        (utc("2014-01-27 14:20"), utc("2014-01-29 13:30")),
        (utc("2014-02-07 14:55"), utc("2014-02-09 14:05")),
    ]
}

#[test]
fn machine_rules_flag_labelled_failures() {
    let (_, text) = BUNDLED_RULE_FILES
        .iter()
        .find(|(name, _)| *name == "machine.toml")
        .unwrap();
    let rules = Arc::new(rule_file::parse(text, "machine.toml").unwrap());
    let layout = CsvLayout {
        device: "machine-01".into(),
        renames: vec![("value".into(), "temperature".into())],
        ..CsvLayout::default()
    };
    let frames = backtest::read_frames(MACHINE_TEMPERATURE_CSV, &layout).unwrap();
    let events = backtest::run(&rules, None, &frames);

    let low_raises: Vec<i64> = events
        .iter()
        .filter(|event| {
            &*event.alarm.rule == "temperature_low" && event.transition == Transition::Raised
        })
        .map(|event| event.alarm.frame_ts.unwrap())
        .collect();
    let windows = labelled_windows();
    let inside = |ts: &i64| {
        windows
            .iter()
            .any(|(start, end)| (start..=end).contains(&ts))
    };
    let caught: Vec<bool> = windows
        .iter()
        .map(|(start, end)| low_raises.iter().any(|ts| (start..=end).contains(&ts)))
        .collect();
    assert_eq!(
        caught,
        vec![true, true, false, true],
        "low-temperature raises per labelled window: {low_raises:?}"
    );

    let failure_raise = low_raises
        .iter()
        .find(|ts| (windows[3].0..=windows[3].1).contains(ts))
        .unwrap();
    assert_eq!(
        *failure_raise,
        utc("2014-02-07 20:15"),
        "the failure is flagged 5 h 20 min into its window"
    );
    assert_eq!(low_raises.len(), 6, "{low_raises:?}");
    assert_eq!(
        low_raises.iter().filter(|ts| !inside(ts)).count(),
        3,
        "raises outside the labelled windows"
    );

    let mut open = std::collections::HashMap::new();
    for event in &events {
        let was_open = open.insert(
            event.alarm.rule.clone(),
            event.transition == Transition::Raised,
        );
        if event.transition == Transition::Raised {
            assert_ne!(
                was_open,
                Some(true),
                "one open alarm per rule at a time: {}",
                event.alarm.id
            );
        }
    }
}
