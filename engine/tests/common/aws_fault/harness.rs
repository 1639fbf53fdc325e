//! Helpers the storage sink tests share: per-test sink names, metric counters, dead-letter
//! lines and emulator addresses.

use std::path::Path;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::Value;
use valmetal_engine::sinks::{BatchOutcome, Sink, SinkError};

/// A sink under another name, so that each test reads its own metrics and dead-letter file.
pub struct Renamed<S> {
    pub name: &'static str,
    pub inner: S,
}

impl<S: Sink> Sink for Renamed<S> {
    type Record = S::Record;
    type Key = S::Key;

    fn name(&self) -> &'static str {
        self.name
    }

    fn record_bytes(&self, record: &Self::Record) -> usize {
        self.inner.record_bytes(record)
    }

    fn coalesce_key(&self, record: &Self::Record) -> Option<Self::Key> {
        self.inner.coalesce_key(record)
    }

    fn write(
        &self,
        batch: &mut [Self::Record],
    ) -> impl std::future::Future<Output = Result<BatchOutcome, SinkError>> + Send {
        self.inner.write(batch)
    }
}

/// Returns the process-wide Prometheus recorder, installing it on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("no other metrics recorder is installed in storage tests")
    })
}

/// Returns the counter `name` whose labels include all of `labels`, summed, or 0.
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let rendered = metrics_handle().render();
    let mut total = 0;
    for line in rendered.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let Some((label_text, value)) = rest
            .strip_prefix('{')
            .and_then(|rest| rest.split_once("} "))
        else {
            continue;
        };
        let matches = labels.iter().all(|(key, value)| {
            label_text
                .split(',')
                .any(|pair| pair == format!("{key}=\"{value}\""))
        });
        if matches {
            total += value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        }
    }
    total
}

/// Returns the lines of the dead-letter file of `sink` in `dir`, parsed, or none if there is
/// no file.
pub fn dead_letters(dir: &Path, sink: &str) -> Vec<Value> {
    let path = dir.join(format!("{sink}.jsonl"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| {
                panic!("{} has a line that is not JSON: {error}", path.display())
            })
        })
        .collect()
}

/// Returns the URL of an emulator from `variable`, failing the test with instructions when
/// it is not set, or not on loopback.
pub fn emulator_url(variable: &str) -> String {
    let url = std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: start the emulators with `eval \"$(scripts/emulators start)\"` \
             and run the tests again"
        )
    });
    let host = url
        .trim_start_matches("http://")
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    assert!(
        host == "127.0.0.1" || host == "localhost",
        "{variable}={url} is not a loopback URL; the storage tests only talk to emulators on 127.0.0.1"
    );
    url
}

/// Reads the records moto stored in `database`, through moto's state dump.
pub async fn moto_records(moto_url: &str, database: &str) -> Vec<serde_json::Value> {
    let addr = moto_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("VALMETAL_TEST_MOTO_URL is http://HOST:PORT with a numeric host");
    let (status, body) = crate::common::http_get_text(addr, "/moto-api/data.json").await;
    assert_eq!(status, 200, "moto's /moto-api/data.json answered {status}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tables = state["timestreamwrite"]["TimestreamTable"]
        .as_array()
        .unwrap();
    let table = tables
        .iter()
        .find(|table| table["db_name"] == database)
        .unwrap_or_else(|| panic!("moto holds no table in database {database}"));
    table["records"].as_array().unwrap().clone()
}
