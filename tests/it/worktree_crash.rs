//! A `git worktree add` killed midway (issues 10 and 11) against real git:
//! the kill lands inside git itself (a smudge filter that hangs during the
//! checkout, or a `post-checkout` hook that hangs after it), the whole
//! process group dies, and the next apply must remove the half-made
//! worktree and add it again with its setup run once; a half-made worktree
//! claw did not start is refused and left alone; files the add did not
//! write are never thrown away without `force`.

use crate::common::{says, Ctx};
use crate::ownership::{sh, spawn_group, tools};
use std::time::{Duration, Instant};

/// A repository whose checkout hangs while the file `HANG` exists (in the
/// smudge filter of `slow.txt`, between `a.txt` and `z.txt`) and whose
/// `post-checkout` hook hangs while `HANG_HOOK` exists; both touch
/// `STARTED` first. `setup` (when set) counts its runs in `starts`/`done`.
fn slow_stack(setup: bool) -> Option<Ctx> {
    if !tools() {
        return None;
    }
    let t = Ctx::new();
    let (r, d) = (t.path("repo"), t.dir.path());
    t.write("repo/a.txt", "a\n")
        .write("repo/slow.txt", "slow\n")
        .write("repo/z.txt", "z\n")
        .write("repo/.gitattributes", "slow.txt filter=slow\n");
    sh(&format!(
        "cd {r} && git init -q -b main && git add . && git -c user.name=t -c user.email=t@t commit -q -m init && \
         git config filter.slow.smudge 'if [ -e {d}/HANG ]; then touch {d}/STARTED; sleep 60; fi; cat'",
        r = r.display(),
        d = d.display()
    ));
    t.write(
        "repo/.git/hooks/post-checkout",
        &format!(
            "#!/bin/sh\nif [ -e {d}/HANG_HOOK ]; then touch {d}/STARTED; sleep 60; fi\n",
            d = d.display()
        ),
    );
    sh(&format!(
        "chmod +x {}/.git/hooks/post-checkout",
        r.display()
    ));
    let setup = match setup {
        true => format!(
            "setup = \"echo start >> {d}/starts; echo ran >> {d}/done\"\n",
            d = d.display()
        ),
        false => String::new(),
    };
    t.write(
        "claw.toml",
        &format!("[stack]\nname = \"own\"\n\n[git_worktree.w]\nrepo = \"repo\"\npath = \"wt/w\"\nbranch = \"agent-w\"\n{setup}"),
    );
    Some(t)
}

/// Creates `flag`, runs `run` until the hang it causes has started, then
/// SIGKILLs the whole process group (claw, its scripts, git, the filter).
fn kill_during(t: &Ctx, flag: &str, mut run: std::process::Child) {
    t.write(flag, "");
    let until = Instant::now() + Duration::from_secs(30);
    while !t.exists("STARTED") {
        assert!(Instant::now() < until, "the hang never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signals our own child's process group.
    unsafe { libc::kill(-(run.id() as i32), libc::SIGKILL) };
    let _ = run.wait();
    std::fs::remove_file(t.path(flag)).unwrap();
    std::fs::remove_file(t.path("STARTED")).unwrap();
}

/// Starts `claw apply` and kills it (with everything it runs) inside git.
fn killed_apply(t: &Ctx, flag: &str) {
    let run = spawn_group(t, &["apply", "--auto-approve"]);
    kill_during(t, flag, run);
}

fn admin(t: &Ctx, file: &str) -> Option<String> {
    std::fs::read_to_string(t.path(&format!("repo/.git/worktrees/w/{file}"))).ok()
}

/// The administrative folders git keeps for the repository's worktrees.
fn admin_folders(t: &Ctx) -> Vec<String> {
    match std::fs::read_dir(t.path("repo/.git/worktrees")) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    }
}

fn count(t: &Ctx, file: &str) -> usize {
    std::fs::read_to_string(t.path(file))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// One apply removes the worktree and adds it again; returns its output.
fn readded(t: &Ctx, setup_runs: usize) -> String {
    let o = t.ok(&["apply", "--auto-approve"], 0).all();
    says(
        &o,
        "add_run = \"interrupted before it finished\" -> \"removed and added again\"",
    );
    converged_then_destroyed(t, setup_runs);
    o
}

/// After the recovering apply: complete, marked, unlocked, setup run once;
/// the plan is clean and destroy leaves nothing behind.
fn converged_then_destroyed(t: &Ctx, setup_runs: usize) {
    for f in ["a.txt", "slow.txt", "z.txt"] {
        assert!(t.exists(&format!("wt/w/{f}")), "{f} is checked out");
    }
    assert_eq!(
        admin(t, "claw-owner").expect("the marker"),
        "stack own\naddress git_worktree.w\nsetup done\n"
    );
    assert_eq!(admin(t, "locked"), None, "unlocked");
    assert_eq!(count(t, "starts"), setup_runs, "the setup ran once");
    assert_eq!(count(t, "done"), setup_runs);
    assert_eq!(
        sh(&format!(
            "git -C {} status --porcelain",
            t.path("wt/w").display()
        )),
        ""
    );
    t.ok(&["plan", "--detailed-exitcode"], 0);
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("wt/w"), "the worktree is removed");
    assert_eq!(admin_folders(t), Vec::<String>::new(), "and its git folder");
}

#[test]
fn an_add_killed_during_its_checkout_is_removed_and_added_again_with_its_setup_run_once() {
    let Some(t) = slow_stack(true) else {
        return;
    };
    killed_apply(&t, "HANG");
    // What git left: claw's lock, a partial checkout, no marker, no setup.
    says(
        &admin(&t, "locked").expect("locked"),
        "claw: adding for stack own (pid ",
    );
    assert!(t.exists("wt/w/a.txt") && !t.exists("wt/w/z.txt"), "partial");
    assert_eq!(admin(&t, "claw-owner"), None);
    assert!(!t.exists("starts"));

    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(
        &o.stdout,
        "add_run = \"interrupted before it finished\" -> \"removed and added again\"",
    );
    says(
        &readded(&t, 1),
        "git_worktree.w (create, in flight when pid",
    );
}

#[test]
fn an_add_killed_after_git_finished_but_before_the_marker_runs_its_setup_once() {
    let Some(t) = slow_stack(true) else {
        return;
    };
    killed_apply(&t, "HANG_HOOK");
    // git's checkout is complete; the script died before the marker.
    assert!(t.exists("wt/w/z.txt"));
    says(&admin(&t, "locked").expect("locked"), "claw: adding");
    assert_eq!(admin(&t, "claw-owner"), None);
    readded(&t, 1);
}

#[test]
fn git_own_initializing_lock_left_on_an_add_claw_was_making_is_recovered() {
    let Some(t) = slow_stack(true) else {
        return;
    };
    killed_apply(&t, "HANG");
    // As a plain `git worktree add` (an older claw) leaves it.
    t.write("repo/.git/worktrees/w/locked", "initializing\n");
    says(&readded(&t, 1), "found it; recorded in the state");
}

#[test]
fn destroy_after_an_add_killed_midway_removes_the_half_made_worktree() {
    let Some(t) = slow_stack(true) else {
        return;
    };
    killed_apply(&t, "HANG");
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("wt/w"));
    assert_eq!(admin_folders(&t), Vec::<String>::new());
    assert!(!t.exists("starts"), "a destroy runs no setup");
}

#[test]
fn a_half_made_worktree_claw_did_not_start_is_refused_left_alone_and_importable() {
    let Some(t) = slow_stack(false) else {
        return;
    };
    // The user's own `git worktree add`, killed midway.
    let mut git = std::process::Command::new("git");
    git.args(["worktree", "add", "-q", "-b", "agent-w"])
        .arg(t.path("wt/w"))
        .current_dir(t.path("repo"));
    let run = {
        use std::os::unix::process::CommandExt;
        git.process_group(0).spawn().unwrap()
    };
    kill_during(&t, "HANG", run);
    assert_eq!(admin(&t, "locked").as_deref(), Some("initializing\n"));

    let o = t.ok(&["apply", "--auto-approve"], 1);
    says(&o.stderr, "git_worktree.w: an object `wt/w` already exists");
    says(&o.stderr, "claw import git_worktree.w wt/w");
    // Never touched: git's lock, the partial checkout, no marker.
    assert_eq!(admin(&t, "locked").as_deref(), Some("initializing\n"));
    assert!(t.exists("wt/w/a.txt") && !t.exists("wt/w/z.txt"));
    assert_eq!(admin(&t, "claw-owner"), None);
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(t.exists("wt/w/a.txt"), "destroy leaves what is not claw's");

    // Imported, it becomes claw's unfinished add: the plan adds it again.
    t.ok(&["import", "git_worktree.w", "wt/w"], 0);
    says(&admin(&t, "locked").unwrap(), "claw: adding for stack own");
    readded(&t, 0);
}

#[test]
fn files_an_interrupted_add_did_not_write_are_kept_unless_force() {
    let Some(t) = slow_stack(true) else {
        return;
    };
    killed_apply(&t, "HANG");
    t.write("wt/w/notes.txt", "mine\n");
    let o = t.ok(&["apply", "--auto-approve"], 1);
    says(
        &o.stderr,
        "refusing to remove the worktree wt/w on local: its `git worktree add` was interrupted and it holds files that add did not write",
    );
    says(&o.stderr, "notes.txt");
    says(&o.stderr, "set `force = true`");
    assert_eq!(t.read("wt/w/notes.txt"), "mine\n", "kept");
    let o = t.ok(&["destroy", "--auto-approve"], 1);
    says(&o.stderr, "holds files that add did not write");
    assert_eq!(t.read("wt/w/notes.txt"), "mine\n", "kept by destroy too");
    assert!(!t.exists("starts"));

    let toml = t.read("claw.toml");
    t.write("claw.toml", &format!("{toml}force = true\n"));
    t.ok(&["apply", "--auto-approve"], 0);
    assert!(!t.exists("wt/w/notes.txt"), "thrown away with force");
    converged_then_destroyed(&t, 1);
}

#[test]
fn a_dead_claw_add_that_left_only_its_git_folder_is_cleared_before_adding() {
    let Some(t) = slow_stack(false) else {
        return;
    };
    // Killed right after git made the folder and its lock: no work tree,
    // not listed by git. A dead process's pid, and a stranger's leftover.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    t.write(
        "repo/.git/worktrees/w/locked",
        &format!("claw: adding for stack own (pid {pid})\n"),
    );
    t.write("repo/.git/worktrees/theirs/locked", "initializing\n");
    t.ok(&["apply", "--auto-approve"], 0);
    // The same folder name again: claw's leftover was cleared first.
    says(&admin(&t, "claw-owner").expect("marked"), "setup done");
    let mut folders = admin_folders(&t);
    folders.sort();
    assert_eq!(folders, ["theirs", "w"]);
    t.ok(&["destroy", "--auto-approve"], 0);
    assert_eq!(
        admin_folders(&t),
        ["theirs"],
        "the stranger's is left alone"
    );
}
