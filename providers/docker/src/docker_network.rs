//! `docker_network`: every attribute forces a replace; refresh through the
//! generic named-object refresh.

use crate::apply::{
    labels, need, not_found_hint, option_map, refuse_unowned, state, target_id, Imported,
};
use crate::client::{api_error, is_not_found};
use crate::diff::{address_change, cmp, cmp_map, prior_has};
use crate::refresh::{refresh_named, Named, Part};
use crate::util::{self, user_labels};
use crate::{DockerProvider, NETWORK};
use bollard::models::*;
use bollard::query_parameters::*;
use bollard::Docker;
use claw_provider::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub(crate) fn diff(req: &DiffRequest, out: &mut Vec<AttrChange>) -> Option<String> {
    let d = &req.desired;
    let l = &req.live.attrs;
    let prior = req.prior.as_ref().map(|p| &p.attrs);
    for k in ["name", "driver", "internal", "attachable"] {
        cmp(out, k, d.get(k), l.get(k), false, true);
    }
    for k in ["labels", "options"] {
        cmp_map(out, k, d.get(k), l.get(k), prior_has(prior, k), true);
    }
    address_change(out, l, &req.address);
    Some("containers on the network are disconnected from it".to_string())
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

pub(crate) async fn refresh(
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

pub(crate) async fn create(
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

pub(crate) async fn delete(
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

pub(crate) async fn import(
    p: &DockerProvider,
    docker: &Docker,
    req: &ImportRequest,
) -> Result<Imported, Diagnostic> {
    p.client.count(1);
    let n = docker
        .inspect_network(&req.id, None)
        .await
        .map_err(|e| not_found_hint(api_error(&format!("inspect network {}", req.id), &e), req))?;
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
    Ok((n.id.unwrap_or_default(), labels, a, Attrs::new()))
}
