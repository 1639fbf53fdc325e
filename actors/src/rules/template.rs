//! Alarm message templates: `{name}` placeholders filled from the alarm's context.

use std::fmt::Write;

/// Values a message template may refer to.
pub struct TemplateContext<'a> {
    pub device: &'a str,
    pub rule: &'a str,
    pub severity: &'a str,
    pub key: &'a str,
    pub value: &'a str,
    pub limit: &'a str,
}

/// Placeholder names accepted in templates.
pub const PLACEHOLDERS: [&str; 6] = ["device", "rule", "severity", "key", "value", "limit"];

/// Returns the first placeholder in `template` that is not one of [`PLACEHOLDERS`].
pub fn unknown_placeholder(template: &str) -> Option<String> {
    placeholders(template)
        .find(|name| !PLACEHOLDERS.contains(name))
        .map(str::to_owned)
}

/// Fills every known placeholder of `template` from `context`; other text is kept as written.
pub fn render(template: &str, context: &TemplateContext<'_>) -> String {
    let mut output = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        output.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}').map(|end| (&after[..end], end)) {
            Some((name, end)) if lookup(name, context).is_some() => {
                let _ = write!(output, "{}", lookup(name, context).unwrap_or_default());
                rest = &after[end + 1..];
            }
            _ => {
                output.push('{');
                rest = after;
            }
        }
    }
    output.push_str(rest);
    output
}

fn lookup<'a>(name: &str, context: &TemplateContext<'a>) -> Option<&'a str> {
    match name {
        "device" => Some(context.device),
        "rule" => Some(context.rule),
        "severity" => Some(context.severity),
        "key" => Some(context.key),
        "value" => Some(context.value),
        "limit" => Some(context.limit),
        _ => None,
    }
}

fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(name, _)| name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> TemplateContext<'static> {
        TemplateContext {
            device: "feedbin-006",
            rule: "bin_low",
            severity: "major",
            key: "end_weight_kg",
            value: "1.8",
            limit: "2",
        }
    }

    #[test]
    fn render_fills_known_placeholders() {
        let text = render(
            "{device}: {key} {value} below {limit} ({severity})",
            &context(),
        );
        assert_eq!(text, "feedbin-006: end_weight_kg 1.8 below 2 (major)");
    }

    #[test]
    fn render_keeps_unknown_braces() {
        assert_eq!(
            render("{nope} {device} {", &context()),
            "{nope} feedbin-006 {"
        );
    }

    #[test]
    fn unknown_placeholder_is_reported() {
        assert_eq!(
            unknown_placeholder("{device} {vaule}"),
            Some("vaule".to_owned())
        );
        assert_eq!(unknown_placeholder("{device} {value}"), None);
    }
}
