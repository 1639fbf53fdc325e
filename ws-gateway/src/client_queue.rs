//! A dashboard client's outgoing queue: bounded, ordered, and coalescing per device.
//!
//! Updates of one device wait in a single slot that newer updates merge into, so a client
//! that reads slowly receives the newest value of each key instead of a growing backlog.
//! Alarm and status events are never merged. If more than `max_events` pile up, the queue
//! drops them and requests a fresh snapshot, which carries the alarms still active.

use std::collections::{HashMap, VecDeque};

use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use valmetal_actors::DeviceId;

use crate::protocol::DeviceUpdate;
use crate::telemetry::{GatewayQueueOverflowed, GatewayUpdatesCoalesced};

/// An event other than a device update, already in the order it must be sent.
#[derive(Debug, Clone)]
pub enum QueuedEvent {
    /// Serialized JSON text, ready to send.
    Text(std::sync::Arc<str>),
    /// A snapshot of these devices, or of the whole subscription when `None`.
    Snapshot(Option<Vec<DeviceId>>),
}

/// One item taken from the queue.
#[derive(Debug)]
pub enum Outgoing {
    /// An update that was merged with a later one, so it has to be serialized for this client.
    Update(DeviceUpdate),
    /// An update as the hub published it, with the JSON text that every subscriber shares.
    Rendered(DeviceUpdate, Utf8Bytes),
    Event(QueuedEvent),
    /// The queue overflowed: send a snapshot of everything the client subscribes to.
    Resync,
}

enum Entry {
    Update(DeviceId),
    Event(QueuedEvent),
}

/// A device's pending update and, until a newer update merges into it, its shared JSON text.
struct Pending {
    update: DeviceUpdate,
    text: Option<Utf8Bytes>,
}

#[derive(Default)]
struct State {
    order: VecDeque<Entry>,
    pending: HashMap<DeviceId, Pending>,
    events: usize,
    resync: bool,
    closed: bool,
}

/// The queue shared by the hub, which fills it, and the client's writer task, which drains it.
pub struct ClientQueue {
    state: Mutex<State>,
    ready: Notify,
    max_events: usize,
}

impl ClientQueue {
    /// Creates a queue that keeps at most `max_events` alarm and status events.
    pub fn new(max_events: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            max_events: max_events.max(1),
        }
    }

    /// Queues an update, merging it into the device's pending update if there is one.
    pub fn push_update(&self, update: &DeviceUpdate) {
        self.push(update, None);
    }

    /// Queues an update with its serialized `text`, which the writer sends as it is unless a
    /// newer update merges into it first. Every subscriber of a device shares one text, so the
    /// hub serializes an update once however many dashboards watch the device.
    pub fn push_rendered_update(&self, update: &DeviceUpdate, text: &Utf8Bytes) {
        self.push(update, Some(text));
    }

    fn push(&self, update: &DeviceUpdate, text: Option<&Utf8Bytes>) {
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        if let Some(pending) = state.pending.get_mut(&update.device) {
            pending.update.merge(update);
            pending.text = None;
            GatewayUpdatesCoalesced.emit();
            return;
        }
        let pending = Pending {
            update: update.clone(),
            text: text.cloned(),
        };
        state.pending.insert(update.device.clone(), pending);
        state.order.push_back(Entry::Update(update.device.clone()));
        drop(state);
        self.ready.notify_one();
    }

    /// Queues an event behind everything already queued.
    pub fn push_event(&self, event: QueuedEvent) {
        let mut state = self.state.lock();
        if state.closed {
            return;
        }
        if state.events >= self.max_events {
            state.order.clear();
            state.pending.clear();
            state.events = 0;
            state.resync = true;
            GatewayQueueOverflowed.emit();
        } else {
            state.events += 1;
            state.order.push_back(Entry::Event(event));
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Drops pending updates of `devices`, which a snapshot about to be queued supersedes.
    pub fn discard_updates(&self, devices: &[DeviceId]) {
        let mut state = self.state.lock();
        for device in devices {
            state.pending.remove(device);
        }
    }

    /// Takes up to `limit` items, waiting until at least one is there. Returns an empty vector
    /// once the queue is closed.
    pub async fn take(&self, limit: usize) -> Vec<Outgoing> {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state.lock();
                if state.closed {
                    return Vec::new();
                }
                let items = Self::drain(&mut state, limit);
                if !items.is_empty() {
                    return items;
                }
            }
            notified.await;
        }
    }

    /// Stops the queue: pushes are ignored and [`ClientQueue::take`] returns empty.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_one();
    }

    fn drain(state: &mut State, limit: usize) -> Vec<Outgoing> {
        let mut items = Vec::new();
        if std::mem::take(&mut state.resync) {
            items.push(Outgoing::Resync);
        }
        while items.len() < limit {
            let Some(entry) = state.order.pop_front() else {
                break;
            };
            match entry {
                Entry::Update(device) => match state.pending.remove(&device) {
                    Some(Pending {
                        update,
                        text: Some(text),
                    }) => items.push(Outgoing::Rendered(update, text)),
                    Some(Pending { update, text: None }) => items.push(Outgoing::Update(update)),
                    None => {}
                },
                Entry::Event(event) => {
                    state.events -= 1;
                    items.push(Outgoing::Event(event));
                }
            }
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use valmetal_actors::{ReportedValue, Value};

    use super::*;

    fn update(device: &str, version: u64, value: f64) -> DeviceUpdate {
        DeviceUpdate {
            device: DeviceId::parse(device).unwrap(),
            device_type: Arc::from("feed_bin"),
            version,
            changes: vec![(
                Arc::from("w"),
                ReportedValue {
                    value: Value::Number(value),
                    ts: version as i64,
                },
            )],
            last_frame_ts: Some(version as i64),
            last_seen: 0,
            online: true,
        }
    }

    fn text(event: &str) -> QueuedEvent {
        QueuedEvent::Text(Arc::from(event))
    }

    #[tokio::test]
    async fn slow_client_gets_one_update_per_device() {
        let queue = ClientQueue::new(8);
        for version in 1..=100 {
            queue.push_update(&update("a", version, version as f64));
            queue.push_update(&update("b", version, -(version as f64)));
        }
        let items = queue.take(10).await;
        assert_eq!(items.len(), 2);
        let Outgoing::Update(first) = &items[0] else {
            panic!("expected a merged update")
        };
        assert_eq!(first.device.as_str(), "a");
        assert_eq!(first.version, 100);
        assert_eq!(first.changes[0].1.value, Value::Number(100.0));
    }

    #[tokio::test]
    async fn events_keep_their_order_between_updates() {
        let queue = ClientQueue::new(8);
        queue.push_update(&update("a", 1, 1.0));
        queue.push_event(text("raised"));
        queue.push_update(&update("a", 2, 2.0));
        queue.push_event(text("cleared"));
        let items = queue.take(10).await;
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], Outgoing::Update(update) if update.version == 2));
        assert!(matches!(&items[1], Outgoing::Event(QueuedEvent::Text(t)) if &**t == "raised"));
        assert!(matches!(&items[2], Outgoing::Event(QueuedEvent::Text(t)) if &**t == "cleared"));
    }

    #[tokio::test]
    async fn event_overflow_requests_resync() {
        let queue = ClientQueue::new(3);
        queue.push_update(&update("a", 1, 1.0));
        for index in 0..4 {
            queue.push_event(text(&index.to_string()));
        }
        queue.push_event(text("after"));
        let items = queue.take(10).await;
        assert!(matches!(items[0], Outgoing::Resync));
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1], Outgoing::Event(QueuedEvent::Text(t)) if &**t == "after"));
    }

    #[tokio::test]
    async fn rendered_text_dropped_on_merge() {
        let queue = ClientQueue::new(8);
        let text = Utf8Bytes::from("{\"type\":\"update\"}");
        queue.push_rendered_update(&update("a", 1, 1.0), &text);
        let items = queue.take(10).await;
        assert!(
            matches!(&items[0], Outgoing::Rendered(update, shared) if update.version == 1 && shared == &text)
        );

        queue.push_rendered_update(&update("a", 2, 2.0), &text);
        queue.push_rendered_update(&update("a", 3, 3.0), &text);
        let items = queue.take(10).await;
        assert_eq!(items.len(), 1);
        assert!(matches!(&items[0], Outgoing::Update(update) if update.version == 3));
    }

    #[tokio::test]
    async fn closed_queue_returns_empty() {
        let queue = ClientQueue::new(3);
        queue.push_update(&update("a", 1, 1.0));
        queue.close();
        assert!(queue.take(10).await.is_empty());
    }
}
