//! A YAML document as rumor holds it, and its go-yaml-style writer.
//!
//! The same tree carries a decrypted document (scalars are secrets, so they
//! sit in zeroizing buffers) and an encrypted one about to be written
//! (scalars are `ENC[…]` strings and metadata). Writing follows go-yaml v3
//! as sops configures it: indent 4, lists indented under their key, nested
//! blocks aligned to multiples of 4 except inside a list item (`- ` + 2).

use zeroize::Zeroizing;

use super::scalar::{style, write_str, Style};

/// What a scalar reads back as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string, written in whatever style keeps it a string.
    Str,
    /// An integer, as decimal text.
    Int,
    /// A float, already in go-yaml's spelling.
    Float,
    /// `true` or `false`.
    Bool,
    /// A timestamp, as RFC 3339 text.
    Time,
}

/// One node.
pub(crate) enum Node {
    /// A map in written order.
    Map(Vec<(String, Node)>),
    /// A list.
    List(Vec<Node>),
    /// A scalar and its text.
    Scalar(Kind, Zeroizing<String>),
    /// `null`.
    Null,
}

impl Node {
    /// A string scalar.
    pub(crate) fn str(text: impl Into<String>) -> Node {
        Node::Scalar(Kind::Str, Zeroizing::new(text.into()))
    }
}

/// Keys longer than this are written as `? key` (go-yaml's simple-key limit).
const SIMPLE_KEY_MAX: usize = 128;

fn spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Where a block nested under a map entry at `indent` starts.
fn child(indent: usize) -> usize {
    (indent + 4) / 4 * 4
}

/// Appends one document; a top-level scalar or list is written too, though
/// sops files only hold maps.
pub(crate) fn write_document(out: &mut String, node: &Node) {
    match node {
        Node::Map(entries) if !entries.is_empty() => write_map(out, entries, 0, false),
        Node::List(items) if !items.is_empty() => write_list(out, items, 0, false),
        Node::Map(_) => out.push_str("{}\n"),
        Node::List(_) => out.push_str("[]\n"),
        Node::Null => out.push_str("null\n"),
        Node::Scalar(kind, text) => {
            write_scalar(out, *kind, text, 4, true);
            out.push('\n');
        }
    }
}

fn write_scalar(out: &mut String, kind: Kind, text: &str, indent: usize, hint_ok: bool) {
    match kind {
        Kind::Str => write_str(out, text, style(text, false), indent, hint_ok),
        Kind::Int | Kind::Float | Kind::Bool | Kind::Time => out.push_str(text),
    }
}

fn write_key(out: &mut String, key: &str, indent: usize) {
    if key.len() > SIMPLE_KEY_MAX {
        out.push_str("? ");
        let st = match style(key, false) {
            Style::Literal => Style::Double,
            other => other,
        };
        write_str(out, key, st, indent, false);
        out.push('\n');
        spaces(out, indent);
        out.push(':');
    } else {
        write_str(out, key, style(key, true), indent, false);
        out.push(':');
    }
}

/// Writes map entries at `indent`; with `inline_first` the caller has
/// already written `- ` and the first key follows on that line.
fn write_map(out: &mut String, entries: &[(String, Node)], indent: usize, inline_first: bool) {
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 || !inline_first {
            spaces(out, indent);
        }
        write_key(out, key, indent);
        match value {
            Node::Map(inner) if !inner.is_empty() => {
                out.push('\n');
                write_map(out, inner, child(indent), false);
            }
            Node::List(items) if !items.is_empty() => {
                out.push('\n');
                write_list(out, items, child(indent), false);
            }
            other => {
                out.push(' ');
                write_leaf(out, other, child(indent), indent % 4 == 0);
                out.push('\n');
            }
        }
    }
}

/// Writes list items at `indent`; `inline_first` as for [`write_map`].
fn write_list(out: &mut String, items: &[Node], indent: usize, inline_first: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline_first {
            spaces(out, indent);
        }
        out.push_str("- ");
        match item {
            Node::Map(entries) if !entries.is_empty() => write_map(out, entries, indent + 2, true),
            Node::List(inner) if !inner.is_empty() => write_list(out, inner, indent + 2, true),
            other => {
                write_leaf(out, other, indent + 2, false);
                out.push('\n');
            }
        }
    }
}

/// A scalar, null or empty collection after `key: ` or `- `.
fn write_leaf(out: &mut String, node: &Node, indent: usize, hint_ok: bool) {
    match node {
        Node::Scalar(kind, text) => write_scalar(out, *kind, text, indent, hint_ok),
        Node::Map(_) => out.push_str("{}"),
        Node::List(_) => out.push_str("[]"),
        Node::Null => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> Node {
        Node::str(t)
    }

    /// The shape `sops decrypt` printed for a nested file (sops 3.11).
    #[test]
    fn nested_shape_matches_sops() {
        let doc = Node::Map(vec![
            ("tab".into(), s("a\tb")),
            ("\"yes\"".trim_matches('"').into(), s("yes")),
            (
                "db".into(),
                Node::Map(vec![
                    (
                        "port".into(),
                        Node::Scalar(Kind::Int, Zeroizing::new("5432".into())),
                    ),
                    (
                        "on".into(),
                        Node::Scalar(Kind::Bool, Zeroizing::new("true".into())),
                    ),
                    ("none".into(), Node::Null),
                    ("emptymap".into(), Node::Map(vec![])),
                    ("emptylist".into(), Node::List(vec![])),
                ]),
            ),
            (
                "list".into(),
                Node::List(vec![
                    s("a"),
                    Node::Map(vec![
                        ("nested".into(), s("x")),
                        ("other".into(), Node::List(vec![s("deep")])),
                    ]),
                    Node::List(vec![s("inner"), s("inner2")]),
                    s("multi\nline\n"),
                ]),
            ),
            ("k".repeat(130), s("v")),
            ("nl2".into(), s("a\n\n")),
        ]);
        let mut out = String::new();
        write_document(&mut out, &doc);
        let want = format!(
            "tab: \"a\\tb\"\n\"yes\": \"yes\"\ndb:\n    port: 5432\n    \"on\": true\n    none: null\n    emptymap: {{}}\n    emptylist: []\n\
             list:\n    - a\n    - nested: x\n      other:\n        - deep\n    - - inner\n      - inner2\n    - |\n      multi\n      line\n\
             ? {}\n: v\nnl2: |+\n    a\n\n",
            "k".repeat(130)
        );
        assert_eq!(out, want);
    }
}
