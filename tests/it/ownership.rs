//! Every live object has one owner (issue 10, SPEC §1.2) end to end against
//! real tmux, git and dockerd: objects missing from the state are adopted
//! (and the plan after is clean), hand-made sessions and worktrees are
//! refused with the `claw import` hint and left running until imported,
//! two addresses naming one container are refused, and a worktree whose
//! setup was killed midway runs it on the next apply.

use crate::common::{require, says, which, Ctx};
use crate::host::TmuxGuard;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn sh(script: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        o.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `sh` that may fail: (success, stdout and stderr).
pub(crate) fn try_sh(script: &str) -> (bool, String) {
    let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), s.trim().to_string())
}

pub(crate) fn tools() -> bool {
    require("git", which("git"), "git is not installed")
        && require("tmux", which("tmux"), "tmux is not installed")
}

/// A file, a tmux session on a private socket and a worktree of a fresh
/// repository (`repo`), in stack `own`.
fn host_stack() -> Option<(Ctx, TmuxGuard)> {
    if !tools() {
        return None;
    }
    let t = Ctx::new();
    sh(&format!(
        "git init -q -b main {r} && git -C {r} -c user.name=t -c user.email=t@t commit -q --allow-empty -m init",
        r = t.path("repo").display()
    ));
    t.write(
        "claw.toml",
        r#"
[stack]
name = "own"

[file.a]
path = "out/a.txt"
content = "a\n"

[tmux_session.x]
socket = "tmux.sock"
session = "x"
command = "sleep 600"

[git_worktree.w]
repo = "repo"
path = "wt/w"
branch = "agent-w"
"#,
    );
    let guard = TmuxGuard(t.path("tmux.sock"));
    Some((t, guard))
}

/// The pane pid of session `x`, or `None` when there is no such session.
fn pane_pid(t: &Ctx) -> Option<String> {
    let (ok, out) = try_sh(&format!(
        "tmux -S {} display -p -t =x: '#{{pane_pid}}'",
        t.path("tmux.sock").display()
    ));
    (ok && !out.is_empty()).then_some(out)
}

fn tmux(t: &Ctx, args: &str) -> String {
    sh(&format!("tmux -S {} {args}", t.path("tmux.sock").display()))
}

/// The worktree marker claw keeps in the git administrative folder.
fn marker(t: &Ctx) -> Option<String> {
    std::fs::read_to_string(t.path("repo/.git/worktrees/w/claw-owner")).ok()
}

#[test]
fn state_rm_then_apply_adopts_a_file_a_session_and_a_worktree_and_destroy_removes_them() {
    let Some((t, _guard)) = host_stack() else {
        return;
    };
    t.ok(&["apply", "--auto-approve"], 0);
    let pid = pane_pid(&t).expect("the session runs");
    // Markers: tmux user options on the session, a file in the worktree's
    // git administrative folder (the work tree stays clean).
    let opts = tmux(&t, "show-options -t =x:");
    says(&opts, "@claw-stack own");
    says(&opts, "@claw-address tmux_session.x");
    let m = marker(&t).expect("the worktree marker");
    assert_eq!(m, "stack own\naddress git_worktree.w\nsetup done\n");
    assert_eq!(
        sh(&format!(
            "git -C {} status --porcelain",
            t.path("wt/w").display()
        )),
        ""
    );

    for a in ["file.a", "tmux_session.x", "git_worktree.w"] {
        t.ok(&["state", "rm", a], 0);
    }
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(&o.stdout, "<= file.a");
    says(
        &o.stdout,
        "adopt (exists with identical content but is missing from the state)",
    );
    says(
        &o.stdout,
        "adopt (carries this stack's markers but is missing from the state)",
    );
    says(&o.stdout, "3 to adopt");
    let o = t.ok(&["apply", "--auto-approve"], 0);
    says(&o.stderr, "tmux_session.x: adopted");
    // Recorded as planned: the next plan is clean, the session untouched.
    t.ok(&["plan", "--detailed-exitcode"], 0);
    assert_eq!(pane_pid(&t).as_deref(), Some(pid.as_str()));
    let st = t.state();
    assert_eq!(st["resources"]["git_worktree.w"]["id"], "wt/w");
    assert_eq!(st["resources"]["tmux_session.x"]["attrs"]["session"], "x");

    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("out/a.txt"), "the file is removed");
    assert_eq!(pane_pid(&t), None, "the session is killed");
    assert!(!t.exists("wt/w"), "the worktree is removed");
    assert_eq!(marker(&t), None, "its marker went with it");
}

#[test]
fn a_hand_made_session_is_refused_keeps_running_and_is_imported_then_destroyed() {
    let Some((t, _guard)) = host_stack() else {
        return;
    };
    tmux(&t, "new-session -d -s x 'sleep 600'");
    let pid = pane_pid(&t).expect("the hand-made session runs");
    let o = t.ok(&["apply", "--auto-approve"], 1);
    says(
        &o.stderr,
        "tmux_session.x: an object `tmux.sock#x` already exists",
    );
    says(
        &o.stderr,
        "hint: adopt it with `claw import tmux_session.x tmux.sock#x`",
    );
    assert_eq!(pane_pid(&t).as_deref(), Some(pid.as_str()), "left alone");
    assert!(!t.exists("out/a.txt"), "a refused plan applies nothing");

    let o = t.ok(&["import", "tmux_session.x", "x"], 0);
    says(&o.stdout, "Imported tmux_session.x");
    says(&tmux(&t, "show-options -t =x:"), "@claw-stack own");
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(!o.stdout.contains("tmux_session.x"), "{}", o.stdout);
    t.ok(&["destroy", "--auto-approve"], 0);
    assert_eq!(pane_pid(&t), None, "the imported session is gone");
}

#[test]
fn a_hand_made_worktree_is_refused_and_imported_with_a_marker() {
    let Some((t, _guard)) = host_stack() else {
        return;
    };
    sh(&format!(
        "git -C {} worktree add -q -b agent-w {}",
        t.path("repo").display(),
        t.path("wt/w").display()
    ));
    let o = t.ok(&["plan"], 1);
    says(&o.stderr, "git_worktree.w: an object `wt/w` already exists");
    says(&o.stderr, "claw import git_worktree.w wt/w");
    assert_eq!(marker(&t), None);
    t.ok(&["import", "git_worktree.w", "wt/w"], 0);
    let m = marker(&t).expect("import marks the worktree");
    says(&m, "stack own\naddress git_worktree.w\n");
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(!o.stdout.contains("git_worktree.w"), "{}", o.stdout);
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("wt/w"));
}

#[test]
fn a_file_outside_the_state_is_adopted_when_identical_and_refused_otherwise() {
    if !tools() {
        return;
    }
    let t = Ctx::new();
    t.write(
        "claw.toml",
        "[stack]\nname = \"own\"\n\n[file.same]\npath = \"out/same\"\ncontent = \"s\"\n\n[file.other]\npath = \"out/other\"\ncontent = \"mine\"\n",
    );
    t.write("out/same", "s").write("out/other", "theirs");
    let o = t.ok(&["apply", "--auto-approve"], 1);
    says(
        &o.stderr,
        "file.other: `out/other` already exists with other content",
    );
    says(&o.stderr, "claw import file.other out/other");
    assert_eq!(t.read("out/other"), "theirs", "never overwritten");
    t.write("out/other", "mine");
    let o = t.ok(&["apply", "--auto-approve"], 0);
    says(&o.stderr, "file.same: adopted");
    says(&o.stderr, "file.other: adopted");
    t.ok(&["plan", "--detailed-exitcode"], 0);
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("out/same") && !t.exists("out/other"));
}

/// Starts claw in a process group of its own, so that a kill takes the
/// scripts it runs too (as when the machine dies).
pub(crate) fn spawn_group(t: &Ctx, args: &[&str]) -> std::process::Child {
    t.command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

#[test]
fn a_setup_killed_midway_runs_on_the_next_apply_and_is_not_recorded_done() {
    if !tools() {
        return;
    }
    let t = Ctx::new();
    sh(&format!(
        "git init -q -b main {r} && git -C {r} -c user.name=t -c user.email=t@t commit -q --allow-empty -m init",
        r = t.path("repo").display()
    ));
    let starts = t.path("starts");
    let done = t.path("done");
    t.write(
        "claw.toml",
        &format!(
            "[stack]\nname = \"own\"\n\n[git_worktree.w]\nrepo = \"repo\"\npath = \"wt/w\"\nbranch = \"agent-w\"\nsetup = \"echo start >> {}; sleep 3; echo ran >> {}\"\n",
            starts.display(),
            done.display()
        ),
    );
    let mut run = spawn_group(&t, &["apply", "--auto-approve"]);
    let until = Instant::now() + Duration::from_secs(30);
    while !starts.exists() {
        assert!(Instant::now() < until, "the setup never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signals our own child's process group.
    unsafe { libc::kill(-(run.id() as i32), libc::SIGKILL) };
    let _ = run.wait();
    assert!(!done.exists(), "killed during the setup");
    says(&marker(&t).expect("marked at creation"), "setup pending");

    // The next apply records the worktree and runs its setup again, once.
    let o = t.ok(&["apply", "--auto-approve"], 0);
    let all = o.all();
    says(&all, "git_worktree.w (create, in flight when pid");
    says(
        &all,
        "setup_run = \"interrupted before it finished\" -> \"runs again in the worktree\"",
    );
    assert_eq!(std::fs::read_to_string(&done).unwrap(), "ran\n");
    assert_eq!(std::fs::read_to_string(&starts).unwrap().lines().count(), 2);
    says(&marker(&t).unwrap(), "setup done");
    t.ok(&["plan", "--detailed-exitcode"], 0);
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("wt/w"));
}

fn docker(args: &str) -> (bool, String) {
    try_sh(&format!("docker {args}"))
}

/// A Docker Engine and a static busybox: an image FROM scratch, removed
/// with every container of the stack when dropped.
struct DockerStack {
    stack: String,
    image: String,
}

impl DockerStack {
    fn new(t: &Ctx) -> Option<DockerStack> {
        let (ok, out) = docker("version --format '{{.Server.APIVersion}}'");
        if !require("a Docker Engine", which("docker") && ok, &out) {
            return None;
        }
        let bb = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        if !require(
            "busybox-static",
            bb.is_some(),
            "apt-get install busybox-static",
        ) {
            return None;
        }
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let d = DockerStack {
            stack: format!("it-own-{id}"),
            image: format!("claw-it-own-{id}:1"),
        };
        std::fs::create_dir_all(t.path("img")).unwrap();
        std::fs::copy(bb.unwrap(), t.path("img/busybox")).unwrap();
        t.write(
            "img/Dockerfile",
            "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"sleep\", \"3600\"]\n",
        );
        let (ok, out) = docker(&format!(
            "build -q -t {} {}",
            d.image,
            t.path("img").display()
        ));
        assert!(ok, "docker build: {out}");
        Some(d)
    }

    fn containers(&self) -> Vec<String> {
        let (_, out) = docker(&format!(
            "ps -aq --no-trunc --filter label=claw.dev/stack={}",
            self.stack
        ));
        out.lines().map(str::to_string).collect()
    }
}

impl Drop for DockerStack {
    fn drop(&mut self) {
        for c in self.containers() {
            docker(&format!("rm -f {c}"));
        }
        docker(&format!("rmi -f {}", self.image));
    }
}

/// A folder whose claw.toml is `[stack]` and `body(stack, image)`.
fn docker_stack(body: impl Fn(&str, &str) -> String) -> Option<(Ctx, DockerStack)> {
    let t = Ctx::new();
    let d = DockerStack::new(&t)?;
    let toml = format!(
        "[stack]\nname = \"{}\"\n\n{}",
        d.stack,
        body(&d.stack, &d.image)
    );
    t.write("claw.toml", &toml);
    Some((t, d))
}

#[test]
fn a_container_missing_from_the_state_is_adopted_keeps_its_id_and_plans_clean() {
    let Some((t, d)) = docker_stack(|_, i| {
        format!("[docker_container.x]\nimage = \"{i}\"\nenv = {{ MODE = \"test\" }}\n")
    }) else {
        return;
    };
    t.ok(&["apply", "--auto-approve"], 0);
    let id = d.containers();
    assert_eq!(id.len(), 1, "{id:?}");
    t.ok(&["state", "rm", "docker_container.x"], 0);
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(&o.stdout, "<= docker_container.x");
    says(&o.stdout, "1 to adopt");
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(
        t.state()["resources"]["docker_container.x"]["id"],
        id[0].as_str()
    );
    // Recorded as planned (not every live attribute): no replace follows.
    t.ok(&["plan", "--detailed-exitcode"], 0);
    assert_eq!(d.containers(), id, "the same container");
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(d.containers().is_empty(), "destroy removed it");
}

#[test]
fn two_addresses_naming_one_container_are_refused_naming_both() {
    // `b` names the default name of `a`.
    let Some((t, d)) = docker_stack(|s, i| {
        format!("[docker_container.a]\nimage = \"{i}\"\n\n[docker_container.b]\nname = \"{s}-a\"\nimage = \"{i}\"\n")
    }) else {
        return;
    };
    let o = t.ok(&["apply", "--auto-approve"], 1);
    says(
        &o.stderr,
        &format!(
            "docker_container.a and docker_container.b manage one object (container {}-a on ",
            d.stack
        ),
    );
    assert!(d.containers().is_empty(), "nothing was created");
}
