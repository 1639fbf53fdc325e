//! The `[equipment]` configuration: counters and wear trends per device type, maintenance
//! plans per equipment type, and the document store.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use valmetal_actors::EquipmentProfile;
use valmetal_actors::usage::{CounterConfig, CounterKind, DEFAULT_MAX_GAP};

use crate::secret::SecretSource;
use crate::sinks::aws::AwsConfig;

/// Equipment records, usage, maintenance and documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EquipmentConfig {
    /// Usage counters and wear trends per device type. Default: feed delivered for
    /// `feed_bin`, run hours and starts for `machine`.
    pub profiles: Vec<EquipmentProfile>,
    /// Maintenance plans per equipment type.
    pub plans: Vec<MaintenancePlan>,
    /// How often due maintenance is checked and its alarms raised or cleared. Default 1 min,
    /// at least 1 s.
    #[serde(with = "humantime_serde")]
    pub maintenance_check_interval: Duration,
    /// After an operator clears a maintenance alarm whose task is still due, how long it
    /// stays cleared unless the task becomes overdue. Default 24 h.
    #[serde(with = "humantime_serde")]
    pub maintenance_reraise_after: Duration,
    /// Share of a task's interval after which it is `due_soon`. Default 0.9, 0 to 1.
    pub due_soon_fraction: f64,
    /// Share of a task's interval past due after which it is `overdue`. Default 0.1, at
    /// least 0.
    pub overdue_fraction: f64,
    pub documents: DocumentsConfig,
}

/// The maintenance tasks of one equipment type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenancePlan {
    /// The `equipment_type` of the records the plan applies to.
    pub equipment_type: String,
    pub tasks: Vec<MaintenanceTask>,
}

/// One recurring task. It is due when the first of its intervals has passed since the last
/// work order for it, or since installation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceTask {
    /// Unique in its plan: 1 to 64 characters of a-z 0-9 _ -.
    pub id: String,
    pub title: String,
    /// Calendar interval, in days.
    #[serde(default)]
    pub every_days: Option<f64>,
    /// Run-hour interval, read from the counter named by `run_hours_counter`.
    #[serde(default)]
    pub every_run_hours: Option<f64>,
    /// Cycle interval, read from the counter named by `cycles_counter`.
    #[serde(default)]
    pub every_cycles: Option<f64>,
    /// Counter holding run hours. Default `run_hours`.
    #[serde(default = "default_run_hours_counter")]
    pub run_hours_counter: String,
    /// Counter holding cycles. Default `starts`.
    #[serde(default = "default_cycles_counter")]
    pub cycles_counter: String,
}

fn default_run_hours_counter() -> String {
    "run_hours".to_owned()
}

fn default_cycles_counter() -> String {
    "starts".to_owned()
}

/// The store of equipment documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentBackend {
    /// Files under `{storage.data_dir}/documents`, reached through URLs the engine signs.
    Disk,
    /// An Amazon S3 bucket, reached through presigned URLs.
    S3,
}

/// The document store and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentsConfig {
    /// `disk` (default) or `s3`.
    pub backend: DocumentBackend,
    /// Directory of the disk store. Default `{storage.data_dir}/documents`.
    pub dir: Option<PathBuf>,
    /// The S3 bucket, used when `backend = "s3"`.
    pub bucket: String,
    /// Prefix of every S3 object key. Default `documents/`.
    pub key_prefix: String,
    /// Region and endpoint of S3; a set endpoint also turns on path-style addressing.
    pub s3: AwsConfig,
    /// Largest document, in bytes. Default 25 MiB.
    pub max_bytes: u64,
    /// Accepted content types. Default PDF, JPEG, PNG, WebP, plain text.
    pub allowed_types: Vec<String>,
    /// Lifetime of upload and download URLs. Default 5 min, 10 s to 1 h.
    #[serde(with = "humantime_serde")]
    pub url_ttl: Duration,
    /// Key that signs the disk store's URLs. Default: a random key per start, which makes
    /// URLs handed out before a restart invalid.
    pub signing_key: Option<SecretSource>,
}

impl Default for EquipmentConfig {
    fn default() -> Self {
        Self {
            profiles: default_profiles(),
            plans: Vec::new(),
            maintenance_check_interval: Duration::from_secs(60),
            maintenance_reraise_after: Duration::from_secs(24 * 3600),
            due_soon_fraction: 0.9,
            overdue_fraction: 0.1,
            documents: DocumentsConfig::default(),
        }
    }
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        Self {
            backend: DocumentBackend::Disk,
            dir: None,
            bucket: String::new(),
            key_prefix: "documents/".to_owned(),
            s3: AwsConfig::default(),
            max_bytes: 25 * 1024 * 1024,
            allowed_types: [
                "application/pdf",
                "image/jpeg",
                "image/png",
                "image/webp",
                "text/plain",
            ]
            .map(str::to_owned)
            .to_vec(),
            url_ttl: Duration::from_secs(300),
            signing_key: None,
        }
    }
}

/// Feed delivered per feed bin, and run hours and starts of the NAB machine, whose component
/// runs warm: it counts as running above 60 degrees.
fn default_profiles() -> Vec<EquipmentProfile> {
    let counter = |name: &str, kind, key: &str, above, start_key: Option<&str>| CounterConfig {
        name: name.to_owned(),
        kind,
        key: key.to_owned(),
        above,
        start_key: start_key.map(str::to_owned),
        max_gap: DEFAULT_MAX_GAP,
    };
    vec![
        EquipmentProfile {
            device_type: "feed_bin".to_owned(),
            counters: vec![counter(
                "feed_delivered_kg",
                CounterKind::Drops,
                "end_weight_kg",
                0.0,
                Some("start_weight_kg"),
            )],
            wear: Vec::new(),
        },
        EquipmentProfile {
            device_type: "machine".to_owned(),
            counters: vec![
                counter(
                    "run_hours",
                    CounterKind::RunHours,
                    "temperature",
                    60.0,
                    None,
                ),
                counter("starts", CounterKind::Starts, "temperature", 60.0, None),
            ],
            wear: Vec::new(),
        },
    ]
}

impl EquipmentConfig {
    /// Returns one line per out-of-bounds value.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.maintenance_check_interval < Duration::from_secs(1) {
            problems.push(format!(
                "`equipment.maintenance_check_interval` is {}; use 1s or more",
                humantime::format_duration(self.maintenance_check_interval)
            ));
        }
        if !(0.0..=1.0).contains(&self.due_soon_fraction) {
            problems.push(format!(
                "`equipment.due_soon_fraction` is {}; use 0 to 1",
                self.due_soon_fraction
            ));
        }
        if self.overdue_fraction < 0.0 || !self.overdue_fraction.is_finite() {
            problems.push(format!(
                "`equipment.overdue_fraction` is {}; use 0 or more",
                self.overdue_fraction
            ));
        }
        for profile in &self.profiles {
            problems.extend(profile_problems(profile));
        }
        for (index, plan) in self.plans.iter().enumerate() {
            if is_repeat(&self.plans, index, |plan| &plan.equipment_type) {
                problems.push(format!(
                    "`equipment.plans` has two plans for `{}`; merge their tasks into one",
                    plan.equipment_type
                ));
            }
            problems.extend(plan_problems(plan, &self.profiles));
        }
        problems.extend(self.documents.problems());
        problems
    }

    /// Returns the tasks of `equipment_type`'s plan; none without a plan.
    pub fn tasks_of(&self, equipment_type: &str) -> &[MaintenanceTask] {
        self.plans
            .iter()
            .find(|plan| plan.equipment_type == equipment_type)
            .map_or(&[], |plan| &plan.tasks)
    }
}

fn profile_problems(profile: &EquipmentProfile) -> Vec<String> {
    let label = format!("`equipment.profiles` of `{}`", profile.device_type);
    let mut problems = Vec::new();
    for wear in &profile.wear {
        if wear.key.is_empty() || wear.key.contains('/') {
            problems.push(format!(
                "{label}: wear key `{}` must be non-empty and contain no `/`",
                wear.key
            ));
        }
        if wear.bucket.is_zero() || wear.window < wear.bucket * 2 {
            problems.push(format!(
                "{label}: wear `{}` needs a non-zero `bucket` and a `window` of at least two buckets",
                wear.key
            ));
        }
    }
    for (index, counter) in profile.counters.iter().enumerate() {
        if counter.key.is_empty() {
            problems.push(format!(
                "{label}: counter `{}` has an empty `key`; name the telemetry key it reads",
                counter.name
            ));
        }
        if is_repeat(&profile.counters, index, |counter| &counter.name) {
            problems.push(format!(
                "{label}: counter `{}` is defined twice",
                counter.name
            ));
        }
    }
    problems
}

fn plan_problems(plan: &MaintenancePlan, profiles: &[EquipmentProfile]) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, task) in plan.tasks.iter().enumerate() {
        let label = format!(
            "`equipment.plans` of `{}`, task `{}`",
            plan.equipment_type, task.id
        );
        if !is_task_id(&task.id) {
            problems.push(format!(
                "{label}: `id` must be 1 to 64 characters of a-z 0-9 _ -"
            ));
        }
        if task.title.trim().is_empty() {
            problems.push(format!(
                "{label}: `title` is empty; name the work, e.g. \"Grease the bearings\""
            ));
        }
        if is_repeat(&plan.tasks, index, |task| &task.id) {
            problems.push(format!(
                "{label}: the id is used twice in the plan; rename one"
            ));
        }
        problems.extend(interval_problems(task, &label));
        for (every, counter, field) in [
            (
                task.every_run_hours,
                &task.run_hours_counter,
                "run_hours_counter",
            ),
            (task.every_cycles, &task.cycles_counter, "cycles_counter"),
        ] {
            if every.is_some() && !counter_defined(profiles, counter) {
                problems.push(format!(
                    "{label}: `{field}` `{counter}` is no counter of any `equipment.profiles`; name one of theirs or add it"
                ));
            }
        }
    }
    problems
}

/// Returns whether an item before `index` has the same key as the item at `index`.
fn is_repeat<T, K: PartialEq + ?Sized>(items: &[T], index: usize, key: impl Fn(&T) -> &K) -> bool {
    let own = key(&items[index]);
    items[..index].iter().any(|other| key(other) == own)
}

fn is_task_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn interval_problems(task: &MaintenanceTask, label: &str) -> Vec<String> {
    let intervals = [
        ("every_days", task.every_days),
        ("every_run_hours", task.every_run_hours),
        ("every_cycles", task.every_cycles),
    ];
    if intervals.iter().all(|(_, every)| every.is_none()) {
        return vec![format!(
            "{label}: set at least one of `every_days`, `every_run_hours`, `every_cycles`"
        )];
    }
    intervals
        .iter()
        .filter_map(|(field, every)| every.and_then(|every| interval_problem(field, every)))
        .map(|problem| format!("{label}: {problem}"))
        .collect()
}

/// Smallest and largest task interval, in days, run hours or cycles.
const INTERVAL_RANGE: std::ops::RangeInclusive<f64> = 0.01..=1_000_000.0;

/// Returns what is wrong with the interval `every` of `field`, if it is out of range.
pub fn interval_problem(field: &str, every: f64) -> Option<String> {
    if INTERVAL_RANGE.contains(&every) {
        return None;
    }
    let value_text = if (1e-3..1e9).contains(&every.abs()) || every == 0.0 {
        every.to_string()
    } else {
        format!("{every:e}")
    };
    Some(format!(
        "`{field}` is {value_text}; use {} to {}",
        INTERVAL_RANGE.start(),
        INTERVAL_RANGE.end()
    ))
}

fn counter_defined(profiles: &[EquipmentProfile], name: &str) -> bool {
    profiles
        .iter()
        .flat_map(|profile| &profile.counters)
        .any(|counter| counter.name == name)
}

/// Returns whether `value` reads as a media type, `type/subtype` without parameters.
fn is_media_type(value: &str) -> bool {
    let token = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    value
        .split_once('/')
        .is_some_and(|(kind, subtype)| token(kind) && token(subtype))
}

impl DocumentsConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.backend == DocumentBackend::S3 && self.bucket.is_empty() {
            problems.push(
                "`equipment.documents.bucket` is empty; name the S3 bucket for `backend = \"s3\"`"
                    .to_owned(),
            );
        }
        if self.max_bytes == 0 {
            problems.push("`equipment.documents.max_bytes` must be at least 1".to_owned());
        }
        if !(Duration::from_secs(10)..=Duration::from_secs(3600)).contains(&self.url_ttl) {
            problems.push(format!(
                "`equipment.documents.url_ttl` is {}; use 10s to 1h",
                humantime::format_duration(self.url_ttl)
            ));
        }
        if self.allowed_types.is_empty() {
            problems.push(
                "`equipment.documents.allowed_types` is empty; list at least one type such as \"application/pdf\""
                    .to_owned(),
            );
        }
        for allowed in &self.allowed_types {
            if !is_media_type(allowed) {
                problems.push(format!(
                    "`equipment.documents.allowed_types` entry \"{allowed}\" is not a media type; write type/subtype without parameters or wildcards, e.g. \"image/png\""
                ));
            }
        }
        if let Some(problem) = self
            .signing_key
            .as_ref()
            .and_then(|source| source.problem("equipment.documents.signing_key"))
        {
            problems.push(problem);
        }
        problems
    }
}
