//! `docker_container`: create (with networks and mounts), update in place
//! (restart policy, networks, running state), replace otherwise; refresh from
//! one list plus inspects of containers whose id changed.

use crate::apply::{labels, need, not_found_hint, refuse_unowned, state, target_id, Imported};
use crate::client::{api_error, is_not_found, status};
use crate::diff::{address_change, cmp, cmp_map, prior_has, Rule};
use crate::refresh::{
    fp, imported, item_name, label_filter, match_by_address, owner_of, regex_escape, Part,
    ATTR_ADDRESS,
};
use crate::util::{self, user_labels, value_to_plain};
use crate::{DockerProvider, CONTAINER};
use bollard::models::*;
use bollard::query_parameters::*;
use bollard::Docker;
use claw_provider::*;
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

mod refresh;
mod sandbox;

pub(crate) use refresh::{container_from_inspect, mount_value, refresh};

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

pub(crate) fn validate(a: &Attrs, err: &Rule<'_>, out: &mut Vec<Diagnostic>) {
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
    sandbox::validate(a, err, out);
}

/// Defaults: `state = "running"`; env values as strings.
pub(crate) fn prepare(a: &mut Attrs) {
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

/// The changes of a container; returns the replace note.
pub(crate) fn diff(
    p: &DockerProvider,
    req: &DiffRequest,
    out: &mut Vec<AttrChange>,
) -> Option<String> {
    let d = &req.desired;
    let l = &req.live.attrs;
    let prior = req.prior.as_ref().map(|p| &p.attrs);
    for k in CONTAINER_REPLACE {
        cmp(out, k, d.get(*k), l.get(*k), prior_has(prior, k), true);
    }
    cmp_map(
        out,
        "env",
        d.get("env"),
        l.get("env"),
        prior_has(prior, "env"),
        true,
    );
    cmp_map(
        out,
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
        out,
        "mounts",
        dm.as_ref(),
        lm.as_ref(),
        prior_has(prior, "mounts"),
        true,
    );
    let dp = norm_ports(d.get("ports")).or_else(|| d.get("ports").cloned());
    let lp = norm_ports(l.get("ports")).or(Some(Value::List(vec![])));
    cmp(
        out,
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
            out,
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
    cmp(out, "restart", dr.as_ref(), lr.as_ref(), false, false);
    cmp(out, "state", d.get("state"), l.get("state"), false, false);
    sandbox::diff(d, l, prior, out);
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
    address_change(out, l, &req.address);
    Some(
        "recreates the container: its processes restart and files outside volumes are lost"
            .to_string(),
    )
}

/// Mounts in a canonical, ordered form (bind sources made absolute).
pub(crate) fn norm_mounts(v: Option<&Value>, base: &Path) -> Option<Value> {
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
        out.push(mount_value(kind, &source, target, ro));
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

pub(crate) fn norm_ports(v: Option<&Value>) -> Option<Value> {
    let list = util::str_list(v)?;
    let specs = util::parse_ports(&list).ok()?;
    Some(Value::List(
        specs.iter().map(|p| Value::String(p.canonical())).collect(),
    ))
}

pub(crate) fn norm_set(v: Option<&Value>) -> Option<Value> {
    let mut l = util::str_list(v)?;
    l.sort();
    l.dedup();
    Some(util::str_list_value(&l))
}

pub(crate) async fn create(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    let d = need(&req.desired, "create")?;
    let name = util::s(d, "name").unwrap_or_default().to_string();
    let image = util::s(d, "image")
        .ok_or_else(|| Diagnostic::error("`image` is not known").with_attr("image"))?
        .to_string();
    let mut env = Vec::new();
    if let Some(m) = d.get("env").and_then(Value::as_map) {
        for (k, v) in m {
            let plain = value_to_plain(v).ok_or_else(|| {
                Diagnostic::error(format!("the value of env.{k} is not available"))
                    .with_attr(format!("env.{k}"))
                    .with_hint("a sensitive value must be readable when applying (set its environment variable or file)")
            })?;
            env.push(format!("{k}={plain}"));
        }
    }
    let mut mounts = Vec::new();
    for m in d.get("mounts").and_then(Value::as_list).unwrap_or_default() {
        let kind = m
            .get_path("type")
            .and_then(Value::as_str)
            .unwrap_or("volume");
        let mut source = m
            .get_path("source")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if kind == "bind" {
            source = util::abs_path(&req.ctx.base_dir, &source);
        }
        mounts.push(Mount {
            typ: Some(if kind == "bind" {
                MountType::BIND
            } else {
                MountType::VOLUME
            }),
            source: Some(source),
            target: m
                .get_path("target")
                .and_then(Value::as_str)
                .map(str::to_string),
            read_only: m.get_path("read_only").and_then(Value::as_bool),
            ..Default::default()
        });
    }
    let ports = util::parse_ports(&util::str_list(d.get("ports")).unwrap_or_default())
        .map_err(|e| Diagnostic::error(e).with_attr("ports"))?;
    let networks = util::str_list(d.get("networks")).unwrap_or_default();
    let restart = match util::s(d, "restart") {
        Some(r) => {
            Some(util::parse_restart(r).map_err(|e| Diagnostic::error(e).with_attr("restart"))?)
        }
        None => None,
    };
    let host_config = HostConfig {
        mounts: (!mounts.is_empty()).then_some(mounts),
        port_bindings: (!ports.is_empty()).then(|| util::port_bindings(&ports)),
        restart_policy: restart,
        network_mode: networks.first().cloned(),
        init: d.get("init").and_then(Value::as_bool),
        ..Default::default()
    };
    let mut body = ContainerCreateBody {
        image: Some(image.clone()),
        cmd: util::str_list(d.get("command")),
        entrypoint: util::str_list(d.get("entrypoint")),
        env: (!env.is_empty()).then_some(env),
        labels: Some(labels(&req.ctx, &req.address, d)?),
        user: util::s(d, "user").map(str::to_string),
        working_dir: util::s(d, "working_dir").map(str::to_string),
        hostname: util::s(d, "hostname").map(str::to_string),
        stop_timeout: d.get("stop_timeout").and_then(Value::as_int),
        exposed_ports: (!ports.is_empty()).then(|| {
            let mut k: Vec<String> = ports.iter().map(|p| p.key()).collect();
            k.dedup();
            k
        }),
        host_config: Some(host_config),
        networking_config: networks.first().map(|n| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(n.clone(), EndpointSettings::default())])),
        }),
        ..Default::default()
    };
    sandbox::create(d, &mut body)?;
    p.client.count(1);
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(|e| api_error(&format!("create container {name} from {image}"), &e))?;
    let id = created.id;
    for n in networks.iter().skip(1) {
        p.client.count(1);
        docker
            .connect_network(
                n,
                NetworkConnectRequest {
                    container: id.clone(),
                    endpoint_config: Some(EndpointSettings::default()),
                },
            )
            .await
            .map_err(|e| api_error(&format!("connect container {name} to network {n}"), &e))?;
    }
    if util::s(d, "state").unwrap_or("running") == "running" {
        p.client.count(1);
        docker
            .start_container(&id, None)
            .await
            .map_err(|e| api_error(&format!("start container {name}"), &e))?;
        if let Some(timeout) = sandbox::wait_for(d) {
            let waited =
                sandbox::wait_healthy(p, docker, &id, &name, timeout, &req.ctx, &req.address).await;
            if let Err(e) = waited {
                // Not recorded: removed, so that the next apply creates it again.
                p.client.count(1);
                let _ = docker
                    .remove_container(
                        &id,
                        Some(RemoveContainerOptions {
                            force: true,
                            ..Default::default()
                        }),
                    )
                    .await;
                return Err(e.with_detail(
                    "the container was removed again, so that the next apply creates it anew",
                ));
            }
        }
    }
    Ok(state(&id, d, Attrs::new()))
}

pub(crate) async fn update(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    refuse_unowned(req)?;
    let d = need(&req.desired, "update")?;
    let id = target_id(req).ok_or_else(|| Diagnostic::error("no container to update"))?;
    let live = req
        .live
        .as_ref()
        .map(|l| l.attrs.clone())
        .unwrap_or_default();
    let name = util::s(d, "name").unwrap_or(&id).to_string();
    let changed = |k: &str| {
        req.changes
            .iter()
            .any(|c| c.path == k || c.path.starts_with(&format!("{k}[")))
    };
    if changed("networks") {
        let want = util::set(&util::str_list(d.get("networks")).unwrap_or_default());
        let have = util::set(&util::str_list(live.get("networks")).unwrap_or_default());
        for n in want.difference(&have) {
            p.client.count(1);
            docker
                .connect_network(
                    n,
                    NetworkConnectRequest {
                        container: id.clone(),
                        endpoint_config: Some(EndpointSettings::default()),
                    },
                )
                .await
                .map_err(|e| api_error(&format!("connect container {name} to network {n}"), &e))?;
        }
        for n in have.difference(&want) {
            p.client.count(1);
            docker
                .disconnect_network(
                    n,
                    NetworkDisconnectRequest {
                        container: id.clone(),
                        force: Some(false),
                    },
                )
                .await
                .map_err(|e| {
                    api_error(&format!("disconnect container {name} from network {n}"), &e)
                })?;
        }
    }
    // Limits and the restart policy: one `docker update`.
    let limits = sandbox::IN_PLACE_LIMITS.iter().any(|k| changed(k));
    if limits || changed("restart") {
        let mut body = if limits {
            sandbox::limits(d)?
        } else {
            ContainerUpdateBody::default()
        };
        if changed("restart") {
            body.restart_policy = Some(
                util::parse_restart(util::s(d, "restart").unwrap_or("no"))
                    .map_err(|e| Diagnostic::error(e).with_attr("restart"))?,
            );
        }
        p.client.count(1);
        docker.update_container(&id, body).await.map_err(|e| {
            api_error(
                &format!("update the limits and restart policy of container {name}"),
                &e,
            )
        })?;
    }
    let want_state = util::s(d, "state").unwrap_or("running");
    let have_state = util::s(&live, "state").unwrap_or("");
    if want_state != have_state {
        p.client.count(1);
        let r = match (want_state, have_state) {
            ("running", "paused") => docker.unpause_container(&id).await,
            ("running", _) => docker.start_container(&id, None).await,
            (_, "paused") => {
                docker.unpause_container(&id).await.ok();
                p.client.count(1);
                stop(docker, &id, d).await
            }
            _ => stop(docker, &id, d).await,
        };
        // 304: already in the wanted state.
        match r {
            Ok(()) => {}
            Err(e) if status(&e) == Some(304) => {}
            Err(e) => {
                return Err(api_error(
                    &format!("change container {name} to {want_state}"),
                    &e,
                ))
            }
        }
        if let (Some(timeout), "running") = (sandbox::wait_for(d), want_state) {
            sandbox::wait_healthy(p, docker, &id, &name, timeout, &req.ctx, &req.address).await?;
        }
    }
    let private = req
        .prior
        .as_ref()
        .map(|p| p.private.clone())
        .unwrap_or_default();
    Ok(state(&id, d, private))
}

pub(crate) async fn stop(
    docker: &Docker,
    id: &str,
    d: &Attrs,
) -> Result<(), bollard::errors::Error> {
    docker
        .stop_container(
            id,
            Some(StopContainerOptions {
                t: d.get("stop_timeout")
                    .and_then(Value::as_int)
                    .map(|t| t as i32),
                ..Default::default()
            }),
        )
        .await
}

pub(crate) async fn delete(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    refuse_unowned(req)?;
    let Some(id) = target_id(req) else {
        return Ok(ApplyResponse::default());
    };
    // A graceful stop first only when asked for (`stop_timeout`); otherwise
    // the container is killed and removed in one call, like `docker rm -f`.
    let attrs = req
        .prior
        .as_ref()
        .map(|p| &p.attrs)
        .or(req.live.as_ref().map(|l| &l.attrs));
    if let Some(a) = attrs.filter(|a| a.get("stop_timeout").and_then(Value::as_int).is_some()) {
        if util::s(a, "state") != Some("stopped") {
            p.client.count(1);
            match stop(docker, &id, a).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => return Ok(ApplyResponse::default()),
                Err(e) if status(&e) == Some(304) => {}
                Err(e) => return Err(api_error(&format!("stop container {id}"), &e)),
            }
        }
    }
    p.client.count(1);
    match docker
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                v: false,
                link: false,
            }),
        )
        .await
    {
        Ok(()) => Ok(ApplyResponse::default()),
        Err(e) if is_not_found(&e) => Ok(ApplyResponse::default()),
        Err(e) if status(&e) == Some(409) && e.to_string().contains("already in progress") => {
            Ok(ApplyResponse::default())
        }
        Err(e) => Err(api_error(&format!("remove container {id}"), &e)),
    }
}

pub(crate) async fn import(
    p: &DockerProvider,
    docker: &Docker,
    req: &ImportRequest,
) -> Result<Imported, Diagnostic> {
    let ctx = &req.ctx;
    p.client.count(1);
    let c = docker.inspect_container(&req.id, None).await.map_err(|e| {
        not_found_hint(api_error(&format!("inspect container {}", req.id), &e), req)
    })?;
    let labels = c
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let mut attrs = container_from_inspect(&c, req.desired.as_ref(), None, ctx);
    // Keep only what the configuration sets (the rest are image or engine defaults).
    if let Some(d) = &req.desired {
        attrs.retain(|k, _| d.contains_key(k) || k == "id" || k == "name");
    }
    attrs.remove("image_id");
    Ok((c.id.unwrap_or_default(), labels, attrs, Attrs::new()))
}
