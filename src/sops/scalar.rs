//! Writing scalars the way go-yaml v3 (and so sops) does.
//!
//! go-yaml quotes a string when a plain spelling would read back as
//! something else (`on`, `00123`, `1:20`), and otherwise lets its emitter
//! pick plain, single-quoted, double-quoted or literal style from the
//! characters. Matching it keeps rumor's files diff-identical in shape to
//! the ones sops writes. Long lines are never folded (sops sets no width).

use std::sync::LazyLock;

use regex::Regex;

/// How a scalar is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// As is.
    Plain,
    /// `'…'`, quotes doubled.
    Single,
    /// `"…"` with escapes.
    Double,
    /// `|`, `|-` or `|+` block.
    Literal,
}

static TIMESTAMP: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]*)?[ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?)?)?$").ok()
});
static FLOAT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").ok());
static BASE60: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$").ok());

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

/// Whether Go's `strconv.ParseInt(s, 0, 64)` or `ParseUint` accepts `s`.
fn go_int(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = digits.to_ascii_lowercase();
    let (body, radix) = if let Some(b) = lower.strip_prefix("0x") {
        (b, 16)
    } else if let Some(b) = lower.strip_prefix("0o") {
        (b, 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    !body.is_empty() && body.chars().all(|c| c.is_digit(radix))
}

/// Whether go-yaml would read the plain scalar `s` as anything but a string.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", ".nan",
        ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
        "-.INF", "<<",
    ];
    // YAML 1.1 booleans: go-yaml no longer reads them as such but still
    // quotes them, so that older parsers agree.
    const OLD_BOOLS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off",
        "OFF",
    ];
    if WORDS.contains(&s) || OLD_BOOLS.contains(&s) || matches(&BASE60, s) {
        return true;
    }
    match s.as_bytes().first() {
        Some(b'.') => s.parse::<f64>().is_ok(),
        Some(b'0'..=b'9' | b'+' | b'-') => {
            let plain = s.replace('_', "");
            matches(&TIMESTAMP, s) || go_int(&plain) || matches(&FLOAT, &plain)
        }
        _ => false,
    }
}

/// go-yaml's `is_printable` (tabs and characters beyond the BMP are not).
fn printable(c: char) -> bool {
    matches!(c as u32, 0x0A | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD)
        && c != '\u{FEFF}'
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// The style go-yaml picks for string `s`, as a map key or as a value.
pub(crate) fn style(s: &str, key: bool) -> Style {
    if resolves_to_non_string(s) {
        return Style::Double;
    }
    let chars: Vec<char> = s.chars().collect();
    let (mut flow_ind, mut block_ind, mut special, mut tabs) = (false, false, false, false);
    let (mut leading_space, mut trailing_space, mut break_space, mut space_break) =
        (false, false, false, false);
    let (mut leading_break, mut trailing_break, mut line_breaks) = (false, false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        flow_ind = true;
        block_ind = true;
    }
    for (i, &c) in chars.iter().enumerate() {
        let last = i + 1 == chars.len();
        let followed_by_blank = chars
            .get(i + 1)
            .is_none_or(|&n| n == ' ' || n == '\t' || is_break(n));
        let preceded_by_blank =
            i == 0 || matches!(chars[i - 1], ' ' | '\t') || is_break(chars[i - 1]);
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_ind = true;
                    block_ind = true;
                }
                '?' | ':' => {
                    flow_ind = true;
                    block_ind |= followed_by_blank;
                }
                '-' if followed_by_blank => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_ind = true,
                ':' => {
                    flow_ind = true;
                    block_ind |= followed_by_blank;
                }
                '#' if preceded_by_blank => {
                    flow_ind = true;
                    block_ind = true;
                }
                _ => {}
            }
        }
        if c == '\t' {
            tabs = true;
        } else if !printable(c) || (is_break(c) && c != '\n') {
            // Only `\n` is written inside a literal block; other breaks
            // would be normalised away by a reader, so they are escaped.
            special = true;
        }
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= last;
            break_space |= prev_break;
            (prev_space, prev_break) = (true, false);
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= i == 0;
            trailing_break |= last;
            space_break |= prev_space;
            (prev_space, prev_break) = (false, true);
        } else {
            (prev_space, prev_break) = (false, false);
        }
    }
    let mut plain_ok = !(leading_space || leading_break || trailing_space || trailing_break);
    let mut single_ok = true;
    let mut block_ok = !trailing_space;
    if break_space {
        plain_ok = false;
        single_ok = false;
    }
    if space_break || tabs || special {
        plain_ok = false;
        single_ok = false;
    }
    if space_break || special {
        block_ok = false;
    }
    plain_ok &= !line_breaks && !block_ind;
    let _ = flow_ind; // sops writes block style only
    if s.contains('\n') {
        return if block_ok && !key {
            Style::Literal
        } else {
            Style::Double
        };
    }
    if plain_ok {
        Style::Plain
    } else if single_ok {
        Style::Single
    } else {
        Style::Double
    }
}

/// Appends `s` in double-quoted style with go-yaml's escapes.
fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if printable(c) => out.push(c),
            c if (c as u32) <= 0xFF => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
}

/// Appends string `s` in the given style. A literal block's lines go at
/// `indent` spaces; `hint_ok` says whether an indentation indicator would be
/// read right here (go-yaml always writes its best indent, 4, which only
/// matches the content indentation under a top-level key), and when it is
/// not, a block needing one is written double-quoted instead.
pub(crate) fn write_str(out: &mut String, s: &str, style: Style, indent: usize, hint_ok: bool) {
    match style {
        Style::Plain => out.push_str(s),
        Style::Single => {
            out.push('\'');
            out.push_str(&s.replace('\'', "''"));
            out.push('\'');
        }
        Style::Double => double_quoted(out, s),
        Style::Literal => {
            let needs_hint = s.starts_with([' ', '\n']);
            if needs_hint && !hint_ok {
                return double_quoted(out, s);
            }
            out.push('|');
            if needs_hint {
                out.push('4');
            }
            let body = match s.strip_suffix('\n') {
                None => {
                    out.push('-');
                    s
                }
                Some(rest) => {
                    if rest.is_empty() || rest.ends_with('\n') {
                        out.push('+');
                    }
                    rest
                }
            };
            for line in body.split('\n') {
                out.push('\n');
                if !line.is_empty() {
                    out.push_str(&" ".repeat(indent));
                    out.push_str(line);
                }
            }
        }
    }
}

/// A float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` and go-yaml write
/// it: shortest digits, exponent form below 1e-4 or from 1e6 up.
pub(crate) fn go_float_yaml(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return format!("{f}");
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// A float as sops hashes and encrypts it: Go's `FormatFloat(f, 'f', -1, 64)`.
pub(crate) fn go_float_plain(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Styles observed from `sops decrypt` (sops 3.11, go-yaml v3).
    #[test]
    fn styles_match_go_yaml() {
        let cases = [
            ("world", Style::Plain),
            ("on", Style::Double),
            ("n", Style::Double),
            ("yes", Style::Double),
            ("00123", Style::Double),
            ("true", Style::Double),
            ("", Style::Double),
            ("~", Style::Double),
            ("null", Style::Double),
            ("2024-01-02", Style::Double),
            ("1:20", Style::Double),
            ("0o17", Style::Double),
            ("0x1F", Style::Double),
            ("1e3", Style::Double),
            ("1_000", Style::Double),
            ("a\tb", Style::Double),
            ("x😀y", Style::Double),
            ("a\u{1}b", Style::Double),
            ("a\u{a0}b", Style::Plain),
            ("abc ", Style::Single),
            (" abc", Style::Single),
            ("a \nb", Style::Double),
            ("a\n\n", Style::Literal),
            ("\n a", Style::Literal),
            ("a: b", Style::Single),
            ("a:", Style::Single),
            ("a #b", Style::Single),
            ("- a", Style::Single),
            ("\"x", Style::Single),
            ("'x", Style::Single),
            ("|x", Style::Single),
            ("it's: # \"q\" ünï", Style::Single),
            (
                "ENC[AES256_GCM,data:Jwg=,iv:5x/c=,tag:Bv==,type:int]",
                Style::Plain,
            ),
            ("dash-key.x", Style::Plain),
        ];
        for (s, want) in cases {
            assert_eq!(style(s, false), want, "{s:?}");
        }
        assert_eq!(style("a\nb", true), Style::Double);
    }

    #[test]
    fn writes_like_go_yaml() {
        let w = |s: &str| {
            let mut out = String::new();
            write_str(&mut out, s, style(s, false), 4, true);
            out
        };
        assert_eq!(w("x😀y"), "\"x\\U0001F600y\"");
        assert_eq!(w("a\u{1}b"), "\"a\\x01b\"");
        assert_eq!(w("'x"), "'''x'");
        assert_eq!(w("a\n\n"), "|+\n    a\n");
        assert_eq!(w("\n a"), "|4-\n\n     a");
        assert_eq!(w("l1\nl2\n"), "|\n    l1\n    l2");
        assert_eq!(go_float_yaml(1e6), "1e+06");
        assert_eq!(go_float_yaml(1e-5), "1e-05");
        assert_eq!(go_float_yaml(1.5), "1.5");
        assert_eq!(go_float_yaml(123456.0), "123456");
        assert_eq!(go_float_yaml(0.0001), "0.0001");
        assert_eq!(go_float_yaml(123456789.0), "1.23456789e+08");
        assert_eq!(go_float_plain(1e6), "1000000");
        assert_eq!(go_float_plain(f64::INFINITY), "+Inf");
    }
}
