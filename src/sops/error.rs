//! What can go wrong reading or writing a SOPS file.
//!
//! Messages name the file's structure (key paths, metadata fields,
//! recipients), never a value: a SOPS file's values are secrets, and so is
//! the MAC, which is a hash of them (real sops prints it; rumor does not).

/// A SOPS failure. No variant carries plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    /// The text is not YAML.
    #[error("the file is not valid YAML ({reason}); fix or regenerate it")]
    Yaml {
        /// The parser's complaint (a position, never content).
        reason: String,
    },
    /// There is no document at all.
    #[error("the file is empty; a sops file needs at least one map")]
    Empty,
    /// A document is not a map.
    #[error("document {index} is not a map; sops files hold maps at the top level")]
    NotAMap {
        /// Which document, from 0.
        index: usize,
    },
    /// No `sops:` block.
    #[error("the file has no \"sops\" metadata block; is it encrypted with sops?")]
    NoMetadata,
    /// A metadata field is missing or malformed.
    #[error("sops metadata field \"{field}\" {reason}; the file was edited or damaged")]
    Metadata {
        /// The field, such as `lastmodified`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `sops.version` names a major version other than 3.
    #[error("sops metadata field \"version\" is \"{version}\", a format version rumor does not read (only 3.x); decrypt it with the sops that wrote it")]
    UnknownVersion {
        /// The version as written, escaped and shortened.
        version: String,
    },
    /// The metadata uses something rumor does not read.
    #[error("unsupported sops feature: {what}; decrypt this file with sops itself")]
    Unsupported {
        /// The feature.
        what: String,
    },
    /// The metadata lists no age recipient.
    #[error("the file has no age recipients; rumor reads only age-encrypted sops files")]
    NoAgeRecipients,
    /// None of the identities opens any data key.
    #[error(
        "no age identity opens this file; it is encrypted for {}; set SOPS_AGE_KEY_FILE or pass --identity with one of their keys",
        recipients.join(", ")
    )]
    NoMatchingIdentity {
        /// The `age1…` recipients the file lists.
        recipients: Vec<String>,
    },
    /// An age block is not a valid age file, or holds something else than a key.
    #[error("the age data key block for {recipient} is unusable: {reason}")]
    DataKey {
        /// Its recipient.
        recipient: String,
        /// What is wrong.
        reason: String,
    },
    /// A map key is not a string.
    #[error("a key under \"{path}\" is not a string; sops files need string keys")]
    NonStringKey {
        /// The path of the map holding it.
        path: String,
    },
    /// A value the rules say is encrypted is something else.
    #[error("value at \"{path}\" should be encrypted but is {found}, not sops' ENC[AES256_GCM,...] format; the file was edited or damaged")]
    NotEncrypted {
        /// Its key path.
        path: String,
        /// What it is instead (a kind, never the value).
        found: &'static str,
    },
    /// An encrypted value has a bad field.
    #[error("encrypted value at \"{path}\" is malformed: {reason}")]
    BadValue {
        /// Its key path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Authenticated decryption of a value failed.
    #[error("value at \"{path}\" failed to decrypt (message authentication failed); the file was edited or damaged, or a key was renamed or moved")]
    Decrypt {
        /// Its key path.
        path: String,
    },
    /// `sops.mac` is absent.
    #[error("the file has no MAC (sops.mac); it cannot be trusted, regenerate it")]
    MacMissing,
    /// `sops.mac` does not decrypt under `sops.lastmodified`.
    #[error("the MAC does not decrypt (message authentication failed); sops.mac or sops.lastmodified was edited")]
    MacUndecryptable,
    /// The recomputed MAC differs from the stored one.
    #[error("MAC mismatch: the file's values do not match its MAC; a value was edited, added or removed")]
    MacMismatch,
    /// A key given to [`crate::sops::encrypt`] cannot be written.
    #[error("key \"{key}\" {reason}")]
    Key {
        /// The key (keys are structure, not secrets).
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// [`crate::sops::encrypt`] got no recipient.
    #[error("no age recipients given; a sops file needs at least one")]
    NoRecipients,
    /// age refused to wrap the data key.
    #[error("wrapping the data key with age failed: {reason}")]
    Age {
        /// age's reason.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::SopsError;

    #[test]
    fn every_variant_renders() {
        let s = String::from;
        let cases: Vec<(SopsError, &str)> = vec![
            (SopsError::Yaml { reason: s("line 3 column 1") }, "the file is not valid YAML (line 3 column 1); fix or regenerate it"),
            (SopsError::Empty, "the file is empty; a sops file needs at least one map"),
            (SopsError::NotAMap { index: 0 }, "document 0 is not a map; sops files hold maps at the top level"),
            (SopsError::NoMetadata, "the file has no \"sops\" metadata block; is it encrypted with sops?"),
            (
                SopsError::Metadata { field: "version", reason: s("is missing") },
                "sops metadata field \"version\" is missing; the file was edited or damaged",
            ),
            (
                SopsError::UnknownVersion { version: s("4.0.0") },
                "sops metadata field \"version\" is \"4.0.0\", a format version rumor does not read (only 3.x); decrypt it with the sops that wrote it",
            ),
            (
                SopsError::Unsupported { what: s("shamir key groups") },
                "unsupported sops feature: shamir key groups; decrypt this file with sops itself",
            ),
            (SopsError::NoAgeRecipients, "the file has no age recipients; rumor reads only age-encrypted sops files"),
            (
                SopsError::NoMatchingIdentity { recipients: vec![s("age1a"), s("age1b")] },
                "no age identity opens this file; it is encrypted for age1a, age1b; set SOPS_AGE_KEY_FILE or pass --identity with one of their keys",
            ),
            (
                SopsError::DataKey { recipient: s("age1a"), reason: s("not 32 bytes") },
                "the age data key block for age1a is unusable: not 32 bytes",
            ),
            (SopsError::NonStringKey { path: s("db") }, "a key under \"db\" is not a string; sops files need string keys"),
            (
                SopsError::NotEncrypted { path: s("db:port:"), found: "a number" },
                "value at \"db:port:\" should be encrypted but is a number, not sops' ENC[AES256_GCM,...] format; the file was edited or damaged",
            ),
            (
                SopsError::BadValue { path: s("a:"), reason: "the iv is not 32 bytes" },
                "encrypted value at \"a:\" is malformed: the iv is not 32 bytes",
            ),
            (
                SopsError::Decrypt { path: s("a:") },
                "value at \"a:\" failed to decrypt (message authentication failed); the file was edited or damaged, or a key was renamed or moved",
            ),
            (SopsError::MacMissing, "the file has no MAC (sops.mac); it cannot be trusted, regenerate it"),
            (
                SopsError::MacUndecryptable,
                "the MAC does not decrypt (message authentication failed); sops.mac or sops.lastmodified was edited",
            ),
            (
                SopsError::MacMismatch,
                "MAC mismatch: the file's values do not match its MAC; a value was edited, added or removed",
            ),
            (SopsError::Key { key: s("sops"), reason: "is reserved for the metadata" }, "key \"sops\" is reserved for the metadata"),
            (SopsError::NoRecipients, "no age recipients given; a sops file needs at least one"),
            (SopsError::Age { reason: s("io") }, "wrapping the data key with age failed: io"),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }
}
