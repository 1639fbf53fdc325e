//! The rule files shipped with the engine, used when `rules.dir` is not set.

use std::path::Path;

use valmetal_actors::rules::{RuleBook, RuleFileError, rule_file};

/// Rule files compiled into the binary, by file name.
pub const BUNDLED_RULE_FILES: [(&str, &str); 2] = [
    ("feed_bin.toml", include_str!("../../rules/feed_bin.toml")),
    ("machine.toml", include_str!("../../rules/machine.toml")),
];

/// Returns the bundled rule book.
///
/// # Errors
///
/// Returns [`RuleFileError`] if a bundled file is invalid, which the tests rule out.
pub fn bundled() -> Result<RuleBook, RuleFileError> {
    let sets = BUNDLED_RULE_FILES
        .iter()
        .map(|(name, text)| rule_file::parse(text, &format!("bundled {name}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RuleBook::from_sets(sets))
}

/// Loads the rule files of `directory`, or the bundled ones when it is `None`.
///
/// # Errors
///
/// Returns [`RuleFileError`] naming the file and every problem in it.
pub fn load(directory: Option<&Path>) -> Result<RuleBook, RuleFileError> {
    match directory {
        Some(directory) => RuleBook::load_directory(directory),
        None => bundled(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_rules_are_valid() {
        let book = bundled().unwrap();
        assert_eq!(book.rules_for("feed_bin").rules.len(), 2);
        assert_eq!(book.rules_for("machine").rules.len(), 4);
    }
}
