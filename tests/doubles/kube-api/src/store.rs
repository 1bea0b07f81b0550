//! The object store: types, objects with their managed fields, writes
//! (create, update, patch, server-side apply) with server defaults and the
//! simulated controllers, deletes.

use crate::error::ApiError;
use crate::fields::{field_set, Path, Seg};
use crate::types::ResType;
use crate::{fields, types};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
pub(crate) struct Manager {
    pub(crate) manager: String,
    pub(crate) operation: &'static str,
    pub(crate) api_version: String,
    pub(crate) time: String,
    pub(crate) fields: BTreeSet<Path>,
}

#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) obj: Value,
    pub(crate) managers: Vec<Manager>,
}

#[derive(Default)]
pub(crate) struct Store {
    /// Refuse cluster-wide lists of namespaced kinds with 403, like a user
    /// whose RBAC is namespace-scoped.
    pub(crate) forbid_cluster_lists: bool,
    /// How long the simulated controllers take to roll out a changed
    /// Deployment/StatefulSet/DaemonSet or complete a Job (0: at once).
    pub(crate) rollout_delay: std::time::Duration,
    /// Workloads waiting for their controller: (kind key, (ns, name), when).
    pub(crate) pending_rollouts: Vec<(String, (String, String), std::time::Instant)>,
    /// How long a new CRD stays not Established (0: at once).
    pub(crate) crd_delay: std::time::Duration,
    /// CRDs waiting to become Established: (name, when).
    pub(crate) pending: Vec<(String, std::time::Instant)>,
    pub(crate) types: Vec<ResType>,
    /// `group/plural` → (namespace, name) → object.
    pub(crate) objects: BTreeMap<String, BTreeMap<(String, String), Stored>>,
    pub(crate) rv: u64,
}

pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

pub(crate) fn key(rt: &ResType) -> String {
    format!("{}/{}", rt.group, rt.plural)
}

pub(crate) enum WriteOp {
    Create(String),
    Update(String),
    Apply { manager: String, force: bool },
}

impl Store {
    pub(crate) fn new() -> Store {
        let mut st = Store {
            types: types::builtin(),
            ..Default::default()
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let rt = st.types[0].clone();
            let _ = st.write(
                &rt,
                "v1",
                "",
                ns,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                WriteOp::Create("kube-apiserver".into()),
                false,
            );
        }
        st
    }

    pub(crate) fn render(&self, rt: &ResType, s: &Stored, api_version: &str) -> Value {
        let mut o = s.obj.clone();
        o["apiVersion"] = json!(api_version);
        o["kind"] = json!(rt.kind);
        let mf: Vec<Value> = s
            .managers
            .iter()
            .map(|m| {
                json!({
                    "manager": m.manager, "operation": m.operation, "apiVersion": m.api_version,
                    "time": m.time, "fieldsType": "FieldsV1", "fieldsV1": fields::fields_v1(&m.fields),
                })
            })
            .collect();
        if let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            md.insert("managedFields".into(), Value::Array(mf));
        }
        o
    }

    pub(crate) fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .get("/namespaces")
            .map(|m| m.contains_key(&(String::new(), ns.to_string())))
            .unwrap_or(false)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write(
        &mut self,
        rt: &ResType,
        version: &str,
        ns: &str,
        name: &str,
        mut body: Value,
        op: WriteOp,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let api_version = rt.gv(version);
        if !body.is_object() {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "the body of the request was not an object",
            ));
        }
        // Identity: the path wins; a contradicting body is refused.
        let md = body
            .as_object_mut()
            .expect("object")
            .entry("metadata")
            .or_insert(json!({}));
        if !md.is_object() {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "metadata must be an object",
            ));
        }
        let body_ns = md
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        if rt.namespaced {
            if let Some(bns) = &body_ns {
                if bns != ns {
                    return Err(ApiError::new(400, "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request"));
                }
            }
            md["namespace"] = json!(ns);
        } else if let Some(m) = md.as_object_mut() {
            m.remove("namespace");
        }
        let body_name = md.get("name").and_then(Value::as_str).map(str::to_string);
        let name = match (name.is_empty(), body_name) {
            (true, Some(n)) => n,
            (true, None) => {
                if let Some(g) = md.get("generateName").and_then(Value::as_str) {
                    format!("{g}{}", &uuid::Uuid::new_v4().simple().to_string()[..5])
                } else {
                    return Err(ApiError {
                        details: json!({"kind": rt.kind, "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]}),
                        ..ApiError::new(422, "Invalid", format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", rt.kind_qualified()))
                    });
                }
            }
            (false, Some(n)) if n != name => {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ),
                ));
            }
            (false, _) => name.to_string(),
        };
        md["name"] = json!(name);
        if rt.namespaced && !self.namespace_exists(ns) {
            return Err(ApiError {
                details: json!({"name": ns, "kind": "namespaces"}),
                ..ApiError::new(404, "NotFound", format!("namespaces {ns:?} not found"))
            });
        }
        let k = key(rt);
        let id = (ns.to_string(), name.clone());
        let old = self.objects.get(&k).and_then(|m| m.get(&id)).cloned();
        if let (WriteOp::Create(_), Some(_)) = (&op, &old) {
            return Err(ApiError {
                details: json!({"name": name, "group": rt.group, "kind": rt.plural}),
                ..ApiError::new(
                    409,
                    "AlreadyExists",
                    format!("{} {:?} already exists", rt.qualified(), name),
                )
            });
        }
        if let (WriteOp::Update(_), Some(o)) = (&op, &old) {
            let want = body
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let have = o
                .obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !want.is_empty() && want != have {
                return Err(ApiError {
                    details: json!({"name": name, "group": rt.group, "kind": rt.plural}),
                    ..ApiError::new(409, "Conflict", format!(
                        "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
                        rt.qualified(), name))
                });
            }
        }
        let mut managers = old.as_ref().map(|o| o.managers.clone()).unwrap_or_default();
        let old_obj = old.as_ref().map(|o| o.obj.clone()).unwrap_or(json!({}));
        let stamp = now();

        // The new object, before server defaults.
        let mut new = match &op {
            WriteOp::Apply { manager, force } => {
                let applied = {
                    let mut a = body.clone();
                    if let Some(m) = a.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("managedFields");
                        m.remove("resourceVersion");
                    }
                    a
                };
                let fa = field_set(&applied);
                // Conflicts with other managers that own a field this apply sets to another value.
                let mut conflicts: Vec<(String, Path)> = Vec::new();
                for m in &managers {
                    if m.manager == *manager && m.operation == "Apply" {
                        continue;
                    }
                    for p in fa.intersection(&m.fields) {
                        if matches!(p.last(), Some(Seg::Item(_))) {
                            continue;
                        }
                        if fields::get(&old_obj, p) != fields::get(&applied, p) {
                            conflicts.push((m.manager.clone(), p.clone()));
                        }
                    }
                }
                if !conflicts.is_empty() && !force {
                    return Err(conflict_error(
                        rt,
                        &name,
                        &api_version,
                        &conflicts,
                        &managers,
                    ));
                }
                for (mname, p) in &conflicts {
                    for m in managers.iter_mut().filter(|m| &m.manager == mname) {
                        m.fields.remove(p);
                    }
                }
                let prev: BTreeSet<Path> = managers
                    .iter()
                    .find(|m| m.manager == *manager && m.operation == "Apply")
                    .map(|m| m.fields.clone())
                    .unwrap_or_default();
                let others: BTreeSet<Path> = managers
                    .iter()
                    .filter(|m| !(m.manager == *manager && m.operation == "Apply"))
                    .flat_map(|m| m.fields.iter().cloned())
                    .collect();
                let mut merged = old_obj.clone();
                for p in prev.difference(&fa) {
                    let owned_below = others.iter().any(|o| o.starts_with(p));
                    if !owned_below {
                        fields::remove(&mut merged, p);
                        // Maps left empty by the removal go too.
                        let mut up = p.clone();
                        while up.pop().is_some() && !up.is_empty() {
                            let empty = fields::get(&merged, &up)
                                .map(|v| v.as_object().map(|m| m.is_empty()).unwrap_or(false))
                                .unwrap_or(false);
                            if !empty || others.contains(&up) {
                                break;
                            }
                            fields::remove(&mut merged, &up);
                        }
                    }
                }
                fields::apply_merge(&mut merged, &applied);
                managers.retain(|m| !(m.manager == *manager && m.operation == "Apply"));
                managers.push(Manager {
                    manager: manager.clone(),
                    operation: "Apply",
                    api_version: api_version.clone(),
                    time: stamp.clone(),
                    fields: fa,
                });
                merged
            }
            WriteOp::Create(manager) | WriteOp::Update(manager) => {
                let mut b = body.clone();
                if let Some(m) = b.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                }
                let changed: BTreeSet<Path> = field_set(&b)
                    .into_iter()
                    .filter(|p| fields::get(&old_obj, p) != fields::get(&b, p))
                    .collect();
                if !changed.is_empty() {
                    for m in managers.iter_mut() {
                        m.fields.retain(|p| !changed.contains(p));
                    }
                    match managers
                        .iter_mut()
                        .find(|m| m.manager == *manager && m.operation == "Update")
                    {
                        Some(m) => {
                            m.fields.extend(changed);
                            m.time = stamp.clone();
                        }
                        None => managers.push(Manager {
                            manager: manager.clone(),
                            operation: "Update",
                            api_version: api_version.clone(),
                            time: stamp.clone(),
                            fields: changed,
                        }),
                    }
                }
                b
            }
        };

        // Server-owned metadata.
        let seq = self.rv + 1;
        {
            let nm = new
                .as_object_mut()
                .expect("object")
                .entry("metadata")
                .or_insert(json!({}));
            let nm = nm.as_object_mut().expect("metadata");
            nm.insert("name".into(), json!(name));
            if rt.namespaced {
                nm.insert("namespace".into(), json!(ns));
            }
            nm.remove("managedFields");
            for f in ["uid", "creationTimestamp", "generation"] {
                match old_obj.pointer(&format!("/metadata/{f}")) {
                    Some(v) => {
                        nm.insert(f.into(), v.clone());
                    }
                    None => {
                        nm.remove(f);
                    }
                }
            }
            if old.is_none() {
                nm.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
                nm.insert("creationTimestamp".into(), json!(stamp));
            }
        }
        if let Some(status) = old_obj.get("status") {
            new["status"] = status.clone();
        }
        // Allocated fields survive updates that omit them.
        if rt.kind == "Service" {
            for f in ["clusterIP", "clusterIPs"] {
                if new.pointer(&format!("/spec/{f}")).is_none() {
                    if let Some(v) = old_obj.pointer(&format!("/spec/{f}")) {
                        new["spec"][f] = v.clone();
                    }
                }
            }
        }
        types::apply_defaults(&rt.kind, &mut new, seq);
        if rt.kind == "Job" {
            // The job controller's selector and pod labels, set at creation.
            let uid = new.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
            if new.pointer("/spec/selector").is_none() {
                new["spec"]["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            }
            if let Some(t) = new
                .pointer_mut("/spec/template")
                .and_then(Value::as_object_mut)
            {
                let md = t.entry("metadata").or_insert(json!({}));
                if !md.get("labels").map(Value::is_object).unwrap_or(false) {
                    md["labels"] = json!({});
                }
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", uid.clone()),
                    ("batch.kubernetes.io/job-name", json!(name)),
                    ("controller-uid", uid.clone()),
                    ("job-name", json!(name)),
                ] {
                    md["labels"][k] = v;
                }
            }
        }
        let mut errs = types::validate(rt, &new);
        if rt.kind == "Job"
            && old.is_some()
            && old_obj.pointer("/spec/template") != new.pointer("/spec/template")
        {
            errs.push((
                "spec.template".into(),
                "Invalid value: field is immutable".into(),
            ));
        }
        if !errs.is_empty() {
            let causes: Vec<Value> = errs
                .iter()
                .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
                .collect();
            let msg = errs
                .iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ApiError {
                details: json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes}),
                ..ApiError::new(
                    422,
                    "Invalid",
                    format!("{} {:?} is invalid: {}", rt.kind_qualified(), name, msg),
                )
            });
        }
        let spec_of = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
                m.remove("apiVersion");
                m.remove("kind");
            }
            v
        };
        let generation = match old_obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
        {
            Some(g) if spec_of(&old_obj) != spec_of(&new) => g + 1,
            Some(g) => g,
            None => 1,
        };
        if new.get("spec").is_some() || rt.crd.is_some() {
            new["metadata"]["generation"] = json!(generation);
        } else if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("generation");
        }
        let workload = matches!(
            rt.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job"
        );
        let changed_spec = old.is_none()
            || old_obj.pointer("/metadata/generation") != new.pointer("/metadata/generation");
        let delayed = workload && !self.rollout_delay.is_zero() && changed_spec;
        if delayed {
            let g = new
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            new["status"] = if rt.kind == "Job" {
                json!({"active": 1})
            } else {
                json!({"observedGeneration": g, "replicas": 0, "updatedReplicas": 0,
                       "readyReplicas": 0, "availableReplicas": 0})
            };
        } else if !workload || self.rollout_delay.is_zero() {
            types::simulate_status(&rt.kind, &mut new);
        }
        // Drop ownership of fields that no longer exist.
        for m in managers.iter_mut() {
            m.fields.retain(|p| fields::get(&new, p).is_some());
        }
        managers.retain(|m| !m.fields.is_empty());

        let unchanged = old.as_ref().map(|o| {
            let mut a = o.obj.clone();
            let mut b = new.clone();
            for x in [&mut a, &mut b] {
                if let Some(m) = x.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                if let Some(m) = x.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
            }
            let fm = |ms: &Vec<Manager>| -> Vec<(String, &'static str, BTreeSet<Path>)> {
                ms.iter()
                    .map(|m| (m.manager.clone(), m.operation, m.fields.clone()))
                    .collect()
            };
            a == b && fm(&o.managers) == fm(&managers)
        });
        if unchanged == Some(true) {
            let o = old.expect("old");
            return Ok(self.render(rt, &o, &api_version));
        }
        if let Some(o) = &old {
            // Keep the times of managers whose fields did not change.
            for m in managers.iter_mut() {
                if let Some(om) = o
                    .managers
                    .iter()
                    .find(|x| x.manager == m.manager && x.operation == m.operation)
                {
                    if om.fields == m.fields {
                        m.time = om.time.clone();
                    }
                }
            }
        }
        let rv = if dry_run { self.rv } else { seq };
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        if let Some(m) = new.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
        let stored = Stored { obj: new, managers };
        let out = self.render(rt, &stored, &api_version);
        let mut stored = stored;
        let mut out = out;
        let delay_crd =
            rt.kind == "CustomResourceDefinition" && old.is_none() && !self.crd_delay.is_zero();
        if delay_crd {
            let conds = json!([
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "False", "reason": "Installing", "message": "the initial names have been accepted"}
            ]);
            stored.obj["status"]["conditions"] = conds.clone();
            out["status"]["conditions"] = conds;
        }
        if !dry_run {
            self.rv = seq;
            if delayed {
                self.pending_rollouts
                    .retain(|(pk, pid, _)| !(pk == &k && pid == &id));
                self.pending_rollouts.push((
                    k.clone(),
                    id.clone(),
                    std::time::Instant::now() + self.rollout_delay,
                ));
            }
            self.objects.entry(k).or_default().insert(id, stored);
            if delay_crd {
                self.pending
                    .push((name.clone(), std::time::Instant::now() + self.crd_delay));
            } else if rt.kind == "CustomResourceDefinition" {
                if let Some(t) = types::from_crd(&out) {
                    self.types
                        .retain(|x| !(x.group == t.group && x.kind == t.kind));
                    self.types.push(t);
                }
            }
        }
        Ok(out)
    }

    /// Establishes the CRDs whose delay has passed.
    pub(crate) fn establish_due(&mut self) {
        let now = std::time::Instant::now();
        let done: Vec<(String, (String, String))> = self
            .pending_rollouts
            .iter()
            .filter(|(_, _, t)| *t <= now)
            .map(|(k, id, _)| (k.clone(), id.clone()))
            .collect();
        self.pending_rollouts.retain(|(_, _, t)| *t > now);
        for (k, id) in done {
            let kind = self
                .types
                .iter()
                .find(|t| key(t) == k)
                .map(|t| t.kind.clone())
                .unwrap_or_default();
            self.rv += 1;
            let rv = self.rv;
            if let Some(s) = self.objects.get_mut(&k).and_then(|m| m.get_mut(&id)) {
                types::simulate_status(&kind, &mut s.obj);
                s.obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            }
        }
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, t)| *t <= now)
            .map(|(n, _)| n.clone())
            .collect();
        self.pending.retain(|(_, t)| *t > now);
        for name in due {
            let key = "apiextensions.k8s.io/customresourcedefinitions".to_string();
            self.rv += 1;
            let rv = self.rv;
            let Some(s) = self
                .objects
                .get_mut(&key)
                .and_then(|m| m.get_mut(&(String::new(), name.clone())))
            else {
                continue;
            };
            s.obj["status"]["conditions"] = json!([
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
            ]);
            s.obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let obj = s.obj.clone();
            if let Some(t) = types::from_crd(&obj) {
                self.types
                    .retain(|x| !(x.group == t.group && x.kind == t.kind));
                self.types.push(t);
            }
        }
    }

    pub(crate) fn delete(
        &mut self,
        rt: &ResType,
        ns: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let k = key(rt);
        let id = (ns.to_string(), name.to_string());
        let exists = self
            .objects
            .get(&k)
            .map(|m| m.contains_key(&id))
            .unwrap_or(false);
        if !exists {
            return Err(ApiError::not_found(rt, name));
        }
        if dry_run {
            let s = self.objects[&k][&id].clone();
            return Ok(self.render(rt, &s, &rt.gv(&rt.versions[0])));
        }
        let s = self
            .objects
            .get_mut(&k)
            .and_then(|m| m.remove(&id))
            .expect("exists");
        self.rv += 1;
        if rt.kind == "Namespace" {
            for (tk, objs) in self.objects.iter_mut() {
                if let Some(t) = self.types.iter().find(|t| &key(t) == tk) {
                    if t.namespaced {
                        objs.retain(|(ons, _), _| ons != name);
                    }
                }
            }
        }
        if rt.kind == "CustomResourceDefinition" {
            if let Some(t) = self
                .types
                .iter()
                .find(|t| t.crd.as_deref() == Some(name))
                .cloned()
            {
                self.objects.remove(&key(&t));
                self.types.retain(|x| x != &t);
            }
        }
        let _ = s;
        Ok(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": self.rv.to_string()}
        }))
    }
}

pub(crate) fn conflict_error(
    rt: &ResType,
    name: &str,
    api_version: &str,
    conflicts: &[(String, Path)],
    managers: &[Manager],
) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| {
            let av = managers
                .iter()
                .find(|x| &x.manager == m)
                .map(|x| x.api_version.clone())
                .unwrap_or_else(|| api_version.to_string());
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m:?} using {av}"), "field": fields::render(p)})
        })
        .collect();
    let message = if conflicts.len() == 1 {
        let (m, p) = &conflicts[0];
        let av = managers
            .iter()
            .find(|x| &x.manager == m)
            .map(|x| x.api_version.as_str())
            .unwrap_or(api_version);
        format!(
            "Apply failed with 1 conflict: conflict with {m:?} using {av}: {}",
            fields::render(p)
        )
    } else {
        let mut by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (m, p) in conflicts {
            by.entry(m.as_str()).or_default().push(fields::render(p));
        }
        let mut s = format!("Apply failed with {} conflicts: ", conflicts.len());
        let parts: Vec<String> = by
            .iter()
            .map(|(m, ps)| {
                let av = managers
                    .iter()
                    .find(|x| x.manager == *m)
                    .map(|x| x.api_version.as_str())
                    .unwrap_or(api_version);
                format!("conflicts with {m:?} using {av}:\n- {}", ps.join("\n- "))
            })
            .collect();
        s.push_str(&parts.join("\n"));
        s
    };
    ApiError {
        details: json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}),
        ..ApiError::new(409, "Conflict", message)
    }
}
