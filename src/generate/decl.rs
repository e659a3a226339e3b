//! Argument declarations: each generator, importer and exporter states its
//! arguments once, as a table of [`Arg`]s. The argument checks, the files a
//! generation makes and reads, and the JSON Schema (`rumor schema`) are all
//! read from that table, so they cannot drift apart.

use serde_json::{json, Map, Value};

use super::args::{ArgError, Args};

/// What an argument's value is.
#[derive(Clone, Copy, Debug)]
pub enum Type {
    /// Any string.
    Str,
    /// A workspace file name: a plain relative name.
    Name,
    /// A whole number in `min..=max`, `default` when absent.
    Int {
        /// When the argument is absent.
        default: u64,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// `true` or `false`, `false` when absent.
    Bool,
    /// A list of strings.
    List,
    /// A map, in written order.
    Map,
    /// Any value.
    Any,
    /// One string or a list of strings.
    StrOrList,
    /// One of these strings.
    Choice(&'static [&'static str]),
}

/// What an argument's value stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A value used as it is.
    Value,
    /// Names a workspace file this generation reads.
    Input,
    /// Names a workspace file this generation reads, or is a literal; when
    /// that file changed in this run the outputs are remade (a password's
    /// hash, a host certificate under a renewed CA).
    Source,
    /// Names a file this generation makes, private (0600).
    Private,
    /// Names a file this generation makes, public (0644) however it reached
    /// the workspace.
    Public,
}

/// Whether an argument must be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// It must be given.
    Required,
    /// It may be left out.
    Optional,
    /// One of the arguments marked `Form` must be given; the text names the
    /// release whose form this is (`2.x form`). Every released argument form
    /// of the original tool still runs.
    Form(&'static str),
}

/// One declared argument.
#[derive(Clone, Copy, Debug)]
pub struct Arg {
    /// Its key under `arguments`.
    pub name: &'static str,
    /// Its value's type.
    pub ty: Type,
    /// Whether it must be given.
    pub need: Need,
    /// What it stands for.
    pub role: Role,
    /// One line for people.
    pub doc: &'static str,
}

impl Arg {
    /// A required value.
    pub const fn value(name: &'static str, ty: Type, doc: &'static str) -> Arg {
        Arg {
            name,
            ty,
            need: Need::Required,
            role: Role::Value,
            doc,
        }
    }

    /// A required workspace file this generation reads.
    pub const fn input(name: &'static str, doc: &'static str) -> Arg {
        Arg {
            name,
            ty: Type::Name,
            need: Need::Required,
            role: Role::Input,
            doc,
        }
    }

    /// A required private output.
    pub const fn private(name: &'static str, doc: &'static str) -> Arg {
        Arg {
            name,
            ty: Type::Name,
            need: Need::Required,
            role: Role::Private,
            doc,
        }
    }

    /// A required public output.
    pub const fn public(name: &'static str, doc: &'static str) -> Arg {
        Arg {
            name,
            ty: Type::Name,
            need: Need::Required,
            role: Role::Public,
            doc,
        }
    }

    /// An optional whole number.
    pub const fn int(
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
        doc: &'static str,
    ) -> Arg {
        Arg {
            name,
            ty: Type::Int { default, min, max },
            need: Need::Optional,
            role: Role::Value,
            doc,
        }
    }

    /// The same argument, optional.
    pub const fn optional(self) -> Arg {
        Arg {
            need: Need::Optional,
            ..self
        }
    }

    /// The same argument, one of the alternative forms.
    pub const fn form(self, release: &'static str) -> Arg {
        Arg {
            need: Need::Form(release),
            ..self
        }
    }

    /// The same argument, with another role.
    pub const fn role(self, role: Role) -> Arg {
        Arg { role, ..self }
    }

    /// The JSON Schema type a value of this argument has, where one
    /// type name says it.
    pub fn json_type(&self) -> Option<&'static str> {
        match self.ty {
            Type::Str | Type::Name | Type::Choice(_) => Some("string"),
            Type::Int { .. } => Some("integer"),
            Type::Bool => Some("boolean"),
            Type::Map => Some("object"),
            Type::List | Type::Any | Type::StrOrList => None,
        }
    }

    fn is_output(&self) -> bool {
        matches!(self.role, Role::Private | Role::Public)
    }

    /// Checks the argument's value in `args`, if given, and that it is
    /// given when required.
    fn check(&self, args: &Args) -> Result<(), ArgError> {
        let name = self.name;
        if args.opt_value(name).is_none() {
            return match self.need {
                Need::Required => Err(ArgError::Missing(name.to_owned())),
                Need::Optional | Need::Form(_) => Ok(()),
            };
        }
        match self.ty {
            Type::Str => args.str(name).map(drop),
            Type::Name => args.name(name).map(drop),
            Type::Int { default, min, max } => args.int_or(name, default, min, max).map(drop),
            Type::Bool => args.bool_or(name, false).map(drop),
            Type::List => args.opt_str_list(name).map(drop),
            Type::Map => args.map_arg(name).map(drop),
            Type::Any => Ok(()),
            Type::StrOrList => match args.opt_value(name) {
                Some(Value::String(_)) | None => Ok(()),
                Some(_) => args.opt_str_list(name).map(drop),
            },
            Type::Choice(options) => {
                let value = args.str(name)?;
                if options.contains(&value) {
                    Ok(())
                } else {
                    Err(ArgError::Invalid {
                        arg: name.to_owned(),
                        why: format!(
                            "must be {}, not \"{}\"",
                            or_list(options),
                            value.escape_debug()
                        ),
                    })
                }
            }
        }
    }

    /// The argument's JSON Schema.
    fn schema(&self) -> Value {
        let mut schema = match self.ty {
            Type::Str | Type::Name => json!({"type": "string"}),
            Type::Int { min, max, .. } => {
                json!({"type": "integer", "minimum": min, "maximum": max})
            }
            Type::Bool => json!({"type": "boolean"}),
            Type::List => json!({"type": "array", "items": {"type": "string"}}),
            Type::Map => json!({"type": "object"}),
            Type::Any => json!({}),
            Type::StrOrList => {
                json!({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
            }
            Type::Choice(options) => json!({"enum": options}),
        };
        if let (Value::Object(map), false) = (&mut schema, self.doc.is_empty()) {
            map.insert("description".into(), Value::String(self.doc.to_owned()));
        }
        schema
    }
}

/// `p256, ed25519 or rsa`.
fn or_list(options: &[&str]) -> String {
    match options.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Every argument that is not an output, in declared order, then the
/// alternatives: what a generator checks after the names of its outputs.
pub(crate) fn check_values(decl: &[Arg], args: &Args) -> Result<(), ArgError> {
    for arg in decl.iter().filter(|a| !a.is_output()) {
        arg.check(args)?;
    }
    let mut forms = decl
        .iter()
        .filter(|a| matches!(a.need, Need::Form(_)))
        .peekable();
    if forms.peek().is_some() && forms.all(|a| args.opt_value(a.name).is_none()) {
        return Err(missing_form(decl));
    }
    Ok(())
}

/// `missing argument "config" (2.x form) or "name" (1.x form)`.
pub(crate) fn missing_form(decl: &[Arg]) -> ArgError {
    let named: Vec<String> = decl
        .iter()
        .filter_map(|a| match a.need {
            Need::Form(release) => Some(format!("\"{}\" ({release})", a.name)),
            _ => None,
        })
        .collect();
    ArgError::MissingForm(named.join(" or "))
}

/// The output names, checked, in declared order.
pub(crate) fn outputs(decl: &[Arg], args: &Args) -> Result<Vec<String>, ArgError> {
    decl.iter()
        .filter(|a| a.is_output())
        .map(|a| args.name(a.name).map(str::to_owned))
        .collect()
}

/// Every argument checked: outputs first, then the values.
pub(crate) fn check(decl: &[Arg], args: &Args) -> Result<(), ArgError> {
    outputs(decl, args)?;
    check_values(decl, args)
}

/// The names given for arguments of `role` that are valid file names.
pub(crate) fn named(decl: &[Arg], args: &Args, role: Role) -> Vec<String> {
    decl.iter()
        .filter(|a| a.role == role)
        .filter_map(|a| args.name(a.name).ok())
        .map(str::to_owned)
        .collect()
}

/// A declared whole number: its value, or its default when absent.
pub(crate) fn int(decl: &[Arg], args: &Args, name: &str) -> Result<u64, ArgError> {
    match decl.iter().find(|a| a.name == name).map(|a| a.ty) {
        Some(Type::Int { default, min, max }) => args.int_or(name, default, min, max),
        _ => Err(ArgError::Invalid {
            arg: name.to_owned(),
            why: "is not a declared whole number".into(),
        }),
    }
}

/// The JSON Schema of an `arguments` map: `required` sorted, properties
/// in declared order with the required ones first, and an `anyOf` of the
/// alternative forms.
pub(crate) fn schema(
    title: &str,
    doc: &str,
    decl: &[Arg],
    extra: &[(&str, Value)],
) -> Map<String, Value> {
    let mut required: Vec<&str> = decl
        .iter()
        .filter(|a| a.need == Need::Required)
        .map(|a| a.name)
        .collect();
    required.sort_unstable();
    let mut properties = Map::new();
    let ordered = decl
        .iter()
        .filter(|a| a.need == Need::Required)
        .chain(decl.iter().filter(|a| a.need != Need::Required));
    for arg in ordered {
        properties.insert(arg.name.to_owned(), arg.schema());
    }
    for (name, schema) in extra {
        properties.insert((*name).to_owned(), schema.clone());
    }
    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    out.insert("title".into(), json!(title));
    if !doc.is_empty() {
        out.insert("description".into(), json!(doc));
    }
    out.insert("required".into(), json!(required));
    out.insert("properties".into(), Value::Object(properties));
    let forms: Vec<Value> = decl
        .iter()
        .filter_map(|a| match a.need {
            Need::Form(release) => {
                Some(json!({"title": format!("{release}: {}", a.doc), "required": [a.name]}))
            }
            _ => None,
        })
        .collect();
    if !forms.is_empty() {
        out.insert("anyOf".into(), Value::Array(forms));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &[Arg] = &[
        Arg::input("ca", "the CA"),
        Arg::value("config", Type::Name, "a config").form("2.x form"),
        Arg::value("name", Type::Str, "a name").form("1.x form"),
        Arg::public("cert", "the certificate"),
        Arg::private("key", "the key"),
        Arg::int("days", 30, 1, 90, "how long"),
        Arg::value("kind", Type::Choice(&["a", "b", "c"]), "which").optional(),
    ];

    fn args(v: &Value) -> Args<'_> {
        Args::new(v.as_object().unwrap())
    }

    #[test]
    fn checks_in_declared_order() {
        let v = json!({"config": "c", "cert": "c.crt", "key": "c.key"});
        assert_eq!(
            check(DECL, &args(&v)).unwrap_err().to_string(),
            "missing argument \"ca\""
        );
        let v = json!({"ca": "ca", "cert": "c.crt", "key": "c.key"});
        assert_eq!(
            check(DECL, &args(&v)).unwrap_err().to_string(),
            "missing argument \"config\" (2.x form) or \"name\" (1.x form)"
        );
        let v = json!({"ca": "ca", "name": "n", "cert": "c.crt", "key": "c.key", "days": 91});
        assert_eq!(
            check(DECL, &args(&v)).unwrap_err().to_string(),
            "argument \"days\" must be from 1 to 90, not 91"
        );
        let v = json!({"ca": "ca", "name": "n", "cert": "c.crt", "key": "c.key", "kind": "d"});
        assert_eq!(
            check(DECL, &args(&v)).unwrap_err().to_string(),
            "argument \"kind\" must be a, b or c, not \"d\""
        );
        let v = json!({"ca": "ca", "name": "n", "cert": "c.crt", "key": "c.key"});
        assert_eq!(outputs(DECL, &args(&v)).unwrap(), ["c.crt", "c.key"]);
        assert_eq!(named(DECL, &args(&v), Role::Public), ["c.crt"]);
        assert_eq!(named(DECL, &args(&v), Role::Input), ["ca"]);
        assert_eq!(int(DECL, &args(&v), "days").unwrap(), 30);
    }
}
