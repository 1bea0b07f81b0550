//! The `Provider` for one `[provider.x]` alias.

use crate::client::{enc, ApiError, ApiRes, Cluster, Settings};
use crate::manifest::{self, FieldPath, ObjRef, Seg, OPTION_KEYS};
use base64::Engine;
use claw_provider::value::join_key;
use claw_provider::*;
use http::Method;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MANIFEST: &str = "k8s_manifest";
const SECRET: &str = "k8s_secret";
const FIELD_MANAGER: &str = "claw";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub struct KubeProvider {
    #[allow(dead_code)]
    alias: String,
    cluster: Arc<Cluster>,
}

impl KubeProvider {
    pub fn new(alias: String, settings: Settings) -> KubeProvider {
        KubeProvider {
            alias,
            cluster: Arc::new(Cluster::new(settings)),
        }
    }

    /// The cluster connection (shared with tests and the state backend).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }
}

fn attr_str<'a>(a: &'a Attrs, k: &str) -> Option<&'a str> {
    a.get(k).and_then(Value::as_str)
}

/// The object an instance stands for.
fn ident(rtype: &str, attrs: &Attrs) -> Option<ObjRef> {
    match rtype {
        SECRET => Some(ObjRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: attr_str(attrs, "namespace")?.to_string(),
            name: attr_str(attrs, "name")?.to_string(),
        }),
        _ => ObjRef::of_doc(attrs),
    }
}

fn doc_of(attrs: &Attrs) -> Attrs {
    attrs
        .iter()
        .filter(|(k, _)| !OPTION_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn owner_of(obj: &serde_json::Value, stack: &str) -> Owner {
    let labels = obj.pointer("/metadata/labels");
    let l = |k: &str| labels.and_then(|m| m.get(k)).and_then(|v| v.as_str());
    match (l(LABEL_MANAGED_BY), l(LABEL_STACK)) {
        (Some("claw"), Some(s)) if s == stack => Owner::Stack,
        (Some("claw"), Some(s)) => Owner::OtherStack(s.to_string()),
        _ => Owner::Unmanaged,
    }
}

fn address_of(obj: &serde_json::Value) -> Option<String> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LABEL_ADDRESS))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

fn ref_of_obj(obj: &serde_json::Value, res: &ApiRes) -> ObjRef {
    ObjRef {
        api_version: res.api_version.clone(),
        kind: res.kind.clone(),
        namespace: obj
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string(),
        name: obj
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string(),
    }
}

fn secret_hash(plain: &str, salt: &str) -> Value {
    Value::Secret(Secret::hash_only(plain, salt))
}

/// A live object in the shape of the configuration.
fn to_live(rtype: &str, obj: &serde_json::Value, res: &ApiRes, ctx: &Ctx) -> LiveObject {
    let r = ref_of_obj(obj, res);
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let rv = obj
        .pointer("/metadata/resourceVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.remove("managedFields");
    }
    let attrs = match rtype {
        SECRET => {
            let mut a = Attrs::new();
            a.insert("namespace".into(), Value::str(&r.namespace));
            a.insert("name".into(), Value::str(&r.name));
            a.insert("uid".into(), Value::str(uid));
            a.insert(
                "type".into(),
                Value::str(o.get("type").and_then(|v| v.as_str()).unwrap_or("Opaque")),
            );
            let mut data = BTreeMap::new();
            if let Some(d) = o.get("data").and_then(|d| d.as_object()) {
                for (k, v) in d {
                    let plain = B64
                        .decode(v.as_str().unwrap_or_default())
                        .unwrap_or_default();
                    data.insert(
                        k.clone(),
                        secret_hash(&String::from_utf8_lossy(&plain), &ctx.salt),
                    );
                }
            }
            a.insert("data".into(), Value::Map(data));
            for k in ["labels", "annotations"] {
                if let Some(v) = obj.pointer(&format!("/metadata/{k}")) {
                    a.insert(k.into(), Value::from_json(v));
                }
            }
            a
        }
        _ => {
            if r.kind == "Secret" && r.api_version == "v1" {
                if let Some(d) = o.get_mut("data").and_then(|d| d.as_object_mut()) {
                    for v in d.values_mut() {
                        let h = Secret::hash_only(v.as_str().unwrap_or_default(), &ctx.salt);
                        *v = json!({ "$sensitive": h.hash() });
                    }
                }
            }
            // Lists of built-in kinds carry no apiVersion/kind per item.
            if let Some(m) = o.as_object_mut() {
                m.insert("apiVersion".into(), json!(res.api_version));
                m.insert("kind".into(), json!(res.kind));
            }
            match Value::from_json(&o) {
                Value::Map(m) => m,
                _ => Attrs::new(),
            }
        }
    };
    LiveObject {
        id: r.key(),
        attrs,
        fingerprint: fingerprint(obj, uid, rv),
        owner: owner_of(obj, &ctx.stack),
    }
}

/// Changes whenever the object changes in a way a plan depends on: objects
/// with a `metadata.generation` (a spec) use it plus a hash of their labels
/// and annotations, so controllers writing `status` do not make saved plans
/// stale; the others (ConfigMaps, Secrets, ...) use the resourceVersion.
fn fingerprint(obj: &serde_json::Value, uid: &str, rv: &str) -> String {
    match obj.pointer("/metadata/generation").and_then(|g| g.as_i64()) {
        Some(g) => {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for k in ["labels", "annotations"] {
                if let Some(v) = obj.pointer(&format!("/metadata/{k}")) {
                    h.update(serde_json::to_vec(v).unwrap_or_default());
                }
                h.update([0u8]);
            }
            format!("{uid}/g{g}/{}", &hex::encode(h.finalize())[..16])
        }
        None => format!("{uid}/{rv}"),
    }
}

/// Conflicts reported by a server-side apply: (manager, field).
fn conflicts_of(e: &ApiError) -> Vec<(String, String)> {
    let ApiError::Status {
        code: 409,
        causes,
        message,
        ..
    } = e
    else {
        return Vec::new();
    };
    let from_causes: Vec<(String, String)> = causes
        .iter()
        .filter(|(r, _, _)| r == "FieldManagerConflict")
        .map(|(_, m, f)| {
            let manager = m
                .split('"')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| m.clone());
            (manager, f.clone())
        })
        .collect();
    if !from_causes.is_empty() {
        return from_causes;
    }
    conflicts_in_message(message)
}

/// Conflicts from the message alone (a server that sends no causes):
/// `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`, or
/// `Apply failed with 2 conflicts: conflicts with "m" using apps/v1:\n- .a\n- .b`.
fn conflicts_in_message(message: &str) -> Vec<(String, String)> {
    if !message.starts_with("Apply failed with") {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut manager: Option<String> = None;
    for line in message.lines() {
        let line = line.trim();
        if let Some(i) = line
            .find("conflict with \"")
            .or_else(|| line.find("conflicts with \""))
        {
            let rest = &line[i..];
            manager = rest.split('"').nth(1).map(str::to_string);
            // Single conflict: the field follows the last ": ".
            if let (Some(m), Some((_, field))) = (&manager, rest.rsplit_once(": ")) {
                if field.starts_with('.') {
                    out.push((m.clone(), field.trim().to_string()));
                }
            }
        } else if let (Some(m), Some(field)) = (&manager, line.strip_prefix("- ")) {
            out.push((m.clone(), field.trim().to_string()));
        }
    }
    out
}

/// Renders a field path as the API server does in conflicts.
fn render_path(p: &FieldPath) -> String {
    let mut s = String::new();
    for seg in p {
        match seg {
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Item(n) => s.push_str(&format!("[name={}]", serde_json::Value::String(n.clone()))),
        }
    }
    s
}

fn prior_fields(prior: Option<&StateObject>) -> BTreeSet<FieldPath> {
    let Some(p) = prior else {
        return BTreeSet::new();
    };
    if let Some(list) = p.private.get("fields").and_then(Value::as_list) {
        return list.iter().filter_map(manifest::decode_path).collect();
    }
    manifest::field_set(&doc_of(&p.attrs))
}

fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok()
}

fn api_diag(address: &str, what: &str, e: &ApiError) -> Diagnostic {
    let mut d = Diagnostic::error(format!("{what}: {}", e.message())).with_address(address);
    match e.reason() {
        "NotFound" if e.message().starts_with("namespaces ") => {
            d = d.with_hint("declare the Namespace in the configuration (claw creates Namespaces before the objects in them) or create it first");
        }
        "Forbidden" => d = d.with_hint("the kubeconfig user lacks RBAC permission for this"),
        "Unauthorized" => {
            d = d.with_hint("the cluster refused the kubeconfig's credentials (expired token or certificate?); check with `kubectl auth whoami`")
        }
        "Invalid" => {
            if let ApiError::Status { causes, .. } = e {
                let lines: Vec<String> = causes.iter().map(|(_, m, f)| format!("{f}: {m}")).collect();
                if !lines.is_empty() {
                    d = d.with_detail(lines.join("\n"));
                }
            }
            d = d.with_hint("fix the manifest; the API server refused it");
        }
        "" => d = d.with_hint("check that the cluster is reachable (kubectl cluster-info) with the same kubeconfig and context"),
        _ => {}
    }
    d
}

impl KubeProvider {
    fn default_ns(&self) -> String {
        self.cluster.default_namespace()
    }

    /// Lists a kind: in one namespace, or cluster-wide; when a cluster-wide
    /// list is forbidden (namespace-scoped RBAC), one list per namespace.
    async fn list(
        &self,
        res: &ApiRes,
        ns: &str,
        namespaces: &BTreeSet<&str>,
        query: &str,
        accept: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        let items = |v: serde_json::Value| {
            v.get("items")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default()
        };
        let path = format!("{}{query}", res.collection(ns));
        match self.cluster.call(Method::GET, &path, None, accept).await {
            Ok(v) => Ok(items(v)),
            Err(e) if e.code() == 403 && res.namespaced && ns.is_empty() => {
                let mut out = Vec::new();
                for n in namespaces {
                    let path = format!("{}{query}", res.collection(n));
                    out.extend(items(
                        self.cluster.call(Method::GET, &path, None, accept).await?,
                    ));
                }
                Ok(out)
            }
            Err(e) => Err(e),
        }
    }

    async fn ssa(
        &self,
        res: &ApiRes,
        r: &ObjRef,
        body: &serde_json::Value,
        dry_run: bool,
        force: bool,
    ) -> Result<serde_json::Value, ApiError> {
        let mut path = format!(
            "{}?fieldManager={FIELD_MANAGER}",
            res.item(&r.namespace, &r.name)
        );
        if force {
            path.push_str("&force=true");
        }
        if dry_run {
            path.push_str("&dryRun=All");
        }
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.cluster
            .call(
                Method::PATCH,
                &path,
                Some(("application/apply-patch+yaml", bytes)),
                None,
            )
            .await
    }

    /// Server-side apply with claw's conflict policy: `force_conflicts`, or a
    /// forced retry when every conflicting field is one claw applied before
    /// (it was changed by hand: the plan showed that drift).
    #[allow(clippy::too_many_arguments)]
    async fn apply_policy(
        &self,
        address: &str,
        res: &ApiRes,
        r: &ObjRef,
        body: &serde_json::Value,
        dry_run: bool,
        force: bool,
        prior: &BTreeSet<FieldPath>,
    ) -> Result<serde_json::Value, Diagnostic> {
        match self.ssa(res, r, body, dry_run, force).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let conflicts = conflicts_of(&e);
                if conflicts.is_empty() {
                    return Err(api_diag(
                        address,
                        &format!("server-side apply of {}", r.display()),
                        &e,
                    ));
                }
                let owned: BTreeSet<String> = prior.iter().map(render_path).collect();
                if conflicts.iter().all(|(_, f)| owned.contains(f)) {
                    return self.ssa(res, r, body, dry_run, true).await.map_err(|e| {
                        api_diag(
                            address,
                            &format!("server-side apply of {}", r.display()),
                            &e,
                        )
                    });
                }
                let mut managers: Vec<&str> = conflicts.iter().map(|(m, _)| m.as_str()).collect();
                managers.dedup();
                let fields: Vec<&str> = conflicts.iter().map(|(_, f)| f.as_str()).collect();
                let resource = address.split('[').next().unwrap_or(address);
                Err(Diagnostic::error(format!(
                    "{} has fields owned by another field manager: {} ({})",
                    r.display(),
                    managers.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", "),
                    fields.join(", ")
                ))
                .with_address(address)
                .with_detail(e.message())
                .with_hint(format!(
                    "set `force_conflicts = true` on {resource} to take these fields over, or stop setting them in the manifest"
                )))
            }
        }
    }

    /// Resolves the kind; for a custom resource whose CRD is not served yet,
    /// waits until the CRD is Established.
    async fn resolve_or_wait(
        &self,
        address: &str,
        r: &ObjRef,
        ctx: &Ctx,
    ) -> Result<ApiRes, Diagnostic> {
        let diag = |e: &ApiError| api_diag(address, &format!("discovery of {}", r.api_version), e);
        if let Some(res) = self
            .cluster
            .resolve(&r.api_version, &r.kind)
            .await
            .map_err(|e| diag(&e))?
        {
            return Ok(res);
        }
        let start = Instant::now();
        let timeout = Duration::from_secs(120);
        loop {
            let crds = self
                .cluster
                .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
                .await
                .map_err(|e| diag(&e))?;
            let crd = crds
                .get("items")
                .and_then(|i| i.as_array())
                .and_then(|items| {
                    items
                        .iter()
                        .find(|c| {
                            c.pointer("/spec/group").and_then(|g| g.as_str()) == Some(r.group())
                                && c.pointer("/spec/names/kind").and_then(|k| k.as_str())
                                    == Some(r.kind.as_str())
                        })
                        .cloned()
                });
            let established = crd
                .as_ref()
                .and_then(|c| c.pointer("/status/conditions"))
                .and_then(|c| c.as_array())
                .map(|cs| {
                    cs.iter().any(|c| {
                        c.get("type").and_then(|t| t.as_str()) == Some("Established")
                            && c.get("status").and_then(|s| s.as_str()) == Some("True")
                    })
                })
                .unwrap_or(false);
            if established {
                self.cluster.forget(&r.api_version);
                if let Some(res) = self
                    .cluster
                    .resolve(&r.api_version, &r.kind)
                    .await
                    .map_err(|e| diag(&e))?
                {
                    return Ok(res);
                }
            }
            if start.elapsed() > timeout
                || (crd.is_none() && start.elapsed() > Duration::from_secs(10))
            {
                return Err(Diagnostic::error(format!(
                    "the server does not serve {} in {}",
                    r.kind, r.api_version
                ))
                .with_address(address)
                .with_hint("declare its CustomResourceDefinition in the configuration (claw applies CRDs first and waits until they are Established)"));
            }
            ctx.progress.report(
                address,
                &format!(
                    "waiting for the CustomResourceDefinition of {}.{} to be Established ({}s)",
                    r.kind,
                    r.group(),
                    start.elapsed().as_secs()
                ),
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The body claw applies for an instance.
    fn body(
        &self,
        rtype: &str,
        address: &str,
        desired: &Attrs,
        ctx: &Ctx,
    ) -> Result<serde_json::Value, Diagnostic> {
        let mut labels = serde_json::Map::new();
        let mut annotations = serde_json::Map::new();
        match rtype {
            SECRET => {
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
                        Diagnostic::error(format!("the value of data.{k} is not available (only its hash is known)"))
                            .with_address(address)
                            .with_hint("run `claw apply` without a saved plan so secret values are read from their source")
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
            _ => {
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
                    .with_hint("run `claw apply` without a saved plan so secret values are read from their source"));
                }
                if doc.values().any(Value::contains_unknown) {
                    return Err(Diagnostic::error(
                        "the manifest still has values known only after apply",
                    )
                    .with_address(address));
                }
                Ok(Value::Map(doc).to_json_exposed())
            }
        }
    }

    async fn wait_ready(
        &self,
        address: &str,
        res: &ApiRes,
        r: &ObjRef,
        mode: &str,
        timeout: Duration,
        ctx: &Ctx,
    ) -> Result<(), Diagnostic> {
        let start = Instant::now();
        loop {
            let obj = self
                .cluster
                .get(&res.item(&r.namespace, &r.name))
                .await
                .map_err(|e| api_diag(address, &format!("reading {}", r.display()), &e))?;
            let i = |p: &str| obj.pointer(p).and_then(|v| v.as_i64());
            let gen_ok = i("/status/observedGeneration").unwrap_or(0)
                >= i("/metadata/generation").unwrap_or(0);
            let (done, msg) = match (mode, r.kind.as_str()) {
                ("complete", "Job") => {
                    let cond = |t: &str| {
                        obj.pointer("/status/conditions")
                            .and_then(|c| c.as_array())
                            .map(|cs| {
                                cs.iter().any(|c| {
                                    c.get("type").and_then(|x| x.as_str()) == Some(t)
                                        && c.get("status").and_then(|x| x.as_str()) == Some("True")
                                })
                            })
                            .unwrap_or(false)
                    };
                    if cond("Failed") {
                        return Err(Diagnostic::error(format!(
                            "Job {}/{} failed",
                            r.namespace, r.name
                        ))
                        .with_address(address)
                        .with_hint(format!("kubectl logs -n {} job/{}", r.namespace, r.name)));
                    }
                    (
                        cond("Complete"),
                        format!(
                            "waiting for Job to complete: {} succeeded",
                            i("/status/succeeded").unwrap_or(0)
                        ),
                    )
                }
                ("rollout", "DaemonSet") => {
                    let want = i("/status/desiredNumberScheduled").unwrap_or(0);
                    let upd = i("/status/updatedNumberScheduled").unwrap_or(0);
                    let avail = i("/status/numberAvailable").unwrap_or(0);
                    (
                        gen_ok && upd >= want && avail >= want,
                        format!("rollout: {avail}/{want} available"),
                    )
                }
                ("rollout", "Deployment" | "StatefulSet" | "ReplicaSet") => {
                    let want = i("/spec/replicas").unwrap_or(1);
                    let upd = i("/status/updatedReplicas").unwrap_or(0);
                    let ready = if r.kind == "StatefulSet" {
                        i("/status/readyReplicas").unwrap_or(0)
                    } else {
                        i("/status/availableReplicas").unwrap_or(0)
                    };
                    (
                        gen_ok && upd >= want && ready >= want,
                        format!("rollout: {upd}/{want} updated, {ready}/{want} available"),
                    )
                }
                _ => (true, String::new()),
            };
            if done {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(Diagnostic::error(format!(
                    "{} not ready after {}s ({msg})",
                    r.display(),
                    timeout.as_secs()
                ))
                .with_address(address)
                .with_hint("raise `wait_timeout`, or check `kubectl describe` for why it does not become ready"));
            }
            ctx.progress
                .report(address, &format!("{msg} ({}s)", start.elapsed().as_secs()));
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    }

    async fn wait_gone(
        &self,
        address: &str,
        res: &ApiRes,
        r: &ObjRef,
        ctx: &Ctx,
    ) -> Result<(), Diagnostic> {
        let start = Instant::now();
        loop {
            match self.cluster.get_opt(&res.item(&r.namespace, &r.name)).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) => {}
                Err(e) => return Err(api_diag(address, &format!("reading {}", r.display()), &e)),
            }
            if start.elapsed() > Duration::from_secs(300) {
                return Err(Diagnostic::error(format!(
                    "{} is still terminating after 5 minutes",
                    r.display()
                ))
                .with_address(address)
                .with_hint("look for finalizers that block its deletion (kubectl get -o yaml)"));
            }
            ctx.progress.report(
                address,
                &format!(
                    "waiting for {} to terminate ({}s)",
                    r.display(),
                    start.elapsed().as_secs()
                ),
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The documents of a `k8s_manifest`; the file read, if any, goes to `inputs`.
    fn manifest_docs(
        &self,
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
}

/// What refreshing one kind found.
#[derive(Default)]
struct GroupOut {
    /// (item index, looked up by its prior identity, live object)
    lives: Vec<(usize, bool, LiveObject)>,
    orphans: Vec<Orphan>,
    /// (diagnostic, the cluster is unreachable)
    diagnostics: Vec<(Diagnostic, bool)>,
}

impl KubeProvider {
    /// Refreshes the items of one kind: one labelled list, then same-name
    /// objects without labels (few: by name; many: one metadata-only list).
    async fn refresh_group(
        &self,
        (api_version, kind): &(String, String),
        members: &[(usize, ObjRef, bool)],
        req: &RefreshRequest,
        addresses: &BTreeSet<&str>,
    ) -> GroupOut {
        let ctx = &req.ctx;
        let mut out = GroupOut::default();
        let first = &req.items[members[0].0].address;
        let res = match self.cluster.resolve(api_version, kind).await {
            Ok(Some(r)) => r,
            Ok(None) => return out, // not served (yet): nothing of this kind exists
            Err(e) => {
                let unreachable = matches!(e, ApiError::Other(_)) || e.code() == 401;
                out.diagnostics.push((
                    api_diag(first, &format!("discovery of {api_version}"), &e),
                    unreachable,
                ));
                return out;
            }
        };
        let nss: BTreeSet<&str> = members
            .iter()
            .map(|(_, r, _)| r.namespace.as_str())
            .collect();
        let list_ns = if res.namespaced && nss.len() == 1 {
            nss.iter().next().copied().unwrap_or("")
        } else {
            ""
        };
        let sel = format!("{LABEL_MANAGED_BY}=claw");
        let query = format!("?labelSelector={}", enc(&sel));
        let list = match self.list(&res, list_ns, &nss, &query, None).await {
            Ok(v) => v,
            Err(e) => {
                let unreachable = matches!(e, ApiError::Other(_)) || e.code() == 401;
                out.diagnostics
                    .push((api_diag(first, &format!("listing {kind}"), &e), unreachable));
                return out;
            }
        };
        let mut by_id: HashMap<(String, String), serde_json::Value> = HashMap::new();
        for o in list {
            let r = ref_of_obj(&o, &res);
            if req.find_orphans && owner_of(&o, &ctx.stack) == Owner::Stack {
                if let Some(addr) = address_of(&o) {
                    if !addresses.contains(addr.as_str()) {
                        let rtype = if addr.starts_with(&format!("{SECRET}.")) {
                            SECRET
                        } else {
                            MANIFEST
                        };
                        let live = to_live(rtype, &o, &res, ctx);
                        out.orphans.push(Orphan {
                            address: addr,
                            rtype: rtype.to_string(),
                            live,
                        });
                    }
                }
            }
            by_id.insert((r.namespace, r.name), o);
        }
        let mut missing: Vec<&(usize, ObjRef, bool)> = Vec::new();
        for m in members {
            let (i, r, is_prior) = m;
            match by_id.get(&(r.namespace.clone(), r.name.clone())) {
                Some(o) => {
                    out.lives
                        .push((*i, *is_prior, to_live(&req.items[*i].rtype, o, &res, ctx)))
                }
                None if !*is_prior => missing.push(m),
                None => {}
            }
        }
        if missing.is_empty() {
            return out;
        }
        let mut unlabelled: HashMap<(String, String), serde_json::Value> = HashMap::new();
        if missing.len() <= 2 {
            for (_, r, _) in &missing {
                match self.cluster.get_opt(&res.item(&r.namespace, &r.name)).await {
                    Ok(Some(o)) => {
                        unlabelled.insert((r.namespace.clone(), r.name.clone()), o);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let unreachable = matches!(e, ApiError::Other(_)) || e.code() == 401;
                        out.diagnostics.push((
                            api_diag(first, &format!("reading {}", r.display()), &e),
                            unreachable,
                        ))
                    }
                }
            }
        } else {
            let missing_ns: BTreeSet<&str> = missing
                .iter()
                .map(|(_, r, _)| r.namespace.as_str())
                .collect();
            let meta_ns = if res.namespaced && missing_ns.len() == 1 {
                missing_ns.iter().next().copied().unwrap_or("")
            } else {
                ""
            };
            let accept =
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
            match self
                .list(&res, meta_ns, &missing_ns, "", Some(accept))
                .await
            {
                Ok(items) => {
                    for o in items {
                        let r = ref_of_obj(&o, &res);
                        unlabelled.insert((r.namespace, r.name), o);
                    }
                }
                Err(e) => {
                    let unreachable = matches!(e, ApiError::Other(_)) || e.code() == 401;
                    out.diagnostics
                        .push((api_diag(first, &format!("listing {kind}"), &e), unreachable))
                }
            }
        }
        for (i, r, _) in missing {
            if let Some(o) = unlabelled.get(&(r.namespace.clone(), r.name.clone())) {
                let mut live = to_live(&req.items[*i].rtype, o, &res, ctx);
                if live.owner == Owner::Stack {
                    live.owner = Owner::Unmanaged;
                }
                out.lives.push((*i, false, live));
            }
        }
        out
    }
}

impl KubeProvider {
    /// One `(key, attrs)` instance per document of a `k8s_manifest`.
    fn expand_docs(
        &self,
        req: &InstanceRequest<'_>,
        inputs: &mut Vec<Input>,
    ) -> Result<Vec<Expanded>, Diagnostic> {
        let docs = self.manifest_docs(req, inputs)?;
        let mut vars: BTreeMap<String, Value> = req
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
        let default_ns = self.default_ns();
        let mut out: Vec<Expanded> = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            let d = manifest::substitute(d, &vars);
            let which = format!("document {}", i + 1);
            let Value::Map(mut doc) = d else {
                return Err(
                    Diagnostic::error(format!("{which} is not a mapping")).with_attr("file")
                );
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
                    .unwrap_or_else(|| default_ns.clone());
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

    fn prepare_attrs(&self, req: &InstanceRequest<'_>) -> Result<Attrs, Diagnostic> {
        let mut a = req.attrs.clone();
        match req.rtype {
            SECRET => {
                if !a.contains_key("name") {
                    let n = match req.key {
                        Some(k) => format!("{}-{}", req.name, k),
                        None => req.name.to_string(),
                    };
                    a.insert(
                        "name".into(),
                        Value::str(n.to_lowercase().replace('_', "-")),
                    );
                }
                a.entry("namespace".into())
                    .or_insert_with(|| Value::str(self.default_ns()));
                a.entry("type".into())
                    .or_insert_with(|| Value::str("Opaque"));
                if let Some(Value::Map(d)) = a.get_mut("data") {
                    for v in d.values_mut() {
                        if let Value::String(s) = v {
                            *v = req.ctx.secret(s);
                        }
                    }
                }
                Ok(a)
            }
            MANIFEST => {
                if !a.contains_key("apiVersion") {
                    // Not expanded (validate-only paths): nothing to prepare.
                    return Ok(a);
                }
                let own = req.ctx.ownership_labels(req.address);
                let md = a
                    .entry("metadata".into())
                    .or_insert_with(|| Value::Map(BTreeMap::new()));
                if let Value::Map(md) = md {
                    let labels = md
                        .entry("labels".into())
                        .or_insert_with(|| Value::Map(BTreeMap::new()));
                    if let Value::Map(l) = labels {
                        for (k, v) in &own {
                            if k != LABEL_ADDRESS {
                                l.insert(k.clone(), Value::str(v));
                            }
                        }
                    }
                    let ann = md
                        .entry("annotations".into())
                        .or_insert_with(|| Value::Map(BTreeMap::new()));
                    if let Value::Map(an) = ann {
                        an.insert(LABEL_ADDRESS.into(), Value::str(req.address));
                    }
                }
                let is_secret = attr_str(&a, "kind") == Some("Secret")
                    && attr_str(&a, "apiVersion") == Some("v1");
                if is_secret {
                    if let Some(Value::Map(sd)) = a.remove("stringData") {
                        let data = a
                            .entry("data".into())
                            .or_insert_with(|| Value::Map(BTreeMap::new()));
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
                Ok(a)
            }
            _ => Ok(a),
        }
    }

    fn implicit_edges(&self, items: &[DepItem]) -> Vec<Edge> {
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
                    .or_insert_with(|| Value::str(self.default_ns()));
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
}

#[async_trait::async_trait]
impl Provider for KubeProvider {
    fn validate(&self, req: ValidateRequest<'_>) -> ValidateResponse {
        let mut out = Vec::new();
        match req.rtype {
            MANIFEST => {
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
            }
            SECRET => {
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
            }
            _ => {}
        }
        ValidateResponse { diagnostics: out }
    }

    fn expand(&self, req: ExpandRequest<'_>) -> ExpandResponse {
        if req.rtype != MANIFEST {
            return ExpandResponse::default();
        }
        let mut inputs = Vec::new();
        let expanded = self.expand_docs(&req, &mut inputs);
        let (instances, diagnostics) = match expanded {
            Ok(instances) => (instances, Vec::new()),
            Err(d) => (Vec::new(), vec![d]),
        };
        ExpandResponse {
            instances,
            inputs,
            diagnostics,
        }
    }

    fn prepare(&self, req: PrepareRequest<'_>) -> PrepareResponse {
        self.prepare_attrs(&req).into()
    }

    fn implicit_deps(&self, req: ImplicitDepsRequest) -> ImplicitDepsResponse {
        ImplicitDepsResponse {
            edges: self.implicit_edges(&req.items),
            diagnostics: Vec::new(),
        }
    }

    async fn refresh(&self, req: RefreshRequest) -> RefreshResponse {
        let mut resp = RefreshResponse::default();
        // (apiVersion, kind) → [(item index, ref, is_prior_ref)]
        let mut groups: BTreeMap<(String, String), Vec<(usize, ObjRef, bool)>> = BTreeMap::new();
        for (i, it) in req.items.iter().enumerate() {
            resp.live.insert(it.address.clone(), None);
            let d = it.desired.as_ref().and_then(|a| ident(&it.rtype, a));
            let p = it.prior.as_ref().and_then(|p| ident(&it.rtype, &p.attrs));
            if let Some(d) = &d {
                groups
                    .entry((d.api_version.clone(), d.kind.clone()))
                    .or_default()
                    .push((i, d.clone(), false));
            }
            if let Some(p) = p {
                if d.as_ref() != Some(&p) {
                    groups
                        .entry((p.api_version.clone(), p.kind.clone()))
                        .or_default()
                        .push((i, p, true));
                }
            }
        }
        let addresses: BTreeSet<&str> = req.items.iter().map(|i| i.address.as_str()).collect();
        // Discovery once per group version, concurrently; then every kind's
        // lists concurrently (the requests are the same, the latency is not).
        let versions: BTreeSet<&str> = groups.keys().map(|(v, _)| v.as_str()).collect();
        let _ = futures::future::join_all(versions.iter().map(|v| self.cluster.resources(v))).await;
        let outs = futures::future::join_all(
            groups
                .iter()
                .map(|(key, members)| self.refresh_group(key, members, &req, &addresses)),
        )
        .await;
        let mut prior_live: BTreeMap<usize, LiveObject> = BTreeMap::new();
        let mut desired_live: BTreeMap<usize, LiveObject> = BTreeMap::new();
        let mut unreachable = false;
        for out in outs {
            for (i, is_prior, live) in out.lives {
                if is_prior {
                    if live.owner == Owner::Stack {
                        prior_live.insert(i, live);
                    }
                } else {
                    desired_live.insert(i, live);
                }
            }
            resp.orphans.extend(out.orphans);
            for (d, is_unreachable) in out.diagnostics {
                if is_unreachable {
                    if unreachable {
                        continue; // one error, not one per kind
                    }
                    unreachable = true;
                }
                resp.diagnostics.push(d);
            }
        }
        for (i, it) in req.items.iter().enumerate() {
            if let Some(l) = prior_live.remove(&i).or_else(|| desired_live.remove(&i)) {
                resp.live.insert(it.address.clone(), Some(l));
            }
        }
        resp.orphans.sort_by(|a, b| a.address.cmp(&b.address));
        resp
    }

    async fn diff(&self, req: DiffRequest) -> DiffResponse {
        let mut resp = DiffResponse::default();
        match req.rtype.as_str() {
            SECRET => {
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
                        manifest::diff_value(k, dv, req.live.attrs.get(k), &mut c);
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
                        if now.map(|n| n.contains_key(&key)).unwrap_or(false)
                            || key.starts_with("claw.dev/")
                        {
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
            }
            _ => {
                let prior = prior_fields(req.prior.as_ref());
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
                            resp.replace_note = Some("an immutable field changed; the object is deleted and created again".into());
                        } else if d.summary.contains("field manager")
                            || d.summary.contains("is invalid")
                        {
                            resp.diagnostics.push(d);
                        }
                    }
                }
                resp.changes = changes;
            }
        }
        resp
    }

    async fn apply(&self, req: ApplyRequest) -> ApplyResponse {
        self.apply_op(req).await.into()
    }

    async fn import(&self, req: ImportRequest) -> ImportResponse {
        self.import_object(req).await.into()
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![("kubernetes api requests".into(), self.cluster.requests())]
    }
}

impl KubeProvider {
    async fn apply_op(&self, req: ApplyRequest) -> Result<ApplyResponse, Diagnostic> {
        let ctx = &req.ctx;
        let address = req.address.as_str();
        match req.op {
            Op::Delete => {
                let attrs = req
                    .prior
                    .as_ref()
                    .map(|p| p.attrs.clone())
                    .or_else(|| req.live.as_ref().map(|l| l.attrs.clone()))
                    .unwrap_or_default();
                let Some(r) = ident(&req.rtype, &attrs) else {
                    return Err(Diagnostic::error(
                        "cannot tell which object to delete (no identity in state)",
                    )
                    .with_address(address));
                };
                let Some(res) = self
                    .cluster
                    .resolve(&r.api_version, &r.kind)
                    .await
                    .map_err(|e| api_diag(address, "discovery", &e))?
                else {
                    return Ok(ApplyResponse::default());
                };
                let path = res.item(&r.namespace, &r.name);
                let Some(live) = self
                    .cluster
                    .get_opt(&path)
                    .await
                    .map_err(|e| api_diag(address, &format!("reading {}", r.display()), &e))?
                else {
                    return Ok(ApplyResponse::default());
                };
                if owner_of(&live, &ctx.stack) != Owner::Stack {
                    return Err(Diagnostic::error(format!("{} does not carry this stack's labels; claw will not delete it", r.display()))
                        .with_address(address)
                        .with_hint(format!("remove it from the state with `claw state rm {address}`, or delete it yourself")));
                }
                let uid = live
                    .pointer("/metadata/uid")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
                let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
                                   "preconditions": {"uid": uid}});
                match self
                    .cluster
                    .call(
                        Method::DELETE,
                        &path,
                        Some((
                            "application/json",
                            serde_json::to_vec(&body).unwrap_or_default(),
                        )),
                        None,
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => return Ok(ApplyResponse::default()),
                    Err(e) => {
                        return Err(api_diag(address, &format!("deleting {}", r.display()), &e))
                    }
                }
                // Finalizers (a PVC in use, a namespace's contents, a CRD's
                // custom resources) keep an object until they are done: the
                // delete is complete when the object is gone.
                self.wait_gone(address, &res, &r, ctx).await?;
                Ok(ApplyResponse::default())
            }
            Op::Create | Op::Update => {
                let desired = req
                    .desired
                    .clone()
                    .ok_or_else(|| Diagnostic::error("nothing to apply").with_address(address))?;
                let r = ident(&req.rtype, &desired).ok_or_else(|| {
                    Diagnostic::error("the object has no apiVersion, kind or name")
                        .with_address(address)
                })?;
                let res = self.resolve_or_wait(address, &r, ctx).await?;
                if req.op == Op::Create {
                    if let Some(o) = self
                        .cluster
                        .get_opt(&res.item(&r.namespace, &r.name))
                        .await
                        .map_err(|e| api_diag(address, &format!("reading {}", r.display()), &e))?
                    {
                        match owner_of(&o, &ctx.stack) {
                            Owner::Stack => {}
                            Owner::OtherStack(s) => return Err(Diagnostic::error(format!(
                                "{} belongs to stack {s:?}",
                                r.display()
                            ))
                            .with_address(address)
                            .with_hint(
                                "rename one of them; claw never touches another stack's objects",
                            )),
                            _ => {
                                return Err(Diagnostic::error(format!(
                                    "{} already exists and is not managed by claw",
                                    r.display()
                                ))
                                .with_address(address)
                                .with_hint(format!("claw import {address} {}", r.key())))
                            }
                        }
                    }
                }
                let body = self.body(&req.rtype, address, &desired, ctx)?;
                let force = desired
                    .get("force_conflicts")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let prior = prior_fields(req.prior.as_ref());
                let out = self
                    .apply_policy(address, &res, &r, &body, false, force, &prior)
                    .await?;
                if let Some(mode) = attr_str(&desired, "wait") {
                    let timeout = attr_str(&desired, "wait_timeout")
                        .and_then(parse_duration)
                        .unwrap_or(Duration::from_secs(300));
                    self.wait_ready(address, &res, &r, mode, timeout, ctx)
                        .await?;
                }
                let fields: BTreeSet<FieldPath> = match req.rtype.as_str() {
                    SECRET => desired
                        .get("data")
                        .and_then(Value::as_map)
                        .map(|m| {
                            m.keys()
                                .map(|k| vec![Seg::Key("data".into()), Seg::Key(k.clone())])
                                .collect()
                        })
                        .unwrap_or_default(),
                    _ => manifest::field_set(&doc_of(&desired)),
                };
                let mut attrs = desired.clone();
                attrs.insert("id".into(), Value::str(r.key()));
                if let Some(uid) = out.pointer("/metadata/uid").and_then(|u| u.as_str()) {
                    attrs.insert("uid".into(), Value::str(uid));
                }
                let mut private = Attrs::new();
                private.insert(
                    "fields".into(),
                    Value::List(fields.iter().map(manifest::encode_path).collect()),
                );
                Ok(ApplyResponse {
                    state: Some(StateObject {
                        id: r.key(),
                        attrs,
                        private,
                    }),
                    diagnostics: vec![],
                })
            }
        }
    }

    async fn import_object(&self, req: ImportRequest) -> Result<StateObject, Diagnostic> {
        let address = req.address.as_str();
        // ID: `<apiVersion>/<Kind>/<namespace>/<name>` (k8s_secret: `<namespace>/<name>`).
        let parts: Vec<&str> = req.id.rsplitn(4, '/').collect();
        let r = match (req.rtype.as_str(), parts.as_slice()) {
            (SECRET, [name, ns, ..]) => ObjRef { api_version: "v1".into(), kind: "Secret".into(), namespace: ns.to_string(), name: name.to_string() },
            (_, [name, ns, kind, av]) => ObjRef { api_version: av.to_string(), kind: kind.to_string(), namespace: ns.to_string(), name: name.to_string() },
            _ => {
                return Err(Diagnostic::error(format!("import id {:?} is not <apiVersion>/<Kind>/<namespace>/<name>", req.id))
                    .with_address(address)
                    .with_hint("for example: apps/v1/Deployment/clawdbot/clawdbot-gateway (namespace empty for cluster-scoped kinds)"))
            }
        };
        let res = self
            .cluster
            .resolve(&r.api_version, &r.kind)
            .await
            .map_err(|e| api_diag(address, "discovery", &e))?
            .ok_or_else(|| {
                Diagnostic::error(format!(
                    "the server does not serve {} in {}",
                    r.kind, r.api_version
                ))
                .with_address(address)
            })?;
        let path = res.item(&r.namespace, &r.name);
        let obj = self
            .cluster
            .get_opt(&path)
            .await
            .map_err(|e| api_diag(address, &format!("reading {}", r.display()), &e))?
            .ok_or_else(|| {
                Diagnostic::error(format!("{} does not exist", r.display())).with_address(address)
            })?;
        if let Owner::OtherStack(s) = owner_of(&obj, &req.ctx.stack) {
            return Err(
                Diagnostic::error(format!("{} belongs to stack {s:?}", r.display()))
                    .with_address(address),
            );
        }
        let mut labels = serde_json::Map::new();
        let mut annotations = serde_json::Map::new();
        for (k, v) in req.ctx.ownership_labels(address) {
            if k == LABEL_ADDRESS {
                annotations.insert(k, json!(v));
            } else {
                labels.insert(k, json!(v));
            }
        }
        let patch = json!({"metadata": {"labels": labels, "annotations": annotations}});
        let out = self
            .cluster
            .call(
                Method::PATCH,
                &format!("{path}?fieldManager={FIELD_MANAGER}"),
                Some((
                    "application/merge-patch+json",
                    serde_json::to_vec(&patch).unwrap_or_default(),
                )),
                None,
            )
            .await
            .map_err(|e| api_diag(address, &format!("labelling {}", r.display()), &e))?;
        let live = to_live(&req.rtype, &out, &res, &req.ctx);
        // Adopting means taking over: the fields the configuration sets count
        // as claw's, so the first apply takes them from their old manager.
        let fields: BTreeSet<FieldPath> = match (&req.desired, req.rtype.as_str()) {
            (Some(d), SECRET) => d
                .get("data")
                .and_then(Value::as_map)
                .map(|m| {
                    m.keys()
                        .map(|k| vec![Seg::Key("data".into()), Seg::Key(k.clone())])
                        .collect()
                })
                .unwrap_or_default(),
            (Some(d), _) => manifest::field_set(&doc_of(d)),
            (None, _) => BTreeSet::new(),
        };
        let mut attrs = req.desired.clone().unwrap_or(live.attrs);
        attrs.insert("id".into(), Value::str(r.key()));
        let mut private = Attrs::new();
        private.insert(
            "fields".into(),
            Value::List(fields.iter().map(manifest::encode_path).collect()),
        );
        Ok(StateObject {
            id: r.key(),
            attrs,
            private,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::conflicts_in_message;

    #[test]
    fn conflicts_are_read_from_the_message_when_causes_are_missing() {
        assert_eq!(
            conflicts_in_message(
                r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas"#
            ),
            vec![("kubectl-edit".to_string(), ".spec.replicas".to_string())]
        );
        assert_eq!(
            conflicts_in_message("Apply failed with 2 conflicts: conflicts with \"helm\" using v1:\n- .data.a\n- .data.b"),
            vec![
                ("helm".to_string(), ".data.a".to_string()),
                ("helm".to_string(), ".data.b".to_string())
            ]
        );
        assert!(conflicts_in_message("the object has been modified").is_empty());
    }
}
