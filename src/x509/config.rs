//! A parser for the OpenSSL configuration syntax that `openssl req` reads:
//! `[ section ]` headers, `key = value` lines, `#` comments, quotes,
//! backslash escapes and continuations, and `$var` / `${section::var}`
//! expansion. It only reads; what the sections mean is `x509::request`'s
//! business.
//!
//! Directives (`.include`, `.pragma`) are rejected rather than ignored:
//! skipping an include would silently drop the settings it holds.

use indexmap::IndexMap;

/// The section that holds entries written before any header, as OpenSSL
/// names it.
pub(crate) const DEFAULT_SECTION: &str = "default";

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, as written.
    pub key: String,
    /// The value with quotes, escapes and variables resolved.
    pub value: String,
    /// The 1-based line it starts on, for messages.
    pub line: usize,
}

/// A parsed configuration: sections in written order, each with its
/// entries in written order (a key may repeat, as DN fields can).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    sections: IndexMap<String, Vec<Entry>>,
}

/// Why a configuration could not be read. Messages name the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A line is not a header, comment or `key = value`.
    #[error("line {line}: {why}")]
    Malformed {
        /// The 1-based line.
        line: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A `.directive` rumor does not follow.
    #[error("line {line}: unsupported directive \"{directive}\"; inline the settings instead")]
    Directive {
        /// The 1-based line.
        line: usize,
        /// The directive, e.g. `.include`.
        directive: String,
    },
    /// A `$variable` that is not defined.
    #[error("line {line}: variable \"{name}\" is not defined (write \\$ for a literal dollar)")]
    UndefinedVariable {
        /// The 1-based line.
        line: usize,
        /// The variable as written.
        name: String,
    },
}

impl Config {
    /// The entries of `name`, if that section exists.
    pub fn section(&self, name: &str) -> Option<&[Entry]> {
        self.sections.get(name).map(Vec::as_slice)
    }

    /// The last value of `key` in `section` (later lines win, as in OpenSSL).
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.section(section)?
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    }

    /// The section names, in written order.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }
}

/// Parses OpenSSL configuration text. Never panics, whatever the input.
pub fn parse_config(text: &str) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut current = DEFAULT_SECTION.to_owned();
    config.sections.insert(current.clone(), Vec::new());
    for (line, logical) in logical_lines(text) {
        let trimmed = logical.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let (name, after) = rest.split_once(']').ok_or(ConfigError::Malformed {
                line,
                why: "section header has no closing ']'",
            })?;
            let name = name.trim();
            if name.is_empty() || !name.chars().all(is_name_char) {
                return Err(ConfigError::Malformed {
                    line,
                    why: "section name must be letters, digits, '_', '.' or '-'",
                });
            }
            let after = after.trim_start();
            if !(after.is_empty() || after.starts_with('#')) {
                return Err(ConfigError::Malformed {
                    line,
                    why: "unexpected text after the section header",
                });
            }
            current = name.to_owned();
            config.sections.entry(current.clone()).or_default();
            continue;
        }
        if trimmed.starts_with('.') {
            let directive: String = trimmed
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '=')
                .collect();
            return Err(ConfigError::Directive { line, directive });
        }
        let (key, raw) = trimmed.split_once('=').ok_or(ConfigError::Malformed {
            line,
            why: "expected \"key = value\"",
        })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(ConfigError::Malformed {
                line,
                why: "the key before '=' is empty",
            });
        }
        if !key.chars().all(|c| is_name_char(c) || c == ':') {
            return Err(ConfigError::Malformed {
                line,
                why: "key must be letters, digits, '_', '.', '-' or ':'",
            });
        }
        let value = unquote(raw, line, &config, &current)?;
        config
            .sections
            .entry(current.clone())
            .or_default()
            .push(Entry {
                key: key.to_owned(),
                value,
                line,
            });
    }
    Ok(config)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Joins lines ending in an unescaped backslash with the next one, keeping
/// the number of the first.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (start, mut acc) = pending.take().unwrap_or((index + 1, String::new()));
        let trailing = raw.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            acc.push_str(&raw[..raw.len() - 1]);
            pending = Some((start, acc));
        } else {
            acc.push_str(raw);
            out.push((start, acc));
        }
    }
    out.extend(pending);
    out
}

/// Resolves a raw value: quotes keep their content literally, `\x` is `x`
/// (`\n`, `\r`, `\t`, `\b` are control characters), `#` outside quotes
/// starts a comment, `$name` expands, and outer whitespace is dropped.
fn unquote(raw: &str, line: usize, config: &Config, section: &str) -> Result<String, ConfigError> {
    let mut out = String::new();
    // Bytes of `out` that came from quotes or escapes and must survive the
    // final trim (a quoted trailing space is meant).
    let mut kept_len = 0;
    let mut chars = raw.trim_start().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => break,
            '"' | '\'' => {
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == c {
                        closed = true;
                        break;
                    }
                    out.push(q);
                }
                if !closed {
                    return Err(ConfigError::Malformed {
                        line,
                        why: "a quote is not closed",
                    });
                }
                kept_len = out.len();
            }
            '\\' => {
                let escaped = chars.next().ok_or(ConfigError::Malformed {
                    line,
                    why: "a backslash ends the value",
                })?;
                out.push(match escaped {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'b' => '\u{8}',
                    other => other,
                });
                kept_len = out.len();
            }
            '$' => {
                let name = variable_name(&mut chars, line)?;
                let value = lookup(config, section, &name)
                    .ok_or(ConfigError::UndefinedVariable { line, name })?;
                out.push_str(value);
            }
            other => out.push(other),
        }
    }
    let trimmed_len = out.trim_end().len().max(kept_len);
    out.truncate(trimmed_len);
    Ok(out)
}

fn variable_name(
    chars: &mut std::iter::Peekable<std::str::Chars>,
    line: usize,
) -> Result<String, ConfigError> {
    let close = match chars.peek() {
        Some('{') => Some('}'),
        Some('(') => Some(')'),
        _ => None,
    };
    let mut name = String::new();
    if let Some(close) = close {
        chars.next();
        loop {
            match chars.next() {
                Some(c) if c == close => break,
                Some(c) => name.push(c),
                None => {
                    return Err(ConfigError::Malformed {
                        line,
                        why: "a ${...} variable is not closed",
                    })
                }
            }
        }
    } else {
        while let Some(&c) = chars.peek() {
            if is_var_char(c) || (c == ':' && !name.is_empty()) {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
    }
    if name.is_empty() {
        return Err(ConfigError::Malformed {
            line,
            why: "'$' is not followed by a variable name (write \\$ for a dollar)",
        });
    }
    Ok(name)
}

fn is_var_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// A variable from the current section or the default one; `section::name`
/// picks the section.
fn lookup<'a>(config: &'a Config, section: &str, name: &str) -> Option<&'a str> {
    match name.split_once("::") {
        Some((sec, key)) => config.get(sec, key),
        None => config
            .get(section, name)
            .or_else(|| config.get(DEFAULT_SECTION, name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let text = "top = 1\n# comment\n[ req ]  # trailing\n  a=b  \nq = \"x # y\" # z\nv = ${top}-$top\\\n  more\nesc = \\$5\n";
        let c = parse_config(text).unwrap();
        assert_eq!(c.get("default", "top"), Some("1"));
        assert_eq!(c.get("req", "a"), Some("b"));
        assert_eq!(c.get("req", "q"), Some("x # y"));
        assert_eq!(c.get("req", "v"), Some("1-1  more"));
        assert_eq!(c.get("req", "esc"), Some("$5"));
    }

    #[test]
    fn errors() {
        let cases = [
            ("[ req\n", "line 1: section header has no closing ']'"),
            ("[req]\njunk\n", "line 2: expected \"key = value\""),
            (
                ".include /etc/x\n",
                "line 1: unsupported directive \".include\"; inline the settings instead",
            ),
            (
                "a = $nope\n",
                "line 1: variable \"nope\" is not defined (write \\$ for a literal dollar)",
            ),
            ("a = \"open\n", "line 1: a quote is not closed"),
        ];
        for (text, message) in cases {
            assert_eq!(
                parse_config(text).unwrap_err().to_string(),
                message,
                "{text:?}"
            );
        }
    }

    #[test]
    fn never_panics() {
        let text = "[ a ]\nk = \"v\\\\\" $x ${a::k} 'é' \\\n[b]\n=\n$\n\\";
        for end in 0..=text.len() {
            if let Some(prefix) = text.get(..end) {
                let _ = parse_config(prefix);
            }
        }
    }
}
