//! Concurrent maps keyed by device id, hashed with aHash.
//!
//! Every frame looks its device up in several of these maps. aHash costs a fraction of the
//! standard library's SipHash on such short keys and, seeded at random for each map, still
//! resists device ids chosen to collide.

use dashmap::DashMap;

/// A concurrent map keyed by device id; build it with `DeviceMap::default()`.
pub type DeviceMap<K, V> = DashMap<K, V, ahash::RandomState>;
