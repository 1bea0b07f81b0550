//! Refresh: one call per provider block with every address it serves, and
//! the `--target` selection.

use super::*;

impl Workspace {
    /// The addresses a `--target` list selects: targets plus their
    /// dependencies (or, for destroy, plus their dependents).
    pub fn select_targets(
        &self,
        targets: &[String],
        state: &State,
        destroy: bool,
    ) -> Result<Option<BTreeSet<String>>> {
        if targets.is_empty() {
            return Ok(None);
        }
        let all: BTreeSet<String> = self
            .nodes
            .keys()
            .chain(self.checks.keys())
            .chain(state.resources.keys())
            .cloned()
            .collect();
        let mut sel = BTreeSet::new();
        for t in targets {
            let matched: Vec<String> = all
                .iter()
                .filter(|a| *a == t || a.starts_with(&format!("{t}[")))
                .cloned()
                .collect();
            if matched.is_empty() {
                let p = Problem::new(format!(
                    "--target {t}: no such resource in the configuration or state"
                ));
                return Err(Error::one(
                    match closest(t, all.iter().map(String::as_str)) {
                        Some(c) => p.hint(format!("did you mean `{c}`?")),
                        None => p.hint("see `claw state list` for addresses"),
                    },
                ));
            }
            sel.extend(matched);
        }
        // Dependency closure.
        let deps_of = |a: &str| -> Vec<String> {
            match (self.nodes.get(a), self.checks.get(a)) {
                (Some(n), _) => n.deps.iter().cloned().collect(),
                (None, Some(c)) => c.deps.iter().cloned().collect(),
                (None, None) => state
                    .resources
                    .get(a)
                    .map(|e| e.deps.clone())
                    .unwrap_or_default(),
            }
        };
        let mut stack: Vec<String> = sel.iter().cloned().collect();
        if destroy {
            // Dependents: anything whose deps reach a selected address.
            loop {
                let before = sel.len();
                for a in &all {
                    if !sel.contains(a) && deps_of(a).iter().any(|d| sel.contains(d)) {
                        sel.insert(a.clone());
                    }
                }
                if sel.len() == before {
                    break;
                }
            }
        } else {
            while let Some(a) = stack.pop() {
                for d in deps_of(&a) {
                    if sel.insert(d.clone()) {
                        stack.push(d);
                    }
                }
            }
        }
        Ok(Some(sel))
    }

    /// Refreshes every address (config ∪ state) with one call per provider.
    pub async fn refresh(
        &self,
        state: &State,
        only: Option<&BTreeSet<String>>,
    ) -> Result<BTreeMap<String, Observed>> {
        Ok(self.refresh_keeping(state, only).await?.0)
    }

    /// [`Workspace::refresh`], and the desired attributes it made, for a
    /// plan of the same state to reuse where they cannot differ (see
    /// [`Refreshed`]).
    pub async fn refresh_keeping(
        &self,
        state: &State,
        only: Option<&BTreeSet<String>>,
    ) -> Result<(BTreeMap<String, Observed>, Refreshed<'_>)> {
        // Moved entries are refreshed under their new address, with their prior.
        let moved = self.with_moves(state)?;
        let state = &moved.state;
        let ctx = self.ctx();
        let mut per: BTreeMap<String, Vec<RefreshItem>> = BTreeMap::new();
        let sources = resolve::Sources {
            state: Some(state),
            ..Default::default()
        };
        let lookup = |r: &template::ResRef| -> Value { sources.value(r) };
        let mut errs = Vec::new();
        // Each configured address's desired attributes (resolved against
        // the state, prepared by its provider): independent of each other,
        // so made on every core for a long list.
        let nodes: Vec<(&String, &Node)> = self
            .nodes
            .iter()
            .filter(|(addr, _)| only.is_none_or(|o| o.contains(*addr)))
            .map(|(a, n)| (a, &**n))
            .collect();
        let desired =
            claw_provider::par::in_chunks(&nodes, claw_provider::par::cores(), 1024, |c| {
                c.iter()
                    .map(|(addr, _)| self.desired_with_inputs(addr, &lookup))
                    .collect()
            });
        let mut kept = Refreshed::default();
        for ((addr, n), desired) in nodes.into_iter().zip(desired) {
            let desired = match desired {
                Ok((d, inputs)) => {
                    let d = Arc::new(d);
                    if n.reads.is_none() {
                        kept.desired.insert(addr, (d.clone(), inputs));
                    }
                    d
                }
                Err(d) => {
                    errs.push(self.diag_problem(&d, addr));
                    continue;
                }
            };
            per.entry(n.inst.provider_key.clone())
                .or_default()
                .push(RefreshItem {
                    address: addr.clone(),
                    rtype: n.inst.rtype.clone(),
                    desired: Some(desired),
                    prior: state.resources.get(addr).map(|e| e.object()),
                    recheck: state.in_flight.contains_key(addr),
                });
        }
        for (addr, e) in &state.resources {
            if self.nodes.contains_key(addr) || only.is_some_and(|o| !o.contains(addr)) {
                continue;
            }
            per.entry(e.provider.clone())
                .or_default()
                .push(RefreshItem {
                    address: addr.clone(),
                    rtype: e.rtype.clone(),
                    desired: None,
                    prior: Some(e.object()),
                    recheck: state.in_flight.contains_key(addr),
                });
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        crate::util::timing::phase("refresh: requests");
        let calls = per.into_iter().filter_map(|(key, items)| {
            let p = self.providers.get(&key)?.clone();
            let ctx = ctx.clone();
            Some(async move {
                let resp = p
                    .refresh(RefreshRequest {
                        ctx,
                        items,
                        find_orphans: only.is_none(),
                    })
                    .await;
                (key, resp)
            })
        });
        let mut out = BTreeMap::new();
        for (key, resp) in join_all(calls).await {
            for d in &resp.diagnostics {
                let addr = d.address.clone().unwrap_or_default();
                if d.is_error() {
                    errs.push(self.diag_problem(d, &addr));
                } else {
                    self.events.note(&Problem::from_diag(d, None).to_string());
                }
            }
            for (addr, live) in resp.live {
                out.insert(
                    addr,
                    Observed {
                        live: live.map(Arc::new),
                        orphan_type: None,
                    },
                );
            }
            for o in resp.orphans {
                if self.nodes.contains_key(&o.address) || state.resources.contains_key(&o.address) {
                    // Matched by address label: adopt as the live object.
                    let entry = out.entry(o.address.clone()).or_default();
                    if entry.live.is_none() {
                        entry.live = Some(Arc::new(o.live));
                    }
                    continue;
                }
                let _ = &key;
                out.insert(
                    o.address.clone(),
                    Observed {
                        live: Some(Arc::new(o.live)),
                        orphan_type: Some(o.rtype),
                    },
                );
            }
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        Ok((out, kept))
    }
}

/// The desired attributes (and files read) refresh made for each address
/// without `reads`, resolved against the state alone. The plan resolves
/// against its planned values first: it reuses an entry only when every
/// reference of the address resolves to the same value both ways and no
/// secret is among them (a state keeps a secret's hash only); else it
/// makes the attributes again.
#[derive(Default)]
pub struct Refreshed<'w> {
    /// Shared with the refresh requests, which are gone when the plan takes them.
    pub(super) desired: BTreeMap<&'w str, (Arc<Attrs>, Vec<Input>)>,
}
