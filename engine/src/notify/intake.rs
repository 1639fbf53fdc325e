//! The intake of alarm events: reads the `alarm_events` rows past the stored cursor and, in one
//! transaction, writes the outbox rows they call for, starts or stops reminders and
//! escalations, and moves the cursor. A crash before the commit leaves the cursor where it
//! was, so the events are read again. Their dedup keys keep them from creating a row twice.

use std::collections::HashMap;

use sqlx::AnyConnection;
use tracing::warn;
use valmetal_actors::rules::Severity;

use super::Context;
use super::config::NotifyOn;
use super::escalation;
use super::message::{AlarmSummary, Kind, Payload};
use super::metrics::NotificationCreated;
use super::noise::{self, Disposition};
use super::outbox::{self, NewNotification, OutboxStore, Status, StoredAlarmEvent};
use super::routing::{AlarmFacts, DeviceFacts, Target, notify_on, parse_severity};

/// Alarm events read per transaction.
pub const EVENT_BATCH: i64 = 500;

/// One notification to create for each of several targets.
pub(super) struct Item<'a> {
    pub kind: Kind,
    /// The dedup key's prefix, such as `{alarm}|raised`; recipient and channel follow it.
    pub key: String,
    pub alarm: &'a AlarmSummary,
    pub severity: Severity,
    pub event_id: Option<i64>,
    pub transition: Option<&'a str>,
    pub operator: Option<&'a str>,
    pub route_id: &'a str,
    pub reminder: Option<u32>,
    pub escalation_level: Option<u32>,
}

/// Reads pending alarm events into the outbox. Returns how many rows became due to send.
///
/// # Errors
///
/// Returns the database error; nothing of the batch is written then.
pub async fn process_events(
    context: &Context,
    store: &OutboxStore,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let mut to_send = 0;
    loop {
        let mut transaction = store.begin().await?;
        let cursor = outbox::cursor(&mut transaction).await?.unwrap_or(0);
        let events = outbox::events_after(&mut transaction, cursor, EVENT_BATCH).await?;
        let Some(last) = events.last().map(|event| event.id) else {
            return Ok(to_send);
        };
        for event in &events {
            to_send += handle_event(&mut transaction, context, event, now).await?;
        }
        outbox::set_cursor(&mut transaction, last, now).await?;
        transaction.commit().await?;
        if (events.len() as i64) < EVENT_BATCH {
            return Ok(to_send);
        }
    }
}

async fn handle_event(
    connection: &mut AnyConnection,
    context: &Context,
    event: &StoredAlarmEvent,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let Some(severity) = parse_severity(&event.severity) else {
        warn!(alarm.id = %event.alarm_id, severity = %event.severity, "Alarm event has an unknown severity; not notified");
        return Ok(0);
    };
    let device = context.routing.describe(&event.device);
    let alarm = summarize(event, &device);
    let reached = update_schedule(connection, event).await?;
    let Some(on) = notify_on(&event.transition) else {
        return Ok(0);
    };

    let facts = AlarmFacts {
        rule: &event.rule,
        severity,
        device: &device,
    };
    let key = match on {
        NotifyOn::Escalated => format!("{}|escalated:{}", event.alarm_id, event.severity),
        _ => format!("{}|{}", event.alarm_id, event.transition),
    };
    let mut to_send = 0;
    for route in context.routing.matching_routes(facts) {
        if matches!(on, NotifyOn::Raised | NotifyOn::Escalated) {
            let base = match on {
                NotifyOn::Raised => event.raised_at,
                _ => event.recorded_at,
            };
            escalation::start(connection, route, &alarm, base).await?;
        }
        if !route.on.contains(&on) {
            continue;
        }
        // A clear or acknowledgement reaches every level the alarm was escalated to.
        let top = reached.get(route.id.as_str()).copied().unwrap_or(0);
        let item = Item {
            kind: Kind::Alarm,
            key: key.clone(),
            alarm: &alarm,
            severity,
            event_id: Some(event.id),
            transition: Some(&event.transition),
            operator: event.operator.as_deref(),
            route_id: &route.id,
            reminder: None,
            escalation_level: None,
        };
        let targets = context.routing.targets(route, 0..=top, facts);
        to_send += enqueue_all(connection, context, &item, &targets, now).await?;
    }
    Ok(to_send)
}

/// Stops reminders and escalations on an acknowledgement or clear, and pauses them while the
/// alarm is shelved. Returns, for a stop, the escalation level each route had reached.
async fn update_schedule(
    connection: &mut AnyConnection,
    event: &StoredAlarmEvent,
) -> Result<HashMap<String, usize>, sqlx::Error> {
    match event.transition.as_str() {
        "acknowledged" | "cleared" => {
            let reached = escalation::stop(connection, &event.alarm_id).await?;
            outbox::cancel_pending(connection, &event.alarm_id, &event.transition).await?;
            return Ok(reached);
        }
        "shelved" => {
            escalation::set_shelved(connection, &event.alarm_id, event.shelved_until).await?;
        }
        "unshelved" => escalation::set_shelved(connection, &event.alarm_id, None).await?,
        _ => {}
    }
    Ok(HashMap::new())
}

fn summarize(event: &StoredAlarmEvent, device: &DeviceFacts) -> AlarmSummary {
    AlarmSummary {
        id: event.alarm_id.clone(),
        device: event.device.clone(),
        device_type: device.device_type.to_string(),
        farm: device.farm.as_deref().map(str::to_owned),
        rule: event.rule.clone(),
        severity: event.severity.clone(),
        message: event.message.clone(),
        raised_at: event.raised_at,
        cleared_at: event.cleared_at,
    }
}

/// Creates `item` for each target through noise control. Returns how many rows are due to
/// send.
pub(super) async fn enqueue_all(
    connection: &mut AnyConnection,
    context: &Context,
    item: &Item<'_>,
    targets: &[Target],
    now: i64,
) -> Result<usize, sqlx::Error> {
    let mut to_send = 0;
    for target in targets {
        if enqueue(connection, context, item, target, now).await? == Some(Disposition::Send) {
            to_send += 1;
        }
    }
    Ok(to_send)
}

/// Creates one row, unless its dedup key exists. Returns what noise control decided, or
/// `None` for a duplicate or a recipient the configuration no longer has.
async fn enqueue(
    connection: &mut AnyConnection,
    context: &Context,
    item: &Item<'_>,
    target: &Target,
    now: i64,
) -> Result<Option<Disposition>, sqlx::Error> {
    let Some(recipient) = context.routing.recipient(&target.recipient) else {
        return Ok(None);
    };
    let disposition = noise::decide(
        connection,
        &context.config.maintenance,
        recipient,
        &target.channel,
        item.severity,
        item.alarm.farm.as_deref(),
        now,
    )
    .await?;

    let payload = Payload {
        kind: item.kind,
        recipient_name: recipient.display_name().to_owned(),
        alarm: Some(item.alarm.clone()),
        transition: item.transition.map(str::to_owned),
        operator: item.operator.map(str::to_owned),
        reminder: item.reminder,
        escalation_level: item.escalation_level,
        held: Vec::new(),
        held_total: 0,
        dashboard_url: context.config.dashboard_url.clone(),
    };
    let payload = serde_json::to_string(&payload).unwrap_or_else(|_| "{}".to_owned());
    let (status, reason) = match disposition {
        Disposition::Send => (Status::Queued, None),
        Disposition::Hold(reason) => (Status::Held, Some(reason)),
        Disposition::Suppress(reason) => (Status::Suppressed, Some(reason)),
    };

    let dedup_key = format!("{}|{}|{}", item.key, target.recipient, target.channel);
    let notification = NewNotification {
        dedup_key: &dedup_key,
        alarm_id: Some(&item.alarm.id),
        event_id: item.event_id,
        kind: item.kind.as_str(),
        transition: item.transition,
        severity: Some(item.severity.as_str()),
        route_id: Some(item.route_id),
        recipient: &target.recipient,
        channel: &target.channel,
        payload: &payload,
        status,
        reason,
    };
    if outbox::insert(connection, &notification, now)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    NotificationCreated {
        kind: item.kind.as_str(),
        status: status.as_str(),
    }
    .emit();
    Ok(Some(disposition))
}
