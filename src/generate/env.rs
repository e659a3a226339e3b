//! `env` (name, variables): lines `KEY="value"` in the variables' written
//! order. A value naming a workspace file is replaced by its content; every
//! value is trimmed, then `\`, newline and `"` are escaped, as the original.

use zeroize::Zeroizing;

use super::{Arg, ArgError, Args, Context, GenError, Generator, Output, Type};

/// The `env` generator.
pub(crate) struct Env;

/// Escapes a value for a double-quoted env line.
pub(crate) fn escape(value: &str) -> String {
    value
        .trim()
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"")
}

fn check_key(key: &str) -> Result<(), ArgError> {
    let ok = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ArgError::Invalid {
            arg: "variables".into(),
            why: format!(
                "has the key \"{key}\"; names are letters, digits and _, not starting with a digit"
            ),
        })
    }
}

const ARGS: &[Arg] = &[
    Arg::private("name", "the env file"),
    Arg::value(
        "variables",
        Type::Map,
        "variable names and values; a value naming a workspace file is replaced by its content",
    ),
];

impl Generator for Env {
    fn doc(&self) -> &'static str {
        "lines KEY=\"value\", values trimmed and escaped"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        for (key, value) in args.map_arg("variables")? {
            check_key(key)?;
            if !value.is_string() {
                return Err(ArgError::Invalid {
                    arg: "variables".into(),
                    why: format!("value of \"{key}\" must be a string"),
                });
            }
        }
        Ok(())
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let mut lines = Zeroizing::new(String::new());
        for (key, value) in args.map_arg("variables")? {
            let value = cx.resolve(value.as_str().unwrap_or_default());
            if !lines.is_empty() {
                lines.push('\n');
            }
            lines.push_str(&format!(
                "{key}=\"{}\"",
                Zeroizing::new(escape(value)).as_str()
            ));
        }
        Ok(vec![Output::private(args.name("name")?, lines.as_bytes())])
    }

    fn derived(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape("  a\"b\\c\nd \n"), "a\\\"b\\\\c\\nd");
        assert!(check_key("PIDGEON_DB_USER").is_ok());
        assert!(check_key("1X").is_err());
        assert!(check_key("A B").is_err());
    }
}
