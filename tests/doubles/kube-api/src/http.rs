//! Routing: the request counter and log, discovery, and CRUD, lists (with
//! selectors) and patches of every kind, answered from the store.

use crate::error::{respond, ApiError};
use crate::store::{key, WriteOp};
use crate::types::ResType;
use crate::Shared;
use crate::{fields, selector};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) fn query_map(uri: &Uri) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(q) = uri.query() {
        for part in q.split('&') {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            out.insert(pct_decode(k), pct_decode(v));
        }
    }
    out
}

pub(crate) fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(h, 16) {
                    Ok(x) if h.len() == 2 => {
                        out.push(x);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn discovery_resources(types: &[ResType], group: &str, version: &str) -> Value {
    let mut res = Vec::new();
    for t in types
        .iter()
        .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
    {
        res.push(json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": t.short_names,
        }));
        res.push(json!({
            "name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced,
            "kind": t.kind, "verbs": ["get", "patch", "update"],
        }));
        if matches!(t.kind.as_str(), "Deployment" | "StatefulSet" | "ReplicaSet") {
            res.push(json!({
                "name": format!("{}/scale", t.plural), "singularName": "", "namespaced": t.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
    }
    json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": if group.is_empty() { version.to_string() } else { format!("{group}/{version}") },
        "resources": res,
    })
}

pub(crate) fn group_entry(types: &[ResType], group: &str) -> Value {
    let mut versions: Vec<String> = Vec::new();
    for t in types.iter().filter(|t| t.group == group) {
        for v in &t.versions {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
    }
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": gvs, "preferredVersion": gvs.first().cloned().unwrap_or(Value::Null)})
}

pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The double's own control endpoints (not counted): `GET /_double/requests`
    // returns the count so far, `DELETE /_double/requests` resets it.
    if uri.path() == "/_double/requests" {
        if method == Method::DELETE {
            shared.requests.store(0, Ordering::SeqCst);
            shared.log.lock().expect("log").clear();
        }
        let n = shared.requests.load(Ordering::SeqCst);
        return respond(200, json!({ "requests": n }));
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let want = shared.bearer.lock().expect("bearer").clone();
    if let Some(want) = want {
        let got = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if got != Some(want.as_str()) {
            shared
                .log
                .lock()
                .expect("log")
                .push(format!("{method} {} -> 401", uri.path()));
            return respond(
                401,
                ApiError::new(401, "Unauthorized", "Unauthorized").body(),
            );
        }
    }
    shared.log.lock().expect("log").push(format!(
        "{} {}",
        method,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    ));
    match route(&shared, &method, &uri, &headers, &body) {
        Ok((code, v)) => respond(code, v),
        Err(e) => respond(e.code, e.body()),
    }
}

pub(crate) fn route(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let segs: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(pct_decode)
        .collect();
    let q = query_map(uri);
    let mut st = shared.store.lock().expect("store");
    st.establish_due();
    let seg = |i: usize| segs.get(i).map(String::as_str);
    let get_only = || -> Result<(), ApiError> {
        if method != Method::GET {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
        Ok(())
    };
    // Discovery.
    match (seg(0), segs.len()) {
        (Some("version"), 1) => {
            get_only()?;
            return Ok((
                200,
                json!({
                    "major": "1", "minor": "33", "gitVersion": "v1.33.0-claw-double", "gitCommit": "0000000",
                    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
                    "compiler": "gc", "platform": "linux/amd64"
                }),
            ));
        }
        (Some("api"), 1) => {
            get_only()?;
            let addr = shared
                .addr
                .lock()
                .expect("addr")
                .map(|a| a.to_string())
                .unwrap_or_default();
            return Ok((
                200,
                json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]}),
            ));
        }
        (Some("api"), 2) => {
            get_only()?;
            if seg(1) != Some("v1") {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            return Ok((200, discovery_resources(&st.types, "", "v1")));
        }
        (Some("apis"), 1) => {
            get_only()?;
            let mut groups: Vec<String> = Vec::new();
            for t in st.types.iter().filter(|t| !t.group.is_empty()) {
                if !groups.contains(&t.group) {
                    groups.push(t.group.clone());
                }
            }
            let gs: Vec<Value> = groups.iter().map(|g| group_entry(&st.types, g)).collect();
            return Ok((
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs}),
            ));
        }
        (Some("apis"), 2) => {
            get_only()?;
            let g = seg(1).unwrap_or("");
            if !st.types.iter().any(|t| t.group == g) {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            let mut e = group_entry(&st.types, g);
            e["kind"] = json!("APIGroup");
            e["apiVersion"] = json!("v1");
            return Ok((200, e));
        }
        (Some("apis"), 3) => {
            get_only()?;
            let (g, v) = (seg(1).unwrap_or(""), seg(2).unwrap_or(""));
            if !st
                .types
                .iter()
                .any(|t| t.group == g && t.versions.iter().any(|x| x == v))
            {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            return Ok((200, discovery_resources(&st.types, g, v)));
        }
        _ => {}
    }
    // Resources: /api/v1/... or /apis/<g>/<v>/...
    let (group, version, rest): (&str, &str, &[String]) = match seg(0) {
        Some("api") if segs.len() > 2 => ("", seg(1).unwrap_or(""), &segs[2..]),
        Some("apis") if segs.len() > 3 => (seg(1).unwrap_or(""), seg(2).unwrap_or(""), &segs[3..]),
        _ => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ))
        }
    };
    let find = |plural: &str| {
        st.types
            .iter()
            .find(|t| {
                t.group == group && t.plural == plural && t.versions.iter().any(|v| v == version)
            })
            .cloned()
    };
    // namespaces/<ns>/<plural>[/<name>[/<sub>]] vs <plural>[/<name>[/<sub>]]
    let (rt, ns, name, sub) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && rest[2] != "status"
        && rest[2] != "finalize"
    {
        let rt = find(&rest[2]).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })?;
        if !rt.namespaced {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        (
            rt,
            rest[1].clone(),
            rest.get(3).cloned(),
            rest.get(4).cloned(),
        )
    } else {
        let rt = find(&rest[0]).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })?;
        (
            rt,
            String::new(),
            rest.get(1).cloned(),
            rest.get(2).cloned(),
        )
    };
    let ns_for_item = if rt.namespaced {
        ns.clone()
    } else {
        String::new()
    };
    if rt.namespaced && name.is_some() && ns.is_empty() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let scalable = matches!(
        rt.kind.as_str(),
        "Deployment" | "StatefulSet" | "ReplicaSet"
    );
    if let Some(s) = &sub {
        if s != "status" && !(s == "scale" && scalable) {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    }
    let api_version = rt.gv(version);
    let dry_run = q.get("dryRun").map(|v| v == "All").unwrap_or(false);
    if q.get("watch")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
    {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "watch is not supported by this server",
        ));
    }
    let manager_of = |default_ua: bool| -> String {
        if let Some(m) = q.get("fieldManager") {
            return m.clone();
        }
        let ua = headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        let m = ua.split('/').next().unwrap_or("unknown").to_string();
        if default_ua {
            m
        } else {
            "unknown".into()
        }
    };
    let parse_body = |ct: &str| -> Result<Value, ApiError> {
        if ct.contains("protobuf") || ct.contains("cbor") {
            return Err(ApiError::new(415, "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {ct}")));
        }
        if ct.contains("yaml") {
            serde_yaml_ng::from_slice::<Value>(body)
                .map_err(|e| ApiError::new(400, "BadRequest", format!("error decoding YAML: {e}")))
        } else {
            serde_json::from_slice::<Value>(body).map_err(|e| {
                ApiError::new(
                    400,
                    "BadRequest",
                    format!("couldn't get version/kind; json parse error: {e}"),
                )
            })
        }
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let id = (ns_for_item.clone(), name.clone().unwrap_or_default());
    let current = name
        .as_ref()
        .and_then(|_| st.objects.get(&key(&rt)).and_then(|m| m.get(&id)).cloned());

    // The scale subresource (kubectl scale): an autoscaling/v1 Scale view of
    // spec.replicas; a change is an Update of the object by the caller.
    if sub.as_deref() == Some("scale") {
        let n = name.clone().unwrap_or_default();
        let Some(cur) = current else {
            return Err(ApiError::not_found(&rt, &n));
        };
        let scale_of = |o: &Value| {
            json!({
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": n, "namespace": ns_for_item,
                    "resourceVersion": o.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)},
                "spec": {"replicas": o.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
                "status": {"replicas": o.pointer("/status/replicas").cloned().unwrap_or(json!(0))},
            })
        };
        let mut scale = scale_of(&cur.obj);
        match method.clone() {
            Method::GET => return Ok((200, scale)),
            Method::PUT => scale = parse_body(&content_type)?,
            Method::PATCH => {
                let patch = parse_body(&content_type)?;
                match content_type.split(';').next().unwrap_or("").trim() {
                    "application/json-patch+json" => fields::json_patch(&mut scale, &patch)
                        .map_err(|e| ApiError::new(422, "Invalid", e))?,
                    _ => fields::merge_patch(&mut scale, &patch),
                }
            }
            _ => {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                ))
            }
        }
        let mut obj = st.render(&rt, &cur, &api_version);
        obj["spec"]["replicas"] = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let out = st.write(
            &rt,
            version,
            &ns_for_item,
            &n,
            obj,
            WriteOp::Update(manager_of(true)),
            dry_run,
        )?;
        return Ok((200, scale_of(&out)));
    }

    match (method.clone(), name.as_ref()) {
        (Method::GET, None) if st.forbid_cluster_lists && rt.namespaced && ns.is_empty() => {
            Err(ApiError {
                details: json!({"group": rt.group, "kind": rt.plural}),
                ..ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} is forbidden: User \"double\" cannot list resource {:?} in API group {:?} at the cluster scope",
                        rt.qualified(),
                        rt.plural,
                        rt.group
                    ),
                )
            })
        }
        (Method::GET, None) => {
            let sel = q
                .get("labelSelector")
                .map(|s| selector::parse(s))
                .transpose()
                .map_err(|e| ApiError::new(400, "BadRequest", e))?;
            let fsel = q.get("fieldSelector").cloned();
            let meta_only = headers
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .map(|a| a.contains("as=PartialObjectMetadataList"))
                .unwrap_or(false);
            let mut items = Vec::new();
            if let Some(objs) = st.objects.get(&key(&rt)) {
                for ((ons, _), s) in objs {
                    if rt.namespaced && !ns.is_empty() && ons != &ns {
                        continue;
                    }
                    if let Some(sel) = &sel {
                        if !selector::matches(sel, &selector::labels_of(&s.obj)) {
                            continue;
                        }
                    }
                    if let Some(f) = &fsel {
                        if !selector::field_matches(f, &s.obj)
                            .map_err(|e| ApiError::new(400, "BadRequest", e))?
                        {
                            continue;
                        }
                    }
                    let mut o = st.render(&rt, s, &api_version);
                    if rt.crd.is_none() {
                        // As a real server: items of built-in lists carry no
                        // apiVersion/kind (custom resources keep theirs).
                        if let Some(m) = o.as_object_mut() {
                            m.remove("apiVersion");
                            m.remove("kind");
                        }
                    }
                    if meta_only {
                        o = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o["metadata"].clone()});
                    }
                    items.push(o);
                }
            }
            let (av, kind) = if meta_only {
                (
                    "meta.k8s.io/v1".to_string(),
                    "PartialObjectMetadataList".to_string(),
                )
            } else {
                (api_version.clone(), format!("{}List", rt.kind))
            };
            Ok((
                200,
                json!({"apiVersion": av, "kind": kind, "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
            ))
        }
        (Method::GET, Some(n)) => match current {
            Some(s) => Ok((200, st.render(&rt, &s, &api_version))),
            None => Err(ApiError::not_found(&rt, n)),
        },
        (Method::POST, None) => {
            if sub.is_some() {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                ));
            }
            let b = parse_body(&content_type)?;
            let out = st.write(
                &rt,
                version,
                &ns_for_item,
                "",
                b,
                WriteOp::Create(manager_of(true)),
                dry_run,
            )?;
            Ok((201, out))
        }
        (Method::PUT, Some(n)) => {
            let Some(cur) = current else {
                return Err(ApiError::not_found(&rt, n));
            };
            let mut b = parse_body(&content_type)?;
            if sub.is_some() {
                let mut whole = cur.obj.clone();
                whole["status"] = b.get("status").cloned().unwrap_or(Value::Null);
                let mut s = cur.clone();
                s.obj = whole;
                if !dry_run {
                    st.rv += 1;
                    s.obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                    st.objects
                        .entry(key(&rt))
                        .or_default()
                        .insert(id, s.clone());
                }
                return Ok((200, st.render(&rt, &s, &api_version)));
            }
            if let Some(m) = b.get_mut("metadata").and_then(Value::as_object_mut) {
                m.entry("name").or_insert(json!(n));
            }
            let out = st.write(
                &rt,
                version,
                &ns_for_item,
                n,
                b,
                WriteOp::Update(manager_of(true)),
                dry_run,
            )?;
            Ok((200, out))
        }
        (Method::PATCH, Some(n)) => {
            let ct = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            if ct == "application/apply-patch+yaml" {
                let Some(manager) = q.get("fieldManager").cloned() else {
                    return Err(ApiError::new(
                        400,
                        "BadRequest",
                        "PATCH /apply requires fieldManager to be set",
                    ));
                };
                let force = q.get("force").map(|v| v == "true").unwrap_or(false);
                let b = parse_body(&content_type)?;
                if let (Some(av), Some(k)) = (
                    b.get("apiVersion").and_then(Value::as_str),
                    b.get("kind").and_then(Value::as_str),
                ) {
                    if av != api_version || k != rt.kind {
                        return Err(ApiError::new(400, "BadRequest",
                            format!("the API version in the data ({av}) does not match the expected API version ({api_version})")));
                    }
                } else {
                    return Err(ApiError::new(
                        400,
                        "BadRequest",
                        "apiVersion and kind are required in an applied configuration",
                    ));
                }
                let out = st.write(
                    &rt,
                    version,
                    &ns_for_item,
                    n,
                    b,
                    WriteOp::Apply { manager, force },
                    dry_run,
                )?;
                return Ok((if current.is_some() { 200 } else { 201 }, out));
            }
            let Some(cur) = current else {
                return Err(ApiError::not_found(&rt, n));
            };
            let patch = parse_body(&content_type)?;
            let mut target = st.render(&rt, &cur, &api_version);
            match ct.as_str() {
                "application/merge-patch+json" => fields::merge_patch(&mut target, &patch),
                "application/strategic-merge-patch+json" => {
                    if rt.crd.is_some() {
                        return Err(ApiError::new(415, "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"));
                    }
                    fields::strategic_patch(&mut target, &patch)
                }
                "application/json-patch+json" => fields::json_patch(&mut target, &patch)
                    .map_err(|e| ApiError::new(422, "Invalid", e))?,
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format: {other}"),
                    ))
                }
            }
            if sub.is_some() {
                let mut s = cur.clone();
                s.obj["status"] = target.get("status").cloned().unwrap_or(Value::Null);
                if !dry_run {
                    st.rv += 1;
                    s.obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                    st.objects
                        .entry(key(&rt))
                        .or_default()
                        .insert(id, s.clone());
                }
                return Ok((200, st.render(&rt, &s, &api_version)));
            }
            if let Some(m) = target.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            let out = st.write(
                &rt,
                version,
                &ns_for_item,
                n,
                target,
                WriteOp::Update(manager_of(true)),
                dry_run,
            )?;
            Ok((200, out))
        }
        (Method::DELETE, Some(n)) => {
            let out = st.delete(&rt, &ns_for_item, n, dry_run)?;
            Ok((200, out))
        }
        (Method::DELETE, None) => {
            let sel = q
                .get("labelSelector")
                .map(|s| selector::parse(s))
                .transpose()
                .map_err(|e| ApiError::new(400, "BadRequest", e))?;
            let names: Vec<(String, String)> = st
                .objects
                .get(&key(&rt))
                .map(|objs| {
                    objs.iter()
                        .filter(|((ons, _), _)| !rt.namespaced || ns.is_empty() || ons == &ns)
                        .filter(|(_, s)| {
                            sel.as_ref()
                                .map(|r| selector::matches(r, &selector::labels_of(&s.obj)))
                                .unwrap_or(true)
                        })
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            let mut items = Vec::new();
            for (ons, n) in names {
                if let Some(s) = st
                    .objects
                    .get(&key(&rt))
                    .and_then(|m| m.get(&(ons.clone(), n.clone())))
                    .cloned()
                {
                    items.push(st.render(&rt, &s, &api_version));
                }
                st.delete(&rt, &ons, &n, dry_run)?;
            }
            Ok((
                200,
                json!({"apiVersion": api_version, "kind": format!("{}List", rt.kind), "metadata": {}, "items": items}),
            ))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    }
}
