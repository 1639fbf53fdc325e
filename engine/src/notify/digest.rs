//! Digests and summaries: the held-back notifications of one recipient on one channel, sent as
//! one message once the recipient's quiet hours are over and their rate limit allows another
//! message. A batch held only by quiet hours becomes a summary; any rate-limited item makes it
//! a digest. The new row and the listing of the held rows commit together.

use sqlx::AnyConnection;
use tracing::info;

use super::Context;
use super::message::{HeldItem, Kind, MAX_LISTED_ITEMS, Payload};
use super::metrics::NotificationCreated;
use super::noise::{QUIET_HOURS, in_quiet_hours, millis};
use super::outbox::{self, NewNotification, OutboxStore, Status};

/// Reason stored with held rows of a recipient or channel the configuration no longer has.
const REMOVED: &str = "recipient_or_channel_removed";

/// Turns every batch of held rows that may go out at `now` into one digest or summary.
/// Returns how many were created.
///
/// # Errors
///
/// Returns the database error; nothing of the pass is written then.
pub async fn flush_held(
    context: &Context,
    store: &OutboxStore,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let mut transaction = store.begin().await?;
    let mut created = 0;
    for (recipient, channel) in outbox::held_pairs(&mut transaction).await? {
        if flush_pair(&mut transaction, context, &recipient, &channel, now).await? {
            created += 1;
        }
    }
    transaction.commit().await?;
    Ok(created)
}

async fn flush_pair(
    connection: &mut AnyConnection,
    context: &Context,
    recipient_id: &str,
    channel: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let recipient = context
        .routing
        .recipient(recipient_id)
        .filter(|recipient| recipient.channels.iter().any(|name| name == channel));
    let Some(recipient) = recipient else {
        outbox::cancel_held(connection, recipient_id, channel, REMOVED).await?;
        return Ok(false);
    };
    let quiet = recipient.quiet_hours.as_ref();
    if quiet.is_some_and(|quiet| in_quiet_hours(quiet, now)) {
        return Ok(false);
    }
    if let Some(limit) = &recipient.rate_limit {
        let since = now - millis(limit.per);
        let sent = outbox::count_since(connection, recipient_id, channel, since).await?;
        if sent >= i64::from(limit.max) {
            return Ok(false);
        }
    }

    let held = outbox::held_rows(connection, recipient_id, channel).await?;
    let Some(last_id) = held.last().map(|row| row.id) else {
        return Ok(false);
    };
    let quiet_only = held
        .iter()
        .all(|row| row.reason.as_deref() == Some(QUIET_HOURS));
    let kind = if quiet_only {
        Kind::Summary
    } else {
        Kind::Digest
    };
    let items: Vec<HeldItem> = held
        .iter()
        .take(MAX_LISTED_ITEMS)
        .filter_map(|row| {
            let payload: Payload = serde_json::from_str(&row.payload).ok()?;
            Some(HeldItem {
                kind: payload.kind,
                transition: payload.transition,
                alarm: payload.alarm?,
                created_at: row.created_at,
            })
        })
        .collect();
    let payload = Payload {
        kind,
        recipient_name: recipient.display_name().to_owned(),
        alarm: None,
        transition: None,
        operator: None,
        reminder: None,
        escalation_level: None,
        held: items,
        held_total: held.len() as u64,
        dashboard_url: context.config.dashboard_url.clone(),
    };

    let payload = serde_json::to_string(&payload).unwrap_or_else(|_| "{}".to_owned());
    let dedup_key = format!("{}|{recipient_id}|{channel}|{last_id}", kind.as_str());
    let notification = NewNotification {
        dedup_key: &dedup_key,
        alarm_id: None,
        event_id: None,
        kind: kind.as_str(),
        transition: None,
        severity: None,
        route_id: None,
        recipient: recipient_id,
        channel,
        payload: &payload,
        status: Status::Queued,
        reason: None,
    };
    let Some(digest_id) = outbox::insert(connection, &notification, now).await? else {
        return Ok(false);
    };
    outbox::mark_digested(connection, recipient_id, channel, last_id, digest_id).await?;
    NotificationCreated {
        kind: kind.as_str(),
        status: Status::Queued.as_str(),
    }
    .emit();
    info!(recipient.id = %recipient_id, channel = %channel, held = held.len(), kind = kind.as_str(), "Held notifications summarized in one message");
    Ok(true)
}
