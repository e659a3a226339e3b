//! Sorting vaultrs's errors into what rumor can act on: retry, report the
//! server as unreachable, denied or sealed, or treat a 404 as "absent".

use vaultrs::error::ClientError;

/// What a failed request means for the caller.
pub(super) enum Failure {
    /// 404: the secret (or the mount) does not exist; what the server said.
    NotFound(String),
    /// 400 from a check-and-set that did not match.
    Conflict,
    /// 403: the token may not do this.
    Denied(String),
    /// 403, and the token itself is no longer valid.
    Expired(String),
    /// 503 from a sealed server.
    Sealed,
    /// No answer: connection refused, timeout, DNS.
    Unreachable(String),
    /// A 5xx other than sealed; worth retrying.
    Server(String),
    /// A redirect rumor will not follow; not retried.
    Redirect(String),
    /// 429: a rate-limit quota refused the request; retried after a pause.
    RateLimited(String),
    /// Anything else; not retried.
    Other(String),
    /// A login made on the way failed; already the error for people.
    Store(crate::store::StoreError),
}

impl Failure {
    /// Whether trying again may help: only when the server did not answer
    /// or answered with a transient 5xx. A 4xx or a sealed server will say
    /// the same thing again.
    pub(super) fn retryable(&self) -> bool {
        match self {
            // A certificate the CA does not vouch for stays so: retrying
            // would only repeat the handshake.
            Failure::Unreachable(reason) => !reason.contains("certificate"),
            Failure::Server(_) => true,
            _ => false,
        }
    }

    /// Whether every later request would fail the same way, whatever its
    /// path: then a fleet run should start no more devices.
    pub(super) fn is_everywhere(&self) -> bool {
        matches!(
            self,
            Failure::Unreachable(_)
                | Failure::Sealed
                | Failure::Expired(_)
                | Failure::Server(_)
                | Failure::Redirect(_)
                | Failure::RateLimited(_)
                | Failure::Store(_)
        )
    }
}

/// Classifies a vaultrs error.
pub(super) fn classify(err: &ClientError) -> Failure {
    // Before anything else: a refused redirect looks like a transport
    // error, but retrying it would only be refused again.
    if let Some(refused) = super::redirect::refusal(err) {
        return Failure::Redirect(refused);
    }
    match err {
        ClientError::APIError { code, errors } => from_status(*code, &errors.join("; ")),
        ClientError::RestClientError { source } => match source {
            rustify::errors::ClientError::ServerResponseError { code, content } => {
                from_status(*code, content.as_deref().unwrap_or_default())
            }
            rustify::errors::ClientError::RequestError { .. }
            | rustify::errors::ClientError::ResponseError { .. } => {
                Failure::Unreachable(transport_reason(source))
            }
            other => Failure::Other(chain(other)),
        },
        ClientError::FileReadError { path, source } => {
            Failure::Other(format!("cannot read {path}: {source}"))
        }
        ClientError::ParseCertificateError { path, .. } => Failure::Other(format!(
            "{path} is not a PEM certificate; point VAULT_CACERT at the CA's PEM file"
        )),
        other => Failure::Other(chain(other)),
    }
}

fn from_status(code: u16, said: &str) -> Failure {
    let said = one_line(said);
    let said = if said.is_empty() {
        format!("HTTP {code}")
    } else {
        said
    };
    match code {
        404 => Failure::NotFound(said),
        400 if said.contains("check-and-set") => Failure::Conflict,
        403 => Failure::Denied(said),
        503 if said.to_ascii_lowercase().contains("sealed") => Failure::Sealed,
        429 => Failure::RateLimited(format!("HTTP 429: {said}")),
        500..=599 => Failure::Server(format!("HTTP {code}: {said}")),
        _ => Failure::Other(format!("HTTP {code}: {said}")),
    }
}

/// A server message on one line: Vault wraps some as
/// `1 error occurred:\n\t* permission denied\n\n`, and rumor's errors
/// are one line each.
fn one_line(said: &str) -> String {
    said.lines()
        .map(|l| l.trim().trim_start_matches("* ").trim())
        .filter(|l| !(l.is_empty() || l.ends_with("occurred:") && l.contains("error")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A short reason for a request that got no answer, from the innermost
/// I/O error when there is one (`connection refused`), else the last
/// message in the chain.
fn transport_reason(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut last = err.to_string();
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                std::io::ErrorKind::TimedOut => "timed out".to_owned(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
                _ => io.to_string(),
            };
        }
        let text = e.to_string();
        if text.contains("timed out") {
            return "timed out".to_owned();
        }
        if text.contains("dns error") {
            return text;
        }
        last = text;
        current = e.source();
    }
    last
}

/// An error and its causes on one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        text.push_str(": ");
        text.push_str(&e.to_string());
        current = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, errors: &[&str]) -> Failure {
        classify(&ClientError::APIError {
            code,
            errors: errors.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn statuses() {
        assert!(matches!(api(404, &[]), Failure::NotFound(_)));
        assert!(matches!(
            api(
                400,
                &["check-and-set parameter did not match the current version"]
            ),
            Failure::Conflict
        ));
        assert!(matches!(api(400, &["bad"]), Failure::Other(_)));
        assert!(matches!(
            api(403, &["permission denied"]),
            Failure::Denied(_)
        ));
        assert!(matches!(api(503, &["Vault is sealed"]), Failure::Sealed));
        match api(403, &["1 error occurred:\n\t* permission denied\n\n"]) {
            Failure::Denied(said) => assert_eq!(said, "permission denied"),
            _ => panic!("not a denial"),
        }
        assert!(api(502, &[]).retryable());
        assert!(!api(503, &["Vault is sealed"]).retryable());
        assert!(!api(403, &[]).retryable());
        assert!(matches!(
            api(
                429,
                &["request path \"secret/data/x\": rate limit quota exceeded"]
            ),
            Failure::RateLimited(_)
        ));
    }
}
