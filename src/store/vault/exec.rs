//! Sending one request, keeping what vaultrs drops.
//!
//! vaultrs turns a non-2xx answer into an error that has the status and
//! the body but no headers, and a server that rate-limits says when to come
//! back in `Retry-After`. So rumor builds each request with vaultrs's
//! endpoint types and middleware (token, namespace, `/v1`), sends it on the
//! client's own reqwest client (its TLS roots and redirect policy), and
//! reads the answer itself, into the same error values vaultrs would make,
//! so [`super::failure::classify`] sorts them as before. It is also where
//! the consistency headers go out and come back ([`Consistency`]).

use std::time::Duration;

use rustify::endpoint::Endpoint;
use rustify::errors::ClientError as RestError;
use serde::Deserialize;
use vaultrs::api::EndpointResult;
use vaultrs::client::{Client, VaultClient};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

use super::consistency::Consistency;

/// A failed request: the error, and the pause the server asked for.
pub(super) struct Reply {
    pub(super) error: ClientError,
    pub(super) retry_after: Option<Duration>,
}

impl From<ClientError> for Reply {
    fn from(error: ClientError) -> Reply {
        Reply {
            error,
            retry_after: None,
        }
    }
}

fn rest(source: RestError) -> Reply {
    Reply::from(ClientError::RestClientError { source })
}

/// Vault's error body: `{"errors": ["..."]}`.
#[derive(Deserialize)]
struct Errors {
    errors: Vec<String>,
}

/// The longest pause a `Retry-After` may ask for; a server asking for more
/// is asking for a pause a fleet run cannot wait out.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Sends `endpoint` with `client`'s token and settings, and the newest
/// storage position `consistency` holds; the whole answer (`data`,
/// `auth`), or `None` for an empty 2xx. The answer's position goes to
/// `consistency`, whatever its status.
pub(super) async fn exec<E: Endpoint>(
    client: &VaultClient,
    consistency: &Consistency,
    endpoint: E,
) -> Result<Option<EndpointResult<E::Response>>, Reply> {
    let request = endpoint
        .with_middleware(client.middle())
        .request(&client.http().base)
        .map_err(rest)?;
    let url = request.uri().to_string();
    let method = request.method().to_string();
    let mut request = reqwest::Request::try_from(request)
        .map_err(|source| rest(RestError::ReqwestBuildError { source }))?;
    let again = request.try_clone();
    let carried = consistency.send(request.headers_mut());
    let (mut status, mut retry_after, mut body) =
        send(client, consistency, request, &url, &method).await?;
    // A position the server will not take (another cluster answers at
    // this address now): drop it and ask again without.
    if carried && status == 400 && refuses_position(&body) {
        consistency.forget();
        if let Some(again) = again {
            (status, retry_after, body) = send(client, consistency, again, &url, &method).await?;
        }
    }
    if !(200..300).contains(&status) {
        let error = match serde_json::from_slice::<Errors>(&body) {
            Ok(said) => ClientError::APIError {
                code: status,
                errors: said.errors,
            },
            Err(_) => ClientError::RestClientError {
                source: RestError::ServerResponseError {
                    code: status,
                    content: String::from_utf8(body.to_vec()).ok(),
                },
            },
        };
        return Err(Reply { error, retry_after });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|source| Reply::from(ClientError::JsonParseError { source }))
}

/// Sends `request`; its status, `Retry-After` and body. The answer's
/// position goes to `consistency`.
async fn send(
    client: &VaultClient,
    consistency: &Consistency,
    request: reqwest::Request,
    url: &str,
    method: &str,
) -> Result<(u16, Option<Duration>, Zeroizing<Vec<u8>>), Reply> {
    let response = client.http().http.execute(request).await.map_err(|e| {
        rest(RestError::RequestError {
            source: e.into(),
            url: url.to_owned(),
            method: method.to_owned(),
        })
    })?;
    consistency.note(response.headers());
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let body = Zeroizing::new(
        response
            .bytes()
            .await
            .map_err(|e| rest(RestError::ResponseError { source: e.into() }))?
            .to_vec(),
    );
    Ok((status, retry_after, body))
}

/// Whether a 400's body is about the `X-Vault-Index` rumor sent.
fn refuses_position(body: &[u8]) -> bool {
    serde_json::from_slice::<Errors>(body).is_ok_and(|e| {
        e.errors
            .iter()
            .any(|m| m.to_ascii_lowercase().contains("x-vault-index"))
    })
}

/// `Retry-After` in seconds (the form Vault and OpenBao send), bounded.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_in_seconds_only_and_bounded() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&h)
        };
        assert_eq!(with("1"), Some(Duration::from_secs(1)));
        assert_eq!(with(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(with("86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(with("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
