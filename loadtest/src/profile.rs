//! Simulated devices: ids, the values they report (taken from the bundled recordings) and the
//! alarms those values must raise.
//!
//! A feed bin reports the visits of one ODRC bin in file order, cycled; a machine reports the
//! NAB temperature series from an offset of its own, cycled. Every frame also carries
//! [`SENT_KEY`], the publish time in microseconds since the Unix epoch, which the dashboards
//! read back to measure latency.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context;
use valmetal_engine::replay::datasets;

/// Value key carrying the publish time, in microseconds since the Unix epoch.
pub const SENT_KEY: &str = "sent_us";

/// Rule `bin_low` of `rules/feed_bin.toml`: raised below 2 kg, cleared above 5 kg.
const BIN_LOW: Hysteresis = Hysteresis {
    below: 2.0,
    clear_above: 5.0,
};
/// Rule `temperature_low` of `rules/machine.toml`: raised below 50, cleared above 65.
const TEMPERATURE_LOW: Hysteresis = Hysteresis {
    below: 50.0,
    clear_above: 65.0,
};

/// Which recordings the simulated devices report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Feed bins only.
    FeedBin,
    /// Machines only.
    Machine,
    /// One machine per 100 devices, feed bins otherwise, as in the bundled barn.
    Mixed,
}

/// Kind of one simulated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    FeedBin,
    Machine,
}

impl Profile {
    /// Returns the kind of device number `index`.
    pub fn kind_of(self, index: u32) -> DeviceKind {
        match self {
            Self::FeedBin => DeviceKind::FeedBin,
            Self::Machine => DeviceKind::Machine,
            Self::Mixed if index % 100 == 99 => DeviceKind::Machine,
            Self::Mixed => DeviceKind::FeedBin,
        }
    }
}

/// Returns the id of simulated device number `index`; the prefix gives the engine's device type.
pub fn device_id(kind: DeviceKind, index: u32) -> String {
    match kind {
        DeviceKind::FeedBin => format!("feedbin-lt{index:07}"),
        DeviceKind::Machine => format!("machine-lt{index:07}"),
    }
}

/// One visit to a feed bin, as the ODRC recording has it.
#[derive(Debug, Clone, Copy)]
struct Visit {
    start_weight_kg: f64,
    end_weight_kg: f64,
    intake_kg: f64,
    duration_s: f64,
    animal_id: i64,
    transponder_id: i64,
}

/// The recorded series the simulated devices cycle through.
pub struct Recordings {
    /// Visits of each of the 100 ODRC bins, in time order.
    bins: Vec<Vec<Visit>>,
    temperatures: Vec<f64>,
}

impl Recordings {
    /// Loads the bundled recordings.
    ///
    /// # Errors
    ///
    /// Fails when a bundled file does not parse, which a broken build would cause.
    pub fn load() -> anyhow::Result<Arc<Self>> {
        let visits = datasets::feed_bins(datasets::FEED_BINS_CSV, None)
            .context("the bundled feed-bin recording does not parse")?;
        let mut bins: Vec<Vec<Visit>> = Vec::new();
        let mut index_of = std::collections::HashMap::new();
        for frame in &visits {
            let index = *index_of.entry(frame.device.clone()).or_insert_with(|| {
                bins.push(Vec::new());
                bins.len() - 1
            });
            let number = |key: &str| frame.values.get(key).and_then(serde_json::Value::as_f64);
            let integer = |key: &str| frame.values.get(key).and_then(serde_json::Value::as_i64);
            bins[index].push(Visit {
                start_weight_kg: number("start_weight_kg").unwrap_or_default(),
                end_weight_kg: number("end_weight_kg").unwrap_or_default(),
                intake_kg: number("intake_kg").unwrap_or_default(),
                duration_s: number("duration_s").unwrap_or_default(),
                animal_id: integer("animal_id").unwrap_or_default(),
                transponder_id: integer("transponder_id").unwrap_or_default(),
            });
        }
        let temperatures = datasets::machine_temperature(
            datasets::MACHINE_TEMPERATURE_CSV,
            datasets::MACHINE_DEVICE_ID,
            None,
        )
        .context("the bundled machine recording does not parse")?
        .iter()
        .filter_map(|frame| frame.values.get("temperature")?.as_f64())
        .collect();
        Ok(Arc::new(Self { bins, temperatures }))
    }
}

/// A rule that raises below a level and clears above a higher one.
#[derive(Debug, Clone, Copy)]
struct Hysteresis {
    below: f64,
    clear_above: f64,
}

/// One simulated device's position in its recording, its counters and the alarms its values
/// must raise.
#[derive(Debug, Clone)]
pub struct SimulatedDevice {
    pub index: u32,
    pub kind: DeviceKind,
    pub id: String,
    /// Position in the device's series.
    cursor: u32,
    /// Frames handed to the MQTT client.
    pub published: u64,
    /// Whether the watched value is inside the alarm band, as the rule would judge it.
    low: bool,
    /// Raises of `bin_low` or `temperature_low` the published values must cause.
    pub expected_raises: u64,
    /// Device time of the newest frame recorded by [`SimulatedDevice::record`].
    newest_ts: i64,
}

impl SimulatedDevice {
    /// Creates device number `index` of `profile`, at its own starting point in the data.
    pub fn new(profile: Profile, index: u32, recordings: &Recordings) -> Self {
        let kind = profile.kind_of(index);
        let cursor = match kind {
            DeviceKind::FeedBin => 0,
            DeviceKind::Machine => {
                (index.wrapping_mul(7919) as usize % recordings.temperatures.len().max(1)) as u32
            }
        };
        Self {
            index,
            kind,
            id: device_id(kind, index),
            cursor,
            published: 0,
            low: false,
            expected_raises: 0,
            newest_ts: i64::MIN,
        }
    }

    /// Creates a device of a recording, whose frames come from elsewhere and are counted with
    /// [`SimulatedDevice::record`].
    pub fn recorded(index: u32, kind: DeviceKind, id: String) -> Self {
        Self {
            index,
            kind,
            id,
            cursor: 0,
            published: 0,
            low: false,
            expected_raises: 0,
            newest_ts: i64::MIN,
        }
    }

    /// Counts one published frame at device time `ts` whose watched value is `value`. A frame
    /// older than the newest one never changes alarms in the engine, so it is not judged.
    pub fn record(&mut self, ts: i64, value: f64) {
        self.published += 1;
        if ts < self.newest_ts {
            return;
        }
        self.newest_ts = ts;
        let rule = match self.kind {
            DeviceKind::FeedBin => BIN_LOW,
            DeviceKind::Machine => TEMPERATURE_LOW,
        };
        self.judge(value, rule);
    }

    /// Writes the device's next frame into `payload`, at device time `ts_ms` and publish time
    /// `sent_us`, and advances the device.
    pub fn next_frame(
        &mut self,
        recordings: &Recordings,
        seq: u64,
        ts_ms: i64,
        sent_us: u64,
        payload: &mut String,
    ) {
        payload.clear();
        let watched = match self.kind {
            DeviceKind::FeedBin => {
                let bin = &recordings.bins[self.index as usize % recordings.bins.len()];
                let visit = bin[self.cursor as usize % bin.len()];
                let _ = write!(
                    payload,
                    r#"{{"ts":{ts_ms},"seq":{seq},"values":{{"start_weight_kg":{},"end_weight_kg":{},"intake_kg":{},"duration_s":{},"animal_id":{},"transponder_id":{},"{SENT_KEY}":{sent_us}}}}}"#,
                    visit.start_weight_kg,
                    visit.end_weight_kg,
                    visit.intake_kg,
                    visit.duration_s,
                    visit.animal_id,
                    visit.transponder_id,
                );
                (visit.end_weight_kg, BIN_LOW)
            }
            DeviceKind::Machine => {
                let series = &recordings.temperatures;
                let temperature = series[self.cursor as usize % series.len()];
                let _ = write!(
                    payload,
                    r#"{{"ts":{ts_ms},"seq":{seq},"values":{{"temperature":{temperature},"{SENT_KEY}":{sent_us}}}}}"#
                );
                (temperature, TEMPERATURE_LOW)
            }
        };
        self.cursor = self.cursor.wrapping_add(1);
        self.published += 1;
        self.judge(watched.0, watched.1);
    }

    fn judge(&mut self, value: f64, rule: Hysteresis) {
        if !self.low && value < rule.below {
            self.low = true;
            self.expected_raises += 1;
        } else if self.low && value > rule.clear_above {
            self.low = false;
        }
    }
}

/// Returns true for the rules whose raises the harness predicts.
pub fn is_checked_rule(rule: &str) -> bool {
    rule == "bin_low" || rule == "temperature_low"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_payload_decodes_in_engine() {
        let recordings = Recordings::load().unwrap();
        let mut device = SimulatedDevice::new(Profile::Mixed, 99, &recordings);
        let mut payload = String::new();
        device.next_frame(&recordings, 7, 1_764_800_000_000, 42, &mut payload);
        let frames = valmetal_engine::ingest::payload::decode(
            payload.as_bytes(),
            256 * 1024,
            1_764_800_000_000,
        )
        .unwrap();
        assert_eq!(device.id, "machine-lt0000099");
        assert_eq!(frames[0].seq, Some(7));
        assert!(frames[0].values.iter().any(|(key, _)| &**key == SENT_KEY));
    }

    #[test]
    fn oracle_counts_one_raise_per_dip() {
        let mut device = SimulatedDevice::recorded(0, DeviceKind::FeedBin, "feedbin-001".into());
        for (ts, value) in [10.0, 1.9, 1.0, 3.0, 1.5, 6.0, 1.0].into_iter().enumerate() {
            device.record(ts as i64, value);
        }
        assert_eq!(device.expected_raises, 2);
        assert_eq!(device.published, 7);
    }

    #[test]
    fn oracle_ignores_late_frames() {
        let mut device = SimulatedDevice::recorded(0, DeviceKind::Machine, "machine-01".into());
        device.record(100, 70.0);
        device.record(50, 10.0);
        assert_eq!(device.expected_raises, 0);
    }
}
