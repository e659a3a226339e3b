//! `x509-ca` and `x509`: certificates described by structured arguments
//! (subject map, SAN list, usages) instead of an OpenSSL config, with a
//! choice of P-256, Ed25519 or RSA keys.

use serde_json::Value;
use time::Duration;

use super::openssl::{load_ca, serial_from_file, x509_failed, MAX_DAYS};
use super::{decl, Arg, ArgError, Args, Context, GenError, Generator, Output, Type};
use crate::x509::ext::{extended_key_usage_oid, key_usage_bit};
use crate::x509::{self, Ext, Extension, KeyType, PrivateKey, San, Subject, Template, Want};

/// A self-signed CA.
pub(crate) struct X509Ca;

/// A leaf signed by a CA.
pub(crate) struct X509;

const KEY_TYPES: Type = Type::Choice(&["p256", "ed25519", "rsa"]);

const CA_ARGS: &[Arg] = &[
    Arg::public("public", "the CA certificate"),
    Arg::private("private", "the CA key, PKCS#8"),
    Arg::value(
        "subject",
        Type::Map,
        "the subject's fields: CN, O, OU, C, ST, L, emailAddress",
    ),
    Arg::value(
        "sans",
        Type::List,
        "subject alternative names; IPs detected, email: and uri: prefixes optional",
    )
    .optional(),
    Arg::value(
        "key_usages",
        Type::List,
        "key usages (keyCertSign, cRLSign, digitalSignature by default)",
    )
    .optional(),
    Arg::value(
        "extended_key_usages",
        Type::List,
        "extended key usages (serverAuth, clientAuth, …)",
    )
    .optional(),
    Arg::int("days", 3650, 1, MAX_DAYS, "days valid"),
    Arg::value("key_type", KEY_TYPES, "the key's type (p256 by default)").optional(),
    Arg::int("rsa_bits", 2048, 2048, 8192, "the RSA key's size"),
];

const LEAF_ARGS: &[Arg] = &[
    Arg::input("ca_public", "the CA certificate"),
    Arg::input("ca_private", "the CA key"),
    Arg::public("public", "the certificate"),
    Arg::private("private", "the key, PKCS#8"),
    Arg::value(
        "subject",
        Type::Map,
        "the subject's fields: CN, O, OU, C, ST, L, emailAddress",
    ),
    Arg::input(
        "serial",
        "a serial file, as -CAserial; a random serial without it",
    )
    .optional(),
    Arg::value(
        "sans",
        Type::List,
        "subject alternative names; IPs detected, email: and uri: prefixes optional",
    )
    .optional(),
    Arg::value(
        "key_usages",
        Type::List,
        "key usages (digitalSignature, keyEncipherment by default)",
    )
    .optional(),
    Arg::value(
        "extended_key_usages",
        Type::List,
        "extended key usages (serverAuth, clientAuth, …)",
    )
    .optional(),
    Arg::int("days", 825, 1, MAX_DAYS, "days valid"),
    Arg::value("key_type", KEY_TYPES, "the key's type (p256 by default)").optional(),
    Arg::int("rsa_bits", 2048, 2048, 8192, "the RSA key's size"),
];

fn invalid(arg: &str, why: String) -> ArgError {
    ArgError::Invalid {
        arg: arg.to_owned(),
        why,
    }
}

fn key_type(args: &Args, decl: &[Arg]) -> Result<KeyType, ArgError> {
    match args.opt_str("key_type")?.unwrap_or("p256") {
        "p256" => Ok(KeyType::P256),
        "ed25519" => Ok(KeyType::Ed25519),
        "rsa" => Ok(KeyType::Rsa {
            bits: decl::int(decl, args, "rsa_bits")? as usize,
        }),
        other => Err(invalid(
            "key_type",
            format!("must be p256, ed25519 or rsa, not \"{other}\""),
        )),
    }
}

fn subject(args: &Args) -> Result<Subject, ArgError> {
    let mut subject = Subject::new();
    for (field, value) in args.map_arg("subject")? {
        let value = value
            .as_str()
            .ok_or_else(|| invalid("subject", format!("field \"{field}\" must be a string")))?;
        subject
            .push(field, value)
            .map_err(|e| invalid("subject", e.to_string()))?;
    }
    if subject.is_empty() {
        return Err(invalid("subject", "is empty; give at least CN".into()));
    }
    Ok(subject)
}

/// The extensions both kinds share, after the CA-specific ones.
fn extensions(args: &Args, ca: bool) -> Result<Vec<Ext>, ArgError> {
    let mut out = vec![Ext {
        critical: true,
        kind: Extension::BasicConstraints { ca, pathlen: None },
    }];
    let default_usages: &[&str] = if ca {
        &["keyCertSign", "cRLSign", "digitalSignature"]
    } else {
        &["digitalSignature", "keyEncipherment"]
    };
    let usages = args
        .opt_str_list("key_usages")?
        .unwrap_or_else(|| default_usages.to_vec());
    let mut bits = 0;
    for usage in usages {
        bits |= key_usage_bit(usage).ok_or_else(|| invalid("key_usages", format!("has unknown usage \"{usage}\" (digitalSignature, keyEncipherment, keyCertSign, cRLSign, …)")))?;
    }
    if bits != 0 {
        out.push(Ext {
            critical: true,
            kind: Extension::KeyUsage(bits),
        });
    }
    if let Some(ekus) = args.opt_str_list("extended_key_usages")? {
        let oids = ekus
            .iter()
            .map(|e| {
                extended_key_usage_oid(e).ok_or_else(|| {
                    invalid(
                        "extended_key_usages",
                        format!("has unknown usage \"{e}\" (serverAuth, clientAuth, …)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !oids.is_empty() {
            out.push(Ext {
                critical: false,
                kind: Extension::ExtendedKeyUsage(oids),
            });
        }
    }
    out.push(Ext {
        critical: false,
        kind: Extension::SubjectKeyIdentifier,
    });
    out.push(Ext {
        critical: false,
        kind: Extension::AuthorityKeyIdentifier {
            keyid: Want::Always,
            issuer: Want::No,
        },
    });
    if let Some(sans) = args.opt_str_list("sans")? {
        let names: Vec<San> = sans.iter().map(|s| San::guess(s.trim())).collect();
        names
            .iter()
            .try_for_each(San::check)
            .map_err(|why| invalid("sans", why))?;
        if !names.is_empty() {
            out.push(Ext {
                critical: false,
                kind: Extension::SubjectAltName(names),
            });
        }
    }
    Ok(out)
}

fn template(args: &Args, cx: &Context, serial: Vec<u8>, ca: bool) -> Result<Template, ArgError> {
    let days = decl::int(if ca { CA_ARGS } else { LEAF_ARGS }, args, "days")?;
    Ok(Template {
        subject: subject(args)?,
        serial,
        not_before: cx.now,
        not_after: cx.now + Duration::days(days as i64),
        extensions: extensions(args, ca)?,
    })
}

fn key_output(args: &Args, key: &PrivateKey) -> Result<Output, GenError> {
    Ok(Output::secret(
        args.name("private")?,
        key.pkcs8_pem().as_bytes().to_vec().into(),
    ))
}

impl Generator for X509Ca {
    fn doc(&self) -> &'static str {
        "a self-signed CA from structured arguments, no OpenSSL config needed"
    }

    fn args(&self) -> &'static [Arg] {
        CA_ARGS
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let serial = x509::random_serial(cx.rng);
        let template = template(args, cx, serial, true)?;
        let key = PrivateKey::generate(key_type(args, CA_ARGS)?, cx.rng).map_err(x509_failed)?;
        let cert = x509::self_signed(&template, &key).map_err(x509_failed)?;
        Ok(vec![
            Output::public(args.name("public")?, cert),
            key_output(args, &key)?,
        ])
    }
}

impl Generator for X509 {
    fn doc(&self) -> &'static str {
        "a leaf signed by the CA, from structured arguments"
    }

    fn args(&self) -> &'static [Arg] {
        LEAF_ARGS
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let ca = load_ca(args, cx)?;
        let (serial, serial_file) = match args.opt_value("serial") {
            Some(Value::String(_)) => {
                let (serial, text) = serial_from_file(args, cx)?;
                (serial, Some(Output::private(args.name("serial")?, text)))
            }
            Some(_) => {
                return Err(ArgError::WrongType {
                    arg: "serial".into(),
                    expected: "a file name",
                    found: "another type",
                }
                .into())
            }
            None => (x509::random_serial(cx.rng), None),
        };
        let template = template(args, cx, serial, false)?;
        let key = PrivateKey::generate(key_type(args, LEAF_ARGS)?, cx.rng).map_err(x509_failed)?;
        let cert = ca.sign(&template, &key).map_err(x509_failed)?;
        let mut out = vec![
            Output::public(args.name("public")?, cert),
            key_output(args, &key)?,
        ];
        out.extend(serial_file);
        Ok(out)
    }
}
