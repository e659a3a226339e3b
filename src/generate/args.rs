//! Typed access to an entry's `arguments`, with errors that name the field.

use serde_json::{Map, Value};

use crate::workspace::check_name;

/// A problem with one argument. Rendered after the entry, as in
/// `generations[3] (nebula): missing argument "ip"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// A required argument is absent.
    #[error("missing argument \"{0}\"")]
    Missing(String),
    /// None of an entry's alternative argument forms is given: `"config"
    /// (2.x form) or "name" (1.x form)`, from the declaration.
    #[error("missing argument {0}")]
    MissingForm(String),
    /// An argument has the wrong JSON type.
    #[error("argument \"{arg}\" must be {expected}, not {found}")]
    WrongType {
        /// The argument.
        arg: String,
        /// What it should be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// An argument is out of its allowed range.
    #[error("argument \"{arg}\" {why}")]
    Invalid {
        /// The argument.
        arg: String,
        /// What is wrong, without echoing secret content.
        why: String,
    },
}

/// An entry's `arguments` map.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    map: &'a Map<String, Value>,
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

impl<'a> Args<'a> {
    /// Wraps a map.
    pub fn new(map: &'a Map<String, Value>) -> Args<'a> {
        Args { map }
    }

    /// The raw map.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    /// An argument's raw value, if present (null counts as absent).
    pub fn opt_value(&self, arg: &str) -> Option<&'a Value> {
        self.map.get(arg).filter(|v| !v.is_null())
    }

    /// A required argument's raw value.
    pub fn value(&self, arg: &str) -> Result<&'a Value, ArgError> {
        self.opt_value(arg)
            .ok_or_else(|| ArgError::Missing(arg.to_owned()))
    }

    fn wrong(&self, arg: &str, expected: &'static str, found: &Value) -> ArgError {
        ArgError::WrongType {
            arg: arg.to_owned(),
            expected,
            found: kind_of(found),
        }
    }

    /// An optional string argument.
    pub fn opt_str(&self, arg: &str) -> Result<Option<&'a str>, ArgError> {
        match self.opt_value(arg) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(arg, "a string", other)),
        }
    }

    /// A required string argument.
    pub fn str(&self, arg: &str) -> Result<&'a str, ArgError> {
        self.opt_str(arg)?
            .ok_or_else(|| ArgError::Missing(arg.to_owned()))
    }

    /// A required argument naming a workspace file: a plain relative name.
    pub fn name(&self, arg: &str) -> Result<&'a str, ArgError> {
        let name = self.str(arg)?;
        check_name(name).map_err(|why| ArgError::Invalid {
            arg: arg.to_owned(),
            why: format!("\"{}\" {why}", name.escape_debug()),
        })?;
        Ok(name)
    }

    /// A boolean argument with a default.
    pub fn bool_or(&self, arg: &str, default: bool) -> Result<bool, ArgError> {
        match self.opt_value(arg) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.wrong(arg, "true or false", other)),
        }
    }

    /// An integer argument with a default, within `min..=max`.
    pub fn int_or(&self, arg: &str, default: u64, min: u64, max: u64) -> Result<u64, ArgError> {
        let n = match self.opt_value(arg) {
            None => return Ok(default),
            Some(Value::Number(n)) => n,
            Some(other) => return Err(self.wrong(arg, "a whole number", other)),
        };
        let n = n.as_u64().ok_or_else(|| ArgError::Invalid {
            arg: arg.to_owned(),
            why: format!("must be a whole number from {min} to {max}, not {n}"),
        })?;
        if n < min || n > max {
            return Err(ArgError::Invalid {
                arg: arg.to_owned(),
                why: format!("must be from {min} to {max}, not {n}"),
            });
        }
        Ok(n)
    }

    /// An optional list of strings.
    pub fn opt_str_list(&self, arg: &str) -> Result<Option<Vec<&'a str>>, ArgError> {
        match self.opt_value(arg) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .ok_or_else(|| self.wrong(arg, "a list of strings", item))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.wrong(arg, "a list of strings", other)),
        }
    }

    /// A required map argument, in written order.
    pub fn map_arg(&self, arg: &str) -> Result<&'a Map<String, Value>, ArgError> {
        match self.value(arg)? {
            Value::Object(map) => Ok(map),
            other => Err(self.wrong(arg, "a map", other)),
        }
    }

    /// The `renew` flag (default false).
    pub fn renew(&self) -> Result<bool, ArgError> {
        self.bool_or("renew", false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field() {
        let v = json!({"length": -3, "name": "../x", "renew": "yes", "big": 1e30});
        let args = Args::new(v.as_object().unwrap());
        assert_eq!(
            args.str("ip").unwrap_err().to_string(),
            "missing argument \"ip\""
        );
        assert_eq!(
            args.int_or("length", 8, 1, 4096).unwrap_err().to_string(),
            "argument \"length\" must be a whole number from 1 to 4096, not -3"
        );
        assert!(args.name("name").unwrap_err().to_string().contains("'..'"));
        assert_eq!(
            args.renew().unwrap_err().to_string(),
            "argument \"renew\" must be true or false, not a string"
        );
        assert!(args.int_or("big", 8, 1, 4096).is_err());
    }
}
