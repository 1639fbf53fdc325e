//! The device registry: one actor per device, created on the device's first message and
//! spread over the runtime's arbiters.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::device_map::DeviceMap;
use actix::dev::SendError;
use actix::dev::ToEnvelope;
use actix::{Actor, Addr, ArbiterHandle, Handler, MailboxError, Message};
use parking_lot::RwLock;

use crate::actor::{
    AlarmCommandRequest, DesiredUpdate, DesiredUpdateError, DeviceActor, DocumentQuery,
    MaintenanceDue, RulesReplaced, SnapshotQuery, UsageQuery,
};
use crate::clock::now_ms;
use crate::device_id::DeviceId;
use crate::device_types::{DeviceTypes, Farms};
use crate::document::DeviceDocument;
use crate::equipment::{EquipmentProfiles, UsageReport};
use crate::events::{DesiredChange, DeviceEvents, DeviceSnapshot};
use crate::rules::{AlarmCommand, AlarmEvent, CommandError, ExternalCondition, RuleBook, RuleSet};
use crate::runtime::ActorRuntime;
use crate::telemetry::{RegistryActorsCounted, RegistryMailboxFull};
use crate::value::Value;

/// Messages a device actor may queue before a sender has to wait.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 256;

/// Inputs from which every new actor is built.
pub struct ActorSetup {
    pub rules: RuleBook,
    pub device_types: DeviceTypes,
    pub farms: Farms,
    /// Usage counters and wear trends by device type.
    pub profiles: EquipmentProfiles,
    pub events: Arc<dyn DeviceEvents>,
    pub mailbox_capacity: usize,
}

/// Addresses of all device actors, by device id.
pub struct DeviceRegistry {
    actors: DeviceMap<DeviceId, Addr<DeviceActor>>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    /// The rule book new actors start with; replaced as a whole on reload.
    rules: RwLock<Arc<RuleBook>>,
    setup: ActorSetup,
}

impl DeviceRegistry {
    /// Creates an empty registry whose actors run on `runtime`'s arbiters.
    pub fn new(runtime: &ActorRuntime, setup: ActorSetup) -> Self {
        Self {
            actors: DeviceMap::default(),
            arbiters: runtime.arbiters().to_vec(),
            next_arbiter: AtomicUsize::new(0),
            rules: RwLock::new(Arc::new(setup.rules.clone())),
            setup,
        }
    }

    /// Delivers `message` to the actor of `device`, creating the actor if needed.
    ///
    /// When the mailbox is full this waits until the actor has handled the message, so a
    /// flood from one device slows its sender instead of growing a queue without bound.
    pub async fn deliver<M>(&self, device: &DeviceId, message: M)
    where
        M: Message<Result = ()> + Send + 'static,
        DeviceActor: Handler<M>,
        <DeviceActor as Actor>::Context: ToEnvelope<DeviceActor, M>,
    {
        let address = self.actor_of(device);
        let message = match address.try_send(message) {
            Ok(()) => return,
            Err(SendError::Full(message)) => {
                RegistryMailboxFull.emit();
                message
            }
            Err(SendError::Closed(message)) => {
                tracing::warn!(device.id = %device, "Device actor had stopped; starting a new one");
                self.actors.remove(device);
                message
            }
        };
        if let Err(error) = self.actor_of(device).send(message).await {
            tracing::error!(device.id = %device, %error, "Device actor did not take a message");
        }
    }

    /// Changes desired values of `device`, which must have an actor.
    ///
    /// # Errors
    ///
    /// Returns [`DesiredUpdateError`] when the device has no actor, its actor stopped, or the
    /// change would leave too many desired keys.
    pub async fn update_desired(
        &self,
        device: &DeviceId,
        changes: Vec<(Arc<str>, Option<Value>)>,
    ) -> Result<DesiredChange, DesiredUpdateError> {
        let address = self
            .actors
            .get(device)
            .map(|entry| entry.clone())
            .ok_or(DesiredUpdateError::NotFound)?;
        address
            .send(DesiredUpdate { changes })
            .await
            .map_err(|_| DesiredUpdateError::Stopped)?
    }

    /// Returns the whole state of `device`, or `None` if it has no actor.
    ///
    /// # Errors
    ///
    /// Returns [`MailboxError`] if the actor stopped before replying.
    pub async fn snapshot(
        &self,
        device: &DeviceId,
    ) -> Result<Option<DeviceSnapshot>, MailboxError> {
        let Some(address) = self.actors.get(device).map(|entry| entry.clone()) else {
            return Ok(None);
        };
        address.send(SnapshotQuery).await.map(Some)
    }

    /// Returns the state of `device` as the stores keep it, or `None` if it has no actor or
    /// its actor stopped.
    pub async fn document(&self, device: &DeviceId) -> Option<DeviceDocument> {
        let address = self.actors.get(device).map(|entry| entry.clone())?;
        address.send(DocumentQuery).await.ok()
    }

    /// Returns the usage counters and wear trends of `device`, or `None` if it has no actor
    /// or its actor stopped.
    pub async fn usage(&self, device: &DeviceId) -> Option<UsageReport> {
        let address = self.actors.get(device).map(|entry| entry.clone())?;
        address.send(UsageQuery).await.ok()
    }

    /// Hands the maintenance tasks due on `device` to its actor, which raises and clears
    /// their alarms; a device without an actor is skipped, as it has nothing to alarm on.
    pub fn set_maintenance_due(&self, device: &DeviceId, due: Vec<ExternalCondition>) {
        if let Some(address) = self.actors.get(device) {
            address.do_send(MaintenanceDue(due));
        }
    }

    /// Starts the actor of a stored device with its stored state; a device that already has
    /// an actor keeps it.
    pub fn restore(&self, document: &DeviceDocument) {
        let device = &document.device_id;
        if self.actors.contains_key(device) {
            return;
        }
        let address = self.start_actor(device, Some(document));
        self.actors.entry(device.clone()).or_insert(address);
        RegistryActorsCounted(self.actors.len()).emit();
    }

    /// Returns the device type and farm the id of `device` gives.
    pub fn describe(&self, device: &str) -> (Arc<str>, Option<Arc<str>>) {
        (
            self.setup.device_types.type_of(device),
            self.setup.farms.farm_of(device),
        )
    }

    /// Applies an operator's request to the alarm it names; the device is the first part of
    /// the alarm id.
    ///
    /// # Errors
    ///
    /// Returns [`CommandError::NotFound`] when the id names no device with an actor or no
    /// alarm of that device, and the actor's error otherwise.
    pub async fn command_alarm(&self, command: AlarmCommand) -> Result<AlarmEvent, CommandError> {
        let not_found = || CommandError::NotFound(command.alarm_id.clone());
        let device = command
            .alarm_id
            .split('/')
            .next()
            .and_then(|id| DeviceId::parse(id).ok())
            .ok_or_else(not_found)?;
        let address = self
            .actors
            .get(&device)
            .map(|entry| entry.clone())
            .ok_or_else(not_found)?;
        address
            .send(AlarmCommandRequest(command.clone()))
            .await
            .map_err(|_| not_found())?
    }

    /// Swaps in a new rule book: actors created from now on use it, and every existing actor
    /// receives it and keeps the state of its rules that did not change.
    pub fn replace_rules(&self, book: RuleBook) {
        let book = Arc::new(book);
        *self.rules.write() = Arc::clone(&book);
        for entry in &self.actors {
            entry.value().do_send(RulesReplaced(Arc::clone(&book)));
        }
    }

    /// Waits until every actor has handled what it was sent before this call.
    pub async fn settle(&self) {
        let addresses: Vec<_> = self
            .actors
            .iter()
            .map(|entry| entry.value().clone())
            .collect();
        for address in addresses {
            let _ = address.send(SnapshotQuery).await;
        }
    }

    /// Returns the ids of every device with an actor.
    pub fn device_ids(&self) -> Vec<DeviceId> {
        self.actors
            .iter()
            .map(|entry| entry.key().clone())
            .collect()
    }

    /// Returns the number of device actors.
    pub fn len(&self) -> usize {
        self.actors.len()
    }

    /// Returns true when no device has an actor yet.
    pub fn is_empty(&self) -> bool {
        self.actors.is_empty()
    }

    fn actor_of(&self, device: &DeviceId) -> Addr<DeviceActor> {
        if let Some(address) = self.actors.get(device) {
            return address.clone();
        }
        let address = self
            .actors
            .entry(device.clone())
            .or_insert_with(|| self.start_actor(device, None))
            .clone();
        RegistryActorsCounted(self.actors.len()).emit();
        address
    }

    fn start_actor(
        &self,
        device: &DeviceId,
        document: Option<&DeviceDocument>,
    ) -> Addr<DeviceActor> {
        let index = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let device_type = self.setup.device_types.type_of(device.as_str());
        let farm = self.setup.farms.farm_of(device.as_str());
        let set = self.rules.read().rules_for(&device_type);
        let rules = RuleSet::for_device(&set, device.as_str(), farm.as_deref());
        let events = Arc::clone(&self.setup.events);
        let profile = self.setup.profiles.profile_for(&device_type);
        let capacity = self.setup.mailbox_capacity;
        let device = device.clone();
        let document = document.cloned();
        DeviceActor::start_in_arbiter(&self.arbiters[index], move |context| {
            context.set_mailbox_capacity(capacity);
            let actor = DeviceActor::new(device, rules, events)
                .with_farm(farm)
                .with_profile(profile.as_deref());
            match document {
                Some(document) => actor.with_document(&document, now_ms()),
                None => actor,
            }
        })
    }
}
