//! Routing: which recipients hear about an alarm, and on which channels.
//!
//! A route matches an alarm by the farm and device type of its device (from the same
//! `[[farms]]` and `[[device_types]]` patterns the device actors use), its rule and its
//! severity. Groups expand to their members, each recipient's opt-outs apply, and each
//! recipient gets the channels they chose, narrowed to the route's `channels` when set.

use std::collections::HashMap;
use std::sync::Arc;

use valmetal_actors::rules::Severity;
use valmetal_actors::{DeviceTypes, Farms};

use super::config::{NotifyConfig, NotifyOn, RecipientConfig, RouteConfig};

/// One recipient on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub recipient: Arc<str>,
    pub channel: Arc<str>,
}

/// The device facts routing matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    pub device_type: Arc<str>,
    pub farm: Option<Arc<str>>,
}

/// The alarm facts routing matches on.
#[derive(Debug, Clone, Copy)]
pub struct AlarmFacts<'a> {
    pub rule: &'a str,
    pub severity: Severity,
    pub device: &'a DeviceFacts,
}

/// Routes, recipients and groups of the configuration, ready to match alarms.
pub struct Routing {
    config: Arc<NotifyConfig>,
    recipients: HashMap<String, RecipientConfig>,
    groups: HashMap<String, Vec<String>>,
    device_types: DeviceTypes,
    farms: Farms,
}

impl Routing {
    /// Indexes the recipients and groups of `config`; `device_types` and `farms` are the
    /// engine's own id patterns.
    pub fn new(config: Arc<NotifyConfig>, device_types: DeviceTypes, farms: Farms) -> Self {
        let recipients = config
            .recipients
            .iter()
            .map(|recipient| (recipient.id.clone(), recipient.clone()))
            .collect();
        let groups = config
            .groups
            .iter()
            .map(|group| (group.id.clone(), group.members.clone()))
            .collect();
        Self {
            config,
            recipients,
            groups,
            device_types,
            farms,
        }
    }

    /// Returns the device type and farm that the id patterns give `device`.
    pub fn describe(&self, device: &str) -> DeviceFacts {
        DeviceFacts {
            device_type: self.device_types.type_of(device),
            farm: self.farms.farm_of(device),
        }
    }

    /// Returns the recipient of `id`, if the configuration still has it.
    pub fn recipient(&self, id: &str) -> Option<&RecipientConfig> {
        self.recipients.get(id)
    }

    /// Returns the route of `id`, if the configuration still has it.
    pub fn route(&self, id: &str) -> Option<&RouteConfig> {
        self.config.routes.iter().find(|route| route.id == id)
    }

    /// Returns the routes whose farm, device type, rule and severity filters match.
    pub fn matching_routes<'s>(
        &'s self,
        alarm: AlarmFacts<'s>,
    ) -> impl Iterator<Item = &'s RouteConfig> + 's {
        self.config
            .routes
            .iter()
            .filter(move |route| route_matches(route, alarm))
    }

    /// Returns the targets of the given recipient levels of `route`, without duplicates, in
    /// configuration order. Level 0 is the route's `recipients`, level `n` its `n`-th
    /// escalation step.
    pub fn targets(
        &self,
        route: &RouteConfig,
        levels: std::ops::RangeInclusive<usize>,
        alarm: AlarmFacts<'_>,
    ) -> Vec<Target> {
        let mut recipient_ids: Vec<&str> = Vec::new();
        for level in levels {
            let names = match level {
                0 => Some(&route.recipients),
                step => route.escalate.get(step - 1).map(|step| &step.recipients),
            };
            for name in names.into_iter().flatten() {
                for id in self.expand(name) {
                    if !recipient_ids.contains(&id) {
                        recipient_ids.push(id);
                    }
                }
            }
        }
        let mut targets = Vec::new();
        for recipient in recipient_ids
            .into_iter()
            .filter_map(|id| self.recipients.get(id))
        {
            if opted_out(recipient, alarm) {
                continue;
            }
            for channel in &recipient.channels {
                if route.channels.is_empty() || route.channels.contains(channel) {
                    targets.push(Target {
                        recipient: Arc::from(recipient.id.as_str()),
                        channel: Arc::from(channel.as_str()),
                    });
                }
            }
        }
        targets
    }

    /// Returns the recipient ids a recipient or group id stands for.
    fn expand<'s>(&'s self, name: &'s str) -> Vec<&'s str> {
        match self.groups.get(name) {
            Some(members) => members.iter().map(String::as_str).collect(),
            None if self.recipients.contains_key(name) => vec![name],
            None => Vec::new(),
        }
    }
}

fn route_matches(route: &RouteConfig, alarm: AlarmFacts<'_>) -> bool {
    let farm_matches = route.farms.is_empty()
        || alarm
            .device
            .farm
            .as_deref()
            .is_some_and(|farm| route.farms.iter().any(|name| name == farm));
    let type_matches = route.device_types.is_empty()
        || route
            .device_types
            .iter()
            .any(|name| **name == *alarm.device.device_type);
    let rule_matches = route.rules.is_empty() || route.rules.iter().any(|id| id == alarm.rule);
    // `Severity` orders from the most urgent (critical) to the least (info).
    let severe_enough = alarm.severity <= route.min_severity;
    farm_matches && type_matches && rule_matches && severe_enough
}

fn opted_out(recipient: &RecipientConfig, alarm: AlarmFacts<'_>) -> bool {
    let opt_out = &recipient.opt_out;
    opt_out.severities.contains(&alarm.severity)
        || opt_out
            .device_types
            .iter()
            .any(|name| **name == *alarm.device.device_type)
}

/// Returns the transition a route can notify, from its name in the alarm history.
pub fn notify_on(transition: &str) -> Option<NotifyOn> {
    match transition {
        "raised" => Some(NotifyOn::Raised),
        "escalated" => Some(NotifyOn::Escalated),
        "cleared" => Some(NotifyOn::Cleared),
        "acknowledged" => Some(NotifyOn::Acknowledged),
        _ => None,
    }
}

/// Parses a severity as the alarm history stores it.
pub fn parse_severity(text: &str) -> Option<Severity> {
    [
        Severity::Critical,
        Severity::Major,
        Severity::Minor,
        Severity::Warning,
        Severity::Info,
    ]
    .into_iter()
    .find(|severity| severity.as_str() == text)
}

#[cfg(test)]
mod tests {
    use valmetal_actors::{DeviceTypePattern, FarmPattern};

    use super::*;

    fn routing(text: &str) -> Routing {
        let config: NotifyConfig = toml::from_str(text).unwrap();
        assert_eq!(config.problems(), Vec::<String>::new());
        let types = DeviceTypes::new(&[DeviceTypePattern {
            pattern: "feedbin-*".into(),
            device_type: "feed_bin".into(),
        }]);
        let farms = Farms::new(&[FarmPattern {
            pattern: "feedbin-*".into(),
            farm: "odrc".into(),
        }]);
        Routing::new(Arc::new(config), types, farms)
    }

    const CONFIG: &str = r#"
        [[channels]]
        type = "slack"
        name = "slack"
        url = { env = "X" }

        [[channels]]
        type = "webhook"
        name = "hook"
        url = "http://127.0.0.1:9/"
        secret = { env = "Y" }

        [[recipients]]
        id = "farmer"
        channels = ["slack", "hook"]
        opt_out = { severities = ["warning"] }

        [[recipients]]
        id = "tech"
        channels = ["hook"]
        opt_out = { device_types = ["feed_bin"] }

        [[recipients]]
        id = "boss"
        channels = ["slack"]

        [[groups]]
        id = "everyone"
        members = ["farmer", "tech", "boss"]

        [[routes]]
        id = "odrc-bins"
        farms = ["odrc"]
        device_types = ["feed_bin"]
        min_severity = "warning"
        recipients = ["farmer", "everyone"]
        channels = ["hook", "slack"]
        escalate = [{ after = "15m", recipients = ["boss"] }]

        [[routes]]
        id = "machines"
        farms = ["nab"]
        recipients = ["tech"]
    "#;

    fn target(recipient: &str, channel: &str) -> Target {
        Target {
            recipient: Arc::from(recipient),
            channel: Arc::from(channel),
        }
    }

    #[test]
    fn route_matches_farm_type_and_severity() {
        let routing = routing(CONFIG);
        let device = routing.describe("feedbin-001");
        assert_eq!(device.farm.as_deref(), Some("odrc"));
        let alarm = |severity| AlarmFacts {
            rule: "bin_low",
            severity,
            device: &device,
        };
        let ids = |severity| -> Vec<String> {
            routing
                .matching_routes(alarm(severity))
                .map(|route| route.id.clone())
                .collect()
        };
        assert_eq!(ids(Severity::Major), ["odrc-bins"]);
        assert_eq!(ids(Severity::Warning), ["odrc-bins"]);
        assert!(ids(Severity::Info).is_empty());
        let elsewhere = routing.describe("fan-7");
        let other = AlarmFacts {
            rule: "bin_low",
            severity: Severity::Critical,
            device: &elsewhere,
        };
        assert_eq!(routing.matching_routes(other).count(), 0);
    }

    #[test]
    fn targets_expand_groups_and_apply_opt_outs() {
        let routing = routing(CONFIG);
        let device = routing.describe("feedbin-001");
        let route = routing.route("odrc-bins").unwrap();
        let major = AlarmFacts {
            rule: "bin_low",
            severity: Severity::Major,
            device: &device,
        };
        assert_eq!(
            routing.targets(route, 0..=0, major),
            [
                target("farmer", "slack"),
                target("farmer", "hook"),
                target("boss", "slack")
            ],
            "tech opted out of feed bins; each recipient is listed once"
        );
        let warning = AlarmFacts {
            severity: Severity::Warning,
            ..major
        };
        assert_eq!(
            routing.targets(route, 0..=0, warning),
            [target("boss", "slack")]
        );
        assert_eq!(
            routing.targets(route, 1..=1, major),
            [target("boss", "slack")]
        );
    }
}
