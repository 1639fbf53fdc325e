//! The sender: takes due outbox rows, sends each through its channel, and records the
//! outcome: `sent`, `failed` with the next attempt after an exponential backoff, or `dead`
//! after `max_attempts` or a permanent rejection.
//!
//! A row is claimed with a lease before its attempt (see [`OutboxStore::claim`]), so two
//! senders never send it at once. A sender that dies between the receiver's acceptance and
//! the database update sends the row again once the lease ends: delivery is at least once,
//! and every attempt carries the same delivery id so receivers can drop the repeat.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::Context;
use super::channels::{Channel, Delivery, DeliveryError};
use super::message::Payload;
use super::metrics::{
    NotificationAttemptFailed, NotificationDelivered, NotificationMarkedDead,
    NotificationQueueMeasured,
};
use super::noise::millis;
use super::outbox::{OutboxRow, OutboxStore};

/// Due rows taken per pass.
const DUE_BATCH: i64 = 100;
/// Failed attempts of one notification between two warnings, after the first. The others are
/// logged at debug level, because a receiver that is down fails every notification.
const WARN_EVERY_ATTEMPTS: i64 = 10;
/// Time a claimed row stays reserved beyond the send timeout, for the database update.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Sends due notifications.
pub struct Sender {
    context: Arc<Context>,
    store: OutboxStore,
    channels: HashMap<String, Channel>,
}

impl Sender {
    /// Builds a sender over `store` with the channels by name.
    pub fn new(
        context: Arc<Context>,
        store: OutboxStore,
        channels: HashMap<String, Channel>,
    ) -> Self {
        Self {
            context,
            store,
            channels,
        }
    }

    /// Sends every row due at `now`, up to `notify.concurrency` at once, and updates the
    /// queue depth gauges. Returns how many rows were attempted.
    ///
    /// # Errors
    ///
    /// Returns the database error of reading the due rows; errors recording one outcome are
    /// logged, and that row is tried again when its lease ends.
    pub async fn send_due(&self, now: i64) -> Result<usize, sqlx::Error> {
        let config = &self.context.config;
        let rows = self.store.due(now, DUE_BATCH).await?;
        let lease_until = now + millis(config.send_timeout + LEASE_MARGIN);
        let attempted = rows.len();
        futures_util::stream::iter(rows)
            .for_each_concurrent(config.concurrency, |row| async move {
                if let Err(error) = self.attempt(row, now, lease_until).await {
                    error!(%error, "Cannot record a notification's delivery; it is sent again when its lease ends");
                }
            })
            .await;
        self.measure_queues().await;
        Ok(attempted)
    }

    async fn attempt(&self, row: OutboxRow, now: i64, lease_until: i64) -> Result<(), sqlx::Error> {
        if !self.store.claim(&row, lease_until).await? {
            return Ok(());
        }
        let started = Instant::now();
        let outcome = self.deliver(&row).await;
        let finished_at = now + millis(started.elapsed());
        let attempts = row.attempts + 1;

        match outcome {
            Ok(()) => {
                self.store.mark_sent(row.id, attempts, finished_at).await?;
                let latency = u64::try_from(finished_at - row.created_at).unwrap_or(0);
                NotificationDelivered {
                    channel: &row.channel,
                    latency: Duration::from_millis(latency),
                }
                .emit();
                debug!(notification.id = row.id, channel = %row.channel, recipient.id = %row.recipient, "Notification sent");
            }
            Err(failure) => {
                self.record_failure(&row, attempts, finished_at, &failure)
                    .await?
            }
        }
        Ok(())
    }

    async fn deliver(&self, row: &OutboxRow) -> Result<(), DeliveryError> {
        let channel = self.channels.get(&row.channel).ok_or_else(|| {
            DeliveryError::permanent(
                "channel_removed",
                format!("channel `{}` is no longer configured", row.channel),
            )
        })?;
        let recipient = self
            .context
            .routing
            .recipient(&row.recipient)
            .ok_or_else(|| {
                DeliveryError::permanent(
                    "recipient_removed",
                    format!("recipient `{}` is no longer configured", row.recipient),
                )
            })?;
        let payload: Payload = serde_json::from_str(&row.payload)
            .map_err(|error| DeliveryError::permanent("unreadable_payload", error.to_string()))?;
        let delivery = Delivery {
            id: row.id,
            dedup_key: &row.dedup_key,
            recipient,
            payload: &payload,
        };
        let timeout = self.context.config.send_timeout;
        tokio::time::timeout(timeout, channel.send(&delivery))
            .await
            .unwrap_or_else(|_| {
                Err(DeliveryError::retriable(
                    "timeout",
                    format!("no answer within {timeout:?}"),
                ))
            })
    }

    async fn record_failure(
        &self,
        row: &OutboxRow,
        attempts: i64,
        finished_at: i64,
        failure: &DeliveryError,
    ) -> Result<(), sqlx::Error> {
        let config = &self.context.config;
        NotificationAttemptFailed {
            channel: &row.channel,
            reason: failure.reason,
        }
        .emit();
        let exhausted = attempts >= i64::from(config.max_attempts);
        if failure.retriable && !exhausted {
            let attempt = u32::try_from(attempts - 1).unwrap_or(u32::MAX);
            let next = finished_at + millis(config.backoff.wait(attempt));
            self.store
                .mark_failed(row.id, attempts, Some(next), &failure.message)
                .await?;
            if attempts == 1 || attempts % WARN_EVERY_ATTEMPTS == 0 {
                warn!(error = %failure, notification.id = row.id, channel = %row.channel, recipient.id = %row.recipient, attempts, "Notification not delivered; retrying");
            } else {
                debug!(error = %failure, notification.id = row.id, channel = %row.channel, recipient.id = %row.recipient, attempts, "Notification not delivered; retrying");
            }
            return Ok(());
        }
        self.store
            .mark_failed(row.id, attempts, None, &failure.message)
            .await?;
        NotificationMarkedDead {
            channel: &row.channel,
        }
        .emit();
        error!(error = %failure, notification.id = row.id, channel = %row.channel, recipient.id = %row.recipient, attempts, "Notification given up; it is marked dead");
        Ok(())
    }

    async fn measure_queues(&self) {
        let depths = match self.store.queue_depths().await {
            Ok(depths) => depths,
            Err(error) => {
                debug!(%error, "Cannot measure the notification queues");
                return;
            }
        };
        for name in self.channels.keys() {
            let depth = depths
                .iter()
                .find(|(channel, _)| channel == name)
                .map_or(0, |(_, depth)| *depth);
            NotificationQueueMeasured {
                channel: name,
                depth,
            }
            .emit();
        }
    }
}
