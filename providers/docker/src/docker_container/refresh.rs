//! Refresh of containers: one list by label, inspects only for containers
//! whose id is not the one in state, and the live attributes in the shape of
//! the configuration.

use super::*;

pub(crate) fn summary_labels(c: &ContainerSummary) -> HashMap<String, String> {
    c.labels.clone().unwrap_or_default()
}

pub(crate) fn summary_name(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default()
}

pub(crate) fn summary_state(c: &ContainerSummary) -> &'static str {
    match c.state {
        Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING) => {
            "running"
        }
        Some(ContainerSummaryStateEnum::PAUSED) => "paused",
        _ => "stopped",
    }
}

pub(crate) fn summary_networks(c: &ContainerSummary) -> Vec<String> {
    let mut v: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}

pub(crate) fn container_fingerprint(
    id: &str,
    state: &str,
    image_id: &str,
    networks: &[String],
) -> String {
    fp(&[id, state, image_id, &networks.join(",")])
}

/// Live attributes from the list entry alone: the id is the one in state, so
/// everything Docker cannot change on an existing container is as applied.
pub(crate) fn container_from_summary(c: &ContainerSummary, prior: &Attrs) -> Attrs {
    let mut a = prior.clone();
    a.insert("name".into(), Value::String(summary_name(c)));
    a.insert("state".into(), Value::str(summary_state(c)));
    a.insert(
        "networks".into(),
        util::str_list_value(&summary_networks(c)),
    );
    a.insert(
        "image_id".into(),
        Value::String(c.image_id.clone().unwrap_or_default()),
    );
    a.insert("id".into(), Value::String(c.id.clone().unwrap_or_default()));
    a
}

/// Live attributes from an inspect, shaped like the configuration.
pub(crate) fn container_from_inspect(
    c: &ContainerInspectResponse,
    desired: Option<&Attrs>,
    prior: Option<&Attrs>,
    ctx: &Ctx,
) -> Attrs {
    let mut a = Attrs::new();
    let cfg = c.config.clone().unwrap_or_default();
    let hc = c.host_config.clone().unwrap_or_default();
    a.insert("id".into(), Value::String(c.id.clone().unwrap_or_default()));
    a.insert(
        "name".into(),
        Value::String(
            c.name
                .clone()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
        ),
    );
    a.insert(
        "image".into(),
        Value::String(cfg.image.clone().unwrap_or_default()),
    );
    a.insert(
        "image_id".into(),
        Value::String(c.image.clone().unwrap_or_default()),
    );
    if let Some(cmd) = &cfg.cmd {
        a.insert("command".into(), util::str_list_value(cmd));
    }
    if let Some(ep) = &cfg.entrypoint {
        a.insert("entrypoint".into(), util::str_list_value(ep));
    }
    // Env: only the keys claw configures (the image adds PATH and others).
    let want: BTreeSet<String> = [desired, prior]
        .iter()
        .flatten()
        .filter_map(|x| x.get("env").and_then(Value::as_map))
        .flat_map(|m| m.keys().cloned())
        .collect();
    if desired.is_some_and(|d| d.contains_key("env"))
        || prior.is_some_and(|p| p.contains_key("env"))
    {
        let desired_env = desired.and_then(|d| d.get("env")).and_then(Value::as_map);
        let mut env = Map::new();
        for kv in cfg.env.iter().flatten() {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            if !want.contains(k) {
                continue;
            }
            let secret = desired_env
                .and_then(|m| m.get(k))
                .is_some_and(|x| matches!(x, Value::Secret(_)))
                || prior
                    .and_then(|p| p.get("env"))
                    .and_then(Value::as_map)
                    .and_then(|m| m.get(k))
                    .is_some_and(|x| matches!(x, Value::Secret(_)));
            let val = if secret {
                ctx.secret(v)
            } else {
                Value::String(v.to_string())
            };
            env.insert(k.to_string(), val);
        }
        a.insert("env".into(), Value::Map(env));
    }
    // Labels: only the keys claw configures (the image adds its own).
    let want_labels: BTreeSet<String> = [desired, prior]
        .iter()
        .flatten()
        .filter_map(|x| x.get("labels").and_then(Value::as_map))
        .flat_map(|m| m.keys().cloned())
        .collect();
    let mut labels = user_labels(&cfg.labels.clone().unwrap_or_default());
    labels.retain(|k, _| want_labels.contains(k));
    a.insert("labels".into(), util::str_map_value(&labels));
    let mut mounts = Vec::new();
    for m in hc.mounts.iter().flatten() {
        let kind = match m.typ {
            Some(bollard::models::MountType::BIND) => "bind",
            Some(bollard::models::MountType::VOLUME) => "volume",
            _ => continue,
        };
        mounts.push(mount_value(
            kind,
            m.source.as_deref().unwrap_or_default(),
            m.target.as_deref().unwrap_or_default(),
            m.read_only.unwrap_or(false),
        ));
    }
    for b in hc.binds.iter().flatten() {
        let parts: Vec<&str> = b.split(':').collect();
        if parts.len() >= 2 {
            let kind = if parts[0].starts_with('/') {
                "bind"
            } else {
                "volume"
            };
            let ro = parts
                .get(2)
                .is_some_and(|o| o.split(',').any(|x| x == "ro"));
            mounts.push(mount_value(kind, parts[0], parts[1], ro));
        }
    }
    a.insert("mounts".into(), Value::List(mounts));
    let ports = hc
        .port_bindings
        .as_ref()
        .map(util::ports_from_bindings)
        .unwrap_or_default();
    a.insert(
        "ports".into(),
        Value::List(ports.iter().map(|p| Value::String(p.canonical())).collect()),
    );
    let mut nets: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    nets.sort();
    a.insert("networks".into(), util::str_list_value(&nets));
    a.insert(
        "restart".into(),
        Value::String(util::restart_string(hc.restart_policy.as_ref())),
    );
    let state = c.state.clone().unwrap_or_default();
    let st = if state.paused == Some(true) {
        "paused"
    } else if state.running == Some(true) || state.restarting == Some(true) {
        "running"
    } else {
        "stopped"
    };
    a.insert("state".into(), Value::str(st));
    if let Some(u) = cfg.user.as_ref().filter(|u| !u.is_empty()) {
        a.insert("user".into(), Value::String(u.clone()));
    }
    if let Some(w) = cfg.working_dir.as_ref().filter(|w| !w.is_empty()) {
        a.insert("working_dir".into(), Value::String(w.clone()));
    }
    if let Some(h) = cfg.hostname.as_ref() {
        a.insert("hostname".into(), Value::String(h.clone()));
    }
    a.insert("init".into(), Value::Bool(hc.init.unwrap_or(false)));
    if let Some(t) = cfg.stop_timeout {
        a.insert("stop_timeout".into(), Value::Int(t));
    }
    super::sandbox::from_inspect(&hc, &cfg, &mut a);
    a
}

pub(crate) fn mount_value(kind: &str, source: &str, target: &str, read_only: bool) -> Value {
    let mut m = Map::new();
    m.insert("type".to_string(), Value::str(kind));
    m.insert("source".to_string(), Value::str(source));
    m.insert("target".to_string(), Value::str(target));
    m.insert("read_only".to_string(), Value::Bool(read_only));
    Value::Map(m)
}

pub(crate) async fn list_containers(
    p: &DockerProvider,
    docker: &Docker,
    filters: HashMap<String, Vec<String>>,
) -> Result<Vec<ContainerSummary>, Diagnostic> {
    p.client.count(1);
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| api_error("list containers", &e))
}

pub(crate) async fn refresh(
    p: &DockerProvider,
    docker: &Docker,
    ctx: &Ctx,
    items: &[&RefreshItem],
    addresses: &BTreeSet<&str>,
    find_orphans: bool,
) -> Result<Part, Diagnostic> {
    let mut part = Part::default();
    let listed = list_containers(p, docker, label_filter(ctx)).await?;
    let m = match_by_address(
        listed,
        summary_labels,
        |c| c.id.clone().unwrap_or_default(),
        items,
        addresses,
        CONTAINER,
        &mut part.diagnostics,
    );
    // Items not found by label: one list by name for all of them.
    let missing: Vec<(&RefreshItem, String)> = items
        .iter()
        .filter(|i| !m.found.contains_key(&i.address))
        .filter_map(|i| item_name(i).map(|n| (*i, n)))
        .collect();
    let mut by_name: HashMap<String, ContainerSummary> = HashMap::new();
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|(_, n)| format!("^/{}$", regex_escape(n)))
            .collect();
        for c in list_containers(p, docker, HashMap::from([("name".to_string(), names)])).await? {
            by_name.insert(summary_name(&c), c);
        }
    }
    // Decide, per item, the object and whether it needs an inspect.
    let mut chosen: Vec<(&RefreshItem, ContainerSummary, Owner, bool)> = Vec::new();
    for item in items {
        if let Some(c) = m.found.get(&item.address) {
            let trusted = !item.recheck
                && item
                    .prior
                    .as_ref()
                    .is_some_and(|pr| Some(&pr.id) == c.id.as_ref());
            chosen.push((item, c.clone(), Owner::Stack, !trusted));
        } else if let Some((_, name)) = missing.iter().find(|(i, _)| i.address == item.address) {
            if let Some(c) = by_name.get(name) {
                let id = c.id.clone().unwrap_or_default();
                let owner = if imported(item, &id) {
                    Owner::Stack
                } else {
                    owner_of(&summary_labels(c), ctx, CONTAINER)
                };
                let trusted = imported(item, &id);
                chosen.push((item, c.clone(), owner, !trusted));
            }
        }
    }
    // Inspect the untrusted ones concurrently (only those we own: the others
    // are reported by name and id only, and never touched).
    let to_inspect: Vec<String> = chosen
        .iter()
        .filter(|(_, _, o, need)| *need && *o == Owner::Stack)
        .filter_map(|(_, c, _, _)| c.id.clone())
        .collect();
    let inspected: HashMap<String, ContainerInspectResponse> = futures::stream::iter(to_inspect)
        .map(|id| async move {
            p.client.count(1);
            let r = docker.inspect_container(&id, None).await;
            (id, r)
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .filter_map(|(id, r)| match r {
            Ok(i) => Some((id, i)),
            Err(e) if crate::client::is_not_found(&e) => None,
            Err(e) => {
                part.diagnostics
                    .push(api_error(&format!("inspect container {id}"), &e));
                None
            }
        })
        .collect();
    for (item, c, owner, need) in chosen {
        let id = c.id.clone().unwrap_or_default();
        let labels = summary_labels(&c);
        let mut attrs = if owner != Owner::Stack {
            let mut a = Attrs::new();
            a.insert("id".into(), Value::String(id.clone()));
            a.insert("name".into(), Value::String(summary_name(&c)));
            a
        } else if need {
            match inspected.get(&id) {
                Some(i) => container_from_inspect(
                    i,
                    item.desired.as_deref(),
                    item.prior.as_ref().map(|p| &p.attrs),
                    ctx,
                ),
                None => {
                    // Gone between the list and the inspect.
                    part.live.insert(item.address.clone(), None);
                    continue;
                }
            }
        } else {
            container_from_summary(
                &c,
                &item
                    .prior
                    .as_ref()
                    .map(|p| p.attrs.clone())
                    .unwrap_or_default(),
            )
        };
        if owner == Owner::Stack && !imported(item, &id) {
            let addr = labels.get(LABEL_ADDRESS).cloned().unwrap_or_default();
            if addr != item.address {
                attrs.insert(ATTR_ADDRESS.into(), Value::String(addr));
            }
        }
        let state = attrs
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let nets = util::str_list(attrs.get("networks")).unwrap_or_default();
        let image_id = c.image_id.clone().unwrap_or_default();
        part.live.insert(
            item.address.clone(),
            Some(LiveObject {
                id: id.clone(),
                fingerprint: container_fingerprint(&id, &state, &image_id, &nets),
                attrs,
                owner,
            }),
        );
    }
    // Objects adopted for an item by name are not orphans.
    let claimed: BTreeSet<String> = part.live.values().flatten().map(|l| l.id.clone()).collect();
    if find_orphans {
        for (addr, c) in m.orphans {
            let id = c.id.clone().unwrap_or_default();
            if claimed.contains(&id) {
                continue;
            }
            let mut attrs = container_from_summary(&c, &Attrs::new());
            attrs.insert(
                "labels".into(),
                util::str_map_value(&user_labels(&summary_labels(&c))),
            );
            let state = summary_state(&c);
            let nets = summary_networks(&c);
            part.orphans.push(Orphan {
                address: addr,
                rtype: CONTAINER.into(),
                live: LiveObject {
                    id: id.clone(),
                    fingerprint: container_fingerprint(
                        &id,
                        state,
                        &c.image_id.clone().unwrap_or_default(),
                        &nets,
                    ),
                    attrs,
                    owner: Owner::Stack,
                },
            });
        }
    }
    Ok(part)
}
