//! `cockroach-ca`, `cockroach` and `cockroach-client`: the certificates
//! `cockroach cert create-ca/create-node/create-client` make, with the same
//! names, usages, lifetimes and RSA 2048 keys in PKCS#1 PEM.

use serde_json::Value;
use time::Duration;

use super::openssl::{load_ca, x509_failed, MAX_DAYS};
use super::{decl, Arg, ArgError, Args, Context, GenError, Generator, Output, Type};
use crate::x509::{self, Ext, Extension, KeyType, PrivateKey, San, Subject, Template};

/// A CockroachDB CA: O=Cockroach, CN=Cockroach CA.
pub(crate) struct CockroachCa;

/// A CockroachDB node certificate: CN=node, a SAN for each host.
pub(crate) struct CockroachNode;

/// A CockroachDB client certificate: CN=<user>.
pub(crate) struct CockroachClient;

/// The user 1.2.x made the client certificate for: it took no `user`
/// argument and ran `cockroach cert create-client client`.
const LEGACY_USER: &str = "client";

const CA_DAYS: u64 = 10 * 365;
const CERT_DAYS: u64 = 5 * 365;

const CA_ARGS: &[Arg] = &[
    Arg::public("public", "the CA certificate"),
    Arg::private("private", "the CA's RSA key, PKCS#1"),
    Arg::value(
        "name",
        Type::Str,
        "accepted as the original did; the CA is always CN=Cockroach CA",
    )
    .optional(),
    Arg::int("days", CA_DAYS, 1, MAX_DAYS, "days valid"),
];

const NODE_ARGS: &[Arg] = &[
    Arg::input("ca_public", "the CA certificate"),
    Arg::input("ca_private", "the CA key"),
    Arg::value(
        "hosts",
        Type::StrOrList,
        "host names and addresses, a list or comma-separated",
    ),
    Arg::public("public", "the node certificate"),
    Arg::private("private", "the node's RSA key, PKCS#1"),
    Arg::int("days", CERT_DAYS, 1, MAX_DAYS, "days valid"),
];

const CLIENT_ARGS: &[Arg] = &[
    Arg::input("ca_public", "the CA certificate"),
    Arg::input("ca_private", "the CA key"),
    Arg::public("public", "the client certificate"),
    Arg::private("private", "the client's RSA key, PKCS#1"),
    // Came in 1.3.0; without it the certificate is for "client", as 1.2 made it.
    Arg::value(
        "user",
        Type::Str,
        "the certificate's user (CN); 1.2 had none and made it for \"client\"",
    )
    .optional(),
    Arg::int("days", CERT_DAYS, 1, MAX_DAYS, "days valid"),
];

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
    decl: &[Arg],
    extensions: Vec<Ext>,
) -> Result<Template, GenError> {
    let days = decl::int(decl, args, "days")?;
    let not_before = cx.now - Duration::hours(1);
    Ok(Template {
        subject,
        serial: x509::random_serial(cx.rng),
        not_before,
        not_after: not_before + Duration::days(days as i64),
        extensions,
    })
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
    decl: &[Arg],
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
    let template = template(args, cx, subject(common_name)?, decl, extensions)?;
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
    fn doc(&self) -> &'static str {
        "an RSA 2048 CA, O=Cockroach, CN=Cockroach CA"
    }

    fn args(&self) -> &'static [Arg] {
        CA_ARGS
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
        let template = template(args, cx, subject("Cockroach CA")?, CA_ARGS, extensions)?;
        let key = rsa_key(cx)?;
        let cert = x509::self_signed(&template, &key).map_err(x509_failed)?;
        write(args, cert, &key)
    }
}

impl Generator for CockroachNode {
    fn doc(&self) -> &'static str {
        "a node certificate: CN=node, a SAN per host, serverAuth and clientAuth"
    }

    fn args(&self) -> &'static [Arg] {
        NODE_ARGS
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
        leaf(args, cx, NODE_ARGS, "node", extensions)
    }
}

impl Generator for CockroachClient {
    fn doc(&self) -> &'static str {
        "a client certificate: CN=user, clientAuth"
    }

    fn args(&self) -> &'static [Arg] {
        CLIENT_ARGS
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
        leaf(args, cx, CLIENT_ARGS, user, extensions)
    }
}
