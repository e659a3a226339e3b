//! Read-after-write on a cluster whose standbys serve reads.
//!
//! An OpenBao (2.7 and later) standby answers reads from its own copy of
//! the storage, which may lag the active node's: a read right after a
//! write can miss it, and rumor's check-and-set then fails on its own
//! write. Its answers (to KV reads and writes, logins, lookups) carry the
//! storage position the node has reached in `X-Vault-Index`; a request that sends one back with
//! `X-Vault-Inconsistent: forward-active-node` is answered by a standby
//! only once it has reached that position, and by the active node (the
//! standby forwards it) before then.
//!
//! So rumor keeps the newest position any answer carried, shared by every
//! worker of the run, and sends it with every request once it has one.
//! The server takes one `X-Vault-Index` value at most (it refuses two with
//! a 400), so keeping one is also what the protocol asks.
//!
//! One command is one run, and the next command must read what the last
//! one wrote: the newest position is left in the user's cache
//! (`~/.cache/rumor/vault-index/`, one file per VAULT_ADDR, mode 0600)
//! when the store closes, and the next run starts from it. A position is
//! no secret: a cluster id and a count. A server that refuses a position
//! (a 400 naming `X-Vault-Index`: another cluster now answers at that
//! address, say) gets the request again without one, and the position is
//! dropped.
//!
//! The value is meant to be opaque. What OpenBao 2.7 sends is base64 of a
//! small JSON object naming the cluster and its raft index (earlier
//! builds sent `<cluster>:<index>`); where a value reads as either, two
//! of the same cluster are compared so that the answer of a lagging
//! standby, or one that arrives late from another worker, never replaces
//! a newer position. A value that reads as neither is kept as the latest
//! received. The value is sent back byte for byte as it came.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

/// The position header, in answers and requests.
const INDEX: HeaderName = HeaderName::from_static("x-vault-index");

/// What a standby that has not reached the position should do.
const INCONSISTENT: HeaderName = HeaderName::from_static("x-vault-inconsistent");

/// Forward the request to the active node rather than answer it stale.
const FORWARD: HeaderValue = HeaderValue::from_static("forward-active-node");

/// Longer values are not positions; a proxy's or a stranger's.
const MAX_LEN: usize = 1024;

/// The newest storage position seen in this run.
#[derive(Default)]
pub(super) struct Consistency {
    newest: Mutex<Option<Position>>,
    /// Where the position is kept between runs, if anywhere.
    file: Option<PathBuf>,
    /// Whether this run saw a newer position than the file had.
    changed: AtomicBool,
    /// Whether the server refused a position this run.
    refused: AtomicBool,
}

struct Position {
    /// As the server sent it, to send back.
    raw: HeaderValue,
    /// The cluster and raft index, where the value reads as such.
    order: Option<(String, u64)>,
}

impl Consistency {
    /// Starts from the position the last run against `addr` left in the
    /// user's cache, if any; keeps the newest there when dropped.
    pub(super) fn resume(addr: &str) -> Consistency {
        Consistency::resume_from(cache_file(addr))
    }

    /// Starts from the position in `file`; keeps the newest there.
    fn resume_from(file: Option<PathBuf>) -> Consistency {
        let Some(file) = file else {
            return Consistency::default();
        };
        let mut consistency = Consistency::default();
        consistency.note_file(&file);
        consistency.changed.store(false, Ordering::Relaxed);
        consistency.file = Some(file);
        consistency
    }

    /// Notes the position kept in `file`, if it holds one.
    fn note_file(&self, file: &Path) {
        if let Ok(bytes) = crate::fsutil::read_regular(file, MAX_LEN as u64) {
            if let Ok(raw) = HeaderValue::from_bytes(bytes.trim_ascii()) {
                let mut headers = HeaderMap::new();
                headers.insert(INDEX, raw);
                self.note(&headers);
            }
        }
    }

    /// Forgets the position: the server refused it.
    pub(super) fn forget(&self) {
        *self.newest.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.changed.store(true, Ordering::Relaxed);
        self.refused.store(true, Ordering::Relaxed);
    }

    /// Adds the newest position and `forward-active-node` to a request;
    /// nothing before any answer carried a position. Whether it did.
    pub(super) fn send(&self, headers: &mut HeaderMap) -> bool {
        let newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        match newest.as_ref() {
            Some(position) => {
                headers.insert(INDEX, position.raw.clone());
                headers.insert(INCONSISTENT, FORWARD);
                true
            }
            None => false,
        }
    }

    /// Keeps an answer's position if it is newer than the one kept.
    pub(super) fn note(&self, headers: &HeaderMap) {
        let Some(raw) = headers.get(INDEX) else {
            return;
        };
        if raw.is_empty() || raw.len() > MAX_LEN {
            return;
        }
        let seen = Position {
            raw: raw.clone(),
            order: order(raw.as_bytes()),
        };
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        if newest.as_ref().is_none_or(|kept| seen.replaces(kept)) {
            *newest = Some(seen);
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    /// Leaves the newest position for the next run, if it changed; a
    /// cache that cannot be written only costs the next run that. What
    /// another run left there meanwhile counts too, so of two runs ending
    /// together the later cannot put back an older position.
    fn save(&self) {
        let Some(file) = &self.file else { return };
        if !self.changed.load(Ordering::Relaxed) {
            return;
        }
        if !self.refused.load(Ordering::Relaxed) {
            self.note_file(file);
        }
        let newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = newest.as_ref().map_or(&[][..], |p| p.raw.as_bytes());
        if let Some(dir) = file.parent() {
            if crate::fsutil::create_private_dir(dir).is_ok() {
                let _ = crate::fsutil::write_atomic(file, bytes, 0o600);
            }
        }
    }

    /// The position that would be sent, for tests.
    #[cfg(test)]
    fn newest(&self) -> Option<String> {
        let newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        newest
            .as_ref()
            .and_then(|p| p.raw.to_str().ok().map(str::to_owned))
    }
}

impl Drop for Consistency {
    fn drop(&mut self) {
        self.save();
    }
}

/// `$XDG_CACHE_HOME/rumor/vault-index/<hash of addr>`, or under
/// `$HOME/.cache`; None without either.
fn cache_file(addr: &str) -> Option<PathBuf> {
    let base = crate::fsutil::user_dir("XDG_CACHE_HOME", ".cache")?;
    let name = hex::encode(&Sha256::digest(addr.trim_end_matches('/').as_bytes())[..16]);
    Some(base.join(Path::new("rumor/vault-index")).join(name))
}

impl Position {
    /// Whether `self`, just received, should be kept over `kept`: unless
    /// both are of one cluster and `self` is not past `kept`.
    fn replaces(&self, kept: &Position) -> bool {
        match (&self.order, &kept.order) {
            (Some((cluster, index)), Some((kept_cluster, kept_index)))
                if cluster == kept_cluster =>
            {
                index > kept_index
            }
            _ => true,
        }
    }
}

/// The cluster and index of a value: base64 of
/// `{"cluster": "...", "value": "<index>"}`, or `<cluster>:<index>`.
fn order(raw: &[u8]) -> Option<(String, u64)> {
    #[derive(serde::Deserialize)]
    struct Encoded {
        cluster: String,
        value: serde_json::Value,
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ];
    if let Some(json) = engines.iter().find_map(|e| e.decode(raw).ok()) {
        if let Ok(encoded) = serde_json::from_slice::<Encoded>(&json) {
            let index = match &encoded.value {
                serde_json::Value::String(s) => s.parse().ok(),
                serde_json::Value::Number(n) => n.as_u64(),
                _ => None,
            };
            return index.map(|i| (encoded.cluster, i));
        }
    }
    let text = std::str::from_utf8(raw).ok()?;
    let (cluster, index) = text.rsplit_once(':')?;
    Some((cluster.to_owned(), index.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(cluster: &str, value: &str) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!(r#"{{"cluster":"{cluster}","value":"{value}"}}"#))
    }

    fn answer(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(INDEX, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn nothing_is_sent_before_a_position() {
        let c = Consistency::default();
        let mut request = HeaderMap::new();
        c.send(&mut request);
        assert!(request.is_empty());
        c.note(&HeaderMap::new());
        c.send(&mut request);
        assert!(request.is_empty());
    }

    #[test]
    fn the_newest_position_is_sent_with_forwarding() {
        let c = Consistency::default();
        let (p39, p40, p41) = (
            encoded("c1", "39"),
            encoded("c1", "40"),
            encoded("c1", "41"),
        );
        c.note(&answer(&p40));
        // A lagging standby's answer, or a late one, does not go back.
        c.note(&answer(&p39));
        assert_eq!(c.newest().as_deref(), Some(p40.as_str()));
        c.note(&answer(&p41));
        let mut request = HeaderMap::new();
        c.send(&mut request);
        assert_eq!(request.get_all(INDEX).iter().count(), 1);
        assert_eq!(request[INDEX], p41.as_str());
        assert_eq!(request[INCONSISTENT], "forward-active-node");
    }

    #[test]
    fn the_next_run_starts_from_the_last_position() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache/rumor/vault-index/x");
        let (p40, p41) = (encoded("c1", "40"), encoded("c1", "41"));
        let first = Consistency::resume_from(Some(file.clone()));
        assert_eq!(first.newest(), None);
        first.note(&answer(&p41));
        drop(first);
        assert_eq!(std::fs::read(&file).unwrap(), p41.as_bytes());
        let second = Consistency::resume_from(Some(file.clone()));
        assert_eq!(second.newest().as_deref(), Some(p41.as_str()));
        // A lagging node's answer neither replaces it nor rewrites the file.
        second.note(&answer(&p40));
        drop(second);
        assert_eq!(std::fs::read(&file).unwrap(), p41.as_bytes());
        // Another run that ended meanwhile with a newer position keeps it.
        let late = Consistency::resume_from(Some(file.clone()));
        late.note(&answer(&encoded("c1", "42")));
        let early = Consistency::resume_from(Some(file.clone()));
        early.note(&answer(&encoded("c1", "43")));
        drop(early);
        drop(late);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            encoded("c1", "43").as_bytes()
        );
        // A refused position is dropped, for this run and the next.
        let third = Consistency::resume_from(Some(file.clone()));
        third.forget();
        drop(third);
        assert_eq!(Consistency::resume_from(Some(file)).newest(), None);
    }

    #[test]
    fn older_forms_and_opaque_values() {
        assert_eq!(order(b"abc:12"), Some(("abc".to_owned(), 12)));
        assert_eq!(
            order(encoded("c", "7").as_bytes()),
            Some(("c".to_owned(), 7))
        );
        assert_eq!(order(b"opaque"), None);
        let c = Consistency::default();
        c.note(&answer("abc:12"));
        c.note(&answer("abc:11"));
        assert_eq!(c.newest().as_deref(), Some("abc:12"));
        // Another cluster, or a value that is not a position rumor can
        // read: the latest received.
        c.note(&answer("other:1"));
        assert_eq!(c.newest().as_deref(), Some("other:1"));
        c.note(&answer("opaque"));
        assert_eq!(c.newest().as_deref(), Some("opaque"));
        c.note(&answer(&"x".repeat(MAX_LEN + 1)));
        assert_eq!(c.newest().as_deref(), Some("opaque"));
    }
}
