//! Attribute-level differences between a desired and a live object.

use crate::value::{join_key, Attrs, Value};
use serde::{Deserialize, Serialize};

/// One changed attribute. `before`/`after` are `None` when the attribute is
/// absent on that side. `replace` is true when the change cannot be made in
/// place (the object must be replaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttrChange {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

impl AttrChange {
    pub fn new(path: impl Into<String>, before: Option<Value>, after: Option<Value>) -> Self {
        AttrChange {
            path: path.into(),
            before,
            after,
            replace: false,
        }
    }
    pub fn forcing_replace(mut self) -> Self {
        self.replace = true;
        self
    }
}

/// The default diff: every attribute in `desired` is compared with `live`;
/// attributes only in `live` (server defaults, computed fields) are ignored.
/// Maps recurse key by key; lists of equal length recurse by index; anything
/// else is compared whole. A change under a top-level attribute listed in
/// `force_new` is marked `replace`.
pub fn generic_diff(desired: &Attrs, live: &Attrs, force_new: &[&str]) -> Vec<AttrChange> {
    let mut out = Vec::new();
    for (k, d) in desired {
        let mut changes = Vec::new();
        diff_value(&join_key("", k), d, live.get(k), &mut changes);
        if force_new.contains(&k.as_str()) {
            for c in &mut changes {
                c.replace = true;
            }
        }
        out.extend(changes);
    }
    out
}

/// Compares one desired value with the live value at `path`, appending changes.
pub fn diff_value(path: &str, desired: &Value, live: Option<&Value>, out: &mut Vec<AttrChange>) {
    match (desired, live) {
        (Value::Null, None) => {}
        (d, None) => out.push(AttrChange::new(path, None, Some(d.clone()))),
        (Value::Map(dm), Some(Value::Map(lm))) => {
            for (k, dv) in dm {
                diff_value(&join_key(path, k), dv, lm.get(k), out);
            }
        }
        (Value::List(dl), Some(Value::List(ll))) if dl.len() == ll.len() && !dl.is_empty() => {
            for (i, (dv, lv)) in dl.iter().zip(ll).enumerate() {
                diff_value(&format!("{path}[{i}]"), dv, Some(lv), out);
            }
        }
        (d, Some(l)) => {
            if d != l {
                out.push(AttrChange::new(path, Some(l.clone()), Some(d.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Map;

    fn attrs(pairs: &[(&str, Value)]) -> Attrs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn ignores_live_only_attributes_and_recurses() {
        let mut dm = Map::new();
        dm.insert("a".to_string(), Value::from("1"));
        let mut lm = dm.clone();
        lm.insert("b".to_string(), Value::from("server default"));
        let d = attrs(&[("env", Value::Map(dm)), ("image", "x:2".into())]);
        let l = attrs(&[
            ("env", Value::Map(lm)),
            ("image", "x:1".into()),
            ("id", "abc".into()),
        ]);
        let c = generic_diff(&d, &l, &["image"]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].path, "image");
        assert!(c[0].replace);
        assert_eq!(c[0].before, Some("x:1".into()));
    }

    #[test]
    fn list_elements_diff_by_index() {
        let d = attrs(&[("l", Value::List(vec!["a".into(), "b".into()]))]);
        let l = attrs(&[("l", Value::List(vec!["a".into(), "c".into()]))]);
        let c = generic_diff(&d, &l, &[]);
        assert_eq!(c[0].path, "l[1]");
    }
}
