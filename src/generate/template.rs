//! `template` (name, template, variables): a minijinja template rendered
//! with [`crate::template`]'s escaping filters.
//!
//! A string variable names a workspace file whose trimmed content is used,
//! or is the literal when no such file exists (as `env` and `moustache`).
//! Numbers, booleans, lists and maps are passed to the template as they are.
//! A spec may give `file` instead of `template`; the engine reads it into
//! `template` before the run.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{Arg, ArgError, Args, Context, GenError, Generator, Output, Type};
use crate::workspace::check_name;

/// The `template` generator.
pub(crate) struct Template;

const ARGS: &[Arg] = &[
    Arg::private("name", "the rendered file"),
    Arg::value("template", Type::Str, "the minijinja template text").optional(),
    Arg::value(
        "file",
        Type::Str,
        "a template file in the fleet, read into template before the run",
    )
    .optional(),
    // Optional: a template with no variables is fine.
    Arg::value(
        "variables",
        Type::Map,
        "the template's variables; a string naming a workspace file is replaced by its content",
    )
    .optional(),
];

impl Generator for Template {
    fn doc(&self) -> &'static str {
        "a minijinja template rendered with the variables"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let name = args.name("name")?;
        let template = match args.opt_str("template")? {
            Some(text) => text,
            None if args.opt_value("file").is_some() => {
                return Err(ArgError::Invalid {
                    arg: "file".into(),
                    why: "was not loaded; run the spec through the engine, which reads it into \"template\"".into(),
                }
                .into())
            }
            None => return Err(ArgError::Missing("template".into()).into()),
        };
        let empty = Map::new();
        let variables = match args.opt_value("variables") {
            Some(_) => args.map_arg("variables")?,
            None => &empty,
        };
        let mut context = Map::with_capacity(variables.len());
        for (key, value) in variables {
            let value = match value {
                Value::String(text) => Value::String(resolve(cx, text).to_owned()),
                other => other.clone(),
            };
            context.insert(key.clone(), value);
        }
        let context = Value::Object(context);
        // Errors name the template file the spec gave, else the output.
        let source = args.opt_str("file")?.unwrap_or(name);
        let rendered = crate::template::render(template, source, &context)
            .map_err(|e| GenError::Failed(e.to_string()));
        // The context holds secrets; clear the strings before returning.
        wipe(context);
        let rendered = Zeroizing::new(rendered?);
        Ok(vec![Output::private(name, rendered.as_bytes())])
    }

    fn derived(&self) -> bool {
        true
    }
}

/// A file's trimmed content, or the literal when no file is called `value`.
fn resolve<'v>(cx: &'v Context, value: &'v str) -> &'v str {
    match check_name(value)
        .ok()
        .and_then(|()| cx.workspace.text(value))
    {
        Some(text) => text.trim(),
        None => value,
    }
}

fn wipe(value: Value) {
    match value {
        Value::String(s) => drop(Zeroizing::new(s)),
        Value::Array(items) => items.into_iter().for_each(wipe),
        Value::Object(map) => map.into_iter().for_each(|(_, v)| wipe(v)),
        _ => {}
    }
}
