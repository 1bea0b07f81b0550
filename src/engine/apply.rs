//! The concurrent walker: runs a plan's operations in dependency order
//! (deletes in reverse), at most `parallelism` at once, skipping the
//! dependents of a failure while independent work goes on.
//!
//! **Invariant:** the state is saved after every completed operation.

use super::{Observed, Workspace};
use crate::config::template;
use crate::error::Problem;
use crate::plan::{Action, Change, Plan};
use crate::state::{Entry, Store};
use claw_provider::{ApplyRequest, Op, StateObject, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Delete,
    Create,
    Forget,
}

type OpId = (String, Phase);

#[derive(Debug, Default)]
pub struct Outcome {
    pub done: Vec<(String, String)>,
    pub failed: Vec<(String, Problem)>,
    pub skipped: Vec<(String, String)>,
    pub interrupted: bool,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && !self.interrupted
    }
}

fn ops_of(c: &Change) -> Vec<Phase> {
    match c.action {
        Action::Create | Action::Update => vec![Phase::Create],
        Action::DeleteCreate | Action::CreateDelete => vec![Phase::Delete, Phase::Create],
        Action::Delete => vec![Phase::Delete],
        Action::Forget => vec![Phase::Forget],
        Action::NoOp => vec![],
    }
}

/// Runs `plan` against `ws`. `observed` holds the live objects the plan was
/// checked against.
pub async fn run(
    ws: Arc<Workspace>,
    plan: &Plan,
    store: Arc<Store>,
    observed: Arc<BTreeMap<String, Observed>>,
    parallelism: usize,
    cancel: Arc<AtomicBool>,
) -> Outcome {
    let changes: BTreeMap<String, Change> = plan
        .changes
        .iter()
        .map(|c| (c.address.clone(), c.clone()))
        .collect();
    // Build the op graph.
    let mut deps: BTreeMap<OpId, BTreeSet<OpId>> = BTreeMap::new();
    for c in changes.values() {
        for ph in ops_of(c) {
            deps.entry((c.address.clone(), ph)).or_default();
        }
    }
    for c in changes.values() {
        let has = |a: &str, ph: Phase| deps.contains_key(&(a.to_string(), ph));
        let mut add: Vec<(OpId, OpId)> = Vec::new();
        if has(&c.address, Phase::Create) {
            for d in &c.after_addresses {
                if has(d, Phase::Create) {
                    add.push((
                        (c.address.clone(), Phase::Create),
                        (d.clone(), Phase::Create),
                    ));
                }
            }
        }
        if has(&c.address, Phase::Delete) {
            // Delete x only after everything that depends on x is deleted.
            for y in changes.values() {
                if y.address != c.address
                    && y.after_addresses.contains(&c.address)
                    && has(&y.address, Phase::Delete)
                {
                    add.push((
                        (c.address.clone(), Phase::Delete),
                        (y.address.clone(), Phase::Delete),
                    ));
                }
            }
        }
        match c.action {
            Action::DeleteCreate => add.push((
                (c.address.clone(), Phase::Create),
                (c.address.clone(), Phase::Delete),
            )),
            Action::CreateDelete => add.push((
                (c.address.clone(), Phase::Delete),
                (c.address.clone(), Phase::Create),
            )),
            _ => {}
        }
        for (op, dep) in add {
            deps.entry(op).or_default().insert(dep);
        }
    }
    let mut dependents: BTreeMap<OpId, BTreeSet<OpId>> = BTreeMap::new();
    for (op, ds) in &deps {
        for d in ds {
            dependents.entry(d.clone()).or_default().insert(op.clone());
        }
    }
    let mut waiting: BTreeMap<OpId, usize> =
        deps.iter().map(|(k, v)| (k.clone(), v.len())).collect();
    let mut ready: BTreeSet<OpId> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| k.clone())
        .collect();
    for r in &ready {
        waiting.remove(r);
    }
    let mut out = Outcome::default();
    let mut running: JoinSet<(OpId, Result<String, Problem>)> = JoinSet::new();
    let parallelism = parallelism.max(1);
    loop {
        while running.len() < parallelism && !cancel.load(Ordering::SeqCst) {
            // Deletes before creates when both are ready (frees names), then by address.
            let Some(op) = ready.iter().min_by_key(|(a, p)| (*p, a.clone())).cloned() else {
                break;
            };
            ready.remove(&op);
            let change = changes[&op.0].clone();
            let ws = ws.clone();
            let store = store.clone();
            let observed = observed.clone();
            running.spawn(async move {
                let r = run_op(&ws, &change, op.1, &store, &observed).await;
                (op, r)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (op, result) = match joined {
            Ok(x) => x,
            Err(e) => {
                out.failed.push((
                    "(internal)".into(),
                    Problem::new(format!("an operation panicked: {e}")),
                ));
                continue;
            }
        };
        match result {
            Ok(what) => {
                ws.events.op_finished(&op.0, &what, Ok(()));
                out.done.push((op.0.clone(), what));
                if let Some(ds) = dependents.get(&op) {
                    for d in ds {
                        if let Some(n) = waiting.get_mut(d) {
                            *n -= 1;
                            if *n == 0 {
                                waiting.remove(d);
                                ready.insert(d.clone());
                            }
                        }
                    }
                }
            }
            Err(p) => {
                ws.events.op_finished(&op.0, "failed", Err(&p.message));
                // Skip everything downstream.
                let mut stack = vec![op.clone()];
                let mut seen = BTreeSet::new();
                while let Some(o) = stack.pop() {
                    for d in dependents.get(&o).into_iter().flatten() {
                        if seen.insert(d.clone()) {
                            stack.push(d.clone());
                        }
                    }
                }
                for s in seen {
                    if waiting.remove(&s).is_some() || ready.remove(&s) {
                        let why = format!("depends on {}, which failed", op.0);
                        ws.events.op_skipped(&s.0, &why);
                        out.skipped.push((s.0.clone(), why));
                    }
                }
                out.failed.push((op.0.clone(), p));
            }
        }
    }
    if cancel.load(Ordering::SeqCst) {
        out.interrupted = true;
        let mut rest: Vec<OpId> = ready.into_iter().chain(waiting.into_keys()).collect();
        rest.sort();
        rest.dedup();
        for op in rest {
            out.skipped.push((op.0, "not started: interrupted".into()));
        }
    }
    out.skipped.sort();
    out.skipped.dedup();
    out
}

async fn run_op(
    ws: &Workspace,
    c: &Change,
    phase: Phase,
    store: &Store,
    observed: &BTreeMap<String, Observed>,
) -> Result<String, Problem> {
    let Some(p) = ws.providers.get(&c.provider) else {
        return Err(Problem::new(format!(
            "{}: no configured provider {}",
            c.address, c.provider
        )));
    };
    let live = observed.get(&c.address).and_then(|o| o.live.clone());
    let prior = store.state.lock().await.resources.get(&c.address).cloned();
    match phase {
        Phase::Forget => {
            store.state.lock().await.resources.remove(&c.address);
            store.save().await.map_err(|e| {
                e.problems
                    .into_iter()
                    .next()
                    .unwrap_or(Problem::new("cannot save state"))
            })?;
            Ok("forgotten".into())
        }
        Phase::Delete => {
            ws.events.op_started(&c.address, "deleting");
            let from_live = || {
                live.as_ref().map(|l| StateObject {
                    id: l.id.clone(),
                    attrs: l.attrs.clone(),
                    private: Default::default(),
                })
            };
            // create_before_destroy: the state already holds the new object;
            // the old one is the live object seen at plan time.
            let old_only = c.action == Action::CreateDelete;
            let prior_obj = if old_only {
                from_live()
            } else {
                prior.as_ref().map(Entry::object).or_else(from_live)
            };
            // Still configured (destroy, or a replace): the provider sees the
            // configured attributes too (e.g. a worktree's `force`).
            let desired = if ws.nodes.contains_key(&c.address) {
                let snapshot = store.state.lock().await.clone();
                ws.desired(&c.address, &|r| lookup(&snapshot, observed, r))
                    .ok()
            } else {
                None
            };
            let resp = p
                .apply(ApplyRequest {
                    ctx: ws.ctx(),
                    address: c.address.clone(),
                    rtype: c.rtype.clone(),
                    op: Op::Delete,
                    desired,
                    prior: prior_obj,
                    live: live.clone(),
                    changes: vec![],
                })
                .await
                .into_result()
                .map_err(|d| ws.diag_problem(&d, &c.address))?;
            for d in &resp.diagnostics {
                ws.events.note(&ws.diag_problem(d, &c.address).to_string());
            }
            if !old_only {
                store.state.lock().await.resources.remove(&c.address);
                store.save().await.map_err(first_problem)?;
            }
            Ok(if old_only {
                "old object deleted"
            } else {
                "deleted"
            }
            .into())
        }
        Phase::Create => {
            let Some(node) = ws.nodes.get(&c.address) else {
                return Err(Problem::new(format!(
                    "{}: not in the configuration any more",
                    c.address
                )));
            };
            let snapshot = store.state.lock().await.clone();
            let desired = ws
                .desired(&c.address, &|r| lookup(&snapshot, observed, r))
                .map_err(|d| ws.diag_problem(&d, &c.address))?;
            if let Some((k, _)) = desired.iter().find(|(_, v)| v.contains_unknown()) {
                return Err(Problem::new(format!(
                    "{}: `{k}` is still unknown at apply time",
                    c.address
                ))
                .hint("a referenced resource did not report the attribute; check its provider"));
            }
            let (op, verb) = match (c.action, &prior) {
                (Action::Update, _) => (Op::Update, "updating"),
                _ => (Op::Create, "creating"),
            };
            ws.events.op_started(&c.address, verb);
            // After a delete-then-create, the old live object is gone.
            let live = if c.action == Action::DeleteCreate {
                None
            } else {
                live
            };
            let prior_obj = if c.action == Action::Update {
                prior.as_ref().map(Entry::object)
            } else {
                None
            };
            let resp = p
                .apply(ApplyRequest {
                    ctx: ws.ctx(),
                    address: c.address.clone(),
                    rtype: c.rtype.clone(),
                    op,
                    desired: Some(desired),
                    prior: prior_obj,
                    live,
                    changes: c.diff.clone(),
                })
                .await
                .into_result()
                .map_err(|d| ws.diag_problem(&d, &c.address))?;
            for d in &resp.diagnostics {
                ws.events.note(&ws.diag_problem(d, &c.address).to_string());
            }
            if let Some(obj) = resp.state {
                let entry = Entry {
                    rtype: c.rtype.clone(),
                    provider: c.provider.clone(),
                    id: obj.id,
                    attrs: obj.attrs,
                    private: obj.private,
                    deps: node.deps.iter().cloned().collect(),
                    prevent_destroy: node.lifecycle.prevent_destroy,
                };
                store
                    .state
                    .lock()
                    .await
                    .resources
                    .insert(c.address.clone(), entry);
                store.save().await.map_err(first_problem)?;
            }
            Ok(match c.action {
                Action::Update => "updated",
                Action::DeleteCreate | Action::CreateDelete => "replaced",
                _ => "created",
            }
            .into())
        }
    }
}

/// A reference's value at apply time: what the state now records (dependencies
/// applied in this run included), else the live object seen at plan time.
fn lookup(
    snapshot: &crate::state::State,
    observed: &BTreeMap<String, Observed>,
    r: &template::ResRef,
) -> Value {
    snapshot
        .resources
        .get(&r.instance())
        .and_then(|e| Value::Map(e.attrs.clone()).get_path(&r.attr).cloned())
        .or_else(|| {
            observed
                .get(&r.instance())
                .and_then(|o| o.live.as_ref())
                .and_then(|l| Value::Map(l.attrs.clone()).get_path(&r.attr).cloned())
        })
        .unwrap_or(Value::Unknown)
}

fn first_problem(e: crate::error::Error) -> Problem {
    e.problems
        .into_iter()
        .next()
        .unwrap_or(Problem::new("cannot save the state"))
}
