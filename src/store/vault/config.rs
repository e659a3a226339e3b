//! Where the Vault client's settings come from: the same environment
//! variables the `vault` and `bao` CLIs read, so an operator's shell that
//! works with `vault kv get` works with rumor unchanged.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::store::StoreError;

/// Retries after a connection error or a 5xx answer, unless overridden.
/// The pauses before them (100 ms, doubling) add up to 6.3 s, past a
/// leader election's 3 s or so; a lone stopped server is reported after
/// those 6.3 s.
const DEFAULT_RETRIES: u32 = 6;

/// How long one request may take before it counts as unreachable.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach and authenticate to a Vault (or OpenBao) server.
///
/// `Debug` prints everything but the token and the AppRole secret id.
pub struct VaultConfig {
    /// `https://vault.example.com:8200`.
    pub addr: String,
    /// The client token; empty when logging in with AppRole instead.
    pub token: Zeroizing<String>,
    /// The Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// A PEM file with the CA that signed the server's certificate.
    pub ca_cert: Option<PathBuf>,
    /// How many times to retry a request after a connection error or a 5xx.
    pub retries: u32,
    /// How long one request may take.
    pub timeout: Duration,
    /// AppRole credentials to log in with when there is no token.
    pub approle: Option<AppRole>,
    /// Other nodes of the cluster (`https://vault-2:8200`) that a standby's
    /// redirect may lead to; redirects anywhere else are refused.
    pub nodes: Vec<String>,
}

/// AppRole credentials: the role id is an identifier, the secret id a secret.
pub struct AppRole {
    /// The auth mount, `approle` unless the server mounts it elsewhere.
    pub mount: String,
    /// The role id.
    pub role_id: String,
    /// The secret id.
    pub secret_id: Zeroizing<String>,
}

impl VaultConfig {
    /// A configuration for `addr` with `token` and the defaults.
    pub fn new(addr: impl Into<String>, token: impl Into<String>) -> Self {
        VaultConfig {
            addr: addr.into(),
            token: Zeroizing::new(token.into()),
            namespace: None,
            ca_cert: None,
            retries: DEFAULT_RETRIES,
            timeout: DEFAULT_TIMEOUT,
            approle: None,
            nodes: Vec::new(),
        }
    }

    /// Reads the configuration like the vault CLI does: `VAULT_ADDR` (else
    /// `BAO_ADDR`), `VAULT_TOKEN` (else `BAO_TOKEN`, else `~/.vault-token`),
    /// `VAULT_CACERT`, `VAULT_NAMESPACE`; `VAULT_ROLE_ID`, `VAULT_SECRET_ID`
    /// and `VAULT_APPROLE_MOUNT` for AppRole; `RUMOR_VAULT_RETRIES`;
    /// `RUMOR_VAULT_NODES`, the cluster's other nodes, comma-separated.
    pub fn from_env() -> Result<Self, StoreError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::from_vars(|name| std::env::var(name).ok(), home.as_deref())
    }

    /// [`VaultConfig::from_env`] over any variable lookup and home directory,
    /// so callers and tests need not touch the process environment.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Self, StoreError> {
        // An exported-but-empty variable means unset, as in the vault CLI.
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let (variable, addr) = var("VAULT_ADDR")
            .map(|a| ("VAULT_ADDR", a))
            .or_else(|| var("BAO_ADDR").map(|a| ("BAO_ADDR", a)))
            .ok_or_else(|| StoreError::Unreachable {
                store: "Vault".to_owned(),
                reason:
                    "VAULT_ADDR is not set; export VAULT_ADDR=https://<server>:8200 (or BAO_ADDR)"
                        .to_owned(),
            })?;
        check_addr(variable, &addr)?;
        let mut config = VaultConfig::new(addr.trim(), String::new());
        config.namespace = var("VAULT_NAMESPACE");
        if let Some(nodes) = var("RUMOR_VAULT_NODES") {
            check_addr("RUMOR_VAULT_NODES", &nodes)?;
            config.nodes = nodes
                .split([',', ' '])
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
        }
        config.ca_cert = var("VAULT_CACERT").map(PathBuf::from);
        if let Some(retries) = var("RUMOR_VAULT_RETRIES") {
            config.retries = retries.trim().parse().map_err(|_| {
                config.error(
                    "RUMOR_VAULT_RETRIES",
                    format!("\"{retries}\" is not a count; set it to a whole number such as 6"),
                )
            })?;
        }
        if let Some(token) = var("VAULT_TOKEN").or_else(|| var("BAO_TOKEN")) {
            config.token = Zeroizing::new(token.trim().to_owned());
        } else if let (Some(role_id), Some(secret_id)) =
            (var("VAULT_ROLE_ID"), var("VAULT_SECRET_ID"))
        {
            config.approle = Some(AppRole {
                mount: var("VAULT_APPROLE_MOUNT").unwrap_or_else(|| "approle".to_owned()),
                role_id: role_id.trim().to_owned(),
                secret_id: Zeroizing::new(secret_id.trim().to_owned()),
            });
        } else if let Some(token) = home
            .map(|h| h.join(".vault-token"))
            .and_then(|p| read_token_file(&p))
        {
            config.token = token;
        } else {
            return Err(config.error(
                "VAULT_TOKEN",
                "no token; export VAULT_TOKEN (or BAO_TOKEN), run `vault login`, or export VAULT_ROLE_ID and VAULT_SECRET_ID".to_owned(),
            ));
        }
        Ok(config)
    }

    /// `Vault at <addr>`, the store's name in messages, without any
    /// credentials the address carries.
    pub fn describe(&self) -> String {
        format!("Vault at {}", redact_addr(&self.addr))
    }

    fn error(&self, path: &str, reason: String) -> StoreError {
        StoreError::Other {
            store: self.describe(),
            path: path.to_owned(),
            reason,
        }
    }
}

/// Refuses an address with a control character. A newline in VAULT_ADDR
/// (a pasted `$(cat file)` gone wrong, or a planted value) would end up in
/// every message that names the server and could forge a line of output.
pub(super) fn check_addr(variable: &'static str, addr: &str) -> Result<(), StoreError> {
    if addr.chars().any(char::is_control) {
        return Err(StoreError::Setting {
            variable,
            reason: format!(
                "\"{}\" contains a control character such as a newline; set it to one URL such as https://vault.example.com:8200",
                redact_addr(addr).escape_debug()
            ),
        });
    }
    Ok(())
}

/// Checks the address variables of the process environment the way
/// [`VaultConfig::from_env`] reads them, without needing a token.
pub fn check_env_addr() -> Result<(), StoreError> {
    for variable in ["VAULT_ADDR", "BAO_ADDR"] {
        if let Some(addr) = std::env::var_os(variable) {
            check_addr(variable, &addr.to_string_lossy())?;
        }
    }
    Ok(())
}

/// Where the credentials part of an address is (`user:pass` in
/// `https://user:pass@host`), if it has one. Found by hand rather than by a
/// URL parser so that an address no parser accepts is redacted too.
fn credentials(addr: &str) -> Option<std::ops::Range<usize>> {
    let start = addr.find("://").map_or(0, |i| i + 3);
    let rest = &addr[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority
        .rfind('@')
        .filter(|at| *at > 0)
        .map(|at| start..start + at)
}

/// The credentials an address carries, to redact them from messages that
/// quote it.
pub(crate) fn credentials_of(addr: &str) -> Option<&str> {
    credentials(addr).map(|range| &addr[range])
}

/// The address as messages show it: credentials replaced by `<redacted>`.
pub fn redact_addr(addr: &str) -> String {
    match credentials(addr) {
        Some(range) => format!("{}<redacted>{}", &addr[..range.start], &addr[range.end..]),
        None => addr.to_owned(),
    }
}

/// The token `vault login` saved, if the file exists and is not empty.
fn read_token_file(path: &Path) -> Option<Zeroizing<String>> {
    let raw = Zeroizing::new(std::fs::read_to_string(path).ok()?);
    let token = raw.trim();
    (!token.is_empty()).then(|| Zeroizing::new(token.to_owned()))
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("addr", &redact_addr(&self.addr))
            .field(
                "token",
                &if self.token.is_empty() {
                    "<none>"
                } else {
                    "<redacted>"
                },
            )
            .field("namespace", &self.namespace)
            .field("ca_cert", &self.ca_cert)
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .field("approle", &self.approle)
            .field(
                "nodes",
                &self
                    .nodes
                    .iter()
                    .map(|n| redact_addr(n))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl fmt::Debug for AppRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRole")
            .field("mount", &self.mount)
            .field("role_id", &self.role_id)
            .field("secret_id", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)], home: Option<&Path>) -> Result<VaultConfig, StoreError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        VaultConfig::from_vars(|k| vars.get(k).cloned(), home)
    }

    #[test]
    fn vault_variables_win_over_bao() {
        let c = config(
            &[
                ("VAULT_ADDR", "http://a"),
                ("BAO_ADDR", "http://b"),
                ("BAO_TOKEN", "t"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(c.addr, "http://a");
        assert_eq!(c.token.as_str(), "t");
        assert_eq!(c.retries, DEFAULT_RETRIES);
    }

    #[test]
    fn missing_address_says_what_to_export() {
        let err = config(&[("VAULT_TOKEN", "t")], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("export VAULT_ADDR"), "{err}");
    }

    #[test]
    fn token_file_and_approle() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".vault-token"), "s.file\n").unwrap();
        let c = config(&[("VAULT_ADDR", "http://a")], Some(home.path())).unwrap();
        assert_eq!(c.token.as_str(), "s.file");
        let c = config(
            &[
                ("VAULT_ADDR", "http://a"),
                ("VAULT_ROLE_ID", "r"),
                ("VAULT_SECRET_ID", "s3cr3t"),
            ],
            None,
        )
        .unwrap();
        let approle = c.approle.as_ref().unwrap();
        assert_eq!(
            (approle.mount.as_str(), approle.role_id.as_str()),
            ("approle", "r")
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let err = config(&[("VAULT_ADDR", "http://a")], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("VAULT_TOKEN"), "{err}");
    }

    #[test]
    fn address_credentials_are_redacted_and_control_characters_refused() {
        assert_eq!(
            redact_addr("https://alice:pw@vault:8200/x@y"),
            "https://<redacted>@vault:8200/x@y"
        );
        assert_eq!(
            redact_addr("https://token@vault"),
            "https://<redacted>@vault"
        );
        assert_eq!(redact_addr("alice:pw@vault:8200"), "<redacted>@vault:8200");
        assert_eq!(
            redact_addr("https://vault:8200/a@b"),
            "https://vault:8200/a@b"
        );
        assert_eq!(
            redact_addr("http://127.0.0.1:8200"),
            "http://127.0.0.1:8200"
        );
        assert_eq!(redact_addr("http://h@x"), "http://<redacted>@x");
        let c = config(
            &[
                ("VAULT_ADDR", "https://alice:s3cr3t@vault:8200"),
                ("VAULT_TOKEN", "t"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(c.describe(), "Vault at https://<redacted>@vault:8200");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        for bad in [
            "https://vault:8200\nrumor: all good",
            "https://vault\0",
            "https://a:s3cr3t@vault\r\n",
        ] {
            let err = config(&[("VAULT_ADDR", bad), ("VAULT_TOKEN", "t")], None).unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::Setting {
                        variable: "VAULT_ADDR",
                        ..
                    }
                ),
                "{err}"
            );
            let text = err.to_string();
            assert!(
                !text.contains('\n') && !text.contains('\r') && !text.contains("s3cr3t"),
                "{text}"
            );
        }
        let err = config(&[("BAO_ADDR", "http://b\n"), ("BAO_TOKEN", "t")], None).unwrap_err();
        assert!(err.to_string().starts_with("BAO_ADDR: "), "{err}");
    }

    #[test]
    fn bad_retries_and_debug_hides_token() {
        let err = config(
            &[
                ("VAULT_ADDR", "http://a"),
                ("VAULT_TOKEN", "t"),
                ("RUMOR_VAULT_RETRIES", "x"),
            ],
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("RUMOR_VAULT_RETRIES"));
        let c = config(
            &[("VAULT_ADDR", "http://a"), ("VAULT_TOKEN", "hvs.topsecret")],
            None,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
    }
}
