//! Vault (or OpenBao) KV v2 as rumor's store, over vaultrs.
//!
//! vaultrs is async; the [`Store`] trait is not, because the engine is a
//! plain sequence of steps. So a [`Vault`] owns a one-worker tokio runtime
//! and blocks on it, which is safe from several threads at once. One HTTP
//! client is kept for the whole run so connections are reused.
//!
//! What a production server does to a long run, and what rumor does back:
//! - a node goes away or is sealed (a cluster fails over): rumor moves to
//!   the next node of VAULT_ADDR and RUMOR_VAULT_NODES and retries, with
//!   exponential backoff, within RUMOR_VAULT_RETRIES;
//! - the AppRole token runs out: rumor logs in again before it does (and
//!   once more on a 403), so a run may outlast any token TTL;
//! - a static token runs out: one line saying so, exit 4;
//! - a rate-limit quota answers 429: rumor waits as `Retry-After` says (or
//!   backs off) and lowers how many requests it has in flight
//!   ([`limiter`]); the count of retries is in [`Vault::retries`].
//!
//! - standbys answer reads from a copy that may lag the active node's:
//!   rumor sends back the newest storage position it was told of, so a
//!   standby that has not reached it forwards the request to the active
//!   node ([`consistency`]).
//!
//! The token is sent in a header and nowhere else: it is redacted from every
//! message and no type here prints it in `Debug`.

mod annotate;
mod config;
mod consistency;
mod exec;
mod failure;
mod limiter;
mod redirect;

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use vaultrs::api::auth::approle::requests::LoginWithApproleRequest;
use vaultrs::api::kv2::requests::{
    DeleteSecretMetadataRequest, ListSecretsRequest, ReadSecretRequest, SetSecretRequest,
    SetSecretRequestOptions,
};
use vaultrs::api::token::requests::LookupTokenSelfRequest;
use vaultrs::api::AuthInfo;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use zeroize::Zeroizing;

pub use config::{check_env_addr, redact_addr, AppRole, VaultConfig};
use consistency::Consistency;
use exec::{exec, Reply};
use failure::{classify, Failure};

use crate::store::{split_mount, Data, Provenance, Store, StoreError, Versioned};

/// The first pause between retries; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest pause between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How many 429 answers one request may get before rumor gives up: the
/// server is up and answering, so this is generous, and the limiter makes
/// each one rarer.
const RATE_LIMITED_TRIES: u32 = 50;

/// At most this many requests in flight: the most workers a fleet run has.
const MAX_IN_FLIGHT: usize = 64;

/// A Vault KV v2 store.
pub struct Vault {
    /// VAULT_ADDR first, then RUMOR_VAULT_NODES: where requests may go.
    nodes: Vec<Node>,
    session: RwLock<Session>,
    /// Held while logging in, so concurrent workers log in once.
    login: Mutex<()>,
    approle: Option<AppRole>,
    /// The HTTP client every node's vaultrs client shares.
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    timeout: Duration,
    namespace: Option<String>,
    /// The user info of VAULT_ADDR, if any, to redact it.
    credentials: Option<Zeroizing<String>>,
    retries: u32,
    /// Who the token is, once a lookup gave a lasting answer (see
    /// `annotate`).
    operator: std::sync::Mutex<Option<String>>,
    limiter: limiter::Limiter,
    retried: AtomicU64,
    rate_limited: AtomicU64,
    /// Set once a request failed in a way every request would.
    halted: AtomicBool,
    /// The newest storage position the servers reported, sent back with
    /// every request.
    consistency: Consistency,
}

/// One node's address.
struct Node {
    /// As configured, for the client.
    url: String,
    /// Without credentials, for messages.
    shown: String,
}

/// The node in use and the token, changed together under the lock.
struct Session {
    node: usize,
    client: Arc<VaultClient>,
    /// Kept to redact it from server messages.
    token: Zeroizing<String>,
    /// When to log in again (AppRole tokens only).
    renew_at: Option<Instant>,
    /// Bumped on every change, so that of several workers that saw the
    /// same failure only the first moves on to another node or logs in.
    generation: u64,
}

/// What a run's requests went through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retries {
    /// Requests sent again, for any reason.
    pub retried: u64,
    /// Of those, after a 429 from a rate-limit quota.
    pub rate_limited: u64,
    /// The fewest requests allowed in flight after a 429, if one came.
    pub lowest_in_flight: Option<usize>,
}

impl Retries {
    /// `37 requests retried (29 rate-limited; at most 4 in flight)`, or
    /// `None` when nothing was retried.
    pub fn summary(&self) -> Option<String> {
        if self.retried == 0 {
            return None;
        }
        let mut line = format!("{} requests retried", self.retried);
        if self.rate_limited > 0 {
            line.push_str(&format!(" ({} rate-limited", self.rate_limited));
            if let Some(n) = self.lowest_in_flight {
                line.push_str(&format!("; at most {n} in flight"));
            }
            line.push(')');
        }
        Some(line)
    }
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
        let mut nodes = vec![Node {
            url: config.addr.clone(),
            shown: redact_addr(&config.addr),
        }];
        for node in &config.nodes {
            match url::Url::parse(node).ok().filter(|u| matches!(u.scheme(), "http" | "https")).and_then(|u| redirect::Origin::of(&u)) {
                Some(origin) => {
                    if !allowed.contains(&origin) {
                        allowed.push(origin);
                        nodes.push(Node { url: node.clone(), shown: redact_addr(node) });
                    }
                }
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
        let http =
            http_client(&settings, allowed).map_err(|reason| other("VAULT_CACERT", reason))?;
        let client = assemble(settings, http.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rumor-vault")
            .enable_all()
            .build()
            .map_err(|e| other("", format!("cannot start the I/O runtime: {e}")))?;
        let vault = Vault {
            nodes,
            session: RwLock::new(Session {
                node: 0,
                client: Arc::new(client),
                token: config.token.clone(),
                renew_at: None,
                generation: 0,
            }),
            login: Mutex::new(()),
            approle: None,
            http,
            runtime,
            timeout: config.timeout,
            credentials: config::credentials_of(&config.addr).map(|c| Zeroizing::new(c.to_owned())),
            namespace: config.namespace.clone(),
            retries: config.retries,
            operator: std::sync::Mutex::new(None),
            limiter: limiter::Limiter::new(MAX_IN_FLIGHT),
            retried: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            halted: AtomicBool::new(false),
            consistency: Consistency::resume(&config.addr),
        };
        let mut vault = vault;
        if config.token.is_empty() {
            if let Some(approle) = &config.approle {
                vault.login_approle(&approle.mount, &approle.role_id, &approle.secret_id)?;
            }
        }
        Ok(vault)
    }

    /// Logs in with AppRole at `auth/<mount>` and uses the token it returns
    /// for every later request; logs in again with the same credentials
    /// when that token is about to run out.
    pub fn login_approle(
        &mut self,
        mount: &str,
        role_id: &str,
        secret_id: &str,
    ) -> Result<(), StoreError> {
        let approle = AppRole {
            mount: mount.trim_matches('/').to_owned(),
            role_id: role_id.to_owned(),
            secret_id: Zeroizing::new(secret_id.to_owned()),
        };
        let generation = self.read_session().generation;
        self.log_in(&approle, generation)?;
        self.approle = Some(approle);
        Ok(())
    }

    /// Logs in unless another worker already did since `generation`.
    fn log_in(&self, approle: &AppRole, generation: u64) -> Result<(), StoreError> {
        let _one = self.login.lock().unwrap_or_else(|e| e.into_inner());
        if self.read_session().generation != generation {
            return Ok(());
        }
        let path = format!("auth/{}/login", approle.mount);
        let request = || LoginWithApproleRequest {
            mount: approle.mount.clone(),
            role_id: approle.role_id.clone(),
            secret_id: approle.secret_id.to_string(),
        };
        let auth: AuthInfo = self
            .run_as(false, None, |client| {
                // Without the old token: an expired one has no business
                // on a login.
                let bare = self.client_at(client.settings.address.as_str(), "");
                let request = request();
                let consistency = &self.consistency;
                async move {
                    let bare = bare.map_err(|_| {
                        Reply::from(vaultrs::error::ClientError::InvalidLoginMethodError)
                    })?;
                    exec(&bare, consistency, request)
                        .await?
                        .and_then(|r| r.auth)
                        .ok_or_else(|| Reply::from(vaultrs::error::ClientError::ResponseEmptyError))
                }
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
        // Log in again when two thirds of the lease are gone, before any
        // request can meet an expired token.
        let renew_at = (auth.lease_duration > 0)
            .then(|| Instant::now() + Duration::from_secs(auth.lease_duration) * 2 / 3);
        let mut session = self.write_session();
        let client = self.client_for(session.node, &token)?;
        session.client = Arc::new(client);
        session.token = token;
        session.renew_at = renew_at;
        session.generation += 1;
        Ok(())
    }

    /// A vaultrs client for node `node` with `token`, on the shared HTTP
    /// client.
    fn client_for(&self, node: usize, token: &str) -> Result<VaultClient, StoreError> {
        self.client_at(self.nodes.get(node).map_or("", |n| n.url.as_str()), token)
    }

    /// A vaultrs client for `url` with `token`, on the shared HTTP client.
    fn client_at(&self, url: &str, token: &str) -> Result<VaultClient, StoreError> {
        let fail = |reason: String| StoreError::Other {
            store: format!("Vault at {}", redact_addr(url)),
            path: String::new(),
            reason,
        };
        let mut settings = VaultClientSettingsBuilder::default();
        settings
            .address(url)
            .token(token)
            .timeout(Some(self.timeout))
            .namespace(self.namespace.clone())
            .ca_certs(Vec::new());
        let settings = settings.build().map_err(|e| fail(e.to_string()))?;
        Ok(assemble(settings, self.http.clone()))
    }

    fn read_session(&self) -> std::sync::RwLockReadGuard<'_, Session> {
        self.session.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_session(&self) -> std::sync::RwLockWriteGuard<'_, Session> {
        self.session.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves to the next node, unless another worker already moved since
    /// `generation`.
    fn next_node(&self, generation: u64) {
        if self.nodes.len() < 2 {
            return;
        }
        let mut session = self.write_session();
        if session.generation != generation {
            return;
        }
        let node = (session.node + 1) % self.nodes.len();
        if let Ok(client) = self.client_for(node, &session.token) {
            session.node = node;
            session.client = Arc::new(client);
            session.generation += 1;
        }
    }

    /// Whether a request failed in a way every later one would: no node
    /// reachable or unsealed, an expired token, a refused certificate, a
    /// quota that never let up. Fleet runs then start no more devices.
    pub fn halted(&self) -> bool {
        self.halted.load(Ordering::Relaxed)
    }

    /// What this run's requests went through, for the summary line.
    pub fn retries(&self) -> Retries {
        Retries {
            retried: self.retried.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            lowest_in_flight: self.limiter.lowest(),
        }
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
        match self.run(|client| with_data(client, &self.consistency, request())) {
            Ok(response) => {
                let mut keys = response.keys;
                keys.sort();
                Ok(keys)
            }
            Err(Failure::NotFound(_)) => Ok(Vec::new()),
            Err(failure) => Err(self.error(prefix, failure)),
        }
    }

    /// Runs one request (see [`Vault::run_as`]).
    fn run<T, F, Fut>(&self, op: F) -> Result<T, Failure>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, Reply>>,
    {
        self.run_as(true, None, op)
    }

    /// Runs one request on the node in use, and when it fails:
    /// - unreachable, sealed or a transient 5xx: moves to the next node
    ///   (when there are several) and retries with exponential backoff,
    ///   up to `retries` times;
    /// - 429: waits as the server says (or backs off) and tries again,
    ///   with fewer requests in flight;
    /// - 403 with AppRole credentials (when `may_log_in`): logs in again
    ///   once and retries; with a static token, asks the server whether
    ///   the token is still valid, to say so.
    ///
    /// `retried` hears whether any attempt failed after it may have
    /// reached the server (a write that may have landed).
    fn run_as<T, F, Fut>(
        &self,
        may_log_in: bool,
        retried: Option<&Cell<bool>>,
        op: F,
    ) -> Result<T, Failure>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, Reply>>,
    {
        let result = self.attempts(may_log_in, retried, op);
        if let Err(failure) = &result {
            if failure.is_everywhere() {
                self.halted.store(true, Ordering::Relaxed);
            }
        }
        result
    }

    fn attempts<T, F, Fut>(
        &self,
        may_log_in: bool,
        retried: Option<&Cell<bool>>,
        op: F,
    ) -> Result<T, Failure>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, Reply>>,
    {
        // block_on panics inside another runtime; say so instead.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Failure::Other(
                "the Vault store cannot be used from inside an async runtime".to_owned(),
            ));
        }
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        let mut limited = 0;
        let mut logged_in = !may_log_in;
        loop {
            let (client, generation, due) = {
                let session = self.read_session();
                let due = session.renew_at.is_some_and(|at| Instant::now() >= at);
                (session.client.clone(), session.generation, due)
            };
            if due && !logged_in {
                if let Some(approle) = &self.approle {
                    logged_in = true;
                    self.log_in(approle, generation).map_err(Failure::Store)?;
                    continue;
                }
            }
            let permit = self.limiter.acquire();
            let reply = match self.runtime.block_on(op(client.clone())) {
                Ok(value) => {
                    permit.finish(false);
                    return Ok(value);
                }
                Err(reply) => reply,
            };
            let failure = classify(&reply.error);
            permit.finish(matches!(failure, Failure::RateLimited(_)));
            match failure {
                Failure::RateLimited(_) if limited < RATE_LIMITED_TRIES => {
                    limited += 1;
                    self.rate_limited.fetch_add(1, Ordering::Relaxed);
                    // Retry-After is whole seconds, often 0 when the
                    // window turns within the second: wait at least the
                    // backoff too, or every worker would be straight back.
                    self.back_off(&mut backoff, reply.retry_after.unwrap_or_default());
                }
                Failure::Denied(reason) if !logged_in => match &self.approle {
                    Some(approle) => {
                        logged_in = true;
                        self.retried.fetch_add(1, Ordering::Relaxed);
                        self.log_in(approle, generation).map_err(Failure::Store)?;
                    }
                    None => return Err(self.why_denied(&client, reason)),
                },
                failure if self.retryable(&failure) && attempt < self.retries => {
                    if let Some(retried) = retried {
                        retried.set(true);
                    }
                    if !matches!(failure, Failure::Server(_)) {
                        self.next_node(generation);
                    }
                    self.back_off(&mut backoff, Duration::ZERO);
                    attempt += 1;
                }
                failure => return Err(failure),
            }
        }
    }

    /// Counts a retry and waits before it: `backoff`, or `at_least` if
    /// that is longer; then doubles `backoff`, up to [`MAX_BACKOFF`].
    fn back_off(&self, backoff: &mut Duration, at_least: Duration) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(at_least.max(*backoff));
        *backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
    }

    /// Whether trying again may help: a sealed node only when there is
    /// another to move to.
    fn retryable(&self, failure: &Failure) -> bool {
        failure.retryable() || (matches!(failure, Failure::Sealed) && self.nodes.len() > 1)
    }

    /// A 403 with a static token: if the token itself is no longer valid,
    /// says it expired (or was revoked) and what to do; otherwise it is the
    /// policy's denial.
    fn why_denied(&self, client: &Arc<VaultClient>, reason: String) -> Failure {
        let lookup = self.runtime.block_on(exec(
            client,
            &self.consistency,
            LookupTokenSelfRequest::default(),
        ));
        match lookup.map_err(|reply| classify(&reply.error)) {
            Err(Failure::Denied(_)) => Failure::Expired(
                "the token has expired or was revoked; get a fresh one (vault login, or export VAULT_TOKEN; AppRole logins with VAULT_ROLE_ID/VAULT_SECRET_ID renew themselves) and run again".to_owned(),
            ),
            _ => Failure::Denied(reason),
        }
    }

    /// The error for people: names the server and path, never the token.
    fn error(&self, path: &str, failure: Failure) -> StoreError {
        let store = self.describe();
        let path = path.to_owned();
        match failure {
            Failure::Store(error) => error,
            Failure::Conflict => StoreError::Conflict { store, path },
            Failure::Sealed => StoreError::Sealed { store },
            Failure::Denied(reason) | Failure::Expired(reason) => StoreError::Denied {
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
            Failure::RateLimited(reason) => StoreError::Other {
                store,
                path,
                reason: format!(
                    "{}; still refused after {RATE_LIMITED_TRIES} tries; lower RUMOR_JOBS or raise the quota",
                    self.redact(reason)
                ),
            },
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
        let token = self.read_session().token.clone();
        // Short tokens would blank out ordinary words; real ones are long.
        let text = if token.len() >= 8 && text.contains(token.as_str()) {
            text.replace(token.as_str(), "<redacted>")
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

/// Sends a request whose answer must carry `data`.
async fn with_data<E: rustify::endpoint::Endpoint>(
    client: Arc<VaultClient>,
    consistency: &Consistency,
    endpoint: E,
) -> Result<E::Response, Reply> {
    exec(&client, consistency, endpoint)
        .await?
        .and_then(|r| r.data)
        .ok_or_else(|| Reply::from(vaultrs::error::ClientError::ResponseDataEmptyError))
}

/// A vaultrs client on rumor's HTTP client, put together from its public
/// parts as `VaultClient::new` does. That function would also build an
/// HTTP client of its own, with the default redirect policy, which rumor
/// would throw away, reading the CA files again without rumor's guard.
fn assemble(settings: vaultrs::client::VaultClientSettings, http: reqwest::Client) -> VaultClient {
    VaultClient {
        middle: vaultrs::api::EndpointMiddleware {
            token: settings.token.clone(),
            version: format!("v{}", settings.version),
            wrap: None,
            namespace: settings.namespace.clone(),
        },
        http: rustify::clients::reqwest::Client::new(settings.address.as_str(), http),
        settings,
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
        let node = self.read_session().node;
        format!(
            "Vault at {}",
            self.nodes.get(node).map_or("?", |n| n.shown.as_str())
        )
    }

    fn read(&self, path: &str) -> Result<Option<Versioned>, StoreError> {
        let (mount, rest) = split_mount(path)?;
        let request = || ReadSecretRequest {
            mount: mount.to_owned(),
            path: rest.to_owned(),
            version: None,
        };
        let response = match self.run(|client| with_data(client, &self.consistency, request())) {
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
        let retried = Cell::new(false);
        let result = self.run_as(true, Some(&retried), |client| {
            with_data(client, &self.consistency, request())
        });
        // A write whose first try got no answer may have landed, and then
        // its retry's check-and-set fails on rumor's own version. If what
        // is there now is exactly what was sent, the write is done.
        let result = match result {
            Err(Failure::Conflict) if retried.get() => match self.read(path) {
                Ok(Some(now)) if same(&now.data, data) => return Ok(()),
                _ => Err(Failure::Conflict),
            },
            result => result,
        };
        result
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

    fn remove(&self, path: &str) -> Result<(), StoreError> {
        let (mount, rest) = split_mount(path)?;
        let result = self.run(|client| {
            let request = DeleteSecretMetadataRequest {
                mount: mount.to_owned(),
                path: rest.to_owned(),
            };
            let consistency = &self.consistency;
            async move { exec(&client, consistency, request).await.map(|_| ()) }
        });
        match result {
            Ok(()) | Err(Failure::NotFound(_)) => Ok(()),
            Err(failure) => Err(self.error(&format!("{mount}/metadata/{rest}"), failure)),
        }
    }

    fn write_with(
        &self,
        path: &str,
        data: &Data,
        cas: Option<u64>,
        provenance: &Provenance,
    ) -> Result<(), StoreError> {
        self.write(path, data, cas)?;
        self.annotate(path, &provenance.clone().with_operator(self))
    }

    fn operator_unknown(&self) -> bool {
        // A lookup in flight holds the lock, and its answer is shared.
        match self.operator.try_lock() {
            Ok(known) => known.is_none(),
            Err(std::sync::TryLockError::WouldBlock) => false,
            Err(std::sync::TryLockError::Poisoned(known)) => known.into_inner().is_none(),
        }
    }

    fn operator(&self) -> String {
        // Held across the lookup: the devices of a fleet run that start
        // together wait for the first answer rather than each asking.
        let mut known = self
            .operator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(name) = known.as_ref() {
            return name.clone();
        }
        let (name, lasting) = self.lookup_operator();
        if lasting {
            *known = Some(name.clone());
        }
        name
    }
}

/// Whether two secrets hold the same pairs, in any order.
fn same(a: &Data, b: &Data) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| w.as_str() == v.as_str()))
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field(
                "nodes",
                &self
                    .nodes
                    .iter()
                    .map(|n| n.shown.as_str())
                    .collect::<Vec<_>>(),
            )
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
            Failure::Expired(said()),
            Failure::Sealed,
            Failure::Unreachable(said()),
            Failure::Server(said()),
            Failure::Redirect(said()),
            Failure::RateLimited(said()),
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
