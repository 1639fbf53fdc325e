//! Storage input from device actors' events: a mark per changed device for the shadow
//! sink, and a registry entry for each device seen for the first time.

use std::sync::{Arc, OnceLock, Weak};

use dashmap::DashSet;
use tracing::warn;
use valmetal_actors::retained::Retained;
use valmetal_actors::{DeviceDocument, DeviceId, DeviceRegistry};

use crate::sinks::dynamodb::DynamoShadowStore;
use crate::sinks::shadows::{DocumentSource, ShadowEntry, ShadowSink};
use crate::sinks::{PushError, SinkQueue};
use crate::store::equipment::{Equipment, EquipmentStore};
use crate::store::shadows::SqlShadowStore;

/// The device registry, known once the actors exist; the shadow sink reads documents from it.
#[derive(Clone, Default)]
pub struct LateRegistry(Arc<OnceLock<Weak<DeviceRegistry>>>);

impl LateRegistry {
    pub fn set(&self, registry: &Arc<DeviceRegistry>) {
        let _ = self.0.set(Arc::downgrade(registry));
    }
}

impl DocumentSource for LateRegistry {
    async fn document(&self, device: &DeviceId) -> Option<DeviceDocument> {
        let registry = self.0.get()?.upgrade()?;
        registry.document(device).await
    }
}

/// The shadow sink's queue, whichever store it writes.
#[derive(Clone)]
pub enum Shadows {
    Sql(Arc<SinkQueue<ShadowSink<SqlShadowStore, LateRegistry>>>),
    Dynamodb(Arc<SinkQueue<ShadowSink<DynamoShadowStore, LateRegistry>>>),
}

/// Queues in which actor events mark devices for storage.
#[derive(Clone)]
pub struct ShadowQueue {
    shadows: Shadows,
    equipment: Arc<SinkQueue<EquipmentStore>>,
    registered: Arc<DashSet<DeviceId>>,
}

impl ShadowQueue {
    pub fn new(shadows: Shadows, equipment: Arc<SinkQueue<EquipmentStore>>) -> Self {
        Self {
            shadows,
            equipment,
            registered: Arc::new(DashSet::new()),
        }
    }

    /// Marks `device` for the next shadow write, keeping `retained` until it is written.
    pub fn changed(&self, device: &DeviceId, retained: Option<Retained>) {
        let entry = ShadowEntry::mark(device.clone());
        let result = match &self.shadows {
            Shadows::Sql(queue) => queue.try_push(entry, retained),
            Shadows::Dynamodb(queue) => queue.try_push(entry, retained),
        };
        if let Err(error) = result {
            log_refused(device, error);
        }
    }

    /// Registers equipment the first time its device is seen in this run.
    pub fn seen(&self, device: &DeviceId, device_type: &str, farm: Option<&str>) {
        if self.registered.contains(device) || !self.registered.insert(device.clone()) {
            return;
        }
        let equipment = Equipment {
            device_id: device.clone(),
            device_type: device_type.to_owned(),
            farm: farm.map(str::to_owned),
            name: device.to_string(),
        };
        if let Err(error) = self.equipment.try_push(equipment, None) {
            self.registered.remove(device);
            log_refused(device, error);
        }
    }

    /// Notes a device already registered by an earlier run.
    pub fn registered(&self, device: &DeviceId) {
        self.registered.insert(device.clone());
    }
}

fn log_refused(device: &DeviceId, error: PushError) {
    match error {
        PushError::Closed => {
            tracing::debug!(device.id = %device, "Storage is shutting down; device change not queued");
        }
        PushError::Full => {
            warn!(device.id = %device, "Storage queue full; raise storage.shadow_batch.capacity above the fleet size");
        }
    }
}
