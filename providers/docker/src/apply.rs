//! apply (create / update / delete) and import, per resource type.

use crate::refresh::owner_of;
use crate::util::{self};
use crate::{docker_container, docker_image, docker_network, docker_volume};
use crate::{DockerProvider, CONTAINER, IMAGE, NETWORK, VOLUME};
use claw_provider::{
    ApplyRequest, ApplyResponse, Attrs, Ctx, Diagnostic, ImportRequest, Op, Owner, StateObject,
    Value,
};
use std::collections::HashMap;

/// What an import found: (id, labels, attributes, private attributes).
pub(crate) type Imported = (String, HashMap<String, String>, Attrs, Attrs);

pub(crate) fn state(id: &str, desired: &Attrs, private: Attrs) -> ApplyResponse {
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

pub(crate) fn labels(
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

pub(crate) fn need<'a>(desired: &'a Option<Attrs>, op: &str) -> Result<&'a Attrs, Diagnostic> {
    desired
        .as_ref()
        .ok_or_else(|| Diagnostic::error(format!("internal: {op} without desired attributes")))
}

pub async fn apply(p: &DockerProvider, req: ApplyRequest) -> Result<ApplyResponse, Diagnostic> {
    let docker = p.client.docker().await?;
    match (req.rtype.as_str(), req.op) {
        (CONTAINER, Op::Create) => docker_container::create(p, &docker, &req).await,
        (CONTAINER, Op::Update) => docker_container::update(p, &docker, &req).await,
        (CONTAINER, Op::Delete) => docker_container::delete(p, &docker, &req).await,
        (IMAGE, Op::Create | Op::Update) => docker_image::build_or_pull(p, &docker, &req).await,
        (IMAGE, Op::Delete) => docker_image::delete(p, &docker, &req).await,
        (NETWORK, Op::Create) => docker_network::create(p, &docker, &req).await,
        (VOLUME, Op::Create) => docker_volume::create(p, &docker, &req).await,
        (NETWORK | VOLUME, Op::Update) => {
            // Every network and volume attribute forces a replace; an update
            // only records the desired attributes (e.g. after an import).
            let d = need(&req.desired, "update")?;
            let prior = req.prior.as_deref().cloned().unwrap_or_default();
            let id = req.live.as_ref().map(|l| l.id.clone()).unwrap_or(prior.id);
            Ok(state(&id, d, prior.private))
        }
        (NETWORK, Op::Delete) => docker_network::delete(p, &docker, &req).await,
        (VOLUME, Op::Delete) => docker_volume::delete(p, &docker, &req).await,
        (other, _) => Err(Diagnostic::error(format!(
            "the docker provider has no resource type {other}"
        ))),
    }
}

/// The id of the object to change: the live one (checked for ownership at
/// refresh), else the one in state.
pub(crate) fn target_id(req: &ApplyRequest) -> Option<String> {
    req.live
        .as_ref()
        .map(|l| l.id.clone())
        .or_else(|| req.prior.as_ref().map(|p| p.id.clone()))
        .filter(|s| !s.is_empty())
}

pub(crate) fn refuse_unowned(req: &ApplyRequest) -> Result<(), Diagnostic> {
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

/// A string map attribute as an engine option map; `None` when empty.
pub(crate) fn option_map(d: &Attrs, key: &str) -> Option<HashMap<String, String>> {
    let m: HashMap<String, String> = util::str_map_exposed(d.get(key))
        .unwrap_or_default()
        .into_iter()
        .collect();
    (!m.is_empty()).then_some(m)
}

// -------------------------------------------------------------------- import

/// Adopts an existing object. Docker cannot change the labels of an existing
/// container, network, volume or image: an object without this stack's
/// labels is recorded in the state by id with `private.imported = true`, and
/// from then on owned through the state (see docs/providers/docker.md).
/// Adopts an existing object. Docker cannot change the labels of an existing
/// container, network, volume or image: an object without this stack's
/// labels is recorded in the state by id with `private.imported = true`, and
/// from then on owned through the state (see docs/providers/docker.md).
pub async fn import(p: &DockerProvider, req: ImportRequest) -> Result<StateObject, Diagnostic> {
    let docker = p.client.docker().await?;
    let ctx = &req.ctx;
    let (id, labels, mut attrs, mut private) = match req.rtype.as_str() {
        CONTAINER => docker_container::import(p, &docker, &req).await?,
        NETWORK => docker_network::import(p, &docker, &req).await?,
        VOLUME => docker_volume::import(p, &docker, &req).await?,
        IMAGE => docker_image::import(p, &docker, &req).await?,
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

pub(crate) fn not_found_hint(d: Diagnostic, req: &ImportRequest) -> Diagnostic {
    if d.summary.contains("No such") || d.summary.contains("not found") {
        d.with_hint(format!(
            "give the {}'s id or name as Docker shows it (`docker ps -a`, `docker network ls`, `docker volume ls`, `docker images`)",
            req.rtype.trim_start_matches("docker_")
        ))
    } else {
        d
    }
}
