//! `claw_provider::testing` (feature `testing`): one harness that plans and
//! applies a set of instances through a provider the way the engine does, for
//! the providers' own tests.
//!
//! A plan is: validate → expand → prepare each instance (collecting the files
//! read as [`Input`]s) → implicit dependencies and reads (folded into the
//! readers' values) → **one** refresh call for every
//! configured and recorded address (orphans included) → diff of each object
//! this stack may touch → `ignore_changes` → the real [`decide`] (the function
//! the engine uses) → [`Plan`]. Applying walks the plan in dependency order,
//! concurrently where independent (deletes first, dependents before their
//! dependencies; then creates and updates, dependencies first; then the old
//! halves of `create_before_destroy` replaces), records what each operation
//! reports in the harness's state, skips what depends on a failure, and
//! reports a provider result that differs from what was sent (Terraform's
//! "provider produced an inconsistent result").
//!
//! ```ignore
//! let mut h = Harness::new(provider, Ctx::for_tests("stack", dir));
//! h.set(vec![Resource::json("file", "motd", json!({ "path": "motd", "content": "hi" }))]);
//! let plan = h.converge().await; // plan, apply, plan again: no changes
//! assert_eq!(plan.action("file.motd"), Some(Action::Create));
//! ```
//!
//! What the harness leaves to the engine: references between resources
//! (attributes are literal), `for_each` expansion (give each instance its
//! key), saved plans, state files and locks.

mod apply;
mod model;

pub use model::{address, Change, Lifecycle, Plan, Recorded, Resource};

use crate::decide::{apply_ignore, decide, Action, DecideInput, Reason, Refusal};
use crate::diag::Diagnostic;
use crate::provider::*;
use crate::value::{Attrs, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A configured instance after expansion and prepare.
struct Instance {
    address: String,
    rtype: String,
    /// The attributes as configured (what `implicit_deps` sees).
    provisional: Attrs,
    desired: Attrs,
    lifecycle: Lifecycle,
    deps: BTreeSet<String>,
}

/// Plans and applies through one provider; holds the state between runs.
pub struct Harness {
    pub provider: Arc<dyn Provider>,
    pub ctx: Ctx,
    pub config: Vec<Resource>,
    pub state: BTreeMap<String, Recorded>,
}

/// The sum of a provider's counters (API calls, round trips).
pub fn calls(p: &dyn Provider) -> u64 {
    p.counters().iter().map(|(_, n)| *n).sum()
}

impl Harness {
    pub fn new(provider: Arc<dyn Provider>, ctx: Ctx) -> Harness {
        Harness {
            provider,
            ctx,
            config: Vec::new(),
            state: BTreeMap::new(),
        }
    }

    /// Replaces the configuration.
    pub fn set(&mut self, config: Vec<Resource>) -> &mut Harness {
        self.config = config;
        self
    }

    /// Adds a resource, or replaces the one at its address.
    pub fn declare(&mut self, r: Resource) -> &mut Harness {
        let a = r.address();
        self.config.retain(|c| c.address() != a);
        self.config.push(r);
        self
    }

    /// Removes the resource at `address` (`type.name` or an instance) from the configuration.
    pub fn remove(&mut self, address: &str) -> &mut Harness {
        self.config
            .retain(|c| c.address() != address && format!("{}.{}", c.rtype, c.name) != address);
        self
    }

    /// The request validate, expand and prepare take.
    fn request<'a>(
        &'a self,
        address: &'a str,
        r: &'a Resource,
        attrs: &'a Attrs,
    ) -> InstanceRequest<'a> {
        InstanceRequest {
            address,
            rtype: &r.rtype,
            name: &r.name,
            key: r.key.as_deref(),
            attrs,
            ctx: &self.ctx,
        }
    }

    /// validate → expand → prepare → implicit dependencies, as the engine builds.
    fn instances(&self, plan: &mut Plan) -> Vec<Instance> {
        let mut out: Vec<Instance> = Vec::new();
        let mut of_resource: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &self.config {
            let addr = r.address();
            let v = self.provider.validate(self.request(&addr, r, &r.attrs));
            let failed = v.error().is_some();
            plan.diagnostics
                .extend(v.diagnostics.into_iter().map(|d| named(d, &addr)));
            if failed {
                continue;
            }
            let e = self.provider.expand(self.request(&addr, r, &r.attrs));
            plan.inputs.extend(e.inputs.iter().cloned());
            if e.error().is_some() {
                plan.diagnostics
                    .extend(e.diagnostics.into_iter().map(|d| named(d, &addr)));
                continue;
            }
            let parts: Vec<(String, Attrs)> = if e.instances.is_empty() {
                vec![(addr.clone(), r.attrs.clone())]
            } else {
                e.instances
                    .into_iter()
                    .map(|x| {
                        let key = match &r.key {
                            Some(each) => format!("{each}/{}", x.key),
                            None => x.key,
                        };
                        (address(&r.rtype, &r.name, Some(&key)), x.attrs)
                    })
                    .collect()
            };
            for (a, attrs) in parts {
                let p = self.provider.prepare(self.request(&a, r, &attrs));
                plan.inputs.extend(p.inputs.iter().cloned());
                if p.error().is_some() {
                    plan.diagnostics
                        .extend(p.diagnostics.into_iter().map(|d| named(d, &a)));
                    continue;
                }
                plan.diagnostics.extend(p.diagnostics.iter().cloned());
                of_resource
                    .entry(format!("{}.{}", r.rtype, r.name))
                    .or_default()
                    .push(a.clone());
                out.push(Instance {
                    address: a,
                    rtype: r.rtype.clone(),
                    provisional: attrs,
                    desired: p.attrs,
                    lifecycle: r.lifecycle.clone(),
                    deps: r.depends_on.iter().cloned().collect(),
                });
            }
        }
        // depends_on names resources or instances.
        for i in &mut out {
            let named: Vec<String> = std::mem::take(&mut i.deps).into_iter().collect();
            for d in named {
                match of_resource.get(&d) {
                    Some(all) => i
                        .deps
                        .extend(all.iter().filter(|a| **a != i.address).cloned()),
                    None => {
                        i.deps.insert(d);
                    }
                }
            }
        }
        let items = out
            .iter()
            .map(|i| DepItem {
                address: i.address.clone(),
                rtype: i.rtype.clone(),
                attrs: i.provisional.clone(),
            })
            .collect();
        let req = ImplicitDepsRequest { items };
        let reads = self.provider.reads(&req);
        let deps = self.provider.implicit_deps(req);
        plan.diagnostics.extend(deps.diagnostics);
        plan.diagnostics.extend(reads.diagnostics);
        self.fold_reads(&mut out, reads.reads, plan);
        for e in &deps.edges {
            if let Some(i) = out.iter_mut().find(|i| i.address == e.dependent) {
                if e.dependency != e.dependent {
                    i.deps.insert(e.dependency.clone());
                }
            }
        }
        plan.edges = deps.edges;
        out
    }

    /// Folds what each instance reads ([`Provider::reads`]) into its
    /// desired value, as the engine does; attributes being literal here, a
    /// read object's value is its own desired value.
    fn fold_reads(&self, out: &mut [Instance], reads: Vec<Read>, plan: &mut Plan) {
        for r in reads {
            let values: Map = r
                .dependencies
                .iter()
                .filter_map(|d| {
                    let i = out.iter().find(|i| &i.address == d)?;
                    Some((d.clone(), Value::Map(i.desired.clone())))
                })
                .collect();
            let Some(i) = out.iter_mut().find(|i| i.address == r.dependent) else {
                continue;
            };
            i.deps.extend(r.dependencies.iter().cloned());
            let resp = self.provider.fold_reads(FoldRequest {
                address: &i.address,
                rtype: &i.rtype,
                attrs: i.desired.clone(),
                reads: values,
                ctx: &self.ctx,
            });
            match resp.into_result() {
                Ok(p) => i.desired = p.attrs,
                Err(d) => plan.diagnostics.push(named(d, &r.dependent)),
            }
        }
    }

    /// validate, expand and prepare of the configuration (no network IO):
    /// their diagnostics.
    pub fn check(&self) -> Vec<Diagnostic> {
        let mut plan = Plan::default();
        self.instances(&mut plan);
        plan.diagnostics
    }

    /// The prepared attributes of a configured instance (an expanded one too).
    pub fn desired(&self, address: &str) -> Result<Attrs, Vec<Diagnostic>> {
        let mut plan = Plan::default();
        let instances = self.instances(&mut plan);
        match instances.into_iter().find(|i| i.address == address) {
            Some(i) => Ok(i.desired),
            None => Err(plan.diagnostics),
        }
    }

    /// A plan that creates `address` whatever refresh saw: proves that the
    /// provider's apply itself refuses to touch what is not this stack's.
    pub fn forced_create(&self, address: &str) -> Plan {
        let desired = self.desired(address).expect("a configured instance");
        let rtype = address.split('.').next().unwrap_or_default().to_string();
        Plan {
            changes: vec![Change {
                address: address.into(),
                rtype,
                action: Action::Create,
                reason: Reason::NotFound,
                desired: Some(desired),
                live: None,
                prior: None,
                diff: Vec::new(),
                replace_note: None,
                deps: Vec::new(),
                prevent_destroy: false,
            }],
            ..Default::default()
        }
    }

    /// Makes a plan (never applies; errors are in `diagnostics`).
    pub async fn plan(&self) -> Plan {
        self.make_plan(false).await
    }

    /// The plan of `claw destroy`: every recorded object (and orphan) deleted.
    pub async fn plan_destroy(&self) -> Plan {
        self.make_plan(true).await
    }

    async fn make_plan(&self, destroy: bool) -> Plan {
        let before = calls(self.provider.as_ref());
        let mut plan = Plan::default();
        let instances = self.instances(&mut plan);
        if plan.error().is_some() {
            // As in the engine: a configuration error stops before any refresh.
            return plan;
        }
        let mut items: Vec<RefreshItem> = instances
            .iter()
            .map(|i| RefreshItem {
                address: i.address.clone(),
                rtype: i.rtype.clone(),
                desired: Some(Arc::new(i.desired.clone())),
                prior: self
                    .state
                    .get(&i.address)
                    .map(|r| Arc::new(r.object.clone())),
                recheck: false,
            })
            .collect();
        for (a, r) in &self.state {
            if !instances.iter().any(|i| &i.address == a) {
                items.push(RefreshItem {
                    address: a.clone(),
                    rtype: r.rtype.clone(),
                    desired: None,
                    prior: Some(Arc::new(r.object.clone())),
                    recheck: false,
                });
            }
        }
        let resp = self
            .provider
            .refresh(RefreshRequest {
                ctx: self.ctx.clone(),
                items,
                find_orphans: true,
            })
            .await;
        plan.diagnostics.extend(resp.diagnostics);
        plan.live = resp.live;
        let mut orphan_types = BTreeMap::new();
        for o in resp.orphans {
            orphan_types.insert(o.address.clone(), o.rtype);
            plan.live.insert(o.address, Some(o.live));
        }
        let mut changes = Vec::new();
        if !destroy {
            for i in &instances {
                if let Some(c) = self
                    .plan_instance(i, &plan.live, &mut plan.diagnostics)
                    .await
                {
                    changes.push(c);
                }
            }
        }
        let mut gone: BTreeMap<String, String> = self
            .state
            .iter()
            .map(|(a, r)| (a.clone(), r.rtype.clone()))
            .collect();
        gone.extend(orphan_types);
        for (addr, rtype) in gone {
            let configured = instances.iter().find(|i| i.address == addr);
            if configured.is_some() && !destroy {
                continue;
            }
            let entry = self.state.get(&addr);
            let live = plan.live.get(&addr).cloned().flatten();
            let prevent_destroy = match configured {
                Some(i) => i.lifecycle.prevent_destroy,
                None => entry.is_some_and(|e| e.prevent_destroy),
            };
            let decided = decide(&DecideInput {
                in_config: false,
                destroy_mode: destroy,
                in_state: entry.is_some(),
                live: live.as_ref().map(|l| &l.owner),
                prevent_destroy,
                ..Default::default()
            });
            match decided {
                Ok((Action::NoOp, _)) => {}
                Ok((action, reason)) => changes.push(Change {
                    address: addr.clone(),
                    rtype,
                    action,
                    reason,
                    desired: configured.map(|i| i.desired.clone()),
                    live,
                    prior: entry.map(|e| e.object.clone()),
                    diff: Vec::new(),
                    replace_note: None,
                    deps: entry.map(|e| e.deps.clone()).unwrap_or_default(),
                    prevent_destroy,
                }),
                Err(r) => plan.diagnostics.push(refusal(&addr, r, live.as_ref())),
            }
        }
        plan.unchanged = instances.len().saturating_sub(
            changes
                .iter()
                .filter(|c| instances.iter().any(|i| i.address == c.address))
                .count(),
        );
        changes.sort_by(|a, b| a.address.cmp(&b.address));
        plan.changes = changes;
        plan.calls = calls(self.provider.as_ref()) - before;
        plan
    }

    /// diff → ignore_changes → decide for one configured instance.
    async fn plan_instance(
        &self,
        i: &Instance,
        live: &BTreeMap<String, Option<LiveObject>>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Change> {
        let prior = self.state.get(&i.address);
        let live = live.get(&i.address).cloned().flatten();
        let mut diff = Vec::new();
        let mut note = None;
        if let Some(l) = &live {
            if matches!(l.owner, Owner::Stack | Owner::NotApplicable) {
                let resp = self
                    .provider
                    .diff(DiffRequest {
                        ctx: self.ctx.clone(),
                        address: i.address.clone(),
                        rtype: i.rtype.clone(),
                        desired: i.desired.clone(),
                        live: Arc::new(l.clone()),
                        prior: prior.map(|p| Arc::new(p.object.clone())),
                    })
                    .await;
                diagnostics.extend(resp.diagnostics.into_iter().map(|d| named(d, &i.address)));
                diff = apply_ignore(resp.changes, &i.lifecycle.ignore_changes);
                note = resp.replace_note;
            }
        }
        let desired = Value::Map(i.desired.clone());
        let drifted: Vec<String> = diff
            .iter()
            .filter(|c| {
                let want = desired.get_path(&c.path);
                let was = prior.and_then(|p| {
                    Value::Map(p.object.attrs.clone())
                        .get_path(&c.path)
                        .cloned()
                });
                want.is_some() && want.cloned() == was
            })
            .map(|c| c.path.clone())
            .collect();
        let mut lifecycle_changed = Vec::new();
        if prior.is_some_and(|p| p.prevent_destroy != i.lifecycle.prevent_destroy) {
            lifecycle_changed.push("prevent_destroy".to_string());
        }
        let decided = decide(&DecideInput {
            in_config: true,
            destroy_mode: false,
            in_state: prior.is_some(),
            live: live.as_ref().map(|l| &l.owner),
            changes: &diff,
            drifted: &drifted,
            prevent_destroy: i.lifecycle.prevent_destroy,
            create_before_destroy: i.lifecycle.create_before_destroy,
            replace_note: note.as_deref(),
            lifecycle_changed: &lifecycle_changed,
            force_replace: None,
        });
        match decided {
            Ok((Action::NoOp, _)) => None,
            Ok((action, reason)) => Some(Change {
                address: i.address.clone(),
                rtype: i.rtype.clone(),
                action,
                reason,
                desired: Some(i.desired.clone()),
                live,
                prior: prior.map(|p| p.object.clone()),
                diff,
                replace_note: note,
                deps: i.deps.iter().cloned().collect(),
                prevent_destroy: i.lifecycle.prevent_destroy,
            }),
            Err(r) => {
                diagnostics.push(refusal(&i.address, r, live.as_ref()));
                None
            }
        }
    }

    /// Plans and applies; panics on a plan error or a failed apply.
    pub async fn apply(&mut self) -> Plan {
        let plan = self.plan().await;
        assert!(plan.error().is_none(), "plan errors: {:#?}", plan.errors());
        if let Err(d) = self.apply_plan(&plan).await {
            panic!("apply failed: {d}");
        }
        plan
    }

    /// Plans and applies; returns the first plan error or apply failure.
    pub async fn try_apply(&mut self) -> Result<Plan, Diagnostic> {
        let plan = self.plan().await;
        self.apply_plan(&plan).await?;
        Ok(plan)
    }

    /// Plans again: there must be no change and no error. Returns that plan.
    pub async fn assert_converged(&self) -> Plan {
        let plan = self.plan().await;
        assert!(plan.error().is_none(), "plan errors: {:#?}", plan.errors());
        assert!(
            plan.changes.is_empty(),
            "not converged: {:#?}",
            plan.changes
                .iter()
                .map(|c| (&c.address, c.action, c.reason.to_string(), &c.diff))
                .collect::<Vec<_>>()
        );
        plan
    }

    /// `apply` then `assert_converged`; returns the plan that was applied.
    pub async fn converge(&mut self) -> Plan {
        let plan = self.apply().await;
        self.assert_converged().await;
        plan
    }

    /// `claw destroy`: deletes everything recorded (and orphans), dependents
    /// first; panics unless the state ends empty.
    pub async fn destroy(&mut self) -> Plan {
        let plan = self.plan_destroy().await;
        assert!(
            plan.error().is_none(),
            "destroy plan errors: {:#?}",
            plan.errors()
        );
        if let Err(d) = self.apply_plan(&plan).await {
            panic!("destroy failed: {d}");
        }
        assert!(self.state.is_empty(), "state left: {:?}", self.state.keys());
        plan
    }

    /// `claw import ADDRESS ID`: the provider adopts the object; it is recorded.
    /// `address` is a configured instance (an expanded one too).
    pub async fn import(&mut self, address: &str, id: &str) -> Result<StateObject, Diagnostic> {
        let mut plan = Plan::default();
        let instances = self.instances(&mut plan);
        let inst = instances.iter().find(|i| i.address == address);
        let rtype = match inst {
            Some(i) => i.rtype.clone(),
            None => address.split('.').next().unwrap_or_default().to_string(),
        };
        let obj = self
            .provider
            .import(ImportRequest {
                ctx: self.ctx.clone(),
                address: address.into(),
                rtype: rtype.clone(),
                id: id.into(),
                desired: inst.map(|i| i.desired.clone()),
            })
            .await
            .into_state()?;
        self.state.insert(
            address.into(),
            Recorded {
                rtype,
                object: obj.clone(),
                deps: inst
                    .map(|i| i.deps.iter().cloned().collect())
                    .unwrap_or_default(),
                prevent_destroy: inst.is_some_and(|i| i.lifecycle.prevent_destroy),
            },
        );
        Ok(obj)
    }
}

/// `d` naming `address` unless it names one already.
fn named(d: Diagnostic, address: &str) -> Diagnostic {
    if d.address.is_some() {
        d
    } else {
        d.with_address(address)
    }
}

/// The error of a refusal of `decide`, worded like the engine's.
fn refusal(addr: &str, r: Refusal, live: Option<&LiveObject>) -> Diagnostic {
    let id = live.map(|l| l.id.clone()).unwrap_or_default();
    let d = match r {
        Refusal::Unmanaged { other_stack: None } => Diagnostic::error(format!(
            "an object `{id}` already exists and is not managed by this stack; claw will not touch it"
        ))
        .with_hint(format!("claw import {addr} {id}")),
        Refusal::Unmanaged {
            other_stack: Some(s),
        } => Diagnostic::error(format!(
            "the object `{id}` belongs to stack `{s}`; claw will not touch it"
        )),
        Refusal::NotOwned => Diagnostic::error(format!(
            "`{id}` already exists with other content, and claw does not own it"
        ))
        .with_hint(format!("claw import {addr} {id}")),
        Refusal::PreventDestroy { action } => Diagnostic::error(format!(
            "lifecycle.prevent_destroy forbids this {}",
            if action == Action::Delete { "delete" } else { "replace" }
        )),
    };
    d.with_address(addr)
}
