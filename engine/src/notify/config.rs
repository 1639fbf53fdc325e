//! The `[notify]` section: channels, recipients, groups, routing rules, noise control and
//! maintenance windows. Secrets are named here (an environment variable or a file) and read
//! at start; `docs/notifications.md` is the reference of every key.

use std::collections::HashSet;
use std::time::Duration;

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use valmetal_actors::rules::Severity;

use crate::secret::SecretSource;
use crate::sinks::backoff::Backoff;

/// Notification settings. The engine notifies only when the section is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// How often new alarm events, due reminders and held notifications are looked for, and
    /// due notifications sent. Default 1 s, at least 10 ms.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Delivery attempts of one notification before it is marked `dead`. Default 10, 1 to 100.
    pub max_attempts: u32,
    /// Wait before each new attempt: attempt `n` waits a random time up to `first × 2^n`, at
    /// most `max`. Default 2 s and 10 min.
    pub backoff: Backoff,
    /// Maximum duration of one delivery before it counts as failed. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// Notifications sent at once. Default 8, at least 1.
    pub concurrency: usize,
    /// Address of the dashboard, such as `https://valmetal.example.com/`, for links in the
    /// messages. Unset: messages carry no link.
    pub dashboard_url: Option<String>,
    pub channels: Vec<ChannelConfig>,
    pub recipients: Vec<RecipientConfig>,
    pub groups: Vec<GroupConfig>,
    pub routes: Vec<RouteConfig>,
    /// Windows during which no notification about a farm's alarms is sent.
    pub maintenance: Vec<MaintenanceWindow>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            max_attempts: 10,
            backoff: Backoff {
                first: Duration::from_secs(2),
                max: Duration::from_secs(600),
            },
            send_timeout: Duration::from_secs(10),
            concurrency: 8,
            dashboard_url: None,
            channels: Vec::new(),
            recipients: Vec::new(),
            groups: Vec::new(),
            routes: Vec::new(),
            maintenance: Vec::new(),
        }
    }
}

/// One way of sending: an SMTP server, a webhook or a Slack-compatible incoming webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelConfig {
    Email(EmailChannelConfig),
    Webhook(WebhookChannelConfig),
    Slack(SlackChannelConfig),
}

impl ChannelConfig {
    /// Returns the name that recipients and routes use.
    pub fn name(&self) -> &str {
        match self {
            Self::Email(email) => &email.name,
            Self::Webhook(webhook) => &webhook.name,
            Self::Slack(slack) => &slack.name,
        }
    }
}

/// Security of the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text, for a relay on the same host or network only.
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// An SMTP server that sends email to each recipient's `email` address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannelConfig {
    pub name: String,
    /// SMTP server host name or address.
    pub host: String,
    /// SMTP port. Default by `tls`: 25 for `none`, 587 for `starttls`, 465 for `tls`.
    pub port: Option<u16>,
    /// Default `starttls`.
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    /// User name for SMTP AUTH; unset sends without authentication.
    pub username: Option<String>,
    /// Source of the SMTP password, needed with `username`.
    pub password: Option<SecretSource>,
    /// Sender mailbox, such as `Valmetal alarms <alarms@example.com>`.
    pub from: String,
}

fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}

/// A generic webhook: a JSON POST signed with HMAC-SHA256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannelConfig {
    pub name: String,
    /// URL the JSON body is posted to, `http://` or `https://`.
    pub url: String,
    /// Source of the signing key.
    pub secret: SecretSource,
}

/// A Slack-compatible incoming webhook, posted `{"text": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackChannelConfig {
    pub name: String,
    /// Source of the webhook URL, a secret because the URL itself is the credential.
    pub url: SecretSource,
    /// Also send Block Kit `blocks` (a header and fields). Default false.
    #[serde(default)]
    pub blocks: bool,
}

/// A person, team or system that receives notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientConfig {
    /// Id used by groups, routes, the outbox and the API.
    pub id: String,
    /// Name shown in messages. Default: the id.
    pub name: Option<String>,
    /// Email address, needed when `channels` names an email channel.
    pub email: Option<String>,
    /// The channels this recipient chose, by name; at least one.
    pub channels: Vec<String>,
    #[serde(default)]
    pub opt_out: OptOut,
    pub rate_limit: Option<RateLimit>,
    pub quiet_hours: Option<QuietHours>,
}

impl RecipientConfig {
    /// Returns the name shown in messages.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// Alarms a recipient never hears about, whatever the routes select.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptOut {
    /// Device types, as `[[device_types]]` gives them.
    pub device_types: Vec<String>,
    pub severities: Vec<Severity>,
}

/// A limit of `max` notifications per `per` for one recipient on one channel. The rest are
/// held back and listed in one digest once the window allows another message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// At least 1.
    pub max: u32,
    /// Length of the sliding window, such as `1h`; at least 1 s.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
    /// Severities that are never held back by the limit. Default `["critical"]`.
    #[serde(default = "default_pass")]
    pub exempt: Vec<Severity>,
}

/// Daily hours during which a recipient gets only the `allow` severities; what is held back is
/// summarized in one message when the hours end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Local start time, `HH:MM`.
    pub start: NaiveTime,
    /// Local end time, `HH:MM`; before `start` when the hours span midnight.
    pub end: NaiveTime,
    /// IANA zone such as `Europe/Paris`, or a fixed offset such as `+02:00`. Default `UTC`.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Severities sent during the quiet hours. Default `["critical"]`.
    #[serde(default = "default_pass")]
    pub allow: Vec<Severity>,
}

fn default_pass() -> Vec<Severity> {
    vec![Severity::Critical]
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

/// A named set of recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub id: String,
    /// Recipient ids.
    pub members: Vec<String>,
}

/// Alarm transitions a route can notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    Raised,
    Escalated,
    Cleared,
    Acknowledged,
}

impl NotifyOn {
    /// Returns the transition's name as the alarm history stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Escalated => "escalated",
            Self::Cleared => "cleared",
            Self::Acknowledged => "acknowledged",
        }
    }
}

/// A routing rule from alarms to recipients. Every route whose filters match an alarm applies,
/// and one recipient gets one message per alarm transition and channel however many routes
/// name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique id, kept with pending reminders.
    pub id: String,
    /// Farms whose devices match; empty matches every device, with or without a farm.
    #[serde(default)]
    pub farms: Vec<String>,
    /// Device types that match; empty matches every type.
    #[serde(default)]
    pub device_types: Vec<String>,
    /// Alarm rule ids that match; empty matches every rule.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Minimum severity that matches, `info` being the minimum. Default `info` (every alarm).
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Transitions that notify. Default `["raised", "escalated"]`.
    #[serde(default = "default_notify_on")]
    pub on: Vec<NotifyOn>,
    /// Recipient or group ids of the first level.
    pub recipients: Vec<String>,
    /// Channels this route may use; empty lets each recipient use all of their own.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Further levels, each notified when the alarm is still unacknowledged `after` its raise.
    #[serde(default)]
    pub escalate: Vec<EscalationStep>,
    /// Interval of reminders to everyone notified so far, until the alarm is acknowledged or
    /// cleared. Unset: no reminders.
    #[serde(default, with = "humantime_serde")]
    pub remind_every: Option<Duration>,
    /// Reminders at most per alarm. Unset: until acknowledged or cleared.
    pub max_reminders: Option<u32>,
}

fn default_min_severity() -> Severity {
    Severity::Info
}

fn default_notify_on() -> Vec<NotifyOn> {
    vec![NotifyOn::Raised, NotifyOn::Escalated]
}

/// One level of escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    /// Time since the raise, such as `15m`.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    /// Recipient or group ids notified at this level.
    pub recipients: Vec<String>,
}

/// A time window during which no notification about a farm's alarms is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub farm: String,
    /// Start, RFC 3339.
    pub from: chrono::DateTime<chrono::FixedOffset>,
    /// End, RFC 3339, after `from`.
    pub until: chrono::DateTime<chrono::FixedOffset>,
}

// === impl NotifyConfig ===

impl NotifyConfig {
    /// Lists every invalid value and dangling reference, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.bound_problems();

        let channels = unique_ids(
            self.channels.iter().map(ChannelConfig::name),
            "notify.channels",
            &mut problems,
        );
        let recipients = unique_ids(
            self.recipients
                .iter()
                .map(|recipient| recipient.id.as_str()),
            "notify.recipients",
            &mut problems,
        );
        let groups = unique_ids(
            self.groups.iter().map(|group| group.id.as_str()),
            "notify.groups",
            &mut problems,
        );
        unique_ids(
            self.routes.iter().map(|route| route.id.as_str()),
            "notify.routes",
            &mut problems,
        );

        for id in recipients.intersection(&groups) {
            problems.push(format!(
                "`{id}` is both a recipient and a group id in `notify`; rename one"
            ));
        }
        for channel in &self.channels {
            problems.extend(channel_problems(channel));
        }
        for recipient in &self.recipients {
            problems.extend(self.recipient_problems(recipient, &channels));
        }
        for group in &self.groups {
            for member in group
                .members
                .iter()
                .filter(|id| !recipients.contains(id.as_str()))
            {
                problems.push(format!(
                    "`notify.groups` `{}` names `{member}`, which is no recipient",
                    group.id
                ));
            }
        }

        for route in &self.routes {
            problems.extend(route_problems(route, &recipients, &groups, &channels));
        }
        for window in &self.maintenance {
            if window.until <= window.from {
                problems.push(format!(
                    "`notify.maintenance` of farm `{}` ends before it starts",
                    window.farm
                ));
            }
        }
        problems
    }

    fn bound_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.poll_interval < Duration::from_millis(10) {
            problems.push("`notify.poll_interval` must be at least 10ms".to_owned());
        }
        if !(1..=100).contains(&self.max_attempts) {
            problems.push(format!(
                "`notify.max_attempts` is {}; use 1 to 100",
                self.max_attempts
            ));
        }
        if self.backoff.first.is_zero() || self.backoff.max < self.backoff.first {
            problems.push(
                "`notify.backoff` needs `first` above zero and `max` at least `first`".to_owned(),
            );
        }
        if self.send_timeout < Duration::from_millis(100) {
            problems.push("`notify.send_timeout` must be at least 100ms".to_owned());
        }
        if self.concurrency == 0 {
            problems.push("`notify.concurrency` must be at least 1".to_owned());
        }
        problems
    }

    fn recipient_problems(
        &self,
        recipient: &RecipientConfig,
        channels: &HashSet<&str>,
    ) -> Vec<String> {
        let id = &recipient.id;
        let mut problems = Vec::new();
        if recipient.channels.is_empty() {
            problems.push(format!(
                "`notify.recipients` `{id}` chose no `channels`; name at least one"
            ));
        }
        for name in &recipient.channels {
            if !channels.contains(name.as_str()) {
                problems.push(format!(
                    "`notify.recipients` `{id}` names channel `{name}`, which is not in `notify.channels`"
                ));
            }
            let is_email = self.channels.iter().any(
                |channel| matches!(channel, ChannelConfig::Email(email) if &email.name == name),
            );
            if is_email && recipient.email.as_deref().is_none_or(str::is_empty) {
                problems.push(format!(
                    "`notify.recipients` `{id}` uses email channel `{name}` but has no `email`"
                ));
            }
        }
        let bad_limit = |limit: &RateLimit| limit.max == 0 || limit.per < Duration::from_secs(1);
        if recipient.rate_limit.as_ref().is_some_and(bad_limit) {
            problems.push(format!(
                "`notify.recipients` `{id}` `rate_limit` needs `max` at least 1 and `per` at least 1s"
            ));
        }
        if let Some(quiet) = &recipient.quiet_hours {
            if quiet.start == quiet.end {
                problems.push(format!(
                    "`notify.recipients` `{id}` `quiet_hours` start and end at the same time"
                ));
            }
            if let Err(error) = super::noise::Zone::parse(&quiet.time_zone) {
                problems.push(format!(
                    "`notify.recipients` `{id}` `quiet_hours.time_zone`: {error}"
                ));
            }
        }
        problems
    }
}

fn unique_ids<'a>(
    ids: impl Iterator<Item = &'a str>,
    section: &str,
    problems: &mut Vec<String>,
) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    for id in ids {
        if id.trim().is_empty() || id.len() > 128 {
            problems.push(format!("`{section}` needs ids of 1 to 128 characters"));
        } else if !seen.insert(id) {
            problems.push(format!("`{section}` has `{id}` twice; ids must be unique"));
        }
    }
    seen
}

fn channel_problems(channel: &ChannelConfig) -> Vec<String> {
    let name = channel.name();
    let mut problems = Vec::new();
    match channel {
        ChannelConfig::Email(email) => {
            if email.host.trim().is_empty() {
                problems.push(format!("`notify.channels` `{name}` needs a `host`"));
            }
            if email.from.parse::<lettre::message::Mailbox>().is_err() {
                problems.push(format!(
                    "`notify.channels` `{name}` `from` \"{}\" is not a mailbox such as `Alarms <alarms@example.com>`",
                    email.from
                ));
            }
            if email.username.is_some() != email.password.is_some() {
                problems.push(format!(
                    "`notify.channels` `{name}` needs both `username` and `password`, or neither"
                ));
            }
            if let Some(problem) = email
                .password
                .as_ref()
                .and_then(|source| source.problem(&format!("notify.channels.{name}.password")))
            {
                problems.push(problem);
            }
        }
        ChannelConfig::Webhook(webhook) => {
            if !matches!(url::Url::parse(&webhook.url), Ok(url) if matches!(url.scheme(), "http" | "https"))
            {
                problems.push(format!(
                    "`notify.channels` `{name}` `url` \"{}\" is not an http:// or https:// URL",
                    webhook.url
                ));
            }
            if let Some(problem) = webhook
                .secret
                .problem(&format!("notify.channels.{name}.secret"))
            {
                problems.push(problem);
            }
        }
        ChannelConfig::Slack(slack) => {
            if let Some(problem) = slack.url.problem(&format!("notify.channels.{name}.url")) {
                problems.push(problem);
            }
        }
    }
    problems
}

fn route_problems(
    route: &RouteConfig,
    recipients: &HashSet<&str>,
    groups: &HashSet<&str>,
    channels: &HashSet<&str>,
) -> Vec<String> {
    let id = &route.id;
    let mut problems = Vec::new();
    if route.recipients.is_empty() {
        problems.push(format!("`notify.routes` `{id}` names no `recipients`"));
    }
    if route.on.is_empty() {
        problems.push(format!("`notify.routes` `{id}` has an empty `on`"));
    }

    let levels = std::iter::once(&route.recipients)
        .chain(route.escalate.iter().map(|step| &step.recipients));
    for target in levels.flatten() {
        if !recipients.contains(target.as_str()) && !groups.contains(target.as_str()) {
            problems.push(format!(
                "`notify.routes` `{id}` names `{target}`, which is neither a recipient nor a group"
            ));
        }
    }
    for name in route
        .channels
        .iter()
        .filter(|name| !channels.contains(name.as_str()))
    {
        problems.push(format!(
            "`notify.routes` `{id}` names channel `{name}`, which is not in `notify.channels`"
        ));
    }

    let afters: Vec<Duration> = route.escalate.iter().map(|step| step.after).collect();
    if afters.iter().any(Duration::is_zero) || afters.windows(2).any(|pair| pair[0] >= pair[1]) {
        problems.push(format!(
            "`notify.routes` `{id}` `escalate` needs `after` above zero and increasing"
        ));
    }
    if route
        .remind_every
        .is_some_and(|every| every < Duration::from_secs(1))
    {
        problems.push(format!(
            "`notify.routes` `{id}` `remind_every` must be at least 1s"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NotifyConfig {
        toml::from_str(text).unwrap()
    }

    const EXAMPLE: &str = r#"
        [[channels]]
        type = "email"
        name = "email"
        host = "smtp.example.com"
        from = "Alarms <alarms@example.com>"

        [[channels]]
        type = "webhook"
        name = "ops"
        url = "https://hooks.example.com/valmetal"
        secret = { env = "VALMETAL_OPS_WEBHOOK_SECRET" }

        [[recipients]]
        id = "alice"
        email = "alice@example.com"
        channels = ["email"]
        quiet_hours = { start = "22:00", end = "06:30", time_zone = "Europe/Paris" }

        [[recipients]]
        id = "ops"
        channels = ["ops"]
        rate_limit = { max = 10, per = "1h" }

        [[groups]]
        id = "managers"
        members = ["alice"]

        [[routes]]
        id = "odrc"
        farms = ["odrc"]
        min_severity = "major"
        recipients = ["ops"]
        escalate = [{ after = "15m", recipients = ["managers"] }]
        remind_every = "30m"
    "#;

    #[test]
    fn example_is_valid() {
        let config = parse(EXAMPLE);
        assert_eq!(config.problems(), Vec::<String>::new());
        assert_eq!(config.routes[0].on, [NotifyOn::Raised, NotifyOn::Escalated]);
        assert_eq!(
            config.recipients[1].rate_limit.as_ref().unwrap().exempt,
            [Severity::Critical]
        );
    }

    #[test]
    fn problems_list_every_dangling_reference() {
        let mut config = parse(EXAMPLE);
        config.recipients[0].email = None;
        config.routes[0].recipients.push("nobody".into());
        config.routes[0].channels.push("pager".into());
        config.groups[0].members.push("ghost".into());
        let problems = config.problems();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("has no `email`"));
        assert!(problems[1].contains("`ghost`"));
        assert!(problems[2].contains("`nobody`"));
        assert!(problems[3].contains("channel `pager`"));
    }

    #[test]
    fn unknown_channel_key_rejected() {
        let error = toml::from_str::<NotifyConfig>(
            "[[channels]]\ntype = \"slack\"\nname = \"s\"\nurl = { env = \"X\" }\ncolour = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("colour"), "{error}");
    }
}
