//! One object, one address (SPEC §1.1a, issue 10): before a plan is made,
//! every address's object is named by its provider (normalised: a file's
//! absolute path, a tmux socket and session, a container name, ...), and two
//! addresses that claim one object are refused, naming both — with a
//! `[[moved]]` hint when one of them is the state's old name for the other.

use super::Workspace;
use crate::error::Problem;
use crate::plan::Action;
use crate::state::State;
use claw_provider::{Attrs, IdentityItem, IdentityRequest};
use std::collections::BTreeMap;

impl Workspace {
    /// `planned`: each configured address with its planned attributes (the
    /// plan's `after`); the state's other entries are named from their
    /// recorded attributes.
    pub(crate) fn duplicate_objects(
        &self,
        planned: &BTreeMap<String, (Action, Attrs)>,
        state: &State,
    ) -> Vec<Problem> {
        let mut per: BTreeMap<&str, Vec<IdentityItem>> = BTreeMap::new();
        for (addr, (_, attrs)) in planned {
            let Some(n) = self.nodes.get(addr) else {
                continue;
            };
            per.entry(&n.inst.provider_key)
                .or_default()
                .push(IdentityItem {
                    address: addr,
                    rtype: &n.inst.rtype,
                    attrs,
                });
        }
        for (addr, e) in &state.resources {
            if planned.contains_key(addr) {
                continue;
            }
            per.entry(&e.provider).or_default().push(IdentityItem {
                address: addr,
                rtype: &e.rtype,
                attrs: &e.attrs,
            });
        }
        let ctx = self.ctx();
        // (identity, address), sorted: an object claimed twice is a run of two.
        let mut claims: Vec<(String, String)> = Vec::new();
        for (key, items) in per {
            let Some(p) = self.providers.get(key) else {
                continue;
            };
            let resp = p.identities(IdentityRequest {
                ctx: ctx.clone(),
                items,
            });
            claims.extend(resp.identities.into_iter().map(|(addr, id)| (id, addr)));
        }
        claims.sort_unstable();
        claims.dedup();
        let mut out = Vec::new();
        for run in claims.chunk_by(|a, b| a.0 == b.0) {
            if run.len() < 2 {
                continue;
            }
            let id = &run[0].0;
            let list: Vec<&String> = run.iter().map(|(_, a)| a).collect();
            let configured: Vec<&String> = list
                .iter()
                .copied()
                .filter(|a| planned.contains_key(*a))
                .collect();
            let old: Vec<&String> = list
                .iter()
                .copied()
                .filter(|a| !planned.contains_key(*a) && state.resources.contains_key(*a))
                .collect();
            let what = id.split_once(':').map(|(_, rest)| rest).unwrap_or(id);
            let p = Problem::new(format!("{} manage one object ({what})", join_and(&list)))
                .detail("claw refuses to plan a delete and a create of the same object");
            let p = match (configured.as_slice(), old.as_slice()) {
                ([new], [was]) => p.hint(format!(
                    "if {was} was renamed to {new}, say so, and the object is kept:\n\n    [[moved]]\n    from = '{was}'\n    to   = '{new}'\n\nor run `claw state mv {was} {new}`"
                )),
                _ => p.hint("give each resource its own path or name, or remove one of them"),
            };
            let p = match configured.first().and_then(|a| self.nodes.get(a.as_str())) {
                Some(n) => p.at(self.cfg.loc(&self.cfg.resource(&n.inst).node.span)),
                None => p,
            };
            out.push(p);
        }
        out
    }
}

fn join_and(items: &[&String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.to_string(),
        [a, b] => format!("{a} and {b}"),
        _ => {
            let (last, init) = items.split_last().expect("three or more");
            let init: Vec<&str> = init.iter().map(|s| s.as_str()).collect();
            format!("{} and {last}", init.join(", "))
        }
    }
}
