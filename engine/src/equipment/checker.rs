//! The maintenance checker: a task that recomputes every record's due tasks on an interval,
//! so a maintenance alarm is raised when the calendar or the counters reach a due point.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;
use valmetal_actors::clock::now_ms;

use super::EquipmentService;

/// Starts the checker; it stops when `stopped` turns true.
pub fn spawn(
    service: Arc<EquipmentService>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => check_all(&service).await,
                _ = stopped.changed() => return,
            }
        }
    })
}

/// Recomputes the due tasks of every record with a linked device.
pub async fn check_all(service: &EquipmentService) {
    let records = match service.records.list().await {
        Ok(records) => records,
        Err(error) => {
            warn!(%error, "Reading equipment records for the maintenance check failed; retrying at the next interval");
            return;
        }
    };
    let now = now_ms();
    for record in records
        .iter()
        .filter(|record| record.fields.device_id.is_some())
    {
        if let Err(error) = service.raise_due(record, now).await {
            warn!(%error, equipment.id = %record.equipment_id, "Maintenance check failed");
        }
    }
}
