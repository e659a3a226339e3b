//! Provenance on Vault: the `custom_metadata` of a timestamped path, and
//! the token's identity for the operator field.
//!
//! KV v2 metadata belongs to a path, not to a version; each timestamped
//! path holds exactly one version, so its metadata is that version's. The
//! data stays the original tool's layout, which the original reads
//! unchanged.

use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use serde::Deserialize;
use vaultrs::api::kv2::requests::SetSecretMetadataRequest;

use super::failure::Failure;
use super::Vault;
use crate::store::{split_mount, Provenance, StoreError};

/// `auth/token/lookup-self`, reading only the two fields rumor records
/// (vaultrs's own response type insists on fields OpenBao may leave out).
struct LookupSelf;

#[derive(Deserialize)]
struct Identity {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    entity_id: Option<String>,
}

impl Endpoint for LookupSelf {
    type Response = Identity;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        "auth/token/lookup-self".to_owned()
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::GET
    }
}

impl Vault {
    /// Sets the provenance of the timestamped version at `path` as its
    /// custom metadata (its operator filled in by the caller). A token that
    /// may write data but not metadata fails here, naming the metadata path.
    pub(super) fn annotate(&self, path: &str, provenance: &Provenance) -> Result<(), StoreError> {
        let (mount, rest) = split_mount(path)?;
        let metadata = provenance.to_metadata();
        let request = || SetSecretMetadataRequest {
            mount: mount.to_owned(),
            path: rest.to_owned(),
            custom_metadata: Some(metadata.clone()),
            ..Default::default()
        };
        self.run(|client| {
            let request = request();
            let consistency = &self.consistency;
            async move { super::exec(&client, consistency, request).await.map(|_| ()) }
        })
            .map_err(|failure| match failure {
                Failure::Denied(reason) => Failure::Denied(format!(
                    "{reason}; rumor records who wrote each version in its metadata: allow \"update\" on {mount}/metadata/*"
                )),
                failure => failure,
            })
            .map_err(|failure| self.error(&format!("{mount}/metadata/{rest}"), failure))
    }

    /// The token's display name, with its entity id when it has one, and
    /// whether that answer lasts for the run. A token that may not look
    /// itself up is recorded as such rather than failing the write: the
    /// version is still written, by "a Vault token". A lookup that got no
    /// answer (a timeout, a 5xx) is recorded the same way for this write
    /// only; the next write asks again.
    pub(super) fn lookup_operator(&self) -> (String, bool) {
        // Not `run`: a 403 here is the policy's answer, not a sign that
        // the token expired, and must not halt a fleet run.
        let lookup = self.run_as(false, None, |client| {
            super::with_data(client, &self.consistency, LookupSelf)
        });
        match lookup {
            Ok(id) => {
                let name = id
                    .display_name
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "token".to_owned());
                let name = match id.entity_id.filter(|e| !e.is_empty()) {
                    Some(entity) => format!("{name} (entity {entity})"),
                    None => name,
                };
                (name, true)
            }
            Err(Failure::Denied(_)) => (
                "a Vault token (auth/token/lookup-self was refused)".to_owned(),
                true,
            ),
            Err(_) => (
                "a Vault token (auth/token/lookup-self failed)".to_owned(),
                false,
            ),
        }
    }
}
