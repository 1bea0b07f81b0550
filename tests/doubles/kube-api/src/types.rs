//! The kinds the double serves, server-side defaults and validation.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct ResType {
    /// "" for the core group.
    pub group: String,
    pub versions: Vec<String>,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Served because of this CRD (`plural.group`), if any.
    pub crd: Option<String>,
}

impl ResType {
    pub fn gv(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }
    /// `deployments.apps`, `configmaps`: as the real server names a kind in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
    pub fn kind_qualified(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

fn t(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
) -> ResType {
    ResType {
        group: group.into(),
        versions: vec![version.into()],
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        crd: None,
    }
}

pub fn builtin() -> Vec<ResType> {
    vec![
        t("", "v1", "Namespace", "namespaces", false, &["ns"]),
        t("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
        t("", "v1", "Secret", "secrets", true, &[]),
        t("", "v1", "Service", "services", true, &["svc"]),
        t("", "v1", "Pod", "pods", true, &["po"]),
        t(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
        ),
        t(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            false,
            &["pv"],
        ),
        t("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
        t("", "v1", "Node", "nodes", false, &["no"]),
        t("", "v1", "Event", "events", true, &["ev"]),
        t("apps", "v1", "Deployment", "deployments", true, &["deploy"]),
        t("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"]),
        t("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"]),
        t("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"]),
        t("batch", "v1", "Job", "jobs", true, &[]),
        t("batch", "v1", "CronJob", "cronjobs", true, &["cj"]),
        t(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            &["netpol"],
        ),
        t(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            &["ing"],
        ),
        t(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
        ),
        t(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
        ),
        t(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
        ),
        t(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
        ),
        t(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
        ),
        t("coordination.k8s.io", "v1", "Lease", "leases", true, &[]),
        t(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
        ),
    ]
}

/// The kinds a CRD makes servable.
pub fn from_crd(crd: &Value) -> Option<ResType> {
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let versions: Vec<String> = spec
        .get("versions")?
        .as_array()?
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let kind = names.get("kind")?.as_str()?.to_string();
    Some(ResType {
        group: spec.get("group")?.as_str()?.to_string(),
        versions,
        plural: names.get("plural")?.as_str()?.to_string(),
        singular: names
            .get("singular")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase()),
        kind,
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        short_names: names
            .get("shortNames")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        crd: crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn obj(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("object")
}

fn default(m: &mut Map<String, Value>, k: &str, v: Value) {
    if !m.contains_key(k) || m[k].is_null() {
        m.insert(k.into(), v);
    }
}

fn default_pod_spec(spec: &mut Value, restart: &str) {
    let s = obj(spec);
    default(s, "restartPolicy", json!(restart));
    default(s, "terminationGracePeriodSeconds", json!(30));
    default(s, "dnsPolicy", json!("ClusterFirst"));
    default(s, "schedulerName", json!("default-scheduler"));
    default(s, "securityContext", json!({}));
    for key in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(key).and_then(Value::as_array_mut) {
            for c in cs {
                let image = c
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let cm = obj(c);
                let policy = if image.ends_with(":latest") || !image.contains(':') {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                default(cm, "imagePullPolicy", json!(policy));
                default(cm, "terminationMessagePath", json!("/dev/termination-log"));
                default(cm, "terminationMessagePolicy", json!("File"));
                default(cm, "resources", json!({}));
                for part in ["limits", "requests"] {
                    if let Some(q) = cm
                        .get_mut("resources")
                        .and_then(|r| r.get_mut(part))
                        .and_then(Value::as_object_mut)
                    {
                        for v in q.values_mut() {
                            if let Some(c) = canonical_quantity(v) {
                                *v = json!(c);
                            }
                        }
                    }
                }
                if let Some(ps) = cm.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ps {
                        default(obj(p), "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// Drops what Go's `omitempty` drops when a real server serializes an
/// object: empty lists, and `false` / `""` of the fields below.
pub fn omit_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, x| {
                !(x.as_array().map(|a| a.is_empty()).unwrap_or(false)
                    || (matches!(
                        k.as_str(),
                        "readOnly" | "hostNetwork" | "hostPID" | "hostIPC" | "stdin" | "tty"
                    ) && x == &Value::Bool(false))
                    || (matches!(k.as_str(), "subPath" | "workingDir" | "serviceAccountName")
                        && x.as_str() == Some("")))
            });
            for x in m.values_mut() {
                omit_empty(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(omit_empty),
        _ => {}
    }
}

/// Server-side defaults, as a real API server fills them in.
pub fn apply_defaults(kind: &str, o: &mut Value, uid_seed: u64) {
    omit_empty(o);
    match kind {
        "Deployment" => {
            let spec = obj(o).entry("spec").or_insert(json!({}));
            let s = obj(spec);
            default(s, "replicas", json!(1));
            default(s, "revisionHistoryLimit", json!(10));
            default(s, "progressDeadlineSeconds", json!(600));
            default(
                s,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            if let Some(st) = s.get_mut("strategy") {
                if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                    default(
                        obj(st),
                        "rollingUpdate",
                        json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
                    );
                }
            }
            if let Some(ps) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
                default_pod_spec(ps, "Always");
            }
        }
        "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
            let spec = obj(o).entry("spec").or_insert(json!({}));
            let s = obj(spec);
            if kind != "DaemonSet" {
                default(s, "replicas", json!(1));
            }
            default(s, "revisionHistoryLimit", json!(10));
            if let Some(ps) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
                default_pod_spec(ps, "Always");
            }
        }
        "Job" => {
            let spec = obj(o).entry("spec").or_insert(json!({}));
            let s = obj(spec);
            default(s, "backoffLimit", json!(6));
            default(s, "completions", json!(1));
            default(s, "parallelism", json!(1));
            default(s, "completionMode", json!("NonIndexed"));
            default(s, "suspend", json!(false));
            if let Some(ps) = s.get_mut("template").and_then(|t| t.get_mut("spec")) {
                default_pod_spec(ps, "Never");
            }
        }
        "Pod" => {
            let spec = obj(o).entry("spec").or_insert(json!({}));
            default_pod_spec(spec, "Always");
        }
        "Service" => {
            let spec = obj(o).entry("spec").or_insert(json!({}));
            let s = obj(spec);
            default(s, "type", json!("ClusterIP"));
            default(s, "sessionAffinity", json!("None"));
            if s.get("clusterIP").is_none() {
                let ip = format!("10.43.{}.{}", (uid_seed / 250) % 250, uid_seed % 250 + 1);
                s.insert("clusterIP".into(), json!(ip));
                s.insert("clusterIPs".into(), json!([ip]));
            }
            let nodeport = s.get("type").and_then(Value::as_str) == Some("NodePort");
            if let Some(ps) = s.get_mut("ports").and_then(Value::as_array_mut) {
                for (i, p) in ps.iter_mut().enumerate() {
                    let port = p.get("port").cloned().unwrap_or(json!(0));
                    let pm = obj(p);
                    default(pm, "protocol", json!("TCP"));
                    default(pm, "targetPort", port);
                    if nodeport {
                        default(
                            pm,
                            "nodePort",
                            json!(30000 + (uid_seed as i64 * 7 + i as i64) % 2767),
                        );
                    }
                }
            }
        }
        "Secret" => {
            let m = obj(o);
            default(m, "type", json!("Opaque"));
            if let Some(Value::Object(sd)) = m.remove("stringData") {
                use base64::Engine;
                let data = m.entry("data").or_insert(json!({}));
                let dm = obj(data);
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default();
                    dm.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(s)),
                    );
                }
            }
        }
        "PersistentVolumeClaim" => {
            let spec = obj(o).entry("spec").or_insert(json!({}));
            let s = obj(spec);
            default(s, "volumeMode", json!("Filesystem"));
            default(s, "storageClassName", json!("local-path"));
        }
        "Namespace" => {
            let m = obj(o);
            default(m, "spec", json!({"finalizers": ["kubernetes"]}));
            m.insert("status".into(), json!({"phase": "Active"}));
            let name = m
                .get("metadata")
                .and_then(|x| x.get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            let md = obj(m.entry("metadata").or_insert(json!({})));
            let labels = obj(md.entry("labels").or_insert(json!({})));
            default(labels, "kubernetes.io/metadata.name", name);
        }
        "CustomResourceDefinition" => {
            let m = obj(o);
            let names = m
                .get("spec")
                .and_then(|s| s.get("names"))
                .cloned()
                .unwrap_or(json!({}));
            m.insert(
                "status".into(),
                json!({
                    "acceptedNames": names,
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
                    ],
                    "storedVersions": m.get("spec").and_then(|s| s.get("versions")).and_then(Value::as_array)
                        .map(|vs| vs.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                            .filter_map(|v| v.get("name").cloned()).collect::<Vec<_>>()).unwrap_or_default(),
                }),
            );
        }
        _ => {}
    }
}

/// What the simulated controllers write into status after a change.
pub fn simulate_status(kind: &str, o: &mut Value) {
    let generation = o
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            let r = o.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
            obj(o).insert(
                "status".into(),
                json!({"observedGeneration": generation, "replicas": r, "updatedReplicas": r,
                       "readyReplicas": r, "availableReplicas": r,
                       "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}),
            );
        }
        "DaemonSet" => {
            obj(o).insert(
                "status".into(),
                json!({"observedGeneration": generation, "desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                       "updatedNumberScheduled": 1, "numberReady": 1, "numberAvailable": 1}),
            );
        }
        "Job" => {
            let c = o.pointer("/spec/completions").cloned().unwrap_or(json!(1));
            obj(o).insert(
                "status".into(),
                json!({"succeeded": c, "conditions": [{"type": "Complete", "status": "True"}]}),
            );
        }
        "PersistentVolumeClaim" => {
            obj(o).insert("status".into(), json!({"phase": "Bound"}));
        }
        _ => {}
    }
}

/// A field error: (field path, message) as in a real Invalid Status.
pub type FieldError = (String, String);

fn dns_name(s: &str, subdomain: bool) -> bool {
    let max = if subdomain { 253 } else { 63 };
    !s.is_empty()
        && s.len() <= max
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (subdomain && c == '.')
        })
        && s.chars()
            .next()
            .map(|c| c.is_ascii_alphanumeric())
            .unwrap_or(false)
        && s.chars()
            .last()
            .map(|c| c.is_ascii_alphanumeric())
            .unwrap_or(false)
}

/// Validates an object before it is stored.
pub fn validate(rt: &ResType, o: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = o
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let label_style = matches!(
        rt.kind.as_str(),
        "Namespace" | "Service" | "Deployment" | "StatefulSet" | "DaemonSet"
    );
    if name.is_empty() {
        errs.push((
            "metadata.name".into(),
            "Required value: name or generateName is required".into(),
        ));
    } else if !dns_name(name, !label_style)
        && !rt.kind.starts_with("Role")
        && !rt.kind.starts_with("ClusterRole")
    {
        errs.push((
            "metadata.name".into(),
            format!("Invalid value: {name:?}: a lowercase RFC 1123 {} must consist of lower case alphanumeric characters{}",
                if label_style { "label" } else { "subdomain" },
                if label_style { " or '-'" } else { ", '-' or '.'" }),
        ));
    }
    if let Some(labels) = o.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !v.is_string() {
                errs.push((
                    format!("metadata.labels.{k}"),
                    "Invalid value: label values must be strings".into(),
                ));
            } else if v.as_str().map(|s| s.len() > 63).unwrap_or(false) {
                errs.push((
                    format!("metadata.labels.{k}"),
                    "Invalid value: must be no more than 63 characters".into(),
                ));
            }
        }
    }
    match rt.kind.as_str() {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
            if o.pointer("/spec/selector").is_none() {
                errs.push(("spec.selector".into(), "Required value".into()));
            }
            if o.pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .map(|c| c.is_empty())
                .unwrap_or(true)
            {
                errs.push((
                    "spec.template.spec.containers".into(),
                    "Required value".into(),
                ));
            }
            if let (Some(sel), Some(labels)) = (
                o.pointer("/spec/selector/matchLabels")
                    .and_then(Value::as_object),
                o.pointer("/spec/template/metadata/labels")
                    .and_then(Value::as_object),
            ) {
                if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) {
                    errs.push((
                        "spec.template.metadata.labels".into(),
                        "Invalid value: `selector` does not match template `labels`".into(),
                    ));
                }
            }
        }
        "Job" => {
            if o.pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .map(|c| c.is_empty())
                .unwrap_or(true)
            {
                errs.push((
                    "spec.template.spec.containers".into(),
                    "Required value".into(),
                ));
            }
            match o
                .pointer("/spec/template/spec/restartPolicy")
                .and_then(Value::as_str)
            {
                Some("Never") | Some("OnFailure") => {}
                other => errs.push((
                    "spec.template.spec.restartPolicy".into(),
                    format!(
                        "Unsupported value: {:?}: supported values: \"OnFailure\", \"Never\"",
                        other.unwrap_or("")
                    ),
                )),
            }
        }
        "Service"
            if o.pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|p| p.is_empty())
                .unwrap_or(true)
                && o.pointer("/spec/type").and_then(Value::as_str) != Some("ExternalName")
                && o.pointer("/spec/clusterIP").and_then(Value::as_str) != Some("None") =>
        {
            errs.push(("spec.ports".into(), "Required value".into()));
        }
        "ConfigMap" | "Secret" => {
            let size: usize = ["data", "binaryData"]
                .iter()
                .filter_map(|k| o.get(*k).and_then(Value::as_object))
                .flat_map(|m| m.iter())
                .map(|(k, v)| {
                    let n = v.as_str().map(str::len).unwrap_or(0);
                    // Secret data is base64: count the decoded bytes.
                    k.len() + if rt.kind == "Secret" { n / 4 * 3 } else { n }
                })
                .sum();
            if size > 1_048_576 {
                errs.push((
                    "data".into(),
                    "Too long: must have at most 1048576 bytes".into(),
                ));
            }
            if let Some(d) = o.get("data").and_then(Value::as_object) {
                for (k, v) in d {
                    if !v.is_string() {
                        errs.push((
                            format!("data[{k}]"),
                            "Invalid value: must be a string".into(),
                        ));
                    } else if rt.kind == "Secret" {
                        use base64::Engine;
                        if base64::engine::general_purpose::STANDARD
                            .decode(v.as_str().unwrap_or_default())
                            .is_err()
                        {
                            errs.push((
                                format!("data[{k}]"),
                                "Invalid value: illegal base64 data".into(),
                            ));
                        }
                    }
                }
            }
        }
        "CustomResourceDefinition" => {
            let group = o
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("");
            let plural = o
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or("");
            if group.is_empty() {
                errs.push(("spec.group".into(), "Required value".into()));
            }
            if plural.is_empty() {
                errs.push(("spec.names.plural".into(), "Required value".into()));
            }
            if o.pointer("/spec/names/kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                errs.push(("spec.names.kind".into(), "Required value".into()));
            }
            if name != format!("{plural}.{group}") {
                errs.push((
                    "metadata.name".into(),
                    format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
                ));
            }
            if o.pointer("/spec/versions")
                .and_then(Value::as_array)
                .map(|v| v.is_empty())
                .unwrap_or(true)
            {
                errs.push((
                    "spec.versions".into(),
                    "Invalid value: must have exactly one version marked as storage version".into(),
                ));
            }
        }
        _ => {}
    }
    errs
}

/// The canonical form a real API server stores a resource quantity in:
/// `1000m` → `1`, `0.5` → `500m`, `1024Mi` → `1Gi`, `2` (a number) → `2`.
pub fn canonical_quantity(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let binary = [
        ("Ki", 1i128 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
    ];
    for (suffix, mult) in binary {
        if let Some(num) = s.strip_suffix(suffix) {
            let x: f64 = num.parse().ok()?;
            let bytes = (x * mult as f64).round() as i128;
            for (sfx, m) in binary.iter().rev() {
                if bytes % m == 0 {
                    return Some(format!("{}{}", bytes / m, sfx));
                }
            }
            return Some(bytes.to_string());
        }
    }
    let decimal = [
        ("k", 1_000i128),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (num, milli_mult) = if let Some(n) = s.strip_suffix('m') {
        (n.to_string(), 1i128)
    } else if let Some((sfx, m)) = decimal.iter().find(|(sfx, _)| s.ends_with(sfx)) {
        (s[..s.len() - sfx.len()].to_string(), m * 1000)
    } else {
        (s.clone(), 1000)
    };
    let x: f64 = num.parse().ok()?;
    let milli = (x * milli_mult as f64).round() as i128;
    if milli % 1000 != 0 {
        return Some(format!("{milli}m"));
    }
    let units = milli / 1000;
    for (sfx, m) in decimal.iter().rev() {
        if units != 0 && units % m == 0 {
            return Some(format!("{}{}", units / m, sfx));
        }
    }
    Some(units.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_take_their_canonical_form() {
        for (a, b) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("2000m", "2"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("4Gi", "4Gi"),
            ("128Mi", "128Mi"),
            ("250m", "250m"),
        ] {
            assert_eq!(canonical_quantity(&json!(a)).as_deref(), Some(b), "{a}");
        }
        assert_eq!(canonical_quantity(&json!(2)).as_deref(), Some("2"));
    }
}
