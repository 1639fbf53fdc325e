//! Escalation and reminders of unacknowledged alarms, from `notification_schedule`.
//!
//! A raise (or an escalation of severity that makes a route match) stores one row per alarm
//! and route that has `escalate` steps or `remind_every`, with the time of the next step and
//! the next reminder. Each pass over the due rows creates the outbox rows of that step or
//! reminder and moves the times on, in one transaction. An acknowledgement or clear deletes
//! the rows and cancels the unsent reminders and escalations of the alarm (see `intake.rs`),
//! so nothing more goes out. While an alarm is shelved its due times wait for the shelving to
//! end. Times are engine milliseconds passed in by the caller, so tests control them.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};
use tracing::warn;
use valmetal_actors::rules::Severity;

use super::Context;
use super::config::RouteConfig;
use super::intake::{Item, enqueue_all};
use super::message::{AlarmSummary, Kind};
use super::noise::millis;
use super::outbox::OutboxStore;
use super::routing::{AlarmFacts, Target, parse_severity};

/// Due schedule rows handled per pass.
const DUE_BATCH: i64 = 500;

/// One stored schedule row.
struct Schedule {
    alarm_id: String,
    route_id: String,
    alarm: String,
    raised_at: i64,
    escalation_level: i64,
    next_escalation_at: Option<i64>,
    reminders_sent: i64,
    next_reminder_at: Option<i64>,
    shelved_until: Option<i64>,
}

/// Stores the schedule of `alarm` under `route`, counting from `base`, unless the route has
/// neither escalation steps nor reminders. An existing row keeps its times and takes the
/// newer alarm text.
///
/// # Errors
///
/// Returns the database error.
pub(super) async fn start(
    connection: &mut AnyConnection,
    route: &RouteConfig,
    alarm: &AlarmSummary,
    base: i64,
) -> Result<(), sqlx::Error> {
    if route.escalate.is_empty() && route.remind_every.is_none() {
        return Ok(());
    }
    let next_escalation = route.escalate.first().map(|step| base + millis(step.after));
    let next_reminder = route.remind_every.map(|every| base + millis(every));
    let text = serde_json::to_string(alarm).unwrap_or_else(|_| "{}".to_owned());
    sqlx::query(
        "INSERT INTO notification_schedule (alarm_id, route_id, alarm, raised_at, next_escalation_at, next_reminder_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (alarm_id, route_id) DO UPDATE SET alarm = excluded.alarm",
    )
    .bind(&alarm.id)
    .bind(&route.id)
    .bind(text)
    .bind(base)
    .bind(next_escalation)
    .bind(next_reminder)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Deletes every schedule row of `alarm_id`. Returns the escalation level each route had
/// reached, by route id.
///
/// # Errors
///
/// Returns the database error.
pub(super) async fn stop(
    connection: &mut AnyConnection,
    alarm_id: &str,
) -> Result<HashMap<String, usize>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT route_id, escalation_level FROM notification_schedule WHERE alarm_id = $1",
    )
    .bind(alarm_id)
    .fetch_all(&mut *connection)
    .await?;
    let mut reached = HashMap::new();
    for row in &rows {
        let level: i64 = row.try_get("escalation_level")?;
        reached.insert(
            row.try_get("route_id")?,
            usize::try_from(level).unwrap_or(0),
        );
    }
    sqlx::query("DELETE FROM notification_schedule WHERE alarm_id = $1")
        .bind(alarm_id)
        .execute(&mut *connection)
        .await?;
    Ok(reached)
}

/// Records until when `alarm_id` is shelved; `None` when it no longer is.
///
/// # Errors
///
/// Returns the database error.
pub(super) async fn set_shelved(
    connection: &mut AnyConnection,
    alarm_id: &str,
    until: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE notification_schedule SET shelved_until = $1 WHERE alarm_id = $2")
        .bind(until)
        .bind(alarm_id)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Creates the escalations and reminders due at `now`. Returns how many rows became due to
/// send.
///
/// # Errors
///
/// Returns the database error; nothing of the pass is written then.
pub async fn run_due(
    context: &Context,
    store: &OutboxStore,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let mut transaction = store.begin().await?;
    let rows = sqlx::query(
        "SELECT alarm_id, route_id, alarm, raised_at, escalation_level, next_escalation_at, reminders_sent, \
         next_reminder_at, shelved_until FROM notification_schedule \
         WHERE next_escalation_at <= $1 OR next_reminder_at <= $1 ORDER BY alarm_id, route_id LIMIT $2",
    )
    .bind(now)
    .bind(DUE_BATCH)
    .fetch_all(&mut *transaction)
    .await?;
    let mut to_send = 0;
    for row in &rows {
        let schedule = Schedule {
            alarm_id: row.try_get("alarm_id")?,
            route_id: row.try_get("route_id")?,
            alarm: row.try_get("alarm")?,
            raised_at: row.try_get("raised_at")?,
            escalation_level: row.try_get("escalation_level")?,
            next_escalation_at: row.try_get("next_escalation_at")?,
            reminders_sent: row.try_get("reminders_sent")?,
            next_reminder_at: row.try_get("next_reminder_at")?,
            shelved_until: row.try_get("shelved_until")?,
        };
        to_send += advance(&mut transaction, context, schedule, now).await?;
    }
    transaction.commit().await?;
    Ok(to_send)
}

/// Handles one due row: the next escalation step, the next reminder, or both.
async fn advance(
    connection: &mut AnyConnection,
    context: &Context,
    mut schedule: Schedule,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let route = context.routing.route(&schedule.route_id);
    let alarm = serde_json::from_str::<AlarmSummary>(&schedule.alarm).ok();
    let (Some(route), Some(alarm)) = (route, alarm) else {
        warn!(alarm.id = %schedule.alarm_id, route.id = %schedule.route_id, "Reminder schedule of a removed route or unreadable alarm; dropped");
        delete(connection, &schedule).await?;
        return Ok(0);
    };
    if let Some(until) = schedule.shelved_until.filter(|until| *until > now) {
        schedule.next_escalation_at = schedule.next_escalation_at.map(|at| at.max(until));
        schedule.next_reminder_at = schedule.next_reminder_at.map(|at| at.max(until));
        save(connection, &schedule).await?;
        return Ok(0);
    }

    let mut to_send = 0;
    if schedule.next_escalation_at.is_some_and(|at| at <= now) {
        to_send += escalate(connection, context, route, &alarm, &mut schedule, now).await?;
    }
    if schedule.next_reminder_at.is_some_and(|at| at <= now) {
        to_send += remind(connection, context, route, &alarm, &mut schedule, now).await?;
    }
    // A schedule with nothing left due stays until the alarm's clear or acknowledgement, which
    // reads from it the level reached, so the clear reaches every escalated recipient.
    save(connection, &schedule).await?;
    Ok(to_send)
}

async fn escalate(
    connection: &mut AnyConnection,
    context: &Context,
    route: &RouteConfig,
    alarm: &AlarmSummary,
    schedule: &mut Schedule,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let level = usize::try_from(schedule.escalation_level).unwrap_or(0) + 1;
    schedule.escalation_level += 1;
    schedule.next_escalation_at = route
        .escalate
        .get(level)
        .map(|step| schedule.raised_at + millis(step.after));
    let Some(severity) = parse_severity(&alarm.severity) else {
        return Ok(0);
    };
    if level > route.escalate.len() {
        return Ok(0);
    }

    let item = Item {
        kind: Kind::Escalation,
        key: format!("{}|escalation:{level}", alarm.id),
        escalation_level: Some(u32::try_from(level).unwrap_or(u32::MAX)),
        ..item_for(alarm, route, severity)
    };
    let targets = targets_for(context, route, alarm, severity, level..=level);
    enqueue_all(connection, context, &item, &targets, now).await
}

async fn remind(
    connection: &mut AnyConnection,
    context: &Context,
    route: &RouteConfig,
    alarm: &AlarmSummary,
    schedule: &mut Schedule,
    now: i64,
) -> Result<usize, sqlx::Error> {
    schedule.reminders_sent += 1;
    let number = u32::try_from(schedule.reminders_sent).unwrap_or(u32::MAX);
    let due = schedule.next_reminder_at.unwrap_or(now);
    let more = route.max_reminders.is_none_or(|max| number < max);
    schedule.next_reminder_at = match (route.remind_every, more) {
        (Some(every), true) => {
            // After a long stop of the engine, the next reminder counts from now, so missed
            // reminders are not sent in a burst.
            let next = due + millis(every);
            Some(if next <= now {
                now + millis(every)
            } else {
                next
            })
        }
        _ => None,
    };
    let Some(severity) = parse_severity(&alarm.severity) else {
        return Ok(0);
    };

    let item = Item {
        kind: Kind::Reminder,
        key: format!("{}|reminder:{number}", alarm.id),
        reminder: Some(number),
        ..item_for(alarm, route, severity)
    };
    let top = usize::try_from(schedule.escalation_level).unwrap_or(0);
    let targets = targets_for(context, route, alarm, severity, 0..=top);
    enqueue_all(connection, context, &item, &targets, now).await
}

fn item_for<'a>(alarm: &'a AlarmSummary, route: &'a RouteConfig, severity: Severity) -> Item<'a> {
    Item {
        kind: Kind::Reminder,
        key: String::new(),
        alarm,
        severity,
        event_id: None,
        transition: None,
        operator: None,
        route_id: &route.id,
        reminder: None,
        escalation_level: None,
    }
}

fn targets_for(
    context: &Context,
    route: &RouteConfig,
    alarm: &AlarmSummary,
    severity: Severity,
    levels: std::ops::RangeInclusive<usize>,
) -> Vec<Target> {
    let device = context.routing.describe(&alarm.device);
    let facts = AlarmFacts {
        rule: &alarm.rule,
        severity,
        device: &device,
    };
    context.routing.targets(route, levels, facts)
}

async fn save(connection: &mut AnyConnection, schedule: &Schedule) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notification_schedule SET escalation_level = $1, next_escalation_at = $2, reminders_sent = $3, \
         next_reminder_at = $4 WHERE alarm_id = $5 AND route_id = $6",
    )
    .bind(schedule.escalation_level)
    .bind(schedule.next_escalation_at)
    .bind(schedule.reminders_sent)
    .bind(schedule.next_reminder_at)
    .bind(&schedule.alarm_id)
    .bind(&schedule.route_id)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

async fn delete(connection: &mut AnyConnection, schedule: &Schedule) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM notification_schedule WHERE alarm_id = $1 AND route_id = $2")
        .bind(&schedule.alarm_id)
        .bind(&schedule.route_id)
        .execute(&mut *connection)
        .await?;
    Ok(())
}
