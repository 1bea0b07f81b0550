//! validate, prepare, implicit dependencies and diff (no IO, except hashing a
//! build context in `prepare`).

use crate::refresh::ATTR_ADDRESS;
use crate::util;
use crate::{DockerProvider, CONTAINER, IMAGE, NETWORK, VOLUME};
use claw_provider::value::join_key as join_path;
use claw_provider::{
    AttrChange, Attrs, DepItem, Diagnostic, DiffRequest, DiffResponse, Edge, Input,
    InstanceRequest, PrepareResponse, Value, LABEL_ADDRESS,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Container attributes Docker cannot change on an existing container.
const CONTAINER_REPLACE: &[&str] = &[
    "name",
    "image",
    "command",
    "entrypoint",
    "user",
    "working_dir",
    "hostname",
    "init",
    "stop_timeout",
];

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
    match req.rtype {
        CONTAINER => {
            if let Some(r) = util::s(a, "restart") {
                if let Err(e) = util::parse_restart(r) {
                    out.push(err("restart", e));
                }
            }
            if let Some(ports) = util::str_list(a.get("ports")) {
                for (i, p) in ports.iter().enumerate() {
                    if let Err(e) = util::parse_port(p) {
                        out.push(err(&format!("ports[{i}]"), e).with_hint(
                            "write ports as Docker does: \"8080:80\", \"127.0.0.1:9000:9000/udp\"",
                        ));
                    }
                }
            }
            for (i, m) in a
                .get("mounts")
                .and_then(Value::as_list)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if let Some(t) = m.get_path("target").and_then(Value::as_str) {
                    if !t.starts_with('/') {
                        out.push(err(
                            &format!("mounts[{i}].target"),
                            format!("mount target `{t}` must be an absolute path"),
                        ));
                    }
                }
            }
            if let Some(s) = util::s(a, "image") {
                if s.is_empty() {
                    out.push(err("image", "`image` must not be empty".into()));
                }
            }
        }
        IMAGE => {
            let build = a.get("build").is_some_and(|b| !matches!(b, Value::Null));
            let pull = a.get("pull").and_then(Value::as_bool) == Some(true);
            if build == pull {
                out.push(
                    err(
                        if build { "pull" } else { "build" },
                        "a docker_image needs exactly one of `build = { context = ... }` or `pull = true`".into(),
                    )
                    .with_hint("build it from a folder with `build`, or fetch it from its registry with `pull = true`"),
                );
            }
            if let Some(n) = util::s(a, "name") {
                if n.is_empty() || n.contains(char::is_whitespace) {
                    out.push(err(
                        "name",
                        format!("`{n}` is not an image reference (repo:tag)"),
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

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
    if req.rtype == CONTAINER {
        if !a.contains_key("state") {
            a.insert("state".into(), Value::str("running"));
        }
        if let Some(Value::Map(env)) = a.get_mut("env") {
            for v in env.values_mut() {
                if let Value::Int(_) | Value::Bool(_) | Value::Float(_) = v {
                    *v = Value::String(util::value_to_plain(v).unwrap_or_default());
                }
            }
        }
    }
    if req.rtype == IMAGE {
        if let Some(ctxdir) = a
            .get("build")
            .and_then(|b| b.get_path("context"))
            .and_then(Value::as_str)
        {
            let dir = req.ctx.base_dir.join(ctxdir);
            let hash = util::context_hash(&dir, req.ctx).map_err(|e| {
                Diagnostic::error(format!(
                    "cannot read the build context {}: {e}",
                    dir.display()
                ))
                .with_address(req.address)
                .with_attr("build.context")
                .with_hint(
                    "`build.context` is a folder relative to claw.toml holding the Dockerfile",
                )
            })?;
            let dockerfile = a
                .get("build")
                .and_then(|b| b.get_path("dockerfile"))
                .and_then(Value::as_str)
                .unwrap_or("Dockerfile");
            if !dir.join(dockerfile).is_file() {
                return Err(Diagnostic::error(format!(
                    "no Dockerfile `{dockerfile}` in the build context {}",
                    dir.display()
                ))
                .with_address(req.address)
                .with_attr("build.dockerfile")
                .with_hint("set `build.dockerfile` to the Dockerfile's path inside the context"));
            }
            inputs.push(Input {
                path: ctxdir.to_string(),
                digest: hash.clone(),
            });
            a.insert("context_hash".into(), Value::String(hash));
        }
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
fn cmp(
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
fn cmp_map(
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
    let none = BTreeMap::new();
    let (Some(dm), lm) = (
        desired.map(|d| d.as_map()).unwrap_or(Some(&none)),
        live.and_then(Value::as_map),
    ) else {
        // Unknown or not a map: compare whole.
        return cmp(out, path, desired, live, prior_had, replace);
    };
    let empty = BTreeMap::new();
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

fn is_empty(v: &Value) -> bool {
    match v {
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

fn prior_has(prior: Option<&Attrs>, k: &str) -> bool {
    prior.is_some_and(|p| p.get(k).is_some_and(|v| !matches!(v, Value::Null)))
}

/// Mounts in a canonical, ordered form (bind sources made absolute).
fn norm_mounts(v: Option<&Value>, base: &Path) -> Option<Value> {
    let list = v?.as_list()?;
    let mut out: Vec<Value> = Vec::new();
    for m in list {
        let kind = m.get_path("type").and_then(Value::as_str)?;
        let mut source = m.get_path("source").and_then(Value::as_str)?.to_string();
        if kind == "bind" {
            source = util::abs_path(base, &source);
        }
        let target = m.get_path("target").and_then(Value::as_str)?;
        let ro = m
            .get_path("read_only")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        out.push(crate::refresh::mount_value(kind, &source, target, ro));
    }
    out.sort_by_key(|m| {
        (
            m.get_path("target")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            m.get_path("source")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    });
    Some(Value::List(out))
}

fn norm_ports(v: Option<&Value>) -> Option<Value> {
    let list = util::str_list(v)?;
    let specs = util::parse_ports(&list).ok()?;
    Some(Value::List(
        specs.iter().map(|p| Value::String(p.canonical())).collect(),
    ))
}

fn norm_set(v: Option<&Value>) -> Option<Value> {
    let mut l = util::str_list(v)?;
    l.sort();
    l.dedup();
    Some(util::str_list_value(&l))
}

fn address_change(out: &mut Vec<AttrChange>, live: &Attrs, address: &str) {
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
    let d = &req.desired;
    let l = &req.live.attrs;
    let prior = req.prior.as_ref().map(|p| &p.attrs);
    let mut out = Vec::new();
    let mut note = None;
    match req.rtype.as_str() {
        CONTAINER => {
            for k in CONTAINER_REPLACE {
                cmp(&mut out, k, d.get(*k), l.get(*k), prior_has(prior, k), true);
            }
            cmp_map(
                &mut out,
                "env",
                d.get("env"),
                l.get("env"),
                prior_has(prior, "env"),
                true,
            );
            cmp_map(
                &mut out,
                "labels",
                d.get("labels"),
                l.get("labels"),
                prior_has(prior, "labels"),
                true,
            );
            let base = &req.ctx.base_dir;
            let dm = norm_mounts(d.get("mounts"), base).or_else(|| d.get("mounts").cloned());
            let lm = norm_mounts(l.get("mounts"), base).or_else(|| Some(Value::List(vec![])));
            cmp(
                &mut out,
                "mounts",
                dm.as_ref(),
                lm.as_ref(),
                prior_has(prior, "mounts"),
                true,
            );
            let dp = norm_ports(d.get("ports")).or_else(|| d.get("ports").cloned());
            let lp = norm_ports(l.get("ports")).or(Some(Value::List(vec![])));
            cmp(
                &mut out,
                "ports",
                dp.as_ref(),
                lp.as_ref(),
                prior_has(prior, "ports"),
                true,
            );
            // In place: networks (connect/disconnect), restart (update), state (start/stop).
            let dn = norm_set(d.get("networks")).or_else(|| d.get("networks").cloned());
            let configured_nets = dn
                .as_ref()
                .is_some_and(|v| v.as_list().is_none_or(|l| !l.is_empty()));
            if configured_nets {
                cmp(
                    &mut out,
                    "networks",
                    dn.as_ref(),
                    norm_set(l.get("networks")).as_ref(),
                    false,
                    false,
                );
            }
            let dr = d
                .get("restart")
                .and_then(Value::as_str)
                .map(|r| Value::String(util::canonical_restart(r)))
                .or_else(|| d.get("restart").cloned())
                .or_else(|| prior_has(prior, "restart").then(|| Value::str("no")));
            let lr = l
                .get("restart")
                .and_then(Value::as_str)
                .map(|r| Value::String(util::canonical_restart(r)))
                .or(Some(Value::str("no")));
            cmp(&mut out, "restart", dr.as_ref(), lr.as_ref(), false, false);
            cmp(
                &mut out,
                "state",
                d.get("state"),
                l.get("state"),
                false,
                false,
            );
            // The image behind the tag changed, or this run rebuilds it.
            let image_changed = out.iter().any(|c| c.path == "image");
            if let (false, Some(img)) = (image_changed, d.get("image").and_then(Value::as_str)) {
                let live_id = l.get("image_id").cloned();
                let k = util::normalize_ref(img);
                let know = p.images.lock().unwrap_or_else(|e| e.into_inner());
                let want = if img.starts_with("sha256:") {
                    Some(Value::str(img))
                } else if know.pending.contains(&k) {
                    Some(Value::Unknown)
                } else {
                    know.ids.get(&k).map(|i| Value::String(i.clone()))
                };
                if let (Some(w), Some(li)) = (want, live_id) {
                    if w != li {
                        out.push(AttrChange::new("image_id", Some(li), Some(w)).forcing_replace());
                    }
                }
            }
            address_change(&mut out, l, &req.address);
            note = Some(
                "recreates the container: its processes restart and files outside volumes are lost"
                    .to_string(),
            );
        }
        IMAGE => {
            cmp(&mut out, "name", d.get("name"), l.get("name"), false, true);
            for k in ["context_hash", "build", "pull"] {
                cmp(&mut out, k, d.get(k), l.get(k), prior_has(prior, k), false);
            }
            address_change(&mut out, l, &req.address);
        }
        NETWORK => {
            for k in ["name", "driver", "internal", "attachable"] {
                cmp(&mut out, k, d.get(k), l.get(k), false, true);
            }
            for k in ["labels", "options"] {
                cmp_map(&mut out, k, d.get(k), l.get(k), prior_has(prior, k), true);
            }
            address_change(&mut out, l, &req.address);
            note = Some("containers on the network are disconnected from it".to_string());
        }
        VOLUME => {
            for k in ["name", "driver"] {
                cmp(&mut out, k, d.get(k), l.get(k), false, true);
            }
            for k in ["labels", "driver_opts"] {
                cmp_map(&mut out, k, d.get(k), l.get(k), prior_has(prior, k), true);
            }
            address_change(&mut out, l, &req.address);
            note = Some("deletes the volume and the data in it".to_string());
        }
        _ => {}
    }
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
                live: LiveObject {
                    id: "c1".into(),
                    attrs: attrs(live),
                    fingerprint: String::new(),
                    owner: Owner::Stack,
                },
                prior: prior.map(|p| claw_provider::StateObject {
                    id: "c1".into(),
                    attrs: attrs(p),
                    private: Attrs::new(),
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
        let mut env = std::collections::BTreeMap::new();
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
                live: LiveObject {
                    id: "c".into(),
                    attrs: l,
                    fingerprint: String::new(),
                    owner: Owner::Stack,
                },
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
