//! `nebula-ca` and `nebula`: a Nebula CA, and host certificates signed by
//! it, made natively with the same defaults as `nebula-cert ca` / `sign`.

use time::Duration;
use zeroize::Zeroizing;

use super::{decl, Arg, ArgError, Args, Context, GenError, Generator, Output, Role, Type};
use crate::nebula::{
    issue_host, new_ca, CaKey, CaSpec, Certificate, HostSpec, Ipv4Net, NebulaError,
};

/// A Nebula CA: certificate (public) and Ed25519 key (private).
pub(crate) struct NebulaCa;

/// A Nebula host: certificate (public) and X25519 key (private), signed by
/// a CA already in the workspace.
pub(crate) struct Nebula;

/// The original tool's default: ten years.
const DEFAULT_DAYS: u64 = 3650;
/// A century; beyond that a typo is likelier than intent.
const MAX_DAYS: u64 = 36_500;

const CA_ARGS: &[Arg] = &[
    Arg::value("name", Type::Str, "the CA's name"),
    Arg::public("public", "the CA certificate"),
    Arg::private("private", "the CA's Ed25519 key"),
    Arg::int("days", DEFAULT_DAYS, 1, MAX_DAYS, "days valid"),
    Arg::value(
        "ips",
        Type::List,
        "networks (CIDR) the CA's hosts must be in",
    )
    .optional(),
    Arg::value(
        "subnets",
        Type::List,
        "networks (CIDR) the CA's hosts may route",
    )
    .optional(),
    Arg::value("groups", Type::List, "groups the CA's hosts may be in").optional(),
];

/// A renewed CA makes every host certificate under the old one useless,
/// so hosts are remade when either CA file changed in this run.
const HOST_ARGS: &[Arg] = &[
    Arg::input("ca_public", "the CA certificate").role(Role::Source),
    Arg::input("ca_private", "the CA key").role(Role::Source),
    Arg::value("name", Type::Str, "the host's name"),
    Arg::value(
        "ip",
        Type::Str,
        "the host's address in CIDR form, like 10.8.0.5/16",
    ),
    Arg::public("public", "the host certificate"),
    Arg::private("private", "the host's X25519 key"),
    Arg::value("groups", Type::List, "the host's groups").optional(),
    Arg::value("subnets", Type::List, "networks (CIDR) the host routes").optional(),
];

/// nebula-cert refuses an empty `-name`; so does rumor, naming the field.
fn cert_name(args: &Args) -> Result<String, ArgError> {
    let name = args.str("name")?;
    if name.trim().is_empty() {
        return Err(ArgError::Invalid {
            arg: "name".into(),
            why: "must not be empty".into(),
        });
    }
    Ok(name.to_owned())
}

fn network(arg: &str, text: &str) -> Result<Ipv4Net, ArgError> {
    text.parse().map_err(|_| ArgError::Invalid {
        arg: arg.to_owned(),
        why: format!("must be an IPv4 address in CIDR form like 10.8.0.5/16, not \"{text}\""),
    })
}

fn networks(args: &Args, arg: &str) -> Result<Vec<Ipv4Net>, ArgError> {
    let items = args.opt_str_list(arg)?.unwrap_or_default();
    items.iter().map(|text| network(arg, text)).collect()
}

fn groups(args: &Args) -> Result<Vec<String>, ArgError> {
    Ok(args
        .opt_str_list("groups")?
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect())
}

/// Moves a key PEM into an output without leaving a copy behind.
fn key_output(name: &str, mut pem: Zeroizing<String>) -> Output {
    Output::secret(name, Zeroizing::new(std::mem::take(&mut *pem).into_bytes()))
}

impl Generator for NebulaCa {
    fn doc(&self) -> &'static str {
        "a Nebula v1 CA (Ed25519), as nebula-cert ca makes it"
    }

    fn args(&self) -> &'static [Arg] {
        CA_ARGS
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let spec = CaSpec {
            name: cert_name(args)?,
            duration: Duration::days(decl::int(CA_ARGS, args, "days")? as i64),
            ips: networks(args, "ips")?,
            subnets: networks(args, "subnets")?,
            groups: groups(args)?,
        };
        let (public, private) = (args.name("public")?, args.name("private")?);
        let (cert, key) =
            new_ca(&spec, cx.now, &mut *cx.rng).map_err(|e| GenError::Failed(e.to_string()))?;
        Ok(vec![Output::public(public, cert), key_output(private, key)])
    }
}

impl Generator for Nebula {
    fn doc(&self) -> &'static str {
        "a Nebula v1 host certificate (X25519 key) signed by the CA"
    }

    fn args(&self) -> &'static [Arg] {
        HOST_ARGS
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let spec = HostSpec {
            name: cert_name(args)?,
            ip: network("ip", args.str("ip")?)?,
            groups: groups(args)?,
            subnets: networks(args, "subnets")?,
        };
        let (public, private) = (args.name("public")?, args.name("private")?);
        let (ca_file, key_file) = (args.name("ca_public")?, args.name("ca_private")?);
        let bad = |arg, file: &str, reason: String| GenError::BadInput {
            arg,
            file: file.to_owned(),
            reason,
        };
        let ca = Certificate::from_pem(cx.input_text(args, "ca_public")?).map_err(|e| {
            bad(
                "ca_public",
                ca_file,
                format!("is not a usable nebula CA certificate: {e}"),
            )
        })?;
        let ca_key = CaKey::from_pem(cx.input_text(args, "ca_private")?).map_err(|e| {
            bad(
                "ca_private",
                key_file,
                format!("is not a usable nebula CA key: {e}"),
            )
        })?;
        let (cert, key) = issue_host(&ca, &ca_key, &spec, cx.now, &mut *cx.rng).map_err(|e| match e {
            NebulaError::KeyMismatch { .. } => {
                bad("ca_private", key_file, format!("is not the key of the CA certificate \"{ca_file}\"; pass the key made with it"))
            }
            NebulaError::NotCa { .. } | NebulaError::NotSelfSigned { .. } | NebulaError::CaExpired { .. } => {
                bad("ca_public", ca_file, format!("cannot sign: {e}"))
            }
            NebulaError::IpOutsideCa { .. } => GenError::Failed(format!("argument \"ip\": {e}")),
            NebulaError::GroupNotInCa { .. } => GenError::Failed(format!("argument \"groups\": {e}")),
            NebulaError::SubnetOutsideCa { .. } => GenError::Failed(format!("argument \"subnets\": {e}")),
            other => GenError::Failed(other.to_string()),
        })?;
        Ok(vec![Output::public(public, cert), key_output(private, key)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_cidr_names_the_argument() {
        assert_eq!(
            network("ip", "10.8.0.1").unwrap_err().to_string(),
            "argument \"ip\" must be an IPv4 address in CIDR form like 10.8.0.5/16, not \"10.8.0.1\""
        );
        let v = json!({"ips": ["10.0.0.0/8", "nope"]});
        let args = Args::new(v.as_object().unwrap());
        assert!(networks(&args, "ips")
            .unwrap_err()
            .to_string()
            .contains("\"nope\""));
    }

    #[test]
    fn outputs_are_public_then_private() {
        let v = json!({"public": "ca.crt", "private": "ca.key"});
        let args = Args::new(v.as_object().unwrap());
        assert_eq!(NebulaCa.outputs(&args).unwrap(), ["ca.crt", "ca.key"]);
        assert_eq!(NebulaCa.public_outputs(&args), ["ca.crt"]);
        let v = json!({"ca_public": "ca.crt", "ca_private": "ca.key"});
        assert_eq!(
            Nebula.inputs(&Args::new(v.as_object().unwrap())),
            ["ca.crt", "ca.key"]
        );
        let v = json!({"public": "ca.crt"});
        assert_eq!(
            Nebula
                .outputs(&Args::new(v.as_object().unwrap()))
                .unwrap_err()
                .to_string(),
            "missing argument \"private\""
        );
        let v = json!({"name": " "});
        assert_eq!(
            cert_name(&Args::new(v.as_object().unwrap()))
                .unwrap_err()
                .to_string(),
            "argument \"name\" must not be empty"
        );
    }
}
