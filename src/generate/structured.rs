//! `json`, `yaml` and `toml` (name, value): the value serialised in that
//! format.

use serde_json::Value;

use super::{Arg, Args, Context, GenError, Generator, Output, Type};

/// The `json` generator.
pub(crate) struct Json;
/// The `yaml` generator.
pub(crate) struct Yaml;
/// The `toml` generator.
pub(crate) struct Toml;

const ARGS: &[Arg] = &[
    Arg::private("name", "the file"),
    Arg::value("value", Type::Any, "the value to write"),
];

/// TOML documents are maps at the top.
const TOML_ARGS: &[Arg] = &[
    Arg::private("name", "the file"),
    Arg::value("value", Type::Map, "the map to write"),
];

fn render(format: &str, value: &Value) -> Result<String, GenError> {
    let failed = |e: String| {
        GenError::Failed(format!(
            "argument \"value\" cannot be written as {format}: {e}"
        ))
    };
    match format {
        "json" => serde_json::to_string_pretty(value).map_err(|e| failed(e.to_string())),
        "yaml" => serde_yaml_ng::to_string(value).map_err(|e| failed(e.to_string())),
        _ => match value {
            Value::Object(_) => toml::to_string(value).map_err(|e| failed(e.to_string())),
            _ => Err(failed("TOML needs a map at the top".into())),
        },
    }
}

macro_rules! structured {
    ($type:ident, $format:literal, $args:ident) => {
        impl Generator for $type {
            fn doc(&self) -> &'static str {
                concat!("the value serialised as ", $format)
            }

            fn args(&self) -> &'static [Arg] {
                $args
            }

            fn generate(&self, args: &Args, _cx: &mut Context) -> Result<Vec<Output>, GenError> {
                let text = render($format, args.value("value")?)?;
                Ok(vec![Output::private(args.name("name")?, text)])
            }

            fn derived(&self) -> bool {
                true
            }
        }
    };
}

structured!(Json, "json", ARGS);
structured!(Yaml, "yaml", ARGS);
structured!(Toml, "toml", TOML_ARGS);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        assert_eq!(
            render("json", &json!({"key": "value"})).unwrap(),
            "{\n  \"key\": \"value\"\n}"
        );
        assert_eq!(render("yaml", &json!(["value"])).unwrap(), "- value\n");
        assert_eq!(
            render("toml", &json!({"key": "value"})).unwrap(),
            "key = \"value\"\n"
        );
        assert!(render("toml", &json!(["x"])).is_err());
    }
}
