//! When a maintenance task is due: the share of each of its intervals used since the last
//! work order for it (or since installation), and the status the largest share gives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use valmetal_actors::equipment::MAINTENANCE_RULE_PREFIX;
use valmetal_actors::rules::{AlarmInput, ExternalCondition, Severity};
use valmetal_actors::{Value, usage::CounterState};

use super::config::MaintenanceTask;
use crate::store::maintenance::{TaskOverride, WorkOrder};

const DAY_MS: f64 = 86_400_000.0;

/// A task's closeness to being due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DueStatus {
    Ok,
    /// Past the configured share of an interval, such as 90 %.
    DueSoon,
    /// An interval has passed.
    Due,
    /// An interval has passed by more than the configured share.
    Overdue,
}

/// The measure an interval counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Days,
    RunHours,
    Cycles,
}

/// Progress through one interval of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalProgress {
    pub measure: Measure,
    /// The interval in force, after any override.
    pub every: f64,
    /// Used since the baseline; `None` when the counter is not reported yet.
    pub used: Option<f64>,
    /// `used / every`.
    pub fraction: Option<f64>,
}

/// The live state of one task of one piece of equipment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDue {
    pub task_id: String,
    pub title: String,
    pub status: DueStatus,
    /// The interval closest to due, which decides the status.
    pub driver: Option<Measure>,
    pub intervals: Vec<IntervalProgress>,
    /// True when the equipment has an override of this task.
    pub overridden: bool,
    /// The last work order for this task, which the intervals count from.
    pub last_work_order: Option<String>,
    /// Time the intervals count from: the last work order, or installation.
    pub since: Option<i64>,
}

/// The inputs of a task's due state.
pub struct DueInputs<'a> {
    /// Engine time now, in milliseconds since the Unix epoch.
    pub now: i64,
    /// Installation (or record creation) time, the baseline before any work order.
    pub installed_at: Option<i64>,
    /// The device's counters; empty without a linked device.
    pub counters: &'a BTreeMap<String, CounterState>,
    /// The counters when the device was linked, the baseline before any work order.
    pub link_counters: &'a BTreeMap<String, f64>,
    /// When the device was linked. A work order recorded before it contains another
    /// device's counters, so the link's counters are the baseline instead.
    pub linked_at: Option<i64>,
    /// Work orders of the equipment, newest first.
    pub work_orders: &'a [WorkOrder],
    pub due_soon_fraction: f64,
    pub overdue_fraction: f64,
}

/// Computes the due state of `task` with its override, if any.
pub fn task_due(
    task: &MaintenanceTask,
    change: Option<&TaskOverride>,
    inputs: &DueInputs<'_>,
) -> TaskDue {
    let last = inputs
        .work_orders
        .iter()
        .find(|order| order.task_id.as_deref() == Some(task.id.as_str()));
    let since = last.map(|order| order.performed_at).or(inputs.installed_at);
    let pick = |own: Option<f64>, replaced: Option<f64>| replaced.or(own);
    let every_days = pick(task.every_days, change.and_then(|c| c.every_days));
    let every_hours = pick(task.every_run_hours, change.and_then(|c| c.every_run_hours));
    let every_cycles = pick(task.every_cycles, change.and_then(|c| c.every_cycles));

    let days_used = since.map(|since| (inputs.now - since) as f64 / DAY_MS);
    let counter_used = |name: &str| {
        let current = inputs.counters.get(name)?.value;
        let order_of_this_device =
            last.filter(|order| inputs.linked_at.is_none_or(|at| order.created_at >= at));
        let baseline = match order_of_this_device {
            Some(order) => order.counters.get(name).copied(),
            None => inputs.link_counters.get(name).copied(),
        };
        let baseline = baseline.unwrap_or(0.0);
        Some((current - baseline).max(0.0))
    };
    let intervals: Vec<IntervalProgress> = [
        (Measure::Days, every_days, days_used),
        (
            Measure::RunHours,
            every_hours,
            counter_used(&task.run_hours_counter),
        ),
        (
            Measure::Cycles,
            every_cycles,
            counter_used(&task.cycles_counter),
        ),
    ]
    .into_iter()
    .filter_map(|(measure, every, used)| {
        let every = every?;
        Some(IntervalProgress {
            measure,
            every,
            used,
            fraction: used.map(|used| used / every),
        })
    })
    .collect();

    let driver = intervals
        .iter()
        .filter_map(|interval| {
            interval
                .fraction
                .map(|fraction| (interval.measure, fraction))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let status = match driver.map(|(_, fraction)| fraction) {
        Some(fraction) if fraction >= 1.0 + inputs.overdue_fraction => DueStatus::Overdue,
        Some(fraction) if fraction >= 1.0 => DueStatus::Due,
        Some(fraction) if fraction >= inputs.due_soon_fraction => DueStatus::DueSoon,
        _ => DueStatus::Ok,
    };
    TaskDue {
        task_id: task.id.clone(),
        title: task.title.clone(),
        status,
        driver: driver.map(|(measure, _)| measure),
        intervals,
        overridden: change.is_some(),
        last_work_order: last.map(|order| order.work_order_id.clone()),
        since,
    }
}

/// Returns the alarm condition of a task that is due or overdue: a warning when due, raised
/// to minor when overdue. Its inputs give each interval's use and length. An operator's clear
/// keeps it quiet for `reraise_after` unless it becomes overdue.
pub fn due_condition(
    equipment_name: &str,
    due: &TaskDue,
    reraise_after: Duration,
) -> Option<ExternalCondition> {
    let severity = match due.status {
        DueStatus::Due => Severity::Warning,
        DueStatus::Overdue => Severity::Minor,
        DueStatus::Ok | DueStatus::DueSoon => return None,
    };
    let state = if due.status == DueStatus::Overdue {
        "overdue"
    } else {
        "due"
    };
    let driver = due
        .intervals
        .iter()
        .find(|interval| Some(interval.measure) == due.driver);
    let reason = driver.map_or_else(String::new, |interval| {
        format!(
            " by {}: {:.1} of {}",
            measure_label(interval.measure),
            interval.used.unwrap_or(0.0),
            interval.every
        )
    });
    let mut inputs = Vec::new();
    for interval in &due.intervals {
        let name = measure_name(interval.measure);
        let ts = due.since.unwrap_or(0);
        inputs.push(AlarmInput {
            key: Arc::from(format!("{name}.used")),
            value: Value::Number(interval.used.unwrap_or(0.0)),
            ts,
        });
        inputs.push(AlarmInput {
            key: Arc::from(format!("{name}.every")),
            value: Value::Number(interval.every),
            ts,
        });
    }
    Some(ExternalCondition {
        rule: Arc::from(format!("{MAINTENANCE_RULE_PREFIX}{}", due.task_id)),
        severity,
        message: format!("{equipment_name}: {} {state}{reason}", due.title),
        key: None,
        value: None,
        inputs,
        quiet_after_clear_ms: i64::try_from(reraise_after.as_millis()).unwrap_or(i64::MAX),
    })
}

/// Returns the words for `measure` in an alarm message, such as `run hours`.
fn measure_label(measure: Measure) -> &'static str {
    match measure {
        Measure::Days => "days",
        Measure::RunHours => "run hours",
        Measure::Cycles => "cycles",
    }
}

fn measure_name(measure: Measure) -> &'static str {
    match measure {
        Measure::Days => "days",
        Measure::RunHours => "run_hours",
        Measure::Cycles => "cycles",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> MaintenanceTask {
        MaintenanceTask {
            id: "grease".into(),
            title: "Grease bearings".into(),
            every_days: Some(30.0),
            every_run_hours: Some(100.0),
            every_cycles: None,
            run_hours_counter: "run_hours".into(),
            cycles_counter: "starts".into(),
        }
    }

    fn counters(run_hours: f64) -> BTreeMap<String, CounterState> {
        BTreeMap::from([(
            "run_hours".to_owned(),
            CounterState {
                value: run_hours,
                last_ts: None,
                last_sample: None,
            },
        )])
    }

    const NO_LINK_COUNTERS: &BTreeMap<String, f64> = &BTreeMap::new();

    fn inputs<'a>(
        days: f64,
        counters: &'a BTreeMap<String, CounterState>,
        orders: &'a [WorkOrder],
    ) -> DueInputs<'a> {
        DueInputs {
            now: (days * DAY_MS) as i64,
            installed_at: Some(0),
            counters,
            link_counters: NO_LINK_COUNTERS,
            linked_at: None,
            work_orders: orders,
            due_soon_fraction: 0.9,
            overdue_fraction: 0.1,
        }
    }

    #[test]
    fn hours_make_task_due_before_days() {
        let counters = counters(105.0);
        let due = task_due(&task(), None, &inputs(10.0, &counters, &[]));
        assert_eq!(due.status, DueStatus::Due);
        assert_eq!(due.driver, Some(Measure::RunHours));
        let condition = due_condition("Fan 1", &due, Duration::from_secs(60)).unwrap();
        assert_eq!(&*condition.rule, "maintenance.grease");
        assert_eq!(condition.severity, Severity::Warning);
        assert!(
            condition.message.contains("by run hours: 105.0 of 100"),
            "{}",
            condition.message
        );
    }

    #[test]
    fn status_steps_through_due_soon_and_overdue() {
        let counters = counters(0.0);
        let statuses: Vec<DueStatus> = [10.0, 28.0, 31.0, 34.0]
            .into_iter()
            .map(|days| task_due(&task(), None, &inputs(days, &counters, &[])).status)
            .collect();
        assert_eq!(
            statuses,
            [
                DueStatus::Ok,
                DueStatus::DueSoon,
                DueStatus::Due,
                DueStatus::Overdue
            ]
        );
    }

    #[test]
    fn work_order_resets_baseline() {
        let counters = counters(150.0);
        let order = WorkOrder {
            work_order_id: "wo_1".into(),
            equipment_id: "eq_1".into(),
            task_id: Some("grease".into()),
            performed_by: "tech".into(),
            performed_at: (20.0 * DAY_MS) as i64,
            notes: String::new(),
            counters: BTreeMap::from([("run_hours".to_owned(), 140.0)]),
            created_at: 0,
        };
        let due = task_due(&task(), None, &inputs(25.0, &counters, &[order]));
        assert_eq!(due.status, DueStatus::Ok);
        assert_eq!(due.intervals[1].used, Some(10.0));
        assert_eq!(due.last_work_order.as_deref(), Some("wo_1"));
    }

    #[test]
    fn hours_before_the_link_are_not_counted() {
        let counters = counters(105.0);
        let linked_at = BTreeMap::from([("run_hours".to_owned(), 100.0)]);
        let inputs = DueInputs {
            link_counters: &linked_at,
            ..inputs(1.0, &counters, &[])
        };
        let due = task_due(&task(), None, &inputs);
        assert_eq!(due.intervals[1].used, Some(5.0));
        assert_eq!(due.status, DueStatus::Ok);
    }

    #[test]
    fn relinked_device_counts_from_its_link() {
        let counters = counters(30.0);
        let order = WorkOrder {
            work_order_id: "wo_1".into(),
            equipment_id: "eq_1".into(),
            task_id: Some("grease".into()),
            performed_by: "tech".into(),
            performed_at: (2.0 * DAY_MS) as i64,
            notes: String::new(),
            counters: BTreeMap::from([("run_hours".to_owned(), 900.0)]),
            created_at: (2.0 * DAY_MS) as i64,
        };
        let linked_at = BTreeMap::from([("run_hours".to_owned(), 10.0)]);
        let orders = [order];
        let inputs = DueInputs {
            link_counters: &linked_at,
            linked_at: Some((3.0 * DAY_MS) as i64),
            ..inputs(4.0, &counters, &orders)
        };
        let due = task_due(&task(), None, &inputs);
        assert_eq!(due.intervals[1].used, Some(20.0));
        assert_eq!(due.last_work_order.as_deref(), Some("wo_1"));
    }

    #[test]
    fn override_replaces_plan_interval() {
        let counters = counters(60.0);
        let change = TaskOverride {
            every_run_hours: Some(50.0),
            ..TaskOverride::default()
        };
        let due = task_due(&task(), Some(&change), &inputs(1.0, &counters, &[]));
        assert_eq!(due.status, DueStatus::Overdue);
        assert!(due.overridden);
    }
}
