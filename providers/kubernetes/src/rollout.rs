//! Automatic rollouts: a pod template that references a Secret or ConfigMap
//! of this provider block (env `valueFrom`, `envFrom`, `secret`/`configMap`
//! volumes and projected sources) depends on it, and carries the keyed
//! digest of the referenced objects' data in its annotation
//! `claw.dev/inputs`: a changed value changes the template, so the workload
//! rolls. `rollout = false` on the `k8s_manifest` keeps the dependency and
//! leaves the annotation out.

use crate::manifest::ObjRef;
use crate::provider::{attr_str, ident, MANIFEST, SECRET};
use claw_provider::value::join_key;
use claw_provider::*;
use std::collections::{BTreeMap, BTreeSet};

/// The pod-template annotation that holds the digest.
pub const INPUTS_ANNOTATION: &str = "claw.dev/inputs";

/// Kinds whose `spec.template` is not a pod template to roll.
const NOT_WORKLOADS: &[&str] = &["Pod", "PodTemplate"];

/// Where a document's pod template is (`spec.template`, a CronJob's
/// `spec.jobTemplate.spec.template`), if it has one.
fn template_path(doc: &Attrs) -> Option<&'static str> {
    let kind = attr_str(doc, "kind")?;
    if NOT_WORKLOADS.contains(&kind) {
        return None;
    }
    let path = if kind == "CronJob" {
        "spec.jobTemplate.spec.template"
    } else {
        "spec.template"
    };
    at(doc, &format!("{path}.spec.containers"))
        .and_then(Value::as_list)
        .map(|_| path)
}

/// The value at a dotted `path` of a document, without copying it.
fn at<'a>(doc: &'a Attrs, path: &str) -> Option<&'a Value> {
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    let v = doc.get(head)?;
    if rest.is_empty() {
        Some(v)
    } else {
        v.get_path(rest)
    }
}

/// The attribute path of the annotation under a template at `path`.
fn annotation_path(path: &str) -> String {
    join_key(&format!("{path}.metadata.annotations"), INPUTS_ANNOTATION)
}

/// The Secrets and ConfigMaps a pod spec references: `(kind, name)`.
fn referenced(pod_spec: &Value) -> BTreeSet<(&'static str, String)> {
    let mut out = BTreeSet::new();
    let mut add = |kind: &'static str, v: Option<&Value>| {
        if let Some(n) = v.and_then(Value::as_str) {
            out.insert((kind, n.to_string()));
        }
    };
    let list = |v: &Value, p: &str| -> Vec<Value> {
        v.get_path(p)
            .and_then(Value::as_list)
            .map(<[Value]>::to_vec)
            .unwrap_or_default()
    };
    for group in ["containers", "initContainers", "ephemeralContainers"] {
        for c in list(pod_spec, group) {
            for e in list(&c, "env") {
                add("Secret", e.get_path("valueFrom.secretKeyRef.name"));
                add("ConfigMap", e.get_path("valueFrom.configMapKeyRef.name"));
            }
            for e in list(&c, "envFrom") {
                add("Secret", e.get_path("secretRef.name"));
                add("ConfigMap", e.get_path("configMapRef.name"));
            }
        }
    }
    for v in list(pod_spec, "volumes") {
        add("Secret", v.get_path("secret.secretName"));
        add("ConfigMap", v.get_path("configMap.name"));
        for s in list(&v, "projected.sources") {
            add("Secret", s.get_path("secret.name"));
            add("ConfigMap", s.get_path("configMap.name"));
        }
    }
    out
}

/// The default name of a `k8s_secret` at `address` without `name`.
fn secret_name(address: &str) -> Option<String> {
    let rest = address.strip_prefix(SECRET)?.strip_prefix('.')?;
    let (name, key) = match rest.split_once('[') {
        Some((n, k)) => {
            let k: String = serde_json::from_str(k.strip_suffix(']')?).ok()?;
            (n, Some(k))
        }
        None => (rest, None),
    };
    Some(crate::k8s_secret::default_name(name, key.as_deref()))
}

/// The Secrets and ConfigMaps of this block, by `(kind, namespace, name)`.
fn managed(items: &[DepItem], default_ns: &str) -> BTreeMap<(String, String, String), String> {
    let mut out = BTreeMap::new();
    for it in items {
        let r = match it.rtype.as_str() {
            SECRET => {
                let s = |k: &str| attr_str(&it.attrs, k).map(str::to_string);
                let Some(name) = s("name").or_else(|| secret_name(&it.address)) else {
                    continue;
                };
                ObjRef {
                    api_version: "v1".into(),
                    kind: "Secret".into(),
                    namespace: s("namespace").unwrap_or_else(|| default_ns.to_string()),
                    name,
                }
            }
            MANIFEST => match ident(MANIFEST, &it.attrs) {
                Some(r) if r.api_version == "v1" => r,
                _ => continue,
            },
            _ => continue,
        };
        if r.kind == "Secret" || r.kind == "ConfigMap" {
            out.insert((r.kind, r.namespace, r.name), it.address.clone());
        }
    }
    out
}

/// Each pod template's references to this block's Secrets and ConfigMaps:
/// the ordering edges (always) and the reads (unless `rollout = false`).
pub(crate) fn links(items: &[DepItem], default_ns: &str) -> (Vec<Edge>, Vec<Read>) {
    let objects = managed(items, default_ns);
    let (mut edges, mut reads) = (Vec::new(), Vec::new());
    for it in items.iter().filter(|i| i.rtype == MANIFEST) {
        let Some(path) = template_path(&it.attrs) else {
            continue;
        };
        let Some(r) = ident(MANIFEST, &it.attrs) else {
            continue;
        };
        let Some(spec) = at(&it.attrs, &format!("{path}.spec")) else {
            continue;
        };
        let deps: Vec<String> = referenced(spec)
            .into_iter()
            .filter_map(|(kind, name)| objects.get(&(kind.to_string(), r.namespace.clone(), name)))
            .filter(|a| **a != it.address)
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if deps.is_empty() {
            continue;
        }
        edges.extend(deps.iter().map(|d| Edge::new(&it.address, d)));
        if it.attrs.get("rollout").and_then(Value::as_bool) != Some(false) {
            reads.push(Read {
                dependent: it.address.clone(),
                dependencies: deps,
                path: annotation_path(path),
            });
        }
    }
    (edges, reads)
}

/// What of a read object counts: its data.
fn data_of(address: &str, v: &Value) -> Option<(String, Value)> {
    let attrs = v.as_map()?;
    let rtype = if address.starts_with(&format!("{SECRET}.")) {
        SECRET
    } else {
        MANIFEST
    };
    let key = ident(rtype, attrs).map_or_else(|| address.to_string(), |r| r.key());
    let data: Map = ["data", "stringData", "binaryData"]
        .into_iter()
        .filter_map(|k| Some((k.to_string(), attrs.get(k)?.clone())))
        .collect();
    Some((key, Value::Map(data)))
}

/// The annotation's value: the keyed digest (HMAC with the stack's salt,
/// [`Ctx::digest`]) of the read objects' data, secrets by their keyed hash;
/// unknown while any of it is.
pub(crate) fn digest(reads: &Map, ctx: &Ctx) -> Value {
    let mut all = Map::new();
    for (address, v) in reads {
        match data_of(address, v) {
            Some((key, data)) if !data.contains_unknown() => {
                all.insert(key, data);
            }
            _ => return Value::Unknown,
        }
    }
    let text = serde_json::to_string(&Value::Map(all).to_json()).unwrap_or_default();
    Value::str(ctx.digest(text.as_bytes()))
}

/// The prepared document with the annotation on its pod template.
pub(crate) fn fold(req: FoldRequest<'_>) -> PrepareResponse {
    let mut attrs = req.attrs;
    let Some(path) = template_path(&attrs) else {
        return PrepareResponse::attrs(attrs);
    };
    let value = digest(&req.reads, req.ctx);
    let mut segs = path.split('.').chain(["metadata", "annotations"]);
    let Some(first) = segs.next() else {
        return PrepareResponse::attrs(attrs);
    };
    let mut cur = attrs
        .entry(first.to_string())
        .or_insert_with(|| Value::Map(Map::new()));
    for s in segs {
        let Value::Map(m) = cur else {
            return PrepareResponse::attrs(attrs);
        };
        cur = m
            .entry(s.to_string())
            .or_insert_with(|| Value::Map(Map::new()));
    }
    if let Value::Map(annotations) = cur {
        annotations.insert(INPUTS_ANNOTATION.into(), value);
    }
    PrepareResponse::attrs(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(address: &str, rtype: &str, j: serde_json::Value) -> DepItem {
        DepItem {
            address: address.into(),
            rtype: rtype.into(),
            attrs: Value::from_json(&j).as_map().cloned().unwrap(),
        }
    }

    fn workload(kind: &str, template: serde_json::Value) -> serde_json::Value {
        let spec = if kind == "CronJob" {
            json!({"jobTemplate": {"spec": {"template": template}}})
        } else {
            json!({"template": template})
        };
        json!({"apiVersion": "apps/v1", "kind": kind,
               "metadata": {"name": "w", "namespace": "ns"}, "spec": spec})
    }

    #[test]
    fn every_kind_of_reference_is_followed_in_the_same_namespace() {
        let pod = json!({"spec": {
            "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "cm-init"}}]}],
            "containers": [{"name": "c",
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "k"}}},
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}}],
                "envFrom": [{"secretRef": {"name": "keys"}}]}],
            "volumes": [{"name": "v1", "secret": {"secretName": "s-vol"}},
                        {"name": "v2", "configMap": {"name": "cm-vol"}},
                        {"name": "v3", "projected": {"sources": [
                            {"secret": {"name": "s-proj"}}, {"configMap": {"name": "cm-proj"}}]}}]}});
        let mut items = vec![item(
            "k8s_manifest.w[\"apps/v1/Deployment/ns/w\"]",
            MANIFEST,
            workload("Deployment", pod),
        )];
        let names = [
            ("Secret", "s-env"),
            ("ConfigMap", "cm-env"),
            ("ConfigMap", "cm-init"),
            ("Secret", "s-vol"),
            ("ConfigMap", "cm-vol"),
            ("Secret", "s-proj"),
            ("ConfigMap", "cm-proj"),
        ];
        for (kind, name) in names {
            let key = format!("v1/{kind}/ns/{name}");
            items.push(item(
                &format!("k8s_manifest.o[\"{key}\"]"),
                MANIFEST,
                json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "ns"}}),
            ));
        }
        // A k8s_secret named by default after its resource, in the default namespace.
        items.push(item("k8s_secret.keys", SECRET, json!({"data": {}})));
        // Same name, other namespace: not the one referenced.
        items.push(item(
            "k8s_manifest.o[\"v1/Secret/other/s-env\"]",
            MANIFEST,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s-env", "namespace": "other"}}),
        ));
        let (edges, reads) = links(&items, "ns");
        assert_eq!(edges.len(), 8, "{edges:#?}");
        assert_eq!(reads.len(), 1);
        assert!(reads[0]
            .dependencies
            .contains(&"k8s_secret.keys".to_string()));
        assert!(!reads[0].dependencies.iter().any(|d| d.contains("/other/")));
        assert_eq!(
            reads[0].path,
            "spec.template.metadata.annotations[\"claw.dev/inputs\"]"
        );
    }

    #[test]
    fn cron_jobs_jobs_and_custom_resources_roll_and_rollout_false_opts_out() {
        let pod = json!({"spec": {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "keys"}}]}]}});
        let secret = item("k8s_secret.keys", SECRET, json!({"namespace": "ns"}));
        for kind in ["CronJob", "Job", "StatefulSet", "DaemonSet", "Gateway"] {
            let (edges, reads) = links(
                &[
                    item("k8s_manifest.w", MANIFEST, workload(kind, pod.clone())),
                    secret.clone(),
                ],
                "default",
            );
            assert_eq!(
                edges,
                vec![Edge::new("k8s_manifest.w", "k8s_secret.keys")],
                "{kind}"
            );
            assert_eq!(reads.len(), 1, "{kind}");
        }
        assert!(links(
            &[
                item("k8s_manifest.w", MANIFEST, workload("CronJob", pod.clone())),
                secret.clone()
            ],
            "default"
        )
        .1[0]
            .path
            .starts_with("spec.jobTemplate.spec.template.metadata"));
        let mut opted = workload("Deployment", pod);
        opted["rollout"] = json!(false);
        let (edges, reads) = links(
            &[item("k8s_manifest.w", MANIFEST, opted), secret],
            "default",
        );
        assert_eq!(edges.len(), 1, "the dependency stays");
        assert!(reads.is_empty(), "no annotation");
    }

    #[test]
    fn the_annotation_is_a_keyed_digest_of_the_data_only() {
        let ctx = Ctx::for_tests("s", "/tmp");
        let secret = |v: &str, label: &str| {
            let mut m = Attrs::new();
            m.insert("namespace".into(), Value::str("ns"));
            m.insert("name".into(), Value::str("keys"));
            m.insert(
                "labels".into(),
                Value::Map([("l".to_string(), Value::str(label))].into()),
            );
            m.insert(
                "data".into(),
                Value::Map([("K".to_string(), ctx.secret(v))].into()),
            );
            Map::from([("k8s_secret.keys".to_string(), Value::Map(m))])
        };
        let a = digest(&secret("one", "x"), &ctx);
        assert_eq!(a, digest(&secret("one", "y"), &ctx), "labels do not count");
        assert_ne!(a, digest(&secret("two", "x"), &ctx));
        let a = a.as_str().unwrap().to_string();
        assert!(a.starts_with("hmac-sha256:"), "{a}");
        let other_salt = Ctx {
            salt: "other".into(),
            ..ctx.clone()
        };
        assert_ne!(Value::str(&a), digest(&secret("one", "x"), &other_salt));
        let unknown = Map::from([("k8s_secret.keys".to_string(), Value::Unknown)]);
        assert_eq!(digest(&unknown, &ctx), Value::Unknown);
    }
}
