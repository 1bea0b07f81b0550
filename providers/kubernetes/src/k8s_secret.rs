//! `k8s_secret`: a Secret from sensitive key/value data.

use crate::manifest::{diff_value, FieldPath, Seg};
use crate::provider::{attr_str, ident, B64, SECRET};
use base64::Engine;
use claw_provider::value::join_key;
use claw_provider::*;
use serde_json::json;
use std::collections::BTreeSet;

pub(crate) fn validate(req: &InstanceRequest<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for k in req
        .attrs
        .get("data")
        .and_then(Value::as_map)
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        {
            out.push(
                Diagnostic::error(format!("secret key {k:?} is not valid"))
                    .with_attr(format!("data.{k}"))
                    .with_hint("keys may contain letters, digits, '-', '_' and '.'"),
            );
        }
    }
    out
}

/// Fills the name (from the resource name), the namespace and the type; makes
/// every data value sensitive.
pub(crate) fn prepare(req: &InstanceRequest<'_>, default_ns: &str) -> Attrs {
    let mut a = req.attrs.clone();
    if !a.contains_key("name") {
        a.insert("name".into(), Value::str(default_name(req.name, req.key)));
    }
    a.entry("namespace".into())
        .or_insert_with(|| Value::str(default_ns));
    a.entry("type".into())
        .or_insert_with(|| Value::str("Opaque"));
    if let Some(Value::Map(d)) = a.get_mut("data") {
        for v in d.values_mut() {
            if let Value::String(s) = v {
                *v = req.ctx.secret(s);
            }
        }
    }
    a
}

/// The Secret's name when the resource sets none: the resource name
/// (`<name>-<key>` with for_each), lower-cased, `_` as `-`.
pub(crate) fn default_name(name: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("{name}-{k}"),
        None => name.to_string(),
    }
    .to_lowercase()
    .replace('_', "-")
}

pub(crate) fn diff(req: &DiffRequest) -> DiffResponse {
    let mut resp = DiffResponse::default();
    let mut changes = Vec::new();
    let d = ident(SECRET, &req.desired);
    let l = ident(SECRET, &req.live.attrs);
    if d.is_some() && l.is_some() && d != l {
        for k in ["namespace", "name"] {
            if req.desired.get(k) != req.live.attrs.get(k) {
                changes.push(
                    AttrChange::new(
                        k,
                        req.live.attrs.get(k).cloned(),
                        req.desired.get(k).cloned(),
                    )
                    .forcing_replace(),
                );
            }
        }
        resp.replace_note = Some("a Secret cannot be renamed".into());
    }
    for k in ["type", "data", "labels", "annotations"] {
        if let Some(dv) = req.desired.get(k) {
            let mut c = Vec::new();
            diff_value(k, dv, req.live.attrs.get(k), &mut c);
            if k == "type" {
                c = c.into_iter().map(AttrChange::forcing_replace).collect();
            }
            changes.extend(c);
        }
    }
    // Keys claw set last time and no longer sets.
    for k in ["data", "labels", "annotations"] {
        let before: BTreeSet<String> = req
            .prior
            .as_ref()
            .and_then(|p| p.attrs.get(k))
            .and_then(Value::as_map)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let now = req.desired.get(k).and_then(Value::as_map);
        for key in before {
            if now.map(|n| n.contains_key(&key)).unwrap_or(false) || key.starts_with("claw.dev/") {
                continue;
            }
            if let Some(v) = req
                .live
                .attrs
                .get(k)
                .and_then(Value::as_map)
                .and_then(|m| m.get(&key))
            {
                changes.push(AttrChange::new(join_key(k, &key), Some(v.clone()), None));
            }
        }
    }
    resp.changes = changes;
    resp
}

/// The Secret claw applies: data in clear (base64), the ownership labels.
pub(crate) fn body(
    address: &str,
    desired: &Attrs,
    ctx: &Ctx,
) -> Result<serde_json::Value, Diagnostic> {
    let mut labels = serde_json::Map::new();
    let mut annotations = serde_json::Map::new();
    for (k, v) in desired
        .get("labels")
        .and_then(Value::as_map)
        .into_iter()
        .flatten()
    {
        labels.insert(k.clone(), v.to_json_exposed());
    }
    for (k, v) in desired
        .get("annotations")
        .and_then(Value::as_map)
        .into_iter()
        .flatten()
    {
        annotations.insert(k.clone(), v.to_json_exposed());
    }
    for (k, v) in ctx.ownership_labels(address) {
        if k == LABEL_ADDRESS {
            annotations.insert(k, json!(v));
        } else {
            labels.insert(k, json!(v));
        }
    }
    let mut data = serde_json::Map::new();
    for (k, v) in desired
        .get("data")
        .and_then(Value::as_map)
        .into_iter()
        .flatten()
    {
        let plain = v.expose_str().ok_or_else(|| {
            Diagnostic::error(format!(
                "the value of data.{k} is not available (only its hash is known)"
            ))
            .with_address(address)
            .with_hint(
                "run `claw apply` without a saved plan so secret values are read from their source",
            )
        })?;
        data.insert(k.clone(), json!(B64.encode(plain)));
    }
    Ok(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": attr_str(desired, "name"), "namespace": attr_str(desired, "namespace"),
            "labels": labels, "annotations": annotations,
        },
        "type": attr_str(desired, "type").unwrap_or("Opaque"),
        "data": data,
    }))
}

/// The fields claw owns: one per data key.
pub(crate) fn fields(desired: &Attrs) -> BTreeSet<FieldPath> {
    desired
        .get("data")
        .and_then(Value::as_map)
        .map(|m| {
            m.keys()
                .map(|k| vec![Seg::Key("data".into()), Seg::Key(k.clone())])
                .collect()
        })
        .unwrap_or_default()
}
