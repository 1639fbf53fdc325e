//! The embedded MQTT broker (rumqttd), for running without an external broker.
//!
//! rumqttd's `Broker::start` blocks for the broker's lifetime, so it runs on a thread of its
//! own; it stops when the process exits.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tracing::{error, info};

/// Errors starting the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "MQTT address {addr} is already in use; choose another with --mqtt-addr (e.g. 127.0.0.1:1884)"
    )]
    AddressInUse { addr: SocketAddr },
    #[error("cannot listen for MQTT on {addr}: {source}; choose another address with --mqtt-addr")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the embedded MQTT broker thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Starts rumqttd listening for MQTT 3.1.1 on `addr`, accepting payloads up to
/// `max_payload_bytes`.
///
/// # Errors
///
/// Returns [`BrokerError::AddressInUse`] when the port is taken, checked before the broker
/// starts so the error reaches the caller instead of the broker's own thread.
pub fn start(addr: SocketAddr, max_payload_bytes: usize) -> Result<(), BrokerError> {
    check_free(addr)?;
    let mut broker = Broker::new(config(addr, max_payload_bytes));
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(error) = broker.start() {
                error!(%error, "Embedded MQTT broker stopped");
            }
        })?;
    info!(mqtt.addr = %addr, "Embedded MQTT broker listening");
    Ok(())
}

fn check_free(addr: SocketAddr) -> Result<(), BrokerError> {
    match TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(source) if source.kind() == std::io::ErrorKind::AddrInUse => {
            Err(BrokerError::AddressInUse { addr })
        }
        Err(source) => Err(BrokerError::Bind { addr, source }),
    }
}

fn config(addr: SocketAddr, max_payload_bytes: usize) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: max_payload_bytes,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4-1".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("v4-1".to_owned(), server)])),
        ..Config::default()
    }
}
