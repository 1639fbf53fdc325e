//! What one dashboard connection may see: the farms its token grants and when the token
//! expires. The HTTP layer in front of `/ws` verifies the token and hands the gateway a
//! [`ClientAccess`] as a request extension; the gateway itself never reads tokens.

use std::sync::Arc;

/// The devices a client may see and how long it may stay connected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAccess {
    /// Farms whose devices the client may see. `None` is every device, with or without a farm.
    pub farms: Option<Arc<[Arc<str>]>>,
    /// When the token expires, in milliseconds since the Unix epoch; the connection is
    /// closed with code [`TOKEN_EXPIRED_CLOSE_CODE`] then. `None` never expires.
    pub expires_at: Option<i64>,
}

/// WebSocket close code sent when the client's token expires: the 4000 range is the
/// application's, and 4401 mirrors HTTP 401 so a dashboard can tell it must sign in again.
pub const TOKEN_EXPIRED_CLOSE_CODE: u16 = 4401;

impl ClientAccess {
    /// Access to every device, without expiry.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Returns true when a device of `farm` is visible to the client.
    pub fn sees(&self, farm: Option<&str>) -> bool {
        match (&self.farms, farm) {
            (None, _) => true,
            (Some(farms), Some(farm)) => farms.iter().any(|allowed| &**allowed == farm),
            (Some(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_access_hides_other_and_unassigned_farms() {
        let access = ClientAccess {
            farms: Some(vec![Arc::from("north")].into()),
            expires_at: None,
        };
        assert!(access.sees(Some("north")));
        assert!(!access.sees(Some("south")));
        assert!(!access.sees(None));
        assert!(ClientAccess::everything().sees(None));
    }
}
