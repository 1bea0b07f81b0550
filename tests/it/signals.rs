//! Ctrl-C and SIGTERM against the real claw binary, real git and a pty
//! (SPEC §4): the lock is always released, completed operations are in the
//! state, nothing starts after the signal, and claw exits 130.

use crate::common::{require, which, Ctx};
use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOCK: &str = ".claw/state.json.lock";

/// A test folder with a git repository `repo` (one commit on `main`).
fn with_repo() -> Option<Ctx> {
    if !require("git", which("git"), "git is not installed") {
        return None;
    }
    let t = Ctx::new();
    let repo = t.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["commit", "-q", "--allow-empty", "-m", "init"],
    ] {
        let o = std::process::Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("HOME", t.dir.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {o:?}");
    }
    Some(t)
}

/// One worktree `wt<i>` of the repository (they queue for its lock).
fn worktree(i: usize, setup: &str) -> String {
    format!(
        "\n[git_worktree.wt{i}]\nrepo = \"repo\"\npath = \"wt/{i}\"\nbranch = \"sandbox/{i}\"\nbase = \"main\"\nsetup = \"{setup}\"\n"
    )
}

/// A stack of `n` worktrees of one repository, each running `setup`.
fn worktrees(stack: &str, n: usize, setup: &str) -> String {
    let blocks: String = (0..n).map(|i| worktree(i, setup)).collect();
    format!("[stack]\nname = \"{stack}\"\n{blocks}")
}

/// Polls `cond` until it holds, failing after a generous timeout.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill(child: &Child, sig: i32) {
    // SAFETY: sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// claw running with stdout and stderr in files of the test folder.
struct Running {
    child: Child,
    t_out: std::path::PathBuf,
    t_err: std::path::PathBuf,
}

impl Running {
    fn start(t: &Ctx, args: &[&str]) -> Running {
        let (t_out, t_err) = (t.path("claw.stdout"), t.path("claw.stderr"));
        let child = t
            .command(args)
            .stdout(File::create(&t_out).unwrap())
            .stderr(File::create(&t_err).unwrap())
            .spawn()
            .unwrap();
        Running {
            child,
            t_out,
            t_err,
        }
    }
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.t_err).unwrap_or_default()
    }
    /// Waits for the exit; returns the code, stdout and stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let mut code = None;
        wait_for("claw to exit", || match self.child.try_wait().unwrap() {
            Some(st) => {
                code = Some(st.code());
                true
            }
            None => false,
        });
        let out = std::fs::read_to_string(&self.t_out).unwrap_or_default();
        (code.flatten(), out, self.stderr())
    }
}

/// The worktrees of `wt/` that exist, and those the state records.
fn worktrees_now(t: &Ctx, n: usize) -> (Vec<usize>, Vec<usize>) {
    let on_disk = (0..n).filter(|i| t.exists(&format!("wt/{i}"))).collect();
    let st = t.state();
    let in_state = (0..n)
        .filter(|i| st["resources"].get(format!("git_worktree.wt{i}")).is_some())
        .collect();
    (on_disk, in_state)
}

/// A rerun takes the lock without `force-unlock` and converges; its output.
fn converges(t: &Ctx, n: usize) -> crate::common::Out {
    let o = t.ok(&["apply", "--auto-approve"], 0);
    assert!(!o.all().contains("force-unlock"), "{}", o.all());
    assert_eq!(worktrees_now(t, n).1.len(), n);
    t.ok(&["plan", "--detailed-exitcode"], 0);
    o
}

#[test]
fn sigterm_during_apply_records_what_completed_starts_nothing_new_and_exits_130() {
    let Some(t) = with_repo() else { return };
    let n = 5;
    t.write("claw.toml", &worktrees("sigterm", n, "sleep 2"));
    let run = Running::start(&t, &["apply", "--auto-approve"]);
    // One worktree at a time holds the repository's lock; the rest queue.
    wait_for("the first worktree", || t.exists("wt/0"));
    let started_before = (0..n).filter(|i| t.exists(&format!("wt/{i}"))).count();
    kill(&run.child, libc::SIGTERM);
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(130), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("Interrupted (SIGTERM)"), "{stderr}");
    assert!(!stdout.contains("complete"), "{stdout}");
    assert!(!t.exists(LOCK), "the lock is released");
    let (on_disk, in_state) = worktrees_now(&t, n);
    // Every worktree that was created is recorded, and only the one running
    // when the signal came (or about to create its folder) finished.
    assert_eq!(on_disk, in_state, "{stdout}");
    assert!(
        !in_state.is_empty(),
        "the running worktree completed: {stdout}"
    );
    assert!(
        in_state.len() <= started_before + 1,
        "{in_state:?}: {stdout}"
    );
    let not_started = n - in_state.len();
    assert!(
        stdout.contains(&format!(
            "Interrupted: {} done, 0 failed, 0 skipped, {not_started} not started.",
            in_state.len()
        )),
        "{stdout}"
    );
    converges(&t, n);
}

#[test]
fn a_second_sigint_abandons_the_wait_records_what_completed_and_releases_the_lock() {
    let Some(t) = with_repo() else { return };
    // wt0 completes first, wt1 runs when the signals come; wt2 (setup
    // `true`) either ran before wt1 or waits for the repository's lock.
    let n = 3;
    let blocks = [
        worktree(0, "true"),
        worktree(1, "sleep 30"),
        worktree(2, "true"),
    ];
    t.write(
        "claw.toml",
        &format!("[stack]\nname = \"abandon\"\n{}", blocks.concat()),
    );
    let run = Running::start(&t, &["apply", "--auto-approve"]);
    // Setups run in parallel: wait for wt0 to be recorded, not just present.
    wait_for("wt0 to complete and wt1 to run", || {
        t.exists("wt/1") && run.stderr().contains("git_worktree.wt0: created")
    });
    kill(&run.child, libc::SIGINT);
    wait_for("the first interrupt to be noticed", || {
        run.stderr().contains("Interrupted (Ctrl-C)")
    });
    let second = Instant::now();
    kill(&run.child, libc::SIGINT);
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(130), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // It did not wait for the 30-second setup.
    assert!(second.elapsed() < Duration::from_secs(20), "{stderr}");
    assert!(stderr.contains("abandoning"), "{stderr}");
    assert!(!t.exists(LOCK), "the lock is released");
    // The state is readable, holds what completed, and records the
    // abandoned operation as in flight (the next run re-checks it).
    let st = t.state();
    assert_eq!(st["stack"], "abandon");
    assert!(st["in_flight"].get("git_worktree.wt1").is_some(), "{st}");
    let done = worktrees_now(&t, n).1;
    assert!(
        done.contains(&0) && !done.contains(&1),
        "{done:?}: {stdout}"
    );
    // wt2 may have been running too (waiting for the repository's lock)
    // when the second signal came: then it is abandoned, not "not started".
    let abandoned = if stdout.contains("abandoned: git_worktree.wt2") {
        2
    } else {
        1
    };
    let summary = format!(
        "Interrupted: {} done, 0 failed, 0 skipped, {} not started, {abandoned} abandoned while running.",
        done.len(),
        n - abandoned - done.len()
    );
    assert!(stdout.contains(&summary), "{stdout}");
    assert!(stdout.contains("abandoned: git_worktree.wt1"), "{stdout}");
    let o = converges(&t, n);
    assert!(
        o.stderr.contains("git_worktree.wt1 (create, in flight"),
        "{}",
        o.stderr
    );
    assert!(t.state().get("in_flight").is_none(), "{}", t.state());
}

#[test]
fn ctrl_c_waits_for_the_running_operation_and_starts_nothing_that_depends_on_it() {
    let Some(t) = with_repo() else { return };
    let mut toml = worktrees("interrupt", 1, "sleep 2");
    toml.push_str(
        "\n[file.after]\npath = \"after.txt\"\ncontent = \"waits for ${git_worktree.wt0.path}\"\n",
    );
    t.write("claw.toml", &toml);
    let run = Running::start(&t, &["apply", "--auto-approve"]);
    wait_for("the worktree", || t.exists("wt/0"));
    kill(&run.child, libc::SIGINT);
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(130), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("Interrupted"), "{stderr}");
    assert!(stdout.contains("  not started: file.after\n"), "{stdout}");
    // The running operation finished and was recorded; the rest was not started.
    assert!(t.state()["resources"].get("git_worktree.wt0").is_some());
    assert!(!t.exists("after.txt"));
    assert!(!t.exists(LOCK), "lock released");
    // A rerun finishes the job.
    t.ok(&["apply", "--auto-approve"], 0);
    assert!(t.exists("after.txt"));
    t.ok(&["destroy", "--auto-approve"], 0);
}

/// A pseudo-terminal: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty writes two new descriptors, which we then own.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

#[test]
fn ctrl_c_at_the_prompt_changes_nothing_and_releases_the_lock() {
    let t = Ctx::new();
    t.write(
        "claw.toml",
        "[stack]\nname = \"prompt\"\n\n[file.a]\npath = \"a.txt\"\ncontent = \"a\"\n",
    );
    let (master, slave) = openpty();
    let mut cmd = t.command(&["apply"]);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // our copies of the slave side: the master sees EOF once claw exits
    let screen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let screen = screen.clone();
        let mut master = File::from(master);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut master, &mut buf) {
                screen
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    wait_for("the prompt", || {
        screen
            .lock()
            .unwrap()
            .contains("Only 'yes' will be accepted")
    });
    assert!(t.exists(LOCK), "the lock is held while claw asks");
    kill(&child, libc::SIGINT);
    let mut status = None;
    wait_for("claw to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    reader.join().unwrap();
    let screen = screen.lock().unwrap().clone();
    assert_eq!(status.unwrap().code(), Some(130), "{screen}");
    assert!(screen.contains("nothing was changed"), "{screen}");
    assert!(!t.exists("a.txt"), "nothing was changed");
    assert!(!t.exists(LOCK), "the lock is released");
    if t.exists(".claw/state.json") {
        let st = t.state();
        assert_eq!(st["resources"], serde_json::json!({}), "{st}");
        assert_eq!(st["serial"], 0, "{st}");
    }
}
