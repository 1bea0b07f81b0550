//! Apply (server-side apply, then wait) and delete, for both resource types;
//! import (label an existing object).

use crate::live::{owner_of, to_live};
use crate::manifest::{self, FieldPath, ObjRef};
use crate::provider::{
    api_diag, attr_str, doc_of, ident, parse_duration, KubeProvider, Seen, FIELD_MANAGER, SECRET,
};
use crate::ssa::prior_fields;
use crate::{k8s_manifest, k8s_secret};
use claw_provider::*;
use http::Method;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// The body claw applies for an instance.
fn body(
    rtype: &str,
    address: &str,
    desired: &Attrs,
    ctx: &Ctx,
) -> Result<serde_json::Value, Diagnostic> {
    match rtype {
        SECRET => k8s_secret::body(address, desired, ctx),
        _ => k8s_manifest::body(address, desired),
    }
}

/// The fields claw owns after applying `desired` (kept in private state).
fn applied_fields(rtype: &str, desired: &Attrs) -> BTreeSet<FieldPath> {
    match rtype {
        SECRET => k8s_secret::fields(desired),
        _ => manifest::field_set(&doc_of(desired)),
    }
}

impl KubeProvider {
    pub(crate) async fn apply_op(&self, req: ApplyRequest) -> Result<ApplyResponse, Diagnostic> {
        let ctx = &req.ctx;
        let address = req.address.as_str();
        match req.op {
            Op::Delete => {
                let attrs = req
                    .prior
                    .as_ref()
                    .map(|p| p.attrs.clone())
                    .or_else(|| req.live.as_ref().map(|l| l.attrs.clone()))
                    .unwrap_or_default();
                let Some(r) = ident(&req.rtype, &attrs) else {
                    return Err(Diagnostic::error(
                        "cannot tell which object to delete (no identity in state)",
                    )
                    .with_address(address));
                };
                let Some(res) = self
                    .cluster
                    .resolve(&r.api_version, &r.kind)
                    .await
                    .map_err(|e| api_diag(address, "discovery", &e))?
                else {
                    return Ok(ApplyResponse::default());
                };
                let path = res.item(&r.namespace, &r.name);
                // This run's list showed it with this stack's labels: delete
                // that very object (uid precondition) without reading it again.
                let uid = match self.known(&r.key()) {
                    Some(Seen::Mine { uid }) if !uid.is_empty() => json!(uid),
                    _ => {
                        let Some(live) = self.cluster.get_opt(&path).await.map_err(|e| {
                            api_diag(address, &format!("reading {}", r.display()), &e)
                        })?
                        else {
                            return Ok(ApplyResponse::default());
                        };
                        if owner_of(&live, &ctx.stack) != Owner::Stack {
                            return Err(Diagnostic::error(format!("{} does not carry this stack's labels; claw will not delete it", r.display()))
                                .with_address(address)
                                .with_hint(format!("remove it from the state with `claw state rm {address}`, or delete it yourself")));
                        }
                        live.pointer("/metadata/uid")
                            .cloned()
                            .unwrap_or(serde_json::Value::Null)
                    }
                };
                let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
                                   "preconditions": {"uid": uid}});
                match self
                    .cluster
                    .call(
                        Method::DELETE,
                        &path,
                        Some((
                            "application/json",
                            serde_json::to_vec(&body).unwrap_or_default(),
                        )),
                        None,
                    )
                    .await
                {
                    // A Status answer: the object is gone already.
                    Ok(v) if v.get("kind").and_then(|k| k.as_str()) == Some("Status") => {}
                    // The object is returned while finalizers (a PVC in use, a
                    // namespace's contents, a CRD's custom resources) keep it:
                    // the delete is complete when it is gone.
                    Ok(_) => self.wait_gone(address, &res, &r, ctx).await?,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        return Err(api_diag(address, &format!("deleting {}", r.display()), &e))
                    }
                }
                self.remember(r.key(), Seen::Absent);
                Ok(ApplyResponse::default())
            }
            Op::Create | Op::Update => {
                let desired = req
                    .desired
                    .clone()
                    .ok_or_else(|| Diagnostic::error("nothing to apply").with_address(address))?;
                let r = ident(&req.rtype, &desired).ok_or_else(|| {
                    Diagnostic::error("the object has no apiVersion, kind or name")
                        .with_address(address)
                })?;
                let res = self.resolve_or_wait(address, &r, ctx).await?;
                // A create checks first that nothing is in the way, unless this
                // run's list already showed the object absent (or this stack's).
                if req.op == Op::Create && self.known(&r.key()).is_none() {
                    if let Some(o) = self
                        .cluster
                        .get_opt(&res.item(&r.namespace, &r.name))
                        .await
                        .map_err(|e| api_diag(address, &format!("reading {}", r.display()), &e))?
                    {
                        match owner_of(&o, &ctx.stack) {
                            Owner::Stack => {}
                            Owner::OtherStack(s) => return Err(Diagnostic::error(format!(
                                "{} belongs to stack {s:?}",
                                r.display()
                            ))
                            .with_address(address)
                            .with_hint(
                                "rename one of them; claw never touches another stack's objects",
                            )),
                            _ => {
                                return Err(Diagnostic::error(format!(
                                    "{} already exists and is not managed by claw",
                                    r.display()
                                ))
                                .with_address(address)
                                .with_hint(format!("claw import {address} {}", r.key())))
                            }
                        }
                    }
                }
                let body = body(&req.rtype, address, &desired, ctx)?;
                let force = desired
                    .get("force_conflicts")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let prior = prior_fields(req.prior.as_deref());
                let out = self
                    .apply_policy(address, &res, &r, &body, false, force, &prior)
                    .await?;
                if let Some(mode) = attr_str(&desired, "wait") {
                    let timeout = attr_str(&desired, "wait_timeout")
                        .and_then(parse_duration)
                        .unwrap_or(Duration::from_secs(300));
                    self.wait_ready(address, &res, &r, mode, timeout, ctx)
                        .await?;
                }
                let fields = applied_fields(&req.rtype, &desired);
                let mut attrs = desired.clone();
                attrs.insert("id".into(), Value::str(r.key()));
                if let Some(uid) = out.pointer("/metadata/uid").and_then(|u| u.as_str()) {
                    attrs.insert("uid".into(), Value::str(uid));
                    self.remember(r.key(), Seen::Mine { uid: uid.into() });
                }
                let mut private = Attrs::new();
                private.insert(
                    "fields".into(),
                    Value::List(fields.iter().map(manifest::encode_path).collect()),
                );
                Ok(ApplyResponse {
                    state: Some(StateObject {
                        id: r.key(),
                        attrs,
                        private,
                    }),
                    diagnostics: vec![],
                })
            }
        }
    }

    pub(crate) async fn import_object(
        &self,
        req: ImportRequest,
    ) -> Result<StateObject, Diagnostic> {
        let address = req.address.as_str();
        // ID: `<apiVersion>/<Kind>/<namespace>/<name>` (k8s_secret: `<namespace>/<name>`).
        let parts: Vec<&str> = req.id.rsplitn(4, '/').collect();
        let r = match (req.rtype.as_str(), parts.as_slice()) {
            (SECRET, [name, ns, ..]) => ObjRef { api_version: "v1".into(), kind: "Secret".into(), namespace: ns.to_string(), name: name.to_string() },
            (_, [name, ns, kind, av]) => ObjRef { api_version: av.to_string(), kind: kind.to_string(), namespace: ns.to_string(), name: name.to_string() },
            _ => {
                return Err(Diagnostic::error(format!("import id {:?} is not <apiVersion>/<Kind>/<namespace>/<name>", req.id))
                    .with_address(address)
                    .with_hint("for example: apps/v1/Deployment/clawdbot/clawdbot-gateway (namespace empty for cluster-scoped kinds)"))
            }
        };
        let res = self
            .cluster
            .resolve(&r.api_version, &r.kind)
            .await
            .map_err(|e| api_diag(address, "discovery", &e))?
            .ok_or_else(|| {
                Diagnostic::error(format!(
                    "the server does not serve {} in {}",
                    r.kind, r.api_version
                ))
                .with_address(address)
            })?;
        let path = res.item(&r.namespace, &r.name);
        let obj = self
            .cluster
            .get_opt(&path)
            .await
            .map_err(|e| api_diag(address, &format!("reading {}", r.display()), &e))?
            .ok_or_else(|| {
                Diagnostic::error(format!("{} does not exist", r.display())).with_address(address)
            })?;
        if let Owner::OtherStack(s) = owner_of(&obj, &req.ctx.stack) {
            return Err(
                Diagnostic::error(format!("{} belongs to stack {s:?}", r.display()))
                    .with_address(address),
            );
        }
        let mut labels = serde_json::Map::new();
        let mut annotations = serde_json::Map::new();
        for (k, v) in req.ctx.ownership_labels(address) {
            if k == LABEL_ADDRESS {
                annotations.insert(k, json!(v));
            } else {
                labels.insert(k, json!(v));
            }
        }
        let patch = json!({"metadata": {"labels": labels, "annotations": annotations}});
        let out = self
            .cluster
            .call(
                Method::PATCH,
                &format!("{path}?fieldManager={FIELD_MANAGER}"),
                Some((
                    "application/merge-patch+json",
                    serde_json::to_vec(&patch).unwrap_or_default(),
                )),
                None,
            )
            .await
            .map_err(|e| api_diag(address, &format!("labelling {}", r.display()), &e))?;
        let live = to_live(&req.rtype, &out, &res, &req.ctx);
        // Adopting means taking over: the fields the configuration sets count
        // as claw's, so the first apply takes them from their old manager.
        let fields = req
            .desired
            .as_ref()
            .map(|d| applied_fields(&req.rtype, d))
            .unwrap_or_default();
        let mut attrs = req.desired.clone().unwrap_or(live.attrs);
        attrs.insert("id".into(), Value::str(r.key()));
        let mut private = Attrs::new();
        private.insert(
            "fields".into(),
            Value::List(fields.iter().map(manifest::encode_path).collect()),
        );
        Ok(StateObject {
            id: r.key(),
            attrs,
            private,
        })
    }
}
