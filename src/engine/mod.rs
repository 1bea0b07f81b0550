//! Orchestration: load → evaluate → graph → refresh → plan → apply.
//!
//! **Invariant:** providers are called only from here; `refresh` is called once
//! per provider block per plan, with every instance of that block.

pub mod apply;
pub mod contract;
pub mod graph;
pub mod resolve;
pub mod walk;

use crate::config::{self, template, Config, Instance, Lifecycle, StateCfg};
use crate::error::{closest, Error, Problem, Result};
use crate::plan::{self, Action, Change, DecideInput, Plan, Refusal};
use crate::registry::Registry;
use crate::state::{local::LocalStorage, State};
use claw_provider::*;
use futures::future::join_all;
use graph::Graph;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

/// Options shared by every command.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub file: PathBuf,
    pub vars: Vec<(String, String)>,
    pub targets: Vec<String>,
    pub destroy: bool,
    pub parallelism: usize,
    pub verbose: bool,
}

/// Where progress and provider messages go (the CLI draws them).
pub trait Events: Send + Sync {
    fn progress(&self, address: &str, message: &str);
    fn op_started(&self, _address: &str, _what: &str) {}
    fn op_finished(&self, _address: &str, _what: &str, _result: std::result::Result<(), &str>) {}
    fn op_skipped(&self, _address: &str, _because: &str) {}
    fn note(&self, _message: &str) {}
}

pub struct NoEvents;
impl Events for NoEvents {
    fn progress(&self, _: &str, _: &str) {}
}

/// One evaluated instance (config side).
#[derive(Clone)]
pub struct Node {
    pub inst: Instance,
    pub lifecycle: Lifecycle,
    /// Instance addresses this one depends on (references, depends_on, implicit).
    pub deps: BTreeSet<String>,
}

/// A loaded, evaluated configuration with its providers and graph.
pub struct Workspace {
    pub cfg: Config,
    pub reg: Registry,
    pub salt: String,
    pub providers: BTreeMap<String, Arc<dyn Provider>>,
    pub nodes: BTreeMap<String, Node>,
    pub graph: Graph,
    pub events: Arc<dyn Events>,
    pub verbose: bool,
}

/// The live side of one address after refresh.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub live: Option<LiveObject>,
    pub orphan_type: Option<String>,
}

pub fn ctx_for(cfg: &Config, salt: &str, events: &Arc<dyn Events>, verbose: bool) -> Ctx {
    let ev = events.clone();
    Ctx {
        stack: cfg.stack.clone(),
        salt: salt.to_string(),
        base_dir: cfg.base_dir.clone(),
        progress: Progress(Arc::new(move |a, m| ev.progress(a, m))),
        verbose,
    }
}

/// Opens the configured state storage.
pub async fn open_storage(cfg: &Config, reg: &Registry) -> Result<Box<dyn StateStorage>> {
    match &cfg.state {
        StateCfg::Local { path } => Ok(Box::new(LocalStorage::new(path.clone()))),
        StateCfg::Provider {
            provider, attrs, ..
        } => {
            let key = format!("provider.{provider}");
            let block = cfg.blocks.get(&key).ok_or_else(|| {
                Error::msg(format!(
                    "the state backend names provider `{provider}`, which is not declared"
                ))
            })?;
            let f = reg
                .factory(&block.kind)
                .ok_or_else(|| Error::msg(format!("no {} provider", block.kind)))?;
            // Secrets in provider blocks are hashed with a fixed salt here: the
            // state's own salt is not known before the state is read.
            let provider_attrs = cfg.block_attrs(&key, "state-backend")?;
            let events: Arc<dyn Events> = Arc::new(NoEvents);
            f.state_storage(StateStorageRequest {
                provider_attrs,
                attrs: attrs.clone(),
                ctx: ctx_for(cfg, "state-backend", &events, false),
            })
            .await
            .map_err(|d| Error::one(cfg.state_problem(&d)))
        }
    }
}

impl Workspace {
    /// Evaluates `cfg` with `salt`: provider blocks, instances (for_each and
    /// expansion), prepared attributes, references and the graph.
    pub fn build(
        cfg: Config,
        reg: Registry,
        salt: &str,
        state: Option<&State>,
        events: Arc<dyn Events>,
        verbose: bool,
    ) -> Result<Workspace> {
        let ctx = ctx_for(&cfg, salt, &events, verbose);
        let mut instances = cfg.instances(&reg, salt)?;

        // Provider blocks in use (by config or by state).
        let mut keys: BTreeSet<String> = instances.iter().map(|i| i.provider_key.clone()).collect();
        if let Some(st) = state {
            for (addr, e) in &st.resources {
                if !keys.contains(&e.provider)
                    && !cfg.blocks.contains_key(&e.provider)
                    && !is_implicit(&e.provider, &e.rtype, &reg)
                {
                    return Err(Error::one(
                        Problem::new(format!(
                            "{addr} in the state is managed by [{}], which is no longer in claw.toml",
                            e.provider
                        ))
                        .hint(format!("restore the [{}] block until it is destroyed, or drop it from the state with `claw state rm {addr}`", e.provider)),
                    ));
                }
                keys.insert(e.provider.clone());
            }
        }
        let mut providers = BTreeMap::new();
        let mut errs = Vec::new();
        for key in &keys {
            let (kind, alias) = match cfg.blocks.get(key) {
                Some(b) => (b.kind.clone(), b.alias.clone()),
                None => {
                    let alias = key
                        .split_once('.')
                        .map(|(_, a)| a)
                        .unwrap_or(key)
                        .to_string();
                    (alias.clone(), alias)
                }
            };
            let Some(f) = reg.factory(&kind) else {
                errs.push(Problem::new(format!(
                    "no provider of type `{kind}` is built into this claw"
                )));
                continue;
            };
            let attrs = match cfg.block_attrs(key, salt) {
                Ok(a) => a,
                Err(e) => {
                    errs.extend(e.problems);
                    continue;
                }
            };
            match f.configure(ConfigureRequest {
                alias,
                attrs,
                ctx: ctx.clone(),
            }) {
                Ok(p) => {
                    providers.insert(key.clone(), p);
                }
                Err(d) => {
                    let span = cfg
                        .blocks
                        .get(key)
                        .and_then(|b| b.node.as_ref())
                        .map(|n| n.span.clone());
                    let loc = span.and_then(|s| cfg.loc(&s));
                    errs.push(Problem::from_diag(&d, loc));
                }
            }
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }

        // Expansion (k8s_manifest documents) and validation.
        let mut expanded = Vec::new();
        for inst in instances.drain(..) {
            let p = &providers[&inst.provider_key];
            let provisional = provisional_attrs(&inst, salt);
            let req = instance_request(&inst, &provisional, &ctx);
            let node_span = cfg.resource(&inst).node.span.clone();
            for d in p.validate(req).diagnostics {
                let span = d
                    .attr
                    .as_deref()
                    .map(|a| cfg.resource(&inst).node.locate(a))
                    .unwrap_or(node_span.clone());
                let d = d.with_address(inst.addr.clone());
                errs.push(Problem::from_diag(&d, cfg.loc(&span)));
            }
            let req = instance_request(&inst, &provisional, &ctx);
            match p.expand(req).into_result() {
                Ok(docs) if docs.instances.is_empty() => expanded.push(inst),
                Ok(docs) => {
                    for Expanded { key: k, attrs } in docs.instances {
                        let key = match &inst.key {
                            Some(each) => format!("{each}/{k}"),
                            None => k,
                        };
                        let mut body = BTreeMap::new();
                        for (ak, av) in &attrs {
                            body.insert(
                                ak.clone(),
                                config::value_to_ex(av, &cfg, &inst, salt, &mut errs),
                            );
                        }
                        expanded.push(Instance {
                            addr: template::instance_address(&inst.rtype, &inst.name, Some(&key)),
                            key: Some(key),
                            body,
                            expanded: true,
                            ..inst.clone()
                        });
                    }
                }
                Err(d) => {
                    let span = d
                        .attr
                        .as_deref()
                        .map(|a| cfg.resource(&inst).node.locate(a))
                        .unwrap_or(node_span.clone());
                    errs.push(Problem::from_diag(
                        &d.with_address(inst.addr.clone()),
                        cfg.loc(&span),
                    ));
                }
            }
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }

        // Nodes, references, depends_on.
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut by_resource: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for inst in &expanded {
            by_resource
                .entry(format!("{}.{}", inst.rtype, inst.name))
                .or_default()
                .push(inst.addr.clone());
            if nodes.contains_key(&inst.addr) {
                errs.push(
                    Problem::new(format!("duplicate address {}", inst.addr))
                        .at(cfg.loc(&cfg.resource(inst).node.span))
                        .hint("two documents or for_each keys produce the same address"),
                );
            }
            nodes.insert(
                inst.addr.clone(),
                Node {
                    lifecycle: cfg.resource(inst).lifecycle.clone(),
                    inst: inst.clone(),
                    deps: BTreeSet::new(),
                },
            );
        }
        // Prepared provisional attrs, for checking referenced attribute names.
        let mut known_attrs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (addr, n) in &nodes {
            let p = &providers[&n.inst.provider_key];
            let prov = provisional_attrs(&n.inst, salt);
            let prepared = p
                .prepare(instance_request(&n.inst, &prov, &ctx))
                .into_result()
                .map_or(prov, |r| r.attrs);
            let mut names: BTreeSet<String> = prepared.keys().cloned().collect();
            if let Some((_, t)) = reg.resource_type(&n.inst.rtype) {
                names.extend(t.computed.iter().map(|s| s.to_string()));
            }
            names.insert("id".into());
            known_attrs.insert(addr.clone(), names);
        }
        let addrs: Vec<String> = nodes.keys().cloned().collect();
        for addr in &addrs {
            let n = &nodes[addr];
            let res = cfg.resource(&n.inst);
            let mut deps = BTreeSet::new();
            for r in config::body_refs(&n.inst.body) {
                let target = r.instance();
                // Located only on error: a location costs a scan of the text.
                let loc = || cfg.loc(&r.span);
                if !nodes.contains_key(&target) {
                    let resource = r.resource();
                    let p = if let Some(insts) = by_resource.get(&resource) {
                        if r.key.is_none() {
                            Problem::new(format!(
                                "`${{{}}}`: {resource} has several instances; say which",
                                r.text
                            ))
                            .at(loc())
                            .hint(format!("write {}[\"KEY\"].{}", resource, r.attr))
                        } else {
                            let keys: Vec<&str> = insts.iter().map(String::as_str).collect();
                            Problem::new(format!("`${{{}}}`: no instance {target}", r.text))
                                .at(loc())
                                .hint(format!("instances are: {}", keys.join(", ")))
                        }
                    } else {
                        let names: Vec<&str> = by_resource.keys().map(String::as_str).collect();
                        let p =
                            Problem::new(format!("`${{{}}}`: unknown resource {resource}", r.text))
                                .at(loc());
                        match closest(&resource, names.iter().copied()) {
                            Some(c) => p.hint(format!("did you mean `{c}`?")),
                            None => p.hint("declare it as a [TYPE.NAME] table"),
                        }
                    };
                    errs.push(p);
                    continue;
                }
                let head = match claw_provider::value::split_path(&r.attr).first() {
                    Some(claw_provider::value::PathSeg::Key(k)) => k.clone(),
                    _ => r.attr.clone(),
                };
                let known = &known_attrs[&target];
                if !known.contains(&head) {
                    let p = Problem::new(format!(
                        "`${{{}}}`: {target} has no attribute `{head}`",
                        r.text
                    ))
                    .at(loc());
                    errs.push(match closest(&head, known.iter().map(String::as_str)) {
                        Some(c) => p.hint(format!("did you mean `{c}`?")),
                        None => p.hint(format!(
                            "attributes are: {}",
                            known.iter().cloned().collect::<Vec<_>>().join(", ")
                        )),
                    });
                    continue;
                }
                if target == *addr {
                    errs.push(
                        Problem::new(format!("`${{{}}}`: {addr} refers to itself", r.text))
                            .at(loc()),
                    );
                    continue;
                }
                deps.insert(target);
            }
            for (d, span) in &res.depends_on {
                let loc = || cfg.loc(span);
                if let Some(insts) = by_resource.get(d) {
                    deps.extend(insts.iter().filter(|a| *a != addr).cloned());
                } else if nodes.contains_key(d) {
                    deps.insert(d.clone());
                } else {
                    let names: Vec<&str> = by_resource.keys().map(String::as_str).collect();
                    let p = Problem::new(format!("depends_on: unknown resource {d}")).at(loc());
                    errs.push(match closest(d, names.iter().copied()) {
                        Some(c) => p.hint(format!("did you mean `{c}`?")),
                        None => p.hint("depends_on takes addresses of resources in this file"),
                    });
                }
            }
            if let Some(n) = nodes.get_mut(addr) {
                n.deps = deps;
            }
        }
        // Provider-declared ordering (namespaces before their objects, ...).
        for (key, p) in &providers {
            let items: Vec<DepItem> = nodes
                .values()
                .filter(|n| &n.inst.provider_key == key)
                .map(|n| DepItem {
                    address: n.inst.addr.clone(),
                    rtype: n.inst.rtype.clone(),
                    attrs: provisional_attrs(&n.inst, salt),
                })
                .collect();
            if items.is_empty() {
                continue;
            }
            let edges = p.implicit_deps(ImplicitDepsRequest { items }).edges;
            for Edge {
                dependent: from,
                dependency: to,
            } in edges
            {
                if from != to && nodes.contains_key(&to) {
                    if let Some(n) = nodes.get_mut(&from) {
                        n.deps.insert(to);
                    }
                }
            }
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        let graph = Graph::new(
            nodes
                .iter()
                .map(|(a, n)| (a.clone(), n.deps.iter().cloned().collect()))
                .collect(),
        );
        if let Some(cycle) = graph.find_cycle() {
            let first = &nodes[&cycle[0]];
            let loc = cfg.loc(&cfg.resource(&first.inst).node.span);
            let mut path = cycle.clone();
            path.push(cycle[0].clone());
            return Err(Error::one(
                Problem::new(format!("dependency cycle: {}", path.join(" -> ")))
                    .at(loc)
                    .hint("break the cycle: remove a reference or a depends_on entry between these resources"),
            ));
        }
        Ok(Workspace {
            cfg,
            reg,
            salt: salt.to_string(),
            providers,
            nodes,
            graph,
            events,
            verbose,
        })
    }

    pub fn ctx(&self) -> Ctx {
        ctx_for(&self.cfg, &self.salt, &self.events, self.verbose)
    }

    /// Resolves a node's attributes with `lookup` and runs `prepare`.
    pub fn desired(
        &self,
        addr: &str,
        lookup: &dyn Fn(&template::ResRef) -> Value,
    ) -> std::result::Result<Attrs, Diagnostic> {
        let n = &self.nodes[addr];
        let attrs: Attrs = n
            .inst
            .body
            .iter()
            .map(|(k, e)| (k.clone(), e.resolve(lookup, &self.salt)))
            .collect();
        let ctx = self.ctx();
        self.providers[&n.inst.provider_key]
            .prepare(instance_request(&n.inst, &attrs, &ctx))
            .into_result()
            .map(|r| r.attrs)
    }

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
            match self.nodes.get(a) {
                Some(n) => n.deps.iter().cloned().collect(),
                None => state
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
        let ctx = self.ctx();
        let mut per: BTreeMap<String, Vec<RefreshItem>> = BTreeMap::new();
        let sources = resolve::Sources {
            state: Some(state),
            ..Default::default()
        };
        let lookup = |r: &template::ResRef| -> Value { sources.value(r) };
        let mut errs = Vec::new();
        for (addr, n) in &self.nodes {
            if only.is_some_and(|o| !o.contains(addr)) {
                continue;
            }
            let desired = match self.desired(addr, &lookup) {
                Ok(d) => d,
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
                        live,
                        orphan_type: None,
                    },
                );
            }
            for o in resp.orphans {
                if self.nodes.contains_key(&o.address) || state.resources.contains_key(&o.address) {
                    // Matched by address label: adopt as the live object.
                    let entry = out.entry(o.address.clone()).or_default();
                    if entry.live.is_none() {
                        entry.live = Some(o.live);
                    }
                    continue;
                }
                let _ = &key;
                out.insert(
                    o.address.clone(),
                    Observed {
                        live: Some(o.live),
                        orphan_type: Some(o.rtype),
                    },
                );
            }
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        Ok(out)
    }

    /// Turns a provider diagnostic into a problem located at the resource.
    pub fn diag_problem(&self, d: &Diagnostic, addr: &str) -> Problem {
        let addr = d.address.as_deref().unwrap_or(addr);
        let loc = self.nodes.get(addr).and_then(|n| {
            let node = &self.cfg.resource(&n.inst).node;
            let span = d
                .attr
                .as_deref()
                .map(|a| node.locate(a))
                .unwrap_or(node.span.clone());
            self.cfg.loc(&span)
        });
        let d = if d.address.is_none() && !addr.is_empty() {
            d.clone().with_address(addr)
        } else {
            d.clone()
        };
        Problem::from_diag(&d, loc)
    }

    /// Makes the plan from refreshed live state.
    pub async fn plan(
        &self,
        state: &State,
        observed: &BTreeMap<String, Observed>,
        opts: &Options,
    ) -> Result<Plan> {
        let selected = self.select_targets(&opts.targets, state, opts.destroy)?;
        let in_sel = |a: &str| selected.as_ref().is_none_or(|s| s.contains(a));
        let ctx = self.ctx();
        let mut changes: Vec<Change> = Vec::new();
        let mut unchanged = 0usize;
        let mut errs = Vec::new();
        // Planned "after" attributes and actions, for resolving references.
        let mut after: BTreeMap<String, (Action, Attrs)> = BTreeMap::new();

        if !opts.destroy {
            for addr in self.graph.order() {
                let n = &self.nodes[&addr];
                let computed: &[&str] = self
                    .reg
                    .resource_type(&n.inst.rtype)
                    .map(|(_, t)| t.computed)
                    .unwrap_or(&[]);
                let sources = resolve::Sources {
                    after: Some(&after),
                    state: Some(state),
                    observed: Some(observed),
                };
                let lookup = |r: &template::ResRef| -> Value { sources.value(r) };
                let desired = match self.desired(&addr, &lookup) {
                    Ok(d) => d,
                    Err(d) => {
                        errs.push(self.diag_problem(&d, &addr));
                        continue;
                    }
                };
                let prior = state.resources.get(&addr);
                let live = observed.get(&addr).and_then(|o| o.live.as_ref());
                // ignore_changes: those paths keep their live value, in the
                // plan's `after` and therefore in what apply sends.
                let mut desired = desired;
                if let Some(l) = live {
                    if !n.lifecycle.ignore_changes.is_empty() {
                        let mut d = Value::Map(desired);
                        contract::merge_ignored(
                            &mut d,
                            &Value::Map(l.attrs.clone()),
                            &n.lifecycle.ignore_changes,
                        );
                        desired = match d {
                            Value::Map(m) => m,
                            _ => unreachable!("merge_ignored keeps a map a map"),
                        };
                    }
                }
                let mut diff = Vec::new();
                let mut note = None;
                if let Some(l) = live {
                    if matches!(l.owner, Owner::Stack | Owner::NotApplicable) {
                        let resp = self.providers[&n.inst.provider_key]
                            .diff(DiffRequest {
                                ctx: ctx.clone(),
                                address: addr.clone(),
                                rtype: n.inst.rtype.clone(),
                                desired: desired.clone(),
                                live: l.clone(),
                                prior: prior.map(|e| e.object()),
                            })
                            .await;
                        for d in &resp.diagnostics {
                            if d.is_error() {
                                errs.push(self.diag_problem(d, &addr));
                            } else {
                                self.events.note(&Problem::from_diag(d, None).to_string());
                            }
                        }
                        diff = plan::apply_ignore(resp.changes, &n.lifecycle.ignore_changes);
                        note = resp.replace_note;
                    }
                }
                let drifted: Vec<String> = diff
                    .iter()
                    .filter(|c| {
                        let want = resolve::get_in(&desired, &c.path);
                        let was = prior.and_then(|p| resolve::get_in(&p.attrs, &c.path));
                        want.is_some() && want == was
                    })
                    .map(|c| c.path.clone())
                    .collect();
                let mut lifecycle_changed = Vec::new();
                if prior.is_some_and(|p| p.prevent_destroy != n.lifecycle.prevent_destroy) {
                    lifecycle_changed.push("prevent_destroy".to_string());
                }
                let decided = plan::decide(&DecideInput {
                    in_config: true,
                    destroy_mode: false,
                    in_state: prior.is_some(),
                    live: live.map(|l| &l.owner),
                    changes: &diff,
                    drifted: &drifted,
                    prevent_destroy: n.lifecycle.prevent_destroy,
                    create_before_destroy: n.lifecycle.create_before_destroy,
                    replace_note: note.as_deref(),
                    lifecycle_changed: &lifecycle_changed,
                    force_replace: None,
                });
                let (action, reason) = match decided {
                    Ok(x) => x,
                    Err(r) => {
                        errs.push(self.refusal(&addr, r, live));
                        continue;
                    }
                };
                // The after-value for references: desired, with computed attrs from live when kept.
                let mut aft = desired.clone();
                match action {
                    Action::NoOp | Action::Update | Action::Adopt | Action::StateOnly => {
                        if let Some(l) = live {
                            for (k, v) in &l.attrs {
                                aft.entry(k.clone()).or_insert(v.clone());
                            }
                        }
                    }
                    _ => {
                        for c in computed {
                            aft.insert(c.to_string(), Value::Unknown);
                        }
                        aft.insert("id".into(), Value::Unknown);
                    }
                }
                after.insert(addr.clone(), (action, aft));
                if !in_sel(&addr) {
                    continue;
                }
                if action == Action::NoOp {
                    unchanged += 1;
                    continue;
                }
                let shown = if action == Action::Create {
                    desired
                        .iter()
                        .filter(|(_, v)| !matches!(v, Value::Null))
                        .map(|(k, v)| {
                            AttrChange::new(
                                claw_provider::value::join_key("", k),
                                None,
                                Some(v.clone()),
                            )
                        })
                        .collect()
                } else {
                    diff.clone()
                };
                let mut sensitive = Vec::new();
                collect_sensitive("", &Value::Map(desired.clone()), &mut sensitive);
                changes.push(Change {
                    address: addr.clone(),
                    rtype: n.inst.rtype.clone(),
                    provider: n.inst.provider_key.clone(),
                    action,
                    reason,
                    id: live.map(|l| l.id.clone()),
                    before: live.map(|l| {
                        Value::Map(
                            l.attrs
                                .iter()
                                .filter(|(k, _)| desired.contains_key(*k))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        )
                    }),
                    after: Some(Value::Map(desired)),
                    diff: shown,
                    sensitive_paths: sensitive,
                    fingerprint: live.map(fingerprint).unwrap_or_default(),
                    inputs: vec![],
                    after_addresses: n.deps.iter().cloned().collect(),
                });
            }
        }

        // Deletes: state entries not in config (all of them in destroy mode), and orphans.
        let mut gone: BTreeSet<String> = state.resources.keys().cloned().collect();
        gone.extend(
            observed
                .iter()
                .filter(|(_, o)| o.orphan_type.is_some())
                .map(|(a, _)| a.clone()),
        );
        for addr in gone {
            if (!opts.destroy && self.nodes.contains_key(&addr)) || !in_sel(&addr) {
                continue;
            }
            let entry = state.resources.get(&addr);
            let obs = observed.get(&addr).cloned().unwrap_or_default();
            // The configuration's lifecycle wins over the state's record.
            let prevent_destroy = match self.nodes.get(&addr) {
                Some(n) => n.lifecycle.prevent_destroy,
                None => entry.map(|e| e.prevent_destroy).unwrap_or(false),
            };
            let decided = plan::decide(&DecideInput {
                in_config: false,
                destroy_mode: opts.destroy,
                in_state: entry.is_some(),
                live: obs.live.as_ref().map(|l| &l.owner),
                prevent_destroy,
                ..Default::default()
            });
            let (action, reason) = match decided {
                Ok(x) => x,
                Err(r) => {
                    errs.push(self.refusal(&addr, r, obs.live.as_ref()));
                    continue;
                }
            };
            if action == Action::NoOp {
                continue;
            }
            let (rtype, provider) = match entry {
                Some(e) => (e.rtype.clone(), e.provider.clone()),
                None => {
                    let t = obs.orphan_type.clone().unwrap_or_default();
                    let p = self.orphan_provider(&t);
                    (t, p)
                }
            };
            changes.push(Change {
                address: addr.clone(),
                rtype,
                provider,
                action,
                reason,
                id: obs
                    .live
                    .as_ref()
                    .map(|l| l.id.clone())
                    .or(entry.map(|e| e.id.clone())),
                before: None,
                after: None,
                diff: vec![],
                sensitive_paths: vec![],
                fingerprint: obs.live.as_ref().map(fingerprint).unwrap_or_default(),
                inputs: vec![],
                after_addresses: entry.map(|e| e.deps.clone()).unwrap_or_default(),
            });
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        changes.sort_by(|a, b| a.address.cmp(&b.address));
        let summary = Plan::summarize(&changes, unchanged);
        Ok(Plan {
            format_version: plan::FORMAT_VERSION,
            stack: self.cfg.stack.clone(),
            config_hash: self.config_hash(),
            state_lineage: state.lineage.clone(),
            state_serial: state.serial,
            new_state_salt: (state.serial == 0).then(|| state.salt.clone()),
            inputs: self.inputs(),
            destroy: opts.destroy,
            targets: opts.targets.clone(),
            changes,
            summary,
        })
    }

    fn orphan_provider(&self, rtype: &str) -> String {
        let kind = self.reg.resource_type(rtype).map(|(k, _)| k).unwrap_or("");
        self.providers
            .keys()
            .find(|k| {
                self.cfg.blocks.get(*k).is_some_and(|b| b.kind == kind)
                    || k.as_str() == format!("provider.{kind}")
            })
            .cloned()
            .unwrap_or_default()
    }

    fn refusal(&self, addr: &str, r: Refusal, live: Option<&LiveObject>) -> Problem {
        let id = live.map(|l| l.id.clone()).unwrap_or_default();
        let base = match r {
            Refusal::Unmanaged { other_stack: None } => Diagnostic::error(format!(
                "{addr}: an object `{id}` already exists and is not managed by this stack (it lacks the claw.dev ownership labels); claw will not touch it"
            ))
            .with_hint(format!("adopt it with `claw import {addr} {id}`, or rename the resource")),
            Refusal::Unmanaged { other_stack: Some(s) } => Diagnostic::error(format!(
                "{addr}: the object `{id}` belongs to stack `{s}`; claw will not touch it"
            ))
            .with_hint("give this resource another name, or manage it from that stack"),
            Refusal::NotOwned => Diagnostic::error(format!(
                "{addr}: `{id}` already exists with other content, and claw does not own it (it is not in the state)"
            ))
            .with_hint(format!("adopt it with `claw import {addr} {id}`, move it away, or point the resource elsewhere")),
            Refusal::PreventDestroy { action } => Diagnostic::error(format!(
                "{addr}: lifecycle.prevent_destroy forbids this {} ",
                if action == Action::Delete { "delete" } else { "replace" }
            ).trim_end().to_string())
            .with_hint("set prevent_destroy = false in the resource's lifecycle to allow it"),
        };
        self.diag_problem(&base, addr)
    }

    /// The inputs that shape the plan, by name, each with its keyed digest
    /// (HMAC with the state's salt): the configuration text and each var.
    pub fn inputs(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let file = self
            .cfg
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "claw.toml".into());
        m.insert(file, self.digest(self.cfg.src.as_bytes()));
        for (k, v) in &self.cfg.vars {
            let j = serde_json::to_string(&v.to_json()).unwrap_or_default();
            m.insert(format!("var.{k}"), self.digest(j.as_bytes()));
        }
        m
    }

    /// The keyed digest (HMAC with the state's salt) of `data`.
    pub fn digest(&self, data: &[u8]) -> String {
        claw_provider::digest::keyed_digest(&self.salt, data)
    }

    /// A keyed hash of the configuration and every resolved input (vars,
    /// secret hashes).
    pub fn config_hash(&self) -> String {
        let mut s = self.cfg.src.clone();
        s.push('\0');
        s.push_str(
            &serde_json::to_string(
                &self
                    .cfg
                    .vars
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect::<BTreeMap<_, _>>(),
            )
            .unwrap_or_default(),
        );
        for (a, n) in &self.nodes {
            s.push('\0');
            s.push_str(a);
            s.push_str(
                &serde_json::to_string(
                    &provisional_attrs(&n.inst, &self.salt)
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_json()))
                        .collect::<BTreeMap<_, _>>(),
                )
                .unwrap_or_default(),
            );
        }
        self.digest(s.as_bytes())
    }
}

fn is_implicit(provider_key: &str, rtype: &str, reg: &Registry) -> bool {
    reg.resource_type(rtype).is_some_and(|(k, _)| {
        provider_key == format!("provider.{k}") || provider_key == "host.local"
    })
}

/// The request validate / expand / prepare take for one instance.
fn instance_request<'a>(inst: &'a Instance, attrs: &'a Attrs, ctx: &'a Ctx) -> InstanceRequest<'a> {
    InstanceRequest {
        address: &inst.addr,
        rtype: &inst.rtype,
        name: &inst.name,
        key: inst.key.as_deref(),
        attrs,
        ctx,
    }
}

/// Attributes with every resource reference unknown.
pub fn provisional_attrs(inst: &Instance, salt: &str) -> Attrs {
    inst.body
        .iter()
        .map(|(k, e)| (k.clone(), e.resolve(&|_| Value::Unknown, salt)))
        .collect()
}

/// The fingerprint of a live object (the provider's, else a hash of its attributes).
pub fn fingerprint(l: &LiveObject) -> String {
    if !l.fingerprint.is_empty() {
        return l.fingerprint.clone();
    }
    let j = serde_json::to_string(&Value::Map(l.attrs.clone())).unwrap_or_default();
    format!("attrs:{}", &crate::util::sha256_hex(j.as_bytes())[..16])
}

fn collect_sensitive(path: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Secret(_) => out.push(path.to_string()),
        Value::Map(m) => {
            for (k, x) in m {
                collect_sensitive(&claw_provider::value::join_key(path, k), x, out);
            }
        }
        Value::List(l) => {
            for (i, x) in l.iter().enumerate() {
                collect_sensitive(&format!("{path}[{i}]"), x, out);
            }
        }
        _ => {}
    }
}
