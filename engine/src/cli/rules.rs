//! `valmetal rules check` and `valmetal rules backtest`.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::Context;
use chrono::DateTime;
use std::io::Write;

use valmetal_actors::rules::{AlarmEvent, RuleSet, Transition, rule_file};
use valmetal_engine::backtest::{self, CsvLayout};

use super::BacktestArgs;

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
            if found.is_empty() {
                anyhow::bail!("no rule files (*.toml) in {}", path.display());
            }
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
        println!(
            "  {:<20} {:<8} {}",
            rule.id,
            rule.severity.as_str(),
            rule.describe()
        );
    }
}

/// Replays the CSV through the rule file and prints every transition.
pub fn backtest(args: &BacktestArgs) -> anyhow::Result<()> {
    let rules = Arc::new(rule_file::load(&args.rules)?);
    let text = std::fs::read_to_string(&args.data)
        .with_context(|| format!("cannot read --data {}", args.data.display()))?;
    let renames = args
        .renames
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(column, key)| (column.to_owned(), key.to_owned()))
                .with_context(|| format!("invalid --rename `{pair}`; use COLUMN=KEY"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let layout = CsvLayout {
        time_column: args.time_column.clone(),
        device_column: args.device_column.clone(),
        device: args.device.clone(),
        device_width: args.device_width,
        renames,
        skip: args.skip.clone(),
    };
    let frames = backtest::read_frames(&text, &layout)
        .with_context(|| format!("in {}", args.data.display()))?;
    let events = backtest::run(&rules, args.farm.as_deref(), &frames);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        write_json(&mut out, &events)
    } else {
        write_table(&mut out, &events)
    };
    let written = written.and_then(|()| {
        writeln!(
            out,
            "{} frames, {} transitions (rule file version {})",
            frames.len(),
            events.len(),
            rules.version
        )
    });
    match written {
        // A reader that stops early, as `| head` does, is not an error.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn write_json(out: &mut impl Write, events: &[AlarmEvent]) -> std::io::Result<()> {
    for event in events {
        writeln!(
            out,
            "{}",
            serde_json::to_string(event).map_err(std::io::Error::other)?
        )?;
    }
    Ok(())
}

fn write_table(out: &mut impl Write, events: &[AlarmEvent]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<20} {:<16} {:<22} {:<12} {:<9} message",
        "time", "device", "rule", "transition", "severity"
    )?;
    for event in events {
        let alarm = &event.alarm;
        // In a backtest the engine's clock is the recorded time, so these are recorded times,
        // also for transitions a timer made between frames.
        let ts = match event.transition {
            Transition::Cleared => alarm.cleared_at,
            _ => event
                .operator
                .as_ref()
                .map(|action| action.at)
                .or(Some(alarm.raised_at)),
        };
        writeln!(
            out,
            "{:<20} {:<16} {:<22} {:<12} {:<9} {}",
            ts.map(format_time).unwrap_or_default(),
            alarm.device.as_str(),
            &*alarm.rule,
            event.transition.as_str(),
            alarm.severity.as_str(),
            alarm.message
        )?;
    }
    Ok(())
}

fn format_time(millis: i64) -> String {
    DateTime::from_timestamp_millis(millis).map_or_else(
        || millis.to_string(),
        |time| time.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}
