//! `json`, `yaml` and `toml` (name, value): the value serialised in that
//! format.

use serde_json::Value;

use super::{Args, ArgError, Context, GenError, Generator, Output};

/// The `json` generator.
pub struct Json;
/// The `yaml` generator.
pub struct Yaml;
/// The `toml` generator.
pub struct Toml;

fn outputs(args: &Args) -> Result<Vec<String>, ArgError> {
    args.value("value")?;
    Ok(vec![args.name("name")?.to_owned()])
}

fn render(format: &str, value: &Value) -> Result<String, GenError> {
    let failed = |e: String| GenError::Failed(format!("argument \"value\" cannot be written as {format}: {e}"));
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
    ($type:ident, $format:literal) => {
        impl Generator for $type {
            fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
                outputs(args)
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

structured!(Json, "json");
structured!(Yaml, "yaml");
structured!(Toml, "toml");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        assert_eq!(render("json", &json!({"key": "value"})).unwrap(), "{\n  \"key\": \"value\"\n}");
        assert_eq!(render("yaml", &json!(["value"])).unwrap(), "- value\n");
        assert_eq!(render("toml", &json!({"key": "value"})).unwrap(), "key = \"value\"\n");
        assert!(render("toml", &json!(["x"])).is_err());
    }
}
