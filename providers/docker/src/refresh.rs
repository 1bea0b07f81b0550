//! Refresh: one list per kind filtered by the stack label, one image list by
//! reference, one list by name per kind for configured objects not found by
//! label, and inspects only for containers whose id is not the one in state.

use crate::util::{self};
use crate::{docker_container, docker_image, docker_network, docker_volume};
use crate::{DockerProvider, CONTAINER, IMAGE, NETWORK, VOLUME};
use claw_provider::{
    Attrs, Ctx, Diagnostic, LiveObject, Orphan, Owner, RefreshItem, RefreshRequest,
    RefreshResponse, Value, LABEL_ADDRESS, LABEL_MANAGED_BY, LABEL_STACK,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Live attribute holding the `claw.dev/address` label when it differs from
/// the item's address (a renamed resource): the diff turns it into a replace.
pub const ATTR_ADDRESS: &str = "_address";

pub(crate) fn label_filter(ctx: &Ctx) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_STACK}={}", ctx.stack)],
    )])
}

/// Whose object it is, from its labels.
pub(crate) fn owner_of(labels: &HashMap<String, String>, ctx: &Ctx, rtype: &str) -> Owner {
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
pub(crate) fn item_name(item: &RefreshItem) -> Option<String> {
    item.desired
        .as_ref()
        .and_then(|d| util::s(d, "name"))
        .or_else(|| item.prior.as_ref().and_then(|p| util::s(&p.attrs, "name")))
        .map(str::to_string)
}

pub(crate) fn imported(item: &RefreshItem, id: &str) -> bool {
    item.prior.as_ref().is_some_and(|p| {
        p.id == id && p.private.get("imported").and_then(Value::as_bool) == Some(true)
    })
}

pub(crate) fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) async fn refresh(p: &DockerProvider, req: RefreshRequest) -> RefreshResponse {
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
                docker_container::refresh(
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
        docker_image::refresh(
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
                docker_network::refresh(
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
                docker_volume::refresh(
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

pub(crate) fn kind_of(rtype: &str) -> &'static str {
    match rtype {
        CONTAINER => CONTAINER,
        IMAGE => IMAGE,
        NETWORK => NETWORK,
        _ => VOLUME,
    }
}

#[derive(Default)]
pub(crate) struct Part {
    pub(crate) live: BTreeMap<String, Option<LiveObject>>,
    pub(crate) orphans: Vec<Orphan>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// Matches listed objects (by their address label) to items; returns, per
/// item, the chosen object; the rest become orphans or duplicates.
pub(crate) struct Matched<T> {
    pub(crate) found: BTreeMap<String, T>,
    /// Objects labelled for the stack whose address matches no item.
    pub(crate) orphans: Vec<(String, T)>,
}

pub(crate) fn match_by_address<T: Clone>(
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

pub(crate) fn rtype_of_address(addr: &str) -> Option<&str> {
    addr.split_once('.').map(|(t, _)| t)
}

pub(crate) fn fp(parts: &[&str]) -> String {
    parts.join("|")
}

/// A network or a volume: both refresh the same way, one list by label, one
/// list by name for configured objects not found by label, then orphans.
pub(crate) trait Named: Clone {
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

/// Refresh networks or volumes; `list` lists them with the given filters.
pub(crate) async fn refresh_named<T, F, Fut>(
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
