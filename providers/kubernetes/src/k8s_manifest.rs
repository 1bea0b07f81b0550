//! `k8s_manifest`: Kubernetes objects from YAML documents (or one inline
//! table), one instance per document, applied by server-side apply.

use crate::live::to_live;
use crate::manifest::{self, ObjRef, OPTION_KEYS};
use crate::provider::{
    attr_str, doc_of, ident, parse_duration, KubeProvider, B64, MANIFEST, SECRET,
};
use crate::ssa::prior_fields;
use base64::Engine;
use claw_provider::*;
use std::collections::HashMap;

pub(crate) fn validate(req: &InstanceRequest<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let has_file = req.attrs.contains_key("file");
    let has_manifest = req.attrs.contains_key("manifest");
    if has_file == has_manifest {
        out.push(
                Diagnostic::error("set exactly one of `file` and `manifest`")
                    .with_hint("`file = \"objects.yaml\"` for YAML documents, `manifest = { ... }` for one inline object"),
            );
    }
    if let Some(t) = attr_str(req.attrs, "wait_timeout") {
        if parse_duration(t).is_none() {
            out.push(
                Diagnostic::error(format!("wait_timeout {t:?} is not a duration"))
                    .with_attr("wait_timeout")
                    .with_hint("write it like \"90s\" or \"5m\""),
            );
        }
    }
    out
}

/// One instance per document; the file read is reported as an input.
pub(crate) fn expand(req: &InstanceRequest<'_>, default_ns: &str) -> ExpandResponse {
    let mut inputs = Vec::new();
    let (instances, diagnostics) = match expand_docs(req, default_ns, &mut inputs) {
        Ok(instances) => (instances, Vec::new()),
        Err(d) => (Vec::new(), vec![d]),
    };
    ExpandResponse {
        instances,
        inputs,
        diagnostics,
    }
}

/// The documents of a `k8s_manifest`; the file read, if any, goes to `inputs`.
fn manifest_docs(
    req: &InstanceRequest<'_>,
    inputs: &mut Vec<Input>,
) -> Result<Vec<Value>, Diagnostic> {
    if let Some(f) = attr_str(req.attrs, "file") {
        let path = req.ctx.base_dir.join(f);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Diagnostic::error(format!("cannot read {}: {e}", path.display()))
                .with_attr("file")
                .with_hint("paths are relative to the folder of claw.toml")
        })?;
        inputs.push(Input::new(req.ctx, f, text.as_bytes()));
        let docs = manifest::parse_yaml(&text, f).map_err(|d| d.with_attr("file"))?;
        Ok(docs.iter().map(Value::from_json).collect())
    } else if let Some(m) = req.attrs.get("manifest") {
        Ok(vec![m.clone()])
    } else {
        Err(Diagnostic::error("k8s_manifest needs `file` or `manifest`")
            .with_hint("add `file = \"objects.yaml\"` or an inline `manifest = { apiVersion = ..., kind = ..., metadata = { name = ... } }`"))
    }
}

/// One `(key, attrs)` instance per document of a `k8s_manifest`.
fn expand_docs(
    req: &InstanceRequest<'_>,
    default_ns: &str,
    inputs: &mut Vec<Input>,
) -> Result<Vec<Expanded>, Diagnostic> {
    let docs = manifest_docs(req, inputs)?;
    let mut vars: Map = req
        .attrs
        .get("vars")
        .and_then(Value::as_map)
        .cloned()
        .unwrap_or_default();
    if let Some(k) = req.key {
        vars.insert("each.key".into(), Value::str(k));
    }
    // Scopes of custom kinds whose CRDs are in the same documents.
    let mut crd_scope: HashMap<String, bool> = HashMap::new();
    for d in &docs {
        if d.get_path("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
            if let Some(k) = d.get_path("spec.names.kind").and_then(Value::as_str) {
                crd_scope.insert(
                    k.to_string(),
                    d.get_path("spec.scope").and_then(Value::as_str) != Some("Cluster"),
                );
            }
        }
    }
    let mut out: Vec<Expanded> = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let d = manifest::substitute(d, &vars);
        let which = format!("document {}", i + 1);
        let Value::Map(mut doc) = d else {
            return Err(Diagnostic::error(format!("{which} is not a mapping")).with_attr("file"));
        };
        let s = |doc: &Attrs, p: &str| {
            Value::Map(doc.clone())
                .get_path(p)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (Some(api_version), Some(kind)) = (s(&doc, "apiVersion"), s(&doc, "kind")) else {
            return Err(
                Diagnostic::error(format!("{which} lacks apiVersion or kind")).with_hint(
                    "every Kubernetes document needs `apiVersion`, `kind` and `metadata.name`",
                ),
            );
        };
        let Some(name) = s(&doc, "metadata.name") else {
            return Err(
                Diagnostic::error(format!("{which} ({kind}) lacks metadata.name"))
                    .with_hint("claw addresses objects by name; generateName is not supported"),
            );
        };
        if !name.contains("${")
            && (name.is_empty()
                || name.len() > 253
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c)))
        {
            return Err(Diagnostic::error(format!(
                "{which} ({kind}): metadata.name {name:?} is not a valid Kubernetes name"
            ))
            .with_hint(
                "names are lower-case letters, digits, '-' and '.' (at most 253 characters)",
            ));
        }
        let namespaced = !manifest::CLUSTER_SCOPED.contains(&kind.as_str())
            && crd_scope.get(&kind).copied().unwrap_or(true);
        let md = match doc.get_mut("metadata") {
            Some(Value::Map(m)) => m,
            _ => {
                return Err(Diagnostic::error(format!(
                    "{which}: metadata is not a mapping"
                )))
            }
        };
        let ns = if namespaced {
            let ns = md
                .get("namespace")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| default_ns.to_string());
            md.insert("namespace".into(), Value::str(&ns));
            ns
        } else {
            md.remove("namespace");
            String::new()
        };
        for (what, v) in [("metadata.name", &name), ("metadata.namespace", &ns)] {
            if v.contains("${") {
                return Err(Diagnostic::error(format!("{which}: {what} {v:?} must be known when planning"))
                    .with_hint("pass the value in `vars = { name = \"...\" }` on the resource and write `${name}` in the YAML"));
            }
        }
        let r = ObjRef {
            api_version,
            kind,
            namespace: ns,
            name,
        };
        let key = r.key();
        if out.iter().any(|e| e.key == key) {
            return Err(Diagnostic::error(format!("two documents describe {key}"))
                .with_hint("each object may appear once"));
        }
        for k in OPTION_KEYS {
            if let Some(v) = req.attrs.get(*k) {
                doc.insert(k.to_string(), v.clone());
            }
        }
        out.push(Expanded { key, attrs: doc });
    }
    if out.is_empty() {
        return Err(Diagnostic::error("the manifest has no documents").with_attr("file"));
    }
    Ok(out)
}

/// Adds the ownership labels and annotation; a `kind: Secret` document's
/// `stringData` becomes base64 `data`, every value sensitive.
pub(crate) fn prepare(req: &InstanceRequest<'_>) -> Attrs {
    let mut a = req.attrs.clone();
    if !a.contains_key("apiVersion") {
        // Not expanded (validate-only paths): nothing to prepare.
        return a;
    }
    let own = req.ctx.ownership_labels(req.address);
    let md = a
        .entry("metadata".into())
        .or_insert_with(|| Value::Map(Map::new()));
    if let Value::Map(md) = md {
        let labels = md
            .entry("labels".into())
            .or_insert_with(|| Value::Map(Map::new()));
        if let Value::Map(l) = labels {
            for (k, v) in &own {
                if k != LABEL_ADDRESS {
                    l.insert(k.clone(), Value::str(v));
                }
            }
        }
        let ann = md
            .entry("annotations".into())
            .or_insert_with(|| Value::Map(Map::new()));
        if let Value::Map(an) = ann {
            an.insert(LABEL_ADDRESS.into(), Value::str(req.address));
        }
    }
    let is_secret =
        attr_str(&a, "kind") == Some("Secret") && attr_str(&a, "apiVersion") == Some("v1");
    if is_secret {
        if let Some(Value::Map(sd)) = a.remove("stringData") {
            let data = a
                .entry("data".into())
                .or_insert_with(|| Value::Map(Map::new()));
            if let Value::Map(dm) = data {
                for (k, v) in sd {
                    match v.expose_str() {
                        Some(p) => dm.insert(k, Value::str(B64.encode(p))),
                        None => dm.insert(k, v),
                    };
                }
            }
        }
        if let Some(Value::Map(d)) = a.get_mut("data") {
            for v in d.values_mut() {
                if let Value::String(s) = v {
                    *v = req.ctx.secret(s);
                }
            }
        }
    }
    a
}

/// Namespaces before the objects in them (and cluster-scoped objects), CRDs
/// before their custom resources.
pub(crate) fn implicit_edges(items: &[DepItem], default_ns: &str) -> Vec<Edge> {
    let mut namespaces: HashMap<String, String> = HashMap::new();
    let mut crds: HashMap<(String, String), String> = HashMap::new();
    for DepItem {
        address: addr,
        rtype,
        attrs,
    } in items
    {
        if rtype != MANIFEST {
            continue;
        }
        let Some(r) = ident(rtype, attrs) else {
            continue;
        };
        if r.kind == "Namespace" && r.api_version == "v1" {
            namespaces.insert(r.name.clone(), addr.clone());
        }
        if r.kind == "CustomResourceDefinition" {
            let v = Value::Map(attrs.clone());
            if let (Some(g), Some(k)) = (
                v.get_path("spec.group").and_then(Value::as_str),
                v.get_path("spec.names.kind").and_then(Value::as_str),
            ) {
                crds.insert((g.to_string(), k.to_string()), addr.clone());
            }
        }
    }
    let mut out = Vec::new();
    for DepItem {
        address: addr,
        rtype,
        attrs,
    } in items
    {
        // Before `prepare`: a k8s_secret without `namespace` goes to the default one.
        let mut attrs = attrs.clone();
        if rtype == SECRET {
            attrs
                .entry("namespace".into())
                .or_insert_with(|| Value::str(default_ns));
            attrs.entry("name".into()).or_insert_with(|| Value::str(""));
        }
        let Some(r) = ident(rtype, &attrs) else {
            continue;
        };
        if r.kind == "Namespace" && r.api_version == "v1" {
            continue;
        }
        if r.namespace.is_empty() {
            // Cluster-scoped objects (CRDs, ClusterRoles) also wait for the
            // Namespaces, so that Namespaces are deleted last.
            for ns_addr in namespaces.values() {
                out.push(Edge::new(addr, ns_addr));
            }
        } else if let Some(ns_addr) = namespaces.get(&r.namespace) {
            out.push(Edge::new(addr, ns_addr));
        }
        if let Some(crd_addr) = crds.get(&(r.group().to_string(), r.kind.clone())) {
            out.push(Edge::new(addr, crd_addr));
        }
    }
    out
}

/// The object claw applies: the document, every value known.
pub(crate) fn body(address: &str, desired: &Attrs) -> Result<serde_json::Value, Diagnostic> {
    let doc = doc_of(desired);
    fn hidden_secret(v: &Value) -> bool {
        match v {
            Value::Secret(s) => s.expose().is_none(),
            Value::List(l) => l.iter().any(hidden_secret),
            Value::Map(m) => m.values().any(hidden_secret),
            _ => false,
        }
    }
    if doc.values().any(hidden_secret) {
        return Err(Diagnostic::error(
            "a sensitive value of the manifest is not available (only its hash is known)",
        )
        .with_address(address)
        .with_hint(
            "run `claw apply` without a saved plan so secret values are read from their source",
        ));
    }
    if doc.values().any(Value::contains_unknown) {
        return Err(
            Diagnostic::error("the manifest still has values known only after apply")
                .with_address(address),
        );
    }
    Ok(Value::Map(doc).to_json_exposed())
}

impl KubeProvider {
    /// Compares the fields claw sets, then confirms with a server-side dry
    /// run (normalised values, conflicts, immutable fields).
    pub(crate) async fn diff_manifest(&self, req: &DiffRequest) -> DiffResponse {
        let mut resp = DiffResponse::default();
        let prior = prior_fields(req.prior.as_deref());
        let desired = doc_of(&req.desired);
        let mut changes = manifest::diff_doc(&desired, &req.live.attrs, &prior);
        if changes.is_empty() || desired.values().any(Value::contains_unknown) {
            resp.changes = changes;
            return resp;
        }
        // Confirm with a server-side dry-run: it normalises values
        // (quantities, defaults of new fields) and finds conflicts and
        // invalid or immutable fields at plan time.
        let Some(r) = ident(MANIFEST, &desired) else {
            resp.changes = changes;
            return resp;
        };
        let force = req
            .desired
            .get("force_conflicts")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let res = match self.cluster.resolve(&r.api_version, &r.kind).await {
            Ok(Some(res)) => res,
            _ => {
                resp.changes = changes;
                return resp;
            }
        };
        let body = Value::Map(desired.clone()).to_json_exposed();
        match self
            .apply_policy(&req.address, &res, &r, &body, true, force, &prior)
            .await
        {
            Ok(after) => {
                let after = to_live(MANIFEST, &after, &res, &req.ctx);
                let a = Value::Map(after.attrs);
                let l = Value::Map(req.live.attrs.clone());
                changes.retain(|c| {
                    let av = a.get_path(&c.path);
                    let lv = l.get_path(&c.path);
                    match &c.after {
                        None => av != lv, // removed (or, at this index, replaced by another item)
                        Some(_) => {
                            let mut inner = Vec::new();
                            if let Some(av) = av {
                                manifest::diff_value(&c.path, av, lv, &mut inner);
                            }
                            av.is_none() || !inner.is_empty()
                        }
                    }
                });
            }
            Err(d) => {
                if d.summary.contains("field is immutable")
                    || d.detail
                        .as_deref()
                        .unwrap_or("")
                        .contains("field is immutable")
                {
                    changes = changes
                        .into_iter()
                        .map(AttrChange::forcing_replace)
                        .collect();
                    resp.replace_note = Some(
                        "an immutable field changed; the object is deleted and created again"
                            .into(),
                    );
                } else if d.summary.contains("field manager") || d.summary.contains("is invalid") {
                    resp.diagnostics.push(d);
                }
            }
        }
        resp.changes = changes;
        resp
    }
}
