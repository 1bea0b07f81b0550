//! Outputs (SPEC §1.1a): the plan's `Outputs:` lines, `claw output` (and
//! the list after apply), `claw output NAME` and `claw output --json`.

use crate::plan::{OutputAction, OutputChange};
use crate::state::StoredOutput;
use claw_provider::Value;
use std::collections::BTreeMap;

/// One line per changing output, without indentation: `+ name = value`,
/// `~ name = old -> new`, `- name = old`; sensitive values never shown.
pub fn plan_lines(changes: &[OutputChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            let show = |v: &Option<Value>| match v {
                Some(_) if c.sensitive => "(sensitive)".to_string(),
                Some(v) => v.render_inline(),
                None => "null".to_string(),
            };
            let value = match c.action {
                OutputAction::Create => show(&c.after),
                OutputAction::Delete => show(&c.before),
                OutputAction::Update if c.sensitive => "(sensitive value changed)".to_string(),
                OutputAction::Update => format!("{} -> {}", show(&c.before), show(&c.after)),
            };
            format!("{} {} = {value}", c.action.symbol(), c.name)
        })
        .collect()
}

/// `name = value` lines, sorted by name; sensitive ones as `(sensitive)`.
pub fn list(outputs: &BTreeMap<String, StoredOutput>) -> String {
    outputs
        .iter()
        .map(|(name, o)| {
            let v = if o.sensitive {
                "(sensitive)".to_string()
            } else {
                o.value.render_inline()
            };
            format!("{name} = {v}\n")
        })
        .collect()
}

/// A value as `claw output NAME` prints it: a string as it is, anything
/// else as JSON; a sensitive value in clear (that is the point).
pub fn bare(v: &Value) -> String {
    let mut s = match v {
        Value::String(s) => s.clone(),
        Value::Secret(s) => s.expose().unwrap_or("(sensitive)").to_string(),
        other => other.to_json_exposed().to_string(),
    };
    s.push('\n');
    s
}

/// `claw output --json`: one object, `{"NAME": {"sensitive", "type",
/// "value"}}` like `terraform output -json`, sensitive values included.
pub fn json(values: &BTreeMap<String, (Value, bool)>) -> String {
    let obj: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(name, (v, sensitive))| {
            let value = clear_json(v);
            let mut o = serde_json::Map::new();
            o.insert("sensitive".into(), (*sensitive).into());
            o.insert("type".into(), type_name(&value).into());
            o.insert("value".into(), value);
            (name.clone(), serde_json::Value::Object(o))
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&obj).unwrap_or_default();
    s.push('\n');
    s
}

/// `claw output NAME --json`: the value alone.
pub fn json_value(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(&clear_json(v)).unwrap_or_default();
    s.push('\n');
    s
}

fn clear_json(v: &Value) -> serde_json::Value {
    match v {
        // A sensitive output is one secret: its text, which may be JSON.
        Value::Secret(s) => match s.expose() {
            Some(t) => serde_json::from_str(t).unwrap_or_else(|_| t.into()),
            None => serde_json::Value::Null,
        },
        other => other.to_json_exposed(),
    }
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_provider::Secret;

    #[test]
    fn plan_lines_never_show_sensitive_values() {
        let c = |name: &str, action, before: Option<Value>, after: Option<Value>, sensitive| {
            OutputChange {
                name: name.into(),
                action,
                before,
                after,
                sensitive,
            }
        };
        let lines = plan_lines(&[
            c(
                "a",
                OutputAction::Create,
                None,
                Some(Value::str("x")),
                false,
            ),
            c(
                "b",
                OutputAction::Update,
                Some(Value::str("1")),
                Some(Value::Unknown),
                false,
            ),
            c(
                "c",
                OutputAction::Delete,
                Some(Value::str("old")),
                None,
                false,
            ),
            c(
                "t",
                OutputAction::Update,
                None,
                Some(Value::Secret(Secret::new("hunter2", "s"))),
                true,
            ),
            c(
                "u",
                OutputAction::Create,
                None,
                Some(Value::Secret(Secret::new("hunter2", "s"))),
                true,
            ),
        ]);
        assert_eq!(
            lines,
            [
                "+ a = \"x\"",
                "~ b = \"1\" -> (known after apply)",
                "- c = \"old\"",
                "~ t = (sensitive value changed)",
                "+ u = (sensitive)"
            ]
        );
    }

    #[test]
    fn list_bare_and_json() {
        let mut m = BTreeMap::new();
        m.insert(
            "url".to_string(),
            StoredOutput {
                value: Value::str("http://x"),
                sensitive: false,
            },
        );
        m.insert(
            "tok".to_string(),
            StoredOutput {
                value: Value::Secret(Secret::from_hash("h")),
                sensitive: true,
            },
        );
        assert_eq!(list(&m), "tok = (sensitive)\nurl = \"http://x\"\n");
        assert_eq!(bare(&Value::str("http://x")), "http://x\n");
        assert_eq!(
            bare(&Value::Secret(Secret::new("hunter2", "s"))),
            "hunter2\n"
        );
        let mut v = BTreeMap::new();
        v.insert(
            "tok".to_string(),
            (Value::Secret(Secret::new("hunter2", "s")), true),
        );
        v.insert("n".to_string(), (Value::Int(3), false));
        let j: serde_json::Value = serde_json::from_str(&json(&v)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "n": {"sensitive": false, "type": "number", "value": 3},
                "tok": {"sensitive": true, "type": "string", "value": "hunter2"}
            })
        );
    }
}
