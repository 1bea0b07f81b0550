//! What makes an instance change although its own configuration did not:
//! `lifecycle.replace_triggered_by` (a listed object's planned change
//! replaces it) and a provider's [`Read`]s (a pod template folds a keyed
//! digest of the Secrets and ConfigMaps it reads into its value, so it rolls
//! when they change). Both are dependencies: the trigger and the read object
//! are planned and applied first.

use super::build::Refs;
use super::*;
use crate::plan::Reason;
use claw_provider::value::{split_path, PathSeg};

/// One `replace_triggered_by` entry of an instance, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// The instances it names: every instance of a resource, or one.
    pub addrs: Vec<String>,
    /// The attribute whose change triggers (any change, without one).
    pub attr: Option<String>,
}

/// The triggers of every node, by address; problems (an unknown address,
/// instance or attribute) located at the entry.
pub(super) fn resolve(refs: &Refs<'_>, errs: &mut Vec<Problem>) -> BTreeMap<String, Vec<Trigger>> {
    let cfg = refs.cfg;
    let mut out = BTreeMap::new();
    for (addr, n) in refs.nodes {
        let res = cfg.resource(&n.inst);
        let mut triggers = Vec::new();
        for (text, span) in &res.lifecycle.replace_triggered_by {
            match trigger(refs, addr, n, text) {
                Ok(t) => triggers.push(t),
                Err((msg, hint)) => {
                    let p = Problem::new(format!("{addr}: replace_triggered_by: {msg}"))
                        .at(cfg.loc(span));
                    errs.push(match hint {
                        Some(h) => p.hint(h),
                        None => p,
                    });
                }
            }
        }
        if !triggers.is_empty() {
            out.insert(addr.clone(), triggers);
        }
    }
    out
}

type Why = (String, Option<String>);

fn trigger(refs: &Refs<'_>, addr: &str, n: &Node, text: &str) -> Result<Trigger, Why> {
    let var = |name: &str, path: &str| {
        let v = refs.cfg.vars.get(name)?;
        let v = if path.is_empty() {
            v
        } else {
            v.get_path(path)?
        };
        Some(template::to_text(v))
    };
    let each = n.inst.each.as_ref().map(|(k, _)| k.as_str());
    let written = config::lifecycle::substitute(text, each, &var).map_err(|m| (m, None))?;
    let (target, attr) = config::lifecycle::split_trigger(&written)
        .ok_or_else(|| (format!("`{written}` is not a resource address"), None))?;
    let addrs: Vec<String> = match refs.by_resource.get(&target) {
        Some(all) => all.iter().filter(|a| *a != addr).cloned().collect(),
        None if refs.nodes.contains_key(&target) => vec![target.clone()],
        None => {
            let resource = match template::parse_address(&target) {
                Some((t, name, _)) => format!("{t}.{name}"),
                None => target.clone(),
            };
            return Err(match refs.by_resource.get(&resource) {
                Some(insts) => (
                    format!("no instance {target}"),
                    Some(format!("instances are: {}", insts.join(", "))),
                ),
                None => {
                    let names = refs.by_resource.keys().map(String::as_str);
                    let hint = match closest(&resource, names) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => "name a resource of this file: \"TYPE.NAME\"".into(),
                    };
                    (format!("unknown resource {resource}"), Some(hint))
                }
            });
        }
    };
    if addrs.is_empty() {
        return Err((format!("{addr} cannot trigger its own replacement"), None));
    }
    if let Some(a) = &attr {
        if addrs.len() > 1 {
            return Err((
                format!("{target} has several instances; an attribute names one of them"),
                Some(format!("write {target}[\"KEY\"].{a}")),
            ));
        }
        let known = refs.attr_names(&addrs[0]).unwrap_or_default();
        let head = match split_path(a).first() {
            Some(PathSeg::Key(k)) => k.clone(),
            _ => a.clone(),
        };
        if !known.contains(&head) {
            let hint = match closest(&head, known.iter().map(String::as_str)) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!(
                    "attributes are: {}",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            return Err((
                format!("{} has no attribute `{head}`", addrs[0]),
                Some(hint),
            ));
        }
    }
    Ok(Trigger { addrs, attr })
}

/// Gives each node its triggers, which it depends on.
pub(super) fn attach(nodes: &mut BTreeMap<String, Node>, triggers: BTreeMap<String, Vec<Trigger>>) {
    for (addr, ts) in triggers {
        if let Some(n) = nodes.get_mut(&addr) {
            n.deps
                .extend(ts.iter().flat_map(|t| t.addrs.iter().cloned()));
            n.triggers = ts;
        }
    }
}

/// Records a provider's [`Read`]s on their nodes, as dependencies too.
pub(super) fn add_reads(
    nodes: &mut BTreeMap<String, Node>,
    resp: ReadsResponse,
    errs: &mut Vec<Problem>,
) {
    errs.extend(
        resp.diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| Problem::from_diag(d, None)),
    );
    for mut r in resp.reads {
        r.dependencies
            .retain(|d| *d != r.dependent && nodes.contains_key(d));
        if r.dependencies.is_empty() {
            continue;
        }
        if let Some(n) = nodes.get_mut(&r.dependent) {
            n.deps.extend(r.dependencies.iter().cloned());
            n.reads = Some(r);
        }
    }
}

/// A planned change that counts as a change of the object (Terraform's
/// update and replace, and here a create too: the object is new).
fn is_change(action: Action) -> bool {
    matches!(
        action,
        Action::Create | Action::Update | Action::DeleteCreate | Action::CreateDelete
    )
}

impl Workspace {
    /// The read objects' whole attributes for [`Provider::fold_reads`],
    /// through `lookup` (the one resolver).
    pub(super) fn read_values(&self, n: &Node, lookup: &dyn Fn(&template::ResRef) -> Value) -> Map {
        let Some(r) = &n.reads else {
            return Map::new();
        };
        r.dependencies
            .iter()
            .filter_map(|d| {
                let i = &self.nodes.get(d)?.inst;
                let whole = template::ResRef {
                    rtype: i.rtype.clone(),
                    name: i.name.clone(),
                    key: i.key.clone(),
                    attr: String::new(),
                    span: 0..0,
                    text: d.clone(),
                };
                Some((d.clone(), lookup(&whole)))
            })
            .collect()
    }

    /// Why `n` is replaced by its `replace_triggered_by`: the listed objects
    /// (or attributes) that this plan changes, if any. `after` holds the
    /// planned actions so far (triggers are dependencies: planned before).
    pub(super) fn triggered(
        &self,
        n: &Node,
        after: &BTreeMap<String, (Action, Attrs)>,
        state: &State,
        observed: &BTreeMap<String, Observed>,
    ) -> Option<Reason> {
        let mut by: Vec<String> = Vec::new();
        for t in &n.triggers {
            for a in &t.addrs {
                let Some((action, planned)) = after.get(a) else {
                    continue;
                };
                if !is_change(*action) {
                    continue;
                }
                let name = match &t.attr {
                    None => a.clone(),
                    Some(attr) => {
                        let now = resolve::get_in(planned, attr);
                        let before = observed
                            .get(a)
                            .and_then(|o| o.live.as_ref())
                            .and_then(|l| resolve::get_in(&l.attrs, attr))
                            .or_else(|| {
                                state
                                    .resources
                                    .get(a)
                                    .and_then(|e| resolve::get_in(&e.attrs, attr))
                            });
                        if now == before && !now.is_some_and(Value::contains_unknown) {
                            continue;
                        }
                        format!("{a}.{attr}")
                    }
                };
                if !by.contains(&name) {
                    by.push(name);
                }
            }
        }
        (!by.is_empty()).then_some(Reason::Triggered { by })
    }

    /// An update of `n` whose changes include what it makes of the objects
    /// it reads, while those change: the reason says it rolls its pods.
    pub(super) fn rollout(
        &self,
        n: &Node,
        after: &BTreeMap<String, (Action, Attrs)>,
        diff: &[AttrChange],
        reason: Reason,
    ) -> Reason {
        let (Some(r), Reason::Changed { .. }) = (&n.reads, &reason) else {
            return reason;
        };
        let by: Vec<String> = r
            .dependencies
            .iter()
            .filter(|d| after.get(*d).is_some_and(|(a, _)| is_change(*a)))
            .cloned()
            .collect();
        let covered = |p: &str| plan::path_covered(p, &r.path) || plan::path_covered(&r.path, p);
        if by.is_empty() || !diff.iter().any(|c| covered(&c.path)) {
            return reason;
        }
        let mut attrs: Vec<String> = Vec::new();
        for c in diff.iter().filter(|c| !covered(&c.path)) {
            let top = match split_path(&c.path).first() {
                Some(PathSeg::Key(k)) => k.clone(),
                _ => c.path.clone(),
            };
            if !attrs.contains(&top) {
                attrs.push(top);
            }
        }
        Reason::Rollout { by, attrs }
    }
}
