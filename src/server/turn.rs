//! Short-lived TURN credentials in the "TURN REST API" scheme
//! (draft-uberti-behave-turn-rest), which coturn checks with
//! `use-auth-secret` + `static-auth-secret`: the username is
//! `EXPIRY:LABEL` (EXPIRY in Unix seconds) and the password is
//! base64(HMAC-SHA1(secret, username)). The TURN server needs no user
//! database; it recomputes the password and refuses expired usernames.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};

use crate::signal::IceServer;

/// Mints credentials for one or more `turn:`/`turns:` URLs sharing a secret.
#[derive(Clone)]
pub struct TurnRest {
    secret: String,
    urls: Vec<String>,
    ttl: Duration,
}

impl std::fmt::Debug for TurnRest {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnRest")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TurnRest {
    /// Credentials for `urls` (`turn:` or `turns:`) under the TURN server's
    /// shared `secret`, each valid for `ttl`.
    pub fn new(secret: String, urls: Vec<String>, ttl: Duration) -> TurnRest {
        TurnRest { secret, urls, ttl }
    }

    /// An ICE server entry valid for the configured time from `now`.
    /// `label` ends the username; coturn logs it, nothing checks it.
    pub fn credentials(&self, now: SystemTime, label: &str) -> IceServer {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let expiry = (now + self.ttl).as_secs();
        let username = format!("{expiry}:{label}");
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(self.secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(username.as_bytes());
        let credential = data_encoding::BASE64.encode(&mac.finalize().into_bytes());
        IceServer {
            urls: self.urls.clone(),
            username: Some(username),
            credential: Some(credential),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_turn_rest_scheme() {
        let turn = TurnRest::new(
            "north".into(),
            vec!["turn:203.0.113.2:3478".into()],
            Duration::from_secs(3600),
        );
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ice = turn.credentials(now, "ferry");
        assert_eq!(ice.urls, ["turn:203.0.113.2:3478"]);
        assert_eq!(ice.username.as_deref(), Some("1700003600:ferry"));
        // python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
        //   b"north", b"1700003600:ferry", hashlib.sha1).digest()).decode())'
        assert_eq!(
            ice.credential.as_deref(),
            Some("5JvzapBvT6k3WLTDIcI9Seft+cI=")
        );
        assert!(!format!("{turn:?}").contains("north"));
    }
}
