//! Notifications to alert recipients, from a durable outbox.
//!
//! The alarm history is the source: every alarm transition is already stored in
//! `alarm_events`. The intake reads the rows past a stored cursor and, in one transaction,
//! writes the outbox rows that routing and noise control call for and moves the cursor
//! (`intake.rs`). Reminders and escalations of unacknowledged alarms come from a stored
//! schedule (`escalation.rs`), and held-back notifications leave as one digest or summary
//! (`digest.rs`). The sender takes due rows and sends them through their channel, with
//! retries and backoff (`worker.rs`, `channels/`).
//!
//! This module does not own the alarm history, the HTTP handlers (`http/notify_api.rs`) or
//! the dashboard. `docs/notifications.md` describes the configuration and the guarantees.

pub mod channels;
pub mod config;
pub mod digest;
pub mod escalation;
pub mod intake;
pub mod maintenance;
pub mod message;
pub mod metrics;
pub mod noise;
pub mod outbox;
pub mod routing;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use valmetal_actors::clock::now_ms;
use valmetal_actors::{DeviceTypes, Farms};

pub use config::NotifyConfig;
pub use maintenance::MaintenanceStore;
pub use outbox::{OutboxRow, OutboxStore, Status};

use crate::secret::SecretError;
use crate::store::Database;
use channels::Channel;
use routing::Routing;
use worker::Sender;

/// How long shutdown waits for a send in progress beyond the send timeout.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(2);
/// Failed passes in a row between two warnings, after the first.
const WARN_EVERY_FAILURES: u32 = 30;

/// Errors starting notifications.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notification channel `{channel}`: its secret {reason}")]
    Secret {
        channel: String,
        reason: SecretError,
    },
    #[error("notification channel `{channel}`: {message}")]
    Client { channel: String, message: String },
    #[error("cannot read the notification cursor: {0}")]
    Store(#[from] sqlx::Error),
}

/// The configuration and routing shared by the intake, the scheduler and the sender.
pub struct Context {
    pub config: Arc<NotifyConfig>,
    pub routing: Routing,
}

/// Notifications, ready to run. Tests drive [`Self::tick`] and [`Self::send_due`] with the
/// time they choose; the engine calls [`Self::spawn`].
pub struct Notifications {
    context: Arc<Context>,
    store: OutboxStore,
    sender: Arc<Sender>,
}

impl Notifications {
    /// Reads every channel's secrets, builds the channels and sets the cursor over alarm
    /// events when there is none yet, at the newest event.
    ///
    /// # Errors
    ///
    /// Returns [`NotifyError`] when a secret cannot be read, a channel cannot be built or the
    /// database cannot be read.
    pub async fn new(
        config: &NotifyConfig,
        database: Database,
        device_types: DeviceTypes,
        farms: Farms,
    ) -> Result<Self, NotifyError> {
        let config = Arc::new(config.clone());
        let mut built = HashMap::new();
        for channel in &config.channels {
            built.insert(
                channel.name().to_owned(),
                Channel::build(channel, config.send_timeout)?,
            );
        }
        let context = Arc::new(Context {
            routing: Routing::new(Arc::clone(&config), device_types, farms),
            config,
        });
        let store = OutboxStore::new(database);
        let cursor = store.init_cursor(now_ms()).await?;
        info!(
            channels = built.len(),
            notify.cursor = cursor,
            "Notifications ready"
        );
        Ok(Self {
            sender: Arc::new(Sender::new(Arc::clone(&context), store.clone(), built)),
            context,
            store,
        })
    }

    /// Returns the outbox, for the API.
    pub fn outbox(&self) -> &OutboxStore {
        &self.store
    }

    /// Runs one pass of everything but sending, at engine time `now`: held notifications
    /// whose time has come become digests and summaries, new alarm events become outbox rows,
    /// and due reminders and escalations are created. Returns how many rows became due to
    /// send.
    ///
    /// # Errors
    ///
    /// Returns the first database error; each step commits on its own, so a failed step is
    /// done again by the next pass.
    pub async fn tick(&self, now: i64) -> Result<usize, sqlx::Error> {
        let digests = digest::flush_held(&self.context, &self.store, now).await?;
        let created = intake::process_events(&self.context, &self.store, now).await?;
        let scheduled = escalation::run_due(&self.context, &self.store, now).await?;
        Ok(digests + created + scheduled)
    }

    /// Sends every notification due at engine time `now`. Returns how many were attempted.
    ///
    /// # Errors
    ///
    /// Returns the database error of reading the due rows.
    pub async fn send_due(&self, now: i64) -> Result<usize, sqlx::Error> {
        self.sender.send_due(now).await
    }

    /// Starts the intake and sender tasks on the engine clock.
    pub fn spawn(self) -> NotifyService {
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let this = Arc::new(self);
        let intake = tokio::spawn(run_intake(
            Arc::clone(&this),
            Arc::clone(&wake),
            stopped.clone(),
        ));
        let sender = tokio::spawn(run_sender(Arc::clone(&this), wake, stopped));
        NotifyService {
            outbox: this.store.clone(),
            shutdown_timeout: this.context.config.send_timeout + SHUTDOWN_MARGIN,
            stop,
            tasks: vec![intake, sender],
        }
    }

    fn poll_interval(&self) -> Duration {
        self.context.config.poll_interval
    }
}

/// The running notification tasks.
pub struct NotifyService {
    outbox: OutboxStore,
    shutdown_timeout: Duration,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl NotifyService {
    /// Returns the outbox, for the API.
    pub fn outbox(&self) -> &OutboxStore {
        &self.outbox
    }

    /// Stops both tasks, letting a send in progress finish within the send timeout. What is
    /// not sent stays in the outbox for the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(self.shutdown_timeout, task)
                .await
                .is_err()
            {
                abort.abort();
                warn!(
                    "Notification task did not stop in time; its claimed rows are sent after their lease"
                );
            }
        }
        info!("Notifications stopped");
    }
}

async fn run_intake(
    notifications: Arc<Notifications>,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*stopped.borrow() {
        match notifications.tick(now_ms()).await {
            Ok(due) => {
                failures = 0;
                if due > 0 {
                    wake.notify_one();
                }
            }
            Err(error) => {
                if failures.is_multiple_of(WARN_EVERY_FAILURES) {
                    warn!(%error, failures, "Notification intake failed; retrying");
                }
                failures = failures.saturating_add(1);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(notifications.poll_interval()) => {}
            _ = stopped.changed() => {}
        }
    }
}

async fn run_sender(
    notifications: Arc<Notifications>,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*stopped.borrow() {
        match notifications.send_due(now_ms()).await {
            Ok(_) => failures = 0,
            Err(error) => {
                if failures.is_multiple_of(WARN_EVERY_FAILURES) {
                    warn!(%error, failures, "Reading due notifications failed; retrying");
                }
                failures = failures.saturating_add(1);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(notifications.poll_interval()) => {}
            () = wake.notified() => {}
            _ = stopped.changed() => {}
        }
    }
}
