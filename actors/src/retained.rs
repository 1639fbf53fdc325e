//! A handle that a frame carries through its actor so that whatever the engine attached to it
//! (the journal segment holding the frame) stays alive until the frame's effects are stored.

use std::fmt;
use std::sync::Arc;

/// Value a [`Retained`] handle keeps alive.
pub trait Keep: Send + Sync + 'static {
    /// Asks the owner to keep what the handle protects even after every handle is dropped,
    /// because what it was kept for will not be stored in this run.
    fn keep(&self);
}

/// A shared handle kept alive while a frame's effects are in flight. Dropping the last clone
/// signals the owner that they are stored.
#[derive(Clone)]
pub struct Retained(Arc<dyn Keep>);

impl Retained {
    pub fn new<T: Keep>(value: Arc<T>) -> Self {
        Self(value)
    }

    /// Returns true when both handles keep the same value alive.
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// See [`Keep::keep`].
    pub fn keep(&self) {
        self.0.keep();
    }
}

impl fmt::Debug for Retained {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Retained")
    }
}

/// Handles compare equal whatever they hold: they are bookkeeping, not part of an event's
/// meaning.
impl PartialEq for Retained {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// Adds `handle` to `held` unless a handle to the same value is already there.
pub fn hold(held: &mut Vec<Retained>, handle: Retained) {
    if !held.iter().any(|kept| kept.same(&handle)) {
        held.push(handle);
    }
}
