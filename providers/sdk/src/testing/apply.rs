//! Apply: the plan's operations in dependency order, as the engine's walker
//! runs them.

use super::{named, Change, Harness, Plan, Recorded};
use crate::decide::Action;
use crate::diag::Diagnostic;
use crate::provider::*;
use crate::value::{Attrs, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

impl Harness {
    /// Carries out `plan`; refuses a plan with errors. Independent operations
    /// run concurrently; what depends on a failure is skipped; the first
    /// failure is returned after everything else was done.
    pub async fn apply_plan(&mut self, plan: &Plan) -> Result<(), Diagnostic> {
        if let Some(e) = plan.error() {
            return Err(e.clone());
        }
        let by_addr: BTreeMap<&str, &Change> = plan
            .changes
            .iter()
            .map(|c| (c.address.as_str(), c))
            .collect();
        // Deletes: dependents first (the state's record and the plan's deps).
        let deps_of = |a: &str| -> BTreeSet<String> {
            let mut d: BTreeSet<String> = by_addr
                .get(a)
                .map(|c| c.deps.iter().cloned().collect())
                .unwrap_or_default();
            if let Some(r) = self.state.get(a) {
                d.extend(r.deps.iter().cloned());
            }
            d
        };
        let deletes: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| matches!(c.action, Action::Delete | Action::DeleteCreate))
            .map(|c| c.address.clone())
            .collect();
        let olds: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::CreateDelete)
            .map(|c| c.address.clone())
            .collect();
        let forward: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.action != Action::Delete)
            .map(|c| c.address.clone())
            .collect();
        let all_deps: BTreeMap<String, BTreeSet<String>> = plan
            .changes
            .iter()
            .map(|c| (c.address.clone(), deps_of(&c.address)))
            .collect();
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let mut first: Option<Diagnostic> = None;
        let reverse = |a: &String, b: &String| all_deps.get(a).is_some_and(|d| d.contains(b));
        let ahead = |a: &String, b: &String| all_deps.get(b).is_some_and(|d| d.contains(a));
        type Order<'a> = &'a dyn Fn(&String, &String) -> bool;
        let steps: [(&[String], Step, Order); 3] = [
            (&deletes, Step::Delete, &reverse),
            (&forward, Step::Create, &ahead),
            (&olds, Step::DeleteOld, &reverse),
        ];
        for (nodes, step, order) in steps {
            for wave in waves(nodes, order) {
                self.run_wave(&wave, &by_addr, step, order, &mut failed, &mut first)
                    .await;
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn run_wave(
        &mut self,
        wave: &[String],
        by_addr: &BTreeMap<&str, &Change>,
        step: Step,
        before: &dyn Fn(&String, &String) -> bool,
        failed: &mut BTreeSet<String>,
        first: &mut Option<Diagnostic>,
    ) {
        let (skip, run): (Vec<&String>, Vec<&String>) = wave
            .iter()
            .partition(|a| failed.iter().any(|f| *f == **a || before(f, a)));
        failed.extend(skip.into_iter().cloned());
        let this = &*self;
        let results =
            futures::future::join_all(run.iter().map(|a| this.operate(by_addr[a.as_str()], step)))
                .await;
        for (a, r) in run.iter().zip(results) {
            match r {
                Ok(Outcome::Keep) => {}
                Ok(Outcome::Record(rec)) => {
                    self.state.insert((*a).clone(), rec);
                }
                Ok(Outcome::Remove) => {
                    self.state.remove(*a);
                }
                Err((rec, d)) => {
                    if let Some(rec) = rec {
                        self.state.insert((*a).clone(), rec);
                    }
                    failed.insert((*a).clone());
                    first.get_or_insert(d);
                }
            }
        }
    }

    /// One operation of a change, as the engine's apply runs it.
    async fn operate(
        &self,
        c: &Change,
        step: Step,
    ) -> Result<Outcome, (Option<Recorded>, Diagnostic)> {
        let fail = |d: Diagnostic| (None, named(d, &c.address));
        let recorded = |object: StateObject| Recorded {
            rtype: c.rtype.clone(),
            object,
            deps: c.deps.clone(),
            prevent_destroy: c.prevent_destroy,
        };
        match (step, c.action) {
            (Step::Create, Action::Forget) => Ok(Outcome::Remove),
            (Step::Create, Action::StateOnly) => {
                let mut r = self.state.get(&c.address).cloned().ok_or_else(|| {
                    fail(Diagnostic::error(
                        "a state-only change without a state entry",
                    ))
                })?;
                r.prevent_destroy = c.prevent_destroy;
                r.deps = c.deps.clone();
                Ok(Outcome::Record(r))
            }
            (Step::Create, Action::Adopt) => {
                let l = c
                    .live
                    .as_ref()
                    .ok_or_else(|| fail(Diagnostic::error("the object to adopt is gone")))?;
                // What an apply would record: the planned attributes and the
                // live id; not every live attribute, which a provider would
                // read as "configured last time" (docker: removed from the
                // configuration, so a replace).
                let mut attrs: Attrs = c
                    .desired
                    .iter()
                    .flatten()
                    .filter(|(_, v)| !v.contains_unknown())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some(id) = l.attrs.get("id") {
                    attrs.entry("id".into()).or_insert(id.clone());
                }
                Ok(Outcome::Record(recorded(StateObject {
                    id: l.id.clone(),
                    attrs,
                    private: Attrs::new(),
                })))
            }
            (Step::Delete | Step::DeleteOld, _) => {
                let old_only = step == Step::DeleteOld;
                let from_live = || {
                    c.live.as_ref().map(|l| StateObject {
                        id: l.id.clone(),
                        attrs: l.attrs.clone(),
                        private: Attrs::new(),
                    })
                };
                let prior = if old_only {
                    from_live()
                } else {
                    self.state
                        .get(&c.address)
                        .map(|r| r.object.clone())
                        .or_else(from_live)
                };
                let resp = self
                    .provider
                    .apply(ApplyRequest {
                        ctx: self.ctx.clone(),
                        address: c.address.clone(),
                        rtype: c.rtype.clone(),
                        op: Op::Delete,
                        desired: c.desired.clone(),
                        prior: prior.map(Arc::new),
                        live: c.live.clone().map(Arc::new),
                        changes: Vec::new(),
                    })
                    .await;
                resp.into_result().map_err(fail)?;
                Ok(if old_only {
                    Outcome::Keep
                } else {
                    Outcome::Remove
                })
            }
            (Step::Create, _) => {
                let desired = c
                    .desired
                    .clone()
                    .ok_or_else(|| fail(Diagnostic::error("nothing to create")))?;
                let update = c.action == Action::Update;
                let resp = self
                    .provider
                    .apply(ApplyRequest {
                        ctx: self.ctx.clone(),
                        address: c.address.clone(),
                        rtype: c.rtype.clone(),
                        op: if update { Op::Update } else { Op::Create },
                        desired: Some(desired.clone()),
                        prior: if update {
                            c.prior.clone().map(Arc::new)
                        } else {
                            None
                        },
                        live: if c.action == Action::DeleteCreate {
                            None
                        } else {
                            c.live.clone().map(Arc::new)
                        },
                        changes: c.diff.clone(),
                    })
                    .await;
                let resp = resp.into_result().map_err(fail)?;
                let Some(object) = resp.state else {
                    return Ok(Outcome::Keep);
                };
                let differ = inconsistent(&desired, &object.attrs, &c.address);
                let rec = recorded(object);
                match differ {
                    Some(d) => Err((Some(rec), d)),
                    None => Ok(Outcome::Record(rec)),
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Step {
    /// Deletes, and the delete half of delete-then-create replaces.
    Delete,
    /// Creates, updates, the create half of replaces, adopt, state-only, forget.
    Create,
    /// The old object of a create-before-destroy replace.
    DeleteOld,
}

enum Outcome {
    Keep,
    Record(Recorded),
    Remove,
}

/// Orders `nodes` into waves: each node comes after every node `before` it.
fn waves(nodes: &[String], before: &dyn Fn(&String, &String) -> bool) -> Vec<Vec<String>> {
    let mut left: Vec<String> = nodes.to_vec();
    let mut out = Vec::new();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|a| !left.iter().any(|b| b != *a && before(b, a)))
            .cloned()
            .collect();
        assert!(!ready.is_empty(), "dependency cycle among {left:?}");
        left.retain(|a| !ready.contains(a));
        out.push(ready);
    }
    out
}

/// A reported attribute that differs from the known value sent.
fn inconsistent(sent: &Attrs, reported: &Attrs, address: &str) -> Option<Diagnostic> {
    let differ: Vec<&str> = sent
        .iter()
        .filter(|(_, v)| !v.contains_unknown() && !matches!(v, Value::Null))
        .filter(|(k, v)| reported.get(*k) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect();
    (!differ.is_empty()).then(|| {
        Diagnostic::error(format!(
            "the provider produced an inconsistent result: {} differ from the planned value",
            differ.join(", ")
        ))
        .with_address(address)
    })
}
