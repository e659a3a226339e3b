//! The JSON Schema of the spec format, as `rumor schema` prints it: the
//! fixed shape of a spec around the arguments every importer, generator and
//! exporter declares. `schema.json` is this output, checked in for editors;
//! a test fails when it is stale.

use serde_json::{json, Map, Value};

use crate::generate::{decl, Arg, REGISTRY};
use crate::transfer::{Exporter, Importer};

/// One kind of a section: its name, one line about it, its arguments.
type KindDecl = (&'static str, &'static str, &'static [Arg]);

/// The schema, pretty-printed, with a final newline.
pub(crate) fn schema() -> String {
    let imports: Vec<KindDecl> = Importer::ALL
        .iter()
        .map(|i| (i.name(), "", i.args()))
        .collect();
    let generations: Vec<KindDecl> = REGISTRY
        .iter()
        .map(|&(name, g)| (name, g.doc(), g.args()))
        .collect();
    let exports: Vec<KindDecl> = Exporter::ALL
        .iter()
        .map(|e| (e.name(), "", e.args()))
        .collect();
    let root = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "rumor spec",
        "description": "imports run first, then generations, then exports",
        "type": "object",
        "properties": {
            "$schema": {"type": "string"},
            "imports": section("importer", &imports, false),
            "generations": section("generator", &generations, true),
            "exports": section("exporter", &exports, false),
        },
        "additionalProperties": false,
    });
    // Serialising a Value cannot fail; an empty schema would fail the test.
    let mut text = serde_json::to_string_pretty(&root).unwrap_or_default();
    text.push('\n');
    text
}

fn section(kind_key: &str, kinds: &[KindDecl], generator: bool) -> Value {
    let renew = [("renew", json!({"type": "boolean"}))];
    let extra: &[(&str, Value)] = if generator { &renew } else { &[] };
    let branches: Vec<Value> = kinds
        .iter()
        .map(|&(kind, doc, args)| {
            let arguments = decl::schema(&format!("{kind} arguments"), doc, args, extra);
            let mut then = Map::new();
            then.insert("properties".into(), json!({"arguments": arguments}));
            if arguments
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty())
            {
                then.insert("required".into(), json!(["arguments"]));
            }
            json!({"if": {"properties": {kind_key: {"const": kind}}}, "then": then})
        })
        .collect();
    let names: Vec<&str> = kinds.iter().map(|k| k.0).collect();
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": [kind_key],
            "properties": {
                kind_key: {"type": "string", "enum": names},
                "arguments": {"type": "object"},
                "renew": {"type": "boolean", "description": "ignored, as in the original; use arguments.renew"},
            },
            "additionalProperties": false,
            "allOf": branches,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.json");
        let file = std::fs::read_to_string(path).unwrap();
        assert!(
            file == schema(),
            "schema.json is stale: the generators' declarations changed. Regenerate it with `cargo run -q -- schema > schema.json`"
        );
    }

    #[test]
    fn schema_compiles_and_accepts_both_forms() {
        let schema: Value = serde_json::from_str(&schema()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let modern = json!({"generations": [{"generator": "openssl-ca", "arguments": {"config": "ca.cnf", "public": "c", "private": "k"}}]});
        let legacy = json!({"generations": [{"generator": "openssl-ca", "arguments": {"name": "CA", "public": "c", "private": "k"}}]});
        let neither = json!({"generations": [{"generator": "openssl-ca", "arguments": {"public": "c", "private": "k"}}]});
        assert!(validator.is_valid(&modern));
        assert!(validator.is_valid(&legacy));
        assert!(!validator.is_valid(&neither));
    }
}
