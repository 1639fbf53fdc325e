//! The actix system that hosts device actors: one arbiter (a thread with its own
//! single-threaded runtime) per worker.

use std::sync::mpsc;
use std::thread::JoinHandle;

use actix::{Arbiter, ArbiterHandle, System};

/// Errors starting the actor runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("failed to start the actor system thread: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("the actor system thread exited before it started its arbiters")]
    Exited,
}

/// A running actix system and its arbiters. Dropping it stops them.
pub struct ActorRuntime {
    system: System,
    arbiters: Vec<ArbiterHandle>,
    thread: Option<JoinHandle<()>>,
}

impl ActorRuntime {
    /// Starts a system with `workers` arbiters (at least one).
    ///
    /// # Errors
    ///
    /// Returns [`RuntimeError`] when the system thread cannot start.
    pub fn start(workers: usize) -> Result<Self, RuntimeError> {
        let workers = workers.max(1);
        let (started_tx, started_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("actor-system".into())
            .spawn(move || {
                let runner = System::new();
                let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
                let handles = arbiters.iter().map(Arbiter::handle).collect::<Vec<_>>();
                if started_tx.send((System::current(), handles)).is_err() {
                    return;
                }
                if let Err(error) = runner.run() {
                    tracing::error!(%error, "Actor system stopped with an error");
                }
                for arbiter in arbiters {
                    arbiter.stop();
                    let _ = arbiter.join();
                }
            })?;
        let (system, arbiters) = started_rx.recv().map_err(|_| RuntimeError::Exited)?;
        Ok(Self {
            system,
            arbiters,
            thread: Some(thread),
        })
    }

    /// Returns the arbiters actors are spread over.
    pub fn arbiters(&self) -> &[ArbiterHandle] {
        &self.arbiters
    }

    /// Stops every arbiter and waits for the system thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ActorRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
