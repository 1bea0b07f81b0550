//! `docker_volume`: every attribute forces a replace; an adopted volume is
//! told apart from one re-created by hand by its creation time.

use crate::apply::{
    labels, need, not_found_hint, option_map, refuse_unowned, state, target_id, Imported,
};
use crate::client::{api_error, is_not_found};
use crate::diff::{address_change, cmp, cmp_map, prior_has};
use crate::refresh::{fp, imported, owner_of, refresh_named, Named, Part};
use crate::util::{self, user_labels};
use crate::{DockerProvider, VOLUME};
use bollard::models::*;
use bollard::query_parameters::*;
use bollard::Docker;
use claw_provider::*;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub(crate) fn diff(req: &DiffRequest, out: &mut Vec<AttrChange>) -> Option<String> {
    let d = &req.desired;
    let l = &req.live.attrs;
    let prior = req.prior.as_ref().map(|p| &p.attrs);
    for k in ["name", "driver"] {
        cmp(out, k, d.get(k), l.get(k), false, true);
    }
    for k in ["labels", "driver_opts"] {
        cmp_map(out, k, d.get(k), l.get(k), prior_has(prior, k), true);
    }
    address_change(out, l, &req.address);
    Some("deletes the volume and the data in it".to_string())
}

pub(crate) fn volume_created(v: &bollard::models::Volume) -> String {
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
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map(|r| r.volumes.unwrap_or_default())
            .map_err(|e| api_error("list volumes", &e))
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

pub(crate) async fn delete(
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

pub(crate) async fn import(
    p: &DockerProvider,
    docker: &Docker,
    req: &ImportRequest,
) -> Result<Imported, Diagnostic> {
    p.client.count(1);
    let v = docker
        .inspect_volume(&req.id)
        .await
        .map_err(|e| not_found_hint(api_error(&format!("inspect volume {}", req.id), &e), req))?;
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
    Ok((v.name.clone(), v.labels.clone(), a, private))
}
