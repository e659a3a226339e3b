//! `mkpasswd` (private, public, length=8): a random alphanumeric password
//! and its yescrypt crypt(3) hash, as `mkpasswd --method=yescrypt` makes.

use yescrypt::{PasswordHasher, Yescrypt};
use zeroize::Zeroizing;

use super::random::{alphanumeric, MAX_LENGTH};
use super::{Args, ArgError, Context, CryptoRngCore, GenError, Generator, Output};

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

impl Generator for Mkpasswd {
    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        args.int_or("length", 8, 1, MAX_LENGTH)?;
        Ok(vec![args.name("private")?.to_owned(), args.name("public")?.to_owned()])
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let length = args.int_or("length", 8, 1, MAX_LENGTH)? as usize;
        let password: Zeroizing<Vec<u8>> = alphanumeric(cx.rng, length);
        let hash = yescrypt_hash(&password, cx.rng)?;
        Ok(vec![Output::secret(args.name("private")?, password), Output::public(args.name("public")?, hash)])
    }

    fn public_outputs(&self, args: &Args) -> Vec<String> {
        args.name("public").map(|n| vec![n.to_owned()]).unwrap_or_default()
    }
}
