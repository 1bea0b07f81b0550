//! A small stand-in for the engine (prepare → refresh → diff → decide → apply)
//! driving the Docker provider against the real Docker Engine, plus helpers.
#![allow(dead_code)]

use claw_provider::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// True when a Docker Engine answers; otherwise prints why the test skips
/// (and panics under CI=true, where a skip is a failure).
pub fn docker_available(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let msg =
            format!("{test}: skipped: no Docker Engine answers `docker version` (start dockerd)");
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg} — under CI=true a skip is a failure");
        }
        eprintln!("{msg}");
    }
    ok
}

pub fn docker(args: &[&str]) -> (bool, String) {
    let o = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), s.trim().to_string())
}

pub fn docker_ok(args: &[&str]) -> String {
    let (ok, out) = docker(args);
    assert!(ok, "docker {args:?} failed: {out}");
    out
}

/// A unique stack name for one test.
pub fn stack_name(test: &str) -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("t-{}-{}", test.replace('_', "-"), &u[..8])
}

/// Writes a build context: a Dockerfile FROM scratch with busybox copied in.
pub fn busybox_context(dir: &Path, extra: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is installed (apt-get install busybox-static)");
    std::fs::copy(bb, dir.join("busybox")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nENV PATH=/bin\n{extra}CMD [\"/bin/sleep\", \"3600\"]\n"
        ),
    )
    .unwrap();
}

/// A shared base image (built once per test binary with the docker CLI,
/// unlabelled, reused by later runs).
pub fn base_image() -> String {
    static ONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let tag = "claw-docker-test/busybox:1".to_string();
        if docker(&["image", "inspect", &tag]).0 {
            return tag;
        }
        let d = tempfile::tempdir().unwrap();
        busybox_context(d.path(), "");
        docker_ok(&["build", "-q", "-t", &tag, d.path().to_str().unwrap()]);
        tag
    })
    .clone()
}

/// Objects labelled for a stack, as `docker ... ls` shows them.
pub fn labelled(stack: &str) -> Vec<String> {
    let f = format!("label=claw.dev/stack={stack}");
    let mut out = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-a", "-q", "--filter", &f]),
        ("network", vec!["network", "ls", "-q", "--filter", &f]),
        ("volume", vec!["volume", "ls", "-q", "--filter", &f]),
        ("image", vec!["images", "-q", "--filter", &f]),
    ] {
        for l in docker_ok(&args).lines().filter(|l| !l.is_empty()) {
            out.push(format!("{kind} {l}"));
        }
    }
    out
}

/// Removes everything labelled for the stack (test cleanup, by the CLI).
pub fn cleanup(stack: &str) {
    let f = format!("label=claw.dev/stack={stack}");
    let ids = docker_ok(&["ps", "-a", "-q", "--filter", &f]);
    for id in ids.lines().filter(|l| !l.is_empty()) {
        docker(&["rm", "-f", id]);
    }
    for (ls, rm) in [
        (
            vec!["network", "ls", "-q", "--filter", &f],
            vec!["network", "rm"],
        ),
        (
            vec!["volume", "ls", "-q", "--filter", &f],
            vec!["volume", "rm", "-f"],
        ),
        (vec!["images", "-q", "--filter", &f], vec!["rmi", "-f"]),
    ] {
        for id in docker_ok(&ls).lines().filter(|l| !l.is_empty()) {
            let mut args = rm.clone();
            args.push(id);
            docker(&args);
        }
    }
}

/// Removes the stack's objects when dropped (also when a test fails).
pub struct Cleanup(pub Vec<String>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for s in &self.0 {
            cleanup(s);
        }
    }
}

#[derive(Clone, Debug)]
pub struct Res {
    pub address: String,
    pub rtype: String,
    pub name: String,
    pub key: Option<String>,
    pub attrs: Attrs,
}

pub fn res(rtype: &str, name: &str, attrs: serde_json::Value) -> Res {
    keyed(rtype, name, None, attrs)
}

pub fn keyed(rtype: &str, name: &str, key: Option<&str>, attrs: serde_json::Value) -> Res {
    let address = match key {
        Some(k) => format!("{rtype}.{name}[\"{k}\"]"),
        None => format!("{rtype}.{name}"),
    };
    let attrs = match Value::from_json(&attrs) {
        Value::Map(m) => m,
        _ => panic!("attrs must be an object"),
    };
    Res {
        address,
        rtype: rtype.into(),
        name: name.into(),
        key: key.map(str::to_string),
        attrs,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
}

#[derive(Debug, Clone)]
pub struct Change {
    pub address: String,
    pub rtype: String,
    pub action: Action,
    pub desired: Option<Attrs>,
    pub live: Option<LiveObject>,
    pub changes: Vec<AttrChange>,
    pub orphan: bool,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Addresses whose live object is not this stack's (the engine's plan-time error).
    pub foreign: Vec<(String, Owner)>,
    pub diagnostics: Vec<Diagnostic>,
    /// Docker API calls made by this plan.
    pub calls: u64,
}

impl Plan {
    pub fn get(&self, address: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.address == address)
    }
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.foreign.is_empty()
    }
}

pub struct Stack {
    pub provider: Arc<dyn Provider>,
    pub ctx: Ctx,
    pub state: BTreeMap<String, (String, StateObject)>,
    pub dir: PathBuf,
}

pub fn calls(p: &Arc<dyn Provider>) -> u64 {
    p.counters().iter().map(|(_, n)| *n).sum()
}

impl Stack {
    pub fn new(stack: &str, dir: &Path) -> Stack {
        Self::with_host(stack, dir, None)
    }

    pub fn with_host(stack: &str, dir: &Path, host: Option<&str>) -> Stack {
        let ctx = Ctx::for_tests(stack, dir);
        let mut attrs = Attrs::new();
        if let Some(h) = host {
            attrs.insert("host".into(), Value::str(h));
        }
        let provider = claw_docker::factory()
            .configure(ConfigureRequest {
                alias: "docker".into(),
                attrs,
                ctx: ctx.clone(),
            })
            .expect("configure");
        Stack {
            provider,
            ctx,
            state: BTreeMap::new(),
            dir: dir.to_path_buf(),
        }
    }

    pub fn prepare(&self, r: &Res) -> Attrs {
        let req = || InstanceRequest {
            address: &r.address,
            rtype: &r.rtype,
            name: &r.name,
            key: r.key.as_deref(),
            attrs: &r.attrs,
            ctx: &self.ctx,
        };
        let diags = self.provider.validate(req()).diagnostics;
        assert!(diags.is_empty(), "validate {}: {diags:?}", r.address);
        let resp = self.provider.prepare(req()).into_result();
        resp.expect("prepare").attrs
    }

    pub async fn plan(&self, config: &[Res]) -> Plan {
        let before = calls(&self.provider);
        let desired: BTreeMap<String, (String, Attrs)> = config
            .iter()
            .map(|r| (r.address.clone(), (r.rtype.clone(), self.prepare(r))))
            .collect();
        let mut items = Vec::new();
        for (a, (t, d)) in &desired {
            items.push(RefreshItem {
                address: a.clone(),
                rtype: t.clone(),
                desired: Some(d.clone()),
                prior: self.state.get(a).map(|s| s.1.clone()),
                recheck: false,
            });
        }
        for (a, (t, s)) in &self.state {
            if !desired.contains_key(a) {
                items.push(RefreshItem {
                    address: a.clone(),
                    rtype: t.clone(),
                    desired: None,
                    prior: Some(s.clone()),
                    recheck: false,
                });
            }
        }
        let resp = self
            .provider
            .refresh(RefreshRequest {
                ctx: self.ctx.clone(),
                items: items.clone(),
                find_orphans: true,
            })
            .await;
        let mut plan = Plan {
            diagnostics: resp.diagnostics.clone(),
            ..Default::default()
        };
        for item in &items {
            let live = resp.live.get(&item.address).cloned().flatten();
            if let Some(l) = &live {
                if matches!(l.owner, Owner::Unmanaged | Owner::OtherStack(_)) {
                    plan.foreign.push((item.address.clone(), l.owner.clone()));
                    continue;
                }
            }
            match (&item.desired, live) {
                (Some(d), None) => plan.changes.push(Change {
                    address: item.address.clone(),
                    rtype: item.rtype.clone(),
                    action: Action::Create,
                    desired: Some(d.clone()),
                    live: None,
                    changes: vec![],
                    orphan: false,
                }),
                (Some(d), Some(l)) => {
                    let r = self
                        .provider
                        .diff(DiffRequest {
                            ctx: self.ctx.clone(),
                            address: item.address.clone(),
                            rtype: item.rtype.clone(),
                            desired: d.clone(),
                            live: l.clone(),
                            prior: item.prior.clone(),
                        })
                        .await;
                    if r.changes.is_empty() {
                        continue;
                    }
                    let action = if r.changes.iter().any(|c| c.replace) {
                        Action::Replace
                    } else {
                        Action::Update
                    };
                    plan.changes.push(Change {
                        address: item.address.clone(),
                        rtype: item.rtype.clone(),
                        action,
                        desired: Some(d.clone()),
                        live: Some(l),
                        changes: r.changes,
                        orphan: false,
                    });
                }
                (None, Some(l)) => plan.changes.push(Change {
                    address: item.address.clone(),
                    rtype: item.rtype.clone(),
                    action: Action::Delete,
                    desired: None,
                    live: Some(l),
                    changes: vec![],
                    orphan: false,
                }),
                (None, None) => {}
            }
        }
        for o in resp.orphans {
            plan.changes.push(Change {
                address: o.address,
                rtype: o.rtype,
                action: Action::Delete,
                desired: None,
                live: Some(o.live),
                changes: vec![],
                orphan: true,
            });
        }
        plan.calls = calls(&self.provider) - before;
        plan
    }

    async fn op(&self, c: &Change, op: Op) -> Result<Option<StateObject>, Diagnostic> {
        let r = self
            .provider
            .apply(ApplyRequest {
                ctx: self.ctx.clone(),
                address: c.address.clone(),
                rtype: c.rtype.clone(),
                op,
                desired: if op == Op::Delete {
                    None
                } else {
                    c.desired.clone()
                },
                prior: self.state.get(&c.address).map(|s| s.1.clone()),
                live: if op == Op::Create {
                    None
                } else {
                    c.live.clone()
                },
                changes: c.changes.clone(),
            })
            .await
            .into_result()?;
        Ok(r.state)
    }

    /// Applies a plan: deletes (containers first), then creates and updates
    /// (images, networks and volumes before containers), each rank concurrently.
    pub async fn apply(&mut self, plan: &Plan) -> Result<(), Diagnostic> {
        assert!(
            plan.foreign.is_empty(),
            "refusing: foreign objects {:?}",
            plan.foreign
        );
        let rank = |t: &str| match t {
            "docker_image" => 0,
            "docker_network" | "docker_volume" => 1,
            _ => 2,
        };
        for r in [2, 1, 0] {
            let dels: Vec<&Change> = plan
                .changes
                .iter()
                .filter(|c| {
                    rank(&c.rtype) == r && matches!(c.action, Action::Delete | Action::Replace)
                })
                .collect();
            let res = futures::future::join_all(dels.iter().map(|c| self.op(c, Op::Delete))).await;
            for (c, r) in dels.iter().zip(res) {
                r?;
                self.state.remove(&c.address);
            }
        }
        for r in [0, 1, 2] {
            let ups: Vec<&Change> = plan
                .changes
                .iter()
                .filter(|c| {
                    rank(&c.rtype) == r
                        && matches!(c.action, Action::Create | Action::Update | Action::Replace)
                })
                .collect();
            let res = futures::future::join_all(ups.iter().map(|c| {
                let op = if c.action == Action::Update {
                    Op::Update
                } else {
                    Op::Create
                };
                self.op(c, op)
            }))
            .await;
            for (c, r) in ups.iter().zip(res) {
                if let Some(s) = r? {
                    self.state.insert(c.address.clone(), (c.rtype.clone(), s));
                }
            }
        }
        Ok(())
    }

    /// plan + apply, then a second plan that must be empty.
    pub async fn converge(&mut self, config: &[Res]) -> Plan {
        let plan = self.plan(config).await;
        assert!(
            plan.diagnostics.iter().all(|d| !d.is_error()),
            "{:?}",
            plan.diagnostics
        );
        self.apply(&plan).await.expect("apply");
        let again = self.plan(config).await;
        assert!(again.is_empty(), "not converged: {:#?}", again.changes);
        plan
    }

    /// Deletes everything in state (dependents first), like `claw destroy`.
    pub async fn destroy(&mut self) {
        let plan = self.plan(&[]).await;
        self.apply(&plan).await.expect("destroy");
        assert!(self.state.is_empty(), "state left: {:?}", self.state.keys());
    }
}
