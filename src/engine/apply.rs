//! The concurrent walker: runs a plan's operations in dependency order
//! (deletes in reverse), at most `parallelism` at once, skipping the
//! dependents of a failure while independent work goes on.
//!
//! **Invariant:** every operation is journalled before it starts
//! (`Store::begin`) and when it completes (`Store::commit`/`end`), O(1) each;
//! a commit is durable (journal synced) before the operations that depend on
//! it start, and every record is when the walk returns.

use super::interrupt::Interrupt;
use super::walk::Walker;
use super::{contract, resolve, Observed, Workspace};
use crate::config::template;
use crate::error::Problem;
use crate::plan::{Action, Change, Plan};
use crate::state::{Entry, Store};
use claw_provider::{ApplyRequest, Cancel, Ctx, Op, StateObject, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Delete,
    Create,
    Forget,
    /// Adopt or a state-only change: the state is written, the object untouched.
    Record,
    /// A `[check.*]`: runs after its dependencies, gates its dependents.
    Check,
}

type OpId = (String, Phase);
/// The walker's key: phase first, so ready deletes run before creates.
type Key = (Phase, String);

#[derive(Debug, Default)]
pub struct Outcome {
    pub done: Vec<(String, String)>,
    pub failed: Vec<(String, Problem)>,
    pub skipped: Vec<(String, String)>,
    /// Interrupted: operations that never started.
    pub not_started: Vec<String>,
    /// Abandoned by a second interrupt while they ran.
    pub abandoned: Vec<String>,
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
        Action::Adopt | Action::StateOnly | Action::Move => vec![Phase::Record],
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
    interrupt: &Interrupt,
) -> Outcome {
    // Shared with the operations' tasks, not copied per operation.
    let changes: BTreeMap<String, Arc<Change>> = plan
        .changes
        .iter()
        .map(|c| (c.address.clone(), Arc::new(c.clone())))
        .collect();
    // Build the op graph.
    let mut deps: BTreeMap<OpId, BTreeSet<OpId>> = BTreeMap::new();
    for c in changes.values() {
        for ph in ops_of(c) {
            deps.entry((c.address.clone(), ph)).or_default();
        }
    }
    for a in &plan.checks {
        deps.entry((a.clone(), Phase::Check)).or_default();
    }
    // Who waits for whom, indexed once (not a scan per change).
    let mut dependents_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in changes.values() {
        for d in &c.after_addresses {
            dependents_of
                .entry(d.as_str())
                .or_default()
                .push(c.address.as_str());
        }
    }
    for c in changes.values() {
        let has = |a: &str, ph: Phase| deps.contains_key(&(a.to_string(), ph));
        let mut add: Vec<(OpId, OpId)> = Vec::new();
        let forward = [Phase::Create, Phase::Record]
            .into_iter()
            .find(|ph| has(&c.address, *ph));
        if let Some(me) = forward {
            for d in &c.after_addresses {
                if let Some(ph) = [Phase::Create, Phase::Record, Phase::Check]
                    .into_iter()
                    .find(|ph| has(d, *ph))
                {
                    add.push(((c.address.clone(), me), (d.clone(), ph)));
                }
            }
        }
        // A replace of what a check gates waits for the check, delete too.
        if c.action == Action::DeleteCreate {
            for d in &c.after_addresses {
                if has(d, Phase::Check) {
                    add.push((
                        (c.address.clone(), Phase::Delete),
                        (d.clone(), Phase::Check),
                    ));
                }
            }
        }
        if has(&c.address, Phase::Delete) {
            // Delete x only after everything that depends on x is deleted.
            for y in dependents_of.get(c.address.as_str()).into_iter().flatten() {
                if *y != c.address && has(y, Phase::Delete) {
                    add.push((
                        (c.address.clone(), Phase::Delete),
                        (y.to_string(), Phase::Delete),
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
    // A check waits for what it depends on (applied, or checked).
    for a in &plan.checks {
        for d in ws.checks.get(a).map(|c| &c.deps).into_iter().flatten() {
            let has = |ph: Phase| deps.contains_key(&(d.clone(), ph));
            if let Some(ph) = [Phase::Create, Phase::Record, Phase::Check]
                .into_iter()
                .find(|ph| has(*ph))
            {
                deps.entry((a.clone(), Phase::Check))
                    .or_default()
                    .insert((d.clone(), ph));
            }
        }
    }
    // Deletes before creates when both are ready (frees names), then by
    // address: the walker's key order is (phase, address).
    let mut walker = Walker::new(
        deps.into_iter()
            .map(|((a, ph), ds)| ((ph, a), ds.into_iter().map(|(a, ph)| (ph, a)).collect()))
            .collect(),
    );
    let mut out = Outcome::default();
    // `[[moved]]` renames are recorded first: every operation below finds its
    // prior under the new address, and a crash leaves no entry behind twice.
    for c in changes.values() {
        if let Some(from) = &c.moved_from {
            if let Err(p) = record_move(&store, from, &c.address).await {
                out.failed.push((c.address.clone(), p));
                return out;
            }
        }
    }
    let mut running: JoinSet<(Key, Result<String, Problem>)> = JoinSet::new();
    let mut in_flight: BTreeSet<Key> = BTreeSet::new();
    let mut abandoning = false;
    let parallelism = parallelism.max(1);
    // Done operations whose dependents wait until their commit is durable:
    // one journal sync lets all of them go, and the operations themselves
    // freed their slots without waiting for it.
    let mut unsynced: Vec<Key> = Vec::new();
    store.defer_syncs();
    loop {
        if !unsynced.is_empty() {
            let keys = std::mem::take(&mut unsynced);
            match store.sync().await {
                Ok(()) => keys.iter().for_each(|k| walker.done(k)),
                Err(e) => {
                    let p = first_problem(e);
                    for k in keys {
                        let why = format!(
                            "depends on {}, whose record could not be made durable: {}",
                            k.1, p.message
                        );
                        skip_downstream(&ws, &mut walker, &k, &why, &mut out);
                    }
                }
            }
        }
        while running.len() < parallelism && !interrupt.stopped() {
            let Some(key) = walker.take_ready() else {
                break;
            };
            let change = changes.get(&key.1).cloned();
            let ws = ws.clone();
            let store = store.clone();
            let observed = observed.clone();
            let stop = interrupt.stop.clone();
            in_flight.insert(key.clone());
            running.spawn(async move {
                let r = match change {
                    Some(c) => run_op(&ws, &c, key.0, &store, &observed, &stop).await,
                    None => ws.check_op(&key.1, &store, &observed, &stop).await,
                };
                (key, r)
            });
        }
        let joined = tokio::select! {
            j = running.join_next() => j,
            _ = interrupt.abandon.cancelled(), if !abandoning => {
                // Stop waiting; what completed meanwhile is still collected.
                abandoning = true;
                running.abort_all();
                continue;
            }
        };
        let Some(joined) = joined else {
            break;
        };
        let (key, result) = match joined {
            Ok(x) => x,
            Err(e) if e.is_cancelled() => continue,
            Err(e) => {
                out.failed.push((
                    "(internal)".into(),
                    Problem::new(format!("an operation panicked: {e}")),
                ));
                continue;
            }
        };
        let addr = key.1.clone();
        in_flight.remove(&key);
        match result {
            Err(_) if interrupt.stop.declined(&addr) => {
                let _ = store.end(&addr).await;
                ws.events.op_skipped(&addr, "not started: interrupted");
                out.not_started.push(addr);
            }
            Ok(what) => {
                ws.events.op_finished(&addr, &what, Ok(()));
                out.done.push((addr, what));
                if walker.has_dependents(&key) {
                    unsynced.push(key);
                } else {
                    walker.done(&key);
                }
            }
            Err(p) => {
                // A failed operation is no longer in flight.
                let _ = store.end(&addr).await;
                ws.events.op_finished(&addr, "failed", Err(&p.message));
                let why = format!("depends on {addr}, which failed");
                skip_downstream(&ws, &mut walker, &key, &why, &mut out);
                out.failed.push((addr, p));
            }
        }
    }
    if interrupt.stopped() {
        out.interrupted = true;
        out.abandoned = in_flight.into_iter().map(|k| k.1).collect();
        out.not_started
            .extend(walker.drain_pending().into_iter().map(|k| k.1));
        out.not_started.sort();
        out.not_started.dedup();
    }
    // Everything recorded is durable when the walk returns.
    if let Err(e) = store.sync().await {
        out.failed.push(("(state)".into(), first_problem(e)));
    }
    out.skipped.sort();
    out.skipped.dedup();
    out
}

/// Skips every operation downstream of `key` (not started yet), saying why.
fn skip_downstream(
    ws: &Workspace,
    walker: &mut Walker<Key>,
    key: &Key,
    why: &str,
    out: &mut Outcome,
) {
    for s in walker.failed(key) {
        ws.events.op_skipped(&s.1, why);
        out.skipped.push((s.1, why.to_string()));
    }
}

async fn run_op(
    ws: &Workspace,
    c: &Change,
    phase: Phase,
    store: &Store,
    observed: &BTreeMap<String, Observed>,
    cancel: &Cancel,
) -> Result<String, Problem> {
    if cancel.is_cancelled() {
        return Err(ws.diag_problem(&cancel.decline(&c.address), &c.address));
    }
    let ctx = || Ctx {
        cancel: cancel.clone(),
        ..ws.ctx()
    };
    let Some(p) = ws.providers.get(&c.provider) else {
        return Err(Problem::new(format!(
            "{}: no configured provider {}",
            c.address, c.provider
        )));
    };
    let live = observed.get(&c.address).and_then(|o| o.live.clone());
    let prior = store.state.lock().await.resources.get(&c.address).cloned();
    match phase {
        Phase::Record => {
            let Some(node) = ws.nodes.get(&c.address) else {
                return Err(Problem::new(format!(
                    "{}: not in the configuration any more",
                    c.address
                )));
            };
            let entry = match (c.action, prior) {
                (Action::StateOnly | Action::Move, Some(mut e)) => {
                    e.prevent_destroy = node.lifecycle.prevent_destroy;
                    e.deps = node.deps.iter().cloned().collect();
                    e
                }
                _ => {
                    let Some(l) = live else {
                        return Err(Problem::new(format!(
                            "{}: the object to adopt is gone",
                            c.address
                        ))
                        .hint("run `claw plan` again"));
                    };
                    // What the plan showed plus what the provider computes
                    // (the live id, ...); not every live attribute, which a
                    // provider reads as "configured last time" (issue 10).
                    let attrs = adopted_attrs(ws, c, &l);
                    Entry {
                        rtype: c.rtype.clone(),
                        provider: c.provider.clone(),
                        object: Arc::new(StateObject {
                            id: l.id.clone(),
                            attrs,
                            private: Default::default(),
                        }),
                        deps: node.deps.iter().cloned().collect(),
                        prevent_destroy: node.lifecycle.prevent_destroy,
                    }
                }
            };
            store
                .commit(&c.address, Some(entry))
                .await
                .map_err(first_problem)?;
            Ok(match c.action {
                Action::Adopt => "adopted",
                Action::Move => "moved",
                _ => "state updated",
            }
            .into())
        }
        Phase::Check => ws.check_op(&c.address, store, observed, cancel).await,
        Phase::Forget => {
            store
                .commit(&c.address, None)
                .await
                .map_err(first_problem)?;
            Ok("forgotten".into())
        }
        Phase::Delete => {
            ws.events.op_started(&c.address, "deleting");
            let from_live = || {
                live.as_ref().map(|l| {
                    Arc::new(StateObject {
                        id: l.id.clone(),
                        attrs: l.attrs.clone(),
                        private: Default::default(),
                    })
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
                let st = store.state.lock().await;
                ws.desired(&c.address, &|r| lookup(&st, observed, r)).ok()
            } else {
                None
            };
            let journal_op = if old_only { "delete-old" } else { "delete" };
            store
                .begin(&c.address, journal_op)
                .await
                .map_err(first_problem)?;
            let resp = p
                .apply(ApplyRequest {
                    ctx: ctx(),
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
            if old_only {
                store.end(&c.address).await.map_err(first_problem)?;
            } else {
                store
                    .commit(&c.address, None)
                    .await
                    .map_err(first_problem)?;
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
            let desired = {
                let st = store.state.lock().await;
                ws.desired(&c.address, &|r| lookup(&st, observed, r))
            }
            .map_err(|d| ws.diag_problem(&d, &c.address))?;
            // ignore_changes paths keep their live value, as the plan showed.
            let mut desired = desired;
            if let Some(l) = &live {
                contract::merge_ignored(&mut desired, &l.attrs, &node.lifecycle.ignore_changes);
            }
            // Apply carries out the plan's `after` and nothing else.
            if let Some(planned) = &c.after {
                let differs = contract::incompatible(planned, &Value::Map(desired.clone()));
                if !differs.is_empty() {
                    return Err(Problem::new(format!(
                        "{}: {} would differ from what the plan showed; not applied",
                        c.address,
                        differs.join(", ")
                    ))
                    .hint("an input changed during the run; run `claw plan` again and review it"));
                }
            }
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
            let journal_op = match c.action {
                Action::Update => "update",
                Action::DeleteCreate | Action::CreateDelete => "replace",
                _ => "create",
            };
            store
                .begin(&c.address, journal_op)
                .await
                .map_err(first_problem)?;
            let sent = desired;
            let resp = p
                .apply(ApplyRequest {
                    ctx: ctx(),
                    address: c.address.clone(),
                    rtype: c.rtype.clone(),
                    op,
                    desired: Some(sent.clone()),
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
                // Compare what the provider reports with what was applied.
                let reported: Vec<String> = contract::incompatible(
                    &Value::Map(sent.clone()),
                    &Value::Map(
                        obj.attrs
                            .iter()
                            .filter(|(k, _)| sent.contains_key(*k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                )
                .into_iter()
                .filter(|p| !contract::ignored(p, &node.lifecycle.ignore_changes))
                .collect();
                let entry = Entry {
                    rtype: c.rtype.clone(),
                    provider: c.provider.clone(),
                    object: Arc::new(obj),
                    deps: node.deps.iter().cloned().collect(),
                    prevent_destroy: node.lifecycle.prevent_destroy,
                };
                store
                    .commit(&c.address, Some(entry))
                    .await
                    .map_err(first_problem)?;
                if !reported.is_empty() {
                    return Err(Problem::new(format!(
                        "{}: the provider produced an inconsistent result: {} differ from the planned value",
                        c.address,
                        reported.join(", ")
                    ))
                    .detail("the state records what the provider reported")
                    .hint("this is a bug in the provider; run `claw plan` to see the difference"));
                }
            } else {
                store.end(&c.address).await.map_err(first_problem)?;
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

/// What an adopt records: the planned `after` (known values) and, from the
/// live object, the type's computed attributes and `id`.
fn adopted_attrs(
    ws: &Workspace,
    c: &Change,
    live: &claw_provider::LiveObject,
) -> claw_provider::Attrs {
    let mut attrs: claw_provider::Attrs = match &c.after {
        Some(Value::Map(after)) => after
            .iter()
            .filter(|(_, v)| !v.contains_unknown())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Default::default(),
    };
    let computed = ws
        .reg
        .resource_type(&c.rtype)
        .map(|(_, t)| t.computed)
        .unwrap_or(&[]);
    for k in computed.iter().copied().chain(["id"]) {
        if let Some(v) = live.attrs.get(k) {
            attrs.entry(k.to_string()).or_insert_with(|| v.clone());
        }
    }
    attrs
}

/// A reference's value at apply time: what the state now records (dependencies
/// applied in this run included), else the live object seen at plan time.
fn lookup(
    state: &crate::state::State,
    observed: &BTreeMap<String, Observed>,
    r: &template::ResRef,
) -> Value {
    resolve::Sources {
        after: None,
        state: Some(state),
        observed: Some(observed),
    }
    .value(r)
}

/// Moves the state entry at `from` to `to` (two journal records).
async fn record_move(store: &Store, from: &str, to: &str) -> Result<(), Problem> {
    let entry = store.state.lock().await.resources.get(from).cloned();
    let Some(mut entry) = entry else {
        // Already moved (a saved plan re-applied after a crash).
        return Ok(());
    };
    for d in &mut entry.deps {
        if d == from {
            *d = to.to_string();
        }
    }
    store.commit(to, Some(entry)).await.map_err(first_problem)?;
    store.commit(from, None).await.map_err(first_problem)
}

fn first_problem(e: crate::error::Error) -> Problem {
    e.problems
        .into_iter()
        .next()
        .unwrap_or(Problem::new("cannot save the state"))
}
