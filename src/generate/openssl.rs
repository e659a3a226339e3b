//! `openssl-ca` and `openssl`: a self-signed P-256 CA and the leaves it
//! signs, configured by OpenSSL config files exactly as the original's
//! `openssl req -x509 -extensions v3_ca` and
//! `openssl x509 -req -CAserial … -extensions ext` calls were.

use time::Duration;

use super::{ArgError, Args, Context, GenError, Generator, Output};
use crate::x509::{self, next_serial, read_request, Ca, KeyType, PrivateKey, Template, X509Error};

/// A self-signed ECDSA P-256 CA from an OpenSSL config's `[ v3_ca ]`.
pub struct OpensslCa;

/// A P-256 leaf signed by a CA, from an OpenSSL config's `[ ext ]`, with an
/// OpenSSL serial file.
pub struct Openssl;

/// The most days a certificate may be valid: until year 9999 is plenty.
pub(crate) const MAX_DAYS: u64 = 2_900_000;

pub(crate) fn x509_failed(e: X509Error) -> GenError {
    GenError::Failed(e.to_string())
}

/// The request a config file asks for, with errors naming the file.
fn request(args: &Args, cx: &Context, section: &str) -> Result<x509::Request, GenError> {
    let text = cx.input_text(args, "config")?;
    let file = args.name("config")?.to_owned();
    read_request(text, section).map_err(|source| x509_failed(X509Error::Config { file, source }))
}

/// Loads the CA named by `ca_public` and `ca_private`.
pub(crate) fn load_ca(args: &Args, cx: &Context) -> Result<Ca, GenError> {
    let cert = cx.input_text(args, "ca_public")?;
    let key_text = cx.input_text(args, "ca_private")?;
    let bad = |arg: &'static str, e: X509Error| GenError::BadInput {
        arg,
        file: args.name(arg).unwrap_or("").to_owned(),
        reason: e.to_string(),
    };
    let key = PrivateKey::from_pem(key_text).map_err(|e| bad("ca_private", e))?;
    Ca::load(cert, key).map_err(|e| match e {
        X509Error::KeyMismatch => x509_failed(e),
        other => bad("ca_public", other),
    })
}

/// The next serial from the file named by `serial`, and that file's new text.
pub(crate) fn serial_from_file(
    args: &Args,
    cx: &mut Context,
) -> Result<(Vec<u8>, String), GenError> {
    let name = args.name("serial")?;
    let current = match cx.workspace.get(name) {
        None => None,
        Some(file) => Some(file.text().ok_or_else(|| GenError::BadInput {
            arg: "serial",
            file: name.to_owned(),
            reason: "is not text".into(),
        })?),
    };
    next_serial(current, cx.rng).map_err(|e| GenError::BadInput {
        arg: "serial",
        file: name.to_owned(),
        reason: e.to_string(),
    })
}

/// The certificate is public.
fn public_output(args: &Args) -> Vec<String> {
    args.name("public").map(|n| vec![n.to_owned()]).unwrap_or_default()
}

/// Both kinds make a certificate and its key.
fn key_pair(args: &Args) -> Result<Vec<String>, ArgError> {
    Ok(vec![args.name("public")?.to_owned(), args.name("private")?.to_owned()])
}

impl Generator for OpensslCa {
    fn public_outputs(&self, args: &Args) -> Vec<String> {
        public_output(args)
    }

    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        key_pair(args)
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let days = args.int_or("days", 3650, 1, MAX_DAYS)?;
        let request = request(args, cx, "v3_ca")?;
        let key = PrivateKey::generate(KeyType::P256, cx.rng).map_err(x509_failed)?;
        let template = Template {
            subject: request.subject,
            serial: x509::random_serial(cx.rng),
            not_before: cx.now,
            not_after: cx.now + Duration::days(days as i64),
            extensions: request.extensions,
        };
        let cert = x509::self_signed(&template, &key).map_err(x509_failed)?;
        Ok(vec![
            Output::public(args.name("public")?, cert),
            Output::secret(
                args.name("private")?,
                key.pkcs8_pem().as_bytes().to_vec().into(),
            ),
        ])
    }
}

impl Generator for Openssl {
    fn public_outputs(&self, args: &Args) -> Vec<String> {
        public_output(args)
    }

    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        key_pair(args)
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let days = args.int_or("days", 3650, 1, MAX_DAYS)?;
        let request = request(args, cx, "ext")?;
        let ca = load_ca(args, cx)?;
        let (serial, serial_text) = serial_from_file(args, cx)?;
        let key = PrivateKey::generate(KeyType::P256, cx.rng).map_err(x509_failed)?;
        let template = Template {
            subject: request.subject,
            serial,
            not_before: cx.now,
            not_after: cx.now + Duration::days(days as i64),
            extensions: request.extensions,
        };
        let cert = ca.sign(&template, &key).map_err(x509_failed)?;
        Ok(vec![
            Output::public(args.name("public")?, cert),
            Output::secret(
                args.name("private")?,
                key.pkcs8_pem().as_bytes().to_vec().into(),
            ),
            // The original chmods the serial file 600.
            Output::private(args.name("serial")?, serial_text),
        ])
    }
}
