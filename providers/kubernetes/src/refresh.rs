//! Refresh: one labelled list per kind in use (discovery cached for the
//! run), then same-name objects without labels.

use crate::client::{enc, ApiError, ApiRes};
use crate::live::{address_of, owner_of, ref_of_obj, to_live};
use crate::manifest::ObjRef;
use crate::provider::{api_diag, ident, KubeProvider, Seen, MANIFEST, SECRET};
use claw_provider::*;
use http::Method;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// `(apiVersion, kind)`.
type Kind = (String, String);
/// An item of a kind: (item index, the object it names, named by its prior state).
type Member = (usize, ObjRef, bool);

/// What refreshing one kind found.
#[derive(Default)]
struct GroupOut {
    /// (item index, looked up by its prior identity, live object)
    lives: Vec<(usize, bool, LiveObject)>,
    orphans: Vec<Orphan>,
    /// (diagnostic, the cluster is unreachable)
    diagnostics: Vec<(Diagnostic, bool)>,
}

impl KubeProvider {
    /// Lists a kind: in one namespace, or cluster-wide; when a cluster-wide
    /// list is forbidden (namespace-scoped RBAC), one list per namespace.
    async fn list(
        &self,
        res: &ApiRes,
        ns: &str,
        namespaces: &BTreeSet<&str>,
        query: &str,
        accept: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        let items = |v: serde_json::Value| {
            v.get("items")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default()
        };
        let path = format!("{}{query}", res.collection(ns));
        match self.cluster.call(Method::GET, &path, None, accept).await {
            Ok(v) => Ok(items(v)),
            Err(e) if e.code() == 403 && res.namespaced && ns.is_empty() => {
                let mut out = Vec::new();
                for n in namespaces {
                    let path = format!("{}{query}", res.collection(n));
                    out.extend(items(
                        self.cluster.call(Method::GET, &path, None, accept).await?,
                    ));
                }
                Ok(out)
            }
            Err(e) => Err(e),
        }
    }

    /// Refreshes the items of one kind: one labelled list, then same-name
    /// objects without labels (few: by name; many: one metadata-only list).
    async fn refresh_group(
        &self,
        (api_version, kind): &Kind,
        members: &[Member],
        req: &RefreshRequest,
        addresses: &BTreeSet<&str>,
    ) -> GroupOut {
        let ctx = &req.ctx;
        let mut out = GroupOut::default();
        let first = &req.items[members[0].0].address;
        let res = match self.cluster.resolve(api_version, kind).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                // Not served (yet): nothing of this kind exists.
                for (_, r, _) in members {
                    self.remember(r.key(), Seen::Absent);
                }
                return out;
            }
            Err(e) => {
                let unreachable = matches!(e, ApiError::Other(_)) || e.code() == 401;
                out.diagnostics.push((
                    api_diag(first, &format!("discovery of {api_version}"), &e),
                    unreachable,
                ));
                return out;
            }
        };
        let nss: BTreeSet<&str> = members
            .iter()
            .map(|(_, r, _)| r.namespace.as_str())
            .collect();
        let list_ns = if res.namespaced && nss.len() == 1 {
            nss.iter().next().copied().unwrap_or("")
        } else {
            ""
        };
        let sel = format!("{LABEL_MANAGED_BY}=claw");
        let query = format!("?labelSelector={}", enc(&sel));
        let list = match self.list(&res, list_ns, &nss, &query, None).await {
            Ok(v) => v,
            Err(e) => {
                let unreachable = matches!(e, ApiError::Other(_)) || e.code() == 401;
                out.diagnostics
                    .push((api_diag(first, &format!("listing {kind}"), &e), unreachable));
                return out;
            }
        };
        let mut by_id: HashMap<(String, String), serde_json::Value> = HashMap::new();
        for o in list {
            let r = ref_of_obj(&o, &res);
            if req.find_orphans && owner_of(&o, &ctx.stack) == Owner::Stack {
                if let Some(addr) = address_of(&o) {
                    if !addresses.contains(addr.as_str()) {
                        let rtype = if addr.starts_with(&format!("{SECRET}.")) {
                            SECRET
                        } else {
                            MANIFEST
                        };
                        let live = to_live(rtype, &o, &res, ctx);
                        out.orphans.push(Orphan {
                            address: addr,
                            rtype: rtype.to_string(),
                            live,
                        });
                    }
                }
            }
            if owner_of(&o, &ctx.stack) == Owner::Stack {
                let uid = o.pointer("/metadata/uid").and_then(|u| u.as_str());
                self.remember(
                    r.key(),
                    Seen::Mine {
                        uid: uid.unwrap_or_default().to_string(),
                    },
                );
            }
            by_id.insert((r.namespace, r.name), o);
        }
        let mut missing: Vec<&Member> = Vec::new();
        for m in members {
            let (i, r, is_prior) = m;
            match by_id.get(&(r.namespace.clone(), r.name.clone())) {
                Some(o) => {
                    out.lives
                        .push((*i, *is_prior, to_live(&req.items[*i].rtype, o, &res, ctx)))
                }
                None if !*is_prior => missing.push(m),
                None => {}
            }
        }
        if missing.is_empty() {
            return out;
        }
        let looked_up = out.diagnostics.len();
        let mut unlabelled: HashMap<(String, String), serde_json::Value> = HashMap::new();
        if missing.len() <= 2 {
            for (_, r, _) in &missing {
                match self.cluster.get_opt(&res.item(&r.namespace, &r.name)).await {
                    Ok(Some(o)) => {
                        unlabelled.insert((r.namespace.clone(), r.name.clone()), o);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let unreachable = matches!(e, ApiError::Other(_)) || e.code() == 401;
                        out.diagnostics.push((
                            api_diag(first, &format!("reading {}", r.display()), &e),
                            unreachable,
                        ))
                    }
                }
            }
        } else {
            let missing_ns: BTreeSet<&str> = missing
                .iter()
                .map(|(_, r, _)| r.namespace.as_str())
                .collect();
            let meta_ns = if res.namespaced && missing_ns.len() == 1 {
                missing_ns.iter().next().copied().unwrap_or("")
            } else {
                ""
            };
            let accept =
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
            match self
                .list(&res, meta_ns, &missing_ns, "", Some(accept))
                .await
            {
                Ok(items) => {
                    for o in items {
                        let r = ref_of_obj(&o, &res);
                        unlabelled.insert((r.namespace, r.name), o);
                    }
                }
                Err(e) => {
                    let unreachable = matches!(e, ApiError::Other(_)) || e.code() == 401;
                    out.diagnostics
                        .push((api_diag(first, &format!("listing {kind}"), &e), unreachable))
                }
            }
        }
        let complete = out.diagnostics.len() == looked_up;
        for (i, r, _) in missing {
            if let Some(o) = unlabelled.get(&(r.namespace.clone(), r.name.clone())) {
                let mut live = to_live(&req.items[*i].rtype, o, &res, ctx);
                if live.owner == Owner::Stack {
                    live.owner = Owner::Unmanaged;
                }
                out.lives.push((*i, false, live));
            } else if complete {
                self.remember(r.key(), Seen::Absent);
            }
        }
        out
    }

    /// Every item at once: discovery once per group version, then each
    /// kind's lists concurrently.
    pub(crate) async fn refresh_all(&self, req: RefreshRequest) -> RefreshResponse {
        let mut resp = RefreshResponse::default();
        // (apiVersion, kind) → [(item index, ref, is_prior_ref)]
        let mut groups: BTreeMap<Kind, Vec<Member>> = BTreeMap::new();
        for (i, it) in req.items.iter().enumerate() {
            resp.live.insert(it.address.clone(), None);
            let d = it.desired.as_ref().and_then(|a| ident(&it.rtype, a));
            let p = it.prior.as_ref().and_then(|p| ident(&it.rtype, &p.attrs));
            if let Some(d) = &d {
                groups
                    .entry((d.api_version.clone(), d.kind.clone()))
                    .or_default()
                    .push((i, d.clone(), false));
            }
            if let Some(p) = p {
                if d.as_ref() != Some(&p) {
                    groups
                        .entry((p.api_version.clone(), p.kind.clone()))
                        .or_default()
                        .push((i, p, true));
                }
            }
        }
        let addresses: BTreeSet<&str> = req.items.iter().map(|i| i.address.as_str()).collect();
        // Discovery once per group version, concurrently; then every kind's
        // lists concurrently (the requests are the same, the latency is not).
        let versions: BTreeSet<&str> = groups.keys().map(|(v, _)| v.as_str()).collect();
        let _ = futures::future::join_all(versions.iter().map(|v| self.cluster.resources(v))).await;
        let outs = futures::future::join_all(
            groups
                .iter()
                .map(|(key, members)| self.refresh_group(key, members, &req, &addresses)),
        )
        .await;
        let mut prior_live: BTreeMap<usize, LiveObject> = BTreeMap::new();
        let mut desired_live: BTreeMap<usize, LiveObject> = BTreeMap::new();
        let mut unreachable = false;
        for out in outs {
            for (i, is_prior, live) in out.lives {
                if is_prior {
                    if live.owner == Owner::Stack {
                        prior_live.insert(i, live);
                    }
                } else {
                    desired_live.insert(i, live);
                }
            }
            resp.orphans.extend(out.orphans);
            for (d, is_unreachable) in out.diagnostics {
                if is_unreachable {
                    if unreachable {
                        continue; // one error, not one per kind
                    }
                    unreachable = true;
                }
                resp.diagnostics.push(d);
            }
        }
        for (i, it) in req.items.iter().enumerate() {
            if let Some(l) = prior_live.remove(&i).or_else(|| desired_live.remove(&i)) {
                resp.live.insert(it.address.clone(), Some(l));
            }
        }
        resp.orphans.sort_by(|a, b| a.address.cmp(&b.address));
        resp
    }
}
