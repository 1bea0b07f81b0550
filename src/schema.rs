//! JSON Schemas: `schemas/claw.schema.json` (the config, for editors) and
//! `schemas/plan.schema.json` (plan files), generated from the types.

use crate::registry::Registry;
use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// The schema of plan files and `--format json`.
pub fn plan_schema() -> Value {
    let s = schemars::schema_for!(crate::plan::Plan);
    serde_json::to_value(s).unwrap_or_default()
}

fn meta_props(kind: &str) -> Map<String, Value> {
    let mut m = Map::new();
    if kind == "host" {
        m.insert(
            "host".into(),
            json!({"type": "string", "description": "Which [host.*] runs it (default `local`)."}),
        );
    } else {
        m.insert("provider".into(), json!({"type": "string", "description": "Which [provider.*] alias (default: the only one of this type)."}));
    }
    m.insert("depends_on".into(), json!({"type": "array", "items": {"type": "string"}, "description": "Addresses that must be applied first."}));
    m.insert("for_each".into(), json!({"description": "A list of strings, or a table of tables: one instance per key.", "anyOf": [
        {"type": "array", "items": {"type": "string"}}, {"type": "object"}, {"type": "string", "pattern": "^\\$\\{.*\\}$"}]}));
    m.insert(
        "lifecycle".into(),
        json!({"type": "object", "additionalProperties": false, "properties": {
        "prevent_destroy": {"type": "boolean"}, "create_before_destroy": {"type": "boolean"},
        "ignore_changes": {"type": "array", "items": {"type": "string"}}}}),
    );
    m
}

/// The schema of `claw.toml`, assembled from each provider's shapes.
pub fn config_schema(reg: &Registry) -> Value {
    let mut g = SchemaGenerator::default();
    let mut props = Map::new();
    let backends: Vec<&str> = reg.kinds().filter(|k| *k != "host").collect();
    props.insert("stack".into(), json!({
        "type": "object", "additionalProperties": false, "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,39}$"},
            "state": {"description": "Where state lives: the local file, or a backend on a provider alias (its keys are the provider's).",
                "anyOf": [
                {"type": "object", "additionalProperties": false, "properties": {
                    "backend": {"const": "local"}, "path": {"type": "string"}}},
                {"type": "object", "required": ["backend", "provider"], "properties": {
                    "backend": {"enum": backends}, "provider": {"type": "string", "description": "A [provider.*] alias of the backend's type."}}}]}
        }
    }));
    props.insert("vars".into(), json!({"type": "object", "description": "Variable defaults; override with --var k=v or CLAW_VAR_k."}));
    let mut provider_kinds = Vec::new();
    for kind in reg.kinds() {
        let Some(f) = reg.factory(kind) else { continue };
        let shape: Schema = (f.config_shape().schema)(&mut g);
        if kind == "host" {
            props.insert(
                "host".into(),
                json!({"type": "object", "additionalProperties": shape}),
            );
        } else {
            let mut s = shape.to_value();
            if let Some(o) = s.as_object_mut() {
                if let Some(p) = o.get_mut("properties").and_then(Value::as_object_mut) {
                    p.insert("type".into(), json!({"const": kind}));
                }
            }
            provider_kinds.push(s);
        }
    }
    props.insert(
        "provider".into(),
        json!({"type": "object", "additionalProperties": {"anyOf": provider_kinds}}),
    );
    for name in reg.type_names() {
        let Some((kind, t)) = reg.resource_type(name) else {
            continue;
        };
        let mut s = (t.shape.schema)(&mut g).to_value();
        // Inline the shape and add the meta-arguments.
        if let Some(r) = s.get("$ref").and_then(Value::as_str).map(str::to_string) {
            let key = r.trim_start_matches("#/$defs/").to_string();
            if let Some(d) = g.definitions().get(&key) {
                s = d.clone();
            }
        }
        if let Some(p) = s
            .as_object_mut()
            .and_then(|o| o.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            p.extend(meta_props(kind));
        }
        if let Some(o) = s.as_object_mut() {
            o.insert("description".into(), json!(t.description));
        }
        props.insert(
            name.into(),
            json!({"type": "object", "additionalProperties": s}),
        );
    }
    let defs: Map<String, Value> = g.definitions().clone().into_iter().collect();
    let root: Schema = json_schema!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "claw.toml",
        "description": "The configuration of one claw stack.",
        "type": "object",
        "additionalProperties": false,
        "properties": props,
        "$defs": defs,
    });
    root.to_value()
}
