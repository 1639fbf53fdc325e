//! Decisions on the records a `RejectedRecordsException` names.
//!
//! Timestream names a rejected record by its index in the request and gives a free-text
//! reason, plus `ExistingVersion` when the table contains a record of the same series, time and
//! measure name with a different value. The reason texts are not part of the API contract,
//! so the version is trusted first and the text is only searched for a few words.

use chrono::DateTime;

/// The decision for one rejected record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The table contains a different value under the same version. The record is a
    /// correction, so it is sent again under `version`.
    Rewrite { version: i64 },
    /// The table contains a newer version of the record, which must stay. `existing` is that
    /// version when Timestream returned it.
    Superseded { existing: Option<i64> },
    /// The store will never accept the record.
    Refuse {
        reason: &'static str,
        detail: String,
    },
}

/// Judges one rejected record: its `version` and device time `ts`, the `existing_version` and
/// `reason` Timestream gave, and the engine time `now` in milliseconds.
pub fn judge(
    version: i64,
    ts: i64,
    existing_version: Option<i64>,
    reason: Option<&str>,
    now: i64,
) -> Verdict {
    let text = reason.unwrap_or("no reason given");
    match existing_version {
        Some(existing) if existing > version => {
            return Verdict::Superseded {
                existing: Some(existing),
            };
        }
        Some(existing) if existing == version => {
            return Verdict::Rewrite {
                version: existing.saturating_add(1),
            };
        }
        _ => {}
    }

    let lower = text.to_ascii_lowercase();
    if is_outside_retention(&lower) {
        let reason = if ts > now { "in_future" } else { "too_old" };
        return Verdict::Refuse {
            reason,
            detail: format!(
                "Timestream rejected the record at {}: {text}",
                describe_time(ts)
            ),
        };
    }
    if existing_version.is_none() && lower.contains("lower than the existing version") {
        return Verdict::Superseded { existing: None };
    }
    if existing_version.is_none() && lower.contains("already exists") {
        // A conflict at the same version may come without ExistingVersion. One version
        // higher is then enough to replace the stored value.
        return Verdict::Rewrite {
            version: version.saturating_add(1),
        };
    }
    let reason = if lower.contains("exceed") || lower.contains("limit") {
        "limit_exceeded"
    } else {
        "rejected"
    };
    Verdict::Refuse {
        reason,
        detail: format!("Timestream rejected the record: {text}"),
    }
}

// NOTE: Timestream documents this cause ("outside the retention duration of the memory
// store") but not its exact text, so these phrases are a guess. A reason worded otherwise is
// refused as `rejected`, still with its text in the dead-letter file.
fn is_outside_retention(lower: &str) -> bool {
    [
        "retention",
        "time range",
        "memory store",
        "too old",
        "ingestion window",
    ]
    .iter()
    .any(|phrase| lower.contains(phrase))
}

/// Formats device time `ts` (milliseconds) for messages, as RFC 3339 with the raw value.
pub fn describe_time(ts: i64) -> String {
    match DateTime::from_timestamp_millis(ts) {
        Some(time) => format!("{} ({ts} ms)", time.to_rfc3339()),
        None => format!("{ts} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn same_existing_version_is_rewritten_one_higher() {
        let reason = "A record already exists with the same time, dimensions, measure name, and \
                      record version.";
        let verdict = judge(40, NOW - 1000, Some(40), Some(reason), NOW);
        assert_eq!(verdict, Verdict::Rewrite { version: 41 });
    }

    #[test]
    fn higher_existing_version_supersedes() {
        let reason = "The record version 2 is lower than the existing version 200.";
        let verdict = judge(2, NOW - 1000, Some(200), Some(reason), NOW);
        assert_eq!(
            verdict,
            Verdict::Superseded {
                existing: Some(200)
            }
        );
        let verdict = judge(2, NOW - 1000, None, Some(reason), NOW);
        assert_eq!(verdict, Verdict::Superseded { existing: None });
    }

    #[test]
    fn conflict_without_existing_version_is_rewritten() {
        let reason = "A record already exists with the same time, dimensions, measure name, and \
                      record version. A higher record version must be specified.";
        assert_eq!(
            judge(7, NOW, None, Some(reason), NOW),
            Verdict::Rewrite { version: 8 }
        );
    }

    #[test]
    fn outside_memory_store_is_too_old() {
        let reason = "The record timestamp is outside the time range of the memory store \
                      retention.";
        let Verdict::Refuse { reason, detail } =
            judge(1, NOW - 86_400_000, None, Some(reason), NOW)
        else {
            panic!("expected a refusal");
        };
        assert_eq!(reason, "too_old");
        assert!(detail.contains("memory store"), "{detail}");
        assert!(detail.contains("2023-11-13T22:13:20"), "{detail}");
    }

    #[test]
    fn future_time_is_refused_as_future() {
        let reason = "The record timestamp is outside the time range of the ingestion window.";
        let verdict = judge(1, NOW + 3_600_000, None, Some(reason), NOW);
        assert!(matches!(
            verdict,
            Verdict::Refuse {
                reason: "in_future",
                ..
            }
        ));
    }

    #[test]
    fn other_reasons_are_refused_with_the_text() {
        let verdict = judge(1, NOW, None, Some("Measure name exceeds the limit"), NOW);
        let Verdict::Refuse { reason, detail } = verdict else {
            panic!("expected a refusal");
        };
        assert_eq!(reason, "limit_exceeded");
        assert!(detail.contains("Measure name exceeds the limit"));

        let verdict = judge(1, NOW, None, None, NOW);
        assert!(matches!(
            verdict,
            Verdict::Refuse {
                reason: "rejected",
                ..
            }
        ));
    }
}
