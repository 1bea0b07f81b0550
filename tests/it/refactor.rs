//! Refactoring tools end to end: `--replace ADDR` on plan and apply (a new
//! tmux session, a saved plan that replaces), and `claw state mv`.

use crate::common::{require, which, Ctx};
use crate::host::TmuxGuard;
use std::process::Command;

/// A stack of one tmux session `x` on a private socket and two files.
fn stack() -> Option<(Ctx, TmuxGuard)> {
    if !require("tmux", which("tmux"), "tmux is not installed") {
        return None;
    }
    let t = Ctx::new();
    t.write(
        "claw.toml",
        r#"
[stack]
name = "refactor"

[tmux_session.x]
socket = "tmux.sock"
session = "x"
command = "sleep 600"

[file.note]
for_each = ["a", "b"]
path = "out/${each.key}.txt"
content = "note ${each.key}\n"
"#,
    );
    let guard = TmuxGuard(t.path("tmux.sock"));
    Some((t, guard))
}

fn pane_pid(t: &Ctx) -> String {
    let o = Command::new("tmux")
        .arg("-S")
        .arg(t.path("tmux.sock"))
        .args(["display", "-p", "-t", "x", "#{pane_pid}"])
        .output()
        .expect("run tmux");
    assert!(
        o.status.success(),
        "tmux display: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pid = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(!pid.is_empty(), "a pane pid");
    pid
}

#[test]
fn replace_gives_a_new_session_and_a_saved_plan_replaces_too() {
    let Some((t, _guard)) = stack() else { return };
    // --replace of an object that does not exist yet is its create.
    let o = t.ok(
        &["plan", "--replace", "tmux_session.x", "--detailed-exitcode"],
        2,
    );
    assert!(o.stdout.contains("+ tmux_session.x"), "{}", o.stdout);
    assert!(
        o.stdout
            .contains("Plan: 3 to create, 0 to update, 0 to replace"),
        "{}",
        o.stdout
    );
    t.ok(&["apply", "--auto-approve"], 0);
    let first = pane_pid(&t);
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // Unchanged, yet replaced on request: a new pane (a new process).
    let o = t.ok(
        &["plan", "--replace", "tmux_session.x", "--detailed-exitcode"],
        2,
    );
    assert!(
        o.stdout
            .contains("replace (replacement requested with --replace"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("0 to update, 1 to replace, 0 to delete"),
        "{}",
        o.stdout
    );
    t.ok(
        &["apply", "--auto-approve", "--replace", "tmux_session.x"],
        0,
    );
    let second = pane_pid(&t);
    assert_ne!(first, second, "the session was started again");
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // A saved plan carries the replace; applying it replaces exactly that.
    t.ok(
        &["plan", "--replace", "tmux_session.x", "--out", "p.json"],
        0,
    );
    let saved: serde_json::Value = serde_json::from_str(&t.read("p.json")).unwrap();
    assert_eq!(saved["replace"], serde_json::json!(["tmux_session.x"]));
    let o = t.ok(&["apply", "p.json"], 0);
    assert!(
        o.stderr.contains("tmux_session.x: replaced"),
        "{}",
        o.stderr
    );
    let third = pane_pid(&t);
    assert_ne!(second, third, "the saved plan replaced the session");
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // A resource name selects all its instances.
    let o = t.ok(&["plan", "--replace", "file.note"], 0);
    assert!(
        o.stdout.contains("0 to update, 2 to replace"),
        "{}",
        o.stdout
    );
    // A plan file says what it replaces: --replace beside one is refused.
    let o = t.ok(&["apply", "p.json", "--replace", "file.note"], 1);
    assert!(
        o.stderr
            .contains("--replace cannot be combined with a plan file"),
        "{}",
        o.stderr
    );
}

#[test]
fn replace_of_an_unknown_address_names_the_closest() {
    let Some((t, _guard)) = stack() else { return };
    let o = t.ok(&["plan", "--replace", "tmux_session.y"], 1);
    assert!(
        o.stderr
            .contains("--replace tmux_session.y: no such resource in the configuration"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("did you mean `tmux_session.x`?"),
        "{}",
        o.stderr
    );
    let o = t.ok(&["apply", "--auto-approve", "--replace", "file.nots"], 1);
    assert!(o.stderr.contains("did you mean `file.note"), "{}", o.stderr);
    assert!(!t.exists("out/a.txt"), "nothing was applied");
}
