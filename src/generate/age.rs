//! `age` (private, public): an `AGE-SECRET-KEY-1…` identity and its
//! `age1…` recipient, as `age-keygen` makes them.

use age::secrecy::ExposeSecret;

use super::{Arg, Args, Context, GenError, Generator, Output};

/// The `age` generator.
pub(crate) struct Age;

const ARGS: &[Arg] = &[
    Arg::private("private", "the identity, AGE-SECRET-KEY-1…"),
    Arg::public("public", "its recipient, age1…"),
];

impl Generator for Age {
    fn doc(&self) -> &'static str {
        "an age identity and its recipient, as age-keygen makes them"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn generate(&self, args: &Args, _cx: &mut Context) -> Result<Vec<Output>, GenError> {
        // age draws the key from the OS generator itself; it offers no way
        // to pass one in.
        let identity = age::x25519::Identity::generate();
        let secret = identity.to_string();
        let recipient = identity.to_public().to_string();
        Ok(vec![
            Output::private(args.name("private")?, secret.expose_secret().as_bytes()),
            Output::public(args.name("public")?, recipient),
        ])
    }
}
