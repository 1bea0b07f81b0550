//! A small engine for provider tests: expand → prepare → implicit deps →
//! one refresh → diff → apply in dependency order (deletes reversed).

#![allow(dead_code, clippy::result_large_err)]

use claw_provider::*;
use kube_api_double::KubeApiDouble;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub struct Env {
    pub double: KubeApiDouble,
    pub dir: tempfile::TempDir,
    pub provider: Arc<dyn Provider>,
    pub ctx: Ctx,
    pub kubeconfig: std::path::PathBuf,
}

pub fn env(stack: &str) -> Env {
    env_with(stack, KubeApiDouble::start().expect("start the API double"))
}

/// Like [`env`], with a double serving HTTPS and requiring a client certificate.
pub fn env_tls(stack: &str) -> Env {
    env_with(
        stack,
        KubeApiDouble::start_tls().expect("start the TLS API double"),
    )
}

pub fn env_with(stack: &str, double: KubeApiDouble) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, double.kubeconfig("default")).unwrap();
    let ctx = Ctx::for_tests(stack, dir.path());
    let provider = provider_for(&kubeconfig, &ctx);
    Env {
        double,
        dir,
        provider,
        ctx,
        kubeconfig,
    }
}

pub fn provider_for(kubeconfig: &std::path::Path, ctx: &Ctx) -> Arc<dyn Provider> {
    let mut attrs = Attrs::new();
    attrs.insert(
        "kubeconfig".into(),
        Value::str(kubeconfig.to_str().unwrap()),
    );
    attrs.insert("namespace".into(), Value::str("default"));
    claw_kubernetes::factory()
        .configure(ConfigureRequest {
            alias: "k8s".into(),
            attrs,
            ctx: ctx.clone(),
        })
        .unwrap()
}

/// A resource table: (type, name, attrs).
pub struct Res {
    pub rtype: &'static str,
    pub name: String,
    pub attrs: Attrs,
}

pub fn res(rtype: &'static str, name: &str, attrs: serde_json::Value) -> Res {
    let Value::Map(attrs) = Value::from_json(&attrs) else {
        panic!("attrs must be an object")
    };
    Res {
        rtype,
        name: name.into(),
        attrs,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create,
    Update(Vec<AttrChange>),
    Replace(Vec<AttrChange>),
    Delete,
}

#[derive(Debug)]
pub struct Plan {
    pub actions: Vec<(String, String, Action)>,
    pub desired: BTreeMap<String, (String, Attrs)>,
    pub live: BTreeMap<String, Option<LiveObject>>,
    pub deps: Vec<(String, String)>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
    pub fn action(&self, addr: &str) -> Option<&Action> {
        self.actions
            .iter()
            .find(|(a, _, _)| a == addr)
            .map(|(_, _, x)| x)
    }
}

pub type State = BTreeMap<String, (String, StateObject)>;

pub fn instances(
    env: &Env,
    config: &[Res],
) -> Result<BTreeMap<String, (String, Attrs)>, Diagnostic> {
    let mut out = BTreeMap::new();
    for r in config {
        let addr = format!("{}.{}", r.rtype, r.name);
        let req = InstanceRequest {
            address: &addr,
            rtype: r.rtype,
            name: &r.name,
            key: None,
            attrs: &r.attrs,
            ctx: &env.ctx,
        };
        let errs = env.provider.validate(req).diagnostics;
        if let Some(e) = errs.into_iter().next() {
            return Err(e);
        }
        let req = InstanceRequest {
            address: &addr,
            rtype: r.rtype,
            name: &r.name,
            key: None,
            attrs: &r.attrs,
            ctx: &env.ctx,
        };
        let docs = env.provider.expand(req).into_result()?.instances;
        let list: Vec<(String, Attrs)> = if docs.is_empty() {
            vec![(addr.clone(), r.attrs.clone())]
        } else {
            docs.into_iter()
                .map(|Expanded { key: k, attrs: a }| {
                    (
                        format!(
                            "{}.{}[{}]",
                            r.rtype,
                            r.name,
                            serde_json::to_string(&k).unwrap()
                        ),
                        a,
                    )
                })
                .collect()
        };
        for (a, attrs) in list {
            let req = InstanceRequest {
                address: &a,
                rtype: r.rtype,
                name: &r.name,
                key: None,
                attrs: &attrs,
                ctx: &env.ctx,
            };
            let prepared = env.provider.prepare(req).into_result()?.attrs;
            out.insert(a, (r.rtype.to_string(), prepared));
        }
    }
    Ok(out)
}

pub async fn plan(env: &Env, config: &[Res], state: &State) -> Plan {
    let desired = instances(env, config).expect("config is valid");
    let mut items = Vec::new();
    let addrs: BTreeSet<&String> = desired.keys().chain(state.keys()).collect();
    for a in &addrs {
        let rtype = desired
            .get(*a)
            .map(|d| d.0.clone())
            .or_else(|| state.get(*a).map(|s| s.0.clone()))
            .unwrap();
        items.push(RefreshItem {
            address: a.to_string(),
            rtype,
            desired: desired.get(*a).map(|d| d.1.clone()),
            prior: state.get(*a).map(|s| s.1.clone()),
            recheck: false,
        });
    }
    let resp = env
        .provider
        .refresh(RefreshRequest {
            ctx: env.ctx.clone(),
            items,
            find_orphans: true,
        })
        .await;
    let mut diagnostics = resp.diagnostics;
    let items = desired
        .iter()
        .map(|(a, (t, at))| DepItem {
            address: a.clone(),
            rtype: t.clone(),
            attrs: at.clone(),
        })
        .collect();
    let deps = edges(env, items);
    let mut actions = Vec::new();
    for (a, (rtype, attrs)) in &desired {
        match resp.live.get(a).cloned().flatten() {
            None => actions.push((a.clone(), rtype.clone(), Action::Create)),
            Some(l) if l.owner != Owner::Stack => diagnostics.push(
                Diagnostic::error(format!(
                    "{a} exists and is not managed by this stack ({:?})",
                    l.owner
                ))
                .with_address(a)
                .with_hint(format!("claw import {a} {}", l.id)),
            ),
            Some(l) => {
                let d = env
                    .provider
                    .diff(DiffRequest {
                        ctx: env.ctx.clone(),
                        address: a.clone(),
                        rtype: rtype.clone(),
                        desired: attrs.clone(),
                        live: l,
                        prior: state.get(a).map(|s| s.1.clone()),
                    })
                    .await;
                diagnostics.extend(d.diagnostics);
                if d.changes.iter().any(|c| c.replace) {
                    actions.push((a.clone(), rtype.clone(), Action::Replace(d.changes)));
                } else if !d.changes.is_empty() {
                    actions.push((a.clone(), rtype.clone(), Action::Update(d.changes)));
                }
            }
        }
    }
    for (a, (rtype, _)) in state {
        if !desired.contains_key(a) && resp.live.get(a).cloned().flatten().is_some() {
            actions.push((a.clone(), rtype.clone(), Action::Delete));
        }
    }
    let mut live = resp.live;
    for o in resp.orphans {
        if !state.contains_key(&o.address) && !desired.contains_key(&o.address) {
            actions.push((o.address.clone(), o.rtype.clone(), Action::Delete));
            live.insert(o.address.clone(), Some(o.live));
        }
    }
    Plan {
        actions,
        desired,
        live,
        deps,
        diagnostics,
    }
}

/// The provider's implicit edges among `items`, as `(dependent, dependency)`.
pub fn edges(env: &Env, items: Vec<DepItem>) -> Vec<(String, String)> {
    let resp = env.provider.implicit_deps(ImplicitDepsRequest { items });
    resp.edges
        .into_iter()
        .map(|e| (e.dependent, e.dependency))
        .collect()
}

/// Orders addresses so that dependencies come first.
pub fn order(addrs: &[String], deps: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut left: Vec<String> = addrs.to_vec();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|a| {
            let ready = deps
                .iter()
                .filter(|(d, _)| d == a)
                .all(|(_, on)| out.contains(on) || !addrs.contains(on));
            if ready {
                out.push(a.clone());
            }
            !ready
        });
        assert!(left.len() < before, "dependency cycle");
    }
    out
}

pub async fn apply(env: &Env, plan: &Plan, state: &mut State) -> Result<(), Diagnostic> {
    if let Some(d) = plan.diagnostics.iter().find(|d| d.is_error()) {
        return Err(d.clone());
    }
    let addrs: Vec<String> = plan.actions.iter().map(|(a, _, _)| a.clone()).collect();
    let ordered = order(&addrs, &plan.deps);
    // Deletes in reverse dependency order (with the deps of the state's objects).
    let mut del_deps = plan.deps.clone();
    let st_items = state
        .iter()
        .map(|(a, (t, s))| DepItem {
            address: a.clone(),
            rtype: t.clone(),
            attrs: s.attrs.clone(),
        })
        .collect();
    del_deps.extend(edges(env, st_items));
    let deletes: Vec<String> = order(&addrs, &del_deps).into_iter().rev().collect();
    for a in deletes {
        let (_, rtype, action) = plan.actions.iter().find(|(x, _, _)| *x == a).unwrap();
        if matches!(action, Action::Delete | Action::Replace(_)) {
            let prior = state.get(&a).map(|s| s.1.clone());
            env.provider
                .apply(ApplyRequest {
                    ctx: env.ctx.clone(),
                    address: a.clone(),
                    rtype: rtype.clone(),
                    op: Op::Delete,
                    desired: None,
                    prior,
                    live: plan.live.get(&a).cloned().flatten(),
                    changes: vec![],
                })
                .await
                .into_result()?;
            state.remove(&a);
        }
    }
    for a in ordered {
        let (_, rtype, action) = plan.actions.iter().find(|(x, _, _)| *x == a).unwrap();
        let (op, changes) = match action {
            Action::Create | Action::Replace(_) => (Op::Create, vec![]),
            Action::Update(c) => (Op::Update, c.clone()),
            Action::Delete => continue,
        };
        let resp = env
            .provider
            .apply(ApplyRequest {
                ctx: env.ctx.clone(),
                address: a.clone(),
                rtype: rtype.clone(),
                op,
                desired: Some(plan.desired[&a].1.clone()),
                prior: state.get(&a).map(|s| s.1.clone()),
                live: plan.live.get(&a).cloned().flatten(),
                changes,
            })
            .await
            .into_result()?;
        if let Some(s) = resp.state {
            state.insert(a.clone(), (rtype.clone(), s));
        }
    }
    Ok(())
}

/// Plans and applies; returns the plan that was applied.
pub async fn converge(env: &Env, config: &[Res], state: &mut State) -> Plan {
    let p = plan(env, config, state).await;
    apply(env, &p, state)
        .await
        .unwrap_or_else(|d| panic!("apply failed: {d}"));
    p
}

pub fn yaml_file(env: &Env, name: &str, text: &str) -> String {
    std::fs::write(env.dir.path().join(name), text).unwrap();
    name.to_string()
}

pub fn yaml_file_in(dir: &std::path::Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_string()
}
