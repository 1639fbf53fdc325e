//! Hot reload of rule files: the rules directory is read again at an interval, and a change is
//! validated as a whole and swapped into every device actor without a restart. The files are
//! merged with the rule files stored through the API, which take precedence.
//!
//! Files are compared by content, not modification time, so an edit within the same second
//! is still seen. An invalid file rejects the whole change: the error names the file, line and
//! reason, and the rules in force stay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};
use valmetal_actors::rules::{RuleBook, RuleFileError, rule_file};

use crate::rule_sources::RuleSources;
use crate::telemetry::RulesReloaded;

/// Text of every rule file in a directory, by path.
type Snapshot = BTreeMap<PathBuf, String>;

/// Starts the reload loop over `directory`, whose current files are already in force.
pub fn spawn(
    directory: PathBuf,
    sources: Arc<RuleSources>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut current = read_snapshot(&directory).unwrap_or_default();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            let Ok(next) = read_snapshot(&directory) else {
                continue;
            };
            if next == current {
                continue;
            }
            match build_book(&next) {
                Ok(book) => {
                    let versions: Vec<String> = book
                        .sets()
                        .map(|set| format!("{}@{}", set.device_type, set.version))
                        .collect();
                    sources.set_files(book);
                    RulesReloaded(true).emit();
                    info!(rules.dir = %directory.display(), rules.versions = ?versions, "Alarm rules reloaded");
                }
                Err(problem) => {
                    RulesReloaded(false).emit();
                    error!(rules.dir = %directory.display(), %problem, "Alarm rules not reloaded; the previous rules stay in force");
                }
            }
            current = next;
        }
    })
}

fn read_snapshot(directory: &Path) -> std::io::Result<Snapshot> {
    let mut snapshot = Snapshot::new();
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        if path
            .extension()
            .is_some_and(|extension| extension == "toml")
        {
            let text = std::fs::read_to_string(&path)?;
            snapshot.insert(path, text);
        }
    }
    Ok(snapshot)
}

fn build_book(snapshot: &Snapshot) -> Result<RuleBook, RuleFileError> {
    let sets = snapshot
        .iter()
        .map(|(path, text)| rule_file::parse(text, &path.display().to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RuleBook::from_sets(sets))
}
