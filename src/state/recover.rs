//! Operations left in flight by a run that died: the next apply re-checks
//! each one (a refresh that trusts nothing recorded about it) before
//! planning, and records what it finds, so that nothing claw made is left
//! outside the state and nothing is forgotten.
//!
//! | op in flight                  | object found (ours)        | object not found             |
//! |-------------------------------|----------------------------|------------------------------|
//! | create / update / replace / delete-old | imported into the state | settled: the plan creates it |
//! | delete                        | settled: still in the state | removed from the state      |
//!
//! An object found that is not ours (another stack's, unlabelled) is left
//! alone and settled: the plan refuses to touch it, as it would anyway.

use super::{Entry, Store};
use crate::engine::Workspace;
use crate::error::Result;
use claw_provider::{ImportRequest, Owner};
use std::collections::BTreeSet;

/// Re-checks and records the in-flight operations; returns one line per
/// address for the CLI to print.
pub async fn in_flight(ws: &Workspace, store: &Store) -> Result<Vec<String>> {
    let st = store.snapshot().await;
    if st.in_flight.is_empty() {
        return Ok(vec![]);
    }
    let addrs: BTreeSet<String> = st.in_flight.keys().cloned().collect();
    let observed = ws.refresh(&st, Some(&addrs)).await?;
    let mut notes = Vec::new();
    for (addr, fl) in &st.in_flight {
        let when = format!("{addr} ({}, in flight when pid {} died)", fl.op, fl.pid);
        let node = ws.nodes.get(addr);
        let entry = st.resources.get(addr);
        let (rtype, provider) = match (node, entry) {
            (Some(n), _) => (n.inst.rtype.clone(), n.inst.provider_key.clone()),
            (None, Some(e)) => (e.rtype.clone(), e.provider.clone()),
            (None, None) => {
                store.settle(addr).await?;
                notes.push(format!("{when}: no longer configured and not in the state, so claw cannot re-check it; if the object exists, remove it by hand"));
                continue;
            }
        };
        let live = observed.get(addr).and_then(|o| o.live.clone());
        let ours = live
            .as_ref()
            .is_some_and(|l| matches!(l.owner, Owner::Stack | Owner::NotApplicable));
        match (fl.op.as_str(), live) {
            ("delete", None) => {
                store.commit(addr, None).await?;
                notes.push(format!("{when}: it is gone; removed from the state"));
            }
            ("delete", Some(_)) => {
                store.settle(addr).await?;
                notes.push(format!("{when}: it still exists and stays in the state"));
            }
            (_, None) => {
                store.settle(addr).await?;
                notes.push(format!("{when}: not found; the plan shows what to do"));
            }
            (_, Some(_)) if !ours => {
                store.settle(addr).await?;
                notes.push(format!(
                    "{when}: the object there is not this stack's; left alone"
                ));
            }
            (_, Some(live)) => {
                let Some(p) = ws.providers.get(&provider) else {
                    notes.push(format!(
                        "{when}: no provider {provider} to re-check it; it stays in flight"
                    ));
                    continue;
                };
                let sources = crate::engine::resolve::Sources {
                    state: Some(&st),
                    ..Default::default()
                };
                let lookup = |r: &crate::config::template::ResRef| sources.value(r);
                let desired = node.and_then(|_| ws.desired(addr, &lookup).ok());
                let imported = p
                    .import(ImportRequest {
                        ctx: ws.ctx(),
                        address: addr.clone(),
                        rtype: rtype.clone(),
                        id: live.id.clone(),
                        desired,
                    })
                    .await
                    .into_state();
                match imported {
                    Ok(obj) => {
                        let e = Entry {
                            rtype,
                            provider,
                            object: std::sync::Arc::new(obj),
                            deps: match (node, entry) {
                                (Some(n), _) => n.deps.iter().cloned().collect(),
                                (None, Some(e)) => e.deps.clone(),
                                (None, None) => vec![],
                            },
                            prevent_destroy: node
                                .map(|n| n.lifecycle.prevent_destroy)
                                .or(entry.map(|e| e.prevent_destroy))
                                .unwrap_or(false),
                        };
                        store.commit(addr, Some(e)).await?;
                        notes.push(format!("{when}: found it; recorded in the state"));
                    }
                    Err(d) => notes.push(format!(
                        "{when}: found `{}` but cannot record it ({}); it stays in flight",
                        live.id, d.summary
                    )),
                }
            }
        }
    }
    Ok(notes)
}
