//! The rule sets in force and where each comes from: the rules directory (or the bundled
//! rules) and the rule files stored in the database through the API. For a device type, a
//! stored file takes precedence over the directory's.

use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;
use valmetal_actors::DeviceRegistry;
use valmetal_actors::clock::now_ms;
use valmetal_actors::rules::{RuleBook, RuleFileError, RuleSet, rule_file};

use crate::store::{RuleStore, StoredRuleFile};

/// Source of a rule set in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    Files,
    Database,
}

/// A rule set in force, as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleSetSummary {
    pub device_type: String,
    pub version: String,
    pub source: RuleSource,
    pub updated_by: Option<String>,
    pub rules: Vec<RuleSummary>,
}

/// One rule, as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleSummary {
    pub id: String,
    pub severity: &'static str,
    pub description: String,
}

/// Error storing a rule file.
#[derive(Debug, thiserror::Error)]
pub enum StoreRuleError {
    #[error(transparent)]
    Invalid(#[from] RuleFileError),
    #[error(
        "the file's `device_type` is `{found}`, but the request names `{expected}`; make them match"
    )]
    WrongDeviceType { expected: String, found: String },
    #[error("the rule store failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// The two sources of rules, and the registry that receives their merge.
pub struct RuleSources {
    files: RwLock<RuleBook>,
    stored: RwLock<Vec<(StoredRuleFile, Arc<RuleSet>)>>,
    store: RuleStore,
    registry: Arc<DeviceRegistry>,
}

impl RuleSources {
    /// Reads the stored rule files and returns them parsed. A stored file that no longer
    /// parses is left out and logged, so the engine still starts.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn load_stored(
        store: &RuleStore,
    ) -> Result<Vec<(StoredRuleFile, Arc<RuleSet>)>, sqlx::Error> {
        let mut stored = Vec::new();
        for file in store.list().await? {
            match rule_file::parse(
                &file.text,
                &format!("stored rules of `{}`", file.device_type),
            ) {
                Ok(set) => stored.push((file, Arc::new(set))),
                Err(error) => {
                    tracing::error!(%error, device.r#type = %file.device_type, "Stored rule file ignored")
                }
            }
        }
        Ok(stored)
    }

    /// Merges `files` with `stored`, the stored sets taking precedence.
    pub fn merge(files: &RuleBook, stored: &[(StoredRuleFile, Arc<RuleSet>)]) -> RuleBook {
        files.with_sets(stored.iter().map(|(_, set)| Arc::clone(set)))
    }

    pub fn new(
        files: RuleBook,
        stored: Vec<(StoredRuleFile, Arc<RuleSet>)>,
        store: RuleStore,
        registry: Arc<DeviceRegistry>,
    ) -> Self {
        Self {
            files: RwLock::new(files),
            stored: RwLock::new(stored),
            store,
            registry,
        }
    }

    /// Replaces the rules from the directory and applies the merge to every device.
    pub fn set_files(&self, files: RuleBook) {
        *self.files.write() = files;
        self.apply();
    }

    /// Validates `text` as the rule file of `device_type`, stores it, and applies it.
    ///
    /// # Errors
    ///
    /// Returns [`StoreRuleError`] when the file is invalid, names another device type, or
    /// cannot be stored; the rules in force do not change then.
    pub async fn store(
        &self,
        device_type: &str,
        text: &str,
        by: &str,
    ) -> Result<Arc<RuleSet>, StoreRuleError> {
        let set = rule_file::parse(text, &format!("rules of `{device_type}`"))?;
        if &*set.device_type != device_type {
            return Err(StoreRuleError::WrongDeviceType {
                expected: device_type.to_owned(),
                found: set.device_type.to_string(),
            });
        }
        let file = StoredRuleFile {
            device_type: device_type.to_owned(),
            text: text.to_owned(),
            version: set.version.to_string(),
            updated_at: now_ms(),
            updated_by: by.to_owned(),
        };
        self.store.put(&file).await?;
        let set = Arc::new(set);
        {
            let mut stored = self.stored.write();
            stored.retain(|(existing, _)| existing.device_type != device_type);
            stored.push((file, Arc::clone(&set)));
        }
        self.apply();
        tracing::info!(device.r#type = device_type, rules.version = %set.version, operator = by, "Rule file stored and applied");
        Ok(set)
    }

    /// Removes the stored file of `device_type`, so the directory's rules apply again.
    ///
    /// # Errors
    ///
    /// Returns the database error.
    pub async fn remove(&self, device_type: &str) -> Result<bool, sqlx::Error> {
        let removed = self.store.delete(device_type).await?;
        if removed {
            self.stored
                .write()
                .retain(|(existing, _)| existing.device_type != device_type);
            self.apply();
        }
        Ok(removed)
    }

    /// Returns every rule set in force, by device type.
    pub fn summaries(&self) -> Vec<RuleSetSummary> {
        let stored = self.stored.read();
        let book = Self::merge(&self.files.read(), &stored);
        let mut summaries: Vec<RuleSetSummary> = book
            .sets()
            .map(|set| {
                let stored_file = stored
                    .iter()
                    .find(|(file, _)| *file.device_type == *set.device_type);
                RuleSetSummary {
                    device_type: set.device_type.to_string(),
                    version: set.version.to_string(),
                    source: if stored_file.is_some() {
                        RuleSource::Database
                    } else {
                        RuleSource::Files
                    },
                    updated_by: stored_file.map(|(file, _)| file.updated_by.clone()),
                    rules: summarize(set),
                }
            })
            .collect();
        summaries.sort_by(|left, right| left.device_type.cmp(&right.device_type));
        summaries
    }

    fn apply(&self) {
        let book = Self::merge(&self.files.read(), &self.stored.read());
        self.registry.replace_rules(book);
    }
}

/// Returns one summary line per rule of `set`.
pub fn summarize(set: &RuleSet) -> Vec<RuleSummary> {
    set.rules
        .iter()
        .map(|rule| RuleSummary {
            id: rule.id.to_string(),
            severity: rule.severity.as_str(),
            description: rule.describe(),
        })
        .collect()
}
