//! Restoring devices at start: their stored documents, read with retries, completed with the
//! alarms the history recorded after the last document was written.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;
use valmetal_actors::rules::{Alarm, AlarmInput, AlarmState, OperatorAction, Severity};
use valmetal_actors::{DeviceDocument, DeviceId, ReportedValue, Shadow, Value};

use crate::sinks::SinkError;
use crate::sinks::backoff::Backoff;
use crate::store::AlarmRecord;

/// How long start-up keeps trying to read the stored documents.
pub const LOAD_PATIENCE: Duration = Duration::from_secs(120);

/// How far back the history is searched for alarms a crash kept out of the documents: a
/// document is at most one flush interval older than the actor's state, plus retries.
pub const HISTORY_LOOKBACK_MS: i64 = 3600 * 1000;

/// Calls `load` until it succeeds or [`LOAD_PATIENCE`] has passed, logging each failure:
/// ingest must not start before the devices are restored, because new versions counted from
/// zero would lose to the stored ones.
///
/// # Errors
///
/// Returns the last error once the patience is spent.
pub async fn load_with_retry<F, Fut>(
    store: &'static str,
    mut load: F,
) -> Result<Vec<DeviceDocument>, SinkError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<DeviceDocument>, SinkError>>,
{
    let backoff = Backoff {
        first: Duration::from_millis(500),
        max: Duration::from_secs(10),
    };
    let deadline = Instant::now() + LOAD_PATIENCE;
    let mut attempt = 0;
    loop {
        match load().await {
            Ok(documents) => return Ok(documents),
            Err(error) if Instant::now() < deadline => {
                warn!(store, %error, attempt, "Reading stored device documents failed; retrying before ingest starts");
            }
            Err(error) => return Err(error),
        }
        tokio::time::sleep(backoff.wait(attempt)).await;
        attempt += 1;
    }
}

/// Adds to `documents` every open alarm of `history` they lack, with the input values it was
/// raised on, creating a document for a device that has none, typed by `describe`. An alarm
/// raised just before a crash is then still open after the restart, and replaying the journal
/// does not raise it a second time.
pub fn add_open_alarms(
    documents: &mut Vec<DeviceDocument>,
    history: Vec<AlarmRecord>,
    describe: impl Fn(&str) -> (Arc<str>, Option<Arc<str>>),
    now: i64,
) -> usize {
    let mut by_device: HashMap<DeviceId, usize> = documents
        .iter()
        .enumerate()
        .map(|(index, document)| (document.device_id.clone(), index))
        .collect();
    let mut added = 0;
    for record in history {
        let Some(alarm) = alarm_of(&record) else {
            continue;
        };
        let index = *by_device.entry(alarm.device.clone()).or_insert_with(|| {
            let (device_type, farm) = describe(alarm.device.as_str());
            documents.push(DeviceDocument::from_shadow(
                alarm.device.clone(),
                &device_type,
                farm.as_deref(),
                &Shadow::default(),
                None,
                Vec::new(),
                now,
            ));
            documents.len() - 1
        });
        let document = &mut documents[index];
        let known = document.alarms.iter().any(|kept| {
            kept.id == alarm.id || (kept.rule == alarm.rule && kept.state == AlarmState::Active)
        });
        if !known {
            take_inputs(document, &alarm);
            document.alarms.push(alarm);
            added += 1;
        }
    }
    added
}

/// Takes into the document's reported values the alarm's inputs that are newer than what it
/// holds. The journal's replay then finds the values the alarm was raised on, so the frames
/// before them are late and do not clear it.
fn take_inputs(document: &mut DeviceDocument, alarm: &Alarm) {
    for input in &alarm.inputs {
        let newer = document
            .reported
            .get(&*input.key)
            .is_none_or(|stored| stored.ts < input.ts);
        if newer {
            document.reported.insert(
                input.key.to_string(),
                ReportedValue {
                    value: input.value.clone(),
                    ts: input.ts,
                },
            );
            document.newest_ts = Some(document.newest_ts.map_or(input.ts, |ts| ts.max(input.ts)));
        }
    }
}

/// Rebuilds an active alarm from its latest history row.
fn alarm_of(record: &AlarmRecord) -> Option<Alarm> {
    let device = DeviceId::parse(&record.device).ok()?;
    let severity: Severity =
        serde_json::from_value(serde_json::Value::String(record.severity.clone())).ok()?;
    let operator_action = |transition: &str| {
        (record.transition == transition).then(|| OperatorAction {
            by: Arc::from(record.operator.as_deref().unwrap_or("")),
            at: record.recorded_at,
        })
    };
    let inputs: Vec<AlarmInput> = serde_json::from_value(record.inputs.clone()).unwrap_or_default();
    Some(Alarm {
        id: Arc::from(record.alarm_id.as_str()),
        device,
        rule: Arc::from(record.rule.as_str()),
        severity,
        state: AlarmState::Active,
        key: record.key.as_deref().map(Arc::from),
        value: record.value.as_deref().map(value_of),
        message: record.message.clone(),
        raised_at: record.raised_at,
        cleared_at: None,
        frame_ts: record.frame_ts,
        cleared_frame_ts: None,
        rule_version: Arc::from(record.rule_version.as_str()),
        inputs,
        flapping: record.flapping,
        acknowledged: operator_action("acknowledged"),
        cleared_by: None,
        shelved: operator_action("shelved"),
        shelved_until: record.shelved_until,
    })
}

/// Reads a value the history stored as text: a number, a boolean, or else text.
fn value_of(text: &str) -> Value {
    if let Ok(number) = text.parse::<f64>() {
        return Value::Number(number);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::Text(Arc::from(text)),
    }
}
