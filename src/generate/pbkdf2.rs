//! `pbkdf2` (key, name, iterations=100000): the hash the cloud stores for a
//! device's API key, `pbkdf2-sha256$<iterations>$<salt>$<hash>`.
//!
//! PBKDF2-HMAC-SHA256 with a 16-byte random salt and a 32-byte result; salt
//! and hash are standard Base64 with padding. The key file's content is
//! trimmed first, since the device sends the key without a line ending.
//! [`verify`] checks a key against such a hash (`rumor api-key verify`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{decl, Arg, ArgError, Args, Context, GenError, Generator, Output, Role};

/// The `pbkdf2` generator.
pub struct Pbkdf2;

/// The scheme label that starts every hash.
pub const SCHEME: &str = "pbkdf2-sha256";
/// Iterations when the spec gives none.
pub const DEFAULT_ITERATIONS: u64 = 100_000;
/// The most iterations accepted, so a hostile hash cannot stall a verifier.
pub const MAX_ITERATIONS: u64 = 10_000_000;
const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;

/// Why a hash string cannot be checked. Never echoes any part of it: a
/// swapped command line would put the key where the hash belongs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pbkdf2Error {
    /// Not four `$`-separated fields.
    #[error("the hash is not of the form {SCHEME}$<iterations>$<salt>$<hash>")]
    Shape,
    /// The first field is not [`SCHEME`].
    #[error(
        "the hash does not start with \"{SCHEME}$\"; only PBKDF2-HMAC-SHA256 hashes are supported"
    )]
    Scheme,
    /// The iteration count is not a number from 1 to [`MAX_ITERATIONS`].
    #[error("the hash's iteration count must be a whole number from 1 to {MAX_ITERATIONS}")]
    Iterations,
    /// A field is not standard padded Base64.
    #[error("the hash's {field} is not standard Base64 with padding")]
    Base64 {
        /// `salt` or `hash`.
        field: &'static str,
    },
    /// A field decodes to the wrong number of bytes.
    #[error("the hash's {field} is {found} bytes; it must be {expected}")]
    Length {
        /// `salt` or `hash`.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: usize,
    },
}

/// The encoded hash of `key` with `salt`.
pub fn encode(key: &[u8], salt: &[u8], iterations: u32) -> String {
    let hash = derive(key, salt, iterations);
    format!(
        "{SCHEME}${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash.as_slice())
    )
}

fn derive(key: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; HASH_BYTES]> {
    let mut out = Zeroizing::new([0u8; HASH_BYTES]);
    super::kdf::limited(|| pbkdf2::pbkdf2_hmac::<Sha256>(key, salt, iterations, &mut *out));
    out
}

/// Whether `key` matches `encoded`, compared in constant time.
pub fn verify(encoded: &str, key: &[u8]) -> Result<bool, Pbkdf2Error> {
    let fields: Vec<&str> = encoded.trim().split('$').collect();
    let [scheme, iterations, salt, hash] = fields.as_slice() else {
        return Err(Pbkdf2Error::Shape);
    };
    if *scheme != SCHEME {
        return Err(Pbkdf2Error::Scheme);
    }
    let iterations: u32 = match iterations.parse::<u32>() {
        Ok(n) if n >= 1 && u64::from(n) <= MAX_ITERATIONS && !iterations.starts_with('+') => n,
        _ => return Err(Pbkdf2Error::Iterations),
    };
    let salt = STANDARD
        .decode(salt)
        .map_err(|_| Pbkdf2Error::Base64 { field: "salt" })?;
    // Other producers may use other salt sizes; anything from 8 bytes on is sound.
    if !(8..=64).contains(&salt.len()) {
        return Err(Pbkdf2Error::Length {
            field: "salt",
            expected: "8 to 64",
            found: salt.len(),
        });
    }
    let expected = STANDARD
        .decode(hash)
        .map_err(|_| Pbkdf2Error::Base64 { field: "hash" })?;
    if expected.len() != HASH_BYTES {
        return Err(Pbkdf2Error::Length {
            field: "hash",
            expected: "32",
            found: expected.len(),
        });
    }
    let actual = derive(key, &salt, iterations);
    Ok(bool::from(actual.as_slice().ct_eq(&expected)))
}

const ARGS: &[Arg] = &[
    Arg::input("key", "the API key file; a new key remakes the hash").role(Role::Source),
    Arg::private("name", "the hash file"),
    Arg::int(
        "iterations",
        DEFAULT_ITERATIONS,
        1,
        MAX_ITERATIONS,
        "PBKDF2 iterations",
    ),
];

fn iterations(args: &Args) -> Result<u32, ArgError> {
    let n = decl::int(ARGS, args, "iterations")?;
    // MAX_ITERATIONS fits in a u32, so this never fails.
    u32::try_from(n).map_err(|_| ArgError::Invalid {
        arg: "iterations".into(),
        why: format!("must be at most {MAX_ITERATIONS}"),
    })
}

impl Generator for Pbkdf2 {
    fn doc(&self) -> &'static str {
        "pbkdf2-sha256$<iterations>$<salt>$<hash> of an API key"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn heavy(&self) -> bool {
        true
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let iterations = iterations(args)?;
        let key_name = args.name("key")?;
        let file = cx
            .workspace
            .get(key_name)
            .ok_or_else(|| GenError::MissingInput {
                arg: "key",
                file: key_name.to_owned(),
            })?;
        let key = file.content.trim_ascii();
        if key.is_empty() {
            return Err(GenError::BadInput {
                arg: "key",
                file: key_name.to_owned(),
                reason: "is empty; generate the API key first".into(),
            });
        }
        let mut salt = [0u8; SALT_BYTES];
        cx.rng.fill_bytes(&mut salt);
        Ok(vec![Output::private(
            args.name("name")?,
            encode(key, &salt, iterations),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed() {
        let hash = encode(b"api-key", &[7u8; 16], 1000);
        assert!(
            hash.starts_with("pbkdf2-sha256$1000$BwcHBwcHBwcHBwcHBwcHBw==$"),
            "{hash}"
        );
        assert_eq!(verify(&hash, b"api-key"), Ok(true));
        assert_eq!(verify(&hash, b"api-kez"), Ok(false));
        let parts: Vec<&str> = hash.split('$').collect();
        let with = |i: usize, v: &str| {
            let mut p = parts.clone();
            p[i] = v;
            p.join("$")
        };
        assert_eq!(verify("api-key", b"x"), Err(Pbkdf2Error::Shape));
        assert_eq!(
            verify(&with(0, "pbkdf2-sha1"), b"x"),
            Err(Pbkdf2Error::Scheme)
        );
        for bad in ["0", "10000001", "-1", "+5", "ten", ""] {
            assert_eq!(
                verify(&with(1, bad), b"x"),
                Err(Pbkdf2Error::Iterations),
                "{bad}"
            );
        }
        assert_eq!(
            verify(&with(2, "not base64!"), b"x"),
            Err(Pbkdf2Error::Base64 { field: "salt" })
        );
        assert_eq!(
            verify(&with(2, "AAAA"), b"x"),
            Err(Pbkdf2Error::Length {
                field: "salt",
                expected: "8 to 64",
                found: 3
            })
        );
        assert_eq!(
            verify(&with(3, "AAAA"), b"x"),
            Err(Pbkdf2Error::Length {
                field: "hash",
                expected: "32",
                found: 3
            })
        );
        assert_eq!(
            verify(&with(3, "AAA"), b"x"),
            Err(Pbkdf2Error::Base64 { field: "hash" })
        );
    }

    #[test]
    fn errors_never_echo_the_input() {
        for input in ["secretkey", "pbkdf2-sha256$secret$x$y", "secret$1$2$3"] {
            let err = verify(input, b"k").unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
