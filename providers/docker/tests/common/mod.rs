//! The Docker provider against the real Docker Engine, planned and applied
//! through the SDK's harness ([`claw_provider::testing`], the engine's steps
//! and the real `decide`), plus helpers that drive the docker CLI.
#![allow(dead_code)]

pub use claw_provider::decide::{Action, Reason};
pub use claw_provider::testing::{Harness, Plan, Resource};
use claw_provider::*;
use std::path::Path;
use std::process::Command;

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

pub type Res = Resource;

pub fn res(rtype: &str, name: &str, attrs: serde_json::Value) -> Resource {
    Resource::json(rtype, name, attrs)
}

pub fn keyed(rtype: &str, name: &str, key: Option<&str>, attrs: serde_json::Value) -> Resource {
    match key {
        Some(k) => Resource::json(rtype, name, attrs).key(k),
        None => Resource::json(rtype, name, attrs),
    }
}

/// A harness for stack `stack` on the default Docker host.
pub fn stack(stack: &str, dir: &Path) -> Harness {
    with_host(stack, dir, None)
}

/// A harness for stack `stack` on the Docker host `host` (`unix://…`, `tcp://…`).
pub fn with_host(stack: &str, dir: &Path, host: Option<&str>) -> Harness {
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
    Harness::new(provider, ctx)
}

/// The addresses the plan refuses because their live object is not this
/// stack's, with that object's owner.
pub fn foreign(p: &Plan) -> Vec<(String, Owner)> {
    p.errors()
        .iter()
        .filter_map(|d| {
            let a = d.address.clone()?;
            let owner = p.live.get(&a)?.as_ref()?.owner.clone();
            matches!(owner, Owner::Unmanaged | Owner::OtherStack(_)).then_some((a, owner))
        })
        .collect()
}

/// The orphans a plan deletes: `(address, type)`, sorted.
pub fn orphans(p: &Plan) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = p
        .changes
        .iter()
        .filter(|c| c.reason == Reason::Orphan)
        .map(|c| (c.address.as_str(), c.rtype.as_str()))
        .collect();
    out.sort();
    out
}
