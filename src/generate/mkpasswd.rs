//! `mkpasswd` (private, public, length=8): a random alphanumeric password
//! and its yescrypt crypt(3) hash, as `mkpasswd --method=yescrypt` makes.

use yescrypt::{PasswordHasher, Yescrypt};
use zeroize::Zeroizing;

use super::random::{alphanumeric, MAX_LENGTH};
use super::{decl, Arg, Args, Context, CryptoRngCore, GenError, Generator, Output};

/// The `mkpasswd` generator.
pub struct Mkpasswd;

/// The `$y$…` hash of `password` with a fresh 16-byte salt and libxcrypt's
/// default cost (N=4096, r=32), which `mkpasswd` also uses.
pub fn yescrypt_hash(password: &[u8], rng: &mut dyn CryptoRngCore) -> Result<String, GenError> {
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    Yescrypt::default()
        .hash_password_with_salt(password, &salt)
        .map(|h| h.as_str().to_owned())
        .map_err(|e| GenError::Failed(format!("yescrypt failed: {e}")))
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

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let length = decl::int(ARGS, args, "length")? as usize;
        let password: Zeroizing<Vec<u8>> = alphanumeric(cx.rng, length);
        let hash = yescrypt_hash(&password, cx.rng)?;
        Ok(vec![Output::secret(args.name("private")?, password), Output::public(args.name("public")?, hash)])
    }
}
