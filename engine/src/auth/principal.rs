//! The caller: the role and farms a verified token grants, and the checks every API handler
//! and WebSocket subscription makes with them.

use std::sync::Arc;

use serde::Serialize;

/// Permission level of a caller, from the token's role claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every farm; may also change rules and the equipment registry.
    Admin,
    /// Reads and acts (acknowledge, shelve, desired values) within the token's farms.
    Operator,
    /// Reads within the token's farms and changes nothing.
    FarmViewer,
}

impl Role {
    /// Parses a role name as tokens carry it: `admin`, `operator`, `farm_viewer` (or
    /// `farm-viewer`, `viewer`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Self::Admin),
            "operator" => Some(Self::Operator),
            "farm_viewer" | "farm-viewer" | "viewer" => Some(Self::FarmViewer),
            _ => None,
        }
    }

    /// Returns the role's name as tokens carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::FarmViewer => "farm_viewer",
        }
    }
}

/// The farms a caller may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FarmScope {
    /// Every farm, and devices that belong to none.
    All,
    /// These farms only; devices without a farm are outside.
    Only(Arc<[Arc<str>]>),
}

impl FarmScope {
    /// Returns true when a device or record of `farm` is inside the scope.
    pub fn contains(&self, farm: Option<&str>) -> bool {
        match (self, farm) {
            (Self::All, _) => true,
            (Self::Only(farms), Some(farm)) => farms.iter().any(|allowed| &**allowed == farm),
            (Self::Only(_), None) => false,
        }
    }

    /// Returns the farm ids of a limited scope, `None` for every farm.
    pub fn farms(&self) -> Option<&[Arc<str>]> {
        match self {
            Self::All => None,
            Self::Only(farms) => Some(farms),
        }
    }
}

/// A caller whose token was verified, kept in the request's extensions by the auth layer.
///
/// Handlers take it with `axum::Extension<Principal>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The token's `sub` (or the user name the local issuer signed).
    pub subject: String,
    /// A readable name for the alarm history and work orders: `email`, `name` or the subject.
    pub name: String,
    pub role: Role,
    pub farms: FarmScope,
}

impl Principal {
    /// Returns true when the caller may read records of `farm`.
    pub fn can_see(&self, farm: Option<&str>) -> bool {
        self.role == Role::Admin || self.farms.contains(farm)
    }

    /// Returns true when the caller may act on records of `farm`: an admin anywhere, an
    /// operator inside their farms.
    pub fn can_change(&self, farm: Option<&str>) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Operator => self.farms.contains(farm),
            Role::FarmViewer => false,
        }
    }

    /// Returns true for an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Returns the caller used when authentication is turned off: an admin of every farm.
    pub fn unauthenticated() -> Self {
        Self {
            subject: "anonymous".to_owned(),
            name: "anonymous".to_owned(),
            role: Role::Admin,
            farms: FarmScope::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, farms: &[&str]) -> Principal {
        Principal {
            subject: "user".into(),
            name: "user".into(),
            role,
            farms: FarmScope::Only(farms.iter().map(|farm| Arc::from(*farm)).collect()),
        }
    }

    #[test]
    fn viewer_sees_only_own_farm() {
        let viewer = principal(Role::FarmViewer, &["north"]);
        assert!(viewer.can_see(Some("north")));
        assert!(!viewer.can_see(Some("south")));
        assert!(!viewer.can_see(None));
        assert!(!viewer.can_change(Some("north")));
    }

    #[test]
    fn operator_changes_only_own_farm() {
        let operator = principal(Role::Operator, &["north"]);
        assert!(operator.can_change(Some("north")));
        assert!(!operator.can_change(Some("south")));
    }

    #[test]
    fn admin_sees_and_changes_every_farm() {
        let admin = principal(Role::Admin, &[]);
        assert!(admin.can_see(Some("south")));
        assert!(admin.can_see(None));
        assert!(admin.can_change(None));
    }

    #[test]
    fn role_parses_token_spellings() {
        assert_eq!(Role::parse("Farm-Viewer"), Some(Role::FarmViewer));
        assert_eq!(Role::parse("root"), None);
    }
}
