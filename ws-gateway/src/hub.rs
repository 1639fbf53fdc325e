//! The hub: the gateway's read model of every device, and the fan-out of device events to the
//! queues of subscribed clients.
//!
//! The hub is the one place with all devices at once. Cross-device views (the fleet
//! list, snapshots) read from it, never from the actors, so the actors can later be spread
//! over several engines that feed one hub.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use valmetal_actors::device_map::DeviceMap;
use valmetal_actors::rules::evaluator::MAX_UNACKNOWLEDGED;
use valmetal_actors::rules::{Alarm, AlarmEvent, AlarmState, Transition};
use valmetal_actors::{
    DesiredChange, DeviceId, DeviceSnapshot, Farms, PresenceChange, ShadowChange,
};

use crate::access::ClientAccess;
use crate::client_queue::{ClientQueue, QueuedEvent};
use crate::protocol::{DeviceState, DeviceUpdate, ServerMessage};
use crate::telemetry::GatewayClientsCounted;

/// Alarm and status events a client may have queued before it is resynchronized.
pub const DEFAULT_MAX_QUEUED_EVENTS: usize = 1024;

/// One connected dashboard.
pub struct Client {
    pub id: u64,
    pub queue: ClientQueue,
    /// The farms the client may see, fixed for the connection's life.
    pub access: ClientAccess,
    subscribes_all: AtomicBool,
    devices: Mutex<HashSet<DeviceId>>,
}

impl Client {
    /// Returns true when the client subscribes to every device.
    pub fn subscribes_all(&self) -> bool {
        self.subscribes_all.load(Ordering::Acquire)
    }

    /// Returns the devices the client subscribes to one by one.
    pub fn devices(&self) -> Vec<DeviceId> {
        self.devices.lock().iter().cloned().collect()
    }
}

/// Device state and client subscriptions.
pub struct Hub {
    views: DeviceMap<DeviceId, DeviceState>,
    farms: Farms,
    clients: DashMap<u64, Arc<Client>>,
    all_subscribers: RwLock<Vec<Arc<Client>>>,
    device_subscribers: DeviceMap<DeviceId, Vec<Arc<Client>>>,
    next_client_id: AtomicU64,
    max_queued_events: usize,
}

impl Hub {
    /// Creates a hub whose clients each queue at most `max_queued_events` alarm and status events.
    pub fn new(max_queued_events: usize) -> Self {
        Self::with_farms(max_queued_events, Farms::default())
    }

    /// Creates a hub that files each device under the farm `farms` gives it, so clients
    /// limited to some farms see only those devices.
    pub fn with_farms(max_queued_events: usize, farms: Farms) -> Self {
        Self {
            views: DeviceMap::default(),
            farms,
            clients: DashMap::new(),
            all_subscribers: RwLock::new(Vec::new()),
            device_subscribers: DeviceMap::default(),
            next_client_id: AtomicU64::new(1),
            max_queued_events,
        }
    }

    // === device events ===

    /// Records a shadow change and queues it for every subscriber of the device.
    pub fn publish_change(&self, change: &ShadowChange) {
        let update = DeviceUpdate {
            device: change.device.clone(),
            device_type: Arc::clone(&change.device_type),
            version: change.version,
            changes: change.changes.clone(),
            last_frame_ts: change.last_frame_ts,
            last_seen: change.last_seen,
            online: change.online,
        };
        let farm = self.apply_to_view(&update);
        let mut text: Option<Utf8Bytes> = None;
        self.for_each_subscriber(&update.device, farm.as_deref(), |client| {
            let text = text.get_or_insert_with(|| ServerMessage::Update(&update).to_json().into());
            client.queue.push_rendered_update(&update, text);
        });
    }

    /// Records an alarm transition and queues it for every subscriber of the device.
    pub fn publish_alarm(&self, event: &AlarmEvent) {
        let alarm = &event.alarm;
        let farm = match self.views.get_mut(&alarm.device) {
            Some(mut view) => {
                apply_alarm(&mut view.alarms, event);
                view.farm.clone()
            }
            None => self.farms.farm_of(alarm.device.as_str()),
        };
        let text: Arc<str> = ServerMessage::Alarm {
            transition: event.transition,
            alarm,
            operator: event.operator.as_ref(),
        }
        .to_json()
        .into();
        self.for_each_subscriber(&alarm.device, farm.as_deref(), |client| {
            client
                .queue
                .push_event(QueuedEvent::Text(Arc::clone(&text)))
        });
    }

    /// Returns the alarm with `id`, open or cleared and awaiting acknowledgement.
    pub fn alarm(&self, id: &str) -> Option<Alarm> {
        let device = DeviceId::parse(id.split('/').next()?).ok()?;
        let view = self.views.get(&device)?;
        view.alarms.iter().find(|alarm| &*alarm.id == id).cloned()
    }

    /// Records a change of desired values and queues it for every subscriber of the device.
    pub fn publish_desired(&self, change: &DesiredChange) {
        let farm = match self.views.get_mut(&change.device) {
            Some(mut view) => {
                view.desired = change.desired.clone();
                view.delta = change.delta.clone();
                view.version = view.version.max(change.version);
                view.farm.clone()
            }
            None => self.farms.farm_of(change.device.as_str()),
        };
        let message = ServerMessage::Desired {
            device: &change.device,
            version: change.version,
            desired: &change.desired,
            delta: &change.delta,
        };
        let text: Arc<str> = message.to_json().into();
        self.for_each_subscriber(&change.device, farm.as_deref(), |client| {
            client
                .queue
                .push_event(QueuedEvent::Text(Arc::clone(&text)))
        });
    }

    /// Records a presence change and queues it for every subscriber of the device.
    pub fn publish_presence(&self, change: &PresenceChange) {
        // A device known only from its status topic gets a view too, so it is listed.
        let mut view = self.views.entry(change.device.clone()).or_insert_with(|| {
            let mut view = self.empty_view(
                &change.device,
                Arc::clone(&change.device_type),
                change.online,
            );
            view.last_seen = change.last_seen;
            view
        });
        view.online = change.online;
        let farm = view.farm.clone();
        drop(view);
        let message = ServerMessage::Status {
            device: &change.device,
            online: change.online,
            last_seen: change.last_seen,
        };
        let text: Arc<str> = message.to_json().into();
        self.for_each_subscriber(&change.device, farm.as_deref(), |client| {
            client
                .queue
                .push_event(QueuedEvent::Text(Arc::clone(&text)))
        });
    }

    /// Takes in the whole state of a device restored from storage, replacing any view of it.
    /// Meant for start-up, before clients subscribe, so nothing is sent.
    pub fn restore(&self, snapshot: DeviceSnapshot) {
        let mut state = DeviceState {
            farm: self.farms.farm_of(snapshot.device.as_str()),
            device: snapshot.device.clone(),
            device_type: snapshot.device_type,
            version: snapshot.version,
            reported: snapshot.reported,
            desired: snapshot.desired,
            delta: Vec::new(),
            last_frame_ts: snapshot.last_frame_ts,
            last_seen: snapshot.last_seen,
            online: snapshot.online,
            alarms: snapshot.alarms,
        };
        state.delta = delta_of(&state);
        self.views.insert(snapshot.device, state);
    }

    /// Puts `device` in `farm`, or in none, for the view and for devices not seen yet.
    /// Clients already subscribed to the device keep their subscription until they
    /// resubscribe; what they are sent from now on follows the new farm.
    pub fn assign_farm(&self, device: &DeviceId, farm: Option<&str>) {
        self.farms.assign(device.as_str(), farm);
        if let Some(mut view) = self.views.get_mut(device) {
            view.farm = farm.map(Arc::from);
        }
    }

    /// Lists a device that has not reported yet, as registered through the API, so
    /// dashboards show it offline until its first frame.
    pub fn register(&self, device: &DeviceId, device_type: &str) {
        let mut view = self
            .views
            .entry(device.clone())
            .or_insert_with(|| self.empty_view(device, Arc::from(device_type), false));
        view.device_type = Arc::from(device_type);
        view.farm = self.farms.farm_of(device.as_str());
    }

    /// Returns a view of `device` with nothing reported yet, filed under its farm.
    fn empty_view(&self, device: &DeviceId, device_type: Arc<str>, online: bool) -> DeviceState {
        DeviceState {
            device: device.clone(),
            device_type,
            farm: self.farms.farm_of(device.as_str()),
            version: 0,
            reported: Vec::new(),
            desired: Vec::new(),
            delta: Vec::new(),
            last_frame_ts: None,
            last_seen: None,
            online,
            alarms: Vec::new(),
        }
    }

    /// Returns the farm of `device`, whether or not it has reported.
    pub fn farm_of(&self, device: &DeviceId) -> Option<Arc<str>> {
        match self.views.get(device) {
            Some(view) => view.farm.clone(),
            None => self.farms.farm_of(device.as_str()),
        }
    }

    /// Folds `update` into the device's view and returns the device's farm.
    fn apply_to_view(&self, update: &DeviceUpdate) -> Option<Arc<str>> {
        let mut view = self.views.entry(update.device.clone()).or_insert_with(|| {
            self.empty_view(&update.device, Arc::clone(&update.device_type), true)
        });
        for (key, value) in &update.changes {
            match view.reported.iter_mut().find(|(name, _)| name == key) {
                Some((_, stored)) => *stored = value.clone(),
                None => view.reported.push((Arc::clone(key), value.clone())),
            }
        }
        view.version = view.version.max(update.version);
        view.last_frame_ts = view.last_frame_ts.max(update.last_frame_ts);
        view.last_seen = Some(update.last_seen);
        view.online = update.online;
        if !view.desired.is_empty() {
            view.delta = delta_of(&view);
        }
        view.farm.clone()
    }

    /// Runs `action` for every client subscribed to `device` that may see devices of `farm`.
    fn for_each_subscriber(
        &self,
        device: &DeviceId,
        farm: Option<&str>,
        mut action: impl FnMut(&Client),
    ) {
        let visible = |client: &&Arc<Client>| client.access.sees(farm);
        for client in self.all_subscribers.read().iter().filter(visible) {
            action(client);
        }
        if let Some(clients) = self.device_subscribers.get(device) {
            for client in clients
                .iter()
                .filter(|client| !client.subscribes_all())
                .filter(visible)
            {
                action(client);
            }
        }
    }

    // === clients ===

    /// Registers a new client that sees every device, with an empty subscription.
    pub fn connect(&self) -> Arc<Client> {
        self.connect_with(ClientAccess::everything())
    }

    /// Registers a new client limited by `access`, with an empty subscription.
    pub fn connect_with(&self, access: ClientAccess) -> Arc<Client> {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        let client = Arc::new(Client {
            id,
            queue: ClientQueue::new(self.max_queued_events),
            access,
            subscribes_all: AtomicBool::new(false),
            devices: Mutex::new(HashSet::new()),
        });
        self.clients.insert(id, Arc::clone(&client));
        GatewayClientsCounted(self.clients.len()).emit();
        client
    }

    /// Removes a client from every subscription and closes its queue.
    pub fn disconnect(&self, client: &Arc<Client>) {
        self.unsubscribe(client, true, Vec::new());
        let devices = client.devices();
        self.remove_device_subscriptions(client, &devices);
        client.devices.lock().clear();
        client.queue.close();
        self.clients.remove(&client.id);
        GatewayClientsCounted(self.clients.len()).emit();
    }

    /// Adds all devices, or the given ones, to the client's subscription and queues a snapshot
    /// of what it added.
    pub fn subscribe(&self, client: &Arc<Client>, all: bool, devices: Vec<DeviceId>) {
        if all && !client.subscribes_all.swap(true, Ordering::AcqRel) {
            self.all_subscribers.write().push(Arc::clone(client));
        }
        let added: Vec<DeviceId> = {
            let mut subscribed = client.devices.lock();
            devices
                .into_iter()
                .filter(|device| subscribed.insert(device.clone()))
                .collect()
        };
        for device in &added {
            self.device_subscribers
                .entry(device.clone())
                .or_default()
                .push(Arc::clone(client));
        }
        if all {
            client.queue.push_event(QueuedEvent::Snapshot(None));
        } else {
            client.queue.discard_updates(&added);
            client.queue.push_event(QueuedEvent::Snapshot(Some(added)));
        }
    }

    /// Removes the subscription to all devices, or to the given ones.
    pub fn unsubscribe(&self, client: &Arc<Client>, all: bool, devices: Vec<DeviceId>) {
        if all && client.subscribes_all.swap(false, Ordering::AcqRel) {
            self.all_subscribers
                .write()
                .retain(|other| other.id != client.id);
        }
        let removed: Vec<DeviceId> = {
            let mut subscribed = client.devices.lock();
            devices
                .into_iter()
                .filter(|device| subscribed.remove(device))
                .collect()
        };
        self.remove_device_subscriptions(client, &removed);
    }

    fn remove_device_subscriptions(&self, client: &Client, devices: &[DeviceId]) {
        for device in devices {
            if let Some(mut clients) = self.device_subscribers.get_mut(device) {
                clients.retain(|other| other.id != client.id);
            }
            self.device_subscribers
                .remove_if(device, |_, clients| clients.is_empty());
        }
    }

    // === reads ===

    /// Returns the state of the given devices, or of all devices, sorted by device id.
    /// Devices that have not reported yet are left out.
    pub fn device_states(&self, devices: Option<&[DeviceId]>) -> Vec<DeviceState> {
        self.visible_device_states(devices, &ClientAccess::everything())
    }

    /// Returns the state of the given devices, or of all devices, that `access` may see,
    /// sorted by device id.
    pub fn visible_device_states(
        &self,
        devices: Option<&[DeviceId]>,
        access: &ClientAccess,
    ) -> Vec<DeviceState> {
        let visible = |view: &DeviceState| access.sees(view.farm.as_deref());
        let mut states: Vec<DeviceState> = match devices {
            Some(devices) => devices
                .iter()
                .filter_map(|device| self.views.get(device))
                .filter(|view| visible(view))
                .map(|view| view.clone())
                .collect(),
            None => self
                .views
                .iter()
                .filter(|view| visible(view))
                .map(|view| view.clone())
                .collect(),
        };
        states.sort_by(|left, right| left.device.cmp(&right.device));
        states
    }

    /// Returns the state of one device.
    pub fn device_state(&self, device: &DeviceId) -> Option<DeviceState> {
        self.views.get(device).map(|view| view.clone())
    }

    /// Returns the number of devices that have reported.
    pub fn device_count(&self) -> usize {
        self.views.len()
    }

    /// Returns the number of connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_QUEUED_EVENTS)
    }
}

/// Updates a device's list of alarms in view: open alarms, and cleared ones until an
/// operator acknowledges them.
fn apply_alarm(alarms: &mut Vec<Alarm>, event: &AlarmEvent) {
    let alarm = &event.alarm;
    let position = alarms.iter().position(|known| known.id == alarm.id);
    let stays_in_view = match event.transition {
        Transition::Cleared => alarm.acknowledged.is_none(),
        Transition::Acknowledged => alarm.state == AlarmState::Active,
        _ => true,
    };
    match (position, stays_in_view) {
        (Some(index), true) => alarms[index] = alarm.clone(),
        (Some(index), false) => {
            alarms.remove(index);
        }
        (None, true) => alarms.push(alarm.clone()),
        (None, false) => {}
    }
    let cleared = alarms
        .iter()
        .filter(|known| known.state == AlarmState::Cleared)
        .count();
    if cleared > MAX_UNACKNOWLEDGED {
        // The device's evaluator drops the alarm cleared first; the view drops the same one.
        let first_cleared = alarms
            .iter()
            .enumerate()
            .filter(|(_, known)| known.state == AlarmState::Cleared)
            .min_by_key(|(_, known)| known.cleared_at)
            .map(|(index, _)| index);
        if let Some(index) = first_cleared {
            alarms.remove(index);
        }
    }
}

/// Returns the desired values of `state` that differ from its reported ones.
fn delta_of(state: &DeviceState) -> Vec<(Arc<str>, valmetal_actors::Value)> {
    state
        .desired
        .iter()
        .filter(|(key, desired)| {
            let reported = state.reported.iter().find(|(name, _)| name == key);
            reported.is_none_or(|(_, reported)| reported.value != desired.value)
        })
        .map(|(key, desired)| (Arc::clone(key), desired.value.clone()))
        .collect()
}
