//! `id`, `key` and `pin` (name, length): random strings.
//!
//! ids are alphanumeric and public (0644), keys alphanumeric and private,
//! pins decimal digits and private, as in the original.

use rand::Rng;
use zeroize::Zeroizing;

use super::{Args, ArgError, Context, CryptoRngCore, GenError, Generator, Output};

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const DIGITS: &[u8] = b"0123456789";

/// The longest random string a spec may ask for.
pub const MAX_LENGTH: u64 = 4096;

/// A random-string generator.
pub struct Random {
    default_length: u64,
    alphabet: &'static [u8],
    public: bool,
}

/// `id`: 16 alphanumeric characters, public.
pub static ID: Random = Random { default_length: 16, alphabet: ALPHANUMERIC, public: true };
/// `key`: 32 alphanumeric characters, private.
pub static KEY: Random = Random { default_length: 32, alphabet: ALPHANUMERIC, public: false };
/// `pin`: 8 digits, private.
pub static PIN: Random = Random { default_length: 8, alphabet: DIGITS, public: false };

/// `length` characters drawn uniformly from `alphabet`.
pub fn string(rng: &mut dyn CryptoRngCore, alphabet: &[u8], length: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(length));
    for _ in 0..length {
        out.push(alphabet[rng.gen_range(0..alphabet.len())]);
    }
    out
}

/// An alphanumeric password of `length` characters.
pub fn alphanumeric(rng: &mut dyn CryptoRngCore, length: usize) -> Zeroizing<Vec<u8>> {
    string(rng, ALPHANUMERIC, length)
}

impl Generator for Random {
    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        args.int_or("length", self.default_length, 1, MAX_LENGTH)?;
        Ok(vec![args.name("name")?.to_owned()])
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let length = args.int_or("length", self.default_length, 1, MAX_LENGTH)? as usize;
        let name = args.name("name")?;
        let value = string(cx.rng, self.alphabet, length);
        Ok(vec![if self.public { Output::public(name, value.to_vec()) } else { Output::secret(name, value) }])
    }

    fn public_outputs(&self, args: &Args) -> Vec<String> {
        match (self.public, args.name("name")) {
            (true, Ok(name)) => vec![name.to_owned()],
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabets_and_lengths() {
        let mut rng = rand::rngs::OsRng;
        let s = string(&mut rng, DIGITS, 1000);
        assert_eq!(s.len(), 1000);
        assert!(s.iter().all(u8::is_ascii_digit));
        // All ten digits show up in a thousand draws.
        for d in DIGITS {
            assert!(s.contains(d));
        }
        assert!(alphanumeric(&mut rng, 64).iter().all(u8::is_ascii_alphanumeric));
    }
}
