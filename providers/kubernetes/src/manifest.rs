//! Manifests: YAML documents, instance keys, field sets and the diff of the
//! fields claw sets.

use claw_provider::value::join_key;
use claw_provider::{AttrChange, Diagnostic, Map, Value};
use std::collections::BTreeSet;

/// Attributes of a `k8s_manifest` instance that are claw's, not the document's.
pub const OPTION_KEYS: &[&str] = &["force_conflicts", "wait", "wait_timeout", "rollout"];

/// Built-in kinds that are cluster-scoped (custom resources are namespaced
/// unless a CRD in the same file or configuration says `scope: Cluster`).
pub const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "APIService",
    "CertificateSigningRequest",
    "FlowSchema",
    "PriorityLevelConfiguration",
];

/// The identity of one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjRef {
    /// `<apiVersion>/<Kind>/<namespace>/<name>`
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.api_version, self.kind, self.namespace, self.name
        )
    }
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }
    pub fn display(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
    /// Reads the identity of a document (attrs in document shape).
    pub fn of_doc(doc: &Map) -> Option<ObjRef> {
        let md = doc.get("metadata")?.as_map()?;
        Some(ObjRef {
            api_version: doc.get("apiVersion")?.as_str()?.to_string(),
            kind: doc.get("kind")?.as_str()?.to_string(),
            namespace: md
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            name: md.get("name")?.as_str()?.to_string(),
        })
    }
}

/// Converts YAML text into documents (`kind: List` items are flattened).
pub fn parse_yaml(text: &str, origin: &str) -> Result<Vec<serde_json::Value>, Diagnostic> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for (i, d) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = serde_json::Value::deserialize(d).map_err(|e| {
            Diagnostic::error(format!(
                "{origin}: document {} is not valid YAML: {e}",
                i + 1
            ))
        })?;
        match v {
            serde_json::Value::Null => {}
            serde_json::Value::Object(ref m)
                if m.get("kind").and_then(|k| k.as_str()) == Some("List")
                    && m.get("items").map(|x| x.is_array()).unwrap_or(false) =>
            {
                docs.extend(m["items"].as_array().cloned().unwrap_or_default());
            }
            v => docs.push(v),
        }
    }
    Ok(docs)
}

/// Replaces `${name}` for names in `vars` (and `${each.key}`) inside strings.
/// A string that is exactly one placeholder takes the variable's value and type.
pub fn substitute(v: &Value, vars: &Map) -> Value {
    match v {
        Value::String(s) if s.contains("${") => {
            for (k, val) in vars {
                if s == &format!("${{{k}}}") {
                    return val.clone();
                }
            }
            let mut out = s.clone();
            for (k, val) in vars {
                let pat = format!("${{{k}}}");
                if out.contains(&pat) {
                    let text = match val {
                        Value::String(x) => x.clone(),
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Float(f) => f.to_string(),
                        other => other.render_inline(),
                    };
                    out = out.replace(&pat, &text);
                }
            }
            Value::String(out)
        }
        Value::List(l) => Value::List(l.iter().map(|x| substitute(x, vars)).collect()),
        Value::Map(m) => Value::Map(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---- field sets --------------------------------------------------------------

/// One step of a field path: a map key, or the item of a list of named objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Item(String),
}

pub type FieldPath = Vec<Seg>;

/// A list of objects that all carry a distinct string `name`.
pub fn is_assoc(l: &[Value]) -> bool {
    let mut seen = BTreeSet::new();
    !l.is_empty()
        && l.iter().all(|i| {
            i.as_map()
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .map(|n| seen.insert(n))
                .unwrap_or(false)
        })
}

fn item_name(v: &Value) -> Option<&str> {
    v.as_map()?.get("name")?.as_str()
}

/// The fields a document sets (leaves; items of named lists as markers).
pub fn field_set(doc: &Map) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    for (k, v) in doc {
        if k == "apiVersion" || k == "kind" || k == "status" || OPTION_KEYS.contains(&k.as_str()) {
            continue;
        }
        collect(v, &mut vec![Seg::Key(k.clone())], &mut out);
    }
    out.retain(|p| {
        !matches!(p.as_slice(), [Seg::Key(m), Seg::Key(k), ..] if m == "metadata" && (k == "name" || k == "namespace"))
    });
    out
}

fn collect(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Map(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(Seg::Key(k.clone()));
                collect(c, prefix, out);
                prefix.pop();
            }
        }
        Value::List(l) if is_assoc(l) => {
            for item in l {
                prefix.push(Seg::Item(item_name(item).unwrap_or_default().to_string()));
                out.insert(prefix.clone());
                collect(item, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Encodes a field path for `StateObject.private` (`=name` for named items).
pub fn encode_path(p: &FieldPath) -> Value {
    Value::List(
        p.iter()
            .map(|s| match s {
                Seg::Key(k) => Value::String(k.clone()),
                Seg::Item(n) => Value::String(format!("={n}")),
            })
            .collect(),
    )
}

pub fn decode_path(v: &Value) -> Option<FieldPath> {
    v.as_list()?
        .iter()
        .map(|s| {
            let s = s.as_str()?;
            Some(match s.strip_prefix('=') {
                Some(n) => Seg::Item(n.to_string()),
                None => Seg::Key(s.to_string()),
            })
        })
        .collect()
}

/// Resolves a field path in a value, also returning its display path
/// (`spec.template.spec.containers[0].image`).
pub fn resolve<'a>(root: &'a Map, p: &FieldPath) -> Option<(String, &'a Value)> {
    let (first, rest) = p.split_first()?;
    let Seg::Key(k) = first else { return None };
    let mut cur = root.get(k)?;
    let mut display = join_key("", k);
    for seg in rest {
        match seg {
            Seg::Key(k) => {
                cur = cur.as_map()?.get(k)?;
                display = join_key(&display, k);
            }
            Seg::Item(n) => {
                let l = cur.as_list()?;
                let i = l.iter().position(|x| item_name(x) == Some(n.as_str()))?;
                cur = &l[i];
                display = format!("{display}[{i}]");
            }
        }
    }
    Some((display, cur))
}

// ---- diff --------------------------------------------------------------------

/// A resource quantity in milli-units (`"1"` → 1000, `"500m"` → 500,
/// `"1Gi"` → 1073741824000), for comparing what the server normalises.
pub fn quantity_milli(v: &Value) -> Option<i128> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        _ => return None,
    };
    let suffixes: [(&str, f64); 9] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
    ];
    let (num, mult) = suffixes
        .iter()
        .find(|(sfx, _)| s.ends_with(sfx))
        .map(|(sfx, m)| (&s[..s.len() - sfx.len()], *m))
        .unwrap_or((s.as_str(), 1.0));
    let x: f64 = num.parse().ok()?;
    Some((x * mult * 1000.0).round() as i128)
}

/// Paths whose values are resource quantities the server canonicalises.
fn is_quantity_path(path: &str) -> bool {
    path.contains("resources.limits.")
        || path.contains("resources.requests.")
        || path.contains("spec.hard.")
        || path.ends_with(".sizeLimit")
        || path.contains("capacity.")
}

/// Scalars equal up to representation: `1` and `"1"`, `1` and `1.0`; under
/// resource fields, quantities by value (`1000m` = `1`).
fn loosely_equal_at(path: &str, a: &Value, b: &Value) -> bool {
    if is_quantity_path(path) {
        if let (Some(x), Some(y)) = (quantity_milli(a), quantity_milli(b)) {
            return x == y;
        }
    }
    loosely_equal(a, b)
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        (Value::Int(x), Value::String(s)) | (Value::String(s), Value::Int(x)) => {
            s == &x.to_string()
        }
        _ => a == b,
    }
}

/// Compares the fields claw sets (`desired`) with the live object: fields only
/// the server or other managers set are never drift. Named lists match by name.
pub fn diff_value(path: &str, desired: &Value, live: Option<&Value>, out: &mut Vec<AttrChange>) {
    match (desired, live) {
        (Value::Null, None) => {}
        // A zero value the server omits (Go's omitempty): `readOnly: false`,
        // `subPath: ""`, `args: []`, `{}`.
        (Value::Map(dm), None) if dm.is_empty() => {}
        (Value::List(dl), None) if dl.is_empty() => {}
        (Value::Bool(false), None) | (Value::Int(0), None) => {}
        (Value::String(ds), None) if ds.is_empty() => {}
        (d, None) => out.push(AttrChange::new(path, None, Some(d.clone()))),
        (Value::Unknown, Some(l)) => {
            out.push(AttrChange::new(path, Some(l.clone()), Some(Value::Unknown)))
        }
        (Value::Map(dm), Some(Value::Map(lm))) => {
            for (k, dv) in dm {
                diff_value(&join_key(path, k), dv, lm.get(k), out);
            }
        }
        (Value::List(dl), Some(Value::List(ll))) if is_assoc(dl) => {
            // Items match by name; live items claw does not set (a sidecar
            // injected by a webhook) are not drift, and items claw set before
            // and no longer sets are removals found from the prior fields.
            for (i, dv) in dl.iter().enumerate() {
                let p = format!("{path}[{i}]");
                match ll.iter().find(|l| item_name(l) == item_name(dv)) {
                    Some(lv) => diff_value(&p, dv, Some(lv), out),
                    None => out.push(AttrChange::new(p, None, Some(dv.clone()))),
                }
            }
        }
        (Value::List(dl), Some(Value::List(ll))) if dl.len() == ll.len() && !dl.is_empty() => {
            let mut inner = Vec::new();
            for (i, (dv, lv)) in dl.iter().zip(ll).enumerate() {
                diff_value(&format!("{path}[{i}]"), dv, Some(lv), &mut inner);
            }
            if !inner.is_empty() {
                if dl
                    .iter()
                    .all(|x| !matches!(x, Value::Map(_) | Value::List(_)))
                {
                    // A list of scalars reads better whole.
                    out.push(AttrChange::new(
                        path,
                        Some(Value::List(ll.clone())),
                        Some(desired.clone()),
                    ));
                } else {
                    out.extend(inner);
                }
            }
        }
        (Value::List(dl), Some(Value::List(ll))) => {
            if !(dl.is_empty() && ll.is_empty()) {
                out.push(AttrChange::new(
                    path,
                    Some(Value::List(ll.clone())),
                    Some(desired.clone()),
                ));
            }
        }
        (d, Some(l)) => {
            if !loosely_equal_at(path, d, l) {
                out.push(AttrChange::new(path, Some(l.clone()), Some(d.clone())));
            }
        }
    }
}

/// Changes between the desired document and the live object: the fields claw
/// sets, then the fields claw set last time (`prior_fields`) and no longer sets
/// (planned as removals when they still exist).
pub fn diff_doc(desired: &Map, live: &Map, prior_fields: &BTreeSet<FieldPath>) -> Vec<AttrChange> {
    let mut out = Vec::new();
    for (k, d) in desired {
        if OPTION_KEYS.contains(&k.as_str()) || k == "status" {
            continue;
        }
        diff_value(&join_key("", k), d, live.get(k), &mut out);
    }
    for r in removals(desired, live, prior_fields) {
        // Not again under a path that already shows as changed.
        let covered = out.iter().any(|c| {
            r.path == c.path
                || r.path.starts_with(&format!("{}.", c.path))
                || r.path.starts_with(&format!("{}[", c.path))
        });
        if !covered {
            out.push(r);
        }
    }
    out
}

pub fn removals(desired: &Map, live: &Map, prior_fields: &BTreeSet<FieldPath>) -> Vec<AttrChange> {
    let now = field_set(desired);
    let mut out: Vec<AttrChange> = Vec::new();
    let mut done: Vec<FieldPath> = Vec::new();
    for p in prior_fields {
        if now.contains(p) || done.iter().any(|d| p.starts_with(d)) {
            continue;
        }
        // Something under this path is still set (a map became a leaf, etc.).
        if now.iter().any(|n| {
            n.starts_with(p) || (p.starts_with(n) && !matches!(n.last(), Some(Seg::Item(_))))
        }) {
            continue;
        }
        if let Some((display, v)) = resolve(live, p) {
            out.push(AttrChange::new(display, Some(v.clone()), None));
            done.push(p.clone());
        }
    }
    out
}

/// Removes `paths` from a JSON object (fields a dry-run says stay are not removals).
pub fn json_at<'a>(root: &'a serde_json::Value, p: &FieldPath) -> Option<&'a serde_json::Value> {
    let mut cur = root;
    for seg in p {
        cur = match seg {
            Seg::Key(k) => cur.as_object()?.get(k)?,
            Seg::Item(n) => cur
                .as_array()?
                .iter()
                .find(|i| i.get("name").and_then(|x| x.as_str()) == Some(n.as_str()))?,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(j: serde_json::Value) -> Map {
        match Value::from_json(&j) {
            Value::Map(m) => m,
            _ => panic!(),
        }
    }

    #[test]
    fn defaulted_fields_are_not_drift() {
        let d = doc(
            serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x:1", "ports": [{"containerPort": 80}]}]}}}}),
        );
        let l = doc(
            serde_json::json!({"spec": {"replicas": 1, "template": {"spec": {
            "terminationGracePeriodSeconds": 30, "containers": [
            {"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}}}),
        );
        assert!(diff_doc(&d, &l, &BTreeSet::new()).is_empty());
        let d2 = doc(
            serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x:2", "ports": [{"containerPort": 80}]}]}}}}),
        );
        let c = diff_doc(&d2, &l, &BTreeSet::new());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].path, "spec.template.spec.containers[0].image");
    }

    #[test]
    fn zero_values_the_server_omits_are_not_drift() {
        let d = doc(
            serde_json::json!({"spec": {"readOnly": false, "subPath": "", "args": [], "x": {}, "n": 0}}),
        );
        let l = doc(serde_json::json!({"spec": {}}));
        assert!(diff_doc(&d, &l, &BTreeSet::new()).is_empty());
        let d = doc(serde_json::json!({"spec": {"readOnly": true}}));
        assert_eq!(diff_doc(&d, &l, &BTreeSet::new()).len(), 1);
    }

    #[test]
    fn removed_fields_are_planned_as_removals() {
        let before = doc(
            serde_json::json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v", "gone": "1"}}),
        );
        let now = doc(
            serde_json::json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v"}}),
        );
        let live = before.clone();
        let c = diff_doc(&now, &live, &field_set(&before));
        let paths: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, vec!["data.gone", "metadata.labels.b"]);
        assert!(c.iter().all(|c| c.after.is_none()));
    }

    #[test]
    fn field_paths_round_trip() {
        let p = vec![
            Seg::Key("spec".into()),
            Seg::Item("app".into()),
            Seg::Key("image".into()),
        ];
        assert_eq!(decode_path(&encode_path(&p)), Some(p));
    }
}
