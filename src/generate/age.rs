//! `age` (private, public): an `AGE-SECRET-KEY-1…` identity and its
//! `age1…` recipient, as `age-keygen` makes them.

use age::secrecy::ExposeSecret;

use super::{Args, ArgError, Context, GenError, Generator, Output};

/// The `age` generator.
pub struct Age;

impl Generator for Age {
    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        Ok(vec![args.name("private")?.to_owned(), args.name("public")?.to_owned()])
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

    fn public_outputs(&self, args: &Args) -> Vec<String> {
        args.name("public").map(|n| vec![n.to_owned()]).unwrap_or_default()
    }
}
