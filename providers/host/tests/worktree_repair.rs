//! An interrupted `git worktree add` recovered through the local and the
//! SSH runner (a real sshd on loopback), with the harness as the engine:
//! real git is killed inside its checkout under claw's lock, the state
//! records the worktree (as the recovery of the in-flight create does),
//! and one apply removes it, adds it again and runs its setup once; a
//! destroy of such a worktree removes it and its git folder.

mod common;
mod fixtures;
use claw_host::runner::Runner;
use claw_provider::decide::Action;
use claw_provider::testing::Resource;
use claw_provider::*;
use common::*;
use fixtures::*;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A repository whose checkout hangs in the smudge filter of `slow.txt`
/// while `root/HANG` exists.
fn slow_repo(root: &Path) -> std::path::PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for (f, c) in [
        ("a.txt", "a\n"),
        ("slow.txt", "slow\n"),
        ("z.txt", "z\n"),
        (".gitattributes", "slow.txt filter=slow\n"),
    ] {
        std::fs::write(repo.join(f), c).unwrap();
    }
    sh(&format!(
        "cd {r} && git init -q -b main && git add . && git -c user.name=t -c user.email=t@t commit -q -m init && \
         git config filter.slow.smudge 'if [ -e {d}/HANG ]; then touch {d}/STARTED; sleep 60; fi; cat'",
        r = q(&repo),
        d = q(root)
    ));
    repo
}

/// `git worktree add` as claw runs it (with claw's lock, for stack `t` of
/// a process that is gone), SIGKILLed with its process group in the checkout.
fn killed_add(root: &Path, repo: &Path, path: &Path, branch: &str) {
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(root.join("HANG"), "").unwrap();
    let mut git = std::process::Command::new("git")
        .current_dir(repo)
        .args(["worktree", "add", "-q", "--lock", "--reason"])
        .arg(format!("claw: adding for stack t (pid {pid})"))
        .args(["-b", branch])
        .arg(path)
        .process_group(0)
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while !root.join("STARTED").exists() {
        assert!(Instant::now() < until, "the checkout never hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signals our own child's process group.
    unsafe { libc::kill(-(git.id() as i32), libc::SIGKILL) };
    let _ = git.wait();
    for f in ["HANG", "STARTED"] {
        std::fs::remove_file(root.join(f)).unwrap();
    }
    assert!(path.join("a.txt").exists() && !path.join("z.txt").exists());
}

fn recorded(path: &Path, desired: &Attrs) -> StateObject {
    let mut private = Attrs::new();
    private.insert("marked".into(), Value::Bool(true));
    StateObject {
        id: path.to_string_lossy().into_owned(),
        attrs: desired.clone(),
        private,
    }
}

async fn interrupted_adds(runner: Arc<dyn Runner>) {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let repo = slow_repo(root);
    let d = Driver::new(runner, root);
    let path = root.join("wt/w");
    let done = root.join("done");
    let desired = d.prepare(
        "git_worktree.w",
        &attrs(&[
            ("repo", s(&repo)),
            ("path", s(&path)),
            ("branch", "agent-w".into()),
            ("setup", format!("echo ran >> {}", q(&done)).as_str().into()),
        ]),
    );
    killed_add(root, &repo, &path, "agent-w");
    let mut h = d.harness("git_worktree.w", Some(&recorded(&path, &desired)));
    h.set(vec![Resource::new("git_worktree", "w", desired)]);
    let plan = h.converge().await;
    let change = &plan.changes[0];
    assert_eq!(change.action, Action::Update, "{plan:#?}");
    assert!(
        change.diff.iter().any(|c| c.path == "add_run"),
        "{:?}",
        change.diff
    );
    for f in ["a.txt", "slow.txt", "z.txt"] {
        assert!(path.join(f).exists(), "{f} checked out");
    }
    assert_eq!(std::fs::read_to_string(&done).unwrap(), "ran\n", "once");
    let admin = repo.join(".git/worktrees/w");
    assert!(!admin.join("locked").exists(), "unlocked");
    let marker = std::fs::read_to_string(admin.join("claw-owner")).unwrap();
    assert!(marker.ends_with("setup done\n"), "{marker}");
    h.destroy().await;
    assert!(!path.exists());

    // Destroyed while unfinished: the folder and git's record go.
    let other = root.join("wt/other");
    let desired = d.prepare(
        "git_worktree.other",
        &attrs(&[
            ("repo", s(&repo)),
            ("path", s(&other)),
            ("branch", "agent-other".into()),
        ]),
    );
    killed_add(root, &repo, &other, "agent-other");
    let mut h = d.harness("git_worktree.other", Some(&recorded(&other, &desired)));
    h.destroy().await;
    assert!(!other.exists());
    assert!(
        !repo.join(".git/worktrees").exists()
            || std::fs::read_dir(repo.join(".git/worktrees"))
                .unwrap()
                .next()
                .is_none(),
        "no git folder left"
    );
}

#[tokio::test]
async fn interrupted_adds_local() {
    if !tools() {
        return;
    }
    interrupted_adds(local_runner()).await;
}

#[tokio::test]
async fn interrupted_adds_ssh() {
    if !tools() {
        return;
    }
    let Some(sshd) = Sshd::start() else { return };
    interrupted_adds(sshd.runner()).await;
}
