//! Vault (or OpenBao) KV v2 as rumor's store, over vaultrs.
//!
//! vaultrs is async; the [`Store`] trait is not, because the engine is a
//! plain sequence of steps. So a [`Vault`] owns a one-worker tokio runtime
//! and blocks on it, which is safe from several threads at once. One
//! `VaultClient` is kept for the whole run so connections are reused.
//!
//! The token is sent in a header and nowhere else: it is redacted from every
//! message and no type here prints it in `Debug`.

mod annotate;
mod config;
mod failure;
mod redirect;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use vaultrs::api::kv2::requests::{
    ListSecretsRequest, ReadSecretRequest, SetSecretRequest, SetSecretRequestOptions,
};
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

pub use config::{check_env_addr, redact_addr, AppRole, VaultConfig};
use failure::{classify, Failure};

use crate::store::{split_mount, Data, Provenance, Store, StoreError, Versioned};

/// The first pause between retries; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// A Vault KV v2 store.
pub struct Vault {
    client: VaultClient,
    runtime: tokio::runtime::Runtime,
    /// VAULT_ADDR without its credentials, for messages.
    addr: String,
    namespace: Option<String>,
    /// Kept only to redact it from server messages.
    token: Zeroizing<String>,
    /// The user info of VAULT_ADDR, if any, likewise.
    credentials: Option<Zeroizing<String>>,
    retries: u32,
    /// Who the token is, looked up once (see `annotate`).
    operator: std::sync::OnceLock<String>,
}

impl Vault {
    /// Connects as configured; with no token but AppRole credentials, logs
    /// in first. Nothing is sent to the server unless it has to log in.
    pub fn connect(config: &VaultConfig) -> Result<Vault, StoreError> {
        let store = config.describe();
        let other = |path: &str, reason: String| StoreError::Other {
            store: store.clone(),
            path: path.to_owned(),
            reason,
        };
        config::check_addr("VAULT_ADDR", &config.addr)?;
        // vaultrs panics on an address it cannot parse, so parse it first.
        let origin = match url::Url::parse(&config.addr) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => redirect::Origin::of(&u),
            _ => None,
        };
        let Some(origin) = origin else {
            return Err(other(
                "VAULT_ADDR",
                format!(
                    "\"{}\" is not an http(s) URL; set VAULT_ADDR=https://<server>:8200",
                    redact_addr(&config.addr)
                ),
            ));
        };
        let mut allowed = vec![origin];
        for node in &config.nodes {
            match url::Url::parse(node).ok().filter(|u| matches!(u.scheme(), "http" | "https")).and_then(|u| redirect::Origin::of(&u)) {
                Some(origin) => allowed.push(origin),
                None => {
                    return Err(StoreError::Setting {
                        variable: "RUMOR_VAULT_NODES",
                        reason: format!("\"{}\" is not an http(s) URL; list the nodes like https://vault-2:8200,https://vault-3:8200", redact_addr(node)),
                    })
                }
            }
        }
        // Header values must be visible ASCII, or vaultrs panics building them.
        if !config.token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(other(
                "VAULT_TOKEN",
                "the token contains spaces or non-ASCII characters; check VAULT_TOKEN".to_owned(),
            ));
        }
        if let Some(ns) = config
            .namespace
            .as_deref()
            .filter(|ns| !ns.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(other(
                "VAULT_NAMESPACE",
                format!("\"{ns}\" is not a namespace name"),
            ));
        }
        let mut settings = VaultClientSettingsBuilder::default();
        settings
            .address(&config.addr)
            .token(config.token.as_str())
            .timeout(Some(config.timeout))
            .namespace(config.namespace.clone())
            .ca_certs(
                config
                    .ca_cert
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>(),
            );
        let settings = settings
            .build()
            .map_err(|e| other("VAULT_ADDR", e.to_string()))?;
        let mut client = VaultClient::new(settings).map_err(|e| match classify(&e) {
            Failure::Other(reason) => other("VAULT_CACERT", reason),
            _ => other("", "cannot set up the HTTP client".to_owned()),
        })?;
        // vaultrs builds its reqwest client with the default redirect
        // policy and offers no way to change it; build the same client
        // with rumor's policy and put it in place.
        let http = http_client(&client.settings, allowed)
            .map_err(|reason| other("VAULT_CACERT", reason))?;
        client.http =
            rustify::clients::reqwest::Client::new(client.settings.address.as_str(), http);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rumor-vault")
            .enable_all()
            .build()
            .map_err(|e| other("", format!("cannot start the I/O runtime: {e}")))?;
        let mut vault = Vault {
            client,
            runtime,
            addr: redact_addr(&config.addr),
            credentials: config::credentials_of(&config.addr).map(|c| Zeroizing::new(c.to_owned())),
            namespace: config.namespace.clone(),
            token: config.token.clone(),
            retries: config.retries,
            operator: std::sync::OnceLock::new(),
        };
        if config.token.is_empty() {
            if let Some(approle) = &config.approle {
                vault.login_approle(&approle.mount, &approle.role_id, &approle.secret_id)?;
            }
        }
        Ok(vault)
    }

    /// Logs in with AppRole at `auth/<mount>` and uses the token it returns
    /// for every later request.
    pub fn login_approle(
        &mut self,
        mount: &str,
        role_id: &str,
        secret_id: &str,
    ) -> Result<(), StoreError> {
        let path = format!("auth/{}/login", mount.trim_matches('/'));
        let auth = self
            .run(|| {
                vaultrs::auth::approle::login(
                    &self.client,
                    mount.trim_matches('/'),
                    role_id,
                    secret_id,
                )
            })
            .map_err(|failure| match failure {
                // A wrong role or secret id comes back as 400; to a person it is a denial.
                Failure::Other(reason) => Failure::Denied(reason),
                Failure::NotFound(reason) => Failure::Other(format!(
                    "{reason}; is AppRole enabled there? (vault auth enable approle, or set VAULT_APPROLE_MOUNT)"
                )),
                failure => failure,
            })
            .map_err(|failure| self.error(&path, failure))?;
        let token = Zeroizing::new(auth.client_token);
        self.client.set_token(&token);
        self.token = token;
        Ok(())
    }

    /// The names directly under a logical path (`secret/rumor/devices`),
    /// sorted; sub-folders end in `/` as in `vault kv list`. A path with
    /// nothing under it gives an empty list.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let trimmed = prefix.trim_matches('/');
        let (mount, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        if mount.is_empty() {
            return Err(StoreError::BadPath {
                path: prefix.to_owned(),
            });
        }
        let request = || ListSecretsRequest {
            mount: mount.to_owned(),
            path: rest.to_owned(),
        };
        match self.run(|| vaultrs::api::exec_with_result(&self.client, request())) {
            Ok(response) => {
                let mut keys = response.keys;
                keys.sort();
                Ok(keys)
            }
            Err(Failure::NotFound(_)) => Ok(Vec::new()),
            Err(failure) => Err(self.error(prefix, failure)),
        }
    }

    /// Runs one request, retrying with exponential backoff while the server
    /// is unreachable or answers with a transient 5xx.
    fn run<T, F, Fut>(&self, op: F) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        // block_on panics inside another runtime; say so instead.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Failure::Other(
                "the Vault store cannot be used from inside an async runtime".to_owned(),
            ));
        }
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let failure = match self.runtime.block_on(op()) {
                Ok(value) => return Ok(value),
                Err(err) => classify(&err),
            };
            if !failure.retryable() || attempt >= self.retries {
                return Err(failure);
            }
            std::thread::sleep(backoff);
            backoff = backoff.saturating_mul(2);
            attempt += 1;
        }
    }

    /// The error for people: names the server and path, never the token.
    fn error(&self, path: &str, failure: Failure) -> StoreError {
        let store = self.describe();
        let path = path.to_owned();
        match failure {
            Failure::Conflict => StoreError::Conflict { store, path },
            Failure::Sealed => StoreError::Sealed { store },
            Failure::Denied(reason) => StoreError::Denied {
                store,
                path,
                reason: self.redact(reason),
            },
            Failure::Unreachable(reason) => {
                let hint = if reason.contains("certificate") {
                    "point VAULT_CACERT at the server's CA certificate (PEM)"
                } else {
                    "check that the server is up and VAULT_ADDR is right"
                };
                // The variant has no path field; name it in the reason so
                // the message says what was being read or written.
                let at = if path.is_empty() {
                    String::new()
                } else {
                    format!(" (at \"{path}\")")
                };
                StoreError::Unreachable {
                    store,
                    reason: format!("{}{at}; {hint}", self.redact(reason)),
                }
            }
            Failure::NotFound(reason)
            | Failure::Server(reason)
            | Failure::Redirect(reason)
            | Failure::Other(reason) => StoreError::Other {
                store,
                path,
                reason: self.redact(reason),
            },
        }
    }

    fn redact(&self, text: String) -> String {
        // Short tokens would blank out ordinary words; real ones are long.
        let text = if self.token.len() >= 8 && text.contains(self.token.as_str()) {
            text.replace(self.token.as_str(), "<redacted>")
        } else {
            text
        };
        // HTTP errors quote the request URL, user info and all.
        match &self.credentials {
            Some(c) => text.replace(&format!("{}@", c.as_str()), "<redacted>@"),
            None => text,
        }
    }
}

/// The reqwest client vaultrs would build from `settings` (rustls, the
/// timeout, VAULT_SKIP_VERIFY, the CA certificates, a client identity),
/// with the redirect policy of [`redirect`].
fn http_client(
    settings: &vaultrs::client::VaultClientSettings,
    allowed: Vec<redirect::Origin>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::ClientBuilder::new()
        .use_rustls_tls()
        .redirect(redirect::policy(allowed))
        .danger_accept_invalid_certs(!settings.verify);
    if let Some(timeout) = settings.timeout {
        builder = builder.timeout(timeout);
    }
    for path in &settings.ca_certs {
        // A regular file within a bound: never a FIFO that hangs the run.
        let pem = crate::fsutil::read_regular(std::path::Path::new(path), 1 << 20)
            .map_err(|e| format!("cannot read {path}: {}", e.reason()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|_| {
            format!("{path} is not a PEM certificate; point VAULT_CACERT at the CA's PEM file")
        })?;
        builder = builder.add_root_certificate(cert);
    }
    if let Some(identity) = &settings.identity {
        builder = builder.identity(identity.clone());
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

impl Store for Vault {
    fn describe(&self) -> String {
        format!("Vault at {}", self.addr)
    }

    fn read(&self, path: &str) -> Result<Option<Versioned>, StoreError> {
        let (mount, rest) = split_mount(path)?;
        let request = || ReadSecretRequest {
            mount: mount.to_owned(),
            path: rest.to_owned(),
            version: None,
        };
        let response = match self.run(|| vaultrs::api::exec_with_result(&self.client, request())) {
            Ok(response) => response,
            Err(Failure::NotFound(_)) => return Ok(None),
            Err(failure) => return Err(self.error(path, failure)),
        };
        let map = match response.data {
            Value::Object(map) => map,
            // A deleted or destroyed latest version has no data.
            Value::Null => return Ok(None),
            _ => {
                return Err(self.error(
                    path,
                    Failure::Other("the secret's data is not a key/value map".to_owned()),
                ))
            }
        };
        let data = map
            .into_iter()
            .map(|(key, value)| {
                let text = match value {
                    Value::String(s) => s,
                    // Someone wrote JSON values with another tool; keep them as JSON text.
                    other => other.to_string(),
                };
                (key, Zeroizing::new(text))
            })
            .collect();
        Ok(Some(Versioned {
            data,
            version: response.metadata.version,
            provenance: Provenance::from_metadata(response.metadata.custom_metadata.as_ref()),
        }))
    }

    fn write(&self, path: &str, data: &Data, cas: Option<u64>) -> Result<(), StoreError> {
        let (mount, rest) = split_mount(path)?;
        let options = match cas {
            Some(version) => Some(SetSecretRequestOptions {
                cas: u32::try_from(version).map_err(|_| {
                    self.error(
                        path,
                        Failure::Other(format!("version {version} is beyond what KV v2 accepts")),
                    )
                })?,
            }),
            None => None,
        };
        let request = || SetSecretRequest {
            mount: mount.to_owned(),
            path: rest.to_owned(),
            data: Value::Object(
                data.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
                    .collect(),
            ),
            options: options.clone(),
        };
        self.run(|| vaultrs::api::exec_with_result(&self.client, request()))
            .map(|_| ())
            .map_err(|failure| match failure {
                Failure::NotFound(reason) => {
                    Failure::Other(format!("{reason}; is \"{mount}\" a KV version 2 mount? (vault secrets enable -path={mount} kv-v2)"))
                }
                failure => failure,
            })
            .map_err(|failure| self.error(path, failure))
    }

    fn list(&self, path: &str) -> Result<Vec<String>, StoreError> {
        Vault::list(self, path)
    }

    fn write_with(
        &self,
        path: &str,
        data: &Data,
        cas: Option<u64>,
        provenance: &Provenance,
    ) -> Result<(), StoreError> {
        self.write(path, data, cas)?;
        self.annotate(path, provenance)
    }

    fn operator(&self) -> String {
        self.operator.get_or_init(|| self.lookup_operator()).clone()
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("addr", &self.addr)
            .field("namespace", &self.namespace)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "hvs.not-a-real-token-1234";

    #[test]
    fn every_failure_renders_without_the_token() {
        let vault = Vault::connect(&VaultConfig::new("http://127.0.0.1:9", TOKEN)).unwrap();
        let said = || format!("token {TOKEN} is bad");
        let failures = [
            Failure::NotFound(said()),
            Failure::Conflict,
            Failure::Denied(said()),
            Failure::Sealed,
            Failure::Unreachable(said()),
            Failure::Server(said()),
            Failure::Redirect(said()),
            Failure::Other(said()),
        ];
        for failure in failures {
            let message = vault.error("kv/a/current", failure).to_string();
            assert!(message.contains("Vault at http://127.0.0.1:9"), "{message}");
            assert!(
                !message.contains(TOKEN) && !message.contains('\n'),
                "{message}"
            );
        }
        assert!(!format!("{vault:?}").contains(TOKEN));
    }

    #[test]
    fn bad_settings_are_errors_not_panics() {
        let message = |config: VaultConfig| match Vault::connect(&config) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{config:?} was accepted"),
        };
        assert!(message(VaultConfig::new("vault.example.com:8200", TOKEN)).contains("VAULT_ADDR"));
        assert!(message(VaultConfig::new("http://", TOKEN)).contains("VAULT_ADDR"));
        assert!(message(VaultConfig::new("http://h", "two\nlines")).contains("VAULT_TOKEN"));
        let dir = tempfile::tempdir().unwrap();
        let mut config = VaultConfig::new("https://h", TOKEN);
        config.ca_cert = Some(dir.path().join("missing.pem"));
        assert!(message(config).contains("missing.pem"));
    }
}
