//! `id`, `key` and `pin` (name, length): random strings.
//!
//! ids are alphanumeric and public (0644), keys alphanumeric and private,
//! pins decimal digits and private, as in the original.

use rand::Rng;
use zeroize::Zeroizing;

use super::{decl, Arg, Args, Context, CryptoRngCore, GenError, Generator, Output};

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const DIGITS: &[u8] = b"0123456789";

/// The longest random string a spec may ask for.
pub(crate) const MAX_LENGTH: u64 = 4096;

/// A random-string generator.
pub(crate) struct Random {
    doc: &'static str,
    args: &'static [Arg],
    alphabet: &'static [u8],
}

/// `id`: 16 alphanumeric characters, public.
pub(crate) static ID: Random = Random {
    doc: "a random alphanumeric id, public",
    args: &[
        Arg::public("name", "the id"),
        Arg::int("length", 16, 1, MAX_LENGTH, "characters"),
    ],
    alphabet: ALPHANUMERIC,
};
/// `key`: 32 alphanumeric characters, private.
pub(crate) static KEY: Random = Random {
    doc: "a random alphanumeric key, private",
    args: &[
        Arg::private("name", "the key"),
        Arg::int("length", 32, 1, MAX_LENGTH, "characters"),
    ],
    alphabet: ALPHANUMERIC,
};
/// `pin`: 8 digits, private.
pub(crate) static PIN: Random = Random {
    doc: "a random decimal pin, private",
    args: &[
        Arg::private("name", "the pin"),
        Arg::int("length", 8, 1, MAX_LENGTH, "digits"),
    ],
    alphabet: DIGITS,
};

/// `length` characters drawn uniformly from `alphabet`.
pub(crate) fn string(
    rng: &mut dyn CryptoRngCore,
    alphabet: &[u8],
    length: usize,
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(length));
    for _ in 0..length {
        out.push(alphabet[rng.gen_range(0..alphabet.len())]);
    }
    out
}

/// An alphanumeric password of `length` characters.
pub(crate) fn alphanumeric(rng: &mut dyn CryptoRngCore, length: usize) -> Zeroizing<Vec<u8>> {
    string(rng, ALPHANUMERIC, length)
}

impl Generator for Random {
    fn doc(&self) -> &'static str {
        self.doc
    }

    fn args(&self) -> &'static [Arg] {
        self.args
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let length = decl::int(self.args, args, "length")? as usize;
        let name = args.name("name")?;
        let value = string(cx.rng, self.alphabet, length);
        let public = !self.public_outputs(args).is_empty();
        Ok(vec![if public {
            Output::public(name, value.to_vec())
        } else {
            Output::secret(name, value)
        }])
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
        assert!(alphanumeric(&mut rng, 64)
            .iter()
            .all(u8::is_ascii_alphanumeric));
    }
}
