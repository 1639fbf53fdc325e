//! The demo's equipment: maintenance plans for the replayed device types and one record per
//! type, linked to a replayed device, so the equipment page has counters and due tasks to show.

use chrono::{Days, Utc};
use valmetal_actors::clock::now_ms;
use valmetal_engine::equipment::EquipmentService;
use valmetal_engine::equipment::config::{MaintenancePlan, MaintenanceTask};
use valmetal_engine::store::equipment_records::{EquipmentRecord, RecordFields};

/// Maintenance plans of the demo: the NAB machine's bearings by run hours or by the
/// calendar, and the feed bins' scale calibration by the calendar.
pub fn plans() -> Vec<MaintenancePlan> {
    let task = |id: &str, title: &str, every_days, every_run_hours| MaintenanceTask {
        id: id.to_owned(),
        title: title.to_owned(),
        every_days: Some(every_days),
        every_run_hours,
        every_cycles: None,
        run_hours_counter: "run_hours".to_owned(),
        cycles_counter: "starts".to_owned(),
    };
    vec![
        MaintenancePlan {
            equipment_type: "machine".to_owned(),
            tasks: vec![task(
                "inspect_bearings",
                "Inspect and grease the bearings",
                180.0,
                Some(250.0),
            )],
        },
        MaintenancePlan {
            equipment_type: "feed_bin".to_owned(),
            tasks: vec![task(
                "calibrate_scale",
                "Calibrate the bin scale",
                90.0,
                None,
            )],
        },
    ]
}

/// Creates the demo's records when the store has none, so a restarted demo keeps what the
/// operator changed.
pub async fn seed(service: &EquipmentService) -> anyhow::Result<()> {
    if !service.records.list().await?.is_empty() {
        return Ok(());
    }
    let installed = |days_ago: u64| {
        Utc::now()
            .date_naive()
            .checked_sub_days(Days::new(days_ago))
            .map(|date| date.format("%Y-%m-%d").to_string())
    };
    let records = [
        RecordFields {
            farm_id: "nab".to_owned(),
            barn: "Machine room".to_owned(),
            equipment_type: "machine".to_owned(),
            name: "Silo unloader drive".to_owned(),
            model: "NAB machine 01".to_owned(),
            serial_number: "NAB-0001".to_owned(),
            install_date: installed(60),
            firmware_version: String::new(),
            location: "Silo 1".to_owned(),
            device_id: Some("machine-01".to_owned()),
        },
        RecordFields {
            farm_id: "odrc".to_owned(),
            barn: "Barn 1".to_owned(),
            equipment_type: "feed_bin".to_owned(),
            name: "Feed bin 6".to_owned(),
            model: "Insentec RIC".to_owned(),
            serial_number: "RIC-0006".to_owned(),
            install_date: installed(30),
            firmware_version: String::new(),
            location: "Row 1".to_owned(),
            device_id: Some("feedbin-006".to_owned()),
        },
    ];
    for (index, fields) in records.into_iter().enumerate() {
        let now = now_ms();
        let record = EquipmentRecord {
            equipment_id: format!("eq_demo_{}", index + 1),
            fields,
            link_counters: Default::default(),
            linked_at: Some(now),
            created_at: now,
            updated_at: now,
        };
        service.records.insert(&record).await?;
    }
    Ok(())
}
