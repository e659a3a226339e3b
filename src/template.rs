//! Templates for device files (a PostgreSQL init script, a systemd
//! EnvironmentFile, a YAML config), rendered with minijinja.
//!
//! Nothing is escaped implicitly: each value goes through the filter for
//! the place it lands in, so no device field can break out of the file it is
//! rendered into:
//!
//! | filter        | produces                                              |
//! |---------------|-------------------------------------------------------|
//! | `sql_literal` | a PostgreSQL string literal, as `PQescapeLiteral`     |
//! | `sql_ident`   | a PostgreSQL quoted identifier                        |
//! | `env`         | a double-quoted systemd EnvironmentFile value         |
//! | `shell`       | a POSIX shell single-quoted word                      |
//! | `yaml`        | a YAML double-quoted scalar (also a JSON string)      |
//!
//! An undefined variable is an error rather than an empty string, since a
//! silently empty password is worse than a failed run. Errors name the
//! template and line but never carry a variable's value.
//!
//! minijinja keeps its own copies of the variables and the output while
//! rendering; those are not zeroized. Callers wrap the result at once.

use std::borrow::Cow;

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

/// PostgreSQL's NAMEDATALEN - 1: longer identifiers are silently truncated,
/// which would create a role with a different name than the spec says.
const MAX_IDENT_BYTES: usize = 63;

/// Why a filter refused a value. The value itself is never included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The value holds a NUL byte, which the target cannot represent.
    #[error("filter \"{filter}\": the value contains a NUL byte, which {target} cannot hold")]
    Nul {
        /// The filter.
        filter: &'static str,
        /// What the value is rendered into.
        target: &'static str,
    },
    /// `sql_ident` got an empty string.
    #[error("filter \"sql_ident\": the value is empty; PostgreSQL has no empty identifiers")]
    EmptyIdentifier,
    /// `sql_ident` got a name PostgreSQL would truncate.
    #[error("filter \"sql_ident\": the value is {bytes} bytes long; PostgreSQL truncates identifiers to {MAX_IDENT_BYTES}")]
    LongIdentifier {
        /// Its length in bytes.
        bytes: usize,
    },
    /// `env` got a character systemd rejects (a Unicode noncharacter or BOM).
    #[error("filter \"env\": the value contains U+{code:04X}, which systemd rejects in environment files")]
    NotInEnvironment {
        /// The code point.
        code: u32,
    },
    /// The value is a map, list or none rather than text.
    #[error("filter \"{filter}\" takes a string, number or boolean, not {kind}")]
    WrongType {
        /// The filter.
        filter: &'static str,
        /// The kind of value it got.
        kind: String,
    },
}

/// Why a template did not render. Never carries a variable's value.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A filter refused a value.
    #[error("template \"{template}\"{}: {source}", line_note(.line))]
    Filter {
        /// The template's name.
        template: String,
        /// The line, when minijinja knows it.
        line: Option<usize>,
        /// What the filter said.
        source: FilterError,
    },
    /// A syntax error, undefined variable or failed operation.
    #[error("template \"{template}\"{}: {reason}", line_note(.line))]
    Render {
        /// The template's name.
        template: String,
        /// The line, when minijinja knows it.
        line: Option<usize>,
        /// What went wrong, from minijinja's structural messages only.
        reason: String,
    },
}

fn line_note(line: &Option<usize>) -> String {
    line.map(|n| format!(", line {n}")).unwrap_or_default()
}

/// How many steps one render may take. The shipped templates take under a
/// thousand (a test checks they fit in a hundredth); a template from a repository anyone can push to must not be
/// able to spin for minutes (two nested `range(100000)` loops are 10^10
/// steps). Ten million steps take well under a second.
pub(crate) const FUEL: u64 = 10_000_000;

/// The template environment: strict undefined variables, no auto-escape,
/// trailing newlines kept (rendered files end like their templates), a
/// [`FUEL`] limit, and the escaping filters.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(true);
    // Variables come from JSON, so booleans print as JSON spells them, not
    // as minijinja's Python-style `True`.
    env.set_formatter(|out, state, value| match value.kind() {
        ValueKind::Bool => out
            .write_str(if value.is_true() { "true" } else { "false" })
            .map_err(minijinja::Error::from),
        _ => minijinja::escape_formatter(out, state, value),
    });
    env.add_filter("sql_literal", |v: &Value| {
        filter("sql_literal", v, sql_literal)
    });
    env.add_filter("sql_ident", |v: &Value| filter("sql_ident", v, sql_ident));
    env.add_filter("env", |v: &Value| filter("env", v, env_value));
    env.add_filter("shell", |v: &Value| filter("shell", v, shell));
    env.add_filter("yaml", |v: &Value| filter("yaml", v, yaml));
    env
}

/// Renders `template_text` with the variables in `context` (a JSON map).
/// `name_for_errors` is how errors refer to the template.
pub fn render(
    template_text: &str,
    name_for_errors: &str,
    context: &serde_json::Value,
) -> Result<String, TemplateError> {
    environment()
        .render_named_str(name_for_errors, template_text, context)
        .map_err(|e| describe(&e, name_for_errors))
}

/// Turns a minijinja error into ours. minijinja's own `Display` (and its
/// debug info) can quote values, so only the kind and, for kinds whose
/// detail is about the template's structure, the detail are kept.
fn describe(err: &minijinja::Error, name: &str) -> TemplateError {
    let template = err.name().unwrap_or(name).to_owned();
    let line = err.line();
    if let Some(source) =
        std::error::Error::source(err).and_then(|s| s.downcast_ref::<FilterError>())
    {
        return TemplateError::Filter {
            template,
            line,
            source: source.clone(),
        };
    }
    let structural = matches!(
        err.kind(),
        ErrorKind::SyntaxError
            | ErrorKind::UndefinedError
            | ErrorKind::UnknownFilter
            | ErrorKind::UnknownTest
            | ErrorKind::UnknownFunction
            | ErrorKind::UnknownMethod
            | ErrorKind::MissingArgument
            | ErrorKind::TooManyArguments
            | ErrorKind::TemplateNotFound
            | ErrorKind::UnknownBlock
    );
    let mut reason = err.kind().to_string().to_lowercase();
    if let (true, Some(detail)) = (structural, err.detail()) {
        reason = format!("{reason}: {detail}");
    }
    if err.kind() == ErrorKind::OutOfFuel {
        reason = format!("took more than {FUEL} steps and was stopped; look for a runaway loop");
    }
    if err.kind() == ErrorKind::UndefinedError {
        reason.push_str("; every variable the template uses must be listed in \"variables\"");
    }
    TemplateError::Render {
        template,
        line,
        reason,
    }
}

/// Runs `escape` on a scalar's text, turning its refusal into a minijinja
/// error that keeps the [`FilterError`] as its source.
fn filter(
    name: &'static str,
    value: &Value,
    escape: fn(&str) -> Result<String, FilterError>,
) -> Result<String, minijinja::Error> {
    let text: Cow<str> = match value.kind() {
        ValueKind::String => Cow::Borrowed(value.as_str().unwrap_or_default()),
        ValueKind::Number => Cow::Owned(value.to_string()),
        ValueKind::Bool => Cow::Borrowed(if value.is_true() { "true" } else { "false" }),
        other => {
            return Err(refuse(FilterError::WrongType {
                filter: name,
                kind: other.to_string(),
            }))
        }
    };
    escape(&text).map_err(refuse)
}

fn refuse(why: FilterError) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, why.to_string()).with_source(why)
}

fn no_nul(value: &str, filter: &'static str, target: &'static str) -> Result<(), FilterError> {
    if value.contains('\0') {
        return Err(FilterError::Nul { filter, target });
    }
    Ok(())
}

/// A PostgreSQL string literal. Quotes are doubled; when a backslash is
/// present the literal is written `E'…'` with backslashes doubled, as libpq's
/// `PQescapeLiteral` does, so it means the same whether or not the server
/// runs with `standard_conforming_strings`.
pub(crate) fn sql_literal(value: &str) -> Result<String, FilterError> {
    no_nul(value, "sql_literal", "a PostgreSQL string")?;
    let quoted = value.replace('\'', "''");
    Ok(if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    })
}

/// A PostgreSQL quoted identifier: `"…"` with `"` doubled.
pub(crate) fn sql_ident(value: &str) -> Result<String, FilterError> {
    no_nul(value, "sql_ident", "a PostgreSQL identifier")?;
    if value.is_empty() {
        return Err(FilterError::EmptyIdentifier);
    }
    if value.len() > MAX_IDENT_BYTES {
        return Err(FilterError::LongIdentifier { bytes: value.len() });
    }
    Ok(format!("\"{}\"", value.replace('"', "\"\"")))
}

/// A value for a systemd EnvironmentFile line `KEY={{ v|env }}`.
///
/// systemd.exec(5) gives double-quoted values POSIX shell double-quote
/// rules: a backslash before one of ``"\`$`` yields that character, before
/// anything else it is kept, and a quoted value may span lines. There is no
/// `\n` escape (since systemd 239 `\n` stays backslash-n), so a newline is
/// written as itself inside the quotes. The same text read by `sh` (`set -a;
/// . file`) gives the same value. systemd does not expand `$` in
/// EnvironmentFile, but escaping it keeps the file safe to source from a
/// shell too.
pub fn env_value(value: &str) -> Result<String, FilterError> {
    no_nul(value, "env", "an environment variable")?;
    // systemd checks values with utf8_is_valid, which refuses noncharacters;
    // an invalid line is skipped with a warning, leaving the variable unset.
    if let Some(c) = value.chars().find(|&c| {
        c == '\u{feff}' || ('\u{fdd0}'..='\u{fdef}').contains(&c) || (c as u32 & 0xfffe) == 0xfffe
    }) {
        return Err(FilterError::NotInEnvironment { code: c as u32 });
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '`' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// A POSIX shell word: single quotes, each `'` written as `'\''`.
pub fn shell(value: &str) -> Result<String, FilterError> {
    no_nul(value, "shell", "a shell word")?;
    Ok(format!("'{}'", value.replace('\'', "'\\''")))
}

/// A YAML double-quoted scalar. Besides `"` and `\`, every character YAML
/// does not allow raw (C0 and C1 controls, DEL, noncharacters) and every
/// line break YAML 1.1 would fold (NEL, U+2028, U+2029) is escaped as
/// `\uXXXX`, so the result is also a valid JSON string.
pub fn yaml(value: &str) -> Result<String, FilterError> {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if yaml_escapes(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

fn yaml_escapes(c: char) -> bool {
    let n = c as u32;
    n < 0x20
        || (0x7f..=0x9f).contains(&n)
        || matches!(n, 0x2028 | 0x2029 | 0xfeff)
        || (0xfffe..=0xffff).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOSTILE: &[&str] = &[
        "O'Reilly",
        "'; DROP TABLE x; --",
        "\"quoted\" and \\back\\slash\\",
        "$(rm -rf /) `id` ${HOME} $HOME",
        "line one\nline two\r\nEVIL=1",
        "tab\there",
        ": - # { } [ ] & * ! | > ' \" % @ ,?",
        "- item",
        "ünïcödé 日本語 🦀 \u{2028}\u{2029}\u{85}\u{7f}",
        "yes",
        "~",
        "  padded  ",
        "",
    ];

    #[test]
    fn sql_literal_quotes() {
        assert_eq!(sql_literal("O'Reilly").unwrap(), "'O''Reilly'");
        assert_eq!(
            sql_literal("'; DROP TABLE x; --").unwrap(),
            "'''; DROP TABLE x; --'"
        );
        assert_eq!(sql_literal("a\\'b").unwrap(), "E'a\\\\''b'");
        assert_eq!(sql_literal("").unwrap(), "''");
        assert!(matches!(sql_literal("a\0b"), Err(FilterError::Nul { .. })));
    }

    #[test]
    fn sql_ident_quotes() {
        assert_eq!(sql_ident("pidgeon").unwrap(), "\"pidgeon\"");
        assert_eq!(sql_ident("a\"b; DROP").unwrap(), "\"a\"\"b; DROP\"");
        assert_eq!(sql_ident(""), Err(FilterError::EmptyIdentifier));
        assert_eq!(
            sql_ident(&"x".repeat(64)),
            Err(FilterError::LongIdentifier { bytes: 64 })
        );
        assert!(sql_ident(&"x".repeat(63)).is_ok());
        assert!(sql_ident("\0").is_err());
    }

    #[test]
    fn env_escapes_for_double_quotes() {
        assert_eq!(env_value("a\"b\\c$d`e").unwrap(), "\"a\\\"b\\\\c\\$d\\`e\"");
        assert_eq!(env_value("x\ny").unwrap(), "\"x\ny\"");
        assert!(env_value("\0").is_err());
        assert_eq!(
            env_value("\u{fffe}"),
            Err(FilterError::NotInEnvironment { code: 0xfffe })
        );
        assert!(env_value("\u{fdd0}").is_err());
        for v in HOSTILE {
            let out = env_value(v).unwrap();
            // Every quote inside is escaped, so the value cannot end early.
            let inner = &out[1..out.len() - 1];
            assert!(
                !inner.replace("\\\\", "").replace("\\\"", "").contains('"'),
                "{v:?}"
            );
        }
    }

    #[test]
    fn shell_single_quotes() {
        assert_eq!(shell("it's").unwrap(), "'it'\\''s'");
        assert_eq!(shell("$(rm -rf /)").unwrap(), "'$(rm -rf /)'");
        assert!(shell("\0").is_err());
    }

    #[test]
    fn yaml_round_trips_through_a_yaml_and_a_json_parser() {
        for v in HOSTILE {
            let scalar = yaml(v).unwrap();
            let doc = format!("key: {scalar}\nother: 1\n");
            let parsed: serde_json::Value = serde_yaml_ng::from_str(&doc).unwrap();
            assert_eq!(parsed, json!({"key": v, "other": 1}), "{v:?}");
            let as_json: String = serde_json::from_str(&scalar).unwrap();
            assert_eq!(&as_json, v);
        }
    }

    #[test]
    fn renders_with_filters() {
        let cx = json!({"user": "pi\"dgeon", "port": 5432, "flag": true});
        let out = render(
            "U={{ user|env }}\nP={{ port|env }} {{ flag|shell }} {{ flag }} {{ not flag }}\n",
            "t.env",
            &cx,
        )
        .unwrap();
        assert_eq!(out, "U=\"pi\\\"dgeon\"\nP=\"5432\" 'true' true false\n");
    }

    #[test]
    fn errors_name_template_and_line_but_not_values() {
        let cx = json!({"pw": "hunter2\0secret", "list": ["hunter2"]});
        let err = render("a\nb\n{{ missing }}", "init.sql", &cx)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("template \"init.sql\", line 3: undefined value"),
            "{err}"
        );
        let err = render("x\n{{ pw|sql_literal }}", "init.sql", &cx).unwrap_err();
        assert!(
            matches!(
                err,
                TemplateError::Filter {
                    line: Some(2),
                    source: FilterError::Nul { .. },
                    ..
                }
            ),
            "{err}"
        );
        let err = err.to_string();
        assert!(err.contains("NUL") && !err.contains("hunter2"), "{err}");
        let err = render("{{ list|shell }}", "f", &cx)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not sequence") && !err.contains("hunter2"),
            "{err}"
        );
        let err = render("{{ pw + 1 }}", "f", &cx).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let err = render("{% if %}", "bad.j2", &cx).unwrap_err().to_string();
        assert!(
            err.starts_with("template \"bad.j2\", line 1: syntax error"),
            "{err}"
        );
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let started = std::time::Instant::now();
        let err = render(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "loop.j2",
            &json!({}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("template \"loop.j2\", line 1: took more than"),
            "{err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }

    /// The shipped templates stay far below the limit: each renders with a
    /// hundredth of it. Undefined values are lenient and the filters pass
    /// them through, so no fleet is needed; the one loop iterates a literal
    /// list, so it still counts.
    #[test]
    fn shipped_templates_use_a_fraction_of_the_fuel() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let mut env = environment();
            env.set_fuel(Some(FUEL / 100));
            env.set_undefined_behavior(UndefinedBehavior::Chainable);
            for filter in ["sql_literal", "sql_ident", "env", "shell", "yaml", "toml"] {
                env.add_filter(filter, |v: Value| v.to_string());
            }
            let name = path.display().to_string();
            if let Err(e) = env.render_named_str(&name, &text, json!({})) {
                panic!("{name}: {e:#}");
            }
        }
    }

    #[test]
    fn every_filter_error_renders() {
        let all = [
            FilterError::Nul {
                filter: "env",
                target: "an environment variable",
            },
            FilterError::EmptyIdentifier,
            FilterError::LongIdentifier { bytes: 70 },
            FilterError::NotInEnvironment { code: 0xfeff },
            FilterError::WrongType {
                filter: "yaml",
                kind: "map".into(),
            },
        ];
        for e in all {
            let text = e.to_string();
            assert!(text.starts_with("filter \""), "{text}");
        }
    }
}
