//! The `/ws` endpoint: one task pair per dashboard connection, a reader that applies the
//! client's requests and a writer that drains the client's queue.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tracing::{Instrument, debug, info_span};
use valmetal_actors::DeviceId;

use crate::access::{ClientAccess, TOKEN_EXPIRED_CLOSE_CODE};
use crate::client_queue::{Outgoing, QueuedEvent};
use crate::hub::{Client, Hub};
use crate::protocol::{
    ClientMessage, DeviceState, DeviceUpdate, ErrorCode, PROTOCOL_VERSION, Selection, ServerMessage,
};
use crate::telemetry::{GatewayClientMessageRejected, GatewayMessageSent};

/// Largest message a client may send, in bytes.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 1024 * 1024;

/// Read buffer of a client's socket. Clients send only small requests, and the 128 KiB default
/// was most of the memory each connected dashboard cost. A larger message still arrives
/// whole, over several reads.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Items the writer takes from a client's queue per wake-up.
const WRITE_BATCH: usize = 256;

/// Returns the router serving `/ws`.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(hub)
}

/// Upgrades to a WebSocket. The layer in front of `/ws` may limit the client with a
/// [`ClientAccess`] extension; without one the client sees every device.
async fn upgrade(
    socket: WebSocketUpgrade,
    State(hub): State<Arc<Hub>>,
    access: Option<Extension<ClientAccess>>,
) -> Response {
    let access = access.map(|Extension(access)| access).unwrap_or_default();
    socket
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| serve_client(hub, socket, access))
}

async fn serve_client(hub: Arc<Hub>, socket: WebSocket, access: ClientAccess) {
    let expires_at = access.expires_at;
    let client = hub.connect_with(access);
    let span = info_span!("ws_client", client.id = client.id);
    async move {
        debug!("Dashboard client connected");
        let (sink, stream) = socket.split();
        let hello = ServerMessage::Hello {
            server: "valmetal",
            version: env!("CARGO_PKG_VERSION"),
            protocol: PROTOCOL_VERSION,
        };
        client
            .queue
            .push_event(QueuedEvent::Text(hello.to_json().into()));
        let writer =
            tokio::spawn(write_loop(Arc::clone(&hub), Arc::clone(&client), sink).in_current_span());
        let expired = tokio::select! {
            () = read_loop(&hub, &client, stream) => false,
            () = sleep_until_ms(expires_at) => true,
        };
        hub.disconnect(&client);
        if let Ok(Some(sink)) = writer.await {
            close(sink, expired).await;
        }
        debug!(expired, "Dashboard client disconnected");
    }
    .instrument(span)
    .await;
}

/// Waits until the Unix time `at` in milliseconds, or forever without one.
async fn sleep_until_ms(at: Option<i64>) {
    match at {
        Some(at) => {
            let left = at.saturating_sub(valmetal_actors::clock::now_ms()).max(0);
            let left = std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0));
            tokio::time::sleep(left).await;
        }
        None => std::future::pending().await,
    }
}

/// Closes the connection, saying why when the token expired.
async fn close(mut sink: SplitSink<WebSocket, Message>, expired: bool) {
    let frame = expired.then(|| CloseFrame {
        code: TOKEN_EXPIRED_CLOSE_CODE,
        reason: "token expired; sign in again".into(),
    });
    let _ = sink.send(Message::Close(frame)).await;
    let _ = sink.close().await;
}

// === reading ===

async fn read_loop(hub: &Hub, client: &Arc<Client>, mut stream: SplitStream<WebSocket>) {
    while let Some(received) = stream.next().await {
        let text = match received {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) => break,
            Ok(Message::Binary(_)) => {
                reject(
                    client,
                    ErrorCode::InvalidMessage,
                    "binary messages are not accepted; send JSON text",
                );
                continue;
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Err(error) => {
                debug!(%error, "Dashboard client read failed");
                break;
            }
        };
        handle_message(hub, client, text.as_str());
    }
}

fn handle_message(hub: &Hub, client: &Arc<Client>, text: &str) {
    let message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => message,
        Err(error) => {
            let reason = format!(
                "invalid message: {error}; expected subscribe, unsubscribe or ping as in the protocol"
            );
            reject(client, ErrorCode::InvalidMessage, &reason);
            return;
        }
    };
    match message {
        ClientMessage::Subscribe(selection) => {
            let devices = valid_devices(client, &selection);
            let devices = permitted_devices(hub, client, devices);
            hub.subscribe(client, selection.all, devices);
        }
        ClientMessage::Unsubscribe(selection) => {
            let devices = valid_devices(client, &selection);
            hub.unsubscribe(client, selection.all, devices);
        }
        ClientMessage::Ping { id } => {
            let pong = ServerMessage::Pong { id: id.as_ref() }.to_json();
            client.queue.push_event(QueuedEvent::Text(pong.into()));
        }
    }
}

/// Returns the valid device ids of `selection`, replying to each invalid one with an error.
fn valid_devices(client: &Client, selection: &Selection) -> Vec<DeviceId> {
    let mut devices = Vec::with_capacity(selection.devices.len());
    for id in &selection.devices {
        match DeviceId::parse(id) {
            Ok(device) => devices.push(device),
            Err(error) => reject(client, ErrorCode::InvalidDeviceId, &error.to_string()),
        }
    }
    devices
}

/// Returns the devices of `devices` the client may see, replying to each other one with an
/// error that does not say whether the device exists.
fn permitted_devices(hub: &Hub, client: &Client, devices: Vec<DeviceId>) -> Vec<DeviceId> {
    if client.access.farms.is_none() {
        return devices;
    }
    let (permitted, refused): (Vec<_>, Vec<_>) = devices
        .into_iter()
        .partition(|device| client.access.sees(hub.farm_of(device).as_deref()));
    for device in refused {
        let message =
            format!("device `{device}` is unknown or outside the farms your sign-in grants");
        reject(client, ErrorCode::DeviceNotPermitted, &message);
    }
    permitted
}

fn reject(client: &Client, code: ErrorCode, message: &str) {
    let label = match code {
        ErrorCode::InvalidMessage => "invalid_message",
        ErrorCode::InvalidDeviceId => "invalid_device_id",
        ErrorCode::DeviceNotPermitted => "device_not_permitted",
    };
    GatewayClientMessageRejected(label).emit();
    debug!(code = label, message, "Dashboard message rejected");
    let text = ServerMessage::Error { code, message }.to_json();
    client.queue.push_event(QueuedEvent::Text(text.into()));
}

// === writing ===

/// Newest version sent to the client per device, so an update that a snapshot already
/// covered is not sent after it.
type SentVersions = HashMap<DeviceId, u64>;

/// Sends the client's queue until it closes, then hands the sink back for the closing
/// frame; `None` when a write failed and the connection is gone.
async fn write_loop(
    hub: Arc<Hub>,
    client: Arc<Client>,
    mut sink: SplitSink<WebSocket, Message>,
) -> Option<SplitSink<WebSocket, Message>> {
    let mut sent = SentVersions::new();
    loop {
        let items = client.queue.take(WRITE_BATCH).await;
        if items.is_empty() {
            break;
        }
        for item in items {
            let Some((kind, text)) = render(&hub, &client, item, &mut sent) else {
                continue;
            };
            if let Err(error) = sink.feed(Message::Text(text)).await {
                debug!(%error, "Dashboard client write failed");
                client.queue.close();
                return None;
            }
            GatewayMessageSent(kind).emit();
        }
        if let Err(error) = sink.flush().await {
            debug!(%error, "Dashboard client flush failed");
            client.queue.close();
            return None;
        }
    }
    Some(sink)
}

fn render(
    hub: &Hub,
    client: &Client,
    item: Outgoing,
    sent: &mut SentVersions,
) -> Option<(&'static str, Utf8Bytes)> {
    match item {
        Outgoing::Update(update) => {
            note_sent(sent, &update)?;
            Some(("update", ServerMessage::Update(&update).to_json().into()))
        }
        Outgoing::Rendered(update, text) => {
            note_sent(sent, &update)?;
            Some(("update", text))
        }
        Outgoing::Event(QueuedEvent::Text(text)) => Some(("event", text.to_string().into())),
        Outgoing::Event(QueuedEvent::Snapshot(Some(devices))) => Some((
            "snapshot",
            snapshot(
                &hub.visible_device_states(Some(&devices), &client.access),
                sent,
            )
            .into(),
        )),
        Outgoing::Event(QueuedEvent::Snapshot(None)) | Outgoing::Resync => {
            let states = if client.subscribes_all() {
                hub.visible_device_states(None, &client.access)
            } else {
                hub.visible_device_states(Some(&client.devices()), &client.access)
            };
            Some(("snapshot", snapshot(&states, sent).into()))
        }
    }
}

/// Records that `update` is about to be sent, or returns `None` when a snapshot or update
/// already sent covers its version.
fn note_sent(sent: &mut SentVersions, update: &DeviceUpdate) -> Option<()> {
    let previous = sent.get(&update.device).copied().unwrap_or(0);
    if update.version <= previous {
        return None;
    }
    sent.insert(update.device.clone(), update.version);
    Some(())
}

fn snapshot(states: &[DeviceState], sent: &mut SentVersions) -> String {
    for state in states {
        sent.insert(state.device.clone(), state.version);
    }
    let alarms = states
        .iter()
        .flat_map(|state| state.alarms.iter())
        .collect();
    ServerMessage::Snapshot {
        devices: states,
        alarms,
    }
    .to_json()
}
