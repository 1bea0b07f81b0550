//! Orchestration: load → evaluate → graph → refresh → plan → apply.
//!
//! **Invariant:** providers are called only from here; `refresh` is called once
//! per provider block per plan, with every instance of that block.

pub mod apply;
mod build;
pub mod checks;
pub mod contract;
pub mod graph;
mod identity;
pub mod import;
pub mod interrupt;
mod moves;
pub mod outputs;
mod planner;
mod refresh;
mod replace;
pub mod resolve;
pub mod saved;
pub mod session;
pub mod triggers;
pub mod unlock;
pub mod walk;

pub use refresh::Refreshed;

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
    /// `--replace`: addresses (or resource names) to replace even unchanged.
    pub replace: Vec<String>,
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
    pub deps: crate::util::SortedSet,
    /// Files its expansion read (a manifest `file =`).
    pub inputs: Vec<Input>,
    /// `lifecycle.replace_triggered_by`, resolved (its instances are deps).
    pub triggers: Vec<triggers::Trigger>,
    /// What its provider folds into its value of other instances (deps too).
    pub reads: Option<Read>,
}

/// A loaded, evaluated configuration with its providers and graph.
pub struct Workspace {
    pub cfg: Config,
    pub reg: Registry,
    pub salt: String,
    pub providers: BTreeMap<String, Arc<dyn Provider>>,
    /// Boxed: a `Node` is about 400 bytes, and a B-tree leaf holds eleven
    /// values inline whether or not they are used.
    pub nodes: BTreeMap<String, Box<Node>>,
    /// `[output.*]` by name.
    pub outputs: BTreeMap<String, outputs::OutputNode>,
    /// `[check.*]` by address (`check.NAME`); nodes of the graph too.
    pub checks: BTreeMap<String, checks::CheckNode>,
    pub graph: Graph,
    pub events: Arc<dyn Events>,
    pub verbose: bool,
    /// The context `prepare` calls get (made once, not per address).
    prepare_ctx: Ctx,
}

/// The live side of one address after refresh.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub live: Option<Arc<LiveObject>>,
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
        cancel: Cancel::default(),
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
            let provider_attrs = cfg.block_attrs(&key, "state-backend", config::Eval::Live)?;
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

/// Leaves `data` to the operating system: for what a command holds until
/// the process exits right after it (the state, the plan, the graph),
/// freeing tens of thousands of small maps one by one is pure cost (a
/// 20,000-resource plan spent 3 % of its time in those destructors). Only
/// for plain data: nothing whose `Drop` does work (locks, connections).
pub fn leave_to_exit<T>(data: T) {
    std::mem::forget(data);
}

impl Workspace {
    /// Drops the providers (their connections close as usual) and leaves
    /// the configuration and the graph to [`leave_to_exit`].
    pub fn finish(mut self) {
        leave_to_exit(std::mem::take(&mut self.nodes));
        leave_to_exit(std::mem::take(&mut self.cfg.resources));
        leave_to_exit(std::mem::take(&mut self.cfg.src));
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
        self.desired_with_inputs(addr, lookup).map(|(a, _)| a)
    }

    /// [`Workspace::desired`], with every file read to make it (by the
    /// expansion and by `prepare`).
    pub fn desired_with_inputs(
        &self,
        addr: &str,
        lookup: &dyn Fn(&template::ResRef) -> Value,
    ) -> std::result::Result<(Attrs, Vec<Input>), Diagnostic> {
        let n = &self.nodes[addr];
        let attrs: Attrs = n
            .inst
            .body
            .iter()
            .map(|(k, e)| (k.clone(), e.resolve(lookup, &self.salt)))
            .collect();
        let ctx = &self.prepare_ctx;
        let p = &self.providers[&n.inst.provider_key];
        let r = p
            .prepare(instance_request(&n.inst, &attrs, ctx))
            .into_result()?;
        let mut inputs = n.inputs.clone();
        inputs.extend(r.inputs);
        inputs.sort();
        inputs.dedup();
        let attrs = match n.reads {
            None => r.attrs,
            Some(_) => {
                p.fold_reads(FoldRequest {
                    address: addr,
                    rtype: &n.inst.rtype,
                    attrs: r.attrs,
                    reads: self.read_values(n, lookup),
                    ctx,
                })
                .into_result()?
                .attrs
            }
        };
        Ok((attrs, inputs))
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
