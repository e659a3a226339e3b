//! `mkpasswd` (private, public, length=8): a random alphanumeric password
//! and its yescrypt crypt(3) hash, as `mkpasswd --method=yescrypt` makes.

pub(crate) mod crypt;

use zeroize::Zeroizing;

use super::random::alphanumeric;
use super::{decl, Arg, Args, Context, CryptoRngCore, GenError, Generator, Output};

/// The `mkpasswd` generator.
pub(crate) struct Mkpasswd;

/// The longest password: libxcrypt, here and in the device's login, hashes
/// no passphrase longer than this.
pub(crate) const MAX_LENGTH: u64 = crypt::MAX_PASSPHRASE as u64;

/// The `$y$…` hash of `password` with a fresh 16-byte salt and libxcrypt's
/// default cost (N=4096, r=32), which `mkpasswd` also uses.
pub(crate) fn yescrypt_hash(
    password: &[u8],
    rng: &mut dyn CryptoRngCore,
) -> Result<String, GenError> {
    let failed = |e: crypt::CryptError| GenError::Failed(format!("yescrypt: {e}"));
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    // Cost 0 is libxcrypt's default, the `j9T` that `mkpasswd` writes.
    let setting = crypt::gensalt(c"$y$", 0, &salt).map_err(failed)?;
    super::kdf::limited(|| crypt::crypt(password, &setting)).map_err(failed)
}

const ARGS: &[Arg] = &[
    Arg::private("private", "the password"),
    Arg::public("public", "its $y$ hash"),
    Arg::int("length", 8, 1, MAX_LENGTH, "the password's length"),
];

impl Generator for Mkpasswd {
    fn doc(&self) -> &'static str {
        "a random alphanumeric password and its yescrypt crypt(3) hash"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn heavy(&self) -> bool {
        true
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let length = decl::int(ARGS, args, "length")? as usize;
        let password: Zeroizing<Vec<u8>> = alphanumeric(cx.rng, length);
        let hash = yescrypt_hash(&password, cx.rng)?;
        Ok(vec![
            Output::secret(args.name("private")?, password),
            Output::public(args.name("public")?, hash),
        ])
    }
}
