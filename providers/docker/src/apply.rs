//! apply (create / update / delete) and import, per resource type.

use crate::client::{api_error, is_not_found, status};
use crate::refresh::{container_from_inspect, owner_of};
use crate::util::{self, value_to_plain};
use crate::{DockerProvider, CONTAINER, IMAGE, LABEL_CONTEXT_HASH, NETWORK, VOLUME};
use bollard::models::{
    ContainerCreateBody, ContainerUpdateBody, EndpointSettings, HostConfig, Mount, MountType,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, RemoveContainerOptions,
    RemoveImageOptions, RemoveVolumeOptions, StopContainerOptions,
};
use bollard::Docker;
use claw_provider::{
    ApplyRequest, ApplyResponse, Attrs, Ctx, Diagnostic, ImportRequest, Op, Owner, StateObject,
    Value,
};
use futures::StreamExt;
use std::collections::HashMap;

fn state(id: &str, desired: &Attrs, private: Attrs) -> ApplyResponse {
    let mut attrs = desired.clone();
    attrs.insert("id".into(), Value::String(id.to_string()));
    attrs.remove(crate::refresh::ATTR_ADDRESS);
    ApplyResponse {
        state: Some(StateObject {
            id: id.to_string(),
            attrs,
            private,
        }),
        diagnostics: Vec::new(),
    }
}

fn labels(
    ctx: &Ctx,
    address: &str,
    desired: &Attrs,
) -> Result<HashMap<String, String>, Diagnostic> {
    let mut l: HashMap<String, String> = util::str_map_exposed(desired.get("labels"))
        .unwrap_or_default()
        .into_iter()
        .collect();
    if l.keys().any(|k| k.starts_with("claw.dev/")) {
        return Err(Diagnostic::error("labels under `claw.dev/` are claw's own")
            .with_attr("labels")
            .with_hint("choose another label prefix"));
    }
    l.extend(ctx.ownership_labels(address));
    Ok(l)
}

fn need<'a>(desired: &'a Option<Attrs>, op: &str) -> Result<&'a Attrs, Diagnostic> {
    desired
        .as_ref()
        .ok_or_else(|| Diagnostic::error(format!("internal: {op} without desired attributes")))
}

pub async fn apply(p: &DockerProvider, req: ApplyRequest) -> Result<ApplyResponse, Diagnostic> {
    let docker = p.client.docker().await?;
    match (req.rtype.as_str(), req.op) {
        (CONTAINER, Op::Create) => create_container(p, &docker, &req).await,
        (CONTAINER, Op::Update) => update_container(p, &docker, &req).await,
        (CONTAINER, Op::Delete) => delete_container(p, &docker, &req).await,
        (IMAGE, Op::Create | Op::Update) => build_or_pull(p, &docker, &req).await,
        (IMAGE, Op::Delete) => delete_image(p, &docker, &req).await,
        (NETWORK, Op::Create) => create_network(p, &docker, &req).await,
        (VOLUME, Op::Create) => create_volume(p, &docker, &req).await,
        (NETWORK | VOLUME, Op::Update) => {
            // Every network and volume attribute forces a replace; an update
            // only records the desired attributes (e.g. after an import).
            let d = need(&req.desired, "update")?;
            let prior = req.prior.clone().unwrap_or_default();
            let id = req.live.as_ref().map(|l| l.id.clone()).unwrap_or(prior.id);
            Ok(state(&id, d, prior.private))
        }
        (NETWORK, Op::Delete) => delete_network(p, &docker, &req).await,
        (VOLUME, Op::Delete) => delete_volume(p, &docker, &req).await,
        (other, _) => Err(Diagnostic::error(format!(
            "the docker provider has no resource type {other}"
        ))),
    }
}

/// The id of the object to change: the live one (checked for ownership at
/// refresh), else the one in state.
fn target_id(req: &ApplyRequest) -> Option<String> {
    req.live
        .as_ref()
        .map(|l| l.id.clone())
        .or_else(|| req.prior.as_ref().map(|p| p.id.clone()))
        .filter(|s| !s.is_empty())
}

fn refuse_unowned(req: &ApplyRequest) -> Result<(), Diagnostic> {
    if let Some(l) = &req.live {
        if matches!(l.owner, Owner::Unmanaged | Owner::OtherStack(_)) {
            return Err(Diagnostic::error(format!(
                "refusing to change {} ({}): it does not carry this stack's labels",
                req.address, l.id
            ))
            .with_hint(format!("claw import {} {}", req.address, l.id)));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- containers

async fn create_container(
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
    let body = ContainerCreateBody {
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
    }
    Ok(state(&id, d, Attrs::new()))
}

async fn update_container(
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
    if changed("restart") {
        let policy = util::parse_restart(util::s(d, "restart").unwrap_or("no"))
            .map_err(|e| Diagnostic::error(e).with_attr("restart"))?;
        p.client.count(1);
        docker
            .update_container(
                &id,
                ContainerUpdateBody {
                    restart_policy: Some(policy),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                api_error(
                    &format!("update the restart policy of container {name}"),
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
    }
    let private = req
        .prior
        .as_ref()
        .map(|p| p.private.clone())
        .unwrap_or_default();
    Ok(state(&id, d, private))
}

async fn stop(docker: &Docker, id: &str, d: &Attrs) -> Result<(), bollard::errors::Error> {
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

async fn delete_container(
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

// -------------------------------------------------------------------- images

async fn build_or_pull(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    refuse_unowned(req)?;
    let d = need(&req.desired, "build")?;
    let name = util::s(d, "name").unwrap_or_default().to_string();
    let progress = |msg: &str| req.ctx.progress.report(&req.address, msg);
    if let Some(build) = d.get("build").filter(|b| !matches!(b, Value::Null)) {
        let ctxdir = build
            .get_path("context")
            .and_then(Value::as_str)
            .unwrap_or(".");
        let dir = req.ctx.base_dir.join(ctxdir);
        let tar = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || util::tar_context(&dir)
        })
        .await
        .map_err(|e| Diagnostic::error(format!("packing the build context failed: {e}")))?
        .map_err(|e| {
            Diagnostic::error(format!(
                "cannot pack the build context {}: {e}",
                dir.display()
            ))
            .with_attr("build.context")
        })?;
        progress(&format!("sending build context ({} KiB)", tar.len() / 1024));
        let mut lbls = labels(&req.ctx, &req.address, &Attrs::new())?;
        if let Some(h) = util::s(d, "context_hash") {
            lbls.insert(LABEL_CONTEXT_HASH.into(), h.to_string());
        }
        let args: HashMap<String, String> = util::str_map_exposed(build.get_path("args"))
            .unwrap_or_default()
            .into_iter()
            .collect();
        let opts = BuildImageOptions {
            dockerfile: build
                .get_path("dockerfile")
                .and_then(Value::as_str)
                .unwrap_or("Dockerfile")
                .to_string(),
            t: Some(name.clone()),
            rm: true,
            forcerm: true,
            buildargs: (!args.is_empty()).then_some(args),
            labels: Some(lbls),
            target: build
                .get_path("target")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            ..Default::default()
        };
        p.client.count(1);
        let mut stream = docker.build_image(opts, None, Some(bollard::body_full(tar.into())));
        let mut last_lines: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error_detail.and_then(|e| e.message) {
                        return Err(build_failed(&name, &err, &last_lines));
                    }
                    if let Some(line) = info
                        .stream
                        .as_deref()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                    {
                        progress(line);
                        last_lines.push(line.to_string());
                        if last_lines.len() > 10 {
                            last_lines.remove(0);
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(build_failed(&name, &error, &last_lines))
                }
                Err(e) => return Err(api_error(&format!("build image {name}"), &e)),
            }
        }
    } else {
        let (repo, tag) = split_tag(&name);
        p.client.count(1);
        let mut stream = docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(repo.to_string()),
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.status {
                        progress(&format!("{}{}", info.id.map(|i| format!("{i}: ")).unwrap_or_default(), s));
                    }
                }
                Err(e) => {
                    return Err(api_error(&format!("pull image {name}"), &e).with_hint(
                        "check the image name and that the registry is reachable (`docker pull` with the same name)",
                    ))
                }
            }
        }
    }
    p.client.count(1);
    let img = docker
        .inspect_image(&name)
        .await
        .map_err(|e| api_error(&format!("inspect image {name}"), &e))?;
    let id = img.id.unwrap_or_default();
    progress(&format!("image {name} is {}", short(&id)));
    prune_old_builds(p, docker, req).await;
    Ok(state(&id, d, Attrs::new()))
}

fn short(id: &str) -> &str {
    let s = id.strip_prefix("sha256:").unwrap_or(id);
    &s[..s.len().min(12)]
}

fn build_failed(name: &str, err: &str, last: &[String]) -> Diagnostic {
    let mut d = Diagnostic::error(format!("building image {name} failed: {}", err.trim()));
    if !last.is_empty() {
        d = d.with_detail(last.join("\n"));
    }
    d.with_hint("fix the Dockerfile or the build context; `docker build` on the context shows the same error")
}

/// `repo:tag` → (`repo`, `tag`), with `latest` by default (a registry port is not a tag).
fn split_tag(name: &str) -> (&str, &str) {
    if let Some((repo, digest)) = name.split_once('@') {
        return (repo, digest);
    }
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    }
}

/// Removes earlier builds of this address that no tag points to any more
/// (dangling, labelled for this stack and address), when nothing uses them.
async fn prune_old_builds(p: &DockerProvider, docker: &Docker, req: &ApplyRequest) {
    let filters = HashMap::from([
        (
            "label".to_string(),
            vec![
                format!("{}={}", claw_provider::LABEL_STACK, req.ctx.stack),
                format!("{}={}", claw_provider::LABEL_ADDRESS, req.address),
            ],
        ),
        ("dangling".to_string(), vec!["true".to_string()]),
    ]);
    p.client.count(1);
    let Ok(old) = docker
        .list_images(Some(bollard::query_parameters::ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
    else {
        return;
    };
    for img in old {
        p.client.count(1);
        // In use by a container (replaced later in this run): left for the next build.
        let _ = docker
            .remove_image(&img.id, Some(RemoveImageOptions::default()), None)
            .await;
    }
}

async fn delete_image(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    refuse_unowned(req)?;
    let name = req
        .prior
        .as_ref()
        .and_then(|p| util::s(&p.attrs, "name").map(str::to_string))
        .or_else(|| {
            req.live
                .as_ref()
                .and_then(|l| util::s(&l.attrs, "name").map(str::to_string))
        })
        .or_else(|| target_id(req));
    let Some(mut name) = name else {
        return Ok(ApplyResponse::default());
    };
    // A built image whose tag now points to an image made by hand: remove
    // only claw's own image (by id), never the one behind the tag.
    let built = req.prior.as_ref().is_some_and(|p| {
        p.attrs
            .get("build")
            .is_some_and(|b| !matches!(b, Value::Null))
    });
    if built
        && req
            .live
            .as_ref()
            .is_some_and(|l| l.owner == Owner::NotApplicable)
    {
        match req
            .prior
            .as_ref()
            .map(|p| p.id.clone())
            .filter(|i| !i.is_empty())
        {
            Some(id) => name = id,
            None => return Ok(ApplyResponse::default()),
        }
    }
    p.client.count(1);
    let r = docker
        .remove_image(
            &name,
            Some(RemoveImageOptions {
                force: false,
                noprune: false,
                ..Default::default()
            }),
            None,
        )
        .await;
    if r.is_ok() || r.as_ref().is_err_and(is_not_found) {
        prune_old_builds(p, docker, req).await;
    }
    match r {
        Ok(_) => Ok(ApplyResponse::default()),
        Err(e) if is_not_found(&e) => Ok(ApplyResponse::default()),
        Err(e) if status(&e) == Some(409) && name.starts_with("sha256:") => Ok(ApplyResponse {
            state: None,
            diagnostics: vec![Diagnostic::warning(format!(
                "left image {name} in place: {}",
                api_error("remove it", &e).summary
            ))],
        }),
        Err(e) => Err(api_error(&format!("remove image {name}"), &e)),
    }
}

// ------------------------------------------------------- networks and volumes

/// A string map attribute as an engine option map; `None` when empty.
fn option_map(d: &Attrs, key: &str) -> Option<HashMap<String, String>> {
    let m: HashMap<String, String> = util::str_map_exposed(d.get(key))
        .unwrap_or_default()
        .into_iter()
        .collect();
    (!m.is_empty()).then_some(m)
}

async fn create_network(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    let d = need(&req.desired, "create")?;
    let name = util::s(d, "name").unwrap_or_default().to_string();
    p.client.count(1);
    let r = docker
        .create_network(NetworkCreateRequest {
            name: name.clone(),
            driver: util::s(d, "driver").map(str::to_string),
            internal: d.get("internal").and_then(Value::as_bool),
            attachable: d.get("attachable").and_then(Value::as_bool),
            labels: Some(labels(&req.ctx, &req.address, d)?),
            options: option_map(d, "options"),
            ..Default::default()
        })
        .await
        .map_err(|e| api_error(&format!("create network {name}"), &e))?;
    Ok(state(&r.id, d, Attrs::new()))
}

async fn delete_network(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    refuse_unowned(req)?;
    let Some(id) = target_id(req) else {
        return Ok(ApplyResponse::default());
    };
    p.client.count(1);
    match docker.remove_network(&id).await {
        Ok(()) => Ok(ApplyResponse::default()),
        Err(e) if is_not_found(&e) => Ok(ApplyResponse::default()),
        Err(e) => Err(api_error(&format!("remove network {id}"), &e)),
    }
}

async fn create_volume(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    let d = need(&req.desired, "create")?;
    let name = util::s(d, "name").unwrap_or_default().to_string();
    p.client.count(1);
    let v = docker
        .create_volume(VolumeCreateRequest {
            name: Some(name.clone()),
            driver: util::s(d, "driver").map(str::to_string),
            driver_opts: option_map(d, "driver_opts"),
            labels: Some(labels(&req.ctx, &req.address, d)?),
            ..Default::default()
        })
        .await
        .map_err(|e| api_error(&format!("create volume {name}"), &e))?;
    // Creating a volume whose name exists returns the existing one: refuse to
    // take over a volume that is not labelled for this object.
    if v.labels
        .get(claw_provider::LABEL_ADDRESS)
        .map(String::as_str)
        != Some(req.address.as_str())
    {
        return Err(Diagnostic::error(format!(
            "a volume named {name} already exists and is not this stack's"
        ))
        .with_hint(format!("claw import {} {name}", req.address)));
    }
    Ok(state(&v.name, d, Attrs::new()))
}

async fn delete_volume(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    refuse_unowned(req)?;
    let Some(name) = target_id(req) else {
        return Ok(ApplyResponse::default());
    };
    // Volumes are known by name only: check the labels right before removing.
    p.client.count(1);
    let v = match docker.inspect_volume(&name).await {
        Ok(v) => v,
        Err(e) if is_not_found(&e) => return Ok(ApplyResponse::default()),
        Err(e) => return Err(api_error(&format!("inspect volume {name}"), &e)),
    };
    let adopted = req
        .prior
        .as_ref()
        .is_some_and(|p| p.private.get("imported").and_then(Value::as_bool) == Some(true));
    if owner_of(&v.labels, &req.ctx, VOLUME) != Owner::Stack && !adopted {
        return Err(Diagnostic::error(format!(
            "refusing to remove volume {name}: it does not carry this stack's labels"
        ))
        .with_hint("it was re-created by hand; `claw state rm` the address to forget it"));
    }
    p.client.count(1);
    match docker
        .remove_volume(&name, Some(RemoveVolumeOptions { force: false }))
        .await
    {
        Ok(()) => Ok(ApplyResponse::default()),
        Err(e) if is_not_found(&e) => Ok(ApplyResponse::default()),
        Err(e) => Err(api_error(&format!("remove volume {name}"), &e)),
    }
}

// -------------------------------------------------------------------- import

/// Adopts an existing object. Docker cannot change the labels of an existing
/// container, network, volume or image: an object without this stack's
/// labels is recorded in the state by id with `private.imported = true`, and
/// from then on owned through the state (see docs/providers/docker.md).
pub async fn import(p: &DockerProvider, req: ImportRequest) -> Result<StateObject, Diagnostic> {
    let docker = p.client.docker().await?;
    let ctx = &req.ctx;
    let (id, labels, mut attrs, mut private) = match req.rtype.as_str() {
        CONTAINER => {
            p.client.count(1);
            let c = docker.inspect_container(&req.id, None).await.map_err(|e| {
                not_found_hint(
                    api_error(&format!("inspect container {}", req.id), &e),
                    &req,
                )
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
            (c.id.unwrap_or_default(), labels, attrs, Attrs::new())
        }
        NETWORK => {
            p.client.count(1);
            let n = docker.inspect_network(&req.id, None).await.map_err(|e| {
                not_found_hint(api_error(&format!("inspect network {}", req.id), &e), &req)
            })?;
            let labels = n.labels.clone().unwrap_or_default();
            let mut a = Attrs::new();
            a.insert(
                "name".into(),
                Value::String(n.name.clone().unwrap_or_default()),
            );
            a.insert(
                "driver".into(),
                Value::String(n.driver.clone().unwrap_or_default()),
            );
            a.insert("internal".into(), Value::Bool(n.internal.unwrap_or(false)));
            a.insert(
                "labels".into(),
                util::str_map_value(&util::user_labels(&labels)),
            );
            (n.id.unwrap_or_default(), labels, a, Attrs::new())
        }
        VOLUME => {
            p.client.count(1);
            let v = docker.inspect_volume(&req.id).await.map_err(|e| {
                not_found_hint(api_error(&format!("inspect volume {}", req.id), &e), &req)
            })?;
            let mut a = Attrs::new();
            a.insert("name".into(), Value::String(v.name.clone()));
            a.insert("driver".into(), Value::String(v.driver.clone()));
            a.insert(
                "labels".into(),
                util::str_map_value(&util::user_labels(&v.labels)),
            );
            let mut private = Attrs::new();
            private.insert(
                "created".into(),
                Value::String(
                    v.created_at
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                ),
            );
            (v.name.clone(), v.labels.clone(), a, private)
        }
        IMAGE => {
            p.client.count(1);
            let i = docker.inspect_image(&req.id).await.map_err(|e| {
                not_found_hint(api_error(&format!("inspect image {}", req.id), &e), &req)
            })?;
            let labels = i
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            let mut a = Attrs::new();
            let name = req
                .desired
                .as_ref()
                .and_then(|d| util::s(d, "name").map(str::to_string))
                .or_else(|| i.repo_tags.as_ref().and_then(|t| t.first().cloned()))
                .unwrap_or_else(|| req.id.clone());
            a.insert("name".into(), Value::String(name));
            if let Some(h) = labels.get(LABEL_CONTEXT_HASH) {
                a.insert("context_hash".into(), Value::String(h.clone()));
            }
            if let Some(d) = &req.desired {
                for k in ["build", "pull"] {
                    if let Some(v) = d.get(k) {
                        a.insert(k.into(), v.clone());
                    }
                }
            }
            (i.id.unwrap_or_default(), labels, a, Attrs::new())
        }
        other => {
            return Err(Diagnostic::error(format!(
                "the docker provider has no resource type {other}"
            )))
        }
    };
    match owner_of(&labels, ctx, &req.rtype) {
        Owner::Stack => {
            let addr = labels
                .get(claw_provider::LABEL_ADDRESS)
                .cloned()
                .unwrap_or_default();
            if addr != req.address {
                return Err(Diagnostic::error(format!(
                    "{} is labelled for {addr} in this stack",
                    req.id
                ))
                .with_hint(format!(
                    "import it as {addr}, or remove it and let claw create {}",
                    req.address
                )));
            }
        }
        Owner::OtherStack(s) => {
            return Err(Diagnostic::error(format!(
                "{} belongs to the claw stack `{s}`; claw never takes another stack's objects",
                req.id
            ))
            .with_hint(format!(
                "`claw destroy` it from stack `{s}`, or `claw state rm` it there first"
            )))
        }
        _ => {
            private.insert("imported".into(), Value::Bool(true));
        }
    }
    attrs.insert("id".into(), Value::String(id.clone()));
    Ok(StateObject { id, attrs, private })
}

fn not_found_hint(d: Diagnostic, req: &ImportRequest) -> Diagnostic {
    if d.summary.contains("No such") || d.summary.contains("not found") {
        d.with_hint(format!(
            "give the {}'s id or name as Docker shows it (`docker ps -a`, `docker network ls`, `docker volume ls`, `docker images`)",
            req.rtype.trim_start_matches("docker_")
        ))
    } else {
        d
    }
}
