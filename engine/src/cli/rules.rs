//! `valmetal rules check`: validate rule files.

use std::path::{Path, PathBuf};

use valmetal_actors::rules::{Condition, Direction, RuleSet, rule_file};

/// Validates every file and prints its rules; fails if any file is invalid.
pub fn check(paths: &[PathBuf]) -> anyhow::Result<()> {
    let files = expand(paths)?;
    let mut failures = 0;
    for path in &files {
        match rule_file::load(path) {
            Ok(set) => print_summary(path, &set),
            Err(error) => {
                failures += 1;
                eprintln!("{error}");
            }
        }
    }
    if failures > 0 {
        anyhow::bail!("{failures} of {} rule files are invalid", files.len());
    }
    Ok(())
}

fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<_> = std::fs::read_dir(path)?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|file| {
                    file.extension()
                        .is_some_and(|extension| extension == "toml")
                })
                .collect();
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            anyhow::bail!("rule file {} not found", path.display());
        }
    }
    Ok(files)
}

fn print_summary(path: &Path, set: &RuleSet) {
    println!(
        "{}: device type `{}`, {} rules",
        path.display(),
        set.device_type,
        set.rules.len()
    );
    for rule in &set.rules {
        let condition = match &rule.condition {
            Condition::Threshold(threshold) => {
                let (raise, clear) = match threshold.direction {
                    Direction::Above => ("above", "below"),
                    Direction::Below => ("below", "above"),
                };
                format!(
                    "{} {raise} {}, clears {clear} {}",
                    threshold.key, threshold.raise_at, threshold.clear_at
                )
            }
            Condition::Offline { after } => {
                format!("no frame for {}", humantime::format_duration(*after))
            }
        };
        println!(
            "  {:<20} {:<8} {condition}",
            rule.id,
            rule.severity.as_str()
        );
    }
}
