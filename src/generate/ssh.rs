//! `ssh-keygen` (name, private, public): an OpenSSH ed25519 key pair with
//! `name` as its comment, as `ssh-keygen -t ed25519 -C name -N ""` makes.

use ssh_key::{Algorithm, LineEnding, PrivateKey};

use super::{Arg, Args, Context, GenError, Generator, Output, Type};

/// The `ssh-keygen` generator.
pub(crate) struct SshKeygen;

const ARGS: &[Arg] = &[
    Arg::value("name", Type::Str, "the key's comment"),
    Arg::private("private", "the OpenSSH private key"),
    Arg::public("public", "the public key line"),
];

impl Generator for SshKeygen {
    fn doc(&self) -> &'static str {
        "an OpenSSH ed25519 key pair"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let comment = args.str("name")?;
        let mut rng = &mut *cx.rng;
        let mut key = PrivateKey::random(&mut rng, Algorithm::Ed25519)
            .map_err(|e| GenError::Failed(format!("ssh key generation failed: {e}")))?;
        key.set_comment(comment);
        let private = key
            .to_openssh(LineEnding::LF)
            .map_err(|e| GenError::Failed(format!("cannot encode the ssh key: {e}")))?;
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| GenError::Failed(format!("cannot encode the ssh key: {e}")))?;
        Ok(vec![
            Output::private(args.name("private")?, private.as_bytes()),
            Output::public(args.name("public")?, public + "\n"),
        ])
    }
}
