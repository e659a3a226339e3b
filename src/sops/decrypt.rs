//! Reading a SOPS file: parse, open the data key, decrypt every value the
//! rule says is encrypted, and check the MAC over the whole tree.

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::leaf::{self, DataKey};
use super::metadata::{lastmodified_aad, unwrap, Metadata, Rule};
use super::scalar::{go_float_plain, go_float_yaml};
use super::tree::{Kind, Node};
use super::SopsError;

/// A file opened with its data key.
pub(crate) struct Opened {
    /// The documents as parsed, without the `sops` key.
    pub raw: Vec<Mapping>,
    /// The metadata block.
    pub metadata: Metadata,
    /// The data key.
    pub key: DataKey,
    /// The decrypted documents.
    pub docs: Vec<Node>,
}

/// Parses the documents and takes out the metadata, without decrypting.
pub(crate) fn parse(text: &str) -> Result<(Vec<Mapping>, Metadata), SopsError> {
    // libyaml takes quadratic time on deep `[`/`{` runs; refuse them first.
    crate::yaml::check_flow_depth(text).map_err(|line| SopsError::Yaml {
        reason: format!(
            "nested deeper than {} levels at line {line}",
            crate::yaml::MAX_FLOW_DEPTH
        ),
    })?;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| SopsError::Yaml {
            reason: e.to_string(),
        })?;
        match value {
            Value::Mapping(map) => docs.push(map),
            // A stream of nothing but comments or `---` is one null document.
            Value::Null if docs.is_empty() => {}
            _ => return Err(SopsError::NotAMap { index: docs.len() }),
        }
    }
    if docs.is_empty() {
        return Err(SopsError::Empty);
    }
    // sops writes the block into every document; the first one counts.
    let mut metadata = None;
    for doc in &mut docs {
        if let Some(block) = doc.shift_remove("sops") {
            metadata.get_or_insert(block);
        }
    }
    let metadata = Metadata::from_value(metadata.ok_or(SopsError::NoMetadata)?)?;
    Ok((docs, metadata))
}

/// Opens and verifies a file.
pub(crate) fn open(
    text: &str,
    identities: &[crate::identity::Identity],
) -> Result<Opened, SopsError> {
    let (raw, metadata) = parse(text)?;
    metadata.check_version()?;
    let rule = metadata.rule()?;
    let lastmodified = metadata
        .lastmodified
        .as_deref()
        .ok_or(SopsError::Metadata {
            field: "lastmodified",
            reason: "is missing".into(),
        })?;
    let aad = lastmodified_aad(lastmodified)?;
    let key = unwrap(metadata.age_entries()?, identities)?;
    let mut walk = Walk {
        key: &key,
        rule,
        mac_only_encrypted: metadata.mac_only_encrypted,
        hash: Sha512::new(),
    };
    if walk.mac_only_encrypted {
        walk.hash.update(Sha256::digest(b"sops"));
    }
    let mut docs = Vec::with_capacity(raw.len());
    for map in &raw {
        docs.push(walk.map(map, &mut Vec::new())?);
    }
    let computed = hex::encode_upper(walk.hash.finalize());
    let mac = metadata
        .mac
        .as_deref()
        .filter(|m| !m.is_empty())
        .ok_or(SopsError::MacMissing)?;
    let enc = leaf::parse(mac)
        .ok()
        .flatten()
        .ok_or(SopsError::MacUndecryptable)?;
    let stored = leaf::open(&key, &enc, aad.as_bytes()).ok_or(SopsError::MacUndecryptable)?;
    if !bool::from(stored.as_slice().ct_eq(computed.as_bytes())) {
        return Err(SopsError::MacMismatch);
    }
    Ok(Opened {
        raw,
        metadata,
        key,
        docs,
    })
}

struct Walk<'k> {
    key: &'k DataKey,
    rule: Rule,
    mac_only_encrypted: bool,
    hash: Sha512,
}

/// The additional data of a value: each key on its path followed by `:`.
pub(crate) fn path_aad(path: &[String]) -> String {
    path.iter().map(|k| format!("{k}:")).collect()
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

impl Walk<'_> {
    fn map(&mut self, map: &Mapping, path: &mut Vec<String>) -> Result<Node, SopsError> {
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Value::String(k) = k else {
                return Err(SopsError::NonStringKey {
                    path: path_aad(path),
                });
            };
            path.push(k.clone());
            let node = self.value(v, path)?;
            path.pop();
            entries.push((k.clone(), node));
        }
        Ok(Node::Map(entries))
    }

    fn value(&mut self, value: &Value, path: &mut Vec<String>) -> Result<Node, SopsError> {
        match value {
            Value::Mapping(map) => self.map(map, path),
            Value::Sequence(items) => items
                .iter()
                .map(|item| self.value(item, path))
                .collect::<Result<_, _>>()
                .map(Node::List),
            Value::Null => Ok(Node::Null),
            Value::Tagged(tagged) => self.value(&tagged.value, path),
            scalar if self.rule.encrypts(path) => self.encrypted(scalar, path),
            scalar => Ok(self.plain(scalar)),
        }
    }

    /// An unencrypted scalar, hashed as sops hashes it after re-parsing.
    fn plain(&mut self, value: &Value) -> Node {
        let (kind, text, hashed) = match value {
            Value::Bool(b) => (
                Kind::Bool,
                b.to_string(),
                if *b { "True" } else { "False" }.to_owned(),
            ),
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                (Kind::Float, go_float_yaml(f), go_float_plain(f))
            }
            Value::Number(n) => (Kind::Int, n.to_string(), n.to_string()),
            Value::String(s) => (Kind::Str, s.clone(), s.clone()),
            _ => return Node::Null,
        };
        if !self.mac_only_encrypted {
            self.hash.update(hashed.as_bytes());
        }
        Node::Scalar(kind, Zeroizing::new(text))
    }

    fn encrypted(&mut self, value: &Value, path: &[String]) -> Result<Node, SopsError> {
        let aad = path_aad(path);
        let Value::String(text) = value else {
            return Err(SopsError::NotEncrypted {
                path: aad,
                found: kind_name(value),
            });
        };
        // sops leaves empty strings as they are.
        if text.is_empty() {
            return Ok(Node::str(""));
        }
        let bad = |reason| SopsError::BadValue {
            path: aad.clone(),
            reason,
        };
        let enc = leaf::parse(text)
            .map_err(bad)?
            .ok_or_else(|| SopsError::NotEncrypted {
                path: aad.clone(),
                found: "a plain string",
            })?;
        let bytes = leaf::open(self.key, &enc, aad.as_bytes())
            .ok_or_else(|| SopsError::Decrypt { path: aad.clone() })?;
        self.hash.update(bytes.as_slice());
        let utf8 =
            String::from_utf8(bytes.to_vec()).map_err(|_| bad("the plaintext is not UTF-8"))?;
        let text = Zeroizing::new(utf8);
        let node = match enc.kind.as_str() {
            "str" | "bytes" => Node::Scalar(Kind::Str, text),
            "time" => Node::Scalar(Kind::Time, text),
            "int" => {
                text.parse::<i64>()
                    .map_err(|_| bad("its type is int but it is not a 64-bit integer"))?;
                Node::Scalar(Kind::Int, text)
            }
            "float" => {
                let f = go_parse_float(&text)
                    .ok_or_else(|| bad("its type is float but it is not a number"))?;
                Node::Scalar(Kind::Float, Zeroizing::new(go_float_yaml(f)))
            }
            "bool" => match text.as_str() {
                "True" | "true" => Node::Scalar(Kind::Bool, Zeroizing::new("true".into())),
                "False" | "false" => Node::Scalar(Kind::Bool, Zeroizing::new("false".into())),
                _ => return Err(bad("its type is bool but it is not True or False")),
            },
            _ => {
                return Err(bad(
                    "its type is not one of str, int, float, bool, time, bytes",
                ))
            }
        };
        Ok(node)
    }
}

/// Go's `ParseFloat` spellings of infinity and NaN, then Rust's parser.
fn go_parse_float(text: &str) -> Option<f64> {
    match text.to_ascii_lowercase().as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sops::metadata::wrap;

    /// The worked example of the format note (§9): real sops ciphertexts
    /// under a known data key, with the MAC sealed over a chosen input. Only
    /// the input `world42` (leaf bytes, no keys, no separators) verifies.
    fn example(mac_input: &[u8], id: &crate::identity::Identity) -> String {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(
            "af6dc30b15dd5c3166a8381b923bfb295429d3552780c3366d1a2fad48d77adc",
            key.as_mut(),
        )
        .unwrap();
        let digest = hex::encode_upper(Sha512::digest(mac_input));
        let mac = leaf::seal_with_iv(
            &key,
            digest.as_bytes(),
            b"2026-11-23T05:40:49Z",
            "str",
            &[9u8; 32],
        )
        .unwrap();
        let enc = wrap(&key, &id.to_public())
            .unwrap()
            .lines()
            .map(|l| format!("            {l}\n"))
            .collect::<String>();
        format!(
            "hello: ENC[AES256_GCM,data:M/y9WTQ=,iv:vxoFqL5Fl2/aQiDeUjIURhlqROtiR9c5nXZNEi/f8eI=,tag:F8cKfaYoDdON2g8efApINQ==,type:str]\n\
             num: ENC[AES256_GCM,data:Jwg=,iv:5x/czFjXWePZd0BExUdx2g8vogK6nCQWe41cWN0M3iY=,tag:BvfV1whIo8NjMJ6HjMkKdg==,type:int]\n\
             sops:\n    age:\n        - recipient: {}\n          enc: |\n{enc}    lastmodified: \"2026-11-23T05:40:49Z\"\n    mac: {mac}\n\
             \x20   unencrypted_suffix: _unencrypted\n    version: 3.11.0\n",
            id.to_public()
        )
    }

    #[test]
    fn worked_example() {
        let id = crate::identity::Identity::generate();
        let opened = open(&example(b"world42", &id), std::slice::from_ref(&id)).unwrap();
        let crate::sops::tree::Node::Map(entries) = &opened.docs[0] else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 2);
        for wrong in [&b"world"[..], b"hello:worldnum:42", b"world\n42"] {
            assert!(matches!(
                open(&example(wrong, &id), std::slice::from_ref(&id)),
                Err(SopsError::MacMismatch)
            ));
        }
    }
}
