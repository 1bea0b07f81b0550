//! Refresh: one list per kind filtered by the stack label, one image list by
//! reference, one list by name per kind for configured objects not found by
//! label, and inspects only for containers whose id is not the one in state.

use crate::client::api_error;
use crate::util::{self, normalize_ref, user_labels};
use crate::{DockerProvider, CONTAINER, IMAGE, LABEL_CONTEXT_HASH, NETWORK, VOLUME};
use bollard::models::{ContainerInspectResponse, ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, ListNetworksOptions, ListVolumesOptions,
};
use bollard::Docker;
use claw_provider::{
    Attrs, Ctx, Diagnostic, LiveObject, Orphan, Owner, RefreshItem, RefreshRequest,
    RefreshResponse, Value, LABEL_ADDRESS, LABEL_MANAGED_BY, LABEL_STACK,
};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Live attribute holding the `claw.dev/address` label when it differs from
/// the item's address (a renamed resource): the diff turns it into a replace.
pub const ATTR_ADDRESS: &str = "_address";

fn label_filter(ctx: &Ctx) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_STACK}={}", ctx.stack)],
    )])
}

/// Whose object it is, from its labels.
pub fn owner_of(labels: &HashMap<String, String>, ctx: &Ctx, rtype: &str) -> Owner {
    // Labels inherited from a claw-built image (address `docker_image.…` on a
    // container) do not make an object claw's.
    let addr = labels.get(LABEL_ADDRESS).map(String::as_str).unwrap_or("");
    if !addr.is_empty() && rtype_of_address(addr) != Some(rtype) {
        return Owner::Unmanaged;
    }
    match (labels.get(LABEL_MANAGED_BY), labels.get(LABEL_STACK)) {
        (_, Some(s)) if *s == ctx.stack => Owner::Stack,
        (Some(m), Some(s)) if m == "claw" => Owner::OtherStack(s.clone()),
        _ => Owner::Unmanaged,
    }
}

/// The name an item has: configured, else the one recorded in state.
fn item_name(item: &RefreshItem) -> Option<String> {
    item.desired
        .as_ref()
        .and_then(|d| util::s(d, "name"))
        .or_else(|| item.prior.as_ref().and_then(|p| util::s(&p.attrs, "name")))
        .map(str::to_string)
}

fn imported(item: &RefreshItem, id: &str) -> bool {
    item.prior.as_ref().is_some_and(|p| {
        p.id == id && p.private.get("imported").and_then(Value::as_bool) == Some(true)
    })
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub async fn refresh(p: &DockerProvider, req: RefreshRequest) -> RefreshResponse {
    let mut resp = RefreshResponse::default();
    let mut by_kind: BTreeMap<&str, Vec<&RefreshItem>> = BTreeMap::new();
    for item in &req.items {
        match item.rtype.as_str() {
            CONTAINER | IMAGE | NETWORK | VOLUME => {
                by_kind.entry(kind_of(&item.rtype)).or_default().push(item)
            }
            other => resp.diagnostics.push(
                Diagnostic::error(format!("the docker provider has no resource type {other}"))
                    .with_address(&item.address),
            ),
        }
    }
    if req.items.is_empty() && !req.find_orphans {
        return resp;
    }
    let docker = match p.client.docker().await {
        Ok(d) => d,
        Err(e) => {
            resp.diagnostics.push(e);
            return resp;
        }
    };
    let addresses: BTreeSet<&str> = req.items.iter().map(|i| i.address.as_str()).collect();
    let empty = Vec::new();
    let want = |k: &str| req.find_orphans || by_kind.contains_key(k);
    let ctx = &req.ctx;
    let (c, i, n, v) = futures::join!(
        async {
            if want(CONTAINER) {
                refresh_containers(
                    p,
                    &docker,
                    ctx,
                    by_kind.get(CONTAINER).unwrap_or(&empty),
                    &addresses,
                    req.find_orphans,
                )
                .await
            } else {
                Ok(Default::default())
            }
        },
        refresh_images(
            p,
            &docker,
            ctx,
            by_kind.get(IMAGE).unwrap_or(&empty),
            by_kind.get(CONTAINER).unwrap_or(&empty),
            &addresses,
            req.find_orphans
        ),
        async {
            if want(NETWORK) {
                refresh_networks(
                    p,
                    &docker,
                    ctx,
                    by_kind.get(NETWORK).unwrap_or(&empty),
                    &addresses,
                    req.find_orphans,
                )
                .await
            } else {
                Ok(Default::default())
            }
        },
        async {
            if want(VOLUME) {
                refresh_volumes(
                    p,
                    &docker,
                    ctx,
                    by_kind.get(VOLUME).unwrap_or(&empty),
                    &addresses,
                    req.find_orphans,
                )
                .await
            } else {
                Ok(Default::default())
            }
        },
    );
    for part in [c, i, n, v] {
        match part {
            Ok(part) => {
                resp.live.extend(part.live);
                resp.orphans.extend(part.orphans);
                resp.diagnostics.extend(part.diagnostics);
            }
            Err(d) => resp.diagnostics.push(d),
        }
    }
    for item in &req.items {
        resp.live.entry(item.address.clone()).or_insert(None);
    }
    resp
}

fn kind_of(rtype: &str) -> &'static str {
    match rtype {
        CONTAINER => CONTAINER,
        IMAGE => IMAGE,
        NETWORK => NETWORK,
        _ => VOLUME,
    }
}

#[derive(Default)]
struct Part {
    live: BTreeMap<String, Option<LiveObject>>,
    orphans: Vec<Orphan>,
    diagnostics: Vec<Diagnostic>,
}

/// Matches listed objects (by their address label) to items; returns, per
/// item, the chosen object; the rest become orphans or duplicates.
struct Matched<T> {
    found: BTreeMap<String, T>,
    /// Objects labelled for the stack whose address matches no item.
    orphans: Vec<(String, T)>,
}

fn match_by_address<T: Clone>(
    objects: Vec<T>,
    labels: impl Fn(&T) -> HashMap<String, String>,
    id: impl Fn(&T) -> String,
    items: &[&RefreshItem],
    addresses: &BTreeSet<&str>,
    rtype: &str,
    diags: &mut Vec<Diagnostic>,
) -> Matched<T> {
    let mut by_addr: BTreeMap<String, Vec<T>> = BTreeMap::new();
    let mut orphans = Vec::new();
    for o in objects {
        let l = labels(&o);
        let addr = l.get(LABEL_ADDRESS).cloned().unwrap_or_default();
        let mine = items.iter().any(|i| i.address == addr);
        if mine {
            by_addr.entry(addr).or_default().push(o);
        } else if !addresses.contains(addr.as_str()) && rtype_of_address(&addr) == Some(rtype) {
            orphans.push((addr, o));
        }
        // Else: labelled with an address of another type. A container run by
        // hand from an image claw built inherits the image's labels: it is not
        // this stack's container, so it is neither matched nor an orphan.
    }
    let mut found = BTreeMap::new();
    for item in items {
        let Some(mut cands) = by_addr.remove(&item.address) else {
            continue;
        };
        let prior_id = item.prior.as_ref().map(|p| p.id.clone());
        let pos = cands
            .iter()
            .position(|c| Some(id(c)) == prior_id)
            .unwrap_or(0);
        let chosen = cands.remove(pos);
        for extra in cands {
            diags.push(
                Diagnostic::warning(format!(
                    "another {rtype} ({}) carries this address's labels; claw ignores it",
                    id(&extra)
                ))
                .with_address(&item.address)
                .with_hint("remove the duplicate by hand (`docker rm -f` / `docker network rm` / `docker volume rm`)"),
            );
        }
        found.insert(item.address.clone(), chosen);
    }
    Matched { found, orphans }
}

fn rtype_of_address(addr: &str) -> Option<&str> {
    addr.split_once('.').map(|(t, _)| t)
}

fn fp(parts: &[&str]) -> String {
    parts.join("|")
}

// ---------------------------------------------------------------- containers

fn summary_labels(c: &ContainerSummary) -> HashMap<String, String> {
    c.labels.clone().unwrap_or_default()
}

fn summary_name(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default()
}

fn summary_state(c: &ContainerSummary) -> &'static str {
    match c.state {
        Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING) => {
            "running"
        }
        Some(ContainerSummaryStateEnum::PAUSED) => "paused",
        _ => "stopped",
    }
}

fn summary_networks(c: &ContainerSummary) -> Vec<String> {
    let mut v: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn container_fingerprint(id: &str, state: &str, image_id: &str, networks: &[String]) -> String {
    fp(&[id, state, image_id, &networks.join(",")])
}

/// Live attributes from the list entry alone: the id is the one in state, so
/// everything Docker cannot change on an existing container is as applied.
fn container_from_summary(c: &ContainerSummary, prior: &Attrs) -> Attrs {
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
pub fn container_from_inspect(
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
        let mut env = BTreeMap::new();
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
    a
}

pub fn mount_value(kind: &str, source: &str, target: &str, read_only: bool) -> Value {
    let mut m = BTreeMap::new();
    m.insert("type".to_string(), Value::str(kind));
    m.insert("source".to_string(), Value::str(source));
    m.insert("target".to_string(), Value::str(target));
    m.insert("read_only".to_string(), Value::Bool(read_only));
    Value::Map(m)
}

async fn list_containers(
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

async fn refresh_containers(
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
                    item.desired.as_ref(),
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

// -------------------------------------------------------------------- images

async fn refresh_images(
    p: &DockerProvider,
    docker: &Docker,
    ctx: &Ctx,
    items: &[&RefreshItem],
    containers: &[&RefreshItem],
    addresses: &BTreeSet<&str>,
    find_orphans: bool,
) -> Result<Part, Diagnostic> {
    let mut part = Part::default();
    // Every reference this run cares about: image names and container images.
    let mut refs: BTreeSet<String> = items.iter().filter_map(|i| item_name(i)).collect();
    for c in containers {
        if let Some(img) = c.desired.as_ref().and_then(|d| util::s(d, "image")) {
            if !img.starts_with("sha256:") {
                refs.insert(img.to_string());
            }
        }
    }
    let labelled = if find_orphans || !items.is_empty() {
        p.client.count(1);
        docker
            .list_images(Some(ListImagesOptions {
                // Tagged ones only: older builds left dangling are pruned by apply.
                filters: Some({
                    let mut f = label_filter(ctx);
                    f.insert("dangling".into(), vec!["false".into()]);
                    f
                }),
                ..Default::default()
            }))
            .await
            .map_err(|e| api_error("list images", &e))?
    } else {
        Vec::new()
    };
    let by_ref = if refs.is_empty() {
        Vec::new()
    } else {
        p.client.count(1);
        docker
            .list_images(Some(ListImagesOptions {
                filters: Some(HashMap::from([(
                    "reference".to_string(),
                    refs.iter().cloned().collect(),
                )])),
                ..Default::default()
            }))
            .await
            .map_err(|e| api_error("list images", &e))?
    };
    let mut tags: HashMap<String, bollard::models::ImageSummary> = HashMap::new();
    for img in labelled.iter().chain(by_ref.iter()) {
        for t in &img.repo_tags {
            tags.insert(normalize_ref(t), img.clone());
        }
    }
    let mut knowledge = crate::ImageKnowledge::default();
    for r in &refs {
        if let Some(img) = tags.get(&normalize_ref(r)) {
            knowledge.ids.insert(normalize_ref(r), img.id.clone());
        }
    }
    let mut claimed = BTreeSet::new();
    for item in items {
        let Some(name) = item_name(item) else {
            continue;
        };
        let key = normalize_ref(&name);
        let Some(img) = tags.get(&key) else {
            knowledge.pending.insert(key);
            part.live.insert(item.address.clone(), None);
            continue;
        };
        claimed.insert(img.id.clone());
        let built = item
            .desired
            .as_ref()
            .or(item.prior.as_ref().map(|p| &p.attrs))
            .is_some_and(|a| a.contains_key("build"));
        let owner = if imported(item, &img.id) {
            Owner::Stack
        } else {
            match owner_of(&img.labels, ctx, IMAGE) {
                // Pulled images cannot carry labels: the state owns them.
                Owner::Unmanaged if !built => Owner::NotApplicable,
                // The tag claw built was moved to an image made by hand: the
                // tag is this stack's (by state); the next apply builds it again.
                Owner::Unmanaged if item.prior.is_some() => Owner::NotApplicable,
                o => o,
            }
        };
        let mut attrs = Attrs::new();
        let prior_same = item.prior.as_ref().filter(|pr| pr.id == img.id);
        if let Some(pr) = prior_same {
            attrs = pr.attrs.clone();
        } else if let Some(d) = &item.desired {
            // Not built by this state: what claw can't read back is taken as configured.
            for k in ["build", "pull"] {
                if let Some(v) = d.get(k) {
                    attrs.insert(k.into(), v.clone());
                }
            }
        }
        attrs.insert("name".into(), Value::String(name.clone()));
        attrs.insert("id".into(), Value::String(img.id.clone()));
        match img.labels.get(LABEL_CONTEXT_HASH) {
            Some(h) => attrs.insert("context_hash".into(), Value::String(h.clone())),
            None => attrs.remove("context_hash"),
        };
        if owner == Owner::Stack && !imported(item, &img.id) {
            let addr = img.labels.get(LABEL_ADDRESS).cloned().unwrap_or_default();
            if addr != item.address {
                attrs.insert(ATTR_ADDRESS.into(), Value::String(addr));
            }
        }
        // Will this run build it again? Then containers on it get a new image.
        if let Some(d) = &item.desired {
            let changed = ["context_hash", "build", "pull"]
                .iter()
                .any(|k| d.get(*k).is_some() && d.get(*k) != attrs.get(*k));
            if changed {
                knowledge.pending.insert(key.clone());
            }
        }
        part.live.insert(
            item.address.clone(),
            Some(LiveObject {
                id: img.id.clone(),
                attrs,
                fingerprint: img.id.clone(),
                owner,
            }),
        );
    }
    if find_orphans {
        for img in &labelled {
            let addr = img.labels.get(LABEL_ADDRESS).cloned().unwrap_or_default();
            if addresses.contains(addr.as_str()) || claimed.contains(&img.id) {
                continue;
            }
            let mut attrs = Attrs::new();
            attrs.insert("id".into(), Value::String(img.id.clone()));
            if let Some(t) = img.repo_tags.first() {
                attrs.insert("name".into(), Value::String(t.clone()));
            }
            part.orphans.push(Orphan {
                address: if addr.is_empty() {
                    format!("{IMAGE}.{}", img.id)
                } else {
                    addr
                },
                rtype: IMAGE.into(),
                live: LiveObject {
                    id: img.id.clone(),
                    attrs,
                    fingerprint: img.id.clone(),
                    owner: Owner::Stack,
                },
            });
        }
    }
    *p.images.lock().unwrap_or_else(|e| e.into_inner()) = knowledge;
    Ok(part)
}

// ------------------------------------------------------- networks and volumes

/// A network or a volume: both refresh the same way, one list by label, one
/// list by name for configured objects not found by label, then orphans.
trait Named: Clone {
    const RTYPE: &'static str;
    fn labels(&self) -> HashMap<String, String>;
    fn id(&self) -> String;
    fn name(&self) -> String;
    fn attrs(&self) -> Attrs;
    fn fingerprint(&self) -> String;
    /// Found by name: is it the very object the item imported?
    fn is_imported(&self, item: &RefreshItem) -> bool {
        imported(item, &self.id())
    }
}

impl Named for bollard::models::Network {
    const RTYPE: &'static str = NETWORK;
    fn labels(&self) -> HashMap<String, String> {
        self.labels.clone().unwrap_or_default()
    }
    fn id(&self) -> String {
        self.id.clone().unwrap_or_default()
    }
    fn name(&self) -> String {
        self.name.clone().unwrap_or_default()
    }
    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        a.insert("id".into(), Value::String(Named::id(self)));
        a.insert("name".into(), Value::String(Named::name(self)));
        a.insert(
            "driver".into(),
            Value::String(self.driver.clone().unwrap_or_default()),
        );
        a.insert(
            "internal".into(),
            Value::Bool(self.internal.unwrap_or(false)),
        );
        a.insert(
            "attachable".into(),
            Value::Bool(self.attachable.unwrap_or(false)),
        );
        a.insert(
            "labels".into(),
            util::str_map_value(&user_labels(&Named::labels(self))),
        );
        let opts: BTreeMap<String, String> = self
            .options
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        a.insert("options".into(), util::str_map_value(&opts));
        a
    }
    fn fingerprint(&self) -> String {
        Named::id(self)
    }
}

fn volume_created(v: &bollard::models::Volume) -> String {
    v.created_at
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default()
}

impl Named for bollard::models::Volume {
    const RTYPE: &'static str = VOLUME;
    fn labels(&self) -> HashMap<String, String> {
        self.labels.clone()
    }
    fn id(&self) -> String {
        self.name.clone()
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        a.insert("id".into(), Value::String(self.name.clone()));
        a.insert("name".into(), Value::String(self.name.clone()));
        a.insert("driver".into(), Value::String(self.driver.clone()));
        a.insert(
            "labels".into(),
            util::str_map_value(&user_labels(&self.labels)),
        );
        let opts: BTreeMap<String, String> = self.options.clone().into_iter().collect();
        a.insert("driver_opts".into(), util::str_map_value(&opts));
        a
    }
    fn fingerprint(&self) -> String {
        fp(&[&self.name, &volume_created(self)])
    }
    /// An adopted volume is known by name; its creation time tells a volume
    /// re-created by hand apart from the adopted one.
    fn is_imported(&self, item: &RefreshItem) -> bool {
        imported(item, &self.name)
            && item
                .prior
                .as_ref()
                .and_then(|p| p.private.get("created"))
                .and_then(Value::as_str)
                == Some(volume_created(self).as_str())
    }
}

/// Refresh networks or volumes; `list` lists them with the given filters.
async fn refresh_named<T, F, Fut>(
    ctx: &Ctx,
    items: &[&RefreshItem],
    addresses: &BTreeSet<&str>,
    find_orphans: bool,
    list: F,
) -> Result<Part, Diagnostic>
where
    T: Named,
    F: Fn(HashMap<String, Vec<String>>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, Diagnostic>>,
{
    let mut part = Part::default();
    let listed: Vec<T> = list(label_filter(ctx)).await?;
    let m = match_by_address(
        listed,
        T::labels,
        T::id,
        items,
        addresses,
        T::RTYPE,
        &mut part.diagnostics,
    );
    let missing: Vec<(&RefreshItem, String)> = items
        .iter()
        .filter(|i| !m.found.contains_key(&i.address))
        .filter_map(|i| item_name(i).map(|n| (*i, n)))
        .collect();
    let mut by_name: HashMap<String, T> = HashMap::new();
    if !missing.is_empty() {
        let names = missing.iter().map(|(_, n)| n.clone()).collect();
        for o in list(HashMap::from([("name".to_string(), names)])).await? {
            by_name.insert(o.name(), o);
        }
    }
    let mut claimed = BTreeSet::new();
    for item in items {
        let (o, owner) = if let Some(o) = m.found.get(&item.address) {
            (o, Owner::Stack)
        } else if let Some(o) = item_name(item).and_then(|name| by_name.get(&name)) {
            let owner = if o.is_imported(item) {
                Owner::Stack
            } else {
                owner_of(&o.labels(), ctx, T::RTYPE)
            };
            (o, owner)
        } else {
            continue;
        };
        claimed.insert(o.id());
        let mut attrs = o.attrs();
        if owner == Owner::Stack && !imported(item, &o.id()) {
            let addr = o.labels().get(LABEL_ADDRESS).cloned().unwrap_or_default();
            if addr != item.address {
                attrs.insert(ATTR_ADDRESS.into(), Value::String(addr));
            }
        }
        part.live.insert(
            item.address.clone(),
            Some(LiveObject {
                id: o.id(),
                fingerprint: o.fingerprint(),
                attrs,
                owner,
            }),
        );
    }
    if find_orphans {
        for (addr, o) in m.orphans {
            if claimed.contains(&o.id()) {
                continue;
            }
            part.orphans.push(Orphan {
                address: addr,
                rtype: T::RTYPE.into(),
                live: LiveObject {
                    id: o.id(),
                    fingerprint: o.fingerprint(),
                    attrs: o.attrs(),
                    owner: Owner::Stack,
                },
            });
        }
    }
    Ok(part)
}

async fn refresh_networks(
    p: &DockerProvider,
    docker: &Docker,
    ctx: &Ctx,
    items: &[&RefreshItem],
    addresses: &BTreeSet<&str>,
    find_orphans: bool,
) -> Result<Part, Diagnostic> {
    let list = |filters: HashMap<String, Vec<String>>| async move {
        p.client.count(1);
        docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| api_error("list networks", &e))
    };
    refresh_named(ctx, items, addresses, find_orphans, list).await
}

async fn refresh_volumes(
    p: &DockerProvider,
    docker: &Docker,
    ctx: &Ctx,
    items: &[&RefreshItem],
    addresses: &BTreeSet<&str>,
    find_orphans: bool,
) -> Result<Part, Diagnostic> {
    let list = |filters: HashMap<String, Vec<String>>| async move {
        p.client.count(1);
        docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map(|r| r.volumes.unwrap_or_default())
            .map_err(|e| api_error("list volumes", &e))
    };
    refresh_named(ctx, items, addresses, find_orphans, list).await
}
