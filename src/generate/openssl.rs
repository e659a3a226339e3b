//! `openssl-ca` and `openssl`: a self-signed CA and the leaves it signs.
//!
//! Two argument forms, as the original's releases had them:
//! - 2.x, `config`: a P-256 key, subject and extensions from an OpenSSL
//!   config file, exactly as the original's `openssl req -x509 -extensions
//!   v3_ca` and `openssl x509 -req -CAserial … -extensions ext` calls were.
//! - 1.x, `name`: what 1.0–1.3.1 ran, `openssl genpkey -algorithm ED25519`
//!   then `req -x509 -subj /CN=<name>` (the CA) or `req -new -subj
//!   /CN=<name>` and `x509 -req -CAserial` (a leaf), with OpenSSL's default
//!   config. Kept so a 1.x spec runs unchanged; it warns once per entry.

use time::Duration;

use super::{decl, Arg, ArgError, Args, Context, GenError, Generator, Output, Type};
use crate::x509::{
    self, next_serial, read_request, Ca, Ext, Extension, KeyType, PrivateKey, Request, Subject,
    Template, Want, X509Error,
};

/// A self-signed ECDSA P-256 CA from an OpenSSL config's `[ v3_ca ]`.
pub(crate) struct OpensslCa;

/// A P-256 leaf signed by a CA, from an OpenSSL config's `[ ext ]`, with an
/// OpenSSL serial file.
pub(crate) struct Openssl;

/// The most days a certificate may be valid: until year 9999 is plenty.
pub(crate) const MAX_DAYS: u64 = 2_900_000;

/// 2.0.0 replaced `name` (the subject CN, an Ed25519 key) with `config`.
const CONFIG: Arg =
    Arg::input("config", "an OpenSSL config file in the workspace").form("2.x form");
const NAME: Arg = Arg::value(
    "name",
    Type::Str,
    "the subject's CN; an Ed25519 key, as 1.x made",
)
.form("1.x form");

const CA_ARGS: &[Arg] = &[
    Arg::public("public", "the CA certificate"),
    Arg::private("private", "the CA key, PKCS#8"),
    CONFIG,
    NAME,
    Arg::int("days", 3650, 1, MAX_DAYS, "days valid"),
];

const LEAF_ARGS: &[Arg] = &[
    Arg::input("ca_public", "the CA certificate"),
    Arg::input("ca_private", "the CA key"),
    Arg::input(
        "serial",
        "the serial file, as -CAserial; made when missing, written back",
    ),
    Arg::public("public", "the certificate"),
    Arg::private("private", "the key, PKCS#8"),
    CONFIG,
    NAME,
    Arg::int("days", 3650, 1, MAX_DAYS, "days valid"),
];

pub(crate) fn x509_failed(e: X509Error) -> GenError {
    GenError::Failed(e.to_string())
}

/// Which release's arguments an entry is written in.
enum Form<'a> {
    /// 2.x: `config` names an OpenSSL config file in the workspace.
    Config,
    /// 1.x: `name` is the subject's common name.
    Name(&'a str),
}

/// The entry's form: `config` when given (2.x), else `name` (1.x).
fn form<'a>(args: &Args<'a>) -> Result<Form<'a>, ArgError> {
    if args.opt_value("config").is_some() {
        args.name("config")?;
        return Ok(Form::Config);
    }
    match args.opt_str("name")? {
        Some(name) if name.trim().is_empty() => Err(ArgError::Invalid {
            arg: "name".into(),
            why: "must not be empty".into(),
        }),
        Some(name) => Ok(Form::Name(name)),
        None => Err(decl::missing_form(CA_ARGS)),
    }
}

/// The warning a 1.x entry gets.
const NAME_FORM: &str = "\"name\" is the 1.x form; 2.x uses \"config\" (made as 1.x did: an Ed25519 key, subject CN=<name>)";

/// What the entry asks for: read from its config file (2.x), or what 1.x's
/// `-subj /CN=<name>` with OpenSSL's default config gave. That config's
/// `[ v3_ca ]` holds key identifiers and a critical `CA:true`; a leaf
/// signed by `x509 -req` gets the key identifiers OpenSSL 3.2 and later
/// add by default (3.0 wrote a v1 certificate without extensions, which
/// verifies the same).
fn request(args: &Args, cx: &Context, ca: bool) -> Result<Request, GenError> {
    let name = match form(args)? {
        Form::Config => {
            let text = cx.input_text(args, "config")?;
            let file = args.name("config")?.to_owned();
            let section = if ca { "v3_ca" } else { "ext" };
            return read_request(text, section)
                .map_err(|source| x509_failed(X509Error::Config { file, source }));
        }
        Form::Name(name) => name,
    };
    let mut subject = Subject::new();
    subject.push("CN", name).map_err(|e| ArgError::Invalid {
        arg: "name".into(),
        why: e.to_string(),
    })?;
    let ext = |critical, kind| Ext { critical, kind };
    let mut extensions = vec![
        ext(false, Extension::SubjectKeyIdentifier),
        ext(
            false,
            Extension::AuthorityKeyIdentifier {
                keyid: if ca { Want::Always } else { Want::Yes },
                issuer: Want::Yes,
            },
        ),
    ];
    if ca {
        extensions.push(ext(
            true,
            Extension::BasicConstraints {
                ca: true,
                pathlen: None,
            },
        ));
    }
    Ok(Request {
        subject,
        extensions,
    })
}

/// 2.0.2 and rumor make P-256 keys; 1.x made Ed25519 ones.
fn key_type(args: &Args) -> Result<KeyType, ArgError> {
    Ok(match form(args)? {
        Form::Config => KeyType::P256,
        Form::Name(_) => KeyType::Ed25519,
    })
}

fn legacy_note(args: &Args) -> Option<String> {
    matches!(form(args), Ok(Form::Name(_))).then(|| NAME_FORM.to_owned())
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

impl Generator for OpensslCa {
    fn doc(&self) -> &'static str {
        "a self-signed CA from an OpenSSL config (2.x) or a CN (1.x)"
    }

    fn args(&self) -> &'static [Arg] {
        CA_ARGS
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        form(args).map(drop)
    }

    fn legacy_form(&self, args: &Args) -> Option<String> {
        legacy_note(args)
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let days = decl::int(CA_ARGS, args, "days")?;
        let request = request(args, cx, true)?;
        let key = PrivateKey::generate(key_type(args)?, cx.rng).map_err(x509_failed)?;
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
    fn doc(&self) -> &'static str {
        "a leaf signed by the CA, from an OpenSSL config (2.x) or a CN (1.x)"
    }

    fn args(&self) -> &'static [Arg] {
        LEAF_ARGS
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        form(args).map(drop)
    }

    fn legacy_form(&self, args: &Args) -> Option<String> {
        legacy_note(args)
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let days = decl::int(LEAF_ARGS, args, "days")?;
        let request = request(args, cx, false)?;
        let ca = load_ca(args, cx)?;
        let (serial, serial_text) = serial_from_file(args, cx)?;
        let key = PrivateKey::generate(key_type(args)?, cx.rng).map_err(x509_failed)?;
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
