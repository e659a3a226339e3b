//! `ssh-keygen` (name, private, public): an OpenSSH ed25519 key pair with
//! `name` as its comment, as `ssh-keygen -t ed25519 -C name -N ""` makes.

use ssh_key::{Algorithm, LineEnding, PrivateKey};

use super::{Args, ArgError, Context, GenError, Generator, Output};

/// The `ssh-keygen` generator.
pub struct SshKeygen;

impl Generator for SshKeygen {
    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        args.str("name")?;
        Ok(vec![args.name("private")?.to_owned(), args.name("public")?.to_owned()])
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let comment = args.str("name")?;
        let mut rng = &mut *cx.rng;
        let mut key = PrivateKey::random(&mut rng, Algorithm::Ed25519).map_err(|e| GenError::Failed(format!("ssh key generation failed: {e}")))?;
        key.set_comment(comment);
        let private = key.to_openssh(LineEnding::LF).map_err(|e| GenError::Failed(format!("cannot encode the ssh key: {e}")))?;
        let public = key.public_key().to_openssh().map_err(|e| GenError::Failed(format!("cannot encode the ssh key: {e}")))?;
        Ok(vec![Output::private(args.name("private")?, private.as_bytes()), Output::public(args.name("public")?, public + "\n")])
    }

    fn public_outputs(&self, args: &Args) -> Vec<String> {
        args.name("public").map(|n| vec![n.to_owned()]).unwrap_or_default()
    }
}
