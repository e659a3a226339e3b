//! Which redirects a Vault request may follow.
//!
//! A Vault standby node answers 307 with the active node's address, and
//! reqwest follows redirects by default: it drops the `X-Vault-Token`
//! header when the host changes, but re-sends the body on 307/308, and a
//! KV write's body is the secret. So a server (or anyone who can make it
//! answer) could send rumor's secrets, or its token when the host stays the
//! same but the scheme drops to http, to a place nobody configured.
//!
//! The rule: follow a redirect only to the origin (scheme, host, port) of
//! VAULT_ADDR or of a node listed in RUMOR_VAULT_NODES, never from https to
//! http, and at most [`MAX_HOPS`] times. Anything else stops the request
//! with an error naming both hosts and neither the path nor a credential.

use std::fmt;

use reqwest::redirect::{Attempt, Policy};
use reqwest::Url;

/// As many hops as reqwest's default policy allows.
const MAX_HOPS: usize = 10;

/// Where requests may be redirected to: scheme, host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// The origin of a URL; `None` without a host.
    pub(super) fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default(),
        })
    }
}

/// Host and port only: the path may be a secret's name, and the user info
/// a credential.
fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// Why a redirect was not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refused {
    from: String,
    to: String,
    why: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server at {} redirected the request to {}, which {}; nothing was sent there",
            self.from, self.to, self.why
        )
    }
}

impl std::error::Error for Refused {}

/// Whether a redirect from `from` to `to` after `hops` earlier ones may be
/// followed.
pub(super) fn judge(from: &Url, to: &Url, hops: usize, allowed: &[Origin]) -> Result<(), Refused> {
    let refuse = |why| {
        Err(Refused {
            from: host_port(from),
            to: host_port(to),
            why,
        })
    };
    if from.scheme() == "https" && to.scheme() != "https" {
        return refuse("drops from https to plain http");
    }
    if hops >= MAX_HOPS {
        return refuse("is one redirect too many");
    }
    match Origin::of(to) {
        Some(origin) if allowed.contains(&origin) => Ok(()),
        _ => refuse("is not VAULT_ADDR or a node listed in RUMOR_VAULT_NODES"),
    }
}

/// The reqwest policy for `allowed`.
pub(super) fn policy(allowed: Vec<Origin>) -> Policy {
    Policy::custom(move |attempt: Attempt| {
        let previous = attempt.previous();
        let verdict = match previous.last() {
            Some(from) => judge(
                from,
                attempt.url(),
                previous.len().saturating_sub(1),
                &allowed,
            ),
            None => Ok(()),
        };
        match verdict {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

/// The redirect refusal somewhere in an error's chain, if that is why a
/// request failed.
pub(super) fn refusal(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused.to_string());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn only_configured_origins_and_no_downgrade() {
        let allowed: Vec<Origin> = ["https://vault-a:8200", "https://vault-b:8200"]
            .iter()
            .filter_map(|s| Origin::of(&url(s)))
            .collect();
        let from = url("https://vault-a:8200/v1/kv/data/x");
        assert!(judge(
            &from,
            &url("https://vault-b:8200/v1/kv/data/x"),
            0,
            &allowed
        )
        .is_ok());
        assert!(judge(
            &from,
            &url("https://VAULT-A:8200/v1/kv/data/x"),
            0,
            &allowed
        )
        .is_ok());
        let refused = judge(
            &from,
            &url("https://evil:8200/v1/kv/data/x?token=1"),
            0,
            &allowed,
        )
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the server at https://vault-a:8200 redirected the request to https://evil:8200, which is not VAULT_ADDR or a node listed in RUMOR_VAULT_NODES; nothing was sent there"
        );
        assert!(judge(&from, &url("https://vault-a:8201/"), 0, &allowed).is_err());
        assert!(judge(&from, &url("https://vault-a/"), 0, &allowed).is_err());
        let down = judge(&from, &url("http://vault-a:8200/"), 0, &allowed).unwrap_err();
        assert!(
            down.to_string().contains("drops from https to plain http"),
            "{down}"
        );
        assert!(judge(&from, &url("https://vault-b:8200/"), MAX_HOPS, &allowed).is_err());
        let creds = judge(&from, &url("https://user:pw@evil/"), 0, &allowed)
            .unwrap_err()
            .to_string();
        assert!(!creds.contains("pw"), "{creds}");
    }
}
