//! validate, prepare, implicit dependencies and diff: the dispatch to the
//! resource types and the comparison helpers they share (no IO, except
//! digesting a build context in `prepare`).

use crate::refresh::ATTR_ADDRESS;
use crate::util;
use crate::{docker_container, docker_image, docker_network, docker_volume};
use crate::{DockerProvider, CONTAINER, IMAGE, NETWORK, VOLUME};
use claw_provider::value::join_key as join_path;
use claw_provider::{
    AttrChange, Attrs, DepItem, Diagnostic, DiffRequest, DiffResponse, Edge, InstanceRequest, Map,
    PrepareResponse, Value, LABEL_ADDRESS,
};
use std::collections::{BTreeMap, BTreeSet};

/// Makes the diagnostic of a validation rule: `(attribute, message)`.
pub(crate) type Rule<'a> = dyn Fn(&str, String) -> Diagnostic + 'a;

pub fn validate(req: &InstanceRequest<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let a = req.attrs;
    let err = |attr: &str, msg: String| {
        Diagnostic::error(msg)
            .with_address(req.address)
            .with_attr(attr)
    };
    if let Some(n) = util::s(a, "name").filter(|_| req.rtype != IMAGE) {
        if !util::valid_name(n) {
            out.push(
                err("name", format!("`{n}` is not a valid Docker name")).with_hint(
                    "use letters, digits, `_`, `.` and `-`, starting with a letter or digit",
                ),
            );
        }
    }
    // Where Docker keeps a value in the open, a secret cannot go.
    if a.get("labels").is_some_and(Value::contains_secret) {
        out.push(
            err(
                "labels",
                "a secret cannot be a Docker label: labels are shown in clear by `docker inspect` and the API".into(),
            )
            .with_hint("pass it to the container as `env` instead"),
        );
    }
    if a.get("build")
        .and_then(|b| b.get_path("args"))
        .is_some_and(Value::contains_secret)
    {
        out.push(
            err(
                "build.args",
                "a secret cannot be a build argument: `docker history` shows build arguments in clear".into(),
            )
            .with_hint("give the secret to the container at run time with `env`"),
        );
    }
    match req.rtype {
        CONTAINER => docker_container::validate(a, &err, &mut out),
        IMAGE => docker_image::validate(a, &err, &mut out),
        _ => {}
    }
    out
}

/// Fills defaults (names from the stack and the resource name, a
/// container's running state) and digests build contexts.
pub fn prepare(req: &InstanceRequest<'_>) -> Result<PrepareResponse, Diagnostic> {
    let mut a = req.attrs.clone();
    let mut inputs = Vec::new();
    match req.rtype {
        CONTAINER | NETWORK | VOLUME => {
            if matches!(a.get("name"), None | Some(Value::Null)) {
                a.insert(
                    "name".into(),
                    Value::String(util::default_name(&req.ctx.stack, req.name, req.key)),
                );
            }
        }
        _ => {}
    }
    match req.rtype {
        CONTAINER => docker_container::prepare(&mut a),
        IMAGE => docker_image::prepare(req, &mut a, &mut inputs)?,
        _ => {}
    }
    Ok(PrepareResponse {
        attrs: a,
        inputs,
        diagnostics: Vec::new(),
    })
}

/// Containers after the images, networks and volumes they name.
pub fn implicit_deps(items: &[DepItem]) -> Vec<Edge> {
    let mut images = BTreeMap::new();
    let mut networks = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    for DepItem {
        address: addr,
        rtype,
        attrs,
    } in items
    {
        let Some(name) = util::s(attrs, "name") else {
            continue;
        };
        match rtype.as_str() {
            IMAGE => {
                images.insert(util::normalize_ref(name), addr.clone());
            }
            NETWORK => {
                networks.insert(name.to_string(), addr.clone());
            }
            VOLUME => {
                volumes.insert(name.to_string(), addr.clone());
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for DepItem {
        address: addr,
        rtype,
        attrs,
    } in items
    {
        if rtype != CONTAINER {
            continue;
        }
        if let Some(dep) = util::s(attrs, "image").and_then(|i| images.get(&util::normalize_ref(i)))
        {
            out.push(Edge::new(addr, dep));
        }
        for n in util::str_list(attrs.get("networks")).unwrap_or_default() {
            if let Some(dep) = networks.get(&n) {
                out.push(Edge::new(addr, dep));
            }
        }
        for m in attrs
            .get("mounts")
            .and_then(Value::as_list)
            .unwrap_or_default()
        {
            if m.get_path("type").and_then(Value::as_str) == Some("volume") {
                if let Some(dep) = m
                    .get_path("source")
                    .and_then(Value::as_str)
                    .and_then(|s| volumes.get(s))
                {
                    out.push(Edge::new(addr, dep));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Compares one attribute. `prior_had`: the attribute was configured when
/// last applied (so its removal from the config is a change).
pub(crate) fn cmp(
    out: &mut Vec<AttrChange>,
    path: &str,
    desired: Option<&Value>,
    live: Option<&Value>,
    prior_had: bool,
    replace: bool,
) {
    let live = live.filter(|v| !matches!(v, Value::Null));
    let change = match desired.filter(|v| !matches!(v, Value::Null)) {
        Some(d) => (Some(d) != live).then(|| AttrChange::new(path, live.cloned(), Some(d.clone()))),
        None => (prior_had && live.is_some_and(|v| !is_empty(v)))
            .then(|| AttrChange::new(path, live.cloned(), None)),
    };
    if let Some(mut c) = change {
        c.replace = replace;
        out.push(c);
    }
}

/// Compares two maps key by key, both ways (a key only live is a change when
/// the map is configured).
pub(crate) fn cmp_map(
    out: &mut Vec<AttrChange>,
    path: &str,
    desired: Option<&Value>,
    live: Option<&Value>,
    prior_had: bool,
    replace: bool,
) {
    let desired = desired.filter(|v| !matches!(v, Value::Null));
    if desired.is_none() && !prior_had {
        return;
    }
    let none = Map::new();
    let (Some(dm), lm) = (
        desired.map(|d| d.as_map()).unwrap_or(Some(&none)),
        live.and_then(Value::as_map),
    ) else {
        // Unknown or not a map: compare whole.
        return cmp(out, path, desired, live, prior_had, replace);
    };
    let empty = Map::new();
    let lm = lm.unwrap_or(&empty);
    let keys: BTreeSet<&String> = dm.keys().chain(lm.keys()).collect();
    for k in keys {
        let (d, l) = (dm.get(k), lm.get(k));
        if d != l {
            let mut c = AttrChange::new(join_path(path, k), l.cloned(), d.cloned());
            c.replace = replace;
            out.push(c);
        }
    }
}

pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

pub(crate) fn prior_has(prior: Option<&Attrs>, k: &str) -> bool {
    prior.is_some_and(|p| p.get(k).is_some_and(|v| !matches!(v, Value::Null)))
}

pub(crate) fn address_change(out: &mut Vec<AttrChange>, live: &Attrs, address: &str) {
    if let Some(old) = live.get(ATTR_ADDRESS) {
        out.push(
            AttrChange::new(
                join_path("labels", LABEL_ADDRESS),
                Some(old.clone()),
                Some(Value::str(address)),
            )
            .forcing_replace(),
        );
    }
}

pub fn diff(p: &DockerProvider, req: &DiffRequest) -> DiffResponse {
    let mut out = Vec::new();
    let note = match req.rtype.as_str() {
        CONTAINER => docker_container::diff(p, req, &mut out),
        IMAGE => docker_image::diff(req, &mut out),
        NETWORK => docker_network::diff(req, &mut out),
        VOLUME => docker_volume::diff(req, &mut out),
        _ => None,
    };
    let replacing = out.iter().any(|c| c.replace);
    DiffResponse {
        changes: out,
        replace_note: if replacing { note } else { None },
        diagnostics: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_provider::{Ctx, LiveObject, Owner};

    fn attrs(j: serde_json::Value) -> Attrs {
        match Value::from_json(&j) {
            Value::Map(m) => m,
            _ => panic!("object"),
        }
    }

    #[test]
    fn secrets_are_refused_where_docker_shows_them() {
        let ctx = Ctx::for_tests("s", "/base");
        let mut a = attrs(serde_json::json!({"image": "x:1", "labels": {"team": "a"}}));
        a.insert(
            "labels".into(),
            Value::Map(
                [("tok".to_string(), ctx.secret("hunter2"))]
                    .into_iter()
                    .collect(),
            ),
        );
        let req = InstanceRequest {
            address: "docker_container.x",
            rtype: CONTAINER,
            name: "x",
            key: None,
            attrs: &a,
            ctx: &ctx,
        };
        let d = validate(&req);
        assert!(
            d.iter().any(|d| d.attr.as_deref() == Some("labels")),
            "{d:?}"
        );
        let mut b = attrs(serde_json::json!({"name": "img:1", "build": {"context": "."}}));
        b.insert(
            "build".into(),
            Value::Map(
                [
                    ("context".to_string(), Value::str(".")),
                    (
                        "args".to_string(),
                        Value::Map(
                            [("T".to_string(), ctx.secret("hunter2"))]
                                .into_iter()
                                .collect(),
                        ),
                    ),
                ]
                .into_iter()
                .collect(),
            ),
        );
        let req = InstanceRequest {
            address: "docker_image.x",
            rtype: IMAGE,
            name: "x",
            key: None,
            attrs: &b,
            ctx: &ctx,
        };
        let d = validate(&req);
        assert!(
            d.iter().any(|d| d.attr.as_deref() == Some("build.args")),
            "{d:?}"
        );
    }

    fn run(
        desired: serde_json::Value,
        live: serde_json::Value,
        prior: Option<serde_json::Value>,
    ) -> DiffResponse {
        let p = DockerProvider::new(None);
        diff(
            &p,
            &DiffRequest {
                ctx: Ctx::for_tests("s", "/base"),
                address: "docker_container.x".into(),
                rtype: CONTAINER.into(),
                desired: attrs(desired),
                live: std::sync::Arc::new(LiveObject {
                    id: "c1".into(),
                    attrs: attrs(live),
                    fingerprint: String::new(),
                    owner: Owner::Stack,
                }),
                prior: prior.map(|p| {
                    std::sync::Arc::new(claw_provider::StateObject {
                        id: "c1".into(),
                        attrs: attrs(p),
                        private: Attrs::new(),
                    })
                }),
            },
        )
    }

    #[test]
    fn equivalent_spellings_are_no_change() {
        let r = run(
            serde_json::json!({
                "image": "x:1", "state": "running", "restart": "on-failure:0",
                "ports": ["8080:80/tcp", "127.0.0.1:9000:9000/udp"],
                "networks": ["b", "a"],
                "mounts": [{ "type": "bind", "source": "./data/../data", "target": "/d" }],
            }),
            serde_json::json!({
                "image": "x:1", "state": "running", "restart": "on-failure",
                "ports": ["127.0.0.1:9000:9000/udp", "8080:80"],
                "networks": ["a", "b"],
                "mounts": [{ "type": "bind", "source": "/base/data", "target": "/d", "read_only": false }],
            }),
            None,
        );
        assert!(r.changes.is_empty(), "{:?}", r.changes);
    }

    #[test]
    fn in_place_and_replacing_changes_are_told_apart() {
        let r = run(
            serde_json::json!({ "image": "x:1", "state": "running", "restart": "always", "networks": ["a"] }),
            serde_json::json!({ "image": "x:1", "state": "stopped", "restart": "no", "networks": ["bridge"] }),
            None,
        );
        assert!(r.changes.iter().all(|c| !c.replace), "{:?}", r.changes);
        let paths: Vec<&str> = r.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, vec!["networks", "restart", "state"]);
        assert!(r.replace_note.is_none());

        let r = run(
            serde_json::json!({ "image": "x:2", "env": { "A": "1" } }),
            serde_json::json!({ "image": "x:1", "env": { "A": "1", "B": "2" } }),
            Some(serde_json::json!({ "image": "x:1", "env": { "A": "1", "B": "2" } })),
        );
        assert!(r.changes.iter().all(|c| c.replace));
        let paths: Vec<&str> = r.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["image", "env.B"],
            "a removed env key is a change"
        );
        assert!(r.replace_note.unwrap().contains("recreates"));
    }

    #[test]
    fn a_removed_attribute_is_a_change_only_when_it_was_configured() {
        let live = serde_json::json!({ "image": "x:1", "command": ["sleep", "1"], "user": "1000" });
        let r = run(
            serde_json::json!({ "image": "x:1" }),
            live.clone(),
            Some(serde_json::json!({ "image": "x:1", "command": ["sleep", "1"] })),
        );
        assert_eq!(r.changes.len(), 1);
        assert_eq!(r.changes[0].path, "command");
        assert_eq!(r.changes[0].after, None);
        let r = run(serde_json::json!({ "image": "x:1" }), live, None);
        assert!(
            r.changes.is_empty(),
            "image defaults are not changes: {:?}",
            r.changes
        );
    }

    #[test]
    fn secrets_compare_by_hash_and_renamed_addresses_replace() {
        let ctx = Ctx::for_tests("s", "/base");
        let mut d = attrs(serde_json::json!({ "image": "x:1" }));
        let mut env = Map::new();
        env.insert("K".to_string(), ctx.secret("v1"));
        d.insert("env".into(), Value::Map(env.clone()));
        let mut l = d.clone();
        l.insert("_address".into(), Value::str("docker_container.old"));
        env.insert("K".to_string(), ctx.secret("v2"));
        l.insert("env".into(), Value::Map(env));
        let p = DockerProvider::new(None);
        let r = diff(
            &p,
            &DiffRequest {
                ctx,
                address: "docker_container.x".into(),
                rtype: CONTAINER.into(),
                desired: d,
                live: std::sync::Arc::new(LiveObject {
                    id: "c".into(),
                    attrs: l,
                    fingerprint: String::new(),
                    owner: Owner::Stack,
                }),
                prior: None,
            },
        );
        let paths: Vec<&str> = r.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, vec!["env.K", "labels[\"claw.dev/address\"]"]);
        assert!(!format!("{:?}", r.changes).contains("v1"));
    }

    /// A build context is an input of the plan: the folder as written and
    /// the same keyed digest that becomes the image's context-hash label.
    #[test]
    fn a_build_context_is_reported_as_an_input() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/Dockerfile"), "FROM scratch\n").unwrap();
        let ctx = Ctx::for_tests("t", dir.path());
        let a = attrs(serde_json::json!({ "name": "app", "build": { "context": "app" } }));
        let req = InstanceRequest {
            address: "docker_image.app",
            rtype: IMAGE,
            name: "app",
            key: None,
            attrs: &a,
            ctx: &ctx,
        };
        let resp = prepare(&req).unwrap();
        assert_eq!(resp.inputs.len(), 1);
        assert_eq!(resp.inputs[0].path, "app");
        assert!(resp.inputs[0].digest.starts_with("hmac-sha256:"));
        assert_eq!(
            resp.attrs["context_hash"],
            Value::String(resp.inputs[0].digest.clone())
        );
    }

    #[test]
    fn containers_depend_on_what_they_name() {
        let items = vec![
            DepItem {
                address: "docker_image.i".into(),
                rtype: IMAGE.into(),
                attrs: attrs(serde_json::json!({ "name": "app" })),
            },
            DepItem {
                address: "docker_network.n".into(),
                rtype: NETWORK.into(),
                attrs: attrs(serde_json::json!({ "name": "net" })),
            },
            DepItem {
                address: "docker_volume.v".into(),
                rtype: VOLUME.into(),
                attrs: attrs(serde_json::json!({ "name": "vol" })),
            },
            DepItem {
                address: "docker_container.c".into(),
                rtype: CONTAINER.into(),
                attrs: attrs(
                    serde_json::json!({ "image": "app:latest", "networks": ["net"], "mounts": [{ "type": "volume", "source": "vol", "target": "/v" }] }),
                ),
            },
        ];
        let deps = implicit_deps(&items);
        let to: Vec<&str> = deps.iter().map(|e| e.dependency.as_str()).collect();
        assert_eq!(
            to,
            vec!["docker_image.i", "docker_network.n", "docker_volume.v"]
        );
    }
}
