//! Specs: the original rumor format, loaded from JSON, YAML or TOML.
//!
//! A spec is three ordered lists, `imports`, `generations` and `exports`,
//! of entries `{importer|generator|exporter: <kind>, arguments: {...}}`.
//! Maps keep their written order (env variables and SOPS secrets are
//! emitted in it). Every entry's kind is resolved and its arguments are
//! checked against the kind's declaration (see [`crate::generate::decl`])
//! when the spec is parsed, before anything runs.

use std::path::Path;

use serde_json::{Map, Value};

use crate::generate::{self, decl, Arg, ArgError, Args, Registered};
use crate::transfer::{Exporter, Importer};

/// The three sections of a spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// `imports`
    Imports,
    /// `generations`
    Generations,
    /// `exports`
    Exports,
}

impl Section {
    /// The section's key in a spec.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Section::Imports => "imports",
            Section::Generations => "generations",
            Section::Exports => "exports",
        }
    }

    /// The key naming an entry's kind in this section.
    pub(crate) fn kind_key(self) -> &'static str {
        match self {
            Section::Imports => "importer",
            Section::Generations => "generator",
            Section::Exports => "exporter",
        }
    }
}

/// What an entry does: its kind, resolved when the spec is parsed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// An import.
    Importer(Importer),
    /// A generation.
    Generator(Registered),
    /// An export.
    Exporter(Exporter),
}

impl Kind {
    /// The name a spec uses.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Importer(i) => i.name(),
            Kind::Generator(g) => g.name,
            Kind::Exporter(e) => e.name(),
        }
    }

    /// The kind's declared arguments.
    pub(crate) fn args(self) -> &'static [Arg] {
        match self {
            Kind::Importer(i) => i.args(),
            Kind::Generator(g) => g.generator.args(),
            Kind::Exporter(e) => e.args(),
        }
    }

    fn resolve(section: Section, name: &str) -> Option<Kind> {
        match section {
            Section::Imports => Importer::from_name(name).map(Kind::Importer),
            Section::Generations => generate::resolve(name).map(Kind::Generator),
            Section::Exports => Exporter::from_name(name).map(Kind::Exporter),
        }
    }

    fn known(section: Section) -> Vec<&'static str> {
        match section {
            Section::Imports => Importer::ALL.iter().map(|i| i.name()).collect(),
            Section::Generations => generate::kinds().collect(),
            Section::Exports => Exporter::ALL.iter().map(|e| e.name()).collect(),
        }
    }
}

impl PartialEq<&str> for Kind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// One entry of a section.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Which section it is in.
    pub(crate) section: Section,
    /// Its position there.
    pub(crate) index: usize,
    /// The importer, generator or exporter kind.
    pub(crate) kind: Kind,
    /// Its arguments, in written order.
    pub(crate) arguments: Map<String, Value>,
    /// The original accepted a `renew` key beside `arguments` and ignored
    /// it; so do we, but we say so.
    pub(crate) stray_renew: bool,
}

impl Entry {
    /// `generations[3] (nebula)`, the prefix of every message about it.
    pub fn label(&self) -> String {
        format!(
            "{}[{}] ({})",
            self.section.key(),
            self.index,
            self.kind.name()
        )
    }
}

/// A loaded spec.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// Run first, in order.
    pub imports: Vec<Entry>,
    /// Run second, in order.
    pub generations: Vec<Entry>,
    /// Run last, store exports before file exports.
    pub exports: Vec<Entry>,
}

/// The text formats a spec may be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON
    Json,
    /// YAML
    Yaml,
    /// TOML
    Toml,
}

impl Format {
    /// The format named by `json`, `yaml`/`yml` or `toml`.
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    /// The format of a file, by its extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(Format::from_name)
    }
}

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The text does not parse.
    #[error("{origin}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        /// The file name, or `<stdin>`.
        origin: String,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// The document does not match the spec format or an entry's declared
    /// arguments.
    #[error("{origin}: {location}: {message}")]
    Schema {
        /// The file name, or `<stdin>`.
        origin: String,
        /// `generations[3] (nebula)` or the JSON path.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// The extension names no known format.
    #[error("{origin}: cannot tell the spec format from the file name; use a .json, .yaml or .toml extension")]
    UnknownFormat {
        /// The file name.
        origin: String,
    },
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A TOML parse error's message on one line. The parser says "duplicate
/// key" and points at it; the key is named from the text it points at.
pub(crate) fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let key = e
        .span()
        .and_then(|s| text.get(s))
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 100 && !k.contains('\n'));
    match key {
        Some(key) if message == "duplicate key" => format!("duplicate key `{key}`"),
        _ => message,
    }
}

/// Parses spec text in `format`; `origin` names it in messages. Every
/// entry's kind is resolved and its arguments checked against the kind's
/// declaration, the same for `rumor run` and device specs.
pub fn parse(text: &str, format: Format, origin: &str) -> Result<Spec, SpecError> {
    let syntax = |line, message: String| SpecError::Syntax {
        origin: origin.to_owned(),
        line,
        message,
    };
    let Unique(value) = match format {
        Format::Json => serde_json::from_str(text)
            .map_err(|e| syntax(Some(e.line()), strip_position(&e.to_string())))?,
        Format::Yaml => {
            crate::yaml::check_flow_depth(text).map_err(|line| {
                syntax(
                    Some(line),
                    format!("nested deeper than {} levels", crate::yaml::MAX_FLOW_DEPTH),
                )
            })?;
            serde_yaml_ng::from_str(text).map_err(|e| {
                syntax(
                    e.location().map(|l| l.line()),
                    strip_position(&e.to_string()),
                )
            })?
        }
        Format::Toml => toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            syntax(line, toml_message(text, &e))
        })?,
    };
    from_value(&value, origin)
}

/// A parsed document that refuses duplicate map keys. serde_json's `Value`
/// keeps the last of two silently, so a second `generations:` would drop
/// the first list without a word.
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON-compatible value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d).map(|Unique(v)| v)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key
                    .chars()
                    .take(80)
                    .flat_map(char::escape_default)
                    .collect();
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key \"{shown}\""
                )));
            }
            let Unique(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Serde messages end with "at line 3 column 5"; the line is shown in
/// front already.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Checks a parsed document and turns it into a spec.
pub(crate) fn from_value(value: &Value, origin: &str) -> Result<Spec, SpecError> {
    let schema_error = |location: String, message: String| SpecError::Schema {
        origin: origin.to_owned(),
        location,
        message,
    };
    let root = value.as_object().ok_or_else(|| {
        schema_error(
            "top level".into(),
            "a spec must be a map with imports, generations and exports".into(),
        )
    })?;
    // Each entry: its section, index, kind, arguments and stray `renew`.
    type Raw = (Section, usize, String, Map<String, Value>, bool);
    let mut raw: Vec<Raw> = Vec::new();
    for section in [Section::Imports, Section::Generations, Section::Exports] {
        let list = match root.get(section.key()) {
            Some(Value::Array(list)) => list,
            // The original's schema requires all three; a missing one is
            // an empty list in practice, and saying so helps nobody.
            None => continue,
            Some(_) => {
                return Err(schema_error(
                    section.key().into(),
                    "must be a list of entries".into(),
                ))
            }
        };
        for (index, item) in list.iter().enumerate() {
            let at = format!("{}[{index}]", section.key());
            let map = item
                .as_object()
                .ok_or_else(|| schema_error(at.clone(), "must be a map".into()))?;
            let kind = match map.get(section.kind_key()) {
                Some(Value::String(k)) => k.clone(),
                Some(_) => {
                    return Err(schema_error(
                        at,
                        format!("\"{}\" must be a string", section.kind_key()),
                    ))
                }
                None => {
                    return Err(schema_error(
                        at,
                        format!("missing \"{}\"", section.kind_key()),
                    ))
                }
            };
            let arguments = match map.get("arguments") {
                Some(Value::Object(a)) => a.clone(),
                None | Some(Value::Null) => Map::new(),
                Some(_) => {
                    return Err(schema_error(
                        format!("{at} ({kind})"),
                        "\"arguments\" must be a map".into(),
                    ))
                }
            };
            for key in map.keys() {
                if key != section.kind_key() && key != "arguments" && key != "renew" {
                    return Err(schema_error(
                        format!("{at} ({kind})"),
                        format!("unknown field \"{key}\"; put arguments under \"arguments\""),
                    ));
                }
            }
            let stray_renew = match map.get("renew") {
                None => false,
                Some(Value::Bool(_)) => true,
                Some(_) => {
                    return Err(schema_error(
                        format!("{at} ({kind})"),
                        "must be of type boolean".into(),
                    ))
                }
            };
            raw.push((section, index, kind, arguments, stray_renew));
        }
    }
    for key in root.keys() {
        if !["imports", "generations", "exports", "$schema"].contains(&key.as_str()) {
            return Err(schema_error(
                "top level".into(),
                format!("unknown section \"{key}\"; a spec has imports, generations and exports"),
            ));
        }
    }
    // Unknown kinds get their own message, listing the known ones.
    let mut spec = Spec::default();
    for (section, index, name, arguments, stray_renew) in raw {
        let Some(kind) = Kind::resolve(section, &name) else {
            return Err(schema_error(
                format!("{}[{index}]", section.key()),
                format!(
                    "unknown {} \"{name}\"; known: {}",
                    section.kind_key(),
                    Kind::known(section).join(", ")
                ),
            ));
        };
        spec.sections_mut(section).push(Entry {
            section,
            index,
            kind,
            arguments,
            stray_renew,
        });
    }
    for entry in spec.entries() {
        check_arguments(entry).map_err(|(location, message)| schema_error(location, message))?;
    }
    Ok(spec)
}

/// Checks an entry's arguments against its kind's declaration (and, for a
/// generator, its own further checks).
fn check_arguments(entry: &Entry) -> Result<(), (String, String)> {
    let args = Args::new(&entry.arguments);
    let checked = match entry.kind {
        Kind::Generator(g) => args.renew().and_then(|_| g.generator.validate(&args)),
        Kind::Importer(i) => decl::check(i.args(), &args),
        // Exporters take no allow_fail, but a malformed one was always refused.
        Kind::Exporter(e) => {
            decl::check(e.args(), &args).and_then(|()| args.bool_or("allow_fail", false).map(drop))
        }
    };
    checked.map_err(|e| placed(entry, e))
}

/// Where and what: a value of the wrong type is worded as the JSON Schema
/// words it, at `generations[0] (text), argument "text"`; anything else
/// follows the entry, as the engine words it. Never the value itself.
fn placed(entry: &Entry, e: ArgError) -> (String, String) {
    if let ArgError::WrongType { arg, .. } = &e {
        let declared = entry
            .kind
            .args()
            .iter()
            .find(|a| a.name == arg.as_str())
            .and_then(Arg::json_type);
        let json_type = if arg == "renew" {
            Some("boolean")
        } else {
            declared
        };
        if let Some(json_type) = json_type {
            return (
                format!("{}, argument \"{arg}\"", entry.label()),
                format!("must be of type {json_type}"),
            );
        }
    }
    (entry.label(), e.to_string())
}

impl Spec {
    fn sections_mut(&mut self, section: Section) -> &mut Vec<Entry> {
        match section {
            Section::Imports => &mut self.imports,
            Section::Generations => &mut self.generations,
            Section::Exports => &mut self.exports,
        }
    }

    /// All entries, in running order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.imports
            .iter()
            .chain(&self.generations)
            .chain(&self.exports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_agree() {
        let toml =
            "[[generations]]\ngenerator = \"id\"\narguments.name = \"id\"\narguments.length = 4\n";
        let yaml = "generations:\n  - generator: id\n    arguments: {name: id, length: 4}\n";
        let json = r#"{"generations":[{"generator":"id","arguments":{"name":"id","length":4}}]}"#;
        for (text, format) in [
            (toml, Format::Toml),
            (yaml, Format::Yaml),
            (json, Format::Json),
        ] {
            let spec = parse(text, format, "t").unwrap();
            assert_eq!(spec.generations.len(), 1);
            assert_eq!(spec.generations[0].kind, "id");
            assert_eq!(spec.generations[0].arguments["length"], 4);
        }
    }

    #[test]
    fn order_of_maps_is_kept() {
        let toml = "[[generations]]\ngenerator = \"env\"\n[generations.arguments]\nname = \"e\"\n[generations.arguments.variables]\nZ = \"1\"\nA = \"2\"\nM = \"3\"\n";
        let spec = parse(toml, Format::Toml, "t").unwrap();
        let keys: Vec<_> = spec.generations[0].arguments["variables"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["Z", "A", "M"]);
    }

    #[test]
    fn errors_name_place() {
        let e = parse(
            "[[generations]]\ngenerator = \"id\"\narguments.name = \n",
            Format::Toml,
            "spec.toml",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("spec.toml:3: "), "{e}");
        let e = parse(
            "[[generations]]\ngenerator = \"nope\"\n",
            Format::Toml,
            "spec.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("generations[0]: unknown generator \"nope\""),
            "{e}"
        );
        let e = parse("{\"imports\": [", Format::Json, "s.json").unwrap_err();
        assert!(e.to_string().starts_with("s.json:1: "), "{e}");
        let e = parse("[[generations]]\ngenerator = \"text\"\narguments = { name = \"t\", text = 12345678 }\n", Format::Toml, "t.toml").unwrap_err();
        assert!(
            e.to_string()
                .contains("generations[0] (text), argument \"text\": must be of type string"),
            "{e}"
        );
        assert!(
            !e.to_string().contains("12345678"),
            "schema errors never quote values: {e}"
        );
        let e = parse("- a\n- b\n", Format::Yaml, "s.yaml").unwrap_err();
        assert!(e.to_string().contains("must be a map"), "{e}");
    }

    #[test]
    fn both_released_argument_forms_pass_the_schema() {
        let modern = r#"{"generations":[{"generator":"openssl-ca","arguments":{"config":"ca.cnf","public":"c","private":"k"}}]}"#;
        let legacy = r#"{"generations":[{"generator":"openssl-ca","arguments":{"name":"CA","public":"c","private":"k"}},
            {"generator":"cockroach-client","arguments":{"ca_public":"c","ca_private":"k","public":"p","private":"q"}}]}"#;
        parse(modern, Format::Json, "t").unwrap();
        parse(legacy, Format::Json, "t").unwrap();
        let neither = r#"{"generations":[{"generator":"openssl","arguments":{"ca_public":"c","ca_private":"k","serial":"s","public":"p","private":"q"}}]}"#;
        let e = parse(neither, Format::Json, "s.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"s.json: generations[0] (openssl): missing argument "config" (2.x form) or "name" (1.x form)"#
        );
    }

    #[test]
    fn stray_renew_is_accepted() {
        let spec = parse(
            "[[generations]]\ngenerator = \"id\"\narguments.name = \"id3\"\nrenew = true\n",
            Format::Toml,
            "t",
        )
        .unwrap();
        assert!(spec.generations[0].stray_renew);
    }
}
