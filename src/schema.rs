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
        "ignore_changes": {"type": "array", "items": {"type": "string"}},
        "replace_triggered_by": {"type": "array", "items": {"type": "string"},
            "description": "Addresses (TYPE.NAME, TYPE.NAME[\"KEY\"], optionally .ATTRIBUTE) whose planned change replaces this resource."}}}),
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
    props.insert("output".into(), json!({"type": "object", "description": "Outputs: printed after apply, read with `claw output`.",
        "additionalProperties": {"type": "object", "additionalProperties": false, "required": ["value"], "properties": {
            "value": {"description": "Any value; strings interpolate ${vars.x}, ${env.X} and ${TYPE.NAME.ATTR}."},
            "description": {"type": "string"},
            "sensitive": {"type": "boolean", "description": "Shown as (sensitive); `claw output NAME` prints it."}}}}));
    props.insert("check".into(), json!({"type": "object", "description": "Health checks: run by apply after their dependencies and by `claw check`.",
        "additionalProperties": {"type": "object", "additionalProperties": false,
            "oneOf": [{"required": ["http"]}, {"required": ["tcp"]}, {"required": ["command"]}],
            "properties": {
            "http": {"type": "string", "description": "A URL; healthy on a 2xx answer."},
            "tcp": {"type": "string", "description": "host:port; healthy when it accepts a connection."},
            "command": {"type": "string", "description": "A shell command; healthy on exit 0."},
            "host": {"type": "string", "description": "Which [host.*] runs the command (default `local`)."},
            "timeout": {"type": "string", "description": "Keep trying until healthy or this long (default 60s)."},
            "depends_on": {"type": "array", "items": {"type": "string"}, "description": "Addresses applied (or checks passed) first."}}}}));
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
    let mut defs: Map<String, Value> = g.definitions().clone().into_iter().collect();
    // Shapes are tables of attributes: within them, every map's values may
    // be optional secrets. The wrappers above (blocks and resources by
    // name) are not attribute tables.
    for (k, v) in props.iter_mut() {
        match k.as_str() {
            "stack" | "vars" | "output" | "check" => {}
            "provider" => {
                if let Some(items) = v
                    .pointer_mut("/additionalProperties/anyOf")
                    .and_then(Value::as_array_mut)
                {
                    items
                        .iter_mut()
                        .for_each(|i| optional_entries(i, &mut defs));
                }
            }
            _ => {
                if let Some(shape) = v.get_mut("additionalProperties") {
                    optional_entries(shape, &mut defs);
                }
            }
        }
    }
    let names: Vec<String> = defs.keys().cloned().collect();
    for n in names {
        if let Some(mut d) = defs.remove(&n) {
            optional_entries(&mut d, &mut defs);
            defs.insert(n, d);
        }
    }
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

/// Gives the value schema of every map inside `v` (an attribute shape)
/// `optional` on its secret references: `{ env = "NAME", optional = true }`
/// leaves a table entry out when the variable is unset.
fn optional_entries(v: &mut Value, defs: &mut Map<String, Value>) {
    let Some(o) = v.as_object_mut() else { return };
    if let Some(ap) = o.get_mut("additionalProperties") {
        if let Some(entry) = entry_schema(ap, defs) {
            *ap = entry;
        }
    }
    for (k, child) in o.iter_mut() {
        if k == "additionalProperties" {
            continue;
        }
        match child {
            Value::Array(items) => items.iter_mut().for_each(|i| optional_entries(i, defs)),
            Value::Object(m) => m.values_mut().for_each(|i| optional_entries(i, defs)),
            _ => {}
        }
    }
    // `properties` holds attribute schemas by name, walked above.
}

/// The schema of a table entry's value, when it differs from `s`: secret
/// references (objects whose properties are `env` and/or `file`) accept
/// `optional`. Referenced definitions get an `...Entry` twin.
fn entry_schema(s: &Value, defs: &mut Map<String, Value>) -> Option<Value> {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/").to_string();
        let twin = format!("{name}Entry");
        if !defs.contains_key(&twin) {
            let def = defs.get(&name)?.clone();
            let changed = entry_schema(&def, defs)?;
            defs.insert(twin.clone(), changed);
        }
        return Some(json!({"$ref": format!("#/$defs/{twin}")}));
    }
    let o = s.as_object()?;
    for key in ["anyOf", "oneOf"] {
        if let Some(items) = o.get(key).and_then(Value::as_array) {
            let changed: Vec<Option<Value>> = items.iter().map(|i| entry_schema(i, defs)).collect();
            if changed.iter().all(Option::is_none) {
                return None;
            }
            let items: Vec<Value> = items
                .iter()
                .zip(changed)
                .map(|(i, c)| c.unwrap_or_else(|| i.clone()))
                .collect();
            let mut out = o.clone();
            out.insert(key.into(), Value::Array(items));
            return Some(Value::Object(out));
        }
    }
    let props = o.get("properties").and_then(Value::as_object)?;
    let secret = !props.is_empty() && props.keys().all(|k| k == "env" || k == "file");
    if !secret {
        return None;
    }
    let mut out = o.clone();
    let mut props = props.clone();
    props.insert(
        "optional".into(),
        json!({"type": "boolean", "description": "Leave this entry out when the variable is not set (or the file is missing)."}),
    );
    out.insert("properties".into(), Value::Object(props));
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The object schemas a property allows, `$ref`s and `anyOf`s followed.
    fn objects<'a>(s: &'a Value, defs: &'a Value, out: &mut Vec<&'a Value>) {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            return objects(&defs[r.trim_start_matches("#/$defs/")], defs, out);
        }
        if let Some(items) = s.get("anyOf").and_then(Value::as_array) {
            return items.iter().for_each(|i| objects(i, defs, out));
        }
        out.push(s);
    }

    fn takes_optional(root: &Value, rtype: &str, pointer: &str) -> bool {
        let shape = &root["properties"][rtype]["additionalProperties"];
        let s = shape
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{rtype}{pointer}"));
        let mut out = Vec::new();
        objects(s, &root["$defs"], &mut out);
        let secrets: Vec<&&Value> = out
            .iter()
            .filter(|o| o.pointer("/properties/env").is_some())
            .collect();
        assert!(
            !secrets.is_empty(),
            "{rtype}{pointer} takes {{ env = ... }}"
        );
        secrets
            .iter()
            .all(|o| o.pointer("/properties/optional").is_some())
    }

    #[test]
    fn optional_secrets_are_allowed_in_table_entries_only() {
        let root = config_schema(&Registry::builtin());
        assert!(takes_optional(
            &root,
            "tmux_session",
            "/properties/env/additionalProperties"
        ));
        assert!(takes_optional(
            &root,
            "docker_container",
            "/properties/env/additionalProperties"
        ));
        assert!(takes_optional(
            &root,
            "k8s_secret",
            "/properties/data/additionalProperties"
        ));
        assert!(!takes_optional(&root, "file", "/properties/content"));
    }
}
