//! Wiring: starts storage, the actor runtime, hub, alarm history, HTTP server and MQTT ingest
//! in the right order, and stops them in the reverse order.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::serve::ListenerExt;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use valmetal_actors::rules::RuleBook;
use valmetal_actors::{
    ActorRuntime, ActorSetup, DeviceRegistry, DeviceTypes, EquipmentProfiles, Farms,
};
use valmetal_ws_gateway::Hub;

use crate::auth::{Auth, AuthSetupError};
use crate::config::Config;
use crate::equipment::documents::DocumentError;
use crate::equipment::{EquipmentService, checker};
use crate::events::{ALARM_QUEUE_CAPACITY, EngineEvents, OUTGOING_QUEUE_CAPACITY};
use crate::http::{self, HttpError, HttpState};
use crate::ingest::{IngestHandle, MqttIngest};
use crate::notify::{self, Notifications, NotifyService, OutboxStore};
use crate::rule_sources::RuleSources;
use crate::rules_reload;
use crate::storage::{Intake, Storage, StorageError};
use crate::store::registration::RegistrationStore;
use crate::store::{AlarmHistory, RuleStore, alarm_history};

/// How long shutdown waits for open HTTP and WebSocket connections before closing them.
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors starting the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("cannot start device actors: {0}")]
    Actors(#[from] valmetal_actors::runtime::RuntimeError),
    #[error("cannot read the stored rule files: {0}")]
    StoredRules(#[from] sqlx::Error),
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error("cannot read the devices registered through the API: {0}")]
    Registrations(sqlx::Error),
    #[error("cannot open the equipment document store: {0}")]
    Documents(#[from] DocumentError),
}

/// A running engine.
pub struct RunningEngine {
    http_addr: SocketAddr,
    auth: Arc<Auth>,
    hub: Arc<Hub>,
    registry: Arc<DeviceRegistry>,
    history: AlarmHistory,
    storage: Storage,
    ingest: IngestHandle,
    /// The path MQTT ingest hands messages to, kept for feeding the engine in-process.
    intake: Intake,
    http_stop: watch::Sender<bool>,
    http_task: JoinHandle<()>,
    http_state: Arc<HttpState>,
    maintenance_checker: JoinHandle<()>,
    rules_reload: Option<JoinHandle<()>>,
    alarm_writer: JoinHandle<()>,
    notifications: Option<NotifyService>,
    runtime: ActorRuntime,
}

/// Returns the process-wide Prometheus recorder, installing it on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(notify::metrics::DELIVERY_LATENCY_SECONDS.to_owned()),
                    &notify::metrics::DELIVERY_LATENCY_BUCKETS,
                )
                .expect("the delivery latency buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                warn!("A metrics recorder was already installed; /metrics shows only this engine's own recorder");
            }
            handle
        })
        .clone()
}

impl RunningEngine {
    /// Starts every stage of the engine with `config` and `rules`.
    ///
    /// # Errors
    ///
    /// Returns [`EngineError`] when the store, the HTTP port or the actor runtime cannot start;
    /// nothing is left running then.
    pub async fn start(config: &Config, rules: RuleBook) -> Result<Self, EngineError> {
        let metrics = metrics_handle();
        let auth = Arc::new(Auth::start(&config.auth, &config.storage.data_dir)?);
        let mut storage = Storage::start(&config.storage).await?;
        let farms = Farms::new(&config.farms);
        let registrations = RegistrationStore::new(storage.database().clone());
        let assigned = registrations
            .assigned()
            .await
            .map_err(EngineError::Registrations)?;
        for registration in &assigned {
            farms.assign(
                registration.device_id.as_str(),
                registration.farm.as_deref(),
            );
        }
        let history = AlarmHistory::new(storage.database().clone());
        let rule_store = RuleStore::new(storage.database().clone());
        let stored_rules = RuleSources::load_stored(&rule_store).await?;
        // Set up before any device acts, so the first alarm event after the start notifies.
        let notifications = match &config.notify {
            Some(notify) => Some(
                Notifications::new(
                    notify,
                    storage.database().clone(),
                    DeviceTypes::new(&config.device_types),
                    farms.clone(),
                )
                .await?,
            ),
            None => None,
        };
        let listener = http::bind(config.http.addr).await?;
        let http_addr = listener.local_addr().map_err(|source| HttpError::Bind {
            addr: config.http.addr,
            source,
        })?;

        let workers = match config.actors.workers {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            workers => workers,
        };
        let runtime = ActorRuntime::start(workers)?;
        let hub = Arc::new(Hub::with_farms(
            config.gateway.max_queued_events,
            farms.clone(),
        ));
        for registration in &assigned {
            hub.register(&registration.device_id, &registration.device_type);
        }
        let (alarm_queue, alarm_receiver) = mpsc::channel(ALARM_QUEUE_CAPACITY);
        let (outgoing, outgoing_receiver) = mpsc::channel(OUTGOING_QUEUE_CAPACITY);
        let alarm_writer = alarm_history::spawn_writer(history.clone(), alarm_receiver);
        let shadow_queue = storage.shadow_queue();
        let setup = ActorSetup {
            rules: RuleSources::merge(&rules, &stored_rules),
            device_types: DeviceTypes::new(&config.device_types),
            farms: farms.clone(),
            profiles: EquipmentProfiles::new(&config.equipment.profiles),
            events: Arc::new(EngineEvents::new(
                Arc::clone(&hub),
                shadow_queue.clone(),
                farms.clone(),
                alarm_queue,
                outgoing,
                config.mqtt.topic_prefix.clone(),
            )),
            mailbox_capacity: config.actors.mailbox_capacity,
        };
        let registry = Arc::new(DeviceRegistry::new(&runtime, setup));
        let (intake, restored) = storage.attach(&registry, &shadow_queue).await?;
        for device in &restored {
            if let Ok(Some(snapshot)) = registry.snapshot(device).await {
                hub.restore(snapshot);
            }
        }
        storage
            .replay(&intake, config.mqtt.max_payload_bytes)
            .await?;
        let rule_sources = Arc::new(RuleSources::new(
            rules,
            stored_rules,
            rule_store,
            Arc::clone(&registry),
        ));

        let ingest = MqttIngest::new(
            config.mqtt.clone(),
            Arc::clone(&registry),
            intake.clone(),
            outgoing_receiver,
        )
        .start();
        let equipment = Arc::new(
            EquipmentService::new(
                config.equipment.clone(),
                storage.database().clone(),
                &config.storage.data_dir,
                config.storage.create_tables,
                Arc::clone(&registry),
            )
            .await?,
        );
        let state = Arc::new(HttpState {
            auth: Arc::clone(&auth),
            registrations,
            hub: Arc::clone(&hub),
            registry: Arc::clone(&registry),
            rules: Arc::clone(&rule_sources),
            history: history.clone(),
            telemetry: storage.history().cloned(),
            metrics,
            broker_connected: ingest.connected_flag(),
            notifications: notifications
                .as_ref()
                .map(|notifications| notifications.outbox().clone()),
            equipment: Arc::clone(&equipment),
        });
        let (http_stop, http_stopped) = watch::channel(false);
        let rules_reload = config.rules.dir.clone().map(|directory| {
            rules_reload::spawn(
                directory,
                Arc::clone(&rule_sources),
                config.rules.reload_interval,
                http_stopped.clone(),
            )
        });
        let maintenance_checker = checker::spawn(
            equipment,
            config.equipment.maintenance_check_interval,
            http_stopped.clone(),
        );
        let http_task = tokio::spawn(serve_http(
            listener,
            http::router(Arc::clone(&state)),
            http_stopped,
        ));
        let notifications = notifications.map(Notifications::spawn);
        info!(http.addr = %http_addr, workers, "Engine started");
        Ok(Self {
            http_addr,
            auth,
            hub,
            registry,
            history,
            storage,
            ingest,
            intake,
            http_stop,
            http_task,
            http_state: state,
            maintenance_checker,
            rules_reload,
            alarm_writer,
            notifications,
            runtime,
        })
    }

    /// Returns the address the HTTP server listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Returns how callers are authenticated, with the local issuer in local mode.
    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }

    /// Returns the WebSocket hub, which keeps every device's current state.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Returns the device registry.
    pub fn registry(&self) -> &Arc<DeviceRegistry> {
        &self.registry
    }

    /// Returns the intake, which takes a decoded message in as MQTT ingest does: journal,
    /// time-series queues, then the device's actor.
    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// Returns the state shared by the HTTP handlers, for tests that serve the routes with a
    /// chosen caller (see [`http::router_with_principal`]).
    pub fn http_state(&self) -> &Arc<HttpState> {
        &self.http_state
    }

    /// Returns the alarm history store.
    pub fn history(&self) -> &AlarmHistory {
        &self.history
    }

    /// Returns the storage, for its telemetry history and database.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Returns the notification outbox, when `[notify]` is configured.
    pub fn notifications(&self) -> Option<&OutboxStore> {
        self.notifications.as_ref().map(NotifyService::outbox)
    }

    /// Returns how many MQTT messages ingest has taken in or rejected.
    pub fn messages_taken(&self) -> u64 {
        self.ingest.messages_taken()
    }

    /// Returns true while the MQTT connection is up.
    pub fn is_broker_connected(&self) -> bool {
        self.ingest.is_connected()
    }

    /// Stops ingest, HTTP and notifications, lets the actors apply what they were sent, drains
    /// the storage sinks and the alarm history, then stops the actors.
    pub async fn shutdown(self) {
        info!("Engine stopping");
        self.ingest.stop().await;
        // The intake holds the registry, whose device events hold the alarm writer's queue.
        drop(self.intake);
        let _ = self.http_stop.send(true);
        let _ = self.http_task.await;
        let _ = self.maintenance_checker.await;
        if let Some(reload) = self.rules_reload {
            let _ = reload.await;
        }
        // Unsent notifications stay in the outbox, and alarm events not yet read stay behind
        // the cursor, so the next start sends them.
        if let Some(notifications) = self.notifications {
            notifications.shutdown().await;
        }
        self.registry.settle().await;
        self.storage.shutdown().await;
        let runtime = self.runtime;
        let _ = tokio::task::spawn_blocking(move || runtime.stop()).await;
        // The HTTP state also references the registry, through the equipment service.
        drop(self.http_state);
        drop(self.registry);
        let _ = self.alarm_writer.await;
        self.history.database().close().await;
        info!("Engine stopped");
    }
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stopped: watch::Receiver<bool>,
) {
    let mut drain_started = stopped.clone();
    // Nagle's algorithm would hold a small WebSocket update back until the browser's delayed
    // acknowledgement of the previous one, about 40 ms.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set on an HTTP connection");
        }
    });
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = drain_started.changed().await;
    });
    let server = tokio::spawn(async move { server.await });
    let _ = stopped.changed().await;
    let abort = server.abort_handle();
    if tokio::time::timeout(HTTP_DRAIN_TIMEOUT, server)
        .await
        .is_err()
    {
        abort.abort();
    }
}
