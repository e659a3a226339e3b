//! `x509-ca` and `x509`: certificates described by structured arguments
//! (subject map, SAN list, usages) instead of an OpenSSL config, with a
//! choice of P-256, Ed25519 or RSA keys.

use serde_json::Value;
use time::Duration;

use super::openssl::{load_ca, serial_from_file, x509_failed, MAX_DAYS};
use super::{ArgError, Args, Context, GenError, Generator, Output};
use crate::x509::ext::{extended_key_usage_oid, key_usage_bit};
use crate::x509::{self, Ext, Extension, KeyType, PrivateKey, San, Subject, Template, Want};

/// A self-signed CA.
pub struct X509Ca;

/// A leaf signed by a CA.
pub struct X509;

fn invalid(arg: &str, why: String) -> ArgError {
    ArgError::Invalid {
        arg: arg.to_owned(),
        why,
    }
}

fn key_type(args: &Args) -> Result<KeyType, ArgError> {
    match args.opt_str("key_type")?.unwrap_or("p256") {
        "p256" => Ok(KeyType::P256),
        "ed25519" => Ok(KeyType::Ed25519),
        "rsa" => Ok(KeyType::Rsa {
            bits: args.int_or("rsa_bits", 2048, 2048, 8192)? as usize,
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
        names.iter().try_for_each(San::check).map_err(|why| invalid("sans", why))?;
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
    let days = args.int_or("days", if ca { 3650 } else { 825 }, 1, MAX_DAYS)?;
    Ok(Template {
        subject: subject(args)?,
        serial,
        not_before: cx.now,
        not_after: cx.now + Duration::days(days as i64),
        extensions: extensions(args, ca)?,
    })
}

fn outputs(args: &Args) -> Result<Vec<String>, ArgError> {
    Ok(vec![
        args.name("public")?.to_owned(),
        args.name("private")?.to_owned(),
    ])
}

fn key_output(args: &Args, key: &PrivateKey) -> Result<Output, GenError> {
    Ok(Output::secret(
        args.name("private")?,
        key.pkcs8_pem().as_bytes().to_vec().into(),
    ))
}

impl Generator for X509Ca {
    fn public_outputs(&self, args: &Args) -> Vec<String> {
        args.name("public").map(|n| vec![n.to_owned()]).unwrap_or_default()
    }

    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        outputs(args)
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let serial = x509::random_serial(cx.rng);
        let template = template(args, cx, serial, true)?;
        let key = PrivateKey::generate(key_type(args)?, cx.rng).map_err(x509_failed)?;
        let cert = x509::self_signed(&template, &key).map_err(x509_failed)?;
        Ok(vec![
            Output::public(args.name("public")?, cert),
            key_output(args, &key)?,
        ])
    }
}

impl Generator for X509 {
    fn public_outputs(&self, args: &Args) -> Vec<String> {
        args.name("public").map(|n| vec![n.to_owned()]).unwrap_or_default()
    }

    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        outputs(args)
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
        let key = PrivateKey::generate(key_type(args)?, cx.rng).map_err(x509_failed)?;
        let cert = ca.sign(&template, &key).map_err(x509_failed)?;
        let mut out = vec![
            Output::public(args.name("public")?, cert),
            key_output(args, &key)?,
        ];
        out.extend(serial_file);
        Ok(out)
    }
}
