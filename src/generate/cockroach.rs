//! `cockroach-ca`, `cockroach` and `cockroach-client`: the certificates
//! `cockroach cert create-ca/create-node/create-client` make, with the same
//! names, usages, lifetimes and RSA 2048 keys in PKCS#1 PEM.

use serde_json::Value;
use time::Duration;

use super::openssl::{load_ca, x509_failed, MAX_DAYS};
use super::{ArgError, Args, Context, GenError, Generator, Output};
use crate::x509::{self, Ext, Extension, KeyType, PrivateKey, San, Subject, Template};

/// A CockroachDB CA: O=Cockroach, CN=Cockroach CA.
pub struct CockroachCa;

/// A CockroachDB node certificate: CN=node, a SAN for each host.
pub struct CockroachNode;

/// A CockroachDB client certificate: CN=<user>.
pub struct CockroachClient;

/// The user 1.2.x made the client certificate for: it took no `user`
/// argument and ran `cockroach cert create-client client`.
const LEGACY_USER: &str = "client";

const CA_DAYS: u64 = 10 * 365;
const CERT_DAYS: u64 = 5 * 365;

const DIGITAL_SIGNATURE: u16 = 1;
const CONTENT_COMMITMENT: u16 = 1 << 1;
const KEY_ENCIPHERMENT: u16 = 1 << 2;
const KEY_CERT_SIGN: u16 = 1 << 5;

fn subject(common_name: &str) -> Result<Subject, GenError> {
    let mut subject = Subject::new();
    subject
        .push("O", "Cockroach")
        .map_err(|e| GenError::Failed(e.to_string()))?;
    subject
        .push("CN", common_name)
        .map_err(|e| GenError::Failed(e.to_string()))?;
    Ok(subject)
}

fn ext(critical: bool, kind: Extension) -> Ext {
    Ext { critical, kind }
}

/// Cockroach backdates by an hour to tolerate clock skew between nodes.
fn template(
    args: &Args,
    cx: &mut Context,
    subject: Subject,
    default_days: u64,
    extensions: Vec<Ext>,
) -> Result<Template, GenError> {
    let days = args.int_or("days", default_days, 1, MAX_DAYS)?;
    let not_before = cx.now - Duration::hours(1);
    Ok(Template {
        subject,
        serial: x509::random_serial(cx.rng),
        not_before,
        not_after: not_before + Duration::days(days as i64),
        extensions,
    })
}

fn outputs(args: &Args) -> Result<Vec<String>, ArgError> {
    Ok(vec![
        args.name("public")?.to_owned(),
        args.name("private")?.to_owned(),
    ])
}

fn write(args: &Args, cert: String, key: &PrivateKey) -> Result<Vec<Output>, GenError> {
    let pem = key
        .pkcs1_pem()
        .ok_or_else(|| GenError::Failed("the cockroach key is not RSA".into()))?;
    Ok(vec![
        Output::public(args.name("public")?, cert),
        Output::secret(args.name("private")?, pem.as_bytes().to_vec().into()),
    ])
}

fn rsa_key(cx: &mut Context) -> Result<PrivateKey, GenError> {
    PrivateKey::generate(KeyType::Rsa { bits: 2048 }, cx.rng).map_err(x509_failed)
}

fn leaf(
    args: &Args,
    cx: &mut Context,
    common_name: &str,
    mut extensions: Vec<Ext>,
) -> Result<Vec<Output>, GenError> {
    let ca = load_ca(args, cx)?;
    extensions.insert(
        0,
        ext(
            true,
            Extension::KeyUsage(DIGITAL_SIGNATURE | KEY_ENCIPHERMENT),
        ),
    );
    extensions.push(ext(
        false,
        Extension::AuthorityKeyIdentifier {
            keyid: x509::Want::Always,
            issuer: x509::Want::No,
        },
    ));
    let template = template(args, cx, subject(common_name)?, CERT_DAYS, extensions)?;
    let key = rsa_key(cx)?;
    let cert = ca.sign(&template, &key).map_err(x509_failed)?;
    write(args, cert, &key)
}

/// `hosts` as a list, or as the original's comma-separated string.
fn hosts(args: &Args) -> Result<Vec<String>, ArgError> {
    let list: Vec<String> = match args.value("hosts")? {
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(_) => args
            .opt_str_list("hosts")?
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.trim().to_owned())
            .collect(),
        _ => {
            return Err(ArgError::WrongType {
                arg: "hosts".into(),
                expected: "a list of strings",
                found: "another type",
            })
        }
    };
    if list.is_empty() {
        return Err(ArgError::Invalid {
            arg: "hosts".into(),
            why: "is empty; give at least one host name or address".into(),
        });
    }
    Ok(list)
}

impl Generator for CockroachCa {
    fn public_outputs(&self, args: &Args) -> Vec<String> {
        args.name("public").map(|n| vec![n.to_owned()]).unwrap_or_default()
    }

    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        outputs(args)
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let extensions = vec![
            ext(
                true,
                Extension::KeyUsage(
                    DIGITAL_SIGNATURE | CONTENT_COMMITMENT | KEY_ENCIPHERMENT | KEY_CERT_SIGN,
                ),
            ),
            ext(
                true,
                Extension::BasicConstraints {
                    ca: true,
                    pathlen: Some(0),
                },
            ),
            ext(false, Extension::SubjectKeyIdentifier),
        ];
        let template = template(args, cx, subject("Cockroach CA")?, CA_DAYS, extensions)?;
        let key = rsa_key(cx)?;
        let cert = x509::self_signed(&template, &key).map_err(x509_failed)?;
        write(args, cert, &key)
    }
}

impl Generator for CockroachNode {
    fn public_outputs(&self, args: &Args) -> Vec<String> {
        args.name("public").map(|n| vec![n.to_owned()]).unwrap_or_default()
    }

    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        outputs(args)
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let sans = hosts(args)?
            .iter()
            .map(|h| match h.parse() {
                Ok(ip) => San::Ip(ip),
                Err(_) => San::Dns(h.clone()),
            })
            .collect();
        let extensions = vec![
            ext(
                false,
                Extension::ExtendedKeyUsage(vec![
                    x509::ext::extended_key_usage_oid("serverAuth").unwrap_or_default(),
                    x509::ext::extended_key_usage_oid("clientAuth").unwrap_or_default(),
                ]),
            ),
            ext(false, Extension::SubjectAltName(sans)),
        ];
        leaf(args, cx, "node", extensions)
    }
}

impl Generator for CockroachClient {
    fn public_outputs(&self, args: &Args) -> Vec<String> {
        args.name("public").map(|n| vec![n.to_owned()]).unwrap_or_default()
    }

    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        outputs(args)
    }

    fn legacy_form(&self, args: &Args) -> Option<String> {
        args.opt_value("user").is_none().then(|| {
            format!("no \"user\" is the 1.2 form, made for the user \"{LEGACY_USER}\" as 1.2 did; 1.3 and later take \"user\"")
        })
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let user = args.opt_str("user")?.unwrap_or(LEGACY_USER);
        let extensions = vec![ext(
            false,
            Extension::ExtendedKeyUsage(vec![
                x509::ext::extended_key_usage_oid("clientAuth").unwrap_or_default()
            ]),
        )];
        leaf(args, cx, user, extensions)
    }
}
