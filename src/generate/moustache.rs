//! `moustache` (name, template, variables): the trimmed template with
//! mustache variables substituted, as the original did with `mo`.
//!
//! `{{NAME}}` and `{{{NAME}}}` are replaced by the variable's value (the
//! content of the workspace file it names, or the literal), trimmed and
//! unescaped: `mo` does no HTML escaping. An unknown variable is an error
//! here rather than `mo`'s silent empty string, since a silently empty
//! secret is worse than a failed run. `{{! comments }}` are dropped.

use zeroize::Zeroizing;

use super::{Arg, ArgError, Args, Context, GenError, Generator, Output, Type};

/// The `moustache` generator.
pub(crate) struct Moustache;

/// Renders `template` with `lookup`.
pub(crate) fn render<'v>(
    template: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let triple = rest[start..].starts_with("{{{");
        let (open, close) = if triple { (3, "}}}") } else { (2, "}}") };
        let body = &rest[start + open..];
        let end = body
            .find(close)
            .ok_or_else(|| "has an unclosed {{".to_owned())?;
        let tag = body[..end].trim();
        rest = &body[end + close.len()..];
        if tag.starts_with('!') {
            continue;
        }
        let name = tag.trim_start_matches('&').trim();
        if name.starts_with(['#', '^', '/', '>', '=']) {
            return Err(format!("uses the mustache tag \"{{{{{tag}}}}}\", which rumor does not support; only variables"));
        }
        let value = lookup(name)
            .ok_or_else(|| format!("uses \"{name}\", which is not among the variables"))?;
        out.push_str(value.trim());
    }
    out.push_str(rest);
    Ok(out)
}

const ARGS: &[Arg] = &[
    Arg::private("name", "the rendered file"),
    Arg::value(
        "template",
        Type::Str,
        "the template text, {{VAR}} substituted",
    ),
    Arg::value(
        "variables",
        Type::Map,
        "variable names and values; a value naming a workspace file is replaced by its content",
    ),
];

impl Generator for Moustache {
    fn doc(&self) -> &'static str {
        "{{VAR}} substituted into the trimmed template"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn check(&self, args: &Args) -> Result<(), ArgError> {
        for (key, value) in args.map_arg("variables")? {
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
        let variables = args.map_arg("variables")?;
        let template = args.str("template")?.trim();
        let rendered = render(template, |name| {
            variables
                .get(name)
                .and_then(|v| v.as_str())
                .map(|v| cx.resolve(v))
        })
        .map_err(|why| {
            GenError::Arg(ArgError::Invalid {
                arg: "template".into(),
                why,
            })
        })?;
        let rendered = Zeroizing::new(rendered);
        Ok(vec![Output::private(
            args.name("name")?,
            rendered.as_bytes(),
        )])
    }

    fn derived(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes() {
        let vars = |n: &str| match n {
            "ID" => Some(" abc \n"),
            "X" => Some("a\"b"),
            _ => None,
        };
        assert_eq!(
            render("ID is {{ID}}, {{ X }} {{{X}}}{{! note }}.", vars).unwrap(),
            "ID is abc, a\"b a\"b."
        );
        assert!(render("{{NOPE}}", vars).unwrap_err().contains("\"NOPE\""));
        assert!(render("{{#ID}}x{{/ID}}", vars).is_err());
        assert!(render("{{ID", vars).is_err());
    }
}
