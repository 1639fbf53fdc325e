//! MQTT client construction shared by ingest and replay.

use rumqttc::{AsyncClient, EventLoop, MqttOptions, NetworkOptions};

/// Capacity of the channel of requests (publishes, acks, subscribes) to the event loop.
pub const REQUEST_CHANNEL_CAPACITY: usize = 4096;

/// Creates a client and its event loop with Nagle's algorithm off.
///
/// Nagle's algorithm delays small packets while an earlier one is unacknowledged, which
/// adds tens of milliseconds to small frames on loopback, so it is always disabled.
pub fn connect(options: MqttOptions) -> (AsyncClient, EventLoop) {
    let (client, mut event_loop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(10);
    event_loop.set_network_options(network);
    (client, event_loop)
}
