//! Field sets (as server-side apply tracks them), merges and patches.
//!
//! A list of objects that all carry a string `name` is *associative*: its
//! items are addressed by name (as the real server does for containers, env,
//! volumes, ports with names, ...). Every other list is *atomic*: owned and
//! replaced whole.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    Key(String),
    /// The item of an associative list with this `name`.
    Item(String),
}

pub type Path = Vec<Seg>;

/// Renders a path like the real server does in conflict messages:
/// `.spec.template.spec.containers[name="app"].image`.
pub fn render(path: &Path) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Item(n) => s.push_str(&format!("[name={}]", Value::String(n.clone()))),
        }
    }
    s
}

pub fn is_assoc(list: &[Value]) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    !list.is_empty()
        && list.iter().all(|i| {
            i.get("name")
                .and_then(Value::as_str)
                .map(|n| seen.insert(n))
                .unwrap_or(false)
        })
}

fn item_name(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

/// Paths that never belong to a manager.
fn ignored(path: &Path) -> bool {
    match path.as_slice() {
        [Seg::Key(k)] if k == "apiVersion" || k == "kind" => true,
        [Seg::Key(k), ..] if k == "status" => true,
        [Seg::Key(m), Seg::Key(k), ..] if m == "metadata" => matches!(
            k.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "selfLink"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
        ),
        _ => false,
    }
}

/// The leaf fields of an object (item markers included for associative lists).
pub fn field_set(v: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    collect(v, &mut Vec::new(), &mut out);
    out.retain(|p| !ignored(p));
    out
}

fn collect(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(Seg::Key(k.clone()));
                collect(c, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(l) if is_assoc(l) => {
            for item in l {
                let name = item_name(item).unwrap_or_default().to_string();
                prefix.push(Seg::Item(name));
                out.insert(prefix.clone());
                collect(item, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

pub fn get<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            Seg::Key(k) => cur.as_object()?.get(k)?,
            Seg::Item(n) => cur
                .as_array()?
                .iter()
                .find(|i| item_name(i) == Some(n.as_str()))?,
        };
    }
    Some(cur)
}

/// Removes the field at `path` (an item marker removes the whole item).
pub fn remove(v: &mut Value, path: &[Seg]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for seg in parent {
        let next = match seg {
            Seg::Key(k) => cur.as_object_mut().and_then(|m| m.get_mut(k)),
            Seg::Item(n) => cur
                .as_array_mut()
                .and_then(|l| l.iter_mut().find(|i| item_name(i) == Some(n.as_str()))),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Seg::Key(k) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(k);
            }
        }
        Seg::Item(n) => {
            if let Some(l) = cur.as_array_mut() {
                l.retain(|i| item_name(i) != Some(n.as_str()));
            }
        }
    }
}

/// Merges an applied configuration into a live object: maps key by key,
/// associative lists item by item (by name), everything else replaced.
pub fn apply_merge(live: &mut Value, applied: &Value) {
    match (live, applied) {
        (Value::Object(lm), Value::Object(am)) => {
            for (k, av) in am {
                match lm.get_mut(k) {
                    Some(lv) => apply_merge(lv, av),
                    None => {
                        lm.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(ll), Value::Array(al)) if is_assoc(al) && (ll.is_empty() || is_assoc(ll)) => {
            let mut out: Vec<Value> = Vec::new();
            for ai in al {
                let n = item_name(ai);
                match ll.iter().find(|li| item_name(li) == n) {
                    Some(li) => {
                        let mut li = li.clone();
                        apply_merge(&mut li, ai);
                        out.push(li);
                    }
                    None => out.push(ai.clone()),
                }
            }
            for li in ll.iter() {
                if !al.iter().any(|ai| item_name(ai) == item_name(li)) {
                    out.push(li.clone());
                }
            }
            *ll = out;
        }
        (l, a) => *l = a.clone(),
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(pm) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let tm = target.as_object_mut().expect("object");
            for (k, pv) in pm {
                if pv.is_null() {
                    tm.remove(k);
                } else {
                    merge_patch(tm.entry(k.clone()).or_insert(Value::Null), pv);
                }
            }
        }
        p => *target = p.clone(),
    }
}

/// Strategic merge patch: like a merge patch, but lists of named objects are
/// merged by name (`$patch: delete` removes an item) instead of replaced.
pub fn strategic_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(pm) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let tm = target.as_object_mut().expect("object");
            for (k, pv) in pm {
                if k.starts_with('$') {
                    continue;
                }
                if pv.is_null() {
                    tm.remove(k);
                    continue;
                }
                let cur = tm.entry(k.clone()).or_insert(Value::Null);
                match (cur.as_array_mut(), pv.as_array()) {
                    (Some(cl), Some(pl))
                        if pl.iter().all(|i| item_name(i).is_some()) && !pl.is_empty() =>
                    {
                        for pi in pl {
                            let n = item_name(pi).map(str::to_string);
                            let del = pi.get("$patch").and_then(Value::as_str) == Some("delete");
                            let pos = cl.iter().position(|c| item_name(c) == n.as_deref());
                            match (pos, del) {
                                (Some(p), true) => {
                                    cl.remove(p);
                                }
                                (None, true) => {}
                                (Some(p), false) => strategic_patch(&mut cl[p], pi),
                                (None, false) => {
                                    let mut fresh = Value::Object(Map::new());
                                    strategic_patch(&mut fresh, pi);
                                    cl.push(fresh);
                                }
                            }
                        }
                    }
                    _ => strategic_patch(cur, pv),
                }
            }
        }
        p => *target = p.clone(),
    }
}

/// RFC 6902 JSON patch (add, remove, replace, test).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch is a list of operations")?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let segs: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let Some((last, parent)) = segs.split_last() else {
            return Err(format!("invalid path {path:?}"));
        };
        let mut cur = &mut *target;
        for s in parent {
            cur = match cur {
                Value::Object(m) => m.get_mut(s),
                Value::Array(l) => s.parse::<usize>().ok().and_then(|i| l.get_mut(i)),
                _ => None,
            }
            .ok_or_else(|| format!("path {path:?} not found"))?;
        }
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match (kind, cur) {
            ("add" | "replace", Value::Object(m)) => {
                m.insert(last.clone(), value);
            }
            ("add", Value::Array(l)) => {
                if last == "-" {
                    l.push(value)
                } else {
                    let i: usize = last.parse().map_err(|_| "bad index")?;
                    if i > l.len() {
                        return Err(format!("index out of range in {path:?}"));
                    }
                    l.insert(i, value)
                }
            }
            ("replace", Value::Array(l)) => {
                let i: usize = last.parse().map_err(|_| "bad index")?;
                *l.get_mut(i).ok_or("index out of range")? = value;
            }
            ("remove", Value::Object(m)) => {
                m.remove(last)
                    .ok_or_else(|| format!("path {path:?} not found"))?;
            }
            ("remove", Value::Array(l)) => {
                let i: usize = last.parse().map_err(|_| "bad index")?;
                if i >= l.len() {
                    return Err(format!("index out of range in {path:?}"));
                }
                l.remove(i);
            }
            ("test", c) => {
                let got = match c {
                    Value::Object(m) => m.get(last),
                    Value::Array(l) => last.parse::<usize>().ok().and_then(|i| l.get(i)),
                    _ => None,
                };
                if got != Some(&value) {
                    return Err(format!("test failed at {path:?}"));
                }
            }
            (k, _) => {
                return Err(format!(
                    "unsupported JSON patch operation {k:?} at {path:?}"
                ))
            }
        }
    }
    Ok(())
}

/// The `fieldsV1` form of a field set.
pub fn fields_v1(set: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for p in set {
        let mut cur = &mut root;
        for (i, seg) in p.iter().enumerate() {
            let key = match seg {
                Seg::Key(k) => format!("f:{k}"),
                Seg::Item(n) => format!("k:{}", serde_json::json!({ "name": n })),
            };
            let entry = cur.entry(key).or_insert_with(|| Value::Object(Map::new()));
            let m = entry.as_object_mut().expect("object");
            if i + 1 == p.len() && matches!(seg, Seg::Item(_)) {
                m.insert(".".into(), Value::Object(Map::new()));
            }
            cur = m;
        }
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_sets_key_named_lists() {
        let v = json!({"apiVersion": "v1", "metadata": {"name": "x", "labels": {"a": "1"}},
            "spec": {"containers": [{"name": "app", "image": "i", "args": ["a"]}]}});
        let f = field_set(&v);
        let rendered: Vec<String> = f.iter().map(render).collect();
        assert_eq!(
            rendered,
            vec![
                ".metadata.labels.a",
                ".spec.containers[name=\"app\"]",
                ".spec.containers[name=\"app\"].args",
                ".spec.containers[name=\"app\"].image",
                ".spec.containers[name=\"app\"].name",
            ]
        );
    }

    #[test]
    fn strategic_patch_merges_named_items() {
        let mut t = json!({"c": [{"name": "a", "x": 1}, {"name": "b", "x": 2}], "l": [1, 2]});
        strategic_patch(
            &mut t,
            &json!({"c": [{"name": "b", "x": 3}, {"name": "a", "$patch": "delete"}], "l": [3]}),
        );
        assert_eq!(t, json!({"c": [{"name": "b", "x": 3}], "l": [3]}));
    }

    #[test]
    fn merge_patch_deletes_nulls() {
        let mut t = json!({"a": {"b": 1, "c": 2}});
        merge_patch(&mut t, &json!({"a": {"b": null, "d": 3}}));
        assert_eq!(t, json!({"a": {"c": 2, "d": 3}}));
    }
}
