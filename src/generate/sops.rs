//! `sops`: a map of secrets as plaintext YAML (`private`) and as a SOPS
//! file for the device's age key (`public`).
//!
//! Each value in `secrets` names a workspace file whose trimmed content is
//! used, or is used literally when no such file exists (the original's
//! rule). The SOPS file is re-encrypted without churn: the workspace's
//! current `public` file is passed as the previous output, so an unchanged
//! map keeps its bytes and a changed value changes one line, but only when
//! that file is trusted (from a store or this run, not from disk).

use crate::identity::{Identity, Recipient};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{Arg, ArgError, Args, Context, GenError, Generator, Output, Type};
use crate::sops;

/// The `sops` generator.
pub(crate) struct Sops;

/// Parses the `age1…` lines of a recipients file; `None` if one is bad.
fn recipients_in(text: &str) -> Option<Vec<Recipient>> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if lines.is_empty() {
        return None;
    }
    lines.into_iter().map(|l| l.parse().ok()).collect()
}

/// The device key from `age` plus any extra `recipients`.
fn recipients(args: &Args, cx: &Context) -> Result<Vec<Recipient>, GenError> {
    let age_name = args.name("age")?;
    let mut all = recipients_in(cx.input_text(args, "age")?).ok_or_else(|| GenError::BadInput {
        arg: "age",
        file: age_name.to_owned(),
        reason: "does not hold age recipients (age1…, one per line)".into(),
    })?;
    for extra in args.opt_str_list("recipients")?.unwrap_or_default() {
        if let Ok(r) = extra.trim().parse::<Recipient>() {
            all.push(r);
            continue;
        }
        let Some(text) = cx.workspace.text(extra) else {
            return Err(ArgError::Invalid {
                arg: "recipients".into(),
                why: format!(
                    "item \"{extra}\" is neither an age recipient (age1…) nor a workspace file"
                ),
            }
            .into());
        };
        all.extend(recipients_in(text).ok_or_else(|| GenError::BadInput {
            arg: "recipients",
            file: extra.to_owned(),
            reason: "does not hold age recipients (age1…, one per line)".into(),
        })?);
    }
    Ok(all)
}

/// The run's identities plus every age secret key in the workspace, so an
/// existing SOPS file made for a key generated in this spec re-opens.
fn identities(cx: &Context) -> Vec<Identity> {
    let mut ids = cx.identities.to_vec();
    for (_, file) in cx.workspace.iter() {
        let Some(text) = file.text() else { continue };
        if !text.trim_start().starts_with("AGE-SECRET-KEY-1") {
            continue;
        }
        ids.extend(crate::identity::x25519_in(text));
    }
    ids
}

const ARGS: &[Arg] = &[
    Arg::input("age", "the device's age recipient file"),
    Arg::private("private", "the secrets as plaintext YAML"),
    // Written 0644, but kept from an import with the mode it came with, as
    // before the declarations: so not declared public.
    Arg::private("public", "the SOPS file"),
    Arg::value(
        "secrets",
        Type::Map,
        "keys and values; a value naming a workspace file is replaced by its content",
    ),
    Arg::value(
        "recipients",
        Type::List,
        "extra age recipients: age1… literals or workspace files",
    )
    .optional(),
];

impl Generator for Sops {
    fn doc(&self) -> &'static str {
        "a map of secrets as YAML and as a SOPS file for age recipients"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn derived(&self) -> bool {
        true
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let private = args.name("private")?;
        let public = args.name("public")?;
        let secrets = args.map_arg("secrets")?;
        let recipients = recipients(args, cx)?;
        let mut literals: Vec<Zeroizing<String>> = Vec::new();
        let mut refs: Vec<(&str, Option<&str>)> = Vec::with_capacity(secrets.len());
        for (key, value) in secrets {
            match value {
                Value::String(s) => refs.push((key, Some(s))),
                Value::Number(_) | Value::Bool(_) => {
                    literals.push(Zeroizing::new(value.to_string()));
                    refs.push((key, None));
                }
                _ => {
                    return Err(ArgError::WrongType {
                        arg: format!("secrets.{key}"),
                        expected: "a string",
                        found: "another type",
                    }
                    .into())
                }
            }
        }
        let mut literal = literals.iter();
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(refs.len());
        for (key, value) in refs {
            let value = match value {
                Some(s) => cx.resolve(s),
                None => literal.next().map(|s| s.as_str()).unwrap_or_default(),
            };
            pairs.push((key, value.trim()));
        }
        let ids = identities(cx);
        // The earlier output is reused (its data key, its ciphertexts) only
        // when it came from a store or from this run. One read from disk may
        // have been planted by anyone who can push to the repository: encrypted
        // to the right recipients, but under a data key its author kept. Reusing
        // that key would hand them every value written from now on.
        let previous = if cx.workspace.is_trusted(public) {
            cx.workspace.text(public)
        } else {
            None
        };
        let fail = |e: sops::SopsError| GenError::Failed(format!("sops file \"{public}\": {e}"));
        let encrypted = sops::encrypt(&pairs, &recipients, previous, &ids, cx.now, &mut *cx.rng)
            .map_err(fail)?;
        let plain = Zeroizing::new(sops::plain_yaml(&pairs).into_bytes());
        Ok(vec![
            Output::secret(private, plain),
            Output::public(public, encrypted),
        ])
    }
}
