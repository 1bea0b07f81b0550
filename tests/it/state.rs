//! The state under crashes and races: the journal, in-flight operations,
//! locks, validation, and the empty state of a fresh stack.

use crate::common::{require, which, Ctx};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn sh(cmd: &str) -> String {
    let o = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Starts claw in a process group of its own (so a kill takes its children
/// too, as when a machine or terminal dies).
fn spawn(t: &Ctx, args: &[&str]) -> Child {
    t.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn kill_group(c: &mut Child) {
    // SAFETY: signals our own child's process group.
    unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
    let _ = c.wait();
}

/// A pseudo-random delay in [lo, hi) milliseconds.
fn random_ms(lo: u64, hi: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis(lo + nanos % (hi - lo))
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn addresses(t: &Ctx) -> Vec<String> {
    let o = t.ok(&["state", "list"], 0);
    o.stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// A git repository and a stack of `n` worktrees whose setup takes a second.
fn worktree_stack(t: &Ctx, n: usize, setup: &str) {
    let repo = t.path("repo");
    sh(&format!(
        "git init -q -b main {r} && git -C {r} -c user.name=t -c user.email=t@t commit -q --allow-empty -m init",
        r = repo.display()
    ));
    let mut cfg = format!(
        "[stack]\nname = \"crash\"\n\n[vars]\nrepo = \"{}\"\n",
        repo.display()
    );
    for i in 0..n {
        cfg.push_str(&format!(
            "\n[git_worktree.w{i}]\nrepo = \"${{vars.repo}}\"\npath = \"wt/w{i}\"\nbranch = \"b{i}\"\nsetup = \"{setup}\"\n"
        ));
    }
    t.write("claw.toml", &cfg);
}

fn live_worktrees(t: &Ctx) -> Vec<String> {
    let out = sh(&format!(
        "git -C {} worktree list --porcelain",
        t.path("repo").display()
    ));
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .filter(|p| p.contains("/wt/"))
        .map(|p| format!("git_worktree.{}", p.rsplit('/').next().unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn sigkill_during_an_apply_then_apply_takes_over_the_lock_and_converges() {
    if !require("git", which("git"), "git is not installed") {
        return;
    }
    let t = Ctx::new();
    // Setups run in parallel: each lasts longer than the latest kill below,
    // so the kill always lands while the apply runs.
    worktree_stack(&t, 6, "sleep 5");
    let mut run = spawn(&t, &["apply", "--auto-approve"]);
    let pid = run.id();
    wait_until("the lock", 20, || t.exists(".claw/state.json.lock"));
    std::thread::sleep(random_ms(300, 4000));
    kill_group(&mut run);
    assert!(
        t.exists(".claw/state.json.lock"),
        "a killed run leaves its lock"
    );

    let o = t.ok(&["apply", "--auto-approve"], 0);
    assert!(
        o.stderr.contains("took over the lock on")
            && o.stderr.contains(&format!("held by pid {pid} on")),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("that process is no longer running"),
        "{}",
        o.stderr
    );
    t.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(!t.exists(".claw/state.json.lock"), "the lock is released");
    assert!(
        !t.exists(".claw/state.json.journal"),
        "the journal is folded"
    );
    // Nothing outside the state: every live worktree is recorded, and all six exist.
    let recorded = addresses(&t);
    assert_eq!(live_worktrees(&t), recorded);
    assert_eq!(recorded.len(), 6, "{recorded:?}");
    assert!(
        t.state()["in_flight"].is_null(),
        "{}",
        t.read(".claw/state.json")
    );
}

#[test]
fn a_journal_left_by_a_crash_is_shown_then_folded() {
    if !require("git", which("git"), "git is not installed") {
        return;
    }
    let t = Ctx::new();
    worktree_stack(&t, 1, "sleep 30");
    // Three files first, then the slow worktree (after them).
    let mut cfg = t.read("claw.toml");
    cfg = cfg.replace(
        "setup = \"sleep 30\"\n",
        "setup = \"sleep 30\"\ndepends_on = [\"file.c\"]\n",
    );
    cfg.push_str("\n[file.a]\npath = \"out/a\"\ncontent = \"a\"\n\n[file.b]\npath = \"out/b\"\ncontent = \"b ${file.a.path}\"\n\n[file.c]\npath = \"out/c\"\ncontent = \"c ${file.b.path}\"\n");
    t.write("claw.toml", &cfg);
    let mut run = spawn(&t, &["apply", "--auto-approve"]);
    let pid = run.id();
    // Read-only commands see the journal of the running apply.
    wait_until("three files in the state", 30, || {
        addresses(&t) == ["file.a", "file.b", "file.c"]
    });
    wait_until("the worktree in flight", 30, || {
        t.read(".claw/state.json.journal")
            .contains("\"op\":\"create\"")
            && t.read(".claw/state.json.journal")
                .contains("git_worktree.w0")
    });
    std::thread::sleep(Duration::from_millis(300));
    kill_group(&mut run);
    // The state file itself was not rewritten during the run.
    assert_eq!(t.state()["serial"], 0);
    assert_eq!(t.state()["resources"], serde_json::json!({}));
    let o = t.ok(&["state", "list"], 0);
    assert_eq!(
        o.stdout
            .lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect::<Vec<_>>(),
        ["file.a", "file.b", "file.c"]
    );
    let o = t.ok(&["plan"], 0);
    assert!(
        o.stderr.contains(&format!(
            "3 operations recorded in a journal left by pid {pid}"
        )),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("git_worktree.w0 (create)"),
        "{}",
        o.stderr
    );

    // Setup would sleep again: make the rerun fast (setup only runs on create).
    t.write(
        "claw.toml",
        &t.read("claw.toml").replace("sleep 30", "true"),
    );
    let o = t.ok(&["apply", "--auto-approve"], 0);
    assert!(
        o.stderr.contains(&format!(
            "recovered 3 operations from a journal left by pid {pid}"
        )),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("1 were in flight and are re-checked: git_worktree.w0"),
        "{}",
        o.stderr
    );
    t.ok(&["plan", "--detailed-exitcode"], 0);
    let recorded = addresses(&t);
    assert!(
        recorded.contains(&"git_worktree.w0".to_string()),
        "{recorded:?}"
    );
    assert_eq!(live_worktrees(&t), ["git_worktree.w0"]);
    assert!(!t.exists(".claw/state.json.journal"));
}

#[test]
fn concurrent_applies_one_holds_the_lock_the_other_names_it() {
    let t = Ctx::new();
    t.write(
        "claw.toml",
        "[stack]\nname = \"race\"\n\n[vars]\nround = \"0\"\n\n[file.one]\npath = \"out/one\"\ncontent = \"round ${vars.round}\"\n",
    );
    let (mut wins, mut losses) = (0, 0);
    for round in 1..=30 {
        let var = format!("round={round}");
        let args = ["apply", "--auto-approve", "--var", &var];
        let mut a = spawn(&t, &args);
        let mut b = spawn(&t, &args);
        let pids = [a.id(), b.id()];
        let outs = [a.wait_with_output_mut(), b.wait_with_output_mut()];
        for (i, (code, err)) in outs.iter().enumerate() {
            match code {
                0 => wins += 1,
                1 => {
                    losses += 1;
                    let other = pids[1 - i];
                    assert!(
                        err.contains("is locked by another run")
                            && err.contains(&format!("pid {other} on")),
                        "round {round}: the loser names the holder:\n{err}"
                    );
                }
                c => panic!("round {round}: exit {c}:\n{err}"),
            }
        }
        assert!(
            outs.iter().any(|(c, _)| *c == 0),
            "round {round}: nobody won"
        );
        assert!(
            !t.exists(".claw/state.json.lock"),
            "round {round}: a lock is left"
        );
        assert_eq!(t.read("out/one"), format!("round {round}"));
    }
    assert!(losses > 0, "no round had two applies at once ({wins} wins)");
    // One serial per round: the apply that changed the file (a second one
    // that ran after it found nothing to do).
    assert_eq!(t.state()["serial"], 30, "{wins} wins, {losses} losses");
}

trait WaitOut {
    fn wait_with_output_mut(&mut self) -> (i32, String);
}

impl WaitOut for Child {
    fn wait_with_output_mut(&mut self) -> (i32, String) {
        use std::io::Read;
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let mut out = String::new();
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let st = self.wait().unwrap();
        (st.code().unwrap_or(-1), format!("{out}\n{err}"))
    }
}

const ONE_FILE: &str = "[stack]\nname = \"x\"\n\n[file.a]\npath = \"out/a\"\ncontent = \"a\"\n";

#[test]
fn a_corrupt_state_is_refused_by_every_command_and_its_backup_kept() {
    let t = Ctx::new();
    t.write("claw.toml", ONE_FILE);
    t.ok(&["apply", "--auto-approve"], 0);
    t.write(
        "claw.toml",
        &ONE_FILE.replace("content = \"a\"", "content = \"b\""),
    );
    t.ok(&["apply", "--auto-approve"], 0);
    let backup = std::fs::read(t.path(".claw/state.json.backup")).unwrap();
    assert!(String::from_utf8_lossy(&backup).contains("\"serial\": 1"));
    let corrupt = b"{\"format_version\": 1, \"lineage\": ".to_vec();
    std::fs::write(t.path(".claw/state.json"), &corrupt).unwrap();
    for args in [
        &["plan"][..],
        &["apply", "--auto-approve"][..],
        &["destroy", "--auto-approve"][..],
        &["state", "list"][..],
        &["state", "rm", "file.a"][..],
        &["import", "file.a", "out/a"][..],
        &["show"][..],
    ] {
        let o = t.ok(args, 1);
        assert!(o.stderr.contains("is corrupted"), "{args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains("hint: restore it from its .backup copy"),
            "{args:?}: {}",
            o.stderr
        );
        assert_eq!(
            std::fs::read(t.path(".claw/state.json")).unwrap(),
            corrupt,
            "{args:?}"
        );
        assert_eq!(
            std::fs::read(t.path(".claw/state.json.backup")).unwrap(),
            backup,
            "{args:?}: the backup is kept byte for byte"
        );
        assert!(
            !t.exists(".claw/state.json.lock"),
            "{args:?}: the lock is released"
        );
    }
    assert_eq!(t.read("out/a"), "b", "nothing was touched");
}

#[test]
fn invalid_states_are_refused_and_kept() {
    let entry = |t: &str| {
        format!(
            r#"{{"type": "{t}", "provider": "host.local", "id": "out/a", "attrs": {{"path": "out/a", "content": "a"}}}}"#
        )
    };
    let doc = |lineage: &str, serial: &str, resources: String| {
        format!("{{\"format_version\": 1, \"lineage\": \"{lineage}\", \"serial\": {serial}, \"stack\": \"x\", \"salt\": \"s\",\n\"resources\": {{\n{resources}\n}}}}\n")
    };
    let max = u64::MAX.to_string();
    for (state, msg) in [
        (
            doc(
                "l",
                "3",
                format!(
                    "\"file.a\": {},\n\"file.a\": {}",
                    entry("file"),
                    entry("file")
                ),
            ),
            "lists the address `file.a` twice (line 4 column",
        ),
        (doc("", "3", String::new()), "has an empty lineage"),
        (
            doc("l", &max, String::new()),
            &format!("has serial {max}, which cannot be incremented"),
        ),
        (
            doc("l", "3", format!("\"gadget.a\": {}", entry("gadget"))),
            "records gadget.a with the unknown resource type `gadget`",
        ),
    ] {
        let t = Ctx::new();
        t.write("claw.toml", ONE_FILE);
        t.write(".claw/state.json", &state);
        for args in [
            &["plan"][..],
            &["apply", "--auto-approve"][..],
            &["state", "list"][..],
        ] {
            let o = t.ok(args, 1);
            assert!(
                o.stderr.contains(msg),
                "{args:?}: wanted {msg:?} in:\n{}",
                o.stderr
            );
            assert!(o.stderr.contains("hint:"), "{}", o.stderr);
            assert!(o.stderr.contains("nothing was changed"), "{}", o.stderr);
        }
        assert_eq!(
            t.read(".claw/state.json"),
            state,
            "the state is not overwritten"
        );
        assert!(!t.exists(".claw/state.json.backup"));
        assert!(!t.exists("out/a"));
    }
}

#[test]
fn a_fresh_stack_gets_one_empty_state_so_plans_repeat_byte_for_byte() {
    let t = Ctx::new();
    t.write("claw.toml", ONE_FILE);
    // Five first plans at once: they all read the one state that was created.
    let mut runs: Vec<Child> = (0..5)
        .map(|_| spawn(&t, &["plan", "--format", "json"]))
        .collect();
    let outs: Vec<(i32, String)> = runs.iter_mut().map(|c| c.wait_with_output_mut()).collect();
    let first = t.ok(&["plan", "--format", "json"], 0).stdout;
    for (code, out) in &outs {
        assert_eq!(*code, 0, "{out}");
        assert_eq!(out.trim(), first.trim());
    }
    let st = t.state();
    assert!(
        !first.contains(st["salt"].as_str().unwrap()),
        "the salt is not in the plan"
    );
    assert_eq!(st["serial"], 0);
    assert_eq!(st["resources"], serde_json::json!({}));
    assert!(first.contains(st["lineage"].as_str().unwrap()));
    assert_eq!(t.ok(&["plan", "--format", "json"], 0).stdout, first);
    // The saved plan of a fresh stack applies.
    t.ok(&["plan", "--out", "p.json"], 0);
    t.ok(&["apply", "p.json"], 0);
    assert_eq!(t.read("out/a"), "a");
}

#[test]
fn a_lock_of_a_dead_process_on_this_host_is_taken_over_and_a_live_one_is_not() {
    let t = Ctx::new();
    t.write("claw.toml", ONE_FILE);
    let host = hostname();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let lock = |pid: u32, host: &str| {
        format!(
            r#"{{"id":"old-run","pid":{pid},"host":"{host}","user":"ci","command":"apply","created":"2026-01-01T00:00:00Z"}}"#
        )
    };
    // A live holder on this host: refused, naming it.
    let mut alive = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    t.write(".claw/state.json.lock", &lock(alive.id(), &host));
    let o = t.ok(&["apply", "--auto-approve"], 1);
    assert!(
        o.stderr.contains(&format!(
            "locked by another run: pid {} on {host}",
            alive.id()
        )),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("claw force-unlock"), "{}", o.stderr);
    let _ = alive.kill();
    let _ = alive.wait();
    // Dead: taken over with a notice naming it.
    t.write(".claw/state.json.lock", &lock(dead, &host));
    let o = t.ok(&["apply", "--auto-approve"], 0);
    assert!(o.stderr.contains("took over the lock on"), "{}", o.stderr);
    assert!(
        o.stderr.contains(&format!(
            "held by pid {dead} on {host} (ci), running `apply`"
        )),
        "{}",
        o.stderr
    );
    assert!(!t.exists(".claw/state.json.lock"));
    // The same pid on another host: refused.
    t.write(".claw/state.json.lock", &lock(dead, "elsewhere"));
    let o = t.ok(&["destroy", "--auto-approve"], 1);
    assert!(
        o.stderr.contains(&format!("pid {dead} on elsewhere")),
        "{}",
        o.stderr
    );
    assert_eq!(t.read("out/a"), "a");
}

fn hostname() -> String {
    let o = std::process::Command::new("hostname").output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn operations_in_flight_are_rechecked_and_recorded() {
    let t = Ctx::new();
    t.write(
        "claw.toml",
        "[stack]\nname = \"x\"\n\n[file.made]\npath = \"out/made\"\ncontent = \"made\"\n\n[file.never]\npath = \"out/never\"\ncontent = \"never\"\n",
    );
    t.ok(&["plan"], 0);
    // A run died: after writing out/made, while deleting out/old, and before
    // writing out/never.
    t.write("out/made", "made");
    let mut st = t.state();
    st["serial"] = 4.into();
    st["resources"] = serde_json::json!({"file.old": {"type": "file", "provider": "host.local", "id": "out/old", "attrs": {"path": "out/old", "content": "old"}}});
    let fl = |op: &str| serde_json::json!({"op": op, "pid": 77, "host": "box", "started": "2026-01-01T00:00:00Z"});
    st["in_flight"] = serde_json::json!({"file.made": fl("create"), "file.old": fl("delete"), "file.never": fl("create")});
    t.write(
        ".claw/state.json",
        &serde_json::to_string_pretty(&st).unwrap(),
    );
    let o = t.ok(&["plan"], 0);
    assert!(
        o.stderr.contains("3 operations were in flight when pid 77 on box died: file.made (create), file.never (create), file.old (delete)"),
        "{}",
        o.stderr
    );
    let o = t.ok(&["apply", "--auto-approve"], 0);
    let all = o.all();
    assert!(
        all.contains(
            "file.made (create, in flight when pid 77 died): found it; recorded in the state"
        ),
        "{all}"
    );
    assert!(
        all.contains(
            "file.old (delete, in flight when pid 77 died): it is gone; removed from the state"
        ),
        "{all}"
    );
    assert!(
        all.contains("file.never (create, in flight when pid 77 died): not found"),
        "{all}"
    );
    let st = t.state();
    assert!(st["in_flight"].is_null(), "{st}");
    assert_eq!(addresses(&t), ["file.made", "file.never"]);
    assert_eq!(t.read("out/never"), "never");
    t.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn a_torn_or_foreign_journal() {
    let t = Ctx::new();
    t.write("claw.toml", ONE_FILE);
    t.ok(&["plan"], 0);
    let st = t.state();
    let header = |lineage: &str, serial: u64| {
        format!("{{\"header\":{{\"version\":1,\"lineage\":\"{lineage}\",\"serial\":{serial},\"pid\":77,\"host\":\"box\",\"lock\":\"l\",\"started\":\"t\"}}}}\n")
    };
    let lineage = st["lineage"].as_str().unwrap();
    let commit = "{\"commit\":{\"addr\":\"file.a\",\"entry\":{\"type\":\"file\",\"provider\":\"host.local\",\"id\":\"out/a\",\"attrs\":{\"path\":\"out/a\",\"content\":\"a\"}}}}\n";
    // Another state's journal: refused, both kept.
    let foreign = format!("{}{commit}", header("another", 0));
    t.write(".claw/state.json.journal", &foreign);
    let o = t.ok(&["apply", "--auto-approve"], 1);
    assert!(
        o.stderr
            .contains("belongs to another state: lineage another"),
        "{}",
        o.stderr
    );
    assert_eq!(t.read(".claw/state.json.journal"), foreign);
    // Ours, with a torn last record: folded, the torn line ignored.
    t.write(
        ".claw/state.json.journal",
        &format!("{}{commit}{{\"begin\":{{\"addr\":\"fi", header(lineage, 0)),
    );
    t.write("out/a", "a");
    let o = t.ok(&["apply", "--auto-approve"], 0);
    assert!(o.stderr.contains("recovered 1 operations from a journal left by pid 77 on box (its last record was cut short and is ignored)"), "{}", o.stderr);
    assert!(o.stdout.contains("No changes"), "{}", o.stdout);
    assert_eq!(t.state()["serial"], 1);
    assert!(!t.exists(".claw/state.json.journal"));
}

/// Applies `cfg` (with `CLAW_STATS` set in `t`); returns the `claw-stats:` line.
fn stats_of_apply(t: &Ctx, cfg: &str) -> String {
    t.write("claw.toml", cfg);
    let o = t.ok(&["apply", "--auto-approve"], 0);
    o.stderr
        .lines()
        .find(|l| l.starts_with("claw-stats: state bytes written: "))
        .unwrap_or_else(|| panic!("{}", o.stderr))
        .to_string()
}

/// State bytes written per object stay flat as the stack grows.
#[test]
fn an_apply_writes_state_bytes_linear_in_objects() {
    let per_object = |n: usize| {
        let t = Ctx::new().env("CLAW_STATS", "1");
        let mut cfg = String::from("[stack]\nname = \"lin\"\n");
        for i in 0..n {
            cfg.push_str(&format!(
                "\n[file.f{i:04}]\npath = \"out/f{i:04}\"\ncontent = \"file {i}\"\n"
            ));
        }
        let line = stats_of_apply(&t, &cfg);
        let n_bytes: f64 = line["claw-stats: state bytes written: ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        n_bytes / n as f64
    };
    let (small, large) = (per_object(50), per_object(400));
    assert!(
        large < small * 1.2,
        "bytes per object grew from {small:.0} to {large:.0}"
    );
}

/// The kubernetes backend: the first plan creates the state Secret; an apply
/// journals into small Secrets and leaves none behind; a crash's journal is
/// folded by the next run.
#[test]
fn the_kubernetes_backend_journals_and_folds() {
    let double = kube_api_double::KubeApiDouble::start().expect("start the Kubernetes API double");
    let t = Ctx::new();
    t.write("kubeconfig", &double.kubeconfig("default"));
    let kc = t.path("kubeconfig").to_str().unwrap().to_string();
    let t = t.env("KUBECONFIG", &kc);
    let mut cfg = String::from("[stack]\nname = \"kst\"\nstate = { backend = \"kubernetes\", provider = \"k8s\", namespace = \"kube-system\" }\n\n[provider.k8s]\ntype = \"kubernetes\"\n");
    for i in 0..5 {
        cfg.push_str(&format!(
            "\n[file.f{i}]\npath = \"out/f{i}\"\ncontent = \"{i}\"\n"
        ));
    }
    t.write("claw.toml", &cfg);
    let first = t.ok(&["plan", "--format", "json"], 0).stdout;
    assert_eq!(
        t.ok(&["plan", "--format", "json"], 0).stdout,
        first,
        "repeatable"
    );
    assert!(double
        .get("v1", "Secret", "kube-system", "claw-state-kst")
        .is_some());
    t.ok(&["apply", "--auto-approve"], 0);
    assert!(
        double.find_labelled("claw.dev/state-journal").is_empty(),
        "no journal left"
    );
    t.ok(&["plan", "--detailed-exitcode"], 0);
    let listed = t.ok(&["state", "list"], 0).stdout;
    assert_eq!(listed.lines().count(), 5, "{listed}");
    assert!(!t.exists(".claw"), "nothing local");

    // A run died after recording that it removed file.f4 from the state.
    let st: serde_json::Value =
        serde_json::from_str(&t.ok(&["show", "--format", "json"], 0).stdout).unwrap();
    let journal = format!(
        "{{\"header\":{{\"version\":1,\"lineage\":\"{}\",\"serial\":{},\"pid\":77,\"host\":\"box\",\"lock\":\"l\",\"started\":\"t\"}}}}\n{{\"commit\":{{\"addr\":\"file.f4\",\"entry\":null}}}}\n",
        st["lineage"].as_str().unwrap(),
        st["serial"]
    );
    double
        .put_object(
            "claw-state",
            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "claw-state-kst-journal-00000000", "namespace": "kube-system",
                    "labels": {"claw.dev/state-journal": journal_label("claw-state-kst")}},
                "stringData": {"records": journal}}),
        )
        .unwrap();
    assert_eq!(t.ok(&["state", "list"], 0).stdout.lines().count(), 4);
    let o = t.ok(&["apply", "--auto-approve"], 0);
    assert!(
        o.stderr
            .contains("recovered 1 operations from a journal left by pid 77 on box"),
        "{}",
        o.stderr
    );
    assert!(
        double.find_labelled("claw.dev/state-journal").is_empty(),
        "journal folded"
    );
    assert_eq!(
        t.ok(&["state", "list"], 0).stdout.lines().count(),
        5,
        "re-adopted"
    );
    t.ok(&["plan", "--detailed-exitcode"], 0);
}

/// The label the kubernetes backend puts on the journal of state Secret `name`.
fn journal_label(name: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(name.as_bytes())[..8])
}

/// A commit is synced before what depends on it starts, and only then: an
/// apply of independent files syncs the journal once (at its end), a chain
/// once per link that something waits for.
#[test]
fn journal_syncs_only_where_a_dependent_waits() {
    let syncs = |cfg: &str| {
        let t = Ctx::new().env("CLAW_STATS", "1");
        let line = stats_of_apply(&t, cfg);
        let n: u64 = line
            .rsplit("journal syncs: ")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        n
    };
    let mut flat = String::from("[stack]\nname = \"flat\"\n");
    for i in 0..40 {
        flat.push_str(&format!(
            "\n[file.f{i}]\npath = \"out/f{i}\"\ncontent = \"{i}\"\n"
        ));
    }
    assert_eq!(syncs(&flat), 1, "independent operations wait for no sync");
    let mut chain = String::from(
        "[stack]\nname = \"chain\"\n\n[file.f0]\npath = \"out/f0\"\ncontent = \"0\"\n",
    );
    for i in 1..6 {
        chain.push_str(&format!(
            "\n[file.f{i}]\npath = \"out/f{i}\"\ncontent = \"after ${{file.f{}.path}}\"\n",
            i - 1
        ));
    }
    // f0..f4 each have a dependent: five syncs before they start, one at the end.
    assert_eq!(syncs(&chain), 6);
}
